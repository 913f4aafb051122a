/* The HTTP adapter over libmicrohttpd: collects a request (headers, body up to a limit),
 * hands it to one handler, sends what the handler answers, and logs one line per request.
 * It knows nothing of routes or JSON. */
#ifndef POSTERN_HTTP_H
#define POSTERN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_BODY_MAX (10u * 1024 * 1024)

struct MHD_Connection;

struct http_request {
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	char *body;
	size_t body_len;
	size_t body_cap;
	bool too_large;	       /* the body was over HTTP_BODY_MAX; nothing of it is kept */
	const char *malformed; /* why the body's framing is refused; NULL when it is sound */
	bool answered;
	char ip[64];
	char id[17];
	double started;
	int status;
	int64_t account_id;   /* for the log line, once known */
	const char *log_path; /* logged instead of path when it holds a secret */
	/* While suspended, resume_fn runs (on an HTTP thread) once http_resume is called;
	 * user is the suspender's state. */
	void (*resume_fn)(struct http_request *req);
	void *user;
	bool resumed;
};

/* Called once per complete request; it must call http_respond exactly once. */
typedef void (*http_handler)(void *arg, struct http_request *req);

struct http_server;

/* trusted_proxies: the proxies whose X-Forwarded-For names the client (see net.h); a
 * request's ip is that client. */
struct http_server *http_start(const char *listen, int threads, const char *trusted_proxies,
			       http_handler fn, void *arg, char *err, size_t errlen);
/* Stops accepting, lets in-flight requests finish (up to a bound), then stops. */
void http_stop(struct http_server *srv);
/* The port actually bound (useful when listening on port 0). */
int http_port(const struct http_server *srv);

/* Sends the answer. body is malloc'd and taken over (may be NULL). headers is a
 * NULL-terminated list of name, value pairs (may be NULL). */
void http_respond(struct http_request *req, int status, const char *content_type, char *body,
		  size_t len, const char *const *headers);
/* Parks the request without answering, holding no thread: the handler returns, and fn(req)
 * runs after http_resume, which may be called from any thread (even before the handler
 * has returned). fn must answer. */
void http_suspend(struct http_request *req, void (*fn)(struct http_request *req), void *user);
void http_resume(struct http_request *req);
const char *http_header(struct http_request *req, const char *name);
const char *http_cookie(struct http_request *req, const char *name);
const char *http_query(struct http_request *req, const char *name);

#endif
