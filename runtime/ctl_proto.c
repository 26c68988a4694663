/* Control-socket wire format: request words <-> struct hyp_ctl_req, response lines and row formats. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <event2/buffer.h>
#include "ctl_proto.h"
#include "log.h"

/* A control character anywhere in a request would let one request smuggle a second line or confuse a
 * terminal that prints it back; DEL counts too. Bytes >= 0x80 (UTF-8) are fine. */
static bool ctl_is_ctrl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Every parse error is -EINVAL with the reason in err. */
#define ctl_errf(err, errlen, ...) hyp_errf(err, errlen, -EINVAL, __VA_ARGS__)

int ctl_ttl_parse(const char *s, __u64 *out)
{
	__u64 v = 0, mult = 1;
	size_t n = s ? strlen(s) : 0, i;

	if (n == 0 || n > 20)
		return -EINVAL;
	switch (s[n - 1]) {
	case 's': mult = 1; n--; break;
	case 'm': mult = 60; n--; break;
	case 'h': mult = 3600; n--; break;
	case 'd': mult = 86400; n--; break;
	default: break;
	}
	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (__u64)(s[i] - '0');
		if (v > HYP_CTL_TTL_MAX)    /* checked every digit, so v * 10 never overflows */
			return -ERANGE;
	}
	if (v == 0 || v > HYP_CTL_TTL_MAX / mult)
		return v == 0 ? -EINVAL : -ERANGE;
	*out = v * mult;
	return 0;
}

static int ctl_limit_parse(const char *s, unsigned *out)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 9)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > HYP_CTL_FLOWS_MAX)
		return -ERANGE;
	*out = (unsigned)v;
	return 0;
}

static int ctl_cidr_arg(const char *s, struct hyp_cidr *c, char *err, size_t errlen)
{
	if (!cidr_parse(s, c, false))
		return 0;
	/* Say why when the only problem is host bits: the operator most likely meant the network. */
	if (!cidr_parse(s, c, true)) {
		char net[64];
		cidr_format(c, net, sizeof(net));
		return ctl_errf(err, errlen, "invalid CIDR '%s': host bits set (did you mean %s?)", s, net);
	}
	return ctl_errf(err, errlen, "invalid address or CIDR '%s'", s);
}

/* Options after the positional words: each command lists which it takes. */
enum { OPT_TTL = 1, OPT_REASON = 2, OPT_LIMIT = 4 };

static int ctl_opts_parse(int argc, char *const argv[], int i, unsigned allowed, struct hyp_ctl_req *req,
			  char *err, size_t errlen)
{
	for (; i < argc; i++) {
		const char *a = argv[i];
		unsigned which = !strcmp(a, "--ttl") ? OPT_TTL : !strcmp(a, "--reason") ? OPT_REASON :
				 !strcmp(a, "--limit") ? OPT_LIMIT : 0;
		if (!which || !(allowed & which))
			return ctl_errf(err, errlen, "unexpected argument '%s'", a);
		if (i + 1 >= argc)
			return ctl_errf(err, errlen, "%s needs a value", a);
		const char *v = argv[++i];
		int rc;
		switch (which) {
		case OPT_TTL:
			rc = ctl_ttl_parse(v, &req->ttl_s);
			if (rc == -ERANGE)
				return ctl_errf(err, errlen, "TTL '%s' out of range (1s .. %llus)", v,
						(unsigned long long)HYP_CTL_TTL_MAX);
			if (rc)
				return ctl_errf(err, errlen, "invalid TTL '%s' (seconds, or N with s/m/h/d)", v);
			break;
		case OPT_REASON:
			if (strlen(v) >= sizeof(req->reason))
				return ctl_errf(err, errlen, "reason longer than %zu bytes", sizeof(req->reason) - 1);
			for (const char *p = v; *p; p++)
				if (ctl_is_ctrl((unsigned char)*p))
					return ctl_errf(err, errlen, "reason contains a control character");
			snprintf(req->reason, sizeof(req->reason), "%s", v);
			break;
		case OPT_LIMIT:
			rc = ctl_limit_parse(v, &req->limit);
			if (rc)
				return ctl_errf(err, errlen, "invalid limit '%s' (1 .. %u)", v, HYP_CTL_FLOWS_MAX);
			break;
		}
	}
	return 0;
}

/* add|del take one CIDR, list takes nothing. */
static int ctl_list_cmd(int argc, char *const argv[], struct hyp_ctl_req *req, enum hyp_ctl_cmd add,
			enum hyp_ctl_cmd del, enum hyp_ctl_cmd list, unsigned add_opts, char *err, size_t errlen)
{
	if (argc < 2)
		return ctl_errf(err, errlen, "'%s' needs add, del or list", argv[0]);
	const char *sub = argv[1];
	if (!strcmp(sub, "list")) {
		req->cmd = list;
		return ctl_opts_parse(argc, argv, 2, 0, req, err, errlen);
	}
	if (strcmp(sub, "add") && strcmp(sub, "del"))
		return ctl_errf(err, errlen, "unknown '%s' subcommand '%s' (add, del, list)", argv[0], sub);
	bool is_add = !strcmp(sub, "add");
	req->cmd = is_add ? add : del;
	if (argc < 3)
		return ctl_errf(err, errlen, "'%s %s' needs a CIDR", argv[0], sub);
	int rc = ctl_cidr_arg(argv[2], &req->cidr, err, errlen);
	if (rc)
		return rc;
	return ctl_opts_parse(argc, argv, 3, is_add ? add_opts : 0, req, err, errlen);
}

int ctl_req_parse_argv(int argc, char *const argv[], struct hyp_ctl_req *req, char *err, size_t errlen)
{
	char *words[HYP_CTL_ARGS_MAX];
	int n = 0;

	memset(req, 0, sizeof(*req));
	if (err && errlen)
		err[0] = 0;
	/* --json may sit anywhere; strip it so the command grammar below need not know about it. */
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			req->json = true;
			continue;
		}
		if (n == HYP_CTL_ARGS_MAX)
			return ctl_errf(err, errlen, "too many arguments (max %d)", HYP_CTL_ARGS_MAX);
		words[n++] = argv[i];
	}
	if (n == 0)
		return ctl_errf(err, errlen, "missing command");
	const char *cmd = words[0];
	if (!strcmp(cmd, "status") || !strcmp(cmd, "stats") || !strcmp(cmd, "reload") || !strcmp(cmd, "events")) {
		req->cmd = !strcmp(cmd, "status") ? HYP_CTL_STATUS : !strcmp(cmd, "stats") ? HYP_CTL_STATS :
			   !strcmp(cmd, "reload") ? HYP_CTL_RELOAD : HYP_CTL_EVENTS;
		return ctl_opts_parse(n, words, 1, 0, req, err, errlen);
	}
	if (!strcmp(cmd, "ban"))
		return ctl_list_cmd(n, words, req, HYP_CTL_BAN_ADD, HYP_CTL_BAN_DEL, HYP_CTL_BAN_LIST,
				    OPT_TTL | OPT_REASON, err, errlen);
	if (!strcmp(cmd, "allow"))
		return ctl_list_cmd(n, words, req, HYP_CTL_ALLOW_ADD, HYP_CTL_ALLOW_DEL, HYP_CTL_ALLOW_LIST, 0,
				    err, errlen);
	if (!strcmp(cmd, "flows")) {
		req->cmd = HYP_CTL_FLOWS;
		req->limit = HYP_CTL_FLOWS_DEFAULT;
		return ctl_opts_parse(n, words, 1, OPT_LIMIT, req, err, errlen);
	}
	if (!strcmp(cmd, "sig")) {
		if (n < 2 || strcmp(words[1], "list"))
			return ctl_errf(err, errlen, "'sig' needs 'list'");
		req->cmd = HYP_CTL_SIG_LIST;
		return ctl_opts_parse(n, words, 2, 0, req, err, errlen);
	}
	return ctl_errf(err, errlen, "unknown command '%.64s'", cmd);
}

int ctl_req_parse_line(const char *line, size_t len, struct hyp_ctl_req *req, char *err, size_t errlen)
{
	char buf[HYP_CTL_REQ_MAX];
	char *words[HYP_CTL_ARGS_MAX];
	int n = 0;
	size_t o = 0;

	memset(req, 0, sizeof(*req));
	if (len && line[len - 1] == '\n')
		len--;
	if (len >= HYP_CTL_REQ_MAX)
		return ctl_errf(err, errlen, "request too long (max %d bytes)", HYP_CTL_REQ_MAX - 1);
	for (size_t i = 0; i < len; i++)
		if (ctl_is_ctrl((unsigned char)line[i]))
			return ctl_errf(err, errlen, "request contains a control or NUL byte at offset %zu", i);
	/* Split into words in buf: each word is NUL-terminated in place, quotes and escapes removed. */
	size_t i = 0;
	for (;;) {
		while (i < len && line[i] == ' ')
			i++;
		if (i == len)
			break;
		if (n == HYP_CTL_ARGS_MAX)
			return ctl_errf(err, errlen, "too many words in request (max %d)", HYP_CTL_ARGS_MAX);
		words[n++] = buf + o;
		if (line[i] == '"') {
			i++;
			for (;;) {
				if (i == len)
					return ctl_errf(err, errlen, "unterminated quote in request");
				char c = line[i++];
				if (c == '"')
					break;
				if (c == '\\') {
					if (i == len || (line[i] != '"' && line[i] != '\\'))
						return ctl_errf(err, errlen, "bad escape in request");
					c = line[i++];
				}
				buf[o++] = c;
			}
			if (i < len && line[i] != ' ')
				return ctl_errf(err, errlen, "text after closing quote in request");
		} else {
			while (i < len && line[i] != ' ') {
				if (line[i] == '"' || line[i] == '\\')
					return ctl_errf(err, errlen, "stray quote or backslash in request");
				buf[o++] = line[i++];
			}
		}
		buf[o++] = 0;   /* o <= i + 1 <= len < sizeof(buf): a word never grows when unquoted */
	}
	return ctl_req_parse_argv(n, words, req, err, errlen);
}

int ctl_req_format(int argc, char *const argv[], char *buf, size_t len)
{
	size_t o = 0;

#define PUT(ch) do { if (o + 1 >= len) return -E2BIG; buf[o++] = (ch); } while (0)
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i];
		bool quote = !*w || strpbrk(w, " \"\\") != NULL;
		if (i)
			PUT(' ');
		if (quote)
			PUT('"');
		for (const char *p = w; *p; p++) {
			if (ctl_is_ctrl((unsigned char)*p))
				return -EINVAL;
			if (quote && (*p == '"' || *p == '\\'))
				PUT('\\');
			PUT(*p);
		}
		if (quote)
			PUT('"');
	}
	PUT('\n');
#undef PUT
	buf[o] = 0;
	if (o > HYP_CTL_REQ_MAX)
		return -E2BIG;
	return (int)o;
}

/* ---- responses ---- */

void ctl_put_ok(struct evbuffer *out)
{
	evbuffer_add(out, "OK\n", 3);
}

static void ctl_sanitize(char *s)
{
	for (; *s; s++)
		if (ctl_is_ctrl((unsigned char)*s))
			*s = ' ';
}

/* One framed line: prefix, the formatted text with control characters blanked, '\n'. */
static void ctl_vput(struct evbuffer *out, const char *prefix, size_t max, const char *fmt, va_list ap)
{
	char msg[2048];

	vsnprintf(msg, max < sizeof(msg) ? max : sizeof(msg), fmt, ap);
	ctl_sanitize(msg);
	evbuffer_add_printf(out, "%s%s\n", prefix, msg);
}

void ctl_put_err(struct evbuffer *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_vput(out, "ERR ", 1024, fmt, ap);
	va_end(ap);
}

void ctl_put_line(struct evbuffer *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_vput(out, "D ", 2048, fmt, ap);
	va_end(ap);
}

void ctl_json_str(char *buf, size_t len, const char *s)
{
	size_t o = 0;

	if (!len)
		return;
	/* Reserve room for the closing quote and NUL; stop before an escape that would not fit. */
	if (len < 3) {
		buf[0] = 0;
		return;
	}
	buf[o++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		size_t el;
		if (c == '"' || c == '\\')
			el = (size_t)snprintf(esc, sizeof(esc), "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			el = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
		else {
			esc[0] = (char)c;
			el = 1;
		}
		if (o + el + 2 > len)
			break;
		memcpy(buf + o, esc, el);
		o += el;
	}
	buf[o++] = '"';
	buf[o] = 0;
}

/* Seconds from now until t (both dp_now_ns clock), rounded up; 0 if past. */
static unsigned long long ctl_secs_left(__u64 t, __u64 now)
{
	return t > now ? (t - now + 999999999ull) / 1000000000ull : 0;
}

void ctl_fmt_ban(char *buf, size_t len, bool json, const struct hyp_cidr *c, const struct hyp_ban *b,
		 __u64 now_ns, const char *reason)
{
	char cidr[64], rj[HYP_CTL_REASON_MAX * 6 + 3];
	unsigned long long left = ctl_secs_left(b->expires_ns, now_ns);
	unsigned long long age = now_ns > b->created_ns ? (now_ns - b->created_ns) / 1000000000ull : 0;

	cidr_format(c, cidr, sizeof(cidr));
	if (json) {
		ctl_json_str(rj, sizeof(rj), reason ? reason : "");
		if (b->expires_ns)
			snprintf(buf, len, "{\"cidr\":\"%s\",\"expires_in_s\":%llu,\"age_s\":%llu,\"hits\":%u,"
				 "\"reason\":%s}", cidr, left, age, b->hits, rj);
		else
			snprintf(buf, len, "{\"cidr\":\"%s\",\"expires_in_s\":null,\"age_s\":%llu,\"hits\":%u,"
				 "\"reason\":%s}", cidr, age, b->hits, rj);
		return;
	}
	char exp[32];
	if (b->expires_ns)
		snprintf(exp, sizeof(exp), "%llus", left);
	else
		snprintf(exp, sizeof(exp), "never");
	snprintf(buf, len, "%-40s expires %-10s hits %-8u reason %s", cidr, exp, b->hits,
		 reason && *reason ? reason : "-");
}

void ctl_fmt_allow(char *buf, size_t len, bool json, const struct hyp_cidr *c, const struct hyp_allow *a,
		   __u64 now_ns)
{
	char cidr[64];
	unsigned long long age = now_ns > a->created_ns ? (now_ns - a->created_ns) / 1000000000ull : 0;

	cidr_format(c, cidr, sizeof(cidr));
	if (json)
		snprintf(buf, len, "{\"cidr\":\"%s\",\"age_s\":%llu}", cidr, age);
	else
		snprintf(buf, len, "%-40s age %llus", cidr, age);
}

const char *ctl_proto_name(__u8 p, char *tmp, size_t len)
{
	switch (p) {
	case IPPROTO_TCP: return "tcp";
	case IPPROTO_UDP: return "udp";
	case IPPROTO_ICMP: return "icmp";
	case IPPROTO_ICMPV6: return "icmpv6";
	default: snprintf(tmp, len, "%u", p); return tmp;
	}
}

/* "192.0.2.1:80" / "[2001:db8::1]:80"; ICMP has no ports (the key holds the echo id): address only. */
static void ctl_endpoint(char *buf, size_t len, __u8 family, const __u8 *addr, __u16 port_be, __u8 proto)
{
	char a[64];

	addr_format(family, addr, a, sizeof(a));
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6)
		snprintf(buf, len, "%s", a);
	else
		snprintf(buf, len, family == HYP_AF_INET6 ? "[%s]:%u" : "%s:%u", a, ntohs(port_be));
}

void ctl_fmt_flow(char *buf, size_t len, bool json, const struct hyp_flow_key *k, const struct hyp_flow *f,
		  bool established, __u64 now_ns)
{
	char pt[8], a[80], b[80];
	const char *proto = ctl_proto_name(k->proto, pt, sizeof(pt));
	/* Print originator first: orig is the direction index of the side that opened the flow. */
	const __u8 *oa = f->orig ? k->addr_b : k->addr_a, *ra = f->orig ? k->addr_a : k->addr_b;
	__u16 op = f->orig ? k->port_b : k->port_a, rp = f->orig ? k->port_a : k->port_b;
	unsigned long long idle = now_ns > f->last_seen_ns ? (now_ns - f->last_seen_ns) / 1000000000ull : 0;
	unsigned long long age = now_ns > f->created_ns ? (now_ns - f->created_ns) / 1000000000ull : 0;

	ctl_endpoint(a, sizeof(a), k->family, oa, op, k->proto);
	ctl_endpoint(b, sizeof(b), k->family, ra, rp, k->proto);
	if (json)
		snprintf(buf, len, "{\"proto\":\"%s\",\"orig\":\"%s\",\"resp\":\"%s\",\"state\":\"%s\","
			 "\"table\":\"%s\",\"packets\":%llu,\"bytes\":%llu,\"age_s\":%llu,\"idle_s\":%llu,"
			 "\"flags\":%u}", proto, a, b, ct_state_name(f->state), established ? "flows" : "flows_new",
			 (unsigned long long)(f->packets[0] + f->packets[1]),
			 (unsigned long long)(f->bytes[0] + f->bytes[1]), age, idle, f->flags);
	else
		snprintf(buf, len, "%-6s %-21s -> %-21s %-11s pkts %-8llu bytes %-10llu age %llus idle %llus", proto,
			 a, b, ct_state_name(f->state), (unsigned long long)(f->packets[0] + f->packets[1]),
			 (unsigned long long)(f->bytes[0] + f->bytes[1]), age, idle);
}

static const char *ctl_verdict_name(unsigned v)
{
	static const char *const names[] = { "pass", "drop", "monitor", "aborted", "tx" };
	return v < sizeof(names) / sizeof(names[0]) ? names[v] : "unknown";
}

void ctl_fmt_event(char *buf, size_t len, bool json, const struct hyp_event *ev)
{
	char pt[8], s[80], d[80], sig[16] = "-";
	const char *proto = ctl_proto_name(ev->proto, pt, sizeof(pt));
	__u8 fam = ev->family == HYP_AF_INET6 ? HYP_AF_INET6 : HYP_AF_INET;

	ctl_endpoint(s, sizeof(s), fam, ev->saddr, ev->sport, ev->proto);
	ctl_endpoint(d, sizeof(d), fam, ev->daddr, ev->dport, ev->proto);
	if (ev->sig != HYP_EV_NO_SIG)
		snprintf(sig, sizeof(sig), "%u", ev->sig);
	if (json)
		snprintf(buf, len, "{\"ts_ns\":%llu,\"kind\":\"%s\",\"proto\":\"%s\",\"src\":\"%s\",\"dst\":\"%s\","
			 "\"verdict\":\"%s\",\"reason\":\"%s\",\"state\":\"%s\",\"dir\":%u,\"sig\":%s,"
			 "\"ifindex\":%u,\"suppressed\":%u,\"pkt_len\":%u,\"packets\":%llu,\"bytes\":%llu}",
			 (unsigned long long)ev->ts_ns, event_kind_name(ev->kind), proto, s, d,
			 ctl_verdict_name(ev->verdict), reason_name(ev->reason), ct_state_name(ev->state), ev->dir,
			 ev->sig != HYP_EV_NO_SIG ? sig : "null", ev->ifindex, ev->suppressed, ev->pkt_len,
			 (unsigned long long)ev->packets, (unsigned long long)ev->bytes);
	else
		snprintf(buf, len, "%-9s %-6s %s -> %s %s %s state %s sig %s suppressed %u", event_kind_name(ev->kind),
			 proto, s, d, ctl_verdict_name(ev->verdict), reason_name(ev->reason), ct_state_name(ev->state),
			 sig, ev->suppressed);
}

enum hyp_ctl_line ctl_line_kind(const char *line, const char **text)
{
	static const char empty[] = "";

	*text = empty;
	if (!strncmp(line, "D ", 2)) {
		*text = line + 2;
		return HYP_CTL_LINE_DATA;
	}
	if (!strcmp(line, "OK"))
		return HYP_CTL_LINE_OK;
	if (!strncmp(line, "ERR ", 4)) {
		*text = line + 4;
		return HYP_CTL_LINE_ERR;
	}
	*text = line;
	return HYP_CTL_LINE_BAD;
}
