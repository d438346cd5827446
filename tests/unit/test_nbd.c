/* SPDX-License-Identifier: MIT */
/*
 * NBD origin backend against real nbdkit servers on a Unix socket: byte-exact
 * round trips (unaligned, > 32 MiB, advertised block size limits enforced by
 * the server), flush, trim, size, 8 threads, connection errors, server-side
 * errors, read-only, stalls, kill -9 and reconnect (and the "lost unflushed
 * writes" flush failure). Skips without nbdkit or libnbd.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "dev.h"
#include "wcache.h"

#ifndef WC_WITH_NBD
int main(void)
{
	fprintf(stderr, "built without libnbd: skipping\n");
	return 77;
}
#else

#include "nbd_server.h"
#include "rng.h"

static struct nbd_server srv;
static struct rng g_rng = { 42 };

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(nbd_server_stop(&srv, SIGKILL), 0);
	unsetenv("WC_NBD_TIMEOUT_MS");
	return 0;
}

/* Requests of one kind ("Read", "Write", "Trim", "Flush") in the log filter's file. */
struct log_summary {
	unsigned nr;
	uint64_t max_count;
};

static struct log_summary log_scan(const char *kind)
{
	struct log_summary s = { 0, 0 };
	char line[1024], pat[32];
	FILE *f = fopen(srv.log_path, "r");

	assert_non_null(f);
	snprintf(pat, sizeof(pat), " %s id=", kind);
	while (fgets(line, sizeof(line), f)) {
		const char *c;

		if (!strstr(line, pat))
			continue;
		s.nr++;
		c = strstr(line, "count=0x");
		if (c) {
			uint64_t v = strtoull(c + 8, NULL, 16);

			if (v > s.max_count)
				s.max_count = v;
		}
	}
	fclose(f);
	return s;
}

static unsigned log_connections(void)
{
	char line[1024];
	unsigned n = 0;
	FILE *f = fopen(srv.log_path, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, " Connect export=") != NULL;
	fclose(f);
	return n;
}

static void write_both(struct wc_dev *d, uint8_t *shadow, size_t len, uint64_t off, uint64_t seed)
{
	uint8_t *b = malloc(len);

	assert_non_null(b);
	rng_fill(seed, b, len);
	assert_int_equal(dev_pwrite(d, b, len, off), 0);
	memcpy(shadow + off, b, len);
	free(b);
}

static void check_range(struct wc_dev *d, const uint8_t *shadow, size_t len, uint64_t off)
{
	uint8_t *b = malloc(len);

	assert_non_null(b);
	memset(b, 0xee, len);
	assert_int_equal(dev_pread(d, b, len, off), 0);
	assert_memory_equal(b, shadow + off, len);
	free(b);
}

/* ------------------------------------------------------------------ */

static void test_open_errors(void **state)
{
	char bad[400];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct wc_dev *d = NULL;
	int fd;
	(void)state;

	/* No socket at all. */
	snprintf(bad, sizeof(bad), "nbd+unix:///?socket=%s/none.sock", srv.dir);
	assert_true(dev_nbd_open(bad, 0, &d) < 0);
	assert_null(d);
	assert_non_null(strstr(wcache_last_error(), bad));

	/* A socket nobody listens on: connection refused, through dev_open_uri. */
	assert_true(strlen(srv.sock) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, srv.sock, strlen(srv.sock) + 1);
	unlink(srv.sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(dev_open_uri(srv.uri, 0, &d), -ECONNREFUSED);
	assert_non_null(strstr(wcache_last_error(), srv.uri));
	assert_non_null(strstr(wcache_last_error(), "refused"));
	unlink(srv.sock);
}

/* memory plugin, no advertised limits: byte-exact I/O, split at 32 MiB, trim, flush. */
static void test_roundtrip(void **state)
{
	const uint64_t size = 128ull * MiB;
	uint8_t *shadow = calloc(1, size), *z;
	struct log_summary w, r;
	char logarg[400];
	struct wc_dev *d;
	(void)state;

	assert_non_null(shadow);
	snprintf(logarg, sizeof(logarg), "logfile=%s", srv.log_path);
	assert_int_equal(nbd_server_start(&srv, "--filter=log", "memory", "128M", logarg,
					  (char *)NULL),
			 0);
	assert_int_equal(dev_open_uri(srv.uri, 0, &d), 0);
	assert_int_equal(d->size, size);
	assert_string_equal(d->ops->name, "nbd");

	write_both(d, shadow, MiB, 0, 1);
	check_range(d, shadow, MiB, 0);
	write_both(d, shadow, 1000, 12345, 2);			/* unaligned */
	check_range(d, shadow, 5000, 10000);
	write_both(d, shadow, 1, size - 1, 3);			/* last byte */
	check_range(d, shadow, 3, size - 3);
	write_both(d, shadow, 66 * MiB + 5, MiB + 3, 4);	/* > libnbd's 64 MiB limit */
	check_range(d, shadow, 70 * MiB, 0);
	assert_int_equal(dev_flush(d), 0);

	/* memory plugin trims read back as zeros: the exact range was trimmed. */
	assert_int_equal(dev_discard(d, MiB + 100, 4 * MiB + 7), 0);
	memset(shadow + 4 * MiB + 7, 0, MiB + 100);
	z = malloc(MiB + 100);
	assert_int_equal(dev_pread(d, z, MiB + 100, 4 * MiB + 7), 0);
	for (size_t i = 0; i < MiB + 100; i++)
		assert_int_equal(z[i], 0);
	free(z);
	check_range(d, shadow, size, 0);
	dev_close(d);
	/* The log is complete once nbdkit exits. */
	assert_int_equal(nbd_server_stop(&srv, SIGTERM), 0);

	w = log_scan("Write");
	r = log_scan("Read");
	assert_int_equal(w.max_count, 32 * MiB);	/* split at exactly the default cap */
	assert_true(r.max_count <= 32 * MiB);
	assert_true(w.nr >= 4);
	assert_int_equal(log_scan("Trim").nr, 1);
	assert_int_equal(log_scan("Flush").nr, 1);
	assert_int_equal(log_connections(), 4);		/* memory plugin allows multi-conn */
	free(shadow);
}

struct rmw_arg {
	struct wc_dev *d;
	unsigned t;
	int err;
};

#define RMW_THREADS 8
#define RMW_SLICE 500
#define RMW_BLOCKS 64

static void *rmw_worker(void *p)
{
	struct rmw_arg *a = p;
	uint8_t b[RMW_SLICE];

	for (unsigned round = 0; round < 4 && !a->err; round++)
		for (unsigned blk = 0; blk < RMW_BLOCKS && !a->err; blk++) {
			memset(b, (int)(a->t * 16 + round + 1), sizeof(b));
			a->err = dev_pwrite(a->d, b, sizeof(b),
					    (uint64_t)blk * 4096 + a->t * RMW_SLICE);
		}
	return NULL;
}

/* Server enforces min 4096 / max 1 MiB: unaligned I/O is read-modify-written, big I/O split. */
static void test_blocksize_limits(void **state)
{
	const uint64_t size = 16 * MiB;
	uint8_t *shadow = calloc(1, size);
	pthread_t th[RMW_THREADS];
	struct rmw_arg args[RMW_THREADS];
	char logarg[400];
	struct wc_dev *d;
	(void)state;

	snprintf(logarg, sizeof(logarg), "logfile=%s", srv.log_path);
	assert_int_equal(nbd_server_start(&srv, "--filter=log", "--filter=blocksize-policy",
					  "memory", "16M", "blocksize-minimum=4096",
					  "blocksize-maximum=1M", "blocksize-error-policy=error",
					  logarg, (char *)NULL),
			 0);
	assert_int_equal(dev_nbd_open(srv.uri, 0, &d), 0);
	assert_int_equal(d->logical_block, 4096);
	for (unsigned i = 0; i < 300; i++) {
		uint64_t len = 1 + rng_next(&g_rng) % (i % 10 == 0 ? 3 * MiB : 20000);
		uint64_t off = rng_next(&g_rng) % (size - len);

		switch (rng_next(&g_rng) % 4) {
		case 0:
		case 1:
			write_both(d, shadow, len, off, i + 100);
			break;
		case 2:
			check_range(d, shadow, len, off);
			break;
		case 3: {
			/* Only the whole 4 KiB blocks inside the range are trimmed (to zero). */
			uint64_t s = (off + 4095) & ~4095ull, e = (off + len) & ~4095ull;

			assert_int_equal(dev_discard(d, len, off), 0);
			if (e > s)
				memset(shadow + s, 0, e - s);
			break;
		}
		}
	}
	assert_int_equal(dev_flush(d), 0);
	check_range(d, shadow, size, 0);

	/* Concurrent partial writes into the same 4 KiB blocks must not undo each other. */
	for (unsigned t = 0; t < RMW_THREADS; t++) {
		args[t] = (struct rmw_arg){ .d = d, .t = t };
		assert_int_equal(pthread_create(&th[t], NULL, rmw_worker, &args[t]), 0);
	}
	for (unsigned t = 0; t < RMW_THREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(args[t].err, 0);
		for (unsigned blk = 0; blk < RMW_BLOCKS; blk++)
			memset(shadow + blk * 4096 + t * RMW_SLICE, (int)(t * 16 + 4), RMW_SLICE);
	}
	check_range(d, shadow, RMW_BLOCKS * 4096, 0);
	dev_close(d);
	assert_int_equal(nbd_server_stop(&srv, SIGTERM), 0);
	assert_int_equal(log_scan("Write").max_count, MiB);
	assert_true(log_scan("Read").max_count <= MiB);
	free(shadow);
}

struct conc_arg {
	struct wc_dev *d;
	unsigned t;
	int err;
	unsigned mismatches;
};

#define CONC_THREADS 8
#define CONC_REGION (8 * MiB)

static void *conc_worker(void *p)
{
	struct conc_arg *a = p;
	uint8_t *shadow = calloc(1, CONC_REGION), *b = malloc(256 * 1024);
	uint64_t base = (uint64_t)a->t * CONC_REGION, x = a->t + 1;

	for (unsigned i = 0; i < 200 && !a->err; i++) {
		uint64_t len, off;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		len = 1 + (x >> 33) % (256 * 1024);
		off = (x >> 13) % (CONC_REGION - len);
		if (i % 3 == 0) {
			a->err = dev_pread(a->d, b, len, base + off);
			if (!a->err && memcmp(b, shadow + off, len))
				a->mismatches++;
		} else {
			rng_fill(x, b, len);
			a->err = dev_pwrite(a->d, b, len, base + off);
			memcpy(shadow + off, b, len);
		}
		if (!a->err && i % 50 == 49)
			a->err = dev_flush(a->d);
	}
	if (!a->err) {
		uint8_t *all = malloc(CONC_REGION);

		a->err = dev_pread(a->d, all, CONC_REGION, base);
		if (!a->err && memcmp(all, shadow, CONC_REGION))
			a->mismatches++;
		free(all);
	}
	free(b);
	free(shadow);
	return NULL;
}

static void run_concurrent(unsigned want_conns, const char *filter, const char *mode)
{
	pthread_t th[CONC_THREADS];
	struct conc_arg args[CONC_THREADS];
	char logarg[400];
	struct wc_dev *d;

	snprintf(logarg, sizeof(logarg), "logfile=%s", srv.log_path);
	assert_int_equal(nbd_server_start(&srv, "--filter=log", filter, "memory", "64M", logarg,
					  mode, (char *)NULL),
			 0);
	assert_int_equal(dev_nbd_open(srv.uri, 0, &d), 0);
	for (unsigned t = 0; t < CONC_THREADS; t++) {
		args[t] = (struct conc_arg){ .d = d, .t = t };
		assert_int_equal(pthread_create(&th[t], NULL, conc_worker, &args[t]), 0);
	}
	for (unsigned t = 0; t < CONC_THREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(args[t].err, 0);
		assert_int_equal(args[t].mismatches, 0);
	}
	dev_close(d);
	assert_int_equal(nbd_server_stop(&srv, SIGTERM), 0);
	assert_int_equal(log_connections(), want_conns);
}

static void test_concurrent(void **state)
{
	(void)state;
	run_concurrent(4, "--filter=nofilter", NULL);
	run_concurrent(1, "--filter=multi-conn", "multi-conn-mode=disable");
}

static void test_server_errors(void **state)
{
	uint8_t b[4096] = { 1 };
	struct wc_dev *d;
	(void)state;

	assert_int_equal(nbd_server_start(&srv, "--filter=error", "memory", "16M",
					  "error-pwrite-rate=100%", (char *)NULL),
			 0);
	assert_int_equal(dev_nbd_open(srv.uri, 0, &d), 0);
	assert_int_equal(dev_pwrite(d, b, sizeof(b), 0), -EIO);
	assert_non_null(strstr(wcache_last_error(), srv.uri));
	/* A server error is not a lost connection: reads still work, no reconnect. */
	assert_int_equal(dev_pread(d, b, sizeof(b), 0), 0);
	assert_int_equal(b[0], 0);
	assert_int_equal(dev_flush(d), 0);
	dev_close(d);
}

static void test_read_only(void **state)
{
	uint8_t b[512] = { 0 };
	struct wc_dev *d;
	(void)state;

	assert_int_equal(nbd_server_start(&srv, "memory", "16M", (char *)NULL), 0);
	assert_int_equal(dev_nbd_open(srv.uri, DEV_RDONLY, &d), 0);
	assert_int_equal(dev_pwrite(d, b, sizeof(b), 0), -EROFS);
	assert_int_equal(dev_discard(d, 4096, 0), -EROFS);
	assert_int_equal(dev_pread(d, b, sizeof(b), 0), 0);
	dev_close(d);
	assert_int_equal(nbd_server_stop(&srv, SIGTERM), 0);

	assert_int_equal(nbd_server_start(&srv, "-r", "memory", "16M", (char *)NULL), 0);
	assert_int_equal(dev_nbd_open(srv.uri, 0, &d), -EROFS);
	assert_int_equal(dev_nbd_open(srv.uri, DEV_RDONLY, &d), 0);
	assert_int_equal(dev_pread(d, b, sizeof(b), 0), 0);
	dev_close(d);
}

/* A server that stops answering fails the request after the timeout instead of hanging. */
static void test_stall_timeout(void **state)
{
	uint8_t b[4096];
	struct wc_dev *d;
	uint64_t t0;
	(void)state;

	setenv("WC_NBD_TIMEOUT_MS", "1000", 1);
	assert_int_equal(nbd_server_start(&srv, "--filter=delay", "memory", "16M", "delay-read=5",
					  (char *)NULL),
			 0);
	assert_int_equal(dev_nbd_open(srv.uri, 0, &d), 0);
	t0 = now_ms();
	assert_int_equal(dev_pread(d, b, sizeof(b), 0), -EIO);
	assert_true(now_ms() - t0 < 4000);
	assert_non_null(strstr(wcache_last_error(), "stopped responding"));
	/* Writes are not delayed: the next call reconnects and works. */
	assert_int_equal(dev_pwrite(d, b, sizeof(b), 0), 0);
	dev_close(d);
}

/* Retry op until it succeeds; fail the test after deadline_ms. */
static int retry_read(struct wc_dev *d, void *b, size_t len, uint64_t off, uint64_t deadline_ms)
{
	uint64_t end = now_ms() + deadline_ms;
	int ret;

	while ((ret = dev_pread(d, b, len, off)) != 0 && now_ms() < end)
		sleep_ms(20);
	return ret;
}

static void test_kill_and_reconnect(void **state)
{
	const uint64_t size = 64 * MiB;
	char origin[320];
	uint8_t *shadow = calloc(1, size), *b = malloc(MiB), *f = malloc(MiB);
	struct wc_dev *d;
	uint64_t t0;
	int fails = 0;
	(void)state;

	assert_int_equal(nbd_server_path(&srv, "origin.img", origin, sizeof(origin)), 0);
	assert_int_equal(make_zero_file(origin, size), 0);
	assert_int_equal(nbd_server_start(&srv, "file", origin, (char *)NULL), 0);
	assert_int_equal(dev_nbd_open(srv.uri, 0, &d), 0);
	write_both(d, shadow, MiB, 0, 11);
	assert_int_equal(dev_flush(d), 0);

	assert_int_equal(nbd_server_stop(&srv, SIGKILL), 0);
	/* Calls fail promptly (no hang), with the URI in the message. */
	t0 = now_ms();
	for (unsigned i = 0; i < 20; i++) {
		int ret = dev_pread(d, b, 4096, 0);

		assert_true(ret < 0);
		fails += ret == -EIO;
	}
	assert_int_equal(fails, 20);
	assert_int_equal(dev_pwrite(d, b, 4096, 0), -EIO);
	assert_int_equal(dev_flush(d), -EIO);
	assert_non_null(strstr(wcache_last_error(), srv.uri));
	assert_true(now_ms() - t0 < 5000);

	/* Same socket, same file: the device reconnects within the 5 s backoff cap. */
	assert_int_equal(nbd_server_start(&srv, "file", origin, (char *)NULL), 0);
	t0 = now_ms();
	assert_int_equal(retry_read(d, b, MiB, 0, 15000), 0);
	assert_true(now_ms() - t0 < 7000);
	assert_memory_equal(b, shadow, MiB);
	write_both(d, shadow, MiB, 5 * MiB + 1, 12);
	assert_int_equal(dev_flush(d), 0);
	assert_int_equal(read_plain(origin, f, MiB, 5 * MiB + 1), 0);
	assert_memory_equal(f, shadow + 5 * MiB + 1, MiB);

	/*
	 * A write acknowledged by a server that then died was never flushed:
	 * the first flush after reconnecting reports it, once.
	 */
	write_both(d, shadow, 4096, 8 * MiB, 13);
	assert_int_equal(nbd_server_stop(&srv, SIGKILL), 0);
	assert_int_equal(nbd_server_start(&srv, "file", origin, (char *)NULL), 0);
	assert_int_equal(retry_read(d, b, 4096, 8 * MiB, 15000), 0);
	assert_int_equal(dev_flush(d), -EIO);
	assert_non_null(strstr(wcache_last_error(), "before earlier writes were flushed"));
	assert_int_equal(dev_flush(d), 0);
	check_range(d, shadow, 16 * MiB, 0);
	dev_close(d);
	free(shadow);
	free(b);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_open_errors, teardown),
		cmocka_unit_test_teardown(test_roundtrip, teardown),
		cmocka_unit_test_teardown(test_blocksize_limits, teardown),
		cmocka_unit_test_teardown(test_concurrent, teardown),
		cmocka_unit_test_teardown(test_server_errors, teardown),
		cmocka_unit_test_teardown(test_read_only, teardown),
		cmocka_unit_test_teardown(test_stall_timeout, teardown),
		cmocka_unit_test_teardown(test_kill_and_reconnect, teardown),
	};
	int ret;

	if (!nbdkit_available()) {
		fprintf(stderr, "nbdkit not found: skipping\n");
		return 77;
	}
	if (nbd_server_setup(&srv, "test-nbd"))
		return 1;
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	nbd_server_cleanup(&srv);
	return ret;
}
#endif /* WC_WITH_NBD */
