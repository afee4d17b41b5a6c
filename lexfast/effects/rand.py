"""rand.int_in, crypto.random, crypto.random_str_hex and the key minters
crypto.p256_generate / secp256k1_generate: all gated ``random`` (so an audit
for ``random`` finds every token and key minted) and drawn from the OS RNG.

The reference's ``rand.int_in`` is a midpoint stub gated on ``rand``; lexfast
does what upstream later settled on (#677): a uniform draw over [lo, hi].
"""

from __future__ import annotations

import os
import secrets

from ..errors import EffectError
from ..kernel import err, expect_int, ok

CRYPTO_RANDOM_MAX = 1_048_576


def rand_int_in(h, args):
    lo = expect_int(args, 0)
    hi = expect_int(args, 1)
    if hi < lo:
        raise EffectError(f"rand.int_in: empty range [{lo}, {hi}]")
    return lo + secrets.randbelow(hi - lo + 1)


def crypto_random(h, args):
    n = expect_int(args, 0)
    if not 0 <= n <= CRYPTO_RANDOM_MAX:
        raise EffectError(f"crypto.random: n must be in 0..={CRYPTO_RANDOM_MAX}")
    try:
        return os.urandom(n)
    except OSError as e:  # pragma: no cover - no entropy source
        raise EffectError(f"crypto.random: OS RNG: {e}") from None


def crypto_random_str_hex(h, args):
    n = expect_int(args, 0)
    if not 0 <= n <= CRYPTO_RANDOM_MAX:
        raise EffectError(f"crypto.random_str_hex: n must be in 0..={CRYPTO_RANDOM_MAX}")
    try:
        return os.urandom(n).hex()
    except OSError as e:  # pragma: no cover - no entropy source
        raise EffectError(f"crypto.random_str_hex: OS RNG: {e}") from None


#: the group orders: a secret scalar is in 1..n-1 (what RustCrypto's
#: ``SigningKey::from_slice`` accepts)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _mint(op: str, order: int):
    # The reference's sample-and-reject: 32 bytes from the OS RNG until one
    # is a valid scalar (a miss is < 2^-32 per draw), at most 16 draws.
    for _ in range(16):
        try:
            raw = os.urandom(32)
        except OSError as e:  # pragma: no cover - no entropy source
            raise EffectError(f"crypto.{op}: OS RNG: {e}") from None
        if 0 < int.from_bytes(raw, "big") < order:
            return ok(raw)
    return err(f"crypto.{op}: failed to sample a valid scalar")  # pragma: no cover


def crypto_p256_generate(h, args):
    """A fresh P-256 (ES256) secret key: ``Ok(Bytes)``, the 32-byte big-endian scalar."""
    return _mint("p256_generate", P256_ORDER)


def crypto_secp256k1_generate(h, args):
    """A fresh secp256k1 secret key: ``Ok(Bytes)``, the 32-byte big-endian scalar."""
    return _mint("secp256k1_generate", SECP256K1_ORDER)


ROWS = [
    ("rand", "int_in", "random", rand_int_in),
    ("crypto", "random", "random", crypto_random),
    ("crypto", "random_str_hex", "random", crypto_random_str_hex),
    ("crypto", "p256_generate", "random", crypto_p256_generate),
    ("crypto", "secp256k1_generate", "random", crypto_secp256k1_generate),
]
