/* Calls libwtmpdb.so.0's functions as its arguments say, and prints what each returned.
 *
 *   calls DB CALL...
 *
 * DB is the db_path of every call: "varlink", a file, or "-" for NULL. Each CALL is a
 * function and its arguments separated by ':', with "NULL" for a NULL string and "@" for the
 * ID the last login or get_id returned:
 *
 *   login:TYPE:USER:USEC:TTY:HOST:SERVICE   logout:ID:USEC   get_id:TTY   boottime
 *   read_all   read_all_stop (the callback stops after the first row)   rotate:DAYS
 *   logwtmpdb:TTY:NAME:HOST:SERVICE
 *   db=DB (the db_path of the calls that follow)   socket=PATH (sets LIBWTMPDB_TEST_SOCKET)
 *
 * One line per call: "NAME RC ERROR" (ERROR "-" when *error stayed NULL), rotate adds the
 * rows moved and the archive, and read_all first prints each row as "row" and its eight
 * columns joined by '|' ("NULL" for NULL). Every error string is freed. Used by
 * tests/daemon.rs, which runs it against a real wtmpdbd, as root and as nobody. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wtmpdb.h>

static int64_t last_id = -1;

/* The ':'-separated fields of s (modified in place), empty ones kept. */
static int split(char *s, char **f, int max)
{
    int n = 0;
    f[n++] = s;
    for (char *p = s; *p && n < max; p++)
        if (*p == ':') {
            *p = 0;
            f[n++] = p + 1;
        }
    return n;
}

static const char *str(const char *s)
{
    return strcmp(s, "NULL") == 0 ? NULL : s;
}

static int64_t id(const char *s)
{
    return strcmp(s, "@") == 0 ? last_id : strtoll(s, NULL, 10);
}

static void result(const char *name, long long rc, char **err)
{
    printf("%s %lld %s\n", name, rc, *err ? *err : "-");
    free(*err);
    *err = NULL;
}

static int print_row(void *data, int argc, char **argv, char **names)
{
    int *stop = data;
    (void)names;
    printf("row");
    for (int i = 0; i < argc; i++)
        printf("%c%s", i ? '|' : ' ', argv[i] ? argv[i] : "NULL");
    printf("\n");
    return stop != NULL && *stop;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: calls DB CALL...\n");
        return 2;
    }
    const char *db = strcmp(argv[1], "-") == 0 ? NULL : argv[1];
    for (int i = 2; i < argc; i++) {
        if (strncmp(argv[i], "db=", 3) == 0) {
            db = strcmp(argv[i] + 3, "-") == 0 ? NULL : argv[i] + 3;
            continue;
        }
        if (strncmp(argv[i], "socket=", 7) == 0) {
            setenv("LIBWTMPDB_TEST_SOCKET", argv[i] + 7, 1);
            continue;
        }
        char *f[8] = {0};
        int n = split(argv[i], f, 8);
        char *err = NULL;
        if (strcmp(f[0], "login") == 0 && n == 7) {
            int64_t r = wtmpdb_login(db, atoi(f[1]), str(f[2]), strtoull(f[3], NULL, 10),
                                     str(f[4]), str(f[5]), str(f[6]), &err);
            if (r >= 0)
                last_id = r;
            result("login", r, &err);
        } else if (strcmp(f[0], "logout") == 0 && n == 3) {
            result("logout", wtmpdb_logout(db, id(f[1]), strtoull(f[2], NULL, 10), &err), &err);
        } else if (strcmp(f[0], "get_id") == 0 && n == 2) {
            int64_t r = wtmpdb_get_id(db, str(f[1]), &err);
            if (r >= 0)
                last_id = r;
            result("get_id", r, &err);
        } else if (strcmp(f[0], "boottime") == 0) {
            uint64_t t = wtmpdb_get_boottime(db, &err);
            printf("boottime %llu %s\n", (unsigned long long)t, err ? err : "-");
            free(err);
        } else if (strcmp(f[0], "read_all") == 0) {
            result("read_all", wtmpdb_read_all(db, print_row, &err), &err);
        } else if (strcmp(f[0], "read_all_stop") == 0) {
            int stop = 1;
            result("read_all_stop", wtmpdb_read_all_v2(db, print_row, &stop, &err), &err);
        } else if (strcmp(f[0], "rotate") == 0 && n == 2) {
            char *archive = NULL;
            uint64_t moved = 0;
            int r = wtmpdb_rotate(db, atoi(f[1]), &err, &archive, &moved);
            printf("rotate %d %llu %s %s\n", r, (unsigned long long)moved,
                   archive ? archive : "-", err ? err : "-");
            free(archive);
            free(err);
        } else if (strcmp(f[0], "logwtmpdb") == 0 && n == 5) {
            result("logwtmpdb", logwtmpdb(db, str(f[1]), str(f[2]), str(f[3]), str(f[4]), &err),
                   &err);
        } else {
            fprintf(stderr, "calls: cannot read '%s'\n", argv[i]);
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}
