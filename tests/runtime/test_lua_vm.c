/* lua_vm: memory cap, error counting, runaway loops (interpreted and JIT-compiled) stopped in bounded time. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lua.h>
#include <lauxlib.h>
#include "daemon.h"
#include "lua_vm.h"
#include "tap.h"

#define TIMEOUT_MS 100
/* "Stopped, not hung": generous so a loaded CI machine passes; a hang would be infinite. */
#define STOP_BOUND_MS 2000

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Load chunk src and run it through the boundary; returns lua_vm_call's result. */
static int run(struct hyp_lua_vm *vm, const char *src, double *ms)
{
	lua_State *L = lua_vm_state(vm);
	if (luaL_loadbuffer(L, src, strlen(src), "=test")) {
		printf("# load error: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
		return -999;
	}
	double t0 = now_ms();
	int rc = lua_vm_call(vm, 0, 0, "test");
	if (ms)
		*ms = now_ms() - t0;
	return rc;
}

/* Returns the global number g (after a successful run). */
static double global_num(struct hyp_lua_vm *vm, const char *g)
{
	lua_State *L = lua_vm_state(vm);
	lua_getglobal(L, g);
	double v = lua_tonumber(L, -1);
	lua_pop(L, 1);
	return v;
}

static struct hyp_lua_vm *vm_make_t(struct hyp_rt_stats *st, size_t mem, unsigned timeout_ms)
{
	struct hyp_lua_vm *vm = NULL;
	struct hyp_lua_vm_opts o = { .mem_limit = mem, .timeout_ms = timeout_ms, .lib_dir = "lib", .st = st };
	int rc = lua_vm_new(&vm, &o);
	TAP_EQ(rc, 0, "lua_vm_new (mem %zu)", mem);
	return vm;
}

static struct hyp_lua_vm *vm_make(struct hyp_rt_stats *st, size_t mem)
{
	return vm_make_t(st, mem, TIMEOUT_MS);
}

static void test_memory_cap(void)
{
	struct hyp_rt_stats st = { 0 };
	/* a long deadline: the allocation loops must reach the cap first even on a slow machine */
	struct hyp_lua_vm *vm = vm_make_t(&st, 8u << 20, 5000);
	if (!vm)
		return;
	TAP_CHECK(lua_vm_mem_used(vm) > 0 && lua_vm_mem_used(vm) < (8u << 20), "state starts under the cap (%zu)",
		  lua_vm_mem_used(vm));
	int rc = run(vm, "keep = {} for i = 1, 1e9 do keep[i] = ('x'):rep(1000) .. i end", NULL);
	TAP_EQ(rc, -ENOMEM, "unbounded allocation stopped by the memory cap");
	TAP_EQ(st.hook_oom, 1, "hook_oom counted");
	TAP_CHECK(lua_vm_mem_used(vm) <= (8u << 20), "usage within the cap after the error (%zu)",
		  lua_vm_mem_used(vm));
	/* keep is still reachable: drop it, then the state works normally again */
	rc = run(vm, "keep = nil collectgarbage() ok = 42", NULL);
	TAP_EQ(rc, 0, "state usable after OOM");
	TAP_EQ(global_num(vm, "ok"), 42, "next call ran");
	/* a pcall inside the script sees the error, the state still works */
	rc = run(vm, "local ok = pcall(function() local t = {} while true do t[#t+1] = {} end end) r = ok and 1 or 0",
		 NULL);
	TAP_EQ(rc, 0, "OOM caught by the script's own pcall does not kill the call");
	TAP_EQ(global_num(vm, "r"), 0, "script saw the memory error");
	/* the cap also holds with JIT off */
	rc = run(vm, "jit.off() local t = {} while true do t[#t+1] = ('y'):rep(4096) .. #t end", NULL);
	TAP_EQ(rc, -ENOMEM, "cap holds with jit.off");
	rc = run(vm, "jit.on() ok = 7", NULL);
	TAP_EQ(rc, 0, "usable afterwards");
	lua_vm_free(vm);
}

static void test_errors(bool jit)
{
	struct hyp_rt_stats st = { 0 };
	struct hyp_lua_vm *vm = vm_make(&st, 0);
	if (!vm)
		return;
	lua_State *L = lua_vm_state(vm);
	printf("# errors with %s\n", jit ? "jit.on" : "jit.off");
	run(vm, jit ? "jit.on()" : "jit.off()", NULL);
	st.hook_calls = 0;
	memset(st.hook_latency_bucket, 0, sizeof(st.hook_latency_bucket));
	int top = lua_gettop(L);
	int rc = run(vm, "local function hook() error('boom') end hook()", NULL);
	TAP_EQ(rc, -EINVAL, "raising hook returns -EINVAL");
	TAP_EQ(st.hook_errors, 1, "hook_errors counted");
	TAP_CHECK(strstr(lua_vm_last_error(vm), "test:1: boom") != NULL, "last error has file:line: message (%s)",
		  lua_vm_last_error(vm));
	TAP_EQ(lua_gettop(L), top, "stack balanced after error");
	rc = run(vm, "n = (n or 0) + 1", NULL);
	TAP_EQ(rc, 0, "next call works");
	TAP_EQ(global_num(vm, "n"), 1, "next call ran");
	rc = run(vm, "error({})", NULL);
	TAP_EQ(rc, -EINVAL, "non-string error object handled");
	rc = run(vm, "local ok, m, extra = xpcall(function(a) error('x' .. a, 0) end, "
		 "function(e) return 'handled ' .. e end, 7) assert(not ok and m == 'handled x7', m) "
		 "assert(select('#', xpcall(function() return 1, 2 end, print)) == 3)", NULL);
	TAP_EQ(rc, 0, "xpcall wrapper: Lua handler, arguments and results as usual before the deadline");
	rc = run(vm, "debug.sethook()", NULL);
	TAP_EQ(rc, -EINVAL, "debug.sethook is not available to scripts");
	rc = run(vm, "require('jit.profile')", NULL);
	TAP_EQ(rc, -EINVAL, "jit.profile is not available to scripts");
	/* results are left on the stack */
	luaL_loadstring(L, "return 1, 'two'");
	rc = lua_vm_call(vm, 0, 2, "results");
	TAP_CHECK(rc == 0 && lua_tonumber(L, -2) == 1 && !strcmp(lua_tostring(L, -1), "two"), "results returned");
	lua_pop(L, 2);
	__u64 sum = 0;
	for (int i = 0; i < 12; i++)
		sum += st.hook_latency_bucket[i];
	TAP_EQ(sum, st.hook_calls, "latency histogram counts every call");
	lua_vm_free(vm);
}

struct runaway {
	const char *name;
	const char *src;
};

static const struct runaway runaways[] = {
	{ "empty loop", "while true do end" },
	{ "counting loop", "local x = 0 while true do x = x + 1 end" },
	{ "loop calling a function", "local function f(i) return (i * 3) % 7 end local x = 1 while true do x = f(x) end" },
	{ "multi-line loop", "local x = 0\nwhile true do\n  x = x + 1\n  if x > 1e12 then x = 0 end\nend" },
	{ "pcall cannot swallow it", "while true do pcall(function() local x = 0 while true do x = x + 1 end end) end" },
	{ "error handler loops too", "while true do xpcall(function() while true do end end, function() while true do end end) end" },
	{ "numeric for", "local s = 0 for i = 1, 1e15 do s = s + i end" },
};

static void test_runaway(bool jit)
{
	struct hyp_rt_stats st = { 0 };
	struct hyp_lua_vm *vm = vm_make(&st, 0);
	if (!vm)
		return;
	const char *mode = jit ? "jit.on()" : "jit.off()";
	int rc = run(vm, mode, NULL);
	TAP_EQ(rc, 0, "%s", mode);
	rc = run(vm, "hx_store = { kept = 'yes' }", NULL);
	for (size_t i = 0; i < sizeof(runaways) / sizeof(runaways[0]); i++) {
		double ms = 0;
		__u64 before = st.hook_timeouts;
		rc = run(vm, runaways[i].src, &ms);
		TAP_EQ(rc, -ETIMEDOUT, "[%s] %s: stopped", mode, runaways[i].name);
		TAP_CHECK(ms >= TIMEOUT_MS * 0.9 && ms < STOP_BOUND_MS, "[%s] %s: stopped after %.1f ms (limit %d)", mode,
			  runaways[i].name, ms, TIMEOUT_MS);
		TAP_EQ(st.hook_timeouts, before + 1, "[%s] %s: hook_timeouts counted", mode, runaways[i].name);
		const char *e = lua_vm_last_error(vm);
		TAP_CHECK(!strncmp(e, "test:", 5) && strstr(e, ": exceeded the time limit"),
			  "[%s] %s: error names the runaway's line (%s)", mode, runaways[i].name, e);
		rc = run(vm, "after = (after or 0) + 1", NULL);
		TAP_EQ(rc, 0, "[%s] %s: next call runs", mode, runaways[i].name);
	}
	TAP_EQ(global_num(vm, "after"), sizeof(runaways) / sizeof(runaways[0]), "[%s] every follow-up call ran", mode);
	if (jit) {
		rc = run(vm, "assert(require('jit.util').traceinfo(1))", NULL);
		TAP_EQ(rc, 0, "[%s] the loops were compiled to traces", mode);
	}
	rc = run(vm, "assert(hx_store.kept == 'yes')", NULL);
	TAP_EQ(rc, 0, "[%s] state from before the runaways survives", mode);
	lua_vm_free(vm);
}

/* Many short calls whose total time exceeds the limit: the deadline is per call. */
static void test_no_false_timeout(void)
{
	struct hyp_rt_stats st = { 0 };
	struct hyp_lua_vm *vm = vm_make(&st, 0);
	if (!vm)
		return;
	int rc = run(vm, "function work() local s = 0 for i = 1, 20000 do s = s + i % 7 end return s end", NULL);
	lua_State *L = lua_vm_state(vm);
	double t0 = now_ms();
	int bad = 0, calls = 0;
	while (now_ms() - t0 < 3 * TIMEOUT_MS) {
		lua_getglobal(L, "work");
		rc = lua_vm_call(vm, 0, 0, "work");
		bad += rc != 0;
		calls++;
	}
	TAP_EQ(bad, 0, "%d short calls spanning 3x the limit: none stopped", calls);
	TAP_EQ(st.hook_timeouts, 0, "no timeouts counted");
	lua_vm_free(vm);
}

/* A runaway in one state does not disturb another; the profiler moves between states. */
static void test_two_states(void)
{
	struct hyp_rt_stats st = { 0 };
	struct hyp_lua_vm *a = vm_make(&st, 0), *b = vm_make(&st, 0);
	if (!a || !b)
		return;
	int rc = run(a, "local x = 0 for i = 1, 1000 do x = x + i end", NULL);
	rc = run(b, "local x = 0 while true do x = x + 1 end", NULL);
	TAP_EQ(rc, -ETIMEDOUT, "runaway in state b stopped");
	rc = run(a, "local x = 0 while true do x = x + 1 end", NULL);
	TAP_EQ(rc, -ETIMEDOUT, "runaway in state a stopped after switching back");
	rc = run(b, "v = 1", NULL);
	TAP_EQ(rc, 0, "state b usable");
	lua_vm_free(b);
	rc = run(a, "local x = 0 while true do x = x + 1 end", NULL);
	TAP_EQ(rc, -ETIMEDOUT, "runaway in a stopped after b was freed");
	lua_vm_free(a);
}

/* In the child of a stuck test: a state with the test deadline (exit 1 if it cannot be made). */
static struct hyp_lua_vm *stuck_child_vm(void)
{
	struct hyp_lua_vm *vm = NULL;
	struct hyp_lua_vm_opts o = { .timeout_ms = TIMEOUT_MS, .lib_dir = "lib" };

	if (lua_vm_new(&vm, &o))
		_exit(1);
	return vm;
}

/* The exit status of a child whose call gets stuck; bounded wait: the stuck report comes
 * HYP_LUA_STUCK_MS after the deadline, so a child still running 10 s past that is killed. */
static int stuck_child_wait(pid_t pid)
{
	double t0 = now_ms();
	int status = 0;

	while (waitpid(pid, &status, WNOHANG) == 0 && now_ms() - t0 < HYP_LUA_STUCK_MS + 10000)
		usleep(10000);
	if (now_ms() - t0 >= HYP_LUA_STUCK_MS + 10000) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	return status;
}

static void stuck_exit(const char *what)
{
	(void)what;
	_exit(42);
}

/* One C function that runs for ages (backtracking pattern): no hook can run inside it, so the watchdog
 * reports it and calls the stuck action. In a child, since the main thread never comes back. */
static void test_stuck_in_c(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct hyp_lua_vm *vm = stuck_child_vm();
		lua_vm_on_stuck(stuck_exit);
		run(vm, "local s = ('a'):rep(5000) return s:find('.-.-.-.-.-b')", NULL);
		_exit(0);
	}
	double t0 = now_ms();
	int status = stuck_child_wait(pid);
	TAP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42, "call stuck in a C function: stuck action ran "
		  "after %.0f ms (deadline %d + %d)", now_ms() - t0, TIMEOUT_MS, HYP_LUA_STUCK_MS);
}

/* The stuck report names the hx.* function a call is stuck in: what lua_api.c marks on entry is what
 * the watchdog sees (exit 42), and an outermost call starts with no mark left from an earlier one. */
static void stuck_named_exit(const char *what)
{
	const char *fn = lua_vm_api_swap(NULL);

	(void)what;
	_exit(fn && !strcmp(fn, "block") ? 42 : 43);
}

static int c_block(lua_State *L)
{
	const char *prev = lua_vm_api_swap("block");

	for (int i = 0; i < 200; i++)   /* 20 s at most: the watchdog acts after TIMEOUT_MS + 2 s */
		usleep(100000);
	lua_vm_api_swap(prev);
	(void)L;
	return 0;
}

static void test_stuck_named(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct hyp_lua_vm *vm = stuck_child_vm();
		lua_vm_api_swap("stale");
		if (run(vm, "x = 1", NULL) || lua_vm_api_swap(NULL) != NULL)
			_exit(44);      /* the outermost call did not clear the mark */
		lua_vm_on_stuck(stuck_named_exit);
		lua_register(lua_vm_state(vm), "block", c_block);
		run(vm, "block()", NULL);
		_exit(0);
	}
	int status = stuck_child_wait(pid);
	TAP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42, "the stuck report sees the C function "
		  "marked as running (exit %d: 42 named, 43 not, 44 a stale mark survived a new call)",
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void test_lib_path(void)
{
	char buf[4096];
	int rc = lua_vm_lib_path("/opt/x", buf, sizeof(buf));
	TAP_CHECK(rc == 0 && !strcmp(buf, "/opt/x/?.lua;/opt/x/?/init.lua"), "explicit lib_dir only (%s)", buf);
	rc = lua_vm_lib_path(NULL, buf, sizeof(buf));
	TAP_CHECK(rc == 0 && strstr(buf, HYP_DEFAULT_LIBDIR "/?.lua"), "installed lib dir searched (%s)", buf);
	char src[PATH_MAX], want[PATH_MAX + 16];
	if (realpath("lib", src)) {
		snprintf(want, sizeof(want), "%s/?.lua;", src);
		TAP_CHECK(strstr(buf, want) == buf, "source tree lib/ (relative to the executable) searched first (%s)",
			  buf);
	} else {
		TAP_SKIP("run from the source tree to check the exe-relative lib/");
	}
}

int main(void)
{
	test_memory_cap();
	test_errors(false);
	test_errors(true);
	test_runaway(false);
	test_runaway(true);
	test_no_false_timeout();
	test_two_states();
	test_stuck_in_c();
	test_stuck_named();
	test_lib_path();
	return tap_done();
}
