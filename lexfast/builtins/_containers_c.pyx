# cython: language_level=3
"""The compiled ops of ``lexfast/builtins/containers.py``: every ``map``,
``set`` and ``deque`` op. Same names without the leading underscore, same
semantics and same errors as the Python definitions there (the tests run
against both); containers.py picks these when the compiled kernel is in use.

The fast path reads an exact ``list`` of arguments with borrowed references
and answers only for exact types: a ``Map``, ``Set`` or ``Deque`` (not a
subclass, which could override what is read here), keys that are an exact
``str`` or an ``int`` within i64, pairs that are exact 2-tuples. Anything
else (a missing argument, a wrong type, a bad key, a subclass) is handed to
the Python definition (``bind``), which decides and words the reference's
error: one source for each error text, and the two cannot drift.

Nothing here mutates an argument: a new ``Map``/``Deque`` is a copy made
before the change, a new ``Set`` is filled while no other code holds it.

Built with ``binding=False`` (setup.py): the ops are plain builtin functions.
"""

from cpython.dict cimport PyDict_Contains, PyDict_DelItem, PyDict_SetItem
from cpython.dict cimport PyDict_Update
from cpython.object cimport PyObject, PyTypeObject
from cpython.set cimport PySet_Add, PySet_Contains

from ..kernel._c cimport Variant

from collections import deque as _deque_type

from ..kernel._c import NONE as _NONE_VALUE
from ..values import Deque, Map, Set, mapkey_sorted

cdef extern from "Python.h":
    bint PyList_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    Py_ssize_t PyTuple_GET_SIZE(object o)
    PyObject* PyTuple_GET_ITEM(object o, Py_ssize_t i)
    Py_ssize_t PyDict_GET_SIZE(object o)
    Py_ssize_t PySet_GET_SIZE(object o)
    Py_ssize_t Py_SIZE(object o)
    PyObject* PyDict_GetItemWithError(object d, object k) except? NULL
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1

cdef object _NONE = _NONE_VALUE
cdef str _SOME = "Some"
cdef tuple _EMPTY = ()
cdef type _Map = Map
cdef type _Set = Set
cdef type _Deque = Deque
cdef object _extend = _deque_type.extend
cdef object _append = _deque_type.append
cdef object _appendleft = _deque_type.appendleft
cdef object _pop = _deque_type.pop
cdef object _popleft = _deque_type.popleft


# -- the arguments and the values ----------------------------------------------

cdef inline object _item(object args, Py_ssize_t i):
    """The i-th item of an exact list of arguments, or None (then the fast
    path, which wants a container or a key there, declines)."""
    if PyList_CheckExact(args) and i < PyList_GET_SIZE(args):
        return <object>PyList_GET_ITEM(args, i)
    return None


cdef inline Py_ssize_t _nargs(object args):
    return PyList_GET_SIZE(args) if PyList_CheckExact(args) else -1


cdef inline bint _plain_key(object k) except -1:
    """Whether ``k`` is a key the Python definition takes as it is: an exact
    str, or an exact int within i64 (never a Bool)."""
    cdef int overflow = 0
    if PyUnicode_CheckExact(k):
        return True
    if PyLong_CheckExact(k):
        PyLong_AsLongLongAndOverflow(k, &overflow)
        return not overflow
    return False


#: The Python definitions, ``containers.py``'s ``_HOT`` (handed in by ``bind``: containers.py
#: imports this module, so this one cannot import it back).
cdef dict _python = {}


def bind(python, /):
    """Take ``containers.py``'s Python definitions (``{name: fn}``, the compiled
    ops' names) as the answer to every case the fast path declines; return
    the compiled ops under the same names."""
    global _python
    compiled = {name: globals()[name] for name in python}
    _python = dict(python)
    return compiled


cdef object _slow(str name, object args):
    """The Python definition of ``name`` on ``args``."""
    return _python[name](args)



cdef inline Variant _some(object payload):
    """``some(payload)``, built as the kernel's ``some`` does."""
    cdef Variant v = Variant.__new__(Variant)
    v.name = _SOME
    v.args = (payload,)
    v._hash = -1
    return v


cdef inline object _new(type t, object args):
    """``t(*args)`` by the type's ``tp_new`` alone: ``Map``, ``Set`` and
    ``Deque`` define no ``__init__``, and the base types' fill nothing in
    that ``__new__`` has not (``deque.__new__`` leaves it empty, no maxlen)."""
    return (<PyTypeObject*>t).tp_new(t, <PyObject*>args, NULL)


cdef inline object _map_copy(object m):
    """A new ``Map`` with ``m``'s entries (dict's own merge, as ``Map(m)``)."""
    out = _new(_Map, _EMPTY)
    PyDict_Update(out, m)
    return out


cdef inline object _deque_of(object items):
    """A new ``Deque`` of ``items`` (as ``Deque(items)``, without the
    argument parsing of a type call)."""
    out = _new(_Deque, _EMPTY)
    _extend(out, items)
    return out


cdef inline object _set_of(object items):
    """A new ``Set`` of ``items`` (a set, frozenset or list of keys)."""
    return _new(_Set, (items,))


cdef list _sorted_keys(object keys):
    """``mapkey_sorted(keys)``: a plain sort when the keys are all Strs or all
    Ints, else the Strs before the Ints."""
    cdef list out = list(keys)
    try:
        out.sort()
    except TypeError:
        return mapkey_sorted(keys)
    return out


# -- map -----------------------------------------------------------------------

def map_new(args, /):
    return _new(_Map, _EMPTY)


def map_size(args, /):
    m = _item(args, 0)
    if type(m) is _Map:
        return PyDict_GET_SIZE(m)
    return _slow("map_size", args)


def map_is_empty(args, /):
    m = _item(args, 0)
    if type(m) is _Map:
        return PyDict_GET_SIZE(m) == 0
    return _slow("map_is_empty", args)


def map_has(args, /):
    m = _item(args, 0)
    k = _item(args, 1)
    if type(m) is _Map and _plain_key(k):
        return PyDict_Contains(m, k) == 1
    return _slow("map_has", args)


def map_get(args, /):
    cdef PyObject* v
    m = _item(args, 0)
    k = _item(args, 1)
    if type(m) is _Map and _plain_key(k):
        v = PyDict_GetItemWithError(m, k)
        if v == NULL:
            return _NONE
        found = <object>v  # owned before the Some is allocated
        return _some(found)
    return _slow("map_get", args)


def map_set(args, /):
    m = _item(args, 0)
    k = _item(args, 1)
    if type(m) is _Map and _plain_key(k) and _nargs(args) >= 3:
        v = <object>PyList_GET_ITEM(args, 2)
        out = _map_copy(m)
        PyDict_SetItem(out, k, v)
        return out
    return _slow("map_set", args)


def map_delete(args, /):
    m = _item(args, 0)
    k = _item(args, 1)
    if type(m) is _Map and _plain_key(k):
        out = _map_copy(m)
        if PyDict_Contains(out, k) == 1:
            PyDict_DelItem(out, k)
        return out
    return _slow("map_delete", args)


def map_keys(args, /):
    m = _item(args, 0)
    if type(m) is _Map:
        return _sorted_keys(m)
    return _slow("map_keys", args)


def map_values(args, /):
    m = _item(args, 0)
    if type(m) is _Map:
        return [m[k] for k in _sorted_keys(m)]
    return _slow("map_values", args)


def map_entries(args, /):
    m = _item(args, 0)
    if type(m) is _Map:
        return [(k, m[k]) for k in _sorted_keys(m)]
    return _slow("map_entries", args)


def map_from_list(args, /):
    cdef Py_ssize_t i
    pairs = _item(args, 0)
    if PyList_CheckExact(pairs):
        out = _new(_Map, _EMPTY)
        i = 0
        while i < PyList_GET_SIZE(pairs):
            p = <object>PyList_GET_ITEM(pairs, i)
            if not PyTuple_CheckExact(p) or PyTuple_GET_SIZE(p) != 2:
                break
            k = <object>PyTuple_GET_ITEM(p, 0)
            if not _plain_key(k):
                break
            PyDict_SetItem(out, k, <object>PyTuple_GET_ITEM(p, 1))  # a later pair wins
            i += 1
        else:
            return out
    return _slow("map_from_list", args)


def map_merge(args, /):
    a = _item(args, 0)
    b = _item(args, 1)
    if type(a) is _Map and type(b) is _Map:
        out = _map_copy(a)
        PyDict_Update(out, b)  # b's entries override a's
        return out
    return _slow("map_merge", args)


# -- set -----------------------------------------------------------------------

def set_new(args, /):
    return _new(_Set, _EMPTY)


def set_size(args, /):
    s = _item(args, 0)
    if type(s) is _Set:
        return PySet_GET_SIZE(s)
    return _slow("set_size", args)


def set_is_empty(args, /):
    s = _item(args, 0)
    if type(s) is _Set:
        return PySet_GET_SIZE(s) == 0
    return _slow("set_is_empty", args)


def set_has(args, /):
    s = _item(args, 0)
    k = _item(args, 1)
    if type(s) is _Set and _plain_key(k):
        return PySet_Contains(s, k) == 1
    return _slow("set_has", args)


def set_add(args, /):
    s = _item(args, 0)
    k = _item(args, 1)
    if type(s) is _Set and _plain_key(k):
        if PySet_Contains(s, k) == 1:
            return s
        out = _set_of(s)
        PySet_Add(out, k)  # allowed on a frozenset nothing else holds yet
        return out
    return _slow("set_add", args)


def set_delete(args, /):
    s = _item(args, 0)
    k = _item(args, 1)
    if type(s) is _Set and _plain_key(k):
        if PySet_Contains(s, k) != 1:
            return s
        return _set_of(s - {k})
    return _slow("set_delete", args)


def set_to_list(args, /):
    s = _item(args, 0)
    if type(s) is _Set:
        return _sorted_keys(s)
    return _slow("set_to_list", args)


def set_from_list(args, /):
    cdef Py_ssize_t i
    xs = _item(args, 0)
    if PyList_CheckExact(xs):
        i = 0
        while i < PyList_GET_SIZE(xs):
            if not _plain_key(<object>PyList_GET_ITEM(xs, i)):
                break
            i += 1
        else:
            return _set_of(xs)
    return _slow("set_from_list", args)


def set_union(args, /):
    a = _item(args, 0)
    b = _item(args, 1)
    if type(a) is _Set and type(b) is _Set:
        return _set_of(a | b)
    return _slow("set_union", args)


def set_intersect(args, /):
    a = _item(args, 0)
    b = _item(args, 1)
    if type(a) is _Set and type(b) is _Set:
        return _set_of(a & b)
    return _slow("set_intersect", args)


def set_diff(args, /):
    a = _item(args, 0)
    b = _item(args, 1)
    if type(a) is _Set and type(b) is _Set:
        return _set_of(a - b)
    return _slow("set_diff", args)


def set_is_subset(args, /):
    a = _item(args, 0)
    b = _item(args, 1)
    if type(a) is _Set and type(b) is _Set:
        return a <= b
    return _slow("set_is_subset", args)


# -- deque ---------------------------------------------------------------------

def deque_new(args, /):
    return _new(_Deque, _EMPTY)


def deque_size(args, /):
    d = _item(args, 0)
    if type(d) is _Deque:
        return Py_SIZE(d)
    return _slow("deque_size", args)


def deque_is_empty(args, /):
    d = _item(args, 0)
    if type(d) is _Deque:
        return Py_SIZE(d) == 0
    return _slow("deque_is_empty", args)


def deque_push_back(args, /):
    d = _item(args, 0)
    if type(d) is _Deque and _nargs(args) >= 2:
        x = <object>PyList_GET_ITEM(args, 1)
        out = _deque_of(d)
        _append(out, x)
        return out
    return _slow("deque_push_back", args)


def deque_push_front(args, /):
    d = _item(args, 0)
    if type(d) is _Deque and _nargs(args) >= 2:
        x = <object>PyList_GET_ITEM(args, 1)
        out = _deque_of(d)
        _appendleft(out, x)
        return out
    return _slow("deque_push_front", args)


def deque_pop_back(args, /):
    # Some((last, rest)) / None
    d = _item(args, 0)
    if type(d) is _Deque:
        if Py_SIZE(d) == 0:
            return _NONE
        out = _deque_of(d)
        return _some((_pop(out), out))
    return _slow("deque_pop_back", args)


def deque_pop_front(args, /):
    d = _item(args, 0)
    if type(d) is _Deque:
        if Py_SIZE(d) == 0:
            return _NONE
        out = _deque_of(d)
        return _some((_popleft(out), out))
    return _slow("deque_pop_front", args)


def deque_peek_back(args, /):
    d = _item(args, 0)
    if type(d) is _Deque:
        if Py_SIZE(d) == 0:
            return _NONE
        return _some(d[-1])
    return _slow("deque_peek_back", args)


def deque_peek_front(args, /):
    d = _item(args, 0)
    if type(d) is _Deque:
        if Py_SIZE(d) == 0:
            return _NONE
        return _some(d[0])
    return _slow("deque_peek_front", args)


def deque_from_list(args, /):
    xs = _item(args, 0)
    if PyList_CheckExact(xs):
        return _deque_of(xs)
    return _slow("deque_from_list", args)


def deque_to_list(args, /):
    d = _item(args, 0)
    if type(d) is _Deque:
        return list(d)
    return _slow("deque_to_list", args)
