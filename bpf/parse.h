/* Header parsing shared by XDP and tc: Ethernet/VLAN, IPv4, IPv6 extension chain, TCP/UDP/ICMP. */
#ifndef HYP_PARSE_H
#define HYP_PARSE_H

/*
 * Offsets into the frame are kept in scalars and re-checked against this bound before every use as a
 * packet pointer: the verifier only accepts data + off when off has a known maximum (< 64 KiB), and a
 * header that starts past it cannot be in the linear part of an XDP buffer (one page) anyway, so it
 * is treated as truncated. Default 16383.
 */
#ifndef HYP_PARSE_OFF_MAX
#define HYP_PARSE_OFF_MAX 16383
#endif

#define HYP_IPV4_FRAG_OFF  0x1fff   /* fragment offset bits of iphdr.frag_off (host order) */
#define HYP_IPV6_FRAG_OFF  0xfff8   /* fragment offset bits of frag_hdr.frag_off (host order) */

/* Returns the pointer to len bytes at off, or NULL if they are not all inside the frame. */
static __always_inline void *parse_ptr(void *data, void *data_end, __u32 off, __u32 len)
{
	void *h;

	if (off > HYP_PARSE_OFF_MAX)
		return NULL;
	h = data + off;
	if (h + len > data_end)
		return NULL;
	return h;
}

static __always_inline bool parse_is_ipv6_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH;
}

/* Ethernet and up to HYP_VLAN_MAX 802.1Q/802.1ad tags. Sets *off to the L3 header and *h_proto (network
 * order) to the inner EtherType. */
static __always_inline int parse_l2(void *data, void *data_end, __u32 *off, __u16 *h_proto)
{
	struct ethhdr *eth = data;
	__u16 proto;
	__u32 o = sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return HYP_R_DROP_MALFORMED_L2;
	proto = eth->h_proto;
	/* Unrolled: the tag count is a compile-time bound, one extra round detects a tag too many. */
#pragma unroll
	for (int i = 0; i <= HYP_VLAN_MAX; i++) {
		struct vlan_hdr *vh;

		if (proto != bpf_htons(HYP_ETH_P_8021Q) && proto != bpf_htons(HYP_ETH_P_8021AD))
			break;
		if (i == HYP_VLAN_MAX)
			return HYP_R_DROP_VLAN_DEPTH;
		vh = data + o;
		if ((void *)(vh + 1) > data_end)
			return HYP_R_DROP_MALFORMED_L2;
		proto = vh->h_vlan_encapsulated_proto;
		o += sizeof(*vh);
	}
	*off = o;
	*h_proto = proto;
	return HYP_CONTINUE;
}

/* Ethernet pads short frames: the IP length, not the frame, says where the payload ends. A frame
 * shorter than the IP length is clamped (the payload we can see is what we scan). */
static __always_inline __u32 parse_l3_end_of(__u32 end, __u32 frame_len)
{
	return end < frame_len ? end : frame_len;
}

static __always_inline void parse_set_l3_end(struct hyp_pkt *p, __u32 end)
{
	p->l3_end = parse_l3_end_of(end, p->pkt_len);
}

static __always_inline int parse_ipv4(void *data, void *data_end, __u32 off, struct hyp_pkt *p)
{
	struct iphdr *ip = parse_ptr(data, data_end, off, sizeof(*ip));
	__u32 hlen, tot;

	if (!ip || ip->version != 4 || ip->ihl < 5)
		return HYP_R_DROP_MALFORMED_L3;
	hlen = ip->ihl * 4;                     /* options are skipped, not parsed */
	if (!parse_ptr(data, data_end, off, hlen))
		return HYP_R_DROP_MALFORMED_L3;
	tot = bpf_ntohs(ip->tot_len);
	if (tot < hlen)
		return HYP_R_DROP_MALFORMED_L3;
	p->family = HYP_AF_INET;
	p->l3_off = off;
	p->proto = ip->protocol;
	*(__u32 *)p->saddr = ip->saddr;
	*(__u32 *)p->daddr = ip->daddr;
	p->nonfirst_frag = (bpf_ntohs(ip->frag_off) & HYP_IPV4_FRAG_OFF) != 0;
	p->l4_off = off + hlen;
	parse_set_l3_end(p, off + tot);
	return HYP_CONTINUE;
}

/*
 * IPv6 extension chain. At most HYP_IPV6_EXT_MAX headers are walked (unrolled: the bound is what keeps
 * it verifiable); a longer chain, or one that runs past the frame, is HYP_R_DROP_EXT_CHAIN. The walk
 * stops at a non-first fragment: what follows its fragment header is data, not headers.
 * Returns the L4 offset | next header << 16 | nonfirst << 24, or -reason.
 */
#define HYP_EXT_NH_SHIFT   16
#define HYP_EXT_FRAG_SHIFT 24

static __always_inline int parse_ipv6_ext_walk(void *data, void *data_end, __u32 off, __u8 nh)
{
	__u32 nonfirst = 0;

	if (off > HYP_PARSE_OFF_MAX)
		return -HYP_R_DROP_EXT_CHAIN;
	/* A global function's arguments are unknown to the verifier. clang drops the parse_ptr() bound
	 * check below as redundant with the one above, which it did on another copy of the register, so
	 * restate the bound as a mask the verifier sees on the register used (exact after the check). */
	asm volatile("" : "+r"(off));
	off &= HYP_PARSE_OFF_MAX;
#pragma unroll
	for (int i = 0; i < HYP_IPV6_EXT_MAX; i++) {
		__u8 *h;
		__u32 len;

		if (!parse_is_ipv6_ext(nh))
			break;
		h = parse_ptr(data, data_end, off, 8);  /* every extension header is >= 8 bytes */
		if (!h)
			return -HYP_R_DROP_EXT_CHAIN;
		if (nh == IPPROTO_FRAGMENT) {
			struct frag_hdr *fh = (void *)h;

			len = 8;
			if (bpf_ntohs(fh->frag_off) & HYP_IPV6_FRAG_OFF) {
				nonfirst = 1;
				nh = h[0];
				off += len;
				goto done;
			}
		} else if (nh == IPPROTO_AH) {
			len = ((__u32)h[1] + 2) * 4;    /* AH counts 32-bit words minus 2 (RFC 4302) */
		} else {
			len = ((__u32)h[1] + 1) * 8;    /* 8-octet units not counting the first (RFC 8200) */
		}
		nh = h[0];
		off += len;
		/* the whole header must be in the frame, not only its first 8 bytes */
		if (off > HYP_PARSE_OFF_MAX || data + off > data_end)
			return -HYP_R_DROP_EXT_CHAIN;
	}
	if (parse_is_ipv6_ext(nh))
		return -HYP_R_DROP_EXT_CHAIN;
done:
	return off | (__u32)nh << HYP_EXT_NH_SHIFT | nonfirst << HYP_EXT_FRAG_SHIFT;
}

/*
 * The walk as separately verified global functions, one per program type (a global function's ctx
 * argument has the type of its program). Inlined, every path through the chain (up to 6 headers of 4
 * kinds) reached the rest of the program with a different exactly-known offset, and the verifier went
 * through everything after it once per path; called, it is verified once and returns an offset the
 * verifier only knows as "checked against HYP_PARSE_OFF_MAX". Only packets that have extension headers
 * pay for the call.
 */
__noinline int hyp_ipv6_ext_xdp(struct xdp_md *ctx, __u32 off, __u32 nh)
{
	return parse_ipv6_ext_walk((void *)(long)ctx->data, (void *)(long)ctx->data_end, off, nh);
}

__noinline int hyp_ipv6_ext_tc(struct __sk_buff *skb, __u32 off, __u32 nh)
{
	return parse_ipv6_ext_walk((void *)(long)skb->data, (void *)(long)skb->data_end, off, nh);
}

/* IPv6 header, then the extension chain (if any) through the program type's walker. */
static __always_inline int parse_ipv6(void *ctx, bool egress, void *data, void *data_end, __u32 off,
				      struct hyp_pkt *p)
{
	struct ipv6hdr *ip6 = parse_ptr(data, data_end, off, sizeof(*ip6));
	__u32 plen;
	__u8 nh;
	int r;

	if (!ip6 || ip6->version != 6)
		return HYP_R_DROP_MALFORMED_L3;
	p->family = HYP_AF_INET6;
	p->l3_off = off;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);
	plen = bpf_ntohs(ip6->payload_len);
	nh = ip6->nexthdr;
	off += sizeof(*ip6);
	/* payload_len 0 is a jumbogram (RFC 2675): the frame says where it ends */
	parse_set_l3_end(p, plen ? off + plen : p->pkt_len);
	if (!parse_is_ipv6_ext(nh)) {
		p->proto = nh;
		p->l4_off = off;
		return HYP_CONTINUE;
	}
	/* egress is a constant at each (inlined) call site: only one walker is referenced per program */
	r = egress ? hyp_ipv6_ext_tc(ctx, off, nh) : hyp_ipv6_ext_xdp(ctx, off, nh);
	if (r < 0)
		return -r;
	p->l4_off = r & 0xffff;
	p->proto = r >> HYP_EXT_NH_SHIFT;
	p->nonfirst_frag = (r >> HYP_EXT_FRAG_SHIFT) & 1;
	return HYP_CONTINUE;
}

/* L2 and L3: returns HYP_CONTINUE with addresses, proto and l4_off filled, or the verdict. */
static __always_inline int parse_l3(void *ctx, bool egress, void *data, void *data_end, struct hyp_pkt *p)
{
	__u32 off;
	__u16 proto;
	int r = parse_l2(data, data_end, &off, &proto);

	if (r != HYP_CONTINUE)
		return r;
	if (proto == bpf_htons(HYP_ETH_P_IP))
		return parse_ipv4(data, data_end, off, p);
	if (proto == bpf_htons(HYP_ETH_P_IPV6))
		return parse_ipv6(ctx, egress, data, data_end, off, p);
	return HYP_R_PASS_NONIP;
}

static __always_inline bool parse_is_icmp(const struct hyp_pkt *p)
{
	return (p->proto == IPPROTO_ICMP && p->family == HYP_AF_INET) ||
	       (p->proto == IPPROTO_ICMPV6 && p->family == HYP_AF_INET6);
}

/* ICMP echo request/reply of either family (the only ICMP messages that get a pseudo-flow). */
static __always_inline bool parse_is_echo(const struct hyp_pkt *p)
{
	if (p->family == HYP_AF_INET)
		return p->icmp_type == 8 || p->icmp_type == 0;
	return p->icmp_type == 128 || p->icmp_type == 129;
}

static __always_inline bool parse_is_echo_request(const struct hyp_pkt *p)
{
	return p->icmp_type == (p->family == HYP_AF_INET ? 8 : 128);
}

/* L4 header of TCP, UDP, ICMP, ICMPv6 (other protocols: nothing to read, HYP_CONTINUE). */
static __always_inline int parse_l4(void *data, void *data_end, struct hyp_pkt *p)
{
	__u32 off = p->l4_off;

	p->l4_parsed = 1;
	if (p->proto == IPPROTO_TCP) {
		__u8 *th = parse_ptr(data, data_end, off, sizeof(struct tcphdr));
		__u32 hlen;

		if (!th)
			return HYP_R_DROP_MALFORMED_L4;
		hlen = (th[12] >> 4) * 4;               /* doff */
		if (hlen < sizeof(struct tcphdr) || !parse_ptr(data, data_end, off, hlen) ||
		    off + hlen > p->l3_end)
			return HYP_R_DROP_MALFORMED_L4;
		p->sport = ((struct tcphdr *)th)->source;
		p->dport = ((struct tcphdr *)th)->dest;
		p->tcp_seq = bpf_ntohl(((struct tcphdr *)th)->seq);
		p->tcp_flags = th[13];
		p->pay_off = off + hlen;
		p->pay_len = p->l3_end - p->pay_off;
	} else if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = parse_ptr(data, data_end, off, sizeof(*uh));

		if (!uh || off + sizeof(*uh) > p->l3_end)
			return HYP_R_DROP_MALFORMED_L4;
		p->sport = uh->source;
		p->dport = uh->dest;
		p->pay_off = off + sizeof(*uh);
		p->pay_len = p->l3_end - p->pay_off;
	} else if (parse_is_icmp(p)) {
		/* type, code, checksum + 4 bytes (echo id/seq, or unused/MTU) exist in every message */
		__u8 *ih = parse_ptr(data, data_end, off, 8);

		/* checked against the IP length too: bytes past it (Ethernet padding) are not the datagram's */
		if (!ih || off + 8 > p->l3_end)
			return HYP_R_DROP_MALFORMED_L4;
		p->icmp_type = ih[0];
		if (parse_is_echo(p)) {
			p->sport = *(__u16 *)(ih + 4);
			p->dport = p->sport;
		}
	}
	return HYP_CONTINUE;
}

/*
 * The fast parse's shapes (parse_fast), as checks on the frame alone, shared with the verdict cache's
 * express lane (bpf/express.h), which must take exactly the frames parse_fast() takes. Offsets are
 * constants (Ethernet untagged), so their bounds are constants too.
 */

/* The IPv4 header after untagged Ethernet: no options (version 4 and IHL 5 are one byte), not a
 * non-first fragment, a total length that holds the header; NULL otherwise. */
static __always_inline struct iphdr *parse_fast_ipv4(void *data, void *data_end)
{
	struct iphdr *ip = data + sizeof(struct ethhdr);

	if ((void *)(ip + 1) > data_end || *(__u8 *)ip != 0x45 ||
	    (ip->frag_off & bpf_htons(HYP_IPV4_FRAG_OFF)) || bpf_ntohs(ip->tot_len) < sizeof(*ip))
		return NULL;
	return ip;
}

/* The IPv6 header after untagged Ethernet: no extension header next, not a jumbogram (payload length
 * 0); NULL otherwise. */
static __always_inline struct ipv6hdr *parse_fast_ipv6(void *data, void *data_end)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

	if ((void *)(ip6 + 1) > data_end || ip6->version != 6 || parse_is_ipv6_ext(ip6->nexthdr) ||
	    !ip6->payload_len)
		return NULL;
	return ip6;
}

/* The length of the TCP or UDP header at off, whole within the frame and the datagram (l3_end, which
 * is clamped to the frame: TCP options are in it too), a TCP header only if its flags under tcp_mask
 * are tcp_want (the express lane takes ACK segments alone); 0 for anything else. */
static __always_inline __u32 parse_fast_l4_len(void *data, void *data_end, __u32 off, __u32 l3_end, __u8 proto,
					       __u8 tcp_mask, __u8 tcp_want)
{
	__u8 *l4 = data + off;
	__u32 hlen;

	if (proto == IPPROTO_TCP) {
		if ((void *)(l4 + sizeof(struct tcphdr)) > data_end)
			return 0;
		hlen = (l4[12] >> 4) * 4;               /* doff */
		if (hlen < sizeof(struct tcphdr) || off + hlen > l3_end || (l4[13] & tcp_mask) != tcp_want)
			return 0;
		return hlen;
	}
	if (proto == IPPROTO_UDP) {
		hlen = sizeof(struct udphdr);
		if ((void *)(l4 + hlen) > data_end || off + hlen > l3_end)
			return 0;
		return hlen;
	}
	return 0;
}

/* The fast parse's L4: fills p as parse_l4() would and returns true, else false and parse_l4() judges
 * it in its usual place. */
static __always_inline bool parse_l4_fast(void *data, void *data_end, __u32 off, struct hyp_pkt *p)
{
	__u8 *l4 = data + off;
	__u32 hlen = parse_fast_l4_len(data, data_end, off, p->l3_end, p->proto, 0, 0);

	if (!hlen)
		return false;
	if (p->proto == IPPROTO_TCP) {
		p->tcp_seq = bpf_ntohl(((struct tcphdr *)l4)->seq);
		p->tcp_flags = l4[13];
	}
	p->sport = ((__u16 *)l4)[0];
	p->dport = ((__u16 *)l4)[1];
	p->pay_off = off + hlen;
	p->pay_len = p->l3_end - p->pay_off;
	p->l4_parsed = 1;
	return true;
}

/*
 * The common shapes in one pass: untagged Ethernet, then IPv4 without options that is not a non-first
 * fragment, or IPv6 whose next header is not an extension header; and TCP or UDP (parse_l4_fast).
 * Fills p as parse_l3() (and parse_l4()) would and returns true; any other frame (VLAN tags, options,
 * extension headers, a jumbogram, anything truncated or malformed) returns false, for parse_l3() to
 * judge from the start. Why a second parse: the general one is written for every shape (the tag loop,
 * the extension walk, offsets re-bounded before each use), and on the verdict cache's paths, where
 * little else is left to do, it was a sixth of the program. The general parse still judges every
 * frame this one declines, so what a frame is judged (tests/bpf/test_parse.c: every cut, every
 * shape) does not depend on which parse read it.
 */
static __always_inline bool parse_fast(void *data, void *data_end, struct hyp_pkt *p)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth), l4_off;

	if ((void *)(eth + 1) > data_end)
		return false;
	if (eth->h_proto == bpf_htons(HYP_ETH_P_IP)) {
		struct iphdr *ip = parse_fast_ipv4(data, data_end);

		if (!ip)
			return false;
		p->family = HYP_AF_INET;
		p->proto = ip->protocol;
		*(__u32 *)p->saddr = ip->saddr;
		*(__u32 *)p->daddr = ip->daddr;
		l4_off = off + sizeof(*ip);
		p->l3_off = off;
		p->l4_off = l4_off;
		parse_set_l3_end(p, off + bpf_ntohs(ip->tot_len));
		/* in each branch, so that the L4 offset is a constant there: with one tail for both
		 * families the verifier walked 490k instructions instead of 320k (before the express
		 * lane), for the same speed */
		parse_l4_fast(data, data_end, l4_off, p);
		return true;
	}
	if (eth->h_proto == bpf_htons(HYP_ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = parse_fast_ipv6(data, data_end);

		if (!ip6)
			return false;
		p->family = HYP_AF_INET6;
		p->proto = ip6->nexthdr;
		__builtin_memcpy(p->saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->daddr, &ip6->daddr, 16);
		l4_off = off + sizeof(*ip6);
		p->l3_off = off;
		p->l4_off = l4_off;
		parse_set_l3_end(p, l4_off + bpf_ntohs(ip6->payload_len));
		parse_l4_fast(data, data_end, l4_off, p);
		return true;
	}
	return false;
}

/* Ports only, for the event of a packet judged before its L4 header was parsed (a banned source):
 * the ban fast path does not pay for them, the event still names them. */
static __always_inline void parse_ports(void *data, void *data_end, struct hyp_pkt *p)
{
	__u16 *ports;

	if (p->l4_parsed || p->nonfirst_frag || (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP))
		return;
	ports = parse_ptr(data, data_end, p->l4_off, 4);
	if (!ports)
		return;
	p->sport = ports[0];
	p->dport = ports[1];
}

#endif /* HYP_PARSE_H */
