# cython: language_level=3
"""The compiled ops of ``lexfast/builtins/seq.py``: every ``list``,
``tuple``, ``option`` and ``result`` op (``test.*`` stays Python). Same
names without the leading underscore, same semantics and same errors as the
Python definitions there (the tests run against both); seq.py picks these
when the compiled kernel is in use.

The fast path reads an exact ``list`` of arguments with borrowed references
and answers only for exact types (a ``list``, a ``tuple``, the kernel's own
``Variant``, an i64 ``int``). Anything else (a missing argument, a wrong
type, a subclass, a ``Variant`` left half-built) is handed to the Python
definition (``bind``), which decides and words the reference's error: one
source for each error text, and the two cannot drift.

Built with ``binding=False`` (setup.py): the ops are plain builtin functions.
"""

from cpython.list cimport PyList_GetSlice, PyList_Insert
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

from ..kernel._c cimport Variant

from ..kernel._c import NONE as _NONE_VALUE

cdef extern from "Python.h":
    bint PyList_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    Py_ssize_t PyTuple_GET_SIZE(object o)
    PyObject* PyTuple_GET_ITEM(object o, Py_ssize_t i)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    const Py_ssize_t PY_SSIZE_T_MAX

cdef object _NONE = _NONE_VALUE
cdef str _SOME = "Some"
cdef str _NONE_NAME = "None"
cdef str _OK = "Ok"
cdef str _ERR = "Err"
# Ranges up to this many elements are built here; longer ones (and the
# refusal past ``seq.RANGE_MAX``, which is larger) are the Python definition's.
cdef int64_t _FAST_RANGE = 1 << 16


# -- the arguments -------------------------------------------------------------

cdef inline object _item(object args, Py_ssize_t i):
    """The i-th item of an exact list of arguments, or None (then the fast
    path, which wants a container or a Variant there, declines)."""
    if PyList_CheckExact(args) and i < PyList_GET_SIZE(args):
        return <object>PyList_GET_ITEM(args, i)
    return None


cdef inline bint _i64(object v, int64_t *out) except -1:
    """Whether ``v`` is an exact int within i64 (its value in ``out``)."""
    cdef int overflow = 0
    cdef long long n
    if not PyLong_CheckExact(v):
        return False
    n = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow:
        return False
    out[0] = n
    return True


#: The Python definitions, ``seq.py``'s ``_HOT`` (handed in by ``bind``: seq.py
#: imports this module, so this one cannot import it back).
cdef dict _python = {}


def bind(python, /):
    """Take ``seq.py``'s Python definitions (``{name: fn}``, the compiled
    ops' names) as the answer to every case the fast path declines; return
    the compiled ops under the same names."""
    global _python
    compiled = {name: globals()[name] for name in python}
    _python = dict(python)
    return compiled


cdef object _slow(str name, object args):
    """The Python definition of ``name`` on ``args``."""
    return _python[name](args)



cdef inline Variant _wrap(str name, object payload):
    """``Variant(name, (payload,))``, built as the kernel's ``some``/``ok`` do."""
    cdef Variant v = Variant.__new__(Variant)
    v.name = name
    v.args = (payload,)
    v._hash = -1
    return v


# -- list ----------------------------------------------------------------------

def list_len(args, /):
    xs = _item(args, 0)
    if PyList_CheckExact(xs):
        return PyList_GET_SIZE(xs)
    return _slow("list_len", args)


def list_is_empty(args, /):
    xs = _item(args, 0)
    if PyList_CheckExact(xs):
        return PyList_GET_SIZE(xs) == 0
    return _slow("list_is_empty", args)


def list_head(args, /):
    xs = _item(args, 0)
    if PyList_CheckExact(xs):
        if PyList_GET_SIZE(xs) == 0:
            return _NONE
        first = <object>PyList_GET_ITEM(xs, 0)  # owned before the Some is allocated
        return _wrap(_SOME, first)
    return _slow("list_head", args)


def list_tail(args, /):
    xs = _item(args, 0)
    if PyList_CheckExact(xs):
        return PyList_GetSlice(xs, 1, PY_SSIZE_T_MAX)
    return _slow("list_tail", args)


def list_range(args, /):
    cdef int64_t lo = 0, hi = 0
    if _i64(_item(args, 0), &lo) and _i64(_item(args, 1), &hi):
        if hi <= lo:
            return []
        if <uint64_t>hi - <uint64_t>lo <= <uint64_t>_FAST_RANGE:
            return list(range(lo, hi))
    return _slow("list_range", args)


def list_concat(args, /):
    a = _item(args, 0)
    b = _item(args, 1)
    if PyList_CheckExact(a) and PyList_CheckExact(b):
        return <list>a + <list>b
    return _slow("list_concat", args)


def list_reverse(args, /):
    xs = _item(args, 0)
    if PyList_CheckExact(xs):
        return (<list>xs)[::-1]
    return _slow("list_reverse", args)


def list_cons(args, /):
    cdef list out
    if PyList_CheckExact(args) and PyList_GET_SIZE(args) >= 2:
        tail = <object>PyList_GET_ITEM(args, 1)
        if PyList_CheckExact(tail):
            head = <object>PyList_GET_ITEM(args, 0)
            out = PyList_GetSlice(tail, 0, PY_SSIZE_T_MAX)
            PyList_Insert(out, 0, head)
            return out
    return _slow("list_cons", args)


def list_enumerate(args, /):
    xs = _item(args, 0)
    if PyList_CheckExact(xs):
        return list(enumerate(<list>xs))
    return _slow("list_enumerate", args)


# -- tuple ---------------------------------------------------------------------

cdef inline object _tuple_at(object args, Py_ssize_t i, str name):
    t = _item(args, 0)
    if PyTuple_CheckExact(t) and i < PyTuple_GET_SIZE(t):
        return <object>PyTuple_GET_ITEM(t, i)
    return _slow(name, args)


def tuple_fst(args, /):
    return _tuple_at(args, 0, "tuple_fst")


def tuple_snd(args, /):
    return _tuple_at(args, 1, "tuple_snd")


def tuple_third(args, /):
    return _tuple_at(args, 2, "tuple_third")


def tuple_len(args, /):
    t = _item(args, 0)
    if PyTuple_CheckExact(t):
        return PyTuple_GET_SIZE(t)
    return _slow("tuple_len", args)


# -- option, result ------------------------------------------------------------
# Only the kernel's own Variant class is read here (its C fields); a subclass,
# which could override ``name``, is the Python definition's.

cdef inline object _unwrap(object args, str keep, str fallback, str name):
    cdef Variant v
    o = _item(args, 0)
    if type(o) is Variant:
        v = <Variant>o
        if v.name == keep:
            if v.args is not None and PyTuple_GET_SIZE(v.args) > 0:
                return <object>PyTuple_GET_ITEM(v.args, 0)
        elif v.name == fallback:
            return _item(args, 1)  # Unit when absent
    return _slow(name, args)


cdef inline object _is(object args, str variant, str name):
    o = _item(args, 0)
    if type(o) is Variant:
        return (<Variant>o).name == variant
    return _slow(name, args)


def option_unwrap_or(args, /):
    return _unwrap(args, _SOME, _NONE_NAME, "option_unwrap_or")


def option_unwrap_or_else(args, /):
    return _unwrap(args, _SOME, _NONE_NAME, "option_unwrap_or_else")


def option_is_some(args, /):
    return _is(args, _SOME, "option_is_some")


def option_is_none(args, /):
    return _is(args, _NONE_NAME, "option_is_none")


def option_ok_or(args, /):
    cdef Variant v
    o = _item(args, 0)
    if type(o) is Variant:
        v = <Variant>o
        if v.name == _SOME:
            if v.args is not None and PyTuple_GET_SIZE(v.args) > 0:
                payload = <object>PyTuple_GET_ITEM(v.args, 0)
                return _wrap(_OK, payload)
        elif v.name == _NONE_NAME:
            return _wrap(_ERR, _item(args, 1))
    return _slow("option_ok_or", args)


def result_is_ok(args, /):
    return _is(args, _OK, "result_is_ok")


def result_is_err(args, /):
    return _is(args, _ERR, "result_is_err")


def result_unwrap_or(args, /):
    return _unwrap(args, _OK, _ERR, "result_unwrap_or")


def result_unwrap_or_else(args, /):
    return _unwrap(args, _OK, _ERR, "result_unwrap_or_else")
