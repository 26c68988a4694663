-- Prefix aggregation: once N addresses of one IPv4 /24 (IPv6 /64) are banned, ban the whole prefix.
--
-- Feed it every address ban (add(ip, ttl)); it remembers each member until its ban ends. An IPv6 host
-- can rotate through 2^64 addresses of its /64 and a botnet slice often sits in one /24, so per-address
-- bans alone never catch up. A prefix is never banned when it overlaps the allowlist or holds one of the
-- host's own addresses (learned from the events' destinations through protect_local): banning the
-- host's own /24 or /64 would cut it off from its gateway and neighbours. Prefixes tracked are capped
-- by an LRU, members per prefix by the threshold (more are never needed to decide).
local lru = require("hyperion.lru")
local cidr = require("hyperion.cidr")
local clock = require("hyperion.clock")
local duration = require("hyperion.duration")

local M = {}

M.DEFAULT_THRESHOLD = 5     -- banned addresses of one prefix that trigger the prefix ban
M.DEFAULT_PREFIX4 = 24
M.DEFAULT_PREFIX6 = 64
M.MIN_PREFIX4 = 8           -- shorter prefixes are refused: one bad config must not ban a continent
M.MIN_PREFIX6 = 16
M.DEFAULT_CAP = 4096        -- prefixes tracked at once (LRU beyond)
M.LOCAL_MAX = 64            -- host addresses remembered by protect_local (LRU beyond)

local Agg = {}
Agg.__index = Agg

local function check_len(v, lo, hi, name)
	if type(v) ~= "number" or v % 1 ~= 0 or v < lo or v > hi then
		error(string.format("prefix.new: %s must be an integer in %d..%d, got %s", name, lo, hi, tostring(v)), 3)
	end
	return v
end

-- opts: threshold, prefix4, prefix6, ttl (duration; default: the longest remaining member ban),
-- escalate (an escalate object: prefix bans escalate too), allow (cidr list or cidr.set: prefixes
-- overlapping it are never banned; also the place for the host's own networks), reason,
-- cap, clock, hx, on_ban(prefix, ttl, members).
function M.new(opts)
	opts = opts or {}
	local self = setmetatable({
		threshold = opts.threshold or M.DEFAULT_THRESHOLD,
		prefix4 = check_len(opts.prefix4 or M.DEFAULT_PREFIX4, M.MIN_PREFIX4, 31, "prefix4"),
		prefix6 = check_len(opts.prefix6 or M.DEFAULT_PREFIX6, M.MIN_PREFIX6, 127, "prefix6"),
		escalate = opts.escalate,
		on_ban = opts.on_ban,
		reason = opts.reason or "prefix",
		hx = opts.hx or require("hyperion"),
		prefixes = lru.new(opts.cap or M.DEFAULT_CAP),
		locals = lru.new(M.LOCAL_MAX),
	}, Agg)
	if type(self.threshold) ~= "number" or self.threshold < 2 then
		error("prefix.new: threshold must be a number >= 2", 2)
	end
	if opts.ttl ~= nil then
		local okp, ttl = pcall(duration.parse, opts.ttl, "prefix.new: ttl")
		if not okp then error(ttl, 2) end
		self.ttl = ttl
	end
	local allow = opts.allow
	if type(allow) == "table" and not allow.contains then allow = cidr.set(allow) end
	self.allow = allow
	self.now = clock.resolve(opts.clock or self.hx.now, "prefix.new")
	return self
end

-- Remembers ip as one of the host's own addresses: its prefix is never banned.
function Agg:protect_local(ip)
	if cidr.valid(ip) then self.locals:set(cidr.normalise(ip), true) end
end

local function holds_local(self, pfx)
	for ip in self.locals:pairs() do
		if cidr.contains(pfx, ip) then return true end
	end
	return false
end

-- The prefix ip aggregates into, or nil for a non-address.
function Agg:prefix_for(ip)
	local fam = cidr.family(ip)
	if fam == 4 then return cidr.prefix_of(ip, self.prefix4) end
	if fam == 6 then return cidr.prefix_of(ip, self.prefix6) end
	return nil
end

local function live(e, t)
	local n, longest = 0, 0
	for ip, expires in pairs(e.members) do
		if expires <= t then
			e.members[ip] = nil
		else
			n = n + 1
			if expires > longest then longest = expires end
		end
	end
	return n, longest
end

-- Records that ip was banned for ttl seconds (0 = no expiry). Returns the prefix if this ban tipped
-- it over the threshold and the prefix is now banned, else nil.
function Agg:add(ip, ttl)
	local pfx = self:prefix_for(ip)
	if not pfx then return nil end
	local t = self.now()
	local e = self.prefixes:get(pfx)
	if not e then
		e = { members = {}, banned_until = 0 }
		self.prefixes:set(pfx, e)
	end
	if e.banned_until > t then return nil end
	local n = live(e, t)
	if not e.members[ip] then
		if n >= self.threshold then return nil end  -- undecidable only when the allowlist blocks it
		n = n + 1
	end
	e.members[ip] = (ttl and ttl > 0) and (t + ttl) or math.huge
	if n < self.threshold then return nil end
	if (self.allow and self.allow:overlaps(pfx)) or holds_local(self, pfx) then return nil end
	local _, longest = live(e, t)
	local pttl
	if self.escalate then
		pttl = self.escalate:next(pfx)
	elseif self.ttl then
		pttl = self.ttl
	else
		pttl = longest == math.huge and 0 or (longest - t)
	end
	local reason = string.format("%s: %d addresses of %s banned", self.reason, n, pfx)
	self.hx.ban(pfx, pttl, reason)
	e.banned_until = pttl > 0 and (t + pttl) or math.huge
	local members = {}
	for m in pairs(e.members) do members[#members + 1] = m end
	table.sort(members)
	e.members = {}
	if self.on_ban then self.on_ban(pfx, pttl, members) end
	return pfx, pttl
end

-- Live members recorded for the prefix of ip.
function Agg:members(ip)
	local pfx = self:prefix_for(ip)
	local e = pfx and self.prefixes:peek(pfx)
	if not e then return 0 end
	return (live(e, self.now()))
end

function Agg:size()
	return self.prefixes:size()
end

return M
