-- hyperion.lua under a plain luajit (stub core): event proxy fields through FFI, hook kinds, hx.store text.
local ffi = require("ffi")
local hx = require("hyperion")

local passed, failed = 0, 0
local function check(cond, what)
	if cond then passed = passed + 1; print("ok - " .. what)
	else failed = failed + 1; print("not ok - " .. what) end
end
local function eq(a, b, what)
	check(a == b, what .. (a == b and "" or (" (got " .. tostring(a) .. ", want " .. tostring(b) .. ")")))
end

check(hx._stub, "stub core in a plain luajit")

-- ABI: the header text was ffi.cdef'd
local abi = require("hyperion.abi")
eq(ffi.sizeof("struct hyp_event"), 152, "struct hyp_event size from the header")
eq(ffi.sizeof("struct hyp_config"), 16576, "struct hyp_config size (matches gcc)")
check(require("hyperion.abi") == abi, "second require does not cdef again")
eq(ffi.C.HYP_SIG_MAX, 256, "enum constants visible through ffi.C")

local function htons(x) return bit.bor(bit.rshift(x, 8), bit.lshift(bit.band(x, 0xff), 8)) end

local evs = ffi.new("struct hyp_event[3]")
-- 0: a match, IPv4
evs[0].ts_ns = 5500000000ULL
evs[0].saddr[0], evs[0].saddr[1], evs[0].saddr[2], evs[0].saddr[3] = 192, 0, 2, 7
evs[0].daddr[0], evs[0].daddr[1], evs[0].daddr[2], evs[0].daddr[3] = 198, 51, 100, 1
evs[0].sport, evs[0].dport = htons(40000), htons(80)
evs[0].kind, evs[0].proto, evs[0].family = 1, 6, 4
evs[0].verdict, evs[0].reason, evs[0].state, evs[0].action = 1, 20, 3, 1
evs[0].sig = 1
evs[0].suppressed = 3
evs[0].payload_len = 9
ffi.copy(evs[0].payload, "GET /root", 9)
-- 1: a flow_end, IPv6
evs[1].kind, evs[1].proto, evs[1].family, evs[1].sig = 6, 17, 6, 0xffffffff
ffi.copy(evs[1].saddr, "\32\1\13\184" .. ("\0"):rep(11) .. "\1", 16)
ffi.copy(evs[1].daddr, "\32\1\13\184" .. ("\0"):rep(11) .. "\2", 16)
evs[1].packets, evs[1].bytes = 10, 12345
evs[1].state = 9
-- 2: a block (no hook registered for it)
evs[2].kind, evs[2].family = 2, 4

hx.signature{ name = "first", pattern = "aaa" }
hx.signature{ name = "root-probe", pattern = "root", action = "drop", proto = "tcp", ports = { 80 } }

local seen, kept = {}, nil
hx.on("match", function(ev)
	seen[#seen + 1] = ev:copy()
	kept = ev
	eq(ev.kind, "match", "match: kind")
	eq(ev.src, "192.0.2.7", "match: src formatted")
	eq(ev.dst, "198.51.100.1", "match: dst formatted")
	eq(ev.sport, 40000, "match: sport host order")
	eq(ev.dport, 80, "match: dport host order")
	eq(ev.proto, 6, "match: proto")
	eq(ev.proto_name, "tcp", "match: proto_name")
	eq(ev.sig, "root-probe", "match: sig is the signature name")
	eq(ev.sig_id, 1, "match: sig_id")
	eq(ev.action, "drop", "match: action")
	eq(ev.verdict, "drop", "match: verdict")
	eq(ev.reason, "drop_sig", "match: reason")
	eq(ev.state, "established", "match: state")
	eq(ev.payload, "GET /root", "match: payload bytes")
	eq(ev.ts, 5.5, "match: ts in seconds")
	eq(ev.suppressed, 3, "match: suppressed")
end)
local ends = 0
hx.on("flow_end", function(ev)
	ends = ends + 1
	eq(ev.src, "2001:db8::1", "flow_end: IPv6 src")
	eq(ev.dst, "2001:db8::2", "flow_end: IPv6 dst")
	eq(ev.packets, 10, "flow_end: packets")
	eq(ev.bytes, 12345, "flow_end: bytes")
	eq(ev.sig, nil, "flow_end: no sig")
	eq(ev.state, "udp_replied", "flow_end: state")
	eq(ev.payload, "", "flow_end: empty payload")
end)
hx.on("flow_end", function(ev) error("second hook fails") end)
hx.on("flow_end", function(ev) ends = ends + 1 end)

local ok, err = pcall(hx.on, "nosuchkind", function() end)
check(not ok and err:find("unknown event kind 'nosuchkind'"), "hx.on: unknown kind is an error naming it")
ok, err = pcall(hx.on, "match", 42)
check(not ok and err:find("function expected"), "hx.on: non-function hook is an error")

local core = hx._core
eq(core.kind_mask, bit.bor(bit.lshift(1, 1), bit.lshift(1, 6)), "kind mask tells C which kinds have hooks")

hx._dispatch(evs, 3)
eq(#seen, 1, "one match delivered")
eq(ends, 2, "both working flow_end hooks ran despite the failing one between them")
eq(#core.errors, 1, "the failing hook was reported")
check(core.errors[1] and core.errors[1]:find("second hook fails") and core.errors[1]:find("traceback"),
	"hook error reported with traceback")
ok, err = pcall(function() return kept.src end)
check(not ok and err:find("ev:copy"), "a kept proxy raises after its hook")
eq(seen[1].src, "192.0.2.7", "ev:copy() keeps the values")
eq(seen[1].payload, "GET /root", "ev:copy() keeps the payload")
ok = pcall(function() kept.src = "x" end)
check(not ok, "proxy is read-only")

-- hx.store: plain data round-trips, functions are skipped
hx.store.count = 3
hx.store.nested = { a = { 1, 2, 3 }, ["key with space"] = true, bin = "\0\1\r\n\"'\\" }
hx.store.inf = math.huge
hx.store.fn = function() end
local text = hx._store_dump()
local saved = hx.store
for k in pairs(hx.store) do hx.store[k] = nil end
hx.store.untouched = "yes"
hx._store_load(text)
check(hx.store == saved, "hx.store identity kept across load")
eq(hx.store.count, 3, "store: number")
eq(hx.store.nested.a[3], 3, "store: nested list")
eq(hx.store.nested["key with space"], true, "store: boolean, odd key")
eq(hx.store.nested.bin, "\0\1\r\n\"'\\", "store: binary string")
eq(hx.store.inf, math.huge, "store: inf")
eq(hx.store.fn, nil, "store: function skipped")
eq(hx.store.untouched, "yes", "store: load merges into existing keys")
ok = pcall(hx._store_load, "os.exit(1)")
check(not ok, "store: code in a snapshot is not run")

print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
