-- Test policy for tests/e2e/test_reactions.sh: the shipped reactions with short times so bans expire and
-- escalate within a test run (3 s, then 6 s), a low autoban threshold, events unsampled enough that a
-- scan's probes all reach the hooks. Ports: 22 (echo server), 80 and 8080 (HTTP).
local hx = require("hyperion")

local ALLOW = { "127.0.0.0/8", "::1" }

hx.config{
	mode = "enforce",
	allow_tcp = { 22, 80, 8080 },
	allow_udp = { 53 },
	scan_depth = 256,
	stream_depth = 4096,
	syn_rate = 50, syn_burst = 100,
	event_rate = 1000, event_burst = 1000,
}
for _, net in ipairs(ALLOW) do hx.allow(net) end

-- Signatures inline (no rules file: the test copies this policy elsewhere to break and restore it).
local SIGS = {
	{ name = "etc-passwd", pattern = "/etc/passwd", action = "drop", proto = "tcp" },
	{ name = "dir-traversal", pattern = "../../", action = "drop", proto = "tcp" },
	{ name = "xss-script", pattern = "<script", action = "drop", proto = "tcp", nocase = true },
	{ name = "log4shell", pattern = "${jndi:", action = "ban", proto = "any", nocase = true },
}
for _, s in ipairs(SIGS) do hx.signature(s) end

-- One escalation history for every reaction: 3 s, then 6 s, 12 s ...; remembered for an hour.
local escalate = require("hyperion.escalate").new{ namespace = "bans", base = "3s", factor = 2, max = "1m",
	forget = "1h" }

-- No prefix aggregation: the test bans more than five addresses of the attacker's /64 on purpose and
-- then checks single addresses of it (scripts/default.lua keeps aggregation on).
require("hyperion.reactions.autoban").setup{
	threshold = 3, window = "1m", allow = ALLOW, escalate = escalate, prefix = false,
}
-- Scans get a ban that outlasts the scan (the test checks nmap's last probe is dropped).
require("hyperion.reactions.portscan").setup{
	ports = 10, hosts = 20, window = "1m", allow = ALLOW,
	escalate = { namespace = "scans", base = "1m", factor = 2, max = "10m", forget = "1h" }, prefix = false,
}
require("hyperion.reactions.synflood").setup{
	tighten = { syn = 5, pps = 500 }, ban_after = 200, window = "10s", interval = "500ms", quiet = "5s",
	allow = ALLOW, escalate = escalate, prefix = false,
}
