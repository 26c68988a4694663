/* The ban floor's table (bench/bpf/benchxdp.bpf.c rx_ban, the xdp_ban system): shared by the program and
 * the user space that fills it (bench/xdprx.c, bench/micro.c). One address per slot, no chaining: a
 * floor, not a ban list. */
#ifndef HYP_BENCH_RX_BAN_H
#define HYP_BENCH_RX_BAN_H

#define RX_BAN_SLOT_BITS 10                  /* 1024 slots: the slot is the hash's top bits */
#define RX_BAN_SLOTS (1u << RX_BAN_SLOT_BITS)
#define RX_BAN_V4 0xffffffffffffffffULL      /* a1 of an IPv4 address (a0 holds it, wire order) */
#define RX_BAN_STAT 2                        /* rx_stats index of rx_ban's drops (RX_BANNED) */

struct rx_ban_slot {
	__u64 a0, a1;                        /* IPv6: the address's two halves as loaded from the frame */
};

static inline __u32 rx_ban_slot_of(__u64 a0, __u64 a1)
{
	__u64 x = a0 ^ a1;

	return (__u32)(((__u32)x ^ (__u32)(x >> 32)) * 0x9e3779b1u) >> (32 - RX_BAN_SLOT_BITS);
}

#ifndef __bpf__
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* ADDR (IPv4 or IPv6) as rx_ban reads it from a frame; -EINVAL if it is neither. */
static inline int rx_ban_parse(const char *s, struct rx_ban_slot *b)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, s, &a4) == 1) {
		b->a0 = a4.s_addr;
		b->a1 = RX_BAN_V4;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6) != 1)
		return -EINVAL;
	memcpy(&b->a0, &a6.s6_addr[0], 8);
	memcpy(&b->a1, &a6.s6_addr[8], 8);
	return 0;
}

/* Writes b into its slot of rx_bans (map_fd); -EINVAL for the unspecified address, which an empty slot
 * (all zeros) already matches, else 0 or the update's -errno. */
static inline int rx_ban_put(int map_fd, const struct rx_ban_slot *b)
{
	__u32 k = rx_ban_slot_of(b->a0, b->a1);

	if (!(b->a0 | b->a1))
		return -EINVAL;
	return bpf_map_update_elem(map_fd, &k, b, BPF_ANY) ? -errno : 0;
}

/* rx_ban's drops so far (rx_stats[RX_BAN_STAT], map stats_fd), summed over CPUs; 0 if unreadable. */
static inline __u64 rx_ban_drops(int stats_fd)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 v[ncpu > 0 ? ncpu : 1], sum = 0;
	__u32 k = RX_BAN_STAT;

	if (ncpu <= 0 || bpf_map_lookup_elem(stats_fd, &k, v))
		return 0;
	for (int c = 0; c < ncpu; c++)
		sum += v[c];
	return sum;
}
#endif

#endif
