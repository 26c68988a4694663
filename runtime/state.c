/* Persistent snapshot of bans, allowlist and hx.store: zlib-compressed, written atomically. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <zlib.h>
#include "log.h"
#include "state.h"

/*
 * File layout (integers little-endian):
 *   "HYPSNAP1" | u32 version | u32 crc32(raw) | u64 raw_len | zlib(raw)
 * raw:
 *   i64 written_wall_s | u32 nbans | u32 nallows | u32 store_len
 *   nbans   x { u8 family, u8 prefixlen, u8 addr[16], i64 expires_wall_s, u16 reason_len, reason bytes }
 *   nallows x { u8 family, u8 prefixlen, u8 addr[16] }
 *   store bytes
 */
#define STATE_MAGIC "HYPSNAP1"
#define STATE_VERSION 1
#define STATE_HDR_LEN 24
#define STATE_FILE_MAX (HYP_STATE_RAW_MAX + (HYP_STATE_RAW_MAX >> 4))  /* zlib worst case is < raw + 0.1% */


int snap_add_ban(struct hyp_snapshot *s, const struct hyp_cidr *c, int64_t expires_wall_s, const char *reason)
{
	if (s->nbans == s->bans_cap) {
		size_t cap = s->bans_cap ? s->bans_cap * 2 : 64;
		void *p = realloc(s->bans, cap * sizeof(*s->bans));
		if (!p)
			return -ENOMEM;
		s->bans = p;
		s->bans_cap = cap;
	}
	struct hyp_snap_ban *b = &s->bans[s->nbans++];
	memset(b, 0, sizeof(*b));
	b->cidr = *c;
	b->expires_wall_s = expires_wall_s;
	snprintf(b->reason, sizeof(b->reason), "%s", reason ? reason : "");
	return 0;
}

int snap_add_allow(struct hyp_snapshot *s, const struct hyp_cidr *c)
{
	if (s->nallows == s->allows_cap) {
		size_t cap = s->allows_cap ? s->allows_cap * 2 : 64;
		void *p = realloc(s->allows, cap * sizeof(*s->allows));
		if (!p)
			return -ENOMEM;
		s->allows = p;
		s->allows_cap = cap;
	}
	s->allows[s->nallows++] = *c;
	return 0;
}

void snap_free(struct hyp_snapshot *s)
{
	free(s->bans);
	free(s->allows);
	free(s->store);
	memset(s, 0, sizeof(*s));
}

/* ---- little-endian writer/reader over a byte buffer ---- */

struct wbuf {
	unsigned char *p;
	size_t len, cap;
	bool oom;
};

static void w_bytes(struct wbuf *w, const void *src, size_t n)
{
	if (w->oom)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + n)
			cap *= 2;
		unsigned char *p = realloc(w->p, cap);
		if (!p) {
			w->oom = true;
			return;
		}
		w->p = p;
		w->cap = cap;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void w_uint(struct wbuf *w, uint64_t v, int bytes)
{
	unsigned char b[8];

	for (int i = 0; i < bytes; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	w_bytes(w, b, (size_t)bytes);
}

struct rbuf {
	const unsigned char *p;
	size_t len, off;
	bool short_read;
};

static uint64_t r_uint(struct rbuf *r, int bytes)
{
	uint64_t v = 0;

	if (r->short_read || r->len - r->off < (size_t)bytes) {
		r->short_read = true;
		return 0;
	}
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)r->p[r->off + i] << (8 * i);
	r->off += (size_t)bytes;
	return v;
}

static const unsigned char *r_bytes(struct rbuf *r, size_t n)
{
	if (r->short_read || r->len - r->off < n) {
		r->short_read = true;
		return NULL;
	}
	const unsigned char *p = r->p + r->off;
	r->off += n;
	return p;
}

static void w_cidr(struct wbuf *w, const struct hyp_cidr *c)
{
	w_uint(w, c->family, 1);
	w_uint(w, c->prefixlen, 1);
	w_bytes(w, c->addr, 16);
}

/* A CIDR read back must be one cidr_parse could have produced: right family, length, zero host bits. */
static int r_cidr(struct rbuf *r, struct hyp_cidr *c)
{
	const unsigned char *a;

	memset(c, 0, sizeof(*c));
	c->family = (__u8)r_uint(r, 1);
	c->prefixlen = (__u8)r_uint(r, 1);
	a = r_bytes(r, 16);
	if (!a)
		return -EINVAL;
	memcpy(c->addr, a, 16);
	unsigned bits = c->family == HYP_AF_INET ? 32 : c->family == HYP_AF_INET6 ? 128 : 0;
	if (!bits || c->prefixlen > bits)
		return -EINVAL;
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = c->prefixlen >= (i + 1) * 8 ? 8 : c->prefixlen > i * 8 ? c->prefixlen - i * 8 : 0;
		if (i >= bits / 8 ? c->addr[i] != 0 : (c->addr[i] & (__u8)~(keep ? 0xff << (8 - keep) : 0)) != 0)
			return -EINVAL;
	}
	return 0;
}

int state_encode(const struct hyp_snapshot *s, unsigned char **out, size_t *len, char *err, size_t errlen)
{
	struct wbuf raw = {0}, file = {0};
	int rc = 0;

	w_uint(&raw, (uint64_t)s->written_wall_s, 8);
	w_uint(&raw, s->nbans, 4);
	w_uint(&raw, s->nallows, 4);
	w_uint(&raw, s->store_len, 4);
	for (size_t i = 0; i < s->nbans; i++) {
		const struct hyp_snap_ban *b = &s->bans[i];
		size_t rl = strnlen(b->reason, sizeof(b->reason) - 1);
		w_cidr(&raw, &b->cidr);
		w_uint(&raw, (uint64_t)b->expires_wall_s, 8);
		w_uint(&raw, rl, 2);
		w_bytes(&raw, b->reason, rl);
	}
	for (size_t i = 0; i < s->nallows; i++)
		w_cidr(&raw, &s->allows[i]);
	if (s->store_len)
		w_bytes(&raw, s->store, s->store_len);
	if (raw.oom) {
		rc = hyp_errf(err, errlen, -ENOMEM, "snapshot: out of memory");
		goto out;
	}
	if (raw.len > HYP_STATE_RAW_MAX) {
		rc = hyp_errf(err, errlen, -E2BIG, "snapshot: %zu bytes exceeds the %u byte limit", raw.len,
				HYP_STATE_RAW_MAX);
		goto out;
	}
	uLongf clen = compressBound(raw.len);
	w_bytes(&file, STATE_MAGIC, 8);
	w_uint(&file, STATE_VERSION, 4);
	w_uint(&file, crc32(crc32(0L, Z_NULL, 0), raw.p, (uInt)raw.len), 4);
	w_uint(&file, raw.len, 8);
	if (file.oom) {
		rc = hyp_errf(err, errlen, -ENOMEM, "snapshot: out of memory");
		goto out;
	}
	unsigned char *p = realloc(file.p, STATE_HDR_LEN + clen);
	if (!p) {
		rc = hyp_errf(err, errlen, -ENOMEM, "snapshot: out of memory");
		goto out;
	}
	file.p = p;
	int zrc = compress2(file.p + STATE_HDR_LEN, &clen, raw.p, raw.len, Z_DEFAULT_COMPRESSION);
	if (zrc != Z_OK) {
		rc = hyp_errf(err, errlen, -EIO, "snapshot: compress: %s", zError(zrc));
		goto out;
	}
	*out = file.p;
	*len = STATE_HDR_LEN + clen;
	file.p = NULL;
out:
	free(raw.p);
	free(file.p);
	return rc;
}

int state_decode(const unsigned char *buf, size_t len, struct hyp_snapshot *s, char *err, size_t errlen)
{
	struct hyp_snapshot tmp = {0};
	struct rbuf h = { buf, len, 0, false };
	unsigned char *raw = NULL;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	if (len < STATE_HDR_LEN || memcmp(buf, STATE_MAGIC, 8))
		return hyp_errf(err, errlen, -EINVAL, "snapshot: not a hyperion snapshot (bad magic or too short)");
	r_bytes(&h, 8);
	uint32_t ver = (uint32_t)r_uint(&h, 4), crc = (uint32_t)r_uint(&h, 4);
	uint64_t raw_len = r_uint(&h, 8);
	if (ver != STATE_VERSION)
		return hyp_errf(err, errlen, -EINVAL, "snapshot: unsupported version %u", ver);
	if (raw_len > HYP_STATE_RAW_MAX || raw_len < 20)
		return hyp_errf(err, errlen, -EINVAL, "snapshot: implausible length %llu",
				  (unsigned long long)raw_len);
	raw = malloc(raw_len);
	if (!raw)
		return hyp_errf(err, errlen, -ENOMEM, "snapshot: out of memory");
	uLongf got = raw_len;
	uLong used = len - STATE_HDR_LEN;
	/* uncompress2 reports how much input the stream used: bytes after its end mean a damaged file. */
	int zrc = uncompress2(raw, &got, buf + STATE_HDR_LEN, &used);
	if (zrc != Z_OK || got != raw_len || used != len - STATE_HDR_LEN) {
		rc = hyp_errf(err, errlen, -EINVAL, "snapshot: corrupt or truncated data (%s)",
				zrc != Z_OK ? zError(zrc) : got != raw_len ? "length mismatch" : "trailing bytes");
		goto out;
	}
	if ((uint32_t)crc32(crc32(0L, Z_NULL, 0), raw, (uInt)raw_len) != crc) {
		rc = hyp_errf(err, errlen, -EINVAL, "snapshot: checksum mismatch");
		goto out;
	}
	struct rbuf r = { raw, raw_len, 0, false };
	tmp.written_wall_s = (int64_t)r_uint(&r, 8);
	uint32_t nb = (uint32_t)r_uint(&r, 4), na = (uint32_t)r_uint(&r, 4), sl = (uint32_t)r_uint(&r, 4);
	/* Each record takes at least 18 bytes: reject counts the data cannot hold before allocating. */
	if ((uint64_t)nb * 28 + (uint64_t)na * 18 + sl > raw_len - r.off) {
		rc = hyp_errf(err, errlen, -EINVAL, "snapshot: record counts exceed the data");
		goto out;
	}
	for (uint32_t i = 0; i < nb && !rc; i++) {
		struct hyp_cidr c;
		char reason[HYP_STATE_REASON_MAX];
		if (r_cidr(&r, &c)) {
			rc = hyp_errf(err, errlen, -EINVAL, "snapshot: ban %u: bad prefix", i);
			break;
		}
		int64_t exp = (int64_t)r_uint(&r, 8);
		size_t rl = (size_t)r_uint(&r, 2);
		const unsigned char *rp = rl < sizeof(reason) ? r_bytes(&r, rl) : NULL;
		if (!rp || exp < 0) {
			rc = hyp_errf(err, errlen, -EINVAL, "snapshot: ban %u: bad record", i);
			break;
		}
		memcpy(reason, rp, rl);
		reason[rl] = 0;
		if (strlen(reason) != rl) {
			rc = hyp_errf(err, errlen, -EINVAL, "snapshot: ban %u: NUL in reason", i);
			break;
		}
		if (snap_add_ban(&tmp, &c, exp, reason))
			rc = hyp_errf(err, errlen, -ENOMEM, "snapshot: out of memory");
	}
	for (uint32_t i = 0; i < na && !rc; i++) {
		struct hyp_cidr c;
		if (r_cidr(&r, &c))
			rc = hyp_errf(err, errlen, -EINVAL, "snapshot: allow %u: bad prefix", i);
		else if (snap_add_allow(&tmp, &c))
			rc = hyp_errf(err, errlen, -ENOMEM, "snapshot: out of memory");
	}
	if (rc)
		goto out;
	if (sl) {
		const unsigned char *sp = r_bytes(&r, sl);
		tmp.store = sp ? malloc(sl) : NULL;
		if (!tmp.store) {
			rc = hyp_errf(err, errlen, sp ? -ENOMEM : -EINVAL, "snapshot: bad store blob");
			goto out;
		}
		memcpy(tmp.store, sp, sl);
		tmp.store_len = sl;
	}
	if (r.short_read || r.off != r.len)
		rc = hyp_errf(err, errlen, -EINVAL, "snapshot: %s", r.short_read ? "truncated records" :
				"trailing bytes after the records");
out:
	free(raw);
	if (rc)
		snap_free(&tmp);
	else
		*s = tmp;
	return rc;
}

static int state_path(char *buf, size_t len, const char *dir, const char *suffix)
{
	int n = snprintf(buf, len, "%s/%s%s", dir, HYP_STATE_FILE, suffix);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int state_write(const char *dir, const struct hyp_snapshot *s, char *err, size_t errlen)
{
	char path[4096], tmp[4096];
	unsigned char *data = NULL;
	size_t len = 0;
	int rc, fd;

	if (state_path(path, sizeof(path), dir, "") || state_path(tmp, sizeof(tmp), dir, ".tmp"))
		return hyp_errf(err, errlen, -ENAMETOOLONG, "snapshot: state dir path too long");
	rc = state_encode(s, &data, &len, err, errlen);
	if (rc)
		return rc;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = hyp_errf(err, errlen, -errno, "snapshot: open %s: %s", tmp, strerror(errno));
		goto out;
	}
	rc = write_all(fd, data, len);
	/* fsync before rename: otherwise a crash can leave the new name pointing at an empty file. */
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (rc) {
		hyp_errf(err, errlen, rc, "snapshot: write %s: %s", tmp, strerror(-rc));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path)) {
		rc = hyp_errf(err, errlen, -errno, "snapshot: rename to %s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	/* fsync the directory so the rename itself is durable. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd))
		rc = hyp_errf(err, errlen, -errno, "snapshot: fsync %s: %s", dir, strerror(errno));
	if (dfd >= 0)
		close(dfd);
out:
	free(data);
	return rc;
}

int state_read(const char *dir, struct hyp_snapshot *s, char *err, size_t errlen)
{
	char path[4096];
	struct stat st;
	unsigned char *data;
	int fd, rc = 0;

	memset(s, 0, sizeof(*s));
	if (state_path(path, sizeof(path), dir, ""))
		return hyp_errf(err, errlen, -ENAMETOOLONG, "snapshot: state dir path too long");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hyp_errf(err, errlen, -errno, "snapshot: open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > (off_t)STATE_FILE_MAX) {
		close(fd);
		return hyp_errf(err, errlen, -EINVAL, "snapshot: %s is not a regular file of sane size", path);
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		close(fd);
		return hyp_errf(err, errlen, -ENOMEM, "snapshot: out of memory");
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, data + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = hyp_errf(err, errlen, r < 0 ? -errno : -EIO, "snapshot: read %s: %s", path,
					r < 0 ? strerror(errno) : "short read");
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	if (!rc) {
		char msg[256];
		rc = state_decode(data, got, s, msg, sizeof(msg));
		if (rc)
			hyp_errf(err, errlen, rc, "%s: %s", path, msg);
	}
	free(data);
	return rc;
}

int state_quarantine(const char *dir, char *err, size_t errlen)
{
	char path[4096], aside[4096], suffix[40];

	snprintf(suffix, sizeof(suffix), ".corrupt-%lld", (long long)time(NULL));
	if (state_path(path, sizeof(path), dir, "") || state_path(aside, sizeof(aside), dir, suffix))
		return hyp_errf(err, errlen, -ENAMETOOLONG, "snapshot: state dir path too long");
	if (rename(path, aside))
		return hyp_errf(err, errlen, -errno, "snapshot: rename %s: %s", path, strerror(errno));
	return hyp_errf(err, errlen, 0, "%s", aside);
}
