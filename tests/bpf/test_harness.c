/* Self-test of the test tools: the packet builder's bytes and checksums, and the dptest map/run plumbing. */
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

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) << 16 | rd16(p + 2);
}

/* Independent re-implementation (RFC 1071): a correct checksum makes the sum over the data fold to 0. */
static uint16_t sum_fold(uint32_t s, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += rd16(p + i);
	if (n & 1)
		s += p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint32_t pseudo(const uint8_t *ip, int family, uint8_t proto, uint32_t len)
{
	uint32_t s = proto + (len >> 16) + (len & 0xffff);
	int i, alen = family == 6 ? 16 : 4;
	const uint8_t *a = ip + (family == 6 ? 8 : 12);

	for (i = 0; i < 2 * alen; i += 2)
		s += rd16(a + i);
	return s;
}

static void test_ipv4_tcp_known_vector(void)
{
	struct pkt_opts o = { .family = 4, .src = "192.0.2.1", .dst = "198.51.100.1", .proto = IPPROTO_TCP,
			      .sport = 40000, .dport = 80, .tcp_flags = TH_SYN, .seq = 1000 };
	struct pkt_layout l;
	uint8_t b[PKT_MAX];
	int n = pkt_build_layout(&o, b, sizeof(b), &l);

	TAP_EQ(n, 14 + 20 + 20, "ipv4 tcp syn: frame length");
	TAP_EQ(rd16(b + 12), 0x0800, "ipv4: ethertype");
	TAP_EQ(l.l3_off, 14, "ipv4: l3 offset");
	TAP_EQ(l.l4_off, 34, "ipv4: l4 offset");
	TAP_EQ(b[14], 0x45, "ipv4: version 4, IHL 5");
	TAP_EQ(rd16(b + 16), 40, "ipv4: total length");
	TAP_EQ(b[23], IPPROTO_TCP, "ipv4: protocol");
	/* expected values computed with an independent Python implementation */
	TAP_EQ(rd16(b + 24), 0x7c66, "ipv4: header checksum matches known vector");
	TAP_EQ(rd16(b + 34 + 16), 0x2334, "tcp: checksum matches known vector");
	TAP_EQ(rd16(b + 34), 40000, "tcp: sport");
	TAP_EQ(rd16(b + 36), 80, "tcp: dport");
	TAP_EQ(rd32(b + 38), 1000, "tcp: seq");
	TAP_EQ(b[46] >> 4, 5, "tcp: doff 5");
	TAP_EQ(b[47], TH_SYN, "tcp: flags");
}

static void test_ipv4_udp_payload_checksums(void)
{
	const char pay[] = "hello, odd";     /* odd length exercises the trailing-byte rule */
	struct pkt_opts o = { .family = 4, .proto = IPPROTO_UDP, .sport = 1234, .dport = 53,
			      .payload = pay, .payload_len = sizeof(pay) - 1 };
	struct pkt_layout l;
	uint8_t b[PKT_MAX];
	int n = pkt_build_layout(&o, b, sizeof(b), &l);
	uint32_t ulen = n - l.l4_off;

	TAP_EQ(ulen, 8 + sizeof(pay) - 1, "udp: length covers header and payload");
	TAP_EQ(rd16(b + l.l4_off + 4), ulen, "udp: length field");
	TAP_EQ(sum_fold(0, b + l.l3_off, 20), 0, "ipv4 udp: header checksum verifies");
	TAP_EQ(sum_fold(pseudo(b + l.l3_off, 4, IPPROTO_UDP, ulen), b + l.l4_off, ulen), 0,
	       "udp: checksum verifies with pseudo header");
	TAP_CHECK(!memcmp(b + l.payload_off, pay, sizeof(pay) - 1), "udp: payload copied");
}

static void test_icmp_checksums(void)
{
	struct pkt_opts o4 = { .family = 4, .proto = IPPROTO_ICMP, .icmp_type = 8, .icmp_id = 7, .icmp_seq = 1 };
	struct pkt_opts o6 = { .family = 6, .proto = IPPROTO_ICMPV6, .icmp_type = 128, .icmp_id = 7,
			       .icmp_seq = 1 };
	struct pkt_layout l;
	uint8_t b[PKT_MAX];

	pkt_build_layout(&o4, b, sizeof(b), &l);
	TAP_EQ(rd16(b + l.l4_off + 2), 0xf7f7, "icmp echo: checksum matches known vector");
	TAP_EQ(rd16(b + l.l4_off + 4), 7, "icmp echo: identifier");
	pkt_build_layout(&o6, b, sizeof(b), &l);
	TAP_EQ(rd16(b + 12), 0x86dd, "ipv6: ethertype");
	TAP_EQ(b[14 + 6], IPPROTO_ICMPV6, "ipv6: next header icmpv6");
	TAP_EQ(rd16(b + 14 + 4), 8, "ipv6: payload length");
	TAP_EQ(rd16(b + l.l4_off + 2), 0x2440, "icmpv6 echo: checksum (pseudo header) matches known vector");
}

static void test_ipv6_udp_known_vector(void)
{
	struct pkt_opts o = { .family = 6, .proto = IPPROTO_UDP, .sport = 5353, .dport = 53,
			      .payload = "abc", .payload_len = 3 };
	struct pkt_layout l;
	uint8_t b[PKT_MAX];

	pkt_build_layout(&o, b, sizeof(b), &l);
	TAP_EQ(rd16(b + l.l4_off + 6), 0xcae2, "udp6: checksum matches known vector");
}

/* Walks the chain with the RFC rules: AH counts 4-byte units + 2, the others 8-byte units + 1. */
static void test_ipv6_ext_chain_walks_to_l4(void)
{
	struct pkt_opts o = { .family = 6, .proto = IPPROTO_TCP, .sport = 1, .dport = 22, .tcp_flags = TH_SYN,
			      .ext = { 0, 43, 60, 51 }, .next = 4, .frag = true, .frag_offset = 0,
			      .more_frags = true };
	static const uint8_t want[] = { 0, 43, 60, 51, 44 };
	struct pkt_layout l;
	uint8_t b[PKT_MAX];
	int n = pkt_build_layout(&o, b, sizeof(b), &l);
	int off = l.l3_off + 40, i, ok = 1, len;
	uint8_t nh = b[l.l3_off + 6];
	uint32_t tlen;

	for (i = 0; i < 5; i++) {
		if (nh != want[i])
			ok = 0;
		if (nh == 44)
			TAP_EQ(rd16(b + off + 2), 1, "fragment header: offset 0, M set");
		/* nh is the type of the header at off: it decides the length rule */
		len = nh == 51 ? (b[off + 1] + 2) * 4 : (b[off + 1] + 1) * 8;
		nh = b[off];
		off += len;
	}
	TAP_CHECK(ok, "ipv6: extension chain in the requested order, fragment last");
	TAP_EQ(b[l.l3_off + 40 + 8 + 8 + 8 + 1], 4, "AH: length field uses (len+2)*4 = 24 bytes");
	TAP_EQ(nh, IPPROTO_TCP, "ipv6: chain ends in TCP");
	TAP_EQ(off, l.l4_off, "ipv6: walking the chain lands on the TCP header");
	TAP_EQ(rd16(b + l.l3_off + 4), n - l.l3_off - 40, "ipv6: payload length includes extension headers");
	tlen = n - l.l4_off;
	TAP_EQ(sum_fold(pseudo(b + l.l3_off, 6, IPPROTO_TCP, tlen), b + l.l4_off, tlen), 0,
	       "tcp over ipv6 ext chain: checksum verifies");
}

static void test_vlan_options_fragments(void)
{
	struct pkt_opts o = { .family = 4, .proto = IPPROTO_UDP, .sport = 1, .dport = 2, .nvlan = 2,
			      .qinq = true, .ip_opts_len = 8, .frag_offset = 100, .more_frags = true };
	struct pkt_layout l;
	uint8_t b[PKT_MAX];
	int n;

	pkt_build_layout(&o, b, sizeof(b), &l);
	TAP_EQ(rd16(b + 12), 0x88a8, "qinq: outer tag 802.1ad");
	TAP_EQ(rd16(b + 16), 0x8100, "qinq: inner tag 802.1Q");
	TAP_EQ(rd16(b + 20), 0x0800, "qinq: ethertype after two tags");
	TAP_EQ(l.l3_off, 22, "qinq: l3 after two tags");
	TAP_EQ(b[22] & 0xf, 7, "ipv4 options: IHL 7 for 8 option bytes");
	TAP_EQ(l.l4_off, 22 + 28, "ipv4 options: l4 after options");
	TAP_EQ(rd16(b + 22 + 6), 0x2000 | 100, "ipv4 fragment: MF and offset");
	TAP_EQ(sum_fold(0, b + 22, 28), 0, "ipv4 options: header checksum verifies");
	o.nvlan = 4;
	o.qinq = false;
	n = pkt_build_layout(&o, b, sizeof(b), &l);
	TAP_EQ(l.l3_off, 14 + 16, "four tags: l3 offset");
	TAP_EQ(rd16(b + 12) == 0x8100 && rd16(b + 24) == 0x8100 && rd16(b + 28) == 0x0800, 1,
	       "four 802.1Q tags then IPv4");
	TAP_CHECK(n > 0, "four tags: built");
	o.family = 5;
	TAP_EQ(pkt_build(&o, b, sizeof(b)), -1, "bad family rejected");
	o.family = 4;
	TAP_EQ(pkt_build(&o, b, 20), -1, "buffer too small rejected");
}

static uint32_t read_gen(struct dpt *t)
{
	uint32_t zero = 0, g = 99;

	bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.gen), &zero, &g);
	return g;
}

static void test_harness_plumbing(void)
{
	struct pkt_opts o = { .family = 4, .proto = IPPROTO_TCP, .sport = 40000, .dport = 80,
			      .tcp_flags = TH_SYN };
	struct hyp_config back;
	struct hyp_flow f = { .state = HYP_CT_SYN_SENT, .packets = { 3, 0 } }, got;
	struct hyp_flow_key k;
	struct hyp_ban ban;
	struct dpt t;
	uint8_t b[PKT_MAX];
	bool est = true;
	int n, err, rc, ncpu, i;
	uint32_t g, idx;
	uint64_t now;

	err = dpt_open(&t, 1024, 1024);
	if (err == -EPERM) {
		TAP_SKIP("dpt_open: no permission to load BPF (need root/CAP_BPF)");
		return;
	}
	TAP_EQ(err, 0, "dpt_open loads the skeleton unattached");
	if (err)
		return;
	TAP_EQ(bpf_map__max_entries(t.skel->maps.flows), 1024, "flows resized before load");
	TAP_EQ(bpf_map__max_entries(t.skel->maps.flows_new), 1024, "flows_new resized before load");

	g = read_gen(&t);
	TAP_EQ(g, 1, "first push activated generation 1");
	t.cfg.scan_depth = 77;
	TAP_EQ(dpt_config_push(&t), 0, "config push");
	TAP_EQ(read_gen(&t), 0, "second push flips to generation 0");
	idx = 0;
	bpf_map_lookup_elem(bpf_map__fd(t.skel->maps.policy), &idx, &back);
	TAP_EQ(back.scan_depth, 77, "policy[active] holds the pushed config");
	TAP_EQ(back.timeout_ns[HYP_CT_ESTABLISHED], 5ULL * 24 * 3600 * 1000000000ULL, "default established timeout");
	idx = 1;
	bpf_map_lookup_elem(bpf_map__fd(t.skel->maps.policy), &idx, &back);
	TAP_EQ(back.scan_depth, HYP_SCAN_DEPTH_DEFAULT, "inactive generation keeps the previous config");

	n = pkt_build(&o, b, sizeof(b));
	rc = dpt_xdp(&t, b, n);
	TAP_CHECK(rc == XDP_PASS || rc == XDP_DROP, "xdp test run returns a verdict (%d)", rc);
	rc = dpt_tc(&t, b, n);
	TAP_EQ(rc, 0, "tc test run returns TC_ACT_OK");
	rc = dpt_xdp(&t, b, 10);
	TAP_EQ(rc, -EINVAL, "kernel refuses test runs shorter than an Ethernet header");

	/* per-CPU readers: write a known value on every CPU, the reader must sum them */
	ncpu = libbpf_num_possible_cpus();
	{
		struct hyp_books *bv = calloc(ncpu, sizeof(*bv));

		for (i = 0; bv && i < ncpu; i++) {
			bv[i].stat[HYP_R_DROP_PORT].packets = 2;
			bv[i].stat[HYP_R_DROP_PORT].bytes = 100;
			bv[i].counter[HYP_C_EV_LOST] = 5;
		}
		idx = 0;
		TAP_CHECK(bv && !bpf_map_update_elem(bpf_map__fd(t.skel->maps.books), &idx, bv, BPF_ANY),
			  "books written for every CPU");
		free(bv);
	}
	TAP_EQ(dpt_stat(&t, HYP_R_DROP_PORT), 2 * ncpu, "dpt_stat sums packets over %d CPUs", ncpu);
	TAP_EQ(dpt_counter(&t, HYP_C_EV_LOST), 5 * ncpu, "dpt_counter sums over CPUs");
	TAP_CHECK(dpt_stats_total(&t) >= (uint64_t)2 * ncpu, "dpt_stats_total includes the written entry");

	/* canonical key: both views of a connection give the same key, endpoint a is the lower address */
	dpt_flow_key(4, IPPROTO_TCP, "198.51.100.1", 80, "192.0.2.1", 40000, &k);
	TAP_EQ(k.addr_a[0], 192, "canonical key: endpoint a is the lower address");
	TAP_EQ(ntohs(k.port_a), 40000, "canonical key: port_a belongs to endpoint a");
	TAP_EQ(k.family, HYP_AF_INET, "canonical key: family");
	bpf_map_update_elem(bpf_map__fd(t.skel->maps.flows_new), &k, &f, BPF_ANY);
	err = dpt_flow(&t, 4, IPPROTO_TCP, "192.0.2.1", 40000, "198.51.100.1", 80, &got, &est);
	TAP_EQ(err, 0, "dpt_flow finds the entry from the other direction's view");
	TAP_CHECK(!err && !est && got.packets[0] == 3, "dpt_flow: from flows_new, not established");
	TAP_EQ(dpt_flow(&t, 4, IPPROTO_TCP, "192.0.2.1", 40001, "198.51.100.1", 80, &got, &est), -ENOENT,
	       "dpt_flow: other tuple not found");

	now = dpt_mono_ns();
	TAP_EQ(dpt_ban(&t, "203.0.113.77/24", 60ULL * 1000000000ULL, 9), 0, "dpt_ban v4 cidr");
	err = dpt_ban_get(&t, "203.0.113.5", &ban);
	TAP_EQ(err, 0, "ban /24 covers another host of the prefix");
	TAP_CHECK(!err && ban.expires_ns > now + 59ULL * 1000000000ULL &&
		  ban.expires_ns < now + 61ULL * 1000000000ULL, "ban expiry is now + ttl on the bpf clock");
	TAP_EQ(ban.reason, 9, "ban reason stored");
	TAP_EQ(dpt_ban_get(&t, "203.0.114.5", &ban), -ENOENT, "ban /24 does not cover the next prefix");
	TAP_EQ(dpt_ban(&t, "2001:db8:1::/48", 0, 1), 0, "dpt_ban v6 cidr, permanent");
	TAP_EQ(dpt_ban_get(&t, "2001:db8:1:2::3", &ban), 0, "v6 ban covers an address in the /48");
	TAP_EQ(ban.expires_ns, 0, "permanent ban has expires 0");
	TAP_EQ(dpt_allow(&t, "192.0.2.0/28"), 0, "dpt_allow v4");
	TAP_EQ(dpt_ban(&t, "not-an-address", 0, 0), -EINVAL, "bad cidr rejected");
	TAP_EQ(dpt_events(&t) >= 0, 1, "dpt_events drains without error");
	dpt_close(&t);

	{
		struct dpt_opts oo = { .ringbuf_bytes = 4096 };

		err = dpt_open_opts(&t, &oo);
		TAP_EQ(err, 0, "dpt_open_opts with a one-page ring");
		if (!err) {
			TAP_EQ(bpf_map__max_entries(t.skel->maps.events), 4096, "ring resized");
			dpt_close(&t);
		}
	}
}

int main(void)
{
	test_ipv4_tcp_known_vector();
	test_ipv4_udp_payload_checksums();
	test_icmp_checksums();
	test_ipv6_udp_known_vector();
	test_ipv6_ext_chain_walks_to_l4();
	test_vlan_options_fragments();
	test_harness_plumbing();
	return tap_done();
}
