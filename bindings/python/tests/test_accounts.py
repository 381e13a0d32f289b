# SPDX-License-Identifier: Apache-2.0
"""Accounts, the transparency log and push registration through the Python
binding, against a real sealpostd: create an account, link a device with the
link request and its code, the linked device told (ListChanged), a sender
fetching the verified list and sealing to every device, the account store
and its log line, a rollback refused, the log audited, removal, and the push
refusals the broker names."""
import errno

import pytest

import sealpost
from sealpost import (Account, AccountStore, Client, DeviceList, Key, ListChanged, Message,
                      PushResult, SealpostError, Status)

T = 10.0


def _wait(c, kind):
    for ev in c.events(timeout=T):
        if isinstance(ev, kind):
            return ev
    pytest.fail("no %s event" % kind.__name__)


def test_send_account(broker):
    """One call: every device of the account and the sender's own other
    device, all or none; an account of the sender alone raises EFANOUTNONE."""
    acct, own = Account.generate(), Account.generate()
    kp, kl, ks, ks2 = Key.generate(), Key.generate(), Key.generate(), Key.generate()
    with Client.connect(broker.addr, kp, server_key=broker.server_pub, timeout=T) as phone, \
            Client.connect(broker.addr, kl, server_key=broker.server_pub, timeout=T) as laptop, \
            Client.connect(broker.addr, ks, server_key=broker.server_pub, timeout=T) as sender, \
            Client.connect(broker.addr, ks2, server_key=broker.server_pub, timeout=T) as other:
        l = DeviceList(acct.public, 1)
        l.add(kp.public, "phone", 1700000000)
        l.add(kl.public, "laptop", 1700000000)
        assert phone.publish(acct, l, T) == (Status.ACCEPTED, 1)
        o = DeviceList(own.public, 1)
        o.add(ks.public, "desk", 1700000000)
        o.add(ks2.public, "pocket", 1700000000)
        assert sender.publish(own, o, T) == (Status.ACCEPTED, 1)
        r = sender.send_account(acct.public.hex(), b"to you all", own_account=own.public,
                                timeout=T)
        assert r.ok and r.error == 0 and r.retries == 0
        assert r.status == Status.ACCEPTED and r.own_status == Status.ACCEPTED
        assert r.version == 1
        got = {k: (st, mine) for k, st, mine in r.devices}
        assert got == {kp.public: (Status.ACCEPTED, False), kl.public: (Status.ACCEPTED, False),
                       ks2.public: (Status.ACCEPTED, True)}
        for dev in (phone, laptop, other):
            m = _wait(dev, Message)
            assert m.data == b"to you all" and m.sender == ks.public
        alone = Account.generate()
        a1 = DeviceList(alone.public, 1)
        a1.add(ks.public, "desk", 1700000000)
        assert sender.publish(alone, a1, T)[0] == Status.ACCEPTED
        with pytest.raises(SealpostError) as e:
            sender.send_account(alone.public, b"x", timeout=T)
        assert e.value.errno == sealpost.EFANOUTNONE


def test_account_link_fanout_and_log(broker, tmp_path):
    acct = Account.generate()
    kp, kl, ks = Key.generate(), Key.generate(), Key.generate()
    store = AccountStore(tmp_path / "accounts")
    with Client.connect(broker.addr, kp, server_key=broker.server_pub, timeout=T) as phone, \
            Client.connect(broker.addr, kl, server_key=broker.server_pub, timeout=T) as laptop, \
            Client.connect(broker.addr, ks, server_key=broker.server_pub, timeout=T) as sender:
        # create: version 1 with the phone
        l1 = DeviceList(acct.public, 1)
        l1.add(kp.public, "phone", 1700000000)
        assert phone.publish(acct, l1, T) == (Status.ACCEPTED, 1)
        # link: the laptop's request, the phone checks the code and publishes v2
        req, code = sealpost.link_request(kl.public, "laptop")
        key, label, code2 = sealpost.parse_link_request(req)
        assert (key, label, code2) == (kl.public, "laptop", code)
        with pytest.raises(SealpostError) as e:
            sealpost.parse_link_request("not a request")
        assert e.value.errno == sealpost.ELINKFORMAT
        l2 = phone.fetch(acct.public, T)
        assert l2.version == 1 and l2.keys() == [kp.public]
        l2.add(key, label, 1700000001)
        l2.version = 2
        assert phone.publish(acct, l2, T) == (Status.ACCEPTED, 2)
        # the same version again is refused by the broker, as a Status
        assert phone.publish(acct, l2, T)[0] == Status.ERR_LIST_VERSION
        ch = _wait(laptop, ListChanged)
        assert ch.error == 0 and ch.version == 2 and ch.account == acct.public
        assert sorted(ch.list.keys()) == sorted([kp.public, kl.public])

        # a sender with a store: verified list, one envelope per device
        sender.set_account_store(store)
        got = sender.fetch(acct.public.hex(), T)
        assert got.version == 2
        assert store.get(acct.public).version == 2
        ids = sender.send_devices(got, b"hi both")
        assert len(ids) == 2
        for cid in ids:
            assert sender.wait_result(cid, T).status == Status.ACCEPTED
        for dev in (phone, laptop):
            m = _wait(dev, Message)
            assert m.data == b"hi both" and m.sender == ks.public

        # the log: key and head kept in the store; an audit of the whole log
        log_key, head = sender.log_sync(T)
        with open(broker.data_dir + "/log.pub") as f:
            assert bytes.fromhex(f.read().strip()) == log_key
        assert store.log() == (log_key, head)
        a = sender.log_audit(T)
        assert a.ok and a.error == 0 and a.size == 2 and a.accounts == 1
        assert a.bad_leaf is None and a.log_key == log_key

        # removal: the laptop is told to go away
        l3 = sender.fetch(acct.public, T)
        l3.remove(kl.public)
        l3.version = 3
        assert phone.publish(acct, l3, T) == (Status.ACCEPTED, 3)
        g = _wait(laptop, sealpost.GoAway)
        assert g.reason == Status.GOAWAY_REMOVED
        sender.set_account_store(None)
    store.close()
    # a reopened store refuses nothing it has and remembers the newest version
    with AccountStore(tmp_path / "accounts") as st2:
        assert st2.get(acct.public).version == 2
        assert st2.get(Key.generate().public) is None


def test_lists_refused(broker):
    acct, other = Account.generate(), Account.generate()
    k = Key.generate()
    l1 = DeviceList(acct.public, 1)
    l1.add(k.public, "only")
    with pytest.raises(SealpostError) as e:
        l1.add(k.public, "again")
    assert e.value.errno == errno.EEXIST
    with pytest.raises(SealpostError) as e:
        l1.add(Key.generate().public, "bad\nlabel")
    assert e.value.errno == errno.EINVAL
    # signed by another account's key: refused locally
    with pytest.raises(SealpostError) as e:
        l1.sign(other)
    assert e.value.errno == errno.EINVAL
    raw = l1.sign(acct)
    assert DeviceList.verify(raw).keys() == [k.public]
    bad = bytearray(raw)
    bad[-1] ^= 1
    with pytest.raises(SealpostError) as e:
        DeviceList.verify(bytes(bad))
    assert e.value.errno == sealpost.EBADLIST
    with Client.connect(broker.addr, k, server_key=broker.server_pub, timeout=T) as c:
        with pytest.raises(SealpostError) as e:
            c.fetch(acct.public, T)
        assert e.value.errno == sealpost.ENOLIST
        assert c.publish(acct, l1, T) == (Status.ACCEPTED, 1)
        # a device that is not on the list cannot publish for the account
        with Client.connect(broker.addr, Key.generate(), server_key=broker.server_pub,
                            timeout=T) as stranger:
            l1.version = 2
            assert stranger.publish(acct, l1, T)[0] == Status.ERR_LIST_NOT_MEMBER


def test_rollback_refused(broker, tmp_path):
    acct = Account.generate()
    k = Key.generate()
    path = tmp_path / "accounts"
    with AccountStore(path) as st, \
            Client.connect(broker.addr, k, server_key=broker.server_pub, timeout=T) as c:
        l1 = DeviceList(acct.public, 5)
        l1.add(k.public, "dev")
        assert c.publish(acct, l1, T) == (Status.ACCEPTED, 5)
        c.set_account_store(st)
        assert c.fetch(acct.public, T).version == 5
        c.set_account_store(None)
    # the app's store already kept a newer version (say, from another
    # broker): the broker's version 5 is a rollback
    l9 = DeviceList(acct.public, 9)
    l9.add(k.public, "dev")
    raw9 = l9.sign(acct)
    with AccountStore(path) as st:
        assert st.check(raw9).version == 9
        with pytest.raises(SealpostError) as e:
            st.check(l1.sign(acct))         # version 5 now: older than the kept 9
        assert e.value.errno == sealpost.EROLLBACK
        with Client.connect(broker.addr, k, server_key=broker.server_pub, timeout=T) as c:
            c.set_account_store(st)
            with pytest.raises(SealpostError) as e:
                c.fetch(acct.public, T)
            assert e.value.errno == sealpost.EROLLBACK
            c.set_account_store(None)
        assert st.get(acct.public).version == 9


def test_push_register_refusals(broker):
    k = Key.generate()
    with Client.connect(broker.addr, k, server_key=broker.server_pub, timeout=T) as c:
        # this broker sends no pushes (no VAPID subject): refused, named
        pid = c.push_register("https://push.example/x", b"\x04" + bytes(64), bytes(16))
        r = _wait(c, PushResult)
        assert r.id == pid
        assert r.status in (Status.ERR_PUSH_DISABLED, Status.ERR_PUSH_BAD_KEY)
        pid = c.push_remove()
        assert _wait(c, PushResult).id == pid
