"""Pure builtins ``random.*``: the reference's seeded, value-threaded RNG.

SplitMix64 as ``builtins.rs`` writes it: ``splitmix64(state)`` returns
``(mix(state + 0x9E3779B97F4A7C15), state + 0x9E3779B97F4A7C15)``. The Rng is
the Record ``{"state": Int}`` (the u64 state as an i64). ``seed(s)`` installs
``splitmix64(s).0``; ``int(rng, lo, hi)`` is ``lo + raw % (hi - lo + 1)``;
``float`` is ``(raw >> 11) / 2**53``; ``choose`` picks ``raw % len``.

Where the reference calls ``Value::as_int`` (a panic on a non-Int) this
raises ``EffectError`` ``expected Int, got ...``.
"""

from __future__ import annotations

from ..errors import EffectError
from ..kernel import NONE, some
from ..values import Map, debug_repr
from ._args import wrap_i64

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


def splitmix64(state: int) -> tuple:
    """``(output, next_state)`` for a u64 ``state``."""
    nxt = (state + _GOLDEN) & _M64
    z = nxt
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31), nxt


def _rng(state: int) -> dict:
    return {"state": wrap_i64(state)}


def _decode(args: list) -> int:
    if not args:
        raise EffectError("missing Rng arg")
    v = args[0]
    if not isinstance(v, dict) or isinstance(v, Map):
        raise EffectError(f"expected Rng, got {debug_repr(v)}")
    s = v.get("state")
    if type(s) is not int or not _I64_MIN <= s <= _I64_MAX:
        raise EffectError("malformed Rng: missing `state :: Int`")
    return s & _M64


def _as_int(args: list, i: int, missing: str) -> int:
    if i >= len(args):
        raise EffectError(missing)
    v = args[i]
    if type(v) is int and _I64_MIN <= v <= _I64_MAX:
        return v
    raise EffectError(f"expected Int, got {debug_repr(v)}")


def _seed(args: list) -> dict:
    s = _as_int(args, 0, "random.seed: missing arg")
    return _rng(splitmix64(s & _M64)[0])


def _int(args: list) -> tuple:
    state = _decode(args)
    lo = _as_int(args, 1, "random.int: missing lo")
    hi = _as_int(args, 2, "random.int: missing hi")
    if hi < lo:
        raise EffectError(f"random.int: hi ({hi}) must be >= lo ({lo})")
    raw, nxt = splitmix64(state)
    return lo + raw % (hi - lo + 1), _rng(nxt)


def _float(args: list) -> tuple:
    raw, nxt = splitmix64(_decode(args))
    return (raw >> 11) / 9007199254740992.0, _rng(nxt)


def _choose(args: list) -> object:
    state = _decode(args)
    xs = args[1] if len(args) > 1 else None
    if not isinstance(xs, list):
        raise EffectError("random.choose: expected List")
    if not xs:
        return NONE
    raw, nxt = splitmix64(state)
    return some((xs[raw % len(xs)], _rng(nxt)))


BUILTINS = {
    ("random", "seed"): _seed,
    ("random", "int"): _int,
    ("random", "float"): _float,
    ("random", "choose"): _choose,
}
