/* rules_cli.h - `notify-gateway rules check|test|explain ...`: the rule-file
 * tooling behind the main binary (see rules_cli.c). Any thread; writes only
 * to out and err. */
#ifndef GW_RULES_CLI_H
#define GW_RULES_CLI_H

#include <stdio.h>

/* argv[0] is "rules". Returns the process exit code. */
int gw_rules_cli(int argc, char **argv, FILE *out, FILE *err);

/* `rules manifest [--endpoint KEY] FILE|DIR...` (rules_manifest.c): Forge
 * trigger modules with the filters Forge can evaluate. argv after "manifest". */
int gw_rules_manifest(int argc, char **argv, FILE *out, FILE *err);

#endif
