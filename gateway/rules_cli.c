/* rules_cli.c - `notify-gateway rules check FILE...`: the rule author's
 * command line. (Issue #3 extends it with `rules test` and JSON output.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

int gw_rules_cli(int argc, char **argv, FILE *out, FILE *err)
{
	if (argc < 2 || strcmp(argv[0], "check") != 0) {
		fprintf(err, "usage: notify-gateway rules check FILE...\n");
		return 2;
	}
	int failed = 0;
	for (int i = 1; i < argc; i++) {
		struct rules_diags diags;
		rules_diags_init(&diags);
		struct rules_set *set = rules_load_file(argv[i], &diags);
		for (size_t k = 0; k < diags.count; k++) {
			char *text = rules_diag_format(&diags.items[k]);
			fprintf(err, "%s\n", text ? text : diags.items[k].message);
			free(text);
		}
		if (set)
			fprintf(out, "%s: %zu rules, ok\n", argv[i], rules_set_count(set));
		else
			failed = 1;
		rules_set_unref(set);
		rules_diags_free(&diags);
	}
	return failed;
}
