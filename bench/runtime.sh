#!/usr/bin/env bash
# Runtime figures (hyperiond), printed as a Markdown section: events/s into a no-op Lua hook and into
# the autoban reaction, reaction latency from the offending packet to the ban in the map (p50/p99),
# hot-reload time, time to load 100,000 bans, daemon RSS. Own namespaces hyp-bench-rt*-$$, TEST-NET.
# Usage: bench/runtime.sh [full|quick]
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUILD=${BUILD:-build}
B=$BUILD/bench
mode=${1:-full}
ID=$$
NS_TX=hyp-bench-rtx-$ID NS_RX=hyp-bench-rrx-$ID
IF_TX=hbrtx0 IF_RX=hbrrx0
TX4=192.0.2.1 RX4=192.0.2.2
WORK=$(mktemp -d /tmp/hyp-bench-rt.XXXXXX)
# Pins on a bpffs of our own: \`ip netns exec\` remounts /sys, so pins under /sys/fs/bpf made inside the
# receiver namespace would be invisible to reactlat running in the sender namespace.
BPFFS=$WORK/bpffs
PIN=$BPFFS/pins
SOCK=$WORK/hyperiond.sock
DAEMON_PID=
RUNS=0
HOOK_TIMEOUT_MS=10000   # the 100,000-ban timer runs for seconds; the default 100 ms deadline would kill it
case $mode in
quick) DUR=1; TRIALS=20; BANS=100000; RELOADS=3 ;;
*)     DUR=3; TRIALS=100; BANS=100000; RELOADS=5 ;;
esac
[ "$TRIALS" -gt 254 ] && TRIALS=254

echo "## Runtime (hyperiond)"
echo
for t in hyperiond hyperionctl; do
	if [ ! -x "$BUILD/$t" ]; then
		echo "not measured: $BUILD/$t not built."
		exit 0
	fi
done

cleanup() {
	daemon_stop
	ip netns del "$NS_TX" 2>/dev/null
	ip netns del "$NS_RX" 2>/dev/null
	umount "$BPFFS" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ctl() { "$BUILD/hyperionctl" -s "$SOCK" "$@"; }
ms_now() { echo $(($(date +%s%N) / 1000000)); }
json_num() { grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2; }

net_up() {
	mkdir -p "$BPFFS" && mount -t bpf bpf "$BPFFS" || exit 1
	ip netns add "$NS_TX" && ip netns add "$NS_RX" || exit 1
	ip link add "$IF_TX" netns "$NS_TX" type veth peer name "$IF_RX" netns "$NS_RX" || exit 1
	ip -n "$NS_TX" link set "$IF_TX" up
	ip -n "$NS_RX" link set "$IF_RX" up
	ip -n "$NS_RX" link set lo up
	ip -n "$NS_TX" addr add "$TX4/24" dev "$IF_TX"
	ip -n "$NS_RX" addr add "$RX4/24" dev "$IF_RX"
	ip -n "$NS_RX" route add blackhole 198.51.100.0/24
	ip -n "$NS_RX" route add blackhole 203.0.113.0/24
	RX_MAC=$(ip -n "$NS_RX" -br link show "$IF_RX" | awk '{print $3}')
}

# Policies. Signatures: an alert one (events without bans), a ban one (the reaction), filler for reload.
policy_common() {   # nfiller
	cat <<EOF
local hx = require("hyperion")
hx.config{ mode = "enforce", allow_udp = { 53 }, allow_tcp = { 80 }, event_rate = 0 }
hx.signature{ name = "bench-alert", pattern = "HYPSIG-ALERT", action = "alert", proto = "udp" }
hx.signature{ name = "bench-drop", pattern = "HYPSIG-DROP", action = "drop", proto = "udp" }
hx.signature{ name = "bench-ban", pattern = "HYPSIG-BAN", action = "ban" }
for i = 1, $1 do hx.signature{ name = ("filler%d"):format(i), pattern = ("s%04d-hypbench-%x"):format(i, i * 7919) } end
EOF
}
write_policies() {
	{ policy_common 0; echo 'hx.on("match", function(ev) end)'; } >"$WORK/noop.lua"
	{ policy_common 0; echo 'require("hyperion.reactions.autoban").setup{ threshold = 5, window = "10m" }'; } >"$WORK/autoban.lua"
	# Reaction latency: prefix aggregation off, or the /24 gets banned after five trials and every later
	# trial would find its source already covered.
	{ policy_common 0; echo 'require("hyperion.reactions.autoban").setup{ threshold = 5, window = "10m", prefix = false }'; } >"$WORK/react.lua"
	{ policy_common 250; echo 'hx.on("match", function(ev) end)'; } >"$WORK/reload.lua"
	# 100,000 bans issued by the policy itself, from a timer right after activation (a policy may queue
	# only a few hundred at load time); 240.0.0.0/4 is reserved and never routed: map content only.
	{ policy_common 0; echo 'hx.on("match", function(ev) end)'
	  echo "hx.after(0.001, function() for i = 0, $((BANS - 1)) do hx.ban(('240.%d.%d.%d'):format(math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)) end end)"
	} >"$WORK/bans.lua"
}

daemon_start() {   # policy
	rm -f "$SOCK"
	RUNS=$((RUNS + 1))   # a fresh state dir each time: bans restored from a snapshot would fake a reaction
	ip netns exec "$NS_RX" "$BUILD/hyperiond" -i "$IF_RX" -p "$1" --socket "$SOCK" --pin-dir "$PIN" \
		--state-dir "$WORK/state-$RUNS" --lib-dir "$ROOT/lib" --log-level warning --hook-timeout "$HOOK_TIMEOUT_MS" \
		2>>"$WORK/daemon.log" &
	DAEMON_PID=$!
	taskset -pc 1 "$DAEMON_PID" >/dev/null 2>&1
	local i
	for i in $(seq 1 300); do   # bounded: 30 s
		ctl status >/dev/null 2>&1 && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "daemon did not start: $(tail -n 3 "$WORK/daemon.log" | tr '\n' ' ')" >&2
	return 1
}

daemon_stop() {
	[ -n "$DAEMON_PID" ] || return 0
	kill -TERM "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
}

# events/s: a flood of matching frames for DUR seconds; events the daemon read and hooks it called.
events_rate() {   # payload -> "events_read/s hook_calls/s lost"
	local s0 s1 out ns
	s0=$(ctl --json stats)
	out=$(ip netns exec "$NS_TX" "$B/trafficgen" -i "$IF_TX" --dmac "$RX_MAC" --cpu 0 --proto udp \
		--src 198.51.100.0 --vary-src 250 --vary-port 1000 --sport 1024 --dst "$RX4" --dport 53 \
		--payload "$1" --size 60 --duration "$DUR")
	sleep 0.5   # the daemon drains what is left in the ring
	s1=$(ctl --json stats)
	ns=$(sed -nE 's/.*ns=([0-9]+).*/\1/p' <<<"$out")
	local e0 e1 h0 h1 l0 l1
	e0=$(json_num events_read <<<"$s0"); e1=$(json_num events_read <<<"$s1")
	h0=$(json_num hook_calls <<<"$s0"); h1=$(json_num hook_calls <<<"$s1")
	l0=$(json_num events_lost <<<"$s0"); l1=$(json_num events_lost <<<"$s1")
	awk -v e=$((${e1:-0} - ${e0:-0})) -v h=$((${h1:-0} - ${h0:-0})) -v l=$((${l1:-0} - ${l0:-0})) -v ns="$ns" \
		'BEGIN { printf "%.0f %.0f %d", e * 1e9 / ns, h * 1e9 / ns, l }'
}

median_ms() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

net_up
write_policies
echo "| figure | value | how |"
echo "|---|---:|---|"
if daemon_start "$WORK/noop.lua"; then
	set -- $(events_rate HYPSIG-ALERT)
	echo "| events/s into a no-op Lua hook | ${1:-?} | alert-signature flood from 250 sources, ${DUR}s; hook calls/s ${2:-?} (batches), ring-buffer losses ${3:-?} (none: the figure is what the datapath emitted, a lower bound) |"
	# hot reload, 253 signatures
	cp "$WORK/reload.lua" "$WORK/noop.lua"
	for i in $(seq 1 "$RELOADS"); do
		t0=$(ms_now); ctl reload >/dev/null 2>&1; echo $(($(ms_now) - t0))
	done >"$WORK/reload.ms"
	echo "| hot reload, 253 signatures (ms, median of $RELOADS) | $(median_ms <"$WORK/reload.ms") | \`hyperionctl reload\` round trip |"
	cp "$WORK/bans.lua" "$WORK/noop.lua"
	t0=$(ms_now); ctl reload >/dev/null 2>&1
	for i in $(seq 1 1200); do   # bounded: 60 s
		nb=$(ctl --json status 2>/dev/null | json_num bans)
		[ "${nb:-0}" -ge "$BANS" ] && break
		sleep 0.05
	done
	t=$(($(ms_now) - t0))
	echo "| time to load $BANS bans (ms) | $t | reload into a policy whose timer calls \`hx.ban\` $BANS times, until \`status\` shows them (polled every 50 ms; ${nb:-?} bans seen) |"
	rss=$(awk '/VmRSS/ { print $2 }' /proc/"$DAEMON_PID"/status 2>/dev/null)
	echo "| daemon RSS after the above (MiB) | $(awk -v k="${rss:-0}" 'BEGIN { printf "%.1f", k / 1024 }') | /proc/PID/status VmRSS |"
	daemon_stop
else
	echo "| no-op hook, reload, bans, RSS | - | daemon did not start (see stderr) |"
fi
if daemon_start "$WORK/autoban.lua"; then
	set -- $(events_rate HYPSIG-DROP)
	echo "| events/s into autoban | ${1:-?} | events the daemon read with the autoban reaction loaded: drop-signature flood from 250 sources (each banned after 5 matches, later events are mostly block events), ${DUR}s; hook calls/s ${2:-?} (batches), losses ${3:-?} |"
	daemon_stop
fi
if daemon_start "$WORK/react.lua"; then
	out=$(ip netns exec "$NS_TX" "$B/reactlat" -i "$IF_TX" --dmac "$RX_MAC" --dst "$RX4" --bans "$PIN/bans4" \
		--src-net 203.0.113 --payload HYPSIG-BAN --trials "$TRIALS" 2>&1 | tail -n 1)
	p50=$(sed -nE 's/.*p50_us=([0-9]+).*/\1/p' <<<"$out"); p99=$(sed -nE 's/.*p99_us=([0-9]+).*/\1/p' <<<"$out")
	echo "| reaction latency p50 / p99 (us) | ${p50:-?} / ${p99:-?} | one ban-signature frame per fresh source -> /32 in bans4 (autoban without prefix aggregation, map polled every 20 us), $out |"
	daemon_stop
fi
