/* SPDX-License-Identifier: MIT */
/*
 * Directed crash races: device-op hooks pause one engine thread at a chosen
 * I/O so that a write, a flush and writeback interleave exactly as scripted;
 * then the power is cut (DROP_ALL) and the oracle is checked for the block.
 * Each case is a window the single-threaded crash-point loop cannot reach:
 *   inplace_uncommitted_during_commit  in-place write to an uncommitted block
 *                                      lands after a commit's cache flush
 *   inplace_committed_during_commit    same, block committed (the flag set at
 *                                      map time is cleared by the commit)
 *   install_during_commit              an overlapping write installs while the
 *                                      older acked copy is being committed
 *   cleaner_discard_old_copy           write-around while an older copy of the
 *                                      block is still being written back
 *   reopen_after_failed_flush          writeback frees X but the cache flush
 *                                      fails; a reopen, a write-around of X and
 *                                      a power cut must not bring back the old copy
 *   reuse_waits_for_durable_free       a write waiting for space on a full cache
 *                                      gets X's block only once X's free is
 *                                      durable (invariant 3)
 * Exit code 0 = all pass; failures print the scenario.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crash_rig.h"

#define BS 4096u
#define X_BLK 5u
#define X_OFF ((uint64_t)X_BLK * BS)

static const struct rig_cfg rcfg = {
	BS, 1u << 20, 4096 + 64 * 4096,
	"high_watermark 100 low_watermark 100 autocommit_time 3600000 autocommit_blocks 1000000 "
	"pause_writeback 0"
};

static uint8_t d1[BS], d2[BS], d3[BS];

enum op { OP_WRITE, OP_FLUSH, OP_MSG_FLUSH };

struct job {
	pthread_t th;
	struct rig *r;
	enum op op;
	const uint8_t *data;
	int tag;
	int ret;
	int (*fn)(struct rig *r);	/* instead of op */
	atomic_bool done;
};

static void *job_main(void *arg)
{
	struct job *j = arg;

	pc_set_thread_tag(j->tag);
	if (j->fn) {
		j->ret = j->fn(j->r);
		atomic_store(&j->done, true);
		return NULL;
	}
	switch (j->op) {
	case OP_WRITE:
		j->ret = wcache_write(j->r->wc, j->data, BS, X_OFF, 0);
		break;
	case OP_FLUSH:
		j->ret = wcache_flush(j->r->wc);
		break;
	case OP_MSG_FLUSH:
		j->ret = wcache_message(j->r->wc, "flush");
		break;
	}
	return NULL;
}

static void job_start(struct job *j, struct rig *r, enum op op, const uint8_t *data, int tag)
{
	*j = (struct job){ .r = r, .op = op, .data = data, .tag = tag };
	if (pthread_create(&j->th, NULL, job_main, j))
		abort();
}

static void job_start_fn(struct job *j, int (*fn)(struct rig *r), int tag)
{
	j->fn = fn;
	j->tag = tag;
	if (pthread_create(&j->th, NULL, job_main, j))
		abort();
}

/* 2 KiB of data2 into block 7 at 1 KiB. */
static int write_y_partial(struct rig *r)
{
	return wcache_write(r->wc, d2, 2048, 7 * BS + 1024, 0);
}

static int job_join(struct job *j)
{
	pthread_join(j->th, NULL);
	return j->ret;
}

static int failures;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, \
				__LINE__, #cond);                          \
			fprintf(stderr, __VA_ARGS__);                      \
			fprintf(stderr, "\n");                             \
			return false;                                      \
		}                                                          \
	} while (0)

static const char *which(const uint8_t *got, const struct rig *r)
{
	if (!memcmp(got, d1, BS))
		return "data1";
	if (!memcmp(got, d2, BS))
		return "data2";
	if (!memcmp(got, d3, BS))
		return "data3";
	if (!memcmp(got, r->image + X_OFF, BS))
		return "the original origin data";
	return "something never written";
}

/* Power cut now, DROP_ALL crash, recover, read block X into got. */
static bool crash_and_read(struct rig *r, uint8_t *got)
{
	int ret;

	pc_cut_now(&r->pc);
	rig_close(r);
	rig_crash(r, FAULT_DROP_ALL, 1);
	ret = rig_open(r);
	CHECK(ret == 0, "reopen after crash: %s", wcache_last_error());
	ret = wcache_read(r->wc, got, BS, X_OFF);
	CHECK(ret == 0, "read after crash: %d", ret);
	return true;
}

static bool setup(struct rig *r)
{
	if (rig_init(r, &rcfg, 42))
		abort();
	CHECK(rig_open(r) == 0, "open: %s", wcache_last_error());
	return true;
}

/*
 * Write X (new uncommitted block); a second write of X goes in place and is
 * paused before its data reaches the cache; a flush commits the block; the
 * write completes (acked); a second flush starts after that ack and returns 0.
 * The second write must survive a power cut.
 */
static bool t_inplace_uncommitted_during_commit(void)
{
	struct rig r;
	struct job b;
	uint8_t got[BS];

	if (!setup(&r))
		return false;
	CHECK(wcache_write(r.wc, d1, BS, X_OFF, 0) == 0, "write 1");
	pc_hook_arm(&r.pc, 0, PC_CACHE, PC_WRITE, PC_ANY_OFF, 2, 0);
	job_start(&b, &r, OP_WRITE, d2, 2);
	CHECK(pc_hook_wait(&r.pc, 0, 5000), "write 2 did not reach the cache device");
	CHECK(wcache_flush(r.wc) == 0, "flush 1");
	pc_hook_release(&r.pc, 0);
	CHECK(job_join(&b) == 0, "write 2");
	CHECK(wcache_flush(r.wc) == 0, "flush 2");
	if (!crash_and_read(&r, got))
		return false;
	CHECK(!memcmp(got, d2, BS), "block holds %s; expected data2 (acked before flush 2 began)",
	      which(got, &r));
	rig_fini(&r);
	return true;
}

/* Same with X committed first: the in-place write of a committed block. */
static bool t_inplace_committed_during_commit(void)
{
	struct rig r;
	struct job b;
	uint8_t got[BS];

	if (!setup(&r))
		return false;
	CHECK(wcache_write(r.wc, d1, BS, X_OFF, 0) == 0, "write 1");
	CHECK(wcache_flush(r.wc) == 0, "flush 0");
	pc_hook_arm(&r.pc, 0, PC_CACHE, PC_WRITE, PC_ANY_OFF, 2, 0);
	job_start(&b, &r, OP_WRITE, d2, 2);
	CHECK(pc_hook_wait(&r.pc, 0, 5000), "write 2 did not reach the cache device");
	CHECK(wcache_flush(r.wc) == 0, "flush 1");
	pc_hook_release(&r.pc, 0);
	CHECK(job_join(&b) == 0, "write 2");
	CHECK(wcache_flush(r.wc) == 0, "flush 2");
	if (!crash_and_read(&r, got))
		return false;
	CHECK(!memcmp(got, d2, BS), "block holds %s; expected data2 (acked before flush 2 began)",
	      which(got, &r));
	rig_fini(&r);
	return true;
}

/*
 * Two overlapping writes of X: B maps X first (new block) and is paused
 * before its data write; the main thread's write maps, installs and is acked;
 * a flush starts (paused after its metadata write, seq already bumped); B
 * completes and installs over the main thread's copy; the flush completes.
 * X must then hold data1 or data2 after a power cut, never the old data.
 */
static bool t_install_during_commit(void)
{
	struct rig r;
	struct job a, b;
	uint8_t got[BS];

	if (!setup(&r))
		return false;
	pc_hook_arm(&r.pc, 0, PC_CACHE, PC_WRITE, PC_ANY_OFF, 2, 0);
	job_start(&b, &r, OP_WRITE, d2, 2);
	CHECK(pc_hook_wait(&r.pc, 0, 5000), "write B did not reach the cache device");
	CHECK(wcache_write(r.wc, d1, BS, X_OFF, 0) == 0, "write 1");
	pc_hook_arm(&r.pc, 1, PC_CACHE, PC_FLUSH, PC_ANY_OFF, 3, 0);
	job_start(&a, &r, OP_FLUSH, NULL, 3);
	CHECK(pc_hook_wait(&r.pc, 1, 5000), "flush did not reach the cache device");
	pc_hook_release(&r.pc, 0);
	CHECK(job_join(&b) == 0, "write B");
	pc_hook_release(&r.pc, 1);
	CHECK(job_join(&a) == 0, "flush");
	if (!crash_and_read(&r, got))
		return false;
	CHECK(!memcmp(got, d1, BS) || !memcmp(got, d2, BS),
	      "block holds %s; expected data1 (acked before the flush began) or data2 (in flight)",
	      which(got, &r));
	rig_fini(&r);
	return true;
}

/*
 * X committed (data1) and being written back (paused at the origin write);
 * X overwritten (data2, new block, the old one kept for writeback), then
 * discarded; cleaner mode on; X written again (data3), which goes around
 * the cache to the origin; flush returns 0. Then either the writeback goes
 * on (live = true: X must read data3) or the power is cut (X must read data3
 * after recovery: it was acked and flushed).
 */
static bool t_cleaner_discard_old_copy(bool live)
{
	struct rig r;
	struct job a;
	uint8_t got[BS];
	int ret;

	if (!setup(&r))
		return false;
	CHECK(wcache_write(r.wc, d1, BS, X_OFF, 0) == 0, "write 1");
	CHECK(wcache_flush(r.wc) == 0, "flush 1");
	pc_hook_arm(&r.pc, 0, PC_ORIGIN, PC_WRITE, X_OFF, 0, 0);
	job_start(&a, &r, OP_MSG_FLUSH, NULL, 3);
	CHECK(pc_hook_wait(&r.pc, 0, 5000), "writeback did not reach the origin");
	CHECK(wcache_write(r.wc, d2, BS, X_OFF, 0) == 0, "write 2");
	CHECK(wcache_discard(r.wc, BS, X_OFF, 0) == 0, "discard");
	CHECK(wcache_message(r.wc, "cleaner") == 0, "cleaner");
	CHECK(wcache_write(r.wc, d3, BS, X_OFF, 0) == 0, "write 3");
	if (getenv("WC_RACE_DEBUG")) {
		struct wc_stats s;

		wcache_get_stats(r.wc, &s);
		fprintf(stderr, "  around %llu allocate %llu wb %llu discards %llu\n",
			(unsigned long long)s.writes_around, (unsigned long long)s.writes_allocate,
			(unsigned long long)s.writeback_blocks, (unsigned long long)s.discards);
		r.pc.trace = calloc(4096, sizeof(*r.pc.trace));
		r.pc.trace_max = 4096;
	}
	CHECK(wcache_flush(r.wc) == 0, "flush 2");
	if (live) {
		pc_hook_release(&r.pc, 0);
		ret = job_join(&a);
		CHECK(ret == 0, "flush message: %d", ret);
		CHECK(wcache_read(r.wc, got, BS, X_OFF) == 0, "read");
		if (r.pc.trace)
			pcut_print_trace(&r.pc, 1, r.pc.ops);
		CHECK(!memcmp(got, d3, BS), "after writeback X reads %s; expected data3", which(got, &r));
		CHECK(rig_close(&r) == 0, "close");
		CHECK(rig_open(&r) == 0, "reopen");
		CHECK(wcache_read(r.wc, got, BS, X_OFF) == 0, "read");
		CHECK(!memcmp(got, d3, BS), "after reopen X reads %s; expected data3", which(got, &r));
	} else {
		pc_cut_now(&r.pc);
		pc_hook_release(&r.pc, 0);
		job_join(&a);
		if (!crash_and_read(&r, got))
			return false;
		CHECK(!memcmp(got, d3, BS), "after the crash X reads %s; expected data3 (acked, flushed)",
		      which(got, &r));
	}
	rig_fini(&r);
	return true;
}

static bool t_cleaner_live(void)
{
	return t_cleaner_discard_old_copy(true);
}

static bool t_cleaner_crash(void)
{
	return t_cleaner_discard_old_copy(false);
}

/*
 * X is committed, written back, and its entry cleared on the cache device,
 * but the flush that would make the clear durable fails. The process restarts
 * (close fails, reopen) and the clear still reads back, so recovery sees X as
 * clean; a write-around of X is flushed on the origin. After a power cut the
 * clear may be gone: recovery must have made what it read durable, or the old
 * cached copy shadows the newer origin data.
 */
static bool t_reopen_after_failed_flush(void)
{
	struct rig r;
	uint8_t got[BS];

	if (!setup(&r))
		return false;
	CHECK(wcache_write(r.wc, d1, BS, X_OFF, 0) == 0, "write 1");
	CHECK(wcache_flush(r.wc) == 0, "flush 1");
	fault_set_error(r.cache, "flush", true);
	CHECK(wcache_message(r.wc, "flush") != 0, "writeback should fail on the cache flush");
	rig_close(&r);
	fault_heal(r.cache);
	CHECK(rig_open(&r) == 0, "reopen: %s", wcache_last_error());
	CHECK(wcache_message(r.wc, "cleaner") == 0, "cleaner");
	CHECK(wcache_write(r.wc, d2, BS, X_OFF, 0) == 0, "write 2");
	CHECK(wcache_flush(r.wc) == 0, "flush 2");
	if (!crash_and_read(&r, got))
		return false;
	CHECK(!memcmp(got, d2, BS), "after the crash X reads %s; expected data2 (acked, flushed)",
	      which(got, &r));
	rig_fini(&r);
	return true;
}

/*
 * Full cache: X and Y committed, the rest uncommitted. Writeback (one block
 * per batch) copies X to the origin, flushes it and frees X's block; its
 * metadata write is paused. Meanwhile a partial write of Y waits for space
 * (Y is committed, so the write needs a new block). The waiting write must
 * not be handed X's block before the free is durable: if it were, it would
 * write Y's data there, and after a power cut (every unflushed write kept)
 * recovery would find X's committed entry pointing at it.
 */
static bool t_reuse_waits_for_durable_free(void)
{
	static const struct rig_cfg cfg1 = {
		BS, 1u << 20, 4096 + 64 * 4096,
		"high_watermark 100 low_watermark 100 autocommit_time 3600000 "
		"autocommit_blocks 1000000 pause_writeback 0 writeback_jobs 1"
	};
	const uint64_t y_off = 7 * BS;
	struct rig r;
	struct job b;
	struct wc_stats st0, st1;
	uint8_t got[BS], fill[BS];
	bool wrote = false;

	if (rig_init(&r, &cfg1, 42))
		abort();
	CHECK(rig_open(&r) == 0, "open: %s", wcache_last_error());
	CHECK(wcache_write(r.wc, d1, BS, X_OFF, 0) == 0, "write X");	/* block 0: first in the batch */
	CHECK(wcache_write(r.wc, d3, BS, y_off, 0) == 0, "write Y");
	CHECK(wcache_flush(r.wc) == 0, "flush");
	/* The 62 other blocks, uncommitted: the full cache starts writeback of X alone. */
	pc_hook_arm(&r.pc, 0, PC_ORIGIN, PC_WRITE, X_OFF, 0, 0);
	for (uint64_t i = 0; i < 62; i++) {
		rng_fill(100 + i, fill, BS);
		CHECK(wcache_write(r.wc, fill, BS, (16 + i) * BS, 0) == 0, "fill %d", (int)i);
	}
	CHECK(pc_hook_wait(&r.pc, 0, 5000), "writeback of X did not reach the origin");
	wcache_get_stats(r.wc, &st0);
	/* A partial write of Y (4 sectors into block Y) needs a block: it waits. */
	b = (struct job){ .r = &r };
	job_start_fn(&b, write_y_partial, 2);
	for (int i = 0; i < 5000; i++) {
		wcache_get_stats(r.wc, &st1);
		if (st1.full_waits > st0.full_waits)
			break;
		usleep(1000);
	}
	CHECK(st1.full_waits > st0.full_waits, "the write of Y did not wait for space");
	/* Pause the metadata write that makes X's free durable; let writeback go on. */
	pc_hook_arm(&r.pc, 1, PC_CACHE, PC_WRITE, 0, 0, 0);
	pc_hook_release(&r.pc, 0);
	CHECK(pc_hook_wait(&r.pc, 1, 5000), "X's free was not written");
	/* The waiting write must not finish now; give it the time to. */
	for (int i = 0; i < 300 && !wrote; i++) {
		wrote = atomic_load(&b.done);
		usleep(1000);
	}
	pc_cut_now(&r.pc);
	pc_hook_release(&r.pc, 1);
	job_join(&b);
	rig_close(&r);
	rig_crash(&r, FAULT_KEEP_ALL, 1);
	CHECK(rig_open(&r) == 0, "reopen after crash: %s", wcache_last_error());
	CHECK(wcache_read(r.wc, got, BS, X_OFF) == 0, "read X");
	CHECK(!memcmp(got, d1, BS), "X holds %s%s; expected data1 (committed, written back)",
	      which(got, &r), wrote ? " (the write of Y ended before X's free was durable)" : "");
	rig_fini(&r);
	return true;
}

int main(void)
{
	static const struct {
		const char *name;
		bool (*fn)(void);
	} tests[] = {
		{ "inplace_uncommitted_during_commit", t_inplace_uncommitted_during_commit },
		{ "inplace_committed_during_commit", t_inplace_committed_during_commit },
		{ "install_during_commit", t_install_during_commit },
		{ "cleaner_discard_old_copy_live", t_cleaner_live },
		{ "cleaner_discard_old_copy_crash", t_cleaner_crash },
		{ "reopen_after_failed_flush", t_reopen_after_failed_flush },
		{ "reuse_waits_for_durable_free", t_reuse_waits_for_durable_free },
	};

	wcache_set_logger(quiet_logger, NULL);
	rng_fill(1, d1, BS);
	rng_fill(2, d2, BS);
	rng_fill(3, d3, BS);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		bool ok = tests[i].fn();

		printf("%s %s\n", ok ? "PASS" : "FAIL", tests[i].name);
		fflush(stdout);
		failures += !ok;
	}
	return failures ? 1 : 0;
}
