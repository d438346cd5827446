/* SPDX-License-Identifier: MIT */
/*
 * File and block-device backend. Uses O_DIRECT when the file system accepts
 * it and bounces requests that are not aligned to the logical block through
 * an aligned buffer (read-modify-write of the edge sectors); falls back to
 * buffered I/O once O_DIRECT is refused with EINVAL. flush = fdatasync.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "dev.h"

#define BOUNCE_MAX_BYTES (1u << 20)	/* larger unaligned requests go in chunks */
#define BOUNCE_ALIGN 4096

struct file_dev {
	struct wc_dev dev;
	int fd;
	bool is_blk;
	bool rdonly;
	bool opened_direct;	/* O_DIRECT was on at open: rmw locking needed */
	atomic_bool direct;	/* O_DIRECT still on; cleared once, on EINVAL */
	/*
	 * Under O_DIRECT a write of part of a sector rewrites the whole sector.
	 * Such writes hold rmw exclusively and all other writes hold it shared,
	 * so writers of different bytes of one sector never undo each other.
	 */
	pthread_rwlock_t rmw;
};

static struct file_dev *to_file(struct wc_dev *dev)
{
	return dev->priv;
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
	if (partial && f->opened_direct)
		pthread_rwlock_wrlock(&f->rmw);
	else
		pthread_rwlock_rdlock(&f->rmw);
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
	pthread_rwlock_unlock(&f->rmw);
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

static void file_close(struct wc_dev *dev)
{
	struct file_dev *f = to_file(dev);

	pthread_rwlock_destroy(&f->rmw);
	close(f->fd);
	free(f);
}

static const struct wc_dev_ops file_ops = {
	.name = "file",
	.pread = file_pread,
	.pwrite = file_pwrite,
	.flush = file_flush,
	.discard = file_discard,
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

	fd = open(path, oflags | (direct ? O_DIRECT : 0));
	if (fd < 0 && errno == EINVAL && direct) {
		direct = false;
		fd = open(path, oflags);
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
	if ((flags & DEV_EXCL) && flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			ret = wc_err(-EBUSY, "%s is in use by another process (locked)", path);
		else
			ret = wc_err(-errno, "%s: cannot lock: %s", path, strerror(errno));
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
	pthread_rwlock_init(&f->rmw, NULL);
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
