-- The `hyperion` module policies require: the hx API, event dispatch through FFI, and hx.store.
--
--   local hx = require("hyperion")
--   hx.config{ mode = "enforce", allow_tcp = {22, 80} }
--   hx.signature{ name = "root-probe", pattern = "root", action = "drop", proto = "tcp", ports = {80} }
--   hx.on("match", function(ev) hx.ban(ev.src, 600, "signature " .. ev.sig) end)
--
-- Inside hyperiond the C functions come from "hyperion.core" (runtime/lua_api.c). Under a plain luajit
-- (tests of the helper modules) a small in-Lua stand-in records calls instead: hx._stub is true then.
--
-- Events: the daemon hands a whole batch to dispatch() as one pointer + count; each hook receives the
-- same reusable proxy object whose fields are computed on access from the struct hyp_event. A hook must
-- not keep `ev` after it returns (the proxy then points at the next event, and after the batch any access
-- raises); keep ev:copy(), a plain table, instead.
local ffi = require("ffi")
local bit = require("bit")
local abi = require("hyperion.abi")

local KIND_NAMES = { "match", "block", "invalid", "ratelimit", "flow_new", "flow_end", "policy" }
local STATE_NAMES = { [0] = "none", "syn_sent", "syn_recv", "established", "fin_wait", "close_wait",
	"time_wait", "closed", "udp", "udp_replied", "icmp" }
local REASON_NAMES = { [0] = "pass_flow", "pass_new", "pass_allow", "pass_nonip", "pass_other", "pass_frag",
	"pass_icmp", "pass_alert", "pass_egress", "drop_banned", "drop_malformed_l2", "drop_vlan_depth",
	"drop_malformed_l3", "drop_ext_chain", "drop_malformed_l4", "drop_frag", "drop_invalid", "drop_port",
	"drop_rate_syn", "drop_rate_pps", "drop_sig", "aborted", "tx_syncookie" }
local VERDICT_NAMES = { [0] = "pass", "drop", "monitor", "aborted", "tx" }
local ACTION_NAMES = { [0] = "alert", "drop", "ban" }
local PROTO_NAMES = { [1] = "icmp", [6] = "tcp", [17] = "udp", [58] = "icmpv6" }
local EV_MATCH = 1
local SIG_NONE = 0xffffffff

-- In-Lua stand-in for runtime/lua_api.c, so modules built on hx run under a plain luajit.
local function stub_core()
	local c = { cfg = {}, sigs = {}, bans = {}, allows = {}, timers = {}, rl = {}, errors = {}, next_id = 0 }
	c.kind_names, c.state_names, c.reason_names = KIND_NAMES, STATE_NAMES, REASON_NAMES
	function c.config(t)
		if type(t) ~= "table" then error("hx.config: table expected", 2) end
		for k, v in pairs(t) do c.cfg[k] = v end
	end
	function c.signature(t)
		if type(t) ~= "table" or type(t.name) ~= "string" or type(t.pattern) ~= "string" then
			error("hx.signature: name and pattern are required", 2)
		end
		for _, s in ipairs(c.sigs) do
			if s.name == t.name then error("hx.signature: duplicate signature name '" .. t.name .. "'", 2) end
		end
		c.sigs[#c.sigs + 1] = t
	end
	function c.unsignature(name)
		for i, s in ipairs(c.sigs) do
			if s.name == name then table.remove(c.sigs, i) return true end
		end
		return false
	end
	function c.sig_name(id) return c.sigs[id + 1] and c.sigs[id + 1].name end
	function c.ban(cidr, ttl, reason)
		c.bans[cidr] = { ttl = ttl or 0, reason = reason or "lua" }
		return true
	end
	function c.unban(cidr)
		local had = c.bans[cidr] ~= nil
		c.bans[cidr] = nil
		return had
	end
	function c.banned(ip)
		local b = c.bans[ip]
		if not b then return false end
		return true, { cidr = ip, ttl = b.ttl, permanent = b.ttl == 0, reason = b.reason, hits = 0 }
	end
	function c.allow(cidr) c.allows[cidr] = true return true end
	function c.disallow(cidr)
		local had = c.allows[cidr] ~= nil
		c.allows[cidr] = nil
		return had
	end
	function c.flow() return nil end
	function c.flow_delete() return false end
	function c.flows() return function() return nil end end
	function c.stats() return { reasons = {}, monitor = {}, counters = {}, runtime = {} } end
	function c.log(level, ...)
		local parts = {}
		for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
		io.stderr:write("[", tostring(level), "] ", table.concat(parts, " "), "\n")
	end
	function c.now() return os.time() end
	function c.ratelimit(src, t) c.rl[src] = t return true end
	local function timer(sec, fn, rep)
		if type(sec) ~= "number" or sec <= 0 then error("hx.every/after: seconds must be > 0", 3) end
		if type(fn) ~= "function" then error("hx.every/after: function expected", 3) end
		c.next_id = c.next_id + 1
		c.timers[c.next_id] = { sec = sec, fn = fn, rep = rep }
		return c.next_id
	end
	function c.every(sec, fn) return timer(sec, fn, true) end
	function c.after(sec, fn) return timer(sec, fn, false) end
	function c.cancel(id)
		local had = c.timers[id] ~= nil
		c.timers[id] = nil
		return had
	end
	function c._register() end
	function c._set_kinds(mask) c.kind_mask = mask end
	function c._hook_error(kind, msg)
		c.errors[#c.errors + 1] = msg
		io.stderr:write("hook ", kind, ": ", msg, "\n")
	end
	return c
end

local have_core, core = pcall(require, "hyperion.core")
local stub = not have_core
if stub then core = stub_core() end
KIND_NAMES = core.kind_names or KIND_NAMES
STATE_NAMES = core.state_names or STATE_NAMES
REASON_NAMES = core.reason_names or REASON_NAMES
local KIND_BY_NAME = {}
for k, name in pairs(KIND_NAMES) do KIND_BY_NAME[name] = k end

local hx = {
	_stub = stub,
	_core = core,
	config = core.config, signature = core.signature, unsignature = core.unsignature,
	ban = core.ban, unban = core.unban, banned = core.banned, allow = core.allow, disallow = core.disallow,
	flow = core.flow, flow_delete = core.flow_delete, flows = core.flows, stats = core.stats,
	every = core.every, after = core.after, cancel = core.cancel, log = core.log, now = core.now,
	ratelimit = core.ratelimit,
	store = {},         -- survives reloads (moved to the new state) and restarts (snapshot): plain data only
}

-- --- hooks ---------------------------------------------------------------------------------------

local hooks = {}        -- kind number -> list of functions

-- hx.on(kind, fn): fn(ev) for every event of that kind; several hooks per kind run in order.
function hx.on(kind, fn)
	local k = KIND_BY_NAME[kind]
	if not k then
		local names = {}
		for i = 1, #KIND_NAMES do names[i] = KIND_NAMES[i] end
		error(("hx.on: unknown event kind '%s' (one of: %s)"):format(tostring(kind), table.concat(names, ", ")), 2)
	end
	if type(fn) ~= "function" then error("hx.on: function expected for kind '" .. kind .. "'", 2) end
	local list = hooks[k]
	if not list then
		list = {}
		hooks[k] = list
	end
	list[#list + 1] = fn
	local mask = 0
	for kk in pairs(hooks) do mask = bit.bor(mask, bit.lshift(1, kk)) end
	core._set_kinds(mask)
end

-- --- the event proxy -----------------------------------------------------------------------------

local cur_base, cur_i   -- the batch and the index the proxy currently shows

local function ntohs(x) return bit.bor(bit.rshift(x, 8), bit.lshift(bit.band(x, 0xff), 8)) end

pcall(ffi.cdef, "const char *inet_ntop(int af, const void *src, char *dst, unsigned int size);")
local ntop_buf = ffi.new("char[64]")
local AF_INET6 = 10

local function fmt_addr(family, a)
	if family == 4 then return ("%d.%d.%d.%d"):format(a[0], a[1], a[2], a[3]) end
	if ffi.C.inet_ntop(AF_INET6, a, ntop_buf, 64) == nil then return "?" end
	return ffi.string(ntop_buf)
end

local getters = {
	kind = function(b, i) return KIND_NAMES[b[i].kind] end,
	src = function(b, i) return fmt_addr(b[i].family, b[i].saddr) end,
	dst = function(b, i) return fmt_addr(b[i].family, b[i].daddr) end,
	sport = function(b, i) return ntohs(b[i].sport) end,
	dport = function(b, i) return ntohs(b[i].dport) end,
	proto = function(b, i) return b[i].proto end,
	proto_name = function(b, i) return PROTO_NAMES[b[i].proto] or tostring(b[i].proto) end,
	family = function(b, i) return b[i].family end,
	sig = function(b, i)
		local e = b[i]
		if e.kind ~= EV_MATCH or e.sig == SIG_NONE then return nil end
		return core.sig_name(e.sig)
	end,
	sig_id = function(b, i)
		local s = b[i].sig
		if s == SIG_NONE then return nil end
		return tonumber(s)
	end,
	action = function(b, i)
		if b[i].kind ~= EV_MATCH then return nil end
		return ACTION_NAMES[b[i].action]
	end,
	verdict = function(b, i) return VERDICT_NAMES[b[i].verdict] end,
	reason = function(b, i) return REASON_NAMES[b[i].reason] end,
	state = function(b, i) return STATE_NAMES[b[i].state] end,
	dir = function(b, i) return b[i].dir == 0 and "in" or "out" end,
	ifindex = function(b, i) return tonumber(b[i].ifindex) end,
	suppressed = function(b, i) return tonumber(b[i].suppressed) end,
	pkt_len = function(b, i) return tonumber(b[i].pkt_len) end,
	packets = function(b, i) return tonumber(b[i].packets) end,
	bytes = function(b, i) return tonumber(b[i].bytes) end,
	ts = function(b, i) return tonumber(b[i].ts_ns) / 1e9 end,
	payload = function(b, i)
		local e = b[i]
		local n = e.payload_len
		if n > abi.EV_PAYLOAD then n = abi.EV_PAYLOAD end
		return ffi.string(e.payload, n)
	end,
}

local methods = {}

-- ev:copy(): the event as a plain table, safe to keep after the hook returns.
function methods.copy()
	local t = {}
	for k, g in pairs(getters) do t[k] = g(cur_base, cur_i) end
	return t
end

local proxy = setmetatable({}, {
	__index = function(_, k)
		local g = getters[k]
		if g then
			if cur_base == nil then
				error("event used after its hook returned; keep ev:copy() instead", 2)
			end
			return g(cur_base, cur_i)
		end
		return methods[k]
	end,
	__newindex = function(_, k)
		error("event fields are read-only (" .. tostring(k) .. "); use ev:copy() for a writable table", 2)
	end,
	__tostring = function()
		if cur_base == nil then return "event(expired)" end
		return ("event(%s %s:%d -> %s:%d)"):format(getters.kind(cur_base, cur_i), getters.src(cur_base, cur_i),
			getters.sport(cur_base, cur_i), getters.dst(cur_base, cur_i), getters.dport(cur_base, cur_i))
	end,
})

local traceback = debug.traceback
-- The daemon wraps the scripts' xpcall (see runtime/lua_vm.c) in a C function, which keeps the calling
-- loop out of the JIT (30x slower here). The dispatcher's handler is C (debug.traceback), which the wrapper
-- exists to guard against, so it uses the original.
local xpcall = core._xpcall or debug.getregistry()["hyperion.xpcall"] or xpcall

-- dispatch(ptr, n): ptr is a lightuserdata (from C) or cdata pointing at n struct hyp_event. One failing
-- hook is logged and counted; the other hooks and events still run.
local function dispatch(ptr, n)
	local b = ffi.cast(abi.event_ptr, ptr)
	for i = 0, n - 1 do
		local list = hooks[b[i].kind]
		if list then
			cur_base, cur_i = b, i
			for j = 1, #list do
				local ok, err = xpcall(list[j], traceback, proxy)
				if not ok then
					-- LuaJIT has no emergency GC: free what the failed hook built before the next one runs
					if err == "not enough memory" then collectgarbage() end
					core._hook_error(KIND_NAMES[b[i].kind] or "?", tostring(err))
				end
			end
		end
	end
	cur_base, cur_i = nil, nil
end
hx._dispatch = dispatch

-- --- hx.store serialisation ----------------------------------------------------------------------

local function warn(msg)
	if stub then io.stderr:write("hx.store: ", msg, "\n") else core.log("warning", "hx.store: " .. msg) end
end

local function ser(v, out, seen, path)
	local t = type(v)
	if t == "number" then
		if v ~= v then out[#out + 1] = "0/0"
		elseif v == math.huge then out[#out + 1] = "1/0"
		elseif v == -math.huge then out[#out + 1] = "-1/0"
		else out[#out + 1] = ("%.17g"):format(v) end
	elseif t == "string" then
		out[#out + 1] = ("%q"):format(v)
	elseif t == "boolean" then
		out[#out + 1] = tostring(v)
	elseif t == "table" then
		if seen[v] then
			warn(path .. ": cycle, saved as nil")
			out[#out + 1] = "nil"
			return
		end
		seen[v] = true
		out[#out + 1] = "{"
		for k, val in pairs(v) do
			local kt, vt = type(k), type(val)
			local kpath = path .. "." .. tostring(k)
			if kt ~= "string" and kt ~= "number" and kt ~= "boolean" then
				warn(kpath .. ": " .. kt .. " key skipped")
			elseif kt == "number" and (k ~= k) then
				warn(kpath .. ": NaN key skipped")
			elseif vt ~= "string" and vt ~= "number" and vt ~= "boolean" and vt ~= "table" then
				warn(kpath .. ": " .. vt .. " value skipped (only plain data is kept)")
			else
				out[#out + 1] = "["
				ser(k, out, seen, path)
				out[#out + 1] = "]="
				ser(val, out, seen, kpath)
				out[#out + 1] = ","
			end
		end
		out[#out + 1] = "}"
		seen[v] = nil
	else
		out[#out + 1] = "nil"
	end
end

-- Text form of hx.store (a Lua table constructor, read back without any environment).
function hx._store_dump()
	local out = {}
	ser(hx.store, out, {}, "hx.store")
	return table.concat(out)
end

-- Merge a dump into hx.store in place (the table's identity is kept: modules may hold a reference).
function hx._store_load(text)
	local f, err = loadstring("return " .. text, "=hx.store")
	if not f then error("hx.store: unreadable snapshot: " .. err, 0) end
	setfenv(f, {})
	local ok, t = pcall(f)
	if not ok or type(t) ~= "table" then error("hx.store: unreadable snapshot: " .. tostring(t), 0) end
	for k, v in pairs(t) do hx.store[k] = v end
end

core._register{ dispatch = dispatch, store_dump = hx._store_dump, store_load = hx._store_load }

return hx
