/* Ring-buffer events through the real XDP program: every field of each kind, the full-ring counter,
 * per-source sampling, and the books (seen == sum of stats, submitted + lost == attempted). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include "tap.h"
#include "pkt.h"
#include "dptest.h"

#define NS_PER_S 1000000000ULL

enum {
	FLOWS_TEST_MAX = 4096,
	SPORT_BASE = 40000,
	SMALL_RING = 4096,          /* one page: about 25 events of 152 bytes + 8 bytes of ring header */
	RING_FILL_BOUND = 400,      /* SYNs sent at most while waiting for the ring to overflow */
	EV_BURST = 2,
	EV_RATE = 1,                /* per second: no refill worth a token within the test's milliseconds */
};

#define CLIENT4 "192.0.2.10"
#define SERVER4 "198.51.100.1"

static uint16_t sport_next = SPORT_BASE;

static bool open_with(struct dpt *t, uint32_t ring)
{
	struct dpt_opts o = { .flows_max = FLOWS_TEST_MAX, .flows_new_max = FLOWS_TEST_MAX, .ringbuf_bytes = ring };
	return dpt_open_or_report(t, &o);
}

static int tcp_from(const char *src, uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq, uint32_t ack,
		    uint8_t *b)
{
	struct pkt_opts o = { .family = 4, .src = src, .dst = SERVER4, .proto = IPPROTO_TCP, .sport = sport,
			      .dport = dport, .tcp_flags = flags, .seq = seq, .ack = ack };

	return pkt_build(&o, b, PKT_MAX);
}

static bool addr_is(const uint8_t *a, const char *s)
{
	uint8_t want[16] = { 0 };

	inet_pton(strchr(s, ':') ? AF_INET6 : AF_INET, s, want);
	return !memcmp(a, want, 16);
}

/* Fields every event shares; checked against the packet that caused it. */
static void check_common(const struct hyp_event *e, const char *what, const char *src, uint16_t sport,
			 uint16_t dport, int len, uint64_t t0, uint64_t t1)
{
	TAP_CHECK(addr_is(e->saddr, src), "%s: saddr (v4 zero-padded to 16 bytes)", what);
	TAP_CHECK(addr_is(e->daddr, SERVER4), "%s: daddr", what);
	TAP_EQ(e->sport, htons(sport), "%s: sport network order", what);
	TAP_EQ(e->dport, htons(dport), "%s: dport network order", what);
	TAP_EQ(e->proto, IPPROTO_TCP, "%s: proto", what);
	TAP_EQ(e->family, HYP_AF_INET, "%s: family", what);
	TAP_EQ(e->dir, 0, "%s: dir ingress", what);
	TAP_EQ(e->ifindex, if_nametoindex("lo"), "%s: ifindex of the test-run device", what);
	TAP_EQ(e->pkt_len, len, "%s: pkt_len", what);
	TAP_CHECK(e->ts_ns >= t0 && e->ts_ns <= t1, "%s: ts_ns within the run", what);
	TAP_EQ(e->suppressed, 0, "%s: suppressed 0 without sampling", what);
	TAP_EQ(e->sig, HYP_EV_NO_SIG, "%s: sig none", what);
	/* ring memory is not zeroed by reserve: a non-match event must not carry stale payload bytes */
	{
		static const uint8_t zero[HYP_EV_PAYLOAD];

		TAP_CHECK(e->payload_len == 0 && !memcmp(e->payload, zero, sizeof(zero)),
			  "%s: no payload, payload bytes zeroed", what);
	}
}

/* Sends one frame and returns the single event of kind it produced (copied), or false. */
static bool one_event(struct dpt *t, const uint8_t *b, int len, int want_rc, unsigned want_stat, uint8_t kind,
		      const char *what, struct hyp_event *out, uint64_t *t0, uint64_t *t1)
{
	const struct hyp_event *e;
	int n;

	dpt_events(t);
	*t0 = dpt_mono_ns();
	dpt_expect(t, b, len, want_rc, want_stat, what);
	*t1 = dpt_mono_ns();
	dpt_events(t);
	e = dpt_event_find(t, kind, &n);
	TAP_EQ(n, 1, "%s: exactly one event of kind %u", what, kind);
	TAP_EQ(t->nev, 1, "%s: no other event", what);
	if (!e)
		return false;
	*out = *e;
	return true;
}

static void test_event_fields(void)
{
	struct hyp_event e;
	uint8_t b[PKT_MAX];
	struct pkt_layout l;
	uint64_t t0, t1;
	uint16_t sport;
	struct dpt t;
	int len;

	if (!open_with(&t, 0))
		return;

	sport = sport_next++;
	len = tcp_from(CLIENT4, sport, 80, TH_SYN, 100, 0, b);
	if (one_event(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, HYP_EV_FLOW_NEW, "flow_new", &e, &t0, &t1)) {
		check_common(&e, "flow_new", CLIENT4, sport, 80, len, t0, t1);
		TAP_EQ(e.verdict, HYP_V_PASS, "flow_new: verdict PASS");
		TAP_EQ(e.reason, HYP_R_PASS_NEW, "flow_new: reason PASS_NEW");
		TAP_EQ(e.state, HYP_CT_SYN_SENT, "flow_new: state SYN_SENT");
		TAP_EQ(e.payload_len, 0, "flow_new: a SYN has no payload to capture");
	}

	/* closed port */
	t.cfg.tcp_all_open = 0;
	dpt_config_push(&t);
	sport = sport_next++;
	len = tcp_from(CLIENT4, sport, 81, TH_SYN, 100, 0, b);
	if (one_event(&t, b, len, XDP_DROP, HYP_R_DROP_PORT, HYP_EV_POLICY, "policy", &e, &t0, &t1)) {
		check_common(&e, "policy", CLIENT4, sport, 81, len, t0, t1);
		TAP_EQ(e.verdict, HYP_V_DROP, "policy: verdict DROP");
		TAP_EQ(e.reason, HYP_R_DROP_PORT, "policy: reason DROP_PORT");
		TAP_EQ(e.state, HYP_CT_NONE, "policy: no flow");
		TAP_EQ(e.packets + e.bytes, 0, "policy: no flow totals");
	}
	t.cfg.tcp_all_open = 1;

	/* out-of-state: an ACK with no flow, pickup strict */
	t.cfg.pickup = HYP_PICKUP_STRICT;
	dpt_config_push(&t);
	sport = sport_next++;
	len = tcp_from(CLIENT4, sport, 80, TH_ACK, 100, 200, b);
	if (one_event(&t, b, len, XDP_DROP, HYP_R_DROP_INVALID, HYP_EV_INVALID, "invalid", &e, &t0, &t1)) {
		check_common(&e, "invalid", CLIENT4, sport, 80, len, t0, t1);
		TAP_EQ(e.verdict, HYP_V_DROP, "invalid: verdict DROP");
		TAP_EQ(e.reason, HYP_R_DROP_INVALID, "invalid: reason DROP_INVALID");
		TAP_EQ(e.state, HYP_CT_NONE, "invalid: no flow");
	}

	/* malformed L4: the event still names the packet's addresses */
	{
		struct pkt_opts o = { .family = 4, .src = CLIENT4, .dst = SERVER4, .proto = IPPROTO_TCP,
				      .sport = sport_next++, .dport = 80, .tcp_flags = TH_SYN };
		const struct hyp_event *p;
		int n;

		len = pkt_build_layout(&o, b, sizeof(b), &l);
		b[l.l4_off + 12] = 2 << 4;
		dpt_events(&t);
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_MALFORMED_L4, "malformed: doff 2");
		dpt_events(&t);
		p = dpt_event_find(&t, HYP_EV_INVALID, &n);
		TAP_EQ(n, 1, "malformed L4: one INVALID event");
		TAP_CHECK(p && p->reason == HYP_R_DROP_MALFORMED_L4 && p->verdict == HYP_V_DROP &&
			  addr_is(p->saddr, CLIENT4) && addr_is(p->daddr, SERVER4) && p->pkt_len == (uint32_t)len,
			  "malformed L4: reason, verdict, addresses, pkt_len");
	}

	/* ban */
	dpt_ban(&t, "203.0.113.0/24", 0, 1);
	sport = sport_next++;
	len = tcp_from("203.0.113.7", sport, 443, TH_SYN, 1, 0, b);
	if (one_event(&t, b, len, XDP_DROP, HYP_R_DROP_BANNED, HYP_EV_BLOCK, "block", &e, &t0, &t1)) {
		check_common(&e, "block", "203.0.113.7", sport, 443, len, t0, t1);
		TAP_EQ(e.verdict, HYP_V_DROP, "block: verdict DROP");
		TAP_EQ(e.reason, HYP_R_DROP_BANNED, "block: reason");
	}
	dpt_close(&t);
}

/* A flow's end carries its totals: RST after a handshake and one data segment. */
static void test_flow_end_totals(void)
{
	static const char data[] = "hello";
	uint64_t bytes = 0, t0, t1;
	uint16_t sport = sport_next++;
	struct hyp_event e;
	uint8_t b[PKT_MAX];
	struct dpt t;
	int len;

	if (!open_with(&t, 0))
		return;
	len = tcp_from(CLIENT4, sport, 80, TH_SYN, 100, 0, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "flow_end setup: SYN");
	bytes += len;
	{
		struct pkt_opts o = { .family = 4, .src = SERVER4, .dst = CLIENT4, .proto = IPPROTO_TCP, .sport = 80,
				      .dport = sport, .tcp_flags = TH_SYN | TH_ACK, .seq = 900, .ack = 101 };

		len = pkt_build(&o, b, sizeof(b));
		TAP_EQ(dpt_tc(&t, b, len), 0, "flow_end setup: SYN-ACK via tc");
		bytes += len;
	}
	len = tcp_from(CLIENT4, sport, 80, TH_ACK, 101, 901, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_FLOW, "flow_end setup: ACK");
	bytes += len;
	{
		struct pkt_opts o = { .family = 4, .src = CLIENT4, .dst = SERVER4, .proto = IPPROTO_TCP,
				      .sport = sport, .dport = 80, .tcp_flags = TH_ACK | TH_PSH, .seq = 101,
				      .ack = 901, .payload = data, .payload_len = sizeof(data) - 1 };

		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_FLOW, "flow_end setup: data");
		bytes += len;
	}
	len = tcp_from(CLIENT4, sport, 80, TH_RST, 106, 0, b);
	bytes += len;
	if (one_event(&t, b, len, XDP_PASS, HYP_R_PASS_FLOW, HYP_EV_FLOW_END, "flow_end", &e, &t0, &t1)) {
		check_common(&e, "flow_end", CLIENT4, sport, 80, len, t0, t1);
		TAP_EQ(e.state, HYP_CT_CLOSED, "flow_end: state CLOSED after RST");
		TAP_EQ(e.verdict, HYP_V_PASS, "flow_end: verdict PASS");
		TAP_EQ(e.packets, 5, "flow_end: packets both ways (4 in, 1 out)");
		TAP_EQ(e.bytes, bytes, "flow_end: bytes both ways");
	}
	dpt_close(&t);
}

/* A full ring never blocks and never changes a verdict: the event is lost and counted. */
static void test_full_ring_counts_lost(void)
{
	uint64_t submitted, lost;
	uint8_t b[PKT_MAX];
	int i, len, attempts = 0, bad_verdicts = 0, drained;
	struct dpt t;

	if (!open_with(&t, SMALL_RING))
		return;
	for (i = 0; i < RING_FILL_BOUND && dpt_counter(&t, HYP_C_EV_LOST) == 0; i++) {
		len = tcp_from(CLIENT4, sport_next++, 80, TH_SYN, 1, 0, b);
		if (dpt_xdp(&t, b, len) != XDP_PASS)
			bad_verdicts++;
		attempts++;     /* each new flow attempts exactly one FLOW_NEW event */
	}
	/* a few more while full: every one must be lost */
	for (i = 0; i < 3; i++) {
		len = tcp_from(CLIENT4, sport_next++, 80, TH_SYN, 1, 0, b);
		if (dpt_xdp(&t, b, len) != XDP_PASS)
			bad_verdicts++;
		attempts++;
	}
	submitted = dpt_counter(&t, HYP_C_EV_SUBMITTED);
	lost = dpt_counter(&t, HYP_C_EV_LOST);
	TAP_CHECK(lost >= 4, "full ring: EV_LOST counts events that did not fit (%llu)", (unsigned long long)lost);
	TAP_CHECK(submitted > 0 && submitted * (sizeof(struct hyp_event) + 8) <= SMALL_RING,
		  "full ring: submitted (%llu) fits in %d bytes", (unsigned long long)submitted, SMALL_RING);
	TAP_EQ(submitted + lost, attempts, "full ring: submitted + lost == attempted");
	TAP_EQ(bad_verdicts, 0, "full ring: every SYN still passed");
	drained = dpt_events(&t);
	TAP_EQ(drained, submitted, "full ring: what was submitted is what user space reads");
	len = tcp_from(CLIENT4, sport_next++, 80, TH_SYN, 1, 0, b);
	dpt_xdp(&t, b, len);
	TAP_EQ(dpt_counter(&t, HYP_C_EV_SUBMITTED), submitted + 1, "drained ring accepts events again");
	dpt_close(&t);
}

/* Per (source, kind) token bucket: burst events pass, the rest are counted; the next delivered one
 * says how many it stands for. */
static void test_sampling_per_source_and_kind(void)
{
	const struct hyp_event *e;
	uint8_t b[PKT_MAX];
	int i, len, n;
	struct dpt t;

	if (!open_with(&t, 0))
		return;
	t.cfg.ev_rate = EV_RATE;
	t.cfg.ev_burst = EV_BURST;
	t.cfg.tcp_all_open = 0;
	t.cfg.tcp_ports[22 / 64] |= 1ULL << (22 % 64);
	dpt_config_push(&t);
	for (i = 0; i < EV_BURST + 3; i++) {
		len = tcp_from("192.0.2.66", sport_next++, 80, TH_SYN, 1, 0, b);
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_PORT, "sampling: refused SYN still dropped");
	}
	dpt_events(&t);
	dpt_event_find(&t, HYP_EV_POLICY, &n);
	TAP_EQ(n, EV_BURST, "sampling: burst of POLICY events delivered");
	TAP_EQ(dpt_counter(&t, HYP_C_EV_SAMPLED), 3, "sampling: the rest counted in EV_SAMPLED");
	TAP_EQ(dpt_counter(&t, HYP_C_EV_SUBMITTED), EV_BURST, "sampling: suppressed events are not submitted");

	len = tcp_from("192.0.2.66", sport_next++, 22, TH_SYN, 1, 0, b);
	dpt_xdp(&t, b, len);
	len = tcp_from("192.0.2.67", sport_next++, 80, TH_SYN, 1, 0, b);
	dpt_xdp(&t, b, len);
	dpt_events(&t);
	TAP_CHECK(dpt_event_find(&t, HYP_EV_FLOW_NEW, NULL) != NULL, "sampling: another kind from that source has its own bucket");
	e = dpt_event_find(&t, HYP_EV_POLICY, &n);
	TAP_CHECK(n == 1 && addr_is(e->saddr, "192.0.2.67") && e->suppressed == 0,
		  "sampling: another source has its own bucket");

	/* 10 s later the bucket has refilled; the first delivered event reports the 3 it stood in for */
	t.cfg.clock_offset_ns = 10 * NS_PER_S;
	dpt_config_push(&t);
	len = tcp_from("192.0.2.66", sport_next++, 80, TH_SYN, 1, 0, b);
	dpt_xdp(&t, b, len);
	len = tcp_from("192.0.2.66", sport_next++, 80, TH_SYN, 1, 0, b);
	dpt_xdp(&t, b, len);
	dpt_events(&t);
	e = dpt_event_find(&t, HYP_EV_POLICY, &n);
	TAP_EQ(n, 2, "sampling: bucket refilled on the datapath clock");
	TAP_CHECK(e && e->suppressed == 3, "sampling: first event after suppression carries suppressed = 3 (got %u)",
		  e ? e->suppressed : 0);
	TAP_CHECK(n == 2 && t.ev[1].suppressed == 0, "sampling: suppressed resets once reported");
	TAP_EQ(dpt_counter(&t, HYP_C_EV_SUBMITTED) + dpt_counter(&t, HYP_C_EV_LOST) + dpt_counter(&t, HYP_C_EV_SAMPLED),
	       EV_BURST + 3 + 2 + 2, "sampling: submitted + lost + sampled == events the workload asked for");
	dpt_close(&t);
}

/* Mixed workload; every packet ends in exactly one stats entry and every attempted event is accounted. */
static void test_books_balance(void)
{
	uint8_t b[PKT_MAX];
	struct pkt_layout l;
	uint64_t xdp_runs = 0, tc_runs = 0, ev_attempted = 0;
	int i, len, drained;
	struct dpt t;

	if (!open_with(&t, 0))
		return;
	t.cfg.tcp_all_open = 0;
	t.cfg.tcp_ports[22 / 64] |= 1ULL << (22 % 64);
	t.cfg.pickup = HYP_PICKUP_STRICT;
	dpt_config_push(&t);
	dpt_ban(&t, "203.0.113.0/24", 0, 1);
	for (i = 0; i < 10; i++) {
		uint16_t sport = sport_next++;

		len = tcp_from(CLIENT4, sport, 22, TH_SYN, 1, 0, b);            /* flow_new */
		dpt_xdp(&t, b, len);
		xdp_runs++;
		ev_attempted++;
		len = tcp_from(CLIENT4, sport, 22, TH_RST, 2, 0, b);            /* flow_end */
		dpt_xdp(&t, b, len);
		xdp_runs++;
		ev_attempted++;
		len = tcp_from(CLIENT4, sport_next++, 80, TH_SYN, 1, 0, b);     /* policy */
		dpt_xdp(&t, b, len);
		xdp_runs++;
		ev_attempted++;
		len = tcp_from("203.0.113.1", sport_next++, 22, TH_SYN, 1, 0, b); /* block */
		dpt_xdp(&t, b, len);
		xdp_runs++;
		ev_attempted++;
		len = tcp_from(CLIENT4, sport_next++, 22, TH_ACK, 1, 1, b);     /* invalid */
		dpt_xdp(&t, b, len);
		xdp_runs++;
		ev_attempted++;
		len = tcp_from(SERVER4, 22, sport_next++, TH_SYN, 1, 0, b);     /* flow_new, egress */
		dpt_tc(&t, b, len);
		tc_runs++;
		ev_attempted++;
	}
	TAP_EQ(dpt_counter(&t, HYP_C_EV_SUBMITTED) + dpt_counter(&t, HYP_C_EV_LOST), ev_attempted,
	       "books: submitted + lost == attempted (%llu)", (unsigned long long)ev_attempted);
	drained = dpt_events(&t);
	TAP_EQ(drained, dpt_counter(&t, HYP_C_EV_SUBMITTED), "books: user space reads every submitted event");
	{
		static const uint8_t kinds[] = { HYP_EV_FLOW_END, HYP_EV_POLICY, HYP_EV_BLOCK, HYP_EV_INVALID };
		int n, k, egress = 0;

		for (k = 0; k < (int)sizeof(kinds); k++) {
			dpt_event_find(&t, kinds[k], &n);
			TAP_EQ(n, 10, "books: ten events of kind %u", kinds[k]);
		}
		dpt_event_find(&t, HYP_EV_FLOW_NEW, &n);
		for (k = 0; k < t.nev; k++)
			egress += t.ev[k].kind == HYP_EV_FLOW_NEW && t.ev[k].dir == 1;
		TAP_CHECK(n == 20 && egress == 10, "books: flow_new from ten inbound and ten outbound SYNs (dir 1: %d)",
			  egress);
	}

	/* packets that end without an event: non-IP, fragments, bad headers */
	for (i = 0; i < 5; i++) {
		struct pkt_opts o = { .family = 4, .proto = IPPROTO_UDP, .sport = 1, .dport = 2, .frag_offset = 9 };

		len = pkt_build_l2(0x0806, 0, pkt_arp_request, sizeof(pkt_arp_request), b, sizeof(b));
		dpt_xdp(&t, b, len);
		len = pkt_build_layout(&o, b, sizeof(b), &l);
		dpt_xdp(&t, b, len);
		b[l.l3_off] = 0x43;
		dpt_xdp(&t, b, len);
		o.nvlan = 3;
		len = pkt_build(&o, b, sizeof(b));
		dpt_xdp(&t, b, len);
		xdp_runs += 4;
	}
	TAP_EQ(dpt_counter(&t, HYP_C_SEEN), xdp_runs, "books: SEEN counts every XDP run");
	TAP_EQ(dpt_counter(&t, HYP_C_EGRESS_SEEN), tc_runs, "books: EGRESS_SEEN counts every tc run");
	TAP_EQ(dpt_stats_total(&t) - dpt_stat(&t, HYP_R_PASS_EGRESS), dpt_counter(&t, HYP_C_SEEN),
	       "books: SEEN == sum of ingress stats entries");
	TAP_CHECK(dpt_stat(&t, HYP_R_PASS_EGRESS) == 0 || dpt_stat(&t, HYP_R_PASS_EGRESS) == tc_runs,
		  "books: PASS_EGRESS, if counted, counts every tc run");
	dpt_close(&t);
}

int main(void)
{
	test_event_fields();
	test_flow_end_totals();
	test_full_ring_counts_lost();
	test_sampling_per_source_and_kind();
	test_books_balance();
	return tap_done();
}
