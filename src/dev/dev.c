/* SPDX-License-Identifier: MIT */
/*
 * Device dispatch: the one place that range-checks I/O and handles NULL
 * hooks before calling a backend. Backends may assume every request they
 * see is non-empty and lies inside [0, dev->size).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "dev.h"

static int dev_check_range(struct wc_dev *dev, const char *what, uint64_t len, uint64_t off)
{
	if (off <= dev->size && len <= dev->size - off)
		return 0;
	return wc_err(-EINVAL, "%s: %s of %" PRIu64 " bytes at offset %" PRIu64
		      " is past the end of the device (%" PRIu64 " bytes)",
		      dev->name, what, len, off, dev->size);
}

/* ---------------- asynchronous requests ---------------- */

bool dev_is_async(const struct wc_dev *dev)
{
	return dev->ops->submit != NULL;
}

/* A backend without submit: run the request here and now. */
static int dev_run_sync(struct wc_dev *dev, struct wc_io *io)
{
	switch (io->op) {
	case WC_IO_READ:
		return dev->ops->pread(dev, io->buf, io->len, io->off);
	case WC_IO_WRITE:
		return dev->ops->pwrite(dev, io->buf, io->len, io->off);
	case WC_IO_FLUSH:
		return dev->ops->flush ? dev->ops->flush(dev) : 0;
	case WC_IO_DISCARD:
		return dev->ops->discard ? dev->ops->discard(dev, io->len, io->off) : 0;
	}
	return -EINVAL;
}

void dev_io_end(struct wc_io *io, int result)
{
	if (result && io->msg && io->msg_len)
		snprintf(io->msg, io->msg_len, "%s", wcache_last_error());
	io->done(io, result);
}

static const char *const io_op_names[] = { "read", "write", "flush", "discard" };

void dev_submit(struct wc_dev *dev, struct wc_io **ios, unsigned n)
{
	unsigned keep = 0;

	for (unsigned i = 0; i < n; i++) {
		struct wc_io *io = ios[i];
		int ret = 0;

		if (io->op != WC_IO_FLUSH)
			ret = dev_check_range(dev, io_op_names[io->op], io->len, io->off);
		if (ret) {
			dev_io_end(io, ret);
			continue;
		}
		if (io->op != WC_IO_FLUSH && io->len == 0) {
			io->done(io, 0);
			continue;
		}
		/* (A missing flush or discard hook succeeds there, as in the synchronous calls.) */
		if (!dev->ops->submit) {
			dev_io_end(io, dev_run_sync(dev, io));
			continue;
		}
		ios[keep++] = io;	/* compact in place: the caller's array is ours until we return */
	}
	if (keep)
		dev->ops->submit(dev, ios, keep);
}

void wc_io_wait_init(struct wc_io_wait *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->pending = 0;
	w->err = 0;
}

void wc_io_wait_add(struct wc_io_wait *w, unsigned n)
{
	pthread_mutex_lock(&w->lock);
	w->pending += n;
	pthread_mutex_unlock(&w->lock);
}

void wc_io_wait_done(struct wc_io *io, int result)
{
	struct wc_io_wait *w = io->opaque;

	pthread_mutex_lock(&w->lock);
	if (result && !w->err)
		w->err = result;
	if (--w->pending == 0)
		pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int wc_io_wait_end(struct wc_io_wait *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->pending)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	return w->err;
}

/*
 * A synchronous call on a backend that only submits. The backend's
 * message (set in its completion thread) is repeated on this thread.
 */
static int dev_wait_one(struct wc_dev *dev, enum wc_io_op op, void *buf, uint64_t len, uint64_t off)
{
	struct wc_io_wait w;
	char msg[512] = "";
	struct wc_io io = { .op = op, .buf = buf, .len = len, .off = off,
			    .done = wc_io_wait_done, .opaque = &w, .msg = msg, .msg_len = sizeof(msg) };
	struct wc_io *p = &io;
	int ret;

	wc_io_wait_init(&w);
	wc_io_wait_add(&w, 1);
	dev->ops->submit(dev, &p, 1);
	ret = wc_io_wait_end(&w);
	if (ret && msg[0])
		wc_err(ret, "%s", msg);
	else if (ret)
		wc_err(ret, "%s: %s of %" PRIu64 " bytes at offset %" PRIu64 " failed: %s",
		       dev->name, io_op_names[op], len, off, strerror(-ret));
	return ret;
}

/* ---------------- synchronous calls ---------------- */

int dev_pread(struct wc_dev *dev, void *buf, size_t len, uint64_t off)
{
	int ret = dev_check_range(dev, "read", len, off);

	if (ret < 0 || len == 0)
		return ret;
	if (!dev->ops->pread)
		return dev_wait_one(dev, WC_IO_READ, buf, len, off);
	return dev->ops->pread(dev, buf, len, off);
}

int dev_pwrite(struct wc_dev *dev, const void *buf, size_t len, uint64_t off)
{
	int ret = dev_check_range(dev, "write", len, off);

	if (ret < 0 || len == 0)
		return ret;
	if (!dev->ops->pwrite)
		return dev_wait_one(dev, WC_IO_WRITE, (void *)buf, len, off);
	return dev->ops->pwrite(dev, buf, len, off);
}

int dev_flush(struct wc_dev *dev)
{
	if (!dev->ops->flush)
		return dev->ops->submit ? dev_wait_one(dev, WC_IO_FLUSH, NULL, 0, 0) : 0;
	return dev->ops->flush(dev);
}

int dev_discard(struct wc_dev *dev, uint64_t len, uint64_t off)
{
	int ret = dev_check_range(dev, "discard", len, off);

	if (ret < 0 || len == 0)
		return ret;
	if (!dev->ops->discard)
		return dev->ops->submit ? dev_wait_one(dev, WC_IO_DISCARD, NULL, len, off) : 0;
	return dev->ops->discard(dev, len, off);
}

void dev_close(struct wc_dev *dev)
{
	if (dev)
		dev->ops->close(dev);
}
