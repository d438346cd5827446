/* SPDX-License-Identifier: MIT */
/*
 * dm-writecache table arguments (docs/format.md §9.1): defaults, parsing of the
 * table line and of single name/value options, validation, and the
 * "dmsetup table" line (docs/format.md §9.1). Pure string handling: no I/O, no engine
 * state. Table form limitation: words are split on white space, so device
 * paths in a table line cannot contain spaces (set cfg->*_path directly).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "table.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/*
 * The table options (wcache.h), in the kernel's table order (that of its
 * table line, see wc_table_format_line). A new option needs a row here, its
 * WC_SET_* bit, a wc_cfg field and a case in opt_store() and opt_value().
 */
static const struct wc_opt_desc opts[] = {
	{ "start_sector", true, TABLE_MAX_START_SECTOR, "S",
	  "metadata offset in 512-byte sectors (default 0)", WC_SET_START_SECTOR },
	{ "high_watermark", true, 100, "P",
	  "start writeback above P% of blocks in use (default " STR(WC_DEFAULT_HIGH_WATERMARK) ")",
	  WC_SET_HIGH_WM },
	{ "low_watermark", true, 100, "P",
	  "stop writeback below P% of blocks in use (default " STR(WC_DEFAULT_LOW_WATERMARK) ")",
	  WC_SET_LOW_WM },
	{ "writeback_jobs", true, UINT32_MAX, "N",
	  "blocks in flight in writeback, 0 = unlimited (default "
	  STR(WC_DEFAULT_WRITEBACK_JOBS) ")", WC_SET_WB_JOBS },
	{ "autocommit_blocks", true, UINT32_MAX, "N",
	  "commit after N written blocks (default " STR(WC_DEFAULT_AUTOCOMMIT_BLOCKS) ")",
	  WC_SET_AC_BLOCKS },
	{ "autocommit_time", true, WC_MAX_AUTOCOMMIT_MS, "MS",
	  "commit after MS milliseconds (default " STR(WC_DEFAULT_AUTOCOMMIT_MS) ")",
	  WC_SET_AC_TIME },
	{ "max_age", true, WC_MAX_AGE_MS, "MS",
	  "write back blocks older than MS milliseconds (default 0: off)", WC_SET_MAX_AGE },
	{ "cleaner", false, 0, NULL, "write everything back, cache no new writes", WC_SET_CLEANER },
	{ "fua", false, 0, NULL, "pmem mode: accepted, the default (writeback flushes the origin)",
	  WC_SET_FUA },
	{ "nofua", false, 0, NULL, "pmem mode: accepted (writeback flushes the origin)",
	  WC_SET_NOFUA },
	{ "metadata_only", false, 0, NULL, "accepted for compatibility", WC_SET_METADATA_ONLY },
	{ "pause_writeback", true, WC_MAX_PAUSE_MS, "MS",
	  "pause writeback MS after application writes (default " STR(WC_DEFAULT_PAUSE_MS) ")",
	  WC_SET_PAUSE },
	{ "ordered_writeback", false, 0, NULL,
	  "wcache extension: write back commit by commit, so the origin alone is always "
	  "a past state of the device", WC_SET_ORDERED },
};

#define NR_OPTS (sizeof(opts) / sizeof(opts[0]))

const struct wc_opt_desc *wcache_options(size_t *nr)
{
	*nr = NR_OPTS;
	return opts;
}

void wcache_cfg_init(struct wc_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->block_size = 4096;
	cfg->high_watermark = WC_DEFAULT_HIGH_WATERMARK;
	cfg->low_watermark = WC_DEFAULT_LOW_WATERMARK;
	cfg->writeback_jobs = WC_DEFAULT_WRITEBACK_JOBS;
	cfg->autocommit_blocks = WC_DEFAULT_AUTOCOMMIT_BLOCKS;
	cfg->autocommit_ms = WC_DEFAULT_AUTOCOMMIT_MS;
	cfg->max_age_ms = 0;
	cfg->pause_writeback_ms = WC_DEFAULT_PAUSE_MS;
	cfg->format = WC_FORMAT_AUTO;
	cfg->full_wait_ms = 30000;
}

int wc_table_parse_u64(const char *arg, const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	bool overflow = false;
	const char *p;

	if (!s || !*s)
		return wc_err(-EINVAL, "%s: missing value", arg);
	for (p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return wc_err(-EINVAL, "%s: '%.64s' is not an unsigned decimal number", arg, s);
	}
	for (p = s; *p && !overflow; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	if (overflow || v > max)
		return wc_err(-EINVAL, "%s: %.64s is out of range 0..%llu", arg, s,
			      (unsigned long long)max);
	*out = v;
	return 0;
}

static int check_block_size(uint64_t bs)
{
	if (bs < 512 || bs > 4096 || (bs & (bs - 1)))
		return wc_err(-EINVAL,
			      "block_size: %llu is invalid; must be a power of two in 512..4096",
			      (unsigned long long)bs);
	return 0;
}

static int parse_block_size(const char *s, uint32_t *out)
{
	uint64_t v = 0;
	int ret;

	/* Parse with a wide bound so that "8192" gets the power-of-two message. */
	ret = wc_table_parse_u64("block_size", s, UINT32_MAX, &v);
	if (ret < 0)
		return ret;
	ret = check_block_size(v);
	if (ret < 0)
		return ret;
	*out = (uint32_t)v;
	return 0;
}

static const struct wc_opt_desc *opt_lookup(const char *name)
{
	size_t i;

	for (i = 0; i < NR_OPTS; i++) {
		if (!strcasecmp(opts[i].name, name))
			return &opts[i];
	}
	return NULL;
}

/* Switch the mode, and with it the defaults of the options not given explicitly. */
static void set_mode(struct wc_cfg *cfg, enum wc_mode mode)
{
	bool pmem = mode == WC_MODE_PMEM;

	cfg->mode = mode;
	if (!(cfg->set_mask & WC_SET_AC_BLOCKS))
		cfg->autocommit_blocks = pmem ? WC_DEFAULT_AUTOCOMMIT_BLOCKS_PMEM
					      : WC_DEFAULT_AUTOCOMMIT_BLOCKS;
	if (!(cfg->set_mask & (WC_SET_FUA | WC_SET_NOFUA)))
		cfg->fua = pmem;
}

/* Store a parsed value; flags get v != 0 (and lose their set bit when cleared). */
static void opt_store(struct wc_cfg *cfg, const struct wc_opt_desc *d, uint64_t v)
{
	switch (d->set_bit) {
	case WC_SET_START_SECTOR:
		cfg->start_sector = v;
		break;
	case WC_SET_HIGH_WM:
		cfg->high_watermark = (unsigned)v;
		break;
	case WC_SET_LOW_WM:
		cfg->low_watermark = (unsigned)v;
		break;
	case WC_SET_WB_JOBS:
		cfg->writeback_jobs = (uint32_t)v;
		break;
	case WC_SET_AC_BLOCKS:
		cfg->autocommit_blocks = (uint32_t)v;
		break;
	case WC_SET_AC_TIME:
		cfg->autocommit_ms = (uint32_t)v;
		break;
	case WC_SET_MAX_AGE:
		cfg->max_age_ms = (uint32_t)v;
		break;
	case WC_SET_CLEANER:
		cfg->cleaner = v != 0;
		break;
	case WC_SET_METADATA_ONLY:
		cfg->metadata_only = v != 0;
		break;
	case WC_SET_PAUSE:
		cfg->pause_writeback_ms = (uint32_t)v;
		break;
	case WC_SET_FUA:
	case WC_SET_NOFUA:
		/* One replaces the other; clearing either goes back to the mode's default. */
		cfg->set_mask &= ~(unsigned)(WC_SET_FUA | WC_SET_NOFUA);
		cfg->fua = v ? d->set_bit == WC_SET_FUA : cfg->mode == WC_MODE_PMEM;
		break;
	case WC_SET_ORDERED:
		cfg->ordered_writeback = v != 0;
		break;
	}
	if (!d->has_value && !v)
		cfg->set_mask &= ~d->set_bit;
	else
		cfg->set_mask |= d->set_bit;
}

static int copy_path(const char *arg, char *dst, size_t dst_len, const char *src)
{
	size_t n = strlen(src);

	if (n >= dst_len)
		return wc_err(-EINVAL, "%s: path is too long (%zu bytes, max %zu)", arg, n,
			      dst_len - 1);
	memcpy(dst, src, n + 1);
	return 0;
}

/* Split a copy of s on white space. *words and *buf are to be freed by the caller. */
static int split_words(const char *s, char ***words, size_t *nr, char **buf)
{
	size_t len = strlen(s), n = 0;
	char **w;
	char *b, *p;

	b = strdup(s);
	w = calloc(len / 2 + 1, sizeof(*w));
	if (!b || !w) {
		free(b);
		free(w);
		return wc_err(-ENOMEM, "table: out of memory");
	}
	p = b;
	for (;;) {
		while (*p && isspace((unsigned char)*p))
			*p++ = '\0';
		if (!*p)
			break;
		w[n++] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
	}
	*words = w;
	*nr = n;
	*buf = b;
	return 0;
}

static int parse_mode(const char *m, enum wc_mode *out)
{
	*out = WC_MODE_SSD;	/* also on error: callers' -O3 builds cannot see wc_err < 0 */
	if (m && !strcasecmp(m, "s")) {
		*out = WC_MODE_SSD;
		return 0;
	}
	if (m && !strcasecmp(m, "p")) {
		*out = WC_MODE_PMEM;
		return 0;
	}
	return wc_err(-EINVAL, "mode: '%.64s' is invalid; expected s (SSD) or p (pmem)",
		      m ? m : "");
}

static int parse_words(struct wc_cfg *cfg, char **w, size_t nr)
{
	enum wc_mode mode;
	unsigned given = 0;
	uint64_t n_opt;
	size_t i;
	int ret;

	/* Optional "START LEN writecache" prefix of a full dm table line. */
	if (nr >= 3 && !strcmp(w[2], "writecache")) {
		uint64_t dummy;

		ret = wc_table_parse_u64("start", w[0], UINT64_MAX, &dummy);
		if (ret < 0)
			return ret;
		ret = wc_table_parse_u64("length", w[1], UINT64_MAX, &dummy);
		if (ret < 0)
			return ret;
		w += 3;
		nr -= 3;
	}
	if (nr < 5)
		return wc_err(-EINVAL,
			      "table: expected \"s|p ORIGIN CACHE BLOCK_SIZE N [options]\", got %zu word%s",
			      nr, nr == 1 ? "" : "s");
	ret = parse_mode(w[0], &mode);
	if (ret < 0)
		return ret;
	set_mode(cfg, mode);
	ret = copy_path("origin", cfg->origin_path, sizeof(cfg->origin_path), w[1]);
	if (ret < 0)
		return ret;
	ret = copy_path("cache", cfg->cache_path, sizeof(cfg->cache_path), w[2]);
	if (ret < 0)
		return ret;
	ret = parse_block_size(w[3], &cfg->block_size);
	if (ret < 0)
		return ret;
	ret = wc_table_parse_u64("N (number of optional arguments)", w[4], TABLE_MAX_OPT_ARGS,
				 &n_opt);
	if (ret < 0)
		return ret;
	w += 5;
	nr -= 5;
	if (n_opt != nr)
		return wc_err(-EINVAL,
			      "N (number of optional arguments): %llu given but %zu word%s follow%s",
			      (unsigned long long)n_opt, nr, nr == 1 ? "" : "s", nr == 1 ? "s" : "");

	for (i = 0; i < nr; i++) {
		const struct wc_opt_desc *d = opt_lookup(w[i]);
		uint64_t v = 1;

		if (!d)
			return wc_err(-EINVAL, "unknown option '%.64s'", w[i]);
		/* The kernel silently takes the last; a repeat is usually a mistake (compat.md). */
		if (given & d->set_bit)
			return wc_err(-EINVAL, "option %s is given more than once in the table line; "
				      "give it once", d->name);
		if ((d->set_bit & (WC_SET_FUA | WC_SET_NOFUA)) && (given & (WC_SET_FUA | WC_SET_NOFUA)))
			return wc_err(-EINVAL, "fua and nofua are both given in the table line; "
				      "give one");
		given |= d->set_bit;
		if (d->has_value) {
			if (i + 1 >= nr)
				return wc_err(-EINVAL, "%s: missing value", d->name);
			ret = wc_table_parse_u64(d->name, w[++i], d->max, &v);
			if (ret < 0)
				return ret;
		}
		opt_store(cfg, d, v);
	}
	return 0;
}

int wcache_cfg_parse_table(struct wc_cfg *cfg, const char *table)
{
	struct wc_cfg tmp;
	char **words = NULL;
	char *buf = NULL;
	size_t nr = 0;
	int ret;

	if (!cfg || !table)
		return wc_err(-EINVAL, "table: no table given");
	ret = split_words(table, &words, &nr, &buf);
	if (ret < 0)
		return ret;
	/* Work on a copy so that a failed parse leaves *cfg untouched. */
	tmp = *cfg;
	ret = parse_words(&tmp, words, nr);
	if (ret == 0)
		ret = wcache_cfg_validate(&tmp);
	if (ret == 0)
		*cfg = tmp;
	free(words);
	free(buf);
	return ret;
}

static int parse_bool(const char *name, const char *s, uint64_t *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };
	size_t i;

	if (!s || !*s) {
		*out = 1;
		return 0;
	}
	for (i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return wc_err(-EINVAL, "%s: '%.64s' is not a boolean (use 1/0, true/false, yes/no, on/off)",
		      name, s);
}

int wcache_cfg_set(struct wc_cfg *cfg, const char *name, const char *value)
{
	const struct wc_opt_desc *d;
	char key[32];
	uint64_t v = 0;
	size_t i;
	int ret;

	if (!cfg || !name || !*name)
		return wc_err(-EINVAL, "option: no name given");
	/* Accept '-' for '_' ("block-size"); names are case-insensitive. */
	for (i = 0; i < sizeof(key) - 1 && name[i]; i++) {
		key[i] = name[i];
		if (key[i] == '-')
			key[i] = '_';
	}
	key[i] = '\0';
	if (name[i])
		return wc_err(-EINVAL, "unknown option '%.64s'", name);

	if (!strcasecmp(key, "block_size"))
		return parse_block_size(value, &cfg->block_size);
	if (!strcasecmp(key, "mode")) {
		enum wc_mode mode;

		ret = parse_mode(value, &mode);
		if (ret == 0)
			set_mode(cfg, mode);
		return ret;
	}
	d = opt_lookup(key);
	if (!d)
		return wc_err(-EINVAL, "unknown option '%.64s'", name);
	if (d->has_value)
		ret = wc_table_parse_u64(d->name, value, d->max, &v);
	else
		ret = parse_bool(d->name, value, &v);
	if (ret < 0)
		return ret;
	opt_store(cfg, d, v);
	return 0;
}

static int check_path(const char *arg, const char *path, size_t size, bool need)
{
	if (!memchr(path, '\0', size))
		return wc_err(-EINVAL, "%s: path is not terminated (max %zu bytes)", arg, size - 1);
	if (need && !*path)
		return wc_err(-EINVAL, "%s: no device path given", arg);
	return 0;
}

static int check_max(const char *arg, uint64_t v, uint64_t max)
{
	if (v > max)
		return wc_err(-EINVAL, "%s: %llu is out of range 0..%llu", arg,
			      (unsigned long long)v, (unsigned long long)max);
	return 0;
}

int wcache_cfg_validate(const struct wc_cfg *cfg)
{
	return wc_table_validate(cfg, true);
}

int wc_table_validate(const struct wc_cfg *cfg, bool need_paths)
{
	int ret;

	if (!cfg)
		return wc_err(-EINVAL, "config: none given");
	ret = check_path("origin", cfg->origin_path, sizeof(cfg->origin_path), need_paths);
	if (ret < 0)
		return ret;
	ret = check_path("cache", cfg->cache_path, sizeof(cfg->cache_path), need_paths);
	if (ret < 0)
		return ret;
	/* 0 = take the block size from the superblock (4096 when formatting). */
	ret = cfg->block_size ? check_block_size(cfg->block_size) : 0;
	if (ret < 0)
		return ret;
	ret = check_max("start_sector", cfg->start_sector, TABLE_MAX_START_SECTOR);
	if (ret < 0)
		return ret;
	ret = check_max("high_watermark", cfg->high_watermark, 100);
	if (ret < 0)
		return ret;
	ret = check_max("low_watermark", cfg->low_watermark, 100);
	if (ret < 0)
		return ret;
	if (cfg->high_watermark < cfg->low_watermark)
		return wc_err(-EINVAL, "high_watermark %u must be >= low_watermark %u",
			      cfg->high_watermark, cfg->low_watermark);
	ret = check_max("autocommit_time", cfg->autocommit_ms, WC_MAX_AUTOCOMMIT_MS);
	if (ret < 0)
		return ret;
	ret = check_max("max_age", cfg->max_age_ms, WC_MAX_AGE_MS);
	if (ret < 0)
		return ret;
	ret = check_max("pause_writeback", cfg->pause_writeback_ms, WC_MAX_PAUSE_MS);
	if (ret < 0)
		return ret;
	if (cfg->mode != WC_MODE_SSD && cfg->mode != WC_MODE_PMEM)
		return wc_err(-EINVAL, "mode: invalid mode %d", (int)cfg->mode);
	/* As in the kernel: fua/nofua belong to pmem mode, pause_writeback to SSD mode. */
	if (cfg->mode == WC_MODE_SSD && (cfg->set_mask & (WC_SET_FUA | WC_SET_NOFUA)))
		return wc_err(-EINVAL, "%s is only valid in pmem mode (p), not in SSD mode (s)",
			      cfg->set_mask & WC_SET_FUA ? "fua" : "nofua");
	if (cfg->mode == WC_MODE_PMEM && (cfg->set_mask & WC_SET_PAUSE))
		return wc_err(-EINVAL, "pause_writeback is only valid in SSD mode (s), not in pmem "
			      "mode (p)");
	if (cfg->salvage && !cfg->read_only)
		return wc_err(-EINVAL, "salvage needs a read-only open");
	if (cfg->format != WC_FORMAT_AUTO && cfg->format != WC_FORMAT_NO &&
	    cfg->format != WC_FORMAT_YES)
		return wc_err(-EINVAL, "format: invalid mode %d", (int)cfg->format);
	return 0;
}

/* Bounded appender: counts the full length even when buf is too small. */
struct line {
	char *buf;
	size_t len, pos;
};

static void line_add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void line_add(struct line *l, const char *fmt, ...)
{
	size_t room = l->pos < l->len ? l->len - l->pos : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? l->buf + l->pos : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->pos += (size_t)n;
}

static uint64_t opt_value(const struct wc_cfg *cfg, const struct wc_opt_desc *d)
{
	switch (d->set_bit) {
	case WC_SET_START_SECTOR:
		return cfg->start_sector;
	case WC_SET_HIGH_WM:
		return cfg->high_watermark;
	case WC_SET_LOW_WM:
		return cfg->low_watermark;
	case WC_SET_WB_JOBS:
		return cfg->writeback_jobs;
	case WC_SET_AC_BLOCKS:
		return cfg->autocommit_blocks;
	case WC_SET_AC_TIME:
		return cfg->autocommit_ms;
	case WC_SET_MAX_AGE:
		return cfg->max_age_ms;
	case WC_SET_PAUSE:
		return cfg->pause_writeback_ms;
	}
	return 0;	/* flags have no value */
}

int wc_table_format_line(const struct wc_cfg *cfg, char *buf, size_t len)
{
	struct line l = { .buf = buf, .len = buf ? len : 0, .pos = 0 };
	unsigned n = 0;
	size_t i;

	for (i = 0; i < NR_OPTS; i++) {
		if (cfg->set_mask & opts[i].set_bit)
			n += opts[i].has_value ? 2 : 1;
	}
	line_add(&l, "%s %.*s %.*s %u %u", cfg->mode == WC_MODE_PMEM ? "p" : "s",
		 (int)sizeof(cfg->origin_path) - 1,
		 cfg->origin_path[0] ? cfg->origin_path : "-", (int)sizeof(cfg->cache_path) - 1,
		 cfg->cache_path[0] ? cfg->cache_path : "-", cfg->block_size, n);
	for (i = 0; i < NR_OPTS; i++) {
		const struct wc_opt_desc *d = &opts[i];

		if (!(cfg->set_mask & d->set_bit))
			continue;
		if (d->has_value)
			line_add(&l, " %s %llu", d->name,
				 (unsigned long long)opt_value(cfg, d));
		else
			line_add(&l, " %s", d->name);
	}
	if (l.pos >= l.len || l.pos > INT32_MAX)
		return wc_err(-ERANGE, "table: line needs %zu bytes, buffer has %zu", l.pos + 1,
			      l.len);
	return (int)l.pos;
}
