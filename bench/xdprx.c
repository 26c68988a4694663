/* Receiver baselines for the benchmarks: attach a counting XDP_DROP or XDP_PASS program to one interface
 * (native mode, through a bpf_link so it goes away with the process), print the counts when stopped. */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bench/benchxdp.skel.h"

#define RX_COUNTERS 2
#define RX_POLL_US 20000

static volatile sig_atomic_t stop, report;

/* SIGTERM/SIGINT: print and exit; SIGUSR1: print the books so far (a snapshot between phases of a run). */
static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		report = 1;
	else
		stop = 1;
}

/* Per-CPU counters summed: frames, bytes. */
static void read_counts(int map_fd, unsigned long long out[RX_COUNTERS])
{
	int ncpu = libbpf_num_possible_cpus();
	unsigned long long *v = calloc((size_t)ncpu, sizeof(*v));

	for (unsigned k = 0; k < RX_COUNTERS && v; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(map_fd, &k, v) == 0)
			for (int c = 0; c < ncpu; c++)
				out[k] += v[c];
	}
	free(v);
}

int main(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[2], "drop") && strcmp(argv[2], "pass"))) {
		fprintf(stderr, "usage: xdprx IFNAME drop|pass [READY_FILE]\n"
				"  runs until SIGTERM/SIGINT, then prints: frames=N bytes=N (SIGUSR1: print now)\n");
		return 2;
	}
	int ifindex = (int)if_nametoindex(argv[1]);
	if (!ifindex) {
		fprintf(stderr, "xdprx: no interface %s\n", argv[1]);
		return 1;
	}
	struct benchxdp *skel = benchxdp__open_and_load();
	if (!skel)
		return 1;
	struct bpf_program *prog = strcmp(argv[2], "drop") ? skel->progs.rx_pass : skel->progs.rx_drop;
	LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = XDP_FLAGS_DRV_MODE);
	int link = bpf_link_create(bpf_program__fd(prog), ifindex, BPF_XDP, &lo);
	if (link < 0) {
		fprintf(stderr, "xdprx: attach to %s: %s\n", argv[1], strerror(errno));
		benchxdp__destroy(skel);
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGUSR1, on_signal);
	if (argc > 3) {
		FILE *f = fopen(argv[3], "w");
		if (f)
			fclose(f);
	}
	/* polling, not pause(): a signal landing between the test and pause() would hang */
	unsigned long long c[RX_COUNTERS] = { 0 };
	while (!stop) {
		usleep(RX_POLL_US);
		if (report) {
			report = 0;
			read_counts(bpf_map__fd(skel->maps.rx_stats), c);
			printf("frames=%llu bytes=%llu\n", c[0], c[1]);
			fflush(stdout);
		}
	}
	read_counts(bpf_map__fd(skel->maps.rx_stats), c);
	printf("frames=%llu bytes=%llu\n", c[0], c[1]);
	close(link);
	benchxdp__destroy(skel);
	return 0;
}
