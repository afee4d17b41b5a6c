# C-level declarations of the compiled kernel (``_c.pyx``), for other Cython modules.
cimport cython
from libc.stdint cimport int64_t, uint64_t


ctypedef struct EffectStat:
    int64_t calls
    int64_t denials
    int64_t errors
    int64_t total_ns
    int64_t max_ns


cdef class Variant:
    cdef readonly str name
    cdef readonly tuple args
    cdef Py_hash_t _hash


@cython.final
cdef class Row:
    cdef readonly str kind
    cdef readonly str op
    cdef readonly tuple gate
    cdef readonly object fn
    cdef readonly uint64_t mask
    cdef readonly Py_ssize_t index
    cdef tuple _gate_bits
    cdef tuple _denials


cdef class Stats:
    cdef EffectStat* rows
    cdef Py_ssize_t n
    cdef bint timing
    cdef Py_ssize_t _shape[1]
    cdef Py_ssize_t _strides[1]
    cdef int _exports


@cython.final
cdef class _Node:
    cdef _Node prev
    cdef _Node next
    cdef object key
    cdef object value


@cython.final
cdef class LRURegistry:
    cdef dict _map
    cdef _Node _head
    cdef Py_ssize_t _cap
    cdef object _on_evict
    cdef void _unlink(self, _Node node) noexcept
    cdef void _link_last(self, _Node node) noexcept


@cython.final
cdef class BudgetPool:
    cdef uint64_t _remaining
    cdef uint64_t _ceiling
    cdef bint _limited
    cdef object _lease  # None: a local pool (lexfast.budget_pool: a distributed one)
    cdef int _take_slow(self, object cost) except -1


cdef class HandlerCore:
    # what ``_setup`` was given, readable by name (``DefaultHandler``, ``fork``)
    cdef readonly object _policy
    cdef readonly object _effects
    cdef readonly BudgetPool _pool
    cdef readonly dict _pure
    cdef readonly Stats _stats
    cdef EffectStat* _stat_rows
    cdef Py_ssize_t _stat_n
    cdef uint64_t _allowed
    cdef dict _table
    cdef dict _wildcards
    cdef list _cache  # the identity cache: (kind, op, pure fn or Row) x _CACHE_SLOTS, flat
    cdef object __weakref__
