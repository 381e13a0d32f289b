/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support_core.h: what the seizure tests need to look at a broker the way
 * someone holding the machine could: a core of the running process (gdb's
 * gcore), the files of its data directory, its log; and a byte search.
 */
#ifndef SP_IT_SUPPORT_CORE_H
#define SP_IT_SUPPORT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "support.h"

/* gcore's path, or NULL if it is not installed (Debian package gdb). */
const char *sp_it_gcore_path(void);

/*
 * Dumps the running broker b to prefix.PID (written into path, cap bytes):
 * 0; -ENOENT without gcore; -EPERM if gcore could not dump it (no ptrace
 * rights here: out holds its output). The broker runs on afterwards.
 */
int sp_it_gcore(const struct sp_it_broker *b, const char *prefix, char *path, size_t cap,
		char *out, size_t out_cap);

/* Polls sealpost_connections_open on b's /metrics until it is want or
 * wait_ms pass: the last value read (-1 if unreadable). */
long sp_it_wait_open_conns(const struct sp_it_broker *b, long want, int wait_ms);

/* A whole file, malloc'd (the caller frees; *len its size), or NULL. */
uint8_t *sp_it_read_file(const char *path, size_t *len);

/* How many times needle (n bytes) occurs in hay (len bytes). */
unsigned sp_it_count(const uint8_t *hay, size_t len, const uint8_t *needle, size_t n);

/*
 * Calls fn(ctx, path, bytes, len) for every regular file under dir (its
 * subdirectories too), each read whole; skip: a file name (no directory)
 * to leave out, or NULL. 0, or -errno if dir could not be walked.
 */
int sp_it_each_file(const char *dir, const char *skip,
		    void (*fn)(void *ctx, const char *path, const uint8_t *bytes, size_t len),
		    void *ctx);

#endif
