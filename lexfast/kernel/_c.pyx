# cython: language_level=3
"""The compiled core: the effect table and policy gate, the budget pool, the
LRU handle registry, ``Variant`` and the argument checks.

``lexfast/kernel/_py.py`` is its pure-Python twin; the two must behave the same
(the test suite runs against both). A repeated dispatch is served from a C
entry (``_dispatch_fast``) through an identity cache: two pointer compares,
the gate, the counters and the vectorcall into the effect, no Python object
traffic besides; a miss costs the dict lookups it saves.
A leaf: it imports nothing of the package but ``errors``, ``values``,
``kinds`` and the kernel's own slow paths.
"""

import os
from types import MemberDescriptorType as _MemberDescriptor

from cpython.exc cimport PyErr_ExceptionMatches, PyErr_Fetch, PyErr_NormalizeException
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from cpython.buffer cimport PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES, PyBUF_WRITABLE
from libc.stdint cimport INT64_MAX, int64_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset, strerror
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from ..errors import BudgetExceeded, EffectError, PolicyDenied
from ..kinds import KIND_BIT
from ..values import INT_MAX, INT_MIN, Map, debug_repr, register_variant_type

from ._slow import UNKNOWN_OP_BEFORE_GATE, coerce_args, dispatch_miss, internal_error

cdef extern from "Python.h":
    bint PyUnicode_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1

cdef extern from "lexfast/atomic.h":
    int lexfast_budget_take(uint64_t *remaining, uint64_t cost, uint64_t *seen) noexcept nogil
    uint64_t lexfast_load_u64(uint64_t *p) noexcept nogil
    int64_t lexfast_fetch_add_i64(int64_t *p, int64_t v) noexcept nogil
    uint64_t lexfast_fetch_add_u64(uint64_t *p, uint64_t v) noexcept nogil
    uint64_t lexfast_exchange_u64(uint64_t *p, uint64_t v) noexcept nogil

cdef extern from "lexfast/call.h":
    PyObject* lexfast_call1(PyObject* fn, PyObject* a)
    PyObject* lexfast_call2(PyObject* fn, PyObject* a, PyObject* b)
    PyObject* _Py_TYPE "lexfast_type"(PyObject* o) noexcept

cdef extern from "Python.h":
    void PyException_SetTraceback(object exc, object tb)
    # Borrowed references, no reference counting on the dispatch path. Safe
    # there: the keys are exact str, whose hash and == run no Python code and
    # cannot fail, so nothing can drop the dict during the lookup. (Not
    # PyDict_GetItem: it saves and restores the error state around every
    # lookup, a third of a dispatch's instructions under callgrind.)
    PyObject* _dict_get "PyDict_GetItemWithError"(PyObject* d, PyObject* key)
    PyObject* PyList_GET_ITEM(PyObject* l, Py_ssize_t i)
    PyObject* PyTuple_GET_ITEM(PyObject* t, Py_ssize_t i)

# The raw C API for the dispatch fast entry (``_dispatch_fast``), which must
# never leave a Cython error path: each returns NULL / -1 with the error set.
cdef extern from "Python.h":
    ctypedef struct PyMethodDef:
        const char* ml_name
        void* ml_meth
        int ml_flags
        const char* ml_doc
    int METH_FASTCALL
    int METH_KEYWORDS
    object PyDescr_NewMethod(type t, PyMethodDef* m)
    void PyType_Modified(type t)
    Py_ssize_t _PyTuple_GET_SIZE "PyTuple_GET_SIZE"(PyObject* t)
    PyObject* _PyObject_Vectorcall "PyObject_Vectorcall"(PyObject* fn, PyObject** args, size_t nargsf,
                                                         PyObject* kwnames)
    void _PyErr_SetObject "PyErr_SetObject"(PyObject* t, PyObject* v)
    void _PyErr_Clear "PyErr_Clear"()
    bint _list_exact "PyList_CheckExact"(PyObject* o) noexcept
    bint _str_exact "PyUnicode_CheckExact"(PyObject* o) noexcept
    # steals ``item``; the old item is not released
    void _list_set_raw "PyList_SET_ITEM"(PyObject* l, Py_ssize_t i, PyObject* item)
    void _PyErr_Fetch "PyErr_Fetch"(PyObject** t, PyObject** v, PyObject** tb)
    void _PyErr_NormalizeException "PyErr_NormalizeException"(PyObject** t, PyObject** v, PyObject** tb)
    int _PyErr_ExceptionMatches "PyErr_ExceptionMatches"(PyObject* exc)
    void _PyException_SetTraceback "PyException_SetTraceback"(PyObject* e, PyObject* tb)
    void _PyException_SetCause "PyException_SetCause"(PyObject* e, PyObject* cause)
    void _Py_INCREF "Py_INCREF"(PyObject* o)
    void _Py_DECREF "Py_DECREF"(PyObject* o)
    void _Py_XDECREF "Py_XDECREF"(PyObject* o)
    ctypedef struct _TypeNew "PyTypeObject":
        PyObject* tp_dict
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member

cdef extern from "lexfast/denied.h":
    int T_OBJECT_EX
    # steals: the object of a new reference, or the error it was NULL for
    object _steal_or_raise "lexfast_identity"(PyObject* o)
    PyObject* lexfast_denied_type
    PyObject* lexfast_denied_names[4]
    Py_ssize_t lexfast_denied_offsets[4]
    PyObject* lexfast_new_denied(PyObject* message, PyObject* effect) noexcept
    unsigned long long PyLong_AsUnsignedLongLongMask(PyObject* o)

cdef extern from "lexfast/openat2.h":
    int lexfast_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                        uint64_t resolve) noexcept nogil

__all__ = [
    "COMPILED", "NONE", "BudgetPool", "HandlerCore", "LRURegistry", "Row", "Stats", "Variant",
    "err", "expect_bytes", "expect_handle", "expect_int", "expect_record", "expect_str",
    "expect_str_list", "next_handle", "ok", "openat2", "some",
]

COMPILED = True

cdef uint64_t _U64_MAX = 0xFFFFFFFFFFFFFFFF
cdef str _OK = "Ok"
cdef str _ERR = "Err"
cdef str _SOME = "Some"
cdef tuple _EMPTY = ()


# -- values -------------------------------------------------------------------

cdef class Variant:
    """A Lex variant value: ``name`` and a tuple of ``args``. Immutable."""

    def __init__(self, name, args=()):
        if self.name is not None:  # __init__ called again on a live value
            raise AttributeError("Variant is immutable")
        if type(name) is not str:
            if not isinstance(name, str):
                raise TypeError(f"Variant name must be str, not {type(name).__name__}")
            name = str(name)
        self.name = name
        self.args = args if type(args) is tuple else tuple(args)
        self._hash = -1

    def __richcmp__(self, other, int op):
        cdef bint same
        if op != 2 and op != 3:  # only == and !=
            return NotImplemented
        if not isinstance(other, Variant):
            return NotImplemented
        same = self.name == (<Variant>other).name and self.args == (<Variant>other).args
        return same if op == 2 else not same

    def __hash__(self):
        if self._hash == -1:
            self._hash = hash((self.name, self.args))
        return self._hash

    def __repr__(self):
        if not self.args:
            return f"Variant({self.name!r})"
        return f"Variant({self.name!r}, {self.args!r})"

    def __reduce__(self):
        return (Variant, (self.name, self.args))


cdef inline Variant _variant(str name, tuple args):
    cdef Variant v = Variant.__new__(Variant)
    v.name = name
    v.args = args
    v._hash = -1
    return v


register_variant_type(Variant)

NONE = _variant("None", _EMPTY)


def ok(v=None):
    return _variant(_OK, (v,))


def err(v):
    return _variant(_ERR, (v,))


def some(v):
    return _variant(_SOME, (v,))


# -- argument checks ------------------------------------------------------------

cdef inline bint _is_lex_int(object v):
    return PyLong_CheckExact(v) or (isinstance(v, int) and not isinstance(v, bool))


def expect_str(args, Py_ssize_t i):
    if i >= len(args):
        raise EffectError("missing argument")
    v = args[i]
    if PyUnicode_CheckExact(v):
        return v
    if isinstance(v, str):
        return str.__str__(v)  # a subclass's own __str__ is never run
    raise EffectError(f"expected Str arg, got {debug_repr(v)}")


def expect_int(args, Py_ssize_t i):
    if i >= len(args):
        raise EffectError("missing argument")
    v = args[i]
    if _is_lex_int(v):
        v = int.__int__(v)  # the value, never a subclass's __int__ or comparisons
        if INT_MIN <= v <= INT_MAX:
            return v
        raise EffectError(f"Int out of the signed 64-bit range: {debug_repr(v)}")
    raise EffectError(f"expected Int arg, got {debug_repr(v)}")


def expect_bytes(args, Py_ssize_t i):
    if i >= len(args):
        raise EffectError("missing argument")
    v = args[i]
    if type(v) is bytes:
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        try:
            return bytes(v)
        except (TypeError, ValueError, BufferError) as e:
            raise EffectError(f"expected Bytes arg, got unreadable buffer: {e}") from None
    raise EffectError(f"expected Bytes arg, got {debug_repr(v)}")


def expect_record(args, Py_ssize_t i):
    if i >= len(args):
        raise EffectError("missing Record argument")
    v = args[i]
    if type(v) is dict or (isinstance(v, dict) and not isinstance(v, Map)):
        return v
    raise EffectError(f"expected Record, got {debug_repr(v)}")


def expect_str_list(args, Py_ssize_t i):
    if i >= len(args):
        raise EffectError("missing List[Str] argument")
    v = args[i]
    if not isinstance(v, list):
        raise EffectError(f"expected List[Str], got {debug_repr(v)}")
    cdef list out = []
    for x in list.copy(v):
        if not isinstance(x, str):
            raise EffectError(f"expected List[Str] element, got {debug_repr(x)}")
        out.append(str.__str__(x))
    return out


def expect_handle(args, Py_ssize_t i, str what, str missing):
    """A registry handle: an Int ≥ 0 (``expected Kv handle (Int), got …``)."""
    if i >= len(args):
        raise EffectError(f"missing {missing} argument")
    v = args[i]
    if _is_lex_int(v):
        n = int.__int__(v)
        if 0 <= n <= INT_MAX:
            return n
    raise EffectError(f"expected {what} (Int), got {debug_repr(v)}")


# -- handles and registries -------------------------------------------------------

cdef int64_t _handle_counter = 1


def next_handle():
    """Process-wide handle numbers: from 1, never reused."""
    return lexfast_fetch_add_i64(&_handle_counter, 1)


cdef inline PyObject* _registry_find(dict d, object key):
    """The registry's node for ``key``, borrowed, or NULL. Handles are exact
    int or str (``insert`` takes no other), whose hash and == cannot fail or
    run Python code; any other key may only equal one."""
    cdef PyObject* found
    if PyLong_CheckExact(key) or PyUnicode_CheckExact(key):
        return _dict_get(<PyObject*>d, <PyObject*>key)
    # Any other key: a failing hash or == counts as absent, the error dropped
    # here (not PyDict_GetItem, which 3.13 reports as an unraisable error).
    found = _dict_get(<PyObject*>d, <PyObject*>key)
    if found == NULL:
        _PyErr_Clear()
    return found


cdef class _Node:
    pass


cdef class LRURegistry:
    """Handle -> resource, least recently used evicted at ``cap``.

    A dict of nodes in a circular list (the sentinel's ``next`` is the least
    recently used). No Python code runs while the links change, so the
    structure is consistent under the GIL without a lock; ``on_evict`` is
    called after the change, for each entry ``insert`` pushed out.
    """

    def __init__(self, cap, on_evict=None):
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError(f"LRURegistry: cap must be an int >= 1, got {cap!r}")
        self._cap = cap
        self._on_evict = on_evict
        self._map = {}
        self._head = _Node()
        self._head.prev = self._head
        self._head.next = self._head

    @property
    def cap(self):
        return self._cap

    cdef void _unlink(self, _Node node) noexcept:
        node.prev.next = node.next
        node.next.prev = node.prev

    cdef void _link_last(self, _Node node) noexcept:
        cdef _Node head = self._head
        node.prev = head.prev
        node.next = head
        head.prev.next = node
        head.prev = node

    def insert(self, handle, value):
        cdef PyObject* p
        cdef _Node node
        cdef list evicted = None
        # Exact int or str only: their hash and == run no Python code, so
        # nothing can re-enter the registry while its links change.
        if not (PyLong_CheckExact(handle) or PyUnicode_CheckExact(handle)):
            raise TypeError(f"LRURegistry: a handle must be an int or a str, "
                            f"not {type(handle).__name__}")
        p = _registry_find(self._map, handle)
        if p is not NULL:
            node = <_Node>p
            old = node.value  # released after the links are consistent again
            node.value = value
            self._unlink(node)
            self._link_last(node)
            return None
        while len(self._map) >= self._cap:
            node = self._head.next
            del self._map[node.key]
            self._unlink(node)
            if evicted is None:
                evicted = []
            evicted.append(node)
        node = _Node.__new__(_Node)
        node.key = handle
        node.value = value
        self._link_last(node)
        self._map[handle] = node
        if evicted is not None:
            for node in evicted:
                node.prev = None
                node.next = None
                if self._on_evict is not None:
                    self._on_evict(node.key, node.value)
        return None

    def touch_get(self, handle):
        cdef PyObject* p = _registry_find(self._map, handle)
        if p is NULL:
            return None
        if (<_Node>p).next is not self._head:
            self._unlink(<_Node>p)
            self._link_last(<_Node>p)
        return (<_Node>p).value

    def __getitem__(self, handle):
        cdef PyObject* p = _registry_find(self._map, handle)
        if p is NULL:
            raise KeyError(handle)
        if (<_Node>p).next is not self._head:  # not already the most recent
            self._unlink(<_Node>p)
            self._link_last(<_Node>p)
        return (<_Node>p).value

    def get(self, handle, default=None):
        """Look up without marking the entry used."""
        cdef PyObject* p = _registry_find(self._map, handle)
        if p is NULL:
            return default
        return (<_Node>p).value

    def remove(self, handle):
        cdef PyObject* p = _registry_find(self._map, handle)
        cdef _Node node
        if p is NULL:
            return None
        node = <_Node>p
        self._unlink(node)
        del self._map[handle]
        node.prev = None
        node.next = None
        return node.value

    def pop_all(self):
        cdef list items = []
        cdef _Node node = self._head.next
        cdef _Node nxt
        while node is not self._head:
            items.append((node.key, node.value))
            nxt = node.next
            node.prev = None
            node.next = None
            node = nxt
        self._head.prev = self._head
        self._head.next = self._head
        self._map.clear()
        return items

    def keys(self):
        """Handles from least to most recently used."""
        cdef list out = []
        cdef _Node node = self._head.next
        while node is not self._head:
            out.append(node.key)
            node = node.next
        return out

    def __contains__(self, handle):
        return _registry_find(self._map, handle) is not NULL

    def __len__(self):
        return len(self._map)

    def __repr__(self):
        return f"LRURegistry(cap={self._cap}, len={len(self._map)})"


# -- budget --------------------------------------------------------------------

cdef class BudgetPool:
    """The run's budget: ``ceiling`` counted down by ``take``; shared by forks.
    A C ``uint64`` updated with compare-and-swap (``include/lexfast/atomic.h``).

    With a ``lease`` (a distributed pool, ``lexfast.budget_pool``) the counter
    is this process's lease, starting at 0: a take it cannot cover calls
    ``lease.refill(pool, cost)``, which deposits a block from the shared pool
    and takes ``cost`` or raises ``BudgetExceeded``. Only the refusal branch
    looks at the lease, so a local pool's hot path is unchanged."""

    def __init__(self, ceiling=None, lease=None):
        self._lease = lease
        if ceiling is None:
            if lease is not None:
                raise ValueError("BudgetPool: a lease needs a ceiling")
            self._limited = False
            self._ceiling = 0
            self._remaining = _U64_MAX
            return
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or not 0 <= ceiling <= _U64_MAX:
            raise ValueError(f"BudgetPool: ceiling must be None or an int in 0..={_U64_MAX}")
        self._limited = True
        self._ceiling = ceiling
        self._remaining = 0 if lease is not None else ceiling

    @property
    def ceiling(self):
        return self._ceiling if self._limited else None

    @property
    def remaining(self):
        if not self._limited:
            return None
        if self._lease is not None:
            return self._lease.remaining(self)
        return lexfast_load_u64(&self._remaining)

    @property
    def lease(self):
        return self._lease

    @property
    def local(self):
        """What the counter holds: the remainder, or a lease's unspent units."""
        return lexfast_load_u64(&self._remaining) if self._limited else None

    def take(self, cost):
        self._take_slow(cost)

    def _try_take(self, cost):
        """Deduct ``cost`` (an int >= 0) from the counter alone: True, or
        False without deducting (no refill)."""
        cdef uint64_t seen
        if cost < 0:
            raise ValueError("BudgetPool: cost must be >= 0")
        if not self._limited:
            return True
        if cost > _U64_MAX:
            return False
        return bool(lexfast_budget_take(&self._remaining, <uint64_t>cost, &seen))

    def _deposit(self, n):
        """Add ``n`` units to the counter (a lease's refill)."""
        if not 0 <= n <= _U64_MAX - lexfast_load_u64(&self._remaining):
            raise ValueError("BudgetPool: deposit out of range")
        lexfast_fetch_add_u64(&self._remaining, <uint64_t>n)

    def _drain(self):
        """Empty the counter; the units it held (a lease returned on close)."""
        if not self._limited:
            return 0
        return lexfast_exchange_u64(&self._remaining, 0)

    cdef int _take_slow(self, object cost) except -1:
        cdef uint64_t c, seen
        if not _is_lex_int(cost):
            raise EffectError(f"note_call_budget: cost must be Int, got {debug_repr(cost)}")
        cost = int.__int__(cost)  # a subclass's comparisons are never run
        if cost < 0:
            raise EffectError(f"note_call_budget: cost must be non-negative, got {cost}")
        if not self._limited:
            return 0
        if cost > _U64_MAX:
            if self._lease is not None:
                self._lease.refill(self, cost)
                return 0
            seen = lexfast_load_u64(&self._remaining)
            raise BudgetExceeded(int(cost), self._ceiling - seen, self._ceiling)
        c = cost
        if not lexfast_budget_take(&self._remaining, c, &seen):
            if self._lease is not None:
                self._lease.refill(self, cost)
                return 0
            raise BudgetExceeded(c, self._ceiling - seen, self._ceiling)
        return 0


# -- the dispatch table row and the handler core ----------------------------------

cdef class Row:
    """One effect: ``(kind, op)`` gated on ``gate`` (kinds, all required, in
    order), performed by ``fn(handler, args)``."""

    def __init__(self, str kind, str op, tuple gate, fn, Py_ssize_t index=-1):
        cdef uint64_t mask = 0
        unknown = [g for g in gate if g not in KIND_BIT]
        if unknown:
            raise ValueError(f"Row {kind}.{op}: unknown effect kind `{unknown[0]}` in its gate "
                             "(a VM declares its own with lexfast.kinds.declare_kind)")
        for g in gate:
            mask |= <uint64_t>KIND_BIT[g]
        self.kind = kind
        self.op = op
        self.gate = gate
        self.fn = fn
        self.mask = mask
        self.index = index
        self._gate_bits = tuple(KIND_BIT[g] for g in gate)
        # The denial messages, made once: a refused call is common in agent code.
        self._denials = tuple(f"effect `{g}` not in --allow-effects" for g in gate)

    def __repr__(self):
        return f"Row({self.kind!r}, {self.op!r}, gate={self.gate!r})"


# -- statistics ------------------------------------------------------------------

cdef char* _Q_FORMAT = "q"


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef class Stats:
    """Per-row counters of a session: ``calls, denials, errors, total_ns,
    max_ns`` (int64 each) for every row of its effect table, in a C array.
    Exposed read-only through the buffer protocol as ``5 * len(self)`` int64s,
    so numpy can view it without copying. Counting is always on (a few ns);
    timing (two clock reads per call) only when ``timing`` is set."""

    def __cinit__(self, Py_ssize_t n, bint timing=False):
        if n < 0:
            raise ValueError("Stats: n must be >= 0")
        self.rows = <EffectStat*>calloc(n if n > 0 else 1, sizeof(EffectStat))
        if self.rows is NULL:
            raise MemoryError()
        self.n = n
        self.timing = timing
        self._exports = 0

    def __dealloc__(self):
        free(self.rows)
        self.rows = NULL

    def __len__(self):
        return self.n

    @property
    def timing(self):
        return self.timing

    @timing.setter
    def timing(self, bint value):
        self.timing = value

    def reset(self):
        memset(self.rows, 0, (self.n if self.n > 0 else 1) * sizeof(EffectStat))

    def row(self, Py_ssize_t i):
        """The counters of row ``i`` as a dict."""
        if not 0 <= i < self.n:
            raise IndexError(i)
        cdef EffectStat* st = &self.rows[i]
        return {"calls": st.calls, "denials": st.denials, "errors": st.errors,
                "total_ns": st.total_ns, "max_ns": st.max_ns}

    def memoryview(self):
        """The counters as a read-only memoryview (``5 * len(self)`` int64s)."""
        return memoryview(self)

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("Stats is read-only; use reset()")
        self._shape[0] = self.n * 5
        self._strides[0] = sizeof(int64_t)
        buffer.buf = <void*>self.rows
        buffer.obj = self
        buffer.len = self.n * sizeof(EffectStat)
        buffer.readonly = 1
        buffer.itemsize = sizeof(int64_t)
        buffer.format = NULL
        if flags & PyBUF_FORMAT:
            buffer.format = _Q_FORMAT
        buffer.ndim = 1
        buffer.shape = NULL
        if flags & PyBUF_ND:
            buffer.shape = self._shape
        buffer.strides = NULL
        if (flags & PyBUF_STRIDES) == PyBUF_STRIDES:
            buffer.strides = self._strides
        buffer.suboffsets = NULL
        buffer.internal = NULL
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *buffer):
        self._exports -= 1


cdef inline void _count_time(EffectStat* st, int64_t t0) noexcept nogil:
    cdef int64_t dt = _now_ns() - t0
    st.total_ns += dt
    if dt > st.max_ns:
        st.max_ns = dt


cdef int _effect_failed(object kind, object op) except -1:
    """An effect (or pure builtin) returned NULL. ``EffectError`` and
    non-``Exception`` errors (KeyboardInterrupt…) go on as they are; any other
    exception is a bug in the effect and becomes an ``EffectError``."""
    cdef PyObject* t
    cdef PyObject* v
    cdef PyObject* tb
    if PyErr_ExceptionMatches(EffectError) or not PyErr_ExceptionMatches(Exception):
        return -1
    PyErr_Fetch(&t, &v, &tb)
    PyErr_NormalizeException(&t, &v, &tb)
    e = <object>v
    if tb is not NULL:
        PyException_SetTraceback(e, <object>tb)
    Py_XDECREF(t)
    Py_XDECREF(v)
    Py_XDECREF(tb)
    raise internal_error(kind, op, e) from e


cdef str _DENIED_BY_POLICY = "effect denied by policy"


cdef Py_ssize_t _denied_index(Row row, uint64_t allowed) noexcept:
    """The first kind of ``row.gate`` not in ``allowed``, or -1."""
    cdef Py_ssize_t i
    for i in range(_PyTuple_GET_SIZE(<PyObject*>row._gate_bits)):
        if not (<uint64_t>PyLong_AsUnsignedLongLongMask(
                PyTuple_GET_ITEM(<PyObject*>row._gate_bits, i))) & allowed:
            return i
    return -1


cdef PyObject* _new_denied_raw(Row row, uint64_t allowed) noexcept:
    """A new reference to the PolicyDenied for ``row`` (the first kind of
    its gate not allowed), or NULL with the error set."""
    cdef Py_ssize_t i = _denied_index(row, allowed)
    if i < 0:
        return lexfast_new_denied(<PyObject*>_DENIED_BY_POLICY, <PyObject*>None)
    return lexfast_new_denied(PyTuple_GET_ITEM(<PyObject*>row._denials, i),
                              PyTuple_GET_ITEM(<PyObject*>row.gate, i))


cdef object _denied(Row row, uint64_t allowed):
    return _steal_or_raise(_new_denied_raw(row, allowed))


cdef _init_denied():
    """``lexfast/include/denied.h``'s PolicyDenied, its attributes' names and,
    when they are ``__slots__`` holding objects, their offsets."""
    global lexfast_denied_type
    cdef Py_ssize_t i
    names = ("effect", "path", "host", "cmd")
    descrs = [PolicyDenied.__dict__.get(n) for n in names]
    slots = all(type(d) is _MemberDescriptor and d.__objclass__ is PolicyDenied
                and (<PyMemberDescrObject*>d).d_member.type == T_OBJECT_EX for d in descrs)
    for i in range(4):
        Py_INCREF(names[i])  # kept for the process's life
        lexfast_denied_names[i] = <PyObject*>names[i]
        lexfast_denied_offsets[i] = (<PyMemberDescrObject*>descrs[i]).d_member.offset if slots else 0
    Py_INCREF(PolicyDenied)
    lexfast_denied_type = <PyObject*>PolicyDenied


_init_denied()


cdef enum:
    _CACHE_SLOTS = 256  # a power of two


cdef inline Py_ssize_t _cache_slot(PyObject* kind, PyObject* op) noexcept:
    """The identity cache's slot for ``(kind, op)``: their addresses mixed
    (objects are 16-byte aligned, so the low bits carry nothing)."""
    cdef size_t k = <size_t>kind
    cdef size_t o = <size_t>op
    return <Py_ssize_t>(((k >> 4) ^ (o >> 4) ^ (o >> 11)) & (_CACHE_SLOTS - 1))


cdef inline object _steal(PyObject* r):
    """The object of a new reference (a call's result), that reference dropped."""
    result = <object>r
    Py_DECREF(result)
    return result


cdef inline void _cache_fill(list cache, Py_ssize_t i, PyObject* kind, PyObject* op,
                             PyObject* target) noexcept:
    """Make slot ``i`` ``(kind, op, target)``. The three items are swapped
    with no Python code running, and the old ones released only after, the
    target last (its release may run Python code): whoever runs then sees a
    whole entry, old or new."""
    cdef PyObject* old_kind = PyList_GET_ITEM(<PyObject*>cache, 3 * i)
    cdef PyObject* old_op = PyList_GET_ITEM(<PyObject*>cache, 3 * i + 1)
    cdef PyObject* old_target = PyList_GET_ITEM(<PyObject*>cache, 3 * i + 2)
    _Py_INCREF(kind)
    _Py_INCREF(op)
    _Py_INCREF(target)
    _list_set_raw(<PyObject*>cache, 3 * i, kind)
    _list_set_raw(<PyObject*>cache, 3 * i + 1, op)
    _list_set_raw(<PyObject*>cache, 3 * i + 2, target)
    _Py_DECREF(old_kind)
    _Py_DECREF(old_op)
    _Py_DECREF(old_target)


cdef PyObject* _resolve(HandlerCore h, PyObject* kind, PyObject* op) noexcept:
    """The pure builtin or the ``Row`` serving ``(kind, op)`` (exact str each),
    borrowed from the tables, or NULL; the pure table first, as ``dispatch``
    promises."""
    cdef PyObject* p
    if h._pure is not None:
        p = _dict_get(<PyObject*>h._pure, kind)
        if p is not NULL:
            p = _dict_get(p, op)
            if p is not NULL:
                return p
    p = _dict_get(<PyObject*>h._table, kind)
    if p is not NULL:
        p = _dict_get(p, op)
    if p is NULL and h._wildcards is not None:
        p = _dict_get(<PyObject*>h._wildcards, kind)
    return p


cdef class HandlerCore:
    """The hot part of ``DefaultHandler``: the pure table, the effect table,
    the policy gate and the budget pool. ``_policy``, ``_effects`` (the
    ``EffectTable``), ``_pool``, ``_pure`` and ``_stats`` are what ``_setup``
    was given (``fork`` hands them on)."""

    def _setup(self, policy, effects, BudgetPool pool not None, pure, Stats stats=None):
        self._policy = policy
        self._allowed = policy.mask
        self._effects = effects
        self._table = effects.ops
        # A wildcard row serves the ops of its kind that have no row of their
        # own, through the same gate as an exact row; not for the families
        # whose unknown ops fail before any gate.
        self._wildcards = {k: r for k, r in effects.wildcards.items()
                           if k not in UNKNOWN_OP_BEFORE_GATE} or None
        self._pool = pool
        self._pure = pure if pure else None
        self._stats = stats
        self._stat_rows = stats.rows if stats is not None else NULL
        self._stat_n = stats.n if stats is not None else 0
        # Emptied on every change of policy, tables or statistics: whatever
        # _setup was given, a dispatch afterwards resolves through it.
        self._cache = [None] * (3 * _CACHE_SLOTS)

    @property
    def policy(self):
        return self._policy

    @property
    def budget_remaining(self):
        return self._pool.remaining if self._pool is not None else None

    @property
    def budget_ceiling(self):
        return self._pool.ceiling if self._pool is not None else None

    def dispatch(self, kind, op, args):
        cdef PyObject* slot
        cdef PyObject* p
        cdef PyObject* r
        cdef Py_ssize_t i
        cdef Row row
        cdef EffectStat* st = NULL
        cdef int64_t t0
        if not PyList_CheckExact(args):
            args = coerce_args(args)
        if self._cache is None:
            raise EffectError("handler is not initialised (DefaultHandler.__init__ was not run)")
        if not (PyUnicode_CheckExact(kind) and PyUnicode_CheckExact(op)):
            return dispatch_miss(self, self._effects, kind, op, args)
        # The identity cache: a VM passes the same (interned) str objects for
        # an op every time, so a hit is two pointer compares instead of two
        # dict lookups. Slot i is items 3i..3i+2 of a list (kind, op, target),
        # replaced whole (_cache_fill); it holds its kind and op, so their
        # addresses cannot be reused while it lives. Only the lookup is
        # cached: the gate below runs on every call.
        i = _cache_slot(<PyObject*>kind, <PyObject*>op)
        if (PyList_GET_ITEM(<PyObject*>self._cache, 3 * i) == <PyObject*>kind
                and PyList_GET_ITEM(<PyObject*>self._cache, 3 * i + 1) == <PyObject*>op):
            # owned: the slot may be replaced meanwhile
            target = <object>PyList_GET_ITEM(<PyObject*>self._cache, 3 * i + 2)
        else:
            p = _resolve(self, <PyObject*>kind, <PyObject*>op)
            if p is NULL:
                return dispatch_miss(self, self._effects, kind, op, args)
            target = <object>p
            _cache_fill(self._cache, i, <PyObject*>kind, <PyObject*>op, p)
        if type(target) is not Row:  # a pure builtin: no gate, not counted
            r = lexfast_call1(<PyObject*>target, <PyObject*>args)
            if r is NULL:
                _effect_failed(kind, op)
            return _steal(r)
        row = <Row>target
        if 0 <= row.index < self._stat_n:
            st = &self._stat_rows[row.index]
            st.calls += 1
        if row.mask & ~self._allowed:
            if st is not NULL:
                st.denials += 1
            raise _denied(row, self._allowed)
        if st is not NULL and self._stats.timing:
            t0 = _now_ns()
            r = lexfast_call2(<PyObject*>row.fn, <PyObject*>self, <PyObject*>args)
            _count_time(st, t0)
        else:
            r = lexfast_call2(<PyObject*>row.fn, <PyObject*>self, <PyObject*>args)
        if r is NULL:
            if st is not NULL:
                st.errors += 1
            _effect_failed(kind, op)
        return _steal(r)

    def note_call_budget(self, cost):
        cdef long long c
        cdef int overflow = 0
        cdef uint64_t seen
        cdef BudgetPool pool = self._pool
        if pool is None:
            raise EffectError("handler is not initialised (DefaultHandler.__init__ was not run)")
        if PyLong_CheckExact(cost):
            c = PyLong_AsLongLongAndOverflow(cost, &overflow)
            if overflow == 0 and c >= 0:
                if not pool._limited:
                    return None
                if lexfast_budget_take(&pool._remaining, <uint64_t>c, &seen):
                    return None
                if pool._lease is not None:  # a distributed pool: refill the lease
                    pool._lease.refill(pool, c)
                    return None
                raise BudgetExceeded(c, pool._ceiling - seen, pool._ceiling)
        pool._take_slow(cost)


# -- the dispatch fast entry --------------------------------------------------------

# What the fast entry reaches without a module lookup.
cdef object _EffectError = EffectError
cdef object _Exception = Exception
cdef object _internal_error = internal_error
cdef str _TOO_MANY = "dispatch() takes 3 arguments: kind, op, args"
cdef object _dispatch_def = None  # HandlerCore.dispatch as Cython compiled it: the slow path


cdef PyObject* _dispatch_slow(PyObject* self, PyObject* const* argv, Py_ssize_t nargs,
                              PyObject* kwnames) noexcept:
    """Everything the fast entry does not serve: the ``def`` method."""
    cdef PyObject* a[8]
    cdef Py_ssize_t i, n = nargs
    if kwnames is not NULL:
        n += _PyTuple_GET_SIZE(kwnames)
    if n > 7:
        _PyErr_SetObject(<PyObject*>TypeError, <PyObject*>_TOO_MANY)
        return NULL
    a[0] = self
    for i in range(n):
        a[i + 1] = argv[i]
    return _PyObject_Vectorcall(<PyObject*>_dispatch_def, a, <size_t>(nargs + 1), kwnames)


cdef PyObject* _failed_raw(PyObject* kind, PyObject* op) noexcept:
    """``_effect_failed`` for the fast entry: an ``EffectError`` (or a
    non-``Exception``) goes on; any other error becomes an ``EffectError``
    naming the op, the original as its ``__cause__``."""
    cdef PyObject* t
    cdef PyObject* v
    cdef PyObject* tb
    cdef PyObject* a[3]
    cdef PyObject* e
    if _PyErr_ExceptionMatches(<PyObject*>_EffectError) or not _PyErr_ExceptionMatches(<PyObject*>_Exception):
        return NULL
    _PyErr_Fetch(&t, &v, &tb)
    _PyErr_NormalizeException(&t, &v, &tb)
    if tb is not NULL:
        _PyException_SetTraceback(v, tb)
    a[0] = kind
    a[1] = op
    a[2] = v
    e = _PyObject_Vectorcall(<PyObject*>_internal_error, a, 3, NULL)
    _Py_XDECREF(t)
    _Py_XDECREF(tb)
    if e is NULL:
        _Py_XDECREF(v)
        return NULL
    _PyException_SetCause(e, v)  # steals v
    _PyErr_SetObject(_Py_TYPE(e), e)
    _Py_DECREF(e)
    return NULL


cdef PyObject* _denied_raw(Row row, uint64_t allowed) noexcept:
    """``raise _denied(row, allowed)`` for the fast entry: NULL, the error set."""
    cdef PyObject* exc = _new_denied_raw(row, allowed)
    if exc is not NULL:
        _PyErr_SetObject(_Py_TYPE(exc), exc)
        _Py_DECREF(exc)
    return NULL


cdef PyObject* _dispatch_fast(PyObject* self, PyObject* const* argv, Py_ssize_t nargs,
                              PyObject* kwnames) noexcept:
    """``HandlerCore.dispatch`` as the type serves it (METH_FASTCALL): an
    identity-cache hit with an exact list and exact str names is served here,
    in C, and a refusal raised without a Cython traceback frame (a third of a
    denied call's cost); everything else goes to the ``def`` method, which
    resolves, fills the cache and reports errors. Same semantics either way
    (the tests run both)."""
    cdef PyObject* kind
    cdef PyObject* op
    cdef PyObject* args
    cdef PyObject* cache
    cdef PyObject* target
    cdef PyObject* r
    cdef HandlerCore h
    cdef Row row
    cdef EffectStat* st = NULL
    cdef int64_t t0
    cdef Py_ssize_t i
    if kwnames is not NULL or nargs != 3:
        return _dispatch_slow(self, argv, nargs, kwnames)
    kind = argv[0]
    op = argv[1]
    args = argv[2]
    if not (_list_exact(args) and _str_exact(kind) and _str_exact(op)):
        return _dispatch_slow(self, argv, nargs, kwnames)
    h = <HandlerCore>self
    if h._cache is None:
        return _dispatch_slow(self, argv, nargs, kwnames)
    i = _cache_slot(kind, op)
    cache = <PyObject*>h._cache
    # ``target`` is owned from here: replacing a slot (or a table) may
    # release the last other reference to it.
    if PyList_GET_ITEM(cache, 3 * i) == kind and PyList_GET_ITEM(cache, 3 * i + 1) == op:
        target = PyList_GET_ITEM(cache, 3 * i + 2)
        _Py_INCREF(target)
    else:
        target = _resolve(h, kind, op)
        if target is NULL:  # no row: the def reports it in the reference's words
            return _dispatch_slow(self, argv, nargs, kwnames)
        _Py_INCREF(target)
        _cache_fill(h._cache, i, kind, op, target)
    if _Py_TYPE(target) != <PyObject*>Row:  # a pure builtin: no gate, not counted
        r = lexfast_call1(target, args)
        _Py_DECREF(target)
        if r is NULL:
            return _failed_raw(kind, op)
        return r
    row = <Row>target
    _Py_DECREF(target)  # ``row`` holds it
    if 0 <= row.index < h._stat_n:
        st = &h._stat_rows[row.index]
        st.calls += 1
    if row.mask & ~h._allowed:
        if st is not NULL:
            st.denials += 1
        return _denied_raw(row, h._allowed)
    if st is not NULL and h._stats.timing:
        t0 = _now_ns()
        r = lexfast_call2(<PyObject*>row.fn, self, args)
        _count_time(st, t0)
    else:
        r = lexfast_call2(<PyObject*>row.fn, self, args)
    if r is NULL:
        if st is not NULL:
            st.errors += 1
        return _failed_raw(kind, op)
    return r


cdef PyMethodDef _dispatch_method
cdef bytes _dispatch_doc = (
    b"dispatch($self, kind, op, args)\n--\n\n"
    b"Run the effect ``kind.op`` under the policy: a pure builtin first, else the gate, "
    b"else the effect. Raises ``EffectError`` (or ``PolicyDenied``) where the reference "
    b"returns ``Err`` from dispatch.")


cdef _install_dispatch_fast():
    """Put ``_dispatch_fast`` in the type's dict as ``dispatch`` (Cython
    cannot declare a METH_FASTCALL method whose errors skip its traceback
    frame); the ``def`` it replaces stays its slow path."""
    global _dispatch_def
    cdef dict type_dict = <dict>(<_TypeNew*>(<PyObject*>HandlerCore)).tp_dict
    _dispatch_def = type_dict["dispatch"]
    _dispatch_method.ml_name = "dispatch"
    _dispatch_method.ml_meth = <void*>_dispatch_fast
    _dispatch_method.ml_flags = METH_FASTCALL | METH_KEYWORDS
    _dispatch_method.ml_doc = _dispatch_doc
    # A static type's dict is not writable through setattr; this is this
    # module's own type, before any instance of it exists.
    type_dict["dispatch"] = PyDescr_NewMethod(HandlerCore, &_dispatch_method)
    PyType_Modified(HandlerCore)



def openat2(int dirfd, path, uint64_t flags, uint64_t mode, uint64_t resolve):
    """``openat2(2)``; ``OSError`` as ``os.open`` raises it."""
    cdef bytes b = os.fsencode(path)
    if b"\0" in b:
        raise ValueError("embedded null byte")  # C would cut the path there
    cdef const char *cpath = b
    cdef int fd
    with nogil:
        fd = lexfast_openat2(dirfd, cpath, flags, mode, resolve)
    if fd < 0:
        raise OSError(-fd, strerror(-fd).decode("utf-8", "replace"), path)
    return fd


_install_dispatch_fast()
