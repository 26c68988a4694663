/* Bench XDP programs: the traffic generator's transmit step and the receiver-side baselines. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Generator settings, written into .rodata by bench/trafficgen.c before load. */
const volatile __u32 tg_l3_off = 14;     /* Ethernet header, no VLAN: frames are our own */
const volatile __u32 tg_l4_off = 34;
const volatile __u32 tg_family = 4;
const volatile __u32 tg_vary_port = 0;   /* distinct source ports (0 or 1 = fixed) */
const volatile __u32 tg_vary_src = 0;    /* distinct source addresses (0 or 1 = fixed) */
const volatile __u16 tg_sport_base = 0;  /* host order */

/* Frames handed to the transmit step; one generator process runs on one CPU, so a plain global. */
__u64 tg_frames = 0;

/* Receiver counters: [RX_FRAMES], [RX_BYTES], summed over CPUs by user space. */
enum { RX_FRAMES = 0, RX_BYTES = 1, RX_COUNTERS = 2 };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RX_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} rx_stats SEC(".maps");

#define ETH_HLEN_BENCH 14
#define IP4_SADDR_OFF 12   /* offset of saddr in the IPv4 header */
#define IP4_CSUM_OFF 10
#define IP6_SADDR_LOW_OFF 20 /* last 4 bytes of the IPv6 source (offset 8 + 12) */
#define L4_SPORT_OFF 0
#define UDP_CSUM_OFF 6
#define TCP_CSUM_OFF 16
#define IPPROTO_UDP_BENCH 17

static __always_inline __u16 csum_fold(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)c;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). Words are summed in wire order on both sides, so no swap. */
static __always_inline void csum_replace16(__u16 *sum, __u16 from, __u16 to)
{
	__u32 c = (__u16)~*sum + (__u16)~from + (__u32)to;

	*sum = (__u16)~csum_fold(c);
}

static __always_inline __u16 bswap16(__u16 v)
{
	return (__u16)((v >> 8) | (v << 8));
}

/*
 * Transmit step for BPF_F_TEST_XDP_LIVE_FRAMES: every frame gets the next (source address, source port)
 * from a counter, checksums patched incrementally, then XDP_TX sends it out of the ingress device (the
 * kernel turns TX in test_run into a redirect to ctx->ingress_ifindex). Page-pool frames are recycled
 * without being reset, so each frame is rewritten from the counter, never from its previous content.
 */
SEC("xdp")
int tg_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 n = tg_frames++;
	__u32 l3 = tg_l3_off, l4 = tg_l4_off;

	if (tg_vary_port <= 1 && tg_vary_src <= 1)
		return XDP_TX;
	if (l3 > 64 || l4 > 128)
		return XDP_ABORTED;
	__u8 *ip = data + l3;
	__u8 *th = data + l4;
	if ((void *)(th + TCP_CSUM_OFF + 2) > data_end || (void *)(ip + 40) > data_end)
		return XDP_ABORTED;

	__u8 proto = tg_family == 4 ? ip[9] : ip[6];
	__u16 *l4sum = (__u16 *)(th + (proto == IPPROTO_UDP_BENCH ? UDP_CSUM_OFF : TCP_CSUM_OFF));
	__u32 port_idx = tg_vary_port > 1 ? (__u32)(n % tg_vary_port) : 0;
	__u32 src_idx = tg_vary_src > 1 ? (__u32)((n / (tg_vary_port > 1 ? tg_vary_port : 1)) % tg_vary_src) : 0;

	if (tg_vary_port > 1) {
		__u16 *sp = (__u16 *)(th + L4_SPORT_OFF);
		__u16 nv = bswap16((__u16)(tg_sport_base + port_idx));
		csum_replace16(l4sum, *sp, nv);
		*sp = nv;
	}
	if (tg_vary_src > 1) {
		/* IPv4: the low 16 bits of the source (the base address's low byte is 0); IPv6: bits 96..111 and
		 * 112..127. Both count as pseudo-header words for the L4 checksum. */
		if (tg_family == 4) {
			__u16 *lo = (__u16 *)(ip + IP4_SADDR_OFF + 2);
			__u16 nv = bswap16((__u16)(src_idx & 0xff) | (__u16)(bswap16(*lo) & 0xff00));
			csum_replace16((__u16 *)(ip + IP4_CSUM_OFF), *lo, nv);
			csum_replace16(l4sum, *lo, nv);
			*lo = nv;
		} else {
			__u16 *hi = (__u16 *)(ip + 8 + 12);
			__u16 *lo = (__u16 *)(ip + 8 + 14);
			__u16 nh = bswap16((__u16)(src_idx >> 16)), nl = bswap16((__u16)src_idx);
			csum_replace16(l4sum, *hi, nh);
			csum_replace16(l4sum, *lo, nl);
			*hi = nh;
			*lo = nl;
		}
	}
	/* UDP: 0 means "no checksum" (and is invalid over IPv6); one's complement 0 and 0xffff are equal. */
	if (proto == IPPROTO_UDP_BENCH && *l4sum == 0)
		*l4sum = 0xffff;
	return XDP_TX;
}

/* Only IPv4 and IPv6/TCP/UDP frames count: the generator sends nothing else, and the link's own chatter
 * (ARP, neighbour discovery, MLD) must not blur the books a smoke test checks exactly. */
static __always_inline int rx_is_bench_frame(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data;

	if ((void *)(p + ETH_HLEN_BENCH + 7) > data_end)
		return 0;
	if (p[12] == 0x08 && p[13] == 0x00)
		return 1;
	return p[12] == 0x86 && p[13] == 0xdd && (p[ETH_HLEN_BENCH + 6] == 6 || p[ETH_HLEN_BENCH + 6] == 17);
}

static __always_inline void rx_count(struct xdp_md *ctx)
{
	__u32 k = RX_FRAMES;

	if (!rx_is_bench_frame(ctx))
		return;
	__u64 *v = bpf_map_lookup_elem(&rx_stats, &k);

	if (v)
		*v += 1;
	k = RX_BYTES;
	v = bpf_map_lookup_elem(&rx_stats, &k);
	if (v)
		*v += ctx->data_end - ctx->data;
}

/* Microbenchmark floor: nothing but the verdict. */
SEC("xdp")
int bare_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

/* Ceiling: the cheapest thing a receiver can do with a frame (and count it). */
SEC("xdp")
int rx_drop(struct xdp_md *ctx)
{
	rx_count(ctx);
	return XDP_DROP;
}

/* In front of iptables/nftables: counts what reaches the stack, and (being an XDP program) enables the
 * veth peer's NAPI, without which the generator's XDP transmit into the pair is refused. */
SEC("xdp")
int rx_pass(struct xdp_md *ctx)
{
	rx_count(ctx);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
