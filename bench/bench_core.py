"""The dispatch path, the budget pool and the registry, side by side:
compiled core vs the pure-Python twin vs what a user would otherwise write.

Run: pytest bench/bench_core.py --benchmark-enable
"""

from __future__ import annotations

import collections
import importlib
import operator
import threading
import types

import pytest

import lexfast
from lexfast import DefaultHandler, EffectError, Policy, PolicyDenied
from lexfast.kernel import _py as _twin
from lexfast.table import default_table

try:
    _core = importlib.import_module("lexfast.kernel._c")
except ImportError:  # pragma: no cover - no compiled core: compare the twin only
    _core = None

try:
    from lru import LRU
except ImportError:  # pragma: no cover
    LRU = None

RATIO_TARGETS = [
    # (group, subject, baseline, max subject/baseline median)
    ("dispatch-pure", "test_dispatch_pure[compiled]", "test_dispatch_pure[direct-call]", 2.5),
    ("budget", "test_note_call_budget[compiled]", "test_note_call_budget[len]", 2.0),
    ("registry-touch", "test_registry_touch[compiled]", "test_registry_touch[lru-dict]", 1.0),
    # Dispatch cost alone: both sides minus calling the (no-op) effect directly.
    ("dispatch-later-arm", "test_dispatch_later_arm[compiled]",
     "test_dispatch_later_arm[if-elif-port]", 0.1, "test_dispatch_later_arm[direct-call]"),
]

IMPLS = ["compiled", "twin"] if _core is not None else ["twin"]


def strlen(args):
    return len(args[0])


def noop(h, args):
    return None


def noop1(args):
    return None


# -- handlers over either core -------------------------------------------------------

def core_handler(name, policy, pure=None, rows=None):
    """A handler on the chosen core, with that core's own Row objects, so the
    twin is measured as a whole (not the compiled Row behind a twin dispatch)."""
    impl = _core if name == "compiled" else _twin
    table = default_table().with_rows(rows or [])
    ops = {k: {o: impl.Row(k, o, r.gate, r.fn, r.index) for o, r in d.items()}
           for k, d in table.ops.items()}
    wild = {k: impl.Row(k, "*", r.gate, r.fn, r.index) for k, r in table.wildcards.items()}
    effects = types.SimpleNamespace(ops=ops, wildcards=wild)

    class H(impl.HandlerCore):
        pass

    h = H()
    h.session = DefaultHandler(policy).session
    pure_tbl = None
    if pure:
        pure_tbl = {}
        for (k, o), fn in pure.items():
            pure_tbl.setdefault(k, {})[o] = fn
    h._setup(policy, effects, impl.BudgetPool(policy.budget), pure_tbl)
    return h


# -- the reference's dispatch, ported the way a user would write it --------------------

_PURE_MODULES = {"str", "int", "float", "bool", "list", "option", "result", "tuple", "json",
                 "bytes", "flow", "math", "map", "set", "crypto", "regex", "deque", "datetime",
                 "http", "toml", "yaml", "dotenv", "csv", "test", "random", "parser", "cli"}
_NOT_PURE = {("crypto", "random"), ("datetime", "now"), ("http", "send"), ("http", "get"),
             ("http", "post")}


class PortHandler:
    """``handler.rs``'s ``dispatch`` as an if/elif + match port."""

    def __init__(self, allow_effects, impls, pure=None):
        self.allow_effects = set(allow_effects)
        self.impls = impls
        self.pure = pure or {}

    def ensure_kind_allowed(self, kind):
        if kind not in self.allow_effects:
            raise PolicyDenied(f"effect `{kind}` not in --allow-effects", effect=kind)

    def try_pure_builtin(self, kind, op, args):
        if kind not in _PURE_MODULES or (kind, op) in _NOT_PURE:
            return None
        fn = self.pure.get((kind, op))
        if fn is None:
            raise EffectError(f"unknown pure builtin: {kind}.{op}")
        return (fn(args),)

    def dispatch(self, kind, op, args):
        r = self.try_pure_builtin(kind, op, args)
        if r is not None:
            return r[0]
        if kind == "process":
            self.ensure_kind_allowed("proc")
            return self.impls[(kind, op)](args)
        if kind == "log":
            self.ensure_kind_allowed("log" if op in ("debug", "info", "warn", "error") else "io")
            return self.impls[(kind, op)](args)
        if kind == "fs":
            self.ensure_kind_allowed("fs_walk")
            return self.impls[(kind, op)](args)
        if kind == "datetime" and op == "now":
            self.ensure_kind_allowed("time")
            return self.impls[(kind, op)](args)
        if kind == "crypto" and op == "random":
            self.ensure_kind_allowed("random")
            return self.impls[(kind, op)](args)
        if kind == "agent":
            self.ensure_kind_allowed("mcp")
            return self.impls[(kind, op)](args)
        if kind == "http" and op in ("send", "get", "post"):
            self.ensure_kind_allowed("net")
            return self.impls[(kind, op)](args)
        self.ensure_kind_allowed(kind)
        impls = self.impls
        match (kind, op):
            case ("io", "print"):
                return impls[("io", "print")](args)
            case ("io", "read"):
                return impls[("io", "read")](args)
            case ("io", "write"):
                return impls[("io", "write")](args)
            case ("time", "now"):
                return impls[("time", "now")](args)
            case ("time", "sleep_ms"):
                return impls[("time", "sleep_ms")](args)
            case ("rand", "int_in"):
                return impls[("rand", "int_in")](args)
            case ("env", "get"):
                return impls[("env", "get")](args)
            case ("budget", _):
                return None
            case ("net", "get"):
                return impls[("net", "get")](args)
            case ("net", "post"):
                return impls[("net", "post")](args)
            case ("net", "serve"):
                return impls[("net", "serve")](args)
            case ("net", "serve_tls"):
                return impls[("net", "serve_tls")](args)
            case ("net", "serve_ws"):
                return impls[("net", "serve_ws")](args)
            case ("chat", "broadcast"):
                return impls[("chat", "broadcast")](args)
            case ("chat", "send"):
                return impls[("chat", "send")](args)
            case ("kv", "open"):
                return impls[("kv", "open")](args)
            case ("kv", "close"):
                return impls[("kv", "close")](args)
            case ("kv", "get"):
                return impls[("kv", "get")](args)
            case ("kv", "put"):
                return impls[("kv", "put")](args)
            case ("kv", "delete"):
                return impls[("kv", "delete")](args)
            case ("kv", "contains"):
                return impls[("kv", "contains")](args)
            case ("kv", "list_prefix"):
                return impls[("kv", "list_prefix")](args)
            case ("sql", "open"):
                return impls[("sql", "open")](args)
            case ("sql", "close"):
                return impls[("sql", "close")](args)
            case ("sql", "exec"):
                return impls[("sql", "exec")](args)
            case ("sql", "query"):
                return impls[("sql", "query")](args)
            case ("proc", "spawn"):
                return impls[("proc", "spawn")](args)
            case _:
                raise EffectError(f"unsupported effect {kind}.{op}")


def _time_now(args):
    return lexfast.effects.clock.time_now(None, args)


import lexfast.effects.clock  # noqa: E402

PORT_IMPLS = collections.defaultdict(lambda: noop1, {("time", "now"): _time_now})
TIME = Policy(allow_effects=["time"])


# -- dispatch --------------------------------------------------------------------------

@pytest.mark.parametrize("name", IMPLS + ["if-elif-port"])
def test_dispatch_time_now(benchmark, name):
    benchmark.group = "dispatch-time-now"
    h = PortHandler(["time"], PORT_IMPLS) if name == "if-elif-port" else core_handler(name, TIME)
    assert benchmark(h.dispatch, "time", "now", []) > 0


@pytest.mark.parametrize("name", IMPLS + ["if-elif-port"])
def test_dispatch_denied(benchmark, name):
    benchmark.group = "dispatch-denied"
    h = PortHandler([], PORT_IMPLS) if name == "if-elif-port" else core_handler(name, Policy())

    def denied():
        try:
            h.dispatch("net", "get", ["http://x/"])
        except PolicyDenied:
            return True
        return False

    assert benchmark(denied)


@pytest.mark.parametrize("name", IMPLS + ["if-elif-port", "direct-call"])
def test_dispatch_pure(benchmark, name):
    benchmark.group = "dispatch-pure"
    args = ["hello"]
    if name == "direct-call":
        assert benchmark(strlen, args) == 5
        return
    if name == "if-elif-port":
        h = PortHandler([], PORT_IMPLS, pure={("str", "len"): strlen})
    else:
        h = core_handler(name, Policy(), pure={("str", "len"): strlen})
    assert benchmark(h.dispatch, "str", "len", args) == 5


@pytest.mark.parametrize("name", IMPLS + ["if-elif-port", "direct-call"])
def test_dispatch_later_arm(benchmark, name):
    """The reference's last arm (proc.spawn), with a no-op effect behind it so
    only the dispatch is measured."""
    benchmark.group = "dispatch-later-arm"
    args = ["true", []]
    if name == "direct-call":
        assert benchmark(noop, None, args) is None
        return
    if name == "if-elif-port":
        h = PortHandler(["proc"], PORT_IMPLS)
    else:
        h = core_handler(name, Policy(allow_effects=["proc"]),
                         rows=[("proc", "spawn", "proc", noop)])
    assert benchmark(h.dispatch, "proc", "spawn", args) is None


# -- the budget pool ------------------------------------------------------------------

class LockCounter:
    def __init__(self, ceiling):
        self.lock = threading.Lock()
        self.remaining = ceiling

    def note_call_budget(self, cost):
        with self.lock:
            if cost > self.remaining:
                raise RuntimeError("budget exceeded")
            self.remaining -= cost


@pytest.mark.parametrize("name", IMPLS + ["threading-lock", "len"])
def test_note_call_budget(benchmark, name):
    benchmark.group = "budget"
    if name == "len":
        x = [1, 2, 3]
        benchmark(len, x)
        return
    big = 1 << 62
    h = LockCounter(big) if name == "threading-lock" else core_handler(name, Policy(budget=big))
    benchmark(h.note_call_budget, 1)


# -- the registry -------------------------------------------------------------------------

def _registry(name, cap):
    if name == "compiled":
        return _core.LRURegistry(cap)
    if name == "twin":
        return _twin.LRURegistry(cap)
    if name == "lru-dict":
        if LRU is None:
            pytest.skip("lru-dict not installed")
        return LRU(cap)
    return collections.OrderedDict()


REG_IMPLS = IMPLS + ["lru-dict", "ordereddict"]


@pytest.mark.parametrize("name", REG_IMPLS)
def test_registry_touch(benchmark, name):
    benchmark.group = "registry-touch"
    r = _registry(name, 256)
    for i in range(256):
        if name in ("compiled", "twin"):
            r.insert(i, i)
        else:
            r[i] = i
    if name == "ordereddict":
        def touch(k, od=r):
            od.move_to_end(k)
            return od[k]
        assert benchmark(touch, 17) == 17
    else:
        assert benchmark(operator.getitem, r, 17) == 17  # what ``reg[h]`` costs


@pytest.mark.parametrize("name", REG_IMPLS)
def test_registry_insert_evict(benchmark, name):
    benchmark.group = "registry-insert-evict"
    r = _registry(name, 256)
    counter = iter(range(1 << 62))
    if name in ("compiled", "twin"):
        def op():
            r.insert(next(counter), None)
    elif name == "lru-dict":
        def op():
            r[next(counter)] = None
    else:
        def op():
            r[next(counter)] = None
            if len(r) > 256:
                r.popitem(last=False)
    benchmark(op)


@pytest.mark.parametrize("name", REG_IMPLS)
def test_registry_remove(benchmark, name):
    benchmark.group = "registry-insert-remove"
    r = _registry(name, 256)
    if name in ("compiled", "twin"):
        def op():
            r.insert(1, None)
            r.remove(1)
    else:
        def op():
            r[1] = None
            del r[1]
    benchmark(op)


# -- statistics -------------------------------------------------------------------------

DIFF_TARGETS = [
    # (group, subject, baseline, max extra nanoseconds per call, medians)
    ("stats-counting", "test_dispatch_counting[compiled-counting]",
     "test_dispatch_counting[compiled-no-stats]", 5.0),
]


@pytest.mark.parametrize("name", [f"{i}-{m}" for i in IMPLS for m in ("no-stats", "counting", "timing")])
def test_dispatch_counting(benchmark, name):
    """What the always-on counters (and opt-in timing) add to one dispatch."""
    benchmark.group = "stats-counting"
    impl, _, mode = name.partition("-")
    table = default_table().with_rows([("proc", "spawn", "proc", noop)])
    h = DefaultHandler(Policy(allow_effects=["proc"]), table=table,
                       stats=mode != "no-stats", timing=mode == "timing")
    if impl == "twin":
        h = core_handler("twin", Policy(allow_effects=["proc"]), rows=[("proc", "spawn", "proc", noop)])
        if mode != "no-stats":
            h._setup(h._policy, h._effects, h._pool, h._pure,
                     _twin.Stats(len(table.names), mode == "timing"))
    args = ["true", []]
    assert benchmark(h.dispatch, "proc", "spawn", args) is None
