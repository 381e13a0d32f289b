/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_fsutil.h: writing a whole buffer, replacing a file atomically, making
 * a directory path, growing a heap buffer.
 *
 * Layering: util (POSIX only). Errors: 0 or a negative errno.
 */
#ifndef SP_FSUTIL_H
#define SP_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Writes all len bytes of buf to fd (buf borrowed for the call), retrying
 * short writes and EINTR. -errno from write(2); -EPIPE if write returned 0.
 * For blocking descriptors: on a non-blocking one, -EAGAIN ends it with
 * part of the buffer written.
 */
int sp_fsutil_write_all(int fd, const void *buf, size_t len);

/*
 * Replaces the file at path with len bytes of buf (borrowed for the call),
 * atomically and durably: path.tmp is written with mode, fsync'd, renamed
 * over path, and the directory fsync'd so that the rename survives a power
 * loss too. A reader sees the old file or the new one, never a part. On
 * failure path is untouched and path.tmp removed. 0, -ENOMEM, or -errno
 * of the step that failed (-EIO for a short write).
 */
int sp_fsutil_replace(const char *path, const void *buf, size_t len, mode_t mode);

/*
 * mkdir -p: makes every missing component of path, the parents with
 * parent_mode and the last one with mode (so a directory that will hold a
 * private key can be 0700 while its parents stay 0755). Existing directories
 * are left as they are. -ENOTDIR if path (or a parent) exists and is not a
 * directory; -ENAMETOOLONG beyond PATH_MAX.
 */
int sp_fsutil_mkdir_p(const char *path, mode_t parent_mode, mode_t mode);

/*
 * Grows a realloc'd buffer to at least need bytes, doubling from *cap (or
 * from first, if *cap is 0), so appends cost amortised O(1).
 * buf: owned by the caller, NULL or from malloc/realloc.
 * Returns the buffer to use from now on (buf itself when it is big enough
 * already and not NULL), with *cap updated; NULL when out of memory, and
 * then buf is still valid and still the caller's, and *cap is unchanged.
 */
void *sp_fsutil_grow(void *buf, size_t *cap, size_t need, size_t first);

#endif
