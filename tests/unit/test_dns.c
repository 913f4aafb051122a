/* Tests for the DNS adapter against a real dnsmasq on loopback: exact TXT values, values split
 * into several strings coming back joined, several records per name, NXDOMAIN and NODATA as
 * not found, and REFUSED, dead and silent servers as errors within the timeout. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "dns.h"

#define DNSMASQ	   "/usr/sbin/dnsmasq"
#define TIMEOUT_MS 500
/* Generous, so a loaded CI machine does not fail it; an unbounded wait still does. */
#define BOUND_MS 5000

#define SIMPLE_NAME "_postern.a.example.test"
#define SIMPLE	    "postern-verification=abc"
#define DKIM_NAME   "sel._domainkey.a.example.test"
#define DKIM_HEAD   "v=DKIM1; k=rsa; p="
#define DKIM_LEN    400 /* published as a 250-byte string and the rest */
#define TWO_NAME    "two.a.example.test"
#define MANY_NAME   "many.a.example.test"
#define MANY	    (DNS_TXT_MAX + 2)
#define BIG_NAME    "big.a.example.test"
#define BIG_LEN	    (DNS_TXT_LEN + 250) /* 18 strings: over 512 bytes, so c-ares retries over TCP */
#define NODATA_NAME "host.a.example.test"

struct dnsmasq {
	pid_t pid;
	char servers[32]; /* "127.0.0.1:PORT" */
	char dkim[DKIM_LEN + 1];
	char big[BIG_LEN + 1];
};

/* A value that looks like an RSA key, the same on every run. */
static void fill_key(char *dst, size_t len, const char *head)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t h = strlen(head);
	memcpy(dst, head, h);
	for (size_t i = h; i < len; i++)
		dst[i] = b64[(i * 7) % 64];
	dst[len] = '\0';
}

/* A port free for both UDP and TCP on 127.0.0.1 at the moment of asking. */
static int free_port(void)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		socklen_t salen = sizeof(sa);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
		int port = -1;
		if (u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    getsockname(u, (struct sockaddr *)&sa, &salen) == 0 &&
		    bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			port = ntohs(sa.sin_port);
		close(u);
		close(t);
		if (port > 0)
			return port;
	}
	return -1;
}

/* The character-strings of one --txt-record value, each at most step bytes (the limit is 255),
 * separated by commas. No shell runs dnsmasq, so no quotes: it would keep them. */
static void split_strings(char *dst, size_t n, const char *value, size_t step)
{
	size_t len = strlen(value), at = 0;
	dst[0] = '\0';
	for (size_t i = 0; i < len; i += step) {
		size_t k = len - i < step ? len - i : step;
		at += (size_t)snprintf(dst + at, n - at, "%s%.*s", i ? "," : "", (int)k, value + i);
	}
}

static pid_t spawn(int port, struct dnsmasq *srv)
{
	char port_arg[32], dkim_arg[600], big_arg[BIG_LEN + 200], many_args[MANY][64];
	const char *argv[64];
	int argc = 0;

	snprintf(port_arg, sizeof(port_arg), "--port=%d", port);
	strcpy(dkim_arg, "--txt-record=" DKIM_NAME ",");
	split_strings(dkim_arg + strlen(dkim_arg), sizeof(dkim_arg) - strlen(dkim_arg), srv->dkim,
		      250);
	strcpy(big_arg, "--txt-record=" BIG_NAME ",");
	split_strings(big_arg + strlen(big_arg), sizeof(big_arg) - strlen(big_arg), srv->big, 250);

	argv[argc++] = DNSMASQ;
	argv[argc++] = "--conf-file=/dev/null";
	argv[argc++] = "--keep-in-foreground";
	argv[argc++] = "--no-resolv";
	argv[argc++] = "--no-hosts";
	argv[argc++] = "--pid-file="; /* none: never touch the system's */
	argv[argc++] = port_arg;
	argv[argc++] = "--listen-address=127.0.0.1";
	argv[argc++] = "--bind-interfaces";
	argv[argc++] = "--local=/example.test/";
	argv[argc++] = "--txt-record=" SIMPLE_NAME "," SIMPLE;
	argv[argc++] = dkim_arg;
	argv[argc++] = "--txt-record=" TWO_NAME ",first";
	argv[argc++] = "--txt-record=" TWO_NAME ",second";
	for (int i = 0; i < MANY; i++) {
		snprintf(many_args[i], sizeof(many_args[i]), "--txt-record=" MANY_NAME ",r%d", i);
		argv[argc++] = many_args[i];
	}
	argv[argc++] = big_arg;
	argv[argc++] = "--host-record=" NODATA_NAME ",127.0.0.2";
	argv[argc] = NULL;

	pid_t pid = fork();
	if (pid == 0) {
		execv(DNSMASQ, (char *const *)argv);
		fprintf(stderr, "test_dns: cannot run %s: %s\n", DNSMASQ, strerror(errno));
		_exit(127);
	}
	return pid;
}

static void stop(struct dnsmasq *srv)
{
	if (srv->pid > 0) {
		kill(srv->pid, SIGTERM);
		waitpid(srv->pid, NULL, 0);
	}
	srv->pid = 0;
}

/* True once dnsmasq answers the simple record; false if it died or 5 s passed. */
static int wait_ready(struct dnsmasq *srv)
{
	char err[256];
	struct dns_txt *txt = malloc(sizeof(*txt));
	struct dns *d = dns_new(srv->servers, 200, err, sizeof(err));
	int ready = 0;

	for (int i = 0; txt && d && i < 50 && !ready; i++) {
		if (waitpid(srv->pid, NULL, WNOHANG) == srv->pid) {
			srv->pid = 0;
			break;
		}
		dns_txt(d, SIMPLE_NAME, txt);
		ready = txt->status == DNS_FOUND;
		if (!ready)
			usleep(100 * 1000);
	}
	dns_free(d);
	free(txt);
	return ready;
}

static int start_dnsmasq(void **state)
{
	struct dnsmasq *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -1;
	fill_key(srv->dkim, DKIM_LEN, DKIM_HEAD);
	fill_key(srv->big, BIG_LEN, "big=");
	/* Another process may take the port between our probe and dnsmasq's bind: try again. */
	for (int attempt = 0; attempt < 3; attempt++) {
		int port = free_port();
		if (port < 0)
			break;
		snprintf(srv->servers, sizeof(srv->servers), "127.0.0.1:%d", port);
		srv->pid = spawn(port, srv);
		if (srv->pid < 0)
			break;
		if (wait_ready(srv)) {
			*state = srv;
			return 0;
		}
		stop(srv);
	}
	fprintf(stderr, "test_dns: dnsmasq (%s) did not start answering\n", DNSMASQ);
	free(srv);
	return -1;
}

static int stop_dnsmasq(void **state)
{
	stop(*state);
	free(*state);
	return 0;
}

static struct dns *open_dns(const char *servers, int timeout_ms)
{
	char err[256] = "";
	struct dns *d = dns_new(servers, timeout_ms, err, sizeof(err));
	if (!d)
		fail_msg("dns_new(\"%s\"): %s", servers, err);
	return d;
}

/* struct dns_txt is 32 KiB: on the heap, not on cmocka's stack. */
static struct dns_txt *lookup(const char *servers, int timeout_ms, const char *name)
{
	struct dns *d = open_dns(servers, timeout_ms);
	struct dns_txt *txt = malloc(sizeof(*txt));
	assert_non_null(txt);
	dns_txt(d, name, txt);
	dns_free(d);
	return txt;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void simple_record_is_found_with_its_exact_value(void **state)
{
	struct dnsmasq *srv = *state;
	struct dns_txt *txt = lookup(srv->servers, TIMEOUT_MS, SIMPLE_NAME);
	assert_int_equal(txt->status, DNS_FOUND);
	assert_int_equal(txt->count, 1);
	assert_string_equal(txt->records[0], SIMPLE);
	free(txt);
}

static void value_published_as_several_strings_comes_back_joined(void **state)
{
	struct dnsmasq *srv = *state;
	struct dns_txt *txt = lookup(srv->servers, TIMEOUT_MS, DKIM_NAME);
	assert_int_equal(txt->status, DNS_FOUND);
	assert_int_equal(txt->count, 1);
	assert_int_equal(strlen(txt->records[0]), DKIM_LEN);
	assert_string_equal(txt->records[0], srv->dkim);
	free(txt);
}

static void name_with_two_records_returns_both(void **state)
{
	struct dnsmasq *srv = *state;
	struct dns_txt *txt = lookup(srv->servers, TIMEOUT_MS, TWO_NAME);
	assert_int_equal(txt->status, DNS_FOUND);
	assert_int_equal(txt->count, 2);
	/* The order of records in an answer is not defined. */
	int first = strcmp(txt->records[0], "first") == 0 ? 0 : 1;
	assert_string_equal(txt->records[first], "first");
	assert_string_equal(txt->records[1 - first], "second");
	free(txt);
}

static void records_beyond_the_max_are_dropped(void **state)
{
	struct dnsmasq *srv = *state;
	struct dns_txt *txt = lookup(srv->servers, TIMEOUT_MS, MANY_NAME);
	assert_int_equal(txt->status, DNS_FOUND);
	assert_int_equal(txt->count, DNS_TXT_MAX);
	for (int i = 0; i < DNS_TXT_MAX; i++) {
		assert_int_equal(txt->records[i][0], 'r');
		assert_int_equal(strlen(txt->records[i]), 2);
	}
	free(txt);
}

static void record_longer_than_the_buffer_is_cut_safely(void **state)
{
	struct dnsmasq *srv = *state;
	struct dns_txt *txt = lookup(srv->servers, TIMEOUT_MS, BIG_NAME);
	assert_int_equal(txt->status, DNS_FOUND);
	assert_int_equal(txt->count, 1);
	assert_int_equal(strlen(txt->records[0]), DNS_TXT_LEN - 1);
	assert_memory_equal(txt->records[0], srv->big, DNS_TXT_LEN - 1);
	free(txt);
}

static void missing_name_in_the_zone_is_not_found(void **state)
{
	struct dnsmasq *srv = *state;
	struct dns_txt *txt = lookup(srv->servers, TIMEOUT_MS, "_postern.missing.example.test");
	assert_int_equal(txt->status, DNS_NOT_FOUND);
	assert_int_equal(txt->count, 0);
	free(txt);
}

static void name_without_txt_records_is_not_found(void **state)
{
	struct dnsmasq *srv = *state;
	struct dns_txt *txt = lookup(srv->servers, TIMEOUT_MS, NODATA_NAME);
	assert_int_equal(txt->status, DNS_NOT_FOUND);
	assert_int_equal(txt->count, 0);
	free(txt);
}

static void refused_answer_is_an_error_not_a_missing_record(void **state)
{
	struct dnsmasq *srv = *state;
	struct dns_txt *txt = lookup(srv->servers, TIMEOUT_MS, "_postern.elsewhere.invalid");
	assert_int_equal(txt->status, DNS_ERROR);
	assert_int_equal(txt->count, 0);
	assert_string_equal(txt->error, "REFUSED");
	free(txt);
}

static void server_where_nothing_listens_is_an_error_within_the_timeout(void **state)
{
	char servers[32];
	(void)state;
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", free_port());

	double start = now_ms();
	struct dns_txt *txt = lookup(servers, TIMEOUT_MS, SIMPLE_NAME);
	double took = now_ms() - start;
	assert_int_equal(txt->status, DNS_ERROR);
	assert_true(txt->error[0] != '\0');
	if (took > BOUND_MS)
		fail_msg("took %.0f ms with a %d ms timeout", took, TIMEOUT_MS);
	free(txt);
}

static void server_that_never_answers_times_out_within_the_timeout(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t salen = sizeof(sa);
	char servers[32];
	(void)state;

	/* A bound socket nobody reads: the queries arrive and vanish. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int silent = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(silent >= 0);
	assert_int_equal(bind(silent, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(silent, (struct sockaddr *)&sa, &salen), 0);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", ntohs(sa.sin_port));

	double start = now_ms();
	struct dns_txt *txt = lookup(servers, TIMEOUT_MS, SIMPLE_NAME);
	double took = now_ms() - start;
	close(silent);
	assert_int_equal(txt->status, DNS_ERROR);
	assert_string_equal(txt->error, "timeout");
	if (took > BOUND_MS)
		fail_msg("took %.0f ms with a %d ms timeout", took, TIMEOUT_MS);
	free(txt);
}

static void malformed_server_string_is_refused_with_a_message(void **state)
{
	static const char *const bad[] = {
		"dns.example.com", "127.0.0.1:53,nonsense", "[::1", "127.0.0.1:99999", "127.0.0.1:",
		"1.2.3",	   "127.0.0.1,,127.0.0.2"};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		struct dns *d = dns_new(bad[i], TIMEOUT_MS, err, sizeof(err));
		if (d)
			fail_msg("dns_new accepted \"%s\"", bad[i]);
		if (!strstr(err, bad[i]))
			fail_msg("message \"%s\" does not name \"%s\"", err, bad[i]);
	}
}

static void well_formed_server_strings_are_accepted(void **state)
{
	static const char *const good[] = {"",
					   "127.0.0.1",
					   "127.0.0.1:5353",
					   "[::1]:53",
					   "[::1]",
					   "::1",
					   "127.0.0.1:5353, [::1]:5353"};
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		dns_free(open_dns(good[i], TIMEOUT_MS));
}

static void two_handles_work_one_after_the_other(void **state)
{
	struct dnsmasq *srv = *state;
	struct dns *a = open_dns(srv->servers, TIMEOUT_MS);
	struct dns *b = open_dns(srv->servers, TIMEOUT_MS);
	struct dns_txt *txt = malloc(sizeof(*txt));
	assert_non_null(txt);

	dns_txt(a, SIMPLE_NAME, txt);
	assert_int_equal(txt->status, DNS_FOUND);
	assert_string_equal(txt->records[0], SIMPLE);
	dns_txt(b, DKIM_NAME, txt);
	assert_int_equal(txt->status, DNS_FOUND);
	assert_string_equal(txt->records[0], srv->dkim);
	dns_free(a);
	dns_txt(b, "_postern.missing.example.test", txt);
	assert_int_equal(txt->status, DNS_NOT_FOUND);
	dns_free(b);
	free(txt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(simple_record_is_found_with_its_exact_value),
		cmocka_unit_test(value_published_as_several_strings_comes_back_joined),
		cmocka_unit_test(name_with_two_records_returns_both),
		cmocka_unit_test(records_beyond_the_max_are_dropped),
		cmocka_unit_test(record_longer_than_the_buffer_is_cut_safely),
		cmocka_unit_test(missing_name_in_the_zone_is_not_found),
		cmocka_unit_test(name_without_txt_records_is_not_found),
		cmocka_unit_test(refused_answer_is_an_error_not_a_missing_record),
		cmocka_unit_test(server_where_nothing_listens_is_an_error_within_the_timeout),
		cmocka_unit_test(server_that_never_answers_times_out_within_the_timeout),
		cmocka_unit_test(malformed_server_string_is_refused_with_a_message),
		cmocka_unit_test(well_formed_server_strings_are_accepted),
		cmocka_unit_test(two_handles_work_one_after_the_other),
	};
	return cmocka_run_group_tests(tests, start_dnsmasq, stop_dnsmasq);
}
