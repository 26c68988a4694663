/* Typed access to the datapath's maps: policy generations, bans, allowlist, flows, stats. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "log.h"
#include "blkfilter.h"
#include "maps.h"
#include "sigcompile.h"

/* Elements per BPF_MAP_LOOKUP_BATCH call when walking flows: 4096 keeps the buffers at ~0.5 MiB and
 * the syscall count for a full 512k-entry table at ~130. */
#define MAPS_FLOW_BATCH 4096
/* A hash bucket larger than this many entries aborts the batched walk (falls back to get_next_key). */
#define MAPS_FLOW_BATCH_GROW_MAX (1 << 20)
/* libbpf 1.1 reports "not supported" as the kernel's internal ENOTSUPP (524), not EOPNOTSUPP. */
#define MAPS_ENOTSUPP 524

/* The active generation's clock_offset_ns, as last written or read by this process. dp_now_ns() has
 * no dp argument, so the offset is cached here by dp_config_apply()/dp_config_read(). */
static __u64 maps_clock_offset_ns;

__u64 mono_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

/* bpf_ktime_get_ns() is CLOCK_MONOTONIC: the same clock, so expiry times agree with the datapath. */
__u64 dp_now_ns(void)
{
	return mono_now_ns() + maps_clock_offset_ns;
}

/* ---- policy ----------------------------------------------------------------------------------- */

void config_defaults(struct hyp_config *cfg)
{
	const __u64 s = 1000000000ull;

	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = HYP_MODE_ENFORCE;
	/* Mid-stream TCP is picked up only when a local socket owns it: survives a restart, no ACK flood. */
	cfg->pickup = HYP_PICKUP_SOCKET;
	/* Later fragments pass; the first one carries the ports and is judged. */
	cfg->frag_policy = HYP_FRAG_PASS;
	cfg->scan_depth = HYP_SCAN_DEPTH_DEFAULT;
	/* 1 MiB per flow direction, Suricata's stream.reassembly.depth default. */
	cfg->stream_depth = 1u << 20;
	/* Events: 20/s per source and kind, bursts of 40, so one noisy source cannot flood the ring. */
	cfg->ev_rate = 20;
	cfg->ev_burst = 40;
	/* An IPv6 host usually owns a whole /64: rate-limit per /64, not per address. */
	cfg->rl_v6_prefix = 64;
	cfg->capture_len = 64;
	/* Every port open for new inbound flows until a policy closes some. No rate limits (0). */
	cfg->tcp_all_open = 1;
	cfg->udp_all_open = 1;
	/* Repeated drops (a banned source, a dropped flow) answered from the per-CPU verdict cache. */
	cfg->vcache = 1;
	/* Conntrack timeouts per state: nf_conntrack's TCP values (an idle established flow lives 5 days);
	 * a replied UDP flow 180 s, so DNS/NTP clients with long polls keep their entry. */
	cfg->timeout_ns[HYP_CT_NONE] = 0;
	cfg->timeout_ns[HYP_CT_SYN_SENT] = 120 * s;
	cfg->timeout_ns[HYP_CT_SYN_RECV] = 60 * s;
	cfg->timeout_ns[HYP_CT_ESTABLISHED] = 5ull * 24 * 3600 * s;
	cfg->timeout_ns[HYP_CT_FIN_WAIT] = 120 * s;
	cfg->timeout_ns[HYP_CT_CLOSE_WAIT] = 60 * s;
	cfg->timeout_ns[HYP_CT_TIME_WAIT] = 120 * s;
	cfg->timeout_ns[HYP_CT_CLOSED] = 10 * s;
	cfg->timeout_ns[HYP_CT_UDP] = 30 * s;
	cfg->timeout_ns[HYP_CT_UDP_REPLIED] = 180 * s;
	cfg->timeout_ns[HYP_CT_ICMP] = 30 * s;
	cfg->clock_offset_ns = 0;
	cfg->start_ns = dp_now_ns();
	/* No grace: HYP_PICKUP_GRACE must be chosen together with an explicit window. */
	cfg->pickup_grace_ns = 0;
}

static int config_validate(const struct hyp_config *c)
{
	if (c->mode > HYP_MODE_MONITOR || c->pickup > HYP_PICKUP_GRACE || c->frag_policy > HYP_FRAG_DROP ||
	    c->scan_depth > HYP_SCAN_DEPTH_MAX || c->capture_len > HYP_EV_PAYLOAD || c->rl_v6_prefix > 128 ||
	    c->syn_cookies > 1 || (c->cookie_mss && (c->cookie_mss < HYP_COOKIE_MSS_MIN ||
						      c->cookie_mss > HYP_COOKIE_MSS_MAX)))
		return -EINVAL;
	return 0;
}

/* The kernel builds a cookie connection only with these on (in the namespace of the interface, which
 * is the daemon's): tcp_syncookies gates the hand-off itself, and the kfunc refuses SACK, timestamps or
 * window scaling that the SYN-ACK offered but the stack has turned off. Each is on by default; a
 * hardened host may have turned one off, and every cookie connection would then be reset. */
static int syncookie_sysctls_ok(void)
{
	static const char *const names[] = { "tcp_syncookies", "tcp_sack", "tcp_timestamps", "tcp_window_scaling" };
	char path[96];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		FILE *f;
		int v = -1;

		snprintf(path, sizeof(path), "/proc/sys/net/ipv4/%s", names[i]);
		f = fopen(path, "r");
		if (!f)
			continue;       /* no procfs view: the kernel still decides, counted as assign_failed */
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
		if (v == 0) {
			hyp_log(LOG_ERR, "config apply: syn_cookies needs net.ipv4.%s on (it is 0 here): the kernel "
				"would refuse every cookie connection", names[i]);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

int cookie_key_init(int fd)
{
	struct hyp_cookie_key k = {0};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(fd, &zero, &k))
		return -errno;
	if (k.k[0] || k.k[1])
		return 0;       /* re-adopted: cookies issued before the restart stay valid */
	if (getrandom(&k, sizeof(k), 0) != (ssize_t)sizeof(k))
		return -EIO;
	return bpf_map_update_elem(fd, &zero, &k, BPF_ANY) ? -errno : 0;
}

/* Writes vals[0..n) to keys base..base+n-1 of an array map: one batch syscall where the kernel has it. */
static int array_write(int fd, __u32 base, const void *vals, __u32 n, size_t vsz)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo, .elem_flags = BPF_ANY);
	__u32 *keys, count = n;
	int err;

	if (!n)
		return 0;
	keys = malloc(n * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	for (__u32 i = 0; i < n; i++)
		keys[i] = base + i;
	err = bpf_map_update_batch(fd, keys, vals, &count, &bo);
	if (err == -EINVAL || err == -EOPNOTSUPP || err == -MAPS_ENOTSUPP) {
		err = 0;
		for (__u32 i = 0; i < n && !err; i++)
			err = bpf_map_update_elem(fd, &keys[i], (const char *)vals + i * vsz, BPF_ANY);
	}
	free(keys);
	return err;
}

/* Reads keys base..base+n-1 of an array map into vals. */
static int array_read(int fd, __u32 base, void *vals, __u32 n, size_t vsz)
{
	for (__u32 i = 0; i < n; i++) {
		__u32 k = base + i;
		int err = bpf_map_lookup_elem(fd, &k, (char *)vals + i * vsz);
		if (err)
			return err;
	}
	return 0;
}

/* The datapath's verdict cache (bpf/vcache.h) keeps a banned source's or a dropped flow's verdict, and
 * an established flow's pass, per CPU for up to a second; it trusts an entry only while
 * gen[HYP_GEN_EPOCH] is what it was made under. Bumped after every change that must end such a verdict
 * at once (a new ban must stop the source's established flows too): a ban written or removed (expired
 * ones included: an entry never outlives its own ban's expiry, but the removal of an expired ban can
 * uncover a shorter live one), a flow removed, a source allowlisted, and every generation flip (the
 * express lane checks the config only through it). One writer
 * (the daemon), so read-add-write needs no atomics; a failure is returned for the caller to log. */
int state_epoch_bump(int fd_gen)
{
	__u32 k = HYP_GEN_EPOCH, v = 0;
	int err = bpf_map_lookup_elem(fd_gen, &k, &v);

	if (!err) {
		v++;
		err = bpf_map_update_elem(fd_gen, &k, &v, BPF_ANY);
	}
	return err;
}

/* After a successful change: a failed bump leaves cached drops standing up to their TTL, logged. */
static void epoch_bump_logged(struct hyp_dp *dp, const char *what)
{
	int err = state_epoch_bump(dp->fd_gen);

	if (err)
		hyp_log(LOG_WARNING, "%s: cached verdicts not invalidated (they lapse within %d s): %s", what,
			HYP_VCACHE_TTL_S, strerror(-err));
}

static int gen_read(struct hyp_dp *dp, __u32 *gen)
{
	__u32 k = HYP_GEN_ACTIVE;
	int err = bpf_map_lookup_elem(dp->fd_gen, &k, gen);

	/* A value outside 0..1 can only come from a foreign writer; treat it as generation 0. */
	if (!err && *gen >= HYP_GENERATIONS)
		*gen = 0;
	return err;
}

/* Writes a compiled signature set into generation g (all HYP_SIG_MAX slots, so stale ones vanish). */
static int sigset_write(struct hyp_dp *dp, __u32 g, const struct hyp_sigset *set)
{
	struct hyp_sig *sigs;
	int err;

	if (set->nsigs > HYP_SIG_MAX || set->nstates > HYP_DFA_STATES_MAX ||
	    (set->nstates && (!set->rows || !set->out)))
		return -E2BIG;
	sigs = calloc(HYP_SIG_MAX, sizeof(*sigs));
	if (!sigs)
		return -ENOMEM;
	memcpy(sigs, set->sigs, set->nsigs * sizeof(*sigs));
	err = array_write(dp->fd_sigs, g * HYP_SIG_MAX, sigs, HYP_SIG_MAX, sizeof(*sigs));
	free(sigs);
	if (!err)
		err = array_write(dp->fd_dfa, g * HYP_DFA_STATES_MAX, set->rows, set->nstates, sizeof(*set->rows));
	if (!err)
		err = array_write(dp->fd_dfa_out, g * HYP_DFA_STATES_MAX, set->out, set->nstates,
				  sizeof(*set->out));
	return err;
}

/* Copies generation from's signatures (its first nstates rows) into generation to. */
static int sigset_copy(struct hyp_dp *dp, __u32 from, __u32 to, __u32 nsigs, __u32 nstates)
{
	struct hyp_sigset *set = calloc(1, sizeof(*set));
	int err = -ENOMEM;

	if (!set)
		return -ENOMEM;
	if (nsigs > HYP_SIG_MAX || nstates > HYP_DFA_STATES_MAX) {
		err = -E2BIG;
		goto out;
	}
	set->nsigs = nsigs;
	set->nstates = nstates;
	set->rows = calloc(nstates ? nstates : 1, sizeof(*set->rows));
	set->out = calloc(nstates ? nstates : 1, sizeof(*set->out));
	if (!set->rows || !set->out)
		goto out;
	err = array_read(dp->fd_sigs, from * HYP_SIG_MAX, set->sigs, nsigs, sizeof(*set->sigs));
	if (!err)
		err = array_read(dp->fd_dfa, from * HYP_DFA_STATES_MAX, set->rows, nstates, sizeof(*set->rows));
	if (!err)
		err = array_read(dp->fd_dfa_out, from * HYP_DFA_STATES_MAX, set->out, nstates, sizeof(*set->out));
	if (!err)
		err = sigset_write(dp, to, set);
out:
	free(set->rows);
	free(set->out);
	free(set);
	return err;
}

/*
 * The inactive generation is written in full, then "gen" flips with one update: the datapath reads
 * gen once per packet, so a packet sees the old or the new generation, never a mix. A packet that read
 * gen before the previous flip and is still running could see the rows being rewritten, but a packet
 * lives for microseconds and reloads are seconds apart.
 * sigset NULL keeps the active signatures (copied into the new generation); an empty set clears them.
 */
int dp_config_apply(struct hyp_dp *dp, const struct hyp_config *cfg, const struct hyp_sigset *sigset)
{
	struct hyp_config *cur = NULL, *next = NULL;
	__u32 g, k = 0;
	int err;

	if (config_validate(cfg)) {
		hyp_log(LOG_ERR, "config apply: invalid config (mode %u pickup %u frag %u scan_depth %u "
			"capture_len %u rl_v6_prefix %u cookie_mss %u)", cfg->mode, cfg->pickup, cfg->frag_policy,
			cfg->scan_depth, cfg->capture_len, cfg->rl_v6_prefix, cfg->cookie_mss);
		return -EINVAL;
	}
	/* the cookie ACK needs the tc ingress program, which this kernel may not run */
	if (cfg->syn_cookies && dp->skel && dp->prog_tci_fd < 0) {
		hyp_log(LOG_ERR, "config apply: syn_cookies needs kernel 6.9+ (bpf_sk_assign_tcp_reqsk)");
		return -EOPNOTSUPP;
	}
	if (cfg->syn_cookies && (err = syncookie_sysctls_ok()))
		return err;
	err = gen_read(dp, &g);
	if (err) {
		hyp_log(LOG_ERR, "config apply: read gen: %s", strerror(-err));
		return err;
	}
	next = malloc(sizeof(*next));
	cur = malloc(sizeof(*cur));
	if (!next || !cur) {
		err = -ENOMEM;
		goto fail;
	}
	*next = *cfg;
	err = bpf_map_lookup_elem(dp->fd_policy, &g, cur);
	if (err)
		goto fail;
	/* Signature ids and cached verdicts are only good under the config they were made under; the
	 * generation slot alone repeats every second apply (bpf/vcache.h, HYP_FF_DROP). */
	next->serial = (__u16)(cur->serial + 1);
	if (sigset) {
		err = sigset_write(dp, g ^ 1, sigset);
		next->nsigs = sigset->nsigs;
		next->dfa_states = sigset->nstates;
	} else {
		err = sigset_copy(dp, g, g ^ 1, cur->nsigs, cur->dfa_states);
		next->nsigs = cur->nsigs;
		next->dfa_states = cur->dfa_states;
	}
	if (err)
		goto fail;
	k = g ^ 1;
	err = bpf_map_update_elem(dp->fd_policy, &k, next, BPF_ANY);
	if (err)
		goto fail;
	k = HYP_GEN_ACTIVE;
	g ^= 1;
	err = bpf_map_update_elem(dp->fd_gen, &k, &g, BPF_ANY);
	if (err)
		goto fail;
	maps_clock_offset_ns = next->clock_offset_ns;
	/* The express lane knows a cached verdict's config only through its epoch (bpf/express.h): a
	 * flip without this bump would leave it answering under the old config up to the entry's TTL. */
	epoch_bump_logged(dp, "config apply");
	free(next);
	free(cur);
	return 0;
fail:
	hyp_log(LOG_ERR, "config apply: writing generation %u failed: %s (active generation unchanged)",
		g ^ 1, strerror(-err));
	free(next);
	free(cur);
	return err;
}

int dp_config_read(struct hyp_dp *dp, struct hyp_config *cfg, __u32 *gen)
{
	__u32 g;
	int err = gen_read(dp, &g);

	if (!err)
		err = bpf_map_lookup_elem(dp->fd_policy, &g, cfg);
	if (err) {
		hyp_log(LOG_ERR, "config read: %s", strerror(-err));
		return err;
	}
	maps_clock_offset_ns = cfg->clock_offset_ns;
	if (gen)
		*gen = g;
	return 0;
}

/* ---- LPM tries (bans, allowlist) -------------------------------------------------------------- */

union lpm_key {
	struct hyp_lpm4_key k4;
	struct hyp_lpm6_key k6;
};

static unsigned family_bits(__u8 family)
{
	return family == HYP_AF_INET ? 32 : family == HYP_AF_INET6 ? 128 : 0;
}

/* Builds the trie key for addr/plen with host bits cleared; returns the key size or -EINVAL. */
static int lpm_key_make(__u8 family, const __u8 *addr, unsigned plen, union lpm_key *k)
{
	unsigned bits = family_bits(family), len = bits / 8;
	__u8 *dst;

	if (!bits || plen > bits)
		return -EINVAL;
	memset(k, 0, sizeof(*k));
	if (family == HYP_AF_INET) {
		k->k4.prefixlen = plen;
		dst = k->k4.addr;
	} else {
		k->k6.prefixlen = plen;
		dst = k->k6.addr;
	}
	for (unsigned i = 0; i < len; i++) {
		unsigned keep = plen >= (i + 1) * 8 ? 8 : plen > i * 8 ? plen - i * 8 : 0;
		dst[i] = addr[i] & (keep ? (__u8)(0xff << (8 - keep)) : 0);
	}
	return family == HYP_AF_INET ? (int)sizeof(k->k4) : (int)sizeof(k->k6);
}

static void lpm_key_cidr(__u8 family, const void *key, struct hyp_cidr *c)
{
	memset(c, 0, sizeof(*c));
	c->family = family;
	if (family == HYP_AF_INET) {
		const struct hyp_lpm4_key *k = key;
		c->prefixlen = (__u8)k->prefixlen;
		memcpy(c->addr, k->addr, 4);
	} else {
		const struct hyp_lpm6_key *k = key;
		c->prefixlen = (__u8)k->prefixlen;
		memcpy(c->addr, k->addr, 16);
	}
}

/* Collects every key of a trie (get_next_key walks post-order). Keys are copied first so callbacks
 * may delete: deleting the cursor key would restart the walk from the leftmost leaf. */
static int lpm_keys(int fd, size_t ksz, void **out, size_t *n)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	char *keys = NULL;
	size_t cap, cnt = 0;
	int err;

	err = bpf_obj_get_info_by_fd(fd, &info, &ilen);
	if (err)
		return err;
	/* Bounded: a map never holds more than max_entries keys; a concurrent writer cannot loop us. */
	cap = (size_t)info.max_entries + 1;
	keys = malloc(cap * ksz);
	if (!keys)
		return -ENOMEM;
	for (err = bpf_map_get_next_key(fd, NULL, keys); !err && cnt + 1 < cap;
	     err = bpf_map_get_next_key(fd, keys + (cnt - 1) * ksz, keys + cnt * ksz))
		cnt++;
	if (err && err != -ENOENT) {
		free(keys);
		return err;
	}
	*out = keys;
	*n = cnt;
	return 0;
}

typedef int (*lpm_iter_fn)(__u8 family, const void *key, const void *val, void *arg);

/* Calls fn for every entry of a trie; fn returning non-zero stops (returned as-is). */
static int lpm_foreach(int fd, __u8 family, size_t vsz, lpm_iter_fn fn, void *arg)
{
	size_t ksz = family == HYP_AF_INET ? sizeof(struct hyp_lpm4_key) : sizeof(struct hyp_lpm6_key);
	size_t n = 0;
	void *keys = NULL;
	char val[64];
	int err, rc = 0;

	if (vsz > sizeof(val))
		return -EINVAL;
	err = lpm_keys(fd, ksz, &keys, &n);
	if (err)
		return err;
	for (size_t i = 0; i < n && !rc; i++) {
		const char *k = (const char *)keys + i * ksz;
		/* The key exists, so the longest-prefix lookup lands on exactly it (unless deleted meanwhile). */
		if (bpf_map_lookup_elem(fd, k, val))
			continue;
		rc = fn(family, k, val, arg);
	}
	free(keys);
	return rc;
}

/*
 * An LPM lookup returns the longest prefix <= key.prefixlen, not the key itself. The entry is exact iff
 * the lookup one bit shorter lands on a different entry. Values compare by their identity fields only
 * (cmp_len bytes; a ban's racy "hits" is left out). Equal values at two lengths are ambiguous: then
 * walk the keys.
 */
static int lpm_lookup_exact(int fd, __u8 family, const struct hyp_cidr *c, void *val, size_t cmp_len)
{
	union lpm_key k, k2;
	char shorter[64];
	int ksz = lpm_key_make(family, c->addr, c->prefixlen, &k);

	if (ksz < 0)
		return ksz;
	int err = bpf_map_lookup_elem(fd, &k, val);
	if (err || c->prefixlen == 0)
		return err;
	lpm_key_make(family, c->addr, c->prefixlen - 1u, &k2);
	err = bpf_map_lookup_elem(fd, &k2, shorter);
	if (err == -ENOENT || (!err && memcmp(shorter, val, cmp_len)))
		return 0;
	if (err)
		return err;
	void *keys = NULL;
	size_t n = 0;
	err = lpm_keys(fd, (size_t)ksz, &keys, &n);
	if (err)
		return err;
	err = -ENOENT;
	for (size_t i = 0; i < n && err; i++)
		if (!memcmp((char *)keys + i * ksz, &k, ksz))
			err = 0;
	free(keys);
	return err;
}

static int ban_fd(struct hyp_dp *dp, __u8 family)
{
	return family == HYP_AF_INET ? dp->fd_bans4 : dp->fd_bans6;
}

static int allow_fd(struct hyp_dp *dp, __u8 family)
{
	return family == HYP_AF_INET ? dp->fd_allow4 : dp->fd_allow6;
}

/* Write entry k (CIDR c) into the ban (ban) or allow trie of c's family, keeping the pre-filter's counts
 * (runtime/blkfilter.c) exact: a new entry is counted, and its blocks' bits cleared, before it is
 * written; one that replaces an entry was counted already. LPM tries have no batch operations: one
 * syscall per entry either way. */
static int lpm_put(struct hyp_dp *dp, bool ban, const struct hyp_cidr *c, const void *k, const void *v)
{
	int fd = ban ? ban_fd(dp, c->family) : allow_fd(dp, c->family);
	int err;

	blkf_cover(dp, ban, c, 1);
	err = bpf_map_update_elem(fd, k, v, BPF_NOEXIST);
	if (err) {
		blkf_cover(dp, ban, c, -1);
		if (err == -EEXIST)
			err = bpf_map_update_elem(fd, k, v, BPF_EXIST);
	}
	return err;
}

/* Delete entry k (CIDR c); the pre-filter counts it out once it is gone. */
static int lpm_remove(struct hyp_dp *dp, bool ban, const struct hyp_cidr *c, const void *k)
{
	int err = bpf_map_delete_elem(ban ? ban_fd(dp, c->family) : allow_fd(dp, c->family), k);

	if (!err)
		blkf_cover(dp, ban, c, -1);
	return err;
}

/* Bytes of struct hyp_ban that identify it (everything before "hits"). */
#define BAN_IDENTITY_LEN offsetof(struct hyp_ban, hits)

static bool ban_expired(const struct hyp_ban *b, __u64 now)
{
	return b->expires_ns && b->expires_ns <= now;
}

static void log_cidr_err(const char *what, const struct hyp_cidr *c, int err)
{
	char buf[64];

	cidr_format(c, buf, sizeof(buf));
	hyp_log(LOG_ERR, "%s %s: %s", what, buf, strerror(-err));
}

int ban_add(struct hyp_dp *dp, const struct hyp_cidr *c, __u64 ttl_s, __u32 reason)
{
	union lpm_key k;
	struct hyp_ban b = {};
	__u64 now = dp_now_ns();
	int err;

	if (lpm_key_make(c->family, c->addr, c->prefixlen, &k) < 0) {
		hyp_log(LOG_ERR, "ban add: bad cidr (family %u, /%u)", c->family, c->prefixlen);
		return -EINVAL;
	}
	/* Callers cap TTLs (HYP_CTL_TTL_MAX); this keeps any other caller from wrapping the expiry into
	 * the past, which would make the ban a no-op. */
	if (ttl_s > (UINT64_MAX - now) / 1000000000ull)
		return -ERANGE;
	b.created_ns = now;
	b.expires_ns = ttl_s ? now + ttl_s * 1000000000ull : 0;
	b.reason = reason;
	err = lpm_put(dp, true, c, &k, &b);
	if (err)
		log_cidr_err("ban add", c, err);
	else
		epoch_bump_logged(dp, "ban add");   /* a replaced ban may end sooner than a cached copy */
	return err;
}

int ban_del(struct hyp_dp *dp, const struct hyp_cidr *c)
{
	union lpm_key k;
	int err;

	if (lpm_key_make(c->family, c->addr, c->prefixlen, &k) < 0)
		return -EINVAL;
	err = lpm_remove(dp, true, c, &k);
	if (err && err != -ENOENT)
		log_cidr_err("ban del", c, err);
	if (!err)
		epoch_bump_logged(dp, "ban del");
	return err;
}

int ban_get(struct hyp_dp *dp, const struct hyp_cidr *c, struct hyp_ban *out)
{
	struct hyp_ban b;
	int err;

	if (!family_bits(c->family) || c->prefixlen > family_bits(c->family))
		return -EINVAL;
	err = lpm_lookup_exact(ban_fd(dp, c->family), c->family, c, &b, BAN_IDENTITY_LEN);
	if (err && err != -ENOENT)
		log_cidr_err("ban get", c, err);
	if (!err && out)
		*out = b;
	return err;
}

/* Longest prefix <= plen holding an entry whose identity equals v's: binary search, since the entry a
 * lookup of length p lands on only gets more specific as p grows. */
static unsigned ban_match_len(int fd, __u8 family, const __u8 *addr, unsigned plen, const struct hyp_ban *v)
{
	unsigned lo = 0, hi = plen;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		union lpm_key k;
		struct hyp_ban w;
		lpm_key_make(family, addr, mid, &k);
		if (!bpf_map_lookup_elem(fd, &k, &w) && !memcmp(&w, v, BAN_IDENTITY_LEN))
			hi = mid;
		else
			lo = mid + 1;
	}
	return hi;
}

/* Any unexpired ban covering addr. The datapath only looks at the longest match, so an expired
 * longer ban shadows a live shorter one there until ban_expire() runs; here we look past it. */
int ban_match(struct hyp_dp *dp, __u8 family, const __u8 *addr, struct hyp_cidr *which, struct hyp_ban *out)
{
	unsigned bits = family_bits(family);
	int fd = ban_fd(dp, family);
	__u64 now = dp_now_ns();
	int p;

	if (!bits)
		return -EINVAL;
	/* At most bits+1 rounds: each one moves p strictly down. */
	for (p = (int)bits; p >= 0;) {
		union lpm_key k;
		struct hyp_ban v;
		lpm_key_make(family, addr, (unsigned)p, &k);
		int err = bpf_map_lookup_elem(fd, &k, &v);
		if (err == -ENOENT)
			return 0;
		if (err) {
			hyp_log(LOG_ERR, "ban match: lookup: %s", strerror(-err));
			return err;
		}
		unsigned len = ban_match_len(fd, family, addr, (unsigned)p, &v);
		if (!ban_expired(&v, now)) {
			if (which) {
				lpm_key_make(family, addr, len, &k);
				lpm_key_cidr(family, &k, which);
			}
			if (out)
				*out = v;
			return 1;
		}
		p = (int)len - 1;
	}
	return 0;
}

/* Many bans in one call (a start-up list, a restored state): all checked first (a bad CIDR writes
 * nothing), then written one by one (lpm_put), the state epoch bumped once. Stops at the first failed
 * write; returns the count written or -errno. */
int ban_add_batch(struct hyp_dp *dp, const struct hyp_cidr *c, const struct hyp_ban *v, size_t n)
{
	union lpm_key k;
	size_t done = 0;
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		if (lpm_key_make(c[i].family, c[i].addr, c[i].prefixlen, &k) < 0) {
			hyp_log(LOG_ERR, "ban add batch: entry %zu: bad cidr (family %u, /%u)", i, c[i].family,
				c[i].prefixlen);
			return -EINVAL;
		}
	}
	for (; done < n; done++) {
		lpm_key_make(c[done].family, c[done].addr, c[done].prefixlen, &k);
		err = lpm_put(dp, true, &c[done], &k, &v[done]);
		if (err) {
			hyp_log(LOG_ERR, "ban add batch: entry %zu of %zu: %s", done, n, strerror(-err));
			break;
		}
	}
	if (done)       /* even after a failure: the entries before it are written */
		epoch_bump_logged(dp, "ban add batch");
	return err ? err : (int)done;
}

struct ban_iter {
	ban_iter_fn fn;
	void *arg;
};

static int ban_iter_cb(__u8 family, const void *key, const void *val, void *arg)
{
	struct ban_iter *it = arg;
	struct hyp_cidr c;

	lpm_key_cidr(family, key, &c);
	return it->fn(&c, val, it->arg);
}

int ban_foreach(struct hyp_dp *dp, ban_iter_fn fn, void *arg)
{
	struct ban_iter it = { fn, arg };
	int rc = lpm_foreach(dp->fd_bans4, HYP_AF_INET, sizeof(struct hyp_ban), ban_iter_cb, &it);

	if (!rc)
		rc = lpm_foreach(dp->fd_bans6, HYP_AF_INET6, sizeof(struct hyp_ban), ban_iter_cb, &it);
	if (rc < 0)
		hyp_log(LOG_ERR, "ban foreach: %s", strerror(-rc));
	return rc;
}

struct ban_expiry {
	__u64 now;
	char *keys;             /* expired keys of one family, collected before deleting */
	size_t n, cap, ksz;
};

static int ban_expire_cb(__u8 family, const void *key, const void *val, void *arg)
{
	struct ban_expiry *e = arg;

	(void)family;
	if (!ban_expired(val, e->now))
		return 0;
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 1024;
		char *k = realloc(e->keys, cap * e->ksz);
		if (!k)
			return -ENOMEM;
		e->keys = k;
		e->cap = cap;
	}
	memcpy(e->keys + e->n++ * e->ksz, key, e->ksz);
	return 0;
}

/* Deletes the collected keys (lpm_remove: LPM tries have no batch delete); a key that vanished
 * meanwhile is skipped. Returns the count deleted. */
static int ban_delete_keys(struct hyp_dp *dp, __u8 family, const struct ban_expiry *e)
{
	int done = 0;

	for (size_t i = 0; i < e->n; i++) {
		struct hyp_cidr c;
		int err;

		lpm_key_cidr(family, e->keys + i * e->ksz, &c);
		err = lpm_remove(dp, true, &c, e->keys + i * e->ksz);
		if (!err)
			done++;
		else if (err != -ENOENT)
			return err;
	}
	return done;
}

static int ban_expire_family(struct hyp_dp *dp, __u8 family, __u64 now)
{
	struct ban_expiry e = { .now = now };
	int fd = ban_fd(dp, family), rc;

	e.ksz = family == HYP_AF_INET ? sizeof(struct hyp_lpm4_key) : sizeof(struct hyp_lpm6_key);
	rc = lpm_foreach(fd, family, sizeof(struct hyp_ban), ban_expire_cb, &e);
	if (!rc)
		rc = ban_delete_keys(dp, family, &e);
	free(e.keys);
	return rc;
}

int ban_expire(struct hyp_dp *dp, __u64 now_ns)
{
	int n4 = ban_expire_family(dp, HYP_AF_INET, now_ns);
	int n6 = n4 < 0 ? 0 : ban_expire_family(dp, HYP_AF_INET6, now_ns);

	/* As ban_del(): an expired ban hides a shorter live one over the same source (the datapath looks at
	 * the longest match only), so its removal can make a ban take effect, which must end what the
	 * verdict cache holds for that source (a flow entry made meanwhile). Once per sweep; also after a
	 * failed one, which may have removed some. */
	if (n4 || n6)
		epoch_bump_logged(dp, "ban expire");
	if (n4 < 0 || n6 < 0) {
		hyp_log(LOG_ERR, "ban expire: %s", strerror(n4 < 0 ? -n4 : -n6));
		return n4 < 0 ? n4 : n6;
	}
	return n4 + n6;
}

int allow_add(struct hyp_dp *dp, const struct hyp_cidr *c)
{
	union lpm_key k;
	struct hyp_allow a = { .created_ns = dp_now_ns() };
	int err;

	if (lpm_key_make(c->family, c->addr, c->prefixlen, &k) < 0) {
		hyp_log(LOG_ERR, "allow add: bad cidr (family %u, /%u)", c->family, c->prefixlen);
		return -EINVAL;
	}
	err = lpm_put(dp, false, c, &k, &a);
	if (err)
		log_cidr_err("allow add", c, err);
	else
		epoch_bump_logged(dp, "allow add");
	return err;
}

int allow_del(struct hyp_dp *dp, const struct hyp_cidr *c)
{
	union lpm_key k;
	int err;

	if (lpm_key_make(c->family, c->addr, c->prefixlen, &k) < 0)
		return -EINVAL;
	err = lpm_remove(dp, false, c, &k);
	if (err && err != -ENOENT)
		log_cidr_err("allow del", c, err);
	return err;
}

struct allow_iter {
	allow_iter_fn fn;
	void *arg;
};

static int allow_iter_cb(__u8 family, const void *key, const void *val, void *arg)
{
	struct allow_iter *it = arg;
	struct hyp_cidr c;

	lpm_key_cidr(family, key, &c);
	return it->fn(&c, val, it->arg);
}

int allow_foreach(struct hyp_dp *dp, allow_iter_fn fn, void *arg)
{
	struct allow_iter it = { fn, arg };
	int rc = lpm_foreach(dp->fd_allow4, HYP_AF_INET, sizeof(struct hyp_allow), allow_iter_cb, &it);

	if (!rc)
		rc = lpm_foreach(dp->fd_allow6, HYP_AF_INET6, sizeof(struct hyp_allow), allow_iter_cb, &it);
	if (rc < 0)
		hyp_log(LOG_ERR, "allow foreach: %s", strerror(-rc));
	return rc;
}

/* ---- flows ------------------------------------------------------------------------------------ */

/*
 * Canonical key, the same rule as the datapath (bpf/conntrack.h) and tests/lib/dptest.c: endpoint a is
 * the (addr, port) that compares lower, addresses by memcmp of all 16 bytes (IPv4 zero-padded), then
 * ports by memcmp of their network-order bytes (= numeric order). Equal endpoints: the source is a.
 */
void flow_key_make(struct hyp_flow_key *k, __u8 family, __u8 proto, const __u8 *src, __u16 sport_be,
		   const __u8 *dst, __u16 dport_be, int *dir)
{
	__u8 s[16] = {0}, d[16] = {0};
	size_t alen = family == HYP_AF_INET ? 4 : 16;
	int c;

	memcpy(s, src, alen);
	memcpy(d, dst, alen);
	memset(k, 0, sizeof(*k));
	k->proto = proto;
	k->family = family;
	c = memcmp(s, d, 16);
	if (!c)
		c = memcmp(&sport_be, &dport_be, 2);
	if (c <= 0) {
		memcpy(k->addr_a, s, 16);
		memcpy(k->addr_b, d, 16);
		k->port_a = sport_be;
		k->port_b = dport_be;
	} else {
		memcpy(k->addr_a, d, 16);
		memcpy(k->addr_b, s, 16);
		k->port_a = dport_be;
		k->port_b = sport_be;
	}
	if (dir)
		*dir = c <= 0 ? 0 : 1;
}

int flow_lookup(struct hyp_dp *dp, const struct hyp_flow_key *k, struct hyp_flow *out)
{
	int err = bpf_map_lookup_elem(dp->fd_flows, k, out);

	if (err == -ENOENT)
		err = bpf_map_lookup_elem(dp->fd_flows_new, k, out);
	if (err && err != -ENOENT)
		hyp_log(LOG_ERR, "flow lookup: %s", strerror(-err));
	if (!err) {
		int verr = vcache_flow_add(dp->fd_vcache, dp->vcache_slots, k, out);

		if (verr)   /* the flow is there: its own counts, short of what the cache holds */
			hyp_log(LOG_WARNING, "flow lookup: verdict cache counts not added: %s", strerror(-verr));
	}
	return err;
}

int flow_delete(struct hyp_dp *dp, const struct hyp_flow_key *k)
{
	int err = bpf_map_delete_elem(dp->fd_flows, k);

	if (err == -ENOENT)
		err = bpf_map_delete_elem(dp->fd_flows_new, k);
	if (err && err != -ENOENT)
		hyp_log(LOG_ERR, "flow delete: %s", strerror(-err));
	if (!err)
		epoch_bump_logged(dp, "flow delete");
	return err;
}

/* Walk with get_next_key + lookup: the fallback when batched lookup is unavailable. */
static int flow_walk_slow(int fd, bool est, flow_iter_fn fn, void *arg, __u32 max_entries,
			  const struct hyp_dp *counts)
{
	struct hyp_flow_key cur, next;
	struct hyp_flow f;
	int err, rc = 0;
	__u32 n = 0;

	/* Bounded by max_entries: LRU churn could otherwise keep the walk going forever. */
	for (err = bpf_map_get_next_key(fd, NULL, &next); !err && !rc && n <= max_entries;
	     err = bpf_map_get_next_key(fd, &cur, &next), n++) {
		cur = next;
		if (bpf_map_lookup_elem(fd, &cur, &f))
			continue;
		if (counts && vcache_flow_add(counts->fd_vcache, counts->vcache_slots, &cur, &f))
			hyp_log(LOG_WARNING, "flow walk: verdict cache counts not added for a flow");
		rc = fn(&cur, &f, est, arg);
	}
	if (err && err != -ENOENT)
		return err;
	return rc;
}

/* counts: each batch gets the counts the verdict cache of that datapath holds, read after the batch (so a carry
 * in between is missed once, never counted twice: runtime/vcache.c). */
static int flow_walk(int fd, bool est, flow_iter_fn fn, void *arg, const struct hyp_dp *counts)
{
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info), in_tok = 0, out_tok = 0, cap = MAPS_FLOW_BATCH;
	struct hyp_flow_key *keys = NULL;
	struct hyp_flow *vals = NULL;
	bool first = true;
	int err, rc = 0;

	err = bpf_obj_get_info_by_fd(fd, &info, &ilen);
	if (err)
		return err;
	for (;;) {
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		__u32 count = cap;
		if (!keys) {
			keys = malloc(cap * sizeof(*keys));
			vals = malloc(cap * sizeof(*vals));
			if (!keys || !vals) {
				rc = -ENOMEM;
				break;
			}
		}
		err = bpf_map_lookup_batch(fd, first ? NULL : &in_tok, &out_tok, keys, vals, &count, &bo);
		if (err == -ENOSPC && cap < MAPS_FLOW_BATCH_GROW_MAX) {
			/* One hash bucket holds more than cap entries: retry the same position, larger. */
			cap *= 2;
			free(keys);
			free(vals);
			keys = NULL;
			vals = NULL;
			continue;
		}
		if (err && err != -ENOENT) {
			if (first)
				rc = flow_walk_slow(fd, est, fn, arg, info.max_entries, counts);
			else
				rc = err;
			break;
		}
		if (counts && count) {
			struct vcache_pending pend;

			int verr = vcache_pending_load(counts->fd_vcache, counts->vcache_slots, &pend);

			if (verr)   /* the flows' own counts, short of what the cache holds */
				hyp_log(LOG_WARNING, "flow walk: verdict cache counts not added: %s", strerror(-verr));
			for (__u32 i = 0; i < count; i++)
				vcache_pending_add(&pend, &keys[i], &vals[i]);
			vcache_pending_free(&pend);
		}
		for (__u32 i = 0; i < count && !rc; i++)
			rc = fn(&keys[i], &vals[i], est, arg);
		if (err == -ENOENT || rc)
			break;
		in_tok = out_tok;
		first = false;
	}
	free(keys);
	free(vals);
	return rc;
}

/* Both tables; counts: with what the verdict cache holds for each flow. */
static int flow_walk_both(struct hyp_dp *dp, flow_iter_fn fn, void *arg, bool counts)
{
	int rc = flow_walk(dp->fd_flows, true, fn, arg, counts ? dp : NULL);

	if (!rc)
		rc = flow_walk(dp->fd_flows_new, false, fn, arg, counts ? dp : NULL);
	if (rc < 0)
		hyp_log(LOG_ERR, "flow foreach: %s", strerror(-rc));
	return rc;
}

int flow_foreach(struct hyp_dp *dp, flow_iter_fn fn, void *arg)
{
	return flow_walk_both(dp, fn, arg, true);
}

static int census_cb(const struct hyp_flow_key *k, const struct hyp_flow *f, bool est, void *arg)
{
	struct flow_census *c = arg;

	(void)k;
	if (c->limit && c->seen >= c->limit) {
		c->truncated = true;
		return 1;
	}
	c->seen++;
	if (f->state < HYP_CT_STATE_MAX)
		c->state[f->state]++;
	if (est)
		c->live_est++;
	else
		c->live_new++;
	return 0;
}

int flow_census(struct hyp_dp *dp, __u64 limit, struct flow_census *c)
{
	memset(c, 0, sizeof(*c));
	c->limit = limit;
	return flow_walk_both(dp, census_cb, c, false) < 0 ? -EIO : 0;    /* no counters: no cache read */
}

__u64 flow_evicted(__u64 inserts, __u64 deletes, __u64 live)
{
	return inserts > deletes + live ? inserts - deletes - live : 0;
}

/* ---- stats ------------------------------------------------------------------------------------ */

/* Add one CPU's books to t, the express lane's hits (xp[]) folded into the verdict statistics and the
 * counters they stand for (lib/hyperion_abi.h enum hyp_xp); the datapath-internal fields are skipped. */
void books_fold(struct hyp_totals *t, const struct hyp_books *b)
{
	static const unsigned xp_reason[HYP_XP_MAX] = {
		[HYP_XP_BANNED] = HYP_R_DROP_BANNED, [HYP_XP_SIG] = HYP_R_DROP_SIG, [HYP_XP_PASS] = HYP_R_PASS_FLOW,
	};

	for (unsigned i = 0; i < HYP_STATS_ENTRIES; i++) {
		t->reason[i].packets += b->stat[i].packets;
		t->reason[i].bytes += b->stat[i].bytes;
	}
	for (unsigned i = 0; i < HYP_C_MAX; i++)
		t->counter[i] += b->counter[i];
	for (unsigned k = 0; k < HYP_XP_MAX; k++) {
		__u64 n = b->xp[k].packets;

		t->reason[xp_reason[k]].packets += n;
		t->reason[xp_reason[k]].bytes += b->xp[k].bytes;
		t->counter[HYP_C_SEEN] += n;
		t->counter[HYP_C_VCACHE_HIT] += n;
		t->counter[HYP_C_VCACHE_EXPRESS] += n;
		if (k != HYP_XP_PASS)
			t->counter[HYP_C_EV_SAMPLED] += n;      /* a drop's event, suppressed by its entry */
	}
}

int stats_read(struct hyp_dp *dp, struct hyp_totals *t)
{
	int ncpu = libbpf_num_possible_cpus();
	struct hyp_books *bv;
	__u32 zero = 0;
	int err;

	if (ncpu <= 0) {
		hyp_log(LOG_ERR, "stats read: cannot count CPUs: %s", strerror(-ncpu));
		return ncpu ? ncpu : -EINVAL;
	}
	memset(t, 0, sizeof(*t));
	/* Per-CPU values come back as one slot per possible CPU, each rounded up to 8 bytes (the struct's
	 * size already is a multiple of 8). */
	bv = calloc((size_t)ncpu, sizeof(*bv));
	if (!bv) {
		hyp_log(LOG_ERR, "stats read: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	err = bpf_map_lookup_elem(dp->fd_books, &zero, bv);
	for (int c = 0; c < ncpu && !err; c++)
		books_fold(t, &bv[c]);
	if (err)
		hyp_log(LOG_ERR, "stats read: %s", strerror(-err));
	free(bv);
	return err;
}
