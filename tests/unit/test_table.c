/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/engine/table.c: dm-writecache table arguments (docs/format.md §9.1),
 * single name/value options, validation and the "dmsetup table" line (§9.1).
 * Every rejected input checks both the errno and the message text.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wcache.h"
#include "table.h"

/* One valued or flag option, described by where it lives in struct wc_cfg. */
struct opt_case {
	const char *name;
	size_t off;
	size_t width;		/* 1 (bool), 4 or 8 bytes */
	bool has_value;
	uint64_t max;
	unsigned bit;
};

#define FIELD(f) offsetof(struct wc_cfg, f), sizeof(((struct wc_cfg *)0)->f)

static const struct opt_case cases[] = {
	{ "start_sector", FIELD(start_sector), true, UINT64_MAX >> 9, WC_SET_START_SECTOR },
	{ "high_watermark", FIELD(high_watermark), true, 100, WC_SET_HIGH_WM },
	{ "low_watermark", FIELD(low_watermark), true, 100, WC_SET_LOW_WM },
	{ "writeback_jobs", FIELD(writeback_jobs), true, UINT32_MAX, WC_SET_WB_JOBS },
	{ "autocommit_blocks", FIELD(autocommit_blocks), true, UINT32_MAX, WC_SET_AC_BLOCKS },
	{ "autocommit_time", FIELD(autocommit_ms), true, 3600000, WC_SET_AC_TIME },
	{ "max_age", FIELD(max_age_ms), true, 86400000, WC_SET_MAX_AGE },
	{ "cleaner", FIELD(cleaner), false, 1, WC_SET_CLEANER },
	{ "metadata_only", FIELD(metadata_only), false, 1, WC_SET_METADATA_ONLY },
	{ "pause_writeback", FIELD(pause_writeback_ms), true, 60000, WC_SET_PAUSE },
	{ "ordered_writeback", FIELD(ordered_writeback), false, 0, WC_SET_ORDERED },
};

#define NR_CASES (sizeof(cases) / sizeof(cases[0]))

static uint64_t field_get(const struct wc_cfg *cfg, const struct opt_case *c)
{
	const char *p = (const char *)cfg + c->off;
	uint64_t v64;
	uint32_t v32;
	bool b;

	switch (c->width) {
	case 1:
		memcpy(&b, p, 1);
		return b;
	case 4:
		memcpy(&v32, p, 4);
		return v32;
	default:
		memcpy(&v64, p, 8);
		return v64;
	}
}

static void field_set(struct wc_cfg *cfg, const struct opt_case *c, uint64_t v)
{
	char *p = (char *)cfg + c->off;
	uint32_t v32 = (uint32_t)v;
	bool b = v != 0;

	if (c->width == 1)
		memcpy(p, &b, 1);
	else if (c->width == 4)
		memcpy(p, &v32, 4);
	else
		memcpy(p, &v, 8);
}

/* Valid relation with any high/low value tested alone: other watermark at its bound. */
static const char *companion(const struct opt_case *c)
{
	if (!strcmp(c->name, "high_watermark"))
		return " low_watermark 0";
	if (!strcmp(c->name, "low_watermark"))
		return " high_watermark 100";
	return "";
}

static void assert_err_contains(const char *needle)
{
	const char *msg = wcache_last_error();

	if (!strstr(msg, needle))
		fail_msg("error message \"%s\" does not contain \"%s\"", msg, needle);
}

/* Parse must fail with err, mention needle, and leave the config untouched. */
static void expect_table_err(const char *table, int err, const char *needle)
{
	struct wc_cfg cfg, orig;
	int ret;

	wcache_cfg_init(&cfg);
	memcpy(&orig, &cfg, sizeof(cfg));
	ret = wcache_cfg_parse_table(&cfg, table);
	if (ret != err)
		fail_msg("table \"%s\": got %d, want %d (%s)", table, ret, err,
			 wcache_last_error());
	assert_err_contains(needle);
	assert_memory_equal(&cfg, &orig, sizeof(cfg));
}

static void parse_ok(struct wc_cfg *cfg, const char *table)
{
	int ret;

	wcache_cfg_init(cfg);
	ret = wcache_cfg_parse_table(cfg, table);
	if (ret != 0)
		fail_msg("table \"%s\": got %d (%s)", table, ret, wcache_last_error());
}

static void expect_set_err(const char *name, const char *value, int err, const char *needle)
{
	struct wc_cfg cfg, orig;
	int ret;

	wcache_cfg_init(&cfg);
	memcpy(&orig, &cfg, sizeof(cfg));
	ret = wcache_cfg_set(&cfg, name, value);
	if (ret != err)
		fail_msg("set %s=%s: got %d, want %d (%s)", name, value ? value : "(null)", ret,
			 err, wcache_last_error());
	assert_err_contains(needle);
	assert_memory_equal(&cfg, &orig, sizeof(cfg));
}

static void test_defaults(void **state)
{
	struct wc_cfg cfg;

	(void)state;
	memset(&cfg, 0xa5, sizeof(cfg));
	wcache_cfg_init(&cfg);
	assert_int_equal(cfg.block_size, 4096);
	assert_int_equal(cfg.start_sector, 0);
	assert_int_equal(cfg.high_watermark, WC_DEFAULT_HIGH_WATERMARK);
	assert_int_equal(cfg.low_watermark, WC_DEFAULT_LOW_WATERMARK);
	assert_int_equal(cfg.high_watermark, 50);
	assert_int_equal(cfg.low_watermark, 45);
	assert_int_equal(cfg.writeback_jobs, WC_DEFAULT_WRITEBACK_JOBS);
	assert_int_equal(cfg.autocommit_blocks, WC_DEFAULT_AUTOCOMMIT_BLOCKS);
	assert_int_equal(cfg.autocommit_ms, 1000);
	assert_int_equal(cfg.max_age_ms, 0);
	assert_int_equal(cfg.pause_writeback_ms, 3000);
	assert_int_equal(cfg.full_wait_ms, 30000);
	assert_int_equal(cfg.format, WC_FORMAT_AUTO);
	assert_false(cfg.cleaner);
	assert_false(cfg.metadata_only);
	assert_false(cfg.read_only);
	assert_int_equal(cfg.set_mask, 0);
	assert_string_equal(cfg.origin_path, "");
	assert_string_equal(cfg.cache_path, "");
	/* Defaults alone are not a usable config: no devices. */
	assert_int_equal(wcache_cfg_validate(&cfg), -EINVAL);
	assert_err_contains("origin");
}

static void test_minimal(void **state)
{
	struct wc_cfg cfg, def;

	(void)state;
	parse_ok(&cfg, "s /dev/origin /tmp/cache.img 512 0");
	wcache_cfg_init(&def);
	assert_string_equal(cfg.origin_path, "/dev/origin");
	assert_string_equal(cfg.cache_path, "/tmp/cache.img");
	assert_int_equal(cfg.block_size, 512);
	assert_int_equal(cfg.set_mask, 0);
	assert_int_equal(cfg.high_watermark, def.high_watermark);
	assert_int_equal(cfg.pause_writeback_ms, def.pause_writeback_ms);

	parse_ok(&cfg, "S o c 4096 0");
	assert_string_equal(cfg.origin_path, "o");
	assert_int_equal(cfg.block_size, 4096);

	/* Any white space separates words; leading/trailing is ignored. */
	parse_ok(&cfg, "\n\t s   o\tc  1024 2 \t high_watermark\n77  \n");
	assert_int_equal(cfg.block_size, 1024);
	assert_int_equal(cfg.high_watermark, 77);
	assert_int_equal(cfg.set_mask, WC_SET_HIGH_WM);
	assert_int_equal(wcache_cfg_validate(&cfg), 0);
}

static void test_prefix(void **state)
{
	struct wc_cfg cfg;

	(void)state;
	parse_ok(&cfg, "0 2097152 writecache s /o /c 4096 2 low_watermark 10");
	assert_string_equal(cfg.origin_path, "/o");
	assert_string_equal(cfg.cache_path, "/c");
	assert_int_equal(cfg.low_watermark, 10);
	assert_int_equal(cfg.set_mask, WC_SET_LOW_WM);

	expect_table_err("x 100 writecache s /o /c 4096 0", -EINVAL, "start: 'x'");
	expect_table_err("0 -5 writecache s /o /c 4096 0", -EINVAL, "length: '-5'");
	expect_table_err("0 100 writecache s /o /c 4096", -EINVAL, "got 4 words");
	/* Without the target name it is not a prefix: "0" is a bad mode. */
	expect_table_err("0 100 linear s /o /c 4096 0", -EINVAL, "mode: '0'");
}

static void test_mode(void **state)
{
	struct wc_cfg cfg;

	(void)state;
	parse_ok(&cfg, "s /o /c 4096 0");
	assert_int_equal(cfg.mode, WC_MODE_SSD);
	assert_int_equal(cfg.autocommit_blocks, WC_DEFAULT_AUTOCOMMIT_BLOCKS);
	assert_false(cfg.fua);
	expect_table_err("x /o /c 4096 0", -EINVAL, "mode: 'x' is invalid; expected s (SSD) or p");
	expect_table_err("ss /o /c 4096 0", -EINVAL, "mode: 'ss'");
	expect_table_err("ssd /o /c 4096 0", -EINVAL, "mode");
	expect_table_err("pmem /o /c 4096 0", -EINVAL, "mode: 'pmem'");
}

/* pmem mode: the kernel's defaults (autocommit_blocks 64, fua), fua/nofua, pause_writeback. */
static void test_pmem_mode(void **state)
{
	struct wc_cfg cfg;
	char line[256];

	(void)state;
	parse_ok(&cfg, "p /o /c 4096 0");
	assert_int_equal(cfg.mode, WC_MODE_PMEM);
	assert_int_equal(cfg.autocommit_blocks, WC_DEFAULT_AUTOCOMMIT_BLOCKS_PMEM);
	assert_int_equal(cfg.autocommit_blocks, 64);
	assert_true(cfg.fua);
	assert_int_equal(cfg.set_mask, 0);
	assert_int_equal(wc_table_format_line(&cfg, line, sizeof(line)), 14);
	assert_string_equal(line, "p /o /c 4096 0");

	parse_ok(&cfg, "0 100 writecache P /o /c 512 1 nofua");
	assert_int_equal(cfg.mode, WC_MODE_PMEM);
	assert_false(cfg.fua);
	assert_int_equal(cfg.set_mask, WC_SET_NOFUA);
	assert_true(wc_table_format_line(&cfg, line, sizeof(line)) > 0);
	assert_string_equal(line, "p /o /c 512 1 nofua");

	/* Kernel table order: ... max_age, cleaner, fua|nofua, metadata_only. */
	parse_ok(&cfg, "p /o /c 4096 7 metadata_only FUA cleaner autocommit_blocks 1000 max_age 5");
	assert_true(cfg.fua);
	assert_int_equal(cfg.autocommit_blocks, 1000);
	assert_true(wc_table_format_line(&cfg, line, sizeof(line)) > 0);
	assert_string_equal(line, "p /o /c 4096 7 autocommit_blocks 1000 max_age 5 cleaner fua "
			    "metadata_only");

	expect_table_err("p /o /c 4096 2 fua nofua", -EINVAL, "fua and nofua are both given");
	expect_table_err("p /o /c 4096 2 fua fua", -EINVAL, "option fua is given more than once");
	expect_table_err("p /o /c 4096 2 pause_writeback 10", -EINVAL,
			 "pause_writeback is only valid in SSD mode (s), not in pmem mode (p)");
	expect_table_err("s /o /c 4096 1 fua", -EINVAL, "fua is only valid in pmem mode (p)");
	expect_table_err("s /o /c 4096 1 nofua", -EINVAL, "nofua is only valid in pmem mode (p)");

	/* wcache_cfg_set("mode"): switches the defaults of what was not given. */
	wcache_cfg_init(&cfg);
	strcpy(cfg.origin_path, "o");
	strcpy(cfg.cache_path, "c");
	assert_int_equal(wcache_cfg_set(&cfg, "mode", "p"), 0);
	assert_int_equal(cfg.autocommit_blocks, 64);
	assert_true(cfg.fua);
	assert_int_equal(wcache_cfg_set(&cfg, "nofua", NULL), 0);
	assert_false(cfg.fua);
	assert_int_equal(wcache_cfg_validate(&cfg), 0);
	assert_int_equal(wcache_cfg_set(&cfg, "fua", NULL), 0);	/* replaces nofua */
	assert_true(cfg.fua);
	assert_int_equal(cfg.set_mask, WC_SET_FUA);
	assert_int_equal(wcache_cfg_set(&cfg, "fua", "0"), 0);	/* back to the mode's default */
	assert_true(cfg.fua);
	assert_int_equal(cfg.set_mask, 0);
	assert_int_equal(wcache_cfg_set(&cfg, "mode", "s"), 0);
	assert_int_equal(cfg.autocommit_blocks, WC_DEFAULT_AUTOCOMMIT_BLOCKS);
	assert_false(cfg.fua);
	assert_int_equal(wcache_cfg_set(&cfg, "fua", "1"), 0);
	assert_int_equal(wcache_cfg_validate(&cfg), -EINVAL);
	assert_err_contains("fua is only valid in pmem mode");

	/* An explicit autocommit_blocks survives mode switches either way. */
	wcache_cfg_init(&cfg);
	assert_int_equal(wcache_cfg_set(&cfg, "autocommit_blocks", "7"), 0);
	assert_int_equal(wcache_cfg_set(&cfg, "mode", "p"), 0);
	assert_int_equal(cfg.autocommit_blocks, 7);
	assert_int_equal(wcache_cfg_set(&cfg, "mode", "s"), 0);
	assert_int_equal(cfg.autocommit_blocks, 7);

	expect_set_err("mode", "x", -EINVAL, "mode: 'x' is invalid");
	expect_set_err("mode", NULL, -EINVAL, "mode: '' is invalid");
}

static void test_positional_missing(void **state)
{
	struct wc_cfg cfg;

	(void)state;
	expect_table_err("", -EINVAL, "got 0 words");
	expect_table_err("   \t\n", -EINVAL, "got 0 words");
	expect_table_err("s", -EINVAL, "got 1 word");
	expect_table_err("s /o /c 4096", -EINVAL, "BLOCK_SIZE N");

	wcache_cfg_init(&cfg);
	assert_int_equal(wcache_cfg_parse_table(&cfg, NULL), -EINVAL);
	assert_err_contains("table");
}

static void test_block_size(void **state)
{
	static const uint32_t good[] = { 512, 1024, 2048, 4096 };
	static const char *const bad_range[] = { "0", "1", "256", "511", "1000", "3072", "4095",
						 "8192", "65536", "4294967295" };
	char t[128];
	struct wc_cfg cfg;
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++) {
		snprintf(t, sizeof(t), "s o c %u 0", good[i]);
		parse_ok(&cfg, t);
		assert_int_equal(cfg.block_size, good[i]);
	}
	for (i = 0; i < sizeof(bad_range) / sizeof(bad_range[0]); i++) {
		snprintf(t, sizeof(t), "s o c %s 0", bad_range[i]);
		expect_table_err(t, -EINVAL, "power of two in 512..4096");
		expect_table_err(t, -EINVAL, "block_size");
	}
	expect_table_err("s o c 4k 0", -EINVAL, "block_size: '4k' is not an unsigned decimal");
	expect_table_err("s o c -4096 0", -EINVAL, "block_size: '-4096'");
	expect_table_err("s o c 0x1000 0", -EINVAL, "block_size: '0x1000'");
	expect_table_err("s o c 99999999999999999999999 0", -EINVAL,
			 "block_size: 99999999999999999999999 is out of range");
}

static void test_n_words(void **state)
{
	(void)state;
	expect_table_err("s o c 4096 1", -EINVAL, "1 given but 0 words follow");
	expect_table_err("s o c 4096 0 cleaner", -EINVAL, "0 given but 1 word follows");
	expect_table_err("s o c 4096 3 high_watermark 60", -EINVAL, "3 given but 2 words follow");
	expect_table_err("s o c 4096 1 high_watermark 60", -EINVAL, "1 given but 2 words follow");
	expect_table_err("s o c 4096 x", -EINVAL, "N (number of optional arguments): 'x'");
	expect_table_err("s o c 4096 -1 cleaner", -EINVAL, "N (number of optional arguments)");
	expect_table_err("s o c 4096 2x", -EINVAL, "'2x' is not an unsigned decimal");
	expect_table_err("s o c 4096 19", -EINVAL, "19 is out of range 0..18");
	expect_table_err("s o c 4096 99999999999999999999", -EINVAL, "out of range 0..18");
}

/* Every option, alone, at 0, at a middle value and at its maximum. */
static void test_every_option(void **state)
{
	char t[256], val[32];
	struct wc_cfg cfg, def;
	size_t i, j;

	(void)state;
	wcache_cfg_init(&def);
	for (i = 0; i < NR_CASES; i++) {
		const struct opt_case *c = &cases[i];
		const uint64_t vals[] = { 0, 7, c->max };

		if (!c->has_value) {
			snprintf(t, sizeof(t), "s o c 4096 1 %s", c->name);
			parse_ok(&cfg, t);
			assert_int_equal(field_get(&cfg, c), 1);
			assert_int_equal(cfg.set_mask, c->bit);
			continue;
		}
		for (j = 0; j < 3; j++) {
			bool wm = *companion(c) != 0;

			snprintf(val, sizeof(val), "%llu", (unsigned long long)vals[j]);
			snprintf(t, sizeof(t), "s o c 4096 %d %s %s%s", wm ? 4 : 2, c->name, val,
				 companion(c));
			parse_ok(&cfg, t);
			assert_int_equal(field_get(&cfg, c), vals[j]);
			assert_true(cfg.set_mask & c->bit);
			if (!wm)
				assert_int_equal(cfg.set_mask, c->bit);
		}
		/* Leading zeros are still decimal. */
		snprintf(t, sizeof(t), "s o c 4096 %d %s 0007%s", *companion(c) ? 4 : 2, c->name,
			 companion(c));
		parse_ok(&cfg, t);
		assert_int_equal(field_get(&cfg, c), 7);
	}
}

static void test_option_names_case(void **state)
{
	struct wc_cfg cfg;

	(void)state;
	parse_ok(&cfg, "s o c 4096 6 HIGH_WATERMARK 90 Low_Watermark 80 CLEANER Metadata_Only");
	assert_int_equal(cfg.high_watermark, 90);
	assert_int_equal(cfg.low_watermark, 80);
	assert_true(cfg.cleaner);
	assert_true(cfg.metadata_only);
	assert_int_equal(cfg.set_mask,
			 WC_SET_HIGH_WM | WC_SET_LOW_WM | WC_SET_CLEANER | WC_SET_METADATA_ONLY);
	/* The table form wants the kernel's spelling: no hyphens. */
	expect_table_err("s o c 4096 2 high-watermark 60", -EINVAL,
			 "unknown option 'high-watermark'");
}

/* Every bad value for every valued option. */
static void test_bad_values(void **state)
{
	static const char *const junk[] = { "abc", "-1", "-0", "+5", "10x", "1.5", "0x10", "1e3",
					    "٣" };
	char t[256], msg[128];
	size_t i, j;

	(void)state;
	for (i = 0; i < NR_CASES; i++) {
		const struct opt_case *c = &cases[i];

		if (!c->has_value)
			continue;
		for (j = 0; j < sizeof(junk) / sizeof(junk[0]); j++) {
			snprintf(t, sizeof(t), "s o c 4096 2 %s %s", c->name, junk[j]);
			snprintf(msg, sizeof(msg), "%s: '%s' is not an unsigned decimal number",
				 c->name, junk[j]);
			expect_table_err(t, -EINVAL, msg);
		}
		/* One above the maximum. */
		snprintf(t, sizeof(t), "s o c 4096 2 %s %llu", c->name,
			 (unsigned long long)c->max + 1);
		snprintf(msg, sizeof(msg), "%s: %llu is out of range 0..%llu", c->name,
			 (unsigned long long)c->max + 1, (unsigned long long)c->max);
		expect_table_err(t, -EINVAL, msg);
		/* Beyond 64 bits: must not wrap around to something small. */
		snprintf(t, sizeof(t), "s o c 4096 2 %s 18446744073709551616", c->name);
		snprintf(msg, sizeof(msg), "%s: 18446744073709551616 is out of range", c->name);
		expect_table_err(t, -EINVAL, msg);
		snprintf(t, sizeof(t), "s o c 4096 2 %s 100000000000000000000000000007", c->name);
		expect_table_err(t, -EINVAL, "is out of range");
		/* Missing value: the option is the last word. */
		snprintf(t, sizeof(t), "s o c 4096 1 %s", c->name);
		snprintf(msg, sizeof(msg), "%s: missing value", c->name);
		expect_table_err(t, -EINVAL, msg);
		/* The next option's name is not a value. */
		snprintf(t, sizeof(t), "s o c 4096 2 %s cleaner", c->name);
		expect_table_err(t, -EINVAL, "'cleaner' is not an unsigned decimal");
	}
	expect_table_err("s o c 4096 2 high_watermark 150", -EINVAL,
			 "high_watermark: 150 is out of range 0..100");
	expect_table_err("s o c 4096 2 autocommit_time 3600001", -EINVAL,
			 "autocommit_time: 3600001 is out of range 0..3600000");
	expect_table_err("s o c 4096 2 writeback_jobs 4294967296", -EINVAL,
			 "writeback_jobs: 4294967296 is out of range 0..4294967295");
}

static void test_unknown_and_flags(void **state)
{
	(void)state;
	expect_table_err("s o c 4096 1 bogus", -EINVAL, "unknown option 'bogus'");
	expect_table_err("s o c 4096 3 cleaner bogus 1", -EINVAL, "unknown option 'bogus'");
	expect_table_err("s o c 4096 1 block_size", -EINVAL, "unknown option 'block_size'");
	/* A value after a flag is just an unknown word. */
	expect_table_err("s o c 4096 2 cleaner 1", -EINVAL, "unknown option '1'");
	expect_table_err("s o c 4096 1 fua", -EINVAL, "fua is only valid in pmem mode");
	expect_table_err("s o c 4096 1 nofua", -EINVAL, "nofua is only valid in pmem mode");
	expect_table_err("s o c 4096 1 FUA", -EINVAL, "fua is only valid");
}

static void test_watermark_relation(void **state)
{
	struct wc_cfg cfg;

	(void)state;
	/* Default low is 45: high 40 alone is rejected, as in the kernel. */
	expect_table_err("s o c 4096 2 high_watermark 40", -EINVAL,
			 "high_watermark 40 must be >= low_watermark 45");
	expect_table_err("s o c 4096 4 high_watermark 50 low_watermark 60", -EINVAL,
			 "high_watermark 50 must be >= low_watermark 60");
	expect_table_err("s o c 4096 2 low_watermark 51", -EINVAL, ">= low_watermark 51");
	parse_ok(&cfg, "s o c 4096 4 low_watermark 60 high_watermark 60");
	assert_int_equal(cfg.high_watermark, 60);
	assert_int_equal(cfg.low_watermark, 60);
	parse_ok(&cfg, "s o c 4096 4 high_watermark 0 low_watermark 0");
	assert_int_equal(cfg.high_watermark, 0);
}

static void test_repeat_and_start_sector(void **state)
{
	struct wc_cfg cfg;

	(void)state;
	/*
	 * A repeated option is refused, naming it (issue 16): the kernel takes
	 * the last one, which hides the mistake (docs/compat.md). Flags too, and
	 * whatever the case of the second spelling.
	 */
	expect_table_err("s o c 4096 4 autocommit_blocks 10 autocommit_blocks 20", -EINVAL,
			 "autocommit_blocks is given more than once");
	expect_table_err("s o c 4096 4 high_watermark 50 HIGH_WATERMARK 60", -EINVAL,
			 "high_watermark is given more than once");
	expect_table_err("s o c 4096 2 cleaner cleaner", -EINVAL, "cleaner is given more than once");
	parse_ok(&cfg, "s o c 4096 4 autocommit_blocks 10 autocommit_time 20");
	assert_int_equal(cfg.autocommit_blocks, 10);
	parse_ok(&cfg, "s o c 4096 2 start_sector 36028797018963967");
	assert_int_equal(cfg.start_sector, UINT64_MAX >> 9);
	expect_table_err("s o c 4096 2 start_sector 36028797018963968", -EINVAL,
			 "start_sector: 36028797018963968 is out of range 0..36028797018963967");
}

static void test_paths(void **state)
{
	char *t = malloc(2 * 4096 + 64);
	struct wc_cfg cfg;

	(void)state;
	assert_non_null(t);
	strcpy(t, "s ");
	memset(t + 2, 'a', 4095);
	strcpy(t + 2 + 4095, " c 4096 0");
	parse_ok(&cfg, t);
	assert_int_equal(strlen(cfg.origin_path), 4095);

	strcpy(t, "s ");
	memset(t + 2, 'a', 4096);
	strcpy(t + 2 + 4096, " c 4096 0");
	expect_table_err(t, -EINVAL, "origin: path is too long (4096 bytes, max 4095)");

	strcpy(t, "s o ");
	memset(t + 4, 'b', 5000);
	strcpy(t + 4 + 5000, " 4096 0");
	expect_table_err(t, -EINVAL, "cache: path is too long");
	free(t);
}

/* Parsing on top of a config keeps fields the table does not mention. */
static void test_parse_keeps_extras(void **state)
{
	struct wc_cfg cfg;

	(void)state;
	wcache_cfg_init(&cfg);
	cfg.format = WC_FORMAT_YES;
	cfg.read_only = true;
	cfg.full_wait_ms = 5;
	assert_int_equal(wcache_cfg_parse_table(&cfg, "s o c 4096 1 cleaner"), 0);
	assert_int_equal(cfg.format, WC_FORMAT_YES);
	assert_true(cfg.read_only);
	assert_int_equal(cfg.full_wait_ms, 5);
	assert_true(cfg.cleaner);
}

/* wcache_options() publishes the parser's own description: names, order, ranges, bits. */
static void test_options(void **state)
{
	const struct wc_opt_desc *d;
	unsigned all = 0;
	size_t nr, i;

	(void)state;
	d = wcache_options(&nr);
	/* cases[] plus the pmem-mode flags fua and nofua, in the kernel's order after cleaner. */
	assert_int_equal(nr, NR_CASES + 2);
	for (i = 0; i < nr; i++) {
		size_t k = i < 8 ? i : i < 10 ? SIZE_MAX : i - 2;

		if (k == SIZE_MAX) {
			assert_string_equal(d[i].name, i == 8 ? "fua" : "nofua");
			assert_int_equal(d[i].set_bit, i == 8 ? WC_SET_FUA : WC_SET_NOFUA);
			assert_false(d[i].has_value);
		} else {
			assert_string_equal(d[i].name, cases[k].name);
			assert_int_equal(d[i].has_value, cases[k].has_value);
			assert_int_equal(d[i].set_bit, cases[k].bit);
			assert_int_equal(d[i].max, cases[k].has_value ? cases[k].max : 0);
		}
		assert_true(d[i].has_value == (d[i].unit != NULL));
		assert_true(d[i].help && *d[i].help);
		assert_int_equal(all & d[i].set_bit, 0);
		all |= d[i].set_bit;
	}
}

static void test_cfg_set(void **state)
{
	struct wc_cfg cfg;
	char val[32];
	size_t i;

	(void)state;
	for (i = 0; i < NR_CASES; i++) {
		const struct opt_case *c = &cases[i];

		wcache_cfg_init(&cfg);
		if (c->has_value) {
			snprintf(val, sizeof(val), "%llu", (unsigned long long)c->max);
			assert_int_equal(wcache_cfg_set(&cfg, c->name, val), 0);
			assert_int_equal(field_get(&cfg, c), c->max);
			assert_int_equal(cfg.set_mask, c->bit);
			assert_int_equal(wcache_cfg_set(&cfg, c->name, "3"), 0);
			assert_int_equal(field_get(&cfg, c), 3);
			expect_set_err(c->name, NULL, -EINVAL, "missing value");
			expect_set_err(c->name, "", -EINVAL, "missing value");
			expect_set_err(c->name, "12abc", -EINVAL, "'12abc' is not an unsigned");
			expect_set_err(c->name, "-3", -EINVAL, "'-3' is not an unsigned");
			expect_set_err(c->name, " 3", -EINVAL, "is not an unsigned");
			expect_set_err(c->name, "3 ", -EINVAL, "is not an unsigned");
			expect_set_err(c->name, "99999999999999999999", -EINVAL, "is out of range");
			snprintf(val, sizeof(val), "%llu", (unsigned long long)c->max + 1);
			expect_set_err(c->name, val, -EINVAL, "is out of range");
			expect_set_err(c->name, val, -EINVAL, c->name);
		} else {
			assert_int_equal(wcache_cfg_set(&cfg, c->name, NULL), 0);
			assert_int_equal(field_get(&cfg, c), 1);
			assert_int_equal(cfg.set_mask, c->bit);
			assert_int_equal(wcache_cfg_set(&cfg, c->name, "0"), 0);
			assert_int_equal(field_get(&cfg, c), 0);
			assert_int_equal(cfg.set_mask, 0);
			assert_int_equal(wcache_cfg_set(&cfg, c->name, "true"), 0);
			assert_int_equal(field_get(&cfg, c), 1);
			assert_int_equal(wcache_cfg_set(&cfg, c->name, "off"), 0);
			assert_int_equal(field_get(&cfg, c), 0);
			assert_int_equal(wcache_cfg_set(&cfg, c->name, "YES"), 0);
			assert_int_equal(field_get(&cfg, c), 1);
			assert_int_equal(wcache_cfg_set(&cfg, c->name, ""), 0);
			assert_int_equal(field_get(&cfg, c), 1);
			expect_set_err(c->name, "maybe", -EINVAL, "'maybe' is not a boolean");
			expect_set_err(c->name, "2", -EINVAL, "is not a boolean");
		}
	}

	/* Name spelling: case-insensitive, '-' for '_'. */
	wcache_cfg_init(&cfg);
	assert_int_equal(wcache_cfg_set(&cfg, "High-Watermark", "60"), 0);
	assert_int_equal(cfg.high_watermark, 60);
	assert_int_equal(wcache_cfg_set(&cfg, "block_size", "512"), 0);
	assert_int_equal(cfg.block_size, 512);
	assert_int_equal(wcache_cfg_set(&cfg, "block-size", "2048"), 0);
	assert_int_equal(cfg.block_size, 2048);
	assert_int_equal(wcache_cfg_set(&cfg, "start-sector", "8"), 0);
	assert_int_equal(cfg.start_sector, 8);
	/* block_size is positional in the table, so it sets no WC_SET_* bit. */
	assert_int_equal(cfg.set_mask, WC_SET_HIGH_WM | WC_SET_START_SECTOR);

	expect_set_err("block_size", "8192", -EINVAL, "block_size: 8192 is invalid");
	expect_set_err("block_size", "300", -EINVAL, "power of two in 512..4096");
	expect_set_err("block-size", "4k", -EINVAL, "block_size: '4k'");
	expect_set_err("block_size", NULL, -EINVAL, "block_size: missing value");
	expect_set_err("high_watermark", "150", -EINVAL, "high_watermark: 150 is out of range 0..100");
	expect_set_err("frobnicate", "1", -EINVAL, "unknown option 'frobnicate'");
	expect_set_err("a_very_long_option_name_that_matches_nothing_at_all", "1", -EINVAL,
		       "unknown option 'a_very_long");
	expect_set_err("", "1", -EINVAL, "no name");
	/* fua/nofua are set in any mode; validation refuses them outside pmem mode (test_pmem_mode). */

	/* Relations are the job of validate: set accepts high < low one at a time. */
	wcache_cfg_init(&cfg);
	strcpy(cfg.origin_path, "o");
	strcpy(cfg.cache_path, "c");
	assert_int_equal(wcache_cfg_set(&cfg, "high_watermark", "30"), 0);
	assert_int_equal(wcache_cfg_validate(&cfg), -EINVAL);
	assert_err_contains("high_watermark 30 must be >= low_watermark 45");
	assert_int_equal(wcache_cfg_set(&cfg, "low_watermark", "20"), 0);
	assert_int_equal(wcache_cfg_validate(&cfg), 0);
}

static void test_validate(void **state)
{
	struct wc_cfg cfg, bad;
	size_t i;

	(void)state;
	wcache_cfg_init(&cfg);
	strcpy(cfg.origin_path, "o");
	strcpy(cfg.cache_path, "c");
	assert_int_equal(wcache_cfg_validate(&cfg), 0);

	for (i = 0; i < NR_CASES; i++) {
		const struct opt_case *c = &cases[i];

		if (!c->has_value || c->max == UINT32_MAX)
			continue;
		bad = cfg;
		field_set(&bad, c, c->max);
		if (!strcmp(c->name, "low_watermark"))
			bad.high_watermark = 100;
		assert_int_equal(wcache_cfg_validate(&bad), 0);
		field_set(&bad, c, c->max + 1);
		assert_int_equal(wcache_cfg_validate(&bad), -EINVAL);
		assert_err_contains(c->name);
		assert_err_contains("out of range");
	}

	bad = cfg;
	bad.block_size = 8192;
	assert_int_equal(wcache_cfg_validate(&bad), -EINVAL);
	assert_err_contains("block_size: 8192");
	bad.block_size = 0;	/* 0 = from the superblock */
	assert_int_equal(wcache_cfg_validate(&bad), 0);
	bad.block_size = 1024 + 512;
	assert_int_equal(wcache_cfg_validate(&bad), -EINVAL);
	assert_err_contains("block_size: 1536");

	bad = cfg;
	bad.cache_path[0] = '\0';
	assert_int_equal(wcache_cfg_validate(&bad), -EINVAL);
	assert_err_contains("cache: no device path");
	/* Devices given by a test (wc_open_devs) stand in for the paths; the rest is checked. */
	assert_int_equal(wc_table_validate(&bad, false), 0);
	bad.high_watermark = 101;
	assert_int_equal(wc_table_validate(&bad, false), -EINVAL);
	assert_err_contains("high_watermark: 101");

	bad = cfg;
	memset(bad.origin_path, 'x', sizeof(bad.origin_path));
	assert_int_equal(wcache_cfg_validate(&bad), -EINVAL);
	assert_err_contains("origin: path is not terminated");

	bad = cfg;
	bad.format = (enum wc_format_mode)7;
	assert_int_equal(wcache_cfg_validate(&bad), -EINVAL);
	assert_err_contains("format");

	assert_int_equal(wcache_cfg_validate(NULL), -EINVAL);
}

/* Field-by-field comparison (struct padding is not part of the contract). */
static void assert_cfg_equal(const struct wc_cfg *a, const struct wc_cfg *b)
{
	assert_string_equal(a->origin_path, b->origin_path);
	assert_string_equal(a->cache_path, b->cache_path);
	assert_int_equal(a->block_size, b->block_size);
	assert_int_equal(a->start_sector, b->start_sector);
	assert_int_equal(a->high_watermark, b->high_watermark);
	assert_int_equal(a->low_watermark, b->low_watermark);
	assert_int_equal(a->writeback_jobs, b->writeback_jobs);
	assert_int_equal(a->autocommit_blocks, b->autocommit_blocks);
	assert_int_equal(a->autocommit_ms, b->autocommit_ms);
	assert_int_equal(a->max_age_ms, b->max_age_ms);
	assert_int_equal(a->pause_writeback_ms, b->pause_writeback_ms);
	assert_int_equal(a->cleaner, b->cleaner);
	assert_int_equal(a->metadata_only, b->metadata_only);
	assert_int_equal(a->set_mask, b->set_mask);
	assert_int_equal(a->format, b->format);
	assert_int_equal(a->read_only, b->read_only);
	assert_int_equal(a->full_wait_ms, b->full_wait_ms);
}

static void format_ok(const struct wc_cfg *cfg, const char *want)
{
	char buf[512];
	int ret = wc_table_format_line(cfg, buf, sizeof(buf));

	if (ret < 0)
		fail_msg("wc_table_format_line: %d (%s)", ret, wcache_last_error());
	assert_string_equal(buf, want);
	assert_int_equal(ret, (int)strlen(want));
}

static void test_format_line(void **state)
{
	struct wc_cfg cfg, again;
	char buf[512];

	(void)state;
	parse_ok(&cfg, "s /dev/sdb /dev/nvme0n1p1 4096 0");
	format_ok(&cfg, "s /dev/sdb /dev/nvme0n1p1 4096 0");

	/* Every option, given in scrambled order, comes out in the kernel's order. */
	parse_ok(&cfg, "0 8 writecache S o c 512 18 pause_writeback 100 metadata_only CLEANER "
		       "max_age 5000 autocommit_time 20 autocommit_blocks 30 writeback_jobs 0 "
		       "low_watermark 10 high_watermark 90 start_sector 2048");
	format_ok(&cfg, "s o c 512 18 start_sector 2048 high_watermark 90 low_watermark 10 "
			"writeback_jobs 0 autocommit_blocks 30 autocommit_time 20 max_age 5000 "
			"cleaner metadata_only pause_writeback 100");

	/* Round trip: parsing the line gives the same config, and the same line again. */
	assert_true(wc_table_format_line(&cfg, buf, sizeof(buf)) > 0);
	parse_ok(&again, buf);
	assert_cfg_equal(&again, &cfg);

	/* Only explicitly set options; a default-valued explicit option is still shown. */
	parse_ok(&cfg, "s o c 4096 3 high_watermark 50 cleaner");
	format_ok(&cfg, "s o c 4096 3 high_watermark 50 cleaner");
	assert_int_equal(wcache_cfg_set(&cfg, "cleaner", "0"), 0);
	format_ok(&cfg, "s o c 4096 2 high_watermark 50");
	assert_int_equal(wcache_cfg_set(&cfg, "max_age", "86400000"), 0);
	assert_int_equal(wcache_cfg_set(&cfg, "block_size", "1024"), 0);
	format_ok(&cfg, "s o c 1024 4 high_watermark 50 max_age 86400000");

	/* A value set by hand without its bit is not printed. */
	cfg.autocommit_ms = 7;
	format_ok(&cfg, "s o c 1024 4 high_watermark 50 max_age 86400000");

	/* Config filled via cfg_set round-trips through the table form too. */
	wcache_cfg_init(&cfg);
	strcpy(cfg.origin_path, "/o");
	strcpy(cfg.cache_path, "/c");
	assert_int_equal(wcache_cfg_set(&cfg, "writeback-jobs", "4294967295"), 0);
	assert_int_equal(wcache_cfg_set(&cfg, "start_sector", "36028797018963967"), 0);
	assert_int_equal(wcache_cfg_set(&cfg, "metadata_only", NULL), 0);
	assert_true(wc_table_format_line(&cfg, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "s /o /c 4096 5 start_sector 36028797018963967 "
				 "writeback_jobs 4294967295 metadata_only");
	parse_ok(&again, buf);
	assert_cfg_equal(&again, &cfg);

	/* Empty paths (devices given as objects) print as "-". */
	wcache_cfg_init(&cfg);
	format_ok(&cfg, "s - - 4096 0");
}

static void test_format_line_buffer(void **state)
{
	const char *want = "s o c 4096 2 max_age 10";
	size_t n = strlen(want);
	struct wc_cfg cfg;
	char buf[64];

	(void)state;
	parse_ok(&cfg, want);
	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(wc_table_format_line(&cfg, buf, n + 1), (int)n);
	assert_string_equal(buf, want);
	assert_int_equal(buf[n + 1], 'Z');

	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(wc_table_format_line(&cfg, buf, n), -ERANGE);
	assert_err_contains("needs 24 bytes");
	assert_int_equal(buf[n], 'Z');		/* nothing written past len */
	assert_int_equal(wc_table_format_line(&cfg, buf, 5), -ERANGE);
	assert_int_equal(wc_table_format_line(&cfg, NULL, 0), -ERANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_mode),
		cmocka_unit_test(test_positional_missing),
		cmocka_unit_test(test_block_size),
		cmocka_unit_test(test_n_words),
		cmocka_unit_test(test_every_option),
		cmocka_unit_test(test_option_names_case),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_unknown_and_flags),
		cmocka_unit_test(test_watermark_relation),
		cmocka_unit_test(test_repeat_and_start_sector),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_parse_keeps_extras),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_pmem_mode),
		cmocka_unit_test(test_cfg_set),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_format_line),
		cmocka_unit_test(test_format_line_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
