"""Builds the compiled kernel (``lexfast.kernel._c``) and the compiled hot
paths of the builtins (``lexfast.builtins._text_c``, ``_seq_c``,
``_containers_c``) with Cython.

- ``LEXFAST_REQUIRE_EXTENSIONS=1``: a failed compile fails the build (CI,
  cibuildwheel). Otherwise each extension is optional and the pure-Python twin
  serves where no compiler is available.
- ``LEXFAST_NO_EXTENSIONS=1``: do not build them at all.
- ``LEXFAST_ANNOTATE=1``: write ``cython -a`` HTML reports beside the sources.
- ``LEXFAST_LINETRACE=1``: line tracing, for coverage of the .pyx.
"""

import os

from setuptools import Extension, setup


def _flag(name):
    return os.environ.get(name, "").strip() not in ("", "0")


ext_modules = []
if not _flag("LEXFAST_NO_EXTENSIONS"):
    from Cython.Build import cythonize

    macros = [("CYTHON_TRACE_NOGIL", "1")] if _flag("LEXFAST_LINETRACE") else []

    def extension(name):
        return Extension(name, [name.replace(".", "/") + ".pyx"], include_dirs=["include"],
                         define_macros=macros)

    # Safety checks (boundscheck, wraparound, cdivision) keep their safe
    # defaults: this is a security boundary.
    directives = {
        "language_level": 3,
        "embedsignature": True,
        "linetrace": _flag("LEXFAST_LINETRACE"),
    }
    ext_modules = cythonize(
        [extension("lexfast.kernel._c"), extension("lexfast.builtins._text_c")],
        compiler_directives=directives,
        annotate=_flag("LEXFAST_ANNOTATE"),
    )
    # The list/tuple/option/result and map/set/deque ops as plain builtin
    # functions, not Cython function objects: nothing needs a bound __self__
    # or their introspection, and a call costs about 6 ns less (of the ~20 ns
    # the cheapest op takes).
    ext_modules += cythonize(
        [extension("lexfast.builtins._seq_c"), extension("lexfast.builtins._containers_c")],
        compiler_directives={**directives, "binding": False},
        annotate=_flag("LEXFAST_ANNOTATE"),
    )
    for ext in ext_modules:  # cythonize does not carry ``optional`` over
        ext.optional = not _flag("LEXFAST_REQUIRE_EXTENSIONS")

setup(ext_modules=ext_modules)
