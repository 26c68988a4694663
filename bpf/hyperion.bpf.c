/* The datapath: XDP ingress pipeline (hyp_xdp) and tc egress conntrack (hyp_tc_egress). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "hyperion_abi.h"
#include "maps.h"
#include "helpers.h"
#include "stats.h"
#include "parse.h"
#include "policy.h"
#include "ratelimit.h"
#include "events.h"
#include "vcache.h"
#include "blocklist.h"
#include "express.h"
#include "syncookie.h"
#include "conntrack.h"
#include "inspect.h"

/* tc egress: bytes pulled into the linear area when a packet's headers are not all there (GSO
 * packets from the local stack usually are). 128 covers Ethernet + 2 VLAN tags + IPv6 + TCP with
 * options; deeper IPv6 extension chains are then parsed as truncated and left alone (egress never
 * drops). */
#define HYP_TC_PULL_LEN 128

/* Scan the payload of a packet that passed conntrack; a match in scope decides the verdict. */
static __always_inline int xdp_inspect(struct xdp_md *ctx, struct hyp_pkt *p, int r)
{
	const struct hyp_config *cfg = p->cfg;
	struct hyp_match m = {};

	if (!p->pay_len || (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP))
		return r;
	if (!cfg->scan_depth || !cfg->dfa_states)
		return r;
	if (!inspect_payload(ctx, p->pay_off, p->pay_len, p->proto, bpf_ntohs(p->dport), p->flow, p->dir,
			     p->tcp_seq, cfg, p->gen, &m))
		return r;
	p->sig = m.sig;
	p->action = m.action;
	if (m.action == HYP_ACT_ALERT)
		return HYP_R_PASS_ALERT;
	/* IPS convention (Suricata's drop, Snort's block): a flow that sent an attack is dropped, not
	 * just the packet. Its sender's later packets skip the scan (ct_update), and the verdict cache
	 * drops them before any lookup. */
	if (p->flow && !policy_is_monitor(cfg)) {
		struct hyp_flow *f = p->flow;

		/* the first match names the flow's drop; a match from the other side adds that side */
		if (!(f->flags & HYP_FF_DROP)) {
			f->flags |= HYP_FF_DROP;
			f->drop_sig = (__u16)(m.sig & (HYP_SIG_MAX - 1));
			f->drop_action = m.action;
			f->drop_serial = cfg->serial;
		}
		f->drop_dirs |= 1 << (p->dir & 1);
		vc_fill(p);
	}
	return HYP_R_DROP_SIG;
}

/* L2 and L3, and L4 too for the common shapes (parse_fast); HYP_CONTINUE or the packet's reason
 * (one without an event: xdp_finish_bare()). */
static __always_inline int xdp_parse(struct xdp_md *ctx, void *data, void *data_end, struct hyp_pkt *p)
{
	p->pkt_len = data_end - data;
	p->ifindex = ctx->ingress_ifindex;
	p->sig = HYP_EV_NO_SIG;
	if (parse_fast(data, data_end, p))
		return HYP_CONTINUE;
	return parse_l3(ctx, false, data, data_end, p);
}

/* The front of the pipeline after xdp_parse(): the policy, then the verdict cache (bpf/vcache.h): a
 * banned source's flood, the rest of a dropped flow's, and an established flow's packets that conntrack
 * would pass unchanged end here. The flow probe needs the ports, so L4 is parsed early (*l4) where
 * parse_fast() did not, a failure judged in its usual place in xdp_process(). Returns HYP_CONTINUE or
 * a reason of a packet that needs no flow event. data/data_end: as xdp_parse() saw them (read once:
 * clang turns a second read of the context into pointer arithmetic on it, which the verifier
 * refuses). */
static __always_inline int xdp_front(void *data, void *data_end, struct hyp_pkt *p, int *l4)
{
	int r = policy_load(p);

	if (r != HYP_CONTINUE)
		return r;
	r = ban_check_cached(p);
	if (r != HYP_CONTINUE)
		return r;
	if (!p->nonfirst_frag && p->cfg->vcache) {
		if (!p->l4_parsed)
			*l4 = parse_l4(data, data_end, p);
		if (*l4 == HYP_CONTINUE)
			return vc_check(p);
	}
	return HYP_CONTINUE;
}

/* The rest of the ingress pipeline, in the order of docs/design.md; returns the packet's one reason. */
static __always_inline int xdp_process(struct xdp_md *ctx, void *data, void *data_end, struct hyp_pkt *p,
				       int l4)
{
	int r;

	r = allow_check(p);
	if (r != HYP_CONTINUE)
		return r;
	r = ban_check(p);
	if (r != HYP_CONTINUE)
		return r;
	if (p->nonfirst_frag)
		return policy_frag(p->cfg);
	if (!p->l4_parsed)
		l4 = parse_l4(data, data_end, p);
	if (l4 != HYP_CONTINUE)
		return l4;
	r = rl_pps(p);
	if (r != HYP_CONTINUE)
		return r;
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP && !parse_is_icmp(p))
		return HYP_R_PASS_OTHER;
	r = ct_track(ctx, p, true);
	if (r == HYP_R_DROP_SIG)
		vc_fill(p);   /* the sender of a dropped flow: the next packets need no lookup */
	if (r != HYP_R_PASS_FLOW && r != HYP_R_PASS_NEW)
		return r;
	r = xdp_inspect(ctx, p, r);
	if (r == HYP_R_PASS_FLOW)
		vc_fill_pass(p);    /* the established fast path: the next packets need no lookup */
	return r;
}

/* Copy the first cfg->capture_len payload bytes into a match event. */
static __always_inline void xdp_ev_payload(struct xdp_md *ctx, const struct hyp_pkt *p, struct hyp_event *e)
{
	__u32 n = p->cfg->capture_len;

	if (n > p->pay_len)
		n = p->pay_len;
	if (n > HYP_EV_PAYLOAD)
		n = HYP_EV_PAYLOAD;
	if (n == 0)
		return;
	/* The helper's length must be provably in [1, HYP_EV_PAYLOAD] in the register itself; clang folds
	 * the comparisons above into forms the verifier cannot follow, so restate the range with a mask
	 * it tracks (exact for n in 1..64), behind a barrier that keeps clang from dropping it. */
	asm volatile("" : "+r"(n));
	n = ((n - 1) & (HYP_EV_PAYLOAD - 1)) + 1;
	if (!bpf_xdp_load_bytes(ctx, p->pay_off, e->payload, n))
		e->payload_len = n;
}

/* reason -> XDP action and *verdict, and exactly one stat[] entry of the books; -1 if the entry is missing. */
static __always_inline int xdp_verdict(struct hyp_pkt *p, int reason, __u8 *verdict)
{
	bool drop = stats_is_drop(reason);
	bool monitor;
	int act;

	/* drops decided before the config was read (malformed L2/L3) still obey monitor mode */
	if (drop && !p->cfg)
		policy_load(p);
	monitor = drop && policy_is_monitor(p->cfg);
	if (reason == HYP_R_ABORTED) {
		act = XDP_ABORTED;
		*verdict = HYP_V_ABORTED;
	} else if (reason == HYP_R_TX_SYNCOOKIE) {
		act = XDP_TX;
		*verdict = HYP_V_TX;
	} else if (drop && !monitor) {
		act = XDP_DROP;
		*verdict = HYP_V_DROP;
	} else {
		act = XDP_PASS;
		*verdict = monitor ? HYP_V_MONITOR : HYP_V_PASS;
	}
	if (!stats_count(p->books, monitor ? HYP_STATS_MONITOR + reason : reason, p->pkt_len))
		return -1;
	return act;
}

/* The exit of a packet xdp_parse() judged: its reasons have no event (ev_kind_of; test_fuzz checks
 * that every due event comes) and it has no flow. A separate exit so that the fields the rest of the
 * pipeline fills are not live on these early branches: clang re-stored their initial zeros on every
 * one of them (~125 stack stores per packet in parse alone). */
static __always_inline int xdp_finish_bare(struct hyp_pkt *p, int reason)
{
	__u8 verdict;
	int act = xdp_verdict(p, reason, &verdict);

	return act < 0 ? XDP_ABORTED : act;
}

/* The exit: reason -> XDP verdict, exactly one stat[] entry of the books, the (sampled) events. */
static __always_inline int xdp_finish(struct xdp_md *ctx, struct hyp_pkt *p, int reason)
{
	__u8 verdict, kind;
	int act = xdp_verdict(p, reason, &verdict);

	if (act < 0)
		return XDP_ABORTED;
	if (!p->cfg)
		return act;
	if (p->ev_flow)
		ev_flow(p, p->ev_flow, reason, verdict);
	kind = p->ev_done ? 0 : ev_kind_of(reason);
	if (kind) {
		struct hyp_event *e;

		parse_ports((void *)(long)ctx->data, (void *)(long)ctx->data_end, p);
		e = ev_begin(p, kind, reason, verdict);

		if (e) {
			if (kind == HYP_EV_MATCH) {
				e->sig = p->sig;
				e->action = p->action;
				xdp_ev_payload(ctx, p, e);
			}
			ev_submit(e);
		}
	}
	return act;
}

/* The pipeline, for every packet the express lane did not answer; b: this CPU's books. */
static __always_inline int xdp_pipeline(struct xdp_md *ctx, bool src_miss, struct hyp_books *b)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hyp_pkt p = {};
	int r, l4 = HYP_CONTINUE;

	/* p stays one struct in memory. Left to clang, it splits p into one scalar per field and, where
	 * paths merge, re-stores every field's zero on each incoming branch: hundreds of stores spread
	 * over the program, and the cache's hit paths (bench/micro) ran 10 ns slower. Zeroed once, it
	 * also cuts the frame from 416 bytes to 328 (docs/design.md). */
	asm volatile("" : : "r"(&p) : "memory");
	p.xp_src_miss = src_miss;
	p.books = b;
	hyp_count_in(b, HYP_C_SEEN);
	r = xdp_parse(ctx, data, data_end, &p);
	if (r != HYP_CONTINUE)
		return xdp_finish_bare(&p, r);
	r = xdp_front(data, data_end, &p, &l4);
	if (r != HYP_CONTINUE)
		return xdp_finish(ctx, &p, r);      /* judged before conntrack: no flow */
	return xdp_finish(ctx, &p, xdp_process(ctx, data, data_end, &p, l4));
}

SEC("xdp")
int hyp_xdp(struct xdp_md *ctx)
{
	/* looked up once for the packet, lane and pipeline alike (lib/hyperion_abi.h struct hyp_books) */
	struct hyp_books *b = hyp_books_get();
	bool src_miss = false;
	int r;

	if (!b)     /* cannot happen: index 0 of a one-entry array */
		return XDP_ABORTED;
	/* before p exists: a hit must not pay for zeroing it (bpf/express.h) */
	r = xp_run(b, (void *)(long)ctx->data, (void *)(long)ctx->data_end, &src_miss);
	if (r != HYP_CONTINUE)
		return r;
	return xdp_pipeline(ctx, src_miss, b);
}

/*
 * The SYN cookie answer (bpf/syncookie.h), entered from ct_track() by a tail call once a SYN is admitted
 * (rate limit, port), has a bare IP header and did not close into TIME_WAIT lately; all it needs of the
 * packet, its config and the clock waits in the per-CPU work slot (sc_work_fill(), sc_syn_handoff()). It
 * books the packet itself (hyp_xdp counted it seen): TX_SYNCOOKIE, or ABORTED when it cannot answer,
 * which does not happen once user space set the secret (at load) and the kernel resized the frame (XDP
 * keeps 256 bytes of headroom).
 */
SEC("xdp")
int hyp_xdp_syn(struct xdp_md *ctx)
{
	struct hyp_sc_work *t = sc_work_get();
	struct hyp_books *b;
	int r;

	if (!t)
		return XDP_ABORTED;
	r = sc_syn(ctx, t) == HYP_R_TX_SYNCOOKIE ? HYP_R_TX_SYNCOOKIE : HYP_R_ABORTED;
	b = hyp_books_get();
	if (!b)
		return XDP_ABORTED;
	if (r == HYP_R_TX_SYNCOOKIE)
		hyp_count_in(b, HYP_C_COOKIE_SENT);
	return stats_count(b, r, t->pkt_len) && r == HYP_R_TX_SYNCOOKIE ? XDP_TX : XDP_ABORTED;
}

/* Egress: the same parse, conntrack only. Never drops, never counts in stat[] (which counts ingress
 * packets: HYP_C_SEEN == sum of stat[]), only HYP_C_EGRESS_SEEN. */
static __always_inline void tc_process(struct __sk_buff *skb, struct hyp_pkt *p)
{
	void *data, *data_end;

	p->egress = 1;
	p->pkt_len = skb->len;
	p->ifindex = skb->ifindex;
	p->sig = HYP_EV_NO_SIG;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + HYP_TC_PULL_LEN > data_end && skb->len > (__u32)(data_end - data)) {
		bpf_skb_pull_data(skb, skb->len < HYP_TC_PULL_LEN ? skb->len : HYP_TC_PULL_LEN);
		/* the helper moved the packet: every packet pointer must be read again */
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	if (parse_l3(skb, true, data, data_end, p) != HYP_CONTINUE || p->nonfirst_frag)
		return;
	if (policy_load(p) != HYP_CONTINUE)
		return;
	if (parse_l4(data, data_end, p) != HYP_CONTINUE)
		return;
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP && !parse_is_icmp(p))
		return;
	ct_track(skb, p, false);
	if (p->ev_flow)
		ev_flow(p, p->ev_flow, HYP_R_PASS_EGRESS, HYP_V_PASS);
}

SEC("tc")
int hyp_tc_egress(struct __sk_buff *skb)
{
	struct hyp_books *b = hyp_books_get();
	struct hyp_pkt p = {};

	if (!b)     /* cannot happen: index 0 of a one-entry array */
		return HYP_TC_ACT_OK;
	p.books = b;
	hyp_count_in(b, HYP_C_EGRESS_SEEN);
	tc_process(skb, &p);
	return HYP_TC_ACT_OK;
}

/* Ingress, behind XDP: only the ACKs that complete a SYN cookie handshake need it (bpf/syncookie.h). It
 * judges nothing, so it hands every packet on: a program attached after it on tcx ingress still runs. */
SEC("tc")
int hyp_tc_ingress(struct __sk_buff *skb)
{
	sc_assign(skb);
	return HYP_TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
