# cython: language_level=3
"""The compiled front of ``kv.get``, ``kv.contains`` and ``kv.put``
(``lexfast/effects/kv.py`` defines the same ops in Python, the twin; the
tests run against both), and :class:`StoreCore`, the part of kv.py's
``_Store`` these read in C.

The common case is done here: an exact ``list`` holding an exact ``int``
handle the session's ``kv`` registry knows, an exact ``str`` key whose UTF-8
is 1 byte to the store's key limit, for ``put`` exact ``bytes``; a read
then counts itself in flight (``StoreCore.nactive``, the C twin of
``_Store.active``: a map resize or a close waits for both to drain) and runs
one read transaction. Anything else -- a wrong or missing argument, an
unknown handle, an empty, long or unencodable key, a store held off for a
resize or closing, any lmdb error -- goes to the Python op, which checks it
again and words the error (a failed read transaction is aborted and has
done nothing, so the Python op starting over is the same call). A write is
kv.py's ``_write`` in both cores: its checks, lock and growth are the
Python ones.
"""

from cpython.object cimport PyObject

from ..kernel import NONE, some

cdef extern from "Python.h":
    bint PyUnicode_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyBytes_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    PyObject* PyDict_GetItemWithError(object d, object k) except? NULL
    Py_ssize_t PyBytes_GET_SIZE(object o)


cdef class StoreCore:
    """What the compiled ops read of a store: its lmdb environment, its key
    limit, and the flags and count of the drain protocol (kv.py's
    ``_Store`` adds the rest)."""

    cdef public object env
    cdef public bint blocked
    cdef public bint closed
    cdef public Py_ssize_t max_key
    # read transactions of the compiled ops in flight (``_Store.active``
    # counts the Python ones); changed only with the GIL held
    cdef public Py_ssize_t nactive

    def __cinit__(self, *args, **kwargs):
        self.env = None
        self.blocked = False
        self.closed = False
        self.max_key = 0
        self.nactive = 0


# kv.py's Python ops and helpers, which answer what the fast path leaves
# to them (set by ``bind``)
cdef object _py_get = None
cdef object _py_contains = None
cdef object _py_put = None
cdef object _write = None
cdef object _release = None


def bind(py_get, py_contains, py_put, write, release):
    """Give the module kv.py's Python ``kv_get``, ``kv_contains``,
    ``kv_put``, ``_write`` and the registry's ``_release``."""
    global _py_get, _py_contains, _py_put, _write, _release
    _py_get, _py_contains, _py_put, _write, _release = py_get, py_contains, py_put, write, release


cdef inline object _arg(object args, Py_ssize_t i):
    """The borrowed i-th item of an exact list, or None."""
    if i < PyList_GET_SIZE(args):
        return <object>PyList_GET_ITEM(args, i)
    return None


cdef StoreCore _store_of(object h, object handle):
    """The store of ``handle`` (touched in the session's LRU), or None."""
    cdef PyObject* entry = PyDict_GetItemWithError(h.session._registries, "kv")
    if entry is NULL:
        return None
    st = (<tuple?>(<object>entry))[0].touch_get(handle)
    if isinstance(st, StoreCore):
        return <StoreCore>st
    return None


cdef object _key_bytes(StoreCore st, object key):
    """The stored form of an exact ``str`` key when it is 1..max_key UTF-8
    bytes, else None (the Python op handles the rest)."""
    if not PyUnicode_CheckExact(key):
        return None
    try:
        kb = (<str>key).encode("utf-8")
    except UnicodeEncodeError:
        return None
    cdef Py_ssize_t n = PyBytes_GET_SIZE(kb)
    if n == 0 or n > st.max_key:
        return None
    return kb


cdef object _read(object h, object args, bint contains):
    """The value (``Some``/``None``) or presence of a key; NotImplemented
    when the Python op must answer."""
    if not PyList_CheckExact(args) or PyList_GET_SIZE(args) != 2:
        return NotImplemented
    handle = _arg(args, 0)
    if not PyLong_CheckExact(handle):
        return NotImplemented
    cdef StoreCore st = _store_of(h, handle)
    if st is None:
        return NotImplemented
    kb = _key_bytes(st, _arg(args, 1))
    if kb is None:
        return NotImplemented
    txn = None
    st.nactive += 1
    try:
        if st.blocked:
            return NotImplemented
        if contains:  # no copy of the value
            txn = st.env.begin(buffers=True)
            found = txn.get(kb) is not None
            txn.abort()
            return found
        txn = st.env.begin()  # no keyword: lmdb parses keywords slowly
        v = txn.get(kb)
        txn.abort()
        return NONE if v is None else some(v)
    except Exception:
        txn = None  # aborted as it goes
        return NotImplemented
    finally:
        st.nactive -= 1


def kv_get(h, args):
    """``kv.get``: ``Some(value)`` or ``None``; the Python op otherwise."""
    r = _read(h, args, False)
    if r is NotImplemented:
        return _py_get(h, args)
    return r


def kv_contains(h, args):
    """``kv.contains``: a Bool; the Python op otherwise."""
    r = _read(h, args, True)
    if r is NotImplemented:
        return _py_contains(h, args)
    return r


def kv_put(h, args):
    """``kv.put``: the checks here, the write in kv.py's ``_write``."""
    if PyList_CheckExact(args) and PyList_GET_SIZE(args) == 3:
        handle = _arg(args, 0)
        val = _arg(args, 2)
        if PyLong_CheckExact(handle) and PyBytes_CheckExact(val):
            st = _store_of(h, handle)
            if st is not None:
                kb = _key_bytes(st, _arg(args, 1))
                if kb is not None:
                    return _write(h, st, "put", kb, val)
    return _py_put(h, args)
