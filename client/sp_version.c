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
	{ ECONNRESET, "the broker closed the connection" },
	{ ECONNREFUSED, "connection refused: no broker listening at that address" },
	{ EHOSTUNREACH, "broker host unreachable" },
	{ ENETUNREACH, "network unreachable" },
	{ EADDRNOTAVAIL, "no local address or port free to connect from" },
	{ EAGAIN, "the broker's host name could not be looked up now (no network?)" },
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
	{ EOPNOTSUPP, "not available on this kind of client (socket or foreign loop)" },
	{ SEALPOST_ESERVERKEY, "the broker's key is not the pinned server key (the broker changed "
			       "its key, or this is not the broker you pinned)" },
	{ SEALPOST_EUNKNOWNHOST, "unknown host: the broker's host name does not resolve" },
	{ SEALPOST_EKEYMODE, "key file is readable by group or others: chmod 600 it" },
	{ SEALPOST_EKEYFORMAT, "malformed key file: expected 64 hex digits and a newline" },
	{ SEALPOST_EQUEUEFULL, "disconnected, and the offline send queue is full" },
	{ SEALPOST_EDEADPEER, "the broker stopped answering (keepalive timed out)" },
	{ SEALPOST_EFANOUT, "the broker refused the fan-out group: nothing of it was stored" },
	{ SEALPOST_EFANOUTMISMATCH, "the account's device list kept changing: fan-out not sent "
				    "after every retry" },
	{ SEALPOST_EFANOUTLIE, "the broker's fan-out answer contradicts the account's signed "
			       "device list: not believed, nothing more sent" },
	{ SEALPOST_EFANOUTNONE, "the account has no device to send to but this one" },
	{ SEALPOST_ELOGPROOF, "the broker's transparency log proof does not verify: list refused" },
	{ SEALPOST_ESPLITVIEW, "SPLIT VIEW: the broker's transparency log showed two different "
			       "histories" },
	{ SEALPOST_ELOGKEY, "the broker's transparency log key is unknown or not the one kept" },
	{ SEALPOST_EACCESSMISSING, "anonymous send without an access key, and the recipient does "
				   "not accept anonymous sends from anyone" },
	{ SEALPOST_EACCESSWRONG, "anonymous send refused: not the recipient's access key" },
	{ SEALPOST_EACCESSROTATED, "anonymous send refused: the recipient rotated its access key "
				   "(ask it for the new one)" },
	{ SEALPOST_EANONLIMIT, "anonymous send refused: the broker's anonymous rate limit" },
	{ SEALPOST_EACCESSBADKEY, "an access key must be 16 or 32 bytes" },
	{ SEALPOST_EANONYMOUS, "not possible on an anonymous connection (or only on one)" },
	{ SEALPOST_EENROLREQUIRED, "this broker takes registered devices only: connect once with an "
				   "enrolment token (sealpostd mint-token)" },
	{ SEALPOST_EENROLTOKEN, "the enrolment token is malformed, not this broker's, or expired" },
	{ SEALPOST_EENROLUSED, "the enrolment token was already used by another device" },
	{ SEALPOST_EPREKEYBAD, "prekey bundle refused: a signature or key is not the device's "
			       "(forged or substituted)" },
	{ SEALPOST_ENOTONLIST, "that device is not on the account's verified device list" },
	{ SEALPOST_ENOPREKEY, "the broker has no prekeys of that device" },
	{ SEALPOST_EPREKEYLIMIT, "prekey upload refused: above the broker's per-upload or "
				 "per-device limit" },
	{ SEALPOST_EPREKEYRATE, "prekey fetch refused: the broker's fetch rate limit" },
	{ SEALPOST_EPREKEYREFUSED, "the broker refused the prekeys as malformed or not signed by "
				   "this device" },
	{ SEALPOST_ESTORAGEKEY, "the session store does not open under this storage key, or "
				"is damaged" },
	{ SEALPOST_ESESSIONFULL, "the session store holds its maximum of sessions" },
	{ SEALPOST_ERATCHETSKIP, "envelope refused: further ahead in its session than the "
				 "ratchet's MAX_SKIP allows" },
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
