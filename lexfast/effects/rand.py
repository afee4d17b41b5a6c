"""rand.int_in and crypto.random, both gated ``random`` and drawn from the OS RNG.

The reference's ``rand.int_in`` is a midpoint stub gated on ``rand``; lexfast
does what upstream later settled on (#677): a uniform draw over [lo, hi].
"""

from __future__ import annotations

import os
import secrets

from ..errors import EffectError
from ..kernel import expect_int

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


ROWS = [
    ("rand", "int_in", "random", rand_int_in),
    ("crypto", "random", "random", crypto_random),
]
