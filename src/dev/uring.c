/* SPDX-License-Identifier: MIT */
/*
 * io_uring with a completion thread (see uring.h). Submitters share the
 * submission queue under u->lock; the completion thread alone reaps the
 * completion queue, so the two sides of the ring never need one lock
 * (liburing's SQ and CQ helpers touch disjoint state). nr_inflight never
 * exceeds the ring depth, so the completion queue (twice the depth) cannot
 * overflow.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "uring.h"

#define URING_BATCH 64	/* CQEs reaped per pass */

struct wc_uring {
	struct io_uring ring;
	const struct wc_uring_ops *ops;
	void *ctx;
	char name[256];
	pthread_t thread;
	pthread_mutex_t lock;		/* the submission queue and the fields below */
	unsigned depth;
	unsigned nr_inflight;		/* lock: SQEs issued whose CQE is not reaped yet */
	struct wc_io *backlog;		/* lock: waiting for room, oldest first */
	struct wc_io **backlog_tail;	/* lock */
};

/* Hand every prepared SQE to the kernel. Called with u->lock held. */
static void uring_enter_locked(struct wc_uring *u)
{
	while (io_uring_sq_ready(&u->ring)) {
		int ret = io_uring_submit(&u->ring);

		if (ret > 0 || ret == -EINTR)
			continue;
		/*
		 * No room for request structures in the kernel (EAGAIN), or a
		 * completion queue overflow (EBUSY; cannot happen while
		 * nr_inflight <= depth). The SQEs stay queued: try again shortly.
		 */
		if (ret == 0 || ret == -EAGAIN || ret == -EBUSY) {
			usleep(100);
			continue;
		}
		wc_log(WC_LOG_ERROR, "%s: io_uring_submit failed: %s", u->name, strerror(-ret));
		WC_BUG_ON(ret < 0);
	}
}

/*
 * The ring whose completion thread this is, if any. Requests submitted from
 * its completion callbacks are only prepared; the thread hands all of them
 * to the kernel with one io_uring_submit after the batch of callbacks.
 */
static __thread struct wc_uring *uring_reaping;

/* Move backlogged requests into SQEs while the ring has room. Under u->lock. */
static void uring_fill_locked(struct wc_uring *u)
{
	while (u->backlog && u->nr_inflight < u->depth) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
		struct wc_io *io = u->backlog;

		WC_BUG_ON(!sqe);	/* the SQ has depth entries and at most depth are issued */
		u->backlog = io->next;
		if (!u->backlog)
			u->backlog_tail = &u->backlog;
		u->ops->prep(u->ctx, sqe, io);
		io_uring_sqe_set_data(sqe, io);
		u->nr_inflight++;
	}
}

void uring_submit(struct wc_uring *u, struct wc_io *list)
{
	if (!list)
		return;
	pthread_mutex_lock(&u->lock);
	*u->backlog_tail = list;
	while (list->next)
		list = list->next;
	u->backlog_tail = &list->next;
	uring_fill_locked(u);
	if (uring_reaping != u)
		uring_enter_locked(u);
	pthread_mutex_unlock(&u->lock);
}

/*
 * Reap CQEs in batches; refill the ring from the backlog before running the
 * hooks, so the device stays busy while completion callbacks run; then
 * submit what the hooks and their callbacks queued with one io_uring_submit.
 * A CQE with no request (user_data 0) is uring_close's stop signal.
 */
static void *uring_thread(void *arg)
{
	struct wc_uring *u = arg;
	struct {
		struct wc_io *io;
		int res;
	} batch[URING_BATCH];
	bool stop = false;

	uring_reaping = u;
	while (!stop) {
		struct wc_io *again = NULL, **tail = &again;
		struct io_uring_cqe *cqe;
		unsigned head, n = 0, i;
		int ret = io_uring_wait_cqe(&u->ring, &cqe);

		if (ret == -EINTR || ret == -EAGAIN)
			continue;
		if (ret < 0) {
			wc_log(WC_LOG_ERROR, "%s: io_uring_wait_cqe failed: %s", u->name,
			       strerror(-ret));
			WC_BUG_ON(ret < 0);
		}
		io_uring_for_each_cqe(&u->ring, head, cqe) {
			if (n == URING_BATCH)
				break;
			batch[n].io = io_uring_cqe_get_data(cqe);
			batch[n++].res = cqe->res;
		}
		io_uring_cq_advance(&u->ring, n);
		/* The lock also orders the submitter's writes to each io before our reads. */
		pthread_mutex_lock(&u->lock);
		for (i = 0; i < n; i++) {
			if (batch[i].io)
				u->nr_inflight--;
			else
				stop = true;
		}
		uring_fill_locked(u);
		uring_enter_locked(u);
		pthread_mutex_unlock(&u->lock);
		for (i = 0; i < n; i++) {
			struct wc_io *io = batch[i].io;

			if (io && u->ops->complete(u->ctx, io, batch[i].res)) {
				*tail = io;
				tail = &io->next;
			}
		}
		*tail = NULL;
		uring_submit(u, again);
		pthread_mutex_lock(&u->lock);
		uring_enter_locked(u);
		pthread_mutex_unlock(&u->lock);
	}
	return NULL;
}

int uring_open(unsigned depth, const struct wc_uring_ops *ops, void *ctx, const char *name,
	       struct wc_uring **out)
{
	struct wc_uring *u = calloc(1, sizeof(*u));
	int ret;

	if (!u)
		return -ENOMEM;
	ret = io_uring_queue_init(depth, &u->ring, 0);
	if (ret < 0)
		goto out_free;
	u->ops = ops;
	u->ctx = ctx;
	u->depth = depth;
	u->backlog_tail = &u->backlog;
	snprintf(u->name, sizeof(u->name), "%s", name);
	pthread_mutex_init(&u->lock, NULL);
	ret = -pthread_create(&u->thread, NULL, uring_thread, u);
	if (ret < 0)
		goto out_exit;
	pthread_setname_np(u->thread, "wc-uring");
	*out = u;
	return 0;

out_exit:
	pthread_mutex_destroy(&u->lock);
	io_uring_queue_exit(&u->ring);
out_free:
	free(u);
	return ret;
}

void uring_close(struct wc_uring *u)
{
	struct io_uring_sqe *sqe;

	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	WC_BUG_ON(u->nr_inflight || u->backlog);
	sqe = io_uring_get_sqe(&u->ring);
	WC_BUG_ON(!sqe);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data(sqe, NULL);
	uring_enter_locked(u);
	pthread_mutex_unlock(&u->lock);
	pthread_join(u->thread, NULL);
	io_uring_queue_exit(&u->ring);
	pthread_mutex_destroy(&u->lock);
	free(u);
}
