/* Source allowlist and ban lists (LPM tries): the first judgement on every IP packet. */
#ifndef HYP_BLOCKLIST_H
#define HYP_BLOCKLIST_H

/* Allowlisted sources skip everything else (bans, rate limits, conntrack, signatures). An empty trie
 * answers without walking, so the lookup costs little when the list is unused. */
static __always_inline int allow_check(const struct hyp_pkt *p)
{
	void *hit;

	if (p->family == HYP_AF_INET) {
		struct hyp_lpm4_key k = { .prefixlen = 32 };

		*(__u32 *)k.addr = *(__u32 *)p->saddr;
		hit = bpf_map_lookup_elem(&allow4, &k);
	} else {
		struct hyp_lpm6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, p->saddr, 16);
		hit = bpf_map_lookup_elem(&allow6, &k);
	}
	return hit ? HYP_R_PASS_ALLOW : HYP_CONTINUE;
}

/*
 * One LPM lookup decides a banned source: the longest matching prefix wins. A ban whose expires_ns is
 * past (on the datapath clock) no longer bans; user space deletes it later. If the longest match is
 * expired a shorter, live one is not consulted until then: the price of keeping this one lookup.
 * hits is bumped without atomics (ABI: approximate): an atomic add on a shared line would make the
 * flood path bounce that line between CPUs on every packet.
 */
static __always_inline int ban_check(struct hyp_pkt *p)
{
	struct hyp_ban *b;

	if (p->family == HYP_AF_INET) {
		struct hyp_lpm4_key k = { .prefixlen = 32 };

		*(__u32 *)k.addr = *(__u32 *)p->saddr;
		b = bpf_map_lookup_elem(&bans4, &k);
	} else {
		struct hyp_lpm6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, p->saddr, 16);
		b = bpf_map_lookup_elem(&bans6, &k);
	}
	if (!b)
		return HYP_CONTINUE;
	if (b->expires_ns && pkt_now(p) >= b->expires_ns)
		return HYP_CONTINUE;
	b->hits += 1;
	return HYP_R_DROP_BANNED;
}

#endif /* HYP_BLOCKLIST_H */
