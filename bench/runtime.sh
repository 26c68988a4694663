#!/usr/bin/env bash
# Runtime figures (hyperiond), printed as a Markdown section: events/s into a no-op Lua hook and into
# the autoban reaction, reaction latency from the offending packet to the ban in the map (p50/p99),
# hot-reload time, time to load 100,000 bans, daemon RSS. Own namespaces hyp-bench-rt*-$$, TEST-NET.
# CPUs: the generator / reactlat (and the receiver's XDP, which runs in their send path) on CPU 0, the
# daemon on CPU 1 (written for the 2-vCPU bench machine).
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
# Reaction latency: TRIALS fresh sources per source network (at most 254), one network in quick mode.
case $mode in
quick) DUR=1; TRIALS=20; REACT_NETS="203.0.113"; BANS=100000; RELOADS=3 ;;
*)     DUR=3; TRIALS=254; REACT_NETS="203.0.113 198.51.100"; BANS=100000; RELOADS=5 ;;
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
	# The no-op hook only counts the events it is called with; the count is logged once, after the
	# flood (when it held still for a timer tick), so nothing but the hook runs while events flow.
	{ policy_common 0; cat <<'EOF'
local n, seen, told = 0, 0, 0
hx.on("match", function(ev) n = n + 1 end)
hx.every(0.1, function()
	if n == seen and n ~= told then told = n; hx.log("warning", "bench-hook-events " .. n) end
	seen = n
end)
EOF
	} >"$WORK/noop.lua"
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
	# Pinned from the start (exec chain: the PID is the daemon's), so its threads are on CPU 1 too.
	taskset -c 1 ip netns exec "$NS_RX" "$BUILD/hyperiond" -i "$IF_RX" -p "$1" --socket "$SOCK" --pin-dir "$PIN" \
		--state-dir "$WORK/state-$RUNS" --lib-dir "$ROOT/lib" --log-level warning --hook-timeout "$HOOK_TIMEOUT_MS" \
		2>>"$WORK/daemon.log" &
	DAEMON_PID=$!
	local i
	for i in $(seq 1 300); do   # bounded: 30 s
		ctl status >/dev/null 2>&1 && { settle; return 0; }
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

# Wait (bounded: 10 s) until both CPUs were idle for a 200 ms window: a stopped daemon's maps are freed
# by kernel workers for up to a second afterwards, which would otherwise compete with the next figure.
settle() {
	local i a b
	for i in $(seq 1 50); do
		a=$(awk '/^cpu[01] / { s += $2 + $3 + $4 + $7 + $8 } END { print s }' /proc/stat)
		sleep 0.2
		b=$(awk '/^cpu[01] / { s += $2 + $3 + $4 + $7 + $8 } END { print s }' /proc/stat)
		[ $((b - a)) -le $(($(getconf CLK_TCK) / 50)) ] && return 0   # <= 5 % of 2 CPUs x 0.2 s
	done
	echo "bench/runtime.sh: CPUs still busy after 10 s; measuring anyway" >&2
}
daemon_cpu_ticks() { awk '{ print $14 + $15 }' /proc/"$DAEMON_PID"/stat 2>/dev/null; }
cpu1_ticks() { awk '$1 == "cpu1" { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }   # busy, steal
hook_events() {   # the no-op hook's count, logged after the flood (bounded: 3 s)
	local i n
	for i in $(seq 1 30); do
		n=$(grep -o 'bench-hook-events [0-9]*' "$WORK/daemon.log" | tail -n 1 | cut -d' ' -f2)
		[ -n "$n" ] && [ "$n" -ge "${1:-0}" ] && { echo "$n"; return; }
		sleep 0.1
	done
	echo "${n:-0}"
}

# A flood of matching frames for DUR seconds from 250 sources (UDP, 60-byte frames; one flow per source,
# or with "--vary-port N" a new flow per frame). Prints "frames_seen/s events_read/s lua_calls/s lost
# daemon_cpu% events_read events_emitted/s": frames the receiver's datapath saw (the veth may drop some
# of those sent), events it emitted (submitted + lost), rates over the generator's own duration (what
# is still in the ring when it stops, at most a poll period's worth, is read after).
events_rate() {   # payload [trafficgen options]
	local s0 s1 out ns c0 c1 pl=$1
	shift
	s0=$(ctl --json stats)
	c0=$(daemon_cpu_ticks)
	out=$(ip netns exec "$NS_TX" "$B/trafficgen" -i "$IF_TX" --dmac "$RX_MAC" --cpu 0 --proto udp \
		--src 198.51.100.0 --vary-src 250 "$@" --sport 1024 --dst "$RX4" --dport 53 \
		--payload "$pl" --size 60 --duration "$DUR")
	c1=$(daemon_cpu_ticks)
	sleep 0.5   # the daemon drains what is left in the ring
	s1=$(ctl --json stats)
	ns=$(sed -nE 's/.*ns=([0-9]+).*/\1/p' <<<"$out")
	local f0 f1 u0 u1 e0 e1 h0 h1 l0 l1
	f0=$(json_num seen <<<"$s0"); f1=$(json_num seen <<<"$s1")
	u0=$(json_num events_submitted <<<"$s0"); u1=$(json_num events_submitted <<<"$s1")
	e0=$(json_num events_read <<<"$s0"); e1=$(json_num events_read <<<"$s1")
	h0=$(json_num hook_calls <<<"$s0"); h1=$(json_num hook_calls <<<"$s1")
	l0=$(json_num events_lost <<<"$s0"); l1=$(json_num events_lost <<<"$s1")
	awk -v f=$((${f1:-0} - ${f0:-0})) -v u=$((${u1:-0} - ${u0:-0})) -v e=$((${e1:-0} - ${e0:-0})) \
		-v h=$((${h1:-0} - ${h0:-0})) -v l=$((${l1:-0} - ${l0:-0})) -v ns="${ns:-1}" -v c=$((${c1:-0} - ${c0:-0})) \
		-v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f %.0f %.0f %d %.0f %d %.0f", f * 1e9 / ns, e * 1e9 / ns,
			h * 1e9 / ns, l, 100 * c / hz / (ns / 1e9), e, (u + l) * 1e9 / ns }'
}

median_ms() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

net_up
write_policies
echo "| figure | value | how |"
echo "|---|---:|---|"
if daemon_start "$WORK/noop.lua"; then
	# Drop-signature flood: dropping is cheap for the datapath, so it emits more events than an
	# alert flood (whose frames go on to the stack); event_rate = 0, so every frame is one event.
	set -- $(events_rate HYPSIG-DROP)
	hook=$(hook_events "${6:-0}")
	hps=$(awk -v h="$hook" -v e="${2:-0}" -v n="${6:-0}" 'BEGIN { printf "%.0f", n ? e * h / n : 0 }')
	echo "| events/s into a no-op Lua hook | $hps | events the hook was called with (counted inside it) per second: drop-signature flood from 250 sources, every frame an event (no sampling), ${DUR}s. The datapath saw ${1:-?} frames/s and emitted ${7:-?} events/s, the daemon read ${2:-?} events/s in ${3:-?} Lua calls/s (batches) using ${5:-?} % of its CPU; ${4:-?} events lost (ring buffer full). With the daemon mostly idle, the generator sets this figure, not the daemon |"
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
	# A new flow per frame: autoban counts a repeated match on one flow once (a retransmission).
	set -- $(events_rate HYPSIG-DROP --vary-port 1000)
	echo "| events/s into autoban | ${2:-?} | events the daemon read with the autoban reaction loaded: drop-signature flood from 250 sources, a new flow per frame (each source banned after 5 matches, the /24 after 5 sources; later events are mostly block events, which no hook takes), ${DUR}s; the datapath saw ${1:-?} frames/s and emitted ${7:-?} events/s, ${3:-?} Lua calls/s, daemon CPU ${5:-?} %, ${4:-?} events lost |"
	daemon_stop
fi
if daemon_start "$WORK/react.lua"; then
	: >"$WORK/react.txt"
	# What else ran on the daemon's CPU meanwhile (other tasks, the hypervisor's steal): it delays wakeups.
	read -r b0 st0 < <(cpu1_ticks); c0=$(daemon_cpu_ticks); t0=$(ms_now)
	for net in $REACT_NETS; do
		ip netns exec "$NS_TX" "$B/reactlat" -i "$IF_TX" --dmac "$RX_MAC" --dst "$RX4" --bans "$PIN/bans4" \
			--src-net "$net" --payload HYPSIG-BAN --trials "$TRIALS" --cpu 0 >>"$WORK/react.txt" 2>&1
	done
	read -r b1 st1 < <(cpu1_ticks); c1=$(daemon_cpu_ticks); t1=$(ms_now)
	# p50 / p99 / max over all trials (nearest rank), the timeouts, and when the daemon wrote the bans
	# ("trial T src S written W seen V us"; W from the ban's created_ns, -1 if unknown)
	out=$(awk 'function srt(a, n,   i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } }
		function rank(n, q,   r) { r = int(n * q + 0.999999); return r < 1 ? 1 : r }
		/^trial / { if ($NF == "us") { v[++n] = $(NF - 1) + 0; if ($5 == "written" && $6 >= 0) w[++m] = $6 + 0 } else to++ }
		END { if (!n) { print "n=0"; exit }
		      srt(v, n); srt(w, m)
		      printf "n=%d timeouts=%d p50_us=%d p99_us=%d max_us=%d", n, to, v[rank(n, 0.5)], v[rank(n, 0.99)], v[n]
		      if (m) printf "; ban written by the daemon at p50 %d / p99 %d us", w[rank(m, 0.5)], w[rank(m, 0.99)] }' "$WORK/react.txt")
	cpu1=$(awk -v b=$((b1 - b0)) -v st=$((st1 - st0)) -v c=$((c1 - c0)) -v ms=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
		'BEGIN { ms = ms > 0 ? ms : 1; o = b - c; o = o > 0 ? o : 0
			 printf "daemon %.0f %%, other tasks %.0f %%, steal %.0f %%", 1e5 * c / hz / ms, 1e5 * o / hz / ms, 1e5 * st / hz / ms }')
	p50=$(sed -nE 's/.*p50_us=([0-9]+).*/\1/p' <<<"$out"); p99=$(sed -nE 's/.*p99_us=([0-9]+).*/\1/p' <<<"$out")
	echo "| reaction latency p50 / p99 (us) | ${p50:-?} / ${p99:-?} | one ban-signature frame per fresh source, from handing it to the kernel to its /32 visible in bans4 (autoban without prefix aggregation); reactlat on CPU 0 polls the map without sleeping, trials 2-3 ms apart so each meets an idle daemon; $out; CPU 1 meanwhile: $cpu1 |"
	daemon_stop
fi
