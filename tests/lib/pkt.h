/* Packet builder for datapath tests: Ethernet/VLAN/IPv4/IPv6(+ext headers)/TCP/UDP/ICMP with checksums. */
#ifndef HYP_PKT_H
#define HYP_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_MAX 2048
#define PKT_EXT_MAX 12

/* TCP flag bits as on the wire */
enum { TH_FIN = 0x01, TH_SYN = 0x02, TH_RST = 0x04, TH_PSH = 0x08, TH_ACK = 0x10, TH_URG = 0x20 };

struct pkt_opts {
	int family;                 /* 4 or 6 */
	const char *src, *dst;      /* "192.0.2.1", "2001:db8::1" */
	uint8_t proto;              /* IPPROTO_TCP/UDP/ICMP/ICMPV6, or anything else (raw payload) */
	uint16_t sport, dport;      /* host order */
	uint8_t tcp_flags;
	uint32_t seq, ack;          /* host order */
	const void *payload;
	uint32_t payload_len;
	int nvlan;                  /* 0..4 802.1Q tags (outer ones use 0x88a8 when qinq) */
	bool qinq;
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id, icmp_seq;
	/* IPv4: options bytes (multiple of 4, <= 40); frag_offset in 8-byte units, more_frags */
	uint8_t ip_opts_len;
	uint16_t frag_offset;
	bool more_frags;
	bool frag;                  /* IPv6: add a fragment header (with frag_offset/more_frags) */
	/* IPv6 extension headers before the fragment header / L4: next-header values among
	 * 0 (hop-by-hop), 43 (routing), 60 (dest opts), 51 (AH). Each gets a minimal valid body. */
	uint8_t ext[PKT_EXT_MAX];
	int next;
	uint8_t ttl;                /* 0: 64 */
};

/* Builds the frame into buf (cap bytes); returns its length, or -1 if it does not fit. */
int pkt_build(const struct pkt_opts *o, uint8_t *buf, size_t cap);

/* Offsets of the layers in the last built frame (for truncation and corruption tests). */
struct pkt_layout {
	int l3_off, l4_off, payload_off, len;
};
int pkt_build_layout(const struct pkt_opts *o, uint8_t *buf, size_t cap, struct pkt_layout *lay);

/* --- appended: helpers for corruption and non-IP frames --- */
/* Rewrites the IP length field (IPv4 total length + header checksum, IPv6 payload length) so it
 * describes a frame of frame_len bytes: a consistently short packet rather than a cut one. */
void pkt_set_ip_len(uint8_t *buf, const struct pkt_layout *lay, uint32_t frame_len);
/* Recomputes the IPv4 header checksum over IHL*4 bytes (capped at the 60-byte maximum). */
void pkt_fix_ipv4_csum(uint8_t *buf, int l3_off);
/* Do the IPv4 header checksum, and the TCP/UDP checksum with its pseudo-header, of a frame verify? (For
 * frames the datapath wrote, such as a SYN cookie SYN-ACK.) */
bool pkt_ipv4_csum_ok(const uint8_t *buf, int l3_off);
bool pkt_l4_csum_ok(const uint8_t *buf, int family, int l3_off, int l4_off, uint8_t proto, uint32_t l4_len);
/* Ethernet (+ nvlan 802.1Q tags) carrying ethertype and an opaque body (ARP, LLDP, ...). */
int pkt_build_l2(uint16_t ethertype, int nvlan, const void *body, uint32_t body_len, uint8_t *buf, size_t cap);
/* A minimal ARP request body (28 bytes) from 192.0.2.1 asking for 198.51.100.1. */
extern const uint8_t pkt_arp_request[28];

#endif
