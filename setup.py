"""Builds every Cython module of the package with Cython: each
``lexfast/**/_*.pyx`` becomes the extension of the same dotted name (the
compiled kernel ``lexfast.kernel._c``, the builtins' hot paths
``lexfast.builtins._*_c`` and the effects' compiled fronts
``lexfast.effects.**._*_c``). Each has a pure-Python twin that serves without
it.

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


def _pyx_sources():
    """Every ``.pyx`` under ``lexfast/``, sorted (a new compiled module needs
    no entry here; ``.ci/run`` checks the wheel holds exactly these)."""
    found = []
    for root, _dirs, files in os.walk("lexfast"):
        found += [os.path.join(root, f) for f in files if f.endswith(".pyx")]
    return sorted(found)


ext_modules = []
if not _flag("LEXFAST_NO_EXTENSIONS"):
    from Cython.Build import cythonize

    macros = [("CYTHON_TRACE_NOGIL", "1")] if _flag("LEXFAST_LINETRACE") else []
    ext_modules = cythonize(
        [
            Extension(
                pyx[:-4].replace("/", "."),
                [pyx],
                include_dirs=["include"],
                define_macros=macros,
            )
            for pyx in _pyx_sources()
        ],
        # Safety checks (boundscheck, wraparound, cdivision) keep their safe
        # defaults: this is a security boundary.
        compiler_directives={
            "language_level": 3,
            "embedsignature": True,
            "linetrace": _flag("LEXFAST_LINETRACE"),
        },
        annotate=_flag("LEXFAST_ANNOTATE"),
    )
    for ext in ext_modules:  # cythonize does not carry ``optional`` over
        ext.optional = not _flag("LEXFAST_REQUIRE_EXTENSIONS")

setup(ext_modules=ext_modules)
