/* runtime/blkfilter.c and bpf/blocklist.h blk_none: the ban/allow pre-filter stays exact through every
 * write the runtime makes, and the datapath skips exactly the lookups it says it may. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "blkfilter.h"
#include "hyperion_abi.h"
#include "hyperion.skel.h"
#include "loader.h"
#include "maps.h"
#include "dptest.h"
#include "pkt.h"
#include "tap.h"

static struct hyp_dp dp;
static char pin_dir[128];

static struct hyp_cidr cidr(const char *s)
{
	struct hyp_cidr c;

	if (cidr_parse(s, &c, false))
		memset(&c, 0, sizeof(c));
	return c;
}

/* Is the ban (ban) or allow bit of addr's block set: no entry covers it? */
static bool none(bool ban, const char *addr)
{
	struct hyp_cidr c = cidr(addr);

	return blkf_none(&dp, ban, c.family, c.addr);
}

/* One UDP datagram from src through hyp_xdp; returns the stats entry that grew by one (-1: none). */
static int run_from(const char *src)
{
	bool v6 = strchr(src, ':') != NULL;
	struct pkt_opts o = { .family = v6 ? 6 : 4, .src = src, .dst = v6 ? "2001:db8::2" : "198.51.100.1",
			      .proto = IPPROTO_UDP, .sport = 40000, .dport = 53 };
	static struct hyp_totals a, b;
	uint8_t buf[PKT_MAX];
	int len = pkt_build(&o, buf, sizeof(buf));
	LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = buf, .data_size_in = (__u32)len, .repeat = 1);
	int grew = -1;

	if (len < 0 || stats_read(&dp, &a) || bpf_prog_test_run_opts(dp.prog_xdp_fd, &ro) || stats_read(&dp, &b))
		return -2;
	for (int i = 0; i < HYP_STATS_ENTRIES; i++)
		if (b.reason[i].packets == a.reason[i].packets + 1)
			grew = grew == -1 ? i : -2;
	return grew;
}

/* Set the bit of addr's block by hand, as a stale filter would have it. */
static void force_none(bool ban, const char *addr)
{
	struct hyp_cidr c = cidr(addr);
	int t = ban ? (c.family == HYP_AF_INET ? HYP_BLKF_BANS4 : HYP_BLKF_BANS6) :
		      (c.family == HYP_AF_INET ? HYP_BLKF_ALLOW4 : HYP_BLKF_ALLOW6);
	__u32 b = hyp_blkf_block(c.family, c.addr), k = t * HYP_BLKF_WORDS + b / 64;
	__u64 w = 0;
	int fd = bpf_map__fd(dp.skel->maps.blk_filter);

	bpf_map_lookup_elem(fd, &k, &w);
	w |= 1ull << (b & 63);
	bpf_map_update_elem(fd, &k, &w, BPF_ANY);
}

static void test_empty(void)
{
	TAP_CHECK(none(true, "203.0.113.7") && none(true, "2001:db8::7") && none(false, "203.0.113.7") &&
		  none(false, "2001:db8::7"), "empty lists: every block marked without entries");
	TAP_EQ(run_from("203.0.113.7"), HYP_R_PASS_NEW, "empty lists: a new UDP flow passes");
}

static void test_ban_v4(void)
{
	struct hyp_cidr c24 = cidr("203.0.113.0/24"), c32 = cidr("203.0.113.7/32");

	TAP_EQ(ban_add(&dp, &c24, 0, 1), 0, "ban 203.0.113.0/24");
	TAP_CHECK(!none(true, "203.0.113.7") && !none(true, "203.0.200.1"), "its /16 block may hold a ban");
	TAP_CHECK(none(true, "198.51.100.1") && none(false, "203.0.113.7"),
		  "other blocks, and the allow trie, are untouched");
	TAP_EQ(run_from("203.0.113.7"), HYP_R_DROP_BANNED, "a banned source drops");
	TAP_EQ(run_from("203.0.200.1"), HYP_R_PASS_NEW, "an unbanned source of the same block passes");

	/* the datapath reads the bit: set by hand, the ban is not looked up (what an inexact filter would do) */
	force_none(true, "203.0.113.7");
	TAP_EQ(run_from("203.0.113.8"), HYP_R_PASS_NEW, "a marked block is not looked up: the ban is missed");
	TAP_EQ(blkf_rebuild(&dp), 0, "rebuild from the tries");
	TAP_CHECK(!none(true, "203.0.113.7"), "the rebuild clears the bit again");
	TAP_EQ(run_from("203.0.113.9"), HYP_R_DROP_BANNED, "and the ban drops again");

	TAP_EQ(ban_add(&dp, &c32, 0, 1), 0, "ban 203.0.113.7/32 inside it");
	TAP_EQ(ban_add(&dp, &c24, 60, 2), 0, "ban 203.0.113.0/24 again (replaced, not a second entry)");
	TAP_EQ(ban_del(&dp, &c24), 0, "unban the /24");
	TAP_CHECK(!none(true, "203.0.113.7"), "the /32 still covers the block");
	TAP_EQ(ban_del(&dp, &c24), -ENOENT, "unban of the /24 again: absent");
	TAP_CHECK(!none(true, "203.0.113.7"), "a failed delete counts nothing out (the /32 is still counted)");
	TAP_EQ(ban_del(&dp, &c32), 0, "unban the /32");
	TAP_CHECK(none(true, "203.0.113.7"), "no entry left: marked again (the replace was not counted twice)");
}

static void test_ban_short(void)
{
	struct hyp_cidr c8 = cidr("10.0.0.0/8"), c0 = cidr("0.0.0.0/0"), c12 = cidr("198.48.0.0/12");

	TAP_EQ(ban_add(&dp, &c8, 0, 1), 0, "ban 10.0.0.0/8 (256 blocks)");
	TAP_CHECK(!none(true, "10.0.0.1") && !none(true, "10.77.0.1") && !none(true, "10.128.9.9") &&
		  !none(true, "10.255.255.255") && none(true, "11.0.0.1") && none(true, "9.255.255.255"),
		  "exactly the /8's blocks, every word of them");
	TAP_EQ(ban_add(&dp, &c8, 60, 2), 0, "ban 10.0.0.0/8 again (replaced)");
	TAP_EQ(ban_add(&dp, &c12, 0, 1), 0, "ban 198.48.0.0/12 (16 blocks, inside one word)");
	TAP_CHECK(!none(true, "198.63.0.1") && !none(true, "198.48.0.1") && none(true, "198.64.0.1") &&
		  none(true, "198.47.255.1"), "exactly the /12's blocks");
	TAP_EQ(ban_add(&dp, &c0, 0, 1), 0, "ban 0.0.0.0/0");
	TAP_CHECK(!none(true, "192.0.2.1") && !none(true, "255.255.255.255"), "every block");
	TAP_EQ(ban_del(&dp, &c0), 0, "unban /0");
	TAP_CHECK(none(true, "192.0.2.1") && !none(true, "10.1.2.3"), "back to the /8 and /12");
	TAP_EQ(ban_del(&dp, &c8), 0, "unban /8");
	TAP_EQ(ban_del(&dp, &c12), 0, "unban /12");
	TAP_CHECK(none(true, "10.1.2.3") && none(true, "10.200.0.1") && none(true, "198.50.0.1"),
		  "all marked again (the replaced /8 counted once)");
}

static void test_ban_v6(void)
{
	struct hyp_cidr c64 = cidr("2001:db8:0:1::/64"), c32 = cidr("2001:db8::/32");
	struct hyp_cidr a = cidr("2001:db8:0:1::5"), other = cidr("2001:db8:7::5");
	bool apart = hyp_blkf_block(HYP_AF_INET6, a.addr) != hyp_blkf_block(HYP_AF_INET6, other.addr);

	TAP_CHECK(apart, "the two /48s of this test land in different buckets");
	TAP_EQ(ban_add(&dp, &c64, 0, 1), 0, "ban 2001:db8:0:1::/64");
	TAP_CHECK(!none(true, "2001:db8:0:1::5") && !none(true, "2001:db8::9") && none(true, "2001:db8:7::5"),
		  "its /48's bucket only");
	TAP_EQ(run_from("2001:db8:0:1::5"), HYP_R_DROP_BANNED, "a banned IPv6 source drops");
	TAP_EQ(ban_add(&dp, &c32, 0, 1), 0, "ban 2001:db8::/32 (shorter than /48)");
	TAP_CHECK(!none(true, "2001:db8:7::5") && !none(true, "2001:db9::1"), "every bucket");
	TAP_CHECK(none(true, "198.51.100.1"), "IPv4 untouched");
	TAP_EQ(run_from("2001:db8:7::5"), HYP_R_DROP_BANNED, "a source under the /32 drops");
	TAP_EQ(ban_del(&dp, &c32), 0, "unban the /32");
	TAP_CHECK(none(true, "2001:db8:7::5") && !none(true, "2001:db8:0:1::5"), "back to the /64's bucket");
	TAP_EQ(ban_del(&dp, &c64), 0, "unban the /64");
	TAP_CHECK(none(true, "2001:db8:0:1::5"), "all marked again");
}

static void test_allow(void)
{
	struct hyp_cidr c = cidr("192.0.2.0/28");

	TAP_EQ(allow_add(&dp, &c), 0, "allow 192.0.2.0/28");
	TAP_CHECK(!none(false, "192.0.2.3") && none(true, "192.0.2.3"), "its allow bit only");
	TAP_EQ(run_from("192.0.2.3"), HYP_R_PASS_ALLOW, "an allowlisted source passes as such");
	TAP_EQ(allow_del(&dp, &c), 0, "remove it");
	TAP_CHECK(none(false, "192.0.2.3"), "marked again");
}

static void test_batch_expiry(void)
{
	struct hyp_cidr c[3] = { cidr("198.18.0.0/24"), cidr("198.19.5.5/32"), cidr("2001:db8:5::/48") };
	struct hyp_ban v[3] = {};
	__u64 now = dp_now_ns();

	for (int i = 0; i < 3; i++) {
		v[i].created_ns = now;
		v[i].expires_ns = now + 1000000000ull;
	}
	TAP_EQ(ban_add_batch(&dp, c, v, 3), 3, "three bans in one batch");
	TAP_CHECK(!none(true, "198.18.0.1") && !none(true, "198.19.5.5") && !none(true, "2001:db8:5::1"),
		  "each one's block");
	TAP_EQ(ban_expire(&dp, now + 2000000000ull), 3, "all three expire");
	TAP_CHECK(none(true, "198.18.0.1") && none(true, "198.19.5.5") && none(true, "2001:db8:5::1"),
		  "expired and deleted: marked again");
}

/* Set the bit of c's block in the pinned filter map, with no datapath open. */
static int pinned_bit_set(int trie, const struct hyp_cidr *c)
{
	char path[192];
	__u32 b = hyp_blkf_block(c->family, c->addr), k = trie * HYP_BLKF_WORDS + b / 64;
	__u64 w = 0;
	int fd, err;

	snprintf(path, sizeof(path), "%s/blk_filter", pin_dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return fd;
	err = bpf_map_lookup_elem(fd, &k, &w);
	w |= 1ull << (b & 63);
	err = err ?: bpf_map_update_elem(fd, &k, &w, BPF_ANY);
	close(fd);
	return err;
}

/* A failed write counts nothing: a full ban trie refuses the entry and its block stays marked. */
static void test_full(void)
{
	struct hyp_loader_opts o = { .pin_dir = "", .bans_max = 2 };
	struct hyp_cidr a = cidr("192.0.2.1/32"), b = cidr("192.0.2.2/32"), c = cidr("198.18.0.1/32");

	dp_close(&dp);
	TAP_EQ(dp_open(&dp, &o), 0, "open with room for two bans per family");
	TAP_CHECK(ban_add(&dp, &a, 0, 1) == 0 && ban_add(&dp, &b, 0, 1) == 0, "two bans");
	TAP_CHECK(ban_add(&dp, &c, 0, 1) < 0, "a third is refused");
	TAP_CHECK(none(true, "198.18.0.1") && !none(true, "192.0.2.3"),
		  "the refused ban's block stays marked, the others' not");
	TAP_EQ(ban_add_batch(&dp, &c, &(struct hyp_ban){ 0 }, 1) < 0, 1, "refused through the batch too");
	TAP_CHECK(none(true, "198.18.0.1"), "still marked");
}

/* A restart re-adopts the pinned tries: the filter is rebuilt from what they hold. */
static void test_readopt(void)
{
	struct hyp_loader_opts o = { .pin_dir = pin_dir };
	struct hyp_cidr c = cidr("203.0.113.0/25");

	dp_close(&dp);
	TAP_EQ(dp_open(&dp, &o), 0, "open with pins");
	TAP_EQ(ban_add(&dp, &c, 0, 1), 0, "ban 203.0.113.0/25");
	dp_close(&dp);
	TAP_EQ(pinned_bit_set(HYP_BLKF_BANS4, &c), 0, "mark the ban's block empty in the pinned map (stale)");
	TAP_EQ(dp_open(&dp, &o), 0, "reopen: maps re-adopted");
	TAP_CHECK(dp.adopted && !none(true, "203.0.113.9") && none(true, "198.51.100.1"),
		  "the rebuild finds the adopted ban and clears the stale bit");
	TAP_EQ(run_from("203.0.113.9"), HYP_R_DROP_BANNED, "and the adopted ban drops");
}

static void cleanup(void)
{
	dp_close(&dp);
	if (*pin_dir)
		dp_unpin(pin_dir);
}

int main(void)
{
	struct hyp_loader_opts o = { .pin_dir = "" };

	if (!dpt_dp_open_or_report(&dp, &o))
		return tap_done();
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/hyp-test-blkf-%d", (int)getpid());
	atexit(cleanup);
	TAP_CHECK(dp.blkf != NULL, "the pre-filter is kept");
	test_empty();
	test_ban_v4();
	test_ban_short();
	test_ban_v6();
	test_allow();
	test_batch_expiry();
	test_full();
	test_readopt();
	return tap_done();
}
