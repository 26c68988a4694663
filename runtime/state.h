/* Persistent snapshot of bans, allowlist and hx.store: zlib-compressed, written atomically. */
#ifndef HYP_STATE_H
#define HYP_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "hyperion_abi.h"
#include "maps.h"

#define HYP_STATE_FILE "hyperion.snap"          /* inside the state dir */
#define HYP_STATE_RAW_MAX (256u << 20)          /* decompressed bytes we accept: bounds a hostile file */
#define HYP_STATE_REASON_MAX 128                /* reason bytes incl. NUL (= HYP_REASON_MAX) */

struct hyp_snap_ban {
	struct hyp_cidr cidr;
	int64_t expires_wall_s;                 /* CLOCK_REALTIME seconds; 0 = never */
	char reason[HYP_STATE_REASON_MAX];
};

struct hyp_snapshot {
	struct hyp_snap_ban *bans;
	size_t nbans, bans_cap;
	struct hyp_cidr *allows;
	size_t nallows, allows_cap;
	char *store;                            /* hx.store blob (policy_store_dump); may be NULL */
	size_t store_len;
	int64_t written_wall_s;                 /* when it was written (informational) */
};

/* Append entries (copies). 0 or -ENOMEM. */
int snap_add_ban(struct hyp_snapshot *s, const struct hyp_cidr *c, int64_t expires_wall_s, const char *reason);
int snap_add_allow(struct hyp_snapshot *s, const struct hyp_cidr *c);
void snap_free(struct hyp_snapshot *s);

/* Serialise to/from memory (the file's bytes). decode validates everything (magic, version, lengths,
 * checksum, every record) and leaves *s empty on error. 0 or -errno with a message in err. */
int state_encode(const struct hyp_snapshot *s, unsigned char **out, size_t *len, char *err, size_t errlen);
int state_decode(const unsigned char *buf, size_t len, struct hyp_snapshot *s, char *err, size_t errlen);

/* dir/HYP_STATE_FILE: write = temp file, fsync, rename, fsync dir; read = -ENOENT if there is none. */
int state_write(const char *dir, const struct hyp_snapshot *s, char *err, size_t errlen);
int state_read(const char *dir, struct hyp_snapshot *s, char *err, size_t errlen);
/* Move an unreadable snapshot aside (HYP_STATE_FILE.corrupt-<time>) so it is kept for inspection and
 * the next write does not replace the evidence. */
int state_quarantine(const char *dir, char *err, size_t errlen);

#endif
