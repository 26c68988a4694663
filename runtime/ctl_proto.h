/* Control-socket wire format shared by hyperiond and hyperionctl: request parsing, response framing. */
#ifndef HYP_CTL_PROTO_H
#define HYP_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include "hyperion_abi.h"
#include "maps.h"

/*
 * Wire format (Unix stream socket, one request per connection):
 *   request : one line of at most HYP_CTL_REQ_MAX bytes ending in '\n': the command words as typed
 *             after `hyperionctl`, separated by spaces; a word containing spaces, quotes or backslashes
 *             is double-quoted with \" and \\ escapes. Control characters (and NUL) are refused.
 *   response: zero or more data lines "D <text>", then exactly one status line, "OK" or
 *             "ERR <message>". `events` sends data lines until either side closes.
 * The same parser validates hyperionctl's argv, so a usage error is caught before connecting.
 */
#define HYP_CTL_REQ_MAX 4096            /* request line bytes, newline included */
#define HYP_CTL_ARGS_MAX 16             /* words per request; the longest command has 7 */
#define HYP_CTL_TTL_MAX (10ull * 365 * 86400)   /* ban TTL ceiling: ten years, in seconds */
#define HYP_CTL_FLOWS_DEFAULT 100       /* `flows` rows without --limit */
#define HYP_CTL_FLOWS_MAX 100000        /* --limit ceiling: bounds the daemon's work per request */
#define HYP_CTL_REASON_MAX 128          /* ban reason text, bytes incl. NUL (= HYP_REASON_MAX) */

enum hyp_ctl_cmd {
	HYP_CTL_STATUS = 1,
	HYP_CTL_STATS,
	HYP_CTL_BAN_ADD,
	HYP_CTL_BAN_DEL,
	HYP_CTL_BAN_LIST,
	HYP_CTL_ALLOW_ADD,
	HYP_CTL_ALLOW_DEL,
	HYP_CTL_ALLOW_LIST,
	HYP_CTL_FLOWS,
	HYP_CTL_SIG_LIST,
	HYP_CTL_RELOAD,
	HYP_CTL_EVENTS,
};

struct hyp_ctl_req {
	enum hyp_ctl_cmd cmd;
	bool json;                      /* --json anywhere in the request */
	struct hyp_cidr cidr;           /* ban/allow add/del */
	__u64 ttl_s;                    /* ban add: 0 = permanent */
	char reason[HYP_CTL_REASON_MAX];
	unsigned limit;                 /* flows */
};

/* Parse command words (argv after the program's own options). 0 or -EINVAL with a message in err. */
int ctl_req_parse_argv(int argc, char *const argv[], struct hyp_ctl_req *req, char *err, size_t errlen);
/* Parse one request line as received (the trailing '\n' may be present or not). Refuses oversized
 * lines, NUL/control characters and bad quoting, then parses the words as above. */
int ctl_req_parse_line(const char *line, size_t len, struct hyp_ctl_req *req, char *err, size_t errlen);
/* Build the request line (with '\n') for argv; -E2BIG if longer than HYP_CTL_REQ_MAX, -EINVAL if a
 * word holds a control character. */
int ctl_req_format(int argc, char *const argv[], char *buf, size_t len);
/* Parse a TTL: plain seconds or with one unit suffix s/m/h/d ("90", "15m", "2h", "7d"), 1..TTL_MAX. */
int ctl_ttl_parse(const char *s, __u64 *out);

/* ---- responses: the daemon builds them into an evbuffer ---- */
struct evbuffer;

void ctl_put_ok(struct evbuffer *out);
void ctl_put_err(struct evbuffer *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One data line; '\n' and control characters in the text are replaced so framing cannot break. */
void ctl_put_line(struct evbuffer *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* JSON string literal (with quotes) of s into buf; always NUL-terminated, truncated if needed. */
void ctl_json_str(char *buf, size_t len, const char *s);

/* Rows shared by the text and JSON forms. now_ns is dp_now_ns(); wall_now is time(NULL). */
void ctl_fmt_ban(char *buf, size_t len, bool json, const struct hyp_cidr *c, const struct hyp_ban *b,
		 __u64 now_ns, const char *reason);
void ctl_fmt_allow(char *buf, size_t len, bool json, const struct hyp_cidr *c, const struct hyp_allow *a,
		   __u64 now_ns);
void ctl_fmt_flow(char *buf, size_t len, bool json, const struct hyp_flow_key *k, const struct hyp_flow *f,
		  bool established, __u64 now_ns);
void ctl_fmt_event(char *buf, size_t len, bool json, const struct hyp_event *ev);
/* "tcp", "udp", "icmp", "icmpv6", else the number (written into tmp). */
const char *ctl_proto_name(__u8 p, char *tmp, size_t len);

/* ---- client side: classify one response line ---- */
enum hyp_ctl_line { HYP_CTL_LINE_DATA, HYP_CTL_LINE_OK, HYP_CTL_LINE_ERR, HYP_CTL_LINE_BAD };
/* *text points at the payload (data text or error message). */
enum hyp_ctl_line ctl_line_kind(const char *line, const char **text);

#endif
