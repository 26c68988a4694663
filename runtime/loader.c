/* Loader: open the datapath skeleton, re-adopt pinned maps, attach XDP + tc egress through pinned links. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <bpf/btf.h>
#include "blkfilter.h"
#include "hyperion.skel.h"
#include "loader.h"
#include "log.h"
#include "maps.h"

/* Where bpffs is mounted when it is missing (systemd normally does it). */
#define LOADER_BPFFS "/sys/fs/bpf"
/* Upper bound on maps in the object (16 today); only sizes a local bookkeeping array. */
#define LOADER_MAPS_MAX 64
/* bpf_attach_type values newer than this system's linux/bpf.h (kernel 6.6+). */
#define LOADER_BPF_TCX_INGRESS 46
#define LOADER_BPF_TCX_EGRESS 47
#define LOADER_BPF_LINK_TYPE_TCX 11
/* Legacy clsact filter identity, used only when tcx is unavailable: fixed so a restart replaces it. */
#define LOADER_TC_HANDLE 0x4859 /* "HY" */
#define LOADER_TC_PRIORITY 1
/* Environment variable that forces the clsact egress path when set to "1". */
#define LOADER_TC_LEGACY_ENV "HYP_TC_LEGACY"
/* libbpf 1.1 passes the kernel's internal ENOTSUPP (524) through. */
#define LOADER_ENOTSUPP 524

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

static int path_join(char *buf, size_t len, const char *dir, const char *prefix, const char *name)
{
	int n = snprintf(buf, len, "%s/%s%s", dir, prefix, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool path_on_bpffs(const char *path)
{
	struct statfs st;

	return !statfs(path, &st) && (unsigned long)st.f_type == (unsigned long)BPF_FS_MAGIC;
}

/* Mount bpffs at /sys/fs/bpf when nothing is there and the pin dir lives below it: without it nothing
 * survives a restart. A pin dir on another bpffs mount leaves /sys alone (read-only in containers). */
static int bpffs_ensure(const char *dir)
{
	size_t n = strlen(LOADER_BPFFS);

	if (strncmp(dir, LOADER_BPFFS, n) || (dir[n] != '/' && dir[n] != '\0'))
		return 0;
	if (path_on_bpffs(LOADER_BPFFS))
		return 0;
	if (mount("bpf", LOADER_BPFFS, "bpf", 0, "mode=0700")) {
		int err = -errno;
		hyp_log(LOG_ERR, "mount bpffs at %s: %s", LOADER_BPFFS, strerror(errno));
		return err;
	}
	/* Under `ip netns exec` /sys is a fresh mount private to this process: pins made there vanish with
	 * it, so kill -9 would stop enforcement and a restart could re-adopt nothing. Say so loudly. */
	hyp_log(LOG_WARNING, "mounted bpffs at %s: if this is a private mount namespace (ip netns exec), "
		"pins vanish when the daemon exits; run it in the host's mount namespace (nsenter --net=...)",
		LOADER_BPFFS);
	return 0;
}

/* Creates pin_dir (and missing parents) only inside a bpffs: pins anywhere else would fail later with
 * an obscure error, and dp_unpin() must never be pointed at an ordinary directory. */
static int pin_dir_prepare(const char *dir)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);

	if (dir[0] != '/' || len >= sizeof(buf)) {
		hyp_log(LOG_ERR, "pin dir \"%s\": must be an absolute path", dir);
		return -EINVAL;
	}
	memcpy(buf, dir, len + 1);
	/* Find the deepest existing ancestor; it must be on bpffs. */
	char *cut = buf + len;
	struct stat st;
	while (stat(buf, &st)) {
		int e = errno;
		if (e != ENOENT || !(cut = strrchr(buf, '/')) || cut == buf) {
			hyp_log(LOG_ERR, "pin dir %s: %s: %s", dir, buf, strerror(e));
			return -e;
		}
		*cut = '\0';
	}
	if (!S_ISDIR(st.st_mode) || !path_on_bpffs(buf)) {
		hyp_log(LOG_ERR, "pin dir %s: %s is not a directory on a bpf filesystem (mount -t bpf)", dir, buf);
		return -EINVAL;
	}
	/* Create the missing components one by one. */
	for (char *p = buf + strlen(buf); p < buf + len; p += strlen(p)) {
		*p = '/';
		if (mkdir(buf, 0700) && errno != EEXIST) {
			int err = -errno;
			hyp_log(LOG_ERR, "pin dir %s: mkdir %s: %s", dir, buf, strerror(errno));
			return err;
		}
	}
	return 0;
}

/* A pinned map is re-adopted only if it is exactly what this object would create: anything else means
 * a different datapath version, and silently replacing it would drop its bans and flows. */
static int map_check_compat(struct bpf_map *map, int fd, const char *path, const char *dir)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		hyp_log(LOG_ERR, "pinned %s is not a map (%s); remove it or choose another pin dir", path,
			strerror(errno));
		return -EEXIST;
	}
	if (info.type != bpf_map__type(map) || info.key_size != bpf_map__key_size(map) ||
	    info.value_size != bpf_map__value_size(map) || info.max_entries != bpf_map__max_entries(map) ||
	    info.map_flags != bpf_map__map_flags(map)) {
		hyp_log(LOG_ERR, "pinned map %s is incompatible: type %u/%u key %u/%u value %u/%u max_entries "
			"%u/%u flags %#x/%#x (pinned/wanted); start with the old sizes, or stop the old datapath "
			"cleanly (or rm its pins in %s) to start a new layout", path, info.type, bpf_map__type(map),
			info.key_size, bpf_map__key_size(map), info.value_size, bpf_map__value_size(map),
			info.max_entries, bpf_map__max_entries(map), info.map_flags, bpf_map__map_flags(map), dir);
		return -EEXIST;
	}
	return 0;
}

/* Re-adopt every pinned map found under dir; *adopted[i] marks map i (object order). */
static int maps_adopt(struct hyperion_bpf *skel, const char *dir, bool *adopted, int *nadopted)
{
	struct bpf_map *map;
	int i = 0;

	bpf_object__for_each_map(map, skel->obj) {
		char path[PATH_MAX];
		int fd, err;

		if (i >= LOADER_MAPS_MAX) {
			hyp_log(LOG_ERR, "datapath object has more than %d maps (LOADER_MAPS_MAX)", LOADER_MAPS_MAX);
			return -E2BIG;
		}
		adopted[i] = false;
		if (bpf_map__is_internal(map)) {
			i++;
			continue;       /* .rodata/.bss belong to one program instance */
		}
		if (path_join(path, sizeof(path), dir, "", bpf_map__name(map)))
			return -ENAMETOOLONG;
		fd = bpf_obj_get(path);
		if (fd < 0) {
			if (fd == -ENOENT) {
				i++;
				continue;
			}
			hyp_log(LOG_ERR, "open pinned map %s: %s", path, strerror(-fd));
			return fd;
		}
		err = map_check_compat(map, fd, path, dir);
		if (!err)
			err = bpf_map__reuse_fd(map, fd);
		close(fd);      /* reuse_fd keeps its own dup */
		if (err) {
			if (err != -EEXIST)
				hyp_log(LOG_ERR, "re-adopt pinned map %s: %s", path, strerror(-err));
			return err;
		}
		adopted[i++] = true;
		(*nadopted)++;
	}
	return 0;
}

/* Pin every map that was not re-adopted; on failure remove the pins made here. */
static int maps_pin(struct hyperion_bpf *skel, const char *dir, const bool *adopted, int *npinned)
{
	struct bpf_map *map;
	int i = 0, err = 0;

	bpf_object__for_each_map(map, skel->obj) {
		char path[PATH_MAX];

		if (bpf_map__is_internal(map) || adopted[i++])
			continue;
		err = path_join(path, sizeof(path), dir, "", bpf_map__name(map));
		if (!err)
			err = bpf_map__pin(map, path);
		if (err) {
			hyp_log(LOG_ERR, "pin map %s at %s: %s", bpf_map__name(map), path, strerror(-err));
			break;
		}
		(*npinned)++;
	}
	if (!err)
		return 0;
	i = 0;
	bpf_object__for_each_map(map, skel->obj) {
		if (!bpf_map__is_internal(map) && !adopted[i] && bpf_map__is_pinned(map))
			bpf_map__unpin(map, NULL);
		i++;
	}
	return err;
}

static void dp_fds_fill(struct hyp_dp *dp)
{
	struct hyperion_bpf *s = dp->skel;

	dp->fd_gen = bpf_map__fd(s->maps.gen);
	dp->fd_policy = bpf_map__fd(s->maps.policy);
	dp->fd_flows = bpf_map__fd(s->maps.flows);
	dp->fd_flows_new = bpf_map__fd(s->maps.flows_new);
	dp->fd_bans4 = bpf_map__fd(s->maps.bans4);
	dp->fd_bans6 = bpf_map__fd(s->maps.bans6);
	dp->fd_allow4 = bpf_map__fd(s->maps.allow4);
	dp->fd_allow6 = bpf_map__fd(s->maps.allow6);
	dp->fd_rl = bpf_map__fd(s->maps.rl);
	dp->fd_ev_sample = bpf_map__fd(s->maps.ev_sample);
	dp->fd_sigs = bpf_map__fd(s->maps.sigs);
	dp->fd_dfa = bpf_map__fd(s->maps.dfa);
	dp->fd_dfa_out = bpf_map__fd(s->maps.dfa_out);
	dp->fd_books = bpf_map__fd(s->maps.books);
	dp->fd_events = bpf_map__fd(s->maps.events);
	dp->fd_vcache = bpf_map__fd(s->maps.vcache);
	dp->vcache_slots = bpf_map__max_entries(s->maps.vcache);
	dp->prog_xdp_fd = bpf_program__fd(s->progs.hyp_xdp);
	dp->prog_tc_fd = bpf_program__fd(s->progs.hyp_tc_egress);
	dp->prog_tci_fd = bpf_program__autoload(s->progs.hyp_tc_ingress) ?
			  bpf_program__fd(s->progs.hyp_tc_ingress) : -1;
}

static void dp_reset(struct hyp_dp *dp)
{
	memset(dp, 0, sizeof(*dp));
	dp->fd_gen = dp->fd_policy = dp->fd_flows = dp->fd_flows_new = -1;
	dp->fd_bans4 = dp->fd_bans6 = dp->fd_allow4 = dp->fd_allow6 = -1;
	dp->fd_rl = dp->fd_ev_sample = dp->fd_sigs = dp->fd_dfa = dp->fd_dfa_out = -1;
	dp->fd_books = dp->fd_events = dp->fd_vcache = -1;
	dp->prog_xdp_fd = dp->prog_tc_fd = dp->prog_tci_fd = -1;
}

static int dp_sizes_apply(struct hyperion_bpf *s, const struct hyp_loader_opts *o)
{
	int err = 0;

	if (o->flows_max)
		err = err ?: bpf_map__set_max_entries(s->maps.flows, o->flows_max);
	if (o->flows_new_max)
		err = err ?: bpf_map__set_max_entries(s->maps.flows_new, o->flows_new_max);
	if (o->bans_max) {
		err = err ?: bpf_map__set_max_entries(s->maps.bans4, o->bans_max);
		err = err ?: bpf_map__set_max_entries(s->maps.bans6, o->bans_max);
	}
	if (o->src_max) {
		err = err ?: bpf_map__set_max_entries(s->maps.rl, o->src_max);
		err = err ?: bpf_map__set_max_entries(s->maps.ev_sample, o->src_max);
	}
	if (o->ringbuf_bytes)
		err = err ?: bpf_map__set_max_entries(s->maps.events, o->ringbuf_bytes);
	return err;
}

static bool map_adopted(struct hyperion_bpf *s, const struct bpf_map *want, const bool *adopted)
{
	struct bpf_map *map;
	int i = 0;

	bpf_object__for_each_map(map, s->obj) {
		if (map == want)
			return i < LOADER_MAPS_MAX && adopted[i];
		i++;
	}
	return false;
}

/* A fresh policy map is all zeros: every port closed, no timeouts. Give it the documented defaults so
 * the datapath is sane even if it gets attached before the first policy is applied. A re-adopted one
 * is read instead, to pick up the running generation's clock offset for dp_now_ns(). */
static int dp_config_init(struct hyp_dp *dp, bool policy_adopted)
{
	struct hyp_config *cfg = malloc(sizeof(*cfg));
	int err;

	if (!cfg)
		return -ENOMEM;
	if (policy_adopted) {
		err = dp_config_read(dp, cfg, NULL);
	} else {
		config_defaults(cfg);
		err = dp_config_apply(dp, cfg, NULL);
	}
	free(cfg);
	return err;
}

/* Programs this kernel cannot run are left out rather than failing the load: the tc ingress program
 * needs the bpf_sk_assign_tcp_reqsk kfunc (6.9+); without it SYN cookies are refused at config time. */
static void dp_kernel_features(struct hyperion_bpf *s)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	bool reqsk = vmlinux && btf__find_by_name_kind(vmlinux, "bpf_sk_assign_tcp_reqsk", BTF_KIND_FUNC) > 0;

	btf__free(vmlinux);
	if (!reqsk) {
		hyp_log(LOG_WARNING, "kernel has no bpf_sk_assign_tcp_reqsk (6.9+): SYN cookies unavailable");
		bpf_program__set_autoload(s->progs.hyp_tc_ingress, false);
	}
}

int dp_open(struct hyp_dp *dp, const struct hyp_loader_opts *opts)
{
	static const struct hyp_loader_opts no_opts;
	const struct hyp_loader_opts *o = opts ? opts : &no_opts;
	const char *dir = o->pin_dir ? o->pin_dir : HYP_PIN_DIR_DEFAULT;
	bool adopted[LOADER_MAPS_MAX] = {0};
	int err, nadopted = 0, npinned = 0;

	dp_reset(dp);
	if (strlen(dir) >= sizeof(dp->pin_dir)) {
		hyp_log(LOG_ERR, "pin dir %s: longer than %zu bytes", dir, sizeof(dp->pin_dir) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(dp->pin_dir, dir);
	if (*dir) {
		err = bpffs_ensure(dir);
		if (!err)
			err = pin_dir_prepare(dir);
		if (err)
			return err;
	}
	dp->skel = hyperion_bpf__open();
	if (!dp->skel) {
		err = -errno;
		hyp_log(LOG_ERR, "open datapath object: %s", strerror(errno));
		return err ? err : -EINVAL;
	}
	err = dp_sizes_apply(dp->skel, o);
	if (err) {
		hyp_log(LOG_ERR, "set datapath map sizes: %s", strerror(-err));
		goto fail;
	}
	dp_kernel_features(dp->skel);
	if (*dir) {
		err = maps_adopt(dp->skel, dir, adopted, &nadopted);
		if (err)
			goto fail;      /* logged with the map's path */
	}
	err = hyperion_bpf__load(dp->skel);
	if (err) {
		hyp_log(LOG_ERR, "load datapath (verifier output above): %s", strerror(-err));
		goto fail;
	}
	if (*dir) {
		err = maps_pin(dp->skel, dir, adopted, &npinned);
		if (err)
			goto fail;
	}
	dp_fds_fill(dp);
	dp->adopted = nadopted > 0;
	err = cookie_key_init(bpf_map__fd(dp->skel->maps.cookie_key));
	if (err) {
		hyp_log(LOG_ERR, "SYN cookie secret: %s", strerror(-err));
		goto fail;
	}
	err = dp_config_init(dp, map_adopted(dp->skel, dp->skel->maps.policy, adopted));
	if (err)
		goto fail;
	err = blkf_open(dp);    /* without a filter every source is looked up (logged) */
	if (err)
		goto fail;
	if (*dir)
		hyp_log(LOG_INFO, "datapath loaded: %d maps re-adopted from %s, %d newly pinned", nadopted, dir,
			npinned);
	return 0;
fail:
	hyperion_bpf__destroy(dp->skel);
	dp_reset(dp);
	return err;
}

/* ---- attach ------------------------------------------------------------------------------------ */

/* Opens a pinned link and checks it is of link type `type` on ifindex. Returns the fd, -ENOENT if
 * nothing usable is pinned (a stale pin, e.g. of an interface that was re-created, is removed). */
static int link_adopt_open(const char *path, __u32 type, int ifindex)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path);

	if (fd < 0)
		return fd == -ENOENT ? -ENOENT : fd;
	/* xdp.ifindex and tcx.ifindex share the first word of the union. */
	if (!bpf_obj_get_info_by_fd(fd, &info, &len) && info.type == type && (int)info.xdp.ifindex == ifindex)
		return fd;
	hyp_log(LOG_WARNING, "pinned link %s is stale (type %u, ifindex %u; want type %u ifindex %d): replacing",
		path, info.type, info.xdp.ifindex, type, ifindex);
	close(fd);
	unlink(path);
	return -ENOENT;
}

static enum hyp_xdp_mode xdp_mode_query(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query(ifindex, 0, &q))
		return HYP_XDP_AUTO;
	if (q.attach_mode == XDP_ATTACHED_SKB)
		return HYP_XDP_GENERIC;
	if (q.attach_mode == XDP_ATTACHED_DRV)
		return HYP_XDP_NATIVE;
	return HYP_XDP_AUTO;
}

static const char *xdp_mode_name(enum hyp_xdp_mode m)
{
	return m == HYP_XDP_NATIVE ? "native" : m == HYP_XDP_GENERIC ? "generic" : "auto";
}

static int xdp_link_create(int prog_fd, int ifindex, const char *ifname, enum hyp_xdp_mode mode)
{
	LIBBPF_OPTS(bpf_link_create_opts, lo);
	int fd;

	lo.flags = mode == HYP_XDP_GENERIC ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lo);
	if (fd < 0 && fd != -EBUSY && fd != -EEXIST && mode == HYP_XDP_AUTO) {
		hyp_log(LOG_INFO, "native XDP on %s unavailable (%s): using generic XDP", ifname, strerror(-fd));
		lo.flags = XDP_FLAGS_SKB_MODE;
		fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lo);
	}
	if (fd < 0)
		hyp_log(LOG_ERR, "attach XDP (%s) to %s: %s%s", xdp_mode_name(mode), ifname, strerror(-fd),
			fd == -EBUSY || fd == -EEXIST ? " (another XDP program is attached: ip link set dev "
							 "IFACE xdp off)" : "");
	return fd;
}

/* Pins a freshly created link; on failure the link is closed, which detaches it. */
static int link_pin(int fd, const char *path)
{
	int err = bpf_obj_pin(fd, path);

	if (err)
		hyp_log(LOG_ERR, "pin link at %s: %s", path, strerror(-err));
	return err;
}

static int attach_xdp(struct hyp_dp *dp, int slot, enum hyp_xdp_mode mode, bool *readopted)
{
	typeof(dp->ifaces[0]) *ifc = &dp->ifaces[slot];
	char path[PATH_MAX] = "";
	int fd, err;

	if (*dp->pin_dir) {
		if (path_join(path, sizeof(path), dp->pin_dir, "link_xdp_", ifc->name))
			return -ENAMETOOLONG;
		fd = link_adopt_open(path, BPF_LINK_TYPE_XDP, ifc->ifindex);
		if (fd >= 0) {
			/* Swap the program inside the live link: the interface is never without one. */
			err = bpf_link_update(fd, dp->prog_xdp_fd, NULL);
			if (err) {
				hyp_log(LOG_ERR, "update pinned XDP link %s: %s", path, strerror(-err));
				close(fd);
				return err;
			}
			ifc->xdp_link_fd = fd;
			*readopted = true;
			ifc->mode = xdp_mode_query(ifc->ifindex);
			if (mode != HYP_XDP_AUTO && ifc->mode != HYP_XDP_AUTO && mode != ifc->mode)
				hyp_log(LOG_WARNING, "%s keeps XDP mode %s from the re-adopted link (asked for %s): "
					"changing mode needs a clean stop first", ifc->name,
					xdp_mode_name(ifc->mode), xdp_mode_name(mode));
			hyp_log(LOG_INFO, "re-adopted XDP link on %s (%s)", ifc->name, xdp_mode_name(ifc->mode));
			return 0;
		}
		if (fd != -ENOENT) {
			hyp_log(LOG_ERR, "open pinned XDP link %s: %s", path, strerror(-fd));
			return fd;
		}
	}
	fd = xdp_link_create(dp->prog_xdp_fd, ifc->ifindex, ifc->name, mode);
	if (fd < 0)
		return fd;
	if (*path && (err = link_pin(fd, path))) {
		close(fd);
		return err;
	}
	ifc->xdp_link_fd = fd;
	ifc->mode = xdp_mode_query(ifc->ifindex);
	if (ifc->mode == HYP_XDP_AUTO)
		ifc->mode = mode == HYP_XDP_AUTO ? HYP_XDP_NATIVE : mode;
	return 0;
}

/* The two tc hooks: egress (conntrack of what the host sends) and ingress (hands the ACK of a SYN
 * cookie handshake to its listener, bpf/syncookie.h). Each has its own pinned link name and clsact
 * attach point; legacy_shift is where its bits start in tc_legacy_mask. */
struct tc_hook_desc {
	const char *name;
	const char *pin_prefix;
	int tcx_type;
	enum bpf_tc_attach_point point;
	int legacy_shift;
};

static const struct tc_hook_desc tc_egress = { "egress", "link_tc_", LOADER_BPF_TCX_EGRESS, BPF_TC_EGRESS, 0 };
static const struct tc_hook_desc tc_ingress = { "ingress", "link_tci_", LOADER_BPF_TCX_INGRESS, BPF_TC_INGRESS,
						HYP_IFACES_MAX };

static int *tc_link_fd(struct hyp_dp *dp, int slot, const struct tc_hook_desc *h)
{
	return h == &tc_egress ? &dp->ifaces[slot].tc_link_fd : &dp->ifaces[slot].tci_link_fd;
}

static int tc_prog_fd(const struct hyp_dp *dp, const struct tc_hook_desc *h)
{
	return h == &tc_egress ? dp->prog_tc_fd : dp->prog_tci_fd;
}

/* Kernels without tcx (< 6.6): a clsact filter with a fixed handle, replaced in place on restart.
 * It cannot be pinned; it stays attached until dp_detach_all() or the interface goes away. */
static int attach_tc_legacy(struct hyp_dp *dp, int slot, const struct tc_hook_desc *h)
{
	typeof(dp->ifaces[0]) *ifc = &dp->ifaces[slot];
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifc->ifindex, .attach_point = h->point);
	LIBBPF_OPTS(bpf_tc_opts, to, .prog_fd = tc_prog_fd(dp, h), .handle = LOADER_TC_HANDLE,
		    .priority = LOADER_TC_PRIORITY, .flags = BPF_TC_F_REPLACE);
	int err = bpf_tc_hook_create(&hook);

	if (err && err != -EEXIST) {
		hyp_log(LOG_ERR, "create clsact qdisc on %s: %s", ifc->name, strerror(-err));
		return err;
	}
	err = bpf_tc_attach(&hook, &to);
	if (err) {
		hyp_log(LOG_ERR, "attach tc %s filter to %s: %s", h->name, ifc->name, strerror(-err));
		return err;
	}
	dp->tc_legacy_mask |= 1u << (slot + h->legacy_shift);
	hyp_log(LOG_INFO, "tc %s on %s attached as clsact filter (tcx unavailable or %s=1)", h->name, ifc->name,
		LOADER_TC_LEGACY_ENV);
	return 0;
}

static void detach_tc_legacy(struct hyp_dp *dp, int slot, const struct tc_hook_desc *h)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = dp->ifaces[slot].ifindex, .attach_point = h->point);
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = LOADER_TC_HANDLE, .priority = LOADER_TC_PRIORITY);

	if (!(dp->tc_legacy_mask & (1u << (slot + h->legacy_shift))))
		return;
	bpf_tc_detach(&hook, &to);
	dp->tc_legacy_mask &= ~(1u << (slot + h->legacy_shift));
}

static int attach_tc(struct hyp_dp *dp, int slot, const struct tc_hook_desc *h, bool *readopted)
{
	typeof(dp->ifaces[0]) *ifc = &dp->ifaces[slot];
	int *link_fd = tc_link_fd(dp, slot, h), prog_fd = tc_prog_fd(dp, h);
	char path[PATH_MAX] = "";
	int fd, err;

	if (prog_fd < 0)
		return 0;   /* a program this kernel cannot run (tc ingress before 6.9): left out at load */
	if (*dp->pin_dir) {
		if (path_join(path, sizeof(path), dp->pin_dir, h->pin_prefix, ifc->name))
			return -ENAMETOOLONG;
		fd = link_adopt_open(path, LOADER_BPF_LINK_TYPE_TCX, ifc->ifindex);
		if (fd >= 0) {
			err = bpf_link_update(fd, prog_fd, NULL);
			if (err) {
				hyp_log(LOG_ERR, "update pinned tc link %s: %s", path, strerror(-err));
				close(fd);
				return err;
			}
			*link_fd = fd;
			*readopted = true;
			hyp_log(LOG_INFO, "re-adopted tc %s link on %s", h->name, ifc->name);
			return 0;
		}
		if (fd != -ENOENT) {
			hyp_log(LOG_ERR, "open pinned tc link %s: %s", path, strerror(-fd));
			return fd;
		}
	}
	/* HYP_TC_LEGACY=1 forces the clsact path: the test for it, and an escape hatch for tcx trouble. */
	const char *force = getenv(LOADER_TC_LEGACY_ENV);
	if (force && !strcmp(force, "1"))
		return attach_tc_legacy(dp, slot, h);
	fd = bpf_link_create(prog_fd, ifc->ifindex, (enum bpf_attach_type)h->tcx_type, NULL);
	if (fd == -EINVAL || fd == -EOPNOTSUPP || fd == -LOADER_ENOTSUPP)
		return attach_tc_legacy(dp, slot, h);
	if (fd < 0) {
		hyp_log(LOG_ERR, "attach tc %s (tcx) to %s: %s", h->name, ifc->name, strerror(-fd));
		return fd;
	}
	if (*path && (err = link_pin(fd, path))) {
		close(fd);
		return err;
	}
	*link_fd = fd;
	/* A clsact filter left by an earlier run on the legacy path would run the program twice. */
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifc->ifindex, .attach_point = h->point);
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = LOADER_TC_HANDLE, .priority = LOADER_TC_PRIORITY);
	/* Probe quietly: no clsact qdisc at all is the normal case, and libbpf would warn about it. */
	libbpf_print_fn_t old_print = libbpf_set_print(NULL);
	int found = !bpf_tc_query(&hook, &to);
	libbpf_set_print(old_print);
	if (found) {
		LIBBPF_OPTS(bpf_tc_opts, del, .handle = LOADER_TC_HANDLE, .priority = LOADER_TC_PRIORITY);
		bpf_tc_detach(&hook, &del);
	}
	return 0;
}

static void detach_tc(struct hyp_dp *dp, int slot, const struct tc_hook_desc *h)
{
	int *link_fd = tc_link_fd(dp, slot, h);
	char path[PATH_MAX];

	if (*link_fd >= 0) {
		bpf_link_detach(*link_fd);
		close(*link_fd);
		*link_fd = -1;
		if (*dp->pin_dir && !path_join(path, sizeof(path), dp->pin_dir, h->pin_prefix,
					       dp->ifaces[slot].name))
			unlink(path);
	}
	detach_tc_legacy(dp, slot, h);
}

/* Detaches one interface: links are detached (even if other fds or pins hold them) and unpinned. */
static void detach_iface(struct hyp_dp *dp, int slot)
{
	typeof(dp->ifaces[0]) *ifc = &dp->ifaces[slot];
	char path[PATH_MAX];

	if (ifc->xdp_link_fd >= 0) {
		bpf_link_detach(ifc->xdp_link_fd);
		close(ifc->xdp_link_fd);
		ifc->xdp_link_fd = -1;
		if (*dp->pin_dir && !path_join(path, sizeof(path), dp->pin_dir, "link_xdp_", ifc->name))
			unlink(path);
	}
	detach_tc(dp, slot, &tc_egress);
	detach_tc(dp, slot, &tc_ingress);
}

/* A failed attach: a link this call re-adopted from its pin is left attached and pinned (only our fd is
 * dropped), so the detach that follows cannot touch it. */
static void link_fd_keep_pinned(int *fd, bool readopted)
{
	if (*fd >= 0 && readopted) {
		close(*fd);
		*fd = -1;
	}
}

int dp_attach(struct hyp_dp *dp, const char *ifname, enum hyp_xdp_mode mode)
{
	int slot = dp->nifaces, ifindex, err;

	if (!dp->skel)
		return -EINVAL;
	if (!ifname || strlen(ifname) >= sizeof(dp->ifaces[0].name) || strlen(ifname) >= IF_NAMESIZE) {
		hyp_log(LOG_ERR, "attach: bad interface name \"%s\"", ifname ? ifname : "(null)");
		return -EINVAL;
	}
	ifindex = (int)if_nametoindex(ifname);
	if (!ifindex) {
		hyp_log(LOG_ERR, "attach: interface %s does not exist (in this network namespace)", ifname);
		return -ENODEV;
	}
	for (int i = 0; i < dp->nifaces; i++)
		if (dp->ifaces[i].ifindex == ifindex) {
			hyp_log(LOG_ERR, "attach: %s is already attached", ifname);
			return -EEXIST;
		}
	if (slot >= HYP_IFACES_MAX) {
		hyp_log(LOG_ERR, "attach %s: at most %d interfaces", ifname, HYP_IFACES_MAX);
		return -E2BIG;
	}
	memset(&dp->ifaces[slot], 0, sizeof(dp->ifaces[slot]));
	dp->ifaces[slot].ifindex = ifindex;
	strcpy(dp->ifaces[slot].name, ifname);
	dp->ifaces[slot].xdp_link_fd = -1;
	dp->ifaces[slot].tc_link_fd = -1;
	dp->ifaces[slot].tci_link_fd = -1;
	dp->tc_legacy_mask &= ~(1u << slot | 1u << (slot + HYP_IFACES_MAX));

	bool xdp_readopted = false, tce_readopted = false, tci_readopted = false;
	err = attach_xdp(dp, slot, mode, &xdp_readopted);
	if (!err)
		err = attach_tc(dp, slot, &tc_egress, &tce_readopted);
	if (!err)
		err = attach_tc(dp, slot, &tc_ingress, &tci_readopted);
	if (err) {
		/* Undo this call only: a re-adopted link was working before us, so detaching it here would
		 * open the very window re-adoption avoids. Keep it pinned, just drop our fd. */
		typeof(dp->ifaces[0]) *ifc = &dp->ifaces[slot];
		link_fd_keep_pinned(&ifc->xdp_link_fd, xdp_readopted);
		link_fd_keep_pinned(&ifc->tc_link_fd, tce_readopted);
		link_fd_keep_pinned(&ifc->tci_link_fd, tci_readopted);
		detach_iface(dp, slot);
		return err;
	}
	dp->nifaces++;
	hyp_log(LOG_INFO, "attached to %s (ifindex %d): XDP %s, tc egress %s, tc ingress %s", ifname, ifindex,
		xdp_mode_name(dp->ifaces[slot].mode), dp->tc_legacy_mask & (1u << slot) ? "clsact" : "tcx",
		dp->prog_tci_fd < 0 ? "none (no SYN cookies)" :
		dp->tc_legacy_mask & (1u << (slot + HYP_IFACES_MAX)) ? "clsact" : "tcx");
	return 0;
}

int dp_detach_all(struct hyp_dp *dp)
{
	for (int i = 0; i < dp->nifaces; i++)
		detach_iface(dp, i);
	dp->nifaces = 0;
	if (!*dp->pin_dir)
		return 0;
	return dp_unpin(dp->pin_dir);
}

void dp_close(struct hyp_dp *dp)
{
	/* Closing a pinned link's fd leaves it attached: that is the point of kill -9 semantics. */
	for (int i = 0; i < dp->nifaces; i++) {
		if (dp->ifaces[i].xdp_link_fd >= 0)
			close(dp->ifaces[i].xdp_link_fd);
		if (dp->ifaces[i].tc_link_fd >= 0)
			close(dp->ifaces[i].tc_link_fd);
		if (dp->ifaces[i].tci_link_fd >= 0)
			close(dp->ifaces[i].tci_link_fd);
	}
	blkf_close(dp);
	hyperion_bpf__destroy(dp->skel);
	dp_reset(dp);
}

int dp_unpin(const char *pin_dir)
{
	struct dirent *de;
	DIR *d;
	int err = 0;

	if (!pin_dir || !*pin_dir)
		return 0;
	d = opendir(pin_dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		err = -errno;
		hyp_log(LOG_ERR, "unpin %s: %s", pin_dir, strerror(errno));
		return err;
	}
	/* Never delete outside a bpffs: a typo in the pin dir must not remove ordinary files. */
	if (!path_on_bpffs(pin_dir)) {
		closedir(d);
		hyp_log(LOG_ERR, "unpin %s: not on a bpf filesystem, refusing to remove anything", pin_dir);
		return -EINVAL;
	}
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (path_join(path, sizeof(path), pin_dir, "", de->d_name))
			continue;
		if (unlink(path) && !err) {
			err = -errno;
			hyp_log(LOG_ERR, "unpin %s: %s", path, strerror(errno));
		}
	}
	closedir(d);
	if (rmdir(pin_dir) && !err) {
		err = -errno;
		hyp_log(LOG_ERR, "remove pin dir %s: %s", pin_dir, strerror(errno));
	}
	return err;
}
