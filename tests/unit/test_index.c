/* SPDX-License-Identifier: MIT */
/*
 * Index (open addressing, backward-shift deletion) against a brute-force
 * reference under random insert/replace/remove, and the allocator's
 * rotating cursor, contiguous extension and pending-free life cycle.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "engine.h"
#include "index.h"
#include "meta.h"

#define N 5000

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/*
 * Random insert/replace/remove of N entries against a reference. The index is
 * built for cap entries; entry i of the test is index entry base(i): with
 * cap = 2^24 - 1 the slots keep only 8 tag bits, so tag collisions (a probe
 * whose tag matches a different sector) happen often, and the highest entry
 * numbers sit right below the all-ones "empty" pattern.
 */
static void run_random(uint64_t cap, uint32_t hi_base)
{
	uint8_t *meta = calloc(1, 64 + 16 * cap);
	uint64_t *ref = malloc(sizeof(uint64_t) * N);	/* sector cached by test entry i, or -1 */
	struct wc_index ix;

	assert_non_null(meta);
	assert_int_equal(wc_idx_init(&ix, cap, meta), 0);
#define E(i) ((uint32_t)((i) < N / 2 ? (uint32_t)(i) : hi_base + (uint32_t)(i)))
#define T(e) ((e) < N / 2 ? (int)(e) : (int)((e) - hi_base))
	for (int i = 0; i < N; i++)
		ref[i] = UINT64_MAX;
	for (int step = 0; step < 200000; step++) {
		int t = (int)(next_rand() % N);
		uint32_t e = E(t);
		/* Few distinct sectors so probe chains collide a lot. */
		uint64_t sector = (next_rand() % (N * 2)) * 8;

		if (ref[t] == UINT64_MAX) {
			uint32_t cur = wc_idx_lookup(&ix, sector);

			entry_set(meta, e, sector, 1);
			if (cur == IDX_NONE) {
				wc_idx_insert(&ix, e);
			} else {
				wc_idx_replace(&ix, cur, e);
				ref[T(cur)] = UINT64_MAX;
			}
			ref[t] = sector;
		} else {
			assert_int_equal(wc_idx_remove(&ix, e), 0);
			ref[t] = UINT64_MAX;
		}
		if (step % 997 == 0) {
			uint64_t count = 0;

			for (int i = 0; i < N; i++) {
				if (ref[i] == UINT64_MAX)
					continue;
				count++;
				assert_int_equal(wc_idx_lookup(&ix, ref[i]), E(i));
			}
			assert_int_equal(ix.count, count);
			for (int k = 0; k < 50; k++) {
				uint64_t s = (next_rand() % (N * 2)) * 8 + 1;	/* never inserted */

				assert_int_equal(wc_idx_lookup(&ix, s), IDX_NONE);
			}
		}
	}
	/* Removing something that is not the indexed entry for its sector fails. */
	for (int i = 0; i < N; i++) {
		if (ref[i] != UINT64_MAX) {
			int other = (i + 1) % N;

			if (ref[other] == UINT64_MAX) {
				entry_set(meta, E(other), ref[i], 1);
				assert_int_equal(wc_idx_remove(&ix, E(other)), -ENOENT);
				break;
			}
		}
	}
	assert_true(wc_idx_bytes_per_block(&ix, cap) < 5.2);
#undef E
#undef T
	wc_idx_free(&ix);
	free(meta);
	free(ref);
}

static void test_index_random(void **state)
{
	(void)state;
	run_random(N, 0);
}

static void test_index_few_tag_bits(void **state)
{
	const uint64_t cap = (1u << 24) - 1;	/* entries 0 .. 2^24 - 2 */

	(void)state;
	/* The upper half of the test's entries are the highest numbers the index allows. */
	run_random(cap, (uint32_t)(cap - N));
}

/*
 * 2^24 entries: entry 0xFFFFFF is in use, so the entry field needs 25 bits;
 * with 24, that entry under an all-ones tag would read as an empty slot. Try
 * it under 20000 sectors (so under every tag value), then the random test.
 */
static void test_index_entry_field_boundary(void **state)
{
	const uint64_t cap = 1u << 24;
	const uint32_t top = (uint32_t)cap - 1;
	uint8_t *meta = calloc(1, 64 + 16 * cap);
	struct wc_index ix;

	(void)state;
	assert_non_null(meta);
	assert_int_equal(wc_idx_init(&ix, cap, meta), 0);
	for (uint64_t s = 0; s < 20000; s++) {
		entry_set(meta, top, s * 8, 1);
		wc_idx_insert(&ix, top);
		assert_int_equal(wc_idx_lookup(&ix, s * 8), top);
		assert_int_equal(wc_idx_remove(&ix, top), 0);
		assert_int_equal(wc_idx_lookup(&ix, s * 8), IDX_NONE);
	}
	wc_idx_free(&ix);
	free(meta);
	run_random(cap, (uint32_t)(cap - N));
}

static struct wcache *mini_cache(uint64_t n)
{
	struct wcache *c = calloc(1, sizeof(*c));

	c->n_blocks = n;
	c->bs = 4096;
	c->bs_sect = 8;
	c->meta_bytes = wc_meta_bytes_for(n, 4096);
	c->nr_gran = (c->meta_bytes + WC_GRANULE_BYTES - 1) / WC_GRANULE_BYTES;
	c->meta = malloc(c->meta_bytes);
	memset(c->meta, 0xff, c->meta_bytes);
	c->gran_dirty = calloc(c->nr_gran, 1);
	c->state = calloc(n, 1);
	c->region_age = calloc((n >> WC_AGE_SHIFT) + 1, sizeof(uint32_t));
	c->region_used = calloc((n >> WC_AGE_SHIFT) + 1, sizeof(uint32_t));
	c->free_bm = calloc((n + 63) / 64, 8);
	assert_int_equal(wc_elist_init(&c->pend, n), 0);
	assert_int_equal(wc_elist_init(&c->old, n), 0);
	assert_int_equal(wc_idx_init(&c->idx, n, c->meta), 0);
	for (uint64_t i = 0; i < n; i++)
		c->free_bm[i >> 6] |= 1ull << (i & 63);
	c->nr_free = n;
	c->seq = c->disk_seq = 1;
	return c;
}

static void mini_free(struct wcache *c)
{
	wc_idx_free(&c->idx);
	free(c->meta);
	free(c->gran_dirty);
	free(c->state);
	free(c->region_age);
	free(c->region_used);
	wc_elist_free(&c->pend);
	wc_elist_free(&c->old);
	free(c->free_bm);
	free(c);
}

static void test_alloc_cursor(void **state)
{
	struct wcache *c = mini_cache(130);
	(void)state;

	/* Sequential from 0, wrapping; taken blocks are skipped. */
	for (uint32_t i = 0; i < 130; i++)
		assert_int_equal(wc_alloc_block(c), i);
	assert_int_equal(wc_alloc_block(c), IDX_NONE);
	assert_int_equal(c->nr_free, 0);
	wc_unreserve_block(c, 5);
	wc_unreserve_block(c, 70);
	wc_unreserve_block(c, 71);
	/* Cursor is at 0 after wrapping: 5 first, then 70 with 71 contiguous. */
	assert_int_equal(wc_alloc_block(c), 5);
	assert_int_equal(wc_alloc_block(c), 70);
	assert_true(wc_alloc_next_if_free(c, 71));
	assert_false(wc_alloc_next_if_free(c, 72));
	assert_false(wc_alloc_next_if_free(c, 130));
	assert_int_equal(c->nr_free, 0);
	mini_free(c);
}

static void test_install_supersede_free(void **state)
{
	struct wcache *c = mini_cache(64);
	uint32_t a, b, d;
	(void)state;

	a = wc_alloc_block(c);
	wc_install_entry(c, a, 10);
	assert_int_equal(wc_idx_lookup(&c->idx, 80), a);
	assert_int_equal(entry_seq(c->meta, a), 1);
	assert_true(c->txn_dirty);
	assert_int_equal(c->nr_uncommitted, 1);
	/* Uncommitted copy replaced: freed at once (pending). */
	b = wc_alloc_block(c);
	wc_install_entry(c, b, 10);
	assert_int_equal(wc_idx_lookup(&c->idx, 80), b);
	assert_int_equal(c->nr_pend, 1);
	assert_int_equal(c->pend.n, 1);
	assert_int_equal(c->pend.v[0], a);
	assert_int_equal(c->region_used[0], 1);	/* b installed, a freed */
	assert_int_equal(entry_seq(c->meta, a), WC_SEQ_FREE);
	assert_int_equal(entry_sector(c->meta, a), 80);
	/* Committed copy replaced: kept as an old copy until GC. */
	c->disk_seq = c->seq = 2;
	d = wc_alloc_block(c);
	wc_install_entry(c, d, 10);
	assert_int_equal(wc_idx_lookup(&c->idx, 80), d);
	assert_true(c->state[b] & ST_OLD);
	assert_true(wc_old_may_have(c, 80));
	assert_int_equal(c->old.n, 1);
	assert_int_equal(c->region_used[0], 2);	/* b (old) and d */
	wc_old_remove(c, b);
	assert_int_equal(c->old.n, 0);
	assert_false(wc_old_may_have(c, 80));
	assert_false(c->state[b] & ST_OLD);
	mini_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_random),
		cmocka_unit_test(test_index_few_tag_bits),
		cmocka_unit_test(test_index_entry_field_boundary),
		cmocka_unit_test(test_alloc_cursor),
		cmocka_unit_test(test_install_supersede_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
