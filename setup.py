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

Beside them, the exec helper every child starts through
(``lexfast/effects/proc/lexfast-confine`` from ``helper/lexfast_confine.c``,
issue 26) is linked as an executable with the same compiler, on Linux only.
It is optional like the extensions (children then run unconfined unless
``Limits.require_confinement``); ``LEXFAST_REQUIRE_EXTENSIONS=1`` makes it
required too.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HELPER_SOURCE = "helper/lexfast_confine.c"
HELPER_DIR = "lexfast/effects/proc"
HELPER_NAME = "lexfast-confine"


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
    sources = [pyx[:-4].replace("/", ".") for pyx in _pyx_sources()]
    # The list/tuple/option/result and map/set/deque ops as plain builtin
    # functions, not Cython function objects: nothing needs a bound __self__
    # or their introspection, and a call costs about 6 ns less (of the ~20 ns
    # the cheapest op takes).
    unbound = {"lexfast.builtins._seq_c", "lexfast.builtins._containers_c"}
    ext_modules = cythonize(
        [extension(name) for name in sources if name not in unbound],
        compiler_directives=directives,
        annotate=_flag("LEXFAST_ANNOTATE"),
    )
    ext_modules += cythonize(
        [extension(name) for name in sources if name in unbound],
        compiler_directives={**directives, "binding": False},
        annotate=_flag("LEXFAST_ANNOTATE"),
    )
    for ext in ext_modules:  # cythonize does not carry ``optional`` over
        ext.optional = not _flag("LEXFAST_REQUIRE_EXTENSIONS")



class build_ext_and_helper(build_ext):
    """``build_ext``, then the exec helper linked by the same compiler into
    the package (in place or into build_lib, so the wheel carries it)."""

    def run(self):
        super().run()
        if not sys.platform.startswith("linux"):
            return
        out_dir = HELPER_DIR if self.inplace else os.path.join(self.build_lib, HELPER_DIR)
        try:
            self._build_helper(out_dir)
        except Exception as e:
            if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
                raise
            print(f"warning: {HELPER_NAME} not built ({e}); children will run unconfined")

    def _build_helper(self, out_dir):
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler

        cc = self.compiler
        if cc is None or isinstance(cc, str):  # no extension was built: make our own
            cc = new_compiler(compiler=cc, verbose=self.verbose, dry_run=self.dry_run)
            customize_compiler(cc)
        os.makedirs(out_dir, exist_ok=True)
        objects = cc.compile([HELPER_SOURCE], output_dir=self.build_temp,
                             extra_postargs=["-O2", "-fPIE", "-fno-stack-protector"])
        # Its exec is the whole cost of confinement at every spawn: without
        # the C library where the source has its own start-up (x86_64), else
        # static where the C library allows it (no dynamic loader); static
        # either way means no glibc symbol version to raise the wheel's
        # manylinux tag.
        last = None
        for link_args in (["-nostdlib", "-static", "-s"], ["-static-pie", "-s"],
                          ["-static", "-s"], ["-pie", "-s"]):
            try:
                cc.link_executable(objects, HELPER_NAME, output_dir=out_dir,
                                   extra_postargs=link_args)
                break
            except Exception as e:  # LinkError: no static libc here, try the next
                last = e
        else:
            raise last
        os.chmod(os.path.join(out_dir, HELPER_NAME), 0o755)


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


_say_what_is_missing(setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext_and_helper}))
