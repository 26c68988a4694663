-- Tests for hyperion.bucket: burst tolerance, leaking, overflow callback, blackhole, expiry and the cap.
local t = require("tap")
local bucket = require("hyperion.bucket")

local now = 100
local clk = function() return now end
local overflows = {}
local b = bucket.new{ capacity = 3, leakspeed = "10s", clock = clk,
	on_overflow = function(k, info) overflows[#overflows + 1] = { k = k, info = info } end }

t.eq(b:pour("a"), false, "pour 1 of 3: no overflow")
b:pour("a"); b:pour("a")
t.eq(#overflows, 0, "burst up to capacity tolerated")
t.eq(b:level("a"), 3, "level is 3")
local over, level = b:pour("a", 1, "why")
t.eq(over, true, "pour above capacity overflows")
t.eq(level, 4, "overflow reports the level")
t.eq(#overflows, 1, "on_overflow called once")
t.eq(overflows[1].k, "a", "callback gets the key")
t.eq(overflows[1].info.pours, 4, "callback gets the pour count")
t.eq(overflows[1].info.extra, "why", "callback gets the caller's extra")
t.eq(b:level("a"), 0, "bucket restarts empty after overflow")

-- Leak: one unit per 10 s, so a steady event every 10 s never overflows.
for _ = 1, 20 do
	b:pour("steady")
	now = now + 10
end
t.eq(#overflows, 1, "sustained rate at the leak speed never overflows")
b:pour("c"); b:pour("c")
now = now + 15
t.ok(math.abs(b:level("c") - 0.5) < 1e-9, "level leaks 1.5 units in 15 s")
now = now + 100
t.eq(b:level("c"), 0, "level never goes negative")

-- Blackhole: after an overflow the key is ignored for the blackhole period.
local n = 0
local bh = bucket.new{ capacity = 1, leak_rate = 0.01, blackhole = "1m", clock = clk,
	on_overflow = function() n = n + 1 end }
bh:pour("x"); bh:pour("x")
t.eq(n, 1, "overflow once")
bh:pour("x"); bh:pour("x"); bh:pour("x")
t.eq(n, 1, "blackholed key ignored")
now = now + 61
bh:pour("x"); bh:pour("x")
t.eq(n, 2, "after the blackhole the key overflows again")

-- Expiry of idle keys and the LRU cap.
local e = bucket.new{ capacity = 2, leakspeed = 1, cap = 20, clock = clk }
for i = 1, 100 do e:pour("k" .. i) end
t.eq(e:size(), 20, "cap bounds buckets")
now = now + 1.5
e:pour("live", 2)
t.eq(e:sweep(), 19, "sweep frees drained buckets (one was pushed out by the cap)")
t.eq(e:size(), 1, "non-empty bucket kept")

t.raises(function() bucket.new{ capacity = 0, clock = clk } end, "capacity", "capacity 0 rejected")
t.raises(function() bucket.new{ leakspeed = "fast", clock = clk } end, "leakspeed: bad duration", "junk leakspeed")
t.raises(function() bucket.new{ leak_rate = -1, clock = clk } end, "leak_rate", "negative leak rate")
t.raises(function() bucket.new{ on_overflow = 5, clock = clk } end, "on_overflow", "callback must be a function")

t.done()
