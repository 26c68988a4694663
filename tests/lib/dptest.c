/* Datapath test harness: a private, unattached skeleton per test, driven through BPF_PROG_TEST_RUN. */
#include "dptest.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "maps.h"
#include "hyperion.skel.h"
#include "tap.h"

uint64_t dpt_mono_ns(void)
{
	return mono_now_ns();
}

void dpt_config_defaults(struct hyp_config *cfg)
{
	/* The production defaults (runtime/maps.c), minus what would make packet tables depend on history:
	 * no stream depth cut-off and no event sampling. */
	config_defaults(cfg);
	cfg->stream_depth = 0;
	cfg->ev_rate = 0;
	cfg->ev_burst = 0;
	cfg->start_ns = dpt_mono_ns();
}

static int dpt_event_cb(void *ctx, void *data, size_t size)
{
	struct dpt *t = ctx;

	/* events past the array are consumed and forgotten: tests that need them drain more often */
	if (t->nev >= (int)(sizeof(t->ev) / sizeof(t->ev[0])))
		return 0;
	memset(&t->ev[t->nev], 0, sizeof(t->ev[0]));
	memcpy(&t->ev[t->nev], data, size < sizeof(t->ev[0]) ? size : sizeof(t->ev[0]));
	t->nev++;
	return 0;
}

/* A test run executes on the calling CPU, and per-CPU state (stats, the verdict cache) is what the
 * checks read: a test that migrated between two runs would see another CPU's cache. */
static void dpt_pin_cpu(void)
{
	cpu_set_t set;
	int cpu = sched_getcpu();

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fprintf(stderr, "# dptest: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
}

int dpt_open_opts(struct dpt *t, const struct dpt_opts *o)
{
	struct hyperion_bpf *skel;
	int err;

	memset(t, 0, sizeof(*t));
	t->xdp_fd = t->tc_fd = -1;
	dpt_pin_cpu();
	skel = hyperion_bpf__open();
	if (!skel)
		return errno ? -errno : -EINVAL;
	/* sizes can only change before load */
	if (o && o->flows_max)
		bpf_map__set_max_entries(skel->maps.flows, o->flows_max);
	if (o && o->flows_new_max)
		bpf_map__set_max_entries(skel->maps.flows_new, o->flows_new_max);
	if (o && o->ringbuf_bytes)
		bpf_map__set_max_entries(skel->maps.events, o->ringbuf_bytes);
	err = hyperion_bpf__load(skel);
	if (err) {
		hyperion_bpf__destroy(skel);
		return err < 0 ? err : -err;
	}
	t->skel = skel;
	err = cookie_key_init(bpf_map__fd(skel->maps.cookie_key));
	if (err) {
		dpt_close(t);
		return err;
	}
	t->xdp_fd = bpf_program__fd(skel->progs.hyp_xdp);
	t->tc_fd = bpf_program__fd(skel->progs.hyp_tc_egress);
	t->rb = ring_buffer__new(bpf_map__fd(skel->maps.events), dpt_event_cb, t, NULL);
	if (!t->rb) {
		err = errno ? -errno : -EINVAL;
		dpt_close(t);
		return err;
	}
	dpt_config_defaults(&t->cfg);
	err = dpt_config_push(t);
	if (err) {
		dpt_close(t);
		return err;
	}
	return 0;
}

int dpt_open(struct dpt *t, uint32_t flows_max, uint32_t flows_new_max)
{
	struct dpt_opts o = { .flows_max = flows_max, .flows_new_max = flows_new_max };

	return dpt_open_opts(t, &o);
}

void dpt_close(struct dpt *t)
{
	ring_buffer__free(t->rb);
	hyperion_bpf__destroy(t->skel);
	t->rb = NULL;
	t->skel = NULL;
	t->xdp_fd = t->tc_fd = -1;
}

int dpt_config_push(struct dpt *t)
{
	int gen_fd = bpf_map__fd(t->skel->maps.gen);
	int pol_fd = bpf_map__fd(t->skel->maps.policy);
	uint32_t zero = 0, cur = 0, next;

	if (bpf_map_lookup_elem(gen_fd, &zero, &cur))
		return -errno;
	next = (cur + 1) % HYP_GENERATIONS;
	t->cfg.serial++;    /* as dp_config_apply() does: a new config, whatever slot it lands in */
	/* the datapath reads gen once per packet, so the inactive slot can be rewritten freely */
	if (bpf_map_update_elem(pol_fd, &next, &t->cfg, BPF_ANY))
		return -errno;
	if (bpf_map_update_elem(gen_fd, &zero, &next, BPF_ANY))
		return -errno;
	return state_epoch_bump(gen_fd);    /* as dp_config_apply(): the express lane's view of the config */
}

static int dpt_run(int prog_fd, const void *frame, uint32_t len, void *ctx, uint32_t ctx_len)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.data_in = frame,
		.data_size_in = len,
		.ctx_in = ctx,
		.ctx_size_in = ctx_len,
		.repeat = 1,
	);
	int err;

	err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (err)
		return err < 0 ? err : -err;
	return (int)opts.retval;
}

int dpt_xdp(struct dpt *t, const void *frame, uint32_t len)
{
	return dpt_run(t->xdp_fd, frame, len, NULL, 0);
}

int dpt_tc(struct dpt *t, const void *frame, uint32_t len)
{
	return dpt_run(t->tc_fd, frame, len, NULL, 0);
}

/* Every CPU's books (struct hyp_books, map "books"): a calloc'ed array of ncpu, NULL if unreadable. */
struct hyp_books *dpt_books_read(struct dpt *t, int *ncpu_out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct hyp_books *v;
	uint32_t zero = 0;

	if (ncpu <= 0 || !(v = calloc((size_t)ncpu, sizeof(*v))))
		return NULL;
	if (bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.books), &zero, v)) {
		free(v);
		return NULL;
	}
	*ncpu_out = ncpu;
	return v;
}

/* Every CPU's books summed and folded as the runtime reads them (books_fold(): the express lane's hits
 * in the stats and counters they stand for); 0, or -1 (all zero) if unreadable. */
int dpt_totals(struct dpt *t, struct hyp_totals *out)
{
	int ncpu = 0;
	struct hyp_books *v = dpt_books_read(t, &ncpu);
	int rc = v ? 0 : -1;

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < ncpu; i++)
		books_fold(out, &v[i]);
	free(v);
	return rc;
}

uint64_t dpt_stat(struct dpt *t, unsigned idx)
{
	struct hyp_totals s;

	return idx < HYP_STATS_ENTRIES && !dpt_totals(t, &s) ? s.reason[idx].packets : 0;
}

uint64_t dpt_counter(struct dpt *t, unsigned idx)
{
	struct hyp_totals s;

	return idx < HYP_C_MAX && !dpt_totals(t, &s) ? s.counter[idx] : 0;
}

uint64_t dpt_stats_total(struct dpt *t)
{
	struct hyp_totals s;
	uint64_t sum = 0;

	if (dpt_totals(t, &s))
		return 0;
	for (unsigned i = 0; i < HYP_STATS_ENTRIES; i++)
		sum += s.reason[i].packets;
	return sum;
}

static int dpt_parse_addr(int family, const char *s, uint8_t addr[16])
{
	memset(addr, 0, 16);
	return inet_pton(family == 6 ? AF_INET6 : AF_INET, s, addr) == 1 ? 0 : -EINVAL;
}

int dpt_flow_key(int family, uint8_t proto, const char *src, uint16_t sport, const char *dst, uint16_t dport,
		 struct hyp_flow_key *k)
{
	uint8_t s[16], d[16];
	int c;

	if (dpt_parse_addr(family, src, s) || dpt_parse_addr(family, dst, d))
		return -EINVAL;
	memset(k, 0, sizeof(*k));
	k->proto = proto;
	k->family = family == 6 ? HYP_AF_INET6 : HYP_AF_INET;
	/* endpoint a is the lower (addr, port): port compared numerically, i.e. memcmp of its wire bytes */
	c = memcmp(s, d, 16);
	if (c < 0 || (c == 0 && sport <= dport)) {
		memcpy(k->addr_a, s, 16);
		memcpy(k->addr_b, d, 16);
		k->port_a = htons(sport);
		k->port_b = htons(dport);
	} else {
		memcpy(k->addr_a, d, 16);
		memcpy(k->addr_b, s, 16);
		k->port_a = htons(dport);
		k->port_b = htons(sport);
	}
	return 0;
}

int dpt_flow(struct dpt *t, int family, uint8_t proto, const char *src, uint16_t sport, const char *dst,
	     uint16_t dport, struct hyp_flow *f, bool *established)
{
	struct hyp_flow_key k;

	if (dpt_flow_key(family, proto, src, sport, dst, dport, &k))
		return -EINVAL;
	if (!bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.flows), &k, f)) {
		if (established)
			*established = true;
	} else if (!bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.flows_new), &k, f)) {
		if (established)
			*established = false;
	} else {
		return -ENOENT;
	}
	/* as the runtime reads it: with what the verdict cache counted and has not carried to it yet */
	return vcache_flow_add(bpf_map__fd(t->skel->maps.vcache), bpf_map__max_entries(t->skel->maps.vcache), &k, f);
}

union dpt_lpm_key {
	struct hyp_lpm4_key v4;
	struct hyp_lpm6_key v6;
};

/* "addr[/len]" (host bits cleared, as the runtime's cidr_parse does for operators) into the LPM key of its
 * family's map, m4 or m6. Returns that map's fd or -EINVAL. */
static int dpt_lpm_key(const char *cidr, struct bpf_map *m4, struct bpf_map *m6, union dpt_lpm_key *k)
{
	struct hyp_cidr c;

	if (cidr_parse(cidr, &c, true))
		return -EINVAL;
	memset(k, 0, sizeof(*k));
	if (c.family == HYP_AF_INET) {
		k->v4.prefixlen = c.prefixlen;
		memcpy(k->v4.addr, c.addr, sizeof(k->v4.addr));
		return bpf_map__fd(m4);
	}
	k->v6.prefixlen = c.prefixlen;
	memcpy(k->v6.addr, c.addr, sizeof(k->v6.addr));
	return bpf_map__fd(m6);
}

/* The datapath's clock: bpf_ktime_get_ns() is CLOCK_MONOTONIC, shifted by the pushed offset. */
static uint64_t dpt_now(struct dpt *t)
{
	return dpt_mono_ns() + t->cfg.clock_offset_ns;
}

int dpt_ban(struct dpt *t, const char *cidr, uint64_t ttl_ns, uint32_t reason)
{
	struct hyp_ban b = { .created_ns = dpt_now(t), .reason = reason };
	union dpt_lpm_key k;
	int fd = dpt_lpm_key(cidr, t->skel->maps.bans4, t->skel->maps.bans6, &k);

	if (fd < 0)
		return fd;
	b.expires_ns = ttl_ns ? b.created_ns + ttl_ns : 0;
	if (bpf_map_update_elem(fd, &k, &b, BPF_ANY))
		return -errno;
	/* as ban_add() does: a replaced ban must not live on in the verdict cache */
	return state_epoch_bump(bpf_map__fd(t->skel->maps.gen));
}

int dpt_unban(struct dpt *t, const char *cidr)
{
	union dpt_lpm_key k;
	int fd = dpt_lpm_key(cidr, t->skel->maps.bans4, t->skel->maps.bans6, &k);

	if (fd < 0)
		return fd;
	if (bpf_map_delete_elem(fd, &k))
		return -errno;
	/* as ban_del() and ban_expire() do: a removed ban may uncover a shorter one */
	return state_epoch_bump(bpf_map__fd(t->skel->maps.gen));
}

int dpt_allow(struct dpt *t, const char *cidr)
{
	struct hyp_allow a = { .created_ns = dpt_now(t) };
	union dpt_lpm_key k;
	int fd = dpt_lpm_key(cidr, t->skel->maps.allow4, t->skel->maps.allow6, &k);

	if (fd < 0)
		return fd;
	if (bpf_map_update_elem(fd, &k, &a, BPF_ANY))
		return -errno;
	/* as allow_add() does: the verdict cache must not keep dropping the newly allowed source */
	return state_epoch_bump(bpf_map__fd(t->skel->maps.gen));
}

int dpt_ban_get(struct dpt *t, const char *cidr, struct hyp_ban *b)
{
	union dpt_lpm_key k;
	int fd = dpt_lpm_key(cidr, t->skel->maps.bans4, t->skel->maps.bans6, &k);

	if (fd < 0)
		return fd;
	return bpf_map_lookup_elem(fd, &k, b) ? -errno : 0;
}

int dpt_events(struct dpt *t)
{
	t->nev = 0;
	if (ring_buffer__consume(t->rb) < 0)
		return -1;
	return t->nev;
}

/* The runtime's reason name (names.c, the one table) in capitals. Rotating buffers: a few calls may share
 * one printf. */
const char *dpt_stat_name(int idx)
{
	static char bufs[4][48];
	static unsigned next;
	char *buf = bufs[next++ % 4];
	bool monitor = idx >= HYP_STATS_MONITOR;

	if (idx == -1)
		return "(no stats entry)";
	if (idx < -1 || idx >= HYP_STATS_ENTRIES)
		return "(several stats entries)";
	snprintf(buf, sizeof(bufs[0]), "%s%s", monitor ? "MONITOR+" : "",
		 reason_name(monitor ? idx - HYP_STATS_MONITOR : idx));
	for (char *c = buf; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	return buf;
}

int dpt_xdp_reason(struct dpt *t, const void *frame, uint32_t len, int *rc)
{
	struct hyp_totals before, after;
	int i, found = -1;

	dpt_totals(t, &before);
	*rc = dpt_xdp(t, frame, len);
	dpt_totals(t, &after);
	for (i = 0; i < HYP_STATS_ENTRIES; i++) {
		uint64_t d = after.reason[i].packets - before.reason[i].packets;

		if (!d)
			continue;
		if (d != 1 || found != -1)
			return -2;
		found = i;
	}
	return found;
}

bool dpt_expect(struct dpt *t, const void *frame, uint32_t len, int want_rc, unsigned want_stat,
		const char *what)
{
	int rc, idx = dpt_xdp_reason(t, frame, len, &rc);
	bool ok = rc == want_rc && idx == (int)want_stat;
	char got[64];

	snprintf(got, sizeof(got), "%s", dpt_stat_name(idx));
	TAP_CHECK(ok, "%s: verdict %d, stats %s", what, want_rc, dpt_stat_name(want_stat));
	if (!ok)
		printf("#   got verdict %d, stats %s\n", rc, got);
	return ok;
}

const struct hyp_event *dpt_event_find(struct dpt *t, uint8_t kind, int *n)
{
	const struct hyp_event *first = NULL;
	int i, c = 0;

	for (i = 0; i < t->nev; i++) {
		if (t->ev[i].kind != kind)
			continue;
		if (!first)
			first = &t->ev[i];
		c++;
	}
	if (n)
		*n = c;
	return first;
}

bool dpt_open_or_report(struct dpt *t, const struct dpt_opts *o)
{
	int err = dpt_open_opts(t, o);

	if (err == -EPERM) {
		TAP_SKIP("cannot load BPF here (EPERM): needs root or CAP_BPF+CAP_NET_ADMIN");
		return false;
	}
	TAP_CHECK(!err, "the datapath loads (%s)", err ? strerror(-err) : "ok");
	return !err;
}

bool dpt_dp_open_or_report(struct hyp_dp *dp, const struct hyp_loader_opts *o)
{
	/* -EACCES is the verifier refusing the program: a failure, not a missing capability. */
	int err = dp_open(dp, o);

	if (err == -EPERM) {
		TAP_SKIP("loading BPF needs CAP_BPF/CAP_NET_ADMIN (dp_open: %s)", strerror(-err));
		return false;
	}
	TAP_EQ(err, 0, "dp_open without pins");
	return !err;
}
