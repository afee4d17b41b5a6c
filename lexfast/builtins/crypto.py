"""Pure builtins: ``crypto`` (the reference's ``builtins.rs``, 38 ops).

Digests, MACs, encodings, constant-time equality, ed25519 / P-256 /
secp256k1 signatures, AEAD and KDFs, each as the reference's RustCrypto
crates answer them: the same bytes, the same ``Result`` shapes and the same
error texts. ``crypto.random``, ``random_str_hex``, ``p256_generate`` and
``secp256k1_generate`` are effects (``is_pure_call``) and are not here.

Libraries: ``hashlib``/``hmac``/``base64`` (stdlib); ``cryptography`` for
ed25519, the EC point multiplications, ECDSA verification and the AEADs;
``argon2-cffi`` for argon2id. Both are imported inside the functions that
use them. Keccak-256 is a small Keccak-f[1600] here (hashlib's ``sha3_256``
pads differently).

Deliberate points:

- ECDSA signing (``p256_sign``, ``secp256k1_sign_digest``) derives its
  nonce as the reference's ``ecdsa`` 0.16 / ``rfc6979`` 0.4 do: RFC 6979
  HMAC-DRBG over the digest *unreduced* mod n (the RFC reduces it; the
  reference's crate only does from ecdsa 0.17), so signatures match the
  reference byte for byte even for a digest >= n. OpenSSL's deterministic
  mode reduces, hence the nonce is computed here and only k*G is asked of
  OpenSSL.
- ``argon2id`` refuses ``m_cost`` above ``ARGON2_MAX_M_COST`` KiB (1 GiB);
  the reference accepts any u32 (4 TiB), which would let one call take the
  process's memory; and refuses ``t_cost * m_cost`` above
  ``ARGON2_MAX_WORK`` (KiB passes, about a second of CPU).
- ``pbkdf2_sha256`` refuses ``iterations * ceil(len / 32)`` above
  ``PBKDF2_MAX_WORK`` (about a second of CPU; OWASP's 600000 iterations
  fit); the reference runs any u32 count (2^32 iterations: minutes).
- ``base58_encode``/``base58_decode`` are quadratic (as the reference's):
  inputs past ``BASE58_MAX_LEN`` bytes/chars are refused.
"""

from __future__ import annotations

import base64 as _b64
import binascii as _binascii
import hashlib
import hmac as _hmac

from ..errors import EffectError
from ..kernel import err, ok
from ._args import expect_bytes, expect_str

# ---------------------------------------------------------------- helpers


def _rust_char_debug(c: str) -> str:
    """Rust's ``{:?}`` of a ``char`` (``'a'``, ``'\\n'``, ``'\\u{7f}'``)."""
    if c == "'":
        return "'\\''"
    if c == "\\":
        return "'\\\\'"
    if c == "\n":
        return "'\\n'"
    if c == "\r":
        return "'\\r'"
    if c == "\t":
        return "'\\t'"
    if c == "\0":
        return "'\\0'"
    if c == " " or c.isprintable():
        return f"'{c}'"
    return "'\\u{" + format(ord(c), "x") + "}'"


def _debug(v: object) -> str:
    from ..values import debug_repr

    return debug_repr(v)


# ---------------------------------------------------------------- digests


def _sha256(args: list) -> bytes:
    return hashlib.sha256(expect_bytes(args, 0)).digest()


def _sha512(args: list) -> bytes:
    return hashlib.sha512(expect_bytes(args, 0)).digest()


def _md5(args: list) -> bytes:
    return hashlib.md5(expect_bytes(args, 0), usedforsecurity=False).digest()


def _blake2b(args: list) -> bytes:
    # Blake2b512: the 64-byte digest, no key
    return hashlib.blake2b(expect_bytes(args, 0)).digest()


# Keccak-f[1600] (FIPS 202 permutation), lanes indexed x + 5*y.
_KECCAK_RC = (
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
)
_KECCAK_ROT = (  # r[x][y]
    (0, 36, 3, 41, 18),
    (1, 44, 10, 45, 2),
    (62, 6, 43, 15, 61),
    (28, 55, 25, 21, 56),
    (27, 20, 39, 8, 14),
)
# (source lane, destination lane, rotation) for rho+pi: B[y, 2x+3y] = rot(A[x, y])
_KECCAK_PI = tuple(
    (x + 5 * y, y + 5 * ((2 * x + 3 * y) % 5), _KECCAK_ROT[x][y])
    for x in range(5) for y in range(5)
)
_M64 = (1 << 64) - 1


def _keccak_f(a: list) -> None:
    m = _M64
    b = [0] * 25
    for rc in _KECCAK_RC:
        c0 = a[0] ^ a[5] ^ a[10] ^ a[15] ^ a[20]
        c1 = a[1] ^ a[6] ^ a[11] ^ a[16] ^ a[21]
        c2 = a[2] ^ a[7] ^ a[12] ^ a[17] ^ a[22]
        c3 = a[3] ^ a[8] ^ a[13] ^ a[18] ^ a[23]
        c4 = a[4] ^ a[9] ^ a[14] ^ a[19] ^ a[24]
        d = (
            c4 ^ (((c1 << 1) | (c1 >> 63)) & m),
            c0 ^ (((c2 << 1) | (c2 >> 63)) & m),
            c1 ^ (((c3 << 1) | (c3 >> 63)) & m),
            c2 ^ (((c4 << 1) | (c4 >> 63)) & m),
            c3 ^ (((c0 << 1) | (c0 >> 63)) & m),
        )
        for i in range(25):
            a[i] ^= d[i % 5]
        for src, dst, r in _KECCAK_PI:
            v = a[src]
            b[dst] = ((v << r) | (v >> (64 - r))) & m if r else v
        for y in range(0, 25, 5):
            b0, b1, b2, b3, b4 = b[y], b[y + 1], b[y + 2], b[y + 3], b[y + 4]
            a[y] = b0 ^ (~b1 & b2)
            a[y + 1] = b1 ^ (~b2 & b3)
            a[y + 2] = b2 ^ (~b3 & b4)
            a[y + 3] = b3 ^ (~b4 & b0)
            a[y + 4] = b4 ^ (~b0 & b1)
        a[0] ^= rc


def keccak256_digest(data: bytes, pad: int = 0x01) -> bytes:
    """Keccak-256 (Ethereum's: padding byte 0x01; 0x06 would be SHA3-256)."""
    rate = 136
    msg = bytearray(data)
    msg.append(pad)
    msg.extend(b"\0" * (-len(msg) % rate))
    msg[-1] |= 0x80
    a = [0] * 25
    fb = int.from_bytes
    for off in range(0, len(msg), rate):
        for i in range(rate // 8):
            a[i] ^= fb(msg[off + 8 * i: off + 8 * i + 8], "little")
        _keccak_f(a)
    return b"".join(a[i].to_bytes(8, "little") for i in range(4))


def _keccak256(args: list) -> bytes:
    return keccak256_digest(expect_bytes(args, 0))


def _sha256_str(args: list) -> str:
    return hashlib.sha256(expect_str(args, 0).encode("utf-8", "surrogatepass")).hexdigest()


def _sha512_str(args: list) -> str:
    return hashlib.sha512(expect_str(args, 0).encode("utf-8", "surrogatepass")).hexdigest()


def _hmac_sha256(args: list) -> bytes:
    key = expect_bytes(args, 0)
    data = expect_bytes(args, 1)
    return _hmac.new(key, data, hashlib.sha256).digest()


def _hmac_sha512(args: list) -> bytes:
    key = expect_bytes(args, 0)
    data = expect_bytes(args, 1)
    return _hmac.new(key, data, hashlib.sha512).digest()


# ---------------------------------------------------------------- ed25519

_ED_P = (1 << 255) - 19
_ED_D = (-121665 * pow(121666, -1, _ED_P)) % _ED_P


def _ed25519_decompresses(b: bytes) -> bool:
    """Whether curve25519-dalek's ``CompressedEdwardsY::decompress`` accepts
    ``b`` (32 bytes): y is the low 255 bits (taken mod p, non-canonical y
    allowed), and (y^2 - 1) / (d y^2 + 1) must be a square."""
    p = _ED_P
    y = (int.from_bytes(b, "little") & ((1 << 255) - 1)) % p
    yy = y * y % p
    u = (yy - 1) % p
    v = (_ED_D * yy + 1) % p
    if u == 0:
        return True
    if v == 0:
        return False
    x2 = u * pow(v, -1, p) % p
    return pow(x2, (p - 1) // 2, p) == 1


def _ed25519_public_key(args: list):
    secret = expect_bytes(args, 0)
    if len(secret) != 32:
        return err("ed25519_public_key: secret must be 32 bytes")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pk = Ed25519PrivateKey.from_private_bytes(secret).public_key()
    return ok(pk.public_bytes(Encoding.Raw, PublicFormat.Raw))


def _ed25519_sign(args: list):
    secret = expect_bytes(args, 0)
    message = expect_bytes(args, 1)
    if len(secret) != 32:
        return err("ed25519_sign: secret must be 32 bytes")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return ok(Ed25519PrivateKey.from_private_bytes(secret).sign(message))


def _ed25519_verify(args: list) -> bool:
    public = expect_bytes(args, 0)
    message = expect_bytes(args, 1)
    sig = expect_bytes(args, 2)
    if len(public) != 32 or len(sig) != 64:
        return False
    if not _ed25519_decompresses(public):
        return False
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _ed25519_is_valid_point(args: list) -> bool:
    candidate = expect_bytes(args, 0)
    return len(candidate) == 32 and _ed25519_decompresses(candidate)


# ---------------------------------------------------------------- ECDSA


class _Curve:
    __slots__ = ("name", "p", "a", "b", "n", "gx", "gy", "compact_even")

    def __init__(self, name, p, a, b, n, gx, gy, compact_even):
        self.name = name
        self.p = p
        self.a = a
        self.b = b
        self.n = n
        self.gx = gx
        self.gy = gy
        # a SEC1 "compact" point (0x05 || x): k256 takes the even y (BIP 340),
        # primeorder (p256) the smaller of y and p - y
        self.compact_even = compact_even

    def crypto_curve(self):
        from cryptography.hazmat.primitives.asymmetric import ec

        return ec.SECP256R1() if self.name == "p256" else ec.SECP256K1()


_P256 = _Curve(
    "p256",
    p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
    a=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC,
    b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    compact_even=False,
)
_K256 = _Curve(
    "k256",
    p=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F,
    a=0,
    b=7,
    n=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    gx=0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
    gy=0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
    compact_even=True,
)


def _secret_scalar(curve: _Curve, secret: bytes) -> int | None:
    """``SigningKey::from_slice`` (elliptic-curve 0.13.8): 24..=32 bytes,
    big-endian, left-padded; the scalar must be in 1..n."""
    if not 24 <= len(secret) <= 32:
        return None
    d = int.from_bytes(secret, "big")
    return d if 0 < d < curve.n else None


def _mul_g(curve: _Curve, k: int) -> tuple[int, int]:
    """k*G (1 <= k < n) through OpenSSL."""
    from cryptography.hazmat.primitives.asymmetric import ec

    nums = ec.derive_private_key(k, curve.crypto_curve()).public_key().public_numbers()
    return nums.x, nums.y


def _sec1(x: int, y: int, compressed: bool) -> bytes:
    xb = x.to_bytes(32, "big")
    if compressed:
        return bytes((2 | (y & 1),)) + xb
    return b"\x04" + xb + y.to_bytes(32, "big")


def _curve_y(curve: _Curve, x: int) -> int | None:
    p = curve.p
    alpha = (x * x * x + curve.a * x + curve.b) % p
    beta = pow(alpha, (p + 1) // 4, p)  # p = 3 mod 4 for both curves
    return beta if beta * beta % p == alpha else None


def _decode_point(curve: _Curve, data: bytes) -> tuple[int, int] | None:
    """``VerifyingKey::from_sec1_bytes``: SEC1 compressed (02/03), uncompressed
    (04) or compact (05) encodings; coordinates below p, on the curve, not the
    identity."""
    if not data:
        return None
    tag = data[0]
    p = curve.p
    if tag in (2, 3, 5):
        if len(data) != 33:
            return None
        x = int.from_bytes(data[1:], "big")
        if x >= p:
            return None
        y = _curve_y(curve, x)
        if y is None:
            return None
        if tag == 5:
            if curve.compact_even:
                want_odd = 0
            else:
                return (x, min(y, p - y))
        else:
            want_odd = tag & 1
        if y & 1 != want_odd:
            y = p - y
        return (x, y)
    if tag == 4:
        if len(data) != 65:
            return None
        x = int.from_bytes(data[1:33], "big")
        y = int.from_bytes(data[33:], "big")
        if x >= p or y >= p:
            return None
        if (y * y - (x * x * x + curve.a * x + curve.b)) % p:
            return None
        return (x, y)
    return None  # the identity (00) is no public key; other tags are invalid


def _rfc6979_k(curve: _Curve, d: int, h: bytes) -> int:
    """RFC 6979 HMAC-DRBG (SHA-256) as rfc6979 0.4 runs it: ``h`` is the
    digest's field bytes, not reduced mod n."""
    x = d.to_bytes(32, "big")
    new = _hmac.new
    sha = hashlib.sha256
    v = b"\x01" * 32
    k = b"\x00" * 32
    k = new(k, v + b"\x00" + x + h, sha).digest()
    v = new(k, v, sha).digest()
    k = new(k, v + b"\x01" + x + h, sha).digest()
    v = new(k, v, sha).digest()
    n = curve.n
    while True:
        v = new(k, v, sha).digest()
        t = int.from_bytes(v, "big")
        k = new(k, v + b"\x00", sha).digest()
        v = new(k, v, sha).digest()
        if 0 < t < n:
            return t


def _ecdsa_sign(curve: _Curve, d: int, z_bytes: bytes) -> tuple[int, int, int] | None:
    """``sign_prehashed`` with the RFC 6979 nonce: (r, s, recovery id), or
    None where the crate errs (r or s zero)."""
    n = curve.n
    k = _rfc6979_k(curve, d, z_bytes)
    rx, ry = _mul_g(curve, k)
    r = rx % n
    z = int.from_bytes(z_bytes, "big") % n
    s = pow(k, -1, n) * (z + r * d) % n
    if r == 0 or s == 0:
        return None
    recid = (ry & 1) | ((rx != r) << 1)
    return r, s, recid


def _der_int(v: int) -> bytes:
    b = v.to_bytes((v.bit_length() + 7) // 8 or 1, "big")
    if b[0] & 0x80:
        b = b"\x00" + b
    return b"\x02" + bytes((len(b),)) + b


def _der_sig(r: int, s: int) -> bytes:
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes((len(body),)) + body


def _parse_der_sig(curve: _Curve, sig: bytes) -> tuple[int, int] | None:
    """``Signature::from_der``: strict DER SEQUENCE of two positive minimal
    INTEGERs of at most 32 bytes each, nothing after; r, s in 1..n."""
    if len(sig) < 2 or sig[0] != 0x30 or sig[1] & 0x80 or sig[1] != len(sig) - 2:
        return None
    pos = 2
    out = []
    for _ in range(2):
        if pos + 2 > len(sig) or sig[pos] != 0x02 or sig[pos + 1] & 0x80:
            return None
        ln = sig[pos + 1]
        body = sig[pos + 2: pos + 2 + ln]
        if ln == 0 or len(body) != ln:
            return None
        if body[0] & 0x80:
            return None  # negative
        if ln > 1 and body[0] == 0 and not body[1] & 0x80:
            return None  # non-minimal
        mag = body[1:] if body[0] == 0 and ln > 1 else body
        if len(mag) > 32:
            return None
        out.append(int.from_bytes(body, "big"))
        pos += 2 + ln
    if pos != len(sig):
        return None
    r, s = out
    if not (0 < r < curve.n and 0 < s < curve.n):
        return None
    return r, s


def _ecdsa_verify(curve: _Curve, q: tuple[int, int], r: int, s: int, data: bytes, prehashed: bool) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    try:
        pk = ec.EllipticCurvePublicNumbers(q[0], q[1], curve.crypto_curve()).public_key()
    except ValueError:
        return False
    alg = ec.ECDSA(utils.Prehashed(hashes.SHA256())) if prehashed else ec.ECDSA(hashes.SHA256())
    try:
        pk.verify(_der_sig(r, s), data, alg)
    except InvalidSignature:
        return False
    return True


def _p256_public_key(args: list):
    secret = expect_bytes(args, 0)
    d = _secret_scalar(_P256, secret)
    if d is None:
        return err("p256_public_key: secret must be a 32-byte P-256 scalar")
    x, y = _mul_g(_P256, d)
    return ok(_sec1(x, y, True))


def _p256_sign(args: list):
    secret = expect_bytes(args, 0)
    message = expect_bytes(args, 1)
    d = _secret_scalar(_P256, secret)
    if d is None:
        return err("p256_sign: secret must be a 32-byte P-256 scalar")
    got = _ecdsa_sign(_P256, d, hashlib.sha256(message).digest())
    if got is None:  # the reference panics here (probability ~2^-256)
        raise EffectError("p256_sign: signature error")
    r, s, _ = got
    return ok(_der_sig(r, s))


def _p256_verify(args: list) -> bool:
    public = expect_bytes(args, 0)
    message = expect_bytes(args, 1)
    sig = expect_bytes(args, 2)
    q = _decode_point(_P256, public)
    if q is None:
        return False
    rs = _parse_der_sig(_P256, sig)
    if rs is None:
        return False
    return _ecdsa_verify(_P256, q, rs[0], rs[1], message, prehashed=False)


def _secp256k1_public_key(args: list):
    secret = expect_bytes(args, 0)
    d = _secret_scalar(_K256, secret)
    if d is None:
        return err("secp256k1_public_key: secret must be a 32-byte secp256k1 scalar")
    x, y = _mul_g(_K256, d)
    return ok(_sec1(x, y, False))


def _secp256k1_sign_digest(args: list):
    secret = expect_bytes(args, 0)
    digest = expect_bytes(args, 1)
    if len(digest) != 32:
        return err("secp256k1_sign_digest: digest must be exactly 32 bytes")
    d = _secret_scalar(_K256, secret)
    if d is None:
        return err("secp256k1_sign_digest: secret must be a 32-byte secp256k1 scalar")
    got = _ecdsa_sign(_K256, d, digest)
    if got is None:
        return err("secp256k1_sign_digest: signature error")
    r, s, recid = got
    n = _K256.n
    if s > n >> 1:  # k256 normalises to low-S (EIP-2) and flips the y parity
        s = n - s
        recid ^= 1
    return ok(r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((27 + recid,)))


def _rs_from_slice(curve: _Curve, rs: bytes) -> tuple[int, int] | None:
    """``Signature::from_slice``: exactly 64 bytes, r and s in 1..n."""
    if len(rs) != 64:
        return None
    r = int.from_bytes(rs[:32], "big")
    s = int.from_bytes(rs[32:], "big")
    if not (0 < r < curve.n and 0 < s < curve.n):
        return None
    return r, s


# Affine/Jacobian arithmetic on secp256k1 (a = 0) for public-key recovery:
# public inputs only (no secret passes through here).


def _jac_double(pt, p):
    x, y, z = pt
    if not y:
        return (0, 1, 0)
    ysq = y * y % p
    s = 4 * x * ysq % p
    m = 3 * x * x % p
    nx = (m * m - 2 * s) % p
    ny = (m * (s - nx) - 8 * ysq * ysq) % p
    nz = 2 * y * z % p
    return (nx, ny, nz)


def _jac_add(p1, p2, p):
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if not z1:
        return p2
    if not z2:
        return p1
    z1z1 = z1 * z1 % p
    z2z2 = z2 * z2 % p
    u1 = x1 * z2z2 % p
    u2 = x2 * z1z1 % p
    s1 = y1 * z2 * z2z2 % p
    s2 = y2 * z1 * z1z1 % p
    if u1 == u2:
        if s1 != s2:
            return (0, 1, 0)
        return _jac_double(p1, p)
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    nx = (r * r - hhh - 2 * v) % p
    ny = (r * (v - nx) - s1 * hhh) % p
    nz = h * z1 * z2 % p
    return (nx, ny, nz)


def _jac_lincomb(a: int, pa, b: int, pb, p):
    """a*PA + b*PB (Shamir's trick)."""
    pab = _jac_add(pa, pb, p)
    acc = (0, 1, 0)
    for i in range(max(a.bit_length(), b.bit_length()) - 1, -1, -1):
        acc = _jac_double(acc, p)
        bits = ((a >> i) & 1, (b >> i) & 1)
        if bits == (1, 1):
            acc = _jac_add(acc, pab, p)
        elif bits[0]:
            acc = _jac_add(acc, pa, p)
        elif bits[1]:
            acc = _jac_add(acc, pb, p)
    return acc


def _secp256k1_recover(args: list):
    digest = expect_bytes(args, 0)
    sig = expect_bytes(args, 1)
    if len(digest) != 32:
        return err("secp256k1_recover: digest must be exactly 32 bytes")
    if len(sig) != 65:
        return err("secp256k1_recover: signature must be 65 bytes (r‖s‖v)")
    c = _K256
    rs = _rs_from_slice(c, sig[:64])
    if rs is None:
        return err("secp256k1_recover: malformed r‖s")
    v = sig[64]
    recid = v - 27 if v >= 27 else v
    if recid > 3:
        return err("secp256k1_recover: invalid recovery id")
    r, s = rs
    p, n = c.p, c.n
    failed = err("secp256k1_recover: signature error")
    x = r + n if recid & 2 else r
    if x >= p:
        return failed
    y = _curve_y(c, x)
    if y is None:
        return failed
    if y & 1 != recid & 1:
        y = p - y
    z = int.from_bytes(digest, "big") % n
    r_inv = pow(r, -1, n)
    u1 = (-z * r_inv) % n
    u2 = s * r_inv % n
    qx, qy, qz = _jac_lincomb(u1, (c.gx, c.gy, 1), u2, (x, y, 1), p)
    if not qz:
        return failed  # the identity is no verifying key
    zi = pow(qz, -1, p)
    zi2 = zi * zi % p
    q = (qx * zi2 % p, qy * zi2 * zi % p)
    # recover_from_prehash ends with verify_prehash, which k256 refuses for a high S
    if s > n >> 1:
        return failed
    return ok(_sec1(q[0], q[1], False))


def _secp256k1_verify(args: list) -> bool:
    public = expect_bytes(args, 0)
    digest = expect_bytes(args, 1)
    sig = expect_bytes(args, 2)
    if len(digest) != 32:
        return False
    q = _decode_point(_K256, public)
    if q is None:
        return False
    rs = _rs_from_slice(_K256, sig[:64] if len(sig) == 65 else sig)
    if rs is None:
        return False
    r, s = rs
    if s > _K256.n >> 1:  # k256 verifies low-S signatures only
        return False
    return _ecdsa_verify(_K256, q, r, s, digest, prehashed=True)


# ---------------------------------------------------------------- encodings

_B64_STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _b64_table(alphabet: bytes) -> list:
    t = [-1] * 256
    for i, c in enumerate(alphabet):
        t[c] = i
    return t


_B64_STD_T = _b64_table(_B64_STD)
_B64_URL_T = _b64_table(_B64_URL)


def _b64_decode_exact(data: bytes, table: list, canonical_pad: bool) -> tuple[bytes | None, str]:
    """The ``base64`` 0.22 crate's GeneralPurpose decoder (no trailing bits;
    padding canonical for STANDARD, refused for URL_SAFE_NO_PAD), with its
    error order and its ``DecodeError`` Display texts."""
    n = len(data)
    rem = n % 4
    if rem == 1:
        last = data[-1]
        if last != 0x3D and table[last] < 0:
            return None, f"Invalid symbol {last}, offset {n - 1}."
    body = n - rem - (4 if rem == 0 else 0)
    if body < 0:
        body = 0
    for i in range(body):
        if table[data[i]] < 0:
            return None, f"Invalid symbol {data[i]}, offset {i}."
    morsels: list = []
    pads = 0
    first_pad = 0
    last_symbol = 0
    for li in range(body, n):
        b = data[li]
        off = li - body
        if b == 0x3D:
            if off < 2:
                return None, f"Invalid symbol {b}, offset {li}."
            if pads == 0:
                first_pad = off
            pads += 1
            continue
        if pads:
            return None, f"Invalid symbol 61, offset {body + first_pad}."
        last_symbol = b
        m = table[b]
        if m < 0:
            return None, f"Invalid symbol {b}, offset {li}."
        morsels.append(m)
    if n and len(morsels) < 2:
        return None, f"Invalid input length: {body + len(morsels)}"
    if canonical_pad:
        if (pads + len(morsels)) % 4:
            return None, "Invalid padding"
    elif pads:
        return None, "Invalid padding"
    nbytes = len(morsels) * 6 // 8
    acc = 0
    for i in range(4):
        acc = (acc << 6) | (morsels[i] if i < len(morsels) else 0)
    acc <<= 8  # 32-bit buffer, morsels packed from the top
    mask = 0xFFFFFFFF >> (nbytes * 8)
    if acc & mask:
        return None, f"Invalid last symbol {last_symbol}, offset {body + len(morsels) - 1}."
    head = bytes(_b64_body(data[:body], table))
    return head + acc.to_bytes(4, "big")[:nbytes], ""


def _b64_body(data: bytes, table: list) -> bytearray:
    out = bytearray()
    for i in range(0, len(data), 4):
        v = (table[data[i]] << 18) | (table[data[i + 1]] << 12) | (table[data[i + 2]] << 6) | table[data[i + 3]]
        out += v.to_bytes(3, "big")
    return out


def _base64_encode(args: list) -> str:
    return _b64.b64encode(expect_bytes(args, 0)).decode("ascii")


def _base64_decode(args: list):
    s = expect_str(args, 0)
    data = s.encode("utf-8", "surrogatepass")
    try:
        out = _b64.b64decode(data, validate=True)
        if _b64.b64encode(out) == data:  # canonical: the crate accepts exactly these
            return ok(out)
    except ValueError:
        pass
    got, msg = _b64_decode_exact(data, _B64_STD_T, True)
    return ok(got) if got is not None else err("base64: " + msg)


def _base64url_encode(args: list) -> str:
    return _b64.urlsafe_b64encode(expect_bytes(args, 0)).rstrip(b"=").decode("ascii")


def _base64url_decode(args: list):
    s = expect_str(args, 0)
    data = s.encode("utf-8", "surrogatepass")
    if b"=" not in data and len(data) % 4 != 1:
        try:
            out = _b64.b64decode(data + b"=" * (-len(data) % 4), altchars=b"-_", validate=True)
            if _b64.urlsafe_b64encode(out).rstrip(b"=") == data:
                return ok(out)
        except ValueError:
            pass
    got, msg = _b64_decode_exact(data, _B64_URL_T, False)
    return ok(got) if got is not None else err("base64url: " + msg)


def _hex_encode(args: list) -> str:
    return expect_bytes(args, 0).hex()


_HEX_OK = frozenset(b"0123456789abcdefABCDEF")


def _hex_decode(args: list):
    s = expect_str(args, 0)
    data = s.encode("utf-8", "surrogatepass")
    if len(data) % 2:
        return err("hex: Odd number of digits")
    try:  # unhexlify takes exactly [0-9a-fA-F]{2}* (bytes.fromhex would skip spaces)
        return ok(_binascii.unhexlify(data))
    except ValueError:
        pass
    for i, c in enumerate(data):
        if c not in _HEX_OK:
            # the hex crate reports the byte as a char (Latin-1), with {:?}
            return err(f"hex: Invalid character {_rust_char_debug(chr(c))} at position {i}")
    return ok(bytes.fromhex(data.decode("ascii")))  # every byte checked above


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_T = {c: i for i, c in enumerate(_B58.encode("ascii"))}


#: Cap (input bytes/chars) for the quadratic base58 conversions.
BASE58_MAX_LEN = 1 << 14


def _base58_encode(args: list) -> str:
    data = expect_bytes(args, 0)
    if len(data) > BASE58_MAX_LEN:
        raise EffectError(f"crypto.base58_encode: input of {len(data)} bytes exceeds the cap of {BASE58_MAX_LEN}")
    zeros = len(data) - len(data.lstrip(b"\0"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    return "1" * zeros + "".join(reversed(out))


def _base58_decode(args: list):
    s = expect_str(args, 0)
    data = s.encode("utf-8", "surrogatepass")
    if len(data) > BASE58_MAX_LEN:
        return err(f"base58: input of {len(data)} bytes exceeds the cap of {BASE58_MAX_LEN}")
    n = 0
    t = _B58_T
    for i, c in enumerate(data):
        if c > 127:
            return err(f"base58: provided string contained non-ascii character starting at byte {i}")
        v = t.get(c)
        if v is None:
            return err(
                f"base58: provided string contained invalid character {_rust_char_debug(chr(c))} at byte {i}"
            )
        n = n * 58 + v
    zeros = len(data) - len(data.lstrip(b"1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return ok(b"\0" * zeros + body)


def _ct_eq(args: list) -> bool:
    a = expect_bytes(args, 0)
    b = expect_bytes(args, 1)
    return len(a) == len(b) and _hmac.compare_digest(a, b)


def _eq_str(args: list) -> bool:
    a = expect_str(args, 0).encode("utf-8", "surrogatepass")
    b = expect_str(args, 1).encode("utf-8", "surrogatepass")
    return len(a) == len(b) and _hmac.compare_digest(a, b)


# ---------------------------------------------------------------- AEAD


def _pick_bytes(args: list, i: int, op: str, name: str) -> bytes:
    """The AEAD/KDF unpackers' wording; raised as _ArgErr, returned as Err."""
    if i >= len(args):
        raise _ArgErr(f"{op}: missing {name} argument")
    v = args[i]
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise _ArgErr(f"{op}: {name} must be Bytes, got {_debug(v)}")


def _pick_int(args: list, i: int, op: str, name: str) -> int:
    if i >= len(args):
        raise _ArgErr(f"{op}: missing {name} argument")
    v = args[i]
    if isinstance(v, int) and not isinstance(v, bool):
        return int(v)
    raise _ArgErr(f"{op}: {name} must be Int, got {_debug(v)}")


class _ArgErr(Exception):
    pass


def _aead_record(combined: bytes) -> dict:
    return {"ciphertext": combined[:-16], "tag": combined[-16:]}


def _aes_gcm_seal(args: list):
    op = "aes_gcm_seal"
    try:
        key, nonce, aad, pt = (_pick_bytes(args, i, op, nm) for i, nm in
                               enumerate(("key", "nonce", "aad", "plaintext")))
    except _ArgErr as e:
        return err(str(e))
    if len(nonce) != 12:
        return err(f"{op}: nonce must be exactly 12 bytes, got {len(nonce)}")
    if len(key) not in (16, 32):
        return err(f"{op}: key must be 16 or 32 bytes, got {len(key)}")
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return ok(_aead_record(AESGCM(key).encrypt(nonce, pt, aad)))


def _aes_gcm_open(args: list):
    op = "aes_gcm_open"
    try:
        key, nonce, aad, ct, tag = (_pick_bytes(args, i, op, nm) for i, nm in
                                    enumerate(("key", "nonce", "aad", "ciphertext", "tag")))
    except _ArgErr as e:
        return err(str(e))
    if len(nonce) != 12:
        return err(f"{op}: nonce must be exactly 12 bytes, got {len(nonce)}")
    if len(tag) != 16:
        return err(f"{op}: tag must be exactly 16 bytes, got {len(tag)}")
    if len(key) not in (16, 32):
        return err(f"{op}: key must be 16 or 32 bytes, got {len(key)}")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return ok(AESGCM(key).decrypt(nonce, ct + tag, aad))
    except InvalidTag:
        return err(f"{op}: aead::Error")


def _chacha_seal(args: list):
    op = "chacha20_poly1305_seal"
    try:
        key, nonce, aad, pt = (_pick_bytes(args, i, op, nm) for i, nm in
                               enumerate(("key", "nonce", "aad", "plaintext")))
    except _ArgErr as e:
        return err(str(e))
    if len(key) != 32:
        return err(f"{op}: key must be exactly 32 bytes, got {len(key)}")
    if len(nonce) != 12:
        return err(f"{op}: nonce must be exactly 12 bytes, got {len(nonce)}")
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    return ok(_aead_record(ChaCha20Poly1305(key).encrypt(nonce, pt, aad)))


def _chacha_open(args: list):
    op = "chacha20_poly1305_open"
    try:
        key, nonce, aad, ct, tag = (_pick_bytes(args, i, op, nm) for i, nm in
                                    enumerate(("key", "nonce", "aad", "ciphertext", "tag")))
    except _ArgErr as e:
        return err(str(e))
    if len(key) != 32:
        return err(f"{op}: key must be exactly 32 bytes, got {len(key)}")
    if len(nonce) != 12:
        return err(f"{op}: nonce must be exactly 12 bytes, got {len(nonce)}")
    if len(tag) != 16:
        return err(f"{op}: tag must be exactly 16 bytes, got {len(tag)}")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    try:
        return ok(ChaCha20Poly1305(key).decrypt(nonce, ct + tag, aad))
    except InvalidTag:
        return err(f"{op}: aead::Error")


# ---------------------------------------------------------------- KDFs

KDF_MAX_LEN = 1024 * 1024
#: Caps stricter than the reference (see the module docstring): CPU per call.
PBKDF2_MAX_WORK = 4_000_000
ARGON2_MAX_WORK = 1 << 20
#: argon2id's memory cost cap, KiB (1 GiB); the reference has none (u32 KiB)
ARGON2_MAX_M_COST = 1024 * 1024
_U32_MAX = (1 << 32) - 1


def _check_len(op: str, n: int) -> str | None:
    if n <= 0:
        return f"{op}: len must be > 0, got {n}"
    if n > KDF_MAX_LEN:
        return f"{op}: len must be <= {KDF_MAX_LEN}, got {n}"
    return None


def _pbkdf2_sha256(args: list):
    op = "pbkdf2_sha256"
    try:
        password = _pick_bytes(args, 0, op, "password")
        salt = _pick_bytes(args, 1, op, "salt")
        iterations = _pick_int(args, 2, op, "iterations")
        n = _pick_int(args, 3, op, "len")
    except _ArgErr as e:
        return err(str(e))
    if iterations <= 0:
        return err(f"{op}: iterations must be > 0, got {iterations}")
    bad = _check_len(op, n)
    if bad:
        return err(bad)
    if iterations > _U32_MAX:
        return err(f"{op}: iterations must fit in u32, got {iterations}")
    if iterations * ((n + 31) // 32) > PBKDF2_MAX_WORK:
        return err(f"{op}: iterations * blocks must be <= {PBKDF2_MAX_WORK}, got {iterations} * {(n + 31) // 32}")
    return ok(hashlib.pbkdf2_hmac("sha256", password, salt, iterations, n))


def _hkdf_sha256(args: list):
    op = "hkdf_sha256"
    try:
        ikm = _pick_bytes(args, 0, op, "ikm")
        salt = _pick_bytes(args, 1, op, "salt")
        info = _pick_bytes(args, 2, op, "info")
        n = _pick_int(args, 3, op, "len")
    except _ArgErr as e:
        return err(str(e))
    bad = _check_len(op, n)
    if bad:
        return err(bad)
    if n > 255 * 32:
        return err(f"{op}: invalid number of blocks, too large output")
    # RFC 5869: an absent salt is HashLen zero bytes (what Hkdf::new(None) uses)
    prk = _hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    out = bytearray()
    t = b""
    i = 1
    while len(out) < n:
        t = _hmac.new(prk, t + info + bytes((i,)), hashlib.sha256).digest()
        out += t
        i += 1
    return ok(bytes(out[:n]))


def _argon2id(args: list):
    op = "argon2id"
    try:
        password = _pick_bytes(args, 0, op, "password")
        salt = _pick_bytes(args, 1, op, "salt")
        t_cost = _pick_int(args, 2, op, "t_cost")
        m_cost = _pick_int(args, 3, op, "m_cost")
        n = _pick_int(args, 4, op, "len")
    except _ArgErr as e:
        return err(str(e))
    bad = _check_len(op, n)
    if bad:
        return err(bad)
    if not 1 <= t_cost <= _U32_MAX:
        return err(f"{op}: t_cost must be a u32 >= 1, got {t_cost}")
    if not 8 <= m_cost <= _U32_MAX:
        return err(f"{op}: m_cost must be a u32 >= 8, got {m_cost}")
    if m_cost > ARGON2_MAX_M_COST:
        return err(f"{op}: m_cost must be <= {ARGON2_MAX_M_COST} (KiB), got {m_cost}")
    if t_cost * m_cost > ARGON2_MAX_WORK:
        return err(f"{op}: t_cost * m_cost must be <= {ARGON2_MAX_WORK}, got {t_cost} * {m_cost}")
    # Params::new(m, t, p=1, Some(len)), then hash_password_into's checks
    if n < 4:
        return err(f"{op}: output is too short")
    if len(password) > _U32_MAX:
        return err(f"{op}: password is too long")
    if len(salt) < 8:
        return err(f"{op}: salt is too short")
    if len(salt) > _U32_MAX:
        return err(f"{op}: salt is too long")
    from argon2.low_level import Type, hash_secret_raw

    return ok(hash_secret_raw(password, salt, time_cost=t_cost, memory_cost=m_cost,
                              parallelism=1, hash_len=n, type=Type.ID, version=19))


BUILTINS = {
    ("crypto", "sha256"): _sha256,
    ("crypto", "sha512"): _sha512,
    ("crypto", "md5"): _md5,
    ("crypto", "blake2b"): _blake2b,
    ("crypto", "keccak256"): _keccak256,
    ("crypto", "sha256_str"): _sha256_str,
    ("crypto", "sha512_str"): _sha512_str,
    ("crypto", "hmac_sha256"): _hmac_sha256,
    ("crypto", "hmac_sha512"): _hmac_sha512,
    ("crypto", "ed25519_public_key"): _ed25519_public_key,
    ("crypto", "ed25519_sign"): _ed25519_sign,
    ("crypto", "ed25519_verify"): _ed25519_verify,
    ("crypto", "ed25519_is_valid_point"): _ed25519_is_valid_point,
    ("crypto", "p256_public_key"): _p256_public_key,
    ("crypto", "p256_sign"): _p256_sign,
    ("crypto", "p256_verify"): _p256_verify,
    ("crypto", "secp256k1_public_key"): _secp256k1_public_key,
    ("crypto", "secp256k1_sign_digest"): _secp256k1_sign_digest,
    ("crypto", "secp256k1_recover"): _secp256k1_recover,
    ("crypto", "secp256k1_verify"): _secp256k1_verify,
    ("crypto", "base64_encode"): _base64_encode,
    ("crypto", "base64_decode"): _base64_decode,
    ("crypto", "base64url_encode"): _base64url_encode,
    ("crypto", "base64url_decode"): _base64url_decode,
    ("crypto", "hex_encode"): _hex_encode,
    ("crypto", "hex_decode"): _hex_decode,
    ("crypto", "base58_encode"): _base58_encode,
    ("crypto", "base58_decode"): _base58_decode,
    ("crypto", "constant_time_eq"): _ct_eq,
    ("crypto", "eq"): _ct_eq,
    ("crypto", "eq_str"): _eq_str,
    ("crypto", "aes_gcm_seal"): _aes_gcm_seal,
    ("crypto", "aes_gcm_open"): _aes_gcm_open,
    ("crypto", "chacha20_poly1305_seal"): _chacha_seal,
    ("crypto", "chacha20_poly1305_open"): _chacha_open,
    ("crypto", "pbkdf2_sha256"): _pbkdf2_sha256,
    ("crypto", "hkdf_sha256"): _hkdf_sha256,
    ("crypto", "argon2id"): _argon2id,
}
