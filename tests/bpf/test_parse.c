/* Parse paths through the real XDP program: every header truncation, malformed fields, VLAN depth,
 * IPv6 extension chains, IPv4 options, fragments vs port policy, non-IP and ICMPv6 ND. */
#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include "tap.h"
#include "pkt.h"
#include "dptest.h"

enum {
	FLOWS_TEST_MAX = 16384,     /* enough for every case of this file without LRU eviction */
	SPORT_BASE = 10000,
	CUT_DIAG_MAX = 6,           /* failing offsets printed per table */
	ETH_MIN = 14,               /* BPF_PROG_TEST_RUN refuses shorter frames */
	FRAG_OFF_UNITS = 100,       /* a non-first fragment: offset 800 bytes */
};

static uint16_t sport_next = SPORT_BASE;

/* Every case gets its own source port so an earlier case's flow never turns PASS_NEW into PASS_FLOW. */
static uint16_t fresh_sport(void)
{
	return sport_next++;
}

static struct pkt_opts tcp_syn(int family, uint16_t dport)
{
	struct pkt_opts o = { .family = family, .proto = IPPROTO_TCP, .sport = fresh_sport(), .dport = dport,
			      .tcp_flags = TH_SYN, .seq = 1000 };
	return o;
}

static struct pkt_opts udp_dgram(int family, uint16_t dport)
{
	struct pkt_opts o = { .family = family, .proto = IPPROTO_UDP, .sport = fresh_sport(), .dport = dport };
	return o;
}

static struct pkt_opts icmp_echo(int family)
{
	struct pkt_opts o = { .family = family, .proto = family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6,
			      .icmp_type = family == 4 ? 8 : 128, .icmp_id = fresh_sport(), .icmp_seq = 1 };
	return o;
}

/* The verdict the design gives a frame cut to n bytes, by the header the cut falls into. */
static int cut_reason(const struct pkt_opts *o, const struct pkt_layout *l, int n)
{
	if (n < l->l3_off)
		return HYP_R_DROP_MALFORMED_L2;
	if (o->family == 4)
		return n < l->l4_off ? HYP_R_DROP_MALFORMED_L3 : HYP_R_DROP_MALFORMED_L4;
	if (n < l->l3_off + 40)
		return HYP_R_DROP_MALFORMED_L3;
	return n < l->l4_off ? HYP_R_DROP_EXT_CHAIN : HYP_R_DROP_MALFORMED_L4;
}

/*
 * Cuts the frame at every byte offset from the Ethernet minimum to one short of the end. consistent:
 * the IP length fields describe the cut frame (a short packet); otherwise they still claim the full
 * length (a truncated capture). Either way each cut must be dropped for the header it falls into.
 */
static void check_truncations(struct dpt *t, struct pkt_opts o, const char *what, bool consistent)
{
	uint8_t full[PKT_MAX], b[PKT_MAX];
	struct pkt_layout l;
	int n, len, rc, idx, bad = 0, want, tc_bad = 0;
	char ctl[160];

	len = pkt_build_layout(&o, full, sizeof(full), &l);
	if (len < 0) {
		TAP_CHECK(0, "%s: build", what);
		return;
	}
	snprintf(ctl, sizeof(ctl), "%s: the uncut frame opens a flow (control)", what);
	dpt_expect(t, full, len, XDP_PASS, HYP_R_PASS_NEW, ctl);
	for (n = ETH_MIN; n < len; n++) {
		memcpy(b, full, len);
		if (consistent && n > l.l3_off)
			pkt_set_ip_len(b, &l, n);
		want = cut_reason(&o, &l, n);
		/* the kernel's skb test run refuses (EINVAL) an IP EtherType with less than a full IP
		 * header; anything it runs must come back TC_ACT_OK */
		rc = dpt_tc(t, b, n);
		if (rc != 0 && !(rc == -EINVAL && n < l.l3_off + (o.family == 4 ? 20 : 40)))
			tc_bad++;
		idx = dpt_xdp_reason(t, b, n, &rc);
		if (rc != XDP_DROP || idx != want) {
			if (bad++ < CUT_DIAG_MAX)
				printf("#   %s cut at %d: verdict %d stats %s, want DROP %s\n", what, n, rc,
				       dpt_stat_name(idx), dpt_stat_name(want));
		}
	}
	TAP_EQ(bad, 0, "%s: every %s cut in [%d, %d) dropped for the header it falls into", what,
	       consistent ? "consistent-length" : "raw", ETH_MIN, len);
	TAP_EQ(tc_bad, 0, "%s: tc egress returns TC_ACT_OK for every %s cut (it never drops)", what,
	       consistent ? "consistent-length" : "raw");
}

static void test_truncation_every_offset(struct dpt *t)
{
	static const struct { int family, nvlan, opts, next; uint8_t ext[4]; const char *name; } shapes[] = {
		{ 4, 0, 0, 0, { 0 }, "ipv4" },
		{ 4, 1, 0, 0, { 0 }, "vlan+ipv4" },
		{ 4, 2, 0, 0, { 0 }, "qinq+ipv4" },
		{ 4, 0, 8, 0, { 0 }, "ipv4+options" },
		{ 6, 0, 0, 0, { 0 }, "ipv6" },
		{ 6, 1, 0, 0, { 0 }, "vlan+ipv6" },
		{ 6, 0, 0, 3, { 0, 51, 60 }, "ipv6+hbh+ah+dstopts" },
	};
	char what[96];
	unsigned i;
	int v, p;

	TAP_SKIP("cuts inside the first %d bytes: BPF_PROG_TEST_RUN rejects frames shorter than Ethernet",
		 ETH_MIN);
	for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		for (p = 0; p < 3; p++) {
			for (v = 0; v < 2; v++) {
				struct pkt_opts o = p == 0 ? tcp_syn(shapes[i].family, 80) :
						    p == 1 ? udp_dgram(shapes[i].family, 53) :
							     icmp_echo(shapes[i].family);

				o.nvlan = shapes[i].nvlan;
				o.qinq = shapes[i].nvlan == 2;
				o.ip_opts_len = shapes[i].opts;
				o.next = shapes[i].next;
				memcpy(o.ext, shapes[i].ext, sizeof(shapes[i].ext));
				snprintf(what, sizeof(what), "%s/%s", shapes[i].name,
					 p == 0 ? "tcp" : p == 1 ? "udp" : "icmp");
				check_truncations(t, o, what, v);
			}
		}
	}
}

static void test_ipv4_header_fields(struct dpt *t)
{
	uint8_t b[PKT_MAX];
	struct pkt_layout l;
	struct pkt_opts o;
	char what[64];
	int len, ihl;

	for (ihl = 0; ihl < 5; ihl++) {
		o = tcp_syn(4, 80);
		len = pkt_build_layout(&o, b, sizeof(b), &l);
		b[l.l3_off] = 0x40 | ihl;
		pkt_fix_ipv4_csum(b, l.l3_off);
		snprintf(what, sizeof(what), "ipv4 IHL %d < 5", ihl);
		dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_MALFORMED_L3, what);
	}
	o = tcp_syn(4, 80);
	len = pkt_build_layout(&o, b, sizeof(b), &l);
	b[l.l3_off] = 0x4f;             /* 60-byte header, 40 bytes of IP in the frame */
	pkt_fix_ipv4_csum(b, l.l3_off);
	dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_MALFORMED_L3, "ipv4 IHL 15 past the end of the frame");

	o = tcp_syn(4, 80);
	len = pkt_build_layout(&o, b, sizeof(b), &l);
	b[l.l3_off + 2] = 0;
	b[l.l3_off + 3] = 19;           /* total length shorter than the header */
	pkt_fix_ipv4_csum(b, l.l3_off);
	dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_MALFORMED_L3, "ipv4 total length < header length");

	o = tcp_syn(4, 80);
	len = pkt_build_layout(&o, b, sizeof(b), &l);
	b[l.l3_off] = 0x65;             /* version 6 behind EtherType IPv4 */
	dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_MALFORMED_L3, "ipv4 ethertype with version 6");

	o = tcp_syn(6, 80);
	len = pkt_build_layout(&o, b, sizeof(b), &l);
	b[l.l3_off] = 0x45;
	dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_MALFORMED_L3, "ipv6 ethertype with version 4");
}

/* IPv4 options move L4: the flow must be keyed by the real ports, which only a correct IHL gives. */
static void test_ipv4_options(struct dpt *t)
{
	static const int opt_lens[] = { 4, 20, 40 };
	uint8_t b[PKT_MAX];
	struct hyp_flow f;
	char what[64];
	unsigned i;
	int len;

	for (i = 0; i < sizeof(opt_lens) / sizeof(opt_lens[0]); i++) {
		struct pkt_opts o = tcp_syn(4, 443);

		o.ip_opts_len = opt_lens[i];
		len = pkt_build(&o, b, sizeof(b));
		snprintf(what, sizeof(what), "ipv4 with %d option bytes", opt_lens[i]);
		dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NEW, what);
		TAP_EQ(dpt_flow(t, 4, IPPROTO_TCP, "192.0.2.1", o.sport, "198.51.100.1", 443, &f, NULL), 0,
		       "%s: flow keyed by the ports after the options", what);
	}
}

static void test_tcp_doff(struct dpt *t)
{
	static const uint8_t opts4[4] = { 1, 1, 1, 0 };     /* NOP NOP NOP EOL: 4 bytes of options */
	uint8_t b[PKT_MAX];
	struct pkt_layout l;
	char what[64];
	int len, doff;

	for (doff = 0; doff < 5; doff++) {
		struct pkt_opts o = tcp_syn(4, 80);

		len = pkt_build_layout(&o, b, sizeof(b), &l);
		b[l.l4_off + 12] = doff << 4;
		snprintf(what, sizeof(what), "tcp doff %d < 5", doff);
		dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_MALFORMED_L4, what);
	}
	{
		struct pkt_opts o = tcp_syn(4, 80);

		len = pkt_build_layout(&o, b, sizeof(b), &l);
		b[l.l4_off + 12] = 15 << 4;
		dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_MALFORMED_L4, "tcp doff 15 past the end of the frame");
	}
	{
		/* the frame carries 40 bytes past TCP, but the IP length ends the datagram after 4 of them */
		static const uint8_t pad[40];
		struct pkt_opts o = tcp_syn(4, 80);

		o.payload = pad;
		o.payload_len = sizeof(pad);
		len = pkt_build_layout(&o, b, sizeof(b), &l);
		b[l.l4_off + 12] = 15 << 4;
		pkt_set_ip_len(b, &l, l.l4_off + 24);
		dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_MALFORMED_L4,
			   "tcp doff past the IP length (bytes beyond it are Ethernet padding)");
	}
	{
		struct pkt_opts o = tcp_syn(6, 80);

		o.payload = opts4;
		o.payload_len = sizeof(opts4);
		len = pkt_build_layout(&o, b, sizeof(b), &l);
		b[l.l4_off + 12] = 6 << 4;      /* the 4 payload bytes become options */
		dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NEW, "tcp doff 6 with options in the frame (control)");
	}
}

static void test_vlan_depth(struct dpt *t)
{
	uint8_t b[PKT_MAX];
	char what[64];
	int n, fam, len;

	for (fam = 4; fam <= 6; fam += 2) {
		for (n = 0; n <= 4; n++) {
			struct pkt_opts o = tcp_syn(fam, 80);

			o.nvlan = n;
			len = pkt_build(&o, b, sizeof(b));
			snprintf(what, sizeof(what), "ipv%d behind %d 802.1Q tags", fam, n);
			if (n <= HYP_VLAN_MAX)
				dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NEW, what);
			else
				dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_VLAN_DEPTH, what);
		}
	}
	{
		struct pkt_opts o = tcp_syn(4, 80);

		o.nvlan = 2;
		o.qinq = true;
		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NEW, "ipv4 behind 802.1ad + 802.1Q (QinQ)");
		o = tcp_syn(4, 80);
		o.nvlan = 3;
		o.qinq = true;
		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_VLAN_DEPTH, "three tags with 802.1ad outer");
	}
	len = pkt_build_l2(0x0806, 1, pkt_arp_request, sizeof(pkt_arp_request), b, sizeof(b));
	dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NONIP, "ARP behind one tag passes as non-IP");
	len = pkt_build_l2(0x0806, 3, pkt_arp_request, sizeof(pkt_arp_request), b, sizeof(b));
	dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_VLAN_DEPTH, "ARP behind three tags: tag depth is checked first");
}

static void test_ipv6_ext_chains(struct dpt *t)
{
	static const uint8_t types[] = { 0, 43, 60, 51 };
	uint8_t b[PKT_MAX];
	struct pkt_layout l;
	struct hyp_flow f;
	char what[80];
	unsigned i;
	int len, k;

	for (i = 0; i < sizeof(types); i++) {
		struct pkt_opts o = tcp_syn(6, 8080);

		o.ext[0] = types[i];
		o.next = 1;
		len = pkt_build(&o, b, sizeof(b));
		snprintf(what, sizeof(what), "ipv6 + ext %u + tcp", types[i]);
		dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NEW, what);
		/* a wrong length rule (AH!) lands inside the header and reads different ports */
		TAP_EQ(dpt_flow(t, 6, IPPROTO_TCP, "2001:db8::1", o.sport, "2001:db8::2", 8080, &f, NULL), 0,
		       "%s: flow keyed by the real ports", what);
	}
	for (k = HYP_IPV6_EXT_MAX - 1; k <= HYP_IPV6_EXT_MAX + 2; k++) {
		struct pkt_opts o = udp_dgram(6, 53);
		int j;

		for (j = 0; j < k; j++)
			o.ext[j] = types[j % sizeof(types)];
		o.next = k;
		len = pkt_build(&o, b, sizeof(b));
		snprintf(what, sizeof(what), "ipv6 chain of %d extension headers (bound %d)", k, HYP_IPV6_EXT_MAX);
		if (k <= HYP_IPV6_EXT_MAX)
			dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NEW, what);
		else
			dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_EXT_CHAIN, what);
	}
	{
		/* the fragment header counts toward the bound like any other extension header */
		struct pkt_opts o = udp_dgram(6, 53);
		int j;

		for (j = 0; j < HYP_IPV6_EXT_MAX; j++)
			o.ext[j] = 60;
		o.next = HYP_IPV6_EXT_MAX;
		o.frag = true;
		o.more_frags = true;
		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_EXT_CHAIN, "ipv6: 6 dest-opts + fragment header exceed the bound");
	}
	{
		struct pkt_opts o = tcp_syn(6, 80);

		o.ext[0] = 0;
		o.next = 1;
		len = pkt_build_layout(&o, b, sizeof(b), &l);
		b[l.l3_off + 40 + 1] = 10;      /* hop-by-hop claims 88 bytes */
		dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_EXT_CHAIN, "ipv6 hop-by-hop length past the frame");
		o = tcp_syn(6, 80);
		o.ext[0] = 51;
		o.next = 1;
		len = pkt_build_layout(&o, b, sizeof(b), &l);
		b[l.l3_off + 40 + 1] = 20;      /* AH claims (20+2)*4 = 88 bytes */
		dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_EXT_CHAIN, "ipv6 AH length past the frame");
	}
	{
		struct pkt_opts o = { .family = 6, .proto = 50 };   /* ESP: opaque, not an extension we walk */

		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_OTHER, "ipv6 ESP passes as an untracked protocol");
		o.family = 4;
		o.proto = 47;
		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_OTHER, "ipv4 GRE passes as an untracked protocol");
	}
}

/* Only port 22 open: a non-first fragment whose bytes look like a TCP header to port 80 must be judged
 * by the fragment policy. A port check on those bytes would say DROP_PORT (or PASS_NEW for 22). */
static void test_fragments_skip_port_policy(struct dpt *t)
{
	uint8_t b[PKT_MAX];
	struct pkt_layout l;
	struct hyp_flow f;
	char what[96];
	int fam, len, pol;

	t->cfg.tcp_all_open = 0;
	t->cfg.udp_all_open = 0;
	t->cfg.tcp_ports[22 / 64] |= 1ULL << (22 % 64);
	for (pol = HYP_FRAG_PASS; pol <= HYP_FRAG_DROP; pol++) {
		int want_rc = pol == HYP_FRAG_PASS ? XDP_PASS : XDP_DROP;
		unsigned want = pol == HYP_FRAG_PASS ? HYP_R_PASS_FRAG : HYP_R_DROP_FRAG;

		t->cfg.frag_policy = pol;
		TAP_EQ(dpt_config_push(t), 0, "push: only tcp/22 open, frag policy %s", pol ? "drop" : "pass");
		for (fam = 4; fam <= 6; fam += 2) {
			struct pkt_opts o = tcp_syn(fam, 80);
			const char *src = fam == 4 ? "192.0.2.1" : "2001:db8::1";
			const char *dst = fam == 4 ? "198.51.100.1" : "2001:db8::2";

			o.frag = fam == 6;
			o.frag_offset = FRAG_OFF_UNITS;
			o.more_frags = true;
			len = pkt_build(&o, b, sizeof(b));
			snprintf(what, sizeof(what), "ipv%d non-first fragment, bytes look like tcp/80 (frag %s)",
				 fam, pol ? "drop" : "pass");
			dpt_expect(t, b, len, want_rc, want, what);
			TAP_EQ(dpt_flow(t, fam, IPPROTO_TCP, src, o.sport, dst, 80, &f, NULL), -ENOENT,
			       "%s: no flow from fragment bytes", what);

			o = tcp_syn(fam, 22);
			o.frag = fam == 6;
			o.frag_offset = FRAG_OFF_UNITS;
			len = pkt_build(&o, b, sizeof(b));
			snprintf(what, sizeof(what), "ipv%d last fragment, bytes look like tcp/22 (frag %s)", fam,
				 pol ? "drop" : "pass");
			dpt_expect(t, b, len, want_rc, want, what);

			/* 4 bytes past the IP header: too short for TCP, but not an L4 header at all */
			o = tcp_syn(fam, 80);
			o.frag = fam == 6;
			o.frag_offset = FRAG_OFF_UNITS;
			len = pkt_build_layout(&o, b, sizeof(b), &l);
			pkt_set_ip_len(b, &l, l.l4_off + 4);
			snprintf(what, sizeof(what), "ipv%d non-first fragment of 4 bytes is not malformed L4 (frag %s)",
				 fam, pol ? "drop" : "pass");
			dpt_expect(t, b, l.l4_off + 4, want_rc, want, what);

			/* first fragments carry the real header: the port policy applies */
			o = tcp_syn(fam, 80);
			o.frag = fam == 6;
			o.more_frags = true;
			len = pkt_build(&o, b, sizeof(b));
			snprintf(what, sizeof(what), "ipv%d first fragment to closed tcp/80 (frag %s)", fam,
				 pol ? "drop" : "pass");
			dpt_expect(t, b, len, XDP_DROP, HYP_R_DROP_PORT, what);
			o = tcp_syn(fam, 22);
			o.frag = fam == 6;
			o.more_frags = true;
			len = pkt_build(&o, b, sizeof(b));
			snprintf(what, sizeof(what), "ipv%d first fragment to open tcp/22 (frag %s)", fam,
				 pol ? "drop" : "pass");
			dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NEW, what);

			/* tiny first fragment (RFC 1858): the TCP header split across fragments is malformed,
			 * not something the fragment policy may wave through */
			o = tcp_syn(fam, 22);
			o.frag = fam == 6;
			o.more_frags = true;
			len = pkt_build_layout(&o, b, sizeof(b), &l);
			pkt_set_ip_len(b, &l, l.l4_off + 8);
			snprintf(what, sizeof(what), "ipv%d first fragment with 8 bytes of TCP header (frag %s)", fam,
				 pol ? "drop" : "pass");
			dpt_expect(t, b, l.l4_off + 8, XDP_DROP, HYP_R_DROP_MALFORMED_L4, what);
		}
		{
			/* a fragment header behind another extension header is still found */
			struct pkt_opts o = udp_dgram(6, 80);

			o.ext[0] = 0;
			o.next = 1;
			o.frag = true;
			o.frag_offset = FRAG_OFF_UNITS;
			len = pkt_build(&o, b, sizeof(b));
			snprintf(what, sizeof(what), "ipv6 hop-by-hop + non-first fragment (frag %s)",
				 pol ? "drop" : "pass");
			dpt_expect(t, b, len, want_rc, want, what);
		}
	}
	dpt_config_defaults(&t->cfg);
	dpt_config_push(t);
}

static void test_nonip_and_icmp(struct dpt *t)
{
	static const uint8_t lldp[16] = { 0x02, 0x07, 0x04 };
	static const uint8_t nd_types[] = { 133, 134, 135, 136 };
	uint8_t b[PKT_MAX];
	char what[64];
	unsigned i;
	int len;

	len = pkt_build_l2(0x0806, 0, pkt_arp_request, sizeof(pkt_arp_request), b, sizeof(b));
	dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NONIP, "ARP request passes as non-IP");
	len = pkt_build_l2(0x88cc, 0, lldp, sizeof(lldp), b, sizeof(b));
	dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NONIP, "LLDP passes as non-IP");
	len = pkt_build_l2(0x0806, 0, pkt_arp_request, 0, b, sizeof(b));
	dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NONIP, "bare Ethernet header with ARP type passes as non-IP");

	/* neighbour discovery must survive a policy that opens nothing */
	t->cfg.tcp_all_open = 0;
	t->cfg.udp_all_open = 0;
	dpt_config_push(t);
	for (i = 0; i < sizeof(nd_types); i++) {
		struct pkt_opts o = { .family = 6, .proto = IPPROTO_ICMPV6, .icmp_type = nd_types[i],
				      .dst = "ff02::1:ff00:2", .ttl = 255 };

		len = pkt_build(&o, b, sizeof(b));
		snprintf(what, sizeof(what), "ICMPv6 ND type %u passes", nd_types[i]);
		dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_ICMP, what);
	}
	{
		struct pkt_opts o = { .family = 4, .proto = IPPROTO_ICMP, .icmp_type = 3, .icmp_code = 3 };

		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_ICMP, "ICMP destination unreachable passes as ICMP");
		o.family = 6;
		o.proto = IPPROTO_ICMPV6;
		o.icmp_type = 1;
		o.icmp_code = 4;
		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_ICMP, "ICMPv6 destination unreachable passes as ICMP");
		o = icmp_echo(6);
		len = pkt_build(&o, b, sizeof(b));
		dpt_expect(t, b, len, XDP_PASS, HYP_R_PASS_NEW, "ICMPv6 echo request opens a pseudo-flow");
	}
	dpt_config_defaults(&t->cfg);
	dpt_config_push(t);
}

int main(void)
{
	struct dpt t;
	struct dpt_opts o = { .flows_max = FLOWS_TEST_MAX, .flows_new_max = FLOWS_TEST_MAX };

	if (!dpt_open_or_report(&t, &o))
		return tap_done();
	test_truncation_every_offset(&t);
	test_ipv4_header_fields(&t);
	test_ipv4_options(&t);
	test_tcp_doff(&t);
	test_vlan_depth(&t);
	test_ipv6_ext_chains(&t);
	test_fragments_skip_port_policy(&t);
	test_nonip_and_icmp(&t);
	TAP_EQ(dpt_counter(&t, HYP_C_SEEN), dpt_stats_total(&t), "books: every packet seen ended in one stats entry");
	dpt_close(&t);
	return tap_done();
}
