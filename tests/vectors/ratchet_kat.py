#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Double Ratchet known answers, from the specification text alone.

Signal's "The Double Ratchet Algorithm" (rev. 1, 2016-11-20): section 3.5's
pseudocode (RatchetInitAlice, RatchetInitBob, RatchetEncrypt,
RatchetDecrypt, TrySkippedMessageKeys, SkipMessageKeys, DHRatchet) and 5.2's
recommended functions, with the choices of docs/PROTOCOL.md 7.3, computed
with Python's `cryptography` package (X25519, HKDF, HMAC, ChaCha20Poly1305),
independent of sealpost's C code (lib/crypto/sp_ratchet.c):

  KDF_RK(rk, dh_out) = HKDF-SHA-256(salt = rk, IKM = dh_out,
                       info = "sealpost/ratchet/1/rk", L = 64): rk' || ck
  KDF_CK(ck)         = ck' = HMAC-SHA-256(ck, 0x02), mk = HMAC-SHA-256(ck, 0x01)
  ENCRYPT(mk, pt, ad): key || nonce = HKDF-SHA-256(salt = 0*32, IKM = mk,
                       info = "sealpost/ratchet/1/msg", L = 44);
                       ChaCha20-Poly1305(key, nonce, pt, ad)
  HEADER             = 0x04 || tag || dh_pub || u32 pn || u32 n  (big-endian)
  tag                = HKDF-SHA-256(salt = 0*32, IKM = SK,
                       info = "sealpost/ratchet/1/tag", L = 32): Alice's
                       envelopes carry bytes 0..15, Bob's 16..31
  CONCAT(AD, header) = AD || header
  RK0 (X3DH's SK in) = HKDF-SHA-256(salt = 0*32, IKM = SK,
                       info = "sealpost/ratchet/1/x3dh", L = 32)
  payload            = message || 0x80 || 0x00... to its bucket (PROTOCOL.md
                       7.1's buckets) or, unpadded, message || 0x80

Integration with X3DH (PROTOCOL.md 7.3): Alice is RatchetInitAlice with her
first contact's EK_A as DHs and Bob's SPK_B as DHr; Bob is RatchetInitBob
with SPK_B as DHs, then the DH ratchet step a header with dh = EK_A causes.

Usage: ratchet_kat.py            print the vectors (tests/vectors/ratchet.txt)
       ratchet_kat.py --check F  exit 1 unless F holds exactly these vectors
Lines (hex; "-" for empty):
  root0  sk rk0
  kdf_rk rk dh_out rk' ck
  kdf_ck ck ck' mk
  tags   sk tag_alice tag_bob
  msgkey mk key nonce
  session sk ad ek_a spk_b bob_fresh     (both sides' inputs)
  send   A|B pad(0|1) message body       (the nth send line is message n)
  recv   A|B n fresh result              (fresh: the new DHs if this step
                                          needs one; result: the message,
                                          or "refused")
"""
import copy
import hashlib
import hmac
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAX_SKIP = 256
MAX_PAYLOAD = 64000 - 73


def seed(label):
    return hashlib.sha256(b"sealpost ratchet vector " + label).digest()


def priv(b):
    return x25519.X25519PrivateKey.from_private_bytes(b)


def pub(k):
    return k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw(k):
    return k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                           serialization.NoEncryption())


def DH(pair, pub_bytes):
    return pair.exchange(x25519.X25519PublicKey.from_public_bytes(pub_bytes))


def hkdf(salt, ikm, info, n):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)


def KDF_RK(rk, dh_out):
    out = hkdf(rk, dh_out, b"sealpost/ratchet/1/rk", 64)
    return out[:32], out[32:]


def KDF_CK(ck):
    return (hmac.new(ck, b"\x02", hashlib.sha256).digest(),
            hmac.new(ck, b"\x01", hashlib.sha256).digest())


def root0(sk):
    return hkdf(b"\x00" * 32, sk, b"sealpost/ratchet/1/x3dh", 32)


def msgkey(mk):
    out = hkdf(b"\x00" * 32, mk, b"sealpost/ratchet/1/msg", 44)
    return out[:32], out[32:]


def pad(msg, padded):
    if not padded:
        return msg + b"\x80"
    bucket = 256
    while bucket < len(msg) + 1 and bucket < 32768:
        bucket *= 2
    if bucket < len(msg) + 1:
        bucket = MAX_PAYLOAD
    return msg + b"\x80" + b"\x00" * (bucket - len(msg) - 1)


def unpad(p):
    s = p.rstrip(b"\x00")
    if not s or s[-1] != 0x80:
        raise ValueError("padding")
    return s[:-1]


def tags(sk):
    t = hkdf(b"\x00" * 32, sk, b"sealpost/ratchet/1/tag", 32)
    return t[:16], t[16:]


def HEADER(s, dh_pair, pn, n):
    return bytes([4]) + s.tag + pub(dh_pair) + pn.to_bytes(4, "big") + n.to_bytes(4, "big")


def ENCRYPT(mk, plaintext, ad):
    key, nonce = msgkey(mk)
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, ad)


def DECRYPT(mk, ciphertext, ad):
    key, nonce = msgkey(mk)
    return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, ad)


class State:
    pass


def RatchetInitAlice(sk, ad, ek_a, bob_dh_public_key):
    s = State()
    s.AD = ad
    s.tag, s.their_tag = tags(sk)
    s.DHs = ek_a
    s.DHr = bob_dh_public_key
    s.RK, s.CKs = KDF_RK(root0(sk), DH(s.DHs, s.DHr))
    s.CKr = None
    s.Ns = s.Nr = s.PN = 0
    s.MKSKIPPED = {}
    return s


def RatchetInitBob(sk, ad, bob_dh_key_pair, ek_a_pub, fresh):
    s = State()
    s.AD = ad
    s.their_tag, s.tag = tags(sk)
    s.DHs = bob_dh_key_pair
    s.DHr = None
    s.RK = root0(sk)
    s.CKs = s.CKr = None
    s.Ns = s.Nr = s.PN = 0
    s.MKSKIPPED = {}
    # what Alice's first message, header.dh = EK_A, causes
    DHRatchet(s, (ek_a_pub, 0, 0), fresh)
    return s


def RatchetEncrypt(s, plaintext, padded):
    s.CKs, mk = KDF_CK(s.CKs)
    header = HEADER(s, s.DHs, s.PN, s.Ns)
    s.Ns += 1
    return header + ENCRYPT(mk, pad(plaintext, padded), s.AD + header)


def parse(s, body):
    if body[0] != 4 or body[1:17] != s.their_tag:
        raise ValueError("not this session's")
    return body[17:49], int.from_bytes(body[49:53], "big"), int.from_bytes(body[53:57], "big")


def RatchetDecrypt(s, body, fresh):
    header, ciphertext = body[:57], body[57:]
    dh, pn, n = parse(s, body)
    plaintext = TrySkippedMessageKeys(s, (dh, pn, n), ciphertext, s.AD + header)
    if plaintext is not None:
        return unpad(plaintext)
    if dh != s.DHr:
        SkipMessageKeys(s, pn)
        DHRatchet(s, (dh, pn, n), fresh)
    SkipMessageKeys(s, n)
    s.CKr, mk = KDF_CK(s.CKr)
    s.Nr += 1
    return unpad(DECRYPT(mk, ciphertext, s.AD + header))


def TrySkippedMessageKeys(s, header, ciphertext, ad):
    dh, _, n = header
    if (dh, n) in s.MKSKIPPED:
        mk = s.MKSKIPPED[(dh, n)]
        pt = DECRYPT(mk, ciphertext, ad)
        del s.MKSKIPPED[(dh, n)]
        return pt
    return None


def SkipMessageKeys(s, until):
    if s.Nr + MAX_SKIP < until:
        raise ValueError("MAX_SKIP")
    if s.CKr is not None:
        while s.Nr < until:
            s.CKr, mk = KDF_CK(s.CKr)
            s.MKSKIPPED[(s.DHr, s.Nr)] = mk
            s.Nr += 1


def DHRatchet(s, header, fresh):
    dh, _, _ = header
    s.PN = s.Ns
    s.Ns = 0
    s.Nr = 0
    s.DHr = dh
    s.RK, s.CKr = KDF_RK(s.RK, DH(s.DHs, s.DHr))
    s.DHs = priv(fresh)  # GENERATE_DH(), fixed for the vector
    s.RK, s.CKs = KDF_RK(s.RK, DH(s.DHs, s.DHr))


def kdf_lines():
    out = []
    for i in range(3):
        sk = seed(b"sk %d" % i)
        out.append("root0 %s %s" % (sk.hex(), root0(sk).hex()))
    for i in range(3):
        rk, d = seed(b"rk %d" % i), seed(b"dh %d" % i)
        a, b = KDF_RK(rk, d)
        out.append("kdf_rk %s %s %s %s" % (rk.hex(), d.hex(), a.hex(), b.hex()))
    for i in range(3):
        ck = seed(b"ck %d" % i)
        a, b = KDF_CK(ck)
        out.append("kdf_ck %s %s %s" % (ck.hex(), a.hex(), b.hex()))
    for i in range(2):
        sk = seed(b"tag sk %d" % i)
        a, b = tags(sk)
        out.append("tags %s %s %s" % (sk.hex(), a.hex(), b.hex()))
    for i in range(2):
        mk = seed(b"mk %d" % i)
        k, nonce = msgkey(mk)
        out.append("msgkey %s %s %s" % (mk.hex(), k.hex(), nonce.hex()))
    return out


def transcript():
    sk = seed(b"session sk")
    ika, ikb = priv(seed(b"ika")), priv(seed(b"ikb"))
    ad = pub(ika) + pub(ikb)
    ek_a, spk_b = priv(seed(b"ek_a")), priv(seed(b"spk_b"))
    counter = [0]

    def fresh():
        counter[0] += 1
        return seed(b"fresh %d" % counter[0])

    bob_fresh = fresh()
    out = ["session %s %s %s %s %s" % (sk.hex(), ad.hex(), raw(ek_a).hex(), raw(spk_b).hex(),
                                       bob_fresh.hex())]
    side = {"A": RatchetInitAlice(sk, ad, ek_a, pub(spk_b)),
            "B": RatchetInitBob(sk, ad, spk_b, pub(ek_a), bob_fresh)}
    bodies = []

    def send(who, msg, padded=True):
        body = RatchetEncrypt(side[who], msg, padded)
        out.append("send %s %d %s %s" % (who, 1 if padded else 0, msg.hex() or "-", body.hex()))
        bodies.append(body)

    def recv(who, n):
        f = fresh()
        # the spec: on an exception the message is discarded and the
        # changes to the state with it; so work on a copy
        s = copy.copy(side[who])
        s.MKSKIPPED = dict(side[who].MKSKIPPED)
        try:
            got = RatchetDecrypt(s, bodies[n], f).hex() or "-"
            side[who] = s
        except (InvalidTag, ValueError):
            got = "refused"
        out.append("recv %s %d %s %s" % (who, n, f.hex(), got))

    send("A", b"hello bob, ratchet 0")       # 0
    send("A", b"a1")                         # 1
    send("A", b"a2, unpadded", False)        # 2
    recv("B", 2)                             # 0 and 1 skipped
    recv("B", 0)                             # from the skipped keys
    send("B", b"hello alice")                # 3: Bob's first chain
    recv("A", 3)                             # Alice's DH ratchet step
    send("A", b"a3 after the step")          # 4: pn = 3
    recv("B", 4)                             # Bob's step; 1 stays skipped
    recv("B", 1)                             # the old chain's skipped key
    recv("B", 1)                             # again: its key is gone
    send("B", b"b1")                         # 5
    send("B", b"")                           # 6: empty
    recv("A", 6)
    recv("A", 5)
    recv("A", 5)                             # a replay in the current chain
    send("A", bytes(range(256)) * 3)         # 7: the 1024 bucket
    recv("B", 7)
    recv("A", 7)                             # her own: not her receiving tag
    return out


def vectors():
    return "".join(line + "\n" for line in kdf_lines() + transcript())


if __name__ == "__main__":
    text = vectors()
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        with open(sys.argv[2]) as f:
            if f.read() != text:
                sys.stderr.write("ratchet vectors differ from " + sys.argv[2] + "\n")
                sys.exit(1)
        sys.exit(0)
    sys.stdout.write(text)
