-- Tests for hyperion.escalate: doubling up to the maximum, forgetting, surviving reloads, the cap.
local t = require("tap")
local escalate = require("hyperion.escalate")

local now = 1000
local clk = function() return now end
local store = {}
local e = escalate.new{ base = "10m", factor = 2, max = "1h", forget = "1d", store = store, clock = clk }

t.eq(e:count("a"), 0, "unknown key has no bans")
t.eq((e:peek("a")), 600, "peek shows the first ban time")
t.eq(e:count("a"), 0, "peek does not record")
local ttl, n = e:next("a")
t.eq(ttl, 600, "first ban: base")
t.eq(n, 1, "first offence number")
t.eq((e:next("a")), 1200, "second ban doubles")
t.eq((e:next("a")), 2400, "third ban doubles again")
t.eq((e:next("a")), 3600, "fourth ban capped at max")
t.eq((e:next("a")), 3600, "stays at max")
t.eq((e:next("b")), 600, "other keys start at base")
t.eq(e:count("a"), 5, "count of bans")

-- Remembered in the store table: a new object over the same store (a reload) continues.
local e2 = escalate.new{ base = "10m", max = "1h", store = store, clock = clk }
t.eq((e2:next("b")), 1200, "reload keeps the history")
t.ok(store.escalate and store.escalate.offenders.b ~= nil, "history lives under store.escalate")
for k, v in pairs(store.escalate.offenders.b) do
	t.ok(type(v) == "number", "record field " .. k .. " is plain data")
end

-- Forget: measured from the end of the last ban.
now = now + 1200 + 86400 - 1
t.eq(e:count("b"), 2, "still remembered one second before forget")
now = now + 2
t.eq(e:count("b"), 0, "forgotten a day after the ban ended")
t.eq((e:next("b")), 600, "forgotten key starts again at base")

-- A record from before a reboot (stamped in the future) keeps its count.
local s3 = { escalate = { n = 1, offenders = { x = { n = 3, at = 99999, ends = 100000 } } } }
local e3 = escalate.new{ base = 60, max = "1d", store = s3, clock = function() return 5 end }
t.eq(e3:count("x"), 3, "pre-reboot record keeps its count")
t.eq((e3:next("x")), 480, "and escalates from it (fourth ban: 60 * 2^3)")

-- A malformed record (hand-edited store, older format) is dropped, not a crash.
local s5 = { escalate = { n = 2, offenders = { y = { n = "x" }, z = 7 } } }
local e7 = escalate.new{ base = 60, store = s5, clock = clk }
t.eq(e7:count("y"), 0, "malformed record ignored")
t.eq((e7:next("z")), 60, "non-table record replaced")

-- Cap: the oldest-ended records go first.
now = 50000
local s4 = {}
local e4 = escalate.new{ base = 10, cap = 10, store = s4, clock = clk }
for i = 1, 25 do
	e4:next("k" .. i)
	now = now + 1
end
t.ok(e4:size() <= 10, "records bounded by the cap")
t.eq(e4:count("k25"), 1, "newest offender kept")
t.eq(e4:count("k1"), 0, "oldest offender dropped")

-- Uses hx.store through hx, looked up on every call (the runtime may swap the table on reload).
local hx = { store = {}, now = clk }
local e5 = escalate.new{ hx = hx, namespace = "autoban" }
e5:next("z")
hx.store = { autoban = hx.store.autoban }
t.eq((e5:next("z")), 1200, "follows a replaced hx.store table")
local e6 = escalate.new{ hx = hx, namespace = "other" }
t.eq(e6:count("z"), 0, "namespaces are separate")

t.raises(function() escalate.new{ factor = 0.5, store = {}, clock = clk } end, "factor", "factor < 1 rejected")
t.raises(function() escalate.new{ base = "1h", max = "1m", store = {}, clock = clk } end, "max", "max < base rejected")
t.raises(function() escalate.new{ base = "x", store = {}, clock = clk } end, "base: bad duration", "junk base")
t.raises(function() e:next(nil) end, "nil key", "nil key rejected")

t.done()
