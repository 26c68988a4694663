/* Source allowlist and ban lists (LPM tries): the first judgement on every IP packet. */
#ifndef HYP_BLOCKLIST_H
#define HYP_BLOCKLIST_H

/*
 * Is this trie empty? Read straight from the kernel's struct lpm_trie behind the map pointer (BTF,
 * CO-RE-relocated; one plain load, no helper call): even an empty trie's lookup is a helper call and
 * a return through the SRSO/retpoline thunks, paid by every packet while the allowlist or a family's
 * ban list is unused. n_entries changes under the trie's lock; a packet racing the first insert is
 * judged as if it came just before it. Reading a map's kernel struct needs CAP_PERFMON (or
 * CAP_SYS_ADMIN) at load time, which the daemon has anyway for XDP and bpffs.
 * One local flavour of the struct per map (libbpf matches lpm_trie___x to the kernel's lpm_trie):
 * with a single type clang shares the relocated field offset between the four reads in a register
 * and adds it to the map pointer, which the verifier refuses ("pointer arithmetic on map_ptr").
 */
#define HYP_TRIE_FLAVOUR(x) \
	struct lpm_trie___##x { size_t n_entries; } __attribute__((preserve_access_index))
HYP_TRIE_FLAVOUR(allow4);
HYP_TRIE_FLAVOUR(allow6);
HYP_TRIE_FLAVOUR(bans4);
HYP_TRIE_FLAVOUR(bans6);
#define blk_trie_empty(map) (((struct lpm_trie___##map *)&map)->n_entries == 0)

/*
 * Does the pre-filter say that no entry of this trie covers the packet's source? Then the trie is not
 * looked up: a lookup is a helper call through the SRSO return thunk and a trie walk, ~15 ns paid by
 * every packet of every flow and every SYN of a flood once the list has a single entry; this is one
 * inlined array load. User space keeps the bit exact (runtime/blkfilter.c): it clears a block's bit
 * before it writes an entry covering the block, and sets it after the last such entry is deleted.
 * A packet racing a write is judged as if it came just before it, as with an empty trie.
 */
static __always_inline bool blk_none(__u32 trie, const struct hyp_pkt *p)
{
	__u32 b = hyp_blkf_block(p->family, p->saddr);
	__u32 i = trie * HYP_BLKF_WORDS + b / 64;
	__u64 *w = bpf_map_lookup_elem(&blk_filter, &i);

	return w && (*w >> (b & 63) & 1);
}

/* Allowlisted sources skip everything else (bans, rate limits, conntrack, signatures). */
static __always_inline int allow_check(const struct hyp_pkt *p)
{
	void *hit;

	if (p->family == HYP_AF_INET) {
		struct hyp_lpm4_key k = { .prefixlen = 32 };

		if (blk_trie_empty(allow4) || blk_none(HYP_BLKF_ALLOW4, p))
			return HYP_CONTINUE;

		*(__u32 *)k.addr = *(__u32 *)p->saddr;
		hit = bpf_map_lookup_elem(&allow4, &k);
	} else {
		struct hyp_lpm6_key k = { .prefixlen = 128 };

		if (blk_trie_empty(allow6) || blk_none(HYP_BLKF_ALLOW6, p))
			return HYP_CONTINUE;
		__builtin_memcpy(k.addr, p->saddr, 16);
		hit = bpf_map_lookup_elem(&allow6, &k);
	}
	return hit ? HYP_R_PASS_ALLOW : HYP_CONTINUE;
}

/* The ban covering (family, addr): one LPM lookup, the longest matching prefix. Two call sites each
 * with a constant map. */
static __always_inline struct hyp_ban *ban_lookup(__u8 family, const __u8 *addr)
{
	if (family == HYP_AF_INET) {
		struct hyp_lpm4_key k = { .prefixlen = 32 };

		*(__u32 *)k.addr = *(const __u32 *)addr;
		return bpf_map_lookup_elem(&bans4, &k);
	} else {
		struct hyp_lpm6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, addr, 16);
		return bpf_map_lookup_elem(&bans6, &k);
	}
}

/*
 * Cache the verdict for a source its ban b just dropped (bpf/vcache.h), carrying over the hits the
 * slot counted: this source's (a refill), or on a collision another source's, found again through
 * its own ban. Only a ban with HYP_VCACHE_BAN_MIN hits is cached, so a few packets are counted
 * exactly; a cached one is re-judged at its own expiry.
 */
static __always_inline void ban_cache(struct hyp_pkt *p, struct hyp_ban *b)
{
	struct hyp_vcache k __attribute__((aligned(8)));
	struct hyp_vcache *e;
	__u64 until;
	__u32 slot;

	if (!vc_enabled(p))
		return;
	slot = vc_key(p, false, &k);
	e = bpf_map_lookup_elem(&vcache, &slot);
	if (!e)
		return;
	if (vc_key_eq(e, &k)) {
		b->hits += e->hits;
		e->hits = 0;
	}
	if (b->hits < HYP_VCACHE_BAN_MIN)
		return;
	if (e->hits && !e->proto) {
		struct hyp_ban *o = ban_lookup(e->family, e->saddr);

		if (o)
			o->hits += e->hits;
	}
	until = pkt_now(p) + HYP_VCACHE_TTL_NS;
	if (b->expires_ns && b->expires_ns < until)
		until = b->expires_ns;
	vc_write(p, e, &k, until, HYP_EV_NO_SIG, 0);
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

	/* only the packet's family's list is consulted, and an empty one (or one without an entry
	 * covering the source's block) not at all */
	if (p->family == HYP_AF_INET ? blk_trie_empty(bans4) || blk_none(HYP_BLKF_BANS4, p) :
				       blk_trie_empty(bans6) || blk_none(HYP_BLKF_BANS6, p))
		return HYP_CONTINUE;
	b = ban_lookup(p->family, p->saddr);
	if (!b)
		return HYP_CONTINUE;
	if (b->expires_ns && pkt_now(p) >= b->expires_ns)
		return HYP_CONTINUE;
	b->hits += 1;
	ban_cache(p, b);
	return HYP_R_DROP_BANNED;
}

/* The verdict cache's answer for a banned source, before the allowlist and the tries (a cached ban
 * implies no allowlist entry as of its epoch); only while the family has bans at all, and not again
 * where the express lane found no entry (bpf/express.h). */
static __always_inline int ban_check_cached(struct hyp_pkt *p)
{
	if (!p->cfg->vcache || p->xp_src_miss ||
	    (p->family == HYP_AF_INET ? blk_trie_empty(bans4) : blk_trie_empty(bans6)))
		return HYP_CONTINUE;
	return vc_check_src(p);
}

#endif /* HYP_BLOCKLIST_H */
