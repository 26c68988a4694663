/* Verdict cache: per-CPU memory of dropped flows, so their flood is dropped without a helper call. */
#ifndef HYP_VCACHE_H
#define HYP_VCACHE_H

/*
 * Two floods repeat one verdict: a banned source keeps sending, and a flow that sent a drop-signature
 * match (HYP_FF_DROP, docs/design.md "Dropped flows") keeps sending. Reaching that verdict again costs
 * an LPM lookup (the ban) or a flow lookup (the mark) per packet, each a helper call paid through the
 * SRSO return thunk, behind the allowlist and ban tries. This cache remembers the verdict in a per-CPU
 * array, which the verifier inlines into a few loads: a hit costs the parse, an inline hash, one key
 * compare and the stats.
 *
 * Two kinds of entries, both only ever a verdict the slow path reached itself:
 *  - source (proto 0): a banned source, cached once its ban counted HYP_VCACHE_BAN_MIN hits;
 *  - flow (TCP/UDP): the sending side of a marked flow, keyed by the packet's own 5-tuple (not the
 *    canonical key: only that side is dropped).
 * An entry is good for at most HYP_VCACHE_TTL_NS (a ban's: not past its expiry), and only while the
 * generation (policy flips, monitor mode, clock offset) and the state epoch (gen[HYP_GEN_EPOCH],
 * bumped by user space on every ban written or removed, allowlist entry added or flow removed) are
 * those it was made under. So an unban, an allowlist entry or a reload ends a cached drop at once;
 * only what user space is not told of (an LRU eviction of the flow) is outlived, by the TTL at most.
 * What a hit does not do: add to the flow's packet and byte counters or refresh its last_seen (the
 * TTL sends one packet per entry and second through conntrack, which does). A ban's hits are counted
 * in the entry and carried to the ban every HYP_VCACHE_BAN_MIN hits and at each refill (blocklist.h).
 */
#define HYP_VCACHE_TTL_NS ((__u64)HYP_VCACHE_TTL_S * HYP_NS_PER_S)   /* staleness bound vs. refresh cost */
/* A ban is cached from this many hits on, and its cached hits are carried back every this many: its
 * hits count stays exact below it, and above it at most this many less one per CPU behind. */
#define HYP_VCACHE_BAN_MIN 64
/* A cached drop's event (BLOCK for a source entry, MATCH for a flow entry) is sampled like any other,
 * per (source, kind) (bpf/events.h). Once the pair's bucket is found empty, the entry keeps the time
 * its next token is due (ev_early: 16-bit, in units of 2^HYP_VCACHE_EV_SHIFT ns = 16.4 us, counted back
 * from until_ns, so it spans the whole TTL) and suppresses the flood's events itself: no sample key,
 * no hash, no shared line. It counts them (ev_pending, at most HYP_VCACHE_EV_MAX, then it hands them
 * over) and hands them to the pair when that time comes, or when the entry ends, so the next event
 * delivered carries them in its suppressed count. */
#define HYP_VCACHE_EV_SHIFT 14
#define HYP_VCACHE_EV_UNKNOWN 0xffff    /* not learnt yet: the events go the usual way */
#define HYP_VCACHE_EV_MAX 255           /* ev_pending's width: the most stranded per entry and CPU */
_Static_assert(((__u64)HYP_VCACHE_EV_UNKNOWN << HYP_VCACHE_EV_SHIFT) > HYP_VCACHE_TTL_NS,
	       "an unknown quiet time must end before any entry was made");
_Static_assert(HYP_VCACHE_BAN_MIN <= 255, "hits is 8 bits wide");

/*
 * Hand the events entry e suppressed to its (source, kind) pair: to the pair's ev_cache slot, where
 * the next delivered event collects them, or to its ev_sample entry if another pair holds the slot.
 * With learn (e is live and its quiet time is over), also read the time the pair's next token is due
 * from the slot: if it has not come yet, e learns it and this packet's event is suppressed too
 * (returns 1; 0: the event goes the usual way). A global function: verified once, called once per
 * quiet period of an entry and when an entry with pending events ends.
 */
__noinline int hyp_vc_ev(struct hyp_vcache *e, __u64 now, int learn)
{
	struct hyp_sample_key k __attribute__((aligned(8))) = {};
	struct hyp_ev_cache *c;
	__u32 slot, n;
	__u64 early;
	bool hit;

	if (!e)                     /* a global function's pointer argument may be NULL */
		return 0;
	hyp_addr_copy(k.addr, e->saddr);
	k.family = e->family;
	k.kind = e->proto ? HYP_EV_MATCH : HYP_EV_BLOCK;
	slot = ev_cache_slot(&k);
	c = bpf_map_lookup_elem(&ev_cache, &slot);
	hit = c && ev_key_eq(&c->key, &k);
	n = e->ev_pending;
	e->ev_pending = 0;
	if (n) {
		if (hit) {
			__sync_fetch_and_add(&c->pending, n);
		} else {
			struct hyp_sample *s = bpf_map_lookup_elem(&ev_sample, &k);

			if (s)
				s->suppressed += n;
		}
	}
	if (!learn || !hit || now >= c->until_ns)
		return 0;
	/* rounded up, so the entry's quiet time ends no later than the pair's */
	early = e->until_ns > c->until_ns ? (e->until_ns - c->until_ns + (1 << HYP_VCACHE_EV_SHIFT) - 1) >>
						    HYP_VCACHE_EV_SHIFT : 0;
	e->ev_early = early < HYP_VCACHE_EV_UNKNOWN ? early : HYP_VCACHE_EV_UNKNOWN;
	e->ev_pending = 1;
	hyp_count(HYP_C_EV_SAMPLED);
	return 1;
}

/* This hit's event: suppressed by the entry while the pair's quiet time lasts (p->ev_done), else
 * learnt or left to xdp_finish(). */
static __always_inline void vc_ev(struct hyp_pkt *p, struct hyp_vcache *e)
{
	if (!p->cfg->ev_rate)
		return;
	if (e->ev_pending < HYP_VCACHE_EV_MAX &&
	    pkt_now(p) + ((__u64)e->ev_early << HYP_VCACHE_EV_SHIFT) < e->until_ns) {
		e->ev_pending += 1;
		hyp_count(HYP_C_EV_SAMPLED);
		p->ev_done = 1;
	} else if (hyp_vc_ev(e, pkt_now(p), 1)) {
		p->ev_done = 1;
	}
}

/* Hand the events entry e suppressed to their pair (ev_pending is 0 after). */
static __always_inline void vc_ev_flush(struct hyp_vcache *e)
{
	if (e->ev_pending)
		hyp_vc_ev(e, 0, 0);
}

/* End entry e: it keeps its key (and a source entry its hits) for the refill; its events go to
 * their pair now. */
static __always_inline void vc_empty(struct hyp_vcache *e)
{
	e->until_ns = 0;
	vc_ev_flush(e);
}

/* Build the key of a flow entry (flow) or a source entry into v; returns its slot: a multiplicative
 * hash of the folded words, top bits (the best mixed), masked by the power-of-two slot count, which
 * also bounds it for the verifier. */
static __always_inline __u32 vc_key_of(const __u8 *saddr, const __u8 *daddr, __u16 sport, __u16 dport, __u8 proto,
				       __u8 family, bool flow, struct hyp_vcache *v)
{
	const __u32 *w = (const __u32 *)saddr, *d = (const __u32 *)daddr;
	__u32 h = w[0] ^ w[1] ^ w[2] ^ w[3] ^ family;

	hyp_addr_copy(v->saddr, saddr);
	if (flow) {
		hyp_addr_copy(v->daddr, daddr);
		v->sport = sport;
		v->dport = dport;
		v->proto = proto;
		h ^= d[0] ^ d[1] ^ d[2] ^ d[3] ^ ((__u32)sport << 16 | dport) ^ ((__u32)proto << 8);
	} else {
		__builtin_memset(v->daddr, 0, sizeof(v->daddr));
		v->sport = 0;
		v->dport = 0;
		v->proto = 0;
	}
	v->family = family;
	return (h * 2654435761u) >> 16 & (HYP_VCACHE_SLOTS - 1);
}

/* This packet's key: the flow entry of its sending side, or its source entry. */
static __always_inline __u32 vc_key(const struct hyp_pkt *p, bool flow, struct hyp_vcache *v)
{
	return vc_key_of(p->saddr, p->daddr, p->sport, p->dport, p->proto, p->family, flow, v);
}

static __always_inline bool vc_key_eq(const struct hyp_vcache *a, const struct hyp_vcache *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && a->sport == b->sport &&
	       a->dport == b->dport && a->proto == b->proto && a->family == b->family;
}

/* This packet's live entry of one kind, or NULL. A stale one is emptied (until_ns 0) but keeps its key
 * and pending hits, for the refill to carry them to their ban. */
static __always_inline struct hyp_vcache *vc_live(struct hyp_pkt *p, bool flow)
{
	struct hyp_vcache k __attribute__((aligned(8)));
	struct hyp_vcache *e;
	__u32 slot = vc_key(p, flow, &k);

	e = bpf_map_lookup_elem(&vcache, &slot);
	if (!e || !e->until_ns || !vc_key_eq(e, &k))
		return NULL;
	if (e->serial != p->cfg->serial || e->epoch != p->epoch || pkt_now(p) >= e->until_ns) {
		vc_empty(e);
		return NULL;
	}
	return e;
}

/* Is this packet's sending side a dropped flow? DROP_SIG (p->sig, p->action set) or HYP_CONTINUE.
 * Needs the ports (parse_l4 done). */
static __always_inline int vc_check(struct hyp_pkt *p)
{
	struct hyp_vcache *e;

	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return HYP_CONTINUE;
	/* SYN, FIN and RST change the flow's state (a SYN may open a new connection on the 4-tuple):
	 * conntrack sees them all */
	if (p->proto == IPPROTO_TCP && (p->tcp_flags & (HYP_TCP_SYN | HYP_TCP_FIN | HYP_TCP_RST)))
		return HYP_CONTINUE;
	e = vc_live(p, true);
	if (!e)
		return HYP_CONTINUE;
	p->sig = e->sig;
	p->action = e->action;
	p->state = e->state;
	hyp_count(HYP_C_VCACHE_HIT);
	vc_ev(p, e);
	return HYP_R_DROP_SIG;
}

/* Is this packet's source banned, as far as the cache knows? DROP_BANNED or HYP_CONTINUE. Every
 * HYP_VCACHE_BAN_MIN-th packet goes to the ban trie instead, which carries the counted hits over. */
static __always_inline int vc_check_src(struct hyp_pkt *p)
{
	struct hyp_vcache *e = vc_live(p, false);

	if (!e)
		return HYP_CONTINUE;
	if (e->hits >= HYP_VCACHE_BAN_MIN - 1) {
		vc_empty(e);
		return HYP_CONTINUE;
	}
	e->hits += 1;
	hyp_count(HYP_C_VCACHE_HIT);
	vc_ev(p, e);
	return HYP_R_DROP_BANNED;
}

/* Write entry e for key k (the caller settled the ban hits the slot held before; its events go to
 * their pair here). */
static __always_inline void vc_write(struct hyp_pkt *p, struct hyp_vcache *e, const struct hyp_vcache *k,
				     __u64 until, __u32 sig, __u8 action)
{
	vc_ev_flush(e);
	hyp_addr_copy(e->saddr, k->saddr);
	hyp_addr_copy(e->daddr, k->daddr);
	e->sport = k->sport;
	e->dport = k->dport;
	e->proto = k->proto;
	e->family = k->family;
	e->sig = sig;
	e->action = action;
	e->state = p->state;
	e->hits = 0;
	e->ev_early = HYP_VCACHE_EV_UNKNOWN;
	e->serial = p->cfg->serial;
	e->epoch = p->epoch;
	e->until_ns = until;
}

static __always_inline bool vc_enabled(const struct hyp_pkt *p)
{
	return p->cfg->vcache && !policy_is_monitor(p->cfg);
}

/* Remember the sender of the HYP_FF_DROP flow this packet belongs to. Not in monitor mode: nothing is
 * dropped there, every packet takes the whole path. A source entry's pending hits in the slot are
 * lost (at most HYP_VCACHE_BAN_MIN - 1, and only on a hash collision). */
static __always_inline void vc_fill(struct hyp_pkt *p)
{
	struct hyp_vcache k __attribute__((aligned(8)));
	struct hyp_vcache *e;
	struct hyp_flow *f;
	__u32 slot;

	/* only TCP/UDP flows are scanned, so only they are ever marked */
	if (!vc_enabled(p) || !p->flow || !(p->flow->flags & HYP_FF_DROP))
		return;
	f = p->flow;
	slot = vc_key(p, true, &k);
	e = bpf_map_lookup_elem(&vcache, &slot);
	/* what conntrack would answer for the flow's next packet (ct_update) */
	if (e)
		vc_write(p, e, &k, pkt_now(p) + HYP_VCACHE_TTL_NS,
			 f->drop_serial == p->cfg->serial ? f->drop_sig : HYP_EV_NO_SIG, f->drop_action);
}

/* A new flow on this 4-tuple (conntrack deleted or expired the old one, which user space is not told
 * of): forget what this CPU cached for its sending side, as seen by this packet (reverse: the packet
 * is egress, and the remote side is the sender the cache knows). */
static __always_inline void vc_forget(struct hyp_pkt *p)
{
	struct hyp_vcache k __attribute__((aligned(8)));
	struct hyp_vcache *e;
	__u32 slot;

	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return;
	if (!p->egress)
		slot = vc_key(p, true, &k);
	else
		slot = vc_key_of(p->daddr, p->saddr, p->dport, p->sport, p->proto, p->family, true, &k);
	e = bpf_map_lookup_elem(&vcache, &slot);
	if (e && e->until_ns && vc_key_eq(e, &k))
		vc_empty(e);
}

#endif /* HYP_VCACHE_H */
