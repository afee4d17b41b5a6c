"""How the costs scale (issue 16.5), in the method of bench/conftest.py:

- ``scale-table-<rows>``: one dispatch of a no-op effect through an effect
  table of the default rows plus ``rows`` more and a pure table of 400
  builtins: ``lexfast-one-op`` repeats one op (a VM's hot loop), ``lexfast-all-ops`` cycles
  through every added op (a working set larger than the identity cache past
  128 ops), against ``direct-call``, the same loop calling the function;
- ``scale-kv-<keys>``: ``kv.get`` of 1000 keys in turn from a store of
  ``keys`` 100-byte values, against raw lmdb reading its own store of the
  same size (one read transaction per get on both sides). Short mode: 10k
  keys; ``LEXFAST_BENCH_FULL=1`` adds 100k and 1M;
- ``scale-threads-<n>``: ``n`` threads each dispatching the no-op effect on
  its own fork at once, wall time per dispatch, against ``n`` threads calling
  the function directly (the GIL serialises both).

Run: pytest bench/bench_scaling.py --benchmark-enable
"""

from __future__ import annotations

import os
import pathlib
import sys
import threading

import pytest

from lexfast import DefaultHandler, Policy, some
from lexfast.handler import Limits
from lexfast.table import default_table

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from statement_loops import statement_loop  # noqa: E402

FULL = os.environ.get("LEXFAST_BENCH_FULL", "").strip() not in ("", "0")

TABLE_ROWS = [0, 100, 400, 4000]
KV_KEYS = [10_000] + ([100_000, 1_000_000] if FULL else [])
THREADS = [1, 2, 4, 8]

RATIO_TARGETS: list[tuple] = []  # a table to read, not a promise (RESULTS.md)


def noop(h, args):
    return None


def _noop_pure(args):
    return None


# -- table size ---------------------------------------------------------------------

def _handler_with(rows: int):
    extra = [("bench", f"op{i}", "time", noop) for i in range(rows)]
    extra.append(("bench", "hot", "time", noop))
    pure = {("purebench", f"b{i}"): _noop_pure for i in range(400)}
    return DefaultHandler(Policy(allow_effects=["time"]), table=default_table().with_rows(extra),
                          pure=pure, stats=True)


@pytest.mark.parametrize("rows", TABLE_ROWS)
@pytest.mark.parametrize("name", ["lexfast-one-op", "lexfast-all-ops", "direct-call"])
def test_table_size(interleaved, rows, name):
    pairs = [("bench", f"op{i}") for i in range(rows)] or [("bench", "hot")]
    reps = max(1, 1000 // len(pairs))
    cycle = pairs * reps

    def subjects():
        h = _handler_with(rows)
        return {
            "lexfast-one-op": statement_loop("for k, o in cycle:\n    _r = d('bench', 'hot', args)", inner=1,
                                     d=h.dispatch, cycle=cycle, args=[]),
            "lexfast-all-ops": statement_loop("for k, o in cycle:\n    _r = d(k, o, args)", inner=1,
                                      d=h.dispatch, cycle=cycle, args=[]),
            "direct-call": statement_loop("for k, o in cycle:\n    _r = fn(h, args)", inner=1,
                                          fn=noop, h=h, cycle=cycle, args=[]),
        }
    assert interleaved(f"scale-table-{rows}", subjects, name, inner=len(cycle)) is None


# -- kv store size ------------------------------------------------------------------------

VALUE = b"v" * 100


def _key(i: int) -> str:
    return f"user:{i:08d}"


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """``{keys: (handler, handle, lmdb env)}``, each filled once."""
    import lmdb

    made = {}
    yield made, lmdb
    for h, _, env in made.values():
        h.close()
        env.close()


def _store(stores, keys, tmp_path_factory):
    made, lmdb = stores
    if keys not in made:
        root = tmp_path_factory.mktemp(f"kv{keys}")
        h = DefaultHandler(Policy(allow_effects=["kv"], allow_fs_write=[str(root)]),
                           limits=Limits(kv_sync=False, kv_map_size=1 << 31))
        handle = h.dispatch("kv", "open", [str(root / "store")]).args[0]
        put = h.dispatch
        for i in range(keys):
            put("kv", "put", [handle, _key(i), VALUE])
        env = lmdb.open(str(root / "raw"), map_size=1 << 31, sync=False)
        for i in range(keys):  # one transaction per put, as the handler's store was filled
            with env.begin(write=True) as txn:
                txn.put(_key(i).encode(), VALUE)
        made[keys] = (h, handle, env)
    return made[keys]


@pytest.mark.parametrize("keys", KV_KEYS)
@pytest.mark.parametrize("name", ["lexfast-handler", "raw-lmdb"])
def test_kv_store_size(interleaved, stores, tmp_path_factory, keys, name):
    step = max(1, keys // 1000)
    names = [_key(i) for i in range(0, keys, step)][:1000]

    def subjects():
        h, handle, env = _store(stores, keys, tmp_path_factory)
        return {
            "lexfast-handler": statement_loop("for k in names:\n    _r = d('kv', 'get', [handle, k])",
                                      inner=1, d=h.dispatch, handle=handle, names=names),
            "raw-lmdb": statement_loop(
                "for k in names:\n    with begin() as txn:\n        _r = txn.get(k)", inner=1,
                begin=env.begin, names=[k.encode() for k in names]),
        }
    r = interleaved(f"scale-kv-{keys}", subjects, name, inner=len(names))
    assert r == (some(VALUE) if name == "lexfast-handler" else VALUE)


# -- threads --------------------------------------------------------------------------------

PER_THREAD = 5000


def _threaded(n: int, make_loop):
    """A function running ``make_loop()`` on ``n`` threads at once."""
    loops = [make_loop() for _ in range(n)]

    def run():
        ts = [threading.Thread(target=loop) for loop in loops]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        if any(t.is_alive() for t in ts):
            raise RuntimeError("a benchmark thread did not finish")
    return run


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("name", ["lexfast-forks", "direct-call"])
def test_threads(interleaved, threads, name):
    def subjects():
        root = _handler_with(0)
        return {
            "lexfast-forks": _threaded(threads, lambda: statement_loop(
                "_r = d('bench', 'hot', args)", inner=PER_THREAD, d=root.fork().dispatch, args=[])),
            "direct-call": _threaded(threads, lambda: statement_loop(
                "_r = fn(h, args)", inner=PER_THREAD, fn=noop, h=root, args=[])),
        }
    interleaved(f"scale-threads-{threads}", subjects, name, inner=threads * PER_THREAD)
