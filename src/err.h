/* Errors as values. Every rejection Postern gives has one row in the table in err.c:
 * a stable snake_case code, the HTTP status, and a message that says what to do. */
#ifndef POSTERN_ERR_H
#define POSTERN_ERR_H

enum err {
	ERR_OK = 0,
	ERR_INVALID_JSON,
	ERR_INVALID_REQUEST,
	ERR_INVALID_CREDENTIALS,
	ERR_NOT_AUTHENTICATED,
	ERR_CSRF_FAILED,
	ERR_FORBIDDEN,
	ERR_NOT_FOUND,
	ERR_METHOD_NOT_ALLOWED,
	ERR_PAYLOAD_TOO_LARGE,
	ERR_TOO_MANY_ATTEMPTS,
	ERR_STORE_UNAVAILABLE,
	ERR_INTERNAL,
	ERR_COUNT
};

struct err_info {
	const char *code;
	int http_status;
	const char *message;
};

const struct err_info *err_info(enum err e);

#endif
