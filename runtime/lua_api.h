/* The hx C functions (module "hyperion.core") and the policy object they act on. Private to policy.c. */
#ifndef HYP_LUA_API_H
#define HYP_LUA_API_H

#include <limits.h>
#include <stdbool.h>
#include "hyperion_abi.h"
#include "maps.h"
#include "sigcompile.h"

struct hyp_daemon;
struct hyp_lua_vm;
struct lua_State;
struct event;

#define HYP_POLICY_PENDING_MAX 256   /* hx.ban/allow calls queued while the file loads */
#define HYP_TIMER_MIN_S 0.001        /* shorter hx.every periods would starve the event loop */

/* hx.every / hx.after: a libevent timer on d->base calling a registry-referenced Lua function. */
struct hyp_timer {
	struct hyp_timer *next;
	struct hyp_policy *p;
	struct event *ev;
	int ref;                    /* LUA_REGISTRYINDEX ref of the function */
	int id;                     /* returned to Lua, for hx.cancel */
	bool repeat;
	double period_s;
};

/* hx.ban / hx.allow calls made by the file's top level: applied by policy_activate, so loading a policy
 * touches nothing (a failed reload must leave no trace). */
struct hyp_pending {
	enum { HYP_PEND_BAN, HYP_PEND_UNBAN, HYP_PEND_ALLOW, HYP_PEND_DISALLOW } op;
	struct hyp_cidr cidr;
	__u64 ttl_s;
	char reason[128];           /* HYP_REASON_MAX */
};

struct hyp_policy {
	struct hyp_daemon *d;
	struct hyp_lua_vm *vm;
	char path[PATH_MAX];
	bool active;                /* the running policy: API calls reach the datapath immediately */
	bool config_set;
	struct hyp_config cfg;
	struct hyp_sigdef defs[HYP_SIG_MAX];
	unsigned ndefs;
	struct hyp_sigset *sigset;  /* compiled defs, what the datapath runs when active */
	__u32 kind_mask;            /* 1 << kind for every kind with an hx.on hook */
	int ref_dispatch, ref_store_dump, ref_store_load;   /* hyperion.lua's functions, LUA_NOREF */
	struct hyp_timer *timers;
	int next_timer_id;
	struct hyp_pending *pending;
	unsigned npending;
	const struct hyp_policy *store_from;    /* hx.store was seeded from this policy at load */
};

/* Register package.preload["hyperion.core"] in p's state. */
void lua_api_open(struct hyp_policy *p);
/* Compile p->defs and, when active, write config + signatures in one generation flip.
 * 0 or -errno with a message in err. */
int lua_api_apply(struct hyp_policy *p, char *err, size_t errlen);
/* Start (add to d->base) / stop every timer of p. */
int lua_api_timers_start(struct hyp_policy *p);
void lua_api_timers_stop(struct hyp_policy *p);
void lua_api_timers_free(struct hyp_policy *p);
/* Apply the queued hx.ban/allow calls (at activation). Returns the number that failed. */
int lua_api_pending_flush(struct hyp_policy *p);

#endif
