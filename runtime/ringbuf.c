/* Event ring buffer reader: libevent-driven, copies bounded batches out of libbpf's callback. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>
#include <event2/event.h>
#include "log.h"
#include "maps.h"
#include "ringbuf.h"

/* Returned by the sample callback when the batch is full: libbpf has already advanced the consumer
 * position past this sample, stops the walk and hands the value back from ring_buffer__consume(). */
#define RB_BATCH_FULL (-EAGAIN)

struct hyp_ringbuf {
	struct ring_buffer *rb;
	struct event *ev;               /* the epoll fd: one wakeup per burst (idle or light load) */
	struct event *poll;             /* timer: reads every HYP_RB_POLL_US under sustained load */
	bool more;                      /* the last drain stopped at its budget, data probably left */
	ringbuf_batch_fn fn;
	void *arg;
	size_t n;
	struct hyp_event batch[HYP_RB_BATCH];
};

/* The sample pointer is only valid inside this callback: copy it. Short samples (a datapath older
 * than this ABI) are zero-padded rather than dropped. */
static int ringbuf_sample_cb(void *ctx, void *data, size_t size)
{
	struct hyp_ringbuf *r = ctx;
	struct hyp_event *e = &r->batch[r->n++];

	if (size >= sizeof(*e)) {
		memcpy(e, data, sizeof(*e));
	} else {
		memset(e, 0, sizeof(*e));
		memcpy(e, data, size);
	}
	return r->n == HYP_RB_BATCH ? RB_BATCH_FULL : 0;
}

static uint64_t ringbuf_ms(void)
{
	return mono_now_ns() / 1000000u;
}

int ringbuf_drain(struct hyp_ringbuf *r)
{
	int total = 0;
	uint64_t t0 = ringbuf_ms();

	r->more = false;
	for (int i = 0; i < HYP_RB_BATCHES_PER_WAKEUP; i++) {
		r->n = 0;
		int rc = ring_buffer__consume(r->rb);
		r->more = rc == RB_BATCH_FULL;  /* possibly more: if this was the last round, come back soon */
		size_t n = r->n;
		if (n)
			r->fn(r->batch, n, r->arg);
		total += (int)n;
		if (rc < 0 && rc != RB_BATCH_FULL) {
			hyp_log(LOG_ERR, "ringbuf: consume: %s", strerror(-rc));
			return rc;
		}
		if (rc != RB_BATCH_FULL)
			break;      /* ring empty */
		/* Hooks near their deadline (up to HYP_HOOK_TIMEOUT_MS per batch) would otherwise hold the
		 * loop for 16 of them in a row. */
		if (ringbuf_ms() - t0 >= HYP_RB_WAKEUP_BUDGET_MS)
			break;
	}
	/* Budget spent with data left: the epoll fd stays readable (or the poll timer comes back at
	 * once), so the loop calls us again after serving everything else. */
	return total;
}

/*
 * Wakeups vs polling. The datapath signals the ring (an irq_work, then a cross-CPU wakeup of the
 * daemon) whenever it commits an event while the reader is caught up; in a VM each costs the sending
 * CPU microseconds, so a reader that is fast and woken per burst slows the very datapath it reads
 * (measured: a signature flood fell from 1.5 to 0.8 Mpps). Under sustained load the reader therefore
 * stops watching the fd and drains on a timer every HYP_RB_POLL_US (NAPI-style): one signal per period
 * at most, and batches that fill up. It returns to the fd as soon as a period brings few events, so an
 * isolated event (the reaction path) is read at once, not at the next tick.
 */
static void ringbuf_poll_arm(struct hyp_ringbuf *r)
{
	struct timeval tv = { 0, r->more ? 0 : HYP_RB_POLL_US };

	if (evtimer_add(r->poll, &tv)) {
		hyp_log(LOG_ERR, "ringbuf: cannot arm the poll timer; back to wakeups");
		event_add(r->ev, NULL);
	}
}

static void ringbuf_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hyp_ringbuf *r = arg;
	(void)fd;
	(void)what;

	if (ringbuf_drain(r) >= HYP_RB_POLL_ENTER && !event_del(r->ev))
		ringbuf_poll_arm(r);
}

static void ringbuf_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hyp_ringbuf *r = arg;
	(void)fd;
	(void)what;

	int n = ringbuf_drain(r);
	if (n >= HYP_RB_POLL_STAY || r->more) {
		ringbuf_poll_arm(r);
		return;
	}
	/* Watched again: epoll reports the fd at once if events came in since this drain. */
	if (event_add(r->ev, NULL))
		hyp_log(LOG_ERR, "ringbuf: cannot watch the epoll fd again");
}

int ringbuf_open(struct hyp_ringbuf **out, struct event_base *base, int map_fd, ringbuf_batch_fn fn, void *arg)
{
	struct hyp_ringbuf *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->fn = fn;
	r->arg = arg;
	r->rb = ring_buffer__new(map_fd, ringbuf_sample_cb, r, NULL);
	if (!r->rb) {
		err = -errno;
		hyp_log(LOG_ERR, "ringbuf: ring_buffer__new(fd %d): %s", map_fd, strerror(-err));
		free(r);
		return err;
	}
	/* libbpf's epoll fd becomes readable when the ring has data; libevent watches it so events are
	 * read on the same loop as everything else, never in a thread. */
	r->ev = event_new(base, ring_buffer__epoll_fd(r->rb), EV_READ | EV_PERSIST, ringbuf_ready_cb, r);
	r->poll = evtimer_new(base, ringbuf_poll_cb, r);
	if (!r->ev || !r->poll || event_add(r->ev, NULL)) {
		hyp_log(LOG_ERR, "ringbuf: cannot watch the epoll fd");
		ringbuf_close(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

void ringbuf_close(struct hyp_ringbuf *r)
{
	if (!r)
		return;
	if (r->ev)
		event_free(r->ev);
	if (r->poll)
		event_free(r->poll);
	ring_buffer__free(r->rb);
	free(r);
}
