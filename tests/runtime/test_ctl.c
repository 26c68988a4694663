/* Control socket server without a datapath: refusals, limits, and a lossy never-blocking event stream. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <event2/event.h>
#include "ctl.h"
#include "ctl_proto.h"
#include "daemon.h"
#include "tap.h"

static char dir[64], path[100];   /* sun_path holds 108 */

static int client(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Run the loop until fd has a complete reply (ends in "OK\n"/"ERR ...\n" and EOF) or the round bound. */
static size_t reply(struct event_base *base, int fd, char *buf, size_t cap)
{
	size_t n = 0;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (int round = 0; round < 2000 && n + 1 < cap; round++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
		if (r == 0)
			break;
		if (r > 0)
			n += (size_t)r;
		else
			usleep(1000);
	}
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;   /* first line only: keeps TAP output one line per check */
	return n;
}

static void spin(struct event_base *base, int rounds)
{
	for (int i = 0; i < rounds; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

int main(void)
{
	struct hyp_daemon d;
	struct hyp_ctl *c = NULL;
	char buf[1 << 16];

	memset(&d, 0, sizeof(d));
	snprintf(dir, sizeof(dir), "/tmp/hyp-test-ctl-%d", (int)getpid());
	snprintf(path, sizeof(path), "%s/sub/dir/ctl.sock", dir);
	d.base = event_base_new();
	TAP_EQ(ctl_open(&c, &d, path, (unsigned)-1), 0, "listening on a path whose directories do not exist yet");
	if (!c)
		return tap_done();
	struct stat st;
	TAP_CHECK(!stat(path, &st) && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600, "socket is mode 0600");
	TAP_EQ(ctl_probe(path), -EADDRINUSE, "probe sees the live socket");
	struct hyp_ctl *c2 = NULL;
	TAP_EQ(ctl_open(&c2, &d, path, (unsigned)-1), -EADDRINUSE, "a second server on a live socket is refused");

	/* Refusals before any command runs. */
	int fd = client();
	const char big[] = "status ";
	char *over = malloc(HYP_CTL_REQ_MAX * 2);
	memset(over, 'x', HYP_CTL_REQ_MAX * 2);
	memcpy(over, big, sizeof(big) - 1);
	over[HYP_CTL_REQ_MAX * 2 - 1] = '\n';
	if (send(fd, over, HYP_CTL_REQ_MAX * 2, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		TAP_CHECK(errno == EAGAIN || errno == EPIPE, "oversized send may be cut short");
	reply(d.base, fd, buf, sizeof(buf));
	TAP_CHECK(!strncmp(buf, "ERR request too long", 20), "oversized request refused: %.60s", buf);
	close(fd);
	free(over);

	fd = client();
	send(fd, "stats\0\n", 7, MSG_NOSIGNAL);
	reply(d.base, fd, buf, sizeof(buf));
	TAP_CHECK(!strncmp(buf, "ERR request contains a control or NUL byte", 42), "NUL byte refused: %.60s", buf);
	close(fd);

	fd = client();
	send(fd, "ban add 192.0.2.1 --ttl -1\n", 27, MSG_NOSIGNAL);
	reply(d.base, fd, buf, sizeof(buf));
	TAP_CHECK(!strncmp(buf, "ERR invalid TTL", 15), "bad TTL refused before any daemon call: %.60s", buf);
	close(fd);

	/* Peer credentials: a child that drops to uid 65534 is refused with one error line. */
	if (geteuid() != 0) {
		TAP_SKIP("peer credential refusal needs root (to drop to uid 65534)");
		goto limits;
	}
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(65534) || setuid(65534))
			_exit(3);
		int cfd = client();
		if (cfd < 0)
			_exit(4);   /* the file mode already stops it: fine too, but then we cannot see the line */
		char b[256];
		ssize_t n = 0;
		for (int i = 0; i < 200 && n <= 0; i++) {
			n = recv(cfd, b, sizeof(b) - 1, MSG_DONTWAIT);
			if (n <= 0)
				usleep(5000);
		}
		b[n > 0 ? n : 0] = 0;
		_exit(strstr(b, "ERR permission denied: uid 65534") ? 0 : 5);
	}
	int status = 0;
	/* The file mode (0600, root) stops the child at connect(): make the socket reachable so the
	 * SO_PEERCRED check is what refuses it. */
	chmod(path, 0666);
	chmod(dir, 0755);
	for (int i = 0; i < 2000; i++) {
		spin(d.base, 1);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		usleep(1000);
	}
	TAP_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "uid 65534 gets the daemon's refusal line (child %d)",
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	chmod(path, 0600);
limits:;
	/* Connection limit: idle clients fill the table, the next one is told so. */
	int idle[HYP_CTL_CONN_MAX];
	for (int i = 0; i < HYP_CTL_CONN_MAX; i++) {
		idle[i] = client();
		spin(d.base, 2);
	}
	fd = client();
	reply(d.base, fd, buf, sizeof(buf));
	TAP_CHECK(!strncmp(buf, "ERR too many control connections", 32), "connection %d refused: %.50s",
		  HYP_CTL_CONN_MAX + 1, buf);
	close(fd);
	for (int i = 0; i < HYP_CTL_CONN_MAX; i++)
		close(idle[i]);
	spin(d.base, 50);

	/* A subscriber that never reads: publishing never blocks, the excess is counted and reported. */
	fd = client();
	send(fd, "events\n", 7, MSG_NOSIGNAL);
	for (int i = 0; i < 1000 && ctl_subscribers(c) != 1; i++)
		spin(d.base, 1);
	TAP_EQ(ctl_subscribers(c), 1, "subscribed");
	struct hyp_event ev[256];
	memset(ev, 0, sizeof(ev));
	for (int i = 0; i < 256; i++) {
		ev[i].kind = HYP_EV_FLOW_NEW;
		ev[i].family = HYP_AF_INET;
		ev[i].proto = 17;
		ev[i].sig = 0xffffffffu;
	}
	/* ~150 bytes per line: 100k events are ~15 MB, far past HYP_CTL_SUB_BUF_MAX plus socket buffers. */
	for (int b = 0; b < 400; b++)
		ctl_publish(c, ev, 256);
	TAP_CHECK(1, "publishing 102400 events to a stalled subscriber returned");
	/* Now read everything: some events, then one line reporting the loss, no more than the cap queued. */
	fcntl(fd, F_SETFL, O_NONBLOCK);
	size_t total = 0, lost_lines = 0, lines = 0;
	char line[512];
	size_t ll = 0;
	for (int round = 0; round < 20000; round++) {
		spin(d.base, 1);
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r <= 0) {
			if (round > 200 && total > 0)
				break;
			usleep(200);
			continue;
		}
		total += (size_t)r;
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = 0;
			ll = 0;
			lines++;
		}
	}
	/* The backlog is drained: the next publish reports the loss first. */
	ctl_publish(c, ev, 1);
	for (int round = 0; round < 2000; round++) {
		spin(d.base, 1);
		ssize_t r = recv(fd, buf, sizeof(buf) - 1, 0);
		if (r > 0) {
			buf[r] = 0;
			if (strstr(buf, "events lost (subscriber too slow)"))
				lost_lines++;
			break;
		}
		usleep(200);
	}
	TAP_CHECK(lines > 0 && lines < 102400, "subscriber got %zu of 102400 events: lossy, not blocking", lines);
	TAP_CHECK(total < HYP_CTL_SUB_BUF_MAX + (8u << 20), "bytes queued stayed bounded (%zu)", total);
	TAP_EQ(lost_lines, 1, "the loss is reported to the subscriber once it catches up");
	close(fd);
	for (int i = 0; i < 1000 && ctl_subscribers(c) != 0; i++)
		spin(d.base, 1);
	TAP_EQ(ctl_subscribers(c), 0, "a closed subscriber is dropped");

	ctl_close(c);
	TAP_CHECK(access(path, F_OK) != 0, "socket file removed on close");
	event_base_free(d.base);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "# could not remove %s\n", dir);
	return tap_done();
}
