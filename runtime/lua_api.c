/* The hx C functions policies call (module "hyperion.core", wrapped by lib/hyperion.lua). */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <event2/event.h>
#include <lua.h>
#include <lauxlib.h>
#include "daemon.h"
#include "log.h"
#include "lua_api.h"
#include "lua_vm.h"

/*
 * Conventions (OpenResty style): misuse (wrong type, unknown key, bad address) raises a Lua error whose
 * position is the policy's line, because these functions are called directly from the policy; an
 * operational failure (map full, entry absent) returns nil, message.
 */

#define API_ERR_MAX 256

static struct hyp_policy *api_policy(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

/* --- argument helpers ----------------------------------------------------------------------------- */

static lua_Number api_int_range(lua_State *L, int idx, const char *fn, const char *key, lua_Number min,
				lua_Number max)
{
	if (lua_type(L, idx) != LUA_TNUMBER)
		luaL_error(L, "%s: %s must be a number, got %s", fn, key, luaL_typename(L, idx));
	lua_Number v = lua_tonumber(L, idx);
	if (v != floor(v) || v < min || v > max)
		luaL_error(L, "%s: %s must be an integer in %.0f..%.0f, got %s", fn, key, min, max,
			   lua_tostring(L, idx));
	return v;
}

static lua_Number api_num_range(lua_State *L, int idx, const char *fn, const char *key, lua_Number min,
				lua_Number max)
{
	if (lua_type(L, idx) != LUA_TNUMBER)
		luaL_error(L, "%s: %s must be a number, got %s", fn, key, luaL_typename(L, idx));
	lua_Number v = lua_tonumber(L, idx);
	if (!(v >= min && v <= max))
		luaL_error(L, "%s: %s must be in %g..%g, got %s", fn, key, min, max, lua_tostring(L, idx));
	return v;
}

/* One of names[] (NULL-terminated); returns its index. */
static int api_enum(lua_State *L, int idx, const char *fn, const char *key, const char *const names[])
{
	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "%s: %s must be a string, got %s", fn, key, luaL_typename(L, idx));
	const char *s = lua_tostring(L, idx);
	char list[128] = "";
	for (int i = 0; names[i]; i++) {
		if (!strcmp(s, names[i]))
			return i;
		size_t u = strlen(list);
		snprintf(list + u, sizeof(list) - u, "%s\"%s\"", i ? ", " : "", names[i]);
	}
	return luaL_error(L, "%s: %s must be one of %s, got \"%s\"", fn, key, list, s);
}

static void api_cidr(lua_State *L, int idx, const char *fn, bool host_bits, struct hyp_cidr *c)
{
	const char *s = luaL_checkstring(L, idx);
	if (cidr_parse(s, c, host_bits))
		luaL_error(L, "%s: invalid %s '%s'", fn, host_bits ? "address" : "address or CIDR (host bits set?)", s);
}

static void api_addr(lua_State *L, int idx, const char *fn, struct hyp_cidr *c)
{
	api_cidr(L, idx, fn, true, c);
	if (c->prefixlen != (c->family == HYP_AF_INET ? 32 : 128))
		luaL_error(L, "%s: '%s' is a prefix, an address is needed", fn, lua_tostring(L, idx));
}

static int api_proto(lua_State *L, int idx, const char *fn)
{
	if (lua_type(L, idx) == LUA_TNUMBER)
		return (int)api_int_range(L, idx, fn, "proto", 0, 255);
	static const char *const names[] = { "tcp", "udp", "icmp", "icmpv6", NULL };
	static const int nums[] = { 6, 17, 1, 58 };
	return nums[api_enum(L, idx, fn, "proto", names)];
}

static int api_fail(lua_State *L, const char *msg)
{
	lua_pushnil(L);
	lua_pushstring(L, msg);
	return 2;
}

/* --- hx.config ------------------------------------------------------------------------------------ */

/* allow_tcp / allow_udp: a list of ports or "lo-hi" ranges; the list replaces "all open". */
static void config_ports(lua_State *L, int idx, const char *key, __u64 *bits, __u32 *all_open)
{
	if (!lua_istable(L, idx))
		luaL_error(L, "hx.config: %s must be a list of ports, got %s", key, luaL_typename(L, idx));
	memset(bits, 0, 8 * HYP_PORT_WORDS);
	*all_open = 0;
	int n = (int)lua_objlen(L, idx);
	for (int i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, i);
		long lo, hi;
		if (lua_type(L, -1) == LUA_TNUMBER) {
			lua_Number v = lua_tonumber(L, -1);
			if (v != floor(v) || v < 1 || v > 65535)
				luaL_error(L, "hx.config: %s[%d] must be a port 1..65535, got %s", key, i,
					   lua_tostring(L, -1));
			lo = hi = (long)v;
		} else if (lua_type(L, -1) == LUA_TSTRING &&
			   sscanf(lua_tostring(L, -1), "%ld-%ld", &lo, &hi) == 2 && lo >= 1 && hi <= 65535 && lo <= hi) {
		} else {
			luaL_error(L, "hx.config: %s[%d] must be a port or a \"lo-hi\" range, got %s", key, i,
				   lua_tostring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
			return;
		}
		for (long p = lo; p <= hi; p++)
			bits[p / 64] |= 1ull << (p % 64);
		lua_pop(L, 1);
	}
}

static void config_timeouts(lua_State *L, int idx, struct hyp_config *cfg)
{
	if (!lua_istable(L, idx))
		luaL_error(L, "hx.config: timeouts must be a table of state = seconds, got %s", luaL_typename(L, idx));
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "hx.config: timeouts keys must be state names");
		const char *k = lua_tostring(L, -2);
		unsigned s;
		for (s = 1; s < HYP_CT_STATE_MAX; s++)
			if (ct_state_name(s) && !strcmp(ct_state_name(s), k))
				break;
		if (s == HYP_CT_STATE_MAX)
			luaL_error(L, "hx.config: timeouts: unknown state '%s'", k);
		char key[64];
		snprintf(key, sizeof(key), "timeouts.%s", k);
		cfg->timeout_ns[s] = (__u64)(api_num_range(L, -1, "hx.config", key, 1e-3, 1e7) * 1e9);
		lua_pop(L, 1);
	}
}

static const char *const modes[] = { "enforce", "monitor", NULL };
static const char *const frags[] = { "pass", "drop", NULL };
static const char *const pickups[] = { "socket", "strict", "grace", NULL };

/* Parses one key of hx.config{} (value at -1) into cfg; raises naming the key. */
static void config_key(lua_State *L, const char *k, struct hyp_config *cfg)
{
	int v = lua_gettop(L);
	static const struct { const char *name; size_t off; } u32s[] = {
		{ "syn_rate", offsetof(struct hyp_config, syn_rate) },
		{ "syn_burst", offsetof(struct hyp_config, syn_burst) },
		{ "pps_rate", offsetof(struct hyp_config, pps_rate) },
		{ "pps_burst", offsetof(struct hyp_config, pps_burst) },
		{ "event_rate", offsetof(struct hyp_config, ev_rate) },
		{ "event_burst", offsetof(struct hyp_config, ev_burst) },
		{ "stream_depth", offsetof(struct hyp_config, stream_depth) },
	};
	for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++)
		if (!strcmp(k, u32s[i].name)) {
			*(__u32 *)((char *)cfg + u32s[i].off) = (__u32)api_int_range(L, v, "hx.config", k, 0, UINT32_MAX);
			return;
		}
	if (!strcmp(k, "mode"))
		cfg->mode = (__u32)api_enum(L, v, "hx.config", k, modes);
	else if (!strcmp(k, "scan_depth"))
		cfg->scan_depth = (__u32)api_int_range(L, v, "hx.config", k, 0, HYP_SCAN_DEPTH_MAX);
	else if (!strcmp(k, "capture"))
		cfg->capture_len = (__u32)api_int_range(L, v, "hx.config", k, 0, HYP_EV_PAYLOAD);
	else if (!strcmp(k, "rl_v6_prefix"))
		cfg->rl_v6_prefix = (__u32)api_int_range(L, v, "hx.config", k, 1, 128);
	else if (!strcmp(k, "frag"))
		cfg->frag_policy = (__u32)api_enum(L, v, "hx.config", k, frags);
	else if (!strcmp(k, "pickup"))
		cfg->pickup = (__u32)api_enum(L, v, "hx.config", k, pickups);
	else if (!strcmp(k, "pickup_grace"))
		cfg->pickup_grace_ns = (__u64)(api_num_range(L, v, "hx.config", k, 0, 1e7) * 1e9);
	else if (!strcmp(k, "allow_tcp"))
		config_ports(L, v, k, cfg->tcp_ports, &cfg->tcp_all_open);
	else if (!strcmp(k, "allow_udp"))
		config_ports(L, v, k, cfg->udp_ports, &cfg->udp_all_open);
	else if (!strcmp(k, "timeouts"))
		config_timeouts(L, v, cfg);
	else if (!strcmp(k, "verdict_cache")) {
		if (lua_type(L, v) != LUA_TBOOLEAN)
			luaL_error(L, "hx.config: verdict_cache must be true or false, got a %s", luaL_typename(L, v));
		cfg->vcache = (__u8)lua_toboolean(L, v);
	} else if (!strcmp(k, "syn_cookies")) {
		if (lua_type(L, v) != LUA_TBOOLEAN)
			luaL_error(L, "hx.config: syn_cookies must be true or false, got a %s", luaL_typename(L, v));
		cfg->syn_cookies = (__u8)lua_toboolean(L, v);
	} else if (!strcmp(k, "syn_cookie_mss")) {
		long mss = api_int_range(L, v, "hx.config", k, 0, HYP_COOKIE_MSS_MAX);
		if (mss && mss < HYP_COOKIE_MSS_MIN)
			luaL_error(L, "hx.config: syn_cookie_mss must be 0 (default) or %d..%d, got %d",
				   HYP_COOKIE_MSS_MIN, HYP_COOKIE_MSS_MAX, (int)mss);
		cfg->cookie_mss = (__u32)mss;
	}
	else
		luaL_error(L, "hx.config: unknown key '%s'", k);
}

/* hx.config{...}: keys merge into the policy's config; at run time the datapath follows at once. */
static int api_config(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	struct hyp_config cfg = p->cfg;     /* all or nothing: a bad key changes nothing */
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "hx.config: keys must be names, got a %s key", luaL_typename(L, -2));
		lua_pushvalue(L, -2);
		const char *k = lua_tostring(L, -1);
		lua_pushvalue(L, -2);
		config_key(L, k, &cfg);
		lua_pop(L, 3);
	}
	struct hyp_config old = p->cfg;
	p->cfg = cfg;
	p->config_set = true;
	if (p->active) {
		char err[API_ERR_MAX];
		if (lua_api_apply(p, err, sizeof(err))) {
			p->cfg = old;
			return luaL_error(L, "hx.config: %s", err);
		}
	}
	return 0;
}

/* --- signatures ----------------------------------------------------------------------------------- */

static int sig_find(const struct hyp_policy *p, const char *name)
{
	for (unsigned i = 0; i < p->ndefs; i++)
		if (!strcmp(p->defs[i].name, name))
			return (int)i;
	return -1;
}

static const char *const actions[] = { "alert", "drop", "ban", NULL };

static void sig_field(lua_State *L, const char *k, struct hyp_sigdef *def, bool *have_name, bool *have_pat)
{
	int v = lua_gettop(L);
	size_t len;
	if (!strcmp(k, "name")) {
		const char *s = lua_type(L, v) == LUA_TSTRING ? lua_tolstring(L, v, &len) : NULL;
		if (!s || len == 0 || len >= HYP_SIG_NAME_MAX)
			luaL_error(L, "hx.signature: name must be a string of 1..%d bytes", HYP_SIG_NAME_MAX - 1);
		memcpy(def->name, s, len + 1);
		*have_name = true;
	} else if (!strcmp(k, "pattern")) {
		const char *s = lua_type(L, v) == LUA_TSTRING ? lua_tolstring(L, v, &len) : NULL;
		if (!s || len == 0 || len > HYP_PATTERN_MAX)
			luaL_error(L, "hx.signature: pattern must be a string of 1..%d bytes", HYP_PATTERN_MAX);
		memcpy(def->pattern, s, len);
		def->pattern_len = (__u32)len;
		*have_pat = true;
	} else if (!strcmp(k, "action")) {
		def->action = (__u8)api_enum(L, v, "hx.signature", k, actions);
	} else if (!strcmp(k, "proto")) {
		if (lua_type(L, v) == LUA_TSTRING && !strcmp(lua_tostring(L, v), "any"))
			def->proto = 0;
		else
			def->proto = (__u8)api_proto(L, v, "hx.signature");
	} else if (!strcmp(k, "nocase")) {
		if (!lua_isboolean(L, v))
			luaL_error(L, "hx.signature: nocase must be a boolean");
		def->flags = lua_toboolean(L, v) ? HYP_SIGF_NOCASE : 0;
	} else if (!strcmp(k, "ports")) {
		if (lua_type(L, v) == LUA_TNUMBER) {
			def->ports[0] = (__u16)api_int_range(L, v, "hx.signature", "ports", 1, 65535);
			def->nports = 1;
			return;
		}
		if (!lua_istable(L, v))
			luaL_error(L, "hx.signature: ports must be a list of ports");
		int n = (int)lua_objlen(L, v);
		if (n > HYP_SIG_PORTS_MAX)
			luaL_error(L, "hx.signature: at most %d ports, got %d", HYP_SIG_PORTS_MAX, n);
		for (int i = 1; i <= n; i++) {
			lua_rawgeti(L, v, i);
			def->ports[i - 1] = (__u16)api_int_range(L, -1, "hx.signature", "ports[i]", 1, 65535);
			lua_pop(L, 1);
		}
		def->nports = (__u8)n;
	} else {
		luaL_error(L, "hx.signature: unknown key '%s'", k);
	}
}

/* hx.signature{name=, pattern=, action="alert", proto="any", ports={}, nocase=false} */
static int api_signature(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	struct hyp_sigdef def = { .action = HYP_ACT_ALERT };
	bool have_name = false, have_pat = false;
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "hx.signature: keys must be names");
		lua_pushvalue(L, -2);
		const char *k = lua_tostring(L, -1);
		lua_pushvalue(L, -2);
		sig_field(L, k, &def, &have_name, &have_pat);
		lua_pop(L, 3);
	}
	if (!have_name || !have_pat)
		return luaL_error(L, "hx.signature: %s is required", have_name ? "pattern" : "name");
	if (sig_find(p, def.name) >= 0)
		return luaL_error(L, "hx.signature: duplicate signature name '%s'", def.name);
	if (p->ndefs >= HYP_SIG_MAX)
		return luaL_error(L, "hx.signature: more than %d signatures", HYP_SIG_MAX);
	char err[API_ERR_MAX] = "";
	if (sig_validate(&def, err, sizeof(err)))
		return luaL_error(L, "hx.signature '%s': %s", def.name, err);
	p->defs[p->ndefs++] = def;
	if (p->active && lua_api_apply(p, err, sizeof(err))) {
		p->ndefs--;
		return luaL_error(L, "hx.signature '%s': %s", def.name, err);
	}
	return 0;
}

/* hx.unsignature(name) -> true, or false if no such signature. */
static int api_unsignature(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	const char *name = luaL_checkstring(L, 1);
	int i = sig_find(p, name);
	if (i < 0) {
		lua_pushboolean(L, 0);
		return 1;
	}
	struct hyp_sigdef saved = p->defs[i];
	memmove(&p->defs[i], &p->defs[i + 1], (p->ndefs - (unsigned)i - 1) * sizeof(p->defs[0]));
	p->ndefs--;
	char err[API_ERR_MAX];
	if (p->active && lua_api_apply(p, err, sizeof(err))) {
		memmove(&p->defs[i + 1], &p->defs[i], (p->ndefs - (unsigned)i) * sizeof(p->defs[0]));
		p->defs[i] = saved;
		p->ndefs++;
		return luaL_error(L, "hx.unsignature '%s': %s", name, err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int api_sig_name(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	lua_Number id = luaL_checknumber(L, 1);
	if (id >= 0 && id < p->ndefs)
		lua_pushstring(L, p->defs[(unsigned)id].name);
	else
		lua_pushnil(L);
	return 1;
}

/* --- bans and allowlist --------------------------------------------------------------------------- */

static int api_pend(lua_State *L, struct hyp_policy *p, int op, const struct hyp_cidr *c, __u64 ttl,
		    const char *reason)
{
	if (p->npending >= HYP_POLICY_PENDING_MAX)
		return luaL_error(L, "more than %d bans/allows at load time", HYP_POLICY_PENDING_MAX);
	if (!p->pending) {
		p->pending = calloc(HYP_POLICY_PENDING_MAX, sizeof(*p->pending));
		if (!p->pending)
			return luaL_error(L, "out of memory");
	}
	struct hyp_pending *e = &p->pending[p->npending++];
	e->op = op;
	e->cidr = *c;
	e->ttl_s = ttl;
	snprintf(e->reason, sizeof(e->reason), "%s", reason ? reason : "");
	lua_pushboolean(L, 1);
	return 1;
}

/* The daemon call behind one ban/allowlist operation: 0, -ENOENT (nothing to remove) or -errno with err set. */
static int list_op_apply(struct hyp_daemon *d, int op, const struct hyp_cidr *c, __u64 ttl, const char *reason,
			 char *err, size_t errlen)
{
	switch (op) {
	case HYP_PEND_BAN: return daemon_ban_add(d, c, ttl, reason, err, errlen);
	case HYP_PEND_UNBAN: return daemon_ban_del(d, c, err, errlen);
	case HYP_PEND_ALLOW: return daemon_allow_add(d, c, err, errlen);
	case HYP_PEND_DISALLOW: return daemon_allow_del(d, c, err, errlen);
	}
	snprintf(err, errlen, "unknown list operation %d", op);
	return -EINVAL;
}

/* What hx.ban/unban/allow/disallow share: queued while the policy loads, else applied now.
 * -> true | false (unban/disallow: there was no such entry) | nil, err */
static int api_list_op(lua_State *L, struct hyp_policy *p, int op, const struct hyp_cidr *c, __u64 ttl,
		       const char *reason)
{
	if (!p->active)
		return api_pend(L, p, op, c, ttl, reason);
	char err[API_ERR_MAX] = "";
	int rc = list_op_apply(p->d, op, c, ttl, reason, err, sizeof(err));
	if (rc == -ENOENT && (op == HYP_PEND_UNBAN || op == HYP_PEND_DISALLOW)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (rc)
		return api_fail(L, err);
	lua_pushboolean(L, 1);
	return 1;
}

/* hx.ban(cidr, ttl_s = 0 (permanent), reason = "lua") -> true | nil, err. Through daemon_ban_add so the
 * reason is recorded and persisted. */
static int api_ban(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	struct hyp_cidr c;
	api_cidr(L, 1, "hx.ban", false, &c);
	__u64 ttl = lua_isnoneornil(L, 2) ? 0 : (__u64)api_int_range(L, 2, "hx.ban", "ttl", 0, 1e10);
	const char *reason = luaL_optstring(L, 3, "lua");
	if (strlen(reason) >= HYP_REASON_MAX)
		return luaL_error(L, "hx.ban: reason longer than %d bytes", HYP_REASON_MAX - 1);
	return api_list_op(L, p, HYP_PEND_BAN, &c, ttl, reason);
}

/* hx.unban(cidr) -> true if removed, false if there was no such ban | nil, err */
static int api_unban(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	struct hyp_cidr c;
	api_cidr(L, 1, "hx.unban", false, &c);
	return api_list_op(L, p, HYP_PEND_UNBAN, &c, 0, NULL);
}

/* hx.banned(ip) -> false | true, {cidr=, ttl=seconds left (0 = permanent), reason=, hits=} */
static int api_banned(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	struct hyp_cidr c, which;
	struct hyp_ban b;
	api_addr(L, 1, "hx.banned", &c);
	int rc = ban_match(&p->d->dp, c.family, c.addr, &which, &b);
	if (rc < 0) {
		char err[API_ERR_MAX];
		snprintf(err, sizeof(err), "hx.banned: %s", strerror(-rc));
		return api_fail(L, err);
	}
	lua_pushboolean(L, rc == 1);
	if (rc != 1)
		return 1;
	char cs[64];
	cidr_format(&which, cs, sizeof(cs));
	lua_createtable(L, 0, 4);
	lua_pushstring(L, cs);
	lua_setfield(L, -2, "cidr");
	__u64 now = dp_now_ns();
	lua_pushnumber(L, b.expires_ns ? (b.expires_ns > now ? (double)(b.expires_ns - now) / 1e9 : 0) : 0);
	lua_setfield(L, -2, "ttl");
	lua_pushboolean(L, b.expires_ns == 0);
	lua_setfield(L, -2, "permanent");
	const char *reason = daemon_ban_reason(p->d, &which);
	if (reason) {
		lua_pushstring(L, reason);
		lua_setfield(L, -2, "reason");
	}
	lua_pushnumber(L, b.hits);
	lua_setfield(L, -2, "hits");
	return 2;
}

/* hx.allow(cidr) -> true | nil, err; hx.disallow(cidr) -> true if removed, false if not listed | nil, err */
static int api_allow_op(lua_State *L, bool add)
{
	struct hyp_policy *p = api_policy(L);
	struct hyp_cidr c;
	api_cidr(L, 1, add ? "hx.allow" : "hx.disallow", false, &c);
	return api_list_op(L, p, add ? HYP_PEND_ALLOW : HYP_PEND_DISALLOW, &c, 0, NULL);
}

static int api_allow(lua_State *L) { return api_allow_op(L, true); }
static int api_disallow(lua_State *L) { return api_allow_op(L, false); }

int lua_api_pending_flush(struct hyp_policy *p)
{
	int failed = 0;
	for (unsigned i = 0; i < p->npending; i++) {
		struct hyp_pending *e = &p->pending[i];
		char err[API_ERR_MAX] = "";
		int rc = list_op_apply(p->d, e->op, &e->cidr, e->ttl_s, e->reason, err, sizeof(err));
		if (rc && rc != -ENOENT) {
			hyp_log(LOG_WARNING, "policy %s: %s", p->path, err);
			failed++;
		}
	}
	free(p->pending);
	p->pending = NULL;
	p->npending = 0;
	return failed;
}

/* --- flows ---------------------------------------------------------------------------------------- */

static void push_flow(lua_State *L, const struct hyp_flow_key *k, const struct hyp_flow *f, bool est)
{
	char a[64], b[64];
	lua_createtable(L, 0, 14);
	/* report the flow as the originator opened it */
	const __u8 *sa = f->orig ? k->addr_b : k->addr_a, *da = f->orig ? k->addr_a : k->addr_b;
	__u16 sp = f->orig ? k->port_b : k->port_a, dp = f->orig ? k->port_a : k->port_b;
	addr_format(k->family, sa, a, sizeof(a));
	addr_format(k->family, da, b, sizeof(b));
	lua_pushstring(L, a);
	lua_setfield(L, -2, "src");
	lua_pushstring(L, b);
	lua_setfield(L, -2, "dst");
	lua_pushnumber(L, ntohs(sp));
	lua_setfield(L, -2, "sport");
	lua_pushnumber(L, ntohs(dp));
	lua_setfield(L, -2, "dport");
	lua_pushnumber(L, k->proto);
	lua_setfield(L, -2, "proto");
	const char *st = ct_state_name(f->state);
	lua_pushstring(L, st ? st : "unknown");
	lua_setfield(L, -2, "state");
	lua_pushnumber(L, (double)(f->packets[0] + f->packets[1]));
	lua_setfield(L, -2, "packets");
	lua_pushnumber(L, (double)(f->bytes[0] + f->bytes[1]));
	lua_setfield(L, -2, "bytes");
	lua_pushnumber(L, (double)f->created_ns / 1e9);
	lua_setfield(L, -2, "created");
	lua_pushnumber(L, (double)f->last_seen_ns / 1e9);
	lua_setfield(L, -2, "last_seen");
	lua_pushboolean(L, est);
	lua_setfield(L, -2, "established");
	lua_pushboolean(L, f->flags & HYP_FF_INBOUND);
	lua_setfield(L, -2, "inbound");
	lua_pushboolean(L, f->flags & HYP_FF_PICKUP);
	lua_setfield(L, -2, "pickup");
}

static void flow_key_args(lua_State *L, const char *fn, struct hyp_flow_key *k)
{
	struct hyp_cidr s, d;
	api_addr(L, 1, fn, &s);
	__u16 sport = (__u16)api_int_range(L, 2, fn, "sport", 0, 65535);
	api_addr(L, 3, fn, &d);
	__u16 dport = (__u16)api_int_range(L, 4, fn, "dport", 0, 65535);
	int proto = api_proto(L, 5, fn);
	if (s.family != d.family)
		luaL_error(L, "%s: src and dst are of different address families", fn);
	int dir;
	flow_key_make(k, s.family, (__u8)proto, s.addr, htons(sport), d.addr, htons(dport), &dir);
}

static int flow_delete_common(lua_State *L, struct hyp_policy *p, const struct hyp_flow_key *k)
{
	int rc = flow_delete(&p->d->dp, k);
	if (rc == -ENOENT) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (rc)
		return api_fail(L, strerror(-rc));
	lua_pushboolean(L, 1);
	return 1;
}

/* hx.flow(src, sport, dst, dport, proto[, {delete=true}]) -> table | nil (either direction's view). */
static int api_flow(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	struct hyp_flow_key k;
	flow_key_args(L, "hx.flow", &k);
	if (lua_istable(L, 6)) {
		lua_getfield(L, 6, "delete");
		bool del = lua_toboolean(L, -1);
		lua_pop(L, 1);
		if (del)
			return flow_delete_common(L, p, &k);
	}
	struct hyp_flow f;
	int rc = flow_lookup(&p->d->dp, &k, &f);
	if (rc == -ENOENT) {
		lua_pushnil(L);
		return 1;
	}
	if (rc)
		return api_fail(L, strerror(-rc));
	push_flow(L, &k, &f, f.flags & HYP_FF_ESTABLISHED_MAP);
	return 1;
}

/* hx.flow_delete(src, sport, dst, dport, proto) -> true | false (no such flow) */
static int api_flow_delete(lua_State *L)
{
	struct hyp_flow_key k;
	flow_key_args(L, "hx.flow_delete", &k);
	return flow_delete_common(L, api_policy(L), &k);
}

struct flow_snap {
	struct { struct hyp_flow_key k; struct hyp_flow f; bool est; } *v;
	size_t n, cap;
	int err;
};

/* Copy out first: raising a Lua error from inside flow_foreach's callback would skip maps.c's cleanup. */
static int flow_snap_cb(const struct hyp_flow_key *k, const struct hyp_flow *f, bool est, void *arg)
{
	struct flow_snap *s = arg;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		void *nv = realloc(s->v, cap * sizeof(*s->v));
		if (!nv) {
			s->err = -ENOMEM;
			return 1;
		}
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n].k = *k;
	s->v[s->n].f = *f;
	s->v[s->n].est = est;
	s->n++;
	return 0;
}

static int api_flows_iter(lua_State *L)
{
	int i = (int)lua_tointeger(L, lua_upvalueindex(2)) + 1;
	lua_pushinteger(L, i);
	lua_replace(L, lua_upvalueindex(2));
	lua_rawgeti(L, lua_upvalueindex(1), i);
	return 1;
}

/* lua_cpcall body: leaves the table of flows in the registry slot "hyperion.flows". */
static int flows_build(lua_State *L)
{
	const struct flow_snap *s = lua_touserdata(L, 1);
	lua_createtable(L, (int)s->n, 0);
	for (size_t i = 0; i < s->n; i++) {
		push_flow(L, &s->v[i].k, &s->v[i].f, s->v[i].est);
		lua_rawseti(L, -2, (int)i + 1);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, "hyperion.flows");
	return 0;
}

/* for f in hx.flows() do ... end: a snapshot of both flow tables taken at the call. */
static int api_flows(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	struct flow_snap s = { 0 };
	int rc = flow_foreach(&p->d->dp, flow_snap_cb, &s);
	if (rc < 0 || s.err) {
		free(s.v);
		return luaL_error(L, "hx.flows: %s", strerror(-(s.err ? s.err : rc)));
	}
	/* built in a protected call so that running out of Lua memory does not leak s.v */
	int rc2 = lua_cpcall(L, flows_build, &s);
	free(s.v);
	if (rc2)
		return lua_error(L);
	lua_getfield(L, LUA_REGISTRYINDEX, "hyperion.flows");
	lua_pushnil(L);
	lua_setfield(L, LUA_REGISTRYINDEX, "hyperion.flows");
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, api_flows_iter, 2);
	return 1;
}

/* --- stats, log, clock ---------------------------------------------------------------------------- */

/* hx.stats() -> { reasons = { pass_flow = {packets=, bytes=}, ... }, monitor = {...}, counters = {...},
 * runtime = { hook_calls=, ... } } */
static int api_stats(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	struct hyp_totals tot, *t = &tot;   /* on the stack: a Lua error below must not leak it */
	int rc = stats_read(&p->d->dp, t);
	if (rc)
		return api_fail(L, strerror(-rc));
	lua_createtable(L, 0, 4);
	for (int m = 0; m < 2; m++) {
		lua_createtable(L, 0, HYP_R_MAX);
		for (unsigned r = 0; r < HYP_R_MAX; r++) {
			const struct hyp_stat *s = &t->reason[(m ? HYP_STATS_MONITOR : 0) + r];
			lua_createtable(L, 0, 2);
			lua_pushnumber(L, (double)s->packets);
			lua_setfield(L, -2, "packets");
			lua_pushnumber(L, (double)s->bytes);
			lua_setfield(L, -2, "bytes");
			lua_setfield(L, -2, reason_name(r));
		}
		lua_setfield(L, -2, m ? "monitor" : "reasons");
	}
	lua_createtable(L, 0, HYP_C_MAX);
	for (unsigned c = 0; c < HYP_C_MAX; c++) {
		if (!counter_name(c))
			continue;
		lua_pushnumber(L, (double)t->counter[c]);
		lua_setfield(L, -2, counter_name(c));
	}
	lua_setfield(L, -2, "counters");
	const struct hyp_rt_stats *st = &p->d->st;
	lua_createtable(L, 0, 8);
	const struct { const char *n; __u64 v; } rt[] = {
		{ "events_read", st->events_read }, { "hook_calls", st->hook_calls },
		{ "hook_errors", st->hook_errors }, { "hook_timeouts", st->hook_timeouts },
		{ "hook_oom", st->hook_oom }, { "reloads", st->reloads }, { "bans_added", st->bans_added },
		{ "bans_expired", st->bans_expired },
	};
	for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
		lua_pushnumber(L, (double)rt[i].v);
		lua_setfield(L, -2, rt[i].n);
	}
	lua_pushnumber(L, (double)lua_vm_mem_used(p->vm));
	lua_setfield(L, -2, "lua_memory");
	lua_setfield(L, -2, "runtime");
	return 1;
}

/* hx.log(level, msg...): level "error" | "warning" | "info" | "debug". */
static int api_log(lua_State *L)
{
	static const char *const levels[] = { "error", "warning", "info", "debug", "err", "warn", NULL };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_ERR, LOG_WARNING };
	int lv = api_enum(L, 1, "hx.log", "level", levels);
	int n = lua_gettop(L);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (int i = 2; i <= n; i++) {
		lua_getglobal(L, "tostring");
		lua_pushvalue(L, i);
		lua_call(L, 1, 1);
		if (i > 2)
			luaL_addchar(&b, ' ');
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	lua_Debug ar;
	if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar))
		hyp_log(prio[lv], "policy %s:%d: %s", ar.short_src, ar.currentline, lua_tostring(L, -1));
	else
		hyp_log(prio[lv], "policy: %s", lua_tostring(L, -1));
	return 0;
}

/* hx.now(): the datapath's clock in seconds (CLOCK_MONOTONIC + clock_offset), the clock of ev.ts. */
static int api_now(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	lua_pushnumber(L, (double)(mono_now_ns() + p->cfg.clock_offset_ns) / 1e9);
	return 1;
}

/* --- per-source rate limit override --------------------------------------------------------------- */

/* hx.ratelimit(src, {syn=N, pps=N}) -> true | nil, err. 0 restores the config's rate. The entry lives in
 * the LRU map "rl": under pressure the kernel may evict it, and the override with it. */
static int api_ratelimit(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	struct hyp_cidr c;
	api_addr(L, 1, "hx.ratelimit", &c);
	luaL_checktype(L, 2, LUA_TTABLE);
	if (!p->active)
		return luaL_error(L, "hx.ratelimit: call it from a hook or timer (the policy is still loading)");
	long syn = -1, pps = -1;
	lua_pushnil(L);
	while (lua_next(L, 2)) {
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
		if (!strcmp(k, "syn"))
			syn = (long)api_int_range(L, -1, "hx.ratelimit", "syn", 0, UINT32_MAX);
		else if (!strcmp(k, "pps"))
			pps = (long)api_int_range(L, -1, "hx.ratelimit", "pps", 0, UINT32_MAX);
		else
			luaL_error(L, "hx.ratelimit: unknown key '%s'", k);
		lua_pop(L, 1);
	}
	struct hyp_src_key key = { .family = c.family };
	size_t alen = c.family == HYP_AF_INET ? 4 : 16;
	memcpy(key.addr, c.addr, alen);
	if (c.family == HYP_AF_INET6) {
		unsigned plen = p->cfg.rl_v6_prefix ? p->cfg.rl_v6_prefix : 64;
		for (unsigned bit = plen; bit < 128; bit++)
			key.addr[bit / 8] &= (__u8)~(0x80 >> (bit % 8));
	}
	struct hyp_rl v = { 0 };
	int fd = p->d->dp.fd_rl;
	if (bpf_map_lookup_elem(fd, &key, &v))
		memset(&v, 0, sizeof(v));
	if (syn >= 0)
		v.syn_rate = (__u32)syn;
	if (pps >= 0)
		v.pps_rate = (__u32)pps;
	if (bpf_map_update_elem(fd, &key, &v, BPF_ANY)) {
		char err[API_ERR_MAX];
		snprintf(err, sizeof(err), "hx.ratelimit: %s", strerror(errno));
		return api_fail(L, err);
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* --- timers --------------------------------------------------------------------------------------- */

static void timer_free(struct hyp_policy *p, struct hyp_timer *t)
{
	struct hyp_timer **pp = &p->timers;
	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (*pp)
		*pp = t->next;
	if (t->ev)
		event_free(t->ev);
	luaL_unref(lua_vm_state(p->vm), LUA_REGISTRYINDEX, t->ref);
	free(t);
}

static struct timeval timer_tv(double s)
{
	return (struct timeval){ .tv_sec = (time_t)s, .tv_usec = (suseconds_t)((s - floor(s)) * 1e6) };
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hyp_timer *t = arg;
	struct hyp_policy *p = t->p;
	lua_State *L = lua_vm_state(p->vm);
	(void)fd; (void)what;
	int id = t->id;
	bool repeat = t->repeat;
	lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
	lua_vm_call(p->vm, 0, 0, repeat ? "hx.every" : "hx.after");
	/* the callback may have cancelled its own timer: look it up again by id */
	struct hyp_timer *cur = p->timers;
	while (cur && cur->id != id)
		cur = cur->next;
	if (cur && !repeat)
		timer_free(p, cur);
}

static int timer_arm(struct hyp_policy *p, struct hyp_timer *t)
{
	if (!p->d->base)
		return 0;       /* no loop (unit tests): timers are recorded, never fire */
	if (!t->ev) {
		t->ev = event_new(p->d->base, -1, t->repeat ? EV_PERSIST : 0, timer_cb, t);
		if (!t->ev)
			return -ENOMEM;
	}
	struct timeval tv = timer_tv(t->period_s);
	return event_add(t->ev, &tv) ? -EIO : 0;
}

static int api_timer(lua_State *L, bool repeat)
{
	struct hyp_policy *p = api_policy(L);
	const char *fn = repeat ? "hx.every" : "hx.after";
	double s = api_num_range(L, 1, fn, "seconds", HYP_TIMER_MIN_S, 1e9);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	struct hyp_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return luaL_error(L, "%s: out of memory", fn);
	t->p = p;
	t->repeat = repeat;
	t->period_s = s;
	t->id = ++p->next_timer_id;
	lua_pushvalue(L, 2);
	t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	t->next = p->timers;
	p->timers = t;
	if (p->active && timer_arm(p, t)) {
		timer_free(p, t);
		return luaL_error(L, "%s: cannot add a timer to the event loop", fn);
	}
	lua_pushinteger(L, t->id);
	return 1;
}

static int api_every(lua_State *L) { return api_timer(L, true); }
static int api_after(lua_State *L) { return api_timer(L, false); }

/* hx.cancel(id) -> true if a timer was cancelled. */
static int api_cancel(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	int id = (int)luaL_checkinteger(L, 1);
	struct hyp_timer *t = p->timers;
	while (t && t->id != id)
		t = t->next;
	if (t)
		timer_free(p, t);
	lua_pushboolean(L, t != NULL);
	return 1;
}

int lua_api_timers_start(struct hyp_policy *p)
{
	for (struct hyp_timer *t = p->timers; t; t = t->next) {
		int rc = timer_arm(p, t);
		if (rc)
			return rc;
	}
	return 0;
}

void lua_api_timers_stop(struct hyp_policy *p)
{
	for (struct hyp_timer *t = p->timers; t; t = t->next)
		if (t->ev)
			event_del(t->ev);
}

void lua_api_timers_free(struct hyp_policy *p)
{
	while (p->timers)
		timer_free(p, p->timers);
}

/* --- hooks into hyperion.lua ---------------------------------------------------------------------- */

/* core._register{dispatch=fn, store_dump=fn, store_load=fn}: the Lua side of dispatch and hx.store. */
static int api_register(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	struct { const char *k; int *ref; } f[] = {
		{ "dispatch", &p->ref_dispatch }, { "store_dump", &p->ref_store_dump }, { "store_load", &p->ref_store_load },
	};
	for (size_t i = 0; i < 3; i++) {
		lua_getfield(L, 1, f[i].k);
		luaL_checktype(L, -1, LUA_TFUNCTION);
		luaL_unref(L, LUA_REGISTRYINDEX, *f[i].ref);
		*f[i].ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	return 0;
}

/* core._set_kinds(mask): which event kinds have hooks, so C skips batches nobody listens to. */
static int api_set_kinds(lua_State *L)
{
	api_policy(L)->kind_mask = (__u32)luaL_checknumber(L, 1);
	return 0;
}

/* core._hook_error(kind, msg): a hook raised inside the dispatcher's per-hook xpcall. */
static int api_hook_error(lua_State *L)
{
	struct hyp_policy *p = api_policy(L);
	const char *kind = luaL_checkstring(L, 1);
	const char *msg = luaL_checkstring(L, 2);
	if (lua_vm_expired())
		return 0;       /* the boundary counts the timeout */
	struct hyp_rt_stats *st = lua_vm_stats(p->vm);
	if (strstr(msg, "not enough memory"))
		st->hook_oom++;
	else
		st->hook_errors++;
	hyp_log(LOG_ERR, "lua: hook %s: %s", kind, msg);
	return 0;
}

static void push_names(lua_State *L, const char *field, const char *(*fn)(unsigned), unsigned from, unsigned n)
{
	lua_createtable(L, (int)n, 0);
	for (unsigned i = from; i < n; i++) {
		const char *s = fn(i);
		if (!s)
			continue;
		lua_pushstring(L, s);
		lua_rawseti(L, -2, (int)i);
	}
	lua_setfield(L, -2, field);
}

/* Every hx.* C function is entered through here (upvalues: the policy, the function, its name), which
 * names it for the watchdog's stuck report while it runs (lua_vm_api_swap). */
static int api_enter(lua_State *L)
{
	lua_CFunction f = (lua_CFunction)(uintptr_t)lua_touserdata(L, lua_upvalueindex(2));
	const char *prev = lua_vm_api_swap(lua_touserdata(L, lua_upvalueindex(3)));
	int n = f(L);

	lua_vm_api_swap(prev);
	return n;
}

static int api_core_open(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "config", api_config }, { "signature", api_signature }, { "unsignature", api_unsignature },
		{ "sig_name", api_sig_name }, { "ban", api_ban }, { "unban", api_unban }, { "banned", api_banned },
		{ "allow", api_allow }, { "disallow", api_disallow }, { "flow", api_flow },
		{ "flow_delete", api_flow_delete }, { "flows", api_flows }, { "stats", api_stats }, { "log", api_log },
		{ "now", api_now }, { "ratelimit", api_ratelimit }, { "every", api_every }, { "after", api_after },
		{ "cancel", api_cancel }, { "_register", api_register }, { "_set_kinds", api_set_kinds },
		{ "_hook_error", api_hook_error }, { NULL, NULL },
	};
	void *p = lua_touserdata(L, lua_upvalueindex(1));
	lua_createtable(L, 0, 32);
	for (const luaL_Reg *r = fns; r->name; r++) {
		lua_pushlightuserdata(L, p);
		lua_pushlightuserdata(L, (void *)(uintptr_t)r->func);
		lua_pushlightuserdata(L, (void *)(uintptr_t)r->name);
		lua_pushcclosure(L, api_enter, 3);
		lua_setfield(L, -2, r->name);
	}
	lua_getfield(L, LUA_REGISTRYINDEX, HYP_LUA_RAW_XPCALL);
	lua_setfield(L, -2, "_xpcall");
	push_names(L, "kind_names", event_kind_name, 1, HYP_EV_KIND_MAX);
	push_names(L, "reason_names", reason_name, 0, HYP_R_MAX);
	push_names(L, "state_names", ct_state_name, 0, HYP_CT_STATE_MAX);
	return 1;
}

void lua_api_open(struct hyp_policy *p)
{
	lua_State *L = lua_vm_state(p->vm);
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	lua_pushlightuserdata(L, p);
	lua_pushcclosure(L, api_core_open, 1);
	lua_setfield(L, -2, "hyperion.core");
	lua_pop(L, 2);
}

/* --- compile + apply ------------------------------------------------------------------------------ */

int lua_api_apply(struct hyp_policy *p, char *err, size_t errlen)
{
	struct hyp_sigset *set = calloc(1, sizeof(*set));
	if (!set) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = sigset_compile(set, p->defs, p->ndefs, err, errlen);
	if (rc) {
		sigset_free(set);
		free(set);
		return rc;
	}
	if (p->active) {
		rc = dp_config_apply(&p->d->dp, &p->cfg, set);
		if (rc) {
			snprintf(err, errlen, "datapath update failed: %s", strerror(-rc));
			sigset_free(set);
			free(set);
			return rc;
		}
	}
	if (p->sigset) {
		sigset_free(p->sigset);
		free(p->sigset);
	}
	p->sigset = set;
	return 0;
}
