/* Every map of the datapath, in one place: names are the pin names user space sees. */
#ifndef HYP_MAPS_H
#define HYP_MAPS_H

/* Sizes are defaults; the loader may resize before load (bpf_map__set_max_entries). */
#ifndef HYP_FLOWS_MAX
#define HYP_FLOWS_MAX 524288      /* established flows */
#endif
#ifndef HYP_FLOWS_NEW_MAX
#define HYP_FLOWS_NEW_MAX 131072  /* half-open / unreplied flows: a SYN flood evicts only these */
#endif
#ifndef HYP_BANS_MAX
#define HYP_BANS_MAX 262144       /* per family */
#endif
#ifndef HYP_ALLOW_MAX
#define HYP_ALLOW_MAX 16384       /* per family */
#endif
#ifndef HYP_SRC_MAX
#define HYP_SRC_MAX 65536         /* rate-limit and sampling state per source */
#endif
#ifndef HYP_RINGBUF_BYTES
#define HYP_RINGBUF_BYTES (1 << 20)
#endif

/* [HYP_GEN_ACTIVE]: the active generation; [HYP_GEN_EPOCH]: the state epoch (bpf/vcache.h) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HYP_GEN_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HYP_GENERATIONS);
	__type(key, __u32);
	__type(value, struct hyp_config);
} policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HYP_FLOWS_MAX);
	__type(key, struct hyp_flow_key);
	__type(value, struct hyp_flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HYP_FLOWS_NEW_MAX);
	__type(key, struct hyp_flow_key);
	__type(value, struct hyp_flow);
} flows_new SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, HYP_BANS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct hyp_lpm4_key);
	__type(value, struct hyp_ban);
} bans4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, HYP_BANS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct hyp_lpm6_key);
	__type(value, struct hyp_ban);
} bans6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, HYP_ALLOW_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct hyp_lpm4_key);
	__type(value, struct hyp_allow);
} allow4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, HYP_ALLOW_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct hyp_lpm6_key);
	__type(value, struct hyp_allow);
} allow6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HYP_SRC_MAX);
	__type(key, struct hyp_src_key);
	__type(value, struct hyp_rl);
} rl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HYP_SRC_MAX);
	__type(key, struct hyp_sample_key);
	__type(value, struct hyp_sample);
} ev_sample SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HYP_GENERATIONS * HYP_SIG_MAX);
	__type(key, __u32);
	__type(value, struct hyp_sig);
} sigs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HYP_GENERATIONS * HYP_DFA_STATES_MAX);
	__type(key, __u32);
	__type(value, struct hyp_dfa_row);
} dfa SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HYP_GENERATIONS * HYP_DFA_STATES_MAX);
	__type(key, __u32);
	__type(value, struct hyp_dfa_out);
} dfa_out SEC(".maps");

/* This CPU's counters, verdict statistics and coarse-clock cache (lib/hyperion_abi.h: struct hyp_books). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hyp_books);
} books SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, HYP_RINGBUF_BYTES);
} events SEC(".maps");

/* Per-CPU scratch (datapath-internal, not pinned by contract): values are built here instead of on the
 * BPF stack, whose 512 bytes the whole pipeline, the scanner's callbacks included, must share. One
 * packet uses it for one value at a time (a new rate-limit entry, then a new flow, then a new sampling
 * entry), so one slot the size of the largest (struct hyp_flow) serves all. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hyp_flow);
} scratch_dp SEC(".maps");

/* Suppression cache in front of ev_sample (datapath-internal): a source whose event bucket is empty
 * is remembered here with the time its next token is due, so a flood of its events costs one array
 * lookup instead of an LRU hash lookup each. Shared by all CPUs (pending is added atomically), so the
 * suppressed count does not depend on which CPU a packet lands on. HYP_EV_CACHE_SLOTS slots, picked
 * by a hash of the key; a colliding key flushes the slot's pending count to its owner first. */
#ifndef HYP_EV_CACHE_SLOTS
#define HYP_EV_CACHE_SLOTS 256
#endif
struct hyp_ev_cache {
	struct hyp_sample_key key;
	__u32 pad;
	__u64 pending;              /* suppressed here, not yet added to the ev_sample entry (64-bit:
				     * clang 14 has no 32-bit atomic exchange for BPF without -mcpu=v3) */
	__u64 until_ns;             /* the key's bucket has no token before this time */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HYP_EV_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct hyp_ev_cache);
} ev_cache SEC(".maps");

/* Ban/allow pre-filter (lib/hyperion_abi.h HYP_BLKF_*, bpf/blocklist.h): written by user space only,
 * through mmap (runtime/blkfilter.c), so that a ban written clears its block's bit with one store. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HYP_BLKF_TRIES * HYP_BLKF_WORDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} blk_filter SEC(".maps");

/* Verdict cache (datapath-internal, bpf/vcache.h): per-CPU, so a hit is a few loads with no helper
 * call and no shared cache line; HYP_VCACHE_SLOTS entries of 64 bytes (64 KiB per CPU), direct-mapped
 * by a hash of the key (a collision replaces the older entry; the ban or the flow still holds the verdict).
 * Its entry, struct hyp_vcache, is in the ABI header: user space reads the counts pass entries hold. */
#ifndef HYP_VCACHE_SLOTS
#define HYP_VCACHE_SLOTS 1024
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HYP_VCACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct hyp_vcache);
} vcache SEC(".maps");

/* SYN cookie secret (bpf/syncookie.h): one entry, filled with random bytes by user space when it finds
 * it zero (runtime/maps.c cookie_key_init), pinned so cookies outlive a daemon restart. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hyp_cookie_key);
} cookie_key SEC(".maps");

/* Work slot of the SYN cookie code (datapath-internal, bpf/syncookie.h): global functions whose stack
 * adds to the pipeline's, and the tail-called hyp_xdp_syn, see the packet and keep their buffers here. */
struct hyp_sc_opts {
	__u32 tsval;
	__u32 tsecr;
	__u16 mss;                  /* 0: no MSS option */
	__u8 wscale;                /* HYP_COOKIE_WSCALE_NONE: no window scale option */
	__u8 sack;
	__u8 ts;
	__u8 pad[3];
};

struct hyp_sc_work {
	__u64 opt[5];               /* the segment's TCP options (40 bytes at most) */
	struct hyp_sc_opts o;       /* what they say */
	__u32 i;                    /* option walk: offset of the next option, */
	__u32 len;                  /* and bytes of options */
	__u32 isn;                  /* SYN: the cookie; ACK: its options byte */
	__u32 mss;                  /* SYN: the MSS our reply announces (sc_syn_handoff), */
	__u32 tsval;                /* the TSval it carries, */
	__u16 l3;                   /* SYN: offsets of its IP and TCP headers (hyp_xdp_syn), */
	__u16 l4;
	__u64 l2[3];                /* SYN: the L2 header, while the reply grows at the head */
	__u8 saddr[16];             /* the segment's addresses (IPv4: first 4 bytes, the rest zero), */
	__u8 daddr[16];
	__u16 sport;                /* ports (network order) */
	__u16 dport;
	__u32 seq;                  /* and sequence number (host order) */
	__u8 family;
	__u8 pad;
	__u16 pkt_len;              /* SYN: and the received frame's length (stats; a linear XDP frame
				     * is at most a page), */
	__u32 tick;                 /* and the cookie's tick (now >> HYP_COOKIE_TICK_SHIFT < 2^28) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hyp_sc_work);
} sc_work SEC(".maps");

/* TCP 4-tuples that closed into TIME_WAIT lately (datapath-internal, bpf/syncookie.h sc_closed_*): a SYN
 * reusing one goes to the stack rather than getting a cookie. Buckets of HYP_SC_CLOSED_WAYS 16-bit
 * marks chosen by a hash of the tuple; 2048 buckets (16 KiB, shared by all CPUs: written once per
 * connection the local side closes, read once per SYN). At most 32 KiB, so the kernel allocates it in
 * its direct map (kmalloc) rather than with vmalloc: no TLB miss per SYN. */
#define HYP_SC_CLOSED_BUCKETS 2048
#define HYP_SC_CLOSED_WAYS 4
struct hyp_sc_closed {
	__u16 mark[HYP_SC_CLOSED_WAYS];  /* time << 8 | tag; 0 = empty */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HYP_SC_CLOSED_BUCKETS);
	__type(key, __u32);
	__type(value, struct hyp_sc_closed);
} sc_closed SEC(".maps");

#endif /* HYP_MAPS_H */
