/* A PolicyDenied built without its Python __init__: a refused call is common
 * in agent code, and the exception is most of a refusal's cost. The
 * attributes are __slots__ (lexfast/errors.py) stored at their descriptors'
 * offsets; when they are not slots, they are set by name. */
#ifndef LEXFAST_DENIED_H
#define LEXFAST_DENIED_H

#include <Python.h>
#include <structmember.h>

static PyObject *lexfast_denied_type = NULL;          /* PolicyDenied */
static PyObject *lexfast_denied_names[4] = {NULL};    /* effect, path, host, cmd */
static Py_ssize_t lexfast_denied_offsets[4] = {0};    /* 0: not slots */

/* A new reference to PolicyDenied(message, effect=effect), or NULL. */
static PyObject *lexfast_new_denied(PyObject *message, PyObject *effect) {
    PyObject *args, *exc, *value;
    int i;
    if (lexfast_denied_type == NULL) {
        PyErr_SetString(PyExc_SystemError, "lexfast: PolicyDenied not initialised");
        return NULL;
    }
    args = PyTuple_Pack(1, message);
    if (args == NULL)
        return NULL;
    exc = ((PyTypeObject *)lexfast_denied_type)->tp_new(
        (PyTypeObject *)lexfast_denied_type, args, NULL);
    Py_DECREF(args);
    if (exc == NULL)
        return NULL;
    for (i = 0; i < 4; i++) {
        value = i == 0 ? effect : Py_None;
        if (lexfast_denied_offsets[i] > 0) {
            PyObject **slot = (PyObject **)((char *)exc + lexfast_denied_offsets[i]);
            Py_INCREF(value);
            Py_XSETREF(*slot, value);
        } else if (PyObject_SetAttr(exc, lexfast_denied_names[i], value) < 0) {
            Py_DECREF(exc);
            return NULL;
        }
    }
    return exc;
}

/* Cython declares this as returning ``object``: a NULL becomes its error. */
static inline PyObject *lexfast_identity(PyObject *o) {
    return o;
}

#endif
