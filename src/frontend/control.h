/* SPDX-License-Identifier: MIT */
/*
 * Control socket server shared by the frontends (nbdkit plugin, FUSE export):
 * a unix stream socket, mode 0600, on which a running server answers
 * one-line requests with one-line replies (protocol in control_proto.h).
 * Uses only the public wcache.h API.
 */
#ifndef WC_FRONTEND_CONTROL_H
#define WC_FRONTEND_CONTROL_H

#include <stddef.h>

#include "control_proto.h"

struct wcache;
struct wc_control;

/*
 * Create, bind (mode 0600) and listen on the socket at path; no thread yet,
 * so this may run before a fork. A stale socket (nobody accepting) is
 * replaced; a live one or a non-socket file is an error. Returns 0 or
 * -errno with a message in err (-EADDRINUSE, -EEXIST, -ENAMETOOLONG, ...).
 */
int wc_control_listen(const char *path, struct wc_control **out, char *err, size_t err_len);

/*
 * Start answering requests for wc in a background thread (after any fork).
 * Returns 0 or -errno with a message in err.
 */
int wc_control_run(struct wc_control *ctl, struct wcache *wc, char *err, size_t err_len);

/* wc_control_listen + wc_control_run. */
int wc_control_start(const char *path, struct wcache *wc, struct wc_control **out, char *err,
		     size_t err_len);

/*
 * Stop the thread, disconnect clients (waiting for requests in progress,
 * e.g. "message flush") and free ctl. The socket file is removed only by the
 * process that ran the server thread, and only if it is still ours. NULL is
 * a no-op. Call before wcache_close().
 */
void wc_control_stop(struct wc_control *ctl);

/*
 * Answer one request line (without newline) into reply (without newline);
 * what a client gets back. Exposed for tests and in-process callers.
 */
void wc_control_handle(struct wcache *wc, const char *req, char *reply, size_t reply_len);

#endif
