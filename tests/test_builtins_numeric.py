"""math.* and decimal.* (lexfast/builtins/numeric.py) through
``DefaultHandler.dispatch``, against the reference's builtins.rs semantics.
Cases marked ``upstream:`` restate tests/std_math.rs and tests/std_decimal.rs."""

from __future__ import annotations

import math

import pytest

from lexfast import DefaultHandler, EffectError, Map, Policy

NAN = float("nan")
INF = float("inf")


@pytest.fixture
def call():
    h = DefaultHandler(Policy.pure())

    def run(kind, op, *args):
        return h.dispatch(kind, op, list(args))

    yield run
    h.close()


def m(*args):
    return ("math", *args)


def same(a: float, b: float) -> bool:
    """Bit-for-bit float equality (NaN == NaN, 0.0 != -0.0)."""
    if a != a:
        return b != b
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def close(a: float, b: float) -> bool:
    return abs(a - b) < 1e-12


# -- scalar math ---------------------------------------------------------------

def test_trig_upstream(call):
    # upstream: sin_zero_is_zero, cos_zero_is_one, sin_squared_plus_cos_squared,
    # tan_round_trips_through_atan, asin_acos_inverses, atan2_quadrants
    assert close(call("math", "sin", 0.0), 0.0)
    assert close(call("math", "cos", 0.0), 1.0)
    s, c = call("math", "sin", 0.7), call("math", "cos", 0.7)
    assert close(s * s + c * c, 1.0)
    assert close(call("math", "atan", call("math", "tan", 0.4)), 0.4)
    assert close(math.sin(call("math", "asin", 0.3)), 0.3)
    assert close(math.cos(call("math", "acos", 0.3)), 0.3)
    assert close(call("math", "atan2", 1.0, 1.0), math.pi / 4)
    assert close(call("math", "atan2", 1.0, -1.0), 3 * math.pi / 4)


def test_trig_domain_gives_nan_not_an_exception(call):
    for op in ("sin", "cos", "tan"):
        assert same(call("math", op, INF), NAN)
        assert same(call("math", op, NAN), NAN)
    assert same(call("math", "asin", 2.0), NAN)
    assert same(call("math", "acos", -1.5), NAN)
    assert call("math", "atan", INF) == math.pi / 2
    assert same(call("math", "atan2", 0.0, -0.0), math.pi)


def test_logs_upstream_and_rust_edges(call):
    # upstream: log2_powers_of_two, log10_powers_of_ten
    assert call("math", "log2", 8.0) == 3.0
    assert call("math", "log2", 1024.0) == 10.0
    assert call("math", "log10", 1000.0) == 3.0
    assert call("math", "log", math.e) == 1.0
    for op in ("log", "log2", "log10"):
        assert call("math", op, 0.0) == -INF
        assert call("math", op, -0.0) == -INF
        assert same(call("math", op, -1.0), NAN)
        assert same(call("math", op, NAN), NAN)
        assert call("math", op, INF) == INF


def test_exp_sqrt_abs(call):
    assert call("math", "exp", 0.0) == 1.0
    assert call("math", "exp", 1000.0) == INF  # overflow: inf, not OverflowError
    assert call("math", "exp", -INF) == 0.0
    assert call("math", "sqrt", 9.0) == 3.0
    assert same(call("math", "sqrt", -1.0), NAN)
    assert same(call("math", "sqrt", -0.0), -0.0)
    assert call("math", "sqrt", INF) == INF
    assert call("math", "abs", -2.5) == 2.5
    assert same(call("math", "abs", -0.0), 0.0)


def test_floor_ceil_round_trunc_upstream(call):
    # upstream: floor_ceil_round_trunc
    assert call("math", "floor", 2.5) == 2.0
    assert call("math", "ceil", 2.5) == 3.0
    assert call("math", "round", 2.5) == 3.0
    assert call("math", "trunc", 2.5) == 2.0
    assert call("math", "floor", -2.5) == -3.0
    assert call("math", "ceil", -2.5) == -2.0
    assert call("math", "trunc", -2.5) == -2.0


def test_round_is_half_away_from_zero_and_keeps_signed_zero(call):
    for x, want in ((0.5, 1.0), (1.5, 2.0), (-0.5, -1.0), (-2.5, -3.0), (2.4999, 2.0),
                    (0.49999999999999994, 0.0), (-0.4, -0.0), (4503599627370497.0,
                                                            4503599627370497.0)):
        assert same(call("math", "round", x), want), x
    assert same(call("math", "ceil", -0.5), -0.0)
    assert same(call("math", "trunc", -0.7), -0.0)
    assert same(call("math", "floor", -0.0), -0.0)
    for op in ("floor", "ceil", "round", "trunc"):
        assert call("math", op, INF) == INF
        assert call("math", op, -INF) == -INF
        assert same(call("math", op, NAN), NAN)
        assert type(call("math", op, 3.0)) is float


def test_pow_upstream_and_ieee_edges(call):
    # upstream: pow_basics
    assert call("math", "pow", 2.0, 10.0) == 1024.0
    assert call("math", "pow", 9.0, 0.5) == 3.0
    assert call("math", "pow", 10.0, 400.0) == INF
    assert call("math", "pow", -10.0, 401.0) == -INF
    assert call("math", "pow", -10.0, 400.0) == INF
    assert same(call("math", "pow", -8.0, 1.0 / 3.0), NAN)
    assert call("math", "pow", 0.0, -1.0) == INF
    assert call("math", "pow", -0.0, -1.0) == -INF
    assert call("math", "pow", -0.0, -2.0) == INF
    assert call("math", "pow", 1.0, NAN) == 1.0
    assert call("math", "pow", NAN, 0.0) == 1.0


def test_min_max_upstream_and_nan(call):
    # upstream: min_max_basics
    assert call("math", "min", 1.0, 2.0) == 1.0
    assert call("math", "max", 1.0, 2.0) == 2.0
    assert call("math", "min", NAN, 2.0) == 2.0  # Rust's f64::min ignores a NaN
    assert call("math", "max", 1.0, NAN) == 1.0
    assert same(call("math", "max", NAN, NAN), NAN)


def test_scalar_argument_errors(call):
    with pytest.raises(EffectError, match=r"^expected Float, got Int\(2\)$"):
        call("math", "sqrt", 2)
    with pytest.raises(EffectError, match="^missing argument$"):
        call("math", "exp")
    with pytest.raises(EffectError, match=r"^expected Float, got Bool\(true\)$"):
        call("math", "pow", 2.0, True)
    with pytest.raises(EffectError, match="^missing argument$"):
        call("math", "atan2", 1.0)


# -- matrices ------------------------------------------------------------------

def mat(rows, cols, data):
    return {"rows": rows, "cols": cols, "data": data}


def test_zeros_ones(call):
    assert call("math", "zeros", 2, 3) == mat(2, 3, [0.0] * 6)
    assert call("math", "ones", 1, 2) == mat(1, 2, [1.0, 1.0])
    assert call("math", "zeros", 0, 5) == mat(0, 5, [])
    with pytest.raises(EffectError, match=r"^math.zeros: negative dim -1x2$"):
        call("math", "zeros", -1, 2)
    with pytest.raises(EffectError, match=r"^math.ones: negative dim 1x-2$"):
        call("math", "ones", 1, -2)
    with pytest.raises(EffectError, match=r"^expected Int, got Float\(1.0\)$"):
        call("math", "zeros", 1.0, 2)


def test_from_lists(call):
    got = call("math", "from_lists", [[1, 2.5], [3.0, -4]])
    assert got == mat(2, 2, [1.0, 2.5, 3.0, -4.0])
    assert all(type(x) is float for x in got["data"])
    assert call("math", "from_lists", []) == mat(0, 0, [])
    assert call("math", "from_lists", [[], []]) == mat(2, 0, [])
    with pytest.raises(EffectError, match=r"^math.from_lists: row 0 not List, got Int\(1\)$"):
        call("math", "from_lists", [1])
    with pytest.raises(EffectError, match=r"^math.from_lists: row 1 not List, got Str\(\"x\"\)$"):
        call("math", "from_lists", [[1.0], "x"])
    with pytest.raises(EffectError, match=r"^math.from_lists: row 1 has 1 cols, expected 2$"):
        call("math", "from_lists", [[1.0, 2.0], [3.0]])
    with pytest.raises(EffectError,
                       match=r"^math.from_lists: \(0,1\) not numeric, got Bool\(true\)$"):
        call("math", "from_lists", [[1.0, True]])
    with pytest.raises(EffectError, match=r"^expected List, got Int\(3\)$"):
        call("math", "from_lists", 3)


def test_from_flat(call):
    assert call("math", "from_flat", 2, 2, [1, 2, 3, 4.0]) == mat(2, 2, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(EffectError, match=r"^math.from_flat: list len 3 != 2\*2$"):
        call("math", "from_flat", 2, 2, [1, 2, 3])
    with pytest.raises(EffectError, match=r"^math.from_flat: negative dim -2x2$"):
        call("math", "from_flat", -2, 2, [])
    with pytest.raises(EffectError, match=r"^math.from_flat: non-numeric element Str\(\"a\"\)$"):
        call("math", "from_flat", 1, 1, ["a"])


def test_rows_cols_get_to_flat(call):
    a = call("math", "from_lists", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert call("math", "rows", a) == 2
    assert call("math", "cols", a) == 3
    assert call("math", "get", a, 1, 2) == 6.0
    assert call("math", "get", a, 0, 0) == 1.0
    assert call("math", "to_flat", a) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    with pytest.raises(EffectError, match=r"^math.get: \(2,0\) out of 2x3$"):
        call("math", "get", a, 2, 0)
    # a negative index is a usize in the reference: far out of range
    with pytest.raises(EffectError, match=r"^math.get: \(0,18446744073709551615\) out of 2x3$"):
        call("math", "get", a, 0, -1)
    with pytest.raises(EffectError, match="^missing argument$"):
        call("math", "rows")


def test_legacy_record_matrices_and_unpack_errors(call):
    # a hand-built Record with Int data is a matrix too (unpack_matrix)
    assert call("math", "to_flat", mat(1, 2, [1, 2])) == [1.0, 2.0]
    with pytest.raises(EffectError, match=r"^expected matrix, got Int\(1\)$"):
        call("math", "rows", 1)
    with pytest.raises(EffectError, match=r"^expected matrix, got Map\(\{\}\)$"):
        call("math", "rows", Map())
    with pytest.raises(EffectError, match=r"^matrix: missing/invalid `rows`$"):
        call("math", "rows", {"cols": 1, "data": []})
    with pytest.raises(EffectError, match=r"^matrix: missing/invalid `cols`$"):
        call("math", "rows", {"rows": 1, "cols": 1.0, "data": []})
    with pytest.raises(EffectError, match=r"^matrix: missing/invalid `data`$"):
        call("math", "rows", {"rows": 1, "cols": 1, "data": (1.0,)})
    with pytest.raises(EffectError, match=r"^matrix data: not numeric, got Str\(\"x\"\)$"):
        call("math", "rows", mat(1, 1, ["x"]))
    with pytest.raises(EffectError, match=r"^matrix: data len 1 != 2\*1$"):
        call("math", "rows", mat(2, 1, [1.0]))


def test_transpose(call):
    a = call("math", "from_lists", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert call("math", "transpose", a) == mat(3, 2, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
    assert call("math", "transpose", mat(0, 3, [])) == mat(3, 0, [])


def test_matmul(call):
    a = call("math", "from_lists", [[1.0, 2.0], [3.0, 4.0]])
    b = call("math", "from_lists", [[5.0], [6.0]])
    assert call("math", "matmul", a, b) == mat(2, 1, [17.0, 39.0])
    ident = call("math", "from_lists", [[1.0, 0.0], [0.0, 1.0]])
    assert call("math", "matmul", a, ident) == a
    with pytest.raises(EffectError, match=r"^math.matmul: dim mismatch 2x1 · 2x1$"):
        call("math", "matmul", b, b)
    with pytest.raises(EffectError, match=r"^math.matmul: missing arg 1$"):
        call("math", "matmul", a)
    with pytest.raises(EffectError, match="^missing argument$"):
        call("math", "matmul")


def test_scale_add_sub(call):
    a = call("math", "from_lists", [[1.0, -2.0]])
    b = call("math", "from_lists", [[0.5, 0.5]])
    assert call("math", "scale", 2.0, a) == mat(1, 2, [2.0, -4.0])
    assert call("math", "add", a, b) == mat(1, 2, [1.5, -1.5])
    assert call("math", "sub", a, b) == mat(1, 2, [0.5, -2.5])
    with pytest.raises(EffectError, match=r"^math.scale: missing arg 1$"):
        call("math", "scale", 2.0)
    with pytest.raises(EffectError, match=r"^expected Float, got Int\(2\)$"):
        call("math", "scale", 2, a)
    with pytest.raises(EffectError, match=r"^math.add/sub: missing arg 1$"):
        call("math", "sub", a)
    with pytest.raises(EffectError, match=r"^math.sub: shape mismatch 1x2 vs 2x1$"):
        call("math", "sub", a, call("math", "transpose", b))
    with pytest.raises(EffectError, match=r"^math.add: shape mismatch 1x2 vs 2x1$"):
        call("math", "add", a, call("math", "transpose", b))


def test_sigmoid(call):
    got = call("math", "sigmoid", call("math", "from_lists", [[0.0, 1000.0, -1000.0]]))
    assert got == mat(1, 3, [0.5, 1.0, 0.0])  # exp overflow is inf, not an error
    assert close(call("math", "sigmoid", mat(1, 1, [2.0]))["data"][0],
                 1.0 / (1.0 + math.exp(-2.0)))


# -- decimal -------------------------------------------------------------------

def dec(c, e):
    return {"coefficient": c, "exponent": e}


I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


def test_constructors_upstream(call):
    # upstream: decimal_constructor, zero_and_one, from_int, pow10
    assert call("decimal", "decimal", 12345, -2) == dec(12345, -2)
    assert list(call("decimal", "decimal", 1, 2)) == ["coefficient", "exponent"]
    assert call("decimal", "zero") == dec(0, 0)
    assert call("decimal", "one") == dec(1, 0)
    assert call("decimal", "from_int", 42) == dec(42, 0)
    assert call("decimal", "from_int", -7) == dec(-7, 0)
    assert call("decimal", "pow10", 0) == 1
    assert call("decimal", "pow10", 3) == 1000
    assert call("decimal", "pow10", 18) == 10**18
    with pytest.raises(EffectError, match=r"^decimal.pow10: exponent 19 exceeds max \(18\)$"):
        call("decimal", "pow10", 19)
    with pytest.raises(EffectError, match=r"^decimal.pow10: negative exponent -1$"):
        call("decimal", "pow10", -1)
    with pytest.raises(EffectError, match=r"^expected Int, got Str\(\"1\"\)$"):
        call("decimal", "decimal", "1", 0)


def test_arithmetic_upstream(call):
    # upstream: add_same_exponent, add_different_exponents, sub_basic, mul_basic,
    # fee_calculation
    assert call("decimal", "add", dec(125, -2), dec(75, -2)) == dec(200, -2)
    assert call("decimal", "add", dec(150, -2), dec(5, -3)) == dec(1505, -3)
    assert call("decimal", "sub", dec(200, -2), dec(75, -2)) == dec(125, -2)
    assert call("decimal", "mul", dec(125, -2), dec(5, -4)) == dec(625, -6)
    fee = call("decimal", "mul", call("decimal", "decimal", 125000, -2),
               call("decimal", "decimal", 5, -4))
    assert call("decimal", "round_to", fee, -2, "HalfUp") == dec(63, -2)


def test_arithmetic_overflow(call):
    with pytest.raises(EffectError, match="^decimal.add: overflow$"):
        call("decimal", "add", dec(I64_MAX, 0), dec(1, 0))
    with pytest.raises(EffectError, match="^decimal.sub: overflow$"):
        call("decimal", "sub", dec(I64_MIN, 0), dec(1, 0))
    with pytest.raises(EffectError, match="^decimal.mul: overflow$"):
        call("decimal", "mul", dec(2**62, 0), dec(2, 0))
    with pytest.raises(EffectError, match="^decimal.mul: exponent overflow$"):
        call("decimal", "mul", dec(1, I64_MAX), dec(1, 1))
    with pytest.raises(EffectError, match=r"^decimal: overflow aligning \(shift 2\)$"):
        call("decimal", "add", dec(I64_MAX, 2), dec(1, 0))
    with pytest.raises(EffectError, match=r"^decimal: overflow aligning \(shift 1\)$"):
        call("decimal", "compare", dec(1, 0), dec(I64_MAX, 1))
    with pytest.raises(EffectError, match=r"^decimal.pow10: exponent 19 exceeds max \(18\)$"):
        call("decimal", "add", dec(1, 19), dec(1, 0))
    # the exponent difference wraps in i64 (release arithmetic), then pow10 refuses it
    with pytest.raises(EffectError,
                       match=r"^decimal.pow10: negative exponent -9223372036854775808$"):
        call("decimal", "add", dec(1, I64_MAX), dec(1, -1))


def test_compare_upstream(call):
    # upstream: compare_equal, compare_lt_gt
    assert call("decimal", "compare", dec(100, -2), dec(1, 0)) == 0
    assert call("decimal", "compare", dec(99, -2), dec(1, 0)) == -1
    assert call("decimal", "compare", dec(101, -2), dec(1, 0)) == 1


def test_predicates_upstream(call):
    # upstream: predicates
    assert call("decimal", "is_positive", dec(5, -1)) is True
    assert call("decimal", "is_positive", dec(-5, -1)) is False
    assert call("decimal", "is_negative", dec(-5, -1)) is True
    assert call("decimal", "is_negative", dec(5, -1)) is False
    assert call("decimal", "is_zero", dec(0, 3)) is True
    assert call("decimal", "is_zero", dec(1, 0)) is False


def test_negate_abs_upstream(call):
    # upstream: negate_and_abs
    assert call("decimal", "negate", dec(125, -2)) == dec(-125, -2)
    assert call("decimal", "negate", dec(-63, -2)) == dec(63, -2)
    assert call("decimal", "abs", dec(-63, -2)) == dec(63, -2)
    assert call("decimal", "abs", dec(63, -2)) == dec(63, -2)
    # i64::MIN has no positive counterpart: the unchecked ops wrap to itself
    assert call("decimal", "negate", dec(I64_MIN, 0)) == dec(I64_MIN, 0)
    assert call("decimal", "abs", dec(I64_MIN, 0)) == dec(I64_MIN, 0)


def test_normalize_upstream(call):
    # upstream: normalize_removes_trailing_zeros
    assert call("decimal", "normalize", dec(200, -2)) == dec(2, 0)
    assert call("decimal", "normalize", dec(1500, -3)) == dec(15, -1)
    assert call("decimal", "normalize", dec(0, -5)) == dec(0, 0)
    assert call("decimal", "normalize", dec(-1200, 1)) == dec(-12, 3)
    assert call("decimal", "normalize", dec(7, -3)) == dec(7, -3)


def test_round_to_upstream(call):
    # upstream: round_half_up, round_half_down, round_half_even, round_floor_ceiling,
    # round_exact_no_rounding
    def r(c, e, target, mode):
        return call("decimal", "round_to", dec(c, e), target, mode)

    assert r(625, -3, -2, "HalfUp") == dec(63, -2)
    assert r(625, -3, -2, "HalfDown") == dec(62, -2)
    assert r(625, -3, -2, "HalfEven") == dec(62, -2)
    assert r(635, -3, -2, "HalfEven") == dec(64, -2)
    assert r(627, -3, -2, "Floor") == dec(62, -2)
    assert r(627, -3, -2, "Ceiling") == dec(63, -2)
    assert r(-627, -3, -2, "Floor") == dec(-63, -2)
    assert r(-627, -3, -2, "Ceiling") == dec(-62, -2)
    assert r(6, -1, -2, "HalfUp") == dec(60, -2)


def test_round_to_every_mode_on_negative_halves(call):
    def r(c, mode):
        return call("decimal", "round_to", dec(c, -1), 0, mode)["coefficient"]

    # -2.5 / -2.4 / -2.6 / 2.5, truncating division as Rust's / and %
    assert [r(-25, md) for md in ("Down", "Up", "Floor", "Ceiling", "HalfUp", "HalfDown",
                                  "HalfEven")] == [-2, -3, -3, -2, -3, -2, -2]
    assert [r(-24, md) for md in ("HalfUp", "HalfDown", "HalfEven")] == [-2, -2, -2]
    assert [r(-26, md) for md in ("HalfUp", "HalfDown", "HalfEven")] == [-3, -3, -3]
    assert [r(25, md) for md in ("Down", "Up", "Floor", "Ceiling", "HalfEven")] == [2, 3, 2, 3, 2]
    assert r(-35, "HalfEven") == -4
    assert r(-30, "Up") == -3  # exact: no rounding


def test_round_to_errors(call):
    with pytest.raises(EffectError, match=r'^decimal.round_to: unknown rounding mode "halfup"; '
                                          r"valid modes: HalfUp HalfDown HalfEven Down Up "
                                          r"Ceiling Floor$"):
        call("decimal", "round_to", dec(625, -3), -2, "halfup")
    # an exact scale never looks at the mode
    assert call("decimal", "round_to", dec(6, -1), -1, "nope") == dec(6, -1)
    with pytest.raises(EffectError, match=r"^decimal.round_to: overflow scaling \(shift 2\)$"):
        call("decimal", "round_to", dec(I64_MAX, 0), -2, "Down")
    with pytest.raises(EffectError, match=r"^expected Str, got Int\(1\)$"):
        call("decimal", "round_to", dec(1, 0), 0, 1)


def test_to_str_upstream(call):
    # upstream: to_str_fractional, to_str_integer
    assert call("decimal", "to_str", dec(12345, -2)) == "123.45"
    assert call("decimal", "to_str", dec(63, -2)) == "0.63"
    assert call("decimal", "to_str", dec(-63, -2)) == "-0.63"
    assert call("decimal", "to_str", dec(0, -2)) == "0.00"
    assert call("decimal", "to_str", dec(42, 0)) == "42"
    assert call("decimal", "to_str", dec(7, 2)) == "700"
    assert call("decimal", "to_str", dec(-5, 0)) == "-5"


def test_to_str_edges(call):
    assert call("decimal", "to_str", dec(5, -3)) == "0.005"
    assert call("decimal", "to_str", dec(-1, -18)) == "-0.000000000000000001"
    with pytest.raises(EffectError, match="^decimal.to_str: overflow$"):
        call("decimal", "to_str", dec(10**18, 1))
    with pytest.raises(EffectError, match=r"^decimal.pow10: exponent 19 exceeds max \(18\)$"):
        call("decimal", "to_str", dec(1, -19))
    # i64::MIN.abs() wraps: the reference prints its negative parts as they are
    assert call("decimal", "to_str", dec(I64_MIN, -7)) == "--922337203685.-4775808"


def test_decimal_argument_errors(call):
    with pytest.raises(EffectError, match="^decimal: missing argument$"):
        call("decimal", "is_zero")
    with pytest.raises(EffectError, match=r"^decimal: expected \{ coefficient, exponent \} "
                                          r"record, got Int\(1\)$"):
        call("decimal", "abs", 1)
    with pytest.raises(EffectError, match=r"^decimal: expected \{ coefficient, exponent \} "
                                          r"record, got Map\(\{\}\)$"):
        call("decimal", "abs", Map())
    with pytest.raises(EffectError, match="^decimal: missing or invalid 'coefficient' field$"):
        call("decimal", "abs", {"coefficient": 1.0, "exponent": 0})
    with pytest.raises(EffectError, match="^decimal: missing or invalid 'exponent' field$"):
        call("decimal", "abs", {"coefficient": 1})
    with pytest.raises(EffectError, match="^decimal: missing argument$"):
        call("decimal", "add", dec(1, 0))
