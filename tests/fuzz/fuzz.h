/* SPDX-License-Identifier: MIT */
/*
 * The AFL++ harnesses (fuzz_*.c): each defines fuzz_one(), and fuzz_main.c
 * supplies main(). Built with afl-clang-fast (scripts/fuzz.sh) main() runs
 * AFL++'s persistent loop; built with the normal compiler it replays the
 * files and folders named on the command line (the CTest regression run).
 * A finding is a crash, a sanitizer report or an abort() from a harness
 * check; a harness must never exit() on bad input.
 */
#ifndef WC_FUZZ_H
#define WC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Run one input. Called many times in one process: leave no state behind. */
void fuzz_one(const uint8_t *data, size_t len);

/* A harness check failed: print what and where, then abort (AFL++ records a crash). */
#define FUZZ_CHECK(cond, ...)                                                               \
	do {                                                                                \
		if (!(cond))                                                                \
			fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                  \
	} while (0)

__attribute__((noreturn, format(printf, 4, 5)))
void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...);

/*
 * A private directory for the process's files (created on first use, removed
 * at exit). Created lazily because AFL++ forks the process after main() starts.
 */
const char *fuzz_tmpdir(void);

/* Silence the library's log and the tools' stdout unless WC_FUZZ_VERBOSE=1. */
void fuzz_quiet(void);

/* A line on stderr about what a harness did, only with WC_FUZZ_VERBOSE=1. */
__attribute__((format(printf, 1, 2)))
void fuzz_note(const char *fmt, ...);

#endif
