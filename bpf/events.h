/* Telemetry: per-(source, kind) sampling and struct hyp_event records in the "events" ring buffer. */
#ifndef HYP_EVENTS_H
#define HYP_EVENTS_H

#define HYP_EV_NO_SIG 0xffffffffu

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

/*
 * Sampling: with cfg->ev_rate > 0 every (source address, kind) pair has a token bucket (ev_rate/s,
 * ev_burst). Returns false if this event is suppressed (counted in HYP_C_EV_SAMPLED and remembered in
 * the entry); otherwise *suppressed is the number held back since the last delivered one.
 */
static __always_inline bool ev_sample_take(struct hyp_pkt *p, __u8 kind, __u32 *suppressed)
{
	const struct hyp_config *cfg = p->cfg;
	struct hyp_sample_key k __attribute__((aligned(8))) = {};
	struct hyp_sample *s;

	*suppressed = 0;
	if (!cfg->ev_rate)
		return true;
	hyp_addr_copy(k.addr, p->saddr);
	k.family = p->family;
	k.kind = kind;
	s = bpf_map_lookup_elem(&ev_sample, &k);
	if (!s) {
		struct hyp_sample *n = hyp_scratch(sizeof(*n));

		if (!n)
			return true;
		rl_bucket_take(&n->tokens, &n->last_ns, cfg->ev_rate, cfg->ev_burst, pkt_now(p));
		bpf_map_update_elem(&ev_sample, &k, n, BPF_NOEXIST);
		return true;
	}
	if (rl_bucket_take(&s->tokens, &s->last_ns, cfg->ev_rate, cfg->ev_burst, pkt_now(p))) {
		*suppressed = s->suppressed;
		s->suppressed = 0;
		return true;
	}
	s->suppressed += 1;
	hyp_count(HYP_C_EV_SAMPLED);
	return false;
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
		hyp_count(HYP_C_EV_LOST);
		return NULL;
	}
	e->ts_ns = pkt_now(p);
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
