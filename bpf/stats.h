/* Verdict accounting: one stats[] entry per packet, at its exit (xdp_verdict), so seen == sum(stats). */
#ifndef HYP_STATS_H
#define HYP_STATS_H

static __always_inline bool stats_is_drop(int reason)
{
	return reason >= HYP_R_DROP_BANNED && reason <= HYP_R_DROP_SIG;
}

/* Count the packet under stats[idx]. Returns false if the entry is missing, which cannot happen for
 * idx < HYP_STATS_ENTRIES; the caller turns that into XDP_ABORTED. */
static __always_inline bool stats_count(__u32 idx, __u32 len)
{
	struct hyp_stat *s = bpf_map_lookup_elem(&stats, &idx);

	if (!s)
		return false;
	s->packets += 1;        /* per-CPU entry: no atomics needed */
	s->bytes += len;
	return true;
}

#endif /* HYP_STATS_H */
