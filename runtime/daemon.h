/* hyperiond's shared state: the loop, the datapath, the policy, and the operations every front end
 * (control socket, Lua hooks, timers) goes through so that bans are recorded and persisted once. */
#ifndef HYP_DAEMON_H
#define HYP_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include "hyperion_abi.h"
#include "loader.h"
#include "maps.h"

struct event_base;
struct hyp_policy;      /* runtime/policy.h: one compiled Lua policy */

#define HYP_SOCKET_DEFAULT "/run/hyperion/hyperiond.sock"
#define HYP_STATE_DIR_DEFAULT "/var/lib/hyperion"
#define HYP_HOOK_TIMEOUT_MS_DEFAULT 100
#define HYP_LUA_MEM_DEFAULT (256u << 20)   /* bytes per Lua state */
#define HYP_REASON_MAX 128                 /* ban reason text */

struct hyp_options {
	const char *ifaces[HYP_IFACES_MAX];
	int nifaces;
	const char *policy_path;
	enum hyp_xdp_mode xdp_mode;
	const char *socket_path;
	const char *pin_dir;
	const char *state_dir;
	const char *metrics_addr;       /* "ADDR:PORT" or NULL */
	bool log_json;
	unsigned hook_timeout_ms;
	size_t lua_mem_limit;
	const char *lib_dir;            /* where require() finds hyperion.*; NULL: auto */
	unsigned ctl_allow_uid;         /* peer uid allowed besides root; (unsigned)-1: root only */
	bool watch_policy;              /* reload when the policy file changes on disk (polled) */
};

/* Counters the runtime keeps (metrics, `hyperionctl stats`). */
struct hyp_rt_stats {
	__u64 events_read;              /* events consumed from the ring buffer */
	__u64 hook_calls, hook_errors, hook_timeouts, hook_oom;
	__u64 hook_latency_bucket[12];  /* le 1us,5us,10us,50us,100us,500us,1ms,5ms,10ms,50ms,100ms,+Inf */
	double hook_latency_sum_s;
	__u64 reloads, reload_failures;
	__u64 bans_added, bans_expired;
};

struct hyp_daemon {
	struct event_base *base;
	struct hyp_options opt;
	struct hyp_dp dp;
	struct hyp_policy *policy;      /* the running policy; never NULL once started */
	struct hyp_rt_stats st;
	__u64 start_ns;
	bool state_dirty;
	void *priv;                     /* daemon.c internals (ban reason texts, ctl, metrics ...) */
};

/* All ban/allow changes go through these: datapath map + reason text + persisted snapshot.
 * Return 0 or -errno with a message in err (NULL allowed). */
int daemon_ban_add(struct hyp_daemon *d, const struct hyp_cidr *c, __u64 ttl_s, const char *reason,
		   char *err, size_t errlen);
int daemon_ban_del(struct hyp_daemon *d, const struct hyp_cidr *c, char *err, size_t errlen);
const char *daemon_ban_reason(struct hyp_daemon *d, const struct hyp_cidr *c);  /* NULL if none */
int daemon_allow_add(struct hyp_daemon *d, const struct hyp_cidr *c, char *err, size_t errlen);
int daemon_allow_del(struct hyp_daemon *d, const struct hyp_cidr *c, char *err, size_t errlen);
/* Compile the policy file into a fresh Lua state; swap it in only if it loads. */
int daemon_reload(struct hyp_daemon *d, char *err, size_t errlen);
void daemon_state_dirty(struct hyp_daemon *d);  /* schedule a snapshot write */
/* `mkdir -p path` with mode for the directories it creates: 0 or -errno. */
int daemon_mkdir_p(const char *path, unsigned mode);

/* Appended (daemon.c): the lifecycle hyperiond.c drives. daemon_start runs every step up to the
 * attached datapath and returns 0 or -errno (logged once); daemon_run loops until SIGTERM/SIGINT and
 * returns 0; daemon_stop saves state, detaches (if detach) or just closes (keeps pins), frees. */
int daemon_start(struct hyp_daemon *d);
int daemon_run(struct hyp_daemon *d);
void daemon_stop(struct hyp_daemon *d, bool detach);
/* Write the snapshot now (ctl, exit). 0 or -errno with a message in err. */
int daemon_state_save(struct hyp_daemon *d, char *err, size_t errlen);

#endif
