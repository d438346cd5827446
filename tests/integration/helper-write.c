/* SPDX-License-Identifier: MIT */
/*
 * wctest-write: put known data into a cache through the public API, for the
 * CLI tests. Activates ORIGIN + CACHE (never formats; no writeback: high and
 * low watermark 100), writes each FILE at byte OFFSET through the cache, then
 * wcache_flush() (commit) and close. The data stays dirty in the cache.
 *
 * Usage: wctest-write [-s START_SECTOR] ORIGIN CACHE OFFSET:FILE...
 * Exit: 0 done, 1 an API call failed (message on stderr), 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wcache.h"

static int usage(void)
{
	fprintf(stderr, "usage: wctest-write [-s START_SECTOR] ORIGIN CACHE OFFSET:FILE...\n");
	return 2;
}

static int read_file(const char *path, unsigned char **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return -EIO;
	}
	*buf = malloc(n ? (size_t)n : 1);
	if (!*buf || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
		free(*buf);
		fclose(f);
		return -EIO;
	}
	*len = (size_t)n;
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	struct wc_cfg cfg;
	struct wcache *wc;
	int i = 1, ret, rc = 0;

	wcache_cfg_init(&cfg);
	cfg.block_size = 0;
	cfg.format = WC_FORMAT_NO;
	if (i + 1 < argc && !strcmp(argv[i], "-s")) {
		char *end;

		cfg.start_sector = strtoull(argv[i + 1], &end, 10);
		if (*end)
			return usage();
		i += 2;
	}
	if (argc - i < 3)
		return usage();
	snprintf(cfg.origin_path, sizeof(cfg.origin_path), "%s", argv[i]);
	snprintf(cfg.cache_path, sizeof(cfg.cache_path), "%s", argv[i + 1]);
	if (wcache_cfg_set(&cfg, "high_watermark", "100") ||
	    wcache_cfg_set(&cfg, "low_watermark", "100") ||
	    wcache_cfg_set(&cfg, "autocommit_time", "3600000")) {
		fprintf(stderr, "wctest-write: %s\n", wcache_last_error());
		return 1;
	}
	for (int k = i + 2; k < argc; k++) {
		char *colon = strchr(argv[k], ':'), *end;

		if (!colon || (strtoull(argv[k], &end, 10), end != colon))
			return usage();
	}
	ret = wcache_open(&cfg, &wc);
	if (ret) {
		fprintf(stderr, "wctest-write: open: %s\n", wcache_last_error());
		return 1;
	}
	for (i += 2; i < argc && !rc; i++) {
		char *colon = strchr(argv[i], ':'), *end;
		unsigned long long off;
		unsigned char *buf = NULL;
		size_t len = 0;

		off = strtoull(argv[i], &end, 10);	/* checked above */
		ret = read_file(colon + 1, &buf, &len);
		if (ret) {
			fprintf(stderr, "wctest-write: %s: %s\n", colon + 1, strerror(-ret));
			rc = 1;
			break;
		}
		ret = wcache_write(wc, buf, len, off, 0);
		if (ret) {
			fprintf(stderr, "wctest-write: write %zu at %llu: %s\n", len, off,
				wcache_last_error());
			rc = 1;
		}
		free(buf);
	}
	if (!rc && wcache_flush(wc)) {
		fprintf(stderr, "wctest-write: flush: %s\n", wcache_last_error());
		rc = 1;
	}
	if (wcache_close(wc)) {
		fprintf(stderr, "wctest-write: close: %s\n", wcache_last_error());
		rc = 1;
	}
	return rc;
}
