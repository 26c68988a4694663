# Lab of network namespaces shared by `make demo` and the end-to-end tests (source it, don't run it).
# shellcheck shell=bash
#
#   server    192.0.2.1    2001:db8::1     runs hyperiond on its interface "hyp0" (XDP + tc egress)
#   client    192.0.2.10   2001:db8::10    legitimate user
#   attacker  192.0.2.66   2001:db8::66    (and 192.0.2.67-75, 2001:db8:0:66::67-75 as extra sources)
#   outside   198.51.100.1 2001:db8:1::1   a host "on the internet" the server itself talks to
#
# All hang off a bridge in a fourth namespace ("lan"), so the server sees every peer on one interface.
# Names carry LAB_ID (default: pid) so that parallel runs never collide; lab_down removes everything.

LAB_ID=${LAB_ID:-$$}
LAB_NS_LAN=hyp-lan-$LAB_ID
LAB_NS_SERVER=hyp-srv-$LAB_ID
LAB_NS_CLIENT=hyp-cli-$LAB_ID
LAB_NS_ATTACKER=hyp-att-$LAB_ID
LAB_NS_OUTSIDE=hyp-out-$LAB_ID
LAB_IF=hyp0
LAB_SERVER4=192.0.2.1
LAB_SERVER6=2001:db8::1
LAB_CLIENT4=192.0.2.10
LAB_CLIENT6=2001:db8::10
LAB_ATTACKER4=192.0.2.66
LAB_ATTACKER6=2001:db8::66
LAB_OUTSIDE4=198.51.100.1
LAB_OUTSIDE6=2001:db8:1::1
LAB_DIR=${LAB_DIR:-/tmp/hyp-lab-$LAB_ID}
LAB_PIN_DIR=/sys/fs/bpf/hyp-lab-$LAB_ID
LAB_SOCK=$LAB_DIR/hyperiond.sock
LAB_ROOT=${LAB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
HYPERIOND=${HYPERIOND:-$LAB_ROOT/build/hyperiond}
HYPERIONCTL=${HYPERIONCTL:-$LAB_ROOT/build/hyperionctl}
LAB_PY=${LAB_PY:-/usr/bin/python3}   # the system python: it has scapy (python3-scapy)
LAB_DAEMON_PID=
LAB_ATTACKER_EXTRA4="192.0.2.67 192.0.2.68 192.0.2.69 192.0.2.70 192.0.2.71 192.0.2.72 192.0.2.73 192.0.2.74 192.0.2.75"
# The extra IPv6 sources sit in their own /64 (on the same link): the datapath rate-limits IPv6 per /64,
# so a flood from the client's /64 would rightly slow the client down too.
LAB_ATTACKER_NET6=2001:db8:0:66
LAB_ATTACKER_EXTRA6="2001:db8:0:66::67 2001:db8:0:66::68 2001:db8:0:66::69 2001:db8:0:66::70 2001:db8:0:66::71 2001:db8:0:66::72 2001:db8:0:66::73 2001:db8:0:66::74 2001:db8:0:66::75"
export LAB_SOCK HYPERIONCTL

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
srv() { in_ns "$LAB_NS_SERVER" "$@"; }
cli() { in_ns "$LAB_NS_CLIENT" "$@"; }
att() { in_ns "$LAB_NS_ATTACKER" "$@"; }
out() { in_ns "$LAB_NS_OUTSIDE" "$@"; }
ctl() { "$HYPERIONCTL" -s "$LAB_SOCK" "$@"; }

# One peer namespace: veth pair, one end in the peer as IFNAME, the other enslaved to the bridge.
lab_peer() {   # ns ifname addr4 addr6 [extra addr4...]
	local ns=$1 ifn=$2 a4=$3 a6=$4; shift 4
	local br_end=b${ns: -8}
	ip netns add "$ns"
	ip link add "$ifn" netns "$ns" type veth peer name "$br_end" netns "$LAB_NS_LAN"
	in_ns "$LAB_NS_LAN" ip link set "$br_end" master br0 up
	in_ns "$ns" ip link set lo up
	in_ns "$ns" ip link set "$ifn" up
	in_ns "$ns" ip addr add "$a4/24" dev "$ifn"
	in_ns "$ns" ip -6 addr add "$a6/64" dev "$ifn" nodad
	local extra
	for extra in "$@"; do
		case $extra in
		*:*) in_ns "$ns" ip -6 addr add "$extra/64" dev "$ifn" nodad ;;
		*) in_ns "$ns" ip addr add "$extra/24" dev "$ifn" ;;
		esac
	done
}

# Private copies of hyperiond and hyperionctl for this lab: the build directory is shared, and a rebuild
# while a test runs would otherwise swap (or briefly remove) the binaries under it. The daemon finds the
# Lua library as ../lib from its executable, hence the lib symlink beside bin/.
lab_snapshot_bins() {
	[ "${LAB_SNAPSHOT:-1}" = 1 ] || return 0
	mkdir -p "$LAB_DIR/bin"
	ln -sfn "$LAB_ROOT/lib" "$LAB_DIR/lib"
	if cp "$HYPERIOND" "$LAB_DIR/bin/hyperiond" 2>/dev/null && cp "$HYPERIONCTL" "$LAB_DIR/bin/hyperionctl" 2>/dev/null; then
		HYPERIOND=$LAB_DIR/bin/hyperiond HYPERIONCTL=$LAB_DIR/bin/hyperionctl
		export HYPERIONCTL
	fi
}

lab_up() {
	mkdir -p "$LAB_DIR"
	lab_snapshot_bins
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	ip netns add "$LAB_NS_LAN"
	in_ns "$LAB_NS_LAN" ip link add br0 type bridge
	in_ns "$LAB_NS_LAN" ip link set br0 up
	in_ns "$LAB_NS_LAN" ip link set lo up
	# A host with br_netfilter loaded (docker) makes bridges validate IP headers: malformed test packets
	# would die on the bridge instead of reaching the firewall. This bridge is a plain wire.
	local k
	for k in iptables ip6tables arptables; do
		[ -e /proc/sys/net/bridge/bridge-nf-call-$k ] || continue
		in_ns "$LAB_NS_LAN" sysctl -qw "net.bridge.bridge-nf-call-$k=0" 2>/dev/null
	done
	lab_peer "$LAB_NS_SERVER" "$LAB_IF" "$LAB_SERVER4" "$LAB_SERVER6"
	lab_peer "$LAB_NS_CLIENT" eth0 "$LAB_CLIENT4" "$LAB_CLIENT6"
	# shellcheck disable=SC2086
	lab_peer "$LAB_NS_ATTACKER" eth0 "$LAB_ATTACKER4" "$LAB_ATTACKER6" $LAB_ATTACKER_EXTRA4 $LAB_ATTACKER_EXTRA6
	# "outside" lives in another subnet reached through the server's second address: simplest is to
	# put it on the same bridge with a route, so the server's own outbound traffic crosses hyp0.
	lab_peer "$LAB_NS_OUTSIDE" eth0 "$LAB_OUTSIDE4" "$LAB_OUTSIDE6"
	srv ip route add 198.51.100.0/24 dev "$LAB_IF"
	srv ip -6 route add 2001:db8:1::/64 dev "$LAB_IF"
	srv ip -6 route add "$LAB_ATTACKER_NET6::/64" dev "$LAB_IF"
	out ip route add 192.0.2.0/24 dev eth0
	out ip -6 route add 2001:db8::/64 dev eth0
	# the server and the outside host answer ARP/ND for each other's subnet directly on the link
	srv sysctl -qw net.ipv4.conf.all.arp_ignore=0
	out sysctl -qw net.ipv4.conf.all.arp_ignore=0
	lab_write_tool
}

lab_down() {
	lab_stop_daemon
	local ns
	for ns in "$LAB_NS_SERVER" "$LAB_NS_CLIENT" "$LAB_NS_ATTACKER" "$LAB_NS_OUTSIDE" "$LAB_NS_LAN"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$LAB_PIN_DIR" 2>/dev/null
	[ -n "${LAB_KEEP_DIR:-}" ] || rm -rf "$LAB_DIR"
}

# Start hyperiond in the server namespace with POLICY; waits (bounded) until its socket answers.
lab_start_daemon() {   # policy [extra hyperiond args...]
	local policy=$1; shift
	# nsenter --net, not ip netns exec: the latter gives the program a private mount namespace with a
	# fresh /sys, so its pins would land in a bpffs of its own that dies with it (no re-adoption after a
	# restart, nothing for lab_down to clean). nsenter execs hyperiond itself, so $! is its pid and
	# signals (SIGHUP) reach it; through the srv function it would be a subshell's pid.
	nsenter --net="/run/netns/$LAB_NS_SERVER" "$HYPERIOND" -i "$LAB_IF" -p "$policy" --socket "$LAB_SOCK" \
		--pin-dir "$LAB_PIN_DIR" --state-dir "$LAB_DIR/state" "$@" >>"$LAB_DIR/hyperiond.log" 2>&1 &
	LAB_DAEMON_PID=$!
	local i
	for i in $(seq 1 100); do
		ctl status >/dev/null 2>&1 && return 0
		kill -0 "$LAB_DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "hyperiond did not come up; its log:" >&2
	tail -n 20 "$LAB_DIR/hyperiond.log" >&2
	return 1
}

lab_stop_daemon() {
	[ -n "$LAB_DAEMON_PID" ] || return 0
	kill -TERM "$LAB_DAEMON_PID" 2>/dev/null
	local i
	for i in $(seq 1 50); do kill -0 "$LAB_DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$LAB_DAEMON_PID" 2>/dev/null
	wait "$LAB_DAEMON_PID" 2>/dev/null
	LAB_DAEMON_PID=
}

# A small HTTP server in the server namespace on port 80 (v4 and v6), serving LAB_DIR/www.
lab_start_http() {
	mkdir -p "$LAB_DIR/www"
	echo "hello from hyperion lab" >"$LAB_DIR/www/index.html"
	srv python3 -m http.server 80 --bind :: --directory "$LAB_DIR/www" >"$LAB_DIR/http.log" 2>&1 &
	local i
	for i in $(seq 1 50); do
		cli curl -s -o /dev/null --max-time 1 "http://$LAB_SERVER4/" && return 0
		sleep 0.1
	done
	echo "http server did not come up" >&2
	return 1
}

# A small HTTP server in namespace NS on PORT (v4 and v6), serving LAB_DIR/www; waits until it answers
# from PROBE_NS (default: NS itself, through the given URL host).
lab_start_http_on() {   # ns port url-host [probe-ns]
	local ns=$1 port=$2 host=$3 probe=${4:-$1}
	mkdir -p "$LAB_DIR/www"
	[ -e "$LAB_DIR/www/index.html" ] || echo "hello from hyperion lab" >"$LAB_DIR/www/index.html"
	in_ns "$ns" python3 -m http.server "$port" --bind :: --directory "$LAB_DIR/www" \
		>"$LAB_DIR/http-$ns-$port.log" 2>&1 &
	local i
	for i in $(seq 1 50); do
		in_ns "$probe" curl -s -o /dev/null --max-time 1 "http://$host:$port/" && return 0
		sleep 0.1
	done
	echo "http server on $ns:$port did not come up" >&2
	return 1
}

# A TCP server (ncat, v4 and v6) in NS on PORT running ncat's per-connection option (--exec CMD,
# --sh-exec CMD); waits (bounded: 5 s) until it listens.
lab_start_ncat() {   # ns port ncat-option...
	local ns=$1 port=$2 i
	shift 2
	in_ns "$ns" ncat -l -k "$port" "$@" >"$LAB_DIR/ncat-$ns-$port.log" 2>&1 &
	for i in $(seq 1 50); do
		in_ns "$ns" ss -Hltn "sport = :$port" 2>/dev/null | grep -q LISTEN && return 0
		sleep 0.1
	done
	echo "ncat server on $ns:$port did not come up" >&2
	return 1
}

# A TCP echo server in NS on PORT: for long-lived connections.
lab_start_echo() { lab_start_ncat "$1" "$2" --exec /bin/cat; }   # ns port

# The python helpers below, run with the system python (scapy), in the root or a lab namespace.
labtool() { "$LAB_PY" "$LAB_DIR/labtool.py" "$@"; }
labtool_in() { local ns=$1; shift; in_ns "$ns" env LAB_SOCK="$LAB_SOCK" HYPERIONCTL="$HYPERIONCTL" \
	"$LAB_PY" "$LAB_DIR/labtool.py" "$@"; }

# Is ADDR covered by a ban? (any CIDR in `ban list` that contains it)
lab_banned() {   # addr
	labtool bans 2>/dev/null | cut -f1 | "$LAB_PY" -c '
import ipaddress, sys
a = ipaddress.ip_address(sys.argv[1])
sys.exit(0 if any(a in ipaddress.ip_network(l.strip(), strict=False) for l in sys.stdin if l.strip()) else 1)' "$1"
}

# Waits (bounded) until ADDR is banned (want=1) or not banned (want=0); prints the seconds waited.
lab_wait_ban() {   # addr want timeout_s
	local addr=$1 want=$2 limit=$3 t0 i
	t0=$(date +%s.%N)
	for i in $(seq 1 $((limit * 10))); do
		if lab_banned "$addr"; then [ "$want" = 1 ] && break; else [ "$want" = 0 ] && break; fi
		sleep 0.1
	done
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }'
	if lab_banned "$addr"; then [ "$want" = 1 ]; else [ "$want" = 0 ]; fi
}

# The ban row (TSV: cidr expires_in_s hits reason) covering ADDR, if any.
lab_ban_row() {   # addr
	labtool bans 2>/dev/null | "$LAB_PY" -c '
import ipaddress, sys
a = ipaddress.ip_address(sys.argv[1])
for l in sys.stdin:
    f = l.rstrip("\n").split("\t")
    if f[0] and a in ipaddress.ip_network(f[0], strict=False):
        print(l, end=""); break' "$1"
}

# Packets counted for a verdict reason ("drop_sig", "pass_flow" ...) in `hyperionctl stats`.
lab_stat() {   # reason-name
	labtool stats 2>/dev/null | awk -v r="$1" '$1 == "verdict" && $3 == r { s += $4 } END { print s + 0 }'
}
lab_counter() {   # counter-name
	labtool stats 2>/dev/null | awk -v r="$1" '($1 == "counter" || $1 == "runtime") && $2 == r { print $3; f = 1 } END { if (!f) print 0 }'
}

# MAC address of the server's interface (scapy frames are sent at layer 2 straight to it).
lab_server_mac() { srv cat "/sys/class/net/$LAB_IF/address"; }

lab_write_tool() {
	cat >"$LAB_DIR/labtool.py" <<'LABTOOL_PY'
"""Helpers for the Hyperion lab (written by scripts/lab.sh into LAB_DIR; run with the system python3).

Subcommands:
  now                                   CLOCK_MONOTONIC ns (the datapath's clock, as in events' ts_ns)
  bans                                  ban list as TSV: cidr, expires_in_s, hits, reason
  stats                                 stats as TSV: "verdict reason packets" and "counter name value"
  banwatch SRC TIMEOUT                  latency from SRC's first match event to its ban in the map
  keepalive HOST PORT LOG STOP MAXS     one long-lived TCP connection to an echo server, a line each 100 ms
  udp-echo PORT                         DNS-like UDP responder (v4 and v6)
  udp-query HOST PORT                   one DNS-like query, exit 0 if the answer arrives
  udp-send SRC DST PORT PAYLOAD         one UDP datagram from SRC
  malformed SRC DST MAC                 malformed frames with scapy (v4 or v6 by address) to MAC
  synflood6 SRC DST MAC PORT COUNT      IPv6 SYN flood with scapy (hping3 has no IPv6)
  feed T0                               live, sampled commentary of events and bans for make demo
Environment: LAB_SOCK (control socket), HYPERIONCTL (hyperionctl path).
"""
import ipaddress
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

SOCK = os.environ.get("LAB_SOCK", "")
CTL = os.environ.get("HYPERIONCTL", "hyperionctl")


def mono():
    return time.monotonic_ns()


# ---- control socket -------------------------------------------------------------------------------

def ctl_raw(words, timeout=5.0):
    """One request straight over the socket (wire format of runtime/ctl_proto.h); data lines or raise."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(SOCK)
        s.sendall((" ".join(words) + "\n").encode())
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if buf.endswith(b"OK\n") or b"\nERR " in buf or buf.startswith(b"ERR "):
                break
    finally:
        s.close()
    data, status = [], None
    for line in buf.decode(errors="replace").split("\n"):
        if line.startswith("D "):
            data.append(line[2:])
        elif line == "OK" or line.startswith("ERR "):
            status = line
    if status != "OK":
        raise RuntimeError(status or "no status line")
    return data


def ctl_cli(words, timeout=5.0):
    """The same request through hyperionctl (the contract), data lines or raise."""
    p = subprocess.run([CTL, "-s", SOCK] + words, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip() or "exit %d" % p.returncode)
    return p.stdout.splitlines()


_raw_ok = None


def ctl_lines(words):
    global _raw_ok
    if _raw_ok is not False:
        try:
            lines = ctl_raw(words)
            _raw_ok = True
            return lines
        except (OSError, RuntimeError):
            if _raw_ok:
                raise
            _raw_ok = False
    return ctl_cli(words)


def parse_json_lines(lines):
    """Whole output as one JSON document, else one document per line."""
    text = "\n".join(lines).strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        out = []
        for l in lines:
            l = l.strip().rstrip(",").lstrip(",")
            if l.startswith("{"):
                try:
                    out.append(json.loads(l))
                except ValueError:
                    pass
        return out


def rows(doc, key):
    if isinstance(doc, dict):
        v = doc.get(key)
        if isinstance(v, list):
            return v
        return [doc] if doc else []
    return doc or []


def ctl_json(words):
    return parse_json_lines(ctl_lines(["--json"] + words))


def ban_rows():
    return [r for r in rows(ctl_json(["ban", "list"]), "bans") if isinstance(r, dict) and "cidr" in r]


def net_of(cidr):
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def covers(cidr, addr):
    n = net_of(cidr)
    try:
        return n is not None and ipaddress.ip_address(addr) in n
    except ValueError:
        return False


def host_of(endpoint):
    """'192.0.2.1:80' / '[2001:db8::1]:80' / bare address -> address."""
    e = str(endpoint or "")
    if e.startswith("["):
        return e[1:e.find("]")]
    if e.count(":") == 1:
        return e.split(":")[0]
    return e


def same_addr(a, b):
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


# ---- events ---------------------------------------------------------------------------------------

class EventStream:
    """Subscribes to `events --json` and hands parsed events to a callback on a thread."""

    def __init__(self, cb):
        self.cb = cb
        self.proc = subprocess.Popen([CTL, "-s", SOCK, "--json", "events"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        for line in self.proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            self.cb(ev, mono())

    def close(self):
        try:
            self.proc.terminate()
            self.proc.wait(2)
        except Exception:
            self.proc.kill()


def cmd_banwatch(src, timeout):
    """Prints READY once subscribed, then waits for SRC's first match event and for a ban covering SRC.
    The ban is polled over the socket in a tight loop; latency = first poll that shows it - event ts."""
    timeout = float(timeout)
    first = {}

    def on_event(ev, seen):
        if ev.get("kind") == "match" and "ts" not in first and same_addr(host_of(ev.get("src")), src):
            first.update(ts=int(ev.get("ts_ns", 0)), seen=seen, sig=ev.get("sig"), verdict=ev.get("verdict"))

    es = EventStream(on_event)
    time.sleep(0.3)   # the daemon registers the subscriber on its next loop turn
    print("READY", flush=True)
    deadline = mono() + int(timeout * 1e9)
    ban_at, ban_row, polls, prev, worst_gap = None, None, 0, mono(), 0
    while mono() < deadline:
        before = mono()
        try:
            bl = ban_rows()
        except Exception as e:
            print("# ban list failed: %s" % e, flush=True)
            time.sleep(0.01)
            continue
        after = mono()
        polls += 1
        worst_gap = max(worst_gap, after - prev)
        prev = after
        hit = [r for r in bl if covers(r.get("cidr"), src)]
        if hit:
            ban_at, ban_row = after, hit[0]
            break
        time.sleep(0.0005)
    # the event may reach this subscriber after the ban shows: give it a moment
    t_end = mono() + int(2e9)
    while "ts" not in first and mono() < t_end:
        time.sleep(0.01)
    es.close()
    res = {"src": src, "polls": polls, "poll_gap_ms": round(worst_gap / 1e6, 2)}
    if "ts" in first:
        res.update(event_ts_ns=first["ts"], sig=first["sig"], event_verdict=first["verdict"],
                   event_delivery_ms=round((first["seen"] - first["ts"]) / 1e6, 2))
    if ban_at:
        res.update(ban_seen_ns=ban_at, ban=ban_row)
    if "ts" in first and ban_at:
        res["latency_ms"] = round((ban_at - first["ts"]) / 1e6, 2)
    print("RESULT " + json.dumps(res), flush=True)
    return 0 if "latency_ms" in res else 1


# ---- long-lived connection, UDP ---------------------------------------------------------------------

def cmd_keepalive(host, port, log, stop, maxs):
    """Opens ONE connection and exchanges a line every 100 ms until STOP exists or MAXS seconds; never
    reconnects, so a connection the firewall broke shows as failures. Log lines: 'ok N t_ns' / 'fail N t_ns why'."""
    port, maxs = int(port), float(maxs)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    end = mono() + int(maxs * 1e9)
    ok = fail = 0
    with open(log, "w", buffering=1) as f:
        try:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(3)
            s.connect((host, port))
            f.write("connected %s %d\n" % (s.getsockname()[1], mono()))
        except OSError as e:
            f.write("fail 0 %d connect: %s\n" % (mono(), e))
            f.write("done ok=0 fail=1\n")
            return 1
        n = 0
        buf = b""
        while mono() < end and not os.path.exists(stop):
            n += 1
            msg = ("seq %d %s\n" % (n, "x" * 64)).encode()
            try:
                s.sendall(msg)
                while msg not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise OSError("closed by peer")
                    buf += chunk
                buf = buf.split(msg, 1)[1]
                ok += 1
                f.write("ok %d %d\n" % (n, mono()))
            except OSError as e:
                fail += 1
                f.write("fail %d %d %s\n" % (n, mono(), e))
                if "closed" in str(e) or fail > 20:
                    break
            time.sleep(0.1)
        f.write("done ok=%d fail=%d\n" % (ok, fail))
    s.close()
    return 0 if fail == 0 else 1


def cmd_udp_echo(port):
    port = int(port)
    socks = []
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        socks.append(s)
    while True:
        r, _, _ = select.select(socks, [], [], 60)
        for s in r:
            data, peer = s.recvfrom(2048)
            # a DNS-ish answer: same id, QR bit set, question echoed
            if len(data) >= 12:
                data = data[:2] + bytes([data[2] | 0x80]) + data[3:]
            s.sendto(data, peer)


def cmd_udp_send(src, dst, port, payload):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.sendto(payload.encode(), (dst, int(port)))
    return 0


def cmd_udp_query(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    qid = os.getpid() & 0xffff
    q = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + \
        b"\x07example\x03com\x00\x00\x01\x00\x01"
    for _ in range(3):
        try:
            s.sendto(q, (host, int(port)))
            data, _ = s.recvfrom(2048)
            if data[:2] == q[:2] and data[2] & 0x80:
                return 0
        except OSError:
            pass
    return 1


# ---- scapy ----------------------------------------------------------------------------------------

def cmd_malformed(src, dst, mac, iface="eth0"):
    """Sends malformed frames at layer 2 (no neighbour lookups: L3 scapy resolves per packet)."""
    from scapy.all import Ether, IP, IPv6, TCP, Raw, sendp, IPv6ExtHdrDestOpt, conf
    conf.verb = 0
    pkts = []
    if ":" in dst:
        e = Ether(dst=mac, type=0x86dd)
        base = IPv6(src=src, dst=dst)
        pkts += [e / base / TCP(dport=80, flags="S", dataofs=2)]                       # doff < 5
        pkts += [e / base / TCP(dport=80, flags="SF")]                                 # SYN+FIN
        pkts += [e / base / TCP(dport=80, flags="")]                                   # NULL
        ext = IPv6(src=src, dst=dst)
        for _ in range(8):
            ext = ext / IPv6ExtHdrDestOpt()
        pkts += [e / ext / TCP(dport=80, flags="S")]                                  # chain too long
        pkts += [e / IPv6(src=src, dst=dst, nh=6, plen=4) / Raw(b"\x00\x50\x00\x50")]  # truncated TCP
    else:
        e = Ether(dst=mac, type=0x0800)
        pkts += [e / IP(src=src, dst=dst, ihl=3) / TCP(dport=80, flags="S")]          # IHL < 5
        pkts += [e / IP(src=src, dst=dst) / TCP(dport=80, flags="S", dataofs=2)]      # doff < 5
        pkts += [e / IP(src=src, dst=dst) / TCP(dport=80, flags="SF")]                # SYN+FIN
        pkts += [e / IP(src=src, dst=dst) / TCP(dport=80, flags="")]                  # NULL
        pkts += [e / IP(src=src, dst=dst, proto=6) / Raw(b"\x00\x50\x00\x50")]        # truncated TCP
        pkts += [e / IP(src=src, dst=dst, proto=17) / Raw(b"\x00\x35")]               # truncated UDP
    sendp(pkts * 20, iface=iface)
    print("sent %d malformed packets" % (len(pkts) * 20))
    return 0


def cmd_synflood6(src, dst, mac, port, count, iface="eth0"):
    from scapy.all import Ether, IPv6, TCP, sendp, conf
    conf.verb = 0
    n = int(count)
    pkts = [Ether(dst=mac) / IPv6(src=src, dst=dst) / TCP(sport=1024 + (i % 60000), dport=int(port), flags="S",
                                                          seq=i * 7919) for i in range(n)]
    sendp(pkts, iface=iface)
    print("sent %d IPv6 SYNs" % n)
    return 0


# ---- make demo's commentary -------------------------------------------------------------------------

C = {"red": "\033[31m", "grn": "\033[32m", "yel": "\033[33m", "blu": "\033[34m", "mag": "\033[35m",
     "cyn": "\033[36m", "dim": "\033[2m", "b": "\033[1m", "0": "\033[0m"}
if not sys.stdout.isatty() and not os.environ.get("FORCE_COLOR"):
    C = {k: "" for k in C}

KIND_STYLE = {"match": ("SIG", "red"), "block": ("BLOCKED", "mag"), "invalid": ("INVALID", "yel"),
              "ratelimit": ("RATELIMIT", "yel"), "policy": ("REFUSED", "blu"), "flow_new": ("FLOW", "dim"),
              "flow_end": ("FLOW-END", "dim")}


def sig_names():
    """id -> name from `sig list` (names live in the policy; the datapath only has ids)."""
    try:
        doc = ctl_json(["sig", "list"])
    except Exception:
        return {}
    lst = doc
    if isinstance(doc, dict):
        lst = next((v for v in doc.values() if isinstance(v, list)), [])
    return {r.get("id"): r.get("name") for r in lst or [] if isinstance(r, dict)}


def cmd_feed(t0):
    """Events and bans as they happen, readable: per (kind, source) the first two events get a line each
    second, then one line every 5 s at most, with the events in between folded into a count; every new
    ban gets its own line."""
    t0 = float(t0)
    lock = threading.Lock()
    last, folded, lines = {}, {}, {}
    names, refreshed = sig_names(), [0.0]

    def ts():
        return "%s%5.1fs%s" % (C["dim"], time.time() - t0, C["0"])

    def on_event(ev, _seen):
        kind = ev.get("kind", "?")
        if kind in ("flow_new", "flow_end") or "lost" in ev:
            return
        src = host_of(ev.get("src"))
        key = (kind, src)
        now = time.time()
        with lock:
            folded[key] = folded.get(key, 0) + 1 + int(ev.get("suppressed", 0) or 0)
            gap = 1.0 if lines.get(key, 0) < 2 else 5.0
            if now - last.get(key, 0) < gap:
                return
            last[key] = now
            lines[key] = lines.get(key, 0) + 1
            n, folded[key] = folded[key], 0
        label, col = KIND_STYLE.get(kind, (kind.upper(), "0"))
        what = "%s %s -> %s" % (ev.get("proto", "?"), ev.get("src", "?"), ev.get("dst", "?"))
        extra = ev.get("reason", "")
        if kind == "match":
            sig = ev.get("sig")
            if sig not in names and now - refreshed[0] > 1.0:   # a reload may have changed them
                refreshed[0] = now
                names.update(sig_names())
            extra = "signature %s, %s" % (names.get(sig) or "#%s" % sig, ev.get("verdict", ""))
        more = "  %s(+%d more)%s" % (C["dim"], n - 1, C["0"]) if n > 1 else ""
        print("  %s %s%-9s%s %-44s %s%s" % (ts(), C[col] + C["b"], label, C["0"], what, extra, more), flush=True)

    # the demo stops the feed with SIGTERM: leave through finally, which ends the event subscription
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    es = EventStream(on_event)
    seen = {}
    try:
        while True:
            try:
                bl = ban_rows()
                for r in bl:
                    c = r.get("cidr")
                    if c in seen:
                        continue
                    seen[c] = True
                    ttl = r.get("expires_in_s")
                    ttl = "never" if ttl is None else "%ss" % ttl
                    print("  %s %s%-9s%s %-44s %s%s%s" % (ts(), C["red"] + C["b"], "BAN", C["0"],
                                                        c + "  for " + ttl, C["b"], r.get("reason", ""), C["0"]),
                          flush=True)
                live = {r.get("cidr") for r in bl}
                for c in [c for c in seen if c not in live]:
                    del seen[c]
            except Exception:
                pass
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        es.close()
    return 0


def cmd_bans():
    for r in ban_rows():
        print("%s\t%s\t%s\t%s" % (r.get("cidr"), r.get("expires_in_s"), r.get("hits"), r.get("reason", "")))
    return 0


def cmd_stats():
    doc = ctl_json(["stats"])
    if not isinstance(doc, dict):
        return 1
    for v in doc.get("verdicts", []):
        print("verdict %s %s %s" % (v.get("verdict"), v.get("reason"), v.get("packets")))
    for k, v in (doc.get("counters") or {}).items():
        print("counter %s %s" % (k, v))
    for k, v in (doc.get("runtime") or {}).items():
        print("runtime %s %s" % (k, v))
    return 0


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    fn = {"now": lambda: print(mono()) or 0, "bans": cmd_bans, "stats": cmd_stats, "banwatch": cmd_banwatch,
          "keepalive": cmd_keepalive, "udp-echo": cmd_udp_echo, "udp-query": cmd_udp_query, "udp-send": cmd_udp_send,
          "malformed": cmd_malformed, "synflood6": cmd_synflood6, "feed": cmd_feed}.get(cmd)
    if not fn:
        print("unknown command " + cmd, file=sys.stderr)
        return 2
    return fn(*args)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
LABTOOL_PY
}
