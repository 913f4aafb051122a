/* An API key's own scope on the send path (issue 19), pure: whether a key may send from an
 * address and be used from a client. Both are asked on every request, so the policy cache
 * prepares each key it reads (keyscope_prepare) and a question costs a few comparisons. */
#ifndef POSTERN_KEYSCOPE_H
#define POSTERN_KEYSCOPE_H

#include <stdbool.h>

#include "err.h"
#include "store.h"

/* Fills k->quick from k's senders, domains and allowed_ips (as keys_create wrote them);
 * left not ready when they cannot be read so, and then asked from the text. */
void keyscope_prepare(struct store_apikey *k);
/* Whether the comma-separated list holds item, exactly. */
bool keyscope_list_has(const char *list, const char *item);
/* Whether k may send from address (normalized): always when it lists no senders and no
 * domains; else when address is one it lists, or is on a domain it lists (that exact
 * domain: a subdomain is not covered, as for sending domains). */
bool keyscope_sender_allowed(const struct store_apikey *k, const char *address);
/* Whether k may be used by the client ip (text): ERR_OK when it lists no allowed_ips or one
 * holds ip, else ERR_IP_NOT_ALLOWED. */
enum err keyscope_ip_allowed(const struct store_apikey *k, const char *ip);

#endif
