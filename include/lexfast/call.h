/* Vectorcall helpers for the dispatch path: the call into an effect (or a
 * pure builtin) without a try/except frame around it; a NULL return means an
 * exception is set and the caller decides what to do with it. */
#ifndef LEXFAST_CALL_H
#define LEXFAST_CALL_H

#include <Python.h>

static inline PyObject *lexfast_call1(PyObject *fn, PyObject *a) {
    PyObject *argv[2] = {NULL, a};
    return PyObject_Vectorcall(fn, argv + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static inline PyObject *lexfast_call2(PyObject *fn, PyObject *a, PyObject *b) {
    PyObject *argv[3] = {NULL, a, b};
    return PyObject_Vectorcall(fn, argv + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* Py_TYPE as a PyObject * (Cython compares and passes it as one). */
static inline PyObject *lexfast_type(PyObject *o) {
    return (PyObject *)Py_TYPE(o);
}

#endif
