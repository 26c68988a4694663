/* SYN cookies in XDP (bpf/syncookie.h) through BPF_PROG_TEST_RUN: the SYN-ACK on the wire, the ACK that
 * opens the flow, the metadata left for tc ingress, and everything a cookie must refuse. The hand-off to
 * a listener (tc ingress) needs a real socket: tests/e2e/test_syncookie.sh. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "tap.h"
#include "pkt.h"
#include "dptest.h"
#include "hyperion.skel.h"

enum {
	PORT = 443,
	CLOSED_PORT = 444,
	CSEQ = 1000000,
	TSVAL = 0x11223344,
	FLOOD = 1000,
	TICK_NS_SHIFT = 36,         /* HYP_COOKIE_TICK_SHIFT */
	XDP_TX_RC = 3,
	XDP_PASS_RC = 2,
};

static const char *const cli4 = "192.0.2.9", *const srv4 = "198.51.100.1";
static const char *const cli6 = "2001:db8:1::9", *const srv6 = "2001:db8:2::1";

/* Option blocks as common stacks send them. */
static const uint8_t opts_linux[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0,
					1, 3, 3, 7 };
static const uint8_t opts_windows[12] = { 2, 4, 0x05, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2 };

struct frame {
	uint8_t b[PKT_MAX];
	int len;
	struct pkt_layout lay;
};

/* A TCP segment whose options are opt[0..optlen) (a multiple of 4), then payload. */
static int seg_build(struct frame *f, int fam, const char *src, uint16_t sport, const char *dst, uint16_t dport,
		     uint8_t flags, uint32_t seq, uint32_t ack, const uint8_t *opt, int optlen)
{
	struct pkt_opts o = { .family = fam, .src = src, .dst = dst, .proto = IPPROTO_TCP, .sport = sport,
			      .dport = dport, .tcp_flags = flags, .seq = seq, .ack = ack, .payload = opt,
			      .payload_len = (uint32_t)optlen };

	f->len = pkt_build_layout(&o, f->b, sizeof(f->b), &f->lay);
	if (f->len < 0)
		return -1;
	/* the "payload" is the option block: move the data offset over it (checksums are not checked) */
	f->b[f->lay.l4_off + 12] = (uint8_t)((20 + optlen) / 4) << 4;
	f->lay.payload_off += optlen;
	return 0;
}

/* Runs the frame; out receives the frame as the program left it (with XDP metadata in front). */
static int run(struct dpt *t, const struct frame *in, uint8_t *out, uint32_t *out_len)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in->b, .data_size_in = (uint32_t)in->len, .data_out = out,
		    .data_size_out = PKT_MAX, .repeat = 1);
	int err = bpf_prog_test_run_opts(t->xdp_fd, &o);

	if (err)
		return err;
	*out_len = o.data_size_out;
	return (int)o.retval;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Finds TCP option kind in the header at th; returns its offset or -1. */
static int opt_find(const uint8_t *th, uint8_t kind)
{
	int hlen = (th[12] >> 4) * 4;

	for (int i = 20; i < hlen;) {
		if (th[i] == 0)
			return -1;
		if (th[i] == 1) {
			i++;
			continue;
		}
		if (th[i] == kind)
			return i;
		if (th[i + 1] < 2)
			return -1;
		i += th[i + 1];
	}
	return -1;
}

struct synack {
	uint32_t isn, tsval;
	bool ok;
};

/* Layouts the datapath recognises without walking (sc_opts_fast), and some it must walk. */
static const uint8_t opts_mss_only[4] = { 2, 4, 0x05, 0xb4 };
static const uint8_t opts_linux_ws15[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0,
					     1, 3, 3, 15 };
static const uint8_t opts_macos[24] = { 2, 4, 0x05, 0xb4, 1, 3, 3, 6, 1, 1, 8, 10, 0x11, 0x22, 0x33, 0x44,
					0, 0, 0, 0, 4, 2, 0, 0 };
static const uint8_t opts_no_sack[20] = { 2, 4, 0x05, 0xa0, 1, 1, 8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0,
					  1, 3, 3, 7 };
static const uint8_t opts_ws_first[12] = { 1, 3, 3, 5, 2, 4, 0x05, 0xb4, 4, 2, 1, 1 };

/* Sends a SYN with the given options; checks the SYN-ACK in every field a client looks at. */
static struct synack syn_roundtrip(struct dpt *t, int fam, uint16_t sport, const uint8_t *opt, int optlen,
				   const char *what)
{
	const char *cli = fam == 4 ? cli4 : cli6, *srv = fam == 4 ? srv4 : srv6;
	struct synack r = { 0 };
	struct frame in;
	uint8_t out[PKT_MAX];
	uint32_t olen = 0;
	uint64_t sent = dpt_counter(t, HYP_C_COOKIE_SENT);
	int rc, l3, l4, iph = fam == 4 ? 20 : 40;

	if (seg_build(&in, fam, cli, sport, srv, PORT, TH_SYN, CSEQ, 0, opt, optlen)) {
		TAP_CHECK(0, "%s: frame builds", what);
		return r;
	}
	rc = run(t, &in, out, &olen);
	TAP_EQ(rc, XDP_TX_RC, "%s: the SYN is answered in XDP (XDP_TX)", what);
	TAP_EQ(dpt_counter(t, HYP_C_COOKIE_SENT), sent + 1, "%s: syncookies_sent counted", what);
	l3 = in.lay.l3_off;
	l4 = in.lay.l4_off;
	TAP_EQ(olen, (uint32_t)(l4 + 40), "%s: the reply is headers + 40 bytes of TCP", what);
	if (rc != XDP_TX_RC || olen != (uint32_t)(l4 + 40))
		return r;
	TAP_CHECK(!memcmp(out, in.b + 6, 6) && !memcmp(out + 6, in.b, 6), "%s: MAC addresses swapped", what);
	if (fam == 4) {
		TAP_CHECK(!memcmp(out + l3 + 12, in.b + l3 + 16, 4) && !memcmp(out + l3 + 16, in.b + l3 + 12, 4),
			  "%s: IP addresses swapped", what);
		TAP_CHECK(pkt_ipv4_csum_ok(out, l3), "%s: IPv4 header checksum verifies", what);
		TAP_EQ((unsigned)(out[l3 + 2] << 8 | out[l3 + 3]), 60u, "%s: IPv4 total length", what);
	} else {
		TAP_CHECK(!memcmp(out + l3 + 8, in.b + l3 + 24, 16) && !memcmp(out + l3 + 24, in.b + l3 + 8, 16),
			  "%s: IPv6 addresses swapped", what);
		TAP_EQ((unsigned)(out[l3 + 4] << 8 | out[l3 + 5]), 40u, "%s: IPv6 payload length", what);
	}
	const uint8_t *th = out + l4;
	TAP_CHECK(th[0] == in.b[l4 + 2] && th[1] == in.b[l4 + 3] && th[2] == in.b[l4] && th[3] == in.b[l4 + 1],
		  "%s: ports swapped", what);
	TAP_EQ(th[13], TH_SYN | TH_ACK, "%s: flags SYN+ACK", what);
	TAP_EQ(be32(th + 8), (uint32_t)CSEQ + 1, "%s: acknowledges the client's ISN + 1", what);
	TAP_CHECK(pkt_l4_csum_ok(out, fam, l3, l4, IPPROTO_TCP, 40), "%s: TCP checksum verifies", what);
	int mss = opt_find(th, 2);
	TAP_CHECK(mss > 0 && (th[mss + 2] << 8 | th[mss + 3]) == (fam == 4 ? 1460 : 1440),
		  "%s: announces MSS %d", what, fam == 4 ? 1460 : 1440);
	r.isn = be32(th + 4);
	int ts = opt_find(th, 8), their_ts = opt_find(in.b + l4, 8);
	TAP_EQ(ts > 0, their_ts > 0, "%s: timestamps in the reply exactly when the SYN had them", what);
	if (ts > 0) {
		r.tsval = be32(th + ts + 2);
		if (their_ts > 0)
			TAP_EQ(be32(th + ts + 6), be32(in.b + l4 + their_ts + 2), "%s: TSecr echoes the SYN's TSval",
			       what);
	}
	(void)iph;
	r.ok = true;
	return r;
}

/* The client's ACK for a cookie; ts: include a timestamp option echoing tsecr. */
static int ack_build(struct frame *f, int fam, uint16_t sport, uint32_t ack, bool ts, uint32_t tsecr)
{
	uint8_t o[12] = { 1, 1, 8, 10, 0x55, 0x66, 0x77, 0x88 };

	o[8] = (uint8_t)(tsecr >> 24);
	o[9] = (uint8_t)(tsecr >> 16);
	o[10] = (uint8_t)(tsecr >> 8);
	o[11] = (uint8_t)tsecr;
	return seg_build(f, fam, fam == 4 ? cli4 : cli6, sport, fam == 4 ? srv4 : srv6, PORT, TH_ACK, CSEQ + 1, ack,
			 o, ts ? 12 : 0);
}

static void test_handshake(struct dpt *t, int fam)
{
	const char *cli = fam == 4 ? cli4 : cli6, *srv = fam == 4 ? srv4 : srv6;
	char what[64];
	uint16_t sport = (uint16_t)(fam == 4 ? 40001 : 40002);
	struct frame ack;
	uint8_t out[PKT_MAX];
	uint32_t olen;
	struct hyp_flow f;
	bool est = false;
	uint64_t news = dpt_counter(t, HYP_C_CT_NEW_INSERT), valid = dpt_counter(t, HYP_C_COOKIE_VALID);

	snprintf(what, sizeof(what), "IPv%d Linux SYN", fam);
	struct synack sa = syn_roundtrip(t, fam, sport, opts_linux, sizeof(opts_linux), what);
	if (!sa.ok)
		return;
	TAP_EQ(dpt_flow(t, fam, IPPROTO_TCP, cli, sport, srv, PORT, &f, &est), -ENOENT,
	       "IPv%d: the answered SYN left no flow", fam);
	TAP_EQ(dpt_counter(t, HYP_C_CT_NEW_INSERT), news, "IPv%d: nothing inserted into flows_new", fam);

	/* a wrong cookie: one bit of the MAC, then one bit of the options byte */
	ack_build(&ack, fam, sport, sa.isn + 1 + 0x100, true, sa.tsval);
	TAP_EQ(run(t, &ack, out, &olen), XDP_DROP, "IPv%d: an ACK with a forged cookie is dropped", fam);
	ack_build(&ack, fam, sport, (sa.isn ^ 1) + 1, true, sa.tsval);
	TAP_EQ(run(t, &ack, out, &olen), XDP_DROP, "IPv%d: an ACK with altered cookie options is dropped", fam);
	TAP_CHECK(dpt_counter(t, HYP_C_COOKIE_INVALID) >= 2, "IPv%d: syncookies_invalid counted", fam);

	uint64_t pass_new = dpt_stat(t, HYP_R_PASS_NEW);
	ack_build(&ack, fam, sport, sa.isn + 1, true, sa.tsval);
	TAP_EQ(run(t, &ack, out, &olen), XDP_PASS_RC, "IPv%d: the ACK with our cookie passes", fam);
	TAP_EQ(dpt_stat(t, HYP_R_PASS_NEW), pass_new + 1, "IPv%d: ... as a new flow", fam);
	TAP_EQ(dpt_counter(t, HYP_C_COOKIE_VALID), valid + 1, "IPv%d: syncookies_valid counted", fam);
	TAP_CHECK(!dpt_flow(t, fam, IPPROTO_TCP, cli, sport, srv, PORT, &f, &est) && est &&
		  f.state == HYP_CT_ESTABLISHED, "IPv%d: the flow starts established (in flows)", fam);
	TAP_EQ(olen, (uint32_t)ack.len + sizeof(struct hyp_cookie_meta), "IPv%d: metadata in front of the ACK", fam);
	if (olen == (uint32_t)ack.len + sizeof(struct hyp_cookie_meta)) {
		struct hyp_cookie_meta m;

		memcpy(&m, out, sizeof(m));
		TAP_EQ(m.magic, (uint32_t)HYP_COOKIE_MAGIC, "IPv%d: meta magic", fam);
		TAP_EQ(m.mss, fam == 4 ? 1460 : 1440, "IPv%d: meta MSS from the cookie (client's 1460)", fam);
		TAP_EQ(m.snd_wscale, 7, "IPv%d: meta window scale from the cookie", fam);
		TAP_EQ(m.flags, 3, "IPv%d: meta SACK and timestamps", fam);
		TAP_EQ(m.tsecr, sa.tsval, "IPv%d: meta TSecr echoes our TSval", fam);
		TAP_EQ(m.tsval, 0x55667788u, "IPv%d: meta TSval is the client's", fam);
		TAP_EQ(m.l4_rel, fam == 4 ? 20 : 40, "IPv%d: meta TCP offset from the network header", fam);
		TAP_EQ(m.family, fam, "IPv%d: meta family", fam);
	}
	/* until the server speaks, the client's segments re-offer the cookie (its first ACK may have been
	 * dropped before the listener took it) */
	ack_build(&ack, fam, sport, sa.isn + 1, true, sa.tsval);
	TAP_EQ(run(t, &ack, out, &olen), XDP_PASS_RC, "IPv%d: the flow's next segment passes", fam);
	TAP_EQ(olen, (uint32_t)ack.len + sizeof(struct hyp_cookie_meta),
	       "IPv%d: ... re-offering the cookie while the server has sent nothing", fam);
	struct frame reply;
	seg_build(&reply, fam, srv, PORT, cli, sport, TH_ACK, sa.isn + 1, CSEQ + 1, NULL, 0);
	TAP_EQ(dpt_tc(t, reply.b, (uint32_t)reply.len), 0, "IPv%d: the server's first segment (tc egress)", fam);
	ack_build(&ack, fam, sport, sa.isn + 1, true, sa.tsval);
	TAP_EQ(run(t, &ack, out, &olen), XDP_PASS_RC, "IPv%d: the client's next segment passes", fam);
	TAP_EQ(olen, (uint32_t)ack.len, "IPv%d: ... without metadata once the server has spoken", fam);

	/* the connection is reset; the client reuses the 4-tuple for a new one, also through a cookie */
	struct frame rst;
	seg_build(&rst, fam, cli, sport, srv, PORT, TH_RST | TH_ACK, CSEQ + 1, sa.isn + 1, NULL, 0);
	TAP_EQ(run(t, &rst, out, &olen), XDP_PASS_RC, "IPv%d: the RST passes", fam);
	TAP_CHECK(!dpt_flow(t, fam, IPPROTO_TCP, cli, sport, srv, PORT, &f, &est) && f.state == HYP_CT_CLOSED,
		  "IPv%d: the flow is closed", fam);
	snprintf(what, sizeof(what), "IPv%d SYN reusing the 4-tuple", fam);
	struct synack sb = syn_roundtrip(t, fam, sport, opts_linux, sizeof(opts_linux), what);
	if (!sb.ok)
		return;
	ack_build(&ack, fam, sport, sb.isn + 1, true, sb.tsval);
	TAP_EQ(run(t, &ack, out, &olen), XDP_PASS_RC, "IPv%d: its cookie ACK passes", fam);
	TAP_EQ(olen, (uint32_t)ack.len + sizeof(struct hyp_cookie_meta), "IPv%d: ... with metadata for tc", fam);
	TAP_CHECK(!dpt_flow(t, fam, IPPROTO_TCP, cli, sport, srv, PORT, &f, &est) && est &&
		  f.state == HYP_CT_ESTABLISHED && f.packets[0] + f.packets[1] == 1,
		  "IPv%d: the closed flow was replaced by a new established one", fam);
}

static void test_clock(struct dpt *t)
{
	struct frame ack;
	uint8_t out[PKT_MAX];
	uint32_t olen;
	uint64_t base = t->cfg.clock_offset_ns;

	struct synack sa = syn_roundtrip(t, 4, 41000, opts_linux, sizeof(opts_linux), "clock SYN");
	if (!sa.ok)
		return;
	/* one tick later the cookie is the previous tick's: still good */
	t->cfg.clock_offset_ns = base + (1ull << TICK_NS_SHIFT);
	dpt_config_push(t);
	ack_build(&ack, 4, 41000, sa.isn + 1, true, sa.tsval);
	TAP_EQ(run(t, &ack, out, &olen), XDP_PASS_RC, "a cookie of the previous tick verifies");

	sa = syn_roundtrip(t, 4, 41001, opts_linux, sizeof(opts_linux), "clock SYN 2");
	t->cfg.clock_offset_ns = base + (3ull << TICK_NS_SHIFT);
	dpt_config_push(t);
	ack_build(&ack, 4, 41001, sa.isn + 1, true, sa.tsval);
	TAP_EQ(run(t, &ack, out, &olen), XDP_DROP, "a cookie two ticks old (> 137 s) is refused");
	t->cfg.clock_offset_ns = base;
	dpt_config_push(t);
}

static void test_no_timestamps(struct dpt *t)
{
	struct frame ack;
	uint8_t out[PKT_MAX];
	uint32_t olen;

	struct synack sa = syn_roundtrip(t, 4, 42000, opts_windows, sizeof(opts_windows), "Windows SYN");
	if (!sa.ok)
		return;
	ack_build(&ack, 4, 42000, sa.isn + 1, false, 0);
	TAP_EQ(run(t, &ack, out, &olen), XDP_PASS_RC, "no timestamps: the ACK verifies");
	if (olen == (uint32_t)ack.len + sizeof(struct hyp_cookie_meta)) {
		struct hyp_cookie_meta m;

		memcpy(&m, out, sizeof(m));
		TAP_EQ(m.flags, 1, "no timestamps: SACK only");
		TAP_EQ(m.snd_wscale, 8, "no timestamps: the window scale still comes from the cookie");
		TAP_EQ(m.mss, 1460, "no timestamps: MSS from the cookie");
	} else {
		TAP_CHECK(0, "no timestamps: metadata present");
	}

	/* no options at all: MSS 536 in the cookie, no window scale, no SACK */
	struct frame syn;
	seg_build(&syn, 4, cli4, 42001, srv4, PORT, TH_SYN, CSEQ, 0, NULL, 0);
	TAP_EQ(run(t, &syn, out, &olen), XDP_TX_RC, "a bare 54-byte SYN is answered (the frame grows)");
	TAP_EQ(olen, 74u, "bare SYN: the reply is 74 bytes");
	TAP_CHECK(pkt_l4_csum_ok(out, 4, 14, 34, IPPROTO_TCP, 40), "bare SYN: TCP checksum verifies");
	TAP_EQ(opt_find(out + 34, 3), -1, "bare SYN: no window scale in the reply (RFC 7323)");
	TAP_EQ(opt_find(out + 34, 8), -1, "bare SYN: no timestamps in the reply");
	ack_build(&ack, 4, 42001, be32(out + 34 + 4) + 1, false, 0);
	TAP_EQ(run(t, &ack, out, &olen), XDP_PASS_RC, "bare SYN: its ACK verifies");
	if (olen == (uint32_t)ack.len + sizeof(struct hyp_cookie_meta)) {
		struct hyp_cookie_meta m;

		memcpy(&m, out, sizeof(m));
		TAP_EQ(m.mss, 536, "bare SYN: MSS 536");
		TAP_EQ(m.snd_wscale, HYP_COOKIE_WSCALE_NONE, "bare SYN: no window scale");
		TAP_EQ(m.flags, 0, "bare SYN: no SACK, no timestamps");
	}
}

/* One SYN with opt[0..optlen), its cookie ACK, and what the cookie carried to tc ingress. */
static void layout_check(struct dpt *t, uint16_t sport, const uint8_t *opt, int optlen, const char *name,
			 uint16_t mss, uint8_t wscale, uint8_t flags)
{
	struct frame ack;
	uint8_t out[PKT_MAX];
	uint32_t olen = 0;
	struct hyp_cookie_meta m;
	struct synack sa = syn_roundtrip(t, 4, sport, opt, optlen, name);

	if (!sa.ok)
		return;
	ack_build(&ack, 4, sport, sa.isn + 1, flags & 2, sa.tsval);
	TAP_EQ(run(t, &ack, out, &olen), XDP_PASS_RC, "%s: the ACK verifies", name);
	if (olen != (uint32_t)ack.len + sizeof(m)) {
		TAP_CHECK(0, "%s: metadata in front of the ACK", name);
		return;
	}
	memcpy(&m, out, sizeof(m));
	TAP_EQ(m.mss, mss, "%s: MSS %u from the cookie", name, mss);
	TAP_EQ(m.snd_wscale, wscale, "%s: window scale %u from the cookie", name, wscale);
	TAP_EQ(m.flags, flags, "%s: SACK/timestamp flags %u from the cookie", name, flags);
}

/* Option blocks: the layouts read with word compares and those walked agree on what they say. */
static void test_layouts(struct dpt *t)
{
	layout_check(t, 46001, opts_mss_only, sizeof(opts_mss_only), "MSS-only SYN", 1460, HYP_COOKIE_WSCALE_NONE, 0);
	layout_check(t, 46002, opts_linux_ws15, sizeof(opts_linux_ws15), "Linux SYN with window scale 15", 1460,
		     14, 3);
	layout_check(t, 46003, opts_macos, sizeof(opts_macos), "macOS SYN (walked)", 1460, 6, 3);
	layout_check(t, 46004, opts_no_sack, sizeof(opts_no_sack), "Linux layout without SACK (walked)", 1440, 7, 2);
	layout_check(t, 46005, opts_ws_first, sizeof(opts_ws_first), "window scale first (walked)", 1460, 5, 1);
}

static void test_refusals(struct dpt *t)
{
	struct frame syn;
	uint8_t out[PKT_MAX];
	uint32_t olen;
	uint64_t tx = dpt_stat(t, HYP_R_TX_SYNCOOKIE);

	seg_build(&syn, 4, cli4, 43000, srv4, CLOSED_PORT, TH_SYN, CSEQ, 0, opts_linux, sizeof(opts_linux));
	TAP_EQ(run(t, &syn, out, &olen), XDP_DROP, "closed port: the SYN is dropped, not answered");
	TAP_EQ(dpt_stat(t, HYP_R_TX_SYNCOOKIE), tx, "closed port: no cookie");

	/* IPv4 options: our reply writes a bare header, so the SYN goes to the stack */
	struct pkt_opts po = { .family = 4, .src = cli4, .dst = srv4, .proto = IPPROTO_TCP, .sport = 43001,
			       .dport = PORT, .tcp_flags = TH_SYN, .seq = CSEQ, .ip_opts_len = 4 };
	uint64_t fb = dpt_counter(t, HYP_C_COOKIE_FALLBACK);
	syn.len = pkt_build_layout(&po, syn.b, sizeof(syn.b), &syn.lay);
	TAP_EQ(run(t, &syn, out, &olen), XDP_PASS_RC, "IPv4 options: the SYN goes to the stack");
	TAP_EQ(dpt_counter(t, HYP_C_COOKIE_FALLBACK), fb + 1, "IPv4 options: syncookies_fallback counted");

	t->cfg.mode = HYP_MODE_MONITOR;
	dpt_config_push(t);
	seg_build(&syn, 4, cli4, 43002, srv4, PORT, TH_SYN, CSEQ, 0, opts_linux, sizeof(opts_linux));
	TAP_EQ(run(t, &syn, out, &olen), XDP_PASS_RC, "monitor mode: SYNs go to the stack");
	t->cfg.mode = HYP_MODE_ENFORCE;
	t->cfg.syn_cookies = 0;
	dpt_config_push(t);
	seg_build(&syn, 4, cli4, 43003, srv4, PORT, TH_SYN, CSEQ, 0, opts_linux, sizeof(opts_linux));
	TAP_EQ(run(t, &syn, out, &olen), XDP_PASS_RC, "syn_cookies off: SYNs go to the stack");
	TAP_EQ(dpt_stat(t, HYP_R_TX_SYNCOOKIE), tx, "no cookie in any of these cases");
	t->cfg.syn_cookies = 1;
	dpt_config_push(t);

	/* the answer is a tail call (hyp_xdp_syn): with its slot empty the SYN takes the usual path */
	__u32 slot = 0;
	int sc_fd = bpf_map__fd(t->skel->maps.sc_prog), prog_fd = bpf_program__fd(t->skel->progs.hyp_xdp_syn);
	struct hyp_flow f;

	fb = dpt_counter(t, HYP_C_COOKIE_FALLBACK);
	TAP_EQ(bpf_map_delete_elem(sc_fd, &slot), 0, "tail call slot emptied");
	seg_build(&syn, 4, cli4, 43004, srv4, PORT, TH_SYN, CSEQ, 0, opts_linux, sizeof(opts_linux));
	TAP_EQ(run(t, &syn, out, &olen), XDP_PASS_RC, "empty slot: the SYN goes to the stack");
	TAP_EQ(dpt_counter(t, HYP_C_COOKIE_FALLBACK), fb + 1, "empty slot: syncookies_fallback counted");
	TAP_CHECK(!dpt_flow(t, 4, IPPROTO_TCP, cli4, 43004, srv4, PORT, &f, NULL) && f.state == HYP_CT_SYN_SENT,
		  "empty slot: conntrack tracks the SYN as usual");
	TAP_EQ(dpt_stat(t, HYP_R_TX_SYNCOOKIE), tx, "empty slot: no cookie");
	TAP_EQ(bpf_map_update_elem(sc_fd, &slot, &prog_fd, BPF_ANY), 0, "tail call slot restored");
	seg_build(&syn, 4, cli4, 43005, srv4, PORT, TH_SYN, CSEQ, 0, opts_linux, sizeof(opts_linux));
	TAP_EQ(run(t, &syn, out, &olen), XDP_TX, "slot restored: the SYN is answered again");
	TAP_EQ(dpt_stat(t, HYP_R_TX_SYNCOOKIE), tx + 1, "slot restored: counted tx_syncookie");
	TAP_EQ(dpt_counter(t, HYP_C_SEEN), dpt_stats_total(t), "books: seen == sum(stats) across the tail call");
}

/* A half-open flow that was reset (CLOSED, in flows_new): the stack holds nothing for it, so a new SYN on
 * the 4-tuple gets a cookie, and its ACK replaces the closed flow with an established one. */
static void test_closed_half_open(struct dpt *t)
{
	struct frame syn, rst, ack;
	uint8_t out[PKT_MAX];
	uint32_t olen;
	struct hyp_flow f;
	bool est = true;

	t->cfg.syn_cookies = 0;
	dpt_config_push(t);
	seg_build(&syn, 4, cli4, 44000, srv4, PORT, TH_SYN, CSEQ, 0, opts_linux, sizeof(opts_linux));
	run(t, &syn, out, &olen);
	seg_build(&rst, 4, cli4, 44000, srv4, PORT, TH_RST, CSEQ + 1, 0, NULL, 0);
	run(t, &rst, out, &olen);
	TAP_CHECK(!dpt_flow(t, 4, IPPROTO_TCP, cli4, 44000, srv4, PORT, &f, &est) && !est && f.state == HYP_CT_CLOSED,
		  "a reset half-open flow stays in flows_new, closed");
	t->cfg.syn_cookies = 1;
	dpt_config_push(t);
	struct synack sa = syn_roundtrip(t, 4, 44000, opts_linux, sizeof(opts_linux), "SYN on a closed half-open tuple");
	if (!sa.ok)
		return;
	ack_build(&ack, 4, 44000, sa.isn + 1, true, sa.tsval);
	TAP_EQ(run(t, &ack, out, &olen), XDP_PASS_RC, "its cookie ACK passes");
	TAP_EQ(olen, (uint32_t)ack.len + sizeof(struct hyp_cookie_meta), "... with metadata for tc ingress");
	TAP_CHECK(!dpt_flow(t, 4, IPPROTO_TCP, cli4, 44000, srv4, PORT, &f, &est) && est &&
		  f.state == HYP_CT_ESTABLISHED, "the closed flow was replaced by an established one");
}

static void test_flood(struct dpt *t)
{
	struct frame syn;
	uint8_t out[PKT_MAX];
	uint32_t olen;
	uint64_t news = dpt_counter(t, HYP_C_CT_NEW_INSERT), tx = dpt_stat(t, HYP_R_TX_SYNCOOKIE);
	int answered = 0;
	char src[32];

	for (int i = 0; i < FLOOD; i++) {
		snprintf(src, sizeof(src), "203.0.113.%d", i % 250 + 1);
		seg_build(&syn, 4, src, (uint16_t)(10000 + i), srv4, PORT, TH_SYN, (uint32_t)i * 7919u, 0, opts_linux,
			  sizeof(opts_linux));
		answered += run(t, &syn, out, &olen) == XDP_TX_RC;
	}
	TAP_EQ(answered, FLOOD, "a flood of %d SYNs is answered in XDP", FLOOD);
	TAP_EQ(dpt_stat(t, HYP_R_TX_SYNCOOKIE), tx + FLOOD, "stats count them as tx_syncookie");
	TAP_EQ(dpt_counter(t, HYP_C_CT_NEW_INSERT), news, "the flood inserted no flow");
}

/* One connection through a cookie, established both ways, then closed: the server's FIN first
 * (server_first) or the client's. */
static bool tw_connect_close(struct dpt *t, int fam, uint16_t sport, bool server_first, const char *what)
{
	const char *cli = fam == 4 ? cli4 : cli6, *srv = fam == 4 ? srv4 : srv6;
	struct frame seg;
	uint8_t out[PKT_MAX];
	uint32_t olen;
	struct hyp_flow f;
	bool est = false;
	struct synack sa = syn_roundtrip(t, fam, sport, opts_linux, sizeof(opts_linux), what);

	if (!sa.ok)
		return false;
	ack_build(&seg, fam, sport, sa.isn + 1, true, sa.tsval);
	run(t, &seg, out, &olen);
	seg_build(&seg, fam, srv, PORT, cli, sport, TH_ACK, sa.isn + 1, CSEQ + 1, NULL, 0);
	dpt_tc(t, seg.b, (uint32_t)seg.len);
	if (server_first) {
		seg_build(&seg, fam, srv, PORT, cli, sport, TH_FIN | TH_ACK, sa.isn + 1, CSEQ + 1, NULL, 0);
		dpt_tc(t, seg.b, (uint32_t)seg.len);
		seg_build(&seg, fam, cli, sport, srv, PORT, TH_FIN | TH_ACK, CSEQ + 1, sa.isn + 2, NULL, 0);
		run(t, &seg, out, &olen);
		seg_build(&seg, fam, srv, PORT, cli, sport, TH_ACK, sa.isn + 2, CSEQ + 2, NULL, 0);
		dpt_tc(t, seg.b, (uint32_t)seg.len);
	} else {
		seg_build(&seg, fam, cli, sport, srv, PORT, TH_FIN | TH_ACK, CSEQ + 1, sa.isn + 1, NULL, 0);
		run(t, &seg, out, &olen);
		seg_build(&seg, fam, srv, PORT, cli, sport, TH_FIN | TH_ACK, sa.isn + 1, CSEQ + 2, NULL, 0);
		dpt_tc(t, seg.b, (uint32_t)seg.len);
		seg_build(&seg, fam, cli, sport, srv, PORT, TH_ACK, CSEQ + 2, sa.isn + 2, NULL, 0);
		run(t, &seg, out, &olen);
	}
	TAP_CHECK(!dpt_flow(t, fam, IPPROTO_TCP, cli, sport, srv, PORT, &f, &est) && f.state == HYP_CT_TIME_WAIT,
		  "%s: the connection closed (%s first) into TIME_WAIT", what, server_first ? "server" : "client");
	return f.state == HYP_CT_TIME_WAIT;
}

/*
 * The server closed first: its socket holds the 4-tuple in TIME_WAIT, and only the stack can reuse it
 * for a new SYN (a cookie's ACK would meet the TIME_WAIT socket). So a SYN on that tuple goes to the
 * stack for HYP_SC_CLOSED_WINDOW; one on a tuple the client closed first still gets a cookie.
 */
static void test_time_wait(struct dpt *t, int fam)
{
	const char *cli = fam == 4 ? cli4 : cli6, *srv = fam == 4 ? srv4 : srv6;
	uint16_t srv_closed = (uint16_t)(fam == 4 ? 45000 : 45001), cli_closed = (uint16_t)(srv_closed + 100);
	struct frame syn;
	uint8_t out[PKT_MAX];
	uint32_t olen;
	char what[80];
	struct hyp_flow f;
	bool est = true;

	snprintf(what, sizeof(what), "IPv%d TIME_WAIT tuple", fam);
	if (!tw_connect_close(t, fam, srv_closed, true, what))
		return;
	snprintf(what, sizeof(what), "IPv%d tuple the client closed", fam);
	if (!tw_connect_close(t, fam, cli_closed, false, what))
		return;

	uint64_t tw = dpt_counter(t, HYP_C_COOKIE_TIME_WAIT), tx = dpt_stat(t, HYP_R_TX_SYNCOOKIE),
		 pass_new = dpt_stat(t, HYP_R_PASS_NEW);
	seg_build(&syn, fam, cli, srv_closed, srv, PORT, TH_SYN, CSEQ + 100000, 0, opts_linux, sizeof(opts_linux));
	TAP_EQ(run(t, &syn, out, &olen), XDP_PASS_RC, "IPv%d: a SYN reusing the server's TIME_WAIT tuple passes "
	       "to the stack", fam);
	TAP_EQ(dpt_stat(t, HYP_R_TX_SYNCOOKIE), tx, "IPv%d: ... without a cookie", fam);
	TAP_EQ(dpt_counter(t, HYP_C_COOKIE_TIME_WAIT), tw + 1, "IPv%d: ... counted in syncookies_time_wait", fam);
	TAP_EQ(dpt_stat(t, HYP_R_PASS_NEW), pass_new + 1, "IPv%d: ... as a new flow", fam);
	TAP_CHECK(!dpt_flow(t, fam, IPPROTO_TCP, cli, srv_closed, srv, PORT, &f, &est) && !est &&
		  f.state == HYP_CT_SYN_SENT, "IPv%d: ... which replaced the TIME_WAIT one", fam);

	snprintf(what, sizeof(what), "IPv%d SYN reusing a tuple the client closed first", fam);
	syn_roundtrip(t, fam, cli_closed, opts_linux, sizeof(opts_linux), what);
	snprintf(what, sizeof(what), "IPv%d SYN from another port of the same client", fam);
	syn_roundtrip(t, fam, (uint16_t)(srv_closed + 1), opts_linux, sizeof(opts_linux), what);

	/* the server's TIME_WAIT lasts 60 s: past the window the tuple gets cookies again */
	uint64_t base = t->cfg.clock_offset_ns;
	t->cfg.clock_offset_ns = base + 70 * 1000000000ull;
	dpt_config_push(t);
	snprintf(what, sizeof(what), "IPv%d SYN on the tuple 70 s after the server closed it", fam);
	syn_roundtrip(t, fam, srv_closed, opts_linux, sizeof(opts_linux), what);
	t->cfg.clock_offset_ns = base;
	dpt_config_push(t);
}

int main(void)
{
	struct dpt t;

	if (!dpt_open_or_report(&t, NULL))
		return tap_done();
	t.cfg.syn_cookies = 1;
	t.cfg.tcp_all_open = 0;
	t.cfg.tcp_ports[PORT / 64] |= 1ull << (PORT % 64);
	t.cfg.pickup = HYP_PICKUP_STRICT;
	TAP_EQ(dpt_config_push(&t), 0, "config with syn_cookies pushed");
	test_handshake(&t, 4);
	test_handshake(&t, 6);
	test_clock(&t);
	test_no_timestamps(&t);
	test_layouts(&t);
	test_refusals(&t);
	test_closed_half_open(&t);
	test_flood(&t);
	test_time_wait(&t, 4);
	test_time_wait(&t, 6);
	dpt_close(&t);
	return tap_done();
}
