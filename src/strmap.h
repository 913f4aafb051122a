/* A string-keyed hash map holding one 64-bit value per key: open addressing, linear
 * probing, no deletion. Lookups cost the same however many keys there are. Pure. */
#ifndef POSTERN_STRMAP_H
#define POSTERN_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap {
	struct strmap_slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t used;
};

/* The value of key, or NULL when absent. */
uint64_t *strmap_get(const struct strmap *m, const char *key);
/* The value of key, inserted as 0 when absent. The pointer is valid until the next put. */
uint64_t *strmap_put(struct strmap *m, const char *key);
/* Calls fn for every key and value, in no particular order. */
void strmap_each(const struct strmap *m, void (*fn)(void *arg, const char *key, uint64_t value),
		 void *arg);
void strmap_free(struct strmap *m);

#endif
