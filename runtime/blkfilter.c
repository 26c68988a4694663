/* Ban/allow pre-filter: user space keeps the datapath's per-block "no entry here" bits exact. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "blkfilter.h"
#include "hyperion.skel.h"
#include "log.h"

/*
 * The datapath skips a trie's lookup for a source whose block (lib/hyperion_abi.h hyp_blkf_block) has
 * its bit set in blk_filter (bpf/blocklist.h blk_none). A bit may only be set while no entry of the
 * trie covers any address of the block, so user space counts, per trie and block, the entries that
 * cover it: an IPv4 entry /16 or longer covers one block, a shorter one 2^(16 - len) blocks; an IPv6
 * entry /48 or longer the bucket of its /48, a shorter one every bucket (counted once, in wide[]).
 * A count's first entry clears the bit before the entry is written; the last one's delete sets it
 * after. The counts follow every write maps.c makes (blkf_cover) and are rebuilt from the tries when
 * the datapath is opened (blkf_rebuild), which is also where entries written by an earlier run are
 * found. The bits live in the map itself, mapped here: a change is one store, no syscall.
 */
struct hyp_blkf {
	__u64 *bits;                            /* the map: HYP_BLKF_TRIES * HYP_BLKF_WORDS words */
	size_t map_len;
	__u32 count[HYP_BLKF_TRIES][HYP_BLKF_BLOCKS];
	__u32 wide[HYP_BLKF_TRIES];             /* IPv6 entries shorter than /HYP_BLKF_V6_PLEN */
	bool counting;                          /* a rebuild's walk: counts only, the bits stay clear */
};

static int blkf_trie(bool ban, __u8 family)
{
	if (ban)
		return family == HYP_AF_INET ? HYP_BLKF_BANS4 : HYP_BLKF_BANS6;
	return family == HYP_AF_INET ? HYP_BLKF_ALLOW4 : HYP_BLKF_ALLOW6;
}

/* Rewrite word w of trie t from the counts. One aligned 8-byte store: the datapath reads the word
 * whole, old or new. */
static void blkf_word_sync(struct hyp_blkf *f, int t, __u32 w)
{
	const __u32 *c = &f->count[t][w * 64];
	__u64 v = 0;

	if (!f->wide[t])
		for (int i = 0; i < 64; i++)
			v |= (__u64)(c[i] == 0) << i;
	__atomic_store_n(&f->bits[t * HYP_BLKF_WORDS + w], v, __ATOMIC_RELEASE);
}

static void blkf_trie_sync(struct hyp_blkf *f, int t)
{
	for (__u32 w = 0; w < HYP_BLKF_WORDS; w++)
		blkf_word_sync(f, t, w);
}

/* A count plus delta (+1 or -1), never below zero: deleting an entry the counts never saw (written
 * behind the runtime's back, which the filter does not support) must not wrap a count around. */
static __u32 blkf_add(__u32 n, int delta)
{
	return delta < 0 && !n ? 0 : n + delta;
}

/* Add delta to the counts of every block c covers and rewrite the bits that changed (not during a
 * rebuild's walk: a word written from counts still missing the entries not walked yet could set a
 * bit an entry covers). */
static void blkf_count(struct hyp_blkf *f, int t, const struct hyp_cidr *c, int delta)
{
	__u32 first, n;

	if (c->family == HYP_AF_INET6 && c->prefixlen < HYP_BLKF_V6_PLEN) {
		__u32 was = f->wide[t];

		f->wide[t] = blkf_add(was, delta);
		if (!was != !f->wide[t] && !f->counting)
			blkf_trie_sync(f, t);
		return;
	}
	first = hyp_blkf_block(c->family, c->addr);
	n = 1;
	if (c->family == HYP_AF_INET && c->prefixlen < HYP_BLKF_BITS) {
		n = 1u << (HYP_BLKF_BITS - c->prefixlen);
		first &= ~(n - 1);
	}
	for (__u32 b = first; b < first + n; b++) {
		__u32 was = f->count[t][b];

		f->count[t][b] = blkf_add(was, delta);
		/* a word once per run of 64 blocks, or where a single block crossed zero */
		if (f->counting)
			continue;
		if ((!was != !f->count[t][b] && n < 64) || (n >= 64 && (b & 63) == 63))
			blkf_word_sync(f, t, b / 64);
	}
}

void blkf_cover(struct hyp_dp *dp, bool ban, const struct hyp_cidr *c, int delta)
{
	if (dp->blkf)
		blkf_count(dp->blkf, blkf_trie(ban, c->family), c, delta);
}

bool blkf_none(const struct hyp_dp *dp, bool ban, __u8 family, const __u8 *addr)
{
	__u32 b = hyp_blkf_block(family, addr);
	int t = blkf_trie(ban, family);

	if (!dp->blkf)
		return false;
	return __atomic_load_n(&dp->blkf->bits[t * HYP_BLKF_WORDS + b / 64], __ATOMIC_ACQUIRE) >> (b & 63) & 1;
}

static int blkf_ban_cb(const struct hyp_cidr *c, const struct hyp_ban *b, void *arg)
{
	(void)b;
	blkf_count(arg, blkf_trie(true, c->family), c, 1);
	return 0;
}

static int blkf_allow_cb(const struct hyp_cidr *c, const struct hyp_allow *a, void *arg)
{
	(void)a;
	blkf_count(arg, blkf_trie(false, c->family), c, 1);
	return 0;
}

/*
 * Recount from the tries. The bits go to "may cover" (all clear) first and stay so during the walk
 * (blkf_count only counts meanwhile); each word is written once the counts are complete. A datapath
 * already attached (re-adopted pins) looks every source up for the walk's duration, never skips one.
 */
int blkf_rebuild(struct hyp_dp *dp)
{
	struct hyp_blkf *f = dp->blkf;
	int rc;

	if (!f)
		return 0;
	blkf_clear(dp);
	memset(f->count, 0, sizeof(f->count));
	memset(f->wide, 0, sizeof(f->wide));
	f->counting = true;
	rc = ban_foreach(dp, blkf_ban_cb, f);
	if (rc >= 0)
		rc = allow_foreach(dp, blkf_allow_cb, f);
	f->counting = false;
	if (rc < 0) {
		/* the bits stay clear (every source is looked up) and no longer follow the writes */
		hyp_log(LOG_WARNING, "ban/allow pre-filter: cannot read the lists (%s); every source is looked up",
			strerror(-rc));
		blkf_close(dp);
		return rc;
	}
	for (int t = 0; t < HYP_BLKF_TRIES; t++)
		blkf_trie_sync(f, t);
	return 0;
}

void blkf_clear(struct hyp_dp *dp)
{
	if (dp->blkf)
		for (size_t i = 0; i < HYP_BLKF_TRIES * HYP_BLKF_WORDS; i++)
			__atomic_store_n(&dp->blkf->bits[i], 0, __ATOMIC_RELEASE);
}

/* Clear every bit through the map's fd: what a filter that cannot be kept must leave behind. A map
 * re-adopted from an earlier run's pins still holds that run's bits, and with no counts to follow the
 * writes from now on, a block marked empty then would hide a ban written in it later. */
static int blkf_map_zero(int fd)
{
	__u64 zero = 0;

	for (__u32 i = 0; i < HYP_BLKF_TRIES * HYP_BLKF_WORDS; i++) {
		int err = bpf_map_update_elem(fd, &i, &zero, BPF_ANY);

		if (err)
			return err;
	}
	return 0;
}

int blkf_open(struct hyp_dp *dp)
{
	struct hyp_blkf *f = calloc(1, sizeof(*f));
	int fd = bpf_map__fd(dp->skel->maps.blk_filter);
	long page = sysconf(_SC_PAGESIZE);
	int err = -ENOMEM;

	if (f) {
		f->map_len = (HYP_BLKF_TRIES * HYP_BLKF_WORDS * sizeof(__u64) + page - 1) / page * page;
		f->bits = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (f->bits != MAP_FAILED) {
			dp->blkf = f;
			blkf_rebuild(dp);       /* on failure it clears the bits and drops the filter */
			return 0;
		}
		err = -errno;
		free(f);
	}
	hyp_log(LOG_WARNING, "ban/allow pre-filter: %s; every source is looked up", strerror(-err));
	err = blkf_map_zero(fd);
	if (err)
		hyp_log(LOG_ERR, "ban/allow pre-filter: cannot clear the map: %s", strerror(-err));
	return err;
}

void blkf_close(struct hyp_dp *dp)
{
	if (!dp->blkf)
		return;
	munmap(dp->blkf->bits, dp->blkf->map_len);
	free(dp->blkf);
	dp->blkf = NULL;
}
