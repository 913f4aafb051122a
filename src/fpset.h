/* A set of strings kept as keyed 128-bit fingerprints, each with one flag bit: the senders
 * of a policy snapshot. No string is stored, so a slot is 16 bytes and a lookup touches one
 * cache line; a million senders fit in 32 MB. */
#ifndef POSTERN_FPSET_H
#define POSTERN_FPSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fpset_fp {
	uint64_t a; /* picks the slot */
	uint64_t b; /* the rest of the fingerprint; bit 0 holds the flag in a slot */
};

struct fpset {
	struct fpset_fp *slots; /* cap slots; a = b = 0 marks an empty one */
	size_t cap;		/* 0 or a power of two */
	size_t used;
	bool mapped; /* slots came from mmap (large tables, on huge pages where possible) */
};

/* The fingerprint of s under this process's random key (SipHash-2-4, 128 bits): strings
 * with equal fingerprints are taken as equal; finding two needs the key, and chance alone
 * makes one in 2^127. */
void fpset_fingerprint(const char *s, struct fpset_fp *fp);
/* Adds fp; its flag becomes flag OR the flag it had. Returns true when fp was new. */
bool fpset_add(struct fpset *set, const struct fpset_fp *fp, bool flag);
/* -1 when fp is absent, else its flag (0 or 1). */
int fpset_find(const struct fpset *set, const struct fpset_fp *fp);
/* Starts loading fp's slot into the cache, so a lookup can overlap other work. */
void fpset_prefetch(const struct fpset *set, const struct fpset_fp *fp);
void fpset_free(struct fpset *set);

#endif
