/* SPDX-License-Identifier: MIT */
/*
 * Persistent-memory device (pmem mode's cache device): the file or DAX
 * device is mapped with libpmem2, writes are stores made persistent the way
 * libpmem2 chose for the mapping, reads are copies. No system call on the
 * data path unless the mapping is not DAX (then a flush is one msync).
 *
 * A load or store that faults (SIGBUS: a poisoned page on a DAX device, or
 * the file truncated under the mapping) fails that request with -EIO
 * instead of killing the process: copies run under a per-thread jump
 * buffer that a process-wide SIGBUS handler returns to.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpmem2.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "log.h"
#include "dev.h"

struct pmem_dev {
	struct wc_dev dev;
	int fd;
	bool rdonly;
	struct pmem2_source *src;
	struct pmem2_map *map;
	uint8_t *base;
	enum pmem2_granularity gran;
	pmem2_memcpy_fn copy;	/* stores + flushes (or non-temporal stores) + drain */
	pmem2_drain_fn drain;
	pmem2_persist_fn persist;
};

static struct pmem_dev *to_pmem(struct wc_dev *dev)
{
	return dev->priv;
}

/* ---------------- SIGBUS guard ---------------- */

/* The copy in progress on this thread: where to go back to, and the mapping it touches. */
static __thread sigjmp_buf *guard_jmp;
static __thread const uint8_t *guard_lo, *guard_hi;
static struct sigaction old_bus;
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;

static void bus_handler(int sig, siginfo_t *si, void *uc)
{
	const uint8_t *a = si ? (const uint8_t *)si->si_addr : NULL;

	if (guard_jmp && a >= guard_lo && a < guard_hi)
		siglongjmp(*guard_jmp, 1);
	/* Not ours: hand it on, or die of it as if we had never been here. */
	if (old_bus.sa_flags & SA_SIGINFO) {
		if (old_bus.sa_sigaction) {
			old_bus.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (old_bus.sa_handler != SIG_DFL && old_bus.sa_handler != SIG_IGN) {
		old_bus.sa_handler(sig);
		return;
	}
	signal(sig, SIG_DFL);	/* the faulting access runs again and kills us */
}

/*
 * Install the handler unless it is in place. Checked at every open, not
 * once: a program (or a test framework) may have replaced it since; what
 * it replaced is kept to pass foreign SIGBUS on.
 */
static int guard_install(void)
{
	struct sigaction sa, cur;
	int ret = 0;

	pthread_mutex_lock(&guard_lock);
	if (sigaction(SIGBUS, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
	    cur.sa_sigaction == bus_handler)
		goto out;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = bus_handler;
	/*
	 * SA_NODEFER: SIGBUS stays unblocked in the handler, so the jump out of
	 * it needs no saved signal mask (sigsetjmp(.., 0): no system call per copy).
	 */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &old_bus) < 0)
		ret = wc_err(-errno, "pmem: cannot install the SIGBUS handler: %s", strerror(errno));
out:
	pthread_mutex_unlock(&guard_lock);
	return ret;
}

enum { G_READ, G_WRITE };

/*
 * Copy len bytes between buf and the mapping at off under the guard.
 * Returns 0, or -EIO if the mapping faulted (some bytes may have been copied).
 */
static int guarded_copy(struct pmem_dev *p, int dir, void *buf, size_t len, uint64_t off)
{
	sigjmp_buf jb;
	uint8_t *volatile m = p->base + off;

	if (sigsetjmp(jb, 0)) {
		guard_jmp = NULL;
		return wc_err(-EIO, "%s: memory error (SIGBUS) %s %zu bytes at offset %" PRIu64
			      " (poisoned pmem, or the file was truncated under the mapping)",
			      p->dev.name, dir == G_READ ? "reading" : "writing", len, off);
	}
	guard_lo = p->base;
	guard_hi = p->base + p->dev.size;
	guard_jmp = &jb;
	if (dir == G_READ)
		memcpy(buf, m, len);
	else if (p->gran == PMEM2_GRANULARITY_PAGE)
		memcpy(m, buf, len);	/* page cache; flush does the msync */
	else
		/*
		 * Flushed and drained here, on the writing thread: a fence orders
		 * only its own CPU's flushes, and the flush that must cover this
		 * write usually runs on another thread.
		 */
		p->copy(m, buf, len, 0);
	guard_jmp = NULL;
	return 0;
}

/* ---------------- ops ---------------- */

static int pmem_pread(struct wc_dev *dev, void *buf, size_t len, uint64_t off)
{
	return guarded_copy(to_pmem(dev), G_READ, buf, len, off);
}

static int pmem_pwrite(struct wc_dev *dev, const void *buf, size_t len, uint64_t off)
{
	struct pmem_dev *p = to_pmem(dev);

	if (p->rdonly)
		return wc_err(-EROFS, "%s: opened read-only", dev->name);
	return guarded_copy(p, G_WRITE, (void *)buf, len, off);
}

/*
 * Every completed write is durable after this. Cache-line (or byte)
 * granularity: each write flushed and drained its own lines already (see
 * guarded_copy); the drain here only orders this thread's stores. Page
 * granularity (not DAX): one msync of the whole mapping, which writes back
 * just the dirty pages.
 */
static int pmem_flush(struct wc_dev *dev)
{
	struct pmem_dev *p = to_pmem(dev);
	sigjmp_buf jb;

	if (p->gran != PMEM2_GRANULARITY_PAGE) {
		p->drain();
		return 0;
	}
	if (sigsetjmp(jb, 0)) {
		guard_jmp = NULL;
		return wc_err(-EIO, "%s: memory error (SIGBUS) during msync", dev->name);
	}
	guard_lo = p->base;
	guard_hi = p->base + dev->size;
	guard_jmp = &jb;
	p->persist(p->base, dev->size);
	guard_jmp = NULL;
	return 0;
}

static void pmem_close(struct wc_dev *dev)
{
	struct pmem_dev *p = to_pmem(dev);

	if (p->map)
		pmem2_map_delete(&p->map);
	if (p->src)
		pmem2_source_delete(&p->src);
	if (p->fd >= 0)
		close(p->fd);
	free(p);
}

static const struct wc_dev_ops pmem_ops = {
	.name = "pmem",
	.pread = pmem_pread,
	.pwrite = pmem_pwrite,
	.flush = pmem_flush,
	.close = pmem_close,
};

static const char *gran_text(enum pmem2_granularity g)
{
	switch (g) {
	case PMEM2_GRANULARITY_BYTE:
		return "pmem: stores persist at once (BYTE granularity, eADR), fence";
	case PMEM2_GRANULARITY_CACHE_LINE:
		return "pmem: cache-line flush + fence (CACHE_LINE granularity, DAX)";
	case PMEM2_GRANULARITY_PAGE:
		break;
	}
	return "pmem: msync (PAGE granularity: the mapping is not DAX)";
}

/*
 * Map every page of a writable mapping now when that costs no memory: on
 * DAX the pages are the device's (only page tables are built), on tmpfs a
 * fully allocated file's pages exist already. Otherwise the first store to
 * each page takes a fault, one per newly used cache block (the fsync=1
 * benchmark saw one per write). A file on a disk file system is left alone:
 * populating would read all of it into the page cache. Best effort.
 */
static void prefault(struct pmem_dev *p, const struct stat *st)
{
	struct statfs fs;
	bool dax = p->gran != PMEM2_GRANULARITY_PAGE;
	bool tmpfs_full = fstatfs(p->fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC &&
			  S_ISREG(st->st_mode) && (uint64_t)st->st_blocks * 512 >= p->dev.size;

	if (p->rdonly || !(dax || tmpfs_full))
		return;
#ifdef MADV_POPULATE_WRITE
	if (madvise(p->base, p->dev.size, MADV_POPULATE_WRITE) < 0)
		wc_log(WC_LOG_DEBUG, "%s: MADV_POPULATE_WRITE: %s (pages map on first use)",
		       p->dev.name, strerror(errno));
#endif
}

/*
 * libpmem2 returns -errno for system errors and its own PMEM2_E_* codes
 * (below -100000; its pmem2_err_to_errno is not exported by 1.12) for the rest.
 */
static int pmem2_fail(const char *path, const char *what, int r)
{
	int e = r < 0 && r > -100000 ? r : (r == PMEM2_E_NOSUPP ? -EOPNOTSUPP : -EINVAL);

	return wc_err(e, "%s: %s: %s", path, what, pmem2_errormsg());
}

int dev_pmem_open(const char *path, unsigned flags, struct wc_dev **out)
{
	struct pmem2_config *cfg = NULL;
	struct pmem_dev *p;
	struct stat st;
	int ret, r;

	ret = guard_install();
	if (ret)
		return ret;
	p = calloc(1, sizeof(*p));
	if (!p)
		return wc_err(-ENOMEM, "pmem: out of memory");
	p->dev.priv = p;
	p->rdonly = flags & DEV_RDONLY;
	p->fd = open(path, (p->rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (p->fd < 0) {
		ret = wc_err(-errno, "cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(p->fd, &st) < 0) {
		ret = wc_err(-errno, "cannot stat %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
		ret = wc_err(-EINVAL, "%s: pmem mode needs a regular file (on a DAX file system or "
			     "not) or a device DAX character device (/dev/daxN.M); for a block "
			     "device use SSD mode (s)", path);
		goto fail;
	}
	if (flags & DEV_EXCL) {
		ret = dev_lock_exclusive(p->fd, path);
		if (ret)
			goto fail;
	}
	r = pmem2_source_from_fd(&p->src, p->fd);
	if (r) {
		ret = pmem2_fail(path, "not mappable as pmem", r);
		goto fail;
	}
	r = pmem2_config_new(&cfg);
	if (!r)	/* The weakest requirement: every mapping qualifies, we ask which it got. */
		r = pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
	if (!r && p->rdonly)
		r = pmem2_config_set_protection(cfg, PMEM2_PROT_READ);
	if (!r)
		r = pmem2_map_new(&p->map, cfg, p->src);
	if (cfg)
		pmem2_config_delete(&cfg);
	if (r) {
		ret = pmem2_fail(path, "cannot map", r);
		goto fail;
	}
	p->base = pmem2_map_get_address(p->map);
	p->gran = pmem2_map_get_store_granularity(p->map);
	p->copy = pmem2_get_memcpy_fn(p->map);
	p->drain = pmem2_get_drain_fn(p->map);
	p->persist = pmem2_get_persist_fn(p->map);
	p->dev.ops = &pmem_ops;
	p->dev.size = pmem2_map_get_size(p->map);
	p->dev.logical_block = 512;
	p->dev.priv = p;
	snprintf(p->dev.name, sizeof(p->dev.name), "%s", path);
	snprintf(p->dev.persist, sizeof(p->dev.persist), "%s", gran_text(p->gran));
	prefault(p, &st);
	*out = &p->dev;
	return 0;
fail:
	pmem_close(&p->dev);
	return ret;
}
