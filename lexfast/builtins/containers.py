"""Pure builtins ``map.*``, ``set.*`` and ``deque.*``, as the reference's
``builtins.rs`` (``fn dispatch``, the ``-- map --``, ``-- set --``, ``-- map
helpers --`` and ``-- deque --`` arms).

The reference's ``Map`` is a ``BTreeMap<MapKey, Value>`` and its ``Set`` a
``BTreeSet<MapKey>``: a key is a Str or an Int (never a Bool), and iteration
is in ``MapKey`` order, every Str (by code point) before every Int. Here a
``Map`` is a dict in insertion order and a ``Set`` a frozenset, so the ops
that show the order (``map.keys``/``values``/``entries``, ``set.to_list``)
sort with ``mapkey_sorted``; nothing else sorts.

Values are never changed: ``map.set``, ``deque.push_back`` ... return a new
container (the reference clones, then changes the clone). A ``Set`` is
immutable, so ``set.add`` of an element already there (and ``set.delete`` of
one that is not) returns the same ``Set``.

When the compiled kernel is in use, every op comes from the compiled
``lexfast.builtins._containers_c`` (same semantics, same tests; it hands
every case but the exact-typed one back to the definitions here); otherwise,
or under ``LEXFAST_NO_EXTENSIONS``, these Python definitions serve.
"""

from __future__ import annotations

import os
from operator import itemgetter

from ..errors import EffectError
from ..kernel import COMPILED, NONE, some
from ..values import INT_MAX, INT_MIN, Deque, Map, Set, debug_repr, mapkey_sorted
from ._args import expect_list, expect_map

_ABSENT = object()
_FIRST = itemgetter(0)


def _key(v: object) -> str | int:
    """``MapKey::from_value``: a Str or an Int, else the reference's error.
    The callers have already let a plain ``str`` and an i64 ``int`` through."""
    t = type(v)
    if t is int:
        if INT_MIN <= v <= INT_MAX:  # type: ignore[operator]
            return v  # type: ignore[return-value]
        raise EffectError(
            f"map/set key must be Str or Int, got an integer outside i64: {debug_repr(v)}")
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return _key(int.__int__(v))
    raise EffectError(f"map/set key must be Str or Int, got {debug_repr(v)}")


def _set(args: list, i: int) -> Set:
    # ``expect_set``: the reference renders the ``Option`` it matched on
    if i < len(args):
        v = args[i]
        if isinstance(v, Set):
            return v
        raise EffectError(f"expected Set, got Some({debug_repr(v)})")
    raise EffectError("expected Set, got None")


def _deque(args: list) -> Deque:
    # ``expect_deque`` (first argument): no ``Some(..)`` around the value here
    if not args:
        raise EffectError("missing argument")
    v = args[0]
    if isinstance(v, Deque):
        return v
    raise EffectError(f"expected Deque, got {debug_repr(v)}")


# -- map ----------------------------------------------------------------------

def _map_new(args: list) -> Map:
    return Map()


def _map_size(args: list) -> int:
    m = args[0] if args else None
    if type(m) is not Map:
        m = expect_map(args, 0)
    return len(m)


def _map_is_empty(args: list) -> bool:
    m = args[0] if args else None
    if type(m) is not Map:
        m = expect_map(args, 0)
    return not m


def _map_has(args: list) -> bool:
    m = args[0] if args else None
    if type(m) is not Map:
        m = expect_map(args, 0)
    if len(args) < 2:
        raise EffectError("map.has: missing key")
    k = args[1]
    if type(k) is not str and (type(k) is not int or not INT_MIN <= k <= INT_MAX):
        k = _key(k)
    return k in m


def _map_get(args: list) -> object:
    m = args[0] if args else None
    if type(m) is not Map:
        m = expect_map(args, 0)
    if len(args) < 2:
        raise EffectError("map.get: missing key")
    k = args[1]
    if type(k) is not str and (type(k) is not int or not INT_MIN <= k <= INT_MAX):
        k = _key(k)
    v = m.get(k, _ABSENT)
    return NONE if v is _ABSENT else some(v)


def _map_set(args: list) -> Map:
    m = args[0] if args else None
    if type(m) is not Map:
        m = expect_map(args, 0)
    if len(args) < 2:
        raise EffectError("map.set: missing key")
    k = args[1]
    if type(k) is not str and (type(k) is not int or not INT_MIN <= k <= INT_MAX):
        k = _key(k)
    if len(args) < 3:
        raise EffectError("map.set: missing value")
    out = Map(m)
    out[k] = args[2]
    return out


def _map_delete(args: list) -> Map:
    m = args[0] if args else None
    if type(m) is not Map:
        m = expect_map(args, 0)
    if len(args) < 2:
        raise EffectError("map.delete: missing key")
    k = args[1]
    if type(k) is not str and (type(k) is not int or not INT_MIN <= k <= INT_MAX):
        k = _key(k)
    out = Map(m)
    out.pop(k, None)
    return out


def _map_keys(args: list) -> list:
    m = args[0] if args else None
    if type(m) is not Map:
        m = expect_map(args, 0)
    return mapkey_sorted(m)


def _map_values(args: list) -> list:
    m = args[0] if args else None
    if type(m) is not Map:
        m = expect_map(args, 0)
    return list(map(m.__getitem__, mapkey_sorted(m)))


def _map_entries(args: list) -> list:
    m = args[0] if args else None
    if type(m) is not Map:
        m = expect_map(args, 0)
    try:
        return sorted(m.items(), key=_FIRST)  # keys are distinct: only they are compared
    except TypeError:  # both Str and Int keys
        return [(k, m[k]) for k in mapkey_sorted(m)]


def _map_from_list(args: list) -> Map:
    pairs = expect_list(args, 0)
    out = Map()
    for p in pairs:
        if type(p) is not tuple or len(p) != 2:
            if not isinstance(p, tuple) or len(p) != 2:
                raise EffectError(f"map.from_list element must be a 2-tuple, got {debug_repr(p)}")
        k = p[0]
        if type(k) is not str and (type(k) is not int or not INT_MIN <= k <= INT_MAX):
            k = _key(k)
        out[k] = p[1]  # a later pair wins, as BTreeMap::insert
    return out


def _map_merge(args: list) -> Map:
    # b's entries override a's
    a = args[0] if args else None
    if type(a) is not Map:
        a = expect_map(args, 0)
    b = args[1] if len(args) > 1 else None
    if type(b) is not Map:
        b = expect_map(args, 1)
    out = Map(a)
    out.update(b)
    return out


# -- set ----------------------------------------------------------------------

def _set_new(args: list) -> Set:
    return Set()


def _set_size(args: list) -> int:
    return len(_set(args, 0))


def _set_is_empty(args: list) -> bool:
    return not _set(args, 0)


def _set_has(args: list) -> bool:
    s = _set(args, 0)
    if len(args) < 2:
        raise EffectError("set.has: missing element")
    k = args[1]
    if type(k) is not str and (type(k) is not int or not INT_MIN <= k <= INT_MAX):
        k = _key(k)
    return k in s


def _set_add(args: list) -> Set:
    s = _set(args, 0)
    if len(args) < 2:
        raise EffectError("set.add: missing element")
    k = args[1]
    if type(k) is not str and (type(k) is not int or not INT_MIN <= k <= INT_MAX):
        k = _key(k)
    if k in s:
        return s
    return Set(s | {k})


def _set_delete(args: list) -> Set:
    s = _set(args, 0)
    if len(args) < 2:
        raise EffectError("set.delete: missing element")
    k = args[1]
    if type(k) is not str and (type(k) is not int or not INT_MIN <= k <= INT_MAX):
        k = _key(k)
    if k not in s:
        return s
    return Set(s - {k})


def _set_to_list(args: list) -> list:
    return mapkey_sorted(_set(args, 0))


def _set_from_list(args: list) -> Set:
    xs = expect_list(args, 0)
    out: set[str | int] = set()
    add = out.add
    for x in xs:
        if type(x) is not str and (type(x) is not int or not INT_MIN <= x <= INT_MAX):
            x = _key(x)
        add(x)
    return Set(out)


def _set_union(args: list) -> Set:
    a = _set(args, 0)
    return Set(a | _set(args, 1))


def _set_intersect(args: list) -> Set:
    a = _set(args, 0)
    return Set(a & _set(args, 1))


def _set_diff(args: list) -> Set:
    a = _set(args, 0)
    return Set(a - _set(args, 1))


def _set_is_subset(args: list) -> bool:
    a = _set(args, 0)
    return a <= _set(args, 1)


# -- deque --------------------------------------------------------------------

def _deque_new(args: list) -> Deque:
    return Deque()


def _deque_size(args: list) -> int:
    return len(_deque(args))


def _deque_is_empty(args: list) -> bool:
    return not _deque(args)


def _deque_push_back(args: list) -> Deque:
    d = _deque(args)
    if len(args) < 2:
        raise EffectError("deque.push_back: missing value")
    out = Deque(d)
    out.append(args[1])
    return out


def _deque_push_front(args: list) -> Deque:
    d = _deque(args)
    if len(args) < 2:
        raise EffectError("deque.push_front: missing value")
    out = Deque(d)
    out.appendleft(args[1])
    return out


def _deque_pop_back(args: list) -> object:
    # Some((last, rest)) / None
    d = _deque(args)
    if not d:
        return NONE
    out = Deque(d)
    x = out.pop()
    return some((x, out))


def _deque_pop_front(args: list) -> object:
    d = _deque(args)
    if not d:
        return NONE
    out = Deque(d)
    x = out.popleft()
    return some((x, out))


def _deque_peek_back(args: list) -> object:
    d = _deque(args)
    return some(d[-1]) if d else NONE


def _deque_peek_front(args: list) -> object:
    d = _deque(args)
    return some(d[0]) if d else NONE


def _deque_from_list(args: list) -> Deque:
    return Deque(expect_list(args, 0))


def _deque_to_list(args: list) -> list:
    return list(_deque(args))


# -- the compiled hot path -------------------------------------------------------

def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


_HOT = {
    "map_new": _map_new,
    "map_size": _map_size,
    "map_has": _map_has,
    "map_get": _map_get,
    "map_set": _map_set,
    "map_delete": _map_delete,
    "map_keys": _map_keys,
    "map_values": _map_values,
    "map_entries": _map_entries,
    "map_from_list": _map_from_list,
    "map_merge": _map_merge,
    "map_is_empty": _map_is_empty,
    "set_new": _set_new,
    "set_size": _set_size,
    "set_has": _set_has,
    "set_add": _set_add,
    "set_delete": _set_delete,
    "set_to_list": _set_to_list,
    "set_from_list": _set_from_list,
    "set_union": _set_union,
    "set_intersect": _set_intersect,
    "set_diff": _set_diff,
    "set_is_empty": _set_is_empty,
    "set_is_subset": _set_is_subset,
    "deque_new": _deque_new,
    "deque_size": _deque_size,
    "deque_is_empty": _deque_is_empty,
    "deque_push_back": _deque_push_back,
    "deque_push_front": _deque_push_front,
    "deque_pop_back": _deque_pop_back,
    "deque_pop_front": _deque_pop_front,
    "deque_peek_back": _deque_peek_back,
    "deque_peek_front": _deque_peek_front,
    "deque_from_list": _deque_from_list,
    "deque_to_list": _deque_to_list,
}

#: whether the map/set/deque ops are the compiled ones
#: (``lexfast.builtins._containers_c``)
CONTAINERS_COMPILED = False
if COMPILED and not _flag("LEXFAST_NO_EXTENSIONS"):
    try:
        from . import _containers_c
    except ImportError:  # built without it: the Python definitions serve
        if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
            raise
    else:
        _HOT = _containers_c.bind(_HOT)
        CONTAINERS_COMPILED = True


BUILTINS = {
    ("map", "new"): _HOT["map_new"],
    ("map", "size"): _HOT["map_size"],
    ("map", "has"): _HOT["map_has"],
    ("map", "get"): _HOT["map_get"],
    ("map", "set"): _HOT["map_set"],
    ("map", "delete"): _HOT["map_delete"],
    ("map", "keys"): _HOT["map_keys"],
    ("map", "values"): _HOT["map_values"],
    ("map", "entries"): _HOT["map_entries"],
    ("map", "from_list"): _HOT["map_from_list"],
    ("map", "merge"): _HOT["map_merge"],
    ("map", "is_empty"): _HOT["map_is_empty"],
    ("set", "new"): _HOT["set_new"],
    ("set", "size"): _HOT["set_size"],
    ("set", "has"): _HOT["set_has"],
    ("set", "add"): _HOT["set_add"],
    ("set", "delete"): _HOT["set_delete"],
    ("set", "to_list"): _HOT["set_to_list"],
    ("set", "from_list"): _HOT["set_from_list"],
    ("set", "union"): _HOT["set_union"],
    ("set", "intersect"): _HOT["set_intersect"],
    ("set", "diff"): _HOT["set_diff"],
    ("set", "is_empty"): _HOT["set_is_empty"],
    ("set", "is_subset"): _HOT["set_is_subset"],
    ("deque", "new"): _HOT["deque_new"],
    ("deque", "size"): _HOT["deque_size"],
    ("deque", "is_empty"): _HOT["deque_is_empty"],
    ("deque", "push_back"): _HOT["deque_push_back"],
    ("deque", "push_front"): _HOT["deque_push_front"],
    ("deque", "pop_back"): _HOT["deque_pop_back"],
    ("deque", "pop_front"): _HOT["deque_pop_front"],
    ("deque", "peek_back"): _HOT["deque_peek_back"],
    ("deque", "peek_front"): _HOT["deque_peek_front"],
    ("deque", "from_list"): _HOT["deque_from_list"],
    ("deque", "to_list"): _HOT["deque_to_list"],
}
