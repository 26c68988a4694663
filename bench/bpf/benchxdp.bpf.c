/* Bench XDP programs: the traffic generator's transmit step and the receiver-side baselines. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "rx_ban.h"

/* Generator settings, written into .rodata by bench/trafficgen.c before load. */
const volatile __u32 tg_l3_off = 14;     /* Ethernet header, no VLAN: frames are our own */
const volatile __u32 tg_l4_off = 34;
const volatile __u32 tg_family = 4;
const volatile __u32 tg_vary_port = 0;   /* distinct source ports (0 or 1 = fixed) */
const volatile __u32 tg_vary_src = 0;    /* distinct source addresses (0 or 1 = fixed) */
const volatile __u16 tg_sport_base = 0;  /* host order */
/* Restore mode (trafficgen --restore): the frame's first tg_tmpl_len bytes are written from tg_tmpl before
 * every transmit, and the frame is trimmed to tg_len (see tg_fix_len). */
#define TG_TMPL_WORDS 16
const volatile __u32 tg_tmpl_len = 0;    /* 0 = off; else 8..TG_TMPL_WORDS * 8, at most tg_len */
const volatile __u32 tg_len = 0;
const volatile __u64 tg_tmpl[TG_TMPL_WORDS] = {};

/* Frames handed to the transmit step; one generator process runs on one CPU, so a plain global. */
__u64 tg_frames = 0;

/* Reply sink settings (tx_sink, on the generator's end), written into .rodata by bench/xdprx.c. */
const volatile __u32 tx_local4 = 0;      /* the generator end's own addresses, wire order: frames to */
const volatile __u8 tx_local6[16] = {};  /* them go to its stack (a real client's handshake) */
const volatile __u32 tx_verify = 0;      /* 1: check every SYN-ACK (smoke runs; a few ns per reply) */
const volatile __u16 tx_expect_sport = 0;/* host order: the port the SYNs went to */
const volatile __u32 tx_expect_ack = 0;  /* the SYNs' sequence number + 1 */

/* Receiver counters: [RX_FRAMES], [RX_BYTES], [RX_BANNED] (rx_ban's drops), summed over CPUs by user space. */
enum { RX_FRAMES = 0, RX_BYTES = 1, RX_BANNED = RX_BAN_STAT, RX_COUNTERS = 3 };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RX_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} rx_stats SEC(".maps");

/* Reply sink counters (tx_sink), summed over CPUs by user space. */
enum { TX_FRAMES = 0, TX_SYNACK = 1, TX_SYNACK_BAD = 2, TX_LOCAL = 3, TX_OTHER = 4, TX_COUNTERS = 5 };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TX_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} tx_stats SEC(".maps");

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
 * Restore mode, for receivers that answer from XDP. test_run's live-frame pages are recycled without
 * their content being reset, and a receiver's XDP_TX (Hyperion's SYN cookie, xdp_tx's bounce) rewrites
 * the generator's own page in place: unrestored, the next frame sent from that page would be the answer
 * (a SYN-ACK) with a new source patched in. test_run resets a page's bounds only if the answer moved its
 * start (an answer grown at the head), and rebuilds the frame it sends (its length) from the context
 * only if the context's bounds differ from the original ones; an answer grown at the tail would leave
 * its longer length in the frame. So trafficgen hands the frame over one byte long and tg_tx trims it
 * (tg_fix_len): the bounds always differ and the length is always rebuilt. The trim is one helper call
 * on every frame, whatever the receiver did to the page, so the generator's cost is the same for all.
 */
static __always_inline int tg_fix_len(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return bpf_xdp_adjust_tail(ctx, (int)tg_len - (int)(data_end - data)) ? -1 : 0;
}

/* The frame's first tg_tmpl_len bytes from the template (its length already tg_len). */
static __always_inline int tg_restore_bytes(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 n = tg_tmpl_len;   /* 64-bit: added to a packet pointer */

	if (n < 8 || n > TG_TMPL_WORDS * 8)
		return -1;
	if (data + n > data_end)
		return -1;
#pragma unroll
	for (int i = 0; i < TG_TMPL_WORDS; i++) {
		if ((i + 1) * 8 > n)
			break;
		*(__u64 *)(data + i * 8) = tg_tmpl[i];
	}
	/* the last n % 8 bytes */
	if (n % 8) {
		const volatile __u8 *t = (const volatile __u8 *)tg_tmpl;
		__u8 *d = data;

#pragma unroll
		for (int i = 0; i < 8; i++)
			if ((n & ~7u) + i < n)
				d[(n & ~7u) + i] = t[(n & ~7u) + i];
	}
	return 0;
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

	if (tg_tmpl_len) {
		if (tg_fix_len(ctx) || tg_restore_bytes(ctx))
			return XDP_ABORTED;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		/* opaque to clang: it would otherwise turn the bound checks below into 32-bit integer
		 * arithmetic on data_end (both are zero-extended loads), which the verifier refuses */
		asm volatile("" : "+r"(data), "+r"(data_end));
	}
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

/* Microbenchmark harness for rungs whose program rewrites the frame (bench/micro.c): BPF_PROG_TEST_RUN
 * repeat runs every iteration on the same buffer (bounds included), so after one XDP_TX the next
 * iteration would see the answer, not the request. mc_harness puts the request back and tail-calls the
 * program under test in mc_next[0]; the same harness around bare_drop is the rung's reference. The
 * answer may have grown at the head (Hyperion's cookie SYN-ACK to a bare SYN: XDP has headroom where a
 * small frame may have no tailroom) or been cut at the tail (a SYN's payload): a longer frame is cut
 * back at the head, a shorter one grown back at the tail, with one helper call every time (delta 0 when
 * nothing changed, so the reference pays it too); then the bytes come from tg_tmpl. An answer grown at
 * the tail would be cut at the wrong end: the frame drifts through the buffer until the program under
 * test fails to grow it, which the rung's check reports. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} mc_next SEC(".maps");

SEC("xdp")
int mc_harness(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int delta = (int)(data_end - data) - (int)tg_len;

	if (delta >= 0 ? bpf_xdp_adjust_head(ctx, delta) : bpf_xdp_adjust_tail(ctx, -delta))
		return XDP_ABORTED;
	if (tg_restore_bytes(ctx))
		return XDP_ABORTED;
	bpf_tail_call(ctx, &mc_next, 0);
	return XDP_ABORTED;
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

/*
 * Floor for a ban filter (scenario b): the least any filter that drops a banned source must do on top of
 * the ceiling's work. It reads the source address and finds it in a table with one inlined array probe
 * at a hashed slot, and counts its drops: no expiry, no generation, no event, no statistics beyond
 * that count. Its distance to xdp_drop is what the ban itself costs on this machine, before any of
 * Hyperion's bookkeeping. Slots are written by xdprx (ban=ADDR) and bench/micro (bench/rx_ban.h).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RX_BAN_SLOTS);
	__type(key, __u32);
	__type(value, struct rx_ban_slot);
} rx_bans SEC(".maps");

static __always_inline int rx_ban_verdict(__u64 a0, __u64 a1)
{
	__u32 k = rx_ban_slot_of(a0, a1);
	struct rx_ban_slot *e = bpf_map_lookup_elem(&rx_bans, &k);
	__u64 *n;

	if (!e || e->a0 != a0 || e->a1 != a1)
		return XDP_PASS;
	k = RX_BANNED;
	n = bpf_map_lookup_elem(&rx_stats, &k);
	if (n)
		*n += 1;
	return XDP_DROP;
}

SEC("xdp")
int rx_ban(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data, *ip = p + ETH_HLEN_BENCH;

	rx_count(ctx);
	if ((void *)(ip + 20) > data_end)
		return XDP_PASS;
	if (p[12] == 0x08 && p[13] == 0x00)
		return rx_ban_verdict(*(__u32 *)(ip + IP4_SADDR_OFF), RX_BAN_V4);
	if (p[12] == 0x86 && p[13] == 0xdd) {
		__u64 a0, a1;

		if ((void *)(ip + 40) > data_end)
			return XDP_PASS;
		a0 = *(__u64 *)(ip + 8);
		a1 = *(__u64 *)(ip + 16);
		/* the unspecified address (DAD, MLD) would match an empty slot, all zeros */
		if (!(a0 | a1))
			return XDP_PASS;
		return rx_ban_verdict(a0, a1);
	}
	return XDP_PASS;
}

/* In front of iptables/nftables: counts what reaches the stack, and (being an XDP program) enables the
 * veth peer's NAPI, without which the generator's XDP transmit into the pair is refused. */
SEC("xdp")
int rx_pass(struct xdp_md *ctx)
{
	rx_count(ctx);
	return XDP_PASS;
}

static __always_inline void swap_ports(__u16 *l4)
{
	__u16 t = l4[0];

	l4[0] = l4[1];
	l4[1] = t;
}

/* Ceiling for traffic answered from XDP: every frame bounced back out of the interface it came in on,
 * MACs, addresses and ports swapped (checksums unchanged: swapping words keeps the sum), nothing else.
 * Any real answer (Hyperion's SYN cookie) does at least this, plus its own work. */
SEC("xdp")
int rx_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u16 *eth = data;
	__u16 t16;
	__u32 t32;

	rx_count(ctx);
	if ((void *)(eth + 7) > data_end)
		return XDP_DROP;
	for (int i = 0; i < 3; i++) {
		t16 = eth[i];
		eth[i] = eth[i + 3];
		eth[i + 3] = t16;
	}
	if (eth[6] == bswap16(0x0800)) {
		__u8 *ip = data + ETH_HLEN_BENCH;
		__u16 *l4 = (__u16 *)(ip + 20);

		if ((void *)(l4 + 2) > data_end || ip[0] != 0x45)
			return XDP_DROP;
		t32 = *(__u32 *)(ip + 12);
		*(__u32 *)(ip + 12) = *(__u32 *)(ip + 16);
		*(__u32 *)(ip + 16) = t32;
		swap_ports(l4);
	} else if (eth[6] == bswap16(0x86dd)) {
		__u32 *a = data + ETH_HLEN_BENCH + 8;
		__u16 *l4 = (__u16 *)(a + 8);

		if ((void *)(l4 + 2) > data_end)
			return XDP_DROP;
		for (int i = 0; i < 4; i++) {
			t32 = a[i];
			a[i] = a[i + 4];
			a[i + 4] = t32;
		}
		swap_ports(l4);
	} else {
		return XDP_DROP;
	}
	return XDP_TX;
}

static __always_inline void tx_add(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&tx_stats, &k);

	if (v)
		*v += 1;
}

/* Ones' complement sum of 32-bit words (wire order as loaded), folded and inverted: 0 for a valid
 * checksum when the stored one is included. */
static __always_inline __u16 tx_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

#define TX_SYNACK_TCP_HLEN 40   /* Hyperion's cookie SYN-ACK: 20-byte header + 20 bytes of options */

/* The SYN-ACK at ip (IPv4 or IPv6 header, TCP right after) is what a cookie answer to the generator's
 * SYN must be: well-formed headers, both checksums valid, exactly SYN|ACK, from the port the SYN went
 * to, acknowledging its sequence number, an MSS option first. */
static __always_inline bool tx_synack_ok(__u8 *ip, __u8 *th, void *data_end, bool v4)
{
	__u32 *w = (__u32 *)th;
	__u64 sum = 0;

	if ((void *)(th + TX_SYNACK_TCP_HLEN) > data_end)
		return false;
	if (v4) {
		if (ip[0] != 0x45 || bswap16(*(__u16 *)(ip + 2)) != 20 + TX_SYNACK_TCP_HLEN ||
		    (bswap16(*(__u16 *)(ip + 6)) & 0x3fff) || ip[8] == 0)
			return false;
		for (int i = 0; i < 5; i++)
			sum += ((__u32 *)ip)[i];
		if (tx_fold(sum))
			return false;
		sum = (__u64)*(__u32 *)(ip + 12) + *(__u32 *)(ip + 16) + bpf_htonl(6 << 16 | TX_SYNACK_TCP_HLEN);
	} else {
		if ((ip[0] >> 4) != 6 || bswap16(*(__u16 *)(ip + 4)) != TX_SYNACK_TCP_HLEN || ip[7] == 0)
			return false;
		sum = (__u64)bpf_htonl(TX_SYNACK_TCP_HLEN) + bpf_htonl(6);
		for (int i = 0; i < 8; i++)
			sum += ((__u32 *)(ip + 8))[i];
	}
	for (int i = 0; i < TX_SYNACK_TCP_HLEN / 4; i++)
		sum += w[i];
	if (tx_fold(sum))
		return false;
	return th[12] >> 4 == TX_SYNACK_TCP_HLEN / 4 && th[13] == 0x12 &&
	       bswap16(*(__u16 *)th) == tx_expect_sport && bpf_ntohl(w[2]) == tx_expect_ack &&
	       th[20] == 2 && th[21] == 4;
}

/*
 * On the generator's end, for scenarios whose receiver answers from XDP: counts the answers and drops
 * them (the generator has no use for them). Its presence is also what lets them arrive at all: a veth
 * end without NAPI (an XDP program or GRO) refuses frames its peer's XDP program transmits. Frames to
 * the end's own addresses (a real client's handshake) and everything not IP/TCP go to its stack.
 */
SEC("xdp")
int tx_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *p = data, *ip = p + ETH_HLEN_BENCH, *th;
	bool v4;

	if ((void *)(ip + 40) > data_end)
		return XDP_PASS;
	if (p[12] == 0x08 && p[13] == 0x00) {
		if (ip[9] != 6)
			return XDP_PASS;
		if (*(__u32 *)(ip + 16) == tx_local4) {
			tx_add(TX_LOCAL);
			return XDP_PASS;
		}
		v4 = true;
		th = ip + (ip[0] & 0x0f) * 4;
	} else if (p[12] == 0x86 && p[13] == 0xdd) {
		if (ip[6] != 6)
			return XDP_PASS;
		if (*(__u64 *)(ip + 24) == *(const volatile __u64 *)&tx_local6[0] &&
		    *(__u64 *)(ip + 32) == *(const volatile __u64 *)&tx_local6[8]) {
			tx_add(TX_LOCAL);
			return XDP_PASS;
		}
		v4 = false;
		th = ip + 40;
	} else {
		return XDP_PASS;
	}
	tx_add(TX_FRAMES);
	if ((void *)(th + 14) > data_end || (th[13] & 0x12) != 0x12) {
		tx_add(TX_OTHER);
		return XDP_DROP;
	}
	tx_add(TX_SYNACK);
	if (tx_verify && !tx_synack_ok(ip, th, data_end, v4))
		tx_add(TX_SYNACK_BAD);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
