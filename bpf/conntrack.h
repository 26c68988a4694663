/* Connection tracking: canonical flow key, flows_new/flows life cycle, TCP state machine, pickup. */
#ifndef HYP_CONNTRACK_H
#define HYP_CONNTRACK_H

/*
 * Map discipline (docs/design.md): a flow is born in flows_new (TCP SYN, first UDP datagram, ICMP echo
 * request) and moves to flows once it proved two-way traffic (TCP ESTABLISHED, UDP reply, echo reply),
 * so a flood of half-open flows can only evict half-open flows. Pickups go straight to flows.
 * Entries are updated in place without locks: a flow's packets normally land on one CPU (RSS), and a
 * lost counter increment or a state written twice by two CPUs is harmless for what the state is used
 * for. Timeouts are checked lazily by the lookup; the LRU maps evict what is never looked up again.
 */

/* TCP segments that no stack sends: SYN+FIN, SYN+RST, or carrying none of SYN, ACK, RST (null, FIN
 * and Xmas scans: RFC 9293 requires ACK on every segment after the SYN, except a RST). */
static __always_inline bool ct_tcp_flags_invalid(__u8 fl)
{
	if ((fl & HYP_TCP_SYN) && (fl & (HYP_TCP_FIN | HYP_TCP_RST)))
		return true;
	return !(fl & (HYP_TCP_SYN | HYP_TCP_ACK | HYP_TCP_RST));
}

static __always_inline int ct_cmp64(__u64 a, __u64 b)
{
	return a < b ? -1 : a > b;
}

/*
 * Canonical key: endpoint a is the (address, port) that compares lower, address bytes as memcmp (so
 * big-endian integer compare), then port in host order (= memcmp of the network-order bytes). Both
 * directions build the same key, so a flow costs one lookup. Evaluates to the sender's direction index:
 * 0 if saddr/sport is endpoint a. A macro: as an inline function taking the packet's addresses by
 * pointer it changed how clang keeps struct hyp_pkt in hyp_xdp, and the verifier's walk went past its
 * 1M instructions.
 */
#define CT_KEY_OF(k, saddr, daddr, sport, dport, proto_, family_)                                          \
	({                                                                                                 \
		const __u64 *s_ = (const __u64 *)(saddr), *d_ = (const __u64 *)(daddr);                  \
		int cmp_ = ct_cmp64(bpf_be64_to_cpu(s_[0]), bpf_be64_to_cpu(d_[0]));                     \
		__u8 dir_;                                                                                 \
                                                                                                           \
		if (!cmp_)                                                                                 \
			cmp_ = ct_cmp64(bpf_be64_to_cpu(s_[1]), bpf_be64_to_cpu(d_[1]));                 \
		if (!cmp_)                                                                                 \
			cmp_ = ct_cmp64(bpf_ntohs(sport), bpf_ntohs(dport));                               \
		dir_ = cmp_ > 0;                                                                           \
		if (!dir_) {                                                                               \
			hyp_addr_copy((k)->addr_a, (saddr));                                               \
			hyp_addr_copy((k)->addr_b, (daddr));                                               \
			(k)->port_a = (sport);                                                             \
			(k)->port_b = (dport);                                                             \
		} else {                                                                                   \
			hyp_addr_copy((k)->addr_a, (daddr));                                               \
			hyp_addr_copy((k)->addr_b, (saddr));                                               \
			(k)->port_a = (dport);                                                             \
			(k)->port_b = (sport);                                                             \
		}                                                                                          \
		(k)->proto = (proto_);                                                                     \
		(k)->family = (family_);                                                                   \
		(k)->pad[0] = 0;                                                                           \
		(k)->pad[1] = 0;                                                                           \
		dir_;                                                                                      \
	})

static __always_inline __u8 ct_key_make(const struct hyp_pkt *p, struct hyp_flow_key *k)
{
	return CT_KEY_OF(k, p->saddr, p->daddr, p->sport, p->dport, p->proto, p->family);
}

/*
 * The verdict cache's pass entries (bpf/vcache.h) count packets and bytes for their flow. Both
 * functions below are global: verified once, and called once per HYP_VCACHE_PASS_CARRY packets or TTL
 * of an entry, when one ends, and when a flow ends; the flow key would add 40 bytes to the pipeline's
 * stack frame, which has little room left under the verifier's 512-byte call-chain limit.
 */

/* Move what pass entry e counted to direction d of its flow f; e counts from zero after. */
static __always_inline void vc_carry(struct hyp_vcache *e, struct hyp_flow *f, __u8 d)
{
	f->packets[d & 1] += e->hits;
	f->bytes[d & 1] += e->bytes;
	e->hits = 0;
	e->bytes = 0;
}

/* Carry pass entry e's counts to its flow (in either map: a UDP flow may be in flows_new). A flow gone
 * meanwhile (LRU) takes them with it. */
__noinline int hyp_vc_ct(struct hyp_vcache *e)
{
	struct hyp_flow_key k __attribute__((aligned(8)));
	struct hyp_flow *f;
	__u8 dir;

	if (!e)                     /* a global function's pointer argument may be NULL */
		return 0;
	dir = CT_KEY_OF(&k, e->saddr, e->daddr, e->sport, e->dport, e->proto, e->family);
	f = bpf_map_lookup_elem(&flows, &k);
	if (!f)
		f = bpf_map_lookup_elem(&flows_new, &k);
	if (f) {
		vc_carry(e, f, dir);
	} else {
		e->hits = 0;
		e->bytes = 0;
	}
	return 0;
}

/* The flow ends (its totals are read for flow_end): take what the pass entries of both its sides
 * counted, on every CPU that cached it (f->vc_cpus, bit cpu % 8; at most HYP_VC_SETTLE_CPUS), and end
 * them, so that its next packets meet conntrack, which knows an ended flow (a SYN or a cookie ACK
 * reusing the 4-tuple opens a new one). The flow may end on another CPU than the one its remote side's
 * packets reach: tc egress runs on the sending CPU. Another CPU's entry is read and written while that
 * CPU may be counting in it: exact while the flow is quiet there, as flow updates are (RSS). */
#define HYP_VC_SETTLE_CPUS 128      /* CPUs settled at a flow's end; beyond, an entry lapses in its TTL */
__noinline int hyp_vc_settle_flow(const struct hyp_flow_key *k, struct hyp_flow *f)
{
	struct hyp_vcache *e;
	__u8 cpus;

	if (!k || !f)
		return 0;
	cpus = f->vc_cpus;
	if (!cpus)
		return 0;
	f->vc_cpus = 0;
	for (int d = 0; d < 2; d++) {
		/* side d sends from endpoint d; its entry's key is compared in place (a 64-byte key on the
		 * stack would not fit under the pipeline's frame) */
		const __u8 *s = d ? k->addr_b : k->addr_a, *t = d ? k->addr_a : k->addr_b;
		__u16 sport = d ? k->port_b : k->port_a, dport = d ? k->port_a : k->port_b;
		__u32 slot = vc_slot_of(s, t, sport, dport, k->proto, k->family, true);

		for (__u32 cpu = 0; cpu < HYP_VC_SETTLE_CPUS; cpu++) {
			if (!((cpus >> (cpu & 7)) & 1))
				continue;
			e = bpf_map_lookup_percpu_elem(&vcache, &slot, cpu);
			if (!e)
				break;      /* past the last possible CPU */
			if (!vc_is_pass(e) || !vc_is_flow(e, s, t, sport, dport, k->proto, k->family))
				continue;
			vc_carry(e, f, d);
			e->until_ns = 0;
		}
	}
	return 0;
}

static __always_inline bool ct_state_ended(__u8 s)
{
	return s == HYP_CT_TIME_WAIT || s == HYP_CT_CLOSED;
}

/* Idle longer than its state's timeout (cfg->timeout_ns[state]; 0 = no timeout, LRU only). */
static __always_inline bool ct_expired(const struct hyp_pkt *p, const struct hyp_flow *f)
{
	__u32 s = f->state;
	__u64 to;

	if (s >= HYP_CT_STATE_MAX)  /* bounds the array index for the verifier; states are < MAX */
		return false;
	to = p->cfg->timeout_ns[s];
	return to && p->now > f->last_seen_ns && p->now - f->last_seen_ns > to;
}

static __always_inline void ct_delete(const struct hyp_flow_key *k, bool est)
{
	if (est) {
		if (!bpf_map_delete_elem(&flows, k))
			hyp_count(HYP_C_CT_EST_DELETE);
	} else {
		if (!bpf_map_delete_elem(&flows_new, k))
			hyp_count(HYP_C_CT_NEW_DELETE);
	}
}

static __always_inline void ct_flow_totals(struct hyp_pkt *p, const struct hyp_flow_key *k, struct hyp_flow *f)
{
	hyp_vc_settle_flow(k, f);
	p->ev_packets = f->packets[0] + f->packets[1];
	p->ev_bytes = f->bytes[0] + f->bytes[1];
}

/* A flow found expired: report its end now (this packet may go on to open a new one). Flows already
 * reported at TIME_WAIT/CLOSED are not reported twice. */
static __always_inline void ct_expire(struct hyp_pkt *p, const struct hyp_flow_key *k, struct hyp_flow *f,
				      bool est)
{
	hyp_count_in(p->books, HYP_C_CT_EXPIRED);
	if (!ct_state_ended(f->state)) {
		struct hyp_event *e;

		p->state = f->state;
		ct_flow_totals(p, k, f);
		e = ev_begin(p, HYP_EV_FLOW_END, HYP_R_PASS_FLOW, HYP_V_PASS);
		if (e)
			ev_submit(e);
		p->state = HYP_CT_NONE;
		p->ev_packets = 0;
		p->ev_bytes = 0;
	}
	ct_delete(k, est);
}

static __always_inline int ct_pass(const struct hyp_pkt *p, int reason)
{
	return p->egress ? HYP_R_PASS_EGRESS : reason;
}

/* Insert a new flow whose originator has direction index orig. Returns the pass reason. */
static __always_inline int ct_create(struct hyp_pkt *p, const struct hyp_flow_key *k, __u8 state, __u8 orig,
				     __u8 flags, bool est)
{
	struct hyp_flow *v = hyp_scratch(sizeof(*v));
	__u8 dir = p->dir & 1;
	long err;

	/* the 4-tuple's previous flow may have been a dropped one this CPU still remembers */
	vc_forget(p);
	if (!v)
		return ct_pass(p, HYP_R_PASS_NEW);
	v->created_ns = p->now;
	v->last_seen_ns = p->now;
	v->packets[dir] = 1;
	v->bytes[dir] = p->pkt_len;
	v->state = state;
	v->orig = orig;
	/* inbound = originated by the remote side: the sender on ingress, the receiver on egress */
	if ((orig == dir) != p->egress)
		flags |= HYP_FF_INBOUND;
	v->flags = flags;
	v->flags2 = p->new_flags2;
	v->dfa_gen = p->gen;
	if (est) {
		v->flags |= HYP_FF_ESTABLISHED_MAP;
		err = bpf_map_update_elem(&flows, k, v, BPF_ANY);
		if (!err)
			hyp_count_in(p->books, HYP_C_CT_EST_INSERT);
	} else {
		err = bpf_map_update_elem(&flows_new, k, v, BPF_ANY);
		if (!err)
			hyp_count_in(p->books, HYP_C_CT_NEW_INSERT);
	}
	if (err)    /* LRU full of entries busy on other CPUs: pass untracked rather than drop */
		return ct_pass(p, HYP_R_PASS_NEW);
	p->state = state;
	p->ev_flow = HYP_EV_FLOW_NEW;
	p->ev_packets = 1;
	p->ev_bytes = p->pkt_len;
	/* the scanner wants the entry only when there is payload to scan (a SYN rarely has any) */
	if (!p->egress && p->pay_len)
		p->flow = bpf_map_lookup_elem(est ? (void *)&flows : (void *)&flows_new, k);
	return ct_pass(p, HYP_R_PASS_NEW);
}

/* Move a flow from flows_new to flows (insert, then delete: a reader in between finds it in flows
 * first). Returns the entry the packet continues with. */
static __always_inline struct hyp_flow *ct_promote(const struct hyp_flow_key *k, struct hyp_flow *f)
{
	struct hyp_flow *nf;

	/* the flows_new entry itself is the value to copy: no stack copy of 80 bytes */
	f->flags |= HYP_FF_ESTABLISHED_MAP;
	if (bpf_map_update_elem(&flows, k, f, BPF_ANY)) {
		f->flags &= ~HYP_FF_ESTABLISHED_MAP;
		return f;   /* stays half-open; the next packet tries again */
	}
	hyp_count(HYP_C_CT_EST_INSERT);
	if (!bpf_map_delete_elem(&flows_new, k))
		hyp_count(HYP_C_CT_NEW_DELETE);
	nf = bpf_map_lookup_elem(&flows, k);
	return nf;
}

/* TCP state machine (docs/design.md). Returns the new state; *promote is set on reaching ESTABLISHED. */
static __always_inline __u8 ct_tcp_next(struct hyp_flow *f, __u8 dir, __u8 fl, bool *promote)
{
	bool from_orig = dir == f->orig;
	__u8 s = f->state;

	if (fl & HYP_TCP_RST)
		return HYP_CT_CLOSED;
	if (fl & HYP_TCP_SYN) {
		if ((fl & HYP_TCP_ACK) && s == HYP_CT_SYN_SENT && !from_orig)
			return HYP_CT_SYN_RECV;
		return s;   /* retransmitted SYN / SYN-ACK */
	}
	if (ct_state_ended(s) || s > HYP_CT_CLOSED)
		return s;
	if ((fl & HYP_TCP_ACK) && s == HYP_CT_SYN_RECV && from_orig) {
		s = HYP_CT_ESTABLISHED;
		*promote = true;
	}
	if (fl & HYP_TCP_FIN) {
		f->flags |= dir ? HYP_FF_FIN_1 : HYP_FF_FIN_0;
		if ((f->flags & (HYP_FF_FIN_0 | HYP_FF_FIN_1)) == (HYP_FF_FIN_0 | HYP_FF_FIN_1))
			s = HYP_CT_TIME_WAIT;
		else if (s <= HYP_CT_ESTABLISHED)
			s = from_orig ? HYP_CT_FIN_WAIT : HYP_CT_CLOSE_WAIT;
	}
	return s;
}

/* A packet of a known flow: counters, state, promotion, flow_end. */
static __always_inline int ct_update(struct hyp_pkt *p, const struct hyp_flow_key *k, struct hyp_flow *f,
				     bool est)
{
	__u8 dir = p->dir & 1;
	__u8 s = f->state, ns = s;
	bool promote = false;
	bool dropped = !p->egress && (f->flags & HYP_FF_DROP) && ((f->drop_dirs >> dir) & 1);

	if (dropped) {
		/* read now: a promotion below may move the entry. Signature ids index one config's set:
		 * after a reload the id may name another signature. */
		p->sig = f->drop_serial == p->cfg->serial ? f->drop_sig : HYP_EV_NO_SIG;
		p->action = f->drop_action;
	}
	f->packets[dir] += 1;
	f->bytes[dir] += p->pkt_len;
	f->last_seen_ns = p->now;
	if (p->proto == IPPROTO_TCP) {
		/* the local side closes first: its socket will sit in TIME_WAIT, and a SYN reusing the
		 * tuple meanwhile is the stack's (bpf/syncookie.h). Egress only: a constant in each program. */
		if (p->egress && (p->tcp_flags & HYP_TCP_FIN) && !ct_state_ended(s) &&
		    !(f->flags & (dir ? HYP_FF_FIN_0 : HYP_FF_FIN_1)))
			sc_closed_mark(sc_closed_hash(p->saddr, p->daddr, p->sport, p->dport), sc_closed_now(p->now));
		ns = ct_tcp_next(f, dir, p->tcp_flags, &promote);
	} else if (dir != f->orig) {
		/* UDP / ICMP echo: any packet from the responder proves two-way traffic */
		if (s == HYP_CT_UDP)
			ns = HYP_CT_UDP_REPLIED;
		promote = true;
	}
	if (ns != s)
		f->state = ns;
	p->state = ns;
	if (ct_state_ended(ns) && !ct_state_ended(s)) {
		p->ev_flow = HYP_EV_FLOW_END;
		ct_flow_totals(p, k, f);
	}
	if (promote && !est)
		f = ct_promote(k, f);
	p->flow = f;
	/* a marked side: the rest of what it sends is dropped unread (the state above still follows it,
	 * so the flow ends and expires as usual) */
	return dropped ? HYP_R_DROP_SIG : ct_pass(p, HYP_R_PASS_FLOW);
}

/* Does a local socket own this 4-tuple? A LISTEN socket does not count: it is what an ACK to a
 * closed-but-listening port finds, which is exactly the ACK flood we refuse. The lookup is in the
 * netns of the receiving device; the reference must be released on every path. */
static __always_inline bool ct_socket_owned(void *ctx, const struct hyp_pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	bool owned;

	if (p->family == HYP_AF_INET) {
		t.ipv4.saddr = *(__u32 *)p->saddr;
		t.ipv4.daddr = *(__u32 *)p->daddr;
		t.ipv4.sport = p->sport;
		t.ipv4.dport = p->dport;
		sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, p->daddr, 16);
		t.ipv6.sport = p->sport;
		t.ipv6.dport = p->dport;
		sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return false;
	owned = sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return owned;
}

/* May a TCP segment without a flow start one mid-stream (cfg->pickup)? */
static __always_inline bool ct_pickup_allowed(void *ctx, const struct hyp_pkt *p)
{
	const struct hyp_config *cfg = p->cfg;

	if (cfg->pickup == HYP_PICKUP_STRICT)
		return false;
	if (cfg->pickup == HYP_PICKUP_GRACE && p->now < cfg->start_ns + cfg->pickup_grace_ns)
		return true;
	return ct_socket_owned(ctx, p);
}

/* May this inbound SYN open a connection: per-source SYN rate, then the port policy. */
static __always_inline int ct_syn_admit(struct hyp_pkt *p)
{
	int r = rl_syn(p);

	if (r != HYP_CONTINUE)
		return r;
	if (!policy_port_open(p->cfg, IPPROTO_TCP, p->dport))
		return HYP_R_DROP_PORT;
	return HYP_CONTINUE;
}

/* A bare ACK (SYN and RST clear) whose cookie verifies: the end of a handshake our SYN cookie answered.
 * hyp_sc_ack() also leaves tc ingress what it needs to hand the ACK to the listener. */
static __always_inline bool ct_cookie_ack(void *ctx, struct hyp_pkt *p, bool flowless)
{
	__u64 tick = p->now >> HYP_COOKIE_TICK_SHIFT;

	if ((p->tcp_flags & (HYP_TCP_SYN | HYP_TCP_ACK | HYP_TCP_RST)) != HYP_TCP_ACK || !sc_enabled(p))
		return false;
	/* a cookie of this tick or the previous one: it lives 68.7 to 137 s */
	if (!sc_work_fill(p) ||
	    (hyp_sc_ack(ctx, p->l4_off, tick) && hyp_sc_ack(ctx, p->l4_off, tick - 1))) {
		/* a finished flow's own last ACK carries no cookie: not worth counting */
		if (flowless)
			hyp_count_in(p->books, HYP_C_COOKIE_INVALID);
		return false;
	}
	hyp_sc_meta(ctx, p->l3_off, p->l4_off);
	return true;
}

/* The flow of a completed cookie handshake starts established. A port closed since the SYN-ACK is
 * closed for it too. */
static __always_inline int ct_cookie_open(struct hyp_pkt *p, const struct hyp_flow_key *k)
{
	if (!policy_port_open(p->cfg, IPPROTO_TCP, p->dport))
		return HYP_R_DROP_PORT;
	hyp_count_in(p->books, HYP_C_COOKIE_VALID);
	p->new_flags2 = HYP_FF2_COOKIE;
	return ct_create(p, k, HYP_CT_ESTABLISHED, p->dir & 1, 0, true);
}

/* No flow: decide whether this packet opens one. xdp: a compile-time constant, false in tc (the cookie
 * path uses XDP-only helpers the tc program must not contain). */
static __always_inline int ct_miss(void *ctx, struct hyp_pkt *p, const struct hyp_flow_key *k, const bool xdp)
{
	__u8 dir = p->dir & 1;
	int r;

	if (p->proto == IPPROTO_TCP) {
		__u8 fl = p->tcp_flags;

		if ((fl & (HYP_TCP_SYN | HYP_TCP_ACK)) == HYP_TCP_SYN) {
			if (!p->egress) {
				r = ct_syn_admit(p);
				if (r != HYP_CONTINUE)
					return r;
			}
			return ct_create(p, k, HYP_CT_SYN_SENT, dir, 0, false);
		}
		/* egress never needs a pickup: the reply will find the socket on ingress */
		if (p->egress)
			return HYP_R_PASS_EGRESS;
		if (xdp && ct_cookie_ack(ctx, p, true))
			return ct_cookie_open(p, k);
		if (!ct_pickup_allowed(ctx, p))
			return HYP_R_DROP_INVALID;
		if (fl & HYP_TCP_RST)
			return HYP_R_PASS_FLOW;     /* an owned connection being reset: nothing to track */
		hyp_count_in(p->books, HYP_C_CT_PICKUP);
		/* the originator is unknown mid-stream; guess the side with the higher (ephemeral) port */
		return ct_create(p, k, HYP_CT_ESTABLISHED,
				 bpf_ntohs(p->sport) > bpf_ntohs(p->dport) ? dir : !dir, HYP_FF_PICKUP, true);
	}
	if (p->proto == IPPROTO_UDP) {
		if (!p->egress && !policy_port_open(p->cfg, IPPROTO_UDP, p->dport))
			return HYP_R_DROP_PORT;
		return ct_create(p, k, HYP_CT_UDP, dir, 0, false);
	}
	/* ICMP echo: only a request opens a pseudo-flow; an unsolicited reply passes untracked */
	if (!parse_is_echo_request(p))
		return ct_pass(p, HYP_R_PASS_ICMP);
	return ct_create(p, k, HYP_CT_ICMP, dir, 0, false);
}

/*
 * Conntrack step for TCP, UDP and ICMP (ingress and egress). One lookup in the map the flow most
 * likely lives in, a second in the other only on a miss. Returns PASS_FLOW / PASS_NEW / PASS_ICMP
 * (egress: PASS_EGRESS) or a drop reason (DROP_SIG: the sender of a HYP_FF_DROP flow); sets p->flow,
 * p->dir, p->state and the pending flow event.
 */
static __always_inline int ct_track(void *ctx, struct hyp_pkt *p, const bool xdp)
{
	struct hyp_flow_key k __attribute__((aligned(8)));
	struct hyp_flow *f;
	bool est = true;
	int r;

	if (parse_is_icmp(p) && !parse_is_echo(p))
		return ct_pass(p, HYP_R_PASS_ICMP);    /* errors, ND, RA, MLD: never state, never dropped */
	if (p->proto == IPPROTO_TCP && ct_tcp_flags_invalid(p->tcp_flags))
		return p->egress ? HYP_R_PASS_EGRESS : HYP_R_DROP_INVALID;

	pkt_now(p);
	/* A SYN answered with a cookie needs no state: no key, no lookup, no insert, which is what lets a
	 * SYN flood run at XDP speed without touching the flow tables (a lookup in `flows` halved the flood
	 * rate in the bench: a random key misses the cache). A tuple that closed into TIME_WAIT lately is
	 * left to the stack, which knows how to reuse it (sc_closed_*); a stale socket the stack still
	 * holds otherwise is answered too, and its ACK left to that socket (README). The answer itself is
	 * hyp_xdp_syn(), entered by a tail call that does not come back: it books the packet. A SYN left to
	 * the stack (recently closed, IP options, extension headers, the tail call refused) goes on as
	 * usual, and is charged to its source's SYN bucket twice: rare, and never in the attacker's favour. */
	if (xdp && p->proto == IPPROTO_TCP && (p->tcp_flags & (HYP_TCP_SYN | HYP_TCP_ACK)) == HYP_TCP_SYN &&
	    sc_enabled(p)) {
		struct hyp_sc_work *t;

		r = ct_syn_admit(p);
		if (r != HYP_CONTINUE)
			return r;
		t = sc_bare_ip(p) ? sc_work_fill(p) : NULL;
		if (t && sc_closed_recent(sc_closed_hash(t->saddr, t->daddr, t->sport, t->dport),
					  sc_closed_now(p->now))) {
			hyp_count_in(p->books, HYP_C_COOKIE_TIME_WAIT);
		} else {
			if (t) {
				sc_syn_handoff(t, p);
				bpf_tail_call(ctx, &sc_prog, 0);
			}
			hyp_count_in(p->books, HYP_C_COOKIE_FALLBACK);
		}
	}
	p->dir = ct_key_make(p, &k);
	/* Look first in the map the flow most likely lives in: a UDP datagram's flow is unreplied (in
	 * flows_new) for the whole of a flood, a TCP segment's is established. A miss in the first map
	 * costs a full hash of the 40-byte key (~15 ns), so a UDP flood pays one lookup instead of two,
	 * and a replied UDP flow pays the second. Both maps are always consulted before a miss, so the
	 * order changes the cost only. Two call sites, each with a constant map: the verifier inlines an
	 * LRU lookup only where the map is known. */
	if (p->proto == IPPROTO_UDP) {
		est = false;
		f = bpf_map_lookup_elem(&flows_new, &k);
		if (!f) {
			est = true;
			f = bpf_map_lookup_elem(&flows, &k);
		}
	} else {
		f = bpf_map_lookup_elem(&flows, &k);
		if (!f) {
			est = false;
			f = bpf_map_lookup_elem(&flows_new, &k);
		}
	}
	if (f && ct_expired(p, f)) {
		ct_expire(p, &k, f, est);
		f = NULL;
	}
	/* a SYN on a finished flow is a new connection reusing the 4-tuple: judge it as one */
	if (f && p->proto == IPPROTO_TCP && ct_state_ended(f->state) &&
	    (p->tcp_flags & (HYP_TCP_SYN | HYP_TCP_ACK)) == HYP_TCP_SYN) {
		ct_delete(&k, est);
		f = NULL;
	}
	/* likewise a cookie ACK on a finished flow: the client reuses the 4-tuple (the final ACK of the
	 * old connection carries no cookie and stays with its flow) */
	if (xdp && f && p->proto == IPPROTO_TCP && ct_state_ended(f->state) && ct_cookie_ack(ctx, p, false)) {
		ct_delete(&k, est);
		return ct_cookie_open(p, &k);
	}
	/* A cookie flow the server has not spoken on yet: the client's first ACK may have been dropped on
	 * the way to the listener (accept queue full), and its retransmission carries the same cookie. Offer
	 * it to tc ingress again; once a socket owns the 4-tuple tc ingress leaves it alone. */
	if (xdp && f && (f->flags2 & HYP_FF2_COOKIE) && p->proto == IPPROTO_TCP && (p->dir & 1) == f->orig &&
	    !f->packets[(f->orig ^ 1) & 1])
		ct_cookie_ack(ctx, p, false);
	if (f)
		return ct_update(p, &k, f, est);
	return ct_miss(ctx, p, &k, xdp);
}

#endif /* HYP_CONNTRACK_H */
