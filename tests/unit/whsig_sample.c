/* Prints webhook requests signed by whsig, one JSON line each, in the input format of
 * tests/webhooks/verify.js, each with "expect": whether the official verifier must accept it.
 * Bodies are event.c's, signed now (the Standard Webhooks verifier allows 5 minutes); the
 * tampered copies must fail. ctest webhook_verifiers pipes this through verify.js. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "whsig.h"

#define SENDGRID_SAMPLES 25 /* a DER signature's length varies: several show each kind */

static void emit(const char *format, const char *key_name, const char *key, cJSON *headers,
		 const char *body, int expect)
{
	cJSON *line = cJSON_CreateObject();
	cJSON_AddStringToObject(line, "format", format);
	cJSON_AddStringToObject(line, key_name, key);
	cJSON_AddItemToObject(line, "headers", headers);
	cJSON_AddStringToObject(line, "body", body);
	cJSON_AddBoolToObject(line, "expect", expect);
	char *text = cJSON_PrintUnformatted(line);
	puts(text);
	free(text);
	cJSON_Delete(line);
}

/* A copy of body with its first digit changed: the same shape, another meaning. */
static char *tampered(const char *body)
{
	char *t = strdup(body);
	char *d = strpbrk(t, "0123456789");
	if (d)
		*d = *d == '9' ? '0' : (char)(*d + 1);
	return t;
}

static struct store_event_info sample(int64_t id, const char *type, const char *data)
{
	struct store_event_info e = {.id = id, .created_at = (int64_t)time(NULL)};
	snprintf(e.type, sizeof(e.type), "%s", type);
	snprintf(e.message_uid, sizeof(e.message_uid), "m%" PRId64, id);
	snprintf(e.recipient, sizeof(e.recipient), "rcpt%" PRId64 "@example.com", id);
	snprintf(e.from, sizeof(e.from), "news@acme.example");
	e.data = data;
	e.meta = "{\"tags\":[\"welcome\"],\"custom_args\":{\"user\":\"42\",\"note\":\"é ✓\"}}";
	return e;
}

static int standard(int64_t now)
{
	char secret[WHSIG_SECRET_MAX], id[32], ts[24], sig[WHSIG_SIGNATURE_MAX];
	struct store_event_info e =
		sample(101, "message.delivered", "{\"attempt\":1,\"reply\":\"250 2.0.0 ok\"}");
	char *body = event_standard_body(&e), *bad = tampered(body);
	snprintf(ts, sizeof(ts), "%" PRId64, now);
	event_standard_id(&e, id, sizeof(id));
	if (whsig_secret_new(secret) < 0 || whsig_standard_sign(secret, id, now, body, sig) < 0)
		return -1;
	for (int good = 1; good >= 0; good--) {
		cJSON *h = cJSON_CreateObject();
		cJSON_AddStringToObject(h, "webhook-id", id);
		cJSON_AddStringToObject(h, "webhook-timestamp", ts);
		cJSON_AddStringToObject(h, "webhook-signature", sig);
		emit("standard", "secret", secret, h, good ? body : bad, good);
	}
	free(body);
	free(bad);
	return 0;
}

static int sendgrid(int64_t now)
{
	char *pem = NULL, pub[WHSIG_PUBLIC_KEY_MAX], ts[24], sig[WHSIG_SIGNATURE_MAX];
	if (whsig_ecdsa_new(&pem, pub) < 0)
		return -1;
	snprintf(ts, sizeof(ts), "%" PRId64, now);
	for (int i = 0; i < SENDGRID_SAMPLES; i++) {
		struct store_event_info e[] = {
			sample(200 + i, "message.processed", "{}"),
			sample(300 + i, "message.bounced",
			       "{\"attempt\":1,\"reply\":\"550 5.1.1 no such user\","
			       "\"type\":\"bounce\",\"status\":\"5.1.1\"}"),
		};
		char *body = event_sendgrid_body(e, 2), *bad = tampered(body);
		if (whsig_sendgrid_sign(pem, now, body, sig) < 0)
			return -1;
		for (int good = 1; good >= 0; good--) {
			cJSON *h = cJSON_CreateObject();
			cJSON_AddStringToObject(h, "X-Twilio-Email-Event-Webhook-Signature", sig);
			cJSON_AddStringToObject(h, "X-Twilio-Email-Event-Webhook-Timestamp", ts);
			/* Only the first shows a bad body: the rest vary the signature. */
			if (good || i == 0)
				emit("sendgrid", "public_key", pub, h, good ? body : bad, good);
			else
				cJSON_Delete(h);
		}
		free(body);
		free(bad);
	}
	whsig_free(pem);
	return 0;
}

int main(void)
{
	int64_t now = (int64_t)time(NULL);
	if (standard(now) < 0 || sendgrid(now) < 0) {
		fprintf(stderr, "whsig_sample: signing failed\n");
		return 1;
	}
	return 0;
}
