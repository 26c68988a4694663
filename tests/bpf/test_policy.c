/* Port policy, monitor mode, fragment policy and the double-buffered config flip through the real
 * XDP program. */
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
	SPORT_BASE = 30000,
	FRAG_OFF_UNITS = 100,
};

#define CLIENT4 "192.0.2.10"
#define SERVER4 "198.51.100.1"

static uint16_t sport_next = SPORT_BASE;

static int build_l4(uint8_t proto, uint16_t sport, uint16_t dport, uint8_t flags, uint8_t *b)
{
	struct pkt_opts o = { .family = 4, .src = CLIENT4, .dst = SERVER4, .proto = proto, .sport = sport,
			      .dport = dport, .tcp_flags = flags, .seq = 100 };

	return pkt_build(&o, b, PKT_MAX);
}

static int syn_to(uint16_t dport, uint8_t *b, uint16_t *sport)
{
	*sport = sport_next++;
	return build_l4(IPPROTO_TCP, *sport, dport, TH_SYN, b);
}

static void port_open(__u64 *bitmap, uint16_t port)
{
	bitmap[port / 64] |= 1ULL << (port % 64);
}

static bool open_fresh(struct dpt *t)
{
	struct dpt_opts o = { .flows_max = FLOWS_TEST_MAX, .flows_new_max = FLOWS_TEST_MAX };

	return dpt_open_or_report(t, &o);
}

static void test_closed_tcp_port_drops_new_flow(void)
{
	/* the bitmap's word edges; port 22 in network order is 0x1600 = 5632: a byte-order slip would open 5632 */
	static const struct { uint16_t port; int rc; unsigned stat; const char *what; } bitmap[] = {
		{ 64, XDP_PASS, HYP_R_PASS_NEW, "bitmap: port 64 (word 1 bit 0) open" },
		{ 63, XDP_DROP, HYP_R_DROP_PORT, "bitmap: port 63 (word 0 bit 63) closed" },
		{ 65, XDP_DROP, HYP_R_DROP_PORT, "bitmap: port 65 closed" },
		{ 65535, XDP_PASS, HYP_R_PASS_NEW, "bitmap: port 65535 open" },
		{ 65534, XDP_DROP, HYP_R_DROP_PORT, "bitmap: port 65534 closed" },
		{ 5632, XDP_DROP, HYP_R_DROP_PORT, "bitmap indexed in host order (5632 closed)" },
	};
	uint8_t b[PKT_MAX];
	const struct hyp_event *e;
	struct hyp_flow f;
	uint16_t sport;
	bool est = true;
	struct dpt t;
	unsigned i;
	int len, n;

	if (!open_fresh(&t))
		return;
	t.cfg.tcp_all_open = 0;
	port_open(t.cfg.tcp_ports, 22);
	port_open(t.cfg.tcp_ports, 64);         /* first bit of the second word */
	port_open(t.cfg.tcp_ports, 65535);      /* last bit of the bitmap */
	dpt_config_push(&t);
	dpt_events(&t);

	len = syn_to(22, b, &sport);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "SYN to open tcp/22");
	TAP_EQ(dpt_flow(&t, 4, IPPROTO_TCP, CLIENT4, sport, SERVER4, 22, &f, &est), 0, "tcp/22: flow created");
	TAP_CHECK(!est && f.state == HYP_CT_SYN_SENT && (f.flags & HYP_FF_INBOUND),
		  "tcp/22: half-open inbound flow in flows_new (state %u flags %#x)", f.state, f.flags);
	len = syn_to(80, b, &sport);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_PORT, "SYN to closed tcp/80");
	TAP_EQ(dpt_flow(&t, 4, IPPROTO_TCP, CLIENT4, sport, SERVER4, 80, &f, NULL), -ENOENT,
	       "tcp/80: refused SYN leaves no flow");
	dpt_events(&t);
	e = dpt_event_find(&t, HYP_EV_POLICY, &n);
	TAP_EQ(n, 1, "one POLICY event for the refused SYN");
	if (e) {
		TAP_EQ(e->reason, HYP_R_DROP_PORT, "policy event: reason DROP_PORT");
		TAP_EQ(e->verdict, HYP_V_DROP, "policy event: verdict DROP");
		TAP_EQ(e->dport, htons(80), "policy event: dport");
		TAP_EQ(e->sport, htons(sport), "policy event: sport");
		TAP_EQ(e->proto, IPPROTO_TCP, "policy event: proto");
	}
	for (i = 0; i < sizeof(bitmap) / sizeof(bitmap[0]); i++) {
		len = syn_to(bitmap[i].port, b, &sport);
		dpt_expect(&t, b, len, bitmap[i].rc, bitmap[i].stat, bitmap[i].what);
	}
	dpt_close(&t);
}

static void test_udp_policy_separate_from_tcp(void)
{
	uint8_t b[PKT_MAX];
	struct dpt t;
	int len;

	if (!open_fresh(&t))
		return;
	t.cfg.udp_all_open = 0;
	t.cfg.tcp_all_open = 1;
	port_open(t.cfg.udp_ports, 53);
	port_open(t.cfg.tcp_ports, 5353);
	dpt_config_push(&t);
	len = build_l4(IPPROTO_UDP, sport_next++, 53, 0, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "UDP to open udp/53");
	len = build_l4(IPPROTO_UDP, sport_next++, 5353, 0, b);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_PORT, "UDP to udp/5353: tcp bitmap and tcp_all_open do not apply");
	dpt_events(&t);
	TAP_CHECK(dpt_event_find(&t, HYP_EV_POLICY, NULL) && dpt_event_find(&t, HYP_EV_POLICY, NULL)->proto == IPPROTO_UDP,
		  "UDP refusal reported as a POLICY event with proto UDP");
	t.cfg.udp_all_open = 1;
	t.cfg.tcp_all_open = 0;
	dpt_config_push(&t);
	len = build_l4(IPPROTO_UDP, sport_next++, 5353, 0, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "udp_all_open opens every UDP port");
	len = build_l4(IPPROTO_TCP, sport_next++, 53, TH_SYN, b);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_PORT, "udp_all_open leaves TCP closed");
	dpt_close(&t);
}

/* A policy change refuses new flows only: a connection established before it keeps working. */
static void test_established_flow_survives_policy_flip(void)
{
	static const char data[] = "GET / HTTP/1.0\r\n\r\n";
	uint8_t b[PKT_MAX];
	struct hyp_flow f;
	uint16_t sport = sport_next++, usport = sport_next++;
	bool est = false;
	struct dpt t;
	int len;

	if (!open_fresh(&t))
		return;
	len = build_l4(IPPROTO_TCP, sport, 80, TH_SYN, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "handshake: SYN in");
	{
		struct pkt_opts o = { .family = 4, .src = SERVER4, .dst = CLIENT4, .proto = IPPROTO_TCP, .sport = 80,
				      .dport = sport, .tcp_flags = TH_SYN | TH_ACK, .seq = 5000, .ack = 101 };

		len = pkt_build(&o, b, sizeof(b));
		TAP_EQ(dpt_tc(&t, b, len), 0, "handshake: SYN-ACK out through tc");
	}
	{
		struct pkt_opts o = { .family = 4, .src = CLIENT4, .dst = SERVER4, .proto = IPPROTO_TCP,
				      .sport = sport, .dport = 80, .tcp_flags = TH_ACK, .seq = 101, .ack = 5001 };

		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_FLOW, "handshake: ACK in");
	}
	TAP_EQ(dpt_flow(&t, 4, IPPROTO_TCP, CLIENT4, sport, SERVER4, 80, &f, &est), 0, "flow exists after handshake");
	TAP_CHECK(est && f.state == HYP_CT_ESTABLISHED, "flow ESTABLISHED and promoted to flows (state %u)", f.state);
	len = build_l4(IPPROTO_UDP, usport, 5000, 0, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, "UDP pseudo-flow opened");

	t.cfg.tcp_all_open = 0;
	t.cfg.udp_all_open = 0;
	dpt_config_push(&t);
	{
		struct pkt_opts o = { .family = 4, .src = CLIENT4, .dst = SERVER4, .proto = IPPROTO_TCP,
				      .sport = sport, .dport = 80, .tcp_flags = TH_ACK | TH_PSH, .seq = 101,
				      .ack = 5001, .payload = data, .payload_len = sizeof(data) - 1 };

		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_FLOW, "established flow passes after its port closed");
	}
	len = build_l4(IPPROTO_UDP, usport, 5000, 0, b);
	dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_FLOW, "existing UDP pseudo-flow passes after its port closed");
	len = build_l4(IPPROTO_TCP, sport_next++, 80, TH_SYN, b);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_PORT, "a new SYN to the same port is refused");
	dpt_close(&t);
}

static void test_monitor_mode_drops_nothing(void)
{
	uint8_t b[PKT_MAX];
	struct pkt_layout l;
	const struct hyp_event *e;
	uint16_t sport;
	struct dpt t;
	int len, n;

	if (!open_fresh(&t))
		return;
	t.cfg.mode = HYP_MODE_MONITOR;
	t.cfg.tcp_all_open = 0;
	t.cfg.frag_policy = HYP_FRAG_DROP;
	dpt_config_push(&t);
	dpt_ban(&t, "203.0.113.0/24", 0, 1);
	dpt_events(&t);

	len = syn_to(80, b, &sport);
	dpt_expect(&t, b, len, XDP_PASS, HYP_STATS_MONITOR + HYP_R_DROP_PORT, "monitor: closed port passes");
	dpt_events(&t);
	e = dpt_event_find(&t, HYP_EV_POLICY, &n);
	TAP_CHECK(n == 1 && e->verdict == HYP_V_MONITOR && e->reason == HYP_R_DROP_PORT,
		  "monitor: POLICY event with verdict MONITOR, reason DROP_PORT");
	{
		struct pkt_opts o = { .family = 4, .proto = IPPROTO_TCP, .sport = sport_next++, .dport = 22,
				      .tcp_flags = TH_SYN };

		len = pkt_build_layout(&o, b, sizeof(b), &l);
		b[l.l4_off + 12] = 3 << 4;
		dpt_expect(&t, b, len, XDP_PASS, HYP_STATS_MONITOR + HYP_R_DROP_MALFORMED_L4,
			   "monitor: malformed TCP passes");
		o.frag_offset = FRAG_OFF_UNITS;
		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(&t, b, len, XDP_PASS, HYP_STATS_MONITOR + HYP_R_DROP_FRAG, "monitor: fragment policy drop passes");
		o.src = "203.0.113.5";
		o.frag_offset = 0;
		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(&t, b, len, XDP_PASS, HYP_STATS_MONITOR + HYP_R_DROP_BANNED, "monitor: banned source passes");
	}
	{
		/* drops decided before L4, even before the config is otherwise needed, obey monitor mode too */
		struct pkt_opts o = { .family = 4, .proto = IPPROTO_UDP, .sport = 1, .dport = 2, .nvlan = 3 };

		len = pkt_build_layout(&o, b, sizeof(b), &l);
		dpt_expect(&t, b, len, XDP_PASS, HYP_STATS_MONITOR + HYP_R_DROP_VLAN_DEPTH, "monitor: three VLAN tags pass");
		o.nvlan = 0;
		len = pkt_build_layout(&o, b, sizeof(b), &l);
		b[l.l3_off] = 0x44;
		dpt_expect(&t, b, len, XDP_PASS, HYP_STATS_MONITOR + HYP_R_DROP_MALFORMED_L3, "monitor: IHL 4 passes");
		dpt_expect(&t, b, l.l3_off + 10, XDP_PASS, HYP_STATS_MONITOR + HYP_R_DROP_MALFORMED_L3,
			   "monitor: truncated IP header passes");
	}
	TAP_EQ(dpt_stat(&t, HYP_R_DROP_PORT) + dpt_stat(&t, HYP_R_DROP_MALFORMED_L4) + dpt_stat(&t, HYP_R_DROP_FRAG) +
	       dpt_stat(&t, HYP_R_DROP_BANNED), 0, "monitor: no real drop counted");
	t.cfg.mode = HYP_MODE_ENFORCE;
	dpt_config_push(&t);
	len = syn_to(80, b, &sport);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_PORT, "back to enforce: closed port drops again");
	dpt_close(&t);
}

static void test_fragment_policy_pass_and_drop(void)
{
	uint8_t b[PKT_MAX];
	struct dpt t;
	int len, fam;

	if (!open_fresh(&t))
		return;
	for (fam = 4; fam <= 6; fam += 2) {
		struct pkt_opts o = { .family = fam, .proto = IPPROTO_UDP, .sport = 1, .dport = 2,
				      .frag = fam == 6, .frag_offset = FRAG_OFF_UNITS };

		len = pkt_build(&o, b, sizeof(b));
		t.cfg.frag_policy = HYP_FRAG_PASS;
		dpt_config_push(&t);
		dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_FRAG, fam == 4 ? "v4 fragment, policy pass" :
			   "v6 fragment, policy pass");
		t.cfg.frag_policy = HYP_FRAG_DROP;
		dpt_config_push(&t);
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_FRAG, fam == 4 ? "v4 fragment, policy drop" :
			   "v6 fragment, policy drop");
	}
	dpt_close(&t);
}

/* The datapath must read policy[gen]: rewriting the inactive slot changes nothing until gen flips. */
static void test_generation_flip_switches_verdicts(void)
{
	struct hyp_config closed, open_all;
	uint8_t b[PKT_MAX];
	uint32_t zero = 0, g, other;
	uint16_t sport;
	int gen_fd, pol_fd, round, len;
	struct dpt t;

	if (!open_fresh(&t))
		return;
	gen_fd = bpf_map__fd(t.skel->maps.gen);
	pol_fd = bpf_map__fd(t.skel->maps.policy);
	open_all = t.cfg;
	closed = t.cfg;
	closed.tcp_all_open = 0;
	/* two rounds so both slots serve as active and inactive: a datapath stuck on one index fails */
	for (round = 0; round < 2; round++) {
		char what[96];

		bpf_map_lookup_elem(gen_fd, &zero, &g);
		other = !g;
		bpf_map_update_elem(pol_fd, &g, &open_all, BPF_ANY);
		bpf_map_update_elem(pol_fd, &other, &closed, BPF_ANY);
		len = syn_to(80, b, &sport);
		snprintf(what, sizeof(what), "round %d: gen %u (open) active, closed config staged in %u", round, g, other);
		dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, what);
		bpf_map_update_elem(gen_fd, &zero, &other, BPF_ANY);
		len = syn_to(80, b, &sport);
		snprintf(what, sizeof(what), "round %d: flip to gen %u (closed)", round, other);
		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_PORT, what);
		bpf_map_update_elem(gen_fd, &zero, &g, BPF_ANY);
		len = syn_to(80, b, &sport);
		snprintf(what, sizeof(what), "round %d: flip back to gen %u (open)", round, g);
		dpt_expect(&t, b, len, XDP_PASS, HYP_R_PASS_NEW, what);
		bpf_map_update_elem(gen_fd, &zero, &other, BPF_ANY);   /* next round starts from the other slot */
	}
	dpt_close(&t);
}

int main(void)
{
	test_closed_tcp_port_drops_new_flow();
	test_udp_policy_separate_from_tcp();
	test_established_flow_survives_policy_flip();
	test_monitor_mode_drops_nothing();
	test_fragment_policy_pass_and_drop();
	test_generation_flip_switches_verdicts();
	return tap_done();
}
