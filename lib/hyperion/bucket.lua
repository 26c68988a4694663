-- CrowdSec-style leaky buckets per key: pour events in, they leak out at a fixed rate, overflow reacts.
--
-- A bucket of capacity C that leaks one unit every `leakspeed` tolerates a burst of C events and a
-- sustained rate of 1/leakspeed; the pour that lifts the level above C overflows: on_overflow(key, info)
-- runs and the bucket starts again empty. `blackhole` then ignores the key for a while, so one overflow
-- is reported once rather than on every later event. Buckets are capped by an LRU; an empty bucket is
-- no different from a missing one, so sweep() frees drained keys.
local lru = require("hyperion.lru")
local clock = require("hyperion.clock")
local duration = require("hyperion.duration")

local M = {}

M.DEFAULT_CAPACITY = 5       -- events a bucket holds before overflowing
M.DEFAULT_LEAKSPEED = 10     -- seconds per unit leaked (0.1 events/s sustained)
M.DEFAULT_CAP = 10000        -- buckets kept at once (LRU beyond)
M.DEFAULT_BLACKHOLE = 0      -- seconds a key is ignored after overflowing

local Bucket = {}
Bucket.__index = Bucket

-- opts: capacity, leakspeed (duration per unit) or leak_rate (units/s), on_overflow(key, info),
-- blackhole (duration), cap, clock.
function M.new(opts)
	opts = opts or {}
	local capacity = opts.capacity or M.DEFAULT_CAPACITY
	if type(capacity) ~= "number" or capacity < 1 then
		error("bucket.new: capacity must be a number >= 1, got " .. tostring(capacity), 2)
	end
	local rate
	if opts.leak_rate ~= nil then
		rate = opts.leak_rate
		if type(rate) ~= "number" or rate <= 0 then error("bucket.new: leak_rate must be > 0", 2) end
	else
		local okp, ls = pcall(duration.parse, opts.leakspeed or M.DEFAULT_LEAKSPEED, "bucket.new: leakspeed")
		if not okp then error(ls, 2) end
		if ls <= 0 then error("bucket.new: leakspeed must be positive", 2) end
		rate = 1 / ls
	end
	if opts.on_overflow ~= nil and type(opts.on_overflow) ~= "function" then
		error("bucket.new: on_overflow must be a function", 2)
	end
	local okb, bh = pcall(duration.parse, opts.blackhole or M.DEFAULT_BLACKHOLE, "bucket.new: blackhole")
	if not okb then error(bh, 2) end
	return setmetatable({
		capacity = capacity, rate = rate, blackhole = bh, on_overflow = opts.on_overflow,
		now = clock.resolve(opts.clock, "bucket.new"),
		keys = lru.new(opts.cap or M.DEFAULT_CAP),
		holes = lru.new(opts.cap or M.DEFAULT_CAP),
	}, Bucket)
end

local function leaked(self, e, t)
	local level = e.level - (t - e.last) * self.rate
	return level > 0 and level or 0
end

-- Pours n units (default 1) for key. Returns true when this pour overflowed, and the level after it.
function Bucket:pour(key, n, extra)
	n = n or 1
	local t = self.now()
	local until_t = self.holes:peek(key)
	if until_t then
		if t < until_t then return false, 0 end
		self.holes:delete(key)
	end
	local e = self.keys:get(key)
	if not e then
		e = { level = 0, last = t, first = t, pours = 0 }
		self.keys:set(key, e)
	end
	e.level = leaked(self, e, t) + n
	e.last = t
	e.pours = e.pours + 1
	if e.level <= self.capacity then return false, e.level end
	self.keys:delete(key)
	if self.blackhole > 0 then self.holes:set(key, t + self.blackhole) end
	if self.on_overflow then
		self.on_overflow(key, { level = e.level, capacity = self.capacity, first = e.first, last = t,
			pours = e.pours, extra = extra })
	end
	return true, e.level
end

-- Current level of key (0 if it has none).
function Bucket:level(key)
	local e = self.keys:peek(key)
	return e and leaked(self, e, self.now()) or 0
end

function Bucket:reset(key)
	self.keys:delete(key)
	self.holes:delete(key)
end

-- Frees drained buckets and ended blackholes. A bucket untouched for capacity/rate seconds is empty
-- for sure, so the walk from the oldest stops at the first one younger than that.
function Bucket:sweep()
	local t, n = self.now(), 0
	local full_drain = self.capacity / self.rate
	self.keys:each_oldest(function(k, e)
		if leaked(self, e, t) == 0 then
			self.keys:delete(k)
			n = n + 1
		elseif t - e.last < full_drain then
			return true
		end
	end)
	self.holes:each_oldest(function(k, until_t)
		if until_t <= t then self.holes:delete(k) end
	end)
	return n
end

function Bucket:size()
	return self.keys:size()
end

return M
