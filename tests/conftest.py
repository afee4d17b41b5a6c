"""Shared fixtures: handlers over real resources, and the two cores.

The tests import the *installed* lexfast (``--import-mode=importlib``). When
the source tree is on ``sys.path`` on purpose (``PYTHONPATH=.`` while
developing), a compiled core older than its ``.pyx`` stops the run instead of
silently testing a stale build.
"""

from __future__ import annotations

import glob
import importlib
import os

import pytest

import lexfast
from lexfast import CapturedSink, DefaultHandler, Policy

_PKG_DIR = os.path.dirname(lexfast.__file__)


def _check_not_stale() -> None:
    pyx = os.path.join(_PKG_DIR, "_core.pyx")
    if not os.path.exists(os.path.join(os.path.dirname(_PKG_DIR), "setup.py")):
        return  # an installed build (the .pyx ships beside it for reference)
    for so in glob.glob(os.path.join(_PKG_DIR, "_core*.so")):
        if os.path.getmtime(so) < os.path.getmtime(pyx):
            pytest.exit(f"{so} is older than {pyx}: rebuild it "
                        "(python setup.py build_ext --inplace) or test an installed build",
                        returncode=3)


_check_not_stale()

if os.environ.get("LEXFAST_REQUIRE_EXTENSIONS", "").strip() not in ("", "0") \
        and os.environ.get("LEXFAST_NO_EXTENSIONS", "").strip() in ("", "0") \
        and not lexfast.COMPILED:
    pytest.exit("LEXFAST_REQUIRE_EXTENSIONS is set but the compiled core is not loaded",
                returncode=3)


def pytest_report_header(config):
    return (f"lexfast {lexfast.__version__} from {_PKG_DIR}; "
            f"core: {'compiled' if lexfast.COMPILED else 'pure-Python twin'}")


def _available_impls():
    impls = [pytest.param("twin", id="twin")]
    if os.environ.get("LEXFAST_NO_EXTENSIONS", "").strip() in ("", "0"):
        impls.insert(0, pytest.param("compiled", id="compiled"))
    return impls


@pytest.fixture(params=_available_impls())
def impl(request):
    """The core module itself (``lexfast._core`` or ``lexfast._twin``), for
    tests of the core's own types: every such test runs against both."""
    if request.param == "twin":
        return importlib.import_module("lexfast._twin")
    try:
        return importlib.import_module("lexfast._core")
    except ImportError:
        pytest.skip("the compiled core is not built")


@pytest.fixture
def make_handler():
    """``make_handler(effects=[...], fs_read=[...], fs_write=[...], hosts=[...],
    procs=[...], budget=None, **handler_kwargs)``: a DefaultHandler with a
    CapturedSink, closed after the test."""
    made = []

    def make(effects=(), fs_read=(), fs_write=(), hosts=(), procs=(), budget=None, **kw):
        policy = Policy(allow_effects=effects, allow_fs_read=[str(p) for p in fs_read],
                        allow_fs_write=[str(p) for p in fs_write], allow_net_host=hosts,
                        allow_proc=procs, budget=budget)
        kw.setdefault("sink", CapturedSink())
        h = DefaultHandler(policy, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def permissive(make_handler):
    return make_handler(effects=lexfast.KNOWN_EFFECTS)
