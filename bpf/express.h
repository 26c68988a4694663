/* The express lane: verdict cache hits answered before the pipeline is entered. */
#ifndef HYP_EXPRESS_H
#define HYP_EXPRESS_H

/*
 * On a verdict cache hit (bpf/vcache.h: a banned source's flood, a dropped flow's, an established
 * flow's fast path) what is left to do is small, and the pipeline's own shape was most of its cost:
 * struct hyp_pkt zeroed and filled in memory (it has to stay there, hyp_xdp), the three policy
 * lookups before anything is known, the general exit. This lane reads the frame into registers,
 * probes the cache, and once an entry's key matched reads only the state epoch: the config the entry
 * was made under is noted in the books (vc_note_config()). It books a hit in one place (xp[], folded
 * by user space into the verdict's stats and the counters: lib/hyperion_abi.h enum hyp_xp). In
 * bench/micro (interleaved A/B against the build without it, on the SRSO machine) the established
 * fast path went from ~60 to ~48 ns, a cached ban from ~53 to ~44, a dropped flow's cached drop from
 * ~60 to ~47; a packet it declines pays 3-12 ns more (docs/design.md "Express lane"). Reading the
 * config itself (the generation, the policy, their checks) and booking six things cost a dropped
 * flow's hit ~2 ns of its ~10 on the machine of docs/benchmarks.md. Counter vcache_express counts its
 * hits (also in vcache_hits). Config vcache = HYP_VCACHE_NO_EXPRESS makes it decline every hit, for
 * the tests that check that both ways give the same answers and books (tests/bpf/test_express.c).
 *
 * It answers only what the pipeline answers for the same packet, with the same effects (the stats
 * entry, the counters, the entry's counts and suppressed events):
 *  - frames parse_fast() takes, by its own checks (parse.h: parse_fast_ipv4/6, parse_fast_l4_len);
 *    any other frame goes to the pipeline, which parses it from the start;
 *  - the source entry (ban_check_cached(), only while the family has bans) and the sending side's
 *    flow entry (vc_check(), TCP segments with ACK alone, and UDP), in the pipeline's order or the
 *    other way round, which gives the same answers (xp_probe());
 *  - a live entry (epoch, config, clock, as vc_live() judges it: xp_live()) that its hit path would
 *    answer with nothing else to do: a source entry below its carry, a flow drop entry, a pass entry
 *    that needs neither the scanner nor its carry, and drops only while the entry's quiet time
 *    suppresses the event (the first branch of vc_ev()).
 * The config is the entry's own: a config changes only with a generation flip, which user space
 * follows with an epoch bump. Between the two (a few syscalls apart) entries made under the old and the
 * new config share the epoch, and the lane answers each as the config last noted on this CPU would,
 * as a packet in flight during the flip is judged under either config.
 * Everything else returns HYP_CONTINUE before anything was written, and the pipeline decides the
 * packet as if this lane did not exist. One exception, for the SYN flood where every SYN comes from a
 * new source: a source probe that found no entry with this key (vc_live() would return NULL without
 * touching the slot) sets *src_miss, and ban_check_cached() does not probe again.
 */

/* The L4 fields a flow entry is keyed by, and what a hit books. */
struct xp_l4 {
	__u16 sport, dport;
	__u32 pay_len;          /* as parse_l4_fast() computes it */
};

/* A TCP or UDP header parse_l4_fast() takes at the constant offset off, and that vc_check() probes
 * the cache for: a TCP segment with ACK alone, or UDP. */
static __always_inline bool xp_l4(void *data, void *data_end, __u32 off, __u32 l3_end, __u8 proto,
				  struct xp_l4 *h)
{
	__u8 *l4 = data + off;
	__u32 hlen = parse_fast_l4_len(data, data_end, off, l3_end, proto,
				       HYP_TCP_SYN | HYP_TCP_FIN | HYP_TCP_RST | HYP_TCP_ACK, HYP_TCP_ACK);

	if (!hlen)
		return false;
	h->sport = ((__u16 *)l4)[0];
	h->dport = ((__u16 *)l4)[1];
	h->pay_len = l3_end - (off + hlen);
	return true;
}

static __always_inline __u32 xp_fold(__u64 a, __u64 b)
{
	__u64 x = a ^ b;

	return (__u32)x ^ (__u32)(x >> 32);
}

/* The live-entry test of vc_live() once the key matched: the state epoch (gen[HYP_GEN_EPOCH], the one
 * lookup) is the entry's, so the config noted in the books (vc_note_config()) is the one the entry was
 * made under, and it lets the lane answer; *now: the datapath clock. false: the pipeline decides. */
static __always_inline bool xp_live(struct hyp_books *b, const struct hyp_vcache *e, __u64 *now)
{
	__u32 ek = HYP_GEN_EPOCH, *ep = bpf_map_lookup_elem(&gen, &ek);

	if (!ep || e->epoch != *ep || !(b->xp_flags & HYP_XPF_ANSWER))
		return false;
	*now = hyp_clock_coarse(b) + b->xp_clock_offset_ns;
	return *now < e->until_ns;
}

/* vc_ev()'s first branch: events sampled, and the entry's quiet time on. */
static __always_inline bool xp_quiet(const struct hyp_books *b, const struct hyp_vcache *e, __u64 now)
{
	return (b->xp_flags & HYP_XPF_EV_SAMPLED) && vc_quiet(e, now);
}

/* The packet's exit, as xdp_finish() books a packet without an event: under its kind in xp[], which
 * user space folds into the verdict's stats and the counters (lib/hyperion_abi.h enum hyp_xp). */
static __always_inline int xp_book(struct hyp_books *b, enum hyp_xp kind, __u32 len, int act)
{
	b->xp[kind].packets += 1;       /* per-CPU: a plain add */
	b->xp[kind].bytes += len;
	return act;
}

/* A banned source's entry: DROP_BANNED answered here (vc_check_src()), or HYP_CONTINUE. s0, s1: the
 * source as the cache stores it (IPv4: s0 is the address, s1 zero). */
static __always_inline int xp_source(struct hyp_books *b, __u64 s0, __u64 s1, __u8 family, __u32 len,
				     bool *src_miss)
{
	__u32 slot = vc_slot_folded(xp_fold(s0, s1), 0, 0, 0, 0, family, false);
	struct hyp_vcache *e = bpf_map_lookup_elem(&vcache, &slot);
	__u64 now;

	if (!e)
		return HYP_CONTINUE;
	if (!e->until_ns || !vc_is_src_words(e, s0, s1, family)) {
		*src_miss = true;
		return HYP_CONTINUE;
	}
	if (!xp_live(b, e, &now) || e->hits >= HYP_VCACHE_BAN_MIN - 1 || !xp_quiet(b, e, now))
		return HYP_CONTINUE;
	e->hits += 1;
	e->ev_pending += 1;
	return xp_book(b, HYP_XP_BANNED, len, XDP_DROP);
}

/* The sending side's flow entry: DROP_SIG or PASS_FLOW answered here (vc_check()), or HYP_CONTINUE. */
static __always_inline int xp_flow(struct hyp_books *b, __u64 s0, __u64 s1, __u64 d0, __u64 d1,
				   const struct xp_l4 *h, __u8 proto, __u8 family, __u32 len)
{
	__u32 slot = vc_slot_folded(xp_fold(s0, s1), xp_fold(d0, d1), h->sport, h->dport, proto, family, true);
	struct hyp_vcache *e = bpf_map_lookup_elem(&vcache, &slot);
	__u64 now;

	if (!e || !e->until_ns || !vc_is_flow_words(e, s0, s1, d0, d1, h->sport, h->dport, proto, family))
		return HYP_CONTINUE;
	if (!xp_live(b, e, &now))
		return HYP_CONTINUE;
	if (vc_is_pass(e)) {
		/* vc_pass(): the scanner's packets and the carry are the pipeline's */
		if ((h->pay_len && e->action == HYP_VC_PASS) || e->hits >= HYP_VCACHE_PASS_CARRY)
			return HYP_CONTINUE;
		e->hits += 1;
		e->bytes += len;
		if (h->pay_len && e->action == HYP_VC_PASS_DEPTH)
			hyp_count_in(b, HYP_C_SCAN_SKIPPED);
		return xp_book(b, HYP_XP_PASS, len, XDP_PASS);
	}
	if (!xp_quiet(b, e, now))
		return HYP_CONTINUE;
	e->ev_pending += 1;
	return xp_book(b, HYP_XP_SIG, len, XDP_DROP);
}

/*
 * The two probes, in the order the last answer suggests. The pipeline probes the source entry first,
 * then the flow entry; the lane may take them the other way round because a live flow entry implies
 * that no source entry of its sender is live: the flow entry was made by a packet that no ban stopped,
 * and since then the ban list changed only by expiry, or the epoch would have moved on (a ban written
 * or removed bumps it, and removing an expired ban, which may uncover a shorter live one, is a
 * removal); a source entry of a ban that expired since ended with it. The same holds for the
 * allowlist (an entry added bumps the epoch). So while the family has bans,
 * a flood of one flow (a dropped flow's, an established flow's) pays for the source probe only once
 * its flow probe missed (bench/micro, interleaved: a dropped flow's hit with a ban list loaded, 13 ->
 * 12 ns), and a banned source's flood, whose frames have no flow entry, still pays one probe: after a
 * source hit the source goes first (b->xp_src_first) until a flow hit sets the order back.
 * The L4 header is read only when the flow entry is probed: a source hit first needs none of it.
 * bans: the family has bans; s0, s1, d0, d1: the addresses as the cache stores them; off, l3_end: the
 * L4 header's offset and the end of the IP packet (xp_l4()).
 */
static __always_inline int xp_probe(struct hyp_books *b, bool bans, __u64 s0, __u64 s1, __u64 d0, __u64 d1,
				    void *data, void *data_end, __u32 off, __u32 l3_end, __u8 proto, __u8 family,
				    __u32 len, bool *src_miss)
{
	bool src_first = bans && b->xp_src_first;
	struct xp_l4 h;
	int r;

	if (src_first) {
		r = xp_source(b, s0, s1, family, len, src_miss);
		if (r != HYP_CONTINUE || !*src_miss)
			return r;
	}
	if (xp_l4(data, data_end, off, l3_end, proto, &h)) {
		r = xp_flow(b, s0, s1, d0, d1, &h, proto, family, len);
		if (r != HYP_CONTINUE) {
			if (src_first)
				b->xp_src_first = 0;
			return r;
		}
	}
	if (!bans || src_first)
		return HYP_CONTINUE;
	r = xp_source(b, s0, s1, family, len, src_miss);
	if (r != HYP_CONTINUE)
		b->xp_src_first = 1;
	return r;
}

/* parse_fast()'s IPv4 conditions, then the probes. Each family is its own straight path with
 * constant offsets: with one path for both, clang merged the two families' fields and spilled and
 * re-zeroed them at every branch, and the lane lost a third of its gain. */
static __always_inline int xp_ipv4(struct hyp_books *b, void *data, void *data_end, __u32 len, bool *src_miss)
{
	struct iphdr *ip = parse_fast_ipv4(data, data_end);
	__u32 end, off = sizeof(struct ethhdr) + sizeof(*ip);

	if (!ip)
		return HYP_CONTINUE;
	end = sizeof(struct ethhdr) + bpf_ntohs(ip->tot_len);
	return xp_probe(b, !blk_trie_empty(bans4), ip->saddr, 0, ip->daddr, 0, data, data_end, off,
			parse_l3_end_of(end, len), ip->protocol, HYP_AF_INET, len, src_miss);
}

/* parse_fast()'s IPv6 conditions, then the probes. */
static __always_inline int xp_ipv6(struct hyp_books *b, void *data, void *data_end, __u32 len, bool *src_miss)
{
	struct ipv6hdr *ip6 = parse_fast_ipv6(data, data_end);
	__u32 end, off = sizeof(struct ethhdr) + sizeof(*ip6);
	const __u64 *s, *d;

	if (!ip6)
		return HYP_CONTINUE;
	s = (const __u64 *)&ip6->saddr;
	d = (const __u64 *)&ip6->daddr;
	end = off + bpf_ntohs(ip6->payload_len);
	return xp_probe(b, !blk_trie_empty(bans6), s[0], s[1], d[0], d[1], data, data_end, off,
			parse_l3_end_of(end, len), ip6->nexthdr, HYP_AF_INET6, len, src_miss);
}

/* The lane: an XDP action, or HYP_CONTINUE for the pipeline (*src_miss: see above). Untagged
 * Ethernet only, as parse_fast(). b: this CPU's books, which hyp_xdp() looks up first, once for the
 * lane and the pipeline: a hit books in them (xp[], the coarse clock, the probe order). Looked
 * up only after a key matched, the verifier walked past its 1M instructions. */
static __always_inline int xp_run(struct hyp_books *b, void *data, void *data_end, bool *src_miss)
{
	struct ethhdr *eth = data;
	__u32 len = data_end - data;

	if ((void *)(eth + 1) > data_end)
		return HYP_CONTINUE;
	if (eth->h_proto == bpf_htons(HYP_ETH_P_IP))
		return xp_ipv4(b, data, data_end, len, src_miss);
	if (eth->h_proto == bpf_htons(HYP_ETH_P_IPV6))
		return xp_ipv6(b, data, data_end, len, src_miss);
	return HYP_CONTINUE;
}

#endif /* HYP_EXPRESS_H */
