/* SPDX-License-Identifier: MIT */
/*
 * Publishing a running cache to monitoring and to the service manager,
 * shared by the nbdkit plugin and 'wcache fuse': the metrics file rewritten
 * every interval (node_exporter's textfile collector), the HTTP /metrics
 * endpoint (libmicrohttpd, when built with it), and systemd's sd_notify
 * protocol (READY=1, STATUS=, STOPPING=1) over $NOTIFY_SOCKET. Uses only
 * wcache.h.
 */
#ifndef WC_FRONTEND_MONITOR_H
#define WC_FRONTEND_MONITOR_H

#include <stdbool.h>
#include <stddef.h>

struct wcache;
struct wc_monitor;

#define WC_MONITOR_DEFAULT_INTERVAL_MS 10000

struct wc_monitor_cfg {
	const char *metrics_file;	/* NULL: none */
	const char *listen;		/* "ADDR:PORT" ("127.0.0.1:9477", "[::1]:9477"), or NULL */
	unsigned interval_ms;		/* metrics file and STATUS= period; 0: the default */
};

/* Was the HTTP endpoint compiled in (libmicrohttpd)? */
bool wc_monitor_have_http(void);

/*
 * Check cfg and bind the HTTP socket, before any fork, so mistakes reach the
 * user's terminal (bad address, port in use, metrics file directory not
 * writable). Returns 0 or -errno with a message in err.
 */
int wc_monitor_prepare(const struct wc_monitor_cfg *cfg, struct wc_monitor **out, char *err,
		       size_t err_len);

/*
 * Start publishing wc (after any fork): writes the metrics file once right
 * away, starts the HTTP server and the periodic thread, and takes over
 * $NOTIFY_SOCKET (unset, so children do not inherit it). Returns 0 or
 * -errno with a message in err.
 */
int wc_monitor_run(struct wc_monitor *m, struct wcache *wc, char *err, size_t err_len);

/* Tell systemd READY=1 (with a STATUS= line): the server now takes clients. */
void wc_monitor_ready(struct wc_monitor *m);

/*
 * Tell systemd STOPPING=1, write the metrics file one last time, stop the
 * threads and free m. Call before wcache_close(). NULL is a no-op.
 */
void wc_monitor_stop(struct wc_monitor *m);

/*
 * sd_notify: send state ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET (a path,
 * or '@' for an abstract socket). 0 when sent or no socket is set, -errno.
 */
int wc_sd_notify(const char *state);

#endif
