"""Pure builtins ``list``, ``tuple``, ``option``, ``result`` and ``test``
(the reference's ``builtins.rs``, ``fn dispatch`` and ``call_pure_builtin``).

Hot: each op checks its argument's exact type first and falls back to the
shared checks (``_args``) only to accept a subclass or to word the error.
When the compiled kernel is in use, the ``list``/``tuple``/``option``/
``result`` ops come from the compiled ``lexfast.builtins._seq_c`` (same
semantics, same tests; it hands every case but the exact-typed one back to
the definitions here); otherwise, or under ``LEXFAST_NO_EXTENSIONS``, these
Python definitions serve.
Values are immutable to the VM, so an op returns its argument's own object
where the reference returns a clone (``list.head``'s element, the Some's
payload) and never mutates an argument list.

Where lexfast differs from the reference:

* ``list.range`` refuses more than ``RANGE_MAX`` elements
  (``list.range: [lo..hi) has N elements, more than RANGE_MAX``): the
  reference allocates them all, so a huge range exhausts memory.
* ``test.assert_eq``/``assert_ne`` compare by Lex equality (a Bool is never
  an Int, ``1`` is not ``1.0``, NaN is never equal to itself, a Record is not
  a Map); a value nested too deeply to compare or render is an
  ``EffectError`` where the reference would overflow its stack.
"""

from __future__ import annotations

import os
from collections import deque
from math import copysign

from .. import values as _values
from ..errors import EffectError
from ..kernel import COMPILED, NONE, Variant, err, ok, some
from ..values import Map, debug_repr
from ._args import expect_int, expect_list

#: The most elements ``list.range`` builds (a Python list of that many Ints is
#: about 150 MB); past it the call is refused rather than exhausting memory.
RANGE_MAX = 1 << 22

_MISSING = "missing argument"

# The containers group adds these to ``lexfast.values``; until then a Python
# ``set``/``frozenset`` is a Set and a ``collections.deque`` a Deque.
_SET_TYPES: tuple = tuple(t for t in (getattr(_values, "Set", None), set, frozenset) if t)
_DEQUE_TYPES: tuple = tuple(t for t in (getattr(_values, "Deque", None), deque) if t)


# -- list -------------------------------------------------------------------------

def _list_len(args: list) -> int:
    if args and type(args[0]) is list:
        return len(args[0])
    return len(expect_list(args, 0))


def _list_is_empty(args: list) -> bool:
    if args and type(args[0]) is list:
        return not args[0]
    return not expect_list(args, 0)


def _list_head(args: list) -> object:
    xs = args[0] if args and type(args[0]) is list else expect_list(args, 0)
    return some(xs[0]) if xs else NONE


def _list_tail(args: list) -> list:
    xs = args[0] if args and type(args[0]) is list else expect_list(args, 0)
    return xs[1:]


def _list_range(args: list) -> list:
    lo = expect_int(args, 0)
    hi = expect_int(args, 1)
    if hi - lo > RANGE_MAX:
        raise EffectError(
            f"list.range: [{lo}..{hi}) has {hi - lo} elements, more than {RANGE_MAX}")
    return list(range(lo, hi))


def _list_concat(args: list) -> list:
    if len(args) >= 2 and type(args[0]) is list and type(args[1]) is list:
        return args[0] + args[1]
    return expect_list(args, 0) + expect_list(args, 1)


def _list_reverse(args: list) -> list:
    xs = args[0] if args and type(args[0]) is list else expect_list(args, 0)
    return xs[::-1]


def _list_cons(args: list) -> list:
    # the VM's path (call_pure_builtin): a missing head is Unit, a missing
    # tail the empty list, and the error names the op
    n = len(args)
    if n >= 2:
        tail = args[1]
        if not isinstance(tail, list):
            raise EffectError(f"list.cons: expected List, got {debug_repr(tail)}")
        return [args[0], *tail]
    return [args[0]] if n else [None]


def _list_enumerate(args: list) -> list:
    xs = args[0] if args and type(args[0]) is list else expect_list(args, 0)
    return list(enumerate(xs))


# -- tuple ------------------------------------------------------------------------

def _tuple_at(args: list, i: int) -> object:
    if not args:
        raise EffectError(_MISSING)
    t = args[0]
    if isinstance(t, tuple):
        if i < len(t):
            return t[i]
        raise EffectError(f"tuple index {i} out of range (len={len(t)})")
    raise EffectError(f"expected Tuple, got {debug_repr(t)}")


def _tuple_fst(args: list) -> object:
    return _tuple_at(args, 0)


def _tuple_snd(args: list) -> object:
    return _tuple_at(args, 1)


def _tuple_third(args: list) -> object:
    return _tuple_at(args, 2)


def _tuple_len(args: list) -> int:
    if not args:
        raise EffectError(_MISSING)
    t = args[0]
    if isinstance(t, tuple):
        return len(t)
    raise EffectError(f"tuple.len: expected Tuple, got {debug_repr(t)}")


# -- option -----------------------------------------------------------------------
# Any Variant is accepted where the reference matches on the name alone
# (``option.is_some(Ok(1))`` is false, not an error).

def _unwrap(op: str, keep: str, fallback: str, what: str):
    """``option``/``result`` ``unwrap_or[_else]``: the payload of ``keep``,
    else the second argument (Unit when absent) for ``fallback``; any
    Variant is matched by name as in the reference."""
    def unwrap(args: list) -> object:
        if not args:
            raise EffectError(_MISSING)
        v = args[0]
        if isinstance(v, Variant):
            name = v.name
            if name == keep:
                payload = v.args
                if payload:
                    return payload[0]
            elif name == fallback:
                return args[1] if len(args) > 1 else None
        raise EffectError(f"{op} expected {what}, got {debug_repr(v)}")
    return unwrap


_option_unwrap_or = _unwrap("option.unwrap_or", "Some", "None", "Option")


# The reference cannot call a closure here: its compiler emits the call
# inline, and this fallback returns the second argument as it is (the VM is
# expected to have evaluated the thunk into it), Unit when absent.
_option_unwrap_or_else = _unwrap("option.unwrap_or_else", "Some", "None", "Option")


def _option_is_some(args: list) -> bool:
    if not args:
        raise EffectError(_MISSING)
    o = args[0]
    if isinstance(o, Variant):
        return o.name == "Some"
    raise EffectError(f"option.is_some expected Option, got {debug_repr(o)}")


def _option_is_none(args: list) -> bool:
    if not args:
        raise EffectError(_MISSING)
    o = args[0]
    if isinstance(o, Variant):
        return o.name == "None"
    raise EffectError(f"option.is_none expected Option, got {debug_repr(o)}")


def _option_ok_or(args: list) -> object:
    if not args:
        raise EffectError(_MISSING)
    o = args[0]
    if isinstance(o, Variant):
        name = o.name
        if name == "Some":
            payload = o.args
            if payload:
                return ok(payload[0])
        elif name == "None":
            return err(args[1] if len(args) > 1 else None)
    raise EffectError(f"option.ok_or expected Option, got {debug_repr(o)}")


# -- result -----------------------------------------------------------------------

def _result_is_ok(args: list) -> bool:
    if not args:
        raise EffectError(_MISSING)
    r = args[0]
    if isinstance(r, Variant):
        return r.name == "Ok"
    raise EffectError(f"result.is_ok expected Result, got {debug_repr(r)}")


def _result_is_err(args: list) -> bool:
    if not args:
        raise EffectError(_MISSING)
    r = args[0]
    if isinstance(r, Variant):
        return r.name == "Err"
    raise EffectError(f"result.is_err expected Result, got {debug_repr(r)}")


_result_unwrap_or = _unwrap("result.unwrap_or", "Ok", "Err", "Result")


# as option.unwrap_or_else: the second argument is returned, not called
_result_unwrap_or_else = _unwrap("result.unwrap_or_else", "Ok", "Err", "Result")


# -- test -------------------------------------------------------------------------
# The messages render values as the reference's ``Value::to_json`` printed by
# serde_json (compact; object keys sorted, serde_json's default map), not as
# ``{:?}``.

def _kind(v: object) -> object:
    """The Lex kind of a Python value, for equality across Python types."""
    if v is None:
        return "Unit"
    if isinstance(v, bool):
        return "Bool"
    if isinstance(v, int):
        return "Int"
    if isinstance(v, float):
        return "Float"
    if isinstance(v, str):
        return "Str"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "Bytes"
    if isinstance(v, Map):
        return "Map"
    if isinstance(v, dict):
        return "Record"
    if isinstance(v, _DEQUE_TYPES):
        return "Deque"
    if isinstance(v, list):
        return "List"
    if isinstance(v, tuple):
        return "Tuple"
    if isinstance(v, _SET_TYPES):
        return "Set"
    if isinstance(v, Variant):
        return "Variant"
    return type(v)


_SCALAR_KINDS = frozenset(("Bool", "Int", "Float", "Str", "Bytes", "Set"))


def lex_eq(a: object, b: object) -> bool:
    """Lex's structural ``==`` (the reference's ``PartialEq for Value``)."""
    t = type(a)
    if t is type(b) and (t is str or t is int or t is bytes or t is float):
        return a == b  # a NaN is not equal to itself here, as in IEEE
    ka = _kind(a)
    if ka != _kind(b):
        return False
    if ka in _SCALAR_KINDS:
        return bool(a == b)
    if ka == "Unit":
        return True
    if ka in ("List", "Tuple", "Deque"):
        xs: list = a  # type: ignore[assignment]
        ys: list = b  # type: ignore[assignment]
        return len(xs) == len(ys) and all(lex_eq(x, y) for x, y in zip(xs, ys, strict=True))
    if ka in ("Record", "Map"):
        da: dict = a  # type: ignore[assignment]
        db: dict = b  # type: ignore[assignment]
        return da.keys() == db.keys() and all(lex_eq(x, db[k]) for k, x in da.items())
    if ka == "Variant":
        va: Variant = a  # type: ignore[assignment]
        vb: Variant = b  # type: ignore[assignment]
        return va.name == vb.name and lex_eq(tuple(va.args), tuple(vb.args))
    return a is b or bool(a == b)


def _json_str(s: str) -> str:
    import json  # only on a failing assertion

    return json.dumps(s, ensure_ascii=False)


def _json_float(f: float) -> str:
    """serde_json's rendering of an f64 (the ``ryu`` crate's format)."""
    if f != f or f in (float("inf"), float("-inf")):
        return "null"  # serde_json: a non-finite f64 becomes null
    if f == 0.0:
        return "-0.0" if copysign(1.0, f) < 0 else "0.0"
    r = repr(f)
    sign = ""
    if r[0] == "-":
        sign, r = "-", r[1:]
    mant, _, e = r.partition("e")
    whole, _, frac = mant.partition(".")
    k = (int(e) if e else 0) - len(frac)
    d = (whole + frac).lstrip("0")
    stripped = d.rstrip("0")
    k += len(d) - len(stripped)
    d = stripped
    n = len(d)
    kk = n + k  # 10^(kk-1) <= |f| < 10^kk
    if 0 <= k and kk <= 16:
        s = d + "0" * k + ".0"
    elif 0 < kk <= 16:
        s = d[:kk] + "." + d[kk:]
    elif -5 < kk <= 0:
        s = "0." + "0" * -kk + d
    elif n == 1:
        s = f"{d}e{kk - 1}"
    else:
        s = f"{d[0]}.{d[1:]}e{kk - 1}"
    return sign + s


def _map_key_order(k: object) -> tuple:
    # MapKey's derived order: every Str before every Int
    return (0, k) if isinstance(k, str) else (1, k)


def _field_order(item: tuple) -> str:
    return str(item[0])


def _json(v: object, out: list) -> None:
    if v is None:
        out.append("null")
    elif isinstance(v, bool):
        out.append("true" if v else "false")
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        out.append(_json_float(float(v)))
    elif isinstance(v, str):
        out.append(_json_str(str(v)))
    elif isinstance(v, (bytes, bytearray, memoryview)):
        out.append('{"$bytes":"' + bytes(v).hex() + '"}')
    elif isinstance(v, Map):
        if all(isinstance(k, str) for k in v):
            _json_object(sorted(v.items(), key=_field_order), out)
        else:  # a Map with an Int key: [key, value] pairs in MapKey order
            _json_array([[k, v[k]] for k in sorted(v, key=_map_key_order)], out)
    elif isinstance(v, dict):
        _json_object(sorted(v.items(), key=_field_order), out)
    elif isinstance(v, (list, tuple, *_DEQUE_TYPES)):
        _json_array(v, out)
    elif isinstance(v, _SET_TYPES):
        _json_array(sorted(v, key=_map_key_order), out)
    elif isinstance(v, Variant):
        out.append('{"$variant":' + _json_str(str(v.name)) + ',"args":')
        _json_array(tuple(v.args), out)
        out.append("}")
    else:  # a value outside the model (a VM's closure): its type, as a string
        out.append(_json_str(f"<{type(v).__name__}>"))


def _json_array(items, out: list) -> None:
    out.append("[")
    for i, x in enumerate(items):
        if i:
            out.append(",")
        _json(x, out)
    out.append("]")


def _json_object(items: list, out: list) -> None:
    out.append("{")
    for i, (k, x) in enumerate(items):
        if i:
            out.append(",")
        out.append(_json_str(str(k)))
        out.append(":")
        _json(x, out)
    out.append("}")


def to_json_text(v: object) -> str:
    """``v`` as the reference's ``Value::to_json`` displays (compact JSON)."""
    out: list = []
    _json(v, out)
    return "".join(out)


def _test_assert_eq(args: list) -> object:
    if not args:
        raise EffectError(_MISSING)
    if len(args) < 2:
        raise EffectError("test.assert_eq: missing second arg")
    a, b = args[0], args[1]
    try:
        if lex_eq(a, b):
            return ok(None)
        return err(f"assert_eq: lhs {to_json_text(a)} != rhs {to_json_text(b)}")
    except RecursionError:
        raise EffectError("test.assert_eq: value nested too deeply") from None


def _test_assert_ne(args: list) -> object:
    if not args:
        raise EffectError(_MISSING)
    if len(args) < 2:
        raise EffectError("test.assert_ne: missing second arg")
    a, b = args[0], args[1]
    try:
        if not lex_eq(a, b):
            return ok(None)
        return err(f"assert_ne: both sides are {to_json_text(a)}")
    except RecursionError:
        raise EffectError("test.assert_ne: value nested too deeply") from None


def _test_assert_true(args: list) -> object:
    if not args:
        raise EffectError(_MISSING)
    v = args[0]
    if v is True:
        return ok(None)
    if v is False:
        return err("assert_true: was false")
    raise EffectError(f"test.assert_true expects Bool, got {debug_repr(v)}")


def _test_assert_false(args: list) -> object:
    if not args:
        raise EffectError(_MISSING)
    v = args[0]
    if v is False:
        return ok(None)
    if v is True:
        return err("assert_false: was true")
    raise EffectError(f"test.assert_false expects Bool, got {debug_repr(v)}")


# -- the compiled hot path -------------------------------------------------------

def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


_HOT = {
    "list_len": _list_len,
    "list_is_empty": _list_is_empty,
    "list_head": _list_head,
    "list_tail": _list_tail,
    "list_range": _list_range,
    "list_concat": _list_concat,
    "list_reverse": _list_reverse,
    "list_cons": _list_cons,
    "list_enumerate": _list_enumerate,
    "tuple_fst": _tuple_fst,
    "tuple_snd": _tuple_snd,
    "tuple_third": _tuple_third,
    "tuple_len": _tuple_len,
    "option_unwrap_or": _option_unwrap_or,
    "option_unwrap_or_else": _option_unwrap_or_else,
    "option_is_some": _option_is_some,
    "option_is_none": _option_is_none,
    "option_ok_or": _option_ok_or,
    "result_is_ok": _result_is_ok,
    "result_is_err": _result_is_err,
    "result_unwrap_or": _result_unwrap_or,
    "result_unwrap_or_else": _result_unwrap_or_else,
}

#: whether the list/tuple/option/result ops are the compiled ones
#: (``lexfast.builtins._seq_c``)
SEQ_COMPILED = False
if COMPILED and not _flag("LEXFAST_NO_EXTENSIONS"):
    try:
        from . import _seq_c
    except ImportError:  # built without it: the Python definitions serve
        if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
            raise
    else:
        _HOT = _seq_c.bind(_HOT)
        SEQ_COMPILED = True


BUILTINS = {
    ("list", "len"): _HOT["list_len"],
    ("list", "is_empty"): _HOT["list_is_empty"],
    ("list", "head"): _HOT["list_head"],
    ("list", "tail"): _HOT["list_tail"],
    ("list", "range"): _HOT["list_range"],
    ("list", "concat"): _HOT["list_concat"],
    ("list", "reverse"): _HOT["list_reverse"],
    ("list", "cons"): _HOT["list_cons"],
    ("list", "enumerate"): _HOT["list_enumerate"],
    ("tuple", "fst"): _HOT["tuple_fst"],
    ("tuple", "snd"): _HOT["tuple_snd"],
    ("tuple", "third"): _HOT["tuple_third"],
    ("tuple", "len"): _HOT["tuple_len"],
    ("option", "unwrap_or"): _HOT["option_unwrap_or"],
    ("option", "unwrap_or_else"): _HOT["option_unwrap_or_else"],
    ("option", "is_some"): _HOT["option_is_some"],
    ("option", "is_none"): _HOT["option_is_none"],
    ("option", "ok_or"): _HOT["option_ok_or"],
    ("result", "is_ok"): _HOT["result_is_ok"],
    ("result", "is_err"): _HOT["result_is_err"],
    ("result", "unwrap_or"): _HOT["result_unwrap_or"],
    ("result", "unwrap_or_else"): _HOT["result_unwrap_or_else"],
    ("test", "assert_eq"): _test_assert_eq,
    ("test", "assert_ne"): _test_assert_ne,
    ("test", "assert_true"): _test_assert_true,
    ("test", "assert_false"): _test_assert_false,
}
