/* The SMTP server: libevent loops, one per thread, with OpenSSL for STARTTLS and implicit
 * TLS, driving the pure protocol of smtp_proto.c; submission calls the same key and send
 * services as the HTTP API, the return path's inbound listener stores reports (bounces.h). */
#ifndef POSTERN_SMTPD_H
#define POSTERN_SMTPD_H

#include <stddef.h>

#include "bounces.h"
#include "config.h"
#include "dkimkey.h"
#include "drops.h"
#include "policy_cache.h"
#include "queue.h"
#include "store.h"

struct smtpd;

/* Listens on [smtp] listen and tls_listen and [bounces] listen (at least one is set) and
 * starts the loops. The inbound listener's return paths are checked with the VERP key made
 * from master; bounces is woken for each report stored. NULL with one line in err when a
 * certificate cannot be loaded, an address cannot be bound or a thread cannot start. */
struct smtpd *smtpd_start(const struct config *cfg, struct store *store,
			  struct policy_cache *policies, struct drops *drops, struct queue *queue,
			  const unsigned char master[DKIMKEY_MASTER_LEN], struct bounces *bounces,
			  char *err, size_t errlen);
/* SIGHUP: reads the certificate and key again; new connections use them. On failure the
 * old ones stay and the error is logged. */
void smtpd_reload(struct smtpd *d);
/* Stops accepting, lets messages waiting for their commit get it, then ends the loops and
 * every session. Before queue_stop. d may be NULL. */
void smtpd_stop(struct smtpd *d);

#endif
