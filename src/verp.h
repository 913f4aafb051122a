/* VERP return paths: every message leaves from b-<message id>-<tag>@<bounce domain>, where
 * the tag is a short keyed MAC over the id, so a report to a forged or mistyped address is
 * refused at RCPT without a lookup. Pure: no I/O. */
#ifndef POSTERN_VERP_H
#define POSTERN_VERP_H

#include <stdbool.h>
#include <stddef.h>

#include "dkimkey.h"

#define VERP_KEY_LEN 32
#define VERP_TAG_LEN 10 /* lower-case hex digits: 40 bits of a keyed BLAKE2b */
#define VERP_UID_MAX 41 /* a message id: 1 to 40 lower-case hex digits, and NUL */

/* The tag key, derived from the DKIM master key, which every node shares and the store
 * vouches for (dkimkey_master_verify): a second secret to distribute would buy nothing. */
void verp_key(const unsigned char master[DKIMKEY_MASTER_LEN], unsigned char key[VERP_KEY_LEN]);
/* "b-<uid>-<tag>@<domain>" in out (n bytes, ADDR_MAX hold it). -1 when uid is not 1 to 40
 * lower-case hex digits or the address does not fit. */
int verp_address(const unsigned char key[VERP_KEY_LEN], const char *domain, const char *uid,
		 char *out, size_t n);
/* True, with the message id in uid, when address is a return path of domain made with key:
 * the local part and the domain compared without regard to case (some MTAs change it),
 * the tag in constant time. */
bool verp_parse(const unsigned char key[VERP_KEY_LEN], const char *domain, const char *address,
		char uid[VERP_UID_MAX]);

#endif
