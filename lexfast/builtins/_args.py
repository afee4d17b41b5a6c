"""Argument checks with the wording of the reference's ``builtins.rs``
(``expected Str, got Int(3)``; ``missing argument``). Each raises
``EffectError``, as the reference's ``Err(String)`` from ``dispatch`` is.

Python's ``bool`` is an ``int`` subclass: a Bool is never an Int here.
"""

from __future__ import annotations

from ..errors import EffectError
from ..values import INT_MAX, INT_MIN, Map, debug_repr

_MISSING = "missing argument"


def fail(msg: str) -> EffectError:
    return EffectError(msg)


def _got(what: str, v: object) -> EffectError:
    return EffectError(f"expected {what}, got {debug_repr(v)}")


def _int_text(v: int) -> str:
    try:
        return str(v)
    except ValueError:  # past Python's int-to-str digit limit
        return f"<{v.bit_length()}-bit int>"


def arg(args: list, i: int) -> object:
    if i >= len(args):
        raise EffectError(_MISSING)
    return args[i]


def expect_str(args: list, i: int) -> str:
    if i >= len(args):
        raise EffectError(_MISSING)
    v = args[i]
    if type(v) is str:
        return v
    if isinstance(v, str):
        return str.__str__(v)
    raise _got("Str", v)


def expect_int(args: list, i: int) -> int:
    if i >= len(args):
        raise EffectError(_MISSING)
    v = args[i]
    if type(v) is int:
        if INT_MIN <= v <= INT_MAX:
            return v
        raise EffectError(f"expected Int, got an integer outside i64: {_int_text(v)}")
    if isinstance(v, int) and not isinstance(v, bool):
        return expect_int([int.__int__(v)], 0)
    raise _got("Int", v)


def expect_float(args: list, i: int) -> float:
    if i >= len(args):
        raise EffectError(_MISSING)
    v = args[i]
    if isinstance(v, float):
        return float(v)
    raise _got("Float", v)


def expect_bool(args: list, i: int) -> bool:
    if i >= len(args):
        raise EffectError(_MISSING)
    v = args[i]
    if isinstance(v, bool):
        return bool(v)
    raise _got("Bool", v)


def expect_bytes(args: list, i: int) -> bytes:
    if i >= len(args):
        raise EffectError(_MISSING)
    v = args[i]
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise _got("Bytes", v)


def expect_list(args: list, i: int) -> list:
    if i >= len(args):
        raise EffectError(_MISSING)
    v = args[i]
    if isinstance(v, list):
        return v
    raise _got("List", v)


def expect_map(args: list, i: int) -> Map:
    # the reference says ``expected Map, got None`` for a missing map (Option's Debug)
    v = args[i] if i < len(args) else None
    if isinstance(v, Map):
        return v
    raise EffectError(f"expected Map, got {'None' if i >= len(args) else 'Some(' + debug_repr(v) + ')'}")


def expect_dec(args: list, i: int) -> tuple:
    """A ``decimal`` record ``{coefficient: Int, exponent: Int}`` as
    ``(coefficient, exponent)``."""
    if i >= len(args):
        raise EffectError("decimal: missing argument")
    v = args[i]
    if not isinstance(v, dict) or isinstance(v, Map):
        raise EffectError(
            f"decimal: expected {{ coefficient, exponent }} record, got {debug_repr(v)}")
    c = v.get("coefficient")
    if type(c) is not int or not INT_MIN <= c <= INT_MAX:
        raise EffectError("decimal: missing or invalid 'coefficient' field")
    e = v.get("exponent")
    if type(e) is not int or not INT_MIN <= e <= INT_MAX:
        raise EffectError("decimal: missing or invalid 'exponent' field")
    return c, e


def wrap_i64(n: int) -> int:
    """Two's-complement wrap to i64 (Rust's ``wrapping_*``)."""
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >> 63 else n
