/* SPDX-License-Identifier: MIT */
/*
 * The fault device, for tests only: a RAM disk with a volatile write cache
 * that can lose, tear or reorder unflushed writes at a chosen operation.
 * Production code never includes this header.
 */
#ifndef WC_FAULT_H
#define WC_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "dev.h"

/*
 * Fault device (tests only): wraps a RAM image that models a disk with a
 * volatile write cache. Writes since the last completed flush are "unstable";
 * fault_crash() simulates a power cut. The engine cannot tell it is under test.
 * Reads see the volatile view (every completed write). A discard zeroes its
 * range and is an unstable write like any other. RANDOM_SUBSET and TEAR apply
 * their surviving writes in a random order (seeded), so an older overlapping
 * write may land over a newer one; TEAR pieces are the 512-byte-aligned sector
 * pieces of each write. All state (data, counters, fault settings) belongs to
 * the storage and is shared by handles from dev_fault_share().
 */
enum fault_crash_mode {
	FAULT_DROP_ALL,		/* every unflushed write is lost */
	FAULT_KEEP_ALL,		/* every unflushed write survived */
	FAULT_RANDOM_SUBSET,	/* each unflushed write survives with p=1/2 (reordering) */
	FAULT_TEAR,		/* random subset, and each survivor is torn per 512-byte sector */
	/*
	 * Persistent memory (pmem mode's cache): stores are atomic per aligned
	 * 8 bytes and reach the media only when flushed and fenced (a completed
	 * flush here). Of the unflushed writes, in a random order, each 64-byte
	 * cache line survives whole, not at all, or torn: any subset of its
	 * 8-byte words.
	 */
	FAULT_PMEM,
};

struct fault_dev_state;

/* Create a fault device of size bytes. */
int dev_fault_open(uint64_t size, struct wc_dev **out);
/*
 * Operation counter: every pread/pwrite/flush/discard increments it (a
 * submitted request when it completes, see fault_set_async).
 */
uint64_t fault_ops(struct wc_dev *dev);
/*
 * Arm a crash at operation number n (counted from now by fault_ops): that op and
 * every later write/flush fail with -EIO and change nothing ("power is gone").
 * n = 0 disarms. Reads and discards fail with -EIO too once power is gone; n = 1
 * means the very next op. Cleared by fault_crash() and fault_heal().
 */
void fault_arm_crash(struct wc_dev *dev, uint64_t n);
/* Fail writes (pwrite) number >= n (1-based, counted from now) with -EIO; 0 disarms. */
void fault_fail_writes_from(struct wc_dev *dev, uint64_t n);
/* Fail every op of kind ("pread","pwrite","flush","discard") while on. */
void fault_set_error(struct wc_dev *dev, const char *op, bool on);
/*
 * Apply the power cut to the durable image per mode/seed and reset to a healthy device.
 * Afterwards reads see the durable image, and the armed crash, fail_writes_from and
 * set_error settings are all cleared.
 */
void fault_crash(struct wc_dev *dev, enum fault_crash_mode mode, uint64_t seed);
/*
 * Make the device healthy again (after a crash) without changing its contents.
 * Clears the armed crash, fail_writes_from and set_error; unstable writes stay unstable.
 */
void fault_heal(struct wc_dev *dev);
/*
 * Bytes of the durable image (what survives a FAULT_DROP_ALL crash), for checks.
 * Read without the lock: call it while no I/O is in flight. Valid until the last handle closes.
 */
const uint8_t *fault_durable(struct wc_dev *dev);
/* A second handle sharing the same storage; storage is freed when the last handle closes. */
int dev_fault_share(struct wc_dev *dev, struct wc_dev **out);

/*
 * Asynchronous mode, off by default. On: every handle of the storage (and
 * every later dev_fault_share) gets a submit hook, so dev_is_async() is true
 * and dev_submit() queues requests instead of running them. A completion
 * thread completes queued requests one at a time in a random order drawn
 * from seed, so completions arrive out of submission order. Each request is
 * executed when it completes, not when submitted: it reads or changes the
 * volatile image, counts in fault_ops() and passes the armed crash and the
 * injected errors exactly as the synchronous call would at that moment; then
 * done() runs on the completion thread. A request still in flight when power
 * is cut (the armed crash firing, or fault_crash()) fails with -EIO, changes
 * nothing and does not count as an op. A submitted FLUSH makes durable
 * exactly the writes (and discards) completed before it was submitted, not
 * those completing after, even if it runs later. The synchronous calls keep
 * running at once beside the queue. Which requests are queued when the
 * thread picks depends on timing, so the order is reproducible from the seed
 * only for requests submitted while held (fault_async_hold).
 * Calling it with on again re-seeds and restarts fault_max_inflight(); off
 * waits for every request in flight (releasing a hold) and stops the thread.
 * Switch modes only while no other thread uses the device.
 */
void fault_set_async(struct wc_dev *dev, bool on, uint64_t seed);
/*
 * While held, submitted requests stay queued (in flight) and none completes;
 * releasing lets the completion thread take them all in seeded random order.
 * Closing a handle or turning async off with requests in flight releases it.
 */
void fault_async_hold(struct wc_dev *dev, bool hold);
/* Submitted requests not completed yet (a request stops counting before its done() runs). */
unsigned fault_inflight(struct wc_dev *dev);
/* The most requests in flight at once since fault_set_async(dev, true, ...). */
unsigned fault_max_inflight(struct wc_dev *dev);

/*
 * Execution hook of one handle, for a test rig that puts the ops of several
 * devices in one order (the crash tests' power-cut wrapper). In asynchronous
 * mode the completion thread calls before(opaque, io) for each request that
 * was submitted through this handle, just before executing it, without the
 * store's lock: before() may block, take the rig's lock and call the
 * synchronous calls of any fault handle. A nonzero return (-errno) fails the
 * request with it: not executed, not counted by fault_ops(). Then, still
 * before done(), after(opaque, io, result) runs with the request's result
 * (whether executed or refused). Requests still execute one at a time per
 * store, in the seeded order. Synchronous calls are not hooked. NULL hook:
 * none. Set it while nothing is in flight through the handle.
 */
struct fault_exec_hook {
	int (*before)(void *opaque, struct wc_io *io);
	void (*after)(void *opaque, struct wc_io *io, int result);
	void *opaque;
};
void fault_set_exec_hook(struct wc_dev *dev, const struct fault_exec_hook *hook);

#endif
