/* Policy lifecycle: load a file into a fresh Lua state, activate it in one flip, dispatch events to it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include "daemon.h"
#include "log.h"
#include "lua_api.h"
#include "lua_vm.h"
#include "policy.h"

/*
 * Reload, in order (each step can fail without touching what runs):
 *  1. policy_load: fresh state; hyperion.lua loaded; hx.store seeded with the running policy's store (so
 *     top-level code sees it); the file runs under the same deadline and memory cap as hooks; the
 *     signatures compile. Errors come back as "file:line: message".
 *  2. policy_activate: hx.store taken over again only if it was not seeded from `old`; config + compiled
 *     signatures written to the inactive generation and flipped in one dp_config_apply (no window
 *     without signatures); old's timers stopped, p's started; queued top-level hx.ban/allow applied.
 * The caller then makes p d->policy and frees old.
 */

static void err_set(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, b);
}

/* Calls one of hyperion.lua's registered functions; nargs already pushed above it is not supported,
 * so callers push the function first. */
static bool policy_has(const struct hyp_policy *p, int ref)
{
	return p && p->vm && ref != LUA_NOREF && ref != LUA_REFNIL;
}

int policy_store_dump(struct hyp_policy *p, char **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	if (!policy_has(p, p->ref_store_dump))
		return 0;
	lua_State *L = lua_vm_state(p->vm);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_store_dump);
	int rc = lua_vm_call(p->vm, 0, 1, "hx.store dump");
	if (rc)
		return rc;
	size_t n;
	const char *s = lua_tolstring(L, -1, &n);
	if (!s) {
		lua_pop(L, 1);
		return -EINVAL;
	}
	*buf = malloc(n + 1);
	if (!*buf) {
		lua_pop(L, 1);
		return -ENOMEM;
	}
	memcpy(*buf, s, n + 1);
	*len = n;
	lua_pop(L, 1);
	return 0;
}

int policy_store_load(struct hyp_policy *p, const char *buf, size_t len)
{
	if (!policy_has(p, p->ref_store_load))
		return -ENOENT;
	if (!buf || !len)
		return 0;
	lua_State *L = lua_vm_state(p->vm);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_store_load);
	lua_pushlstring(L, buf, len);
	return lua_vm_call(p->vm, 1, 0, "hx.store load");
}

/* Copy from's hx.store into to's (merging over what to's top level already put there). */
static int policy_store_move(struct hyp_policy *from, struct hyp_policy *to)
{
	char *buf;
	size_t len;
	int rc = policy_store_dump(from, &buf, &len);
	if (!rc && len)
		rc = policy_store_load(to, buf, len);
	free(buf);
	return rc;
}

static int policy_require_hyperion(struct hyp_policy *p)
{
	lua_State *L = lua_vm_state(p->vm);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "hyperion");
	return lua_vm_call_quiet(p->vm, 1, 0, "require hyperion");
}

int policy_load(struct hyp_daemon *d, const char *path, struct hyp_policy **out, char *err, size_t errlen)
{
	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	struct hyp_policy *p = calloc(1, sizeof(*p));
	if (!p) {
		err_set(err, errlen, "%s%s: out of memory", path, "");
		return -ENOMEM;
	}
	p->d = d;
	p->ref_dispatch = p->ref_store_dump = p->ref_store_load = LUA_NOREF;
	snprintf(p->path, sizeof(p->path), "%s", path);
	config_defaults(&p->cfg);

	/* modules next to the policy file are found too (after lib/) */
	char extra[PATH_MAX + 16];
	const char *slash = strrchr(path, '/');
	if (slash)
		snprintf(extra, sizeof(extra), "%.*s/?.lua", (int)(slash - path), path);
	else
		snprintf(extra, sizeof(extra), "./?.lua");
	struct hyp_lua_vm_opts o = {
		.mem_limit = d->opt.lua_mem_limit, .timeout_ms = d->opt.hook_timeout_ms, .lib_dir = d->opt.lib_dir,
		.extra_path = extra, .st = &d->st,
	};
	int rc = lua_vm_new(&p->vm, &o);
	if (rc) {
		err_set(err, errlen, "%s: cannot create a Lua state: %s", path, strerror(-rc));
		free(p);
		return rc;
	}
	lua_api_open(p);

	rc = policy_require_hyperion(p);
	if (rc) {
		err_set(err, errlen, "%s: require \"hyperion\" failed: %s", path, lua_vm_last_error(p->vm));
		goto fail;
	}
	struct hyp_policy *running = d->policy;
	if (running && running != p) {
		rc = policy_store_move(running, p);
		if (rc) {
			err_set(err, errlen, "%s: cannot take over hx.store: %s", path, lua_vm_last_error(running->vm));
			goto fail;
		}
		p->store_from = running;
	}

	lua_State *L = lua_vm_state(p->vm);
	if (luaL_loadfile(L, path)) {
		/* "path:line: message" already, or "cannot open path" */
		err_set(err, errlen, "%s%s", lua_tostring(L, -1), "");
		lua_pop(L, 1);
		rc = -EINVAL;
		goto fail;
	}
	rc = lua_vm_call_quiet(p->vm, 0, 0, "policy");
	if (rc) {
		/* errors raised without a position (memory limit, C code) still name the file */
		const char *m = lua_vm_last_error(p->vm);
		bool positioned = !strncmp(m, path, strlen(path)) && m[strlen(path)] == ':';
		err_set(err, errlen, positioned ? "%s%s" : "%s: %s", positioned ? "" : path, m);
		goto fail;
	}
	char cerr[256] = "";
	rc = lua_api_apply(p, cerr, sizeof(cerr));
	if (rc) {
		err_set(err, errlen, "%s: signatures: %s", path, cerr);
		goto fail;
	}
	*out = p;
	return 0;
fail:
	policy_free(p);
	return rc;
}

int policy_activate(struct hyp_daemon *d, struct hyp_policy *p, struct hyp_policy *old, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = 0;
	if (old && p->store_from != old) {
		int rc = policy_store_move(old, p);
		if (rc) {
			err_set(err, errlen, "%s: cannot take over hx.store: %s", p->path, lua_vm_last_error(old->vm));
			return rc;
		}
		p->store_from = old;
	}
	/* Fields the daemon owns, not the policy: keep what the datapath runs with. */
	struct hyp_config cur;
	__u32 gen;
	if (!dp_config_read(&d->dp, &cur, &gen)) {
		p->cfg.clock_offset_ns = cur.clock_offset_ns;
		p->cfg.start_ns = cur.start_ns;
	}
	if (d->start_ns)
		p->cfg.start_ns = d->start_ns;
	int rc = dp_config_apply(&d->dp, &p->cfg, p->sigset);
	if (rc) {
		err_set(err, errlen, "%s: datapath update failed: %s", p->path, strerror(-rc));
		return rc;
	}
	if (old) {
		lua_api_timers_stop(old);
		old->active = false;
	}
	p->active = true;
	rc = lua_api_timers_start(p);
	if (rc)
		hyp_log(LOG_ERR, "policy %s: cannot start timers: %s", p->path, strerror(-rc));
	int failed = lua_api_pending_flush(p);
	if (failed)
		hyp_log(LOG_WARNING, "policy %s: %d load-time ban/allow calls failed", p->path, failed);
	return 0;
}

void policy_dispatch(struct hyp_daemon *d, struct hyp_policy *p, const struct hyp_event *ev, size_t n)
{
	(void)d;
	if (!n || !p || !p->kind_mask || !policy_has(p, p->ref_dispatch))
		return;
	/* Enter Lua only if some event in the batch has a hook. */
	size_t i;
	for (i = 0; i < n; i++)
		if (ev[i].kind < 32 && (p->kind_mask & (1u << ev[i].kind)))
			break;
	if (i == n)
		return;
	lua_State *L = lua_vm_state(p->vm);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_dispatch);
	lua_pushlightuserdata(L, (void *)(ev + i));
	lua_pushnumber(L, (lua_Number)(n - i));
	lua_vm_call(p->vm, 2, 0, "events");
}

void policy_free(struct hyp_policy *p)
{
	if (!p)
		return;
	if (p->vm) {
		lua_api_timers_free(p);
		lua_vm_free(p->vm);
	}
	if (p->sigset) {
		sigset_free(p->sigset);
		free(p->sigset);
	}
	free(p->pending);
	free(p);
}

unsigned policy_nsigs(const struct hyp_policy *p) { return p ? p->ndefs : 0; }
const char *policy_path(const struct hyp_policy *p) { return p ? p->path : ""; }

const struct hyp_sigdef *policy_sigdefs(const struct hyp_policy *p, unsigned *n)
{
	*n = p ? p->ndefs : 0;
	return p ? p->defs : NULL;
}
