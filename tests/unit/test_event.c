/* Unit tests for event: the vocabulary, what a message's events repeat of it, the data each
 * event shows in GET /api/events, and the two webhook bodies as a receiver parses them. */
#include "testutil.h"

#include "event.h"

/* An event as the store reads it; data and meta are JSON written with ' for ". */
static struct store_event_info event(int64_t id, const char *type, const char *recipient,
				     const char *data, const char *meta)
{
	struct store_event_info e = {.id = id, .created_at = 1764833400};
	static char texts[32][1024]; /* a ring: enough for the events of one test */
	static int next;
	snprintf(e.type, sizeof(e.type), "%s", type);
	if (strncmp(type, "message.", 8) == 0) {
		snprintf(e.message_uid, sizeof(e.message_uid), "m-uid-1");
		snprintf(e.from, sizeof(e.from), "news@acme.example");
	}
	snprintf(e.recipient, sizeof(e.recipient), "%s", recipient);
	char *d = texts[next++ % 32], *m = texts[next++ % 32];
	snprintf(d, 1024, "%s", data);
	snprintf(m, 1024, "%s", meta);
	for (char *p = d; *p; p++)
		*p = *p == '\'' ? '"' : *p;
	for (char *p = m; *p; p++)
		*p = *p == '\'' ? '"' : *p;
	e.data = d;
	e.meta = m;
	return e;
}

/* The printed JSON equals want (written with ' for "), compared as JSON. */
static void assert_json(const char *text, const char *want)
{
	cJSON *got = cJSON_Parse(text), *expected = tu_json(want);
	if (!cJSON_Compare(got, expected, true))
		fail_msg("got %s\nwant %s", text, want);
	cJSON_Delete(got);
	cJSON_Delete(expected);
}

static void assert_item_json(const cJSON *item, const char *want)
{
	char *text = cJSON_PrintUnformatted(item);
	assert_json(text, want);
	free(text);
}

static void test_vocabulary(void **state)
{
	(void)state;
	static const char *const sendgrid[][2] = {
		{"message.processed", "processed"}, {"message.deferred", "deferred"},
		{"message.delivered", "delivered"}, {"message.bounced", "bounce"},
		{"message.dropped", "dropped"},	    {"message.complained", "spamreport"},
		{"webhook.test", "processed"},
	};
	assert_int_equal(event_ntypes, 14);
	assert_string_equal(event_types[0], "message.processed");
	/* A complaint is subscribable, after the drops. */
	assert_string_equal(event_types[5], "message.complained");
	assert_string_equal(event_types[12], "sender_policy.refused");
	assert_string_equal(event_types[13], "sender_policy.monitored");
	for (size_t i = 0; i < event_ntypes; i++) {
		assert_true(event_type_known(event_types[i]));
		assert_int_equal(event_is_message(event_types[i]), i < 6);
		assert_int_equal(event_sendgrid_name(event_types[i]) != NULL, i < 6);
	}
	for (size_t i = 0; i < sizeof(sendgrid) / sizeof(*sendgrid); i++)
		assert_string_equal(event_sendgrid_name(sendgrid[i][0]), sendgrid[i][1]);
	/* The test event is sent, never subscribed to. */
	assert_false(event_type_known("webhook.test"));
	assert_false(event_is_message("webhook.test"));
	const char *unknown[] = {"message.spamreport", "message.", "MESSAGE.delivered", "", NULL};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(*unknown); i++) {
		assert_false(event_type_known(unknown[i]));
		assert_false(event_is_message(unknown[i]));
		assert_null(event_sendgrid_name(unknown[i]));
	}
}

static void test_json_objects_of_fields(void **state)
{
	(void)state;
	char *a = event_json("email", "a\"b@example.com", "via", NULL, "x", "y", NULL);
	assert_json(a, "{'email': 'a\\'b@example.com', 'x': 'y'}");
	char *b = event_json_num("key_id", 9007199254740993, "from", "f@example.com", NULL);
	/* Written exactly, past what a double holds. */
	tu_assert_contains(b, "\"key_id\":9007199254740993");
	assert_json(b, "{'key_id': 9007199254740993, 'from': 'f@example.com'}");
	char *c = event_json_num("webhook_id", 3, "message", "A test event.", NULL);
	assert_json(c, "{'webhook_id': 3, 'message': 'A test event.'}");
	char *d = event_json("via", NULL, NULL);
	assert_json(d, "{}");
	free(a);
	free(b);
	free(c);
	free(d);
}

static char *meta_of(const char *payload)
{
	cJSON *p = tu_json(payload);
	char *meta = event_meta(p);
	cJSON_Delete(p);
	return meta;
}

static void test_meta_holds_what_every_event_repeats(void **state)
{
	(void)state;
	char *m = meta_of("{'from': {'email': 'a@x.example'}, 'tags': ['welcome', 'eu'], "
			  "'custom_args': {'user': '42'}, 'personalizations': [{'to': [{'email': "
			  "'b@y.example'}]}]}");
	assert_json(m, "{'tags': ['welcome', 'eu'], 'custom_args': {'user': '42'}}");
	free(m);
	m = meta_of("{'tags': ['only']}");
	assert_json(m, "{'tags': ['only'], 'custom_args': {}}");
	free(m);
	m = meta_of("{'custom_args': {'k': 'v'}, 'tags': []}");
	assert_json(m, "{'tags': [], 'custom_args': {'k': 'v'}}");
	free(m);
	/* Neither: nothing to store. */
	assert_null(meta_of("{'tags': [], 'custom_args': {}, 'personalizations': [{'to': "
			    "[{'email': 'b@y.example'}]}]}"));
	assert_null(meta_of("{}"));
	/* A personalization's own custom_args, for its recipients only (the first wins). */
	m = meta_of("{'personalizations': [{'to': [{'email': 'b@y.example'}], 'cc': [{'email': "
		    "'c@y.example'}], 'custom_args': {'k': 'p1'}}, {'to': [{'email': "
		    "'d@y.example'}]}, {'bcc': [{'email': 'b@y.example'}, {'email': "
		    "'e@y.example'}], 'custom_args': {'k': 'p3'}}]}");
	assert_json(m, "{'tags': [], 'custom_args': {}, 'recipient_custom_args': {"
		       "'b@y.example': {'k': 'p1'}, 'c@y.example': {'k': 'p1'}, "
		       "'e@y.example': {'k': 'p3'}}}");
	free(m);
}

static void test_message_events_carry_their_message(void **state)
{
	(void)state;
	struct store_event_info e =
		event(7, "message.delivered", "b@y.example", "{'attempt': 2, 'reply': '250 ok'}",
		      "{'tags': ['welcome'], 'custom_args': {'user': '42', 'k': 'all'}, "
		      "'recipient_custom_args': {'b@y.example': {'k': 'mine'}}}");
	cJSON *d = event_data(&e);
	assert_item_json(d, "{'message_id': 'm-uid-1', 'recipient': 'b@y.example', "
			    "'from': 'news@acme.example', 'attempt': 2, 'reply': '250 ok', "
			    "'tags': ['welcome'], 'custom_args': {'user': '42', 'k': 'mine'}}");
	cJSON_Delete(d);
	/* No meta, no own data: the same fields, empty. */
	e = event(8, "message.processed", "c@y.example", "", "");
	d = event_data(&e);
	assert_item_json(d, "{'message_id': 'm-uid-1', 'recipient': 'c@y.example', "
			    "'from': 'news@acme.example', 'tags': [], 'custom_args': {}}");
	cJSON_Delete(d);
	/* The Message-ID the recipient's copy carried: the event's own, else the message's. */
	e = event(10, "message.deferred", "c@y.example", "{'smtp_id': '<m-uid-1.1@acme.example>'}",
		  "");
	d = event_data(&e);
	assert_string_equal(tu_text(d, "smtp_id"), "<m-uid-1.1@acme.example>");
	cJSON_Delete(d);
	e = event(11, "message.delivered", "c@y.example", "{'attempt': 1}",
		  "{'smtp_id': '<own@client.example>'}");
	d = event_data(&e);
	assert_item_json(d, "{'message_id': 'm-uid-1', 'recipient': 'c@y.example', "
			    "'from': 'news@acme.example', 'attempt': 1, 'tags': [], "
			    "'custom_args': {}, 'smtp_id': '<own@client.example>'}");
	cJSON_Delete(d);
	/* An event cannot claim another message. */
	e = event(9, "message.dropped", "c@y.example",
		  "{'reason': 'cancelled', 'from': 'x@z', 'tags': ['forged']}", "{'tags': ['t']}");
	d = event_data(&e);
	assert_string_equal(tu_text(d, "from"), "news@acme.example");
	assert_int_equal(cJSON_GetArraySize(tu_get(d, "tags")), 1);
	assert_string_equal(tu_nth(tu_get(d, "tags"), 0)->valuestring, "t");
	assert_string_equal(tu_text(d, "reason"), "cancelled");
	cJSON_Delete(d);
}

static void test_rendered_events(void **state)
{
	(void)state;
	struct store_event_info e =
		event(5, "sender.verified", "", "{'email': 'a@x.example', 'via': 'link'}", "");
	cJSON *r = event_render(&e);
	assert_item_json(r, "{'id': 5, 'type': 'sender.verified', "
			    "'created_at': '2025-12-04T07:30:00Z', 'message_id': null, "
			    "'recipient': null, 'data': {'email': 'a@x.example', 'via': 'link'}}");
	cJSON_Delete(r);
	e = event(6, "message.bounced", "b@y.example",
		  "{'attempt': 1, 'reply': '550 5.1.1 no such user', 'type': 'bounce', "
		  "'status': '5.1.1'}",
		  "");
	r = event_render(&e);
	assert_string_equal(tu_text(r, "message_id"), "m-uid-1");
	assert_string_equal(tu_text(r, "recipient"), "b@y.example");
	assert_string_equal(tu_text(tu_get(r, "data"), "status"), "5.1.1");
	cJSON_Delete(r);
}

static void test_standard_body_and_id(void **state)
{
	(void)state;
	struct store_event_info e =
		event(42, "message.deferred", "b@y.example",
		      "{'attempt': 1, 'reply': '451 4.7.1 try later'}", "{'tags': ['t']}");
	char *body = event_standard_body(&e), id[32];
	assert_json(body, "{'type': 'message.deferred', 'timestamp': '2025-12-04T07:30:00Z', "
			  "'data': {'message_id': 'm-uid-1', 'recipient': 'b@y.example', "
			  "'from': 'news@acme.example', 'attempt': 1, "
			  "'reply': '451 4.7.1 try later', 'tags': ['t'], 'custom_args': {}}}");
	free(body);
	event_standard_id(&e, id, sizeof(id));
	assert_string_equal(id, "evt_42");
	e = event(43, "domain.failed", "", "{'domain': 'acme.example', 'error': 'no TXT'}", "");
	body = event_standard_body(&e);
	assert_json(body, "{'type': 'domain.failed', 'timestamp': '2025-12-04T07:30:00Z', "
			  "'data': {'domain': 'acme.example', 'error': 'no TXT'}}");
	free(body);
}

static void test_sendgrid_body(void **state)
{
	(void)state;
	const char *meta = "{'tags': ['welcome'], 'custom_args': {'user': '42', 'event': 'mine', "
			   "'email': 'x', 'reason': 'r', 'sg_event_id': 's', 'category': 'c'}}";
	struct store_event_info e[] = {
		event(1, "message.processed", "b@y.example", "", meta),
		event(2, "sender.added", "", "{'email': 'a@x.example'}", ""),
		event(3, "message.delivered", "b@y.example", "{'attempt': 1, 'reply': '250 ok'}",
		      meta),
		event(4, "message.bounced", "c@y.example",
		      "{'attempt': 3, 'reply': '550 5.1.1 no such user', 'type': 'bounce', "
		      "'status': '5.1.1'}",
		      ""),
		event(5, "message.dropped", "d@y.example", "{'reason': 'sender_not_authorized'}",
		      ""),
		event(6, "message.deferred", "d@y.example", "{'attempt': 2, 'reply': '421 busy'}",
		      ""),
		event(7, "domain.verified", "", "{'domain': 'acme.example'}", ""),
	};
	char *body = event_sendgrid_body(e, sizeof(e) / sizeof(*e));
	cJSON *list = cJSON_Parse(body);
	assert_int_equal(cJSON_GetArraySize(list), 5); /* the account events left out */
	/* Reserved names keep their own values; other custom_args sit at the top level. */
	assert_item_json(tu_nth(list, 0),
			 "{'email': 'b@y.example', 'timestamp': 1764833400, 'event': 'processed', "
			 "'sg_event_id': 'evt_1', 'sg_message_id': 'm-uid-1', "
			 "'smtp-id': '<m-uid-1@acme.example>', 'category': 'welcome', "
			 "'user': '42', 'reason': 'r'}");
	/* The attempt goes with deferrals only, as SendGrid sends it. */
	assert_item_json(tu_nth(list, 1),
			 "{'email': 'b@y.example', 'timestamp': 1764833400, 'event': 'delivered', "
			 "'sg_event_id': 'evt_3', 'sg_message_id': 'm-uid-1', "
			 "'smtp-id': '<m-uid-1@acme.example>', 'response': '250 ok', "
			 "'category': 'welcome', 'user': '42', 'reason': 'r'}");
	assert_item_json(
		tu_nth(list, 2),
		"{'email': 'c@y.example', 'timestamp': 1764833400, 'event': 'bounce', "
		"'sg_event_id': 'evt_4', 'sg_message_id': 'm-uid-1', "
		"'smtp-id': '<m-uid-1@acme.example>', "
		"'reason': '550 5.1.1 no such user', 'type': 'bounce', 'status': '5.1.1'}");
	assert_item_json(tu_nth(list, 3),
			 "{'email': 'd@y.example', 'timestamp': 1764833400, 'event': 'dropped', "
			 "'sg_event_id': 'evt_5', 'sg_message_id': 'm-uid-1', "
			 "'smtp-id': '<m-uid-1@acme.example>', 'reason': 'sender_not_authorized'}");
	assert_item_json(tu_nth(list, 4),
			 "{'email': 'd@y.example', 'timestamp': 1764833400, 'event': 'deferred', "
			 "'sg_event_id': 'evt_6', 'sg_message_id': 'm-uid-1', "
			 "'smtp-id': '<m-uid-1@acme.example>', 'attempt': '2', "
			 "'response': '421 busy'}");
	cJSON_Delete(list);
	free(body);
}

static void test_sendgrid_smtp_id_and_category(void **state)
{
	(void)state;
	struct store_event_info e[] = {
		/* A later personalization: its own Message-ID. */
		event(1, "message.delivered", "b@y.example",
		      "{'attempt': 1, 'reply': '250 ok', 'smtp_id': '<m-uid-1.2@acme.example>'}",
		      "{'tags': ['welcome', 'eu'], 'custom_args': {}}"),
		/* A submitted message: the client's Message-ID, from its meta. */
		event(2, "message.dropped", "c@y.example", "{'reason': 'cancelled'}",
		      "{'smtp_id': '<own@client.example>'}"),
		/* Its first try at the relay deferred: the attempt, a string. */
		event(3, "message.deferred", "d@y.example",
		      "{'attempt': 1, 'reply': '451 later', 'smtp_id': '<m-uid-1@acme.example>'}",
		      "{'tags': [], 'custom_args': {}}"),
	};
	char *body = event_sendgrid_body(e, sizeof(e) / sizeof(*e));
	cJSON *list = cJSON_Parse(body);
	const cJSON *sent = tu_nth(list, 0), *dropped = tu_nth(list, 1),
		    *deferred = tu_nth(list, 2);
	assert_string_equal(tu_text(sent, "smtp-id"), "<m-uid-1.2@acme.example>");
	assert_string_equal(tu_text(dropped, "smtp-id"), "<own@client.example>");
	assert_string_equal(tu_text(deferred, "smtp-id"), "<m-uid-1@acme.example>");
	assert_false(cJSON_HasObjectItem(sent, "smtp_id")); /* under SendGrid's name only */
	/* Several tags: an array; none: no category. */
	assert_item_json(tu_get(sent, "category"), "['welcome', 'eu']");
	assert_false(cJSON_HasObjectItem(dropped, "category"));
	assert_false(cJSON_HasObjectItem(deferred, "category"));
	/* The attempt with a deferral only, as a string. */
	assert_false(cJSON_HasObjectItem(sent, "attempt"));
	assert_string_equal(tu_text(deferred, "attempt"), "1");
	cJSON_Delete(list);
	free(body);
}

/* What came back to the return path, in SendGrid's shape: a DSN's bounce (its diagnostic
 * as the reason, since there is no relay reply), a block, a delayed DSN's deferral, and a
 * complaint as a spamreport. */
static void test_sendgrid_reports(void **state)
{
	(void)state;
	struct store_event_info e[] = {
		event(1, "message.bounced", "b@y.example",
		      "{'type': 'bounce', 'status': '5.1.1', 'diagnostic': '550 5.1.1 no such "
		      "user', 'source': 'dsn', 'reporting_mta': 'mx.y.example'}",
		      ""),
		event(2, "message.bounced", "c@y.example",
		      "{'attempt': 1, 'reply': '550 5.7.1 blocked by policy', 'type': 'blocked', "
		      "'status': '5.7.1'}",
		      ""),
		event(3, "message.deferred", "d@y.example",
		      "{'status': '4.4.1', 'diagnostic': 'connection timed out', 'source': 'dsn'}",
		      ""),
		event(4, "message.complained", "e@y.example",
		      "{'feedback_type': 'abuse', 'source': 'arf', 'reporting_mta': "
		      "'fbl.y.example'}",
		      "{'tags': ['news'], 'custom_args': {}}"),
	};
	char *body = event_sendgrid_body(e, sizeof(e) / sizeof(*e));
	cJSON *list = cJSON_Parse(body);
	assert_int_equal(cJSON_GetArraySize(list), 4);
	assert_item_json(tu_nth(list, 0),
			 "{'email': 'b@y.example', 'timestamp': 1764833400, 'event': 'bounce', "
			 "'sg_event_id': 'evt_1', 'sg_message_id': 'm-uid-1', "
			 "'smtp-id': '<m-uid-1@acme.example>', 'type': 'bounce', "
			 "'status': '5.1.1', 'reason': '550 5.1.1 no such user', 'source': 'dsn', "
			 "'reporting_mta': 'mx.y.example'}");
	/* SendGrid's blocked is a bounce event of type blocked. */
	const cJSON *blocked = tu_nth(list, 1);
	assert_string_equal(tu_text(blocked, "event"), "bounce");
	assert_string_equal(tu_text(blocked, "type"), "blocked");
	assert_string_equal(tu_text(blocked, "status"), "5.7.1");
	assert_string_equal(tu_text(blocked, "reason"), "550 5.7.1 blocked by policy");
	assert_false(cJSON_HasObjectItem(blocked, "diagnostic"));
	const cJSON *deferred = tu_nth(list, 2);
	assert_string_equal(tu_text(deferred, "event"), "deferred");
	assert_string_equal(tu_text(deferred, "response"), "connection timed out");
	assert_false(cJSON_HasObjectItem(deferred, "attempt"));
	assert_item_json(tu_nth(list, 3),
			 "{'email': 'e@y.example', 'timestamp': 1764833400, 'event': 'spamreport', "
			 "'sg_event_id': 'evt_4', 'sg_message_id': 'm-uid-1', "
			 "'smtp-id': '<m-uid-1@acme.example>', 'feedback_type': 'abuse', "
			 "'source': 'arf', 'reporting_mta': 'fbl.y.example', 'category': 'news'}");
	cJSON_Delete(list);
	free(body);
}

static void test_sendgrid_test_event_and_empty_bodies(void **state)
{
	(void)state;
	struct store_event_info t =
		event(9, "webhook.test", "", "{'webhook_id': 3, 'message': 'A test event.'}", "");
	char *body = event_sendgrid_body(&t, 1);
	/* A sample of what a receiver reads, marked as the test. */
	assert_json(body, "[{'email': 'example@test.com', 'timestamp': 1764833400, "
			  "'event': 'processed', 'sg_event_id': 'evt_9', 'sg_message_id': 'test', "
			  "'smtp-id': '<test@postern.invalid>', 'postern_test': true, "
			  "'webhook_id': 3}]");
	free(body);
	struct store_event_info a = event(10, "sender.removed", "", "{'email': 'a@x'}", "");
	body = event_sendgrid_body(&a, 1);
	assert_string_equal(body, "[]");
	free(body);
	body = event_sendgrid_body(NULL, 0);
	assert_string_equal(body, "[]");
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vocabulary),
		cmocka_unit_test(test_json_objects_of_fields),
		cmocka_unit_test(test_meta_holds_what_every_event_repeats),
		cmocka_unit_test(test_message_events_carry_their_message),
		cmocka_unit_test(test_rendered_events),
		cmocka_unit_test(test_standard_body_and_id),
		cmocka_unit_test(test_sendgrid_body),
		cmocka_unit_test(test_sendgrid_smtp_id_and_category),
		cmocka_unit_test(test_sendgrid_reports),
		cmocka_unit_test(test_sendgrid_test_event_and_empty_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
