# cython: language_level=3
"""The compiled response-header parser of ``http.*`` (``lexfast/effects/net/
http.py``'s ``_parse_headers`` is the twin; the tests run against both).

The common case -- header lines of printable ASCII, CR only before LF, no
obsolete line folding -- is parsed here in one pass over the joined bytes;
anything else (a non-ASCII or control byte, a lone CR, a folded line, a
line that is not ``bytes``) goes to the Python parser, which handles every
case. Same result either way: the final response's headers, names stripped
and lower-cased, values stripped of blanks, the last value of a repeated
name winning.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject

from ...values import Map

cdef extern from "Python.h":
    bint PyList_CheckExact(object o)
    bint PyBytes_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    object PyUnicode_DecodeASCII(const char *s, Py_ssize_t size, const char *errors)
    int PyDict_SetItem(object d, object k, object v) except -1

# http.py's Python parser (set by ``bind``)
cdef object _py_parse = None


def bind(py_parse):
    """Give the module http.py's Python ``_parse_headers``."""
    global _py_parse
    _py_parse = py_parse


cdef inline bint _is_status(object line):
    cdef const char* p
    if PyBytes_GET_SIZE(line) < 5:
        return False
    p = PyBytes_AS_STRING(line)
    return p[0] == b'H' and p[1] == b'T' and p[2] == b'T' and p[3] == b'P' and p[4] == b'/'


def parse_headers(lines):
    """The response's headers as a ``Map`` (see the module docstring)."""
    cdef Py_ssize_t n, i, start = 0, size, a, b, colon, na, nb, va, vb
    cdef const unsigned char* p
    cdef unsigned char c
    if not PyList_CheckExact(lines):
        return _py_parse(lines)
    n = PyList_GET_SIZE(lines)
    for i in range(n):
        if not PyBytes_CheckExact(<object>PyList_GET_ITEM(lines, i)):
            return _py_parse(lines)
    for i in range(n - 1, -1, -1):
        if _is_status(<object>PyList_GET_ITEM(lines, i)):
            start = i + 1
            break
    data = b"".join(lines[start:])
    size = PyBytes_GET_SIZE(data)
    p = <const unsigned char*>PyBytes_AS_STRING(data)
    for i in range(size):
        c = p[i]
        if c == b'\n':
            if i + 1 < size and p[i + 1] == b' ':
                return _py_parse(lines)  # obsolete line folding
        elif c == b'\r':
            if i + 1 >= size or p[i + 1] != b'\n':
                return _py_parse(lines)  # a CR inside a line
        elif c < 0x20 or c > 0x7e:
            return _py_parse(lines)  # a tab, a control or a non-ASCII byte
    out = Map()
    a = 0
    while a <= size:
        b = a
        while b < size and p[b] != b'\n':
            b += 1
        # the line is p[a:b]; a CR before its LF goes (value.strip would drop it)
        nb = b
        if nb > a and p[nb - 1] == b'\r':
            nb -= 1
        colon = a
        while colon < nb and p[colon] != b':':
            colon += 1
        if colon < nb:
            na, va, vb = a, colon + 1, nb
            while na < colon and p[na] == b' ':
                na += 1
            i = colon
            while i > na and p[i - 1] == b' ':
                i -= 1
            while va < vb and p[va] == b' ':
                va += 1
            while vb > va and p[vb - 1] == b' ':
                vb -= 1
            name = PyUnicode_DecodeASCII(<const char*>p + na, i - na, NULL).lower()
            PyDict_SetItem(out, name, PyUnicode_DecodeASCII(<const char*>p + va, vb - va, NULL))
        a = b + 1
    return out
