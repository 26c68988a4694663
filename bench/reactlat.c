/* Reaction latency: one offending frame per trial (a fresh source each time) sent with LIVE_FRAMES, then
 * the daemon's pinned ban map polled until that source is banned. Prints per-trial and p50/p99 in us. */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "frame.h"
#include "bench/benchxdp.skel.h"

#define RL_TRIALS_MAX 1000
#define RL_POLL_NS 20000ull           /* 20 us between map lookups: the figure's resolution */
#define RL_TIMEOUT_NS 2000000000ull   /* a trial that sees no ban within 2 s counts as a timeout */
#define RL_FRAME_MAX 256
#define NS_PER_US 1000.0

struct lpm4 {
	uint32_t prefixlen;
	uint8_t addr[4];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr, "usage: reactlat -i IFNAME --dmac MAC --dst ADDR4 --bans PINNED_BANS4 [--src-net A.B.C]\n"
			"                [--dport N] [--payload TEXT] [--trials N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ifname", 1, 0, 'i' }, { "dmac", 1, 0, 'm' }, { "dst", 1, 0, 'd' }, { "bans", 1, 0, 'b' },
		{ "src-net", 1, 0, 's' }, { "dport", 1, 0, 'D' }, { "payload", 1, 0, 'P' }, { "trials", 1, 0, 'n' },
		{ 0 }
	};
	const char *ifname = NULL, *dst = NULL, *bans = NULL, *src_net = "198.51.100", *payload = "HYPSIG-BAN";
	unsigned trials = 20, dport = 53, mac[6];
	struct frame_spec s = { .family = 4, .proto = IPPROTO_UDP, .sport = 40000 };
	int c;

	while ((c = getopt_long(argc, argv, "i:", lo, NULL)) != -1) {
		switch (c) {
		case 'i': ifname = optarg; break;
		case 'm':
			if (sscanf(optarg, "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]) != 6)
				usage();
			for (int k = 0; k < 6; k++)
				s.dmac[k] = (uint8_t)mac[k];
			break;
		case 'd': dst = optarg; break;
		case 'b': bans = optarg; break;
		case 's': src_net = optarg; break;
		case 'D': dport = (unsigned)atoi(optarg); break;
		case 'P': payload = optarg; break;
		case 'n': trials = (unsigned)atoi(optarg); break;
		default: usage();
		}
	}
	if (!ifname || !dst || !bans || !trials || trials > RL_TRIALS_MAX || trials > 254)
		usage();
	int ifindex = (int)if_nametoindex(ifname);
	int bans_fd = bpf_obj_get(bans);
	if (!ifindex || bans_fd < 0 || inet_pton(AF_INET, dst, s.dst) != 1) {
		fprintf(stderr, "reactlat: interface %s / pinned map %s / address %s: %s\n", ifname, bans, dst,
			strerror(errno));
		return 1;
	}
	struct benchxdp *skel = benchxdp__open_and_load();   /* tg_tx with no variation: plain XDP_TX */
	if (!skel)
		return 1;
	s.dport = (uint16_t)dport;
	s.payload = (const uint8_t *)payload;
	s.payload_len = (uint32_t)strlen(payload);

	static uint64_t lat[RL_TRIALS_MAX];
	unsigned n = 0, timeouts = 0;
	for (unsigned t = 0; t < trials; t++) {
		char src[32];
		uint8_t frame[RL_FRAME_MAX];
		snprintf(src, sizeof(src), "%s.%u", src_net, t + 1);
		inet_pton(AF_INET, src, s.src);
		int len = frame_build(&s, frame, sizeof(frame), NULL);
		struct xdp_md ctx = { .data_end = (uint32_t)len, .ingress_ifindex = (uint32_t)ifindex };
		LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = frame, .data_size_in = (uint32_t)len, .ctx_in = &ctx,
			    .ctx_size_in = sizeof(ctx), .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .repeat = 1);
		struct lpm4 key = { .prefixlen = 32 };
		uint8_t val[64];
		memcpy(key.addr, s.src, 4);
		uint64_t t0 = mono_ns(), t1 = 0;
		if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.tg_tx), &ro)) {
			fprintf(stderr, "reactlat: send: %s\n", strerror(errno));
			break;
		}
		/* Bounded by RL_TIMEOUT_NS. */
		while (mono_ns() - t0 < RL_TIMEOUT_NS) {
			if (bpf_map_lookup_elem(bans_fd, &key, val) == 0) {
				t1 = mono_ns();
				break;
			}
			struct timespec ts = { .tv_nsec = (long)RL_POLL_NS };
			nanosleep(&ts, NULL);
		}
		if (t1) {
			lat[n++] = t1 - t0;
			printf("trial %u src %s %.0f us\n", t, src, (double)(t1 - t0) / NS_PER_US);
		} else {
			timeouts++;
			printf("trial %u src %s timeout\n", t, src);
		}
	}
	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	printf("n=%u timeouts=%u p50_us=%.0f p99_us=%.0f max_us=%.0f\n", n, timeouts,
	       n ? (double)lat[n / 2] / NS_PER_US : 0.0, n ? (double)lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / NS_PER_US : 0.0,
	       n ? (double)lat[n - 1] / NS_PER_US : 0.0);
	benchxdp__destroy(skel);
	return n ? 0 : 1;
}
