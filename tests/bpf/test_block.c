/* Ban and allow lists through the real XDP program: CIDR coverage, expiry on the datapath clock,
 * allowlist precedence, hit counting, BLOCK events, and what bans do not touch. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include "tap.h"
#include "pkt.h"
#include "dptest.h"
#include "maps.h"
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hyperion.skel.h"

#define NS_PER_S 1000000000ULL

enum {
	FLOWS_TEST_MAX = 4096,
	SPORT_BASE = 20000,
	BAN_REASON = 7,
};

static uint16_t sport_next = SPORT_BASE;

static int syn_from(const char *src, const char *dst, uint16_t dport, uint8_t *b, uint16_t *sport)
{
	struct pkt_opts o = { .family = strchr(src, ':') ? 6 : 4, .src = src, .dst = dst, .proto = IPPROTO_TCP,
			      .sport = sport_next++, .dport = dport, .tcp_flags = TH_SYN, .seq = 1 };

	if (sport)
		*sport = o.sport;
	return pkt_build(&o, b, PKT_MAX);
}

/* One fresh SYN from src through XDP: verdict and the single stats entry it counts (dpt_expect). */
static bool syn_expect(struct dpt *t, const char *src, const char *dst, uint16_t dport, int want_rc,
		       unsigned want_stat, const char *what)
{
	uint8_t b[PKT_MAX];
	int len = syn_from(src, dst, dport, b, NULL);

	return dpt_expect(t, b, len, want_rc, want_stat, what);
}

static bool open_fresh(struct dpt *t)
{
	struct dpt_opts o = { .flows_max = FLOWS_TEST_MAX, .flows_new_max = FLOWS_TEST_MAX };

	return dpt_open_or_report(t, &o);
}

static void test_v4_cidr_ban_covers_prefix_only(void)
{
	uint8_t b[PKT_MAX];
	struct hyp_ban ban;
	struct dpt t;
	int len;

	if (!open_fresh(&t))
		return;
	TAP_EQ(dpt_ban(&t, "203.0.113.0/24", 0, BAN_REASON), 0, "ban 203.0.113.0/24");
	syn_expect(&t, "203.0.113.5", "198.51.100.1", 80,
		   XDP_DROP, HYP_R_DROP_BANNED, "v4 /24: first host dropped");
	syn_expect(&t, "203.0.113.250", "198.51.100.1", 22,
		   XDP_DROP, HYP_R_DROP_BANNED, "v4 /24: another host dropped");
	syn_expect(&t, "203.0.114.5", "198.51.100.1", 80,
		   XDP_PASS, HYP_R_PASS_NEW, "v4 /24: next prefix untouched");
	syn_expect(&t, "198.51.100.1", "203.0.113.5", 80,
		   XDP_PASS, HYP_R_PASS_NEW, "v4: a banned destination is not a banned source");
	{
		struct pkt_opts o = { .family = 4, .src = "203.0.113.9", .proto = IPPROTO_UDP, .sport = 53,
				      .dport = 53 };

		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_BANNED, "v4 ban covers UDP");
		o.proto = IPPROTO_ICMP;
		o.icmp_type = 8;
		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_BANNED, "v4 ban covers ICMP echo");
		o.proto = IPPROTO_TCP;
		o.frag_offset = 100;
		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_BANNED, "v4 ban is checked before the fragment policy");
	}
	TAP_EQ(dpt_ban_get(&t, "203.0.113.0/24", &ban), 0, "ban entry readable");
	TAP_EQ(ban.hits, 5, "ban hits count the five dropped packets");
	TAP_EQ(ban.reason, BAN_REASON, "ban reason untouched by the datapath");
	TAP_EQ(dpt_counter(&t, HYP_C_SEEN), dpt_stats_total(&t), "books: seen == sum(stats)");
	dpt_close(&t);
}

static void test_v6_cidr_ban_and_longest_prefix(void)
{
	struct dpt t;

	if (!open_fresh(&t))
		return;
	TAP_EQ(dpt_ban(&t, "2001:db8:bad::/48", 0, 1), 0, "ban 2001:db8:bad::/48");
	TAP_EQ(dpt_ban(&t, "2001:db8:cafe::7", 0, 2), 0, "ban 2001:db8:cafe::7/128");
	syn_expect(&t, "2001:db8:bad:1::5", "2001:db8::2", 80,
		   XDP_DROP, HYP_R_DROP_BANNED, "v6 /48: host inside dropped");
	syn_expect(&t, "2001:db8:bae::5", "2001:db8::2", 80,
		   XDP_PASS, HYP_R_PASS_NEW, "v6 /48: neighbouring /48 untouched");
	syn_expect(&t, "2001:db8:cafe::7", "2001:db8::2", 80,
		   XDP_DROP, HYP_R_DROP_BANNED, "v6 /128: exact host dropped");
	syn_expect(&t, "2001:db8:cafe::8", "2001:db8::2", 80,
		   XDP_PASS, HYP_R_PASS_NEW, "v6 /128: next host untouched");
	/* the v4 trie must not answer for v6 sources or the other way round */
	TAP_EQ(dpt_ban(&t, "192.0.2.0/24", 0, 3), 0, "ban 192.0.2.0/24");
	syn_expect(&t, "2001:db8::1", "2001:db8::2", 80,
		   XDP_PASS, HYP_R_PASS_NEW, "v4 ban does not leak into v6 lookups");
	dpt_close(&t);
}

/* Expiry is judged on the datapath clock (ktime + clock_offset_ns), so moving the offset ages bans. */
static void test_ban_expiry_follows_datapath_clock(void)
{
	struct dpt t;

	if (!open_fresh(&t))
		return;
	TAP_EQ(dpt_ban(&t, "203.0.113.0/25", 60 * NS_PER_S, BAN_REASON), 0, "ban /25 for 60 s");
	TAP_EQ(dpt_ban(&t, "203.0.113.128/25", 0, BAN_REASON), 0, "ban /25 permanently");
	syn_expect(&t, "203.0.113.5", "198.51.100.1", 80,
		   XDP_DROP, HYP_R_DROP_BANNED, "timed ban active at once");
	t.cfg.clock_offset_ns = 50 * NS_PER_S;
	dpt_config_push(&t);
	syn_expect(&t, "203.0.113.5", "198.51.100.1", 80,
		   XDP_DROP, HYP_R_DROP_BANNED, "timed ban still active 50 s later");
	t.cfg.clock_offset_ns = 61 * NS_PER_S;
	dpt_config_push(&t);
	syn_expect(&t, "203.0.113.5", "198.51.100.1", 80,
		   XDP_PASS, HYP_R_PASS_NEW, "timed ban expired 61 s later");
	t.cfg.clock_offset_ns = 365 * 24 * 3600 * NS_PER_S;
	dpt_config_push(&t);
	syn_expect(&t, "203.0.113.200", "198.51.100.1", 80,
		   XDP_DROP, HYP_R_DROP_BANNED, "permanent ban (expires 0) still active a year later");
	dpt_close(&t);
}

static void test_allowlist_beats_ban(void)
{
	struct hyp_ban ban;
	struct dpt t;

	if (!open_fresh(&t))
		return;
	dpt_ban(&t, "203.0.113.0/24", 0, BAN_REASON);
	dpt_ban(&t, "2001:db8:bad::/48", 0, BAN_REASON);
	TAP_EQ(dpt_allow(&t, "203.0.113.5/32"), 0, "allow 203.0.113.5 inside the banned /24");
	TAP_EQ(dpt_allow(&t, "2001:db8:bad:1::/64"), 0, "allow a /64 inside the banned /48");
	/* no port open: the allowlist must also bypass the port policy */
	t.cfg.tcp_all_open = 0;
	t.cfg.udp_all_open = 0;
	dpt_config_push(&t);
	syn_expect(&t, "203.0.113.5", "198.51.100.1", 80,
		   XDP_PASS, HYP_R_PASS_ALLOW, "allowlisted v4 host passes despite ban and closed port");
	syn_expect(&t, "203.0.113.6", "198.51.100.1", 80,
		   XDP_DROP, HYP_R_DROP_BANNED, "its banned neighbour is dropped");
	syn_expect(&t, "2001:db8:bad:1::99", "2001:db8::2", 80,
		   XDP_PASS, HYP_R_PASS_ALLOW, "allowlisted v6 /64 passes despite the /48 ban");
	syn_expect(&t, "2001:db8:bad:2::99", "2001:db8::2", 80,
		   XDP_DROP, HYP_R_DROP_BANNED, "the rest of the v6 /48 is dropped");
	dpt_ban_get(&t, "203.0.113.0/24", &ban);
	TAP_EQ(ban.hits, 1, "allowlisted packets do not count as ban hits");
	dpt_close(&t);
}

static void test_block_event_and_scope(void)
{
	uint8_t b[PKT_MAX], want[16];
	const struct hyp_event *e;
	uint64_t t0, t1;
	uint16_t sport;
	struct dpt t;
	int len, n;

	if (!open_fresh(&t))
		return;
	dpt_ban(&t, "203.0.113.0/24", 0, BAN_REASON);
	dpt_ban(&t, "2001:db8:bad::/48", 0, BAN_REASON);
	dpt_events(&t);
	len = syn_from("203.0.113.5", "198.51.100.1", 443, b, &sport);
	t0 = dpt_mono_ns();
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_BANNED, "v4 banned SYN");
	t1 = dpt_mono_ns();
	dpt_events(&t);
	e = dpt_event_find(&t, HYP_EV_BLOCK, &n);
	TAP_EQ(n, 1, "one BLOCK event for one banned packet");
	if (e) {
		inet_pton(AF_INET, "203.0.113.5", want);
		TAP_CHECK(!memcmp(e->saddr, want, 4) && !e->saddr[4] && !e->saddr[15], "block: saddr, v4 zero-padded");
		inet_pton(AF_INET, "198.51.100.1", want);
		TAP_CHECK(!memcmp(e->daddr, want, 4), "block: daddr");
		/* bans are judged before L4 is parsed: ports are 0 or, if the event re-reads them, the real ones */
		TAP_CHECK((e->sport == htons(sport) && e->dport == htons(443)) || (!e->sport && !e->dport),
			  "block: ports in network order or both 0 (got %u %u)", ntohs(e->sport), ntohs(e->dport));
		TAP_EQ(e->proto, IPPROTO_TCP, "block: proto");
		TAP_EQ(e->family, HYP_AF_INET, "block: family");
		TAP_EQ(e->verdict, HYP_V_DROP, "block: verdict DROP");
		TAP_EQ(e->reason, HYP_R_DROP_BANNED, "block: reason");
		TAP_EQ(e->dir, 0, "block: ingress");
		TAP_EQ(e->pkt_len, len, "block: pkt_len is the frame length");
		TAP_EQ(e->ifindex, if_nametoindex("lo"), "block: ifindex of the test-run device (lo)");
		TAP_CHECK(e->ts_ns >= t0 && e->ts_ns <= t1, "block: ts_ns taken during the run");
		TAP_EQ(e->suppressed, 0, "block: nothing suppressed");
		TAP_EQ(e->sig, 0xffffffffu, "block: no signature");
		TAP_EQ(e->state, HYP_CT_NONE, "block: no flow");
	}
	len = syn_from("2001:db8:bad::5", "2001:db8::2", 22, b, &sport);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_BANNED, "v6 banned SYN");
	dpt_events(&t);
	e = dpt_event_find(&t, HYP_EV_BLOCK, &n);
	TAP_EQ(n, 1, "one BLOCK event for the v6 packet");
	if (e) {
		inet_pton(AF_INET6, "2001:db8:bad::5", want);
		TAP_CHECK(!memcmp(e->saddr, want, 16), "block v6: saddr");
		TAP_EQ(e->family, HYP_AF_INET6, "block v6: family");
		TAP_EQ(e->dport, htons(22), "block v6: dport");
	}

	/* bans judge ingress only: the tc program never drops and never counts a ban */
	len = syn_from("203.0.113.5", "198.51.100.1", 80, b, NULL);
	TAP_EQ(dpt_tc(&t, b, len), 0, "tc egress passes a packet from a banned address");
	TAP_EQ(dpt_stat(&t, HYP_R_DROP_BANNED), 2, "tc egress did not count a ban drop");

	/* monitor mode: the ban is reported, the packet passes */
	t.cfg.mode = HYP_MODE_MONITOR;
	dpt_config_push(&t);
	syn_expect(&t, "203.0.113.5", "198.51.100.1", 80,
		   XDP_PASS, HYP_STATS_MONITOR + HYP_R_DROP_BANNED, "monitor mode: banned source passes");
	dpt_events(&t);
	e = dpt_event_find(&t, HYP_EV_BLOCK, &n);
	TAP_CHECK(n == 1 && e->verdict == HYP_V_MONITOR && e->reason == HYP_R_DROP_BANNED,
		  "monitor mode: BLOCK event with verdict MONITOR");
	dpt_close(&t);
}

/* A flooding banned source is answered from the per-CPU verdict cache once its ban counted
 * HYP_VCACHE_BAN_MIN hits (64): every packet still counts as drop_banned, the ban's hits stay within
 * 63 per CPU of the truth, and an unban or an allowlist entry (both bump the state epoch) ends the cached
 * drop at the very next packet. */
static void test_ban_verdict_cache(void)
{
	struct hyp_lpm4_key k = { .prefixlen = 24, .addr = { 203, 0, 113, 0 } };
	const int n = 1000, ncpu = libbpf_num_possible_cpus();
	uint8_t b[PKT_MAX];
	struct hyp_ban ban;
	uint64_t hits0, drops0;
	struct dpt t;
	int len, i, bad = 0, rc;

	if (!open_fresh(&t))
		return;
	TAP_EQ(dpt_ban(&t, "203.0.113.0/24", 0, BAN_REASON), 0, "vcache: ban 203.0.113.0/24");
	hits0 = dpt_counter(&t, HYP_C_VCACHE_HIT);
	drops0 = dpt_stat(&t, HYP_R_DROP_BANNED);
	len = syn_from("203.0.113.9", "198.51.100.1", 80, b, NULL);
	for (i = 0; i < n; i++)
		if (dpt_xdp(&t, b, len) != XDP_DROP)
			bad++;
	TAP_EQ(bad, 0, "vcache: %d frames of a flood from a banned source all dropped", n);
	TAP_EQ(dpt_stat(&t, HYP_R_DROP_BANNED) - drops0, (uint64_t)n, "vcache: every one counted drop_banned");
	TAP_CHECK(dpt_counter(&t, HYP_C_VCACHE_HIT) - hits0 >= (uint64_t)(n - 64 - n / 64),
		  "vcache: the flood past the first 64 came from the cache (%" PRIu64 " hits)",
		  dpt_counter(&t, HYP_C_VCACHE_HIT) - hits0);
	TAP_EQ(dpt_ban_get(&t, "203.0.113.0/24", &ban), 0, "vcache: ban entry readable");
	TAP_CHECK(ban.hits <= (uint32_t)n && ban.hits + 63u * (uint32_t)ncpu >= (uint32_t)n,
		  "vcache: ban hits %u within 63 per CPU of %d", ban.hits, n);

	/* what ban_del() does: delete, then bump the epoch */
	rc = bpf_map_delete_elem(bpf_map__fd(t.skel->maps.bans4), &k);
	TAP_EQ(rc, 0, "vcache: unban");
	TAP_EQ(state_epoch_bump(bpf_map__fd(t.skel->maps.gen)), 0, "vcache: epoch bumped");
	TAP_EQ(dpt_xdp(&t, b, len), XDP_PASS, "vcache: the next frame after the unban passes");

	TAP_EQ(dpt_ban(&t, "203.0.113.0/24", 0, BAN_REASON), 0, "vcache: banned again");
	for (i = 0; i < 200; i++)
		dpt_xdp(&t, b, len);
	TAP_EQ(dpt_allow(&t, "203.0.113.9/32"), 0, "vcache: allowlist the source");
	syn_expect(&t, "203.0.113.9", "198.51.100.1", 80, XDP_PASS, HYP_R_PASS_ALLOW,
		   "vcache: the allowlist beats the cached ban at once");
	TAP_EQ(dpt_counter(&t, HYP_C_SEEN), dpt_stats_total(&t), "vcache: books: seen == sum(stats)");
	dpt_close(&t);
}

int main(void)
{
	test_v4_cidr_ban_covers_prefix_only();
	test_v6_cidr_ban_and_longest_prefix();
	test_ban_expiry_follows_datapath_clock();
	test_allowlist_beats_ban();
	test_block_event_and_scope();
	test_ban_verdict_cache();
	return tap_done();
}
