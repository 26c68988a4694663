/* SYN cookies in XDP: a SYN flood is answered from the driver without state; the ACK that proves the
 * handshake opens the flow and is handed to the listener by tc ingress (bpf_sk_assign_tcp_reqsk). */
#ifndef HYP_SYNCOOKIE_H
#define HYP_SYNCOOKIE_H

/*
 * The cookie is our SYN-ACK's ISN:
 *   bits 31..8  MAC: SipHash-1-3 (key: map cookie_key) of the addresses, ports, the client's ISN, the
 *               time tick and the options byte, upper 24 bits of its low word;
 *   bits  7..0  options byte, in clear (the MAC covers it): MSS index (2 bits), the client's window
 *               scale (4 bits, HYP_COOKIE_WSCALE_NONE = none), SACK permitted, timestamps.
 * The options live in the ISN rather than in the timestamp (the kernel's way), so a client without
 * timestamps (Windows' default) still gets window scaling and SACK. The tick is the datapath clock
 * >> HYP_COOKIE_TICK_SHIFT (68.7 s); a cookie of this tick or the previous one verifies, so it lives
 * 68.7 to 137 s, like the kernel's two minutes. A forged ACK must guess 24 MAC bits.
 */
#define HYP_COOKIE_TICK_SHIFT 36
#define HYP_COOKIE_OPT_MASK 0xffu
/* Our SYN-ACK has a fixed layout: 20-byte TCP header + 20 bytes of options (MSS, SACK_PERM or NOPs,
 * timestamps or NOPs, window scale or NOPs), so the frame length and checksum have no variable part. */
#define HYP_COOKIE_TCP_HLEN 40
#define HYP_COOKIE_WINDOW 65535     /* unscaled window of the SYN-ACK (RFC 7323: never scaled) */
#define HYP_COOKIE_TTL 64
/* Offset of the IP header at most: Ethernet + HYP_VLAN_MAX tags (14 + 2 * 4); the L2 header a reply
 * grown at the head carries over is copied as 24 bytes. */
#define HYP_SC_L2_MAX 22
/* TCP options in a header: at most 40 bytes. */
#define HYP_TCP_OPT_MAX 40
/* Options (NOPs included) read from a SYN before giving up on the rest: every stack's SYN has at most
 * 10 (macOS: MSS, NOP, WS, NOP, NOP, TS, SACK_PERM, EOL). The verifier walks every step, so the bound
 * is small; an option past it is treated as absent (a cookie without it is still a valid handshake). */
#define HYP_SC_OPT_STEPS 12

/* Options byte layout. */
#define SC_OPT_MSS_MASK 0x03u
#define SC_OPT_WS_SHIFT 2
#define SC_OPT_SACK 0x40u
#define SC_OPT_TS 0x80u

/* MSS values a cookie can carry (2 bits); the client's is rounded down to one of them. The smallest
 * are the protocol minimums a sender must accept without an option (RFC 9293; IPv6's 1280 - 60). */
static __always_inline __u16 sc_mss_of(bool v4, __u32 i)
{
	switch (i & SC_OPT_MSS_MASK) {
	case 0:
		return v4 ? 536 : 1220;
	case 1:
		return v4 ? 1300 : 1420;
	case 2:
		return 1440;
	default:
		return v4 ? 1460 : 8940;
	}
}

/*
 * SipHash-1-3 (Linux's hsiphash on 64-bit, Rust's default hasher): one compression round per word and
 * three to finish, against 2-4's two and four. The cookie is a 24-bit MAC good for two minutes under a
 * 128-bit key: forging one takes ~2^23 guesses per connection whatever the round count, and 1-3 has no
 * known key recovery; the rounds it saves are a third of the cost of answering a SYN.
 */
#define SC_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SC_SIPROUND(v0, v1, v2, v3) do {                                              \
		v0 += v1; v1 = SC_ROTL(v1, 13); v1 ^= v0; v0 = SC_ROTL(v0, 32);         \
		v2 += v3; v3 = SC_ROTL(v3, 16); v3 ^= v2;                               \
		v0 += v3; v3 = SC_ROTL(v3, 21); v3 ^= v0;                               \
		v2 += v1; v1 = SC_ROTL(v1, 17); v1 ^= v2; v2 = SC_ROTL(v2, 32);         \
	} while (0)
#define SC_SIPWORD(v0, v1, v2, v3, m) do {                                            \
		__u64 m_ = (m);                                                         \
		v3 ^= m_;                                                               \
		SC_SIPROUND(v0, v1, v2, v3);                                            \
		v0 ^= m_;                                                               \
	} while (0)

/* The MAC of the cookie's inputs: IPv4 hashes 3 words, IPv6 6 (full addresses: folding them would let
 * a sender pick another address with the same fold and reuse its cookie). */
static __always_inline __u32 sc_mac(struct hyp_sc_work *t, const struct hyp_cookie_key *key, __u32 isn,
				    __u64 tick, __u32 opts)
{
	const __u64 *s = (const __u64 *)t->saddr, *d = (const __u64 *)t->daddr;
	__u64 v0 = key->k[0] ^ 0x736f6d6570736575ULL, v1 = key->k[1] ^ 0x646f72616e646f6dULL;
	__u64 v2 = key->k[0] ^ 0x6c7967656e657261ULL, v3 = key->k[1] ^ 0x7465646279746573ULL;
	__u64 len;

	if (t->family == HYP_AF_INET) {
		SC_SIPWORD(v0, v1, v2, v3, (__u64)*(const __u32 *)t->saddr << 32 | *(const __u32 *)t->daddr);
		len = 24;
	} else {
		SC_SIPWORD(v0, v1, v2, v3, s[0]);
		SC_SIPWORD(v0, v1, v2, v3, s[1]);
		SC_SIPWORD(v0, v1, v2, v3, d[0]);
		SC_SIPWORD(v0, v1, v2, v3, d[1]);
		len = 48;
	}
	SC_SIPWORD(v0, v1, v2, v3, (__u64)isn << 32 | (__u32)t->sport << 16 | t->dport);
	SC_SIPWORD(v0, v1, v2, v3, tick << 8 | opts);
	SC_SIPWORD(v0, v1, v2, v3, len << 56);
	v2 ^= 0xff;
	SC_SIPROUND(v0, v1, v2, v3);
	SC_SIPROUND(v0, v1, v2, v3);
	SC_SIPROUND(v0, v1, v2, v3);
	return (__u32)(v0 ^ v1 ^ v2 ^ v3);
}

static __always_inline const struct hyp_cookie_key *sc_key(void)
{
	__u32 zero = 0;
	const struct hyp_cookie_key *k = bpf_map_lookup_elem(&cookie_key, &zero);

	/* an all-zero key was never set (user space fills it at load): no cookies without a secret */
	if (!k || (!k->k[0] && !k->k[1]))
		return NULL;
	return k;
}

/* Cookies answer inbound SYNs when the policy asks for them; never in monitor mode (it must not change
 * what reaches the stack) and never on egress. */
static __always_inline bool sc_enabled(const struct hyp_pkt *p)
{
	return !p->egress && p->cfg->syn_cookies && !policy_is_monitor(p->cfg);
}

static __always_inline __u8 sc_wscale_clamp(__u32 ws)
{
	return ws > 14 ? 14 : ws;      /* RFC 7323: larger values mean 14 */
}

/*
 * The option blocks the common stacks send, recognised by a few word compares on the packet itself,
 * without the copy and the walk (which cost about a third of answering a SYN): Linux's (MSS, SACK_PERM,
 * TS, NOP, WS: 20 bytes), Windows' (MSS, NOP, WS, NOP, NOP, SACK_PERM: 12) and MSS alone (4). false:
 * another layout, walked by sc_opts_parse().
 */
static __always_inline bool sc_opts_fast(struct xdp_md *ctx, struct hyp_sc_opts *o, __u32 l4, __u32 len)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u32 off = l4 + sizeof(struct tcphdr);
	const __u32 *w;

	/* one block per layout, each with a constant length: the verifier bounds w by it */
	if (len == 4) {
		w = parse_ptr(data, data_end, off, 4);
		if (!w || bpf_ntohl(w[0]) >> 16 != 0x0204)
			return false;
		o->mss = (__u16)bpf_ntohl(w[0]);
		return true;
	}
	if (len == 12) {
		w = parse_ptr(data, data_end, off, 12);
		if (!w || bpf_ntohl(w[0]) >> 16 != 0x0204 || bpf_ntohl(w[1]) >> 8 != 0x010303 ||
		    bpf_ntohl(w[2]) != 0x01010402)
			return false;
		o->mss = (__u16)bpf_ntohl(w[0]);
		o->wscale = sc_wscale_clamp(bpf_ntohl(w[1]) & 0xff);
		o->sack = 1;
		return true;
	}
	if (len == 20) {
		w = parse_ptr(data, data_end, off, 20);
		if (!w || bpf_ntohl(w[0]) >> 16 != 0x0204 || bpf_ntohl(w[1]) != 0x0402080a ||
		    bpf_ntohl(w[4]) >> 8 != 0x010303)
			return false;
		o->mss = (__u16)bpf_ntohl(w[0]);
		o->sack = 1;
		o->ts = 1;
		o->tsval = bpf_ntohl(w[2]);
		o->tsecr = bpf_ntohl(w[3]);
		o->wscale = sc_wscale_clamp(bpf_ntohl(w[4]) & 0xff);
		return true;
	}
	return false;
}

/*
 * The TCP options of the segment at l4 (header th: MSS, window scale, SACK permitted, timestamps) into
 * t->o.
 * A common layout is read in place (sc_opts_fast). Any other is copied out with one helper call into
 * the work slot (the stack has no 40 bytes to spare), then walked at most HYP_SC_OPT_STEPS options.
 * The walk's offset and length are reloaded from the map, so the verifier knows them only as bounded
 * by the masks: with exact values it followed every combination of option kinds and offsets and gave
 * up; bpf_loop would cost a call per option.
 */
static __always_inline void sc_opts_parse(struct xdp_md *ctx, struct hyp_sc_work *t, __u32 l4,
					  const struct tcphdr *th)
{
	struct hyp_sc_opts *o = &t->o;
	const __u8 *b = (const __u8 *)t->opt;
	__u32 i, len = th->doff * 4 > sizeof(*th) ? th->doff * 4 - sizeof(*th) : 0;

	__builtin_memset(o, 0, sizeof(*o));
	o->wscale = HYP_COOKIE_WSCALE_NONE;
	if (len == 0 || len > HYP_TCP_OPT_MAX)
		return;
	if (sc_opts_fast(ctx, o, l4, len))
		return;
	/* the helper's length must be provably in [1, 40] in the register itself */
	asm volatile("" : "+r"(len));
	len = ((len - 1) & 63) + 1;
	if (len > HYP_TCP_OPT_MAX)
		return;
	if (bpf_xdp_load_bytes(ctx, l4 + sizeof(struct tcphdr), t->opt, len))
		return;
	t->i = 0;
	t->len = len;
	i = *(volatile __u32 *)&t->i;
	len = *(volatile __u32 *)&t->len;
	for (int n = 0; n < HYP_SC_OPT_STEPS; n++) {
		__u32 kind, olen;

		if (i >= len)
			break;
		kind = b[i & 63];
		if (kind == 0)          /* end of option list */
			break;
		if (kind == 1) {        /* NOP */
			i++;
			continue;
		}
		if (i + 1 >= len)
			break;
		olen = b[(i + 1) & 63];
		if (olen < 2 || i + olen > len)
			break;
		if (kind == 2 && olen == 4) {
			o->mss = (__u16)(b[(i + 2) & 63] << 8 | b[(i + 3) & 63]);
		} else if (kind == 3 && olen == 3) {
			o->wscale = sc_wscale_clamp(b[(i + 2) & 63]);
		} else if (kind == 4 && olen == 2) {
			o->sack = 1;
		} else if (kind == 8 && olen == 10) {
			o->ts = 1;
			o->tsval = (__u32)b[(i + 2) & 63] << 24 | (__u32)b[(i + 3) & 63] << 16 |
				   (__u32)b[(i + 4) & 63] << 8 | b[(i + 5) & 63];
			o->tsecr = (__u32)b[(i + 6) & 63] << 24 | (__u32)b[(i + 7) & 63] << 16 |
				   (__u32)b[(i + 8) & 63] << 8 | b[(i + 9) & 63];
		}
		i += olen;
	}
}

/*
 * Recently closed 4-tuples. The stack keeps a connection it closed first in TIME_WAIT for 60 s
 * (TCP_TIMEWAIT_LEN) and lets a new SYN on the tuple reuse it when its sequence number or timestamp
 * is newer. A cookie handshake cannot: its ACK meets the TIME_WAIT socket, which drops it, and the
 * client hangs. The socket that sends the first FIN is the one that ends in TIME_WAIT, so tc egress
 * marks the tuple in sc_closed when a local FIN goes out before the remote side's (ct_update), and a
 * SYN whose tuple was marked less than HYP_SC_CLOSED_WINDOW ago takes the usual path to the stack.
 * Per SYN that is one inlined array lookup, not a lookup in `flows` (a random flood key misses the
 * cache: that halved the flood rate), in a table small enough to stay in the kernel's direct map: a
 * 1 MiB one (vmalloc, 4 KiB pages) cost a flood 10-15 % in TLB misses.
 * A mark is 16 bits: the time (8 bits of 2^30 ns units, wrapping every 275 s) and a tag (8 bits of
 * the hash the bucket index does not use). A bucket holds HYP_SC_CLOSED_WAYS marks; a new one takes
 * the place of its own tag's, else of the oldest. So a stranger's SYN loses its cookie only on a tag
 * match with a live mark of its bucket (at most 4 in 256), and a mark is lost only when its bucket
 * gets 4 newer ones within the window.
 */
#define HYP_SC_CLOSED_WINDOW 64         /* units of 2^30 ns: 68.7 s, TCP_TIMEWAIT_LEN + the remote's FIN */

static __always_inline __u32 sc_fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	return h ^ (h >> 16);
}

/* Symmetric in the two endpoints: the mark is made from a packet of either direction. */
static __always_inline __u32 sc_closed_hash(const __u8 *saddr, const __u8 *daddr, __u16 sport, __u16 dport)
{
	const __u32 *s = (const __u32 *)saddr, *d = (const __u32 *)daddr;

	return sc_fmix32(s[0] ^ s[1] ^ s[2] ^ s[3] ^ (__u32)sport << 16) +
	       sc_fmix32(d[0] ^ d[1] ^ d[2] ^ d[3] ^ (__u32)dport << 16);
}

static __always_inline __u32 sc_closed_now(__u64 now)
{
	return (__u32)(now >> 30) & 0xff;
}

static __always_inline __u32 sc_closed_age(__u32 mark, __u32 now)
{
	return (now - (mark >> 8)) & 0xff;
}

/* The bucket of the tuple whose sc_closed_hash() is h; its tag is h >> 24. */
static __always_inline struct hyp_sc_closed *sc_closed_bucket(__u32 h)
{
	__u32 b = h & (HYP_SC_CLOSED_BUCKETS - 1);

	return bpf_map_lookup_elem(&sc_closed, &b);
}

/* Mark the tuple of h (sc_closed_hash()) as closed now (sc_closed_now()). */
static __always_inline void sc_closed_mark(__u32 h, __u32 now)
{
	struct hyp_sc_closed *c = sc_closed_bucket(h);
	__u32 tag = h >> 24, victim = 0, oldest = 0;

	if (!c)
		return;
#pragma unroll
	for (int i = 0; i < HYP_SC_CLOSED_WAYS; i++) {
		__u32 m = c->mark[i], age = m ? sc_closed_age(m, now) : 0xff;

		if (m && (m & 0xff) == tag) {
			victim = i;
			break;
		}
		if (age >= oldest) {
			oldest = age;
			victim = i;
		}
	}
	c->mark[victim & (HYP_SC_CLOSED_WAYS - 1)] = (__u16)(now << 8 | tag);
}

/* Did this tuple enter TIME_WAIT less than HYP_SC_CLOSED_WINDOW ago? (now: sc_closed_now()) */
static __always_inline bool sc_closed_recent(__u32 h, __u32 now)
{
	struct hyp_sc_closed *c = sc_closed_bucket(h);
	__u32 tag = h >> 24;

	if (!c)
		return false;
#pragma unroll
	for (int i = 0; i < HYP_SC_CLOSED_WAYS; i++) {
		__u32 m = c->mark[i];

		if (m && (m & 0xff) == tag && sc_closed_age(m, now) <= HYP_SC_CLOSED_WINDOW)
			return true;
	}
	return false;
}

/* The SYN cookie answer runs in a program of its own (hyp_xdp_syn in hyperion.bpf.c), which
 * ct_track() enters by a tail call: its frame is then not stacked on hyp_xdp's (the verifier allows 512
 * bytes per call chain, and hyp_xdp's frame takes 424 of them), and no call returns through the SRSO
 * thunk. libbpf fills the slot at load, a re-adopted pinned array's too (tests/runtime/test_loader). */
int hyp_xdp_syn(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, int(void *));
} sc_prog SEC(".maps") = {
	.values = { [0] = (void *)&hyp_xdp_syn },
};

static __always_inline struct hyp_sc_work *sc_work_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sc_work, &zero);
}

/* The segment's addresses, ports and sequence number, as parse.h read them, into the work slot: the
 * cookie code runs in global functions and a program of its own (neither can take a struct hyp_pkt,
 * which holds pointers), so this is how it sees the packet. NULL cannot happen for index 0 of a
 * one-entry array. */
static __always_inline struct hyp_sc_work *sc_work_fill(const struct hyp_pkt *p)
{
	struct hyp_sc_work *t = sc_work_get();

	if (!t)
		return NULL;
	hyp_addr_copy(t->saddr, p->saddr);
	hyp_addr_copy(t->daddr, p->daddr);
	t->sport = p->sport;
	t->dport = p->dport;
	t->seq = p->tcp_seq;
	t->family = p->family;
	return t;
}

/* Our reply writes a bare IP header in place of the SYN's: only a SYN with exactly one (no IPv4 options,
 * no IPv6 extension headers, which parse.h walked past) can be answered. */
static __always_inline bool sc_bare_ip(const struct hyp_pkt *p)
{
	return p->l4_off == p->l3_off + (p->family == HYP_AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr));
}

/* A global function's arguments are unknown to the verifier, and clang drops a later parse_ptr() bound
 * check as redundant with the caller's range check done on another copy of the register: restate the
 * bounds as masks on the registers used (exact after the check), as parse_ipv6_ext_walk() does. */
static __always_inline __u32 sc_off(__u32 off)
{
	asm volatile("" : "+r"(off));
	return off & HYP_PARSE_OFF_MAX;
}

/* Fold a 64-bit sum of 32-bit words into the 16-bit ones' complement checksum (as stored). */
static __always_inline __u16 sc_csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * The cookie path is three global functions, each verified once on its own: inlined, their option walk
 * and checksum paths multiplied the states of the whole pipeline after them. Their stack adds to the
 * pipeline's (512 bytes in all), so each keeps few values live and passes the rest through the work
 * slot. A call costs a few ns, on SYNs and cookie ACKs only.
 */

/* Turn the SYN at l3/l4 into our SYN-ACK (t prepared by sc_syn()) and send it back out of the
 * interface it came in on. HYP_R_TX_SYNCOOKIE, or HYP_CONTINUE if the frame cannot be resized. */
static __always_inline int sc_reply(struct xdp_md *ctx, struct hyp_sc_work *t, __u32 l3, __u32 l4)
{
	void *data, *data_end;
	__u64 sum, *l2;
	__u16 *eth, t16;
	__u32 *th, *w;
	int i, delta;

	if (l3 > HYP_SC_L2_MAX)
		return HYP_CONTINUE;
	/* The reply is exactly headers + HYP_COOKIE_TCP_HLEN: a SYN's payload is cut off at the tail, and
	 * a bare SYN (20 bytes of TCP) grows at the head, where XDP always has room; the tail of a small
	 * frame may have none (native XDP on veth). Growing at the head moves the frame's start, so the L2
	 * header (MACs, VLAN tags, EtherType) is carried over; L3 and L4 are written whole below. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	delta = (int)(l4 + HYP_COOKIE_TCP_HLEN) - (int)(data_end - data);
	if (delta > 0) {
		l2 = data;
		if ((void *)(l2 + 3) > data_end)
			return HYP_CONTINUE;
		t->l2[0] = l2[0];
		t->l2[1] = l2[1];
		t->l2[2] = l2[2];
		if (bpf_xdp_adjust_head(ctx, -delta))
			return HYP_CONTINUE;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		l2 = data;
		if ((void *)(l2 + 3) > data_end)
			return HYP_R_ABORTED;   /* cannot happen: the frame only grew */
		l2[0] = t->l2[0];
		l2[1] = t->l2[1];
		l2[2] = t->l2[2];
	} else if (delta < 0) {
		if (bpf_xdp_adjust_tail(ctx, delta))
			return HYP_CONTINUE;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
	}
	th = parse_ptr(data, data_end, l4, HYP_COOKIE_TCP_HLEN);
	eth = data;
	if (!th || (void *)(eth + 6) > data_end)
		return HYP_R_ABORTED;       /* cannot happen: the frame was just sized for it */

	/* L2: back to the sender */
#pragma unroll
	for (i = 0; i < 3; i++) {
		t16 = eth[i];
		eth[i] = eth[i + 3];
		eth[i + 3] = t16;
	}

	/* L3: a fresh header, addresses swapped */
	if (t->family == HYP_AF_INET) {
		w = parse_ptr(data, data_end, l3, sizeof(struct iphdr));
		if (!w)
			return HYP_R_ABORTED;
		w[0] = bpf_htonl(0x45000000 | (sizeof(struct iphdr) + HYP_COOKIE_TCP_HLEN));
		w[1] = bpf_htonl(0x4000);                               /* id 0, DF */
		w[2] = bpf_htonl(HYP_COOKIE_TTL << 24 | IPPROTO_TCP << 16);
		w[3] = *(__u32 *)t->daddr;
		w[4] = *(__u32 *)t->saddr;
		sum = 0;
#pragma unroll
		for (i = 0; i < 5; i++)
			sum += w[i];
		((__u16 *)w)[5] = sc_csum_fold(sum);
		/* pseudo-header: addresses, zero, protocol, TCP length */
		sum = (__u64)w[3] + w[4] + bpf_htonl(IPPROTO_TCP << 16 | HYP_COOKIE_TCP_HLEN);
	} else {
		w = parse_ptr(data, data_end, l3, sizeof(struct ipv6hdr));
		if (!w)
			return HYP_R_ABORTED;
		w[0] = bpf_htonl(0x60000000);
		w[1] = bpf_htonl(HYP_COOKIE_TCP_HLEN << 16 | IPPROTO_TCP << 8 | HYP_COOKIE_TTL);
		sum = bpf_htonl(HYP_COOKIE_TCP_HLEN) + bpf_htonl(IPPROTO_TCP);
#pragma unroll
		for (i = 0; i < 4; i++) {
			w[2 + i] = ((const __u32 *)t->daddr)[i];
			w[6 + i] = ((const __u32 *)t->saddr)[i];
			sum += (__u64)w[2 + i] + w[6 + i];
		}
	}

	/* L4: written whole, as 32-bit words summed on the way (the checksum word is written last) */
#define SC_PUT(i, v) do { __u32 w_ = (v); th[i] = w_; sum += w_; } while (0)
	SC_PUT(0, (__u32)t->dport | (__u32)t->sport << 16);     /* source = their destination */
	SC_PUT(1, bpf_htonl(t->isn));
	SC_PUT(2, bpf_htonl(t->seq + 1));
	SC_PUT(3, bpf_htonl((HYP_COOKIE_TCP_HLEN / 4) << 28 | (HYP_TCP_SYN | HYP_TCP_ACK) << 16 | HYP_COOKIE_WINDOW));
	SC_PUT(4, 0);                                           /* checksum, urgent pointer */
	SC_PUT(5, bpf_htonl(2 << 24 | 4 << 16 | t->mss));       /* MSS */
	/* SACK_PERM (4,2) or NOP NOP, then the timestamp's kind and length or NOP NOP */
	SC_PUT(6, bpf_htonl((t->o.sack ? 0x0402 : 0x0101) << 16 | (t->o.ts ? 0x080a : 0x0101)));
	/* TSval, then TSecr: their TSval */
	SC_PUT(7, t->o.ts ? bpf_htonl(t->tsval) : 0x01010101);
	SC_PUT(8, t->o.ts ? bpf_htonl(t->o.tsval) : 0x01010101);
	/* window scale only if they sent one (RFC 7323) */
	SC_PUT(9, t->o.wscale != HYP_COOKIE_WSCALE_NONE ? bpf_htonl(0x01030300 | HYP_COOKIE_WSCALE) : 0x01010101);
#undef SC_PUT
	((__u16 *)th)[8] = sc_csum_fold(sum);
	return HYP_R_TX_SYNCOOKIE;
}

/* What hyp_xdp_syn() needs of the SYN, its config and the clock besides the tuple (sc_work_fill()), into
 * the work slot: the tail-called program then reads neither the config nor the clock again. */
static __always_inline void sc_syn_handoff(struct hyp_sc_work *t, const struct hyp_pkt *p)
{
	__u32 cookie_mss = p->cfg->cookie_mss;

	t->l3 = p->l3_off;
	t->l4 = p->l4_off;
	t->pkt_len = p->pkt_len;
	t->tick = p->now >> HYP_COOKIE_TICK_SHIFT;
	t->tsval = (__u32)(p->now >> 20);   /* ~1 ms units; the kernel's socket continues from it */
	if (p->family == HYP_AF_INET)
		t->mss = cookie_mss ? cookie_mss : HYP_COOKIE_MSS4;
	else
		t->mss = cookie_mss ? cookie_mss - 20 : HYP_COOKIE_MSS6;
}

/* Answer the SYN at t->l3/t->l4 (the work slot: sc_work_fill(), sc_syn_handoff(); a bare IP header:
 * sc_bare_ip()) with a cookie SYN-ACK: HYP_R_TX_SYNCOOKIE, or HYP_CONTINUE when it cannot (no key, a
 * frame that cannot be resized). Runs in hyp_xdp_syn(), the program ct_track() tail-calls. */
static __always_inline int sc_syn(struct xdp_md *ctx, struct hyp_sc_work *t)
{
	const struct hyp_cookie_key *key = sc_key();
	__u32 l3 = t->l3, l4 = t->l4;
	const struct hyp_sc_opts *o;
	struct tcphdr *th;
	__u32 opts, mssi, mss;
	bool v4;

	if (!key || l3 > HYP_PARSE_OFF_MAX || l4 > HYP_PARSE_OFF_MAX)
		return HYP_CONTINUE;
	l3 = sc_off(l3);
	l4 = sc_off(l4);
	th = parse_ptr((void *)(long)ctx->data, (void *)(long)ctx->data_end, l4, sizeof(*th));
	if (!th)
		return HYP_CONTINUE;
	v4 = t->family == HYP_AF_INET;
	sc_opts_parse(ctx, t, l4, th);
	o = &t->o;
	mss = o->mss ? o->mss : 536;      /* no option: the default every TCP must accept */
	for (mssi = 3; mssi > 0; mssi--)
		if (mss >= sc_mss_of(v4, mssi))
			break;
	opts = mssi | (__u32)(o->wscale & 15) << SC_OPT_WS_SHIFT | (o->sack ? SC_OPT_SACK : 0) |
	       (o->ts ? SC_OPT_TS : 0);
	t->isn = (sc_mac(t, key, t->seq, t->tick, opts) & ~HYP_COOKIE_OPT_MASK) | opts;
	return sc_reply(ctx, t, l3, l4);
}

/* Does the ACK at l4 (its tuple in the work slot: sc_work_fill()) carry a cookie of ours made in this
 * tick? 0 (the cookie's options byte left in t->isn), or -1. The caller asks for this tick, then the
 * previous one: one MAC per call keeps the frame small (its stack adds to the pipeline's). */
__noinline int hyp_sc_ack(struct xdp_md *ctx, __u32 l4, __u64 tick)
{
	const struct hyp_cookie_key *key = sc_key();
	struct hyp_sc_work *t = sc_work_get();
	struct tcphdr *th;
	__u32 cookie, opts;

	if (!key || !t || l4 > HYP_PARSE_OFF_MAX)
		return -1;
	l4 = sc_off(l4);
	th = parse_ptr((void *)(long)ctx->data, (void *)(long)ctx->data_end, l4, sizeof(*th));
	if (!th)
		return -1;
	cookie = bpf_ntohl(th->ack_seq) - 1;
	opts = cookie & HYP_COOKIE_OPT_MASK;
	if ((sc_mac(t, key, t->seq - 1, tick, opts) ^ cookie) & ~HYP_COOKIE_OPT_MASK)
		return -1;
	t->isn = opts;
	return 0;
}

/* After hyp_sc_ack(): put what tc ingress needs to build the request socket in front of the frame (XDP
 * metadata, carried into the skb). Without metadata support the ACK still passes, and the stack answers
 * it with a reset: the client's connect fails rather than hangs. */
__noinline int hyp_sc_meta(struct xdp_md *ctx, __u32 l3, __u32 l4)
{
	struct hyp_sc_work *t = sc_work_get();
	struct hyp_cookie_meta *m;
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct tcphdr *th;
	__u32 opts;

	if (!t || l3 > HYP_PARSE_OFF_MAX || l4 > HYP_PARSE_OFF_MAX)
		return -1;
	l3 = sc_off(l3);
	l4 = sc_off(l4);
	th = parse_ptr(data, data_end, l4, sizeof(*th));
	if (!th)
		return -1;
	opts = t->isn;
	__builtin_memset(&t->o, 0, sizeof(t->o));
	if (opts & SC_OPT_TS)
		sc_opts_parse(ctx, t, l4, th);
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*m)))
		return -1;
	data = (void *)(long)ctx->data;
	m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > data)
		return -1;
	m->magic = HYP_COOKIE_MAGIC;
	m->tsval = t->o.tsval;
	m->tsecr = t->o.tsecr;
	m->mss = sc_mss_of(t->family == HYP_AF_INET, opts);
	m->l4_rel = l4 - l3;
	m->family = t->family;
	m->snd_wscale = (opts >> SC_OPT_WS_SHIFT) & 15;
	/* timestamps only if the cookie says they were negotiated and the ACK still carries them */
	m->flags = (opts & SC_OPT_SACK ? 1 : 0) | ((opts & SC_OPT_TS) && t->o.ts ? 2 : 0);
	m->pad = 0;
	return 0;
}

/* Kernel 6.9+. Weak: on an older kernel the loader leaves the tc ingress program out (it is the only
 * caller) and the runtime refuses syn_cookies. */
extern int bpf_sk_assign_tcp_reqsk(struct __sk_buff *skb, struct sock *sk, struct bpf_tcp_req_attrs *attrs,
				   int attrs__sz) __ksym __weak;

/*
 * tc ingress, for an ACK whose cookie XDP verified (struct hyp_cookie_meta in front of it): find the
 * listener and hand it a request socket built from the cookie, as if its own SYN queue had held the
 * connection. No listener (the port is open in the policy but nothing listens): the stack resets the
 * ACK, as it would have reset the SYN.
 */
static __always_inline void sc_assign(struct __sk_buff *skb)
{
	struct hyp_cookie_meta *mp = (void *)(long)skb->data_meta;
	struct bpf_tcp_req_attrs a = {};
	struct bpf_sock_tuple t = {};
	struct hyp_cookie_meta m;
	struct bpf_sock *sk;
	struct tcp_sock *tp;
	__u32 tlen;

	if ((void *)(mp + 1) > (void *)(long)skb->data || mp->magic != HYP_COOKIE_MAGIC)
		return;
	m = *mp;
	if (m.family == HYP_AF_INET) {
		if (bpf_skb_load_bytes_relative(skb, offsetof(struct iphdr, saddr), &t.ipv4.saddr, 8,
						BPF_HDR_START_NET) ||
		    bpf_skb_load_bytes_relative(skb, m.l4_rel, &t.ipv4.sport, 4, BPF_HDR_START_NET))
			return;
		tlen = sizeof(t.ipv4);
	} else {
		if (bpf_skb_load_bytes_relative(skb, offsetof(struct ipv6hdr, saddr), t.ipv6.saddr, 32,
						BPF_HDR_START_NET) ||
		    bpf_skb_load_bytes_relative(skb, m.l4_rel, &t.ipv6.sport, 4, BPF_HDR_START_NET))
			return;
		tlen = sizeof(t.ipv6);
	}
	sk = bpf_skc_lookup_tcp(skb, &t, tlen, BPF_F_CURRENT_NETNS, 0);
	if (!sk) {
		hyp_count(HYP_C_COOKIE_NO_LISTENER);
		return;
	}
	/* an established or TIME_WAIT socket owns the tuple: the stack handles the ACK itself */
	if (sk->state != BPF_TCP_LISTEN)
		goto out;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		goto out;
	a.mss = m.mss;
	a.snd_wscale = m.snd_wscale == HYP_COOKIE_WSCALE_NONE ? 0 : m.snd_wscale;
	a.rcv_wscale = m.snd_wscale == HYP_COOKIE_WSCALE_NONE ? 0 : HYP_COOKIE_WSCALE;
	a.wscale_ok = m.snd_wscale != HYP_COOKIE_WSCALE_NONE;
	a.sack_ok = m.flags & 1;
	a.tstamp_ok = (m.flags >> 1) & 1;
	a.rcv_tsval = m.tsval;
	a.rcv_tsecr = m.tsecr;
	if (bpf_sk_assign_tcp_reqsk(skb, (struct sock *)tp, &a, sizeof(a)))
		hyp_count(HYP_C_COOKIE_ASSIGN_FAIL);
	else
		hyp_count(HYP_C_COOKIE_ASSIGNED);
out:
	bpf_sk_release(sk);
}

#endif /* HYP_SYNCOOKIE_H */
