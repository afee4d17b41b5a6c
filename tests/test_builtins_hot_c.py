"""The compiled hot ops of ``bytes`` (_binary_c.pyx), ``math``/``decimal``
(_numeric_c.pyx) and ``json.parse`` (_json_c.pyx) against the Python
definitions they replace (binary.py, numeric.py, formats.py): the same value
or the same error text for every argument shape, with the edges a C fast
path gets wrong (Bool vs Int, i64 bounds, subclasses, bytearray/memoryview,
too-short argument lists, NaN/inf, huge inputs). Run once per core
(``LEXFAST_NO_EXTENSIONS=1`` for the pure-Python one): on the twin the table
holds the Python definitions and the comparisons are trivially equal, the
value checks still run.
"""

from __future__ import annotations

import glob
import json
import math
import os
import struct

import pytest

import lexfast
from lexfast import DefaultHandler, EffectError, Policy
from lexfast import builtins as B
from lexfast.builtins import binary as BIN
from lexfast.builtins import numeric as NUM
from lexfast.kernel import Variant

I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)


def _flag(name):
    return os.environ.get(name, "").strip() not in ("", "0")


@pytest.fixture(scope="module")
def h():
    handler = DefaultHandler(Policy.pure())
    yield handler
    handler.close()


def _outcome(fn, args):
    try:
        r = fn(args)
    except EffectError as e:
        return ("err", str(e))
    if isinstance(r, float) and r != r:
        return ("ok", "NaN")
    if isinstance(r, float):
        return ("ok", r, math.copysign(1.0, r), type(r))
    if isinstance(r, Variant):
        return ("ok", r, type(r.args[0]) if r.args else None)
    return ("ok", r, type(r))


class Sub(bytes):
    pass


class FSub(float):
    pass


class ISub(int):
    pass


# -- the table follows the kernel ------------------------------------------------

@pytest.mark.parametrize("mod, flag, so", [(BIN, "BINARY_COMPILED", "_binary_c"),
                                           (NUM, "NUMERIC_COMPILED", "_numeric_c")])
def test_the_hot_ops_follow_the_kernel(mod, flag, so):
    compiled = getattr(mod, flag)
    if _flag("LEXFAST_NO_EXTENSIONS") or not lexfast.COMPILED:
        assert not compiled
    elif _flag("LEXFAST_REQUIRE_EXTENSIONS"):
        assert compiled
    for (kind, op), fn in mod.BUILTINS.items():
        name = f"{kind}_{op}"
        if name in mod.PY_HOT:
            assert B.TABLE[kind][op] is fn
            if compiled:
                assert fn.__module__ == f"lexfast.builtins.{so}", name
            else:
                assert fn is mod.PY_HOT[name], name


@pytest.mark.parametrize("so", ["_binary_c", "_numeric_c", "_json_c"])
def test_the_compiled_ops_are_not_stale(so):
    here = os.path.dirname(BIN.__file__)
    pyx = os.path.join(here, f"{so}.pyx")
    if not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(here)), "setup.py")):
        pytest.skip("an installed build (its .pyx ships beside it for reference)")
    for lib in glob.glob(os.path.join(here, f"{so}.*.so")):
        assert os.path.getmtime(lib) >= os.path.getmtime(pyx), \
            f"{lib} is older than {pyx}: rebuild it (python setup.py build_ext --inplace)"


# -- bytes ---------------------------------------------------------------------

_BYTES_VALUES = [b"", b"a", b"hello", bytes(range(256)), b"\xff\xfe", b"\xe2\x82", b"\xc3\xa9x",
                 bytearray(b"ab"), memoryview(b"xyz"), Sub(b"sub"), "str", "é\ud800", 0, 1, -1, 2,
                 7, 255, 256, 65535, I64_MAX, I64_MIN, 1 << 63, -(1 << 63) - 1, 1 << 64, True,
                 False, None, 1.5, ISub(3), [b"a"]]


def _bytes_arglists():
    vals = _BYTES_VALUES
    yield []
    for a in vals:
        yield [a]
        for b in vals:
            yield [a, b]
    for a in (b"", b"abcdef", bytearray(b"abcdef"), 5, None):
        for lo in (0, 1, 3, 6, 7, -1, I64_MIN, I64_MAX, 1 << 64, True, None):
            for hi in (0, 2, 6, 7, -1, -2, I64_MAX, 1 << 64, False):
                yield [a, lo, hi]


def test_bytes_hot_ops_match_the_python_definitions():
    for name, py in BIN.PY_HOT.items():
        kind, op = name.split("_", 1)
        fn = B.TABLE[kind][op]
        for args in _bytes_arglists():
            assert _outcome(fn, list(args)) == _outcome(py, list(args)), (name, args)
        assert _outcome(fn, ()) == _outcome(py, ())  # not a list: the checks still word it


def test_bytes_hot_ops_match_generated():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    value = st.one_of(st.binary(max_size=12), st.text(max_size=6),
                      st.integers(min_value=-(1 << 65), max_value=1 << 65),
                      st.integers(min_value=-3, max_value=20), st.booleans(), st.none())

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(sorted(BIN.PY_HOT)), st.lists(value, max_size=4))
    def check(name, args):
        kind, op = name.split("_", 1)
        assert _outcome(B.TABLE[kind][op], list(args)) == _outcome(BIN.PY_HOT[name], list(args))

    check()


def test_bytes_values(h):
    def d(op, *a):
        return h.dispatch("bytes", op, list(a))

    assert d("len", bytearray(b"abc")) == 3
    assert d("len", memoryview(b"abcd")) == 4
    assert d("eq", b"ab", bytearray(b"ab")) is True
    assert d("concat", memoryview(b"a"), b"b") == b"ab"
    assert type(d("concat", Sub(b"a"), Sub(b"b"))) is bytes
    assert d("slice", b"abcdef", 1, 3) == b"bc"
    assert d("slice", b"abcdef", 6, 6) == b""
    with pytest.raises(EffectError, match=r"out of range \[18446744073709551615\.\.2\] of 6"):
        d("slice", b"abcdef", -1, 2)
    with pytest.raises(EffectError, match="expected Int, got Bool"):
        d("slice", b"abcdef", True, 2)
    with pytest.raises(EffectError, match="outside i64"):
        d("slice", b"abcdef", 0, 1 << 63)
    with pytest.raises(EffectError, match="missing argument"):
        d("slice", b"abcdef", 0)
    assert d("u8", -1) == b"\xff"
    assert d("u16_le", 0x1234_5678) == b"\x78\x56"
    assert d("u32_le", -2) == b"\xfe\xff\xff\xff"
    assert d("u64_le", I64_MIN) == struct.pack("<q", I64_MIN)
    big = bytes(range(8)) * 2
    assert d("u64_le_at", struct.pack("<q", -5), 0).args == (-5,)
    assert d("u32_le_at", big, 4).args == (struct.unpack_from("<I", big, 4)[0],)
    assert d("u16_le_at", big, 14).args == (0x0706,)
    assert d("u16_le_at", big, 15).args[0] == "bytes.u16_le_at: offset 15 out of range of 16 bytes"
    assert d("u8_at", big, -1).args[0] == \
        "bytes.u8_at: offset 18446744073709551615 out of range of 16 bytes"
    assert d("u8_at", big, I64_MAX).name == "Err"
    assert d("from_str", "é\ud800") == "é\ud800".encode("utf-8", "surrogatepass")
    assert d("to_str", b"\xe2\x82").args == ("incomplete utf-8 byte sequence from index 0",)
    huge = b"x" * (1 << 20)
    assert d("len", huge) == 1 << 20
    assert d("slice", huge, 1, 1 << 20) == huge[1:]


# -- math / decimal ------------------------------------------------------------

_FLOATS = [0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, 1.0, -1.0, 2.0,
           3.0, -3.0, 1e308, -1e308, 5e-324, -5e-324, 4503599627370497.0, 1e16 + 1,
           math.inf, -math.inf, math.nan, math.pi, -math.e, 1e-320, 710.0, -745.5, 0.1]
_NOT_FLOATS = [FSub(2.5), 1, 0, True, None, "1.0", I64_MAX]


def test_math_hot_ops_match_the_python_definitions():
    vals = _FLOATS + _NOT_FLOATS
    for name, py in NUM.PY_HOT.items():
        if not name.startswith("math_"):
            continue
        fn = B.TABLE["math"][name[5:]]
        assert _outcome(fn, []) == _outcome(py, [])
        for a in vals:
            assert _outcome(fn, [a]) == _outcome(py, [a]), (name, a)
            for b in vals:
                assert _outcome(fn, [a, b]) == _outcome(py, [a, b]), (name, a, b)


def test_math_hot_ops_match_generated():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    names = sorted(n for n in NUM.PY_HOT if n.startswith("math_"))
    value = st.one_of(st.floats(), st.floats(min_value=-4, max_value=4),
                      st.integers(min_value=-3, max_value=3).map(float), st.integers(), st.none())

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(names), st.lists(value, max_size=3))
    def check(name, args):
        fn = B.TABLE["math"][name[5:]]
        assert _outcome(fn, list(args)) == _outcome(NUM.PY_HOT[name], list(args))

    check()


def _dec(c, e):
    return {"coefficient": c, "exponent": e}


def test_decimal_hot_ops_match_the_python_definitions():
    from lexfast.values import Map

    decs = [_dec(c, e) for c in (0, 1, -1, 7, 123, -45, 10**17, I64_MAX, I64_MIN, 922337203685477580)
            for e in (0, 1, -1, 2, -2, 18, -18, 19, -19, I64_MAX, I64_MIN)]
    bad = [None, 3, Map({"coefficient": 1, "exponent": 0}), _dec(True, 0), _dec(1, 1 << 63),
           {"coefficient": 1}, _dec(1.0, 0), {"coefficient": ISub(2), "exponent": 1}]
    for name in ("decimal_add", "decimal_sub", "decimal_mul", "decimal_compare"):
        fn = B.TABLE["decimal"][name[8:]]
        py = NUM.PY_HOT[name]
        assert _outcome(fn, []) == _outcome(py, [])
        for a in decs + bad:
            assert _outcome(fn, [a]) == _outcome(py, [a]), (name, a)
            for b in decs[::3] + bad:
                assert _outcome(fn, [a, b]) == _outcome(py, [a, b]), (name, a, b)
                assert _outcome(fn, [b, a]) == _outcome(py, [b, a]), (name, b, a)


def test_decimal_hot_ops_match_generated():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    i64 = st.one_of(st.integers(min_value=I64_MIN, max_value=I64_MAX),
                    st.integers(min_value=-25, max_value=25))
    dec = st.builds(_dec, i64, i64)

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["decimal_add", "decimal_sub", "decimal_mul", "decimal_compare"]),
           dec, dec)
    def check(name, a, b):
        fn = B.TABLE["decimal"][name[8:]]
        assert _outcome(fn, [a, b]) == _outcome(NUM.PY_HOT[name], [a, b])

    check()


def test_math_values(h):
    def m(op, *a):
        return h.dispatch("math", op, list(a))

    assert m("sqrt", -1.0) != m("sqrt", -1.0)
    assert m("exp", 1000.0) == math.inf
    assert m("log", 0.0) == -math.inf
    assert m("round", 2.5) == 3.0 and m("round", -2.5) == -3.0
    assert math.copysign(1.0, m("round", -0.4)) == -1.0
    assert math.copysign(1.0, m("ceil", -0.5)) == -1.0
    assert m("pow", -0.0, -1.0) == -math.inf
    assert m("pow", 10.0, 400.0) == math.inf
    assert m("pow", -8.0, 1.0 / 3) != m("pow", -8.0, 1.0 / 3)
    assert m("min", math.nan, 1.0) == 1.0 and m("max", 2.0, math.nan) == 2.0
    assert m("abs", FSub(-2.5)) == 2.5
    with pytest.raises(EffectError, match=r"expected Float, got Int\(2\)"):
        m("sqrt", 2)
    with pytest.raises(EffectError, match="expected Float, got Bool"):
        m("pow", 2.0, True)
    with pytest.raises(EffectError, match="missing argument"):
        m("atan2", 1.0)


def test_decimal_values(h):
    def dd(op, *a):
        return h.dispatch("decimal", op, list(a))

    assert dd("add", _dec(15, -1), _dec(2, 0)) == _dec(35, -1)
    assert dd("sub", _dec(1, 2), _dec(1, 0)) == _dec(99, 0)
    assert dd("mul", _dec(-3, -2), _dec(4, 1)) == _dec(-12, -1)
    assert dd("compare", _dec(10, 0), _dec(1, 1)) == 0
    with pytest.raises(EffectError, match="decimal.add: overflow"):
        dd("add", _dec(I64_MAX, 0), _dec(1, 0))
    with pytest.raises(EffectError, match=r"exceeds max \(18\)"):
        dd("add", _dec(1, 19), _dec(1, 0))
    with pytest.raises(EffectError, match="negative exponent"):
        dd("compare", _dec(1, I64_MAX), _dec(1, -1))  # the shift wraps, as i64 does
    with pytest.raises(EffectError, match=r"overflow aligning \(shift 18\)"):
        dd("sub", _dec(10, 18), _dec(1, 0))
    with pytest.raises(EffectError, match="exponent overflow"):
        dd("mul", _dec(1, I64_MAX), _dec(1, 1))
    with pytest.raises(EffectError, match="decimal: missing argument"):
        dd("mul", _dec(1, 0))


# -- json.parse: the compiled fast path against the Python path ----------------

def _canon(v):
    """``v`` with types, key order and the sign of zero made visible."""
    t = type(v)
    if t is dict:
        return ("dict", [(k, _canon(x)) for k, x in v.items()])
    if t is list:
        return ("list", [_canon(x) for x in v])
    if t is float:
        return ("float", repr(v), math.copysign(1.0, v))
    if isinstance(v, Variant):
        return ("variant", v.name, [_canon(x) for x in v.args])
    return (t.__name__, v)


def _json_outcomes(s):
    from lexfast.builtins import formats as F

    good, v = F.loads(s)
    pgood, pv = F.loads_py(s)
    return (good, _canon(v)), (pgood, _canon(pv))


_JSON_CASES = [
    "", " ", "0", "-0", "-0.0", "-0e1", "[-0]", '{"a":-0}', "-01", "1", "-1", "1.5", "1e5", "1E+05",
    "1e400", "1e-400", "1e999", "-1e308", "0.1e-99", "1e99", "1e100", "1e-007",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "999999999999999999", "1000000000000000000", "12345678901234567890.5", "0.12345678901234567890123",
    "NaN", "Infinity", "-Infinity", "[NaN]", "nan", "true", "false", "null", "tru", "nul", "t",
    '"a"', '"\\ud800"', '"\\ud83d\\ude00"', '"\\udc00"', '"\\uD83D\\uDE00"', '"x\\ud800y"', '"\ud800"',
    '"\\u00e9"', '"é日本😀"', '"\\\\ud800"', '"\x01"', '"\\x"', '"abc', "[1,]", "[1 2]", '{"a" 1}',
    "{1:2}", '{"b":1,"a":2}', '{"a":1,"a":2}', '{"b":1,"a":2,"b":3}', '{"":1,"a":2}', '{"$":1}',
    '{"$variant":"Some","args":[1]}', '{"args":[{"b":1,"a":0}],"$variant":"Ok"}',
    '{"$variant":1,"args":[1]}', '{"$variant":"X","args":2}', '{"$bytes":"00ff"}',
    '{"$bytes":"0g"}', '{"$bytes":"00","x":1}', '{"$bytes":"ABcd"}', '{"$bytes":""}',
    '{"#":1,"!":2}', '{"é":1,"e":2,"日":3,"😀":4,"z":5}', '{"ab":1,"a":2,"abc":3,"":4}',
    "[" * 128 + "]" * 128, "[" * 129 + "]" * 129, "{\"a\":" * 128 + "1" + "}" * 128,
    "{\"a\":" * 129 + "1" + "}" * 129, '["[[[[",' + "[" * 127 + "]" * 127 + "]", "[" * 100000,
    " [1] ", "\t{\"a\" : [ 1 , 2 ] }\r\n", "\ufeff1", "1 2", "[1]x", "\x0b1", "[]", "{}", "[{}]",
    "-", "--1", "+1", ".5", "1.", "1.e5", "0x10", "[1e5,-0.5E-3,2e+8]",
]


def test_json_parse_fast_path_matches_the_python_path():
    for s in _JSON_CASES:
        fast, py = _json_outcomes(s)
        assert fast == py, s


def test_json_parse_fast_path_big_objects():
    keys = [f"k{i:03d}" for i in range(100)]
    for n in (1, 2, 31, 32, 33, 34, 100):
        for ks in (keys[:n], keys[:n][::-1], keys[:n][1::2] + keys[:n][::2]):
            s = json.dumps({k: i for i, k in enumerate(ks)})
            fast, py = _json_outcomes(s)
            assert fast == py, n
            assert [k for k, _ in fast[1][1]] == sorted(ks)
        s = "{" + ",".join(f'"{k}":1' for k in keys[:n] + keys[:n]) + "}"  # duplicates
        assert _json_outcomes(s)[0] == _json_outcomes(s)[1]


def test_json_parse_fast_path_matches_generated():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                        st.text(max_size=6), st.sampled_from(["$variant", "$bytes", "", "$"]))
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=4), st.sampled_from(
            ["$variant", "args", "$bytes", "", "a", "b"])), inner, max_size=5)), max_leaves=20)
    noise = st.sampled_from(["", " ", "-0", "1e400", "\\ud800", "]", ",", "NaN", "e", "0", "\ud800",
                             "99999999999999999999", '"', "{", "\\"])

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(values, noise, st.integers(min_value=0, max_value=60), st.booleans())
    def check(v, junk, at, ascii_):
        s = json.dumps(v, ensure_ascii=ascii_)
        fast, py = _json_outcomes(s)
        assert fast == py
        t = s[:at] + junk + s[at:]
        fast, py = _json_outcomes(t)
        assert fast == py

    check()


def test_json_parse_fast_path_is_taken():
    from lexfast.builtins import formats as F

    if not F.JSON_COMPILED:
        assert F._fast_loads("[1]") is None
        return
    from lexfast.builtins import _json_c

    assert _json_c.loads('{"b":[1,2.5,"x"],"a":null}') == (True, {"a": None, "b": [1, 2.5, "x"]})
    for s in ("-0", "[1e400]", "NaN", '"\\ud800"', "[" * 129 + "]" * 129, "[1,]", "", "x", "1 2",
              "12345678901234567890"):
        assert _json_c.loads(s) is None, s
    assert _json_c.loads(b"[1]") is None  # not a str: the Python path words it


# -- json.stringify: the compiled walk against the Python path -------------------

def _dumps_outcome(fn, v):
    try:
        return ("ok", fn(v))
    except EffectError as e:
        return ("err", str(e))
    except RuntimeError as e:  # RecursionError, or a dict changed during the walk
        return ("err", type(e).__name__, str(e))


def _stringify_cases():
    from lexfast.values import Deque, Map, Set

    class S(str):
        pass

    deep = []
    cur = deep
    for _ in range(600):
        nxt: list = []
        cur.append(nxt)
        cur = nxt
    return [
        None, True, False, 0, -1, I64_MIN, 1 << 70, ISub(5), 1.5, -0.0, 0.0, 1e16, 9999999999999998.0,
        1e-4, 0.0001 - 1e-20, 1e-5, -1e300, math.nan, math.inf, -math.inf, FSub(1e20), FSub(2.5),
        "", "é\n\"\\", "\ud800", S("sub"), b"", b"\x00\xff", bytearray(b"ab"), memoryview(b"c"),
        [1, [2, [3.0]]], (1, "a"), {"b": 1, "a": [1e16]}, {"a": {"$variant": "X"}},
        {1: "int key"}, {"k": S("v")}, {S("k"): 1}, Variant("Some", (1,)), Variant("None", ()),
        Variant("Ok", ([1.5e-7], {"z": 1, "y": b"\x01"})), Map({"b": 1, "a": 2}), Map({1: "x", "a": "y"}),
        Set({3, 1, "a"}), Deque([1, 2.5e20]), [Map({2: [1e-9]})], object(), deep, [deep],
        {"s": "1e+5"}, ["x" * 10] * 5, [math.nan, {"x": math.inf}],
    ]


def test_json_stringify_compiled_matches_the_python_path():
    from lexfast.builtins import formats as F

    for v in _stringify_cases():
        got = _dumps_outcome(F.dumps, v)
        want = _dumps_outcome(F.dumps_py, v)
        if want[1].startswith("<object object"):
            continue  # an arbitrary object's str: its address
        assert got == want, v


def test_json_stringify_cap_matches():
    from lexfast.builtins import formats as F
    from lexfast.values import Map

    mib = "x" * (1 << 20)  # the cap is 64 MiB of chars: these pass it by the keys, names, hex
    assert F.STRINGIFY_MAX_CHARS == 1 << 26
    for v in ([mib] * 65, {"kk": [mib] * 64}, [Variant("N", tuple([mib] * 64))],
              [b"\x00" * (1 << 25)], {"a": [Map({"kkkkkk": [mib] * 64})]}, (mib,) * 65):
        got = _dumps_outcome(F.dumps, v)
        assert got == _dumps_outcome(F.dumps_py, v), type(v)
        assert got[1] == "json: value's strings exceed the cap of 67108864 chars"


def test_json_stringify_generated():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from lexfast.builtins import formats as F

    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                        st.binary(max_size=4))
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=4),
        st.builds(Variant, st.text(max_size=3), st.lists(inner, max_size=2).map(tuple))),
        max_leaves=20)

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(values)
    def check(v):
        assert _dumps_outcome(F.dumps, v) == _dumps_outcome(F.dumps_py, v)

    check()


def test_json_stringify_survives_a_value_mutated_while_written():
    """An object whose ``str`` (the fallback's rendering) empties the list or
    dict being written: the same outcome on both paths, never a crash."""
    from lexfast.builtins import formats as F

    class Clears:
        def __init__(self, box):
            self.box = box

        def __str__(self):
            self.box.clear()
            return "cleared"

    def make_list():
        box: list = [1, "a"]
        box.insert(1, Clears(box))
        box.append(2.5)
        return box

    def make_dict():
        box: dict = {"a": 1}
        box["b"] = Clears(box)
        box["c"] = 2
        return box

    for make in (make_list, make_dict, lambda: [make_list(), make_dict()]):
        assert _dumps_outcome(F.dumps, make()) == _dumps_outcome(F.dumps_py, make())
    assert _dumps_outcome(F.dumps, make_list()) == ("ok", '[1,"cleared"]')
    h = DefaultHandler(Policy.pure())
    try:
        with pytest.raises(EffectError, match="json.stringify: value changed while being written"):
            h.dispatch("json", "stringify", [make_dict()])
    finally:
        h.close()


@pytest.mark.parametrize("so", ["_binary_c", "_numeric_c", "_json_c"])
def test_the_stubs_name_the_compiled_functions(so):
    """Each ``.pyi`` lists exactly the public functions its module defines."""
    import ast
    import importlib

    here = os.path.dirname(BIN.__file__)
    tree = ast.parse(open(os.path.join(here, f"{so}.pyi")).read())
    stubbed = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    try:
        mod = importlib.import_module(f"lexfast.builtins.{so}")
    except ImportError:
        pytest.skip("not built")
    defined = {n for n in dir(mod) if not n.startswith("_") and callable(getattr(mod, n))
               and getattr(getattr(mod, n), "__module__", None) == mod.__name__}
    assert stubbed == defined
