/* SPDX-License-Identifier: MIT */
/*
 * Options several subcommands share. The dm table options come from the
 * library's one description (wcache_options()): their getopt rows, their
 * help list and their parsing are built from it here, never listed by hand.
 * Also the one parser each for --start-sector, --block-size and --cache-io.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define HELP_WIDTH 79	/* table-option lists wrap before this column */

/* The '-' spelling of each option name ("high-watermark"), index as in wcache_options(). */
static char dash_names[CLI_MAX_TABLE_OPTS][32];

static const struct wc_opt_desc *table_opts(size_t *nr)
{
	static bool named;
	const struct wc_opt_desc *d = wcache_options(nr);

	if (*nr > CLI_MAX_TABLE_OPTS) {
		fprintf(stderr, "wcache: the library has %zu table options, this tool room for %d\n",
			*nr, CLI_MAX_TABLE_OPTS);
		abort();
	}
	if (!named) {
		for (size_t i = 0; i < *nr; i++) {
			char *p = dash_names[i];

			snprintf(p, sizeof(dash_names[i]), "%s", d[i].name);
			for (; *p; p++)
				*p = *p == '_' ? '-' : *p;
		}
		named = true;
	}
	return d;
}

const char *cli_table_opt_name(const struct wc_opt_desc *d)
{
	size_t nr;
	const struct wc_opt_desc *base = table_opts(&nr);

	return dash_names[d - base];
}

size_t cli_table_longopts(struct option *lo, unsigned skip, int val_base)
{
	size_t nr, n = 0;
	const struct wc_opt_desc *d = table_opts(&nr);

	for (size_t i = 0; i < nr; i++) {
		int has = d[i].has_value ? required_argument : no_argument;

		if (d[i].set_bit & skip)
			continue;
		lo[n++] = (struct option){ dash_names[i], has, NULL, val_base + (int)i };
		lo[n++] = (struct option){ d[i].name, has, NULL, val_base + (int)i };
	}
	return n;
}

const struct wc_opt_desc *cli_table_opt(int c, int val_base)
{
	size_t nr;
	const struct wc_opt_desc *d = table_opts(&nr);

	if (c < val_base || c - val_base >= (int)nr)
		return NULL;
	return &d[c - val_base];
}

int cli_table_set(const struct cli_cmd *cmd, struct wc_cfg *cfg, const struct wc_opt_desc *d,
		  const char *value)
{
	/* Refused as in a table line (docs/compat.md); CLI flags take no value, so set = given. */
	if (cfg->set_mask & d->set_bit)
		return cli_usage_error(cmd, "--%s given more than once; give it once",
				       cli_table_opt_name(d));
	/* One parser (and message) for the start sector, whichever way it is given. */
	if (d->set_bit == WC_SET_START_SECTOR) {
		if (cli_opt_start_sector(cmd, value, &cfg->start_sector))
			return CLI_EXIT_USAGE;
		cfg->set_mask |= WC_SET_START_SECTOR;
		return 0;
	}
	if (wcache_cfg_set(cfg, d->name, d->has_value ? value : NULL) < 0)
		return cli_usage_error(cmd, "%s", wcache_last_error());
	return 0;
}

/* One "  --name UNIT" item, wrapped before HELP_WIDTH; returns the new column. */
static size_t help_item(FILE *f, size_t col, const char *name, const char *unit)
{
	size_t len = 2 + strlen(name) + (unit ? 1 + strlen(unit) : 0);

	if (col && col + 2 + len > HELP_WIDTH) {
		fputc('\n', f);
		col = 0;
	}
	fprintf(f, "  --%s%s%s", name, unit ? " " : "", unit ? unit : "");
	return col + 2 + len;
}

void cli_table_help(FILE *f, unsigned skip)
{
	size_t nr, col = 0;
	const struct wc_opt_desc *d = table_opts(&nr);

	/* Options with a value first, then the flags; each in table order. */
	for (int flags = 0; flags < 2; flags++) {
		for (size_t i = 0; i < nr; i++) {
			if (!(d[i].set_bit & skip) && d[i].has_value == !flags)
				col = help_item(f, col, dash_names[i], d[i].unit);
		}
	}
	if (col)
		fputc('\n', f);
}

int cli_opt_start_sector(const struct cli_cmd *cmd, const char *s, uint64_t *out)
{
	size_t nr;
	const struct wc_opt_desc *d = table_opts(&nr);
	uint64_t max = 0;

	for (size_t i = 0; i < nr; i++) {
		if (d[i].set_bit == WC_SET_START_SECTOR)
			max = d[i].max;
	}
	return cli_opt_u64(cmd, "--start-sector", s, max, out);
}

int cli_opt_block_size(const struct cli_cmd *cmd, const char *s, uint32_t *out)
{
	uint64_t v;

	if (cli_opt_u64(cmd, "--block-size", s, UINT32_MAX, &v))
		return CLI_EXIT_USAGE;
	if (v < 512 || v > 4096 || (v & (v - 1)))
		return cli_usage_error(cmd, "--block-size: %llu is invalid; must be 512, 1024, 2048 "
				       "or 4096", (unsigned long long)v);
	*out = (uint32_t)v;
	return 0;
}

int cli_opt_cache_io(const struct cli_cmd *cmd, const char *s, bool *buffered)
{
	if (strcmp(s, "direct") && strcmp(s, "buffered"))
		return cli_usage_error(cmd, "--cache-io: '%s' is not direct or buffered", s);
	*buffered = !strcmp(s, "buffered");
	return 0;
}

int cli_opt_mode(const struct cli_cmd *cmd, const char *s, struct wc_cfg *cfg)
{
	if (strcmp(s, "s") && strcmp(s, "p"))
		return cli_usage_error(cmd, "--mode: '%s' is not s (SSD) or p (pmem)", s);
	if (wcache_cfg_set(cfg, "mode", s) < 0)
		return cli_usage_error(cmd, "--mode: %s", wcache_last_error());
	return 0;
}
