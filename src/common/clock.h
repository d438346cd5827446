/* SPDX-License-Identifier: MIT */
/*
 * The library's one clock: CLOCK_MONOTONIC in nanoseconds (never jumps with
 * the wall clock), and what pthread_cond_timedwait needs to wait on it. A
 * deadline from wc_deadline_ts() means nothing to a condition variable that
 * was not set up by wc_cond_init_monotonic(): the default clock is REALTIME.
 */
#ifndef WC_CLOCK_H
#define WC_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t wc_now_ns(void);

/* The absolute time for pthread_cond_timedwait() of a deadline on the wc_now_ns() clock. */
struct timespec wc_deadline_ts(uint64_t deadline_ns);

/* pthread_cond_init() with CLOCK_MONOTONIC as the clock of timed waits. */
void wc_cond_init_monotonic(pthread_cond_t *cond);

#endif
