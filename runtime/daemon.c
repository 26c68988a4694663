/* hyperiond wiring: lifecycle, ban/allow operations with reason texts, reload, expiry, snapshots. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <zlib.h>
#include "ctl.h"
#include "ctl_proto.h"
#include "daemon.h"
#include "log.h"
#include "lua_vm.h"
#include "metrics.h"
#include "policy.h"
#include "ringbuf.h"
#include "state.h"

#define DAEMON_EXPIRE_INTERVAL_MS 1000  /* how often expired bans are deleted (the datapath already
					 * ignores them; this frees the entries and their texts) */
#define DAEMON_EXPIRE_DUTY 10       /* expiry walks and snapshots may each use at most 1/10 of the time */
#define DAEMON_SNAPSHOT_DELAY_MS 1000   /* debounce: at most one snapshot write per second */
#define DAEMON_REASON_BUCKETS 1024      /* initial hash buckets of the reason table; doubles as needed */
#define DAEMON_WATCH_INTERVAL_MS 1000   /* --watch-policy: how often the policy file is stat()ed */

_Static_assert(HYP_CTL_REASON_MAX == HYP_REASON_MAX, "ctl reason size");
_Static_assert(HYP_STATE_REASON_MAX == HYP_REASON_MAX, "snapshot reason size");

/* Ban reason texts by CIDR. The map only has room for a number, so the text lives here; the number
 * stored in the map is the text's CRC (stable across restarts, handy when correlating). */
struct reason_ent {
	struct reason_ent *next;
	struct hyp_cidr cidr;
	char text[];
};

struct reason_tab {
	struct reason_ent **b;
	size_t nb, n;
};

struct daemon_priv {
	struct reason_tab reasons;
	struct hyp_ctl *ctl;
	struct hyp_metrics *metrics;
	struct hyp_ringbuf *rb;
	struct event *ev_expire, *ev_snapshot, *ev_hup, *ev_term, *ev_int, *ev_watch;
	struct stat policy_st;          /* --watch-policy: the file as of the last reload or change seen */
	bool watch_pending;             /* changed at the last poll: reload once it holds still */
	__u64 next_expiry_ns;           /* earliest known ban expiry; 0 = none known */
	__u64 expire_not_before_ns;     /* rate limit of the expiry walk (see expire_cb) */
	__u64 snapshot_cost_ns;         /* how long the last snapshot took (spaces the next one) */
	/* Snapshot writer thread (snap_writer): at most one write in flight, its data in snap. */
	struct event *ev_snap_done;     /* activated by the writer when it is done */
	pthread_t snap_thread;
	bool snap_busy;                 /* a write is in flight: snap belongs to the writer */
	bool snap_again;                /* a snapshot came due meanwhile: schedule one when done */
	struct hyp_snapshot snap;
	int snap_rc;
	char snap_err[512];
	__u64 snap_t0, snap_gen, dirty_gen;  /* dirty_gen counts changes; snap_gen: the one written */
	bool started;
};

static struct daemon_priv *priv(struct hyp_daemon *d)
{
	return d->priv;
}

/* ---- reason table ---- */

static size_t reason_hash(const struct hyp_cidr *c, size_t nb)
{
	__u32 h = (__u32)crc32(0, (const Bytef *)c, sizeof(*c));
	return h & (nb - 1);
}

static struct reason_ent **reason_slot(struct reason_tab *t, const struct hyp_cidr *c)
{
	if (!t->nb)
		return NULL;
	struct reason_ent **pp = &t->b[reason_hash(c, t->nb)];
	while (*pp && memcmp(&(*pp)->cidr, c, sizeof(*c)))
		pp = &(*pp)->next;
	return pp;
}

static void reason_del(struct reason_tab *t, const struct hyp_cidr *c)
{
	struct reason_ent **pp = reason_slot(t, c);

	if (pp && *pp) {
		struct reason_ent *e = *pp;
		*pp = e->next;
		free(e);
		t->n--;
	}
}

static int reason_grow(struct reason_tab *t)
{
	size_t nb = t->nb ? t->nb * 2 : DAEMON_REASON_BUCKETS;
	struct reason_ent **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->nb; i++) {
		struct reason_ent *e = t->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			size_t h = reason_hash(&e->cidr, nb);
			e->next = b[h];
			b[h] = e;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
	return 0;
}

/* Empty text removes the entry: "no reason" needs no memory. */
static int reason_set(struct reason_tab *t, const struct hyp_cidr *c, const char *text)
{
	if (!text || !*text) {
		reason_del(t, c);
		return 0;
	}
	if ((t->n + 1 > t->nb * 2 || !t->nb) && reason_grow(t))
		return -ENOMEM;
	size_t len = strnlen(text, HYP_REASON_MAX - 1);
	struct reason_ent *e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return -ENOMEM;
	e->cidr = *c;
	memcpy(e->text, text, len);
	e->text[len] = 0;
	struct reason_ent **pp = reason_slot(t, c);
	if (*pp) {
		e->next = (*pp)->next;
		free(*pp);
		*pp = e;
	} else {
		e->next = NULL;
		*pp = e;
		t->n++;
	}
	return 0;
}

static void reason_free_all(struct reason_tab *t)
{
	for (size_t i = 0; i < t->nb; i++) {
		struct reason_ent *e = t->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(t->b);
	memset(t, 0, sizeof(*t));
}

static __u32 reason_code(const char *text)
{
	return text && *text ? (__u32)crc32(0, (const Bytef *)text, (uInt)strlen(text)) : 0;
}

/* ---- operations ---- */

static void note_expiry(struct hyp_daemon *d, __u64 expires_ns)
{
	struct daemon_priv *p = priv(d);

	if (expires_ns && (!p->next_expiry_ns || expires_ns < p->next_expiry_ns))
		p->next_expiry_ns = expires_ns;
}

int daemon_ban_add(struct hyp_daemon *d, const struct hyp_cidr *c, __u64 ttl_s, const char *reason, char *err,
		   size_t errlen)
{
	char cs[64];
	int rc;

	cidr_format(c, cs, sizeof(cs));
	if (ttl_s > HYP_CTL_TTL_MAX)
		return hyp_errf(err, errlen, -ERANGE, "ban %s: TTL %llus exceeds the maximum %llus", cs,
			    (unsigned long long)ttl_s, (unsigned long long)HYP_CTL_TTL_MAX);
	if (reason && strlen(reason) >= HYP_REASON_MAX)
		return hyp_errf(err, errlen, -EINVAL, "ban %s: reason longer than %d bytes", cs, HYP_REASON_MAX - 1);
	rc = ban_add(&d->dp, c, ttl_s, reason_code(reason));
	if (rc)
		return hyp_errf(err, errlen, rc, "ban %s: %s", cs, rc == -ENOSPC || rc == -E2BIG ?
			    "ban table full" : strerror(-rc));
	if (reason_set(&priv(d)->reasons, c, reason))
		hyp_log(LOG_WARNING, "ban %s: out of memory for the reason text; ban kept without it", cs);
	if (ttl_s)
		note_expiry(d, dp_now_ns() + ttl_s * 1000000000ull);
	d->st.bans_added++;
	daemon_state_dirty(d);
	return 0;
}

int daemon_ban_del(struct hyp_daemon *d, const struct hyp_cidr *c, char *err, size_t errlen)
{
	char cs[64];
	int rc = ban_del(&d->dp, c);

	cidr_format(c, cs, sizeof(cs));
	/* The text goes with the ban: kept if the delete failed, so the ban still lists its reason. */
	if (!rc || rc == -ENOENT)
		reason_del(&priv(d)->reasons, c);
	if (rc == -ENOENT)
		return hyp_errf(err, errlen, rc, "no ban for %s", cs);
	if (rc)
		return hyp_errf(err, errlen, rc, "ban del %s: %s", cs, strerror(-rc));
	daemon_state_dirty(d);
	return 0;
}

const char *daemon_ban_reason(struct hyp_daemon *d, const struct hyp_cidr *c)
{
	struct reason_ent **pp = d->priv ? reason_slot(&priv(d)->reasons, c) : NULL;

	return pp && *pp ? (*pp)->text : NULL;
}

int daemon_allow_add(struct hyp_daemon *d, const struct hyp_cidr *c, char *err, size_t errlen)
{
	char cs[64];
	int rc = allow_add(&d->dp, c);

	cidr_format(c, cs, sizeof(cs));
	if (rc)
		return hyp_errf(err, errlen, rc, "allow %s: %s", cs, rc == -ENOSPC || rc == -E2BIG ?
			    "allowlist full" : strerror(-rc));
	daemon_state_dirty(d);
	return 0;
}

int daemon_allow_del(struct hyp_daemon *d, const struct hyp_cidr *c, char *err, size_t errlen)
{
	char cs[64];
	int rc = allow_del(&d->dp, c);

	cidr_format(c, cs, sizeof(cs));
	if (rc == -ENOENT)
		return hyp_errf(err, errlen, rc, "%s is not on the allowlist", cs);
	if (rc)
		return hyp_errf(err, errlen, rc, "allow del %s: %s", cs, strerror(-rc));
	daemon_state_dirty(d);
	return 0;
}

/* What the watcher compares: an editor's save changes the inode (rename) or mtime/size (in place). */
static bool policy_st_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int daemon_reload(struct hyp_daemon *d, char *err, size_t errlen)
{
	struct hyp_policy *np = NULL, *old = d->policy;
	char msg[1024] = "";
	int rc;

	/* Reloads come from loop callbacks (ctl, SIGHUP, the watcher), never from inside Lua. Should a
	 * future API call this from a hook or timer, the running state would be freed under its own
	 * stack: refuse instead. */
	if (lua_vm_in_call())
		return hyp_errf(err, errlen, -EBUSY, "reload refused: requested from inside a Lua call");
	/* Whatever triggered this reload, the watcher need not reload this version of the file again
	 * (a refused one included: it retries when the file changes next). */
	if (d->priv && stat(d->opt.policy_path, &priv(d)->policy_st))
		memset(&priv(d)->policy_st, 0, sizeof(priv(d)->policy_st));
	if (d->priv)
		priv(d)->watch_pending = false;
	rc = policy_load(d, d->opt.policy_path, &np, msg, sizeof(msg));
	if (!rc) {
		rc = policy_activate(d, np, old, msg, sizeof(msg));
		if (rc)
			policy_free(np);
	}
	if (rc) {
		d->st.reload_failures++;
		hyp_log(LOG_ERR, "reload refused, previous policy keeps running: %s", msg[0] ? msg : strerror(-rc));
		return hyp_errf(err, errlen, rc, "reload refused: %s", msg[0] ? msg : strerror(-rc));
	}
	d->policy = np;
	policy_free(old);
	d->st.reloads++;
	hyp_log(LOG_INFO, "policy reloaded: %s (%u signatures)", policy_path(np), policy_nsigs(np));
	/* hx.store moved to the new state: persist it with the rest. */
	daemon_state_dirty(d);
	return 0;
}

/* ---- snapshot ---- */

struct snap_build {
	struct hyp_daemon *d;
	struct hyp_snapshot *s;
	__u64 now_ns;
	time_t wall;
	int err;
};

static int snap_ban_cb(const struct hyp_cidr *c, const struct hyp_ban *b, void *arg)
{
	struct snap_build *sb = arg;
	int64_t exp = 0;

	if (b->expires_ns) {
		if (b->expires_ns <= sb->now_ns)
			return 0;
		/* Monotonic time means nothing after a reboot: store the wall-clock moment, rounded up. */
		exp = (int64_t)sb->wall + (int64_t)((b->expires_ns - sb->now_ns + 999999999ull) / 1000000000ull);
	}
	if (snap_add_ban(sb->s, c, exp, daemon_ban_reason(sb->d, c)))
		sb->err = -ENOMEM;
	return sb->err;
}

static int snap_allow_cb(const struct hyp_cidr *c, const struct hyp_allow *a, void *arg)
{
	struct snap_build *sb = arg;
	(void)a;

	if (snap_add_allow(sb->s, c))
		sb->err = -ENOMEM;
	return sb->err;
}

/* Read bans, allowlist and hx.store into s (loop thread: the reason texts and Lua live there). */
static int snap_collect(struct hyp_daemon *d, struct hyp_snapshot *s, char *err, size_t errlen)
{
	struct snap_build sb = { d, s, dp_now_ns(), time(NULL), 0 };
	int rc;

	memset(s, 0, sizeof(*s));
	s->written_wall_s = sb.wall;
	rc = ban_foreach(&d->dp, snap_ban_cb, &sb);
	if (!rc)
		rc = allow_foreach(&d->dp, snap_allow_cb, &sb);
	if (rc) {
		snap_free(s);
		return hyp_errf(err, errlen, rc < 0 ? rc : -ENOMEM, "snapshot: cannot read bans/allowlist: %s",
			    strerror(rc < 0 ? -rc : ENOMEM));
	}
	if (d->policy) {
		char *buf = NULL;
		size_t len = 0;
		rc = policy_store_dump(d->policy, &buf, &len);
		if (rc) {
			/* Bans matter more than the store: write what we have, report the store problem. */
			hyp_log(LOG_ERR, "snapshot: hx.store not saved: %s", strerror(-rc));
		} else {
			s->store = buf;
			s->store_len = len;
		}
	}
	return 0;
}

/* A write of p->snap is over (on the writer thread, or here without one): its cost spaces the next,
 * and the state is clean unless something changed since it was collected. */
static void snap_finish(struct hyp_daemon *d)
{
	struct daemon_priv *p = priv(d);

	p->snapshot_cost_ns = dp_now_ns() - p->snap_t0;
	if (p->snap_rc)
		hyp_log(LOG_ERR, "%s", p->snap_err);   /* state stays dirty: the next change retries */
	else if (p->snap_gen == p->dirty_gen)
		d->state_dirty = false;
	snap_free(&p->snap);
}

/* Wait for a snapshot write in flight (a synchronous save must not race it). */
static void snap_writer_join(struct hyp_daemon *d)
{
	struct daemon_priv *p = priv(d);

	if (!p || !p->snap_busy)
		return;
	pthread_join(p->snap_thread, NULL);
	p->snap_busy = false;
	snap_finish(d);
}

int daemon_state_save(struct hyp_daemon *d, char *err, size_t errlen)
{
	struct hyp_snapshot s;
	int rc;

	snap_writer_join(d);
	rc = snap_collect(d, &s, err, errlen);
	if (rc)
		return rc;
	rc = state_write(d->opt.state_dir, &s, err, errlen);
	if (!rc)
		d->state_dirty = false;
	snap_free(&s);
	return rc;
}

/* The writer thread: encode, compress, write, fsync, rename, fsync the directory. fsync waits for the
 * filesystem's journal, milliseconds to seconds on a busy disk, which on the loop would hold up every
 * event and reaction meanwhile. Touches only p->snap*, then wakes the loop (event_active is
 * thread-safe: evthread_use_pthreads). */
static void *snap_writer(void *arg)
{
	struct hyp_daemon *d = arg;
	struct daemon_priv *p = priv(d);

	p->snap_rc = state_write(d->opt.state_dir, &p->snap, p->snap_err, sizeof(p->snap_err));
	event_active(p->ev_snap_done, 0, 0);
	return NULL;
}

static void snap_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hyp_daemon *d = arg;
	struct daemon_priv *p = priv(d);
	(void)fd;
	(void)what;

	if (!p->snap_busy)
		return;
	snap_writer_join(d);
	if (p->snap_again)
		daemon_state_dirty(d);
}

static void snapshot_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hyp_daemon *d = arg;
	struct daemon_priv *p = priv(d);
	char err[512];
	(void)fd;
	(void)what;

	if (p->snap_busy) {             /* one write at a time: this one is taken when it is done */
		p->snap_again = true;
		return;
	}
	p->snap_again = false;
	p->snap_t0 = dp_now_ns();
	if (snap_collect(d, &p->snap, err, sizeof(err))) {
		hyp_log(LOG_ERR, "%s", err);
		return;
	}
	p->snap_gen = p->dirty_gen;
	sigset_t all, old;              /* signals stay with the loop thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&p->snap_thread, NULL, snap_writer, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!rc) {
		p->snap_busy = true;
		return;
	}
	/* No thread: write from here, as a synchronous save would. */
	p->snap_rc = state_write(d->opt.state_dir, &p->snap, p->snap_err, sizeof(p->snap_err));
	snap_finish(d);
}

void daemon_state_dirty(struct hyp_daemon *d)
{
	struct daemon_priv *p = priv(d);
	/* With a huge ban table a snapshot takes a while (a syscall per ban): space writes so that they
	 * use at most 1/DAEMON_EXPIRE_DUTY of the time, never less than DAEMON_SNAPSHOT_DELAY_MS apart. */
	__u64 us = (__u64)DAEMON_SNAPSHOT_DELAY_MS * 1000;
	if (p && p->snapshot_cost_ns / 1000 * DAEMON_EXPIRE_DUTY > us)
		us = p->snapshot_cost_ns / 1000 * DAEMON_EXPIRE_DUTY;
	struct timeval tv = { (time_t)(us / 1000000), (suseconds_t)(us % 1000000) };

	d->state_dirty = true;
	if (p)
		p->dirty_gen++;
	/* Changes within the delay share one write; a burst of 10k bans costs one snapshot. */
	if (p && p->ev_snapshot && !evtimer_pending(p->ev_snapshot, NULL))
		evtimer_add(p->ev_snapshot, &tv);
}

/* With re-adopted maps (a restart after kill -9 or a crash) the pins are the truth: they saw every
 * change, the snapshot may be up to DAEMON_SNAPSHOT_DELAY_MS older, so a ban deleted just before the
 * crash must not come back. The snapshot then only returns the reason texts and hx.store. With fresh
 * maps (reboot, lost pins, clean stop) bans are re-added with their remaining wall-clock time. */
static void state_restore(struct hyp_daemon *d, struct hyp_policy *p)
{
	struct hyp_snapshot s;
	char err[512];
	time_t wall = time(NULL);
	unsigned added = 0, kept = 0, gone = 0, allows = 0;
	int rc = state_read(d->opt.state_dir, &s, err, sizeof(err));

	if (rc == -ENOENT) {
		hyp_log(LOG_INFO, "no snapshot in %s (first start)", d->opt.state_dir);
		return;
	}
	if (rc) {
		char aside[512];
		hyp_log(LOG_ERR, "snapshot rejected, starting from the pinned maps only: %s", err);
		if (!state_quarantine(d->opt.state_dir, aside, sizeof(aside)))
			hyp_log(LOG_WARNING, "unreadable snapshot kept as %s", aside);
		return;
	}
	for (size_t i = 0; i < s.nbans; i++) {
		const struct hyp_snap_ban *b = &s.bans[i];
		struct hyp_ban cur;
		if (!ban_get(&d->dp, &b->cidr, &cur)) {
			kept++;
		} else if (d->dp.adopted) {
			continue;
		} else if (b->expires_wall_s && b->expires_wall_s <= wall) {
			gone++;
			continue;
		} else {
			__u64 ttl = b->expires_wall_s ? (__u64)(b->expires_wall_s - wall) : 0;
			/* A damaged or hand-made snapshot (or a clock set far back) must not overflow the
			 * nanosecond expiry into a ban that ends at once: cap it like any other TTL. */
			if (ttl > HYP_CTL_TTL_MAX)
				ttl = HYP_CTL_TTL_MAX;
			if (ban_add(&d->dp, &b->cidr, ttl, reason_code(b->reason)))
				continue;   /* logged by ban_add */
			added++;
		}
		reason_set(&priv(d)->reasons, &b->cidr, b->reason);
	}
	for (size_t i = 0; i < s.nallows && !d->dp.adopted; i++)
		if (!allow_add(&d->dp, &s.allows[i]))
			allows++;
	if (s.store_len || s.store) {
		rc = policy_store_load(p, s.store, s.store_len);
		if (rc)
			hyp_log(LOG_ERR, "snapshot: hx.store not restored: %s", strerror(-rc));
	}
	hyp_log(LOG_INFO, "snapshot restored%s: %u bans re-added, %u already pinned, %u expired meanwhile, "
		"%u allowlist entries, %zu bytes of hx.store", d->dp.adopted ? " (pins adopted: texts and store only)" : "",
		added, kept, gone, allows, s.store_len);
	snap_free(&s);
}

/* ---- timers, signals, events ---- */

struct expire_walk {
	struct hyp_daemon *d;
	__u64 now, next;
	unsigned n;
};

/* One walk does what ban_expire() does (delete what is due; the walk copies keys first, so deleting
 * from the callback is safe) and also drops the reason texts and finds the next expiry. */
static int expire_scan_cb(const struct hyp_cidr *c, const struct hyp_ban *b, void *arg)
{
	struct expire_walk *w = arg;

	if (!b->expires_ns)
		return 0;
	if (b->expires_ns <= w->now) {
		if (!ban_del(&w->d->dp, c))
			w->n++;
		reason_del(&priv(w->d)->reasons, c);
	} else if (!w->next || b->expires_ns < w->next) {
		w->next = b->expires_ns;
	}
	return 0;
}

static void expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hyp_daemon *d = arg;
	struct daemon_priv *p = priv(d);
	struct expire_walk w = { d, dp_now_ns(), 0, 0 };
	(void)fd;
	(void)what;

	/* Walking the tries costs a syscall per entry (~5 us): only when something is due, and never more
	 * than 1/DAEMON_EXPIRE_DUTY of the time. The datapath already ignores expired bans, so a late
	 * delete only delays freeing the entry. */
	if (!p->next_expiry_ns || p->next_expiry_ns > w.now || w.now < p->expire_not_before_ns)
		return;
	if (ban_foreach(&d->dp, expire_scan_cb, &w) < 0)
		return;     /* logged; retried next tick */
	__u64 took = dp_now_ns() - w.now;
	p->expire_not_before_ns = w.now + took * DAEMON_EXPIRE_DUTY;
	p->next_expiry_ns = w.next;
	if (w.n > 0) {
		d->st.bans_expired += w.n;
		hyp_log(LOG_INFO, "%u ban(s) expired", w.n);
		daemon_state_dirty(d);
	}
}

static void sighup_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	hyp_log(LOG_INFO, "SIGHUP: reloading the policy");
	daemon_reload(arg, NULL, 0);    /* logs its own outcome */
}

/* --watch-policy: reload after the file changed and then held still for one interval, so an editor
 * writing in several steps triggers one reload of the finished file. */
static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hyp_daemon *d = arg;
	struct daemon_priv *p = priv(d);
	struct stat st;
	(void)fd;
	(void)what;

	if (stat(d->opt.policy_path, &st))
		return;     /* mid-rename or deleted: keep the running policy, look again next tick */
	if (!policy_st_same(&st, &p->policy_st)) {
		p->policy_st = st;
		p->watch_pending = true;
		return;
	}
	if (!p->watch_pending)
		return;
	hyp_log(LOG_INFO, "%s changed on disk: reloading the policy", d->opt.policy_path);
	daemon_reload(d, NULL, 0);      /* logs its own outcome */
}

static void sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	struct hyp_daemon *d = arg;
	(void)what;
	hyp_log(LOG_INFO, "%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	event_base_loopbreak(d->base);
}

static void events_cb(const struct hyp_event *ev, size_t n, void *arg)
{
	struct hyp_daemon *d = arg;

	d->st.events_read += n;
	ctl_publish(priv(d)->ctl, ev, n);
	if (d->policy)
		policy_dispatch(d, d->policy, ev, n);
}

/* Runs on the watchdog thread: a hook stuck inside one C function cannot be unwound. Exit so the
 * supervisor restarts us; the pinned datapath keeps enforcing meanwhile, bans and flows live on. */
static void stuck_cb(const char *what)
{
	hyp_log(LOG_ERR, "lua: %s is stuck in a C function past its deadline; exiting for a restart "
		"(the datapath keeps running from its pins)", what ? what : "a hook");
	_exit(3);
}

int daemon_mkdir_p(const char *path, unsigned mode)
{
	char buf[4096];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || !*p) {
			char c = *p;
			*p = 0;
			if (mkdir(buf, (mode_t)mode) && errno != EEXIST)
				return -errno;
			*p = c;
			if (!c)
				break;
		}
	}
	return 0;
}

static int pin_ban_scan_cb(const struct hyp_cidr *c, const struct hyp_ban *b, void *arg)
{
	(void)c;
	note_expiry(arg, b->expires_ns);
	return 0;
}

static struct event *timer_new(struct hyp_daemon *d, short flags, event_callback_fn cb, int ms)
{
	struct event *ev = event_new(d->base, -1, flags, cb, d);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (ev && ms && event_add(ev, &tv)) {
		event_free(ev);
		return NULL;
	}
	return ev;
}

int daemon_start(struct hyp_daemon *d)
{
	struct hyp_loader_opts lo = { .pin_dir = d->opt.pin_dir };
	struct daemon_priv *p = calloc(1, sizeof(*p));
	char err[1024] = "";
	struct hyp_policy *pol = NULL;
	int rc;

	if (!p)
		return -ENOMEM;
	d->priv = p;
	d->start_ns = mono_now_ns();
	/* The Lua watchdog is a thread; libevent must be told before the base exists. */
	evthread_use_pthreads();
	/* Precise timers (timerfd): the ring-buffer reader polls every HYP_RB_POLL_US under load, which
	 * epoll_wait's millisecond timeout would round up to 1 ms. */
	struct event_config *cfg = event_config_new();
	if (cfg && !event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER))
		d->base = event_base_new_with_config(cfg);
	if (cfg)
		event_config_free(cfg);
	if (!d->base)
		d->base = event_base_new();
	if (!d->base) {
		hyp_log(LOG_ERR, "cannot create the event loop");
		return -ENOMEM;
	}
	rc = ctl_probe(d->opt.socket_path);
	if (rc) {
		hyp_log(LOG_ERR, "another hyperiond answers on %s; not starting", d->opt.socket_path);
		return rc;
	}
	rc = daemon_mkdir_p(d->opt.state_dir, 0700);
	if (rc) {
		hyp_log(LOG_ERR, "state dir %s: %s", d->opt.state_dir, strerror(-rc));
		return rc;
	}
	rc = dp_open(&d->dp, &lo);
	if (rc)
		return rc;  /* logged by the loader, as is what it adopted */
	rc = policy_load(d, d->opt.policy_path, &pol, err, sizeof(err));
	if (rc) {
		hyp_log(LOG_ERR, "policy not loaded: %s", err[0] ? err : strerror(-rc));
		goto fail_dp;
	}
	state_restore(d, pol);
	rc = policy_activate(d, pol, NULL, err, sizeof(err));
	if (rc) {
		hyp_log(LOG_ERR, "policy not activated: %s", err[0] ? err : strerror(-rc));
		policy_free(pol);
		goto fail_dp;
	}
	d->policy = pol;
	for (int i = 0; i < d->opt.nifaces; i++) {
		rc = dp_attach(&d->dp, d->opt.ifaces[i], d->opt.xdp_mode);
		if (rc) {
			hyp_log(LOG_ERR, "cannot attach to %s: %s", d->opt.ifaces[i], strerror(-rc));
			goto fail_dp;
		}
	}
	ban_foreach(&d->dp, pin_ban_scan_cb, d);
	rc = ringbuf_open(&p->rb, d->base, d->dp.fd_events, events_cb, d);
	if (rc)
		goto fail_dp;
	rc = ctl_open(&p->ctl, d, d->opt.socket_path, d->opt.ctl_allow_uid);
	if (rc)
		goto fail_dp;
	if (d->opt.metrics_addr) {
		rc = metrics_open(&p->metrics, d, d->opt.metrics_addr);
		if (rc)
			goto fail_dp;
	}
	p->ev_expire = timer_new(d, EV_PERSIST, expire_cb, DAEMON_EXPIRE_INTERVAL_MS);
	p->ev_snapshot = timer_new(d, 0, snapshot_cb, 0);
	p->ev_snap_done = timer_new(d, 0, snap_done_cb, 0);
	p->ev_hup = evsignal_new(d->base, SIGHUP, sighup_cb, d);
	p->ev_term = evsignal_new(d->base, SIGTERM, sigterm_cb, d);
	p->ev_int = evsignal_new(d->base, SIGINT, sigterm_cb, d);
	if (!p->ev_expire || !p->ev_snapshot || !p->ev_snap_done || !p->ev_hup || !p->ev_term || !p->ev_int ||
	    evsignal_add(p->ev_hup, NULL) || evsignal_add(p->ev_term, NULL) || evsignal_add(p->ev_int, NULL)) {
		hyp_log(LOG_ERR, "cannot set up timers and signal handlers");
		rc = -ENOMEM;
		goto fail_dp;
	}
	if (d->opt.watch_policy) {
		if (stat(d->opt.policy_path, &p->policy_st))
			memset(&p->policy_st, 0, sizeof(p->policy_st));
		p->ev_watch = timer_new(d, EV_PERSIST, watch_cb, DAEMON_WATCH_INTERVAL_MS);
		if (!p->ev_watch) {
			hyp_log(LOG_ERR, "cannot set up the policy file watch");
			rc = -ENOMEM;
			goto fail_dp;
		}
	}
	lua_vm_on_stuck(stuck_cb);
	p->started = true;
	/* The first snapshot records what we started with (restored + pinned state). */
	daemon_state_dirty(d);
	hyp_log(LOG_INFO, "hyperiond running: policy %s (%u signatures), %d interface(s), socket %s%s%s",
		policy_path(d->policy), policy_nsigs(d->policy), d->dp.nifaces, d->opt.socket_path,
		d->opt.metrics_addr ? ", metrics " : "", d->opt.metrics_addr ? d->opt.metrics_addr : "");
	return 0;

fail_dp:
	/* A datapath we created ourselves is removed again; one adopted from a previous run keeps
	 * enforcing from its pins, as if we had never started. */
	daemon_stop(d, !d->dp.adopted);
	return rc ? rc : -EINVAL;
}

int daemon_run(struct hyp_daemon *d)
{
	int rc = event_base_dispatch(d->base);

	if (rc < 0) {
		hyp_log(LOG_ERR, "event loop failed");
		return -EIO;
	}
	return 0;
}

void daemon_stop(struct hyp_daemon *d, bool detach)
{
	struct daemon_priv *p = priv(d);
	char err[512];

	if (p && p->started && daemon_state_save(d, err, sizeof(err)))  /* waits for a write in flight */
		hyp_log(LOG_ERR, "final %s", err);
	if (p) {
		metrics_close(p->metrics);
		ctl_close(p->ctl);
		ringbuf_close(p->rb);
		struct event *evs[] = { p->ev_expire, p->ev_snapshot, p->ev_snap_done, p->ev_hup, p->ev_term, p->ev_int,
					p->ev_watch };
		for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
			if (evs[i])
				event_free(evs[i]);
	}
	if (d->policy) {
		policy_free(d->policy);
		d->policy = NULL;
	}
	if (d->dp.skel) {
		if (detach) {
			int rc = dp_detach_all(&d->dp);
			if (rc)
				hyp_log(LOG_ERR, "detach: %s", strerror(-rc));
			else
				hyp_log(LOG_INFO, "datapath detached and unpinned");
		}
		dp_close(&d->dp);   /* after a detach this only frees; otherwise the pins keep enforcing */
	}
	if (p) {
		reason_free_all(&p->reasons);
		free(p);
		d->priv = NULL;
	}
	if (d->base) {
		event_base_free(d->base);
		d->base = NULL;
	}
}
