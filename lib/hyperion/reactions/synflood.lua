-- Reaction: tighten a flooding source's rate limits, ban the worst flooders, relax when the flood ends.
--
-- A ratelimit event means the datapath already dropped a packet over the source's budget; each one
-- (plus ev.suppressed, the sampled-away ones) counts a rate-limited packet in the source's window.
-- On its first ratelimit event a source gets the `tighten` limits (hx.ratelimit), so a burst that was
-- merely over the host-wide limit shrinks further. Every `interval`, sources with at least `ban_after`
-- rate-limited packets in `window` become ban candidates and the worst `max_bans` of them are banned
-- (a spoofed flood has endless sources: the cap keeps a flood from filling the ban table, and prefix
-- aggregation takes over). A source quiet for `quiet` gets its limits back (0 = the config's).
-- The tightened sources are also listed in hx.store.synflood, because their overrides live in the
-- kernel: after a reload or restart the new state adopts them and still relaxes them when quiet.
local hooks = require("hyperion.hooks")
local window = require("hyperion.window")
local lru = require("hyperion.lru")
local common = require("hyperion.reactions.common")

local M = {}

M.DEFAULTS = {
	tighten = { syn = 5, pps = 500 },  -- per-source limits while flooding (0 = keep the config's)
	ban_after = 500,            -- rate-limited packets within window that make a ban candidate
	window = "10s",
	max_bans = 10,              -- bans per check, worst first
	interval = "1s",            -- how often candidates are banned and quiet sources relaxed
	quiet = "30s",              -- no ratelimit event for this long: the flood is over for that source
	allow = {},
	bantime = "10m",            -- only when escalate = false
	escalate = { base = "10m", factor = 2, max = "1d", forget = "1d" },
	prefix = { threshold = 5, prefix4 = 24, prefix6 = 64 },
	cap = 10000,                -- sources tracked at once
	hx = false,
	clock = false,
}

local RELAXED = { syn = 0, pps = 0 }  -- 0 in the datapath's per-source entry means "use the config"

local Synflood = {}
Synflood.__index = Synflood

function M.setup(opts)
	local o = common.options(M.DEFAULTS, opts, "synflood")
	local hx = o.hx or require("hyperion")
	if type(o.ban_after) ~= "number" or o.ban_after <= 0 then error("synflood: ban_after must be > 0", 2) end
	if type(o.max_bans) ~= "number" or o.max_bans < 0 then error("synflood: max_bans must be >= 0", 2) end
	for k, v in pairs(o.tighten) do
		if (k ~= "syn" and k ~= "pps") or type(v) ~= "number" or v < 0 then
			error("synflood: tighten takes syn and pps, numbers >= 0", 2)
		end
	end
	local self = setmetatable({ o = o, hx = hx, flooding = false }, Synflood)
	local clk = o.clock or hx.now
	self.now = clk
	self.counts = window.new{ window = common.seconds(o.window, "synflood", "window"), cap = o.cap, clock = clk }
	self.quiet = common.seconds(o.quiet, "synflood", "quiet")
	-- Sources under tightened limits, least recently rate-limited first. A source pushed out by the cap
	-- gets its limits back rather than keeping an override nobody tracks.
	self.tracked = lru.new(o.cap, function(src) self:relax(src) end)
	self.candidates = lru.new(o.cap)
	self.banner = common.banner("synflood", { hx = hx, allow = o.allow, bantime = o.bantime,
		escalate = o.escalate, prefix = o.prefix, clock = o.clock or nil })
	hooks.on("ratelimit", function(ev) self:event(ev) end, hx)
	hx.every(common.seconds(o.interval, "synflood", "interval"), function() self:check() end)
	return self
end

-- The persisted set of tightened sources (plain data in hx.store, looked up each time: a reload may
-- hand over a different table).
function Synflood:persisted()
	local store = self.hx.store
	local r = store.synflood
	if type(r) ~= "table" or type(r.tightened) ~= "table" then
		r = { tightened = {} }
		store.synflood = r
	end
	return r.tightened
end

-- Takes over sources a previous state tightened, so their overrides are relaxed in due course.
function Synflood:adopt()
	local t, n = self.now(), 0
	for src in pairs(self:persisted()) do
		if not self.tracked:peek(src) then
			self.tracked:set(src, { since = t, last = t })
			n = n + 1
		end
	end
	if n > 0 then
		self.flooding = true
		self.hx.log("info", string.format("synflood: %d tightened sources taken over from the last state", n))
	end
end

function Synflood:relax(src)
	self:persisted()[src] = nil
	self.hx.ratelimit(src, RELAXED)
end

function Synflood:event(ev)
	local src = ev.src
	if not src or self.banner:allowed(src) then return end
	local t = self.now()
	local e = self.tracked:get(src)
	if not e then
		e = { since = t }
		self.tracked:set(src, e)
		self:persisted()[src] = true
		self.hx.ratelimit(src, { syn = self.o.tighten.syn or 0, pps = self.o.tighten.pps or 0 })
		self.hx.log("info", string.format("synflood: %s rate-limited (%s), limits tightened", src,
			tostring(ev.reason)))
		if not self.flooding then
			self.flooding = true
			self.hx.log("warning", "synflood: flood started")
		end
	end
	e.last, e.dst, e.reason = t, ev.dst, ev.reason
	local n = self.counts:add(src, 1 + (ev.suppressed or 0))
	if n >= self.o.ban_after then self.candidates:set(src, true) end
end

-- Bans the worst candidates, then gives quiet sources their limits back.
function Synflood:check()
	-- Timers run only once the policy is active, which is also when hx.store holds the last state's data.
	if not self.adopted then
		self.adopted = true
		self:adopt()
	end
	local t, o = self.now(), self.o
	local list = {}
	for src in self.candidates:pairs() do
		local n = self.counts:count(src)
		if n >= o.ban_after then list[#list + 1] = { src = src, n = n } end
	end
	table.sort(list, function(a, b) return a.n > b.n end)
	self.candidates = lru.new(o.cap)
	for i, c in ipairs(list) do
		if i > o.max_bans then
			self.candidates:set(c.src, true)  -- still over: next check
		else
			local e = self.tracked:peek(c.src)
			local reason = string.format("%d rate-limited packets in %s (%s)", c.n, tostring(o.window),
				tostring(e and e.reason))
			local ttl = self.banner:ban(c.src, reason, { dst = e and e.dst })
			if ttl then
				-- The ban supersedes the tightened limits; the source starts clean when it ends.
				self.tracked:delete(c.src)
				self.counts:reset(c.src)
				self:relax(c.src)
			end
		end
	end
	self.tracked:each_oldest(function(src, e)
		if t - e.last < self.quiet then return true end
		self.tracked:delete(src)
		self.counts:reset(src)
		self:relax(src)
		self.hx.log("info", string.format("synflood: %s quiet for %ds, limits relaxed", src, self.quiet))
	end)
	self.counts:sweep()
	if self.flooding and self.tracked:size() == 0 and self.candidates:size() == 0 then
		self.flooding = false
		self.hx.log("warning", "synflood: flood over, all limits relaxed")
	end
end

return M
