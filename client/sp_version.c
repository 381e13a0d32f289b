/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_version.c: sealpost_version() and sealpost_strerror(), the library's
 * own words for what it returns.
 */
#include <errno.h>
#include <limits.h>

#include "sealpost.h"

SEALPOST_API const char *sealpost_version(void)
{
	return SEALPOST_VERSION_STRING;
}

/*
 * One entry per code the library returns (the "Errors:" block of
 * sealpost.h), worded for what it means here rather than strerror's
 * generic sense: -EBADMSG is a failed authentication, -EPROTO a broker
 * that broke the protocol. A table, not a switch, so the unit test can
 * check every entry has a text of its own.
 */
static const struct {
	int err;
	const char *text;
} texts[] = {
	{ 0, "success" },
	{ EINVAL, "invalid argument" },
	{ ENOMEM, "out of memory" },
	{ EMSGSIZE, "message too large for the broker, or output buffer too small" },
	{ ETIMEDOUT, "timed out" },
	{ ECONNRESET, "the broker closed the connection (with IK: possibly a wrong server key)" },
	{ ECONNREFUSED, "connection refused: no broker listening at that address" },
	{ EHOSTUNREACH, "broker host unreachable" },
	{ ENETUNREACH, "network unreachable" },
	{ EADDRNOTAVAIL, "broker host name did not resolve" },
	{ EPROTO, "the broker broke the protocol" },
	{ EBADMSG, "authentication failed: tampered, not for this key, or malformed" },
	{ ENOTCONN, "the connection is closed" },
	{ ENOBUFS, "send queue full: flush and retry" },
	{ E2BIG, "connect options set a field this library does not know" },
	{ ENOENT, "key file not found" },
	{ EACCES, "key file permission denied, or readable by group or others" },
	{ EEXIST, "key file already exists" },
	{ ENAMETOOLONG, "key file path too long" },
	{ ELOOP, "key file path is a symbolic link" },
	{ ENOSPC, "no space left to write the key file" },
	{ EROFS, "key file system is read-only" },
	{ EIO, "input/output error" },
};

SEALPOST_API const char *sealpost_strerror(int err)
{
	size_t i;

	if (err < 0 && err != INT_MIN)
		err = -err;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].err == err)
			return texts[i].text;
	return "unknown error";
}
