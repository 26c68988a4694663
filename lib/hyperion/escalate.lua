-- Repeat-offender ban times (fail2ban bantime.increment): each new ban of a key lasts factor times the
-- previous, up to max, remembered in hx.store so reloads and restarts do not reset an offender.
--
-- The n-th ban of a key lasts min(base * factor^(n-1), max). A key whose last ban ended more than
-- `forget` ago starts again at base. Records are plain data under hx.store[namespace] (all hx.store
-- may hold): { n = <count>, offenders = { [key] = { n = bans, at = last ban start, ends = its end } } };
-- at most `cap` keys are remembered, the ones whose bans ended longest ago go first.
--
-- Times come from the monotonic clock (hx.now), which restarts at boot: a record stamped later than
-- "now" was written before a reboot, so it keeps its count and its forget period starts over.
local clock = require("hyperion.clock")
local duration = require("hyperion.duration")

local M = {}

M.DEFAULT_BASE = 600          -- 10m: first ban
M.DEFAULT_FACTOR = 2          -- each repeat doubles
M.DEFAULT_MAX = 604800        -- 1w: ceiling of one ban
M.DEFAULT_FORGET = 86400      -- 1d after a ban ended, the key is forgotten
M.DEFAULT_CAP = 10000         -- offenders remembered
M.DEFAULT_NAMESPACE = "escalate"

local Esc = {}
Esc.__index = Esc

local function dur(v, default, name)
	local okp, s = pcall(duration.parse, v == nil and default or v, "escalate.new: " .. name)
	if not okp then error(s, 3) end
	return s
end

-- opts: base, factor, max, forget (durations; forget = 0 never forgets), cap, namespace, clock,
-- hx (default require("hyperion")), store (a table to use instead of hx.store, for tests).
function M.new(opts)
	opts = opts or {}
	local self = setmetatable({
		base = dur(opts.base, M.DEFAULT_BASE, "base"),
		max = dur(opts.max, M.DEFAULT_MAX, "max"),
		forget = dur(opts.forget, M.DEFAULT_FORGET, "forget"),
		factor = opts.factor or M.DEFAULT_FACTOR,
		cap = opts.cap or M.DEFAULT_CAP,
		namespace = opts.namespace or M.DEFAULT_NAMESPACE,
		store = opts.store,
		hx = opts.hx,
	}, Esc)
	if type(self.factor) ~= "number" or self.factor < 1 then
		error("escalate.new: factor must be a number >= 1", 2)
	end
	if self.base <= 0 then error("escalate.new: base must be positive", 2) end
	if self.max < self.base then error("escalate.new: max must be >= base", 2) end
	if type(self.cap) ~= "number" or self.cap < 1 then error("escalate.new: cap must be >= 1", 2) end
	if not self.store and not self.hx then
		local okh, hx = pcall(require, "hyperion")
		if not okh then error("escalate.new: no hx.store: pass opts.hx or opts.store", 2) end
		self.hx = hx
	end
	self.now = clock.resolve(opts.clock or (self.hx and self.hx.now), "escalate.new")
	return self
end

-- The namespace table, looked up on every call: the runtime may hand a reloaded policy a different
-- hx.store table than the one that existed when this object was built.
function Esc:root()
	local store = self.store or self.hx.store
	if type(store) ~= "table" then error("escalate: hx.store is not a table", 3) end
	local r = store[self.namespace]
	if type(r) ~= "table" or type(r.offenders) ~= "table" then
		r = { n = 0, offenders = {} }
		store[self.namespace] = r
	end
	return r
end

-- The live record for key (nil once forgotten); fixes records from before a reboot.
function Esc:record(key)
	local r = self:root()
	local rec = r.offenders[key]
	if not rec then return nil end
	if type(rec) ~= "table" or type(rec.n) ~= "number" or type(rec.at) ~= "number"
		or type(rec.ends) ~= "number" then
		-- Not ours (or from an older format): dropping it only costs that key its history.
		r.offenders[key] = nil
		r.n = r.n - 1
		return nil
	end
	local t = self.now()
	if rec.at > t then
		rec.at, rec.ends = t, t
	end
	if self.forget > 0 and t > rec.ends + self.forget then
		r.offenders[key] = nil
		r.n = r.n - 1
		return nil
	end
	return rec
end

-- How many bans key has on record (0 if none or forgotten).
function Esc:count(key)
	local rec = self:record(key)
	return rec and rec.n or 0
end

-- Ban time the next offence of key would get, without recording it.
function Esc:peek(key)
	local n = self:count(key) + 1
	return math.min(self.base * self.factor ^ (n - 1), self.max), n
end

-- Makes room for one more record: forgotten ones first, then those whose bans ended longest ago,
-- down to 90% of the cap so the O(n) pass is not paid on every insert.
function Esc:trim(r)
	if r.n < self.cap then return end
	for key in pairs(r.offenders) do self:record(key) end
	if r.n < self.cap then return end
	local keys = {}
	for key, rec in pairs(r.offenders) do keys[#keys + 1] = { key, rec.ends } end
	table.sort(keys, function(a, b) return a[2] < b[2] end)
	local target = math.floor(self.cap * 0.9)
	for i = 1, #keys - target do
		r.offenders[keys[i][1]] = nil
		r.n = r.n - 1
	end
end

-- Records an offence of key and returns its ban time and the offence number (1 = first).
function Esc:next(key)
	if key == nil then error("escalate:next: nil key", 2) end
	local ttl, n = self:peek(key)
	local r = self:root()
	local rec = r.offenders[key]
	if not rec then
		self:trim(r)
		rec = {}
		r.offenders[key] = rec
		r.n = r.n + 1
	end
	local t = self.now()
	rec.n, rec.at, rec.ends = n, t, t + ttl
	return ttl, n
end

function Esc:forget_key(key)
	local r = self:root()
	if r.offenders[key] then
		r.offenders[key] = nil
		r.n = r.n - 1
	end
end

function Esc:size()
	return self:root().n
end

return M
