/* Text <-> address/CIDR conversion for IPv4 and IPv6, strict enough for operator input. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "maps.h"

/* Longest text we accept: a full IPv6 address with an embedded IPv4 tail plus "/128". */
#define CIDR_TEXT_MAX 64

/* Parses the decimal prefix length: digits only (no sign, no spaces), at most 3 of them. */
static int cidr_parse_len(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 3)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* True if any bit after the first plen bits of addr (len bytes) is set. */
static bool cidr_host_bits(const __u8 *addr, unsigned len, unsigned plen)
{
	for (unsigned i = 0; i < len; i++) {
		unsigned keep = plen >= (i + 1) * 8 ? 8 : plen > i * 8 ? plen - i * 8 : 0;
		__u8 mask = keep ? (__u8)(0xff << (8 - keep)) : 0;
		if (addr[i] & (__u8)~mask)
			return true;
	}
	return false;
}

static void cidr_clear_host_bits(__u8 *addr, unsigned len, unsigned plen)
{
	for (unsigned i = 0; i < len; i++) {
		unsigned keep = plen >= (i + 1) * 8 ? 8 : plen > i * 8 ? plen - i * 8 : 0;
		addr[i] &= keep ? (__u8)(0xff << (8 - keep)) : 0;
	}
}

int cidr_parse(const char *s, struct hyp_cidr *out, bool allow_host_bits)
{
	char buf[CIDR_TEXT_MAX];
	struct hyp_cidr c;
	unsigned plen, max, len;

	if (!s || !out || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';

	memset(&c, 0, sizeof(c));
	/* inet_pton is strict: AF_INET takes exactly four decimal parts, no spaces, no octal. */
	if (strchr(buf, ':')) {
		if (inet_pton(AF_INET6, buf, c.addr) != 1)
			return -EINVAL;
		c.family = HYP_AF_INET6;
		max = 128;
		len = 16;
	} else {
		if (inet_pton(AF_INET, buf, c.addr) != 1)
			return -EINVAL;
		c.family = HYP_AF_INET;
		max = 32;
		len = 4;
	}
	plen = max;
	if (slash && cidr_parse_len(slash + 1, max, &plen))
		return -EINVAL;
	if (cidr_host_bits(c.addr, len, plen)) {
		if (!allow_host_bits)
			return -EINVAL;
		cidr_clear_host_bits(c.addr, len, plen);
	}
	c.prefixlen = (__u8)plen;
	*out = c;
	return 0;
}

void addr_format(__u8 family, const __u8 *addr, char *buf, size_t len)
{
	char tmp[INET6_ADDRSTRLEN];
	const char *r = NULL;

	if (!buf || !len)
		return;
	if (family == HYP_AF_INET)
		r = inet_ntop(AF_INET, addr, tmp, sizeof(tmp));
	else if (family == HYP_AF_INET6)
		r = inet_ntop(AF_INET6, addr, tmp, sizeof(tmp));
	snprintf(buf, len, "%s", r ? r : "?");
}

void cidr_format(const struct hyp_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	unsigned max = c->family == HYP_AF_INET ? 32 : 128;

	if (!buf || !len)
		return;
	addr_format(c->family, c->addr, a, sizeof(a));
	if (c->prefixlen >= max)
		snprintf(buf, len, "%s", a);
	else
		snprintf(buf, len, "%s/%u", a, c->prefixlen);
}
