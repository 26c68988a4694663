/* Receiver baselines for the benchmarks: attach a counting XDP_DROP or XDP_PASS program to one interface
 * (native mode, through a bpf_link so it goes away with the process), print the counts when stopped. */
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

struct rx_books {
	int map_fd;
	unsigned long long c[RX_COUNTERS];
};

static void print_counts(void *ctx)
{
	struct rx_books *b = ctx;

	read_counts(b->map_fd, b->c);
	printf("frames=%llu bytes=%llu\n", b->c[0], b->c[1]);
	fflush(stdout);
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
	struct rx_books books = { .map_fd = bpf_map__fd(skel->maps.rx_stats) };

	rx_run(argc > 3 ? argv[3] : NULL, print_counts, &books);
	close(link);
	benchxdp__destroy(skel);
	return 0;
}
