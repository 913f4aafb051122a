/* sd_notify through libsystemd for `postern serve` under Type=notify: READY=1 only once
 * start-up is complete, RELOADING=1 around SIGHUP, STOPPING=1 on a stop signal, and
 * WATCHDOG=1 pings while the main loop finds the daemon alive. */
#include "sysd.h"

#include <string.h>
#include <systemd/sd-daemon.h>

#include "log.h"

/* sd_notify says nothing useful when no manager listens (it returns 0); a failure to
 * reach one that does is worth a line, since systemd will then time the service out. */
static void notify(const char *state)
{
	int rc = sd_notify(0, state);
	if (rc < 0)
		log_warn("cannot notify the service manager (%s): %s", state, strerror(-rc));
}

void sysd_ready(void)
{
	notify("READY=1\nSTATUS=serving");
}

void sysd_reloading(void)
{
	notify("RELOADING=1\nSTATUS=reloading");
}

void sysd_stopping(void)
{
	notify("STOPPING=1\nSTATUS=stopping");
}

void sysd_watchdog(void)
{
	notify("WATCHDOG=1");
}

uint64_t sysd_watchdog_interval_ms(void)
{
	uint64_t usec = 0;
	/* 0 = unset or meant for another PID (WATCHDOG_PID), negative = malformed. */
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	uint64_t ms = usec / 2 / 1000;
	return ms ? ms : 1;
}
