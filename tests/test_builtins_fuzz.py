"""Adversarial fuzzing of every pure builtin through ``DefaultHandler.dispatch``
(they are answered ungated, so any program can call any of them with any
arguments): only a value or a clean ``EffectError`` (never an ``internal
error``) may come out, the arguments are left unchanged, and each call ends
within a bound. Then targeted amplification/DoS probes, one per class fixed.
Run once per core (LEXFAST_NO_EXTENSIONS=1 for the pure-Python twin)."""

from __future__ import annotations

import copy
import math
import os
import reprlib
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lexfast import DefaultHandler, EffectError, Policy
from lexfast.builtins import TABLE
from lexfast.kernel import Variant, err, ok, some
from lexfast.values import Deque, Map, Set, Table

OPS = sorted((k, o) for k, ops in TABLE.items() for o in ops)
CALL_BOUND = 2.0  # seconds per fuzzed call
PROBE_BOUND = 4.0  # seconds per targeted probe (big inputs; slack for a loaded CI box)
#: examples per op (LEXFAST_FUZZ_EXAMPLES=500 for a long local run)
EXAMPLES = int(os.environ.get("LEXFAST_FUZZ_EXAMPLES", "15"))


@pytest.fixture(scope="module")
def h():
    handler = DefaultHandler(Policy.pure())
    yield handler
    handler.close()


class SubStr(str):
    pass


class SubInt(int):
    pass


class SubList(list):
    pass


_ints = st.one_of(
    st.integers(-3, 40),
    st.sampled_from([-2**63, 2**63 - 1, 2**63, -2**63 - 1, 2**64, 2**100, -1, 2**31, 2**32, 10**6]),
)
_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -0.0, 5e-324]))
_texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "\ud800", "a\x00b", "é", "1e999999", "9" * 30, "-0", "%Y-%m-%d", "a{1000}{1000}",
                     "(a*)*b", "[", "{", "[[[]]]", "x" * 3000, "$1${x}$$", "--flag", "0x1f", "NaN",
                     "2024-01-01T00:00:00Z", "a=1\nb=2", "k: &a [1]\nv: *a"]),
)
_scalars = st.one_of(st.none(), st.booleans(), _ints, _floats, _texts,
                     st.binary(max_size=12), st.just(bytearray(b"ab")), st.just(memoryview(b"cd")),
                     st.builds(SubStr, st.text(max_size=4)), st.builds(SubInt, st.integers(-5, 5)))


def _extend(children):
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.lists(children, max_size=3).map(SubList),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-3, 3)), children, max_size=3).map(Map),
        st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=3)), max_size=3).map(Set),
        st.lists(children, max_size=3).map(Deque),
        st.tuples(st.sampled_from(["Some", "None", "Ok", "Err", "X"]),
                  st.lists(children, max_size=2).map(tuple)).map(lambda t: Variant(*t)),
    )


_TABLES = [
    Table([]), Table([], nrows=5),
    Table([("x", "Int64", [1, 2, 2**63 - 1]), ("g", "Utf8", ["a", "b", "a"])]),
    Table([("x", "Int64", [None, 1]), ("y", "Float64", [math.nan, -0.0]), ("g", "Utf8", [None, ""])]),
    Table([("x", "Int64", [1]), ("x", "Float64", [1.0])]),
    Table([("b", "Boolean", [True, None]), ("x", "Int64", [3, 3])]),
]
_tables = st.sampled_from(_TABLES)
_names = st.sampled_from(["x", "y", "g", "b", "nope", ""])
_values = st.recursive(st.one_of(_scalars, _tables), _extend, max_leaves=12)
# shapes the ops read (records), so the fuzz reaches past the first check
_records = st.one_of(
    st.fixed_dictionaries({"rows": _ints, "cols": _ints, "data": st.lists(_floats, max_size=6)}),
    st.fixed_dictionaries({"coefficient": _ints, "exponent": _ints}),
    st.fixed_dictionaries({"url": _texts, "method": _texts, "headers": st.just(Map()),
                           "body": st.none(), "timeout_ms": st.none()}),
    st.fixed_dictionaries({"state": _ints}),
)
# shapes arrow.* / df.* read, so the fuzz reaches past the first check
_table_args = st.one_of(
    st.tuples(_tables, _names, st.one_of(_ints, _floats, _texts, _names, st.lists(_names, max_size=3))),
    st.tuples(_tables, st.lists(_names, max_size=3),
              st.lists(st.tuples(_names, _names, st.sampled_from(
                  ["sum", "mean", "min", "max", "count", "n_distinct", "x"])), max_size=3)),
    st.tuples(_tables, _tables, _names),
    st.tuples(st.lists(st.tuples(_names, st.lists(st.one_of(_ints, _floats, _texts), max_size=4)),
                       max_size=3)),
).map(list)
_args = st.one_of(st.lists(st.one_of(_values, _records), max_size=7), _table_args)


def _deep(depth: int):
    v: object = 1
    for _ in range(depth):
        v = [v]
    return v


def _snapshot(v):
    try:
        return copy.deepcopy(v)
    except Exception:  # a memoryview: compare its bytes
        return None


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, memoryview):
        return a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple, Deque)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, Variant):
        return a.name == b.name and _same(a.args, b.args)
    return a == b


def _show(args) -> str:
    try:
        return reprlib.repr(args)
    except Exception:  # too deep, or a huge int
        return f"<{len(args)} args>"


def _call_bounded(h, kind, op, args):
    box: dict = {}

    def run():
        t = time.monotonic()
        try:
            box["value"] = h.dispatch(kind, op, args)
        except BaseException as e:  # noqa: BLE001 - judged below
            box["exc"] = e
        box["t"] = time.monotonic() - t

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(CALL_BOUND * 5)
    assert not th.is_alive(), f"{kind}.{op}{_show(args)} did not return"
    assert box["t"] < CALL_BOUND, f"{kind}.{op}{_show(args)} took {box['t']:.2f}s"
    exc = box.get("exc")
    if exc is not None:
        assert isinstance(exc, EffectError), f"{kind}.{op}{_show(args)} raised {exc!r}"
        assert "internal error" not in str(exc), f"{kind}.{op}{_show(args)}: {exc}"
    return box


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(args=_args)
def _fuzz_one(h, kind, op, args):
    sys.set_int_max_str_digits(4300)
    snap = [_snapshot(a) for a in args]
    before = list(args)
    _call_bounded(h, kind, op, args)
    assert len(args) == len(before) and all(x is y for x, y in zip(args, before, strict=True)), f"{kind}.{op} mutated args"
    for a, s in zip(args, snap, strict=True):
        if s is not None:
            assert _same(a, s), f"{kind}.{op} mutated {s!r:.200} into {a!r:.200}"


@pytest.mark.parametrize(("kind", "op"), OPS, ids=[f"{k}.{o}" for k, o in OPS])
def test_fuzz_op(h, kind, op):
    _fuzz_one(h, kind, op)


@pytest.mark.parametrize(("kind", "op"), OPS, ids=[f"{k}.{o}" for k, o in OPS])
def test_missing_extra_and_deep_args(h, kind, op):
    for args in ([], [None] * 9, [_deep(2000)], [_deep(2000)] * 3, ["x", _deep(2000), 1]):
        _call_bounded(h, kind, op, args)


# ---------------------------------------------------------------- targeted probes


def _ee(h, kind, op, *args, match=None):
    t = time.monotonic()
    with pytest.raises(EffectError, match=match) as e:
        h.dispatch(kind, op, list(args))
    assert "internal error" not in str(e.value)
    assert time.monotonic() - t < PROBE_BOUND
    return str(e.value)


def _val(h, kind, op, *args):
    t = time.monotonic()
    v = h.dispatch(kind, op, list(args))
    assert time.monotonic() - t < PROBE_BOUND
    return v


def test_str_replace_amplification_capped(h):
    _ee(h, "str", "replace", "a" * 100_000, "a", "x" * 100_000, match="exceeds the cap")
    _ee(h, "str", "replace", "a" * 10_000, "", "y" * 10_000, match="exceeds the cap")
    assert _val(h, "str", "replace", "abc", "b", "xx") == "axxc"


def test_str_join_aliasing_capped(h):
    big = "x" * 1_000_000
    _ee(h, "str", "join", [big] * 10_000, "", match="exceeds the cap")
    # the element error still comes first, as the reference's
    _ee(h, "str", "join", [big] * 10_000 + [1], "", match="element must be Str")
    assert _val(h, "str", "join", ["a"] * 100, "") == "a" * 100


def test_bytes_concat_all_aliasing_capped(h):
    _ee(h, "bytes", "concat_all", [b"x" * 1_000_000] * 10_000, match="exceeds the cap")


def test_matmul_work_capped(h):
    n = 300
    m = {"rows": n, "cols": n, "data": [0.0] * (n * n)}
    _ee(h, "math", "matmul", m, m, match="too much work")


def test_pbkdf2_work_capped(h):
    r = _val(h, "crypto", "pbkdf2_sha256", b"p", b"s", 2**31 - 1, 32)
    assert r.name == "Err" and "iterations * blocks" in r.args[0]
    r = _val(h, "crypto", "pbkdf2_sha256", b"p", b"s", 1000, 1 << 20)
    assert r.name == "Err"
    assert _val(h, "crypto", "pbkdf2_sha256", b"p", b"s", 1000, 32).name == "Ok"


def test_argon2_work_capped(h):
    r = _val(h, "crypto", "argon2id", b"p", b"saltsalt", 1000, 65536, 32)
    assert r.name == "Err" and "t_cost * m_cost" in r.args[0]


def test_base58_input_capped(h):
    _ee(h, "crypto", "base58_encode", b"\xff" * 100_000, match="exceeds the cap")
    r = _val(h, "crypto", "base58_decode", "z" * 100_000)
    assert r.name == "Err"


def test_regex_many_matches_linear(h):
    out = _val(h, "regex", "split", "", "a" * 100_000)
    assert len(out) == 100_002
    assert _val(h, "regex", "replace_all", "x*", "ab", "-") == "-a-b-"
    found = _val(h, "regex", "find_all", "a", "é" * 10 + "a" * 50_000)
    assert found[0]["start"] == 20 and found[-1]["end"] == 20 + 50_000
    assert [m["start"] for m in _val(h, "regex", "find_all", "$", "ab")] == [2]
    _ee(h, "regex", "replace_all", "x*", "a" * 100_000, "y" * 1000, match="exceeds the cap")


def test_regex_replacement_huge_group_number(h):
    # Rust parses `$<digits>` as usize, else as a name: no such group -> ""
    assert _val(h, "regex", "replace", "a", "aaa", "$" + "9" * 100_000) == "aa"
    assert _val(h, "regex", "replace", "(a)", "aaa", "${" + "9" * 100_000 + "}") == "aa"
    assert _val(h, "regex", "replace", "(a)", "aaa", "${\u00b2}x") == "xaa"
    assert _val(h, "regex", "replace", "(a)", "aaa", "<$1>") == "<a>aa"


def test_regex_huge_repetition_is_clean(h):
    assert _val(h, "regex", "compile", "a{1000}{1000}").name == "Err"
    assert _val(h, "regex", "compile", "((a{1000}){1000}){1000}").name == "Err"


def test_regex_lone_surrogate_is_clean(h):
    _ee(h, "regex", "find", "a", "\ud800a", match="lone surrogate")
    _ee(h, "regex", "is_match", "\ud800", "x")


def test_formats_huge_numbers(h):
    assert _val(h, "json", "parse", "-" + "9" * 100_000).name == "Err"
    assert _val(h, "json", "parse", "[" + "9" * 100_000 + "]").name == "Err"
    assert _val(h, "json", "parse", "1e999999").name == "Err"
    assert _val(h, "toml", "parse", "a=" + "9" * 100_000) == err("TOML parse error: integer number overflowed")
    assert _val(h, "yaml", "parse", "a: " + "9" * 20_000) == ok({"a": None})
    assert _val(h, "yaml", "parse", "a: " + "9" * 400) == ok({"a": None})
    assert _val(h, "yaml", "parse", "a: 0x" + "f" * 400) == ok({"a": None})
    assert _val(h, "yaml", "parse", "[" * 30_000 + "]" * 30_000).name == "Err"


def test_formats_deep_nesting_and_aliases(h):
    for kind in ("json", "yaml"):
        assert _val(h, kind, "parse", "[" * 100_000 + "]" * 100_000).name == "Err"
    assert _val(h, "toml", "parse", "a=" + "[" * 100_000 + "]" * 100_000).name == "Err"
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))
    assert _val(h, "yaml", "parse", bomb).name == "Err"


def test_stringify_deep_or_huge_is_clean(h):
    deep = _deep(5000)
    for kind in ("json", "toml", "yaml"):
        _ee(h, kind, "stringify", {"a": deep})
        _ee(h, kind, "stringify", {"a": 10**5000})
    _ee(h, "csv", "stringify", [[deep]])


def test_yaml_size_caps(h):
    r = _val(h, "yaml", "parse", "a: [" + "1," * 200_000 + "]")
    assert r.name == "Err" and "exceeds the cap" in r.args[0]
    r = _val(h, "yaml", "stringify", [1] * 100_000)
    assert r.name == "Err" and "nodes" in r.args[0]
    r = _val(h, "yaml", "stringify", {"a": [{"b": "c"}] * 20_000})
    assert r.name == "Err"
    assert _val(h, "yaml", "parse", "a: [" + "1," * 10_000 + "]").name == "Ok"
    assert _val(h, "yaml", "stringify", [1] * 10_000).name == "Ok"


def test_csv_stringify_aliasing_capped(h):
    r = _val(h, "csv", "stringify", [["x" * 1_000_000]] * 1_000)
    assert r.name == "Err" and "exceeds the cap" in r.args[0]
    assert _val(h, "csv", "stringify", [["a", "b"]] * 3) == ok("a,b\na,b\na,b\n")


def test_stringify_aliasing_capped(h):
    big = ["x" * 1_000_000] * 1_000
    _ee(h, "json", "stringify", big, match="exceed the cap")
    for kind in ("toml", "yaml"):
        r = _val(h, kind, "stringify", {"a": big})
        assert r.name == "Err" and "exceed the cap" in r.args[0]
    assert _val(h, "json", "stringify", ["x" * 1000] * 1000).startswith('["xxx')


def test_http_with_query_lone_surrogate(h):
    r = _val(h, "http", "with_query", {"url": "http://x"}, Map({"\ud800": "b"}))
    assert r["url"] == "http://x?%ED%A0%80=b"


def test_matrix_dims_wrapping_usize_are_refused(h):
    m = {"rows": 2**63 - 1, "cols": 2**63 - 1, "data": [0.0]}
    for op in ("transpose", "to_flat", "rows"):
        _ee(h, "math", op, m, match="overflows usize")
    _ee(h, "math", "transpose", {"rows": 1, "cols": 1, "data": [2**2000]}, match="not numeric")


def test_other_bounds_hold(h):
    _ee(h, "list", "range", -2**63, 2**63 - 1)
    _ee(h, "math", "zeros", 2**62, 2**62)
    _ee(h, "decimal", "pow10", 2**63 - 1)
    _ee(h, "datetime", "format", 0, "%999999999Y")
    assert _val(h, "str", "to_int", "9" * 1_000_000).name == "None"
    assert _val(h, "str", "to_float", "1e999999") == some(math.inf)
    assert _val(h, "crypto", "hkdf_sha256", b"k", b"s", b"i", 10**9).name == "Err"


def test_arrow_df_amplification_capped(h):
    big = Table([("k", "Int64", [1] * 5000), ("v", "Utf8", ["x"] * 5000)])
    for op, args in (("cross_join", [big, big]), ("inner_join", [big, big, "k"]),
                     ("left_join", [big, big, "k"])):
        r = _val(h, "df", op, *args)
        assert r.name == "Err" and "exceeds the cap" in r.args[0]
    specs = [(f"o{i}", "k", "sum") for i in range(2000)]
    r = _val(h, "df", "group_by_agg", big, ["k"], specs)
    assert r.name == "Err" and "exceeds the cap" in r.args[0]
    # input-proportional work stays bounded: many names, one column
    assert _val(h, "df", "drop_nulls", big, ["k"] * 100_000).name == "Ok"
    wide = _val(h, "arrow", "select_cols", big, ["k"] * 100_000).args[0]
    assert wide.ncols == 100_000
    r = _val(h, "df", "cross_join", wide, Table([("z", "Int64", [1, 2])]))
    assert r.name == "Err"
    assert _val(h, "arrow", "from_int_columns", [("x", list(range(200_000)))]).name == "Ok"
