/* Per-source token buckets: new TCP connections/s and packets/s (map "rl"), and the bucket maths. */
#ifndef HYP_RATELIMIT_H
#define HYP_RATELIMIT_H

/*
 * Token bucket in nano-tokens (1e9 = one token) so refill needs no division on the common path:
 * elapsed_ns * rate nano-tokens. burst 0 means one second's worth (burst = rate). A bucket whose
 * last_ns is 0 has never been used and starts full. Overflow: cap = burst * 1e9 <= 4.3e18 < 2^64,
 * and the refill product is only formed when elapsed < cap / rate, so it is < cap as well.
 * Updates are not atomic: two CPUs refilling the same source at once may lose a token either way,
 * which a rate limit tolerates (the alternative, a spin lock per source, costs more than it saves).
 */
static __always_inline bool rl_bucket_take(__u64 *tokens, __u64 *last, __u64 rate, __u64 burst, __u64 now)
{
	__u64 cap, t = *tokens;

	if (!burst)
		burst = rate;
	cap = burst * HYP_NS_PER_S;
	if (*last == 0) {
		t = cap;
	} else if (now > *last) {
		__u64 elapsed = now - *last;

		if (elapsed >= cap / rate) {
			t = cap;
		} else {
			t += elapsed * rate;
			if (t > cap)
				t = cap;
		}
	}
	*last = now;
	if (t < HYP_NS_PER_S) {
		*tokens = t;
		return false;
	}
	*tokens = t - HYP_NS_PER_S;
	return true;
}

/* The rate-limit identity of a source: its address, IPv6 cut to cfg->rl_v6_prefix bits. */
static __always_inline void rl_src_key(const struct hyp_pkt *p, struct hyp_src_key *k)
{
	__u32 plen = p->cfg->rl_v6_prefix;
	__u64 hi, lo;

	hyp_addr_copy(k->addr, p->saddr);
	k->family = p->family;
	if (p->family != HYP_AF_INET6)
		return;
	if (!plen)
		plen = HYP_RL_V6_PREFIX_DEFAULT;
	if (plen >= 128)
		return;
	hi = bpf_be64_to_cpu(((__u64 *)k->addr)[0]);
	lo = bpf_be64_to_cpu(((__u64 *)k->addr)[1]);
	if (plen <= 64) {
		/* shifting a 64-bit value by 64 is undefined: prefix 0 is spelled out */
		hi = plen ? hi & (~0ULL << (64 - plen)) : 0;
		lo = 0;
	} else {
		lo &= ~0ULL << (128 - plen);
	}
	((__u64 *)k->addr)[0] = bpf_cpu_to_be64(hi);
	((__u64 *)k->addr)[1] = bpf_cpu_to_be64(lo);
}

/* The source's entry, created on first use (buckets full). NULL only if the LRU map could not take an
 * entry; the caller then fails open rather than dropping traffic it cannot account. */
static __always_inline struct hyp_rl *rl_entry(struct hyp_pkt *p)
{
	struct hyp_src_key k __attribute__((aligned(8))) = {};
	struct hyp_rl *e;

	if (p->rl)
		return p->rl;
	rl_src_key(p, &k);
	e = bpf_map_lookup_elem(&rl, &k);
	if (!e) {
		struct hyp_rl *n = hyp_scratch(sizeof(*n));

		if (!n)
			return NULL;
		bpf_map_update_elem(&rl, &k, n, BPF_NOEXIST);
		e = bpf_map_lookup_elem(&rl, &k);
	}
	p->rl = e;
	return e;
}

/* Packets/s per source. cfg->pps_rate 0 disables it without touching the map; a per-source override
 * (hyp_rl.pps_rate, written by user space) replaces the rate while the limit is enabled. */
static __always_inline int rl_pps(struct hyp_pkt *p)
{
	const struct hyp_config *cfg = p->cfg;
	struct hyp_rl *e;

	if (!cfg->pps_rate)
		return HYP_CONTINUE;
	e = rl_entry(p);
	if (!e)
		return HYP_CONTINUE;
	if (!rl_bucket_take(&e->pps_tokens, &e->pps_last_ns, e->pps_rate ?: cfg->pps_rate, cfg->pps_burst,
			    hyp_now_fine(cfg)))
		return HYP_R_DROP_RATE_PPS;
	return HYP_CONTINUE;
}

/* New TCP connections/s per source (charged for SYNs that would open a flow); same rules as rl_pps. */
static __always_inline int rl_syn(struct hyp_pkt *p)
{
	const struct hyp_config *cfg = p->cfg;
	struct hyp_rl *e;

	if (!cfg->syn_rate)
		return HYP_CONTINUE;
	e = rl_entry(p);
	if (!e)
		return HYP_CONTINUE;
	if (!rl_bucket_take(&e->syn_tokens, &e->syn_last_ns, e->syn_rate ?: cfg->syn_rate, cfg->syn_burst,
			    hyp_now_fine(cfg)))
		return HYP_R_DROP_RATE_SYN;
	return HYP_CONTINUE;
}

#endif /* HYP_RATELIMIT_H */
