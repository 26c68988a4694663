/* Datapath test harness: load the skeleton unattached, run packets through BPF_PROG_TEST_RUN, read maps. */
#ifndef HYP_DPTEST_H
#define HYP_DPTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hyperion_abi.h"

struct hyperion_bpf;
struct ring_buffer;

struct dpt {
	struct hyperion_bpf *skel;
	int xdp_fd, tc_fd;
	struct hyp_config cfg;      /* what dpt_config_push() writes; starts from dpt_config_defaults() */
	struct ring_buffer *rb;
	struct hyp_event ev[256];   /* drained by dpt_events() */
	int nev;
};

/* Open + load a fresh skeleton (own maps, nothing pinned or attached), push default config.
 * flows_max/flows_new_max 0 = defaults. Returns 0 or -errno. */
int dpt_open(struct dpt *t, uint32_t flows_max, uint32_t flows_new_max);
void dpt_close(struct dpt *t);
/* Test defaults: enforce, all ports open, scan_depth 256, stream_depth 0 (unlimited), no rate limits,
 * no event sampling, pickup SOCKET, frag PASS, conntrack timeouts as in production. */
void dpt_config_defaults(struct hyp_config *cfg);
/* Write t->cfg into the inactive generation and flip (what the daemon does). */
int dpt_config_push(struct dpt *t);

/* Run one frame through XDP (ingress) / tc egress. Returns the program's return value (XDP_* / TC_ACT_*)
 * or -errno if the run itself failed. */
int dpt_xdp(struct dpt *t, const void *frame, uint32_t len);
int dpt_tc(struct dpt *t, const void *frame, uint32_t len);

/* Map readers, summed over CPUs. */
struct hyp_books *dpt_books_read(struct dpt *t, int *ncpu);   /* every CPU's books; free() them */
struct hyp_totals;
int dpt_totals(struct dpt *t, struct hyp_totals *out);  /* as stats_read(): summed, the lane's hits folded */
uint64_t dpt_stat(struct dpt *t, unsigned idx);     /* stat[idx].packets, summed over CPUs, folded */
uint64_t dpt_counter(struct dpt *t, unsigned idx);
uint64_t dpt_stats_total(struct dpt *t);            /* sum of all stats entries' packets */
/* Flow lookup by one packet's view, counters as the runtime reads them (flow_lookup: with what the verdict
 * cache holds for it); returns 0 and fills f (+ established: in "flows"), or -ENOENT. */
int dpt_flow(struct dpt *t, int family, uint8_t proto, const char *src, uint16_t sport, const char *dst,
	     uint16_t dport, struct hyp_flow *f, bool *established);
/* Ban / allow helpers (direct map writes). ttl_ns 0 = permanent; expiry relative to the datapath's now. */
int dpt_ban(struct dpt *t, const char *cidr, uint64_t ttl_ns, uint32_t reason);
int dpt_unban(struct dpt *t, const char *cidr);    /* as ban_del()/ban_expire(): the epoch bumped */
int dpt_allow(struct dpt *t, const char *cidr);
/* Drain the ring buffer into t->ev / t->nev (replacing the previous contents). Returns nev. */
int dpt_events(struct dpt *t);

/* --- appended: options and helpers beyond the first contract --- */
struct hyp_ban;
struct dpt_opts {
	uint32_t flows_max;         /* 0 = default */
	uint32_t flows_new_max;     /* 0 = default */
	uint32_t ringbuf_bytes;     /* 0 = default; power of two >= page size (4096 holds ~25 events) */
};
int dpt_open_opts(struct dpt *t, const struct dpt_opts *o);
/* The canonical conntrack key for one packet's view (endpoint a = lower addr, then lower port). */
int dpt_flow_key(int family, uint8_t proto, const char *src, uint16_t sport, const char *dst, uint16_t dport,
		 struct hyp_flow_key *k);
/* Reads the ban entry covering cidr (LPM lookup), e.g. for its hits counter. 0 or -errno. */
int dpt_ban_get(struct dpt *t, const char *cidr, struct hyp_ban *b);
/* Runs one frame through XDP; *rc gets the verdict. Returns the single stats index (0..HYP_STATS_ENTRIES-1)
 * whose packet count grew by exactly one, -1 if none grew, -2 if several grew or any grew by more. */
int dpt_xdp_reason(struct dpt *t, const void *frame, uint32_t len, int *rc);
/* TAP check: verdict == want_rc and exactly stats[want_stat] grew by one. Returns true when both hold. */
bool dpt_expect(struct dpt *t, const void *frame, uint32_t len, int want_rc, unsigned want_stat,
		const char *what);
/* CLOCK_MONOTONIC now (the runtime's mono_now_ns): bpf_ktime_get_ns() before the pushed clock offset. */
uint64_t dpt_mono_ns(void);
/* Name of a stats index ("DROP_PORT", "MONITOR+DROP_PORT"), for messages. */
const char *dpt_stat_name(int idx);
/* Events of one kind in t->ev (after dpt_events); returns the first or NULL, count in *n if non-NULL. */
const struct hyp_event *dpt_event_find(struct dpt *t, uint8_t kind, int *n);
/* dpt_open_opts for tests: no permission to load BPF (EPERM) is a TAP skip; any other failure
 * (verifier rejection, missing map) is a TAP failure, never a skip. Returns true when loaded. */
bool dpt_open_or_report(struct dpt *t, const struct dpt_opts *o);
/* The runtime's dp_open (runtime/loader.h) for tests, the same rule: EPERM is a TAP skip, any other
 * failure a TAP failure ("dp_open without pins"). Returns true when loaded. */
struct hyp_dp;
struct hyp_loader_opts;
bool dpt_dp_open_or_report(struct hyp_dp *dp, const struct hyp_loader_opts *o);

#endif
