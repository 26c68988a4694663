-- Policy: tighten flooding sources' rate limits, ban the worst, relax them once the flood is over.
-- Run as is (`hyperiond -p scripts/synflood.lua`; the datapath needs syn_rate/pps_rate set to emit
-- ratelimit events) or combine the module in your own policy:
--   require("hyperion.reactions.synflood").setup{ ban_after = 200 }
-- Options (all optional; these are the defaults, see lib/hyperion/reactions/synflood.lua):
local OPTIONS = {
	tighten = { syn = 5, pps = 500 },   -- per-source limits while a source floods (0 = config's)
	ban_after = 500,                    -- rate-limited packets within window that make a ban candidate
	window = "10s",
	max_bans = 10,                      -- bans per check, worst first
	interval = "1s",
	quiet = "30s",                      -- quiet this long: limits back to the config's
	allow = { "127.0.0.0/8", "::1" },
	escalate = { base = "10m", factor = 2, max = "1d", forget = "1d" },
	prefix = { threshold = 5, prefix4 = 24, prefix6 = 64 },
}

require("hyperion.reactions.synflood").setup(OPTIONS)
