/* Control socket server: Unix stream socket, peer-credential check, one request per connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <bpf/bpf.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include "ctl.h"
#include "ctl_proto.h"
#include "daemon.h"
#include "log.h"
#include "policy.h"
#include "sigcompile.h"

#define CTL_VERSION "0.1.0"
#define CTL_ROW_MAX 1024                /* one formatted row */

struct ctl_conn {
	struct ctl_conn *prev, *next;
	struct hyp_ctl *ctl;
	struct bufferevent *bev;
	bool subscriber, json, closing;
	__u64 lost;                     /* events skipped since the last one this subscriber got */
	size_t lingered;                /* bytes discarded after the reply */
	unsigned uid;
};

struct hyp_ctl {
	struct hyp_daemon *d;
	struct evconnlistener *lis;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned allow_uid;
	struct ctl_conn *conns;
	unsigned nconns, nsubs;
};

static void ctl_conn_free(struct ctl_conn *cn)
{
	struct hyp_ctl *c = cn->ctl;

	if (cn->prev)
		cn->prev->next = cn->next;
	else
		c->conns = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	c->nconns--;
	if (cn->subscriber)
		c->nsubs--;
	bufferevent_free(cn->bev);
	free(cn);
}

static void ctl_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	/* EOF, error or timeout: either way the peer is done or stuck. */
	ctl_conn_free(arg);
}

/* After the reply: discard whatever the client still sends until it closes. Closing a Unix socket
 * with unread input makes the peer's next read fail with ECONNRESET, which would eat the reply it has
 * not read yet (an oversized request is refused before it has all arrived). Bounded by
 * HYP_CTL_LINGER_MAX bytes and the I/O timeout. */
static void ctl_linger_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *cn = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);

	evbuffer_drain(in, n);
	cn->lingered += n;
	if (cn->lingered > HYP_CTL_LINGER_MAX)
		ctl_conn_free(cn);
}

/* Once the response is flushed the connection closes: one request per connection keeps the server
 * free of per-connection parsing state. */
static void ctl_drained_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *cn = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	shutdown(bufferevent_getfd(bev), SHUT_WR);      /* the client sees EOF after our status line */
	bufferevent_setcb(bev, ctl_linger_cb, NULL, ctl_event_cb, cn);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	bufferevent_enable(bev, EV_READ);
}

static void ctl_finish(struct ctl_conn *cn)
{
	cn->closing = true;
	bufferevent_disable(cn->bev, EV_READ);
	bufferevent_setcb(cn->bev, NULL, ctl_drained_cb, ctl_event_cb, cn);
	if (evbuffer_get_length(bufferevent_get_output(cn->bev)) == 0)
		ctl_drained_cb(cn->bev, cn);
}

/* ---- command handlers: each writes data lines then exactly one status line ---- */

struct ctl_rows {
	struct hyp_ctl *c;
	struct evbuffer *out;
	bool json;
	unsigned n, limit;
	__u64 now;
};

static void ctl_row(struct ctl_rows *r, const char *row)
{
	if (r->json)
		ctl_put_line(r->out, "%s%s", r->n ? "," : "", row);
	else
		ctl_put_line(r->out, "%s", row);
	r->n++;
}

static void ctl_list_open(struct ctl_rows *r, const char *name)
{
	if (r->json)
		ctl_put_line(r->out, "{\"%s\":[", name);
}

static void ctl_list_close(struct ctl_rows *r)
{
	if (r->json)
		ctl_put_line(r->out, "]}");
}

static int ctl_ban_row_cb(const struct hyp_cidr *cidr, const struct hyp_ban *b, void *arg)
{
	struct ctl_rows *r = arg;
	char row[CTL_ROW_MAX];

	/* The datapath ignores an expired ban until the expiry timer deletes it: do not list it either. */
	if (b->expires_ns && b->expires_ns <= r->now)
		return 0;
	ctl_fmt_ban(row, sizeof(row), r->json, cidr, b, r->now, daemon_ban_reason(r->c->d, cidr));
	ctl_row(r, row);
	return 0;
}

static int ctl_allow_row_cb(const struct hyp_cidr *cidr, const struct hyp_allow *a, void *arg)
{
	struct ctl_rows *r = arg;
	char row[CTL_ROW_MAX];

	ctl_fmt_allow(row, sizeof(row), r->json, cidr, a, r->now);
	ctl_row(r, row);
	return 0;
}

static int ctl_flow_row_cb(const struct hyp_flow_key *k, const struct hyp_flow *f, bool est, void *arg)
{
	struct ctl_rows *r = arg;
	char row[CTL_ROW_MAX];

	if (r->n >= r->limit)
		return 1;
	ctl_fmt_flow(row, sizeof(row), r->json, k, f, est, r->now);
	ctl_row(r, row);
	return 0;
}

static int ctl_count_ban_cb(const struct hyp_cidr *c, const struct hyp_ban *b, void *arg)
{
	struct ctl_rows *r = arg;
	(void)c;
	if (!b->expires_ns || b->expires_ns > r->now)
		r->n++;
	return 0;
}

static int ctl_count_allow_cb(const struct hyp_cidr *c, const struct hyp_allow *a, void *arg)
{
	(void)c;
	(void)a;
	((struct ctl_rows *)arg)->n++;
	return 0;
}

static const char *ctl_mode_name(enum hyp_xdp_mode m)
{
	return m == HYP_XDP_NATIVE ? "native" : m == HYP_XDP_GENERIC ? "generic" : "auto";
}

static void ctl_status(struct hyp_ctl *c, struct evbuffer *out, bool json)
{
	struct hyp_daemon *d = c->d;
	struct ctl_rows bans = { .c = c, .now = dp_now_ns() }, allows = bans;
	struct hyp_config *cfg = calloc(1, sizeof(*cfg));
	__u32 gen = 0;
	char pj[1024];

	ban_foreach(&d->dp, ctl_count_ban_cb, &bans);
	allow_foreach(&d->dp, ctl_count_allow_cb, &allows);
	bool have_cfg = cfg && !dp_config_read(&d->dp, cfg, &gen);
	const char *mode = have_cfg ? (cfg->mode == HYP_MODE_MONITOR ? "monitor" : "enforce") : "unknown";
	/* not dp_now_ns(): a test clock offset must not skew uptime */
	unsigned long long up = (mono_now_ns() - d->start_ns) / 1000000000ull;
	const char *ppath = d->policy ? policy_path(d->policy) : d->opt.policy_path;
	unsigned nsigs = d->policy ? policy_nsigs(d->policy) : 0;
	free(cfg);

	if (json) {
		ctl_json_str(pj, sizeof(pj), ppath ? ppath : "");
		ctl_put_line(out, "{\"version\":\"%s\",\"abi\":%d,\"pid\":%d,\"uptime_s\":%llu,\"policy\":%s,"
			     "\"signatures\":%u,\"mode\":\"%s\",\"generation\":%u,\"pin_dir\":\"%s\",\"adopted\":%s,"
			     "\"bans\":%u,\"allow\":%u,\"reloads\":%llu,\"reload_failures\":%llu,\"events_read\":%llu,"
			     "\"subscribers\":%u,\"interfaces\":[", CTL_VERSION, HYP_ABI_VERSION, (int)getpid(), up, pj,
			     nsigs, mode, gen, d->dp.pin_dir, d->dp.adopted ? "true" : "false", bans.n, allows.n,
			     (unsigned long long)d->st.reloads, (unsigned long long)d->st.reload_failures,
			     (unsigned long long)d->st.events_read, c->nsubs);
		for (int i = 0; i < d->dp.nifaces; i++)
			ctl_put_line(out, "%s{\"name\":\"%s\",\"ifindex\":%d,\"xdp_mode\":\"%s\"}", i ? "," : "",
				     d->dp.ifaces[i].name, d->dp.ifaces[i].ifindex, ctl_mode_name(d->dp.ifaces[i].mode));
		ctl_put_line(out, "]}");
	} else {
		ctl_put_line(out, "hyperiond %s (abi %d), pid %d, up %llus", CTL_VERSION, HYP_ABI_VERSION,
			     (int)getpid(), up);
		ctl_put_line(out, "policy:      %s (%u signatures, %s, generation %u)", ppath ? ppath : "-", nsigs,
			     mode, gen);
		for (int i = 0; i < d->dp.nifaces; i++)
			ctl_put_line(out, "interface:   %s (ifindex %d, xdp %s)", d->dp.ifaces[i].name,
				     d->dp.ifaces[i].ifindex, ctl_mode_name(d->dp.ifaces[i].mode));
		ctl_put_line(out, "pins:        %s%s", d->dp.pin_dir, d->dp.adopted ? " (adopted)" : "");
		ctl_put_line(out, "bans:        %u", bans.n);
		ctl_put_line(out, "allowlist:   %u", allows.n);
		ctl_put_line(out, "reloads:     %llu (%llu failed)", (unsigned long long)d->st.reloads,
			     (unsigned long long)d->st.reload_failures);
		ctl_put_line(out, "events read: %llu, subscribers %u", (unsigned long long)d->st.events_read, c->nsubs);
	}
	ctl_put_ok(out);
}

static void ctl_stats(struct hyp_ctl *c, struct evbuffer *out, bool json)
{
	struct hyp_totals t;
	const struct hyp_rt_stats *st = &c->d->st;
	int rc = stats_read(&c->d->dp, &t);

	if (rc) {
		ctl_put_err(out, "cannot read stats: %s", strerror(-rc));
		return;
	}
	if (json)
		ctl_put_line(out, "{\"verdicts\":[");
	int n = 0;
	for (unsigned i = 0; i < HYP_STATS_ENTRIES; i++) {
		unsigned r = i >= HYP_STATS_MONITOR ? i - HYP_STATS_MONITOR : i;
		const char *verdict = stats_verdict_name(i);
		/* Text output lists what happened; JSON lists every series so scripts see stable keys. */
		if (!json && !t.reason[i].packets)
			continue;
		if (json)
			ctl_put_line(out, "%s{\"verdict\":\"%s\",\"reason\":\"%s\",\"packets\":%llu,\"bytes\":%llu}",
				     n++ ? "," : "", verdict, reason_name(r), (unsigned long long)t.reason[i].packets,
				     (unsigned long long)t.reason[i].bytes);
		else
			ctl_put_line(out, "%-8s %-20s packets %-12llu bytes %llu", verdict, reason_name(r),
				     (unsigned long long)t.reason[i].packets, (unsigned long long)t.reason[i].bytes);
	}
	if (json)
		ctl_put_line(out, "],\"counters\":{");
	n = 0;
	for (unsigned i = 0; i < HYP_C_MAX; i++) {
		const char *name = counter_name(i);
		if (!name)
			continue;
		if (json)
			ctl_put_line(out, "%s\"%s\":%llu", n++ ? "," : "", name, (unsigned long long)t.counter[i]);
		else
			ctl_put_line(out, "%-29s %llu", name, (unsigned long long)t.counter[i]);
	}
	struct { const char *name; __u64 v; } rt[] = {
		{ "events_read", st->events_read }, { "hook_calls", st->hook_calls },
		{ "hook_errors", st->hook_errors }, { "hook_timeouts", st->hook_timeouts },
		{ "hook_oom", st->hook_oom }, { "reloads", st->reloads }, { "reload_failures", st->reload_failures },
		{ "bans_added", st->bans_added }, { "bans_expired", st->bans_expired },
	};
	if (json)
		ctl_put_line(out, "},\"runtime\":{");
	for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
		if (json)
			ctl_put_line(out, "%s\"%s\":%llu", i ? "," : "", rt[i].name, (unsigned long long)rt[i].v);
		else
			ctl_put_line(out, "%-29s %llu", rt[i].name, (unsigned long long)rt[i].v);
	}
	if (json)
		ctl_put_line(out, "}}");
	ctl_put_ok(out);
}

static const char *ctl_action_name(unsigned a)
{
	return a == HYP_ACT_BAN ? "ban" : a == HYP_ACT_DROP ? "drop" : a == HYP_ACT_ALERT ? "alert" : "unknown";
}


/* Printable pattern: bytes outside printable ASCII (and quote/backslash) as \xNN. */
static void ctl_pattern_text(char *buf, size_t len, const __u8 *pat, __u32 plen)
{
	size_t o = 0;

	for (__u32 i = 0; i < plen && i < HYP_PATTERN_MAX && o + 5 < len; i++) {
		__u8 c = pat[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
	}
	buf[o] = 0;
}

/* Signatures as the datapath holds them for the active generation. */
static void ctl_sig_list(struct hyp_ctl *c, struct evbuffer *out, bool json)
{
	struct hyp_daemon *d = c->d;
	struct hyp_config *cfg = calloc(1, sizeof(*cfg));
	struct ctl_rows r = { .c = c, .out = out, .json = json };
	__u32 gen = 0;
	int rc = cfg ? dp_config_read(&d->dp, cfg, &gen) : -ENOMEM;

	if (rc) {
		free(cfg);
		ctl_put_err(out, "cannot read the active configuration: %s", strerror(-rc));
		return;
	}
	unsigned ndefs = 0;
	const struct hyp_sigdef *defs = d->policy ? policy_sigdefs(d->policy, &ndefs) : NULL;
	ctl_list_open(&r, "signatures");
	for (__u32 i = 0; i < cfg->nsigs && i < HYP_SIG_MAX; i++) {
		struct hyp_sig s;
		__u32 key = gen * HYP_SIG_MAX + i;
		char ports[HYP_SIG_PORTS_MAX * 7 + 4] = "", row[CTL_ROW_MAX], pt[8];
		if (bpf_map_lookup_elem(d->dp.fd_sigs, &key, &s) || !s.active)
			continue;
		size_t o = 0;
		for (unsigned p = 0; p < s.nports && p < HYP_SIG_PORTS_MAX; p++)
			o += (size_t)snprintf(ports + o, sizeof(ports) - o, "%s%u", p ? "," : "", s.ports[p]);
		const char *proto = s.proto ? ctl_proto_name(s.proto, pt, sizeof(pt)) : "any";
		char name[HYP_SIG_NAME_MAX + 8] = "", pat[HYP_PATTERN_MAX * 4 + 1] = "";
		if (defs && s.id < ndefs) {
			snprintf(name, sizeof(name), "%.*s", HYP_SIG_NAME_MAX - 1, defs[s.id].name);
			ctl_pattern_text(pat, sizeof(pat), defs[s.id].pattern, defs[s.id].pattern_len);
		}
		if (json) {
			char nj[HYP_SIG_NAME_MAX * 6 + 3], pj[sizeof(pat) * 2 + 3];
			ctl_json_str(nj, sizeof(nj), name);
			ctl_json_str(pj, sizeof(pj), pat);
			snprintf(row, sizeof(row), "{\"id\":%u,\"name\":%s,\"action\":\"%s\",\"proto\":\"%s\","
				 "\"ports\":[%s],\"nocase\":%s,\"pattern\":%s}", s.id, nj, ctl_action_name(s.action), proto,
				 ports, s.flags & HYP_SIGF_NOCASE ? "true" : "false", pj);
		} else {
			snprintf(row, sizeof(row), "%-5u %-24s %-6s %-7s ports %-16s%s%s%s%s", s.id, name[0] ? name : "-",
				 ctl_action_name(s.action), proto, s.nports ? ports : "any",
				 s.flags & HYP_SIGF_NOCASE ? " nocase" : "", pat[0] ? " \"" : "", pat, pat[0] ? "\"" : "");
		}
		ctl_row(&r, row);
	}
	ctl_list_close(&r);
	free(cfg);
	ctl_put_ok(out);
}

static void ctl_subscribe(struct ctl_conn *cn, bool json)
{
	struct timeval wt = { HYP_CTL_SUB_TIMEOUT_S, 0 };

	cn->subscriber = true;
	cn->json = json;
	cn->ctl->nsubs++;
	/* Keep reading only to notice EOF; no read timeout: a subscriber is silent by design. */
	bufferevent_set_timeouts(cn->bev, NULL, &wt);
	hyp_log(LOG_INFO, "ctl: uid %u subscribed to events (%u subscribers)", cn->uid, cn->ctl->nsubs);
}

static void ctl_handle(struct ctl_conn *cn, const struct hyp_ctl_req *req, struct evbuffer *out)
{
	struct hyp_ctl *c = cn->ctl;
	struct hyp_daemon *d = c->d;
	char err[512] = "", cidr[64];
	struct ctl_rows r = { .c = c, .out = out, .json = req->json, .now = dp_now_ns() };
	int rc;

	cidr_format(&req->cidr, cidr, sizeof(cidr));
	switch (req->cmd) {
	case HYP_CTL_STATUS:
		ctl_status(c, out, req->json);
		return;
	case HYP_CTL_STATS:
		ctl_stats(c, out, req->json);
		return;
	case HYP_CTL_BAN_ADD:
		rc = daemon_ban_add(d, &req->cidr, req->ttl_s, req->reason, err, sizeof(err));
		break;
	case HYP_CTL_BAN_DEL:
		rc = daemon_ban_del(d, &req->cidr, err, sizeof(err));
		break;
	case HYP_CTL_ALLOW_ADD:
		rc = daemon_allow_add(d, &req->cidr, err, sizeof(err));
		break;
	case HYP_CTL_ALLOW_DEL:
		rc = daemon_allow_del(d, &req->cidr, err, sizeof(err));
		break;
	case HYP_CTL_BAN_LIST:
		ctl_list_open(&r, "bans");
		rc = ban_foreach(&d->dp, ctl_ban_row_cb, &r);
		ctl_list_close(&r);
		if (rc < 0)
			snprintf(err, sizeof(err), "cannot list bans: %s", strerror(-rc));
		break;
	case HYP_CTL_ALLOW_LIST:
		ctl_list_open(&r, "allow");
		rc = allow_foreach(&d->dp, ctl_allow_row_cb, &r);
		ctl_list_close(&r);
		if (rc < 0)
			snprintf(err, sizeof(err), "cannot list the allowlist: %s", strerror(-rc));
		break;
	case HYP_CTL_FLOWS:
		r.limit = req->limit ? req->limit : HYP_CTL_FLOWS_DEFAULT;
		ctl_list_open(&r, "flows");
		rc = flow_foreach(&d->dp, ctl_flow_row_cb, &r);
		ctl_list_close(&r);
		if (rc < 0)
			snprintf(err, sizeof(err), "cannot list flows: %s", strerror(-rc));
		else
			rc = 0;
		break;
	case HYP_CTL_SIG_LIST:
		ctl_sig_list(c, out, req->json);
		return;
	case HYP_CTL_RELOAD:
		rc = daemon_reload(d, err, sizeof(err));
		if (!rc && d->policy)
			ctl_put_line(out, req->json ? "{\"reloaded\":true,\"signatures\":%u}" : "reloaded (%u signatures)",
				     policy_nsigs(d->policy));
		break;
	case HYP_CTL_EVENTS:
		ctl_subscribe(cn, req->json);
		return;     /* no status line: the stream follows */
	default:
		rc = -EINVAL;
		snprintf(err, sizeof(err), "unsupported command");
		break;
	}
	if (rc < 0) {
		ctl_put_err(out, "%s", err[0] ? err : strerror(-rc));
		return;
	}
	if (req->cmd == HYP_CTL_BAN_ADD || req->cmd == HYP_CTL_BAN_DEL || req->cmd == HYP_CTL_ALLOW_ADD ||
	    req->cmd == HYP_CTL_ALLOW_DEL)
	{
		hyp_log(LOG_INFO, "ctl: uid %u: %s %s %s", cn->uid, req->cmd <= HYP_CTL_BAN_LIST ? "ban" : "allow",
			req->cmd == HYP_CTL_BAN_ADD || req->cmd == HYP_CTL_ALLOW_ADD ? "add" : "del", cidr);
		if (req->json)      /* scripts parsing --json output get a document for every command */
			ctl_put_line(out, "{\"ok\":true,\"cidr\":\"%s\"}", cidr);
	}
	ctl_put_ok(out);
}

static void ctl_read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *cn = arg;
	struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
	struct hyp_ctl_req req;
	char err[256];
	size_t n;

	if (cn->subscriber || cn->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));   /* nothing more is expected */
		return;
	}
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
	if (!line) {
		if (evbuffer_get_length(in) >= HYP_CTL_REQ_MAX) {
			ctl_put_err(out, "request too long (max %d bytes)", HYP_CTL_REQ_MAX - 1);
			hyp_log(LOG_WARNING, "ctl: uid %u: oversized request refused", cn->uid);
			ctl_finish(cn);
		}
		return;     /* wait for the rest of the line */
	}
	if (ctl_req_parse_line(line, n, &req, err, sizeof(err))) {
		ctl_put_err(out, "%s", err);
		hyp_log(LOG_WARNING, "ctl: uid %u: bad request: %s", cn->uid, err);
	} else {
		ctl_handle(cn, &req, out);
	}
	free(line);
	if (!cn->subscriber)
		ctl_finish(cn);
}

/* Refuse before any bufferevent exists: the refusal is one line written straight to the socket. */
static void ctl_refuse(int fd, const char *msg)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "ERR %s\n", msg);

	char junk[HYP_CTL_REQ_MAX];

	if (send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		hyp_log(LOG_DEBUG, "ctl: refusal not delivered: %s", strerror(errno));
	/* Discard a request that already arrived: closing with unread input would turn the peer's read of
	 * our line into ECONNRESET. */
	while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
	close(fd);
}

static void ctl_accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
			  void *arg)
{
	struct hyp_ctl *c = arg;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct timeval tv = { HYP_CTL_IO_TIMEOUT_S, 0 };
	(void)lis;
	(void)sa;
	(void)salen;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
		hyp_log(LOG_WARNING, "ctl: SO_PEERCRED: %s; connection refused", strerror(errno));
		ctl_refuse(fd, "permission denied: cannot identify peer");
		return;
	}
	if (cred.uid != 0 && cred.uid != c->allow_uid) {
		char msg[128];
		snprintf(msg, sizeof(msg), "permission denied: uid %u may not use the control socket", cred.uid);
		hyp_log(LOG_WARNING, "ctl: refused peer pid %d uid %u", (int)cred.pid, cred.uid);
		ctl_refuse(fd, msg);
		return;
	}
	if (c->nconns >= HYP_CTL_CONN_MAX) {
		hyp_log(LOG_WARNING, "ctl: %u connections open, refusing pid %d", c->nconns, (int)cred.pid);
		ctl_refuse(fd, "too many control connections, try again");
		return;
	}
	struct ctl_conn *cn = calloc(1, sizeof(*cn));
	struct bufferevent *bev = bufferevent_socket_new(c->d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!cn || !bev) {
		hyp_log(LOG_ERR, "ctl: out of memory accepting a connection");
		free(cn);
		if (bev)
			bufferevent_free(bev);
		else
			close(fd);
		return;
	}
	cn->ctl = c;
	cn->bev = bev;
	cn->uid = cred.uid;
	cn->next = c->conns;
	if (c->conns)
		c->conns->prev = cn;
	c->conns = cn;
	c->nconns++;
	bufferevent_setcb(bev, ctl_read_cb, NULL, ctl_event_cb, cn);
	/* Stop reading at the request limit: a client cannot make us buffer more than that. */
	bufferevent_setwatermark(bev, EV_READ, 0, HYP_CTL_REQ_MAX);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void ctl_listen_error_cb(struct evconnlistener *lis, void *arg)
{
	(void)lis;
	(void)arg;
	/* EMFILE and friends: libevent keeps the listener; log so the operator sees why clients hang. */
	hyp_log(LOG_ERR, "ctl: accept: %s", strerror(errno));
}

/* Parent directory of the socket, like `mkdir -p`. */
static int ctl_mkdir_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];

	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	return daemon_mkdir_p(dir, 0755);
}

/* A socket file left by a killed daemon is replaced; one that still answers belongs to a live one. */
static int ctl_clear_stale(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (!rc)
		return -EADDRINUSE;
	return unlink(path) ? -errno : 0;
}

int ctl_probe(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path))
		return 0;   /* ctl_open reports it */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	return rc ? 0 : -EADDRINUSE;
}

int ctl_open(struct hyp_ctl **out, struct hyp_daemon *d, const char *path, unsigned allow_uid)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct hyp_ctl *c;
	int fd = -1, rc;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		hyp_log(LOG_ERR, "ctl: socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	rc = ctl_mkdir_parent(path);
	if (rc) {
		hyp_log(LOG_ERR, "ctl: cannot create the directory of %s: %s", path, strerror(-rc));
		return rc;
	}
	rc = ctl_clear_stale(path, &sun);
	if (rc) {
		hyp_log(LOG_ERR, "ctl: %s: %s", path, rc == -EADDRINUSE ? "another hyperiond is listening there" :
			rc == -EEXIST ? "exists and is not a socket" : strerror(-rc));
		return rc;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->d = d;
	c->allow_uid = allow_uid;
	snprintf(c->path, sizeof(c->path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	/* The umask makes bind() create the file 0600: no window where another user could connect. */
	mode_t old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun)) ? -errno : 0;
	umask(old);
	if (rc)
		goto fail;
	if (allow_uid != (unsigned)-1 && chown(path, allow_uid, (gid_t)-1)) {
		rc = -errno;
		goto fail;
	}
	c->lis = evconnlistener_new(d->base, ctl_accept_cb, c, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
				    HYP_CTL_BACKLOG, fd);
	if (!c->lis) {
		rc = -errno ? -errno : -ENOMEM;
		unlink(path);
		goto fail;
	}
	evconnlistener_set_error_cb(c->lis, ctl_listen_error_cb);
	*out = c;
	return 0;
fail:
	hyp_log(LOG_ERR, "ctl: cannot listen on %s: %s", path, strerror(-rc));
	if (fd >= 0)
		close(fd);
	free(c);
	return rc;
}

void ctl_publish(struct hyp_ctl *c, const struct hyp_event *ev, size_t n)
{
	char text[CTL_ROW_MAX], json[CTL_ROW_MAX];

	if (!c || !c->nsubs)
		return;
	for (size_t i = 0; i < n; i++) {
		bool have_text = false, have_json = false;
		for (struct ctl_conn *cn = c->conns; cn; cn = cn->next) {
			if (!cn->subscriber)
				continue;
			struct evbuffer *out = bufferevent_get_output(cn->bev);
			/* Lossy by design: a subscriber that does not keep up loses events, the daemon never waits. */
			if (evbuffer_get_length(out) >= HYP_CTL_SUB_BUF_MAX) {
				cn->lost++;
				continue;
			}
			if (cn->lost) {
				if (cn->json)
					ctl_put_line(out, "{\"lost\":%llu}", (unsigned long long)cn->lost);
				else
					ctl_put_line(out, "# %llu events lost (subscriber too slow)",
						     (unsigned long long)cn->lost);
				cn->lost = 0;
			}
			if (cn->json && !have_json) {
				ctl_fmt_event(json, sizeof(json), true, &ev[i]);
				have_json = true;
			} else if (!cn->json && !have_text) {
				ctl_fmt_event(text, sizeof(text), false, &ev[i]);
				have_text = true;
			}
			ctl_put_line(out, "%s", cn->json ? json : text);
		}
	}
}

unsigned ctl_subscribers(const struct hyp_ctl *c)
{
	return c ? c->nsubs : 0;
}

void ctl_close(struct hyp_ctl *c)
{
	if (!c)
		return;
	while (c->conns)
		ctl_conn_free(c->conns);
	if (c->lis)
		evconnlistener_free(c->lis);
	unlink(c->path);
	free(c);
}
