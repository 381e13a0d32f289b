# SPDX-License-Identifier: Apache-2.0
"""The Python binding against real sealpostd processes: keys, IK and XX,
send/receive, the iterator, acknowledgements (automatic and manual), the
events, errors."""
import errno
import os
import re
import select
import stat
import threading

import pytest

import sealpost
from sealpost import Client, Key, SealpostError, Status

T = 10.0        # seconds: bound on every wait (a test never waits this long when it passes)


def test_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", sealpost.version())
    assert sealpost.strerror(-errno.ETIMEDOUT) == sealpost.strerror(errno.ETIMEDOUT)
    assert sealpost.strerror(0) == "success"


def test_keys(tmp_path):
    k = Key.generate()
    assert len(k.public) == 32 and k.public_hex == k.public.hex()
    path = tmp_path / "dev.key"
    k.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Key.load(path).public == k.public
    assert Key.load(str(path)).public == k.public
    # Never overwrites.
    with pytest.raises(SealpostError) as e:
        k.save(path)
    assert e.value.errno == errno.EEXIST
    # A key others can read is refused; a missing one is ENOENT; junk EBADMSG.
    os.chmod(path, 0o644)
    with pytest.raises(SealpostError) as e:
        Key.load(path)
    assert e.value.errno == sealpost.EKEYMODE
    assert "chmod 600" in str(e.value)
    with pytest.raises(SealpostError) as e:
        Key.load(tmp_path / "none.key")
    assert e.value.errno == errno.ENOENT
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    os.chmod(bad, 0o600)
    with pytest.raises(SealpostError) as e:
        Key.load(bad)
    assert e.value.errno == sealpost.EKEYFORMAT
    assert str(e.value)         # the library's words
    # From private bytes: deterministic.
    priv = bytes(range(32))
    assert Key.from_private(priv).public == Key.from_private(priv.hex()).public
    with pytest.raises(ValueError):
        Key.from_private(b"short")
    k.close()
    with pytest.raises(ValueError):
        k.save(tmp_path / "other.key")


def test_connect_xx_then_ik(broker):
    k = Key.generate()
    with Client.connect(broker.addr, k, timeout=T) as c:        # XX: learns the key
        assert c.server_key == broker.server_pub
        assert c.public_key == k.public
        assert 0 < c.max_message <= sealpost.MESSAGE_MAX
    with Client.connect(broker.addr, k, server_key=broker.server_pub_hex, timeout=T) as c:
        assert c.server_key == broker.server_pub
    # IK with a key the broker does not hold: the handshake fails.
    with pytest.raises(SealpostError) as e:
        Client.connect(broker.addr, k, server_key=Key.generate().public, timeout=T)
    assert e.value.errno == sealpost.ESERVERKEY
    # Nothing listening.
    broker.stop()
    with pytest.raises(SealpostError) as e:
        Client.connect(broker.addr, k, server_key=broker.server_pub, timeout=T)
    assert e.value.errno == errno.ECONNREFUSED
    with pytest.raises(ValueError):
        Client.connect(broker.addr, k, server_key=b"short")
    broker.start(broker.port)


def test_send_and_receive_iterator(broker):
    alice, bob = Key.generate(), Key.generate()
    bodies = [b"one", b"\x00binary\xff", "utf-8 \u00e9".encode(), b"x" * 60000]
    with Client.connect(broker.addr, alice, server_key=broker.server_pub, timeout=T) as a:
        seqs = []
        for body in bodies:         # bob is offline: stored
            r = a.send_wait(bob.public, body, timeout=T)
            assert r.status == Status.ACCEPTED and r.ok
            seqs.append(r.seq)
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # Pipelined: queue several, then take the results in order.
        ids = [a.send(bob.public_hex, b"piped %d" % i) for i in range(20)]
        results = [a.wait_result(i, T) for i in ids]
        assert all(r.status == Status.ACCEPTED for r in results)
        assert [r.client_id for r in results] == ids
    with Client.connect(broker.addr, bob, server_key=broker.server_pub, timeout=T) as b:
        got = []
        for msg in b:                       # the iterator: Message objects
            assert msg.sender == alice.public and msg.sender_hex == alice.public_hex
            got.append(msg)
            if len(got) == len(bodies) + 20:
                break
        assert [m.data for m in got[:len(bodies)]] == bodies
        assert [m.seq for m in got[:len(bodies)]] == seqs
        assert [m.data for m in got[len(bodies):]] == [b"piped %d" % i for i in range(20)]
        assert b.next_event(T) == sealpost.Drained(len(bodies) + 20)
        b.sync(T)                           # the acks have reached the broker
    # Acknowledged automatically: a new connection finds the mailbox empty.
    with Client.connect(broker.addr, bob, server_key=broker.server_pub, timeout=T) as b:
        assert b.next_event(T) == sealpost.Drained(0)
        assert list(b.messages(timeout=0.2)) == []


def test_live_delivery_and_online_only(broker):
    alice, bob = Key.generate(), Key.generate()
    with Client.connect(broker.addr, alice, server_key=broker.server_pub, timeout=T) as a, \
            Client.connect(broker.addr, bob, server_key=broker.server_pub, timeout=T) as b:
        assert b.next_event(T) == sealpost.Drained(0)
        assert a.next_event(T) == sealpost.Drained(0)
        r = a.send_wait(bob.public, b"live", timeout=T)
        assert r.status == Status.ACCEPTED
        m = b.next_event(T)
        assert m == sealpost.Message(alice.public, b"live", r.seq)
        r = a.send_wait(bob.public, b"now or never", timeout=T, online_only=True)
        assert r.status == Status.DELIVERED and r.seq == 0
        m = b.next_event(T)
        assert isinstance(m, sealpost.Message) and m.data == b"now or never" and m.seq == 0
        # Online-only to a device that is not connected: not kept.
        r = a.send_wait(Key.generate().public, b"x", timeout=T, online_only=True)
        assert r.status == Status.ERR_OFFLINE and not r.ok
        # A ping and its pong.
        pid = a.ping()
        assert a.next_event(T) == sealpost.Pong(pid)


def test_manual_ack(broker):
    alice, bob = Key.generate(), Key.generate()
    with Client.connect(broker.addr, alice, server_key=broker.server_pub, timeout=T) as a:
        r1 = a.send_wait(bob.public, b"first", timeout=T)
        r2 = a.send_wait(bob.public, b"second", timeout=T)
    with Client.connect(broker.addr, bob, server_key=broker.server_pub, timeout=T,
                        manual_ack=True) as b:
        assert [m.seq for m in b.messages(timeout=1.0)] == [r1.seq, r2.seq]
        b.ack(r1.seq)                       # only the first
        b.sync(T)
    with Client.connect(broker.addr, bob, server_key=broker.server_pub, timeout=T,
                        manual_ack=True) as b:
        m = b.next_event(T)
        assert m.data == b"second" and m.seq == r2.seq
        assert b.next_event(T) == sealpost.Drained(1)
        b.ack(m.seq)
        b.sync(T)
    with Client.connect(broker.addr, bob, server_key=broker.server_pub, timeout=T) as b:
        assert b.next_event(T) == sealpost.Drained(0)


def test_events_goaway_and_closed(broker):
    """Without reconnects, a GoAway is followed by Closed, and that is final."""
    k = Key.generate()
    c = Client.connect(broker.addr, k, server_key=broker.server_pub, timeout=T, reconnect=False)
    assert c.next_event(T) == sealpost.Drained(0)
    # The same key again: the first connection is taken over.
    c2 = Client.connect(broker.addr, k, server_key=broker.server_pub, timeout=T, reconnect=False)
    evs = list(c.events(timeout=T))
    assert evs[0] == sealpost.GoAway(Status.GOAWAY_TAKEOVER)
    assert isinstance(evs[-1], sealpost.Closed) and evs[-1].error == 0
    with pytest.raises(SealpostError) as e:
        c.send(k.public, b"x")
    assert e.value.errno == errno.ENOTCONN
    c.close()
    c.close()                               # twice is harmless
    with pytest.raises(ValueError):
        c.send(k.public, b"x")
    # A broker stopping says so, then the connection closes.
    assert c2.next_event(T) == sealpost.Drained(0)
    broker.stop()
    evs = list(c2.events(timeout=T))
    assert evs[0] == sealpost.GoAway(Status.GOAWAY_SHUTDOWN)
    assert isinstance(evs[-1], sealpost.Closed)
    c2.close()
    broker.start(broker.port)


def test_errors(broker):
    k = Key.generate()
    with Client.connect(broker.addr, k, server_key=broker.server_pub, timeout=T) as c:
        with pytest.raises(SealpostError) as e:
            c.send(k.public, b"x" * (c.max_message + 1))
        assert e.value.errno == errno.EMSGSIZE
        assert "too large" in str(e.value)
        with pytest.raises(ValueError):
            c.send(b"short", b"x")
        with pytest.raises(ValueError):
            c.send("zz" * 32, b"x")
        with pytest.raises(SealpostError) as e:
            c.send(bytes(32), b"x")          # a low-order point, refused locally
        assert e.value.errno == errno.EINVAL
        with pytest.raises(SealpostError) as e:
            c.wait_result(12345, timeout=0.1)
        assert e.value.errno == errno.ETIMEDOUT
        # Events that arrived while waiting were kept, not lost.
        assert c.next_event(T) == sealpost.Drained(0)


def test_event_loop_and_threads(broker):
    """fileno()/poll_events()/step() in a select loop, while another thread sends."""
    alice, bob = Key.generate(), Key.generate()
    n = 200
    b = Client.connect(broker.addr, bob, server_key=broker.server_pub, timeout=T)
    a = Client.connect(broker.addr, alice, server_key=broker.server_pub, timeout=T)

    def sender():
        ids = [a.send(bob.public, b"%d" % i) for i in range(n)]
        assert all(a.wait_result(i, T).ok for i in ids)

    th = threading.Thread(target=sender)
    th.start()
    got = []
    while len(got) < n:
        want = b.poll_events()
        r, w, _ = select.select([b], [b] if want & select.POLLOUT else [], [], T)
        assert r or w, "no progress"
        b.step()
        while True:
            ev = b.next_event(0)
            if ev is None:
                break
            if isinstance(ev, sealpost.Message):
                got.append(int(ev.data))
    th.join(T)
    assert got == list(range(n))
    b.sync(T)
    a.close()
    b.close()


def test_seal_without_connection():
    alice, bob = Key.generate(), Key.generate()
    env = sealpost.seal(alice, bob.public, b"offline")
    assert len(env) == len(b"offline") + 97
    assert sealpost.open_envelope(bob, env) == (alice.public, b"offline")
    with pytest.raises(SealpostError) as e:
        sealpost.open_envelope(alice, env)
    assert e.value.errno == errno.EBADMSG


def test_send_raw(broker):
    alice, bob = Key.generate(), Key.generate()
    env = sealpost.seal(alice, bob.public, b"pre-sealed")
    with Client.connect(broker.addr, alice, server_key=broker.server_pub, timeout=T) as a:
        cid = a.send_raw(bob.public, env)
        assert a.wait_result(cid, T).status == Status.ACCEPTED
    with Client.connect(broker.addr, bob, server_key=broker.server_pub, timeout=T) as b:
        m = b.next_event(T)
        assert m.data == b"pre-sealed" and m.sender == alice.public


def test_reconnect_and_resend(broker):
    """Reconnects by default: a broker killed with SIGKILL and restarted on
    the same address; a send made while it is down waits (pending), is sent
    after the reconnect and gets exactly one Result; the receiver sees
    Disconnected, Reconnected and the message."""
    alice, bob = Key.generate(), Key.generate()
    fast = dict(reconnect_min=0.05, reconnect_max=0.5)
    a = Client.connect(broker.addr, alice, server_key=broker.server_pub, timeout=T, **fast)
    b = Client.connect(broker.addr, bob, server_key=broker.server_pub, timeout=T, **fast)
    assert a.next_event(T) == sealpost.Drained(0)
    assert b.next_event(T) == sealpost.Drained(0)
    assert a.connected and b.connected
    broker.kill()
    ev = a.next_event(T)
    assert isinstance(ev, sealpost.Disconnected) and ev.error and ev.message
    assert not a.connected
    cid = a.send(bob.public, b"sent while down")
    assert [p.client_id for p in a.pending()] == [cid]
    assert a.pending()[0].to == bob.public and not a.pending()[0].online_only
    broker.start(broker.port)
    evs = []
    while not any(isinstance(e, sealpost.Result) for e in evs):
        ev = a.next_event(T)
        assert ev is not None, evs
        evs.append(ev)
    assert sealpost.Reconnected() in evs
    results = [e for e in evs if isinstance(e, sealpost.Result)]
    assert results == [sealpost.Result(cid, Status.ACCEPTED, results[0].seq)]
    assert a.pending() == []
    got = []
    # The message comes from the backlog or live, before or after Drained.
    while not (any(isinstance(e, sealpost.Message) for e in got) and
               any(isinstance(e, sealpost.Drained) for e in got)):
        ev = b.next_event(T)
        assert ev is not None, got
        got.append(ev)
    assert isinstance(got[0], sealpost.Disconnected)
    assert got[1] == sealpost.Reconnected()
    assert [e for e in got if isinstance(e, sealpost.Message)] == [
        sealpost.Message(alice.public, b"sent while down", results[0].seq)]
    # A graceful stop: the reason is the broker's GoAway.
    broker.stop()
    evs = [b.next_event(T), b.next_event(T)]
    assert evs[0] == sealpost.GoAway(Status.GOAWAY_SHUTDOWN)
    assert evs[1] == sealpost.Disconnected(0, Status.GOAWAY_SHUTDOWN)
    a.close()
    b.close()
    broker.start(broker.port)


def test_start_nonblocking(broker):
    """Client.start returns at once; a select loop drives connect and handshake."""
    k = Key.generate()
    c = Client.start(broker.addr, k, server_key=broker.server_pub)
    evs = []
    while sealpost.Drained(0) not in evs:
        want = c.poll_events()
        fd = c.fileno()
        t = c.timeout()
        wait = T if t is None else min(t, T)
        rl = [c] if fd >= 0 and want & select.POLLIN else []
        wl = [c] if fd >= 0 and want & select.POLLOUT else []
        select.select(rl, wl, [], wait)
        c.step()
        while True:
            ev = c.next_event(0)
            if ev is None:
                break
            evs.append(ev)
        assert len(evs) < 10, evs
    assert evs[0] == sealpost.Connected()
    assert c.connected and c.server_key == broker.server_pub
    assert c.idle_timeout > 0
    c.close()
    with pytest.raises(TypeError):
        Client.start(broker.addr, k, bogus=1)


def test_log_callback(broker):
    lines = []
    sealpost.set_log_callback(lambda level, msg: lines.append((level, msg)))
    try:
        k = Key.generate()
        with Client.connect(broker.addr, k, server_key=broker.server_pub, timeout=T) as c:
            c.next_event(T)
    finally:
        sealpost.set_log_callback(None)
    assert lines, "the library said nothing"
    assert all(0 <= lvl <= 3 and isinstance(m, str) and m for lvl, m in lines)
    # Never a key.
    assert not any(k.public_hex[:16] in m or broker.server_pub_hex[:16] in m for _, m in lines)
    n = len(lines)
    with Client.connect(broker.addr, Key.generate(), server_key=broker.server_pub, timeout=T):
        pass
    assert len(lines) == n          # off again


def test_opaque_bodies(broker):
    """An app's own end-to-end layer: raw bodies in, Opaque events out."""
    alice, bob = Key.generate(), Key.generate()
    body = os.urandom(300)
    with Client.connect(broker.addr, alice, server_key=broker.server_pub, timeout=T) as a:
        assert a.wait_result(a.send_raw(bob.public, body), T).status == Status.ACCEPTED
        assert a.wait_result(a.send(bob.public, b"a seal"), T).status == Status.ACCEPTED
    with Client.connect(broker.addr, bob, server_key=broker.server_pub, timeout=T,
                        opaque=True) as b:
        first, second = b.next_event(T), b.next_event(T)
        assert isinstance(first, sealpost.Opaque) and first.data == body and first.seq > 0
        assert second == sealpost.Message(alice.public, b"a seal", second.seq)


def test_aesgcm(broker):
    """aesgcm=True negotiates AES-256-GCM where the CPU has AES-NI (the
    broker offers it by default); a default client gets ChaChaPoly; they
    exchange a message."""
    a, b = Key.generate(), Key.generate()
    want = "aesgcm" if _aes_ni() else "chachapoly"
    with Client.connect(broker.addr, a, server_key=broker.server_pub, timeout=T,
                        aesgcm=True) as ca, \
            Client.connect(broker.addr, b, server_key=broker.server_pub, timeout=T) as cb:
        assert ca.cipher == want
        assert cb.cipher == "chachapoly"
        assert ca.send_wait(b.public, b"over aes", timeout=T).status.ok
        for ev in cb.events(timeout=T):
            if isinstance(ev, sealpost.Message):
                assert (ev.sender, ev.data) == (a.public, b"over aes")
                break
        else:
            pytest.fail("no delivery")


def _aes_ni():
    with open("/proc/cpuinfo") as f:
        flags = next((l for l in f if l.startswith("flags")), "").split()
    return "aes" in flags and "pclmulqdq" in flags


def test_padding_default(broker):
    """Sealed messages are padded to their bucket unless padding=False (the
    receiver with opaque="all" sees the envelope's real length)."""
    a, b = Key.generate(), Key.generate()
    with Client.connect(broker.addr, b, server_key=broker.server_pub, timeout=T,
                        opaque="all") as rb:
        for padding, size in ((True, 256 + 97), (False, 5 + 97)):
            with Client.connect(broker.addr, a, server_key=broker.server_pub, timeout=T,
                                padding=padding) as ca:
                assert ca.send_wait(b.public, b"hello", timeout=T).status.ok
            for ev in rb.events(timeout=T):
                if isinstance(ev, sealpost.Opaque):
                    assert len(ev.data) == size
                    assert sealpost.open_envelope(b, ev.data) == (a.public, b"hello")
                    break
            else:
                pytest.fail("no delivery")
