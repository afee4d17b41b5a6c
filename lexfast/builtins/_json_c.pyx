# cython: language_level=3
"""The compiled fast paths of ``json.parse`` and ``json.stringify``
(``lexfast/builtins/formats.py``).

``to_json(v, fallback)`` is formats.py's ``_to_json`` in one C walk, which
also counts the characters of the strings (for the stringify cap) and notes a
float Python would write with an exponent (Rust writes those differently):
``(json_data, chars, rare_float)``. A value of any other type than the exact
builtins, ``Variant`` and ``bytes`` goes to ``fallback`` (``_to_json``).

``loads(s)`` answers ``(True, value)`` for a text it can vouch for, else
``None`` and formats.py's Python path answers (every error, with serde_json's
text, and every rare shape). In three steps:

1. One pass over the str's buffer (1, 2 or 4 bytes a code point) checks what
   the C ``json`` scanner does not: nesting past serde_json's 128, a number
   the scanner maps differently from serde_json (``-0``, an integer of 19+
   digits, an exponent of 3+ digits), ``NaN``/``Infinity`` (any character
   outside strings that no JSON token has), a surrogate (escaped or raw).
   Any of those: ``None``.
2. The standard library's C scanner (``json.loads`` without hooks) builds
   the value; any error: ``None``.
3. One walk over the result gives each object serde_json's order (a
   ``BTreeMap``: sorted keys, rebuilt only when not sorted already) and
   decodes the ``$variant``/``$bytes`` markers, bottom-up as the object hook
   does.

Same values as formats.py's Python path (the tests compare both over
generated texts); the twin (``LEXFAST_NO_EXTENSIONS``) runs that path alone.
"""

import json as _json
import re as _re

from cpython.object cimport PyObject

from ..errors import EffectError
from ..kernel import Variant

cdef extern from "Python.h":
    ctypedef unsigned char Py_UCS1
    ctypedef unsigned short Py_UCS2
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyDict_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    Py_ssize_t PyDict_Size(object o)
    int PyDict_Next(object p, Py_ssize_t *pos, PyObject **key, PyObject **value)
    int PyDict_SetItem(object p, object key, object val) except -1
    int PyUnicode_Compare(object a, object b) except? -1
    Py_UCS4 PyUnicode_READ_CHAR(object o, Py_ssize_t i)
    object PyDict_New()
    bint PyFloat_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)
    bint PyTuple_CheckExact(object o)
    bint PyBytes_CheckExact(object o)

cdef extern from "math.h":
    bint isfinite(double x)
    double fabs(double x)

cdef extern from "string.h":
    int memcmp(const void *a, const void *b, size_t n)

#: serde_json's nesting limit (``remaining_depth`` starts at 128)
cdef Py_ssize_t MAX_DEPTH = 128

ctypedef fused char_t:
    Py_UCS1
    Py_UCS2
    Py_UCS4

# what may stand outside a string in JSON: structure, whitespace, the
# characters of numbers and of true/false/null
cdef unsigned char _TOKEN[128]
for _c in list(b' \t\n\r{}[],:"-+.0123456789eEtruefalsn'):
    _TOKEN[_c] = 1

cdef object _scan_once = _json.JSONDecoder().scan_once  # the C scanner
_HEX = _re.compile(r"(?:[0-9a-fA-F]{2})*")


cdef inline bint _is_digit(Py_UCS4 c):
    return 0x30 <= c <= 0x39


cdef inline bint _is_ws(Py_UCS4 c):
    return c == 0x20 or c == 0x0A or c == 0x0D or c == 0x09


cdef inline bint _surrogate_esc(Py_UCS4 a, Py_UCS4 b):
    """``\\u`` followed by ``D8``..``DF``: any surrogate escape."""
    return (a == 0x64 or a == 0x44) and (
        (0x38 <= b <= 0x39) or (0x61 <= b <= 0x66) or (0x41 <= b <= 0x46))


cdef Py_ssize_t _prescan(const char_t *p, Py_ssize_t n):
    """0 when the text is one the C scanner maps as serde_json does (or
    rejects), else 1 (the Python path must answer)."""
    cdef Py_ssize_t i = 0, depth = 0, run, j
    cdef Py_UCS4 c, d
    while i < n:
        c = p[i]
        if c >= 128 or not _TOKEN[c]:
            return 1
        if c == 0x22:  # a string
            i += 1
            while i < n:
                c = p[i]
                if c == 0x22:
                    break
                if c == 0x5C:  # an escape
                    if i + 3 < n and p[i + 1] == 0x75 and _surrogate_esc(p[i + 2], p[i + 3]):
                        return 1
                    i += 2
                    continue
                if char_t is not Py_UCS1:
                    if 0xD800 <= c <= 0xDFFF:
                        return 1
                i += 1
            i += 1
            continue
        if c == 0x5B or c == 0x7B:
            depth += 1
            if depth > MAX_DEPTH:
                return 1
        elif c == 0x5D or c == 0x7D:
            depth -= 1
        elif c == 0x2D:  # -0 not followed by a fraction or exponent: the Float -0.0
            if i + 1 < n and p[i + 1] == 0x30:
                if i + 2 >= n:
                    return 1
                d = p[i + 2]
                if not (_is_digit(d) or d == 0x2E or d == 0x65 or d == 0x45):
                    return 1
        elif _is_digit(c):
            j = i
            while j < n and _is_digit(p[j]):
                j += 1
            if j - i >= 19 and not (i > 0 and p[i - 1] == 0x2E):
                return 1  # an integer part past i64's digits: maybe a Float
            i = j
            continue
        elif c == 0x65 or c == 0x45:  # an exponent: 3+ digits may overflow
            j = i + 1
            if j < n and (p[j] == 0x2B or p[j] == 0x2D):
                j += 1
            run = j
            while j < n and _is_digit(p[j]):
                j += 1
            if j - run >= 3:
                return 1
            i = j
            continue
        i += 1
    return 0


cdef bint _needs_python(str s):
    cdef int kind = PyUnicode_KIND(s)
    cdef void *data = PyUnicode_DATA(s)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    if kind == 1:
        return _prescan(<const Py_UCS1*>data, n) != 0
    if kind == 2:
        return _prescan(<const Py_UCS2*>data, n) != 0
    return _prescan(<const Py_UCS4*>data, n) != 0


cdef object _marked(dict d):
    """``Value::from_json``'s markers: ``$variant`` + ``args``, a lone ``$bytes``."""
    if "$variant" in d:
        name = d["$variant"]
        args = d.get("args")
        if type(name) is str and type(args) is list:
            return Variant(name, tuple(args))
    if len(d) == 1 and "$bytes" in d:
        h = d["$bytes"]
        if type(h) is str and _HEX.fullmatch(h):
            return bytes.fromhex(h)
    return d


cdef inline int _kcmp(PyObject *a, PyObject *b) except? -2:
    """The order of two keys (code point order, which is UTF-8 byte order)."""
    cdef Py_ssize_t la, lb
    cdef int r
    if PyUnicode_KIND(<object>a) == 1 and PyUnicode_KIND(<object>b) == 1:
        la = PyUnicode_GET_LENGTH(<object>a)
        lb = PyUnicode_GET_LENGTH(<object>b)
        r = memcmp(PyUnicode_DATA(<object>a), PyUnicode_DATA(<object>b), la if la < lb else lb)
        if r:
            return r
        return (la > lb) - (la < lb)
    return PyUnicode_Compare(<object>a, <object>b)


#: objects with up to this many keys are sorted in place here (insertion
#: sort over borrowed pointers); larger ones by ``sorted``
cdef enum:
    SMALL = 32


cdef object _convert(object v):
    """``v`` (fresh from the scanner) as a Lex value: lists in place, each
    object in sorted key order, markers decoded."""
    cdef Py_ssize_t i, j, n, pos = 0
    cdef PyObject *k
    cdef PyObject *x
    cdef PyObject *keys[SMALL]
    cdef PyObject *vals[SMALL]
    cdef PyObject *tk
    cdef PyObject *tv
    cdef object nv, first
    cdef bint sorted_ = True
    if PyList_CheckExact(v):
        n = PyList_GET_SIZE(v)
        for i in range(n):
            x = PyList_GET_ITEM(v, i)
            if PyList_CheckExact(<object>x) or PyDict_CheckExact(<object>x):
                nv = _convert(<object>x)
                if nv is not <object>x:
                    v[i] = nv
        return v
    if not PyDict_CheckExact(v):
        return v
    n = 0
    # the values first (bottom-up, as the object hook runs); replacing a
    # value keeps the set of keys, so iterating on is safe
    while PyDict_Next(v, &pos, &k, &x):
        if PyList_CheckExact(<object>x) or PyDict_CheckExact(<object>x):
            nv = _convert(<object>x)
            if nv is not <object>x:
                PyDict_SetItem(v, <object>k, nv)
                x = <PyObject*>nv  # the dict holds it now
        if n and sorted_ and _kcmp(keys[n - 1 if n <= SMALL else SMALL - 1], k) > 0:
            sorted_ = False
        if n < SMALL:
            keys[n] = k
            vals[n] = x
        elif sorted_:
            keys[SMALL - 1] = k  # only the previous key is compared past SMALL
        n += 1
    if n == 0:
        return v
    if not sorted_:
        if n <= SMALL:
            for i in range(1, n):
                tk = keys[i]
                tv = vals[i]
                j = i - 1
                while j >= 0 and _kcmp(keys[j], tk) > 0:
                    keys[j + 1] = keys[j]
                    vals[j + 1] = vals[j]
                    j -= 1
                keys[j + 1] = tk
                vals[j + 1] = tv
            nd = PyDict_New()
            for i in range(n):
                PyDict_SetItem(nd, <object>keys[i], <object>vals[i])
            v = nd
            first = <object>keys[0]
        else:
            ks = sorted(v)
            first = ks[0]
            v = {kk: v[kk] for kk in ks}
    else:
        first = <object>keys[0]
    if PyUnicode_GET_LENGTH(first) == 0 or PyUnicode_READ_CHAR(first, 0) <= 0x24:
        return _marked(v)  # a marker key sorts first ("$" < "0" < "A" < "a")
    return v


def loads(s):
    """``(True, value)`` for ``s`` as serde_json then ``Value::from_json``
    read it, or ``None`` when formats.py's Python path must answer."""
    cdef Py_ssize_t n, start = 0, end
    if not PyUnicode_CheckExact(s) or _needs_python(s):
        return None
    n = PyUnicode_GET_LENGTH(s)
    while start < n and _is_ws(PyUnicode_READ_CHAR(s, start)):
        start += 1
    try:
        v, end = _scan_once(s, start)
    except (StopIteration, ValueError, RecursionError):
        return None
    while end < n and _is_ws(PyUnicode_READ_CHAR(s, end)):
        end += 1
    if end != n:
        return None
    return (True, _convert(v))


# -- json.stringify: Value::to_json ------------------------------------------------

#: formats.py's ``_to_json`` depth cap
cdef Py_ssize_t TO_JSON_MAX_DEPTH = 512


cdef class _Walk:
    cdef Py_ssize_t chars
    cdef bint rare_float
    cdef object fallback


cdef object _measure(_Walk w, object j):
    """Count the strings of the JSON data ``j`` (from ``fallback``) and note
    its floats, as ``_tj`` does for what it builds itself."""
    cdef double x
    if PyUnicode_CheckExact(j):
        w.chars += PyUnicode_GET_LENGTH(j)
    elif PyFloat_CheckExact(j):
        x = PyFloat_AS_DOUBLE(j)
        if x != 0.0 and (fabs(x) >= 1e16 or fabs(x) < 1e-4):
            w.rare_float = True
    elif PyList_CheckExact(j):
        for x_ in <list>j:
            _measure(w, x_)
    elif PyDict_CheckExact(j):
        for k, x_ in (<dict>j).items():
            w.chars += len(k)
            _measure(w, x_)
    return None


cdef object _other(_Walk w, object v, Py_ssize_t depth):
    j = w.fallback(v, depth)
    _measure(w, j)
    return j


cdef object _tj(_Walk w, object v, Py_ssize_t depth):
    cdef double x
    cdef object out, key, item
    if PyUnicode_CheckExact(v):
        w.chars += PyUnicode_GET_LENGTH(v)
        return v
    if v is None or v is True or v is False or type(v) is int:
        return v
    if PyFloat_CheckExact(v):
        x = PyFloat_AS_DOUBLE(v)
        if not isfinite(x):
            return None
        if x != 0.0 and (fabs(x) >= 1e16 or fabs(x) < 1e-4):
            w.rare_float = True  # Python writes an exponent: ``1e+16``, ``1e-05``
        return v
    if depth > TO_JSON_MAX_DEPTH:
        raise EffectError("json: value nested too deeply")
    # the safe iterations (a fallback call may run other threads' code, which
    # may mutate these containers): a list re-checks its length each step, a
    # dict raises on a change of size, as the Python walk does
    if PyList_CheckExact(v) or PyTuple_CheckExact(v):
        out = []
        for item in v:
            out.append(_tj(w, item, depth + 1))
        return out
    if PyDict_CheckExact(v):
        for key in <dict>v:
            if not PyUnicode_CheckExact(key):
                return _other(w, v, depth)  # str(k) of another key: the Python walk
        out = {}
        for key, item in (<dict>v).items():
            w.chars += PyUnicode_GET_LENGTH(key)
            out[key] = _tj(w, item, depth + 1)
        return out
    if type(v) is Variant:
        name = v.name
        if not PyUnicode_CheckExact(name):
            return _other(w, v, depth)
        w.chars += 12 + PyUnicode_GET_LENGTH(name)  # "$variant", "args", the name
        return {"$variant": name, "args": _tj(w, list(v.args), depth)}
    if PyBytes_CheckExact(v):
        h = (<bytes>v).hex()
        w.chars += 6 + PyUnicode_GET_LENGTH(h)  # "$bytes", the hex
        return {"$bytes": h}
    return _other(w, v, depth)


def to_json(v, fallback):
    """formats.py's ``_to_json(v)`` as ``(json_data, chars, rare_float)``."""
    cdef _Walk w = _Walk()
    w.fallback = fallback
    j = _tj(w, v, 0)
    return j, w.chars, w.rare_float
