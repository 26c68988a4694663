/* Flow counts the datapath's verdict cache holds: what user space reads of a flow adds them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "maps.h"

/*
 * An established flow's fast path (bpf/vcache.h pass entries) counts its packets and bytes in a per-CPU
 * cache entry and carries them to the flow entry every HYP_VCACHE_PASS_CARRY packets, when the cache
 * entry ends and when the flow ends. A flow read in between would miss up to that many packets per
 * side and CPU, and an idle flow's last ones until its next packet; so every read of a flow's counters
 * adds what the cache entries of both its sides hold. The flow is read first and the entries after, so
 * a carry in between is missed (a count a little short, for one read); only a carry caught between its
 * two stores (the flow's count raised, the entry's not yet zeroed) is counted twice, for one read.
 * A failed read of the cache is logged by the caller, which keeps the flow's own counts.
 */

struct vcache_count {
	struct hyp_flow_key k;
	int dir;
	__u64 packets, bytes;
};

/* A pass entry holding counts not yet carried to its flow. */
static bool vcache_holds(const struct hyp_vcache *e)
{
	return e->action >= HYP_VC_PASS && e->hits;
}

/* Is e a pass entry with counts for side dir of flow k? Its key, made canonical, is k and its sender
 * is that side. */
static bool vcache_entry_is(const struct hyp_vcache *e, const struct hyp_flow_key *k, int dir)
{
	struct hyp_flow_key ek;
	int edir;

	if (!vcache_holds(e))
		return false;
	flow_key_make(&ek, e->family, e->proto, e->saddr, e->sport, e->daddr, e->dport, &edir);
	return edir == dir && !memcmp(&ek, k, sizeof(ek));
}

int vcache_flow_add(int fd_vcache, __u32 slots, const struct hyp_flow_key *k, struct hyp_flow *f)
{
	int ncpu = libbpf_num_possible_cpus(), err = 0;
	__u64 pk[2] = { 0, 0 }, by[2] = { 0, 0 };
	struct hyp_vcache *v;

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (int dir = 0; dir < 2 && !err; dir++) {
		const __u8 *s = dir ? k->addr_b : k->addr_a, *d = dir ? k->addr_a : k->addr_b;
		__u32 slot = hyp_vcache_hash(s, d, dir ? k->port_b : k->port_a, dir ? k->port_a : k->port_b,
					     k->proto, k->family, 1) & (slots - 1);

		err = bpf_map_lookup_elem(fd_vcache, &slot, v);
		for (int c = 0; c < ncpu && !err; c++) {
			if (!vcache_entry_is(&v[c], k, dir))
				continue;
			pk[dir] += v[c].hits;
			by[dir] += v[c].bytes;
		}
	}
	free(v);
	if (err)
		return err;     /* f untouched: both sides or none */
	for (int dir = 0; dir < 2; dir++) {
		f->packets[dir] += pk[dir];
		f->bytes[dir] += by[dir];
	}
	return 0;
}

static int vcache_count_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct vcache_count *)a)->k, &((const struct vcache_count *)b)->k,
		      sizeof(struct hyp_flow_key));
}

/* Keep the pass entries with counts among n slots' per-CPU values (v: n * ncpu entries). */
static int vcache_pending_take(struct vcache_pending *p, const struct hyp_vcache *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct hyp_vcache *e = &v[i];
		struct vcache_count *c;

		if (!vcache_holds(e))
			continue;
		if (p->n == p->cap) {
			size_t cap = p->cap ? 2 * p->cap : 64;

			c = realloc(p->v, cap * sizeof(*c));
			if (!c)
				return -ENOMEM;
			p->v = c;
			p->cap = cap;
		}
		c = &p->v[p->n++];
		flow_key_make(&c->k, e->family, e->proto, e->saddr, e->sport, e->daddr, e->dport, &c->dir);
		c->packets = e->hits;
		c->bytes = e->bytes;
	}
	return 0;
}

int vcache_pending_load(int fd_vcache, __u32 slots, struct vcache_pending *p)
{
	int ncpu = libbpf_num_possible_cpus(), err = 0;
	__u32 *keys, out = 0, count;
	struct hyp_vcache *v;

	memset(p, 0, sizeof(*p));
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	v = calloc((size_t)slots * (size_t)ncpu, sizeof(*v));
	keys = calloc(slots, sizeof(*keys));
	if (!v || !keys) {
		err = -ENOMEM;
		goto out;
	}
	/* one call for the whole array; slot by slot where batched lookup is missing */
	count = slots;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	err = bpf_map_lookup_batch(fd_vcache, NULL, &out, keys, v, &count, &bo);
	if ((!err || err == -ENOENT) && count == slots) {
		err = vcache_pending_take(p, v, (size_t)slots * (size_t)ncpu);
	} else {
		err = 0;
		for (__u32 slot = 0; slot < slots && !err; slot++) {
			err = bpf_map_lookup_elem(fd_vcache, &slot, v);
			if (!err)
				err = vcache_pending_take(p, v, (size_t)ncpu);
		}
	}
out:
	free(v);
	free(keys);
	if (err) {
		vcache_pending_free(p);
		return err;
	}
	if (p->n)
		qsort(p->v, p->n, sizeof(*p->v), vcache_count_cmp);
	return 0;
}

void vcache_pending_add(const struct vcache_pending *p, const struct hyp_flow_key *k, struct hyp_flow *f)
{
	size_t lo = 0, hi = p->n;

	while (lo < hi) {           /* the first entry not below k */
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(&p->v[mid].k, k, sizeof(*k)) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < p->n && !memcmp(&p->v[lo].k, k, sizeof(*k)); lo++) {
		f->packets[p->v[lo].dir & 1] += p->v[lo].packets;
		f->bytes[p->v[lo].dir & 1] += p->v[lo].bytes;
	}
}

void vcache_pending_free(struct vcache_pending *p)
{
	free(p->v);
	memset(p, 0, sizeof(*p));
}
