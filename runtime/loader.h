/* Loader: open the datapath skeleton, attach XDP + tc egress through bpf_links, pin and re-adopt. */
#ifndef HYP_LOADER_H
#define HYP_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include "hyperion_abi.h"

#define HYP_PIN_DIR_DEFAULT "/sys/fs/bpf/hyperion"
#define HYP_IFACES_MAX 16

enum hyp_xdp_mode {
	HYP_XDP_AUTO = 0,   /* native, falling back to generic */
	HYP_XDP_NATIVE = 1,
	HYP_XDP_GENERIC = 2
};

struct hyp_loader_opts {
	const char *pin_dir;        /* NULL: HYP_PIN_DIR_DEFAULT; "" : do not pin (tests) */
	__u32 flows_max;            /* 0: datapath default */
	__u32 flows_new_max;
	__u32 bans_max;
	__u32 src_max;
	__u32 ringbuf_bytes;
};

/* One loaded datapath: skeleton + the fds of every map, valid whether freshly loaded or re-adopted. */
struct hyp_dp {
	struct hyperion_bpf *skel;
	bool adopted;               /* maps came from pins of an earlier run */
	int fd_gen, fd_policy, fd_flows, fd_flows_new, fd_bans4, fd_bans6, fd_allow4, fd_allow6;
	int fd_rl, fd_ev_sample, fd_sigs, fd_dfa, fd_dfa_out, fd_books, fd_events, fd_vcache;
	__u32 vcache_slots;         /* the verdict cache's max_entries (runtime/vcache.c) */
	int prog_xdp_fd, prog_tc_fd;
	char pin_dir[256];
	int nifaces;
	struct {
		int ifindex;
		char name[32];
		int xdp_link_fd;        /* -1 if not attached */
		int tc_link_fd;
		int tci_link_fd;        /* tc ingress (SYN cookie ACKs); -1 if not attached */
		enum hyp_xdp_mode mode; /* the mode actually used */
	} ifaces[HYP_IFACES_MAX];
	/* appended: bit i set = ifaces[i] egress attached through a clsact filter (no tcx link to pin),
	 * bit HYP_IFACES_MAX + i the same for ingress */
	__u32 tc_legacy_mask;
	int prog_tci_fd;            /* tc ingress program; -1 if this kernel cannot run it (< 6.9) */
	struct hyp_blkf *blkf;      /* ban/allow pre-filter (runtime/blkfilter.c); NULL: none kept */
};

/* Open + load (or re-adopt maps pinned under pin_dir). Returns 0 or -errno; logs once on failure. */
int dp_open(struct hyp_dp *dp, const struct hyp_loader_opts *opts);
/* Attach XDP (mode) and tc egress to ifname; re-uses pinned links when they exist. */
int dp_attach(struct hyp_dp *dp, const char *ifname, enum hyp_xdp_mode mode);
/* Detach everything this dp attached, unpin links and maps (a clean stop). */
int dp_detach_all(struct hyp_dp *dp);
/* Close fds, keep pins (kill -9 semantics: datapath keeps enforcing). */
void dp_close(struct hyp_dp *dp);
/* Remove the pin directory (maps and links); used by tests and `dp_detach_all`. */
int dp_unpin(const char *pin_dir);

#endif
