/* Unit tests for the worker module with real threads: a wake reaches the thread (even one
 * given while it is busy), a deadline ends a wait, a stop ends the loop and joins it, the
 * thread carries its name, and a thread that cannot be made is an error naming it. The .c
 * is included so that thread creation can be made to fail, as it does when a system is
 * out of threads or memory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

static int create_fails; /* the error the next pthread_create gives, 0 for none */

static int create_or_fail(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	if (create_fails)
		return create_fails;
	return pthread_create(t, attr, fn, arg);
}

#define pthread_create create_or_fail
#include "../../src/worker.c"
#undef pthread_create

/* What a loop body saw, read by the test under the lock. */
struct seen {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	int64_t wait_ms; /* the deadline each wait is given */
	int returns;	 /* waits that said go on */
	bool ended;	 /* a wait said stop and the body returned */
	bool stopping;	 /* worker_stopping, asked after the last wait */
	double first_wait_s;
	char name[16];
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void count_waits(void *arg, struct worker *self)
{
	struct seen *s = arg;
	pthread_getname_np(pthread_self(), s->name, sizeof(s->name));
	double start = now_s();
	while (worker_wait(self, s->wait_ms)) {
		pthread_mutex_lock(&s->lock);
		if (!s->returns)
			s->first_wait_s = now_s() - start;
		s->returns++;
		pthread_cond_signal(&s->changed);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_lock(&s->lock);
	s->stopping = worker_stopping(self);
	s->ended = true;
	pthread_cond_signal(&s->changed);
	pthread_mutex_unlock(&s->lock);
}

static void seen_init(struct seen *s, int64_t wait_ms)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->changed, NULL);
	s->wait_ms = wait_ms;
}

/* Waits (at most 5 s) until the body has counted n waits; returns the count. */
static int returns_reach(struct seen *s, int n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&s->lock);
	while (s->returns < n && pthread_cond_timedwait(&s->changed, &s->lock, &until) != ETIMEDOUT)
		;
	int got = s->returns;
	pthread_mutex_unlock(&s->lock);
	return got;
}

static struct worker *start(const char *name, struct seen *s)
{
	char err[128] = "";
	struct worker *w = worker_start(name, count_waits, s, err, sizeof(err));
	assert_non_null(w);
	assert_string_equal(err, "");
	return w;
}

/* A wake ends a wait without a deadline; one given before the thread waits is kept. */
static void test_wake_reaches_the_thread(void **state)
{
	(void)state;
	struct seen s;
	seen_init(&s, WORKER_FOREVER);
	struct worker *w = start("queue writer", &s);
	worker_wake(w); /* most likely before the first wait: it must not be lost */
	assert_int_equal(returns_reach(&s, 1), 1);
	worker_wake(w);
	assert_int_equal(returns_reach(&s, 2), 2);
	worker_stop(w);
	assert_true(s.ended);
	assert_int_equal(s.returns, 2); /* a stop is not counted as a wake */
}

/* Without a wake, a wait returns once its deadline has passed, and not before. */
static void test_deadline_ends_a_wait(void **state)
{
	(void)state;
	struct seen s;
	seen_init(&s, 100);
	struct worker *w = start("drop counter", &s);
	assert_true(returns_reach(&s, 2) >= 2);
	worker_stop(w);
	assert_true(s.first_wait_s >= 0.099);
	assert_true(s.first_wait_s < 4.0);
}

/* A stop ends a wait with no deadline, the body sees it, and worker_stop joins it. */
static void test_stop_ends_the_loop(void **state)
{
	(void)state;
	struct seen s;
	seen_init(&s, WORKER_FOREVER);
	struct worker *w = start("domain checker", &s);
	double begun = now_s();
	worker_stop(w);
	assert_true(now_s() - begun < 4.0);
	assert_true(s.ended);
	assert_true(s.stopping);
	assert_int_equal(s.returns, 0);
	worker_stop(NULL); /* nothing started, nothing to stop */
}

/* Several threads are told at once, then joined one by one. */
static void test_ask_stop_then_stop(void **state)
{
	(void)state;
	struct seen s[3];
	struct worker *w[3];
	for (int i = 0; i < 3; i++) {
		seen_init(&s[i], WORKER_FOREVER);
		w[i] = start("delivery worker", &s[i]);
	}
	for (int i = 0; i < 3; i++)
		worker_ask_stop(w[i]);
	for (int i = 0; i < 3; i++) {
		worker_stop(w[i]);
		assert_true(s[i].ended);
	}
}

/* The thread carries its name, as much of it as the kernel keeps (15 bytes). */
static void test_thread_is_named(void **state)
{
	(void)state;
	struct seen s;
	seen_init(&s, WORKER_FOREVER);
	worker_stop(start("log flusher", &s));
	assert_string_equal(s.name, "log flusher");
	seen_init(&s, WORKER_FOREVER);
	worker_stop(start("a name too long to keep", &s));
	assert_string_equal(s.name, "a name too long");
}

/* A thread that cannot be made: no worker, and one line that names it and says why. */
static void test_failed_start_names_the_thread(void **state)
{
	(void)state;
	struct seen s;
	char err[128] = "";
	seen_init(&s, WORKER_FOREVER);
	create_fails = EAGAIN;
	struct worker *w = worker_start("delivery worker", count_waits, &s, err, sizeof(err));
	create_fails = 0;
	assert_null(w);
	assert_string_equal(err,
			    "cannot start the delivery worker: Resource temporarily unavailable");
	assert_int_equal(s.returns, 0);
	assert_false(s.ended); /* the body never ran */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wake_reaches_the_thread),
		cmocka_unit_test(test_deadline_ends_a_wait),
		cmocka_unit_test(test_stop_ends_the_loop),
		cmocka_unit_test(test_ask_stop_then_stop),
		cmocka_unit_test(test_thread_is_named),
		cmocka_unit_test(test_failed_start_names_the_thread),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
