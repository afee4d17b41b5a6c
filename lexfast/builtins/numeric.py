"""Pure builtins ``math.*`` and ``decimal.*`` (the reference's ``builtins.rs``).

``math``: Rust ``f64`` semantics. Where Python's ``math`` raises
(``ValueError``/``OverflowError``) Rust returns NaN or an infinity, and so do
these; ``floor``/``ceil``/``round``/``trunc`` return Floats and keep the sign
of a zero result; ``round`` is half away from zero (not Python's banker's).

Matrices: the reference's ``F64Array`` fast lane has no Python counterpart,
so a matrix is the Record the Lex type alias names,
``{"rows": Int, "cols": Int, "data": [Float...]}`` (row-major); the legacy
Record shape is what ``unpack_matrix`` also accepts, so both read the same.

``decimal``: ``{"coefficient": Int, "exponent": Int}`` records, i64
arithmetic with the reference's checked/unchecked points (unchecked i64
arithmetic wraps, as a release build does).

When the compiled kernel is in use, the scalar ``math`` ops and
``decimal.add``/``sub``/``mul``/``compare`` come from the compiled
``lexfast.builtins._numeric_c`` (same semantics, same tests); otherwise, or
under ``LEXFAST_NO_EXTENSIONS``, from the Python definitions here.
"""

from __future__ import annotations

import math as _m
import os

from ..errors import EffectError
from ..kernel import COMPILED
from ..values import Map, debug_repr, rust_str_debug
from ._args import expect_dec as _expect_dec
from ._args import expect_float, expect_int, expect_list, expect_str, wrap_i64

_INF = float("inf")
_NAN = float("nan")
_U64 = (1 << 64) - 1
_U32 = (1 << 32) - 1
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
#: a matrix larger than this many elements is refused (the reference would
#: try to allocate it and abort the process; a Python list of 2^24 Floats is
#: 128 MB of pointers at least, several times that once the values differ)
_MAX_ELEMS = 1 << 24
_BIG_INT = 1 << 1000  # past this an int has no float (only a hostile, non-i64 value is one)
#: Cap on ``math.matmul``'s multiply-adds (m*k*n): stricter than the
#: reference (native speed, no cap); here the loop is Python's and holds the
#: GIL, so 2^23 (about a second) is the most one call may do.
MATMUL_MAX_WORK = 1 << 23


def _f(args: list) -> float:
    if args:
        x = args[0]
        if type(x) is float:
            return x
    return expect_float(args, 0)


def _f2(args: list) -> tuple:
    return expect_float(args, 0), expect_float(args, 1)


# -- scalar math ---------------------------------------------------------

def _exp(args: list) -> float:
    x = _f(args)
    try:
        return _m.exp(x)
    except OverflowError:
        return _INF


def _logf(fn):  # ln/log2/log10: negative -> NaN, zero -> -inf
    def op(args: list) -> float:
        x = _f(args)
        if x > 0.0:
            return fn(x)
        if x == 0.0:
            return -_INF
        return _NAN  # negative or NaN

    return op


def _sqrt(args: list) -> float:
    x = _f(args)
    if x < 0.0:
        return _NAN
    return _m.sqrt(x)


def _abs(args: list) -> float:
    return _m.fabs(_f(args))


def _trig(fn):  # sin/cos/tan/asin/acos: domain errors -> NaN
    def op(args: list) -> float:
        x = _f(args)
        try:
            return fn(x)
        except ValueError:
            return _NAN

    return op


def _atan(args: list) -> float:
    return _m.atan(_f(args))


def _integral(fn):  # floor/ceil/trunc: Float result, zero keeps x's sign
    def op(args: list) -> float:
        x = _f(args)
        if x != x or x in (_INF, -_INF):
            return x
        r = float(fn(x))
        return r if r else _m.copysign(0.0, x)

    return op


def _round(args: list) -> float:
    x = _f(args)
    if x != x or x in (_INF, -_INF):
        return x
    t = float(_m.trunc(x))
    if _m.fabs(x - t) >= 0.5:  # x - trunc(x) is exact
        t += _m.copysign(1.0, x)
    return t if t else _m.copysign(0.0, x)


def _is_odd_int(y: float) -> bool:
    return _m.isfinite(y) and y == _m.floor(y) and _m.fmod(y, 2.0) != 0.0


def _pow(args: list) -> float:
    x, y = _f2(args)
    try:
        return _m.pow(x, y)
    except OverflowError:
        return -_INF if x < 0.0 and _is_odd_int(y) else _INF
    except ValueError:
        if x == 0.0:  # 0 ** negative
            return -_INF if _m.copysign(1.0, x) < 0 and _is_odd_int(y) else _INF
        return _NAN  # negative base, non-integer exponent


def _atan2(args: list) -> float:
    y, x = _f2(args)
    return _m.atan2(y, x)


def _min(args: list) -> float:
    a, b = _f2(args)
    if a != a:
        return b
    if b != b:
        return a
    return b if b < a else a


def _max(args: list) -> float:
    a, b = _f2(args)
    if a != a:
        return b
    if b != b:
        return a
    return b if b > a else a


# -- matrices -----------------------------------------------------------

def _mat(r: int, c: int, data: list) -> dict:
    # F64Array { rows: r as u32, cols: c as u32, data }
    return {"rows": r & _U32, "cols": c & _U32, "data": data}


def _unpack(v: object) -> tuple:
    """``unpack_matrix``: ``(rows, cols, data)``, rows/cols as usize."""
    if type(v) is not dict and not (isinstance(v, dict) and not isinstance(v, Map)):
        raise EffectError(f"expected matrix, got {debug_repr(v)}")
    rows = v.get("rows")
    if type(rows) is not int:
        raise EffectError("matrix: missing/invalid `rows`")
    cols = v.get("cols")
    if type(cols) is not int:
        raise EffectError("matrix: missing/invalid `cols`")
    items = v.get("data")
    if not isinstance(items, list):
        raise EffectError("matrix: missing/invalid `data`")
    rows &= _U64
    cols &= _U64
    data = []
    for it in items:
        t = type(it)
        if t is float:
            data.append(it)
        elif t is int and -_BIG_INT < it < _BIG_INT:
            data.append(float(it))
        else:
            raise EffectError(f"matrix data: not numeric, got {debug_repr(it)}")
    if len(data) != (rows * cols) & _U64:
        raise EffectError(f"matrix: data len {len(data)} != {rows}*{cols}")
    if rows * cols != len(data):  # matched only modulo 2^64: the reference would index out of bounds
        raise EffectError(f"matrix: {rows}*{cols} overflows usize")
    return rows, cols, data


def _first(args: list) -> object:
    if not args:
        raise EffectError("missing argument")
    return args[0]


def _filled(name: str, value: float):
    def op(args: list) -> dict:
        r = expect_int(args, 0)
        c = expect_int(args, 1)
        if r < 0 or c < 0:
            raise EffectError(f"math.{name}: negative dim {r}x{c}")
        if r * c > _MAX_ELEMS:
            raise EffectError(f"math.{name}: {r}x{c} is too large")
        return _mat(r, c, [value] * (r * c))

    return op


def _num(v: object) -> float | None:
    t = type(v)
    if t is float:
        return v  # type: ignore[return-value]
    if t is int:
        return float(v)  # type: ignore[arg-type]
    return None


def _from_lists(args: list) -> dict:
    rows = expect_list(args, 0)
    if not rows:
        return _mat(0, 0, [])
    first = rows[0]
    if not isinstance(first, list):
        raise EffectError(f"math.from_lists: row 0 not List, got {debug_repr(first)}")
    c = len(first)
    data: list = []
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise EffectError(f"math.from_lists: row {i} not List, got {debug_repr(row)}")
        if len(row) != c:
            raise EffectError(f"math.from_lists: row {i} has {len(row)} cols, expected {c}")
        for j, v in enumerate(row):
            f = _num(v)
            if f is None:
                raise EffectError(f"math.from_lists: ({i},{j}) not numeric, got {debug_repr(v)}")
            data.append(f)
    return _mat(len(rows), c, data)


def _from_flat(args: list) -> dict:
    r = expect_int(args, 0)
    c = expect_int(args, 1)
    xs = expect_list(args, 2)
    if r < 0 or c < 0:
        raise EffectError(f"math.from_flat: negative dim {r}x{c}")
    if len(xs) != (r * c) & _U64:
        raise EffectError(f"math.from_flat: list len {len(xs)} != {r}*{c}")
    data = []
    for v in xs:
        f = _num(v)
        if f is None:
            raise EffectError(f"math.from_flat: non-numeric element {debug_repr(v)}")
        data.append(f)
    return _mat(r, c, data)


def _rows(args: list) -> int:
    return wrap_i64(_unpack(_first(args))[0])


def _cols(args: list) -> int:
    return wrap_i64(_unpack(_first(args))[1])


def _get(args: list) -> float:
    r, c, data = _unpack(_first(args))
    i = expect_int(args, 1) & _U64
    j = expect_int(args, 2) & _U64
    if i >= r or j >= c:
        raise EffectError(f"math.get: ({i},{j}) out of {r}x{c}")
    return data[i * c + j]


def _to_flat(args: list) -> list:
    return _unpack(_first(args))[2]


def _transpose(args: list) -> dict:
    r, c, data = _unpack(_first(args))
    if not data:
        return _mat(c, r, [])
    out = [0.0] * (r * c)
    for i in range(r):
        base = i * c
        for j in range(c):
            out[j * r + i] = data[base + j]
    return _mat(c, r, out)


def _matmul(args: list) -> dict:
    m, k1, a = _unpack(_first(args))
    if len(args) < 2:
        raise EffectError("math.matmul: missing arg 1")
    k2, n, b = _unpack(args[1])
    if k1 != k2:
        raise EffectError(f"math.matmul: dim mismatch {m}x{k1} · {k2}x{n}")
    if m * n > _MAX_ELEMS:
        raise EffectError(f"math.matmul: {m}x{n} is too large")
    if m * k1 * n > MATMUL_MAX_WORK:
        raise EffectError(f"math.matmul: {m}x{k1} · {k2}x{n} is too much work (more than {MATMUL_MAX_WORK} multiply-adds)")
    out = [0.0] * (m * n)
    if not out:
        return _mat(m, n, out)
    # the reference's loop order (i, k, j), so each sum adds in the same order
    for i in range(m):
        row = i * n
        for kk in range(k1):
            aik = a[i * k1 + kk]
            brow = kk * n
            for j in range(n):
                out[row + j] += aik * b[brow + j]
    return _mat(m, n, out)


def _scale(args: list) -> dict:
    s = expect_float(args, 0)
    if len(args) < 2:
        raise EffectError("math.scale: missing arg 1")
    r, c, data = _unpack(args[1])
    return _mat(r, c, [x * s for x in data])


def _addsub(op: str):
    neg = op == "sub"

    def fn(args: list) -> dict:
        ar, ac, a = _unpack(_first(args))
        if len(args) < 2:
            raise EffectError("math.add/sub: missing arg 1")
        br, bc, b = _unpack(args[1])
        if ar != br or ac != bc:
            raise EffectError(f"math.{op}: shape mismatch {ar}x{ac} vs {br}x{bc}")
        if neg:
            return _mat(ar, ac, [x - y for x, y in zip(a, b, strict=True)])
        return _mat(ar, ac, [x + y for x, y in zip(a, b, strict=True)])

    return fn


def _sig(x: float) -> float:
    try:
        e = _m.exp(-x)
    except OverflowError:
        e = _INF
    return 1.0 / (1.0 + e)


def _sigmoid(args: list) -> dict:
    r, c, data = _unpack(_first(args))
    return _mat(r, c, [_sig(x) for x in data])


# -- decimal ------------------------------------------------------------

def _dec(c: int, e: int) -> dict:
    return {"coefficient": c, "exponent": e}


def _pow10(n: int) -> int:
    if n < 0:
        raise EffectError(f"decimal.pow10: negative exponent {n}")
    if n > 18:
        raise EffectError(f"decimal.pow10: exponent {n} exceeds max (18)")
    return 10 ** n


def _checked(n: int, msg: str) -> int:
    if _I64_MIN <= n <= _I64_MAX:
        return n
    raise EffectError(msg)


def _align(ca: int, ea: int, cb: int, eb: int) -> tuple:
    if ea == eb:
        return ca, cb, ea
    if ea > eb:
        shift = wrap_i64(ea - eb)
        ca2 = _checked(ca * _pow10(shift), f"decimal: overflow aligning (shift {shift})")
        return ca2, cb, eb
    shift = wrap_i64(eb - ea)
    cb2 = _checked(cb * _pow10(shift), f"decimal: overflow aligning (shift {shift})")
    return ca, cb2, ea


def _tdivmod(a: int, b: int) -> tuple:
    """Rust's truncating ``/`` and ``%``."""
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return q, a - q * b


def _round_coef(c: int, e: int, target: int, mode: str) -> int:
    if e >= target:
        shift = wrap_i64(e - target)
        scale = _pow10(shift)
        return _checked(c * scale, f"decimal.round_to: overflow scaling (shift {shift})")
    shift = wrap_i64(target - e)
    divisor = _pow10(shift)
    q, r = _tdivmod(c, divisor)
    if r == 0:
        return q
    twice = abs(r) * 2
    up = q + 1 if r > 0 else q - 1
    if mode == "Down":
        return q
    if mode == "Up":
        return up
    if mode == "Floor":
        return q if r > 0 else q - 1
    if mode == "Ceiling":
        return q + 1 if r > 0 else q
    if mode == "HalfUp":
        return up if twice >= divisor else q
    if mode == "HalfDown":
        return up if twice > divisor else q
    if mode == "HalfEven":
        if twice > divisor:
            return up
        if twice == divisor:
            return q if q % 2 == 0 else up
        return q
    raise EffectError(
        f"decimal.round_to: unknown rounding mode {rust_str_debug(mode)}; "
        "valid modes: HalfUp HalfDown HalfEven Down Up Ceiling Floor")


def _to_str(c: int, e: int) -> str:
    if e == 0:
        return str(c)
    if e > 0:
        return str(_checked(c * _pow10(e), "decimal.to_str: overflow"))
    ne = wrap_i64(-e)
    scale = _pow10(ne)
    sign = "-" if c < 0 else ""
    abs_c = wrap_i64(abs(c))  # i64::MIN.abs() wraps to itself
    int_part, frac_part = _tdivmod(abs_c, scale)
    return f"{sign}{int_part}." + str(frac_part).rjust(ne, "0")


def _d_decimal(args: list) -> dict:
    return _dec(expect_int(args, 0), expect_int(args, 1))


def _d_zero(args: list) -> dict:
    return _dec(0, 0)


def _d_one(args: list) -> dict:
    return _dec(1, 0)


def _d_from_int(args: list) -> dict:
    return _dec(expect_int(args, 0), 0)


def _d_pow10(args: list) -> int:
    return _pow10(expect_int(args, 0))


def _d_add(args: list) -> dict:
    ca, ea = _expect_dec(args, 0)
    cb, eb = _expect_dec(args, 1)
    a2, b2, e = _align(ca, ea, cb, eb)
    return _dec(_checked(a2 + b2, "decimal.add: overflow"), e)


def _d_sub(args: list) -> dict:
    ca, ea = _expect_dec(args, 0)
    cb, eb = _expect_dec(args, 1)
    a2, b2, e = _align(ca, ea, cb, eb)
    return _dec(_checked(a2 - b2, "decimal.sub: overflow"), e)


def _d_mul(args: list) -> dict:
    ca, ea = _expect_dec(args, 0)
    cb, eb = _expect_dec(args, 1)
    return _dec(_checked(ca * cb, "decimal.mul: overflow"),
                _checked(ea + eb, "decimal.mul: exponent overflow"))


def _d_compare(args: list) -> int:
    ca, ea = _expect_dec(args, 0)
    cb, eb = _expect_dec(args, 1)
    a2, b2, _ = _align(ca, ea, cb, eb)
    return -1 if a2 < b2 else 1 if a2 > b2 else 0


def _d_is_zero(args: list) -> bool:
    return _expect_dec(args, 0)[0] == 0


def _d_is_positive(args: list) -> bool:
    return _expect_dec(args, 0)[0] > 0


def _d_is_negative(args: list) -> bool:
    return _expect_dec(args, 0)[0] < 0


def _d_negate(args: list) -> dict:
    c, e = _expect_dec(args, 0)
    return _dec(wrap_i64(-c), e)


def _d_abs(args: list) -> dict:
    c, e = _expect_dec(args, 0)
    return _dec(wrap_i64(abs(c)), e)


def _d_normalize(args: list) -> dict:
    c, e = _expect_dec(args, 0)
    if c == 0:
        return _dec(0, 0)
    while c % 10 == 0:  # a multiple of 10: the sign of % does not matter
        c = _tdivmod(c, 10)[0]
        e = wrap_i64(e + 1)
    return _dec(c, e)


def _d_round_to(args: list) -> dict:
    c, e = _expect_dec(args, 0)
    target = expect_int(args, 1)
    mode = expect_str(args, 2)
    return _dec(_round_coef(c, e, target, mode), target)


def _d_to_str(args: list) -> str:
    c, e = _expect_dec(args, 0)
    return _to_str(c, e)


# -- the compiled hot path -------------------------------------------------------

def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


_HOT = {
    "math_exp": _exp, "math_log": _logf(_m.log), "math_log2": _logf(_m.log2),
    "math_log10": _logf(_m.log10), "math_sqrt": _sqrt, "math_abs": _abs,
    "math_sin": _trig(_m.sin), "math_cos": _trig(_m.cos), "math_tan": _trig(_m.tan),
    "math_asin": _trig(_m.asin), "math_acos": _trig(_m.acos), "math_atan": _atan,
    "math_floor": _integral(_m.floor), "math_ceil": _integral(_m.ceil),
    "math_round": _round, "math_trunc": _integral(_m.trunc), "math_pow": _pow,
    "math_atan2": _atan2, "math_min": _min, "math_max": _max,
    "decimal_add": _d_add, "decimal_sub": _d_sub, "decimal_mul": _d_mul,
    "decimal_compare": _d_compare,
}
#: the Python definitions of the hot ops (what the twin serves), by name
PY_HOT = dict(_HOT)

#: whether the hot ops are the compiled ones (``lexfast.builtins._numeric_c``)
NUMERIC_COMPILED = False
if COMPILED and not _flag("LEXFAST_NO_EXTENSIONS"):
    try:
        from . import _numeric_c
    except ImportError:  # built without it: the Python definitions serve
        if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
            raise
    else:
        _HOT = {name: getattr(_numeric_c, name) for name in _HOT}
        NUMERIC_COMPILED = True


BUILTINS = {
    ("math", "exp"): _HOT["math_exp"],
    ("math", "log"): _HOT["math_log"],
    ("math", "log2"): _HOT["math_log2"],
    ("math", "log10"): _HOT["math_log10"],
    ("math", "sqrt"): _HOT["math_sqrt"],
    ("math", "abs"): _HOT["math_abs"],
    ("math", "sin"): _HOT["math_sin"],
    ("math", "cos"): _HOT["math_cos"],
    ("math", "tan"): _HOT["math_tan"],
    ("math", "asin"): _HOT["math_asin"],
    ("math", "acos"): _HOT["math_acos"],
    ("math", "atan"): _HOT["math_atan"],
    ("math", "floor"): _HOT["math_floor"],
    ("math", "ceil"): _HOT["math_ceil"],
    ("math", "round"): _HOT["math_round"],
    ("math", "trunc"): _HOT["math_trunc"],
    ("math", "pow"): _HOT["math_pow"],
    ("math", "atan2"): _HOT["math_atan2"],
    ("math", "min"): _HOT["math_min"],
    ("math", "max"): _HOT["math_max"],
    ("math", "zeros"): _filled("zeros", 0.0),
    ("math", "ones"): _filled("ones", 1.0),
    ("math", "from_lists"): _from_lists,
    ("math", "from_flat"): _from_flat,
    ("math", "rows"): _rows,
    ("math", "cols"): _cols,
    ("math", "get"): _get,
    ("math", "to_flat"): _to_flat,
    ("math", "transpose"): _transpose,
    ("math", "matmul"): _matmul,
    ("math", "scale"): _scale,
    ("math", "add"): _addsub("add"),
    ("math", "sub"): _addsub("sub"),
    ("math", "sigmoid"): _sigmoid,
    ("decimal", "decimal"): _d_decimal,
    ("decimal", "zero"): _d_zero,
    ("decimal", "one"): _d_one,
    ("decimal", "from_int"): _d_from_int,
    ("decimal", "pow10"): _d_pow10,
    ("decimal", "add"): _HOT["decimal_add"],
    ("decimal", "sub"): _HOT["decimal_sub"],
    ("decimal", "mul"): _HOT["decimal_mul"],
    ("decimal", "compare"): _HOT["decimal_compare"],
    ("decimal", "is_zero"): _d_is_zero,
    ("decimal", "is_positive"): _d_is_positive,
    ("decimal", "is_negative"): _d_is_negative,
    ("decimal", "negate"): _d_negate,
    ("decimal", "abs"): _d_abs,
    ("decimal", "normalize"): _d_normalize,
    ("decimal", "round_to"): _d_round_to,
    ("decimal", "to_str"): _d_to_str,
}
