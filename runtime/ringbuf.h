/* Event ring buffer reader: libevent-driven, copies bounded batches out of libbpf's callback. */
#ifndef HYP_RINGBUF_H
#define HYP_RINGBUF_H

#include <stddef.h>
#include "hyperion_abi.h"

struct event_base;
struct hyp_ringbuf;

#define HYP_RB_BATCH 256            /* events per batch handed to the consumer (one Lua call) */
#define HYP_RB_BATCHES_PER_WAKEUP 16 /* then yield to the loop so the control socket stays served */
#define HYP_RB_WAKEUP_BUDGET_MS 20   /* ... or sooner once the batches took this long (slow hooks) */
/* Sustained load: a wakeup that finds HYP_RB_POLL_ENTER events or more switches the reader to a timer
 * every HYP_RB_POLL_US; it goes back to per-burst wakeups when a period brings fewer than
 * HYP_RB_POLL_STAY (see ringbuf.c). An event waits at most HYP_RB_POLL_US longer under load. */
#define HYP_RB_POLL_US 250
#define HYP_RB_POLL_ENTER 32
#define HYP_RB_POLL_STAY 8

/* Called once per batch; ev is valid only during the call. */
typedef void (*ringbuf_batch_fn)(const struct hyp_event *ev, size_t n, void *arg);

/* Start reading map_fd (BPF_MAP_TYPE_RINGBUF) from base. 0 or -errno (logged). */
int ringbuf_open(struct hyp_ringbuf **out, struct event_base *base, int map_fd, ringbuf_batch_fn fn, void *arg);
/* Drain what is there now (up to the per-wakeup budget); returns events read. */
int ringbuf_drain(struct hyp_ringbuf *rb);
void ringbuf_close(struct hyp_ringbuf *rb);

#endif
