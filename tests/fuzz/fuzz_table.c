/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target "table": the dm table line and the key=value options, through
 * the library (wcache_cfg_parse_table, wcache_cfg_set, wcache_cfg_validate,
 * the table line writer) and the CLI (its option rows and parsers built from
 * wcache_options(), --block-size, --start-sector, --cache-io). Input: text lines; the first is a table line, each
 * further line "name=value" or "name" (a flag). Checks beyond "no crash":
 *  - a valid config's table line parses back to the same config and line;
 *  - the library and the CLI accept exactly the same values of an option
 *    (one description, one meaning).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuzz.h"
#include "table.h"
#include "wcache.h"

#define VAL_BASE 1000	/* getopt values of the table options, as the subcommands use */

static void same_cfg(const struct wc_cfg *a, const struct wc_cfg *b, const char *line)
{
	FUZZ_CHECK(!strcmp(a->origin_path, b->origin_path), "origin after '%s'", line);
	FUZZ_CHECK(!strcmp(a->cache_path, b->cache_path), "cache after '%s'", line);
	FUZZ_CHECK(a->block_size == b->block_size, "block_size after '%s'", line);
	FUZZ_CHECK(a->start_sector == b->start_sector, "start_sector after '%s'", line);
	FUZZ_CHECK(a->high_watermark == b->high_watermark, "high_watermark after '%s'", line);
	FUZZ_CHECK(a->low_watermark == b->low_watermark, "low_watermark after '%s'", line);
	FUZZ_CHECK(a->writeback_jobs == b->writeback_jobs, "writeback_jobs after '%s'", line);
	FUZZ_CHECK(a->autocommit_blocks == b->autocommit_blocks, "autocommit_blocks after '%s'",
		   line);
	FUZZ_CHECK(a->autocommit_ms == b->autocommit_ms, "autocommit_time after '%s'", line);
	FUZZ_CHECK(a->max_age_ms == b->max_age_ms, "max_age after '%s'", line);
	FUZZ_CHECK(a->pause_writeback_ms == b->pause_writeback_ms, "pause_writeback after '%s'",
		   line);
	FUZZ_CHECK(a->cleaner == b->cleaner, "cleaner after '%s'", line);
	FUZZ_CHECK(a->metadata_only == b->metadata_only, "metadata_only after '%s'", line);
	FUZZ_CHECK(a->set_mask == b->set_mask, "set_mask %#x, was %#x after '%s'", b->set_mask,
		   a->set_mask, line);
}

/* A valid config with table-safe paths must survive its own table line. */
static void round_trip(const struct wc_cfg *cfg)
{
	static char line[2 * sizeof(cfg->origin_path) + 512], again[sizeof(line)];
	struct wc_cfg back;
	int n, ret;

	if (wcache_cfg_validate(cfg) < 0)
		return;
	n = wc_table_format_line(cfg, line, sizeof(line));
	FUZZ_CHECK(n > 0 && (size_t)n < sizeof(line), "format_line: %d %s", n, wcache_last_error());
	wcache_cfg_init(&back);
	ret = wcache_cfg_parse_table(&back, line);
	/* Paths with white space cannot be written in a table line (table.c). */
	if (strpbrk(cfg->origin_path, " \t\n\v\f\r") || strpbrk(cfg->cache_path, " \t\n\v\f\r"))
		return;
	FUZZ_CHECK(ret == 0, "'%s' does not parse back: %s", line, wcache_last_error());
	same_cfg(cfg, &back, line);
	n = wc_table_format_line(&back, again, sizeof(again));
	FUZZ_CHECK(n > 0 && !strcmp(line, again), "'%s' comes back as '%s'", line, again);
}

/* The CLI's row for a name, as getopt_long matches it exactly. */
static const struct wc_opt_desc *cli_lookup(const char *name)
{
	struct option lo[CLI_TABLE_LONGOPTS];
	size_t n = cli_table_longopts(lo, 0, VAL_BASE);

	for (size_t i = 0; i < n; i++) {
		if (!strcmp(lo[i].name, name))
			return cli_table_opt(lo[i].val, VAL_BASE);
	}
	return NULL;
}

static void one_option(struct wc_cfg *cfg, char *line)
{
	const struct cli_cmd cmd = { .name = "fuzz" };
	char *eq = strchr(line, '=');
	const char *value = NULL;
	const struct wc_opt_desc *d;
	struct wc_cfg lib = *cfg;
	int lib_ret;

	if (eq) {
		*eq = '\0';
		value = eq + 1;
	}
	lib_ret = wcache_cfg_set(&lib, line, value);
	d = cli_lookup(line);
	if (!d && !strcmp(line, "cache-io") && value) {
		bool buffered = false;

		if (cli_opt_cache_io(&cmd, value, &buffered) == 0)
			FUZZ_CHECK(buffered == !strcmp(value, "buffered"), "--cache-io %s", value);
		return;
	}
	if (!d) {
		/* --block-size is the CLI's own option; the library takes it by name too. */
		if (!strcmp(line, "block-size") || !strcmp(line, "block_size")) {
			uint32_t bs;
			int cli_ret = value ? cli_opt_block_size(&cmd, value, &bs) : CLI_EXIT_USAGE;

			FUZZ_CHECK((lib_ret == 0) == (cli_ret == 0),
				   "block_size '%s': library %d, CLI %d", value ? value : "(none)",
				   lib_ret, cli_ret);
			FUZZ_CHECK(lib_ret < 0 || lib.block_size == bs, "block_size '%s'", value);
		}
		if (lib_ret == 0)
			*cfg = lib;
		return;
	}
	/* The CLI refuses an option given twice (as a table line does); the library's
	 * one-option setter overrides. */
	if (cfg->set_mask & d->set_bit) {
		struct wc_cfg cli = *cfg;

		FUZZ_CHECK(cli_table_set(&cmd, &cli, d, d->has_value ? (value ? value : "") : NULL) != 0,
			   "%s given twice: the CLI took it", line);
		if (lib_ret == 0)
			*cfg = lib;
		return;
	}
	/* Option rows with a value: getopt always hands one over (maybe empty). */
	if (d->has_value) {
		struct wc_cfg cli = *cfg;
		int cli_ret = cli_table_set(&cmd, &cli, d, value ? value : "");

		lib = *cfg;
		lib_ret = wcache_cfg_set(&lib, line, value ? value : "");
		FUZZ_CHECK((lib_ret == 0) == (cli_ret == 0), "%s '%s': library %d, CLI %d", line,
			   value ? value : "", lib_ret, cli_ret);
		if (cli_ret == 0)
			same_cfg(&lib, &cli, line);
		if (cli_ret == 0)
			*cfg = cli;
		return;
	}
	/* A flag on the command line takes no value; the library reads one as a boolean. */
	if (!value) {
		struct wc_cfg cli = *cfg;

		FUZZ_CHECK(cli_table_set(&cmd, &cli, d, NULL) == 0, "flag %s", line);
		FUZZ_CHECK(lib_ret == 0, "flag %s: %s", line, wcache_last_error());
		same_cfg(&lib, &cli, line);
	}
	if (lib_ret == 0)
		*cfg = lib;
}

void fuzz_one(const uint8_t *data, size_t len)
{
	static bool quiet;
	struct wc_cfg *cfg, *before;
	char *text = malloc(len + 1), *line, *save = NULL;
	int ret;

	if (!quiet) {
		fuzz_quiet();
		/* The CLI prints usage errors on stderr: fine, nobody reads it. */
		quiet = true;
	}
	cfg = malloc(sizeof(*cfg));
	before = malloc(sizeof(*before));
	FUZZ_CHECK(text && cfg && before, "%s", "out of memory");
	memcpy(text, data, len);
	text[len] = '\0';

	wcache_cfg_init(cfg);
	line = strtok_r(text, "\n", &save);
	if (line) {
		*before = *cfg;
		ret = wcache_cfg_parse_table(cfg, line);
		if (ret < 0)
			same_cfg(before, cfg, "a refused table line");	/* untouched on failure */
		round_trip(cfg);
		/* Bare numbers go through both number parsers: they must agree. */
		uint64_t a = 0, b = 0;
		int ra = wc_table_parse_u64("fuzz", line, UINT32_MAX, &a);
		int rb = cli_parse_u64(line, UINT32_MAX, &b);

		FUZZ_CHECK((ra == 0) == (rb == 0) && a == b, "number '%s': %d/%llu vs %d/%llu", line,
			   ra, (unsigned long long)a, rb, (unsigned long long)b);
	}
	while ((line = strtok_r(NULL, "\n", &save)))
		one_option(cfg, line);
	round_trip(cfg);
	free(text);
	free(cfg);
	free(before);
}
