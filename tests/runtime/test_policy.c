/* policy: load errors with file:line, reload keeping hx.store, event dispatch through FFI, hx calls reaching
 * the daemon and the datapath. Runs a real daemon (no interfaces, nothing pinned) in a temp dir. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <event2/event.h>
#include <lua.h>
#include <lauxlib.h>
#include "daemon.h"
#include "lua_api.h"
#include "lua_vm.h"
#include "maps.h"
#include "policy.h"
#include "tap.h"

static struct hyp_daemon D;
static char dir[] = "/tmp/hyp-test-policy-XXXXXX";
static char path_main[256], path_tmp[256], state_dir[256], sock[256];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

/* Evaluates `return <expr>` in p's state; returns a malloc'd string of the result (or "ERR: ..."). */
static char *eval(struct hyp_policy *p, const char *expr)
{
	lua_State *L = lua_vm_state(p->vm);
	char src[1024];
	snprintf(src, sizeof(src), "local hx = require('hyperion') return tostring(%s)", expr);
	if (luaL_loadstring(L, src)) {
		char *e = strdup(lua_tostring(L, -1));
		lua_pop(L, 1);
		return e;
	}
	if (lua_vm_call(p->vm, 0, 1, "test eval"))
		return strdup("ERR");
	char *r = strdup(lua_tostring(L, -1));
	lua_pop(L, 1);
	return r;
}

static bool eval_is(struct hyp_policy *p, const char *expr, const char *want)
{
	char *got = eval(p, expr);
	bool ok = !strcmp(got, want);
	if (!ok)
		printf("# %s = %s, want %s\n", expr, got, want);
	free(got);
	return ok;
}

/* TAP_CHECK evaluates its condition twice: evaluate Lua once. */
#define EVAL_CHECK(pol, expr, want, ...) do {                                              \
		bool ok_ = eval_is(pol, expr, want);                                       \
		TAP_CHECK(ok_, __VA_ARGS__);                                               \
	} while (0)

/* --- load errors ---------------------------------------------------------------------------------- */

struct bad_case {
	const char *name;
	const char *src;
	const char *want;       /* substring of the error */
};

static const struct bad_case bad[] = {
	{ "unknown config key", "local hx = require('hyperion')\nhx.config{ mode = 'enforce', bogus = 1 }\n",
	  ":2: hx.config: unknown key 'bogus'" },
	{ "scan_depth range", "local hx = require('hyperion')\n\nhx.config{ scan_depth = 5000 }\n",
	  ":3: hx.config: scan_depth must be an integer in 0..1536" },
	{ "mode value", "local hx = require('hyperion')\nhx.config{ mode = 'block' }\n", ":2: hx.config: mode must be one of" },
	{ "port range", "local hx = require('hyperion')\nhx.config{ allow_tcp = {22, 70000} }\n", "allow_tcp[2] must be a port" },
	{ "wrong type", "local hx = require('hyperion')\nhx.config{ syn_rate = 'fast' }\n", "syn_rate must be a number" },
	{ "verdict_cache type", "local hx = require('hyperion')\nhx.config{ verdict_cache = 1 }\n",
	  ":2: hx.config: verdict_cache must be true or false, got a number" },
	{ "syn_cookies type", "local hx = require('hyperion')\nhx.config{ syn_cookies = 'yes' }\n",
	  ":2: hx.config: syn_cookies must be true or false, got a string" },
	{ "syn_cookie_mss too small", "local hx = require('hyperion')\nhx.config{ syn_cookie_mss = 100 }\n",
	  "hx.config: syn_cookie_mss must be 0 (default) or 536..65495, got 100" },
	{ "unknown timeout state", "local hx = require('hyperion')\nhx.config{ timeouts = { forever = 1 } }\n",
	  "timeouts: unknown state 'forever'" },
	{ "unknown event kind", "local hx = require('hyperion')\nhx.on('packet', function() end)\n",
	  ":2: hx.on: unknown event kind 'packet'" },
	{ "signature without pattern", "local hx = require('hyperion')\nhx.signature{ name = 'x' }\n",
	  ":2: hx.signature: pattern is required" },
	{ "signature bad action", "local hx = require('hyperion')\nhx.signature{ name = 'x', pattern = 'y', action = 'explode' }\n",
	  "hx.signature: action must be one of" },
	{ "signature unknown key", "local hx = require('hyperion')\nhx.signature{ name = 'x', pattern = 'y', prot = 'tcp' }\n",
	  "hx.signature: unknown key 'prot'" },
	{ "signature too long", "local hx = require('hyperion')\nhx.signature{ name = 'x', pattern = ('a'):rep(65) }\n",
	  "pattern must be a string of 1..64 bytes" },
	{ "duplicate signature", "local hx = require('hyperion')\nhx.signature{ name = 'x', pattern = 'a' }\n"
	  "hx.signature{ name = 'x', pattern = 'b' }\n", ":3: hx.signature: duplicate signature name 'x'" },
	{ "syntax error", "local hx = require('hyperion')\nhx.config{ mode = }\n", ":2:" },
	{ "runtime error", "local hx = require('hyperion')\nlocal t = nil\nprint(t.x)\n", ":3: attempt to index" },
	{ "runaway top level", "local x = 0\nwhile true do x = x + 1 end\n", "time limit" },
	{ "ban with host bits", "local hx = require('hyperion')\nhx.ban('192.0.2.1/24', 60)\n", "hx.ban: invalid" },
};

static void test_load_errors(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path_tmp, bad[i].src);
		struct hyp_policy *p = NULL;
		char err[512] = "";
		int rc = policy_load(&D, path_tmp, &p, err, sizeof(err));
		TAP_CHECK(rc < 0 && p == NULL, "%s: refused", bad[i].name);
		TAP_CHECK(strstr(err, bad[i].want) && strstr(err, path_tmp) == err, "%s: message '%s'", bad[i].name, err);
	}
	struct hyp_policy *p = NULL;
	char err[512] = "";
	int rc = policy_load(&D, "/nonexistent/policy.lua", &p, err, sizeof(err));
	TAP_CHECK(rc < 0 && strstr(err, "/nonexistent/policy.lua"), "missing file named (%s)", err);
}

/* --- the running policy --------------------------------------------------------------------------- */

static const char *policy_v1 =
	"local hx = require('hyperion')\n"
	"hx.config{ mode = 'enforce', scan_depth = 300, verdict_cache = false, syn_cookies = true, syn_cookie_mss = 1400, allow_tcp = {22, 80, '8000-8002'}, allow_udp = {53},\n"
	"           syn_rate = 100, syn_burst = 200, timeouts = { established = 600 } }\n"
	"hx.signature{ name = 'first', pattern = 'zzzz' }\n"
	"hx.signature{ name = 'root-probe', pattern = 'root', action = 'drop', proto = 'tcp', ports = {80} }\n"
	"hx.store.gen = 1\n"
	"hx.store.matches = hx.store.matches or 0\n"
	"seen = {}\n"
	"hx.on('match', function(ev)\n"
	"  hx.store.matches = hx.store.matches + 1\n"
	"  seen[#seen + 1] = ev:copy()\n"
	"  if ev.payload:find('banme') then assert(hx.ban(ev.src, 600, 'signature ' .. ev.sig)) end\n"
	"  if ev.payload:find('boom') then error('hook exploded') end\n"
	"  if ev.payload:find('spin') then local x = 0 while true do x = x + 1 end end\n"
	"  if ev.payload:find('hog') then local t = {} while true do t[#t + 1] = ('x'):rep(1000000) .. #t end end\n"
	"  if ev.payload:find('dropsig') then hx.unsignature('first') end\n"
	"end)\n"
	"hx.on('flow_end', function(ev) flow_ends = (flow_ends or 0) + 1 end)\n"
	"hx.after(0.01, function() after_fired = (after_fired or 0) + 1 end)\n"
	"hx.every(0.01, function() every_fired = (every_fired or 0) + 1 end)\n"
	"hx.ban('203.0.113.0/24', 0, 'static')\n";

static void ev_make(struct hyp_event *e, __u8 kind, const char *src, const char *payload)
{
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->family = HYP_AF_INET;
	inet_pton(AF_INET, src, e->saddr);
	inet_pton(AF_INET, "198.51.100.10", e->daddr);
	e->sport = htons(41000);
	e->dport = htons(80);
	e->proto = 6;
	e->verdict = HYP_V_DROP;
	e->reason = HYP_R_DROP_SIG;
	e->state = HYP_CT_ESTABLISHED;
	e->sig = kind == HYP_EV_MATCH ? 1 : 0xffffffffu;
	e->ts_ns = 7000000000ull;
	e->payload_len = (__u32)strlen(payload);
	memcpy(e->payload, payload, e->payload_len);
}

static void test_running(void)
{
	struct hyp_policy *p = D.policy;
	struct hyp_config cfg;
	__u32 gen;
	TAP_EQ(dp_config_read(&D.dp, &cfg, &gen), 0, "dp_config_read");
	TAP_EQ(cfg.scan_depth, 300, "config: scan_depth reached the datapath");
	TAP_EQ(cfg.tcp_all_open, 0, "config: allow_tcp closes the other TCP ports");
	TAP_CHECK((cfg.tcp_ports[80 / 64] >> (80 % 64)) & 1, "config: port 80 open");
	TAP_CHECK((cfg.tcp_ports[8001 / 64] >> (8001 % 64)) & 1, "config: range 8000-8002 open");
	TAP_CHECK(!((cfg.tcp_ports[23 / 64] >> (23 % 64)) & 1), "config: port 23 closed");
	TAP_CHECK((cfg.udp_ports[53 / 64] >> (53 % 64)) & 1, "config: udp 53 open");
	TAP_EQ(cfg.syn_rate, 100, "config: syn_rate");
	TAP_EQ(cfg.vcache, 0, "config: verdict_cache = false turns the verdict cache off");
	TAP_EQ(cfg.syn_cookies, 1, "config: syn_cookies = true");
	TAP_EQ(cfg.cookie_mss, 1400, "config: syn_cookie_mss");
	TAP_EQ(cfg.timeout_ns[HYP_CT_ESTABLISHED], 600ull * 1000000000ull, "config: timeouts.established");
	TAP_EQ(cfg.nsigs, 2, "both signatures in the active generation");
	TAP_EQ(policy_nsigs(p), 2, "policy_nsigs");

	/* top-level hx.ban was queued and applied at activation, through daemon_ban_add */
	struct hyp_cidr c, which;
	struct hyp_ban b;
	cidr_parse("203.0.113.9", &c, true);
	TAP_EQ(ban_match(&D.dp, c.family, c.addr, &which, &b), 1, "top-level hx.ban applied at activation");
	const char *r = daemon_ban_reason(&D, &which);
	TAP_CHECK(r && !strcmp(r, "static"), "reason recorded by the daemon (%s)", r ? r : "(none)");
	EVAL_CHECK(p, "(select(2, hx.banned('203.0.113.9'))).reason", "static", "hx.banned returns ban info");
	EVAL_CHECK(p, "hx.banned('192.0.2.200')", "false", "hx.banned false for a clean address");
}

static void test_dispatch(void)
{
	struct hyp_policy *p = D.policy;
	struct hyp_event ev[4];
	__u64 calls0 = D.st.hook_calls;

	/* only kinds with hooks enter Lua */
	ev_make(&ev[0], HYP_EV_BLOCK, "192.0.2.1", "");
	ev_make(&ev[1], HYP_EV_FLOW_NEW, "192.0.2.1", "");
	policy_dispatch(&D, p, ev, 2);
	TAP_EQ(D.st.hook_calls, calls0, "batch of kinds without hooks: Lua not entered");

	ev_make(&ev[0], HYP_EV_BLOCK, "192.0.2.1", "");
	ev_make(&ev[1], HYP_EV_MATCH, "192.0.2.44", "GET /root HTTP/1.0");
	ev_make(&ev[2], HYP_EV_FLOW_END, "192.0.2.45", "");
	ev_make(&ev[3], HYP_EV_MATCH, "192.0.2.46", "banme root");
	policy_dispatch(&D, p, ev, 4);
	TAP_EQ(D.st.hook_calls, calls0 + 1, "one Lua call per batch");
	EVAL_CHECK(p, "#seen", "2", "match hook saw both matches, not the block");
	EVAL_CHECK(p, "flow_ends", "1", "flow_end hook ran once");
	EVAL_CHECK(p, "seen[1].src", "192.0.2.44", "ev.src");
	EVAL_CHECK(p, "seen[1].dst", "198.51.100.10", "ev.dst");
	EVAL_CHECK(p, "seen[1].sport", "41000", "ev.sport host order");
	EVAL_CHECK(p, "seen[1].dport", "80", "ev.dport host order");
	EVAL_CHECK(p, "seen[1].sig", "root-probe", "ev.sig is the signature name");
	EVAL_CHECK(p, "seen[1].proto_name", "tcp", "ev.proto_name");
	EVAL_CHECK(p, "seen[1].verdict", "drop", "ev.verdict");
	EVAL_CHECK(p, "seen[1].state", "established", "ev.state");
	EVAL_CHECK(p, "seen[1].reason", "drop_sig", "ev.reason");
	EVAL_CHECK(p, "seen[1].payload", "GET /root HTTP/1.0", "ev.payload");
	EVAL_CHECK(p, "seen[1].ts", "7", "ev.ts seconds");
	EVAL_CHECK(p, "hx.store.matches", "2", "hook updated hx.store");

	/* hx.ban from a hook goes through daemon_ban_add (reason kept) */
	struct hyp_cidr c, which;
	struct hyp_ban b;
	cidr_parse("192.0.2.46", &c, true);
	TAP_EQ(ban_match(&D.dp, c.family, c.addr, &which, &b), 1, "hx.ban from a hook reached the ban map");
	const char *r = daemon_ban_reason(&D, &which);
	TAP_CHECK(r && !strcmp(r, "signature root-probe"), "ban reason recorded (%s)", r ? r : "(none)");
	TAP_CHECK(b.expires_ns > 0, "ban has a TTL");

	/* a raising hook is counted, the rest of the batch and the next batch still run */
	__u64 errs = D.st.hook_errors;
	ev_make(&ev[0], HYP_EV_MATCH, "192.0.2.50", "boom");
	ev_make(&ev[1], HYP_EV_MATCH, "192.0.2.51", "fine");
	policy_dispatch(&D, p, ev, 2);
	TAP_EQ(D.st.hook_errors, errs + 1, "raising hook counted in hook_errors");
	EVAL_CHECK(p, "seen[#seen].src", "192.0.2.51", "event after the failing one still delivered");

	/* warm up so the dispatcher and the hook run as compiled traces, then a runaway hook is stopped,
	 * counted; state and hx.store survive */
	ev_make(&ev[0], HYP_EV_MATCH, "192.0.2.57", "warm");
	for (int i = 0; i < 300; i++)
		policy_dispatch(&D, p, ev, 1);
	EVAL_CHECK(p, "require('jit.util').traceinfo(1) ~= nil", "true", "hot paths were compiled");
	EVAL_CHECK(p, "(function() hx.store.matches = hx.store.matches - 300 return 1 end)()", "1", "reset");
	__u64 tmo = D.st.hook_timeouts;
	ev_make(&ev[0], HYP_EV_MATCH, "192.0.2.52", "spin");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	policy_dispatch(&D, p, ev, 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	TAP_EQ(D.st.hook_timeouts, tmo + 1, "runaway hook counted in hook_timeouts");
	TAP_CHECK(ms < 5000, "runaway hook stopped, not hung (%.0f ms, limit %u)", ms, D.opt.hook_timeout_ms);
	ev_make(&ev[0], HYP_EV_MATCH, "192.0.2.53", "after");
	policy_dispatch(&D, p, ev, 1);
	EVAL_CHECK(p, "seen[#seen].src", "192.0.2.53", "next hook runs after the runaway");
	EVAL_CHECK(p, "hx.store.matches", "6", "hx.store intact after the runaway");
	EVAL_CHECK(p, "hx.store.gen", "1", "hx.store keys from load time intact");

	/* a hook allocating without bound hits the memory cap, is counted, and the next one runs */
	__u64 oom = D.st.hook_oom;
	ev_make(&ev[0], HYP_EV_MATCH, "192.0.2.55", "hog");
	ev_make(&ev[1], HYP_EV_MATCH, "192.0.2.56", "next one");
	policy_dispatch(&D, p, ev, 2);
	TAP_EQ(D.st.hook_oom, oom + 1, "hook hitting the memory cap counted in hook_oom");
	EVAL_CHECK(p, "seen[#seen].src", "192.0.2.56", "next event delivered after the OOM");
	TAP_CHECK(lua_vm_mem_used(p->vm) < D.opt.lua_mem_limit / 2, "garbage of the failed hook collected (%zu)",
		  lua_vm_mem_used(p->vm));

	/* hx.unsignature from a hook: recompiled, new generation */
	ev_make(&ev[0], HYP_EV_MATCH, "192.0.2.54", "dropsig");
	policy_dispatch(&D, p, ev, 1);
	struct hyp_config cfg;
	__u32 gen;
	dp_config_read(&D.dp, &cfg, &gen);
	TAP_EQ(policy_nsigs(p), 1, "hx.unsignature from a hook removed the signature");
	TAP_EQ(cfg.nsigs, 1, "datapath runs the recompiled set");
	TAP_EQ(cfg.scan_depth, 300, "config unchanged by the recompile");
}

static void test_api_misc(void)
{
	struct hyp_policy *p = D.policy;
	EVAL_CHECK(p, "hx.flow('192.0.2.1', 1000, '198.51.100.1', 80, 'tcp')", "nil", "hx.flow: unknown flow is nil");
	EVAL_CHECK(p, "hx.flow_delete('192.0.2.1', 1000, '198.51.100.1', 80, 'tcp')", "false",
		  "hx.flow_delete: unknown flow is false");
	EVAL_CHECK(p, "type(hx.stats().reasons.pass_flow.packets)", "number", "hx.stats: reasons");
	EVAL_CHECK(p, "type(hx.stats().counters.seen)", "number", "hx.stats: counters");
	EVAL_CHECK(p, "hx.stats().runtime.hook_calls > 0", "true", "hx.stats: runtime counters");
	EVAL_CHECK(p, "(function() local n = 0 for f in hx.flows() do n = n + 1 end return n end)()", "0",
		  "hx.flows: iterates (empty)");
	/* a flow written straight into the map, as the datapath would */
	struct hyp_flow_key fk;
	struct hyp_flow fv = { .state = HYP_CT_ESTABLISHED, .flags = HYP_FF_INBOUND | HYP_FF_ESTABLISHED_MAP };
	__u8 sa[16] = { 0 }, da[16] = { 0 };
	int fdir;
	inet_pton(AF_INET, "192.0.2.77", sa);
	inet_pton(AF_INET, "198.51.100.1", da);
	flow_key_make(&fk, HYP_AF_INET, 6, sa, htons(5555), da, htons(443), &fdir);
	fv.orig = (__u8)fdir;
	fv.packets[0] = 3;
	fv.packets[1] = 4;
	TAP_EQ(bpf_map_update_elem(D.dp.fd_flows, &fk, &fv, BPF_ANY), 0, "flow inserted into the flows map");
	EVAL_CHECK(p, "hx.flow('192.0.2.77', 5555, '198.51.100.1', 443, 'tcp').state", "established",
		  "hx.flow finds it");
	EVAL_CHECK(p, "hx.flow('198.51.100.1', 443, '192.0.2.77', 5555, 6).packets", "7",
		  "hx.flow from the other direction, packets both ways");
	EVAL_CHECK(p, "hx.flow('192.0.2.77', 5555, '198.51.100.1', 443, 'tcp').src", "192.0.2.77",
		  "flow reported from its originator");
	EVAL_CHECK(p, "(function() local n = 0 for f in hx.flows() do n = n + 1 assert(f.dport == 443) end "
		  "return n end)()", "1", "hx.flows iterates it");
	EVAL_CHECK(p, "hx.flow('192.0.2.77', 5555, '198.51.100.1', 443, 'tcp', { delete = true })", "true",
		  "hx.flow{delete=true} evicts it");
	EVAL_CHECK(p, "hx.flow('192.0.2.77', 5555, '198.51.100.1', 443, 'tcp')", "nil", "gone");
	EVAL_CHECK(p, "hx.ratelimit('192.0.2.9', { syn = 5 })", "true", "hx.ratelimit writes an override");
	struct hyp_src_key k = { .family = HYP_AF_INET };
	inet_pton(AF_INET, "192.0.2.9", k.addr);
	struct hyp_rl v = { 0 };
	TAP_CHECK(bpf_map_lookup_elem(D.dp.fd_rl, &k, &v) == 0 && v.syn_rate == 5, "rl map entry has syn_rate 5");
	EVAL_CHECK(p, "hx.unban('192.0.2.46')", "true", "hx.unban removes");
	EVAL_CHECK(p, "hx.banned('192.0.2.46')", "false", "unbanned");
	EVAL_CHECK(p, "hx.allow('198.51.100.0/24')", "true", "hx.allow");
	EVAL_CHECK(p, "hx.disallow('198.51.100.0/24')", "true", "hx.disallow");
	char *e = eval(p, "select(2, pcall(hx.ban, 'not-an-ip'))");
	TAP_CHECK(strstr(e, "hx.ban: invalid address") != NULL, "hx.ban rejects garbage with a clear error (%s)", e);
	free(e);
	EVAL_CHECK(p, "type(hx.now())", "number", "hx.now");
}

static void loop_for_ms(int ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct timeval tv = { 0, 10000 };
	for (int i = 0; i < 1000; i++) {
		event_base_loopexit(D.base, &tv);
		event_base_loop(D.base, 0);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
			break;
	}
}

static void test_timers(void)
{
	struct hyp_policy *p = D.policy;
	loop_for_ms(100);
	EVAL_CHECK(p, "after_fired", "1", "hx.after fired once");
	char *n = eval(p, "every_fired");
	TAP_CHECK(atoi(n) >= 3, "hx.every fired repeatedly (%s)", n);
	free(n);
	EVAL_CHECK(p, "hx.cancel(hx.every(1, function() end))", "true", "hx.cancel");
}

static const char *policy_v2 =
	"local hx = require('hyperion')\n"
	"hx.config{ scan_depth = 128 }\n"
	"hx.signature{ name = 'v2-sig', pattern = 'admin' }\n"
	"at_load = hx.store.matches\n"
	"hx.store.gen = 2\n"
	"hx.on('match', function(ev) v2_seen = (v2_seen or 0) + 1 end)\n"
	"hx.every(0.01, function() v2_every = (v2_every or 0) + 1 end)\n";

static void test_reload(void)
{
	struct hyp_policy *old = D.policy;
	char err[512] = "";
	__u64 reloads = D.st.reloads;

	/* broken reload: the old policy keeps running, nothing changes */
	write_file(path_main, "local hx = require('hyperion')\nhx.config{ scan_depth = 128 }\nhx.config{ nope = 1 }\n");
	int rc = daemon_reload(&D, err, sizeof(err));
	TAP_CHECK(rc < 0, "broken reload refused");
	TAP_CHECK(strstr(err, ":3: hx.config: unknown key 'nope'") != NULL, "reload error has file:line (%s)", err);
	TAP_CHECK(D.policy == old, "old policy still running");
	struct hyp_config cfg;
	__u32 gen;
	dp_config_read(&D.dp, &cfg, &gen);
	TAP_EQ(cfg.scan_depth, 300, "datapath config untouched by the failed reload");
	struct hyp_event ev;
	ev_make(&ev, HYP_EV_MATCH, "192.0.2.60", "x");
	policy_dispatch(&D, D.policy, &ev, 1);
	EVAL_CHECK(D.policy, "seen[#seen].src", "192.0.2.60", "old hooks still run");

	/* good reload: one flip, store moved (visible at load time), timers switched */
	char *matches = eval(old, "hx.store.matches");
	write_file(path_main, policy_v2);
	rc = daemon_reload(&D, err, sizeof(err));
	TAP_EQ(rc, 0, "reload to v2 (%s)", err);
	TAP_EQ(D.st.reloads, reloads + 1, "reloads counted");
	struct hyp_policy *p = D.policy;
	TAP_CHECK(p != old, "new policy running");
	EVAL_CHECK(p, "hx.store.matches", matches, "hx.store moved to the new state");
	EVAL_CHECK(p, "at_load", matches, "hx.store visible to the new file's top level");
	EVAL_CHECK(p, "hx.store.gen", "2", "new top level's writes kept");
	free(matches);
	dp_config_read(&D.dp, &cfg, &gen);
	TAP_EQ(cfg.scan_depth, 128, "new config active");
	TAP_EQ(cfg.nsigs, 1, "new signatures active in the same generation");
	TAP_EQ(cfg.tcp_all_open, 1, "keys the new policy omits are back to defaults");
	ev_make(&ev, HYP_EV_MATCH, "192.0.2.61", "x");
	ev.sig = 0;
	policy_dispatch(&D, p, &ev, 1);
	EVAL_CHECK(p, "v2_seen", "1", "new hooks receive events");
	loop_for_ms(60);
	EVAL_CHECK(p, "(v2_every or 0) >= 2", "true", "new policy's timers run");
}

static void test_store_dump_load(void)
{
	struct hyp_policy *p = D.policy;
	char *buf = NULL;
	size_t len = 0;
	free(eval(p, "(function() hx.store.list = {1, 'two', {three = true}} hx.store.f = print return 1 end)()"));
	int rc = policy_store_dump(p, &buf, &len);
	TAP_EQ(rc, 0, "policy_store_dump");
	TAP_CHECK(buf && len > 0 && !strstr(buf, "function"), "dump is plain data, function skipped");
	free(eval(p, "(function() for k in pairs(hx.store) do hx.store[k] = nil end return 1 end)()"));
	rc = policy_store_load(p, buf, len);
	TAP_EQ(rc, 0, "policy_store_load");
	EVAL_CHECK(p, "hx.store.list[3].three", "true", "nested table restored");
	EVAL_CHECK(p, "hx.store.gen", "2", "scalar restored");
	rc = policy_store_load(p, "{{{", 3);
	TAP_CHECK(rc < 0, "garbage snapshot rejected");
	free(buf);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(path_main, sizeof(path_main), "%s/policy.lua", dir);
	snprintf(path_tmp, sizeof(path_tmp), "%s/bad.lua", dir);
	snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	write_file(path_main, policy_v1);
	D.opt.policy_path = path_main;
	D.opt.pin_dir = "";
	D.opt.state_dir = state_dir;
	D.opt.socket_path = sock;
	D.opt.hook_timeout_ms = 500;   /* the memory-cap case must hit the cap before the deadline on a slow VM */
	D.opt.lua_mem_limit = 16u << 20;
	D.opt.lib_dir = "lib";
	D.opt.ctl_allow_uid = (unsigned)-1;
	int rc = daemon_start(&D);
	if (rc) {
		TAP_SKIP("daemon_start failed (%s): needs root and BPF", strerror(-rc));
		return tap_done();
	}
	test_load_errors();
	test_running();
	test_dispatch();
	test_api_misc();
	test_timers();
	test_reload();
	test_store_dump_load();
	daemon_stop(&D, true);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		printf("# cleanup of %s failed\n", dir);
	return tap_done();
}
