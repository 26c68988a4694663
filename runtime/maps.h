/* Typed access to the datapath's maps: policy generations, bans, allowlist, flows, stats. */
#ifndef HYP_MAPS_RT_H
#define HYP_MAPS_RT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "hyperion_abi.h"
#include "loader.h"

/* A parsed address or CIDR. family is HYP_AF_INET or HYP_AF_INET6; addr as on the wire. */
struct hyp_cidr {
	__u8 family;
	__u8 prefixlen;
	__u8 addr[16];
};

/* Parse "192.0.2.1", "192.0.2.0/24", "2001:db8::/32". Host bits must be zero unless allow_host_bits.
 * Returns 0 or -EINVAL. */
int cidr_parse(const char *s, struct hyp_cidr *out, bool allow_host_bits);
/* Format as text ("192.0.2.0/24"; a full-length prefix prints without /len). */
void cidr_format(const struct hyp_cidr *c, char *buf, size_t len);
void addr_format(__u8 family, const __u8 *addr, char *buf, size_t len);

/* CLOCK_MONOTONIC now: durations, deadlines and uptime (no test clock offset may skew them). */
__u64 mono_now_ns(void);
/* CLOCK_MONOTONIC now, the datapath's clock, plus the active generation's clock_offset_ns. */
__u64 dp_now_ns(void);

/* Policy: fill the inactive generation's config (and signatures, if sigset != NULL), then flip "gen".
 * One packet sees either the old or the new generation, never a mix. */
struct hyp_sigset;              /* compiled signatures, runtime/sigcompile.h */
int dp_config_apply(struct hyp_dp *dp, const struct hyp_config *cfg, const struct hyp_sigset *sigset);
int dp_config_read(struct hyp_dp *dp, struct hyp_config *cfg, __u32 *gen);
void config_defaults(struct hyp_config *cfg);  /* documented defaults: enforce, all ports open, ... */

/* Bans: ttl_s 0 = permanent. reason is a numeric code (text kept by the caller). */
int ban_add(struct hyp_dp *dp, const struct hyp_cidr *c, __u64 ttl_s, __u32 reason);
int ban_del(struct hyp_dp *dp, const struct hyp_cidr *c);         /* -ENOENT if absent */
int ban_get(struct hyp_dp *dp, const struct hyp_cidr *c, struct hyp_ban *out);  /* exact prefix */
/* Does any (unexpired) ban cover addr? Returns 1 and fills out/which, 0 if not, -errno on error. */
int ban_match(struct hyp_dp *dp, __u8 family, const __u8 *addr, struct hyp_cidr *which, struct hyp_ban *out);
/* Bulk insert, all checked first, one write per entry (LPM tries have no batch ops). Returns count added or -errno. */
int ban_add_batch(struct hyp_dp *dp, const struct hyp_cidr *c, const struct hyp_ban *v, size_t n);
typedef int (*ban_iter_fn)(const struct hyp_cidr *c, const struct hyp_ban *b, void *arg);
int ban_foreach(struct hyp_dp *dp, ban_iter_fn fn, void *arg);   /* fn returning non-zero stops */
int ban_expire(struct hyp_dp *dp, __u64 now_ns);                 /* delete expired; returns count */

int allow_add(struct hyp_dp *dp, const struct hyp_cidr *c);
int allow_del(struct hyp_dp *dp, const struct hyp_cidr *c);
typedef int (*allow_iter_fn)(const struct hyp_cidr *c, const struct hyp_allow *a, void *arg);
int allow_foreach(struct hyp_dp *dp, allow_iter_fn fn, void *arg);

/* Cookie MSS limits (hx.config syn_cookie_mss): the IPv4 minimum, and the largest a 64 KiB MTU allows. */
#define HYP_COOKIE_MSS_MIN 536
#define HYP_COOKIE_MSS_MAX 65495

/* Fill the SYN cookie secret (map cookie_key) with random bytes if it is zero (a fresh map). */
int cookie_key_init(int fd);

/* Bump the state epoch (gen[HYP_GEN_EPOCH]) so the datapath's verdict cache drops what it holds. */
int state_epoch_bump(int fd_gen);

/* Flows: build the canonical key from one packet's view (src -> dst). dir receives the direction
 * index of src in the canonical key (0 = endpoint a). */
void flow_key_make(struct hyp_flow_key *k, __u8 family, __u8 proto, const __u8 *src, __u16 sport_be,
		   const __u8 *dst, __u16 dport_be, int *dir);
/* Look up in flows then flows_new, with the counts the verdict cache holds for it. Returns 0, -ENOENT. */
int flow_lookup(struct hyp_dp *dp, const struct hyp_flow_key *k, struct hyp_flow *out);
int flow_delete(struct hyp_dp *dp, const struct hyp_flow_key *k);   /* from whichever map holds it */
typedef int (*flow_iter_fn)(const struct hyp_flow_key *k, const struct hyp_flow *f, bool established,
			    void *arg);
int flow_foreach(struct hyp_dp *dp, flow_iter_fn fn, void *arg);
/* Live flows by state and by table, reading at most limit entries (0: all; truncated says it stopped). */
struct flow_census {
	__u64 state[HYP_CT_STATE_MAX];
	__u64 live_est, live_new, seen, limit;
	bool truncated;
};
int flow_census(struct hyp_dp *dp, __u64 limit, struct flow_census *c);   /* 0 or -EIO (logged) */

/* The packets and bytes the verdict cache's pass entries counted for flows and have not carried to them
 * yet (runtime/vcache.c); flow_lookup() and flow_foreach() add them. slots: the map's max_entries (a
 * power of two). For one flow: */
int vcache_flow_add(int fd_vcache, __u32 slots, const struct hyp_flow_key *k, struct hyp_flow *f);  /* 0, -errno */
/* For a walk: one read of the whole cache per batch of flows, then a search per flow. */
struct vcache_pending {
	struct vcache_count *v;
	size_t n, cap;
};
int vcache_pending_load(int fd_vcache, __u32 slots, struct vcache_pending *p);   /* 0 or -errno (p empty) */
void vcache_pending_add(const struct vcache_pending *p, const struct hyp_flow_key *k, struct hyp_flow *f);
void vcache_pending_free(struct vcache_pending *p);
/* Flows a table lost to LRU pressure: its inserts - deletes - live entries (counters read before the
 * census: an insert in between can only hide an eviction, a delete in between shows as one). */
__u64 flow_evicted(__u64 inserts, __u64 deletes, __u64 live);

/* Stats summed over CPUs. */
struct hyp_totals {
	struct hyp_stat reason[HYP_STATS_ENTRIES];
	__u64 counter[HYP_C_MAX];
};
int stats_read(struct hyp_dp *dp, struct hyp_totals *t);    /* every CPU's books, summed and folded */
void books_fold(struct hyp_totals *t, const struct hyp_books *b);   /* add one CPU's books to t */
const char *reason_name(unsigned r);          /* "pass_flow", "drop_banned", ... (metrics labels) */
const char *event_kind_name(unsigned k);      /* "match", "block", ... (Lua hx.on kinds) */
int event_kind_parse(const char *name);       /* -EINVAL if unknown */
const char *ct_state_name(unsigned s);        /* "established", ... */
const char *counter_name(unsigned c);         /* "seen", "events_lost", ...; NULL for unused slots */
const char *stats_verdict_name(unsigned i);   /* stat[] slot -> "pass" | "drop" | "monitor" */

#endif
