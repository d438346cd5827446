/* SPDX-License-Identifier: MIT */
/*
 * Ceph RBD origin backend (librbd): an RBD image as the slow origin.
 *
 * Requests go straight to librbd's AIO calls; librbd completes them on its
 * own finisher thread, where dev_io_end runs (it must not block there).
 * librados reconnects by itself, so there is no reconnect logic here: an
 * outage shows up as requests failing with -ETIMEDOUT after the op timeout,
 * and the engine keeps the blocks dirty and retries (see docs/ceph.md).
 *
 * Ownership: a read-write open takes the image's exclusive lock
 * (rbd_lock_acquire) for as long as it is open, so two caches never write
 * one image. An image locked by someone else is refused, naming the owner;
 * force_unlock=1 breaks the lock (librbd blocklists the old owner first).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rados/librados.h>
#include <rbd/librbd.h>

#include "log.h"
#include "dev.h"
#include "rbd_spec.h"

/*
 * Timeouts set unless the ceph.conf or the origin string sets them (the
 * value still equals Ceph's built-in default): nothing waits forever, and
 * an OSD op outlives a normal OSD failover (heartbeat grace 20 s + peering)
 * so that reads of uncached blocks do not fail during one.
 */
static const struct {
	const char *key, *ceph_default, *ours;
} rbd_timeouts[] = {
	{ "client_mount_timeout", "300", "30" },	/* connect + first maps at open */
	{ "rados_mon_op_timeout", "0", "30" },	/* monitor commands (blocklist, lock break) */
	{ "rados_osd_op_timeout", "0", "60" },	/* every read, write, flush */
};

struct rbd_dev {
	struct wc_dev dev;
	struct rbd_spec sp;
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	bool have_cluster, have_ioctx, have_image;
	bool rdonly;
	char osd_timeout[16];	/* effective rados_osd_op_timeout, for messages */
};

static const char *const op_names[] = { "read", "write", "flush", "discard" };

/* A hint for the errors an outage or a fence produces. */
static const char *err_hint(struct rbd_dev *d, int err, char *buf, size_t len)
{
	if (err == -ETIMEDOUT)
		snprintf(buf, len, " (no answer from the cluster within rados_osd_op_timeout=%s s)",
			 d->osd_timeout);
	else if (err == -ESHUTDOWN)
		snprintf(buf, len, " (this client was blocklisted: another client broke the "
			 "image's lock, e.g. with force_unlock=1)");
	else
		buf[0] = '\0';
	return buf;
}

static void rbd_aio_done(rbd_completion_t comp, void *arg)
{
	struct wc_io *io = arg;
	struct rbd_dev *d = (struct rbd_dev *)(uintptr_t)io->dev_priv[0];
	ssize_t r = rbd_aio_get_return_value(comp);
	char hint[160];

	rbd_aio_release(comp);
	/* Reads return the byte count, writes/flush/discard 0. */
	if (r >= 0 && io->op == WC_IO_READ && (uint64_t)r != io->len)
		r = -EIO;
	if (r < 0) {
		wc_err((int)r, "%s: %s of %" PRIu64 " bytes at offset %" PRIu64 " failed: %s%s",
		       d->dev.name, op_names[io->op], io->len, io->off, strerror((int)-r),
		       err_hint(d, (int)r, hint, sizeof(hint)));
		dev_io_end(io, (int)r);
		return;
	}
	dev_io_end(io, 0);
}

static int rbd_start(struct rbd_dev *d, struct wc_io *io)
{
	rbd_completion_t comp;
	int ret;

	if (d->rdonly && (io->op == WC_IO_WRITE || io->op == WC_IO_DISCARD))
		return wc_err(-EROFS, "%s: %s on an image opened read-only", d->dev.name,
			      op_names[io->op]);
	io->dev_priv[0] = (uintptr_t)d;
	ret = rbd_aio_create_completion(io, rbd_aio_done, &comp);
	if (ret < 0)
		return wc_err(ret, "%s: cannot create a completion: %s", d->dev.name,
			      strerror(-ret));
	switch (io->op) {
	case WC_IO_READ:
		ret = rbd_aio_read(d->image, io->off, io->len, io->buf, comp);
		break;
	case WC_IO_WRITE:
		ret = rbd_aio_write(d->image, io->off, io->len, io->buf, comp);
		break;
	case WC_IO_FLUSH:
		/* Covers every write librbd has completed (and those still in flight). */
		ret = rbd_aio_flush(d->image, comp);
		break;
	case WC_IO_DISCARD:
		ret = rbd_aio_discard(d->image, io->off, io->len, comp);
		break;
	default:
		ret = -EINVAL;
		break;
	}
	if (ret < 0) {
		/* Refused before it started: the callback will not run. */
		rbd_aio_release(comp);
		return wc_err(ret, "%s: %s of %" PRIu64 " bytes at offset %" PRIu64
			      " refused by librbd: %s", d->dev.name, op_names[io->op], io->len,
			      io->off, strerror(-ret));
	}
	return 0;
}

static void rbd_dev_submit(struct wc_dev *dev, struct wc_io **ios, unsigned n)
{
	struct rbd_dev *d = dev->priv;

	for (unsigned i = 0; i < n; i++) {
		int ret = rbd_start(d, ios[i]);

		if (ret)
			dev_io_end(ios[i], ret);
	}
}

static void rbd_free(struct rbd_dev *d)
{
	if (d->have_image) {
		/* Flushes librbd's own state and releases the exclusive lock. */
		int ret = rbd_close(d->image);

		if (ret < 0)
			wc_log(WC_LOG_WARN, "%s: closing the image: %s", d->dev.name,
			       strerror(-ret));
	}
	if (d->have_ioctx)
		rados_ioctx_destroy(d->ioctx);
	if (d->have_cluster)
		rados_shutdown(d->cluster);
	rbd_spec_free(&d->sp);
	free(d);
}

static void rbd_dev_close(struct wc_dev *dev)
{
	rbd_free(dev->priv);
}

static const struct wc_dev_ops rbd_ops = {
	.name = "rbd",
	.submit = rbd_dev_submit,
	.close = rbd_dev_close,
};

/* ---------------------------------------------------------------- open */

static int set_conf(struct rbd_dev *d, const char *key, const char *val)
{
	int ret = rados_conf_set(d->cluster, key, val);

	if (ret == -ENOENT)
		return wc_err(-EINVAL, "%s: \"%s\" is not a Ceph option", d->dev.name, key);
	if (ret < 0)
		return wc_err(ret, "%s: %s=%s: %s", d->dev.name, key, val, strerror(-ret));
	return 0;
}

/* Read the config, apply the origin string's options and our timeouts. */
static int configure(struct rbd_dev *d)
{
	const struct rbd_spec *sp = &d->sp;
	char val[64];
	int ret;

	if (sp->conf && access(sp->conf, R_OK) < 0)
		return wc_err(-errno, "%s: cannot read the Ceph config file %s: %s", d->dev.name,
			      sp->conf, strerror(errno));
	/* NULL: the usual search ($CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf). */
	ret = rados_conf_read_file(d->cluster, sp->conf);
	if (ret < 0 && (sp->conf || ret != -ENOENT))
		return wc_err(ret, "%s: cannot parse the Ceph config file %s: %s", d->dev.name,
			      sp->conf ? sp->conf : "(default search path)", strerror(-ret));
	if (ret < 0)
		return wc_err(-ENOENT, "%s: no Ceph config found (give :conf=PATH or set "
			      "CEPH_CONF)", d->dev.name);
	if (sp->keyring) {
		if (access(sp->keyring, R_OK) < 0)
			return wc_err(-errno, "%s: cannot read the keyring %s: %s", d->dev.name,
				      sp->keyring, strerror(errno));
		ret = set_conf(d, "keyring", sp->keyring);
		if (ret)
			return ret;
	}
	/* wcache is the cache: librbd's RAM cache would only add a copy. */
	ret = set_conf(d, "rbd_cache", "false");
	for (unsigned i = 0; !ret && i < sizeof(rbd_timeouts) / sizeof(rbd_timeouts[0]); i++) {
		if (rados_conf_get(d->cluster, rbd_timeouts[i].key, val, sizeof(val)) == 0 &&
		    !strcmp(val, rbd_timeouts[i].ceph_default))
			ret = set_conf(d, rbd_timeouts[i].key, rbd_timeouts[i].ours);
	}
	for (unsigned i = 0; !ret && i < sp->nr_opts; i++)
		ret = set_conf(d, sp->opt_key[i], sp->opt_val[i]);
	if (ret)
		return ret;
	if (rados_conf_get(d->cluster, "rados_osd_op_timeout", d->osd_timeout,
			   sizeof(d->osd_timeout)) < 0)
		snprintf(d->osd_timeout, sizeof(d->osd_timeout), "?");
	return 0;
}

static int connect_cluster(struct rbd_dev *d)
{
	char mon[256] = "?", tmo[16] = "?";
	int ret;

	ret = rados_create(&d->cluster, d->sp.id);
	if (ret < 0)
		return wc_err(ret, "%s: cannot create a RADOS handle for id %s: %s", d->dev.name,
			      d->sp.id ? d->sp.id : "admin", strerror(-ret));
	d->have_cluster = true;
	ret = configure(d);
	if (ret)
		return ret;
	ret = rados_connect(d->cluster);
	if (ret < 0) {
		rados_conf_get(d->cluster, "mon_host", mon, sizeof(mon));
		rados_conf_get(d->cluster, "client_mount_timeout", tmo, sizeof(tmo));
		if (ret == -ETIMEDOUT)
			return wc_err(ret, "%s: cannot reach the Ceph cluster (mon host %s) within "
				      "client_mount_timeout=%s s", d->dev.name, mon, tmo);
		return wc_err(ret, "%s: cannot connect to the Ceph cluster (mon host %s) as "
			      "client.%s: %s", d->dev.name, mon, d->sp.id ? d->sp.id : "admin",
			      strerror(-ret));
	}
	ret = rados_ioctx_create(d->cluster, d->sp.pool, &d->ioctx);
	if (ret == -ENOENT)
		return wc_err(ret, "%s: pool \"%s\" does not exist", d->dev.name, d->sp.pool);
	if (ret < 0)
		return wc_err(ret, "%s: cannot open pool \"%s\": %s", d->dev.name, d->sp.pool,
			      strerror(-ret));
	d->have_ioctx = true;
	return 0;
}

static int open_image(struct rbd_dev *d)
{
	const struct rbd_spec *sp = &d->sp;
	rbd_image_t probe;
	int ret;

	if (sp->snap && !d->rdonly)
		return wc_err(-EROFS, "%s: a snapshot is read-only; open it read-only (or drop "
			      "@%s)", d->dev.name, sp->snap);
	if (d->rdonly)
		ret = rbd_open_read_only(d->ioctx, sp->image, &d->image, sp->snap);
	else
		ret = rbd_open(d->ioctx, sp->image, &d->image, NULL);
	if (ret == -ENOENT && sp->snap &&
	    rbd_open_read_only(d->ioctx, sp->image, &probe, NULL) == 0) {
		rbd_close(probe);
		return wc_err(ret, "%s: image %s/%s has no snapshot \"%s\"", d->dev.name, sp->pool,
			      sp->image, sp->snap);
	}
	if (ret == -ENOENT)
		return wc_err(ret, "%s: image \"%s\" does not exist in pool \"%s\"", d->dev.name,
			      sp->image, sp->pool);
	if (ret < 0)
		return wc_err(ret, "%s: cannot open image %s/%s: %s", d->dev.name, sp->pool,
			      sp->image, strerror(-ret));
	d->have_image = true;
	return 0;
}

/* "client.4123" or "client.4123, client.4200" into buf; the number of owners or -errno. */
static int lock_owners(struct rbd_dev *d, char *buf, size_t len)
{
	char *owners[8];
	size_t n = 8, used = 0;
	rbd_lock_mode_t mode;
	int ret = rbd_lock_get_owners(d->image, &mode, owners, &n);

	buf[0] = '\0';
	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", owners[i]);

		if (w > 0 && (size_t)w < len - used)
			used += (size_t)w;
	}
	rbd_lock_get_owners_cleanup(owners, n);
	return (int)n;
}

/* Break every lock on the image (force_unlock=1): librbd blocklists each owner first. */
static int break_locks(struct rbd_dev *d, const char *who)
{
	char *owners[8];
	size_t n = 8;
	rbd_lock_mode_t mode;
	int ret = rbd_lock_get_owners(d->image, &mode, owners, &n);

	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return wc_err(ret, "%s: cannot list the image's lock owners: %s", d->dev.name,
			      strerror(-ret));
	wc_log(WC_LOG_WARN, "%s: force_unlock: breaking the lock held by %s (it is blocklisted "
	       "and can no longer write)", d->dev.name, who);
	for (size_t i = 0; i < n && !ret; i++) {
		ret = rbd_lock_break(d->image, mode, owners[i]);
		if (ret < 0)
			ret = wc_err(ret, "%s: cannot break the lock held by %s: %s", d->dev.name,
				     owners[i], strerror(-ret));
	}
	rbd_lock_get_owners_cleanup(owners, n);
	return ret;
}

/*
 * Take the exclusive lock for the whole open. librbd would hand a lock over
 * cooperatively, or break one whose owner's watch expired, so an existing
 * owner is refused here first: only force_unlock=1 takes a lock away.
 */
static int take_lock(struct rbd_dev *d)
{
	uint64_t features = 0;
	char who[512];
	int ret;

	ret = rbd_get_features(d->image, &features);
	if (ret < 0)
		return wc_err(ret, "%s: cannot read the image features: %s", d->dev.name,
			      strerror(-ret));
	if (!(features & RBD_FEATURE_EXCLUSIVE_LOCK))
		return wc_err(-EINVAL, "%s: image %s/%s lacks the exclusive-lock feature, so "
			      "wcache cannot keep other writers out (rbd feature enable %s/%s "
			      "exclusive-lock)", d->dev.name, d->sp.pool, d->sp.image,
			      d->sp.pool, d->sp.image);
	ret = lock_owners(d, who, sizeof(who));
	if (ret < 0)
		return wc_err(ret, "%s: cannot list the image's lock owners: %s", d->dev.name,
			      strerror(-ret));
	if (ret > 0 && !d->sp.force_unlock)
		return wc_err(-EBUSY, "%s: image %s/%s is locked by %s (another wcache or RBD "
			      "client); if that owner is dead, add :force_unlock=1 to break its "
			      "lock", d->dev.name, d->sp.pool, d->sp.image, who);
	if (ret > 0) {
		ret = break_locks(d, who);
		if (ret)
			return ret;
	}
	ret = rbd_lock_acquire(d->image, RBD_LOCK_MODE_EXCLUSIVE);
	if (ret < 0) {
		if (lock_owners(d, who, sizeof(who)) <= 0)
			snprintf(who, sizeof(who), "another client");
		return wc_err(ret == -EROFS ? -EBUSY : ret, "%s: cannot take the exclusive lock "
			      "of %s/%s (held by %s): %s", d->dev.name, d->sp.pool, d->sp.image,
			      who, strerror(-ret));
	}
	return 0;
}

int dev_rbd_open(const char *spec, unsigned flags, struct wc_dev **out)
{
	struct rbd_dev *d = calloc(1, sizeof(*d));
	uint64_t size;
	int ret;

	if (!d)
		return wc_err(-ENOMEM, "%s: out of memory", spec);
	ret = rbd_spec_parse(spec, &d->sp);
	if (ret) {
		free(d);
		return ret;
	}
	d->rdonly = flags & DEV_RDONLY;
	d->dev.ops = &rbd_ops;
	d->dev.priv = d;
	d->dev.logical_block = 512;
	/* The name in messages: pool/image[@snap], never the keyring path. */
	snprintf(d->dev.name, sizeof(d->dev.name), "rbd:%s/%s%s%s", d->sp.pool, d->sp.image,
		 d->sp.snap ? "@" : "", d->sp.snap ? d->sp.snap : "");

	ret = connect_cluster(d);
	if (!ret)
		ret = open_image(d);
	if (!ret && !d->rdonly)
		ret = take_lock(d);
	if (ret)
		goto fail;
	ret = rbd_get_size(d->image, &size);
	if (ret < 0) {
		ret = wc_err(ret, "%s: cannot get the image size: %s", d->dev.name,
			     strerror(-ret));
		goto fail;
	}
	d->dev.size = size;
	wc_log(WC_LOG_DEBUG, "%s: %" PRIu64 " bytes, %s, rados_osd_op_timeout=%s s", d->dev.name,
	       size, d->rdonly ? "read-only" : "read-write, exclusive lock held", d->osd_timeout);
	*out = &d->dev;
	return 0;

fail:
	rbd_free(d);
	return ret;
}
