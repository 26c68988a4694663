/* Receiver baselines for the benchmarks: attach a counting XDP_DROP, XDP_PASS or XDP_TX (bounce) program to
 * one interface, or the reply sink on the generator's end (native mode, through a bpf_link so it goes away
 * with the process), print the counts when stopped. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bench/benchxdp.skel.h"
#include "rx.h"

#define RX_COUNTERS 2
#define TX_COUNTERS 5   /* tx_sink: frames, synack, synack_bad, local, other (bench/bpf/benchxdp.bpf.c) */
#define XR_COUNTERS_MAX 5

/* Per-CPU counters summed. */
static void read_counts(int map_fd, unsigned n, unsigned long long *out)
{
	int ncpu = libbpf_num_possible_cpus();
	unsigned long long *v = calloc((size_t)ncpu, sizeof(*v));

	for (unsigned k = 0; k < n && v; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(map_fd, &k, v) == 0)
			for (int c = 0; c < ncpu; c++)
				out[k] += v[c];
	}
	free(v);
}

struct rx_books {
	int map_fd;
	bool sink;
	unsigned long long c[XR_COUNTERS_MAX];
};

static void print_counts(void *ctx)
{
	struct rx_books *b = ctx;

	if (b->sink) {
		read_counts(b->map_fd, TX_COUNTERS, b->c);
		printf("frames=%llu synack=%llu synack_bad=%llu local=%llu other=%llu\n", b->c[0], b->c[1], b->c[2],
		       b->c[3], b->c[4]);
	} else {
		read_counts(b->map_fd, RX_COUNTERS, b->c);
		printf("frames=%llu bytes=%llu\n", b->c[0], b->c[1]);
	}
	fflush(stdout);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: xdprx IFNAME drop|pass|tx [READY_FILE]\n"
		"       xdprx IFNAME sink [READY_FILE] [local=ADDR]... [sport=N] [ack=N] [verify]\n"
		"  drop/pass/tx: count frames, then drop / pass / bounce them (addresses and ports swapped)\n"
		"  sink (generator's end): count SYN-ACKs and drop them; frames to a local=ADDR go to the stack;\n"
		"       verify: check every SYN-ACK (checksums, flags, sport=N, ack=N) and count bad ones\n"
		"  runs until SIGTERM/SIGINT, then prints: frames=N bytes=N | frames=N synack=N synack_bad=N local=N\n"
		"  other=N (SIGUSR1: print now)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	const char *mode = argv[2];
	bool sink = !strcmp(mode, "sink");
	if (!sink && strcmp(mode, "drop") && strcmp(mode, "pass") && strcmp(mode, "tx"))
		usage();
	int ifindex = (int)if_nametoindex(argv[1]);
	if (!ifindex) {
		fprintf(stderr, "xdprx: no interface %s\n", argv[1]);
		return 1;
	}
	struct benchxdp *skel = benchxdp__open();
	if (!skel)
		return 1;
	const char *ready = NULL;
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		if (!strncmp(a, "local=", 6)) {
			struct in6_addr a6;
			struct in_addr a4;
			if (inet_pton(AF_INET, a + 6, &a4) == 1)
				skel->rodata->tx_local4 = a4.s_addr;
			else if (inet_pton(AF_INET6, a + 6, &a6) == 1)
				memcpy((void *)skel->rodata->tx_local6, &a6, 16);
			else
				usage();
		} else if (!strncmp(a, "sport=", 6)) {
			skel->rodata->tx_expect_sport = (__u16)atoi(a + 6);
		} else if (!strncmp(a, "ack=", 4)) {
			skel->rodata->tx_expect_ack = (__u32)strtoul(a + 4, NULL, 0);
		} else if (!strcmp(a, "verify")) {
			skel->rodata->tx_verify = 1;
		} else if (!ready && i == 3) {
			ready = a;
		} else {
			usage();
		}
	}
	if (benchxdp__load(skel)) {
		fprintf(stderr, "xdprx: load failed\n");
		benchxdp__destroy(skel);
		return 1;
	}
	struct bpf_program *prog = sink ? skel->progs.tx_sink : !strcmp(mode, "drop") ? skel->progs.rx_drop :
				   !strcmp(mode, "tx") ? skel->progs.rx_tx : skel->progs.rx_pass;
	LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = XDP_FLAGS_DRV_MODE);
	int link = bpf_link_create(bpf_program__fd(prog), ifindex, BPF_XDP, &lo);
	if (link < 0) {
		fprintf(stderr, "xdprx: attach to %s: %s\n", argv[1], strerror(errno));
		benchxdp__destroy(skel);
		return 1;
	}
	struct rx_books books = { .map_fd = bpf_map__fd(sink ? skel->maps.tx_stats : skel->maps.rx_stats),
				  .sink = sink };

	rx_run(ready, print_counts, &books);
	close(link);
	benchxdp__destroy(skel);
	return 0;
}
