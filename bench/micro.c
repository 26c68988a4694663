/* Microbenchmarks: the datapath's cost ladder in ns/packet as BPF_PROG_TEST_RUN measures it (repeat N),
 * every rung next to a bare XDP_DROP, every rung's verdict checked in the datapath's books (verdict
 * statistics). Prints Markdown. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hyperion_abi.h"
#include "loader.h"
#include "blkfilter.h"
#include "maps.h"
#include "sigcompile.h"
#include "frame.h"
#include "bench/benchxdp.skel.h"
#include "rx_ban.h"

#define MC_REPEAT_FULL 200000
#define MC_REPEAT_QUICK 20000
#define MC_SAMPLES 5                 /* runs per rung; the median is reported */
#define MC_EV_REPEAT 2048            /* event rungs: fits the ring buffer, drained between runs */
#define MC_INSERT_FLOWS 20000        /* distinct flows for the repeat=1 insert rung (quick: a quarter) */
#define MC_FRAME_MAX 1600
#define MC_SIGS_MANY 256
#define MC_GRACE_NS (3600ull * 1000000000ull)
#define MC_SIG "HYPSIG-ATTACK"
#define MC_SRC "192.0.2.1"
#define MC_DST "192.0.2.2"
#define MC_ALLOWED "192.0.2.9"
#define MC_BANNED "203.0.113.7"
#define MC_BAN_NET "203.0.113.0/24"
#define TH_ACK_BENCH 0x10
#define TH_SYN_BENCH 0x02
#define MC_XDP_TX 3

struct mc {
	const char *only;            /* --only SUBSTR: run just the rungs whose name contains it (profiling) */
	struct hyp_dp dp;
	struct benchxdp *bx;
	struct ring_buffer *rb;
	unsigned repeat;
	double bare_ns;
	struct hyp_sigset *sigs1, *sigs256;
};

/* One frame for a rung. payload_len bytes of filler (never a signature) unless payload is set. */
static int mk_frame(uint8_t *buf, uint8_t proto, uint8_t flags, const char *src, uint16_t sport, uint16_t dport,
		    const char *payload, uint32_t payload_len)
{
	static uint8_t pay[MC_FRAME_MAX];
	struct frame_spec s = { .family = 4, .proto = proto, .tcp_flags = flags, .sport = sport, .dport = dport,
				.seq = 1000, .ack = 2000, .payload = pay, .payload_len = payload_len,
				.smac = { 2, 0, 0, 0, 0, 1 }, .dmac = { 2, 0, 0, 0, 0, 2 } };

	memset(pay, '.', payload_len);
	if (payload)
		memcpy(pay, payload, strlen(payload) < payload_len ? strlen(payload) : payload_len);
	inet_pton(AF_INET, src, s.src);
	inet_pton(AF_INET, MC_DST, s.dst);
	return frame_build(&s, buf, MC_FRAME_MAX, NULL);
}

static int mk_arp(uint8_t *buf)
{
	static const uint8_t arp[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06,
				       0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 192, 0, 2, 1,
				       0, 0, 0, 0, 0, 0, 192, 0, 2, 2 };
	memcpy(buf, arp, sizeof(arp));
	return (int)sizeof(arp);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median over MC_SAMPLES runs of the kernel-measured ns/packet. */
static double run_prog(int prog_fd, const void *frame, int len, unsigned repeat, int *retval)
{
	double s[MC_SAMPLES];

	for (int i = 0; i < MC_SAMPLES; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (__u32)len, .repeat = repeat);
		if (bpf_prog_test_run_opts(prog_fd, &o)) {
			fprintf(stderr, "micro: test_run: %s\n", strerror(errno));
			return -1;
		}
		s[i] = o.duration;
		*retval = (int)o.retval;
	}
	qsort(s, MC_SAMPLES, sizeof(s[0]), cmp_double);
	return s[MC_SAMPLES / 2];
}

static __u64 reason_packets(struct mc *m, unsigned r)
{
	static struct hyp_totals t;

	return stats_read(&m->dp, &t) ? 0 : t.reason[r].packets;
}

/* Hits the verdict cache's express lane answered (bpf/express.h), for the check column. */
static __u64 express_hits(struct mc *m)
{
	static struct hyp_totals t;

	return stats_read(&m->dp, &t) ? 0 : t.counter[HYP_C_VCACHE_EXPRESS];
}

static int ev_count_cb(void *ctx, void *data, size_t len)
{
	(void)data;
	(void)len;
	(*(long *)ctx)++;
	return 0;
}

static const char *verdict_name(int v)
{
	static const char *n[] = { "ABORTED", "DROP", "PASS", "TX", "REDIRECT" };
	return v >= 0 && v <= 4 ? n[v] : "?";
}

/* One rung on the Hyperion program: ns/packet, ratio to bare drop, and whether the expected reason
 * really counted every run (a rung that silently took another path would measure the wrong thing). */
static void rung(struct mc *m, const char *name, const void *frame, int len, unsigned repeat, unsigned reason,
		 bool drain_events)
{
	__u64 before = reason_packets(m, reason), xp_before = express_hits(m);
	int rv = 0;
	double ns;

	if (m->only && !strstr(name, m->only))
		return;

	if (drain_events) {
		/* events: short runs so the ring never fills (a full ring measures the reserve failure) */
		double s[MC_SAMPLES];
		for (int i = 0; i < MC_SAMPLES; i++) {
			LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (__u32)len, .repeat = repeat);
			if (bpf_prog_test_run_opts(m->dp.prog_xdp_fd, &o))
				return;
			s[i] = o.duration;
			rv = (int)o.retval;
			if (m->rb)
				ring_buffer__consume(m->rb);
		}
		qsort(s, MC_SAMPLES, sizeof(s[0]), cmp_double);
		ns = s[MC_SAMPLES / 2];
	} else {
		ns = run_prog(m->dp.prog_xdp_fd, frame, len, repeat, &rv);
	}
	__u64 got = reason_packets(m, reason) - before, xp = express_hits(m) - xp_before;
	__u64 want = (__u64)repeat * MC_SAMPLES;
	char check[128];
	if (got >= want - 1)   /* the first packet of a flow rung may take the "new" path */
		snprintf(check, sizeof(check), "%s, %s%s x%llu%s%.0llu", verdict_name(rv),
			 reason >= HYP_STATS_MONITOR ? "monitor " : "", reason_name(reason % HYP_STATS_MONITOR),
			 (unsigned long long)got, xp ? ", express lane x" : "", (unsigned long long)xp);
	else
		snprintf(check, sizeof(check), "**unverified**: %s counted %llu of %llu (%s)", reason_name(reason),
			 (unsigned long long)got, (unsigned long long)want, verdict_name(rv));
	printf("| %s | %d | %.1f | %.2fx | %s |\n", name, len, ns, m->bare_ns > 0 ? ns / m->bare_ns : 0, check);
	fflush(stdout);
}

static int compile_sigs(struct hyp_sigset **out, unsigned n, __u8 action)
{
	static struct hyp_sigdef defs[HYP_SIG_MAX];
	char err[256];

	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		memset(&defs[i], 0, sizeof(defs[i]));
		snprintf(defs[i].name, sizeof(defs[i].name), "s%u", i);
		if (i == n - 1)
			snprintf((char *)defs[i].pattern, sizeof(defs[i].pattern), "%s", MC_SIG);
		else
			snprintf((char *)defs[i].pattern, sizeof(defs[i].pattern), "s%04u-hypbench-%x", i, i * 7919);
		defs[i].pattern_len = (__u32)strlen((char *)defs[i].pattern);
		defs[i].action = action;
	}
	int rc = sigset_compile(*out, defs, n, err, sizeof(err));
	if (rc)
		fprintf(stderr, "micro: sigset_compile: %s\n", err);
	return rc;
}

/* The ladder's policy: everything open, scan every byte, pickup within a grace period (so an ACK alone
 * makes an established flow), events sampled away unless a rung wants them. */
enum { MC_VCACHE_OFF = 1, MC_MONITOR = 2, MC_SYNCOOKIES = 4, MC_DEPTH = 8 };
#define MC_STREAM_DEPTH 64          /* MC_DEPTH: bytes scanned per flow direction */

static int apply_opts(struct mc *m, const struct hyp_sigset *set, __u32 ev_rate, int opts)
{
	struct hyp_config cfg;

	config_defaults(&cfg);
	cfg.mode = opts & MC_MONITOR ? HYP_MODE_MONITOR : HYP_MODE_ENFORCE;
	cfg.vcache = opts & MC_VCACHE_OFF ? HYP_VCACHE_OFF : HYP_VCACHE_ON;
	cfg.tcp_all_open = cfg.udp_all_open = 1;
	cfg.scan_depth = HYP_SCAN_DEPTH_MAX;
	cfg.stream_depth = opts & MC_DEPTH ? MC_STREAM_DEPTH : 0;
	cfg.pickup = HYP_PICKUP_GRACE;
	cfg.start_ns = dp_now_ns();
	cfg.pickup_grace_ns = MC_GRACE_NS;
	cfg.syn_rate = cfg.pps_rate = 0;
	cfg.ev_rate = ev_rate;
	cfg.ev_burst = ev_rate ? 1 : 0;
	cfg.syn_cookies = !!(opts & MC_SYNCOOKIES);
	return dp_config_apply(&m->dp, &cfg, set);
}

static int apply(struct mc *m, const struct hyp_sigset *set, __u32 ev_rate)
{
	return apply_opts(m, set, ev_rate, 0);
}

/* Flow insert with distinct flows: repeat=1 per frame (a repeated frame would hit its own entry), so
 * each figure carries the kernel's timer overhead too; shown next to bare drop measured the same way. */
static void rung_insert(struct mc *m, uint8_t *f, unsigned nflows)
{
	static double s[MC_INSERT_FLOWS], b[MC_INSERT_FLOWS];
	__u64 before = reason_packets(m, HYP_R_PASS_NEW);
	int len = 0, bare = bpf_program__fd(m->bx->progs.bare_drop);

	for (unsigned i = 0; i < nflows; i++) {
		len = mk_frame(f, IPPROTO_UDP, 0, MC_SRC, (uint16_t)(1024 + i % 60000), (uint16_t)(53 + i / 60000), NULL, 18);
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f, .data_size_in = (__u32)len, .repeat = 1);
		LIBBPF_OPTS(bpf_test_run_opts, ob, .data_in = f, .data_size_in = (__u32)len, .repeat = 1);
		if (bpf_prog_test_run_opts(m->dp.prog_xdp_fd, &o) || bpf_prog_test_run_opts(bare, &ob))
			return;
		s[i] = o.duration;
		b[i] = ob.duration;
	}
	qsort(s, nflows, sizeof(s[0]), cmp_double);
	qsort(b, nflows, sizeof(b[0]), cmp_double);
	__u64 got = reason_packets(m, HYP_R_PASS_NEW) - before;
	double ns = s[nflows / 2], bns = b[nflows / 2];
	printf("| bare drop, repeat=1 (timer overhead included) | %d | %.1f | 1.00x | reference for the next rung |\n",
	       len, bns);
	printf("| flow insert: %u distinct UDP flows, repeat=1 | %d | %.1f | %.2fx | %s%s x%llu |\n",
	       nflows, len, ns, bns > 0 ? ns / bns : 0, got == nflows ? "" : "**unverified**: ",
	       reason_name(HYP_R_PASS_NEW), (unsigned long long)got);
}

/* A SYN to port 80; with_opts: the option block a Linux client sends (MSS 1460, SACK permitted,
 * timestamps, window scale 7), which the cookie path parses and echoes. Checksum valid either way. */
static int mk_syn(uint8_t *buf, uint16_t sport, bool with_opts)
{
	static const uint8_t opts[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0,
					  1, 3, 3, 7 };
	int len = mk_frame(buf, IPPROTO_TCP, TH_SYN_BENCH, MC_SRC, sport, 80, NULL, with_opts ? sizeof(opts) : 0);

	if (len < 0 || !with_opts)
		return len;
	uint8_t *ip = buf + FRAME_ETH_LEN, *th = ip + FRAME_IP4_LEN;
	uint32_t l4len = FRAME_TCP_LEN + sizeof(opts), sum;
	memcpy(th + FRAME_TCP_LEN, opts, sizeof(opts));
	th[12] = (uint8_t)(l4len / 4) << 4;
	th[16] = th[17] = 0;
	sum = frame_sum(0, ip + 12, 8) + IPPROTO_TCP + l4len;
	put16(th + 16, frame_fold(frame_sum(sum, th, l4len)));
	return len;
}

/*
 * A rung whose program rewrites the frame in place (the SYN cookie: XDP_TX turns the SYN into the
 * SYN-ACK): repeated as is, every iteration after the first would judge the answer. A second instance
 * of the bench object runs the harness (bench/bpf/benchxdp.bpf.c mc_harness) with the frame as its
 * template: it restores the request, then tail-calls the program under test. The same harness around a
 * bare XDP_DROP is printed first, as the rung's reference; the rung's "net" figure is its ns minus the
 * harness's (the reference minus a bare drop).
 */
static void rung_harnessed(struct mc *m, const char *name, const uint8_t *frame, int len, unsigned reason,
			   int want_rv)
{
	struct benchxdp *h;
	__u32 zero = 0;
	int fd, rv = 0, hfd;
	double ref, ns;

	if (m->only && !strstr(name, m->only))
		return;
	h = benchxdp__open();
	if (!h || len > (int)sizeof(h->rodata->tg_tmpl)) {
		printf("| %s | %d | - | - | **not run**: harness |\n", name, len);
		benchxdp__destroy(h);
		return;
	}
	memcpy((void *)h->rodata->tg_tmpl, frame, (size_t)len);
	h->rodata->tg_tmpl_len = (__u32)len;
	h->rodata->tg_len = (__u32)len;
	if (benchxdp__load(h)) {
		printf("| %s | %d | - | - | **not run**: harness load |\n", name, len);
		benchxdp__destroy(h);
		return;
	}
	hfd = bpf_program__fd(h->progs.mc_harness);
	fd = bpf_program__fd(h->progs.bare_drop);
	bpf_map_update_elem(bpf_map__fd(h->maps.mc_next), &zero, &fd, BPF_ANY);
	ref = run_prog(hfd, frame, len, m->repeat, &rv);
	printf("| harness + bare XDP_DROP (request restored, tail call) | %d | %.1f | %.2fx | %s; reference for "
	       "the next rung |\n", len, ref, m->bare_ns > 0 ? ref / m->bare_ns : 0, verdict_name(rv));
	fd = m->dp.prog_xdp_fd;
	if (bpf_map_update_elem(bpf_map__fd(h->maps.mc_next), &zero, &fd, BPF_ANY)) {
		printf("| %s | %d | - | - | **not run**: tail call into the datapath refused: %s |\n", name, len,
		       strerror(errno));
		benchxdp__destroy(h);
		return;
	}
	__u64 before = reason_packets(m, reason);
	ns = run_prog(hfd, frame, len, m->repeat, &rv);
	__u64 got = reason_packets(m, reason) - before, want = (__u64)m->repeat * MC_SAMPLES;
	double net = ns - ref + m->bare_ns;   /* the rung as if run bare: harness cost taken out */
	char check[160];
	if (got == want && rv == want_rv)
		snprintf(check, sizeof(check), "%s, %s x%llu; net of the harness %.1f ns (%.2fx bare drop)",
			 verdict_name(rv), reason_name(reason), (unsigned long long)got, net,
			 m->bare_ns > 0 ? net / m->bare_ns : 0);
	else
		snprintf(check, sizeof(check), "**unverified**: %s counted %llu of %llu, verdict %s (want %s)",
			 reason_name(reason), (unsigned long long)got, (unsigned long long)want, verdict_name(rv),
			 verdict_name(want_rv));
	printf("| %s | %d | %.1f | %.2fx | %s |\n", name, len, ns, ref > 0 ? ns / ref : 0, check);
	fflush(stdout);
	benchxdp__destroy(h);
}

/* The floor of any ban filter (bench's xdp_ban system, rx_ban): the ceiling's counting, the source found
 * with one inlined array probe, the drop counted. Next to Hyperion's ban hit it shows what is the ban's
 * own cost and what is Hyperion's bookkeeping. */
static void rung_ban_floor(struct mc *m, const uint8_t *frame, int len)
{
	const char *name = "ban floor: bench xdp_ban (source found with one array probe, drop counted)";
	int stats_fd = bpf_map__fd(m->bx->maps.rx_stats), rv, err;
	struct rx_ban_slot b;

	if (m->only && !strstr(name, m->only))
		return;
	err = rx_ban_parse(MC_BANNED, &b);
	if (!err)
		err = rx_ban_put(bpf_map__fd(m->bx->maps.rx_bans), &b);
	if (err) {
		printf("| %s | - | - | - | **not run**: %s |\n", name, strerror(-err));
		return;
	}
	__u64 before = rx_ban_drops(stats_fd), after;
	double ns = run_prog(bpf_program__fd(m->bx->progs.rx_ban), frame, len, m->repeat, &rv);

	after = rx_ban_drops(stats_fd);
	if (ns < 0 || rv != XDP_DROP || after - before != (__u64)m->repeat * MC_SAMPLES) {
		printf("| %s | %d | - | - | **unverified**: verdict %s, %llu of %llu frames counted as banned |\n",
		       name, len, ns < 0 ? "(test_run failed)" : verdict_name(rv),
		       (unsigned long long)(after - before), (unsigned long long)m->repeat * MC_SAMPLES);
		return;
	}
	printf("| %s | %d | %.1f | %.2fx | DROP, banned x%llu; reference for the next rungs |\n", name, len, ns,
	       m->bare_ns > 0 ? ns / m->bare_ns : 0, (unsigned long long)(after - before));
}

int main(int argc, char **argv)
{
	static struct mc m;
	static uint8_t f[MC_FRAME_MAX];
	struct hyp_loader_opts lo = { .pin_dir = "" };
	int len, rv;
	long evs = 0;

	bool quick = false;
	m.repeat = MC_REPEAT_FULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
			m.repeat = MC_REPEAT_QUICK;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			m.only = argv[++i];
		} else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
			m.repeat = (unsigned)strtoul(argv[++i], NULL, 0);
		} else {
			fprintf(stderr, "usage: %s [--quick] [--only RUNG-SUBSTRING] [--repeat N]\n", argv[0]);
			return 2;
		}
	}
	libbpf_set_print(NULL);
	m.bx = benchxdp__open_and_load();
	if (!m.bx || dp_open(&m.dp, &lo)) {
		fprintf(stderr, "micro: cannot load the bench programs or the datapath\n");
		return 1;
	}
	m.rb = ring_buffer__new(m.dp.fd_events, ev_count_cb, &evs, NULL);
	if (compile_sigs(&m.sigs1, 1, HYP_ACT_DROP) || compile_sigs(&m.sigs256, MC_SIGS_MANY, HYP_ACT_DROP))
		return 1;

	printf("## Microbenchmarks (BPF_PROG_TEST_RUN, ns/packet as the kernel measures it)\n\n");
	printf("repeat %u, median of %d runs; ratio = rung / bare XDP_DROP of the same frame size class.\n"
	       "The check column is the datapath's own stats: the rung's reason must count every packet.\n\n",
	       m.repeat, MC_SAMPLES);
	printf("| rung | frame B | ns/pkt | vs bare drop | check |\n|---|---:|---:|---:|---|\n");

	len = mk_frame(f, IPPROTO_UDP, 0, MC_SRC, 40000, 53, NULL, 18);
	m.bare_ns = run_prog(bpf_program__fd(m.bx->progs.bare_drop), f, len, m.repeat, &rv);
	printf("| bare XDP_DROP | %d | %.1f | 1.00x | %s |\n", len, m.bare_ns, verdict_name(rv));

	apply(&m, NULL, 1);
	len = mk_arp(f);
	rung(&m, "parse L2 only (ARP: pass_nonip)", f, len, m.repeat, HYP_R_PASS_NONIP, false);

	struct hyp_cidr c;
	cidr_parse(MC_ALLOWED, &c, false);
	allow_add(&m.dp, &c);
	len = mk_frame(f, IPPROTO_UDP, 0, MC_ALLOWED, 40000, 53, NULL, 18);
	rung(&m, "parse L2+L3, allowlist hit (pass_allow)", f, len, m.repeat, HYP_R_PASS_ALLOW, false);

	len = mk_frame(f, IPPROTO_TCP, TH_ACK_BENCH, MC_SRC, 40001, 80, NULL, 0);
	rung(&m, "flow hit: TCP ACK, established, no payload (pass_flow)", f, len, m.repeat, HYP_R_PASS_FLOW, false);

	len = mk_frame(f, IPPROTO_UDP, 0, MC_SRC, 40002, 53, NULL, 18);
	rung(&m, "flow hit: UDP, unreplied flow (pass_flow)", f, len, m.repeat, HYP_R_PASS_FLOW, false);

	/* The fast path as the target names it: a signature loaded, the flow's first segment scanned up to
	 * the stream depth, every later one passed unscanned (from the verdict cache). */
	if (apply_opts(&m, m.sigs1, 1, MC_DEPTH) == 0) {
		len = mk_frame(f, IPPROTO_TCP, TH_ACK_BENCH, MC_SRC, 40003, 80, NULL, 100);
		rung(&m, "flow hit: TCP, established, past its stream depth, 100 B payload (pass_flow)", f, len,
		     m.repeat, HYP_R_PASS_FLOW, false);
	}

	apply(&m, NULL, 1);

	/* Flow insert needs a new flow per packet, which a repeated frame is not (and conntrack ages flows
	 * on the coarse clock, so even a 1 ns timeout expires a flow once per tick, not per packet): one
	 * run per distinct flow instead. */
	if (!m.only)
		rung_insert(&m, f, quick ? MC_INSERT_FLOWS / 4 : MC_INSERT_FLOWS);

	/* SYN cookies: a SYN to an open port answered from XDP, no flow (what a SYN flood costs). */
	if (apply_opts(&m, NULL, 1, MC_SYNCOOKIES) == 0) {
		len = mk_syn(f, 40200, false);
		rung_harnessed(&m, "SYN answered with a cookie, no TCP options (tx_syncookie)", f, len,
			       HYP_R_TX_SYNCOOKIE, MC_XDP_TX);
		len = mk_syn(f, 40201, true);
		rung_harnessed(&m, "SYN answered with a cookie, Linux options MSS/SACK/TS/WS (tx_syncookie)", f, len,
			       HYP_R_TX_SYNCOOKIE, MC_XDP_TX);
	} else if (!m.only || strstr("SYN answered with a cookie", m.only)) {
		printf("| SYN answered with a cookie | - | - | - | **not run**: syn_cookies refused (kernel < 6.9?) |\n");
	}
	apply(&m, NULL, 1);

	cidr_parse(MC_BAN_NET, &c, false);
	ban_add(&m.dp, &c, 0, 0);

	/* The same SYN once a ban list exists (none covers MC_SRC): the pre-filter (runtime/blkfilter.c)
	 * skips the trie; then with its bits cleared, as without it, the LPM lookup every SYN paid. */
	if (apply_opts(&m, NULL, 1, MC_SYNCOOKIES) == 0) {
		len = mk_syn(f, 40202, false);
		rung_harnessed(&m, "SYN answered with a cookie, bans elsewhere: pre-filter, no lookup (tx_syncookie)",
			       f, len, HYP_R_TX_SYNCOOKIE, MC_XDP_TX);
		blkf_clear(&m.dp);
		rung_harnessed(&m, "SYN answered with a cookie, bans elsewhere: pre-filter off, LPM lookup (tx_syncookie)",
			       f, len, HYP_R_TX_SYNCOOKIE, MC_XDP_TX);
		blkf_rebuild(&m.dp);
	}
	len = mk_frame(f, IPPROTO_UDP, 0, MC_BANNED, 40000, 53, NULL, 18);
	rung_ban_floor(&m, f, len);
	apply_opts(&m, NULL, 1, MC_VCACHE_OFF);
	rung(&m, "ban hit, verdict cache off: LPM lookup (drop_banned, block events sampled away)", f, len, m.repeat,
	     HYP_R_DROP_BANNED, false);
	apply(&m, NULL, 1);
	rung(&m, "ban hit: verdict cache (drop_banned, block events sampled away)", f, len, m.repeat,
	     HYP_R_DROP_BANNED, false);

	static const unsigned sizes[] = { 16, 256, 1500 };
	for (int k = 0; k < 2; k++) {
		struct hyp_sigset *set = k ? m.sigs256 : m.sigs1;
		apply(&m, set, 1);
		for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			char name[128];
			len = mk_frame(f, IPPROTO_UDP, 0, MC_SRC, (uint16_t)(41000 + i), 53, NULL, sizes[i]);
			snprintf(name, sizeof(name), "payload scan %u B, %u signature%s, no match (pass_flow)", sizes[i],
				 set->nsigs, set->nsigs > 1 ? "s" : "");
			rung(&m, name, f, len, m.repeat, HYP_R_PASS_FLOW, false);
		}
		/* The first match marks the flow dropped (HYP_FF_DROP); a repeated frame is then its flood.
		 * Monitor mode marks nothing: there every packet is scanned and matched. */
		char name[128];
		apply_opts(&m, set, 1, MC_MONITOR);
		len = mk_frame(f, IPPROTO_UDP, 0, MC_SRC, (uint16_t)(42000 + k), 53, MC_SIG, 18);
		snprintf(name, sizeof(name), "signature match every packet (monitor mode), %u signature%s",
			 set->nsigs, set->nsigs > 1 ? "s" : "");
		rung(&m, name, f, len, m.repeat, HYP_STATS_MONITOR + HYP_R_DROP_SIG, false);
		apply_opts(&m, set, 1, MC_VCACHE_OFF);
		len = mk_frame(f, IPPROTO_UDP, 0, MC_SRC, (uint16_t)(42010 + k), 53, MC_SIG, 18);
		snprintf(name, sizeof(name), "dropped flow, verdict cache off: conntrack mark (drop_sig), %u signature%s",
			 set->nsigs, set->nsigs > 1 ? "s" : "");
		rung(&m, name, f, len, m.repeat, HYP_R_DROP_SIG, false);
		apply(&m, set, 1);
		len = mk_frame(f, IPPROTO_UDP, 0, MC_SRC, (uint16_t)(42020 + k), 53, MC_SIG, 18);
		snprintf(name, sizeof(name), "dropped flow: verdict cache hit (drop_sig, events sampled away), "
			 "%u signature%s", set->nsigs, set->nsigs > 1 ? "s" : "");
		rung(&m, name, f, len, m.repeat, HYP_R_DROP_SIG, false);
	}

	/* Event emit: same match, sampling off, ring drained between runs. Paired with the sampled run of
	 * the same size, the difference is the cost of reserving, filling and submitting one event. */
	apply(&m, m.sigs1, 1);
	len = mk_frame(f, IPPROTO_UDP, 0, MC_SRC, 42001, 53, MC_SIG, 18);
	rung(&m, "dropped flow, event sampled away (short runs)", f, len, MC_EV_REPEAT, HYP_R_DROP_SIG, true);
	apply(&m, m.sigs1, 0);
	rung(&m, "dropped flow + event emitted (short runs, ring drained)", f, len, MC_EV_REPEAT, HYP_R_DROP_SIG,
	     true);
	printf("\nevents consumed from the ring buffer: %ld\n", evs);

	ring_buffer__free(m.rb);
	sigset_free(m.sigs1);
	sigset_free(m.sigs256);
	free(m.sigs1);
	free(m.sigs256);
	dp_close(&m.dp);
	benchxdp__destroy(m.bx);
	return 0;
}
