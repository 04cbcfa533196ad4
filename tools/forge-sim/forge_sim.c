/* forge_sim.c - plays Forge's part in front of a Forge remote (notify-gateway).
 *
 *   forge-sim keys     --dir DIR [--kid KID] [--force]
 *   forge-sim send     [common options] EVENT.json...
 *   forge-sim schedule [common options] --interval fiveMinute|hour|day|week
 *   forge-sim fit      [common options]
 *   forge-sim ui       [common options] --principal ACCOUNT [--issue KEY | --content ID | --context JSON]
 *
 * What it imitates (Atlassian's Forge remote documentation:
 * developer.atlassian.com/platform/forge/remote/essentials/,
 * .../remote/sending-product-events/, .../remote/scheduled-triggers/,
 * .../events-reference/life-cycle/):
 *  - the remote envelope {"payload": <event>} POSTed to baseUrl + route;
 *  - a Forge Invocation Token per attempt (RS256, kid, iss
 *    forge/invocation-token, aud = app ARI, 25 s lifetime, app{...} claims),
 *    signed with the simulator's own RSA key whose JWKS it writes;
 *  - x-b3-traceid (one per event, kept across attempts), x-b3-spanid (one per
 *    attempt), optional x-forge-oauth-system (an opaque HS256 JWT with exp);
 *  - the retry policy: 5 s timeout, up to 4 retries 60 s apart on a non-2xx
 *    answer (3xx are not followed), a timeout or a network error, with
 *    payload.retryContext = {retryCount, retryReason, retryData: null};
 *  - scheduled triggers fired every --every, --count times;
 *  - UI invocations (invokeRemote from @forge/bridge, §2.2): a FIT with
 *    `principal` (the user) and `context` (cloudId, siteUrl, moduleKey,
 *    localId, extension{type, issue|content...}), app.module of the UI
 *    module; one POST, no retries (UI invocations are not retried).
 *
 * Output: one line per attempt and one final line per delivery on stdout
 * (line buffered, so a test can follow it); usage errors on stderr.
 * Exit: 0 every delivery succeeded, 1 some did not, 2 usage error.
 *
 * Plain HTTP/1.1 over POSIX sockets (no TLS): the simulator talks to a local
 * gateway. Single-threaded: attempts are sent one at a time, in the order
 * they fall due.
 *
 * This file is the command line (dispatch, --help, signals). The jobs live
 * beside it: keys.c (the signing key and JWKS), fit.c (FITs, system
 * tokens), opts.c (shared options), http.c (one bounded POST), delivery.c
 * (Forge's retry policy, send), schedule.c (scheduled triggers), ui.c (UI
 * invocations), util.c (helpers).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "delivery.h"
#include "fit.h"
#include "keys.h"
#include "schedule.h"
#include "ui.h"
#include "util.h"

static void on_sigint(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void help(void)
{
	fputs("forge-sim " SIM_VERSION " - plays Forge in front of a Forge remote (notify-gateway)\n"
	      "\n"
	      "  forge-sim keys --dir DIR [--kid KID] [--force]\n"
	      "      RSA-2048 key DIR/forge-sim-key.pem (0600; kept if present) and DIR/jwks.json\n"
	      "  forge-sim send [OPTIONS] EVENT.json... (- = stdin)\n"
	      "      POST each event to URL/forge/events as Forge does, with retries\n"
	      "  forge-sim schedule [OPTIONS] --interval fiveMinute|hour|day|week [--every D] [--count N]\n"
	      "      fire a scheduled trigger (URL/forge/scheduled/INTERVAL) N times (0 = until Ctrl-C)\n"
	      "  forge-sim fit [OPTIONS]\n"
	      "      print one FIT (for curl)\n"
	      "  forge-sim ui [OPTIONS] --principal ACCOUNT [--issue KEY | --content ID | --context JSON|@FILE]\n"
	      "      one UI invocation (invokeRemote): POST URL/forge/subscription, FIT with principal and context\n"
	      "\n"
	      "Options (send, schedule, fit):\n"
	      "  --url http://HOST:PORT[/BASE]  the remote's baseUrl (send, schedule)\n"
	      "  --path ROUTE                   route (default /forge/events, /forge/scheduled/INTERVAL)\n"
	      "  --keys DIR | --key PEM --kid KID  FIT signing key\n"
	      "  --app-id ARI                   aud and app.id (default " DEV_APP_ID ")\n"
	      "  --installation ARI             app.installationId (default " DEV_INSTALLATION ")\n"
	      "  --api-base-url URL  --app-version V (1.0.0)  --environment DEVELOPMENT|STAGING|PRODUCTION\n"
	      "  --environment-id UUID  --module-key KEY  --module-type TYPE (core:endpoint; ui: the module)\n"
	      "  --principal ACCOUNT  --issue KEY  --content ID  --context JSON|@FILE  (UI invocation claims; fit, ui)\n"
	      "  --timeout D (5s)  --retries N (4)  --retry-delay D (60s)\n"
	      "  --fit-ttl D (25s, may be negative)  --system-token-ttl D (no token unless given; may be negative)\n"
	      "  --trace-id HEX  --header 'Name: value'  --bare  --no-fit  --body FILE (schedule)\n"
	      "Durations: 250ms, 5s, 2m, 4h (no suffix: seconds).\n"
	      "Exit: 0 all delivered, 1 some not, 2 usage error. See docs/forge-sim.md.\n",
	      stdout);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (argc < 2)
		usage_error("no command (keys, send, schedule, fit)");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		help();
		return EXIT_OK;
	}
	if (!strcmp(cmd, "--version")) {
		puts("forge-sim " SIM_VERSION);
		return EXIT_OK;
	}
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			help();
			return EXIT_OK;
		}
	static char cmdname[64];
	snprintf(cmdname, sizeof(cmdname), "forge-sim %s", cmd);
	g_cmd = cmdname;
	if (!strcmp(cmd, "keys"))
		return cmd_keys(argc - 2, argv + 2);
	if (!strcmp(cmd, "send"))
		return cmd_send(argc - 2, argv + 2);
	if (!strcmp(cmd, "schedule"))
		return cmd_schedule(argc - 2, argv + 2);
	if (!strcmp(cmd, "fit"))
		return cmd_fit(argc - 2, argv + 2);
	if (!strcmp(cmd, "ui"))
		return cmd_ui(argc - 2, argv + 2);
	g_cmd = "forge-sim";
	usage_error("unknown command '%s' (keys, send, schedule, fit)", cmd);
}
