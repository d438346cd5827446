/* SPDX-License-Identifier: MIT */
/*
 * FUSE export of an open cache: one file, MOUNTPOINT/disk, whose bytes are
 * the cached device. This adapter only mounts, serves and unmounts; option
 * parsing, mount point checks, pidfile and daemon belong to its caller
 * ('wcache fuse', src/cli/cmd_fuse.c). Built only with WC_WITH_FUSE (libfuse3);
 * this header needs no libfuse headers.
 */
#ifndef WC_FRONTEND_FUSE_H
#define WC_FRONTEND_FUSE_H

#include <stdbool.h>

#include "wcache.h"

#define WC_FUSE_DISK_NAME	"disk"	/* the one file under the mount point */
#define WC_FUSE_DEF_THREADS	64u
#define WC_FUSE_MAX_THREADS	1024u

struct wc_fuse {
	struct wcache *wc;		/* open; the caller closes it afterwards */
	const char *mountpoint;		/* absolute; a directory nothing is mounted on */
	unsigned threads;		/* worker threads and requests queued in the kernel, >= 1 */
	bool allow_other;		/* let users other than the owner open the file */
	/*
	 * Messages of the session and of libfuse: WC_LOG_ERROR for failures,
	 * WC_LOG_WARN for warnings, WC_LOG_INFO for libfuse's chatter. Called
	 * from any thread.
	 */
	wc_log_fn log;
	void *log_opaque;
	/*
	 * Called once MOUNTPOINT/disk is mounted and usable, before the loop
	 * starts (write a pidfile, tell a waiting parent). A negative return
	 * unmounts and makes wc_fuse_run fail. May be NULL.
	 */
	int (*ready)(void *opaque);
	void *ready_opaque;
};

/*
 * Mount f->mountpoint, serve requests on f->wc until the file system is
 * unmounted or the process gets SIGTERM, SIGINT or SIGHUP, then unmount.
 * One session per process at a time (libfuse's log hook is global).
 *
 * Signals: the caller blocks SIGTERM, SIGINT and SIGHUP before it starts any
 * thread (wcache_open, the control socket), so that they reach the thread
 * running this; they are unblocked here for the loop only.
 *
 * Returns 0 after a clean stop, or -errno after a failure (already logged).
 */
int wc_fuse_run(const struct wc_fuse *f);

#endif
