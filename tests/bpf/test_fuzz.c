/* Mutation fuzzing of frames through the real XDP and tc programs, checked against a reference parser. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "tap.h"
#include "pkt.h"
#include "rand.h"
#include "dptest.h"
#include "sigcompile.h"
#include "sigtest.h"
#include "maps.h"
#include "hyperion.skel.h"

/*
 * What this checks, for every frame (valid ones built by pkt.h and mutations of them):
 *  - the program runs and returns XDP_PASS or XDP_DROP (tc: TC_ACT_OK), never XDP_ABORTED;
 *  - exactly one stats entry grows, by one packet and the frame's length, and HYP_C_SEEN grows by one
 *    (tc: no stats entry grows, only HYP_C_EGRESS_SEEN);
 *  - XDP_DROP comes with a DROP_* entry, XDP_PASS with a PASS_* or monitor entry;
 *  - the reason agrees with ref_classify(), a user-space re-statement of the header rules in
 *    docs/design.md and lib/hyperion_abi.h: for everything decided before conntrack (L2, L3, lists,
 *    fragments, L4 header) exactly, after it within the set of reasons the rules allow; signature
 *    verdicts against sigset_scan: UDP exactly, TCP for patterns wholly inside the scanned bytes;
 *  - events: at most three per ingress frame and two per egress frame are attempted, kind and reason
 *    agree with the verdict, match events carry the packet's payload bytes;
 *  - a frame conntrack must not see (decided before it, untracked protocol or message, refused TCP
 *    flags) leaves the conntrack counters alone, on ingress and on egress;
 * and after every batch: the books balance (HYP_C_SEEN == sum of stats), every flow in flows/flows_new
 * has a canonical key (the one runtime/maps.c flow_key_make builds from either direction) and a state
 * that fits its protocol and map, and inserts - deletes >= live entries.
 * Seed and frames per round: HYP_FUZZ_SEED, HYP_FUZZ_FRAMES (environment) for longer runs.
 */

#define FUZZ_SEED_DEFAULT 0x5eed0f1a7e5ULL
#define FUZZ_FRAMES_DEFAULT 6000    /* per round; 4 rounds stay well under the suite's time budget */
#define FUZZ_FLOWS_MAX 2048         /* small maps: LRU eviction is exercised too */
#define FUZZ_SESSIONS 40            /* conversations interleaved at any time */
#define FUZZ_WALK_EVERY 1000        /* frames between full walks of the flow maps */
#define FUZZ_AGE_EVERY 1700         /* frames between clock jumps that expire flows */
#define FUZZ_AGE_NS (200ULL * 1000000000ULL)   /* beyond every timeout but ESTABLISHED/UDP_REPLIED */
#define FUZZ_REPORT_MAX 6           /* detailed failure reports per invariant and round */
#define FUZZ_PAYLOAD_MAX 300
#define FUZZ_TINY_RING 4096         /* ring buffer bytes of the round that loses events (~25 events) */
#define FUZZ_TINY_DRAIN 400         /* that round drains only every this many frames */
#define ETH_MIN 14                  /* BPF_PROG_TEST_RUN refuses shorter frames */
#define IPV4_HDR_MIN 20
#define IPV6_HDR_MIN 40
#define EV_MAX_XDP 3                /* expiry flow_end + flow_new/flow_end + the verdict's event */
#define EV_MAX_TC 2                 /* expiry flow_end + flow_new/flow_end */
#define PARSE_OFF_MAX 16383         /* bpf/parse.h HYP_PARSE_OFF_MAX */
#define IPV4_FRAG_MASK 0x1fff
#define IPV6_FRAG_MASK 0xfff8
#define REF_CONTINUE (-1)
/* The datapath judges every L4 header, ICMP included, against the IP length, not the frame (this fuzzer
 * found ICMP headers completed by Ethernet padding passing); 0 models the old, frame-only rule. */
#define REF_ICMP_CHECKS_IP_LEN 1
#define RBIT(r) (1u << (r))
#define RMASK_DROPS (((1u << (HYP_R_DROP_SIG + 1)) - 1) & ~((1u << HYP_R_DROP_BANNED) - 1))

enum { ETHT_IP = 0x0800, ETHT_IP6 = 0x86dd, ETHT_8021Q = 0x8100, ETHT_8021AD = 0x88a8, ETHT_ARP = 0x0806 };
enum { NH_HOP = 0, NH_RT = 43, NH_FRAG = 44, NH_AH = 51, NH_DST = 60, NH_GRE = 47, NH_SCTP = 132 };

/* ---- the signatures loaded into both generations ---- */
static struct hyp_sigset set;
static struct hyp_sigdef defs[8];
static const struct { const char *name, *pat; uint8_t action, flags, proto; uint16_t port; } sig_table[] = {
	{ "drop-any", "EVILDROP", HYP_ACT_DROP, 0, 0, 0 },
	{ "ban-tcp80", "BANME", HYP_ACT_BAN, 0, IPPROTO_TCP, 80 },
	{ "alert-nocase", "alertme", HYP_ACT_ALERT, HYP_SIGF_NOCASE, 0, 0 },
	{ "dns-drop", "\xff" "QUERY", HYP_ACT_DROP, 0, IPPROTO_UDP, 53 },
	{ "alert-udp", "ab", HYP_ACT_ALERT, 0, IPPROTO_UDP, 0 },
	{ "evil-8080", "evil", HYP_ACT_DROP, HYP_SIGF_NOCASE, 0, 8080 },
};
#define NSIGS (sizeof(sig_table) / sizeof(sig_table[0]))

/* ---- address pools: TEST-NET only; index 0.. are clients, servers, then listed sources ---- */
static const char *const v4_clients[] = { "192.0.2.1", "192.0.2.2", "192.0.2.77", "198.51.100.9" };
static const char *const v4_servers[] = { "198.51.100.1", "198.51.100.2", "192.0.2.3" };
static const char *const v6_clients[] = { "2001:db8::1", "2001:db8::2", "2001:db8:1::77", "2001:db8:2::9" };
static const char *const v6_servers[] = { "2001:db8::3", "2001:db8:1::1", "2001:db8:ff::1" };
#define V4_BANNED "203.0.113.5"
#define V4_ALLOWED "192.0.2.200"
#define V6_BANNED "2001:db8:bad::5"
#define V6_ALLOWED "2001:db8:a11::1"
static const uint16_t ports[] = { 80, 443, 53, 8080, 22, 40000, 40001, 51000, 1, 65535 };

struct listed {
	int family;
	uint32_t plen;
	uint8_t addr[16];
};
/* Mirrors of what is written into allow4/6 and bans4/6. */
static const struct { const char *cidr; bool ban; } lists[] = {
	{ "203.0.113.0/24", true }, { "2001:db8:bad::/48", true },
	{ V4_ALLOWED "/32", false }, { "2001:db8:a11::/48", false },
};
#define NLISTS (sizeof(lists) / sizeof(lists[0]))
static struct listed listed[NLISTS];

static void listed_parse(void)
{
	for (unsigned i = 0; i < NLISTS; i++) {
		char buf[64];
		char *slash;

		snprintf(buf, sizeof(buf), "%s", lists[i].cidr);
		slash = strchr(buf, '/');
		*slash = 0;
		listed[i].family = strchr(buf, ':') ? 6 : 4;
		listed[i].plen = atoi(slash + 1);
		memset(listed[i].addr, 0, 16);
		inet_pton(listed[i].family == 6 ? AF_INET6 : AF_INET, buf, listed[i].addr);
	}
}

static bool prefix_match(const uint8_t *a, const uint8_t *net, uint32_t plen)
{
	uint32_t full = plen / 8, rest = plen % 8;

	if (memcmp(a, net, full))
		return false;
	return !rest || ((a[full] ^ net[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static bool list_hit(int family, const uint8_t *saddr, bool ban)
{
	for (unsigned i = 0; i < NLISTS; i++)
		if (lists[i].ban == ban && listed[i].family == family && prefix_match(saddr, listed[i].addr,
										     listed[i].plen))
			return true;
	return false;
}

/* ---- the reference classifier ---- */
struct ref {
	int stage;                  /* reason decided before conntrack, or REF_CONTINUE */
	int family;                 /* 4 / 6, 0 before L3 */
	uint8_t proto, tcp_flags, icmp_type;
	bool nonfirst, l4;          /* l4: the L4 step ran and succeeded */
	uint8_t saddr[16], daddr[16];
	uint16_t sport, dport;      /* host order */
	uint32_t l4_off, l3_end, pay_off, pay_len;
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static bool is_ext(uint8_t nh)
{
	return nh == NH_HOP || nh == NH_RT || nh == NH_DST || nh == NH_FRAG || nh == NH_AH;
}

static bool ref_is_icmp(const struct ref *r)
{
	return (r->family == 4 && r->proto == IPPROTO_ICMP) || (r->family == 6 && r->proto == IPPROTO_ICMPV6);
}

static bool ref_is_echo(const struct ref *r)
{
	return r->family == 4 ? r->icmp_type == 8 || r->icmp_type == 0 : r->icmp_type == 128 || r->icmp_type == 129;
}

static bool ref_in(uint32_t off, uint32_t n, uint32_t len)
{
	return off <= PARSE_OFF_MAX && off + n <= len;
}

static int ref_l2_l3(const uint8_t *b, uint32_t len, struct ref *r)
{
	uint32_t off = 14, plen;
	uint16_t et;

	if (len < 14)
		return HYP_R_DROP_MALFORMED_L2;
	et = rd16(b + 12);
	for (int i = 0; i <= HYP_VLAN_MAX; i++) {
		if (et != ETHT_8021Q && et != ETHT_8021AD)
			break;
		if (i == HYP_VLAN_MAX)
			return HYP_R_DROP_VLAN_DEPTH;
		if (off + 4 > len)
			return HYP_R_DROP_MALFORMED_L2;
		et = rd16(b + off + 2);
		off += 4;
	}
	if (et == ETHT_IP) {
		const uint8_t *ip = b + off;
		uint32_t hlen, tot;

		if (!ref_in(off, 20, len) || ip[0] >> 4 != 4 || (ip[0] & 15) < 5)
			return HYP_R_DROP_MALFORMED_L3;
		hlen = (ip[0] & 15) * 4;
		tot = rd16(ip + 2);
		if (!ref_in(off, hlen, len) || tot < hlen)
			return HYP_R_DROP_MALFORMED_L3;
		r->family = 4;
		r->proto = ip[9];
		memcpy(r->saddr, ip + 12, 4);
		memcpy(r->daddr, ip + 16, 4);
		r->nonfirst = (rd16(ip + 6) & IPV4_FRAG_MASK) != 0;
		r->l4_off = off + hlen;
		r->l3_end = off + tot < len ? off + tot : len;
		return REF_CONTINUE;
	}
	if (et != ETHT_IP6)
		return HYP_R_PASS_NONIP;
	if (!ref_in(off, 40, len) || b[off] >> 4 != 6)
		return HYP_R_DROP_MALFORMED_L3;
	r->family = 6;
	memcpy(r->saddr, b + off + 8, 16);
	memcpy(r->daddr, b + off + 24, 16);
	plen = rd16(b + off + 4);
	uint8_t nh = b[off + 6];
	off += 40;
	r->l3_end = plen ? (off + plen < len ? off + plen : len) : len;
	for (int i = 0; i < HYP_IPV6_EXT_MAX && is_ext(nh); i++) {
		const uint8_t *h = b + off;

		if (!ref_in(off, 8, len))
			return HYP_R_DROP_EXT_CHAIN;
		if (nh == NH_FRAG && (rd16(h + 2) & IPV6_FRAG_MASK)) {
			r->nonfirst = true;
			nh = h[0];
			off += 8;
			goto done;
		}
		uint32_t hl = nh == NH_FRAG ? 8 : nh == NH_AH ? (h[1] + 2u) * 4 : (h[1] + 1u) * 8;

		nh = h[0];
		off += hl;
		if (off > PARSE_OFF_MAX || off > len)
			return HYP_R_DROP_EXT_CHAIN;
	}
	if (is_ext(nh))
		return HYP_R_DROP_EXT_CHAIN;
done:
	r->proto = nh;
	r->l4_off = off;
	return REF_CONTINUE;
}

static int ref_l4(const uint8_t *b, uint32_t len, struct ref *r)
{
	uint32_t off = r->l4_off;

	if (r->proto == IPPROTO_TCP) {
		uint32_t hlen;

		if (!ref_in(off, 20, len))
			return HYP_R_DROP_MALFORMED_L4;
		hlen = (b[off + 12] >> 4) * 4;
		if (hlen < 20 || !ref_in(off, hlen, len) || off + hlen > r->l3_end)
			return HYP_R_DROP_MALFORMED_L4;
		r->sport = rd16(b + off);
		r->dport = rd16(b + off + 2);
		r->tcp_flags = b[off + 13];
		r->pay_off = off + hlen;
		r->pay_len = r->l3_end - r->pay_off;
	} else if (r->proto == IPPROTO_UDP) {
		if (!ref_in(off, 8, len) || off + 8 > r->l3_end)
			return HYP_R_DROP_MALFORMED_L4;
		r->sport = rd16(b + off);
		r->dport = rd16(b + off + 2);
		r->pay_off = off + 8;
		r->pay_len = r->l3_end - r->pay_off;
	} else if (ref_is_icmp(r)) {
		if (!ref_in(off, 8, len) || (REF_ICMP_CHECKS_IP_LEN && off + 8 > r->l3_end))
			return HYP_R_DROP_MALFORMED_L4;
		r->icmp_type = b[off];
		if (ref_is_echo(r))
			r->sport = r->dport = rd16(b + off + 4);
	}
	r->l4 = true;
	return REF_CONTINUE;
}

/* Everything the datapath decides before conntrack (docs/design.md order: L2, L3, allowlist, bans,
 * fragments, L4). Returns the reason, or REF_CONTINUE if conntrack decides. */
static int ref_classify(const uint8_t *b, uint32_t len, const struct hyp_config *cfg, struct ref *r)
{
	int s;

	memset(r, 0, sizeof(*r));
	s = ref_l2_l3(b, len, r);
	if (s == REF_CONTINUE && list_hit(r->family, r->saddr, false))
		s = HYP_R_PASS_ALLOW;
	else if (s == REF_CONTINUE && list_hit(r->family, r->saddr, true))
		s = HYP_R_DROP_BANNED;
	else if (s == REF_CONTINUE && r->nonfirst)
		s = cfg->frag_policy == HYP_FRAG_DROP ? HYP_R_DROP_FRAG : HYP_R_PASS_FRAG;
	else if (s == REF_CONTINUE)
		s = ref_l4(b, len, r);
	r->stage = s;
	return s;
}

static bool port_open(const struct hyp_config *c, uint8_t proto, uint16_t port)
{
	if (proto == IPPROTO_TCP)
		return c->tcp_all_open || (c->tcp_ports[port >> 6] >> (port & 63) & 1);
	return c->udp_all_open || (c->udp_ports[port >> 6] >> (port & 63) & 1);
}

/* The reasons the rules allow for a frame (bit per enum hyp_reason, before monitor mode). */
static uint32_t ref_allowed(const struct ref *r, const struct hyp_config *c)
{
	uint32_t m = 0, scan;
	bool syn;

	if (r->stage != REF_CONTINUE)
		return RBIT(r->stage);
	if (c->pps_rate)
		m |= RBIT(HYP_R_DROP_RATE_PPS);
	if (r->proto != IPPROTO_TCP && r->proto != IPPROTO_UDP && !ref_is_icmp(r))
		return m | RBIT(HYP_R_PASS_OTHER);
	if (ref_is_icmp(r)) {
		if (!ref_is_echo(r))
			return m | RBIT(HYP_R_PASS_ICMP);
		/* a request opens a pseudo-flow (or is one); a reply without one passes untracked */
		return m | RBIT(HYP_R_PASS_NEW) | RBIT(HYP_R_PASS_FLOW) | RBIT(HYP_R_PASS_ICMP);
	}
	scan = r->pay_len && c->scan_depth && c->dfa_states ? RBIT(HYP_R_PASS_ALERT) | RBIT(HYP_R_DROP_SIG) : 0;
	m |= RBIT(HYP_R_PASS_NEW) | RBIT(HYP_R_PASS_FLOW) | scan;
	if (r->proto == IPPROTO_UDP)
		return m | (port_open(c, IPPROTO_UDP, r->dport) ? 0 : RBIT(HYP_R_DROP_PORT));
	if ((r->tcp_flags & TH_SYN) && (r->tcp_flags & (TH_FIN | TH_RST)))
		return (m & RBIT(HYP_R_DROP_RATE_PPS)) | RBIT(HYP_R_DROP_INVALID);
	if (!(r->tcp_flags & (TH_SYN | TH_ACK | TH_RST)))
		return (m & RBIT(HYP_R_DROP_RATE_PPS)) | RBIT(HYP_R_DROP_INVALID);
	syn = (r->tcp_flags & (TH_SYN | TH_ACK)) == TH_SYN;
	if (syn)
		return m | (port_open(c, IPPROTO_TCP, r->dport) ? 0 : RBIT(HYP_R_DROP_PORT)) |
		       (c->syn_rate ? RBIT(HYP_R_DROP_RATE_SYN) : 0);
	return m | RBIT(HYP_R_DROP_INVALID);
}

static uint8_t ref_ev_kind(int reason)
{
	switch (reason) {
	case HYP_R_DROP_BANNED: return HYP_EV_BLOCK;
	case HYP_R_DROP_MALFORMED_L4: case HYP_R_DROP_INVALID: return HYP_EV_INVALID;
	case HYP_R_DROP_PORT: return HYP_EV_POLICY;
	case HYP_R_DROP_RATE_SYN: case HYP_R_DROP_RATE_PPS: return HYP_EV_RATELIMIT;
	case HYP_R_DROP_SIG: case HYP_R_PASS_ALERT: return HYP_EV_MATCH;
	default: return 0;
	}
}

/* Would conntrack never see this frame? Decided before it (parse, lists, fragments, pps), or a protocol
 * or message it does not track, or TCP flags it refuses before the lookup. */
static bool ref_untracked(const struct ref *r, int reason)
{
	if (r->stage != REF_CONTINUE || reason == HYP_R_DROP_RATE_PPS)
		return true;
	if (ref_is_icmp(r))
		return !ref_is_echo(r);
	if (r->proto == IPPROTO_TCP)
		return ((r->tcp_flags & TH_SYN) && (r->tcp_flags & (TH_FIN | TH_RST))) ||
		       !(r->tcp_flags & (TH_SYN | TH_ACK | TH_RST));
	return r->proto != IPPROTO_UDP;
}

/* The egress view: the same parse, but no lists and no fragment policy (non-first fragments skip). */
static void ref_classify_egress(const uint8_t *b, uint32_t len, struct ref *r)
{
	int s;

	memset(r, 0, sizeof(*r));
	s = ref_l2_l3(b, len, r);
	if (s == REF_CONTINUE && r->nonfirst)
		s = HYP_R_PASS_FRAG;
	else if (s == REF_CONTINUE)
		s = ref_l4(b, len, r);
	r->stage = s;
}

static const unsigned ct_counters[] = { HYP_C_CT_NEW_INSERT, HYP_C_CT_NEW_DELETE, HYP_C_CT_EST_INSERT,
					HYP_C_CT_EST_DELETE, HYP_C_CT_PICKUP, HYP_C_CT_EXPIRED };

static bool ct_counters_moved(const uint64_t *now, const uint64_t *prev)
{
	for (unsigned i = 0; i < sizeof(ct_counters) / sizeof(ct_counters[0]); i++)
		if (now[ct_counters[i]] != prev[ct_counters[i]])
			return true;
	return false;
}

/* ---- frame generation ---- */
struct sess {
	int family;
	uint8_t proto;              /* TCP, UDP, ICMP(v6) */
	int ci, si;
	uint16_t sport, dport, icmp_id;
	int step;
	bool outbound;              /* the local side (egress) originates */
	uint32_t cseq, sseq;
	int nvlan;
	bool qinq;
	int next;                   /* IPv6 extension headers on every packet */
	uint8_t ext[PKT_EXT_MAX];
};

#define FUZZ_DROPPED_MAX 4096   /* dropped-flow senders remembered per round (more: not remembered) */

struct fuzz {
	struct dpt t;
	const char *round;
	bool drain_each;            /* drain events after every frame (exact event checks) */
	struct sess s[FUZZ_SESSIONS];
	uint8_t pay[FUZZ_PAYLOAD_MAX];
	/* violations per invariant; the first FUZZ_REPORT_MAX are printed with the frame */
	unsigned v_run, v_verdict, v_books, v_reason, v_ref, v_trunc, v_events, v_evfields, v_sig, v_flows,
		 v_ctbooks, v_tc, v_untracked, v_userkey;
	unsigned xdp_frames, tc_frames, mutated, wellformed, short_frames, walks, flows_seen;
	unsigned pushes;            /* config pushes so far (each bumps the serial) */
	unsigned ev_nosig;          /* match events of flows dropped under an earlier config */
	uint64_t ev_attempt_bound, ev_read;
	uint64_t reasons_seen;      /* bit per stats index reached */
	uint64_t stats_prev[HYP_STATS_ENTRIES], bytes_prev[HYP_STATS_ENTRIES], ctr_prev[HYP_C_MAX];
	int ncpu;
	/* senders whose flow a drop signature ended (HYP_FF_DROP): their later frames may end as DROP_SIG
	 * whatever they carry, from conntrack or from the verdict cache */
	struct fz_tuple { uint8_t family, proto; uint8_t saddr[16], daddr[16]; uint16_t sport, dport; }
		dropped[FUZZ_DROPPED_MAX];
	unsigned ndropped;
};

/* Counts a violation; prints the first few with the frame so they reproduce without the fuzzer. */
static void violation(struct fuzz *fz, unsigned *ctr, const uint8_t *b, uint32_t len, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void violation(struct fuzz *fz, unsigned *ctr, const uint8_t *b, uint32_t len, const char *fmt, ...)
{
	va_list ap;

	if ((*ctr)++ >= FUZZ_REPORT_MAX)
		return;
	printf("# [%s] ", fz->round);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (b)
		hexdump("frame", b, len);
}

static void payload_make(struct fuzz *fz, uint32_t *len)
{
	static const char alphabet[] = "abEVILDROPBANMEalertmeQUERYevil \xff\x00xyz";
	uint32_t n = rand_below(4) == 0 ? 0 : rand_below(rand_chance(10) ? FUZZ_PAYLOAD_MAX : 64);

	for (uint32_t i = 0; i < n; i++)
		fz->pay[i] = rand_chance(50) ? (uint8_t)rand_next() : (uint8_t)alphabet[rand_below(sizeof(alphabet) - 1)];
	if (n && rand_chance(40)) {
		const char *p = sig_table[rand_below(NSIGS)].pat;
		uint32_t pl = strlen(p), at;

		if (pl <= n) {
			at = rand_below(n - pl + 1);
			for (uint32_t i = 0; i < pl; i++)
				fz->pay[at + i] = rand_chance(15) ? (uint8_t)(p[i] ^ 0x20) : (uint8_t)p[i];
		}
	}
	*len = n;
}

static void ext_random(uint8_t *ext, int *next)
{
	static const uint8_t kinds[] = { NH_HOP, NH_RT, NH_DST, NH_AH };
	int n = rand_chance(60) ? 0 : (int)rand_below(HYP_IPV6_EXT_MAX + 2);     /* sometimes one too many */

	for (int i = 0; i < n; i++)
		ext[i] = kinds[rand_below(sizeof(kinds))];
	*next = n;
}

static void sess_reset(struct sess *s)
{
	static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_TCP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP };

	memset(s, 0, sizeof(*s));
	s->family = rand_chance(50) ? 4 : 6;
	s->proto = protos[rand_below(sizeof(protos))];
	if (s->proto == IPPROTO_ICMP && s->family == 6)
		s->proto = IPPROTO_ICMPV6;
	s->ci = rand_below(4);
	s->si = rand_below(3);
	s->sport = 32768 + rand_below(32768);
	s->dport = ports[rand_below(sizeof(ports) / sizeof(ports[0]))];
	s->icmp_id = rand_next();
	s->outbound = rand_chance(25);
	s->cseq = rand_next();
	s->sseq = rand_next();
	s->nvlan = rand_chance(70) ? 0 : rand_below(3);
	s->qinq = rand_chance(50);
	if (s->family == 6 && rand_chance(30))
		ext_random(s->ext, &s->next);
	if (s->next > HYP_IPV6_EXT_MAX)
		s->next = HYP_IPV6_EXT_MAX;
}

/* One frame of a conversation: fills o, returns true for ingress (XDP), false for egress (tc). */
static bool sess_step(struct fuzz *fz, struct sess *s, struct pkt_opts *o, uint32_t *paylen)
{
	/* "from client" is ingress for inbound conversations, egress for outbound ones */
	bool from_client, xdp, done;
	uint8_t fl = 0;

	*paylen = 0;
	memset(o, 0, sizeof(*o));
	o->family = s->family;
	o->proto = s->proto;
	o->nvlan = s->nvlan;
	o->qinq = s->qinq;
	o->next = s->next;
	memcpy(o->ext, s->ext, sizeof(o->ext));
	if (s->proto == IPPROTO_TCP) {
		static const uint8_t script[] = { TH_SYN, TH_SYN | TH_ACK, TH_ACK };
		int st = s->step;

		if (st < 3) {
			from_client = st != 1;
			fl = script[st];
		} else if (st < 10) {
			from_client = rand_chance(60);
			fl = TH_ACK | TH_PSH;
			payload_make(fz, paylen);
		} else {
			from_client = rand_chance(50);
			fl = rand_chance(70) ? TH_FIN | TH_ACK : TH_RST;
		}
		if (rand_chance(3))
			fl = rand_next();         /* a stray segment of any flags */
		o->tcp_flags = fl;
		o->seq = from_client ? s->cseq : s->sseq;
		o->ack = from_client ? s->sseq : s->cseq;
		if (from_client)
			s->cseq += *paylen + ((fl & (TH_SYN | TH_FIN)) ? 1 : 0);
		else
			s->sseq += *paylen + ((fl & (TH_SYN | TH_FIN)) ? 1 : 0);
		done = ++s->step > 11 || (fl & TH_RST);
	} else if (s->proto == IPPROTO_UDP) {
		from_client = s->step == 0 || rand_chance(50);
		payload_make(fz, paylen);
		done = ++s->step > 6;
	} else {
		from_client = s->step % 2 == 0;
		o->icmp_type = s->family == 4 ? (from_client ? 8 : 0) : (from_client ? 128 : 129);
		o->icmp_id = s->icmp_id;
		o->icmp_seq = s->step;
		done = ++s->step > 4;
	}
	xdp = from_client != s->outbound;
	if (s->family == 4) {
		o->src = from_client ? v4_clients[s->ci] : v4_servers[s->si];
		o->dst = from_client ? v4_servers[s->si] : v4_clients[s->ci];
	} else {
		o->src = from_client ? v6_clients[s->ci] : v6_servers[s->si];
		o->dst = from_client ? v6_servers[s->si] : v6_clients[s->ci];
	}
	o->sport = from_client ? s->sport : s->dport;
	o->dport = from_client ? s->dport : s->sport;
	if (done)   /* the next frame of this slot starts a new conversation */
		sess_reset(s);
	return xdp;
}

/* A frame of any L2/L3/L4 combination pkt.h can build, outside any conversation. */
static void combo_random(struct fuzz *fz, struct pkt_opts *o, uint32_t *paylen)
{
	static const uint8_t protos4[] = { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, NH_GRE, NH_SCTP, IPPROTO_ICMPV6 };
	static const uint8_t protos6[] = { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, NH_GRE, NH_SCTP, IPPROTO_ICMP };
	static const uint8_t icmp4[] = { 8, 0, 3, 11, 5 };
	static const uint8_t icmp6[] = { 128, 129, 1, 135, 136, 134 };
	static const uint8_t flags[] = { TH_SYN, TH_SYN | TH_ACK, TH_ACK, TH_ACK | TH_PSH, TH_FIN | TH_ACK, TH_RST,
					 TH_SYN | TH_FIN, 0, TH_FIN | TH_PSH | TH_URG };
	int src_kind = rand_below(10);

	memset(o, 0, sizeof(*o));
	o->family = rand_chance(50) ? 4 : 6;
	o->proto = o->family == 4 ? protos4[rand_below(sizeof(protos4))] : protos6[rand_below(sizeof(protos6))];
	if (o->family == 4) {
		o->src = src_kind == 0 ? V4_BANNED : src_kind == 1 ? V4_ALLOWED : v4_clients[rand_below(4)];
		o->dst = v4_servers[rand_below(3)];
		o->ip_opts_len = rand_chance(70) ? 0 : 4 * rand_below(11);
		if (rand_chance(20)) {
			o->more_frags = rand_chance(50);
			o->frag_offset = rand_chance(50) ? 0 : 1 + rand_below(200);
		}
	} else {
		o->src = src_kind == 0 ? V6_BANNED : src_kind == 1 ? V6_ALLOWED : v6_clients[rand_below(4)];
		o->dst = v6_servers[rand_below(3)];
		ext_random(o->ext, &o->next);
		if (rand_chance(20)) {
			o->frag = true;
			o->more_frags = rand_chance(50);
			o->frag_offset = rand_chance(50) ? 0 : 1 + rand_below(200);
		}
	}
	o->nvlan = rand_chance(60) ? 0 : rand_below(4);      /* 3 tags: one too many */
	o->qinq = rand_chance(50);
	o->sport = rand_chance(50) ? ports[rand_below(sizeof(ports) / sizeof(ports[0]))] : rand_next();
	o->dport = ports[rand_below(sizeof(ports) / sizeof(ports[0]))];
	o->tcp_flags = rand_chance(80) ? flags[rand_below(sizeof(flags))] : rand_next();
	o->seq = rand_next();
	o->ack = rand_next();
	o->icmp_type = o->family == 4 ? icmp4[rand_below(sizeof(icmp4))] : icmp6[rand_below(sizeof(icmp6))];
	o->icmp_id = rand_next();
	payload_make(fz, paylen);
}

/* Offsets worth corrupting in one built frame. */
#define FIELDS_MAX 48    /* tags (<= 9), IP (<= 4), extension headers (3 each), L4 (4) */
#define FIELDS_L4 4

struct fields {
	int n;
	int off[FIELDS_MAX];
};

static void fields_of(const uint8_t *b, const struct pkt_layout *lay, struct fields *f)
{
	int l3 = lay->l3_off, l4 = lay->l4_off;

	f->n = 0;
	for (int o = 12; o < l3; o += 2)        /* ethertypes and tags */
		f->off[f->n++] = o;
	f->off[f->n++] = l3;                    /* version | IHL / version | class */
	if ((b[l3] >> 4) == 4) {
		f->off[f->n++] = l3 + 2;            /* total length */
		f->off[f->n++] = l3 + 3;
		f->off[f->n++] = l3 + 6;            /* flags | fragment offset */
		f->off[f->n++] = l3 + 9;            /* protocol */
	} else {
		int o = l3 + 40;
		uint8_t nh = b[l3 + 6];

		f->off[f->n++] = l3 + 4;            /* payload length */
		f->off[f->n++] = l3 + 5;
		f->off[f->n++] = l3 + 6;            /* next header */
		for (int i = 0; i < PKT_EXT_MAX + 1 && is_ext(nh) && o + 8 <= lay->len &&
				f->n + 3 + FIELDS_L4 <= FIELDS_MAX; i++) {
			uint8_t cur = nh;

			f->off[f->n++] = o;             /* next header */
			f->off[f->n++] = o + 1;         /* length */
			if (cur == NH_FRAG)
				f->off[f->n++] = o + 3; /* offset low bits | M */
			nh = b[o];
			o += cur == NH_FRAG ? 8 : cur == NH_AH ? (b[o + 1] + 2) * 4 : (b[o + 1] + 1) * 8;
		}
	}
	/* offsets past a short frame are skipped by mutate() */
	f->off[f->n++] = l4;                    /* ICMP type / source port */
	f->off[f->n++] = l4 + 12;               /* TCP data offset */
	f->off[f->n++] = l4 + 13;               /* TCP flags */
	f->off[f->n++] = l4 + 4;                /* UDP length / ICMP id */
}

enum { MUT_TRUNC = 1, MUT_OTHER = 2 };

/* 1-4 mutations in place; returns what kinds were applied. len may shrink or grow (<= cap). */
static int mutate(uint8_t *b, uint32_t *len, uint32_t cap, const struct pkt_layout *lay)
{
	static const uint8_t boundary[] = { 0, 0xff, 0x7f, 0x80, 1, 0x0f, 0xf0, 0x45, 0x60, 0x50 };
	struct fields f;
	int kinds = 0, n = 1 + rand_below(4);

	fields_of(b, lay, &f);
	for (int i = 0; i < n && *len; i++) {
		int op = rand_below(9);
		uint32_t at;

		switch (op) {
		case 0:     /* bit flip anywhere */
			at = rand_below(*len);
			b[at] ^= 1u << rand_below(8);
			kinds |= MUT_OTHER;
			break;
		case 1:     /* boundary byte anywhere */
			b[rand_below(*len)] = boundary[rand_below(sizeof(boundary))];
			kinds |= MUT_OTHER;
			break;
		case 2:
		case 3:     /* boundary or random value into a header field */
			at = f.off[rand_below(f.n)];
			if (at < *len)
				b[at] = rand_chance(50) ? boundary[rand_below(sizeof(boundary))] : (uint8_t)rand_next();
			kinds |= MUT_OTHER;
			break;
		case 4:     /* a nibble: IHL, version, TCP doff */
			at = f.off[rand_below(f.n)];
			if (at < *len)
				b[at] = rand_chance(50) ? (b[at] & 0xf0) | rand_below(16) : (b[at] & 0x0f) | rand_below(16) << 4;
			kinds |= MUT_OTHER;
			break;
		case 5:
		case 6:     /* truncation, mostly inside the headers */
			at = rand_chance(70) && lay->payload_off > 0 ? rand_below(lay->payload_off + 1) : rand_below(*len + 1);
			if (at < *len) {
				*len = at;
				kinds |= MUT_TRUNC;
			}
			break;
		case 7: {   /* random extension at the end */
			uint32_t add = 1 + rand_below(64);

			if (*len + add > cap)
				add = cap - *len;
			for (uint32_t k = 0; k < add; k++)
				b[*len + k] = rand_next();
			*len += add;
			kinds |= MUT_OTHER;
			break;
		}
		default: {  /* insert or delete bytes inside the frame (shifts every later header) */
			uint32_t k = 1 + rand_below(8);

			at = rand_below(*len);
			if (rand_chance(50) && *len + k <= cap) {
				memmove(b + at + k, b + at, *len - at);
				for (uint32_t j = 0; j < k; j++)
					b[at + j] = rand_next();
				*len += k;
			} else if (at + k <= *len) {
				memmove(b + at, b + at + k, *len - at - k);
				*len -= k;
			}
			kinds |= MUT_OTHER;
			break;
		}
		}
	}
	return kinds;
}

/* ---- the checks ---- */
/* The books as the runtime reads them (dpt_totals(): the express lane's hits folded in). */
static void stats_read_all(struct fuzz *fz, uint64_t *pk, uint64_t *by)
{
	static struct hyp_totals s;

	dpt_totals(&fz->t, &s);
	for (uint32_t i = 0; i < HYP_STATS_ENTRIES; i++) {
		pk[i] = s.reason[i].packets;
		by[i] = s.reason[i].bytes;
	}
}

static void counters_read_all(struct fuzz *fz, uint64_t *ctr)
{
	static struct hyp_totals s;

	dpt_totals(&fz->t, &s);
	for (uint32_t i = 0; i < HYP_C_MAX; i++)
		ctr[i] = s.counter[i];
}

/* Events drained after one frame: counts, kinds, and the fields the verdict determines. */
static void check_events(struct fuzz *fz, const uint8_t *b, uint32_t len, const struct ref *r, int reason,
			 bool xdp, bool monitor)
{
	struct dpt *t = &fz->t;
	uint8_t want_kind = xdp ? ref_ev_kind(reason) : 0;
	int nkind = 0;

	if (t->nev > (xdp ? EV_MAX_XDP : EV_MAX_TC))
		violation(fz, &fz->v_events, b, len, "%d events from one %s frame", t->nev, xdp ? "XDP" : "tc");
	for (int i = 0; i < t->nev; i++) {
		const struct hyp_event *e = &t->ev[i];
		bool flow_ev = e->kind == HYP_EV_FLOW_NEW || e->kind == HYP_EV_FLOW_END;
		bool bad = e->kind == 0 || e->kind >= HYP_EV_KIND_MAX || e->reason >= HYP_R_MAX ||
			   e->verdict > HYP_V_MONITOR || e->state >= HYP_CT_STATE_MAX || e->dir != !xdp ||
			   (e->family != HYP_AF_INET && e->family != HYP_AF_INET6) ||
			   e->payload_len > HYP_EV_PAYLOAD || e->pkt_len != len;

		for (uint32_t k = e->payload_len; k < HYP_EV_PAYLOAD && !bad; k++)
			bad = e->payload[k] != 0;
		if (!xdp && !flow_ev)
			bad = true;
		/* a flow event carries the frame's final reason, or PASS_FLOW for an expired flow's end */
		if (flow_ev && e->reason != (xdp ? reason : HYP_R_PASS_EGRESS) && e->reason != HYP_R_PASS_FLOW)
			bad = true;
		if (bad) {
			violation(fz, &fz->v_evfields, b, len, "event %d: kind %u reason %u verdict %u state %u dir %u "
				  "family %u payload_len %u pkt_len %u (frame reason %d)", i, e->kind, e->reason,
				  e->verdict, e->state, e->dir, e->family, e->payload_len, e->pkt_len, reason);
			continue;
		}
		if (flow_ev || e->kind != want_kind)
			continue;
		nkind++;
		if (e->reason != reason || e->family != r->family || memcmp(e->saddr, r->saddr, 16) ||
		    e->verdict != (reason == HYP_R_PASS_ALERT ? HYP_V_PASS : monitor ? HYP_V_MONITOR : HYP_V_DROP))
			violation(fz, &fz->v_evfields, b, len, "verdict event: reason %u/%d verdict %u family %u/%d",
				  e->reason, reason, e->verdict, e->family, r->family);
		if (e->kind == HYP_EV_MATCH) {
			uint32_t n = t->cfg.capture_len;

			n = n > r->pay_len ? r->pay_len : n;
			n = n > HYP_EV_PAYLOAD ? HYP_EV_PAYLOAD : n;
			/* a flow dropped before a config push (the clock jumps below) keeps its drop but
			 * not its signature id, which named a signature of another config */
			if (e->sig == HYP_EV_NO_SIG && fz->pushes && reason == HYP_R_DROP_SIG) {
				fz->ev_nosig++;
				if (e->action == HYP_ACT_ALERT || e->payload_len != n ||
				    memcmp(e->payload, b + r->pay_off, n))
					violation(fz, &fz->v_evfields, b, len, "match event of a flow dropped "
						  "under an earlier config: action %u payload_len %u (want %u)",
						  e->action, e->payload_len, n);
			} else if (e->sig >= set.nsigs || (e->action == HYP_ACT_ALERT) != (reason == HYP_R_PASS_ALERT) ||
			    e->action != set.defs[e->sig].action ||
			    !sigdef_in_scope(&set.defs[e->sig], r->proto, r->dport) || e->payload_len != n ||
			    memcmp(e->payload, b + r->pay_off, n))
				violation(fz, &fz->v_evfields, b, len, "match event: sig %u action %u payload_len %u "
					  "(want %u)", e->sig, e->action, e->payload_len, n);
		}
	}
	/* sampling off and the ring drained every frame: the verdict's event is always there, once */
	if (!t->cfg.ev_rate && nkind != (want_kind ? 1 : 0))
		violation(fz, &fz->v_events, b, len, "%d events of kind %u for reason %s", nkind, want_kind,
			  dpt_stat_name(reason));
}

/*
 * Signatures. UDP: each datagram is scanned from state 0, so the verdict's signature part is exact.
 * TCP: the scan starts from the flow's carried state, which can only add matches that began in an
 * earlier segment (the automaton finds every occurrence lying wholly inside the input from any
 * state). So a drop/ban pattern wholly inside the scanned bytes must drop, an alert one must at least
 * alert. Only without a stream depth: past it a flow direction is not scanned at all.
 */
static void check_sig(struct fuzz *fz, const uint8_t *b, uint32_t len, const struct ref *r, int reason)
{
	const struct hyp_config *c = &fz->t.cfg;
	uint32_t n = r->pay_len < c->scan_depth ? r->pay_len : c->scan_depth;
	bool udp = r->proto == IPPROTO_UDP;
	__u16 st = 0;
	int id, want;

	if (r->stage != REF_CONTINUE || (!udp && r->proto != IPPROTO_TCP) || !c->dfa_states)
		return;
	if (!udp && c->stream_depth)
		return;
	if (reason != HYP_R_PASS_FLOW && reason != HYP_R_PASS_NEW && reason != HYP_R_PASS_ALERT &&
	    reason != HYP_R_DROP_SIG)
		return;
	n = n > HYP_SCAN_DEPTH_MAX ? HYP_SCAN_DEPTH_MAX : n;
	id = n ? sigset_scan(&set, &st, b + r->pay_off, n, r->proto, r->dport) : -1;
	want = id < 0 ? -1 : set.sigs[id].action == HYP_ACT_ALERT ? HYP_R_PASS_ALERT : HYP_R_DROP_SIG;
	if (udp ? (want == -1 ? (reason == HYP_R_PASS_ALERT || reason == HYP_R_DROP_SIG) : reason != want) :
	    (want == HYP_R_DROP_SIG ? reason != HYP_R_DROP_SIG :
	     want == HYP_R_PASS_ALERT ? reason != HYP_R_PASS_ALERT && reason != HYP_R_DROP_SIG : false))
		violation(fz, &fz->v_sig, b, len, "%s dport %u, %u bytes scanned: reference sig %d, datapath %s",
			  udp ? "UDP" : "TCP", r->dport, n, id, dpt_stat_name(reason));
}

static bool fz_tuple_of(const struct ref *r, struct fz_tuple *k)
{
	if (r->stage != REF_CONTINUE || (r->proto != IPPROTO_TCP && r->proto != IPPROTO_UDP))
		return false;
	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)r->family;
	k->proto = r->proto;
	memcpy(k->saddr, r->saddr, 16);
	memcpy(k->daddr, r->daddr, 16);
	k->sport = r->sport;
	k->dport = r->dport;
	return true;
}

static bool fz_dropped(const struct fuzz *fz, const struct ref *r)
{
	struct fz_tuple k;

	if (!fz_tuple_of(r, &k))
		return false;
	for (unsigned i = 0; i < fz->ndropped; i++)
		if (!memcmp(&fz->dropped[i], &k, sizeof(k)))
			return true;
	return false;
}

static void fz_remember_drop(struct fuzz *fz, const struct ref *r)
{
	struct fz_tuple k;

	if (fz_dropped(fz, r) || fz->ndropped == FUZZ_DROPPED_MAX || !fz_tuple_of(r, &k))
		return;
	fz->dropped[fz->ndropped++] = k;
}

static void fuzz_xdp(struct fuzz *fz, const uint8_t *b, uint32_t len, int mut, uint32_t hdr_end)
{
	struct dpt *t = &fz->t;
	uint64_t pk[HYP_STATS_ENTRIES], by[HYP_STATS_ENTRIES], ctr[HYP_C_MAX];
	int rc, idx = -1, reason;
	uint32_t allowed;
	bool monitor = t->cfg.mode == HYP_MODE_MONITOR, is_drop, fdrop;
	struct ref r;

	rc = dpt_xdp(t, b, len);
	if (len < ETH_MIN) {
		/* the kernel refuses to build a test frame shorter than an Ethernet header */
		fz->short_frames++;
		if (rc >= 0)
			violation(fz, &fz->v_run, b, len, "%u-byte frame ran (rc %d)", len, rc);
		return;
	}
	fz->xdp_frames++;
	fz->ev_attempt_bound += EV_MAX_XDP;
	if (rc < 0) {
		violation(fz, &fz->v_run, b, len, "BPF_PROG_TEST_RUN failed: %s", strerror(-rc));
		return;
	}
	stats_read_all(fz, pk, by);
	counters_read_all(fz, ctr);
	if (rc != XDP_PASS && rc != XDP_DROP)
		violation(fz, &fz->v_verdict, b, len, "verdict %d (not PASS/DROP)", rc);
	for (int i = 0; i < HYP_STATS_ENTRIES; i++) {
		uint64_t d = pk[i] - fz->stats_prev[i];

		if (!d)
			continue;
		if (d != 1 || idx != -1 || by[i] - fz->bytes_prev[i] != len)
			idx = -2;
		else
			idx = i;
	}
	if (idx < 0 || ctr[HYP_C_SEEN] - fz->ctr_prev[HYP_C_SEEN] != 1 ||
	    ctr[HYP_C_EGRESS_SEEN] != fz->ctr_prev[HYP_C_EGRESS_SEEN]) {
		violation(fz, &fz->v_books, b, len, "stats entry %s, seen +%" PRIu64, dpt_stat_name(idx),
			  ctr[HYP_C_SEEN] - fz->ctr_prev[HYP_C_SEEN]);
		goto out;
	}
	fz->reasons_seen |= 1ULL << idx;
	reason = idx >= HYP_STATS_MONITOR ? idx - HYP_STATS_MONITOR : idx;
	/* the verdict and the entry agree: drops are DROP_*, passes PASS_* or, in monitor mode only, the
	 * monitor entry of a drop reason */
	is_drop = RBIT(reason) & RMASK_DROPS;
	if (rc == XDP_DROP ? idx >= HYP_STATS_MONITOR || !is_drop || monitor :
	    idx >= HYP_STATS_MONITOR ? !monitor || !is_drop : reason > HYP_R_PASS_ALERT)
		violation(fz, &fz->v_reason, b, len, "verdict %d with stats entry %s (%s mode)", rc,
			  dpt_stat_name(idx), monitor ? "monitor" : "enforce");
	ref_classify(b, len, &t->cfg, &r);
	allowed = ref_allowed(&r, &t->cfg);
	fdrop = fz_dropped(fz, &r);
	if (fdrop)
		allowed |= RBIT(HYP_R_DROP_SIG);
	/* the cache only ever answers for a banned source, a sender conntrack marked, or a flow it passes */
	if (ctr[HYP_C_VCACHE_HIT] != fz->ctr_prev[HYP_C_VCACHE_HIT] && reason != HYP_R_DROP_BANNED &&
	    reason != HYP_R_PASS_FLOW && (!fdrop || reason != HYP_R_DROP_SIG))
		violation(fz, &fz->v_ref, b, len, "verdict cache hit (%s): not a ban, a marked sender or a flow",
			  dpt_stat_name(idx));
	if (!(allowed & RBIT(reason)))
		violation(fz, &fz->v_ref, b, len, "datapath %s, reference allows 0x%x (stage %d, proto %u, l4_off %u, "
			  "l3_end %u, flags 0x%x)", dpt_stat_name(idx), allowed, r.stage, r.proto, r.l4_off,
			  r.l3_end, r.tcp_flags);
	/* a frame cut inside its IP or L4 header never reaches conntrack as a good packet */
	if (mut == MUT_TRUNC && len < hdr_end && (reason == HYP_R_PASS_FLOW || reason == HYP_R_PASS_NEW))
		violation(fz, &fz->v_trunc, b, len, "cut at %u inside headers ending at %u, yet %s", len, hdr_end,
			  dpt_stat_name(reason));
	if (!fdrop)     /* a dropped flow's sender is not scanned: its verdict is the flow's */
		check_sig(fz, b, len, &r, reason);
	if (reason == HYP_R_DROP_SIG)
		fz_remember_drop(fz, &r);
	if (ref_untracked(&r, reason) && ct_counters_moved(ctr, fz->ctr_prev))
		violation(fz, &fz->v_untracked, b, len, "%s frame (stage %d, proto %u) changed conntrack counters",
			  dpt_stat_name(idx), r.stage, r.proto);
	if (fz->drain_each) {
		dpt_events(t);
		fz->ev_read += t->nev;
		check_events(fz, b, len, &r, reason, true, monitor);
	}
out:
	memcpy(fz->stats_prev, pk, sizeof(pk));
	memcpy(fz->bytes_prev, by, sizeof(by));
	memcpy(fz->ctr_prev, ctr, sizeof(ctr));
}

/* The kernel's skb test run refuses (EINVAL) an untagged IPv4/IPv6 frame shorter than its fixed IP
 * header (it reads the addresses for the test socket), before the program runs. */
static bool tc_refused(const uint8_t *b, uint32_t len)
{
	uint16_t et = rd16(b + 12);

	return (et == ETHT_IP && len < ETH_MIN + IPV4_HDR_MIN) || (et == ETHT_IP6 && len < ETH_MIN + IPV6_HDR_MIN);
}

static void fuzz_tc(struct fuzz *fz, const uint8_t *b, uint32_t len)
{
	struct dpt *t = &fz->t;
	uint64_t pk[HYP_STATS_ENTRIES], by[HYP_STATS_ENTRIES], ctr[HYP_C_MAX];
	struct ref r;
	int rc;

	if (len < ETH_MIN) {
		fz->short_frames++;
		return;
	}
	rc = dpt_tc(t, b, len);
	if (rc == -EINVAL && tc_refused(b, len)) {
		fz->short_frames++;
		return;
	}
	fz->tc_frames++;
	fz->ev_attempt_bound += EV_MAX_TC;
	if (rc < 0) {
		violation(fz, &fz->v_run, b, len, "tc BPF_PROG_TEST_RUN failed: %s", strerror(-rc));
		return;
	}
	stats_read_all(fz, pk, by);
	counters_read_all(fz, ctr);
	if (rc != 0)
		violation(fz, &fz->v_tc, b, len, "tc returned %d (want TC_ACT_OK)", rc);
	if (memcmp(pk, fz->stats_prev, sizeof(pk)) || ctr[HYP_C_SEEN] != fz->ctr_prev[HYP_C_SEEN] ||
	    ctr[HYP_C_EGRESS_SEEN] - fz->ctr_prev[HYP_C_EGRESS_SEEN] != 1)
		violation(fz, &fz->v_tc, b, len, "tc frame changed ingress stats or egress_seen +%" PRIu64,
			  ctr[HYP_C_EGRESS_SEEN] - fz->ctr_prev[HYP_C_EGRESS_SEEN]);
	ref_classify_egress(b, len, &r);
	if (ref_untracked(&r, HYP_R_PASS_EGRESS) && ct_counters_moved(ctr, fz->ctr_prev))
		violation(fz, &fz->v_untracked, b, len, "egress frame (stage %d, proto %u) changed conntrack counters",
			  r.stage, r.proto);
	if (fz->drain_each) {
		dpt_events(t);
		fz->ev_read += t->nev;
		check_events(fz, b, len, &r, HYP_R_PASS_EGRESS, false, false);
	}
	memcpy(fz->stats_prev, pk, sizeof(pk));
	memcpy(fz->bytes_prev, by, sizeof(by));
	memcpy(fz->ctr_prev, ctr, sizeof(ctr));
}

static bool state_fits(uint8_t proto, uint8_t state, bool est)
{
	switch (proto) {
	case IPPROTO_TCP:
		/* flows holds what reached ESTABLISHED (or was picked up there) and what followed */
		return est ? state >= HYP_CT_ESTABLISHED && state <= HYP_CT_CLOSED :
			     state >= HYP_CT_SYN_SENT && state <= HYP_CT_CLOSED;
	case IPPROTO_UDP:
		return est ? state == HYP_CT_UDP_REPLIED : state == HYP_CT_UDP || state == HYP_CT_UDP_REPLIED;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return state == HYP_CT_ICMP;
	default:
		return false;
	}
}

/* Every entry of one flow map: canonical key, family, state for its protocol and map. */
static unsigned walk_flows(struct fuzz *fz, bool est)
{
	int fd = bpf_map__fd(est ? fz->t.skel->maps.flows : fz->t.skel->maps.flows_new);
	struct hyp_flow_key k, next;
	struct hyp_flow f;
	unsigned n = 0;
	void *prev = NULL;
	static const uint8_t zero[12];

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &f))
			continue;   /* evicted between the two calls */
		n++;
		int c = memcmp(k.addr_a, k.addr_b, 16);
		bool canon = c < 0 || (c == 0 && ntohs(k.port_a) <= ntohs(k.port_b));
		bool fam = (k.family == HYP_AF_INET && !memcmp(k.addr_a + 4, zero, 12) &&
			    !memcmp(k.addr_b + 4, zero, 12)) || k.family == HYP_AF_INET6;
		bool icmp_ok = (k.proto != IPPROTO_ICMP && k.proto != IPPROTO_ICMPV6) || k.port_a == k.port_b;
		bool ok = canon && fam && icmp_ok && f.state < HYP_CT_STATE_MAX && state_fits(k.proto, f.state, est) &&
			  !!(f.flags & HYP_FF_ESTABLISHED_MAP) == est && f.orig <= 1 && k.pad[0] == 0 &&
			  k.pad[1] == 0 && f.packets[0] + f.packets[1] >= 1;

		/* user space (runtime/maps.c, hx.flow, hyperionctl) must build the same key from either
		 * direction's view, or its lookups miss the datapath's entries */
		struct hyp_flow_key u0, u1;
		int d0, d1;

		flow_key_make(&u0, k.family, k.proto, k.addr_a, k.port_a, k.addr_b, k.port_b, &d0);
		flow_key_make(&u1, k.family, k.proto, k.addr_b, k.port_b, k.addr_a, k.port_a, &d1);
		if (k.family == HYP_AF_INET || k.family == HYP_AF_INET6) {
			bool same = !memcmp(&u0, &k, sizeof(k)) && !memcmp(&u1, &k, sizeof(k)) && d0 == 0 &&
				    (d1 == 1 || (!memcmp(k.addr_a, k.addr_b, 16) && k.port_a == k.port_b));

			if (!same)
				violation(fz, &fz->v_userkey, (const uint8_t *)&k, sizeof(k), "flow_key_make disagrees "
					  "with the datapath's key (dir %d/%d; frame = key bytes)", d0, d1);
		}
		if (!ok)
			violation(fz, &fz->v_flows, (const uint8_t *)&k, sizeof(k), "%s entry: canonical %d family %u "
				  "proto %u state %u flags 0x%x orig %u packets %" PRIu64 "+%" PRIu64 " (frame = key bytes)",
				  est ? "flows" : "flows_new", canon, k.family, k.proto, f.state, f.flags, f.orig,
				  (uint64_t)f.packets[0], (uint64_t)f.packets[1]);
	}
	return n;
}

static void walk_all(struct fuzz *fz)
{
	uint64_t ctr[HYP_C_MAX];
	unsigned est = walk_flows(fz, true), half = walk_flows(fz, false);

	fz->walks++;
	fz->flows_seen += est + half;
	counters_read_all(fz, ctr);
	/* evictions = inserts - deletes - live can never be negative */
	if (ctr[HYP_C_CT_EST_INSERT] < ctr[HYP_C_CT_EST_DELETE] + est ||
	    ctr[HYP_C_CT_NEW_INSERT] < ctr[HYP_C_CT_NEW_DELETE] + half)
		violation(fz, &fz->v_ctbooks, NULL, 0, "conntrack books: est +%" PRIu64 " -%" PRIu64 " live %u, new +%"
			  PRIu64 " -%" PRIu64 " live %u", ctr[HYP_C_CT_EST_INSERT], ctr[HYP_C_CT_EST_DELETE], est,
			  ctr[HYP_C_CT_NEW_INSERT], ctr[HYP_C_CT_NEW_DELETE], half);
	if (ctr[HYP_C_SEEN] != dpt_stats_total(&fz->t))
		violation(fz, &fz->v_books, NULL, 0, "seen %" PRIu64 " != sum of stats %" PRIu64, ctr[HYP_C_SEEN],
			  dpt_stats_total(&fz->t));
}

enum round_kind { ROUND_ENFORCE, ROUND_MONITOR, ROUND_STRICT, ROUND_TINY_RING };

static void round_config(struct hyp_config *c, enum round_kind k)
{
	if (k == ROUND_MONITOR) {
		c->mode = HYP_MODE_MONITOR;
	} else if (k == ROUND_STRICT) {
		/* closed ports, dropped fragments, rate limits, sampling: every late drop reason reachable */
		c->tcp_all_open = c->udp_all_open = 0;
		memset(c->tcp_ports, 0, sizeof(c->tcp_ports));
		memset(c->udp_ports, 0, sizeof(c->udp_ports));
		c->tcp_ports[80 >> 6] |= 1ULL << (80 & 63);
		c->tcp_ports[443 >> 6] |= 1ULL << (443 & 63);
		c->udp_ports[53 >> 6] |= 1ULL << (53 & 63);
		c->frag_policy = HYP_FRAG_DROP;
		c->pickup = HYP_PICKUP_GRACE;
		c->pickup_grace_ns = 3600ULL * 1000000000ULL;
		c->syn_rate = 3;
		c->syn_burst = 2;
		c->pps_rate = 150;      /* the fuzzer sends a few hundred frames/s per source */
		c->pps_burst = 30;
		c->ev_rate = 1;         /* low enough that any machine samples some out */
		c->ev_burst = 1;
		c->scan_depth = HYP_SCAN_DEPTH_MAX;
		c->capture_len = 16;
	} else if (k == ROUND_TINY_RING) {
		c->pickup = HYP_PICKUP_STRICT;
		c->scan_depth = 16;
		c->stream_depth = 48;
		c->rl_v6_prefix = 128;
	}
}

static void fuzz_round(enum round_kind kind, const char *name, unsigned frames, uint64_t seed)
{
	static struct fuzz fz;      /* large: off the stack */
	struct dpt_opts o = { .flows_max = FUZZ_FLOWS_MAX, .flows_new_max = FUZZ_FLOWS_MAX / 2,
			      .ringbuf_bytes = kind == ROUND_TINY_RING ? FUZZ_TINY_RING : 0 };
	uint8_t b[PKT_MAX + 128];
	uint64_t ctr[HYP_C_MAX];

	memset(&fz, 0, sizeof(fz));
	fz.round = name;
	fz.ncpu = libbpf_num_possible_cpus();
	fz.drain_each = kind != ROUND_TINY_RING;
	rand_state = seed ^ (0x9e3779b97f4a7c15ULL * (kind + 1));
	printf("# round %s: seed 0x%" PRIx64 ", %u frames\n", name, seed, frames);
	if (!dpt_open_or_report(&fz.t, &o))
		return;
	round_config(&fz.t.cfg, kind);
	TAP_CHECK(dpt_sigset_push(&fz.t, &set, true) == 0, "%s: signatures and config loaded", name);
	for (unsigned i = 0; i < NLISTS; i++) {
		int rc = lists[i].ban ? dpt_ban(&fz.t, lists[i].cidr, 0, 1) : dpt_allow(&fz.t, lists[i].cidr);

		if (rc)
			TAP_CHECK(0, "%s: list entry %s: %s", name, lists[i].cidr, strerror(-rc));
	}
	stats_read_all(&fz, fz.stats_prev, fz.bytes_prev);
	counters_read_all(&fz, fz.ctr_prev);
	for (int i = 0; i < FUZZ_SESSIONS; i++)
		sess_reset(&fz.s[i]);

	for (unsigned n = 0; n < frames; n++) {
		struct pkt_opts po;
		struct pkt_layout lay;
		uint32_t paylen, len, hdr_end;
		bool xdp = true;
		int blen, mut = 0;

		if (rand_chance(65)) {
			xdp = sess_step(&fz, &fz.s[rand_below(FUZZ_SESSIONS)], &po, &paylen);
		} else {
			combo_random(&fz, &po, &paylen);
			xdp = rand_chance(85);
		}
		po.payload = fz.pay;
		po.payload_len = paylen;
		blen = pkt_build_layout(&po, b, PKT_MAX, &lay);
		if (blen < 0)
			continue;
		len = blen;
		hdr_end = lay.payload_off;
		if (rand_chance(55)) {
			mut = mutate(b, &len, sizeof(b), &lay);
			fz.mutated++;
		} else {
			fz.wellformed++;
		}
		if (xdp)
			fuzz_xdp(&fz, b, len, mut, hdr_end);
		else
			fuzz_tc(&fz, b, len);
		if (!fz.drain_each && n % FUZZ_TINY_DRAIN == 0) {
			dpt_events(&fz.t);
			fz.ev_read += fz.t.nev;
		}
		if (n % FUZZ_WALK_EVERY == FUZZ_WALK_EVERY - 1)
			walk_all(&fz);
		if (n % FUZZ_AGE_EVERY == FUZZ_AGE_EVERY - 1) {
			/* jump the datapath clock: flows expire on their next packet */
			fz.t.cfg.clock_offset_ns += FUZZ_AGE_NS;
			dpt_config_push(&fz.t);
			fz.pushes++;
		}
	}
	walk_all(&fz);
	dpt_events(&fz.t);
	fz.ev_read += fz.t.nev;
	counters_read_all(&fz, ctr);

	printf("# %s: %u XDP + %u tc frames (%u mutated, %u as built, %u too short to run), %u flow walks "
	       "(%u flows), reasons reached 0x%" PRIx64 ", events read %" PRIu64 " submitted %" PRIu64 " lost %"
	       PRIu64 " sampled %" PRIu64 "\n", name, fz.xdp_frames, fz.tc_frames, fz.mutated, fz.wellformed,
	       fz.short_frames, fz.walks, fz.flows_seen, fz.reasons_seen, fz.ev_read, ctr[HYP_C_EV_SUBMITTED],
	       ctr[HYP_C_EV_LOST], ctr[HYP_C_EV_SAMPLED]);
	if (fz.ev_nosig)
		printf("# %s: %u match events named no signature (flows dropped before one of %u config pushes)\n",
		       name, fz.ev_nosig, fz.pushes);
	printf("# %s: verdicts:", name);
	for (int i = 0; i < HYP_STATS_ENTRIES; i++)
		if (fz.stats_prev[i])
			printf(" %s=%" PRIu64, dpt_stat_name(i), fz.stats_prev[i]);
	printf("\n");
	TAP_EQ(fz.v_run, 0, "%s: every frame ran (short ones refused by the kernel)", name);
	TAP_EQ(fz.v_verdict, 0, "%s: verdict always XDP_PASS or XDP_DROP, never ABORTED", name);
	TAP_EQ(fz.v_books, 0, "%s: each XDP frame grew exactly one stats entry by one packet and its bytes, "
	       "seen == sum(stats)", name);
	TAP_EQ(fz.v_reason, 0, "%s: drops are DROP_*, passes PASS_* or monitor entries", name);
	TAP_EQ(fz.v_ref, 0, "%s: reason agrees with the reference classifier", name);
	TAP_EQ(fz.v_trunc, 0, "%s: frames cut inside the IP/L4 header never PASS_FLOW/PASS_NEW", name);
	TAP_EQ(fz.v_sig, 0, "%s: signature verdicts agree with sigset_scan (UDP exactly, TCP for whole patterns)", name);
	TAP_EQ(fz.v_tc, 0, "%s: tc egress always TC_ACT_OK and never touches ingress stats", name);
	TAP_EQ(fz.v_flows, 0, "%s: flows have canonical keys and states valid for their protocol and map", name);
	TAP_EQ(fz.v_untracked, 0, "%s: frames conntrack must not see (malformed, listed, fragments, untracked "
	       "protocols, refused flags) leave the conntrack counters alone, ingress and egress", name);
	TAP_EQ(fz.v_userkey, 0, "%s: runtime flow_key_make builds the datapath's key from both views", name);
	TAP_EQ(fz.v_ctbooks, 0, "%s: conntrack inserts - deletes >= live entries", name);
	if (fz.drain_each) {
		TAP_EQ(fz.v_events, 0, "%s: events per frame bounded, verdict events exactly when due", name);
		TAP_EQ(fz.v_evfields, 0, "%s: event fields agree with the frame and its verdict", name);
		TAP_EQ(fz.ev_read, ctr[HYP_C_EV_SUBMITTED], "%s: every submitted event was read", name);
	}
	TAP_CHECK(ctr[HYP_C_EV_SUBMITTED] + ctr[HYP_C_EV_LOST] + ctr[HYP_C_EV_SAMPLED] <= fz.ev_attempt_bound,
		  "%s: events attempted (%" PRIu64 ") within what the frames can produce (%" PRIu64 ")", name,
		  ctr[HYP_C_EV_SUBMITTED] + ctr[HYP_C_EV_LOST] + ctr[HYP_C_EV_SAMPLED], fz.ev_attempt_bound);
	if (kind == ROUND_TINY_RING)
		TAP_CHECK(ctr[HYP_C_EV_LOST] > 0, "%s: a full ring buffer loses events (counted, never blocks)", name);
	if (kind == ROUND_STRICT)
		TAP_CHECK(ctr[HYP_C_EV_SAMPLED] > 0, "%s: sampling suppressed some events", name);
	TAP_CHECK(fz.xdp_frames > frames / 2, "%s: most frames went through XDP (%u)", name, fz.xdp_frames);
	if (fz.t.cfg.mode != HYP_MODE_MONITOR)
		TAP_CHECK(fz.ndropped > 0 && ctr[HYP_C_VCACHE_HIT] > 0, "%s: flows were dropped (%u) and the verdict "
			  "cache answered for them (%" PRIu64 " hits)", name, fz.ndropped, ctr[HYP_C_VCACHE_HIT]);
	dpt_close(&fz.t);
}

int main(void)
{
	const char *s = getenv("HYP_FUZZ_SEED"), *f = getenv("HYP_FUZZ_FRAMES");
	uint64_t seed = s ? strtoull(s, NULL, 0) : FUZZ_SEED_DEFAULT;
	unsigned frames = f ? (unsigned)strtoul(f, NULL, 0) : FUZZ_FRAMES_DEFAULT;
	char err[256];
	int rc;

	printf("# test_fuzz: seed 0x%" PRIx64 " (HYP_FUZZ_SEED), %u frames per round (HYP_FUZZ_FRAMES)\n", seed,
	       frames);
	listed_parse();
	for (unsigned i = 0; i < NSIGS; i++)
		sigdef_fill(&defs[i], sig_table[i].name, sig_table[i].pat, strlen(sig_table[i].pat),
			    sig_table[i].action, sig_table[i].flags, sig_table[i].proto, sig_table[i].port);
	rc = sigset_compile(&set, defs, NSIGS, err, sizeof(err));
	TAP_CHECK(rc == 0, "signature set compiles (%s)", rc ? err : "ok");
	if (rc)
		return tap_done();
	fuzz_round(ROUND_ENFORCE, "enforce", frames, seed);
	fuzz_round(ROUND_MONITOR, "monitor", frames, seed);
	fuzz_round(ROUND_STRICT, "strict", frames, seed);
	fuzz_round(ROUND_TINY_RING, "tiny-ring", frames, seed);
	sigset_free(&set);
	return tap_done();
}
