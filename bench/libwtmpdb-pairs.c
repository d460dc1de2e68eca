/* wtmpdb_login + wtmpdb_logout, timed per pair, against whichever libwtmpdb.so.0 the
 * dynamic linker finds (bench/libwtmpdb.sh runs it with Debian's and with ours).
 *
 *   libwtmpdb-pairs DB PAIRS    prints one line per pair: its time in microseconds */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <wtmpdb.h>

static uint64_t now_usec(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return wtmpdb_timespec2usec(ts);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: libwtmpdb-pairs DB PAIRS\n");
        return 2;
    }
    const char *db = argv[1];
    long pairs = strtol(argv[2], NULL, 10);
    for (long i = 0; i < pairs; i++) {
        char *err = NULL;
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        int64_t id = wtmpdb_login(db, USER_PROCESS, "bench", now_usec(CLOCK_REALTIME), "pts/1",
                                  "192.0.2.1", "sshd", &err);
        if (id < 0 || wtmpdb_logout(db, id, now_usec(CLOCK_REALTIME), &err) != 0) {
            fprintf(stderr, "pair %ld failed: %s\n", i, err ? err : "(no message)");
            free(err);
            return 1;
        }
        printf("%llu\n", (unsigned long long)(now_usec(CLOCK_MONOTONIC) - t0));
    }
    return 0;
}
