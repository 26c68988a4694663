/* Configuration for this packet (one generation read) and the port and fragment policies. */
#ifndef HYP_POLICY_H
#define HYP_POLICY_H

/* IPv6 sources share one rate-limit bucket per prefix of this length when cfg->rl_v6_prefix is 0:
 * one host usually owns a whole /64, so per-address buckets would be trivial to evade. */
#define HYP_RL_V6_PREFIX_DEFAULT 64

/* Read gen[0] once, then policy[gen]: the whole packet sees one generation even if user space flips
 * it meanwhile. Both are array lookups that cannot fail for a valid generation, so a failure (or a
 * generation number out of range) is HYP_R_ABORTED. */
static __always_inline int policy_load(struct hyp_pkt *p)
{
	__u32 ak = HYP_GEN_ACTIVE, ek = HYP_GEN_EPOCH, g, *gp, *ep;
	const struct hyp_config *cfg;

	/* The epoch first, before the generation and any lookup the verdict cache may remember: a change
	 * user space makes meanwhile (a generation flip included) bumps the epoch after it, so an entry made
	 * from this packet's reads is born stale, never outlives it. The compiler cannot move the epoch's
	 * load past the next lookup (a helper call to it), and x86 does not reorder loads; a CPU that
	 * does (arm64) may pair a new epoch with the old generation, and the express lane may then answer
	 * under the old config for an entry's TTL at most (HYP_VCACHE_TTL_S). */
	ep = bpf_map_lookup_elem(&gen, &ek);
	p->epoch = ep ? *ep : 0;
	gp = bpf_map_lookup_elem(&gen, &ak);
	if (!gp)
		return HYP_R_ABORTED;
	g = *gp;
	cfg = bpf_map_lookup_elem(&policy, &g);
	if (!cfg)
		return HYP_R_ABORTED;
	p->gen = g;
	p->cfg = cfg;
	return HYP_CONTINUE;
}

/* The coarse datapath clock (helpers.h), read at most once per packet and only by steps that need it
 * (a permanent ban drops without ever reading it). */
static __always_inline __u64 pkt_now(struct hyp_pkt *p)
{
	if (!p->now)
		p->now = hyp_now(p->books, p->cfg);
	return p->now;
}

/* May a new inbound flow of proto (TCP/UDP) reach port dport_be (network order)? */
static __always_inline bool policy_port_open(const struct hyp_config *cfg, __u8 proto, __u16 dport_be)
{
	__u32 port = bpf_ntohs(dport_be);
	/* port >> 6 < 1024 = HYP_PORT_WORDS by arithmetic; the mask restates it for the verifier */
	__u32 w = (port >> 6) & (HYP_PORT_WORDS - 1);
	__u64 word;

	if (proto == IPPROTO_TCP) {
		if (cfg->tcp_all_open)
			return true;
		word = cfg->tcp_ports[w];
	} else {
		if (cfg->udp_all_open)
			return true;
		word = cfg->udp_ports[w];
	}
	return (word >> (port & 63)) & 1;
}

/* Non-first fragments carry no L4 header: they cannot be matched to a flow or a port, so a single
 * switch decides them (the first fragment, which has the ports, went through everything). */
static __always_inline int policy_frag(const struct hyp_config *cfg)
{
	return cfg->frag_policy == HYP_FRAG_DROP ? HYP_R_DROP_FRAG : HYP_R_PASS_FRAG;
}

static __always_inline bool policy_is_monitor(const struct hyp_config *cfg)
{
	return cfg && cfg->mode == HYP_MODE_MONITOR;
}

#endif /* HYP_POLICY_H */
