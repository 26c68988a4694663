-- Tests for hyperion.window: counts slide out of the window, keys are bounded, prefixes group sources.
local t = require("tap")
local window = require("hyperion.window")

local now = 1000
local clk = function() return now end

local w = window.new{ window = "60s", slots = 6, clock = clk }
t.eq(w:add("a"), 1, "first add counts 1")
t.eq(w:add("a", 2), 3, "add n")
t.eq(w:add("b"), 1, "keys are independent")
now = now + 30
t.eq(w:add("a"), 4, "still in window after 30s")
now = now + 35
t.eq(w:count("a"), 1, "first three slid out after 65s, the one at +30 remains")
now = now + 30
t.eq(w:count("a"), 0, "everything gone after another window")
t.eq(w:count("zzz"), 0, "unknown key counts 0")
w:add("c")
w:reset("c")
t.eq(w:count("c"), 0, "reset forgets a key")

-- Slot reuse: a slot position seen one window later must start from zero, not add to old counts.
local w2 = window.new{ window = 10, slots = 10, clock = clk }
now = 2000
w2:add("x", 5)
now = now + 10
t.eq(w2:add("x"), 1, "same slot position one window later starts fresh")

-- Sweep drops idle keys only.
now = 3000
local w3 = window.new{ window = 10, clock = clk }
w3:add("old1"); w3:add("old2")
now = now + 5
w3:add("fresh")
now = now + 7
t.eq(w3:sweep(), 2, "sweep removes the two idle keys")
t.eq(w3:size(), 1, "fresh key kept")
t.eq(w3:count("fresh"), 1, "fresh key still counts")

-- Cap: memory bounded no matter how many sources.
local w4 = window.new{ window = 60, cap = 50, clock = clk }
for i = 1, 1000 do w4:add("198.51.100." .. (i % 250) .. "-" .. i) end
t.eq(w4:size(), 50, "cap bounds keys")

-- Prefix keys: sources of one /24 share a counter.
local w5 = window.new{ window = 60, prefix4 = 24, prefix6 = 64, clock = clk }
w5:add("192.0.2.1"); w5:add("192.0.2.2")
t.eq(w5:count("192.0.2.99"), 2, "v4 /24 aggregated")
w5:add("2001:db8::1"); w5:add("2001:db8::2:1")
t.eq(w5:count("2001:db8::ffff"), 2, "v6 /64 aggregated")
t.eq(w5:count("198.51.100.1"), 0, "other prefix separate")

t.raises(function() window.new{ window = 0, clock = clk } end, "positive", "zero window rejected")
t.raises(function() window.new{ window = "soon", clock = clk } end, "bad duration", "junk window rejected")
t.raises(function() window.new{ slots = 0, clock = clk } end, "slots", "zero slots rejected")
package.loaded["hyperion"] = {}
t.raises(function() window.new{} end, "no clock", "missing hx.now is a clear error")
package.loaded["hyperion"] = nil

-- Distinct counting.
now = 5000
local d = window.distinct{ window = 60, items_max = 5, clock = clk }
t.eq(d:add("s", 22), 1, "distinct first item")
t.eq(d:add("s", 22), 1, "repeat item does not count twice")
t.eq(d:add("s", 80), 2, "second item")
now = now + 50
t.eq(d:add("s", 443), 3, "third item within window")
now = now + 15
t.eq(d:count("s"), 1, "items older than the window drop out")
for p = 1000, 1010 do d:add("s", p) end
t.eq(d:count("s"), 5, "count saturates at items_max")
d:reset("s")
t.eq(d:count("s"), 0, "distinct reset")
local d2 = window.distinct{ window = 60, cap = 10, clock = clk }
for i = 1, 100 do d2:add("k" .. i, 1) end
t.eq(d2:size(), 10, "distinct keys capped")
now = now + 61
t.eq(d2:sweep(), 10, "distinct sweep drops idle keys")

t.done()
