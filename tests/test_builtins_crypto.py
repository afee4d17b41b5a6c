"""crypto.* pure builtins through ``DefaultHandler.dispatch``: fixed vectors
(RFC 4231, 5869, 6979, 7914, 8032, the GCM spec, k256's Ethereum vector),
the reference's Result shapes and error texts, and the upstream cases of
tests/std_crypto.rs, std_crypto_aead.rs, std_crypto_extras.rs and
std_crypto_kdf.rs (cited by test name). Run once per core
(LEXFAST_NO_EXTENSIONS=1 for the pure-Python twin)."""

from __future__ import annotations

import hashlib

import pytest

from lexfast import DefaultHandler, EffectError, Policy
from lexfast.kernel import Variant

H = bytes.fromhex


@pytest.fixture(scope="module")
def h():
    handler = DefaultHandler(Policy.pure())
    yield handler
    handler.close()


@pytest.fixture
def call(h):
    def f(op, *args):
        return h.dispatch("crypto", op, list(args))

    return f


def OK(v):
    return Variant("Ok", (v,))


def ERR(v):
    return Variant("Err", (v,))


def ok_of(v):
    assert isinstance(v, Variant) and v.name == "Ok", v
    return v.args[0]


def err_of(v):
    assert isinstance(v, Variant) and v.name == "Err", v
    return v.args[0]


# ---------------------------------------------------------------- digests


def test_sha256_known_vector_and_empty(call):
    # std_crypto.rs sha256_known_vector / sha256_empty_input
    assert call("sha256", b"hello").hex() == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    e = call("sha256", b"")
    assert isinstance(e, bytes) and len(e) == 32 and e[:2] == b"\xe3\xb0"


def test_sha512_md5_lengths(call):
    # std_crypto.rs sha512_length / md5_length
    assert call("sha512", b"hello") == hashlib.sha512(b"hello").digest()
    assert len(call("sha512", b"hello")) == 64
    assert call("md5", b"hello").hex() == "5d41402abc4b2a76b9719d911017c592"


def test_blake2b_is_512_bit(call):
    # std_crypto_extras.rs blake2b_returns_64_byte_digest / _is_deterministic / _distinguishes_inputs
    d = call("blake2b", b"hello")
    assert len(d) == 64 and d == call("blake2b", b"hello") != call("blake2b", b"world")
    assert call("blake2b", b"abc").hex().startswith("ba80a53f981c4d0d6a2797b69f12f6e9")


def test_keccak256_is_ethereum_keccak_not_sha3(call):
    # std_crypto.rs keccak256_empty_matches_known_vector / keccak256_is_not_sha3_256
    e = call("keccak256", b"").hex()
    assert e == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert e != hashlib.sha3_256(b"").hexdigest()
    assert call("keccak256", b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    # multi-block input (rate 136 bytes)
    long = bytes(range(256)) * 3
    from lexfast.builtins.crypto import keccak256_digest

    assert keccak256_digest(long, 0x06) == hashlib.sha3_256(long).digest()


def test_hex_str_hashers(call):
    # std_crypto_extras.rs sha256_str_known_vector / sha512_str_length_is_128_hex_chars
    assert call("sha256_str", "") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    s = call("sha512_str", "hello")
    assert len(s) == 128 and s == hashlib.sha512(b"hello").hexdigest()
    assert call("sha256_str", "é") == hashlib.sha256("é".encode()).hexdigest()


def test_hmac_vectors(call):
    # std_crypto.rs hmac_sha256_known_vector (RFC 4231 test 1)
    key = b"\x0b" * 20
    assert call("hmac_sha256", key, b"Hi There").hex() == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    assert call("hmac_sha512", key, b"Hi There").hex() == (
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
        "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854")
    assert len(call("hmac_sha256", b"", b"")) == 32


@pytest.mark.parametrize("op", ["sha256", "sha512", "md5", "blake2b", "keccak256"])
def test_digest_argument_errors(call, op):
    with pytest.raises(EffectError, match=r"^expected Bytes, got Str\(\"x\"\)$"):
        call(op, "x")
    with pytest.raises(EffectError, match="^missing argument$"):
        call(op)
    assert call(op, bytearray(b"ab")) == call(op, b"ab")


def test_str_hasher_and_hmac_argument_errors(call):
    with pytest.raises(EffectError, match=r"^expected Str, got Bytes\("):
        call("sha256_str", b"x")
    with pytest.raises(EffectError, match="^missing argument$"):
        call("hmac_sha256", b"k")
    with pytest.raises(EffectError, match=r"^expected Bytes, got Int\(1\)$"):
        call("hmac_sha512", 1, b"")


# ---------------------------------------------------------------- ed25519

RFC8032_SK = H("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PK = H("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = H("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")


def test_ed25519_rfc8032_test1(call):
    assert call("ed25519_public_key", RFC8032_SK) == OK(RFC8032_PK)
    assert call("ed25519_sign", RFC8032_SK, b"") == OK(RFC8032_SIG)
    assert call("ed25519_verify", RFC8032_PK, b"", RFC8032_SIG) is True


def test_ed25519_roundtrip_and_wrong_message(call):
    # std_crypto.rs ed25519_sign_verify_roundtrip / ed25519_rejects_wrong_message
    secret = bytes([7]) * 32
    pk = ok_of(call("ed25519_public_key", secret))
    sig = ok_of(call("ed25519_sign", secret, b"transfer authorized"))
    assert call("ed25519_verify", pk, b"transfer authorized", sig) is True
    assert call("ed25519_verify", pk, b"transfer 9999", sig) is False


def test_ed25519_public_key_deterministic_and_bad_length(call):
    # std_crypto.rs ed25519_public_key_is_deterministic_and_32_bytes / _rejects_bad_length
    a = ok_of(call("ed25519_public_key", bytes([3]) * 32))
    assert len(a) == 32 and a == ok_of(call("ed25519_public_key", bytes([3]) * 32))
    assert call("ed25519_public_key", bytes([1]) * 10) == ERR("ed25519_public_key: secret must be 32 bytes")
    assert call("ed25519_sign", bytes(33), b"m") == ERR("ed25519_sign: secret must be 32 bytes")


def test_ed25519_verify_malformed_inputs_are_false(call):
    assert call("ed25519_verify", RFC8032_PK[:31], b"", RFC8032_SIG) is False
    assert call("ed25519_verify", RFC8032_PK, b"", RFC8032_SIG[:63]) is False
    # s >= L is refused
    bad_s = RFC8032_SIG[:32] + b"\xff" * 32
    assert call("ed25519_verify", RFC8032_PK, b"", bad_s) is False
    # a public key that does not decompress
    bad_pk = next(y.to_bytes(32, "little") for y in range(2, 99) if not _rfc8032_decodes(y.to_bytes(32, "little")))
    assert call("ed25519_verify", bad_pk, b"", RFC8032_SIG) is False
    with pytest.raises(EffectError, match=r"^expected Bytes, got Str"):
        call("ed25519_verify", RFC8032_PK, "m", RFC8032_SIG)


def _rfc8032_decodes(b):
    """RFC 8032 5.1.3 point decoding (x recovery by (u/v)^((p+3)/8)), an
    oracle independent of the module's Euler-criterion check; y taken mod p
    as curve25519-dalek does."""
    p = (1 << 255) - 19
    d = -121665 * pow(121666, -1, p) % p
    y = (int.from_bytes(b, "little") & ((1 << 255) - 1)) % p
    u, v = (y * y - 1) % p, (d * y * y + 1) % p
    x = u * pow(v, 3, p) * pow(u * pow(v, 7, p), (p - 5) // 8, p) % p
    if v * x * x % p == u:
        return True
    return v * x * x % p == (-u) % p


def test_ed25519_is_valid_point(call):
    assert call("ed25519_is_valid_point", RFC8032_PK) is True
    # y = 0: x^2 = -1, a square mod p (a point of order 4: dalek accepts small order)
    assert call("ed25519_is_valid_point", bytes(32)) is True
    assert call("ed25519_is_valid_point", b"\x01" + bytes(31)) is True  # the identity
    seen = set()
    for y in range(2, 40):
        b = y.to_bytes(32, "little")
        want = _rfc8032_decodes(b)
        seen.add(want)
        assert call("ed25519_is_valid_point", b) is want, y
        assert call("ed25519_is_valid_point", b[:31] + b"\x80") is want, y  # the sign bit is free
    assert seen == {True, False}
    assert call("ed25519_is_valid_point", RFC8032_PK[:31]) is False
    # a non-canonical y (y = p + 1, the identity) is accepted, as curve25519-dalek does
    p = (1 << 255) - 19
    assert call("ed25519_is_valid_point", (p + 1).to_bytes(32, "little")) is True


# ---------------------------------------------------------------- P-256

P256_SK = H("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")
# RFC 6979 A.2.5, public key Ux/Uy
P256_UX = 0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
P256_UY = 0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299


def _der(r, s):
    def i(v):
        b = v.to_bytes((v.bit_length() + 7) // 8 or 1, "big")
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b

    body = i(r) + i(s)
    return b"\x30" + bytes([len(body)]) + body


def test_p256_rfc6979_vectors(call):
    # RFC 6979 A.2.5, SHA-256: the reference's p256 signs deterministically
    assert call("p256_public_key", P256_SK) == OK(b"\x03" + P256_UX.to_bytes(32, "big"))
    sample = _der(0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
                  0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8)
    test = _der(0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367,
                0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083)
    assert call("p256_sign", P256_SK, b"sample") == OK(sample)
    assert call("p256_sign", P256_SK, b"test") == OK(test)


def test_p256_roundtrip_der_and_wrong_message(call):
    # std_crypto.rs p256_sign_verify_roundtrip / p256_rejects_wrong_message /
    # p256_signature_is_der_encoded / p256_public_key_is_33_byte_compressed_point
    pk = ok_of(call("p256_public_key", P256_SK))
    assert len(pk) == 33 and pk[0] in (2, 3)
    msg = b"checkout mandate: pay 42.00 USD"
    sig = ok_of(call("p256_sign", P256_SK, msg))
    assert sig[0] == 0x30 and 68 <= len(sig) <= 72
    assert call("p256_verify", pk, msg, sig) is True
    assert call("p256_verify", pk, b"transfer 9999", sig) is False
    hi = ok_of(call("p256_sign", P256_SK, b"hi"))
    assert hi[0] == 0x30 and 68 <= len(hi) <= 72


def test_p256_verify_accepts_every_sec1_form(call):
    msg = b"sample"
    sig = ok_of(call("p256_sign", P256_SK, msg))
    x, y = P256_UX.to_bytes(32, "big"), P256_UY.to_bytes(32, "big")
    assert call("p256_verify", b"\x04" + x + y, msg, sig) is True
    assert call("p256_verify", b"\x03" + x, msg, sig) is True
    assert call("p256_verify", b"\x02" + x, msg, sig) is False  # the other y
    # compact (0x05 || x): primeorder takes min(y, p - y)
    p = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
    compact_is_ours = min(P256_UY, p - P256_UY) == P256_UY
    assert call("p256_verify", b"\x05" + x, msg, sig) is compact_is_ours
    assert call("p256_verify", b"\x00", msg, sig) is False
    assert call("p256_verify", b"\x04" + x + (P256_UY ^ 1).to_bytes(32, "big"), msg, sig) is False
    assert call("p256_verify", b"", msg, sig) is False


def test_p256_verify_high_s_is_accepted_and_bad_der_refused(call):
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    r = 0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716
    s = 0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8
    pk = ok_of(call("p256_public_key", P256_SK))
    assert call("p256_verify", pk, b"sample", _der(r, n - s)) is True  # p256 does not require low-S
    good = _der(r, s)
    assert call("p256_verify", pk, b"sample", good + b"\0") is False  # trailing data
    assert call("p256_verify", pk, b"sample", good[:-1]) is False
    assert call("p256_verify", pk, b"sample", _der(r, s + n)) is False  # s out of range
    assert call("p256_verify", pk, b"sample", _der(0, s)) is False
    padded = b"\x30" + bytes([good[1] + 1]) + b"\x02" + bytes([good[3] + 1]) + b"\0" + good[4:]
    assert call("p256_verify", pk, b"sample", padded) is False  # non-minimal INTEGER
    assert call("p256_verify", pk, b"sample", (r.to_bytes(32, "big") + s.to_bytes(32, "big"))) is False


def test_p256_secret_checks(call):
    # std_crypto.rs p256_public_key_rejects_bad_length
    e = "p256_public_key: secret must be a 32-byte P-256 scalar"
    assert call("p256_public_key", bytes([1]) * 10) == ERR(e)
    assert call("p256_public_key", bytes(32)) == ERR(e)
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    assert call("p256_public_key", n.to_bytes(32, "big")) == ERR(e)
    assert call("p256_sign", bytes(33), b"") == ERR("p256_sign: secret must be a 32-byte P-256 scalar")
    # elliptic-curve 0.13.8's SecretKey::from_slice left-pads 24..=31 bytes
    assert call("p256_public_key", P256_SK[8:]) == call("p256_public_key", bytes(8) + P256_SK[8:])
    assert call("p256_public_key", P256_SK[9:]) == ERR(e)
    with pytest.raises(EffectError, match="^missing argument$"):
        call("p256_sign", P256_SK)


# ---------------------------------------------------------------- secp256k1

K_SK = H("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
K_DIGEST = H("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
K_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_secp256k1_ethereum_vector(call, h):
    # k256 0.13's documented vector: keccak256(tx) signed by this key, recid 0
    tx = H("e9808504e3b29200831e848094f0109fc8df283027b6285cc889f5aa624eac1f55843b9aca0080018080")
    digest = call("keccak256", tx)
    sig = ok_of(call("secp256k1_sign_digest", K_SK, digest))
    assert sig.hex() == (
        "c9cf86333bcb065d140032ecaab5d9281bde80f21b9687b3e94161de42d51895"
        "727a108a0b8d101465414033c3f705a9c7b826e596766046ee1183dbc8aeaa68" "1b")
    pk = ok_of(call("secp256k1_public_key", K_SK))
    # Ethereum address of this well-known key
    assert call("keccak256", pk[1:])[12:].hex() == "2c7536e3605d9c16a7a3d7b1898e529396a65c23"
    assert call("secp256k1_recover", digest, sig) == OK(pk)


@pytest.mark.parametrize("key,sig", [
    # the well-known RFC 6979 secp256k1 vectors over sha256("Satoshi Nakamoto") (low-S)
    (1, "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8"
        "2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5"),
    (K_N - 1, "fd567d121db66e382991534ada77a6bd3106f0a1098c231e47993447cd6af2d0"
              "6b39cd0eb1bc8603e159ef5c20a5c8ad685a45b06ce9bebed3f153d10d93bed5"),
])
def test_secp256k1_rfc6979_vectors(call, key, sig):
    d = hashlib.sha256(b"Satoshi Nakamoto").digest()
    got = ok_of(call("secp256k1_sign_digest", key.to_bytes(32, "big"), d))
    assert got[:64].hex() == sig and got[64] in (27, 28)
    pk = ok_of(call("secp256k1_public_key", key.to_bytes(32, "big")))
    assert call("secp256k1_recover", d, got) == OK(pk)


def test_secp256k1_upstream_properties(call):
    # std_crypto.rs secp256k1_public_key_is_65_byte_uncompressed_point /
    # secp256k1_signature_is_65_bytes_with_eth_v / secp256k1_recover_yields_signer_pubkey /
    # secp256k1_sign_verify_roundtrip / secp256k1_rejects_wrong_digest
    pk = ok_of(call("secp256k1_public_key", K_SK))
    assert len(pk) == 65 and pk[0] == 4
    sig = ok_of(call("secp256k1_sign_digest", K_SK, K_DIGEST))
    assert len(sig) == 65 and sig[64] in (27, 28)
    assert int.from_bytes(sig[32:64], "big") <= K_N // 2
    assert call("secp256k1_recover", K_DIGEST, sig) == OK(pk)
    assert call("eq", pk, ok_of(call("secp256k1_recover", K_DIGEST, sig))) is True
    assert call("secp256k1_verify", pk, K_DIGEST, sig) is True
    assert call("secp256k1_verify", pk, K_DIGEST, sig[:64]) is True
    assert call("secp256k1_verify", pk, b"\x11" * 32, sig) is False
    # the compressed key verifies too (from_sec1_bytes)
    comp = bytes([2 | (pk[64] & 1)]) + pk[1:33]
    assert call("secp256k1_verify", comp, K_DIGEST, sig) is True


def test_secp256k1_recover_v_encodings_and_errors(call):
    sig = ok_of(call("secp256k1_sign_digest", K_SK, K_DIGEST))
    pk = ok_of(call("secp256k1_public_key", K_SK))
    raw = sig[:64] + bytes([sig[64] - 27])
    assert call("secp256k1_recover", K_DIGEST, raw) == OK(pk)  # raw {0,1} accepted
    flipped = sig[:64] + bytes([55 - sig[64]])  # 27 <-> 28
    got = call("secp256k1_recover", K_DIGEST, flipped)
    assert got.name == "Ok" and got.args[0] != pk  # the other candidate key
    assert call("secp256k1_recover", K_DIGEST[:31], sig) == ERR("secp256k1_recover: digest must be exactly 32 bytes")
    assert call("secp256k1_recover", K_DIGEST, sig[:64]) == ERR("secp256k1_recover: signature must be 65 bytes (r‖s‖v)")
    assert call("secp256k1_recover", K_DIGEST, bytes(64) + b"\x1b") == ERR("secp256k1_recover: malformed r‖s")
    assert call("secp256k1_recover", K_DIGEST, sig[:64] + b"\x20") == ERR("secp256k1_recover: invalid recovery id")
    assert call("secp256k1_recover", K_DIGEST, sig[:64] + b"\x04") == ERR("secp256k1_recover: invalid recovery id")
    # recid 2/3 (x reduced): r + n is not a field element here
    assert call("secp256k1_recover", K_DIGEST, sig[:64] + b"\x1d") == ERR("secp256k1_recover: signature error")
    # a high-S signature recovers nothing: k256 verifies low-S only
    s = int.from_bytes(sig[32:64], "big")
    high = sig[:32] + (K_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    assert call("secp256k1_recover", K_DIGEST, high) == ERR("secp256k1_recover: signature error")
    assert call("secp256k1_verify", pk, K_DIGEST, high) is False


def test_secp256k1_input_checks(call):
    # std_crypto.rs secp256k1_sign_digest_rejects_non_32_byte_digest / secp256k1_public_key_rejects_bad_length
    assert call("secp256k1_sign_digest", K_SK, bytes(31)) == ERR(
        "secp256k1_sign_digest: digest must be exactly 32 bytes")
    assert call("secp256k1_sign_digest", bytes(10), bytes(32)) == ERR(
        "secp256k1_sign_digest: secret must be a 32-byte secp256k1 scalar")
    assert call("secp256k1_public_key", bytes([1]) * 10) == ERR(
        "secp256k1_public_key: secret must be a 32-byte secp256k1 scalar")
    assert call("secp256k1_public_key", K_N.to_bytes(32, "big")).name == "Err"
    pk = ok_of(call("secp256k1_public_key", K_SK))
    sig = ok_of(call("secp256k1_sign_digest", K_SK, K_DIGEST))
    assert call("secp256k1_verify", pk, K_DIGEST[:31], sig) is False
    assert call("secp256k1_verify", pk[:64], K_DIGEST, sig) is False
    assert call("secp256k1_verify", pk, K_DIGEST, sig[:63]) is False
    assert call("secp256k1_verify", b"\x00", K_DIGEST, sig) is False


def test_secp256k1_digest_above_n_signs_and_verifies(call):
    # the nonce is derived from the unreduced digest (ecdsa 0.16); the
    # signature itself uses the digest mod n
    d = b"\xff" * 32
    sig = ok_of(call("secp256k1_sign_digest", K_SK, d))
    pk = ok_of(call("secp256k1_public_key", K_SK))
    assert call("secp256k1_verify", pk, d, sig) is True
    assert call("secp256k1_recover", d, sig) == OK(pk)


# ---------------------------------------------------------------- encodings


def test_base64_round_trip_and_errors(call):
    # std_crypto.rs base64_round_trip / base64_decode_invalid
    assert call("base64_encode", b"hello, world!") == "aGVsbG8sIHdvcmxkIQ=="
    assert call("base64_decode", "aGVsbG8sIHdvcmxkIQ==") == OK(b"hello, world!")
    assert call("base64_decode", "not!@#valid") == ERR("base64: Invalid symbol 33, offset 3.")
    assert call("base64_decode", "") == OK(b"")
    assert call("base64_encode", b"") == ""


@pytest.mark.parametrize("text,msg", [
    ("aGk", "Invalid padding"),  # STANDARD requires canonical padding
    ("aGk==", "Invalid symbol 61, offset 3."),
    ("aGl=", "Invalid last symbol 108, offset 2."),  # trailing bits set
    ("a", "Invalid input length: 1"),
    ("aGVsb", "Invalid input length: 5"),
    ("aGVs\n", "Invalid symbol 10, offset 4."),
    ("=AAA", "Invalid symbol 61, offset 0."),
    ("AA=A", "Invalid symbol 61, offset 2."),
    ("AA==AAAA", "Invalid symbol 61, offset 2."),
    ("aGk=\n", "Invalid symbol 10, offset 4."),
    ("aGk-", "Invalid symbol 45, offset 3."),
    ("é", "Invalid symbol 195, offset 0."),
])
def test_base64_decode_error_texts(call, text, msg):
    assert call("base64_decode", text) == ERR("base64: " + msg)


def test_base64url(call):
    # std_crypto_extras.rs base64url_uses_urlsafe_alphabet_and_no_padding / base64url_round_trips
    enc = call("base64url_encode", b"hi")
    assert enc == "aGk" and not set(enc) & set("+/=")
    assert call("base64url_encode", b"\xfb\xff") == "-_8"
    assert call("base64url_decode", "-_8") == OK(b"\xfb\xff")
    payload = b"any plaintext payload here"
    assert call("base64url_decode", call("base64url_encode", payload)) == OK(payload)
    assert call("base64url_decode", "aGk=") == ERR("base64url: Invalid padding")
    assert call("base64url_decode", "+_8") == ERR("base64url: Invalid symbol 43, offset 0.")
    assert call("base64url_decode", "aGl") == ERR("base64url: Invalid last symbol 108, offset 2.")
    assert call("base64url_decode", "") == OK(b"")


def test_hex(call):
    # std_crypto.rs hex_round_trip / hex_decode_invalid_length
    assert call("hex_encode", H("deadbeef")) == "deadbeef"
    assert call("hex_decode", "deadbeef") == OK(H("deadbeef"))
    assert call("hex_decode", "DEADbeef") == OK(H("deadbeef"))
    assert call("hex_decode", "abc") == ERR("hex: Odd number of digits")
    assert call("hex_decode", "0g") == ERR("hex: Invalid character 'g' at position 1")
    assert call("hex_decode", "\n0") == ERR("hex: Invalid character '\\n' at position 0")
    assert call("hex_decode", "0'") == ERR("hex: Invalid character '\\'' at position 1")
    # a non-ASCII char: the crate reports its first UTF-8 byte as a char
    assert call("hex_decode", "é") == ERR("hex: Invalid character 'Ã' at position 0")
    assert call("hex_decode", "\x7f0") == ERR("hex: Invalid character '\\u{7f}' at position 0")
    assert call("hex_decode", "") == OK(b"")


def test_base58(call):
    # std_crypto.rs base58_encodes_32_zero_bytes_as_solana_default_pubkey /
    # base58_leading_zeros_become_ones / base58_round_trip / base58_decode_rejects_invalid_char
    assert call("base58_encode", bytes(32)) == "1" * 32
    assert call("base58_encode", bytes(3)) == "111"
    data = b"\x00\x01\x02the quick brown fox"
    assert call("base58_decode", call("base58_encode", data)) == OK(data)
    assert call("base58_encode", b"hello world") == "StV1DL6CwTryKyV"
    assert call("base58_decode", "StV1DL6CwTryKyV") == OK(b"hello world")
    assert call("base58_encode", b"") == ""
    assert call("base58_decode", "") == OK(b"")
    assert call("base58_decode", "0OIl") == ERR(
        "base58: provided string contained invalid character '0' at byte 0")
    assert call("base58_decode", "1é") == ERR(
        "base58: provided string contained non-ascii character starting at byte 1")


def test_encoding_argument_errors(call):
    with pytest.raises(EffectError, match=r"^expected Bytes, got Str"):
        call("base64_encode", "x")
    with pytest.raises(EffectError, match=r"^expected Str, got Bytes"):
        call("base64_decode", b"x")
    with pytest.raises(EffectError, match="^missing argument$"):
        call("hex_decode")
    with pytest.raises(EffectError, match=r"^expected Str, got Int\(5\)$"):
        call("base58_decode", 5)


def test_constant_time_equality(call):
    # std_crypto.rs constant_time_eq_match / _mismatch / _length_mismatch_returns_false;
    # std_crypto_extras.rs eq_* and eq_str_*
    assert call("constant_time_eq", b"abcd", b"abcd") is True
    assert call("constant_time_eq", b"abcd", b"abce") is False
    assert call("constant_time_eq", b"abc", b"abcd") is False
    assert call("eq", b"anything", b"anything") is True
    assert call("eq", b"alpha", b"beta") is False
    assert call("eq_str", "token", "token") is True
    assert call("eq_str", "token", "toxen") is False
    assert call("eq_str", "foo", "fooo") is False
    assert call("eq_str", "", "") is True
    with pytest.raises(EffectError, match=r"^expected Str, got Bytes"):
        call("eq_str", b"a", "a")
    with pytest.raises(EffectError, match="^missing argument$"):
        call("eq", b"a")


# ---------------------------------------------------------------- AEAD

PT = b"the quick brown fox jumps over the lazy dog"
AAD = b"v1:metadata=foo"
N12 = bytes(12)


def test_aes_gcm_spec_vectors(call):
    # GCM spec test cases 1 and 2 (AES-128, zero key and IV)
    assert call("aes_gcm_seal", bytes(16), N12, b"", b"") == OK(
        {"ciphertext": b"", "tag": H("58e2fccefa7e3061367f1d57a4e7455a")})
    assert call("aes_gcm_seal", bytes(16), N12, b"", bytes(16)) == OK(
        {"ciphertext": H("0388dace60b6a392f328c2b971b2fe78"), "tag": H("ab6e47d42cec13bdf53a67b21257bddf")})
    # test case 13 (AES-256, zero key, empty)
    assert call("aes_gcm_seal", bytes(32), N12, b"", b"") == OK(
        {"ciphertext": b"", "tag": H("530f8afbc74536b9a963b4f1c4cb738b")})


@pytest.mark.parametrize("keylen", [16, 32])
def test_aes_gcm_round_trip(call, keylen):
    # std_crypto_aead.rs aes_gcm_128_round_trip / aes_gcm_256_round_trip
    key = bytes(keylen)
    rec = ok_of(call("aes_gcm_seal", key, N12, AAD, PT))
    assert list(rec) == ["ciphertext", "tag"]
    assert len(rec["ciphertext"]) == len(PT) and len(rec["tag"]) == 16
    assert call("aes_gcm_open", key, N12, AAD, rec["ciphertext"], rec["tag"]) == OK(PT)


def test_aes_gcm_rejections(call):
    # std_crypto_aead.rs aes_gcm_rejects_modified_ciphertext / _modified_aad /
    # _bad_key_length / _bad_nonce_length
    key = bytes(16)
    rec = ok_of(call("aes_gcm_seal", key, N12, AAD, PT))
    ct = bytearray(rec["ciphertext"])
    ct[0] ^= 1
    assert call("aes_gcm_open", key, N12, AAD, bytes(ct), rec["tag"]) == ERR("aes_gcm_open: aead::Error")
    assert call("aes_gcm_open", key, N12, b"v2:different-aad", rec["ciphertext"], rec["tag"]) == ERR(
        "aes_gcm_open: aead::Error")
    assert call("aes_gcm_seal", bytes(20), N12, AAD, PT) == ERR("aes_gcm_seal: key must be 16 or 32 bytes, got 20")
    assert call("aes_gcm_seal", bytes(24), N12, AAD, PT) == ERR("aes_gcm_seal: key must be 16 or 32 bytes, got 24")
    assert call("aes_gcm_seal", key, bytes(8), AAD, PT) == ERR("aes_gcm_seal: nonce must be exactly 12 bytes, got 8")
    # nonce is checked before the key
    assert call("aes_gcm_seal", bytes(20), bytes(8), AAD, PT) == ERR(
        "aes_gcm_seal: nonce must be exactly 12 bytes, got 8")
    assert call("aes_gcm_open", key, N12, AAD, b"", bytes(15)) == ERR("aes_gcm_open: tag must be exactly 16 bytes, got 15")
    assert call("aes_gcm_open", bytes(20), N12, AAD, b"", bytes(16)) == ERR(
        "aes_gcm_open: key must be 16 or 32 bytes, got 20")
    assert call("aes_gcm_open", key, bytes(13), AAD, b"", bytes(16)) == ERR(
        "aes_gcm_open: nonce must be exactly 12 bytes, got 13")


def test_aead_argument_errors_are_result_errs(call):
    assert call("aes_gcm_seal", bytes(16), N12, AAD) == ERR("aes_gcm_seal: missing plaintext argument")
    assert call("aes_gcm_seal", "k", N12, AAD, PT) == ERR('aes_gcm_seal: key must be Bytes, got Str("k")')
    assert call("aes_gcm_open", bytes(16), N12, AAD, b"") == ERR("aes_gcm_open: missing tag argument")
    assert call("chacha20_poly1305_seal") == ERR("chacha20_poly1305_seal: missing key argument")
    assert call("chacha20_poly1305_open", bytes(32), N12, 3, b"", b"") == ERR(
        "chacha20_poly1305_open: aad must be Bytes, got Int(3)")


def test_chacha20_poly1305(call):
    # std_crypto_aead.rs chacha20_round_trip / chacha20_rejects_modified_tag /
    # chacha20_rejects_wrong_key / chacha20_rejects_bad_key_length / aead_empty_plaintext_is_handled
    key = bytes(32)
    rec = ok_of(call("chacha20_poly1305_seal", key, N12, AAD, PT))
    assert len(rec["ciphertext"]) == len(PT) and len(rec["tag"]) == 16
    assert call("chacha20_poly1305_open", key, N12, AAD, rec["ciphertext"], rec["tag"]) == OK(PT)
    tag = bytearray(rec["tag"])
    tag[0] ^= 1
    assert call("chacha20_poly1305_open", key, N12, AAD, rec["ciphertext"], bytes(tag)) == ERR(
        "chacha20_poly1305_open: aead::Error")
    assert call("chacha20_poly1305_open", b"\xff" * 32, N12, AAD, rec["ciphertext"], rec["tag"]).name == "Err"
    assert call("chacha20_poly1305_seal", bytes(16), N12, AAD, PT) == ERR(
        "chacha20_poly1305_seal: key must be exactly 32 bytes, got 16")
    assert call("chacha20_poly1305_seal", key, bytes(8), AAD, PT) == ERR(
        "chacha20_poly1305_seal: nonce must be exactly 12 bytes, got 8")
    assert call("chacha20_poly1305_open", key, N12, AAD, b"", bytes(4)) == ERR(
        "chacha20_poly1305_open: tag must be exactly 16 bytes, got 4")
    empty = ok_of(call("chacha20_poly1305_seal", key, N12, AAD, b""))
    assert empty["ciphertext"] == b"" and len(empty["tag"]) == 16
    assert call("chacha20_poly1305_open", key, N12, AAD, b"", empty["tag"]) == OK(b"")


def test_chacha20_poly1305_rfc8439_vector(call):
    # RFC 8439 2.8.2
    key = bytes(range(0x80, 0xA0))
    nonce = H("070000004041424344454647")
    aad = H("50515253c0c1c2c3c4c5c6c7")
    pt = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
          b"for the future, sunscreen would be it.")
    rec = ok_of(call("chacha20_poly1305_seal", key, nonce, aad, pt))
    assert rec["tag"].hex() == "1ae10b594f09e26a7e902ecbd0600691"
    assert rec["ciphertext"][:16].hex() == "d31a8d34648e60db7b86afbc53ef7ec2"


# ---------------------------------------------------------------- KDFs


def test_pbkdf2_sha256(call):
    # std_crypto_kdf.rs pbkdf2_sha256_rfc7914_test_vector / _is_deterministic /
    # _different_password_different_output / _honours_len / _rejects_zero_iterations / _rejects_zero_len
    assert call("pbkdf2_sha256", b"passwd", b"salt", 1, 64) == OK(H(
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"))
    a = call("pbkdf2_sha256", b"hunter2", b"sodium-chloride", 1000, 32)
    assert a == call("pbkdf2_sha256", b"hunter2", b"sodium-chloride", 1000, 32)
    assert call("pbkdf2_sha256", b"hunter2", b"salt", 100, 32) != call("pbkdf2_sha256", b"hunter3", b"salt", 100, 32)
    assert len(ok_of(call("pbkdf2_sha256", b"x", b"y", 2, 48))) == 48
    assert call("pbkdf2_sha256", b"x", b"y", 0, 32) == ERR("pbkdf2_sha256: iterations must be > 0, got 0")
    assert call("pbkdf2_sha256", b"x", b"y", 1, 0) == ERR("pbkdf2_sha256: len must be > 0, got 0")
    assert call("pbkdf2_sha256", b"x", b"y", 1, 1048577) == ERR("pbkdf2_sha256: len must be <= 1048576, got 1048577")
    assert call("pbkdf2_sha256", b"x", b"y", 1 << 32, 0) == ERR("pbkdf2_sha256: len must be > 0, got 0")
    assert call("pbkdf2_sha256", b"x", b"y", 1 << 32, 32) == ERR(
        "pbkdf2_sha256: iterations must fit in u32, got 4294967296")
    assert call("pbkdf2_sha256", b"x", b"y", True, 32) == ERR("pbkdf2_sha256: iterations must be Int, got Bool(true)")
    assert call("pbkdf2_sha256", b"x") == ERR("pbkdf2_sha256: missing salt argument")


def test_hkdf_sha256(call):
    # std_crypto_kdf.rs hkdf_sha256_rfc5869_test_case_1 / _empty_salt_uses_default / _rejects_oversized_output
    assert call("hkdf_sha256", b"\x0b" * 22, H("000102030405060708090a0b0c"), H("f0f1f2f3f4f5f6f7f8f9"), 42) == OK(H(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"))
    # RFC 5869 case 3: empty salt and info
    assert call("hkdf_sha256", b"\x0b" * 22, b"", b"", 42) == OK(H(
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"))
    assert len(ok_of(call("hkdf_sha256", b"ikm", b"salt", b"info", 8160))) == 8160
    assert call("hkdf_sha256", b"ikm", b"salt", b"info", 9000) == ERR(
        "hkdf_sha256: invalid number of blocks, too large output")
    assert call("hkdf_sha256", b"ikm", b"salt", b"info", -1) == ERR("hkdf_sha256: len must be > 0, got -1")
    assert call("hkdf_sha256", b"ikm", b"salt", "info", 1) == ERR('hkdf_sha256: info must be Bytes, got Str("info")')


def test_argon2id(call):
    # std_crypto_kdf.rs argon2id_is_deterministic / _password_change_changes_output /
    # _salt_change_changes_output / _rejects_short_salt / _rejects_zero_t_cost /
    # _rejects_too_small_m_cost / _rejects_zero_len / _honours_len
    a = ok_of(call("argon2id", b"hunter2", b"salty-salt", 1, 8, 32))
    assert len(a) == 32 and a == ok_of(call("argon2id", b"hunter2", b"salty-salt", 1, 8, 32))
    assert a != ok_of(call("argon2id", b"hunter3", b"salty-salt", 1, 8, 32))
    assert ok_of(call("argon2id", b"hunter2", b"salt-A-padded-out", 1, 8, 32)) != ok_of(
        call("argon2id", b"hunter2", b"salt-B-padded-out", 1, 8, 32))
    assert call("argon2id", b"hunter2", b"short", 1, 8, 32) == ERR("argon2id: salt is too short")
    assert call("argon2id", b"hunter2", b"salty-salt", 0, 8, 32) == ERR("argon2id: t_cost must be a u32 >= 1, got 0")
    assert call("argon2id", b"hunter2", b"salty-salt", 1, 1, 32) == ERR("argon2id: m_cost must be a u32 >= 8, got 1")
    assert call("argon2id", b"hunter2", b"salty-salt", 1, 8, 0) == ERR("argon2id: len must be > 0, got 0")
    assert len(ok_of(call("argon2id", b"hunter2", b"salty-salt", 1, 8, 64))) == 64
    assert call("argon2id", b"hunter2", b"salty-salt", 1, 8, 3) == ERR("argon2id: output is too short")
    assert call("argon2id", b"hunter2", b"salty-salt", 1 << 32, 8, 32) == ERR(
        "argon2id: t_cost must be a u32 >= 1, got 4294967296")
    assert call("argon2id", b"hunter2", b"salty-salt", 1, 8) == ERR("argon2id: missing len argument")


def test_argon2id_known_vector(call):
    # libargon2's CLI vector: password / somesalt, t=2, m=65536 KiB, p=1, 32 bytes
    out = ok_of(call("argon2id", b"password", b"somesalt", 2, 65536, 32))
    assert out.hex() == "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"


def test_argon2id_memory_cap(call):
    # deliberate: the reference takes any u32 KiB; lexfast refuses past 1 GiB
    from lexfast.builtins.crypto import ARGON2_MAX_M_COST

    assert call("argon2id", b"pw", b"salty-salt", 1, ARGON2_MAX_M_COST + 1, 32) == ERR(
        f"argon2id: m_cost must be <= {ARGON2_MAX_M_COST} (KiB), got {ARGON2_MAX_M_COST + 1}")


def test_effect_ops_are_not_pure_builtins():
    from lexfast import builtins as B

    ops = B.TABLE.get("crypto", {})
    assert len(ops) == 38
    for op in ("random", "random_str_hex", "p256_generate", "secp256k1_generate"):
        assert op not in ops
