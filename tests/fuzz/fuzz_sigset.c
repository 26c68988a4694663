/* libFuzzer harness: signature sets decoded from the input, compiled, and scanned against a naive matcher. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sigcompile.h"

#define NSIG_MAX 16         /* signatures decoded from one input */
#define PAT_MAX 12          /* pattern bytes per signature (short: overlaps are what matter) */

static struct hyp_sigset set;
static struct hyp_sigdef defs[NSIG_MAX];

static uint8_t fold(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool in_scope(const struct hyp_sigdef *d, uint8_t proto, uint16_t dport)
{
	if (d->proto && d->proto != proto)
		return false;
	for (unsigned i = 0; i < d->nports; i++)
		if (d->ports[i] == dport)
			return true;
	return !d->nports;
}

static bool ends_at(const struct hyp_sigdef *d, const uint8_t *b, size_t end)
{
	if (end + 1 < d->pattern_len)
		return false;
	for (size_t k = 0; k < d->pattern_len; k++) {
		uint8_t a = b[end + 1 - d->pattern_len + k], p = d->pattern[k];

		if (d->flags & HYP_SIGF_NOCASE ? fold(a) != fold(p) : a != p)
			return false;
	}
	return true;
}

/* first drop/ban end position wins (strongest action, then lowest id); else the first alert */
static int naive(unsigned n, const uint8_t *b, size_t len, uint8_t proto, uint16_t dport)
{
	int alert = -1;

	for (size_t i = 0; i < len; i++) {
		int best = -1, fa = -1;

		for (unsigned s = 0; s < n; s++) {
			if (!in_scope(&defs[s], proto, dport) || !ends_at(&defs[s], b, i))
				continue;
			if (defs[s].action == HYP_ACT_ALERT)
				fa = fa < 0 ? (int)s : fa;
			else if (best < 0 || defs[s].action > defs[best].action)
				best = s;
		}
		if (best >= 0)
			return best;
		if (alert < 0)
			alert = fa;
	}
	return alert;
}

/* Input: byte 0 = count; per signature: control byte (action, nocase, proto, port), length, pattern;
 * then proto/port selector and the buffer to scan. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t protos[] = { 0, 6, 17, 1 };
	static const uint16_t ports[] = { 80, 443, 53, 8080 };
	size_t o = 1;
	unsigned n;
	char err[256];
	int r;

	if (size < 2)
		return 0;
	n = 1 + data[0] % NSIG_MAX;
	for (unsigned i = 0; i < n; i++) {
		struct hyp_sigdef *d = &defs[i];
		uint8_t ctl, len;

		if (o + 2 > size)
			return 0;
		ctl = data[o++];
		len = 1 + data[o++] % PAT_MAX;
		if (o + len > size)
			return 0;
		memset(d, 0, sizeof(*d));
		snprintf(d->name, sizeof(d->name), "s%u", i);
		memcpy(d->pattern, data + o, len);
		o += len;
		d->pattern_len = len;
		d->action = ctl % 3;
		d->flags = ctl & 4 ? HYP_SIGF_NOCASE : 0;
		d->proto = protos[(ctl >> 3) & 3];
		if (ctl & 0x20) {
			d->nports = 1;
			d->ports[0] = ports[ctl >> 6];
		}
	}
	if (o >= size)
		return 0;
	err[0] = 0;
	r = sigset_compile(&set, defs, n, err, sizeof(err));
	if (r != 0 && r != -E2BIG && r != -EINVAL)
		abort();
	if (r) {
		if (!err[0])
			abort();
		return 0;
	}
	uint8_t sel = data[o++];
	uint8_t proto = protos[1 + sel % 3];
	uint16_t dport = ports[(sel >> 2) & 3];
	__u16 st = 0;

	if (sigset_scan(&set, &st, data + o, size - o, proto, dport) != naive(n, data + o, size - o, proto, dport))
		abort();
	sigset_free(&set);
	return 0;
}
