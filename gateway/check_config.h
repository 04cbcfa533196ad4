/* check_config.h - `notify-gateway --check-config [--config FILE] [flags]`
 * (like nginx -t): loads the configuration, the keys and the rules exactly
 * as a start would, prints every problem found (FILE:LINE:COL for the
 * configuration and rule files, FILE: reason for keys) and exits 0 (no
 * problem) or 1. It opens no listener, generates no key and writes nothing:
 * keys a start would generate are only reported as such. Main thread. */
#ifndef GW_CHECK_CONFIG_H
#define GW_CHECK_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/* Returns 1 when argv (after the program name) asks for --check-config. */
int gw_check_config_requested(int argc, char **argv);

/* argv without the program name; --check-config is skipped. embedded: the
 * default rules (used when no rule file is configured). Returns the exit code. */
int gw_check_config(int argc, char **argv, const char *embedded, size_t embedded_len, FILE *out, FILE *err);

#endif
