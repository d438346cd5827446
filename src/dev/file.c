/* SPDX-License-Identifier: MIT */
/*
 * File and block-device backend. Uses O_DIRECT when the file system accepts
 * it and bounces requests that are not aligned to the logical block through
 * an aligned buffer (read-modify-write of the edge sectors); falls back to
 * buffered I/O once O_DIRECT is refused with EINVAL. flush = fdatasync.
 *
 * Two paths. The synchronous calls (file_pread ...) do the I/O in the
 * caller's thread: the fast path of a thread-per-request server. Submitted
 * requests (file_submit) are set up at the first one: an io_uring with a
 * completion thread (uring.c), or, when io_uring is not built in, cannot be
 * set up (ENOSYS, EPERM in some containers) or WC_NO_URING=1 is set, a pool
 * of up to FILE_POOL_THREADS threads running the synchronous calls. With the
 * ring:
 *  - reads, writes and flushes go to the ring, except requests O_DIRECT
 *    cannot take (buffer, offset or length not aligned to the logical block):
 *    those go to the pool, which bounces them as the synchronous path does;
 *  - a short transfer is resubmitted for the rest; a read at end of file
 *    fills the rest with zeros; EINVAL from an O_DIRECT request drops O_DIRECT
 *    (file_drop_direct) and resubmits the request buffered;
 *  - FLUSH is IORING_OP_FSYNC with IORING_FSYNC_DATASYNC. io_uring does not
 *    order it after requests in flight, so it covers the writes completed
 *    before it was submitted and maybe others: exactly the contract in dev.h;
 *  - DISCARD runs in the submitting thread (fallocate or BLKDISCARD).
 * Completions call io->done outside every lock of this file. Close waits
 * for every accepted request (and what their callbacks submit), then stops
 * the threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "dev.h"
#ifdef WC_WITH_URING
#include "uring.h"
#endif

#define BOUNCE_MAX_BYTES (1u << 20)	/* larger unaligned requests go in chunks */
#define BOUNCE_ALIGN 4096
#define FILE_URING_DEPTH 256	/* requests in flight on the ring; more wait in its backlog */
#define FILE_POOL_THREADS 4	/* threads for requests the ring cannot take */
#define FILE_SQE_MAX_BYTES (1u << 30)	/* per SQE; the rest of a request is resubmitted */

/* io->dev_priv[1] bits while a request is in flight (dev_priv[0]: bytes done). */
#define IOF_DIRECT 1u	/* the last SQE was prepared while O_DIRECT was on */
#define IOF_SHARED 2u	/* holds the rmw gate shared until it ends */

enum file_amode { FILE_ASYNC_NONE, FILE_ASYNC_URING, FILE_ASYNC_POOL };

/*
 * Under O_DIRECT a write of part of a sector rewrites the whole sector.
 * Such writes hold the gate exclusively and all other writes hold it shared,
 * so writers of different bytes of one sector never undo each other. A
 * shared hold of a write on the ring ends on the completion thread, so this
 * is a counter, not a pthread rwlock (which must be unlocked by its owner).
 * Waiting exclusive holders keep new shared ones out (no starvation);
 * file_submit only tries for it and sends the write to the pool when it
 * cannot have it at once, so neither a submitter nor the completion thread
 * ever waits here.
 */
struct rmw_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned nr_shared;	/* lock */
	unsigned nr_excl_wait;	/* lock */
	bool excl;		/* lock */
};

struct file_dev {
	struct wc_dev dev;
	int fd;
	bool is_blk;
	bool rdonly;
	bool opened_direct;	/* O_DIRECT was on at open: rmw gate needed */
	atomic_bool direct;	/* O_DIRECT still on; cleared once, on EINVAL */
	struct rmw_gate rmw;
	/* Submitted requests; the ring or the pool is set up by the first file_submit. */
	pthread_mutex_t alock;		/* starting the ring or pool, and the pool fields */
	pthread_cond_t pool_cond;	/* alock: work for the pool, or pool_stop */
	pthread_cond_t idle_cond;	/* alock: nr_outstanding reached 0 */
	_Atomic int amode;		/* enum file_amode; set once, under alock */
	atomic_uint nr_outstanding;	/* accepted by file_submit, io->done not yet returned */
#ifdef WC_WITH_URING
	struct wc_uring *uring;		/* FILE_ASYNC_URING */
#endif
	struct wc_io *pool_head;	/* alock: waiting for a pool thread, oldest first */
	struct wc_io **pool_tail;	/* alock */
	pthread_t pool[FILE_POOL_THREADS];
	unsigned nr_pool, nr_pool_idle;	/* alock */
	bool pool_stop;			/* alock */
};

static struct file_dev *to_file(struct wc_dev *dev)
{
	return dev->priv;
}

static void gate_shared(struct rmw_gate *g)
{
	pthread_mutex_lock(&g->lock);
	while (g->excl || g->nr_excl_wait)
		pthread_cond_wait(&g->cond, &g->lock);
	g->nr_shared++;
	pthread_mutex_unlock(&g->lock);
}

/* Shared hold if it can be had without waiting. */
static bool gate_try_shared(struct rmw_gate *g)
{
	bool ok;

	pthread_mutex_lock(&g->lock);
	ok = !g->excl && !g->nr_excl_wait;
	g->nr_shared += ok;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

/* Any thread may end a shared hold. */
static void gate_unshare(struct rmw_gate *g)
{
	pthread_mutex_lock(&g->lock);
	WC_BUG_ON(!g->nr_shared);
	if (--g->nr_shared == 0 && g->nr_excl_wait)
		pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void gate_excl(struct rmw_gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->nr_excl_wait++;
	while (g->excl || g->nr_shared)
		pthread_cond_wait(&g->cond, &g->lock);
	g->nr_excl_wait--;
	g->excl = true;
	pthread_mutex_unlock(&g->lock);
}

static void gate_unexcl(struct rmw_gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->excl = false;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* Read exactly len bytes; the part past end of file reads as zeros. */
static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			memset(buf, 0, len);
			return 0;
		}
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		off += n;
		len -= n;
	}
	return 0;
}

static bool is_aligned(const struct file_dev *f, const void *buf, size_t len, uint64_t off)
{
	return (((uintptr_t)buf | len | off) & (f->dev.logical_block - 1)) == 0;
}

/*
 * O_DIRECT I/O for a request whose buffer, offset or length is unaligned:
 * exactly one of rd (read into) and wr (write from) is non-NULL.
 */
static int bounce_rw(struct file_dev *f, uint8_t *rd, const uint8_t *wr, size_t len, uint64_t off)
{
	uint64_t lb = f->dev.logical_block;
	uint64_t start = off & ~(lb - 1);
	uint64_t end = (off + len + lb - 1) & ~(lb - 1);
	size_t cap = end - start < BOUNCE_MAX_BYTES ? end - start : BOUNCE_MAX_BYTES;
	uint64_t c;
	void *mem;
	int ret = 0;

	WC_BUG_ON(!rd == !wr);
	if (posix_memalign(&mem, BOUNCE_ALIGN, cap))
		return -ENOMEM;
	for (c = start; c < end && !ret; c += cap) {
		uint8_t *b = mem;
		size_t n = end - c < cap ? end - c : cap;
		uint64_t lo = off > c ? off : c;		/* caller's bytes in [lo, hi) */
		uint64_t hi = off + len < c + n ? off + len : c + n;

		if (rd) {
			ret = read_full(f->fd, b, n, c);
			if (!ret)
				memcpy(rd + (lo - off), b + (lo - c), hi - lo);
			continue;
		}
		if (lo > c)
			ret = read_full(f->fd, b, lb, c);
		if (!ret && hi < c + n && !(lo > c && n == lb))
			ret = read_full(f->fd, b + n - lb, lb, c + n - lb);
		if (!ret) {
			memcpy(b + (lo - c), wr + (lo - off), hi - lo);
			ret = write_full(f->fd, b, n, c);
		}
	}
	free(mem);
	return ret;
}

/* Switch the open file description to buffered I/O (its flock stays). */
static void file_drop_direct(struct file_dev *f, const char *why)
{
	int fl = fcntl(f->fd, F_GETFL);

	if (fl >= 0)
		fcntl(f->fd, F_SETFL, fl & ~O_DIRECT);
	if (atomic_exchange(&f->direct, false))
		wc_log(WC_LOG_INFO, "%s: %s, using buffered I/O", f->dev.name, why);
}

static int io_result(struct file_dev *f, const char *what, int ret, size_t len, uint64_t off)
{
	if (!ret)
		return 0;
	return wc_err(ret, "%s: %s of %zu bytes at offset %" PRIu64 " failed: %s", f->dev.name,
		      what, len, off, strerror(-ret));
}

static int file_pread(struct wc_dev *dev, void *buf, size_t len, uint64_t off)
{
	struct file_dev *f = to_file(dev);
	int ret;

	if (atomic_load(&f->direct)) {
		if (is_aligned(f, buf, len, off))
			ret = read_full(f->fd, buf, len, off);
		else
			ret = bounce_rw(f, buf, NULL, len, off);
		if (ret != -EINVAL)
			return io_result(f, "read", ret, len, off);
		file_drop_direct(f, "O_DIRECT read refused");
	}
	return io_result(f, "read", read_full(f->fd, buf, len, off), len, off);
}

static int file_pwrite(struct wc_dev *dev, const void *buf, size_t len, uint64_t off)
{
	struct file_dev *f = to_file(dev);
	bool partial = (off | len) & (dev->logical_block - 1);
	int ret;

	if (f->rdonly)
		return wc_err(-EROFS, "%s: write to a device opened read-only", dev->name);
	if (f->opened_direct) {
		if (partial)
			gate_excl(&f->rmw);
		else
			gate_shared(&f->rmw);
	}
	if (atomic_load(&f->direct)) {
		if (is_aligned(f, buf, len, off))
			ret = write_full(f->fd, buf, len, off);
		else
			ret = bounce_rw(f, NULL, buf, len, off);
		if (ret == -EINVAL) {
			file_drop_direct(f, "O_DIRECT write refused");
			ret = write_full(f->fd, buf, len, off);
		}
	} else {
		ret = write_full(f->fd, buf, len, off);
	}
	if (f->opened_direct) {
		if (partial)
			gate_unexcl(&f->rmw);
		else
			gate_unshare(&f->rmw);
	}
	return io_result(f, "write", ret, len, off);
}

static int file_flush(struct wc_dev *dev)
{
	struct file_dev *f = to_file(dev);

	while (fdatasync(f->fd) < 0) {
		if (errno != EINTR)
			return wc_err(-errno, "%s: flush (fdatasync) failed: %s", dev->name,
				      strerror(errno));
	}
	return 0;
}

/* Files: punch a hole. Block devices: BLKDISCARD of the whole sectors inside the range. */
static int file_discard(struct wc_dev *dev, uint64_t len, uint64_t off)
{
	struct file_dev *f = to_file(dev);
	uint64_t lb = dev->logical_block;
	int ret;

	if (f->rdonly)
		return wc_err(-EROFS, "%s: discard on a device opened read-only", dev->name);
	do {
		if (f->is_blk) {
			uint64_t start = (off + lb - 1) & ~(lb - 1);
			uint64_t end = (off + len) & ~(lb - 1);
			uint64_t range[2] = { start, end - start };

			if (end <= start)
				return 0;
			ret = ioctl(f->fd, BLKDISCARD, range);
		} else {
			ret = fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
					len);
		}
	} while (ret < 0 && errno == EINTR);
	if (ret == 0 || errno == EOPNOTSUPP)
		return 0;
	return io_result(f, "discard", -errno, len, off);
}

/* ---------------- submitted requests ---------------- */

/* The end of an accepted request: release its gate hold, report (dev_io_end), count it out. */
static void file_end(struct file_dev *f, struct wc_io *io, int result)
{
	if (io->dev_priv[1] & IOF_SHARED)
		gate_unshare(&f->rmw);
	dev_io_end(io, result);
	/*
	 * acq_rel: the callback's effects happen before file_close sees 0. The
	 * lock makes the wakeup race-free; f outlives this thread (close joins it).
	 */
	if (atomic_fetch_sub_explicit(&f->nr_outstanding, 1, memory_order_acq_rel) == 1) {
		pthread_mutex_lock(&f->alock);
		pthread_cond_broadcast(&f->idle_cond);
		pthread_mutex_unlock(&f->alock);
	}
}

/* A request through the synchronous calls (the pool). */
static int file_run_sync(struct file_dev *f, struct wc_io *io)
{
	switch (io->op) {
	case WC_IO_READ:
		return file_pread(&f->dev, io->buf, io->len, io->off);
	case WC_IO_WRITE:
		return file_pwrite(&f->dev, io->buf, io->len, io->off);
	case WC_IO_FLUSH:
		return file_flush(&f->dev);
	case WC_IO_DISCARD:
		return file_discard(&f->dev, io->len, io->off);
	}
	return -EINVAL;
}

/*
 * Threads of this file start with every signal blocked (they inherit the
 * mask of their creator): signals belong to the application's threads.
 */
static void block_signals(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, old);
}

static int file_thread_start(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t old;
	int ret;

	block_signals(&old);
	ret = -pthread_create(th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

static void *file_pool_thread(void *arg)
{
	struct file_dev *f = arg;

	pthread_mutex_lock(&f->alock);
	for (;;) {
		struct wc_io *io = f->pool_head;

		if (!io) {
			if (f->pool_stop)
				break;
			f->nr_pool_idle++;
			pthread_cond_wait(&f->pool_cond, &f->alock);
			f->nr_pool_idle--;
			continue;
		}
		f->pool_head = io->next;
		if (!f->pool_head)
			f->pool_tail = &f->pool_head;
		pthread_mutex_unlock(&f->alock);
		file_end(f, io, file_run_sync(f, io));
		pthread_mutex_lock(&f->alock);
	}
	pthread_mutex_unlock(&f->alock);
	return NULL;
}

/*
 * Queue nr requests (list linked by io->next) for the pool, starting threads
 * for them up to FILE_POOL_THREADS. If not even one thread can be started,
 * the submitter runs them itself.
 */
static void file_pool_push(struct file_dev *f, struct wc_io *list, unsigned nr)
{
	struct wc_io *last = list;

	while (last->next)
		last = last->next;
	pthread_mutex_lock(&f->alock);
	*f->pool_tail = list;
	f->pool_tail = &last->next;
	while (f->nr_pool < FILE_POOL_THREADS && nr > f->nr_pool_idle) {
		int ret = file_thread_start(&f->pool[f->nr_pool], file_pool_thread, f);

		if (ret < 0) {
			wc_log(WC_LOG_WARN, "%s: cannot start an I/O thread: %s", f->dev.name,
			       strerror(-ret));
			break;
		}
		pthread_setname_np(f->pool[f->nr_pool], "wc-file-io");
		f->nr_pool++;
		nr--;
	}
	if (f->nr_pool) {
		pthread_cond_broadcast(&f->pool_cond);
		list = NULL;
	} else {	/* take the whole queue: another submitter may have appended to ours */
		list = f->pool_head;
		f->pool_head = NULL;
		f->pool_tail = &f->pool_head;
	}
	pthread_mutex_unlock(&f->alock);
	while (list) {
		struct wc_io *io = list;

		list = io->next;
		file_end(f, io, file_run_sync(f, io));
	}
}

#ifdef WC_WITH_URING
static void file_uring_prep(void *ctx, struct io_uring_sqe *sqe, struct wc_io *io)
{
	struct file_dev *f = ctx;
	uint64_t done = io->dev_priv[0];
	uint64_t rest = io->len - done;
	unsigned n = rest < FILE_SQE_MAX_BYTES ? rest : FILE_SQE_MAX_BYTES;

	/* file_drop_direct clears O_DIRECT on the fd before the flag: clear flag, buffered SQE. */
	if (atomic_load(&f->direct))
		io->dev_priv[1] |= IOF_DIRECT;
	else
		io->dev_priv[1] &= ~(uint64_t)IOF_DIRECT;
	switch (io->op) {
	case WC_IO_READ:
		io_uring_prep_read(sqe, f->fd, (uint8_t *)io->buf + done, n, io->off + done);
		break;
	case WC_IO_WRITE:
		io_uring_prep_write(sqe, f->fd, (uint8_t *)io->buf + done, n, io->off + done);
		break;
	case WC_IO_FLUSH:
		io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
		break;
	case WC_IO_DISCARD:
		WC_BUG_ON(true);	/* file_submit runs discards itself */
		break;
	}
}

/* Runs on the ring's completion thread. */
static bool file_uring_complete(void *ctx, struct wc_io *io, int res)
{
	struct file_dev *f = ctx;
	const char *what = io->op == WC_IO_READ ? "read" : "write";

	if (res == -EINTR || res == -EAGAIN)
		return true;
	if (io->op == WC_IO_FLUSH) {
		if (res < 0)
			res = wc_err(res, "%s: flush (fdatasync) failed: %s", f->dev.name,
				     strerror(-res));
		file_end(f, io, res);
		return false;
	}
	if (res == -EINVAL && (io->dev_priv[1] & IOF_DIRECT)) {
		file_drop_direct(f, io->op == WC_IO_READ ? "O_DIRECT read refused"
							 : "O_DIRECT write refused");
		return true;
	}
	if (res == 0 && io->op == WC_IO_READ) {		/* end of file: zeros */
		memset((uint8_t *)io->buf + io->dev_priv[0], 0, io->len - io->dev_priv[0]);
		file_end(f, io, 0);
		return false;
	}
	if (res == 0)
		res = -EIO;
	if (res < 0) {
		file_end(f, io, io_result(f, what, res, io->len, io->off));
		return false;
	}
	io->dev_priv[0] += res;
	if (io->dev_priv[0] < io->len)
		return true;
	file_end(f, io, 0);
	return false;
}

static const struct wc_uring_ops file_uring_ops = {
	.prep = file_uring_prep,
	.complete = file_uring_complete,
};
#endif

/* Set up the ring, or the pool if there is no ring. Called once, under f->alock. */
static int file_async_start(struct file_dev *f)
{
	static atomic_flag told = ATOMIC_FLAG_INIT;
	const char *why = "built without liburing";
#ifdef WC_WITH_URING
	const char *no = getenv("WC_NO_URING");
	sigset_t old;
	int ret;

	if (no && *no && strcmp(no, "0") != 0) {
		why = "WC_NO_URING is set";
	} else {
		block_signals(&old);
		ret = uring_open(FILE_URING_DEPTH, &file_uring_ops, f, f->dev.name, &f->uring);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (ret == 0) {
			wc_log(WC_LOG_DEBUG, "%s: asynchronous I/O on io_uring", f->dev.name);
			return FILE_ASYNC_URING;
		}
		why = strerror(-ret);
	}
#endif
	if (!atomic_flag_test_and_set(&told))
		wc_log(WC_LOG_INFO, "no io_uring (%s): asynchronous file I/O runs on %d threads "
		       "per device", why, FILE_POOL_THREADS);
	wc_log(WC_LOG_DEBUG, "%s: asynchronous I/O on threads (%s)", f->dev.name, why);
	return FILE_ASYNC_POOL;
}

static int file_async_mode(struct file_dev *f)
{
	/* acquire: pairs with the release below, so f->uring is seen set up. */
	int mode = atomic_load_explicit(&f->amode, memory_order_acquire);

	if (mode != FILE_ASYNC_NONE)
		return mode;
	pthread_mutex_lock(&f->alock);
	mode = atomic_load_explicit(&f->amode, memory_order_relaxed);
	if (mode == FILE_ASYNC_NONE) {
		mode = file_async_start(f);
		atomic_store_explicit(&f->amode, mode, memory_order_release);
	}
	pthread_mutex_unlock(&f->alock);
	return mode;
}

static void file_submit(struct wc_dev *dev, struct wc_io **ios, unsigned n)
{
	struct file_dev *f = to_file(dev);
	struct wc_io *ring = NULL, **rt = &ring, *pool = NULL, **pt = &pool;
	unsigned nr_ring = 0, nr_pool = 0;
	int mode = file_async_mode(f);

	for (unsigned i = 0; i < n; i++) {
		struct wc_io *io = ios[i];

		io->dev_priv[0] = 0;
		io->dev_priv[1] = 0;
		if (f->rdonly && (io->op == WC_IO_WRITE || io->op == WC_IO_DISCARD)) {
			dev_io_end(io, wc_err(-EROFS, "%s: %s on a device opened read-only",
					    dev->name, io->op == WC_IO_WRITE ? "write" : "discard"));
			continue;
		}
		if (io->op == WC_IO_DISCARD) {
			dev_io_end(io, file_discard(dev, io->len, io->off));
			continue;
		}
		if (mode == FILE_ASYNC_POOL ||
		    (io->op != WC_IO_FLUSH && atomic_load(&f->direct) &&
		     !is_aligned(f, io->buf, io->len, io->off)) ||
		    (io->op == WC_IO_WRITE && f->opened_direct && !gate_try_shared(&f->rmw))) {
			*pt = io;
			pt = &io->next;
			nr_pool++;
			continue;
		}
		if (io->op == WC_IO_WRITE && f->opened_direct)
			io->dev_priv[1] |= IOF_SHARED;
		*rt = io;
		rt = &io->next;
		nr_ring++;
	}
	*rt = NULL;
	*pt = NULL;
	/* Counted before any of them can end (relaxed: the queues' locks order the rest). */
	atomic_fetch_add_explicit(&f->nr_outstanding, nr_ring + nr_pool, memory_order_relaxed);
	if (pool)
		file_pool_push(f, pool, nr_pool);
#ifdef WC_WITH_URING
	if (ring)
		uring_submit(f->uring, ring);
#endif
}

/* Wait for every accepted request, then stop the threads. */
static void file_async_stop(struct file_dev *f)
{
	pthread_mutex_lock(&f->alock);
	while (atomic_load_explicit(&f->nr_outstanding, memory_order_acquire))
		pthread_cond_wait(&f->idle_cond, &f->alock);
	f->pool_stop = true;
	pthread_cond_broadcast(&f->pool_cond);
	pthread_mutex_unlock(&f->alock);
	for (unsigned i = 0; i < f->nr_pool; i++)
		pthread_join(f->pool[i], NULL);
#ifdef WC_WITH_URING
	uring_close(f->uring);
#endif
}

static void file_close(struct wc_dev *dev)
{
	struct file_dev *f = to_file(dev);

	file_async_stop(f);
	pthread_cond_destroy(&f->idle_cond);
	pthread_cond_destroy(&f->pool_cond);
	pthread_mutex_destroy(&f->alock);
	pthread_cond_destroy(&f->rmw.cond);
	pthread_mutex_destroy(&f->rmw.lock);
	close(f->fd);
	free(f);
}

static const struct wc_dev_ops file_ops = {
	.name = "file",
	.pread = file_pread,
	.pwrite = file_pwrite,
	.flush = file_flush,
	.discard = file_discard,
	.submit = file_submit,
	.close = file_close,
};

/* Size and logical block: st_size and 512 for files, ioctls for block devices. */
static int file_probe(struct file_dev *f, const char *path)
{
	struct stat st;
	uint64_t size;
	int lb;

	if (fstat(f->fd, &st) < 0)
		return wc_err(-errno, "%s: fstat failed: %s", path, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		f->dev.size = st.st_size;
		f->dev.logical_block = 512;
		return 0;
	}
	if (!S_ISBLK(st.st_mode))
		return wc_err(-EINVAL, "%s is not a regular file or block device", path);
	if (ioctl(f->fd, BLKGETSIZE64, &size) < 0 || ioctl(f->fd, BLKSSZGET, &lb) < 0)
		return wc_err(-errno, "%s: cannot query block device size: %s", path,
			      strerror(errno));
	if (lb < 512 || (lb & (lb - 1)))
		return wc_err(-EINVAL, "%s: unsupported logical block size %d", path, lb);
	f->is_blk = true;
	f->dev.size = size;
	f->dev.logical_block = lb;
	return 0;
}

int dev_file_open(const char *path, unsigned flags, struct wc_dev **out)
{
	int oflags = ((flags & DEV_RDONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	bool direct = !(flags & DEV_NO_DIRECT);
	struct file_dev *f;
	int fd, ret;

	/* O_NONBLOCK: a FIFO must be refused below, not wait for a writer here. */
	fd = open(path, oflags | O_NONBLOCK | (direct ? O_DIRECT : 0));
	if (fd < 0 && errno == EINVAL && direct) {
		direct = false;
		fd = open(path, oflags | O_NONBLOCK);
	}
	if (fd < 0) {
		ret = -errno;
		return wc_err(ret, "cannot open %s: %s", path, strerror(-ret));
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		ret = wc_err(-ENOMEM, "%s: out of memory", path);
		goto out_close;
	}
	f->fd = fd;
	ret = file_probe(f, path);
	if (ret < 0)
		goto out_free;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		ret = wc_err(-errno, "%s: fcntl failed: %s", path, strerror(errno));
		goto out_free;
	}
	if (flags & DEV_EXCL) {
		ret = dev_lock_exclusive(fd, path);
		if (ret < 0)
			goto out_free;
	}
	f->dev.ops = &file_ops;
	f->dev.priv = f;
	snprintf(f->dev.name, sizeof(f->dev.name), "%s", path);
	f->rdonly = flags & DEV_RDONLY;
	atomic_init(&f->direct, direct);
	/* The last sector of an odd-sized file cannot be read or written whole. */
	if (direct && f->dev.size % f->dev.logical_block)
		file_drop_direct(f, "size is not a multiple of the logical block");
	f->opened_direct = atomic_load(&f->direct);
	pthread_mutex_init(&f->rmw.lock, NULL);
	pthread_cond_init(&f->rmw.cond, NULL);
	pthread_mutex_init(&f->alock, NULL);
	pthread_cond_init(&f->pool_cond, NULL);
	pthread_cond_init(&f->idle_cond, NULL);
	f->pool_tail = &f->pool_head;
	wc_log(WC_LOG_DEBUG, "%s: %" PRIu64 " bytes, logical block %u, %s I/O", path, f->dev.size,
	       f->dev.logical_block, f->opened_direct ? "direct" : "buffered");
	*out = &f->dev;
	return 0;

out_free:
	free(f);
out_close:
	close(fd);
	return ret;
}
