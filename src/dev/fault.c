/* SPDX-License-Identifier: MIT */
/*
 * Fault device (tests only): a RAM disk with a modelled volatile write cache.
 *
 * The store keeps two images. "durable" is what the platters hold; "cur" is
 * what reads see. Every write or discard updates cur at once and is appended
 * to the pending list; a completed flush applies the list to durable in order
 * and empties it. fault_crash() is the power cut: it applies some of the
 * pending writes to durable (all, none, a random subset in random order, or
 * a random subset of each survivor's 512-byte sectors), then cur := durable.
 *
 * An armed crash ("power is gone" from op N on) makes op N and every later
 * op, reads included, fail with -EIO and change nothing, until fault_crash()
 * or fault_heal(). Handles made by dev_fault_share() share one store, its
 * counters and its fault settings; one mutex guards it all.
 *
 * Asynchronous mode (fault_set_async) gives the handles a submit hook. A
 * submitted request only joins the store's queue; one completion thread
 * picks queued requests in a random order (seeded) and executes each one
 * exactly as the synchronous call would (counted, gated, applied to cur)
 * at the moment it completes, then calls done outside the lock. Every
 * power cut -- the armed one firing, or fault_crash() -- starts a new
 * epoch: a request submitted in an older one fails with -EIO when it
 * completes, changes nothing and is not counted as an op. Each pending
 * write carries the number of its completion, and a flush records the
 * count when it is submitted: it makes durable only the writes completed
 * before that, however late it runs (a real disk may cover more; a test
 * device should not). The synchronous calls keep working beside the queue.
 * A handle's exec hook (fault_set_exec_hook) brackets the execution of its
 * requests, with the lock dropped around the hook's calls.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "dev.h"
#include "fault.h"

#define FAULT_SECTOR 512

enum fault_op { FOP_READ, FOP_WRITE, FOP_FLUSH, FOP_DISCARD, FOP_NR };

static const char *const fop_names[FOP_NR] = { "pread", "pwrite", "flush", "discard" };

struct fault_write {
	uint64_t off;
	uint64_t len;
	uint8_t *data;		/* NULL: a discard, which reads back as zeros */
	uint64_t seq;		/* completion number (nr_completed_writes) */
};

struct fault_dev;

/* A submitted request waiting in the queue. */
struct fault_qent {
	struct wc_io *io;
	struct fault_dev *h;	/* the handle it came through */
	uint64_t epoch;		/* s->epoch at submission */
	uint64_t flush_mark;	/* FLUSH: s->nr_completed_writes at submission */
};

struct fault_store {
	pthread_mutex_t lock;
	unsigned refs;
	uint64_t size;
	uint8_t *durable;
	uint8_t *cur;
	struct fault_write *pending;	/* since the last completed flush, oldest first */
	size_t nr_pending, max_pending;
	uint64_t nr_ops, nr_writes;	/* every op / every pwrite, ever */
	uint64_t nr_completed_writes;	/* every pwrite/discard that changed cur, ever */
	uint64_t crash_op;		/* op number of the power cut; 0: none */
	uint64_t fail_write;		/* write number from which pwrite fails; 0: none */
	unsigned fail_mask;		/* 1 << FOP_*: kinds failing while set */
	struct fault_dev *handles;	/* every open handle */
	/* Asynchronous mode: all under lock, like everything else. */
	bool async;
	bool hold;			/* nothing completes while set */
	bool stop;			/* the completion thread exits once the queue is empty */
	bool thread_running;
	pthread_t thread;
	pthread_cond_t kick;		/* queue, hold or stop changed */
	pthread_cond_t idle;		/* some nr_busy dropped */
	uint64_t rng;			/* picks the next request to complete */
	uint64_t epoch;			/* bumped by every power cut and every op refused for it */
	struct fault_qent *queue;	/* submitted, not completed; unordered */
	size_t nr_queued, max_queued;
	unsigned nr_inflight;		/* submitted, not completed (done() is called after) */
	unsigned max_inflight;		/* most nr_inflight since fault_set_async(on) */
	unsigned nr_busy;		/* submitted, done() not yet returned */
};

struct fault_dev {
	struct wc_dev dev;
	struct fault_store *s;
	struct fault_dev *next;		/* s->handles list; s->lock */
	unsigned nr_busy;		/* s->lock: this handle's share of s->nr_busy */
	struct fault_exec_hook hook;	/* s->lock */
};

static const struct wc_dev_ops fault_dev_ops, fault_async_ops;

static struct fault_store *to_store(struct wc_dev *dev)
{
	WC_BUG_ON(dev->ops != &fault_dev_ops && dev->ops != &fault_async_ops);
	return ((struct fault_dev *)dev->priv)->s;
}

/* splitmix64: small, seedable, good enough to pick subsets and orders. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Count the op and decide whether it fails. Called with s->lock held. */
static int fault_gate(struct fault_store *s, enum fault_op op)
{
	uint64_t nr = ++s->nr_ops;

	if (op == FOP_WRITE)
		s->nr_writes++;
	if (s->crash_op && nr >= s->crash_op) {
		s->epoch++;	/* requests in flight at the cut never complete */
		return wc_err(-EIO, "fault: %s (op %" PRIu64 ") failed: power cut at op %" PRIu64,
			      fop_names[op], nr, s->crash_op);
	}
	if (s->fail_mask & (1u << op))
		return wc_err(-EIO, "fault: injected %s error (op %" PRIu64 ")", fop_names[op], nr);
	if (op == FOP_WRITE && s->fail_write && s->nr_writes >= s->fail_write)
		return wc_err(-EIO, "fault: injected error on write %" PRIu64, s->nr_writes);
	return 0;
}

/* Copy the part [lo, hi) of pending write w into img. */
static void apply_range(uint8_t *img, const struct fault_write *w, uint64_t lo, uint64_t hi)
{
	if (w->data)
		memcpy(img + lo, w->data + (lo - w->off), hi - lo);
	else
		memset(img + lo, 0, hi - lo);
}

/* Append a write (data != NULL) or discard to the pending list and to cur. */
static int fault_record(struct fault_store *s, const void *data, uint64_t len, uint64_t off)
{
	struct fault_write *w;

	if (s->nr_pending == s->max_pending) {
		size_t max = s->max_pending ? 2 * s->max_pending : 64;

		w = realloc(s->pending, max * sizeof(*w));
		if (!w)
			return wc_err(-ENOMEM, "fault: out of memory");
		s->pending = w;
		s->max_pending = max;
	}
	w = &s->pending[s->nr_pending];
	w->off = off;
	w->len = len;
	w->data = NULL;
	w->seq = s->nr_completed_writes + 1;
	if (data) {
		w->data = malloc(len);
		if (!w->data)
			return wc_err(-ENOMEM, "fault: out of memory");
		memcpy(w->data, data, len);
	}
	apply_range(s->cur, w, off, off + len);
	s->nr_pending++;
	s->nr_completed_writes++;
	return 0;
}

static void fault_drop_pending(struct fault_store *s)
{
	size_t i;

	for (i = 0; i < s->nr_pending; i++)
		free(s->pending[i].data);
	s->nr_pending = 0;
}

static int fault_read_locked(struct fault_store *s, void *buf, size_t len, uint64_t off)
{
	int ret = fault_gate(s, FOP_READ);

	if (!ret)
		memcpy(buf, s->cur + off, len);
	return ret;
}

static int fault_write_locked(struct fault_store *s, const void *buf, size_t len, uint64_t off)
{
	int ret = fault_gate(s, FOP_WRITE);

	return ret ? ret : fault_record(s, buf, len, off);
}

static int fault_discard_locked(struct fault_store *s, uint64_t len, uint64_t off)
{
	int ret = fault_gate(s, FOP_DISCARD);

	return ret ? ret : fault_record(s, NULL, len, off);
}

/*
 * The writes completed up to number mark become durable, in completion
 * order; later ones stay pending, in order.
 */
static int fault_flush_locked(struct fault_store *s, uint64_t mark)
{
	int ret = fault_gate(s, FOP_FLUSH);
	size_t i, keep = 0;

	if (ret)
		return ret;
	for (i = 0; i < s->nr_pending; i++) {
		struct fault_write *w = &s->pending[i];

		if (w->seq > mark) {
			s->pending[keep++] = *w;
			continue;
		}
		apply_range(s->durable, w, w->off, w->off + w->len);
		free(w->data);
	}
	s->nr_pending = keep;
	return 0;
}

static int fault_pread(struct wc_dev *dev, void *buf, size_t len, uint64_t off)
{
	struct fault_store *s = to_store(dev);
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = fault_read_locked(s, buf, len, off);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int fault_pwrite(struct wc_dev *dev, const void *buf, size_t len, uint64_t off)
{
	struct fault_store *s = to_store(dev);
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = fault_write_locked(s, buf, len, off);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int fault_discard(struct wc_dev *dev, uint64_t len, uint64_t off)
{
	struct fault_store *s = to_store(dev);
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = fault_discard_locked(s, len, off);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* Every write completed before the flush becomes durable, in completion order. */
static int fault_flush(struct wc_dev *dev)
{
	struct fault_store *s = to_store(dev);
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = fault_flush_locked(s, s->nr_completed_writes);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* ---------------- asynchronous mode ---------------- */

static const char *const io_names[] = { "read", "write", "flush", "discard" };

/* Execute a queued request now, as the synchronous call would. Under s->lock. */
static int fault_exec_locked(struct fault_store *s, const struct fault_qent *e)
{
	struct wc_io *io = e->io;

	if (e->epoch != s->epoch)
		return wc_err(-EIO, "fault: %s submitted before a power cut failed",
			      io_names[io->op]);
	switch (io->op) {
	case WC_IO_READ:
		return fault_read_locked(s, io->buf, io->len, io->off);
	case WC_IO_WRITE:
		return fault_write_locked(s, io->buf, io->len, io->off);
	case WC_IO_FLUSH:
		return fault_flush_locked(s, e->flush_mark);
	case WC_IO_DISCARD:
		return fault_discard_locked(s, io->len, io->off);
	}
	return -EINVAL;
}

static void *fault_thread(void *arg)
{
	struct fault_store *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct fault_exec_hook hook;
		struct fault_qent e;
		size_t i;
		int ret;

		while (!s->stop && (!s->nr_queued || s->hold))
			pthread_cond_wait(&s->kick, &s->lock);
		if (!s->nr_queued)
			break;		/* stop, and nothing left */
		i = rng_next(&s->rng) % s->nr_queued;
		e = s->queue[i];
		s->queue[i] = s->queue[--s->nr_queued];
		hook = e.h->hook;
		ret = 0;
		if (hook.before) {
			/* Still in flight meanwhile; a power cut now still fails it below. */
			pthread_mutex_unlock(&s->lock);
			ret = hook.before(hook.opaque, e.io);
			pthread_mutex_lock(&s->lock);
		}
		if (!ret)
			ret = fault_exec_locked(s, &e);
		s->nr_inflight--;	/* completed: its callback may submit the next one */
		pthread_mutex_unlock(&s->lock);
		if (hook.after)
			hook.after(hook.opaque, e.io, ret);
		dev_io_end(e.io, ret);
		pthread_mutex_lock(&s->lock);
		e.h->nr_busy--;
		s->nr_busy--;
		pthread_cond_broadcast(&s->idle);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void fault_submit(struct wc_dev *dev, struct wc_io **ios, unsigned n)
{
	struct fault_dev *h = dev->priv;
	struct fault_store *s = h->s;
	unsigned i;

	pthread_mutex_lock(&s->lock);
	if (s->nr_queued + n > s->max_queued) {
		size_t max = s->max_queued ? s->max_queued : 64;
		struct fault_qent *q;

		while (max < s->nr_queued + n)
			max *= 2;
		q = realloc(s->queue, max * sizeof(*q));
		if (!q) {
			pthread_mutex_unlock(&s->lock);
			for (i = 0; i < n; i++)
				dev_io_end(ios[i], wc_err(-ENOMEM, "fault: out of memory"));
			return;
		}
		s->queue = q;
		s->max_queued = max;
	}
	for (i = 0; i < n; i++)
		s->queue[s->nr_queued++] = (struct fault_qent){
			.io = ios[i], .h = h, .epoch = s->epoch,
			.flush_mark = s->nr_completed_writes,
		};
	h->nr_busy += n;
	s->nr_busy += n;
	s->nr_inflight += n;
	if (s->nr_inflight > s->max_inflight)
		s->max_inflight = s->nr_inflight;
	pthread_cond_signal(&s->kick);
	pthread_mutex_unlock(&s->lock);
}

/*
 * Wait until every request submitted through handle h (NULL: any handle)
 * has had its done() return. Releases the hold.
 */
static void fault_drain_locked(struct fault_store *s, struct fault_dev *h)
{
	if (!(h ? h->nr_busy : s->nr_busy))
		return;
	s->hold = false;
	pthread_cond_broadcast(&s->kick);
	while (h ? h->nr_busy : s->nr_busy)
		pthread_cond_wait(&s->idle, &s->lock);
}

/* Stop the completion thread (nothing may be in flight). Takes and drops s->lock. */
static void fault_thread_stop(struct fault_store *s)
{
	pthread_t th;

	pthread_mutex_lock(&s->lock);
	if (!s->thread_running) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	s->stop = true;
	pthread_cond_broadcast(&s->kick);
	th = s->thread;
	pthread_mutex_unlock(&s->lock);
	pthread_join(th, NULL);
	pthread_mutex_lock(&s->lock);
	s->stop = false;
	s->thread_running = false;
	pthread_mutex_unlock(&s->lock);
}

static void fault_store_put(struct fault_store *s)
{
	unsigned refs;

	pthread_mutex_lock(&s->lock);
	refs = --s->refs;
	pthread_mutex_unlock(&s->lock);
	if (refs)
		return;
	fault_thread_stop(s);
	fault_drop_pending(s);
	free(s->queue);
	free(s->pending);
	free(s->durable);
	free(s->cur);
	pthread_cond_destroy(&s->kick);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Drains this handle's requests first (releasing a hold). */
static void fault_close(struct wc_dev *dev)
{
	struct fault_dev *h = dev->priv, **p;
	struct fault_store *s = to_store(dev);

	pthread_mutex_lock(&s->lock);
	fault_drain_locked(s, h);
	for (p = &s->handles; *p != h; p = &(*p)->next)
		;
	*p = h->next;
	pthread_mutex_unlock(&s->lock);
	fault_store_put(s);
	free(h);
}

static const struct wc_dev_ops fault_dev_ops = {
	.name = "fault",
	.pread = fault_pread,
	.pwrite = fault_pwrite,
	.flush = fault_flush,
	.discard = fault_discard,
	.close = fault_close,
};

/* The same device with a submit hook (dev_is_async), while fault_set_async is on. */
static const struct wc_dev_ops fault_async_ops = {
	.name = "fault",
	.pread = fault_pread,
	.pwrite = fault_pwrite,
	.flush = fault_flush,
	.discard = fault_discard,
	.submit = fault_submit,
	.close = fault_close,
};

/* A new handle on s, in its list. Called with s->lock held (or before s is shared). */
static int fault_handle_new(struct fault_store *s, struct wc_dev **out)
{
	struct fault_dev *fd = calloc(1, sizeof(*fd));

	if (!fd)
		return wc_err(-ENOMEM, "fault: out of memory");
	fd->s = s;
	fd->dev.ops = s->async ? &fault_async_ops : &fault_dev_ops;
	fd->next = s->handles;
	s->handles = fd;
	fd->dev.size = s->size;
	fd->dev.logical_block = FAULT_SECTOR;
	fd->dev.priv = fd;
	strcpy(fd->dev.name, "fault");
	*out = &fd->dev;
	return 0;
}

int dev_fault_open(uint64_t size, struct wc_dev **out)
{
	struct fault_store *s;
	size_t bytes = size ? size : 1;

	if ((uint64_t)(size_t)size != size)
		return wc_err(-EINVAL, "fault: size %" PRIu64 " does not fit in memory", size);
	s = calloc(1, sizeof(*s));
	if (!s)
		return wc_err(-ENOMEM, "fault: out of memory");
	s->refs = 1;
	s->size = size;
	s->durable = calloc(bytes, 1);
	s->cur = calloc(bytes, 1);
	if (!s->durable || !s->cur || fault_handle_new(s, out) < 0) {
		free(s->durable);
		free(s->cur);
		free(s);
		return wc_err(-ENOMEM, "fault: cannot allocate %" PRIu64 " bytes", size);
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->kick, NULL);
	pthread_cond_init(&s->idle, NULL);
	return 0;
}

int dev_fault_share(struct wc_dev *dev, struct wc_dev **out)
{
	struct fault_store *s = to_store(dev);
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = fault_handle_new(s, out);
	if (ret == 0)
		s->refs++;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

uint64_t fault_ops(struct wc_dev *dev)
{
	struct fault_store *s = to_store(dev);
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->nr_ops;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void fault_arm_crash(struct wc_dev *dev, uint64_t n)
{
	struct fault_store *s = to_store(dev);

	pthread_mutex_lock(&s->lock);
	s->crash_op = n ? s->nr_ops + n : 0;
	pthread_mutex_unlock(&s->lock);
}

void fault_fail_writes_from(struct wc_dev *dev, uint64_t n)
{
	struct fault_store *s = to_store(dev);

	pthread_mutex_lock(&s->lock);
	s->fail_write = n ? s->nr_writes + n : 0;
	pthread_mutex_unlock(&s->lock);
}

void fault_set_error(struct wc_dev *dev, const char *op, bool on)
{
	struct fault_store *s = to_store(dev);
	int i = 0;

	while (i < FOP_NR && strcmp(op, fop_names[i]) != 0)
		i++;
	WC_BUG_ON(i == FOP_NR);	/* unknown op name: a bug in the test */
	pthread_mutex_lock(&s->lock);
	if (on)
		s->fail_mask |= 1u << i;
	else
		s->fail_mask &= ~(1u << i);
	pthread_mutex_unlock(&s->lock);
}

/* Apply a random subset of w's 512-byte sectors (device-aligned) to durable. */
static void apply_torn(struct fault_store *s, const struct fault_write *w, uint64_t *rng)
{
	uint64_t end = w->off + w->len;
	uint64_t sec = w->off & ~(uint64_t)(FAULT_SECTOR - 1);

	for (; sec < end; sec += FAULT_SECTOR) {
		uint64_t lo = sec > w->off ? sec : w->off;
		uint64_t hi = sec + FAULT_SECTOR < end ? sec + FAULT_SECTOR : end;

		if (rng_next(rng) & 1)
			apply_range(s->durable, w, lo, hi);
	}
}

/* pmem: each 64-byte line of w survives whole, not at all, or per aligned 8-byte word. */
static void apply_pmem(struct fault_store *s, const struct fault_write *w, uint64_t *rng)
{
	uint64_t end = w->off + w->len;
	uint64_t line = w->off & ~(uint64_t)63;

	for (; line < end; line += 64) {
		unsigned how = (unsigned)(rng_next(rng) % 3);

		for (uint64_t word = line; word < line + 64 && word < end; word += 8) {
			uint64_t lo = word > w->off ? word : w->off;
			uint64_t hi = word + 8 < end ? word + 8 : end;

			if (lo < hi && (how == 1 || (how == 2 && (rng_next(rng) & 1))))
				apply_range(s->durable, w, lo, hi);
		}
	}
}

void fault_crash(struct wc_dev *dev, enum fault_crash_mode mode, uint64_t seed)
{
	struct fault_store *s = to_store(dev);
	uint64_t rng = seed;
	size_t i, j;

	pthread_mutex_lock(&s->lock);
	/* Reordering: the random modes apply their survivors in a shuffled order. */
	if (mode == FAULT_RANDOM_SUBSET || mode == FAULT_TEAR || mode == FAULT_PMEM) {
		for (i = s->nr_pending; i > 1; i--) {
			struct fault_write t = s->pending[i - 1];

			j = rng_next(&rng) % i;
			s->pending[i - 1] = s->pending[j];
			s->pending[j] = t;
		}
	}
	for (i = 0; i < s->nr_pending && mode != FAULT_DROP_ALL; i++) {
		struct fault_write *w = &s->pending[i];

		if (mode == FAULT_PMEM) {
			apply_pmem(s, w, &rng);	/* lines decide for themselves */
			continue;
		}
		if (mode != FAULT_KEEP_ALL && !(rng_next(&rng) & 1))
			continue;	/* this write never reached the media */
		if (mode == FAULT_TEAR)
			apply_torn(s, w, &rng);
		else
			apply_range(s->durable, w, w->off, w->off + w->len);
	}
	fault_drop_pending(s);
	memcpy(s->cur, s->durable, s->size);
	s->epoch++;	/* requests still queued were in flight at the cut */
	s->crash_op = 0;
	s->fail_write = 0;
	s->fail_mask = 0;
	pthread_mutex_unlock(&s->lock);
}

void fault_heal(struct wc_dev *dev)
{
	struct fault_store *s = to_store(dev);

	pthread_mutex_lock(&s->lock);
	s->crash_op = 0;
	s->fail_write = 0;
	s->fail_mask = 0;
	pthread_mutex_unlock(&s->lock);
}

const uint8_t *fault_durable(struct wc_dev *dev)
{
	return to_store(dev)->durable;
}

void fault_set_async(struct wc_dev *dev, bool on, uint64_t seed)
{
	struct fault_store *s = to_store(dev);
	struct fault_dev *h;

	pthread_mutex_lock(&s->lock);
	if (on) {
		s->rng = seed;
		s->max_inflight = s->nr_inflight;
		if (!s->thread_running) {
			sigset_t all, old;
			int ret;

			sigfillset(&all);
			pthread_sigmask(SIG_SETMASK, &all, &old);
			ret = pthread_create(&s->thread, NULL, fault_thread, s);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			WC_BUG_ON(ret != 0);	/* a test cannot go on without it */
			s->thread_running = true;
		}
	} else {
		fault_drain_locked(s, NULL);
	}
	s->async = on;
	for (h = s->handles; h; h = h->next)
		h->dev.ops = on ? &fault_async_ops : &fault_dev_ops;
	pthread_mutex_unlock(&s->lock);
	if (!on)
		fault_thread_stop(s);
}

void fault_async_hold(struct wc_dev *dev, bool hold)
{
	struct fault_store *s = to_store(dev);

	pthread_mutex_lock(&s->lock);
	s->hold = hold;
	pthread_cond_broadcast(&s->kick);
	pthread_mutex_unlock(&s->lock);
}

void fault_set_exec_hook(struct wc_dev *dev, const struct fault_exec_hook *hook)
{
	struct fault_dev *h = dev->priv;
	struct fault_store *s = to_store(dev);

	pthread_mutex_lock(&s->lock);
	h->hook = hook ? *hook : (struct fault_exec_hook){ 0 };
	pthread_mutex_unlock(&s->lock);
}

unsigned fault_inflight(struct wc_dev *dev)
{
	struct fault_store *s = to_store(dev);
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->nr_inflight;
	pthread_mutex_unlock(&s->lock);
	return n;
}

unsigned fault_max_inflight(struct wc_dev *dev)
{
	struct fault_store *s = to_store(dev);
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->max_inflight;
	pthread_mutex_unlock(&s->lock);
	return n;
}
