/* SPDX-License-Identifier: MIT */
/*
 * Shared declarations of the wcache command-line tool: the subcommand table,
 * option/number parsing, messages, progress display and the JSON emitter.
 * The CLI talks to the engine only through include/wcache.h.
 */
#ifndef WC_CLI_H
#define WC_CLI_H

#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "wcache.h"

/* Exit codes shared by every subcommand (check refines 1 and 2, see cmd_check). */
#define CLI_EXIT_OK	0
#define CLI_EXIT_FAIL	1	/* the operation failed */
#define CLI_EXIT_USAGE	2	/* bad command line */

struct cli_cmd {
	const char *name;
	int (*fn)(const struct cli_cmd *cmd, int argc, char **argv);	/* returns an exit code */
	const char *summary;	/* one line for "wcache --help" */
	const char *usage;	/* full "wcache CMD --help" text (see cli_help) */
	/*
	 * WC_SET_* bits of the table options the command lists among its own
	 * options (--start-sector with its -s): left out of its generated
	 * table-option rows and help list.
	 */
	unsigned own_table_opts;
};

/*
 * Subcommands. argv[0] is the subcommand name; options may appear anywhere.
 * Offline ones are in cmd_inspect.c (check, dump, status, info) and cmd_offline.c
 * (format, export, flush).
 */
int cmd_format(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_check(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_dump(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_status(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_info(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_export(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_flush(const struct cli_cmd *cmd, int argc, char **argv);

/*
 * The live subcommands: serve in cmd_serve.c, fuse in cmd_fuse.c (only with
 * WC_WITH_FUSE: without it main.c lists fuse as not available), message and
 * the live status below in cmd_control.c (control socket clients).
 */
int cmd_serve(const struct cli_cmd *cmd, int argc, char **argv);
#ifdef WC_WITH_FUSE
int cmd_fuse(const struct cli_cmd *cmd, int argc, char **argv);
#endif
int cmd_message(const struct cli_cmd *cmd, int argc, char **argv);
int cmd_metrics(const struct cli_cmd *cmd, int argc, char **argv);
/*
 * "wcache status --control PATH [--json]": query a running server's control
 * socket and print the live status. Returns an exit code (0 ok, 1 failure).
 */
int cli_status_control(const char *control_path, bool json);
/*
 * Same, repeated every interval_ms until count rows were printed (count 0:
 * until the server goes away); one row (text) or one JSON object per line.
 */
int cli_status_control_watch(const char *control_path, bool json, unsigned interval_ms,
			     uint64_t count);
/* Connect to a control socket: the fd, or -errno with a message in err. */
int cli_ctl_connect(const char *path, char *err, size_t err_len);
/*
 * Ask for the metrics (Prometheus text) on a connected control socket and
 * copy them to out. 0, or -EIO with a message in err.
 */
int cli_ctl_metrics(int fd, FILE *out, char *err, size_t err_len);
/* "wcache top" (cmd_top.c): live view of a server. */
int cmd_top(const struct cli_cmd *cmd, int argc, char **argv);

/* ---------------- helpers (util.c) ---------------- */

extern bool cli_verbose;

/* "wcache CMD: message" on stderr. */
void cli_error(const struct cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(const struct cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a usage error plus a hint to --help; returns CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "wcache VERSION" on stdout. */
void cli_version(void);
/*
 * Print cmd->usage on stdout; returns CLI_EXIT_OK. A usage text with a line
 * CLI_TABLE_OPTS_HEADER gets the list of table options after it (those of
 * wcache_options() not in cmd->own_table_opts).
 */
int cli_help(const struct cli_cmd *cmd);

/*
 * Run getopt_long over argv (argv[0] = subcommand). On '?' or ':' prints a
 * usage error. Returns the option value, -1 at the end, or -2 after an error
 * (caller returns CLI_EXIT_USAGE). The global options are taken here too
 * wherever the command does not define the same letter or name itself:
 * -v/--verbose sets cli_verbose, -V/--version prints the version and exits.
 */
int cli_getopt(const struct cli_cmd *cmd, int argc, char **argv, const char *shortopts,
	       const struct option *longopts);

/* Strict unsigned decimal (no sign, no suffix, no junk). 0 or -EINVAL/-ERANGE. */
int cli_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* Same, as a usage error naming the option: returns 0 or CLI_EXIT_USAGE. */
int cli_opt_u64(const struct cli_cmd *cmd, const char *opt, const char *s, uint64_t max,
		uint64_t *out);

/*
 * Size in bytes of a regular file or block device. 0 or -errno (message in
 * *why, static or in buf).
 */
int cli_device_size(const char *path, uint64_t *out, char *why, size_t why_len);

/* Human size: "484 KiB", "16.0 MiB". */
const char *cli_human_bytes(uint64_t bytes, char *buf, size_t len);

/* ---------------- shared options (options.c) ---------------- */

/* The line of a usage text after which cli_help() lists the table options. */
#define CLI_TABLE_OPTS_HEADER "Table options (dm-writecache names; '-' or '_' both accepted):\n"

/* Most table options the tool handles; CLI_TABLE_LONGOPTS getopt rows hold them all. */
#define CLI_MAX_TABLE_OPTS	16
#define CLI_TABLE_LONGOPTS	(2 * CLI_MAX_TABLE_OPTS)

/*
 * Write the getopt_long rows of the table options whose WC_SET_* bit is not
 * in skip into lo (room for CLI_TABLE_LONGOPTS): both spellings of each
 * ("high-watermark", "high_watermark"), flags without an argument, val =
 * val_base + its index in wcache_options(). Returns the number of rows.
 */
size_t cli_table_longopts(struct option *lo, unsigned skip, int val_base);
/* The table option whose getopt value is c, or NULL if c is none. */
const struct wc_opt_desc *cli_table_opt(int c, int val_base);
/* Its name as the CLI spells it: "high-watermark". */
const char *cli_table_opt_name(const struct wc_opt_desc *d);
/*
 * Apply a table option given on the command line to cfg (value: optarg,
 * ignored for flags). Returns 0 or CLI_EXIT_USAGE after a usage error.
 */
int cli_table_set(const struct cli_cmd *cmd, struct wc_cfg *cfg, const struct wc_opt_desc *d,
		  const char *value);
/* The help list of the table options not in skip: "  --high-watermark P  ...". */
void cli_table_help(FILE *f, unsigned skip);

/*
 * The one parser of each of these options, for every subcommand that takes
 * it. Return 0, or CLI_EXIT_USAGE after a usage error naming the option.
 */
int cli_opt_start_sector(const struct cli_cmd *cmd, const char *s, uint64_t *out);
int cli_opt_block_size(const struct cli_cmd *cmd, const char *s, uint32_t *out);
int cli_opt_cache_io(const struct cli_cmd *cmd, const char *s, bool *buffered);
/* --mode s|p: sets cfg's mode and that mode's defaults (wcache_cfg_set "mode"). */
int cli_opt_mode(const struct cli_cmd *cmd, const char *s, struct wc_cfg *cfg);

/* ---------------- progress (progress.c) ---------------- */

enum progress_mode {
	PROGRESS_AUTO,		/* a bar when stderr is a terminal, otherwise nothing */
	PROGRESS_FORCE,		/* a bar on a terminal, periodic lines otherwise */
	PROGRESS_OFF,
};

struct progress {
	bool on, tty;
	uint64_t total, last_done;
	uint64_t last_ns;	/* time of the last line/redraw */
	uint64_t start_ns;	/* progress_start: the base of the rate and ETA */
	int last_pct;
	const char *unit;	/* "blocks", "MiB" */
	bool ended;
};

void progress_start(struct progress *p, enum progress_mode mode, uint64_t total, const char *unit);
/* Redraw if the percentage changed (tty) or a second passed (lines); cheap otherwise. */
void progress_update(struct progress *p, uint64_t done);
/* Final redraw at done and a newline on a terminal. Safe to call twice. */
void progress_end(struct progress *p, uint64_t done);

/* ---------------- JSON emitter (json.c) ---------------- */

#define JSON_MAX_DEPTH 16

struct json {
	FILE *f;
	int depth;
	bool need_comma[JSON_MAX_DEPTH];
	bool inline_from[JSON_MAX_DEPTH];	/* this level and below print on one line */
};

void json_init(struct json *j, FILE *f);
/* key is NULL inside arrays and at the top level. one_line: no newlines inside. */
void json_object_begin(struct json *j, const char *key, bool one_line);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key, bool one_line);
void json_array_end(struct json *j);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);
/* NULL s prints null. Bytes that are not valid UTF-8 become U+FFFD. */
void json_string(struct json *j, const char *key, const char *s);
/* Ends the document with a newline. */
void json_finish(struct json *j);
/* Write s as a JSON string literal (quotes included). */
void json_write_string(FILE *f, const char *s);

#endif
