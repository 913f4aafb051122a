/* The service manager's side of the daemon's life (sd_notify(3)): ready, reloading,
 * stopping and watchdog pings. Without NOTIFY_SOCKET (not started by systemd) every call
 * does nothing. */
#ifndef POSTERN_SYSD_H
#define POSTERN_SYSD_H

#include <stdint.h>

/* The store is open and every listener bound: systemd may start what depends on us. */
void sysd_ready(void);
/* SIGHUP taken: configuration and certificates are being re-read until sysd_ready. */
void sysd_reloading(void);
/* SIGTERM or SIGINT taken: in-flight work is finishing. */
void sysd_stopping(void);
/* One watchdog ping: the daemon is alive and able to work. */
void sysd_watchdog(void);
/* How often to ping, in milliseconds: half the unit's WatchdogSec, or 0 when the watchdog
 * is off (then the main loop need not wake at all). */
uint64_t sysd_watchdog_interval_ms(void);

#endif
