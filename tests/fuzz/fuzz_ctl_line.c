/* libFuzzer harness: control-socket request lines and TTLs; results must be 0 or -EINVAL, never a crash. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ctl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hyp_ctl_req req;
	char err[256], *line, ttl[32];
	__u64 v;
	int r;

	/* an exact-size heap copy, not NUL-terminated: ASan catches any read past size */
	line = malloc(size ? size : 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	err[0] = 0;
	r = ctl_req_parse_line(line, size, &req, err, sizeof(err));
	if (r != 0 && r != -EINVAL)
		abort();
	if (r && !err[0])
		abort();    /* every refusal explains itself */
	if (!r) {
		size_t n = size && line[size - 1] == '\n' ? size - 1 : size;

		for (size_t i = 0; i < n; i++)
			if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
				abort();    /* accepted a control byte */
		if (n >= HYP_CTL_REQ_MAX)
			abort();
	}
	free(line);
	if (size < sizeof(ttl)) {
		memcpy(ttl, data, size);
		ttl[size] = 0;
		r = ctl_ttl_parse(ttl, &v);
		if (r != 0 && r != -EINVAL && r != -ERANGE)
			abort();
		if (!r && (v == 0 || v > HYP_CTL_TTL_MAX))
			abort();
	}
	return 0;
}
