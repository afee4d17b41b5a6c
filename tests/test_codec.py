"""The JSON codec (docs/design.md §7): round trips, tags, bounds, and errors that are
always ``CodecError``."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lexfast import NONE, Deque, Map, Set, Table, Variant, err, ok, some
from lexfast.cli.codec import MAX_DEPTH, CodecError, decode, encode, from_json, parse_json, to_json

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def same(a, b) -> bool:
    """Structural equality that tells 1 from 1.0 from True, list from tuple,
    Record from Map, Deque from List, and treats NaN as equal to NaN (and -0.0 apart from 0.0)."""
    if type(a) is not type(b):
        if not (type(a).__name__ == type(b).__name__ == "Variant"):
            return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, (list, tuple, Deque)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):  # Record or Map: same keys, same order
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a).__name__ == "Variant":
        return a.name == b.name and same(a.args, b.args)
    return a == b


def strict_loads(s: str):
    def no_constants(name):
        raise AssertionError(f"invalid JSON constant {name} in output")
    return json.loads(s, parse_constant=no_constants)


# -- strategies ---------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
ints = st.one_of(st.integers(-1000, 1000), st.integers(I64_MIN, I64_MAX),
                 st.sampled_from([I64_MIN, I64_MAX, 2 ** 53 + 1, -(2 ** 53) - 1]))
floats = st.floats(allow_nan=True, allow_infinity=True)
leaves = st.one_of(st.none(), st.booleans(), ints, floats, text, st.binary(max_size=40))
# Keys that look like tags must survive as Record keys.
record_keys = st.one_of(text, st.sampled_from(["$bytes", "$tuple", "$map", "$variant", "args",
                                               "$float", "$record", "$set", "$deque", "$",
                                               "$$x"]))


def containers(children):
    return st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(record_keys, children, max_size=5),
        st.dictionaries(st.one_of(text, ints), children, max_size=5).map(Map),
        st.frozensets(st.one_of(text, ints), max_size=5).map(Set),
        st.lists(children, max_size=5).map(Deque),
        st.builds(Variant, st.text(min_size=1, max_size=10).filter(
            lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
            st.lists(children, max_size=3).map(tuple)),
    )


lex_values = st.recursive(leaves, containers, max_leaves=40)


# -- round trips ----------------------------------------------------------------

@SETTINGS
@given(lex_values)
def test_round_trip(v):
    s = encode(v)
    assert "\n" not in s and len(s.splitlines()) == 1
    strict_loads(s)  # valid JSON: no NaN / Infinity
    assert same(decode(s), v)
    assert same(from_json(to_json(v)), v)
    assert same(decode(s.encode("utf-8")), v)


@SETTINGS
@given(lex_values)
def test_encode_is_deterministic(v):
    assert encode(v) == encode(decode(encode(v)))


@pytest.mark.parametrize("v", [
    None, True, False, 0, -1, I64_MIN, I64_MAX, 0.0, -0.0, 1.5, 1e308, 5e-324, "", "héllo",
    "\u2028\u2029\x85", "\x00\x1f", "😀", b"", b"\x00\xff" * 10, [], (), {}, Map(), [[]], ((),),
    {"a": {"b": {}}}, Map({1: "a", "1": "b"}), NONE, ok(None), err("x"), some(Map({"k": (1,)})),
    Variant("Point", (1, 2.5)), float("nan"), float("inf"), float("-inf"),
    Set(), Set({"b", 2, "a", -1}), Deque(), Deque([1, "a", Deque([()]), Set({1})]),
    some((Deque([Map({1: Set({"x"})})]),)), [Deque(), Set()],
])
def test_round_trip_examples(v):
    assert same(decode(encode(v)), v)


def test_plain_values_are_themselves():
    v = {"a": [None, True, 1, 1.5, "s"], "b": {}}
    assert json.loads(encode(v)) == v


def test_tag_shapes():
    assert json.loads(encode(b"\x00\xff")) == {"$bytes": "AP8="}
    assert json.loads(encode((1, "a"))) == {"$tuple": [1, "a"]}
    assert json.loads(encode(Map({"a": 1, 2: 3}))) == {"$map": [["a", 1], [2, 3]]}
    assert json.loads(encode(ok(3))) == {"$variant": "Ok", "args": [3]}
    assert json.loads(encode(NONE)) == {"$variant": "None", "args": []}
    assert [json.loads(encode(f)) for f in (math.nan, math.inf, -math.inf)] == [
        {"$float": "nan"}, {"$float": "inf"}, {"$float": "-inf"}]
    assert decode('{"$variant": "None"}') == NONE  # args may be left out


def test_set_and_deque_tags():
    # a Set is written in the reference's key order (every Str, then every Int)
    assert json.loads(encode(Set({3, "b", -1, "a"}))) == {"$set": ["a", "b", -1, 3]}
    assert json.loads(encode(Set())) == {"$set": []}
    assert json.loads(encode(Deque([1, (2,), None]))) == {"$deque": [1, {"$tuple": [2]}, None]}
    assert type(decode('{"$set": [1, "1"]}')) is Set
    assert decode('{"$set": [1, "1"]}') == Set({1, "1"})
    d = decode('{"$deque": [3, {"$deque": []}]}')
    assert type(d) is Deque and type(d[1]) is Deque and list(d) == [3, Deque()]
    # a Deque is neither a List nor a Tuple, and is never written as one
    assert decode(encode([1])) != decode(encode(Deque([1])))
    assert decode(encode((1,))) != decode(encode(Deque([1])))
    # encode is deterministic whatever order the frozenset iterates in
    assert encode(Set(["z", "a", 10, -5])) == encode(Set([-5, 10, "a", "z"]))


def _cells(dtype):
    # JSON has one NaN: a table's equality compares floats by their bits
    canonical = floats.map(lambda f: math.nan if f != f else f)
    cell = {"Int64": ints, "Float64": canonical, "Utf8": text, "Boolean": st.booleans()}[dtype]
    return st.one_of(st.none(), cell)


@st.composite
def tables(draw):
    n = draw(st.integers(0, 4))
    cols = []
    for _ in range(draw(st.integers(0, 4))):
        dtype = draw(st.sampled_from(["Int64", "Float64", "Utf8", "Boolean"]))
        values = draw(st.lists(_cells(dtype), min_size=n, max_size=n))
        nullable = draw(st.booleans()) or None in values
        cols.append((draw(text), dtype, values, nullable))
    return Table(cols, nrows=None if cols else draw(st.integers(0, 3)))


@SETTINGS
@given(tables())
def test_table_round_trip(t):
    s = encode(t)
    strict_loads(s)
    back = decode(s)
    assert type(back) is Table and back == t  # RecordBatch equality: floats by their bits
    assert encode(back) == s
    assert decode(encode(some([t]))) == some([t])


def test_table_tag():
    t = Table([("x", "Int64", [1, None]), ("f", "Float64", [math.nan, -0.0], False)])
    assert json.loads(encode(t)) == {"$arrow_table": {"nrows": 2, "columns": [
        {"name": "x", "type": "Int64", "nullable": True, "values": [1, None]},
        {"name": "f", "type": "Float64", "nullable": False,
         "values": [{"$float": "nan"}, -0.0]}]}}
    # an Int in a Float64 column is that Float; a column-less table keeps its rows
    assert decode('{"$arrow_table": {"nrows": 1, "columns": [{"name": "f", "type": "Float64", '
                  '"nullable": false, "values": [1]}]}}') == Table([("f", "Float64", [1.0])])
    assert decode('{"$arrow_table": {"nrows": 5, "columns": []}}') == Table([], nrows=5)


@pytest.mark.parametrize("bad", [
    '{"$arrow_table": []}',
    '{"$arrow_table": {"nrows": 1}}',
    '{"$arrow_table": {"nrows": -1, "columns": []}}',
    '{"$arrow_table": {"nrows": true, "columns": []}}',
    '{"$arrow_table": {"nrows": 0, "columns": [{}]}}',
    '{"$arrow_table": {"nrows": 1, "columns": [{"name": "x", "type": "Int32", "nullable": false, "values": [1]}]}}',
    '{"$arrow_table": {"nrows": 1, "columns": [{"name": "x", "type": "Int64", "nullable": false, "values": [1.5]}]}}',
    '{"$arrow_table": {"nrows": 1, "columns": [{"name": "x", "type": "Int64", "nullable": false, "values": [true]}]}}',
    '{"$arrow_table": {"nrows": 1, "columns": [{"name": "x", "type": "Int64", "nullable": false, "values": [null]}]}}',
    '{"$arrow_table": {"nrows": 2, "columns": [{"name": "x", "type": "Int64", "nullable": false, "values": [1]}]}}',
    '{"$arrow_table": {"nrows": 1, "columns": [{"name": "x", "type": "Int64", "nullable": false, "values": [9223372036854775808]}]}}',
    '{"$arrow_table": {"nrows": 1, "columns": [{"name": "x", "type": "Float64", "nullable": false, "values": [{"$tuple": []}]}]}}',
    '{"$arrow_table": {"nrows": 1, "columns": [{"name": "x", "type": "Utf8", "nullable": false, "values": ["\\ud800"]}]}}',
    '{"$arrow_table": {"nrows": 0, "columns": [{"name": 1, "type": "Utf8", "nullable": false, "values": []}]}}',
    '{"$arrow_table": {"nrows": 0, "columns": [], "extra": 1}}',
])
def test_table_tag_errors(bad):
    with pytest.raises(CodecError):
        decode(bad)


def test_bytearray_and_memoryview_encode_as_bytes():
    assert decode(encode(bytearray(b"ab"))) == b"ab"
    assert decode(encode(memoryview(b"abc")[1:])) == b"bc"


def test_record_with_tag_like_keys_is_unambiguous():
    for rec in ({"$bytes": "AA=="}, {"$variant": "Ok", "args": []}, {"$record": {}},
                {"a": 1, "$b": 2}, {"$float": "nan"}):
        s = encode(rec)
        assert json.loads(s) == {"$record": rec}
        assert decode(s) == rec and type(decode(s)) is dict
    # The tagged object itself, written by hand, is the tagged value.
    assert decode('{"$bytes": "AA=="}') == b"\x00"
    assert decode('{"$record": {"$bytes": "AA=="}}') == {"$bytes": "AA=="}


def test_record_values_inside_record_escape_are_still_decoded():
    assert decode('{"$record": {"$x": {"$tuple": [1]}}}') == {"$x": (1,)}


def test_big_ints_in_range_and_out():
    for n in (I64_MAX, I64_MIN, 2 ** 53 + 1):
        assert decode(encode(n)) == n and type(decode(encode(n))) is int
    for n in (I64_MAX + 1, I64_MIN - 1, 10 ** 30):
        with pytest.raises(CodecError, match="outside signed 64-bit"):
            decode(str(n))
        with pytest.raises(CodecError, match="outside signed 64-bit"):
            encode(n)
    with pytest.raises(CodecError, match="outside signed 64-bit"):
        decode("1" * 5000)  # never reaches Python's 4300-digit ValueError
    with pytest.raises(CodecError, match="Map key"):
        decode('{"$map": [[9223372036854775808, 1]]}')


def test_float_vs_int_kept_apart():
    assert type(decode(encode(1.0))) is float
    assert type(decode(encode(1))) is int
    assert type(decode(encode(True))) is bool


# -- errors ----------------------------------------------------------------------

@pytest.mark.parametrize("text, match", [
    ("", "invalid JSON"),
    ("[1,", "invalid JSON"),
    ("NaN", "NaN is not JSON"),
    ("[Infinity]", "Infinity is not JSON"),
    ("-Infinity", "Infinity is not JSON"),
    ("1e400", "out of range for a Float"),
    ('{"a": 1, "a": 2}', "duplicate key"),
    ('"\\ud800"', "lone surrogate"),
    ('{"\\udc00": 1}', "lone surrogate"),
    ('{"$bytes": "AA"}', "base64"),
    ('{"$bytes": "A A="}', "base64"),
    ('{"$bytes": "AA-_"}', "base64"),
    ('{"$bytes": 1}', "base64"),
    ('{"$tuple": {}}', r"\$tuple must be a list"),
    ('{"$map": [[1]]}', "pairs"),
    ('{"$map": [[1.5, 1]]}', "Str or Int"),
    ('{"$map": [[true, 1]]}', "Str or Int"),
    ('{"$map": [["a", 1], ["a", 2]]}', "twice"),
    ('{"$map": {}}', "list of"),
    ('{"$set": {}}', r"\$set must be a list"),
    ('{"$set": [[1]]}', "Set element must be Str or Int, got a list"),
    ('{"$set": [1.5]}', "Str or Int"),
    ('{"$set": [true]}', "Str or Int"),
    ('{"$set": [null]}', "Str or Int"),
    ('{"$set": [1, 1]}', "twice"),
    ('{"$set": ["a", "a"]}', "twice"),
    ('{"$set": [9223372036854775808]}', "outside signed 64-bit"),
    ('{"$set": ["\\udc00"]}', "lone surrogate"),
    ('{"$set": [], "args": []}', "unexpected key"),
    ('{"$deque": {}}', r"\$deque must be a list"),
    ('{"$deque": 1}', r"\$deque must be a list"),
    ('{"$variant": ""}', "non-empty"),
    ('{"$variant": 3, "args": []}', "non-empty"),
    ('{"$variant": "A", "args": {}}', "args must be a list"),
    ('{"$variant": "A", "args": [], "x": 1}', "unexpected key"),
    ('{"$tuple": [], "args": []}', "unexpected key"),
    ('{"$float": "NaN"}', r"\$float must be"),
    ('{"$record": []}', r"\$record must be an object"),
    ('{"$foo": 1}', "unknown tag"),
    ('{"$tuple": [], "$map": []}', "two tags"),
    (b"\xff", "UTF-8"),
])
def test_decode_errors(text, match):
    with pytest.raises(CodecError, match=match):
        decode(text)


def test_codec_error_is_a_value_error():
    assert issubclass(CodecError, ValueError)


@pytest.mark.parametrize("v, match", [
    (object(), "cannot encode a object"),
    ({1: 2}, "Record key must be Str"),
    (Map({1.5: 2}), "Map key must be Str or Int"),
    (Map({True: 2}), "Map key must be Str or Int"),
    ("\ud800", "lone surrogate"),
    ({"\udc80": 1}, "lone surrogate"),
    ({1, 2}, "cannot encode a set"),
    (frozenset({1}), "cannot encode a frozenset"),
    (Set({1.5}), "Set element must be Str or Int"),
    (Set({True}), "Set element must be Str or Int"),
    (Set({1 << 64}), "outside signed 64-bit"),
    (Set({"\ud800"}), "lone surrogate"),
    (Deque([object()]), "cannot encode a object"),
])
def test_encode_errors(v, match):
    with pytest.raises(CodecError, match=match):
        encode(v)


def _nest(n, wrap):
    v = 0
    for _ in range(n):
        v = wrap(v)
    return v


@pytest.mark.parametrize("wrap", [lambda v: [v], lambda v: (v,), lambda v: {"k": v},
                                  lambda v: Map({1: v}), lambda v: some(v),
                                  lambda v: {"$k": v}, lambda v: Deque([v])])
def test_depth_bound_both_ways(wrap):
    ok_value = _nest(MAX_DEPTH, wrap)
    assert same(decode(encode(ok_value)), ok_value)
    too_deep = _nest(MAX_DEPTH + 1, wrap)
    with pytest.raises(CodecError, match="nested deeper"):
        encode(too_deep)
    text = encode(ok_value)
    # Wrap the accepted text once more by hand: decode refuses it too.
    with pytest.raises(CodecError, match="nested"):
        decode("[" + text + "]")


def test_cycles_and_absurd_nesting_are_codec_errors():
    cyc: list = []
    cyc.append(cyc)
    with pytest.raises(CodecError, match="cycle"):
        encode(cyc)
    d: dict = {}
    d["d"] = d
    with pytest.raises(CodecError):
        encode(d)
    with pytest.raises(CodecError, match="nested"):
        decode("[" * 200_000 + "]" * 200_000)
    with pytest.raises(CodecError, match="nested"):
        decode('{"a":' * 100_000 + "1" + "}" * 100_000)
    deep: list = []
    cur = deep
    for _ in range(100_000):
        nxt: list = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(CodecError, match="nested"):
        from_json(deep)


def test_output_never_contains_raw_line_separators():
    s = encode(["a\u2028b", {"\u2029": "\x85"}])
    assert "\u2028" not in s and "\u2029" not in s and "\x85" not in s
    assert decode(s) == ["a\u2028b", {"\u2029": "\x85"}]


def test_parse_json_keeps_plain_json():
    assert parse_json('{"$bytes": "AA=="}') == {"$bytes": "AA=="}
    assert parse_json(b'[1, 2.5, "x"]') == [1, 2.5, "x"]


def test_decode_accepts_parsed_trees():
    assert decode({"$tuple": [1]}) == (1,)
    assert decode([{"$bytes": ""}]) == [b""]
    with pytest.raises(CodecError, match="non-finite"):
        decode([float("nan")])
    with pytest.raises(CodecError, match="not a JSON value"):
        decode([object()])
    with pytest.raises(CodecError, match="object key"):
        decode({1: 2})


# -- decode never raises anything but CodecError -------------------------------

json_keys = st.one_of(st.text(max_size=8),
                      st.sampled_from(["$bytes", "$tuple", "$map", "$variant", "args", "$float",
                                       "$record", "$set", "$deque", "$", "$x", "id"]))
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(),
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=20),
                        st.sampled_from(["nan", "inf", "-inf", "AA==", "AP8=", "Ok", ""]))
json_trees = st.recursive(
    json_leaves,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(json_keys, c, max_size=4)),
    max_leaves=30)


@SETTINGS
@given(json_trees)
def test_decode_arbitrary_json_only_raises_codec_error(tree):
    try:
        text = json.dumps(tree)
    except (ValueError, RecursionError):
        return
    for f, arg in ((decode, text), (from_json, tree), (decode, text.encode("utf-8"))):
        try:
            v = f(arg)
        except CodecError:
            continue
        # Whatever decodes must encode again and come back the same.
        assert same(decode(encode(v)), v)


@SETTINGS
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60)))
def test_decode_arbitrary_text_only_raises_codec_error(text):
    try:
        decode(text)
    except CodecError:
        pass


@SETTINGS
@given(st.lists(st.sampled_from(['{"$map":', '{"$tuple":', '{"$variant":"A","args":',
                                 '{"$set":', '{"$deque":', '[', ']', '}', '{"$bytes":"', '"', ',', '1', 'null',
                                 '{"$record":', '{"$float":"nan"}', '[[1,2]]', '"a":']),
                max_size=30).map("".join))
def test_decode_tag_fragments_only_raise_codec_error(text):
    try:
        decode(text)
    except CodecError:
        pass


def test_lone_surrogate_escapes_refused_anywhere_pairs_kept():
    for text in ('{"a": ["\\ud800"]}', '[{"\\udfff": 1}]', '{"id": "\\uDC00x"}'):
        with pytest.raises(CodecError, match="surrogate"):
            parse_json(text)
    with pytest.raises(CodecError, match="surrogate"):
        parse_json('"\ud800"')  # a raw surrogate in str input
    assert parse_json('["\\ud83d\\ude00", "\\\\ud800"]') == ["😀", "\\ud800"]
    with pytest.raises(CodecError, match="surrogate"):
        from lexfast.cli.codec import dumps_json
        dumps_json(["\udcff"])


def test_closure_tag_is_opaque_and_written_back_as_it_came():
    from lexfast.cli.codec import PeerClosure
    for token in ("handle", 3, ["fn", {"i": 2}], None, {"$bytes": "not decoded"}):
        v = decode(json.dumps({"$closure": token}))
        assert isinstance(v, PeerClosure) and v.token == token
        assert to_json(v) == {"$closure": token}
        assert v == PeerClosure(json.loads(json.dumps(token))) and hash(v) == hash(PeerClosure(token))
    routes = decode('[{"$tuple": ["GET", "/u/:id", {"$closure": "u"}]}]')
    assert routes[0][2] == PeerClosure("u") and "closure" in repr(routes[0][2])
    with pytest.raises(CodecError, match="unexpected key"):
        decode('{"$closure": "x", "extra": 1}')
