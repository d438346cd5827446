/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/dev/rbd_spec.c: the "rbd:POOL/IMAGE[@SNAP][:key=value]"
 * origin string. Needs no cluster (and no librbd): each accepted form is
 * split as documented, each rejected one fails with -EINVAL and a message
 * naming the string and what is wrong.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "wcache.h"
#include "rbd_spec.h"

static void test_minimal(void **state)
{
	struct rbd_spec sp;

	(void)state;
	assert_true(rbd_spec_is("rbd:p/i"));
	assert_false(rbd_spec_is("/dev/rbd0"));
	assert_false(rbd_spec_is("nbd://x"));
	assert_int_equal(rbd_spec_parse("rbd:pool/img", &sp), 0);
	assert_string_equal(sp.pool, "pool");
	assert_string_equal(sp.image, "img");
	assert_null(sp.snap);
	assert_null(sp.conf);
	assert_null(sp.id);
	assert_null(sp.keyring);
	assert_false(sp.force_unlock);
	assert_int_equal(sp.nr_opts, 0);
	rbd_spec_free(&sp);
}

static void test_full(void **state)
{
	struct rbd_spec sp;

	(void)state;
	assert_int_equal(rbd_spec_parse("rbd:rbd/vm-1@snap2:conf=/etc/c.conf:id=wc:keyring=/k"
					":force_unlock=1:rados_osd_op_timeout=5:rbd_cache=true",
					&sp), 0);
	assert_string_equal(sp.pool, "rbd");
	assert_string_equal(sp.image, "vm-1");
	assert_string_equal(sp.snap, "snap2");
	assert_string_equal(sp.conf, "/etc/c.conf");
	assert_string_equal(sp.id, "wc");
	assert_string_equal(sp.keyring, "/k");
	assert_true(sp.force_unlock);
	assert_int_equal(sp.nr_opts, 2);
	assert_string_equal(sp.opt_key[0], "rados_osd_op_timeout");
	assert_string_equal(sp.opt_val[0], "5");
	assert_string_equal(sp.opt_key[1], "rbd_cache");
	assert_string_equal(sp.opt_val[1], "true");
	rbd_spec_free(&sp);

	/* A bare force_unlock is yes; =0 is no. */
	assert_int_equal(rbd_spec_parse("rbd:p/i:force_unlock", &sp), 0);
	assert_true(sp.force_unlock);
	rbd_spec_free(&sp);
	assert_int_equal(rbd_spec_parse("rbd:p/i:force_unlock=0", &sp), 0);
	assert_false(sp.force_unlock);
	rbd_spec_free(&sp);
}

static void expect_bad(const char *s, const char *msg_part)
{
	struct rbd_spec sp;

	assert_int_equal(rbd_spec_parse(s, &sp), -EINVAL);
	if (!strstr(wcache_last_error(), msg_part) || !strstr(wcache_last_error(), s))
		fail_msg("%s: message \"%s\" lacks \"%s\" or the string", s, wcache_last_error(),
			 msg_part);
	assert_null(sp.buf);	/* nothing left to free */
}

static void test_bad(void **state)
{
	(void)state;
	expect_bad("rbd:", "expected POOL/IMAGE");
	expect_bad("rbd:pool", "expected POOL/IMAGE");
	expect_bad("rbd:/img", "expected POOL/IMAGE");
	expect_bad("rbd:pool/", "expected POOL/IMAGE");
	expect_bad("rbd:a/b/c", "expected POOL/IMAGE");
	expect_bad("rbd:p/i@", "empty snapshot name");
	expect_bad("rbd:p/@s", "empty image name");
	expect_bad("rbd:p/i:", "empty option");
	expect_bad("rbd:p/i::conf=/x", "empty option");
	expect_bad("rbd:p/i:conf", "\"conf\" needs a value");
	expect_bad("rbd:p/i:conf=", "\"conf\" needs a value");
	expect_bad("rbd:p/i:force_unlock=yes", "force_unlock=yes: expected 0 or 1");
	expect_bad("rbd:p/i:Bad Key=1", "is not an option name");
	expect_bad("nbd://x", "not an RBD image");
}

static void test_too_many_opts(void **state)
{
	char s[1024] = "rbd:p/i";

	(void)state;
	for (int i = 0; i <= RBD_SPEC_MAX_OPTS; i++)
		snprintf(s + strlen(s), sizeof(s) - strlen(s), ":k%d=v", i);
	expect_bad(s, "more than 16 Ceph options");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_too_many_opts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
