/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_admin_exec.h: the shard's side of the admin socket (obs/sp_admin.h):
 * the read on its eventfd, and the jobs run on the shard's own thread, so
 * the connection table, the routing table, the store and the live
 * configuration are touched by their owner only. (top is not here: it
 * runs on the admin thread, sp_admin.h says why.)
 *
 * Per iteration: the eventfd's completion takes every queued job and runs
 * it among the iteration's other completions (a purge goes into the
 * iteration's store batch like acks do); after the commit, each job is
 * answered (a purge whose commit failed answers an error).
 *
 * Writes: sh->admin_jobs, admin_buf, admin_armed, admin_retry; the live
 * configuration through sp_config_reload (reload).
 */
#ifndef SP_ADMIN_EXEC_H
#define SP_ADMIN_EXEC_H

#include "sp_shard_types.h"

/* Arms the read of the admin eventfd (no-op without sh->admin); a failed
 * submission is tried again by sp_admin_exec_retry. */
void sp_admin_exec_arm(struct sp_shard *sh);
void sp_admin_exec_retry(struct sp_shard *sh);

/* The eventfd read completed with res: run the queued jobs, arm again. */
void sp_admin_exec_cqe(struct sp_shard *sh, int res);

/* After the iteration's commit: answer the jobs run this iteration. */
void sp_admin_exec_finish(struct sp_shard *sh);

/* A job another shard handed over (SP_XS_ADMIN): run here, then on to the
 * next shard or answered after this shard's commit. */
void sp_admin_exec_remote(struct sp_shard *sh, struct sp_admin_job *j, unsigned hops);

#endif
