/* Lua states with a capped allocator, the one call boundary, and the watchdog that stops runaways. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <luajit.h>
#include "daemon.h"
#include "log.h"
#include "lua_vm.h"

#ifndef HYP_DEFAULT_LIBDIR
#define HYP_DEFAULT_LIBDIR "/usr/local/share/hyperion/lib"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

struct hyp_lua_vm {
	lua_State *L;
	size_t used, limit;
	bool in_handler;                /* error handler running: HYP_LUA_MEM_RESERVE extra allowed */
	unsigned timeout_ms;
	struct hyp_rt_stats *st;
	struct hyp_rt_stats own_st;
	char last_err[HYP_LUA_ERR_MAX];
};

/* --- watchdog ------------------------------------------------------------------------------------ */

/* One watchdog for the process: Lua only runs on the main thread, so at most one outermost call is in
 * flight. Fields under mu except expired, which the kill hook reads without the lock. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started;
	struct hyp_lua_vm *vm;          /* outermost call in progress, or NULL */
	const char *what;
	uint64_t call_id;
	uint64_t deadline_ns;
	int expired;                    /* __atomic: the current call is past its deadline */
	bool passive;                   /* only raise the flag: the state's own hook polls it */
	bool idle;                      /* watchdog waits without a timeout: the next call must wake it */
	uint64_t wake_ns;               /* watchdog waits until then (0: not in a timed wait) */
	char first_where[160];          /* main thread: where the kill hook first fired in this call */
	void (*on_stuck)(const char *what);
} wd = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int call_depth;             /* main thread only */
static const char *api_fn;         /* lua_vm_api_swap(); written by the main thread, read by the watchdog */
static struct hyp_lua_vm *prof_owner;   /* the state LuaJIT's (process-wide) profiler runs on */

static struct timespec ns_to_ts(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };
}

/* Raises on every instruction once the deadline passed; re-raising after a script's pcall caught the
 * first error is what makes the limit stick. */
static void vm_kill_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	if (!__atomic_load_n(&wd.expired, __ATOMIC_RELAXED))
		return;
	/* level 0 inside a hook is the interrupted function: report where the runaway was */
	luaL_where(L, 0);
	if (!wd.first_where[0])
		snprintf(wd.first_where, sizeof(wd.first_where), "%s", lua_tostring(L, -1));
	lua_pushstring(L, "exceeded the time limit");
	lua_concat(L, 2);
	lua_error(L);
}

bool lua_vm_expired(void)
{
	return __atomic_load_n(&wd.expired, __ATOMIC_RELAXED) != 0;
}

/* Sleep until ns (0: until signalled), publishing how, so that vm_deadline_arm() knows whether a new
 * deadline needs a wakeup. */
static void vm_watchdog_wait(uint64_t ns)
{
	if (ns) {
		struct timespec ts = ns_to_ts(ns);
		wd.wake_ns = ns;
		pthread_cond_timedwait(&wd.cv, &wd.mu, &ts);
		wd.wake_ns = 0;
	} else {
		wd.idle = true;
		pthread_cond_wait(&wd.cv, &wd.mu);
		wd.idle = false;
	}
}

/*
 * The watchdog is not woken per call: at tens of thousands of calls per second, a wakeup (two context
 * switches and a contended mutex each) cost more than the calls. It sleeps until the deadline of the call
 * it saw last and then looks again; a call that starts meanwhile has a later deadline, so nothing is
 * missed. Between calls it keeps waking every HYP_LUA_WD_LINGER_MS until HYP_LUA_WD_IDLE_MS passed
 * without one, then waits untimed; only then (or for a deadline earlier than its wakeup, with mixed
 * timeouts) does vm_deadline_arm() signal it.
 */
static void *vm_watchdog(void *arg)
{
	uint64_t seen_id = 0, last_active_ns = 0;

	(void)arg;
	pthread_mutex_lock(&wd.mu);
	for (;;) {
		uint64_t now = mono_now_ns();
		if (wd.call_id != seen_id || wd.vm) {
			seen_id = wd.call_id;
			last_active_ns = now;
		}
		if (!wd.vm) {
			bool lingering = now - last_active_ns < (uint64_t)HYP_LUA_WD_IDLE_MS * 1000000ull;
			vm_watchdog_wait(lingering ? now + (uint64_t)HYP_LUA_WD_LINGER_MS * 1000000ull : 0);
			continue;
		}
		uint64_t id = wd.call_id;
		if (now < wd.deadline_ns) {
			vm_watchdog_wait(wd.deadline_ns);
			continue;   /* the same call, a later one or none: look again */
		}
		/* Past the deadline. lua_sethook only stores the hook and patches the dispatch table, which
		 * is what lua.c does from a signal handler; we repeat it because the interpreter may
		 * rewrite the hook mask concurrently (profiler callback, trace exit) and lose our bits. */
		__atomic_store_n(&wd.expired, 1, __ATOMIC_RELAXED);
		bool stuck_reported = false;
		while (wd.vm && wd.call_id == id) {
			if (!wd.passive)
				lua_sethook(wd.vm->L, vm_kill_hook, LUA_MASKCOUNT, 1);
			now = mono_now_ns();
			if (!stuck_reported && now > wd.deadline_ns + (uint64_t)HYP_LUA_STUCK_MS * 1000000ull) {
				stuck_reported = true;
				const char *fn = __atomic_load_n(&api_fn, __ATOMIC_RELAXED);
				hyp_log(LOG_CRIT, "lua: %s: still running %u ms past its deadline, stuck inside a C "
					"function (%s%s); cannot be interrupted safely", wd.what, HYP_LUA_STUCK_MS,
					fn ? "hx." : "", fn ? fn : "not an hx.* one: a library function, a compiled "
					"loop, or the thread did not run");
				if (wd.on_stuck) {
					const char *what = wd.what;
					pthread_mutex_unlock(&wd.mu);
					wd.on_stuck(what);
					pthread_mutex_lock(&wd.mu);
					continue;
				}
			}
			struct timespec ts = ns_to_ts(now + (uint64_t)HYP_LUA_REARM_MS * 1000000ull);
			pthread_cond_timedwait(&wd.cv, &wd.mu, &ts);
		}
	}
	return NULL;
}

static bool prof_stale;            /* after fork: the profiler's timer was not inherited */

/* fork() copies only the calling thread: the child must start its own watchdog and profiler timer, and
 * must not inherit the mutex locked by the parent's watchdog. */
static void vm_atfork_prepare(void) { pthread_mutex_lock(&wd.mu); }
static void vm_atfork_parent(void) { pthread_mutex_unlock(&wd.mu); }
static void vm_atfork_child(void)
{
	pthread_mutex_init(&wd.mu, NULL);
	wd.started = false;
	wd.vm = NULL;
	wd.idle = false;
	wd.wake_ns = 0;
	__atomic_store_n(&wd.expired, 0, __ATOMIC_RELAXED);
	call_depth = 0;
	prof_stale = true;
}

/* Started lazily under wd.mu. Blocks every signal so SIGPROF and the daemon's signals go elsewhere. */
static int vm_watchdog_start(void)
{
	static bool atfork_done;
	if (wd.started)
		return 0;
	if (!atfork_done) {
		pthread_atfork(vm_atfork_prepare, vm_atfork_parent, vm_atfork_child);
		atfork_done = true;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wd.cv, &ca);
	pthread_condattr_destroy(&ca);

	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t th;
	int rc = pthread_create(&th, NULL, vm_watchdog, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		hyp_log(LOG_ERR, "lua: cannot start the watchdog thread: %s", strerror(rc));
		return -rc;
	}
	pthread_detach(th);
	wd.started = true;
	return 0;
}

void lua_vm_on_stuck(void (*fn)(const char *what))
{
	pthread_mutex_lock(&wd.mu);
	wd.on_stuck = fn;
	pthread_mutex_unlock(&wd.mu);
}

/* --- profiler ownership --------------------------------------------------------------------------- */

static void vm_profile_cb(void *data, lua_State *L, int samples, int vmstate)
{
	/* Nothing to sample: the profiler is here only so that traces check its flag and exit. */
	(void)data; (void)L; (void)samples; (void)vmstate;
}

/* LuaJIT has one profiler per process, bound to one state; starting it in line mode flushes that
 * state's traces so every trace recorded afterwards carries the exit check. Stopping it clears the
 * mode of the old state, whose traces are flushed too, so a state must own the profiler whenever it
 * runs Lua code. Switching happens only when a different state is called (reload), not per call. */
static void vm_profile_own(struct hyp_lua_vm *vm)
{
	if (prof_owner == vm && !prof_stale)
		return;
	if (prof_owner)
		luaJIT_profile_stop(prof_owner->L);
	luaJIT_profile_start(vm->L, "li" STR(HYP_LUA_PROF_INTERVAL_MS), vm_profile_cb, vm);
	prof_owner = vm;
	prof_stale = false;
}

/* --- allocator ------------------------------------------------------------------------------------ */

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct hyp_lua_vm *vm = ud;

	if (ptr == NULL)
		osize = 0;
	if (nsize == 0) {
		free(ptr);
		vm->used -= osize;
		return NULL;
	}
	if (nsize > osize) {
		size_t limit = vm->limit + (vm->in_handler ? HYP_LUA_MEM_RESERVE : 0);
		if (vm->used - osize + nsize > limit)
			return NULL;    /* LuaJIT raises "not enough memory"; shrinking never fails */
	}
	void *n = realloc(ptr, nsize);
	if (!n)
		return NULL;
	vm->used = vm->used - osize + nsize;
	return n;
}

/* --- package.path --------------------------------------------------------------------------------- */

static bool file_exists(const char *dir, const char *name)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof(p), "%s/%s", dir, name) >= (int)sizeof(p))
		return false;
	return access(p, R_OK) == 0;
}

/* lib/ relative to the executable: the source tree's (build/hyperiond -> ../lib, test binaries in
 * build/tests/runtime -> ../../../lib) or an installed one (PREFIX/sbin -> ../share/hyperion/lib, which
 * also holds under DESTDIR or when `make install PREFIX=...` reused binaries built for another prefix).
 * The first that holds hyperion.lua wins. */
static bool exe_lib_dir(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return false;
	*slash = 0;
	static const char *const ups[] = { "/../lib", "/../../lib", "/../../../lib", "/../share/hyperion/lib" };
	for (size_t i = 0; i < sizeof(ups) / sizeof(ups[0]); i++) {
		char cand[PATH_MAX];
		if (snprintf(cand, sizeof(cand), "%s%s", exe, ups[i]) >= (int)sizeof(cand))
			continue;
		if (file_exists(cand, "hyperion.lua")) {
			if (!realpath(cand, out) || strlen(out) >= len)
				snprintf(out, len, "%s", cand);
			return true;
		}
	}
	return false;
}

static int path_append_dir(char *buf, size_t len, const char *dir)
{
	size_t used = strlen(buf);
	int n = snprintf(buf + used, len - used, "%s%s/?.lua;%s/?/init.lua", used ? ";" : "", dir, dir);
	return n < 0 || (size_t)n >= len - used ? -ENAMETOOLONG : 0;
}

int lua_vm_lib_path(const char *lib_dir, char *buf, size_t len)
{
	if (!len)
		return -EINVAL;
	buf[0] = 0;
	if (lib_dir && *lib_dir) {
		/* absolute, so modules that locate files next to themselves survive a chdir */
		char abs[PATH_MAX];
		return path_append_dir(buf, len, realpath(lib_dir, abs) ? abs : lib_dir);
	}
	char src[PATH_MAX];
	int rc = 0;
	if (exe_lib_dir(src, sizeof(src)))
		rc = path_append_dir(buf, len, src);
	if (!rc)
		rc = path_append_dir(buf, len, HYP_DEFAULT_LIBDIR);
	return rc;
}

/* --- state ---------------------------------------------------------------------------------------- */

static void vm_deadline_arm(struct hyp_lua_vm *vm, const char *what, bool passive);

/* The kill hook's error reaches an xpcall handler while LuaJIT still marks the hook as active, so a
 * Lua handler would run with hooks off and could loop forever. Past the deadline the script's handler
 * is therefore skipped (the message passes through); before it, it runs as usual. */
static int vm_xpcall_handler(lua_State *L)
{
	if (lua_vm_expired()) {
		lua_settop(L, 1);
		return 1;
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static int vm_xpcall(lua_State *L)
{
	luaL_checkany(L, 2);
	if (lua_iscfunction(L, 2))      /* e.g. debug.traceback: cannot loop in Lua, no closure needed */
		goto call;
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, vm_xpcall_handler, 1);
	lua_replace(L, 2);
call:
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

static int vm_setup(lua_State *L)
{
	const char *path = lua_tostring(L, 1);
	luaL_openlibs(L);
	lua_getglobal(L, "package");
	lua_pushstring(L, path);
	lua_setfield(L, -2, "path");
	lua_pushliteral(L, "");         /* no binary modules: they would run outside every limit */
	lua_setfield(L, -2, "cpath");
	lua_getfield(L, -1, "preload"); /* jit.profile.stop() would disarm the trace check */
	lua_pushnil(L);
	lua_setfield(L, -2, "jit.profile");
	lua_pop(L, 2);
	lua_getglobal(L, "xpcall");
	lua_pushvalue(L, -1);           /* the original, for trusted callers with a C handler (hot path) */
	lua_setfield(L, LUA_REGISTRYINDEX, HYP_LUA_RAW_XPCALL);
	lua_pushcclosure(L, vm_xpcall, 1);
	lua_setglobal(L, "xpcall");
	lua_getglobal(L, "debug");      /* debug.sethook(nil) would disarm the watchdog's hook */
	lua_pushnil(L);
	lua_setfield(L, -2, "sethook");
	lua_pop(L, 1);
	return 0;
}

int lua_vm_new(struct hyp_lua_vm **out, const struct hyp_lua_vm_opts *o)
{
	struct hyp_lua_vm_opts def = { 0 };
	if (!o)
		o = &def;
	*out = NULL;
	struct hyp_lua_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->limit = o->mem_limit ? o->mem_limit : HYP_LUA_MEM_DEFAULT;
	if (vm->limit < HYP_LUA_MEM_MIN)
		vm->limit = HYP_LUA_MEM_MIN;
	vm->timeout_ms = o->timeout_ms ? o->timeout_ms : HYP_HOOK_TIMEOUT_MS_DEFAULT;
	vm->st = o->st ? o->st : &vm->own_st;

	char path[3 * PATH_MAX];
	int rc = lua_vm_lib_path(o->lib_dir, path, sizeof(path));
	if (!rc && o->extra_path && *o->extra_path) {
		size_t used = strlen(path);
		if (snprintf(path + used, sizeof(path) - used, ";%s", o->extra_path) >= (int)(sizeof(path) - used))
			rc = -ENAMETOOLONG;
	}
	if (rc) {
		hyp_log(LOG_ERR, "lua: package.path too long");
		free(vm);
		return rc;
	}

	pthread_mutex_lock(&wd.mu);
	rc = vm_watchdog_start();
	pthread_mutex_unlock(&wd.mu);
	if (rc) {
		free(vm);
		return rc;
	}
	vm->L = lua_newstate(vm_alloc, vm);
	if (!vm->L) {
		/* Non-GC64 x86-64 LuaJIT refuses custom allocators; Debian's is GC64. */
		hyp_log(LOG_ERR, "lua: lua_newstate failed (memory limit %zu bytes)", vm->limit);
		free(vm);
		return -ENOMEM;
	}
	lua_pushcfunction(vm->L, vm_setup);
	lua_pushstring(vm->L, path);
	rc = lua_vm_call_quiet(vm, 1, 0, "setup");
	if (rc) {
		lua_vm_free(vm);
		return rc;
	}
	*out = vm;
	return 0;
}

void lua_vm_free(struct hyp_lua_vm *vm)
{
	if (!vm)
		return;
	lua_State *L = vm->L;
	if (prof_owner == vm) {
		luaJIT_profile_stop(L);
		prof_owner = NULL;
	}
	/* lua_close runs __gc finalizers (ffi.gc, newproxy), Lua code, but with hooks disabled, so no
	 * deadline can stop one that loops. It is still timed (passive: the watchdog only raises the flag
	 * and never touches a state being freed) so that such a loop ends in the stuck report and the
	 * lua_vm_on_stuck action instead of a silent hang. */
	bool outer = call_depth == 0;
	if (outer)
		vm_deadline_arm(vm, "lua_close", true);
	lua_close(L);
	if (outer) {
		pthread_mutex_lock(&wd.mu);
		wd.vm = NULL;
		wd.passive = false;
		__atomic_store_n(&wd.expired, 0, __ATOMIC_RELAXED);
		pthread_cond_signal(&wd.cv);
		pthread_mutex_unlock(&wd.mu);
	}
	free(vm);
}

lua_State *lua_vm_state(struct hyp_lua_vm *vm) { return vm->L; }
bool lua_vm_in_call(void) { return call_depth > 0; }

const char *lua_vm_api_swap(const char *name)
{
	return __atomic_exchange_n(&api_fn, name, __ATOMIC_RELAXED);
}

const char *lua_vm_last_error(const struct hyp_lua_vm *vm) { return vm->last_err; }
size_t lua_vm_mem_used(const struct hyp_lua_vm *vm) { return vm->used; }
struct hyp_rt_stats *lua_vm_stats(struct hyp_lua_vm *vm) { return vm->st; }

/* --- the call boundary ---------------------------------------------------------------------------- */

/* The profiler's SIGPROF is only needed while Lua runs. Outside calls the main thread blocks it (the
 * watchdog blocks everything), so it stays pending instead of interrupting the daemon's syscalls: the
 * BPF verifier, for one, gives up with EAGAIN when a signal arrives during a long program load. */
static void vm_sigprof(int how)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPROF);
	pthread_sigmask(how, &set, NULL);
}

static void vm_deadline_arm(struct hyp_lua_vm *vm, const char *what, bool passive)
{
	if (!passive)
		vm_profile_own(vm);
	pthread_mutex_lock(&wd.mu);
	if (vm_watchdog_start())
		hyp_log(LOG_ERR, "lua: %s runs without a deadline", what);
	wd.vm = vm;
	wd.passive = passive;
	wd.what = what;
	wd.call_id++;
	wd.deadline_ns = mono_now_ns() + (uint64_t)vm->timeout_ms * 1000000ull;
	__atomic_store_n(&wd.expired, 0, __ATOMIC_RELAXED);
	wd.first_where[0] = 0;
	/* A watchdog in a timed wait that ends by this deadline finds the call by itself (see vm_watchdog). */
	bool wake = wd.idle || (wd.wake_ns && wd.wake_ns > wd.deadline_ns);
	pthread_mutex_unlock(&wd.mu);
	if (wake)
		pthread_cond_signal(&wd.cv);
}

/* Returns whether the deadline had passed. The hook is cleared under the lock so the watchdog cannot
 * re-arm it after the call is over. */
static bool vm_deadline_disarm(struct hyp_lua_vm *vm)
{
	pthread_mutex_lock(&wd.mu);
	bool expired = __atomic_load_n(&wd.expired, __ATOMIC_RELAXED) != 0;
	wd.vm = NULL;
	__atomic_store_n(&wd.expired, 0, __ATOMIC_RELAXED);
	lua_sethook(vm->L, NULL, 0, 0);
	pthread_mutex_unlock(&wd.mu);
	/* Only a watchdog re-arming an expired call needs to hear that it ended; otherwise it notices at
	 * its next wakeup. */
	if (expired)
		pthread_cond_signal(&wd.cv);
	return expired;
}

static struct hyp_lua_vm *handler_vm;  /* main thread: the state whose handler may use the reserve */

static int vm_traceback(lua_State *L)
{
	if (handler_vm && handler_vm->L == L)
		handler_vm->in_handler = true;
	const char *msg = lua_tostring(L, 1);
	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1))
			msg = lua_tostring(L, -1);
		else
			msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

static const double latency_le_s[11] = { 1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1 };

static void vm_account(struct hyp_rt_stats *st, uint64_t ns)
{
	double s = (double)ns / 1e9;
	unsigned b = 0;
	while (b < 11 && s > latency_le_s[b])
		b++;
	st->hook_calls++;
	st->hook_latency_bucket[b]++;
	st->hook_latency_sum_s += s;
}

static int vm_call(struct hyp_lua_vm *vm, int nargs, int nresults, const char *what, bool quiet)
{
	lua_State *L = vm->L;
	int fn = lua_gettop(L) - nargs;
	bool outer = call_depth == 0;

	lua_pushcfunction(L, vm_traceback);
	lua_insert(L, fn);
	if (outer) {
		__atomic_store_n(&api_fn, NULL, __ATOMIC_RELAXED);
		vm_deadline_arm(vm, what, false);
		vm_sigprof(SIG_UNBLOCK);
	}
	struct hyp_lua_vm *prev_handler_vm = handler_vm;
	handler_vm = vm;
	call_depth++;
	uint64_t t0 = mono_now_ns();
	int rc = lua_pcall(L, nargs, nresults, fn);
	uint64_t t1 = mono_now_ns();
	call_depth--;
	handler_vm = prev_handler_vm;
	vm->in_handler = false;
	bool timed_out = false;
	if (outer) {
		vm_sigprof(SIG_BLOCK);
		timed_out = vm_deadline_disarm(vm);
	}
	lua_remove(L, fn);
	if (!quiet)
		vm_account(vm->st, t1 - t0);
	/* LuaJIT has no emergency collection: garbage left by a call that ran into the cap (even one the
	 * script caught) would make the next allocation outside any call fail. */
	if (outer && vm->used > vm->limit - vm->limit / 4)
		lua_gc(L, LUA_GCCOLLECT, 0);
	if (rc == 0)
		return 0;

	const char *msg = lua_tostring(L, -1);
	if (!msg)
		msg = "(error object is not a string)";
	size_t first = strcspn(msg, "\n");
	if (first >= sizeof(vm->last_err))
		first = sizeof(vm->last_err) - 1;
	memcpy(vm->last_err, msg, first);
	vm->last_err[first] = 0;

	/* quiet calls (state setup, a policy file's top level) are reported by their caller instead */
	struct hyp_rt_stats scratch = { 0 }, *st = quiet ? &scratch : vm->st;
	int err;
	if (timed_out && outer) {
		st->hook_timeouts++;
		err = -ETIMEDOUT;
		/* The error that unwinds may have been re-raised anywhere (the dispatcher, a script's pcall);
		 * where the kill hook first fired is the runaway's line ("file:line: " from luaL_where). */
		if (wd.first_where[0])
			snprintf(vm->last_err, sizeof(vm->last_err), "%sexceeded the time limit", wd.first_where);
		if (!quiet)
			hyp_log(LOG_ERR, "lua: %s: %s (%u ms; stopped after %.1f ms)", what, vm->last_err, vm->timeout_ms,
				(double)(t1 - t0) / 1e6);
	} else if (rc == LUA_ERRMEM) {
		st->hook_oom++;
		err = -ENOMEM;
		snprintf(vm->last_err, sizeof(vm->last_err), "%s: memory limit (%zu bytes) reached", what,
			 vm->limit);
		if (!quiet)
			hyp_log(LOG_ERR, "lua: %s: stopped at the memory limit (%zu bytes)", what, vm->limit);
	} else {
		st->hook_errors++;
		err = -EINVAL;
		if (!quiet)
			hyp_log(LOG_ERR, "lua: %s: %s", what, msg);
	}
	lua_pop(L, 1);
	return err;
}

int lua_vm_call(struct hyp_lua_vm *vm, int nargs, int nresults, const char *what)
{
	return vm_call(vm, nargs, nresults, what, false);
}

int lua_vm_call_quiet(struct hyp_lua_vm *vm, int nargs, int nresults, const char *what)
{
	return vm_call(vm, nargs, nresults, what, true);
}
