/* Control socket server: Unix stream socket, peer-credential check, one request per connection. */
#ifndef HYP_CTL_H
#define HYP_CTL_H

#include <stddef.h>
#include "hyperion_abi.h"

struct hyp_daemon;
struct hyp_ctl;

#define HYP_CTL_CONN_MAX 64             /* concurrent connections, event subscribers included */
#define HYP_CTL_BACKLOG 16              /* listen() backlog */
#define HYP_CTL_IO_TIMEOUT_S 10         /* a request must arrive, a response drain, within this */
#define HYP_CTL_SUB_BUF_MAX (1u << 20)  /* a subscriber with more queued output loses events */
#define HYP_CTL_SUB_TIMEOUT_S 60        /* a subscriber that reads nothing this long is dropped */
#define HYP_CTL_LINGER_MAX (64u << 10)  /* bytes discarded after a reply before closing regardless */

/* Listen on path (parent directory created 0755, socket 0600; chowned to allow_uid if that is not
 * (unsigned)-1). A live socket at path is an error (another daemon); a stale one is replaced. */
int ctl_open(struct hyp_ctl **out, struct hyp_daemon *d, const char *path, unsigned allow_uid);
/* -EADDRINUSE if a daemon answers on path (checked before touching the datapath: a second instance
 * must not adopt and rewrite the first one's maps), 0 otherwise. */
int ctl_probe(const char *path);
/* Send a batch of events to every `events` subscriber; never blocks (slow subscribers lose events). */
void ctl_publish(struct hyp_ctl *c, const struct hyp_event *ev, size_t n);
unsigned ctl_subscribers(const struct hyp_ctl *c);
/* Close every connection, the listener, and remove the socket file. */
void ctl_close(struct hyp_ctl *c);

#endif
