/* SPDX-License-Identifier: MIT */
/*
 * Shared harness of the crash tests: a power-cut wrapper device that counts
 * operations across the cache and origin devices (one global op order), a
 * per-512-byte-sector oracle of the contents that may survive a crash, a
 * seeded workload generator and runner, and a rig that opens a cache on
 * fault devices through the wrappers.
 */
#ifndef WC_CRASH_RIG_H
#define WC_CRASH_RIG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wcache.h"
#include "dev.h"
#include "fault.h"
#include "rng.h"

#define SECT 512u

uint64_t env_u64(const char *name, uint64_t dflt);

/* ---------------- power-cut wrapper ---------------- */

enum { PC_CACHE = 0, PC_ORIGIN = 1 };
enum pc_kind { PC_READ, PC_WRITE, PC_FLUSH, PC_DISCARD };

struct pc_trace {
	uint8_t dev, kind;
	int8_t refused;
	uint64_t off, len;
	uint64_t t_us;		/* CLOCK_MONOTONIC, microseconds */
};

/*
 * A hook pauses the first op matching (dev, kind, off, thread tag) before it
 * is numbered, until the test releases it: deterministic interleavings.
 */
#define PC_ANY_OFF UINT64_MAX
#define PC_MAX_HOOKS 4

struct pc_hook {
	bool armed, paused, released;
	int dev, kind;
	uint64_t off;		/* PC_ANY_OFF: any */
	int tag;		/* 0: any thread; else pc_set_thread_tag() of the caller */
	unsigned skip;		/* let this many matches pass first */
};

/* Tag the calling thread for hooks. */
void pc_set_thread_tag(int tag);

/*
 * One per rig, shared by the wrappers of both devices. Every op takes the
 * lock, gets the next global number and is forwarded while the lock is held,
 * so "op N" is a point in one total order over both devices.
 *
 * Asynchronous mode (pc->async, set before pcut_wrap; the inner devices must
 * be fault devices in asynchronous mode, see rig_set_async): the wrapper has
 * only a submit hook (dev_is_async() is true, synchronous calls become
 * submitted requests in dev.c) and forwards every request to its fault
 * device, which keeps it in flight and completes it in seeded random order.
 * An op is numbered when it executes, not when submitted: the fault device's
 * exec hook takes the lock, numbers the op and refuses it or lets it execute
 * before dropping the lock, so the order is still one total order of
 * executions over both devices, and a request still in flight at the power
 * cut is refused when it comes to execute (fails with -EIO, changes nothing).
 * Pause hooks match at submission.
 */
struct pcut {
	pthread_mutex_t lock;
	bool async;		/* wrappers made from now on are asynchronous */
	uint64_t ops, writes;
	uint64_t cut_at;	/* ops >= cut_at are refused (power gone); 0: never */
	uint64_t fail_writes_from;	/* global pwrite number from which writes fail; 0: never */
	uint64_t fail_op;	/* this single op fails transiently; 0: never */
	bool cut;
	uint64_t refused;	/* ops refused */
	uint64_t refused_writes, refused_cache_writes;
	struct pc_trace *trace;	/* optional, trace_max entries */
	uint64_t trace_max;
	pthread_mutex_t hook_lock;
	pthread_cond_t hook_cond;
	struct pc_hook hooks[PC_MAX_HOOKS];
};

/* Arm hook i. */
void pc_hook_arm(struct pcut *pc, int i, int dev, int kind, uint64_t off, int tag, unsigned skip);
/* Wait until hook i has paused an op; false after timeout_ms. */
bool pc_hook_wait(struct pcut *pc, int i, unsigned timeout_ms);
/* Let the paused op of hook i go on (and disarm it). */
void pc_hook_release(struct pcut *pc, int i);
/* Cut the power now: every later op fails. */
void pc_cut_now(struct pcut *pc);
/* Has the power been cut (read under the lock: other threads number ops)? */
bool pc_is_cut(struct pcut *pc);
/*
 * Cut the power at global op n (0: never), or (relative) n ops after the
 * last one numbered: under the lock, for a rig that is open.
 */
void pc_arm_cut(struct pcut *pc, uint64_t n, bool relative);

void pcut_init(struct pcut *pc);
void pcut_reset(struct pcut *pc);	/* counters and faults, keeps the trace buffer */
void pcut_destroy(struct pcut *pc);
/* Wrap inner (ownership passes to the wrapper). */
int pcut_wrap(struct pcut *pc, struct wc_dev *inner, int which, struct wc_dev **out);
void pcut_print_trace(const struct pcut *pc, uint64_t from, uint64_t to);

/* ---------------- oracle ---------------- */

/* A set of possible 512-byte contents, by id in the content store; any = no constraint. */
struct cset {
	uint32_t *ids;
	uint32_t n, max;
	bool any;
};

struct model {
	uint64_t nsec;
	struct cset *live;	/* what a read may return now */
	struct cset *cand;	/* what may be there after a crash */
	/* content store */
	uint8_t *data;
	uint64_t nr, cap;
	uint64_t *hashes;
	uint32_t *ht;		/* open addressing, ids + 1, 0 = empty */
	uint64_t ht_size;
};

int model_init(struct model *m, const uint8_t *image, uint64_t bytes);
void model_free(struct model *m);
/* A write of buf to [off, off+len) was attempted; acked = it returned 0. */
void model_write(struct model *m, uint64_t off, uint64_t len, const uint8_t *buf, bool acked);
/* An acked FUA write: its bytes are durable. Call after model_write(acked). */
void model_fua(struct model *m, uint64_t off, uint64_t len, const uint8_t *buf);
/* A flush returned 0. */
void model_flush(struct model *m);
/* Reopen after a failed close: what a read may return is what may survive a crash. */
void model_lose_unflushed(struct model *m);
/* Discard (or any op leaving the range unspecified). */
void model_unknown(struct model *m, uint64_t off, uint64_t len);
/* Check a successful read against live; returns the first bad byte offset or -1. */
int64_t model_check_live(const struct model *m, uint64_t off, uint64_t len, const uint8_t *buf);
/* Check the whole device after a crash; returns the first bad sector or -1. */
int64_t model_check_crash(const struct model *m, const uint8_t *image);
/* After a verified crash: the read image is the new exact state. */
int model_reset_to(struct model *m, const uint8_t *image);
void model_describe_sector(const struct model *m, uint64_t s, const uint8_t *got);

/* ---------------- rig ---------------- */

struct rig_cfg {
	uint32_t bs;
	uint64_t origin_bytes, cache_bytes;
	char opts[256];		/* "name value name value ..." passed to wcache_cfg_set */
};

struct rig {
	struct rig_cfg rc;
	struct wc_dev *origin, *cache;	/* fault stores (test's handles) */
	struct pcut pc;
	struct wcache *wc;
	uint8_t *image;		/* initial origin contents */
	uint32_t full_wait_ms;	/* cfg.full_wait_ms (0: 2000) */
	bool read_only;		/* cfg.read_only */
	/*
	 * Set by rig_open when opts say "mode p": the cache device is persistent
	 * memory, so rig_crash's RANDOM_SUBSET and TEAR cut it with FAULT_PMEM
	 * (8-byte words, 64-byte lines); the origin stays a disk.
	 */
	bool pmem;
};

int rig_init(struct rig *r, const struct rig_cfg *rc, uint64_t seed);
/* A rig whose devices start as copies of the given images (made durable). */
int rig_init_images(struct rig *r, const struct rig_cfg *rc, const uint8_t *origin,
		    const uint8_t *cache);
void rig_fini(struct rig *r);
/*
 * Asynchronous devices from now on (call before rig_open): both fault stores
 * in asynchronous mode (completion orders seeded from seed), asynchronous
 * wrappers; fault_max_inflight(r->cache / r->origin) counts from here.
 */
void rig_set_async(struct rig *r, uint64_t seed);
/* Open through fresh wrappers; returns wcache_open's result. */
int rig_open(struct rig *r);
/* Close if open; returns wcache_close's result. */
int rig_close(struct rig *r);
/* Power cut on both devices (mode, seed), then heal. */
void rig_crash(struct rig *r, enum fault_crash_mode mode, uint64_t seed);
/* Read the whole logical device; returns wcache_read's result. */
int rig_read_all(struct rig *r, uint8_t *buf);

/* ---------------- workload ---------------- */

enum step_kind {
	S_WRITE, S_WRITE_FUA, S_ZEROES, S_FLUSH, S_DISCARD, S_READ, S_MSG_FLUSH, S_REOPEN,
	S_MSG_OTHER,	/* "cleaner", "flush_on_suspend" or "clear_stats" */
	S_NR
};

struct step {
	uint8_t kind;
	uint64_t off, len;
	uint64_t dseed;
};

struct wl_cfg {
	uint64_t nsteps;
	unsigned pct[S_NR];	/* relative weights */
};

/* Generate a workload for geometry (bs, origin_bytes). Caller frees *out. */
int wl_generate(uint64_t seed, const struct wl_cfg *wc, uint32_t bs, uint64_t origin_bytes,
		struct step **out);

struct wl_result {
	uint64_t errors;	/* ops that returned an error */
	uint64_t first_err_step;
	int first_err;
	bool open;		/* the rig is open at the end */
	bool status_error;	/* the status line reported an error at the end */
	int64_t bad_read_step;	/* -1 or the step whose read returned wrong data */
	int64_t bad_read_off;
	uint64_t max_step_ns;
	uint64_t timeouts;	/* writes that gave up waiting for space (-ETIMEDOUT) */
};

/* Run steps on the open rig, updating the model. */
void wl_run(struct rig *r, struct model *m, const struct step *steps, uint64_t n,
	    struct wl_result *res);
const char *step_name(unsigned kind);

/* Quiet engine logger that remembers the last message. */
void quiet_logger(enum wc_log_level level, const char *msg, void *opaque);
const char *quiet_last(void);

#endif
