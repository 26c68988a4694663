/* Per-source token buckets through the real XDP program: SYN and pps limits, burst, refill on the
 * datapath clock, per-source overrides, IPv6 prefix grouping, and "0 = disabled, no state". */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "tap.h"
#include "pkt.h"
#include "dptest.h"
#include "hyperion.skel.h"

enum {
	FLOWS_TEST_MAX = 4096,
	SPORT_BASE = 40000,
	NS = 1000000000,
	SYN_RATE = 1,               /* slow enough that the test's own run time adds no whole token */
	SYN_BURST = 3,
	PPS_RATE = 1,
	PPS_BURST = 4,
	OVERRIDE_RATE = 10,
	DISABLED_FLOOD = 100,
};

#define SERVER4 "198.51.100.1"
#define SERVER6 "2001:db8:ffff::1"

static uint16_t sport_next = SPORT_BASE;

static int pkt_from(const char *src, uint8_t proto, uint8_t flags, uint16_t sport, uint8_t *b)
{
	bool v6 = strchr(src, ':') != NULL;
	struct pkt_opts o = { .family = v6 ? 6 : 4, .src = src, .dst = v6 ? SERVER6 : SERVER4, .proto = proto,
			      .sport = sport, .dport = 80, .tcp_flags = flags, .seq = 1 };

	return pkt_build(&o, b, PKT_MAX);
}

/* A SYN opening a new connection (fresh source port). */
static int syn_from(const char *src, uint8_t *b)
{
	return pkt_from(src, IPPROTO_TCP, TH_SYN, sport_next++, b);
}

static bool open_fresh(struct dpt *t)
{
	int err = dpt_open(t, FLOWS_TEST_MAX, FLOWS_TEST_MAX);

	if (err)
		TAP_SKIP("dpt_open failed (%s): cannot load BPF here", strerror(-err));
	return !err;
}

/* Sends n SYNs from src; returns how many were dropped as DROP_RATE_SYN (others must be PASS_NEW). */
static int syns(struct dpt *t, const char *src, int n)
{
	uint8_t b[PKT_MAX];
	int i, drops = 0, other = 0;

	for (i = 0; i < n; i++) {
		int rc, len = syn_from(src, b), idx = dpt_xdp_reason(t, b, len, &rc);

		if (idx == HYP_R_DROP_RATE_SYN && rc == XDP_DROP)
			drops++;
		else if (!(idx == HYP_R_PASS_NEW && rc == XDP_PASS))
			other++;
	}
	if (other)
		printf("# %d SYNs from %s ended neither PASS_NEW nor DROP_RATE_SYN\n", other, src);
	return other ? -1 : drops;
}

static int rl_entries(struct dpt *t)
{
	struct hyp_src_key k, nk;
	void *prev = NULL;
	int n = 0;

	while (!bpf_map_get_next_key(bpf_map__fd(t->skel->maps.rl), prev, &nk) && n < 100000) {
		k = nk;
		prev = &k;
		n++;
	}
	return n;
}

static void advance(struct dpt *t, uint64_t ns)
{
	t->cfg.clock_offset_ns += ns;
	dpt_config_push(t);
}

static void test_syn_bucket(void)
{
	uint8_t b[PKT_MAX];
	struct dpt t;
	int len, n;
	const struct hyp_event *e;
	uint16_t est_port;

	if (!open_fresh(&t))
		return;
	t.cfg.syn_rate = SYN_RATE;
	t.cfg.syn_burst = SYN_BURST;
	dpt_config_push(&t);
	est_port = sport_next;
	TAP_EQ(syns(&t, "192.0.2.1", SYN_BURST), 0, "syn: the burst passes");
	dpt_events(&t);
	TAP_EQ(syns(&t, "192.0.2.1", 2), 2, "syn: beyond the burst, DROP_RATE_SYN");
	dpt_events(&t);
	e = dpt_event_find(&t, HYP_EV_RATELIMIT, &n);
	TAP_CHECK(n == 2 && e->reason == HYP_R_DROP_RATE_SYN && e->verdict == HYP_V_DROP,
		  "syn: each drop reported as a ratelimit event (%d)", n);
	TAP_EQ(syns(&t, "192.0.2.2", SYN_BURST), 0, "syn: another source has its own bucket");

	/* packets of existing flows and non-SYNs are not charged to the connection bucket */
	len = pkt_from("192.0.2.1", IPPROTO_TCP, TH_SYN, est_port, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_FLOW, "syn: retransmitted SYN of a known flow passes");
	len = pkt_from("192.0.2.1", IPPROTO_UDP, 0, 5353, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "syn: UDP from a limited source is not charged");

	advance(&t, 1ULL * NS);
	TAP_EQ(syns(&t, "192.0.2.1", 1), 0, "syn: one second refills one token");
	TAP_EQ(syns(&t, "192.0.2.1", 1), 1, "syn: and only one");
	advance(&t, 3600ULL * NS);
	TAP_EQ(syns(&t, "192.0.2.1", SYN_BURST + 1), 1, "syn: a long idle refills to the burst, not beyond");

	/* burst 0 means one second's worth */
	t.cfg.syn_burst = 0;
	t.cfg.syn_rate = 2;
	dpt_config_push(&t);
	TAP_EQ(syns(&t, "192.0.2.3", 3), 1, "syn: burst 0 = rate");
	dpt_close(&t);
}

static void test_pps_bucket(void)
{
	uint8_t b[PKT_MAX];
	struct dpt t;
	int i, len, pass = 0, drop = 0;

	if (!open_fresh(&t))
		return;
	t.cfg.pps_rate = PPS_RATE;
	t.cfg.pps_burst = PPS_BURST;
	dpt_config_push(&t);
	len = pkt_from("192.0.2.9", IPPROTO_UDP, 0, 1000, b);
	for (i = 0; i < PPS_BURST + 3; i++) {
		int rc, idx = dpt_xdp_reason(&t, b, len, &rc);

		pass += rc == XDP_PASS && (idx == HYP_R_PASS_NEW || idx == HYP_R_PASS_FLOW);
		drop += rc == XDP_DROP && idx == HYP_R_DROP_RATE_PPS;
	}
	TAP_EQ(pass, PPS_BURST, "pps: the burst passes");
	TAP_EQ(drop, 3, "pps: the rest is DROP_RATE_PPS");
	dpt_events(&t);
	TAP_CHECK(dpt_event_find(&t, HYP_EV_RATELIMIT, NULL) &&
		  dpt_event_find(&t, HYP_EV_RATELIMIT, NULL)->reason == HYP_R_DROP_RATE_PPS, "pps: reported");
	/* every protocol counts: an ICMP echo and a TCP ACK are refused as well */
	len = pkt_from("192.0.2.9", IPPROTO_TCP, TH_ACK, 1001, b);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_RATE_PPS, "pps: TCP from the same source refused");
	len = pkt_from("192.0.2.10", IPPROTO_UDP, 0, 1000, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "pps: another source passes");
	advance(&t, 2ULL * NS);
	len = pkt_from("192.0.2.9", IPPROTO_UDP, 0, 1000, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_FLOW, "pps: refilled after 2 s (1)");
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_FLOW, "pps: refilled after 2 s (2)");
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_RATE_PPS, "pps: two tokens, not three");
	dpt_close(&t);
}

static int set_override(struct dpt *t, const char *addr, int family, uint32_t syn_rate, uint32_t pps_rate)
{
	struct hyp_src_key k = { .family = family == 6 ? HYP_AF_INET6 : HYP_AF_INET };
	struct hyp_rl v = { .syn_rate = syn_rate, .pps_rate = pps_rate };

	inet_pton(family == 6 ? AF_INET6 : AF_INET, addr, k.addr);
	return bpf_map_update_elem(bpf_map__fd(t->skel->maps.rl), &k, &v, BPF_ANY) ? -errno : 0;
}

static void test_override(void)
{
	uint8_t b[PKT_MAX];
	struct dpt t;
	int i, len, pass = 0;

	if (!open_fresh(&t))
		return;
	t.cfg.syn_rate = 2;         /* burst 0: two per second */
	t.cfg.pps_rate = 1000;
	dpt_config_push(&t);
	TAP_EQ(set_override(&t, "192.0.2.50", 4, OVERRIDE_RATE, 0), 0, "override: written");
	TAP_EQ(syns(&t, "192.0.2.51", 3), 1, "override: a plain source gets the config rate");
	TAP_EQ(syns(&t, "192.0.2.50", OVERRIDE_RATE + 1), 1, "override: the overridden source gets its own");
	TAP_EQ(set_override(&t, "192.0.2.60", 4, 0, 2), 0, "override: pps override written");
	len = pkt_from("192.0.2.60", IPPROTO_UDP, 0, 7, b);
	for (i = 0; i < 4; i++)
		pass += dpt_xdp(&t, b, len) == XDP_PASS;
	TAP_EQ(pass, 2, "override: pps override replaces the config rate");
	dpt_close(&t);
}

static void test_ipv6_prefix(void)
{
	struct hyp_src_key k = { .family = HYP_AF_INET6 };
	struct hyp_rl v;
	struct dpt t;

	if (!open_fresh(&t))
		return;
	t.cfg.syn_rate = SYN_RATE;
	t.cfg.syn_burst = SYN_BURST;
	dpt_config_push(&t);
	TAP_EQ(syns(&t, "2001:db8:1:2::1", 2), 0, "v6 /64: first address");
	TAP_EQ(syns(&t, "2001:db8:1:2:ffff::9", 2), 1, "v6 /64: another address of the /64 shares the bucket");
	TAP_EQ(syns(&t, "2001:db8:1:3::1", SYN_BURST), 0, "v6 /64: the next /64 has its own");
	inet_pton(AF_INET6, "2001:db8:1:2::", k.addr);
	TAP_EQ(bpf_map_lookup_elem(bpf_map__fd(t.skel->maps.rl), &k, &v), 0, "v6 /64: keyed by the prefix");
	TAP_EQ(rl_entries(&t), 2, "v6 /64: one entry per /64");

	t.cfg.rl_v6_prefix = 128;
	dpt_config_push(&t);
	TAP_EQ(syns(&t, "2001:db8:9::1", SYN_BURST), 0, "v6 /128: first address");
	TAP_EQ(syns(&t, "2001:db8:9::2", SYN_BURST), 0, "v6 /128: neighbour is separate");
	t.cfg.rl_v6_prefix = 48;
	dpt_config_push(&t);
	TAP_EQ(syns(&t, "2001:db8:7:1::1", 2), 0, "v6 /48: first /64");
	TAP_EQ(syns(&t, "2001:db8:7:2::1", 2), 1, "v6 /48: another /64 of the /48 shares");
	dpt_close(&t);
}

static void test_disabled(void)
{
	uint8_t b[PKT_MAX];
	struct dpt t;
	int i, len, pass = 0;

	if (!open_fresh(&t))
		return;
	/* defaults: syn_rate = pps_rate = 0 */
	TAP_EQ(syns(&t, "192.0.2.77", DISABLED_FLOOD), 0, "disabled: no SYN limit");
	len = pkt_from("192.0.2.77", IPPROTO_UDP, 0, 9, b);
	for (i = 0; i < DISABLED_FLOOD; i++)
		pass += dpt_xdp(&t, b, len) == XDP_PASS;
	TAP_EQ(pass, DISABLED_FLOOD, "disabled: no pps limit");
	TAP_EQ(rl_entries(&t), 0, "disabled: the rl map is never touched");
	/* an override alone does not enable a limit that the config disables */
	TAP_EQ(set_override(&t, "192.0.2.78", 4, 1, 1), 0, "disabled: override written");
	TAP_EQ(syns(&t, "192.0.2.78", 5), 0, "disabled: override ignored while the limit is off");
	dpt_close(&t);
}

/* Rate limits apply after bans and the allowlist: an allowlisted source is never limited. */
static void test_allowlist_bypasses(void)
{
	struct dpt t;

	if (!open_fresh(&t))
		return;
	t.cfg.syn_rate = SYN_RATE;
	t.cfg.syn_burst = 1;
	dpt_config_push(&t);
	dpt_allow(&t, "192.0.2.200/32");
	{
		uint8_t b[PKT_MAX];
		int i, ok = 0, len;

		for (i = 0; i < 5; i++) {
			int rc;

			len = syn_from("192.0.2.200", b);
			ok += dpt_xdp_reason(&t, b, len, &rc) == HYP_R_PASS_ALLOW;
		}
		TAP_EQ(ok, 5, "allowlisted source is not rate limited");
	}
	dpt_close(&t);
}

int main(void)
{
	test_syn_bucket();
	test_pps_bucket();
	test_override();
	test_ipv6_prefix();
	test_disabled();
	test_allowlist_bypasses();
	return tap_done();
}
