/* SPDX-License-Identifier: MIT */
/*
 * main() of every fuzz harness (fuzz.h). Under afl-clang-fast: AFL++'s
 * shared-memory test cases in a persistent loop. Otherwise: replay each
 * file named on the command line, and each file inside a named folder, in
 * name order, printing its name first so a failure names its input.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "tmpdir.h"
#include "wcache.h"

/* Inputs larger than this are cut (AFL++ is told -G the same in scripts/fuzz.sh). */
#define FUZZ_MAX_INPUT (1u << 20)

static char tmp_path[512];
static pid_t tmp_pid;

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "fuzz: %s:%d: check failed: %s: ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static void tmp_cleanup(void)
{
	/* Only the process that made it: AFL++'s children share the address space image. */
	if (tmp_path[0] && tmp_pid == getpid())
		tmpdir_remove(tmp_path);
}

const char *fuzz_tmpdir(void)
{
	if (tmp_path[0] && tmp_pid == getpid())
		return tmp_path;
	if (tmpdir_make(tmp_path, sizeof(tmp_path), tmpdir_base(), "fuzz") < 0) {
		fprintf(stderr, "fuzz: cannot make a temporary directory in %s\n", tmpdir_base());
		abort();
	}
	if (!tmp_pid)
		atexit(tmp_cleanup);
	tmp_pid = getpid();
	return tmp_path;
}

static void log_nothing(enum wc_log_level level, const char *msg, void *opaque)
{
	(void)level;
	(void)msg;
	(void)opaque;
}

static bool verbose(void)
{
	const char *v = getenv("WC_FUZZ_VERBOSE");

	return v && !strcmp(v, "1");
}

void fuzz_note(const char *fmt, ...)
{
	va_list ap;

	if (!verbose())
		return;
	fprintf(stderr, "fuzz: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void fuzz_quiet(void)
{
	int fd;

	if (verbose())
		return;
	wcache_set_logger(log_nothing, NULL);
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		fflush(stdout);
		dup2(fd, STDOUT_FILENO);
		close(fd);
	}
}

static int replay_file(const char *path)
{
	uint8_t *buf = malloc(FUZZ_MAX_INPUT);
	size_t len = 0;
	FILE *f;

	if (!buf)
		return -ENOMEM;
	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
		free(buf);
		return -errno;
	}
	len = fread(buf, 1, FUZZ_MAX_INPUT, f);
	fclose(f);
	fprintf(stderr, "fuzz: replaying %s (%zu bytes)\n", path, len);
	fuzz_one(buf, len);
	free(buf);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file in dir, in name order; a folder with no input is an error. */
static int replay_dir(const char *dir, unsigned *nr)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, NULL), ret = 0;

	if (n < 0) {
		fprintf(stderr, "fuzz: %s: %s\n", dir, strerror(errno));
		return -errno;
	}
	char **names = calloc((size_t)n + 1, sizeof(*names));
	int k = 0;

	for (int i = 0; i < n; i++) {
		if (ents[i]->d_name[0] != '.' && names)
			names[k++] = ents[i]->d_name;
	}
	if (names)
		qsort(names, (size_t)k, sizeof(*names), cmp_names);
	for (int i = 0; names && i < k && ret == 0; i++) {
		char path[4096];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			ret = replay_file(path);
			(*nr)++;
		}
	}
	if (!names)
		ret = -ENOMEM;
	free(names);
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return ret;
}

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();
#endif

int main(int argc, char **argv)
{
	unsigned nr = 0;

	if (argc > 1) {
		for (int i = 1; i < argc; i++) {
			struct stat st;
			int ret;

			if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
				ret = replay_dir(argv[i], &nr);
			else {
				ret = replay_file(argv[i]);
				nr++;
			}
			if (ret < 0)
				return 1;
		}
		if (!nr) {
			fprintf(stderr, "fuzz: no inputs found\n");
			return 1;
		}
		fprintf(stderr, "fuzz: %u inputs replayed, no finding\n", nr);
		return 0;
	}
#ifdef __AFL_FUZZ_TESTCASE_LEN
	/* Deferred fork server: the process state up to here is shared by every run. */
	__AFL_INIT();
	const uint8_t *buf = __AFL_FUZZ_TESTCASE_BUF;

	while (__AFL_LOOP(10000)) {
		size_t len = (size_t)__AFL_FUZZ_TESTCASE_LEN;

		fuzz_one(buf, len > FUZZ_MAX_INPUT ? FUZZ_MAX_INPUT : len);
	}
	return 0;
#else
	/* One input on stdin: afl-fuzz without persistent mode, or by hand. */
	{
		uint8_t *buf = malloc(FUZZ_MAX_INPUT);
		size_t len;

		if (!buf)
			return 1;
		len = fread(buf, 1, FUZZ_MAX_INPUT, stdin);
		fuzz_one(buf, len);
		free(buf);
	}
	return 0;
#endif
}
