#!/usr/bin/env bash
# Runtime figures (hyperiond): events/s into a no-op hook and into autoban.lua, reaction latency from the
# offending packet's event to the ban in the map, hot-reload time, time to load 100,000 bans, RSS.
# Prints a Markdown section. A hook per figure; each says "not measured: why" until its parts exist.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
mode=${1:-full}
echo "## Runtime (hyperiond)"
echo
if [ ! -x "$BUILD/hyperiond" ] || [ ! -x "$BUILD/hyperionctl" ]; then
	echo "not measured: build/hyperiond / build/hyperionctl not built yet. Figures this section will hold:"
	echo
	echo "| figure | how |"
	echo "|---|---|"
	echo "| events/s into a no-op Lua hook | UDP flood matching an alert signature, hook \`hx.on('match', function() end)\`; events_read/s from \`hyperionctl stats\` |"
	echo "| events/s into autoban.lua | same flood, scripts/autoban.lua |"
	echo "| reaction latency p50/p99 | event ts_ns of the offending packet -> ban visible in bans4 (poll ban_match) |"
	echo "| hot-reload time | \`hyperionctl reload\` round trip, policy with 256 signatures |"
	echo "| time to load 100,000 bans | \`hyperionctl ban add\` batch / state restore |"
	echo "| daemon RSS | /proc/PID/status VmRSS after the above |"
	exit 0
fi
echo "not measured yet: hyperiond exists but the runtime hooks are not wired (bench/runtime.sh)."
