/* Datapath basics: the per-packet context, protocol constants, the clock and small inline helpers. */
#ifndef HYP_HELPERS_H
#define HYP_HELPERS_H

/* A step returns this to let the packet go on, or an enum hyp_reason to end it. */
#define HYP_CONTINUE (-1)

/* Not in vmlinux.h (they are #defines in the uapi headers). */
#define HYP_ETH_P_IP     0x0800
#define HYP_ETH_P_IPV6   0x86DD
#define HYP_ETH_P_8021Q  0x8100
#define HYP_ETH_P_8021AD 0x88A8
#define HYP_TC_ACT_OK    0
/* TC_ACT_UNSPEC: tcx runs the next program (TCX_NEXT), clsact the next filter, else the default */
#define HYP_TC_ACT_UNSPEC (-1)
/* IPv6 next-header values; in6.h #defines, so vmlinux.h lacks them (IPPROTO_AH/TCP/UDP/ICMP it has). */
#define IPPROTO_HOPOPTS  0
#define IPPROTO_ROUTING  43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_ICMPV6   58
#define IPPROTO_DSTOPTS  60

#define HYP_TCP_FIN 0x01
#define HYP_TCP_SYN 0x02
#define HYP_TCP_RST 0x04
#define HYP_TCP_ACK 0x10

#define HYP_NS_PER_S 1000000000ULL

#ifndef likely
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

/* What one packet is, and what the steps decided about it so far. Lives on the BPF stack (the whole
 * program must fit in 512 bytes), so keep it small; pointers are map values and are only valid for
 * this run of the program. */
struct hyp_pkt {
	__u8 saddr[16];             /* as on the wire; IPv4 in the first 4 bytes, rest zero */
	__u8 daddr[16];
	__u16 sport;                /* network order; ICMP echo: identifier, else 0 */
	__u16 dport;
	__u8 family;                /* enum hyp_family */
	__u8 proto;                 /* IPPROTO_* of the L4 header (after IPv6 extension headers) */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 nonfirst_frag;         /* fragment offset != 0: no L4 header in this packet */
	__u8 egress;                /* 0: XDP ingress, 1: tc egress (hyp_event.dir) */
	__u8 dir;                   /* direction index in the flow key (0 = from endpoint a) */
	__u8 state;                 /* flow state after this packet, for events (HYP_CT_NONE: no flow) */
	__u8 ev_flow;               /* pending flow event (FLOW_NEW / FLOW_END), 0 = none */
	__u8 l4_parsed;             /* parse_l4 ran: ports and flags are filled */
	__u8 ev_done;               /* the verdict cache settled this packet's event (bpf/vcache.h vc_ev) */
	__u8 xp_src_miss;           /* the express lane found no source entry (bpf/express.h) */
	__u32 l4_off;               /* offset of the L4 header from the start of the frame */
	__u32 l3_end;               /* end of the IP datagram (IP length, clamped to the frame) */
	__u32 pay_off;              /* L4 payload offset and length (TCP/UDP) */
	__u32 pay_len;
	__u32 pkt_len;              /* frame length */
	__u32 tcp_seq;              /* host order */
	__u32 gen;                  /* active generation, read once */
	__u32 epoch;                /* state epoch (gen[HYP_GEN_EPOCH]), read with it: bpf/vcache.h */
	__u32 ifindex;
	__u64 now;                  /* coarse datapath clock (hyp_now), read once when first needed */
	__u64 ev_packets;           /* flow totals for a pending FLOW_END event */
	__u64 ev_bytes;
	const struct hyp_config *cfg;
	struct hyp_flow *flow;      /* flow entry of this packet (NULL if none) */
	struct hyp_rl *rl;          /* per-source rate-limit entry, cached between the pps and syn steps */
	struct hyp_books *books;    /* this CPU's books, looked up once per packet by its program */
	__u32 sig;                  /* matched signature (HYP_EV_MATCH) */
	__u8 action;
	__u8 new_flags2;            /* flags2 of a flow this packet creates (HYP_FF2_COOKIE) */
	__u16 l3_off;               /* offset of the IP header from the start of the frame */
};

/*
 * The datapath clock: every time stored in a map is CLOCK_MONOTONIC + cfg->clock_offset_ns, so tests
 * (and an operator) can age state by moving the offset. Two readings of it:
 *  - hyp_now(): the coarse clock (as of the last timer tick, up to one jiffy behind: 4 ms at HZ=250).
 *    For what is judged in seconds: conntrack created/last_seen and timeouts, ban expiry, pickup
 *    grace, event sampling buckets. It changes once per tick, so each CPU keeps the value it read
 *    with the jiffies count it read it at and asks the kernel again only when jiffies
 *    moved (struct hyp_books clock_*, which each program looks up once per packet): bpf_jiffies64()
 *    is inlined by the verifier into one load, so most packets pay a load and a compare instead of
 *    a helper call. A call costs more than its body where
 *    every return goes through the SRSO "safe RET" thunk, and bpf_ktime_get_ns() reads the TSC:
 *    ~25 ns a call in the VM this was measured on (read_tsc was 15% of the banned-source path).
 *    jiffies and the coarse clock advance in the same tick but not atomically together, so the
 *    cached value can lag the coarse clock by one more tick at most.
 *  - hyp_now_fine(): the exact clock, for the per-source packet/SYN buckets (a fraction of a second
 *    matters at high rates) and event timestamps (user space orders and dates them). Read only when
 *    one of those is actually used.
 * Each stored field is always written and compared on the same reading (a bucket's last_ns is fine,
 * a flow's last_seen_ns coarse), and every comparison tolerates a clock behind a stored time.
 */
/* This CPU's books (maps.h: books); NULL cannot happen for index 0 of a one-entry array. A path that
 * books several things looks them up once and passes the pointer on (bpf/express.h). */
static __always_inline struct hyp_books *hyp_books_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&books, &zero);
}

/* The kernel's coarse clock (above) as this CPU's books b cache it, without the config's offset. */
static __always_inline __u64 hyp_clock_coarse(struct hyp_books *b)
{
	__u64 j = bpf_jiffies64();

	if (b->clock_jiffies != j || !b->clock_ns) {
		b->clock_ns = bpf_ktime_get_coarse_ns();
		b->clock_jiffies = j;
	}
	return b->clock_ns;
}

/* The coarse datapath clock (above), through this CPU's books b. */
static __always_inline __u64 hyp_now(struct hyp_books *b, const struct hyp_config *cfg)
{
	return hyp_clock_coarse(b) + cfg->clock_offset_ns;
}

static __always_inline __u64 hyp_now_fine(const struct hyp_config *cfg)
{
	return bpf_ktime_get_ns() + cfg->clock_offset_ns;
}

/* Bump a per-CPU counter in this CPU's books b (p->books where a packet is at hand). Per-CPU, so a
 * plain increment is exact. */
static __always_inline void hyp_count_in(struct hyp_books *b, __u32 idx)
{
	if (idx < HYP_C_MAX)
		b->counter[idx] += 1;
}

/* hyp_count_in() for the steps that have no packet at hand: looks the books up. A missing entry
 * cannot happen (hyp_books_get()); it is ignored rather than turned into an abort. */
static __always_inline void hyp_count(__u32 idx)
{
	struct hyp_books *b = hyp_books_get();

	if (b)
		hyp_count_in(b, idx);
}

/* The per-CPU scratch slot (maps.h: scratch_dp), zeroed over its first len bytes (a multiple of 8).
 * NULL cannot happen for index 0 of a one-entry array; callers treat it as "no room". */
static __always_inline void *hyp_scratch(__u32 len)
{
	__u32 zero = 0;
	__u64 *s = bpf_map_lookup_elem(&scratch_dp, &zero);

	if (!s)
		return NULL;
#pragma unroll
	for (int i = 0; i < (int)(sizeof(struct hyp_flow) / 8); i++)
		if (i * 8 < (int)len)
			s[i] = 0;
	return s;
}

static __always_inline void hyp_addr_copy(__u8 *dst, const __u8 *src)
{
	((__u64 *)dst)[0] = ((const __u64 *)src)[0];
	((__u64 *)dst)[1] = ((const __u64 *)src)[1];
}

#endif /* HYP_HELPERS_H */
