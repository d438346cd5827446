/* SPDX-License-Identifier: MIT */
/*
 * NBD origin backend (libnbd): any NBD server can be the slow origin.
 *
 * Design: up to 4 connections (when the server advertises multi-conn, else
 * 1), each with any number of commands in flight. Requests arrive through
 * the asynchronous interface (dev_submit; the synchronous calls wait for a
 * request, see dev.c), go to the least busy live connection, and are issued
 * with libnbd's AIO calls. Each connection has a thread that polls its
 * socket outside libnbd's handle lock (nbd_poll would hold it and block
 * every submitter), drives libnbd's state machine and ends completed
 * requests; a server silent for WC_NBD_TIMEOUT_MS (default 60 s) while
 * commands are in flight counts as a lost connection.
 *
 * Requests are split at the server's maximum block size (cap 32 MiB) and
 * edges not aligned to its minimum block size are read-modify-written.
 * Edges are rare (the engine writes whole blocks) and the rmw path waits
 * in the submitter, so it must not be reached from a completion callback.
 * A dropped connection fails the commands in flight on it with -EIO; later
 * requests reconnect, at most one attempt per request, 100 ms doubling to
 * 5 s apart.
 * If a connection dies while writes are not yet flushed, the next flush
 * fails once: the old server may have lost them (the engine then writes
 * the blocks back again instead of freeing them).
 */
#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "dev.h"

#define NBD_MAX_CONNS		4
#define NBD_MAX_REQ_BYTES	(32u << 20)	/* cap on one read/write command */
#define NBD_TRIM_CHUNK_BYTES	(1u << 30)	/* NBD lengths are 32-bit */
#define NBD_MAX_MIN_BYTES	65536u		/* largest minimum block size the spec allows */
#define NBD_TIMEOUT_MS		60000u
#define NBD_POLL_MS		200
#define NBD_BACKOFF_MIN_NS	100000000ull	/* 100 ms */
#define NBD_BACKOFF_MAX_NS	5000000000ull	/* 5 s */

enum nbd_op { OP_READ, OP_WRITE, OP_TRIM, OP_FLUSH };

static const char *const op_names[] = { "read", "write", "trim", "flush" };

struct nbd_conn;

/* One NBD command: a request, or one piece of a request split at max_bytes. */
struct nbd_cmd {
	struct nbd_cmd *prev, *next;	/* conn->qlock: in flight or done */
	struct nbd_conn *c;
	struct wc_io *io;		/* the request it is part of (NULL: none) */
	enum nbd_op op;
	uint64_t len, off;
	uint64_t flush_gen;		/* OP_FLUSH: write_gen when it was submitted */
	int err;			/* positive errno */
	bool dead;			/* failed because the connection is gone */
};

struct nbd_cmd_list {
	struct nbd_cmd *head;
};

struct nbd_conn {
	struct nbd_dev *d;
	/*
	 * lock keeps h alive while a submitter issues commands on it: only
	 * the connection's own thread closes h, and only holding lock.
	 * Completion callbacks run inside libnbd (handle lock held) and take
	 * only qlock, so the two never nest the other way round.
	 */
	pthread_mutex_t lock;
	struct nbd_handle *h;	/* lock; NULL while disconnected */
	unsigned gen;		/* lock: pool generation it was connected in */
	bool connecting;	/* lock: a submitter is connecting this slot */
	/* Capabilities of the current connection (lock). */
	uint32_t min_bytes, max_bytes;
	bool can_flush, can_trim, multi_conn;

	pthread_mutex_t qlock;
	struct nbd_cmd_list inflight;	/* qlock: issued, libnbd owns the buffer */
	struct nbd_cmd_list done;	/* qlock: completed, to be ended by the thread */
	unsigned nr_inflight;		/* qlock */
	uint64_t last_progress_ns;	/* qlock */
	bool stop;			/* qlock */

	int evfd;		/* wakes the thread: new commands, new handle, stop */
	pthread_t thread;
	bool thread_started;
};

struct nbd_dev {
	struct wc_dev dev;
	char *uri;
	bool rdonly;
	unsigned timeout_ms;	/* 0: wait forever */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* rmw exclusion changes */
	unsigned nr_conns;	/* lock: connections in use (shrinks if multi-conn goes away) */
	unsigned gen;		/* lock: bumped when a connection dies; older ones are stale */
	unsigned rr;		/* lock: round-robin start */
	struct nbd_conn conns[NBD_MAX_CONNS];
	/* Partial-block writes run alone (see whole_write_begin), lock. */
	unsigned whole_writes;
	bool rmw_busy;
	/* Outage state, lock. */
	bool down;		/* warned; cleared (with an info line) on reconnect */
	uint64_t down_since_ns, next_try_ns, backoff_ns;
	/* Unflushed-write tracking, lock. */
	uint64_t write_gen;	/* successful writes and trims */
	uint64_t flushed_gen;	/* write_gen covered by the last successful flush */
	bool lost;		/* a connection died with unflushed writes; next flush fails */
};

/* The connection thread currently running (completion context), if any. */
static __thread struct nbd_conn *cur_loop;

static struct nbd_dev *to_nbd(struct wc_dev *dev)
{
	return dev->priv;
}

/* errno of the last libnbd failure on this thread (EIO when it gave none). */
static int nbd_err(void)
{
	int e = nbd_get_errno();

	return e > 0 ? e : EIO;
}

/* Text of the last libnbd failure on this thread, without its "nbd_function: " prefix. */
static const char *nbd_msg(void)
{
	const char *m = nbd_get_error();

	if (!m)
		return "no details";
	if (strncmp(m, "nbd_", 4) == 0 && strstr(m, ": "))
		m = strstr(m, ": ") + 2;
	return m;
}

/* Does err say the connection is gone (not that the server refused a command)? */
static bool err_is_dead(int err)
{
	return err == ENOTCONN || err == ESHUTDOWN || err == EPIPE || err == ECONNRESET ||
	       err == ETIMEDOUT;
}

static bool conn_is_dead(struct nbd_handle *h, int err)
{
	return nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1 || err_is_dead(err);
}

static void list_add(struct nbd_cmd_list *l, struct nbd_cmd *k)
{
	k->prev = NULL;
	k->next = l->head;
	if (l->head)
		l->head->prev = k;
	l->head = k;
}

static void list_del(struct nbd_cmd_list *l, struct nbd_cmd *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		l->head = k->next;
	if (k->next)
		k->next->prev = k->prev;
	k->prev = k->next = NULL;
}

static void conn_wake(struct nbd_conn *c)
{
	uint64_t one = 1;

	if (write(c->evfd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already non-zero, the thread will wake. */
	}
}

/* Connect h to d->uri and wait (bounded by the timeout) until ready; 0 or a positive errno. */
static int handle_connect(struct nbd_dev *d, struct nbd_handle *h)
{
	uint64_t start = wc_now_ns();

	if (nbd_aio_connect_uri(h, d->uri) < 0)
		return nbd_err();
	while (nbd_aio_is_connecting(h) == 1) {
		int r = nbd_poll(h, NBD_POLL_MS);

		if (r < 0)
			return nbd_err();
		if (r == 0 && d->timeout_ms && wc_now_ns() - start >= d->timeout_ms * 1000000ull)
			return ETIMEDOUT;
	}
	if (nbd_aio_is_ready(h) != 1)
		return nbd_err();
	return 0;
}

/*
 * Open a connection for slot c (not yet visible to its thread) and read
 * the export's limits. On the first connection (d->dev.size == 0) the size
 * is taken; later ones must match it. Returns 0 or -errno with a message
 * naming the URI; on success the handle is installed in c.
 */
static int conn_open(struct nbd_dev *d, struct nbd_conn *c)
{
	struct nbd_handle *h = nbd_create();
	int64_t size, min, max;
	unsigned gen;
	int err, ret;

	if (!h)
		return wc_err(-ENOMEM, "%s: cannot create an NBD handle: %s", d->uri, nbd_msg());
	err = handle_connect(d, h);
	if (err) {
		if (err == ETIMEDOUT)
			ret = wc_err(-err, "%s: connection timed out after %u ms", d->uri,
				     d->timeout_ms);
		else
			ret = wc_err(-err, "%s: NBD connection failed: %s", d->uri, nbd_msg());
		goto out_close;
	}
	size = nbd_get_size(h);
	min = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
	max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
	if (size < 0) {
		ret = wc_err(-nbd_err(), "%s: cannot get the export size: %s", d->uri, nbd_msg());
		goto out_close;
	}
	if (d->dev.size && (uint64_t)size != d->dev.size) {
		ret = wc_err(-EIO, "%s: the export is now %" PRId64 " bytes, was %" PRIu64
			     "; refusing to use a different export", d->uri, size, d->dev.size);
		goto out_close;
	}
	if (!d->rdonly && nbd_is_read_only(h) == 1) {
		ret = wc_err(-EROFS, "%s: the NBD export is read-only", d->uri);
		goto out_close;
	}
	if (min <= 0)
		min = 1;
	if (min > NBD_MAX_MIN_BYTES || (min & (min - 1))) {
		ret = wc_err(-EPROTO, "%s: server advertises an invalid minimum block size %" PRId64,
			     d->uri, min);
		goto out_close;
	}
	if (max <= 0 || max > NBD_MAX_REQ_BYTES)
		max = NBD_MAX_REQ_BYTES;
	max &= ~(min - 1);
	if (max < min)
		max = min;
	if (!d->dev.size)
		d->dev.size = (uint64_t)size;
	pthread_mutex_lock(&d->lock);
	gen = d->gen;
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_lock(&c->lock);
	c->h = h;
	c->gen = gen;
	c->multi_conn = nbd_can_multi_conn(h) == 1;
	c->min_bytes = (uint32_t)min;
	c->max_bytes = (uint32_t)max;
	c->can_flush = nbd_can_flush(h) == 1;
	c->can_trim = nbd_can_trim(h) == 1;
	pthread_mutex_unlock(&c->lock);
	conn_wake(c);
	return 0;

out_close:
	nbd_close(h);
	return ret;
}

/* Start (or continue) an outage: warn once, make every other connection stale. lock held. */
static void pool_down_locked(struct nbd_dev *d, const char *why)
{
	d->gen++;
	if (d->down)
		return;
	d->down = true;
	d->down_since_ns = wc_now_ns();
	d->next_try_ns = 0;
	d->backoff_ns = NBD_BACKOFF_MIN_NS;
	wc_log(WC_LOG_WARN, "%s: connection to the NBD server lost (%s); reconnecting", d->uri,
	       why);
}

/*
 * Connect slot c: during an outage only when the backoff allows an attempt.
 * The caller has claimed the slot (c->connecting). Returns 0 or -errno with
 * a message (-EIO, or -EROFS).
 */
static int conn_connect(struct nbd_dev *d, struct nbd_conn *c)
{
	uint64_t now = wc_now_ns();
	unsigned new_gen = 0;
	int ret;

	pthread_mutex_lock(&d->lock);
	if (d->down && now < d->next_try_ns) {
		uint64_t ms = (d->next_try_ns - now + 999999) / 1000000;

		pthread_mutex_unlock(&d->lock);
		return wc_err(-EIO, "%s: NBD server unreachable; next reconnect attempt in %" PRIu64
			      " ms", d->uri, ms);
	}
	if (d->down) {
		/* Claim this attempt: concurrent callers fail fast until the next slot. */
		d->next_try_ns = now + d->backoff_ns;
		d->backoff_ns = d->backoff_ns * 2 < NBD_BACKOFF_MAX_NS ? d->backoff_ns * 2 :
									 NBD_BACKOFF_MAX_NS;
	}
	pthread_mutex_unlock(&d->lock);

	ret = conn_open(d, c);

	pthread_mutex_lock(&d->lock);
	if (ret) {
		if (!d->down) {
			pool_down_locked(d, wcache_last_error());
			d->next_try_ns = now + d->backoff_ns;
			d->backoff_ns *= 2;
		}
	} else {
		if (d->down) {
			d->down = false;
			wc_log(WC_LOG_INFO, "%s: reconnected to the NBD server after %.1f s", d->uri,
			       (double)(wc_now_ns() - d->down_since_ns) / 1e9);
		}
		if (d->nr_conns > 1 && !c->multi_conn) {
			/* Other connections finish their commands, then close. */
			d->nr_conns = 1;
			new_gen = ++d->gen;
			wc_log(WC_LOG_WARN, "%s: server no longer supports multi-conn; using one "
			       "connection", d->uri);
		}
	}
	pthread_mutex_unlock(&d->lock);
	if (new_gen) {
		/* (Never c->lock inside d->lock: submitters take them the other way.) */
		pthread_mutex_lock(&c->lock);
		c->gen = new_gen;
		pthread_mutex_unlock(&c->lock);
	}
	if (ret && ret != -EROFS)
		ret = -EIO;	/* the message from conn_open stays */
	return ret;
}

/*
 * A connection for new commands, returned with c->lock held and c->h set:
 * the least busy live one, or a freshly (re)connected slot. Returns NULL
 * with -errno in *err and a message when none can be had.
 */
static struct nbd_conn *conn_get(struct nbd_dev *d, int *err)
{
	for (unsigned tries = 0; tries < 8; tries++) {
		struct nbd_conn *best = NULL, *idle = NULL;
		unsigned best_load = 0, n, gen, start;

		pthread_mutex_lock(&d->lock);
		n = d->nr_conns;
		gen = d->gen;
		start = d->rr++;
		pthread_mutex_unlock(&d->lock);
		for (unsigned i = 0; i < n; i++) {
			struct nbd_conn *c = &d->conns[(start + i) % n];
			bool live, free_slot;
			unsigned load;

			pthread_mutex_lock(&c->lock);
			live = c->h && c->gen == gen;
			free_slot = !c->h && !c->connecting;
			pthread_mutex_unlock(&c->lock);
			if (!live) {
				if (free_slot && !idle)
					idle = c;
				continue;
			}
			pthread_mutex_lock(&c->qlock);
			load = c->nr_inflight;
			pthread_mutex_unlock(&c->qlock);
			if (!best || load < best_load) {
				best = c;
				best_load = load;
				if (!load)
					break;
			}
		}
		if (best) {
			pthread_mutex_lock(&best->lock);
			if (best->h && best->gen == gen)
				return best;
			pthread_mutex_unlock(&best->lock);
			continue;	/* it died meanwhile: look again */
		}
		if (!idle)
			break;
		pthread_mutex_lock(&idle->lock);
		if (idle->connecting || idle->h) {
			pthread_mutex_unlock(&idle->lock);
			continue;
		}
		idle->connecting = true;
		pthread_mutex_unlock(&idle->lock);
		*err = conn_connect(d, idle);
		pthread_mutex_lock(&idle->lock);
		idle->connecting = false;
		if (!*err && idle->h)
			return idle;
		pthread_mutex_unlock(&idle->lock);
		if (*err)
			return NULL;
	}
	*err = wc_err(-EIO, "%s: NBD server unreachable; reconnecting", d->uri);
	return NULL;
}

/* ---------------------------------------------------------------- completion */

/*
 * Partial-block writes run alone (servers with a minimum block size): a
 * whole-block write waits out an rmw and is counted while in flight; an
 * rmw waits for the count to drain and holds new ones off.
 */
static void whole_write_begin(struct nbd_dev *d)
{
	pthread_mutex_lock(&d->lock);
	while (d->rmw_busy)
		pthread_cond_wait(&d->cond, &d->lock);
	d->whole_writes++;
	pthread_mutex_unlock(&d->lock);
}

static void whole_write_end(struct nbd_dev *d)
{
	pthread_mutex_lock(&d->lock);
	if (!--d->whole_writes)
		pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void rmw_begin(struct nbd_dev *d)
{
	pthread_mutex_lock(&d->lock);
	while (d->rmw_busy)
		pthread_cond_wait(&d->cond, &d->lock);
	d->rmw_busy = true;
	while (d->whole_writes)
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

static void rmw_end(struct nbd_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->rmw_busy = false;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* dev_priv[0] flag: a whole-block write counted in d->whole_writes. */
#define PIECES_COUNTED	(1ull << 63)

/* libnbd's completion callback: runs inside libnbd, so it only queues. */
static int cmd_callback(void *opaque, int *error)
{
	struct nbd_cmd *k = opaque;
	struct nbd_conn *c = k->c;

	pthread_mutex_lock(&c->qlock);
	k->err = *error;
	/* Commands libnbd retires because the connection died fail with ENOTCONN. */
	k->dead = err_is_dead(*error);
	list_del(&c->inflight, k);
	c->nr_inflight--;
	list_add(&c->done, k);
	pthread_mutex_unlock(&c->qlock);
	if (cur_loop != c)
		conn_wake(c);
	return 1;	/* retire the command */
}

/*
 * Finish one command on the connection thread: account it, and end its
 * request when it was the last piece. No lock held.
 */
static void cmd_end(struct nbd_dev *d, struct nbd_cmd *k)
{
	struct wc_io *io = k->io;
	int ret = 0;

	if (k->err && k->dead) {
		const char *why = k->err == ETIMEDOUT ? "server stopped responding" :
							 strerror(k->err);

		ret = wc_err(-EIO, "%s: %s of %" PRIu64 " bytes at offset %" PRIu64
			     " failed: connection lost (%s)", d->uri, op_names[k->op], k->len,
			     k->off, why);
	} else if (k->err) {
		ret = wc_err(-k->err, "%s: %s of %" PRIu64 " bytes at offset %" PRIu64
			     " failed: %s", d->uri, op_names[k->op], k->len, k->off,
			     strerror(k->err));
	} else if (k->op == OP_WRITE || k->op == OP_TRIM) {
		pthread_mutex_lock(&d->lock);
		d->write_gen++;
		pthread_mutex_unlock(&d->lock);
	} else if (k->op == OP_FLUSH) {
		pthread_mutex_lock(&d->lock);
		if (k->flush_gen > d->flushed_gen)
			d->flushed_gen = k->flush_gen;
		pthread_mutex_unlock(&d->lock);
	}
	free(k);
	if (!io)
		return;
	/* dev_priv[0]: pieces outstanding; dev_priv[1]: first error (as -errno). */
	if (ret && !io->dev_priv[1]) {
		io->dev_priv[1] = (uint64_t)(int64_t)ret;
		if (io->msg && io->msg_len)
			snprintf(io->msg, io->msg_len, "%s", wcache_last_error());
	}
	if (--io->dev_priv[0] & ~PIECES_COUNTED)
		return;
	if (io->dev_priv[0] & PIECES_COUNTED)
		whole_write_end(d);
	io->done(io, (int)(int64_t)io->dev_priv[1]);
}

/* End every command on c's done list. */
static void conn_drain_done(struct nbd_conn *c)
{
	for (;;) {
		struct nbd_cmd *k;

		pthread_mutex_lock(&c->qlock);
		k = c->done.head;
		if (k)
			list_del(&c->done, k);
		pthread_mutex_unlock(&c->qlock);
		if (!k)
			return;
		cmd_end(c->d, k);
	}
}

/*
 * The connection is gone (err: why) or stale: close it and fail what was
 * in flight. Connection thread only.
 */
static void conn_teardown(struct nbd_conn *c, int err, bool quiet)
{
	struct nbd_dev *d = c->d;
	bool had_cmds;
	char reason[128];

	pthread_mutex_lock(&c->lock);
	if (c->h)
		nbd_close(c->h);	/* libnbd lets go of every buffer */
	c->h = NULL;
	pthread_mutex_unlock(&c->lock);

	pthread_mutex_lock(&c->qlock);
	had_cmds = c->inflight.head != NULL;
	while (c->inflight.head) {
		struct nbd_cmd *k = c->inflight.head;

		list_del(&c->inflight, k);
		k->err = err;
		k->dead = true;
		list_add(&c->done, k);
	}
	c->nr_inflight = 0;
	pthread_mutex_unlock(&c->qlock);
	if (quiet && !had_cmds)
		return;
	snprintf(reason, sizeof(reason), "%s",
		 err == ETIMEDOUT ? "server stopped responding" : strerror(err));
	pthread_mutex_lock(&d->lock);
	/* A flush that fails reports the loss itself; anything else leaves it for the next flush. */
	if (d->write_gen != d->flushed_gen)
		d->lost = true;
	pool_down_locked(d, reason);
	pthread_mutex_unlock(&d->lock);
}

/*
 * Connection thread: polls the socket (and the wake-up eventfd) outside
 * libnbd's handle lock, lets libnbd move its state machine, ends
 * completed commands, and notices dead or silent servers.
 */
static void *conn_main(void *arg)
{
	struct nbd_conn *c = arg;
	struct nbd_dev *d = c->d;

	cur_loop = c;
	for (;;) {
		struct pollfd p[2] = { { .fd = c->evfd, .events = POLLIN } };
		struct nbd_handle *h;
		unsigned nfds = 1, gen;
		bool busy, stop;
		int r, timeout;

		pthread_mutex_lock(&d->lock);
		gen = d->gen;
		pthread_mutex_unlock(&d->lock);
		pthread_mutex_lock(&c->lock);
		h = c->h;
		if (h && c->gen != gen && !c->connecting) {
			pthread_mutex_lock(&c->qlock);
			busy = c->nr_inflight;
			pthread_mutex_unlock(&c->qlock);
			if (!busy) {
				/* Stale and idle: nobody will use it again. */
				pthread_mutex_unlock(&c->lock);
				conn_teardown(c, ENOTCONN, true);
				continue;
			}
		}
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_lock(&c->qlock);
		busy = c->nr_inflight;
		stop = c->stop && !busy && !c->done.head;
		pthread_mutex_unlock(&c->qlock);
		if (stop)
			break;
		if (h) {
			unsigned dir = nbd_aio_get_direction(h);

			p[1].fd = nbd_aio_get_fd(h);
			p[1].events = (short)((dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
					      (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0));
			if (p[1].fd >= 0)
				nfds = 2;
		}
		timeout = busy ? NBD_POLL_MS : -1;
		r = poll(p, nfds, timeout);
		if (r < 0 && errno != EINTR) {
			wc_log(WC_LOG_ERROR, "%s: poll: %s", d->uri, strerror(errno));
			sleep(1);
		}
		if (r > 0 && (p[0].revents & POLLIN)) {
			uint64_t v;

			if (read(c->evfd, &v, sizeof(v)) < 0) {
				/* EAGAIN: someone else drained it. */
			}
		}
		if (r > 0 && nfds == 2 && p[1].revents) {
			int nr = 0, e = 0;

			if (p[1].revents & (POLLIN | POLLHUP))
				nr = nbd_aio_notify_read(h);
			else if (p[1].revents & POLLOUT)
				nr = nbd_aio_notify_write(h);
			else
				nr = -1;
			if (nr < 0)
				e = nbd_err();
			pthread_mutex_lock(&c->qlock);
			c->last_progress_ns = wc_now_ns();
			pthread_mutex_unlock(&c->qlock);
			if (nr < 0 || conn_is_dead(h, 0))
				conn_teardown(c, e && e != EIO ? e : ENOTCONN, false);
		} else if (busy && d->timeout_ms) {
			uint64_t last;

			pthread_mutex_lock(&c->qlock);
			last = c->last_progress_ns;
			pthread_mutex_unlock(&c->qlock);
			if (wc_now_ns() - last >= d->timeout_ms * 1000000ull)
				conn_teardown(c, ETIMEDOUT, false);
		}
		conn_drain_done(c);
	}
	return NULL;
}

/* ---------------------------------------------------------------- submission */

/*
 * Issue one command on c (c->lock held, c->h set). A command libnbd
 * refuses goes straight to the done list, for the thread to end.
 */
static void cmd_issue(struct nbd_conn *c, struct nbd_cmd *k, void *buf)
{
	nbd_completion_callback cb = { .callback = cmd_callback, .user_data = k };
	int64_t cookie = -1;
	bool was_idle;

	k->c = c;
	pthread_mutex_lock(&c->qlock);
	was_idle = !c->nr_inflight;
	if (was_idle)
		c->last_progress_ns = wc_now_ns();
	list_add(&c->inflight, k);
	c->nr_inflight++;
	pthread_mutex_unlock(&c->qlock);
	switch (k->op) {
	case OP_READ:
		cookie = nbd_aio_pread(c->h, buf, k->len, k->off, cb, 0);
		break;
	case OP_WRITE:
		cookie = nbd_aio_pwrite(c->h, buf, k->len, k->off, cb, 0);
		break;
	case OP_TRIM:
		cookie = nbd_aio_trim(c->h, k->len, k->off, cb, 0);
		break;
	case OP_FLUSH:
		cookie = nbd_aio_flush(c->h, cb, 0);
		break;
	}
	if (cookie < 0) {
		int e = nbd_err();

		pthread_mutex_lock(&c->qlock);
		list_del(&c->inflight, k);
		c->nr_inflight--;
		k->err = e;
		/* Refused before it left: the handle is in no state to send (dying or dead). */
		k->dead = e != EROFS && e != ERANGE;
		list_add(&c->done, k);
		pthread_mutex_unlock(&c->qlock);
		conn_wake(c);
		return;
	}
	if (was_idle || (nbd_aio_get_direction(c->h) & LIBNBD_AIO_DIRECTION_WRITE))
		conn_wake(c);
}

static struct nbd_cmd *cmd_new(struct wc_io *io, enum nbd_op op, uint64_t len, uint64_t off)
{
	struct nbd_cmd *k = calloc(1, sizeof(*k));

	if (k) {
		k->io = io;
		k->op = op;
		k->len = len;
		k->off = off;
	}
	return k;
}

/*
 * Synchronous command for the rare read-modify-write path: waits, so it is
 * never used from a completion. 0 or -errno with a message.
 */
static int sync_cmd(struct nbd_dev *d, enum nbd_op op, void *buf, uint64_t len, uint64_t off)
{
	char msg[512] = "";
	struct wc_io_wait w;
	struct wc_io io = { .done = wc_io_wait_done, .opaque = &w, .msg = msg,
			    .msg_len = sizeof(msg) };
	struct nbd_conn *c;
	struct nbd_cmd *k;
	int ret;

	c = conn_get(d, &ret);
	if (!c)
		return ret;
	k = cmd_new(&io, op, len, off);
	if (!k) {
		pthread_mutex_unlock(&c->lock);
		return wc_err(-ENOMEM, "%s: out of memory", d->uri);
	}
	io.dev_priv[0] = 1;
	wc_io_wait_init(&w);
	wc_io_wait_add(&w, 1);
	cmd_issue(c, k, buf);
	pthread_mutex_unlock(&c->lock);
	ret = wc_io_wait_end(&w);
	if (ret)
		wc_err(ret, "%s", msg[0] ? msg : strerror(-ret));
	return ret;
}

/*
 * Read or write [off, off + len) when it is not aligned to the server's
 * minimum block size: whole blocks straight, edges through a bounce block
 * (read, patch, write). Runs in the submitter and waits.
 */
static int rw_unaligned(struct nbd_dev *d, struct wc_io *io, uint32_t m, uint32_t max)
{
	uint8_t *p = io->buf, *bounce = malloc(m);
	uint64_t off = io->off, len = io->len;
	bool wr = io->op == WC_IO_WRITE;
	int ret = 0;

	if (!bounce)
		return wc_err(-ENOMEM, "%s: out of memory", d->uri);
	while (len && !ret) {
		uint64_t boff = off & (m - 1), n;

		if (boff || len < m) {
			uint64_t start = off - boff;
			uint64_t blen = d->dev.size - start < m ? d->dev.size - start : m;

			n = m - boff < len ? m - boff : len;
			ret = sync_cmd(d, OP_READ, bounce, blen, start);
			if (!ret && !wr) {
				memcpy(p, bounce + boff, n);
			} else if (!ret) {
				memcpy(bounce + boff, p, n);
				ret = sync_cmd(d, OP_WRITE, bounce, blen, start);
			}
		} else {
			n = len & ~(uint64_t)(m - 1);
			if (n > max)
				n = max;
			ret = sync_cmd(d, wr ? OP_WRITE : OP_READ, p, n, off);
		}
		p += n;
		off += n;
		len -= n;
	}
	free(bounce);
	return ret;
}

/* Start one request; on an immediate failure it is ended here. */
static void nbd_submit_one(struct nbd_dev *d, struct wc_io *io)
{
	static const enum nbd_op ops[] = { OP_READ, OP_WRITE, OP_FLUSH, OP_TRIM };
	enum nbd_op op = ops[io->op];
	struct nbd_cmd *first = NULL, **tail = &first;
	uint64_t start = io->off, end = io->off + io->len, step, n = 0;
	struct nbd_conn *c;
	bool counted = false;
	int ret = 0;

	if (d->rdonly && (op == OP_WRITE || op == OP_TRIM)) {
		ret = wc_err(-EROFS, "%s: %s on a device opened read-only", d->dev.name,
			     op == OP_WRITE ? "write" : "discard");
		goto fail;
	}
	c = conn_get(d, &ret);
	if (!c)
		goto fail;
	if ((op == OP_READ || op == OP_WRITE) && c->min_bytes > 1 &&
	    ((io->off | io->len) & (c->min_bytes - 1))) {
		uint32_t m = c->min_bytes, max = c->max_bytes;

		pthread_mutex_unlock(&c->lock);
		if (op == OP_WRITE)
			rmw_begin(d);
		ret = rw_unaligned(d, io, m, max);
		if (op == OP_WRITE)
			rmw_end(d);
		dev_io_end(io, ret);
		return;
	}
	if (op == OP_TRIM) {
		/* Only the whole minimum blocks inside the range; nothing if the server cannot trim. */
		start = (start + c->min_bytes - 1) & ~(uint64_t)(c->min_bytes - 1);
		end &= ~(uint64_t)(c->min_bytes - 1);
		if (!c->can_trim || start >= end) {
			pthread_mutex_unlock(&c->lock);
			dev_io_end(io, 0);
			return;
		}
	}
	if (op == OP_FLUSH) {
		struct nbd_cmd *k;

		pthread_mutex_lock(&d->lock);
		if (d->lost) {
			d->lost = false;
			ret = wc_err(-EIO, "%s: flush failed: the connection to the NBD server was "
				     "lost before earlier writes were flushed", d->uri);
		}
		pthread_mutex_unlock(&d->lock);
		if (ret || !c->can_flush) {
			pthread_mutex_unlock(&c->lock);
			dev_io_end(io, ret);
			return;
		}
		k = cmd_new(io, OP_FLUSH, 0, 0);
		if (!k) {
			pthread_mutex_unlock(&c->lock);
			ret = wc_err(-ENOMEM, "%s: out of memory", d->uri);
			goto fail;
		}
		/* With multi-conn, a flush on one connection covers writes completed on all. */
		pthread_mutex_lock(&d->lock);
		k->flush_gen = d->write_gen;
		pthread_mutex_unlock(&d->lock);
		io->dev_priv[0] = 1;
		io->dev_priv[1] = 0;
		cmd_issue(c, k, NULL);
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (op == OP_WRITE && c->min_bytes > 1) {
		counted = true;
		pthread_mutex_unlock(&c->lock);
		whole_write_begin(d);
		/* The connection may have changed while we waited: take one again. */
		c = conn_get(d, &ret);
		if (!c) {
			whole_write_end(d);
			goto fail;
		}
	}
	step = op == OP_TRIM ? NBD_TRIM_CHUNK_BYTES : c->max_bytes;
	for (uint64_t o = start; o < end; o += step) {
		struct nbd_cmd *k = cmd_new(io, op, end - o < step ? end - o : step, o);

		if (!k) {
			while (first) {
				struct nbd_cmd *x = first;

				first = x->next;
				free(x);
			}
			pthread_mutex_unlock(&c->lock);
			if (counted)
				whole_write_end(d);
			ret = wc_err(-ENOMEM, "%s: out of memory", d->uri);
			goto fail;
		}
		*tail = k;
		tail = &k->next;
		n++;
	}
	/* Every piece is counted before the first can complete. */
	io->dev_priv[0] = n | (counted ? PIECES_COUNTED : 0);
	io->dev_priv[1] = 0;
	while (first) {
		struct nbd_cmd *k = first;

		first = k->next;
		k->next = NULL;
		cmd_issue(c, k, op == OP_TRIM ? NULL : (uint8_t *)io->buf + (k->off - io->off));
	}
	pthread_mutex_unlock(&c->lock);
	return;

fail:
	dev_io_end(io, ret);
}

static void nbd_dev_submit(struct wc_dev *dev, struct wc_io **ios, unsigned n)
{
	struct nbd_dev *d = to_nbd(dev);

	for (unsigned i = 0; i < n; i++)
		nbd_submit_one(d, ios[i]);
}

static void nbd_free(struct nbd_dev *d)
{
	for (unsigned i = 0; i < NBD_MAX_CONNS; i++) {
		struct nbd_conn *c = &d->conns[i];

		if (c->thread_started) {
			pthread_mutex_lock(&c->qlock);
			c->stop = true;
			pthread_mutex_unlock(&c->qlock);
			conn_wake(c);
			pthread_join(c->thread, NULL);
		}
		if (c->h)
			nbd_close(c->h);
		if (c->evfd >= 0)
			close(c->evfd);
		pthread_mutex_destroy(&c->qlock);
		pthread_mutex_destroy(&c->lock);
	}
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	free(d->uri);
	free(d);
}

static void nbd_dev_close(struct wc_dev *dev)
{
	nbd_free(to_nbd(dev));
}

static const struct wc_dev_ops nbd_ops = {
	.name = "nbd",
	.submit = nbd_dev_submit,
	.close = nbd_dev_close,
};

static unsigned timeout_from_env(void)
{
	const char *s = getenv("WC_NBD_TIMEOUT_MS");
	char *end;
	unsigned long v;

	if (!s || !*s)
		return NBD_TIMEOUT_MS;
	v = strtoul(s, &end, 10);
	if (*end || v > 86400000ul) {
		wc_log(WC_LOG_WARN, "ignoring invalid WC_NBD_TIMEOUT_MS=%s", s);
		return NBD_TIMEOUT_MS;
	}
	return (unsigned)v;
}

int dev_nbd_open(const char *uri, unsigned flags, struct wc_dev **out)
{
	struct nbd_dev *d = calloc(1, sizeof(*d));
	int ret;

	if (!d || !(d->uri = strdup(uri))) {
		free(d);
		return wc_err(-ENOMEM, "%s: out of memory", uri);
	}
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	for (unsigned i = 0; i < NBD_MAX_CONNS; i++)
		d->conns[i].evfd = -1;
	for (unsigned i = 0; i < NBD_MAX_CONNS; i++) {
		struct nbd_conn *c = &d->conns[i];

		c->d = d;
		pthread_mutex_init(&c->lock, NULL);
		pthread_mutex_init(&c->qlock, NULL);
		c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (c->evfd < 0) {
			ret = wc_err(-errno, "%s: eventfd: %s", uri, strerror(errno));
			goto out_free;
		}
	}
	d->rdonly = flags & DEV_RDONLY;
	d->timeout_ms = timeout_from_env();
	d->dev.ops = &nbd_ops;
	d->dev.priv = d;
	snprintf(d->dev.name, sizeof(d->dev.name), "%s", uri);

	ret = conn_open(d, &d->conns[0]);
	if (ret)
		goto out_free;
	if (!d->dev.size) {
		ret = wc_err(-EINVAL, "%s: the NBD export has size 0", uri);
		goto out_free;
	}
	d->nr_conns = nbd_can_multi_conn(d->conns[0].h) == 1 ? NBD_MAX_CONNS : 1;
	for (unsigned i = 1; i < d->nr_conns; i++) {
		ret = conn_open(d, &d->conns[i]);
		if (ret)
			goto out_free;
	}
	for (unsigned i = 0; i < NBD_MAX_CONNS; i++) {
		struct nbd_conn *c = &d->conns[i];

		ret = -pthread_create(&c->thread, NULL, conn_main, c);
		if (ret) {
			wc_err(ret, "%s: cannot start a connection thread: %s", uri, strerror(-ret));
			goto out_free;
		}
		c->thread_started = true;
	}
	d->dev.logical_block = d->conns[0].min_bytes > 512 ? d->conns[0].min_bytes : 512;
	wc_log(WC_LOG_DEBUG, "%s: NBD export of %" PRIu64 " bytes, %u connection(s), block "
	       "%u..%u bytes, flush %s, trim %s", uri, d->dev.size, d->nr_conns,
	       d->conns[0].min_bytes, d->conns[0].max_bytes, d->conns[0].can_flush ? "yes" : "no",
	       d->conns[0].can_trim ? "yes" : "no");
	*out = &d->dev;
	return 0;

out_free:
	nbd_free(d);
	return ret;
}
