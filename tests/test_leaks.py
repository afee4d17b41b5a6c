"""Leaks (issue 9): memory stays flat over many dispatches of each hot path,
and reference counts stay put on every path through ``dispatch`` — success,
an ``err`` value, an ``EffectError`` raised, an internal error wrapped, a
denial, a table miss — through both the pure-builtin call
(``lexfast_call1``) and the effect-table call (``lexfast_call2``).

A bounded version of ``fuzz/soak.py`` (which runs the issue's ten million).
The whole suite runs once per core, so each test covers the core loaded.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
import tracemalloc

import pytest

import lexfast
from lexfast import BudgetExceeded, EffectError
from lexfast.kernel import LRURegistry, err
from lexfast.table import default_table

_SOAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "fuzz", "soak.py")


def _load_soak():
    spec = importlib.util.spec_from_file_location("lexfast_soak", _SOAK)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


soak = _load_soak()

# Calls per workload; the error paths are ~10x slower, and so get fewer.
N_FAST = 200_000
N_SLOW = 30_000
# A leak of one 16-byte object per call is 3.2 MB over N_FAST calls; these
# leave room for allocator and list-capacity noise only.
TRACED_BOUND = 64 << 10
RSS_BOUND = 2 << 20


@pytest.fixture(scope="module")
def traced():
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    yield
    if started:
        tracemalloc.stop()


@pytest.fixture
def handlers():
    allow, deny = soak._handlers()
    yield allow, deny
    allow.close()
    deny.close()


WORKLOADS = ["time.now", "denied io.print", "pure builtin", "note_call_budget", "env.get",
             "io.print (CapturedSink)", "time.sleep_ms bad arg"]


@pytest.mark.parametrize("name", WORKLOADS)
def test_hot_path_memory_is_flat(name, handlers, traced):
    fn = soak.workloads(*handlers)[name]
    n = N_SLOW if name in ("denied io.print", "time.sleep_ms bad arg", "env.get") else N_FAST
    r = soak.measure(fn, n)
    assert r["traced_growth"] < TRACED_BOUND, r
    assert r["rss_growth"] < RSS_BOUND, r


def test_registry_cycles_memory_is_flat(traced):
    r = soak.measure(soak.registry_cycles, 50_000)
    assert r["traced_growth"] < TRACED_BOUND, r
    assert r["rss_growth"] < RSS_BOUND, r


# -- reference counts on every dispatch path --------------------------------------

class Payload:
    """A unique object to count references to."""


PAYLOAD = Payload()
MESSAGE = "a message object kept alive by the test"  # interned: counted too


def _ok(h, args):
    return PAYLOAD


def _err(h, args):
    return err(PAYLOAD)


def _raise(h, args):
    raise EffectError(MESSAGE)


def _internal(h, args):
    raise ValueError(PAYLOAD)


def _returns_arg(h, args):
    return args[0]


ROWS = [("leak", "ok", "io", _ok), ("leak", "err", "io", _err), ("leak", "raise", "io", _raise),
        ("leak", "internal", "io", _internal), ("leak", "echo", "io", _returns_arg),
        ("leak", "denied", "net", _ok)]
PURE = {("p", "ok"): lambda a: PAYLOAD, ("p", "err"): lambda a: err(PAYLOAD),
        ("p", "raise"): lambda a: _raise(None, a), ("p", "internal"): lambda a: _internal(None, a),
        ("p", "echo"): lambda a: a[0]}


@pytest.fixture
def counted(make_handler):
    return make_handler(effects=["io"], table=default_table().with_rows(ROWS), pure=PURE,
                        budget=10)


CASES = [("leak", "ok"), ("leak", "err"), ("leak", "raise"), ("leak", "internal"),
         ("leak", "echo"), ("leak", "denied"), ("p", "ok"), ("p", "err"), ("p", "raise"),
         ("p", "internal"), ("p", "echo"), ("leak", "no_such_op"), ("nope", "x")]


@pytest.mark.parametrize("kind,op", CASES, ids=[f"{k}.{o}" for k, o in CASES])
def test_refcounts_stable_across_dispatches(counted, kind, op):
    h = counted
    arg = Payload()
    args = [arg, MESSAGE]
    watched = [PAYLOAD, MESSAGE, arg, args, kind, op, h]

    def run(n):
        for _ in range(n):
            try:
                h.dispatch(kind, op, args)
            except EffectError as e:
                str(e)

    run(100)  # first-call caches (error message formats, counters)
    gc.collect()
    before = [sys.getrefcount(o) for o in watched]
    run(5000)
    gc.collect()
    after = [sys.getrefcount(o) for o in watched]
    assert after == before, list(zip(["PAYLOAD", "MESSAGE", "arg", "args", "kind", "op", "h"],
                                     before, after, strict=True))


def test_dispatch_results_are_owned_once(counted):
    """The object a call returns has exactly the references the caller holds
    (an extra DECREF would free it under us; a missing one would leak)."""
    h = counted
    for kind, op in [("leak", "echo"), ("p", "echo")]:
        obj = Payload()
        base = sys.getrefcount(obj)
        results = [h.dispatch(kind, op, [obj]) for _ in range(1000)]
        assert all(r is obj for r in results)
        assert sys.getrefcount(obj) == base + 1000
        del results
        assert sys.getrefcount(obj) == base


def test_wrapped_internal_error_keeps_cause_and_releases_it(counted):
    h = counted
    base = sys.getrefcount(PAYLOAD)
    for kind in ("leak", "p"):
        with pytest.raises(EffectError, match="internal error") as info:
            h.dispatch(kind, "internal", [])
        assert isinstance(info.value.__cause__, ValueError)
        assert info.value.__cause__.args[0] is PAYLOAD
        del info
    gc.collect()
    assert sys.getrefcount(PAYLOAD) == base


@pytest.mark.parametrize("cost", [1, 2**40, 2**70, -1, "x", 1.5])
def test_note_call_budget_refcounts_stable(counted, cost):
    h = counted
    before = sys.getrefcount(cost)
    for _ in range(5000):
        try:
            h.note_call_budget(cost)
        except (BudgetExceeded, EffectError) as e:
            str(e)
    gc.collect()
    assert sys.getrefcount(cost) == before


def test_registry_refcounts_stable(impl):
    value = Payload()
    released = []
    reg = impl.LRURegistry(4, lambda handle, v: released.append(v is value))
    base = sys.getrefcount(value)
    for i in range(1, 5001):
        reg.insert(i, value)
        reg.touch_get(i)
        if i % 2:
            reg.remove(i)
    assert len(reg.pop_all()) == 4  # the list and its tuples are dropped here
    released.clear()
    gc.collect()
    assert len(reg) == 0
    assert sys.getrefcount(value) == base


def test_registry_from_core_is_the_loaded_one():
    assert (LRURegistry.__module__ == "lexfast.kernel._c") == lexfast.COMPILED
