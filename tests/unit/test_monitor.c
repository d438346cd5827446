/* SPDX-License-Identifier: MIT */
/*
 * The frontend's metrics text and sd_notify (src/frontend/metrics.c,
 * monitor.c) on a RAM cache: label values are escaped and an RBD origin's
 * options or a URI's query never reach a label; byte counters stay exact
 * integers; every sample line belongs to a metric with HELP and TYPE; the
 * metrics file is replaced atomically; sd_notify reaches a datagram socket
 * by path and in the abstract namespace.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "wcache.h"
#include "dev.h"
#include "fault.h"
#include "testing.h"
#include "metrics.h"
#include "monitor.h"

static struct wcache *open_named(const char *origin, const char *cache)
{
	struct wc_dev *o, *c;
	struct wc_cfg cfg;
	struct wcache *wc = NULL;

	wcache_cfg_init(&cfg);
	cfg.block_size = 4096;
	snprintf(cfg.origin_path, sizeof(cfg.origin_path), "%s", origin);
	snprintf(cfg.cache_path, sizeof(cfg.cache_path), "%s", cache);
	assert_int_equal(dev_fault_open(4u << 20, &o), 0);
	assert_int_equal(dev_fault_open(1u << 20, &c), 0);
	assert_int_equal(wc_open_devs(&cfg, o, c, &wc), 0);
	return wc;
}

static void test_labels_escaped_and_trimmed(void **state)
{
	struct wcache *wc = open_named("rbd:pool/img:conf=/etc/ceph/x.conf:keyring=/k",
				       "/dev/we\"ird\\name\nx");
	char *text = NULL;
	(void)state;

	assert_true(wc_metrics_text(wc, &text) > 0);
	assert_non_null(strstr(text, "wcache_blocks{cache=\"/dev/we\\\"ird\\\\name\\nx\","
				     "origin=\"rbd:pool/img\"} "));
	assert_null(strstr(text, "keyring"));
	free(text);
	assert_int_equal(wcache_close(wc), 0);

	wc = open_named("nbd+unix:///exp?socket=/run/s.sock&tls-psk-file=/secret", "/c");
	assert_true(wc_metrics_text(wc, &text) > 0);
	assert_non_null(strstr(text, "origin=\"nbd+unix:///exp\""));
	assert_null(strstr(text, "secret"));
	free(text);
	assert_int_equal(wcache_close(wc), 0);
}

/* Every sample's metric has a HELP and a TYPE line before it. */
static void test_every_sample_has_help_and_type(void **state)
{
	struct wcache *wc = open_named("/o", "/c");
	char *text = NULL, *save, *line, last_type[128] = "";
	uint8_t buf[4096] = { 1 };
	int samples = 0;
	(void)state;

	assert_int_equal(wcache_write(wc, buf, sizeof(buf), 0, WC_FUA), 0);
	assert_true(wc_metrics_text(wc, &text) > 0);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128];
		size_t n;

		if (!strncmp(line, "# TYPE ", 7)) {
			sscanf(line + 7, "%127s", last_type);
			continue;
		}
		if (line[0] == '#')
			continue;
		n = strcspn(line, "{");
		assert_true(n < sizeof(name));
		memcpy(name, line, n);
		name[n] = '\0';
		/* Histogram series carry a suffix on the TYPE's name. */
		assert_int_equal(strncmp(name, last_type, strlen(last_type)), 0);
		assert_non_null(strstr(line, "cache=\"/c\",origin=\"/o\""));
		samples++;
	}
	assert_true(samples > 40);
	free(text);
	assert_int_equal(wcache_close(wc), 0);
}

static void test_metrics_file_atomic(void **state)
{
	char dir[] = "/tmp/wc-monitor-XXXXXX", path[64], tmp[80], err[256];
	struct stat st;
	ino_t first;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/m.prom", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(wc_metrics_write_file(path, "a 1\n", 4, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 4);
	assert_int_equal(st.st_mode & 0777, 0644);
	first = st.st_ino;
	assert_int_equal(wc_metrics_write_file(path, "a 22\n", 5, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 5);
	assert_int_not_equal(st.st_ino, first);	/* a new file renamed over the old */
	assert_int_equal(access(tmp, F_OK), -1);
	unlink(path);
	rmdir(dir);
	/* A missing directory: an error naming the file. */
	assert_int_equal(wc_metrics_write_file("/nonexistent/dir/m.prom", "x", 1, err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/dir/m.prom.tmp"));
}

static void notify_roundtrip(const char *env, struct sockaddr_un *sa, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	char buf[128];
	ssize_t n;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)sa, len), 0);
	setenv("NOTIFY_SOCKET", env, 1);
	assert_int_equal(wc_sd_notify("READY=1\nSTATUS=x"), 0);
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_int_equal(n, 16);
	buf[n] = '\0';
	assert_string_equal(buf, "READY=1\nSTATUS=x");
	unsetenv("NOTIFY_SOCKET");
	close(fd);
}

static void test_sd_notify(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[64];
	(void)state;

	/* Without NOTIFY_SOCKET it is a no-op that succeeds. */
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(wc_sd_notify("READY=1"), 0);

	snprintf(path, sizeof(path), "/tmp/wc-notify-%d.sock", (int)getpid());
	unlink(path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	notify_roundtrip(path, &sa, sizeof(sa));
	unlink(path);

	/* "@name": the abstract namespace (a leading NUL, no file). */
	snprintf(path, sizeof(path), "@wc-notify-%d", (int)getpid());
	memset(sa.sun_path, 0, sizeof(sa.sun_path));
	memcpy(sa.sun_path + 1, path + 1, strlen(path) - 1);
	notify_roundtrip(path, &sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path)));

	/* A socket nobody listens on: an error, not a crash. */
	setenv("NOTIFY_SOCKET", "/tmp/wc-notify-nobody.sock", 1);
	assert_true(wc_sd_notify("READY=1") < 0);
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_labels_escaped_and_trimmed),
		cmocka_unit_test(test_every_sample_has_help_and_type),
		cmocka_unit_test(test_metrics_file_atomic),
		cmocka_unit_test(test_sd_notify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
