/* SPDX-License-Identifier: MIT */
/*
 * An io_uring with one completion thread, for a backend that turns wc_io
 * requests into SQEs (file.c). Any thread may submit (the submission queue
 * is behind a lock); only the completion thread reaps, and it calls the
 * backend's hooks outside any lock. Requests beyond the ring's depth wait in
 * a backlog that the completion thread drains: a submitter never blocks.
 * Knows nothing of files, alignment or errors: the hooks decide.
 */
#ifndef WC_URING_H
#define WC_URING_H

#include <liburing.h>
#include <stdbool.h>

#include "dev.h"

struct wc_uring;

struct wc_uring_ops {
	/* Fill sqe for the next step of io. Called under the ring lock: must not block. */
	void (*prep)(void *ctx, struct io_uring_sqe *sqe, struct wc_io *io);
	/*
	 * The CQE of io's last step, res as in cqe->res. Return true to submit
	 * io again (prep is called for its next step); false once io is finished
	 * (the hook has ended it: after that the ring does not touch io).
	 * Runs on the completion thread, no lock held.
	 */
	bool (*complete)(void *ctx, struct wc_io *io, int res);
};

/*
 * Set up a ring of depth entries (at most depth requests in flight) and
 * start its completion thread, named name in messages. -errno if
 * io_uring_queue_init or the thread fails (ENOSYS, EPERM in some containers,
 * ENOMEM); the caller falls back to something else.
 */
int uring_open(unsigned depth, const struct wc_uring_ops *ops, void *ctx, const char *name,
	       struct wc_uring **out);
/*
 * Queue the requests list, linked by io->next (the ring uses io->next while
 * the request is in flight), and submit them with one io_uring_submit as far
 * as the ring has room. Any thread. On the completion thread (a hook, or a
 * done callback) they are only prepared, and go to the kernel together with
 * everything else queued by that batch of completions.
 */
void uring_submit(struct wc_uring *u, struct wc_io *list);
/* Stop the completion thread and free the ring. Nothing may be in flight. */
void uring_close(struct wc_uring *u);

#endif
