/* SPDX-License-Identifier: MIT */
/*
 * Control socket server (control.h; protocol in control_proto.h). One
 * accept thread plus one thread per client (at most CTL_MAX_CLIENTS), so a
 * long "message flush" does not hold up "status" from another client. Idle
 * clients cannot hog the slots: one that sends no complete request for
 * WC_CONTROL_IDLE_SEC is closed, and when every slot is taken a new client
 * takes the place of the one idle longest. Uses only wcache.h; never touches
 * engine internals.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "wcache.h"
#include "control.h"
#include "metrics.h"

#define CTL_MAX_CLIENTS 16
#define CTL_STR_(x) #x
#define CTL_STR(x) CTL_STR_(x)	/* a number macro as a string literal */
#define CTL_REPLY_BYTES WC_CONTROL_MAX_REPLY
/* How long a new client waits for an evicted idle one to leave its slot. */
#define CTL_EVICT_WAIT_MS 2000

enum slot_state { SLOT_FREE, SLOT_RESERVED, SLOT_ACTIVE, SLOT_DONE };

struct ctl_slot {
	struct wc_control *ctl;
	enum slot_state state;	/* ctl->lock */
	int fd;			/* ctl->lock; -1 when closed */
	pthread_t thread;	/* valid in ACTIVE and DONE */
	bool busy;		/* ctl->lock; answering a request: never evicted */
	bool evicted;		/* ctl->lock; its slot was given to a new client */
	uint64_t idle_since_ns;	/* ctl->lock; connect or last reply, CLOCK_MONOTONIC */
};

struct wc_control {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;
	int wake[2];		/* stop -> accept thread */
	dev_t sock_dev;		/* identity of the socket file we bound */
	ino_t sock_ino;
	struct wcache *wc;
	pthread_t thread;
	bool running;
	pid_t run_pid;
	pthread_mutex_t lock;
	pthread_cond_t slot_done;	/* a client thread ended (with ctl->lock) */
	struct ctl_slot slots[CTL_MAX_CLIENTS];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 4, 5)))
static int ctl_err(char *err, size_t err_len, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && err_len) {
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* Write all of buf; MSG_NOSIGNAL so a vanished client cannot raise SIGPIPE. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_line(int fd, const char *line)
{
	int ret = send_all(fd, line, strlen(line));

	return ret ? ret : send_all(fd, "\n", 1);
}

/* ---------------------------------------------------------------- requests */

struct jbuf {
	char *buf;
	size_t len, pos;
};

__attribute__((format(printf, 2, 3)))
static void jb_add(struct jbuf *b, const char *fmt, ...)
{
	size_t room = b->pos < b->len ? b->len - b->pos : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? b->buf + b->pos : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->pos += (size_t)n;
}

static void format_stats(struct wcache *wc, bool json, char *reply, size_t len)
{
	struct jbuf b = { .buf = reply, .len = len, .pos = 0 };
	struct wc_stats s;
	size_t i;

	wcache_get_stats(wc, &s);
	const struct {
		const char *name;
		uint64_t v;
	} f[] = {
#define F(x) { #x, s.x }
		{ "size", 0 }, { "block_size", 0 },
		F(reads), F(read_hits), F(writes), F(write_hits_uncommitted),
		F(write_hits_committed), F(writes_around), F(writes_allocate),
		F(writes_blocked_on_freelist), F(flushes), F(discards), F(n_blocks),
		F(free_blocks), F(writeback_blocks), F(dirty_blocks), F(commits), F(fua_writes),
		F(rmw_writes), F(writeback_runs), F(writeback_blocks_done), F(full_waits),
		F(full_wait_ns), F(seq_count), F(origin_lag_commits), F(origin_lag_ms),
#undef F
	};

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		uint64_t v = f[i].v;

		if (i == 0)
			v = wcache_size(wc);
		else if (i == 1)
			v = wcache_block_size(wc);
		if (json)
			jb_add(&b, "%s\"%s\":%" PRIu64, i ? "," : "{", f[i].name, v);
		else
			jb_add(&b, "%s%s=%" PRIu64, i ? " " : "", f[i].name, v);
	}
	if (json)
		jb_add(&b, ",\"error\":%d}", s.error);
	else
		jb_add(&b, " error=%d", s.error);
	if (b.pos >= len)
		snprintf(reply, len, WC_CTL_ERROR "reply too long");
}

void wc_control_handle(struct wcache *wc, const char *req, char *reply, size_t len)
{
	char cmd[32];
	const char *arg;
	size_t n, alen;
	int ret;

	while (*req == ' ' || *req == '\t')
		req++;
	n = strcspn(req, " \t");
	if (n == 0) {
		snprintf(reply, len, WC_CTL_ERROR "empty request");
		return;
	}
	if (n >= sizeof(cmd)) {
		snprintf(reply, len, WC_CTL_ERROR "unknown command '%.*s...'", 16, req);
		return;
	}
	memcpy(cmd, req, n);
	cmd[n] = '\0';
	arg = req + n;
	while (*arg == ' ' || *arg == '\t')
		arg++;
	alen = strlen(arg);
	while (alen && (arg[alen - 1] == ' ' || arg[alen - 1] == '\t'))
		alen--;

	if (!strcmp(cmd, WC_CTL_STATUS) || !strcmp(cmd, WC_CTL_TABLE)) {
		if (alen) {
			snprintf(reply, len, WC_CTL_ERROR "%s takes no arguments", cmd);
			return;
		}
		ret = !strcmp(cmd, WC_CTL_STATUS) ? wcache_status(wc, reply, len) :
						    wcache_table(wc, reply, len);
		if (ret < 0)
			snprintf(reply, len, WC_CTL_ERROR "%s: %s", cmd, wcache_last_error());
	} else if (!strcmp(cmd, WC_CTL_STATS)) {
		if (alen == 0)
			format_stats(wc, false, reply, len);
		else if (alen == strlen(WC_CTL_STATS_JSON) &&
			 !strncmp(arg, WC_CTL_STATS_JSON, alen))
			format_stats(wc, true, reply, len);
		else
			snprintf(reply, len,
				 WC_CTL_ERROR "stats: unknown argument '%.*s' (try --json)",
				 (int)(alen > 64 ? 64 : alen), arg);
	} else if (!strcmp(cmd, WC_CTL_MESSAGE)) {
		char msg[WC_CONTROL_MAX_LINE + 1];

		if (alen == 0) {
			snprintf(reply, len, WC_CTL_ERROR "message: which one? (flush, "
				 "flush_on_suspend, cleaner, clear_stats)");
			return;
		}
		snprintf(msg, sizeof(msg), "%.*s", (int)alen, arg);
		ret = wcache_message(wc, msg);
		if (ret < 0)
			snprintf(reply, len, WC_CTL_ERROR "%s", wcache_last_error());
		else
			snprintf(reply, len, WC_CTL_OK);
	} else if (!strcmp(cmd, WC_CTL_METRICS)) {
		/* The socket server answers it (multi-line); a one-line caller cannot. */
		snprintf(reply, len, WC_CTL_ERROR "metrics %s", alen ? "takes no arguments" :
			 "is answered on the control socket only (multi-line reply)");
	} else if (!strcmp(cmd, WC_CTL_PERSIST)) {
		snprintf(reply, len, "%s", wcache_persistence(wc));
	} else if (!strcmp(cmd, WC_CTL_HELP)) {
		snprintf(reply, len, "commands: status, table, stats [--json], metrics, persistence, "
			 "message flush|flush_on_suspend|cleaner|clear_stats");
	} else {
		snprintf(reply, len, WC_CTL_ERROR "unknown command '%s' (status, table, stats "
			 "[--json], metrics, persistence, message MSG, help)", cmd);
	}
}

/* The one multi-line reply: metrics text, then the WC_CTL_METRICS_END line. */
static bool is_metrics_request(const char *req)
{
	size_t n = strlen(WC_CTL_METRICS);

	while (*req == ' ' || *req == '\t')
		req++;
	if (strncmp(req, WC_CTL_METRICS, n))
		return false;
	req += n;
	while (*req == ' ' || *req == '\t')
		req++;
	return !*req;
}

static int send_metrics(struct wcache *wc, int fd)
{
	char *text = NULL;
	int n = wc_metrics_text(wc, &text), ret;

	if (n < 0)
		return send_line(fd, WC_CTL_ERROR "metrics: out of memory");
	ret = send_all(fd, text, (size_t)n);
	free(text);
	return ret ? ret : send_line(fd, WC_CTL_METRICS_END);
}

/* Answer one request line on fd. */
static int answer(struct wc_control *ctl, int fd, const char *req, char *reply)
{
	if (is_metrics_request(req))
		return send_metrics(ctl->wc, fd);
	wc_control_handle(ctl->wc, req, reply, CTL_REPLY_BYTES);
	return send_line(fd, reply);
}

/* ------------------------------------------------------------------ threads */

static bool peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t sl = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &sl) < 0)
		return false;
	return cr.uid == 0 || cr.uid == geteuid();
}

/* Busy slots are never evicted; the idle clock restarts after each reply. */
static void slot_set_busy(struct ctl_slot *slot, bool busy)
{
	pthread_mutex_lock(&slot->ctl->lock);
	slot->busy = busy;
	if (!busy)
		slot->idle_since_ns = now_ns();
	pthread_mutex_unlock(&slot->ctl->lock);
}

/* Answer every complete line in buf[0..*have); keep the partial rest. */
static int serve_lines(struct ctl_slot *slot, int fd, char *buf, size_t *have, char *reply)
{
	char *nl;
	int ret = 0;

	if (!memchr(buf, '\n', *have))
		return 0;
	slot_set_busy(slot, true);
	while ((nl = memchr(buf, '\n', *have))) {
		size_t line = (size_t)(nl - buf);

		*nl = '\0';
		if (line && buf[line - 1] == '\r')
			buf[line - 1] = '\0';
		ret = answer(slot->ctl, fd, buf, reply);
		if (ret)
			break;
		*have -= line + 1;
		memmove(buf, nl + 1, *have);
	}
	slot_set_busy(slot, false);
	return ret;
}

/*
 * Wait until fd is readable, or the client has been idle (no complete
 * request) for WC_CONTROL_IDLE_SEC: partial lines do not restart the clock,
 * so trickling bytes cannot hold a slot either. Returns 1 readable, 0 idle
 * too long, -errno.
 */
static int wait_request(struct ctl_slot *slot, int fd)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t since, now = now_ns(), limit = (uint64_t)WC_CONTROL_IDLE_SEC * 1000000000u;
		int ret;

		pthread_mutex_lock(&slot->ctl->lock);
		since = slot->idle_since_ns;
		pthread_mutex_unlock(&slot->ctl->lock);
		if (now - since >= limit)
			return 0;
		ret = poll(&p, 1, (int)((limit - (now - since)) / 1000000u) + 1);
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ret > 0)
			return 1;
	}
}

static void *client_main(void *opaque)
{
	struct ctl_slot *slot = opaque;
	struct wc_control *ctl = slot->ctl;
	char buf[WC_CONTROL_MAX_LINE + 2];
	char *reply = malloc(CTL_REPLY_BYTES);
	size_t have = 0;
	bool evicted;
	int fd = slot->fd;	/* stable until we close it below */

	if (!reply) {
		send_line(fd, WC_CTL_ERROR "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n;
		int ret = wait_request(slot, fd);

		if (ret == 0) {
			/* Tell a client that comes back why its connection is gone. */
			send_line(fd, WC_CTL_ERROR "closing a control connection idle for "
				  CTL_STR(WC_CONTROL_IDLE_SEC) " s; reconnect");
			have = 0;
			break;
		}
		if (ret < 0)
			break;
		n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
		if (serve_lines(slot, fd, buf, &have, reply))
			break;
		if (have >= sizeof(buf) - 1) {
			send_line(fd, WC_CTL_ERROR "request too long");
			have = 0;
			break;
		}
	}
	pthread_mutex_lock(&ctl->lock);
	evicted = slot->evicted;
	pthread_mutex_unlock(&ctl->lock);
	if (evicted) {
		/* Only our read side was shut down: the client can still read why. */
		send_line(fd, WC_CTL_ERROR "too many control clients: this idle connection was "
			  "closed to make room for a new one; reconnect");
	} else if (have) {
		/* Last request without a newline ("printf status | socat ..."). */
		buf[have] = '\0';
		answer(ctl, fd, buf, reply);
	}
out:
	free(reply);
	pthread_mutex_lock(&ctl->lock);
	close(slot->fd);
	slot->fd = -1;
	slot->state = SLOT_DONE;
	pthread_cond_broadcast(&ctl->slot_done);
	pthread_mutex_unlock(&ctl->lock);
	return NULL;
}

/* Create a thread with all signals blocked: signals belong to the host program. */
static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -ret;
}

/* A FREE or DONE slot, reserved; *join if its old thread must be joined. ctl->lock held. */
static struct ctl_slot *reserve_slot(struct wc_control *ctl, bool *join)
{
	int i;

	for (i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (ctl->slots[i].state == SLOT_FREE) {
			*join = false;
			ctl->slots[i].state = SLOT_RESERVED;
			return &ctl->slots[i];
		}
	}
	for (i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (ctl->slots[i].state == SLOT_DONE) {
			*join = true;
			ctl->slots[i].state = SLOT_RESERVED;
			return &ctl->slots[i];
		}
	}
	return NULL;
}

/*
 * All slots taken: close the client idle longest (not answering a request)
 * and wait a little for its thread to leave. Shutting down only the read
 * side ends its wait; it can still send the reason. ctl->lock held.
 */
static struct ctl_slot *evict_idle(struct wc_control *ctl, bool *join)
{
	struct ctl_slot *victim = NULL, *slot;
	struct timespec until;
	int i;

	for (i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_slot *s = &ctl->slots[i];

		if (s->state == SLOT_ACTIVE && !s->busy && !s->evicted && s->fd >= 0 &&
		    (!victim || s->idle_since_ns < victim->idle_since_ns))
			victim = s;
	}
	if (victim) {
		victim->evicted = true;
		shutdown(victim->fd, SHUT_RD);
	}
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += CTL_EVICT_WAIT_MS / 1000;
	until.tv_nsec += (CTL_EVICT_WAIT_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (!(slot = reserve_slot(ctl, join))) {
		if (pthread_cond_timedwait(&ctl->slot_done, &ctl->lock, &until))
			break;
	}
	return slot;
}

static void add_client(struct wc_control *ctl, int fd)
{
	struct ctl_slot *slot = NULL;
	bool join = false;

	pthread_mutex_lock(&ctl->lock);
	slot = reserve_slot(ctl, &join);
	if (!slot)
		slot = evict_idle(ctl, &join);
	pthread_mutex_unlock(&ctl->lock);

	if (!slot) {
		send_line(fd, WC_CTL_ERROR "too many control clients (" CTL_STR(CTL_MAX_CLIENTS)
			  " answering requests); retry later");
		close(fd);
		return;
	}
	if (join)
		pthread_join(slot->thread, NULL);
	pthread_mutex_lock(&ctl->lock);
	slot->fd = fd;
	slot->state = SLOT_ACTIVE;	/* before the thread can set DONE */
	slot->busy = false;
	slot->evicted = false;
	slot->idle_since_ns = now_ns();
	pthread_mutex_unlock(&ctl->lock);
	if (spawn(&slot->thread, client_main, slot)) {
		send_line(fd, WC_CTL_ERROR "cannot start a thread");
		pthread_mutex_lock(&ctl->lock);
		close(fd);
		slot->fd = -1;
		slot->state = SLOT_FREE;
		pthread_mutex_unlock(&ctl->lock);
	}
}

static void *accept_main(void *opaque)
{
	struct wc_control *ctl = opaque;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = ctl->listen_fd, .events = POLLIN },
			{ .fd = ctl->wake[0], .events = POLLIN },
		};
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(ctl->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of fds: back off instead of spinning on a ready listen socket. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
				poll(NULL, 0, 100);
			continue;
		}
		if (!peer_allowed(fd)) {
			send_line(fd, WC_CTL_ERROR "permission denied");
			close(fd);
			continue;
		}
		add_client(ctl, fd);
	}
	return NULL;
}

/* --------------------------------------------------------------- lifecycle */

/* Remove a stale socket at path; refuse a live one or anything else. */
static int clear_stale(const char *path, const struct sockaddr_un *sa, char *err, size_t err_len)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return ctl_err(err, err_len, -errno, "control socket %s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return ctl_err(err, err_len, -EEXIST,
			       "control socket %s: file exists and is not a socket; not replacing it",
			       path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ctl_err(err, err_len, -errno, "control socket: %s", strerror(errno));
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (ret == 0)
		return ctl_err(err, err_len, -EADDRINUSE,
			       "control socket %s is in use by another running server", path);
	if (errno != ECONNREFUSED)
		return ctl_err(err, err_len, -errno, "control socket %s: %s", path,
			       strerror(errno));
	if (unlink(path) < 0 && errno != ENOENT)
		return ctl_err(err, err_len, -errno, "control socket %s: cannot remove stale socket: %s",
			       path, strerror(errno));
	return 0;
}

int wc_control_listen(const char *path, struct wc_control **out, char *err, size_t err_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct wc_control *ctl;
	pthread_condattr_t ca;
	struct stat st;
	size_t plen;
	int ret, i;

	if (!path || !*path)
		return ctl_err(err, err_len, -EINVAL, "control socket: no path given");
	plen = strlen(path);
	if (plen >= sizeof(sa.sun_path))
		return ctl_err(err, err_len, -ENAMETOOLONG,
			       "control socket path %s is too long (%zu bytes, max %zu)", path, plen,
			       sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, plen + 1);
	ret = clear_stale(path, &sa, err, err_len);
	if (ret)
		return ret;

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return ctl_err(err, err_len, -ENOMEM, "control socket: out of memory");
	memcpy(ctl->path, path, plen + 1);
	ctl->wake[0] = ctl->wake[1] = -1;
	for (i = 0; i < CTL_MAX_CLIENTS; i++) {
		ctl->slots[i].ctl = ctl;
		ctl->slots[i].fd = -1;
	}
	ctl->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl->listen_fd < 0) {
		ret = ctl_err(err, err_len, -errno, "control socket: %s", strerror(errno));
		goto out_free;
	}
	if (bind(ctl->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = ctl_err(err, err_len, -errno, "control socket %s: bind: %s", path,
			      strerror(errno));
		goto out_close;
	}
	/* Restrict before listen(): until then every connect() is refused. */
	if (chmod(path, 0600) < 0 || stat(path, &st) < 0) {
		ret = ctl_err(err, err_len, -errno, "control socket %s: %s", path, strerror(errno));
		goto out_unlink;
	}
	ctl->sock_dev = st.st_dev;
	ctl->sock_ino = st.st_ino;
	if (listen(ctl->listen_fd, 8) < 0 || pipe2(ctl->wake, O_CLOEXEC) < 0) {
		ret = ctl_err(err, err_len, -errno, "control socket %s: %s", path, strerror(errno));
		goto out_unlink;
	}
	pthread_mutex_init(&ctl->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ctl->slot_done, &ca);
	pthread_condattr_destroy(&ca);
	*out = ctl;
	return 0;

out_unlink:
	unlink(path);
out_close:
	close(ctl->listen_fd);
out_free:
	free(ctl);
	return ret;
}

int wc_control_run(struct wc_control *ctl, struct wcache *wc, char *err, size_t err_len)
{
	int ret;

	if (ctl->running)
		return ctl_err(err, err_len, -EALREADY, "control socket %s: already running",
			       ctl->path);
	ctl->wc = wc;
	ret = spawn(&ctl->thread, accept_main, ctl);
	if (ret)
		return ctl_err(err, err_len, ret, "control socket %s: cannot start thread: %s",
			       ctl->path, strerror(-ret));
	ctl->running = true;
	ctl->run_pid = getpid();
	return 0;
}

int wc_control_start(const char *path, struct wcache *wc, struct wc_control **out, char *err,
		     size_t err_len)
{
	struct wc_control *ctl;
	int ret = wc_control_listen(path, &ctl, err, err_len);

	if (ret)
		return ret;
	ret = wc_control_run(ctl, wc, err, err_len);
	if (ret) {
		wc_control_stop(ctl);
		return ret;
	}
	*out = ctl;
	return 0;
}

void wc_control_stop(struct wc_control *ctl)
{
	bool join[CTL_MAX_CLIENTS];
	struct stat st;
	int i;

	if (!ctl)
		return;
	/* A forked copy (e.g. the parent of a daemon) must not touch the server's socket. */
	if (ctl->running && ctl->run_pid == getpid()) {
		ssize_t n;

		do
			n = write(ctl->wake[1], "x", 1);
		while (n < 0 && errno == EINTR);
		pthread_join(ctl->thread, NULL);

		pthread_mutex_lock(&ctl->lock);
		for (i = 0; i < CTL_MAX_CLIENTS; i++) {
			struct ctl_slot *s = &ctl->slots[i];

			if (s->state == SLOT_ACTIVE && s->fd >= 0)
				shutdown(s->fd, SHUT_RDWR);
			join[i] = s->state == SLOT_ACTIVE || s->state == SLOT_DONE;
		}
		pthread_mutex_unlock(&ctl->lock);
		/* No new clients now; wait for requests in progress (e.g. message flush). */
		for (i = 0; i < CTL_MAX_CLIENTS; i++) {
			if (join[i])
				pthread_join(ctl->slots[i].thread, NULL);
		}
		if (stat(ctl->path, &st) == 0 && st.st_dev == ctl->sock_dev &&
		    st.st_ino == ctl->sock_ino)
			unlink(ctl->path);
	}
	close(ctl->listen_fd);
	close(ctl->wake[0]);
	close(ctl->wake[1]);
	pthread_mutex_destroy(&ctl->lock);
	pthread_cond_destroy(&ctl->slot_done);
	free(ctl);
}
