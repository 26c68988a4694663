-- Policy: ban a source that touches many distinct ports or hosts within a minute (TCP and UDP scans).
-- Run as is (`hyperiond -p scripts/portscan.lua`) or combine the module in your own policy:
--   require("hyperion.reactions.portscan").setup{ ports = 10 }
-- Options (all optional; these are the defaults, see lib/hyperion/reactions/portscan.lua):
local OPTIONS = {
	ports = 15,                     -- distinct proto/port pairs within window that ban
	hosts = 20,                     -- distinct destination hosts within window that ban
	window = "1m",
	kinds = { policy = true, flow_new = true, invalid = true },
	protos = { tcp = true, udp = true },
	count_suppressed = true,        -- sampled-away refused probes count as distinct ports
	allow = { "127.0.0.0/8", "::1" },
	escalate = { base = "1h", factor = 2, max = "1w", forget = "1d" },
	prefix = { threshold = 5, prefix4 = 24, prefix6 = 64 },
}

require("hyperion.reactions.portscan").setup(OPTIONS)
