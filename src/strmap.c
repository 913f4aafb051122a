/* The hash map behind policy snapshots and drop counters. Keys are copied in. */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct strmap_slot {
	char *key; /* NULL marks an empty slot */
	uint64_t value;
};

/* FNV-1a: keys are short and come from the account itself, not from strangers. */
static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct strmap_slot *find_slot(const struct strmap *m, const char *key)
{
	size_t mask = m->cap - 1;
	for (size_t i = hash(key) & mask;; i = (i + 1) & mask)
		if (!m->slots[i].key || strcmp(m->slots[i].key, key) == 0)
			return &m->slots[i];
}

uint64_t *strmap_get(const struct strmap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	struct strmap_slot *s = find_slot(m, key);
	return s->key ? &s->value : NULL;
}

static void grow(struct strmap *m)
{
	struct strmap bigger = {.cap = m->cap ? m->cap * 2 : 16, .used = m->used};
	bigger.slots = xcalloc(bigger.cap, sizeof(struct strmap_slot));
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			*find_slot(&bigger, m->slots[i].key) = m->slots[i];
	free(m->slots);
	*m = bigger;
}

uint64_t *strmap_put(struct strmap *m, const char *key)
{
	if ((m->used + 1) * 4 > m->cap * 3) /* keep the load under 3/4 */
		grow(m);
	struct strmap_slot *s = find_slot(m, key);
	if (!s->key) {
		s->key = xstrdup(key);
		s->value = 0;
		m->used++;
	}
	return &s->value;
}

void strmap_each(const struct strmap *m, void (*fn)(void *arg, const char *key, uint64_t value),
		 void *arg)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			fn(arg, m->slots[i].key, m->slots[i].value);
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}
