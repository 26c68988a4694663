-- Sliding-window counters keyed by source (or by its prefix): "how many in the last N seconds".
--
-- Each key holds SLOTS sub-windows; a count sums the slots younger than the window, so the window slides
-- in steps of window/slots seconds (the error is at most one slot's worth of old events). Keys live in an
-- LRU capped at cap, and a key idle for a whole window is worth nothing, so sweep() drops it.
local lru = require("hyperion.lru")
local clock = require("hyperion.clock")
local cidr = require("hyperion.cidr")
local duration = require("hyperion.duration")

local M = {}

M.DEFAULT_WINDOW = 60        -- seconds
M.DEFAULT_SLOTS = 10         -- sub-windows per window: 10% granularity
M.DEFAULT_CAP = 10000        -- keys tracked at once (LRU beyond)
M.DEFAULT_ITEMS_MAX = 256    -- distinct items remembered per key; counts saturate there

-- A key function from opts: whole address, or its prefix (prefix4/prefix6 lengths) so a source that
-- hops addresses inside its /64 is still one key.
local function keyer(opts)
	if opts.key then return opts.key end
	if not opts.prefix4 and not opts.prefix6 then return function(k) return k end end
	local p4, p6 = opts.prefix4 or 32, opts.prefix6 or 128
	return function(k)
		local fam = cidr.family(k)
		if fam == 4 then return cidr.prefix_of(k, p4) end
		if fam == 6 then return cidr.prefix_of(k, p6) end
		return k
	end
end

local function common(opts, who)
	opts = opts or {}
	local w = duration.parse(opts.window or M.DEFAULT_WINDOW, who .. ": window")
	if w <= 0 then error(who .. ": window must be positive", 3) end
	local slots = opts.slots or M.DEFAULT_SLOTS
	if type(slots) ~= "number" or slots < 1 or slots % 1 ~= 0 then
		error(who .. ": slots must be a positive integer", 3)
	end
	return opts, w, slots, clock.resolve(opts.clock, who), keyer(opts)
end

local Counter = {}
Counter.__index = Counter

-- opts: window (duration), slots, cap, clock, key(fn) or prefix4/prefix6.
function M.new(opts)
	local o, w, slots, now, key = common(opts, "window.new")
	return setmetatable({ window = w, slots = slots, width = w / slots, now = now, key = key,
		keys = lru.new(o.cap or M.DEFAULT_CAP) }, Counter)
end

local function total(self, e, idx)
	local sum = 0
	for pos = 0, self.slots - 1 do
		local st = e.stamp[pos]
		if st and st > idx - self.slots then sum = sum + e.count[pos] end
	end
	return sum
end

-- Adds n (default 1) for k and returns the count in the window, including this addition.
function Counter:add(k, n)
	n = n or 1
	k = self.key(k)
	local idx = math.floor(self.now() / self.width)
	local e = self.keys:get(k)
	if not e then
		e = { count = {}, stamp = {} }
		self.keys:set(k, e)
	end
	e.last = idx
	local pos = idx % self.slots
	if e.stamp[pos] ~= idx then e.stamp[pos], e.count[pos] = idx, 0 end
	e.count[pos] = e.count[pos] + n
	return total(self, e, idx)
end

-- Count in the window for k, 0 for an unknown key.
function Counter:count(k)
	local e = self.keys:peek(self.key(k))
	if not e then return 0 end
	return total(self, e, math.floor(self.now() / self.width))
end

function Counter:reset(k)
	self.keys:delete(self.key(k))
end

-- Drops keys with nothing left in the window; walks from the least recently added and stops at the
-- first live one, so a sweep costs the number of dead keys.
function Counter:sweep()
	local idx, n = math.floor(self.now() / self.width), 0
	self.keys:each_oldest(function(k, e)
		if e.last > idx - self.slots then return true end
		self.keys:delete(k)
		n = n + 1
	end)
	return n
end

function Counter:size()
	return self.keys:size()
end

local Distinct = {}
Distinct.__index = Distinct

-- Distinct items per key in the window (ports a source touched, hosts it probed).
-- opts: window, cap, items_max, clock, key/prefix4/prefix6.
function M.distinct(opts)
	local o, w, _, now, key = common(opts, "window.distinct")
	return setmetatable({ window = w, now = now, key = key, items_max = o.items_max or M.DEFAULT_ITEMS_MAX,
		keys = lru.new(o.cap or M.DEFAULT_CAP) }, Distinct)
end

local function prune(self, e, t)
	for item, seen in pairs(e.items) do
		if seen <= t - self.window then
			e.items[item] = nil
			e.n = e.n - 1
		end
	end
end

-- Records item for k and returns how many distinct items k had in the window. Past items_max the set
-- stops growing: the count saturates, which is above any sane threshold.
function Distinct:add(k, item)
	k = self.key(k)
	local t = self.now()
	local e = self.keys:get(k)
	if not e then
		e = { items = {}, n = 0 }
		self.keys:set(k, e)
	end
	e.last = t
	prune(self, e, t)
	if e.items[item] then
		e.items[item] = t
	elseif e.n < self.items_max then
		e.items[item] = t
		e.n = e.n + 1
	end
	return e.n
end

function Distinct:count(k)
	local e = self.keys:peek(self.key(k))
	if not e then return 0 end
	prune(self, e, self.now())
	return e.n
end

function Distinct:reset(k)
	self.keys:delete(self.key(k))
end

function Distinct:sweep()
	local t, n = self.now(), 0
	self.keys:each_oldest(function(k, e)
		if e.last > t - self.window then return true end
		self.keys:delete(k)
		n = n + 1
	end)
	return n
end

function Distinct:size()
	return self.keys:size()
end

return M
