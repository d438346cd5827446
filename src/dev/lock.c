/* SPDX-License-Identifier: MIT */
/*
 * The exclusive lock of a cache or origin file (DEV_EXCL).
 *
 * flock belongs to the open file description, and a description outlives
 * the process that opened it while the kernel still holds it: after a
 * kill -9 with io_uring requests in flight, the ring is torn down by a
 * kernel worker after the process has been reaped, and the lock stays for
 * tens of milliseconds more (measured: 8-68 ms with 64 x 1 MiB O_DIRECT
 * writes queued). A restart after a crash must not call that "in use", so
 * when the lock is held we ask /proc/locks who holds it: a live process
 * is refused at once (by pid and name), a dead one is waited for.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "dev.h"

#define LOCK_WAIT_MS 10000	/* how long a dead holder's lock may linger */
#define LOCK_UNLISTED_MS 1000	/* how long a lock /proc/locks does not list may stay */
#define LOCK_POLL_MS 5

/*
 * The pid of the process that took a flock on (dev, ino); 0 if none is
 * listed (released since), -1 if /proc/locks cannot be read.
 */
static pid_t flock_holder(dev_t dev, ino_t ino)
{
	FILE *f = fopen("/proc/locks", "re");
	char line[256], kind[16];
	unsigned maj, min;
	unsigned long long inode;
	pid_t pid = 0;
	int p;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* "1: FLOCK  ADVISORY  WRITE 22590 fe:00:5309137 0 EOF"; waiters have "->". */
		if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%llu", kind, &p, &maj, &min, &inode) != 5)
			continue;
		if (strcmp(kind, "FLOCK") || inode != (unsigned long long)ino ||
		    makedev(maj, min) != dev)
			continue;
		pid = p;
		break;
	}
	fclose(f);
	return pid;
}

/*
 * Whether pid is a running process; its name goes to comm. A zombie has
 * already closed its files, so it counts as gone.
 */
static bool process_running(pid_t pid, char *comm, size_t size)
{
	char path[64], buf[512], *open, *close;
	FILE *f;
	size_t n;

	snprintf(comm, size, "?");
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "PID (COMM) STATE ...": COMM may itself contain ") ". */
	open = strchr(buf, '(');
	close = strrchr(buf, ')');
	if (!open || !close || close < open || close[1] != ' ')
		return true;
	snprintf(comm, size, "%.*s", (int)(close - open - 1), open + 1);
	return close[2] != 'Z' && close[2] != 'X';
}

int dev_lock_exclusive(int fd, const char *path)
{
	struct timespec poll = { 0, LOCK_POLL_MS * 1000000L };
	pid_t holder, waited_for = 0;
	char comm[64];
	struct stat st;
	int ms = 0, unlisted_ms = 0;

	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return wc_err(-errno, "%s: cannot lock: %s", path, strerror(errno));
		if (fstat(fd, &st) < 0)
			return wc_err(-errno, "%s: cannot stat: %s", path, strerror(errno));
		holder = flock_holder(st.st_dev, st.st_ino);
		/*
		 * Not listed: released between flock and /proc/locks (retry), or
		 * held from another pid namespace (listed as pid 0: give up soon).
		 */
		if (holder < 0 || (holder == 0 && unlisted_ms >= LOCK_UNLISTED_MS))
			return wc_err(-EBUSY, "%s is in use by another process (locked)", path);
		if (holder == 0) {
			nanosleep(&poll, NULL);
			unlisted_ms += LOCK_POLL_MS;
			continue;
		}
		if (holder == getpid())
			return wc_err(-EBUSY, "%s is already open in this process (locked)", path);
		if (process_running(holder, comm, sizeof(comm)))
			return wc_err(-EBUSY,
				      "%s is in use by another process (locked by pid %d, %s)",
				      path, (int)holder, comm);
		if (ms >= LOCK_WAIT_MS)
			return wc_err(-EBUSY,
				      "%s is still locked %d s after its holder, pid %d, exited; "
				      "retry, or find the holder in /proc/locks",
				      path, LOCK_WAIT_MS / 1000, (int)holder);
		if (holder != waited_for) {
			wc_log(WC_LOG_INFO, "%s: waiting for the lock of exited pid %d to be released",
			       path, (int)holder);
			waited_for = holder;
		}
		nanosleep(&poll, NULL);
		ms += LOCK_POLL_MS;
	}
	return 0;
}
