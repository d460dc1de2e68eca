/* A PAM application whose thread is cancelled while it is inside pam_wtmpdb: the service's
   module line has `test_cancel` (debug builds), with which the module makes its thread's
   cancellation pending inside its call (deferred: acted on at the next cancellation point,
   an open or a write of the module's). The module must not end the whole process: its call
   completes, and the thread ends at the next cancellation point after it (in libpam, which
   may not return to us first: a C unwind through C frames). Usage:
   cancel_host CONFDIR SERVICE. Prints "0 failures" on success. */
#include <pthread.h>
#include <security/pam_appl.h>
#include <stdio.h>

static const char *confdir, *service;

static int no_conversation(int n, const struct pam_message **msg, struct pam_response **resp,
                           void *data) {
  (void)n, (void)msg, (void)resp, (void)data;
  return PAM_CONV_ERR;
}

struct result {
  int returned;
  int rc;
};

static void *open_cancelled(void *arg) {
  struct result *r = arg;
  struct pam_conv conv = {no_conversation, NULL};
  pam_handle_t *pamh = NULL;
  if (pam_start_confdir(service, "root", &conv, confdir, &pamh) != PAM_SUCCESS)
    return NULL;
  pam_set_item(pamh, PAM_TTY, "pts/77");
  r->rc = pam_open_session(pamh, 0);
  r->returned = 1;
  pam_end(pamh, r->rc);
  pthread_testcancel();
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3)
    return 2;
  confdir = argv[1];
  service = argv[2];
  struct result r = {0, -1};
  pthread_t t;
  void *ret = NULL;
  if (pthread_create(&t, NULL, open_cancelled, &r) != 0 || pthread_join(t, &ret) != 0) {
    printf("FAIL thread\n");
    return 1;
  }
  int ok = ret == PTHREAD_CANCELED && (!r.returned || r.rc == PAM_SUCCESS);
  printf("open: %s (returned %d, rc %d, cancelled %d)\n", ok ? "ok" : "FAIL", r.returned, r.rc,
         ret == PTHREAD_CANCELED);
  printf("%d failures\n", !ok);
  return !ok;
}
