# cython: language_level=3
"""The compiled hot ops of ``lexfast/builtins/numeric.py``: the scalar
``math`` functions (``exp``, ``log``/``log2``/``log10``, ``sqrt``, ``abs``,
the trigonometry, ``floor``/``ceil``/``round``/``trunc``, ``pow``,
``atan2``, ``min``, ``max``) and the ``decimal`` arithmetic a program runs
in loops (``add``, ``sub``, ``mul``, ``compare``) with the reference's i64
checked/wrapping points. Same names, same semantics and same errors as the
Python definitions there (the tests run against both); numeric.py picks
these when the compiled kernel is in use. The matrices stay Python.

``math``: C's ``libm`` is what Python's ``math`` calls too; where Python
raises (a domain or range error) C returns the NaN or infinity that Rust's
``f64`` methods return, which is what numeric.py maps those errors to.

The fast path reads an exact ``list`` of exact ``float`` arguments (an exact
``dict`` record of exact i64 ``int`` fields for ``decimal``); anything else
(a missing argument, an Int where a Float is due, a subclass) goes through
the Python checks, which accept it or word the reference's error.
"""

from cpython.object cimport PyObject
from libc cimport math as cm
from libc.stdint cimport int64_t

from ..errors import EffectError
from ._args import expect_dec as _expect_dec
from ._args import expect_float as _expect_float

cdef extern from "Python.h":
    bint PyList_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyDict_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    double PyFloat_AS_DOUBLE(object o)
    PyObject* PyDict_GetItem(object d, object k)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1

cdef extern from *:
    """
    static int lexfast_mul_ovf(long long a, long long b, long long *r) {
        return __builtin_mul_overflow(a, b, r);
    }
    static int lexfast_add_ovf(long long a, long long b, long long *r) {
        return __builtin_add_overflow(a, b, r);
    }
    static int lexfast_sub_ovf(long long a, long long b, long long *r) {
        return __builtin_sub_overflow(a, b, r);
    }
    static long long lexfast_wrap_sub(long long a, long long b) {
        return (long long)((unsigned long long)a - (unsigned long long)b);
    }
    """
    bint lexfast_mul_ovf(long long a, long long b, long long *r)
    bint lexfast_add_ovf(long long a, long long b, long long *r)
    bint lexfast_sub_ovf(long long a, long long b, long long *r)
    long long lexfast_wrap_sub(long long a, long long b)


cdef inline double _f(object args, Py_ssize_t i) except? -1.0:
    cdef object v
    if PyList_CheckExact(args) and i < PyList_GET_SIZE(args):
        v = <object>PyList_GET_ITEM(args, i)
        if PyFloat_CheckExact(v):
            return PyFloat_AS_DOUBLE(v)
    return <double>_expect_float(args, i)


# -- math ----------------------------------------------------------------------

def math_exp(args):
    return cm.exp(_f(args, 0))


cdef inline double _logf(double x, int base):
    if x > 0.0:
        if base == 2:
            return cm.log2(x)
        if base == 10:
            return cm.log10(x)
        return cm.log(x)
    if x == 0.0:
        return -cm.INFINITY
    return cm.NAN  # negative or NaN


def math_log(args):
    return _logf(_f(args, 0), 0)


def math_log2(args):
    return _logf(_f(args, 0), 2)


def math_log10(args):
    return _logf(_f(args, 0), 10)


def math_sqrt(args):
    cdef double x = _f(args, 0)
    if x < 0.0:
        return cm.NAN
    return cm.sqrt(x)


def math_abs(args):
    return cm.fabs(_f(args, 0))


def math_sin(args):
    return cm.sin(_f(args, 0))


def math_cos(args):
    return cm.cos(_f(args, 0))


def math_tan(args):
    return cm.tan(_f(args, 0))


def math_asin(args):
    return cm.asin(_f(args, 0))


def math_acos(args):
    return cm.acos(_f(args, 0))


def math_atan(args):
    return cm.atan(_f(args, 0))


cdef inline double _zero_sign(double r, double x):
    return r if r != 0.0 else cm.copysign(0.0, x)


def math_floor(args):
    cdef double x = _f(args, 0)
    return _zero_sign(cm.floor(x), x) if cm.isfinite(x) else x


def math_ceil(args):
    cdef double x = _f(args, 0)
    return _zero_sign(cm.ceil(x), x) if cm.isfinite(x) else x


def math_trunc(args):
    cdef double x = _f(args, 0)
    return _zero_sign(cm.trunc(x), x) if cm.isfinite(x) else x


def math_round(args):
    cdef double x = _f(args, 0)
    cdef double t
    if not cm.isfinite(x):
        return x
    t = cm.trunc(x)
    if cm.fabs(x - t) >= 0.5:  # x - trunc(x) is exact
        t += cm.copysign(1.0, x)
    return _zero_sign(t, x)


def math_pow(args):
    cdef double x = _f(args, 0)
    cdef double y = _f(args, 1)
    return cm.pow(x, y)  # C99 Annex F: the values Rust's powf gives


def math_atan2(args):
    cdef double y = _f(args, 0)
    cdef double x = _f(args, 1)
    return cm.atan2(y, x)


def math_min(args):
    cdef double a = _f(args, 0)
    cdef double b = _f(args, 1)
    if a != a:
        return b
    if b != b:
        return a
    return b if b < a else a


def math_max(args):
    cdef double a = _f(args, 0)
    cdef double b = _f(args, 1)
    if a != a:
        return b
    if b != b:
        return a
    return b if b > a else a


# -- decimal -------------------------------------------------------------------

cdef long long _POW10[19]
_POW10[0] = 1
for _k in range(1, 19):
    _POW10[_k] = _POW10[_k - 1] * 10


cdef inline bint _i64(PyObject *p, long long *out):
    cdef int overflow = 0
    if p == NULL or not PyLong_CheckExact(<object>p):
        return False
    out[0] = PyLong_AsLongLongAndOverflow(<object>p, &overflow)
    return not overflow


cdef int _dec(object args, Py_ssize_t i, long long *c, long long *e) except -1:
    cdef object v
    if PyList_CheckExact(args) and i < PyList_GET_SIZE(args):
        v = <object>PyList_GET_ITEM(args, i)
        if PyDict_CheckExact(v) and _i64(PyDict_GetItem(v, "coefficient"), c) \
                and _i64(PyDict_GetItem(v, "exponent"), e):
            return 0
    pc, pe = _expect_dec(args, i)
    c[0] = pc
    e[0] = pe
    return 0


cdef long long _pow10(long long n) except? -1:
    if n < 0:
        raise EffectError(f"decimal.pow10: negative exponent {n}")
    if n > 18:
        raise EffectError(f"decimal.pow10: exponent {n} exceeds max (18)")
    return _POW10[n]


cdef int _align(long long *ca, long long *ea, long long *cb, long long *eb) except -1:
    """Both coefficients at the smaller exponent (left in ``ea``)."""
    cdef long long shift, r
    if ea[0] == eb[0]:
        return 0
    if ea[0] > eb[0]:
        shift = lexfast_wrap_sub(ea[0], eb[0])
        if lexfast_mul_ovf(ca[0], _pow10(shift), &r):
            raise EffectError(f"decimal: overflow aligning (shift {shift})")
        ca[0] = r
        ea[0] = eb[0]
        return 0
    shift = lexfast_wrap_sub(eb[0], ea[0])
    if lexfast_mul_ovf(cb[0], _pow10(shift), &r):
        raise EffectError(f"decimal: overflow aligning (shift {shift})")
    cb[0] = r
    return 0


def decimal_add(args):
    cdef long long ca, ea, cb, eb, r
    _dec(args, 0, &ca, &ea)
    _dec(args, 1, &cb, &eb)
    _align(&ca, &ea, &cb, &eb)
    if lexfast_add_ovf(ca, cb, &r):
        raise EffectError("decimal.add: overflow")
    return {"coefficient": r, "exponent": ea}


def decimal_sub(args):
    cdef long long ca, ea, cb, eb, r
    _dec(args, 0, &ca, &ea)
    _dec(args, 1, &cb, &eb)
    _align(&ca, &ea, &cb, &eb)
    if lexfast_sub_ovf(ca, cb, &r):
        raise EffectError("decimal.sub: overflow")
    return {"coefficient": r, "exponent": ea}


def decimal_mul(args):
    cdef long long ca, ea, cb, eb, c, e
    _dec(args, 0, &ca, &ea)
    _dec(args, 1, &cb, &eb)
    if lexfast_mul_ovf(ca, cb, &c):
        raise EffectError("decimal.mul: overflow")
    if lexfast_add_ovf(ea, eb, &e):
        raise EffectError("decimal.mul: exponent overflow")
    return {"coefficient": c, "exponent": e}


def decimal_compare(args):
    cdef long long ca, ea, cb, eb
    _dec(args, 0, &ca, &ea)
    _dec(args, 1, &cb, &eb)
    _align(&ca, &ea, &cb, &eb)
    return -1 if ca < cb else (1 if ca > cb else 0)
