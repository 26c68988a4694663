/* Ban/allow pre-filter: user space keeps the datapath's per-block "no entry here" bits exact. */
#ifndef HYP_BLKFILTER_H
#define HYP_BLKFILTER_H

#include "maps.h"

/* Map the filter and build it from what the four tries hold (a walk of each). Without it (the map
 * cannot be mapped, no memory, the tries cannot be read) every bit is cleared and the datapath looks
 * every source up, as before the filter: logged, 0. -errno only if the bits could not be cleared
 * (a re-adopted map's stale bits could hide a ban): the datapath must not run then. */
int blkf_open(struct hyp_dp *dp);
void blkf_close(struct hyp_dp *dp);
/* Recount every block from the tries' contents and rewrite every bit. */
int blkf_rebuild(struct hyp_dp *dp);
/* Clear every bit (the datapath looks every source up, as without a filter) until blkf_rebuild(),
 * which starts with it; benchmarks use it to measure the lookups the filter saves. */
void blkf_clear(struct hyp_dp *dp);
/* An entry c of the ban (ban) or allow trie is about to be written (delta +1, before the write) or
 * was deleted, or its write failed or replaced an entry (delta -1, after). A no-op without a filter. */
void blkf_cover(struct hyp_dp *dp, bool ban, const struct hyp_cidr *c, int delta);
/* Is the bit of addr's block set (no entry of that trie covers it)? For tests. */
bool blkf_none(const struct hyp_dp *dp, bool ban, __u8 family, const __u8 *addr);

#endif
