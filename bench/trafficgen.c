/* Traffic generator: crafted UDP / TCP SYN / TCP ACK+payload frames (IPv4, IPv6) sent out of one veth
 * end with BPF_PROG_TEST_RUN + BPF_F_TEST_XDP_LIVE_FRAMES; optionally a new flow per frame. */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "frame.h"
#include "bench/benchxdp.skel.h"

#define TG_BATCH_DEFAULT 64      /* the kernel's default (NAPI weight); max 256 (TEST_XDP_MAX_BATCH) */
#define TG_FRAME_MAX 1600
#define TG_FILLER '.'            /* payload padding: never part of a bench signature */
#define TG_CONNECT_TIMEOUT_S 3
#define NS_PER_S 1000000000ull

#ifndef TCP_REPAIR_OFF_NO_WP
#define TCP_REPAIR_OFF_NO_WP -1  /* leave repair mode without sending a window probe */
#endif

struct tg_opts {
	const char *ifname, *src, *dst, *payload;
	uint8_t dmac[6];
	bool have_dmac, connect, restore;
	int family;
	uint8_t proto, tcp_flags;
	uint16_t sport, dport;
	uint32_t seq, ack;
	unsigned size;              /* total frame length (without FCS); 0 = header + payload only */
	unsigned vary_src, vary_port;
	unsigned long long count;   /* stop after this many frames (0 = duration only) */
	unsigned long long offset;  /* first value of the per-frame flow counter (fresh flows per run) */
	double duration;            /* seconds (0 = count only) */
	unsigned batch, chunk, gap_us;
	int cpu;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: trafficgen -i IFNAME --dst ADDR --dmac MAC [options]\n"
		"  --proto udp|syn|ack   frame kind (default udp); ack = TCP ACK|PSH with payload\n"
		"  --src ADDR --sport N --dport N --seq N --ack N\n"
		"  --payload TEXT --size N   payload text, padded with '.' to a frame of N bytes (no FCS)\n"
		"  --vary-src N --vary-port N  a new (source, port) per frame from a counter (new flows)\n"
		"  --flow-offset N       start that counter at N (runs that must not reuse earlier flows)\n"
		"  --connect             open a real TCP connection src->dst:dport first and send on its tuple\n"
		"  --restore             rewrite every frame from the template before sending it (receivers that\n"
		"                        answer with XDP_TX rewrite the generator's recycled pages in place)\n"
		"  --count N | --duration S   stop after N frames / S seconds\n"
		"  --chunk N --gap-us N  count mode: N frames per test_run call, then a pause (pacing)\n"
		"  --batch N --cpu N     frames per kernel batch (1..256, default 64); CPU to run on\n"
		"prints: frames=N ns=N mpps=X\n");
	exit(2);
}

static int parse_mac(const char *s, uint8_t *mac)
{
	unsigned v[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

static int if_mac(const char *ifname, uint8_t *mac)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0), err = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		err = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	return err;
}

static void on_alarm(int sig)
{
	(void)sig;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Open a real connection so that the firewall under test (and its conntrack) sees a full handshake;
 * TCP_REPAIR reads the sequence numbers the next segment must carry to be in window. */
static int tcp_connect(struct tg_opts *o, uint32_t *seq, uint32_t *ack, uint16_t *sport)
{
	struct sockaddr_storage src = { 0 }, dst = { 0 };
	socklen_t alen;
	int af = o->family == 4 ? AF_INET : AF_INET6;
	int fd = socket(af, SOCK_STREAM, 0);
	struct timeval tv = { .tv_sec = TG_CONNECT_TIMEOUT_S };

	if (fd < 0)
		return -errno;
	if (af == AF_INET) {
		struct sockaddr_in *s = (void *)&src, *d = (void *)&dst;
		s->sin_family = d->sin_family = AF_INET;
		inet_pton(AF_INET, o->src, &s->sin_addr);
		inet_pton(AF_INET, o->dst, &d->sin_addr);
		d->sin_port = htons(o->dport);
		alen = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (void *)&src, *d = (void *)&dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		inet_pton(AF_INET6, o->src, &s->sin6_addr);
		inet_pton(AF_INET6, o->dst, &d->sin6_addr);
		d->sin6_port = htons(o->dport);
		alen = sizeof(*s);
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (bind(fd, (void *)&src, alen) < 0 || connect(fd, (void *)&dst, alen) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	getsockname(fd, (void *)&src, &alen);
	*sport = ntohs(af == AF_INET ? ((struct sockaddr_in *)&src)->sin_port :
				       ((struct sockaddr_in6 *)&src)->sin6_port);
	int on = 1, off = TCP_REPAIR_OFF_NO_WP, q;
	socklen_t l = sizeof(*seq);
	if (setsockopt(fd, SOL_TCP, TCP_REPAIR, &on, sizeof(on)) < 0)
		goto fail;
	q = TCP_SEND_QUEUE;
	if (setsockopt(fd, SOL_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) < 0 ||
	    getsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, seq, &l) < 0)
		goto fail;
	q = TCP_RECV_QUEUE;
	l = sizeof(*ack);
	if (setsockopt(fd, SOL_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)) < 0 ||
	    getsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, ack, &l) < 0)
		goto fail;
	setsockopt(fd, SOL_TCP, TCP_REPAIR, &off, sizeof(off));
	return fd;  /* kept open for the whole run: the flow must stay established */
fail:
	{
		int err = -errno;
		close(fd);
		return err;
	}
}

static void parse_args(int argc, char **argv, struct tg_opts *o)
{
	static const struct option lo[] = {
		{ "ifname", 1, 0, 'i' }, { "src", 1, 0, 's' }, { "dst", 1, 0, 'd' }, { "dmac", 1, 0, 'm' },
		{ "proto", 1, 0, 'p' }, { "sport", 1, 0, 'S' }, { "dport", 1, 0, 'D' }, { "seq", 1, 0, 'q' },
		{ "ack", 1, 0, 'a' }, { "payload", 1, 0, 'P' }, { "size", 1, 0, 'z' }, { "vary-src", 1, 0, 'V' },
		{ "vary-port", 1, 0, 'v' }, { "count", 1, 0, 'n' }, { "duration", 1, 0, 't' },
		{ "batch", 1, 0, 'b' }, { "chunk", 1, 0, 'c' }, { "gap-us", 1, 0, 'g' }, { "cpu", 1, 0, 'C' },
		{ "connect", 0, 0, 'k' }, { "flow-offset", 1, 0, 'o' }, { "restore", 0, 0, 'R' }, { "help", 0, 0, 'h' }, { 0 }
	};
	int c;

	*o = (struct tg_opts){ .proto = IPPROTO_UDP, .sport = 40000, .dport = 53, .batch = TG_BATCH_DEFAULT,
			       .cpu = -1, .payload = "" };
	while ((c = getopt_long(argc, argv, "i:h", lo, NULL)) != -1) {
		switch (c) {
		case 'i': o->ifname = optarg; break;
		case 's': o->src = optarg; break;
		case 'd': o->dst = optarg; break;
		case 'm': if (parse_mac(optarg, o->dmac)) usage(); o->have_dmac = true; break;
		case 'p':
			if (!strcmp(optarg, "udp")) {
				o->proto = IPPROTO_UDP;
			} else if (!strcmp(optarg, "syn")) {
				o->proto = IPPROTO_TCP;
				o->tcp_flags = 0x02;
			} else if (!strcmp(optarg, "ack")) {
				o->proto = IPPROTO_TCP;
				o->tcp_flags = 0x18; /* ACK|PSH */
			} else {
				usage();
			}
			break;
		case 'S': o->sport = (uint16_t)atoi(optarg); break;
		case 'D': o->dport = (uint16_t)atoi(optarg); break;
		case 'q': o->seq = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'a': o->ack = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'P': o->payload = optarg; break;
		case 'z': o->size = (unsigned)atoi(optarg); break;
		case 'V': o->vary_src = (unsigned)atoi(optarg); break;
		case 'v': o->vary_port = (unsigned)atoi(optarg); break;
		case 'n': o->count = strtoull(optarg, NULL, 0); break;
		case 't': o->duration = atof(optarg); break;
		case 'b': o->batch = (unsigned)atoi(optarg); break;
		case 'c': o->chunk = (unsigned)atoi(optarg); break;
		case 'g': o->gap_us = (unsigned)atoi(optarg); break;
		case 'C': o->cpu = atoi(optarg); break;
		case 'k': o->connect = true; break;
		case 'R': o->restore = true; break;
		case 'o': o->offset = strtoull(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (!o->ifname || !o->src || !o->dst || !o->have_dmac || (!o->count && o->duration <= 0))
		usage();
	o->family = strchr(o->dst, ':') ? 6 : 4;
}

/* Frame from the options: payload text padded to the requested frame size. */
static int build(const struct tg_opts *o, uint8_t *frame, int *l4_off)
{
	static uint8_t pay[TG_FRAME_MAX];
	struct frame_spec s = { .family = o->family, .proto = o->proto, .sport = o->sport, .dport = o->dport,
				.tcp_flags = o->tcp_flags, .seq = o->seq, .ack = o->ack, .payload = pay };
	size_t hdr = FRAME_ETH_LEN + (o->family == 4 ? FRAME_IP4_LEN : FRAME_IP6_LEN) +
		     (o->proto == IPPROTO_UDP ? FRAME_UDP_LEN : FRAME_TCP_LEN);
	size_t plen = strlen(o->payload);

	if (o->size > hdr && o->size - hdr > plen)
		plen = o->size - hdr;
	if (plen > sizeof(pay))
		return -1;
	memset(pay, TG_FILLER, plen);
	memcpy(pay, o->payload, strlen(o->payload));
	s.payload_len = (uint32_t)plen;
	memcpy(s.dmac, o->dmac, 6);
	if (if_mac(o->ifname, s.smac) ||
	    inet_pton(o->family == 4 ? AF_INET : AF_INET6, o->src, s.src) != 1 ||
	    inet_pton(o->family == 4 ? AF_INET : AF_INET6, o->dst, s.dst) != 1)
		return -1;
	return frame_build(&s, frame, TG_FRAME_MAX, l4_off);
}

int main(int argc, char **argv)
{
	static uint8_t frame[TG_FRAME_MAX];
	struct tg_opts o;
	int l4_off = 0, len, sock = -1;

	parse_args(argc, argv, &o);
	if (o.cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(o.cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	if (o.connect) {
		sock = tcp_connect(&o, &o.seq, &o.ack, &o.sport);
		if (sock < 0) {
			fprintf(stderr, "trafficgen: connect %s -> %s:%u: %s\n", o.src, o.dst, o.dport, strerror(-sock));
			return 1;
		}
	}
	len = build(&o, frame, &l4_off);
	int ifindex = (int)if_nametoindex(o.ifname);
	if (len < 0 || !ifindex || (o.restore && len + 1 > TG_FRAME_MAX)) {
		fprintf(stderr, "trafficgen: cannot build frame for %s\n", o.ifname);
		return 1;
	}

	struct benchxdp *skel = benchxdp__open();
	if (!skel)
		return 1;
	skel->rodata->tg_l4_off = (uint32_t)l4_off;
	skel->rodata->tg_family = (uint32_t)o.family;
	skel->rodata->tg_vary_src = o.vary_src;
	skel->rodata->tg_vary_port = o.vary_port;
	skel->rodata->tg_sport_base = o.sport;
	if (o.restore) {
		/* the template: the frame's first bytes (all of a SYN); the frame goes in one byte long, the
		 * program trims it on every frame (see tg_fix_len in bench/bpf/benchxdp.bpf.c) */
		size_t n = (size_t)len < sizeof(skel->rodata->tg_tmpl) ? (size_t)len : sizeof(skel->rodata->tg_tmpl);
		memcpy((void *)skel->rodata->tg_tmpl, frame, n);
		skel->rodata->tg_tmpl_len = (uint32_t)n;
		skel->rodata->tg_len = (uint32_t)len;
	}
	if (benchxdp__load(skel)) {
		fprintf(stderr, "trafficgen: load failed\n");
		return 1;
	}

	uint32_t in_len = (uint32_t)len + (o.restore ? 1 : 0);   /* frame[] is zeroed past len */
	struct xdp_md ctx = { .data_end = in_len, .ingress_ifindex = (uint32_t)ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = frame, .data_size_in = in_len, .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = o.batch);
	int prog = bpf_program__fd(skel->progs.tg_tx);
	skel->bss->tg_frames = o.offset;
	uint64_t t0 = now_ns();
	int err = 0;

	if (!o.count) {
		/* Duration mode: one test_run call (each call sets up and tears down a page pool, ~25 ms here),
		 * cut short by SIGALRM; the kernel checks for signals between batches and returns EINTR. */
		struct sigaction sa = { .sa_handler = on_alarm };  /* no SA_RESTART */
		struct itimerval it = { .it_value = { .tv_sec = (time_t)o.duration,
						      .tv_usec = (suseconds_t)((o.duration - (time_t)o.duration) * 1e6) } };
		sigaction(SIGALRM, &sa, NULL);
		setitimer(ITIMER_REAL, &it, NULL);
		ro.repeat = UINT32_MAX;
		err = bpf_prog_test_run_opts(prog, &ro);
		if (err && errno == EINTR)
			err = 0;
	} else {
		unsigned long long done = 0;
		/* Bounded: count frames, in chunks (with a gap when pacing). */
		while (done < o.count) {
			unsigned long long n = o.chunk ? o.chunk : o.count;
			if (o.count - done < n)
				n = o.count - done;
			ro.repeat = (uint32_t)n;
			err = bpf_prog_test_run_opts(prog, &ro);
			if (err)
				break;
			done += n;
			if (o.gap_us && done < o.count)
				usleep(o.gap_us);
		}
	}
	if (err)
		fprintf(stderr, "trafficgen: test_run: %s\n", strerror(errno));
	uint64_t ns = now_ns() - t0;
	/* The transmit program's own counter: exact even when a run was interrupted. */
	unsigned long long sent = skel->bss->tg_frames - o.offset;
	printf("frames=%llu ns=%llu mpps=%.3f len=%d\n", sent, (unsigned long long)ns,
	       ns ? (double)sent * 1e3 / (double)ns : 0.0, len);
	benchxdp__destroy(skel);
	if (sock >= 0) {
		/* Abort with one RST instead of a FIN exchange whose retransmissions would trickle into the
		 * next measurement (the receiver's socket never saw our crafted segments' bytes as new). */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(sock, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(sock);
	}
	return err ? 1 : 0;
}
