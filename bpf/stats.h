/* Verdict accounting: one stat[] entry of the books per packet, at its exit (xdp_verdict), so
 * seen == sum(stat). */
#ifndef HYP_STATS_H
#define HYP_STATS_H

static __always_inline bool stats_is_drop(int reason)
{
	return reason >= HYP_R_DROP_BANNED && reason <= HYP_R_DROP_SIG;
}

/* Count the packet under stat[idx] of this CPU's books b. Returns false for an idx past the entries,
 * which no reason makes; the caller turns that into XDP_ABORTED. */
static __always_inline bool stats_count(struct hyp_books *b, __u32 idx, __u32 len)
{
	if (idx >= HYP_STATS_ENTRIES)
		return false;
	b->stat[idx].packets += 1;      /* per-CPU entry: no atomics needed */
	b->stat[idx].bytes += len;
	return true;
}

#endif /* HYP_STATS_H */
