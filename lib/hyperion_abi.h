/* Hyperion ABI: every map key/value and event struct shared by bpf/, runtime/ and Lua (ffi.cdef). */
#ifndef HYPERION_ABI_H
#define HYPERION_ABI_H
/*
 * Rules for this file (it is read by clang -target bpf, gcc and LuaJIT's ffi.cdef alike):
 *  - between ABI-BEGIN and ABI-END: no macros, no bitfields, no includes; only fixed-width
 *    __u8/__u16/__u32/__u64 types, enums and structs. Lua strips '#' lines and reads the rest verbatim.
 *  - explicit padding, append-only: never reorder or resize a field, add new ones at the end.
 *  - every limit is an enum constant here so all three sides agree on it.
 * Byte order: addresses and ports are stored as they are on the wire (network order), counters and
 * times in host order. Times are CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns) unless named _s.
 */
#if defined(__bpf__)
/* vmlinux.h already provides __u8..__u64 */
#elif defined(__KERNEL__) || defined(__linux__)
#include <linux/types.h>
#endif

/* ABI-BEGIN */

enum hyp_limits {
	HYP_ABI_VERSION = 1,
	HYP_ADDR_LEN = 16,          /* IPv4 uses the first 4 bytes, the rest are zero */
	HYP_SIG_MAX = 256,          /* signatures per generation */
	HYP_PATTERN_MAX = 64,       /* bytes per signature pattern */
	HYP_SIG_PORTS_MAX = 8,      /* destination ports a signature may be scoped to */
	HYP_SIG_NAME_MAX = 48,      /* signature name, NUL-terminated (user space only) */
	HYP_DFA_STATES_MAX = 24576, /* automaton states per generation; ids fit in 15 bits */
	HYP_DFA_ACCEPT = 32768,     /* bit set in a transition whose target state reports a match */
	HYP_DFA_STATE_MASK = 32767,
	HYP_STATE_OUT_MAX = 8,      /* signatures reported by one accepting state */
	HYP_SCAN_DEPTH_MAX = 1536,  /* ceiling for config.scan_depth (bytes scanned per packet) */
	HYP_SCAN_DEPTH_DEFAULT = 256,
	HYP_EV_PAYLOAD = 64,        /* payload bytes captured into an event */
	HYP_GENERATIONS = 2,        /* double-buffered config/signatures */
	HYP_VLAN_MAX = 2,           /* 802.1Q + QinQ; more tags is a drop (HYP_R_DROP_VLAN_DEPTH) */
	HYP_IPV6_EXT_MAX = 6,       /* extension headers walked; longer chains are dropped */
	HYP_PORT_WORDS = 1024,      /* 65536-bit port bitmap as 64-bit words */
	HYP_GEN_ACTIVE = 0,         /* map "gen" slots: the active generation, and the state epoch that */
	HYP_GEN_EPOCH = 1,          /* user space bumps it after every ban written or removed, allowlist entry
				     * added, flow removed and generation flip (bpf/vcache.h) */
	HYP_GEN_SLOTS = 2,
	HYP_VCACHE_TTL_S = 1,       /* a cached flow drop is re-judged by conntrack at least this often */
	HYP_COOKIE_MAGIC = 1213809483, /* 0x4859434b "HYCK": struct hyp_cookie_meta in front of a cookie ACK */
	HYP_COOKIE_WSCALE = 7,      /* window scale our SYN-ACK announces (Linux's with default buffers) */
	HYP_COOKIE_WSCALE_NONE = 15,/* in a cookie: the client sent no window scale option */
	HYP_COOKIE_MSS4 = 1460,     /* MSS our SYN-ACK announces when config.cookie_mss is 0 (IPv4; */
	HYP_COOKIE_MSS6 = 1440      /* IPv6): a 1500-byte MTU */
};

enum hyp_family {
	HYP_AF_INET = 4,
	HYP_AF_INET6 = 6
};

/* Verdict reasons: one table for the datapath, metrics and Lua. Every packet ends in exactly one. */
enum hyp_reason {
	HYP_R_PASS_FLOW = 0,        /* packet of a known flow */
	HYP_R_PASS_NEW = 1,         /* opened a new flow */
	HYP_R_PASS_ALLOW = 2,       /* source on the allowlist */
	HYP_R_PASS_NONIP = 3,       /* ARP, LLDP, ...: not ours to judge */
	HYP_R_PASS_OTHER = 4,       /* IP protocol we do not track (GRE, ESP, SCTP, ...) */
	HYP_R_PASS_FRAG = 5,        /* non-first fragment, fragment policy "pass" */
	HYP_R_PASS_ICMP = 6,        /* ICMP/ICMPv6 error or control message */
	HYP_R_PASS_ALERT = 7,       /* signature with action alert matched */
	HYP_R_PASS_EGRESS = 8,      /* seen by the tc egress program */
	HYP_R_DROP_BANNED = 9,      /* source in a ban list */
	HYP_R_DROP_MALFORMED_L2 = 10,
	HYP_R_DROP_VLAN_DEPTH = 11,
	HYP_R_DROP_MALFORMED_L3 = 12, /* truncated IP header, IHL < 5 or past the packet, bad version */
	HYP_R_DROP_EXT_CHAIN = 13,  /* IPv6 extension chain longer than HYP_IPV6_EXT_MAX or truncated */
	HYP_R_DROP_MALFORMED_L4 = 14, /* truncated TCP/UDP/ICMP header, TCP doff < 5 or past the packet */
	HYP_R_DROP_FRAG = 15,       /* non-first fragment, fragment policy "drop" */
	HYP_R_DROP_INVALID = 16,    /* TCP packet that belongs to no flow, bad flag combination */
	HYP_R_DROP_PORT = 17,       /* new inbound flow to a port that is not allowed */
	HYP_R_DROP_RATE_SYN = 18,   /* per-source new-connection bucket empty */
	HYP_R_DROP_RATE_PPS = 19,   /* per-source packet bucket empty */
	HYP_R_DROP_SIG = 20,        /* signature with action drop or ban matched */
	HYP_R_ABORTED = 21,         /* internal error (map lookup that cannot fail did): XDP_ABORTED */
	HYP_R_TX_SYNCOOKIE = 22,    /* TCP SYN answered with a SYN cookie SYN-ACK (XDP_TX): no state kept */
	HYP_R_MAX = 23
};

/* The verdict statistics (struct hyp_books stat[]) hold HYP_R_MAX entries for real verdicts, then HYP_R_MAX
 * for monitor mode: index HYP_STATS_MONITOR + r counts packets that would have been dropped for r but
 * passed. */
enum hyp_stats_layout {
	HYP_STATS_MONITOR = 23,
	HYP_STATS_ENTRIES = 46
};

/* One verdict's packets and bytes (struct hyp_books stat[]). */
struct hyp_stat {
	__u64 packets;
	__u64 bytes;
};

/*
 * The express lane (bpf/express.h) books a hit once, in struct hyp_books xp[] under its kind, and user
 * space folds it into what it stands for (books_fold()): the verdict's stat[] entry, and the counters
 * seen, vcache_hit and vcache_express; a drop's suppressed event also counts in ev_sampled. One add
 * of packets and one of bytes instead of six (bench/micro: ~0.6 ns of a ~10 ns hit).
 */
enum hyp_xp {
	HYP_XP_BANNED = 0,          /* HYP_R_DROP_BANNED, event suppressed */
	HYP_XP_SIG = 1,             /* HYP_R_DROP_SIG, event suppressed */
	HYP_XP_PASS = 2,            /* HYP_R_PASS_FLOW */
	HYP_XP_MAX = 3
};

/* struct hyp_books xp_flags: what the config the cache entries were made under lets the lane answer. */
enum hyp_xp_flags {
	HYP_XPF_ANSWER = 1,         /* verdict cache on with its express lane, not monitor mode */
	HYP_XPF_EV_SAMPLED = 2      /* events sampled (ev_rate): a drop's event can be suppressed by its entry */
};

/* Plain per-CPU counters (struct hyp_books counter[]), indexed by this enum. */
enum hyp_counter {
	HYP_C_SEEN = 0,             /* packets entering the XDP program */
	HYP_C_EGRESS_SEEN = 1,      /* packets entering the tc egress program */
	HYP_C_EV_SUBMITTED = 2,     /* events written to the ring buffer */
	HYP_C_EV_LOST = 3,          /* events dropped: ring buffer full */
	HYP_C_EV_SAMPLED = 4,       /* events suppressed by per-source sampling */
	HYP_C_CT_NEW_INSERT = 5,    /* inserts into flows_new */
	HYP_C_CT_NEW_DELETE = 6,    /* deletes from flows_new (promotion, close, expiry) */
	HYP_C_CT_EST_INSERT = 7,    /* inserts into flows */
	HYP_C_CT_EST_DELETE = 8,    /* deletes from flows (close, expiry) */
	HYP_C_CT_PICKUP = 9,        /* mid-stream pickups confirmed by a local socket */
	HYP_C_CT_EXPIRED = 10,      /* flows found expired by the datapath */
	HYP_C_SCAN_BYTES = 11,      /* payload bytes stepped through the automaton */
	HYP_C_SCAN_SKIPPED = 12,    /* packets not scanned: stream depth reached */
	HYP_C_GEN_MISMATCH = 13,    /* flow automaton state reset after a signature reload */
	HYP_C_VCACHE_HIT = 14,      /* packets answered by the per-CPU verdict cache (bpf/vcache.h) */
	HYP_C_COOKIE_SENT = 15,     /* SYN-ACKs with a SYN cookie sent from XDP (bpf/syncookie.h) */
	HYP_C_COOKIE_VALID = 16,    /* ACKs with a valid cookie: flow opened, handed to tc ingress */
	HYP_C_COOKIE_INVALID = 17,  /* ACKs without a flow whose cookie did not verify */
	HYP_C_COOKIE_FALLBACK = 18, /* SYNs the cookie path could not answer (IP options, no room): stack */
	HYP_C_COOKIE_ASSIGNED = 19, /* tc ingress: cookie ACK turned into a request socket of the listener */
	HYP_C_COOKIE_NO_LISTENER = 20, /* tc ingress: no listening socket for a cookie ACK (stack resets) */
	HYP_C_COOKIE_ASSIGN_FAIL = 21, /* tc ingress: the kernel refused the request socket */
	HYP_C_COOKIE_TIME_WAIT = 22, /* SYNs left to the stack: the local side closed their tuple < 69 s ago */
	HYP_C_VCACHE_EXPRESS = 23,  /* of vcache_hit: answered by the express lane (bpf/express.h) */
	HYP_C_MAX = 24
};

/*
 * The datapath's books, value of the per-CPU map "books" (one entry): every counter, every verdict's
 * packets and bytes, and the coarse-clock cache, in one value per CPU, so that a packet reaches all it
 * books through one lookup. Each lookup of a per-CPU array is a bounds check, a load of the element's
 * per-CPU pointer and the CPU's offset; the verdict cache's hit paths paid six (four counters, one
 * stats entry, the clock), ~20 % of their cost (bench/micro). Per-CPU, so every update is a plain add;
 * user space sums the CPUs' copies (stats_read()). seen == the sum of stat[] over all entries once
 * the express lane's hits are folded in (xp[], books_fold()).
 * A counter or a reason appended to its enum moves the fields after it: the value size changes, and
 * the loader refuses to re-adopt a pinned books map of another size (README "Notes and known limits").
 */
struct hyp_books {
	__u64 counter[HYP_C_MAX];
	struct hyp_stat stat[HYP_STATS_ENTRIES];
	__u64 clock_jiffies;        /* datapath-internal: hyp_now()'s coarse clock as last read on this */
	__u64 clock_ns;             /* CPU, and the jiffies count it was read at (0: read it again) */
	struct hyp_stat xp[HYP_XP_MAX]; /* the express lane's hits (enum hyp_xp) */
	__u64 xp_clock_offset_ns;   /* datapath-internal: the config the newest verdict cache entry of this */
	__u16 xp_flags;             /* CPU was made under, as far as the express lane needs it (bpf/vcache.h
				     * vc_note_config): its clock offset, enum hyp_xp_flags */
	__u16 xp_src_first;         /* datapath-internal: the lane probes the source entry first (xp_probe) */
	__u32 xp_pad;
};

enum hyp_event_kind {
	HYP_EV_MATCH = 1,           /* signature matched (any action) */
	HYP_EV_BLOCK = 2,           /* packet from a banned source dropped */
	HYP_EV_INVALID = 3,         /* malformed or out-of-state packet */
	HYP_EV_RATELIMIT = 4,       /* per-source rate limit exceeded */
	HYP_EV_FLOW_NEW = 5,        /* a new flow was created */
	HYP_EV_FLOW_END = 6,        /* a flow closed (FIN/RST) or expired */
	HYP_EV_POLICY = 7,          /* new flow refused by the port policy */
	HYP_EV_KIND_MAX = 8
};

enum hyp_verdict {
	HYP_V_PASS = 0,
	HYP_V_DROP = 1,
	HYP_V_MONITOR = 2,          /* would have dropped, passed because mode is monitor */
	HYP_V_ABORTED = 3,
	HYP_V_TX = 4                /* answered by the datapath itself (XDP_TX): a SYN cookie */
};

enum hyp_ct_state {
	HYP_CT_NONE = 0,
	HYP_CT_SYN_SENT = 1,
	HYP_CT_SYN_RECV = 2,
	HYP_CT_ESTABLISHED = 3,
	HYP_CT_FIN_WAIT = 4,        /* originator sent FIN first */
	HYP_CT_CLOSE_WAIT = 5,      /* responder sent FIN first */
	HYP_CT_TIME_WAIT = 6,       /* both sides sent FIN */
	HYP_CT_CLOSED = 7,          /* RST seen */
	HYP_CT_UDP = 8,             /* UDP pseudo-flow, unreplied */
	HYP_CT_UDP_REPLIED = 9,     /* UDP pseudo-flow, traffic seen both ways */
	HYP_CT_ICMP = 10,           /* ICMP echo pseudo-flow */
	HYP_CT_STATE_MAX = 11
};

enum hyp_mode {
	HYP_MODE_ENFORCE = 0,
	HYP_MODE_MONITOR = 1
};

/* How a TCP packet that belongs to no flow is treated (nf_conntrack_tcp_loose equivalent). */
enum hyp_pickup {
	HYP_PICKUP_SOCKET = 0,      /* default: pick up only if a local socket owns the 4-tuple */
	HYP_PICKUP_STRICT = 1,      /* drop as INVALID */
	HYP_PICKUP_GRACE = 2        /* pick up anything until start_ns + pickup_grace_ns, then SOCKET */
};

enum hyp_frag_policy {
	HYP_FRAG_PASS = 0,          /* default: first fragment is judged, later ones pass */
	HYP_FRAG_DROP = 1
};

enum hyp_sig_action {
	HYP_ACT_ALERT = 0,          /* report, pass */
	HYP_ACT_DROP = 1,           /* report, drop */
	HYP_ACT_BAN = 2             /* report for ban, drop */
};

enum hyp_sig_flags {
	HYP_SIGF_NOCASE = 1
};

/* flow flags */
enum hyp_flow_flags {
	HYP_FF_INBOUND = 1,         /* originated by a remote peer (seen first on XDP ingress) */
	HYP_FF_PICKUP = 2,          /* picked up mid-stream */
	HYP_FF_SCAN_DONE_0 = 4,     /* stream depth reached, direction 0 */
	HYP_FF_SCAN_DONE_1 = 8,     /* stream depth reached, direction 1 */
	HYP_FF_FIN_0 = 16,          /* FIN seen from endpoint a */
	HYP_FF_FIN_1 = 32,          /* FIN seen from endpoint b */
	HYP_FF_ESTABLISHED_MAP = 64,/* entry lives in flows (not flows_new) */
	HYP_FF_DROP = 128           /* a drop signature matched: every later packet from a side in
				     * drop_dirs is dropped as that signature (drop_sig) for the flow's life */
};

enum hyp_flow_flags2 {
	HYP_FF2_COOKIE = 1          /* opened by a SYN cookie ACK: until the server sends, the client's
				     * segments re-offer the cookie to tc ingress (the first ACK may be lost
				     * on the way to the listener) */
};
/*
 * Flow key, canonical: endpoint a is the (addr, port) pair that compares lower (memcmp of addr, then
 * port), so both directions of a connection hash to the same entry with one lookup.
 * ICMP echo: port_a = port_b = echo identifier.
 */
struct hyp_flow_key {
	__u8 addr_a[16];
	__u8 addr_b[16];
	__u16 port_a;
	__u16 port_b;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* Direction index d: 0 = packet from endpoint a, 1 = from endpoint b. */
struct hyp_flow {
	__u64 created_ns;
	__u64 last_seen_ns;
	__u64 packets[2];
	__u64 bytes[2];
	__u32 next_seq[2];          /* expected next TCP sequence per direction (in-order check) */
	__u32 scanned[2];           /* payload bytes inspected per direction (stream depth) */
	__u16 dfa_state[2];         /* automaton state carried across segments, per direction */
	__u8 state;                 /* enum hyp_ct_state */
	__u8 orig;                  /* direction index of the originator */
	__u8 flags;                 /* enum hyp_flow_flags */
	__u8 dfa_gen;               /* generation dfa_state belongs to */
	__u16 drop_sig;             /* HYP_FF_DROP: the first match's signature id (< HYP_SIG_MAX), */
	__u8 drop_dirs;             /* the directions dropped (bit d: direction index d sent a match), */
	__u8 drop_action;           /* the signature's action (enum hyp_sig_action), */
	__u16 drop_serial;          /* and the config serial drop_sig is an id under */
	__u8 flags2;                /* enum hyp_flow_flags2 */
	__u8 vc_cpus;               /* CPUs (bit cpu % 8) that cached this flow on the fast path since it
				     * last settled (bpf/vcache.h; datapath-internal) */
};

/* Ban lists: LPM tries keyed by prefix length + address. */
struct hyp_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct hyp_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct hyp_ban {
	__u64 expires_ns;           /* CLOCK_MONOTONIC; 0 = never */
	__u64 created_ns;
	__u32 reason;               /* free-form code chosen by user space (reason text lives there) */
	__u32 hits;                 /* packets dropped; racy increment, and under a flood up to 63 per CPU
				     * behind (verdict cache): approximate */
};

struct hyp_allow {
	__u64 created_ns;
	__u32 flags;
	__u32 pad;
};

/* Per-source state for rate limits (LRU hash "rl"), keyed by source address (IPv6: /64 by default). */
struct hyp_src_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};

struct hyp_rl {
	__u64 syn_tokens;           /* nano-tokens: 1e9 per token */
	__u64 syn_last_ns;
	__u64 pps_tokens;
	__u64 pps_last_ns;
	__u32 syn_rate;             /* per-source override, conn/s; 0 = use config */
	__u32 pps_rate;             /* per-source override, packets/s; 0 = use config */
};

/* Per-source, per-kind event sampling state (LRU hash "ev_sample"). */
struct hyp_sample_key {
	__u8 addr[16];
	__u8 family;
	__u8 kind;
	__u8 pad[2];
};

struct hyp_sample {
	__u64 tokens;               /* nano-tokens, refilled at config.ev_rate per second */
	__u64 last_ns;
	__u32 suppressed;           /* events suppressed since the last one delivered */
	__u32 pad;
};

/* Signature metadata, array "sigs" indexed by gen * HYP_SIG_MAX + id. */
struct hyp_sig {
	__u32 id;
	__u8 action;                /* enum hyp_sig_action */
	__u8 proto;                 /* IPPROTO_TCP/UDP/ICMP/ICMPV6, 0 = any */
	__u8 flags;                 /* enum hyp_sig_flags */
	__u8 nports;                /* 0 = any destination port */
	__u16 ports[8];             /* HYP_SIG_PORTS_MAX, host order */
	__u8 active;
	__u8 pad[3];
};

/* One automaton state: next state per input byte (| HYP_DFA_ACCEPT if that state reports a match).
 * Array "dfa" indexed by gen * HYP_DFA_STATES_MAX + state. State 0 is the start state. */
struct hyp_dfa_row {
	__u16 next[256];
};

/* Signatures an accepting state reports, array "dfa_out" indexed like "dfa". Unused slots are 0xffff. */
struct hyp_dfa_out {
	__u16 sig[8];               /* HYP_STATE_OUT_MAX */
};

/* hyp_config.vcache: the per-CPU verdict cache (bpf/vcache.h) and its express lane (bpf/express.h). */
enum hyp_vcache_mode {
	HYP_VCACHE_OFF = 0,
	HYP_VCACHE_ON = 1,          /* hits answered by the express lane where it can */
	HYP_VCACHE_NO_EXPRESS = 2,  /* every hit through the pipeline: tests/bpf/test_express.c compares the two */
};

/* Policy, array "policy" indexed by generation; array "gen" entry 0 holds the active generation. */
struct hyp_config {
	__u32 mode;                 /* enum hyp_mode */
	__u32 pickup;               /* enum hyp_pickup */
	__u32 frag_policy;          /* enum hyp_frag_policy */
	__u32 scan_depth;           /* bytes scanned per packet, <= HYP_SCAN_DEPTH_MAX; 0 = no scanning */
	__u32 stream_depth;         /* bytes scanned per flow direction before the fast path; 0 = unlimited */
	__u32 nsigs;                /* signatures in this generation */
	__u32 dfa_states;           /* automaton states in this generation (0 = no automaton) */
	__u32 syn_rate;             /* new TCP connections/s per source; 0 = unlimited */
	__u32 syn_burst;
	__u32 pps_rate;             /* packets/s per source; 0 = unlimited */
	__u32 pps_burst;
	__u32 ev_rate;              /* events/s per source and kind; 0 = no sampling */
	__u32 ev_burst;
	__u32 rl_v6_prefix;         /* IPv6 sources are rate-limited per prefix of this length (default 64) */
	__u32 capture_len;          /* payload bytes copied into events, <= HYP_EV_PAYLOAD */
	__u32 tcp_all_open;         /* 1: every TCP port accepts new inbound flows */
	__u32 udp_all_open;         /* 1: every UDP port accepts new inbound flows */
	__u8 vcache;                /* enum hyp_vcache_mode: repeated verdicts answered from the per-CPU cache */
	__u8 syn_cookies;           /* 1: inbound SYNs to open TCP ports answered with SYN cookies in XDP */
	__u16 serial;               /* set by user space: one more than the previous config's, every apply */
	__u64 timeout_ns[11];       /* per enum hyp_ct_state (HYP_CT_STATE_MAX) */
	__u64 clock_offset_ns;      /* added to bpf_ktime_get_ns(); lets tests age flows and bans */
	__u64 start_ns;             /* when the daemon started (for HYP_PICKUP_GRACE) */
	__u64 pickup_grace_ns;
	__u64 tcp_ports[1024];      /* HYP_PORT_WORDS: bit p set = TCP port p open for new inbound flows */
	__u64 udp_ports[1024];
	__u32 cookie_mss;           /* MSS announced in cookie SYN-ACKs (IPv6: 20 less); 0 = HYP_COOKIE_MSS4/6 */
	__u32 pad1;
};
/* Secret of the SYN cookie MAC (array "cookie_key", one entry): random, set by user space when zero. */
struct hyp_cookie_key {
	__u64 k[2];
};
/* XDP metadata in front of an ACK whose cookie verified: what tc ingress needs to build the request
 * socket (the L4 offset is relative to the network header, which VLAN untagging does not move). */
struct hyp_cookie_meta {
	__u32 magic;                /* HYP_COOKIE_MAGIC */
	__u32 tsval;                /* the ACK's timestamp option, if the cookie says timestamps are on */
	__u32 tsecr;
	__u16 mss;                  /* the client's MSS, from the cookie */
	__u16 l4_rel;               /* TCP header offset from the network header */
	__u8 family;                /* enum hyp_family */
	__u8 snd_wscale;            /* the client's window scale, HYP_COOKIE_WSCALE_NONE if it sent none */
	__u8 flags;                 /* bit 0: SACK permitted, bit 1: timestamps */
	__u8 pad;
};

/* Ring-buffer event, fixed layout. */
struct hyp_event {
	__u64 ts_ns;                /* CLOCK_MONOTONIC */
	__u8 saddr[16];             /* packet source */
	__u8 daddr[16];
	__u16 sport;                /* network order */
	__u16 dport;
	__u8 kind;                  /* enum hyp_event_kind */
	__u8 proto;                 /* IPPROTO_* */
	__u8 family;                /* enum hyp_family */
	__u8 verdict;               /* enum hyp_verdict */
	__u8 reason;                /* enum hyp_reason */
	__u8 state;                 /* enum hyp_ct_state of the flow, if any */
	__u8 dir;                   /* 0 ingress (XDP), 1 egress (tc) */
	__u8 action;                /* enum hyp_sig_action for matches */
	__u32 sig;                  /* signature id for matches, else HYP_EV_NO_SIG (0xffffffff) */
	__u32 ifindex;
	__u32 suppressed;           /* events of this kind from this source suppressed before this one */
	__u32 payload_len;          /* valid bytes in payload */
	__u32 pkt_len;              /* length of the packet on the wire */
	__u64 packets;              /* flow_end: packets both ways */
	__u64 bytes;                /* flow_end: bytes both ways */
	__u8 payload[64];           /* HYP_EV_PAYLOAD: first bytes of the L4 payload (matches) */
};

/* ABI-END */

/* hyp_event.sig when there is none (not a match, or a flow dropped under an earlier config whose
 * signature ids no longer apply). Lua, which cannot read macros, has its own SIG_NONE. */
#define HYP_EV_NO_SIG 0xffffffffu

/*
 * Verdict cache entry (bpf/vcache.h, map "vcache"). Datapath-internal, outside the Lua ABI; defined here
 * because the runtime reads the packets and bytes pass entries counted and have not yet carried to their
 * flow (runtime/vcache.c, for flow_lookup and flow_foreach). A pass entry's action is one of enum hyp_vc_pass; what it
 * lets through without conntrack: packets without payload (HYP_VC_PASS), and with payload too once the
 * direction is past its stream depth (HYP_VC_PASS_DEPTH: counted scan_skipped) or nothing is scanned
 * (HYP_VC_PASS_NOSCAN).
 */
enum hyp_vc_pass {
	HYP_VC_PASS = 0x80,
	HYP_VC_PASS_DEPTH = 0x81,
	HYP_VC_PASS_NOSCAN = 0x82,
};

struct hyp_vcache {
	__u8 saddr[16];             /* key: the sending side's 5-tuple (flow entry), or */
	__u8 daddr[16];             /* the source alone, the rest zero (source entry) */
	__u16 sport;
	__u16 dport;
	__u8 proto;                 /* 0: a source entry */
	__u8 family;
	__u8 action;                /* drop entry: the flow's drop signature's action; pass entry: hyp_vc_pass */
	__u8 state;                 /* drop entry: the flow's conntrack state when cached (for events) */
	union {
		__u32 sig;          /* drop entry: the flow's drop signature */
		__u32 bytes;        /* pass entry: bytes passed here, not yet carried to the flow */
	};
	__u32 serial;               /* made under this config serial, */
	__u32 epoch;                /* and this state epoch */
	__u8 hits;                  /* source entry: ban hits counted here, not yet carried to the ban;
				     * pass entry: packets passed here, not yet carried to the flow */
	__u8 ev_pending;            /* events this entry suppressed, not yet handed to ev_cache/ev_sample */
	__u16 ev_early;             /* the entry's events are suppressed until until_ns minus this many
				     * 2^HYP_VCACHE_EV_SHIFT ns (bpf/vcache.h vc_ev) */
	__u64 until_ns;             /* datapath clock; 0 = empty */
};

/* The hash that places a verdict cache entry (bpf/vcache.h vc_slot_of), shared with user space, which
 * reads a flow's two entries (runtime/vcache.c): a multiplicative hash of the key's folded words, top bits
 * (the best mixed); the caller masks it by the slot count, a power of two. A source entry's key has
 * daddr, ports and proto zero (flow 0 leaves them out). hyp_vcache_hash_folded takes each address
 * already folded (the XOR of its four 32-bit words): the express lane (bpf/express.h) folds them from
 * the frame. */
static inline __attribute__((always_inline)) __u32 hyp_vcache_hash_folded(__u32 sfold, __u32 dfold, __u16 sport,
									  __u16 dport, __u8 proto, __u8 family,
									  int flow)
{
	__u32 h = sfold ^ family;

	if (flow)
		h ^= dfold ^ ((__u32)sport << 16 | dport) ^ ((__u32)proto << 8);
	return (h * 2654435761u) >> 16;
}

static inline __attribute__((always_inline)) __u32 hyp_vcache_hash(const __u8 *saddr, const __u8 *daddr,
								   __u16 sport, __u16 dport, __u8 proto,
								   __u8 family, int flow)
{
	const __u32 *w = (const __u32 *)saddr, *d = (const __u32 *)daddr;

	return hyp_vcache_hash_folded(w[0] ^ w[1] ^ w[2] ^ w[3], flow ? d[0] ^ d[1] ^ d[2] ^ d[3] : 0, sport, dport,
				      proto, family, flow);
}

/*
 * Ban/allow pre-filter (map "blk_filter", bpf/blocklist.h blk_none, runtime/blkfilter.c): per trie
 * (enum hyp_blkf_trie), one bit per block of the address space, set when no entry of that trie covers
 * any address of the block; word trie * HYP_BLKF_WORDS + block / 64, bit block % 64. A block is an
 * IPv4 /16, or a bucket of IPv6 /48s (a hash of the /48; an IPv6 entry shorter than /48 covers every
 * bucket). Written by user space only; all zero (no bit set: look everything up) until it does.
 * Datapath-internal, outside the Lua ABI.
 */
#define HYP_BLKF_BITS 16
#define HYP_BLKF_BLOCKS (1u << HYP_BLKF_BITS)
#define HYP_BLKF_WORDS (HYP_BLKF_BLOCKS / 64)
#define HYP_BLKF_V6_PLEN 48
enum hyp_blkf_trie {
	HYP_BLKF_ALLOW4 = 0,
	HYP_BLKF_ALLOW6 = 1,
	HYP_BLKF_BANS4 = 2,
	HYP_BLKF_BANS6 = 3,
	HYP_BLKF_TRIES = 4,
};

/* The block of an address: its IPv4 /16, or its IPv6 /48 hashed (multiplicative, top bits). Read a
 * byte at a time: the same block on either byte order and alignment. */
static inline __attribute__((always_inline)) __u32 hyp_blkf_block(__u8 family, const __u8 *addr)
{
	__u32 hi, lo;

	if (family == HYP_AF_INET)
		return (__u32)addr[0] << 8 | addr[1];
	hi = (__u32)addr[0] << 24 | (__u32)addr[1] << 16 | (__u32)addr[2] << 8 | addr[3];
	lo = (__u32)addr[4] << 8 | addr[5];
	return ((hi ^ lo * 0x9e3779b1u) * 2654435761u) >> (32 - HYP_BLKF_BITS);
}

#if !defined(__bpf__)
_Static_assert(sizeof(struct hyp_flow_key) == 40, "flow key layout");
_Static_assert(sizeof(struct hyp_flow) == 80, "flow layout");
_Static_assert(sizeof(struct hyp_event) == 152, "event layout");
_Static_assert(sizeof(struct hyp_books) % 8 == 0, "per-CPU values are read back in 8-byte slots");
_Static_assert(sizeof(struct hyp_sig) == 28, "sig layout");
_Static_assert(sizeof(struct hyp_cookie_meta) == 20, "cookie meta: a multiple of 4, at most 32 bytes");
_Static_assert(sizeof(struct hyp_dfa_row) == 512, "dfa row layout");
_Static_assert(sizeof(struct hyp_ban) == 24, "ban layout");
_Static_assert(sizeof(struct hyp_rl) == 40, "rl layout");
_Static_assert(sizeof(struct hyp_vcache) == 64, "vcache entry: one cache line");
_Static_assert(sizeof(((struct hyp_config *)0)->timeout_ns) == 8 * HYP_CT_STATE_MAX, "timeouts");
_Static_assert(sizeof(((struct hyp_sig *)0)->ports) == 2 * HYP_SIG_PORTS_MAX, "sig ports");
_Static_assert(sizeof(((struct hyp_dfa_out *)0)->sig) == 2 * HYP_STATE_OUT_MAX, "dfa out");
_Static_assert(sizeof(((struct hyp_event *)0)->payload) == HYP_EV_PAYLOAD, "event payload");
_Static_assert(sizeof(((struct hyp_config *)0)->tcp_ports) == 8 * HYP_PORT_WORDS, "port bitmap");
_Static_assert((int)HYP_STATS_MONITOR == (int)HYP_R_MAX && (int)HYP_STATS_ENTRIES == 2 * (int)HYP_R_MAX,
	       "stats layout");
#endif

#endif /* HYPERION_ABI_H */
