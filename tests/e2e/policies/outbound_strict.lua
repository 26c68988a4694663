-- Test policy for tests/e2e/test_outbound.sh: as outbound.lua, and no mid-stream pickup at all: a TCP
-- packet of no known flow is dropped. Outbound flows are still known (tc egress saw their SYN).
local hx = require("hyperion")

hx.config{
	mode = "enforce",
	allow_tcp = { 22, 80 },
	allow_udp = {},
	pickup = "strict",
}
