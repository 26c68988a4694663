/* runtime/maps.c, cidr.c, names.c: parsing, bans, allowlist, policy generations, flow keys, stats. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hyperion_abi.h"
#include "loader.h"
#include "log.h"
#include "maps.h"
#include "hyperion.skel.h"
#include "sigcompile.h"
#include "dptest.h"
#include "pkt.h"
#include "tap.h"

/* Bans loaded by the batch test: half IPv4 (198.18.0.0/15, the RFC 2544 benchmarking range, since the
 * TEST-NETs hold only 768 hosts), half IPv6 (2001:db8::/32). Only map contents: no packet uses them. */
#define BATCH_BANS 100000
/* Flows inserted to walk several BPF_MAP_LOOKUP_BATCH rounds. */
#define FLOWS_MANY 10000

static void test_cidr_parse(void)
{
	static const struct {
		const char *in;
		bool host_ok;
		int rc;
		int family, plen;
		const char *out;   /* cidr_format of the result */
	} cases[] = {
		{ "192.0.2.1", false, 0, 4, 32, "192.0.2.1" },
		{ "192.0.2.0/24", false, 0, 4, 24, "192.0.2.0/24" },
		{ "198.51.100.128/25", false, 0, 4, 25, "198.51.100.128/25" },
		{ "0.0.0.0/0", false, 0, 4, 0, "0.0.0.0/0" },
		{ "203.0.113.9/32", false, 0, 4, 32, "203.0.113.9" },
		{ "192.0.2.1/24", false, -EINVAL, 0, 0, NULL },      /* host bits set */
		{ "192.0.2.1/24", true, 0, 4, 24, "192.0.2.0/24" },  /* ... cleared when allowed */
		{ "192.0.2.0/33", false, -EINVAL, 0, 0, NULL },
		{ "192.0.2.0/", false, -EINVAL, 0, 0, NULL },
		{ "192.0.2.0/-1", false, -EINVAL, 0, 0, NULL },
		{ "192.0.2.0/+8", false, -EINVAL, 0, 0, NULL },
		{ "192.0.2.0/2a", false, -EINVAL, 0, 0, NULL },
		{ "192.0.2.0/0024", false, -EINVAL, 0, 0, NULL },
		{ "192.0.2", false, -EINVAL, 0, 0, NULL },
		{ "192.0.2.256", false, -EINVAL, 0, 0, NULL },
		{ "192.0.2.1 ", false, -EINVAL, 0, 0, NULL },
		{ " 192.0.2.1", false, -EINVAL, 0, 0, NULL },
		{ "", false, -EINVAL, 0, 0, NULL },
		{ "garbage", false, -EINVAL, 0, 0, NULL },
		{ "/24", false, -EINVAL, 0, 0, NULL },
		{ "2001:db8::1", false, 0, 6, 128, "2001:db8::1" },
		{ "2001:db8::/32", false, 0, 6, 32, "2001:db8::/32" },
		{ "2001:db8:1::/48", false, 0, 6, 48, "2001:db8:1::/48" },
		{ "::/0", false, 0, 6, 0, "::/0" },
		{ "2001:db8::1/64", false, -EINVAL, 0, 0, NULL },
		{ "2001:db8::1/64", true, 0, 6, 64, "2001:db8::/64" },
		{ "2001:db8::/129", false, -EINVAL, 0, 0, NULL },
		{ "2001:db8:::1", false, -EINVAL, 0, 0, NULL },
		{ "2001:db8::g", false, -EINVAL, 0, 0, NULL },
		{ "::ffff:192.0.2.1", false, 0, 6, 128, "::ffff:192.0.2.1" },
		{ "192.0.2.0/24/8", false, -EINVAL, 0, 0, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hyp_cidr c;
		char buf[64];
		int rc = cidr_parse(cases[i].in, &c, cases[i].host_ok);
		TAP_EQ(rc, cases[i].rc, "cidr_parse(\"%s\", host_bits %s) = %d", cases[i].in,
		       cases[i].host_ok ? "ok" : "no", cases[i].rc);
		if (rc || cases[i].rc)
			continue;
		cidr_format(&c, buf, sizeof(buf));
		TAP_CHECK(c.family == cases[i].family && c.prefixlen == cases[i].plen && !strcmp(buf, cases[i].out),
			  "\"%s\" -> family %d /%d \"%s\" (got %u /%u \"%s\")", cases[i].in, cases[i].family,
			  cases[i].plen, cases[i].out, c.family, c.prefixlen, buf);
		/* round trip: the formatted text parses back to the same value */
		struct hyp_cidr c2;
		TAP_CHECK(!cidr_parse(buf, &c2, false) && !memcmp(&c, &c2, sizeof(c)), "\"%s\" round-trips", buf);
	}
	char small[8];
	struct hyp_cidr c;
	cidr_parse("2001:db8::/32", &c, false);
	cidr_format(&c, small, sizeof(small));
	TAP_CHECK(strlen(small) == sizeof(small) - 1, "cidr_format truncates into a short buffer");
	TAP_EQ(cidr_parse(NULL, &c, false), -EINVAL, "cidr_parse(NULL) = -EINVAL");
}

static void test_names(void)
{
	int unknown = 0, dup = 0;

	for (unsigned i = 0; i < HYP_R_MAX; i++) {
		if (!strcmp(reason_name(i), "unknown"))
			unknown++;
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(reason_name(i), reason_name(j)))
				dup++;
	}
	TAP_CHECK(!unknown && !dup, "all %d reasons named, no duplicates", HYP_R_MAX);
	TAP_CHECK(!strcmp(reason_name(HYP_R_DROP_BANNED), "drop_banned") &&
		  !strcmp(reason_name(HYP_R_PASS_FLOW), "pass_flow") &&
		  !strcmp(reason_name(HYP_R_ABORTED), "aborted") &&
		  !strcmp(reason_name(HYP_R_TX_SYNCOOKIE), "tx_syncookie") &&
		  !strcmp(stats_verdict_name(HYP_R_TX_SYNCOOKIE), "tx"), "reason names match the enum");
	TAP_CHECK(!strcmp(reason_name(HYP_R_MAX), "unknown"), "reason out of range -> unknown");
	for (unsigned k = HYP_EV_MATCH; k < HYP_EV_KIND_MAX; k++)
		TAP_EQ(event_kind_parse(event_kind_name(k)), k, "event kind %s parses back", event_kind_name(k));
	TAP_EQ(event_kind_parse("flow_end"), HYP_EV_FLOW_END, "\"flow_end\" is HYP_EV_FLOW_END");
	TAP_EQ(event_kind_parse("bogus"), -EINVAL, "unknown event kind -> -EINVAL");
	TAP_EQ(event_kind_parse("unknown"), -EINVAL, "\"unknown\" is not a kind");
	TAP_CHECK(!strcmp(ct_state_name(HYP_CT_UDP_REPLIED), "udp_replied") &&
		  !strcmp(ct_state_name(HYP_CT_ESTABLISHED), "established") &&
		  !strcmp(ct_state_name(HYP_CT_NONE), "none"), "conntrack state names");
	TAP_CHECK(!strcmp(ct_state_name(99), "unknown"), "state out of range -> unknown");
}

static struct hyp_cidr C(const char *s)
{
	struct hyp_cidr c;

	if (cidr_parse(s, &c, false)) {
		fprintf(stderr, "bad test cidr %s\n", s);
		exit(2);
	}
	return c;
}

struct count_ctx {
	int n4, n6;
	int seen_target;
	struct hyp_cidr target;
};

static int count_ban_cb(const struct hyp_cidr *c, const struct hyp_ban *b, void *arg)
{
	struct count_ctx *x = arg;

	(void)b;
	if (c->family == HYP_AF_INET)
		x->n4++;
	else
		x->n6++;
	if (!memcmp(c, &x->target, sizeof(*c)))
		x->seen_target++;
	return 0;
}

static int stop_cb(const struct hyp_cidr *c, const struct hyp_ban *b, void *arg)
{
	(void)c;
	(void)b;
	(*(int *)arg)++;
	return 7;
}

static int count_allow_cb(const struct hyp_cidr *c, const struct hyp_allow *a, void *arg)
{
	struct count_ctx *x = arg;

	(void)a;
	if (!memcmp(c, &x->target, sizeof(*c)))
		x->seen_target++;
	x->n4 += c->family == HYP_AF_INET;
	x->n6 += c->family == HYP_AF_INET6;
	return 0;
}

/* Moves the datapath clock (and dp_now_ns) forward by writing clock_offset_ns into a new generation. */
static int clock_advance(struct hyp_dp *dp, __u64 ns)
{
	struct hyp_config *cfg = malloc(sizeof(*cfg));
	int err;

	if (!cfg)
		return -ENOMEM;
	err = dp_config_read(dp, cfg, NULL);
	cfg->clock_offset_ns += ns;
	if (!err)
		err = dp_config_apply(dp, cfg, NULL);
	free(cfg);
	return err;
}

static void test_bans(struct hyp_dp *dp)
{
	struct hyp_cidr c24 = C("192.0.2.0/24"), c25 = C("192.0.2.128/25"), which;
	struct hyp_ban b;
	__u8 a200[16] = {192, 0, 2, 200}, a5[16] = {192, 0, 2, 5}, other[16] = {198, 51, 100, 1};

	TAP_EQ(ban_add(dp, &c24, 0, 11), 0, "ban_add 192.0.2.0/24 permanent");
	TAP_EQ(ban_add(dp, &c25, 10, 12), 0, "ban_add 192.0.2.128/25 ttl 10 s");
	TAP_EQ(ban_get(dp, &c24, &b), 0, "ban_get /24");
	TAP_CHECK(b.reason == 11 && b.expires_ns == 0 && b.created_ns, "/24: reason 11, permanent, created set");
	TAP_EQ(ban_get(dp, &c25, &b), 0, "ban_get /25");
	__u64 now = dp_now_ns();
	TAP_CHECK(b.expires_ns > now + 9000000000ull && b.expires_ns <= now + 10000000000ull,
		  "/25 expires ~10 s from now");
	struct hyp_cidr c26 = C("192.0.2.0/26"), c32 = C("192.0.2.5");
	TAP_EQ(ban_get(dp, &c26, &b), -ENOENT, "ban_get of a covered but absent /26 is -ENOENT (exact)");
	TAP_EQ(ban_get(dp, &c32, &b), -ENOENT, "ban_get of a covered host is -ENOENT (exact)");

	TAP_EQ(ban_match(dp, HYP_AF_INET, a200, &which, &b), 1, "192.0.2.200 is banned");
	TAP_CHECK(!memcmp(&which, &c25, sizeof(which)) && b.reason == 12, "... by the longest prefix, the /25");
	TAP_EQ(ban_match(dp, HYP_AF_INET, a5, &which, &b), 1, "192.0.2.5 is banned");
	TAP_CHECK(!memcmp(&which, &c24, sizeof(which)) && b.reason == 11, "... by the /24");
	TAP_EQ(ban_match(dp, HYP_AF_INET, other, &which, &b), 0, "198.51.100.1 is not banned");

	/* Equal values at two lengths make the exact check ambiguous: the slow path must still be right. */
	struct hyp_cidr same[2] = { C("198.18.0.0/16"), C("198.18.0.0/17") };
	struct hyp_ban sv[2] = { { .reason = 5 }, { .reason = 5 } };
	TAP_EQ(ban_add_batch(dp, same, sv, 2), 2, "two bans with identical values");
	struct hyp_cidr c18 = C("198.18.0.0/18");
	TAP_EQ(ban_get(dp, &same[1], &b), 0, "ban_get /17 under an identical /16 finds it");
	TAP_EQ(ban_get(dp, &c18, &b), -ENOENT, "ban_get absent /18 under identical /17 is -ENOENT");
	ban_del(dp, &same[0]);
	ban_del(dp, &same[1]);

	/* IPv6 */
	struct hyp_cidr v6 = C("2001:db8:5::/48");
	__u8 a6[16];
	inet_pton(AF_INET6, "2001:db8:5::99", a6);
	TAP_EQ(ban_add(dp, &v6, 0, 3), 0, "ban_add 2001:db8:5::/48");
	TAP_EQ(ban_match(dp, HYP_AF_INET6, a6, &which, &b), 1, "2001:db8:5::99 is banned");
	TAP_CHECK(!memcmp(&which, &v6, sizeof(which)), "... by the /48");

	struct count_ctx x = { .target = c25 };
	TAP_EQ(ban_foreach(dp, count_ban_cb, &x), 0, "ban_foreach");
	TAP_CHECK(x.n4 == 2 && x.n6 == 1 && x.seen_target == 1, "ban_foreach saw 2 v4 + 1 v6, incl. /25 "
		  "(got %d + %d)", x.n4, x.n6);
	int calls = 0;
	TAP_EQ(ban_foreach(dp, stop_cb, &calls), 7, "ban_foreach stops and returns the callback's value");
	TAP_EQ(calls, 1, "... after one call");

	/* Expiry: move the datapath clock 20 s ahead. */
	TAP_EQ(clock_advance(dp, 20000000000ull), 0, "clock offset +20 s");
	TAP_EQ(ban_match(dp, HYP_AF_INET, a200, &which, &b), 1, "192.0.2.200 still banned after /25 expired");
	TAP_CHECK(!memcmp(&which, &c24, sizeof(which)), "... now by the /24 (expired /25 looked past)");
	TAP_EQ(ban_expire(dp, dp_now_ns()), 1, "ban_expire removes exactly the expired /25");
	TAP_EQ(ban_get(dp, &c25, &b), -ENOENT, "/25 gone");
	TAP_EQ(ban_get(dp, &c24, &b), 0, "permanent /24 kept");

	TAP_EQ(ban_del(dp, &c24), 0, "ban_del /24");
	TAP_EQ(ban_del(dp, &c24), -ENOENT, "ban_del /24 again is -ENOENT");
	TAP_EQ(ban_del(dp, &v6), 0, "ban_del v6 /48");
	TAP_EQ(ban_match(dp, HYP_AF_INET, a5, &which, &b), 0, "nothing banned any more");
	struct hyp_cidr bad = { .family = 4, .prefixlen = 33 };
	TAP_EQ(ban_add(dp, &bad, 0, 0), -EINVAL, "ban_add /33 is -EINVAL");
	TAP_EQ(ban_add(dp, &c24, UINT64_MAX / 1000, 0), -ERANGE, "ban_add with a TTL that would wrap the expiry is -ERANGE");
}

static __u32 epoch_read(struct hyp_dp *dp)
{
	__u32 k = HYP_GEN_EPOCH, v = 0;

	bpf_map_lookup_elem(dp->fd_gen, &k, &v);
	return v;
}

/* ban_expire() bumps the epoch when it removed something (a removed expired ban may uncover a shorter
 * live one, which must end the verdict cache's entries for its sources), and only then. */
static void test_expire_epoch(struct hyp_dp *dp)
{
	struct hyp_cidr c = C("198.18.7.0/24");
	__u32 e0;

	TAP_EQ(ban_add(dp, &c, 5, 9), 0, "ban_add 198.18.7.0/24 ttl 5 s");
	e0 = epoch_read(dp);
	TAP_EQ(ban_expire(dp, dp_now_ns()), 0, "ban_expire now: nothing due");
	TAP_EQ(epoch_read(dp), e0, "... the state epoch left alone");
	TAP_EQ(ban_expire(dp, dp_now_ns() + 6000000000ull), 1, "ban_expire 6 s later: the ban removed");
	TAP_EQ(epoch_read(dp), e0 + 1, "... and the state epoch bumped once");
}

static void test_allow(struct hyp_dp *dp)
{
	struct hyp_cidr a = C("203.0.113.0/24"), b6 = C("2001:db8:a::/64");
	struct count_ctx x = { .target = b6 };

	__u32 e0 = epoch_read(dp);

	TAP_EQ(allow_add(dp, &a), 0, "allow_add 203.0.113.0/24");
	TAP_EQ(epoch_read(dp), e0 + 1, "allow_add bumps the state epoch (ends cached drops of the source)");
	TAP_EQ(allow_add(dp, &b6), 0, "allow_add 2001:db8:a::/64");
	TAP_EQ(allow_foreach(dp, count_allow_cb, &x), 0, "allow_foreach");
	TAP_CHECK(x.n4 == 1 && x.n6 == 1 && x.seen_target == 1, "allow_foreach saw both");
	TAP_EQ(allow_del(dp, &a), 0, "allow_del v4");
	TAP_EQ(allow_del(dp, &a), -ENOENT, "allow_del v4 again is -ENOENT");
	TAP_EQ(allow_del(dp, &b6), 0, "allow_del v6");
}

static double elapsed_ms(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void test_ban_batch(struct hyp_dp *dp)
{
	struct hyp_cidr *c = calloc(BATCH_BANS, sizeof(*c));
	struct hyp_ban *v = calloc(BATCH_BANS, sizeof(*v));
	struct timespec t0, t1;
	__u64 now = dp_now_ns();

	if (!c || !v) {
		TAP_CHECK(0, "allocate batch");
		return;
	}
	for (unsigned i = 0; i < BATCH_BANS; i++) {
		if (i % 2 == 0) {
			unsigned h = i / 2;     /* 198.18.0.0/15 holds 131072 hosts */
			c[i].family = HYP_AF_INET;
			c[i].prefixlen = 32;
			c[i].addr[0] = 198;
			c[i].addr[1] = (__u8)(18 + (h >> 16));
			c[i].addr[2] = (__u8)(h >> 8);
			c[i].addr[3] = (__u8)h;
		} else {
			unsigned h = i / 2;
			c[i].family = HYP_AF_INET6;
			c[i].prefixlen = 128;
			c[i].addr[0] = 0x20; c[i].addr[1] = 0x01; c[i].addr[2] = 0x0d; c[i].addr[3] = 0xb8;
			c[i].addr[12] = (__u8)(h >> 24);
			c[i].addr[13] = (__u8)(h >> 16);
			c[i].addr[14] = (__u8)(h >> 8);
			c[i].addr[15] = (__u8)h;
		}
		v[i].created_ns = now;
		v[i].expires_ns = now + 3600000000000ull;
		v[i].reason = i;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int n = ban_add_batch(dp, c, v, BATCH_BANS);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TAP_EQ(n, BATCH_BANS, "ban_add_batch added %d bans (v4 + v6)", BATCH_BANS);
	printf("# ban_add_batch: %d bans in %.1f ms (%.0f ns/ban)\n", BATCH_BANS, elapsed_ms(&t0, &t1),
	       elapsed_ms(&t0, &t1) * 1e6 / BATCH_BANS);

	struct hyp_ban b;
	struct hyp_cidr which;
	TAP_EQ(ban_get(dp, &c[BATCH_BANS - 1], &b), 0, "last v6 ban present");
	TAP_EQ(b.reason, BATCH_BANS - 1, "... with its own value");
	TAP_EQ(ban_match(dp, HYP_AF_INET, c[BATCH_BANS - 2].addr, &which, &b), 1, "last v4 ban matches");
	TAP_EQ(b.reason, BATCH_BANS - 2, "... with its own value");

	struct count_ctx x = { .target = c[12345] };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ban_foreach(dp, count_ban_cb, &x);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TAP_CHECK(x.n4 == BATCH_BANS / 2 && x.n6 == BATCH_BANS / 2 && x.seen_target == 1,
		  "ban_foreach sees all %d (got %d + %d)", BATCH_BANS, x.n4, x.n6);
	printf("# ban_foreach over %d bans: %.1f ms\n", BATCH_BANS, elapsed_ms(&t0, &t1));

	clock_gettime(CLOCK_MONOTONIC, &t0);
	int expired = ban_expire(dp, now + 3600000000001ull);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TAP_EQ(expired, BATCH_BANS, "ban_expire one hour later removes all of them");
	printf("# ban_expire of %d bans: %.1f ms\n", BATCH_BANS, elapsed_ms(&t0, &t1));
	free(c);
	free(v);
}

static void test_config(struct hyp_dp *dp)
{
	struct hyp_config *d = malloc(sizeof(*d)), *cur = malloc(sizeof(*cur)), *raw = malloc(sizeof(*raw));
	__u32 g0, g1, k;

	config_defaults(d);
	TAP_CHECK(d->mode == HYP_MODE_ENFORCE && d->pickup == HYP_PICKUP_SOCKET && d->frag_policy == HYP_FRAG_PASS &&
		  d->scan_depth == HYP_SCAN_DEPTH_DEFAULT && d->stream_depth == 1u << 20 && d->capture_len == 64 &&
		  d->ev_rate == 20 && d->ev_burst == 40 && d->rl_v6_prefix == 64 && d->tcp_all_open &&
		  d->udp_all_open && !d->syn_rate && !d->pps_rate && d->vcache == 1, "config_defaults: documented values");
	TAP_CHECK(d->timeout_ns[HYP_CT_ESTABLISHED] == 5ull * 86400 * 1000000000ull &&
		  d->timeout_ns[HYP_CT_SYN_SENT] == 120000000000ull && d->timeout_ns[HYP_CT_UDP] == 30000000000ull &&
		  d->timeout_ns[HYP_CT_UDP_REPLIED] == 180000000000ull && d->timeout_ns[HYP_CT_CLOSED] == 10000000000ull,
		  "config_defaults: timeouts");
	TAP_CHECK(d->start_ns > 0 && d->pickup_grace_ns == 0, "config_defaults: start_ns now, no grace");

	TAP_EQ(dp_config_read(dp, cur, &g0), 0, "dp_config_read");
	TAP_CHECK(cur->tcp_all_open == 1 && cur->scan_depth == HYP_SCAN_DEPTH_DEFAULT &&
		  cur->timeout_ns[HYP_CT_ESTABLISHED] == d->timeout_ns[HYP_CT_ESTABLISHED],
		  "a fresh datapath starts with the defaults, not an all-zero config");
	d->mode = HYP_MODE_MONITOR;
	d->scan_depth = 512;
	d->clock_offset_ns = cur->clock_offset_ns;
	__u16 serial0 = cur->serial;
	d->serial = 999;    /* the caller's value is ignored: the serial is the datapath's count */
	TAP_EQ(dp_config_apply(dp, d, NULL), 0, "dp_config_apply (monitor, scan_depth 512)");
	TAP_EQ(dp_config_read(dp, cur, &g1), 0, "dp_config_read after apply");
	TAP_EQ(g1, g0 ^ 1, "generation flipped %u -> %u", g0, g0 ^ 1);
	TAP_EQ(cur->serial, (__u16)(serial0 + 1), "every apply gets the next config serial");
	TAP_CHECK(cur->mode == HYP_MODE_MONITOR && cur->scan_depth == 512, "new generation holds the new values");
	k = g0;
	bpf_map_lookup_elem(dp->fd_policy, &k, raw);
	TAP_CHECK(raw->mode == HYP_MODE_ENFORCE || raw->scan_depth != 512,
		  "old generation %u still holds the previous values", g0);

	/* Signatures: a 3-state automaton, written at the inactive generation's offset. */
	struct hyp_sigset *set = calloc(1, sizeof(*set));
	set->nsigs = 2;
	set->nstates = 3;
	set->sigs[0] = (struct hyp_sig){ .id = 0, .action = HYP_ACT_DROP, .active = 1 };
	set->sigs[1] = (struct hyp_sig){ .id = 1, .action = HYP_ACT_BAN, .proto = 6, .active = 1 };
	set->rows = calloc(3, sizeof(*set->rows));
	set->out = calloc(3, sizeof(*set->out));
	set->rows[0].next['a'] = 1;
	set->rows[1].next['b'] = 2 | HYP_DFA_ACCEPT;
	memset(set->out, 0xff, 3 * sizeof(*set->out));
	set->out[2].sig[0] = 1;
	d->mode = HYP_MODE_ENFORCE;
	TAP_EQ(dp_config_apply(dp, d, set), 0, "dp_config_apply with a signature set");
	__u32 g2;
	dp_config_read(dp, cur, &g2);
	TAP_EQ(g2, g0, "generation flipped back to %u", g0);
	TAP_CHECK(cur->nsigs == 2 && cur->dfa_states == 3, "cfg.nsigs/dfa_states come from the set");
	struct hyp_dfa_row row;
	struct hyp_dfa_out out;
	struct hyp_sig sig;
	k = g2 * HYP_DFA_STATES_MAX + 1;
	TAP_CHECK(!bpf_map_lookup_elem(dp->fd_dfa, &k, &row) && row.next['b'] == (2 | HYP_DFA_ACCEPT),
		  "dfa row 1 at generation offset");
	k = g2 * HYP_DFA_STATES_MAX + 2;
	TAP_CHECK(!bpf_map_lookup_elem(dp->fd_dfa_out, &k, &out) && out.sig[0] == 1 && out.sig[1] == 0xffff,
		  "dfa_out row 2 at generation offset");
	k = g2 * HYP_SIG_MAX + 1;
	TAP_CHECK(!bpf_map_lookup_elem(dp->fd_sigs, &k, &sig) && sig.action == HYP_ACT_BAN && sig.proto == 6,
		  "sig 1 at generation offset");

	/* NULL set keeps the active signatures: copied into the next generation. */
	TAP_EQ(dp_config_apply(dp, d, NULL), 0, "dp_config_apply without a set");
	__u32 g3;
	dp_config_read(dp, cur, &g3);
	k = g3 * HYP_DFA_STATES_MAX + 1;
	TAP_CHECK(g3 != g2 && cur->nsigs == 2 && cur->dfa_states == 3 &&
		  !bpf_map_lookup_elem(dp->fd_dfa, &k, &row) && row.next['b'] == (2 | HYP_DFA_ACCEPT),
		  "signatures carried into generation %u", g3);

	/* An empty set clears them. */
	struct hyp_sigset *empty = calloc(1, sizeof(*empty));
	TAP_EQ(dp_config_apply(dp, d, empty), 0, "dp_config_apply with an empty set");
	dp_config_read(dp, cur, NULL);
	TAP_CHECK(cur->nsigs == 0 && cur->dfa_states == 0, "empty set: no signatures");

	/* Invalid config: rejected, generation unchanged. */
	__u32 gb, ga;
	dp_config_read(dp, cur, &gb);
	d->scan_depth = HYP_SCAN_DEPTH_MAX + 1;
	TAP_EQ(dp_config_apply(dp, d, NULL), -EINVAL, "scan_depth above HYP_SCAN_DEPTH_MAX is -EINVAL");
	dp_config_read(dp, cur, &ga);
	TAP_EQ(ga, gb, "... and the generation did not move");

	free(set->rows);
	free(set->out);
	free(set);
	free(empty);
	free(d);
	free(cur);
	free(raw);
}

static int flow_count_cb(const struct hyp_flow_key *k, const struct hyp_flow *f, bool est, void *arg)
{
	int *n = arg;

	(void)k;
	if (f->state == HYP_CT_SYN_SENT && !est)
		n[0]++;
	if (f->state == HYP_CT_ESTABLISHED && est)
		n[1]++;
	return 0;
}

/* What the verdict cache's pass entries counted and have not carried to their flow (bpf/vcache.h) is
 * part of what user space reads of the flow: flow_lookup and flow_foreach add both sides' entries on every
 * CPU, and nothing else (a drop entry, another flow's entry, a flow's entry with nothing counted). */
struct pending_seen {
	struct hyp_flow_key k;
	struct hyp_flow f;
	int found;
};

static int pending_cb(const struct hyp_flow_key *k, const struct hyp_flow *f, bool est, void *arg)
{
	struct pending_seen *s = arg;

	(void)est;
	if (!memcmp(k, &s->k, sizeof(*k))) {
		s->f = *f;
		s->found++;
	}
	return 0;
}

static void vc_entry_put(struct hyp_dp *dp, const struct hyp_flow_key *k, int dir, int cpu, __u8 action, __u8 hits,
			 __u32 bytes, struct hyp_vcache *v, int ncpu)
{
	const __u8 *s = dir ? k->addr_b : k->addr_a, *d = dir ? k->addr_a : k->addr_b;
	__u16 sp = dir ? k->port_b : k->port_a, dp_ = dir ? k->port_a : k->port_b;
	__u32 slot = hyp_vcache_hash(s, d, sp, dp_, k->proto, k->family, 1) &
		     (bpf_map__max_entries(dp->skel->maps.vcache) - 1);

	memset(v, 0, (size_t)ncpu * sizeof(*v));
	bpf_map_lookup_elem(dp->fd_vcache, &slot, v);
	memcpy(v[cpu].saddr, s, 16);
	memcpy(v[cpu].daddr, d, 16);
	v[cpu].sport = sp;
	v[cpu].dport = dp_;
	v[cpu].proto = k->proto;
	v[cpu].family = k->family;
	v[cpu].action = action;
	v[cpu].hits = hits;
	v[cpu].bytes = bytes;
	v[cpu].until_ns = 1;
	bpf_map_update_elem(dp->fd_vcache, &slot, v, BPF_ANY);
}

static void test_flow_pending(struct hyp_dp *dp)
{
	static const __u8 a[16] = {192, 0, 2, 20}, b[16] = {198, 51, 100, 20};
	int ncpu = libbpf_num_possible_cpus(), dir;
	struct hyp_flow f = { .state = HYP_CT_ESTABLISHED, .packets = {10, 20}, .bytes = {1000, 2000} }, g;
	struct hyp_flow_key k, other;
	struct pending_seen s;
	struct hyp_vcache *v;

	if (ncpu < 1 || !(v = calloc((size_t)ncpu, sizeof(*v)))) {
		TAP_CHECK(0, "flow pending: CPU count %d", ncpu);
		return;
	}
	flow_key_make(&k, HYP_AF_INET, IPPROTO_TCP, a, htons(40000), b, htons(443), &dir);
	flow_key_make(&other, HYP_AF_INET, IPPROTO_TCP, a, htons(40001), b, htons(443), NULL);
	TAP_EQ(bpf_map_update_elem(dp->fd_flows, &k, &f, BPF_ANY), 0, "flow pending: a flow");
	TAP_EQ(bpf_map_update_elem(dp->fd_flows, &other, &f, BPF_ANY), 0, "flow pending: another");
	vc_entry_put(dp, &k, 0, 0, HYP_VC_PASS, 5, 500, v, ncpu);
	vc_entry_put(dp, &k, 1, ncpu - 1, HYP_VC_PASS_NOSCAN, 7, 700, v, ncpu);
	vc_entry_put(dp, &other, 0, 0, HYP_VC_PASS_DEPTH, 100, 10000, v, ncpu);
	TAP_EQ(flow_lookup(dp, &k, &g), 0, "flow pending: flow_lookup");
	TAP_CHECK(g.packets[0] == 15 && g.packets[1] == 27 && g.bytes[0] == 1500 && g.bytes[1] == 2700,
		  "flow pending: flow_lookup adds both sides' entries (packets %llu/%llu, bytes %llu/%llu)",
		  (unsigned long long)g.packets[0], (unsigned long long)g.packets[1],
		  (unsigned long long)g.bytes[0], (unsigned long long)g.bytes[1]);
	memset(&s, 0, sizeof(s));
	s.k = k;
	TAP_EQ(flow_foreach(dp, pending_cb, &s), 0, "flow pending: flow_foreach");
	TAP_CHECK(s.found == 1 && s.f.packets[0] == 15 && s.f.packets[1] == 27 && s.f.bytes[1] == 2700,
		  "flow pending: flow_foreach adds them too");
	s.k = other;
	s.found = 0;
	flow_foreach(dp, pending_cb, &s);
	TAP_CHECK(s.found == 1 && s.f.packets[0] == 110 && s.f.packets[1] == 20,
		  "flow pending: each flow gets its own entries only");
	/* a drop entry's fields mean other things; an entry with nothing counted adds nothing */
	vc_entry_put(dp, &k, 0, 0, HYP_ACT_DROP, 9, 900, v, ncpu);
	vc_entry_put(dp, &k, 1, ncpu - 1, HYP_VC_PASS, 0, 0, v, ncpu);
	TAP_EQ(flow_lookup(dp, &k, &g), 0, "flow pending: lookup again");
	TAP_CHECK(g.packets[0] == 10 && g.packets[1] == 20 && g.bytes[0] == 1000,
		  "flow pending: drop entries and empty pass entries add nothing");
	bpf_map_delete_elem(dp->fd_flows, &k);
	bpf_map_delete_elem(dp->fd_flows, &other);
	free(v);
}

static void test_flows(struct hyp_dp *dp)
{
	struct hyp_flow_key k1, k2;
	__u8 a[16] = {192, 0, 2, 10}, b[16] = {198, 51, 100, 20};
	int d1, d2;

	flow_key_make(&k1, HYP_AF_INET, 6, a, htons(40000), b, htons(80), &d1);
	flow_key_make(&k2, HYP_AF_INET, 6, b, htons(80), a, htons(40000), &d2);
	TAP_CHECK(!memcmp(&k1, &k2, sizeof(k1)), "v4 key is the same from both directions");
	TAP_CHECK(d1 == 0 && d2 == 1, "lower address is endpoint a (dir %d / %d)", d1, d2);
	TAP_CHECK(!memcmp(k1.addr_a, a, 16) && k1.port_a == htons(40000) && k1.proto == 6 &&
		  k1.family == HYP_AF_INET && !k1.pad[0] && !k1.pad[1], "key fields");

	/* Same address both sides: the port decides, compared as network-order bytes (= numerically). */
	flow_key_make(&k1, HYP_AF_INET, 17, a, htons(0x0102), a, htons(0x0201), &d1);
	flow_key_make(&k2, HYP_AF_INET, 17, a, htons(0x0201), a, htons(0x0102), &d2);
	TAP_CHECK(!memcmp(&k1, &k2, sizeof(k1)) && d1 == 0 && d2 == 1 && k1.port_a == htons(0x0102),
		  "same address: lower port (numeric) is endpoint a");

	__u8 x6[16], y6[16];
	inet_pton(AF_INET6, "2001:db8::2", x6);
	inet_pton(AF_INET6, "2001:db8::1", y6);
	flow_key_make(&k1, HYP_AF_INET6, 6, x6, htons(1234), y6, htons(443), &d1);
	flow_key_make(&k2, HYP_AF_INET6, 6, y6, htons(443), x6, htons(1234), &d2);
	TAP_CHECK(!memcmp(&k1, &k2, sizeof(k1)) && d1 == 1 && d2 == 0 && !memcmp(k1.addr_a, y6, 16),
		  "v6 key symmetric, lower address is a");

	/* v4 ignores bytes 4..15 of the caller's buffer */
	__u8 junk[16] = {192, 0, 2, 10, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
	flow_key_make(&k2, HYP_AF_INET, 6, junk, htons(40000), b, htons(80), &d2);
	flow_key_make(&k1, HYP_AF_INET, 6, a, htons(40000), b, htons(80), &d1);
	TAP_CHECK(!memcmp(&k1, &k2, sizeof(k1)), "v4 key zero-pads the address");

	struct hyp_flow f = { .state = HYP_CT_SYN_SENT, .packets = {1, 0} }, g;
	TAP_EQ(bpf_map_update_elem(dp->fd_flows_new, &k1, &f, BPF_ANY), 0, "insert a flow into flows_new");
	f.state = HYP_CT_ESTABLISHED;
	flow_key_make(&k2, HYP_AF_INET6, 6, x6, htons(1234), y6, htons(443), NULL);
	TAP_EQ(bpf_map_update_elem(dp->fd_flows, &k2, &f, BPF_ANY), 0, "insert a flow into flows");
	TAP_EQ(flow_lookup(dp, &k1, &g), 0, "flow_lookup finds the flows_new entry");
	TAP_EQ(g.state, HYP_CT_SYN_SENT, "... with its state");
	TAP_EQ(flow_lookup(dp, &k2, &g), 0, "flow_lookup finds the flows entry");
	int n[2] = {0, 0};
	TAP_EQ(flow_foreach(dp, flow_count_cb, n), 0, "flow_foreach");
	TAP_CHECK(n[0] == 1 && n[1] == 1, "flow_foreach tags each map (new %d, established %d)", n[0], n[1]);
	/* Enough flows for several lookup batches (4096 per call). */
	int inserted = 0;
	for (unsigned i = 0; i < FLOWS_MANY; i++) {
		struct hyp_flow_key km;
		__u8 s6[16];
		memcpy(s6, x6, 16);
		s6[14] = (__u8)(i >> 8);
		s6[15] = (__u8)i;
		flow_key_make(&km, HYP_AF_INET6, 17, s6, htons((__u16)(1024 + i % 60000)), y6, htons(53), NULL);
		inserted += !bpf_map_update_elem(dp->fd_flows, &km, &f, BPF_ANY);
	}
	n[0] = n[1] = 0;
	TAP_EQ(flow_foreach(dp, flow_count_cb, n), 0, "flow_foreach over %d flows", FLOWS_MANY);
	TAP_CHECK(inserted == FLOWS_MANY && n[1] == FLOWS_MANY + 1 && n[0] == 1,
		  "batched walk saw every flow once (established %d, want %d)", n[1], FLOWS_MANY + 1);
	__u32 e0 = epoch_read(dp);

	TAP_EQ(flow_delete(dp, &k1), 0, "flow_delete from flows_new");
	TAP_EQ(epoch_read(dp), e0 + 1, "flow_delete bumps the state epoch (ends a cached drop of the flow)");
	TAP_EQ(flow_delete(dp, &k2), 0, "flow_delete from flows");
	TAP_EQ(flow_lookup(dp, &k1, &g), -ENOENT, "deleted flow is gone");
	e0 = epoch_read(dp);
	TAP_EQ(flow_delete(dp, &k1), -ENOENT, "flow_delete again is -ENOENT");
	TAP_EQ(epoch_read(dp), e0, "a failed flow_delete leaves the epoch alone");
}

/* The SYN cookie secret is random once, and kept: a restart that re-adopts the map keeps the cookies
 * already sent valid. syn_cookies applies where the kernel runs the tc ingress hand-off. */
static void test_syncookie_setup(struct hyp_dp *dp)
{
	int fd = bpf_map__fd(dp->skel->maps.cookie_key);
	struct hyp_cookie_key k1 = {0}, k2 = {0};
	struct hyp_config *c = malloc(sizeof(*c));
	__u32 zero = 0;

	TAP_CHECK(!bpf_map_lookup_elem(fd, &zero, &k1) && (k1.k[0] || k1.k[1]), "cookie secret set at load");
	TAP_EQ(cookie_key_init(fd), 0, "cookie_key_init on a set secret");
	TAP_CHECK(!bpf_map_lookup_elem(fd, &zero, &k2) && !memcmp(&k1, &k2, sizeof(k1)),
		  "a set secret is kept (re-adoption keeps cookies valid)");
	memset(&k2, 0, sizeof(k2));
	bpf_map_update_elem(fd, &zero, &k2, BPF_ANY);
	TAP_EQ(cookie_key_init(fd), 0, "cookie_key_init on a zero secret");
	TAP_CHECK(!bpf_map_lookup_elem(fd, &zero, &k2) && (k2.k[0] || k2.k[1]) && memcmp(&k1, &k2, sizeof(k1)),
		  "a zero secret gets fresh random bytes");
	if (!c)
		return;
	config_defaults(c);
	TAP_CHECK(!c->syn_cookies && !c->cookie_mss, "config_defaults: SYN cookies off, default MSS");
	c->syn_cookies = 1;
	c->cookie_mss = 100;
	TAP_EQ(dp_config_apply(dp, c, NULL), -EINVAL, "cookie_mss below 536 refused");
	c->cookie_mss = 1400;
	if (dp->prog_tci_fd >= 0)
		TAP_EQ(dp_config_apply(dp, c, NULL), 0, "syn_cookies applies (tc ingress loaded)");
	else
		TAP_EQ(dp_config_apply(dp, c, NULL), -EOPNOTSUPP, "syn_cookies refused: no tc ingress on this kernel");
	c->syn_cookies = 0;
	c->cookie_mss = 0;
	TAP_EQ(dp_config_apply(dp, c, NULL), 0, "syn_cookies off again");
	free(c);
}

/* A config apply ends the verdict cache's answers at once, the express lane's included: the lane knows
 * the config an entry was made under only through the state epoch (bpf/express.h), which
 * dp_config_apply() bumps after the flip. */
static void test_config_ends_lane(struct hyp_dp *dp)
{
	struct hyp_cidr c = C("203.0.113.0/24");
	struct pkt_opts o = { .family = 4, .src = "203.0.113.7", .dst = "198.51.100.1", .proto = IPPROTO_UDP,
			      .sport = 40000, .dport = 53 };
	struct hyp_config *cfg = malloc(sizeof(*cfg));
	static struct hyp_totals a, b;
	uint8_t buf[PKT_MAX];
	int len = pkt_build(&o, buf, sizeof(buf));
	LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = buf, .data_size_in = (__u32)len, .repeat = 300);
	const unsigned mon = HYP_STATS_MONITOR + HYP_R_DROP_BANNED;
	__u32 e0;

	bool ok = cfg && len > 0 && !dp_config_read(dp, cfg, NULL);

	TAP_CHECK(ok, "config read, frame built");
	if (!ok) {
		free(cfg);
		return;
	}
	TAP_EQ(ban_add(dp, &c, 0, 1), 0, "ban 203.0.113.0/24");
	TAP_CHECK(!bpf_prog_test_run_opts(dp->prog_xdp_fd, &ro) && ro.retval == XDP_DROP,
		  "a flood of 300 frames from 203.0.113.7 dropped");
	TAP_EQ(stats_read(dp, &a), 0, "stats read");
	TAP_CHECK(a.counter[HYP_C_VCACHE_EXPRESS] > 100, "... most of it by the express lane (%llu)",
		  (unsigned long long)a.counter[HYP_C_VCACHE_EXPRESS]);
	e0 = epoch_read(dp);
	cfg->mode = HYP_MODE_MONITOR;
	TAP_EQ(dp_config_apply(dp, cfg, NULL), 0, "monitor mode applied");
	TAP_CHECK(epoch_read(dp) != e0, "... and the state epoch bumped");
	ro.repeat = 1;
	TAP_CHECK(!bpf_prog_test_run_opts(dp->prog_xdp_fd, &ro) && ro.retval == XDP_PASS,
		  "the next frame passes: the cached drop ended with the old config");
	TAP_EQ(stats_read(dp, &b), 0, "stats read");
	TAP_CHECK(b.reason[mon].packets == a.reason[mon].packets + 1 &&
		  b.counter[HYP_C_VCACHE_EXPRESS] == a.counter[HYP_C_VCACHE_EXPRESS],
		  "... booked as a monitored ban drop, not by the lane");
	cfg->mode = HYP_MODE_ENFORCE;
	TAP_EQ(dp_config_apply(dp, cfg, NULL), 0, "enforce mode again");
	TAP_EQ(ban_del(dp, &c), 0, "unban");
	free(cfg);
}

static void test_stats(struct hyp_dp *dp)
{
	int ncpu = libbpf_num_possible_cpus();
	struct hyp_books *bv = calloc(ncpu, sizeof(*bv));
	struct hyp_totals *t = malloc(sizeof(*t));
	__u32 k = 0;

	for (int c = 0; c < ncpu; c++) {
		bv[c].stat[HYP_R_DROP_BANNED].packets = 1;
		bv[c].stat[HYP_R_DROP_BANNED].bytes = 100;
		bv[c].counter[HYP_C_SEEN] = 2;
		bv[c].counter[HYP_C_VCACHE_HIT] = 1;
		bv[c].clock_ns = 12345;         /* datapath-internal: not a counter, never summed */
		bv[c].xp_clock_offset_ns = 777;
		/* the express lane's hits: folded into their stats entry and the counters they stand for */
		bv[c].xp[HYP_XP_SIG].packets = 3;
		bv[c].xp[HYP_XP_SIG].bytes = 300;
		bv[c].xp[HYP_XP_PASS].packets = 4;
		bv[c].xp[HYP_XP_PASS].bytes = 400;
	}
	TAP_EQ(bpf_map_update_elem(dp->fd_books, &k, bv, BPF_ANY), 0, "books written for every CPU");
	TAP_EQ(stats_read(dp, t), 0, "stats_read");
	TAP_CHECK(t->reason[HYP_R_DROP_BANNED].packets == (__u64)ncpu &&
		  t->reason[HYP_R_DROP_BANNED].bytes == 100ull * ncpu, "stats summed over %d CPUs", ncpu);
	TAP_EQ(t->counter[HYP_C_SEEN], (2ull + 3 + 4) * ncpu, "counters summed over CPUs, the lane's hits seen");
	TAP_CHECK(t->reason[HYP_R_DROP_SIG].packets == 3ull * ncpu &&
		  t->reason[HYP_R_DROP_SIG].bytes == 300ull * ncpu &&
		  t->reason[HYP_R_PASS_FLOW].packets == 4ull * ncpu &&
		  t->reason[HYP_R_PASS_FLOW].bytes == 400ull * ncpu,
		  "the express lane's hits folded into their verdicts' stats");
	TAP_CHECK(t->counter[HYP_C_VCACHE_HIT] == 8ull * ncpu && t->counter[HYP_C_VCACHE_EXPRESS] == 7ull * ncpu &&
		  t->counter[HYP_C_EV_SAMPLED] == 3ull * ncpu,
		  "and into vcache_hit, vcache_express and (drops only) ev_sampled");
	TAP_EQ(t->reason[HYP_R_PASS_NEW].packets, 0, "untouched entries are zero");
	free(bv);
	free(t);
}

int main(void)
{
	struct hyp_loader_opts o = { .pin_dir = "" };
	struct hyp_dp dp;

	test_cidr_parse();
	test_names();

	if (!dpt_dp_open_or_report(&dp, &o))
		return tap_done();
	TAP_CHECK(!dp.adopted && dp.fd_bans4 >= 0 && dp.fd_events >= 0 && dp.prog_xdp_fd >= 0 &&
		  dp.prog_tc_fd >= 0, "all fds filled, nothing adopted");
	test_config(&dp);
	test_bans(&dp);
	test_expire_epoch(&dp);
	test_allow(&dp);
	test_ban_batch(&dp);
	test_flows(&dp);
	test_flow_pending(&dp);
	test_config_ends_lane(&dp);
	test_stats(&dp);
	test_syncookie_setup(&dp);
	dp_close(&dp);
	TAP_CHECK(dp.skel == NULL && dp.fd_bans4 == -1, "dp_close resets the handle");
	dp_close(&dp);  /* idempotent */
	return tap_done();
}
