/* sigcompile: the compiled DFA against a naive matcher, limits, case folding, validation errors. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include "sigcompile.h"
#include "tap.h"
#include "sigtest.h"
#include "rand.h"

#define RAND_ROUNDS 300         /* random pattern sets compared with the naive matcher */
#define RAND_INPUT_LEN 300
#define RAND_SIGS_MAX 40
#define RAND_PAT_MAX 6
#define NPROBES 5

static struct hyp_sigset set;   /* large: keep it off the stack */
static struct hyp_sigdef defs[HYP_SIG_MAX];
static char err[256];

static void def_str(struct hyp_sigdef *d, const char *name, const char *pat, uint8_t action, uint8_t flags)
{
	sigdef_fill(d, name, pat, strlen(pat), action, flags, 0, 0);
}

static uint8_t fold(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Naive: does signature d end at buf[p]? */
static int naive_ends_at(const struct hyp_sigdef *d, const uint8_t *buf, size_t p)
{
	size_t k, start;

	if (d->pattern_len > p + 1)
		return 0;
	start = p + 1 - d->pattern_len;
	for (k = 0; k < d->pattern_len; k++) {
		uint8_t a = d->pattern[k], b = buf[start + k];

		if (d->flags & HYP_SIGF_NOCASE ? fold(a) != fold(b) : a != b)
			return 0;
	}
	return 1;
}

static int naive_in_scope(const struct hyp_sigdef *d, uint8_t proto, uint16_t dport)
{
	unsigned i;

	if (d->proto && d->proto != proto)
		return 0;
	if (!d->nports)
		return 1;
	for (i = 0; i < d->nports; i++)
		if (d->ports[i] == dport)
			return 1;
	return 0;
}

/* Naive: the signature reported at position p (strongest action in scope, then lowest id), or -1. */
static int naive_best_at(const struct hyp_sigdef *d, size_t n, const uint8_t *buf, size_t p, uint8_t proto,
			 uint16_t dport)
{
	int best = -1;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!naive_ends_at(&d[i], buf, p) || !naive_in_scope(&d[i], proto, dport))
			continue;
		if (best < 0 || d[i].action > d[best].action)
			best = i;
	}
	return best;
}

/* Naive scan with the shared semantics: first drop/ban stops, else the first alert. */
static int naive_scan(const struct hyp_sigdef *d, size_t n, const uint8_t *buf, size_t len, uint8_t proto,
		      uint16_t dport)
{
	int alert = -1;
	size_t p;

	for (p = 0; p < len; p++) {
		int b = naive_best_at(d, n, buf, p, proto, dport);

		if (b < 0)
			continue;
		if (d[b].action != HYP_ACT_ALERT)
			return b;
		if (alert < 0)
			alert = b;
	}
	return alert;
}

/* DFA: the first signature of the state's list in scope, or -1 (what the datapath reports at a byte). */
static int dfa_report(const struct hyp_sigset *s, uint16_t nx, uint8_t proto, uint16_t dport)
{
	const struct hyp_dfa_out *o = &s->out[nx & HYP_DFA_STATE_MASK];
	unsigned k;

	if (!(nx & HYP_DFA_ACCEPT))
		return -1;
	for (k = 0; k < HYP_STATE_OUT_MAX && o->sig[k] != 0xffff; k++)
		if (naive_in_scope(&s->defs[o->sig[k]], proto, dport))
			return o->sig[k];
	return -1;
}

/* Every position of buf: the DFA's report equals the naive one. Returns the first bad position or -1. */
static long dfa_vs_naive(const struct hyp_sigset *s, const uint8_t *buf, size_t len, uint8_t proto,
			 uint16_t dport)
{
	uint16_t st = 0;
	size_t p;

	for (p = 0; p < len; p++) {
		uint16_t nx = s->rows[st].next[buf[p]];

		if (dfa_report(s, nx, proto, dport) != naive_best_at(s->defs, s->nsigs, buf, p, proto, dport))
			return p;
		st = nx & HYP_DFA_STATE_MASK;
		if (st >= s->nstates)
			return p;
	}
	return -1;
}

/* Which signatures does the state entered at each position of str report (in-scope for anything)? */
static int ids_at(const struct hyp_sigset *s, const char *str, size_t pos, uint16_t *ids)
{
	uint16_t st = 0, nx = 0;
	size_t p;
	int n = 0, k;

	for (p = 0; p <= pos; p++) {
		nx = s->rows[st].next[(uint8_t)str[p]];
		st = nx & HYP_DFA_STATE_MASK;
	}
	if (!(nx & HYP_DFA_ACCEPT))
		return 0;
	for (k = 0; k < HYP_STATE_OUT_MAX && s->out[st].sig[k] != 0xffff; k++)
		ids[n++] = s->out[st].sig[k];
	return n;
}

static int has_id(const uint16_t *ids, int n, uint16_t id)
{
	int i;

	for (i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

static int scan_str(const char *s, uint8_t proto, uint16_t dport)
{
	uint16_t st = 0;

	return sigset_scan(&set, &st, (const uint8_t *)s, strlen(s), proto, dport);
}

static void test_overlapping(void)
{
	uint16_t ids[HYP_STATE_OUT_MAX];
	int n, rc;

	/* the textbook Aho-Corasick set: in "ushers", "she" and "he" end together, then "hers" */
	def_str(&defs[0], "he", "he", HYP_ACT_ALERT, 0);
	def_str(&defs[1], "she", "she", HYP_ACT_ALERT, 0);
	def_str(&defs[2], "his", "his", HYP_ACT_ALERT, 0);
	def_str(&defs[3], "hers", "hers", HYP_ACT_ALERT, 0);
	/* disjoint scopes, so neither of "he" and "she" makes the other redundant in the output list */
	defs[0].proto = 6;
	defs[1].proto = 17;
	rc = sigset_compile(&set, defs, 4, err, sizeof(err));
	TAP_EQ(rc, 0, "he/she/his/hers compiles (%s)", err);
	if (rc)
		return;
	/* exact Aho-Corasick: one state per trie node (root, h, he, her, hers, hi, his, s, sh, she) */
	TAP_EQ(set.nstates, 10, "he/she/his/hers: one state per trie node");
	n = ids_at(&set, "ushers", 3, ids);
	TAP_CHECK(n == 2 && has_id(ids, n, 0) && has_id(ids, n, 1), "ushers[3]: 'she' and 'he' end together");
	n = ids_at(&set, "ushers", 5, ids);
	TAP_CHECK(n == 1 && ids[0] == 3, "ushers[5]: 'hers'");
	n = ids_at(&set, "ushers", 4, ids);
	TAP_EQ(n, 0, "ushers[4]: nothing ends at 'r'");
	n = ids_at(&set, "ahishers", 3, ids);
	TAP_CHECK(n == 1 && ids[0] == 2, "ahishers[3]: 'his'");
	TAP_EQ(scan_str("ushers", 6, 80), 0, "scan ushers over tcp: 'he'");
	TAP_EQ(scan_str("ushers", 17, 80), 1, "scan ushers over udp: 'she'");
	TAP_EQ(scan_str("hxsxe", 6, 80), -1, "no pattern in 'hxsxe'");
	sigset_free(&set);
}

static void test_suffix(void)
{
	uint16_t ids[HYP_STATE_OUT_MAX];
	int rc, n;

	/* "cd" is a suffix of "abcd": both must be reported where "abcd" ends, and "cd" alone elsewhere */
	def_str(&defs[0], "abcd", "abcd", HYP_ACT_ALERT, 0);
	def_str(&defs[1], "cd", "cd", HYP_ACT_DROP, 0);
	defs[1].nports = 1;     /* narrower than "abcd", so "abcd" stays listed */
	defs[1].ports[0] = 53;
	rc = sigset_compile(&set, defs, 2, err, sizeof(err));
	TAP_EQ(rc, 0, "suffix set compiles (%s)", err);
	if (rc)
		return;
	n = ids_at(&set, "xabcd", 4, ids);
	TAP_CHECK(n == 2 && ids[0] == 1 && ids[1] == 0, "abcd end: both, drop listed before alert");
	n = ids_at(&set, "xxcd", 3, ids);
	TAP_CHECK(n == 1 && ids[0] == 1, "cd alone");
	TAP_EQ(scan_str("zzabcdzz", 17, 53), 1, "scan: the drop wins over the alert ending at the same byte");
	TAP_EQ(scan_str("zzabcdzz", 17, 54), 0, "scan: out of the drop's scope the alert is reported");
	sigset_free(&set);

	/* an alert early in the payload does not hide a drop later in it */
	def_str(&defs[0], "warn", "warn", HYP_ACT_ALERT, 0);
	def_str(&defs[1], "kill", "kill", HYP_ACT_BAN, 0);
	rc = sigset_compile(&set, defs, 2, err, sizeof(err));
	TAP_EQ(rc, 0, "alert+ban set compiles");
	TAP_EQ(scan_str("warn ... kill", 6, 1), 1, "ban after an alert is still found");
	TAP_EQ(scan_str("warn ... ", 6, 1), 0, "alert alone is reported");
	sigset_free(&set);
}

static void test_nocase_mixed(void)
{
	int rc;

	def_str(&defs[0], "admin", "GET /admin", HYP_ACT_DROP, HYP_SIGF_NOCASE);
	def_str(&defs[1], "select", "Select", HYP_ACT_ALERT, 0);
	def_str(&defs[2], "ab", "aB", HYP_ACT_BAN, 0);
	def_str(&defs[3], "xab", "XAB1", HYP_ACT_DROP, HYP_SIGF_NOCASE);
	rc = sigset_compile(&set, defs, 4, err, sizeof(err));
	TAP_EQ(rc, 0, "mixed case set compiles (%s)", err);
	if (rc)
		return;
	TAP_EQ(scan_str("get /ADMIN", 6, 80), 0, "nocase: other case matches");
	TAP_EQ(scan_str("GeT /aDmIn HTTP/1.1", 6, 80), 0, "nocase: mixed case matches");
	TAP_EQ(scan_str("GET /admi", 6, 80), -1, "nocase: prefix alone does not match");
	TAP_EQ(scan_str("Select", 6, 80), 1, "exact: same case matches");
	TAP_EQ(scan_str("select SELECT sElect", 6, 80), -1, "exact: other cases do not match");
	TAP_EQ(scan_str("ab AB Ab", 6, 80), -1, "exact 'aB' not matched by ab/AB/Ab");
	TAP_EQ(scan_str("xaB1", 6, 80), 2, "exact 'aB' inside nocase 'XAB1': the ban is reported first");
	TAP_EQ(scan_str("xab1", 6, 80), 3, "nocase 'XAB1' matches where exact 'aB' does not");
	/* non-letters are never folded: '@' (0x40) must not match '`' (0x60) */
	sigset_free(&set);
	def_str(&defs[0], "at", "@[", HYP_ACT_DROP, HYP_SIGF_NOCASE);
	rc = sigset_compile(&set, defs, 1, err, sizeof(err));
	TAP_EQ(rc, 0, "nocase punctuation compiles");
	TAP_EQ(scan_str("`{", 6, 80), -1, "nocase folds letters only");
	TAP_EQ(scan_str("x@[", 6, 80), 0, "nocase punctuation matches itself");
	sigset_free(&set);
}

/* Random pattern sets over a small alphabet (many overlaps), random scopes, actions and case. */
static void random_defs(size_t n)
{
	static const char alpha[] = "abAB-";
	static const uint16_t ports[] = { 80, 443, 53 };
	static const uint8_t protos[] = { 0, 6, 17 };
	size_t i, k;

	for (i = 0; i < n; i++) {
		struct hyp_sigdef *d = &defs[i];

		memset(d, 0, sizeof(*d));
		snprintf(d->name, sizeof(d->name), "r%zu", i);
		d->pattern_len = 1 + rand32() % RAND_PAT_MAX;
		for (k = 0; k < d->pattern_len; k++)
			d->pattern[k] = alpha[rand32() % (sizeof(alpha) - 1)];
		d->action = rand32() % 3;
		d->flags = rand32() % 2 ? HYP_SIGF_NOCASE : 0;
		d->proto = protos[rand32() % 3];
		d->nports = rand32() % 3;
		for (k = 0; k < d->nports; k++)
			d->ports[k] = ports[rand32() % 3];
	}
}

static void test_random_vs_naive(void)
{
	static const uint8_t probe_proto[NPROBES] = { 6, 6, 17, 17, 1 };
	static const uint16_t probe_port[NPROBES] = { 80, 443, 53, 80, 9 };
	static const char alpha[] = "abAB-x";
	uint8_t buf[RAND_INPUT_LEN];
	int round, bad_pos = 0, bad_scan = 0, bad_split = 0, failed = 0, e2big = 0;

	rand32_state = 0x9e3779b9;
	for (round = 0; round < RAND_ROUNDS; round++) {
		size_t n = 1 + rand32() % RAND_SIGS_MAX, i;
		int pr, rc;

		random_defs(n);
		rc = sigset_compile(&set, defs, n, err, sizeof(err));
		if (rc == -E2BIG) {     /* too many undominated outputs can happen with this alphabet */
			e2big++;
			continue;
		}
		if (rc) {
			failed++;
			printf("# round %d: compile failed: %s\n", round, err);
			continue;
		}
		for (i = 0; i < sizeof(buf); i++)
			buf[i] = alpha[rand32() % (sizeof(alpha) - 1)];
		for (pr = 0; pr < NPROBES; pr++) {
			uint8_t proto = probe_proto[pr];
			uint16_t port = probe_port[pr], st = 0, st2 = 0;
			long p = dfa_vs_naive(&set, buf, sizeof(buf), proto, port);
			int want, got, cut = rand32() % sizeof(buf), got1, got2;

			if (p >= 0) {
				if (!bad_pos)
					printf("# round %d probe %d: position %ld differs\n", round, pr, p);
				bad_pos++;
			}
			want = naive_scan(defs, n, buf, sizeof(buf), proto, port);
			got = sigset_scan(&set, &st, buf, sizeof(buf), proto, port);
			if (want != got) {
				if (!bad_scan)
					printf("# round %d probe %d: scan %d, naive %d\n", round, pr, got, want);
				bad_scan++;
			}
			/* the state carried between two chunks (TCP segments) gives the same answer as one
			 * buffer: compare with the naive result over the concatenation */
			got1 = sigset_scan(&set, &st2, buf, cut, proto, port);
			got2 = got1 >= 0 && set.defs[got1].action != HYP_ACT_ALERT ? got1 :
			       sigset_scan(&set, &st2, buf + cut, sizeof(buf) - cut, proto, port);
			if (got1 >= 0 && set.defs[got1].action == HYP_ACT_ALERT &&
			    (got2 < 0 || set.defs[got2].action == HYP_ACT_ALERT))
				got2 = got1;
			if (got2 != want) {
				if (!bad_split)
					printf("# round %d probe %d: split at %d: %d, naive %d\n", round, pr, cut,
					       got2, want);
				bad_split++;
			}
		}
		sigset_free(&set);
	}
	TAP_EQ(failed, 0, "random sets compile");
	TAP_CHECK(e2big < RAND_ROUNDS / 10, "random sets: few refused for too many outputs (%d)", e2big);
	TAP_EQ(bad_pos, 0, "random sets: every position reports what the naive matcher does");
	TAP_EQ(bad_scan, 0, "random sets: sigset_scan equals the naive scan");
	TAP_EQ(bad_split, 0, "random sets: state carried across a split equals one buffer");
}

/* 256 random 64-byte patterns (alternately nocase) compile within the limits; each one is found. */
static void test_full_set(void)
{
	uint8_t buf[3 * HYP_PATTERN_MAX];
	size_t i, k;
	int rc, found = 0, wrong = 0;
	long p;

	rand32_state = 12345;
	for (i = 0; i < HYP_SIG_MAX; i++) {
		uint8_t pat[HYP_PATTERN_MAX];
		char name[16];

		for (k = 0; k < HYP_PATTERN_MAX; k++)
			pat[k] = rand32() & 0xff;
		snprintf(name, sizeof(name), "full%zu", i);
		sigdef_fill(&defs[i], name, pat, HYP_PATTERN_MAX, i % 3, i % 2 ? HYP_SIGF_NOCASE : 0, 0, 0);
	}
	rc = sigset_compile(&set, defs, HYP_SIG_MAX, err, sizeof(err));
	TAP_EQ(rc, 0, "256 x 64-byte patterns compile (%s)", err);
	if (rc)
		return;
	TAP_CHECK(set.nstates <= HYP_DFA_STATES_MAX && set.nstates > HYP_SIG_MAX,
		  "256 x 64: %u states within the limit", set.nstates);
	printf("# 256 x 64-byte patterns: %u states\n", set.nstates);
	for (i = 0; i < HYP_SIG_MAX; i++) {
		uint16_t st = 0;

		for (k = 0; k < sizeof(buf); k++)
			buf[k] = rand32() & 0xff;
		memcpy(buf + HYP_PATTERN_MAX, defs[i].pattern, HYP_PATTERN_MAX);
		rc = sigset_scan(&set, &st, buf, sizeof(buf), 6, 80);
		found += rc == (int)i;
		wrong += rc >= 0 && rc != (int)i;
	}
	TAP_EQ(found, HYP_SIG_MAX, "every one of the 256 patterns is found in random bytes");
	TAP_EQ(wrong, 0, "no other signature reported");
	p = dfa_vs_naive(&set, buf, sizeof(buf), 6, 80);
	TAP_EQ(p, -1, "full set: DFA equals naive on the last buffer");
	sigset_free(&set);
}

static void test_limits(void)
{
	size_t i, k;
	int rc;

	/* mixing exact patterns over {a,A} with a nocase run of 'a' pairs every trie node with every
	 * run length: far more states than HYP_DFA_STATES_MAX */
	rand32_state = 777;
	for (i = 0; i < 128; i++) {
		uint8_t pat[HYP_PATTERN_MAX];

		for (k = 0; k < HYP_PATTERN_MAX; k++)
			pat[k] = rand32() % 2 ? 'a' : 'A';
		sigdef_fill(&defs[i], "exact", pat, HYP_PATTERN_MAX, HYP_ACT_DROP, 0, 0, 0);
	}
	for (; i < 130; i++) {
		uint8_t pat[HYP_PATTERN_MAX];

		memset(pat, 'a', sizeof(pat));
		pat[i - 128] = 'b';
		sigdef_fill(&defs[i], "fold", pat, HYP_PATTERN_MAX, HYP_ACT_DROP, HYP_SIGF_NOCASE, 0, 0);
	}
	rc = sigset_compile(&set, defs, 130, err, sizeof(err));
	TAP_EQ(rc, -E2BIG, "state explosion is refused with -E2BIG");
	TAP_CHECK(strstr(err, "states") != NULL, "message names the state limit: %s", err);
	TAP_CHECK(set.rows == NULL && set.nstates == 0, "nothing left allocated after a failure");

	/* 9 signatures on the same byte with disjoint scopes cannot share one output list */
	for (i = 0; i < HYP_STATE_OUT_MAX + 1; i++) {
		def_str(&defs[i], "port", "x", HYP_ACT_DROP, 0);
		defs[i].nports = 1;
		defs[i].ports[0] = 1000 + i;
	}
	rc = sigset_compile(&set, defs, HYP_STATE_OUT_MAX + 1, err, sizeof(err));
	TAP_EQ(rc, -E2BIG, "9 outputs with disjoint scopes: -E2BIG");
	TAP_CHECK(strstr(err, "same byte") != NULL, "message explains the output limit: %s", err);

	/* ... but duplicates and nested patterns whose scope is covered are merged away exactly */
	for (i = 0; i < 40; i++) {
		uint8_t pat[HYP_PATTERN_MAX];

		memset(pat, 'a', sizeof(pat));
		sigdef_fill(&defs[i], "nest", pat, 1 + i, i % 3 == 0 ? HYP_ACT_ALERT : HYP_ACT_DROP, 0, 0, 0);
		if (i % 2) {    /* covered by the any-port ones */
			defs[i].nports = 1;
			defs[i].ports[0] = 80;
		}
	}
	def_str(&defs[40], "ban80", "aaaa", HYP_ACT_BAN, 0);
	defs[40].proto = 6;
	defs[40].nports = 1;
	defs[40].ports[0] = 80;
	rc = sigset_compile(&set, defs, 41, err, sizeof(err));
	TAP_EQ(rc, 0, "40 nested 'a' patterns + a scoped ban compile (%s)", err);
	if (!rc) {
		uint8_t buf[64];
		long p;

		memset(buf, 'a', sizeof(buf));
		p = dfa_vs_naive(&set, buf, sizeof(buf), 6, 80);
		TAP_EQ(p, -1, "merged outputs: same reports as naive (tcp/80)");
		p = dfa_vs_naive(&set, buf, sizeof(buf), 17, 80);
		TAP_EQ(p, -1, "merged outputs: same reports as naive (udp/80)");
		p = dfa_vs_naive(&set, buf, sizeof(buf), 6, 81);
		TAP_EQ(p, -1, "merged outputs: same reports as naive (tcp/81)");
		sigset_free(&set);
	}

	rc = sigset_compile(&set, defs, HYP_SIG_MAX + 1, err, sizeof(err));
	TAP_EQ(rc, -E2BIG, "more than HYP_SIG_MAX signatures: -E2BIG");
	rc = sigset_compile(&set, defs, 0, err, sizeof(err));
	TAP_CHECK(rc == 0 && set.nstates == 0 && set.nsigs == 0, "empty set: no automaton");
	sigset_free(&set);
}

static void check_invalid(const struct hyp_sigdef *d, const char *want, const char *what)
{
	int rc = sig_validate(d, err, sizeof(err));

	TAP_EQ(rc, -EINVAL, "invalid: %s", what);
	TAP_CHECK(strstr(err, want) != NULL, "message for %s: %s", what, err);
}

static void test_validate(void)
{
	struct hyp_sigdef d;
	int rc;

	def_str(&d, "ok", "abc", HYP_ACT_DROP, HYP_SIGF_NOCASE);
	d.proto = 17;
	d.nports = 2;
	d.ports[0] = 53;
	d.ports[1] = 5353;
	TAP_EQ(sig_validate(&d, err, sizeof(err)), 0, "valid definition accepted");

	def_str(&d, "e", "", HYP_ACT_DROP, 0);
	check_invalid(&d, "empty pattern", "empty pattern");
	def_str(&d, "long", "x", HYP_ACT_DROP, 0);
	d.pattern_len = HYP_PATTERN_MAX + 1;
	check_invalid(&d, "too long", "pattern too long");
	def_str(&d, "act", "x", 3, 0);
	check_invalid(&d, "action", "unknown action");
	def_str(&d, "proto", "x", HYP_ACT_DROP, 0);
	d.proto = 47;
	check_invalid(&d, "protocol", "unknown proto");
	def_str(&d, "ports", "x", HYP_ACT_DROP, 0);
	d.nports = HYP_SIG_PORTS_MAX + 1;
	check_invalid(&d, "too many ports", "too many ports");
	def_str(&d, "", "x", HYP_ACT_DROP, 0);
	check_invalid(&d, "name missing", "name missing");
	def_str(&d, "n", "x", HYP_ACT_DROP, 0);
	memset(d.name, 'n', sizeof(d.name));
	check_invalid(&d, "name too long", "name too long");
	def_str(&d, "flags", "x", HYP_ACT_DROP, 0x80);
	check_invalid(&d, "flags", "unknown flags");

	/* compile refuses a set with one bad definition and names it */
	def_str(&defs[0], "good", "abc", HYP_ACT_DROP, 0);
	def_str(&defs[1], "bad", "", HYP_ACT_DROP, 0);
	rc = sigset_compile(&set, defs, 2, err, sizeof(err));
	TAP_EQ(rc, -EINVAL, "compile with one bad definition: -EINVAL");
	TAP_CHECK(strstr(err, "'bad'") != NULL, "compile error names the signature: %s", err);
}

int main(void)
{
	test_overlapping();
	test_suffix();
	test_nocase_mixed();
	test_random_vs_naive();
	test_full_set();
	test_limits();
	test_validate();
	return tap_done();
}
