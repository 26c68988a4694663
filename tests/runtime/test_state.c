/* Snapshot: round trip, atomic replace, and corrupt/truncated files rejected without touching state. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "state.h"
#include "tap.h"

static char dir[256];

static void fill(struct hyp_snapshot *s, unsigned nbans)
{
	struct hyp_cidr c;

	memset(s, 0, sizeof(*s));
	s->written_wall_s = 1700000000;
	for (unsigned i = 0; i < nbans; i++) {
		char txt[64], reason[64];
		snprintf(txt, sizeof(txt), "198.51.%u.%u", (i >> 8) & 0xff, i & 0xff);
		cidr_parse(txt, &c, false);
		snprintf(reason, sizeof(reason), i % 3 ? "reason %u" : "", i);
		snap_add_ban(s, &c, i % 2 ? 1700000000 + i : 0, reason);
	}
	cidr_parse("2001:db8::/32", &c, false);
	snap_add_ban(s, &c, 0, "v6 \"quoted\" caf\xc3\xa9");
	cidr_parse("192.0.2.0/24", &c, false);
	snap_add_allow(s, &c);
	cidr_parse("2001:db8:1::1", &c, false);
	snap_add_allow(s, &c);
	s->store = malloc(5);
	memcpy(s->store, "a\0b\xff" "c", 5);
	s->store_len = 5;
}

static bool same(const struct hyp_snapshot *a, const struct hyp_snapshot *b)
{
	if (a->nbans != b->nbans || a->nallows != b->nallows || a->store_len != b->store_len ||
	    a->written_wall_s != b->written_wall_s)
		return false;
	for (size_t i = 0; i < a->nbans; i++)
		if (memcmp(&a->bans[i].cidr, &b->bans[i].cidr, sizeof(struct hyp_cidr)) ||
		    a->bans[i].expires_wall_s != b->bans[i].expires_wall_s || strcmp(a->bans[i].reason, b->bans[i].reason))
			return false;
	for (size_t i = 0; i < a->nallows; i++)
		if (memcmp(&a->allows[i], &b->allows[i], sizeof(struct hyp_cidr)))
			return false;
	return !a->store_len || !memcmp(a->store, b->store, a->store_len);
}

static size_t file_bytes(const char *path, unsigned char **out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	*out = malloc((size_t)n);
	size_t got = fread(*out, 1, (size_t)n, f);
	fclose(f);
	return got;
}

static void put_file(const char *path, const unsigned char *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	fwrite(p, 1, n, f);
	fclose(f);
}

static void test_roundtrip(void)
{
	struct hyp_snapshot a, b;
	unsigned char *buf;
	size_t len;
	char err[256];

	fill(&a, 1000);
	TAP_EQ(state_encode(&a, &buf, &len, err, sizeof(err)), 0, "encode 1001 bans: %s", err);
	TAP_CHECK(len < 1001 * 40, "compressed (%zu bytes)", len);
	TAP_EQ(state_decode(buf, len, &b, err, sizeof(err)), 0, "decode: %s", err);
	TAP_CHECK(same(&a, &b), "decoded snapshot equals the original");
	snap_free(&b);
	free(buf);

	TAP_EQ(state_write(dir, &a, err, sizeof(err)), 0, "write to %s: %s", dir, err);
	TAP_EQ(state_read(dir, &b, err, sizeof(err)), 0, "read back: %s", err);
	TAP_CHECK(same(&a, &b), "file round trip");
	snap_free(&b);

	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, HYP_STATE_FILE);
	TAP_CHECK(!stat(path, &st) && (st.st_mode & 0777) == 0600, "snapshot is mode 0600");
	snprintf(path, sizeof(path), "%s/%s.tmp", dir, HYP_STATE_FILE);
	TAP_CHECK(stat(path, &st) && errno == ENOENT, "no temp file left behind");
	snap_free(&a);

	struct hyp_snapshot empty = {0};
	TAP_EQ(state_write(dir, &empty, err, sizeof(err)), 0, "empty snapshot writes");
	TAP_EQ(state_read(dir, &b, err, sizeof(err)), 0, "empty snapshot reads");
	TAP_CHECK(b.nbans == 0 && b.nallows == 0 && b.store_len == 0 && !b.store, "empty stays empty");
	snap_free(&b);
}

/* A write that fails midway (here: the temp name is a directory) leaves the old snapshot intact. */
static void test_atomic(void)
{
	struct hyp_snapshot a, b, c;
	char err[256], tmp[512];

	fill(&a, 3);
	TAP_EQ(state_write(dir, &a, err, sizeof(err)), 0, "baseline written");
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, HYP_STATE_FILE);
	mkdir(tmp, 0700);
	fill(&b, 50);
	TAP_CHECK(state_write(dir, &b, err, sizeof(err)) < 0, "write with a blocked temp file fails: %s", err);
	TAP_EQ(state_read(dir, &c, err, sizeof(err)), 0, "old snapshot still readable");
	TAP_CHECK(same(&a, &c), "old snapshot unchanged by the failed write");
	snap_free(&c);
	rmdir(tmp);
	TAP_EQ(state_write(dir, &b, err, sizeof(err)), 0, "write succeeds again");
	TAP_EQ(state_read(dir, &c, err, sizeof(err)), 0, "new snapshot read");
	TAP_CHECK(same(&b, &c), "new snapshot replaced the old one whole");
	snap_free(&a);
	snap_free(&b);
	snap_free(&c);
}

static void test_corrupt(void)
{
	struct hyp_snapshot a, b;
	unsigned char *good, *bad;
	size_t len;
	char err[256], path[512];
	int rc;

	fill(&a, 100);
	state_encode(&a, &good, &len, err, sizeof(err));
	bad = malloc(len + 8);

	/* Every truncation is refused, and refusal leaves the output empty. */
	int refused = 0;
	for (size_t cut = 0; cut < len; cut += (cut < 64 ? 1 : 37)) {
		memset(&b, 0x5a, sizeof(b));
		rc = state_decode(good, cut, &b, err, sizeof(err));
		refused += rc == -EINVAL && b.nbans == 0 && !b.bans && !b.store;
	}
	int tries = 0;
	for (size_t cut = 0; cut < len; cut += (cut < 64 ? 1 : 37))
		tries++;
	TAP_EQ(refused, tries, "all %d truncations refused with nothing returned", tries);

	/* Flip one bit anywhere: header checks, zlib's own checksum or our CRC must catch it. */
	int caught = 0, flips = 0;
	for (size_t i = 0; i < len; i += 7, flips++) {
		memcpy(bad, good, len);
		bad[i] ^= 0x10;
		rc = state_decode(bad, len, &b, err, sizeof(err));
		/* A flip in the deflate stream's final padding bits changes nothing: then the content must be
		 * exactly the original. Anything else must be refused. */
		caught += rc == -EINVAL || (!rc && same(&a, &b));
		if (!rc)
			snap_free(&b);
	}
	TAP_EQ(caught, flips, "all %d single-bit corruptions refused (or provably harmless)", flips);

	memcpy(bad, good, len);
	memcpy(bad + len, "trailing", 8);
	rc = state_decode(bad, len + 8, &b, err, sizeof(err));
	TAP_EQ(rc, -EINVAL, "trailing garbage after the stream refused: %s", err);
	TAP_EQ(state_decode((const unsigned char *)"HYPSNAP1", 8, &b, err, sizeof(err)), -EINVAL, "header only");
	TAP_EQ(state_decode((const unsigned char *)"not a snapshot at all, really", 29, &b, err, sizeof(err)), -EINVAL,
	       "wrong magic: %s", err);

	/* On disk: a corrupt file is reported with its path, and reading it changes nothing. */
	TAP_EQ(state_write(dir, &a, err, sizeof(err)), 0, "good snapshot on disk");
	snprintf(path, sizeof(path), "%s/%s", dir, HYP_STATE_FILE);
	put_file(path, good, len / 2);
	rc = state_read(dir, &b, err, sizeof(err));
	TAP_CHECK(rc == -EINVAL && strstr(err, path) != NULL, "truncated file refused with its path: %s", err);
	unsigned char *after = NULL;
	size_t alen = file_bytes(path, &after);
	TAP_CHECK(alen == len / 2 && !memcmp(after, good, alen), "reading did not modify the file");
	free(after);
	TAP_EQ(state_quarantine(dir, err, sizeof(err)), 0, "corrupt snapshot moved aside");
	TAP_CHECK(strstr(err, ".corrupt-") != NULL && access(err, F_OK) == 0, "kept as %s", err);
	unlink(err);
	TAP_EQ(state_read(dir, &b, err, sizeof(err)), -ENOENT, "no snapshot after quarantine (fresh start)");

	/* Records must be self-consistent: a bad prefix length inside a valid stream is refused. */
	struct hyp_snapshot w = {0};
	struct hyp_cidr c = { .family = HYP_AF_INET, .prefixlen = 40 };
	snap_add_ban(&w, &c, 0, "");
	unsigned char *wb;
	size_t wl;
	state_encode(&w, &wb, &wl, err, sizeof(err));
	TAP_EQ(state_decode(wb, wl, &b, err, sizeof(err)), -EINVAL, "/40 IPv4 record refused: %s", err);
	free(wb);
	snap_free(&w);
	c.prefixlen = 8;
	c.addr[0] = 10;
	c.addr[3] = 1;      /* host bits set */
	snap_add_allow(&w, &c);
	state_encode(&w, &wb, &wl, err, sizeof(err));
	TAP_EQ(state_decode(wb, wl, &b, err, sizeof(err)), -EINVAL, "host bits in a record refused");
	free(wb);
	snap_free(&w);

	free(good);
	free(bad);
	snap_free(&a);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/hyp-test-state-%d", (int)getpid());
	if (mkdir(dir, 0700)) {
		perror(dir);
		return 1;
	}
	test_roundtrip();
	test_atomic();
	test_corrupt();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "# could not remove %s\n", dir);
	return tap_done();
}
