/* SPDX-License-Identifier: MIT */
/*
 * The engine's internal header: the body of struct wcache (the state of an
 * open cache) and the functions the engine modules call in one another,
 * grouped by the file that defines them. Only src/engine/ and white-box
 * tests include it; everything above the engine sees include/wcache.h.
 *
 * Lock order: c->stripe[i] -> c->meta_mutex -> c->lock. c->lock (the index
 * lock, like the kernel's wc->lock) guards everything marked "lock"; it is
 * never held across device I/O. c->meta_mutex serialises metadata
 * persistence so that granule snapshots reach the disk in the order they
 * were taken. Stripe locks serialise read-modify-write of partial blocks.
 *
 * Visibility rule that keeps crashes safe: a newly allocated block is filled
 * with its data *before* its entry is installed in the index and the RAM
 * metadata, so any entry a commit can make valid points at written data.
 * Freed blocks are reused only after the free is durable on the cache device
 * and every read or in-place write that might still touch them has ended
 * (an epoch grace period).
 */
#ifndef WC_ENGINE_H
#define WC_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "wcache.h"
#include "clock.h"
#include "dev.h"
#include "elist.h"
#include "index.h"
#include "meta.h"

/* Per-entry state byte (c->state[i], lock). */
#define ST_WB		0x01	/* under writeback */
#define ST_OLD		0x02	/* superseded by a newer version; awaiting GC */
#define ST_PEND		0x04	/* freed in RAM, free not yet durable / grace not over */
#define ST_RSVD		0x08	/* allocated, data being written, not yet installed */
#define ST_WR_ONE	0x10	/* in-place writes in flight: bits 4..7 count them */
#define ST_WR_MASK	0xf0

#define WC_NR_STRIPES	64
#define WC_OLD_BUCKETS	1024
#define WC_AGE_SHIFT	10	/* max_age regions of 1024 entries */
#define WC_COMMIT_RING	256

/* A write waiting for a free block (on its stack; see wait_for_space in io.c). */
struct wc_space_waiter {
	struct wc_space_waiter *next;
	uint32_t granted;	/* lock: the block handed to it, or IDX_NONE */
	pthread_cond_t cond;	/* signalled when granted */
};

struct wcache {
	struct wc_cfg cfg;
	struct wc_dev *origin, *cache;
	bool read_only;

	/* Geometry (immutable after open). */
	uint64_t base;			/* byte offset of the superblock */
	uint32_t bs;			/* block size in bytes */
	uint32_t bs_sect;		/* sectors per block */
	unsigned bs_shift;		/* log2(bs) */
	uint64_t n_blocks;
	uint64_t meta_bytes;
	uint64_t data_off;		/* byte offset of data block 0 on the cache device */
	uint64_t origin_bytes;
	uint64_t nr_gran;		/* metadata granules */

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* any state change: frees, wb done, errors, epochs */
	pthread_mutex_t meta_mutex;
	pthread_mutex_t stripe[WC_NR_STRIPES];

	uint8_t *meta;			/* lock: RAM copy of the metadata area */
	uint8_t *gran_dirty;		/* lock: one byte per granule */
	bool meta_dirty;		/* lock: some granule is dirty */
	uint8_t *state;			/* lock */
	struct wc_index idx;		/* lock */
	/*
	 * max_age, per region of WC_AGE_REGION entries: 1 + the insertion time
	 * (s since open) of the oldest entry installed since the region was last
	 * empty (0: none), and the installed entries it holds. Per block this
	 * costs 1/128 byte instead of a 4-byte age; writeback may then clean a
	 * young block early, never an old one late.
	 */
	uint32_t *region_age;		/* lock */
	uint32_t *region_used;		/* lock */

	uint64_t *free_bm;		/* lock: 1 = free and reusable */
	uint64_t nr_free;		/* lock */
	uint64_t free_cursor;		/* lock: rotating allocation cursor */
	struct elist pend;		/* lock: frees not yet persisted */
	uint64_t nr_pend;		/* lock: all frees not yet reusable (list + being released) */
	struct elist old;		/* lock: superseded entries awaiting GC */
	uint32_t old_hash[WC_OLD_BUCKETS];	/* lock: superseded copies per sector hash */

	uint64_t seq;			/* lock: tag for new entries */
	uint64_t disk_seq;		/* lock: seq_count durable in the superblock */
	bool txn_dirty;			/* lock: entries tagged seq exist */
	uint64_t nr_uncommitted;	/* lock: blocks allocated in this transaction */
	uint64_t txn_start_ns;		/* lock: first write of this transaction */
	bool overwrote;			/* lock: in-place data writes since the last cache flush */
	atomic_bool origin_dirty;	/* write-around data not yet flushed on the origin */
	uint64_t last_around_ns;	/* lock: for pause_writeback */

	/*
	 * Writes waiting for a free block, first come first served: only the
	 * head may take one, and new writes do not take blocks while anyone
	 * waits (lock).
	 */
	struct wc_space_waiter *space_head, *space_tail;
	uint64_t space_ungranted;	/* lock: waiters still without a block */
	bool wb_sleeping;		/* lock: the writeback thread waits for a kick */

	uint64_t io_epoch;		/* lock */
	uint64_t io_count[2];		/* lock: reads/in-place writes in flight per epoch */
	uint64_t grace_waiters;		/* lock: threads in io_grace() */

	/* lock: when recent commits made seq s durable, at [s % WC_COMMIT_RING] (origin lag) */
	uint64_t commit_seq[WC_COMMIT_RING], commit_ns[WC_COMMIT_RING];
	uint64_t commit_started;	/* lock */
	uint64_t commit_done;		/* lock: number of the last finished commit */

	uint64_t nr_wb;			/* lock: blocks under writeback */
	uint64_t wb_cursor;		/* lock: clock hand for oldest-first selection */
	bool wb_all;			/* lock: "flush" message in progress */
	uint64_t wb_all_waiters;	/* lock */
	uint64_t wb_all_gen;		/* lock: empty passes while wb_all_waiters */
	int wb_error;			/* lock: last writeback error, 0 once it succeeds */
	char wb_msg[256];		/* lock: its text (names the origin), for a flush message */
	uint64_t wb_fail_gen;		/* lock: failed batches */
	bool cleaner;			/* lock */
	bool flush_on_suspend;		/* lock */
	bool want_commit;		/* lock: autocommit_blocks reached */
	bool stopping;			/* lock */

	atomic_int error;		/* sticky: 0 or -errno */

	struct wc_stats st;		/* lock: counters */
	uint64_t open_ns;

	pthread_t wb_thread, svc_thread;
	bool threads_started;
};

/* Byte offset of cache block e on the cache device; is entry e committed (lock)? */
static inline uint64_t blk_off(const struct wcache *c, uint32_t e)
{
	return c->data_off + ((uint64_t)e << c->bs_shift);
}
static inline bool committed(const struct wcache *c, uint32_t e)
{
	return entry_seq(c->meta, e) < c->disk_seq;
}

/* state.c: used by every module; takes no lock, does no I/O */
/* The first error wins; logged once, wakes every waiter. */
void wc_set_error(struct wcache *c, int err, const char *what);
static inline int wc_get_error(struct wcache *c)
{
	return atomic_load_explicit(&c->error, memory_order_acquire);
}
uint32_t wc_now_age(const struct wcache *c);	/* whole seconds since open */
/*
 * Watermarks in blocks (lock): writeback starts when at most free_high are
 * free or on their way to free, and goes on until more than free_low are.
 */
uint64_t wc_free_high(const struct wcache *c);
uint64_t wc_free_low(const struct wcache *c);
void wc_kick_writeback(struct wcache *c);

/* alloc.c (lock held) */
uint32_t wc_alloc_block(struct wcache *c);		/* IDX_NONE if none free */
bool wc_alloc_next_if_free(struct wcache *c, uint32_t e);	/* take e if it is free */
void wc_free_entry(struct wcache *c, uint32_t e);	/* RAM free -> pending list */
void wc_unreserve_block(struct wcache *c, uint32_t e);
/* Hand free blocks to waiting writes, oldest first, and wake them. */
void wc_grant_waiters(struct wcache *c);	/* never installed: back to free */
void wc_install_entry(struct wcache *c, uint32_t e, uint64_t blk);
void wc_old_add(struct wcache *c, uint32_t e);		/* e is superseded, still needed */
void wc_old_remove(struct wcache *c, uint32_t e);
void wc_old_forget(struct wcache *c, uint32_t e);	/* counters only: caller unlinked e */
/* max_age regions: e was installed now (or found valid at recovery); is e's region older than min_age s? */
void wc_region_install(struct wcache *c, uint32_t e);
bool wc_region_older_than(const struct wcache *c, uint32_t e, uint32_t now, uint32_t min_age);
/* May a superseded copy of this sector still exist? (Write-around must not race it.) */
bool wc_old_may_have(const struct wcache *c, uint64_t sector);
uint64_t wc_io_enter(struct wcache *c);
void wc_io_exit(struct wcache *c, uint64_t epoch);

/* commit.c */
int wc_commit(struct wcache *c, bool force_sb);	/* takes meta_mutex and lock */
int wc_persist_and_release(struct wcache *c);	/* meta_mutex + lock held; drops lock for I/O */
int wc_sync_frees(struct wcache *c);		/* takes meta_mutex and lock */
int wc_write_all_meta(struct wcache *c);		/* meta_mutex + lock held */

/* writeback.c */
void *wc_wb_main(void *arg);
int wc_writeback_all(struct wcache *c);

#endif
