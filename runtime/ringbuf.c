/* Event ring buffer reader: libevent-driven, copies bounded batches out of libbpf's callback. */
#include <errno.h>
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
	struct event *ev;
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

	for (int i = 0; i < HYP_RB_BATCHES_PER_WAKEUP; i++) {
		r->n = 0;
		int rc = ring_buffer__consume(r->rb);
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
	/* Budget spent with data left: the epoll fd stays readable, so the loop calls us again after
	 * serving everything else. */
	return total;
}

static void ringbuf_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ringbuf_drain(arg);
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
	if (!r->ev || event_add(r->ev, NULL)) {
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
	ring_buffer__free(r->rb);
	free(r);
}
