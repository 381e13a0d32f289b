# SPDX-License-Identifier: Apache-2.0
"""The C declarations of libsealpost (include/sealpost.h) for cffi, and the
loaded library.

ABI mode: cffi lays the structs out from these declarations by the C rules,
so they must match the header field for field. tests/test_abi.py compiles a
small C program against the real header and compares every size and offset.
"""
import ctypes.util
import os

import cffi

CDEF = """
const char *sealpost_version(void);
const char *sealpost_strerror(int err);
const char *sealpost_status_string(int status);
typedef void (*sealpost_log_fn)(void *ctx, int level, const char *message);
void sealpost_set_log_callback(sealpost_log_fn fn, void *ctx);

struct sealpost_key;
int sealpost_key_generate(struct sealpost_key **out);
int sealpost_key_from_private(struct sealpost_key **out, const uint8_t priv[32]);
int sealpost_key_load(struct sealpost_key **out, const char *path);
int sealpost_key_save(const struct sealpost_key *key, const char *path);
void sealpost_key_public(const struct sealpost_key *key, uint8_t pub[32]);
void sealpost_key_free(struct sealpost_key *key);

int sealpost_envelope_seal(const struct sealpost_key *sender, const uint8_t to[32],
                           const void *msg, size_t msg_len, uint8_t *out, size_t out_cap,
                           size_t *out_len);
int sealpost_envelope_open(const struct sealpost_key *self, const uint8_t *env,
                           size_t env_len, uint8_t sender[32], uint8_t *out, size_t out_cap,
                           size_t *out_len);

struct sealpost_client;
struct sealpost_connect_opts {
    size_t size;
    uint32_t flags;
    uint32_t reconnect_min_ms;
    uint32_t reconnect_max_ms;
    uint32_t offline_queue_max;
    uint32_t connect_timeout_ms;
    uint32_t keepalive_ms;
    uint32_t dead_peer_ms;
    const char *enrol_token;
};
int sealpost_client_connect(struct sealpost_client **out, const char *server,
                            const struct sealpost_key *key, const uint8_t *server_key,
                            int timeout_ms);
int sealpost_client_connect_opts(struct sealpost_client **out, const char *server,
                                 const struct sealpost_key *key, const uint8_t *server_key,
                                 int timeout_ms, const struct sealpost_connect_opts *opts);
int sealpost_client_start(struct sealpost_client **out, const char *server,
                          const struct sealpost_key *key, const uint8_t *server_key,
                          const struct sealpost_connect_opts *opts);
void sealpost_client_server_key(const struct sealpost_client *c, uint8_t pub[32]);
_Bool sealpost_client_is_connected(const struct sealpost_client *c);
int sealpost_client_cipher(const struct sealpost_client *c);
uint32_t sealpost_client_idle_timeout(const struct sealpost_client *c);
void sealpost_client_public_key(const struct sealpost_client *c, uint8_t pub[32]);
uint32_t sealpost_client_max_envelope(const struct sealpost_client *c);
size_t sealpost_client_max_message(const struct sealpost_client *c);
int sealpost_client_send_ex(struct sealpost_client *c, const uint8_t to[32], const void *msg,
                            size_t msg_len, uint32_t flags, uint64_t client_id,
                            uint64_t *used_id);
int sealpost_client_send_raw_ex(struct sealpost_client *c, const uint8_t to[32],
                                const uint8_t *env, size_t env_len, uint32_t flags,
                                uint64_t client_id, uint64_t *used_id);
struct sealpost_pending {
    uint64_t client_id;
    uint8_t to[32];
    uint32_t flags;
    size_t len;
};
size_t sealpost_client_pending(const struct sealpost_client *c, struct sealpost_pending *out,
                               size_t cap);
int sealpost_client_ping(struct sealpost_client *c, uint64_t *id);
int sealpost_client_ack(struct sealpost_client *c, uint64_t seq);
int sealpost_client_flush(struct sealpost_client *c, int timeout_ms);
int sealpost_client_sync(struct sealpost_client *c, int timeout_ms);

struct sealpost_event {
    int type;
    int status;
    int error;
    uint64_t client_id;
    uint64_t seq;
    union {
        uint64_t id;
        uint64_t count;
    };
    uint8_t sender[32];
    const uint8_t *data;
    size_t len;
};
int sealpost_client_next_event(struct sealpost_client *c, struct sealpost_event *ev,
                               int timeout_ms);
int sealpost_client_wait_result(struct sealpost_client *c, uint64_t client_id,
                                int timeout_ms, int *status, uint64_t *seq);
int sealpost_client_fd(const struct sealpost_client *c);
_Bool sealpost_client_want_write(const struct sealpost_client *c);
short sealpost_client_poll_events(const struct sealpost_client *c);
int sealpost_client_timeout(const struct sealpost_client *c);
int sealpost_client_step(struct sealpost_client *c);
void sealpost_client_close(struct sealpost_client *c);

int sealpost_push_register(struct sealpost_client *c, const char *endpoint,
                           const uint8_t *p256dh, size_t p256dh_len,
                           const uint8_t *auth, size_t auth_len, uint64_t *id);
int sealpost_push_remove(struct sealpost_client *c, uint64_t *id);

struct sealpost_account;
int sealpost_account_generate(struct sealpost_account **out);
int sealpost_account_load(struct sealpost_account **out, const char *path);
int sealpost_account_save(const struct sealpost_account *a, const char *path);
void sealpost_account_public(const struct sealpost_account *a, uint8_t pub[32]);
void sealpost_account_free(struct sealpost_account *a);
struct sealpost_device_info {
    uint8_t key[32];
    uint64_t added_s;
    char label[65];
};
struct sealpost_devlist {
    uint8_t account[32];
    uint64_t version;
    uint32_t count;
    struct sealpost_device_info dev[64];
};
int sealpost_devlist_verify(const uint8_t *bytes, size_t len, struct sealpost_devlist *out);
int sealpost_devlist_add(struct sealpost_devlist *l, const uint8_t key[32], const char *label,
                         uint64_t added_s);
int sealpost_devlist_remove(struct sealpost_devlist *l, const uint8_t key[32]);
int sealpost_devlist_sign(const struct sealpost_account *a, const struct sealpost_devlist *l,
                          uint8_t *out, size_t cap, size_t *len);
int sealpost_link_request(const uint8_t device[32], const char *label, char *out, size_t cap,
                          char code[7]);
int sealpost_link_request_parse(const char *req, uint8_t device[32], char label[65],
                                char code[7]);
struct sealpost_account_store;
int sealpost_account_store_open(struct sealpost_account_store **out, const char *path);
void sealpost_account_store_close(struct sealpost_account_store *st);
int sealpost_account_store_check(struct sealpost_account_store *st, const uint8_t *bytes,
                                 size_t len, struct sealpost_devlist *out);
int sealpost_account_store_get(struct sealpost_account_store *st, const uint8_t account[32],
                               struct sealpost_devlist *out);
int sealpost_account_store_log(struct sealpost_account_store *st, uint8_t log_key[32],
                               uint8_t head[113]);
void sealpost_client_set_account_store(struct sealpost_client *c,
                                       struct sealpost_account_store *st);
int sealpost_account_publish_wait(struct sealpost_client *c, const uint8_t *bytes, size_t len,
                                  int timeout_ms, int *status, uint64_t *version);
int sealpost_account_fetch_wait(struct sealpost_client *c, const uint8_t account[32],
                                int timeout_ms, struct sealpost_devlist *out, uint8_t *raw,
                                size_t raw_cap, size_t *raw_len);
int sealpost_client_send_devices(struct sealpost_client *c, const struct sealpost_devlist *l,
                                 const void *msg, size_t msg_len, uint64_t *first_id);
struct sealpost_fanout_device {
    uint8_t key[32];
    int status;
    _Bool own;
};
struct sealpost_fanout_result {
    int status;
    int own_status;
    uint64_t version;
    uint64_t own_version;
    uint64_t group_id, own_group_id;
    uint32_t retries;
    uint32_t count;
    struct sealpost_fanout_device dev[128];
};
int sealpost_client_send_account(struct sealpost_client *c, const uint8_t account[32],
                                 const uint8_t *own_account, const void *msg, size_t msg_len,
                                 int timeout_ms, struct sealpost_fanout_result *out);
int sealpost_log_sync(struct sealpost_client *c, int timeout_ms, uint8_t head[113],
                      uint8_t log_key[32]);
void sealpost_access_key_generate(uint8_t key[32]);
int sealpost_set_access(struct sealpost_client *c, const uint8_t *key, size_t len,
                        _Bool accept_anyone, int timeout_ms);
int sealpost_send_anonymous(struct sealpost_client *c, const uint8_t to[32],
                            const uint8_t *access_key, size_t access_len, const void *msg,
                            size_t msg_len, int timeout_ms, int *status, uint64_t *seq);
int sealpost_contact_access_set(struct sealpost_client *c, const uint8_t contact[32],
                                const uint8_t *key, size_t len);
struct sealpost_log_audit {
    uint64_t size;
    uint64_t accounts;
    uint64_t bad_leaf;
    uint8_t head[113];
    uint8_t log_key[32];
};
int sealpost_log_audit(struct sealpost_client *c, int timeout_ms,
                       struct sealpost_log_audit *out);

struct sealpost_prekeys;
int sealpost_prekeys_open(struct sealpost_prekeys **out, const char *path,
                          const struct sealpost_key *device);
int sealpost_prekeys_open_keyed(struct sealpost_prekeys **out, const char *path,
                                const struct sealpost_key *device, const uint8_t *storage_key);
void sealpost_prekeys_close(struct sealpost_prekeys *pk);
struct sealpost_prekeys_info {
    uint32_t onetime;
    _Bool has_signed;
    uint32_t signed_id;
    uint64_t signed_created_s;
    _Bool has_previous;
};
void sealpost_prekeys_info(const struct sealpost_prekeys *pk, struct sealpost_prekeys_info *info);
int sealpost_prekeys_upload_wait(struct sealpost_client *c, struct sealpost_prekeys *pk,
                                 unsigned count, int timeout_ms, uint32_t *stock);
struct sealpost_prekey_bundle {
    uint8_t device[32];
    uint32_t signed_id;
    uint64_t signed_created_s;
    uint8_t signed_key[32];
    _Bool has_onetime;
    uint32_t onetime_id;
    uint8_t onetime_key[32];
};
int sealpost_prekeys_fetch_wait(struct sealpost_client *c, const uint8_t *list, size_t list_len,
                                const uint8_t device[32], int timeout_ms,
                                struct sealpost_prekey_bundle *out);
void sealpost_client_set_prekeys(struct sealpost_client *c, struct sealpost_prekeys *pk);

struct sealpost_sessions;
int sealpost_sessions_open(struct sealpost_sessions **out, const char *path,
                           const struct sealpost_key *device, const uint8_t storage_key[32]);
void sealpost_sessions_close(struct sealpost_sessions *ss);
size_t sealpost_sessions_count(const struct sealpost_sessions *ss);
_Bool sealpost_sessions_has(const struct sealpost_sessions *ss, const uint8_t peer[32]);
int sealpost_sessions_forget(struct sealpost_sessions *ss, const uint8_t peer[32]);
int sealpost_client_set_sessions(struct sealpost_client *c, struct sealpost_sessions *ss);
int sealpost_client_send_first(struct sealpost_client *c, const struct sealpost_prekey_bundle *b,
                               const void *msg, size_t len, uint64_t *client_id);
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)


def _find_library():
    """$SEALPOST_LIB (a path to libsealpost.so), else the system's."""
    path = os.environ.get("SEALPOST_LIB")
    if path:
        return path
    return ctypes.util.find_library("sealpost") or "libsealpost.so.0"


lib = ffi.dlopen(_find_library())
