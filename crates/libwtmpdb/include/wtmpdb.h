/* wtmpdb.h: the C interface of libwtmpdb.so.0 (SPDX-License-Identifier: BSD-2-Clause).
 *
 * Source compatible with upstream wtmpdb 0.75's header: the same functions, types and
 * constants. Written for the Rust implementation; libwtmpdb(3) and the README's
 * "C library" section say what each call does.
 *
 * Times are microseconds since the epoch. A db_path of NULL means the system database
 * (through the wtmpdbd daemon when its socket answers, otherwise the file _PATH_WTMPDB);
 * "varlink" means the daemon only; any other string is a database file.
 *
 * On failure a function stores a message in *error, allocated with malloc(3), for the
 * caller to free(3); error may be NULL. Negative values are failures: -1 for a database
 * failure, the negated SQLite result code when the database file cannot be opened, a
 * negative errno value for a failure to reach or use the daemon. See libwtmpdb(3).
 */

#ifndef WTMPDB_H
#define WTMPDB_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define _PATH_WTMPDB "/var/lib/wtmpdb/wtmp.db"

#define _VARLINK_WTMPDB_SOCKET_DIR "/run/wtmpdb"
#define _VARLINK_WTMPDB_SOCKET _VARLINK_WTMPDB_SOCKET_DIR "/socket"

/* Values of the Type column (wtmpdb's own numbering, not utmp's). */
#define EMPTY 0        /* no accounting information */
#define BOOT_TIME 1    /* a system boot; its logout is the shutdown */
#define RUNLEVEL 2     /* a run level change (unused with systemd) */
#define USER_PROCESS 3 /* a user session */

#define USEC_INFINITY ((uint64_t)UINT64_MAX)
#define NSEC_PER_USEC ((uint64_t)1000ULL)
#define USEC_PER_SEC ((uint64_t)1000000ULL)

#ifdef __cplusplus
extern "C" {
#endif

/* Logs in NAME on TTY now (returns the new row's ID), or, when NAME is NULL or empty, logs
   out the newest open session on TTY (returns 0). */
extern int64_t logwtmpdb(const char *db_path, const char *tty, const char *name,
                         const char *host, const char *service, char **error);

/* Adds a row; returns its ID (>= 0). tty, rhost and service may be NULL. */
extern int64_t wtmpdb_login(const char *db_path, int type, const char *user,
                            uint64_t usec_login, const char *tty, const char *rhost,
                            const char *service, char **error);

/* Not in upstream's library (version node WTMPDB_RS_0.1): records a failed login attempt
   of USER as typed (for servers that authenticate outside PAM), where the sessions of
   db_path go: wtmpdbd's RecordFailure, or the root-only file db_path-failed. tty, rhost
   and service may be NULL. Returns the attempt's ID (> 0); failures are negative, as for
   wtmpdb_login. `wtmpdb lastb` lists the attempts. */
#define WTMPDB_HAVE_FAILED_LOGIN 1
extern int64_t wtmpdb_failed_login(const char *db_path, const char *user,
                                   uint64_t usec_time, const char *tty, const char *rhost,
                                   const char *service, char **error);

/* Sets the logout time of row ID; returns 0. */
extern int wtmpdb_logout(const char *db_path, int64_t id, uint64_t usec_logout,
                         char **error);

/* Calls cb_func once per row, newest login first, with argc 8 and the columns ID, Type,
   User, Login, Logout, TTY, RemoteHost, Service as strings (NULL for SQL NULL); the first
   argument is NULL (wtmpdb_read_all) or userdata (wtmpdb_read_all_v2). A non-zero return
   from cb_func stops the reading, which then fails. Returns 0 when every row was read. */
extern int wtmpdb_read_all(const char *db_path,
                           int (*cb_func)(void *unused, int argc, char **argv,
                                          char **azColName),
                           char **error);
extern int wtmpdb_read_all_v2(const char *db_path,
                              int (*cb_func)(void *unused, int argc, char **argv,
                                             char **azColName),
                              void *userdata, char **error);

/* Moves the rows older than DAYS days into an archive beside the database. Returns 0; the
   archive's name (malloc'ed, NULL when nothing moved) and the number of rows moved are
   stored in *wtmpdb_name and *entries when those are not NULL. */
extern int wtmpdb_rotate(const char *db_path, const int days, char **error,
                         char **wtmpdb_name, uint64_t *entries);

/* Returns the login time of the newest boot row, or 0 with *error set. */
extern uint64_t wtmpdb_get_boottime(const char *db_path, char **error);

/* Returns the ID of the newest open row on TTY, -ENOENT when there is none. */
extern int64_t wtmpdb_get_id(const char *db_path, const char *tty, char **error);

/* A timespec in microseconds; USEC_INFINITY when negative or too large. */
extern uint64_t wtmpdb_timespec2usec(const struct timespec ts);

#ifdef __cplusplus
}
#endif

#endif /* WTMPDB_H */
