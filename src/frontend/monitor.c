/* SPDX-License-Identifier: MIT */
/*
 * Metrics file, HTTP /metrics and sd_notify for a running cache
 * (monitor.h). One thread wakes every interval to rewrite the metrics file
 * and the STATUS= line; libmicrohttpd runs its own thread and formats the
 * metrics per request. All threads start with signals blocked: they belong
 * to the host program (nbdkit, wcache fuse).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef WC_WITH_MHD
#include <microhttpd.h>
#endif

#include "wcache.h"
#include "metrics.h"
#include "monitor.h"

struct wc_monitor {
	char *metrics_file;
	unsigned interval_ms;
	int listen_fd;			/* -1: no HTTP endpoint */
	struct wcache *wc;
	char notify_path[sizeof(((struct sockaddr_un *)0)->sun_path)];	/* "" none */
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* stop -> thread */
	bool stopping;			/* lock */
	bool file_error_logged;		/* thread only */
#ifdef WC_WITH_MHD
	struct MHD_Daemon *httpd;
#endif
};

__attribute__((format(printf, 4, 5)))
static int mon_err(char *err, size_t err_len, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return ret;
}

bool wc_monitor_have_http(void)
{
#ifdef WC_WITH_MHD
	return true;
#else
	return false;
#endif
}

/* ---------------------------------------------------------------- sd_notify */

static int notify_to(const char *path, const char *state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t plen = strlen(path);
	socklen_t salen;
	int fd, ret = 0;

	if (!plen)
		return 0;
	if (plen >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int wc_sd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");

	return path ? notify_to(path, state) : 0;
}

/* "STATUS=..." for systemctl status: what an operator checks first. */
static void status_line(struct wcache *wc, char *buf, size_t len, const char *prefix)
{
	struct wc_stats s;

	wcache_get_stats(wc, &s);
	snprintf(buf, len,
		 "%sSTATUS=dirty %" PRIu64 "/%" PRIu64 " blocks (%.1f%%), writeback %" PRIu64
		 ", %s",
		 prefix, s.dirty_blocks, s.n_blocks,
		 s.n_blocks ? 100.0 * (double)s.dirty_blocks / (double)s.n_blocks : 0.0,
		 s.writeback_blocks, s.error ? "ERROR state (see the log)" : "ok");
}

/* ----------------------------------------------------------- metrics file */

static void write_metrics_file(struct wc_monitor *m)
{
	char *text = NULL, err[512];
	int n;

	if (!m->metrics_file)
		return;
	n = wc_metrics_text(m->wc, &text);
	if (n < 0) {
		snprintf(err, sizeof(err), "metrics file: out of memory");
	} else if (wc_metrics_write_file(m->metrics_file, text, (size_t)n, err, sizeof(err)) == 0) {
		m->file_error_logged = false;
		free(text);
		return;
	}
	free(text);
	/* Once per failure streak: a full disk must not flood the log. */
	if (!m->file_error_logged)
		fprintf(stderr, "wcache: warning: %s\n", err);
	m->file_error_logged = true;
}

static void *monitor_main(void *opaque)
{
	struct wc_monitor *m = opaque;
	char state[256];

	pthread_mutex_lock(&m->lock);
	while (!m->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += m->interval_ms / 1000;
		ts.tv_nsec += (long)(m->interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!m->stopping && pthread_cond_timedwait(&m->cond, &m->lock, &ts) == 0)
			;
		if (m->stopping)
			break;
		pthread_mutex_unlock(&m->lock);
		write_metrics_file(m);
		if (m->notify_path[0]) {
			status_line(m->wc, state, sizeof(state), "");
			notify_to(m->notify_path, state);
		}
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* ------------------------------------------------------------------- HTTP */

/* Parse "ADDR:PORT" ("[v6]:PORT" for IPv6) and bind a listening TCP socket. */
static int bind_listen(const char *spec, char *err, size_t err_len)
{
	struct sockaddr_storage ss = { 0 };
	char host[128];
	const char *port_s;
	size_t hlen;
	socklen_t slen;
	char *end;
	unsigned long port;
	int fd, one = 1;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (!rb || rb[1] != ':')
			goto bad;
		hlen = (size_t)(rb - spec - 1);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, spec + 1, hlen);
		port_s = rb + 2;
	} else {
		const char *colon = strrchr(spec, ':');

		if (!colon)
			goto bad;
		hlen = (size_t)(colon - spec);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, spec, hlen);
		port_s = colon + 1;
	}
	host[hlen] = '\0';
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (!*port_s || *end || errno || port > 65535)
		goto bad;
	if (!hlen)
		snprintf(host, sizeof(host), "127.0.0.1");	/* ":PORT": loopback, not all */
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		slen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		slen = sizeof(struct sockaddr_in6);
	} else {
		goto bad;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mon_err(err, err_len, -errno, "metrics-listen %s: socket: %s", spec,
			       strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, 16) < 0) {
		int e = errno;

		close(fd);
		return mon_err(err, err_len, -e, "metrics-listen %s: %s", spec, strerror(e));
	}
	return fd;
bad:
	return mon_err(err, err_len, -EINVAL,
		       "metrics-listen '%s': expected ADDR:PORT with a numeric address, e.g. "
		       "127.0.0.1:9477 or [::1]:9477", spec);
}

#ifdef WC_WITH_MHD
static enum MHD_Result http_answer(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version,
				   const char *upload_data, size_t *upload_data_size,
				   void **req_cls)
{
	struct wc_monitor *m = cls;
	struct MHD_Response *resp;
	unsigned code = MHD_HTTP_OK;
	enum MHD_Result ret;
	char *text = NULL;
	int n;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;

	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		static const char msg[] = "only GET /metrics\n";

		resp = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg,
						       MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics")) {
		static const char msg[] = "wcache: metrics are at /metrics\n";

		resp = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg,
						       MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_NOT_FOUND;
	} else {
		n = wc_metrics_text(m->wc, &text);
		if (n < 0)
			return MHD_NO;
		resp = MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			free(text);
			return MHD_NO;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					"text/plain; version=0.0.4; charset=utf-8");
	}
	if (!resp)
		return MHD_NO;
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}
#endif

/* -------------------------------------------------------------- lifecycle */

int wc_monitor_prepare(const struct wc_monitor_cfg *cfg, struct wc_monitor **out, char *err,
		       size_t err_len)
{
	struct wc_monitor *m = calloc(1, sizeof(*m));
	int ret;

	if (!m)
		return mon_err(err, err_len, -ENOMEM, "out of memory");
	m->listen_fd = -1;
	m->interval_ms = cfg->interval_ms ? cfg->interval_ms : WC_MONITOR_DEFAULT_INTERVAL_MS;
	pthread_mutex_init(&m->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&m->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (cfg->metrics_file) {
		char *copy = strdup(cfg->metrics_file), *dir;

		m->metrics_file = strdup(cfg->metrics_file);
		if (!copy || !m->metrics_file) {
			free(copy);
			ret = mon_err(err, err_len, -ENOMEM, "out of memory");
			goto fail;
		}
		dir = dirname(copy);
		if (access(dir, W_OK) < 0) {
			ret = mon_err(err, err_len, -errno, "metrics file %s: directory %s: %s",
				      cfg->metrics_file, dir, strerror(errno));
			free(copy);
			goto fail;
		}
		free(copy);
	}
	if (cfg->listen) {
		if (!wc_monitor_have_http()) {
			ret = mon_err(err, err_len, -ENOTSUP,
				      "metrics-listen: this wcache was built without libmicrohttpd; "
				      "use a metrics file or 'wcache metrics --control' instead");
			goto fail;
		}
		ret = bind_listen(cfg->listen, err, err_len);
		if (ret < 0)
			goto fail;
		m->listen_fd = ret;
	}
	*out = m;
	return 0;
fail:
	wc_monitor_stop(m);
	return ret;
}

int wc_monitor_run(struct wc_monitor *m, struct wcache *wc, char *err, size_t err_len)
{
	const char *ns = getenv("NOTIFY_SOCKET");
	sigset_t all, old;
	int ret = 0;

	m->wc = wc;
	if (ns && strlen(ns) < sizeof(m->notify_path))
		snprintf(m->notify_path, sizeof(m->notify_path), "%s", ns);
	/* Ours alone: a --run command or a shell started from here must not answer for us. */
	unsetenv("NOTIFY_SOCKET");
	write_metrics_file(m);

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
#ifdef WC_WITH_MHD
	if (m->listen_fd >= 0) {
		m->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
					    NULL, NULL, http_answer, m,
					    MHD_OPTION_LISTEN_SOCKET, m->listen_fd,
					    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
					    MHD_OPTION_END);
		if (!m->httpd)
			ret = mon_err(err, err_len, -EIO, "metrics-listen: cannot start the HTTP server");
		else
			m->listen_fd = -1;	/* MHD closes it */
	}
#endif
	/* The periodic thread only when it has something to do. */
	if (!ret && (m->metrics_file || m->notify_path[0])) {
		ret = -pthread_create(&m->thread, NULL, monitor_main, m);
		if (ret)
			mon_err(err, err_len, ret, "metrics: cannot start a thread: %s", strerror(-ret));
		else
			m->running = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

void wc_monitor_ready(struct wc_monitor *m)
{
	char state[300];

	if (!m || !m->wc)
		return;
	status_line(m->wc, state, sizeof(state), "READY=1\n");
	notify_to(m->notify_path, state);
}

void wc_monitor_stop(struct wc_monitor *m)
{
	if (!m)
		return;
	if (m->wc)
		notify_to(m->notify_path, "STOPPING=1\nSTATUS=stopping: committing and closing the cache");
	if (m->running) {
		pthread_mutex_lock(&m->lock);
		m->stopping = true;
		pthread_cond_signal(&m->cond);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
	}
#ifdef WC_WITH_MHD
	if (m->httpd)
		MHD_stop_daemon(m->httpd);
#endif
	if (m->wc)
		write_metrics_file(m);
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m->metrics_file);
	free(m);
}
