/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target "meta": a cache device image, as a file and as a device.
 *  1. wcache check [--origin], dump [--json] [--all] [--partial] and status [--json] on
 *     it as a file (the CLI's own code, argument parsing included);
 *  2. activation (superblock validation, metadata read, recovery) on it and,
 *     when activation accepts it, up to 8 writes/flushes/discards, a flush,
 *     a clean close and a reopen: what was written and flushed must read
 *     back, and the other bytes of the checked window must not change. An
 *     engine that accepts metadata it then mishandles (wrapping seq_count,
 *     n_blocks that do not fit the device) fails here, not just on a crash.
 * Input: a 40-byte header (struct hdr) and then the image; the device is the
 * image followed by zero bytes up to the header's size, so 64 KiB of kernel
 * metadata stands for a 16 MiB cache. Seeds: make-seeds.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dev.h"
#include "fault.h"
#include "fuzz.h"
#include "testing.h"
#include "wcache.h"

#define NR_OPS		8
#define WINDOW_BYTES	(256u << 10)	/* the region the writes go to and the check reads */

enum {
	F_START_SECTOR = 7u << 0,	/* start_sector 0..7 */
	F_CHECK_ORIGIN = 1u << 3,	/* check --origin */
	F_CLEANER = 1u << 4,		/* activate in cleaner mode: writeback of recovered blocks */
	F_JSON = 1u << 5,		/* dump --json instead of text */
	F_SMALL_CHUNK = 1u << 6,	/* read metadata in 4 KiB chunks in the helper thread */
	F_ALL = 1u << 7,		/* dump --all */
};

struct op {
	uint8_t kind;		/* & 7: 0-3 write, 4 FUA write, 5 flush, 6 discard, 7 zeroes; & 8 unaligned */
	uint8_t sect[2];	/* le16: 512-byte sector in the window */
	uint8_t len;		/* & 15: sectors - 1; >> 4: bytes short when unaligned */
};

struct hdr {
	uint8_t flags;
	uint8_t origin_log;	/* origin = 64 KiB << (origin_log % 11), up to 64 MiB */
	uint8_t size_4k[2];	/* le16: device size in 4 KiB (at most 16 MiB), if above the image's */
	uint8_t window[4];	/* le32: window start, in 4 KiB units modulo the origin */
	struct op ops[NR_OPS];
};
_Static_assert(sizeof(struct hdr) == 40, "the header is 40 bytes");

static void put_file(const char *path, const uint8_t *data, size_t len, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	FUZZ_CHECK(fd >= 0, "%s: %s", path, strerror(errno));
	FUZZ_CHECK(ftruncate(fd, (off_t)size) == 0, "%s: %s", path, strerror(errno));
	FUZZ_CHECK(pwrite(fd, data, len, 0) == (ssize_t)len, "%s: %s", path, strerror(errno));
	close(fd);
}

/* Run a subcommand as main() would, getopt state reset. */
static int run_cmd(int (*fn)(const struct cli_cmd *, int, char **), const char *name,
		   char **argv, int argc)
{
	const struct cli_cmd cmd = { .name = name, .fn = fn };

	optind = 0;
	return fn(&cmd, argc, argv);
}

static void run_cli(const struct hdr *h, const char *cache, const char *origin)
{
	char start[4], checkw[] = "check", dumpw[] = "dump", statusw[] = "status",
	     so[] = "--start-sector",
	     oo[] = "--origin", jo[] = "--json", ao[] = "--all", po[] = "--partial";
	char *argv[9];
	int argc = 0, rc;

	snprintf(start, sizeof(start), "%u", h->flags & F_START_SECTOR);
	argv[argc++] = checkw;
	if (h->flags & F_CHECK_ORIGIN) {
		argv[argc++] = oo;
		argv[argc++] = (char *)origin;
	}
	argv[argc++] = so;
	argv[argc++] = start;
	argv[argc++] = (char *)cache;
	argv[argc] = NULL;
	rc = run_cmd(cmd_check, "check", argv, argc);
	FUZZ_CHECK(rc >= 0 && rc <= 2, "check exit code %d", rc);

	argc = 0;
	argv[argc++] = dumpw;
	if (h->flags & F_JSON)
		argv[argc++] = jo;
	if (h->flags & F_ALL)
		argv[argc++] = ao;
	argv[argc++] = so;
	argv[argc++] = start;
	argv[argc++] = (char *)cache;
	argv[argc] = NULL;
	rc = run_cmd(cmd_dump, "dump", argv, argc);
	FUZZ_CHECK(rc >= 0 && rc <= 2, "dump exit code %d", rc);
	/* The same with --partial: a device shorter than its format is read as far as it goes. */
	argv[argc++] = po;
	argv[argc] = NULL;
	rc = run_cmd(cmd_dump, "dump", argv, argc);
	FUZZ_CHECK(rc >= 0 && rc <= 2, "dump --partial exit code %d", rc);

	argc = 0;
	argv[argc++] = statusw;
	if (h->flags & F_JSON)
		argv[argc++] = jo;
	argv[argc++] = so;
	argv[argc++] = start;
	argv[argc++] = (char *)cache;
	argv[argc] = NULL;
	rc = run_cmd(cmd_status, "status", argv, argc);
	FUZZ_CHECK(rc >= 0 && rc <= 2, "status exit code %d", rc);
	fflush(stdout);
}

static int open_shared(const struct wc_cfg *cfg, struct wc_dev *origin, struct wc_dev *cache,
		       struct wcache **wc)
{
	struct wc_dev *o, *c;

	FUZZ_CHECK(dev_fault_share(origin, &o) == 0, "%s", "dev_fault_share");
	if (dev_fault_share(cache, &c) != 0) {
		dev_close(o);
		FUZZ_CHECK(0, "%s", "dev_fault_share");
	}
	return wc_open_devs(cfg, o, c, wc);
}

struct model {
	uint64_t base;
	size_t len;
	uint8_t *want;		/* expected window content */
	uint8_t *known;		/* 0 where a discard left the content unspecified */
};

/* Apply the header's ops; returns false if any failed (no oracle then). */
static bool run_ops(struct wcache *wc, const struct hdr *h, struct model *m, uint8_t *buf)
{
	bool ok = true;

	for (unsigned i = 0; i < NR_OPS; i++) {
		const struct op *op = &h->ops[i];
		unsigned kind = op->kind & 7, sect = (op->sect[0] | op->sect[1] << 8) % 512u;
		bool unaligned = op->kind & 8;
		uint64_t off = (uint64_t)sect * 512;
		size_t len = ((op->len & 15u) + 1) * 512;
		int ret = 0;

		if (unaligned) {
			off += (op->len * 7u) % 512u;
			len -= op->len >> 4;
		}
		if (off >= m->len)
			continue;
		if (len > m->len - off)
			len = m->len - off;
		if (kind <= 4) {
			for (size_t k = 0; k < len; k++)
				buf[k] = (uint8_t)(i * 37 + k * 13 + (k >> 9) + 1);
			ret = wcache_write(wc, buf, len, m->base + off, kind == 4 ? WC_FUA : 0);
			memcpy(m->want + off, buf, len);
			memset(m->known + off, 1, len);
		} else if (kind == 5) {
			ret = wcache_flush(wc);
		} else if (kind == 6) {
			ret = wcache_discard(wc, len, m->base + off, 0);
			memset(m->known + off, 0, len);
		} else {
			ret = wcache_write_zeroes(wc, len, m->base + off, 0);
			memset(m->want + off, 0, len);
			memset(m->known + off, 1, len);
		}
		if (ret < 0)
			ok = false;
	}
	return ok;
}

static void run_engine(const struct hdr *h, const uint8_t *img, size_t img_len, uint64_t cache_bytes,
		       uint64_t origin_bytes)
{
	struct wc_dev *origin = NULL, *cache = NULL;
	struct wcache *wc = NULL;
	struct model m = { 0 };
	uint8_t *buf = NULL, *got = NULL;
	struct wc_cfg cfg;
	uint64_t win = (uint64_t)(h->window[0] | h->window[1] << 8 | h->window[2] << 16 |
				  (uint32_t)h->window[3] << 24);
	int ret;

	FUZZ_CHECK(dev_fault_open(origin_bytes, &origin) == 0, "%s", "origin");
	FUZZ_CHECK(dev_fault_open(cache_bytes, &cache) == 0, "%s", "cache");
	FUZZ_CHECK(dev_pwrite(cache, img, img_len, 0) == 0, "%s", "cache image");
	FUZZ_CHECK(dev_flush(cache) == 0, "%s", "cache flush");

	wcache_cfg_init(&cfg);
	cfg.block_size = 0;		/* from the superblock */
	cfg.start_sector = h->flags & F_START_SECTOR;
	cfg.format = WC_FORMAT_NO;	/* the image is the input: never replace it */
	cfg.cleaner = h->flags & F_CLEANER;
	cfg.full_wait_ms = 100;
	wc_meta_chunk = h->flags & F_SMALL_CHUNK ? 4096 : 8u << 20;
	ret = open_shared(&cfg, origin, cache, &wc);
	fuzz_note("engine: open: %d %s", ret, ret < 0 ? wcache_last_error() : "");
	if (ret < 0)
		goto out;		/* refused: fine, as long as nothing crashed */

	FUZZ_CHECK(wcache_size(wc) == origin_bytes, "size %llu, origin %llu",
		   (unsigned long long)wcache_size(wc), (unsigned long long)origin_bytes);
	m.base = (win * 4096) % origin_bytes;
	m.len = origin_bytes - m.base < WINDOW_BYTES ? origin_bytes - m.base : WINDOW_BYTES;
	m.want = malloc(m.len);
	m.known = malloc(m.len);
	buf = malloc(16 * 512);
	got = malloc(m.len);
	FUZZ_CHECK(m.want && m.known && buf && got, "%s", "out of memory");
	memset(m.known, 1, m.len);
	if (wcache_read(wc, m.want, m.len, m.base) < 0) {
		wcache_close(wc);
		goto out;	/* e.g. a cache read failed: the error is sticky, nothing to check */
	}
	bool ok = run_ops(wc, h, &m, buf);

	ok = wcache_flush(wc) == 0 && ok;
	ok = wcache_close(wc) == 0 && ok;
	wc = NULL;
	fuzz_note("engine: ops, flush and close %s", ok ? "succeeded" : "failed: not checked");
	if (!ok)
		goto out;

	/* Everything above was flushed and closed cleanly: it must all come back. */
	cfg.cleaner = false;
	ret = open_shared(&cfg, origin, cache, &wc);
	FUZZ_CHECK(ret == 0, "reopen after a clean close: %d %s", ret, wcache_last_error());
	ret = wcache_read(wc, got, m.len, m.base);
	FUZZ_CHECK(ret == 0, "read after reopen: %d %s", ret, wcache_last_error());
	for (size_t k = 0; k < m.len; k++)
		FUZZ_CHECK(!m.known[k] || got[k] == m.want[k],
			   "byte %llu: read 0x%02x after reopen, wrote or read 0x%02x before",
			   (unsigned long long)(m.base + k), got[k], m.want[k]);
	FUZZ_CHECK(wcache_close(wc) == 0, "close after reopen: %s", wcache_last_error());
	fuzz_note("engine: reopened, %zu bytes at %llu as written", m.len,
		  (unsigned long long)m.base);
out:
	free(m.want);
	free(m.known);
	free(buf);
	free(got);
	dev_close(origin);
	dev_close(cache);
}

void fuzz_one(const uint8_t *data, size_t len)
{
	static bool quiet;
	struct hdr h;
	char cache[600], origin[600];
	uint64_t cache_bytes, origin_bytes;

	if (!quiet) {
		fuzz_quiet();
		quiet = true;
	}
	if (len < sizeof(h))
		return;
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	len -= sizeof(h);
	cache_bytes = (uint64_t)(h.size_4k[0] | h.size_4k[1] << 8) % 4097 * 4096;
	if (cache_bytes < len)
		cache_bytes = len;
	origin_bytes = (64u << 10) << (h.origin_log % 11);

	snprintf(cache, sizeof(cache), "%s/cache", fuzz_tmpdir());
	snprintf(origin, sizeof(origin), "%s/origin", fuzz_tmpdir());
	put_file(cache, data, len, cache_bytes);
	put_file(origin, NULL, 0, origin_bytes);
	run_cli(&h, cache, origin);
	if (cache_bytes)
		run_engine(&h, data, len, cache_bytes, origin_bytes);
}
