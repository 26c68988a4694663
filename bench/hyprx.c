/* Hyperion as a benchmark receiver: load the datapath through the loader library, apply the bench policy
 * (open ports, signatures and bans from files shared with the iptables/nftables rulesets), attach to one
 * interface, and print the datapath's own books when stopped (SIGTERM/SIGINT). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hyperion_abi.h"
#include "loader.h"
#include "maps.h"
#include "sigcompile.h"
#include "rx.h"

#define HR_LINE_MAX 256
#define HR_BAN_CHUNK 8192         /* bans per ban_add_batch call */
#define HR_PORTS_MAX 16

struct hr_opts {
	const char *ifname, *sig_file, *ban_file, *ready;
	__u32 flows_max, flows_new_max, scan_depth;
	bool syn_cookies, census;
	int tcp_ports[HR_PORTS_MAX], udp_ports[HR_PORTS_MAX], ntcp, nudp;
	enum hyp_xdp_mode mode;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: hyprx -i IFNAME [--tcp-port N]... [--udp-port N]... [--sigs FILE] [--bans FILE]\n"
		"             [--flows-max N] [--flows-new-max N] [--scan-depth N] [--syn-cookies] [--census]\n"
		"             [--generic] [--ready FILE]\n"
		"  FILE formats: one signature pattern (literal text) / one CIDR per line.\n"
		"  --syn-cookies: SYNs to the open TCP ports answered from XDP with a cookie SYN-ACK (XDP_TX)\n"
		"  --census: every report also walks the flow tables (live flows, LRU evictions per table)\n"
		"  runs until SIGTERM, then prints: frames=SEEN dropped=N passed=N answered=N <reason>=N ...\n"
		"  <counter>=N ... (SIGUSR1: now)\n");
	exit(2);
}

static void set_port(__u64 *bits, int port)
{
	bits[port / 64] |= 1ull << (port % 64);
}

/* Signatures: every line a literal pattern, action drop, any protocol and port (what -m string does). */
static int load_sigs(const char *path, struct hyp_sigset *set)
{
	static struct hyp_sigdef defs[HYP_SIG_MAX];
	char line[HR_LINE_MAX], err[256];
	size_t n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	while (n < HYP_SIG_MAX && fgets(line, sizeof(line), f)) {
		size_t len = strcspn(line, "\r\n");
		if (!len || len > HYP_PATTERN_MAX)
			continue;
		memset(&defs[n], 0, sizeof(defs[n]));
		snprintf(defs[n].name, sizeof(defs[n].name), "bench%zu", n);
		memcpy(defs[n].pattern, line, len);
		defs[n].pattern_len = (__u32)len;
		defs[n].action = HYP_ACT_DROP;
		n++;
	}
	fclose(f);
	int rc = sigset_compile(set, defs, n, err, sizeof(err));
	if (rc)
		fprintf(stderr, "hyprx: signatures: %s\n", err);
	return rc;
}

/* Bans: chunks through ban_add_batch, permanent. */
static long load_bans(struct hyp_dp *dp, const char *path)
{
	static struct hyp_cidr c[HR_BAN_CHUNK];
	static struct hyp_ban v[HR_BAN_CHUNK];
	char line[HR_LINE_MAX];
	size_t n = 0;
	long total = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	for (;;) {
		bool eof = !fgets(line, sizeof(line), f);
		if (!eof) {
			line[strcspn(line, "\r\n")] = 0;
			if (line[0] && cidr_parse(line, &c[n], false) == 0) {
				memset(&v[n], 0, sizeof(v[n]));
				v[n].created_ns = dp_now_ns();
				n++;
			}
		}
		if (n && (n == HR_BAN_CHUNK || eof)) {
			int rc = ban_add_batch(dp, c, v, n);
			if (rc < 0) {
				fclose(f);
				return rc;
			}
			total += rc;
			n = 0;
		}
		if (eof)
			break;
	}
	fclose(f);
	return total;
}

static void parse_args(int argc, char **argv, struct hr_opts *o)
{
	static const struct option lo[] = {
		{ "ifname", 1, 0, 'i' }, { "tcp-port", 1, 0, 't' }, { "udp-port", 1, 0, 'u' },
		{ "sigs", 1, 0, 's' }, { "bans", 1, 0, 'b' }, { "flows-max", 1, 0, 'F' },
		{ "flows-new-max", 1, 0, 'N' }, { "scan-depth", 1, 0, 'd' }, { "generic", 0, 0, 'g' },
		{ "ready", 1, 0, 'r' }, { "syn-cookies", 0, 0, 'c' }, { "census", 0, 0, 'C' }, { 0 }
	};
	int c;

	*o = (struct hr_opts){ .mode = HYP_XDP_NATIVE, .scan_depth = HYP_SCAN_DEPTH_MAX };
	while ((c = getopt_long(argc, argv, "i:", lo, NULL)) != -1) {
		switch (c) {
		case 'i': o->ifname = optarg; break;
		case 't': if (o->ntcp < HR_PORTS_MAX) o->tcp_ports[o->ntcp++] = atoi(optarg); break;
		case 'u': if (o->nudp < HR_PORTS_MAX) o->udp_ports[o->nudp++] = atoi(optarg); break;
		case 's': o->sig_file = optarg; break;
		case 'b': o->ban_file = optarg; break;
		case 'F': o->flows_max = (__u32)strtoul(optarg, NULL, 0); break;
		case 'N': o->flows_new_max = (__u32)strtoul(optarg, NULL, 0); break;
		case 'd': o->scan_depth = (__u32)strtoul(optarg, NULL, 0); break;
		case 'g': o->mode = HYP_XDP_GENERIC; break;
		case 'r': o->ready = optarg; break;
		case 'c': o->syn_cookies = true; break;
		case 'C': o->census = true; break;
		default: usage();
		}
	}
	if (!o->ifname)
		usage();
}

struct hr_ctx {
	struct hyp_dp *dp;
	bool census;
};

/* Books: frames seen; dropped (the drop reasons and aborted: what XDP_DROP/XDP_ABORTED discarded), passed
 * (the pass reasons), answered (XDP_TX: SYN cookies); every reason and the counters the bench checks;
 * with --census the live flows per table and the LRU evictions (inserts - deletes - live). */
static void print_books(void *ctx)
{
	struct hr_ctx *c = ctx;
	static struct hyp_totals t;
	static const unsigned counters[] = { HYP_C_CT_NEW_INSERT, HYP_C_CT_NEW_DELETE, HYP_C_CT_EST_INSERT,
					     HYP_C_CT_EST_DELETE, HYP_C_COOKIE_SENT, HYP_C_COOKIE_VALID,
					     HYP_C_COOKIE_INVALID, HYP_C_COOKIE_FALLBACK, HYP_C_COOKIE_ASSIGNED,
					     HYP_C_COOKIE_NO_LISTENER, HYP_C_COOKIE_ASSIGN_FAIL };
	unsigned long long dropped = 0, passed = 0, answered = 0;

	if (stats_read(c->dp, &t)) {
		printf("frames=0 error=stats_read\n");
		return;
	}
	for (unsigned r = 0; r < HYP_R_MAX; r++) {
		if (r == HYP_R_TX_SYNCOOKIE)
			answered += t.reason[r].packets;
		else if (r >= HYP_R_DROP_BANNED)
			dropped += t.reason[r].packets;
		else
			passed += t.reason[r].packets;
	}
	printf("frames=%llu dropped=%llu passed=%llu answered=%llu", (unsigned long long)t.counter[HYP_C_SEEN],
	       dropped, passed, answered);
	for (unsigned r = 0; r < HYP_R_MAX; r++)
		if (t.reason[r].packets)
			printf(" %s=%llu", reason_name(r), (unsigned long long)t.reason[r].packets);
	for (unsigned i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		if (t.counter[counters[i]])
			printf(" %s=%llu", counter_name(counters[i]), (unsigned long long)t.counter[counters[i]]);
	printf(" ev_submitted=%llu ev_lost=%llu scan_bytes=%llu",
	       (unsigned long long)t.counter[HYP_C_EV_SUBMITTED], (unsigned long long)t.counter[HYP_C_EV_LOST],
	       (unsigned long long)t.counter[HYP_C_SCAN_BYTES]);
	if (c->census) {
		struct flow_census n;

		/* the walk follows the counter read: exact while no flow is inserted or deleted in between
		 * (the bench reads it between runs) */
		if (flow_census(c->dp, 0, &n))
			printf(" census=error");
		else
			printf(" flows_est=%llu flows_new=%llu evicted_est=%llu evicted_new=%llu",
			       (unsigned long long)n.live_est, (unsigned long long)n.live_new,
			       (unsigned long long)flow_evicted(t.counter[HYP_C_CT_EST_INSERT],
								t.counter[HYP_C_CT_EST_DELETE], n.live_est),
			       (unsigned long long)flow_evicted(t.counter[HYP_C_CT_NEW_INSERT],
								t.counter[HYP_C_CT_NEW_DELETE], n.live_new));
	}
	printf("\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static struct hyp_dp dp;
	static struct hyp_config cfg;
	struct hyp_sigset *set = NULL;
	struct hr_opts o;
	int rc;

	parse_args(argc, argv, &o);
	struct hyp_loader_opts lo = { .pin_dir = "", .flows_max = o.flows_max, .flows_new_max = o.flows_new_max };
	rc = dp_open(&dp, &lo);
	if (rc) {
		fprintf(stderr, "hyprx: dp_open: %s\n", strerror(-rc));
		return 1;
	}
	/* The bench policy: the ports the iptables/nftables rulesets open, everything scanned (stream depth
	 * unlimited: a rule set with -m string scans every packet too), enforce. */
	config_defaults(&cfg);
	cfg.mode = HYP_MODE_ENFORCE;
	cfg.tcp_all_open = cfg.udp_all_open = 0;
	memset(cfg.tcp_ports, 0, sizeof(cfg.tcp_ports));
	memset(cfg.udp_ports, 0, sizeof(cfg.udp_ports));
	for (int i = 0; i < o.ntcp; i++)
		set_port(cfg.tcp_ports, o.tcp_ports[i]);
	for (int i = 0; i < o.nudp; i++)
		set_port(cfg.udp_ports, o.udp_ports[i]);
	cfg.scan_depth = o.scan_depth;
	cfg.stream_depth = 0;
	/* The operator's answer to a SYN flood: SYNs to the open ports answered from XDP, no flow state. */
	cfg.syn_cookies = o.syn_cookies;
	if (o.sig_file) {
		set = calloc(1, sizeof(*set));
		if (!set || load_sigs(o.sig_file, set))
			goto fail;
	}
	rc = dp_config_apply(&dp, &cfg, set);
	if (rc) {
		fprintf(stderr, "hyprx: config: %s\n", strerror(-rc));
		goto fail;
	}
	if (o.ban_file) {
		long n = load_bans(&dp, o.ban_file);
		if (n < 0) {
			fprintf(stderr, "hyprx: bans: %s\n", strerror((int)-n));
			goto fail;
		}
		fprintf(stderr, "hyprx: %ld bans loaded\n", n);
	}
	rc = dp_attach(&dp, o.ifname, o.mode);
	if (rc) {
		fprintf(stderr, "hyprx: attach %s: %s\n", o.ifname, strerror(-rc));
		goto fail;
	}
	struct hr_ctx pc = { .dp = &dp, .census = o.census };
	rx_run(o.ready, print_books, &pc);
	dp_detach_all(&dp);
	dp_close(&dp);
	if (set)
		sigset_free(set);
	free(set);
	return 0;
fail:
	dp_detach_all(&dp);
	dp_close(&dp);
	free(set);
	return 1;
}
