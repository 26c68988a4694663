/* Packet builder for datapath tests: lays out every header by hand so tests control each byte. */
#include "pkt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

enum {
	ETH_HDR_LEN = 14,
	VLAN_HDR_LEN = 4,
	PKT_VLAN_MAX = 4,
	IPV4_HDR_LEN = 20,
	IPV4_OPTS_MAX = 40,
	IPV6_HDR_LEN = 40,
	IPV6_EXT_LEN = 8,           /* hop-by-hop, routing, dest-opts, fragment: minimal body */
	IPV6_AH_LEN = 24,           /* AH with a 96-bit ICV (HMAC-SHA1-96): len field (24/4)-2 = 4 */
	TCP_HDR_LEN = 20,
	UDP_HDR_LEN = 8,
	ICMP_HDR_LEN = 8,
	DEFAULT_TTL = 64,
	ETH_P_IPV4 = 0x0800,
	ETH_P_IPV6_ = 0x86dd,
	ETH_P_8021Q_ = 0x8100,
	ETH_P_8021AD_ = 0x88a8,
	NH_HOPOPTS = 0,
	NH_ROUTING = 43,
	NH_FRAGMENT = 44,
	NH_AH = 51,
	NH_DSTOPTS = 60,
	IPV4_MF = 0x2000,
	VLAN_ID_BASE = 100,         /* tag i carries VID 100 + i so a dump shows which tag is which */
	IP_ID = 0x1234,
	FRAG_ID = 0xabcd1234,
	TCP_WINDOW = 65535,
	IPOPT_NOP_ = 1,
	IPV6_OPT_PADN = 1
};

static const uint8_t mac_dst[6] = { 0x02, 0, 0, 0, 0, 0x02 };
static const uint8_t mac_src[6] = { 0x02, 0, 0, 0, 0, 0x01 };

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

/* One's-complement sum over a byte range, big-endian words; carried between calls via sum. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Pseudo-header sum for TCP/UDP/ICMPv6 (RFC 768/793/8200 8.1). */
static uint32_t csum_pseudo(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto, uint32_t len)
{
	uint32_t sum = 0;
	int alen = family == 6 ? 16 : 4;

	sum = csum_add(sum, src, alen);
	sum = csum_add(sum, dst, alen);
	sum += proto;
	sum += len >> 16;
	sum += len & 0xffff;
	return sum;
}

static int pkt_ext_len(uint8_t nh)
{
	return nh == NH_AH ? IPV6_AH_LEN : IPV6_EXT_LEN;
}

/* Writes one extension header body: AH counts 4-byte units minus 2, the others 8-byte units minus 1. */
static void pkt_put_ext(uint8_t *p, uint8_t type, uint8_t next)
{
	memset(p, 0, pkt_ext_len(type));
	p[0] = next;
	if (type == NH_AH) {
		p[1] = IPV6_AH_LEN / 4 - 2;
		put32(p + 4, 0x100);            /* SPI */
		put32(p + 8, 1);                /* sequence */
		return;
	}
	p[1] = 0;
	if (type == NH_ROUTING) {
		p[2] = 253;                     /* experimental routing type, segments left 0: ignored */
		p[3] = 0;
		return;
	}
	/* hop-by-hop / dest-opts / unknown: one PadN option filling the remaining 6 bytes */
	p[2] = IPV6_OPT_PADN;
	p[3] = 4;
}

static int pkt_l4_hdr_len(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return TCP_HDR_LEN;
	case IPPROTO_UDP:
		return UDP_HDR_LEN;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return ICMP_HDR_LEN;
	default:
		return 0;
	}
}

static void pkt_put_l4(const struct pkt_opts *o, uint8_t *l4, uint32_t l4_len, const uint8_t *src,
		       const uint8_t *dst)
{
	uint32_t sum;
	uint16_t c;

	switch (o->proto) {
	case IPPROTO_TCP:
		put16(l4, o->sport);
		put16(l4 + 2, o->dport);
		put32(l4 + 4, o->seq);
		put32(l4 + 8, o->ack);
		l4[12] = (TCP_HDR_LEN / 4) << 4;
		l4[13] = o->tcp_flags;
		put16(l4 + 14, TCP_WINDOW);
		put16(l4 + 16, 0);
		put16(l4 + 18, 0);
		sum = csum_pseudo(o->family, src, dst, IPPROTO_TCP, l4_len);
		put16(l4 + 16, csum_fold(csum_add(sum, l4, l4_len)));
		break;
	case IPPROTO_UDP:
		put16(l4, o->sport);
		put16(l4 + 2, o->dport);
		put16(l4 + 4, l4_len);
		put16(l4 + 6, 0);
		sum = csum_pseudo(o->family, src, dst, IPPROTO_UDP, l4_len);
		c = csum_fold(csum_add(sum, l4, l4_len));
		put16(l4 + 6, c ? c : 0xffff);  /* 0 means "no checksum" on the wire */
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		l4[0] = o->icmp_type;
		l4[1] = o->icmp_code;
		put16(l4 + 2, 0);
		put16(l4 + 4, o->icmp_id);
		put16(l4 + 6, o->icmp_seq);
		/* ICMPv6 includes the pseudo-header, ICMPv4 does not */
		sum = o->proto == IPPROTO_ICMPV6 && o->family == 6 ?
			csum_pseudo(6, src, dst, IPPROTO_ICMPV6, l4_len) : 0;
		put16(l4 + 2, csum_fold(csum_add(sum, l4, l4_len)));
		break;
	default:
		break;
	}
}

int pkt_build_layout(const struct pkt_opts *o, uint8_t *buf, size_t cap, struct pkt_layout *lay)
{
	uint8_t src[16] = { 0 }, dst[16] = { 0 };
	int af, i, off, l3_off, l4_off, ext_total = 0, l4_hdr;
	uint32_t l4_len, total;
	uint8_t *ip;

	if (o->family != 4 && o->family != 6)
		return -1;
	if (o->nvlan < 0 || o->nvlan > PKT_VLAN_MAX || o->next < 0 || o->next > PKT_EXT_MAX)
		return -1;
	if (o->family == 4 && (o->ip_opts_len % 4 || o->ip_opts_len > IPV4_OPTS_MAX))
		return -1;
	af = o->family == 4 ? AF_INET : AF_INET6;
	if (inet_pton(af, o->src ? o->src : (o->family == 4 ? "192.0.2.1" : "2001:db8::1"), src) != 1 ||
	    inet_pton(af, o->dst ? o->dst : (o->family == 4 ? "198.51.100.1" : "2001:db8::2"), dst) != 1)
		return -1;

	if (o->family == 6) {
		for (i = 0; i < o->next; i++)
			ext_total += pkt_ext_len(o->ext[i]);
		if (o->frag)
			ext_total += IPV6_EXT_LEN;
	}
	l4_hdr = pkt_l4_hdr_len(o->proto);
	l4_len = l4_hdr + o->payload_len;
	l3_off = ETH_HDR_LEN + o->nvlan * VLAN_HDR_LEN;
	l4_off = l3_off + (o->family == 4 ? IPV4_HDR_LEN + o->ip_opts_len : IPV6_HDR_LEN + ext_total);
	total = l4_off + l4_len;
	if (total > cap || total > PKT_MAX || (o->payload_len && !o->payload))
		return -1;
	memset(buf, 0, total);

	/* L2: dst, src, then tags outermost first; with qinq every tag but the innermost is 802.1ad */
	memcpy(buf, mac_dst, 6);
	memcpy(buf + 6, mac_src, 6);
	off = 12;
	for (i = 0; i < o->nvlan; i++) {
		put16(buf + off, o->qinq && i < o->nvlan - 1 ? ETH_P_8021AD_ : ETH_P_8021Q_);
		put16(buf + off + 2, VLAN_ID_BASE + i);
		off += VLAN_HDR_LEN;
	}
	put16(buf + off, o->family == 4 ? ETH_P_IPV4 : ETH_P_IPV6_);

	ip = buf + l3_off;
	if (o->family == 4) {
		int ihl = IPV4_HDR_LEN + o->ip_opts_len;

		ip[0] = 0x40 | (ihl / 4);
		put16(ip + 2, total - l3_off);
		put16(ip + 4, IP_ID);
		put16(ip + 6, (o->more_frags ? IPV4_MF : 0) | (o->frag_offset & 0x1fff));
		ip[8] = o->ttl ? o->ttl : DEFAULT_TTL;
		ip[9] = o->proto;
		memcpy(ip + 12, src, 4);
		memcpy(ip + 16, dst, 4);
		memset(ip + IPV4_HDR_LEN, IPOPT_NOP_, o->ip_opts_len);
		put16(ip + 10, csum_fold(csum_add(0, ip, ihl)));
	} else {
		uint8_t *p = ip + IPV6_HDR_LEN;
		uint8_t *nh = ip + 6;

		put32(ip, 0x60000000);
		put16(ip + 4, total - l3_off - IPV6_HDR_LEN);
		ip[7] = o->ttl ? o->ttl : DEFAULT_TTL;
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
		/* chain: each header's next field is written when the following header is known */
		for (i = 0; i < o->next; i++) {
			*nh = o->ext[i];
			pkt_put_ext(p, o->ext[i], 0);
			nh = p;
			p += pkt_ext_len(o->ext[i]);
		}
		if (o->frag) {
			*nh = NH_FRAGMENT;
			memset(p, 0, IPV6_EXT_LEN);
			put16(p + 2, (uint16_t)(o->frag_offset << 3) | (o->more_frags ? 1 : 0));
			put32(p + 4, FRAG_ID);
			nh = p;
			p += IPV6_EXT_LEN;
		}
		*nh = o->proto;
	}

	if (o->payload_len)
		memcpy(buf + l4_off + l4_hdr, o->payload, o->payload_len);
	pkt_put_l4(o, buf + l4_off, l4_len, src, dst);

	if (lay) {
		lay->l3_off = l3_off;
		lay->l4_off = l4_off;
		lay->payload_off = l4_off + l4_hdr;
		lay->len = total;
	}
	return total;
}

int pkt_build(const struct pkt_opts *o, uint8_t *buf, size_t cap)
{
	return pkt_build_layout(o, buf, cap, NULL);
}

bool pkt_ipv4_csum_ok(const uint8_t *buf, int l3_off)
{
	return csum_fold(csum_add(0, buf + l3_off, (size_t)(buf[l3_off] & 0x0f) * 4)) == 0;
}

bool pkt_l4_csum_ok(const uint8_t *buf, int family, int l3_off, int l4_off, uint8_t proto, uint32_t l4_len)
{
	const uint8_t *src = buf + l3_off + (family == 6 ? 8 : 12);
	const uint8_t *dst = src + (family == 6 ? 16 : 4);

	return csum_fold(csum_add(csum_pseudo(family, src, dst, proto, l4_len), buf + l4_off, l4_len)) == 0;
}

void pkt_fix_ipv4_csum(uint8_t *buf, int l3_off)
{
	uint8_t *ip = buf + l3_off;
	int hlen = (ip[0] & 0xf) * 4;

	put16(ip + 10, 0);
	put16(ip + 10, csum_fold(csum_add(0, ip, hlen < IPV4_HDR_LEN ? IPV4_HDR_LEN : hlen)));
}

void pkt_set_ip_len(uint8_t *buf, const struct pkt_layout *lay, uint32_t frame_len)
{
	uint8_t *ip = buf + lay->l3_off;
	uint32_t l3_len = frame_len > (uint32_t)lay->l3_off ? frame_len - lay->l3_off : 0;

	if ((ip[0] >> 4) == 4) {
		put16(ip + 2, l3_len);
		pkt_fix_ipv4_csum(buf, lay->l3_off);
	} else {
		put16(ip + 4, l3_len > IPV6_HDR_LEN ? l3_len - IPV6_HDR_LEN : 0);
	}
}

const uint8_t pkt_arp_request[28] = {
	0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,       /* Ethernet/IPv4, request */
	0x02, 0, 0, 0, 0, 0x01, 192, 0, 2, 1,           /* sender MAC, IP */
	0, 0, 0, 0, 0, 0, 198, 51, 100, 1               /* target MAC (unknown), IP */
};

int pkt_build_l2(uint16_t ethertype, int nvlan, const void *body, uint32_t body_len, uint8_t *buf, size_t cap)
{
	uint32_t total = ETH_HDR_LEN + nvlan * VLAN_HDR_LEN + body_len;
	int i, off = 12;

	if (nvlan < 0 || nvlan > PKT_VLAN_MAX || total > cap)
		return -1;
	memcpy(buf, mac_dst, 6);
	memcpy(buf + 6, mac_src, 6);
	for (i = 0; i < nvlan; i++, off += VLAN_HDR_LEN) {
		put16(buf + off, ETH_P_8021Q_);
		put16(buf + off + 2, VLAN_ID_BASE + i);
	}
	put16(buf + off, ethertype);
	memcpy(buf + off + 2, body, body_len);
	return total;
}
