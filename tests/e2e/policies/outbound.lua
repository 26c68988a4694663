-- Test policy for tests/e2e/test_outbound.sh: restrictive inbound (SSH and HTTP only, nothing on UDP),
-- enforce mode. The host's own outbound connections must keep working through conntrack (tc egress).
local hx = require("hyperion")

hx.config{
	mode = "enforce",
	allow_tcp = { 22, 80 },
	allow_udp = {},
}
