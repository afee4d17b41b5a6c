# cython: language_level=3
"""The compiled parts of ``sql.exec``/``sql.query`` (``lexfast/effects/sql.py``
defines the same functions in Python, the twin; the tests run against both):

- :func:`begin`, the argument checks and the connection's lock for the
  common case (an exact ``list`` of an exact ``int`` handle the session's
  ``sql`` registry knows, an exact ``str`` statement, an exact ``list`` of
  exact ``str`` parameters, the lock free, no sidecar watch); anything else
  is sql.py's ``_begin``, which checks again and words the error;
- :func:`records`, the result rows as records (``{column: value}``),
  counted against the row and byte caps as they are fetched, as sql.py's
  ``_records`` does.
"""

from cpython.object cimport PyObject

cdef extern from "Python.h":
    bint PyUnicode_CheckExact(object o)
    bint PyBytes_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    Py_ssize_t PyTuple_GET_SIZE(object o)
    PyObject* PyTuple_GET_ITEM(object o, Py_ssize_t i)
    PyObject* PyDict_GetItemWithError(object d, object k) except? NULL
    PyObject* PyIter_Next(object o) except? NULL
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    object PyList_GetSlice(object o, Py_ssize_t lo, Py_ssize_t hi)
    int PyDict_SetItem(object d, object k, object v) except -1
    object _PyDict_NewPresized(Py_ssize_t n)

# sql.py's ``_begin`` (set by ``bind``)
cdef object _py_begin = None


def bind(py_begin):
    """Give the module sql.py's Python ``_begin``."""
    global _py_begin
    _py_begin = py_begin


def begin(h, args, str op):
    """``(db, stmt, params)`` with ``db.lock`` held (the caller releases
    it), as sql.py's ``_begin``; that one answers every other case."""
    cdef Py_ssize_t i, n
    if PyList_CheckExact(args) and PyList_GET_SIZE(args) == 3:
        handle = <object>PyList_GET_ITEM(args, 0)
        stmt = <object>PyList_GET_ITEM(args, 1)
        plist = <object>PyList_GET_ITEM(args, 2)
        if PyLong_CheckExact(handle) and PyUnicode_CheckExact(stmt) and PyList_CheckExact(plist):
            params = PyList_GetSlice(plist, 0, PyList_GET_SIZE(plist))  # a copy, as expect_str_list
            n = PyList_GET_SIZE(params)
            for i in range(n):
                if not PyUnicode_CheckExact(<object>PyList_GET_ITEM(params, i)):
                    return _py_begin(h, args, op)
            entry = PyDict_GetItemWithError(h.session._registries, "sql")
            if entry is not NULL:
                db = (<tuple?>(<object>entry))[0].touch_get(handle)
                if db is not None:
                    lock = db.lock
                    if lock.acquire(False):
                        if not db.closed and not db.watch:
                            db.deadline = None
                            return db, stmt, params
                        lock.release()
    return _py_begin(h, args, op)


def records(cur, names, Py_ssize_t rows_cap, Py_ssize_t bytes_cap):
    """``(records, None)``, or ``(None, err message)`` once past either cap
    (then ``cur`` is closed): checked row by row, so at most one row more
    than the caps is materialised."""
    cdef list out = []
    cdef Py_ssize_t size = 0, i, ncols
    cdef PyObject* r
    cdef PyObject* v
    if not PyList_CheckExact(names):
        names = list(names)
    ncols = PyList_GET_SIZE(names)
    it = iter(cur)
    while True:
        r = PyIter_Next(it)
        if r is NULL:
            break
        row = <object>r
        _drop(r)  # PyIter_Next's new reference: ``row`` holds its own
        if not PyTuple_CheckExact(row):
            row = tuple(row)
        n = PyTuple_GET_SIZE(row)
        for i in range(n):
            v = PyTuple_GET_ITEM(row, i)
            if PyUnicode_CheckExact(<object>v):
                size += PyUnicode_GET_LENGTH(<object>v)
            elif PyBytes_CheckExact(<object>v):
                size += PyBytes_GET_SIZE(<object>v)
        if size > bytes_cap:
            cur.close()
            return None, (f"sql.query: result larger than {bytes_cap} bytes "
                          "(Limits.sql_result_bytes)")
        rec = _PyDict_NewPresized(n if n < ncols else ncols)
        for i in range(n if n < ncols else ncols):  # zip: the shorter one
            PyDict_SetItem(rec, <object>PyList_GET_ITEM(names, i),
                           <object>PyTuple_GET_ITEM(row, i))
        out.append(rec)
        if PyList_GET_SIZE(out) > rows_cap:
            cur.close()
            return None, f"sql.query: more than {rows_cap} rows (Limits.sql_rows)"
    return out, None


cdef extern from *:
    """
    static inline void lexfast_sql_drop(PyObject *o) { Py_DECREF(o); }
    """
    void _drop "lexfast_sql_drop"(PyObject* o)
