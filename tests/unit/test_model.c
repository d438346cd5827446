/* SPDX-License-Identifier: MIT */
/*
 * Model-based random test of the whole engine against an in-memory
 * reference: four writer threads, each owning a byte range whose ends are
 * not block aligned (so writers share blocks), issue aligned and unaligned
 * writes of 1 byte .. 64 KiB (the origin's last block is partial), FUA
 * writes, write-zeroes, discards, flushes, flush messages and reopens;
 * two reader threads read anywhere. A small cache with low watermarks makes
 * writeback, write-around and waiting for space happen all the time. Every
 * read must match the reference; discarded bytes are unknown until
 * rewritten. After each round the cache is drained and the origin itself
 * must hold the reference.
 *
 * WC_MODEL_SEED=n replays the operation streams (thread timing varies);
 * WC_MODEL_OPS scales the operations per writer and round.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "wcache.h"
#include "dev.h"
#include "fault.h"
#include "rng.h"
#include "testing.h"

#define NWRITERS 4
#define NREADERS 2
#define MAX_IO (64u << 10)
#define BIG_IO (1536u << 10)	/* rare big requests: many runs and segments per call */

/* The model's own seeding (+ 7): WC_MODEL_SEED replays the same streams as before. */
static void rfill(uint64_t seed, uint8_t *p, size_t n)
{
	struct rng r = { seed * 0x2545f4914f6cdd1dull + 7 };

	rng_bytes(&r, p, n);
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

struct model {
	struct wc_dev *origin, *cache;	/* test's handles on the fault stores */
	const char *pmem_path;		/* cache on dev_pmem_open(this file) instead */
	struct wcache *wc;
	uint32_t bs;
	uint64_t size;
	const char *opts;
	uint8_t *ref;			/* expected contents */
	uint8_t *known;			/* 0 after a discard, until rewritten */
	uint64_t bounds[NWRITERS + 1];	/* coarse: writer i owns [bounds[i], bounds[i+1]) */
	uint64_t piece;			/* fine: writer i owns pieces p of this size, p % 4 == i */
	pthread_rwlock_t world;		/* ops shared, reopen exclusive */
	pthread_rwlock_t region[NWRITERS];
	uint64_t seed, ops;
	atomic_bool stop;
	pthread_mutex_t fail_lock;
	char fail[512];
	atomic_uint_fast64_t nr[16];
};

enum { C_WRITE, C_FUA, C_ZERO, C_DISCARD, C_FLUSH, C_MSG, C_REOPEN, C_READ, C_OWNREAD };

__attribute__((format(printf, 2, 3)))
static void failf(struct model *m, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&m->fail_lock);
	if (!m->fail[0]) {
		va_start(ap, fmt);
		vsnprintf(m->fail, sizeof(m->fail), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&m->fail_lock);
	atomic_store(&m->stop, true);
}

static int open_cache(struct model *m)
{
	struct wc_cfg cfg;
	struct wc_dev *o, *c;
	char buf[256], *save, *tok;

	wcache_cfg_init(&cfg);
	cfg.block_size = m->bs;
	cfg.full_wait_ms = 20000;
	snprintf(buf, sizeof(buf), "%s", m->opts);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		assert_int_equal(wcache_cfg_set(&cfg, tok, strtok_r(NULL, " ", &save)), 0);
	assert_int_equal(dev_fault_share(m->origin, &o), 0);
#ifdef WC_WITH_PMEM
	if (m->pmem_path) {
		/* The real mapped device of pmem mode, on a tmpfs file. */
		int ret = dev_pmem_open(m->pmem_path, DEV_EXCL, &c);

		if (ret) {
			dev_close(o);
			return ret;
		}
		return wc_open_devs(&cfg, o, c, &m->wc);
	}
#endif
	assert_int_equal(dev_fault_share(m->cache, &c), 0);
	return wc_open_devs(&cfg, o, c, &m->wc);
}

/* Compare buf (read at off) with the known bytes of the reference. */
static bool check(struct model *m, const uint8_t *buf, uint64_t len, uint64_t off, const char *what)
{
	for (uint64_t i = 0; i < len; i++) {
		if (m->known[off + i] && buf[i] != m->ref[off + i]) {
			uint64_t j = i;

			while (j < len && m->known[off + j] && buf[j] != m->ref[off + j])
				j++;
			failf(m, "%s of %" PRIu64 " bytes at %" PRIu64 ": byte %" PRIu64 " (block %" PRIu64
			      ", +%" PRIu64 ") is %02x, expected %02x (%" PRIu64 " bad bytes in a row)",
			      what, len, off, off + i, (off + i) / m->bs, (off + i) % m->bs, buf[i],
			      m->ref[off + i], j - i);
			return false;
		}
	}
	return true;
}

/* A range inside [lo, hi): aligned to the block or not, 1 byte .. 64 KiB. */
static void pick_range(struct model *m, struct rng *g, uint64_t lo, uint64_t hi, uint64_t *off,
		       uint64_t *len)
{
	static const uint64_t caps[] = { 16, 700, 4096, 3 * 4096, MAX_IO };
	uint64_t cap = rng_range(g, 0, 99) < 2 ? BIG_IO : caps[rng_range(g, 0, 4)];
	uint64_t n = rng_range(g, 1, cap < hi - lo ? cap : hi - lo);
	uint64_t o = rng_range(g, lo, hi - n);

	if (rng_range(g, 0, 99) < 35) {
		/* Block aligned (when the block fits in the range). */
		uint64_t a = (o + m->bs - 1) / m->bs * m->bs;
		uint64_t l = n / m->bs * m->bs;

		if (l && a + l <= hi) {
			o = a;
			n = l;
		}
	}
	if (hi == m->size && rng_range(g, 0, 99) < 8) {
		/* The partial last block. */
		uint64_t lb = (m->size - 1) / m->bs * m->bs;

		if (lb >= lo) {
			o = rng_range(g, lb, m->size - 1);
			n = rng_range(g, 1, m->size - o);
		}
	}
	*off = o;
	*len = n;
}

/* The byte range of one ownership unit of writer idx. */
static void writer_span(struct model *m, struct rng *g, unsigned idx, uint64_t *lo, uint64_t *hi)
{
	if (m->piece) {
		uint64_t np = (m->size + m->piece - 1) / m->piece;
		uint64_t cnt = (np + NWRITERS - 1 - idx) / NWRITERS;
		uint64_t p;

		/* Mostly a hot window of a few pieces, so writers collide in blocks. */
		if (cnt > 3 && rng_range(g, 0, 99) < 70)
			cnt = 3;
		p = idx + NWRITERS * rng_range(g, 0, cnt - 1);

		*lo = p * m->piece;
		*hi = *lo + m->piece < m->size ? *lo + m->piece : m->size;
	} else {
		*lo = m->bounds[idx];
		*hi = m->bounds[idx + 1];
	}
}

/* Which writers own bytes of [off, off + len): bit mask. */
static unsigned owners(const struct model *m, uint64_t off, uint64_t len)
{
	unsigned mask = 0;

	if (m->piece) {
		for (uint64_t p = off / m->piece; p <= (off + len - 1) / m->piece && mask != 15; p++)
			mask |= 1u << (p % NWRITERS);
		return mask;
	}
	for (unsigned i = 0; i < NWRITERS; i++)
		if (m->bounds[i] < off + len && off < m->bounds[i + 1])
			mask |= 1u << i;
	return mask;
}

struct worker {
	pthread_t th;
	struct model *m;
	unsigned idx;
};

static void do_reopen(struct model *m)
{
	uint8_t *buf;
	int ret;

	pthread_rwlock_wrlock(&m->world);
	ret = wcache_close(m->wc);
	m->wc = NULL;
	if (ret) {
		failf(m, "close returned %d: %s", ret, wcache_last_error());
		goto out;
	}
	ret = open_cache(m);
	if (ret) {
		failf(m, "reopen returned %d: %s", ret, wcache_last_error());
		goto out;
	}
	buf = malloc(m->size);
	ret = wcache_read(m->wc, buf, m->size, 0);
	if (ret)
		failf(m, "read after reopen: %d", ret);
	else
		check(m, buf, m->size, 0, "read of everything after reopen");
	free(buf);
out:
	pthread_rwlock_unlock(&m->world);
}

static void *writer_main(void *arg)
{
	struct worker *w = arg;
	struct model *m = w->m;
	struct rng g = { m->seed * 1000 + w->idx };
	uint8_t *buf = malloc(BIG_IO), *rbuf = malloc(BIG_IO);

	for (uint64_t k = 0; k < m->ops && !atomic_load(&m->stop); k++) {
		unsigned p = (unsigned)rng_range(&g, 0, 999), op;
		uint64_t off, len, lo, hi;
		int ret = 0;

		op = p < 420 ? C_WRITE : p < 500 ? C_FUA : p < 550 ? C_ZERO : p < 600 ? C_DISCARD :
		     p < 680 ? C_FLUSH : p < 690 ? C_MSG : p < 693 ? C_REOPEN : C_OWNREAD;
		atomic_fetch_add(&m->nr[op], 1);
		if (op == C_REOPEN) {
			do_reopen(m);
			continue;
		}
		writer_span(m, &g, w->idx, &lo, &hi);
		pick_range(m, &g, lo, hi, &off, &len);
		pthread_rwlock_rdlock(&m->world);
		if (!m->wc) {
			pthread_rwlock_unlock(&m->world);
			break;
		}
		pthread_rwlock_wrlock(&m->region[w->idx]);
		switch (op) {
		case C_WRITE:
		case C_FUA:
			rfill(rng_next(&g), buf, len);
			ret = wcache_write(m->wc, buf, len, off, op == C_FUA ? WC_FUA : 0);
			if (!ret) {
				memcpy(m->ref + off, buf, len);
				memset(m->known + off, 1, len);
			}
			break;
		case C_ZERO:
			ret = wcache_write_zeroes(m->wc, len, off, rng_range(&g, 0, 3) ? 0 : WC_FUA);
			if (!ret) {
				memset(m->ref + off, 0, len);
				memset(m->known + off, 1, len);
			}
			break;
		case C_DISCARD:
			ret = wcache_discard(m->wc, len, off, 0);
			memset(m->known + off, 0, len);
			break;
		case C_FLUSH:
			ret = wcache_flush(m->wc);
			break;
		case C_MSG:
			ret = wcache_message(m->wc, "flush");
			break;
		case C_OWNREAD:
			ret = wcache_read(m->wc, rbuf, len, off);
			if (!ret)
				check(m, rbuf, len, off, "writer read");
			break;
		}
		pthread_rwlock_unlock(&m->region[w->idx]);
		pthread_rwlock_unlock(&m->world);
		if (ret)
			failf(m, "writer %u: op %u (%" PRIu64 " bytes at %" PRIu64 ") returned %d: %s", w->idx,
			      op, len, off, ret, wcache_last_error());
	}
	free(buf);
	free(rbuf);
	return NULL;
}

static void *reader_main(void *arg)
{
	struct worker *w = arg;
	struct model *m = w->m;
	struct rng g = { m->seed * 1000 + 100 + w->idx };
	uint8_t *buf = malloc(BIG_IO + MAX_IO);

	while (!atomic_load(&m->stop)) {
		uint64_t off, len;
		unsigned mask;
		int ret;

		if (m->piece && rng_range(&g, 0, 99) < 80) {
			uint64_t lo, hi;

			/* Mostly one piece, so readers do not serialise the writers. */
			writer_span(m, &g, (unsigned)rng_range(&g, 0, NWRITERS - 1), &lo, &hi);
			pick_range(m, &g, lo, hi, &off, &len);
		} else {
			pick_range(m, &g, 0, m->size, &off, &len);
		}
		if (!m->piece && rng_range(&g, 0, 3) == 0 && off + len < m->size)
			len += rng_range(&g, 0, m->size - off - len < MAX_IO ? m->size - off - len : MAX_IO);
		mask = owners(m, off, len);
		pthread_rwlock_rdlock(&m->world);
		if (!m->wc) {
			pthread_rwlock_unlock(&m->world);
			break;
		}
		for (unsigned i = 0; i < NWRITERS; i++)
			if (mask & (1u << i))
				pthread_rwlock_rdlock(&m->region[i]);
		ret = wcache_read(m->wc, buf, len, off);
		if (ret)
			failf(m, "reader: read of %" PRIu64 " at %" PRIu64 " returned %d", len, off, ret);
		else
			check(m, buf, len, off, "reader read");
		for (unsigned i = 0; i < NWRITERS; i++)
			if (mask & (1u << i))
				pthread_rwlock_unlock(&m->region[i]);
		pthread_rwlock_unlock(&m->world);
		atomic_fetch_add(&m->nr[C_READ], 1);
	}
	free(buf);
	return NULL;
}

static const char *g_pmem_path;	/* run_round: the cache on this file, mapped */

static void run_round(uint32_t bs, uint64_t size, uint64_t piece, uint64_t cache_bytes,
		      const char *opts, uint64_t seed, uint64_t ops)
{
	struct model m;
	struct worker wr[NWRITERS], rd[NREADERS];
	struct wc_stats st;
	uint8_t *buf;
	const uint8_t *dur;

	memset(&m, 0, sizeof(m));
	m.bs = bs;
	m.size = size;
	m.opts = opts;
	m.pmem_path = g_pmem_path;
	m.seed = seed;
	m.ops = ops;
	m.piece = piece;
	m.ref = malloc(size);
	m.known = malloc(size);
	buf = malloc(size);
	assert_non_null(m.ref);
	assert_non_null(buf);
	memset(m.known, 1, size);
	rfill(seed, m.ref, size);
	{
		pthread_rwlockattr_t a;

		/* Reopen must not starve behind the readers. */
		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&m.world, &a);
		pthread_rwlockattr_destroy(&a);
	}
	pthread_mutex_init(&m.fail_lock, NULL);
	for (unsigned i = 0; i < NWRITERS; i++) {
		pthread_rwlock_init(&m.region[i], NULL);
		/* Region ends inside blocks, at odd byte offsets. */
		m.bounds[i] = i ? size / NWRITERS * i - 333 * i : 0;
	}
	m.bounds[NWRITERS] = size;
	assert_int_equal(dev_fault_open(size, &m.origin), 0);
	assert_int_equal(dev_fault_open(cache_bytes, &m.cache), 0);
	assert_int_equal(dev_pwrite(m.origin, m.ref, size, 0), 0);
	assert_int_equal(dev_flush(m.origin), 0);
	assert_int_equal(open_cache(&m), 0);

	for (unsigned i = 0; i < NWRITERS; i++) {
		wr[i] = (struct worker){ .m = &m, .idx = i };
		assert_int_equal(pthread_create(&wr[i].th, NULL, writer_main, &wr[i]), 0);
	}
	for (unsigned i = 0; i < NREADERS; i++) {
		rd[i] = (struct worker){ .m = &m, .idx = i };
		assert_int_equal(pthread_create(&rd[i].th, NULL, reader_main, &rd[i]), 0);
	}
	for (unsigned i = 0; i < NWRITERS; i++)
		pthread_join(wr[i].th, NULL);
	atomic_store(&m.stop, true);
	for (unsigned i = 0; i < NREADERS; i++)
		pthread_join(rd[i].th, NULL);

	if (!m.fail[0] && m.wc) {
		/* Drain: every byte must now be on the origin itself. */
		wcache_get_stats(m.wc, &st);
		printf("  bs %u size %" PRIu64 " piece %" PRIu64 ": %" PRIu64 " block writes (%" PRIu64 " around, %" PRIu64
		       " rmw), %" PRIu64 " commits, %" PRIu64 " written back, %" PRIu64
		       " waits for space; ops: w %" PRIu64 " fua %" PRIu64 " zero %" PRIu64
		       " discard %" PRIu64 " flush %" PRIu64 " msg %" PRIu64 " reopen %" PRIu64
		       " read %" PRIu64 "\n", bs, size, piece, st.writes, st.writes_around, st.rmw_writes,
		       st.commits, st.writeback_blocks_done, st.full_waits,
		       (uint64_t)m.nr[C_WRITE], (uint64_t)m.nr[C_FUA], (uint64_t)m.nr[C_ZERO],
		       (uint64_t)m.nr[C_DISCARD], (uint64_t)m.nr[C_FLUSH], (uint64_t)m.nr[C_MSG],
		       (uint64_t)m.nr[C_REOPEN], (uint64_t)(m.nr[C_READ] + m.nr[C_OWNREAD]));
		fflush(stdout);
		if (wcache_read(m.wc, buf, size, 0))
			failf(&m, "final read failed");
		else
			check(&m, buf, size, 0, "final read");
		if (!m.fail[0] && wcache_message(m.wc, "flush"))
			failf(&m, "final flush message failed: %s", wcache_last_error());
		wcache_get_stats(m.wc, &st);
		if (!m.fail[0] && st.free_blocks != st.n_blocks)
			failf(&m, "after the flush message %" PRIu64 " of %" PRIu64 " blocks are not free",
			      st.n_blocks - st.free_blocks, st.n_blocks);
		dur = fault_durable(m.origin);
		if (!m.fail[0])
			check(&m, dur, size, 0, "durable origin after draining");
	}
	if (m.wc) {
		int ret = wcache_close(m.wc);

		if (ret && !m.fail[0])
			failf(&m, "close returned %d", ret);
	}
	if (m.fail[0])
		fail_msg("seed %" PRIu64 " (WC_MODEL_SEED=%" PRIu64 ") bs %u size %" PRIu64 ": %s", seed,
			 seed, bs, size, m.fail);
	dev_close(m.origin);
	dev_close(m.cache);
	for (unsigned i = 0; i < NWRITERS; i++)
		pthread_rwlock_destroy(&m.region[i]);
	pthread_rwlock_destroy(&m.world);
	free(m.ref);
	free(m.known);
	free(buf);
}

static uint64_t g_seed, g_ops;

static void test_model_4096(void **state)
{
	(void)state;
	/* 3 MiB + 1.5 KiB: the last 4 KiB block is partial; big writes. */
	run_round(4096, (3u << 20) + 1536, 0, 4096 + 96 * 4096,
		  "high_watermark 40 low_watermark 20 pause_writeback 0 autocommit_blocks 64 "
		  "autocommit_time 20 writeback_jobs 32", g_seed, g_ops);
	/* Writers own interleaved 2500-byte pieces: most blocks are shared. The
	 * origin size is not a multiple of 512 either. */
	run_round(4096, (1u << 20) + 4096 + 700, 2500, 4096 + 40 * 4096,
		  "high_watermark 20 low_watermark 5 pause_writeback 0 autocommit_time 10",
		  g_seed + 1, g_ops);
}

static void test_model_512(void **state)
{
	(void)state;
	/* Writeback only once the cache is full: writes go around meanwhile. */
	run_round(512, (1u << 20) + 512 * 3, 0, 4096 + 400 * 512,
		  "high_watermark 100 low_watermark 95 pause_writeback 0 autocommit_blocks 128 "
		  "autocommit_time 15", g_seed + 2, g_ops);
	run_round(512, (1u << 19) + 100, 300, 1024 + 64 * 512,
		  "high_watermark 10 low_watermark 0 pause_writeback 0 writeback_jobs 8",
		  g_seed + 3, g_ops);
}

/*
 * pmem mode (kernel rules: committed blocks never overwritten in place,
 * autocommit_blocks 64), once on fault devices and once with the cache on
 * the libpmem2 device over a tmpfs file (the real data path, concurrently).
 */
static void test_model_pmem(void **state)
{
	(void)state;
	run_round(4096, (2u << 20) + 1536, 0, 4096 + 64 * 4096,
		  "mode p high_watermark 40 low_watermark 20 autocommit_time 20 writeback_jobs 32",
		  g_seed + 4, g_ops);
	run_round(512, (1u << 19) + 100, 300, 1024 + 64 * 512,
		  "mode p high_watermark 10 low_watermark 0 writeback_jobs 8", g_seed + 5, g_ops);
#ifdef WC_WITH_PMEM
	{
		char path[] = "/dev/shm/wc-model-pmem-XXXXXX";
		int fd = mkstemp(path);

		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, 4096 + 64 * 4096), 0);
		close(fd);
		g_pmem_path = path;
		run_round(4096, (2u << 20) + 1536, 2500, 4096 + 64 * 4096,
			  "mode p high_watermark 40 low_watermark 20 autocommit_time 20",
			  g_seed + 6, g_ops);
		g_pmem_path = NULL;
		unlink(path);
	}
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_4096),
		cmocka_unit_test(test_model_512),
		cmocka_unit_test(test_model_pmem),
	};

	g_seed = env_u64("WC_MODEL_SEED", 0);
	if (!g_seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		g_seed = ((uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec) % 1000000007u;
	}
	g_ops = env_u64("WC_MODEL_OPS", 2500);
	printf("test_model: seed %" PRIu64 " (replay: WC_MODEL_SEED=%" PRIu64 "), %" PRIu64
	       " ops per writer and round\n", g_seed, g_seed, g_ops);
	fflush(stdout);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
