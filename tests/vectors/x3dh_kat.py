#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""X3DH known answers, from the specification text alone.

Signal's "The X3DH Key Agreement Protocol" (rev. 1, 2016-11-04), sections
2.2 (DH, KDF) and 3.3 (DH1..DH4, SK), with curve X25519, hash SHA-256 and
info "sealpost/x3dh/1", computed with Python's `cryptography` package
(Debian python3-cryptography: its X25519 and its HKDF), independent of
sealpost's C code (lib/crypto/sp_x3dh.c):

  DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)   DH3 = DH(EK_A, SPK_B)
  DH4 = DH(EK_A, OPK_B)   (only with a one-time prekey)
  SK  = HKDF-SHA-256(IKM = 0xFF * 32 || DH1 || DH2 || DH3 [|| DH4],
                     salt = 0x00 * 32, info = "sealpost/x3dh/1", L = 32)

The first-contact envelope built on it (docs/PROTOCOL.md 7.2) as a fixed
transcript, from that section's text: the last lines, "envelope ...", give
the secrets, the message and the whole body.

Usage: x3dh_kat.py            print the vectors (tests/vectors/x3dh.txt)
       x3dh_kat.py --check F  exit 1 unless F holds exactly these vectors
Each line: ik_a ek_a ik_b spk_b opk_b (secrets, "-" = no one-time prekey)
           dh1 dh2 dh3 dh4 ("-") sk   (hex)
"""
import hashlib
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INFO = b"sealpost/x3dh/1"


def priv(b):
    return x25519.X25519PrivateKey.from_private_bytes(b)


def pub(k):
    return k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def dh(a, b_pub):
    return a.exchange(x25519.X25519PublicKey.from_public_bytes(b_pub))


def kdf(km):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"\x00" * 32, info=INFO).derive(
        b"\xff" * 32 + km)


def seed(label):
    return hashlib.sha256(b"sealpost x3dh vector " + label).digest()


def vector(n, with_opk):
    ika, eka, ikb, spkb = (priv(seed(b"%d %s" % (n, w))) for w in (b"ika", b"eka", b"ikb", b"spkb"))
    opkb = priv(seed(b"%d opkb" % n)) if with_opk else None
    # Alice's side: her secrets, Bob's public keys
    dh1, dh2, dh3 = dh(ika, pub(spkb)), dh(eka, pub(ikb)), dh(eka, pub(spkb))
    dh4 = dh(eka, pub(opkb)) if opkb else b""
    sk = kdf(dh1 + dh2 + dh3 + dh4)
    # Bob's side gets the same (the spec's section 3.4)
    bob = kdf(dh(spkb, pub(ika)) + dh(ikb, pub(eka)) + dh(spkb, pub(eka)) +
              (dh(opkb, pub(eka)) if opkb else b""))
    assert bob == sk
    raw = lambda k: k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption()).hex()
    return " ".join([raw(ika), raw(eka), raw(ikb), raw(spkb), raw(opkb) if opkb else "-",
                     dh1.hex(), dh2.hex(), dh3.hex(), dh4.hex() or "-", sk.hex()])


def pad(msg, max_payload):
    # ISO/IEC 7816-4 to the smallest bucket 256, 512, ..., 32768 >= len + 1
    bucket = 256
    while bucket < len(msg) + 1 and bucket < 32768:
        bucket *= 2
    if bucket < len(msg) + 1:
        bucket = max_payload
    return msg + b"\x80" + b"\x00" * (bucket - len(msg) - 1)


def envelope(n, with_opk, msg):
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    ika, eka, ikb, spkb = (priv(seed(b"env %d %s" % (n, w))) for w in (b"ika", b"eka", b"ikb", b"spkb"))
    opkb = priv(seed(b"env %d opkb" % n)) if with_opk else None
    spk_id, opk_id = 7 + n, (1000 + n) if with_opk else 0
    header = (bytes([3]) + pub(eka) + spk_id.to_bytes(4, "big") + bytes([1 if with_opk else 0]) +
              opk_id.to_bytes(4, "big"))
    k_s = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"\x00" * 32,
               info=b"sealpost/x3dh/1/sender").derive(b"\xff" * 32 + dh(eka, pub(ikb)))
    enc_s = ChaCha20Poly1305(k_s).encrypt(b"\x00" * 12, pub(ika), header + pub(ikb))
    km = dh(ika, pub(spkb)) + dh(eka, pub(ikb)) + dh(eka, pub(spkb)) + (dh(eka, pub(opkb)) if opkb else b"")
    sk = kdf(km)
    ct = ChaCha20Poly1305(sk).encrypt(b"\x00" * 12, pad(msg, 64000 - 106),
                                      pub(ika) + pub(ikb) + header + enc_s)
    raw = lambda k: k.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption()).hex()
    return " ".join(["envelope", raw(ika), raw(eka), raw(ikb), raw(spkb), raw(opkb) if opkb else "-",
                     str(spk_id), str(opk_id), msg.hex() or "-", (header + enc_s + ct).hex()])


def vectors():
    return ("".join(vector(n, n % 2 == 0) + "\n" for n in range(4)) +
            envelope(0, True, b"first contact") + "\n" + envelope(1, False, b"") + "\n" +
            envelope(2, True, bytes(range(256)) * 2) + "\n")


if __name__ == "__main__":
    text = vectors()
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        with open(sys.argv[2]) as f:
            if f.read() != text:
                sys.stderr.write("x3dh vectors differ from " + sys.argv[2] + "\n")
                sys.exit(1)
        sys.exit(0)
    sys.stdout.write(text)
