/* A policy: one Lua state running the operator's policy file, its config, signatures and hooks. */
#ifndef HYP_POLICY_H
#define HYP_POLICY_H

#include <stddef.h>
#include "hyperion_abi.h"

struct hyp_daemon;
struct hyp_policy;

/* Create a fresh Lua state and run the file: collects hx.config{}, hx.signature{}, hx.on(), timers.
 * Touches neither the datapath nor the running policy. 0 or -errno; "file:line: message" in err. */
int policy_load(struct hyp_daemon *d, const char *path, struct hyp_policy **out, char *err, size_t errlen);
/* Make p the running policy: write its config + signatures to the datapath in one generation flip,
 * move hx.store from old (may be NULL), start p's timers, stop old's. On error nothing changes. */
int policy_activate(struct hyp_daemon *d, struct hyp_policy *p, struct hyp_policy *old, char *err,
		    size_t errlen);
/* Hand a batch of events to the hooks registered for their kinds (one Lua call per batch). */
void policy_dispatch(struct hyp_daemon *d, struct hyp_policy *p, const struct hyp_event *ev, size_t n);
void policy_free(struct hyp_policy *p);
/* hx.store serialised (for the state snapshot) and restored (at start). */
int policy_store_dump(struct hyp_policy *p, char **buf, size_t *len);
int policy_store_load(struct hyp_policy *p, const char *buf, size_t len);
/* Number of signatures and hooks (status). */
unsigned policy_nsigs(const struct hyp_policy *p);
const char *policy_path(const struct hyp_policy *p);
/* The policy's signature definitions, indexed by signature id (for `sig list`). */
struct hyp_sigdef;
const struct hyp_sigdef *policy_sigdefs(const struct hyp_policy *p, unsigned *n);

#endif
