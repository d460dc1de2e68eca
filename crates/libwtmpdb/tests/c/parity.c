/* Return values and rows that upstream's library and ours must agree on, printed one per
 * line; tests/e2e/libwtmpdb-sshd.sh runs it with Debian's libwtmpdb.so.0 and with ours and
 * compares the outputs. Messages are not printed (ours leave out SQLite's internals), only
 * whether there is one.
 *
 *   parity DIR     (DIR: an empty directory for the databases) */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wtmpdb.h>

static char *err;

/* Prints "what rc message?" and frees the message. */
static void show(const char *what, long long rc)
{
    printf("%s %lld %s\n", what, rc, err ? "message" : "no-message");
    free(err);
    err = NULL;
}

static int calls;
static long long now_s;

/* A Login or Logout of "now" (logwtmpdb's) differs between runs: printed as "now". */
static const char *value(int col, const char *v)
{
    if (v && (col == 3 || col == 4) && llabs(atoll(v) / 1000000 - now_s) < 3600)
        return "now";
    return v ? v : "NULL";
}

static int print_row(void *data, int argc, char **argv, char **names)
{
    int stop_after = data ? *(int *)data : 0;
    printf("row argc=%d", argc);
    for (int i = 0; i < argc; i++)
        printf(" %s=%s", names[i], value(i, argv[i]));
    printf("\n");
    calls++;
    return stop_after > 0 && calls >= stop_after;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    char db[4096], missing[4096];
    snprintf(db, sizeof db, "%s/parity.db", argv[1]);
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.db", argv[1]);
    now_s = (long long)time(NULL);
    const uint64_t t = 1700000000ULL * USEC_PER_SEC; /* 2023 */
    const uint64_t late = 5000000000ULL * USEC_PER_SEC; /* 2128 */

    show("login", wtmpdb_login(db, USER_PROCESS, "alice", t, "pts/1", "192.0.2.1", "sshd", &err));
    show("login-late", wtmpdb_login(db, USER_PROCESS, "bob", late, "pts/2", "::1", "login", &err));
    show("get_id", wtmpdb_get_id(db, "pts/2", &err));
    show("get_id-unknown", wtmpdb_get_id(db, "pts/9", &err));
    show("get_id-missing-file", wtmpdb_get_id(missing, "pts/1", &err));
    show("logout", wtmpdb_logout(db, 1, t + 60 * USEC_PER_SEC, &err));
    show("logout-missing-row", wtmpdb_logout(db, 99, t, &err));
    show("logwtmpdb-login", logwtmpdb(db, "tty4", "carol", "", "login", &err));
    show("logwtmpdb-logout", logwtmpdb(db, "tty4", "", NULL, NULL, &err));
    show("get_boottime-none", (long long)wtmpdb_get_boottime(db, &err));
    show("login-boot", wtmpdb_login(db, BOOT_TIME, "reboot", t - 1, "~", "6.12.0", NULL, &err));
    show("get_boottime", (long long)wtmpdb_get_boottime(db, &err));

    calls = 0;
    show("read_all", wtmpdb_read_all(db, print_row, &err));
    int one = 1;
    calls = 0;
    show("read_all_v2-stop", wtmpdb_read_all_v2(db, print_row, &one, &err));
    show("read_all-missing-file", wtmpdb_read_all(missing, print_row, &err));

    struct timespec ts = {.tv_sec = 5000000000LL, .tv_nsec = 1999};
    show("timespec2usec", (long long)wtmpdb_timespec2usec(ts));
    ts.tv_nsec = -1;
    show("timespec2usec-negative", (long long)wtmpdb_timespec2usec(ts));
    return 0;
}
