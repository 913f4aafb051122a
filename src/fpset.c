/* Fingerprint sets for policy snapshots: open addressing with linear probing over 16-byte
 * slots, no deletion (a snapshot is rebuilt, never edited). Large tables are mapped
 * directly and advised onto huge pages: a lookup in a million senders then costs one
 * cache miss and rarely a TLB miss. */
#include "fpset.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util.h"

#define FLAG	  1ull
#define NONEMPTY  2ull	     /* set in b, so no fingerprint is all zero */
#define MAP_BYTES (4u << 20) /* tables this large are mapped, not allocated */

static unsigned char key[crypto_shorthash_siphashx24_KEYBYTES];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void key_init(void)
{
	if (sodium_init() < 0)
		abort(); /* libsodium cannot run at all: nothing else could either */
	randombytes_buf(key, sizeof(key));
}

void fpset_fingerprint(const char *s, struct fpset_fp *fp)
{
	unsigned char out[crypto_shorthash_siphashx24_BYTES];
	pthread_once(&key_once, key_init);
	crypto_shorthash_siphashx24(out, (const unsigned char *)s, strlen(s), key);
	memcpy(&fp->a, out, 8);
	memcpy(&fp->b, out + 8, 8);
	fp->b = (fp->b & ~FLAG) | NONEMPTY;
}

static struct fpset_fp *probe(const struct fpset *set, const struct fpset_fp *fp)
{
	size_t mask = set->cap - 1;
	for (size_t i = fp->a & mask;; i = (i + 1) & mask) {
		struct fpset_fp *s = &set->slots[i];
		if ((s->b & ~FLAG) == fp->b ? s->a == fp->a : s->b == 0)
			return s;
	}
}

int fpset_find(const struct fpset *set, const struct fpset_fp *fp)
{
	if (!set->cap)
		return -1;
	const struct fpset_fp *s = probe(set, fp);
	return s->b ? (int)(s->b & FLAG) : -1;
}

void fpset_prefetch(const struct fpset *set, const struct fpset_fp *fp)
{
	if (set->cap)
		__builtin_prefetch(&set->slots[fp->a & (set->cap - 1)]);
}

static void release(struct fpset_fp *slots, size_t cap, bool mapped)
{
	if (mapped)
		munmap(slots, cap * sizeof(*slots));
	else
		free(slots);
}

/* Zeroed slots; a mapping's pages arrive zeroed and are only touched when used. */
static struct fpset_fp *allocate(size_t cap, bool *mapped)
{
	size_t bytes = cap * sizeof(struct fpset_fp);
	*mapped = bytes >= MAP_BYTES;
	if (!*mapped)
		return xcalloc(cap, sizeof(struct fpset_fp));
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		abort(); /* as xcalloc does: out of memory is fatal */
	madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

static void grow(struct fpset *set)
{
	struct fpset bigger = {.cap = set->cap ? set->cap * 2 : 16, .used = set->used};
	bigger.slots = allocate(bigger.cap, &bigger.mapped);
	for (size_t i = 0; i < set->cap; i++)
		if (set->slots[i].b)
			*probe(&bigger,
			       &(struct fpset_fp){set->slots[i].a, set->slots[i].b & ~FLAG}) =
				set->slots[i];
	release(set->slots, set->cap, set->mapped);
	*set = bigger;
}

bool fpset_add(struct fpset *set, const struct fpset_fp *fp, bool flag)
{
	if ((set->used + 1) * 4 > set->cap * 3) /* keep the load under 3/4 */
		grow(set);
	struct fpset_fp *s = probe(set, fp);
	bool added = s->b == 0;
	if (added) {
		*s = *fp;
		set->used++;
	}
	if (flag)
		s->b |= FLAG;
	return added;
}

void fpset_free(struct fpset *set)
{
	if (set->cap)
		release(set->slots, set->cap, set->mapped);
	memset(set, 0, sizeof(*set));
}
