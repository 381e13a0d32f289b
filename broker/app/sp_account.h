/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_account.h: accounts' signed device lists at the broker
 * (docs/PROTOCOL.md 11).
 *
 * ListPut: the list is verified (canonical encoding, the account key's
 * signature, a version above the stored one, the publisher on the stored
 * list, or on the new one for a first list), stored (synced, its own write),
 * answered; devices that left the list lose their mailbox and their
 * connection (GoAway REMOVED); every other connected device of the account
 * gets ListChanged with the new list. ListFetch: the stored list, as stored.
 * The broker holds no account key: it can refuse or withhold a list, never
 * make one.
 *
 * Transparency log (11.7): sp_store_list_put appends every accepted list
 * to the log in the list's own write; translog_extension() appends the
 * log's trailer (a fresh signed tree head, the inclusion proof) after every
 * served list: ListResult of a fetch or an accepted put, ListChanged.
 *
 * Writes, of a connection: nothing (replies through sp_deliver, ends through
 * sp_life_end_later). Of the shard: account_waits, account_wait_next.
 */
#ifndef SP_ACCOUNT_H
#define SP_ACCOUNT_H

#include "sp_shard_types.h"

/* ListPut and ListFetch of c (f: borrowed for the call). NONE, or why c
 * must end (out of memory). Refusals are ListResults, never closes. */
enum sp_close_reason sp_account_put(struct sp_shard *sh, struct sp_conn *c,
				    const struct sp_frame *f);
enum sp_close_reason sp_account_fetch(struct sp_shard *sh, struct sp_conn *c,
				      const struct sp_frame *f);

struct sp_devlist;

/* The stored list of account decoded into *l (it was verified when
 * stored); buf: caller-owned, SP_DEVLIST_MAX bytes, receives the bytes.
 * 1, 0 if there is none (or no store), or -errno (the store failed, or the
 * value is corrupt). For the fan-out checks (app/sp_fanout.c). */
int sp_account_current(struct sp_shard *sh, const uint8_t account[SP_ACCOUNT_LEN], uint8_t *buf,
		       struct sp_devlist *l);

/* Cluster mode (docs/CLUSTER.md): a ListPut that removes devices waits for
 * their JetStream mailboxes to be purged before its list is stored. init
 * and destroy with the shard; tick: waits past --cluster-request-timeout
 * answered ERR_CLUSTER_UNAVAILABLE; purged: the answer to purge n (1..) of
 * wait id (ok: JetStream confirmed it). */
void sp_account_init(struct sp_shard *sh);
void sp_account_destroy(struct sp_shard *sh);
void sp_account_tick(struct sp_shard *sh);
void sp_account_purged(struct sp_shard *sh, uint64_t id, uint64_t n, bool ok);

/* The ListResult status for an sp_devlist decode / verify error. */
enum sp_status sp_account_status_of(int devlist_err);

#endif
