/* SPDX-License-Identifier: Apache-2.0 */
/*
 * driver.c: a stand-in for libFuzzer's main, linked with each fuzz_*.c when
 * the build is not a libFuzzer build, so that ctest exercises every target.
 *
 *   fuzz_x [-runs=N] [-seed=S] [corpus_dir_or_file ...]
 *
 * Replays every file of the corpus (directories are read one level deep, in
 * name order; a missing directory counts as empty), then runs N mutated
 * inputs derived from the corpus with a deterministic generator (seed S,
 * default 1): bit flips, byte sets, truncations, insertions, erasures and
 * splices of two entries. Every input is passed in a heap buffer of exactly
 * its size, so ASan sees any read past the end. Other -flags are accepted
 * and ignored, like libFuzzer's. A crash is the failure signal: the input
 * that caused it is written to ./crash-driver.bin and its origin (corpus file,
 * or mutation run and seed: the runs are reproducible) to stderr. Otherwise
 * it prints a summary line and exits 0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target, as in libFuzzer. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
/* Present when built with ASan/UBSan: called before the sanitizer exits. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

enum {
	FILE_MAX = 1 << 20,     /* larger corpus files are skipped */
	MUTANT_MAX = 1 << 17,   /* mutated inputs never grow past this */
};

struct input {
	uint8_t *data;
	size_t len;
	char *name;             /* file it came from */
};

struct corpus {
	struct input *v;
	size_t n, cap;
};

static uint64_t rng_state;

/* splitmix64: tiny, deterministic, good enough to pick mutations. */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static void corpus_add(struct corpus *c, uint8_t *data, size_t len, const char *name)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 16;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
		if (!c->v)
			die("realloc");
	}
	c->v[c->n].data = data;
	c->v[c->n].len = len;
	c->v[c->n].name = strdup(name);
	if (!c->v[c->n].name)
		die("strdup");
	c->n++;
}

static void load_file(struct corpus *c, const char *path)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *buf;

	if (!f) {
		fprintf(stderr, "driver: %s: %s (skipped)\n", path, strerror(errno));
		return;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
		fclose(f);
		return;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		die("malloc");
	if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
		die(path);
	fclose(f);
	corpus_add(c, buf, (size_t)st.st_size, path);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_path(struct corpus *c, const char *path)
{
	struct stat st;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "driver: %s: %s (starting from an empty corpus)\n", path,
			strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		load_file(c, path);
		return;
	}
	d = opendir(path);
	if (!d)
		die(path);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			names = realloc(names, cap * sizeof(*names));
			if (!names)
				die("realloc");
		}
		names[n] = malloc(strlen(path) + strlen(de->d_name) + 2);
		if (!names[n])
			die("malloc");
		sprintf(names[n], "%s/%s", path, de->d_name);
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		load_file(c, names[i]);
		free(names[i]);
	}
	free(names);
}

/* The input being run, for the crash report. */
static const uint8_t *cur_data;
static size_t cur_len;
static char cur_desc[512];

/* Async-signal-safe: only open/write/close. */
static void dump_current(void)
{
	static const char path[] = "crash-driver.bin";
	int fd;

	if (!cur_desc[0])
		return;
	if (write(2, cur_desc, strlen(cur_desc)) < 0)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		if (cur_len && write(fd, cur_data, cur_len) < 0)
			(void)0;
		close(fd);
	}
	cur_desc[0] = 0;
}

static void on_signal(int sig)
{
	dump_current();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Calls the target with a copy of exactly len bytes (ASan catches overreads). */
static void run_one(const uint8_t *data, size_t len, const char *desc)
{
	uint8_t *copy = malloc(len ? len : 1);

	if (!copy)
		die("malloc");
	if (len)
		memcpy(copy, data, len);
	cur_data = copy;
	cur_len = len;
	snprintf(cur_desc, sizeof(cur_desc),
		 "driver: crash on %s (%zu bytes), saved to crash-driver.bin\n", desc, len);
	LLVMFuzzerTestOneInput(copy, len);
	cur_desc[0] = 0;
	free(copy);
}

static const uint8_t interesting[] = { 0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, 0x10, 0x20, 0x40 };

/* Applies one mutation to buf (len bytes, room for MUTANT_MAX); returns the new length. */
static size_t mutate_once(uint8_t *buf, size_t len, const struct corpus *c)
{
	size_t pos, n;

	switch (rnd_below(7)) {
	case 0: /* flip a bit */
		if (len)
			buf[rnd_below(len)] ^= (uint8_t)(1u << rnd_below(8));
		break;
	case 1: /* set a byte to a random or interesting value */
		if (len)
			buf[rnd_below(len)] = rnd() & 1 ? (uint8_t)rnd() :
					      interesting[rnd_below(sizeof(interesting))];
		break;
	case 2: /* truncate */
		len = rnd_below(len + 1);
		break;
	case 3: /* insert random bytes */
		n = 1 + rnd_below(rnd() & 1 ? 4 : 64);
		if (len + n > MUTANT_MAX)
			break;
		pos = rnd_below(len + 1);
		memmove(buf + pos + n, buf + pos, len - pos);
		for (size_t i = 0; i < n; i++)
			buf[pos + i] = (uint8_t)rnd();
		len += n;
		break;
	case 4: /* erase a range */
		if (!len)
			break;
		pos = rnd_below(len);
		n = 1 + rnd_below(len - pos);
		memmove(buf + pos, buf + pos + n, len - pos - n);
		len -= n;
		break;
	case 5: /* splice: our prefix, another entry's suffix */
		if (c->n) {
			const struct input *o = &c->v[rnd_below(c->n)];
			size_t from = rnd_below(o->len + 1);

			pos = rnd_below(len + 1);
			n = o->len - from;
			if (pos + n > MUTANT_MAX)
				n = MUTANT_MAX - pos;
			memcpy(buf + pos, o->data + from, n);
			len = pos + n;
		}
		break;
	default: /* overwrite a few bytes with a copy from elsewhere in the input */
		if (len > 1) {
			size_t src = rnd_below(len), dst = rnd_below(len);

			n = 1 + rnd_below(16);
			if (n > len - src)
				n = len - src;
			if (n > len - dst)
				n = len - dst;
			memmove(buf + dst, buf + src, n);
		}
		break;
	}
	return len;
}

int main(int argc, char **argv)
{
	struct corpus c = { 0 };
	unsigned long long runs = 0, seed = 1;
	uint8_t *buf;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(dump_current);
	signal(SIGABRT, on_signal);
	signal(SIGSEGV, on_signal);
	signal(SIGBUS, on_signal);
	signal(SIGFPE, on_signal);
	signal(SIGILL, on_signal);
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "-runs=", 6) == 0)
			runs = strtoull(argv[i] + 6, NULL, 10);
		else if (strncmp(argv[i], "-seed=", 6) == 0)
			seed = strtoull(argv[i] + 6, NULL, 10);
		else if (argv[i][0] == '-')
			; /* another libFuzzer flag: not ours */
		else
			load_path(&c, argv[i]);
	}
	rng_state = seed;

	for (size_t i = 0; i < c.n; i++) {
		char desc[300];

		snprintf(desc, sizeof(desc), "corpus input %zu (%.200s)", i, c.v[i].name);
		run_one(c.v[i].data, c.v[i].len, desc);
	}
	if (c.n == 0)
		run_one(NULL, 0, "the empty input");

	buf = malloc(MUTANT_MAX);
	if (!buf)
		die("malloc");
	for (unsigned long long r = 0; r < runs; r++) {
		size_t len = 0, n_mut = 1 + rnd_below(4);
		char desc[96];

		if (c.n) {
			const struct input *base = &c.v[rnd_below(c.n)];

			len = base->len < MUTANT_MAX ? base->len : MUTANT_MAX;
			memcpy(buf, base->data, len);
		}
		for (size_t m = 0; m < n_mut; m++)
			len = mutate_once(buf, len, &c);
		snprintf(desc, sizeof(desc), "mutation run %llu of -seed=%llu", r + 1, seed);
		run_one(buf, len, desc);
	}
	printf("driver: %zu corpus inputs, %llu mutated runs, seed %llu: no crash\n", c.n, runs,
	       seed);
	free(buf);
	for (size_t i = 0; i < c.n; i++) {
		free(c.v[i].data);
		free(c.v[i].name);
	}
	free(c.v);
	return 0;
}
