/* Prometheus text exposition over evhttp (GET /metrics) on the daemon's event base. */
#ifndef HYP_METRICS_H
#define HYP_METRICS_H

struct hyp_daemon;
struct hyp_metrics;
struct evbuffer;

#define HYP_METRICS_FLOWS_WALK_MAX (1u << 18)   /* flow entries read per scrape (bounds its cost) */
#define HYP_METRICS_TIMEOUT_S 10                /* evhttp per-connection timeout */

/* addr is "ADDR:PORT", "[V6ADDR]:PORT" or ":PORT" (all addresses). 0 or -errno (logged). */
int metrics_open(struct hyp_metrics **out, struct hyp_daemon *d, const char *addr);
void metrics_close(struct hyp_metrics *m);
/* The whole exposition into out (used by the handler and tests). 0 or -errno. */
int metrics_render(struct hyp_daemon *d, struct hyp_metrics *m, struct evbuffer *out);
/* Split "ADDR:PORT" into host (brackets removed) and port. 0 or -EINVAL. */
int metrics_addr_parse(const char *s, char *host, unsigned hostlen, unsigned short *port);

#endif
