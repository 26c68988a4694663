-- The ban path every reaction shares: allowlist, already-banned check, escalation, prefix aggregation, log.
local cidr = require("hyperion.cidr")
local duration = require("hyperion.duration")
local escalate = require("hyperion.escalate")
local prefix = require("hyperion.prefix")

local M = {}

M.DEFAULT_ALLOW = { "127.0.0.0/8", "::1" }  -- never banned, whatever the options say
M.REASON_MAX = 127                          -- HYP_REASON_MAX - 1: the daemon keeps no more
M.DEFAULT_NAMESPACE = "bans"                -- hx.store key shared by reactions: offences add up

-- Options over defaults. Unknown keys are rejected so a typo in a policy fails at load instead of
-- silently using a default. A table option whose default is a non-empty map (weights, escalate,
-- prefix, ...) is merged key by key, so { escalate = { max = "1d" } } keeps the other defaults; lists
-- (allow) and objects (an escalate or prefix object to share) replace the default whole.
function M.options(defaults, opts, who)
	opts = opts or {}
	if type(opts) ~= "table" then error(who .. ": options must be a table", 3) end
	for k in pairs(opts) do
		if defaults[k] == nil then error(string.format("%s: unknown option '%s'", who, tostring(k)), 3) end
	end
	local o = {}
	for k, v in pairs(defaults) do
		local given = opts[k]
		if type(v) == "table" and type(given) == "table" and v[1] == nil and next(v) ~= nil
			and getmetatable(given) == nil then
			local m = {}
			for mk, mv in pairs(v) do m[mk] = mv end
			for mk, mv in pairs(given) do m[mk] = mv end
			o[k] = m
		elseif given ~= nil then
			o[k] = given
		else
			o[k] = v
		end
	end
	return o
end

-- Seconds from a duration option, with the option named in the error.
function M.seconds(v, who, name)
	local okp, s = pcall(duration.parse, v, who .. ": " .. name)
	if not okp then error(s, 3) end
	return s
end

local Banner = {}
Banner.__index = Banner

-- who: reaction name (logs, reasons). opts: hx, allow (list; DEFAULT_ALLOW always added), bantime
-- (used when escalate is false), escalate (object, options table or false), prefix (object, options
-- table or false), clock.
function M.banner(who, opts)
	local hx = opts.hx or require("hyperion")
	local nets = {}
	for _, n in ipairs(M.DEFAULT_ALLOW) do nets[#nets + 1] = n end
	local okl, err = pcall(function()
		for _, n in ipairs(opts.allow or {}) do nets[#nets + 1] = n end
	end)
	if not okl then error(who .. ": allow must be a list of networks: " .. tostring(err), 3) end
	local oks, allow = pcall(cidr.set, nets)
	if not oks then error(who .. ": allow: " .. tostring(allow), 3) end
	local self = setmetatable({ who = who, hx = hx, allow = allow }, Banner)
	local clk = opts.clock or hx.now
	if opts.escalate == false then
		self.bantime = M.seconds(opts.bantime or escalate.DEFAULT_BASE, who, "bantime")
	elseif type(opts.escalate) == "table" and opts.escalate.next then
		self.escalate = opts.escalate
	else
		local e = {}
		for k, v in pairs(opts.escalate or {}) do e[k] = v end
		e.hx, e.clock = hx, e.clock or clk
		e.namespace = e.namespace or M.DEFAULT_NAMESPACE
		local oke, obj = pcall(escalate.new, e)
		if not oke then error(who .. ": " .. tostring(obj), 3) end
		self.escalate = obj
	end
	if type(opts.prefix) == "table" and opts.prefix.add then
		self.prefix = opts.prefix
	elseif opts.prefix ~= false and opts.prefix ~= nil then
		local p = {}
		for k, v in pairs(opts.prefix) do p[k] = v end
		p.hx, p.clock, p.allow = hx, p.clock or clk, p.allow or nets
		p.reason = p.reason or who
		local okp, obj = pcall(prefix.new, p)
		if not okp then error(who .. ": " .. tostring(obj), 3) end
		self.prefix = obj
	end
	return self
end

function Banner:allowed(src)
	return self.allow:contains(src)
end

-- Bans src for reason. ev (optional) is the triggering event: its destination is one of the host's
-- own addresses, which prefix aggregation must never cover. Returns ttl, offence number; or nil, why.
function Banner:ban(src, reason, ev)
	local hx = self.hx
	if not src or not cidr.valid(src) then return nil, "not an address" end
	if self.allow:contains(src) then return nil, "allowlisted" end
	if hx.banned(src) then return nil, "already banned" end
	local ttl, n = self.bantime, 1
	if self.escalate then ttl, n = self.escalate:next(src) end
	local text = string.format("%s: %s", self.who, reason)
	if n > 1 then text = text .. string.format(" (ban #%d)", n) end
	if #text > M.REASON_MAX then text = text:sub(1, M.REASON_MAX) end
	local okb, err = pcall(hx.ban, src, ttl, text)
	if not okb then
		hx.log("warning", string.format("%s: ban of %s failed: %s", self.who, src, tostring(err)))
		return nil, tostring(err)
	end
	hx.log("info", string.format("%s: banned %s for %s: %s", self.who, src, duration.format(ttl), text))
	if self.prefix then
		if ev and ev.dst and self.prefix.protect_local then self.prefix:protect_local(ev.dst) end
		local pfx, pttl = self.prefix:add(src, ttl)
		if pfx then
			hx.log("info", string.format("%s: banned prefix %s for %s", self.who, pfx,
				pttl > 0 and duration.format(pttl) or "ever"))
		end
	end
	return ttl, n
end

return M
