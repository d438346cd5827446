/* SPDX-License-Identifier: MIT */
/*
 * wcache(8) entry point: global options (before the command; cli_getopt
 * takes them after it), the subcommand table, top-level help and the
 * library log sink. Each subcommand parses its own options and
 * returns an exit code; nothing here touches a device.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char format_usage[] =
	"Usage: wcache format CACHE [--block-size N] [--start-sector S] [--mode s|p]\n"
	"                    [--force]\n"
	"\n"
	"Format CACHE as an empty dm-writecache cache device. The whole device after\n"
	"START_SECTOR is used; n_blocks is computed like the kernel does. The layout is\n"
	"the same in SSD (s) and pmem (p) mode: a cache formatted for one opens in both.\n"
	"A cache that holds dirty blocks (data not yet written back to its origin) is\n"
	"not formatted unless --force is given; run 'wcache flush' first.\n"
	"\n"
	"Options:\n"
	"  -b, --block-size N     cache block size in bytes: 512, 1024, 2048 or 4096\n"
	"                         (default 4096)\n"
	"  -s, --start-sector S   metadata starts S 512-byte sectors into CACHE (default 0)\n"
	"  -m, --mode s|p         the mode CACHE is meant for (accepted for symmetry\n"
	"                         with serve; the bytes written are the same)\n"
	"  -f, --force            format even if CACHE holds dirty blocks (they are lost)\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 formatted, 1 failed or refused, 2 usage error.\n";

static const char check_usage[] =
	"Usage: wcache check CACHE [--origin ORIGIN] [--start-sector S] [--json]\n"
	"\n"
	"Read and verify the metadata of CACHE without writing anything, and print a\n"
	"summary. With --origin, entries that map sectors beyond the origin's size are\n"
	"reported as corruption (wrong origin device).\n"
	"\n"
	"Options:\n"
	"  -o, --origin ORIGIN    origin file, block device or nbd:// URI, for the range\n"
	"                         check\n"
	"  -s, --start-sector S   metadata starts S 512-byte sectors into CACHE (default 0)\n"
	"  -j, --json             print one JSON object (also on errors: status, error)\n"
	"  -q, --quiet            print nothing but errors\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 clean (no dirty blocks), 1 valid with dirty blocks,\n"
	"2 corrupt, unreadable, not a cache, or usage error.\n";

static const char dump_usage[] =
	"Usage: wcache dump CACHE [--json] [--start-sector S] [--all] [--partial]\n"
	"\n"
	"Print the superblock of CACHE and every entry whose seq_count is not -1: its\n"
	"index, original sector, seq_count, state and the byte offset of its data block\n"
	"on CACHE. States: valid (committed and the newest copy of its sector: the data\n"
	"the cache serves), superseded (committed but an entry with a higher seq_count\n"
	"maps the same sector), uncommitted (seq_count >= the superblock's; recovery\n"
	"discards it), misaligned (sector not a multiple of the block size), missing\n"
	"(--partial: its data block is past the end of a truncated CACHE).\n"
	"Nothing is written.\n"
	"\n"
	"Options:\n"
	"  -j, --json             print one JSON document instead of text (also for a\n"
	"                         missing or unreadable CACHE: status and error)\n"
	"  -s, --start-sector S   metadata starts S 512-byte sectors into CACHE (default 0)\n"
	"  -a, --all              also list free entries (seq_count -1)\n"
	"  -p, --partial          CACHE is shorter than its format (a cut copy): list\n"
	"                         what is there, entry records past the end as free,\n"
	"                         and say what is missing (exit 1)\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 dumped, 1 dumped but the metadata is corrupt, or unreadable,\n"
	"2 usage error.\n";

static const char status_usage[] =
	"Usage: wcache status CACHE [--start-sector S] [--json]\n"
	"       wcache status --control PATH [--json] [--watch]\n"
	"\n"
	"Offline form: read CACHE (never writing) and print its block counts as\n"
	"'key: value' lines: total, free, dirty, seq_count (what a fresh activation\n"
	"would report; dirty = total - free).\n"
	"Live form (--control): ask a running 'wcache serve' through its control\n"
	"socket.\n"
	"\n"
	"Options:\n"
	"  -s, --start-sector S   metadata starts S 512-byte sectors into CACHE (default 0)\n"
	"  -c, --control PATH     query a running server's control socket\n"
	"  -j, --json             print a JSON object (offline: also on errors, with\n"
	"                         status and error)\n"
	"  -w, --watch            with --control: a row (or a JSON line) every second\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 ok, 1 failed, 2 usage error.\n";

static const char export_usage[] =
	"Usage: wcache export ORIGIN CACHE OUTPUT [--start-sector S] [--block-size N]\n"
	"                     [--force] [--progress]\n"
	"\n"
	"Copy the logical device (ORIGIN overlaid with the valid blocks of CACHE) to\n"
	"OUTPUT, which is created or truncated (a regular file is written sparse\n"
	"where whole 1 MiB chunks are zero; a block device is written in full).\n"
	"OUTPUT '-' writes to standard output (not a terminal). ORIGIN and CACHE are\n"
	"opened read-only and never modified; OUTPUT must not be one of them. Dirty\n"
	"blocks past the end of ORIGIN are named and make the export fail (exit 1);\n"
	"OUTPUT still holds everything else.\n"
	"\n"
	"Options:\n"
	"  -s, --start-sector S   metadata starts S 512-byte sectors into CACHE (default 0)\n"
	"  -b, --block-size N     require this block size (as a table line would);\n"
	"                         default: take it from the superblock\n"
	"  -f, --force            salvage a damaged cache: trust a blank superblock's\n"
	"                         other fields, take an impossible seq_count as is,\n"
	"                         and on a truncated device export what is left\n"
	"                         (warnings say what is missing)\n"
	"  -p, --progress         always show progress on stderr (lines when stderr is\n"
	"                         not a terminal); by default a bar on a terminal only\n"
	"      --no-progress      never show progress\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 exported, 1 failed, 2 usage error.\n";

static const char flush_usage[] =
	"Usage: wcache flush ORIGIN CACHE [--start-sector S] [--block-size N]\n"
	"                    [table options] [--progress]\n"
	"\n"
	"Activate the cache, write every dirty block back to ORIGIN (the 'flush'\n"
	"message of dm-writecache), commit and close. Afterwards ORIGIN alone holds\n"
	"the data and 'wcache check CACHE' exits 0. A blank CACHE is an error (it is\n"
	"never formatted). Both devices are locked for the duration.\n"
	"\n"
	"Options:\n"
	"  -s, --start-sector S   metadata starts S 512-byte sectors into CACHE (default 0)\n"
	"  -b, --block-size N     require this block size (default: from the superblock)\n"
	"  -p, --progress         always show progress on stderr\n"
	"      --no-progress      never show progress\n"
	"  -h, --help             show this help\n"
	CLI_TABLE_OPTS_HEADER
	"\n"
	"Exit status: 0 flushed (cache clean), 1 failed, 2 usage error.\n";

#ifdef WC_WITH_FUSE
#define CMD_FUSE cmd_fuse
#else
#define CMD_FUSE NULL	/* listed, but "not available in this build" */
#endif

static const struct cli_cmd cmds[] = {
	{ "format", cmd_format, "format a cache device", format_usage, 0 },
	{ "check", cmd_check, "verify a cache device (exit 0 clean, 1 dirty, 2 corrupt)", check_usage,
	  0 },
	{ "dump", cmd_dump, "print the superblock and the entries", dump_usage, 0 },
	{ "status", cmd_status, "print block counts (offline, or --control for a server)",
	  status_usage, 0 },
	{ "info", cmd_info, "one-screen summary of a cache device (exit 0 clean, 1 dirty)", NULL,
	  0 },
	{ "export", cmd_export, "copy the logical device to a file, read-only", export_usage, 0 },
	/*
	 * --start-sector is among flush's own options, with its -s; fua/nofua
	 * belong to pmem mode, and an offline flush has no mode to choose.
	 */
	{ "flush", cmd_flush, "write all dirty blocks back to the origin", flush_usage,
	  WC_SET_START_SECTOR | WC_SET_FUA | WC_SET_NOFUA },
	/* usage NULL: the command prints its own --help. */
	{ "serve", cmd_serve, "serve ORIGIN CACHE over NBD (nbdkit plugin)", NULL, 0 },
	{ "fuse", CMD_FUSE, "export ORIGIN CACHE as one file through FUSE", NULL, 0 },
	{ "message", cmd_message, "send a message (flush, cleaner, ...) to a running server", NULL,
	  0 },
	{ "metrics", cmd_metrics, "print a running server's metrics (Prometheus text format)",
	  NULL, 0 },
	{ "top", cmd_top, "live view of a running server (dirty, rates, writeback)", NULL, 0 },
};

#define NR_CMDS (sizeof(cmds) / sizeof(cmds[0]))

static void usage(FILE *f)
{
	fputs("Usage: wcache [-v] COMMAND [ARGS...]\n"
	      "       wcache COMMAND --help\n"
	      "       wcache --version\n"
	      "\n"
	      "Userspace dm-writecache: tools for cache devices in the kernel's SSD-mode\n"
	      "format. Arguments go in table order: ORIGIN before CACHE.\n"
	      "\n"
	      "Commands:\n", f);
	for (size_t i = 0; i < NR_CMDS; i++)
		fprintf(f, "  %-9s %s%s\n", cmds[i].name, cmds[i].summary,
			cmds[i].fn ? "" : " (not in this build)");
	fputs("\n"
	      "Global options:\n"
	      "  -v, --verbose   also print the library's informational messages\n"
	      "  -V, --version   print the version and exit\n"
	      "  -h, --help      show this help\n"
	      "-v and -V may also follow COMMAND, except where it has an option of that\n"
	      "name (serve: -v and --verbose are nbdkit's -v).\n"
	      "\n"
	      "See wcache(8).\n", f);
}

static void cli_log(enum wc_log_level level, const char *msg, void *opaque)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	const char *dbg = getenv("WC_DEBUG");
	(void)opaque;

	if (level == WC_LOG_INFO && !cli_verbose && !(dbg && *dbg))
		return;
	if (level == WC_LOG_DEBUG && !(dbg && *dbg))
		return;
	fflush(stdout);
	fprintf(stderr, "wcache: %s: %s\n", names[level > WC_LOG_DEBUG ? WC_LOG_DEBUG : level], msg);
}

static const struct cli_cmd *find_cmd(const char *name)
{
	for (size_t i = 0; i < NR_CMDS; i++) {
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const struct cli_cmd *cmd;
	int i = 1, ret;

	wcache_set_logger(cli_log, NULL);
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			cli_verbose = true;
		} else if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
			cli_version();
			return CLI_EXIT_OK;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return CLI_EXIT_OK;
		} else {
			return cli_usage_error(NULL, "unknown global option '%s'", argv[i]);
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(argv[i], "help")) {
		if (i + 1 >= argc) {
			usage(stdout);
			return CLI_EXIT_OK;
		}
		cmd = find_cmd(argv[i + 1]);
		if (!cmd)
			return cli_usage_error(NULL, "unknown command '%s'", argv[i + 1]);
		if (cmd->usage)
			return cli_help(cmd);
		if (!cmd->fn) {
			cli_error(cmd, "not available in this build");
			return CLI_EXIT_FAIL;
		}
		{
			char help[] = "--help";
			char *hargv[] = { argv[i + 1], help, NULL };

			return cmd->fn(cmd, 2, hargv);
		}
	}
	cmd = find_cmd(argv[i]);
	if (!cmd)
		return cli_usage_error(NULL, "unknown command '%s'", argv[i]);
	if (!cmd->fn) {
		cli_error(cmd, "not available in this build (its frontend was not compiled in)");
		return CLI_EXIT_FAIL;
	}
	ret = cmd->fn(cmd, argc - i, argv + i);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_error(cmd, "error writing to standard output");
		if (ret == CLI_EXIT_OK)
			ret = CLI_EXIT_FAIL;
	}
	return ret;
}
