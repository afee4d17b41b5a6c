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
import sys

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



def _say_what_is_missing(dist):
    """A failed optional compile is otherwise one line among hundreds: name
    every module the pure-Python twin will serve, in a banner at the end of
    the build (``pip install -v`` shows it; ``lexfast info`` says it later)."""
    if not ext_modules or "build_ext" not in dist.command_obj:
        return
    build_ext = dist.command_obj["build_ext"]
    missing = [e.name for e in ext_modules
               if not os.path.exists(build_ext.get_ext_fullpath(e.name))]
    if missing:
        bar = "!" * 72
        print(f"\n{bar}\nWARNING: lexfast: {len(missing)} compiled module(s) failed to build "
              f"(no C compiler or Python headers?):\n  " + "\n  ".join(missing)
              + "\nThe pure-Python twin serves instead: correct, several times slower. "
              "Install a C compiler and python3-dev, then reinstall; "
              "LEXFAST_REQUIRE_EXTENSIONS=1 makes this an error.\n" + bar, file=sys.stderr)


_say_what_is_missing(setup(ext_modules=ext_modules))
