# SPDX-License-Identifier: Apache-2.0
"""Sealed sender and enrolment tokens through the Python binding, against a
real sealpostd: a recipient's access key, an anonymous send that opens with
the true sender inside the seal, a wrong and a rotated key refused with
their own codes; a broker with --registration=token refusing a device
without a token, taking a minted one once, refusing it from another device,
and letting the enrolled device back without one."""
import os
import subprocess

import pytest

import sealpost
from sealpost import Client, Key, Message, SealpostError, Status

T = 10.0


def _message(c):
    for ev in c.events(timeout=T):
        if isinstance(ev, Message):
            return ev
    pytest.fail("no message")


def test_anonymous_send(broker):
    rk, sk = Key.generate(), Key.generate()
    old, new = sealpost.access_key_generate(), os.urandom(16)
    assert len(old) == 32
    with Client.connect(broker.addr, rk, server_key=broker.server_pub, timeout=T) as r, \
            Client.connect(broker.addr, sk, server_key=broker.server_pub, timeout=T) as s:
        r.set_access(old)
        res = s.send_anonymous(rk.public, b"from nobody the broker knows", access_key=old)
        assert res.status.ok
        m = _message(r)
        assert m.data == b"from nobody the broker knows"
        assert m.sender == sk.public            # proven by the seal, not by the broker
        with pytest.raises(SealpostError) as e:
            s.send_anonymous(rk.public, b"x", access_key=os.urandom(32))
        assert e.value.errno == sealpost.EACCESSWRONG
        with pytest.raises(SealpostError) as e:
            s.send_anonymous(rk.public, b"x")   # no key, and not accepting anyone
        assert e.value.errno == sealpost.EACCESSMISSING
        r.set_access(new)                       # rotate: the old key is refused by name
        with pytest.raises(SealpostError) as e:
            s.send_anonymous(rk.public, b"x", access_key=old)
        assert e.value.errno == sealpost.EACCESSROTATED
        s.set_contact_access(rk.public, new)    # the contact's key, used by default
        assert s.send_anonymous(rk.public, b"with the contact's key").status.ok
        assert _message(r).data == b"with the contact's key"
        r.set_access(None, accept_anyone=True)
        assert s.send_anonymous(rk.public, b"anyone", access_key=b"").status.ok
        with pytest.raises(SealpostError) as e:
            r.set_access(b"short")
        assert e.value.errno in (sealpost.EACCESSBADKEY, 22)


def _mint(broker):
    out = subprocess.run([broker.bin, "mint-token", "--data-dir", broker.data_dir, "--count",
                          "1"], check=True, capture_output=True, text=True).stdout
    tok = out.strip().splitlines()[-1].strip()
    assert len(tok) == 76
    return tok


def _refused(b, key, token, status, err):
    """The connect completes the handshake, then the broker says GoAway
    (status) and the client closes for good with err (or the connect
    itself raises err)."""
    try:
        c = Client.connect(b.addr, key, server_key=b.server_pub, timeout=T, enrol_token=token)
    except SealpostError as e:
        assert e.errno == err
        return
    with c:
        goaway = None
        for ev in c.events(timeout=T):
            assert not isinstance(ev, (sealpost.Drained, sealpost.Reconnected))
            if isinstance(ev, sealpost.GoAway):
                goaway = ev.reason
            if isinstance(ev, sealpost.Closed):
                assert ev.error == err
                break
        else:
            pytest.fail("not closed")
        assert goaway == status


def test_enrolment_token(make_broker):
    b = make_broker("enrol", extra=["--registration", "token"])
    dev, other = Key.generate(), Key.generate()
    _refused(b, dev, None, Status.GOAWAY_ENROL_REQUIRED, sealpost.EENROLREQUIRED)
    tok = _mint(b)
    with Client.connect(b.addr, dev, server_key=b.server_pub, timeout=T, enrol_token=tok) as c:
        assert c.send_wait(dev.public, b"to myself", timeout=T).status.ok
    _refused(b, other, tok, Status.GOAWAY_ENROL_TOKEN_USED, sealpost.EENROLUSED)
    _refused(b, other, "A" * 76, Status.GOAWAY_ENROL_BAD_TOKEN, sealpost.EENROLTOKEN)
    # registered now: no token needed, and its mail is there
    with Client.connect(b.addr, dev, server_key=b.server_pub, timeout=T) as c:
        assert _message(c).data == b"to myself"
