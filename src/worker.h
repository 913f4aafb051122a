/* Background threads in one shape: a named thread runs a loop body that sleeps in
 * worker_wait until it is woken, its deadline passes or it is asked to stop. Every module
 * with a thread of its own (the queue's writer, the delivery workers, the drop counter, the
 * domain checker, the log flusher, the SQLite checkpointer, the PostgreSQL listener) starts
 * it here, and a thread that cannot start is an error its caller must stop on. */
#ifndef POSTERN_WORKER_H
#define POSTERN_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;

/* No deadline: worker_wait returns on a wake or a stop only. */
#define WORKER_FOREVER (-1)

/* Starts a thread that calls run(arg, w) once; run returns when worker_wait says to stop.
 * name says what the thread is ("queue writer"): the thread carries it (its first 15
 * bytes, as `top -H` shows them) and a failure names it. NULL with err set to
 * "cannot start the <name>: <why>" when the thread cannot be made. */
struct worker *worker_start(const char *name, void (*run)(void *arg, struct worker *w), void *arg,
			    char *err, size_t errlen);
/* Ends the thread's current or next worker_wait at once. A wake is kept until that wait
 * takes it, so one given while the thread is busy is never lost. */
void worker_wake(struct worker *w);
/* Sleeps until a wake, ms milliseconds (monotonic clock; WORKER_FOREVER: no deadline) or a
 * stop. Returns false once the worker is stopping: the loop should end. */
bool worker_wait(struct worker *w, int64_t ms);
/* True once the worker was asked to stop: a long pass checks it between two steps. */
bool worker_stopping(struct worker *w);
/* Asks the thread to stop without waiting for it, so several can wind down together. */
void worker_ask_stop(struct worker *w);
/* Asks the thread to stop, waits for run to return and frees w. w may be NULL. */
void worker_stop(struct worker *w);

#endif
