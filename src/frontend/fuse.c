/* SPDX-License-Identifier: MIT */
/*
 * FUSE export (fuse.h): serves one file, MOUNTPOINT/disk, whose bytes are the
 * cached device, so that losetup gives a local block device on hosts without
 * nbd/ublk. Owns the FUSE session and the mapping of FUSE requests onto
 * wcache.h; knows nothing of the cache format and nothing of the command line
 * (option parsing, checks, pidfile and daemon live in src/cli/cmd_fuse.c).
 * Thread model: libfuse multi-threaded loop, every handler calls the
 * (thread-safe) engine directly.
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
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "fuse.h"

#define FZ_DISK_NAME	WC_FUSE_DISK_NAME
#define FZ_ROOT_INO	FUSE_ROOT_ID
#define FZ_DISK_INO	2
#define FZ_ATTR_TIMEOUT	3600.0		/* the size never changes while mounted */
#define FZ_PUNCH_CHUNK	(1u << 20)	/* read-back unit when checking a punched range */
#define FZ_BUF_ALIGN	4096		/* buffers handed to the engine (O_DIRECT devices) */

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
	const struct wc_fuse *f;	/* the caller's description (log) */
};

/* The session's description, for libfuse's log hook (which has no opaque pointer). */
static const struct wc_fuse *fz_session;
static pthread_key_t fz_buf_key;
static pthread_once_t fz_buf_once = PTHREAD_ONCE_INIT;
static int fz_buf_key_err;

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
__attribute__((format(printf, 3, 4)))
static void fz_log(const struct wc_fuse *f, enum wc_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!f->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f->log(level, msg, f->log_opaque);
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
	fz_log(fz->f, WC_LOG_ERROR, "%s of %" PRIu64 " bytes at %" PRIu64 " failed: %s (%s)", op,
	       len, off, strerror(-ret), wcache_last_error());
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


/* libfuse's messages: warnings and errors always, the rest as WC_LOG_INFO. */
__attribute__((format(printf, 2, 0)))
static void fz_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	const struct wc_fuse *f = fz_session;
	char msg[1024];
	size_t n;

	if (!f || !f->log)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	fz_log(f, level > FUSE_LOG_WARNING ? WC_LOG_INFO : WC_LOG_ERROR, "libfuse: %s", msg);
}

static void fz_buf_key_create(void)
{
	fz_buf_key_err = pthread_key_create(&fz_buf_key, fz_tbuf_free);
}

int wc_fuse_run(const struct wc_fuse *f)
{
	char opts[256];
	char *fargv[] = { (char *)"wcache-fuse", (char *)"-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_loop_config *lcfg = NULL;
	struct fuse_session *se = NULL;
	sigset_t term, old;
	struct fz fz;
	struct timespec now;
	bool mounted = false, handlers = false;
	int ret = -EIO;
	unsigned left;

	pthread_once(&fz_buf_once, fz_buf_key_create);
	if (fz_buf_key_err) {
		fz_log(f, WC_LOG_ERROR, "out of memory");
		return -ENOMEM;
	}
	memset(&fz, 0, sizeof(fz));
	pthread_mutex_init(&fz.lock, NULL);
	fz.wc = f->wc;
	fz.f = f;
	fz.size = wcache_size(f->wc);
	fz.bs = wcache_block_size(f->wc);
	fz.threads = f->threads ? f->threads : WC_FUSE_DEF_THREADS;
	clock_gettime(CLOCK_REALTIME, &now);
	fz.root = (struct fz_attr){ 0755, getuid(), getgid(), now, now, now };
	fz.disk = (struct fz_attr){ 0600, getuid(), getgid(), now, now, now };
	fz_session = f;
	fuse_set_log_func(fz_fuse_log);

	snprintf(opts, sizeof(opts), "fsname=wcache,subtype=wcache,default_permissions%s",
		 f->allow_other ? ",allow_other" : "");
	se = fuse_session_new(&args, &fz_ops, sizeof(fz_ops), &fz);
	if (!se) {
		fz_log(f, WC_LOG_ERROR, "cannot create the FUSE session (see the message above)");
		goto out;
	}
	if (fuse_set_signal_handlers(se) < 0) {
		fz_log(f, WC_LOG_ERROR, "cannot install signal handlers");
		goto out;
	}
	handlers = true;
	if (fuse_session_mount(se, f->mountpoint) < 0) {
		fz_log(f, WC_LOG_ERROR, "cannot mount FUSE on %s (see the message above)",
		       f->mountpoint);
		goto out;
	}
	mounted = true;
	lcfg = fuse_loop_cfg_create();
	if (!lcfg) {
		fz_log(f, WC_LOG_ERROR, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	fuse_loop_cfg_set_max_threads(lcfg, fz.threads);
	fuse_loop_cfg_set_idle_threads(lcfg, fz.threads < 16 ? fz.threads : 16);
	fuse_loop_cfg_set_clone_fd(lcfg, 0);
	if (f->ready && f->ready(f->ready_opaque) < 0)
		goto out;

	/* The caller blocked these for the threads it started: let them end the loop here. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGHUP);
	pthread_sigmask(SIG_UNBLOCK, &term, &old);
	ret = fuse_session_loop_mt(se, lcfg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret < 0) {
		fz_log(f, WC_LOG_ERROR, "FUSE loop failed: %s", strerror(-ret));
		goto out;
	}
	left = atomic_load(&fz.nr_open);
	if (left)
		fz_log(f, WC_LOG_WARN, "stopping while %s/%s is still open (%u handles; a loop "
		       "device still attached?): its further I/O fails", f->mountpoint, FZ_DISK_NAME,
		       left);
	ret = 0;
out:
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	if (lcfg)
		fuse_loop_cfg_destroy(lcfg);
	fuse_opt_free_args(&args);
	pthread_mutex_destroy(&fz.lock);
	fuse_set_log_func(NULL);	/* libfuse's default: stderr */
	fz_session = NULL;
	return ret;
}
