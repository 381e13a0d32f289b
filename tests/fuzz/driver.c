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
 * and ignored, like libFuzzer's. A crash is the failure signal; otherwise it
 * prints a summary line and exits 0.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target, as in libFuzzer. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

enum {
	FILE_MAX = 1 << 20,     /* larger corpus files are skipped */
	MUTANT_MAX = 1 << 17,   /* mutated inputs never grow past this */
};

struct input {
	uint8_t *data;
	size_t len;
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

static void corpus_add(struct corpus *c, uint8_t *data, size_t len)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 16;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
		if (!c->v)
			die("realloc");
	}
	c->v[c->n].data = data;
	c->v[c->n].len = len;
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
	corpus_add(c, buf, (size_t)st.st_size);
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

/* Calls the target with a copy of exactly len bytes (ASan catches overreads). */
static void run_one(const uint8_t *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);

	if (!copy)
		die("malloc");
	if (len)
		memcpy(copy, data, len);
	LLVMFuzzerTestOneInput(copy, len);
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
			buf[rnd_below(len)] = rnd() & 1 ? (uint8_t)rnd()
							: interesting[rnd_below(sizeof(interesting))];
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

	for (size_t i = 0; i < c.n; i++)
		run_one(c.v[i].data, c.v[i].len);
	if (c.n == 0)
		run_one(NULL, 0);

	buf = malloc(MUTANT_MAX);
	if (!buf)
		die("malloc");
	for (unsigned long long r = 0; r < runs; r++) {
		size_t len = 0, n_mut = 1 + rnd_below(4);

		if (c.n) {
			const struct input *base = &c.v[rnd_below(c.n)];

			len = base->len < MUTANT_MAX ? base->len : MUTANT_MAX;
			memcpy(buf, base->data, len);
		}
		for (size_t m = 0; m < n_mut; m++)
			len = mutate_once(buf, len, &c);
		run_one(buf, len);
	}
	printf("driver: %zu corpus inputs, %llu mutated runs, seed %llu: no crash\n", c.n, runs,
	       seed);
	free(buf);
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i].data);
	free(c.v);
	return 0;
}
