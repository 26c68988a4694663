#!/usr/bin/env bash
# End-to-end: the host's own traffic under a restrictive policy. With hyperiond enforcing allow_tcp =
# {22, 80} and no UDP port open, the server's outbound connections to the "outside" namespace (HTTP with
# curl, an ncat echo session, a DNS-like UDP round trip, ping) keep working, v4 and v6, with the default
# pickup and with pickup "strict" (the replies are known flows: tc egress saw the server's packets first).
# And connections open BEFORE hyperiond starts (client -> server and server -> outside) survive its start
# (mid-stream pickup confirmed by the local socket) and a later switch to strict pickup.
set -u
cd "$(dirname "$0")/../.." || exit 1
LAB_ID=$$
source scripts/lab.sh
source tests/e2e/lib.sh

e2e_require ncat curl ping ss
e2e_traps 20

lab_up
# outside: HTTP on 8080 (and a 2 MB file), an ncat echo server on 9000, a DNS-like responder on 53
head -c 2000000 /dev/urandom >"$LAB_DIR/www-big" 2>/dev/null
mkdir -p "$LAB_DIR/www" && mv "$LAB_DIR/www-big" "$LAB_DIR/www/big.bin"
lab_start_http_on "$LAB_NS_OUTSIDE" 8080 "$LAB_OUTSIDE4" "$LAB_NS_SERVER" || { notok "HTTP server in outside"; finish; }
lab_start_echo "$LAB_NS_OUTSIDE" 9000 || { notok "echo server in outside"; finish; }
labtool_in "$LAB_NS_OUTSIDE" udp-echo 53 >/dev/null 2>&1 &
SRV_PIDS+=($!)
# server: the echo server on 22 (allowed), and listeners the policy must refuse: TCP 8081, UDP 5353
lab_start_echo "$LAB_NS_SERVER" 22 || { notok "echo server on the server"; finish; }
lab_start_http_on "$LAB_NS_SERVER" 8081 "$LAB_SERVER4" "$LAB_NS_CLIENT" || { notok "HTTP server on :8081"; finish; }
labtool_in "$LAB_NS_SERVER" udp-echo 5353 >/dev/null 2>&1 &
SRV_PIDS+=($!)
sleep 0.3

# ---- connections established before hyperiond starts -----------------------------------------------------
labtool_in "$LAB_NS_CLIENT" keepalive "$LAB_SERVER4" 22 "$LAB_DIR/in4.log" "$LAB_DIR/stop" 120 & BG_PIDS+=($!)
labtool_in "$LAB_NS_CLIENT" keepalive "$LAB_SERVER6" 22 "$LAB_DIR/in6.log" "$LAB_DIR/stop" 120 & BG_PIDS+=($!)
labtool_in "$LAB_NS_SERVER" keepalive "$LAB_OUTSIDE4" 9000 "$LAB_DIR/out4.log" "$LAB_DIR/stop" 120 & BG_PIDS+=($!)
labtool_in "$LAB_NS_SERVER" keepalive "$LAB_OUTSIDE6" 9000 "$LAB_DIR/out6.log" "$LAB_DIR/stop" 120 & BG_PIDS+=($!)
sleep 1
for f in in4 in6 out4 out6; do
	check "[$f] session exchanging data before hyperiond starts ($(grep -c '^ok' "$LAB_DIR/$f.log") round trips)" \
		[ "$(grep -c '^ok' "$LAB_DIR/$f.log")" -ge 3 ]
done

OUTBOUND_POLICY=${OUTBOUND_POLICY:-tests/e2e/policies/outbound.lua}   # overridable: run against another policy
cp "$OUTBOUND_POLICY" "$LAB_DIR/policy.lua"
t_start=$(labtool now)
if lab_start_daemon "$LAB_DIR/policy.lua"; then ok "hyperiond starts (enforce, allow_tcp = {22, 80}, no UDP)"; else notok "hyperiond starts"; finish; fi
ctl status | sed 's/^/# /'
sleep 2

survived() {   # log since-ns: round trips after since, failures overall
	local after fails
	after=$(awk -v t="$2" '$1 == "ok" && $3 > t { n++ } END { print n + 0 }' "$LAB_DIR/$1.log")
	fails=$(grep -c '^fail' "$LAB_DIR/$1.log")
	[ "$after" -ge 10 ] && [ "$fails" -eq 0 ] &&
		ok "[$1] session open before the start still exchanges data ($after round trips since, 0 failures)" ||
		notok "[$1] session open before the start survives ($after round trips since, $fails failures: $(grep -m1 '^fail' "$LAB_DIR/$1.log"))"
}
for f in in4 in6 out4 out6; do survived "$f" "$t_start"; done
pickups=$(lab_counter ct_pickup)
check "the sessions were picked up mid-stream (ct_pickup = $pickups, 4 sessions)" [ "$pickups" -ge 4 ]

# ---- the host's own outbound traffic, and the inbound policy still closed --------------------------------------
outbound_checks() {   # label
	local l=$1 fam o s
	for fam in 4 6; do
		if [ "$fam" = 4 ]; then o=$LAB_OUTSIDE4 s=$LAB_SERVER4; u="http://$o:8080"; else o=$LAB_OUTSIDE6 s=$LAB_SERVER6; u="http://[$o]:8080"; fi
		check "[$l v$fam] curl from the server to outside" srv curl -s -o /dev/null --max-time 3 "$u/index.html"
		got=$(srv curl -s --max-time 5 "$u/big.bin" | cmp - "$LAB_DIR/www/big.bin" 2>&1 && echo same)
		check "[$l v$fam] 2 MB download from outside intact" [ "$got" = same ]
		# ncat quits at stdin EOF without waiting for the echo: keep stdin open a moment
		reply=$({ echo "hello-$l-$fam"; sleep 0.5; } | srv timeout 5 ncat -w 3 "$o" 9000 2>/dev/null)
		check "[$l v$fam] ncat round trip to outside ($reply)" [ "$reply" = "hello-$l-$fam" ]
		check "[$l v$fam] DNS-like UDP round trip to outside:53" labtool_in "$LAB_NS_SERVER" udp-query "$o" 53
		check "[$l v$fam] ping outside" srv ping -q -c 2 -i 0.2 -W 1 "$o" >/dev/null
		# the policy is restrictive for inbound: these listen on the server but must stay closed
		if [ "$fam" = 4 ]; then u="http://$s:8081/"; else u="http://[$s]:8081/"; fi
		refused "[$l v$fam] inbound TCP to 8081 (listening, not allowed) refused" out curl -s -o /dev/null --max-time 1 "$u"
		refused "[$l v$fam] inbound UDP to 5353 (listening, not allowed) refused" labtool_in "$LAB_NS_OUTSIDE" udp-query "$s" 5353
		reply=$({ echo "in-$l-$fam"; sleep 0.5; } | cli timeout 5 ncat -w 3 "$s" 22 2>/dev/null)
		check "[$l v$fam] inbound TCP to 22 allowed ($reply)" [ "$reply" = "in-$l-$fam" ]
	done
}
outbound_checks socket

# ---- pickup "strict": outbound flows are known, established sessions keep their flows ----------------------------
cp tests/e2e/policies/outbound_strict.lua "$LAB_DIR/policy.lua"
t_strict=$(labtool now)
out=$(ctl reload 2>&1)
check "reload to pickup strict ($out)" [ $? -eq 0 ]
sleep 1.5
outbound_checks strict
for f in in4 in6 out4 out6; do survived "$f" "$t_strict"; done
drop_invalid=$(lab_stat drop_invalid)
note "drop_invalid so far: $drop_invalid"

touch "$LAB_DIR/stop"
for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
BG_PIDS=()
for f in in4 in6 out4 out6; do
	d=$(grep '^done' "$LAB_DIR/$f.log")
	[[ $d == *"fail=0" ]] && ok "[$f] session over the whole run: $d" || notok "[$f] session over the whole run: ${d:-no summary}"
done
check "hyperiond still running" kill -0 "$LAB_DAEMON_PID"
note "stats:"; ctl stats 2>&1 | sed 's/^/#   /'
finish
