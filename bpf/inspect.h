/* Payload inspection: step the signature DFA over the payload with bpf_loop, state carried per TCP flow. */
#ifndef HYP_INSPECT_H
#define HYP_INSPECT_H

/*
 * Cost model (kernel 6.18, JIT): one bpf_loop iteration costs ~10 ns, one DFA step (inlined array
 * lookup of the row, one byte load, one u16 load) ~4 ns, bound by the dependency chain state -> key
 * on the stack -> row -> next state. So each callback steps a block of HYP_SCAN_BLOCK bytes and
 * leaves the block early only on an accepting transition, which is where the (rare, bulky) scope
 * check runs, once per callback instead of once per byte. The block is a bounded loop, not
 * unrolled: unrolled, clang 14 spills around every step and the scan measured ~30% slower.
 *
 * Verifier cost: the verifier re-checks a bpf_loop callback for every distinct state of its caller,
 * and the datapath reaches the scan along many paths (v4/v6, TCP/UDP, new/known flow, ...). So the
 * loop lives in a global function, inspect_scan(), which the verifier checks once, on its own,
 * with nothing but scalars and the context as arguments. Everything the scan reads and writes lives
 * in the per-CPU scratch map value, not on a stack: the callback gets no context pointer and the
 * state entering each iteration is the same "unknown map contents", so the loop converges at once.
 */
#define HYP_SCAN_BLOCK 32
/* Scratch buffer: a power of two >= HYP_SCAN_DEPTH_MAX so a byte index can be masked into bounds
 * (one AND) instead of proving pos < len to the verifier. */
#define HYP_SCRATCH_SIZE 2048
#define HYP_SCRATCH_MASK (HYP_SCRATCH_SIZE - 1)

_Static_assert(HYP_SCRATCH_SIZE >= HYP_SCAN_DEPTH_MAX, "scratch smaller than the scan depth ceiling");
_Static_assert((HYP_SCRATCH_SIZE & HYP_SCRATCH_MASK) == 0, "scratch size must be a power of two");
_Static_assert(HYP_GENERATIONS == 2, "inspect_scan() masks the generation to one bit");

struct hyp_match {
	__u32 sig;
	__u8 action;    /* enum hyp_sig_action */
};

/* One scan, in the scratch value: inputs written by inspect_scan(), outputs by the callback. */
struct hyp_scan {
	__u32 len;                  /* in: bytes to step, <= HYP_SCAN_DEPTH_MAX */
	__u32 state;                /* in: start state; out: state after the last byte stepped */
	__u32 base;                 /* in: gen * HYP_DFA_STATES_MAX, the generation's first row */
	__u32 sig_base;             /* in: gen * HYP_SIG_MAX */
	__u16 dport;                /* in: host order */
	__u8 proto;                 /* in */
	__u8 action;                /* out: action of sig */
	__u32 pos;                  /* out: bytes stepped */
	__u32 sig;                  /* out: drop/ban match */
	__u32 alert_sig;            /* out: first alert match */
	__u8 found;                 /* out: a drop/ban signature matched, scan stopped */
	__u8 has_alert;             /* out */
	__u8 err;                   /* out: a row lookup failed: tables inconsistent, result void */
	__u8 pad;
};

struct hyp_scratch {
	struct hyp_scan s;
	__u8 b[HYP_SCRATCH_SIZE];   /* the payload copy */
};

/* Per CPU: XDP runs one packet at a time per CPU and never sleeps, so one slot per CPU suffices. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hyp_scratch);
} scratch SEC(".maps");

/* Scope: protocol (0 = any) and destination port list (nports 0 = any). The loop bounds are the ABI
 * constants so the verifier sees a fixed trip count. */
static __always_inline bool inspect_in_scope(const struct hyp_sig *sig, __u8 proto, __u16 dport)
{
	__u32 i, n = sig->nports;

	if (sig->proto && sig->proto != proto)
		return false;
	if (!n)
		return true;
#pragma unroll
	for (i = 0; i < HYP_SIG_PORTS_MAX; i++) {
		if (i >= n)
			break;
		if (sig->ports[i] == dport)
			return true;
	}
	return false;
}

/*
 * An accepting state was entered: its dfa_out list is ordered strongest action first (the compiler
 * also drops entries whose scope a stronger entry covers), so the first signature in scope is the
 * answer for this byte. A drop/ban stops the scan (returns 1); an alert is remembered and the scan
 * goes on, so an alert pattern cannot shield a drop pattern later in the payload.
 */
static __always_inline int inspect_accept(struct hyp_scan *s, __u32 st, __u32 *key)
{
	struct hyp_dfa_out *o;
	__u32 k;

	*key = s->base + st;
	o = bpf_map_lookup_elem(&dfa_out, key);

	if (!o)
		return 0;
#pragma unroll
	for (k = 0; k < HYP_STATE_OUT_MAX; k++) {
		__u32 id = o->sig[k];
		struct hyp_sig *sig;

		if (id >= HYP_SIG_MAX)      /* 0xffff: end of the list */
			break;
		*key = s->sig_base + id;
		sig = bpf_map_lookup_elem(&sigs, key);
		if (!sig || !sig->active || !inspect_in_scope(sig, s->proto, s->dport))
			continue;
		if (sig->action != HYP_ACT_ALERT) {
			s->sig = id;
			s->action = sig->action;
			s->found = 1;
			return 1;
		}
		if (!s->has_alert) {
			s->alert_sig = id;
			s->has_alert = 1;
		}
		return 0;
	}
	return 0;
}

/* bpf_loop callback: step up to HYP_SCAN_BLOCK bytes. Returns 1 to stop the loop. */
static long inspect_block_cb(__u32 idx, void *unused)
{
	/* 64-bit locals: with __u32 clang zero-extends at every compare. Live across the (inlined, but
	 * to clang opaque) row lookups are exactly the four callee-saved registers' worth: sc, pos,
	 * len, base; anything more spills to the stack on every byte (so the accepting exit jumps
	 * out instead of keeping the last transition alive). */
	__u64 pos, st, len, base, j;
	__u32 key = 0;          /* one stack slot for every lookup: the stack is nearly full */
	struct hyp_scratch *sc = bpf_map_lookup_elem(&scratch, &key);
	struct hyp_dfa_row *row;
	__u16 nx;

	if (!sc)
		return 1;
	pos = sc->s.pos;
	st = sc->s.state;
	len = sc->s.len;
	base = sc->s.base;
#pragma nounroll
	for (j = 0; j < HYP_SCAN_BLOCK; j++) {
		if (pos >= len)
			break;
		/* an inlined array lookup: the index is checked against max_entries at run time, so a
		 * state id past the generation's rows cannot read out of the map */
		key = base + st;
		row = bpf_map_lookup_elem(&dfa, &key);
		if (!row) {
			sc->s.err = 1;
			return 1;
		}
		/* masked index: always inside the scratch value; the byte value bounds next[] */
		nx = row->next[sc->b[pos & HYP_SCRATCH_MASK]];
		pos++;
		st = nx & HYP_DFA_STATE_MASK;
		if (nx & HYP_DFA_ACCEPT)
			goto accept;
	}
	sc->s.pos = pos;
	sc->s.state = st;
	return pos >= len ? 1 : 0;
accept:
	sc->s.pos = pos;
	sc->s.state = st;
	if (inspect_accept(&sc->s, st, &key))
		return 1;
	return pos >= len ? 1 : 0;
}

/* inspect_scan()'s result, one 64-bit scalar so the caller keeps no pointer into the scratch map
 * (its stack frame is the datapath's, and nearly full): negative = nothing scanned, else the fields. */
#define HYP_SCAN_R_POS(r)    ((__u32)(r) & 0xffff)                       /* bytes stepped */
#define HYP_SCAN_R_STATE(r)  ((__u32)((r) >> 16) & HYP_DFA_STATE_MASK)   /* state after them */
#define HYP_SCAN_R_SIG(r)    ((__u32)((r) >> 32) & 0xffff)
#define HYP_SCAN_R_ACTION(r) ((__u8)(((r) >> 48) & 0x3))
#define HYP_SCAN_R_HIT(r)    (((r) >> 50) & 1)                           /* sig/action valid */

/* inspect_scan()'s fourth argument: start state, generation, protocol, destination port (host order).
 * One register, so the four arguments stay in the four callee-saved registers across the helper
 * calls instead of spilling: this frame sits on top of the datapath's nearly full 512-byte stack. */
#define HYP_SCAN_ARG(start, gen, proto, dport) \
	((__u64)(start) << 32 | (__u64)(gen) << 24 | (__u64)(proto) << 16 | (__u64)(dport))

/*
 * Copy len payload bytes from pay_off into the scratch buffer and step them (arg: HYP_SCAN_ARG).
 * Global (not static, not inlined): verified once, independently of its callers' states, so every
 * argument is re-checked here. Returns a packed result (HYP_SCAN_R_*): a drop/ban match, else the
 * first alert match, else no hit; -1 if nothing was scanned.
 */
__attribute__((noinline)) long inspect_scan(struct xdp_md *ctx, __u32 pay_off, __u32 len, __u64 arg)
{
	/* 64-bit on purpose: a __u32 is compared through a zero-extended copy and then passed in the
	 * original register, whose bounds the verifier never learned */
	__u64 n = len, r;
	__u32 key = 0;
	struct hyp_scratch *sc;
	struct hyp_scan *s;
	struct hyp_books *v;

	/* bpf_xdp_load_bytes wants a length the verifier can bound by the buffer: [1, SCAN_DEPTH_MAX] */
	if (n > HYP_SCAN_DEPTH_MAX)
		n = HYP_SCAN_DEPTH_MAX;
	if (n == 0)
		return -1;
	sc = bpf_map_lookup_elem(&scratch, &key);
	if (!sc)
		return -1;
	if (bpf_xdp_load_bytes(ctx, pay_off, sc->b, n))
		return -1;
	s = &sc->s;
	s->len = n;
	s->pos = 0;
	s->state = (arg >> 32) & HYP_DFA_STATE_MASK;
	/* the generation bit, masked rather than range-checked: one value less to keep live */
	s->base = ((arg >> 24) & 1) * HYP_DFA_STATES_MAX;
	s->sig_base = ((arg >> 24) & 1) * HYP_SIG_MAX;
	s->proto = arg >> 16;
	s->dport = arg;
	s->found = 0;
	s->has_alert = 0;
	s->err = 0;
	/* every callback consumes at least one byte, so n iterations always suffice */
	bpf_loop(n, inspect_block_cb, NULL, 0);
	v = bpf_map_lookup_elem(&books, &key);      /* key is still 0: the same stack slot */
	if (v)
		v->counter[HYP_C_SCAN_BYTES] += s->pos;
	r = (__u64)(s->pos & 0xffff);
	if (!s->err)
		r |= (__u64)(s->state & HYP_DFA_STATE_MASK) << 16;
	if (s->found)
		r |= (__u64)(s->sig & 0xffff) << 32 | (__u64)(s->action & 3) << 48 | 1ULL << 50;
	else if (s->has_alert)
		r |= (__u64)(s->alert_sig & 0xffff) << 32 | (__u64)HYP_ACT_ALERT << 48 | 1ULL << 50;
	return r;
}

/*
 * Scan the L4 payload [pay_off, pay_off + pay_len) of an ingress packet.
 *  proto, dport: the packet's protocol and destination port (host order) for signature scope.
 *  flow: the flow entry (NULL for packets without one); dir: the packet's direction index in it;
 *  tcp_seq: the segment's sequence number (host order, TCP only) for the in-order check.
 *  The function owns flow->dfa_state/next_seq/scanned/dfa_gen and the SCAN_DONE flags.
 * Returns 1 and fills m when a signature in scope matched, 0 otherwise.
 *
 * TCP with a flow: an in-order segment (seq == next_seq[dir]) continues from dfa_state[dir], any other
 * restarts at state 0; either way next_seq becomes seq + pay_len. A segment scanned only in part
 * (scan_depth) leaves state 0 behind, since the next segment does not follow the bytes stepped.
 * A segment dropped by a signature leaves the flow untouched: the receiver never saw it, and its
 * retransmission must be judged from the same state (else splitting a pattern and retransmitting the
 * second half would evade). In monitor mode the segment does reach the receiver, so it counts.
 * UDP datagrams (and packets without a flow) always start at state 0 and have no stream depth.
 */
static __always_inline int inspect_payload(struct xdp_md *ctx, __u32 pay_off, __u32 pay_len, __u8 proto,
					   __u16 dport, struct hyp_flow *flow, __u32 dir, __u32 tcp_seq,
					   const struct hyp_config *cfg, __u32 gen, struct hyp_match *m)
{
	bool stream = flow && proto == IPPROTO_TCP;
	__u32 d = dir & 1;
	__u8 done = d ? HYP_FF_SCAN_DONE_1 : HYP_FF_SCAN_DONE_0;
	__u32 n, start = 0, pos;
	long r;

	/* fast path first: a flow direction past its stream depth costs one flag test */
	if (stream && (flow->flags & done)) {
		hyp_count(HYP_C_SCAN_SKIPPED);
		return 0;
	}
	if (!pay_len || !cfg->scan_depth || !cfg->dfa_states || gen >= HYP_GENERATIONS)
		return 0;
	n = pay_len < cfg->scan_depth ? pay_len : cfg->scan_depth;
	if (stream) {
		if (flow->dfa_gen != gen) {
			/* both directions' states belong to the old automaton */
			flow->dfa_state[0] = 0;
			flow->dfa_state[1] = 0;
			flow->dfa_gen = gen;
			hyp_count(HYP_C_GEN_MISMATCH);
		} else if (tcp_seq == flow->next_seq[d]) {
			start = flow->dfa_state[d];
		}
		if (cfg->stream_depth) {
			__u32 used = flow->scanned[d];

			if (used >= cfg->stream_depth) {    /* stream_depth lowered by a reload */
				flow->flags |= done;
				hyp_count(HYP_C_SCAN_SKIPPED);
				return 0;
			}
			if (n > cfg->stream_depth - used)
				n = cfg->stream_depth - used;
		}
	}
	/* a stored state from a table since replaced in place (two flips) must stay inside it */
	if (start >= cfg->dfa_states)
		start = 0;
	r = inspect_scan(ctx, pay_off, n, HYP_SCAN_ARG(start, gen, proto, dport));
	if (r < 0)
		return 0;
	if (HYP_SCAN_R_HIT(r)) {
		m->sig = HYP_SCAN_R_SIG(r);
		m->action = HYP_SCAN_R_ACTION(r);
		if (m->action != HYP_ACT_ALERT && cfg->mode != HYP_MODE_MONITOR)
			return 1;
	}
	if (stream) {
		pos = HYP_SCAN_R_POS(r);
		flow->next_seq[d] = tcp_seq + pay_len;
		flow->dfa_state[d] = pos == pay_len ? HYP_SCAN_R_STATE(r) : 0;
		flow->scanned[d] += pos;
		if (cfg->stream_depth && flow->scanned[d] >= cfg->stream_depth)
			flow->flags |= done;
	}
	return HYP_SCAN_R_HIT(r);
}

#endif /* HYP_INSPECT_H */
