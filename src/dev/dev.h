/* SPDX-License-Identifier: MIT */
/*
 * Block device abstraction used by the engine: a small ops table and a
 * dispatch layer (dev.c) that checks ranges and NULL hooks. Backends know
 * nothing of caching. Every call is thread-safe.
 *
 * Two ways to do I/O: synchronous calls (dev_pread ...), and asynchronous
 * requests (struct wc_io, dev_submit) that complete through a callback, so
 * that one thread can keep many requests in flight. A backend implements
 * either or both; dev.c supplies the missing side (a synchronous call waits
 * for a submitted request; a submitted request on a backend without submit
 * runs synchronously in the submitting thread).
 */
#ifndef WC_DEV_H
#define WC_DEV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

struct wc_dev;
struct wc_io;

enum wc_io_op { WC_IO_READ, WC_IO_WRITE, WC_IO_FLUSH, WC_IO_DISCARD };

/*
 * Called exactly once per request with 0 or -errno, from any thread (a
 * backend's completion thread, or the submitter before dev_submit returns).
 * It may submit more requests to any device, but must not wait for I/O.
 */
typedef void (*wc_io_done_fn)(struct wc_io *io, int result);

/* One asynchronous request. Owned by the caller; untouched by the device after done(). */
struct wc_io {
	enum wc_io_op op;
	void *buf;		/* READ: destination, WRITE: source; need not be aligned */
	uint64_t len, off;	/* FLUSH: ignored */
	wc_io_done_fn done;
	void *opaque;		/* for the caller */
	char *msg;		/* optional: receives the failure text (see dev_io_end) */
	size_t msg_len;
	struct wc_io *next;	/* free for the backend while the request is in flight */
	uint64_t dev_priv[2];	/* likewise */
};

struct wc_dev_ops {
	const char *name;
	/*
	 * Read/write exactly len bytes at off; return 0 or -errno. Buffers need
	 * not be aligned. Optional when submit is set (dev.c waits for a request).
	 */
	int (*pread)(struct wc_dev *dev, void *buf, size_t len, uint64_t off);
	int (*pwrite)(struct wc_dev *dev, const void *buf, size_t len, uint64_t off);
	/* Make completed writes durable. NULL: no volatile cache. */
	int (*flush)(struct wc_dev *dev);
	/* Optional: deallocate; reads after discard return unspecified data. NULL: no-op. */
	int (*discard)(struct wc_dev *dev, uint64_t len, uint64_t off);
	/*
	 * Optional: start n requests (already range-checked, non-empty); each
	 * ends with io->done. Requests in one call may run and complete in any
	 * order; a FLUSH covers the writes completed before it was submitted.
	 */
	void (*submit)(struct wc_dev *dev, struct wc_io **ios, unsigned n);
	/* Releases everything, including dev itself (backends usually embed it in theirs). */
	void (*close)(struct wc_dev *dev);
};

struct wc_dev {
	const struct wc_dev_ops *ops;
	uint64_t size;		/* bytes */
	uint32_t logical_block;	/* smallest I/O size the device accepts (512 or 4096) */
	char name[256];		/* for messages */
	void *priv;		/* backend private */
	char persist[96];	/* how writes become durable, for status; "" = block I/O + flush */
};

/*
 * Dispatch: range-checked; -EINVAL past the end, -EIO etc from the backend.
 * Out-of-range requests (including off + len overflowing) never reach the
 * backend and set wcache_last_error(); len == 0 inside the device succeeds
 * without reaching it either. Backends set their own message on failure.
 */
int dev_pread(struct wc_dev *dev, void *buf, size_t len, uint64_t off);
int dev_pwrite(struct wc_dev *dev, const void *buf, size_t len, uint64_t off);
int dev_flush(struct wc_dev *dev);
int dev_discard(struct wc_dev *dev, uint64_t len, uint64_t off);
void dev_close(struct wc_dev *dev);

/*
 * Submit n requests. Each one ends with io->done exactly once, possibly
 * before this returns (out-of-range requests fail with -EINVAL at once,
 * empty ones succeed at once). Batching lets a backend issue them together.
 */
void dev_submit(struct wc_dev *dev, struct wc_io **ios, unsigned n);

/*
 * For backends: end a request. On failure the calling thread's
 * wcache_last_error() text is copied to io->msg (the completing thread is
 * rarely the one that waits), then io->done runs.
 */
void dev_io_end(struct wc_io *io, int result);

/* Does the backend run submitted requests concurrently (not in the submitter)? */
bool dev_is_async(const struct wc_dev *dev);

/*
 * Completion counter for callers that submit a group of requests and wait
 * for all of them: wc_io_wait_init (on the stack is fine), then set io->done = wc_io_wait_done and
 * io->opaque = the group, one wc_io_wait_add per request, and
 * wc_io_wait_end to wait; returns the first error (0 if none).
 */
struct wc_io_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned pending;
	int err;
};
void wc_io_wait_init(struct wc_io_wait *w);
void wc_io_wait_add(struct wc_io_wait *w, unsigned n);
void wc_io_wait_done(struct wc_io *io, int result);
int wc_io_wait_end(struct wc_io_wait *w);

/* Open flags for dev_file_open. */
enum {
	DEV_RDONLY = 1u << 0,	/* open read-only */
	DEV_EXCL = 1u << 1,	/* take an exclusive flock; -EBUSY if held elsewhere */
	DEV_NO_DIRECT = 1u << 2,	/* never use O_DIRECT */
};

/*
 * File or block device. O_DIRECT when the file system allows it; flush = fdatasync.
 * size: st_size, or BLKGETSIZE64; logical_block: 512 for files, BLKSSZGET for
 * block devices. O_DIRECT is dropped for good (buffered I/O on the same open
 * file description, lock kept) if open or any I/O fails with EINVAL, and for
 * files whose size is not a multiple of 512. Unaligned requests under O_DIRECT
 * go through a bounce buffer; partial edge sectors are read-modify-written under
 * a lock that excludes other writes. Reads past the current end of a file
 * (shrunk since open) return zeros. Discard punches a hole (files) or issues
 * BLKDISCARD for the whole logical blocks inside the range; EOPNOTSUPP is success.
 * Errors: -ENOENT/-EACCES/... ("cannot open PATH: reason"), -EINVAL (not a file
 * or block device), -EBUSY with DEV_EXCL (see dev_lock_exclusive). With
 * DEV_RDONLY, pwrite and discard return -EROFS.
 */
int dev_file_open(const char *path, unsigned flags, struct wc_dev **out);

/*
 * Take an exclusive flock on fd (opened from path) for DEV_EXCL. flock is
 * per open file description, so a second open in the same process conflicts
 * too. Held by a running process: -EBUSY at once, "PATH is in use by another
 * process (locked by pid N, NAME)" (or "already open in this process").
 * Held by a process that has exited (its io_uring still being torn down by
 * the kernel): waits up to 10 s for the kernel to release it.
 */
int dev_lock_exclusive(int fd, const char *path);

/*
 * Open by "URI": a path, or (when built with libnbd) nbd://... / nbd+unix://...,
 * or (when built with librbd) rbd:POOL/IMAGE... Used by the engine for cfg paths.
 * Anything not starting with "scheme://" or "rbd:" is a path. Without libnbd
 * (no WC_WITH_NBD) nbd URIs, without librbd (no WC_WITH_RBD) rbd: specs, and
 * unknown schemes fail with -EPROTONOSUPPORT.
 */
int dev_open_uri(const char *uri, unsigned flags, struct wc_dev **out);

/*
 * NBD export (built with libnbd, WC_WITH_NBD): uri is any libnbd URI
 * (nbd://host[:port]/export, nbd+unix:///?socket=PATH, nbds://...). Up to 4
 * connections if the server allows multi-conn. A lost connection fails the
 * call in progress with -EIO; later calls reconnect (at most one attempt per
 * call, 100 ms doubling to 5 s apart) and the next flush fails once if
 * unflushed writes may have been lost. flush/discard are no-ops if the server
 * cannot flush/trim. A server silent for WC_NBD_TIMEOUT_MS (env, default
 * 60000, 0 = never) counts as a lost connection. DEV_RDONLY: writes and
 * discards return -EROFS; a read-only export opened without it is -EROFS.
 */
int dev_nbd_open(const char *uri, unsigned flags, struct wc_dev **out);

/*
 * Ceph RBD image (built with librbd, WC_WITH_RBD): spec is
 * rbd:POOL/IMAGE[@SNAP][:conf=PATH][:id=NAME][:keyring=PATH][:force_unlock=1][:KEY=VALUE]
 * (src/dev/rbd_spec.h; other keys are Ceph options). A read-write open takes
 * the image's exclusive lock until close: -EBUSY naming the owner if another
 * client holds it, unless force_unlock=1 (breaks it; the owner is
 * blocklisted). A snapshot needs DEV_RDONLY (-EROFS otherwise). Timeouts
 * (client_mount_timeout 30 s, rados_mon_op_timeout 30 s, rados_osd_op_timeout
 * 60 s unless the config sets them) bound every call; an outage fails
 * requests with -ETIMEDOUT. Errors name the pool and image.
 */
int dev_rbd_open(const char *spec, unsigned flags, struct wc_dev **out);

/*
 * Persistent-memory device (built with libpmem2, WC_WITH_PMEM): path is a
 * regular file (DAX or not: tmpfs and ordinary files work, persisting by
 * msync) or a device DAX node (/dev/daxN.M), mapped whole. pwrite stores
 * (libpmem2's flushing or non-temporal copy), flush is a fence (or one msync
 * where the mapping is not DAX), pread copies; dev->persist names the path
 * libpmem2 chose. A copy that faults (SIGBUS: poisoned page, file truncated
 * under the mapping) fails with -EIO and a message instead of killing the
 * process; the first open installs a process-wide SIGBUS handler that
 * passes other SIGBUS on. Errors: as dev_file_open, -EINVAL for block
 * devices and what libpmem2 cannot map (with its message).
 */
int dev_pmem_open(const char *path, unsigned flags, struct wc_dev **out);

/*
 * In-memory device (tests and the fault device's backing store).
 * Zero-filled; discard zeroes the range; no flush hook.
 */
int dev_mem_open(uint64_t size, struct wc_dev **out);

#endif
