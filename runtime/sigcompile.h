/* Signature compiler: literal patterns (optionally case-insensitive) to one DFA the datapath steps. */
#ifndef HYP_SIGCOMPILE_H
#define HYP_SIGCOMPILE_H

#include <stddef.h>
#include "hyperion_abi.h"

/* One signature as the policy declares it. */
struct hyp_sigdef {
	char name[HYP_SIG_NAME_MAX];
	__u8 pattern[HYP_PATTERN_MAX];
	__u32 pattern_len;          /* 1..HYP_PATTERN_MAX */
	__u8 action;                /* enum hyp_sig_action */
	__u8 proto;                 /* 0 any, 6 tcp, 17 udp, 1 icmp, 58 icmpv6 */
	__u8 flags;                 /* HYP_SIGF_NOCASE */
	__u8 nports;
	__u16 ports[HYP_SIG_PORTS_MAX];   /* host order */
};

/* The compiled set, ready for dp_config_apply(): rows/out/sigs indexed from 0 (generation offset added
 * when written). Signature id = index in defs. */
struct hyp_sigset {
	__u32 nsigs;
	__u32 nstates;
	struct hyp_sigdef defs[HYP_SIG_MAX];
	struct hyp_sig sigs[HYP_SIG_MAX];
	struct hyp_dfa_row *rows;   /* nstates rows */
	struct hyp_dfa_out *out;    /* nstates entries */
};

/* Validate one definition: returns 0 or -EINVAL with a message in err. */
int sig_validate(const struct hyp_sigdef *d, char *err, size_t errlen);
/* Compile n definitions. Returns 0, -E2BIG (too many states/sigs), -EINVAL; message in err. */
int sigset_compile(struct hyp_sigset *set, const struct hyp_sigdef *defs, size_t n, char *err, size_t errlen);
void sigset_free(struct hyp_sigset *set);
/* Reference matcher over one buffer, starting from *state (for tests): the datapath's rule — the first
 * drop/ban signature in scope wins, else the first alert in scope; -1 if none. *state is updated. */
int sigset_scan(const struct hyp_sigset *set, __u16 *state, const __u8 *buf, size_t len, __u8 proto,
		__u16 dport);

#endif
