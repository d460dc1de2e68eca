/* Calls every function of libwtmpdb.so.0 through the installed <wtmpdb.h> only.
 *
 *   every-symbol DB
 *
 * DB is a database file prepared by the caller (tests/c_abi.rs): it may hold a row whose
 * ID is beyond 2^31, so the next ID is too. Prints one line per check ("ok" / "FAIL") and
 * exits with the number of failures. Every error string is freed (the test runs it under
 * valgrind-free conditions; a double free or a non-malloc'ed string aborts in glibc). */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wtmpdb.h>

static int failures;

static void check(int ok, const char *what, const char *detail)
{
    printf("%s %s%s%s\n", ok ? "ok" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
    if (!ok)
        failures++;
}

/* Checks that err holds a message and frees it. */
static void check_error(char **err, const char *what)
{
    check(*err != NULL && strlen(*err) > 0, what, *err);
    free(*err);
    *err = NULL;
}

struct seen {
    int rows;
    int stop_after;
    int bad_shape;
    int64_t first_id;
    long long last_login;
    int out_of_order;
    int null_logout;
};

static int count_rows(void *data, int argc, char **argv, char **names)
{
    struct seen *s = data;
    static const char *expected[8] = {"ID", "Type", "User", "Login",
                                      "Logout", "TTY", "RemoteHost", "Service"};
    if (argc != 8)
        s->bad_shape = 1;
    for (int i = 0; i < argc && i < 8; i++)
        if (names[i] == NULL || strcmp(names[i], expected[i]) != 0)
            s->bad_shape = 1;
    if (argv[0] == NULL || argv[2] == NULL || argv[3] == NULL)
        s->bad_shape = 1;
    long long login = argv[3] ? strtoll(argv[3], NULL, 10) : 0;
    if (s->rows == 0)
        s->first_id = argv[0] ? strtoll(argv[0], NULL, 10) : -1;
    else if (login > s->last_login)
        s->out_of_order = 1;
    s->last_login = login;
    if (argv[4] == NULL)
        s->null_logout++;
    s->rows++;
    return s->stop_after > 0 && s->rows >= s->stop_after;
}

static int null_data;

static int v1_callback(void *unused, int argc, char **argv, char **names)
{
    (void)argc;
    (void)argv;
    (void)names;
    if (unused != NULL)
        null_data = 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: every-symbol DB\n");
        return 2;
    }
    const char *db = argv[1];
    char *err = NULL;
    char msg[256];

    /* Constants of the header. */
    check(USER_PROCESS == 3 && BOOT_TIME == 1 && RUNLEVEL == 2 && EMPTY == 0, "type constants", NULL);
    check(USEC_INFINITY == UINT64_MAX && USEC_PER_SEC == 1000000 && NSEC_PER_USEC == 1000,
          "time constants", NULL);
    check(strcmp(_PATH_WTMPDB, "/var/lib/wtmpdb/wtmp.db") == 0, "_PATH_WTMPDB", _PATH_WTMPDB);
    check(strcmp(_VARLINK_WTMPDB_SOCKET, "/run/wtmpdb/socket") == 0, "socket path", NULL);

    /* wtmpdb_timespec2usec */
    struct timespec ts = {.tv_sec = 1, .tv_nsec = 999};
    check(wtmpdb_timespec2usec(ts) == 1000000, "timespec2usec 1 s", NULL);
    ts.tv_sec = -1;
    check(wtmpdb_timespec2usec(ts) == USEC_INFINITY, "timespec2usec negative", NULL);
    ts.tv_sec = INT64_MAX;
    check(wtmpdb_timespec2usec(ts) == USEC_INFINITY, "timespec2usec overflow", NULL);
    ts.tv_sec = 5000000000LL; /* 2128 */
    ts.tv_nsec = 2000;
    check(wtmpdb_timespec2usec(ts) == 5000000000000002ULL, "timespec2usec after 2106", NULL);

    /* A login after 2106 with hostile strings; NULL items. The returned ID follows the
       caller's row beyond 2^31. */
    const uint64_t t2128 = 5000000000ULL * USEC_PER_SEC;
    char long_host[5001];
    memset(long_host, 'h', sizeof long_host - 1);
    long_host[sizeof long_host - 1] = '\0';
    int64_t id = wtmpdb_login(db, USER_PROCESS, "m\xc3\xa4ll\xff\x1b[31m\"'; DROP TABLE wtmp;--",
                              t2128, "/dev/pts/7", long_host, "svc\n", &err);
    snprintf(msg, sizeof msg, "%lld", (long long)id);
    check(id > INT32_MAX, "login returns an ID beyond 2^31", msg);
    check(err == NULL, "no error on success", err);
    int64_t id_nulls = wtmpdb_login(db, USER_PROCESS, "nulls", t2128 + 1, NULL, NULL, NULL, NULL);
    check(id_nulls == id + 1, "login with NULL items and NULL error", NULL);

    /* Failures: a NULL user, a time beyond int64, an unwritable database. */
    check(wtmpdb_login(db, USER_PROCESS, NULL, 1, "tty1", NULL, NULL, &err) == -1, "NULL user", NULL);
    check_error(&err, "NULL user: message");
    check(wtmpdb_login(db, USER_PROCESS, "u", UINT64_MAX, "tty1", NULL, NULL, &err) == -1,
          "login time beyond int64", NULL);
    check_error(&err, "login time beyond int64: message");
    check(wtmpdb_login("/proc/no/such/dir/w.db", USER_PROCESS, "u", 1, "tty1", NULL, NULL, &err) < 0,
          "unwritable database", NULL);
    check_error(&err, "unwritable database: message");
    check(wtmpdb_login("/proc/no/such/dir/w.db", USER_PROCESS, "u", 1, "tty1", NULL, NULL, NULL) < 0,
          "unwritable database, NULL error", NULL);

    /* wtmpdb_get_id: by the stored tty, with or without /dev/; unknown tty. */
    check(wtmpdb_get_id(db, "pts/7", &err) == id, "get_id pts/7", err);
    check(wtmpdb_get_id(db, "/dev/pts/7", &err) == id, "get_id /dev/pts/7", err);
    check(wtmpdb_get_id(db, "pts/99", &err) == -ENOENT, "get_id unknown tty is -ENOENT", NULL);
    check_error(&err, "get_id unknown tty: message");
    check(wtmpdb_get_id("/nonexistent/dir/x.db", "pts/1", &err) < 0, "get_id missing file", NULL);
    check_error(&err, "get_id missing file: message");

    /* wtmpdb_logout: a time after 2106, an ID beyond 2^31; a missing row; a bad time. */
    check(wtmpdb_logout(db, id, t2128 + 3600 * USEC_PER_SEC, &err) == 0, "logout beyond 2^31", err);
    check(wtmpdb_get_id(db, "pts/7", NULL) == -ENOENT, "closed row is not open", NULL);
    check(wtmpdb_logout(db, 9000000000LL, 1, &err) == -1, "logout of a missing row", NULL);
    check_error(&err, "logout of a missing row: message");
    check(wtmpdb_logout(db, id, UINT64_MAX, &err) == -1, "logout time beyond int64", NULL);
    check_error(&err, "logout time beyond int64: message");
    check(wtmpdb_logout(db, 9000000000LL, 1, NULL) == -1, "failed logout, NULL error", NULL);
    /* A failed lookup's -ENOENT passed on as an ID (upstream's logwtmpdb does that). */
    check(wtmpdb_logout(db, -ENOENT, 1, &err) == -1, "logout of a negative ID", NULL);
    check_error(&err, "logout of a negative ID: message");

    /* logwtmpdb: login, then logout by tty. *err is set to NULL first. */
    err = (char *)0x1; /* must be overwritten, never freed */
    int64_t lid = logwtmpdb(db, "tty3", "carol", "192.0.2.3", "login", &err);
    check(lid > id_nulls && err == NULL, "logwtmpdb login", NULL);
    check(logwtmpdb(db, "tty3", "", NULL, NULL, &err) == 0, "logwtmpdb logout", err);
    check(wtmpdb_get_id(db, "tty3", NULL) == -ENOENT, "logwtmpdb closed the row", NULL);
    check(logwtmpdb(db, "tty3", NULL, NULL, NULL, &err) < 0, "logwtmpdb logout without session", NULL);
    check_error(&err, "logwtmpdb logout without session: message");

    /* Boot rows and wtmpdb_get_boottime. */
    check(wtmpdb_get_boottime(db, &err) == 0, "no boot yet", NULL);
    check_error(&err, "no boot yet: message");
    int64_t boot = wtmpdb_login(db, BOOT_TIME, "reboot", t2128 - 10, "~", "6.12.0", NULL, &err);
    check(boot > 0, "boot row", err);
    check(wtmpdb_get_boottime(db, &err) == t2128 - 10, "get_boottime after 2106", err);

    /* wtmpdb_read_all and _v2: every row, newest first, 8 named columns, NULL Logout of
       open rows; the v1 callback gets NULL as its first argument. */
    struct seen all = {0};
    check(wtmpdb_read_all_v2(db, count_rows, &all, &err) == 0, "read_all_v2", err);
    snprintf(msg, sizeof msg, "%d rows", all.rows);
    check(all.rows >= 5, "read_all_v2 sees every row", msg);
    check(!all.bad_shape, "columns in table order, named", NULL);
    check(!all.out_of_order, "newest login first", NULL);
    check(all.null_logout >= 2, "NULL for an open row's Logout", NULL);
    check(all.first_id == id_nulls, "the newest row comes first", NULL);
    check(wtmpdb_read_all(db, v1_callback, &err) == 0 && !null_data, "read_all passes NULL", err);

    /* A callback that stops early: no further calls, upstream's -4 and a message. */
    struct seen two = {.stop_after = 2};
    int rc = wtmpdb_read_all_v2(db, count_rows, &two, &err);
    snprintf(msg, sizeof msg, "rc %d after %d rows", rc, two.rows);
    check(rc == -4 && two.rows == 2, "callback stops after two rows", msg);
    check_error(&err, "stopped read: message");
    check(wtmpdb_read_all(db, NULL, &err) < 0, "NULL callback", NULL);
    check_error(&err, "NULL callback: message");
    check(wtmpdb_read_all("/nonexistent/dir/x.db", v1_callback, &err) < 0, "read of a missing file", NULL);
    check_error(&err, "read of a missing file: message");

    /* wtmpdb_rotate: an old closed row moves to the archive; bad days; NULL out pointers. */
    int64_t old = wtmpdb_login(db, USER_PROCESS, "old", 1000000, "tty9", NULL, NULL, NULL);
    check(old > 0 && wtmpdb_logout(db, old, 2000000, NULL) == 0, "an old session", NULL);
    char *archive = NULL;
    uint64_t moved = 0;
    rc = wtmpdb_rotate(db, 30, &err, &archive, &moved);
    snprintf(msg, sizeof msg, "rc %d, %llu moved to %s", rc, (unsigned long long)moved,
             archive ? archive : "(null)");
    check(rc == 0 && moved >= 1 && archive != NULL, "rotate", msg);
    free(archive);
    free(err);
    err = NULL;
    check(wtmpdb_rotate(db, 30, NULL, NULL, NULL) == 0, "rotate again, NULL pointers", NULL);
    check(wtmpdb_rotate(db, -1, &err, &archive, &moved) < 0, "rotate with negative days", NULL);
    check_error(&err, "rotate with negative days: message");

    /* wtmpdb_failed_login (ours): an attempt beside the database, hostile strings kept;
       NULL user fails with a message. */
    int64_t failed = wtmpdb_failed_login(db, "p@ssw\033rd", 4102444800000000ULL, "/dev/pts/4",
                                         "192.0.2.4", "sshd", &err);
    snprintf(msg, sizeof msg, "%lld", (long long)failed);
    check(failed > 0 && err == NULL, "failed_login", msg);
    check(wtmpdb_failed_login(db, NULL, 1, NULL, NULL, NULL, &err) < 0, "failed_login without user", NULL);
    check_error(&err, "failed_login without user: message");

    /* "varlink" without a daemon: a negative errno and a message. */
    rc = (int)wtmpdb_get_id("varlink", "pts/1", &err);
    snprintf(msg, sizeof msg, "%d", rc);
    check(rc < 0 && rc != -1, "varlink without daemon is -errno", msg);
    check_error(&err, "varlink without daemon: message");

    /* A panic inside the library (debug builds panic on this path; release builds cannot
       create it): every call fails with a message, and the process goes on. */
    const char *panic = "/proc/libwtmpdb-test-panic/wtmp.db";
    check(wtmpdb_login(panic, USER_PROCESS, "u", 1, "tty1", NULL, NULL, &err) == -1, "panic: login", NULL);
    check_error(&err, "panic: login: message");
    check(wtmpdb_logout(panic, 1, 1, &err) < 0, "panic: logout", NULL);
    check_error(&err, "panic: logout: message");
    check(wtmpdb_get_id(panic, "tty1", &err) < 0, "panic: get_id", NULL);
    check_error(&err, "panic: get_id: message");
    check(logwtmpdb(panic, "tty1", "u", NULL, NULL, &err) < 0, "panic: logwtmpdb", NULL);
    check_error(&err, "panic: logwtmpdb: message");
    check(wtmpdb_read_all(panic, v1_callback, &err) < 0, "panic: read_all", NULL);
    check_error(&err, "panic: read_all: message");
    check(wtmpdb_read_all_v2(panic, count_rows, &all, &err) < 0, "panic: read_all_v2", NULL);
    check_error(&err, "panic: read_all_v2: message");
    check(wtmpdb_rotate(panic, 1, &err, NULL, NULL) < 0, "panic: rotate", NULL);
    check_error(&err, "panic: rotate: message");
    check(wtmpdb_get_boottime(panic, &err) == 0, "panic: get_boottime", NULL);
    check_error(&err, "panic: get_boottime: message");
    check(wtmpdb_failed_login(panic, "u", 1, NULL, NULL, NULL, &err) < 0, "panic: failed_login", NULL);
    check_error(&err, "panic: failed_login: message");

    printf("%d failures\n", failures);
    return failures;
}
