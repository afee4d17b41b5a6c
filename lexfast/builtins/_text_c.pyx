# cython: language_level=3
"""The compiled hot ops of ``lexfast/builtins/text.py``: ``str.len``,
``is_empty``, ``concat``, ``split``, ``join``, ``contains``, ``starts_with``,
``ends_with``, ``slice``, ``char_at``, ``int.to_str``, ``to_float``, ``abs``,
``min``, ``max``, and ``float.to_int``, ``to_str``. Same names, same semantics and same errors as the Python
definitions there (the tests run against both); text.py picks these when the
compiled kernel is in use.

The fast path reads an exact ``list`` of exact ``str``/``int`` arguments with
borrowed references; anything else (a missing argument, a wrong type, a
subclass) goes through ``_args``'s checks, which word the reference's errors.
"""

from cpython.object cimport PyObject
from libc.math cimport signbit
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t

from ..errors import EffectError
from ..values import debug_repr
from ._args import expect_float as _expect_float
from ._args import expect_int as _expect_int
from ._args import expect_list as _expect_list
from ._args import expect_str as _expect_str

cdef extern from "Python.h":
    bint PyUnicode_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    bint PyUnicode_IS_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    object PyUnicode_FromOrdinal(int c)
    object PyObject_Str(object o)
    bint PyFloat_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)
    object PyLong_FromLongLong(long long v)
    object PyUnicode_FromFormat(const char* fmt, ...)



cdef inline object _item(object args, Py_ssize_t i):
    """The borrowed i-th item of an exact list as an object, or None."""
    if PyList_CheckExact(args) and i < PyList_GET_SIZE(args):
        return <object>PyList_GET_ITEM(args, i)
    return None


cdef inline str _s(object args, Py_ssize_t i):
    v = _item(args, i)
    if PyUnicode_CheckExact(v):
        return <str>v
    return _expect_str(args, i)


cdef inline object _iobj(object args, Py_ssize_t i):
    """The i-th argument as an exact int within i64 (the object itself when it
    is one already)."""
    cdef int overflow = 0
    v = _item(args, i)
    if PyLong_CheckExact(v):
        PyLong_AsLongLongAndOverflow(v, &overflow)
        if not overflow:
            return v
    return _expect_int(args, i)


cdef inline int64_t _i(object args, Py_ssize_t i) except? -1:
    return <int64_t>_iobj(args, i)


# -- str -----------------------------------------------------------------------

def str_is_empty(args):
    return PyUnicode_GET_LENGTH(_s(args, 0)) == 0


def str_len(args):
    cdef str s = _s(args, 0)
    cdef Py_ssize_t n = 0
    if PyUnicode_IS_ASCII(s):
        return PyUnicode_GET_LENGTH(s)
    try:
        PyUnicode_AsUTF8AndSize(s, &n)  # cached on the str: a second len is O(1)
    except UnicodeEncodeError:  # a lone surrogate: its generalised UTF-8 form
        return len(s.encode("utf-8", "surrogatepass"))
    return n


def str_char_at(args):
    cdef str s = _s(args, 0)
    cdef int64_t i = _i(args, 1)
    cdef Py_ssize_t n = 0
    cdef const char *buf
    cdef unsigned char b
    if i < 0:
        return ""
    try:
        buf = PyUnicode_AsUTF8AndSize(s, &n)
    except UnicodeEncodeError:
        data = s.encode("utf-8", "surrogatepass")
        buf = data
        n = len(data)
    if i >= n:
        return ""
    b = <unsigned char>buf[i]
    if b < 128:
        return PyUnicode_FromOrdinal(b)
    return ""


def str_concat(args):
    cdef str a = _s(args, 0)
    cdef str b = _s(args, 1)
    return a + b


def str_split(args):
    cdef str s = _s(args, 0)
    cdef str sep = _s(args, 1)
    if PyUnicode_GET_LENGTH(sep) == 0:
        return list(s)
    return s.split(sep)


def str_join(args):
    parts = _expect_list(args, 0)  # a list subclass too
    cdef str sep = _s(args, 1)
    for p in parts:
        if not PyUnicode_CheckExact(p) and not isinstance(p, str):
            raise EffectError(f"str.join element must be Str, got {debug_repr(p)}")
    return sep.join(parts)


def str_starts_with(args):
    cdef str s = _s(args, 0)
    cdef str prefix = _s(args, 1)
    return s.startswith(prefix)


def str_ends_with(args):
    cdef str s = _s(args, 0)
    cdef str suffix = _s(args, 1)
    return s.endswith(suffix)


def str_contains(args):
    cdef str s = _s(args, 0)
    cdef str needle = _s(args, 1)
    return needle in s


def str_slice(args):
    cdef str s = _s(args, 0)
    cdef int64_t lo = _i(args, 1)
    cdef int64_t hi = _i(args, 2)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    if lo < 0:
        lo = 0
    if hi < 0:
        hi = 0
    if lo > hi:
        raise EffectError(f"str.slice: reversed range [{lo}..{hi}]")
    if hi > n:
        hi = n
    if lo > n:
        lo = n
    return s[lo:hi]


# -- int -----------------------------------------------------------------------

def int_to_str(args):
    return PyObject_Str(_iobj(args, 0))


def int_abs(args):
    v = _iobj(args, 0)
    cdef int64_t n = <int64_t>v
    if n >= 0 or n == INT64_MIN:  # i64::abs wraps in a release build
        return v
    return -n


def int_min(args):
    a = _iobj(args, 0)
    b = _iobj(args, 1)
    return a if <int64_t>a <= <int64_t>b else b


def int_max(args):
    a = _iobj(args, 0)
    b = _iobj(args, 1)
    return b if <int64_t>b >= <int64_t>a else a


def int_to_float(args):
    return <double>_i(args, 0)


# -- float ---------------------------------------------------------------------

cdef inline double _f(object args, Py_ssize_t i) except? -1.0:
    v = _item(args, i)
    if PyFloat_CheckExact(v):
        return PyFloat_AS_DOUBLE(v)
    return _expect_float(args, i)


def float_to_int(args):
    cdef double f = _f(args, 0)
    if f != f:
        return 0
    if f >= 9.223372036854775807e18:  # Rust's `as i64` saturates
        return INT64_MAX
    if f <= -9.223372036854775808e18:
        return INT64_MIN
    return PyLong_FromLongLong(<long long>f)


cdef object _f64_display = None


def bind(f64_display):
    """Given ``text.f64_display`` by text.py when it picks this module (an
    import back would be a hidden cycle)."""
    global _f64_display
    _f64_display = f64_display


def float_to_str(args):
    """Rust's ``{}`` for an ``f64``. Integral values below 2**53 are written
    here (their shortest digits are the integer's); the rest go to
    ``text.f64_display`` (given by ``bind``), which settles Rust's tie rule."""
    cdef double f = _f(args, 0)
    if f == <double>(<long long>f) and -9007199254740992.0 <= f <= 9007199254740992.0:
        if f == 0.0 and signbit(f):
            return "-0"
        return PyUnicode_FromFormat("%lld", <long long>f)
    return _f64_display(f)
