/* SPDX-License-Identifier: MIT */
/*
 * CLI helpers: messages and usage errors, getopt wrapper, strict number
 * parsing, device size probing. No engine calls and no knowledge of the
 * on-disk format here.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

bool cli_verbose;

__attribute__((format(printf, 3, 0)))
static void vmsg(const struct cli_cmd *cmd, const char *level, const char *fmt, va_list ap)
{
	char msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	fflush(stdout);
	if (cmd)
		fprintf(stderr, "wcache %s: %s%s\n", cmd->name, level, msg);
	else
		fprintf(stderr, "wcache: %s%s\n", level, msg);
}

void cli_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(cmd, "", fmt, ap);
	va_end(ap);
}

void cli_warn(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(cmd, "warning: ", fmt, ap);
	va_end(ap);
}

int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(cmd, "", fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "Try 'wcache %s --help' for more information.\n", cmd->name);
	else
		fprintf(stderr, "Try 'wcache --help' for more information.\n");
	return CLI_EXIT_USAGE;
}

int cli_help(const struct cli_cmd *cmd)
{
	const char *rest = strstr(cmd->usage, CLI_TABLE_OPTS_HEADER);

	if (!rest) {
		fputs(cmd->usage, stdout);
		return CLI_EXIT_OK;
	}
	rest += strlen(CLI_TABLE_OPTS_HEADER);
	fwrite(cmd->usage, 1, (size_t)(rest - cmd->usage), stdout);
	cli_table_help(stdout, cmd->own_table_opts);
	fputs(rest, stdout);
	return CLI_EXIT_OK;
}

void cli_version(void)
{
	printf("wcache %s\n", WC_VERSION);
}

/* getopt values of the global long options (main.c takes them before the command too). */
enum { GLOBAL_VERBOSE = 0x7e00, GLOBAL_VERSION };

#define MAX_LONGOPTS 96

/*
 * A command's options plus the global ones it does not define itself:
 * -v/--verbose, -V/--version. Rebuilt when the command's arrays change.
 */
struct with_globals {
	const char *from_short;
	const struct option *from_long;
	char shortopts[128];
	struct option longopts[MAX_LONGOPTS];
	bool short_v, short_V;		/* -v, -V are the global ones */
};

static bool has_long(const struct option *lo, const char *name)
{
	for (; lo->name; lo++) {
		if (!strcmp(lo->name, name))
			return true;
	}
	return false;
}

static void add_globals(struct with_globals *g, const char *shortopts,
			const struct option *longopts)
{
	size_t n = 0;

	g->from_short = shortopts;
	g->from_long = longopts;
	g->short_v = !strchr(shortopts, 'v');
	g->short_V = !strchr(shortopts, 'V');
	if (strlen(shortopts) + 3 > sizeof(g->shortopts))
		abort();	/* a command with that many options would not fit in its help */
	snprintf(g->shortopts, sizeof(g->shortopts), "%s%s%s", shortopts, g->short_v ? "v" : "",
		 g->short_V ? "V" : "");
	for (; longopts[n].name; n++) {
		if (n + 3 > MAX_LONGOPTS)
			abort();
		g->longopts[n] = longopts[n];
	}
	if (!has_long(longopts, "verbose"))
		g->longopts[n++] = (struct option){ "verbose", no_argument, NULL, GLOBAL_VERBOSE };
	if (!has_long(longopts, "version"))
		g->longopts[n++] = (struct option){ "version", no_argument, NULL, GLOBAL_VERSION };
	g->longopts[n] = (struct option){ NULL, 0, NULL, 0 };
}

int cli_getopt(const struct cli_cmd *cmd, int argc, char **argv, const char *shortopts,
	       const struct option *longopts)
{
	static struct with_globals g;
	int c, before;
	const char *word;

	if (g.from_short != shortopts || g.from_long != longopts)
		add_globals(&g, shortopts, longopts);
	opterr = 0;
	for (;;) {
		before = optind;
		c = getopt_long(argc, argv, g.shortopts, g.longopts, NULL);
		if (c == GLOBAL_VERBOSE || (c == 'v' && g.short_v)) {
			cli_verbose = true;
			continue;
		}
		if (c == GLOBAL_VERSION || (c == 'V' && g.short_V)) {
			cli_version();
			exit(fflush(stdout) ? CLI_EXIT_FAIL : CLI_EXIT_OK);
		}
		break;
	}
	if (c != '?' && c != ':')
		return c;
	/* The offending word: optind has moved past it unless inside "-abc". */
	word = optind > before && optind - 1 < argc ? argv[optind - 1] : argv[before];
	if (c == ':') {
		cli_usage_error(cmd, "option '%s' needs a value", word);
	} else if (strncmp(word, "--", 2) == 0) {
		int len = (int)strcspn(word, "=");

		if (optopt && word[len] == '=')
			cli_usage_error(cmd, "option '%.*s' takes no value", len, word);
		else
			cli_usage_error(cmd, "unknown or ambiguous option '%.*s'", len, word);
	} else {
		cli_usage_error(cmd, "unknown option '-%c'", optopt ? optopt : '?');
	}
	return -2;
}

int cli_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		unsigned d;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int cli_opt_u64(const struct cli_cmd *cmd, const char *opt, const char *s, uint64_t max,
		uint64_t *out)
{
	int ret = cli_parse_u64(s, max, out);

	if (ret == -EINVAL)
		return cli_usage_error(cmd, "%s: '%s' is not an unsigned decimal number", opt, s);
	if (ret == -ERANGE)
		return cli_usage_error(cmd, "%s: %s is out of range (max %llu)", opt, s,
				       (unsigned long long)max);
	return 0;
}

int cli_device_size(const char *path, uint64_t *out, char *why, size_t why_len)
{
	struct stat st;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);	/* a FIFO must not block */
	if (fd < 0) {
		ret = -errno;
		snprintf(why, why_len, "cannot open %s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(why, why_len, "%s: fstat failed: %s", path, strerror(errno));
	} else if (S_ISREG(st.st_mode)) {
		*out = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, out) < 0) {
			ret = -errno;
			snprintf(why, why_len, "%s: cannot get the block device size: %s", path,
				 strerror(errno));
		}
	} else {
		ret = -EINVAL;
		snprintf(why, why_len, "%s is not a regular file or block device", path);
	}
	close(fd);
	return ret;
}

const char *cli_human_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u < 6) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
	else if (v == (double)(uint64_t)v)
		snprintf(buf, len, "%llu %s", (unsigned long long)v, units[u]);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}
