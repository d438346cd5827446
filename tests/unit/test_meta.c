/* SPDX-License-Identifier: MIT */
/*
 * On-disk format: superblock and entry byte layout against hand-computed hex
 * (docs/format.md §2, §3.1), the kernel's n_blocks loop against the spec's worked
 * examples and the kernel-made samples (§3.3), superblock validation, the
 * format sequence order (§7) and the recovery scan rules (§5).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dev.h"
#include "fault.h"
#include "meta.h"
#include "recover.h"

static void test_sb_layout(void **state)
{
	/* magic 0x23489321, version 1, bs 4096, n 4080, seq 5 (sample b-dirty-overwrites). */
	static const uint8_t want[64] = {
		0x21, 0x93, 0x48, 0x23, 0x01, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0xf0, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct wc_sb sb = { WC_MAGIC, 1, 4096, 4080, 5 }, back;
	uint8_t buf[64];
	(void)state;

	memset(buf, 0xaa, sizeof(buf));
	wc_sb_encode(buf, &sb);
	assert_memory_equal(buf, want, 64);
	wc_sb_decode(want, &back);
	assert_int_equal(back.magic, WC_MAGIC);
	assert_int_equal(back.version, 1);
	assert_int_equal(back.block_size, 4096);
	assert_int_equal(back.n_blocks, 4080);
	assert_int_equal(back.seq_count, 5);
	/* 64-bit fields use all 8 bytes. */
	sb.n_blocks = 0x0102030405060708ull;
	sb.seq_count = 0xfffffffffffffffeull;
	wc_sb_encode(buf, &sb);
	assert_int_equal(buf[16], 0x08);
	assert_int_equal(buf[23], 0x01);
	assert_int_equal(buf[24], 0xfe);
	assert_int_equal(buf[31], 0xff);
}

static void test_entry_layout(void **state)
{
	uint8_t meta[64 + 3 * 16];
	static const uint8_t want1[16] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0 };
	(void)state;

	memset(meta, 0, sizeof(meta));
	entry_set(meta, 1, 40, 4);
	assert_memory_equal(meta + 64 + 16, want1, 16);
	entry_set(meta, 2, 7, WC_SEQ_FREE);
	for (int i = 0; i < 8; i++)
		assert_int_equal(meta[64 + 32 + 8 + i], 0xff);
	assert_int_equal(entry_sector(meta, 1), 40);
	assert_int_equal(entry_seq(meta, 1), 4);
	assert_int_equal(entry_seq(meta, 2), WC_SEQ_FREE);
}

static void test_n_blocks(void **state)
{
	(void)state;
	/* Spec 1.4 worked examples. */
	assert_int_equal(wcache_compute_n_blocks(1073741824ull, 4096), 261123);
	assert_int_equal(wc_meta_bytes_for(261123, 4096), 4182016);
	assert_int_equal(wcache_compute_n_blocks(256ull << 20, 4096), 65280);
	assert_int_equal(wc_meta_bytes_for(65280, 4096), 1048576);
	assert_int_equal(wcache_compute_n_blocks(256ull << 20, 512), 508400);
	assert_int_equal(wc_meta_bytes_for(508400, 512), 8134656);
	/* Kernel-made samples: 16 MiB cache, 4096 -> 4080 blocks, data at 65536. */
	assert_int_equal(wcache_compute_n_blocks(16ull << 20, 4096), 4080);
	assert_int_equal(wc_meta_bytes_for(4080, 4096), 65536);
	/* 16 MiB with 512-byte blocks: data at 508928 (harness README). */
	assert_int_equal(wc_meta_bytes_for(wcache_compute_n_blocks(16ull << 20, 512), 512), 508928);
	/* Too small and invalid block sizes. */
	assert_int_equal(wcache_compute_n_blocks(4096 + 15, 4096), 0);
	assert_int_equal(wcache_compute_n_blocks(8192, 4096), 1);
	assert_int_equal(wcache_compute_n_blocks(1 << 20, 1000), 0);
	assert_int_equal(wcache_compute_n_blocks(1 << 20, 8192), 0);
	/* Every result fits and is maximal. */
	for (uint64_t sz = 512; sz < (4u << 20); sz = sz * 3 / 2 + 511) {
		for (uint32_t bs = 512; bs <= 4096; bs *= 2) {
			uint64_t n = wcache_compute_n_blocks(sz, bs);

			if (!n)
				continue;
			assert_true(wc_meta_bytes_for(n, bs) + n * bs <= sz);
			assert_true(wc_meta_bytes_for(n + 1, bs) + (n + 1) * bs > sz);
		}
	}
}

static void test_sb_validate(void **state)
{
	struct wc_sb sb = { WC_MAGIC, 1, 4096, 4080, 1 };
	(void)state;

	assert_int_equal(wc_sb_validate(&sb, 4096, 16 << 20), 0);
	assert_int_equal(wc_sb_validate(&sb, 0, 16 << 20), 0);
	assert_int_equal(wc_sb_validate(&sb, 512, 16 << 20), -EINVAL);
	assert_non_null(strstr(wcache_last_error(), "block size mismatch"));
	assert_int_equal(wc_sb_validate(&sb, 4096, (16 << 20) - 1), -EINVAL);
	assert_non_null(strstr(wcache_last_error(), "truncated"));
	sb.magic = 0x12345678;
	assert_int_equal(wc_sb_validate(&sb, 4096, 16 << 20), -EINVAL);
	assert_non_null(strstr(wcache_last_error(), "invalid magic"));
	sb.magic = 0;
	assert_int_equal(wc_sb_validate(&sb, 4096, 16 << 20), -EINVAL);	/* magic 0, version 1 */
	sb.version = 0;
	assert_int_equal(wc_sb_validate(&sb, 4096, 16 << 20), -ENODATA);	/* blank */
	sb = (struct wc_sb){ WC_MAGIC, 2, 4096, 4080, 1 };
	assert_int_equal(wc_sb_validate(&sb, 4096, 16 << 20), -EINVAL);
	assert_non_null(strstr(wcache_last_error(), "version 2"));
	sb = (struct wc_sb){ WC_MAGIC, 1, 4096, UINT64_MAX / 8, 1 };
	assert_int_equal(wc_sb_validate(&sb, 4096, 16 << 20), -EINVAL);
	sb = (struct wc_sb){ WC_MAGIC, 1, 3000, 10, 1 };
	assert_int_equal(wc_sb_validate(&sb, 0, 16 << 20), -EINVAL);
	sb = (struct wc_sb){ WC_MAGIC, 1, 4096, 0, 1 };
	assert_int_equal(wc_sb_validate(&sb, 0, 16 << 20), -EINVAL);
	/* A seq_count commits would wrap (found by fuzz_meta, tests/fuzz/meta/crash-seq-*). */
	sb = (struct wc_sb){ WC_MAGIC, 1, 4096, 4080, (1ull << 63) - 1 };
	assert_int_equal(wc_sb_validate(&sb, 0, 16 << 20), 0);
	sb.seq_count = 1ull << 63;
	assert_int_equal(wc_sb_validate(&sb, 0, 16 << 20), -EINVAL);
	assert_non_null(strstr(wcache_last_error(), "seq_count"));
	sb.seq_count = UINT64_MAX - 1;
	assert_int_equal(wc_sb_validate(&sb, 0, 16 << 20), -EINVAL);
}

static void test_format_order(void **state)
{
	struct wc_dev *d, *view;
	struct wc_sb sb, got;
	uint8_t buf[64];
	(void)state;

	assert_int_equal(dev_fault_open(1 << 20, &d), 0);
	assert_int_equal(dev_fault_share(d, &view), 0);
	/* Power cut right before the magic write: the device must not look valid. */
	for (uint64_t n = 1; n < 8; n++) {

		fault_arm_crash(d, n);
		if (wc_meta_format(d, 4096, 512, &sb) == 0) {
			fault_arm_crash(d, 0);
			break;
		}
		fault_crash(d, FAULT_DROP_ALL, n);
		memcpy(buf, fault_durable(d) + 4096, 64);
		wc_sb_decode(buf, &got);
		assert_true(got.magic == 0);
	}
	assert_int_equal(wc_meta_format(d, 4096, 512, &sb), 0);
	fault_crash(d, FAULT_DROP_ALL, 99);	/* everything was flushed */
	wc_sb_decode(fault_durable(d) + 4096, &got);
	assert_int_equal(got.magic, WC_MAGIC);
	assert_int_equal(got.n_blocks, wcache_compute_n_blocks((1 << 20) - 4096, 512));
	assert_int_equal(got.seq_count, 0);
	for (uint64_t i = 0; i < got.n_blocks; i++)
		assert_int_equal(entry_seq(fault_durable(d) + 4096, i), WC_SEQ_FREE);
	dev_close(view);
	dev_close(d);
}

static void test_recover_rules(void **state)
{
	struct wc_sb sb = { WC_MAGIC, 1, 4096, 8, 10 };
	uint8_t meta[64 + 8 * 16];
	struct recover_report r;
	struct wc_index ix;
	(void)state;

	memset(meta, 0xff, sizeof(meta));
	entry_set(meta, 0, 8, 3);	/* committed */
	entry_set(meta, 1, 8, 5);	/* newer copy of sector 8: wins */
	entry_set(meta, 2, 16, 10);	/* uncommitted (== sb seq) */
	entry_set(meta, 3, 24, 11);	/* uncommitted (> sb seq) */
	entry_set(meta, 4, 32, 9);	/* committed */
	entry_set(meta, 5, 40, 2);
	entry_set(meta, 6, 40, 1);	/* older copy after the newer one in index order */
	assert_int_equal(wc_idx_init(&ix, 8, meta), 0);
	wc_recover_scan(meta, &sb, 1 << 20, &ix, &r);
	assert_int_equal(r.nr_valid, 3);
	assert_int_equal(r.nr_uncommitted, 2);
	assert_int_equal(r.nr_superseded, 2);
	assert_int_equal(r.nr_free, 1);
	assert_int_equal(r.nr_equal_dups, 0);
	assert_true(r.changed);
	assert_int_equal(wc_idx_lookup(&ix, 8), 1);
	assert_int_equal(wc_idx_lookup(&ix, 40), 5);
	assert_int_equal(wc_idx_lookup(&ix, 32), 4);
	assert_int_equal(wc_idx_lookup(&ix, 16), IDX_NONE);
	assert_int_equal(entry_seq(meta, 0), WC_SEQ_FREE);
	assert_int_equal(entry_seq(meta, 2), WC_SEQ_FREE);
	assert_int_equal(entry_sector(meta, 2), 16);	/* sector kept, like the kernel */
	assert_int_equal(entry_seq(meta, 6), WC_SEQ_FREE);
	/* Equal seq duplicates and out-of-range / unaligned sectors are reported. */
	memset(meta, 0xff, sizeof(meta));
	entry_set(meta, 0, 8, 3);
	entry_set(meta, 3, 8, 3);
	entry_set(meta, 4, 1 << 20, 3);
	entry_set(meta, 5, 9, 3);
	wc_recover_scan(meta, &sb, 1 << 20, &ix, &r);
	assert_int_equal(r.nr_equal_dups, 1);
	assert_int_equal(r.dup_idx, 3);
	assert_int_equal(r.dup_other, 0);
	assert_int_equal(r.nr_past_origin, 2);
	assert_int_equal(r.past_idx, 4);
	wc_idx_free(&ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sb_layout),	cmocka_unit_test(test_entry_layout),
		cmocka_unit_test(test_n_blocks),	cmocka_unit_test(test_sb_validate),
		cmocka_unit_test(test_format_order),	cmocka_unit_test(test_recover_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
