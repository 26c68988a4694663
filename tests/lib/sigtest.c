/* Helpers behind sigtest.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "dptest.h"
#include "sigtest.h"
#include "hyperion.skel.h"

void sigdef_fill(struct hyp_sigdef *d, const char *name, const void *pat, uint32_t len, uint8_t action,
		 uint8_t flags, uint8_t proto, uint16_t port)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	memcpy(d->pattern, pat, len);
	d->pattern_len = len;
	d->action = action;
	d->flags = flags;
	d->proto = proto;
	if (port) {
		d->nports = 1;
		d->ports[0] = port;
	}
}

bool sigdef_in_scope(const struct hyp_sigdef *d, uint8_t proto, uint16_t dport)
{
	if (d->proto && d->proto != proto)
		return false;
	if (!d->nports)
		return true;
	for (unsigned i = 0; i < d->nports; i++)
		if (d->ports[i] == dport)
			return true;
	return false;
}

static int sigset_write_gen(struct dpt *t, const struct hyp_sigset *set, uint32_t g)
{
	int fd_sigs = bpf_map__fd(t->skel->maps.sigs), fd_dfa = bpf_map__fd(t->skel->maps.dfa);
	int fd_out = bpf_map__fd(t->skel->maps.dfa_out);
	struct hyp_sig none = {};

	for (uint32_t i = 0; i < HYP_SIG_MAX; i++) {
		uint32_t k = g * HYP_SIG_MAX + i;

		if (bpf_map_update_elem(fd_sigs, &k, i < set->nsigs ? &set->sigs[i] : &none, BPF_ANY))
			return -errno;
	}
	for (uint32_t i = 0; i < set->nstates; i++) {
		uint32_t k = g * HYP_DFA_STATES_MAX + i;

		if (bpf_map_update_elem(fd_dfa, &k, &set->rows[i], BPF_ANY) ||
		    bpf_map_update_elem(fd_out, &k, &set->out[i], BPF_ANY))
			return -errno;
	}
	return 0;
}

int dpt_sigset_push(struct dpt *t, const struct hyp_sigset *set, bool all_gens)
{
	uint32_t zero = 0, cur = 0;
	int err;

	if (bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.gen), &zero, &cur))
		return -errno;
	for (uint32_t g = 0; g < HYP_GENERATIONS; g++) {
		if (!all_gens && g != (cur + 1) % HYP_GENERATIONS)
			continue;
		err = sigset_write_gen(t, set, g);
		if (err)
			return err;
	}
	t->cfg.nsigs = set->nsigs;
	t->cfg.dfa_states = set->nstates;
	return dpt_config_push(t);
}
