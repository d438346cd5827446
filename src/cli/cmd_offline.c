/* SPDX-License-Identifier: MIT */
/*
 * Subcommands that act on devices while no server uses them: format (with a
 * dirty-data guard), export (read-only copy of the logical device, sparse
 * output) and flush (activate, write everything back, close, verify).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define EXPORT_CHUNK (1u << 20)

enum {
	OPT_NO_PROGRESS = 0x100,
	OPT_TABLE = 0x200,	/* + index into wcache_options() */
};

static int set_path(const struct cli_cmd *cmd, char *dst, size_t len, const char *what,
		    const char *src)
{
	if (!*src)
		return cli_usage_error(cmd, "%s: empty path", what);
	if (strlen(src) >= len)
		return cli_usage_error(cmd, "%s: path is too long (max %zu bytes)", what, len - 1);
	strcpy(dst, src);
	return 0;
}

/* ---------------- format ---------------- */

int cmd_format(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "block-size", required_argument, NULL, 'b' },
		{ "start-sector", required_argument, NULL, 's' },
		{ "force", no_argument, NULL, 'f' },
		{ "mode", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct wc_cfg mcfg;
	uint32_t bs = 4096;
	uint64_t start = 0;
	bool force = false;
	struct wc_inspect ins;
	struct wc_sb_info sb;
	const char *cache;
	char hb[32], hb2[32];
	int c, ret;

	while ((c = cli_getopt(cmd, argc, argv, ":b:s:m:fh", lo)) != -1) {
		switch (c) {
		case 'm':
			/* The layout does not depend on the mode: only check the word. */
			wcache_cfg_init(&mcfg);
			if (cli_opt_mode(cmd, optarg, &mcfg))
				return CLI_EXIT_USAGE;
			break;
		case 'b':
			if (cli_opt_block_size(cmd, optarg, &bs))
				return CLI_EXIT_USAGE;
			break;
		case 's':
			if (cli_opt_start_sector(cmd, optarg, &start))
				return CLI_EXIT_USAGE;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			return cli_help(cmd);
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(cmd, optind >= argc ? "missing CACHE argument"
					   : "too many arguments (expected CACHE)");
	cache = argv[optind];

	/* Dirty data guard: committed valid entries are data the origin does not have. */
	ret = wcache_inspect(cache, start, 0, &ins, NULL, NULL);
	if ((ret == 1 || ret == -EUCLEAN) && ins.nr_valid) {
		cli_human_bytes(ins.nr_valid * ins.sb.block_size, hb, sizeof(hb));
		if (!force) {
			cli_error(cmd, "%s is a cache with %llu dirty blocks (%s of %u-byte blocks, "
				  "seq_count %llu) that are not yet written back to their origin; "
				  "formatting would lose them.", cache,
				  (unsigned long long)ins.nr_valid, hb, ins.sb.block_size,
				  (unsigned long long)ins.sb.seq_count);
			fprintf(stderr, "Run 'wcache flush ORIGIN %s' first, or use --force to "
				"discard them.\n", cache);
			return CLI_EXIT_FAIL;
		}
		cli_warn(cmd, "--force: discarding %llu dirty blocks (%s) of %s",
			 (unsigned long long)ins.nr_valid, hb, cache);
	}
	if (ret == -ENODATA && ins.blank_entries) {
		if (!force) {
			cli_error(cmd, "%s has a blank superblock (first 8 bytes zero), but %llu "
				  "records after it look like committed cache entries: a damaged "
				  "cache, not an empty device; formatting would lose them.", cache,
				  (unsigned long long)ins.blank_entries);
			fprintf(stderr, "Salvage it with 'wcache export --force ORIGIN %s OUTPUT' "
				"first, or use --force to format anyway.\n", cache);
			return CLI_EXIT_FAIL;
		}
		cli_warn(cmd, "--force: formatting over %llu entry-like records of %s",
			 (unsigned long long)ins.blank_entries, cache);
	}
	ret = wcache_format(cache, bs, start, &sb);
	if (ret < 0) {
		cli_error(cmd, "%s", wcache_last_error());
		return CLI_EXIT_FAIL;
	}
	printf("formatted %s: %llu blocks of %u bytes (%s), metadata %s, data at byte %llu\n",
	       cache, (unsigned long long)sb.n_blocks, sb.block_size,
	       cli_human_bytes(sb.n_blocks * sb.block_size, hb, sizeof(hb)),
	       cli_human_bytes(sb.meta_bytes, hb2, sizeof(hb2)),
	       (unsigned long long)sb.data_offset);
	return CLI_EXIT_OK;
}

/* ---------------- export ---------------- */

static bool same_file(const struct stat *a, const struct stat *b)
{
	if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
		return a->st_rdev == b->st_rdev;
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Refuse an OUTPUT that is one of the inputs: opening it would truncate an input. */
static int check_output(const struct cli_cmd *cmd, const char *out, const char *origin,
			const char *cache)
{
	const char *in[2] = { origin, cache };
	struct stat so, si;

	if (stat(out, &so) < 0)
		return 0;	/* does not exist yet: created later */
	if (S_ISDIR(so.st_mode)) {
		cli_error(cmd, "OUTPUT %s is a directory", out);
		return CLI_EXIT_FAIL;
	}
	for (int i = 0; i < 2; i++) {
		if (stat(in[i], &si) == 0 && same_file(&so, &si)) {
			cli_error(cmd, "OUTPUT %s is the same file as %s %s; refusing to overwrite an "
				  "input", out, i ? "CACHE" : "ORIGIN", in[i]);
			return CLI_EXIT_FAIL;
		}
	}
	return 0;
}

static int write_all(int fd, const uint8_t *buf, size_t len, uint64_t off, bool seekable)
{
	while (len) {
		ssize_t n = seekable ? pwrite(fd, buf, len, (off_t)off) : write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

struct export_out {
	int fd;
	bool is_stdout, seekable, sparse, is_reg;
};

static int open_output(const struct cli_cmd *cmd, const char *path, struct export_out *o)
{
	struct stat st;

	memset(o, 0, sizeof(*o));
	if (!strcmp(path, "-")) {
		o->fd = STDOUT_FILENO;
		o->is_stdout = true;
		if (fstat(o->fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    lseek(o->fd, 0, SEEK_CUR) == 0) {
			/* "> file": still a plain sequential write, no holes. */
			o->is_reg = true;
		}
		return 0;
	}
	if (stat(path, &st) == 0 && S_ISBLK(st.st_mode)) {
		o->fd = open(path, O_WRONLY | O_CLOEXEC);
	} else {
		o->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		o->sparse = true;
	}
	if (o->fd < 0) {
		cli_error(cmd, "cannot open OUTPUT %s: %s", path, strerror(errno));
		return CLI_EXIT_FAIL;
	}
	if (fstat(o->fd, &st) < 0) {
		cli_error(cmd, "%s: fstat failed: %s", path, strerror(errno));
		close(o->fd);
		return CLI_EXIT_FAIL;
	}
	o->is_reg = S_ISREG(st.st_mode);
	o->sparse = o->sparse && o->is_reg;
	o->seekable = o->is_reg || S_ISBLK(st.st_mode);
	return 0;
}

static int export_copy(const struct cli_cmd *cmd, struct wcache *wc, struct export_out *o,
		       const char *out_path, enum progress_mode pmode, uint64_t *written)
{
	uint64_t size = wcache_size(wc), off, nr_chunks = (size + EXPORT_CHUNK - 1) / EXPORT_CHUNK;
	struct progress pr;
	uint8_t *buf;
	int ret = 0;

	*written = 0;
	if (posix_memalign((void **)&buf, 4096, EXPORT_CHUNK)) {
		cli_error(cmd, "out of memory");
		return CLI_EXIT_FAIL;
	}
	progress_start(&pr, pmode, nr_chunks, "MiB");
	for (off = 0; off < size; off += EXPORT_CHUNK) {
		size_t len = size - off < EXPORT_CHUNK ? (size_t)(size - off) : EXPORT_CHUNK;

		ret = wcache_read(wc, buf, len, off);
		if (ret < 0) {
			progress_end(&pr, off / EXPORT_CHUNK);
			cli_error(cmd, "read at byte %llu failed: %s", (unsigned long long)off,
				  wcache_last_error());
			goto out;
		}
		if (!(o->sparse && all_zero(buf, len))) {
			ret = write_all(o->fd, buf, len, off, o->seekable);
			if (ret < 0) {
				progress_end(&pr, off / EXPORT_CHUNK);
				cli_error(cmd, "write to %s at byte %llu failed: %s", out_path,
					  (unsigned long long)off, strerror(-ret));
				goto out;
			}
			*written += len;
		}
		progress_update(&pr, off / EXPORT_CHUNK + 1);
	}
	progress_end(&pr, nr_chunks);
	/* Holes at the end need the size set explicitly. */
	if (o->sparse && ftruncate(o->fd, (off_t)size) < 0) {
		ret = -errno;
		cli_error(cmd, "%s: cannot set size %llu: %s", out_path, (unsigned long long)size,
			  strerror(errno));
		goto out;
	}
	if ((o->is_reg || o->seekable) && fsync(o->fd) < 0 && errno != EINVAL) {
		ret = -errno;
		cli_error(cmd, "%s: fsync failed: %s", out_path, strerror(errno));
	}
out:
	free(buf);
	return ret < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* Valid entries that map past the end of the origin: export cannot place them. */
#define LOST_SHOWN 8

struct lost_blocks {
	uint64_t origin_sectors, block_bytes;
	uint64_t nr;
	uint64_t end_bytes;	/* the origin size that would hold them all */
	struct wc_entry_info shown[LOST_SHOWN];
};

static int note_lost(const struct wc_entry_info *e, bool valid, void *opaque)
{
	struct lost_blocks *l = opaque;

	/* The rule recovery applies (sector >= origin size) when it drops an entry. */
	if (!valid || e->original_sector < l->origin_sectors)
		return 0;
	if (l->nr < LOST_SHOWN)
		l->shown[l->nr] = *e;
	l->nr++;
	if (e->original_sector * 512 + l->block_bytes > l->end_bytes)
		l->end_bytes = e->original_sector * 512 + l->block_bytes;
	return 0;
}

/*
 * Find the valid entries that map past the end of ORIGIN: recovery drops
 * them, so the export lacks their data. Returns 0 (l filled) or
 * CLI_EXIT_FAIL after an error message.
 */
static int find_lost_blocks(const struct cli_cmd *cmd, struct wcache *wc, const char *cache,
			    uint64_t start_sector, bool salvage, struct lost_blocks *l)
{
	struct wc_inspect ins;
	int ret;

	memset(l, 0, sizeof(*l));
	l->origin_sectors = (wcache_size(wc) + 511) / 512;
	l->block_bytes = wcache_block_size(wc);
	ret = wcache_inspect(cache, start_sector, 0, &ins, note_lost, l);
	/*
	 * --force opened what inspect refuses (blank superblock, truncated
	 * device...); the engine's salvage warnings said what is missing.
	 */
	if (ret < 0 && ret != -EUCLEAN && salvage)
		return 0;
	if (ret < 0 && ret != -EUCLEAN) {
		cli_error(cmd, "%s", wcache_last_error());
		return CLI_EXIT_FAIL;
	}
	return 0;
}

/* The export is complete but for l->nr blocks: name them and say what to do. */
static void report_lost_blocks(const struct cli_cmd *cmd, struct wcache *wc, const char *origin,
			       const char *cache, const char *out_path,
			       const struct lost_blocks *l)
{
	char list[LOST_SHOWN * 64] = "";
	size_t pos = 0;

	for (uint64_t i = 0; i < l->nr && i < LOST_SHOWN; i++) {
		const struct wc_entry_info *e = &l->shown[i];
		int n = snprintf(list + pos, sizeof(list) - pos, "%sentry %llu (origin byte %llu)",
				 i ? ", " : "", (unsigned long long)e->index,
				 (unsigned long long)(e->original_sector * 512));

		if (n > 0 && (size_t)n < sizeof(list) - pos)
			pos += (size_t)n;
	}
	cli_error(cmd, "%llu dirty block%s of %s map%s past the end of ORIGIN %s (%llu bytes) and "
		  "could not be placed in %s: %s%s", (unsigned long long)l->nr,
		  l->nr == 1 ? "" : "s", cache, l->nr == 1 ? "s" : "", origin,
		  (unsigned long long)wcache_size(wc), out_path, list, l->nr > LOST_SHOWN ? ", ..." : "");
	fprintf(stderr, "%s holds everything else. If ORIGIN is the wrong device, export with the "
		"cache's own origin; to keep these blocks, export from a copy of ORIGIN grown "
		"to hold them (truncate -s %llu COPY). 'wcache dump %s' lists every block.\n",
		strcmp(out_path, "-") ? out_path : "The output", (unsigned long long)l->end_bytes,
		cache);
}

int cmd_export(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "start-sector", required_argument, NULL, 's' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "force", no_argument, NULL, 'f' },
		{ "progress", no_argument, NULL, 'p' },
		{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum progress_mode pmode = PROGRESS_AUTO;
	const char *origin, *cache, *out_path;
	struct lost_blocks lost;
	struct wcache *wc = NULL;
	struct export_out o;
	uint64_t written = 0;
	struct wc_cfg cfg;
	char hb[32], hb2[32];
	int c, ret, rc;

	wcache_cfg_init(&cfg);
	cfg.block_size = 0;	/* from the superblock unless --block-size */
	cfg.read_only = true;
	cfg.format = WC_FORMAT_NO;
	while ((c = cli_getopt(cmd, argc, argv, ":s:b:fph", lo)) != -1) {
		switch (c) {
		case 's':
			if (cli_opt_start_sector(cmd, optarg, &cfg.start_sector))
				return CLI_EXIT_USAGE;
			cfg.set_mask |= WC_SET_START_SECTOR;
			break;
		case 'b':
			if (cli_opt_block_size(cmd, optarg, &cfg.block_size))
				return CLI_EXIT_USAGE;
			break;
		case 'f':
			cfg.salvage = true;
			break;
		case 'p':
			pmode = PROGRESS_FORCE;
			break;
		case OPT_NO_PROGRESS:
			pmode = PROGRESS_OFF;
			break;
		case 'h':
			return cli_help(cmd);
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind != 3)
		return cli_usage_error(cmd, argc - optind < 3 ? "expected ORIGIN CACHE OUTPUT"
					   : "too many arguments (expected ORIGIN CACHE OUTPUT)");
	origin = argv[optind];
	cache = argv[optind + 1];
	out_path = argv[optind + 2];
	if (set_path(cmd, cfg.origin_path, sizeof(cfg.origin_path), "ORIGIN", origin) ||
	    set_path(cmd, cfg.cache_path, sizeof(cfg.cache_path), "CACHE", cache) ||
	    (!*out_path && cli_usage_error(cmd, "OUTPUT: empty path")))
		return CLI_EXIT_USAGE;
	if (strcmp(out_path, "-") && check_output(cmd, out_path, origin, cache))
		return CLI_EXIT_FAIL;
	if (!strcmp(out_path, "-") && isatty(STDOUT_FILENO)) {
		cli_error(cmd, "OUTPUT '-' is a terminal: refusing to write the binary image "
			  "to it; redirect standard output (> FILE or | COMMAND) or give a file "
			  "name");
		return CLI_EXIT_FAIL;
	}

	ret = wcache_open(&cfg, &wc);
	if (ret < 0) {
		cli_error(cmd, "%s", wcache_last_error());
		return CLI_EXIT_FAIL;
	}
	/*
	 * Dirty blocks past the end of ORIGIN are dropped by recovery. Still
	 * export the rest (salvage), but fail and name them: never exit 0
	 * without every dirty block.
	 */
	rc = find_lost_blocks(cmd, wc, cache, cfg.start_sector, cfg.salvage, &lost);
	/* Open OUTPUT only now, so that a bad cache never truncates it. */
	if (rc == CLI_EXIT_OK)
		rc = open_output(cmd, out_path, &o);
	if (rc == CLI_EXIT_OK) {
		rc = export_copy(cmd, wc, &o, out_path, pmode, &written);
		if (!o.is_stdout && close(o.fd) < 0 && rc == CLI_EXIT_OK) {
			cli_error(cmd, "%s: close failed: %s", out_path, strerror(errno));
			rc = CLI_EXIT_FAIL;
		}
	}
	if (rc == CLI_EXIT_OK && lost.nr) {
		report_lost_blocks(cmd, wc, origin, cache, out_path, &lost);
		rc = CLI_EXIT_FAIL;
	}
	if (rc == CLI_EXIT_OK && !o.is_stdout)
		printf("exported %s (%s, block size %u) to %s, %s written\n", origin,
		       cli_human_bytes(wcache_size(wc), hb, sizeof(hb)), wcache_block_size(wc),
		       out_path, cli_human_bytes(written, hb2, sizeof(hb2)));
	ret = wcache_close(wc);
	if (ret < 0 && rc == CLI_EXIT_OK) {
		cli_error(cmd, "close: %s", wcache_last_error());
		rc = CLI_EXIT_FAIL;
	}
	return rc;
}

/* ---------------- flush ---------------- */

struct flush_watch {
	struct wcache *wc;
	struct progress pr;
	uint64_t total;
	atomic_bool done;
};

static void *flush_watch_main(void *arg)
{
	struct flush_watch *w = arg;
	struct timespec ts = { 0, 100 * 1000 * 1000 };

	while (!atomic_load_explicit(&w->done, memory_order_acquire)) {
		struct wc_stats st;

		wcache_get_stats(w->wc, &st);
		progress_update(&w->pr, st.dirty_blocks < w->total ? w->total - st.dirty_blocks : 0);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int cmd_flush(const struct cli_cmd *cmd, int argc, char **argv)
{
	/* Fixed options first, then two spellings of every table option. */
	struct option lo[8 + CLI_TABLE_LONGOPTS + 1];
	const struct wc_opt_desc *d;
	enum progress_mode pmode = PROGRESS_AUTO;
	const char *origin, *cache;
	struct flush_watch w = { 0 };
	struct wcache *wc = NULL;
	struct wc_inspect ins;
	pthread_t thr;
	bool thr_ok;
	struct wc_stats st;
	struct wc_cfg cfg;
	char hb[32];
	int c, ret, rc = CLI_EXIT_OK;
	size_t n = 0;

	lo[n++] = (struct option){ "start-sector", required_argument, NULL, 's' };
	lo[n++] = (struct option){ "block-size", required_argument, NULL, 'b' };
	lo[n++] = (struct option){ "progress", no_argument, NULL, 'p' };
	lo[n++] = (struct option){ "no-progress", no_argument, NULL, OPT_NO_PROGRESS };
	lo[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	n += cli_table_longopts(lo + n, cmd->own_table_opts, OPT_TABLE);
	lo[n] = (struct option){ NULL, 0, NULL, 0 };

	wcache_cfg_init(&cfg);
	cfg.block_size = 0;
	cfg.format = WC_FORMAT_NO;
	while ((c = cli_getopt(cmd, argc, argv, ":s:b:ph", lo)) != -1) {
		switch (c) {
		case 's':
			if (cli_opt_start_sector(cmd, optarg, &cfg.start_sector))
				return CLI_EXIT_USAGE;
			cfg.set_mask |= WC_SET_START_SECTOR;
			break;
		case 'b':
			if (cli_opt_block_size(cmd, optarg, &cfg.block_size))
				return CLI_EXIT_USAGE;
			break;
		case 'p':
			pmode = PROGRESS_FORCE;
			break;
		case OPT_NO_PROGRESS:
			pmode = PROGRESS_OFF;
			break;
		case 'h':
			return cli_help(cmd);
		case -2:
			return CLI_EXIT_USAGE;
		default:
			d = cli_table_opt(c, OPT_TABLE);
			if (!d || cli_table_set(cmd, &cfg, d, optarg))
				return CLI_EXIT_USAGE;
			break;
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cmd, argc - optind < 2 ? "expected ORIGIN CACHE"
					   : "too many arguments (expected ORIGIN CACHE)");
	origin = argv[optind];
	cache = argv[optind + 1];
	if (set_path(cmd, cfg.origin_path, sizeof(cfg.origin_path), "ORIGIN", origin) ||
	    set_path(cmd, cfg.cache_path, sizeof(cfg.cache_path), "CACHE", cache))
		return CLI_EXIT_USAGE;
	if (wcache_cfg_validate(&cfg) < 0)
		return cli_usage_error(cmd, "%s", wcache_last_error());

	ret = wcache_open(&cfg, &wc);
	if (ret < 0) {
		cli_error(cmd, "%s", wcache_last_error());
		return CLI_EXIT_FAIL;
	}
	wcache_get_stats(wc, &st);
	w.wc = wc;
	w.total = st.dirty_blocks;
	atomic_init(&w.done, false);
	progress_start(&w.pr, pmode, w.total, "blocks");
	thr_ok = pthread_create(&thr, NULL, flush_watch_main, &w) == 0;
	ret = wcache_message(wc, "flush");
	atomic_store_explicit(&w.done, true, memory_order_release);
	if (thr_ok)
		pthread_join(thr, NULL);
	wcache_get_stats(wc, &st);
	progress_end(&w.pr, st.dirty_blocks < w.total ? w.total - st.dirty_blocks : 0);
	if (ret < 0) {
		cli_error(cmd, "flush failed: %s", wcache_last_error());
		rc = CLI_EXIT_FAIL;
	} else if (st.dirty_blocks) {
		cli_error(cmd, "%llu blocks are still dirty after the flush",
			  (unsigned long long)st.dirty_blocks);
		rc = CLI_EXIT_FAIL;
	}
	ret = wcache_close(wc);
	if (ret < 0) {
		cli_error(cmd, "close (final commit) failed: %s", wcache_last_error());
		return CLI_EXIT_FAIL;
	}
	if (rc != CLI_EXIT_OK)
		return rc;
	/* Verify what a later activation will see. */
	ret = wcache_inspect(cache, cfg.start_sector, 0, &ins, NULL, NULL);
	if (ret != 0) {
		if (ret < 0)
			cli_error(cmd, "verifying %s after the flush: %s", cache, wcache_last_error());
		else
			cli_error(cmd, "%s still has %llu valid entries after the flush", cache,
				  (unsigned long long)ins.nr_valid);
		return CLI_EXIT_FAIL;
	}
	printf("flushed %llu blocks (%s) from %s to %s; the cache is clean\n",
	       (unsigned long long)w.total,
	       cli_human_bytes(w.total * ins.sb.block_size, hb, sizeof(hb)), cache, origin);
	return CLI_EXIT_OK;
}
