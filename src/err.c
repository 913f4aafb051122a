/* The error table: the one place where a Postern error becomes a code, a status and a
 * message, and for the SMTP front end a reply code and enhanced status code. Adding an
 * error is one enum value and one row. */
#include "err.h"

#include "util.h"

static const struct err_info err_table[ERR_COUNT] = {
	[ERR_OK] = {"ok", 200, "OK.", 250, "2.0.0"},
	[ERR_INVALID_JSON] = {"invalid_json", 400,
			      "The request body is not valid JSON. Send a JSON object.", 501,
			      "5.5.4"},
	[ERR_INVALID_REQUEST] = {"invalid_request", 400,
				 "The request is missing a field or a field has the wrong form.",
				 554, "5.6.0"},
	[ERR_INVALID_CREDENTIALS] = {"invalid_credentials", 401,
				     "The account, email or password is incorrect.", 535, "5.7.8"},
	[ERR_NOT_AUTHENTICATED] = {"not_authenticated", 401,
				   "Log in first: POST /api/session with your account, email and "
				   "password.",
				   530, "5.7.0"},
	[ERR_CSRF_FAILED] = {"csrf_failed", 403,
			     "Send the X-CSRF-Token header with the csrf_token from your session.",
			     550, "5.7.1"},
	[ERR_FORBIDDEN] = {"forbidden", 403,
			   "Your role does not allow this action. Ask an Admin of your account.",
			   550, "5.7.1"},
	[ERR_NOT_FOUND] = {"not_found", 404, "Nothing exists at this address.", 550, "5.5.0"},
	[ERR_METHOD_NOT_ALLOWED] =
		{"method_not_allowed", 405,
		 "This address does not accept that method; see the Allow header.", 502, "5.5.1"},
	[ERR_PAYLOAD_TOO_LARGE] = {"payload_too_large", 413,
				   "The request body is larger than 10 MiB.", 552, "5.3.4"},
	[ERR_TOO_MANY_ATTEMPTS] =
		{"too_many_attempts", 429,
		 "Too many failed password attempts. Wait as many seconds as the Retry-After "
		 "header says, then try again.",
		 421, "4.7.0"},
	[ERR_STORE_UNAVAILABLE] = {"store_unavailable", 503,
				   "The database is unavailable. Nothing was changed; retry later.",
				   451, "4.3.0"},
	[ERR_INTERNAL] = {"internal_error", 500,
			  "Something went wrong inside Postern. Nothing was changed; retry later.",
			  451, "4.3.0"},
	[ERR_INVALID_API_KEY] = {"invalid_api_key", 401,
				 "The API key is missing, wrong or revoked. Send it as "
				 "'Authorization: Bearer KEY' or in the api_key header.",
				 535, "5.7.8"},
	[ERR_PASSWORD_INCORRECT] = {"password_incorrect", 403,
				    "The password is incorrect. Enter your own login password to "
				    "change this setting.",
				    535, "5.7.8"},
	[ERR_ALREADY_EXISTS] = {"already_exists", 409,
				"This already exists. Use the existing one or choose another.", 550,
				"5.5.0"},
	[ERR_LAST_ADMIN] = {"last_admin", 409,
			    "An account needs at least one Admin. Make another user Admin first.",
			    550, "5.5.0"},
	[ERR_TOKEN_USED] =
		{"token_used", 410,
		 "This verification link was already used. Verify addresses in Mail "
		 "Settings > Authorized sender email ID, or send a new email from there.",
		 550, "5.5.0"},
	[ERR_TOKEN_EXPIRED] = {"token_expired", 410,
			       "This verification link has expired. Send a new verification email "
			       "from Mail Settings > Authorized sender email ID.",
			       550, "5.5.0"},
	[ERR_NO_PENDING_SENDERS] = {"no_pending_senders", 409,
				    "No sender address is waiting for verification, so there is "
				    "nothing to send.",
				    550, "5.5.0"},
	[ERR_INVALID_DOMAIN] = {"invalid_domain", 400,
				"That is not a domain you can send from. Give a registered domain "
				"name like example.com (not an IP address or a public suffix).",
				501, "5.1.7"},
	[ERR_UNSUPPORTED_MEDIA_TYPE] = {"unsupported_media_type", 415,
					"Send the body as JSON, with 'Content-Type: "
					"application/json'.",
					554, "5.6.1"},
	[ERR_ROTATION_PENDING] = {"rotation_pending", 409,
				  "A new DKIM key is already waiting for its DNS record. Publish "
				  "it and check the domain; it takes over once it is found.",
				  550, "5.5.0"},
	[ERR_MALFORMED_REQUEST] =
		{"malformed_request", 400,
		 "The HTTP request is framed ambiguously. Send one Content-Length "
		 "or Transfer-Encoding: chunked, and header names without spaces.",
		 500, "5.5.2"},
	[ERR_RATE_LIMITED] = {"rate_limited", 429,
			      "This was done too recently. Wait for the time in Retry-After and "
			      "try again.",
			      421, "4.7.0"},
	[ERR_BUSY] = {"busy", 503,
		      "Too many password checks are running at once. Nothing was changed; retry "
		      "after the seconds in the Retry-After header.",
		      421, "4.7.0"},
	[ERR_NOT_CANCELLABLE] =
		{"not_cancellable", 409,
		 "This message can no longer be cancelled: it is being sent or is "
		 "done. Only queued, scheduled and deferred messages can be; see its "
		 "status with GET /api/messages/{id}.",
		 550, "5.5.0"},
	[ERR_WEBHOOK_URL_NOT_ALLOWED] =
		{"webhook_url_not_allowed", 400,
		 "This webhook URL points at a loopback, private, link-local or multicast "
		 "address (or its host does not resolve). Use a public http or https URL; an "
		 "operator may allow private ones with [webhooks] allow_private = yes.",
		 550, "5.7.1"},
	[ERR_SENDER_NOT_ALLOWED_FOR_KEY] =
		{"sender_not_allowed_for_key", 403,
		 "This API key may not send from this From address: it is limited to some "
		 "senders and domains. Use an address it lists, or a key without that limit.",
		 550, "5.7.1"},
	[ERR_IP_NOT_ALLOWED] = {"ip_not_allowed", 403,
				"This API key may not be used from this address: it is limited "
				"to some networks (allowed_ips). Use it from one of them.",
				550, "5.7.1"},
	[ERR_INTERACTIVE_ONLY] = {"interactive_only", 403,
				  "Only a person logged in to the panel may do this, not an API "
				  "key. Log in and do it there.",
				  550, "5.7.1"},
	[ERR_OWNER_CONFIRMATION_REQUIRED] =
		{"owner_confirmation_required", 409,
		 "This account's senders are confirmed by their owners alone (sender confirmation "
		 "mode owner): the address itself must open the link mailed to it. Send the link "
		 "again with POST /api/senders/{id}/confirmation-email.",
		 550, "5.5.0"},
	[ERR_NOT_AWAITING_OWNER] = {"not_awaiting_owner", 409,
				    "This sender is not waiting for its owner: it is verified or "
				    "confirmed already, or the account's sender confirmation mode "
				    "is admin (Admins verify alone).",
				    550, "5.5.0"},
	[ERR_SENDER_AUTH_NO_SENDERS] =
		{"sender_auth_no_senders", 403,
		 "Authorized sender email ID is on and no sender address is "
		 "verified, so all outgoing mail is dropped. Add and verify a "
		 "sender under Mail Settings > Authorized sender email ID.",
		 550, "5.7.1"},
	[ERR_DOMAIN_NOT_APPROVED] = {"domain_not_approved", 403,
				     "The From domain is not an approved sending domain. Add it "
				     "under Approved Sending Domains and verify it.",
				     550, "5.7.1"},
	[ERR_DOMAIN_NOT_VERIFIED] = {"domain_not_verified", 403,
				     "The From domain is not verified yet. Publish its DNS records "
				     "(Approved Sending Domains) and check them again.",
				     550, "5.7.1"},
	[ERR_DOMAIN_INACTIVE] = {"domain_inactive", 403,
				 "The From domain is deactivated. Activate it under Approved "
				 "Sending Domains.",
				 550, "5.7.1"},
	[ERR_SENDER_NOT_AUTHORIZED] =
		{"sender_not_authorized", 403,
		 "This From address is not an authorized sender. Add and "
		 "verify this address under Mail Settings > Authorized sender "
		 "email ID.",
		 550, "5.7.1"},
	[ERR_SENDER_PENDING_VERIFICATION] = {"sender_pending_verification", 403,
					     "This From address is waiting for an Admin to verify "
					     "it, under Mail Settings > Authorized sender email ID "
					     "or with the link in the verification email.",
					     550, "5.7.1"},
};

const struct err_info *err_info(enum err e)
{
	if ((unsigned)e >= ARRAY_LEN(err_table) || !err_table[e].code)
		e = ERR_INTERNAL;
	return &err_table[e];
}

void err_smtp(enum err e, int *code, const char **enhanced)
{
	const struct err_info *i = err_info(e);
	*code = i->smtp_code;
	*enhanced = i->smtp_enhanced;
}
