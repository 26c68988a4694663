/* Verdict cache: per-CPU memory of dropped flows, so their flood is dropped without a helper call. */
#ifndef HYP_VCACHE_H
#define HYP_VCACHE_H

/*
 * A flow that sent a drop-signature match is dropped for the rest of its life (HYP_FF_DROP,
 * docs/design.md "Dropped flows"), and an attack flood keeps sending on it. Reaching that verdict
 * through conntrack costs a flow lookup per packet, a helper call paid through the SRSO return
 * thunk, behind the allowlist and ban tries (two more calls when they are in use). This cache
 * remembers the verdict in a per-CPU array, which the verifier inlines into a few loads: a hit costs
 * the parse, an inline hash, one key compare and the stats.
 *
 * An entry is keyed by the sending side's own 5-tuple (not the canonical key: only that side is
 * dropped) and is good for at most HYP_VCACHE_TTL_NS, and only while the generation (policy flips,
 * monitor mode, clock offset) and the state epoch (gen[HYP_GEN_EPOCH], bumped by user space when it
 * evicts flows or adds to the allowlist) are those it was made under. The TTL sends one packet per
 * entry and second through conntrack, which keeps the flow's last_seen (its life) current; what
 * user space is not told of (an LRU eviction of the flow) is outlived by at most the TTL.
 * What a hit does not do: add to the flow's packet and byte counters (stats[] counts every packet).
 */
#define HYP_VCACHE_TTL_NS ((__u64)HYP_VCACHE_TTL_S * HYP_NS_PER_S)   /* staleness bound vs. refresh cost */

static __always_inline __u32 vc_epoch(void)
{
	__u32 k = HYP_GEN_EPOCH;
	__u32 *e = bpf_map_lookup_elem(&gen, &k);

	return e ? *e : 0;
}

/* Build this packet's key into v; returns its slot: a multiplicative hash of the folded words, top
 * bits (the best mixed), masked by the power-of-two slot count, which also bounds it for the verifier. */
static __always_inline __u32 vc_key(const struct hyp_pkt *p, struct hyp_vcache *v)
{
	const __u32 *w = (const __u32 *)p->saddr, *d = (const __u32 *)p->daddr;

	hyp_addr_copy(v->saddr, p->saddr);
	hyp_addr_copy(v->daddr, p->daddr);
	v->sport = p->sport;
	v->dport = p->dport;
	v->proto = p->proto;
	v->family = p->family;
	return ((w[0] ^ w[1] ^ w[2] ^ w[3] ^ d[0] ^ d[1] ^ d[2] ^ d[3] ^ ((__u32)p->sport << 16 | p->dport) ^
		 p->proto) * 2654435761u) >> 16 & (HYP_VCACHE_SLOTS - 1);
}

static __always_inline bool vc_key_eq(const struct hyp_vcache *a, const struct hyp_vcache *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && a->sport == b->sport &&
	       a->dport == b->dport && a->proto == b->proto && a->family == b->family;
}

/* Is this packet's sending side a dropped flow? DROP_SIG (p->sig, p->action set) or HYP_CONTINUE.
 * Needs the ports (parse_l4 done). */
static __always_inline int vc_check(struct hyp_pkt *p)
{
	struct hyp_vcache k __attribute__((aligned(8)));
	struct hyp_vcache *e;
	__u32 slot;

	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return HYP_CONTINUE;
	slot = vc_key(p, &k);
	e = bpf_map_lookup_elem(&vcache, &slot);
	if (!e || !e->until_ns || !vc_key_eq(e, &k))
		return HYP_CONTINUE;
	if (e->gen != p->gen || e->epoch != vc_epoch() || pkt_now(p) >= e->until_ns) {
		e->until_ns = 0;    /* stale: conntrack decides, and refills it */
		return HYP_CONTINUE;
	}
	p->sig = e->sig;
	p->action = e->action;
	hyp_count(HYP_C_VCACHE_HIT);
	return HYP_R_DROP_SIG;
}

/* Remember the sender of the HYP_FF_DROP flow this packet belongs to. Not in monitor mode: nothing is
 * dropped there, every packet takes the whole path. */
static __always_inline void vc_fill(struct hyp_pkt *p)
{
	struct hyp_vcache *e;
	__u32 slot;

	if (!p->cfg->vcache || policy_is_monitor(p->cfg) || !p->flow || !(p->flow->flags & HYP_FF_DROP))
		return;
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return;
	{
		struct hyp_vcache k __attribute__((aligned(8)));

		slot = vc_key(p, &k);
		e = bpf_map_lookup_elem(&vcache, &slot);
		if (!e)
			return;
		/* per-CPU entry: nothing else writes it meanwhile */
		hyp_addr_copy(e->saddr, k.saddr);
		hyp_addr_copy(e->daddr, k.daddr);
		e->sport = k.sport;
		e->dport = k.dport;
		e->proto = k.proto;
		e->family = k.family;
	}
	e->sig = p->sig;
	e->action = p->action;
	e->gen = p->gen;
	e->epoch = vc_epoch();
	e->until_ns = pkt_now(p) + HYP_VCACHE_TTL_NS;
}

#endif /* HYP_VCACHE_H */
