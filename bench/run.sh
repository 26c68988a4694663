#!/usr/bin/env bash
# Benchmarks: Hyperion side by side with bare XDP, iptables and nftables on one veth pair, in one run.
#
#   bench/run.sh            full run (make bench), under 15 minutes
#   bench/run.sh --quick    short run (make bench QUICK=1), under 2 minutes
#   bench/run.sh --smoke    a few thousand paced frames per case; prints "smoke ..." books lines that
#                           tests/e2e/test_bench_smoke.sh checks (counts only, never timings): one per
#                           system, and for the SYN floods "hyperion_synack" (SYN-ACKs the generator's
#                           end received and checked, against SYNs sent); exits 1 if a datapath check
#                           (check_flows) failed
#
# Topology: namespace hyp-bench-tx-$$ holds veth end hbtx0 (the generator transmits out of it with
# BPF_F_TEST_XDP_LIVE_FRAMES, pinned to CPU 0); hyp-bench-rx-$$ holds hbrx0. Each system in turn is set
# up on hbrx0, the generator sends for a fixed time, and the figure is what the receiver's own counters
# saw in that time (frames the veth ring refused never count). By default the receiver's NAPI runs in
# softirq right behind the generator on the same CPU (see pin_napi; BENCH_NAPI=threaded splits them).
# Scenarios whose receiver may answer from XDP (the SYN floods, Hyperion with SYN cookies) put a counting
# sink on hbtx0 for every system (see sink_up): it is what lets XDP_TX frames cross the pair at all.
# Environment: BENCH_REPS, BENCH_DURATION (s), BENCH_SCENARIOS ("a b c d e f6a f6d"), BENCH_NAPI,
# BENCH_SYSTEMS (only these of each scenario's systems, e.g. "xdp_drop hyperion" for an A/B of two builds).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
B=$BUILD/bench
MODE=full
case "${1:-}" in
--quick) MODE=quick ;;
--smoke) MODE=smoke ;;
"") ;;
*) echo "usage: $0 [--quick|--smoke]" >&2; exit 2 ;;
esac

ID=$$
NS_TX=hyp-bench-tx-$ID
NS_RX=hyp-bench-rx-$ID
IF_TX=hbtx0
IF_RX=hbrx0
TX_CPU=0
RX_CPU=1
NAPI=${BENCH_NAPI:-softirq}
TX4=192.0.2.1 RX4=192.0.2.2
TX6=2001:db8:b::1 RX6=2001:db8:b::2
KEEP4=192.0.2.3 KEEP6=2001:db8:b::3                      # receiver addresses of the kept connection (d)
BANNED4=203.0.113.7 BAN4_NET=203.0.113.0/24
FLOOD4=198.51.100.0 FLOOD4_NET=198.51.100.0/24         # SYN flood sources: low byte varied per frame
FLOOD6=2001:db8:f::0 FLOOD6_NET=2001:db8:f::/64          # low 32 bits varied per frame
PORT_TCP=80 PORT_UDP=53
FLOW_OFFSET_STEP=5000000                                 # per repetition: SYN floods never reuse a flow
NFT_RAW_MAX=16                                           # bytes: nftables raw payload matches stop at 128 bits
SIG_HIT=HYPSIG-ATTACK                                    # the signature every "dropped by payload" frame carries
WORK=$(mktemp -d /tmp/hyp-bench.XXXXXX)
RAW=$WORK/raw.txt                                        # one line per measured run
DESC=$WORK/desc.txt                                      # scenario descriptions for the report
RESULTS_MD=${RESULTS_MD:-bench/results.md}
RESULTS_PNG=${RESULTS_PNG:-bench/results.png}
SYS_PID=
SYS_OUT=
SYS_NAME=
SERVER_PID=
SINK_PID=
SINK_OUT=
CLIENT_PID=
CHECKS=$WORK/checks.txt                                  # pass/fail lines of the datapath checks
SMOKE_FAIL=0

case $MODE in
full)  REPS=5; DUR=2;    E_FLOWS=1000000; E_BANS=100000; E_SIGS=256 ;;
quick) REPS=3; DUR=0.25; E_FLOWS=100000;  E_BANS=10000;  E_SIGS=256 ;;
smoke) REPS=1; DUR=0;    E_FLOWS=2000;    E_BANS=1000;   E_SIGS=16; SMOKE_COUNT=${SMOKE_COUNT:-3000}
       SMOKE_CHUNK=500; SMOKE_GAP_US=1000 ;;   # 500 frames per send, then 1 ms (each send sets up its page pool)
esac
REPS=${BENCH_REPS:-$REPS}
DUR=${BENCH_DURATION:-$DUR}

log() { printf '[%3ds] %s\n' "$SECONDS" "$*" >&2; }
rx() { ip netns exec "$NS_RX" "$@"; }
tx() { ip netns exec "$NS_TX" "$@"; }
stop_pid() {   # VAR: stop the process whose pid VAR holds (if any), reap it, clear VAR
	local pid=${!1}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	printf -v "$1" '%s' ''
}
wait_ready() {   # file pid steps: wait for file (20 ms steps, at most steps) while pid lives
	local i
	for i in $(seq 1 "$3"); do
		[ -e "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.02
	done
	[ -e "$1" ]
}

cleanup() {
	sys_down >/dev/null 2>&1
	client_close
	sink_down
	[ -n "$SERVER_PID" ] && kill $SERVER_PID 2>/dev/null
	ip netns del "$NS_TX" 2>/dev/null
	ip netns del "$NS_RX" 2>/dev/null
	[ -n "${CT_MAX_SAVED:-}" ] && echo "$CT_MAX_SAVED" >/proc/sys/net/netfilter/nf_conntrack_max
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() {
	[ "$(id -u)" = 0 ] || { log "bench: needs root"; exit 1; }
	local t
	for t in ip iptables-restore ip6tables-restore nft ipset conntrack taskset ncat gnuplot; do
		command -v "$t" >/dev/null || { log "bench: missing $t (make deps bench-deps)"; exit 1; }
	done
	for t in trafficgen xdprx; do
		[ -x "$B/$t" ] || { log "bench: $B/$t not built (make bench-tools)"; exit 1; }
	done
}

# ---------------------------------------------------------------------------------------------------
# Network: one veth pair between two namespaces, static neighbours (no ARP/ND during a run), blackhole
# routes for the flood sources on the receiver (its replies die at the route lookup and cost no CPU on
# the sending side). Addresses are TEST-NET only.
net_up() {
	ip netns add "$NS_TX" && ip netns add "$NS_RX" || exit 1
	ip link add "$IF_TX" netns "$NS_TX" type veth peer name "$IF_RX" netns "$NS_RX" || exit 1
	local ns
	for ns in "$NS_TX" "$NS_RX"; do ip -n "$ns" link set lo up; done
	# Nothing but the generator's frames on the pair: no link-local address (so no DAD), no router
	# solicitations, no multicast (so no MLD reports). One such frame in a smoke run's count window
	# read as "3001 of 3000 frames". Neighbours are static below.
	ip netns exec "$NS_TX" sysctl -qw net.ipv6.conf."$IF_TX".addr_gen_mode=1 net.ipv6.conf."$IF_TX".router_solicitations=0
	ip netns exec "$NS_RX" sysctl -qw net.ipv6.conf."$IF_RX".addr_gen_mode=1 net.ipv6.conf."$IF_RX".router_solicitations=0
	ip -n "$NS_TX" link set "$IF_TX" multicast off up
	ip -n "$NS_RX" link set "$IF_RX" multicast off up
	ip -n "$NS_TX" addr add "$TX4/24" dev "$IF_TX"
	ip -n "$NS_RX" addr add "$RX4/24" dev "$IF_RX"
	ip -n "$NS_TX" -6 addr add "$TX6/64" dev "$IF_TX" nodad
	ip -n "$NS_RX" -6 addr add "$RX6/64" dev "$IF_RX" nodad
	TX_MAC=$(ip -n "$NS_TX" -br link show "$IF_TX" | awk '{print $3}')
	RX_MAC=$(ip -n "$NS_RX" -br link show "$IF_RX" | awk '{print $3}')
	ip -n "$NS_TX" neigh replace "$RX4" lladdr "$RX_MAC" dev "$IF_TX" nud permanent
	ip -n "$NS_TX" neigh replace "$RX6" lladdr "$RX_MAC" dev "$IF_TX" nud permanent
	ip -n "$NS_RX" addr add "$KEEP4/32" dev "$IF_RX"
	ip -n "$NS_RX" -6 addr add "$KEEP6/128" dev "$IF_RX" nodad
	ip -n "$NS_TX" neigh replace "$KEEP4" lladdr "$RX_MAC" dev "$IF_TX" nud permanent
	ip -n "$NS_TX" neigh replace "$KEEP6" lladdr "$RX_MAC" dev "$IF_TX" nud permanent
	ip -n "$NS_RX" neigh replace "$TX4" lladdr "$TX_MAC" dev "$IF_RX" nud permanent
	ip -n "$NS_RX" neigh replace "$TX6" lladdr "$TX_MAC" dev "$IF_RX" nud permanent
	ip -n "$NS_RX" route add blackhole "$FLOOD4_NET"
	ip -n "$NS_RX" route add blackhole "$BAN4_NET"
	ip -n "$NS_RX" -6 route add blackhole "$FLOOD6_NET"
	# Established-flow scenario: a listener that accepts and discards.
	ip netns exec "$NS_RX" ncat -lk "$RX4" "$PORT_TCP" --recv-only >/dev/null 2>&1 &
	SERVER_PID=$!
	ip netns exec "$NS_RX" ncat -lk "$RX6" "$PORT_TCP" --recv-only >/dev/null 2>&1 &
	SERVER_PID="$SERVER_PID $!"
	# (d)'s kept connection: a listener that holds every connection open both ways (an idle echo; the
	# --recv-only one above shuts its sending side at once), on the open port of its own addresses.
	local a
	for a in "$KEEP4" "$KEEP6"; do
		ip netns exec "$NS_RX" ncat -lk "$a" "$PORT_TCP" -e /bin/cat >/dev/null 2>&1 &
		SERVER_PID="$SERVER_PID $!"
	done
	# Conntrack must hold scenario (e)'s flows: the limit is global, restored on exit.
	CT_MAX_SAVED=$(cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null)
	local want=$((E_FLOWS * 2))
	[ -n "$CT_MAX_SAVED" ] && [ "$CT_MAX_SAVED" -lt "$want" ] && echo "$want" >/proc/sys/net/netfilter/nf_conntrack_max
	sleep 0.3
}

# The receiver's NAPI exists once an XDP program is attached (re-done after every attach): with
# BENCH_NAPI=threaded, make it threaded and pin its kthread away from the generator.
pin_napi() {
	local pid
	# Default: NAPI stays in softirq on the generator's CPU and drains each batch right after it is sent,
	# so no frame is ever refused by the ring and a figure is 1 / (generator cost + receiver cost).
	# BENCH_NAPI=threaded gives the receiver CPU 1 instead (receiver-bound figures, but cross-CPU ring
	# and page-pool traffic dominate on a 2-CPU box and frames the ring refuses are lost).
	[ "$NAPI" = threaded ] && [ "$MODE" != smoke ] || return 0
	rx sh -c "echo 1 > /sys/class/net/$IF_RX/threaded" 2>/dev/null || log "bench: threaded NAPI unavailable"
	for pid in $(ps -eo pid=,comm= | awk -v p="napi/$IF_RX" 'index($2, p) == 1 {print $1}'); do
		taskset -pc "$RX_CPU" "$pid" >/dev/null 2>&1
	done
}

# ---------------------------------------------------------------------------------------------------
# Policy under test, one source of truth for all systems: TCP/80 and UDP/53 open for new inbound flows,
# established flows pass, payload signatures drop, banned CIDRs drop, everything else new drops.
make_policy_files() {   # nsigs nbans
	local nsigs=$1 nbans=$2
	# Signatures: distinct literals; the one the attack frames carry is last, so a linear rule list
	# (iptables) walks all of them, as a DFA (Hyperion) does in one pass.
	awk -v n="$nsigs" -v hit="$SIG_HIT" 'BEGIN { for (i = 1; i < n; i++) printf "s%04d-hypbench-%x\n", i, i * 7919; print hit }' >"$WORK/sigs.txt"
	# Bans: the banned TEST-NET /24 plus filler prefixes of mixed length. The filler lives in 240.0.0.0/4
	# (reserved, never routed): it is only set/map content inside our own namespace, never an address.
	# Odd i: a /24 in 240-241.x.x.0, even i: a /32 in 248.x.x.x; all distinct.
	awk -v n="$nbans" -v b="$BAN4_NET" 'BEGIN { print b; for (i = 1; i < n; i++) {
		if (i % 2) printf "%d.%d.%d.0/24\n", 240 + int(i / 65536), int(i / 256) % 256, i % 256;
		else printf "248.%d.%d.%d/32\n", int(i / 65536) % 256, int(i / 256) % 256, i % 256 } }' >"$WORK/bans4.txt"
}

ipt_ruleset() {   # family(4|6) -> iptables-restore input
	local fam=$1 icmp=icmp set=hypbench-ban4
	[ "$fam" = 6 ] && { icmp=ipv6-icmp; set=hypbench-ban6; }
	echo "*raw"
	echo ":PREROUTING ACCEPT [0:0]"
	echo "-A PREROUTING -m set --match-set $set src -j DROP"
	echo "COMMIT"
	echo "*filter"
	echo ":INPUT ACCEPT [0:0]"
	echo "-A INPUT -i lo -j ACCEPT"
	echo "-A INPUT -m conntrack --ctstate INVALID -j DROP"
	local s
	while IFS= read -r s; do echo "-A INPUT -m string --algo bm --string \"$s\" -j DROP"; done <"$WORK/sigs.txt"
	echo "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
	echo "-A INPUT -p tcp --dport $PORT_TCP --syn -m conntrack --ctstate NEW -j ACCEPT"
	echo "-A INPUT -p udp --dport $PORT_UDP -j ACCEPT"
	echo "-A INPUT -p $icmp -j ACCEPT"
	echo "-A INPUT -j DROP"
	echo "COMMIT"
}

# nftables has no substring search: signatures become a match of the literal's first bytes (a raw
# payload match is at most 128 bits) at the start of the L4 payload (UDP: byte 8, TCP without options:
# byte 20). That is strictly less work than a search.
nft_ruleset() {
	echo "table inet hypbench {"
	echo "  set ban4 { type ipv4_addr; flags interval; auto-merge; elements = {"
	paste -sd, "$WORK/bans4.txt"
	echo "  } }"
	echo "  set ban6 { type ipv6_addr; flags interval; }"
	echo "  chain pre { type filter hook prerouting priority raw; ip saddr @ban4 counter drop; ip6 saddr @ban6 counter drop; }"
	echo "  chain input { type filter hook input priority filter; policy accept;"
	echo "    iif lo accept"
	echo "    ct state invalid counter drop"
	local s hex bits
	while IFS= read -r s; do
		s=${s:0:$NFT_RAW_MAX}
		hex=$(printf '%s' "$s" | od -An -tx1 | tr -d ' \n')
		bits=$((${#s} * 8))
		echo "    udp length >= $((8 + ${#s})) @th,64,$bits 0x$hex counter drop"
		echo "    meta l4proto tcp @th,160,$bits 0x$hex counter drop"
	done <"$WORK/sigs.txt"
	echo "    ct state established,related accept"
	echo "    tcp dport $PORT_TCP tcp flags & (fin|syn|rst|ack) == syn ct state new accept"
	echo "    udp dport $PORT_UDP accept"
	echo "    meta l4proto { icmp, ipv6-icmp } accept"
	echo "    counter drop"
	echo "  }"
	echo "}"
}

# ---------------------------------------------------------------------------------------------------
# Systems. sys_up NAME FAMILY starts one on hbrx0; sys_books prints "frames=N dropped=N answered=N" so
# far; sys_down stops it. xdp_* and hyperion count in their own XDP program; iptables/nftables sit behind
# a counting XDP_PASS (it also gives the veth peer the NAPI that XDP transmit into the pair requires) and
# their drops come from the rule counters. answered: frames sent back out of hbrx0 by XDP_TX (xdp_tx's
# bounce, Hyperion's SYN cookies).
start_rx_prog() {   # command...
	SYS_OUT=$WORK/sys.out
	: >"$SYS_OUT"
	rm -f "$WORK/ready"
	# ip netns exec execs the command, so $! is the program itself (a function here would be a subshell)
	ip netns exec "$NS_RX" "$@" >"$SYS_OUT" 2>"$WORK/sys.err" &
	SYS_PID=$!
	# bounded: 20 s, loading 1M-entry maps takes a while
	if ! wait_ready "$WORK/ready" "$SYS_PID" 1000; then
		log "bench: $SYS_NAME failed to start: $(tail -n 3 "$WORK/sys.err" | tr '\n' ' ')"
		stop_pid SYS_PID
		return 1
	fi
	pin_napi
}

hyperion_available() {
	[ -x "$B/hyprx" ] || { echo "build/bench/hyprx not built (needs libhyperion.a: loader, maps, sigcompile)"; return 1; }
	return 0
}

sys_up() {   # name family
	SYS_NAME=$1
	local fam=$2
	case $1 in
	xdp_drop) start_rx_prog "$B/xdprx" "$IF_RX" drop "$WORK/ready" ;;
	xdp_pass) start_rx_prog "$B/xdprx" "$IF_RX" pass "$WORK/ready" ;;
	xdp_tx) start_rx_prog "$B/xdprx" "$IF_RX" tx "$WORK/ready" ;;
	xdp_ban) start_rx_prog "$B/xdprx" "$IF_RX" ban "$WORK/ready" "ban=$SCEN_SRC" ;;
	ipt_raw)
		if [ "$fam" = 4 ]; then rx iptables -t raw -A PREROUTING -s "$SCEN_SRC" -j DROP
		else rx ip6tables -t raw -A PREROUTING -s "$SCEN_SRC" -j DROP; fi
		start_rx_prog "$B/xdprx" "$IF_RX" pass "$WORK/ready" ;;
	iptables)
		{ echo "create hypbench-ban4 hash:net family inet maxelem $((E_BANS * 2 + 1024))"
		  echo "create hypbench-ban6 hash:net family inet6"
		  sed 's/^/add hypbench-ban4 /' "$WORK/bans4.txt"; } | rx ipset restore || return 1
		ipt_ruleset 4 | rx iptables-restore || return 1
		ipt_ruleset 6 | rx ip6tables-restore || return 1
		start_rx_prog "$B/xdprx" "$IF_RX" pass "$WORK/ready" ;;
	nft)
		nft_ruleset >"$WORK/rules.nft"
		rx nft -f "$WORK/rules.nft" || return 1
		start_rx_prog "$B/xdprx" "$IF_RX" pass "$WORK/ready" ;;
	hyperion)
		start_rx_prog "$B/hyprx" -i "$IF_RX" --tcp-port "$PORT_TCP" --udp-port "$PORT_UDP" \
			--sigs "$WORK/sigs.txt" --bans "$WORK/bans4.txt" $SCEN_HYP \
			$([ "$SCEN_POP" -gt 0 ] && echo --flows-new-max $((SCEN_POP + SCEN_POP / 4))) --ready "$WORK/ready" ;;
	*) return 1 ;;
	esac
}

# Drops counted by the rule set itself (the XDP_PASS counter in front only knows what arrived).
nf_drops() {
	case $SYS_NAME in
	ipt_raw|iptables)
		{ rx iptables-save -c; rx ip6tables-save -c; } 2>/dev/null |
			awk '/-j DROP/ { if (match($0, /^\[[0-9]+:/)) s += substr($0, 2, RLENGTH - 2) } END { print s + 0 }' ;;
	nft)
		rx nft list table inet hypbench 2>/dev/null |
			awk '/counter packets [0-9]+ bytes [0-9]+ drop/ { for (i = 1; i < NF; i++) if ($i == "packets") s += $(i + 1) } END { print s + 0 }' ;;
	*) echo 0 ;;
	esac
}

# The books line a receiver program (pid, output file) prints on SIGUSR1, once it has printed it.
books_line() {   # pid file
	local before after i
	before=$(wc -l <"$2")
	kill -USR1 "$1" 2>/dev/null
	# the receiver answers at once (the signal ends its poll sleep): short steps, read twice per run
	for i in $(seq 1 400); do   # bounded: 400 steps (2 s of sleeps, plus a wc each)
		after=$(wc -l <"$2")
		[ "$after" -gt "$before" ] && break
		sleep 0.005
	done
	tail -n 1 "$2"
}

field() {   # name line -> the value of name=N in line (empty if absent)
	# a bash match, not sed: a run reads a dozen fields per measurement, and every process costs ~10 ms
	# here (fork + exec), as much as a quick run's 0.25 s of traffic over a scenario
	[[ " $2" =~ [[:space:]]$1=([0-9]+) ]] && echo "${BASH_REMATCH[1]}"
}

# Snapshot: "frames=N dropped=N answered=N" from the receiver's counters now.
sys_books() {
	[ -n "$SYS_PID" ] || { echo "frames=0 dropped=0 answered=0"; return; }
	local line frames dropped answered=0
	line=$(books_line "$SYS_PID" "$SYS_OUT")
	frames=$(field frames "$line")
	case $SYS_NAME in
	xdp_drop) dropped=$frames ;;
	xdp_pass) dropped=0 ;;
	xdp_tx) dropped=0 answered=$frames ;;
	xdp_ban|hyperion) dropped=$(field dropped "$line") answered=$(field answered "$line") ;;
	*) dropped=$(nf_drops) ;;
	esac
	echo "frames=${frames:-0} dropped=${dropped:-0} answered=${answered:-0}"
}

# ---------------------------------------------------------------------------------------------------
# Reply sink on the generator's end (hbtx0), for the scenarios whose receiver may answer from XDP: a veth
# end refuses the frames its peer's XDP program transmits unless it has NAPI (an XDP program or GRO), so
# without it every SYN-ACK Hyperion sends would be lost inside the pair. The sink counts the SYN-ACKs
# and drops them (smoke runs: checks each one too); frames to the end's own addresses pass to its stack.
# It is attached for every system of the scenario, so the generator's side is the same for all of them;
# only Hyperion and xdp_tx send it anything (the stack's own replies die at the blackhole routes).
sink_up() {
	SINK_OUT=$WORK/sink.out
	: >"$SINK_OUT"
	rm -f "$WORK/sink.ready"
	ip netns exec "$NS_TX" "$B/xdprx" "$IF_TX" sink "$WORK/sink.ready" "local=$TX4" "local=$TX6" \
		"sport=$PORT_TCP" ack=1 $([ "$MODE" = smoke ] && echo verify) >"$SINK_OUT" 2>"$WORK/sink.err" &
	SINK_PID=$!
	wait_ready "$WORK/sink.ready" "$SINK_PID" 250 && return 0   # bounded: 5 s
	log "bench: reply sink failed to start: $(tail -n 3 "$WORK/sink.err" | tr '\n' ' ')"
	stop_pid SINK_PID
	return 1
}

sink_down() { stop_pid SINK_PID; }

# Snapshot: "returned=N synack=N bad=N": TCP frames received on the generator's end (not addressed to
# it), the SYN-ACKs among them, and those that failed the check.
sink_books() {
	[ -n "$SINK_PID" ] || { echo "returned=0 synack=0 bad=0"; return; }
	local line
	line=$(books_line "$SINK_PID" "$SINK_OUT")
	echo "returned=$(field frames "$line") synack=$(field synack "$line") bad=$(field synack_bad "$line")"
}

# ---------------------------------------------------------------------------------------------------
# The established flow a SYN flood must not evict (scenario (d), Hyperion): a real connection from the
# generator's namespace to the listener, opened before the flood (with SYN cookies on, through the cookie
# handshake: SYN-ACK from XDP, ACK verified and handed to the listener by tc ingress) and held idle
# through it. After the flood Hyperion's census must still hold it in flows with no LRU eviction.
client_open() {   # family
	local dst=$KEEP4 i
	[ "$1" = 6 ] && dst=$KEEP6
	rm -f "$WORK/hold"
	mkfifo "$WORK/hold" || return 1
	# ncat reads the fifo: it stays connected and silent until fd 8 is closed
	ip netns exec "$NS_TX" ncat "$dst" "$PORT_TCP" <"$WORK/hold" >/dev/null 2>"$WORK/client.err" &
	CLIENT_PID=$!
	exec 8>"$WORK/hold"
	for i in $(seq 1 150); do   # bounded: 3 s
		tx ss -Htn state established "( dport = :$PORT_TCP )" 2>/dev/null | grep -qF "$dst" && return 0
		kill -0 "$CLIENT_PID" 2>/dev/null || break
		sleep 0.02
	done
	log "bench: client connection to $dst:$PORT_TCP not established: $(tail -n 1 "$WORK/client.err")"
	return 1
}

client_close() {
	[ -n "$CLIENT_PID" ] || return 0
	exec 8>&-
	stop_pid CLIENT_PID
}

# After the flood: the client's connection still established at both ends, Hyperion's census shows no
# flow evicted from either table, and (SYN cookies) its handshake went through the cookie path.
check_flows() {   # scen client_ok reps
	local scen=$1 client_ok=$2 reps=$3 line est ev_est ev_new valid assigned srv ok=1 why=
	line=$(books_line "$SYS_PID" "$SYS_OUT")
	est=$(field flows_est "$line") ev_est=$(field evicted_est "$line") ev_new=$(field evicted_new "$line")
	valid=$(field syncookies_valid "$line") assigned=$(field syncookies_assigned "$line")
	local keep=$KEEP4
	[ "$SCEN_FAM" = 6 ] && keep=$KEEP6
	srv=$(rx ss -Htn state established "( sport = :$PORT_TCP )" 2>/dev/null | grep -cF "$keep")
	[ "$client_ok" = 1 ] || { ok=0; why="$why client connection never established;"; }
	tx ss -Htn state established "( dport = :$PORT_TCP )" 2>/dev/null | grep -qF "$keep" ||
		{ ok=0; why="$why client connection gone;"; }
	[ "$srv" -ge 1 ] || { ok=0; why="$why listener holds no established connection;"; }
	[ "${est:-0}" -ge 1 ] || { ok=0; why="$why no flow in flows;"; }
	[ "${ev_est:-1}" -eq 0 ] || { ok=0; why="$why $ev_est evicted from flows;"; }
	if [[ "$SCEN_HYP" == *--syn-cookies* ]] && { [ "${valid:-0}" -lt 1 ] || [ "${assigned:-0}" -lt 1 ]; }; then
		ok=0; why="$why handshake not through the cookie path (valid ${valid:-0}, assigned ${assigned:-0});"
	fi
	local msg="flows_est=${est:-?} evicted_est=${ev_est:-?} evicted_new=${ev_new:-?} syncookies_valid=${valid:-0} syncookies_assigned=${assigned:-0} listener_established=$srv"
	if [ "$ok" = 1 ]; then
		echo "$scen hyperion (rep $reps) ok: established connection kept through the flood, no flow evicted ($msg)" >>"$CHECKS"
		log "    check: established connection kept, no flow evicted ($msg)"
	else
		echo "$scen hyperion (rep $reps) FAIL:$why ($msg)" >>"$CHECKS"
		log "    check FAILED:$why ($msg)"
		SMOKE_FAIL=1
	fi
	[ "$MODE" = smoke ] && echo "# hyperion books ($scen check): $(tail -n 1 "$CHECKS")"
	return 0
}

sys_down() {
	stop_pid SYS_PID
	case $SYS_NAME in
	ipt_raw) rx iptables -t raw -F; rx ip6tables -t raw -F ;;
	iptables)
		printf '*raw\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n' | rx iptables-restore
		printf '*raw\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n' | rx ip6tables-restore
		rx ipset destroy 2>/dev/null ;;
	nft) rx nft delete table inet hypbench 2>/dev/null ;;
	esac
	# Conntrack entries left by this system must not weigh on the next one.
	rx conntrack -F >/dev/null 2>&1
	SYS_NAME=
	return 0
}

# ---------------------------------------------------------------------------------------------------
# Scenarios: generator arguments, the verdict every frame must get, which systems run it.
scenario() {   # id -> sets SCEN_*
	SCEN_FAM=4 SCEN_POP=0 SCEN_EXPECT=drop SCEN_SRC=$TX4 SCEN_HYP= SCEN_SINK=0
	SCEN_SYSTEMS="xdp_drop ipt_raw iptables nft hyperion"
	case $1 in
	a) SCEN_DESC="64 B UDP flood, dropped by payload signature"
	   SCEN_GEN="--proto udp --src $TX4 --dst $RX4 --dport $PORT_UDP --payload $SIG_HIT --size 60" ;;
	b) SCEN_DESC="64 B UDP flood from a banned source"
	   SCEN_SRC=$BANNED4 SCEN_SYSTEMS="xdp_drop xdp_ban ipt_raw iptables nft hyperion"
	   SCEN_GEN="--proto udp --src $BANNED4 --dst $RX4 --dport $PORT_UDP --payload hello --size 60" ;;
	c) SCEN_DESC="established TCP flow, 590 B frames scanned and passed"
	   SCEN_EXPECT=pass SCEN_SYSTEMS="xdp_pass iptables nft hyperion"
	   SCEN_GEN="--proto ack --connect --src $TX4 --dst $RX4 --dport $PORT_TCP --payload GET_/index.html --size 590" ;;
	# SYN floods: every SYN is accepted (port open), so no system may drop one; Hyperion runs the
	# operator's answer to a flood, SYN cookies from XDP (answered, not dropped: expect=pass).
	d) SCEN_DESC="SYN flood, every frame a new flow (conntrack churn; Hyperion: SYN cookies)"
	   SCEN_EXPECT=pass SCEN_SRC=$FLOOD4_NET SCEN_HYP="--syn-cookies --census" SCEN_SINK=1
	   SCEN_SYSTEMS="xdp_drop xdp_pass xdp_tx iptables nft hyperion"
	   SCEN_GEN="--proto syn --src $FLOOD4 --dst $RX4 --sport 1024 --dport $PORT_TCP --vary-src 256 --vary-port 64000 --restore" ;;
	e) SCEN_DESC="(a) with $E_FLOWS live flows, $E_BANS banned CIDRs, $E_SIGS signatures"
	   SCEN_POP=$E_FLOWS SCEN_SYSTEMS="xdp_drop iptables nft hyperion"
	   SCEN_GEN="--proto udp --src $TX4 --dst $RX4 --dport $PORT_UDP --payload $SIG_HIT --size 60" ;;
	f6a) SCEN_DESC="IPv6 (a): 78 B UDP flood, dropped by payload signature"
	   SCEN_FAM=6 SCEN_SRC=$TX6
	   SCEN_GEN="--proto udp --src $TX6 --dst $RX6 --dport $PORT_UDP --payload $SIG_HIT --size 78" ;;
	f6d) SCEN_DESC="IPv6 (d): SYN flood, every frame a new flow (Hyperion: SYN cookies)"
	   SCEN_FAM=6 SCEN_EXPECT=pass SCEN_SRC=$FLOOD6_NET SCEN_HYP="--syn-cookies --census" SCEN_SINK=1
	   SCEN_SYSTEMS="xdp_drop xdp_pass xdp_tx iptables nft hyperion"
	   SCEN_GEN="--proto syn --src $FLOOD6 --dst $RX6 --sport 1024 --dport $PORT_TCP --vary-src 65536 --vary-port 64000 --restore" ;;
	esac
	if [ "$1" = e ]; then make_policy_files "$E_SIGS" "$E_BANS"; else make_policy_files 1 1; fi
	grep -q "^$1	" "$DESC" 2>/dev/null || printf '%s\t%s\n' "$1" "$SCEN_DESC" >>"$DESC"
}
SCENARIOS=${BENCH_SCENARIOS:-"a b c d e f6a f6d"}

gen() {   # extra generator args...
	tx "$B/trafficgen" -i "$IF_TX" --dmac "$RX_MAC" --cpu "$TX_CPU" "$@"
}

# Scenario (e)'s live flows: that many distinct SYNs to the open port before the measured phase; both
# conntrack (iptables/nftables) and Hyperion's flows_new fill the same way. NAPI goes back to softirq on
# the generator's CPU meanwhile, which drains every batch as it is sent: no SYN is lost to a full ring.
# The netfilter rule sets get a temporary first rule accepting those SYNs: filling the table is set-up,
# and walking 256 string rules per SYN would make it take minutes (the measured phase still walks them).
populate_flows() {   # n
	local n=$1 ports=4096 h
	local syn="tcp dport $PORT_TCP tcp flags & (fin|syn|rst|ack) == syn ct state new"
	case $SYS_NAME in
	iptables) rx iptables -I INPUT 1 -p tcp --dport "$PORT_TCP" --syn -m conntrack --ctstate NEW -j ACCEPT ;;
	nft) rx nft insert rule inet hypbench input $syn accept comment '"populate"' ;;
	esac
	rx sh -c "echo 0 > /sys/class/net/$IF_RX/threaded" 2>/dev/null
	gen --proto syn --src "$FLOOD4" --dst "$RX4" --sport 1024 --dport "$PORT_TCP" --vary-src 256 \
		--vary-port "$ports" --count "$n" >/dev/null
	pin_napi
	case $SYS_NAME in
	iptables) rx iptables -D INPUT 1 ;;
	nft)
		h=$(rx nft -a list chain inet hypbench input | sed -nE 's/.*comment "populate".*# handle ([0-9]+).*/\1/p')
		[ -n "$h" ] && rx nft delete rule inet hypbench input handle "$h" ;;
	esac
	case $SYS_NAME in iptables|nft) log "    $SYS_NAME: $(rx conntrack -C 2>/dev/null) conntrack entries" ;; esac
}

# One measured run: prints "offered_mpps rx_mpps sent seen dropped answered returned synacks bad"
# (answered: sent back by XDP_TX on the receiver; returned: frames the sink counted on the generator's
# end, synacks: the SYN-ACKs among them, bad: those that failed its check, smoke runs only).
measure() {
	local b0 b1 out sent ns f0 f1 d0 d1 s0 s1 a0 a1
	b0=$(sys_books)
	s0=$(sink_books)
	if [ "$MODE" = smoke ]; then
		# paced: the stack-side systems (iptables, nft) must not lose a burst in a full backlog (one
		# run saw 2335 of 3000 unpaced frames); counts are checked, never rates
		out=$(gen $SCEN_GEN --count "$SMOKE_COUNT" --chunk "$SMOKE_CHUNK" --gap-us "$SMOKE_GAP_US")
	else
		out=$(gen $SCEN_GEN --duration "$DUR" --flow-offset $(((REP - 1) * FLOW_OFFSET_STEP)))
	fi
	# threaded NAPI: let the ring drain (frames still queued count as seen); softirq drained in line
	[ "$NAPI" = threaded ] && sleep 0.2
	b1=$(sys_books)
	s1=$(sink_books)
	[ -n "${BENCH_DEBUG:-}" ] && log "debug: $SYS_NAME b0=[$b0] b1=[$b1] sink=[$s0]->[$s1] gen=[$out] tx: $(ip -n "$NS_TX" -s link show "$IF_TX" | sed -n 6p)"
	sent=$(field frames "$out") ns=$(field ns "$out")
	f0=$(field frames "$b0") f1=$(field frames "$b1")
	d0=$(field dropped "$b0") d1=$(field dropped "$b1")
	a0=$(field answered "$b0"); a1=$(field answered "$b1")
	[ -n "$sent" ] && [ -n "$ns" ] && [ "$ns" -gt 0 ] || { echo "0 0 0 0 0 0 0 0 0"; return 1; }
	awk -v s="$sent" -v ns="$ns" -v f=$((f1 - f0)) -v d=$((d1 - d0)) -v a=$((a1 - a0)) \
		-v t=$(($(field returned "$s1") - $(field returned "$s0"))) \
		-v r=$(($(field synack "$s1") - $(field synack "$s0"))) -v x=$(($(field bad "$s1") - $(field bad "$s0"))) \
		'BEGIN { printf "%.3f %.3f %d %d %d %d %d %d %d\n", s * 1e3 / ns, f * 1e3 / ns, s, f, d, a, t, r, x }'
}

# ---------------------------------------------------------------------------------------------------
# One system on one scenario: set up, fill (e), then the given repetitions, then tear down.
run_system() {   # scen sys reps...
	local scen=$1 sys=$2 rep res
	shift 2
	HYP_LAST=
	if ! sys_up "$sys" "$SCEN_FAM"; then
		log "bench: $scen/$sys: setup failed"
		sys_down; return 0
	fi
	[ "$SCEN_POP" -gt 0 ] && [ "$sys" != xdp_drop ] && populate_flows "$SCEN_POP"
	local check=0 client_ok=0 reps_run="$*"
	if [ "$sys" = hyperion ] && [ "$SCEN_SINK" = 1 ]; then
		check=1
		client_open "$SCEN_FAM" && client_ok=1
	fi
	for rep in "$@"; do
		REP=$rep
		res=$(measure) || log "bench: $scen/$sys: run failed"
		echo "$scen $sys $rep $res" >>"$RAW"
		set -- $res
		if [ "$MODE" = smoke ]; then
			echo "smoke $scen $sys expect=$SCEN_EXPECT sent=$3 seen=$4 dropped=$5"
			# Hyperion's answers as the generator's end saw them: one well-formed SYN-ACK per SYN sent
			# ("dropped" = SYN-ACKs that failed the sink's check)
			[ "$SCEN_SINK" = 1 ] && [ "$sys" = hyperion ] &&
				echo "smoke $scen hyperion_synack expect=$SCEN_EXPECT sent=$3 seen=$8 dropped=$9"
		else
			log "  rep $rep  $scen  $(printf '%-9s' "$sys") offered $1 Mpps  processed $2 Mpps  (sent $3 seen $4 dropped $5$([ "$SCEN_SINK" = 1 ] && echo " answered $6 back at the generator $7 of which SYN-ACKs $8"))"
		fi
	done
	[ "$check" = 1 ] && check_flows "$scen" "$client_ok" "${reps_run// /,}"
	client_close
	sys_down
	[ "$sys" = hyperion ] && { HYP_LAST=$(tail -n 1 "$SYS_OUT"); log "    hyperion books: $HYP_LAST"; }
	[ "$MODE" = smoke ] && [ -n "$HYP_LAST" ] && echo "# hyperion books: $HYP_LAST"
	return 0
}

# Full runs interleave the systems within each repetition (a burst of load elsewhere on the machine then
# hits one repetition of every system, not every repetition of one); quick runs keep each system up for
# all its repetitions, because setting a system up (Hyperion: verifier, map allocation) is most of
# their time budget.
run_matrix() {
	local rep scen sys hyp_reason
	hyp_reason=$(hyperion_available) || log "bench: hyperion skipped: $hyp_reason"
	local reps order=interleaved
	reps=$(seq 1 "$REPS")
	[ "$MODE" = full ] || order=grouped
	for rep in $([ $order = interleaved ] && echo "$reps" || echo all); do
		for scen in $SCENARIOS; do
			scenario "$scen"
			[ "$SCEN_SINK" = 1 ] && sink_up
			for sys in $SCEN_SYSTEMS; do
				[ -n "${BENCH_SYSTEMS:-}" ] && [[ " $BENCH_SYSTEMS " != *" $sys "* ]] && continue
				if [ "$sys" = hyperion ] && [ -n "$hyp_reason" ]; then
					[ "$MODE" = smoke ] && echo "# SKIP smoke $scen hyperion: $hyp_reason"
					continue
				fi
				if [ "$rep" = all ]; then run_system "$scen" "$sys" $reps
				else run_system "$scen" "$sys" "$rep"; fi
			done
			sink_down
		done
	done
}

need
net_up
log "bench: mode $MODE, $REPS repetitions, ${DUR}s per run, generator CPU $TX_CPU, receiver NAPI $NAPI"
run_matrix
[ "$MODE" = smoke ] && exit "$SMOKE_FAIL"
# Microbenchmarks (BPF_PROG_TEST_RUN ns/packet ladder) and runtime figures, when their parts exist.
if [ -x "$B/micro" ]; then
	log "bench: microbenchmarks"
	"$B/micro" $([ "$MODE" = quick ] && echo --quick) >"$WORK/micro.md" 2>"$WORK/micro.err" ||
		{ log "bench: micro failed: $(tail -n 3 "$WORK/micro.err")"; printf '## Microbenchmarks\n\nfailed: %s\n' "$(tail -n 1 "$WORK/micro.err")" >"$WORK/micro.md"; }
else
	printf '## Microbenchmarks\n\nnot run: build/bench/micro not built (needs libhyperion.a)\n' >"$WORK/micro.md"
fi
bench/runtime.sh "$MODE" >"$WORK/runtime.md" 2>"$WORK/runtime.err" || log "bench: runtime figures: $(tail -n 1 "$WORK/runtime.err")"
# Keep every input of the report: bench/report.sh can be re-run on them (e.g. with runtime figures
# measured again by bench/runtime.sh > build/bench/last-runtime.md).
cp "$RAW" "$B/last-raw.txt"; cp "$DESC" "$B/last-desc.txt"
cp "$WORK/micro.md" "$B/last-micro.md"; cp "$WORK/runtime.md" "$B/last-runtime.md"
touch "$CHECKS"; cp "$CHECKS" "$B/last-checks.txt"
if [ -s "$CHECKS" ]; then
	{ printf '## Datapath checks\n\n'; sed 's/^/- /' "$CHECKS"; } >"$WORK/checks.md"
	cp "$WORK/checks.md" "$B/last-checks.md"
fi
BENCH_NAPI=$NAPI bench/report.sh "$RAW" "$DESC" "$MODE" "$REPS" "$DUR" "$RESULTS_MD" "$RESULTS_PNG" "$WORK/checks.md" "$WORK/micro.md" "$WORK/runtime.md"
