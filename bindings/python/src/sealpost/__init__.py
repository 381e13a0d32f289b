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
]

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
_SEND_ONLINE_ONLY = 1 << 0

(_EV_MESSAGE, _EV_RESULT, _EV_PONG, _EV_GOAWAY, _EV_CLOSED, _EV_BAD_ENVELOPE, _EV_DRAINED,
 _EV_CONNECTED, _EV_DISCONNECTED, _EV_RECONNECTED, _EV_OPAQUE) = range(1, 12)

# The library's own error codes (SealpostError.errno), above every errno.
ESERVERKEY = 7001       # the broker's key is not the pinned server key
EUNKNOWNHOST = 7002     # the broker's host name does not exist
EKEYMODE = 7003         # a key file readable by group or others: chmod 600
EKEYFORMAT = 7004       # a key file that is not a key
EQUEUEFULL = 7005       # disconnected, and the offline queue is full
EDEADPEER = 7006        # the broker stopped answering keepalive pings


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
            lib.sealpost_key_free(self._k)
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

    @staticmethod
    def _opts(manual_ack, reconnect, keepalive, opaque, reconnect_min, reconnect_max,
              offline_queue_max, connect_timeout, keepalive_interval, dead_peer):
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
        opts.flags = flags
        # Seconds to milliseconds; None (0) takes the library's default.
        for field, v in (("reconnect_min_ms", reconnect_min), ("reconnect_max_ms", reconnect_max),
                         ("connect_timeout_ms", connect_timeout),
                         ("keepalive_ms", keepalive_interval), ("dead_peer_ms", dead_peer)):
            setattr(opts, field, max(int(v * 1000), 1) if v else 0)
        opts.offline_queue_max = offline_queue_max or 0
        return opts

    @classmethod
    def connect(cls, server, key, server_key=None, timeout=30.0, manual_ack=False,
                reconnect=True, keepalive=True, opaque=False, reconnect_min=None,
                reconnect_max=None, offline_queue_max=None, connect_timeout=None,
                keepalive_interval=None, dead_peer=None):
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
        None takes the library's default for each."""
        out = ffi.new("struct sealpost_client **")
        opts = cls._opts(manual_ack, reconnect, keepalive, opaque, reconnect_min, reconnect_max,
                         offline_queue_max, connect_timeout, keepalive_interval, dead_peer)
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
                 "keepalive_interval", "dead_peer")
        unknown = set(options) - set(names)
        if unknown:
            raise TypeError("unknown option(s): %s" % ", ".join(sorted(unknown)))
        defaults = {"manual_ack": False, "reconnect": True, "keepalive": True, "opaque": False}
        opts = cls._opts(*[options.get(n, defaults.get(n)) for n in names])
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
                lib.sealpost_client_close(self._c)
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
