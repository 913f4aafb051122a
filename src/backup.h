/* postern backup: a consistent copy of a live SQLite store, taken while the daemon keeps
 * writing. PostgreSQL has pg_dump for this. */
#ifndef POSTERN_BACKUP_H
#define POSTERN_BACKUP_H

#include <stdbool.h>
#include <stddef.h>

/* Copies the SQLite database db to `to` through SQLite's online backup API: into a file
 * beside `to`, then renamed onto it, so `to` is never a half-made copy. An existing `to` is
 * replaced only when replace; otherwise that is an error. 0, or -1 with err set. */
int backup_sqlite(const char *db, const char *to, bool replace, char *err, size_t errlen);

#endif
