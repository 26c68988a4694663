/* Control protocol: request parsing (argv and wire line), quoting round trip, response rows. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <event2/buffer.h>
#include "ctl_proto.h"
#include "tap.h"

/* Parses a wire line given as a C string (no NULs). */
static int parse(const char *line, struct hyp_ctl_req *r, char *err, size_t errlen)
{
	return ctl_req_parse_line(line, strlen(line), r, err, errlen);
}

struct good_case {
	const char *line;
	enum hyp_ctl_cmd cmd;
	bool json;
	unsigned long long ttl;
	const char *reason;
	unsigned limit;
	const char *cidr;
};

static const struct good_case good[] = {
	{ "status", HYP_CTL_STATUS, false, 0, "", 0, NULL },
	{ "status --json", HYP_CTL_STATUS, true, 0, "", 0, NULL },
	{ "--json stats", HYP_CTL_STATS, true, 0, "", 0, NULL },
	{ "reload", HYP_CTL_RELOAD, false, 0, "", 0, NULL },
	{ "events", HYP_CTL_EVENTS, false, 0, "", 0, NULL },
	{ "ban add 192.0.2.1", HYP_CTL_BAN_ADD, false, 0, "", 0, "192.0.2.1" },
	{ "ban add 192.0.2.0/24 --ttl 90", HYP_CTL_BAN_ADD, false, 90, "", 0, "192.0.2.0/24" },
	{ "ban add 2001:db8::/32 --ttl 2h", HYP_CTL_BAN_ADD, false, 7200, "", 0, "2001:db8::/32" },
	{ "ban add 198.51.100.7 --ttl 7d --reason \"port scan \\\"x\\\" \\\\ y\"", HYP_CTL_BAN_ADD, false,
	  7 * 86400, "port scan \"x\" \\ y", 0, "198.51.100.7" },
	{ "ban add 203.0.113.9 --reason spam --ttl 15m", HYP_CTL_BAN_ADD, false, 900, "spam", 0, "203.0.113.9" },
	{ "ban del 203.0.113.0/24", HYP_CTL_BAN_DEL, false, 0, "", 0, "203.0.113.0/24" },
	{ "ban list --json", HYP_CTL_BAN_LIST, true, 0, "", 0, NULL },
	{ "allow add 2001:db8::1", HYP_CTL_ALLOW_ADD, false, 0, "", 0, "2001:db8::1" },
	{ "allow del 192.0.2.0/25", HYP_CTL_ALLOW_DEL, false, 0, "", 0, "192.0.2.0/25" },
	{ "allow list", HYP_CTL_ALLOW_LIST, false, 0, "", 0, NULL },
	{ "flows", HYP_CTL_FLOWS, false, 0, "", HYP_CTL_FLOWS_DEFAULT, NULL },
	{ "flows --limit 5", HYP_CTL_FLOWS, false, 0, "", 5, NULL },
	{ "  sig   list  ", HYP_CTL_SIG_LIST, false, 0, "", 0, NULL },
};

struct bad_case {
	const char *line;
	const char *msg;        /* substring the error must contain */
};

static const struct bad_case bad[] = {
	{ "", "missing command" },
	{ "frobnicate", "unknown command" },
	{ "ban", "needs add, del or list" },
	{ "ban frob 192.0.2.1", "unknown 'ban' subcommand" },
	{ "ban add", "needs a CIDR" },
	{ "ban add 192.0.2.256", "invalid address" },
	{ "ban add 192.0.2.1/33", "invalid address" },
	{ "ban add 192.0.2.1/24", "host bits set (did you mean 192.0.2.0/24?)" },
	{ "ban add 2001:db8::/129", "invalid address" },
	{ "ban add example.com", "invalid address" },
	{ "ban add 192.0.2.1 --ttl -5", "invalid TTL" },
	{ "ban add 192.0.2.1 --ttl 0", "invalid TTL" },
	{ "ban add 192.0.2.1 --ttl abc", "invalid TTL" },
	{ "ban add 192.0.2.1 --ttl 10x", "invalid TTL" },
	{ "ban add 192.0.2.1 --ttl 1.5", "invalid TTL" },
	{ "ban add 192.0.2.1 --ttl 99999999999999999999", "out of range" },
	{ "ban add 192.0.2.1 --ttl 3651d", "out of range" },
	{ "ban add 192.0.2.1 --ttl", "needs a value" },
	{ "ban add 192.0.2.1 --bogus 1", "unexpected argument" },
	{ "ban del 192.0.2.1 --ttl 5", "unexpected argument" },
	{ "ban list 192.0.2.1", "unexpected argument" },
	{ "allow add 192.0.2.1 --ttl 5", "unexpected argument" },
	{ "status now", "unexpected argument" },
	{ "flows --limit 0", "invalid limit" },
	{ "flows --limit 100001", "invalid limit" },
	{ "flows --limit -1", "invalid limit" },
	{ "sig", "'sig' needs 'list'" },
	{ "ban add \"192.0.2.1", "unterminated quote" },
	{ "ban add 192.0.2.1 --reason \"a\\n\"", "bad escape" },
	{ "ban add 192.0.2.1 --reason \"a\"b", "text after closing quote" },
	{ "ban add 19\"2.0.2.1", "stray quote" },
	{ "a b c d e f g h i j k l m n o p q", "too many words" },
	{ "status\r", "control or NUL byte" },
	{ "ban add 192.0.2.1\x1b[2J", "control or NUL byte" },
	{ "ban add 192.0.2.1 --reason \"tab\there\"", "control or NUL byte" },
};

static void test_good(void)
{
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good_case *g = &good[i];
		struct hyp_ctl_req r;
		char err[256] = "";
		int rc = parse(g->line, &r, err, sizeof(err));
		TAP_EQ(rc, 0, "good request parses: '%s' %s", g->line, err);
		if (rc)
			continue;
		TAP_CHECK(r.cmd == g->cmd && r.json == g->json && r.ttl_s == g->ttl && !strcmp(r.reason, g->reason) &&
			  r.limit == g->limit, "fields of '%s'", g->line);
		if (g->cidr) {
			char buf[64];
			cidr_format(&r.cidr, buf, sizeof(buf));
			TAP_CHECK(!strcmp(buf, g->cidr), "cidr of '%s' is %s (got %s)", g->line, g->cidr, buf);
		}
	}
}

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hyp_ctl_req r;
		char err[256] = "";
		int rc = parse(bad[i].line, &r, err, sizeof(err));
		char shown[128];
		snprintf(shown, sizeof(shown), "%s", bad[i].line);
		for (char *p = shown; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = '?';       /* keep the TAP line one line */
		TAP_CHECK(rc == -EINVAL && strstr(err, bad[i].msg), "bad request refused: '%s' -> '%s'", shown, err);
	}
}

static void test_binary_and_size(void)
{
	struct hyp_ctl_req r;
	char err[256], line[HYP_CTL_REQ_MAX + 16];

	/* An embedded NUL must not truncate the request into something valid ("status"). */
	static const char nul[] = "status\0ban del 192.0.2.1";
	TAP_EQ(parse("reload\n", &r, err, sizeof(err)), 0, "trailing newline accepted");
	TAP_EQ(r.cmd, HYP_CTL_RELOAD, "trailing newline: reload");
	TAP_EQ(ctl_req_parse_line(nul, sizeof(nul) - 1, &r, err, sizeof(err)), -EINVAL, "NUL byte refused");
	TAP_CHECK(strstr(err, "NUL") != NULL, "NUL error says so: %s", err);

	/* Exactly at the limit: one byte less than HYP_CTL_REQ_MAX plus the newline is accepted. */
	memset(line, ' ', sizeof(line));
	memcpy(line, "status", 6);
	line[HYP_CTL_REQ_MAX - 1] = '\n';
	TAP_EQ(ctl_req_parse_line(line, HYP_CTL_REQ_MAX, &r, err, sizeof(err)), 0, "request of max size accepted");
	line[HYP_CTL_REQ_MAX - 1] = ' ';
	line[HYP_CTL_REQ_MAX] = '\n';
	TAP_EQ(ctl_req_parse_line(line, HYP_CTL_REQ_MAX + 1, &r, err, sizeof(err)), -EINVAL,
	       "request one byte over the limit refused");
	TAP_CHECK(strstr(err, "too long") != NULL, "oversize error says so: %s", err);

	/* High bytes (UTF-8) in a reason are fine. */
	TAP_EQ(parse("ban add 192.0.2.1 --reason \"caf\xc3\xa9\"", &r, err, sizeof(err)), 0, "UTF-8 reason accepted");
	char longreason[300];
	snprintf(longreason, sizeof(longreason), "ban add 192.0.2.1 --reason %0200d", 7);
	TAP_EQ(parse(longreason, &r, err, sizeof(err)), -EINVAL, "reason over %d bytes refused", HYP_CTL_REASON_MAX - 1);
}

static void test_format_roundtrip(void)
{
	char *argv[] = { "ban", "add", "192.0.2.0/24", "--reason", "a \"quoted\" \\ text", "--ttl", "60", "--json" };
	int argc = 8;
	char line[HYP_CTL_REQ_MAX + 1], err[256];
	struct hyp_ctl_req a, b;

	int n = ctl_req_format(argc, argv, line, sizeof(line));
	TAP_CHECK(n > 0 && line[n - 1] == '\n', "request formatted (%d bytes)", n);
	TAP_EQ(ctl_req_parse_argv(argc, argv, &a, err, sizeof(err)), 0, "argv parses");
	TAP_EQ(ctl_req_parse_line(line, (size_t)n, &b, err, sizeof(err)), 0, "formatted line parses: %s", err);
	TAP_CHECK(!memcmp(&a, &b, sizeof(a)), "argv and wire parse agree");
	TAP_CHECK(!strcmp(b.reason, "a \"quoted\" \\ text") && b.ttl_s == 60 && b.json, "quoted reason survives");

	char *ctrl[] = { "ban", "add", "192.0.2.1", "--reason", "line\nbreak" };
	TAP_EQ(ctl_req_format(5, ctrl, line, sizeof(line)), -EINVAL, "control character refused by the formatter");
	char *empty[] = { "ban", "add", "192.0.2.1", "--reason", "" };
	n = ctl_req_format(5, empty, line, sizeof(line));
	TAP_CHECK(n > 0 && strstr(line, "\"\"") != NULL, "empty word is quoted");
	TAP_EQ(ctl_req_parse_line(line, (size_t)n, &b, err, sizeof(err)), 0, "empty quoted word parses");
	static char big[HYP_CTL_REQ_MAX];
	memset(big, 'x', sizeof(big) - 1);
	char *huge[] = { "ban", "add", big };
	TAP_EQ(ctl_req_format(3, huge, line, sizeof(line)), -E2BIG, "oversized request refused by the formatter");
}

static void test_ttl(void)
{
	__u64 v;

	TAP_CHECK(!ctl_ttl_parse("1", &v) && v == 1, "ttl 1");
	TAP_CHECK(!ctl_ttl_parse("90s", &v) && v == 90, "ttl 90s");
	TAP_CHECK(!ctl_ttl_parse("3650d", &v) && v == HYP_CTL_TTL_MAX, "ttl at the maximum");
	TAP_EQ(ctl_ttl_parse("3650d1", &v), -EINVAL, "unit in the middle refused");
	TAP_EQ(ctl_ttl_parse("315360001", &v), -ERANGE, "one second over the maximum");
	TAP_EQ(ctl_ttl_parse("18446744073709551617", &v), -ERANGE, "u64 overflow refused");
	TAP_EQ(ctl_ttl_parse("123456789012345678901", &v), -EINVAL, "more than 20 characters refused");
	TAP_EQ(ctl_ttl_parse("s", &v), -EINVAL, "unit without a number");
	TAP_EQ(ctl_ttl_parse(" 5", &v), -EINVAL, "leading space");
}

static void test_responses(void)
{
	struct evbuffer *b = evbuffer_new();
	char buf[1024];
	const char *t;

	ctl_put_line(b, "row %d\nsmuggled", 1);
	ctl_put_err(b, "bad\rthing");
	ctl_put_ok(b);
	size_t n = evbuffer_get_length(b);
	evbuffer_remove(b, buf, n);
	buf[n] = 0;
	TAP_CHECK(!strcmp(buf, "D row 1 smuggled\nERR bad thing\nOK\n"), "framing keeps one line per item");
	evbuffer_free(b);

	TAP_EQ(ctl_line_kind("D hello", &t), HYP_CTL_LINE_DATA, "data line");
	TAP_CHECK(!strcmp(t, "hello"), "data text");
	TAP_EQ(ctl_line_kind("OK", &t), HYP_CTL_LINE_OK, "ok line");
	TAP_EQ(ctl_line_kind("ERR no ban for 192.0.2.1", &t), HYP_CTL_LINE_ERR, "error line");
	TAP_CHECK(!strcmp(t, "no ban for 192.0.2.1"), "error text");
	TAP_EQ(ctl_line_kind("garbage", &t), HYP_CTL_LINE_BAD, "unknown line");

	ctl_json_str(buf, sizeof(buf), "a\"b\\c\x01");
	TAP_CHECK(!strcmp(buf, "\"a\\\"b\\\\c\\u0001\""), "json string escaping: %s", buf);
	ctl_json_str(buf, 6, "abcdefgh");
	TAP_CHECK(!strcmp(buf, "\"abc\""), "json string truncation stays valid: %s", buf);

	struct hyp_cidr c;
	struct hyp_ban ban = { .expires_ns = 61ull * 1000000000ull, .created_ns = 0, .hits = 3 };
	cidr_parse("192.0.2.0/24", &c, false);
	ctl_fmt_ban(buf, sizeof(buf), true, &c, &ban, 1000000000ull, "scan \"x\"");
	TAP_CHECK(!strcmp(buf, "{\"cidr\":\"192.0.2.0/24\",\"expires_in_s\":60,\"age_s\":1,\"hits\":3,"
			  "\"reason\":\"scan \\\"x\\\"\"}"), "ban row as JSON: %s", buf);
	ban.expires_ns = 0;
	ctl_fmt_ban(buf, sizeof(buf), false, &c, &ban, 1000000000ull, NULL);
	TAP_CHECK(strstr(buf, "192.0.2.0/24") && strstr(buf, "expires never") && strstr(buf, "reason -"),
		  "permanent ban row as text: %s", buf);

	struct hyp_flow_key k;
	struct hyp_flow f = { .state = HYP_CT_ESTABLISHED, .packets = { 2, 3 }, .bytes = { 100, 200 } };
	__u8 a1[16] = { 192, 0, 2, 2 }, a2[16] = { 192, 0, 2, 1 };
	int dir;
	flow_key_make(&k, HYP_AF_INET, 6, a1, htons(40000), a2, htons(22), &dir);
	f.orig = (__u8)dir;
	ctl_fmt_flow(buf, sizeof(buf), true, &k, &f, true, 0);
	TAP_CHECK(strstr(buf, "\"orig\":\"192.0.2.2:40000\"") && strstr(buf, "\"resp\":\"192.0.2.1:22\"") &&
		  strstr(buf, "\"state\":\"established\"") && strstr(buf, "\"packets\":5"), "flow row: %s", buf);

	struct hyp_event ev = { .kind = HYP_EV_BLOCK, .proto = 58, .family = HYP_AF_INET6, .verdict = HYP_V_DROP,
				.reason = HYP_R_DROP_BANNED, .sig = 0xffffffffu };
	inet_pton(AF_INET6, "2001:db8::7", ev.saddr);
	ctl_fmt_event(buf, sizeof(buf), true, &ev);
	TAP_CHECK(strstr(buf, "\"kind\":\"block\"") && strstr(buf, "\"src\":\"2001:db8::7\"") &&
		  strstr(buf, "\"reason\":\"drop_banned\"") && strstr(buf, "\"sig\":null"), "event as JSON: %s", buf);
	ctl_fmt_event(buf, sizeof(buf), false, &ev);
	TAP_CHECK(!strncmp(buf, "block", 5) && strstr(buf, "drop drop_banned"), "event as text: %s", buf);
	ev.proto = 6;
	ev.sport = htons(443);
	ctl_fmt_event(buf, sizeof(buf), true, &ev);
	TAP_CHECK(strstr(buf, "\"src\":\"[2001:db8::7]:443\"") != NULL, "IPv6 endpoint with port bracketed: %s", buf);
}

int main(void)
{
	test_good();
	test_bad();
	test_binary_and_size();
	test_format_roundtrip();
	test_ttl();
	test_responses();
	return tap_done();
}
