-- Policy: ban sources that keep tripping drop signatures or refused/invalid verdicts, escalating repeats.
-- Run as is (`hyperiond -p scripts/autoban.lua`) or combine the module in your own policy:
--   require("hyperion.reactions.autoban").setup{ threshold = 3 }
-- Options (all optional; these are the defaults, see lib/hyperion/reactions/autoban.lua):
local OPTIONS = {
	threshold = 5,                  -- weighted events within window that ban
	window = "10m",
	weights = { match = 1, invalid = 1, policy = 0.25 },  -- 20 refused flows = 5 points
	ban_actions = { ban = true },   -- signatures with action=ban ban on the first hit
	count_alerts = false,           -- alert-only signatures are not evidence
	allow = { "127.0.0.0/8", "::1" },
	escalate = { base = "10m", factor = 2, max = "1w", forget = "1d" },
	prefix = { threshold = 5, prefix4 = 24, prefix6 = 64 },
}

require("hyperion.reactions.autoban").setup(OPTIONS)
