/* The inbound listener's per-address rate limit (smtpd_rate.h): a fixed table of
 * (address, minute, count) slots under one lock. A new address takes its own slot, else one
 * no address used this minute, else the next in turn. */
#include "smtpd_rate.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct rate_slot {
	char ip[INET6_ADDRSTRLEN];
	int64_t minute;
	int count;
};

struct smtpd_rate {
	pthread_mutex_t lock;
	int per_minute;
	int nslots;
	unsigned next; /* the slot taken when every one is in use this minute */
	struct rate_slot *slots;
};

struct smtpd_rate *smtpd_rate_new(int per_minute, int slots)
{
	struct smtpd_rate *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->per_minute = per_minute;
	r->nslots = slots;
	r->slots = xcalloc((size_t)slots, sizeof(*r->slots));
	return r;
}

void smtpd_rate_free(struct smtpd_rate *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->slots);
	free(r);
}

/* ip's slot for minute (under the lock), its count reset when it is a new minute's. */
static struct rate_slot *rate_slot(struct smtpd_rate *r, const char *ip, int64_t minute)
{
	struct rate_slot *free_slot = NULL, *s = NULL;
	for (int i = 0; i < r->nslots && !s; i++) {
		if (r->slots[i].ip[0] && strcmp(r->slots[i].ip, ip) == 0)
			s = &r->slots[i];
		else if (!free_slot && r->slots[i].minute != minute)
			free_slot = &r->slots[i];
	}
	if (!s) {
		s = free_slot ? free_slot : &r->slots[r->next++ % (unsigned)r->nslots];
		snprintf(s->ip, sizeof(s->ip), "%s", ip);
		s->minute = minute;
		s->count = 0;
	}
	if (s->minute != minute) {
		s->minute = minute;
		s->count = 0;
	}
	return s;
}

bool smtpd_rate_allows(struct smtpd_rate *r, const char *ip, int64_t now, int add)
{
	pthread_mutex_lock(&r->lock);
	struct rate_slot *s = rate_slot(r, ip, now / 60);
	s->count += add;
	bool ok = s->count < r->per_minute;
	pthread_mutex_unlock(&r->lock);
	return ok;
}
