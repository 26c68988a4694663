/* Minimal frame builder for the generator: Ethernet + IPv4/IPv6 + UDP/TCP with valid checksums.
 * Header-only because every bench .c file is its own program (see Makefile); tests use tests/lib/pkt.c. */
#ifndef HYP_BENCH_FRAME_H
#define HYP_BENCH_FRAME_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#define FRAME_ETH_LEN 14
#define FRAME_IP4_LEN 20
#define FRAME_IP6_LEN 40
#define FRAME_UDP_LEN 8
#define FRAME_TCP_LEN 20
#define FRAME_TTL 64
#define FRAME_TCP_WINDOW 65535

struct frame_spec {
	int family;                 /* 4 or 6 */
	uint8_t proto;              /* IPPROTO_UDP or IPPROTO_TCP */
	uint8_t smac[6], dmac[6];
	uint8_t src[16], dst[16];   /* wire order */
	uint16_t sport, dport;      /* host order */
	uint8_t tcp_flags;
	uint32_t seq, ack;          /* host order */
	const uint8_t *payload;
	uint32_t payload_len;
};

static inline uint32_t frame_sum(uint32_t sum, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (len & 1)
		sum += (uint32_t)b[len - 1] << 8;
	return sum;
}

static inline uint16_t frame_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

/* Returns the frame length, or -1 if it does not fit in cap. Layout offsets: l3 at 14, l4 right after. */
static inline int frame_build(const struct frame_spec *s, uint8_t *buf, size_t cap, int *l4_off)
{
	size_t l3len = s->family == 4 ? FRAME_IP4_LEN : FRAME_IP6_LEN;
	size_t l4hdr = s->proto == IPPROTO_UDP ? FRAME_UDP_LEN : FRAME_TCP_LEN;
	size_t l4len = l4hdr + s->payload_len;
	size_t len = FRAME_ETH_LEN + l3len + l4len;
	size_t alen = s->family == 4 ? 4 : 16;

	if (len > cap)
		return -1;
	memset(buf, 0, len);
	memcpy(buf, s->dmac, 6);
	memcpy(buf + 6, s->smac, 6);
	put16(buf + 12, s->family == 4 ? 0x0800 : 0x86dd);
	uint8_t *ip = buf + FRAME_ETH_LEN, *l4 = ip + l3len;
	if (s->family == 4) {
		ip[0] = 0x45;
		put16(ip + 2, (uint16_t)(l3len + l4len));
		put16(ip + 6, 0x4000);  /* DF */
		ip[8] = FRAME_TTL;
		ip[9] = s->proto;
		memcpy(ip + 12, s->src, 4);
		memcpy(ip + 16, s->dst, 4);
		put16(ip + 10, frame_fold(frame_sum(0, ip, FRAME_IP4_LEN)));
	} else {
		ip[0] = 0x60;
		put16(ip + 4, (uint16_t)l4len);
		ip[6] = s->proto;
		ip[7] = FRAME_TTL;
		memcpy(ip + 8, s->src, 16);
		memcpy(ip + 24, s->dst, 16);
	}
	put16(l4, s->sport);
	put16(l4 + 2, s->dport);
	if (s->proto == IPPROTO_UDP) {
		put16(l4 + 4, (uint16_t)l4len);
	} else {
		put32(l4 + 4, s->seq);
		put32(l4 + 8, s->ack);
		l4[12] = 5 << 4;
		l4[13] = s->tcp_flags;
		put16(l4 + 14, FRAME_TCP_WINDOW);
	}
	if (s->payload_len)
		memcpy(l4 + l4hdr, s->payload, s->payload_len);
	/* pseudo-header: addresses, protocol, L4 length */
	uint32_t sum = frame_sum(0, s->src, alen);
	sum = frame_sum(sum, s->dst, alen);
	sum += s->proto + (uint32_t)l4len;
	uint16_t c = frame_fold(frame_sum(sum, l4, l4len));
	if (s->proto == IPPROTO_UDP && c == 0)
		c = 0xffff;
	put16(l4 + (s->proto == IPPROTO_UDP ? 6 : 16), c);
	if (l4_off)
		*l4_off = (int)(FRAME_ETH_LEN + l3len);
	return (int)len;
}

#endif
