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

int cli_getopt(const struct cli_cmd *cmd, int argc, char **argv, const char *shortopts,
	       const struct option *longopts)
{
	int c, before = optind;
	const char *word;

	opterr = 0;
	c = getopt_long(argc, argv, shortopts, longopts, NULL);
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

	fd = open(path, O_RDONLY | O_CLOEXEC);
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
