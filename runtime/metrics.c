/* Prometheus text exposition over evhttp (GET /metrics) on the daemon's event base. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include "daemon.h"
#include "log.h"
#include "metrics.h"

struct hyp_metrics {
	struct hyp_daemon *d;
	struct evhttp *http;
	/* Derived counters must never go backwards: per-CPU counters and the live count are read at
	 * slightly different moments, so a fresh computation may dip below the last one reported. */
	__u64 evictions_est, evictions_new;
};

int metrics_addr_parse(const char *s, char *host, unsigned hostlen, unsigned short *port)
{
	const char *colon, *h = s;
	size_t hl;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;     /* bare IPv6 needs brackets */
		hl = (size_t)(colon - s);
	}
	if (hl >= hostlen)
		return -EINVAL;
	const char *p = colon + 1;
	unsigned long v = 0;
	if (!*p || strlen(p) > 5)
		return -EINVAL;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	if (hl == 0)
		snprintf(host, hostlen, "0.0.0.0");
	else {
		memcpy(host, h, hl);
		host[hl] = 0;
	}
	*port = (unsigned short)v;
	return 0;
}

static void help_type(struct evbuffer *o, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int ban_count_cb(const struct hyp_cidr *c, const struct hyp_ban *b, void *arg)
{
	__u64 *n = arg;
	(void)c;
	if (!b->expires_ns || b->expires_ns > dp_now_ns())
		(*n)++;
	return 0;
}

static int allow_count_cb(const struct hyp_cidr *c, const struct hyp_allow *a, void *arg)
{
	(void)c;
	(void)a;
	(*(__u64 *)arg)++;
	return 0;
}

static __u64 evictions(__u64 ins, __u64 del, __u64 live, __u64 *last)
{
	__u64 v = flow_evicted(ins, del, live);

	if (v > *last)
		*last = v;
	return *last;
}

int metrics_render(struct hyp_daemon *d, struct hyp_metrics *m, struct evbuffer *o)
{
	struct hyp_totals t;
	struct flow_census fc;
	const struct hyp_rt_stats *st = &d->st;
	__u64 bans = 0, allows = 0;
	int rc = stats_read(&d->dp, &t);

	if (rc)
		return rc;
	for (int bytes = 0; bytes < 2; bytes++) {
		const char *name = bytes ? "hyperion_bytes_total" : "hyperion_packets_total";
		help_type(o, name, "counter", bytes ? "Bytes (packet length on the wire) by final verdict and reason." :
			  "Packets by final verdict and reason.");
		for (unsigned i = 0; i < HYP_STATS_ENTRIES; i++) {
			unsigned r = i >= HYP_STATS_MONITOR ? i - HYP_STATS_MONITOR : i;
			/* Monitor mode only ever converts drops: pass reasons have no monitor series. */
			if (i >= HYP_STATS_MONITOR && (r < HYP_R_DROP_BANNED || r >= HYP_R_ABORTED))
				continue;
			evbuffer_add_printf(o, "%s{verdict=\"%s\",reason=\"%s\"} %llu\n", name, stats_verdict_name(i),
					    reason_name(r), (unsigned long long)(bytes ? t.reason[i].bytes :
										  t.reason[i].packets));
		}
	}

	flow_census(&d->dp, HYP_METRICS_FLOWS_WALK_MAX, &fc);
	help_type(o, "hyperion_flows", "gauge", "Tracked flows by conntrack state (see hyperion_flows_truncated).");
	for (unsigned s = 1; s < HYP_CT_STATE_MAX; s++)
		evbuffer_add_printf(o, "hyperion_flows{state=\"%s\"} %llu\n", ct_state_name(s),
				    (unsigned long long)fc.state[s]);
	help_type(o, "hyperion_flows_truncated", "gauge",
		  "1 if the flow census stopped at its per-scrape limit (flow gauges are then lower bounds).");
	evbuffer_add_printf(o, "hyperion_flows_truncated %d\n", fc.truncated ? 1 : 0);
	if (!fc.truncated) {
		help_type(o, "hyperion_flow_evictions_total", "counter",
			  "Flows removed by table pressure (LRU), per table: inserts - deletes - live entries.");
		evbuffer_add_printf(o, "hyperion_flow_evictions_total{map=\"flows\"} %llu\n",
				    (unsigned long long)evictions(t.counter[HYP_C_CT_EST_INSERT],
								  t.counter[HYP_C_CT_EST_DELETE], fc.live_est,
								  &m->evictions_est));
		evbuffer_add_printf(o, "hyperion_flow_evictions_total{map=\"flows_new\"} %llu\n",
				    (unsigned long long)evictions(t.counter[HYP_C_CT_NEW_INSERT],
								  t.counter[HYP_C_CT_NEW_DELETE], fc.live_new,
								  &m->evictions_new));
	}

	ban_foreach(&d->dp, ban_count_cb, &bans);
	allow_foreach(&d->dp, allow_count_cb, &allows);
	help_type(o, "hyperion_bans", "gauge", "Active (unexpired) bans.");
	evbuffer_add_printf(o, "hyperion_bans %llu\n", (unsigned long long)bans);
	help_type(o, "hyperion_allowlist", "gauge", "Allowlist entries.");
	evbuffer_add_printf(o, "hyperion_allowlist %llu\n", (unsigned long long)allows);

	struct { const char *name, *help; __u64 v; } c[] = {
		{ "hyperion_events_delivered_total", "Events the datapath wrote to the ring buffer.",
		  t.counter[HYP_C_EV_SUBMITTED] },
		{ "hyperion_events_lost_total", "Events dropped because the ring buffer was full.",
		  t.counter[HYP_C_EV_LOST] },
		{ "hyperion_events_sampled_total", "Events suppressed by per-source sampling.",
		  t.counter[HYP_C_EV_SAMPLED] },
		{ "hyperion_events_read_total", "Events the daemon consumed from the ring buffer.", st->events_read },
		{ "hyperion_hook_calls_total", "Lua hook invocations.", st->hook_calls },
		{ "hyperion_hook_errors_total", "Lua hook invocations that raised an error.", st->hook_errors },
		{ "hyperion_hook_timeouts_total", "Lua hook invocations stopped at their deadline.", st->hook_timeouts },
		{ "hyperion_hook_oom_total", "Lua hook invocations that hit the memory cap.", st->hook_oom },
		{ "hyperion_reloads_total", "Successful policy reloads.", st->reloads },
		{ "hyperion_reload_failures_total", "Refused policy reloads (old policy kept).", st->reload_failures },
		{ "hyperion_bans_added_total", "Bans added through the daemon (control socket and Lua hooks).", st->bans_added },
		{ "hyperion_bans_expired_total", "Bans removed by expiry.", st->bans_expired },
		{ "hyperion_flow_pickups_total", "Mid-stream TCP flows picked up (local socket confirmed).",
		  t.counter[HYP_C_CT_PICKUP] },
		{ "hyperion_flows_expired_total", "Flows found expired by the datapath.", t.counter[HYP_C_CT_EXPIRED] },
		{ "hyperion_scan_bytes_total", "Payload bytes stepped through the signature automaton.",
		  t.counter[HYP_C_SCAN_BYTES] },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		help_type(o, c[i].name, "counter", c[i].help);
		evbuffer_add_printf(o, "%s %llu\n", c[i].name, (unsigned long long)c[i].v);
	}

	/* lua_vm keeps per-bucket counts (le 1us .. 100ms, then +Inf); Prometheus wants them cumulative. */
	static const char *const le[12] = { "1e-06", "5e-06", "1e-05", "5e-05", "0.0001", "0.0005", "0.001",
					    "0.005", "0.01", "0.05", "0.1", "+Inf" };
	__u64 cum = 0;
	help_type(o, "hyperion_hook_duration_seconds", "histogram", "Lua hook call duration.");
	for (int i = 0; i < 12; i++) {
		cum += st->hook_latency_bucket[i];
		evbuffer_add_printf(o, "hyperion_hook_duration_seconds_bucket{le=\"%s\"} %llu\n", le[i],
				    (unsigned long long)cum);
	}
	evbuffer_add_printf(o, "hyperion_hook_duration_seconds_sum %.9f\n", st->hook_latency_sum_s);
	evbuffer_add_printf(o, "hyperion_hook_duration_seconds_count %llu\n", (unsigned long long)cum);
	return 0;
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
	struct hyp_metrics *m = arg;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, 405, "Method Not Allowed");
		return;
	}
	struct evbuffer *body = evbuffer_new();
	if (!body) {
		evhttp_send_error(req, 500, "Out of memory");
		return;
	}
	int rc = metrics_render(m->d, m, body);
	if (rc) {
		hyp_log(LOG_ERR, "metrics: render: %s", strerror(-rc));
		evhttp_send_error(req, 500, "Cannot read datapath statistics");
	} else {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				  "text/plain; version=0.0.4; charset=utf-8");
		evhttp_send_reply(req, 200, "OK", body);
	}
	evbuffer_free(body);
}

static void metrics_other_cb(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_send_error(req, 404, "Not Found (try /metrics)");
}

int metrics_open(struct hyp_metrics **out, struct hyp_daemon *d, const char *addr)
{
	char host[128];
	unsigned short port;
	struct hyp_metrics *m;

	if (metrics_addr_parse(addr, host, sizeof(host), &port)) {
		hyp_log(LOG_ERR, "metrics: bad address '%s' (want ADDR:PORT or [V6ADDR]:PORT)", addr);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->d = d;
	m->http = evhttp_new(d->base);
	if (!m->http) {
		free(m);
		return -ENOMEM;
	}
	evhttp_set_timeout(m->http, HYP_METRICS_TIMEOUT_S);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_cb(m->http, "/metrics", metrics_cb, m);
	evhttp_set_gencb(m->http, metrics_other_cb, m);
	if (!evhttp_bind_socket_with_handle(m->http, host, port)) {
		int err = errno ? -errno : -EADDRNOTAVAIL;
		hyp_log(LOG_ERR, "metrics: cannot listen on %s: %s", addr, strerror(-err));
		evhttp_free(m->http);
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

void metrics_close(struct hyp_metrics *m)
{
	if (!m)
		return;
	evhttp_free(m->http);
	free(m);
}
