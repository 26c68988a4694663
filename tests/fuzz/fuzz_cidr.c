/* libFuzzer harness: cidr_parse on arbitrary text; accepted values must round-trip through cidr_format. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "maps.h"

#define TEXT_MAX 96     /* longer than cidr.c's 64-byte limit, so the limit itself is exercised */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[TEXT_MAX + 1], f[128], g[128];
	struct hyp_cidr c, c2;
	bool host;

	if (size < 1)
		return 0;
	host = data[0] & 1;     /* first byte: allow_host_bits */
	data++;
	size--;
	if (size > TEXT_MAX)
		size = TEXT_MAX;
	memcpy(s, data, size);
	s[size] = 0;
	if (cidr_parse(s, &c, host))
		return 0;
	if ((c.family != HYP_AF_INET && c.family != HYP_AF_INET6) ||
	    c.prefixlen > (c.family == HYP_AF_INET ? 32 : 128))
		abort();
	cidr_format(&c, f, sizeof(f));
	if (cidr_parse(f, &c2, false) || memcmp(&c, &c2, sizeof(c)))
		abort();    /* the canonical text must parse back, strictly, to the same value */
	cidr_format(&c2, g, sizeof(g));
	if (strcmp(f, g))
		abort();
	return 0;
}
