/* Verdict cache: per-CPU memory of dropped flows, so their flood is dropped without a helper call. */
#ifndef HYP_VCACHE_H
#define HYP_VCACHE_H

/*
 * Two floods repeat one verdict: a banned source keeps sending, and a flow that sent a drop-signature
 * match (HYP_FF_DROP, docs/design.md "Dropped flows") keeps sending. Reaching that verdict again costs
 * an LPM lookup (the ban) or a flow lookup (the mark) per packet, each a helper call paid through the
 * SRSO return thunk, behind the allowlist and ban tries. This cache remembers the verdict in a per-CPU
 * array, which the verifier inlines into a few loads: a hit costs the parse, an inline hash, one key
 * compare and the stats. So does the established flow's fast path: a sending side whose packets
 * conntrack passes with nothing to update but its counters (a pass entry, vc_fill_pass()).
 *
 * Three kinds of entries, all only ever a verdict the slow path reached itself:
 *  - source (proto 0): a banned source, cached once its ban counted HYP_VCACHE_BAN_MIN hits;
 *  - flow drop (TCP/UDP): the sending side of a marked flow, keyed by the packet's own 5-tuple (not the
 *    canonical key: only that side is dropped);
 *  - flow pass (TCP/UDP, action enum hyp_vc_pass): the sending side of an established TCP flow or of a
 *    UDP flow. It counts the packets and bytes it passed (hits, bytes) and carries them to the flow
 *    every HYP_VCACHE_PASS_CARRY packets, when it ends, and when the flow ends (conntrack's totals);
 *    user space adds what is still counted here to what it reads of a flow (runtime/vcache.c).
 * An entry is good for at most HYP_VCACHE_TTL_NS (a ban's: not past its expiry; a pass entry's: not
 * past any conntrack timeout), and only while the generation (policy flips, monitor mode, clock offset)
 * and the state epoch (gen[HYP_GEN_EPOCH], bumped by user space on every ban written or removed,
 * allowlist entry added, flow removed and generation flip) are those it was made under. So an unban,
 * a ban, an allowlist entry or a reload ends a cached verdict at once; only what user space is not
 * told of (an LRU eviction of the flow) is outlived, by the TTL at most. What a drop hit does not do:
 * add to the flow's packet and byte counters or refresh its last_seen (the TTL sends one packet per
 * entry and second through conntrack, which does). A ban's hits are counted in the entry and carried
 * to the ban every HYP_VCACHE_BAN_MIN hits and at each refill (blocklist.h).
 */
_Static_assert((HYP_VCACHE_SLOTS & (HYP_VCACHE_SLOTS - 1)) == 0, "slots: a power of two (vc_slot_of)");
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
/* A pass entry carries its counts to the flow, and sends the packet through conntrack (which refreshes
 * the flow's last_seen), once it counted this many packets: one packet in 256 pays the slow path. */
#define HYP_VCACHE_PASS_CARRY 255
_Static_assert(HYP_VCACHE_PASS_CARRY <= 255, "hits is 8 bits wide");

/* Carry a pass entry's counts to its flow (bpf/conntrack.h). */
int hyp_vc_ct(struct hyp_vcache *e);

static __always_inline bool vc_is_pass(const struct hyp_vcache *e)
{
	return e->action >= HYP_VC_PASS;
}

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

/* Is entry e's quiet time on at now (its hit's event is suppressed and counted by the entry)? */
static __always_inline bool vc_quiet(const struct hyp_vcache *e, __u64 now)
{
	return e->ev_pending < HYP_VCACHE_EV_MAX && now + ((__u64)e->ev_early << HYP_VCACHE_EV_SHIFT) < e->until_ns;
}

/* This hit's event: suppressed by the entry while the pair's quiet time lasts (p->ev_done), else
 * learnt or left to xdp_finish(). */
static __always_inline void vc_ev(struct hyp_pkt *p, struct hyp_vcache *e)
{
	if (!p->cfg->ev_rate)
		return;
	if (vc_quiet(e, pkt_now(p))) {
		e->ev_pending += 1;
		hyp_count_in(p->books, HYP_C_EV_SAMPLED);
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

/* Hand on what entry e holds for others: its suppressed events to their pair, a pass entry's counts to
 * its flow. (A source entry's ban hits are settled by blocklist.h, which knows the ban.) */
static __always_inline void vc_settle(struct hyp_vcache *e)
{
	vc_ev_flush(e);
	if (vc_is_pass(e) && e->hits)
		hyp_vc_ct(e);
}

/* End entry e: it keeps its key (and a source entry its hits) for the refill; its events and counts
 * are handed on now. */
static __always_inline void vc_empty(struct hyp_vcache *e)
{
	e->until_ns = 0;
	vc_settle(e);
}

/* The slot of a key (hyperion_abi.h hyp_vcache_hash), masked by the power-of-two slot count, which
 * also bounds it for the verifier; vc_slot_folded() takes the addresses already folded. */
static __always_inline __u32 vc_slot_of(const __u8 *saddr, const __u8 *daddr, __u16 sport, __u16 dport, __u8 proto,
				       __u8 family, bool flow)
{
	return hyp_vcache_hash(saddr, daddr, sport, dport, proto, family, flow) & (HYP_VCACHE_SLOTS - 1);
}

static __always_inline __u32 vc_slot_folded(__u32 sfold, __u32 dfold, __u16 sport, __u16 dport, __u8 proto,
					    __u8 family, bool flow)
{
	return hyp_vcache_hash_folded(sfold, dfold, sport, dport, proto, family, flow) & (HYP_VCACHE_SLOTS - 1);
}

/* Build the key of a flow entry (flow) or a source entry into v; returns its slot. */
static __always_inline __u32 vc_key_of(const __u8 *saddr, const __u8 *daddr, __u16 sport, __u16 dport, __u8 proto,
				       __u8 family, bool flow, struct hyp_vcache *v)
{
	hyp_addr_copy(v->saddr, saddr);
	if (flow) {
		hyp_addr_copy(v->daddr, daddr);
		v->sport = sport;
		v->dport = dport;
		v->proto = proto;
	} else {
		__builtin_memset(v->daddr, 0, sizeof(v->daddr));
		v->sport = 0;
		v->dport = 0;
		v->proto = 0;
	}
	v->family = family;
	return vc_slot_of(saddr, daddr, sport, dport, proto, family, flow);
}

/* This packet's key: the flow entry of its sending side, or its source entry. */
static __always_inline __u32 vc_key(const struct hyp_pkt *p, bool flow, struct hyp_vcache *v)
{
	return vc_key_of(p->saddr, p->daddr, p->sport, p->dport, p->proto, p->family, flow, v);
}

/* The key compares on 64-bit address words (s0, s1: the source's 16 bytes as the cache stores them;
 * IPv4 is the low 32 bits of s0, the rest zero), for callers that hold the addresses in registers
 * (bpf/express.h) as well as in memory. Is e the flow entry of the sending side (s, sport) ->
 * (d, dport)? */
static __always_inline bool vc_is_flow_words(const struct hyp_vcache *e, __u64 s0, __u64 s1, __u64 d0, __u64 d1,
					     __u16 sport, __u16 dport, __u8 proto, __u8 family)
{
	const __u64 *a = (const __u64 *)e->saddr, *b = (const __u64 *)e->daddr;

	return a[0] == s0 && a[1] == s1 && b[0] == d0 && b[1] == d1 && e->sport == sport && e->dport == dport &&
	       e->proto == proto && e->family == family;
}

/* Is e the source entry of (s, family)? A source entry is the only kind with proto 0, and its daddr
 * and ports are zero. */
static __always_inline bool vc_is_src_words(const struct hyp_vcache *e, __u64 s0, __u64 s1, __u8 family)
{
	const __u64 *a = (const __u64 *)e->saddr;

	return a[0] == s0 && a[1] == s1 && e->family == family && !e->proto;
}

/* Was e made under this config and state epoch? (Its clock bound, until_ns, is the caller's: the clock
 * is read only when needed.) */
static __always_inline bool vc_made_under(const struct hyp_vcache *e, const struct hyp_config *cfg, __u32 epoch)
{
	return e->serial == cfg->serial && e->epoch == epoch;
}

/* Is e the flow entry of the sending side (saddr, sport) -> (daddr, dport)? */
static __always_inline bool vc_is_flow(const struct hyp_vcache *e, const __u8 *saddr, const __u8 *daddr,
				       __u16 sport, __u16 dport, __u8 proto, __u8 family)
{
	const __u64 *s = (const __u64 *)saddr, *d = (const __u64 *)daddr;

	return vc_is_flow_words(e, s[0], s[1], d[0], d[1], sport, dport, proto, family);
}

/* Does e hold key k (either kind: a source key's daddr, ports and proto are zero on both sides)? */
static __always_inline bool vc_key_eq(const struct hyp_vcache *e, const struct hyp_vcache *k)
{
	return vc_is_flow(e, k->saddr, k->daddr, k->sport, k->dport, k->proto, k->family);
}

/* Is e this packet's entry of one kind? Compared with the packet's own fields, not a key built on the
 * stack: the probe runs for every packet. */
static __always_inline bool vc_is_pkt(const struct hyp_vcache *e, const struct hyp_pkt *p, bool flow)
{
	const __u64 *s = (const __u64 *)p->saddr;

	if (!flow)
		return vc_is_src_words(e, s[0], s[1], p->family);
	return vc_is_flow(e, p->saddr, p->daddr, p->sport, p->dport, p->proto, p->family);
}

/* This packet's live entry of one kind, or NULL. A stale one is emptied (until_ns 0) and hands on what
 * it holds (vc_empty); a source entry keeps its key and pending hits, for the refill to carry them to
 * their ban. */
static __always_inline struct hyp_vcache *vc_live(struct hyp_pkt *p, bool flow)
{
	__u32 slot = vc_slot_of(p->saddr, p->daddr, p->sport, p->dport, p->proto, p->family, flow);
	struct hyp_vcache *e = bpf_map_lookup_elem(&vcache, &slot);

	if (!e || !e->until_ns || !vc_is_pkt(e, p, flow))
		return NULL;
	if (!vc_made_under(e, p->cfg, p->epoch) || pkt_now(p) >= e->until_ns) {
		vc_empty(e);
		return NULL;
	}
	return e;
}

/* A pass entry's hit: PASS_FLOW, counted in the entry, or HYP_CONTINUE for conntrack (payload still to
 * scan, or the counts due to the flow). */
static __always_inline int vc_pass(struct hyp_pkt *p, struct hyp_vcache *e)
{
	if (p->pay_len && e->action == HYP_VC_PASS)
		return HYP_CONTINUE;        /* the scanner wants it: the entry stays */
	if (e->hits >= HYP_VCACHE_PASS_CARRY) {
		vc_empty(e);                /* counts to the flow; conntrack refreshes it and refills */
		return HYP_CONTINUE;
	}
	e->hits += 1;
	e->bytes += p->pkt_len;
	hyp_count_in(p->books, HYP_C_VCACHE_HIT);
	if (p->pay_len && e->action == HYP_VC_PASS_DEPTH)
		hyp_count_in(p->books, HYP_C_SCAN_SKIPPED);      /* as inspect_payload() counts a flow past its depth */
	return HYP_R_PASS_FLOW;
}

/* Is this packet's sending side a dropped flow, or one conntrack would pass unchanged? DROP_SIG (p->sig,
 * p->action set), PASS_FLOW or HYP_CONTINUE. Needs the ports (parse_l4 done). */
static __always_inline int vc_check(struct hyp_pkt *p)
{
	struct hyp_vcache *e;

	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return HYP_CONTINUE;
	/* SYN, FIN and RST change the flow's state (a SYN may open a new connection on the 4-tuple),
	 * and a segment without ACK is one conntrack refuses (ct_tcp_flags_invalid): conntrack sees them
	 * all. The cache answers for ACK segments only. */
	if (p->proto == IPPROTO_TCP &&
	    (p->tcp_flags & (HYP_TCP_SYN | HYP_TCP_FIN | HYP_TCP_RST | HYP_TCP_ACK)) != HYP_TCP_ACK)
		return HYP_CONTINUE;
	e = vc_live(p, true);
	if (!e)
		return HYP_CONTINUE;
	if (vc_is_pass(e))
		return vc_pass(p, e);
	p->sig = e->sig;
	p->action = e->action;
	p->state = e->state;
	hyp_count_in(p->books, HYP_C_VCACHE_HIT);
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
	hyp_count_in(p->books, HYP_C_VCACHE_HIT);
	vc_ev(p, e);
	return HYP_R_DROP_BANNED;
}

/*
 * What the express lane needs of the config an entry was made under, noted in this CPU's books wherever
 * an entry is made live (vc_write(), a pass entry's refresh): the clock offset, whether it may answer
 * and whether events are sampled. The note is the newest entry's; it holds for every entry the lane
 * accepts, whose epoch is the current one: a CPU runs its packets one after the other, so the newest
 * entry was made after that one, under an epoch no older and no newer than the current one, hence the
 * same; and a config changes only with a generation flip, which user space follows with an epoch bump
 * (runtime/maps.c dp_config_apply). Books never noted (flags 0) let the lane answer nothing.
 */
static __always_inline void vc_note_config(const struct hyp_pkt *p)
{
	const struct hyp_config *cfg = p->cfg;
	struct hyp_books *b = p->books;

	b->xp_clock_offset_ns = cfg->clock_offset_ns;
	b->xp_flags = (cfg->vcache == HYP_VCACHE_ON && !policy_is_monitor(cfg) ? HYP_XPF_ANSWER : 0) |
		      (cfg->ev_rate ? HYP_XPF_EV_SAMPLED : 0);
}

/* Write entry e for key k (the caller settled the ban hits the slot held before; its events and a pass
 * entry's counts are handed on here). sig: a pass entry's byte count starts from it (0). */
static __always_inline void vc_write(struct hyp_pkt *p, struct hyp_vcache *e, const struct hyp_vcache *k,
				     __u64 until, __u32 sig, __u8 action)
{
	vc_settle(e);
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
	vc_note_config(p);
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

/*
 * Remember the sending side of a flow conntrack just passed (PASS_FLOW) when its next packets would
 * change nothing but the flow's counters: a segment of an ESTABLISHED TCP flow without SYN, FIN or RST
 * (those always go to conntrack), or a UDP datagram (a reply is the other side's entry, and promotes
 * the flow there). Not with a per-source pps limit (every packet takes a token from its bucket), and not
 * for a cookie flow the server has not answered yet (conntrack offers its ACK to tc ingress again). An
 * entry this side already has keeps its counts, and takes the packet's kind (a direction that just
 * reached its stream depth lets payload through from now on).
 */
static __always_inline void vc_fill_pass(struct hyp_pkt *p)
{
	const struct hyp_config *cfg = p->cfg;
	struct hyp_vcache k __attribute__((aligned(8)));
	struct hyp_flow *f = p->flow;
	struct hyp_vcache *e;
	__u64 ttl, until;
	__u32 slot;
	__u8 kind;

	if (!f || !vc_enabled(p) || cfg->pps_rate)
		return;
	if (p->proto == IPPROTO_TCP) {
		if (p->state != HYP_CT_ESTABLISHED || (p->tcp_flags & (HYP_TCP_SYN | HYP_TCP_FIN | HYP_TCP_RST)))
			return;
		if ((f->flags2 & HYP_FF2_COOKIE) && !f->packets[(f->orig ^ 1) & 1])
			return;
	} else if (p->proto != IPPROTO_UDP) {
		return;
	}
	if (!cfg->scan_depth || !cfg->dfa_states)
		kind = HYP_VC_PASS_NOSCAN;
	else if (p->proto == IPPROTO_TCP && (f->flags & (p->dir & 1 ? HYP_FF_SCAN_DONE_1 : HYP_FF_SCAN_DONE_0)))
		kind = HYP_VC_PASS_DEPTH;
	else
		kind = HYP_VC_PASS;
	/* Not past any timeout: the flow's state can change behind the entry (the other side's FIN, a
	 * segment on tc egress), and conntrack would expire it after that state's timeout. */
	ttl = HYP_VCACHE_TTL_NS;
	for (int i = 0; i < HYP_CT_STATE_MAX; i++) {
		__u64 to = cfg->timeout_ns[i];

		if (to && to < ttl)
			ttl = to;
	}
	until = pkt_now(p) + ttl;
	slot = vc_key(p, true, &k);
	e = bpf_map_lookup_elem(&vcache, &slot);
	if (!e)
		return;
	/* the flow's end settles the entries of the CPUs marked here (hyp_vc_settle_flow) */
	f->vc_cpus |= 1 << (bpf_get_smp_processor_id() & 7);
	if (vc_is_pass(e) && vc_key_eq(e, &k)) {
		e->action = kind;
		e->serial = cfg->serial;
		e->epoch = p->epoch;
		e->until_ns = until;
		vc_note_config(p);
		return;
	}
	vc_write(p, e, &k, until, 0, kind);
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
