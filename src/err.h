/* Errors as values. Every rejection Postern gives has one row in the table in err.c:
 * a stable snake_case code, the HTTP status, a message that says what to do, and the SMTP
 * reply codes. */
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
	ERR_INVALID_API_KEY,
	ERR_PASSWORD_INCORRECT,
	ERR_ALREADY_EXISTS,
	ERR_LAST_ADMIN,
	ERR_TOKEN_USED,
	ERR_TOKEN_EXPIRED,
	ERR_NO_PENDING_SENDERS,
	ERR_INVALID_DOMAIN,
	ERR_UNSUPPORTED_MEDIA_TYPE,
	ERR_ROTATION_PENDING,
	ERR_MALFORMED_REQUEST,
	ERR_RATE_LIMITED,
	ERR_BUSY,
	ERR_NOT_CANCELLABLE,
	ERR_WEBHOOK_URL_NOT_ALLOWED,
	ERR_SENDER_NOT_ALLOWED_FOR_KEY, /* a scoped key, From outside its senders and domains */
	ERR_IP_NOT_ALLOWED,		/* a key used from outside its allowed_ips */
	ERR_INTERACTIVE_ONLY,		/* an action a manage key may not take: people only */
	/* An Admin's verification where only owners confirm; an owner's link asked for a
	 * sender that needs none. */
	ERR_OWNER_CONFIRMATION_REQUIRED,
	ERR_NOT_AWAITING_OWNER,
	/* The sender policy's refusals, in the order DESIGN.md checks them. */
	ERR_SENDER_AUTH_NO_SENDERS,
	ERR_DOMAIN_NOT_APPROVED,
	ERR_DOMAIN_NOT_VERIFIED,
	ERR_DOMAIN_INACTIVE,
	ERR_SENDER_NOT_AUTHORIZED,
	ERR_SENDER_PENDING_VERIFICATION,
	ERR_COUNT
};

struct err_info {
	const char *code;
	int http_status;
	const char *message;
	int smtp_code;		   /* SMTP's reply code */
	const char *smtp_enhanced; /* and its enhanced status code (RFC 3463) */
};

const struct err_info *err_info(enum err e);
/* The SMTP reply code and enhanced status code for e. */
void err_smtp(enum err e, int *code, const char **enhanced);

#endif
