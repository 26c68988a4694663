-- Policy: a sensible host firewall: SSH/HTTP(S)/DNS open, exploit signatures, autoban, portscan, synflood.
-- `hyperiond -p scripts/default.lua`. Edit the options below; the reactions share one escalation
-- history (hx.store "bans") and one prefix aggregator, so offences add up across them.
local hx = require("hyperion")
local sigfile = require("hyperion.sigfile")
local escalate = require("hyperion.escalate")
local prefix = require("hyperion.prefix")

-- Never banned and never inspected: loopback, plus your management networks.
local ALLOW = { "127.0.0.0/8", "::1" }

hx.config{
	mode = "enforce",
	allow_tcp = { 22, 80, 443 },
	allow_udp = { 53 },
	scan_depth = 256,       -- bytes inspected per packet: request lines and headers
	stream_depth = 4096,    -- bytes per flow direction: the request, not the download
	syn_rate = 50, syn_burst = 100,   -- new connections per second per source
	event_rate = 50, event_burst = 100,
}
for _, net in ipairs(ALLOW) do hx.allow(net) end

-- Signatures from signatures.rules beside this file; bad lines are logged and skipped.
local nsigs, errors = sigfile.load("signatures.rules")
hx.log("info", string.format("default: %d signatures loaded, %d lines skipped", nsigs, #errors))

local shared = {
	escalate = escalate.new{ namespace = "bans", base = "10m", factor = 2, max = "1w", forget = "1d" },
	prefix = prefix.new{ threshold = 5, prefix4 = 24, prefix6 = 64, allow = ALLOW },
}

require("hyperion.reactions.autoban").setup{
	threshold = 5, window = "10m", allow = ALLOW,
	escalate = shared.escalate, prefix = shared.prefix,
}
require("hyperion.reactions.portscan").setup{
	ports = 15, hosts = 20, window = "1m", allow = ALLOW,
	escalate = shared.escalate, prefix = shared.prefix,
}
require("hyperion.reactions.synflood").setup{
	tighten = { syn = 5, pps = 500 }, ban_after = 500, window = "10s", allow = ALLOW,
	escalate = shared.escalate, prefix = shared.prefix,
}
