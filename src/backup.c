/* The SQLite backup. The copy is read under one read transaction held on the source from
 * the first step to the last: in WAL mode that snapshot never blocks the daemon's writer,
 * and the backup never starts over because of the daemon's commits (without it, each
 * commit between two steps would restart the copy, and a busy gateway's never ends). */
#include "backup.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STEP_PAGES 1024 /* 4 MB of 4 KB pages per step */

/* Opens the daemon's database for reading only; it must exist. */
static sqlite3 *open_source(const char *db, char *err, size_t errlen)
{
	sqlite3 *h = NULL;
	char *msg = NULL;
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(h, 5000) != SQLITE_OK ||
	    sqlite3_exec(h, "PRAGMA query_only=ON; BEGIN; SELECT count(*) FROM sqlite_schema;",
			 NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", db,
			 msg ? msg
			 : h ? sqlite3_errmsg(h)
			     : "no memory");
		sqlite3_free(msg);
		sqlite3_close(h);
		return NULL;
	}
	return h;
}

static int copy(sqlite3 *src, const char *tmp, char *err, size_t errlen)
{
	sqlite3 *dst = NULL;
	int rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE, NULL);
	sqlite3_backup *b = rc == SQLITE_OK ? sqlite3_backup_init(dst, "main", src, "main") : NULL;
	if (b) {
		do {
			rc = sqlite3_backup_step(b, STEP_PAGES);
			/* A lock held elsewhere is waited out, not spun on. */
			if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
				sqlite3_sleep(10);
		} while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
		sqlite3_backup_finish(b);
	}
	int ok = b && rc == SQLITE_DONE && sqlite3_errcode(dst) == SQLITE_OK;
	if (!ok)
		snprintf(err, errlen, "%s: %s", tmp, dst ? sqlite3_errmsg(dst) : "no memory");
	if (sqlite3_close(dst) != SQLITE_OK && ok) {
		snprintf(err, errlen, "%s: cannot close the copy", tmp);
		ok = 0;
	}
	return ok ? 0 : -1;
}

/* The copy's bytes, then its name, reach the disk before the command says it is done. */
static int sync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* Gives tmp the name to: link refuses an existing name atomically, rename replaces it. */
static int publish(const char *tmp, const char *to, bool replace, char *err, size_t errlen)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", to);
	if (sync_path(tmp, O_RDONLY) < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	int rc = replace ? rename(tmp, to) : link(tmp, to);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s%s", to, strerror(errno),
			 errno == EEXIST ? " (give --force to replace it)" : "");
		return -1;
	}
	if (!replace)
		unlink(tmp);
	sync_path(dirname(dir), O_RDONLY | O_DIRECTORY);
	return 0;
}

int backup_sqlite(const char *db, const char *to, bool replace, char *err, size_t errlen)
{
	if (!replace && access(to, F_OK) == 0) {
		snprintf(err, errlen, "%s exists (give --force to replace it)", to);
		return -1;
	}
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", to) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", to);
		return -1;
	}
	/* mkstemp makes it 0600: the copy holds what the database holds. */
	int fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a file beside %s: %s", to, strerror(errno));
		return -1;
	}
	close(fd);
	sqlite3 *src = open_source(db, err, errlen);
	int rc = src ? copy(src, tmp, err, errlen) : -1;
	sqlite3_close(src); /* ends the read transaction */
	if (rc == 0)
		rc = publish(tmp, to, replace, err, errlen);
	if (rc < 0) {
		unlink(tmp);
		char side[4200];
		snprintf(side, sizeof(side), "%s-journal", tmp);
		unlink(side);
	}
	return rc;
}
