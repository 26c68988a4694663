/* Payload signatures through the real XDP program: actions, TCP stream state, scope, depths, reloads. */
#include <errno.h>
#include <inttypes.h>
#include <linux/pkt_cls.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "tap.h"
#include "pkt.h"
#include "dptest.h"
#include "sigcompile.h"
#include "sigtest.h"
#include "rand.h"
#include "hyperion.skel.h"
#include "maps.h"

#define CLIENT4 "192.0.2.10"
#define SERVER4 "198.51.100.1"
#define CLIENT6 "2001:db8::10"
#define SERVER6 "2001:db8:1::1"
#define ISN 1000000u
#define NS_PER_S 1000000000ULL
#define PERF_REPEAT 20000       /* bpf_prog_test_run repetitions per measurement (information only) */
#define PERF_TRIES 3
#define RAND_PACKETS 300        /* random datagrams compared with the user-space reference */
#define RAND_PAY_MAX 400        /* > default scan_depth: truncation is exercised too */

static struct hyp_sigset set;   /* large: off the stack */
static struct hyp_sigdef defs[HYP_SIG_MAX];
static char err[256];

static void def_add(size_t i, const char *name, const char *pat, uint8_t action, uint8_t flags, uint8_t proto,
		    uint16_t port)
{
	sigdef_fill(&defs[i], name, pat, strlen(pat), action, flags, proto, port);
}

/* Compile defs[0..n) and open a fresh datapath with them loaded. */
static bool sig_open(struct dpt *t, size_t n, const char *what)
{
	int rc;

	sigset_free(&set);
	rc = sigset_compile(&set, defs, n, err, sizeof(err));
	if (rc) {
		TAP_CHECK(0, "%s: compile: %s", what, err);
		return false;
	}
	rc = dpt_open(t, 4096, 4096);
	if (rc) {
		TAP_CHECK(0, "%s: dpt_open: %s", what, strerror(-rc));
		return false;
	}
	rc = dpt_sigset_push(t, &set, false);
	if (rc) {
		TAP_CHECK(0, "%s: load signatures: %s", what, strerror(-rc));
		dpt_close(t);
		return false;
	}
	return true;
}

struct peer {
	int family;
	const char *client, *server;
	uint16_t sport, dport;
};

static int udp_pkt(const struct peer *p, const void *pay, uint32_t len, uint8_t *b)
{
	struct pkt_opts o = { .family = p->family, .src = p->client, .dst = p->server, .proto = IPPROTO_UDP,
			      .sport = p->sport, .dport = p->dport, .payload = pay, .payload_len = len };

	return pkt_build(&o, b, PKT_MAX);
}

static int tcp_pkt(const struct peer *p, bool out, uint8_t flags, uint32_t seq, const void *pay, uint32_t len,
		   uint8_t *b)
{
	struct pkt_opts o = { .family = p->family, .src = out ? p->server : p->client,
			      .dst = out ? p->client : p->server, .proto = IPPROTO_TCP,
			      .sport = out ? p->dport : p->sport, .dport = out ? p->sport : p->dport,
			      .tcp_flags = flags, .seq = seq, .ack = 1, .payload = pay, .payload_len = len };

	return pkt_build(&o, b, PKT_MAX);
}

/* SYN in through XDP, SYN-ACK out through tc, ACK in: an established flow. Returns the client's next seq. */
static uint32_t tcp_open(struct dpt *t, const struct peer *p)
{
	uint8_t b[PKT_MAX];
	int len;

	len = tcp_pkt(p, false, TH_SYN, ISN, NULL, 0, b);
	dpt_xdp(t, b, len);
	len = tcp_pkt(p, true, TH_SYN | TH_ACK, 5000, NULL, 0, b);
	dpt_tc(t, b, len);
	len = tcp_pkt(p, false, TH_ACK, ISN + 1, NULL, 0, b);
	dpt_xdp(t, b, len);
	return ISN + 1;
}

/* Send one data segment from the client; returns the XDP verdict and the stats entry that grew. */
static bool tcp_send(struct dpt *t, const struct peer *p, uint32_t seq, const char *pay, int want_rc,
		     unsigned want_stat, const char *what)
{
	uint8_t b[PKT_MAX];
	int len = tcp_pkt(p, false, TH_ACK | TH_PSH, seq, pay, strlen(pay), b);

	return dpt_expect(t, b, len, want_rc, want_stat, what);
}

static bool udp_send(struct dpt *t, const struct peer *p, const void *pay, uint32_t plen, int want_rc,
		     unsigned want_stat, const char *what)
{
	uint8_t b[PKT_MAX];
	int len = udp_pkt(p, pay, plen, b);

	return dpt_expect(t, b, len, want_rc, want_stat, what);
}

/* Each action through a UDP datagram: verdict, stats entry, match event with id, action, payload. */
static void test_actions(void)
{
	static const struct { const char *pay; uint8_t action; int rc; unsigned stat; } c[] = {
		{ "hello EVIL-ALERT there", HYP_ACT_ALERT, XDP_PASS, HYP_R_PASS_ALERT },
		{ "hello EVIL-DROP there", HYP_ACT_DROP, XDP_DROP, HYP_R_DROP_SIG },
		{ "hello EVIL-BAN there", HYP_ACT_BAN, XDP_DROP, HYP_R_DROP_SIG },
	};
	struct peer p = { 4, CLIENT4, SERVER4, 40000, 53 };
	struct dpt t;
	unsigned i;

	def_add(0, "alert", "EVIL-ALERT", HYP_ACT_ALERT, 0, 0, 0);
	def_add(1, "drop", "EVIL-DROP", HYP_ACT_DROP, 0, 0, 0);
	def_add(2, "ban", "EVIL-BAN", HYP_ACT_BAN, 0, 0, 0);
	if (!sig_open(&t, 3, "actions"))
		return;
	udp_send(&t, &p, "harmless", 8, XDP_PASS, HYP_R_PASS_NEW, "clean datagram passes");
	for (i = 0; i < 3; i++) {
		const struct hyp_event *ev;
		char what[64];
		int n;

		snprintf(what, sizeof(what), "action %u", c[i].action);
		/* a flow of its own each: a drop ends the flow it happens in (test_dropped_flow) */
		p.sport = (uint16_t)(40100 + i);
		dpt_events(&t);
		udp_send(&t, &p, c[i].pay, strlen(c[i].pay), c[i].rc, c[i].stat, what);
		dpt_events(&t);
		ev = dpt_event_find(&t, HYP_EV_MATCH, &n);
		TAP_CHECK(ev && n == 1, "%s: one match event", what);
		if (!ev)
			continue;
		TAP_EQ(ev->sig, i, "%s: event names the signature", what);
		TAP_EQ(ev->action, c[i].action, "%s: event carries the action", what);
		TAP_EQ(ev->verdict, c[i].rc == XDP_DROP ? HYP_V_DROP : HYP_V_PASS, "%s: event verdict", what);
		TAP_CHECK(ev->payload_len == strlen(c[i].pay) &&
			  !memcmp(ev->payload, c[i].pay, strlen(c[i].pay)), "%s: event carries the payload", what);
	}
	/* an alert early in a payload does not hide a drop later in it */
	p.sport = 40110;
	udp_send(&t, &p, "EVIL-ALERT then EVIL-DROP", 25, XDP_DROP, HYP_R_DROP_SIG, "alert then drop: drop wins");
	TAP_CHECK(dpt_counter(&t, HYP_C_SCAN_BYTES) > 0, "scanned bytes counted");
	dpt_close(&t);
}

static void test_tcp_stream(int family)
{
	struct peer p = { family, family == 6 ? CLIENT6 : CLIENT4, family == 6 ? SERVER6 : SERVER4, 40001, 80 };
	struct hyp_flow f;
	struct dpt t;
	uint32_t seq;
	char what[96];

	def_add(0, "split", "ATTACK-PATTERN", HYP_ACT_DROP, 0, 0, 0);
	if (!sig_open(&t, 1, "tcp stream"))
		return;
	seq = tcp_open(&t, &p);
	TAP_CHECK(dpt_flow(&t, family, IPPROTO_TCP, p.client, p.sport, p.server, p.dport, &f, NULL) == 0 &&
		  f.state == HYP_CT_ESTABLISHED, "v%d: handshake established the flow", family);
	snprintf(what, sizeof(what), "v%d: first half passes", family);
	tcp_send(&t, &p, seq, "GET /?q=ATTACK-", XDP_PASS, HYP_R_PASS_FLOW, what);
	seq += strlen("GET /?q=ATTACK-");
	snprintf(what, sizeof(what), "v%d: pattern split across in-order segments matches", family);
	tcp_send(&t, &p, seq, "PATTERN HTTP/1.1", XDP_DROP, HYP_R_DROP_SIG, what);
	/* the dropped segment never reached the receiver: its retransmission is judged the same way */
	snprintf(what, sizeof(what), "v%d: retransmission of the dropped segment is dropped too", family);
	tcp_send(&t, &p, seq, "PATTERN HTTP/1.1", XDP_DROP, HYP_R_DROP_SIG, what);
	snprintf(what, sizeof(what), "v%d: whole pattern in one segment", family);
	tcp_send(&t, &p, seq, "xxATTACK-PATTERNxx", XDP_DROP, HYP_R_DROP_SIG, what);

	/* out of order: a segment that does not start at next_seq restarts at state 0 */
	p.sport = 40002;
	seq = tcp_open(&t, &p);
	tcp_send(&t, &p, seq, "GET /?q=ATTACK-", XDP_PASS, HYP_R_PASS_FLOW, "ooo: first half passes");
	seq += strlen("GET /?q=ATTACK-");
	snprintf(what, sizeof(what), "v%d: segment with a gap does not continue the state", family);
	tcp_send(&t, &p, seq + 100, "PATTERN HTTP/1.1", XDP_PASS, HYP_R_PASS_FLOW, what);
	snprintf(what, sizeof(what), "v%d: ...nor does a retransmission overlapping the old one", family);
	tcp_send(&t, &p, seq - 3, "PATTERN HTTP/1.1", XDP_PASS, HYP_R_PASS_FLOW, what);
	dpt_close(&t);
}

static void test_nocase_and_scope(void)
{
	struct peer u = { 4, CLIENT4, SERVER4, 40010, 8080 };
	struct peer tcp80 = { 4, CLIENT4, SERVER4, 40011, 80 };
	struct peer tcp8080 = { 4, CLIENT4, SERVER4, 40012, 8080 };
	struct dpt t;
	uint32_t seq;

	def_add(0, "sqli", "select * from", HYP_ACT_DROP, HYP_SIGF_NOCASE, 0, 0);
	def_add(1, "exact", "Exact", HYP_ACT_DROP, 0, 0, 0);
	def_add(2, "tcp8080", "ADMIN-CMD", HYP_ACT_DROP, 0, IPPROTO_TCP, 8080);
	def_add(3, "udponly", "UDP-ONLY", HYP_ACT_DROP, 0, IPPROTO_UDP, 0);
	if (!sig_open(&t, 4, "nocase/scope"))
		return;
	udp_send(&t, &u, "q=SeLeCt * FROM users", 21, XDP_DROP, HYP_R_DROP_SIG, "nocase: mixed case matches");
	/* that flow is dropped now: each drop below is followed by a new source port */
	u.sport = 40013;
	udp_send(&t, &u, "q=select * fro", 14, XDP_PASS, HYP_R_PASS_NEW, "nocase: prefix does not");
	udp_send(&t, &u, "EXACT exact", 11, XDP_PASS, HYP_R_PASS_FLOW, "exact: other case does not match");
	udp_send(&t, &u, "so Exact", 8, XDP_DROP, HYP_R_DROP_SIG, "exact: same case matches");
	u.sport = 40014;
	udp_send(&t, &u, "ADMIN-CMD", 9, XDP_PASS, HYP_R_PASS_NEW, "scope: tcp-only sig ignores udp/8080");
	udp_send(&t, &u, "UDP-ONLY", 8, XDP_DROP, HYP_R_DROP_SIG, "scope: udp sig matches udp");
	seq = tcp_open(&t, &tcp80);
	tcp_send(&t, &tcp80, seq, "ADMIN-CMD", XDP_PASS, HYP_R_PASS_FLOW, "scope: tcp/8080 sig ignores tcp/80");
	tcp_send(&t, &tcp80, seq + 9, "UDP-ONLY", XDP_PASS, HYP_R_PASS_FLOW, "scope: udp sig ignores tcp");
	seq = tcp_open(&t, &tcp8080);
	tcp_send(&t, &tcp8080, seq, "ADMIN-CMD", XDP_DROP, HYP_R_DROP_SIG, "scope: tcp/8080 sig matches tcp/8080");
	dpt_close(&t);
}

static void test_scan_depth(void)
{
	struct peer u = { 4, CLIENT4, SERVER4, 40020, 53 };
	uint8_t pay[400];
	struct dpt t;

	def_add(0, "deep", "NEEDLE", HYP_ACT_DROP, 0, 0, 0);
	if (!sig_open(&t, 1, "scan depth"))
		return;
	t.cfg.scan_depth = 64;
	dpt_sigset_push(&t, &set, false);
	memset(pay, '.', sizeof(pay));
	memcpy(pay + 100, "NEEDLE", 6);
	udp_send(&t, &u, pay, sizeof(pay), XDP_PASS, HYP_R_PASS_NEW, "scan_depth 64: pattern at 100 not seen");
	memset(pay, '.', sizeof(pay));
	memcpy(pay + 60, "NEEDLE", 6);
	udp_send(&t, &u, pay, sizeof(pay), XDP_PASS, HYP_R_PASS_FLOW, "scan_depth 64: pattern across 64 not seen");
	memset(pay, '.', sizeof(pay));
	memcpy(pay + 58, "NEEDLE", 6);
	udp_send(&t, &u, pay, sizeof(pay), XDP_DROP, HYP_R_DROP_SIG, "scan_depth 64: pattern ending at 64 seen");
	TAP_EQ(dpt_counter(&t, HYP_C_SCAN_BYTES), 3 * 64, "scan_depth 64: 64 bytes stepped per datagram");

	/* TCP: a segment scanned only in part leaves no state behind, since the next segment does not
	 * continue the bytes that were stepped ("ATT" then, unscanned, "....", then "ACK") */
	{
		struct peer p = { 4, CLIENT4, SERVER4, 40021, 80 };
		uint32_t seq;

		def_add(0, "deep", "NEEDLE", HYP_ACT_DROP, 0, 0, 0);
		def_add(1, "attack", "ATTACK", HYP_ACT_DROP, 0, 0, 0);
		sigset_free(&set);
		if (sigset_compile(&set, defs, 2, err, sizeof(err)) == 0) {
			t.cfg.scan_depth = 10;
			dpt_sigset_push(&t, &set, false);
			seq = tcp_open(&t, &p);
			tcp_send(&t, &p, seq, "0123456ATT....", XDP_PASS, HYP_R_PASS_FLOW, "partial scan: passes");
			tcp_send(&t, &p, seq + 14, "ACK", XDP_PASS, HYP_R_PASS_FLOW,
				 "partial scan: next segment does not continue a state it does not follow");
			tcp_send(&t, &p, seq + 17, "0123ATT", XDP_PASS, HYP_R_PASS_FLOW, "fully scanned segment");
			tcp_send(&t, &p, seq + 24, "ACK", XDP_DROP, HYP_R_DROP_SIG, "...continues (control)");
		}
	}

	/* the ceiling: a 1500-byte payload with scan_depth HYP_SCAN_DEPTH_MAX finds a pattern at the end */
	{
		uint8_t big[1450];

		t.cfg.scan_depth = HYP_SCAN_DEPTH_MAX;
		dpt_sigset_push(&t, &set, false);
		memset(big, 'x', sizeof(big));
		memcpy(big + sizeof(big) - 6, "NEEDLE", 6);
		udp_send(&t, &u, big, sizeof(big), XDP_DROP, HYP_R_DROP_SIG, "max scan_depth: pattern at the end");
	}
	dpt_close(&t);
}

static void test_stream_depth(void)
{
	struct peer p = { 4, CLIENT4, SERVER4, 40030, 80 };
	char seg[61];
	struct hyp_flow f;
	struct dpt t;
	uint32_t seq;
	uint64_t skipped, hits;

	def_add(0, "late", "NEEDLE", HYP_ACT_DROP, 0, 0, 0);
	if (!sig_open(&t, 1, "stream depth"))
		return;
	t.cfg.stream_depth = 100;
	dpt_sigset_push(&t, &set, false);
	memset(seg, '.', 60);
	seg[60] = '\0';

	/* control: within the first 100 bytes of the stream the pattern is found, though the flow is on the
	 * fast path (bpf/vcache.h pass entry) for its segments without payload */
	seq = tcp_open(&t, &p);
	hits = dpt_counter(&t, HYP_C_VCACHE_HIT);
	tcp_send(&t, &p, seq, "", XDP_PASS, HYP_R_PASS_FLOW, "stream_depth: an empty segment passes");
	tcp_send(&t, &p, seq, "", XDP_PASS, HYP_R_PASS_FLOW, "stream_depth: another");
	TAP_EQ(dpt_counter(&t, HYP_C_VCACHE_HIT), hits + 2, "stream_depth: ... both on the fast path");
	tcp_send(&t, &p, seq, seg, XDP_PASS, HYP_R_PASS_FLOW, "stream_depth: first 60 bytes pass");
	memcpy(seg + 10, "NEEDLE", 6);
	tcp_send(&t, &p, seq + 60, seg, XDP_DROP, HYP_R_DROP_SIG, "stream_depth: pattern at 70..76 dropped");
	TAP_EQ(dpt_counter(&t, HYP_C_VCACHE_HIT), hits + 2,
	       "stream_depth: the fast path let no payload under the depth past the scanner");

	/* past 100 bytes: not inspected, then the fast path */
	p.sport = 40031;
	seq = tcp_open(&t, &p);
	memset(seg, '.', 60);
	tcp_send(&t, &p, seq, seg, XDP_PASS, HYP_R_PASS_FLOW, "stream_depth: 60 bytes");
	memcpy(seg + 45, "NEEDLE", 6);
	tcp_send(&t, &p, seq + 60, seg, XDP_PASS, HYP_R_PASS_FLOW, "stream_depth: pattern at 105 not seen");
	TAP_CHECK(dpt_flow(&t, 4, IPPROTO_TCP, p.client, p.sport, p.server, p.dport, &f, NULL) == 0 &&
		  (f.flags & (HYP_FF_SCAN_DONE_0 | HYP_FF_SCAN_DONE_1)) && f.scanned[0] + f.scanned[1] == 100,
		  "stream_depth: flow marked done after exactly 100 bytes");
	skipped = dpt_counter(&t, HYP_C_SCAN_SKIPPED);
	memcpy(seg, "NEEDLE", 6);
	hits = dpt_counter(&t, HYP_C_VCACHE_HIT);
	tcp_send(&t, &p, seq + 120, seg, XDP_PASS, HYP_R_PASS_FLOW, "stream_depth: later segment not scanned");
	TAP_EQ(dpt_counter(&t, HYP_C_SCAN_SKIPPED), skipped + 1, "stream_depth: skipped packet counted");
	TAP_EQ(dpt_counter(&t, HYP_C_VCACHE_HIT), hits + 1, "stream_depth: ... passed by the fast path");
	/* the other direction of the flow has its own budget */
	{
		uint8_t b[PKT_MAX];
		int len = tcp_pkt(&p, true, TH_ACK, 5001, "NEEDLE", 6, b);

		dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_SIG, "stream_depth: reverse direction still scanned");
	}
	dpt_close(&t);
}

/* A drop-signature match drops the flow's sender for the flow's life (HYP_FF_DROP): later packets,
 * clean or empty, end as the same signature; the other side, other flows and an allowlisted source
 * are not affected. Repeats, with payload or without, come from the per-CPU verdict cache (bpf/vcache.h). */
static void test_dropped_flow(void)
{
	struct peer u = { 4, CLIENT4, SERVER4, 40200, 53 };
	struct peer reply = { 4, SERVER4, CLIENT4, 53, 40200 };
	struct peer tp = { 4, CLIENT4, SERVER4, 40201, 80 };
	const struct hyp_event *ev;
	struct hyp_flow f;
	uint64_t hits;
	struct dpt t;
	uint32_t seq;
	uint8_t b[PKT_MAX];
	int len, i;

	def_add(0, "alert", "EVIL-ALERT", HYP_ACT_ALERT, 0, 0, 0);
	def_add(1, "ban", "EVIL-BAN", HYP_ACT_BAN, 0, 0, 0);
	if (!sig_open(&t, 2, "dropped flow"))
		return;
	udp_send(&t, &u, "EVIL-ALERT", 10, XDP_PASS, HYP_R_PASS_ALERT, "dropped flow: an alert does not end the flow");
	udp_send(&t, &u, "hello", 5, XDP_PASS, HYP_R_PASS_FLOW, "dropped flow: after an alert, clean passes");
	udp_send(&t, &u, "x EVIL-BAN", 10, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: the match drops");
	TAP_CHECK(dpt_flow(&t, 4, IPPROTO_UDP, u.client, u.sport, u.server, u.dport, &f, NULL) == 0 &&
		  (f.flags & HYP_FF_DROP) && f.drop_sig == 1 && f.drop_action == HYP_ACT_BAN,
		  "dropped flow: conntrack marks the flow with the signature and its action");
	hits = dpt_counter(&t, HYP_C_VCACHE_HIT);
	dpt_events(&t);
	udp_send(&t, &u, "hello", 5, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: a clean datagram of it drops");
	dpt_events(&t);
	ev = dpt_event_find(&t, HYP_EV_MATCH, NULL);
	TAP_CHECK(ev && ev->sig == 1 && ev->action == HYP_ACT_BAN && ev->payload_len == 5 &&
		  !memcmp(ev->payload, "hello", 5), "dropped flow: its match event names the flow's signature");
	TAP_EQ(dpt_counter(&t, HYP_C_VCACHE_HIT), hits + 1, "dropped flow: the repeat came from the verdict cache");
	udp_send(&t, &u, "", 0, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: an empty datagram drops");
	TAP_EQ(dpt_counter(&t, HYP_C_VCACHE_HIT), hits + 2, "dropped flow: ... from the verdict cache too");
	udp_send(&t, &reply, "answer", 6, XDP_PASS, HYP_R_PASS_FLOW, "dropped flow: the other side still passes");
	u.sport = 40202;
	udp_send(&t, &u, "hello", 5, XDP_PASS, HYP_R_PASS_NEW, "dropped flow: another flow of the source passes");
	u.sport = 40200;
	TAP_CHECK(dpt_flow(&t, 4, IPPROTO_UDP, u.client, u.sport, u.server, u.dport, &f, NULL) == 0 &&
		  f.packets[0] + f.packets[1] >= 4, "dropped flow: conntrack still counts its packets");

	/* a reload: still dropped, but an id of the old generation no longer names a signature */
	dpt_sigset_push(&t, &set, false);
	dpt_events(&t);
	udp_send(&t, &u, "hello", 5, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: still dropped after a reload");
	dpt_events(&t);
	ev = dpt_event_find(&t, HYP_EV_MATCH, NULL);
	TAP_CHECK(ev && ev->sig == HYP_EV_NO_SIG && ev->action == HYP_ACT_BAN,
		  "dropped flow: after a reload its events name no signature (ids are per generation)");
	dpt_sigset_push(&t, &set, false);   /* back in the first generation slot: still another config */
	dpt_events(&t);
	udp_send(&t, &u, "hello", 5, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: still dropped after two reloads");
	dpt_events(&t);
	ev = dpt_event_find(&t, HYP_EV_MATCH, NULL);
	TAP_CHECK(ev && ev->sig == HYP_EV_NO_SIG, "dropped flow: after two reloads still no signature id");
	/* a gateway sees both sides on ingress: the other side's own match adds it, keeps the first */
	udp_send(&t, &reply, "EVIL-BAN back", 13, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: the other side's match drops");
	udp_send(&t, &u, "hello", 5, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: the first side stays dropped");
	udp_send(&t, &reply, "answer", 6, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: the other side now too");
	TAP_CHECK(dpt_flow(&t, 4, IPPROTO_UDP, u.client, u.sport, u.server, u.dport, &f, NULL) == 0 &&
		  f.drop_dirs == 3, "dropped flow: both directions marked");

	/* TCP: the pure ACK after the match has no payload and finds the mark in conntrack */
	seq = tcp_open(&t, &tp);
	tcp_send(&t, &tp, seq, "GET EVIL-BAN", XDP_DROP, HYP_R_DROP_SIG, "dropped flow: TCP match drops");
	len = tcp_pkt(&tp, false, TH_ACK, seq, NULL, 0, b);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: then a pure ACK drops");
	tcp_send(&t, &tp, seq, "GET /index.html", XDP_DROP, HYP_R_DROP_SIG, "dropped flow: then clean data drops");
	len = tcp_pkt(&tp, true, TH_ACK, 5001, "ok", 2, b);
	TAP_EQ(dpt_tc(&t, b, len), TC_ACT_OK, "dropped flow: egress replies are never dropped");
	/* state changes are never answered from the cache: conntrack follows them */
	len = tcp_pkt(&tp, false, TH_ACK | TH_FIN, seq, "bye", 3, b);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: data with FIN drops");
	TAP_CHECK(dpt_flow(&t, 4, IPPROTO_TCP, tp.client, tp.sport, tp.server, tp.dport, &f, NULL) == 0 &&
		  f.state == HYP_CT_FIN_WAIT, "dropped flow: conntrack saw the FIN");
	len = tcp_pkt(&tp, false, TH_RST, seq, NULL, 0, b);
	dpt_expect(&t, b, len, XDP_DROP, HYP_R_DROP_SIG, "dropped flow: its RST drops");
	/* the 4-tuple reused by a new connection is a new flow, not the old drop */
	seq = tcp_open(&t, &tp);
	tcp_send(&t, &tp, seq, "GET /index.html", XDP_PASS, HYP_R_PASS_FLOW,
		 "dropped flow: a new connection on the reused 4-tuple passes");

	/* an allowlist entry ends the cached drop at once (the epoch), not a TTL later */
	TAP_EQ(dpt_allow(&t, CLIENT4 "/32"), 0, "dropped flow: allowlist the client");
	udp_send(&t, &u, "hello", 5, XDP_PASS, HYP_R_PASS_ALLOW, "dropped flow: allowlisted source passes at once");

	/* the cache is per-CPU memory only: with it off the verdict is the same, from conntrack */
	t.cfg.vcache = 0;
	dpt_sigset_push(&t, &set, false);
	hits = dpt_counter(&t, HYP_C_VCACHE_HIT);
	tp.client = "192.0.2.11";    /* not allowlisted */
	tp.sport = 40203;
	seq = tcp_open(&t, &tp);
	tcp_send(&t, &tp, seq, "EVIL-BAN", XDP_DROP, HYP_R_DROP_SIG, "vcache off: the match drops");
	for (i = 0; i < 3; i++)
		tcp_send(&t, &tp, seq, "clean", XDP_DROP, HYP_R_DROP_SIG, "vcache off: the flow stays dropped");
	TAP_EQ(dpt_counter(&t, HYP_C_VCACHE_HIT), hits, "vcache off: no cache hits");

	/* monitor mode drops nothing, so it marks nothing: the flow goes on being scanned */
	t.cfg.vcache = 1;
	t.cfg.mode = HYP_MODE_MONITOR;
	dpt_sigset_push(&t, &set, false);
	tp.sport = 40204;
	seq = tcp_open(&t, &tp);
	tcp_send(&t, &tp, seq, "EVIL-BAN", XDP_PASS, HYP_STATS_MONITOR + HYP_R_DROP_SIG, "monitor: the match passes");
	tcp_send(&t, &tp, seq + 8, "clean", XDP_PASS, HYP_R_PASS_FLOW, "monitor: the flow is not marked");
	TAP_EQ(dpt_counter(&t, HYP_C_SEEN), dpt_stats_total(&t), "dropped flow: books: seen == sum(stats)");
	dpt_close(&t);
}

/* Monitor mode: a drop signature passes (counted as MONITOR+DROP_SIG) and the segment, which reached
 * the receiver, advances the flow. */
static void test_monitor(void)
{
	struct peer p = { 4, CLIENT4, SERVER4, 40035, 80 };
	const struct hyp_event *ev;
	struct hyp_flow f;
	struct dpt t;
	uint32_t seq;

	def_add(0, "split", "ATTACK-PATTERN", HYP_ACT_DROP, 0, 0, 0);
	if (!sig_open(&t, 1, "monitor"))
		return;
	t.cfg.mode = HYP_MODE_MONITOR;
	dpt_sigset_push(&t, &set, false);
	seq = tcp_open(&t, &p);
	dpt_events(&t);
	tcp_send(&t, &p, seq, "xATTACK-PATTERN", XDP_PASS, HYP_STATS_MONITOR + HYP_R_DROP_SIG,
		 "monitor: drop signature passes");
	dpt_events(&t);
	ev = dpt_event_find(&t, HYP_EV_MATCH, NULL);
	TAP_CHECK(ev && ev->verdict == HYP_V_MONITOR && ev->sig == 0, "monitor: match event, verdict monitor");
	TAP_CHECK(dpt_flow(&t, 4, IPPROTO_TCP, p.client, p.sport, p.server, p.dport, &f, NULL) == 0 &&
		  f.next_seq[0] + f.next_seq[1] == seq + 15, "monitor: the passed segment advanced next_seq");
	dpt_close(&t);
}

static void test_generation_flip(void)
{
	struct peer p = { 4, CLIENT4, SERVER4, 40040, 80 };
	struct hyp_flow f;
	struct dpt t;
	uint32_t seq;

	def_add(0, "split", "ATTACK-PATTERN", HYP_ACT_DROP, 0, 0, 0);
	if (!sig_open(&t, 1, "generation flip"))
		return;
	seq = tcp_open(&t, &p);
	tcp_send(&t, &p, seq, "GET /?q=ATTACK-", XDP_PASS, HYP_R_PASS_FLOW, "gen: first half passes");
	TAP_CHECK(dpt_flow(&t, 4, IPPROTO_TCP, p.client, p.sport, p.server, p.dport, &f, NULL) == 0 &&
		  (f.dfa_state[0] | f.dfa_state[1]) != 0, "gen: the flow carries a non-start state");
	/* reload (same signatures): the flow's state belongs to the old generation's automaton */
	dpt_sigset_push(&t, &set, false);
	seq += strlen("GET /?q=ATTACK-");
	tcp_send(&t, &p, seq, "PATTERN HTTP/1.1", XDP_PASS, HYP_R_PASS_FLOW, "gen: state reset after a reload");
	TAP_EQ(dpt_counter(&t, HYP_C_GEN_MISMATCH), 1, "gen: mismatch counted once");
	tcp_send(&t, &p, seq + 16, "ATTACK-PATTERN", XDP_DROP, HYP_R_DROP_SIG, "gen: new generation matches");
	dpt_close(&t);
}

static void test_full_set(void)
{
	struct peer u6 = { 6, CLIENT6, SERVER6, 40050, 53 };
	struct peer u4 = { 4, CLIENT4, SERVER4, 40051, 53 };
	const struct hyp_event *ev;
	char pay[128];
	struct dpt t;
	size_t i;

	for (i = 0; i < HYP_SIG_MAX; i++) {
		char name[32], pat[HYP_PATTERN_MAX + 1];

		snprintf(name, sizeof(name), "s%zu", i);
		/* 64 bytes: a shared prefix makes the automaton work for it */
		snprintf(pat, sizeof(pat), "common-prefix-%03zu-%046zu", i, i * 7919);
		def_add(i, name, pat, HYP_ACT_DROP, i % 2 ? HYP_SIGF_NOCASE : 0, 0, 0);
	}
	if (!sig_open(&t, HYP_SIG_MAX, "256 sigs"))
		return;
	TAP_EQ(defs[HYP_SIG_MAX - 1].pattern_len, HYP_PATTERN_MAX, "256 sigs: patterns are 64 bytes");
	snprintf(pay, sizeof(pay), "xx%.*syy", HYP_PATTERN_MAX, (const char *)defs[HYP_SIG_MAX - 1].pattern);
	dpt_events(&t);
	udp_send(&t, &u4, pay, strlen(pay), XDP_DROP, HYP_R_DROP_SIG, "256 sigs: the last one matches (v4)");
	dpt_events(&t);
	ev = dpt_event_find(&t, HYP_EV_MATCH, NULL);
	TAP_CHECK(ev && ev->sig == HYP_SIG_MAX - 1, "256 sigs: event names signature 255");
	udp_send(&t, &u6, pay, strlen(pay), XDP_DROP, HYP_R_DROP_SIG, "256 sigs: the last one matches (v6)");
	dpt_events(&t);
	ev = dpt_event_find(&t, HYP_EV_MATCH, NULL);
	TAP_CHECK(ev && ev->sig == HYP_SIG_MAX - 1 && ev->family == HYP_AF_INET6, "256 sigs: v6 event");
	pay[10] ^= 1;
	u6.sport++;     /* the matched flow is dropped as a whole */
	udp_send(&t, &u6, pay, strlen(pay), XDP_PASS, HYP_R_PASS_NEW, "256 sigs: one byte off passes");
	dpt_close(&t);
}

/* The XDP stepper against the user-space reference (sigset_scan over the same tables) on random
 * datagrams: many overlapping matches, alerts mixed with drops, scopes, lengths across block edges. */
static void test_random_vs_reference(void)
{
	static const char alpha[] = "abAB-";
	static const uint16_t ports[] = { 53, 80 };
	static const uint8_t protos[] = { 0, IPPROTO_TCP, IPPROTO_UDP };
	struct peer u = { 4, CLIENT4, SERVER4, 40070, 53 };
	uint8_t pay[RAND_PAY_MAX];
	int i, bad = 0, hits = 0, drops = 0;
	size_t n = 24, k;
	struct dpt t;

	rand32_state = 4242;
	for (i = 0; i < (int)n; i++) {
		char pat[8];
		int len = 4 + rand32() % 4;   /* long enough that about half the datagrams match */

		for (k = 0; k < (size_t)len; k++)
			pat[k] = alpha[rand32() % 5];
		pat[len] = '\0';
		def_add(i, "rnd", pat, rand32() % 3, rand32() % 2 ? HYP_SIGF_NOCASE : 0, protos[rand32() % 3],
			rand32() % 3 ? 0 : ports[rand32() % 2]);
	}
	if (!sig_open(&t, n, "random"))
		return;
	for (i = 0; i < RAND_PACKETS; i++) {
		uint8_t b[PKT_MAX];
		uint32_t plen = 1 + rand32() % sizeof(pay), scanned;
		uint16_t st = 0;
		int want, rc, idx, len, want_stat;
		const struct hyp_event *ev;

		u.dport = ports[i % 2];
		u.sport = (uint16_t)(41000 + i);   /* a new flow each: a drop would end a shared one */
		for (k = 0; k < plen; k++)     /* x, y, z: never in a pattern, so not every datagram hits */
			pay[k] = "abAB-xyz"[rand32() % 8];
		scanned = plen < t.cfg.scan_depth ? plen : t.cfg.scan_depth;
		want = sigset_scan(&set, &st, pay, scanned, IPPROTO_UDP, u.dport);
		want_stat = want < 0 ? HYP_R_PASS_NEW :
			    set.sigs[want].action == HYP_ACT_ALERT ? HYP_R_PASS_ALERT : HYP_R_DROP_SIG;
		len = udp_pkt(&u, pay, plen, b);
		dpt_events(&t);
		idx = dpt_xdp_reason(&t, b, len, &rc);
		dpt_events(&t);
		ev = dpt_event_find(&t, HYP_EV_MATCH, NULL);
		hits += want >= 0;
		drops += want_stat == HYP_R_DROP_SIG;
		if (idx != want_stat || (want >= 0 && (!ev || ev->sig != (uint32_t)want)) || (want < 0 && ev)) {
			if (!bad)
				printf("# packet %d (%u bytes, port %u): want sig %d (%s), got %s, event sig %d\n", i,
				       plen, u.dport, want, dpt_stat_name(want_stat), dpt_stat_name(idx),
				       ev ? (int)ev->sig : -1);
			bad++;
		}
	}
	TAP_EQ(bad, 0, "random: XDP verdict and signature equal the reference on %d datagrams", RAND_PACKETS);
	TAP_CHECK(hits > RAND_PACKETS / 4 && drops > 0 && drops < hits,
		  "random: the mix exercises matches (%d), drops (%d) and alerts", hits, drops);
	dpt_close(&t);
}

/* ns per packet the kernel measures for one UDP frame, best of PERF_TRIES (information, not asserted:
 * the machine is shared, the best run is the least disturbed one). */
static double perf_run(struct dpt *t, const uint8_t *frame, int len)
{
	double best = -1;
	int i;

	for (i = 0; i < PERF_TRIES; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = len,
			    .repeat = PERF_REPEAT);

		if (bpf_prog_test_run_opts(t->xdp_fd, &opts))
			return -1;
		if (best < 0 || opts.duration < best)
			best = opts.duration;
	}
	return best;
}

static void perf_report(void)
{
	static const int sizes[] = { 16, 256, 1500 };
	static const size_t nsigs[] = { 1, HYP_SIG_MAX };
	struct peer u = { 4, CLIENT4, SERVER4, 40060, 53 };
	uint8_t pay[1500], b[PKT_MAX];
	unsigned si, ni;

	for (si = 0; si < sizeof(pay); si++)
		pay[si] = "abcdefghijklmnopqrstuvwxyz0123456789 /=&?"[(si * 7 + si / 13) % 41];
	for (ni = 0; ni < 2; ni++) {
		struct dpt t;
		size_t i;

		for (i = 0; i < nsigs[ni]; i++) {
			char name[32], pat[HYP_PATTERN_MAX + 1];

			snprintf(name, sizeof(name), "p%zu", i);
			snprintf(pat, sizeof(pat), "attack-%03zu-%zx", i, i * 2654435761u);
			def_add(i, name, pat, HYP_ACT_DROP, i % 2 ? HYP_SIGF_NOCASE : 0, 0, 0);
		}
		if (!sig_open(&t, nsigs[ni], "perf"))
			return;
		t.cfg.scan_depth = HYP_SCAN_DEPTH_MAX;
		dpt_sigset_push(&t, &set, false);
		for (si = 0; si < 3; si++) {
			int len = udp_pkt(&u, pay, sizes[si], b);
			double scan, noscan;

			scan = perf_run(&t, b, len);
			t.cfg.scan_depth = 0;
			dpt_sigset_push(&t, &set, false);
			noscan = perf_run(&t, b, len);
			t.cfg.scan_depth = HYP_SCAN_DEPTH_MAX;
			dpt_sigset_push(&t, &set, false);
			printf("# perf: %4d payload bytes, %3zu sigs (%u states): %.0f ns/packet scanning, "
			       "%.0f ns without scanning\n", sizes[si], nsigs[ni], set.nstates, scan, noscan);
		}
		dpt_close(&t);
	}
}

/* Totals of one event kind drained so far: events delivered and the suppressed counts they carry. */
struct ev_tally {
	uint64_t delivered, suppressed;
};

static void ev_tally_drain(struct dpt *t, struct ev_tally *match, struct ev_tally *block)
{
	dpt_events(t);
	for (int i = 0; i < t->nev; i++) {
		struct ev_tally *y = t->ev[i].kind == HYP_EV_MATCH ? match :
				     t->ev[i].kind == HYP_EV_BLOCK ? block : NULL;

		if (y) {
			y->delivered++;
			y->suppressed += t->ev[i].suppressed;
		}
	}
}

/* A cached drop's events are sampled by its verdict cache entry once the (source, kind) bucket ran
 * dry (bpf/vcache.h vc_ev): every event a flood asked for is either delivered or counted in the
 * suppressed field of a later one, through the entry's quiet periods ending and its end. Floods of a
 * dropped flow (MATCH) and of a banned source (BLOCK), for at least FLOOD_MIN_MS so that buckets
 * refill (the coarse clock moves every tick) and entries learn and hand over several times. */
#define FLOOD_MIN_MS 40
#define FLOOD_MAX 400000
#define FLOOD_EV_RATE 1000      /* per second: a token every millisecond */
static void test_cached_drop_events(void)
{
	struct peer u = { 4, CLIENT4, SERVER4, 40300, 53 };
	struct peer banned = { 4, "203.0.113.9", SERVER4, 40301, 53 };
	struct hyp_lpm4_key unban = { .prefixlen = 32, .addr = { 203, 0, 113, 9 } };
	struct ev_tally match = { 0, 0 }, block = { 0, 0 };
	uint8_t fu[PKT_MAX], fb[PKT_MAX];
	uint64_t t0, n = 0, hits0, bad = 0;
	int lu, lb;
	struct dpt t;

	def_add(0, "ban", "EVIL-BAN", HYP_ACT_BAN, 0, 0, 0);
	if (!sig_open(&t, 1, "cached drop events"))
		return;
	t.cfg.ev_rate = FLOOD_EV_RATE;
	t.cfg.ev_burst = 2;
	dpt_sigset_push(&t, &set, false);
	TAP_EQ(dpt_ban(&t, "203.0.113.9/32", 0, 1), 0, "cached drop events: ban a source");
	udp_send(&t, &u, "x EVIL-BAN", 10, XDP_DROP, HYP_R_DROP_SIG, "cached drop events: the match drops the flow");
	lu = udp_pkt(&u, "hello", 5, fu);
	lb = udp_pkt(&banned, "hello", 5, fb);
	hits0 = dpt_counter(&t, HYP_C_VCACHE_HIT);
	t0 = dpt_mono_ns();
	while (n < FLOOD_MAX && (n < 2000 || dpt_mono_ns() - t0 < FLOOD_MIN_MS * 1000000ull)) {
		bad += dpt_xdp(&t, fu, lu) != XDP_DROP;
		bad += dpt_xdp(&t, fb, lb) != XDP_DROP;
		if (++n % 64 == 0)
			ev_tally_drain(&t, &match, &block);
	}
	/* The ban lifted (what ban_del() does: delete, then bump the epoch): the source's entry ends at its
	 * next frame, which passes, and is not refilled: it hands its count over as it ends. */
	TAP_EQ(bpf_map_delete_elem(bpf_map__fd(t.skel->maps.bans4), &unban), 0, "cached drop events: unban");
	TAP_EQ(state_epoch_bump(bpf_map__fd(t.skel->maps.gen)), 0, "cached drop events: epoch bumped");
	TAP_EQ(dpt_xdp(&t, fb, lb), XDP_PASS, "cached drop events: the unbanned source passes");
	TAP_EQ(dpt_ban(&t, "203.0.113.9/32", 0, 1), 0, "cached drop events: banned again");
	/* a config push 10 s later: the flow's entry ends too (another serial); the next event of each
	 * pair carries what its entry held */
	t.cfg.clock_offset_ns += 10 * NS_PER_S;
	dpt_sigset_push(&t, &set, false);
	bad += dpt_xdp(&t, fu, lu) != XDP_DROP;
	bad += dpt_xdp(&t, fb, lb) != XDP_DROP;
	ev_tally_drain(&t, &match, &block);
	TAP_EQ(bad, 0, "cached drop events: %" PRIu64 " frames of each flood all dropped", n + 1);
	TAP_CHECK(dpt_counter(&t, HYP_C_VCACHE_HIT) - hits0 >= n,
		  "cached drop events: most of both floods came from the cache (%" PRIu64 " hits)",
		  dpt_counter(&t, HYP_C_VCACHE_HIT) - hits0);
	/* the first match event came before the tally started */
	TAP_EQ(match.delivered + match.suppressed, n + 2,
	       "cached drop events: MATCH delivered %" PRIu64 " + suppressed %" PRIu64 " == asked for",
	       match.delivered, match.suppressed);
	TAP_EQ(block.delivered + block.suppressed, n + 1,
	       "cached drop events: BLOCK delivered %" PRIu64 " + suppressed %" PRIu64 " == asked for",
	       block.delivered, block.suppressed);
	TAP_CHECK(match.delivered >= 10 && block.delivered >= 10,
		  "cached drop events: buckets refilled during the floods (%" PRIu64 ", %" PRIu64 " delivered)",
		  match.delivered, block.delivered);
	TAP_EQ(dpt_counter(&t, HYP_C_EV_SAMPLED), match.suppressed + block.suppressed,
	       "cached drop events: EV_SAMPLED == the suppressed counts delivered");
	dpt_close(&t);
}

int main(void)
{
	struct dpt probe;
	int rc = dpt_open(&probe, 0, 0);

	if (rc) {
		TAP_SKIP("cannot load the datapath (%s): need root and BPF", strerror(-rc));
		return tap_done();
	}
	dpt_close(&probe);
	test_actions();
	test_tcp_stream(4);
	test_tcp_stream(6);
	test_nocase_and_scope();
	test_scan_depth();
	test_stream_depth();
	test_monitor();
	test_dropped_flow();
	test_cached_drop_events();
	test_generation_flip();
	test_full_set();
	test_random_vs_reference();
	perf_report();
	sigset_free(&set);
	return tap_done();
}
