/* Background threads in one shape: start a named thread, wake it, let it sleep with a
 * deadline, stop and join it. The wake is a flag under the worker's own lock, so a wake
 * given while the thread is busy is still there at its next wait; deadlines are measured
 * on the monotonic clock, so a clock set back never stretches a sleep. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

struct worker {
	char name[64];
	void (*run)(void *arg, struct worker *w);
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool woken;
	bool stop;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char shown[16]; /* the kernel keeps 15 bytes of a thread's name */
	snprintf(shown, sizeof(shown), "%.15s", w->name);
	pthread_setname_np(pthread_self(), shown);
	w->run(w->arg, w);
	return NULL;
}

static void worker_free(struct worker *w)
{
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

struct worker *worker_start(const char *name, void (*run)(void *arg, struct worker *w), void *arg,
			    char *err, size_t errlen)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->run = run;
	w->arg = arg;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &attr);
	pthread_condattr_destroy(&attr);
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the %s: %s", name, strerror(rc));
		worker_free(w);
		return NULL;
	}
	return w;
}

void worker_wake(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->woken = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

bool worker_wait(struct worker *w, int64_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	if (ms > 0) {
		until.tv_sec += ms / 1000;
		until.tv_nsec += ms % 1000 * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	int rc = 0;
	while (!w->woken && !w->stop && rc != ETIMEDOUT && ms != 0)
		rc = ms < 0 ? pthread_cond_wait(&w->wake, &w->lock)
			    : pthread_cond_timedwait(&w->wake, &w->lock, &until);
	w->woken = false;
	bool go_on = !w->stop;
	pthread_mutex_unlock(&w->lock);
	return go_on;
}

bool worker_stopping(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	bool stop = w->stop;
	pthread_mutex_unlock(&w->lock);
	return stop;
}

void worker_ask_stop(struct worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void worker_stop(struct worker *w)
{
	if (!w)
		return;
	worker_ask_stop(w);
	pthread_join(w->thread, NULL);
	worker_free(w);
}
