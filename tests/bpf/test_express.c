/*
 * The express lane (bpf/express.h) answers verdict cache hits before the pipeline. It must change
 * nothing but the cost: every frame here runs through two datapaths fed the same traffic, one with the
 * lane (vcache = HYP_VCACHE_ON) and one where the lane declines every hit (HYP_VCACHE_NO_EXPRESS, the
 * pipeline answers), and both must give the same verdict, book it under the same stats entry, and end
 * with the same counters, cache entries, ban hits, flow counts and events. The lane must also really
 * answer (its counter grows where it should) and stay out of the shapes it leaves to the pipeline
 * (VLAN tags, IPv4 options, IPv6 extension headers, cut headers, SYN/FIN/RST, monitor mode, an unban).
 * IPv4 and IPv6.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "tap.h"
#include "pkt.h"
#include "dptest.h"
#include "sigtest.h"
#include "maps.h"
#include "hyperion.skel.h"

enum {
	FLOWS_TEST_MAX = 4096,
	FLOOD = 300,                /* frames per flood: several cache carries (64, 255) and a remainder */
};

static const char *const SIG = "EXPRESS-EVIL";

/* a: the lane on; b: the lane declining every hit. Frames that disagreed, and the first one's story. */
struct pair {
	struct dpt a, b;
	int mismatches;
	char first[200];
};

struct side {
	int family;
	const char *src, *dst;
	uint16_t sport, dport;
};

static struct hyp_sigset set;
static struct pair pg;          /* static: two dpt's event arrays */

static void pair_close(struct pair *p)
{
	dpt_close(&p->a);
	dpt_close(&p->b);
}

static int pair_push(struct pair *p)
{
	int ra, rb;

	p->a.cfg.vcache = HYP_VCACHE_ON;
	p->b.cfg.vcache = HYP_VCACHE_NO_EXPRESS;
	ra = dpt_sigset_push(&p->a, &set, true);
	rb = dpt_sigset_push(&p->b, &set, true);
	return ra ? ra : rb;
}

static bool pair_open(struct pair *p, const char *what)
{
	struct dpt_opts o = { .flows_max = FLOWS_TEST_MAX, .flows_new_max = FLOWS_TEST_MAX };
	struct dpt *t[2] = { &p->a, &p->b };

	memset(p, 0, sizeof(*p));
	if (!dpt_open_or_report(&p->a, &o))
		return false;
	if (!dpt_open_or_report(&p->b, &o)) {
		dpt_close(&p->a);
		return false;
	}
	for (int i = 0; i < 2; i++) {
		t[i]->cfg.syn_cookies = 0;
		t[i]->cfg.stream_depth = 64;        /* pass entries of both kinds: below and past the depth */
		t[i]->cfg.ev_rate = 1;              /* sampled: the lane answers drops in their quiet time */
		t[i]->cfg.ev_burst = 1;
	}
	if (pair_push(p)) {
		TAP_CHECK(0, "%s: signatures and config pushed to both datapaths", what);
		pair_close(p);
		return false;
	}
	return true;
}

/* One frame through both (XDP ingress, or tc egress with out): the same verdict and stats entry. */
static void pair_run(struct pair *p, const uint8_t *f, int len, bool out, const char *what)
{
	int rca = 0, rcb = 0, sa, sb;

	if (out) {
		rca = dpt_tc(&p->a, f, (uint32_t)len);
		rcb = dpt_tc(&p->b, f, (uint32_t)len);
		sa = sb = 0;
	} else {
		sa = dpt_xdp_reason(&p->a, f, (uint32_t)len, &rca);
		sb = dpt_xdp_reason(&p->b, f, (uint32_t)len, &rcb);
	}
	if (rca == rcb && sa == sb && rca >= 0)
		return;
	if (!p->mismatches++)
		snprintf(p->first, sizeof(p->first), "%s: lane %d/%s, pipeline %d/%s", what, rca,
			 sa >= 0 ? dpt_stat_name(sa) : "none", rcb, sb >= 0 ? dpt_stat_name(sb) : "none");
}

static int frame(const struct side *s, uint8_t flags, const void *pay, uint32_t paylen, uint8_t proto,
		 struct pkt_opts *extra, uint8_t *b)
{
	struct pkt_opts o = { .family = s->family, .src = s->src, .dst = s->dst, .sport = s->sport,
			      .dport = s->dport, .proto = proto, .tcp_flags = flags, .seq = 1000, .ack = 1,
			      .payload = pay, .payload_len = paylen };

	if (extra) {
		o.nvlan = extra->nvlan;
		o.ip_opts_len = extra->ip_opts_len;
		o.frag_offset = extra->frag_offset;
		o.more_frags = extra->more_frags;
		o.frag = extra->frag;
		memcpy(o.ext, extra->ext, sizeof(o.ext));
		o.next = extra->next;
	}
	return pkt_build(&o, b, PKT_MAX);
}

static struct side reverse(const struct side *s)
{
	struct side r = { s->family, s->dst, s->src, s->dport, s->sport };

	return r;
}

static uint64_t express_hits(struct dpt *t)
{
	return dpt_counter(t, HYP_C_VCACHE_EXPRESS);
}

/* The end state of both: stats, counters (but the lane's own), every cache entry of this CPU's and the
 * others' (keys, kinds, counts, suppressed events; not the times, read at different instants). */
static void pair_compare_state(struct pair *p, const char *what)
{
	int fa = bpf_map__fd(p->a.skel->maps.vcache), fb = bpf_map__fd(p->b.skel->maps.vcache);
	uint32_t slots = bpf_map__max_entries(p->a.skel->maps.vcache);
	int ncpu = libbpf_num_possible_cpus(), bad_stats = 0, bad_ctr = 0, bad_vc = 0, used = 0;
	struct hyp_vcache va[ncpu > 0 ? ncpu : 1], vb[ncpu > 0 ? ncpu : 1];

	for (unsigned i = 0; i < HYP_STATS_ENTRIES; i++)
		bad_stats += dpt_stat(&p->a, i) != dpt_stat(&p->b, i);
	for (unsigned i = 0; i < HYP_C_MAX; i++)
		if (i != HYP_C_VCACHE_EXPRESS)
			bad_ctr += dpt_counter(&p->a, i) != dpt_counter(&p->b, i);
	for (uint32_t s = 0; s < slots; s++) {
		if (bpf_map_lookup_elem(fa, &s, va) || bpf_map_lookup_elem(fb, &s, vb)) {
			bad_vc++;
			continue;
		}
		for (int c = 0; c < ncpu; c++) {
			struct hyp_vcache *x = &va[c], *y = &vb[c];

			used += x->until_ns != 0;
			if ((x->until_ns != 0) != (y->until_ns != 0) || memcmp(x->saddr, y->saddr, 16) ||
			    memcmp(x->daddr, y->daddr, 16) || x->sport != y->sport || x->dport != y->dport ||
			    x->proto != y->proto || x->family != y->family || x->action != y->action ||
			    x->state != y->state || x->sig != y->sig || x->hits != y->hits ||
			    x->ev_pending != y->ev_pending)
				bad_vc++;
		}
	}
	TAP_EQ(bad_stats, 0, "%s: every stats entry the same both ways", what);
	TAP_EQ(bad_ctr, 0, "%s: every counter the same both ways (seen %" PRIu64 ", vcache_hits %" PRIu64 ")", what,
	       dpt_counter(&p->a, HYP_C_SEEN), dpt_counter(&p->a, HYP_C_VCACHE_HIT));
	TAP_CHECK(bad_vc == 0 && used > 0, "%s: the cache holds the same %d entries both ways (%d differ)", what,
		  used, bad_vc);
	TAP_EQ(dpt_counter(&p->a, HYP_C_SEEN), dpt_stats_total(&p->a), "%s: books: seen == sum(stats)", what);
}

/* Events of every kind the same both ways (sampling included); drains both rings. */
static void pair_compare_events(struct pair *p, const char *what)
{
	int na[HYP_EV_KIND_MAX] = { 0 }, nb[HYP_EV_KIND_MAX] = { 0 }, bad = 0, total = 0;

	dpt_events(&p->a);
	dpt_events(&p->b);
	for (int i = 0; i < p->a.nev; i++)
		if (p->a.ev[i].kind < HYP_EV_KIND_MAX)
			na[p->a.ev[i].kind]++;
	for (int i = 0; i < p->b.nev; i++)
		if (p->b.ev[i].kind < HYP_EV_KIND_MAX)
			nb[p->b.ev[i].kind]++;
	for (int k = 0; k < HYP_EV_KIND_MAX; k++) {
		bad += na[k] != nb[k];
		total += na[k];
	}
	TAP_CHECK(bad == 0 && p->a.nev == p->b.nev, "%s: the same events both ways (%d, %d kinds differ)", what,
		  total, bad);
}

static void pair_mismatches(struct pair *p, const char *what)
{
	TAP_CHECK(p->mismatches == 0, "%s: every frame got the same verdict and stats entry both ways%s%s", what,
		  p->mismatches ? "; first: " : "", p->mismatches ? p->first : "");
	p->mismatches = 0;
}

/* A banned source's flood (UDP, TCP ACKs, SYNs): the lane answers once the source entry's quiet time is
 * learnt; fragments, tags, options and extension headers from it are the pipeline's. */
static void test_banned_flood(int family)
{
	const char *net = family == 4 ? "203.0.113.0/24" : "2001:db8:bad::/48";
	struct side s = { family, family == 4 ? "203.0.113.9" : "2001:db8:bad::9",
			  family == 4 ? "198.51.100.1" : "2001:db8:2::1", 40000, 53 };
	struct pkt_opts x;
	uint8_t b[PKT_MAX];
	char what[64];
	struct hyp_ban ba, bb;
	uint64_t xp;
	int len;

	snprintf(what, sizeof(what), "banned flood v%d", family);
	if (!pair_open(&pg, what))
		return;
	TAP_CHECK(dpt_ban(&pg.a, net, 0, 1) == 0 && dpt_ban(&pg.b, net, 0, 1) == 0, "%s: %s banned", what,
		  net);
	len = frame(&s, 0, "flood", 5, IPPROTO_UDP, NULL, b);
	for (int i = 0; i < FLOOD; i++)
		pair_run(&pg, b, len, false, "UDP");
	xp = express_hits(&pg.a);
	TAP_CHECK(xp > 0 && xp < FLOOD, "%s: the lane answered part of the flood (%" PRIu64 " of %d)", what, xp,
		  FLOOD);
	TAP_EQ(express_hits(&pg.b), 0, "%s: ... and never with vcache = HYP_VCACHE_NO_EXPRESS", what);
	s.sport = 40001;
	len = frame(&s, TH_ACK, NULL, 0, IPPROTO_TCP, NULL, b);
	for (int i = 0; i < FLOOD; i++)
		pair_run(&pg, b, len, false, "TCP ACK");
	len = frame(&s, TH_SYN, NULL, 0, IPPROTO_TCP, NULL, b);
	for (int i = 0; i < FLOOD; i++)
		pair_run(&pg, b, len, false, "SYN");
	TAP_CHECK(express_hits(&pg.a) > xp, "%s: ... and its TCP segments, SYNs included", what);

	/* shapes the lane leaves alone */
	xp = express_hits(&pg.a);
	memset(&x, 0, sizeof(x));
	x.nvlan = 1;
	len = frame(&s, 0, "tagged", 6, IPPROTO_UDP, &x, b);
	pair_run(&pg, b, len, false, "VLAN-tagged");
	memset(&x, 0, sizeof(x));
	if (family == 4) {
		x.ip_opts_len = 4;
		len = frame(&s, 0, "options", 7, IPPROTO_UDP, &x, b);
		pair_run(&pg, b, len, false, "IPv4 options");
		memset(&x, 0, sizeof(x));
		x.frag_offset = 100;
	} else {
		x.ext[0] = IPPROTO_HOPOPTS;
		x.next = 1;
		len = frame(&s, 0, "ext", 3, IPPROTO_UDP, &x, b);
		pair_run(&pg, b, len, false, "IPv6 hop-by-hop");
		memset(&x, 0, sizeof(x));
		x.frag = true;
		x.frag_offset = 100;
	}
	len = frame(&s, 0, "fragment", 8, IPPROTO_UDP, &x, b);
	pair_run(&pg, b, len, false, "non-first fragment");
	TAP_EQ(express_hits(&pg.a), xp, "%s: tags, options, extension headers, fragments: the pipeline's", what);

	pair_mismatches(&pg, what);
	pair_compare_state(&pg, what);
	TAP_CHECK(dpt_ban_get(&pg.a, net, &ba) == 0 && dpt_ban_get(&pg.b, net, &bb) == 0 &&
		  ba.hits == bb.hits, "%s: the ban's hits the same both ways (%u)", what, ba.hits);
	pair_compare_events(&pg, what);

	/* an unban ends the lane's answer at the next frame, as the pipeline's */
	TAP_CHECK(dpt_unban(&pg.a, net) == 0 && dpt_unban(&pg.b, net) == 0, "%s: unbanned, epoch bumped", what);
	s.sport = 40000;
	len = frame(&s, 0, "flood", 5, IPPROTO_UDP, NULL, b);
	xp = express_hits(&pg.a);
	TAP_EQ(dpt_xdp(&pg.a, b, len), XDP_PASS, "%s: after the unban the lane lets the next frame pass", what);
	TAP_EQ(express_hits(&pg.a), xp, "%s: ... the pipeline decided it", what);
	pair_close(&pg);
}

/* Send n segments of side s (every third with a 100-byte payload), through both. */
static void pair_flood(struct pair *p, const struct side *s, uint8_t proto, uint8_t flags, const char *pay, int n,
		       const char *what)
{
	static const char filler[100] = "0123456789012345678901234567890123456789012345678901234567890123456789";
	uint8_t b[PKT_MAX];

	for (int i = 0; i < n; i++) {
		const void *d = pay ? pay : (i % 3 == 2 ? filler : NULL);
		uint32_t dl = pay ? (uint32_t)strlen(pay) : (i % 3 == 2 ? sizeof(filler) : 0);
		int len = frame(s, flags, d, dl, proto, NULL, b);

		pair_run(p, b, len, false, what);
	}
}

/* An established TCP flow, a UDP flow, a dropped UDP flow: the lane answers the cache's hits (pass
 * entries below and past the stream depth, drop entries in their quiet time) and leaves the rest. */
static void test_flows(int family)
{
	const char *remote = family == 4 ? "192.0.2.7" : "2001:db8:1::7";
	const char *local = family == 4 ? "198.51.100.1" : "2001:db8:2::1";
	struct side tcp = { family, remote, local, 20000, 443 }, udp = { family, remote, local, 20001, 53 };
	struct side bad = { family, remote, local, 20002, 53 }, srv = reverse(&tcp);
	struct pkt_layout lay;
	struct pkt_opts x;
	struct hyp_flow fa, fb;
	uint8_t b[PKT_MAX];
	char what[64];
	uint64_t xp;
	int len;

	snprintf(what, sizeof(what), "flows v%d", family);
	if (!pair_open(&pg, what))
		return;
	/* the handshake: SYN in, SYN-ACK out (tc egress), ACK in */
	len = frame(&tcp, TH_SYN, NULL, 0, IPPROTO_TCP, NULL, b);
	pair_run(&pg, b, len, false, "SYN");
	len = frame(&srv, TH_SYN | TH_ACK, NULL, 0, IPPROTO_TCP, NULL, b);
	pair_run(&pg, b, len, true, "SYN-ACK");
	len = frame(&tcp, TH_ACK, NULL, 0, IPPROTO_TCP, NULL, b);
	pair_run(&pg, b, len, false, "ACK");
	pair_flood(&pg, &tcp, IPPROTO_TCP, TH_ACK, NULL, FLOOD, "established segments");
	TAP_CHECK(express_hits(&pg.a) > FLOOD / 2, "%s: the lane passed most established segments (%" PRIu64 " of %d)",
		  what, express_hits(&pg.a), FLOOD);
	/* the server answers; the client goes on */
	len = frame(&srv, TH_ACK, "reply", 5, IPPROTO_TCP, NULL, b);
	pair_run(&pg, b, len, true, "server segment");
	pair_flood(&pg, &tcp, IPPROTO_TCP, TH_ACK | TH_PSH, NULL, FLOOD, "segments after the reply");
	TAP_CHECK(dpt_flow(&pg.a, family, IPPROTO_TCP, remote, tcp.sport, local, tcp.dport, &fa, NULL) == 0 &&
		  dpt_flow(&pg.b, family, IPPROTO_TCP, remote, tcp.sport, local, tcp.dport, &fb, NULL) == 0 &&
		  !memcmp(fa.packets, fb.packets, sizeof(fa.packets)) && !memcmp(fa.bytes, fb.bytes, sizeof(fa.bytes)),
		  "%s: the TCP flow's packets and bytes, as read, the same both ways (%llu in)", what,
		  (unsigned long long)(fa.packets[0] + fa.packets[1]));

	/* UDP: empty datagrams from the cache, payload to the scanner */
	pair_flood(&pg, &udp, IPPROTO_UDP, 0, NULL, FLOOD, "UDP datagrams");
	/* a dropped flow's flood */
	xp = express_hits(&pg.a);
	len = frame(&bad, 0, SIG, (uint32_t)strlen(SIG), IPPROTO_UDP, NULL, b);
	pair_run(&pg, b, len, false, "signature match");
	pair_flood(&pg, &bad, IPPROTO_UDP, 0, "after the match", FLOOD, "dropped flow");
	TAP_CHECK(express_hits(&pg.a) > xp, "%s: the lane dropped the dropped flow's flood (%" PRIu64 ")", what,
		  express_hits(&pg.a) - xp);
	TAP_EQ(express_hits(&pg.b), 0, "%s: never with vcache = HYP_VCACHE_NO_EXPRESS", what);

	/* shapes and segments the lane leaves alone, on the cached flows */
	xp = express_hits(&pg.a);
	memset(&x, 0, sizeof(x));
	x.nvlan = 1;
	len = frame(&tcp, TH_ACK, NULL, 0, IPPROTO_TCP, &x, b);
	pair_run(&pg, b, len, false, "VLAN-tagged segment");
	memset(&x, 0, sizeof(x));
	if (family == 4) {
		x.ip_opts_len = 8;
	} else {
		x.ext[0] = IPPROTO_DSTOPTS;
		x.next = 1;
	}
	len = frame(&tcp, TH_ACK, NULL, 0, IPPROTO_TCP, &x, b);
	pair_run(&pg, b, len, false, "options / extension header");
	{
		struct pkt_opts o = { .family = family, .src = remote, .dst = local, .sport = tcp.sport,
				      .dport = tcp.dport, .proto = IPPROTO_TCP, .tcp_flags = TH_ACK, .seq = 1000,
				      .ack = 1, .payload = "cut", .payload_len = 3 };
		int hdr_end;

		len = pkt_build_layout(&o, b, sizeof(b), &lay);
		hdr_end = lay.payload_off;
		/* cut inside the TCP header, or an IP length that ends inside it */
		for (int cut = lay.l4_off + 1; cut < hdr_end; cut++)
			pair_run(&pg, b, cut, false, "TCP header cut short");
		for (int end = lay.l4_off; end < hdr_end; end++) {
			uint8_t c[PKT_MAX];

			memcpy(c, b, (size_t)lay.len);
			pkt_set_ip_len(c, &lay, (uint32_t)end);
			pair_run(&pg, c, lay.len, false, "IP length short of the TCP header");
		}
	}
	len = frame(&udp, 0, NULL, 0, IPPROTO_UDP, NULL, b);
	for (int cut = len - 8 + 1; cut < len; cut++)
		pair_run(&pg, b, cut, false, "UDP header cut short");
	TAP_EQ(express_hits(&pg.a), xp, "%s: tags, options, cut headers: the pipeline's", what);
	/* cut inside the payload, or an IP length short of the frame: whole headers, the cache's to answer */
	for (int cut = lay.payload_off; cut <= lay.len; cut++) {
		uint8_t c[PKT_MAX];

		len = frame(&tcp, TH_ACK, "cut", 3, IPPROTO_TCP, NULL, c);
		pair_run(&pg, c, cut, false, "TCP payload cut short");
		pkt_set_ip_len(c, &lay, (uint32_t)cut);
		pair_run(&pg, c, len, false, "IP length short of the frame");
	}
	TAP_CHECK(express_hits(&pg.a) > xp, "%s: ... payload cut short, or the IP length short of the frame: the lane's",
		  what);

	/* monitor mode: the pipeline's (nothing is dropped, the cache answers nothing) */
	pg.a.cfg.mode = pg.b.cfg.mode = HYP_MODE_MONITOR;
	TAP_EQ(pair_push(&pg), 0, "%s: monitor mode pushed", what);
	xp = express_hits(&pg.a);
	pair_flood(&pg, &bad, IPPROTO_UDP, 0, "in monitor mode", 20, "dropped flow, monitor mode");
	pair_flood(&pg, &tcp, IPPROTO_TCP, TH_ACK, NULL, 20, "segments, monitor mode");
	TAP_EQ(express_hits(&pg.a), xp, "%s: monitor mode: the pipeline's", what);
	pg.a.cfg.mode = pg.b.cfg.mode = HYP_MODE_ENFORCE;
	TAP_EQ(pair_push(&pg), 0, "%s: enforce mode pushed", what);
	pair_flood(&pg, &tcp, IPPROTO_TCP, TH_ACK, NULL, FLOOD, "segments, enforcing again");
	pair_flood(&pg, &bad, IPPROTO_UDP, 0, "enforcing again", FLOOD, "dropped flow, enforcing again");
	TAP_CHECK(express_hits(&pg.a) > xp, "%s: enforcing again, the lane answers again", what);

	/* the flow's end: FIN, then RST, are the pipeline's */
	xp = express_hits(&pg.a);
	len = frame(&tcp, TH_ACK | TH_FIN, NULL, 0, IPPROTO_TCP, NULL, b);
	pair_run(&pg, b, len, false, "FIN");
	len = frame(&tcp, TH_ACK | TH_RST, NULL, 0, IPPROTO_TCP, NULL, b);
	pair_run(&pg, b, len, false, "RST");
	TAP_EQ(express_hits(&pg.a), xp, "%s: FIN and RST: the pipeline's", what);
	pair_flood(&pg, &tcp, IPPROTO_TCP, TH_ACK, NULL, 10, "segments after the RST");
	pair_mismatches(&pg, what);
	pair_compare_state(&pg, what);
	TAP_CHECK(dpt_flow(&pg.a, family, IPPROTO_TCP, remote, tcp.sport, local, tcp.dport, &fa, NULL) == 0 &&
		  dpt_flow(&pg.b, family, IPPROTO_TCP, remote, tcp.sport, local, tcp.dport, &fb, NULL) == 0 &&
		  !memcmp(fa.packets, fb.packets, sizeof(fa.packets)) && !memcmp(fa.bytes, fb.bytes, sizeof(fa.bytes)) &&
		  fa.state == fb.state, "%s: the TCP flow at the end the same both ways", what);
	pair_compare_events(&pg, what);
	pair_close(&pg);
}

/* An expired ban hides a shorter live one (the datapath looks at the longest match only), so a flow
 * from its source is cached as passed; removing the expired ban uncovers the shorter one, and the
 * runtime bumps the epoch for it (ban_expire, ban_del): the flow's entry must not outlive that, in the
 * lane's flow-first order either, while the source's other traffic gets a source entry. */
static void test_mixed_expired(int family)
{
	const char *net = family == 4 ? "203.0.113.0/24" : "2001:db8:bad::/48";
	const char *host = family == 4 ? "203.0.113.9/32" : "2001:db8:bad::9/128";
	const char *local = family == 4 ? "198.51.100.1" : "2001:db8:2::1";
	struct side src = { family, family == 4 ? "203.0.113.9" : "2001:db8:bad::9", local, 40000, 53 };
	struct side other = src, clean = { family, family == 4 ? "192.0.2.7" : "2001:db8:1::7", local, 20001, 53 };
	uint8_t ff[PKT_MAX], fo[PKT_MAX], fc[PKT_MAX];
	int lf, lo, lc, rc;
	char what[64];

	snprintf(what, sizeof(what), "expired ban v%d", family);
	if (!pair_open(&pg, what))
		return;
	other.sport = 40001;
	TAP_CHECK(dpt_ban(&pg.a, net, 0, 1) == 0 && dpt_ban(&pg.b, net, 0, 1) == 0 &&
		  dpt_ban(&pg.a, host, 1000000, 2) == 0 && dpt_ban(&pg.b, host, 1000000, 2) == 0,
		  "%s: %s banned, %s banned for 1 ms", what, net, host);
	usleep(30000);      /* past the /32's expiry on the coarse clock too (a tick behind at most) */
	lf = frame(&src, 0, NULL, 0, IPPROTO_UDP, NULL, ff);
	lo = frame(&other, 0, NULL, 0, IPPROTO_UDP, NULL, fo);
	lc = frame(&clean, 0, NULL, 0, IPPROTO_UDP, NULL, fc);
	for (int i = 0; i < 20; i++) {
		pair_run(&pg, ff, lf, false, "the source's flow, behind the expired ban");
		pair_run(&pg, fc, lc, false, "an unbanned flow");
	}
	TAP_CHECK(dpt_stat(&pg.a, HYP_R_DROP_BANNED) == 0 && dpt_stat(&pg.a, HYP_R_PASS_FLOW) > 0,
		  "%s: the expired ban hides the shorter one: nothing dropped, the flow cached as passed", what);
	TAP_CHECK(dpt_unban(&pg.a, host) == 0 && dpt_unban(&pg.b, host) == 0, "%s: the expired ban removed", what);
	for (int i = 0; i < 3 * 64; i++)        /* the source's other traffic: its source entry cached */
		pair_run(&pg, fo, lo, false, "the source's other flow, banned");
	pair_run(&pg, fc, lc, false, "an unbanned flow (the lane's order: flow first)");
	TAP_EQ(dpt_xdp_reason(&pg.a, ff, (uint32_t)lf, &rc), HYP_R_DROP_BANNED,
	       "%s: the source's cached flow, next frame: dropped, banned", what);
	for (int i = 0; i < 20; i++) {
		pair_run(&pg, ff, lf, false, "the source's cached flow, banned");
		pair_run(&pg, fc, lc, false, "an unbanned flow, after");
	}
	pair_mismatches(&pg, what);
	pair_close(&pg);
}

/* With a ban list loaded the lane probes the flow entry first, or the source entry first after a source
 * hit (bpf/express.h xp_probe): a banned source's flood interleaved with a dropped flow's and a passed
 * flow's, in turns and in runs, gets the pipeline's answers either way; and banning a cached flow's
 * source ends its flow entry's answers at the next frame (the epoch), which the flow-first order
 * relies on. */
static void test_mixed(int family)
{
	const char *net = family == 4 ? "203.0.113.0/24" : "2001:db8:bad::/48";
	const char *remote = family == 4 ? "192.0.2.7" : "2001:db8:1::7";
	const char *rnet = family == 4 ? "192.0.2.0/24" : "2001:db8:1::/48";
	const char *local = family == 4 ? "198.51.100.1" : "2001:db8:2::1";
	struct side banned = { family, family == 4 ? "203.0.113.9" : "2001:db8:bad::9", local, 40000, 53 };
	struct side udp = { family, remote, local, 20001, 53 }, bad = { family, remote, local, 20002, 53 };
	uint8_t fb[PKT_MAX], fd[PKT_MAX], fu[PKT_MAX];
	int lb, ld, lu, sb, sd, rc;
	uint64_t xp, pass_a, pass_b;
	char what[64];

	snprintf(what, sizeof(what), "mixed v%d", family);
	if (!pair_open(&pg, what))
		return;
	TAP_CHECK(dpt_ban(&pg.a, net, 0, 1) == 0 && dpt_ban(&pg.b, net, 0, 1) == 0, "%s: %s banned", what, net);
	lb = frame(&banned, 0, "flood", 5, IPPROTO_UDP, NULL, fb);
	ld = frame(&bad, 0, SIG, (uint32_t)strlen(SIG), IPPROTO_UDP, NULL, fd);
	pair_run(&pg, fd, ld, false, "signature match");
	ld = frame(&bad, 0, "after the match", 15, IPPROTO_UDP, NULL, fd);
	lu = frame(&udp, 0, NULL, 0, IPPROTO_UDP, NULL, fu);
	for (int i = 0; i < FLOOD; i++) {       /* in turns: the order changes at every frame */
		pair_run(&pg, fb, lb, false, "banned, in turns");
		pair_run(&pg, fd, ld, false, "dropped flow, in turns");
		pair_run(&pg, fu, lu, false, "passed flow, in turns");
	}
	for (int i = 0; i < 4 * FLOOD; i++) {   /* in runs: each order settles */
		int k = i / 20 % 3;

		pair_run(&pg, k == 0 ? fb : k == 1 ? fd : fu, k == 0 ? lb : k == 1 ? ld : lu, false, "in runs");
	}
	xp = express_hits(&pg.a);
	sb = (int)dpt_stat(&pg.a, HYP_R_DROP_BANNED);
	sd = (int)dpt_stat(&pg.a, HYP_R_DROP_SIG);
	TAP_CHECK(xp > FLOOD && sb > FLOOD && sd > FLOOD, "%s: the lane answered (%" PRIu64 " of %d banned and %d "
		  "dropped-flow frames among the rest)", what, xp, sb, sd);
	pair_mismatches(&pg, what);
	pair_compare_state(&pg, what);
	pair_compare_events(&pg, what);

	/* the flows' source banned: their cached answers end at the next frame, both ways */
	pass_a = dpt_stat(&pg.a, HYP_R_PASS_FLOW);
	pass_b = dpt_stat(&pg.b, HYP_R_PASS_FLOW);
	TAP_CHECK(dpt_ban(&pg.a, rnet, 0, 2) == 0 && dpt_ban(&pg.b, rnet, 0, 2) == 0, "%s: %s banned too", what,
		  rnet);
	/* the first banned source's frames first: its entry is made again under the new epoch, so the
	 * books note that epoch while the flows' entries, from the old one, are still in their slots */
	for (int i = 0; i < 5; i++)
		pair_run(&pg, fb, lb, false, "banned, after the second ban");
	TAP_EQ(dpt_xdp_reason(&pg.a, fu, (uint32_t)lu, &rc), HYP_R_DROP_BANNED,
	       "%s: the passed flow's next frame: dropped, banned", what);
	TAP_EQ(dpt_xdp_reason(&pg.b, fu, (uint32_t)lu, &rc), HYP_R_DROP_BANNED, "%s: ... the pipeline's too", what);
	for (int i = 0; i < FLOOD; i++) {
		pair_run(&pg, fd, ld, false, "dropped flow, its source banned");
		pair_run(&pg, fu, lu, false, "passed flow, its source banned");
	}
	pair_mismatches(&pg, what);
	TAP_CHECK(dpt_stat(&pg.a, HYP_R_PASS_FLOW) == pass_a && dpt_stat(&pg.b, HYP_R_PASS_FLOW) == pass_b,
		  "%s: no frame of the banned source's flows passed since, either way", what);
	TAP_CHECK(dpt_stat(&pg.a, HYP_R_DROP_BANNED) >= (uint64_t)sb + 2 * FLOOD,
		  "%s: ... all dropped as banned (the lane's source entry, once cached)", what);
	pair_close(&pg);
	test_mixed_expired(family);
}

int main(void)
{
	struct hyp_sigdef d;
	char err[256];

	sigdef_fill(&d, "evil", SIG, (uint32_t)strlen(SIG), HYP_ACT_DROP, 0, 0, 0);
	if (sigset_compile(&set, &d, 1, err, sizeof(err))) {
		TAP_CHECK(0, "signature compiles: %s", err);
		return tap_done();
	}
	test_banned_flood(4);
	test_banned_flood(6);
	test_flows(4);
	test_flows(6);
	test_mixed(4);
	test_mixed(6);
	sigset_free(&set);
	return tap_done();
}
