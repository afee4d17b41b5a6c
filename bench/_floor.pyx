# cython: language_level=3
"""Floors for bench/: what the cheapest compiled method costs to call, built
the way lexfast's kernel is (a ``cdef class`` with ``def`` methods, the same
Cython, the same compiler flags), so a dispatch can be read against the part
of its cost no Cython code can remove."""


cdef class Floor:
    def empty3(self, a, b, c):
        """An empty method with ``dispatch``'s signature."""
        return None

    def call1(self, fn, a):
        """A compiled method calling ``fn(a)``: what any compiled dispatcher
        pays to call a Python function (the interpreter inlines a Python-to-
        Python call; a call from C enters the eval loop afresh)."""
        return fn(a)
