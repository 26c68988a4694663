/* Ring buffer reader: events reach the consumer in bounded batches from the libevent loop, none lost. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <event2/event.h>
#include <bpf/libbpf.h>
#include "dptest.h"
#include "hyperion.skel.h"
#include "pkt.h"
#include "ringbuf.h"
#include "tap.h"

#define NEVENTS 600     /* two full batches and a remainder */

struct sink {
	size_t total, batches, max_batch, bad;
	unsigned seen[NEVENTS];
	unsigned slow_ms;       /* consumer time per batch (a hook near its deadline) */
};

static void sink_cb(const struct hyp_event *ev, size_t n, void *arg)
{
	struct sink *s = arg;

	s->batches++;
	if (n > s->max_batch)
		s->max_batch = n;
	for (size_t i = 0; i < n; i++) {
		/* The source (198.51.100.x, 203.0.113.x, 192.0.2.x) encodes the packet index: every event must be whole. */
		unsigned idx = (unsigned)(ev[i].saddr[2] == 100 ? 0 : ev[i].saddr[2] == 113 ? 256 : 512) + ev[i].saddr[3];
		if (ev[i].kind != HYP_EV_FLOW_NEW || ev[i].proto != IPPROTO_UDP || idx >= NEVENTS)
			s->bad++;
		else
			s->seen[idx]++;
	}
	s->total += n;
	if (s->slow_ms) {
		struct timespec ts = { 0, (long)s->slow_ms * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* Run the loop (blocking, each round bounded by 10 ms) until the sink holds want events or after rounds. */
static void loop_until(struct event_base *base, const struct sink *s, size_t want, int rounds)
{
	for (int round = 0; round < rounds && s->total < want; round++) {
		struct timeval tv = { 0, 10000 };
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
}

static void udp_from(unsigned i, uint16_t dport, uint8_t *frame, int *len)
{
	char src[32];
	struct pkt_opts po = { .family = 4, .src = src, .dst = "192.0.2.1", .proto = IPPROTO_UDP,
			       .sport = 40000, .dport = dport, .payload = "q", .payload_len = 1 };

	snprintf(src, sizeof(src), i < 256 ? "198.51.100.%u" : i < 512 ? "203.0.113.%u" : "192.0.2.%u", i & 0xff);
	*len = pkt_build(&po, frame, PKT_MAX);
}

int main(void)
{
	struct dpt t;
	struct dpt_opts o = { .ringbuf_bytes = 1u << 20 };
	struct sink s = {0};
	struct hyp_ringbuf *rb = NULL;
	uint8_t frame[PKT_MAX];
	int len;

	if (!dpt_open_or_report(&t, &o))
		return tap_done();
	t.cfg.ev_rate = 0;      /* no sampling: one flow_new per new source */
	dpt_config_push(&t);
	struct event_base *base = event_base_new();
	TAP_CHECK(base != NULL, "event base");
	/* dpt keeps its own ring_buffer on the map but only reads it in dpt_events(), never called here. */
	TAP_EQ(ringbuf_open(&rb, base, bpf_map__fd(t.skel->maps.events), sink_cb, &s), 0, "ringbuf_open");
	if (!rb) {
		dpt_close(&t);
		return tap_done();
	}
	unsigned sent = 0;
	for (unsigned i = 0; i < NEVENTS; i++, sent++) {
		udp_from(i, 53, frame, &len);
		dpt_xdp(&t, frame, (uint32_t)len);
	}
	uint64_t submitted = dpt_counter(&t, HYP_C_EV_SUBMITTED), lost = dpt_counter(&t, HYP_C_EV_LOST);
	TAP_EQ(lost, 0, "no event lost by the datapath");
	TAP_EQ(submitted, sent, "one flow_new per source submitted");

	/* Run the loop until everything submitted has been read: bounded, each round reads what is ready. */
	for (int round = 0; round < 100 && s.total < submitted; round++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	TAP_EQ(s.total, submitted, "the libevent-driven reader delivered every event");
	TAP_EQ(s.bad, 0, "every event arrived whole (kind, proto, source intact)");
	TAP_CHECK(s.max_batch == HYP_RB_BATCH, "batches are capped at %d (largest %zu)", HYP_RB_BATCH, s.max_batch);
	TAP_CHECK(s.batches >= (submitted + HYP_RB_BATCH - 1) / HYP_RB_BATCH, "%zu batches for %zu events", s.batches,
		  s.total);
	unsigned dup = 0, missing = 0;
	for (unsigned i = 0; i < sent; i++) {
		dup += s.seen[i] > 1;
		missing += s.seen[i] == 0;
	}
	TAP_EQ(dup, 0, "no event delivered twice");
	TAP_EQ(missing, 0, "no source missing");

	/* That burst switched the reader to polling on a timer (HYP_RB_POLL_ENTER or more at one wakeup):
	 * what comes meanwhile is still read, and once a period brings fewer than HYP_RB_POLL_STAY the fd
	 * is watched again, so a lone event later is read too. */
	size_t had = s.total;
	for (unsigned i = 0; i < HYP_RB_POLL_ENTER; i++) {
		udp_from(i, 55, frame, &len);   /* new flows: another flow_new each */
		dpt_xdp(&t, frame, (uint32_t)len);
	}
	loop_until(base, &s, had + HYP_RB_POLL_ENTER, 200);
	TAP_EQ(s.total, had + HYP_RB_POLL_ENTER, "events arriving while the reader polls are read");
	loop_until(base, &s, SIZE_MAX, 5);      /* empty periods: back to the fd */
	udp_from(0, 56, frame, &len);
	dpt_xdp(&t, frame, (uint32_t)len);
	loop_until(base, &s, had + HYP_RB_POLL_ENTER + 1, 200);
	TAP_EQ(s.total, had + HYP_RB_POLL_ENTER + 1, "a lone event after the load is read (none left unwatched)");
	TAP_EQ(s.bad, 0, "polled events arrived whole");

	/* Nothing pending: a drain reads nothing and calls nobody. */
	size_t before = s.batches;
	TAP_EQ(ringbuf_drain(rb), 0, "empty ring drains nothing");
	TAP_EQ(s.batches, before, "no empty batch delivered");

	/* A slow consumer (hooks near their deadline): one wakeup stops after HYP_RB_WAKEUP_BUDGET_MS
	 * instead of running HYP_RB_BATCHES_PER_WAKEUP batches back to back; the rest comes next time. */
	memset(&s, 0, sizeof(s));
	s.slow_ms = HYP_RB_WAKEUP_BUDGET_MS + 10;
	for (unsigned i = 0; i < NEVENTS; i++) {
		udp_from(i, 54, frame, &len);   /* new flows: another flow_new each */
		dpt_xdp(&t, frame, (uint32_t)len);
	}
	TAP_EQ(ringbuf_drain(rb), HYP_RB_BATCH, "slow consumer: one drain yields after one batch (time budget)");
	for (int round = 0; round < 100 && s.total < NEVENTS; round++)
		ringbuf_drain(rb);
	TAP_EQ(s.total, NEVENTS, "slow consumer: later drains deliver the rest");
	TAP_EQ(s.bad, 0, "slow consumer: every event whole");

	ringbuf_close(rb);
	event_base_free(base);
	dpt_close(&t);
	return tap_done();
}
