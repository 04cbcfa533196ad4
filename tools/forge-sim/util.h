/* util.h - forge-sim's shared helpers: the tool's constants, usage errors and
 * fatal errors (both exit), allocation that never returns NULL, clocks, the
 * SIGINT flag, random hex, base64url, durations, whole-file reads and atomic
 * writes.
 *
 * Ownership: every returned string or buffer is the caller's (free()).
 * Threads: forge-sim is single-threaded; g_stop is set by its signal handler.
 */
#ifndef FORGE_SIM_UTIL_H
#define FORGE_SIM_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SIM_VERSION "0.1.0"
#define KEY_FILE "forge-sim-key.pem"
#define JWKS_FILE "jwks.json"
#define DEV_APP_ID "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000"
#define DEV_INSTALLATION "ari:cloud:ecosystem::installation/00000000-0000-4000-8000-000000000001"
#define DEF_CLOUD_ID "5a2e1f3c-7b8d-4e9f-a0b1-c2d3e4f5a6b7"
#define DEF_ENV_ID "aa911f10-c54b-4b93-9e27-dd2947840b9e"
#define MAX_ANSWER (64 * 1024)
#define MAX_HEADERS 32

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* Set by SIGINT/SIGTERM (forge_sim.c); every wait gives up when it is set. */
extern volatile sig_atomic_t g_stop;
/* "forge-sim COMMAND": the prefix of every error message. */
extern const char *g_cmd;

__attribute__((format(printf, 1, 2), noreturn)) void usage_error(const char *fmt, ...);
__attribute__((format(printf, 1, 2), noreturn)) void fatal(const char *fmt, ...);
void *xmalloc(size_t n);
char *xstrdup(const char *s);
__attribute__((format(printf, 1, 2))) char *xasprintf(const char *fmt, ...);
int64_t mono_ms(void);
double mono_msf(void);
int64_t wall_s(void);
void sleep_until(int64_t until);
void random_bytes(unsigned char *buf, size_t n);
char *random_hex(size_t nbytes);
int is_hex(const char *s);
char *b64url(const unsigned char *in, size_t len);
char *b64url_str(const char *s);
int parse_duration(const char *s, int allow_negative, int64_t *out_ms);
char *read_file(const char *path, size_t *len_out);
int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode);

#endif
