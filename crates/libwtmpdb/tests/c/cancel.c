/* A thread cancelled while it is inside the library: upstream's library is C, so a
   cancellation acted on inside it unwinds through its frames and ends the thread. The
   library must not end the whole process instead. Each case makes the cancellation pending
   before or during a call; the call completes, and the thread ends at its own next
   cancellation point, after the call. Prints one line per case and "0 failures". */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <wtmpdb.h>

static const char *db;
static int failures;

/* The callback makes its own thread's cancellation pending and reaches a cancellation
   point, while the library's frames are below it. */
static int cancel_in_callback(void *unused, int argc, char **argv, char **names) {
  (void)unused, (void)argc, (void)argv, (void)names;
  pthread_cancel(pthread_self());
  pthread_testcancel();
  return 0;
}

struct result {
  int returned;
  int rc;
};

static void *pending_before_call(void *arg) {
  struct result *r = arg;
  char *error = NULL;
  /* Deferred cancellation: pending until a cancellation point, the first of which (an
     open, a read) is inside the library's call. */
  pthread_cancel(pthread_self());
  r->rc = (int)wtmpdb_login(db, USER_PROCESS, "cancel", 1000000, "pts/9", NULL, "test",
                            &error);
  r->returned = 1;
  free(error);
  pthread_testcancel();
  return NULL;
}

static void *pending_in_callback(void *arg) {
  struct result *r = arg;
  char *error = NULL;
  r->rc = wtmpdb_read_all(db, cancel_in_callback, &error);
  r->returned = 1;
  free(error);
  pthread_testcancel();
  return NULL;
}

static void run(const char *name, void *(*body)(void *)) {
  struct result r = {0, -1};
  pthread_t t;
  void *ret = NULL;
  if (pthread_create(&t, NULL, body, &r) != 0 || pthread_join(t, &ret) != 0) {
    printf("%s: FAIL thread\n", name);
    failures++;
    return;
  }
  int ok = r.returned && ret == PTHREAD_CANCELED;
  printf("%s: %s (returned %d, rc %d, cancelled %d)\n", name, ok ? "ok" : "FAIL",
         r.returned, r.rc, ret == PTHREAD_CANCELED);
  failures += !ok;
}

int main(int argc, char **argv) {
  if (argc != 2)
    return 2;
  db = argv[1];
  run("pending before a call", pending_before_call);
  run("pending in a callback", pending_in_callback);
  printf("%d failures\n", failures);
  return failures != 0;
}
