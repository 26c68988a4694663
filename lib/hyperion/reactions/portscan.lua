-- Reaction: ban a source that touches many distinct ports or hosts in a short window (SYN/UDP scans).
--
-- Counted probes: refused new flows (policy events), accepted ones (flow_new) and, for TCP, out-of-state
-- packets (invalid: FIN/NULL/Xmas/ACK scans). Distinct "proto/port" and destination hosts are counted
-- per source. The datapath samples events per source, so a fast scan reports only some probes and
-- marks the rest in ev.suppressed; suppressed refused probes are counted as distinct ports (a source
-- refused that often is scanning). Suppressed flow_new events are not: a busy legitimate client opens
-- many flows to the same port.
local hooks = require("hyperion.hooks")
local window = require("hyperion.window")
local common = require("hyperion.reactions.common")

local M = {}

M.DEFAULTS = {
	ports = 15,                 -- distinct ports within window that ban
	hosts = 20,                 -- distinct destination hosts within window that ban (sweeps)
	window = "1m",
	kinds = { policy = true, flow_new = true, invalid = true },
	protos = { tcp = true, udp = true },
	count_suppressed = true,
	allow = {},
	bantime = "1h",             -- only when escalate = false
	escalate = { base = "1h", factor = 2, max = "1w", forget = "1d" },
	prefix = { threshold = 5, prefix4 = 24, prefix6 = 64 },
	cap = 10000,                -- sources tracked at once
	items_max = 256,            -- distinct ports/hosts remembered per source
	sweep = "1m",
	hx = false,
	clock = false,
}

local Portscan = {}
Portscan.__index = Portscan

function M.setup(opts)
	local o = common.options(M.DEFAULTS, opts, "portscan")
	local hx = o.hx or require("hyperion")
	for _, k in ipairs({ "ports", "hosts" }) do
		if type(o[k]) ~= "number" or o[k] < 2 then error("portscan: " .. k .. " must be a number >= 2", 2) end
	end
	local self = setmetatable({ o = o, hx = hx }, Portscan)
	local w = common.seconds(o.window, "portscan", "window")
	local clk = o.clock or hx.now
	local items_max = math.max(o.items_max, o.ports, o.hosts)
	self.ports = window.distinct{ window = w, cap = o.cap, items_max = items_max, clock = clk }
	self.hosts = window.distinct{ window = w, cap = o.cap, items_max = items_max, clock = clk }
	self.unseen = window.new{ window = w, cap = o.cap, clock = clk }
	self.banner = common.banner("portscan", { hx = hx, allow = o.allow, bantime = o.bantime,
		escalate = o.escalate, prefix = o.prefix, clock = o.clock or nil })
	for kind, on in pairs(o.kinds) do
		if on then hooks.on(kind, function(ev) self:event(ev) end, hx) end
	end
	hx.every(common.seconds(o.sweep, "portscan", "sweep"), function()
		self.ports:sweep(); self.hosts:sweep(); self.unseen:sweep()
	end)
	return self
end

function Portscan:forget(src)
	self.ports:reset(src); self.hosts:reset(src); self.unseen:reset(src)
end

function Portscan:event(ev)
	local o, src, proto = self.o, ev.src, ev.proto_name
	if not src or not o.protos[proto] then return end
	if ev.kind == "invalid" and proto ~= "tcp" then return end
	if self.banner:allowed(src) then return end
	local np = self.ports:add(src, proto .. "/" .. tostring(ev.dport))
	local nh = ev.dst and self.hosts:add(src, ev.dst) or 0
	local unseen
	if o.count_suppressed and ev.kind ~= "flow_new" and (ev.suppressed or 0) > 0 then
		unseen = self.unseen:add(src, ev.suppressed)
	else
		unseen = self.unseen:count(src)
	end
	local est = np + unseen
	if est >= o.ports or nh >= o.hosts then
		local reason = string.format("%d ports, %d hosts in %s (%s)", est, nh, tostring(o.window), proto)
		self.banner:ban(src, reason, ev)
		self:forget(src)
	end
end

return M
