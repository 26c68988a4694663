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
#include "rx_ban.h"

#define RX_COUNTERS 3   /* frames, bytes, banned (bench/bpf/benchxdp.bpf.c) */
#define TX_COUNTERS 5   /* tx_sink: frames, synack, synack_bad, local, other (bench/bpf/benchxdp.bpf.c) */
#define XR_COUNTERS_MAX 5
#define XR_BANS_MAX 64  /* ban=ADDR arguments (xdp_ban); each must land in a slot of its own */

/* Writes the bans into rx_bans; two in one slot would leave one of them unbanned. */
static int ban_load(int map_fd, const struct rx_ban_slot *bans, const char *const *names, int n)
{
	for (int i = 0; i < n; i++) {
		__u32 k = rx_ban_slot_of(bans[i].a0, bans[i].a1);
		int err;

		for (int j = 0; j < i; j++)
			if (rx_ban_slot_of(bans[j].a0, bans[j].a1) == k) {
				fprintf(stderr, "xdprx: ban=%s and ban=%s share slot %u\n", names[j], names[i], k);
				return -EEXIST;
			}
		err = rx_ban_put(map_fd, &bans[i]);
		if (err) {
			fprintf(stderr, "xdprx: ban=%s: %s\n", names[i],
				err == -EINVAL ? "the unspecified address cannot be banned" : strerror(-err));
			return err;
		}
	}
	return 0;
}

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
	bool sink, ban;
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
		if (b->ban)
			printf("frames=%llu bytes=%llu dropped=%llu\n", b->c[0], b->c[1], b->c[2]);
		else
			printf("frames=%llu bytes=%llu\n", b->c[0], b->c[1]);
	}
	fflush(stdout);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: xdprx IFNAME drop|pass|tx [READY_FILE]\n"
		"       xdprx IFNAME ban [READY_FILE] ban=ADDR...\n"
		"       xdprx IFNAME sink [READY_FILE] [local=ADDR]... [sport=N] [ack=N] [verify]\n"
		"  drop/pass/tx: count frames, then drop / pass / bounce them (addresses and ports swapped)\n"
		"  ban: count frames, drop those from a ban=ADDR source (one table probe), pass the rest\n"
		"  sink (generator's end): count SYN-ACKs and drop them; frames to a local=ADDR go to the stack;\n"
		"       verify: check every SYN-ACK (checksums, flags, sport=N, ack=N) and count bad ones\n"
		"  runs until SIGTERM/SIGINT, then prints: frames=N bytes=N [dropped=N (ban)] |\n"
		"  frames=N synack=N synack_bad=N local=N\n"
		"  other=N (SIGUSR1: print now)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	const char *mode = argv[2];
	bool sink = !strcmp(mode, "sink"), ban = !strcmp(mode, "ban");
	if (!sink && !ban && strcmp(mode, "drop") && strcmp(mode, "pass") && strcmp(mode, "tx"))
		usage();
	struct rx_ban_slot bans[XR_BANS_MAX];
	const char *ban_names[XR_BANS_MAX];
	int nbans = 0;
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
		} else if (ban && !strncmp(a, "ban=", 4)) {
			if (nbans == XR_BANS_MAX || rx_ban_parse(a + 4, &bans[nbans]))
				usage();
			ban_names[nbans++] = a + 4;
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
	if (ban && (!nbans || ban_load(bpf_map__fd(skel->maps.rx_bans), bans, ban_names, nbans))) {
		if (!nbans)
			fprintf(stderr, "xdprx: ban needs at least one ban=ADDR\n");
		benchxdp__destroy(skel);
		return 1;
	}
	struct bpf_program *prog = sink ? skel->progs.tx_sink : ban ? skel->progs.rx_ban :
				   !strcmp(mode, "drop") ? skel->progs.rx_drop :
				   !strcmp(mode, "tx") ? skel->progs.rx_tx : skel->progs.rx_pass;
	LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = XDP_FLAGS_DRV_MODE);
	int link = bpf_link_create(bpf_program__fd(prog), ifindex, BPF_XDP, &lo);
	if (link < 0) {
		fprintf(stderr, "xdprx: attach to %s: %s\n", argv[1], strerror(errno));
		benchxdp__destroy(skel);
		return 1;
	}
	struct rx_books books = { .map_fd = bpf_map__fd(sink ? skel->maps.tx_stats : skel->maps.rx_stats),
				  .sink = sink, .ban = ban };

	rx_run(ready, print_counts, &books);
	close(link);
	benchxdp__destroy(skel);
	return 0;
}
