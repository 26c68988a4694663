/* Signature compiler: literal patterns to one DFA by subset construction over NFA positions. */
#include "sigcompile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The automaton. An NFA position (p, k) means "the last k input bytes equal the first k bytes of
 * pattern p" under p's byte predicate (exact, or ASCII case folded for HYP_SIGF_NOCASE). A DFA state is
 * the sorted set of live positions, including completed ones (k == len), so a state knows the
 * signatures that end on the byte that entered it. Without nocase patterns this is exactly the
 * Aho-Corasick automaton (one state per trie node); with a mix of nocase and exact patterns the subset
 * construction keeps both kinds exact, where folding the input would be wrong for the exact ones.
 * State 0 is the empty set: nothing matched yet. Start positions (p, 0) are implicit in every state,
 * so their successors are computed once per byte (sc_start) instead of once per state.
 *
 * Reporting: an accepting state lists its signatures strongest action first (ban, drop, alert), then
 * by id; the datapath takes the first one whose scope covers the packet. A signature whose scope lies
 * inside the scope of one listed before it could never be that first one, so it is left out: this
 * keeps lists of duplicates and nested patterns ("a", "aa", ...) within HYP_STATE_OUT_MAX without
 * changing any answer. Only when more than HYP_STATE_OUT_MAX undominated signatures end together is
 * the set refused (-E2BIG).
 *
 * Scan semantics shared with bpf/inspect.h: the first drop/ban signature in scope stops the scan;
 * an alert in scope is remembered (the first one) and the scan goes on, so an alert pattern early in a
 * payload cannot hide a drop pattern later in it.
 */

#define SC_OFF_BITS 7                   /* offsets 0..HYP_PATTERN_MAX (64) */
#define SC_OFF_MASK ((1u << SC_OFF_BITS) - 1)
#define SC_POS(p, k) ((__u32)(p) << SC_OFF_BITS | (__u32)(k))
#define SC_POS_SIG(x) ((x) >> SC_OFF_BITS)
#define SC_POS_OFF(x) ((x) & SC_OFF_MASK)
#define SC_HASH_SIZE 65536              /* open addressing, > 2 * HYP_DFA_STATES_MAX, power of two */
#define SC_NO_STATE 0xffffffffu
#define SC_OUT_UNUSED 0xffff
#define SC_NSYMS 256

_Static_assert(HYP_PATTERN_MAX <= (int)SC_OFF_MASK, "offset field too small");
_Static_assert(SC_HASH_SIZE >= 2 * HYP_DFA_STATES_MAX, "state hash too small");

struct sc_state {
	size_t off;                     /* first position in sc.pool */
	__u32 n;                        /* number of positions */
	__u32 hash;
};

struct sc {
	struct hyp_sigset *set;          /* being built: rows and out grow as states appear */
	__u32 *pool;                    /* positions of all states, back to back */
	size_t pool_len, pool_cap;
	struct sc_state *st;            /* HYP_DFA_STATES_MAX entries */
	__u32 nstates;
	__u32 *hash;                    /* SC_HASH_SIZE state ids or SC_NO_STATE */
	__u32 *start[SC_NSYMS];         /* successors of the implicit (p, 0) positions per byte */
	__u32 nstart[SC_NSYMS];
	__u32 start_id[SC_NSYMS];       /* their state ids once known */
	__u32 *bucket;                  /* scratch: successors of one state, grouped by byte */
	__u32 bcount[SC_NSYMS + 1];
	__u32 *merged;                  /* scratch: one candidate position set */
	size_t scratch_cap;
	char *err;
	size_t errlen;
};

static bool sc_is_alpha(__u8 c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The bytes that advance pattern d past offset k: one, or the two cases of an ASCII letter. */
static int sc_accepts(const struct hyp_sigdef *d, __u32 k, __u8 out[2])
{
	__u8 c = d->pattern[k];

	out[0] = c;
	if (!(d->flags & HYP_SIGF_NOCASE) || !sc_is_alpha(c))
		return 1;
	out[1] = c ^ 0x20;
	return 2;
}

static bool sc_proto_known(__u8 proto)
{
	return proto == 0 || proto == 1 || proto == 6 || proto == 17 || proto == 58;
}

int sig_validate(const struct hyp_sigdef *d, char *err, size_t errlen)
{
	size_t nlen = strnlen(d->name, HYP_SIG_NAME_MAX);
	const char *name = nlen && nlen < HYP_SIG_NAME_MAX ? d->name : "?";
	unsigned i;

	if (nlen == 0) {
		snprintf(err, errlen, "signature name missing");
		return -EINVAL;
	}
	if (nlen >= HYP_SIG_NAME_MAX) {
		snprintf(err, errlen, "signature name too long (max %d bytes)", HYP_SIG_NAME_MAX - 1);
		return -EINVAL;
	}
	if (d->pattern_len == 0) {
		snprintf(err, errlen, "signature '%s': empty pattern", name);
		return -EINVAL;
	}
	if (d->pattern_len > HYP_PATTERN_MAX) {
		snprintf(err, errlen, "signature '%s': pattern too long (%u bytes, max %d)", name, d->pattern_len,
			 HYP_PATTERN_MAX);
		return -EINVAL;
	}
	if (d->action > HYP_ACT_BAN) {
		snprintf(err, errlen, "signature '%s': unknown action %u", name, d->action);
		return -EINVAL;
	}
	if (!sc_proto_known(d->proto)) {
		snprintf(err, errlen, "signature '%s': unknown protocol %u (want 0, 1, 6, 17 or 58)", name,
			 d->proto);
		return -EINVAL;
	}
	if (d->flags & ~HYP_SIGF_NOCASE) {
		snprintf(err, errlen, "signature '%s': unknown flags 0x%x", name, d->flags);
		return -EINVAL;
	}
	if (d->nports > HYP_SIG_PORTS_MAX) {
		snprintf(err, errlen, "signature '%s': too many ports (%u, max %d)", name, d->nports,
			 HYP_SIG_PORTS_MAX);
		return -EINVAL;
	}
	for (i = 0; i < d->nports; i++) {
		if (d->ports[i] == 0) {
			snprintf(err, errlen, "signature '%s': port 0 in its port list", name);
			return -EINVAL;
		}
	}
	return 0;
}

/* Does signature s apply to a packet of this protocol and destination port (host order)? */
static bool sc_in_scope(const struct hyp_sig *s, __u8 proto, __u16 dport)
{
	unsigned i;

	if (s->proto && s->proto != proto)
		return false;
	if (!s->nports)
		return true;
	for (i = 0; i < s->nports && i < HYP_SIG_PORTS_MAX; i++)
		if (s->ports[i] == dport)
			return true;
	return false;
}

/* Is every packet in b's scope also in a's? */
static bool sc_scope_covers(const struct hyp_sig *a, const struct hyp_sig *b)
{
	unsigned i;

	if (a->proto && a->proto != b->proto)
		return false;
	if (!a->nports)
		return true;
	if (!b->nports)
		return false;
	for (i = 0; i < b->nports; i++) {
		unsigned j;
		bool found = false;

		for (j = 0; j < a->nports && !found; j++)
			found = a->ports[j] == b->ports[i];
		if (!found)
			return false;
	}
	return true;
}

/* Report order: strongest action first, then lower id. */
static bool sc_before(const struct hyp_sig *a, const struct hyp_sig *b)
{
	if (a->action != b->action)
		return a->action > b->action;
	return a->id < b->id;
}

static __u32 sc_hash_of(const __u32 *pos, __u32 n)
{
	__u32 h = 2166136261u;
	__u32 i;

	for (i = 0; i < n; i++) {
		h ^= pos[i];
		h *= 16777619u;
	}
	return h ^ n;
}

static int sc_pool_reserve(struct sc *c, size_t more)
{
	size_t cap = c->pool_cap ? c->pool_cap : 4096;
	__u32 *p;

	if (c->pool_len + more <= c->pool_cap)
		return 0;
	while (cap < c->pool_len + more)
		cap *= 2;
	p = realloc(c->pool, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	c->pool = p;
	c->pool_cap = cap;
	return 0;
}

/* Grow the per-state rows and outputs to hold state id. */
static int sc_rows_reserve(struct hyp_sigset *set, __u32 id, __u32 *cap)
{
	struct hyp_dfa_row *r;
	struct hyp_dfa_out *o;
	__u32 ncap = *cap ? *cap : 256;

	if (id < *cap)
		return 0;
	while (ncap <= id)
		ncap *= 2;
	if (ncap > HYP_DFA_STATES_MAX)
		ncap = HYP_DFA_STATES_MAX;
	r = realloc(set->rows, (size_t)ncap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	set->rows = r;
	o = realloc(set->out, (size_t)ncap * sizeof(*o));
	if (!o)
		return -ENOMEM;
	set->out = o;
	*cap = ncap;
	return 0;
}

/* Fill out[id] from the completed positions of the state's set; -E2BIG if they do not fit. */
static int sc_outputs(struct sc *c, struct hyp_dfa_out *out, const __u32 *pos, __u32 n)
{
	const struct hyp_sigset *set = c->set;
	__u16 ids[HYP_SIG_MAX];
	__u32 i, nids = 0, nkept = 0;

	memset(out, 0xff, sizeof(*out));
	for (i = 0; i < n; i++) {
		__u32 s = SC_POS_SIG(pos[i]);

		if (SC_POS_OFF(pos[i]) == set->defs[s].pattern_len)
			ids[nids++] = s;
	}
	/* insertion sort into report order: at most HYP_SIG_MAX entries, rarely more than a few */
	for (i = 1; i < nids; i++) {
		__u16 v = ids[i];
		__u32 j = i;

		for (; j > 0 && sc_before(&set->sigs[v], &set->sigs[ids[j - 1]]); j--)
			ids[j] = ids[j - 1];
		ids[j] = v;
	}
	for (i = 0; i < nids; i++) {
		__u32 j;
		bool dominated = false;

		for (j = 0; j < nkept && !dominated; j++)
			dominated = sc_scope_covers(&set->sigs[out->sig[j]], &set->sigs[ids[i]]);
		if (dominated)
			continue;
		if (nkept == HYP_STATE_OUT_MAX) {
			snprintf(c->err, c->errlen,
				 "more than %d signatures with different scopes match at the same byte "
				 "(e.g. '%s' and '%s'): split them or give them a common scope",
				 HYP_STATE_OUT_MAX, set->defs[out->sig[0]].name, set->defs[ids[i]].name);
			return -E2BIG;
		}
		out->sig[nkept++] = ids[i];
	}
	return 0;
}

/* The state id of position set pos[0..n) (sorted), creating it if new. */
static int sc_intern(struct sc *c, const __u32 *pos, __u32 n, __u32 *id, __u32 *rows_cap)
{
	struct hyp_sigset *set = c->set;
	__u32 h = sc_hash_of(pos, n);
	__u32 slot = h & (SC_HASH_SIZE - 1);
	struct sc_state *s;
	int err;

	for (;; slot = (slot + 1) & (SC_HASH_SIZE - 1)) {
		__u32 e = c->hash[slot];

		if (e == SC_NO_STATE)
			break;
		s = &c->st[e];
		if (s->hash == h && s->n == n && !memcmp(c->pool + s->off, pos, n * sizeof(*pos))) {
			*id = e;
			return 0;
		}
	}
	if (c->nstates >= HYP_DFA_STATES_MAX) {
		snprintf(c->err, c->errlen,
			 "signature set needs more than %d automaton states: use fewer, shorter or fewer "
			 "case-insensitive patterns", HYP_DFA_STATES_MAX);
		return -E2BIG;
	}
	err = sc_pool_reserve(c, n);
	if (!err)
		err = sc_rows_reserve(set, c->nstates, rows_cap);
	if (err) {
		snprintf(c->err, c->errlen, "out of memory compiling signatures");
		return err;
	}
	s = &c->st[c->nstates];
	s->off = c->pool_len;
	s->n = n;
	s->hash = h;
	if (n)
		memcpy(c->pool + c->pool_len, pos, n * sizeof(*pos));
	c->pool_len += n;
	err = sc_outputs(c, &set->out[c->nstates], pos, n);
	if (err)
		return err;
	c->hash[slot] = c->nstates;
	*id = c->nstates++;
	return 0;
}

static bool sc_is_accepting(const struct sc *c, __u32 id)
{
	return c->set->out[id].sig[0] != SC_OUT_UNUSED;
}

/* Successor positions of the implicit start positions, per byte. */
static int sc_start_build(struct sc *c)
{
	const struct hyp_sigset *set = c->set;
	__u32 i, b;

	for (b = 0; b < SC_NSYMS; b++) {
		c->start[b] = malloc((set->nsigs ? set->nsigs : 1) * sizeof(__u32));
		if (!c->start[b])
			return -ENOMEM;
		c->start_id[b] = SC_NO_STATE;
	}
	/* ascending pattern order keeps every list sorted */
	for (i = 0; i < set->nsigs; i++) {
		__u8 acc[2];
		int j, na = sc_accepts(&set->defs[i], 0, acc);

		for (j = 0; j < na; j++)
			c->start[acc[j]][c->nstart[acc[j]]++] = SC_POS(i, 1);
	}
	return 0;
}

/* Make sure the scratch arrays hold n positions. */
static int sc_scratch_reserve(struct sc *c, size_t n)
{
	__u32 *b, *m;

	if (n <= c->scratch_cap)
		return 0;
	b = realloc(c->bucket, n * sizeof(*b));
	if (!b)
		return -ENOMEM;
	c->bucket = b;
	m = realloc(c->merged, n * sizeof(*m));
	if (!m)
		return -ENOMEM;
	c->merged = m;
	c->scratch_cap = n;
	return 0;
}

/* Compute every transition of state id (its positions are copied first: interning may move pool). */
static int sc_expand(struct sc *c, __u32 id, __u32 *rows_cap)
{
	const struct hyp_sigset *set = c->set;
	struct sc_state s = c->st[id];
	__u32 i, b, total = 0, fill[SC_NSYMS];
	int err;

	/* counting sort of the successors by byte: bucket b holds them in position order (sorted) */
	memset(c->bcount, 0, sizeof(c->bcount));
	for (i = 0; i < s.n; i++) {
		__u32 x = c->pool[s.off + i];
		const struct hyp_sigdef *d = &set->defs[SC_POS_SIG(x)];
		__u8 acc[2];
		int j, na;

		if (SC_POS_OFF(x) >= d->pattern_len)
			continue;
		na = sc_accepts(d, SC_POS_OFF(x), acc);
		for (j = 0; j < na; j++)
			c->bcount[acc[j] + 1]++;
		total += na;
	}
	err = sc_scratch_reserve(c, (size_t)total + set->nsigs + 1);
	if (err)
		return err;
	for (b = 0; b < SC_NSYMS; b++)
		c->bcount[b + 1] += c->bcount[b];
	memcpy(fill, c->bcount, sizeof(fill));
	for (i = 0; i < s.n; i++) {
		__u32 x = c->pool[s.off + i];
		const struct hyp_sigdef *d = &set->defs[SC_POS_SIG(x)];
		__u8 acc[2];
		int j, na;

		if (SC_POS_OFF(x) >= d->pattern_len)
			continue;
		na = sc_accepts(d, SC_POS_OFF(x), acc);
		for (j = 0; j < na; j++)
			c->bucket[fill[acc[j]]++] = x + 1;
	}
	for (b = 0; b < SC_NSYMS; b++) {
		const __u32 *bp = c->bucket + c->bcount[b], *sp = c->start[b];
		__u32 nb = c->bcount[b + 1] - c->bcount[b], ns = c->nstart[b], ib = 0, is = 0, n = 0, to;

		if (nb == 0 && c->start_id[b] != SC_NO_STATE) {
			to = c->start_id[b];
		} else {
			/* merge two sorted lists; the same position cannot come from both, since a
			 * state never holds (p, 0) */
			while (ib < nb || is < ns) {
				if (is == ns || (ib < nb && bp[ib] < sp[is]))
					c->merged[n++] = bp[ib++];
				else
					c->merged[n++] = sp[is++];
			}
			if (n == 0) {
				to = 0;
			} else {
				err = sc_intern(c, c->merged, n, &to, rows_cap);
				if (err)
					return err;
			}
			if (nb == 0)
				c->start_id[b] = to;
		}
		set->rows[id].next[b] = (__u16)(to | (sc_is_accepting(c, to) ? HYP_DFA_ACCEPT : 0));
	}
	return 0;
}

static void sc_free(struct sc *c)
{
	unsigned b;

	free(c->pool);
	free(c->st);
	free(c->hash);
	free(c->bucket);
	free(c->merged);
	for (b = 0; b < SC_NSYMS; b++)
		free(c->start[b]);
}

/* Subset construction, breadth first: states are expanded in id order, new ones appended. */
static int sc_build(struct sc *c)
{
	__u32 rows_cap = 0, id, zero;
	int err;

	c->st = calloc(HYP_DFA_STATES_MAX, sizeof(*c->st));
	c->hash = malloc(SC_HASH_SIZE * sizeof(*c->hash));
	if (!c->st || !c->hash)
		return -ENOMEM;
	memset(c->hash, 0xff, SC_HASH_SIZE * sizeof(*c->hash));
	err = sc_start_build(c);
	if (!err)
		err = sc_intern(c, NULL, 0, &zero, &rows_cap);    /* state 0: the empty set */
	for (id = 0; !err && id < c->nstates; id++)
		err = sc_expand(c, id, &rows_cap);
	return err;
}

int sigset_compile(struct hyp_sigset *set, const struct hyp_sigdef *defs, size_t n, char *err, size_t errlen)
{
	struct sc c = { .set = set, .err = err, .errlen = errlen };
	size_t i;
	int rc;

	memset(set, 0, sizeof(*set));
	if (errlen)
		err[0] = '\0';
	if (n > HYP_SIG_MAX) {
		snprintf(err, errlen, "too many signatures (%zu, max %d)", n, HYP_SIG_MAX);
		return -E2BIG;
	}
	for (i = 0; i < n; i++) {
		struct hyp_sig *s = &set->sigs[i];

		rc = sig_validate(&defs[i], err, errlen);
		if (rc)
			return rc;
		set->defs[i] = defs[i];
		s->id = i;
		s->action = defs[i].action;
		s->proto = defs[i].proto;
		s->flags = defs[i].flags;
		s->nports = defs[i].nports;
		memcpy(s->ports, defs[i].ports, sizeof(s->ports));
		s->active = 1;
	}
	set->nsigs = n;
	if (n == 0)
		return 0;   /* no automaton: the datapath skips scanning when dfa_states is 0 */
	rc = sc_build(&c);
	if (rc == -ENOMEM && errlen && !err[0])
		snprintf(err, errlen, "out of memory compiling signatures");
	sc_free(&c);
	if (rc) {
		sigset_free(set);
		set->nsigs = 0;     /* nothing usable: a caller that ignores rc applies an empty set */
		return rc;
	}
	set->nstates = c.nstates;
	return 0;
}

void sigset_free(struct hyp_sigset *set)
{
	free(set->rows);
	free(set->out);
	set->rows = NULL;
	set->out = NULL;
	set->nstates = 0;
}

int sigset_scan(const struct hyp_sigset *set, __u16 *state, const __u8 *buf, size_t len, __u8 proto,
		__u16 dport)
{
	__u32 st = *state & HYP_DFA_STATE_MASK;
	int alert = -1;
	size_t i;

	if (!set->nstates || st >= set->nstates) {
		*state = 0;
		return -1;
	}
	for (i = 0; i < len; i++) {
		__u16 nx = set->rows[st].next[buf[i]];
		const struct hyp_dfa_out *o;
		unsigned k;

		st = nx & HYP_DFA_STATE_MASK;
		if (!(nx & HYP_DFA_ACCEPT))
			continue;
		o = &set->out[st];
		for (k = 0; k < HYP_STATE_OUT_MAX && o->sig[k] != SC_OUT_UNUSED; k++) {
			const struct hyp_sig *s = &set->sigs[o->sig[k]];

			if (!s->active || !sc_in_scope(s, proto, dport))
				continue;
			if (s->action != HYP_ACT_ALERT) {
				*state = st;
				return o->sig[k];
			}
			if (alert < 0)
				alert = o->sig[k];
			break;
		}
	}
	*state = st;
	return alert;
}
