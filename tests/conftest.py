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
import threading

import pytest

import lexfast
from lexfast import CapturedSink, DefaultHandler, Policy

_PKG_DIR = os.path.dirname(lexfast.__file__)


def _check_not_stale() -> None:
    if not os.path.exists(os.path.join(os.path.dirname(_PKG_DIR), "setup.py")):
        return  # an installed build (the .pyx ships beside it for reference)
    for pyx in glob.glob(os.path.join(_PKG_DIR, "**", "*.pyx"), recursive=True):
        for so in glob.glob(pyx[:-len(".pyx")] + ".*.so"):
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
    """The kernel module itself (``lexfast.kernel._c`` or ``lexfast.kernel._py``),
    for tests of the kernel's own types: every such test runs against both.

    The two are separate worlds: a ``Variant`` of one is not an instance of the
    other's, nor equal to it. The package only ever uses the selected kernel
    (``lexfast.kernel``), so a test may hand a handler only values made by
    ``lexfast`` / ``lexfast.kernel``, never ones made by ``impl``."""
    if request.param == "twin":
        return importlib.import_module("lexfast.kernel._py")
    try:
        return importlib.import_module("lexfast.kernel._c")
    except ImportError:
        pytest.skip("the compiled core is not built")


#: make_handler's handlers are closed after this long (every wait on a child
#: ends at close, so a hung wait fails the test instead of the run).
_WATCHDOG_S = float(os.environ.get("LEXFAST_TEST_WATCHDOG_S", "120"))


@pytest.fixture
def make_handler():
    """``make_handler(effects=[...], fs_read=[...], fs_write=[...], hosts=[...],
    procs=[...], budget=None, **handler_kwargs)``: a DefaultHandler with a
    CapturedSink, closed after the test."""
    made = []
    fired = []

    def watchdog():  # a wait on a child that hangs: close() ends every such wait
        fired.append(True)
        for h in list(made):
            h.close()

    timer = threading.Timer(_WATCHDOG_S, watchdog)
    timer.daemon = True
    timer.start()

    def make(effects=(), fs_read=(), fs_write=(), hosts=(), procs=(), budget=None, **kw):
        policy = Policy(allow_effects=effects, allow_fs_read=[str(p) for p in fs_read],
                        allow_fs_write=[str(p) for p in fs_write], allow_net_host=hosts,
                        allow_proc=procs, budget=budget)
        kw.setdefault("sink", CapturedSink())
        h = DefaultHandler(policy, **kw)
        made.append(h)
        return h

    yield make
    timer.cancel()
    timer.join(5)  # gone before the next test counts threads
    for h in made:
        h.close()
    if fired:
        pytest.fail(f"the test's handlers were closed by the {_WATCHDOG_S:g} s watchdog "
                    "(a wait hung)", pytrace=False)


@pytest.fixture
def permissive(make_handler):
    return make_handler(effects=lexfast.KNOWN_EFFECTS)


# -- every test ends with the fds and child processes it started with ---------
#
# Issue 9: no test (hence no effect it drives) may leave an open descriptor or
# a child process behind. Compared per test against a snapshot taken before
# it, after a short grace for pumps and reapers that finish asynchronously.

_FD_GRACE_S = 2.0


def _open_fds() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the fd listdir itself used, or one closed meanwhile
    return out


def _children() -> dict[int, str]:
    """Our child processes (zombies included: an unreaped child is a leak),
    with their command lines, from each thread's ``children`` list."""
    pids = set()
    for path in glob.glob("/proc/self/task/*/children"):
        try:
            with open(path) as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            pass
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            cmd = ""
        if not cmd:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    cmd = f.read().split(")")[0].split("(", 1)[-1] + " (zombie?)"
            except OSError:
                continue  # gone meanwhile
        out[pid] = cmd
    return out


#: leaks already reported by a test, not reported again by its module
_REPORTED: set = set()
#: the session's own servers (redis_server, postgres_server): not leaks
_SESSION_KIDS: set = set()


def _leaked(before_fds, before_kids):
    fds = {fd: t for fd, t in _open_fds().items()
           if before_fds.get(fd) != t and (fd, t) not in _REPORTED}
    kids = {pid: c for pid, c in _children().items()
            if pid not in before_kids and pid not in _REPORTED and pid not in _SESSION_KIDS}
    return fds, kids


def _check_no_leaks(what, before_fds, before_kids) -> None:
    import gc
    import time

    deadline = time.monotonic() + _FD_GRACE_S
    fds, kids = _leaked(before_fds, before_kids)
    collected = False
    while (fds or kids) and time.monotonic() < deadline:
        if not collected:  # a Popen or socket only its finaliser closes still counts
            gc.collect()
            collected = True
        time.sleep(0.02)
        fds, kids = _leaked(before_fds, before_kids)
    if fds or kids:
        _REPORTED.update(fds.items())
        _REPORTED.update(kids)
        lines = [f"fd {fd} -> {t}" for fd, t in sorted(fds.items())]
        lines += [f"child pid {pid}: {c}" for pid, c in sorted(kids.items())]
        pytest.fail(f"{what} leaked:\n  " + "\n  ".join(lines), pytrace=False)


#: Wider-scoped fixtures that hold no descriptor or process of their own.
_INERT_WIDE_FIXTURES = {"tmp_path_factory", "tmpdir_factory", "pytestconfig", "cache",
                        "doctest_namespace", "record_testsuite_property", "worker_id",
                        "_no_leaked_fds_or_children_module"}


def _uses_wide_fixture(item) -> bool:
    """A test using a module-scoped fixture may start what that fixture keeps
    (a shared server, a handler's MCP child) for the tests after it: its
    resources are checked when the module ends instead."""
    info = getattr(item, "_fixtureinfo", None)
    for name, defs in (info.name2fixturedefs.items() if info is not None else ()):
        if name not in _INERT_WIDE_FIXTURES and any(d.scope != "function" for d in defs):
            return True
    return False


#: LEXFAST_NO_LEAK_CHECK=1 turns the fd/child check off (bisecting a flaky test)
_LEAK_CHECK = os.environ.get("LEXFAST_NO_LEAK_CHECK", "").strip() in ("", "0")


@pytest.fixture(scope="module", autouse=True)
def _no_leaked_fds_or_children_module(request):
    if not _LEAK_CHECK:
        yield
        return
    before_fds, before_kids = _open_fds(), _children()
    yield
    _check_no_leaks(f"module {request.module.__name__}", before_fds, before_kids)


@pytest.fixture(autouse=True)
def _no_leaked_fds_or_children(request):
    if not _LEAK_CHECK or request.node.get_closest_marker("leaks_allowed") \
            or _uses_wide_fixture(request.node):
        yield
        return
    before_fds, before_kids = _open_fds(), _children()
    yield
    _check_no_leaks(request.node.nodeid, before_fds, before_kids)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "leaks_allowed: skip the per-test fd/child-process check (say why)")


@pytest.fixture(scope="session", autouse=True)
def _libuv_global_pipe():
    """libuv (uvloop, under net.serve*'s front when installed) opens one pipe
    per process at its first loop and keeps it for the process's life: open it
    before any descriptor snapshot, so it is not taken for a test's leak."""
    try:
        import uvloop
    except ImportError:
        yield
        return
    uvloop.new_event_loop().close()
    yield


# -- real servers (tests/servers.py) -----------------------------------------

def _servers_module():
    import importlib.util
    import sys
    mod = sys.modules.get("lexfast_test_servers")
    if mod is None:
        spec = importlib.util.spec_from_file_location(
            "lexfast_test_servers", os.path.join(os.path.dirname(__file__), "servers.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules["lexfast_test_servers"] = mod
        spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def servers():
    """tests/servers.py itself: ``servers.start_redis(dir)``,
    ``servers.start_postgres(dir)`` for a test that needs its own server
    (to kill it mid-call, say); skips/fails as the fixtures below do."""
    return _servers_module()


def _server_missing(what: str) -> None:
    message = (f"{what} is not installed: .ci/run installs it (Debian's package); "
               "outside CI the tests that need it skip")
    if os.environ.get("LEXFAST_REQUIRE_SERVERS", "").strip() not in ("", "0"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on 127.0.0.1 (``.url``, ``.port``, ``.stop()``)
    for the whole session; tests must not leave keys others depend on."""
    try:
        server = _servers_module().start_redis(str(tmp_path_factory.mktemp("redis")))
    except FileNotFoundError:
        _server_missing("redis-server")
    _SESSION_KIDS.add(server.proc.pid)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real PostgreSQL server on 127.0.0.1 (``.url``: a ``postgres://``
    URL with the test user's password) for the whole session."""
    try:
        server = _servers_module().start_postgres(str(tmp_path_factory.mktemp("postgres")))
    except FileNotFoundError:
        _server_missing("PostgreSQL (initdb/postgres)")
    _SESSION_KIDS.add(server.proc.pid)
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _pyarrow_global_pipe():
    """pyarrow (arrow.read_csv's parser, when installed) opens one pipe pair
    per process at its first CSV read, for its thread pools, and keeps it for
    the process's life: open it before any descriptor snapshot, as above."""
    try:
        import pyarrow
        import pyarrow.csv
    except ImportError:
        yield
        return
    pyarrow.csv.read_csv(pyarrow.BufferReader(b"x\n1\n"),
                         read_options=pyarrow.csv.ReadOptions(use_threads=False))
    yield
