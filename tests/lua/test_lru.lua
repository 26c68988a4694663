-- Tests for hyperion.lru: the cap holds, eviction order is least recently used, sweeps from the old end.
local t = require("tap")
local lru = require("hyperion.lru")

local evicted = {}
local c = lru.new(3, function(k, v) evicted[#evicted + 1] = k .. "=" .. v end)
c:set("a", 1); c:set("b", 2); c:set("c", 3)
t.eq(c:size(), 3, "three keys stored")
t.eq(c:get("a"), 1, "get returns the value")
local k, v = c:set("d", 4)
t.eq(k, "b", "cap evicts the least recently used key (a was touched)")
t.eq(v, 2, "evicted value returned")
t.eq(evicted[1], "b=2", "on_evict called")
t.eq(c:size(), 3, "size stays at the cap")
t.eq(c:peek("b"), nil, "evicted key is gone")
t.eq(c:peek("c"), 3, "peek reads without touching")
c:set("e", 5)
t.eq(c:peek("c"), nil, "peek did not refresh c, so it went next")
c:set("a", 10)
t.eq(c:get("a"), 10, "set replaces the value")
t.eq(c:size(), 3, "replace does not grow")
t.eq(c:delete("a"), 10, "delete returns the value")
t.eq(c:size(), 2, "delete shrinks")
t.eq(#evicted, 2, "delete does not call on_evict")

local order = {}
c:each_oldest(function(key) order[#order + 1] = key end)
t.eq(table.concat(order, ","), "d,e", "each_oldest walks oldest first")
c:each_oldest(function(key) c:delete(key) end)
t.eq(c:size(), 0, "each_oldest tolerates deleting the visited key")

local big = lru.new(100)
for i = 1, 10000 do big:set(i, i) end
t.eq(big:size(), 100, "10000 inserts stay within a cap of 100")
t.eq(big:peek(10000), 10000, "newest survives")
t.eq(big:peek(9900), nil, "older ones evicted")
local n = 0
for _ in big:pairs() do n = n + 1 end
t.eq(n, 100, "pairs visits every key")

t.raises(function() lru.new(0) end, "positive integer", "cap 0 rejected")
t.raises(function() big:set(nil, 1) end, "nil key", "nil key rejected")
t.eq(lru.new().cap, lru.DEFAULT_CAP, "default cap")

t.done()
