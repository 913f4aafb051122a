/* libmicrohttpd with epoll and a thread pool. Each request gets a struct http_request,
 * freed when libmicrohttpd reports it complete, which is also where its log line is
 * written, so a request is logged exactly once with its final status and duration. */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "net.h"
#include "util.h"

struct http_server {
	struct MHD_Daemon *daemon;
	http_handler fn;
	void *arg;
	atomic_int in_flight;
	int port;
	struct net_list proxies; /* whose X-Forwarded-For names the client */
};

static void peer_ip(struct MHD_Connection *conn, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	util_copy(out, n, "-");
	if (!ci || !ci->client_addr)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
			  (socklen_t)n);
}

/* Every X-Forwarded-For line of a request, in order, joined as one list: a proxy may add
 * a line of its own after the client's, and only the whole list read from its end tells
 * which hops a trusted proxy vouches for. */
struct forwarded {
	char *text; /* malloc'd; NULL without a line */
	size_t len;
};

static enum MHD_Result forwarded_line(void *arg, enum MHD_ValueKind kind, const char *key,
				      const char *value)
{
	struct forwarded *f = arg;
	(void)kind;
	if (strcasecmp(key, "X-Forwarded-For") != 0 || !value)
		return MHD_YES;
	/* A request's headers fit in MHD's connection memory, so this stays bounded. */
	size_t n = strlen(value);
	f->text = xrealloc(f->text, f->len + n + 2);
	if (f->len)
		f->text[f->len++] = ',';
	memcpy(f->text + f->len, value, n + 1);
	f->len += n;
	return MHD_YES;
}

/* The client: the peer, or behind a trusted proxy the address it says it was reached from. */
static void client_ip(struct http_server *srv, struct MHD_Connection *conn, char *out, size_t n)
{
	char peer[INET6_ADDRSTRLEN];
	peer_ip(conn, peer, sizeof(peer));
	if (!srv->proxies.n) {
		util_copy(out, n, peer);
		return;
	}
	struct forwarded f = {0};
	MHD_get_connection_values(conn, MHD_HEADER_KIND, forwarded_line, &f);
	net_client(&srv->proxies, peer, f.text, out, n);
	free(f.text);
}

static struct http_request *request_new(struct http_server *srv, struct MHD_Connection *conn,
					const char *method, const char *url)
{
	struct http_request *req = xcalloc(1, sizeof(*req));

	req->conn = conn;
	req->method = method;
	req->path = url;
	req->started = util_monotonic();
	client_ip(srv, conn, req->ip, sizeof(req->ip));
	auth_unique_hex(req->id, (sizeof(req->id) - 1) / 2);
	atomic_fetch_add(&srv->in_flight, 1);
	return req;
}

static int body_append(struct http_request *req, const char *data, size_t n)
{
	if (req->too_large)
		return 0;
	if (n > HTTP_BODY_MAX - req->body_len) {
		req->too_large = true;
		free(req->body);
		req->body = NULL;
		req->body_len = req->body_cap = 0;
		return -1;
	}
	if (req->body_len + n + 1 > req->body_cap) {
		size_t cap = req->body_cap ? req->body_cap : 4096;
		while (cap < req->body_len + n + 1)
			cap *= 2;
		req->body = xrealloc(req->body, cap);
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, n);
	req->body_len += n;
	req->body[req->body_len] = '\0';
	return 0;
}

static bool declared_too_large(struct MHD_Connection *conn)
{
	const char *cl =
		MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	return cl && strtoull(cl, NULL, 10) > HTTP_BODY_MAX;
}

/* What the header walk found: a proxy in front may read these framings differently from
 * libmicrohttpd, which is how requests are smuggled past it, so they are refused. */
struct framing {
	int content_lengths;
	bool transfer_encoding;
	const char *bad;
};

/* An RFC 9110 token character: what a header name is made of. */
static bool token_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	struct framing *f = cls;
	(void)kind;
	for (const char *p = key; *p; p++)
		if (!token_char(*p)) {
			f->bad = "A header name contains a space or a character that is not "
				 "allowed; write 'Name: value'.";
			return MHD_NO;
		}
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		f->content_lengths++;
		if (!value || !*value || strspn(value, "0123456789") != strlen(value))
			f->bad = "Content-Length must be a decimal number.";
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		if (f->transfer_encoding || !value || strcasecmp(value, "chunked") != 0)
			f->bad = "The only Transfer-Encoding accepted is 'chunked', given once.";
		f->transfer_encoding = true;
	}
	return f->bad ? MHD_NO : MHD_YES;
}

/* NULL when the request's body framing is unambiguous, else what is wrong with it. */
static const char *framing_problem(struct MHD_Connection *conn)
{
	struct framing f = {0};
	MHD_get_connection_values(conn, MHD_HEADER_KIND, check_header, &f);
	if (!f.bad && f.content_lengths > 1)
		f.bad = "Send one Content-Length header, not several.";
	if (!f.bad && f.content_lengths && f.transfer_encoding)
		f.bad = "Send either Content-Length or Transfer-Encoding: chunked, not both.";
	return f.bad;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;
	(void)version;

	if (!req) {
		req = request_new(srv, conn, method, url);
		*con_cls = req;
		/* A body that is framed ambiguously, or announced as too large, is refused
		 * before a byte of it is read. */
		req->malformed = framing_problem(conn);
		req->too_large = !req->malformed && declared_too_large(conn);
		if (req->malformed || req->too_large)
			srv->fn(srv->arg, req);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		/* A chunked body that outgrows the limit is cut off: there is no
		 * point reading an unbounded stream only to refuse it. */
		if (body_append(req, upload_data, n) < 0)
			return MHD_NO;
		return MHD_YES;
	}
	if (req->resumed && req->resume_fn) {
		void (*fn)(struct http_request *) = req->resume_fn;
		req->resume_fn = NULL;
		fn(req);
	} else if (!req->answered && !req->resume_fn) {
		srv->fn(srv->arg, req);
	}
	return MHD_YES;
}

void http_suspend(struct http_request *req, void (*fn)(struct http_request *req), void *user)
{
	req->resume_fn = fn;
	req->user = user;
	MHD_suspend_connection(req->conn);
}

void http_resume(struct http_request *req)
{
	req->resumed = true;
	MHD_resume_connection(req->conn);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;
	(void)conn;

	if (!req)
		return;
	double ms = (util_monotonic() - req->started) * 1000.0;
	if (req->answered)
		log_info("req=%s %s %s %d %.1fms account=%lld ip=%s", req->id, req->method,
			 req->log_path ? req->log_path : req->path, req->status, ms,
			 (long long)req->account_id, req->ip);
	else
		log_info("req=%s %s %s aborted(%d) %.1fms ip=%s", req->id, req->method,
			 req->log_path ? req->log_path : req->path, (int)toe, ms, req->ip);
	free(req->body);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}

void http_respond(struct http_request *req, int status, const char *content_type, char *body,
		  size_t len, const char *const *headers)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body ? body : (char *)"",
								 body ? MHD_RESPMEM_MUST_FREE
								      : MHD_RESPMEM_PERSISTENT);
	if (!r)
		fatal("cannot create HTTP response");
	if (content_type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(r, "X-Request-Id", req->id);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	for (int i = 0; headers && headers[i]; i += 2)
		MHD_add_response_header(r, headers[i], headers[i + 1]);
	req->status = status;
	req->answered = true;
	if (MHD_queue_response(req->conn, (unsigned)status, r) != MHD_YES)
		log_warn("req=%s could not queue the response", req->id);
	MHD_destroy_response(r);
}

const char *http_header(struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_cookie(struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

const char *http_query(struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* Resolves "host:port" (IPv6 in brackets) to a socket address. */
static int resolve_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
			  char *err, size_t errlen)
{
	char host[128];
	const char *colon = strrchr(listen, ':');
	if (!colon || util_copy(host, sizeof(host), listen) < 0) {
		snprintf(err, errlen, "listen address '%s' is not HOST:PORT", listen);
		return -1;
	}
	host[colon - listen] = '\0';
	char *h = host;
	if (h[0] == '[') {
		h++;
		h[strcspn(h, "]")] = '\0';
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(h, colon + 1, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "cannot resolve listen address '%s': %s", listen,
			 gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

struct http_server *http_start(const char *listen, int threads, const char *trusted_proxies,
			       http_handler fn, void *arg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct net_list proxies;
	char bad[64];

	if (resolve_listen(listen, &ss, &sslen, err, errlen) < 0)
		return NULL;
	if (net_parse_list(trusted_proxies, &proxies, bad, sizeof(bad)) < 0) {
		snprintf(err, errlen, "trusted proxy '%s' is not an address or network", bad);
		return NULL;
	}
	struct http_server *srv = xcalloc(1, sizeof(*srv));
	srv->proxies = proxies;
	srv->fn = fn;
	srv->arg = arg;
	atomic_init(&srv->in_flight, 0);

	/* Suspend/resume lets a send wait for its commit without holding a thread. */
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
			 MHD_ALLOW_SUSPEND_RESUME;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
		MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)64 * 1024,
		/* Last: one thread is the daemon's own, without a pool (libmicrohttpd warns
		 * about a pool of 0 or 1), so the list ends before the option. */
		threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (unsigned)threads,
		MHD_OPTION_END);
	if (!srv->daemon) {
		snprintf(err, errlen, "cannot listen on %s (address in use or not allowed)",
			 listen);
		free(srv);
		return NULL;
	}
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = di ? di->port : 0;
	return srv;
}

int http_port(const struct http_server *srv)
{
	return srv->port;
}

void http_stop(struct http_server *srv)
{
	if (!srv)
		return;
	int fd = MHD_quiesce_daemon(srv->daemon);
	if (fd >= 0)
		close(fd);
	/* In-flight requests get up to ten seconds to finish and be answered. */
	for (int i = 0; i < 1000 && atomic_load(&srv->in_flight) > 0; i++)
		usleep(10 * 1000);
	if (atomic_load(&srv->in_flight) > 0)
		log_warn("http: stopping with %d requests still in flight",
			 atomic_load(&srv->in_flight));
	MHD_stop_daemon(srv->daemon);
	free(srv);
}
