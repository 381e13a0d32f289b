/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_keyfile.c: key files and hex key strings.
 *
 * Reading accepts exactly 64 hex digits (either case) followed by one "\n",
 * or by nothing: a key pasted with `printf %s` or saved by an editor that
 * drops the final newline is still the same key, and accepting it cannot be
 * confused with anything else. Anything more (CR, spaces, a second line,
 * a 65th digit) is -EBADMSG. Writing always produces lowercase + "\n".
 *
 * Secrets: the hex text of a private key is wiped before every return.
 * Files are opened O_NOFOLLOW|O_CLOEXEC: a symlink planted at a key path
 * is refused (ELOOP), never followed.
 */
#include "sp_keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "sp_fsutil.h"

enum {
	KEYFILE_LEN = SP_KEY_HEX_LEN + 1, /* hex + "\n" */
	PATH_MAX_LEN = 4096,
};

void sp_key_format_hex(char out[SP_KEY_HEX_LEN + 1], const uint8_t key[SP_KEY_LEN])
{
	sodium_bin2hex(out, SP_KEY_HEX_LEN + 1, key, SP_KEY_LEN);
}

int sp_key_parse_hex(uint8_t key[SP_KEY_LEN], const char *hex)
{
	size_t bin_len = 0;
	const char *end = NULL;

	/* strnlen: a string longer than a key is wrong whatever follows. */
	if (strnlen(hex, SP_KEY_HEX_LEN + 1) != SP_KEY_HEX_LEN)
		return -EINVAL;
	/* With hex_end given, sodium_hex2bin stops at the first non-hex
	 * character instead of failing; demand that it consumed all 64. */
	if (sodium_hex2bin(key, SP_KEY_LEN, hex, SP_KEY_HEX_LEN, NULL, &bin_len, &end) != 0 ||
	    bin_len != SP_KEY_LEN || end != hex + SP_KEY_HEX_LEN) {
		sodium_memzero(key, SP_KEY_LEN);
		return -EINVAL;
	}
	return 0;
}

/* Makes a new directory entry (create, rename) durable. */
static int sync_parent(const char *path)
{
	char dir[PATH_MAX_LEN];
	const char *slash = strrchr(path, '/');
	size_t n;
	int fd, ret = 0;

	if (!slash) {
		dir[0] = '.';
		n = 1;
	} else {
		n = slash == path ? 1 : (size_t)(slash - path);
		if (n >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, n);
	}
	dir[n] = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* Writes hex + "\n", fsyncs, closes. fd is consumed. */
static int write_key_fd(int fd, const char hex[SP_KEY_HEX_LEN + 1])
{
	char line[KEYFILE_LEN];
	int ret;

	memcpy(line, hex, SP_KEY_HEX_LEN);
	line[SP_KEY_HEX_LEN] = '\n';
	ret = sp_fsutil_write_all(fd, line, sizeof(line));
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	sodium_memzero(line, sizeof(line));
	return ret;
}

int sp_keyfile_write_private(const char *path, const uint8_t priv[SP_KEY_LEN])
{
	char hex[SP_KEY_HEX_LEN + 1];
	int fd, ret;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* The umask can only remove bits; make it exactly 0600 regardless. */
	if (fchmod(fd, 0600) < 0) {
		ret = -errno;
		close(fd);
		goto fail;
	}
	sp_key_format_hex(hex, priv);
	ret = write_key_fd(fd, hex);
	if (ret < 0)
		goto fail;
	ret = sync_parent(path);
	if (ret < 0)
		goto fail;
	goto out;
fail:
	/* Ours (O_EXCL), half written: leave nothing that looks like a key. */
	unlink(path);
out:
	sodium_memzero(hex, sizeof(hex));
	return ret;
}

int sp_keyfile_write_public(const char *path, const uint8_t pub[SP_KEY_LEN])
{
	static const char suffix[] = ".tmp.XXXXXX";
	char tmp[PATH_MAX_LEN];
	char hex[SP_KEY_HEX_LEN + 1];
	size_t n = strlen(path);
	int fd, ret;

	if (n + sizeof(suffix) > sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n);
	memcpy(tmp + n, suffix, sizeof(suffix));
	/* mkostemp: O_CREAT|O_EXCL in the same directory, so rename is atomic. */
#ifdef _GNU_SOURCE
	fd = mkostemp(tmp, O_CLOEXEC);
#else
	/* POSIX has no mkostemp (the client-only build): close-on-exec set
	 * right after, not atomically. */
	fd = mkstemp(tmp);
	if (fd >= 0)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0644) < 0) {
		ret = -errno;
		close(fd);
		goto fail;
	}
	sp_key_format_hex(hex, pub);
	ret = write_key_fd(fd, hex);
	if (ret < 0)
		goto fail;
	/* rename replaces a symlink at path itself; it never writes through it. */
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto fail;
	}
	return sync_parent(path);
fail:
	unlink(tmp);
	return ret;
}

/*
 * Reads the whole file into buf (at most cap bytes; one byte more than a
 * valid file so an overlong file is seen). fd is borrowed.
 */
static int read_upto(int fd, char *buf, size_t cap, size_t *len)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t r = read(fd, buf + got, cap - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	*len = got;
	return 0;
}

/* Shared by both readers; private = 1 checks the mode and wipes. */
static int read_key(const char *path, uint8_t key[SP_KEY_LEN], int private)
{
	char buf[KEYFILE_LEN + 1];
	struct stat st;
	size_t len = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EBADMSG;
		goto out;
	}
	if (private && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		ret = -EACCES;
		goto out;
	}
	ret = read_upto(fd, buf, sizeof(buf), &len);
	if (ret < 0)
		goto out;
	if (len == KEYFILE_LEN && buf[SP_KEY_HEX_LEN] == '\n')
		len--;
	if (len != SP_KEY_HEX_LEN) {
		ret = -EBADMSG;
		goto out;
	}
	buf[SP_KEY_HEX_LEN] = '\0';
	ret = sp_key_parse_hex(key, buf) < 0 ? -EBADMSG : 0;
out:
	close(fd);
	sodium_memzero(buf, sizeof(buf));
	return ret;
}

int sp_keyfile_read_private(const char *path, uint8_t priv[SP_KEY_LEN])
{
	return read_key(path, priv, 1);
}

int sp_keyfile_read_public(const char *path, uint8_t pub[SP_KEY_LEN])
{
	return read_key(path, pub, 0);
}
