/* Connection tracking through the real programs: TCP state machine both ways, pickup, timeouts, LRU
 * pressure, UDP and ICMP pseudo-flows, per-direction counters, flow events; IPv4 and IPv6. */
#include <arpa/inet.h>
#include <sched.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "tap.h"
#include "pkt.h"
#include "dptest.h"
#include "hyperion.skel.h"

enum {
	FLOWS_TEST_MAX = 4096,
	LRU_SMALL = 256,            /* flows / flows_new size for the eviction test */
	LRU_EST_FLOWS = 16,         /* established flows that must survive the SYN flood */
	LRU_FLOOD = 2000,           /* SYNs in the flood: several times flows_new */
	ACK_FLOOD = 200,
	FAST_N = 600,               /* fast-path segments: two carries (every 256th packet) and a remainder */
	FAST_CARRY = 256,           /* bpf/vcache.h HYP_VCACHE_PASS_CARRY + 1: one packet in this many */
	FAST_TIMEOUT_MS = 50,       /* an established timeout under the cache's 1 s TTL */
	SPORT_BASE = 20000,
	NS = 1000000000,
};

/* Path of a packet: remote -> local through XDP, local -> remote through tc egress. */
enum { IN, OUT };
/* Expected table column "no flow / don't care". */
enum { NONE = -1, ANY = -1 };

struct ends {
	int family;
	const char *remote, *local;
	uint16_t rport, lport;
};

static const char *const remote4 = "192.0.2.7", *const local4 = "198.51.100.1";
static const char *const remote6 = "2001:db8:1::7", *const local6 = "2001:db8:2::1";
static uint16_t sport_next = SPORT_BASE;

static struct ends ends_new(int family, uint16_t lport)
{
	struct ends e = { family, family == 6 ? remote6 : remote4, family == 6 ? local6 : local4,
			  sport_next++, lport };
	return e;
}

static int build(const struct ends *e, int path, uint8_t proto, uint8_t flags, uint32_t paylen, uint8_t *b)
{
	static const uint8_t payload[1400];
	struct pkt_opts o = { .family = e->family, .proto = proto, .tcp_flags = flags, .seq = 1000, .ack = 1,
			      .payload = paylen ? payload : NULL, .payload_len = paylen };

	o.src = path == IN ? e->remote : e->local;
	o.dst = path == IN ? e->local : e->remote;
	o.sport = path == IN ? e->rport : e->lport;
	o.dport = path == IN ? e->lport : e->rport;
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		/* flags carries the ICMP type for these rows; the echo identifier is rport */
		o.icmp_type = flags;
		o.icmp_id = e->rport;
		o.tcp_flags = 0;
	}
	return pkt_build(&o, b, PKT_MAX);
}

static int flow_of(struct dpt *t, const struct ends *e, uint8_t proto, struct hyp_flow *f, bool *est)
{
	uint16_t rp = e->rport, lp = e->lport;

	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6)
		lp = rp;        /* echo pseudo-flow: both "ports" are the identifier */
	return dpt_flow(t, e->family, proto, e->remote, rp, e->local, lp, f, est);
}

/* Direction index of the remote end in the flow key: 0 if it is endpoint a. */
static int remote_dir(const struct ends *e)
{
	struct hyp_flow_key k;
	uint8_t r[16] = { 0 };

	inet_pton(e->family == 6 ? AF_INET6 : AF_INET, e->remote, r);
	dpt_flow_key(e->family, IPPROTO_TCP, e->remote, e->rport, e->local, e->lport, &k);
	return !(memcmp(k.addr_a, r, 16) == 0 && k.port_a == htons(e->rport));
}

static bool open_fresh(struct dpt *t, uint32_t flows_max, uint32_t flows_new_max)
{
	int err = dpt_open(t, flows_max, flows_new_max);

	if (err)
		TAP_SKIP("dpt_open failed (%s): cannot load BPF here", strerror(-err));
	return !err;
}

/* One row of a conntrack table: a packet and what must hold after it. */
struct step {
	int path;
	uint8_t proto;
	uint8_t flags;              /* TCP flags, or the ICMP type */
	uint32_t paylen;
	int reason;                 /* expected stats entry (IN) / -1 for OUT rows (tc returns TC_ACT_OK) */
	int rc;                     /* expected XDP verdict (IN rows) */
	int state;                  /* flow state afterwards, NONE = no flow */
	int est;                    /* 1 = in flows, 0 = in flows_new, ANY */
};

/* Runs a table; returns the number of frame bytes sent in each direction through out_bytes[path]. */
static void run_steps(struct dpt *t, const char *name, const struct ends *e, const struct step *s, int n,
		      uint64_t out_bytes[2], uint64_t out_pkts[2])
{
	uint8_t b[PKT_MAX];
	int i;

	for (i = 0; i < n; i++) {
		char what[128];
		struct hyp_flow f;
		bool est = false;
		int len = build(e, s[i].path, s[i].proto, s[i].flags, s[i].paylen, b), got;

		snprintf(what, sizeof(what), "%s v%d step %d (%s flags %#x)", name, e->family, i,
			 s[i].path == IN ? "in" : "out", s[i].flags);
		if (s[i].path == IN) {
			dpt_expect(t, b, len, s[i].rc, s[i].reason, what);
		} else {
			TAP_EQ(dpt_tc(t, b, len), TC_ACT_OK, "%s: tc passes", what);
		}
		if (out_bytes) {
			out_bytes[s[i].path] += len;
			out_pkts[s[i].path]++;
		}
		got = flow_of(t, e, s[i].proto, &f, &est);
		if (s[i].state == NONE) {
			TAP_EQ(got, -ENOENT, "%s: no flow", what);
			continue;
		}
		TAP_CHECK(got == 0 && f.state == s[i].state, "%s: state %d (got %d, lookup %d)", what, s[i].state,
			  got ? -1 : f.state, got);
		if (s[i].est != ANY)
			TAP_CHECK(got == 0 && est == s[i].est, "%s: in %s", what, s[i].est ? "flows" : "flows_new");
	}
}

#define T(path, flags, pl, reason, rc, state, est) { path, IPPROTO_TCP, flags, pl, reason, rc, state, est }

/* Remote opens, local accepts, remote closes first. */
static const struct step inbound_close[] = {
	T(IN, TH_SYN, 0, HYP_R_PASS_NEW, XDP_PASS, HYP_CT_SYN_SENT, 0),
	T(IN, TH_SYN, 0, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_SYN_SENT, 0),        /* retransmitted SYN */
	T(OUT, TH_SYN | TH_ACK, 0, -1, 0, HYP_CT_SYN_RECV, 0),
	T(IN, TH_ACK, 0, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_ESTABLISHED, 1),     /* promoted */
	T(IN, TH_ACK | TH_PSH, 100, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_ESTABLISHED, 1),
	T(OUT, TH_ACK | TH_PSH, 300, -1, 0, HYP_CT_ESTABLISHED, 1),
	T(IN, TH_FIN | TH_ACK, 0, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_FIN_WAIT, 1),
	T(OUT, TH_ACK, 0, -1, 0, HYP_CT_FIN_WAIT, 1),
	T(OUT, TH_FIN | TH_ACK, 0, -1, 0, HYP_CT_TIME_WAIT, 1),
	T(IN, TH_ACK, 0, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_TIME_WAIT, 1),       /* last ACK still known */
	T(IN, TH_SYN, 0, HYP_R_PASS_NEW, XDP_PASS, HYP_CT_SYN_SENT, 0),         /* SYN reopens TIME_WAIT */
};

/* Local opens (tc egress), remote accepts, remote closes first. */
static const struct step outbound_close[] = {
	T(OUT, TH_SYN, 0, -1, 0, HYP_CT_SYN_SENT, 0),
	T(IN, TH_SYN | TH_ACK, 0, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_SYN_RECV, 0),
	T(OUT, TH_ACK, 0, -1, 0, HYP_CT_ESTABLISHED, 1),
	T(IN, TH_ACK | TH_PSH, 500, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_ESTABLISHED, 1),
	T(IN, TH_FIN | TH_ACK, 0, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_CLOSE_WAIT, 1),  /* responder first */
	T(OUT, TH_FIN | TH_ACK, 0, -1, 0, HYP_CT_TIME_WAIT, 1),
};

/* RST from either side closes any state; a SYN then opens a new flow (in flows_new again). */
static const struct step reset_reopen[] = {
	T(IN, TH_SYN, 0, HYP_R_PASS_NEW, XDP_PASS, HYP_CT_SYN_SENT, 0),
	T(OUT, TH_SYN | TH_ACK, 0, -1, 0, HYP_CT_SYN_RECV, 0),
	T(IN, TH_ACK, 0, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_ESTABLISHED, 1),
	T(OUT, TH_RST, 0, -1, 0, HYP_CT_CLOSED, 1),
	T(IN, TH_ACK, 0, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_CLOSED, 1),          /* stays CLOSED */
	T(IN, TH_SYN, 0, HYP_R_PASS_NEW, XDP_PASS, HYP_CT_SYN_SENT, 0),
	T(IN, TH_RST | TH_ACK, 0, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_CLOSED, 0), /* RST of a half-open flow */
};

/* Flag combinations no stack sends are dropped with or without a flow; tc never drops. */
static const struct step invalid_flags[] = {
	T(IN, TH_SYN | TH_FIN, 0, HYP_R_DROP_INVALID, XDP_DROP, NONE, ANY),
	T(IN, TH_SYN | TH_RST, 0, HYP_R_DROP_INVALID, XDP_DROP, NONE, ANY),
	T(IN, 0, 0, HYP_R_DROP_INVALID, XDP_DROP, NONE, ANY),
	T(IN, TH_FIN | TH_PSH | TH_URG, 0, HYP_R_DROP_INVALID, XDP_DROP, NONE, ANY),  /* Xmas */
	T(OUT, TH_SYN | TH_FIN, 0, -1, 0, NONE, ANY),
	T(IN, TH_SYN, 0, HYP_R_PASS_NEW, XDP_PASS, HYP_CT_SYN_SENT, 0),
	T(IN, TH_SYN | TH_RST, 0, HYP_R_DROP_INVALID, XDP_DROP, HYP_CT_SYN_SENT, 0),
	T(IN, 0, 0, HYP_R_DROP_INVALID, XDP_DROP, HYP_CT_SYN_SENT, 0),
};

#define U(path, pl, reason, rc, state, est) { path, IPPROTO_UDP, 0, pl, reason, rc, state, est }

static const struct step udp_inbound[] = {
	U(IN, 20, HYP_R_PASS_NEW, XDP_PASS, HYP_CT_UDP, 0),
	U(IN, 20, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_UDP, 0),
	U(OUT, 40, -1, 0, HYP_CT_UDP_REPLIED, 1),
	U(IN, 20, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_UDP_REPLIED, 1),
};

static const struct step udp_outbound[] = {
	U(OUT, 30, -1, 0, HYP_CT_UDP, 0),
	U(OUT, 30, -1, 0, HYP_CT_UDP, 0),
	U(IN, 60, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_UDP_REPLIED, 1),
};

static void table(const char *name, int family, uint16_t lport, const struct step *s, int n)
{
	struct dpt t;
	struct ends e = ends_new(family, lport);

	if (!open_fresh(&t, FLOWS_TEST_MAX, FLOWS_TEST_MAX))
		return;
	run_steps(&t, name, &e, s, n, NULL, NULL);
	dpt_close(&t);
}

/* Per-direction counters, inbound flag, and the flow_new / flow_end events of a full connection. */
static void test_counters_and_events(int family)
{
	struct ends e = ends_new(family, 443);
	uint64_t bytes[2] = { 0 }, pkts[2] = { 0 };
	const struct hyp_event *ev;
	struct hyp_flow f;
	int rd, n, i;
	struct dpt t;

	if (!open_fresh(&t, FLOWS_TEST_MAX, FLOWS_TEST_MAX))
		return;
	/* the TIME_WAIT row would reopen the flow; stop before it */
	run_steps(&t, "counters", &e, inbound_close, 10, bytes, pkts);
	rd = remote_dir(&e);
	TAP_EQ(flow_of(&t, &e, IPPROTO_TCP, &f, NULL), 0, "counters v%d: flow exists", family);
	TAP_EQ(f.packets[rd], pkts[IN], "counters v%d: packets from remote", family);
	TAP_EQ(f.packets[!rd], pkts[OUT], "counters v%d: packets from local", family);
	TAP_EQ(f.bytes[rd], bytes[IN], "counters v%d: bytes from remote", family);
	TAP_EQ(f.bytes[!rd], bytes[OUT], "counters v%d: bytes from local", family);
	TAP_EQ(f.orig, rd, "counters v%d: originator is the remote", family);
	TAP_CHECK(f.flags & HYP_FF_INBOUND, "counters v%d: inbound flag", family);
	TAP_CHECK(f.flags & HYP_FF_ESTABLISHED_MAP, "counters v%d: established-map flag", family);
	TAP_CHECK(f.last_seen_ns >= f.created_ns && f.created_ns > 0, "counters v%d: timestamps", family);
	dpt_events(&t);
	ev = dpt_event_find(&t, HYP_EV_FLOW_NEW, &n);
	TAP_EQ(n, 1, "events v%d: one flow_new", family);
	TAP_CHECK(ev && ev->dir == 0 && ev->state == HYP_CT_SYN_SENT && ev->reason == HYP_R_PASS_NEW &&
		  ev->sport == htons(e.rport) && ev->dport == htons(e.lport) && ev->proto == IPPROTO_TCP,
		  "events v%d: flow_new fields", family);
	ev = dpt_event_find(&t, HYP_EV_FLOW_END, &n);
	TAP_EQ(n, 1, "events v%d: one flow_end (at TIME_WAIT, not again for the last ACK)", family);
	TAP_CHECK(ev && ev->state == HYP_CT_TIME_WAIT && ev->dir == 1, "events v%d: flow_end at TIME_WAIT via tc",
		  family);
	/* flow_end is emitted by the packet that closed it: the last ACK after it is not included */
	TAP_CHECK(ev && ev->packets == pkts[IN] + pkts[OUT] - 1, "events v%d: flow_end packets both ways (%llu)",
		  family, ev ? (unsigned long long)ev->packets : 0ULL);
	for (i = 0, n = 0; i < t.nev; i++)
		n += t.ev[i].kind != HYP_EV_FLOW_NEW && t.ev[i].kind != HYP_EV_FLOW_END;
	TAP_EQ(n, 0, "events v%d: no other events for a clean connection", family);
	TAP_EQ(dpt_counter(&t, HYP_C_CT_NEW_INSERT), 1, "counters v%d: one flows_new insert", family);
	TAP_EQ(dpt_counter(&t, HYP_C_CT_NEW_DELETE), 1, "counters v%d: one flows_new delete (promotion)", family);
	TAP_EQ(dpt_counter(&t, HYP_C_CT_EST_INSERT), 1, "counters v%d: one flows insert", family);
	TAP_EQ(dpt_counter(&t, HYP_C_CT_EST_DELETE), 0, "counters v%d: no flows delete", family);

	/* RST: flow_end with state CLOSED; reopen deletes the closed entry from flows */
	{
		struct ends r = ends_new(family, 443);

		dpt_events(&t);
		run_steps(&t, "rst", &r, reset_reopen, 6, NULL, NULL);
		dpt_events(&t);
		ev = dpt_event_find(&t, HYP_EV_FLOW_END, &n);
		TAP_CHECK(n == 1 && ev->state == HYP_CT_CLOSED, "events v%d: RST gives one flow_end, CLOSED", family);
		TAP_EQ(dpt_counter(&t, HYP_C_CT_EST_DELETE), 1, "counters v%d: reopen deleted the closed flow",
		       family);
	}
	dpt_close(&t);
}

/* Send n remote segments of an established flow (every other one with payload); adds to *pkts, *bytes. */
static void fast_send(struct dpt *t, const struct ends *e, int n, uint64_t *pkts, uint64_t *bytes, const char *what)
{
	uint8_t b[PKT_MAX];
	int i, ok = 0;

	for (i = 0; i < n; i++) {
		int len = build(e, IN, IPPROTO_TCP, TH_ACK, i % 2 ? 100 : 0, b);

		ok += dpt_xdp(t, b, (uint32_t)len) == XDP_PASS;
		*pkts += 1;
		*bytes += (uint64_t)len;
	}
	TAP_EQ(ok, n, "%s: every segment passes", what);
}

/* After a flow's end: its flow_end event counts every packet and byte, and the remote's next ACK meets
 * conntrack (the pass entries ended with the flow). */
static void fast_check_end(struct dpt *t, const struct ends *e, int family, uint64_t pkts, uint64_t bytes,
			   const char *where)
{
	const struct hyp_event *ev;
	uint8_t b[PKT_MAX];
	uint64_t hits;
	int n, len;

	dpt_events(t);
	ev = dpt_event_find(t, HYP_EV_FLOW_END, &n);
	TAP_CHECK(n == 1 && ev->packets == pkts && ev->bytes == bytes,
		  "fast path v%d: flow_end %s counts every packet (%llu of %llu) and byte", family, where,
		  n == 1 ? (unsigned long long)ev->packets : 0ULL, (unsigned long long)pkts);
	hits = dpt_counter(t, HYP_C_VCACHE_HIT);
	len = build(e, IN, IPPROTO_TCP, TH_ACK, 0, b);
	dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_FLOW, "fast path: the remote's ACK after the end");
	TAP_EQ(dpt_counter(t, HYP_C_VCACHE_HIT), hits, "fast path v%d: ... meets conntrack (%s)", family, where);
}

/*
 * The established fast path (bpf/vcache.h pass entries): once a flow is ESTABLISHED, its segments
 * without SYN, FIN or RST are passed by the verdict cache, counted in the cache entry and carried to the
 * flow every 256th packet; what user space reads of the flow includes what the entry holds, and the
 * flow's end reports every packet. A ban, a per-source pps limit or a timeout shorter than the cache's
 * TTL is never outlived by an entry.
 */
static void test_fast_path(int family)
{
	struct ends e = ends_new(family, 443);
	uint64_t bytes[2] = { 0 }, pkts[2] = { 0 }, hits, pass;
	struct hyp_flow_key k;
	struct hyp_flow f, raw;
	uint8_t b[PKT_MAX];
	struct dpt t;
	int rd, len;

	if (!open_fresh(&t, FLOWS_TEST_MAX, FLOWS_TEST_MAX))
		return;
	run_steps(&t, "fast", &e, inbound_close, 4, bytes, pkts);    /* SYN, SYN, SYN-ACK, ACK: established */
	rd = remote_dir(&e);
	hits = dpt_counter(&t, HYP_C_VCACHE_HIT);
	pass = dpt_stat(&t, HYP_R_PASS_FLOW);
	fast_send(&t, &e, FAST_N, &pkts[IN], &bytes[IN], "fast path");
	TAP_EQ(dpt_stat(&t, HYP_R_PASS_FLOW) - pass, FAST_N, "fast path v%d: every segment booked pass_flow", family);
	TAP_EQ(dpt_counter(&t, HYP_C_VCACHE_HIT) - hits, FAST_N - FAST_N / FAST_CARRY,
	       "fast path v%d: the cache passed all but every %dth (carried through conntrack)", family, FAST_CARRY);
	TAP_EQ(flow_of(&t, &e, IPPROTO_TCP, &f, NULL), 0, "fast path v%d: flow exists", family);
	TAP_EQ(f.packets[rd], pkts[IN], "fast path v%d: packets from remote, as read (flow + cache)", family);
	TAP_EQ(f.bytes[rd], bytes[IN], "fast path v%d: bytes from remote, as read", family);
	TAP_EQ(f.packets[!rd], pkts[OUT], "fast path v%d: packets from local", family);
	dpt_flow_key(family, IPPROTO_TCP, e.remote, e.rport, e.local, e.lport, &k);
	TAP_EQ(bpf_map_lookup_elem(bpf_map__fd(t.skel->maps.flows), &k, &raw), 0, "fast path v%d: raw entry", family);
	TAP_EQ(raw.packets[rd], pkts[IN] - FAST_N % FAST_CARRY,
	       "fast path v%d: the flow entry holds all but the cache's %d uncarried packets", family,
	       FAST_N % FAST_CARRY);

	/* the end of the flow: both directions' entries are settled first, so flow_end has every packet */
	{
		static const struct step close_rows[] = {
			T(IN, TH_FIN | TH_ACK, 0, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_FIN_WAIT, 1),
			T(OUT, TH_ACK, 0, -1, 0, HYP_CT_FIN_WAIT, 1),
			T(OUT, TH_FIN | TH_ACK, 0, -1, 0, HYP_CT_TIME_WAIT, 1),
		};

		dpt_events(&t);
		fast_send(&t, &e, 10, &pkts[IN], &bytes[IN], "fast path before the FIN");
		run_steps(&t, "fast close", &e, close_rows, 3, bytes, pkts);
		fast_check_end(&t, &e, family, pkts[IN] + pkts[OUT], bytes[IN] + bytes[OUT], "on this CPU");
	}

	/* segments conntrack refuses (no ACK) are never passed by the cache, with or without payload */
	e = ends_new(family, 443);
	run_steps(&t, "fast invalid", &e, inbound_close, 4, NULL, NULL);
	fast_send(&t, &e, 5, &pkts[IN], &bytes[IN], "fast path before invalid segments");
	{
		static const uint8_t bad[] = { 0, TH_PSH, TH_PSH | TH_URG };

		for (unsigned i = 0; i < sizeof(bad); i++) {
			len = build(&e, IN, IPPROTO_TCP, bad[i], i == 1 ? 100 : 0, b);
			dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_INVALID,
				   "fast path: a segment without ACK of a cached flow drops (invalid)");
		}
	}

	/* the flow ends on another CPU (tc egress runs where the local side sends): that CPU settles the
	 * receiving CPU's entries too, and ends them */
	if (libbpf_num_possible_cpus() >= 2) {
		uint64_t p2[2] = { 0 }, b2[2] = { 0 };
		int here = sched_getcpu(), there;
		cpu_set_t set;

		e = ends_new(family, 443);
		run_steps(&t, "fast cross-cpu", &e, inbound_close, 4, b2, p2);
		fast_send(&t, &e, 50, &p2[IN], &b2[IN], "fast path on this CPU");
		dpt_events(&t);
		there = here == 0 ? 1 : 0;
		CPU_ZERO(&set);
		CPU_SET(there, &set);
		if (sched_setaffinity(0, sizeof(set), &set) == 0) {
			len = build(&e, OUT, IPPROTO_TCP, TH_RST | TH_ACK, 0, b);
			TAP_EQ(dpt_tc(&t, b, len), TC_ACT_OK, "fast path v%d: local RST on CPU %d", family, there);
			p2[OUT]++;
			b2[OUT] += len;
			CPU_ZERO(&set);
			CPU_SET(here, &set);
			sched_setaffinity(0, sizeof(set), &set);
			fast_check_end(&t, &e, family, p2[IN] + p2[OUT], b2[IN] + b2[OUT], "on another CPU");
		} else {
			TAP_SKIP("cannot move to CPU %d: %s", there, strerror(errno));
		}
	} else {
		TAP_SKIP("one CPU: no flow ends on another CPU");
	}

	/* a per-source pps limit: every packet takes a token, none is passed by the cache */
	e = ends_new(family, 8443);
	t.cfg.pps_rate = 1000000;
	t.cfg.pps_burst = 1000000;
	dpt_config_push(&t);
	run_steps(&t, "fast pps", &e, inbound_close, 4, NULL, NULL);
	hits = dpt_counter(&t, HYP_C_VCACHE_HIT);
	fast_send(&t, &e, 20, &pkts[IN], &bytes[IN], "fast path with a pps limit");
	TAP_EQ(dpt_counter(&t, HYP_C_VCACHE_HIT), hits, "fast path v%d: not with a pps limit", family);
	t.cfg.pps_rate = 0;

	/* an established timeout under the TTL: the entry lapses with it, conntrack expires the flow */
	e = ends_new(family, 8443);
	t.cfg.pickup = HYP_PICKUP_STRICT;
	t.cfg.timeout_ns[HYP_CT_ESTABLISHED] = FAST_TIMEOUT_MS * 1000000ULL;
	dpt_config_push(&t);
	run_steps(&t, "fast timeout", &e, inbound_close, 4, NULL, NULL);
	hits = dpt_counter(&t, HYP_C_VCACHE_HIT);
	fast_send(&t, &e, 5, &pkts[IN], &bytes[IN], "fast path, short timeout");
	TAP_EQ(dpt_counter(&t, HYP_C_VCACHE_HIT) - hits, 5, "fast path v%d: cached under a short timeout", family);
	usleep(3 * FAST_TIMEOUT_MS * 1000);
	len = build(&e, IN, IPPROTO_TCP, TH_ACK, 0, b);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_INVALID,
		   "fast path: past the timeout the flow expired, a mid-stream ACK is refused (strict pickup)");

	/* a ban ends the fast path at once (the state epoch); last: it bans every test flow's remote */
	e = ends_new(family, 443);
	t.cfg.timeout_ns[HYP_CT_ESTABLISHED] = 3600ULL * NS;
	dpt_config_push(&t);
	run_steps(&t, "fast ban", &e, inbound_close, 4, NULL, NULL);
	fast_send(&t, &e, 5, &pkts[IN], &bytes[IN], "fast path before a ban");
	TAP_EQ(dpt_ban(&t, e.remote, 0, 1), 0, "fast path v%d: ban the remote", family);
	len = build(&e, IN, IPPROTO_TCP, TH_ACK, 0, b);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_BANNED, "fast path: a banned source's next segment drops");
	dpt_close(&t);
}

/* Flows age out on the datapath clock: each state's timeout, moved with clock_offset_ns. */
static void test_timeouts(int family)
{
	struct ends e = ends_new(family, 22), u = ends_new(family, 53);
	uint8_t b[PKT_MAX];
	const struct hyp_event *ev;
	struct hyp_flow f;
	struct dpt t;
	int len, n;

	if (!open_fresh(&t, FLOWS_TEST_MAX, FLOWS_TEST_MAX))
		return;
	t.cfg.pickup = HYP_PICKUP_STRICT;
	t.cfg.timeout_ns[HYP_CT_SYN_SENT] = 10ULL * NS;
	t.cfg.timeout_ns[HYP_CT_UDP] = 30ULL * NS;
	dpt_config_push(&t);
	len = build(&e, IN, IPPROTO_TCP, TH_SYN, 0, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "timeout: SYN opens");
	len = build(&u, IN, IPPROTO_UDP, 0, 10, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "timeout: UDP opens");
	dpt_events(&t);

	t.cfg.clock_offset_ns += 5ULL * NS;     /* within both timeouts */
	dpt_config_push(&t);
	len = build(&e, OUT, IPPROTO_TCP, TH_SYN | TH_ACK, 0, b);
	dpt_tc(&t, b, len);
	TAP_CHECK(flow_of(&t, &e, IPPROTO_TCP, &f, NULL) == 0 && f.state == HYP_CT_SYN_RECV,
		  "timeout v%d: not expired before its timeout", family);

	/* SYN_RECV keeps the production 60 s; UDP times out at 30 s */
	t.cfg.clock_offset_ns += 31ULL * NS;
	dpt_config_push(&t);
	len = build(&u, IN, IPPROTO_UDP, 0, 10, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "timeout: expired UDP flow is re-created");
	TAP_EQ(dpt_counter(&t, HYP_C_CT_EXPIRED), 1, "timeout v%d: one expiry counted", family);
	dpt_events(&t);
	ev = dpt_event_find(&t, HYP_EV_FLOW_END, &n);
	TAP_CHECK(n == 1 && ev->state == HYP_CT_UDP && ev->proto == IPPROTO_UDP,
		  "timeout v%d: expiry reported as flow_end", family);
	dpt_event_find(&t, HYP_EV_FLOW_NEW, &n);
	TAP_EQ(n, 1, "timeout v%d: then flow_new for the re-created flow", family);

	t.cfg.clock_offset_ns += 61ULL * NS;
	dpt_config_push(&t);
	len = build(&e, IN, IPPROTO_TCP, TH_ACK, 0, b);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_INVALID, "timeout: ACK after SYN_RECV timeout has no flow");
	TAP_EQ(flow_of(&t, &e, IPPROTO_TCP, &f, NULL), -ENOENT, "timeout v%d: expired flow deleted", family);
	TAP_EQ(dpt_counter(&t, HYP_C_CT_EXPIRED), 2, "timeout v%d: second expiry counted", family);
	TAP_EQ(dpt_counter(&t, HYP_C_CT_NEW_DELETE), 2, "timeout v%d: both deletes counted", family);
	dpt_close(&t);
}

/* An ACK flood to random tuples creates no state and is dropped (default pickup SOCKET, no socket). */
static void test_ack_flood(int family)
{
	uint8_t b[PKT_MAX];
	struct dpt t;
	int i, drops = 0, len;

	if (!open_fresh(&t, FLOWS_TEST_MAX, FLOWS_TEST_MAX))
		return;
	for (i = 0; i < ACK_FLOOD; i++) {
		struct ends e = ends_new(family, 80);

		len = build(&e, IN, IPPROTO_TCP, TH_ACK, 0, b);
		drops += dpt_xdp(&t, b, len) == XDP_DROP;
	}
	TAP_EQ(drops, ACK_FLOOD, "ack flood v%d: every ACK dropped", family);
	TAP_EQ(dpt_stat(&t, HYP_R_DROP_INVALID), ACK_FLOOD, "ack flood v%d: as DROP_INVALID", family);
	TAP_EQ(dpt_counter(&t, HYP_C_CT_NEW_INSERT) + dpt_counter(&t, HYP_C_CT_EST_INSERT), 0,
	       "ack flood v%d: no flow inserted", family);
	dpt_close(&t);
}

/* Live entries of a flow map (keys are struct hyp_flow_key). */
static int map_count(int fd)
{
	struct hyp_flow_key k, nk;
	int n = 0;
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &nk) && n < 1000000) {
		k = nk;
		prev = &k;
		n++;
	}
	return n;
}

/* A SYN flood through a small flows_new evicts half-open flows only: established flows live in flows. */
static void test_lru_pressure(int family)
{
	struct ends est[LRU_EST_FLOWS];
	uint8_t b[PKT_MAX];
	struct hyp_flow f;
	struct dpt t;
	int i, len, alive = 0, pass = 0, live_new, live_est;
	uint64_t ins, del;

	if (!open_fresh(&t, LRU_SMALL, LRU_SMALL))
		return;
	for (i = 0; i < LRU_EST_FLOWS; i++) {
		est[i] = ends_new(family, 443);
		len = build(&est[i], IN, IPPROTO_TCP, TH_SYN, 0, b);
		dpt_xdp(&t, b, len);
		len = build(&est[i], OUT, IPPROTO_TCP, TH_SYN | TH_ACK, 0, b);
		dpt_tc(&t, b, len);
		len = build(&est[i], IN, IPPROTO_TCP, TH_ACK, 0, b);
		dpt_xdp(&t, b, len);
	}
	for (i = 0; i < LRU_FLOOD; i++) {
		struct ends e = ends_new(family, 443);

		/* one source, a new source port per SYN: every SYN is a new half-open flow */
		len = build(&e, IN, IPPROTO_TCP, TH_SYN, 0, b);
		pass += dpt_xdp(&t, b, len) == XDP_PASS;
	}
	TAP_EQ(pass, LRU_FLOOD, "lru v%d: flood SYNs pass (no rate limit configured)", family);
	for (i = 0; i < LRU_EST_FLOWS; i++) {
		bool in_flows = false;

		if (!flow_of(&t, &est[i], IPPROTO_TCP, &f, &in_flows) && in_flows && f.state == HYP_CT_ESTABLISHED) {
			len = build(&est[i], IN, IPPROTO_TCP, TH_ACK | TH_PSH, 10, b);
			alive += dpt_xdp(&t, b, len) == XDP_PASS;
		}
	}
	TAP_EQ(alive, LRU_EST_FLOWS, "lru v%d: every established flow survived the flood", family);
	live_new = map_count(bpf_map__fd(t.skel->maps.flows_new));
	live_est = map_count(bpf_map__fd(t.skel->maps.flows));
	TAP_CHECK(live_new <= LRU_SMALL, "lru v%d: flows_new holds at most its size (%d)", family, live_new);
	TAP_EQ(live_est, LRU_EST_FLOWS, "lru v%d: flows holds the established flows only", family);
	ins = dpt_counter(&t, HYP_C_CT_NEW_INSERT);
	del = dpt_counter(&t, HYP_C_CT_NEW_DELETE);
	TAP_EQ(ins, LRU_EST_FLOWS + LRU_FLOOD, "lru v%d: every SYN inserted into flows_new", family);
	TAP_EQ(del, LRU_EST_FLOWS, "lru v%d: deletes = promotions", family);
	TAP_CHECK(ins - del - live_new >= LRU_FLOOD - LRU_SMALL,
		  "lru v%d: evictions (inserts - deletes - live = %llu) account for the flood", family,
		  (unsigned long long)(ins - del - live_new));
	TAP_EQ(dpt_counter(&t, HYP_C_CT_EST_INSERT), LRU_EST_FLOWS, "lru v%d: flows inserts", family);
	dpt_close(&t);
}

/* ICMP: echo request opens a pseudo-flow keyed by identifier, the reply promotes it; errors and
 * neighbour discovery pass untracked. */
static void test_icmp(int family)
{
	uint8_t proto = family == 6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
	uint8_t req = family == 6 ? 128 : 8, rep = family == 6 ? 129 : 0, err = family == 6 ? 1 : 3;
	struct ends e = ends_new(family, 0), x = ends_new(family, 0), o = ends_new(family, 0);
	struct step s[] = {
		{ IN, proto, req, 56, HYP_R_PASS_NEW, XDP_PASS, HYP_CT_ICMP, 0 },
		{ IN, proto, req, 56, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_ICMP, 0 },
		{ OUT, proto, rep, 56, -1, 0, HYP_CT_ICMP, 1 },
		{ IN, proto, req, 56, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_ICMP, 1 },
		{ IN, proto, err, 28, HYP_R_PASS_ICMP, XDP_PASS, HYP_CT_ICMP, 1 },
	};
	struct step unsolicited[] = {
		{ IN, proto, rep, 56, HYP_R_PASS_ICMP, XDP_PASS, NONE, ANY },
		{ IN, proto, err, 28, HYP_R_PASS_ICMP, XDP_PASS, NONE, ANY },
	};
	struct step outbound[] = {
		{ OUT, proto, req, 56, -1, 0, HYP_CT_ICMP, 0 },
		{ IN, proto, rep, 56, HYP_R_PASS_FLOW, XDP_PASS, HYP_CT_ICMP, 1 },
	};
	struct dpt t;

	if (!open_fresh(&t, FLOWS_TEST_MAX, FLOWS_TEST_MAX))
		return;
	run_steps(&t, "icmp echo in", &e, s, 5, NULL, NULL);
	run_steps(&t, "icmp unsolicited", &x, unsolicited, 2, NULL, NULL);
	run_steps(&t, "icmp echo out", &o, outbound, 2, NULL, NULL);
	if (family == 6) {
		/* neighbour solicitation/advertisement, router solicitation/advertisement: IPv6 needs them */
		static const uint8_t nd[] = { 133, 134, 135, 136, 137 };
		struct ends n = ends_new(6, 0);
		unsigned i;

		for (i = 0; i < sizeof(nd); i++) {
			struct step st = { IN, IPPROTO_ICMPV6, nd[i], 24, HYP_R_PASS_ICMP, XDP_PASS, NONE, ANY };

			run_steps(&t, "icmpv6 nd", &n, &st, 1, NULL, NULL);
		}
	}
	dpt_close(&t);
}

/* A real TCP connection on loopback: with pickup SOCKET an ACK of its 4-tuple (flow state lost) is
 * picked up, a tuple no socket owns is dropped; STRICT drops both; GRACE takes anything in the window. */
static void test_pickup(int family)
{
	const char *lo = family == 6 ? "::1" : "127.0.0.1";
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int lfd = -1, cfd = -1, afd = -1;
	uint16_t sport, dport;
	uint8_t b[PKT_MAX];
	struct hyp_flow f;
	bool est = false;
	struct dpt t;
	int len;

	lfd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	cfd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (family == 6) {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	}
	if (lfd < 0 || cfd < 0 || bind(lfd, (void *)&ss, sl) || listen(lfd, 4) ||
	    getsockname(lfd, (void *)&ss, &sl) || connect(cfd, (void *)&ss, sl) ||
	    (afd = accept(lfd, NULL, NULL)) < 0) {
		TAP_SKIP("pickup v%d: no loopback TCP here (%s)", family, strerror(errno));
		goto out;
	}
	dport = ntohs(family == 6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
	sl = sizeof(ss);
	getsockname(cfd, (void *)&ss, &sl);
	sport = ntohs(family == 6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
	if (!open_fresh(&t, FLOWS_TEST_MAX, FLOWS_TEST_MAX))
		goto out;
	{
		struct ends real = { family, lo, lo, sport, dport };
		struct ends none = { family, lo, lo, sport + 1 == dport ? sport + 2 : sport + 1, dport };
		struct ends closed = { family, lo, lo, sport, 1 };

		t.cfg.pickup = HYP_PICKUP_STRICT;
		dpt_config_push(&t);
		len = build(&real, IN, IPPROTO_TCP, TH_ACK | TH_PSH, 10, b);
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_INVALID, "pickup strict: owned tuple dropped");

		t.cfg.pickup = HYP_PICKUP_SOCKET;
		dpt_config_push(&t);
		dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "pickup socket: owned tuple picked up");
		TAP_CHECK(flow_of(&t, &real, IPPROTO_TCP, &f, &est) == 0 && est && f.state == HYP_CT_ESTABLISHED &&
			  (f.flags & HYP_FF_PICKUP), "pickup v%d: ESTABLISHED flow in flows, PICKUP flag", family);
		TAP_EQ(dpt_counter(&t, HYP_C_CT_PICKUP), 1, "pickup v%d: CT_PICKUP counted", family);
		dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_FLOW, "pickup socket: next segment is a flow packet");

		len = build(&none, IN, IPPROTO_TCP, TH_ACK, 0, b);
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_INVALID, "pickup socket: only the listener matches");
		len = build(&closed, IN, IPPROTO_TCP, TH_ACK, 0, b);
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_INVALID, "pickup socket: no socket at all");
		TAP_EQ(flow_of(&t, &none, IPPROTO_TCP, &f, NULL), -ENOENT, "pickup v%d: no state for refused", family);

		t.cfg.pickup = HYP_PICKUP_GRACE;
		t.cfg.pickup_grace_ns = 3600ULL * NS;
		dpt_config_push(&t);
		len = build(&none, IN, IPPROTO_TCP, TH_ACK, 0, b);
		dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "pickup grace: anything inside the window");
		t.cfg.clock_offset_ns += 2 * 3600ULL * NS;
		dpt_config_push(&t);
		len = build(&closed, IN, IPPROTO_TCP, TH_ACK, 0, b);
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_INVALID, "pickup grace: after the window, socket rule");
		dpt_events(&t);
		TAP_CHECK(dpt_event_find(&t, HYP_EV_INVALID, NULL) != NULL, "pickup v%d: refused ACK reported", family);
		dpt_close(&t);
	}
out:
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
}

int main(void)
{
	int fam;

	for (fam = 4; fam <= 6; fam += 2) {
		table("inbound", fam, 443, inbound_close, sizeof(inbound_close) / sizeof(inbound_close[0]));
		table("outbound", fam, 8443, outbound_close, sizeof(outbound_close) / sizeof(outbound_close[0]));
		table("reset", fam, 443, reset_reopen, sizeof(reset_reopen) / sizeof(reset_reopen[0]));
		table("invalid", fam, 443, invalid_flags, sizeof(invalid_flags) / sizeof(invalid_flags[0]));
		table("udp in", fam, 53, udp_inbound, sizeof(udp_inbound) / sizeof(udp_inbound[0]));
		table("udp out", fam, 53, udp_outbound, sizeof(udp_outbound) / sizeof(udp_outbound[0]));
		test_counters_and_events(fam);
		test_fast_path(fam);
		test_timeouts(fam);
		test_ack_flood(fam);
		test_lru_pressure(fam);
		test_icmp(fam);
		test_pickup(fam);
	}
	return tap_done();
}
