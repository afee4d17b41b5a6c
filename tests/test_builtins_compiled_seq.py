"""The compiled ``list``/``tuple``/``option``/``result`` ops (_seq_c.pyx) and
``map``/``set``/``deque`` ops (_containers_c.pyx) against their Python
definitions in seq.py and containers.py: the edges only a compiled twin has
(exact-type fast paths next to subclasses, Bool next to Int, i64 bounds,
half-built values, short argument lists, the fast path's size limits).
Run once per core (``LEXFAST_NO_EXTENSIONS=1`` for the pure-Python one):
there the table holds the Python definitions and every case is theirs.
"""

from __future__ import annotations

import glob
import os

import pytest

import lexfast
from lexfast import DefaultHandler, EffectError, Policy
from lexfast import builtins as B
from lexfast.builtins import containers as C
from lexfast.builtins import seq as S
from lexfast.kernel import NONE, Variant, err, ok, some
from lexfast.values import Deque, Map, Set, debug_repr

I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)


def _flag(name):
    return os.environ.get(name, "").strip() not in ("", "0")


@pytest.fixture(scope="module")
def h():
    handler = DefaultHandler(Policy.pure())
    yield handler
    handler.close()


def d(h, kind, op, *args):
    return h.dispatch(kind, op, list(args))


def fails(h, kind, op, args, msg):
    with pytest.raises(EffectError) as e:
        h.dispatch(kind, op, list(args))
    assert str(e.value) == msg


class SubStr(str):
    pass


class SubInt(int):
    pass


class SubList(list):
    pass


class SubTuple(tuple):
    pass


class SubVariant(Variant):
    pass


class SubMap(Map):
    pass


class SubSet(Set):
    pass


class SubDeque(Deque):
    pass


def _half_built(name):
    """A Variant whose ``__init__`` failed after setting its name: the
    compiled kernel's C fields then hold ``name`` and ``args=None`` (the
    twin kernel's has no ``args`` at all, and its ``.args`` raises; only the
    compiled core's is tested here)."""
    v = Variant.__new__(Variant)
    try:
        v.__init__(name, 5)  # 5 is not iterable: args is never set
    except TypeError:
        pass
    return v


#: (module, kind, op) of every op with a compiled twin
_MODULES = ((S, "SEQ_COMPILED", "_seq_c"), (C, "CONTAINERS_COMPILED", "_containers_c"))
_OPS = [(mod, kind, op) for mod, _, _ in _MODULES
        for (kind, op) in mod.BUILTINS if f"{kind}_{op}" in mod._HOT]


# -- the table follows the kernel ----------------------------------------------

def test_every_list_tuple_option_result_map_set_deque_op_has_a_twin():
    kinds = {"list", "tuple", "option", "result", "map", "set", "deque"}
    ops = {(k, o) for k in kinds for o in B.TABLE[k]}
    assert ops == {(k, o) for _, k, o in _OPS}


@pytest.mark.parametrize(("mod", "flag", "ext"), _MODULES)
def test_the_compiled_ops_follow_the_kernel(mod, flag, ext):
    compiled = getattr(mod, flag)
    if _flag("LEXFAST_NO_EXTENSIONS") or not lexfast.COMPILED:
        assert not compiled
    elif _flag("LEXFAST_REQUIRE_EXTENSIONS"):
        assert compiled
    for (kind, op), fn in mod.BUILTINS.items():
        name = f"{kind}_{op}"
        if name not in mod._HOT:
            continue
        assert B.TABLE[kind][op] is fn
        if compiled:
            assert fn.__module__ == f"lexfast.builtins.{ext}"
            assert fn.__name__ == name
        else:
            assert fn is getattr(mod, "_" + name)


@pytest.mark.parametrize("ext", ["_seq_c", "_containers_c"])
def test_the_compiled_ops_are_not_stale(ext):
    here = os.path.dirname(S.__file__)
    pyx = os.path.join(here, f"{ext}.pyx")
    if not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(here)), "setup.py")):
        pytest.skip("an installed build (its .pyx ships beside it for reference)")
    for so in glob.glob(os.path.join(here, f"{ext}.*.so")):
        assert os.path.getmtime(so) >= os.path.getmtime(pyx), \
            f"{so} is older than {pyx}: rebuild it (python setup.py build_ext --inplace)"


# -- the compiled ops answer as the Python definitions ---------------------------

def _shape(v):
    """A value's type and rendering (a Set's order, a NaN's identity aside)."""
    if isinstance(v, (list, tuple)) and not isinstance(v, Deque):
        return (type(v), tuple(_shape(x) for x in v))
    return (type(v), debug_repr(v))


def _outcome(fn, args):
    before = _shape(args)
    try:
        out = ("ok", _shape(fn(args)))
    except EffectError as e:
        out = ("err", str(e))
    assert _shape(args) == before, "an op changed its arguments"
    return out


def _python(mod, kind, op):
    return getattr(mod, f"_{kind}_{op}")


_EDGE_VALUES = [
    None, True, False, 0, 1, -1, I64_MAX, I64_MIN, I64_MAX + 1, I64_MIN - 1, 1 << 100,
    SubInt(2), 1.5, float("nan"), "", "a", SubStr("b"), "\ud800", b"x",
    [], [1, 2, 3], ["a", 1], SubList([1, 2]), [[1, "x"]], [("a", 1), (2, "b")],
    [("a", 1), ("a", 2)], [("a", 1), [2, 3]], [(True, 1)], [(I64_MAX + 1, 1)],
    [(SubStr("k"), 1)], [SubTuple(("k", 1))], [1, True], [1, 1 << 64],
    (), (1,), (1, 2), (1, 2, 3), SubTuple((4, 5, 6)), {"a": 1},
    some(1), some(None), NONE, ok(2), err("e"), Variant("Some"), Variant("X", (1,)),
    SubVariant("Some", (3,)), SubVariant("None"),
    *([_half_built("Some"), _half_built("Ok"), _half_built("None"), _half_built("Err")]
      if lexfast.COMPILED else []),
    Map(), Map({"a": 1, 2: "b"}), Map({1: 1, 3: 3}), SubMap({"s": 1}), Map({1.5: 1}),
    Set(), Set({"a", 1}), Set({1, 2}), SubSet({"x"}), Set({"a", "b", 3}),
    Deque(), Deque([1, 2]), SubDeque([3]),
]


@pytest.mark.parametrize(("mod", "kind", "op"), _OPS, ids=[f"{k}.{o}" for _, k, o in _OPS])
def test_each_op_answers_as_its_python_definition_on_edge_values(mod, kind, op):
    """Every one- and two-argument combination of the edge values (and short
    argument lists): the table's function (compiled on that core) and the
    Python definition give the same value or the same error text."""
    fn = B.TABLE[kind][op]
    py = _python(mod, kind, op)
    arglists = [[], [NONE]] + [[v] for v in _EDGE_VALUES]
    arglists += [[a, b] for a in _EDGE_VALUES for b in _EDGE_VALUES[::3]]
    arglists += [[a, "k", 7] for a in _EDGE_VALUES] + [[Map(), k, 1] for k in _EDGE_VALUES]
    for args in arglists:
        assert _outcome(fn, args) == _outcome(py, args), (kind, op, args)
        # a tuple of arguments (a direct caller's) is the Python definition's too
        assert _outcome(fn, tuple(args)) == _outcome(py, tuple(args)), (kind, op, args)


def test_generated_arguments_answer_as_the_python_definitions():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    keys = st.one_of(st.text(max_size=3), st.integers(-3, 3), st.booleans(),
                     st.sampled_from([I64_MAX, I64_MIN, I64_MAX + 1, SubInt(1), SubStr("s")]))
    scalars = st.one_of(st.none(), keys, st.floats(allow_nan=False), st.binary(max_size=2))

    def extend(children):
        return st.one_of(
            st.lists(children, max_size=4),
            st.lists(children, max_size=3).map(tuple),
            st.lists(children, max_size=3).map(SubList),
            st.tuples(keys, children),
            st.dictionaries(st.one_of(st.text(max_size=3), st.integers(-3, 3)), children,
                            max_size=3).map(Map),
            st.lists(st.one_of(st.text(max_size=2), st.integers(-3, 3)), max_size=4).map(Set),
            st.lists(children, max_size=3).map(Deque),
            st.tuples(st.sampled_from(["Some", "None", "Ok", "Err", "X"]),
                      st.lists(children, max_size=2).map(tuple)).map(lambda t: Variant(*t)),
        )

    values = st.recursive(scalars, extend, max_leaves=8)

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(_OPS), st.lists(values, max_size=3))
    def check(target, args):
        mod, kind, op = target
        assert _outcome(B.TABLE[kind][op], args) == _outcome(_python(mod, kind, op), args)

    check()


# -- list, tuple ------------------------------------------------------------------

def test_list_ops_take_a_list_subclass_and_answer_exact_lists(h):
    xs = SubList([1, 2, 3])
    assert d(h, "list", "len", xs) == 3
    assert d(h, "list", "is_empty", SubList()) is True
    assert d(h, "list", "head", xs) == some(1)
    for op, want in (("tail", [2, 3]), ("reverse", [3, 2, 1]),
                     ("enumerate", [(0, 1), (1, 2), (2, 3)])):
        out = d(h, "list", op, xs)
        assert out == want and type(out) is list
    assert d(h, "list", "concat", xs, [4]) == [1, 2, 3, 4]
    assert d(h, "list", "cons", 0, xs) == [0, 1, 2, 3]
    assert type(d(h, "list", "cons", 0, xs)) is list


def test_list_ops_never_take_a_tuple_or_bool(h):
    fails(h, "list", "len", [(1, 2)], "expected List, got Tuple([Int(1), Int(2)])")
    fails(h, "list", "head", [True], "expected List, got Bool(true)")
    fails(h, "list", "concat", [[1], (2,)], "expected List, got Tuple([Int(2)])")
    fails(h, "list", "concat", [[1]], "missing argument")
    fails(h, "list", "cons", [1, (2,)], "list.cons: expected List, got Tuple([Int(2)])")
    assert d(h, "list", "cons", 1) == [1]  # the VM's path: a missing tail is []
    assert h.dispatch("list", "cons", []) == [None]


def test_list_results_are_new_lists(h):
    xs = [1, 2, 3]
    for op in ("tail", "reverse"):
        out = d(h, "list", op, xs)
        assert out is not xs
        out.append(9)
        assert xs == [1, 2, 3]
    out = d(h, "list", "cons", 0, xs)
    out.append(9)
    assert xs == [1, 2, 3]
    assert d(h, "list", "tail", []) == []
    assert d(h, "list", "reverse", []) == []


def test_list_range_bounds(h):
    assert d(h, "list", "range", 3, 3) == []
    assert d(h, "list", "range", 5, 1) == []
    assert d(h, "list", "range", I64_MAX - 2, I64_MAX) == [I64_MAX - 2, I64_MAX - 1]
    assert d(h, "list", "range", I64_MIN, I64_MIN + 2) == [I64_MIN, I64_MIN + 1]
    assert d(h, "list", "range", I64_MAX, I64_MIN) == []
    assert d(h, "list", "range", SubInt(1), 3) == [1, 2]
    # either side of the compiled fast path's size limit, and the cap
    for n in ((1 << 16) - 1, 1 << 16, (1 << 16) + 1, 100_000):
        out = d(h, "list", "range", -5, n - 5)
        assert len(out) == n and out[0] == -5 and out[-1] == n - 6
    big = S.RANGE_MAX + 1
    fails(h, "list", "range", [0, big],
          f"list.range: [0..{big}) has {big} elements, more than {S.RANGE_MAX}")
    fails(h, "list", "range", [I64_MIN, I64_MAX],
          f"list.range: [{I64_MIN}..{I64_MAX}) has {(1 << 64) - 1} elements, more than {S.RANGE_MAX}")
    fails(h, "list", "range", [True, 3], "expected Int, got Bool(true)")
    fails(h, "list", "range", [0, I64_MAX + 1],
          f"expected Int, got an integer outside i64: {I64_MAX + 1}")
    fails(h, "list", "range", [0], "missing argument")


def test_tuple_ops_on_a_tuple_subclass_and_short_tuples(h):
    t = SubTuple((1, 2, 3))
    assert (d(h, "tuple", "fst", t), d(h, "tuple", "snd", t), d(h, "tuple", "third", t)) == (1, 2, 3)
    assert d(h, "tuple", "len", t) == 3
    fails(h, "tuple", "fst", [()], "tuple index 0 out of range (len=0)")
    fails(h, "tuple", "third", [(1, 2)], "tuple index 2 out of range (len=2)")
    fails(h, "tuple", "fst", [[1, 2]], "expected Tuple, got List([Int(1), Int(2)])")
    fails(h, "tuple", "len", [[1]], "tuple.len: expected Tuple, got List([Int(1)])")
    fails(h, "tuple", "snd", [], "missing argument")


# -- option, result ---------------------------------------------------------------

def test_option_result_on_variants_the_fast_path_does_not_read(h):
    # a subclass is read through its Python attributes, as the Python definition does
    assert d(h, "option", "unwrap_or", SubVariant("Some", (3,)), 0) == 3
    assert d(h, "option", "is_some", SubVariant("Some", (3,))) is True
    assert d(h, "result", "is_err", SubVariant("Err", ("e",))) is True
    # a payload-less Some, a half-built Variant: the reference's error, no crash
    half = lexfast.COMPILED
    for v in (Variant("Some"), *([_half_built("Some")] if half else [])):
        fails(h, "option", "unwrap_or", [v, 0], f"option.unwrap_or expected Option, got {debug_repr(v)}")
        fails(h, "option", "ok_or", [v, 0], f"option.ok_or expected Option, got {debug_repr(v)}")
    for v in (Variant("Ok"), *([_half_built("Ok")] if half else [])):
        fails(h, "result", "unwrap_or", [v, 0], f"result.unwrap_or expected Result, got {debug_repr(v)}")
    if half:
        assert d(h, "option", "unwrap_or", _half_built("None"), 7) == 7
        assert d(h, "option", "is_some", _half_built("Some")) is True


def test_option_result_answers(h):
    assert d(h, "option", "unwrap_or", NONE) is None  # Unit when the default is absent
    assert d(h, "option", "ok_or", NONE) == err(None)
    assert d(h, "option", "ok_or", some(1), "e") == ok(1)
    assert d(h, "option", "ok_or", NONE, "e") == err("e")
    assert d(h, "result", "unwrap_or_else", err("x"), 5) == 5
    assert d(h, "option", "is_none", Variant("X")) is False
    fails(h, "option", "is_some", [1], "option.is_some expected Option, got Int(1)")
    fails(h, "result", "is_ok", [], "missing argument")
    out = d(h, "list", "head", [7])
    assert out == some(7) and hash(out) == hash(some(7))


# -- map ------------------------------------------------------------------------

def test_map_keys_bool_subclass_and_i64(h):
    m = Map({"a": 1, 2: "b"})
    fails(h, "map", "get", [m, True], "map/set key must be Str or Int, got Bool(true)")
    fails(h, "map", "set", [m, 1.0, 1], "map/set key must be Str or Int, got Float(1.0)")
    fails(h, "map", "has", [m, I64_MAX + 1],
          f"map/set key must be Str or Int, got an integer outside i64: Int({I64_MAX + 1})")
    assert d(h, "map", "get", m, SubInt(2)) == some("b")
    out = d(h, "map", "set", m, SubStr("k"), 1)
    assert type(next(k for k in out if k == "k")) is str
    assert d(h, "map", "has", m, I64_MAX) is False
    assert d(h, "map", "get", Map({I64_MIN: 0}), I64_MIN) == some(0)
    fails(h, "map", "get", [m], "map.get: missing key")
    fails(h, "map", "set", [m, "k"], "map.set: missing value")
    fails(h, "map", "size", [], "expected Map, got None")
    fails(h, "map", "size", [{"a": 1}], 'expected Map, got Some(Record({"a": Int(1)}))')


def test_map_results_are_new_maps_of_the_exact_type(h):
    m = Map({"a": 1})
    for out in (d(h, "map", "set", m, "b", 2), d(h, "map", "delete", m, "a"),
                d(h, "map", "delete", m, "zz"), d(h, "map", "merge", m, Map({"a": 9})),
                d(h, "map", "from_list", [("a", 1)]), h.dispatch("map", "new", [])):
        assert type(out) is Map and out is not m
    assert m == Map({"a": 1})
    sub = SubMap({"s": 1})
    out = d(h, "map", "set", sub, "t", 2)
    assert type(out) is Map and out == Map({"s": 1, "t": 2})
    assert d(h, "map", "merge", m, sub) == Map({"a": 1, "s": 1})


def test_map_from_list_fast_path_declines_midway(h):
    # a bad pair after good ones: the whole call is the error, no partial map
    fails(h, "map", "from_list", [[("a", 1), ("b", 2), ["c", 3]]],
          'map.from_list element must be a 2-tuple, got List([Str("c"), Int(3)])')
    fails(h, "map", "from_list", [[("a", 1), (True, 2)]],
          "map/set key must be Str or Int, got Bool(true)")
    fails(h, "map", "from_list", [[("a", 1, 2)]],
          'map.from_list element must be a 2-tuple, got Tuple([Str("a"), Int(1), Int(2)])')
    assert d(h, "map", "from_list", [("a", 1), SubTuple(("b", 2)), ("a", 3)]) == Map({"a": 3, "b": 2})
    assert d(h, "map", "from_list", SubList([("a", 1)])) == Map({"a": 1})


def test_map_order_of_a_big_mixed_map(h):
    m = Map()
    for i in range(5000):
        m[f"k{i}"] = i
        m[-i] = i
    keys = d(h, "map", "keys", m)
    assert keys == sorted(f"k{i}" for i in range(5000)) + list(range(-4999, 1))
    assert d(h, "map", "values", m) == [m[k] for k in keys]
    assert d(h, "map", "entries", m) == [(k, m[k]) for k in keys]
    assert d(h, "map", "keys", Map({1.5: 1, 1: 2})) == [1, 1.5]  # a VM's stray Float key


# -- set ------------------------------------------------------------------------

def test_set_results(h):
    s = Set({"a", 1})
    assert d(h, "set", "add", s, "a") is s
    assert d(h, "set", "delete", s, "zz") is s
    out = d(h, "set", "add", s, 2)
    assert type(out) is Set and out == Set({"a", 1, 2}) and s == Set({"a", 1})
    assert hash(out) == hash(Set({"a", 1, 2}))  # filled before anything hashed it
    assert out in {Set({"a", 1, 2})}
    out = d(h, "set", "delete", s, 1)
    assert type(out) is Set and out == Set({"a"})
    for op in ("union", "intersect", "diff"):
        assert type(d(h, "set", op, s, Set({1}))) is Set
    assert type(h.dispatch("set", "new", [])) is Set
    sub = SubSet({"x"})
    assert type(d(h, "set", "add", sub, "y")) is Set
    assert d(h, "set", "is_subset", sub, Set({"x", "y"})) is True


def test_set_keys(h):
    fails(h, "set", "from_list", [[1, "a", True]], "map/set key must be Str or Int, got Bool(true)")
    fails(h, "set", "from_list", [[1, 1 << 64]],
          f"map/set key must be Str or Int, got an integer outside i64: Int({1 << 64})")
    fails(h, "set", "has", [Set(), None], "map/set key must be Str or Int, got Unit")
    fails(h, "set", "add", [Set()], "set.add: missing element")
    fails(h, "set", "size", [frozenset()], "expected Set, got Some(<frozenset>)")
    fails(h, "set", "size", [], "expected Set, got None")
    out = d(h, "set", "from_list", [SubStr("a"), SubInt(1), "a", 1])
    assert out == Set({"a", 1}) and all(type(x) in (str, int) for x in out)
    big = list(range(100_000)) + [str(i) for i in range(1000)]
    out = d(h, "set", "from_list", big)
    assert len(out) == 101_000
    assert d(h, "set", "to_list", out) == sorted(str(i) for i in range(1000)) + list(range(100_000))


# -- deque ----------------------------------------------------------------------

def test_deque_results(h):
    q = Deque([1, 2])
    for op, args in (("push_back", [q, 3]), ("push_front", [q, 0])):
        out = h.dispatch("deque", op, args)
        assert type(out) is Deque and out is not q and out.maxlen is None
    assert q == Deque([1, 2])
    assert d(h, "deque", "pop_back", q) == some((2, Deque([1])))
    assert d(h, "deque", "pop_front", q) == some((1, Deque([2])))
    assert q == Deque([1, 2])
    assert d(h, "deque", "pop_back", Deque()) == NONE
    assert d(h, "deque", "peek_back", q) == some(2)
    assert d(h, "deque", "peek_front", SubDeque([5])) == some(5)
    new = h.dispatch("deque", "new", [])
    assert type(new) is Deque and new.maxlen is None and len(new) == 0
    assert type(d(h, "deque", "push_back", SubDeque([1]), 2)) is Deque
    assert d(h, "deque", "to_list", q) == [1, 2]
    assert type(d(h, "deque", "from_list", SubList([1]))) is Deque
    fails(h, "deque", "push_back", [q], "deque.push_back: missing value")
    fails(h, "deque", "size", [[1]], "expected Deque, got List([Int(1)])")
    fails(h, "deque", "size", [], "missing argument")
