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

cimport cython

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
from ..values import INT_MAX, INT_MIN, Deque, Map, Set, debug_repr, register_variant_type

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
    "RecordTap", "ReplayTap", "TraceBuffer", "TraceSteps", "strict_equal", "trace_call_line",
    "trace_call_lines",
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


# -- record and replay (lexfast/record.py, docs/design.md §8) ----------------------
#
# A recording or replaying handler gets an instance ``dispatch`` that is a
# METH_FASTCALL C function bound to a tap (``RecordTap`` / ``ReplayTap``): the
# class's ``dispatch`` above is untouched, so a handler that neither records
# nor replays pays nothing. Recording appends a tuple and encodes nothing;
# replay compares the live args with the trace's decoded ones by value and
# type, in C, and answers the recorded value.

cdef extern from "Python.h":
    object PyCFunction_NewEx(PyMethodDef* ml, PyObject* self, PyObject* module)
    PyObject* _PyList_GetSlice "PyList_GetSlice"(PyObject* l, Py_ssize_t lo, Py_ssize_t hi)
    Py_ssize_t _PyList_GET_SIZE "PyList_GET_SIZE"(PyObject* l)
    void _PyErr_Restore "PyErr_Restore"(PyObject* t, PyObject* v, PyObject* tb)
    int _PySet_Contains "PySet_Contains"(PyObject* s, PyObject* k)
    double PyFloat_AS_DOUBLE(object o)
    bint PyDict_CheckExact(object o)
    bint PyAnySet_Check(object o)
    Py_ssize_t PY_SSIZE_T_MAX
    PyObject* _PyLong_FromLongLong "PyLong_FromLongLong"(long long v)
    PyObject* _PyTuple_New "PyTuple_New"(Py_ssize_t n)
    void _PyTuple_SET_ITEM "PyTuple_SET_ITEM"(PyObject* t, Py_ssize_t i, PyObject* o)  # steals
    int _PyList_Append "PyList_Append"(PyObject* l, PyObject* item)

cdef object _ZERO_OBJ = 0
cdef object _ONE_OBJ = 1
cdef PyObject* _ZERO = <PyObject*>_ZERO_OBJ
cdef PyObject* _ONE = <PyObject*>_ONE_OBJ

#: the depth past which ``strict_equal`` answers False (the caller's slow path decides)
cdef int _STRICT_MAX_DEPTH = 256


cdef bint _strict_keys(object s) except -1:
    for k in s:
        if type(k) is not str and type(k) is not int:
            return False
    return True


cdef bint _strict(object a, object b, int depth) except -1:
    """``strict_equal``. Runs no Python code (exact types only), so it never
    lets another thread in."""
    cdef Py_ssize_t i, n
    cdef PyObject* p
    if a is b:
        return True
    t = type(a)
    if t is not type(b) or depth > _STRICT_MAX_DEPTH:
        return False  # 1, True and 1.0 differ; so do a Record and a Map
    if t is str:
        return (<str>a) == (<str>b)
    if t is int or t is bytes:
        return a == b
    if t is float:
        return PyFloat_AS_DOUBLE(a) == PyFloat_AS_DOUBLE(b)
    if t is list:
        n = len(<list>a)
        if n != len(<list>b):
            return False
        for i in range(n):
            if not _strict(<object>PyList_GET_ITEM(<PyObject*>a, i),
                           <object>PyList_GET_ITEM(<PyObject*>b, i), depth + 1):
                return False
        return True
    if t is tuple:
        n = len(<tuple>a)
        if n != len(<tuple>b):
            return False
        for i in range(n):
            if not _strict(<object>PyTuple_GET_ITEM(<PyObject*>a, i),
                           <object>PyTuple_GET_ITEM(<PyObject*>b, i), depth + 1):
                return False
        return True
    if t is dict or t is Map:
        # keys exact str or int on both sides: a lookup finds True for 1
        if len(<dict>a) != len(<dict>b) or not _strict_keys(b):
            return False
        for k, x in (<dict>a).items():
            if type(k) is not str and type(k) is not int:
                return False
            p = _dict_get(<PyObject*>b, <PyObject*>k)
            if p is NULL or not _strict(x, <object>p, depth + 1):
                return False
        return True
    if t is Variant:
        return ((<Variant>a).name == (<Variant>b).name
                and _strict((<Variant>a).args, (<Variant>b).args, depth + 1))
    if t is Deque:
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            if not _strict(x, y, depth + 1):
                return False
        return True
    if t is Set:
        return _strict_keys(a) and _strict_keys(b) and a == b
    return False


def strict_equal(a, b):
    """Whether two Lex values (or JSON trees) are the same by value and by
    type at every level: ``1``, ``True`` and ``1.0`` differ, as do a Record
    and a Map, a list and a tuple. Str, Int, Bytes, Float, List, Tuple,
    Record, Map, Set, Deque and Variant are compared; anything else (a
    Table, a subclass) or nesting past 256 levels answers ``False`` (replay
    then compares the two as JSON)."""
    return _strict(a, b, 0)


@cython.final
cdef class TraceBuffer:
    """What a recording session has dispatched and not yet written: items
    appended by the dispatch threads, taken whole by the writer (``take``).
    ``full`` (set when the trace reached its bound) stops the recording."""
    cdef list _items
    cdef public bint full

    def __init__(self):
        self._items = []
        self.full = False

    def append(self, item):
        self._items.append(item)

    def take(self):
        """Everything appended so far, in order; the buffer starts empty."""
        items = self._items
        self._items = []
        return items

    def __len__(self):
        return len(self._items)


cdef PyObject* _core_call(object core, bint direct, object handler,
                          PyObject* const* argv) noexcept:
    """The handler's own ``dispatch(kind, op, args)``: a new reference, or NULL
    with the error set."""
    if direct:
        return _dispatch_fast(<PyObject*>handler, argv, 3, NULL)
    return _PyObject_Vectorcall(<PyObject*>core, <PyObject**>argv, 3, NULL)


cdef bint _in_table(dict table, PyObject* kind, PyObject* op) noexcept:
    """``op in table[kind]`` for exact str names (a dict or a set per kind)."""
    cdef PyObject* ops
    if table is None or not (_str_exact(kind) and _str_exact(op)):
        return False
    ops = _dict_get(<PyObject*>table, kind)
    if ops is NULL:
        return False
    if PyDict_CheckExact(<object>ops):
        return _dict_get(ops, op) is not NULL
    if PyAnySet_Check(<object>ops):
        return _PySet_Contains(ops, op) == 1
    return False


cdef dict _pure_of(object handler, bint direct):
    if direct:
        return (<HandlerCore>handler)._pure
    pure = getattr(handler, "_pure", None)
    return pure if type(pure) is dict else None


cdef PyMethodDef _record_method
cdef PyMethodDef _replay_method


@cython.final
cdef class RecordTap:
    """The recording ``dispatch`` of one handler (a session's root or a fork):
    each call the handler's own ``dispatch`` serves is appended to ``buffer``
    as ``(0, fork, kind, op, args_copy, 0, value, t0, t1)``, or with ``1``
    and the ``EffectError`` when it raised (monotonic ns): no encoding on the
    dispatch thread. Pure builtins pass unrecorded unless ``record_pure``;
    an op in ``special`` (``{kind: ops}``) goes to ``slow(kind, op, args)``
    (the servers); nothing is recorded once ``buffer.full``."""
    cdef object _handler
    cdef object _core
    cdef bint _direct
    cdef TraceBuffer _buffer
    cdef object _fork
    cdef bint _record_pure
    cdef dict _special
    cdef object _slow
    cdef readonly object dispatch

    def __init__(self, handler, TraceBuffer buffer not None, fork, record_pure, dict special,
                 slow):
        self._handler = handler
        self._core = type(handler).dispatch.__get__(handler)
        # the class's own C entry: called directly, not through the bound method
        self._direct = (isinstance(handler, HandlerCore)
                        and type(handler).dispatch is HandlerCore.__dict__["dispatch"])
        self._buffer = buffer
        self._fork = fork
        self._record_pure = bool(record_pure)
        self._special = special
        self._slow = slow
        self.dispatch = PyCFunction_NewEx(&_record_method, <PyObject*>self, NULL)

    def __call__(self, kind, op, args):
        return self.dispatch(kind, op, args)


cdef int _record_append(RecordTap tap, PyObject* kind, PyObject* op, PyObject* snap, int tag,
                        PyObject* payload, int64_t t0, int64_t t1) noexcept:
    """Append ``(0, fork, kind, op, snap, tag, payload, t0, t1)`` to the
    buffer: 0, or -1 with the error set. The tuple is built first: nothing
    between reading the buffer's list and appending runs Python code (a
    writer's ``take`` in between would lose the item)."""
    cdef PyObject* item
    cdef PyObject* a
    cdef PyObject* b
    cdef int rc
    a = _PyLong_FromLongLong(t0)
    b = _PyLong_FromLongLong(t1)
    item = _PyTuple_New(9)
    if a is NULL or b is NULL or item is NULL:
        _Py_XDECREF(a)
        _Py_XDECREF(b)
        _Py_XDECREF(item)
        return -1
    _Py_INCREF(_ZERO)
    _PyTuple_SET_ITEM(item, 0, _ZERO)
    _Py_INCREF(<PyObject*>tap._fork)
    _PyTuple_SET_ITEM(item, 1, <PyObject*>tap._fork)
    _Py_INCREF(kind)
    _PyTuple_SET_ITEM(item, 2, kind)
    _Py_INCREF(op)
    _PyTuple_SET_ITEM(item, 3, op)
    _Py_INCREF(snap)
    _PyTuple_SET_ITEM(item, 4, snap)
    _Py_INCREF(_ONE if tag else _ZERO)
    _PyTuple_SET_ITEM(item, 5, _ONE if tag else _ZERO)
    _Py_INCREF(payload)
    _PyTuple_SET_ITEM(item, 6, payload)
    _PyTuple_SET_ITEM(item, 7, a)
    _PyTuple_SET_ITEM(item, 8, b)
    rc = _PyList_Append(<PyObject*>tap._buffer._items, item)
    _Py_DECREF(item)
    return rc


cdef PyObject* _record_entry(PyObject* self, PyObject* const* argv, Py_ssize_t nargs,
                             PyObject* kwnames) except NULL:
    cdef RecordTap tap = <RecordTap>self
    cdef PyObject* kind
    cdef PyObject* op
    cdef PyObject* args
    cdef PyObject* snap
    cdef PyObject* r
    cdef PyObject* t
    cdef PyObject* v
    cdef PyObject* tb
    cdef int64_t t0, t1
    cdef int failed
    if kwnames is not NULL or nargs != 3:  # by name: through ``__call__``
        return _PyObject_Vectorcall(self, <PyObject**>argv, <size_t>nargs, kwnames)
    kind = argv[0]
    op = argv[1]
    args = argv[2]
    if not tap._record_pure and _in_table(_pure_of(tap._handler, tap._direct), kind, op):
        return _core_call(tap._core, tap._direct, tap._handler, argv)
    if tap._buffer.full:
        return _core_call(tap._core, tap._direct, tap._handler, argv)
    if _in_table(tap._special, kind, op):
        return _PyObject_Vectorcall(<PyObject*>tap._slow, <PyObject**>argv, 3, NULL)
    if _list_exact(args):
        snap = _PyList_GetSlice(args, 0, PY_SSIZE_T_MAX)
        if snap is NULL:
            return NULL
    else:
        snap = args
        _Py_INCREF(snap)
    t0 = _now_ns()
    r = _core_call(tap._core, tap._direct, tap._handler, argv)
    t1 = _now_ns()
    if r is not NULL:
        failed = _record_append(tap, kind, op, snap, 0, r, t0, t1)
        _Py_DECREF(snap)
        if failed:
            _Py_DECREF(r)
            return NULL
        return r
    if not _PyErr_ExceptionMatches(<PyObject*>_EffectError):
        _Py_DECREF(snap)
        return NULL
    _PyErr_Fetch(&t, &v, &tb)
    _PyErr_NormalizeException(&t, &v, &tb)
    if tb is not NULL:
        _PyException_SetTraceback(v, tb)
    failed = _record_append(tap, kind, op, snap, 1, v, t0, t1)
    _Py_DECREF(snap)
    if failed:  # the new error (out of memory) replaces the effect's
        _Py_XDECREF(t)
        _Py_XDECREF(v)
        _Py_XDECREF(tb)
        return NULL
    _PyErr_Restore(t, v, tb)
    return NULL


@cython.final
cdef class TraceSteps:
    """One fork's recorded steps, in order: ``entries`` (whatever the caller
    keeps per step) and beside each its ``fast`` answer, ``(kind, op, args,
    value)`` or ``None`` when the step needs the caller's slow path (a
    raise, an override, a server). ``pos`` is the next step's index."""
    cdef list _entries
    cdef list _fast
    cdef Py_ssize_t _pos

    def __init__(self, entries, fast):
        self._entries = list(entries)
        self._fast = list(fast)
        if len(self._entries) != len(self._fast):
            raise ValueError("entries and fast answers must be as long")
        for f in self._fast:
            # exact types: the replay entry's compare then runs no Python code
            if f is not None and (type(f) is not tuple or len(<tuple>f) != 4
                                  or type(f[0]) is not str or type(f[1]) is not str
                                  or type(f[2]) is not list):
                raise TypeError("a fast answer is None or (kind: str, op: str, args: list, value)")
        self._pos = 0

    @property
    def pos(self):
        return self._pos

    @pos.setter
    def pos(self, Py_ssize_t value):
        if not 0 <= value <= len(self._entries):
            raise ValueError(f"pos must be in 0..{len(self._entries)}")
        self._pos = value

    def pop(self):
        """The next step's entry (the step consumed), or ``None`` at the end."""
        if self._pos >= len(self._entries):
            return None
        self._pos += 1
        return self._entries[self._pos - 1]

    def __len__(self):
        return len(self._entries) - self._pos


@cython.final
cdef class ReplayTap:
    """The replaying ``dispatch`` of one handler: a call whose next step has
    a fast answer with the same kind, op and (``strict_equal``) args is
    answered with the recorded value, nothing encoded; every other call
    (another call, a raise, an override, the trace's end, args that are
    equal only as JSON) goes to ``slow(kind, op, args)``. Pure builtins run
    unless ``replay_pure``."""
    cdef object _handler
    cdef object _core
    cdef bint _direct
    cdef TraceSteps _steps
    cdef bint _replay_pure
    cdef object _slow
    cdef readonly object dispatch

    def __init__(self, handler, TraceSteps steps not None, replay_pure, slow):
        self._handler = handler
        self._core = type(handler).dispatch.__get__(handler)
        self._direct = (isinstance(handler, HandlerCore)
                        and type(handler).dispatch is HandlerCore.__dict__["dispatch"])
        self._steps = steps
        self._replay_pure = bool(replay_pure)
        self._slow = slow
        self.dispatch = PyCFunction_NewEx(&_replay_method, <PyObject*>self, NULL)

    def __call__(self, kind, op, args):
        return self.dispatch(kind, op, args)


cdef int _replay_match(TraceSteps steps, object kind, object op, object args) except -1:
    """1 when the next step's fast answer is this call (the step then consumed)."""
    cdef Py_ssize_t pos = steps._pos
    cdef tuple fast
    if pos >= len(steps._fast):
        return 0
    f = <object>PyList_GET_ITEM(<PyObject*>steps._fast, pos)
    if f is None:
        return 0
    fast = <tuple>f
    if not ((<str>fast[0]) == (<str>kind) and (<str>fast[1]) == (<str>op)
            and _strict(fast[2], args, 0)):
        return 0
    if steps._pos != pos:  # cannot happen (no Python code ran); never answer twice
        return 0
    steps._pos = pos + 1
    return 1


cdef PyObject* _replay_entry(PyObject* self, PyObject* const* argv, Py_ssize_t nargs,
                             PyObject* kwnames) except NULL:
    cdef ReplayTap tap = <ReplayTap>self
    cdef PyObject* kind
    cdef PyObject* op
    cdef PyObject* args
    cdef PyObject* value
    cdef int hit
    if kwnames is not NULL or nargs != 3:  # by name: through ``__call__``
        return _PyObject_Vectorcall(self, <PyObject**>argv, <size_t>nargs, kwnames)
    kind = argv[0]
    op = argv[1]
    args = argv[2]
    if not tap._replay_pure and _in_table(_pure_of(tap._handler, tap._direct), kind, op):
        return _core_call(tap._core, tap._direct, tap._handler, argv)
    if _list_exact(args) and _str_exact(kind) and _str_exact(op):
        hit = _replay_match(tap._steps, <object>kind, <object>op, <object>args)
        if hit:
            value = PyTuple_GET_ITEM(PyList_GET_ITEM(<PyObject*>tap._steps._fast,
                                                     tap._steps._pos - 1), 3)
            _Py_INCREF(value)
            return value
    return _PyObject_Vectorcall(<PyObject*>tap._slow, <PyObject**>argv, 3, NULL)


cdef _install_taps():
    _record_method.ml_name = "dispatch"
    _record_method.ml_meth = <void*>_record_entry
    _record_method.ml_flags = METH_FASTCALL | METH_KEYWORDS
    _record_method.ml_doc = b"dispatch(kind, op, args)\n--\n\nThe handler's dispatch, recorded."
    _replay_method.ml_name = "dispatch"
    _replay_method.ml_meth = <void*>_replay_entry
    _replay_method.ml_flags = METH_FASTCALL | METH_KEYWORDS
    _replay_method.ml_doc = b"dispatch(kind, op, args)\n--\n\nThe handler's dispatch, replayed."


_install_taps()


# -- trace lines: the writer's encoder for the common call ----------------------------

cdef extern from "Python.h":
    object PyUnicode_FromStringAndSize(const char* s, Py_ssize_t n)
    bint PyUnicode_IS_ASCII(object o)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* n) except NULL
    char* PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    bint PyBytes_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)

from libc.math cimport isfinite
from libc.stdlib cimport realloc
from libc.string cimport memcpy
from libc.stdio cimport snprintf

ctypedef struct _Out:
    char* buf
    Py_ssize_t n
    Py_ssize_t cap

cdef const char* _B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
#: nesting a trace line's fast encoder takes; deeper values take the codec
cdef int _LINE_MAX_DEPTH = 16


cdef int _grow(_Out* o, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap
    cdef char* b
    if o.n + extra <= o.cap:
        return 0
    cap = max(o.cap * 2, o.n + extra + 256)
    b = <char*>realloc(o.buf, cap)
    if b is NULL:
        raise MemoryError()
    o.buf = b
    o.cap = cap
    return 0


cdef int _put(_Out* o, const char* s, Py_ssize_t n) except -1:
    _grow(o, n)
    memcpy(o.buf + o.n, s, n)
    o.n += n
    return 0


cdef bint _plain(object s) except -1:
    """An ASCII str with nothing JSON escapes (no quote, backslash, control)."""
    cdef Py_ssize_t n, i
    cdef const char* c
    if not PyUnicode_IS_ASCII(s):
        return False
    c = PyUnicode_AsUTF8AndSize(s, &n)
    for i in range(n):
        if c[i] < 0x20 or c[i] == 0x22 or c[i] == 0x5c or c[i] == 0x7f:
            return False
    return True


cdef int _put_str(_Out* o, object s) except -1:
    """0 and ``"s"`` written, or 1: not plain (the codec's business)."""
    cdef Py_ssize_t n
    cdef const char* c
    if not _plain(s):
        return 1
    c = PyUnicode_AsUTF8AndSize(s, &n)
    _grow(o, n + 2)
    o.buf[o.n] = 0x22
    memcpy(o.buf + o.n + 1, c, n)
    o.buf[o.n + n + 1] = 0x22
    o.n += n + 2
    return 0


cdef int _put_b64(_Out* o, object b) except -1:
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    cdef Py_ssize_t i = 0
    cdef unsigned int v
    cdef char* w
    _grow(o, 4 * ((n + 2) // 3) + 16)
    _put(o, b'{"$bytes":"', 11)
    w = o.buf + o.n
    while i + 2 < n:
        v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2]
        w[0] = _B64[(v >> 18) & 63]
        w[1] = _B64[(v >> 12) & 63]
        w[2] = _B64[(v >> 6) & 63]
        w[3] = _B64[v & 63]
        w += 4
        i += 3
    if n - i == 1:
        v = p[i] << 16
        w[0] = _B64[(v >> 18) & 63]
        w[1] = _B64[(v >> 12) & 63]
        w[2] = 0x3d
        w[3] = 0x3d
        w += 4
    elif n - i == 2:
        v = (p[i] << 16) | (p[i + 1] << 8)
        w[0] = _B64[(v >> 18) & 63]
        w[1] = _B64[(v >> 12) & 63]
        w[2] = _B64[(v >> 6) & 63]
        w[3] = 0x3d
        w += 4
    o.n = w - o.buf
    _put(o, b'"}', 2)
    return 0


cdef int _put_value(_Out* o, object v, int depth) except -1:
    """0 and ``v``'s JSON (the CLI codec's form) written, or 1: a value the
    fast encoder leaves to the codec."""
    cdef long long i
    cdef int overflow = 0
    cdef char num[32]
    cdef Py_ssize_t k, n
    cdef bint first
    if v is None:
        return _put(o, b"null", 4)
    if v is True:
        return _put(o, b"true", 4)
    if v is False:
        return _put(o, b"false", 5)
    if PyUnicode_CheckExact(v):
        return _put_str(o, v)
    if PyLong_CheckExact(v):
        i = PyLong_AsLongLongAndOverflow(v, &overflow)
        if overflow:
            return 1  # outside signed 64-bit: the codec's error
        return _put_int(o, i)
    if PyFloat_CheckExact(v):
        if not isfinite(PyFloat_AS_DOUBLE(v)):
            return 1
        r = repr(v)
        return _put_str_raw(o, r)
    if PyBytes_CheckExact(v):
        return _put_b64(o, v)
    if depth >= _LINE_MAX_DEPTH:
        return 1
    if PyList_CheckExact(v):
        _put(o, b"[", 1)
        n = len(<list>v)
        for k in range(n):
            if k:
                _put(o, b",", 1)
            if _put_value(o, (<list>v)[k], depth + 1):
                return 1
            if len(<list>v) != n:
                return 1  # changed under us
        return _put(o, b"]", 1)
    if type(v) is Variant:
        name = (<Variant>v).name
        if PyUnicode_GET_LENGTH(name) == 0:
            return 1
        _put(o, b'{"$variant":', 12)
        if _put_str(o, name):
            return 1
        _put(o, b',"args":[', 9)
        first = True
        for x in (<Variant>v).args:
            if not first:
                _put(o, b",", 1)
            first = False
            if _put_value(o, x, depth + 1):
                return 1
        return _put(o, b"]}", 2)
    if PyDict_CheckExact(v):  # a Record with plain, untagged keys
        _put(o, b"{", 1)
        first = True
        for key, x in (<dict>v).items():
            if not PyUnicode_CheckExact(key) or PyUnicode_GET_LENGTH(key) == 0 \
                    or (<str>key)[0] == "$":
                return 1
            if not first:
                _put(o, b",", 1)
            first = False
            if _put_str(o, key):
                return 1
            _put(o, b":", 1)
            if _put_value(o, x, depth + 1):
                return 1
        return _put(o, b"}", 1)
    return 1


cdef bint _starts_lower(const char* p, Py_ssize_t left, const char* word) noexcept:
    cdef Py_ssize_t k = 0
    cdef char c
    while word[k]:
        if k >= left:
            return False
        c = p[k]
        if 0x41 <= c <= 0x5a:
            c += 0x20
        if c != word[k]:
            return False
        k += 1
    return True


cdef bint _may_hold_secret(const char* p, Py_ssize_t n) noexcept:
    """The line names a secret-bearing header or key (any case): record.py's
    ``_may_hold_secret``, on the ASCII line."""
    cdef Py_ssize_t i
    cdef char c
    for i in range(n):
        c = p[i]
        if c == 0x41 or c == 0x61:  # a/A
            if _starts_lower(p + i, n - i, b"authorization") or _starts_lower(p + i, n - i, b"api-key") \
                    or _starts_lower(p + i, n - i, b"api_key"):
                return True
        elif (c == 0x43 or c == 0x63) and _starts_lower(p + i, n - i, b"cookie"):  # c/C
            return True
    return False


cdef int _put_int(_Out* o, long long i) except -1:
    """``i`` in decimal (snprintf costs some 80 ns a number)."""
    cdef char num[24]
    cdef int k = 24
    cdef unsigned long long u = <unsigned long long>(-(i + 1)) + 1 if i < 0 else <unsigned long long>i
    while True:
        k -= 1
        num[k] = <char>(0x30 + u % 10)
        u //= 10
        if u == 0:
            break
    if i < 0:
        k -= 1
        num[k] = 0x2d
    return _put(o, num + k, 24 - k)


cdef int _put_micros(_Out* o, long long t_us) except -1:
    """``t_us / 1e6`` (``t_us`` >= 0) as a JSON number: the integer part, a
    dot and the decimals without trailing zeros (at least one)."""
    cdef char frac[6]
    cdef long long f = t_us % 1000000
    cdef int k, n = 6
    _put_int(o, t_us // 1000000)
    for k in range(5, -1, -1):
        frac[k] = <char>(0x30 + f % 10)
        f //= 10
    while n > 1 and frac[n - 1] == 0x30:
        n -= 1
    _put(o, b".", 1)
    return _put(o, frac, n)


cdef int _put_str_raw(_Out* o, str s) except -1:
    cdef Py_ssize_t n
    cdef const char* c = PyUnicode_AsUTF8AndSize(s, &n)
    return _put(o, c, n)


cdef int _put_call(_Out* o, object step, object fork, object kind, object op, object args,
                   object value, long long micros, object us) except -1:
    """0 and the call's line appended to ``o`` (no newline), or 1 (``o`` left
    as it was): ``trace_call_line``'s None."""
    cdef Py_ssize_t start = o.n
    if (PyLong_CheckExact(step) and PyLong_CheckExact(fork) and PyLong_CheckExact(us)
            and micros >= 0 and PyList_CheckExact(args)
            and PyUnicode_CheckExact(kind) and PyUnicode_CheckExact(op)):
        _put(o, b'{"step":', 8)
        if not _put_value(o, step, 0):
            _put(o, b',"fork":', 8)
            if not _put_value(o, fork, 0):
                _put(o, b',"kind":', 8)
                if not _put_str(o, kind):
                    _put(o, b',"op":', 6)
                    if not _put_str(o, op):
                        _put(o, b',"args":', 8)
                        if not _put_value(o, args, 0):
                            _put(o, b',"value":', 9)
                            if not _put_value(o, value, 0):
                                _put(o, b',"t":', 5)
                                _put_micros(o, micros)
                                _put(o, b',"us":', 6)
                                if not _put_value(o, us, 0):
                                    _put(o, b"}", 1)
                                    if not _may_hold_secret(o.buf + start, o.n - start):
                                        return 0
    o.n = start
    return 1


def trace_call_line(step, fork, kind, op, args, value, t_us, us):
    """The trace line of a call that returned, ``{"step":..,"fork":..,
    "kind":..,"op":..,"args":[..],"value":..,"t":..,"us":..}`` as the CLI
    codec writes it (``t`` in seconds from ``t_us``, six decimals at most,
    no float formatting), for the common values (None, Bool, Int, finite Float,
    plain ASCII Str, Bytes, List, Variant and Record of those, 16 levels);
    ``None`` for anything else (the caller's codec path words it) and for a
    line that may hold a secret (``authorization``, ``cookie``, ``api-key``,
    ``api_key``, any case: the caller scrubs it)."""
    cdef _Out o
    cdef long long micros
    if not PyLong_CheckExact(t_us):
        raise TypeError(f"t_us must be an int, not {type(t_us).__name__}")
    micros = t_us  # OverflowError past signed 64-bit
    o.buf = NULL
    o.n = 0
    o.cap = 0
    try:
        _grow(&o, 256)
        if _put_call(&o, step, fork, kind, op, args, value, micros, us):
            return None
        return PyUnicode_FromStringAndSize(o.buf, o.n)
    finally:
        free(o.buf)


def trace_call_lines(list items, Py_ssize_t start, step, wall0_us, mono0, Py_ssize_t room):
    """The recorder's items from ``items[start]`` on, as trace lines (each
    ending in a newline), while each is a call that returned (``(0, fork,
    kind, op, args, 0, value, t0, t1)``, not ``env``) that
    ``trace_call_line`` writes, numbered from ``step``, ``t`` from the
    monotonic ``t0`` (``wall0_us + (t0 - mono0) // 1000``), and the text stays
    within ``room`` bytes. Returns ``(text, count)``; the caller writes the
    item it stopped at its own way."""
    cdef _Out o
    cdef Py_ssize_t i, n = len(items), done = 0, mark
    cdef long long step0 = step, wall = wall0_us, mono = mono0, t0, t1
    cdef tuple item
    o.buf = NULL
    o.n = 0
    o.cap = 0
    try:
        _grow(&o, 4096)
        for i in range(start, n):
            x = items[i]
            if type(x) is not tuple or len(<tuple>x) != 9:
                break
            item = <tuple>x
            if not (item[0] is _ZERO_OBJ or item[0] == 0) or not (item[5] is _ZERO_OBJ
                                                                  or item[5] == 0):
                break
            if type(item[2]) is not str or (<str>item[2]) == "env":
                break  # env.get's value may be a secret: the caller scrubs
            if not (PyLong_CheckExact(item[7]) and PyLong_CheckExact(item[8])):
                break
            t0 = item[7]
            t1 = item[8]
            if t0 < mono or t1 < t0:
                break
            mark = o.n
            if _put_call(&o, step0 + done, item[1], item[2], item[3], item[4], item[6],
                         wall + (t0 - mono) // 1000, (t1 - t0) // 1000):
                break
            _put(&o, b"\n", 1)
            if o.n > room:
                o.n = mark
                break
            done += 1
        return PyUnicode_FromStringAndSize(o.buf, o.n), done
    finally:
        free(o.buf)


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
