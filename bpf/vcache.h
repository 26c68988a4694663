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
		e->until_ns = 0;
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
		e->until_ns = 0;
		return HYP_CONTINUE;
	}
	e->hits += 1;
	hyp_count(HYP_C_VCACHE_HIT);
	return HYP_R_DROP_BANNED;
}

/* Write entry e for key k (the caller settled what the slot held before). */
static __always_inline void vc_write(struct hyp_pkt *p, struct hyp_vcache *e, const struct hyp_vcache *k,
				     __u64 until, __u32 sig, __u8 action)
{
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
		e->until_ns = 0;
}

#endif /* HYP_VCACHE_H */
