/* SPDX-License-Identifier: MIT */
/*
 * The engine with an NBD origin (origin_path = nbd+unix URI, file cache):
 * "flush" writes back to the nbdkit server's file; killing the server during
 * writeback leaves the blocks dirty with the error shown in the stats; after
 * a restart a later "flush" succeeds. Skips without nbdkit or libnbd.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

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

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(nbd_server_stop(&srv, SIGKILL), 0);
	return 0;
}

struct msg_arg {
	struct wcache *wc;
	int ret;
};

static void *flush_msg(void *p)
{
	struct msg_arg *a = p;

	a->ret = wcache_message(a->wc, "flush");
	return NULL;
}

/*
 * The engine with an NBD origin: "flush" writes back to the server's file; a
 * server killed during writeback leaves the blocks dirty in the cache with an
 * error shown; after a restart a later "flush" succeeds.
 */
static void test_engine_origin_outage(void **state)
{
	const uint64_t size = 64 * MiB;
	char origin[320], cache[320];
	uint8_t *a = malloc(4 * MiB), *f = malloc(4 * MiB);
	struct wc_stats st;
	struct wc_cfg cfg;
	struct wcache *wc;
	struct msg_arg m;
	pthread_t th;
	uint64_t end;
	int ret;
	(void)state;

	assert_int_equal(nbd_server_path(&srv, "engine-origin.img", origin, sizeof(origin)), 0);
	assert_int_equal(nbd_server_path(&srv, "engine-cache.img", cache, sizeof(cache)), 0);
	assert_int_equal(make_zero_file(origin, size), 0);
	assert_int_equal(make_zero_file(cache, 32 * MiB), 0);
	assert_int_equal(nbd_server_start(&srv, "--filter=delay", "file", origin,
					  "delay-write=300ms", (char *)NULL),
			 0);
	wcache_cfg_init(&cfg);
	snprintf(cfg.origin_path, sizeof(cfg.origin_path), "%s", srv.uri);
	snprintf(cfg.cache_path, sizeof(cfg.cache_path), "%s", cache);
	cfg.block_size = 4096;
	assert_int_equal(wcache_open(&cfg, &wc), 0);
	assert_int_equal(wcache_size(wc), size);

	rng_fill(21, a, MiB);
	assert_int_equal(wcache_write(wc, a, MiB, 3 * MiB, 0), 0);
	assert_int_equal(wcache_message(wc, "flush"), 0);
	assert_int_equal(read_plain(origin, f, MiB, 3 * MiB), 0);
	assert_memory_equal(f, a, MiB);

	/* 4 MiB dirty, written back slowly; kill the server in the middle. */
	rng_fill(22, a, 4 * MiB);
	assert_int_equal(wcache_write(wc, a, 4 * MiB, 20 * MiB, 0), 0);
	m = (struct msg_arg){ .wc = wc };
	assert_int_equal(pthread_create(&th, NULL, flush_msg, &m), 0);
	sleep_ms(150);
	assert_int_equal(nbd_server_stop(&srv, SIGKILL), 0);
	pthread_join(th, NULL);
	assert_true(m.ret < 0);
	wcache_get_stats(wc, &st);
	assert_true(st.error != 0);
	assert_true(st.dirty_blocks >= 1024);
	/* Still readable from the cache while the origin is down. */
	assert_int_equal(wcache_read(wc, f, 4 * MiB, 20 * MiB), 0);
	assert_memory_equal(f, a, 4 * MiB);

	assert_int_equal(nbd_server_start(&srv, "file", origin, (char *)NULL), 0);
	end = now_ms() + 40000;
	while ((ret = wcache_message(wc, "flush")) != 0 && now_ms() < end)
		sleep_ms(200);
	assert_int_equal(ret, 0);
	wcache_get_stats(wc, &st);
	assert_int_equal(st.error, 0);
	assert_int_equal(st.dirty_blocks, 0);
	assert_int_equal(read_plain(origin, f, 4 * MiB, 20 * MiB), 0);
	assert_memory_equal(f, a, 4 * MiB);
	assert_int_equal(wcache_close(wc), 0);
	free(a);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_engine_origin_outage, teardown),
	};
	int ret;

	if (!nbdkit_available()) {
		fprintf(stderr, "nbdkit not found: skipping\n");
		return 77;
	}
	if (nbd_server_setup(&srv, "test-nbd-engine"))
		return 1;
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	nbd_server_cleanup(&srv);
	return ret;
}
#endif /* WC_WITH_NBD */
