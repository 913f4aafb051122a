/* Email addresses and domains as Postern compares them (DESIGN.md, "Address semantics"):
 * the domain in lower case as its IDNA A-label, the ASCII local part in lower case.
 * Pure: no I/O. */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#define ADDR_MAX	255 /* 254 characters and NUL */
#define ADDR_DOMAIN_MAX 254 /* 253 characters and NUL */
#define ADDR_LOCAL_MAX	64

/* Normalizes a domain to its lower-case A-label. Returns 0, or -1 with *why set to a
 * sentence a user can act on. */
int addr_domain_normalize(const char *in, char out[ADDR_DOMAIN_MAX], const char **why);
/* Normalizes "Local@Domain" to "local@a-label". Returns 0, or -1 with *why set. */
int addr_normalize(const char *in, char out[ADDR_MAX], const char **why);
/* The domain part of a normalized address. */
const char *addr_domain(const char *normalized);

#endif
