/* Random and mutated inputs into cidr_parse, the signature compiler and the control protocol, vs references. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include "maps.h"
#include "sigcompile.h"
#include "ctl_proto.h"
#include "tap.h"
#include "rand.h"
#include "sigtest.h"

/*
 * Each parser gets fixed-seed random inputs and mutations of valid ones. Properties:
 *  cidr_parse   never crashes; accepts exactly what ref_cidr (inet_pton + 1-3 digit prefix <= max +
 *               host-bit rule) accepts, with the same value; cidr_format output parses back to the same
 *               value and is a fixed point of parse+format.
 *  signatures   sig_validate refuses exactly the definitions ref_sig_valid refuses, always with a
 *               message; sigset_compile returns 0, -E2BIG or -EINVAL (with a message); a compiled set
 *               is well formed (targets < nstates, accept bit <=> non-empty out list, lists terminated)
 *               and sigset_scan agrees with a naive matcher, in one piece and split with carried state.
 *  ctl_proto    parse_line never crashes, returns 0 or -EINVAL with a message; format + parse_line
 *               gives what parse_argv gives; ctl_ttl_parse agrees with a reference; response lines
 *               and JSON strings never carry a raw control character or break framing.
 * Seed: HYP_FUZZ_SEED; iterations scale with HYP_FUZZ_SCALE (default 1) for longer runs.
 */

#define FUZZ_SEED_DEFAULT 0xc1d7f022ULL
#define CIDR_ITERS 60000
#define CIDR_TEXT_MAX 80
#define SIG_SETS 400                /* random signature sets compiled and scanned */
#define SIG_SCANS 20                /* buffers scanned per set */
#define SIG_BUF_MAX 400
#define SIG_VALIDATE_ITERS 20000
#define CTL_ITERS 40000
#define CTL_LINE_MAX (HYP_CTL_REQ_MAX + 64)
#define REPORT_MAX 5                /* detailed reports per property */
#define OUT_UNUSED 0xffff

static unsigned scale = 1;          /* HYP_FUZZ_SCALE: multiplies every iteration count */

static unsigned iters(unsigned n)
{
	return n * scale;
}

static void report(unsigned *ctr, const void *input, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void report(unsigned *ctr, const void *input, size_t len, const char *fmt, ...)
{
	va_list ap;

	if ((*ctr)++ >= REPORT_MAX)
		return;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (input)
		hexdump("input", input, len);
}

/* ================================ cidr ================================ */

/* Reference: the documented grammar, written independently of runtime/cidr.c. */
static int ref_cidr(const char *s, bool allow_host, struct hyp_cidr *out)
{
	char buf[CIDR_TEXT_MAX + 1];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max, plen, bytes;
	int af;

	if (strlen(s) >= 64 || alen >= sizeof(buf))   /* cidr.c's documented text limit */
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = 0;
	memset(out, 0, sizeof(*out));
	af = memchr(buf, ':', alen) ? AF_INET6 : AF_INET;
	if (inet_pton(af, buf, out->addr) != 1)
		return -EINVAL;
	out->family = af == AF_INET6 ? HYP_AF_INET6 : HYP_AF_INET;
	max = af == AF_INET6 ? 128 : 32;
	bytes = max / 8;
	plen = max;
	if (slash) {
		const char *p = slash + 1;
		size_t n = strlen(p);

		if (n < 1 || n > 3 || strspn(p, "0123456789") != n)
			return -EINVAL;
		plen = atoi(p);
		if (plen > max)
			return -EINVAL;
	}
	for (unsigned bit = plen; bit < bytes * 8; bit++) {
		if (!(out->addr[bit / 8] & (0x80 >> (bit % 8))))
			continue;
		if (!allow_host)
			return -EINVAL;
		out->addr[bit / 8] &= ~(0x80 >> (bit % 8));
	}
	out->prefixlen = plen;
	return 0;
}

/* A valid CIDR text of a random address, in inet_ntop form (or with a random prefix). */
static void cidr_valid_text(char *s, size_t cap)
{
	uint8_t a[16];
	char t[INET6_ADDRSTRLEN];
	bool v6 = rand_chance(50);

	for (int i = 0; i < 16; i++)
		a[i] = rand_chance(30) ? 0 : rand_next();
	inet_ntop(v6 ? AF_INET6 : AF_INET, a, t, sizeof(t));
	if (rand_chance(70))
		snprintf(s, cap, "%s/%u", t, rand_below(v6 ? 140 : 40));
	else
		snprintf(s, cap, "%s", t);
}

static void text_mutate(char *s, size_t cap)
{
	static const char alpha[] = "0123456789abcdefABCDEF:./ -+x%\t0";
	size_t n = strlen(s);
	int k = 1 + rand_below(3);

	for (int i = 0; i < k; i++) {
		switch (rand_below(5)) {
		case 0:     /* replace */
			if (n)
				s[rand_below(n)] = rand_chance(80) ? alpha[rand_below(sizeof(alpha) - 1)] : (char)(1 + rand_below(255));
			break;
		case 1:     /* insert */
			if (n + 1 < cap) {
				size_t at = rand_below(n + 1);

				memmove(s + at + 1, s + at, n - at + 1);
				s[at] = alpha[rand_below(sizeof(alpha) - 1)];
				n++;
			}
			break;
		case 2:     /* delete */
			if (n) {
				size_t at = rand_below(n);

				memmove(s + at, s + at + 1, n - at);
				n--;
			}
			break;
		case 3:     /* truncate */
			n = rand_below(n + 1);
			s[n] = 0;
			break;
		default:    /* duplicate a tail (long inputs, double slashes) */
			if (n && n * 2 < cap) {
				size_t at = rand_below(n);

				memmove(s + n, s + at, n - at + 1);
				n += n - at;
			}
			break;
		}
	}
}

static void fuzz_cidr(void)
{
	unsigned v_ref = 0, v_round = 0, v_fixed = 0, accepted = 0, leading_zero = 0, noncanon6 = 0;

	for (unsigned it = 0; it < iters(CIDR_ITERS); it++) {
		char s[CIDR_TEXT_MAX + 1], f1[128], f2[128];
		struct hyp_cidr c, rc, c2, c3;
		bool host = rand_chance(30);
		int r, want;

		if (rand_chance(15)) {   /* pure noise */
			static const char alpha[] = "0123456789abcdef:./";
			size_t n = rand_below(CIDR_TEXT_MAX);

			for (size_t i = 0; i < n; i++)
				s[i] = alpha[rand_below(sizeof(alpha) - 1)];
			s[n] = 0;
		} else {
			cidr_valid_text(s, sizeof(s));
			if (rand_chance(60))
				text_mutate(s, sizeof(s));
		}
		memset(&c, 0xa5, sizeof(c));
		r = cidr_parse(s, &c, host);
		want = ref_cidr(s, host, &rc);
		if (r != want || (!r && memcmp(&c, &rc, sizeof(c)))) {
			report(&v_ref, s, strlen(s), "cidr_parse(\"%s\", host_bits=%d) = %d, reference %d", s, host, r,
			       want);
			continue;
		}
		if (r)
			continue;
		accepted++;
		/* canonical form: format, parse back strictly (host bits are gone), same value */
		cidr_format(&c, f1, sizeof(f1));
		if (cidr_parse(f1, &c2, false) || memcmp(&c, &c2, sizeof(c))) {
			report(&v_round, s, strlen(s), "\"%s\" formats as \"%s\", which does not parse back", s, f1);
			continue;
		}
		cidr_format(&c2, f2, sizeof(f2));
		if (strcmp(f1, f2) || cidr_parse(f2, &c3, false) || memcmp(&c2, &c3, sizeof(c)))
			report(&v_fixed, s, strlen(s), "format not a fixed point: \"%s\" -> \"%s\"", f1, f2);
		/* information: accepted spellings that are not the canonical one */
		const char *slash = strchr(s, '/');

		if (slash && slash[1] == '0' && slash[2])
			leading_zero++;
		else if (c.family == HYP_AF_INET6 && strcmp(s, f1) && (!slash || c.prefixlen != 128))
			noncanon6++;
	}
	printf("# cidr: %u inputs, %u accepted; accepted non-canonical spellings: %u prefix lengths with a "
	       "leading zero, %u IPv6 not in inet_ntop form (both by design: inet_pton's grammar)\n", iters(CIDR_ITERS),
	       accepted, leading_zero, noncanon6);
	TAP_EQ(v_ref, 0, "cidr_parse accepts exactly the reference grammar, with the same value");
	TAP_EQ(v_round, 0, "cidr_format output parses back to the same value");
	TAP_EQ(v_fixed, 0, "cidr_format is a fixed point of parse+format");

	/* edge cases the random walk rarely builds: every one must be refused */
	static const char *const bad[] = {
		"", "/", "/24", "1.2.3.4/", "1.2.3.4/33", "1.2.3.4/-1", "1.2.3.4/+8", "1.2.3.4/ 8", "1.2.3.4 /8",
		" 1.2.3.4", "1.2.3.4 ", "1.2.3.4/8/8", "1.2.3.4/0008", "01.2.3.4", "1.2.3", "1.2.3.4.5",
		"256.1.1.1", "::/129", "::1/1280", "1::2::3", ":::", "1.2.3.0/24x", "0x1.2.3.4", "1.2.3.4/32\n",
		"2001:db8::/32 ", "[2001:db8::1]", "2001:db8::1%eth0",
		"1111111111111111111111111111111111111111111111111111111111111111111111",
	};
	unsigned refused = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hyp_cidr c;

		if (cidr_parse(bad[i], &c, true) == -EINVAL)
			refused++;
		else
			printf("# accepted: \"%s\"\n", bad[i]);
	}
	TAP_EQ(refused, sizeof(bad) / sizeof(bad[0]), "malformed CIDR edge cases are refused");
	TAP_CHECK(cidr_parse(NULL, NULL, false) == -EINVAL, "cidr_parse(NULL) is refused");
}

/* ================================ signatures ================================ */

static struct hyp_sigset set;
static struct hyp_sigdef defs[HYP_SIG_MAX + 2];
static const uint8_t sig_alpha[] = { 'a', 'b', 'A', 'B', 'z', 0, 0xff, '1' };
static const uint16_t sig_ports[] = { 80, 443, 53, 8080 };
static const uint8_t sig_protos[] = { 0, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6 };

static uint8_t fold(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool ref_sig_valid(const struct hyp_sigdef *d)
{
	size_t nl = strnlen(d->name, HYP_SIG_NAME_MAX);

	if (nl == 0 || nl >= HYP_SIG_NAME_MAX || d->pattern_len < 1 || d->pattern_len > HYP_PATTERN_MAX ||
	    d->action > HYP_ACT_BAN || (d->flags & ~HYP_SIGF_NOCASE) || d->nports > HYP_SIG_PORTS_MAX)
		return false;
	if (d->proto != 0 && d->proto != IPPROTO_TCP && d->proto != IPPROTO_UDP && d->proto != IPPROTO_ICMP &&
	    d->proto != IPPROTO_ICMPV6)
		return false;
	for (unsigned i = 0; i < d->nports; i++)
		if (!d->ports[i])
			return false;
	return true;
}

static void sig_random(struct hyp_sigdef *d, unsigned id, unsigned maxlen)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "s%u", id);
	d->pattern_len = 1 + rand_below(maxlen);
	for (unsigned i = 0; i < d->pattern_len; i++)
		d->pattern[i] = sig_alpha[rand_below(sizeof(sig_alpha))];
	d->action = rand_below(3);
	d->flags = rand_chance(30) ? HYP_SIGF_NOCASE : 0;
	d->proto = rand_chance(50) ? 0 : sig_protos[rand_below(sizeof(sig_protos))];
	d->nports = rand_chance(60) ? 0 : 1 + rand_below(3);
	for (unsigned i = 0; i < d->nports; i++)
		d->ports[i] = sig_ports[rand_below(sizeof(sig_ports) / sizeof(sig_ports[0]))];
}

static bool ref_ends_at(const struct hyp_sigdef *d, const uint8_t *buf, size_t end)
{
	size_t n = d->pattern_len;

	if (end + 1 < n)
		return false;
	for (size_t k = 0; k < n; k++) {
		uint8_t a = buf[end + 1 - n + k], p = d->pattern[k];

		if (d->flags & HYP_SIGF_NOCASE ? fold(a) != fold(p) : a != p)
			return false;
	}
	return true;
}

/* Naive matcher with the documented semantics: at the first end position where a drop/ban signature
 * in scope ends, the strongest action (then lowest id) wins and the scan stops; otherwise the first
 * alert position's lowest id. Only match ends at >= from count (bytes before it are context). */
static int ref_scan(const struct hyp_sigdef *d, unsigned n, const uint8_t *buf, size_t len, size_t from,
		    uint8_t proto, uint16_t dport)
{
	int alert = -1;

	for (size_t i = from; i < len; i++) {
		int best = -1, first_alert = -1;

		for (unsigned s = 0; s < n; s++) {
			if (!sigdef_in_scope(&d[s], proto, dport) || !ref_ends_at(&d[s], buf, i))
				continue;
			if (d[s].action == HYP_ACT_ALERT) {
				if (first_alert < 0)
					first_alert = s;
			} else if (best < 0 || d[s].action > d[best].action) {
				best = s;
			}
		}
		if (best >= 0)
			return best;
		if (alert < 0)
			alert = first_alert;
	}
	return alert;
}

/* The compiled tables are self-consistent. */
static bool set_well_formed(const struct hyp_sigset *s, char *why, size_t len)
{
	if (!s->nstates || s->nstates > HYP_DFA_STATES_MAX) {
		snprintf(why, len, "nstates %u", s->nstates);
		return false;
	}
	for (uint32_t st = 0; st < s->nstates; st++) {
		const struct hyp_dfa_out *o = &s->out[st];
		bool end = false;

		for (unsigned k = 0; k < HYP_STATE_OUT_MAX; k++) {
			if (o->sig[k] == OUT_UNUSED) {
				end = true;
			} else if (end || o->sig[k] >= s->nsigs) {
				snprintf(why, len, "state %u out list slot %u = %u", st, k, o->sig[k]);
				return false;
			}
		}
		for (unsigned c = 0; c < 256; c++) {
			uint16_t nx = s->rows[st].next[c];
			uint32_t to = nx & HYP_DFA_STATE_MASK;

			if (to >= s->nstates) {
				snprintf(why, len, "state %u byte %u -> %u of %u", st, c, to, s->nstates);
				return false;
			}
			if (!!(nx & HYP_DFA_ACCEPT) != (s->out[to].sig[0] != OUT_UNUSED)) {
				snprintf(why, len, "state %u byte %u -> %u: accept bit %d, out list %s", st, c, to,
					 !!(nx & HYP_DFA_ACCEPT), s->out[to].sig[0] != OUT_UNUSED ? "set" : "empty");
				return false;
			}
		}
	}
	return true;
}

static void scan_buf(uint8_t *buf, size_t *len, unsigned nsigs)
{
	size_t n = rand_below(SIG_BUF_MAX);

	for (size_t i = 0; i < n; i++)
		buf[i] = rand_chance(85) ? sig_alpha[rand_below(sizeof(sig_alpha))] : (uint8_t)rand_next();
	/* plant a few patterns, some with flipped case */
	for (int k = rand_below(4); k > 0 && nsigs; k--) {
		const struct hyp_sigdef *d = &defs[rand_below(nsigs)];

		if (d->pattern_len > n)
			continue;
		size_t at = rand_below(n - d->pattern_len + 1);

		for (size_t i = 0; i < d->pattern_len; i++)
			buf[at + i] = rand_chance(20) && fold(d->pattern[i]) != d->pattern[i] ? fold(d->pattern[i]) :
				      d->pattern[i];
	}
	*len = n;
}

static void fuzz_sigs(void)
{
	static uint8_t buf[SIG_BUF_MAX];
	unsigned v_val = 0, v_rc = 0, v_msg = 0, v_form = 0, v_scan = 0, v_split = 0;
	unsigned compiled = 0, e2big = 0, scans = 0;
	char err[256], why[160];

	/* sig_validate against the reference on mutated definitions */
	for (unsigned it = 0; it < iters(SIG_VALIDATE_ITERS); it++) {
		struct hyp_sigdef d;
		int r;

		sig_random(&d, it, HYP_PATTERN_MAX);
		switch (rand_below(10)) {
		case 0: d.name[0] = 0; break;
		case 1: memset(d.name, 'n', sizeof(d.name)); break;     /* unterminated */
		case 2: d.pattern_len = rand_chance(50) ? 0 : HYP_PATTERN_MAX + rand_below(3); break;
		case 3: d.pattern_len = rand_next(); break;
		case 4: d.action = rand_next(); break;
		case 5: d.proto = rand_next(); break;
		case 6: d.flags = rand_next(); break;
		case 7: d.nports = rand_below(12); break;
		case 8: if (d.nports) d.ports[rand_below(d.nports)] = 0; break;
		default: break;
		}
		err[0] = 0;
		r = sig_validate(&d, err, sizeof(err));
		if ((r == 0) != ref_sig_valid(&d) || (r != 0 && r != -EINVAL))
			report(&v_val, &d, sizeof(d), "sig_validate = %d, reference %s", r,
			       ref_sig_valid(&d) ? "valid" : "invalid");
		else if (r && (!err[0] || !memchr(err, 0, sizeof(err))))
			report(&v_msg, &d, sizeof(d), "sig_validate refused without a message");
	}

	for (unsigned it = 0; it < iters(SIG_SETS); it++) {
		unsigned n, maxlen;
		int r;

		/* mostly small sets over a tiny alphabet (overlaps, shared prefixes, duplicates); a few
		 * large ones near the limits, a few with one invalid definition */
		switch (rand_below(20)) {
		case 0: n = HYP_SIG_MAX + rand_below(2); maxlen = HYP_PATTERN_MAX; break;
		case 1: n = 9 + rand_below(8); maxlen = 2; break;
		default: n = 1 + rand_below(30); maxlen = 1 + rand_below(8); break;
		}
		for (unsigned i = 0; i < n; i++)
			sig_random(&defs[i], i, maxlen);
		if (rand_chance(5))
			defs[rand_below(n)].pattern_len = 0;
		err[0] = 0;
		r = sigset_compile(&set, defs, n, err, sizeof(err));
		if (r != 0 && r != -E2BIG && r != -EINVAL) {
			report(&v_rc, NULL, 0, "set %u: sigset_compile returned %d (%s)", it, r, err);
			continue;
		}
		if (r) {
			if (!err[0])
				report(&v_msg, NULL, 0, "set %u: sigset_compile %d without a message", it, r);
			e2big += r == -E2BIG;
			sigset_free(&set);
			continue;
		}
		compiled++;
		if (!set_well_formed(&set, why, sizeof(why))) {
			report(&v_form, NULL, 0, "set %u (%u sigs): %s", it, n, why);
			sigset_free(&set);
			continue;
		}
		for (unsigned k = 0; k < SIG_SCANS; k++) {
			uint8_t proto = sig_protos[1 + rand_below(sizeof(sig_protos) - 1)];
			uint16_t dport = rand_chance(70) ? sig_ports[rand_below(4)] : rand_next();
			size_t len, cut;
			__u16 st = 0;
			int got, want;

			scan_buf(buf, &len, n);
			scans++;
			got = sigset_scan(&set, &st, buf, len, proto, dport);
			want = ref_scan(defs, n, buf, len, 0, proto, dport);
			if (got != want) {
				report(&v_scan, buf, len, "set %u (%u sigs, e.g. s0 \"%.*s\"): scan proto %u dport %u = %d, "
				       "naive %d", it, n, (int)defs[0].pattern_len, defs[0].pattern, proto, dport, got,
				       want);
				continue;
			}
			/* in two pieces: the state carries a pattern across the cut */
			cut = rand_below(len + 1);
			st = 0;
			got = sigset_scan(&set, &st, buf, cut, proto, dport);
			want = ref_scan(defs, n, buf, cut, 0, proto, dport);
			if (got != want) {
				report(&v_split, buf, cut, "set %u: first piece (%zu bytes) = %d, naive %d", it, cut, got,
				       want);
				continue;
			}
			if (got >= 0 && set.sigs[got].action != HYP_ACT_ALERT)
				continue;   /* a drop/ban stopped the scan mid-piece: the state is not at the cut */
			got = sigset_scan(&set, &st, buf + cut, len - cut, proto, dport);
			want = ref_scan(defs, n, buf, len, cut, proto, dport);
			if (got != want)
				report(&v_split, buf, len, "set %u: second piece from %zu = %d, naive %d", it, cut, got,
				       want);
		}
		sigset_free(&set);
	}
	printf("# signatures: %u validations, %u sets (%u compiled, %u -E2BIG), %u buffers scanned\n",
	       iters(SIG_VALIDATE_ITERS), iters(SIG_SETS), compiled, e2big, scans);
	TAP_EQ(v_val, 0, "sig_validate refuses exactly what the reference refuses");
	TAP_EQ(v_msg, 0, "every refusal comes with a message");
	TAP_EQ(v_rc, 0, "sigset_compile returns only 0, -E2BIG or -EINVAL");
	TAP_EQ(v_form, 0, "compiled tables are well formed");
	TAP_EQ(v_scan, 0, "sigset_scan agrees with the naive matcher");
	TAP_EQ(v_split, 0, "sigset_scan with carried state agrees across a cut");
	TAP_CHECK(compiled > iters(SIG_SETS) / 2 && e2big > 0, "both outcomes exercised (%u compiled, %u too big)", compiled,
		  e2big);
}

/* ================================ control protocol ================================ */

static const char *const ctl_words[] = {
	"status", "stats", "reload", "events", "ban", "allow", "flows", "sig", "add", "del", "list", "--json",
	"--ttl", "--reason", "--limit", "192.0.2.0/24", "192.0.2.1", "2001:db8::/32", "192.0.2.1/24", "15m", "2h",
	"7d", "0", "100000", "100001", "99999999999", "a b", "q\"uote", "back\\slash", "", "x", "\xc3\xa9t\xc3\xa9",
};
#define NWORDS (sizeof(ctl_words) / sizeof(ctl_words[0]))

/* Reference for ctl_ttl_parse: digits with one optional unit, value 1..TTL_MAX seconds. */
static int ref_ttl(const char *s, __u64 *out)
{
	size_t n = strlen(s);
	unsigned long long mult = 1;
	unsigned __int128 v = 0;

	if (n == 0 || n > 20)
		return -EINVAL;
	switch (s[n - 1]) {
	case 's': n--; break;
	case 'm': mult = 60; n--; break;
	case 'h': mult = 3600; n--; break;
	case 'd': mult = 86400; n--; break;
	}
	if (n == 0 || strspn(s, "0123456789") != n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (s[i] - '0');
	if (v == 0)
		return -EINVAL;
	if (v * mult > HYP_CTL_TTL_MAX)
		return -ERANGE;
	*out = (__u64)(v * mult);
	return 0;
}

/* A request from the grammar (mostly valid; CIDRs, TTLs and limits are random, so some are refused). */
static int ctl_argv_grammar(char words[][32])
{
	static const char *const simple[] = { "status", "stats", "reload", "events", "flows" };
	int n = 0;

	switch (rand_below(4)) {
	case 0:
		snprintf(words[n++], 32, "%s", simple[rand_below(5)]);
		if (!strcmp(words[0], "flows") && rand_chance(60)) {
			snprintf(words[n++], 32, "--limit");
			snprintf(words[n++], 32, "%u", rand_chance(80) ? rand_below(HYP_CTL_FLOWS_MAX + 2) : (unsigned)rand_next());
		}
		break;
	case 1:
		snprintf(words[n++], 32, "sig");
		snprintf(words[n++], 32, "list");
		break;
	default:
		snprintf(words[n++], 32, "%s", rand_chance(50) ? "ban" : "allow");
		snprintf(words[n++], 32, "%s", (const char *[]){ "add", "del", "list" }[rand_below(3)]);
		if (strcmp(words[1], "list"))
			cidr_valid_text(words[n++], 32);
		if (!strcmp(words[0], "ban") && !strcmp(words[1], "add")) {
			if (rand_chance(50)) {
				snprintf(words[n++], 32, "--ttl");
				snprintf(words[n++], 32, "%u%s", rand_below(100000), (const char *[]){ "", "s", "m", "h", "d" }[rand_below(5)]);
			}
			if (rand_chance(50)) {
				snprintf(words[n++], 32, "--reason");
				snprintf(words[n++], 32, "%s", rand_chance(50) ? "port scan \"x\"" : "brute\\force");
			}
		}
		break;
	}
	if (rand_chance(30)) {   /* --json anywhere */
		int at = rand_below(n + 1);

		memmove(words[at + 1], words[at], (size_t)(n - at) * 32);
		snprintf(words[at], 32, "--json");
		n++;
	}
	return n;
}

static bool req_equal(const struct hyp_ctl_req *a, const struct hyp_ctl_req *b)
{
	return a->cmd == b->cmd && a->json == b->json && !memcmp(&a->cidr, &b->cidr, sizeof(a->cidr)) &&
	       a->ttl_s == b->ttl_s && !strcmp(a->reason, b->reason) && a->limit == b->limit;
}

static bool has_ctrl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

/* A JSON string literal: quotes at both ends, no raw control character, escapes well formed. */
static bool json_str_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return false;
	for (size_t i = 1; i < n - 1; i++) {
		unsigned char c = s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
		if (c == '"')
			return false;
		if (c == '\\') {
			if (i + 1 >= n - 1)
				return false;
			if (s[i + 1] == 'u') {
				if (i + 5 >= n - 1 || strspn(s + i + 2, "0123456789abcdef") < 4)
					return false;
				i += 5;
			} else if (s[i + 1] == '"' || s[i + 1] == '\\') {
				i++;
			} else {
				return false;
			}
		}
	}
	return true;
}

static void fuzz_ctl(void)
{
	static char line[CTL_LINE_MAX + 1], fmt[CTL_LINE_MAX + 1];
	unsigned v_rc = 0, v_msg = 0, v_round = 0, v_ttl = 0, v_frame = 0, v_json = 0, v_fmt = 0;
	unsigned ok_lines = 0, parsed = 0, ttl_code = 0;
	char err[256];
	struct evbuffer *eb = evbuffer_new();

	for (unsigned it = 0; it < iters(CTL_ITERS); it++) {
		struct hyp_ctl_req a, b;
		char *argv[HYP_CTL_ARGS_MAX + 4];
		char words[HYP_CTL_ARGS_MAX + 4][32];
		int argc, ra, rf, rl;
		size_t len;

		if (rand_chance(60)) {
			argc = ctl_argv_grammar(words);
		} else {
			argc = rand_below(HYP_CTL_ARGS_MAX + 3);
			for (int i = 0; i < argc; i++) {
				snprintf(words[i], sizeof(words[i]), "%s", ctl_words[rand_below(NWORDS)]);
				if (rand_chance(5))
					text_mutate(words[i], sizeof(words[i]));
			}
		}
		for (int i = 0; i < argc; i++)
			argv[i] = words[i];
		/* format + parse_line == parse_argv */
		ra = ctl_req_parse_argv(argc, argv, &a, err, sizeof(err));
		if (ra && !err[0])
			report(&v_msg, NULL, 0, "parse_argv refused without a message");
		rf = ctl_req_format(argc, argv, fmt, sizeof(fmt));
		if (rf >= 0) {
			rl = ctl_req_parse_line(fmt, strlen(fmt), &b, err, sizeof(err));
			if (rl != ra || (!ra && !req_equal(&a, &b)))
				report(&v_round, fmt, strlen(fmt), "parse_line(format(argv)) = %d, parse_argv = %d", rl, ra);
			parsed += !rl;
		} else if (rf != -EINVAL && rf != -E2BIG) {
			report(&v_rc, NULL, 0, "ctl_req_format returned %d", rf);
		}

		/* raw lines: a mutated formatted request, or noise, sometimes near the size limit */
		if (rf >= 0 && rand_chance(70)) {
			snprintf(line, sizeof(line), "%s", fmt);
			text_mutate(line, sizeof(line));
			len = strlen(line);
		} else if (rand_chance(3)) {
			len = HYP_CTL_REQ_MAX - 2 + rand_below(4);
			for (size_t i = 0; i < len; i++)
				line[i] = rand_chance(90) ? 'a' + rand_below(3) : rand_chance(50) ? ' ' : '"';
			line[len] = 0;
		} else {
			len = rand_below(80);
			for (size_t i = 0; i < len; i++)
				line[i] = rand_chance(80) ? " \"\\abn-/.:1"[rand_below(11)] : (char)rand_next();
			line[len] = 0;
		}
		err[0] = 0;
		rl = ctl_req_parse_line(line, len, &b, err, sizeof(err));
		if (rl != 0 && rl != -EINVAL)
			report(&v_rc, line, len, "parse_line returned %d", rl);
		else if (rl && !err[0])
			report(&v_msg, line, len, "parse_line refused without a message");
		else if (!rl && (has_ctrl(line, len && line[len - 1] == '\n' ? len - 1 : len) ||
				 len >= HYP_CTL_REQ_MAX + (size_t)(len && line[len - 1] == '\n')))
			report(&v_rc, line, len, "parse_line accepted a control byte or an oversized line");
		ok_lines += !rl;

		/* ttl against the reference */
		{
			char t[24];
			__u64 x = 0, y = 0;
			int r1, r2;

			if (rand_chance(50))
				snprintf(t, sizeof(t), "%" PRIu64 "%s", rand_next() >> rand_below(64), (const char *[]){ "", "s", "m", "h",
					 "d", "x" }[rand_below(6)]);
			else
				snprintf(t, sizeof(t), "%s", ctl_words[rand_below(NWORDS)]);
			if (rand_chance(30))
				text_mutate(t, sizeof(t));
			r1 = ctl_ttl_parse(t, &x);
			r2 = ref_ttl(t, &y);
			if (r1 && r2 && r1 != r2)
				ttl_code++;     /* both refuse; only the errno differs (see the report) */
			else if (r1 != r2 || (!r1 && x != y))
				report(&v_ttl, t, strlen(t), "ctl_ttl_parse(\"%s\") = %d (%" PRIu64 "), reference %d (%"
				       PRIu64 ")", t, r1, (uint64_t)x, r2, (uint64_t)y);
		}

		/* responses: one line each, whatever the text */
		{
			size_t n = rand_below(64), olen;
			char text[64 + 1], *out;
			const char *payload;

			for (size_t i = 0; i < n; i++)
				text[i] = (char)(1 + rand_below(255));
			text[n] = 0;
			evbuffer_drain(eb, evbuffer_get_length(eb));
			if (rand_chance(50))
				ctl_put_line(eb, "%s", text);
			else
				ctl_put_err(eb, "%s", text);
			olen = evbuffer_get_length(eb);
			out = (char *)evbuffer_pullup(eb, -1);
			if (!olen || out[olen - 1] != '\n' || memchr(out, '\n', olen - 1) || has_ctrl(out, olen - 1)) {
				report(&v_frame, text, n, "response line breaks framing");
			} else {
				out[olen - 1] = 0;
				if (ctl_line_kind(out, &payload) == HYP_CTL_LINE_BAD)
					report(&v_frame, text, n, "own response line classified BAD");
			}

			/* JSON string into a random (small) buffer: always terminated, always a literal */
			char js[80];
			size_t jl = rand_below(sizeof(js) + 1);

			memset(js, 0x5a, sizeof(js));
			ctl_json_str(js, jl, text);
			if (jl >= 3 && (!memchr(js, 0, jl) || !json_str_ok(js)))
				report(&v_json, text, n, "ctl_json_str into %zu bytes: not a JSON string", jl);
			else if (jl && jl < 3 && js[0] != 0)
				report(&v_json, text, n, "ctl_json_str into %zu bytes: not empty", jl);
			if (jl < sizeof(js) && js[jl] != 0x5a)
				report(&v_json, text, n, "ctl_json_str wrote past %zu bytes", jl);
		}

		/* row formatters on random structures: terminated, no newline, no overflow (ASan) */
		{
			struct hyp_event ev;
			struct hyp_flow_key k;
			struct hyp_flow f;
			struct hyp_ban bn;
			struct hyp_cidr c;
			char row[512], reason[HYP_CTL_REASON_MAX];
			size_t rl2 = 1 + rand_below(sizeof(row));
			bool json = rand_chance(50);

			for (size_t i = 0; i < sizeof(ev); i++)
				((uint8_t *)&ev)[i] = rand_next();
			for (size_t i = 0; i < sizeof(k); i++)
				((uint8_t *)&k)[i] = rand_next();
			for (size_t i = 0; i < sizeof(f); i++)
				((uint8_t *)&f)[i] = rand_next();
			for (size_t i = 0; i < sizeof(bn); i++)
				((uint8_t *)&bn)[i] = rand_next();
			if (rand_chance(50))
				ev.sig = 0xffffffffu;
			k.family = rand_chance(50) ? HYP_AF_INET : HYP_AF_INET6;
			c.family = k.family;
			c.prefixlen = rand_below(129);
			memcpy(c.addr, k.addr_a, 16);
			/* reasons reach the formatter already free of control bytes (ctl and hx.ban check) */
			for (size_t i = 0; i + 1 < sizeof(reason); i++)
				reason[i] = (char)(0x20 + rand_below(0x5f)) | (rand_chance(10) ? 0x80 : 0);
			reason[rand_below(sizeof(reason))] = 0;
			reason[sizeof(reason) - 1] = 0;
			switch (rand_below(3)) {
			case 0: ctl_fmt_event(row, rl2, json, &ev); break;
			case 1: ctl_fmt_flow(row, rl2, json, &k, &f, rand_chance(50), rand_next()); break;
			default: ctl_fmt_ban(row, rl2, json, &c, &bn, rand_next(), reason); break;
			}
			if (!memchr(row, 0, rl2) || strchr(row, '\n'))
				report(&v_fmt, NULL, 0, "row formatter output not one terminated line (%zu bytes)", rl2);
		}
	}
	evbuffer_free(eb);
	printf("# ctl_proto: %u rounds, %u formatted requests parsed back, %u raw lines accepted; %u malformed "
	       "TTLs refused with a different errno than the reference (-ERANGE for a non-number that starts "
	       "with many digits, e.g. \"99999999999x\")\n", iters(CTL_ITERS), parsed, ok_lines, ttl_code);
	TAP_EQ(v_rc, 0, "request parsers return 0 or -EINVAL and never accept control bytes or oversized lines");
	TAP_EQ(v_msg, 0, "every refused request comes with a message");
	TAP_EQ(v_round, 0, "parse_line(format(argv)) agrees with parse_argv(argv)");
	TAP_EQ(v_ttl, 0, "ctl_ttl_parse agrees with the reference");
	TAP_EQ(v_frame, 0, "response lines are one line, no control bytes, classified by ctl_line_kind");
	TAP_EQ(v_json, 0, "ctl_json_str always yields a terminated JSON string inside its buffer");
	TAP_EQ(v_fmt, 0, "row formatters yield one terminated line");
}

int main(void)
{
	const char *s = getenv("HYP_FUZZ_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 0) : FUZZ_SEED_DEFAULT;

	if (getenv("HYP_FUZZ_SCALE") && atoi(getenv("HYP_FUZZ_SCALE")) > 0)
		scale = atoi(getenv("HYP_FUZZ_SCALE"));
	printf("# test_fuzz_parsers: seed 0x%" PRIx64 " (HYP_FUZZ_SEED), scale %u (HYP_FUZZ_SCALE)\n", seed, scale);
	rand_state = seed | 1;
	fuzz_cidr();
	fuzz_sigs();
	fuzz_ctl();
	return tap_done();
}
