/* hyperionctl: operator CLI; validates the command locally, sends it to hyperiond, prints the reply. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include "ctl_proto.h"
#include "daemon.h"

#define CTL_CLIENT_TIMEOUT_S 60     /* a reload compiles signatures; anything slower is a hung daemon */

/* Exit statuses, as ip(8)/nft(8) users expect. */
enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2 };

static volatile sig_atomic_t interrupted;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hyperionctl [-s SOCKET] [--json] COMMAND\n"
		"Commands:\n"
		"  status                               daemon, policy, interfaces\n"
		"  stats                                packets/bytes per verdict and reason, counters\n"
		"  ban add CIDR [--ttl T] [--reason TEXT]  T: seconds or Ns/Nm/Nh/Nd (default: permanent)\n"
		"  ban del CIDR | ban list\n"
		"  allow add CIDR | allow del CIDR | allow list\n"
		"  flows [--limit N]                    tracked flows (default %d, max %d)\n"
		"  sig list                             active signatures\n"
		"  reload                               reload the policy file\n"
		"  events                               follow the live event stream (Ctrl-C stops)\n"
		"Options:\n"
		"  -s, --socket PATH   control socket (default %s)\n"
		"  --json              JSON output\n"
		"Exit status: 0 success, 1 refused or failed (daemon's message printed), 2 usage error.\n",
		HYP_CTL_FLOWS_DEFAULT, HYP_CTL_FLOWS_MAX, HYP_SOCKET_DEFAULT);
}

static void stop_cb(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int ctl_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "hyperionctl: socket path too long: %s\n", path);
		return -1;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		int e = errno;
		fprintf(stderr, "hyperionctl: cannot connect to %s: %s%s\n", path, strerror(e),
			e == EACCES ? " (the control socket is for root)" :
			e == ENOENT || e == ECONNREFUSED ? " (is hyperiond running?)" : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	const char *sock = HYP_SOCKET_DEFAULT;
	char *words[HYP_CTL_ARGS_MAX + 1];
	int nw = 0, i;
	struct hyp_ctl_req req;
	char err[256], line[HYP_CTL_REQ_MAX + 1];

	/* Our own options come first; everything from the command word on goes to the daemon. --json
	 * may appear anywhere (it is part of the request). */
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-s") || !strcmp(a, "--socket")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "hyperionctl: %s needs a path\n", a);
				return EXIT_USAGE;
			}
			sock = argv[++i];
		} else if (!strncmp(a, "--socket=", 9)) {
			sock = a + 9;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--json")) {
			words[nw++] = argv[i];
		} else if (a[0] == '-' && nw == 0) {
			fprintf(stderr, "hyperionctl: unknown option '%s' (see --help)\n", a);
			return EXIT_USAGE;
		} else {
			break;
		}
	}
	for (; i < argc; i++) {
		if (nw == HYP_CTL_ARGS_MAX) {
			fprintf(stderr, "hyperionctl: too many arguments\n");
			return EXIT_USAGE;
		}
		words[nw++] = argv[i];
	}
	/* Validate with the daemon's own parser: usage errors never reach the socket. */
	if (ctl_req_parse_argv(nw, words, &req, err, sizeof(err))) {
		fprintf(stderr, "hyperionctl: %s (see --help)\n", err);
		return EXIT_USAGE;
	}
	int n = ctl_req_format(nw, words, line, sizeof(line));
	if (n < 0) {
		fprintf(stderr, "hyperionctl: %s\n", n == -E2BIG ? "request too long" : "control character in arguments");
		return EXIT_USAGE;
	}

	signal(SIGPIPE, SIG_IGN);
	int fd = ctl_connect(sock);
	if (fd < 0)
		return EXIT_REFUSED;
	if (req.cmd != HYP_CTL_EVENTS) {
		struct timeval tv = { CTL_CLIENT_TIMEOUT_S, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	} else {
		/* No SA_RESTART: Ctrl-C makes the blocked read return so we exit 0 after a clean close. */
		struct sigaction sa = { .sa_handler = stop_cb };
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	/* A refused peer gets an error line and a close, possibly before our request is out: then the send
	 * fails but the daemon's line is already queued for us, so read it before giving up. */
	int send_err = send(fd, line, (size_t)n, MSG_NOSIGNAL) == n ? 0 : errno;
	FILE *in = fdopen(fd, "r");
	if (!in) {
		close(fd);
		return EXIT_REFUSED;
	}
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = -1;
	while (rc < 0 && (len = getline(&buf, &cap, in)) >= 0) {
		if (len && buf[len - 1] == '\n')
			buf[--len] = 0;
		const char *text;
		switch (ctl_line_kind(buf, &text)) {
		case HYP_CTL_LINE_DATA:
			puts(text);
			if (req.cmd == HYP_CTL_EVENTS)
				fflush(stdout);
			break;
		case HYP_CTL_LINE_OK:
			rc = EXIT_OK;
			break;
		case HYP_CTL_LINE_ERR:
			fprintf(stderr, "hyperionctl: %s\n", text);
			if (req.json) {
				char js[1024];
				ctl_json_str(js, sizeof(js), text);
				printf("{\"error\":%s}\n", js);
			}
			rc = EXIT_REFUSED;
			break;
		default:
			fprintf(stderr, "hyperionctl: unexpected reply from the daemon: %.200s\n", text);
			rc = EXIT_REFUSED;
			break;
		}
	}
	if (rc < 0) {
		if (req.cmd == HYP_CTL_EVENTS && interrupted) {
			rc = EXIT_OK;
		} else {
			fprintf(stderr, "hyperionctl: %s%s\n", send_err ? "send: " : "", send_err ? strerror(send_err) :
				errno == EAGAIN || errno == EWOULDBLOCK ? "timed out waiting for the daemon" :
				"connection closed by the daemon without a reply");
			rc = EXIT_REFUSED;
		}
	}
	free(buf);
	fclose(in);
	return rc;
}
