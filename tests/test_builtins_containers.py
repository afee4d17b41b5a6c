"""map.*, set.* and deque.* (lexfast/builtins/containers.py) through
``DefaultHandler.dispatch``, against the reference's ``builtins.rs``.

Upstream cases are restated from the reference's tests/map_set.rs,
tests/std_deque_and_helpers.rs and tests/map_from_list_in_serve.rs (named in
comments). Run once per core (``LEXFAST_NO_EXTENSIONS=1`` for the twin).
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lexfast import NONE, DefaultHandler, Deque, EffectError, Map, Policy, Set, Variant, some
from lexfast import builtins as B
from lexfast.values import debug_repr, mapkey_sorted


@pytest.fixture
def h():
    handler = DefaultHandler(Policy.pure())
    try:
        yield handler
    finally:
        handler.close()


def call(h, name, *args):
    kind, op = name.split(".", 1)
    return h.dispatch(kind, op, list(args))


def raises(h, name, args, msg):
    kind, op = name.split(".", 1)
    with pytest.raises(EffectError) as e:
        h.dispatch(kind, op, list(args))
    assert str(e.value) == msg


def frozen(v):
    """A deep copy, to show an op left its arguments alone."""
    return copy.deepcopy(v)


# -- the table ------------------------------------------------------------------

MAP_OPS = "new size has get set delete keys values entries from_list merge is_empty".split()
SET_OPS = ("new size has add delete to_list from_list union intersect diff is_empty "
           "is_subset").split()
DEQUE_OPS = ("new size is_empty push_back push_front pop_back pop_front peek_back peek_front "
             "from_list to_list").split()


def test_every_reference_op_is_here():
    assert sorted(B.TABLE["map"]) == sorted(MAP_OPS)
    assert sorted(B.TABLE["set"]) == sorted(SET_OPS)
    assert sorted(B.TABLE["deque"]) == sorted(DEQUE_OPS)
    assert (len(MAP_OPS), len(SET_OPS), len(DEQUE_OPS)) == (12, 12, 11)


# -- MapKey order -----------------------------------------------------------------

def test_mapkey_order_is_strs_then_ints():
    # derive(Ord) on `enum MapKey { Str(String), Int(i64) }`: the variant first
    assert mapkey_sorted(["b", 3, "a", -7, "", 0]) == ["", "a", "b", -7, 0, 3]
    # Strs by code point, which is the UTF-8 byte order Rust's String uses
    assert mapkey_sorted(["é", "z", "Z", "\U0001F600", "\uffff"]) == [
        "Z", "z", "é", "\uffff", "\U0001F600"]
    assert mapkey_sorted(["é", "z", "Z", "\U0001F600", "\uffff"]) == sorted(
        ["é", "z", "Z", "\U0001F600", "\uffff"], key=lambda s: s.encode("utf-8"))
    assert mapkey_sorted([]) == []
    assert mapkey_sorted([-(1 << 63), (1 << 63) - 1, "x"]) == ["x", -(1 << 63), (1 << 63) - 1]


# -- map ---------------------------------------------------------------------------

def test_map_new_size_is_empty(h):
    m = call(h, "map.new")
    assert type(m) is Map and m == {}
    assert call(h, "map.size", m) == 0
    assert call(h, "map.is_empty", m) is True
    # map_size_grows_with_inserts
    m3 = call(h, "map.set", call(h, "map.set", call(h, "map.set", m, "x", 1), "y", 2), "z", 3)
    assert call(h, "map.size", m3) == 3
    # map_is_empty_distinguishes_empty
    assert call(h, "map.is_empty", call(h, "map.from_list", [("x", 1)])) is False
    assert call(h, "map.new", "ignored") == {}  # the reference ignores extra arguments


def test_map_set_get_roundtrip(h):
    # map_set_get_roundtrip
    m = call(h, "map.set", call(h, "map.set", call(h, "map.new"), "a", 1), "b", 2)
    assert call(h, "map.get", m, "a") == some(1)
    assert call(h, "map.get", m, "b") == some(2)
    assert call(h, "map.get", m, "missing") == NONE
    # a Unit value is still there: Some(Unit), not None
    assert call(h, "map.get", Map({"u": None}), "u") == some(None)


def test_map_set_overwrites_and_never_mutates(h):
    # map_set_overwrites_existing_value
    m1 = call(h, "map.set", call(h, "map.new"), "k", 10)
    m2 = call(h, "map.set", m1, "k", 99)
    assert call(h, "map.get", m2, "k") == some(99)
    assert m1 == {"k": 10} and m2 == {"k": 99} and m1 is not m2
    args = [Map({"a": [1]}), "b", 2]
    before = frozen(args)
    out = h.dispatch("map", "set", args)
    assert args == before and type(out) is Map and out == {"a": [1], "b": 2}


def test_map_int_keys(h):
    # map_int_keys_work
    m = call(h, "map.set", call(h, "map.set", call(h, "map.new"), 1, "one"), 2, "two")
    assert call(h, "map.get", m, 2) == some("two")
    assert call(h, "map.get", m, 3) == NONE
    # Str "1" and Int 1 are different keys
    m = call(h, "map.set", m, "1", "str one")
    assert call(h, "map.size", m) == 3
    assert call(h, "map.get", m, 1) == some("one")
    assert call(h, "map.get", m, "1") == some("str one")
    # map_value_uses_btreemap_directly
    m = call(h, "map.set", call(h, "map.set", call(h, "map.new"), "x", 7), "y", 11)
    assert m == {"x": 7, "y": 11}


def test_map_has_and_delete(h):
    # map_delete_drops_key
    m1 = call(h, "map.set", call(h, "map.new"), "k", 1)
    m2 = call(h, "map.delete", m1, "k")
    assert call(h, "map.has", m2, "k") is False
    assert call(h, "map.has", m1, "k") is True and m1 == {"k": 1}
    # deleting an absent key is a copy
    m3 = call(h, "map.delete", m1, "nope")
    assert m3 == m1 and type(m3) is Map
    assert call(h, "map.delete", Map({1: "a", 2: "b"}), 1) == {2: "b"}


def test_map_keys_values_entries_are_in_key_order(h):
    # map_fold_iterates_in_btreemap_key_order: inserted "z", "a", "m"
    m = call(h, "map.set", call(h, "map.set", call(h, "map.set", call(h, "map.new"),
                                                   "z", 1), "a", 2), "m", 3)
    assert call(h, "map.keys", m) == ["a", "m", "z"]
    assert call(h, "map.values", m) == [2, 3, 1]
    assert call(h, "map.entries", m) == [("a", 2), ("m", 3), ("z", 1)]
    assert all(type(e) is tuple for e in call(h, "map.entries", m))
    # every Str before every Int; Ints numerically
    m = Map({10: "ten", "b": "B", -3: "minus", "a": "A", 2: "two"})
    assert call(h, "map.keys", m) == ["a", "b", -3, 2, 10]
    assert call(h, "map.values", m) == ["A", "B", "minus", "two", "ten"]
    assert call(h, "map.entries", m) == [("a", "A"), ("b", "B"), (-3, "minus"), (2, "two"),
                                        (10, "ten")]
    assert list(m) == [10, "b", -3, "a", 2]  # the argument keeps its own order
    for op in ("keys", "values", "entries"):
        assert call(h, f"map.{op}", Map()) == []
    # map_from_list_round_trips_through_entries: the values sum to 6
    m = call(h, "map.from_list", [("a", 1), ("b", 2), ("c", 3)])
    assert sum(call(h, "map.values", m)) == 6
    assert call(h, "map.from_list", call(h, "map.entries", m)) == m


def test_map_from_list(h):
    assert call(h, "map.from_list", []) == {} and type(call(h, "map.from_list", [])) is Map
    # a later pair wins (BTreeMap::insert)
    m = call(h, "map.from_list", [("k", 1), (2, "x"), ("k", 3)])
    assert m == {"k": 3, 2: "x"}
    # map_from_list_of_closure_built_tuples_works_in_serve_handler: (Str, Str) pairs
    pairs = [(kv.split("=")[0], "v") for kv in ["a=1", "b=2"]]
    assert call(h, "map.from_list", pairs) == {"a": "v", "b": "v"}
    raises(h, "map.from_list", [[("a", 1), ["b", 2]]],
           'map.from_list element must be a 2-tuple, got List([Str("b"), Int(2)])')
    raises(h, "map.from_list", [[("a", 1, 2)]],
           'map.from_list element must be a 2-tuple, got Tuple([Str("a"), Int(1), Int(2)])')
    raises(h, "map.from_list", [[()]], "map.from_list element must be a 2-tuple, got Tuple([])")
    raises(h, "map.from_list", [[(1.5, 1)]], "map/set key must be Str or Int, got Float(1.5)")
    raises(h, "map.from_list", [[(True, 1)]], "map/set key must be Str or Int, got Bool(true)")
    raises(h, "map.from_list", [Map()], "expected List, got Map({})")
    raises(h, "map.from_list", [], "missing argument")


def test_map_merge(h):
    # map_merge_unions_keys_with_b_overriding
    a = call(h, "map.from_list", [("x", 1), ("y", 2)])
    b = call(h, "map.from_list", [("y", 20), ("z", 30)])
    before = (frozen(a), frozen(b))
    m = call(h, "map.merge", a, b)
    assert call(h, "map.size", m) == 3
    assert call(h, "map.get", m, "y") == some(20)
    assert m == {"x": 1, "y": 20, "z": 30} and type(m) is Map
    assert (a, b) == before
    assert call(h, "map.merge", Map(), Map()) == {}
    raises(h, "map.merge", [a], "expected Map, got None")
    raises(h, "map.merge", [a, {"y": 1}], 'expected Map, got Some(Record({"y": Int(1)}))')
    raises(h, "map.merge", [[], a], "expected Map, got Some(List([]))")


def test_map_keys_must_be_str_or_int(h):
    # map_of_non_str_or_int_key_is_runtime_error
    raises(h, "map.set", [Map(), [1, 2], 1],
           "map/set key must be Str or Int, got List([Int(1), Int(2)])")
    raises(h, "map.has", [Map(), [3, 4]],
           "map/set key must be Str or Int, got List([Int(3), Int(4)])")
    for op in ("get", "has", "delete"):
        raises(h, f"map.{op}", [Map({1: "a"}), True],
               "map/set key must be Str or Int, got Bool(true)")
        raises(h, f"map.{op}", [Map(), 1.0], "map/set key must be Str or Int, got Float(1.0)")
        raises(h, f"map.{op}", [Map(), None], "map/set key must be Str or Int, got Unit")
        raises(h, f"map.{op}", [Map(), b"k"], "map/set key must be Str or Int, got Bytes([107])")
    raises(h, "map.set", [Map(), 1 << 63, 1],
           "map/set key must be Str or Int, got an integer outside i64: "
           "Int(9223372036854775808)")


def test_map_argument_errors(h):
    one_map_ops = ("size", "is_empty", "keys", "values", "entries")
    for op in one_map_ops + ("has", "get", "set", "delete"):
        raises(h, f"map.{op}", [], "expected Map, got None")
        raises(h, f"map.{op}", [{"a": 1}, "a", 1], 'expected Map, got Some(Record({"a": Int(1)}))')
        raises(h, f"map.{op}", [Set(), "a", 1], "expected Map, got Some(Set({}))")
    for op in ("has", "get", "set", "delete"):
        raises(h, f"map.{op}", [Map()], f"map.{op}: missing key")
    raises(h, "map.set", [Map(), "k"], "map.set: missing value")
    # the map is checked before the key, the key before the value
    raises(h, "map.set", [[], 1.5], "expected Map, got Some(List([]))")
    raises(h, "map.set", [Map(), 1.5], "map/set key must be Str or Int, got Float(1.5)")


def test_map_subclasses_of_str_int_map(h):
    class MyStr(str):
        pass

    class MyMap(Map):
        pass

    m = call(h, "map.set", MyMap({"a": 1}), MyStr("b"), 2)
    assert type(m) is Map and m == {"a": 1, "b": 2}
    assert all(type(k) is str for k in m)
    assert call(h, "map.size", MyMap({"a": 1})) == 1
    assert call(h, "map.get", MyMap({"a": 1}), MyStr("a")) == some(1)


def test_map_debug_repr_is_in_key_order():
    assert debug_repr(Map({2: 1, "b": 2, "a": None})) == (
        'Map({Str("a"): Unit, Str("b"): Int(2), Int(2): Int(1)})')


# -- set -----------------------------------------------------------------------------

def test_set_new_size_is_empty(h):
    s = call(h, "set.new")
    assert type(s) is Set and s == frozenset()
    assert call(h, "set.size", s) == 0
    # set_is_empty_works
    assert call(h, "set.is_empty", s) is True
    assert call(h, "set.is_empty", Set({0})) is False


def test_set_from_list_dedupes(h):
    # set_dedupes_a_list: {1, 2, 3, 4, 5, 6, 9} sums to 30
    s = call(h, "set.from_list", [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5])
    assert type(s) is Set and call(h, "set.size", s) == 7
    assert call(h, "set.to_list", s) == [1, 2, 3, 4, 5, 6, 9]
    assert sum(call(h, "set.to_list", s)) == 30
    assert call(h, "set.from_list", []) == Set()
    assert call(h, "set.from_list", ["a", 1, "1", 1, "a"]) == Set({"a", 1, "1"})
    raises(h, "set.from_list", [[1, 2.5]], "map/set key must be Str or Int, got Float(2.5)")
    raises(h, "set.from_list", [[1, False]], "map/set key must be Str or Int, got Bool(false)")
    raises(h, "set.from_list", [[(1,)]], "map/set key must be Str or Int, got Tuple([Int(1)])")
    raises(h, "set.from_list", [Set()], "expected List, got Set({})")
    raises(h, "set.from_list", [], "missing argument")


def test_set_to_list_is_in_key_order(h):
    s = Set({"b", 10, "a", -2, "B", 3})
    assert call(h, "set.to_list", s) == ["B", "a", "b", -2, 3, 10]
    assert call(h, "set.to_list", Set()) == []


def test_set_has_add_delete(h):
    s = call(h, "set.from_list", [1, 2])
    assert call(h, "set.has", s, 1) is True
    assert call(h, "set.has", s, "1") is False
    s2 = call(h, "set.add", s, "x")
    assert s2 == Set({1, 2, "x"}) and s == Set({1, 2}) and type(s2) is Set
    assert call(h, "set.add", s, 1) == s  # already there: the same set
    s3 = call(h, "set.delete", s2, 1)
    assert s3 == Set({2, "x"}) and s2 == Set({1, 2, "x"}) and type(s3) is Set
    assert call(h, "set.delete", s, 99) == s
    for op in ("has", "add", "delete"):
        raises(h, f"set.{op}", [s], f"set.{op}: missing element")
        raises(h, f"set.{op}", [s, [1]], "map/set key must be Str or Int, got List([Int(1)])")
        raises(h, f"set.{op}", [s, True], "map/set key must be Str or Int, got Bool(true)")


def test_set_union_intersect_diff(h):
    # set_union_intersect: |{1,2,3,4}| + |{2,3}| == 6
    a = call(h, "set.from_list", [1, 2, 3])
    b = call(h, "set.from_list", [2, 3, 4])
    u = call(h, "set.union", a, b)
    i = call(h, "set.intersect", a, b)
    assert call(h, "set.size", u) + call(h, "set.size", i) == 6
    assert u == Set({1, 2, 3, 4}) and i == Set({2, 3})
    assert type(u) is Set and type(i) is Set
    # set_diff_drops_b_elements
    d = call(h, "set.diff", call(h, "set.from_list", [1, 2, 3, 4]), call(h, "set.from_list", [2, 4]))
    assert call(h, "set.size", d) == 2 and d == Set({1, 3}) and type(d) is Set
    assert a == Set({1, 2, 3}) and b == Set({2, 3, 4})
    assert call(h, "set.union", Set({"a"}), Set({1})) == Set({"a", 1})
    assert call(h, "set.intersect", Set({"1"}), Set({1})) == Set()


def test_set_is_subset(h):
    # set_is_subset_proper / set_is_subset_rejects_disjoint_element / set_is_subset_includes_equal
    assert call(h, "set.is_subset", Set({1, 2}), Set({1, 2, 3})) is True
    assert call(h, "set.is_subset", Set({1, 4}), Set({1, 2, 3})) is False
    assert call(h, "set.is_subset", Set({1, 2, 3}), Set({1, 2, 3})) is True
    assert call(h, "set.is_subset", Set(), Set()) is True
    assert call(h, "set.is_subset", Set({1}), Set()) is False


def test_set_argument_errors(h):
    for op in ("size", "is_empty", "to_list", "has", "add", "delete", "union", "intersect",
               "diff", "is_subset"):
        raises(h, f"set.{op}", [], "expected Set, got None")
        raises(h, f"set.{op}", [[1], 1], "expected Set, got Some(List([Int(1)]))")
        raises(h, f"set.{op}", [frozenset({1}), 1], "expected Set, got Some(<frozenset>)")
    for op in ("union", "intersect", "diff", "is_subset"):
        raises(h, f"set.{op}", [Set()], "expected Set, got None")
        raises(h, f"set.{op}", [Set(), Map()], "expected Set, got Some(Map({}))")
        raises(h, f"set.{op}", [Map(), Set()], "expected Set, got Some(Map({}))")


def test_set_debug_repr():
    assert debug_repr(Set({2, "b", "a"})) == 'Set({Str("a"), Str("b"), Int(2)})'
    assert debug_repr(Set()) == "Set({})"


# -- deque ---------------------------------------------------------------------------

def test_deque_pushes(h):
    d0 = call(h, "deque.new")
    assert type(d0) is Deque and list(d0) == []
    # deque_push_back_preserves_insertion_order
    d = d0
    for x in (1, 2, 3):
        d = call(h, "deque.push_back", d, x)
    assert call(h, "deque.to_list", d) == [1, 2, 3]
    # deque_push_front_reverses_insertion
    d = d0
    for x in (1, 2, 3):
        d = call(h, "deque.push_front", d, x)
    assert call(h, "deque.to_list", d) == [3, 2, 1]
    # deque_mixed_push_yields_expected_order
    d = call(h, "deque.push_back", call(h, "deque.push_front",
                                        call(h, "deque.push_back", d0, 2), 1), 3)
    assert call(h, "deque.to_list", d) == [1, 2, 3]
    assert list(d0) == []  # never mutated
    assert type(call(h, "deque.push_back", d0, None)) is Deque
    assert list(call(h, "deque.push_back", d0, None)) == [None]
    raises(h, "deque.push_back", [d0], "deque.push_back: missing value")
    raises(h, "deque.push_front", [d0], "deque.push_front: missing value")


def test_deque_pops(h):
    d = call(h, "deque.from_list", [1, 2, 3])
    # deque_pop_back_returns_remaining_and_size
    r = call(h, "deque.pop_back", d)
    assert isinstance(r, Variant) and r.name == "Some"
    x, rest = r.args[0]
    assert x == 3 and type(rest) is Deque and list(rest) == [1, 2]
    assert call(h, "deque.size", rest) == 2
    assert list(d) == [1, 2, 3]
    # deque_pop_front_returns_first_value
    d = call(h, "deque.from_list", [10, 20, 30])
    r = call(h, "deque.pop_front", d)
    assert r == some((10, Deque([20, 30])))
    assert type(r.args[0]) is tuple and type(r.args[0][1]) is Deque
    assert list(d) == [10, 20, 30]
    # deque_pop_on_empty_returns_none
    assert call(h, "deque.pop_back", call(h, "deque.new")) == NONE
    assert call(h, "deque.pop_front", Deque()) == NONE
    assert call(h, "deque.pop_back", Deque([None])) == some((None, Deque()))


def test_deque_peeks(h):
    # deque_peek_front_does_not_consume
    d = call(h, "deque.from_list", [7, 8, 9])
    assert call(h, "deque.peek_front", d) == some(7)
    assert call(h, "deque.peek_back", d) == some(9)
    assert list(d) == [7, 8, 9]
    assert call(h, "deque.peek_front", Deque()) == NONE
    assert call(h, "deque.peek_back", Deque()) == NONE
    assert call(h, "deque.peek_back", Deque([None])) == some(None)


def test_deque_size_is_empty_lists(h):
    # deque_is_empty_on_fresh
    assert call(h, "deque.is_empty", call(h, "deque.from_list", [])) is True
    assert call(h, "deque.is_empty", Deque([0])) is False
    assert call(h, "deque.size", Deque([1, 2])) == 2
    xs = [1, [2], "3"]
    d = call(h, "deque.from_list", xs)
    assert type(d) is Deque and list(d) == xs
    out = call(h, "deque.to_list", d)
    assert type(out) is list and out == xs and out is not xs
    raises(h, "deque.from_list", [Deque()], "expected List, got Deque([])")
    raises(h, "deque.from_list", [(1,)], "expected List, got Tuple([Int(1)])")
    raises(h, "deque.from_list", [], "missing argument")


def test_deque_argument_errors(h):
    for op in ("size", "is_empty", "push_back", "push_front", "pop_back", "pop_front",
               "peek_back", "peek_front", "to_list"):
        raises(h, f"deque.{op}", [], "missing argument")
        raises(h, f"deque.{op}", [[1], 2], "expected Deque, got List([Int(1)])")
        raises(h, f"deque.{op}", [(1,), 2], "expected Deque, got Tuple([Int(1)])")


def test_deque_is_not_a_list_or_tuple():
    d = Deque([1, 2])
    assert not isinstance(d, (list, tuple))
    assert d != [1, 2] and d != (1, 2) and d == Deque([1, 2])
    assert debug_repr(d) == "Deque([Int(1), Int(2)])"
    assert debug_repr(some((1, Deque()))) == (
        "Variant { name: \"Some\", args: [Tuple([Int(1), Deque([])])] }")


def test_ops_leave_their_arguments_alone(h):
    cases = [
        ("map.set", [Map({"a": [1]}), "b", [2]]), ("map.delete", [Map({"a": 1}), "a"]),
        ("map.merge", [Map({"a": 1}), Map({"a": 2})]), ("map.keys", [Map({2: 1, "a": 2})]),
        ("map.from_list", [[("a", [1])]]), ("set.from_list", [[1, 1]]),
        ("deque.push_back", [Deque([1]), 2]), ("deque.push_front", [Deque([1]), 2]),
        ("deque.pop_back", [Deque([1, 2])]), ("deque.pop_front", [Deque([1, 2])]),
        ("deque.from_list", [[1, 2]]), ("deque.to_list", [Deque([[1]])]),
    ]
    for name, args in cases:
        before = frozen(args)
        kind, op = name.split(".")
        h.dispatch(kind, op, args)
        assert args == before, name
        assert [type(a) for a in args] == [type(a) for a in before], name


# -- against a model of the reference's BTreeMap / BTreeSet / VecDeque ---------------

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
KEYS = st.one_of(st.text(max_size=3), st.integers(-5, 5), st.sampled_from([I64_MIN, I64_MAX]))
MODEL_SETTINGS = settings(max_examples=150, deadline=None)


def btree_order(keys):
    # MapKey's derived Ord, written independently of mapkey_sorted
    return sorted(keys, key=lambda k: (type(k) is int, k.encode() if type(k) is str else k))


@pytest.fixture(scope="module")
def mh():
    handler = DefaultHandler(Policy.pure())
    try:
        yield handler
    finally:
        handler.close()


@MODEL_SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["set", "delete", "merge"]), KEYS, st.integers()),
                max_size=30))
def test_map_matches_a_btreemap_model(mh, ops):
    m, model = call(mh, "map.new"), {}
    for op, k, v in ops:
        if op == "set":
            m = call(mh, "map.set", m, k, v)
            model[k] = v
        elif op == "delete":
            m = call(mh, "map.delete", m, k)
            model.pop(k, None)
        else:
            m = call(mh, "map.merge", m, call(mh, "map.from_list", [(k, v)]))
            model[k] = v
        assert call(mh, "map.has", m, k) is (k in model)
        assert call(mh, "map.get", m, k) == (some(model[k]) if k in model else NONE)
    keys = btree_order(model)
    assert call(mh, "map.keys", m) == keys
    assert call(mh, "map.values", m) == [model[k] for k in keys]
    assert call(mh, "map.entries", m) == [(k, model[k]) for k in keys]
    assert call(mh, "map.size", m) == len(model)
    assert call(mh, "map.is_empty", m) is (not model)
    assert call(mh, "map.from_list", call(mh, "map.entries", m)) == m


@MODEL_SETTINGS
@given(st.lists(KEYS, max_size=12), st.lists(KEYS, max_size=12))
def test_set_matches_a_btreeset_model(mh, xs, ys):
    a, b = call(mh, "set.from_list", xs), call(mh, "set.from_list", ys)
    ma, mb = set(xs), set(ys)
    assert call(mh, "set.to_list", a) == btree_order(ma)
    assert call(mh, "set.to_list", call(mh, "set.union", a, b)) == btree_order(ma | mb)
    assert call(mh, "set.to_list", call(mh, "set.intersect", a, b)) == btree_order(ma & mb)
    assert call(mh, "set.to_list", call(mh, "set.diff", a, b)) == btree_order(ma - mb)
    assert call(mh, "set.is_subset", a, b) is (ma <= mb)
    assert call(mh, "set.size", a) == len(ma)
    for y in ys:
        assert call(mh, "set.has", a, y) is (y in ma)
        assert call(mh, "set.to_list", call(mh, "set.add", a, y)) == btree_order(ma | {y})
        assert call(mh, "set.to_list", call(mh, "set.delete", a, y)) == btree_order(ma - {y})


@MODEL_SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["push_back", "push_front", "pop_back", "pop_front"]),
                          st.integers()), max_size=30))
def test_deque_matches_a_vecdeque_model(mh, ops):
    d, model = call(mh, "deque.new"), []
    for op, v in ops:
        if op.startswith("push"):
            d = call(mh, f"deque.{op}", d, v)
            model = model + [v] if op == "push_back" else [v] + model
        else:
            r = call(mh, f"deque.{op}", d)
            if not model:
                assert r == NONE
                continue
            x = model[-1] if op == "pop_back" else model[0]
            model = model[:-1] if op == "pop_back" else model[1:]
            assert r == some((x, Deque(model)))
            d = r.args[0][1]
        assert call(mh, "deque.to_list", d) == model
        assert call(mh, "deque.peek_front", d) == (some(model[0]) if model else NONE)
        assert call(mh, "deque.peek_back", d) == (some(model[-1]) if model else NONE)
        assert call(mh, "deque.size", d) == len(model)
