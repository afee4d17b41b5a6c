"""The hot builtins through ``h.dispatch`` against the Python a VM
author would write inline for them: ``str.len`` (``len(s.encode())``),
``str.split`` (``s.split(sep)``), ``str.concat`` (``a + b``),
``int.to_str`` (``str(n)``); ``bytes.len`` (``len(b)``), ``bytes.slice``
(``b[lo:hi]``), ``bytes.concat`` (``a + b``), ``bytes.u32_le``
(``(n & 0xFFFFFFFF).to_bytes(4, "little")``), ``bytes.from_str``
(``s.encode()``); ``math.sqrt`` (``math.sqrt(x)``), ``math.floor``
(``float(math.floor(x))``), ``math.pow`` (``math.pow(x, y)``); and
``decimal.add`` against ``decimal.Decimal`` addition (the library a Python
programmer would pick for it); and the ``list``/``tuple``/``option``/
``result``/``map``/``set``/``deque`` ops (``len(xs)``, ``xs[1:]``,
``[x, *xs]``, ``o.name == "Some"``, ``m.get(k)``, ``k in s``, ...; the
``CASES`` table says which).

Each benchmark times a loop of ``INNER`` statements (as ``timeit`` does, the
names bound as locals), so pytest-benchmark's own per-call overhead does not
hide the dispatch cost, and the subjects of a group run interleaved
(bench/conftest.py); a median is per statement. Subjects:

- ``compiled``: ``DefaultHandler.dispatch`` on the compiled kernel with the
  compiled ops (lexfast/builtins/_text_c.pyx, _binary_c.pyx, _numeric_c.pyx,
  _seq_c.pyx, _containers_c.pyx),
  as the package serves them;
- ``twin``: the pure-Python kernel's dispatch with the Python definitions
  (what ``LEXFAST_NO_EXTENSIONS=1`` serves);
- ``builtin-call``: the selected builtin function called directly, no dispatch;
- ``inline``: the statement a VM author writes instead.

Run: pytest bench/bench_builtins.py --benchmark-enable
"""

from __future__ import annotations

import decimal
import importlib
import itertools
import math
import types

import pytest

import lexfast
from lexfast import DefaultHandler, Policy
from lexfast import builtins as B
from lexfast.builtins import binary, containers, numeric, seq, text
from lexfast.kernel import NONE, ok, some
from lexfast.kernel import _py as _twin
from lexfast.table import default_table
from lexfast.values import Deque, Map, Set

try:
    _core = importlib.import_module("lexfast.kernel._c")
except ImportError:  # pragma: no cover - no compiled core: the twin only
    _core = None

INNER = 1000

RATIO_TARGETS = [
    # (group, subject, baseline, max subject/baseline median). Measured on a
    # busy 2-core box, short mode, 4 runs (compiled / inline): str-len 1.57-1.66,
    # str-len-utf8 1.65-2.82, str-split 1.38-1.63, str-concat 1.38-2.72,
    # int-to-str 1.66-1.94; compiled / twin for str-len 0.24. The limits leave
    # room for this box's noise (CI adds 25% slack on top).
    ("builtin-str-len", "test_str_len[compiled]", "test_str_len[inline]", 3.0),
    ("builtin-str-len", "test_str_len[compiled]", "test_str_len[twin]", 0.5),
    ("builtin-str-len-utf8", "test_str_len_utf8[compiled]", "test_str_len_utf8[inline]", 3.5),
    ("builtin-str-split", "test_str_split[compiled]", "test_str_split[inline]", 2.5),
    ("builtin-str-concat", "test_str_concat[compiled]", "test_str_concat[inline]", 4.0),
    ("builtin-int-to-str", "test_int_to_str[compiled]", "test_int_to_str[inline]", 3.0),
    # issue 15, part 2 (loose: 3x the inline statement, as the issue's "no slower
    # than inline" is not reachable through a dispatch call for one-operation ops).
    # Two miss 3x and have their measured level instead: len(b) is one opcode
    # (~14 ns) against dispatch's own ~40 ns (measured 3.6-4.0x), and Decimal
    # addition is one C method on immutable objects where decimal.add reads two
    # records and builds a third (measured 3.4-3.8x).
    ("builtin-bytes-len", "test_bytes_len[compiled]", "test_bytes_len[inline]", 4.5),
    ("builtin-bytes-slice", "test_bytes_slice[compiled]", "test_bytes_slice[inline]", 3.0),
    ("builtin-bytes-concat", "test_bytes_concat[compiled]", "test_bytes_concat[inline]", 3.0),
    ("builtin-bytes-u32-le", "test_bytes_u32_le[compiled]", "test_bytes_u32_le[inline]", 3.0),
    ("builtin-bytes-from-str", "test_bytes_from_str[compiled]", "test_bytes_from_str[inline]", 3.0),
    ("builtin-math-sqrt", "test_math_sqrt[compiled]", "test_math_sqrt[inline]", 3.0),
    ("builtin-math-floor", "test_math_floor[compiled]", "test_math_floor[inline]", 3.0),
    ("builtin-math-pow", "test_math_pow[compiled]", "test_math_pow[inline]", 3.0),
    ("builtin-decimal-add", "test_decimal_add[compiled]", "test_decimal_add[inline]", 4.5),
    # the compiled ops against the twin's Python definitions, both via dispatch
    ("builtin-bytes-slice", "test_bytes_slice[compiled]", "test_bytes_slice[twin]", 0.8),
    ("builtin-math-floor", "test_math_floor[compiled]", "test_math_floor[twin]", 0.8),
    ("builtin-decimal-add", "test_decimal_add[compiled]", "test_decimal_add[twin]", 0.8),
]

SUBJECTS = (["compiled"] if _core is not None and text.TEXT_COMPILED
            and seq.SEQ_COMPILED and containers.CONTAINERS_COMPILED else []) + [
    "twin", "builtin-call", "inline"]

#: the Python definitions of the hot ops (what the twin serves)
_PY_OPS = {("str", "len"): text.str_len, ("str", "split"): text.str_split,
           ("str", "concat"): text.str_concat, ("int", "to_str"): text.int_to_str}
for _name, _fn in [*binary.PY_HOT.items(), *numeric.PY_HOT.items()]:
    _kind, _op = _name.split("_", 1)
    _PY_OPS[(_kind, _op)] = _fn
for _mod in (seq, containers):
    _PY_OPS.update({(k, o): getattr(_mod, f"_{k}_{o}") for (k, o) in _mod.BUILTINS
                    if f"{k}_{o}" in _mod._HOT})


def _loop(stmt: str, **names):
    """A function running ``stmt`` INNER times with ``names`` as locals."""
    params = ", ".join(f"{k}={k}" for k in names)
    src = f"def loop({params}):\n    for _ in _repeat(None, {INNER}):\n        {stmt}\n"
    ns = dict(names, _repeat=itertools.repeat)
    exec(compile(src, f"<bench {stmt}>", "exec"), ns)
    return ns["loop"]


def _twin_handler():
    """The pure-Python kernel's dispatch with the Python text ops as its pure
    table, built the way bench_core.py builds its twin handler."""
    table = default_table()
    ops = {k: {o: _twin.Row(k, o, r.gate, r.fn, r.index) for o, r in d.items()}
           for k, d in table.ops.items()}
    wild = {k: _twin.Row(k, "*", r.gate, r.fn, r.index) for k, r in table.wildcards.items()}
    effects = types.SimpleNamespace(ops=ops, wildcards=wild)

    class H(_twin.HandlerCore):
        pass

    h = H()
    policy = Policy.pure()
    h.session = DefaultHandler(policy).session
    pure = {}
    for (k, o), fn in _PY_OPS.items():
        pure.setdefault(k, {})[o] = fn
    h._setup(policy, effects, _twin.BudgetPool(policy.budget), pure)
    return h


@pytest.fixture(scope="module")
def handler():
    h = DefaultHandler(Policy.pure())
    yield h
    h.close()


def _run(interleaved, group, name, handler, kind, op, args, inline_stmt, inline_names, want,
         want_inline=None):
    """Time ``name`` interleaved with the group's other subjects (conftest.py)."""
    def build(subject):
        if subject == "inline":
            return _loop(inline_stmt, **inline_names), eval(inline_stmt, {}, dict(inline_names))
        if subject == "builtin-call":
            fn = B.TABLE[kind][op]
            return _loop("fn(args)", fn=fn, args=args), fn(args)
        if subject == "compiled":
            assert lexfast.COMPILED and text.TEXT_COMPILED
            assert binary.BINARY_COMPILED and numeric.NUMERIC_COMPILED
            assert seq.SEQ_COMPILED and containers.CONTAINERS_COMPILED
            h = handler
        else:
            h = _twin_handler()
        d = h.dispatch
        return _loop(f"d({kind!r}, {op!r}, args)", d=d, args=args), d(kind, op, args)

    def subjects():
        out = {}
        for subject in SUBJECTS:
            loop, check = build(subject)
            expected = want_inline if subject == "inline" and want_inline is not None else want
            assert check == expected, subject
            out[subject] = loop
        return out

    interleaved(group, subjects, name, inner=INNER)


@pytest.mark.parametrize("name", SUBJECTS)
def test_str_len(interleaved, handler, name):
    group = "builtin-str-len"
    s = "hello, world"
    _run(interleaved, group, name, handler, "str", "len", [s], "len(s.encode())", {"s": s}, 12)


@pytest.mark.parametrize("name", SUBJECTS)
def test_str_len_utf8(interleaved, handler, name):
    group = "builtin-str-len-utf8"
    s = "héllo, wörld, ünïcödé"
    _run(interleaved, group, name, handler, "str", "len", [s], "len(s.encode())", {"s": s}, 27)


@pytest.mark.parametrize("name", SUBJECTS)
def test_str_split(interleaved, handler, name):
    group = "builtin-str-split"
    s, sep = "alpha,beta,gamma,delta", ","
    _run(interleaved, group, name, handler, "str", "split", [s, sep], "s.split(sep)",
         {"s": s, "sep": sep}, ["alpha", "beta", "gamma", "delta"])


@pytest.mark.parametrize("name", SUBJECTS)
def test_str_concat(interleaved, handler, name):
    group = "builtin-str-concat"
    a, b = "hello, ", "world"
    _run(interleaved, group, name, handler, "str", "concat", [a, b], "a + b", {"a": a, "b": b},
         "hello, world")


@pytest.mark.parametrize("name", SUBJECTS)
def test_int_to_str(interleaved, handler, name):
    group = "builtin-int-to-str"
    n = 123456789
    _run(interleaved, group, name, handler, "int", "to_str", [n], "str(n)", {"n": n}, "123456789")


# -- issue 15, part 2: bytes, math, decimal ----------------------------------------

@pytest.mark.parametrize("name", SUBJECTS)
def test_bytes_len(interleaved, handler, name):
    group = "builtin-bytes-len"
    b = b"hello, world"
    _run(interleaved, group, name, handler, "bytes", "len", [b], "len(b)", {"b": b}, 12)


@pytest.mark.parametrize("name", SUBJECTS)
def test_bytes_slice(interleaved, handler, name):
    group = "builtin-bytes-slice"
    b, lo, hi = b"hello, world", 2, 9
    _run(interleaved, group, name, handler, "bytes", "slice", [b, lo, hi], "b[lo:hi]",
         {"b": b, "lo": lo, "hi": hi}, b"llo, wo")


@pytest.mark.parametrize("name", SUBJECTS)
def test_bytes_concat(interleaved, handler, name):
    group = "builtin-bytes-concat"
    a, b = b"hello, ", b"world"
    _run(interleaved, group, name, handler, "bytes", "concat", [a, b], "a + b", {"a": a, "b": b},
         b"hello, world")


@pytest.mark.parametrize("name", SUBJECTS)
def test_bytes_u32_le(interleaved, handler, name):
    group = "builtin-bytes-u32-le"
    n = 0x12345678
    _run(interleaved, group, name, handler, "bytes", "u32_le", [n], '(n & 0xFFFFFFFF).to_bytes(4, "little")',
         {"n": n}, b"\x78\x56\x34\x12")


@pytest.mark.parametrize("name", SUBJECTS)
def test_bytes_from_str(interleaved, handler, name):
    group = "builtin-bytes-from-str"
    s = "héllo, wörld"
    _run(interleaved, group, name, handler, "bytes", "from_str", [s], "s.encode()", {"s": s}, s.encode())


@pytest.mark.parametrize("name", SUBJECTS)
def test_math_sqrt(interleaved, handler, name):
    group = "builtin-math-sqrt"
    x = 2.25
    _run(interleaved, group, name, handler, "math", "sqrt", [x], "sqrt(x)", {"x": x, "sqrt": math.sqrt}, 1.5)


@pytest.mark.parametrize("name", SUBJECTS)
def test_math_floor(interleaved, handler, name):
    group = "builtin-math-floor"
    x = -2.5
    _run(interleaved, group, name, handler, "math", "floor", [x], "float(floor(x))",
         {"x": x, "floor": math.floor}, -3.0)


@pytest.mark.parametrize("name", SUBJECTS)
def test_math_pow(interleaved, handler, name):
    group = "builtin-math-pow"
    x, y = 1.5, 3.0
    _run(interleaved, group, name, handler, "math", "pow", [x, y], "pow(x, y)",
         {"x": x, "y": y, "pow": math.pow}, 3.375)


@pytest.mark.parametrize("name", SUBJECTS)
def test_decimal_add(interleaved, handler, name):
    group = "builtin-decimal-add"
    a = {"coefficient": 1995, "exponent": -2}
    b = {"coefficient": 5, "exponent": -1}
    da, db = decimal.Decimal("19.95"), decimal.Decimal("0.5")
    _run(interleaved, group, name, handler, "decimal", "add", [a, b], "da + db", {"da": da, "db": db},
         {"coefficient": 2045, "exponent": -2}, want_inline=decimal.Decimal("20.45"))


# -- list, tuple, option, result, map, set, deque ----------------------------------

_XS = [1, 2, 3, 4, 5, 6, 7, 8]
_MAP = Map({f"k{i}": i for i in range(16)})
_SET = Set(range(16))
_DEQUE = Deque(range(8))

#: (group, kind, op, args, inline expression, its names, the op's answer, the
#: inline answer when it is not the same value: ``m.get(k)`` has no Some)
CASES = [
    ("builtin-list-len", "list", "len", [_XS], "len(xs)", {"xs": _XS}, 8, None),
    ("builtin-list-head", "list", "head", [_XS], "some(xs[0]) if xs else NONE",
     {"xs": _XS, "some": some, "NONE": NONE}, some(1), None),
    ("builtin-list-tail", "list", "tail", [_XS], "xs[1:]", {"xs": _XS}, _XS[1:], None),
    ("builtin-list-concat", "list", "concat", [_XS, [9]], "a + b", {"a": _XS, "b": [9]},
     _XS + [9], None),
    ("builtin-list-cons", "list", "cons", [0, _XS], "[x, *xs]", {"x": 0, "xs": _XS},
     [0, *_XS], None),
    ("builtin-list-range", "list", "range", [0, 16], "list(range(lo, hi))",
     {"lo": 0, "hi": 16}, list(range(16)), None),
    ("builtin-tuple-fst", "tuple", "fst", [(1, "a")], "t[0]", {"t": (1, "a")}, 1, None),
    ("builtin-option-is-some", "option", "is_some", [some(1)], 'o.name == "Some"',
     {"o": some(1)}, True, None),
    ("builtin-option-unwrap-or", "option", "unwrap_or", [some(1), 0],
     'o.args[0] if o.name == "Some" else d', {"o": some(1), "d": 0}, 1, None),
    ("builtin-result-is-ok", "result", "is_ok", [ok(1)], 'r.name == "Ok"', {"r": ok(1)},
     True, None),
    ("builtin-map-get", "map", "get", [_MAP, "k3"], "m.get(k)", {"m": _MAP, "k": "k3"},
     some(3), 3),
    ("builtin-map-has", "map", "has", [_MAP, "k3"], "k in m", {"m": _MAP, "k": "k3"}, True,
     None),
    ("builtin-map-set", "map", "set", [_MAP, "z", 1], "Map({**m, k: v})",
     {"Map": Map, "m": _MAP, "k": "z", "v": 1}, Map({**_MAP, "z": 1}), None),
    ("builtin-map-size", "map", "size", [_MAP], "len(m)", {"m": _MAP}, 16, None),
    ("builtin-map-keys", "map", "keys", [_MAP], "sorted(m)", {"m": _MAP}, sorted(_MAP), None),
    ("builtin-set-has", "set", "has", [_SET, 3], "k in s", {"s": _SET, "k": 3}, True, None),
    ("builtin-set-add", "set", "add", [_SET, 99], "Set(s | {k})",
     {"Set": Set, "s": _SET, "k": 99}, Set([*_SET, 99]), None),
    ("builtin-deque-push-back", "deque", "push_back", [_DEQUE, 8], "Deque([*q, x])",
     {"Deque": Deque, "q": _DEQUE, "x": 8}, Deque(range(9)), None),
    ("builtin-deque-size", "deque", "size", [_DEQUE], "len(q)", {"q": _DEQUE}, 8, None),
]


def _case_id(group: str) -> str:
    return group.removeprefix("builtin-")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c[0]) for c in CASES])
@pytest.mark.parametrize("name", SUBJECTS)
def test_container_op(interleaved, handler, name, case):
    group, kind, op, args, stmt, names, want, inline_want = case
    _run(interleaved, group, name, handler, kind, op, args, stmt, names, want, inline_want)


# Measured on a busy 2-core box (0.3 s per benchmark, three runs). Through
# dispatch against the inline Python: 0.59-1.37 for the ops that copy
# (map.set, set.add, deque.push_back, list.tail/range, map.keys), 1.4-2.6 for
# most others, and up to 4.0 (len/size) and 5.6 (tuple.fst against a bare
# ``t[0]``) where the op is a few ns and dispatch's own ~40 ns dominates.
# The compiled function called directly: 0.39-2.5 (map.get the highest: its
# answer allocates a Some that ``m.get(k)`` does not). Against the pure-Python
# twin's dispatch: 0.17-0.61.
_DISPATCH_LIMITS = {"list-len": 5.0, "map-size": 5.0, "deque-size": 5.0, "tuple-fst": 7.0,
                    "map-get": 4.5, "list-tail": 2.0, "list-range": 1.6, "map-set": 1.0,
                    "map-keys": 1.5, "set-add": 1.0, "deque-push-back": 1.0}
RATIO_TARGETS += [
    (c[0], f"test_container_op[compiled-{_case_id(c[0])}]",
     f"test_container_op[inline-{_case_id(c[0])}]", _DISPATCH_LIMITS.get(_case_id(c[0]), 3.0))
    for c in CASES]
RATIO_TARGETS += [
    (c[0], f"test_container_op[builtin-call-{_case_id(c[0])}]",
     f"test_container_op[inline-{_case_id(c[0])}]", 3.0) for c in CASES]
RATIO_TARGETS += [
    (f"builtin-{g}", f"test_container_op[compiled-{g}]", f"test_container_op[twin-{g}]", 0.6)
    for g in ("list-len", "map-get", "set-add", "option-is-some")]
