/* SPDX-License-Identifier: MIT */
/*
 * NBD origin backend (libnbd): any NBD server can be the slow origin.
 *
 * Design: a small pool of connections, each used by one thread at a time
 * (4 when the server advertises multi-conn, else 1 behind the pool lock).
 * The engine already calls us synchronously from several threads, so a
 * pool gives parallelism with plain blocking code; one shared handle with
 * an AIO completion loop would need its own thread and hand-off queue for
 * little gain. Each command is issued with the AIO call and waited for with
 * nbd_poll(), only so that a server that stops answering times out
 * (WC_NBD_TIMEOUT_MS, default 60 s without progress) instead of hanging.
 *
 * Requests are split at the server's maximum block size (cap 32 MiB) and
 * edges not aligned to its minimum block size are read-modify-written.
 * A dropped connection fails the call in progress with -EIO; later calls
 * reconnect, at most one attempt per call, 100 ms doubling to 5 s apart.
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
#include <time.h>

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

struct nbd_conn {
	struct nbd_handle *h;	/* NULL while disconnected; owner only */
	unsigned gen;		/* d->lock: pool generation it was connected in */
	bool busy;		/* d->lock */
	/* Capabilities of the current connection (owner only). */
	uint32_t min_bytes, max_bytes;
	bool can_flush, can_trim;
	uint8_t *bounce;	/* min_bytes, when min_bytes > 1 */
	bool broken;		/* a command may still be in flight: close, never reuse */
};

struct nbd_dev {
	struct wc_dev dev;
	char *uri;
	bool rdonly;
	unsigned timeout_ms;	/* 0: wait forever */
	/* Partial-block writes hold rmw exclusively, all other writes shared. */
	pthread_rwlock_t rmw;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* a connection became free */
	unsigned nr_conns;	/* lock: connections in use (shrinks if multi-conn goes away) */
	unsigned gen;		/* lock: bumped when a connection dies; older ones are stale */
	struct nbd_conn conns[NBD_MAX_CONNS];
	/* Outage state, lock. */
	bool down;		/* warned; cleared (with an info line) on reconnect */
	uint64_t down_since_ns, next_try_ns, backoff_ns;
	/* Unflushed-write tracking, lock. */
	uint64_t write_gen;	/* successful writes and trims */
	uint64_t flushed_gen;	/* write_gen covered by the last successful flush */
	bool lost;		/* a connection died with unflushed writes; next flush fails */
};

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

static bool conn_is_dead(struct nbd_handle *h, int err)
{
	return nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1 || err == ENOTCONN ||
	       err == ESHUTDOWN || err == EPIPE || err == ECONNRESET || err == ETIMEDOUT;
}

/*
 * Wait for one command; 0 or a positive errno (ETIMEDOUT when the server
 * stalls). If we give up while the command is still in flight, c->broken is
 * set: the connection must be closed before the caller's buffer is reused.
 */
static int conn_wait(struct nbd_dev *d, struct nbd_conn *c, int64_t cookie)
{
	uint64_t last = wc_now_ns();

	for (;;) {
		int r = nbd_aio_command_completed(c->h, (uint64_t)cookie);

		if (r == 1)
			return 0;
		if (r < 0)
			return nbd_err();	/* the command is retired */
		r = nbd_poll(c->h, NBD_POLL_MS);
		if (r < 0 && nbd_get_errno() == EINTR)
			continue;
		if (r < 0) {
			c->broken = true;
			return nbd_err();
		}
		if (r > 0) {
			last = wc_now_ns();
		} else if (d->timeout_ms && wc_now_ns() - last >= d->timeout_ms * 1000000ull) {
			c->broken = true;
			return ETIMEDOUT;
		}
	}
}

/* One NBD command on c; 0 or a positive errno. */
static int conn_cmd(struct nbd_dev *d, struct nbd_conn *c, enum nbd_op op, void *buf,
		    uint64_t len, uint64_t off)
{
	int64_t cookie = -1;

	switch (op) {
	case OP_READ:
		cookie = nbd_aio_pread(c->h, buf, len, off, NBD_NULL_COMPLETION, 0);
		break;
	case OP_WRITE:
		cookie = nbd_aio_pwrite(c->h, buf, len, off, NBD_NULL_COMPLETION, 0);
		break;
	case OP_TRIM:
		cookie = nbd_aio_trim(c->h, len, off, NBD_NULL_COMPLETION, 0);
		break;
	case OP_FLUSH:
		cookie = nbd_aio_flush(c->h, NBD_NULL_COMPLETION, 0);
		break;
	}
	if (cookie < 0)
		return nbd_err();
	return conn_wait(d, c, cookie);
}

/* Connect to d->uri and wait (bounded by the timeout) until ready; 0 or a positive errno. */
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
 * Open a connection for slot c and read the export's limits. On the first
 * connection (d->dev.size == 0) the size is taken; later ones must match it.
 * Returns 0 or -errno with a message naming the URI.
 */
static int conn_open(struct nbd_dev *d, struct nbd_conn *c)
{
	struct nbd_handle *h = nbd_create();
	int64_t size, min, max;
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
	free(c->bounce);
	c->bounce = NULL;
	if (min > 1 && !(c->bounce = malloc(min))) {
		ret = wc_err(-ENOMEM, "%s: out of memory", d->uri);
		goto out_close;
	}
	c->h = h;
	c->broken = false;
	c->min_bytes = (uint32_t)min;
	c->max_bytes = (uint32_t)max;
	c->can_flush = nbd_can_flush(h) == 1;
	c->can_trim = nbd_can_trim(h) == 1;
	if (!d->dev.size)
		d->dev.size = (uint64_t)size;
	return 0;

out_close:
	nbd_close(h);
	return ret;
}

static void conn_close(struct nbd_conn *c)
{
	if (c->h)
		nbd_close(c->h);
	c->h = NULL;
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

/* Take a free connection, waiting if all are busy. */
static struct nbd_conn *pool_get(struct nbd_dev *d)
{
	struct nbd_conn *c = NULL;
	bool stale;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		for (unsigned i = 0; i < d->nr_conns; i++) {
			struct nbd_conn *x = &d->conns[i];

			if (x->busy)
				continue;
			if (!c || (x->h && x->gen == d->gen && !(c->h && c->gen == d->gen)))
				c = x;
		}
		if (c)
			break;
		pthread_cond_wait(&d->cond, &d->lock);
	}
	c->busy = true;
	stale = c->h && c->gen != d->gen;
	pthread_mutex_unlock(&d->lock);
	if (stale)
		conn_close(c);
	return c;
}

static void pool_put(struct nbd_dev *d, struct nbd_conn *c)
{
	pthread_mutex_lock(&d->lock);
	c->busy = false;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/*
 * Make sure c is connected: one reconnect attempt at most, and during an
 * outage only when the backoff allows one. Returns 0 or -EIO with a message.
 */
static int conn_ensure(struct nbd_dev *d, struct nbd_conn *c)
{
	uint64_t now = wc_now_ns();
	int ret;

	if (c->h)
		return 0;
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
		c->gen = d->gen;
		if (d->down) {
			d->down = false;
			wc_log(WC_LOG_INFO, "%s: reconnected to the NBD server after %.1f s", d->uri,
			       (double)(wc_now_ns() - d->down_since_ns) / 1e9);
		}
		if (d->nr_conns > 1 && nbd_can_multi_conn(c->h) != 1) {
			/* Busy connections past the first finish their request, then idle. */
			d->nr_conns = 1;
			d->gen++;
			c->gen = d->gen;
			wc_log(WC_LOG_WARN, "%s: server no longer supports multi-conn; using one "
			       "connection", d->uri);
		}
	}
	pthread_mutex_unlock(&d->lock);
	if (ret && ret != -EROFS)
		ret = -EIO;	/* the message from conn_open stays */
	return ret;
}

/*
 * A command failed with err on c: if the connection is gone, drop it and
 * start an outage. Returns the -errno for the caller, with a message.
 */
static int conn_failed(struct nbd_dev *d, struct nbd_conn *c, enum nbd_op op, int err,
		       uint64_t len, uint64_t off)
{
	const char *why = err == ETIMEDOUT ? "server stopped responding" : strerror(err);
	char reason[128];

	if (!c->broken && !conn_is_dead(c->h, err))
		return wc_err(-err, "%s: %s of %" PRIu64 " bytes at offset %" PRIu64
			      " failed: %s", d->uri, op_names[op], len, off, strerror(err));
	snprintf(reason, sizeof(reason), "%s during %s", why, op_names[op]);
	conn_close(c);
	pthread_mutex_lock(&d->lock);
	/* A flush that fails reports the loss itself; anything else leaves it for the next flush. */
	if (op != OP_FLUSH && c->can_flush && d->write_gen != d->flushed_gen)
		d->lost = true;
	pool_down_locked(d, reason);
	pthread_mutex_unlock(&d->lock);
	return wc_err(-EIO, "%s: %s of %" PRIu64 " bytes at offset %" PRIu64
		      " failed: connection lost (%s)", d->uri, op_names[op], len, off, why);
}

/*
 * Read (rd) or write (wr) [off, off + len) on c: whole minimum blocks go
 * straight to the server in chunks of at most max_bytes; partial blocks go
 * through the bounce buffer (read, patch, write). 0 or a positive errno;
 * fail_op, fail_len and fail_off describe the command that failed.
 */
static int conn_span(struct nbd_dev *d, struct nbd_conn *c, uint8_t *rd, const uint8_t *wr,
		     uint64_t len, uint64_t off, enum nbd_op *fail_op, uint64_t *fail_len,
		     uint64_t *fail_off)
{
	uint64_t m = c->min_bytes;
	int err = 0;

	while (len && !err) {
		uint64_t boff = off & (m - 1), n;

		if (boff || len < m) {
			uint64_t start = off - boff;
			uint64_t blen = d->dev.size - start < m ? d->dev.size - start : m;

			n = m - boff < len ? m - boff : len;
			*fail_op = OP_READ;
			*fail_len = blen;
			*fail_off = start;
			err = conn_cmd(d, c, OP_READ, c->bounce, blen, start);
			if (!err && rd) {
				memcpy(rd, c->bounce + boff, n);
			} else if (!err) {
				memcpy(c->bounce + boff, wr, n);
				*fail_op = OP_WRITE;
				err = conn_cmd(d, c, OP_WRITE, c->bounce, blen, start);
			}
		} else {
			n = len & ~(m - 1);
			if (n > c->max_bytes)
				n = c->max_bytes;
			*fail_op = rd ? OP_READ : OP_WRITE;
			*fail_len = n;
			*fail_off = off;
			err = conn_cmd(d, c, *fail_op, rd ? (void *)rd : (void *)wr, n, off);
		}
		if (rd)
			rd += n;
		else
			wr += n;
		off += n;
		len -= n;
	}
	return err;
}

static int nbd_rw(struct wc_dev *dev, uint8_t *rd, const uint8_t *wr, size_t len, uint64_t off)
{
	struct nbd_dev *d = to_nbd(dev);
	struct nbd_conn *c = pool_get(d);
	uint64_t flen = len, foff = off;
	enum nbd_op fop = rd ? OP_READ : OP_WRITE;
	bool excl = false;
	int ret, err;

	ret = conn_ensure(d, c);
	if (ret)
		goto out_put;
	if (wr) {
		excl = c->min_bytes > 1 && ((off | len) & (c->min_bytes - 1));
		if (excl)
			pthread_rwlock_wrlock(&d->rmw);
		else
			pthread_rwlock_rdlock(&d->rmw);
	}
	err = conn_span(d, c, rd, wr, len, off, &fop, &flen, &foff);
	if (wr)
		pthread_rwlock_unlock(&d->rmw);
	if (err) {
		ret = conn_failed(d, c, fop, err, flen, foff);
	} else if (wr) {
		pthread_mutex_lock(&d->lock);
		d->write_gen++;
		pthread_mutex_unlock(&d->lock);
	}
out_put:
	pool_put(d, c);
	return ret;
}

static int nbd_dev_pread(struct wc_dev *dev, void *buf, size_t len, uint64_t off)
{
	return nbd_rw(dev, buf, NULL, len, off);
}

static int nbd_dev_pwrite(struct wc_dev *dev, const void *buf, size_t len, uint64_t off)
{
	if (to_nbd(dev)->rdonly)
		return wc_err(-EROFS, "%s: write to a device opened read-only", dev->name);
	return nbd_rw(dev, NULL, buf, len, off);
}

static int nbd_dev_flush(struct wc_dev *dev)
{
	struct nbd_dev *d = to_nbd(dev);
	struct nbd_conn *c = pool_get(d);
	uint64_t gen;
	int ret, err = 0;

	ret = conn_ensure(d, c);
	if (ret)
		goto out_put;
	pthread_mutex_lock(&d->lock);
	gen = d->write_gen;
	if (d->lost) {
		d->lost = false;
		ret = wc_err(-EIO, "%s: flush failed: the connection to the NBD server was lost "
			     "before earlier writes were flushed", d->uri);
	}
	pthread_mutex_unlock(&d->lock);
	if (ret)
		goto out_put;
	/* With multi-conn, a flush on one connection covers writes completed on all. */
	if (c->can_flush)
		err = conn_cmd(d, c, OP_FLUSH, NULL, 0, 0);
	if (err) {
		ret = conn_failed(d, c, OP_FLUSH, err, 0, 0);
	} else {
		pthread_mutex_lock(&d->lock);
		if (gen > d->flushed_gen)
			d->flushed_gen = gen;
		pthread_mutex_unlock(&d->lock);
	}
out_put:
	pool_put(d, c);
	return ret;
}

/* Trim the whole minimum blocks inside the range; no-op if the server cannot trim. */
static int nbd_dev_discard(struct wc_dev *dev, uint64_t len, uint64_t off)
{
	struct nbd_dev *d = to_nbd(dev);
	struct nbd_conn *c;
	uint64_t start, end;
	int ret, err = 0;

	if (d->rdonly)
		return wc_err(-EROFS, "%s: discard on a device opened read-only", dev->name);
	c = pool_get(d);
	ret = conn_ensure(d, c);
	if (ret || !c->can_trim)
		goto out_put;
	start = (off + c->min_bytes - 1) & ~(uint64_t)(c->min_bytes - 1);
	end = (off + len) & ~(uint64_t)(c->min_bytes - 1);
	while (start < end && !err) {
		uint64_t n = end - start < NBD_TRIM_CHUNK_BYTES ? end - start : NBD_TRIM_CHUNK_BYTES;

		err = conn_cmd(d, c, OP_TRIM, NULL, n, start);
		if (err)
			ret = conn_failed(d, c, OP_TRIM, err, n, start);
		start += n;
	}
	if (!ret) {
		pthread_mutex_lock(&d->lock);
		d->write_gen++;
		pthread_mutex_unlock(&d->lock);
	}
out_put:
	pool_put(d, c);
	return ret;
}

static void nbd_free(struct nbd_dev *d)
{
	for (unsigned i = 0; i < NBD_MAX_CONNS; i++) {
		conn_close(&d->conns[i]);
		free(d->conns[i].bounce);
	}
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	pthread_rwlock_destroy(&d->rmw);
	free(d->uri);
	free(d);
}

static void nbd_dev_close(struct wc_dev *dev)
{
	nbd_free(to_nbd(dev));
}

static const struct wc_dev_ops nbd_ops = {
	.name = "nbd",
	.pread = nbd_dev_pread,
	.pwrite = nbd_dev_pwrite,
	.flush = nbd_dev_flush,
	.discard = nbd_dev_discard,
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
	pthread_rwlock_init(&d->rmw, NULL);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
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
