# cython: language_level=3
"""The compiled fast path of ``fs.stat``, ``fs.exists``, ``fs.is_file`` and
``fs.is_dir`` (``lexfast/effects/fs/ops.py`` defines the same ops in Python,
the twin; the tests run against both).

It is ``scope.roots.open_scoped``'s fast path done in C for an ``O_PATH``
open: an absolute path lexically under one of the session's cached scope
roots (``RootCache``) is opened with one ``openat2(RESOLVE_BENEATH |
RESOLVE_NO_MAGICLINKS)`` from the root's descriptor, ``fstat``'d and closed,
the three calls in one GIL release. The kernel keeps the walk beneath the
root, so this is exactly as race-free as the Python path. Everything the
Python fast path would not answer itself goes to the Python op, which
redoes the call and words any error: a failed open or ``fstat`` (whatever
the errno), a ``/proc`` path or a root on procfs landing there, a path that
is relative, long (over 1024 characters), not under a cached root, holds a
NUL or cannot be encoded, a root descriptor dropped meanwhile (the
``RootCache`` epoch moved), an argument that is not an exact ``str`` in an
exact ``list``.
"""

from cpython.object cimport PyObject
from libc.stdint cimport uint64_t
from posix.stat cimport fstat, struct_stat
from posix.unistd cimport close

import os

from ...kernel import ok
from ...scope.paths import BENEATH
from ...scope.roots import ROOTS_STATE, roots_of

cdef extern from "lexfast/openat2.h":
    int lexfast_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode,
                        uint64_t resolve) nogil
    int LEXFAST_O_PATH  # O_PATH, or 0 where there is none (never used there)
    long long LEXFAST_MTIME_SEC(struct_stat* st)
    long long LEXFAST_MTIME_NSEC(struct_stat* st)

cdef extern from "Python.h":
    bint PyUnicode_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject* PyList_GET_ITEM(object o, Py_ssize_t i)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bytes PyUnicode_EncodeFSDefault(object o)
    char* PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)

cdef extern from "string.h":
    void *memchr(const void *s, int c, size_t n)

cdef extern from "fcntl.h":
    int O_CLOEXEC

cdef uint64_t _FLAGS = <uint64_t>(LEXFAST_O_PATH | O_CLOEXEC)
cdef uint64_t _RESOLVE = <uint64_t>BENEATH


def _proc_dev():
    # as scope.paths does: the device of the procfs mounted at /proc
    try:
        return os.stat("/proc").st_dev
    except OSError:  # no procfs
        return None


_PROC_DEV = _proc_dev()
cdef bint _HAVE_PROC_DEV = _PROC_DEV is not None
cdef unsigned long long _PROC = <unsigned long long>(_PROC_DEV or 0)
# no str of at most this many characters is over PATH_MAX bytes (ops._LONG)
cdef Py_ssize_t _LONG = 1024

# the Python ops, which answer whatever this path hands back (set by ``bind``)
cdef object _py_stat = None
cdef object _py_probe = None


def bind(py_stat, py_probe):
    """Give the module the Python ``fs_stat`` and ``_probe`` (ops.py) that
    answer every case the fast path leaves to them."""
    global _py_stat, _py_probe
    _py_stat = py_stat
    _py_probe = py_probe


cdef object _path_arg(object args):
    """The exact ``str`` first argument, or None (the Python op words it)."""
    cdef PyObject* p
    if PyList_CheckExact(args) and PyList_GET_SIZE(args) >= 1:
        p = PyList_GET_ITEM(args, 0)
        if PyUnicode_CheckExact(<object>p):
            return <object>p
    return None


cdef int _fast(object h, str path, struct_stat* st) except -1:
    """Stat ``path`` (symlinks followed) beneath the cached root it is
    lexically under: 1 when ``st`` holds the answer, 0 when the Python op
    must answer instead."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(path)
    cdef int fd, rc, e
    cdef int rfd
    cdef bytes enc
    cdef const char* cpath
    cdef object rel
    if n == 0 or n > _LONG or path[0] != "/" or path.startswith("/proc"):
        return 0
    session = h.session
    cache = session._states.get(ROOTS_STATE)
    if cache is None:
        cache = roots_of(session)
    roots = h.policy.read_roots
    epoch = cache.epoch
    table = cache.tables.get(roots)
    if table is None:
        table = cache.table(roots)
    for entry in table:
        root, pre, rfd_obj, has_proc = entry
        if path.startswith(pre):
            rel = path[len(pre):] or "."
        elif path == root:
            rel = "."
        else:
            continue
        try:
            enc = PyUnicode_EncodeFSDefault(rel)
        except UnicodeError:
            return 0
        if memchr(PyBytes_AS_STRING(enc), 0, <size_t>PyBytes_GET_SIZE(enc)) != NULL:
            return 0  # a NUL: the Python op refuses it
        cpath = PyBytes_AS_STRING(enc)
        rfd = rfd_obj
        with nogil:
            fd = lexfast_openat2(rfd, cpath, _FLAGS, 0, _RESOLVE)
            if fd >= 0:
                rc = fstat(fd, st)
                close(fd)
        if fd < 0 or rc != 0 or cache.epoch != epoch:
            return 0  # any error (or a root dropped meanwhile): the Python op decides
        if has_proc and _HAVE_PROC_DEV and <unsigned long long>st.st_dev == _PROC:
            return 0  # procfs: the Python path judges the resolved path
        return 1
    return 0


cdef long long _mtime(struct_stat* st):
    # what ``int(os.fstat(fd).st_mtime)`` gives: the same double, truncated
    cdef double t = <double>LEXFAST_MTIME_SEC(st) + <double>LEXFAST_MTIME_NSEC(st) * 1e-9
    cdef long long s = <long long>t
    return s if s > 0 else 0


def fs_stat(h, args):
    """``fs.stat``: ``ok({size, mtime, is_dir, is_file})``, or the Python op."""
    cdef struct_stat st
    cdef unsigned int fmt
    path = _path_arg(args)
    if path is None or not _fast(h, path, &st):
        return _py_stat(h, args)
    fmt = st.st_mode & 0o170000
    return ok({"size": st.st_size, "mtime": _mtime(&st),
               "is_dir": fmt == 0o040000, "is_file": fmt == 0o100000})


cdef object _probe(object h, object args, unsigned int want, str op):
    cdef struct_stat st
    path = _path_arg(args)
    if path is None or not _fast(h, path, &st):
        return _py_probe(h, args, want, op)
    return want == 0 or (st.st_mode & 0o170000) == want


def fs_exists(h, args):
    return _probe(h, args, 0, "exists")


def fs_is_file(h, args):
    return _probe(h, args, 0o100000, "is_file")


def fs_is_dir(h, args):
    return _probe(h, args, 0o040000, "is_dir")
