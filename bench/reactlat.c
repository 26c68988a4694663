/* Reaction latency: one offending frame per trial (a fresh source each time) sent with LIVE_FRAMES, then
 * the daemon's pinned ban map polled until that source is banned. Prints per-trial and p50/p99 in us.
 *
 * The clock starts before the frame is handed to the kernel (the receiver's XDP program runs during
 * that call) and stops at the first lookup that finds the /32. By default the map is polled in a tight
 * loop (a lookup is ~1-2 us) from a CPU of its own (--cpu; run the daemon elsewhere), because a sleep
 * between lookups adds its own wakeup latency (timer slack, an idle vCPU) to the figure; --poll-us N
 * sleeps N us between lookups instead. Trials are spaced by --gap-us plus a random 0..gap/2, so each
 * one meets an idle daemon and none stays in step with its periodic timers.
 * Each trial also reports when the daemon wrote the ban (its created_ns: CLOCK_MONOTONIC, as the
 * daemon's clock offset is 0 outside tests), which separates the daemon's part from the polling. */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "frame.h"
#include "hyperion_abi.h"
#include "bench/benchxdp.skel.h"

#define RL_TRIALS_MAX 1000
#define RL_GAP_US_DEFAULT 2000        /* pause between trials (plus up to half of it at random) */
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
			"                [--dport N] [--payload TEXT] [--trials N] [--cpu N] [--poll-us N] [--gap-us N]\n"
			"  --cpu N      pin to CPU N (the daemon should run on another)\n"
			"  --poll-us N  sleep N us between map lookups (default 0: poll without sleeping)\n"
			"  --gap-us N   pause between trials, plus a random 0..N/2 (default %d)\n", RL_GAP_US_DEFAULT);
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ifname", 1, 0, 'i' }, { "dmac", 1, 0, 'm' }, { "dst", 1, 0, 'd' }, { "bans", 1, 0, 'b' },
		{ "src-net", 1, 0, 's' }, { "dport", 1, 0, 'D' }, { "payload", 1, 0, 'P' }, { "trials", 1, 0, 'n' },
		{ "cpu", 1, 0, 'c' }, { "poll-us", 1, 0, 'p' }, { "gap-us", 1, 0, 'g' }, { 0 }
	};
	const char *ifname = NULL, *dst = NULL, *bans = NULL, *src_net = "198.51.100", *payload = "HYPSIG-BAN";
	unsigned trials = 20, dport = 53, mac[6], poll_us = 0, gap_us = RL_GAP_US_DEFAULT;
	int cpu = -1;
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
		case 'c': cpu = atoi(optarg); break;
		case 'p': poll_us = (unsigned)atoi(optarg); break;
		case 'g': gap_us = (unsigned)atoi(optarg); break;
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
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			fprintf(stderr, "reactlat: CPU %d: %s\n", cpu, strerror(errno));
			return 1;
		}
	}
	prctl(PR_SET_TIMERSLACK, 1UL);  /* sleeps (gaps, --poll-us) as asked, not 50 us longer */
	struct benchxdp *skel = benchxdp__open_and_load();   /* tg_tx with no variation: plain XDP_TX */
	if (!skel)
		return 1;
	srand((unsigned)mono_ns());
	s.dport = (uint16_t)dport;
	s.payload = (const uint8_t *)payload;
	s.payload_len = (uint32_t)strlen(payload);

	static uint64_t lat[RL_TRIALS_MAX], wrote[RL_TRIALS_MAX];
	unsigned n = 0, nw = 0, timeouts = 0;
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
		struct hyp_ban val;
		memcpy(key.addr, s.src, 4);
		if (gap_us) {
			uint64_t gap_ns = (gap_us + (uint64_t)rand() % (gap_us / 2 + 1)) * 1000ull;
			struct timespec gs = { (time_t)(gap_ns / 1000000000ull), (long)(gap_ns % 1000000000ull) };
			nanosleep(&gs, NULL);
		}
		uint64_t t0 = mono_ns(), t1 = 0;
		if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.tg_tx), &ro)) {
			fprintf(stderr, "reactlat: send: %s\n", strerror(errno));
			break;
		}
		/* Bounded by RL_TIMEOUT_NS. */
		while (mono_ns() - t0 < RL_TIMEOUT_NS) {
			if (bpf_map_lookup_elem(bans_fd, &key, &val) == 0) {
				t1 = mono_ns();
				break;
			}
			if (poll_us) {
				struct timespec ts = { (time_t)(poll_us / 1000000u), (long)(poll_us % 1000000u) * 1000L };
				nanosleep(&ts, NULL);
			}
		}
		if (t1) {
			lat[n++] = t1 - t0;
			bool w = val.created_ns >= t0 && val.created_ns <= t1;
			if (w)
				wrote[nw++] = val.created_ns - t0;
			printf("trial %u src %s written %.0f seen %.0f us\n", t, src,
			       w ? (double)(val.created_ns - t0) / NS_PER_US : -1.0, (double)(t1 - t0) / NS_PER_US);
		} else {
			timeouts++;
			printf("trial %u src %s timeout\n", t, src);
		}
	}
	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	qsort(wrote, nw, sizeof(wrote[0]), cmp_u64);
	printf("n=%u timeouts=%u p50_us=%.0f p99_us=%.0f max_us=%.0f written_p50_us=%.0f written_p99_us=%.0f\n", n,
	       timeouts, n ? (double)lat[n / 2] / NS_PER_US : 0.0,
	       n ? (double)lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / NS_PER_US : 0.0,
	       n ? (double)lat[n - 1] / NS_PER_US : 0.0, nw ? (double)wrote[nw / 2] / NS_PER_US : 0.0,
	       nw ? (double)wrote[(nw * 99) / 100 < nw ? (nw * 99) / 100 : nw - 1] / NS_PER_US : 0.0);
	benchxdp__destroy(skel);
	return n ? 0 : 1;
}
