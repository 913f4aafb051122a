/* The inbound listener's rate limit: reports accepted from each client address in the
 * current minute, in a bounded table (a flood of addresses evicts the oldest entries in
 * turn). In memory, per node; thread-safe; no clock of its own (the caller says now). */
#ifndef POSTERN_SMTPD_RATE_H
#define POSTERN_SMTPD_RATE_H

#include <stdbool.h>
#include <stdint.h>

struct smtpd_rate;

/* A table allowing per_minute reports a minute to each of up to slots addresses. */
struct smtpd_rate *smtpd_rate_new(int per_minute, int slots);
void smtpd_rate_free(struct smtpd_rate *r);
/* True while ip may send another report in the minute of now (seconds); add counts that
 * many accepted ones first (0 to ask only). */
bool smtpd_rate_allows(struct smtpd_rate *r, const char *ip, int64_t now, int add);

#endif
