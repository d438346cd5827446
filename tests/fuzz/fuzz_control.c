/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target "control": the control-socket request parser
 * (src/frontend/control.c, protocol in control_proto.h), both ways in:
 *  - each line of the input straight into wc_control_handle(), and
 *  - the whole input as one client's byte stream on a live control socket
 *    (line framing, '\r', long lines, a last line without newline).
 * The server answers for a small cache on RAM devices, opened once per
 * process. Checks beyond "no crash": every reply is one line, and the socket
 * answers each request line with exactly one reply.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "dev.h"
#include "fuzz.h"
#include "testing.h"
#include "wcache.h"

#define REPLY_BYTES WC_CONTROL_MAX_REPLY

static struct wcache *wc;
static struct wc_control *ctl;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char *reply;

static void stop_server(void)
{
	wc_control_stop(ctl);
	wcache_close(wc);
	free(reply);
}

/* After AFL++'s fork: threads started before it would not exist in the child. */
static void start_server(void)
{
	struct wc_dev *o, *c;
	struct wc_cfg cfg;
	char err[512];
	int ret;

	fuzz_quiet();
	wcache_cfg_init(&cfg);
	snprintf(cfg.origin_path, sizeof(cfg.origin_path), "origin");
	snprintf(cfg.cache_path, sizeof(cfg.cache_path), "cache");
	FUZZ_CHECK(dev_mem_open(4u << 20, &o) == 0, "%s", "origin");
	FUZZ_CHECK(dev_mem_open(1u << 20, &c) == 0, "%s", "cache");
	ret = wc_open_devs(&cfg, o, c, &wc);
	FUZZ_CHECK(ret == 0, "open: %s", wcache_last_error());
	ret = snprintf(sock_path, sizeof(sock_path), "%s/ctl", fuzz_tmpdir());
	FUZZ_CHECK(ret > 0 && (size_t)ret < sizeof(sock_path), "socket path %s/ctl is too long",
		   fuzz_tmpdir());
	ret = wc_control_start(sock_path, wc, &ctl, err, sizeof(err));
	FUZZ_CHECK(ret == 0, "control socket: %s", err);
	reply = malloc(REPLY_BYTES);
	FUZZ_CHECK(reply, "%s", "out of memory");
	atexit(stop_server);
}

static void check_reply(const char *req, const char *rep)
{
	size_t n = strnlen(rep, REPLY_BYTES);

	FUZZ_CHECK(n > 0 && n < REPLY_BYTES, "reply of %zu bytes to '%.64s'", n, req);
	FUZZ_CHECK(!memchr(rep, '\n', n), "reply to '%.64s' has a newline: '%.64s'", req, rep);
}

/* Each line as the server cuts it, straight into the parser. */
static unsigned direct(const uint8_t *data, size_t len, bool *too_long)
{
	char line[WC_CONTROL_MAX_LINE + 2];
	unsigned nr = 0;
	size_t i = 0;

	*too_long = false;
	while (i < len) {
		const uint8_t *nl = memchr(data + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (data + i)) : len - i;

		if (n > WC_CONTROL_MAX_LINE) {
			*too_long = true;
			break;
		}
		memcpy(line, data + i, n);
		line[n] = '\0';
		if (n && line[n - 1] == '\r' && nl)
			line[n - 1] = '\0';
		wc_control_handle(wc, line, reply, REPLY_BYTES);
		check_reply(line, reply);
		nr++;
		i += n + 1;
	}
	return nr;
}

/* Read replies until EOF; returns the number of lines. A silent server is a hang. */
static unsigned read_replies(int fd)
{
	char buf[4096];
	unsigned lines = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, 10000);
		ssize_t n;

		FUZZ_CHECK(r > 0, "%s", "no reply from the control socket in 10 s");
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t k = 0; k < n; k++)
			lines += buf[k] == '\n';
	}
	return lines;
}

static unsigned over_socket(const uint8_t *data, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned lines;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	size_t off = 0;

	FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
	memcpy(sa.sun_path, sock_path, sizeof(sa.sun_path));
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
		   strerror(errno));
	/* The server may close early (a too-long request): stop sending then. */
	while (off < len) {
		ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		off += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	lines = read_replies(fd);
	close(fd);
	return lines;
}

void fuzz_one(const uint8_t *data, size_t len)
{
	bool too_long;
	unsigned nr, got;

	if (!wc)
		start_server();
	/* The cache lives as long as the process; keep at least its counters from piling up. */
	wcache_message(wc, "clear_stats");
	nr = direct(data, len, &too_long);
	got = over_socket(data, len);
	if (!too_long)
		FUZZ_CHECK(got == nr, "%u request lines, %u replies", nr, got);
}
