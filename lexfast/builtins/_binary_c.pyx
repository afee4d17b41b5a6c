# cython: language_level=3
"""The compiled hot ops of ``lexfast/builtins/binary.py``: ``bytes.len``,
``is_empty``, ``eq``, ``concat``, ``slice``, ``from_str``, ``to_str``, the
encoders ``u8``/``u16_le``/``u32_le``/``u64_le`` and the readers
``u8_at``/``u16_le_at``/``u32_le_at``/``u64_le_at``. Same names, same
semantics and same errors as the Python definitions there (the tests run
against both); binary.py picks these when the compiled kernel is in use.

The fast path reads an exact ``list`` of exact ``bytes``/``str``/``int``
arguments with borrowed references; anything else (a missing argument, a
``bytearray``/``memoryview``, a subclass, a Bool, an integer outside i64)
goes through ``_args``'s checks, which accept or word the reference's error.
"""

from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t, uint16_t, uint32_t

from ..errors import EffectError
from ..kernel import err, ok
from ._args import expect_bytes as _expect_bytes
from ._args import expect_int as _expect_int
from ._args import expect_str as _expect_str

cdef extern from "Python.h":
    bint PyList_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyBytes_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    char* PyBytes_AS_STRING(object o)
    object PyBytes_FromStringAndSize(const char *v, Py_ssize_t n)
    bytes PyUnicode_AsUTF8String(object o)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    object PyLong_FromUnsignedLong(unsigned long v)


cdef inline object _item(object args, Py_ssize_t i):
    """The borrowed i-th item of an exact list as an object, or None."""
    if PyList_CheckExact(args) and i < PyList_GET_SIZE(args):
        return <object>PyList_GET_ITEM(args, i)
    return None


cdef inline bytes _b(object args, Py_ssize_t i):
    v = _item(args, i)
    if PyBytes_CheckExact(v):
        return <bytes>v
    return _expect_bytes(args, i)


cdef inline int64_t _i(object args, Py_ssize_t i) except? -1:
    """The i-th argument as an i64 (an exact int within range, else _args)."""
    cdef int overflow = 0
    cdef long long n
    v = _item(args, i)
    if PyLong_CheckExact(v):
        n = PyLong_AsLongLongAndOverflow(v, &overflow)
        if not overflow:
            return n
    return <int64_t>_expect_int(args, i)


cdef inline object _usize(int64_t n):
    """``n as usize``, as the error messages print it."""
    return <uint64_t>n


def bytes_len(args):
    return PyBytes_GET_SIZE(_b(args, 0))


def bytes_is_empty(args):
    return PyBytes_GET_SIZE(_b(args, 0)) == 0


def bytes_eq(args):
    cdef bytes a = _b(args, 0)
    cdef bytes b = _b(args, 1)
    return a == b


def bytes_concat(args):
    cdef bytes a = _b(args, 0)
    cdef bytes b = _b(args, 1)
    return a + b


def bytes_from_str(args):
    v = _item(args, 0)
    if PyUnicode_CheckExact(v):
        try:
            return PyUnicode_AsUTF8String(v)
        except UnicodeEncodeError:
            pass
    # a Python str may hold a lone surrogate, which no Lex Str does; it is
    # written as its three bytes, not refused (as binary.py does)
    return _expect_str(args, 0).encode("utf-8", "surrogatepass")


def bytes_to_str(args):
    cdef bytes b = _b(args, 0)
    try:
        return ok(b.decode("utf-8"))
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data":
            return err(f"incomplete utf-8 byte sequence from index {e.start}")
        return err(f"invalid utf-8 sequence of {e.end - e.start} bytes from index {e.start}")


def bytes_slice(args):
    cdef bytes b = _b(args, 0)
    cdef int64_t lo = _i(args, 1)
    cdef int64_t hi = _i(args, 2)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    # as usize: a negative offset is huge, so out of range
    if <uint64_t>lo > <uint64_t>hi or <uint64_t>hi > <uint64_t>n:
        raise EffectError(f"bytes.slice: out of range [{_usize(lo)}..{_usize(hi)}] of {n}")
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(b) + lo, hi - lo)


cdef inline bytes _le(uint64_t v, int width):
    cdef unsigned char buf[8]
    cdef int k
    for k in range(width):
        buf[k] = <unsigned char>(v >> (8 * k))
    return PyBytes_FromStringAndSize(<char*>buf, width)


def bytes_u8(args):
    return _le(<uint64_t>_i(args, 0), 1)


def bytes_u16_le(args):
    return _le(<uint64_t>_i(args, 0), 2)


def bytes_u32_le(args):
    return _le(<uint64_t>_i(args, 0), 4)


def bytes_u64_le(args):
    return _le(<uint64_t>_i(args, 0), 8)


cdef inline uint64_t _read(const unsigned char *p, int width):
    cdef uint64_t v = 0
    cdef int k
    for k in range(width):
        v |= (<uint64_t>p[k]) << (8 * k)
    return v


cdef object _at(object args, int width, str name):
    cdef bytes b = _b(args, 0)
    cdef int64_t off = _i(args, 1)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    cdef const unsigned char *p
    if off < 0 or off > n - width:
        return err(f"bytes.{name}: offset {_usize(off)} out of range of {n} bytes")
    p = <const unsigned char*>PyBytes_AS_STRING(b) + off
    if width == 8:
        return ok(<int64_t>_read(p, 8))  # the u64's bits as an i64
    return ok(PyLong_FromUnsignedLong(<unsigned long>_read(p, width)))


def bytes_u8_at(args):
    return _at(args, 1, "u8_at")


def bytes_u16_le_at(args):
    return _at(args, 2, "u16_le_at")


def bytes_u32_le_at(args):
    return _at(args, 4, "u32_le_at")


def bytes_u64_le_at(args):
    return _at(args, 8, "u64_le_at")
