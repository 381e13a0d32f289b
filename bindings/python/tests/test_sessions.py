# SPDX-License-Identifier: Apache-2.0
"""Prekeys and Double Ratchet sessions through the Python binding, against a
real sealpostd: Bob uploads prekeys (his store encrypted under his storage
key), Alice fetches his bundle checked against the account's list and sends
a first contact that starts a session; the reply and what follows go through
it; the stores reopen only under their keys; a forged bundle's device (one
not on the list) is refused."""
import os

import pytest

import sealpost
from sealpost import (Account, BadEnvelope, Client, DeviceList, Key, Message, Prekeys,
                      SealpostError, Sessions, Status)

T = 10.0


def _message(c):
    for ev in c.events(timeout=T):
        if isinstance(ev, (Message, BadEnvelope)):
            return ev
    pytest.fail("no delivery")


def test_first_contact_then_session(broker, tmp_path):
    acct = Account.generate()
    ka, kb, stranger = Key.generate(), Key.generate(), Key.generate()
    sa, sb = os.urandom(32), os.urandom(32)
    pk = Prekeys(tmp_path / "bob.prekeys", kb, storage_key=sb)
    ssa = Sessions(tmp_path / "alice.sessions", ka, sa)
    ssb = Sessions(tmp_path / "bob.sessions", kb, sb)
    with Client.connect(broker.addr, ka, server_key=broker.server_pub, timeout=T) as a, \
            Client.connect(broker.addr, kb, server_key=broker.server_pub, timeout=T) as b:
        l = DeviceList(acct.public, 1)
        l.add(ka.public, "alice", 1700000000)
        l.add(kb.public, "bob", 1700000000)
        assert b.publish(acct, l, T) == (Status.ACCEPTED, 1)
        b.set_prekeys(pk)
        b.set_sessions(ssb)
        a.set_sessions(ssa)
        assert b.prekeys_upload(pk, 2, T) == 2
        assert pk.info()["onetime"] == 2
        bundle = a.prekey_bundle(acct.public, kb.public, T)
        assert bundle.device == kb.public and bundle.has_onetime
        assert a.wait_result(a.send_first(bundle, b"hello bob"), T).status == Status.ACCEPTED
        m = _message(b)
        assert isinstance(m, Message) and m.data == b"hello bob" and m.sender == ka.public
        assert ssa.has(kb.public) and ssb.has(ka.public) and len(ssb) == 1
        assert pk.info()["onetime"] == 1          # the one-time secret deleted at open
        for i in range(3):
            assert b.send_wait(ka.public, b"reply %d" % i, T).status == Status.ACCEPTED
            m = _message(a)
            assert isinstance(m, Message) and m.data == b"reply %d" % i
            assert a.send_wait(kb.public, b"more %d" % i, T).status == Status.ACCEPTED
            m = _message(b)
            assert isinstance(m, Message) and m.data == b"more %d" % i
        # a device that is not on the account's list: refused before any use
        with pytest.raises(SealpostError) as e:
            a.prekey_bundle(acct.public, stranger.public, T)
        assert e.value.errno in (sealpost.ENOTONLIST, sealpost.ENOPREKEY)
        b.set_sessions(None)
        b.set_prekeys(None)
        a.set_sessions(None)
    ssb.close()
    pk.close()
    with pytest.raises(SealpostError) as e:
        Sessions(tmp_path / "bob.sessions", kb, sa)
    assert e.value.errno == sealpost.ESTORAGEKEY
    with pytest.raises(SealpostError) as e:
        Prekeys(tmp_path / "bob.prekeys", kb)
    assert e.value.errno == sealpost.ESTORAGEKEY
    with Sessions(tmp_path / "bob.sessions", kb, sb) as again:
        assert again.has(ka.public)
    ssa.close()
