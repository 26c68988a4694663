#!/usr/bin/env bash
# hyperiond + hyperionctl end to end: veth into a namespace, control socket, bans, reload, restart, metrics.
# Needs root, bpffs, ip netns, ncat, curl, python3. Binaries: $HYPERIOND / $HYPERIONCTL or build/.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
HYPERIOND=${HYPERIOND:-$BUILD/hyperiond}
HYPERIONCTL=${HYPERIONCTL:-$BUILD/hyperionctl}
HYPERIOND=$(readlink -f "$HYPERIOND")
HYPERIONCTL=$(readlink -f "$HYPERIONCTL")

pass=0 fail=0 skip=0 n=0
ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
skip_all() {
	echo "# SKIP $*"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
}
finish() {
	if [ "$skip" -gt 0 ]; then echo "$pass passed, $fail failed, $skip skipped"; else echo "$pass passed, $fail failed"; fi
	[ "$fail" -eq 0 ]
}

[ "$(id -u)" = 0 ] || skip_all "needs root"
for t in ip ncat curl python3 setpriv ping nsenter ss; do
	command -v $t >/dev/null || skip_all "missing tool: $t"
done
[ -x "$HYPERIOND" ] && [ -x "$HYPERIONCTL" ] || skip_all "hyperiond/hyperionctl not built ($HYPERIOND)"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || skip_all "no bpffs at /sys/fs/bpf"

# Both ends live in namespaces: the daemon side (NSA, entered with nsenter so the mount namespace and
# thus the bpffs pins stay shared) and the peer (NS). Nothing touches the host's own interfaces.
NSA=hyp-daemon-$$-a
NS=hyp-daemon-$$-b
HA=hd$$a                # daemon side (XDP attached here), inside $NSA
HB=hd$$b                # peer side, inside $NS
RUN=$(mktemp -d /tmp/hyp-daemon-$$.XXXXXX)
chmod 0755 "$RUN"       # so an unprivileged peer can reach the socket (and be refused by it)
PINS=/sys/fs/bpf/hyp-daemon-$$
SOCK=$RUN/ctl.sock
STATE=$RUN/state
POLICY=$RUN/policy.lua
PORT=$((20000 + $$ % 20000))
METRICS=127.0.0.1:$PORT
DPID= SRVPID= CLIPID= EVPID= SPINPID=

cleanup() {
	exec 7>&- 2>/dev/null
	for p in $SPINPID $EVPID $CLIPID $SRVPID; do kill "$p" 2>/dev/null; done
	if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
		kill -TERM "$DPID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$DPID" 2>/dev/null
	fi
	for ns in "$NS" "$NSA"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	[ -n "${HYP_KEEP_LOG:-}" ] && cp "$RUN/daemon.log" "$HYP_KEEP_LOG" 2>/dev/null
	rm -rf "$PINS" "$RUN"
}
trap cleanup EXIT

ip netns add "$NSA" && ip netns add "$NS" || skip_all "cannot create network namespaces"
ip -n "$NSA" link add "$HA" type veth peer name "$HB" netns "$NS" || skip_all "cannot create veth"
ip -n "$NSA" addr add 192.0.2.1/24 dev "$HA"
ip -n "$NSA" link set "$HA" up
ip -n "$NSA" link set lo up
ip -n "$NS" addr add 192.0.2.2/24 dev "$HB"
ip -n "$NS" addr add 192.0.2.3/24 dev "$HB"     # second source: banned by a hook, the first stays usable
ip -n "$NS" link set "$HB" up
ip -n "$NS" link set lo up

cat > "$POLICY" <<'EOF'
-- e2e policy: everything open; one signature scoped to a port nobody uses; a hook that sees flows.
local hx = require("hyperion")
hx.config{ mode = "enforce" }
hx.signature{ name = "e2e-probe", pattern = "EVIL-E2E", action = "drop", proto = "tcp", ports = { 5557 } }
local flows = 0
hx.on("flow_new", function(ev)
	flows = flows + 1
	if ev.proto == 6 and ev.dport == 5556 then     -- the TCP probe: report what the hook sees
		hx.log("info", ("e2e-flow kind=%s src=%s dst=%s sport_ok=%s dport=%d proto=%d state=%s verdict=%s ts_ok=%s")
			:format(ev.kind, ev.src, ev.dst, tostring(ev.sport > 0), ev.dport, ev.proto, ev.state, ev.verdict,
				tostring(math.abs(ev.ts - hx.now()) < 60)))
	end
end)
-- UDP signatures whose hooks ban the sender, or run away (a loop the JIT compiles).
hx.signature{ name = "e2e-hookban", pattern = "BAN-ME-E2E", action = "alert", proto = "udp", ports = { 5559 } }
hx.signature{ name = "e2e-spin", pattern = "SPIN-E2E", action = "alert", proto = "udp", ports = { 5560 } }
hx.on("match", function(ev)
	if ev.sig == "e2e-hookban" then
		hx.log("info", ("e2e-match kind=%s src=%s dst=%s sport=%d dport=%d proto=%d sig=%s verdict=%s payload=%s")
			:format(ev.kind, ev.src, ev.dst, ev.sport, ev.dport, ev.proto, ev.sig, ev.verdict, ev.payload))
		assert(hx.ban(ev.src, 600, "hook " .. ev.sig))
	elseif ev.sig == "e2e-spin" then
		local x = 0
		while true do x = x + 1 end
	end
end)
EOF

ctl() { "$HYPERIONCTL" -s "$SOCK" "$@"; }
quiet() { "$@" >/dev/null 2>&1; }
ina() { nsenter --net="/run/netns/$NSA" "$@"; }

start_daemon() {    # [extra args]; waits (bounded) until the socket answers
	# nsenter execs hyperiond in place, so $! is the daemon itself (signals reach it, not a subshell).
	nsenter --net="/run/netns/$NSA" "$HYPERIOND" -i "$HA" -p "$POLICY" --socket "$SOCK" --pin-dir "$PINS" --state-dir "$STATE" \
		--metrics "$METRICS" "$@" >>"$RUN/daemon.log" 2>&1 &
	DPID=$!
	for _ in $(seq 100); do
		ctl status >/dev/null 2>&1 && return 0
		kill -0 "$DPID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

wait_for() {        # bounded poll: wait_for TRIES CMD...
	local tries=$1; shift
	for _ in $(seq "$tries"); do "$@" && return 0; sleep 0.1; done
	return 1
}

peer_ping() { ip netns exec "$NS" ping -c1 -W1 192.0.2.1 >/dev/null 2>&1; }
peer_tcp() { ip netns exec "$NS" timeout 3 bash -c 'exec 3<>/dev/tcp/192.0.2.1/5556' 2>/dev/null; }
xdp_attached() { ip -n "$NSA" -d link show dev "$HA" | grep -q 'prog/xdp'; }
echoed() { grep -qx "$1" "$RUN/tcp.out" 2>/dev/null; }
json_ok() { python3 -c 'import json,sys; json.load(sys.stdin)'; }

# ---- arguments ----------------------------------------------------------------------------------
"$HYPERIOND" --bogus >/dev/null 2>"$RUN/err"; rc=$?
check "hyperiond: unknown option exits 2 (got $rc)" [ "$rc" = 2 ]
check "hyperiond: one-line reason" [ "$(wc -l <"$RUN/err")" = 1 ]
"$HYPERIOND" -p "$POLICY" >/dev/null 2>&1; rc=$?
check "hyperiond: missing -i exits 2 (got $rc)" [ "$rc" = 2 ]
ina "$HYPERIOND" -i hyp-nonexist0 -p "$POLICY" --socket "$RUN/x.sock" --pin-dir "$PINS-x" --state-dir "$RUN/x" \
	>/dev/null 2>"$RUN/err"; rc=$?
check "hyperiond: missing interface exits 1 (got $rc)" [ "$rc" = 1 ]
check "hyperiond: missing interface is named" grep -q "hyp-nonexist0.*not found" "$RUN/err"
printf 'local hx = require("hyperion")\nhx.config{ mode = "enforce"\nlocal x = = 1\n' > "$RUN/broken.lua"
ina "$HYPERIOND" -i "$HA" -p "$RUN/broken.lua" --socket "$RUN/x.sock" --pin-dir "$PINS-x" --state-dir "$RUN/x" \
	>/dev/null 2>"$RUN/err"; rc=$?
check "hyperiond: broken policy exits 1 (got $rc)" [ "$rc" = 1 ]
check "hyperiond: broken policy error has file:line" grep -q "broken.lua:[0-9]" "$RUN/err"
check "hyperiond: failed start leaves no XDP and no pins" bash -c "! ip -n $NSA -d link show dev $HA | grep -q prog/xdp && [ ! -e $PINS-x ]"

# ---- start ----------------------------------------------------------------------------------------
if ! start_daemon; then
	not_ok "daemon starts"; sed 's/^/# /' "$RUN/daemon.log" | tail -20; finish; exit
fi
ok "daemon starts and answers on its socket"
check "socket is mode 0600" [ "$(stat -c %a "$SOCK")" = 600 ]
check "XDP attached to $HA" xdp_attached

ina "$HYPERIOND" -i "$HA" -p "$POLICY" --socket "$SOCK" --pin-dir "$PINS" --state-dir "$STATE" >/dev/null 2>"$RUN/err"; rc=$?
check "second instance on the same socket refused (exit $rc)" bash -c "[ $rc = 1 ] && grep -q 'another hyperiond' '$RUN/err'"
check "first instance unaffected" kill -0 "$DPID"
ctl status >"$RUN/out"; rc=$?
check "status exits 0" [ "$rc" = 0 ]
check "status names the interface" grep -q "$HA" "$RUN/out"
check "status --json is JSON" json_ok < <(ctl --json status)
check "stats exits 0" quiet ctl stats
check "stats --json is JSON" json_ok < <(ctl --json stats)
check "sig list exits 0" quiet ctl sig list
check "sig list shows the policy's signature" bash -c "'$HYPERIONCTL' -s '$SOCK' sig list | grep -qE '^0 .*drop +tcp +ports 5557'"
check "status counts 3 signatures" grep -q "(3 signatures" "$RUN/out"
check "sig list --json is JSON" json_ok < <(ctl --json sig list)

# ---- a long-lived TCP connection through the firewall (echo server on the host) --------------------
nsenter --net="/run/netns/$NSA" ncat -lk 192.0.2.1 5555 -e /bin/cat >/dev/null 2>&1 &
SRVPID=$!
nsenter --net="/run/netns/$NSA" ncat -lk 192.0.2.1 5556 -e /bin/true >/dev/null 2>&1 &
SRVPID="$SRVPID $!"
wait_for 50 bash -c "nsenter --net=/run/netns/$NSA ss -ltn | grep -q '192.0.2.1:5556'"
mkfifo "$RUN/tcp.in"
ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/192.0.2.1/5555 && { cat '$RUN/tcp.in' >&3 & cat <&3 >'$RUN/tcp.out'; }" &
CLIPID=$!
exec 7<>"$RUN/tcp.in"   # read-write: never blocks, even if the client failed
echo hello-1 >&7
check "TCP session established through XDP" wait_for 50 echoed hello-1
check "flows lists the session" wait_for 20 bash -c "'$HYPERIONCTL' -s '$SOCK' flows | grep -q '192.0.2.2:[0-9]* *-> *192.0.2.1:5555'"
check "flows --json is JSON" json_ok < <(ctl --json flows --limit 10)

# The fast path: once established, the session's segments pass from the verdict cache, which counts them
# and carries the counts to the flow every 256 packets; what flows reports must still count every
# segment: the client's (its socket's segs_out, all through XDP) and the server's (through tc egress),
# plus the SYN-ACK, which the listener sent and the accepted socket's segs_out does not count.
session_counted() {
	local c s got
	c=$(ip netns exec "$NS" ss -tiH state established dst 192.0.2.1:5555 | grep -o 'segs_out:[0-9]*' | cut -d: -f2 | head -n 1)
	s=$(ina ss -tiH state established src 192.0.2.1:5555 | grep -o 'segs_out:[0-9]*' | cut -d: -f2 | head -n 1)
	got=$(ctl --json flows --limit 100 | python3 -c 'import json,sys
print(sum(f["packets"] for f in json.load(sys.stdin)["flows"] if f["resp"] == "192.0.2.1:5555"))' 2>&1)
	echo "client ${c:-?} + server ${s:-?} segments + the SYN-ACK, flows ${got:-?}" >"$RUN/session_counts"
	[ -n "$c" ] && [ -n "$s" ] && [ "$((c + s + 1))" = "$got" ]
}
hits0=$(ctl --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["vcache_hits"])' 2>/dev/null)
# One segment each, its echo, and the client's ACK of the echo: a pure ACK, which the cache passes while
# the direction is short of its stream depth, only if the client has nothing to send before its delayed
# ACK timer (40 ms) fires. With lines 20 ms apart the ACKs rode on the next line (a flaky check).
for i in $(seq 1 20); do echo "fast-$i" >&7; sleep 0.1; done
check "session echoes 20 more lines" wait_for 50 echoed fast-20
hits1=$(ctl --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["vcache_hits"])' 2>/dev/null)
check "the session's segments took the fast path (vcache_hits $hits0 -> $hits1)" \
	bash -c "[ -n '$hits0' ] && [ -n '$hits1' ] && [ '$hits1' -gt '$hits0' ]"
wait_for 30 session_counted; rc=$?
check "flows counts every segment of the session, fast path included ($(cat "$RUN/session_counts" 2>/dev/null))" \
	[ "$rc" = 0 ]
check "peer can ping before any ban" peer_ping

# ---- events (subscribe, then cause a flow_new) -----------------------------------------------------
"$HYPERIONCTL" -s "$SOCK" events >"$RUN/events.out" 2>&1 &
EVPID=$!
wait_for 50 bash -c "'$HYPERIONCTL' -s '$SOCK' --json status | grep -q '\"subscribers\":1'"
peer_tcp
check "events subscriber receives events" wait_for 50 test -s "$RUN/events.out"
kill "$EVPID" 2>/dev/null; wait "$EVPID" 2>/dev/null; EVPID=
check "events reached the Lua hook (hook calls counted)" bash -c "'$HYPERIONCTL' -s '$SOCK' --json stats | python3 -c 'import json,sys; r=json.load(sys.stdin)[\"runtime\"]; sys.exit(0 if r[\"events_read\"] > 0 and r[\"hook_calls\"] > 0 else 1)'"
check "subscriber gone after it disconnects" wait_for 50 bash -c "'$HYPERIONCTL' -s '$SOCK' --json status | grep -q '\"subscribers\":0'"

# ---- hooks: the fields they see, a ban from a hook, a runaway hook ----------------------------------
udp_send() {        # udp_send SRC SPORT DPORT PAYLOAD (from the peer namespace)
	ip netns exec "$NS" python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.sendto(sys.argv[4].encode(), ("192.0.2.1", int(sys.argv[3])))' "$@"
}
stat_of() {         # stat_of REASON: packets dropped for it (stats --json)
	"$HYPERIONCTL" -s "$SOCK" --json stats | python3 -c 'import json, sys
v = json.load(sys.stdin)["verdicts"]
print(sum(r["packets"] for r in v if r["reason"] == sys.argv[1] and r["verdict"] == "drop"))' "$1"
}
rt_of() {           # rt_of NAME: a runtime counter (stats --json)
	"$HYPERIONCTL" -s "$SOCK" --json stats | python3 -c 'import json, sys; print(json.load(sys.stdin)["runtime"][sys.argv[1]])' "$1"
}
check "flow_new hook saw the right fields" wait_for 50 grep -q \
	"e2e-flow kind=flow_new src=192.0.2.2 dst=192.0.2.1 sport_ok=true dport=5556 proto=6 state=syn_sent verdict=pass ts_ok=true" \
	"$RUN/daemon.log"
check "peer's second address can ping before the hook bans it" quiet ip netns exec "$NS" ping -c1 -W1 -I 192.0.2.3 192.0.2.1
udp_send 192.0.2.3 40001 5559 BAN-ME-E2E
check "match hook saw the right fields (incl. payload)" wait_for 50 grep -q \
	"e2e-match kind=match src=192.0.2.3 dst=192.0.2.1 sport=40001 dport=5559 proto=17 sig=e2e-hookban verdict=pass payload=BAN-ME-E2E" \
	"$RUN/daemon.log"
check "ban from the hook listed with its reason" wait_for 20 bash -c "'$HYPERIONCTL' -s '$SOCK' ban list | grep '192.0.2.3 ' | grep -q 'hook e2e-hookban'"
before=$(stat_of drop_banned)
check "a ban from a hook drops the next packet" bash -c "! ip netns exec $NS ping -c1 -W1 -I 192.0.2.3 192.0.2.1 >/dev/null 2>&1"
after=$(stat_of drop_banned)
check "... counted as drop_banned ($before -> $after)" [ "$after" -gt "$before" ]
check "the peer's other address is not affected" peer_ping
check "hook ban removed" quiet ctl ban del 192.0.2.3

calls0=$(rt_of hook_calls)
# Runaway hooks (a JIT-compiled loop) fire every 50 ms for about 2 s; status must keep answering.
ip netns exec "$NS" python3 -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.2", 40002))
for _ in range(40):
    s.sendto(b"SPIN-E2E", ("192.0.2.1", 5560))
    time.sleep(0.05)' &
SPINPID=$!
slow=0
for _ in $(seq 8); do
	t0=$(date +%s%N)
	timeout 2 "$HYPERIONCTL" -s "$SOCK" status >/dev/null 2>&1 || slow=$((slow + 100))
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$ms" -gt 500 ] && slow=$((slow + 1))
	sleep 0.2
done
wait "$SPINPID" 2>/dev/null; SPINPID=
check "status kept answering (< 500 ms each) while runaway hooks fired (misses: $slow)" [ "$slow" = 0 ]
timeouts=$(rt_of hook_timeouts)
check "runaway hooks stopped and counted (hook_timeouts $timeouts)" [ "${timeouts:-0}" -gt 0 ]
check "runaway reported with the policy's line" grep -q "policy.lua:[0-9]*: exceeded the time limit" "$RUN/daemon.log"
worst=$(grep -o 'exceeded the time limit (100 ms; stopped after [0-9]*' "$RUN/daemon.log" | grep -o '[0-9]*$' | sort -n | tail -1)
check "each runaway stopped within 300 ms at the 100 ms limit (worst ${worst:-?} ms)" test "${worst:-999}" -lt 300
check "daemon alive after runaway hooks" kill -0 "$DPID"
peer_tcp
rt_above() { [ "$(rt_of "$1")" -gt "$2" ]; }
check "hooks still run after the runaway (hook_calls rose from $calls0)" wait_for 50 rt_above hook_calls "$calls0"

# ---- bans -------------------------------------------------------------------------------------------
check "ban add exits 0" quiet ctl ban add 192.0.2.2 --ttl 600 --reason "e2e test"
check "ban list shows the ban with its reason" bash -c "'$HYPERIONCTL' -s '$SOCK' ban list | grep '192.0.2.2 ' | grep -q 'e2e test'"
check "ban list --json is JSON" json_ok < <(ctl --json ban list)
check "banned peer cannot ping" bash -c "! ip netns exec $NS ping -c2 -i0.2 -W1 192.0.2.1 >/dev/null 2>&1"
check "banned peer cannot open TCP" bash -c "! ip netns exec $NS timeout 3 bash -c 'exec 3<>/dev/tcp/192.0.2.1/5556' 2>/dev/null"
check "drops counted as drop_banned" bash -c "'$HYPERIONCTL' -s '$SOCK' stats | grep -q 'drop_banned'"
check "ban del exits 0" quiet ctl ban del 192.0.2.2
check "unbanned peer can ping again" wait_for 20 peer_ping
echo hello-2 >&7
check "established session survived ban/unban" wait_for 50 echoed hello-2

check "short ban added" quiet ctl ban add 203.0.113.50 --ttl 1 --reason "short"
check "expired ban removed by the expiry timer" wait_for 50 bash -c "! '$HYPERIONCTL' -s '$SOCK' ban list | grep -q 203.0.113.50"
check "expiry counted (timer deleted it)" wait_for 50 bash -c "'$HYPERIONCTL' -s '$SOCK' --json stats | grep -q '\"bans_expired\":1'"
ctl ban del 192.0.2.99 2>"$RUN/err"; rc=$?
check "ban del of an absent ban exits 1 (got $rc)" [ "$rc" = 1 ]
check "... with the daemon's message" grep -q "no ban for 192.0.2.99" "$RUN/err"
ctl --json ban del 192.0.2.99 >"$RUN/out" 2>/dev/null; rc=$?
check "--json refusal: exit 1 (got $rc) and a JSON error" bash -c "[ $rc = 1 ] && grep -q '\"error\":\"no ban for 192.0.2.99\"' '$RUN/out'"
ctl ban add 192.0.2.300 2>/dev/null; rc=$?
check "malformed CIDR exits 2 (got $rc)" [ "$rc" = 2 ]
ctl ban add 192.0.2.1 --ttl -5 2>/dev/null; rc=$?
check "negative TTL exits 2 (got $rc)" [ "$rc" = 2 ]
ctl ban add 192.0.2.1 --ttl 99999999999 2>/dev/null; rc=$?
check "absurd TTL exits 2 (got $rc)" [ "$rc" = 2 ]
ctl frobnicate 2>/dev/null; rc=$?
check "unknown command exits 2 (got $rc)" [ "$rc" = 2 ]
ctl 2>/dev/null; rc=$?
check "no command exits 2 (got $rc)" [ "$rc" = 2 ]
check "nothing was banned by the refused requests" bash -c "[ -z \"\$('$HYPERIONCTL' -s '$SOCK' ban list)\" ]"

# Raw protocol abuse straight at the socket: oversized and binary requests change nothing.
python3 - "$SOCK" >"$RUN/raw.out" <<'EOF'
import socket, sys
def req(data):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    try:
        s.sendall(data)
    except OSError:
        pass    # the daemon may refuse and close before we finish sending; its reply is still queued
    out = b""
    while True:
        b = s.recv(4096)
        if not b: break
        out += b
    s.close(); return out.decode(errors="replace").strip()
print(req(b"ban add 192.0.2.77 " + b"x" * 5000 + b"\n"))
print(req(b"ban add 192.0.2.77\x00\n"))
print(req(b"ban add 192.0.2.77 --reason \x07bell\n"))
EOF
check "oversized raw request refused" grep -q "^ERR request too long" "$RUN/raw.out"
check "binary raw requests refused" [ "$(grep -c '^ERR request contains a control' "$RUN/raw.out")" = 2 ]
check "raw abuse banned nothing" bash -c "! '$HYPERIONCTL' -s '$SOCK' ban list | grep -q 192.0.2.77"

# ---- allowlist --------------------------------------------------------------------------------------
ctl --json allow add 203.0.113.0/24 >"$RUN/out"; rc=$?
check "allow add exits 0 (got $rc)" [ "$rc" = 0 ]
check "allow add --json prints JSON" json_ok <"$RUN/out"
check "allow list shows it" bash -c "'$HYPERIONCTL' -s '$SOCK' allow list | grep -q '203.0.113.0/24'"
check "allow del exits 0" quiet ctl allow del 203.0.113.0/24
ctl allow del 203.0.113.0/24 2>/dev/null; rc=$?
check "allow del of an absent entry exits 1 (got $rc)" [ "$rc" = 1 ]

# ---- reload ------------------------------------------------------------------------------------------
check "ban for the persistence checks" quiet ctl ban add 198.51.100.0/24 --reason "kept across restarts"
check "reload exits 0" quiet ctl reload
kill -HUP "$DPID"
check "SIGHUP reloads (2 reloads counted)" wait_for 50 bash -c "'$HYPERIONCTL' -s '$SOCK' --json status | grep -q '\"reloads\":2,'"
check "bans kept across reload" bash -c "'$HYPERIONCTL' -s '$SOCK' ban list | grep -q 'kept across restarts'"
echo hello-3 >&7
check "flows kept across reload (session still echoes)" wait_for 50 echoed hello-3
cp "$POLICY" "$RUN/policy.good"
cp "$RUN/broken.lua" "$POLICY"
ctl reload 2>"$RUN/err"; rc=$?
check "broken policy reload exits 1 (got $rc)" [ "$rc" = 1 ]
check "broken policy refused with file:line" grep -q "policy.lua:[0-9]" "$RUN/err"
kill -HUP "$DPID"
check "SIGHUP with a broken policy is refused too" wait_for 50 bash -c "'$HYPERIONCTL' -s '$SOCK' --json status | grep -q '\"reload_failures\":2'"
cp "$RUN/policy.good" "$POLICY"
check "old policy keeps running" quiet ctl status
echo hello-4 >&7
check "session unaffected by the refused reload" wait_for 50 echoed hello-4

# ---- control socket permissions ----------------------------------------------------------------------
setpriv --reuid=65534 --regid=65534 --clear-groups "$HYPERIONCTL" -s "$SOCK" status >/dev/null 2>"$RUN/err"; rc=$?
check "non-root peer refused (exit $rc)" [ "$rc" = 1 ]
if setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+dac_override --ambient-caps=+dac_override \
	"$HYPERIONCTL" -s "$SOCK" status >/dev/null 2>"$RUN/err"; then
	not_ok "non-root peer past the file mode is refused by SO_PEERCRED"
else
	check "non-root peer past the file mode gets the daemon's error line" grep -q "uid 65534 may not use" "$RUN/err"
fi
check "root still served after refusals" quiet ctl status

# ---- metrics -----------------------------------------------------------------------------------------
ina curl -sf "http://$METRICS/metrics" >"$RUN/metrics"; rc=$?
check "metrics endpoint answers (curl $rc)" [ "$rc" = 0 ]
check "metrics has HELP/TYPE" grep -q '^# TYPE hyperion_packets_total counter' "$RUN/metrics"
check "metrics: histogram +Inf bucket" grep -q '^hyperion_hook_duration_seconds_bucket{le="+Inf"} ' "$RUN/metrics"
check "metrics: reloads counted" grep -q '^hyperion_reloads_total 2$' "$RUN/metrics"
check "metrics: bans gauge" grep -q '^hyperion_bans 1$' "$RUN/metrics"
check "metrics: text format valid" python3 - "$RUN/metrics" <<'EOF'
import re, sys
typed, ok = set(), True
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        typed.add(line.split()[2]); continue
    if line.startswith("#") or not line: continue
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+-]+|\+Inf|NaN)$', line)
    if not m: print("bad line:", line); ok = False; continue
    base = re.sub(r'_(bucket|sum|count)$', '', m.group(1))
    if m.group(1) not in typed and base not in typed: print("untyped:", line); ok = False
sys.exit(0 if ok else 1)
EOF
check "metrics: unknown path is 404" bash -c "[ \"\$(nsenter --net=/run/netns/$NSA curl -s -o /dev/null -w '%{http_code}' http://$METRICS/nope)\" = 404 ]"

# ---- kill -9 and restart: pins keep enforcing, nothing lost ----------------------------------------
snap_has() {        # the (debounced) snapshot on disk mentions $1
	python3 -c 'import sys, zlib; d = open(sys.argv[1], "rb").read(); sys.exit(0 if sys.argv[2].encode() in zlib.decompress(d[24:]) else 1)' \
		"$STATE/hyperion.snap" "$1" 2>/dev/null
}
check "snapshot written within the debounce (has the ban's reason)" wait_for 50 snap_has "kept across restarts"
# Added right before the kill: the debounced snapshot has not seen it, only the pinned map has.
check "ban added just before kill -9" quiet ctl ban add 203.0.113.77 --reason "last second"
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
check "XDP still attached while the daemon is dead" xdp_attached
echo hello-5 >&7
check "session still flows while the daemon is dead" wait_for 50 echoed hello-5
if start_daemon; then ok "daemon restarts after kill -9"; else not_ok "daemon restarts after kill -9"; fi
check "restart re-adopted the pinned datapath" bash -c "'$HYPERIONCTL' -s '$SOCK' --json status | grep -q '\"adopted\":true'"
check "no ban lost across kill -9 (reason kept)" bash -c "'$HYPERIONCTL' -s '$SOCK' ban list | grep '198.51.100.0/24' | grep -q 'kept across restarts'"
check "ban added just before kill -9 survived (pinned map)" bash -c "'$HYPERIONCTL' -s '$SOCK' ban list | grep -q '203.0.113.77 '"
echo hello-6 >&7
check "established session survived kill -9 + restart" wait_for 50 echoed hello-6

# ---- SIGTERM: state saved, datapath detached, exit 0; the snapshot alone restores bans --------------
kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
check "SIGTERM exits 0 (got $rc)" [ "$rc" = 0 ]
check "XDP detached after SIGTERM" bash -c "! ip -n $NSA -d link show dev $HA | grep -q prog/xdp"
check "pins removed after SIGTERM" [ ! -e "$PINS" ]
if start_daemon --ctl-uid 65534 --watch-policy; then ok "daemon starts from the snapshot alone"; else not_ok "daemon starts from the snapshot alone"; fi
check "ban restored from the snapshot (pins were gone)" bash -c "'$HYPERIONCTL' -s '$SOCK' ban list | grep '198.51.100.0/24' | grep -q 'kept across restarts'"
check "--ctl-uid 65534 admits that uid" quiet setpriv --reuid=65534 --regid=65534 --clear-groups "$HYPERIONCTL" -s "$SOCK" status
setpriv --reuid=65533 --regid=65533 --clear-groups --inh-caps=+dac_override --ambient-caps=+dac_override \
	"$HYPERIONCTL" -s "$SOCK" status >/dev/null 2>&1; rc=$?
check "--ctl-uid still refuses other uids (exit $rc)" [ "$rc" = 1 ]

# ---- --watch-policy: an edit on disk reloads, a broken edit is refused -------------------------------
r0=$(rt_of reloads); f0=$(rt_of reload_failures)
printf '\nhx.signature{ name = "e2e-watched", pattern = "WATCHED-E2E", action = "alert" }\n' >>"$POLICY"
check "--watch-policy: an edit on disk reloads the policy" wait_for 50 rt_above reloads "$r0"
check "... and its new signature is active" bash -c "'$HYPERIONCTL' -s '$SOCK' sig list | grep -q e2e-watched"
cp "$RUN/broken.lua" "$POLICY"
check "--watch-policy: a broken edit is refused" wait_for 50 rt_above reload_failures "$f0"
check "... and the running policy keeps its signatures" bash -c "'$HYPERIONCTL' -s '$SOCK' sig list | grep -q e2e-watched"
check "... with the error's file:line in the log" grep -q "reload refused.*policy.lua:[0-9]" "$RUN/daemon.log"
cp "$RUN/policy.good" "$POLICY"
check "ban still there after the watched reloads" bash -c "'$HYPERIONCTL' -s '$SOCK' ban list | grep -q '198.51.100.0/24'"

kill -TERM "$DPID"; wait "$DPID"; rc=$?; DPID=
check "second SIGTERM exits 0 (got $rc)" [ "$rc" = 0 ]

grep -E " (error|warning): |snapshot|adopt" "$RUN/daemon.log" | head -30 | sed "s/^/# daemon: /"
finish
