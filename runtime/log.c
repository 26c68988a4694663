/* Logging to stderr, as text or JSON lines. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <bpf/libbpf.h>
#include "log.h"

static bool log_json;
static int log_level = LOG_INFO;

void log_set_json(bool json) { log_json = json; }
void log_set_level(int level) { log_level = level; }

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: case LOG_INFO: return "info";
	default: return "debug";
	}
}

/* JSON string escaping for the message: quotes, backslashes and control characters. */
static void json_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

void hyp_log(int level, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[64];
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
	/* The Lua watchdog thread logs too: hold the stream so a JSON line is never split by another. */
	flockfile(stderr);
	if (log_json) {
		fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", when, level_name(level));
		json_escape(stderr, msg);
		fputs("\"}\n", stderr);
	} else {
		fprintf(stderr, "%s %s: %s\n", when, level_name(level), msg);
	}
	fflush(stderr);
	funlockfile(stderr);
}

/* libbpf prints through its own callback; route warnings here so they reach the same stream and format.
 * Its debug chatter is dropped unless the level is LOG_DEBUG. */
static int log_libbpf_cb(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int lvl = level == LIBBPF_WARN ? LOG_WARNING : LOG_DEBUG;
	char msg[2048];

	if (lvl > log_level)
		return 0;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* most of libbpf's messages already start with "libbpf: " */
	hyp_log(lvl, "%s%s", strncmp(msg, "libbpf: ", 8) ? "libbpf: " : "", msg);
	return 0;
}

int hyp_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void log_route_libbpf(void)
{
	libbpf_set_print(log_libbpf_cb);
}
