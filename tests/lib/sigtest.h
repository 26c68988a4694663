/* Signature suites: building signature definitions and loading a compiled set into a test datapath. */
#ifndef HYP_SIGTEST_H
#define HYP_SIGTEST_H

#include <stdbool.h>
#include <stdint.h>
#include "sigcompile.h"

struct dpt;

/* One definition: pattern of len bytes; proto 0 = any protocol, port 0 = any port. */
void sigdef_fill(struct hyp_sigdef *d, const char *name, const void *pat, uint32_t len, uint8_t action,
		 uint8_t flags, uint8_t proto, uint16_t port);
/* Reference scope rule (docs/design.md): proto 0 matches any protocol, no ports any port. */
bool sigdef_in_scope(const struct hyp_sigdef *d, uint8_t proto, uint16_t dport);
/* What the daemon's dp_config_apply does: the compiled set into the inactive generation (all_gens: into
 * every generation, so later config flips keep it), t->cfg's nsigs/dfa_states updated, then flip.
 * Returns 0 or -errno. */
int dpt_sigset_push(struct dpt *t, const struct hyp_sigset *set, bool all_gens);

#endif
