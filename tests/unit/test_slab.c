/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_slab.c: locked slots for secrets (lib/crypto/sp_slab.c).
 *
 * Real memory throughout: the chunks are sodium_malloc'd and the kernel's
 * view of them is read back from /proc/self/smaps (VmFlags "lo" = locked,
 * "dd" = left out of core dumps). The mlock fallback is the kernel's own
 * refusal: a child process drops CAP_IPC_LOCK and sets RLIMIT_MEMLOCK to 0,
 * the way an unprivileged broker under a small LimitMEMLOCK= sees it.
 */
#include <errno.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_slab.h"

/* AddressSanitizer intercepts mlock and does nothing (it returns 0): no
 * page is locked and none can fail to be, so what the kernel says about
 * locking is only checked in a plain build. */
#if defined(__SANITIZE_ADDRESS__)
#define SP_MLOCK_REAL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SP_MLOCK_REAL 0
#endif
#endif
#ifndef SP_MLOCK_REAL
#define SP_MLOCK_REAL 1
#endif

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* The VmFlags of the mapping holding p (from /proc/self/smaps) into
 * flags; false if p is in no mapping. */
static bool vm_flags(const void *p, char *flags, size_t cap)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, found = false;
	uintptr_t a = (uintptr_t)p;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= lo && a < hi;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(flags, cap, "%s", line + 8);
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

static bool has_flag(const char *flags, const char *fl)
{
	char want[8];

	snprintf(want, sizeof(want), " %s", fl);
	return strstr(flags, want) != NULL;
}

static int group_setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

/* Slots are distinct, 8-aligned, zeroed when handed out; the chunk is
 * locked and out of core dumps; a freed slot is zeroed at once. */
static void test_alloc_free_zero(void **state)
{
	struct sp_slab sl;
	uint8_t *p[8];
	char fl[512];

	(void)state;
	assert_int_equal(sp_slab_init(&sl, 100, 0, 0), 0);
	assert_int_equal(sl.slot_size, 104);    /* rounded up to 8 */
	assert_int_equal(sp_slab_bytes(&sl), 0); /* nothing mapped before the first alloc */
	for (int i = 0; i < 8; i++) {
		p[i] = sp_slab_alloc(&sl);
		assert_non_null(p[i]);
		assert_int_equal((uintptr_t)p[i] % SP_SLAB_ALIGN, 0);
		assert_true(all_zero(p[i], sl.slot_size));
		memset(p[i], 0xa0 + i, sl.slot_size);
		for (int j = 0; j < i; j++)
			assert_true(p[j] + sl.slot_size <= p[i] || p[i] + sl.slot_size <= p[j]);
	}
	assert_int_equal(sl.used, 8);
	assert_int_equal(sl.live, 1);
	assert_int_equal(sl.unlocked, 0);
	assert_int_equal(sl.lock_failures, 0);
	/* One sodium_malloc: the payload rounded to pages plus 3 pages. */
	assert_int_equal(sp_slab_bytes(&sl) % (uint64_t)sysconf(_SC_PAGESIZE), 0);
	assert_true(vm_flags(p[0], fl, sizeof(fl)));
	assert_true(!SP_MLOCK_REAL || has_flag(fl, "lo"));
	assert_true(has_flag(fl, "dd"));
	/* The neighbours keep their bytes; the freed slot is zero. */
	assert_int_equal(sp_slab_free(&sl, p[3]), 0);
	assert_true(all_zero(p[3], sl.slot_size));
	assert_int_equal(p[2][0], 0xa2);
	assert_int_equal(p[4][sl.slot_size - 1], 0xa4);
	assert_int_equal(sl.used, 7);
	/* The slot comes back, zeroed. */
	assert_ptr_equal(sp_slab_alloc(&sl), p[3]);
	assert_true(all_zero(p[3], sl.slot_size));
	for (int i = 0; i < 8; i++)
		assert_int_equal(sp_slab_free(&sl, p[i]), 0);
	assert_int_equal(sl.used, 0);
	/* The last chunk stays as the spare, zeroed. */
	assert_int_equal(sl.live, 1);
	for (int i = 0; i < 8; i++)
		assert_true(all_zero(p[i], sl.slot_size));
	assert_int_equal(sp_slab_free(&sl, NULL), 0);
	sp_slab_destroy(&sl);
	assert_int_equal(sp_slab_bytes(&sl), 0);
}

/* A live slot freed twice, or a pointer that is no slot, is refused and
 * changes nothing. */
/* sp_slab_fit leaves room for sodium_malloc's 16-byte canary inside the
 * chunk's pages, and the default chunk is laid out so. */
static void test_fit(void **state)
{
	struct sp_slab sl;

	(void)state;
	/* 120-byte slots: 128-byte strides with the header; 64 KiB would be
	 * 512 of them, whose canary would map a 17th page. */
	assert_int_equal(sp_slab_fit(120, 64 << 10), 511);
	assert_int_equal(sp_slab_fit(117, 256 << 10), (uint32_t)(((256 << 10) - 16) / 128));
	assert_int_equal(sp_slab_fit(SP_SLAB_CHUNK_BYTES, 100), 1);
	assert_int_equal(sp_slab_init(&sl, 120, 0, 0), 0);
	assert_int_equal(sl.per_chunk, 511);
	assert_non_null(sp_slab_alloc(&sl));
	/* 16 payload pages and libsodium's three. */
	assert_int_equal(sp_slab_bytes(&sl), (uint64_t)(16 + 3) * (uint64_t)sysconf(_SC_PAGESIZE));
	sp_slab_destroy(&sl);
}

/* A slot its owner wiped goes back without a second wipe, under the
 * same checks as sp_slab_free (a double free is refused). */
static void test_free_wiped(void **state)
{
	struct sp_slab sl;
	uint8_t *a, *b;

	(void)state;
	assert_int_equal(sp_slab_init(&sl, 64, 4, 0), 0);
	a = sp_slab_alloc(&sl);
	assert_non_null(a);
	memset(a, 0x5a, 64);
	sodium_memzero(a, 64);
	assert_int_equal(sp_slab_free_wiped(&sl, a), 0);
	assert_int_equal(sl.used, 0);
	assert_int_equal(sp_slab_free_wiped(&sl, a), -EINVAL);
	assert_int_equal(sp_slab_free_wiped(&sl, NULL), 0);
	b = sp_slab_alloc(&sl);
	assert_ptr_equal(b, a);                 /* the same slot, handed out zeroed */
	assert_true(all_zero(b, 64));
	assert_int_equal(sp_slab_free(&sl, b), 0);
	sp_slab_destroy(&sl);
}

static void test_bad_free(void **state)
{
	struct sp_slab sl;
	uint8_t *a, *b;

	(void)state;
	assert_int_equal(sp_slab_init(&sl, 64, 4, 0), 0);
	a = sp_slab_alloc(&sl);
	b = sp_slab_alloc(&sl);
	assert_non_null(a);
	assert_non_null(b);
	memset(b, 0x77, 64);
	assert_true(sp_slab_holds(&sl, a));
	assert_false(sp_slab_holds(&sl, b + 16));
	assert_int_equal(sp_slab_free(&sl, a), 0);
	assert_false(sp_slab_holds(&sl, a));
	assert_int_equal(sp_slab_free(&sl, a), -EINVAL);
	assert_int_equal(sp_slab_free(&sl, b + 16), -EINVAL);
	assert_int_equal(sl.used, 1);
	assert_int_equal(b[0], 0x77);
	assert_int_equal(sp_slab_free(&sl, b), 0);
	assert_int_equal(sl.used, 0);
	sp_slab_destroy(&sl);
	assert_int_equal(sp_slab_init(&sl, 0, 0, 0), -EINVAL);
	assert_int_equal(sp_slab_init(&sl, SP_SLAB_CHUNK_BYTES + 1, 0, 0), -EINVAL);
}

/* Grows a chunk at a time; chunks emptied go back to the system except one
 * spare; a hole left by a released chunk is reused. */
static void test_grow_shrink(void **state)
{
	struct sp_slab sl;
	void *p[40];
	uint64_t one;

	(void)state;
	assert_int_equal(sp_slab_init(&sl, 48, 4, 0), 0);
	p[0] = sp_slab_alloc(&sl);
	assert_non_null(p[0]);
	one = sp_slab_bytes(&sl);
	for (int i = 1; i < 40; i++) {
		p[i] = sp_slab_alloc(&sl);
		assert_non_null(p[i]);
		assert_int_equal(sl.live, (uint32_t)(i / 4 + 1));
	}
	assert_int_equal(sl.live, 10);
	assert_int_equal(sp_slab_bytes(&sl), 10 * one);
	/* Emptying chunks one by one: the first empty one is kept, the rest go. */
	for (int i = 0; i < 40; i++)
		assert_int_equal(sp_slab_free(&sl, p[i]), 0);
	assert_int_equal(sl.used, 0);
	assert_int_equal(sl.live, 1);
	assert_int_equal(sl.empty, 1);
	assert_int_equal(sp_slab_bytes(&sl), one);
	/* Growing again fills the holes of the chunk table first. */
	for (int i = 0; i < 12; i++)
		assert_non_null(p[i] = sp_slab_alloc(&sl));
	assert_int_equal(sl.live, 3);
	assert_true(sl.nchunks <= 10);
	sp_slab_destroy(&sl);
	assert_int_equal(sl.live, 0);
}

/* max_bytes: the slab stops growing there (NULL, nothing else changes) and
 * a freed slot can be had again. */
static void test_exhaustion(void **state)
{
	struct sp_slab sl, probe;
	void *p[9], *extra;

	(void)state;
	assert_int_equal(sp_slab_init(&probe, 48, 4, 0), 0);
	assert_non_null(sp_slab_alloc(&probe));
	assert_int_equal(sp_slab_init(&sl, 48, 4, 2 * sp_slab_bytes(&probe)), 0);
	sp_slab_destroy(&probe);
	for (int i = 0; i < 8; i++)
		assert_non_null(p[i] = sp_slab_alloc(&sl));
	p[8] = sp_slab_alloc(&sl);
	assert_null(p[8]);
	assert_int_equal(sl.used, 8);
	assert_int_equal(sl.live, 2);
	assert_int_equal(sp_slab_free(&sl, p[5]), 0);
	extra = sp_slab_alloc(&sl);
	assert_ptr_equal(extra, p[5]);
	assert_null(sp_slab_alloc(&sl));
	sp_slab_destroy(&sl);
}

/* What the child checks, as an exit code: 0 = all held, else the step. */
static int fallback_child(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	struct rlimit rl = { 0, 0 };
	struct sp_slab sl;
	uint8_t *p[6];
	char fl[512];

	if (syscall(SYS_capget, &h, d))
		return 2;
	d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	d[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
	if (syscall(SYS_capset, &h, d) || setrlimit(RLIMIT_MEMLOCK, &rl))
		return 3;
	if (sp_slab_init(&sl, 64, 2, 0))
		return 4;
	for (int i = 0; i < 6; i++) {
		p[i] = sp_slab_alloc(&sl);
		if (!p[i] || !all_zero(p[i], sl.slot_size))
			return 5;
		memset(p[i], 0x5c, sl.slot_size);
	}
	/* Every chunk is there, unlocked and counted, still out of dumps. */
	if (sl.live != 3 || sl.unlocked != 3 || sl.lock_failures != 3)
		return 6;
	if (!vm_flags(p[0], fl, sizeof(fl)) || has_flag(fl, "lo") || !has_flag(fl, "dd"))
		return 7;
	/* Zeroed on free all the same. */
	for (int i = 0; i < 6; i++)
		if (sp_slab_free(&sl, p[i]))
			return 8;
	if (!all_zero(p[0], sl.slot_size) || sl.live != 1 || sl.unlocked != 1 ||
	    sl.lock_failures != 3)
		return 9;
	sp_slab_destroy(&sl);
	return 0;
}

/* The kernel refuses the lock: chunks are still handed out (unlocked,
 * counted), still zeroed on free. */
static void test_mlock_fallback(void **state)
{
	int status = 0;
	pid_t pid;

	(void)state;
	if (!SP_MLOCK_REAL) {
		print_message("SKIP: mlock is a no-op under AddressSanitizer\n");
		skip();
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fallback_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_free_zero),
		cmocka_unit_test(test_bad_free),
		cmocka_unit_test(test_fit),
		cmocka_unit_test(test_free_wiped),
		cmocka_unit_test(test_grow_shrink),
		cmocka_unit_test(test_exhaustion),
		cmocka_unit_test(test_mlock_fallback),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
