/* Telemetry: per-(source, kind) sampling and struct hyp_event records in the "events" ring buffer. */
#ifndef HYP_EVENTS_H
#define HYP_EVENTS_H

/* The event a final verdict reports (0: none). Flow events (new/end) are carried separately in
 * p->ev_flow because one packet can open or close a flow and also be, say, a signature match. */
static __always_inline __u8 ev_kind_of(int reason)
{
	switch (reason) {
	case HYP_R_DROP_BANNED:
		return HYP_EV_BLOCK;
	case HYP_R_DROP_MALFORMED_L4:
	case HYP_R_DROP_INVALID:
		return HYP_EV_INVALID;
	case HYP_R_DROP_PORT:
		return HYP_EV_POLICY;
	case HYP_R_DROP_RATE_SYN:
	case HYP_R_DROP_RATE_PPS:
		return HYP_EV_RATELIMIT;
	case HYP_R_DROP_SIG:
	case HYP_R_PASS_ALERT:
		return HYP_EV_MATCH;
	default:
		return 0;
	}
}

static __always_inline bool ev_key_eq(const struct hyp_sample_key *a, const struct hyp_sample_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

static __always_inline __u32 ev_cache_slot(const struct hyp_sample_key *k)
{
	const __u32 *w = (const __u32 *)k;

	/* multiplicative hash of the folded key; the top bits are the best mixed */
	return ((w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4]) * 2654435761u) >> 24 & (HYP_EV_CACHE_SLOTS - 1);
}

/*
 * Sampling: with cfg->ev_rate > 0 every (source address, kind) pair has a token bucket (ev_rate/s,
 * ev_burst) in ev_sample. Returns -1 if this event is suppressed (counted in HYP_C_EV_SAMPLED and
 * remembered for the pair), else the number held back since the last delivered one. A pair found with
 * an empty bucket is parked in ev_cache until its next token is due, so the rest of a flood is
 * suppressed by an array lookup (see maps.h). A global function: verified once rather than at each of
 * the event sites it is reached from, and it only runs when an event is due.
 */
__noinline int hyp_ev_sample(struct hyp_sample_key *k, __u64 now, __u32 rate, __u32 burst)
{
	struct hyp_sample *s;
	struct hyp_ev_cache *c;
	__u32 slot, sup;
	bool hit;

	if (!k || !rate)            /* a global function's pointer argument may be NULL */
		return 0;
	slot = ev_cache_slot(k);
	c = bpf_map_lookup_elem(&ev_cache, &slot);
	hit = c && ev_key_eq(&c->key, k);
	if (hit && now < c->until_ns) {
		__sync_fetch_and_add(&c->pending, 1);
		hyp_count(HYP_C_EV_SAMPLED);
		return -1;
	}
	s = bpf_map_lookup_elem(&ev_sample, k);
	if (!s) {
		struct hyp_sample *n = hyp_scratch(sizeof(*n));

		if (!n)
			return 0;
		rl_bucket_take(&n->tokens, &n->last_ns, rate, burst, now);
		bpf_map_update_elem(&ev_sample, k, n, BPF_NOEXIST);
		return 0;
	}
	if (hit)
		s->suppressed += __sync_lock_test_and_set(&c->pending, 0);
	if (rl_bucket_take(&s->tokens, &s->last_ns, rate, burst, now)) {
		sup = s->suppressed;
		s->suppressed = 0;
		return sup & 0x7fffffff;
	}
	s->suppressed += 1;
	hyp_count(HYP_C_EV_SAMPLED);
	if (c) {
		if (!hit) {
			/* take the slot over; what it held for another pair goes to that pair's entry */
			__u64 old = __sync_lock_test_and_set(&c->pending, 0);

			if (old) {
				struct hyp_sample *o = bpf_map_lookup_elem(&ev_sample, &c->key);

				if (o)
					o->suppressed += old;
			}
			c->key = *k;
		}
		/* the bucket holds fewer than 1e9 nano-tokens and gains rate of them per ns */
		c->until_ns = now + (HYP_NS_PER_S - s->tokens) / rate;
	}
	return -1;
}

static __always_inline bool ev_sample_take(struct hyp_pkt *p, __u8 kind, __u32 *suppressed)
{
	const struct hyp_config *cfg = p->cfg;
	struct hyp_sample_key k __attribute__((aligned(8))) = {};
	int r;

	*suppressed = 0;
	if (!cfg->ev_rate)
		return true;
	hyp_addr_copy(k.addr, p->saddr);
	k.family = p->family;
	k.kind = kind;
	/* The flood case inline: a pair parked in ev_cache is suppressed here with an inlined array
	 * lookup, without the call into hyp_ev_sample() (which repeats this check, then does the rest). */
	{
		__u32 slot = ev_cache_slot(&k);
		struct hyp_ev_cache *c = bpf_map_lookup_elem(&ev_cache, &slot);

		if (c && ev_key_eq(&c->key, &k) && pkt_now(p) < c->until_ns) {
			__sync_fetch_and_add(&c->pending, 1);
			hyp_count_in(p->books, HYP_C_EV_SAMPLED);
			return false;
		}
	}
	r = hyp_ev_sample(&k, pkt_now(p), cfg->ev_rate, cfg->ev_burst);
	if (r < 0)
		return false;
	*suppressed = r;
	return true;
}

/* Sample, reserve and fill the common fields; NULL if sampled out or the ring buffer is full (never
 * waits: a full buffer costs the event, counted in HYP_C_EV_LOST, not the packet). Finish with
 * ev_submit(). Needs p->cfg. */
static __always_inline struct hyp_event *ev_begin(struct hyp_pkt *p, __u8 kind, __u8 reason, __u8 verdict)
{
	struct hyp_event *e;
	__u32 suppressed;

	if (!ev_sample_take(p, kind, &suppressed))
		return NULL;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		hyp_count_in(p->books, HYP_C_EV_LOST);
		return NULL;
	}
	e->ts_ns = hyp_now_fine(p->cfg);      /* exact: only events that are really sent read it */
	hyp_addr_copy(e->saddr, p->saddr);
	hyp_addr_copy(e->daddr, p->daddr);
	e->sport = p->sport;
	e->dport = p->dport;
	e->kind = kind;
	e->proto = p->proto;
	e->family = p->family;
	e->verdict = verdict;
	e->reason = reason;
	e->state = p->state;
	e->dir = p->egress;
	e->action = 0;
	e->sig = HYP_EV_NO_SIG;
	e->ifindex = p->ifindex;
	e->suppressed = suppressed;
	e->payload_len = 0;
	e->pkt_len = p->pkt_len;
	e->packets = p->ev_packets;
	e->bytes = p->ev_bytes;
	/* ring-buffer memory is not zeroed: clear the payload so no stale bytes reach user space */
#pragma unroll
	for (int i = 0; i < HYP_EV_PAYLOAD / 8; i++)
		((__u64 *)e->payload)[i] = 0;
	return e;
}

static __always_inline void ev_submit(struct hyp_event *e)
{
	bpf_ringbuf_submit(e, 0);
	hyp_count(HYP_C_EV_SUBMITTED);
}

/* A flow event (new/end) with the packet's final verdict. */
static __always_inline void ev_flow(struct hyp_pkt *p, __u8 kind, __u8 reason, __u8 verdict)
{
	struct hyp_event *e = ev_begin(p, kind, reason, verdict);

	if (e)
		ev_submit(e);
}

#endif /* HYP_EVENTS_H */
