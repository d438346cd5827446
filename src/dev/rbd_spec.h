/* SPDX-License-Identifier: MIT */
/*
 * The Ceph RBD origin string, in the style qemu users know:
 *
 *   rbd:POOL/IMAGE[@SNAP][:conf=PATH][:id=NAME][:keyring=PATH][:force_unlock=1][:KEY=VALUE]...
 *
 * Parsing only (no librbd), so it is built and unit-tested everywhere.
 * Any other KEY=VALUE is a Ceph option handed to rados_conf_set (e.g.
 * rados_osd_op_timeout=5, rbd_cache=true). No escapes: no ':' in values.
 */
#ifndef WC_RBD_SPEC_H
#define WC_RBD_SPEC_H

#include <stdbool.h>

#define RBD_SPEC_MAX_OPTS 16

struct rbd_spec {
	char *buf;		/* owns every string below */
	const char *pool, *image;
	const char *snap;	/* NULL: the image head */
	const char *conf, *id, *keyring;	/* NULL: librados defaults */
	bool force_unlock;	/* break a stale exclusive lock held by another client */
	unsigned nr_opts;
	const char *opt_key[RBD_SPEC_MAX_OPTS], *opt_val[RBD_SPEC_MAX_OPTS];
};

/* Does s name an RBD image ("rbd:" prefix)? */
bool rbd_spec_is(const char *s);

/* Parse s into sp (zeroed first). 0, or -EINVAL / -ENOMEM with a message naming s. */
int rbd_spec_parse(const char *s, struct rbd_spec *sp);

void rbd_spec_free(struct rbd_spec *sp);

#endif
