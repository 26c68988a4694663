#!/usr/bin/env bash
# End-to-end: SYN cookies answered in XDP (hx.config{ syn_cookies = true }), with real TCP traffic in the
# namespace lab. Native XDP first, then generic:
#   - curl over v4 and v6 and a 2 MB download (checksummed) through cookie handshakes; the counters
#     (syncookies_sent/valid/assigned) follow, no half-open flow is inserted, `flows` shows the flows;
#   - two long-lived echo sessions (v4, v6) opened through cookies: window scale from the cookie agrees on
#     both ends, and they exchange data through a SYN flood and three reloads;
#   - a SYN flood (hping3, 4 attacker sources, v4; scapy, v6): every SYN is answered from XDP (the
#     attacker's stack resets the SYN-ACKs it receives), ct_new_insert stays flat, a client still connects;
#   - a client port reused while the server holds the tuple in TIME_WAIT (it closed first): the new SYN
#     goes to the stack, which reuses the tuple (syncookies_time_wait);
#   - a port open in the policy with nothing listening: the connect is refused at once and counted
#     (syncookies_no_listener); a port closed in the policy gets no cookie;
#   - hot reload to syn_cookies = false (normal path, no cookies sent), to syn_cookie_mss = 1200 (the
#     client's MSS follows), and back;
#   - the basic checks again with --xdp-mode generic and no peer setup.
# veth: in native mode an XDP_TX frame reaches the peer only if the peer has an XDP program (GRO alone
# gives it NAPI, but on 6.18 nothing then schedules it for XDP_TX frames): the test attaches a counting
# XDP_PASS to the peer (build/bench/xdprx, as bench/run.sh does). Skips if the kernel lacks
# bpf_sk_assign_tcp_reqsk (6.9+).
set -u
cd "$(dirname "$0")/../.." || exit 1
LAB_ID=$$
source scripts/lab.sh
source tests/e2e/lib.sh

FLOOD=${SC_FLOOD:-20000}          # v4 SYNs in the flood (4 sources share them)
FLOOD6=${SC_FLOOD6:-2000}         # v6 SYNs (scapy: slower)
XDPRX=${XDPRX:-$LAB_ROOT/build/bench/xdprx}

e2e_require ncat curl ss hping3 sha256sum nstat
e2e_traps 40
T0=$SECONDS

lab_up
PEER=b${LAB_NS_SERVER: -8}        # the server's veth peer, bridge side (lab_peer)
# a private copy of the peer's XDP_PASS program (the build directory is shared, as for the daemon)
[ -x "$XDPRX" ] && cp "$XDPRX" "$LAB_DIR/bin/xdprx" 2>/dev/null && XDPRX=$LAB_DIR/bin/xdprx
have_scapy=1
"$LAB_PY" -c 'import scapy.all' 2>/dev/null || have_scapy=0

mkdir -p "$LAB_DIR/www"
head -c 2000000 /dev/urandom >"$LAB_DIR/www/big.bin"
BIG_SHA=$(sha256sum <"$LAB_DIR/www/big.bin" | cut -d' ' -f1)
lab_start_http || { notok "HTTP server on :80"; finish; }
lab_start_echo "$LAB_NS_SERVER" 22 || { notok "echo server on :22"; finish; }
# writes a line and closes first (1b)
lab_start_ncat "$LAB_NS_SERVER" 23 --sh-exec 'echo tw-hello' || { notok "line server on :23"; finish; }
# nothing listens on 81 (open in the policy); 82 is closed in the policy

write_policy() {   # syn_cookies(true|false) [more hx.config keys, with a leading comma]
	cat >"$LAB_DIR/policy.lua" <<EOF
-- written by tests/e2e/test_syncookie.sh
local hx = require("hyperion")
hx.config{ mode = "enforce", allow_tcp = { 22, 23, 80, 81 }, syn_cookies = $1${2:-} }
EOF
}

# ---- counters -------------------------------------------------------------------------------------------
snap() { labtool stats >"$LAB_DIR/snap-$1" 2>/dev/null; }   # name: all counters and verdicts at once
val() {   # snap-name counter (or "tx_syncookie": the verdict's packets)
	awk -v r="$2" '(($1 == "counter" || $1 == "runtime") && $2 == r) || ($1 == "verdict" && $2 == "tx" && $3 == r) \
		{ print $NF; f = 1 } END { if (!f) print 0 }' "$LAB_DIR/snap-$1"
}
d() { echo $(($(val "$2" "$3") - $(val "$1" "$3"))); }   # from-snap to-snap counter: the increase

# ---- helpers --------------------------------------------------------------------------------------------
url() { case $1 in *:*) echo "http://[$1]${3:+:$3}${2:-/}" ;; *) echo "http://$1${3:+:$3}${2:-/}" ;; esac; }
# one page, up to 3 tries (a try lost to timing must not fail the run; a broken path fails all three)
fetch() {   # addr [path]: prints the body
	for _ in 1 2 3; do
		cli curl -sf --max-time 3 "$(url "$1" "${2:-/}")" && return 0
		sleep 0.2
	done
	return 1
}
page_ok() { [ "$(fetch "$1")" = "hello from hyperion lab" ]; }
big_ok() {   # addr: the 2 MB file, intact
	local got
	for _ in 1 2; do
		got=$(cli curl -sf --max-time 15 "$(url "$1" /big.bin)" | sha256sum | cut -d' ' -f1)
		[ "$got" = "$BIG_SHA" ] && return 0
		sleep 0.2
	done
	return 1
}
echo_ok() {   # addr tag: one ncat round trip to the echo server on :22
	local reply
	reply=$({ echo "$2"; sleep 0.5; } | cli timeout 5 ncat -w 3 "$1" 22 2>/dev/null)
	[ "$reply" = "$2" ]
}
oks() { local n; n=$(grep -c '^ok' "$1" 2>/dev/null); echo "${n:-0}"; }   # keepalive log: round trips
flows_of() { ctl flows --limit 1000 2>/dev/null | grep -F -- "$1" | grep -E -c 'established|time_wait'; }
basic_checks() {   # label: pages and the big file over v4 and v6 through cookie handshakes, with counters
	local l=$1 s
	snap "$l-a"
	for s in "$LAB_SERVER4" "$LAB_SERVER6"; do
		check "[$l] curl http://$s/ through a cookie handshake" page_ok "$s"
		check "[$l] 2 MB download from $s intact (sha256)" big_ok "$s"
	done
	snap "$l-b"
	local sent valid assigned failed newins
	sent=$(d "$l-a" "$l-b" syncookies_sent) valid=$(d "$l-a" "$l-b" syncookies_valid)
	assigned=$(d "$l-a" "$l-b" syncookies_assigned) failed=$(val "$l-b" syncookies_assign_failed)
	newins=$(d "$l-a" "$l-b" ct_new_insert)
	note "[$l] 4 connections: syncookies sent +$sent valid +$valid assigned +$assigned, assign_failed $failed," \
		"tx_syncookie +$(d "$l-a" "$l-b" tx_syncookie), ct_new_insert +$newins, ct_est_insert +$(d "$l-a" "$l-b" ct_est_insert)"
	check "[$l] syncookies_sent grew by the 4 handshakes (+$sent)" [ "$sent" -ge 4 ]
	check "[$l] syncookies_valid grew by the 4 handshakes (+$valid)" [ "$valid" -ge 4 ]
	check "[$l] syncookies_assigned grew with syncookies_valid (+$assigned, +$valid)" \
		[ "$assigned" -ge 4 -a "$assigned" -eq "$valid" ]
	check "[$l] tx_syncookie verdicts match syncookies_sent" [ "$(d "$l-a" "$l-b" tx_syncookie)" -eq "$sent" ]
	check "[$l] syncookies_assign_failed is 0" [ "$failed" -eq 0 ]
	check "[$l] no half-open flow inserted (ct_new_insert +$newins)" [ "$newins" -eq 0 ]
	local f4 f6
	f4=$(flows_of "$LAB_CLIENT4:") f6=$(flows_of "[$LAB_CLIENT6]:")
	check "[$l] flows shows the client's connections established/time_wait (v4 $f4, v6 $f6)" \
		[ "$f4" -ge 2 -a "$f6" -ge 2 ]
}

# ---- start: skip when the kernel cannot hand the ACK to the listener ---------------------------------------
write_policy true
if ! lab_start_daemon "$LAB_DIR/policy.lua"; then
	if grep -qE 'SYN cookies unavailable|bpf_sk_assign_tcp_reqsk' "$LAB_DIR/hyperiond.log"; then
		skip "kernel $(uname -r) lacks bpf_sk_assign_tcp_reqsk (6.9+): $(grep -m1 -E 'unavailable|6\.9' "$LAB_DIR/hyperiond.log")"
		finish
	fi
	notok "hyperiond starts with syn_cookies = true"
	finish
fi
ok "hyperiond starts with syn_cookies = true (native XDP)"
note "$(grep -m1 'attached to' "$LAB_DIR/hyperiond.log")"
grep -q 'XDP native' "$LAB_DIR/hyperiond.log" || note "native XDP not attached: the native part runs as whatever attached"

# ---- the peer: an XDP program, so native XDP_TX frames are delivered -----------------------------------------
XDPRX_PID=
if [ -x "$XDPRX" ]; then
	rm -f "$LAB_DIR/xdprx.ready"
	# ip netns exec execs the program: $! is xdprx itself
	ip netns exec "$LAB_NS_LAN" "$XDPRX" "$PEER" pass "$LAB_DIR/xdprx.ready" >"$LAB_DIR/xdprx.out" 2>&1 &
	XDPRX_PID=$!
	SRV_PIDS+=("$XDPRX_PID")
	for _ in $(seq 1 50); do [ -e "$LAB_DIR/xdprx.ready" ] && break; kill -0 "$XDPRX_PID" 2>/dev/null || break; sleep 0.1; done
	check "XDP_PASS attached to the peer (xdprx)" [ -e "$LAB_DIR/xdprx.ready" ]
else
	notok "no $XDPRX (make builds it): native XDP_TX cannot reach the peer"
fi

# ---- 1. pages and a big download through cookie handshakes ----------------------------------------------------
basic_checks native

# ---- 1b. a 4-tuple the server holds in TIME_WAIT: the stack, not a cookie, answers its new SYN -------------------
# The server on :23 writes a line and closes first, so its socket keeps the tuple in TIME_WAIT for 60 s.
# A cookie's ACK would meet that socket and the second connection from the same client port would hang;
# the SYN must go to the stack, which reuses the tuple.
tw_fetch() { [ "$(cli timeout 3 ncat --recv-only -p "$2" "$1" 23 </dev/null 2>/dev/null)" = tw-hello ]; }
tw_reuse() {   # addr port: two connections from the same client port, the server in TIME_WAIT between them
	local a=$1 port=$2 tw=0
	tw_fetch "$a" "$port" || { note "first connection from port $port failed"; return 1; }
	for _ in $(seq 1 20); do   # bounded: the server's FIN goes out with its line
		tw=$(srv ss -Htan state time-wait "( sport = :23 )" | grep -c -- ":$port\b")
		[ "$tw" -ge 1 ] && break
		sleep 0.1
	done
	[ "$tw" -ge 1 ] || { note "the server holds no TIME_WAIT for port $port"; return 1; }
	tw_fetch "$a" "$port"
}
snap tw-a
check "[native] fetch again from the same v4 client port while the server holds it in TIME_WAIT" \
	tw_reuse "$LAB_SERVER4" $((41000 + RANDOM % 1000))
check "[native] fetch again from the same v6 client port while the server holds it in TIME_WAIT" \
	tw_reuse "$LAB_SERVER6" $((42000 + RANDOM % 1000))
snap tw-b
check "the two reused tuples' SYNs went to the stack (syncookies_time_wait +$(d tw-a tw-b syncookies_time_wait))" \
	[ "$(d tw-a tw-b syncookies_time_wait)" -eq 2 ]

# ---- 2. long-lived connections: opened through cookies, kept through everything that follows ------------------
KA_STOP=$LAB_DIR/stop-ka
snap ka-a
labtool_in "$LAB_NS_CLIENT" keepalive "$LAB_SERVER4" 22 "$LAB_DIR/ka4.log" "$KA_STOP" 240 &
BG_PIDS+=($!)
labtool_in "$LAB_NS_CLIENT" keepalive "$LAB_SERVER6" 22 "$LAB_DIR/ka6.log" "$KA_STOP" 240 &
BG_PIDS+=($!)
for _ in $(seq 1 40); do   # bounded: 4 s for 5 round trips each
	[ "$(oks "$LAB_DIR/ka4.log")" -ge 5 ] && [ "$(oks "$LAB_DIR/ka6.log")" -ge 5 ] && break
	sleep 0.1
done
snap ka-b
for f in ka4 ka6; do
	check "[$f] long-lived echo session exchanging data ($(oks "$LAB_DIR/$f.log") round trips)" \
		[ "$(oks "$LAB_DIR/$f.log")" -ge 5 ]
done
check "the sessions' handshakes were cookie handshakes (syncookies_assigned +$(d ka-a ka-b syncookies_assigned))" \
	[ "$(d ka-a ka-b syncookies_assigned)" -ge 2 ]
# window scaling from the cookie: each end's send scale is the other's receive scale, ours is 7
wscales() {   # ns filter: "snd,rcv" of the one connection matching
	in_ns "$1" ss -tniH state established "$2" 2>/dev/null | grep -o 'wscale:[0-9]*,[0-9]*' | head -n1 | cut -d: -f2
}
for f in 4 6; do
	port=$(awk '$1 == "connected" { print $2; exit }' "$LAB_DIR/ka$f.log")
	if [ -z "$port" ]; then notok "[ka$f] session's local port known"; continue; fi
	cw=$(wscales "$LAB_NS_CLIENT" "( sport = :$port and dport = :22 )")
	sw=$(wscales "$LAB_NS_SERVER" "( sport = :22 and dport = :$port )")
	check "[ka$f] window scale agrees on both ends (client snd,rcv $cw; server $sw; cookie's 7)" \
		[ "x$cw" = "x${sw#*,},${sw%,*}" -a "x${sw#*,}" = x7 ]
done
for s in "$LAB_SERVER4" "$LAB_SERVER6"; do
	check "ncat round trip to $s:22" echo_ok "$s" "hello-$s"
done

# ---- 3. SYN flood ------------------------------------------------------------------------------------------------
att_rsts() { att nstat -asz TcpOutRsts 2>/dev/null | awk '$1 == "TcpOutRsts" { print $2; f = 1 } END { if (!f) print 0 }'; }
rst0=$(att_rsts)
snap flood-a
per=$((FLOOD / 4)) fpids=()
t_flood=$SECONDS
for src in 192.0.2.67 192.0.2.68 192.0.2.69 192.0.2.70; do
	# hping3: a new source port per SYN (incremented from a random base), random sequence numbers
	att timeout 60 hping3 -q -S -p 80 -a "$src" -c "$per" -i u100 "$LAB_SERVER4" >"$LAB_DIR/hping-$src.log" 2>&1 &
	fpids+=($!)
done
sleep 0.3
check "a client connects during the flood" page_ok "$LAB_SERVER4"
for p in "${fpids[@]}"; do wait "$p"; done
note "flood: $((per * 4)) SYNs from 4 sources in $((SECONDS - t_flood)) s"
check "a client connects after the flood (v4)" page_ok "$LAB_SERVER4"
check "a client connects after the flood (v6)" page_ok "$LAB_SERVER6"
snap flood-b
rst1=$(att_rsts)
sent=$(d flood-a flood-b syncookies_sent) newins=$(d flood-a flood-b ct_new_insert)
note "flood: syncookies_sent +$sent, tx_syncookie +$(d flood-a flood-b tx_syncookie), ct_new_insert +$newins," \
	"ct_est_insert +$(d flood-a flood-b ct_est_insert), drop_rate_syn total $(lab_stat drop_rate_syn), attacker's resets +$((rst1 - rst0))"
check "syncookies_sent grew by about the flood ($sent for $((per * 4)) SYNs, >= 90%)" [ "$sent" -ge $((per * 4 * 9 / 10)) ]
check "the flood made no half-open flows (ct_new_insert +$newins)" [ "$newins" -le 5 ]
check "the SYN-ACKs reached the attacker (its stack reset $((rst1 - rst0)), >= 80% of the flood)" \
	[ $((rst1 - rst0)) -ge $((per * 4 * 8 / 10)) ]
if [ "$have_scapy" = 1 ]; then
	snap flood6-a
	labtool_in "$LAB_NS_ATTACKER" synflood6 2001:db8:0:66::67 "$LAB_SERVER6" "$(lab_server_mac)" 80 "$FLOOD6" >/dev/null 2>&1
	check "a client connects after the v6 flood" page_ok "$LAB_SERVER6"
	snap flood6-b
	sent=$(d flood6-a flood6-b syncookies_sent) newins=$(d flood6-a flood6-b ct_new_insert)
	check "v6 flood answered with cookies ($sent for $FLOOD6 SYNs, >= 90%)" [ "$sent" -ge $((FLOOD6 * 9 / 10)) ]
	check "the v6 flood made no half-open flows (ct_new_insert +$newins)" [ "$newins" -le 5 ]
else
	skip "v6 flood: no python3-scapy"
fi

# ---- 4. open in the policy, nothing listening; closed in the policy -------------------------------------------------
snap nl-a
for s in "$LAB_SERVER4" "$LAB_SERVER6"; do
	t1=$(date +%s%N)
	cli curl -s --max-time 3 -o /dev/null "$(url "$s" / 81)"
	rc=$? ms=$((($(date +%s%N) - t1) / 1000000))
	# 7: the stack's reset of the cookie ACK beat connect()'s completion; 56: it came just after
	check "connect to $s:81 (allowed, nothing listens) refused quickly (curl exit $rc in $ms ms)" \
		[ \( "$rc" = 7 -o "$rc" = 56 \) -a "$ms" -lt 2000 ]
done
snap nl-b
check "syncookies_no_listener counted both (+$(d nl-a nl-b syncookies_no_listener))" [ "$(d nl-a nl-b syncookies_no_listener)" -ge 2 ]
refused "connect to $LAB_SERVER4:82 (closed in the policy) fails" cli curl -s --max-time 1 -o /dev/null "$(url "$LAB_SERVER4" / 82)"
snap nl-c
check "no cookie for a port closed in the policy (syncookies_sent +$(d nl-b nl-c syncookies_sent))" [ "$(d nl-b nl-c syncookies_sent)" -eq 0 ]

# ---- 5. hot reload: off, a smaller MSS, on again ------------------------------------------------------------------
reload_to() {   # label syn_cookies [keys]
	write_policy "$2" "${3:-}"
	local out
	out=$(ctl reload 2>&1)
	check "reload: $1 ($out)" [ $? -eq 0 ]
}
reload_to "syn_cookies = false" false
snap off-a
for s in "$LAB_SERVER4" "$LAB_SERVER6"; do check "[cookies off] curl $s through the normal path" page_ok "$s"; done
check "[cookies off] ncat round trip" echo_ok "$LAB_SERVER4" hello-off
snap off-b
check "[cookies off] no cookie sent (syncookies_sent +$(d off-a off-b syncookies_sent))" [ "$(d off-a off-b syncookies_sent)" -eq 0 ]
check "[cookies off] the handshakes went through the half-open table (ct_new_insert +$(d off-a off-b ct_new_insert))" \
	[ "$(d off-a off-b ct_new_insert)" -ge 3 ]

reload_to "syn_cookies = true, syn_cookie_mss = 1200" true ", syn_cookie_mss = 1200"
snap mss-a
check "[mss 1200] curl $LAB_SERVER4" page_ok "$LAB_SERVER4"
check "[mss 1200] 2 MB download intact" big_ok "$LAB_SERVER4"
labtool_in "$LAB_NS_CLIENT" keepalive "$LAB_SERVER4" 22 "$LAB_DIR/kamss.log" "$KA_STOP" 3 &
kpid=$!
BG_PIDS+=("$kpid")
for _ in $(seq 1 30); do [ "$(oks "$LAB_DIR/kamss.log")" -ge 2 ] && break; sleep 0.1; done
port=$(awk '$1 == "connected" { print $2; exit }' "$LAB_DIR/kamss.log")
mss=$(cli ss -tniH state established "( sport = :${port:-0} and dport = :22 )" 2>/dev/null | grep -o ' mss:[0-9]*' | head -n1 | cut -d: -f2)
check "[mss 1200] the client's MSS follows the cookie SYN-ACK (mss ${mss:-none} <= 1200)" [ "${mss:-99999}" -le 1200 ]
snap mss-b
check "[mss 1200] cookies sent again (+$(d mss-a mss-b syncookies_sent))" [ "$(d mss-a mss-b syncookies_sent)" -ge 3 ]

reload_to "syn_cookies = true" true
snap on-a
for s in "$LAB_SERVER4" "$LAB_SERVER6"; do check "[cookies on] curl $s" page_ok "$s"; done
snap on-b
check "[cookies on] cookies sent (+$(d on-a on-b syncookies_sent)), assigned (+$(d on-a on-b syncookies_assigned))" \
	[ "$(d on-a on-b syncookies_sent)" -ge 2 -a "$(d on-a on-b syncookies_assigned)" -ge 2 ]

# a hardened stack without SACK would reset every cookie connection: the reload is refused, the old
# policy keeps running
srv sysctl -qw net.ipv4.tcp_sack=0
write_policy true ", syn_cookie_mss = 1400"
out=$(ctl reload 2>&1)
rc=$?
check "reload with net.ipv4.tcp_sack=0 refused (exit $rc: $out)" [ "$rc" -ne 0 ]
check "... and the daemon says why" grep -q 'syn_cookies needs net.ipv4.tcp_sack on' "$LAB_DIR/hyperiond.log"
srv sysctl -qw net.ipv4.tcp_sack=1
check "[old policy kept] curl $LAB_SERVER4" page_ok "$LAB_SERVER4"
reload_to "syn_cookies = true, tcp_sack back on" true

# the long-lived sessions, over the flood, the refused connects and three reloads
touch "$KA_STOP"
for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
BG_PIDS=()
for f in ka4 ka6; do
	dl=$(grep '^done' "$LAB_DIR/$f.log")
	n=$(oks "$LAB_DIR/$f.log")
	clean=0; case $dl in *" fail=0") clean=1 ;; esac
	check "[$f] session over the whole native run: ${dl:-no summary}" [ "$clean" = 1 -a "$n" -ge 30 ]
done
snap native-end
check "syncookies_assign_failed still 0 after the native run" [ "$(val native-end syncookies_assign_failed)" -eq 0 ]
note "syncookies_invalid (flowless ACKs without a cookie, e.g. the attacker's): $(val native-end syncookies_invalid)," \
	"syncookies_fallback: $(val native-end syncookies_fallback)"

# ---- 6. generic XDP, no peer setup -----------------------------------------------------------------------------
if [ -n "$XDPRX_PID" ]; then kill "$XDPRX_PID" 2>/dev/null; wait "$XDPRX_PID" 2>/dev/null; fi
lab_stop_daemon
write_policy true
if lab_start_daemon "$LAB_DIR/policy.lua" --xdp-mode generic; then
	ok "hyperiond restarts in generic XDP mode"
	check "attached as generic XDP" grep -q 'XDP generic' "$LAB_DIR/hyperiond.log"
	basic_checks generic
	check "ncat round trip (generic)" echo_ok "$LAB_SERVER6" hello-generic
else
	notok "hyperiond restarts in generic XDP mode"
fi
check "hyperiond still running" kill -0 "$LAB_DAEMON_PID"
note "run time $((SECONDS - T0)) s"
note "stats:"; ctl stats 2>&1 | grep -E 'cookie|ct_|tx_|drop_|pass_' | sed 's/^/#   /'
finish
