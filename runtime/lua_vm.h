/* One Lua state with a memory cap, and the single call boundary (traceback, deadline, counters). */
#ifndef HYP_LUA_VM_H
#define HYP_LUA_VM_H

#include <stdbool.h>
#include <stddef.h>

struct lua_State;
struct hyp_rt_stats;
struct hyp_lua_vm;

/*
 * How the limits are enforced (see docs/design.md, "Lua"):
 *  - memory: the state is created with lua_newstate() and a counting allocator that refuses to grow
 *    past mem_limit; LuaJIT turns the refusal into a "not enough memory" error (LUA_ERRMEM).
 *  - time: lua_vm_call() publishes a deadline to one watchdog thread. At the deadline the watchdog sets
 *    a count hook (every instruction) that raises; it stays armed until the call returns, so pcall in the
 *    script cannot swallow it. Compiled traces never run hooks, so every state also runs LuaJIT's
 *    profiler in line mode: traces recorded under it carry a check of the profiler flag, which the
 *    profiler's SIGPROF timer sets every HYP_LUA_PROF_INTERVAL_MS of CPU time, so a trace leaves to the
 *    interpreter and the armed hook fires. Nothing is longjmp'd: the error unwinds normally and the state
 *    stays consistent and usable.
 */
#define HYP_LUA_PROF_INTERVAL_MS 5      /* max extra latency to kick a JIT trace out; SIGPROF period */
#define HYP_LUA_REARM_MS 5              /* watchdog re-sets the hook this often after the deadline */
#define HYP_LUA_WD_LINGER_MS 50         /* between calls the watchdog wakes this often (no signal per call), */
#define HYP_LUA_WD_IDLE_MS 1000         /* ... until no call was made for this long; then it waits untimed */
#define HYP_LUA_STUCK_MS 2000           /* past the deadline: the call is stuck in one C function */
#define HYP_LUA_MEM_RESERVE (1u << 20)  /* extra bytes the error handler may use to build a traceback */
#define HYP_LUA_MEM_MIN (1u << 20)      /* smaller limits are raised to this (the stdlib needs ~200K) */
#define HYP_LUA_ERR_MAX 512             /* bytes of the last error kept for callers */
/* Registry key of LuaJIT's own xpcall. Scripts get a wrapper (a C function, so code calling it is not
 * compiled); the event dispatcher, whose handler is C (debug.traceback), uses the original. */
#define HYP_LUA_RAW_XPCALL "hyperion.xpcall"

struct hyp_lua_vm_opts {
	size_t mem_limit;               /* bytes; 0: HYP_LUA_MEM_DEFAULT (daemon.h) */
	unsigned timeout_ms;            /* per call; 0: HYP_HOOK_TIMEOUT_MS_DEFAULT */
	const char *lib_dir;            /* require() root; NULL: exe-relative ../lib, then HYP_DEFAULT_LIBDIR */
	const char *extra_path;         /* appended to package.path (e.g. the policy's dir "/x/?.lua"); NULL ok */
	struct hyp_rt_stats *st;        /* counters to update; NULL: kept privately (lua_vm_stats) */
};

/* Create a state: standard libraries, package.path set, debug.sethook and jit.profile removed (they
 * would defeat the limits). 0 or -errno. */
int lua_vm_new(struct hyp_lua_vm **out, const struct hyp_lua_vm_opts *o);
void lua_vm_free(struct hyp_lua_vm *vm);
struct lua_State *lua_vm_state(struct hyp_lua_vm *vm);

/*
 * The one way into Lua: calls the function below nargs arguments on the stack, like lua_pcall with a
 * traceback handler, under the deadline. Counts hook_calls, latency, and on failure hook_errors /
 * hook_timeouts / hook_oom, logs once ("lua: <what>: file:line: message" + traceback).
 * Returns 0 (nresults left on the stack), -ETIMEDOUT, -ENOMEM or -EINVAL (script error); on error
 * nothing is left on the stack and lua_vm_last_error() has the first line of the message.
 * Calls nest (a C function called from Lua may call back in): the outermost deadline applies.
 */
int lua_vm_call(struct hyp_lua_vm *vm, int nargs, int nresults, const char *what);
const char *lua_vm_last_error(const struct hyp_lua_vm *vm);
/* Same as lua_vm_call but neither logs nor counts (the caller reports, e.g. policy load errors). */
int lua_vm_call_quiet(struct hyp_lua_vm *vm, int nargs, int nresults, const char *what);

size_t lua_vm_mem_used(const struct hyp_lua_vm *vm);
struct hyp_rt_stats *lua_vm_stats(struct hyp_lua_vm *vm);
/* True while the running call is past its deadline (C functions called from Lua should not start
 * new work then). */
bool lua_vm_expired(void);
/* True while any state is inside lua_vm_call (main thread): code that frees states checks it. */
bool lua_vm_in_call(void);

/* A call stuck in a single C function (e.g. a pathological string.find) cannot be interrupted safely.
 * HYP_LUA_STUCK_MS past the deadline the watchdog logs it and calls fn from the watchdog thread
 * (default: none). The daemon may exit there: the pinned datapath keeps enforcing, the supervisor
 * restarts it. */
void lua_vm_on_stuck(void (*fn)(const char *what));
/* The hx.* C function running now (NULL: none), named in the stuck report: it tells one of ours that
 * blocks from a Lua library function, a compiled loop (no hook runs in a trace) or a thread that was not
 * scheduled. lua_api.c marks entry and exit (returns the previous name); each outermost call clears it,
 * since a Lua error unwinds past the exit. */
const char *lua_vm_api_swap(const char *name);

/* The directories require() searches, in order, as a package.path string (for logs and tests). */
int lua_vm_lib_path(const char *lib_dir, char *buf, size_t len);

#endif
