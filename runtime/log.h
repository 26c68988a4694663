/* Logging to stderr, as text or JSON lines, with syslog-style levels. */
#ifndef HYP_LOG_H
#define HYP_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

void log_set_json(bool json);
void log_set_level(int level);          /* LOG_ERR .. LOG_DEBUG; default LOG_INFO */
/* Send libbpf's messages (warnings; debug at LOG_DEBUG) through hyp_log. */
void log_route_libbpf(void);
void hyp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For functions that return -errno and explain in a caller's buffer: formats into err (NULL or
 * errlen 0: nothing) and returns rc. */
int hyp_errf(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
