#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""XEdDSA known answers, written from the specification text alone.

An implementation independent of sealpost's C code (lib/crypto/sp_prekey.c):
Signal's "The XEdDSA and VXEdDSA Signature Schemes" (rev. 1), sections 2.3
(calculate_key_pair, hash_i), 3.3 (xeddsa_sign) and 3.4 (xeddsa_verify), over
the curve25519 / edwards25519 parameters of section 2.1 and RFC 8032 5.1
(point encoding, extended coordinates), in plain Python integers. Python's
`cryptography` package (Debian python3-cryptography) then checks each answer
from outside both: the Montgomery public key is its X25519 of the secret, and
the signature verifies as Ed25519 under the Edwards key.

Usage: xeddsa_kat.py            print the vectors (tests/vectors/xeddsa.txt)
       xeddsa_kat.py --check F  exit 1 unless F holds exactly these vectors
Each line: sk msg z  u edkey sig  (hex; msg may be empty: "-")
"""
import hashlib
import sys

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives import serialization

p = 2**255 - 19
q = 2**252 + 27742317777372353535851937790883648493
d = (-121665 * pow(121666, p - 2, p)) % p
By = 4 * pow(5, p - 2, p) % p


def recover_x(y, sign):
    x2 = (y * y - 1) * pow(d * y * y + 1, p - 2, p) % p
    x = pow(x2, (p + 3) // 8, p)
    if (x * x - x2) % p:
        x = x * pow(2, (p - 1) // 4, p) % p
    if x & 1 != sign:
        x = p - x
    return x


B = (recover_x(By, 0), By, 1, recover_x(By, 0) * By % p)


def add(P, Q):
    A = (P[1] - P[0]) * (Q[1] - Q[0]) % p
    Bv = (P[1] + P[0]) * (Q[1] + Q[0]) % p
    C = 2 * P[3] * Q[3] * d % p
    D = 2 * P[2] * Q[2] % p
    E, F, G, H = Bv - A, D - C, D + C, Bv + A
    return (E * F % p, G * H % p, F * G % p, E * H % p)


def mul(s, P):
    Q = (0, 1, 1, 0)
    while s:
        if s & 1:
            Q = add(Q, P)
        P = add(P, P)
        s >>= 1
    return Q


def encode(P):
    zi = pow(P[2], p - 2, p)
    x, y = P[0] * zi % p, P[1] * zi % p
    return (y | (x & 1) << 255).to_bytes(32, "little")


def sha512(b):
    return hashlib.sha512(b).digest()


def hash_i(i, x):
    # hash_i(X) = hash(2^b - 1 - i || X), the prefix b bits little-endian
    return sha512((2**256 - 1 - i).to_bytes(32, "little") + x)


def calculate_key_pair(k):
    E = mul(k, B)
    Eb = encode(E)
    A = bytearray(Eb)
    A[31] &= 0x7F                                  # A.s = 0
    a = (q - k % q) % q if Eb[31] >> 7 else k % q  # E.s == 1: a = -k
    return bytes(A), a


def xeddsa_sign(k, M, Z):
    A, a = calculate_key_pair(k)
    r = int.from_bytes(hash_i(1, a.to_bytes(32, "little") + M + Z), "little") % q
    R = encode(mul(r, B))
    h = int.from_bytes(sha512(R + A + M), "little") % q
    s = (r + h * a) % q
    return A, R + s.to_bytes(32, "little")


def convert_mont(u):
    umasked = u % 2**255 % p
    y = (umasked - 1) * pow(umasked + 1, p - 2, p) % p
    return y.to_bytes(32, "little")  # sign bit 0


def clamp(sk):
    k = bytearray(sk)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return int.from_bytes(k, "little")


def vectors():
    out = []
    cases = [
        (bytes(range(32)), b"", bytes(64)),
        (bytes(range(32, 64)), b"sealpost", bytes(range(64))),
        (bytes([0xFF] * 32), b"\x00" * 94, bytes([0xA5] * 64)),
        (hashlib.sha256(b"prekey signer").digest(), b"sealpost/prekey/1" + bytes(77),
         hashlib.sha512(b"nonce").digest()),
    ]
    for sk, msg, z in cases:
        k = clamp(sk)
        A, sig = xeddsa_sign(k, msg, z)
        priv = x25519.X25519PrivateKey.from_private_bytes(sk)
        u = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        # outside checks: A is convert_mont(u) (3.4), and the signature is
        # an Ed25519 signature under A
        assert A == convert_mont(int.from_bytes(u, "little")), "A != convert_mont(u)"
        ed25519.Ed25519PublicKey.from_public_bytes(A).verify(sig, msg)
        out.append(" ".join([sk.hex(), msg.hex() or "-", z.hex(), u.hex(), A.hex(), sig.hex()]))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    text = vectors()
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        with open(sys.argv[2]) as f:
            if f.read() != text:
                sys.stderr.write("xeddsa vectors differ from " + sys.argv[2] + "\n")
                sys.exit(1)
        sys.exit(0)
    sys.stdout.write(text)
