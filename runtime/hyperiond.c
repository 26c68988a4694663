/* hyperiond: command line, then the daemon lifecycle (daemon.c) in the foreground. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "daemon.h"
#include "log.h"
#include "metrics.h"

#define HYPERIOND_VERSION "0.1.0"
#define HOOK_TIMEOUT_MS_MAX 10000       /* a hook longer than 10 s would stall the event stream */
#define LUA_MEM_MB_MAX 65536

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hyperiond -i IFACE [-i IFACE ...] -p POLICY.lua [options]\n"
		"  -i, --iface IFACE         attach to IFACE (repeatable, up to %d)\n"
		"  -p, --policy FILE         Lua policy file\n"
		"      --xdp-mode MODE       native | generic (default: native, falling back to generic)\n"
		"      --socket PATH         control socket (default %s)\n"
		"      --pin-dir DIR         bpffs pin directory (default %s)\n"
		"      --state-dir DIR       snapshot directory (default %s)\n"
		"      --metrics ADDR:PORT   serve Prometheus metrics at http://ADDR:PORT/metrics\n"
		"      --log-format FMT      text | json (default text)\n"
		"      --log-level LEVEL     error | warning | info | debug (default info)\n"
		"      --hook-timeout MS     Lua hook deadline (default %d)\n"
		"      --lua-mem MB          Lua memory cap per state (default %u)\n"
		"      --lib-dir DIR         where require() finds hyperion.* (default: next to the binary)\n"
		"      --ctl-uid UID         also allow this uid on the control socket (default: root only)\n"
		"      --watch-policy        reload when the policy file changes on disk (checked every second)\n"
		"  -h, --help                this help\n"
		"  -V, --version             print the version\n"
		"Signals: SIGHUP reloads the policy; SIGTERM/SIGINT save state, detach and exit 0.\n",
		HYP_IFACES_MAX, HYP_SOCKET_DEFAULT, HYP_PIN_DIR_DEFAULT, HYP_STATE_DIR_DEFAULT,
		HYP_HOOK_TIMEOUT_MS_DEFAULT, HYP_LUA_MEM_DEFAULT >> 20);
}

/* One-line reason, usage exit status: like every other option parser operators know. */
static int bad(const char *fmt, const char *arg)
{
	fprintf(stderr, "hyperiond: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see --help)\n");
	return 2;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

enum { OPT_XDP = 256, OPT_SOCKET, OPT_PIN, OPT_STATE, OPT_METRICS, OPT_LOGFMT, OPT_LOGLEVEL, OPT_HOOK,
       OPT_MEM, OPT_LIB, OPT_UID, OPT_WATCH };

static const struct option longopts[] = {
	{ "iface", required_argument, NULL, 'i' },
	{ "policy", required_argument, NULL, 'p' },
	{ "xdp-mode", required_argument, NULL, OPT_XDP },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "pin-dir", required_argument, NULL, OPT_PIN },
	{ "state-dir", required_argument, NULL, OPT_STATE },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "log-format", required_argument, NULL, OPT_LOGFMT },
	{ "log-level", required_argument, NULL, OPT_LOGLEVEL },
	{ "hook-timeout", required_argument, NULL, OPT_HOOK },
	{ "lua-mem", required_argument, NULL, OPT_MEM },
	{ "lib-dir", required_argument, NULL, OPT_LIB },
	{ "ctl-uid", required_argument, NULL, OPT_UID },
	{ "watch-policy", no_argument, NULL, OPT_WATCH },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ 0 },
};

/* Returns -1 to continue, else the exit status. */
static int args_parse(int argc, char **argv, struct hyp_options *o)
{
	unsigned long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->xdp_mode = HYP_XDP_AUTO;
	o->socket_path = HYP_SOCKET_DEFAULT;
	o->pin_dir = HYP_PIN_DIR_DEFAULT;
	o->state_dir = HYP_STATE_DIR_DEFAULT;
	o->hook_timeout_ms = HYP_HOOK_TIMEOUT_MS_DEFAULT;
	o->lua_mem_limit = HYP_LUA_MEM_DEFAULT;
	o->ctl_allow_uid = (unsigned)-1;
	opterr = 0;     /* our own one-line messages */
	while ((c = getopt_long(argc, argv, ":i:p:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (o->nifaces == HYP_IFACES_MAX)
				return bad("too many interfaces (max 16): %s", optarg);
			if (!*optarg || strlen(optarg) >= IF_NAMESIZE)
				return bad("invalid interface name '%s'", optarg);
			for (int i = 0; i < o->nifaces; i++)
				if (!strcmp(o->ifaces[i], optarg))
					return bad("interface '%s' given twice", optarg);
			o->ifaces[o->nifaces++] = optarg;
			break;
		case 'p':
			o->policy_path = optarg;
			break;
		case OPT_XDP:
			if (!strcmp(optarg, "native"))
				o->xdp_mode = HYP_XDP_NATIVE;
			else if (!strcmp(optarg, "generic") || !strcmp(optarg, "skb"))
				o->xdp_mode = HYP_XDP_GENERIC;
			else if (!strcmp(optarg, "auto"))
				o->xdp_mode = HYP_XDP_AUTO;
			else
				return bad("--xdp-mode must be native or generic, not '%s'", optarg);
			break;
		case OPT_SOCKET:
			if (!*optarg || strlen(optarg) >= 108)
				return bad("invalid socket path '%s' (1..107 bytes)", optarg);
			o->socket_path = optarg;
			break;
		case OPT_PIN:
			o->pin_dir = optarg;
			break;
		case OPT_STATE:
			if (!*optarg)
				return bad("empty --state-dir%s", "");
			o->state_dir = optarg;
			break;
		case OPT_METRICS: {
			char host[128];
			unsigned short port;
			if (metrics_addr_parse(optarg, host, sizeof(host), &port))
				return bad("--metrics wants ADDR:PORT or [V6ADDR]:PORT, not '%s'", optarg);
			o->metrics_addr = optarg;
			break;
		}
		case OPT_LOGFMT:
			if (strcmp(optarg, "text") && strcmp(optarg, "json"))
				return bad("--log-format must be text or json, not '%s'", optarg);
			o->log_json = !strcmp(optarg, "json");
			break;
		case OPT_LOGLEVEL: {
			static const char *const names[] = { "error", "warning", "info", "debug" };
			static const int levels[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
			size_t i;
			for (i = 0; i < 4 && strcmp(optarg, names[i]); i++)
				;
			if (i == 4)
				return bad("--log-level must be error, warning, info or debug, not '%s'", optarg);
			log_set_level(levels[i]);
			break;
		}
		case OPT_HOOK:
			if (parse_uint(optarg, HOOK_TIMEOUT_MS_MAX, &v) || v == 0)
				return bad("--hook-timeout wants 1..10000 milliseconds, not '%s'", optarg);
			o->hook_timeout_ms = (unsigned)v;
			break;
		case OPT_MEM:
			if (parse_uint(optarg, LUA_MEM_MB_MAX, &v) || v == 0)
				return bad("--lua-mem wants 1..65536 MiB, not '%s'", optarg);
			o->lua_mem_limit = (size_t)v << 20;
			break;
		case OPT_LIB:
			o->lib_dir = optarg;
			break;
		case OPT_UID:
			if (parse_uint(optarg, UINT_MAX - 1, &v))
				return bad("--ctl-uid wants a numeric uid, not '%s'", optarg);
			o->ctl_allow_uid = (unsigned)v;
			break;
		case OPT_WATCH:
			o->watch_policy = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("hyperiond %s (abi %d)\n", HYPERIOND_VERSION, HYP_ABI_VERSION);
			return 0;
		case ':':
			return bad("option '%s' needs a value", argv[optind - 1]);
		default:
			return bad("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad("unexpected argument '%s'", argv[optind]);
	if (!o->nifaces)
		return bad("%s", "no interface given (-i IFACE)");
	if (!o->policy_path)
		return bad("%s", "no policy given (-p POLICY.lua)");
	return -1;
}

int main(int argc, char **argv)
{
	struct hyp_daemon d;
	int rc;

	memset(&d, 0, sizeof(d));
	rc = args_parse(argc, argv, &d.opt);
	if (rc >= 0)
		return rc;
	log_set_json(d.opt.log_json);
	log_route_libbpf();
	/* Cheap checks first, so a typo fails before anything is loaded or pinned. */
	for (int i = 0; i < d.opt.nifaces; i++) {
		if (!if_nametoindex(d.opt.ifaces[i])) {
			hyp_log(LOG_ERR, "interface '%s' not found", d.opt.ifaces[i]);
			return 1;
		}
	}
	FILE *pf = fopen(d.opt.policy_path, "r");
	if (!pf) {
		hyp_log(LOG_ERR, "policy %s: %s", d.opt.policy_path, strerror(errno));
		return 1;
	}
	fclose(pf);
	/* A control client that hangs up mid-response must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	rc = daemon_start(&d);
	if (rc)
		return 1;
	rc = daemon_run(&d);
	daemon_stop(&d, true);
	hyp_log(LOG_INFO, "hyperiond stopped");
	return rc ? 1 : 0;
}
