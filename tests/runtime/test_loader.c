/* runtime/loader.c in a network namespace: attach native/generic XDP + tcx, pin, re-adopt, detach. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hyperion_abi.h"
#include "loader.h"
#include "log.h"
#include "maps.h"
#include "hyperion.skel.h"
#include "tap.h"

#define TCX_INGRESS 46          /* BPF_TCX_INGRESS, BPF_TCX_EGRESS: newer than this system's linux/bpf.h */
#define TCX_EGRESS 47
#define LINK_TYPE_TCX 11        /* BPF_LINK_TYPE_TCX */
/* The watcher samples the XDP attachment at most this many times (bounded loop). */
#define WATCH_SAMPLES_MAX 2000000

static char ns_name[64], pin_dir[128], if_a[IF_NAMESIZE], if_b[IF_NAMESIZE];
static int orig_ns = -1;
static struct hyp_dp dp;

static void cleanup(void)
{
	char cmd[256];

	dp_close(&dp);
	dp_unpin(pin_dir);
	if (orig_ns >= 0)
		setns(orig_ns, CLONE_NEWNET);
	if (*ns_name) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", ns_name);
		if (system(cmd)) {
			/* best effort: the namespace may already be gone */
		}
	}
}

static void on_signal(int sig)
{
	(void)sig;
	exit(1);        /* runs cleanup() through atexit */
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int netns_setup(void)
{
	char path[128];
	int fd;

	snprintf(ns_name, sizeof(ns_name), "hyp-loader-%d", getpid());
	snprintf(if_a, sizeof(if_a), "hl%da", getpid() % 10000000);
	snprintf(if_b, sizeof(if_b), "hl%db", getpid() % 10000000);
	if (sh("ip netns add %s", ns_name))
		return -1;
	if (sh("ip -n %s link add %s type veth peer name %s && ip -n %s link set %s up && "
	       "ip -n %s link set %s up && ip -n %s addr add 192.0.2.1/24 dev %s && "
	       "ip -n %s addr add 192.0.2.2/24 dev %s", ns_name, if_a, if_b, ns_name, if_a, ns_name, if_b,
	       ns_name, if_a, ns_name, if_b))
		return -1;
	orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/run/netns/%s", ns_name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET))
		return -1;
	close(fd);
	return 0;
}

/* "xdp" (native) or "xdpgeneric" as a word on the interface's `ip link` line. */
static bool ip_link_has(const char *ifname, const char *word)
{
	return sh("ip link show dev %s | grep -qw %s", ifname, word) == 0;
}

static int pin_exists(const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	return stat(path, &st) == 0;
}

static struct bpf_link_info link_info_pinned(const char *name)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	int fd = bpf_obj_get(path);
	if (fd >= 0) {
		bpf_obj_get_info_by_fd(fd, &info, &len);
		close(fd);
	}
	return info;
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static __u32 map_id(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
}

static __u32 xdp_prog_attached(const char *ifname)
{
	__u32 id = 0;

	bpf_xdp_query_id((int)if_nametoindex(ifname), 0, &id);
	return id;
}

/* Programs on the tcx egress hook of ifname (BPF_PROG_QUERY accepts the ifindex as target). */
static __u32 tcx_count(const char *ifname, int type)
{
	__u32 ids[8], cnt = 8, flags = 0;

	if (bpf_prog_query((int)if_nametoindex(ifname), (enum bpf_attach_type)type, 0, &flags, ids, &cnt))
		return 0;
	return cnt;
}

static __u32 tcx_egress_count(const char *ifname)
{
	return tcx_count(ifname, TCX_EGRESS);
}

/* tc ingress carries the SYN cookie hand-off (bpf/syncookie.h); attached beside egress when the kernel
 * runs it (prog_tci_fd >= 0). */
static __u32 tcx_ingress_count(const char *ifname)
{
	return tcx_count(ifname, TCX_INGRESS);
}

/* Samples the XDP attachment of if_a until told to stop: proves there is no moment without a program. */
struct watch {
	atomic_bool stop;
	unsigned long samples, empty;
};

static void *watch_fn(void *arg)
{
	struct watch *w = arg;
	int ifindex = (int)if_nametoindex(if_a);

	while (!atomic_load(&w->stop) && w->samples < WATCH_SAMPLES_MAX) {
		__u32 id = 0;
		if (bpf_xdp_query_id(ifindex, 0, &id) || !id)
			w->empty++;
		w->samples++;
	}
	return NULL;
}

static void test_attach_and_readopt(void)
{
	struct hyp_loader_opts o = { .pin_dir = pin_dir };
	struct hyp_cidr ban;
	struct hyp_ban b;
	int err;

	err = dp_open(&dp, &o);
	TAP_EQ(err, 0, "dp_open with pin dir %s", pin_dir);
	if (err)
		return;         /* nothing below can work without a loaded datapath */
	TAP_CHECK(!dp.adopted, "first open: nothing to re-adopt");
	TAP_CHECK(pin_exists("bans4") && pin_exists("flows") && pin_exists("events") && pin_exists("policy"),
		  "maps pinned by name");

	TAP_EQ(dp_attach(&dp, if_a, HYP_XDP_AUTO), 0, "attach %s (auto)", if_a);
	TAP_EQ(dp.ifaces[0].mode, HYP_XDP_NATIVE, "veth takes native XDP");
	TAP_CHECK(ip_link_has(if_a, "xdp"), "ip link shows native xdp on %s", if_a);
	TAP_EQ(dp_attach(&dp, if_b, HYP_XDP_GENERIC), 0, "attach %s (generic)", if_b);
	TAP_EQ(dp.ifaces[1].mode, HYP_XDP_GENERIC, "generic mode recorded");
	TAP_CHECK(ip_link_has(if_b, "xdpgeneric"), "ip link shows xdpgeneric on %s", if_b);
	TAP_EQ(dp_attach(&dp, if_a, HYP_XDP_AUTO), -EEXIST, "attaching %s twice is -EEXIST", if_a);

	char n_xa[64], n_ta[64], n_xb[64], n_tb[64];
	snprintf(n_xa, sizeof(n_xa), "link_xdp_%s", if_a);
	snprintf(n_ta, sizeof(n_ta), "link_tc_%s", if_a);
	snprintf(n_xb, sizeof(n_xb), "link_xdp_%s", if_b);
	snprintf(n_tb, sizeof(n_tb), "link_tc_%s", if_b);
	struct bpf_link_info xa = link_info_pinned(n_xa), ta = link_info_pinned(n_ta);
	__u32 old_xdp_prog = prog_id(dp.prog_xdp_fd), old_tc_prog = prog_id(dp.prog_tc_fd);
	__u32 old_syn_prog = prog_id(bpf_program__fd(dp.skel->progs.hyp_xdp_syn));
	TAP_CHECK(xa.type == BPF_LINK_TYPE_XDP && xa.xdp.ifindex == if_nametoindex(if_a) &&
		  xa.prog_id == old_xdp_prog, "pinned XDP link: type xdp, on %s, our program", if_a);
	TAP_CHECK(ta.type == LINK_TYPE_TCX && ta.xdp.ifindex == if_nametoindex(if_a) && ta.prog_id == old_tc_prog,
		  "pinned tc link: type tcx, on %s, our program", if_a);
	TAP_EQ(tcx_egress_count(if_a), 1, "one program on %s tcx egress", if_a);
	TAP_CHECK(pin_exists(n_xb) && pin_exists(n_tb), "links of %s pinned", if_b);
	char n_ia[64];
	snprintf(n_ia, sizeof(n_ia), "link_tci_%s", if_a);
	if (dp.prog_tci_fd >= 0) {
		struct bpf_link_info ia = link_info_pinned(n_ia);
		TAP_CHECK(ia.type == LINK_TYPE_TCX && ia.xdp.ifindex == if_nametoindex(if_a) &&
			  ia.prog_id == prog_id(dp.prog_tci_fd), "pinned tc ingress link: tcx, on %s, our program", if_a);
		TAP_EQ(tcx_ingress_count(if_a), 1, "one program on %s tcx ingress", if_a);
	} else {
		TAP_SKIP("tc ingress (SYN cookies) not loaded: kernel without bpf_sk_assign_tcp_reqsk");
	}

	cidr_parse("192.0.2.77", &ban, false);
	TAP_EQ(ban_add(&dp, &ban, 0, 42), 0, "ban 192.0.2.77 before the restart");
	__u32 bans_id = map_id(dp.fd_bans4);

	/* kill -9 semantics: close everything, the pins keep the datapath enforcing. Watch if_a meanwhile. */
	struct watch w = { .stop = false };
	pthread_t th;
	bool watching = pthread_create(&th, NULL, watch_fn, &w) == 0;
	dp_close(&dp);
	TAP_CHECK(xdp_prog_attached(if_a) == old_xdp_prog, "after dp_close the old program is still attached");
	TAP_EQ(tcx_egress_count(if_a), 1, "... and still on tcx egress");

	err = dp_open(&dp, &o);
	TAP_EQ(err, 0, "dp_open again");
	TAP_CHECK(dp.adopted, "maps re-adopted from the pins");
	TAP_EQ(map_id(dp.fd_bans4), bans_id, "bans4 is the very same map (id %u)", bans_id);
	{
		__u32 slot = 0, syn_id = 0;

		TAP_CHECK(!bpf_map_lookup_elem(bpf_map__fd(dp.skel->maps.sc_prog), &slot, &syn_id) && syn_id &&
			  syn_id == prog_id(bpf_program__fd(dp.skel->progs.hyp_xdp_syn)) && syn_id != old_syn_prog,
			  "the re-adopted SYN cookie slot holds this load's program (id %u, was %u)", syn_id,
			  old_syn_prog);
	}
	TAP_EQ(ban_get(&dp, &ban, &b), 0, "the ban survived the restart");
	TAP_EQ(b.reason, 42, "... with its value");

	TAP_EQ(dp_attach(&dp, if_a, HYP_XDP_AUTO), 0, "re-attach %s", if_a);
	if (watching) {
		atomic_store(&w.stop, true);
		pthread_join(th, NULL);
		TAP_CHECK(w.samples > 0 && w.empty == 0, "no sample without an XDP program on %s during the "
			  "restart (%lu samples)", if_a, w.samples);
	}
	struct bpf_link_info xa2 = link_info_pinned(n_xa), ta2 = link_info_pinned(n_ta);
	__u32 new_xdp_prog = prog_id(dp.prog_xdp_fd);
	TAP_CHECK(new_xdp_prog != old_xdp_prog, "a new XDP program was loaded (%u -> %u)", old_xdp_prog,
		  new_xdp_prog);
	TAP_EQ(xa2.id, xa.id, "same XDP link (id %u): updated in place, never detached", xa.id);
	TAP_EQ(xa2.prog_id, new_xdp_prog, "the link now runs the new program");
	TAP_EQ(xdp_prog_attached(if_a), new_xdp_prog, "the interface runs the new program");
	TAP_EQ(ta2.id, ta.id, "same tcx link (id %u)", ta.id);
	TAP_EQ(ta2.prog_id, prog_id(dp.prog_tc_fd), "the tcx link runs the new tc program");
	TAP_EQ(tcx_egress_count(if_a), 1, "still exactly one program on tcx egress");
	if (dp.prog_tci_fd >= 0)
		TAP_EQ(tcx_ingress_count(if_a), 1, "still exactly one program on tcx ingress (link re-adopted)");

	TAP_EQ(dp_attach(&dp, if_b, HYP_XDP_NATIVE), 0, "re-attach %s asking for native", if_b);
	TAP_EQ(dp.ifaces[1].mode, HYP_XDP_GENERIC, "... keeps the re-adopted generic link (no window)");
	TAP_CHECK(ip_link_has(if_b, "xdpgeneric"), "ip link still shows xdpgeneric on %s", if_b);

	/* A restart with other map sizes must not silently replace the pinned maps. */
	dp_close(&dp);
	struct hyp_loader_opts small = { .pin_dir = pin_dir, .flows_max = 1024 };
	TAP_EQ(dp_open(&dp, &small), -EEXIST, "re-open with another flows size: -EEXIST");
	TAP_CHECK(pin_exists("flows") && pin_exists("bans4") && xdp_prog_attached(if_a) == new_xdp_prog,
		  "pins and attachment untouched by the refused open");
	TAP_EQ(dp_open(&dp, &o), 0, "re-open with the original sizes");
	TAP_EQ(dp_attach(&dp, if_a, HYP_XDP_AUTO), 0, "re-attach %s", if_a);
	TAP_EQ(dp_attach(&dp, if_b, HYP_XDP_AUTO), 0, "re-attach %s", if_b);

	TAP_EQ(dp_detach_all(&dp), 0, "dp_detach_all");
	TAP_EQ(xdp_prog_attached(if_a), 0, "no XDP program on %s", if_a);
	TAP_EQ(xdp_prog_attached(if_b), 0, "no XDP program on %s", if_b);
	TAP_CHECK(!ip_link_has(if_a, "xdp") && !ip_link_has(if_b, "xdpgeneric"), "ip link shows no xdp");
	TAP_EQ(tcx_egress_count(if_a), 0, "tcx egress of %s empty", if_a);
	TAP_EQ(tcx_egress_count(if_b), 0, "tcx egress of %s empty", if_b);
	TAP_CHECK(!tcx_ingress_count(if_a) && !tcx_ingress_count(if_b), "tcx ingress of both empty");
	struct stat st;
	TAP_CHECK(stat(pin_dir, &st) != 0 && errno == ENOENT, "pin dir removed");
	dp_close(&dp);
}

/* Program id of our clsact egress filter on ifname, 0 if none (same handle/priority as the loader). */
static __u32 clsact_prog_at(const char *ifname, enum bpf_tc_attach_point point)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)if_nametoindex(ifname), .attach_point = point);
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = 0x4859, .priority = 1);

	return bpf_tc_query(&hook, &to) ? 0 : to.prog_id;
}

static __u32 clsact_prog(const char *ifname)
{
	return clsact_prog_at(ifname, BPF_TC_EGRESS);
}

/* Kernels without tcx: clsact egress filter, replaced in place on restart, removed once tcx works. */
static void test_tc_legacy(void)
{
	struct hyp_loader_opts o = { .pin_dir = pin_dir };
	int err;

	setenv("HYP_TC_LEGACY", "1", 1);
	err = dp_open(&dp, &o);
	TAP_EQ(err, 0, "dp_open (clsact path forced)");
	if (err)
		goto out;
	TAP_EQ(dp_attach(&dp, if_a, HYP_XDP_AUTO), 0, "attach %s with HYP_TC_LEGACY=1", if_a);
	TAP_CHECK(dp.ifaces[0].tc_link_fd == -1 && (dp.tc_legacy_mask & 1), "egress attached as clsact filter");
	__u32 old_tc = prog_id(dp.prog_tc_fd);
	TAP_EQ(clsact_prog(if_a), old_tc, "clsact egress runs our tc program");
	TAP_EQ(tcx_egress_count(if_a), 0, "nothing on tcx egress");
	if (dp.prog_tci_fd >= 0)
		TAP_CHECK(clsact_prog_at(if_a, BPF_TC_INGRESS) == prog_id(dp.prog_tci_fd) &&
			  (dp.tc_legacy_mask & (1u << HYP_IFACES_MAX)) && !tcx_ingress_count(if_a),
			  "ingress attached as clsact filter too");
	dp_close(&dp);
	TAP_EQ(clsact_prog(if_a), old_tc, "filter survives dp_close");
	TAP_EQ(dp_open(&dp, &o), 0, "dp_open again");
	TAP_EQ(dp_attach(&dp, if_a, HYP_XDP_AUTO), 0, "re-attach %s", if_a);
	__u32 new_tc = prog_id(dp.prog_tc_fd);
	TAP_CHECK(new_tc != old_tc && clsact_prog(if_a) == new_tc, "filter replaced in place by the new program");
	dp_close(&dp);

	unsetenv("HYP_TC_LEGACY");
	TAP_EQ(dp_open(&dp, &o), 0, "dp_open with tcx available again");
	TAP_EQ(dp_attach(&dp, if_a, HYP_XDP_AUTO), 0, "re-attach %s", if_a);
	TAP_EQ(tcx_egress_count(if_a), 1, "egress now on tcx");
	TAP_EQ(clsact_prog(if_a), 0, "the leftover clsact filter was removed (no double egress)");
	TAP_EQ(dp_detach_all(&dp), 0, "dp_detach_all");
	TAP_CHECK(!tcx_egress_count(if_a) && !clsact_prog(if_a) && !xdp_prog_attached(if_a), "all detached");
	TAP_CHECK(!tcx_ingress_count(if_a) && !clsact_prog_at(if_a, BPF_TC_INGRESS), "ingress detached, no leftover filter");
out:
	unsetenv("HYP_TC_LEGACY");
	dp_close(&dp);
	dp_unpin(pin_dir);
}

/* The interface was deleted and re-created while we were down: the pinned link is defunct and must be
 * replaced by a fresh one, not "re-adopted". */
static void test_stale_link(void)
{
	struct hyp_loader_opts o = { .pin_dir = pin_dir };
	char n_xa[64];
	int err;

	snprintf(n_xa, sizeof(n_xa), "link_xdp_%s", if_a);
	err = dp_open(&dp, &o);
	TAP_EQ(err, 0, "dp_open");
	if (err)
		return;
	TAP_EQ(dp_attach(&dp, if_a, HYP_XDP_AUTO), 0, "attach %s", if_a);
	__u32 old_link = link_info_pinned(n_xa).id;
	dp_close(&dp);
	TAP_EQ(sh("ip link del %s && ip link add %s type veth peer name %s && ip link set %s up && "
		  "ip link set %s up", if_a, if_a, if_b, if_a, if_b), 0, "re-create the veth pair");
	TAP_EQ(dp_open(&dp, &o), 0, "dp_open after the interface came back");
	TAP_EQ(dp_attach(&dp, if_a, HYP_XDP_AUTO), 0, "attach %s again", if_a);
	struct bpf_link_info li = link_info_pinned(n_xa);
	TAP_CHECK(li.id && li.id != old_link && li.xdp.ifindex == if_nametoindex(if_a),
		  "stale link replaced by a new one on the new ifindex");
	TAP_EQ(xdp_prog_attached(if_a), prog_id(dp.prog_xdp_fd), "new program attached");
	TAP_EQ(dp_detach_all(&dp), 0, "dp_detach_all");
	dp_close(&dp);
}

/* A foreign object pinned under a map's name is refused, not replaced. */
static void test_foreign_pin(void)
{
	struct hyp_loader_opts o = { .pin_dir = pin_dir };
	char path[256];

	mkdir(pin_dir, 0700);
	int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "foreign", 4, 8, 1, NULL);
	snprintf(path, sizeof(path), "%s/bans4", pin_dir);
	/* TAP_CHECK evaluates its condition twice: keep side effects out of it */
	int pinned = fd >= 0 && !bpf_obj_pin(fd, path);
	TAP_CHECK(pinned, "pin a foreign array as %s", path);
	TAP_EQ(dp_open(&dp, &o), -EEXIST, "dp_open refuses the incompatible pinned bans4");
	TAP_CHECK(!pin_exists("flows"), "... before pinning anything else");
	if (fd >= 0)
		close(fd);
	TAP_EQ(dp_unpin(pin_dir), 0, "dp_unpin cleans the dir");
}

static void test_errors(void)
{
	struct hyp_loader_opts nopin = { .pin_dir = "" };

	int err = dp_open(&dp, &nopin);
	TAP_EQ(err, 0, "dp_open without pins");
	if (err)
		return;
	TAP_EQ(dp_attach(&dp, "hypnosuchif0", HYP_XDP_AUTO), -ENODEV, "missing interface: -ENODEV");
	TAP_EQ(dp.nifaces, 0, "nothing recorded");
	TAP_EQ(dp_attach(&dp, if_a, HYP_XDP_GENERIC), 0, "attach without pins works");
	TAP_CHECK(!pin_exists("link_xdp_x"), "no link pinned");
	TAP_EQ(dp_detach_all(&dp), 0, "detach without pins");
	TAP_EQ(xdp_prog_attached(if_a), 0, "detached");
	dp_close(&dp);

	struct hyp_loader_opts bad1 = { .pin_dir = "/proc/hyp-test-nope" };
	TAP_EQ(dp_open(&dp, &bad1), -EINVAL, "pin dir outside bpffs: -EINVAL");
	struct hyp_loader_opts bad2 = { .pin_dir = "relative/pins" };
	TAP_EQ(dp_open(&dp, &bad2), -EINVAL, "relative pin dir: -EINVAL");
	TAP_EQ(dp_unpin("/proc/self"), -EINVAL, "dp_unpin refuses a non-bpffs directory");
	dp_close(&dp);
}

int main(void)
{
	dp_close(&dp);  /* zeroed handle: makes cleanup() safe before the first dp_open */
	if (geteuid() != 0) {
		TAP_SKIP("needs root (network namespaces, BPF)");
		return tap_done();
	}
	if (system("ip -V >/dev/null 2>&1")) {
		TAP_SKIP("iproute2 (ip) not installed");
		return tap_done();
	}
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/hyp-test-loader-%d", getpid());
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (netns_setup()) {
		TAP_SKIP("cannot create namespace %s with a veth pair", ns_name);
		return tap_done();
	}
	test_attach_and_readopt();
	test_tc_legacy();
	test_stale_link();
	test_foreign_pin();
	test_errors();
	return tap_done();
}
