"""The dispatch path's caches and fast entry (issue 16.2): dispatch is the
policy gate, so whatever the compiled core remembers between calls must never
let a refused call through, nor call the wrong function, after a policy
change, in a fork with a narrower policy, after a re-registration, across
cache collisions or under threads. Every check dispatches the same ``(kind,
op)`` objects several times, so the first (resolving) call and the later
(cached) ones are both exercised; the suite runs on both cores.
"""

from __future__ import annotations

import inspect
import pickle
import sys
import threading

import pytest

from lexfast import DefaultHandler, EffectError, Policy, PolicyDenied
from lexfast.table import default_table

REPEAT = 4  # a miss, then hits


def echo(h, args):
    return ("effect", args[0] if args else None)


def _table(n_kinds=1, n_ops=1, gates=("time",)):
    """Synthetic rows ``k{i}.op{j}`` gated on ``gates[(i + j) % len(gates)]``,
    each returning its own name."""
    rows = []
    for i in range(n_kinds):
        for j in range(n_ops):
            name = f"k{i}.op{j}"
            rows.append((f"k{i}", f"op{j}", gates[(i + j) % len(gates)],
                         lambda h, a, name=name: name))
    return default_table().with_rows(rows)


def _repolicy(h, policy):
    """Change a handler's policy the one way there is: ``_setup`` again."""
    h._setup(policy, h._effects, h._pool, h._pure, h._stats)


def test_policy_change_refuses_a_cached_row(make_handler):
    h = make_handler(effects=["time"])
    for _ in range(REPEAT):
        assert h.dispatch("time", "now", []) > 0
    _repolicy(h, Policy.pure())
    for _ in range(REPEAT):
        with pytest.raises(PolicyDenied) as e:
            h.dispatch("time", "now", [])
        assert e.value.effect == "time"
    _repolicy(h, Policy(allow_effects=["time"]))
    for _ in range(REPEAT):
        assert h.dispatch("time", "now", []) > 0


def test_fork_with_a_narrower_policy(make_handler):
    parent = make_handler(effects=["time", "random"])
    for _ in range(REPEAT):
        assert parent.dispatch("time", "now", []) > 0
    child = parent.fork()
    for _ in range(REPEAT):
        assert child.dispatch("time", "now", []) > 0  # the fork starts from the same policy
    _repolicy(child, Policy(allow_effects=["random"]))
    for _ in range(REPEAT):  # interleaved: each handler its own gate
        with pytest.raises(PolicyDenied):
            child.dispatch("time", "now", [])
        assert parent.dispatch("time", "now", []) > 0
        grandchild = child.fork()
        with pytest.raises(PolicyDenied):
            grandchild.dispatch("time", "now", [])


def test_reregistration_is_seen_at_once(make_handler):
    h = make_handler()
    h.register_pure("vm", "f", lambda a: 1)
    for _ in range(REPEAT):
        assert h.dispatch("vm", "f", []) == 1
    h.register_pure("vm", "f", lambda a: 2)
    for _ in range(REPEAT):
        assert h.dispatch("vm", "f", []) == 2
    # a pure builtin registered over a cached effect row wins (the VM's choice)
    h2 = make_handler(effects=["time"])
    for _ in range(REPEAT):
        assert h2.dispatch("time", "now", []) > 0
    h2.register_pure("time", "now", lambda a: -1)
    for _ in range(REPEAT):
        assert h2.dispatch("time", "now", []) == -1


def test_a_table_swap_regates_a_cached_op(make_handler):
    h = make_handler(effects=["time"])
    for _ in range(REPEAT):
        assert h.dispatch("time", "now", []) > 0
    stricter = default_table().with_rows([("time", "now", "net", echo)])
    h._setup(h._policy, stricter, h._pool, h._pure, None)
    for _ in range(REPEAT):
        with pytest.raises(PolicyDenied) as e:
            h.dispatch("time", "now", [])
        assert e.value.effect == "net"


def test_collisions_and_evictions_never_mix_ops(make_handler):
    """Far more ops than the cache has slots, allowed and refused ones mixed,
    in several orders: every call gets its own row and its own gate."""
    table = _table(n_kinds=40, n_ops=30, gates=("time", "net"))
    h = make_handler(effects=["time"], table=table)
    names = [(f"k{i}", f"op{j}") for i in range(40) for j in range(30)]
    orders = [names, names[::-1], names[::7] + names[1::7] + names[2::7] + names[3::7]]
    for order in orders * 2:
        for kind, op in order:
            i, j = int(kind[1:]), int(op[2:])
            if (i + j) % 2 == 0:
                assert h.dispatch(kind, op, []) == f"{kind}.{op}"
            else:
                with pytest.raises(PolicyDenied):
                    h.dispatch(kind, op, [])


def test_equal_names_that_are_other_objects(make_handler):
    h = make_handler(effects=["time"], table=_table())
    for _ in range(REPEAT):
        kind = "".join(["k", "0"])  # equal, never the same object twice
        op = "".join(["op", "0"])
        assert h.dispatch(kind, op, []) == "k0.op0"
        assert h.dispatch(sys.intern(kind), sys.intern(op), []) == "k0.op0"

    class S(str):
        pass

    for _ in range(REPEAT):
        assert h.dispatch(S("k0"), S("op0"), []) == "k0.op0"
        assert h.dispatch("k0", "op0", ("tuple",)) == "k0.op0"


def test_pure_builtin_replacing_the_cache_during_its_call(make_handler):
    """A pure builtin that dispatches many other ops (evicting its own slot)
    and re-registers builtins (emptying the cache) while it runs."""
    table = _table(n_kinds=20, n_ops=20)
    h = make_handler(effects=["time"], table=table)
    count = []

    def busy(args):
        for i in range(20):
            for j in range(20):
                assert h.dispatch(f"k{i}", f"op{j}", []) == f"k{i}.op{j}"
        h.register_pure("vm", "other", lambda a: len(count))
        count.append(1)
        return args[0]

    h.register_pure("vm", "busy", busy)
    for n in range(REPEAT):
        assert h.dispatch("vm", "busy", [n]) == n
        assert h.dispatch("vm", "other", []) == n + 1


def test_errors_on_the_cached_path(make_handler):
    def boom(h, args):
        raise ZeroDivisionError("nope")

    def refuse(h, args):
        raise EffectError("time.now: no")

    table = default_table().with_rows([("time", "now", "time", boom),
                                       ("time", "sleep_ms", "time", refuse)])
    h = make_handler(effects=["time"], table=table,
                     pure={("vm", "div"): lambda a: 1 / 0, ("vm", "kb"): _interrupt})
    for _ in range(REPEAT):
        with pytest.raises(EffectError, match=r"^time\.now: internal error: ZeroDivisionError: nope$") as e:
            h.dispatch("time", "now", [])
        assert isinstance(e.value.__cause__, ZeroDivisionError)
        assert e.value.__cause__.__traceback__ is not None
        with pytest.raises(EffectError, match=r"^time\.now: no$") as e:
            h.dispatch("time", "sleep_ms", [1])
        assert type(e.value) is EffectError
        with pytest.raises(EffectError, match=r"^vm\.div: internal error: ZeroDivisionError") as e:
            h.dispatch("vm", "div", [])
        assert isinstance(e.value.__cause__, ZeroDivisionError)
        with pytest.raises(KeyboardInterrupt):  # not an Exception: goes on as it is
            h.dispatch("vm", "kb", [])
    row = h.stats_names().index("time.now")
    assert h.stats()[row]["errors"] == REPEAT


def _interrupt(args):
    raise KeyboardInterrupt


def test_refusals_on_the_cached_path(make_handler):
    h = make_handler()
    for _ in range(REPEAT):
        with pytest.raises(PolicyDenied, match=r"^effect `net` not in --allow-effects$") as e:
            h.dispatch("net", "get", ["http://127.0.0.1:9/"])
        assert type(e.value) is PolicyDenied and e.value.effect == "net"
        assert e.value.path is None and e.value.host is None and e.value.cmd is None
        assert e.value.__traceback__ is not None
        assert e.value.__dict__ == {}  # the attributes are slots, all four set
        back = pickle.loads(pickle.dumps(e.value))
        assert str(back) == str(e.value) and back.effect == "net"
    row = h.stats_names().index("net.get")
    assert h.stats()[row]["calls"] == REPEAT and h.stats()[row]["denials"] == REPEAT


def test_call_forms(make_handler):
    h = make_handler(effects=["time"])
    assert list(inspect.signature(h.dispatch).parameters) == ["kind", "op", "args"]
    assert "pure builtin first" in type(h).dispatch.__doc__
    for _ in range(REPEAT):
        assert h.dispatch(kind="time", op="now", args=[]) > 0
        assert h.dispatch("time", "now", args=[]) > 0
        assert type(h).dispatch(h, "time", "now", []) > 0
    with pytest.raises(TypeError):
        h.dispatch("time", "now")
    with pytest.raises(TypeError):
        h.dispatch("time", "now", [], 1)
    with pytest.raises(TypeError):
        h.dispatch(*range(9))
    with pytest.raises(TypeError):
        h.dispatch("time", "now", [], bogus=1)


def test_threads_dispatching_while_the_policy_flips():
    """Threads dispatch allowed and refused ops on their own forks while one
    fork's policy flips: every result belongs to its op, every refusal to a
    refused op, on every fork."""
    table = _table(n_kinds=8, n_ops=40, gates=("time", "net"))
    root = DefaultHandler(Policy(allow_effects=["time"]), table=table)
    names = [(f"k{i}", f"op{j}") for i in range(8) for j in range(40)]
    errors = []
    stop = threading.Event()
    flipper = root.fork()

    def work(h, k):
        try:
            for _ in range(30):
                for kind, op in names[k::3]:
                    i, j = int(kind[1:]), int(op[2:])
                    if (i + j) % 2 == 0:
                        assert h.dispatch(kind, op, []) == f"{kind}.{op}"
                    else:
                        with pytest.raises(PolicyDenied):
                            h.dispatch(kind, op, [])
        except BaseException as e:  # reported below
            errors.append(e)

    def flip():
        try:
            while not stop.is_set():
                _repolicy(flipper, Policy.pure())
                for kind, op in names[::5]:
                    with pytest.raises(PolicyDenied):
                        flipper.dispatch(kind, op, [])
                _repolicy(flipper, Policy(allow_effects=["time", "net"]))
                for kind, op in names[::5]:
                    assert flipper.dispatch(kind, op, []) == f"{kind}.{op}"
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(root.fork(), k)) for k in range(3)]
    flip_thread = threading.Thread(target=flip)
    flip_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    flip_thread.join(120)
    assert not any(t.is_alive() for t in threads + [flip_thread])
    assert not errors, errors[:3]
    root.close()
