/* SPDX-License-Identifier: MIT */
/*
 * Read-only subcommands built on wcache_inspect(): check (verify + exit code),
 * dump (superblock and entries, text or JSON) and offline status (counts).
 * They never open a device for writing and need no origin.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

/* One entry reported by wcache_inspect (seq_count != -1). */
struct dump_entry {
	struct wc_entry_info e;
	bool valid;
};

struct entry_list {
	struct dump_entry *v;
	size_t nr, cap;
	bool oom;
};

static int collect_entry(const struct wc_entry_info *e, bool valid, void *opaque)
{
	struct entry_list *l = opaque;

	if (l->nr == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct dump_entry *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->oom = true;
			return -ENOMEM;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->nr].e = *e;
	l->v[l->nr].valid = valid;
	l->nr++;
	return 0;
}

/* True when wcache_inspect got far enough to decode a superblock. */
static bool sb_was_read(const struct wc_inspect *ins)
{
	return ins->blank || ins->sb.magic || ins->sb.version || ins->sb.block_size ||
	       ins->sb.n_blocks || ins->sb.seq_count;
}

/* True when the superblock was valid, i.e. the entry counts mean something. */
static bool counts_valid(int ret)
{
	return ret >= 0 || ret == -EUCLEAN;
}

static const char *entry_state(const struct wc_inspect *ins, const struct dump_entry *d)
{
	uint64_t bs_sect = ins->sb.block_size / 512;

	if (d->e.data_missing)
		return "missing";
	if (d->e.seq_count >= ins->sb.seq_count)
		return "uncommitted";
	if (d->valid)
		return "valid";
	if (bs_sect && d->e.original_sector % bs_sect)
		return "misaligned";
	return "superseded";
}

/*
 * The "status" word of check, dump and status (text and --json): what the
 * inspection found, or why it found nothing (unreadable: no superblock could
 * be read at all: a missing, empty or unreadable device).
 */
static const char *inspect_status(int ret, const struct wc_inspect *ins)
{
	if (ret == 0)
		return "clean";
	if (ret == 1)
		return "dirty";
	if (ret == -EUCLEAN)
		return ins->short_bytes ? "truncated" : "corrupt";
	if (ins->blank)
		return "blank";
	if (!sb_was_read(ins))
		return "unreadable";
	return "invalid";
}

static uint64_t entry_offset(const struct wc_inspect *ins, uint64_t index)
{
	return ins->sb.data_offset + index * ins->sb.block_size;
}

/* ---------------- check ---------------- */

static void check_text(const char *cache, int ret, const struct wc_inspect *ins)
{
	char hb[32];

	if (counts_valid(ret)) {
		printf("cache: %s\n", cache);
		printf("block_size: %u\n", ins->sb.block_size);
		printf("n_blocks: %llu\n", (unsigned long long)ins->sb.n_blocks);
		printf("seq_count: %llu\n", (unsigned long long)ins->sb.seq_count);
		printf("data_offset: %llu\n", (unsigned long long)ins->sb.data_offset);
		printf("valid: %llu\n", (unsigned long long)ins->nr_valid);
		printf("free: %llu\n", (unsigned long long)ins->nr_free);
		printf("uncommitted: %llu\n", (unsigned long long)ins->nr_uncommitted);
		printf("superseded: %llu\n", (unsigned long long)ins->nr_superseded);
		if (ins->nr_equal_dups)
			printf("equal_seq_duplicates: %llu\n",
			       (unsigned long long)ins->nr_equal_dups);
		if (ins->nr_past_origin)
			printf("past_origin_or_misaligned: %llu\n",
			       (unsigned long long)ins->nr_past_origin);
	}
	if (ret == -EUCLEAN)
		printf("result: corrupt\n");
	else if (ret == 0)
		printf("result: clean: no dirty blocks\n");
	else if (ret == 1)
		printf("result: dirty: %llu blocks (%s) are not yet written back to the origin\n",
		       (unsigned long long)ins->nr_valid,
		       cli_human_bytes(ins->nr_valid * ins->sb.block_size, hb, sizeof(hb)));
}

/* The text keys as one object, plus status and error as in dump --json; always printed. */
static void check_json(const char *cache, uint64_t start, const char *origin, int ret,
		       const struct wc_inspect *ins, const char *error)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL, false);
	json_string(&j, "cache", cache);
	json_u64(&j, "start_sector", start);
	json_string(&j, "origin", origin);
	json_string(&j, "status", inspect_status(ret, ins));
	json_string(&j, "error", error);
	if (counts_valid(ret)) {
		json_u64(&j, "block_size", ins->sb.block_size);
		json_u64(&j, "n_blocks", ins->sb.n_blocks);
		json_u64(&j, "seq_count", ins->sb.seq_count);
		json_u64(&j, "data_offset", ins->sb.data_offset);
		json_u64(&j, "valid", ins->nr_valid);
		json_u64(&j, "free", ins->nr_free);
		json_u64(&j, "uncommitted", ins->nr_uncommitted);
		json_u64(&j, "superseded", ins->nr_superseded);
		json_u64(&j, "equal_seq_duplicates", ins->nr_equal_dups);
		json_u64(&j, "past_origin_or_misaligned", ins->nr_past_origin);
		json_u64(&j, "dirty_bytes", ins->nr_valid * ins->sb.block_size);
	}
	json_object_end(&j);
	json_finish(&j);
}

/* The cache was not read: the origin given for the range check is unusable. */
static void check_json_origin_error(const char *cache, uint64_t start, const char *origin,
				    const char *error)
{
	struct json j;

	json_init(&j, stdout);
	json_object_begin(&j, NULL, false);
	json_string(&j, "cache", cache);
	json_u64(&j, "start_sector", start);
	json_string(&j, "origin", origin);
	json_string(&j, "status", "origin_unreadable");
	json_string(&j, "error", error);
	json_object_end(&j);
	json_finish(&j);
}

int cmd_check(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "origin", required_argument, NULL, 'o' },
		{ "start-sector", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *origin = NULL, *cache;
	uint64_t start = 0, origin_bytes = 0;
	struct wc_inspect ins;
	bool quiet = false, json = false;
	char err[1024];
	int c, ret;

	while ((c = cli_getopt(cmd, argc, argv, ":o:s:qjh", lo)) != -1) {
		switch (c) {
		case 'o':
			origin = optarg;
			break;
		case 's':
			if (cli_opt_start_sector(cmd, optarg, &start))
				return CLI_EXIT_USAGE;
			break;
		case 'q':
			quiet = true;
			break;
		case 'j':
			json = true;
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
	if (quiet && json)
		return cli_usage_error(cmd, "--quiet and --json are mutually exclusive");
	cache = argv[optind];
	if (origin) {
		/* A path or an NBD URI, opened as activation would open it. */
		ret = wcache_device_size(origin, &origin_bytes);
		if (ret < 0)
			snprintf(err, sizeof(err), "origin: %s", wcache_last_error());
		else if (!origin_bytes)
			snprintf(err, sizeof(err), "origin %s has size 0", origin);
		if (ret < 0 || !origin_bytes) {
			if (json)
				check_json_origin_error(cache, start, origin, err);
			cli_error(cmd, "%s", err);
			return CLI_EXIT_USAGE;
		}
	}
	ret = wcache_inspect(cache, start, origin_bytes, &ins, NULL, NULL);
	snprintf(err, sizeof(err), "%s", ret < 0 ? wcache_last_error() : "");
	if (json)
		check_json(cache, start, origin, ret, &ins, ret < 0 ? err : NULL);
	else if (!quiet)
		check_text(cache, ret, &ins);
	if (ret < 0) {
		cli_error(cmd, "%s", err);
		return 2;
	}
	if (ins.grown)
		cli_warn(cmd, "%s is larger than its format (%llu blocks): grown since it was "
			 "formatted; the rest stays unused", cache, (unsigned long long)ins.sb.n_blocks);
	return ret == 0 ? 0 : 1;
}

/* ---------------- dump ---------------- */

static void dump_text(const char *cache, uint64_t start, int ret, const struct wc_inspect *ins,
		      const struct entry_list *l, bool all)
{
	size_t k = 0;

	printf("cache: %s\n", cache);
	printf("start_sector: %llu\n", (unsigned long long)start);
	printf("magic: 0x%08x\n", ins->sb.magic);
	printf("version: %u\n", ins->sb.version);
	printf("block_size: %u\n", ins->sb.block_size);
	printf("n_blocks: %llu\n", (unsigned long long)ins->sb.n_blocks);
	printf("seq_count: %llu\n", (unsigned long long)ins->sb.seq_count);
	if (!counts_valid(ret)) {
		printf("status: %s\n", inspect_status(ret, ins));
		return;
	}
	printf("meta_bytes: %llu\n", (unsigned long long)ins->sb.meta_bytes);
	printf("data_offset: %llu\n", (unsigned long long)ins->sb.data_offset);
	printf("status: %s\n", inspect_status(ret, ins));
	if (ins->short_bytes)
		printf("truncated: %llu bytes short; %llu entry records past the end (read as free), "
		       "%llu committed blocks with their data past the end (state missing)\n",
		       (unsigned long long)ins->short_bytes, (unsigned long long)ins->entries_missing,
		       (unsigned long long)ins->data_missing);
	printf("entries: %zu (valid %llu, superseded %llu, uncommitted %llu, free %llu)\n", l->nr,
	       (unsigned long long)ins->nr_valid, (unsigned long long)ins->nr_superseded,
	       (unsigned long long)ins->nr_uncommitted, (unsigned long long)ins->nr_free);
	printf("%10s  %20s  %20s  %-12s %15s\n", "index", "original_sector", "seq_count", "state",
	       "cache_offset");
	for (uint64_t i = 0; i < ins->sb.n_blocks - ins->entries_missing; i++) {
		if (k < l->nr && l->v[k].e.index == i) {
			const struct dump_entry *d = &l->v[k++];

			printf("%10llu  %20llu  %20llu  %-12s %15llu\n", (unsigned long long)i,
			       (unsigned long long)d->e.original_sector,
			       (unsigned long long)d->e.seq_count, entry_state(ins, d),
			       (unsigned long long)entry_offset(ins, i));
		} else if (all) {
			printf("%10llu  %20s  %20s  %-12s %15llu\n", (unsigned long long)i, "-", "-1",
			       "free", (unsigned long long)entry_offset(ins, i));
		} else if (k >= l->nr) {
			break;
		}
	}
}

static void dump_json(const char *cache, uint64_t start, int ret, const struct wc_inspect *ins,
		      const struct entry_list *l, bool all, const char *error)
{
	struct json j;
	char hex[16];
	size_t k = 0;

	json_init(&j, stdout);
	json_object_begin(&j, NULL, false);
	json_string(&j, "cache", cache);
	json_u64(&j, "start_sector", start);
	json_string(&j, "status", inspect_status(ret, ins));
	json_string(&j, "error", error);
	if (!sb_was_read(ins)) {
		/* Missing, empty or unreadable: the reason is all there is. */
		json_null(&j, "superblock");
		json_object_end(&j);
		json_finish(&j);
		return;
	}
	json_object_begin(&j, "superblock", false);
	snprintf(hex, sizeof(hex), "0x%08x", ins->sb.magic);
	json_u64(&j, "magic", ins->sb.magic);
	json_string(&j, "magic_hex", hex);
	json_u64(&j, "version", ins->sb.version);
	json_u64(&j, "block_size", ins->sb.block_size);
	json_u64(&j, "n_blocks", ins->sb.n_blocks);
	json_u64(&j, "seq_count", ins->sb.seq_count);
	if (counts_valid(ret)) {
		json_u64(&j, "meta_bytes", ins->sb.meta_bytes);
		json_u64(&j, "data_offset", ins->sb.data_offset);
	}
	json_object_end(&j);
	if (counts_valid(ret)) {
		json_object_begin(&j, "counts", false);
		json_u64(&j, "entries", l->nr);
		json_u64(&j, "valid", ins->nr_valid);
		json_u64(&j, "superseded", ins->nr_superseded);
		json_u64(&j, "uncommitted", ins->nr_uncommitted);
		json_u64(&j, "free", ins->nr_free);
		json_u64(&j, "equal_seq_duplicates", ins->nr_equal_dups);
		json_object_end(&j);
		if (ins->short_bytes) {
			json_object_begin(&j, "truncated", false);
			json_u64(&j, "short_bytes", ins->short_bytes);
			json_u64(&j, "entries_missing", ins->entries_missing);
			json_u64(&j, "data_missing", ins->data_missing);
			json_object_end(&j);
		}
		json_array_begin(&j, "entries", false);
		for (uint64_t i = 0; i < ins->sb.n_blocks - ins->entries_missing; i++) {
			const struct dump_entry *d = NULL;

			if (k < l->nr && l->v[k].e.index == i)
				d = &l->v[k++];
			else if (!all && k >= l->nr)
				break;
			else if (!all)
				continue;
			json_object_begin(&j, NULL, true);
			json_u64(&j, "index", i);
			if (d) {
				const char *st = entry_state(ins, d);

				json_u64(&j, "original_sector", d->e.original_sector);
				json_u64(&j, "seq_count", d->e.seq_count);
				json_bool(&j, "committed", d->e.seq_count < ins->sb.seq_count);
				json_bool(&j, "valid", d->valid);
				json_bool(&j, "data_missing", d->e.data_missing);
				json_string(&j, "state", st);
			} else {
				json_null(&j, "original_sector");
				json_i64(&j, "seq_count", -1);
				json_bool(&j, "committed", false);
				json_bool(&j, "valid", false);
				json_bool(&j, "data_missing", false);
				json_string(&j, "state", "free");
			}
			json_u64(&j, "cache_offset", entry_offset(ins, i));
			json_object_end(&j);
		}
		json_array_end(&j);
	}
	json_object_end(&j);
	json_finish(&j);
}

int cmd_dump(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "start-sector", required_argument, NULL, 's' },
		{ "all", no_argument, NULL, 'a' },
		{ "partial", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct entry_list l = { 0 };
	bool json = false, all = false, partial = false;
	struct wc_inspect ins;
	const char *cache;
	uint64_t start = 0;
	char err[1024];
	int c, ret, rc;

	while ((c = cli_getopt(cmd, argc, argv, ":js:aph", lo)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 's':
			if (cli_opt_start_sector(cmd, optarg, &start))
				return CLI_EXIT_USAGE;
			break;
		case 'a':
			all = true;
			break;
		case 'p':
			partial = true;
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
	ret = partial ? wcache_inspect_partial(cache, start, 0, &ins, collect_entry, &l)
		      : wcache_inspect(cache, start, 0, &ins, collect_entry, &l);
	if (l.oom) {
		cli_error(cmd, "out of memory collecting %zu entries", l.nr);
		free(l.v);
		return CLI_EXIT_FAIL;
	}
	snprintf(err, sizeof(err), "%s", ret < 0 ? wcache_last_error() : "");
	rc = ret < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	if (json)
		dump_json(cache, start, ret, &ins, &l, all, ret < 0 ? err : NULL);
	else if (sb_was_read(&ins))
		dump_text(cache, start, ret, &ins, &l, all);
	if (ret < 0)
		cli_error(cmd, "%s", err);
	free(l.v);
	return rc;
}

/* ---------------- status (offline) ---------------- */

int cmd_status(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "start-sector", required_argument, NULL, 's' },
		{ "control", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "watch", no_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *control = NULL, *cache;
	bool json = false, have_start = false, watch = false;
	struct wc_inspect ins;
	uint64_t start = 0, dirty;
	char err[1024];
	int c, ret;

	while ((c = cli_getopt(cmd, argc, argv, ":s:c:jwh", lo)) != -1) {
		switch (c) {
		case 's':
			if (cli_opt_start_sector(cmd, optarg, &start))
				return CLI_EXIT_USAGE;
			have_start = true;
			break;
		case 'c':
			control = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'w':
			watch = true;
			break;
		case 'h':
			return cli_help(cmd);
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (control) {
		/* Live status: a client of the server's control socket. */
		if (optind != argc || have_start)
			return cli_usage_error(cmd, "--control takes no CACHE and no --start-sector");
		if (watch)
			return cli_status_control_watch(control, json, 1000, 0);
		return cli_status_control(control, json);
	}
	if (watch)
		return cli_usage_error(cmd, "--watch needs --control PATH");
	if (optind + 1 != argc)
		return cli_usage_error(cmd, optind >= argc ? "missing CACHE argument (or --control PATH)"
					   : "too many arguments (expected CACHE)");
	cache = argv[optind];
	ret = wcache_inspect(cache, start, 0, &ins, NULL, NULL);
	if (ret < 0)
		snprintf(err, sizeof(err), "%s", wcache_last_error());
	/* What an activation would report: recovery frees all but the valid entries. */
	dirty = ins.nr_valid;
	if (json) {
		struct json j;

		/* An object also on failure: the counts if the superblock was valid, and why not. */
		json_init(&j, stdout);
		json_object_begin(&j, NULL, false);
		if (counts_valid(ret)) {
			/* Corrupt entries still leave a valid superblock and counts. */
			json_u64(&j, "total", ins.sb.n_blocks);
			json_u64(&j, "free", ins.sb.n_blocks - dirty);
			json_u64(&j, "dirty", dirty);
			json_u64(&j, "seq_count", ins.sb.seq_count);
		}
		json_string(&j, "status", inspect_status(ret, &ins));
		json_string(&j, "error", ret < 0 ? err : NULL);
		json_object_end(&j);
		json_finish(&j);
	} else if (ret >= 0) {
		printf("total: %llu\n", (unsigned long long)ins.sb.n_blocks);
		printf("free: %llu\n", (unsigned long long)(ins.sb.n_blocks - dirty));
		printf("dirty: %llu\n", (unsigned long long)dirty);
		printf("seq_count: %llu\n", (unsigned long long)ins.sb.seq_count);
	}
	if (ret < 0) {
		cli_error(cmd, "%s", err);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/* ---------------- info ---------------- */

static const char info_usage[] =
	"Usage: wcache info CACHE [--start-sector S] [--json]\n"
	"\n"
	"One-screen summary of the cache device CACHE, read without writing: format\n"
	"(mode, version, block size), size, metadata and data areas, how full and how\n"
	"dirty it is, seq_count, and when the device was last written (a file's\n"
	"modification time: the last commit or write of the server using it).\n"
	"\n"
	"Options:\n"
	"  -s, --start-sector S   metadata starts S 512-byte sectors into CACHE (default 0)\n"
	"  -j, --json             print one JSON object (also on errors: status, error)\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 clean, 1 dirty, 2 corrupt, unreadable, not a cache, or usage\n"
	"error (as for check).\n";

/* "3 min ago" from an age in seconds. */
static const char *human_age(double s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, len, "%.0f s ago", s);
	else if (s < 7200)
		snprintf(buf, len, "%.0f min ago", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%.1f h ago", s / 3600);
	else
		snprintf(buf, len, "%.1f days ago", s / 86400);
	return buf;
}

/* A bar of width cells, '#' for the dirty part. */
static void bar(char *out, size_t width, double frac)
{
	size_t n = (size_t)(frac * (double)width + 0.5), i;

	if (n > width)
		n = width;
	for (i = 0; i < width; i++)
		out[i] = i < n ? '#' : '.';
	out[width] = '\0';
}

int cmd_info(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "start-sector", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cli_cmd self = { cmd->name, cmd->fn, cmd->summary, info_usage, 0 };
	char err[1024], h1[32], h2[32], h3[32], age[32], when[64], b[41];
	struct wc_inspect ins;
	struct stat st;
	uint64_t start = 0, dev_bytes = 0, data_bytes;
	bool json = false, have_mtime = false;
	double fill = 0, age_s = 0;
	const char *cache, *kind = "unknown";
	int c, ret;

	while ((c = cli_getopt(&self, argc, argv, ":s:jh", lo)) != -1) {
		switch (c) {
		case 's':
			if (cli_opt_start_sector(&self, optarg, &start))
				return CLI_EXIT_USAGE;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			return cli_help(&self);
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(&self, optind >= argc ? "missing CACHE argument"
				       : "too many arguments (expected CACHE)");
	cache = argv[optind];
	ret = wcache_inspect(cache, start, 0, &ins, NULL, NULL);
	if (ret < 0)
		snprintf(err, sizeof(err), "%s", wcache_last_error());
	if (stat(cache, &st) == 0) {
		kind = S_ISBLK(st.st_mode) ? "block device" : S_ISREG(st.st_mode) ? "file" : "other";
		if (wcache_device_size(cache, &dev_bytes) < 0)
			dev_bytes = 0;
		/* A block device's inode times say nothing about writes to it. */
		if (S_ISREG(st.st_mode)) {
			struct tm tm;

			have_mtime = true;
			age_s = difftime(time(NULL), st.st_mtime);
			localtime_r(&st.st_mtime, &tm);
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		}
	}
	data_bytes = ins.sb.n_blocks * ins.sb.block_size;
	if (counts_valid(ret) && ins.sb.n_blocks)
		fill = (double)ins.nr_valid / (double)ins.sb.n_blocks;

	if (json) {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j, NULL, false);
		json_string(&j, "cache", cache);
		json_string(&j, "kind", kind);
		json_u64(&j, "device_bytes", dev_bytes);
		json_u64(&j, "start_sector", start);
		json_string(&j, "status", inspect_status(ret, &ins));
		json_string(&j, "error", ret < 0 ? err : NULL);
		if (counts_valid(ret)) {
			json_string(&j, "mode", "ssd");
			json_u64(&j, "version", ins.sb.version);
			json_u64(&j, "block_size", ins.sb.block_size);
			json_u64(&j, "n_blocks", ins.sb.n_blocks);
			json_u64(&j, "data_bytes", data_bytes);
			json_u64(&j, "meta_bytes", ins.sb.meta_bytes);
			json_u64(&j, "data_offset", ins.sb.data_offset);
			json_u64(&j, "dirty", ins.nr_valid);
			json_u64(&j, "dirty_bytes", ins.nr_valid * ins.sb.block_size);
			json_u64(&j, "free", ins.sb.n_blocks - ins.nr_valid);
			json_u64(&j, "uncommitted", ins.nr_uncommitted);
			json_u64(&j, "seq_count", ins.sb.seq_count);
		}
		if (have_mtime)
			json_u64(&j, "last_write_age_s", age_s > 0 ? (uint64_t)age_s : 0);
		else
			json_null(&j, "last_write_age_s");
		json_object_end(&j);
		json_finish(&j);
	} else if (counts_valid(ret)) {
		printf("cache         %s (%s, %s)\n", cache, kind,
		       cli_human_bytes(dev_bytes, h1, sizeof(h1)));
		printf("format        dm-writecache SSD mode, version %u%s\n", ins.sb.version,
		       start ? "" : ", at the start of the device");
		if (start)
			printf("start         sector %llu\n", (unsigned long long)start);
		printf("block size    %u bytes\n", ins.sb.block_size);
		printf("blocks        %llu (%s of data; metadata %s)\n",
		       (unsigned long long)ins.sb.n_blocks, cli_human_bytes(data_bytes, h1, sizeof(h1)),
		       cli_human_bytes(ins.sb.meta_bytes, h2, sizeof(h2)));
		bar(b, 40, fill);
		printf("dirty         %llu blocks, %s (%.1f%%)  [%s]\n",
		       (unsigned long long)ins.nr_valid,
		       cli_human_bytes(ins.nr_valid * ins.sb.block_size, h3, sizeof(h3)),
		       100.0 * fill, b);
		printf("free          %llu blocks (after recovery)\n",
		       (unsigned long long)(ins.sb.n_blocks - ins.nr_valid));
		if (ins.nr_uncommitted)
			printf("uncommitted   %llu entries (never committed: recovery drops them)\n",
			       (unsigned long long)ins.nr_uncommitted);
		printf("seq_count     %llu\n", (unsigned long long)ins.sb.seq_count);
		if (have_mtime)
			printf("last write    %s (%s)\n", human_age(age_s, age, sizeof(age)), when);
		else
			printf("last write    unknown (not a regular file)\n");
		if (ret == 1)
			printf("state         dirty: 'wcache flush ORIGIN %s' writes it back\n", cache);
		else if (ret == 0)
			printf("state         clean: the origin alone holds all data\n");
		else
			printf("state         CORRUPT: see 'wcache check %s'\n", cache);
	}
	if (ret < 0) {
		cli_error(&self, "%s", err);
		return 2;	/* as check: corrupt, unreadable or not a cache */
	}
	return ret;	/* 0 clean, 1 dirty */
}
