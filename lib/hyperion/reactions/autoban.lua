-- Reaction: ban sources that keep tripping drop signatures or refused/invalid verdicts (fail2ban-style).
--
-- Each event of a counted kind adds its weight (times 1 + ev.suppressed, since sampled-away events
-- happened too) to the source's sliding window; reaching `threshold` within `window` bans the source,
-- for an escalating time. A signature whose action is in `ban_actions` bans on the first hit.
-- Alert-only signatures do not count unless count_alerts is set: they are for watching, not judging.
local hooks = require("hyperion.hooks")
local window = require("hyperion.window")
local common = require("hyperion.reactions.common")
local lru = require("hyperion.lru")

local M = {}

M.DEFAULTS = {
	threshold = 5,              -- weighted events within window that ban
	window = "10m",
	weights = { match = 1, invalid = 1, policy = 0.25 },  -- per event; refused flows are weak evidence
	ban_actions = { ban = true },                     -- signature actions that ban at once
	count_alerts = false,
	-- A dropped segment never reaches the receiver, so the sender's kernel retransmits it for minutes and
	-- each copy matches again: a match repeating the same flow and signature within `rematch` is that one
	-- request, not a new offence (otherwise one request would earn an ever-growing ban). Retransmissions
	-- come seconds apart; a repeat that the datapath's sampling suppressed events before (ev.suppressed
	-- > 0) is a flood on one flow and counts in full.
	rematch = "30m",
	allow = {},                 -- networks never banned (loopback always)
	bantime = "10m",            -- only when escalate = false
	escalate = { base = "10m", factor = 2, max = "1w", forget = "1d" },
	prefix = { threshold = 5, prefix4 = 24, prefix6 = 64 },
	cap = 10000,                -- sources tracked at once
	sweep = "1m",               -- how often idle counters are freed
	hx = false,                 -- hx module to use (tests); default require("hyperion")
	clock = false,
}

local Autoban = {}
Autoban.__index = Autoban

-- Installs the hooks and returns the reaction object (its :event(ev) is what the hooks call).
function M.setup(opts)
	local o = common.options(M.DEFAULTS, opts, "autoban")
	local hx = o.hx or require("hyperion")
	if type(o.threshold) ~= "number" or o.threshold <= 0 then error("autoban: threshold must be > 0", 2) end
	for kind, w in pairs(o.weights) do
		if type(w) ~= "number" or w < 0 then error("autoban: weight of '" .. tostring(kind) .. "' must be >= 0", 2) end
	end
	local self = setmetatable({ o = o, hx = hx }, Autoban)
	self.window_s = common.seconds(o.window, "autoban", "window")
	self.counts = window.new{ window = self.window_s, cap = o.cap, clock = o.clock or hx.now }
	self.clock = o.clock or hx.now
	self.rematch_s = common.seconds(o.rematch, "autoban", "rematch")
	self.seen = lru.new(o.cap)      -- flow + signature -> time of its last match
	self.banner = common.banner("autoban", { hx = hx, allow = o.allow, bantime = o.bantime,
		escalate = o.escalate, prefix = o.prefix, clock = o.clock or nil })
	local kinds = {}
	for kind, w in pairs(o.weights) do if w > 0 then kinds[kind] = true end end
	if next(o.ban_actions) then kinds.match = true end
	for kind in pairs(kinds) do hooks.on(kind, function(ev) self:event(ev) end, hx) end
	hx.every(common.seconds(o.sweep, "autoban", "sweep"), function() self.counts:sweep() end)
	return self
end

local function what(ev)
	if ev.kind == "match" then return "sig " .. tostring(ev.sig) end
	return ev.kind .. (ev.reason and ("/" .. ev.reason) or "")
end

-- True when this match repeats one already counted (same flow, same signature, within rematch) and is
-- no flood (nothing suppressed since the last delivered event).
function Autoban:retransmit(ev)
	if self.rematch_s <= 0 or not ev.sport or ev.sport == 0 then return false end
	local key = string.format("%s|%s|%s|%s|%s|%s", ev.src, ev.sport, tostring(ev.dst), ev.dport,
		tostring(ev.proto), tostring(ev.sig))
	local now = self.clock()
	local last = self.seen:get(key)
	self.seen:set(key, now)
	if (ev.suppressed or 0) > 0 then return false end
	return last ~= nil and now - last < self.rematch_s
end

function Autoban:event(ev)
	local src = ev.src
	if not src or self.banner:allowed(src) then return end
	local o = self.o
	if ev.kind == "match" then
		if self:retransmit(ev) then return end
		if o.ban_actions[ev.action] then
			self.banner:ban(src, "signature " .. tostring(ev.sig), ev)
			self.counts:reset(src)
			return
		end
		if ev.action == "alert" and not o.count_alerts then return end
	end
	local w = o.weights[ev.kind] or 0
	if w <= 0 then return end
	local n = self.counts:add(src, w * (1 + (ev.suppressed or 0)))
	if n >= o.threshold then
		self.banner:ban(src, string.format("%g events in %s (last: %s)", n, tostring(o.window), what(ev)), ev)
		self.counts:reset(src)
	end
end

return M
