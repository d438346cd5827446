/* SPDX-License-Identifier: MIT */
/*
 * FUSE export: "wcache fuse ORIGIN CACHE MOUNTPOINT" serves one file,
 * MOUNTPOINT/disk, whose bytes are the cached device, so that losetup gives a
 * local block device on hosts without nbd/ublk. Owns the option parsing, the
 * daemon lifecycle and the mapping of FUSE requests onto wcache.h; knows
 * nothing of the cache format. Thread model: libfuse multi-threaded loop,
 * every handler calls the (thread-safe) engine directly.
 *
 * Request mapping:
 *   read/write             wcache_read / wcache_write (WC_FUA when the write
 *                          or its file handle carries O_DSYNC/O_SYNC)
 *   fsync/fdatasync        wcache_flush (the commit of dm-writecache FLUSH)
 *   fallocate PUNCH_HOLE   wcache_discard, then every block of the range that
 *                          does not read back as zeroes is zeroed: a punched
 *                          range of a regular file must read as zeroes, and
 *                          the loop driver relies on it (it turns
 *                          REQ_OP_WRITE_ZEROES into PUNCH_HOLE)
 *   fallocate ZERO_RANGE   wcache_write_zeroes
 * The file has a fixed size: writes at or past the end fail with ENOSPC,
 * truncate with EPERM.
 *
 * Lifecycle: checks, fork (unless --foreground; the parent waits on a pipe
 * until the child has mounted or failed, so errors reach the terminal and
 * the command returns only when MOUNTPOINT/disk is usable), open the cache
 * in the child (fork would lose the engine's threads), control socket,
 * mount, loop. Unmount or SIGTERM/SIGINT/SIGHUP end the loop; then the cache
 * is closed, which commits (and, with flush_on_suspend, writes back first).
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "cli.h"
#include "control.h"

#define FZ_DISK_NAME	"disk"
#define FZ_ROOT_INO	FUSE_ROOT_ID
#define FZ_DISK_INO	2
#define FZ_ATTR_TIMEOUT	3600.0		/* the size never changes while mounted */
#define FZ_DEF_THREADS	64u
#define FZ_MAX_THREADS	1024u
#define FZ_PUNCH_CHUNK	(1u << 20)	/* read-back unit when checking a punched range */
#define FZ_BUF_ALIGN	4096		/* buffers handed to the engine (O_DIRECT devices) */
#define MAX_START_SECTOR (UINT64_MAX >> 9)

enum {
	OPT_ALLOW_OTHER = 0x100,
	OPT_FOS,
	OPT_CACHE_IO,
	OPT_TABLE = 0x200,	/* + index into table_opts[] */
};

/* Table options: spelled with '-' here, '_' accepted as well (as for 'wcache flush'). */
static const struct {
	const char *name;
	bool has_value;
} table_opts[] = {
	{ "high-watermark", true },	{ "low-watermark", true },   { "writeback-jobs", true },
	{ "autocommit-blocks", true },	{ "autocommit-time", true }, { "max-age", true },
	{ "pause-writeback", true },	{ "cleaner", false },	     { "metadata-only", false },
};

#define NR_TABLE_OPTS (sizeof(table_opts) / sizeof(table_opts[0]))

static const char fuse_usage[] =
	"Usage: wcache fuse ORIGIN CACHE MOUNTPOINT [options] [table options]\n"
	"\n"
	"Serve the cached device (ORIGIN with the write-back cache CACHE in front of\n"
	"it) as one file, MOUNTPOINT/disk, through FUSE. A loop device on that file is\n"
	"a local block device backed by wcache:\n"
	"  losetup --find --show --direct-io=on --sector-size 4096 MOUNTPOINT/disk\n"
	"Reads and writes go through the cache; fsync/fdatasync commit (dm-writecache\n"
	"FLUSH); writes through a file opened O_SYNC/O_DSYNC are FUA; fallocate\n"
	"PUNCH_HOLE discards (the range reads back as zeroes), ZERO_RANGE writes\n"
	"zeroes. The file has a fixed size. A blank CACHE (first 8 bytes zero) is\n"
	"formatted, with --block-size (default 4096).\n"
	"\n"
	"The command returns once MOUNTPOINT/disk is ready; the server keeps running\n"
	"in the background until MOUNTPOINT is unmounted (detach loop devices first:\n"
	"losetup -d, then umount MOUNTPOINT or fusermount3 -u MOUNTPOINT) or it gets\n"
	"SIGTERM, SIGINT or SIGHUP. Then it commits and closes the cache; with\n"
	"flush_on_suspend set it writes every dirty block back to ORIGIN first.\n"
	"\n"
	"Options:\n"
	"  -c, --control PATH     serve the control socket at PATH (status, table,\n"
	"                         stats, message: see 'wcache status --control')\n"
	"  -f, --foreground       do not go to the background; messages on stderr\n"
	"  -P, --pidfile PATH     write the server's process id to PATH\n"
	"  -l, --log FILE         in the background, append messages to FILE\n"
	"                         (default: discard them)\n"
	"  -t, --threads N        at most N FUSE worker threads and N requests queued\n"
	"                         in the kernel (default 64)\n"
	"      --allow-other      let users other than the owner open the file\n"
	"      --cache-io MODE    direct (O_DIRECT on a CACHE file, default) or buffered\n"
	"                         (page cache; as safe, faster re-reads, RAM used twice)\n"
	"      --flush-on-suspend write everything back when the server stops (the\n"
	"                         flush_on_suspend message, sent at start)\n"
	"  -s, --start-sector S   metadata starts S 512-byte sectors into CACHE (default 0)\n"
	"  -b, --block-size N     cache block size: required when formatting a blank\n"
	"                         CACHE (default 4096), checked against the superblock\n"
	"                         otherwise (default: take it from the superblock)\n"
	"  -h, --help             show this help\n"
	"Table options (dm-writecache names; '-' or '_' both accepted):\n"
	"  --high-watermark P  --low-watermark P  --writeback-jobs N\n"
	"  --autocommit-blocks N  --autocommit-time MS  --max-age MS\n"
	"  --pause-writeback MS  --cleaner  --metadata-only\n"
	"\n"
	"Exit status: 0 ready (or, with --foreground, stopped cleanly), 1 failed,\n"
	"2 usage error.\n";

struct fz_opts {
	struct wc_cfg cfg;
	char mnt[PATH_MAX];		/* absolute */
	char control[PATH_MAX];		/* absolute, or "" */
	char pidfile[PATH_MAX];		/* absolute, or "" */
	char logfile[PATH_MAX];		/* as given, or "" */
	bool foreground, allow_other, flush_on_suspend;
	unsigned threads;
};

/* Attributes that chmod/chown/touch may change; the rest is fixed. */
struct fz_attr {
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec atime, mtime, ctime;
};

struct fz {
	struct wcache *wc;
	uint64_t size;
	uint32_t bs;
	unsigned threads;
	pthread_mutex_t lock;
	struct fz_attr root, disk;	/* lock */
	atomic_uint nr_open;		/* open handles of the disk file */
	atomic_llong last_err_log;	/* seconds; rate limit for I/O error messages */
};

static const struct cli_cmd *fz_cmd;
static pthread_key_t fz_buf_key;

/* ---------------- helpers ---------------- */

struct fz_tbuf {
	size_t cap;
	void *mem;
};

static void fz_tbuf_free(void *p)
{
	struct fz_tbuf *t = p;

	free(t->mem);
	free(t);
}

/* A per-thread aligned buffer of at least len bytes (FUSE threads come and go). */
static void *fz_tbuf_get(size_t len)
{
	struct fz_tbuf *t = pthread_getspecific(fz_buf_key);
	void *mem;

	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return NULL;
		if (pthread_setspecific(fz_buf_key, t)) {
			free(t);
			return NULL;
		}
	}
	if (t->cap >= len)
		return t->mem;
	if (len < FZ_PUNCH_CHUNK)
		len = FZ_PUNCH_CHUNK;
	if (posix_memalign(&mem, FZ_BUF_ALIGN, len))
		return NULL;
	free(t->mem);
	t->mem = mem;
	t->cap = len;
	return mem;
}

/* Log a failed request, at most once a second (a sticky error fails every request). */
static void fz_io_error(struct fz *fz, const char *op, int ret, uint64_t len, uint64_t off)
{
	long long now = (long long)time(NULL);
	long long last = atomic_load_explicit(&fz->last_err_log, memory_order_relaxed);

	if (now == last ||
	    !atomic_compare_exchange_strong_explicit(&fz->last_err_log, &last, now,
						     memory_order_relaxed, memory_order_relaxed))
		return;
	cli_error(fz_cmd, "%s of %" PRIu64 " bytes at %" PRIu64 " failed: %s (%s)", op, len, off,
		  strerror(-ret), wcache_last_error());
}

static bool fz_is_zero(const uint8_t *p, size_t len)
{
	return !len || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static void fz_fill_stat(struct fz *fz, fuse_ino_t ino, struct stat *st)
{
	const struct fz_attr *a = ino == FZ_ROOT_INO ? &fz->root : &fz->disk;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	pthread_mutex_lock(&fz->lock);
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
	if (ino == FZ_ROOT_INO) {
		st->st_mode = S_IFDIR | a->mode;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | a->mode;
		st->st_nlink = 1;
		st->st_size = (off_t)fz->size;
		st->st_blocks = (blkcnt_t)((fz->size + 511) / 512);
	}
	pthread_mutex_unlock(&fz->lock);
	st->st_blksize = fz->bs;
}

/* ---------------- FUSE operations ---------------- */

static void fz_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fz *fz = userdata;

	/* Every write must reach the daemon: no kernel write-back cache in front of wcache. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	/* Loop devices with direct I/O submit async requests: let enough of them queue. */
	conn->max_background = fz->threads;
	conn->congestion_threshold = fz->threads * 3 / 4 ? fz->threads * 3 / 4 : 1;
	conn->time_gran = 1;
}

static void fz_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fz *fz = fuse_req_userdata(req);
	struct fuse_entry_param e;

	if (parent != FZ_ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (strcmp(name, FZ_DISK_NAME)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = FZ_DISK_INO;
	e.generation = 1;
	e.attr_timeout = FZ_ATTR_TIMEOUT;
	e.entry_timeout = FZ_ATTR_TIMEOUT;
	fz_fill_stat(fz, FZ_DISK_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void fz_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fz *fz = fuse_req_userdata(req);
	struct stat st;

	(void)fi;
	if (ino != FZ_ROOT_INO && ino != FZ_DISK_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fz_fill_stat(fz, ino, &st);
	fuse_reply_attr(req, &st, FZ_ATTR_TIMEOUT);
}

static void fz_set_time(struct timespec *dst, const struct timespec *src, bool now)
{
	if (now)
		clock_gettime(CLOCK_REALTIME, dst);
	else
		*dst = *src;
}

static void fz_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fz *fz = fuse_req_userdata(req);
	struct fz_attr *a;
	struct stat st;

	(void)fi;
	if (ino != FZ_ROOT_INO && ino != FZ_DISK_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	a = ino == FZ_ROOT_INO ? &fz->root : &fz->disk;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (ino != FZ_DISK_INO) {
			fuse_reply_err(req, EISDIR);
			return;
		}
		if ((uint64_t)attr->st_size != fz->size) {
			fuse_reply_err(req, EPERM);	/* the disk has a fixed size */
			return;
		}
	}
	pthread_mutex_lock(&fz->lock);
	if (to_set & FUSE_SET_ATTR_MODE)
		a->mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		a->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		a->gid = attr->st_gid;
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
		fz_set_time(&a->atime, &attr->st_atim, to_set & FUSE_SET_ATTR_ATIME_NOW);
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
		fz_set_time(&a->mtime, &attr->st_mtim, to_set & FUSE_SET_ATTR_MTIME_NOW);
	clock_gettime(CLOCK_REALTIME, &a->ctime);
	pthread_mutex_unlock(&fz->lock);
	fz_fill_stat(fz, ino, &st);
	fuse_reply_attr(req, &st, FZ_ATTR_TIMEOUT);
}

static void fz_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	static const struct {
		const char *name;
		fuse_ino_t ino;
		mode_t mode;
	} ents[] = {
		{ ".", FZ_ROOT_INO, S_IFDIR },
		{ "..", FZ_ROOT_INO, S_IFDIR },
		{ FZ_DISK_NAME, FZ_DISK_INO, S_IFREG },
	};
	char buf[512];
	size_t cap = size < sizeof(buf) ? size : sizeof(buf), pos = 0;

	(void)fi;
	if (ino != FZ_ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	for (off_t i = off < 0 ? 0 : off; i < (off_t)(sizeof(ents) / sizeof(ents[0])); i++) {
		struct stat st = { .st_ino = ents[i].ino, .st_mode = ents[i].mode };
		size_t need = fuse_add_direntry(req, buf + pos, cap - pos, ents[i].name, &st, i + 1);

		if (need > cap - pos)
			break;
		pos += need;
	}
	fuse_reply_buf(req, buf, pos);
}

static void fz_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fz *fz = fuse_req_userdata(req);

	if (ino == FZ_ROOT_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (ino != FZ_DISK_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* Remember O_SYNC/O_DSYNC: every write through this handle is FUA. */
	fi->fh = (uint64_t)(unsigned)(fi->flags & (O_SYNC | O_DSYNC));
	fi->keep_cache = 0;
	atomic_fetch_add(&fz->nr_open, 1);
	if (fuse_reply_open(req, fi) == -ENOENT)
		atomic_fetch_sub(&fz->nr_open, 1);	/* the opener was interrupted */
}

static void fz_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fz *fz = fuse_req_userdata(req);

	(void)ino;
	(void)fi;
	atomic_fetch_sub(&fz->nr_open, 1);
	fuse_reply_err(req, 0);
}

/* close(): nothing to do, durability comes from fsync/FUA only (as for a block device). */
static void fz_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fz_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fz *fz = fuse_req_userdata(req);
	void *buf;
	size_t n;
	int ret;

	(void)fi;
	if (ino != FZ_DISK_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((uint64_t)off >= fz->size || !size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	n = fz->size - (uint64_t)off < size ? (size_t)(fz->size - (uint64_t)off) : size;
	buf = fz_tbuf_get(n);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ret = wcache_read(fz->wc, buf, n, (uint64_t)off);
	if (ret < 0) {
		fz_io_error(fz, "read", ret, n, (uint64_t)off);
		fuse_reply_err(req, -ret);
		return;
	}
	fuse_reply_buf(req, buf, n);
}

static void fz_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct fz *fz = fuse_req_userdata(req);
	size_t size = fuse_buf_size(in), n;
	struct fuse_bufvec dst;
	unsigned flags = 0;
	ssize_t copied;
	void *buf;
	int ret;

	if (ino != FZ_DISK_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!size) {
		fuse_reply_write(req, 0);
		return;
	}
	if ((uint64_t)off >= fz->size) {
		fuse_reply_err(req, ENOSPC);	/* like a block device: no room past the end */
		return;
	}
	n = fz->size - (uint64_t)off < size ? (size_t)(fz->size - (uint64_t)off) : size;
	/* Copy into an aligned buffer so the engine's O_DIRECT writes need no bounce. */
	buf = fz_tbuf_get(n);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	dst = (struct fuse_bufvec)FUSE_BUFVEC_INIT(n);
	dst.buf[0].mem = buf;
	copied = fuse_buf_copy(&dst, in, 0);
	if (copied < 0) {
		fuse_reply_err(req, (int)-copied);
		return;
	}
	if ((size_t)copied != n) {
		fuse_reply_err(req, EIO);
		return;
	}
	/* fi->flags: this write's flags (RWF_DSYNC shows as O_DSYNC); fi->fh: the open's. */
	if ((fi->flags | (int)fi->fh) & O_DSYNC)
		flags |= WC_FUA;
	ret = wcache_write(fz->wc, buf, n, (uint64_t)off, flags);
	if (ret < 0) {
		fz_io_error(fz, "write", ret, n, (uint64_t)off);
		fuse_reply_err(req, -ret);
		return;
	}
	fuse_reply_write(req, n);
}

static void fz_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fz *fz = fuse_req_userdata(req);
	int ret;

	(void)ino;
	(void)datasync;		/* the commit covers data and metadata alike */
	(void)fi;
	ret = wcache_flush(fz->wc);
	if (ret < 0)
		fz_io_error(fz, "flush", ret, 0, 0);
	fuse_reply_err(req, ret < 0 ? -ret : 0);
}

/*
 * Make [off, off + len) read back as zeroes: discard it (frees cache blocks,
 * punches the origin), then read it back and zero whatever is not zero yet
 * (partial edge blocks, blocks under writeback, an origin that cannot punch
 * holes or whose discard does not zero).
 */
static int fz_punch(struct fz *fz, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, run_off = 0, run_len = 0;
	uint8_t *buf;
	int ret;

	ret = wcache_discard(fz->wc, len, off, 0);
	if (ret < 0)
		return ret;
	buf = fz_tbuf_get(FZ_PUNCH_CHUNK);
	if (!buf)
		return -ENOMEM;
	for (uint64_t c = off; c < end && !ret; ) {
		/* Chunks end on cache block boundaries so each block is judged whole. */
		uint64_t cend = (c / fz->bs) * fz->bs + FZ_PUNCH_CHUNK;

		if (cend > end)
			cend = end;
		ret = wcache_read(fz->wc, buf, cend - c, c);
		if (ret < 0)
			break;
		for (uint64_t b = c; b < cend && !ret; ) {
			uint64_t bend = (b / fz->bs + 1) * fz->bs;

			if (bend > cend)
				bend = cend;
			if (!fz_is_zero(buf + (b - c), bend - b)) {
				if (run_len && run_off + run_len == b) {
					run_len += bend - b;
				} else {
					if (run_len)
						ret = wcache_write_zeroes(fz->wc, run_len, run_off, 0);
					run_off = b;
					run_len = bend - b;
				}
			}
			b = bend;
		}
		c = cend;
	}
	if (!ret && run_len)
		ret = wcache_write_zeroes(fz->wc, run_len, run_off, 0);
	return ret;
}

static void fz_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fz *fz = fuse_req_userdata(req);
	uint64_t o = (uint64_t)off, l = (uint64_t)len;
	int ret = 0;

	(void)fi;
	if (ino != FZ_DISK_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	/* Past the end: nothing to do with KEEP_SIZE, otherwise the file cannot grow. */
	if (o > fz->size || l > fz->size - o) {
		if (!(mode & FALLOC_FL_KEEP_SIZE)) {
			fuse_reply_err(req, ENOSPC);
			return;
		}
		l = o >= fz->size ? 0 : fz->size - o;
	}
	if (l && (mode & FALLOC_FL_PUNCH_HOLE)) {
		ret = fz_punch(fz, o, l);
		if (ret < 0)
			fz_io_error(fz, "discard", ret, l, o);
	} else if (l && (mode & FALLOC_FL_ZERO_RANGE)) {
		ret = wcache_write_zeroes(fz->wc, (size_t)l, o, 0);
		if (ret < 0)
			fz_io_error(fz, "write_zeroes", ret, l, o);
	}
	/* Plain allocation inside the file: every byte is already backed. */
	fuse_reply_err(req, ret < 0 ? -ret : 0);
}

static void fz_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fz *fz = fuse_req_userdata(req);
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	/* The loop driver takes its discard granularity from f_bsize. */
	sv.f_bsize = fz->bs;
	sv.f_frsize = fz->bs;
	sv.f_blocks = fz->size / fz->bs;
	sv.f_files = 2;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops fz_ops = {
	.init = fz_init,
	.lookup = fz_lookup,
	.getattr = fz_getattr,
	.setattr = fz_setattr,
	.readdir = fz_readdir,
	.open = fz_open,
	.release = fz_release,
	.flush = fz_flush,
	.read = fz_read,
	.write_buf = fz_write_buf,
	.fsync = fz_fsync,
	.fallocate = fz_fallocate,
	.statfs = fz_statfs,
};

__attribute__((format(printf, 2, 0)))
static void fz_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[1024];
	size_t n;

	if (level > FUSE_LOG_WARNING && !cli_verbose)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	cli_error(fz_cmd, "libfuse: %s", msg);
}

/* ---------------- checks before anything is opened ---------------- */

static int fz_check_dev_fuse(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == ENOENT)
		cli_error(fz_cmd, "/dev/fuse does not exist: this kernel has no FUSE support "
			  "(CONFIG_FUSE_FS) or this container was started without /dev/fuse");
	else
		cli_error(fz_cmd, "cannot open /dev/fuse: %s", strerror(errno));
	return -1;
}

/* Undo the octal escapes (\040 etc.) of a /proc/self/mountinfo path field, in place. */
static void fz_unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* true if abs is a mount point; its file system type goes to type. */
static bool fz_is_mountpoint(const char *abs, char *type, size_t type_len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		char *save, *tok, *mp = NULL;
		int i = 0;

		/* id parent maj:min root MOUNT_POINT options [optional...] - TYPE source opts */
		for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), i++) {
			if (i == 4) {
				mp = tok;
				fz_unescape(mp);
				if (strcmp(mp, abs))
					break;
			} else if (i > 4 && !strcmp(tok, "-")) {
				tok = strtok_r(NULL, " \n", &save);
				snprintf(type, type_len, "%s", tok ? tok : "?");
				found = true;
				break;
			}
		}
	}
	free(line);
	fclose(f);
	return found;
}

static int fz_check_mountpoint(const char *mnt, char *abs, size_t abs_len)
{
	char type[64], *r;
	struct statfs sfs;
	struct stat st;

	/* statfs always reaches a FUSE server; stat may be answered from cached attributes. */
	if (stat(mnt, &st) < 0 || statfs(mnt, &sfs) < 0) {
		if (errno == ENOTCONN)
			cli_error(fz_cmd, "%s: %s: a FUSE server mounted there has died; unmount it "
				  "first (fusermount3 -u %s, or umount -l %s)", mnt, strerror(errno),
				  mnt, mnt);
		else
			cli_error(fz_cmd, "mount point %s: %s", mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_error(fz_cmd, "mount point %s is not a directory", mnt);
		return -1;
	}
	r = realpath(mnt, NULL);
	if (!r || strlen(r) >= abs_len) {
		cli_error(fz_cmd, "mount point %s: %s", mnt, r ? "path too long" : strerror(errno));
		free(r);
		return -1;
	}
	strcpy(abs, r);
	free(r);
	if (fz_is_mountpoint(abs, type, sizeof(type))) {
		cli_error(fz_cmd, "mount point %s is in use: a %s file system is mounted there "
			  "(another 'wcache fuse'?); unmount it or choose another directory", mnt,
			  type);
		return -1;
	}
	return 0;
}

/*
 * Absolute form of a path whose file may not exist yet (the server chdirs to
 * /): the directory must exist.
 */
static int fz_abs_path(const char *what, const char *path, char *out, size_t out_len)
{
	char *copy = strdup(path), *slash, *dir;
	const char *base;
	int ret = -1;

	if (!copy) {
		cli_error(fz_cmd, "out of memory");
		return -1;
	}
	slash = strrchr(copy, '/');
	if (!slash) {
		base = copy;
		dir = realpath(".", NULL);
	} else {
		*slash = '\0';
		base = slash + 1;
		dir = realpath(*copy ? copy : "/", NULL);
	}
	if (!*base) {
		cli_error(fz_cmd, "%s %s: not a file name", what, path);
	} else if (!dir) {
		cli_error(fz_cmd, "%s %s: directory: %s", what, path, strerror(errno));
	} else if ((size_t)snprintf(out, out_len, "%s/%s", strcmp(dir, "/") ? dir : "", base) >=
		   out_len) {
		cli_error(fz_cmd, "%s %s: path too long", what, path);
	} else {
		ret = 0;
	}
	free(dir);
	free(copy);
	return ret;
}

/* Device paths: absolute when they name an existing file (URIs stay as they are). */
static void fz_abs_dev(char *path, size_t len)
{
	char *r;

	if (strstr(path, "://"))
		return;
	r = realpath(path, NULL);
	if (r && strlen(r) < len)
		strcpy(path, r);
	free(r);
}

/* ---------------- server ---------------- */

static int fz_write_pidfile(const char *path)
{
	char buf[32];
	int fd, n, ret = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		cli_error(fz_cmd, "pidfile %s: %s", path, strerror(errno));
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		cli_error(fz_cmd, "pidfile %s: write failed: %s", path, strerror(errno));
		ret = -1;
	}
	close(fd);
	return ret;
}

static void fz_remove_pidfile(const char *path)
{
	char buf[32] = "";
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0 && strtol(buf, NULL, 10) == (long)getpid())
		unlink(path);
}

/* Background: stdio to /dev/null (stderr to the log file), leave the caller's cwd. */
static int fz_detach_stdio(int log_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	if (dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
	    dup2(log_fd >= 0 ? log_fd : null, STDERR_FILENO) < 0) {
		close(null);
		return -1;
	}
	close(null);
	if (chdir("/") < 0)
		return -1;
	return 0;
}

/*
 * Run the server in this process. notify_fd >= 0: a daemon child, which
 * writes one zero byte there once MOUNTPOINT/disk is ready. Returns an exit code.
 */
static int fz_serve(struct fz_opts *o, int notify_fd, int log_fd)
{
	char err[512], opts[256], size_buf[32];
	char *fargv[] = { (char *)"wcache-fuse", (char *)"-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_loop_config *lcfg = NULL;
	struct fuse_session *se = NULL;
	struct wc_control *ctl = NULL;
	sigset_t block, old;
	struct fz fz;
	struct timespec now;
	bool mounted = false, handlers = false;
	int rc = CLI_EXIT_FAIL, ret;
	unsigned left;

	memset(&fz, 0, sizeof(fz));
	pthread_mutex_init(&fz.lock, NULL);
	fz.threads = o->threads;
	clock_gettime(CLOCK_REALTIME, &now);
	fz.root = (struct fz_attr){ 0755, getuid(), getgid(), now, now, now };
	fz.disk = (struct fz_attr){ 0600, getuid(), getgid(), now, now, now };

	/*
	 * Threads started by the engine and the control socket inherit this mask:
	 * termination signals must reach the thread running the FUSE loop.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);

	ret = wcache_open(&o->cfg, &fz.wc);
	if (ret < 0) {
		cli_error(fz_cmd, "%s", wcache_last_error());
		goto out;
	}
	fz.size = wcache_size(fz.wc);
	fz.bs = wcache_block_size(fz.wc);
	if (!fz.size) {
		cli_error(fz_cmd, "origin %s is empty: nothing to export", o->cfg.origin_path);
		goto out;
	}
	if (o->flush_on_suspend && wcache_message(fz.wc, "flush_on_suspend") < 0) {
		cli_error(fz_cmd, "flush_on_suspend: %s", wcache_last_error());
		goto out;
	}
	if (o->control[0] && wc_control_start(o->control, fz.wc, &ctl, err, sizeof(err)) < 0) {
		cli_error(fz_cmd, "control socket %s: %s", o->control, err);
		goto out;
	}

	snprintf(opts, sizeof(opts), "fsname=wcache,subtype=wcache,default_permissions%s",
		 o->allow_other ? ",allow_other" : "");
	se = fuse_session_new(&args, &fz_ops, sizeof(fz_ops), &fz);
	if (!se) {
		cli_error(fz_cmd, "cannot create the FUSE session (see the message above)");
		goto out;
	}
	if (fuse_set_signal_handlers(se) < 0) {
		cli_error(fz_cmd, "cannot install signal handlers");
		goto out;
	}
	handlers = true;
	if (fuse_session_mount(se, o->mnt) < 0) {
		cli_error(fz_cmd, "cannot mount FUSE on %s (see the message above)", o->mnt);
		goto out;
	}
	mounted = true;
	if (o->pidfile[0] && fz_write_pidfile(o->pidfile) < 0)
		goto out;
	lcfg = fuse_loop_cfg_create();
	if (!lcfg) {
		cli_error(fz_cmd, "out of memory");
		goto out;
	}
	fuse_loop_cfg_set_max_threads(lcfg, o->threads);
	fuse_loop_cfg_set_idle_threads(lcfg, o->threads < 16 ? o->threads : 16);
	fuse_loop_cfg_set_clone_fd(lcfg, 0);

	if (notify_fd >= 0) {
		if (fz_detach_stdio(log_fd) < 0) {
			cli_error(fz_cmd, "cannot detach from the terminal: %s", strerror(errno));
			goto out;
		}
		if (write(notify_fd, "", 1) != 1)
			goto out;	/* the parent is gone: nobody waits for us */
		close(notify_fd);
		notify_fd = -1;
	} else {
		cli_human_bytes(fz.size, size_buf, sizeof(size_buf));
		fprintf(stderr, "wcache fuse: serving %s/%s (%s); stop with umount or SIGTERM\n",
			o->mnt, FZ_DISK_NAME, size_buf);
	}

	pthread_sigmask(SIG_SETMASK, &old, NULL);
	ret = fuse_session_loop_mt(se, lcfg);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	if (ret < 0) {
		cli_error(fz_cmd, "FUSE loop failed: %s", strerror(-ret));
		goto out;
	}
	left = atomic_load(&fz.nr_open);
	if (left)
		cli_warn(fz_cmd, "stopping while %s/%s is still open (%u handles; a loop device "
			 "still attached?): its further I/O fails", o->mnt, FZ_DISK_NAME, left);
	rc = CLI_EXIT_OK;
out:
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	if (lcfg)
		fuse_loop_cfg_destroy(lcfg);
	wc_control_stop(ctl);
	if (fz.wc) {
		/* Commit; with flush_on_suspend write everything back first. */
		if (wcache_close(fz.wc) < 0) {
			cli_error(fz_cmd, "close (final commit) failed: %s", wcache_last_error());
			rc = CLI_EXIT_FAIL;
		}
	}
	if (mounted && o->pidfile[0])
		fz_remove_pidfile(o->pidfile);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_destroy(&fz.lock);
	fuse_opt_free_args(&args);
	if (notify_fd >= 0)
		close(notify_fd);
	return rc;
}

/* Parent of a daemon: wait until the child is ready (0) or has failed (its exit code). */
static int fz_wait_ready(int fd, pid_t pid)
{
	char c;
	ssize_t n;
	int st;

	do {
		n = read(fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	close(fd);
	if (n == 1)
		return CLI_EXIT_OK;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			cli_error(fz_cmd, "waiting for the server: %s", strerror(errno));
			return CLI_EXIT_FAIL;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st))
		return WEXITSTATUS(st);
	cli_error(fz_cmd, "the server exited before it was ready");
	return CLI_EXIT_FAIL;
}

static int fz_set_path(char *dst, size_t len, const char *what, const char *src)
{
	if (!*src)
		return cli_usage_error(fz_cmd, "%s: empty path", what);
	if (strlen(src) >= len)
		return cli_usage_error(fz_cmd, "%s: path is too long (max %zu bytes)", what,
				       len - 1);
	strcpy(dst, src);
	return 0;
}

int cmd_fuse(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct option lo[16 + 2 * NR_TABLE_OPTS + 1];
	char names[NR_TABLE_OPTS][32];
	const char *control = NULL, *pidfile = NULL, *mnt;
	struct fz_opts *o;
	uint64_t v;
	int c, rc = CLI_EXIT_FAIL, log_fd = -1;
	size_t n = 0;

	fz_cmd = cmd;
	lo[n++] = (struct option){ "control", required_argument, NULL, 'c' };
	lo[n++] = (struct option){ "foreground", no_argument, NULL, 'f' };
	lo[n++] = (struct option){ "pidfile", required_argument, NULL, 'P' };
	lo[n++] = (struct option){ "log", required_argument, NULL, 'l' };
	lo[n++] = (struct option){ "threads", required_argument, NULL, 't' };
	lo[n++] = (struct option){ "allow-other", no_argument, NULL, OPT_ALLOW_OTHER };
	lo[n++] = (struct option){ "allow_other", no_argument, NULL, OPT_ALLOW_OTHER };
	lo[n++] = (struct option){ "cache-io", required_argument, NULL, OPT_CACHE_IO };
	lo[n++] = (struct option){ "flush-on-suspend", no_argument, NULL, OPT_FOS };
	lo[n++] = (struct option){ "flush_on_suspend", no_argument, NULL, OPT_FOS };
	lo[n++] = (struct option){ "start-sector", required_argument, NULL, 's' };
	lo[n++] = (struct option){ "block-size", required_argument, NULL, 'b' };
	lo[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	for (size_t i = 0; i < NR_TABLE_OPTS; i++) {
		int arg = table_opts[i].has_value ? required_argument : no_argument;

		snprintf(names[i], sizeof(names[i]), "%s", table_opts[i].name);
		for (char *p = names[i]; *p; p++)
			*p = *p == '-' ? '_' : *p;
		lo[n++] = (struct option){ table_opts[i].name, arg, NULL, OPT_TABLE + (int)i };
		lo[n++] = (struct option){ names[i], arg, NULL, OPT_TABLE + (int)i };
	}
	lo[n] = (struct option){ NULL, 0, NULL, 0 };

	o = calloc(1, sizeof(*o));
	if (!o) {
		cli_error(cmd, "out of memory");
		return CLI_EXIT_FAIL;
	}
	wcache_cfg_init(&o->cfg);
	o->cfg.block_size = 0;		/* from the superblock; 4096 when formatting */
	o->threads = FZ_DEF_THREADS;
	while ((c = cli_getopt(cmd, argc, argv, ":c:fP:l:t:s:b:h", lo)) != -1) {
		switch (c) {
		case 'c':
			control = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 'l':
			if (fz_set_path(o->logfile, sizeof(o->logfile), "--log", optarg))
				goto usage;
			break;
		case 't':
			if (cli_opt_u64(cmd, "--threads", optarg, FZ_MAX_THREADS, &v))
				goto usage;
			if (!v) {
				cli_usage_error(cmd, "--threads: must be at least 1");
				goto usage;
			}
			o->threads = (unsigned)v;
			break;
		case OPT_ALLOW_OTHER:
			o->allow_other = true;
			break;
		case OPT_FOS:
			o->flush_on_suspend = true;
			break;
		case OPT_CACHE_IO:
			if (strcmp(optarg, "direct") && strcmp(optarg, "buffered")) {
				cli_usage_error(cmd, "--cache-io: '%s' is not direct or buffered", optarg);
				goto usage;
			}
			o->cfg.cache_buffered = !strcmp(optarg, "buffered");
			break;
		case 's':
			if (cli_opt_u64(cmd, "--start-sector", optarg, MAX_START_SECTOR,
					&o->cfg.start_sector))
				goto usage;
			o->cfg.set_mask |= WC_SET_START_SECTOR;
			break;
		case 'b':
			if (cli_opt_u64(cmd, "--block-size", optarg, UINT32_MAX, &v))
				goto usage;
			if (v < 512 || v > 4096 || (v & (v - 1))) {
				cli_usage_error(cmd, "--block-size: %llu is invalid; must be 512, "
						"1024, 2048 or 4096", (unsigned long long)v);
				goto usage;
			}
			o->cfg.block_size = (uint32_t)v;
			break;
		case 'h':
			free(o);
			fputs(fuse_usage, stdout);
			return CLI_EXIT_OK;
		case -2:
			goto usage;
		default:
			if (c >= OPT_TABLE && c < OPT_TABLE + (int)NR_TABLE_OPTS) {
				size_t i = (size_t)(c - OPT_TABLE);

				if (wcache_cfg_set(&o->cfg, table_opts[i].name,
						   table_opts[i].has_value ? optarg : NULL) < 0) {
					cli_usage_error(cmd, "%s", wcache_last_error());
					goto usage;
				}
				break;
			}
			goto usage;
		}
	}
	if (argc - optind != 3) {
		cli_usage_error(cmd, argc - optind < 3 ? "expected ORIGIN CACHE MOUNTPOINT"
				: "too many arguments (expected ORIGIN CACHE MOUNTPOINT)");
		goto usage;
	}
	if (fz_set_path(o->cfg.origin_path, sizeof(o->cfg.origin_path), "ORIGIN", argv[optind]) ||
	    fz_set_path(o->cfg.cache_path, sizeof(o->cfg.cache_path), "CACHE", argv[optind + 1]))
		goto usage;
	mnt = argv[optind + 2];
	if (!*mnt) {
		cli_usage_error(cmd, "MOUNTPOINT: empty path");
		goto usage;
	}
	if (wcache_cfg_validate(&o->cfg) < 0) {
		cli_usage_error(cmd, "%s", wcache_last_error());
		goto usage;
	}

	fuse_set_log_func(fz_fuse_log);
	if (fz_check_dev_fuse() < 0 || fz_check_mountpoint(mnt, o->mnt, sizeof(o->mnt)) < 0)
		goto out;
	if (control && fz_abs_path("--control", control, o->control, sizeof(o->control)) < 0)
		goto out;
	if (pidfile && fz_abs_path("--pidfile", pidfile, o->pidfile, sizeof(o->pidfile)) < 0)
		goto out;
	fz_abs_dev(o->cfg.origin_path, sizeof(o->cfg.origin_path));
	fz_abs_dev(o->cfg.cache_path, sizeof(o->cfg.cache_path));
	if (o->logfile[0] && !o->foreground) {
		log_fd = open(o->logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (log_fd < 0) {
			cli_error(cmd, "--log %s: %s", o->logfile, strerror(errno));
			goto out;
		}
	}
	if (pthread_key_create(&fz_buf_key, fz_tbuf_free)) {
		cli_error(cmd, "out of memory");
		goto out;
	}

	if (o->foreground) {
		rc = fz_serve(o, -1, -1);
	} else {
		int p[2];
		pid_t pid;

		if (pipe2(p, O_CLOEXEC) < 0) {
			cli_error(cmd, "pipe: %s", strerror(errno));
			goto out;
		}
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		if (pid < 0) {
			cli_error(cmd, "fork: %s", strerror(errno));
			close(p[0]);
			close(p[1]);
			goto out;
		}
		if (pid > 0) {
			close(p[1]);
			rc = fz_wait_ready(p[0], pid);
			goto out;
		}
		close(p[0]);
		setsid();	/* out of the caller's process group and session */
		rc = fz_serve(o, p[1], log_fd);
	}
out:
	if (log_fd >= 0)
		close(log_fd);
	free(o);
	return rc;
usage:
	free(o);
	return CLI_EXIT_USAGE;
}
