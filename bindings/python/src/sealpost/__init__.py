# SPDX-License-Identifier: Apache-2.0
"""sealpost: the Python binding of libsealpost.

A thin layer over the C library (cffi, ABI mode): the same keys, the same
connection, the same events, with Python types. Messages are sealed end to
end by the C library; this module never sees a private key's bytes except
in Key.from_private.

    import sealpost
    key = sealpost.Key.load("alice.key")
    with sealpost.Client.connect("127.0.0.1:7400", key, server_key=pub) as c:
        r = c.send_wait(bob_public, b"hi")          # a Result
        for msg in c.messages(timeout=5):            # Message objects
            print(msg.sender_hex, msg.data)

Errors from the library raise SealpostError (an OSError: .errno is the
errno, the message is sealpost_strerror's words). Timeouts are seconds
(float); None waits without limit.

Threads: a Client takes a lock around every call into the library, so it
may be shared between threads (calls are serialised; a thread blocked in
next_event holds it). The GIL is released while the library waits. A Key
may be used by any number of threads.
"""
import enum
import errno as _errno
import os
import threading

from ._ffi import ffi, lib

__all__ = [
    "KEY_LEN", "MESSAGE_MAX", "SealpostError", "Status", "Key", "Client",
    "Event", "Message", "Result", "Pong", "GoAway", "Closed", "BadEnvelope", "Drained",
    "Connected", "Disconnected", "Reconnected", "Opaque", "Pending",
    "version", "strerror", "seal", "open_envelope", "set_log_callback",
    "ESERVERKEY", "EUNKNOWNHOST", "EKEYMODE", "EKEYFORMAT", "EQUEUEFULL", "EDEADPEER",
    "Account", "Device", "DeviceList", "AccountStore", "LogAudit", "link_request",
    "parse_link_request", "ListResult", "ListChanged", "PushResult", "SplitView", "LogReply",
    "EROLLBACK", "EBADLIST", "ENOLIST", "ELINKFORMAT", "ELOGPROOF", "ESPLITVIEW", "ELOGKEY",
    "EENROLREQUIRED", "EENROLTOKEN", "EENROLUSED", "EACCESSMISSING", "EACCESSWRONG",
    "EACCESSROTATED", "EANONLIMIT", "EACCESSBADKEY", "EANONYMOUS", "access_key_generate",
    "FanoutResult", "EFANOUT", "EFANOUTMISMATCH", "EFANOUTLIE", "EFANOUTNONE",
    "Prekeys", "PrekeyBundle", "Sessions", "EPREKEYBAD", "ENOTONLIST", "ENOPREKEY",
    "EPREKEYLIMIT", "EPREKEYRATE", "EPREKEYREFUSED", "ESTORAGEKEY", "ESESSIONFULL",
    "ERATCHETSKIP", "STORAGE_KEY_LEN",
]

# The functions __del__ calls, bound at import, not on first use: cffi
# builds a function's accessor under a lock it also holds while parsing a
# type, and a garbage collection during such a parse runs __del__, which
# would then wait for that lock forever (it did, in test_abi after objects
# of test_accounts were collected).
_key_free = lib.sealpost_key_free
_client_close = lib.sealpost_client_close
_account_free = lib.sealpost_account_free
_store_close = lib.sealpost_account_store_close
_prekeys_close = lib.sealpost_prekeys_close
_sessions_close = lib.sealpost_sessions_close

KEY_LEN = 32
SEAL_OVERHEAD = 97
ENVELOPE_MAX = 64000
MESSAGE_MAX = ENVELOPE_MAX - SEAL_OVERHEAD

_EVENT_ROOM = 1024      # bytes kept for one struct sealpost_event (tests/test_abi.py)
_CONNECT_MANUAL_ACK = 1 << 0
_CONNECT_NO_RECONNECT = 1 << 1
_CONNECT_NO_KEEPALIVE = 1 << 2
_CONNECT_OPAQUE = 1 << 3
_CONNECT_OPAQUE_ALL = 1 << 4
_CONNECT_NO_PADDING = 1 << 5
_CONNECT_AESGCM = 1 << 6
_SEND_ONLINE_ONLY = 1 << 0

(_EV_MESSAGE, _EV_RESULT, _EV_PONG, _EV_GOAWAY, _EV_CLOSED, _EV_BAD_ENVELOPE, _EV_DRAINED,
 _EV_CONNECTED, _EV_DISCONNECTED, _EV_RECONNECTED, _EV_OPAQUE, _EV_LIST_RESULT, _EV_LIST_CHANGED,
 _EV_PUSH_RESULT) = range(1, 15)
_EV_SPLIT_VIEW = 18
_EV_LOG_REPLY = 19

# The library's own error codes (SealpostError.errno), above every errno.
ESERVERKEY = 7001       # the broker's key is not the pinned server key
EUNKNOWNHOST = 7002     # the broker's host name does not exist
EKEYMODE = 7003         # a key file readable by group or others: chmod 600
EKEYFORMAT = 7004       # a key file that is not a key
EQUEUEFULL = 7005       # disconnected, and the offline queue is full
EDEADPEER = 7006        # the broker stopped answering keepalive pings
EROLLBACK = 7007        # a list older than (or forking) the newest one kept
EBADLIST = 7008         # a list that does not verify (signature, encoding, account)
ENOLIST = 7009          # the broker has no list for that account
ELINKFORMAT = 7010      # not a link request string
EFANOUT = 7011          # the broker refused a fan-out group (FanoutResult.status says why)
EFANOUTMISMATCH = 7012  # the copies still did not match the account's list after every retry
EFANOUTLIE = 7013       # the broker's mismatch answer contradicts the verified list
EFANOUTNONE = 7014      # the account has no device to send to but this one
ELOGPROOF = 7018        # a served tree head or inclusion proof does not verify
ESPLITVIEW = 7019       # the broker's log showed two histories (a split view)
ELOGKEY = 7020          # the broker's log key is not the one kept, or unknown
EENROLREQUIRED = 7015   # the broker takes registered devices only: an enrol_token is needed
EENROLTOKEN = 7016      # the enrolment token is malformed, not this broker's, or expired
EENROLUSED = 7017       # the enrolment token already enrolled another device
EACCESSMISSING = 7021   # no access key, and the recipient does not accept anyone
EACCESSWRONG = 7022     # not the recipient's access key
EACCESSROTATED = 7023   # the recipient rotated its access key: ask it anew
EANONLIMIT = 7024       # the broker's anonymous-send budget
EACCESSBADKEY = 7025    # an access key not 16 or 32 bytes
EANONYMOUS = 7026       # not possible on an anonymous connection
EPREKEYBAD = 7027       # a prekey bundle whose signatures or key are not the device's
ENOTONLIST = 7028       # the device is not on the verified device list
ENOPREKEY = 7029        # the broker has no signed prekey of that device
EPREKEYLIMIT = 7030     # upload above the broker's per-upload or per-device limit
EPREKEYRATE = 7031      # the broker's prekey fetch budget
EPREKEYREFUSED = 7032   # the broker refused the upload or fetch
ESTORAGEKEY = 7033      # a store that does not open under this storage key, or is damaged
ESESSIONFULL = 7034     # the session store holds its maximum of sessions
ERATCHETSKIP = 7035     # (BadEnvelope.error) further ahead in its session than MAX_SKIP


def version():
    """The C library's version, "MAJOR.MINOR.PATCH"."""
    return ffi.string(lib.sealpost_version()).decode()


def strerror(code):
    """The library's words for an error code (negative or positive errno)."""
    return ffi.string(lib.sealpost_strerror(code)).decode()


class SealpostError(OSError):
    """A libsealpost call failed. .errno: the (positive) errno, or one of the
    library's own codes (ESERVERKEY, ...); str(): its words."""

    def __init__(self, code):
        code = abs(code)
        super().__init__(code, strerror(code))


def _check(r):
    if r < 0:
        raise SealpostError(r)
    return r


def _ms(timeout):
    """Seconds (None: no limit) to the library's milliseconds (-1: no limit)."""
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("timeout must be >= 0 or None")
    return int(timeout * 1000)


def _key_bytes(k, what):
    """32 raw bytes from bytes or 64 hex characters."""
    if isinstance(k, str):
        try:
            k = bytes.fromhex(k)
        except ValueError:
            raise ValueError("%s: not hex" % what) from None
    k = bytes(k)
    if len(k) != KEY_LEN:
        raise ValueError("%s must be %d bytes (or %d hex characters)" % (what, KEY_LEN, 2 * KEY_LEN))
    return k


class Status(enum.IntEnum):
    """Per-envelope results and GoAway reasons (the wire protocol's numbers)."""
    UNSPECIFIED = 0
    DELIVERED = 1
    ACCEPTED = 2
    ERR_OFFLINE = 16
    ERR_TOO_LARGE = 17
    ERR_BAD_RECIPIENT = 18
    ERR_RECIPIENT_BUSY = 19
    ERR_MAILBOX_FULL = 20
    ERR_RATE_LIMITED = 21
    ERR_INTERNAL = 22
    ERR_SHUTTING_DOWN = 23
    GOAWAY_PROTOCOL = 32
    GOAWAY_TAKEOVER = 33
    GOAWAY_SHUTDOWN = 34
    GOAWAY_SLOW_CONSUMER = 35
    GOAWAY_IDLE = 36
    GOAWAY_REMOVED = 37
    ERR_LIST_MALFORMED = 40
    ERR_LIST_TOO_LARGE = 41
    ERR_LIST_BAD_SIGNATURE = 42
    ERR_LIST_BAD_DEVICE_KEY = 43
    ERR_LIST_UNSORTED = 44
    ERR_LIST_VERSION = 45
    ERR_LIST_ACCOUNT = 46
    ERR_LIST_UNKNOWN = 47
    ERR_LIST_NOT_MEMBER = 48
    ERR_FANOUT_MISMATCH = 49
    ERR_FANOUT_DUPLICATE = 50
    ERR_FANOUT_INCOMPLETE = 51
    ERR_FANOUT_TOO_LARGE = 52
    GOAWAY_ENROL_REQUIRED = 53
    GOAWAY_ENROL_BAD_TOKEN = 54
    GOAWAY_ENROL_TOKEN_USED = 55
    ERR_LOG_RANGE = 64
    ERR_PUSH_BAD_KEY = 56
    ERR_PUSH_BAD_AUTH = 57
    ERR_PUSH_BAD_ENDPOINT = 58
    ERR_PUSH_NOT_HTTPS = 59
    ERR_PUSH_TOO_LARGE = 60
    ERR_PUSH_HOST_NOT_ALLOWED = 61
    ERR_PUSH_DISABLED = 62
    ERR_PUSH_FULL = 63
    ERR_ACCESS_MISSING = 65
    ERR_ACCESS_WRONG = 66
    ERR_ACCESS_ROTATED = 67
    GOAWAY_ANONYMOUS = 68
    ERR_NOT_ANONYMOUS = 69
    ERR_ANON_RATE_LIMITED = 70
    ERR_ACCESS_BAD_KEY = 71

    @classmethod
    def of(cls, v):
        try:
            return cls(v)
        except ValueError:
            return v        # a code this binding does not know yet: the number

    @property
    def ok(self):
        """Did the broker take the envelope (accepted or delivered)?"""
        return self in (Status.ACCEPTED, Status.DELIVERED)


class Key:
    """A device key pair (libsealpost's guarded memory). .public: its address."""

    __slots__ = ("_k", "public")

    def __init__(self, _ptr):
        self._k = _ptr
        pub = ffi.new("uint8_t[32]")
        lib.sealpost_key_public(_ptr, pub)
        self.public = bytes(pub)

    @classmethod
    def generate(cls):
        out = ffi.new("struct sealpost_key **")
        _check(lib.sealpost_key_generate(out))
        return cls(out[0])

    @classmethod
    def load(cls, path):
        """From a key file (refused if group or others may read it)."""
        out = ffi.new("struct sealpost_key **")
        _check(lib.sealpost_key_load(out, _path(path)))
        return cls(out[0])

    @classmethod
    def from_private(cls, priv):
        out = ffi.new("struct sealpost_key **")
        buf = ffi.new("uint8_t[32]", _key_bytes(priv, "private key"))
        try:
            _check(lib.sealpost_key_from_private(out, buf))
        finally:
            ffi.memmove(buf, b"\0" * KEY_LEN, KEY_LEN)
        return cls(out[0])

    def save(self, path):
        """To a NEW file, mode 0600 (FileExistsError-like SealpostError if it exists)."""
        _check(lib.sealpost_key_save(self._ptr(), _path(path)))

    @property
    def public_hex(self):
        return self.public.hex()

    def _ptr(self):
        if self._k is None:
            raise ValueError("key is closed")
        return self._k

    def close(self):
        """Wipes and frees the key now (otherwise when garbage-collected)."""
        if self._k is not None:
            _key_free(self._k)
            self._k = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<sealpost.Key %s>" % self.public.hex()


def _path(p):
    return os.fsencode(p)


# ---------------------------------------------------------------- events ---

class Event:
    """Base of every event a Client gives."""
    __slots__ = ()

    def __repr__(self):
        fields = ", ".join("%s=%r" % (f, getattr(self, f)) for f in self.__slots__)
        return "%s(%s)" % (type(self).__name__, fields)

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in self.__slots__)


class Message(Event):
    """A delivered message, opened: .sender (32 bytes, proven by the seal),
    .data (bytes), .seq (> 0: from the mailbox, to be acknowledged; 0:
    online-only)."""
    __slots__ = ("sender", "data", "seq")

    def __init__(self, sender, data, seq):
        self.sender, self.data, self.seq = sender, data, seq

    @property
    def sender_hex(self):
        return self.sender.hex()


class Result(Event):
    """The broker's answer to one send: .client_id, .status (Status), .seq."""
    __slots__ = ("client_id", "status", "seq")

    def __init__(self, client_id, status, seq):
        self.client_id, self.status, self.seq = client_id, Status.of(status), seq

    @property
    def ok(self):
        return self.status in (Status.ACCEPTED, Status.DELIVERED)


class Pong(Event):
    __slots__ = ("id",)

    def __init__(self, id):
        self.id = id


class GoAway(Event):
    """The broker is about to close: .reason (Status.GOAWAY_*). Closed follows."""
    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = Status.of(reason)


class Closed(Event):
    """The connection is gone (final): .error is 0 after a GoAway, else the
    errno (positive); .message its words."""
    __slots__ = ("error", "message")

    def __init__(self, error):
        self.error = abs(error)
        self.message = strerror(error) if error else "closed after goaway"


class BadEnvelope(Event):
    """A delivery whose seal did not open: .seq, .error."""
    __slots__ = ("seq", "error")

    def __init__(self, seq, error):
        self.seq, self.error = seq, abs(error)


class Drained(Event):
    """Once per connection: the stored backlog (.count envelopes) is delivered."""
    __slots__ = ("count",)

    def __init__(self, count):
        self.count = count


class Connected(Event):
    """The first handshake of a Client.start() client finished."""
    __slots__ = ()


class Disconnected(Event):
    """The connection dropped and the library reconnects by itself: .error
    (errno or library code, 0 after a GoAway), .reason (the GoAway status,
    e.g. Status.GOAWAY_SHUTDOWN, or 0), .message. Once per outage; sends
    made meanwhile wait and are sent once it is back."""
    __slots__ = ("error", "reason", "message")

    def __init__(self, error, reason):
        self.error = abs(error)
        self.reason = Status.of(reason)
        self.message = strerror(error) if error else (
            self.reason.name.lower() if isinstance(self.reason, Status) else "closed")


class Reconnected(Event):
    """A new session is up after Disconnected; every unanswered send was resent."""
    __slots__ = ()


class Opaque(Event):
    """With opaque=True: a delivery handed over unopened (.data the raw body,
    .seq); who wrote it is for the app's own end-to-end layer to say."""
    __slots__ = ("data", "seq")

    def __init__(self, data, seq):
        self.data, self.seq = data, seq


class Pending(Event):
    """A send still waiting for its Result: .client_id, .to, .online_only, .size."""
    __slots__ = ("client_id", "to", "online_only", "size")

    def __init__(self, client_id, to, online_only, size):
        self.client_id, self.to, self.online_only, self.size = client_id, to, online_only, size


class ListResult(Event):
    """The answer to a list publish or fetch made without waiting:
    .client_id, .status, .account, .version, .list (a DeviceList or None),
    .error (0, or why the list was not used: EBADLIST, EROLLBACK, ...)."""
    __slots__ = ("client_id", "status", "account", "version", "list", "error")

    def __init__(self, client_id, status, account, version, lst, error):
        self.client_id, self.status, self.account = client_id, Status.of(status), account
        self.version, self.list, self.error = version, lst, error


class ListChanged(Event):
    """This device's own account has a new list: .account, .version, .list
    (a DeviceList, verified when .error is 0). Show it: a device nobody
    linked is how a stolen account key shows up."""
    __slots__ = ("account", "version", "list", "error")

    def __init__(self, account, version, lst, error):
        self.account, self.version, self.list, self.error = account, version, lst, error


class PushResult(Event):
    """The answer to push_register / push_remove: .id, .status."""
    __slots__ = ("id", "status")

    def __init__(self, id, status):
        self.id, self.status = id, Status.of(status)


class SplitView(Event):
    """LOUD: the broker's transparency log showed two histories that cannot
    both be one log. .log_key, .kept and .seen (113-byte signed tree heads,
    both signed by the log: proof for anyone). Stop trusting its lists."""
    __slots__ = ("log_key", "kept", "seen")

    def __init__(self, log_key, kept, seen):
        self.log_key, self.kept, self.seen = log_key, kept, seen


class LogReply(Event):
    """The answer to a LogFetch the app asked for: .client_id, .status,
    .log_key, .leaf_len, .body (leaf | sth | consistency, PROTOCOL.md 11.7)."""
    __slots__ = ("client_id", "status", "log_key", "leaf_len", "body")

    def __init__(self, client_id, status, log_key, leaf_len, body):
        self.client_id, self.status, self.log_key = client_id, Status.of(status), log_key
        self.leaf_len, self.body = leaf_len, body


def _list_of(ev):
    """The DeviceList an event's data carries, or None (refused or absent)."""
    if not ev.len or ev.error:
        return None
    c = ffi.new("struct sealpost_devlist *")
    if lib.sealpost_devlist_verify(ev.data, ev.len, c) < 0:
        return None
    return DeviceList._from_c(c)


def _event(ev):
    """A Python event from a struct sealpost_event (copying what it points to)."""
    t = ev.type
    if t == _EV_MESSAGE:
        return Message(bytes(ev.sender), bytes(ffi.buffer(ev.data, ev.len)), ev.seq)
    if t == _EV_RESULT:
        return Result(ev.client_id, ev.status, ev.seq)
    if t == _EV_PONG:
        return Pong(ev.id)
    if t == _EV_GOAWAY:
        return GoAway(ev.status)
    if t == _EV_CLOSED:
        return Closed(ev.error)
    if t == _EV_BAD_ENVELOPE:
        return BadEnvelope(ev.seq, ev.error)
    if t == _EV_DRAINED:
        return Drained(ev.count)
    if t == _EV_CONNECTED:
        return Connected()
    if t == _EV_DISCONNECTED:
        return Disconnected(ev.error, ev.status)
    if t == _EV_RECONNECTED:
        return Reconnected()
    if t == _EV_OPAQUE:
        return Opaque(bytes(ffi.buffer(ev.data, ev.len)), ev.seq)
    if t == _EV_LIST_RESULT:
        return ListResult(ev.client_id, ev.status, bytes(ev.sender), ev.seq, _list_of(ev),
                          -ev.error if ev.error < 0 else ev.error)
    if t == _EV_LIST_CHANGED:
        return ListChanged(bytes(ev.sender), ev.seq, _list_of(ev),
                           -ev.error if ev.error < 0 else ev.error)
    if t == _EV_PUSH_RESULT:
        return PushResult(ev.id, ev.status)
    if t == _EV_SPLIT_VIEW:
        data = bytes(ffi.buffer(ev.data, ev.len))
        return SplitView(bytes(ev.sender), data[:113], data[113:226])
    if t == _EV_LOG_REPLY:
        return LogReply(ev.client_id, ev.status, bytes(ev.sender), ev.seq,
                        bytes(ffi.buffer(ev.data, ev.len)) if ev.len else b"")
    return None     # a kind this binding does not know: skipped


# ---------------------------------------------------------------- client ---

class Client:
    """A connection to a broker (sealpost_client). Use Client.connect()."""

    def __init__(self, _ptr):
        self._c = _ptr
        self._lock = threading.RLock()
        # Room beyond the declared struct: if a newer library's event has
        # grown at the end, it still writes into memory that is ours.
        self._evbuf = ffi.new("uint8_t[]", _EVENT_ROOM)
        self._ev = ffi.cast("struct sealpost_event *", self._evbuf)
        self._closed_seen = False
        self._store = None      # an attached AccountStore, kept alive
        self._prekeys = None    # an attached Prekeys, kept alive
        self._sessions = None   # an attached Sessions, kept alive

    @staticmethod
    def _opts(manual_ack, reconnect, keepalive, opaque, reconnect_min, reconnect_max,
              offline_queue_max, connect_timeout, keepalive_interval, dead_peer,
              enrol_token=None, padding=True, aesgcm=False, _keep=None):
        opts = ffi.new("struct sealpost_connect_opts *")
        opts.size = ffi.sizeof("struct sealpost_connect_opts")
        flags = 0
        if manual_ack:
            flags |= _CONNECT_MANUAL_ACK
        if not reconnect:
            flags |= _CONNECT_NO_RECONNECT
        if not keepalive:
            flags |= _CONNECT_NO_KEEPALIVE
        if opaque == "all":
            flags |= _CONNECT_OPAQUE_ALL
        elif opaque:
            flags |= _CONNECT_OPAQUE
        if not padding:
            flags |= _CONNECT_NO_PADDING
        if aesgcm:
            flags |= _CONNECT_AESGCM
        opts.flags = flags
        # Seconds to milliseconds; None (0) takes the library's default.
        for field, v in (("reconnect_min_ms", reconnect_min), ("reconnect_max_ms", reconnect_max),
                         ("connect_timeout_ms", connect_timeout),
                         ("keepalive_ms", keepalive_interval), ("dead_peer_ms", dead_peer)):
            setattr(opts, field, max(int(v * 1000), 1) if v else 0)
        opts.offline_queue_max = offline_queue_max or 0
        if enrol_token:
            # the C string must outlive the connect call: _keep holds it
            tok = ffi.new("char[]", enrol_token.encode())
            _keep.append(tok)
            opts.enrol_token = tok
        return opts

    @classmethod
    def connect(cls, server, key, server_key=None, timeout=30.0, manual_ack=False,
                reconnect=True, keepalive=True, opaque=False, reconnect_min=None,
                reconnect_max=None, offline_queue_max=None, connect_timeout=None,
                keepalive_interval=None, dead_peer=None, enrol_token=None, padding=True,
                aesgcm=False):
        """Connects and runs the handshake (blocking): IK when server_key
        (32 bytes or hex) is given, else XX (read .server_key afterwards and
        pin it). timeout: seconds for connect and handshake together (None:
        30); a failure of this first connect raises, it is not retried.

        manual_ack: acknowledge deliveries yourself with ack(); by default a
        Message is acknowledged once the next call on this client is made.
        reconnect (default True): after a drop the library reconnects by
        itself with back-off (reconnect_min .. reconnect_max seconds) and
        resends what got no Result; events Disconnected, then Reconnected.
        False: the first drop is Closed. keepalive (default True): pings
        below the broker's idle timeout (keepalive_interval), a broker
        silent for dead_peer seconds after one counts as gone. opaque=True:
        deliveries that are not seals come as Opaque; "all": every delivery.
        offline_queue_max: sends kept while disconnected (then EQUEUEFULL).
        None takes the library's default for each. enrol_token: the
        operator's one-use token (sealpostd mint-token) for a broker with
        --registration=token; a refusal raises EENROLREQUIRED, EENROLTOKEN
        or EENROLUSED. padding (default True): messages are sealed padded
        to a size bucket (PROTOCOL.md 7.1); False seals them unpadded.
        aesgcm=True: propose the AES-256-GCM transport cipher where this CPU
        has AES-NI (SEALPOST_CONNECT_AESGCM; ChaChaPoly if the broker does
        not offer it); .cipher says which one the session uses."""
        out = ffi.new("struct sealpost_client **")
        keep = []
        opts = cls._opts(manual_ack, reconnect, keepalive, opaque, reconnect_min, reconnect_max,
                         offline_queue_max, connect_timeout, keepalive_interval, dead_peer,
                         enrol_token, padding, aesgcm, keep)
        sk = ffi.new("uint8_t[32]", _key_bytes(server_key, "server_key")) \
            if server_key is not None else ffi.NULL
        # None or 0: the library's own bound (30 s) for connect and handshake.
        ms = max(_ms(timeout), 1) if timeout else 0
        _check(lib.sealpost_client_connect_opts(out, server.encode(), key._ptr(), sk, ms, opts))
        return cls(out[0])

    @classmethod
    def start(cls, server, key, server_key=None, **options):
        """Non-blocking connect: returns at once; the TCP connect and the
        handshake proceed as the app drives the client (an event loop:
        fileno(), poll_events(), timeout(), step(); or next_event with a
        timeout). The first event is Connected, or Disconnected if the
        first attempt failed and the client retries. options: as connect()."""
        out = ffi.new("struct sealpost_client **")
        names = ("manual_ack", "reconnect", "keepalive", "opaque", "reconnect_min",
                 "reconnect_max", "offline_queue_max", "connect_timeout",
                 "keepalive_interval", "dead_peer", "enrol_token", "padding", "aesgcm")
        unknown = set(options) - set(names)
        if unknown:
            raise TypeError("unknown option(s): %s" % ", ".join(sorted(unknown)))
        defaults = {"manual_ack": False, "reconnect": True, "keepalive": True, "opaque": False,
                    "padding": True, "aesgcm": False}
        keep = []
        opts = cls._opts(*[options.get(n, defaults.get(n)) for n in names], keep)
        sk = ffi.new("uint8_t[32]", _key_bytes(server_key, "server_key")) \
            if server_key is not None else ffi.NULL
        _check(lib.sealpost_client_start(out, server.encode(), key._ptr(), sk, opts))
        return cls(out[0])

    @property
    def connected(self):
        """Is a session established right now (False while reconnecting)?"""
        with self._lock:
            return bool(lib.sealpost_client_is_connected(self._ptr()))

    @property
    def cipher(self):
        """The session's transport cipher: "chachapoly" or "aesgcm"; None
        while not connected."""
        with self._lock:
            c = lib.sealpost_client_cipher(self._ptr())
        return None if c < 0 else ("aesgcm" if c == 1 else "chachapoly")

    @property
    def idle_timeout(self):
        """The broker's idle timeout in seconds (its ServerHello); 0: none said."""
        with self._lock:
            return lib.sealpost_client_idle_timeout(self._ptr()) / 1000.0

    def pending(self):
        """The sends still waiting for their Result, oldest first (Pending)."""
        with self._lock:
            n = lib.sealpost_client_pending(self._ptr(), ffi.NULL, 0)
            if not n:
                return []
            arr = ffi.new("struct sealpost_pending[]", n)
            n = min(n, lib.sealpost_client_pending(self._ptr(), arr, n))
            return [Pending(arr[i].client_id, bytes(arr[i].to),
                            bool(arr[i].flags & _SEND_ONLINE_ONLY), arr[i].len)
                    for i in range(n)]

    def _ptr(self):
        if self._c is None:
            raise ValueError("client is closed")
        return self._c

    @property
    def server_key(self):
        """The broker's public key, proven by the handshake (32 bytes)."""
        buf = ffi.new("uint8_t[32]")
        with self._lock:
            lib.sealpost_client_server_key(self._ptr(), buf)
        return bytes(buf)

    @property
    def public_key(self):
        buf = ffi.new("uint8_t[32]")
        with self._lock:
            lib.sealpost_client_public_key(self._ptr(), buf)
        return bytes(buf)

    @property
    def max_message(self):
        """The largest message this broker takes, in bytes."""
        with self._lock:
            return lib.sealpost_client_max_message(self._ptr())

    def send(self, to, data, online_only=False, client_id=0):
        """Seals data for `to` and queues it; returns its client id (the
        Result carries it). client_id: an earlier send's id to retry it
        (the broker deduplicates)."""
        to = _key_bytes(to, "to")
        data = bytes(data)
        used = ffi.new("uint64_t *")
        with self._lock:
            _check(lib.sealpost_client_send_ex(self._ptr(), to, data, len(data),
                                               _SEND_ONLINE_ONLY if online_only else 0,
                                               client_id, used))
        return used[0]

    def send_raw(self, to, envelope, online_only=False, client_id=0):
        """Queues an already sealed envelope unchanged (see seal())."""
        to = _key_bytes(to, "to")
        envelope = bytes(envelope)
        used = ffi.new("uint64_t *")
        with self._lock:
            _check(lib.sealpost_client_send_raw_ex(self._ptr(), to, envelope, len(envelope),
                                                   _SEND_ONLINE_ONLY if online_only else 0,
                                                   client_id, used))
        return used[0]

    def wait_result(self, client_id, timeout=10.0):
        """Waits for the Result of that send (other events are kept for
        next_event). SealpostError ETIMEDOUT if none came in time."""
        status = ffi.new("int *")
        seq = ffi.new("uint64_t *")
        with self._lock:
            _check(lib.sealpost_client_wait_result(self._ptr(), client_id, _ms(timeout),
                                                   status, seq))
        return Result(client_id, status[0], seq[0])

    def send_wait(self, to, data, timeout=10.0, online_only=False):
        """send() then wait_result(): the broker's answer as a Result."""
        with self._lock:
            cid = self.send(to, data, online_only=online_only)
            return self.wait_result(cid, timeout)

    def ack(self, seq):
        """Acknowledges a delivery (manual_ack mode; harmless otherwise)."""
        with self._lock:
            _check(lib.sealpost_client_ack(self._ptr(), seq))

    def ping(self):
        """Queues a ping; its Pong carries the returned id."""
        out = ffi.new("uint64_t *")
        with self._lock:
            _check(lib.sealpost_client_ping(self._ptr(), out))
        return out[0]

    def flush(self, timeout=None):
        with self._lock:
            _check(lib.sealpost_client_flush(self._ptr(), _ms(timeout)))

    def sync(self, timeout=None):
        """Waits until the broker has processed everything written (acks too)."""
        with self._lock:
            _check(lib.sealpost_client_sync(self._ptr(), _ms(timeout)))

    def next_event(self, timeout=None):
        """The next event, or None if none came within timeout (0: never
        waits). After Closed, Closed again."""
        with self._lock:
            while True:
                r = _check(lib.sealpost_client_next_event(self._ptr(), self._ev, _ms(timeout)))
                if r == 0:
                    return None
                ev = _event(self._ev)
                if ev is not None:
                    return ev

    def events(self, timeout=None):
        """Iterator over events: ends after Closed, or when no event came for
        `timeout` seconds (None: only at Closed)."""
        while True:
            ev = self.next_event(timeout)
            if ev is None:
                return
            yield ev
            if isinstance(ev, Closed):
                return

    def messages(self, timeout=None):
        """Iterator over Message events only (others are taken and dropped);
        ends like events()."""
        for ev in self.events(timeout):
            if isinstance(ev, Message):
                yield ev

    def __iter__(self):
        return self.messages()

    # Accounts (docs/CLIENT.md "Accounts and linked devices").
    def set_account_store(self, store):
        """Lists this client receives are checked against store (an
        AccountStore, or None to detach); the client keeps a reference so
        the store outlives it."""
        with self._lock:
            lib.sealpost_client_set_account_store(self._ptr(),
                                                  store._ptr() if store else ffi.NULL)
            self._store = store

    def publish(self, account, devlist, timeout=10.0):
        """Signs devlist with account (an Account) and publishes it, waiting
        for the broker: (Status, version). A refusal is a Status, not an
        exception (ERR_LIST_VERSION: a newer list is there; fetch it)."""
        raw = devlist.sign(account)
        status = ffi.new("int *")
        version = ffi.new("uint64_t *")
        with self._lock:
            _check(lib.sealpost_account_publish_wait(self._ptr(), raw, len(raw), _ms(timeout),
                                                     status, version))
        return Status.of(status[0]), version[0]

    def fetch(self, account, timeout=10.0):
        """The account's current list (account: its 32-byte key or hex),
        verified, checked against the attached store and the broker's
        transparency log: a DeviceList. Raises SealpostError ENOLIST,
        EBADLIST, EROLLBACK, ESPLITVIEW, ELOGPROOF, ELOGKEY."""
        acct = _key_bytes(account, "account")
        out = ffi.new("struct sealpost_devlist *")
        with self._lock:
            _check(lib.sealpost_account_fetch_wait(self._ptr(), acct, _ms(timeout), out,
                                                   ffi.NULL, 0, ffi.NULL))
        return DeviceList._from_c(out)

    def send_devices(self, devlist, data):
        """Seals data for every device of devlist but this one (one envelope
        each); returns their client ids in list order (wait_result each).
        Give it a list from fetch() or a ListChanged with error 0."""
        data = bytes(data)
        first = ffi.new("uint64_t *")
        c = devlist._to_c()
        with self._lock:
            n = _check(lib.sealpost_client_send_devices(self._ptr(), c, data, len(data), first))
        return [first[0] + i for i in range(n)]

    def send_account(self, account, data, own_account=None, timeout=10.0):
        """One call to every device of account (its 32-byte key or hex), all
        or none (docs/CLIENT.md "Sending to an account"): the list fetched
        and verified, one sealed copy per device but this one in one group,
        refreshed and resent after a mismatch (at most 3 times); with
        own_account (this device's account) the same for its other devices.
        Returns a FanoutResult (.ok, .error: 0, EFANOUT or EFANOUTMISMATCH,
        .status, .devices). Raises SealpostError for EFANOUTLIE,
        EFANOUTNONE and the fetch's errors (ENOLIST, EBADLIST, ...)."""
        acct = _key_bytes(account, "account")
        own = _key_bytes(own_account, "own_account") if own_account is not None else ffi.NULL
        data = bytes(data)
        out = ffi.new("struct sealpost_fanout_result *")
        with self._lock:
            r = lib.sealpost_client_send_account(self._ptr(), acct, own, data, len(data),
                                                 _ms(timeout), out)
        err = -r if r < 0 else 0
        if err and err not in (EFANOUT, EFANOUTMISMATCH):
            raise SealpostError(r)
        return FanoutResult(out, err)

    def log_sync(self, timeout=10.0):
        """The broker's current log head, verified and proven consistent with
        the one kept: (log_key, head) (32 and 113 bytes). Raises ESPLITVIEW
        (a SplitView event is kept too), ELOGPROOF, ELOGKEY."""
        head = ffi.new("uint8_t[113]")
        key = ffi.new("uint8_t[32]")
        with self._lock:
            _check(lib.sealpost_log_sync(self._ptr(), _ms(timeout), head, key))
        return bytes(key), bytes(head)

    def log_audit(self, timeout=60.0):
        """Audits the broker's whole transparency log (every leaf a list that
        verifies, versions rising per account, the root recomputed): a
        LogAudit; .ok False with .error and .bad_leaf when it fails."""
        out = ffi.new("struct sealpost_log_audit *")
        with self._lock:
            r = lib.sealpost_log_audit(self._ptr(), _ms(timeout), out)
        err = -r if r < 0 else 0
        if err and err not in (EBADLIST, EROLLBACK, ELOGPROOF):
            raise SealpostError(err)
        return LogAudit(out, err)

    # Sealed sender (docs/CLIENT.md "Sealed sender", PROTOCOL.md 14).
    def set_access(self, access_key, accept_anyone=False, timeout=10.0):
        """Sets this device's access key (16 or 32 bytes; None: none) and
        whether it takes anonymous sends from anyone. Give the key to your
        contacts inside your sealed messages, never to the broker."""
        k = bytes(access_key) if access_key else b""
        with self._lock:
            _check(lib.sealpost_set_access(self._ptr(), k or ffi.NULL, len(k),
                                           bool(accept_anyone), _ms(timeout)))

    def set_contact_access(self, contact, access_key):
        """Remembers a contact's access key (None forgets it): send_anonymous
        to that contact uses it when given none."""
        k = bytes(access_key) if access_key else b""
        with self._lock:
            _check(lib.sealpost_contact_access_set(self._ptr(), _key_bytes(contact, "contact"),
                                                   k or ffi.NULL, len(k)))

    def send_anonymous(self, to, data, access_key=None, timeout=10.0):
        """Seals data as this device and hands it over on an anonymous (NK)
        connection to the same broker, which learns the recipient but not
        the sender: a Result. access_key: the recipient's (None: the
        contact's set with set_contact_access, else none). Refusals raise
        EACCESSMISSING, EACCESSWRONG, EACCESSROTATED, EANONLIMIT."""
        to = _key_bytes(to, "to")
        data = bytes(data)
        k = bytes(access_key) if access_key else b""
        status = ffi.new("int *")
        seq = ffi.new("uint64_t *")
        with self._lock:
            _check(lib.sealpost_send_anonymous(self._ptr(), to, k or ffi.NULL, len(k), data,
                                               len(data), _ms(timeout), status, seq))
        return Result(0, status[0], seq[0])

    # Push wake-ups (docs/CLIENT.md, PROTOCOL.md 12).
    def push_register(self, endpoint, p256dh, auth):
        """Registers this device's Web Push subscription (endpoint URL,
        65-byte p256dh, 16-byte auth, as PushSubscription gives them);
        returns the id its PushResult carries."""
        p256dh, auth = bytes(p256dh), bytes(auth)
        out = ffi.new("uint64_t *")
        with self._lock:
            _check(lib.sealpost_push_register(self._ptr(), endpoint.encode(), p256dh,
                                              len(p256dh), auth, len(auth), out))
        return out[0]

    def push_remove(self):
        """Forgets this device's subscription; returns the PushResult's id."""
        out = ffi.new("uint64_t *")
        with self._lock:
            _check(lib.sealpost_push_remove(self._ptr(), out))
        return out[0]

    # Event-loop integration: poll fileno() for poll_events(), then step()
    # and take events with next_event(0).
    def fileno(self):
        with self._lock:
            return lib.sealpost_client_fd(self._ptr())

    def poll_events(self):
        """select/poll bits: POLLIN, plus POLLOUT while output is queued or a
        connect is in progress. Ask again every round: a reconnect changes
        fileno(), and while waiting to reconnect there is none (-1)."""
        with self._lock:
            return lib.sealpost_client_poll_events(self._ptr())

    def timeout(self):
        """Seconds until the client's next timer needs a step() (keepalive, a
        reconnect attempt), or None: for the wait of an event loop."""
        with self._lock:
            ms = lib.sealpost_client_timeout(self._ptr())
        return None if ms < 0 else ms / 1000.0

    def set_prekeys(self, prekeys):
        """Attaches a Prekeys store (None detaches): first-contact envelopes
        then open as Message events, each one-time prekey deleted at open.
        The client keeps a reference: the store outlives it."""
        with self._lock:
            lib.sealpost_client_set_prekeys(self._ptr(), prekeys._ptr() if prekeys is not None else ffi.NULL)
            self._prekeys = prekeys

    def set_sessions(self, sessions):
        """Attaches a Sessions store (None detaches; it must be this device's:
        else SealpostError EINVAL): sends to a device with a session and the
        deliveries through one use the Double Ratchet (docs/CLIENT.md
        "Sessions")."""
        with self._lock:
            _check(lib.sealpost_client_set_sessions(self._ptr(),
                                                    sessions._ptr() if sessions is not None else ffi.NULL))
            self._sessions = sessions

    def prekeys_upload(self, prekeys, count=20, timeout=10.0):
        """Makes count one-time prekeys (and a signed one when due), saves the
        store, uploads them: the one-time prekeys the broker holds now.
        Raises EPREKEYLIMIT, EPREKEYREFUSED."""
        stock = ffi.new("uint32_t *")
        with self._lock:
            _check(lib.sealpost_prekeys_upload_wait(self._ptr(), prekeys._ptr(), count,
                                                    _ms(timeout), stock))
        return stock[0]

    def prekey_bundle(self, account, device, timeout=10.0):
        """device's prekey bundle (a PrekeyBundle), checked against the
        verified list of account (its 32-byte key or hex): raises ENOPREKEY,
        EPREKEYBAD (forged or substituted), ENOTONLIST, EPREKEYRATE and the
        list's errors (ENOLIST, EBADLIST, EROLLBACK). Uses up one of the
        device's one-time prekeys."""
        acct = _key_bytes(account, "account")
        dev = _key_bytes(device, "device")
        out = ffi.new("struct sealpost_devlist *")
        raw = ffi.new("uint8_t[]", LIST_MAX)
        raw_len = ffi.new("size_t *")
        b = ffi.new("struct sealpost_prekey_bundle *")
        with self._lock:
            _check(lib.sealpost_account_fetch_wait(self._ptr(), acct, _ms(timeout), out, raw,
                                                   LIST_MAX, raw_len))
            _check(lib.sealpost_prekeys_fetch_wait(self._ptr(), raw, raw_len[0], dev,
                                                   _ms(timeout), b))
        return PrekeyBundle(b)

    def send_first(self, bundle, data):
        """First contact to a PrekeyBundle that starts a session (Sessions
        attached): the client id (wait_result it). Later send() calls to
        bundle.device go through the session."""
        data = bytes(data)
        cid = ffi.new("uint64_t *")
        with self._lock:
            _check(lib.sealpost_client_send_first(self._ptr(), bundle._c, data, len(data), cid))
        return cid[0]

    def step(self):
        """Non-blocking I/O; raises SealpostError once the connection is gone
        (a Closed event is then pending)."""
        with self._lock:
            _check(lib.sealpost_client_step(self._ptr()))

    def close(self):
        """Closes (never blocks), wipes, frees. Call sync() first if the last
        acknowledgements must have reached the broker."""
        with self._lock:
            if self._c is not None:
                _client_close(self._c)
                self._c = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -------------------------------------------------------------- accounts ---

class Account:
    """An account's Ed25519 key (struct sealpost_account, guarded memory)."""

    def __init__(self, _ptr):
        self._a = _ptr

    @classmethod
    def generate(cls):
        out = ffi.new("struct sealpost_account **")
        _check(lib.sealpost_account_generate(out))
        return cls(out[0])

    @classmethod
    def load(cls, path):
        out = ffi.new("struct sealpost_account **")
        _check(lib.sealpost_account_load(out, _path(path)))
        return cls(out[0])

    def save(self, path):
        """Writes the key (mode 0600); keep it like a device key."""
        _check(lib.sealpost_account_save(self._ptr(), _path(path)))

    @property
    def public(self):
        """The account's public key (32 bytes): what senders address."""
        buf = ffi.new("uint8_t[32]")
        lib.sealpost_account_public(self._ptr(), buf)
        return bytes(buf)

    def _ptr(self):
        if self._a is None:
            raise ValueError("account key is closed")
        return self._a

    def close(self):
        if self._a is not None:
            _account_free(self._a)
            self._a = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Device:
    """One device of a list: .key (32 bytes), .label, .added (Unix time)."""
    __slots__ = ("key", "label", "added")

    def __init__(self, key, label, added):
        self.key, self.label, self.added = key, label, added

    def __repr__(self):
        return "Device(%s, %r, %d)" % (self.key.hex()[:16], self.label, self.added)

    def __eq__(self, other):
        return isinstance(other, Device) and (self.key, self.label, self.added) == \
            (other.key, other.label, other.added)


class DeviceList:
    """An account's device list: .account, .version, .devices (Device, in
    the list's order). Change it with add/remove, bump .version, then
    Client.publish(account, list)."""

    def __init__(self, account, version=1, devices=()):
        self.account = _key_bytes(account, "account")
        self.version = version
        self.devices = list(devices)

    @classmethod
    def _from_c(cls, c):
        devs = [Device(bytes(c.dev[i].key), ffi.string(c.dev[i].label).decode(),
                       c.dev[i].added_s) for i in range(c.count)]
        return cls(bytes(c.account), c.version, devs)

    def _to_c(self):
        c = ffi.new("struct sealpost_devlist *")
        c.account = self.account
        c.version = self.version
        for d in self.devices:
            _check(lib.sealpost_devlist_add(c, d.key, d.label.encode(), d.added))
        return c

    @classmethod
    def verify(cls, raw):
        """Decodes signed list bytes after checking them (EBADLIST)."""
        raw = bytes(raw)
        c = ffi.new("struct sealpost_devlist *")
        _check(lib.sealpost_devlist_verify(raw, len(raw), c))
        return cls._from_c(c)

    def add(self, key, label, added=None):
        """Adds a device at its sorted place (EEXIST, EMSGSIZE when full,
        EINVAL for a bad label: 1..64 bytes, no control characters)."""
        import time
        c = self._to_c()
        _check(lib.sealpost_devlist_add(c, _key_bytes(key, "key"), label.encode(),
                                        int(time.time()) if added is None else added))
        self.devices = DeviceList._from_c(c).devices

    def remove(self, key):
        c = self._to_c()
        _check(lib.sealpost_devlist_remove(c, _key_bytes(key, "key")))
        self.devices = DeviceList._from_c(c).devices

    def sign(self, account):
        """The signed list bytes (EINVAL if account is not the list's)."""
        c = self._to_c()
        out = ffi.new("uint8_t[6827]")
        n = ffi.new("size_t *")
        _check(lib.sealpost_devlist_sign(account._ptr(), c, out, 6827, n))
        return bytes(ffi.buffer(out, n[0]))

    def keys(self):
        return [d.key for d in self.devices]

    def __repr__(self):
        return "DeviceList(%s, v%d, %r)" % (self.account.hex()[:16], self.version, self.devices)


def access_key_generate():
    """A new random 32-byte access key (for Client.set_access)."""
    buf = ffi.new("uint8_t[32]")
    lib.sealpost_access_key_generate(buf)
    return bytes(buf)


def link_request(device_key, label):
    """On a new device: (request, code): the one-line link request to hand
    to a device holding the account key, and the 6-digit code both screens
    must show."""
    out = ffi.new("char[160]")
    code = ffi.new("char[7]")
    _check(lib.sealpost_link_request(_key_bytes(device_key, "device_key"), label.encode(), out,
                                     160, code))
    return ffi.string(out).decode(), ffi.string(code).decode()


def parse_link_request(request):
    """On the linking device: (device_key, label, code); compare the code
    with the one the new device shows before adding it. ELINKFORMAT."""
    key = ffi.new("uint8_t[32]")
    label = ffi.new("char[65]")
    code = ffi.new("char[7]")
    _check(lib.sealpost_link_request_parse(request.encode(), key, label, code))
    return bytes(key), ffi.string(label).decode(), ffi.string(code).decode()


class AccountStore:
    """The newest list seen per account, and the broker's log key and head,
    in a file (0600, rewritten atomically): attach it with
    Client.set_account_store so rollbacks are refused."""

    def __init__(self, path):
        out = ffi.new("struct sealpost_account_store **")
        _check(lib.sealpost_account_store_open(out, _path(path)))
        self._st = out[0]

    def _ptr(self):
        if self._st is None:
            raise ValueError("account store is closed")
        return self._st

    def check(self, raw):
        """Verifies signed list bytes against what is kept for their account:
        newer (kept from now on) or the same: the DeviceList; older, or
        another list of the same version: SealpostError EROLLBACK; EBADLIST."""
        raw = bytes(raw)
        c = ffi.new("struct sealpost_devlist *")
        _check(lib.sealpost_account_store_check(self._ptr(), raw, len(raw), c))
        return DeviceList._from_c(c)

    def get(self, account):
        """The kept list of account, or None."""
        c = ffi.new("struct sealpost_devlist *")
        r = lib.sealpost_account_store_get(self._ptr(), _key_bytes(account, "account"), c)
        if r == -_errno.ENOENT:
            return None
        _check(r)
        return DeviceList._from_c(c)

    def log(self):
        """(log_key, head) kept, or None before the first."""
        key = ffi.new("uint8_t[32]")
        head = ffi.new("uint8_t[113]")
        if lib.sealpost_account_store_log(self._ptr(), key, head) < 0:
            return None
        return bytes(key), bytes(head)

    def close(self):
        """Detach it from clients first (set_account_store(None))."""
        if self._st is not None:
            _store_close(self._st)
            self._st = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FanoutResult:
    """send_account's result: .ok, .error (0, EFANOUT, EFANOUTMISMATCH),
    .status / .own_status (the groups' Status; 0: not sent), .version,
    .own_version, .retries, .devices: [(key, Status, own)]."""

    def __init__(self, c, error):
        self.error = error
        self.ok = error == 0
        self.status, self.own_status = Status.of(c.status), Status.of(c.own_status)
        self.version, self.own_version = c.version, c.own_version
        self.group_id, self.own_group_id = c.group_id, c.own_group_id
        self.retries = c.retries
        self.devices = [(bytes(c.dev[i].key), Status.of(c.dev[i].status), bool(c.dev[i].own))
                        for i in range(c.count)]

    def __repr__(self):
        return "FanoutResult(ok=%s, status=%r, devices=%d, retries=%d)" % (
            self.ok, self.status, len(self.devices), self.retries)


class LogAudit:
    """sealpost_log_audit's result: .ok, .error, .size, .accounts,
    .bad_leaf (index of the leaf at fault, or None), .head, .log_key."""

    def __init__(self, c, error):
        self.error = error
        self.ok = error == 0
        self.size, self.accounts = c.size, c.accounts
        self.bad_leaf = c.bad_leaf - 1 if c.bad_leaf else None
        self.head, self.log_key = bytes(c.head), bytes(c.log_key)

    def __repr__(self):
        return "LogAudit(ok=%s, size=%d, accounts=%d, bad_leaf=%s)" % (
            self.ok, self.size, self.accounts, self.bad_leaf)


# ------------------------------------------------------------------ log ---

_log_cb = None      # the cffi callback must outlive its use by the library


def set_log_callback(fn):
    """fn(level, message) for what the library does (connecting, drops,
    back-off, resends; never keys or message contents); level 0 error ..
    3 debug. None: silent (the default). Global: set it before clients run.
    fn runs on whichever thread is inside a library call; exceptions in it
    are printed and ignored."""
    global _log_cb
    if fn is None:
        lib.sealpost_set_log_callback(ffi.NULL, ffi.NULL)
        _log_cb = None
        return

    @ffi.callback("void(void *, int, const char *)")
    def cb(ctx, level, message):
        try:
            fn(level, ffi.string(message).decode(errors="replace"))
        except Exception:       # never unwind into C
            import traceback
            traceback.print_exc()

    lib.sealpost_set_log_callback(cb, ffi.NULL)
    _log_cb = cb


# ------------------------------------------------------------- envelopes ---

def seal(sender, to, data):
    """Seals data for `to` as `sender` (a Key), without a connection."""
    to = _key_bytes(to, "to")
    data = bytes(data)
    out = ffi.new("uint8_t[]", len(data) + SEAL_OVERHEAD)
    n = ffi.new("size_t *")
    _check(lib.sealpost_envelope_seal(sender._ptr(), to, data, len(data), out,
                                      len(data) + SEAL_OVERHEAD, n))
    return bytes(ffi.buffer(out, n[0]))


def open_envelope(key, envelope):
    """Opens an envelope sealed for `key`: (sender, data)."""
    envelope = bytes(envelope)
    cap = max(len(envelope) - SEAL_OVERHEAD, 1)
    out = ffi.new("uint8_t[]", cap)
    sender = ffi.new("uint8_t[32]")
    n = ffi.new("size_t *")
    try:
        _check(lib.sealpost_envelope_open(key._ptr(), envelope, len(envelope), sender, out,
                                          cap, n))
        return bytes(sender), bytes(ffi.buffer(out, n[0]))
    finally:
        ffi.memmove(out, b"\0" * cap, cap)


# The errno names callers compare SealpostError.errno with.
ETIMEDOUT = _errno.ETIMEDOUT
EMSGSIZE = _errno.EMSGSIZE
ECONNRESET = _errno.ECONNRESET
ENOTCONN = _errno.ENOTCONN


# -------------------------------------------------------- prekeys, sessions ---

STORAGE_KEY_LEN = 32
LIST_MAX = 6827        # SEALPOST_LIST_MAX


class Prekeys:
    """A prekey store (docs/CLIENT.md "Prekeys"): the file at path for key's
    device, encrypted under storage_key (32 bytes) when given."""

    def __init__(self, path, key, storage_key=None):
        out = ffi.new("struct sealpost_prekeys **")
        if storage_key is not None:
            storage_key = bytes(storage_key)
            if len(storage_key) != STORAGE_KEY_LEN:
                raise ValueError("storage_key must be 32 bytes")
        _check(lib.sealpost_prekeys_open_keyed(out, _path(path), key._ptr(),
                                               storage_key if storage_key else ffi.NULL))
        self._pk = out[0]

    def info(self):
        """dict: onetime, has_signed, signed_id, signed_created_s, has_previous."""
        i = ffi.new("struct sealpost_prekeys_info *")
        lib.sealpost_prekeys_info(self._ptr(), i)
        return {"onetime": i.onetime, "has_signed": bool(i.has_signed),
                "signed_id": i.signed_id, "signed_created_s": i.signed_created_s,
                "has_previous": bool(i.has_previous)}

    def _ptr(self):
        if self._pk is None:
            raise ValueError("prekey store is closed")
        return self._pk

    def close(self):
        if getattr(self, "_pk", None) is not None:
            _prekeys_close(self._pk)
            self._pk = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PrekeyBundle:
    """A verified bundle: .device, .signed_id, .signed_created_s,
    .signed_key, .has_onetime, .onetime_id, .onetime_key."""

    def __init__(self, c):
        self._c = ffi.new("struct sealpost_prekey_bundle *")
        ffi.memmove(self._c, c, ffi.sizeof("struct sealpost_prekey_bundle"))
        self.device = bytes(c.device)
        self.signed_id = c.signed_id
        self.signed_created_s = c.signed_created_s
        self.signed_key = bytes(c.signed_key)
        self.has_onetime = bool(c.has_onetime)
        self.onetime_id = c.onetime_id
        self.onetime_key = bytes(c.onetime_key)


class Sessions:
    """A session store (docs/CLIENT.md "Sessions"): the file at path for
    key's device, encrypted under storage_key (32 bytes). Raises
    ESTORAGEKEY for a wrong key or a damaged file."""

    def __init__(self, path, key, storage_key):
        storage_key = bytes(storage_key)
        if len(storage_key) != STORAGE_KEY_LEN:
            raise ValueError("storage_key must be 32 bytes")
        out = ffi.new("struct sealpost_sessions **")
        _check(lib.sealpost_sessions_open(out, _path(path), key._ptr(), storage_key))
        self._ss = out[0]

    def __len__(self):
        return lib.sealpost_sessions_count(self._ptr())

    def has(self, peer):
        return bool(lib.sealpost_sessions_has(self._ptr(), _key_bytes(peer, "peer")))

    def forget(self, peer):
        _check(lib.sealpost_sessions_forget(self._ptr(), _key_bytes(peer, "peer")))

    def _ptr(self):
        if self._ss is None:
            raise ValueError("session store is closed")
        return self._ss

    def close(self):
        if getattr(self, "_ss", None) is not None:
            _sessions_close(self._ss)
            self._ss = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
