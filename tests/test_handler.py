"""DefaultHandler: dispatch order, the gate, pure builtins, forks, budget."""

from __future__ import annotations

import threading

import pytest

import lexfast
from lexfast import (
    NONE,
    BudgetExceeded,
    CapturedSink,
    DefaultHandler,
    EffectError,
    EffectTable,
    Policy,
    PolicyDenied,
    Variant,
    ok,
)
from lexfast.table import default_table, effect_names


def test_public_api_names():
    for name in ("DefaultHandler", "Policy", "Variant", "Map", "ok", "err", "some", "NONE",
                 "EffectError", "PolicyDenied", "BudgetExceeded", "StdoutSink",
                 "CapturedSink", "KNOWN_EFFECTS", "COMPILED", "LRURegistry"):
        assert hasattr(lexfast, name), name
    assert isinstance(lexfast.COMPILED, bool)
    assert issubclass(PolicyDenied, EffectError) and issubclass(BudgetExceeded, EffectError)


def test_gate_message_and_fields(make_handler):
    h = make_handler()
    with pytest.raises(PolicyDenied) as e:
        h.dispatch("io", "print", ["hi"])
    assert str(e.value) == "effect `io` not in --allow-effects"
    assert e.value.effect == "io"


def test_gate_runs_before_argument_checks(make_handler):
    h = make_handler()
    with pytest.raises(PolicyDenied, match="`time`"):
        h.dispatch("time", "sleep_ms", ["x"])
    h = make_handler(effects=["time"])
    with pytest.raises(EffectError, match=r'^expected Int arg, got Str\("x"\)$'):
        h.dispatch("time", "sleep_ms", ["x"])


@pytest.mark.parametrize("kind,op,gate", [
    ("datetime", "now", "time"), ("crypto", "random", "random"), ("rand", "int_in", "random"),
    ("log", "info", "log"), ("log", "set_level", "io"), ("log", "set_sink", "io"),
    ("budget", "anything", "budget"), ("env", "get", "env"), ("time", "now", "time"),
])
def test_per_op_gates(make_handler, kind, op, gate):
    with pytest.raises(PolicyDenied) as e:
        make_handler(effects=["chat"]).dispatch(kind, op, [])
    assert e.value.effect == gate


def test_two_kind_gate_reports_first_missing(make_handler):
    h = make_handler(effects=["io"])
    with pytest.raises(PolicyDenied, match="`fs_write`"):
        h.dispatch("log", "set_sink", ["-"])


def test_unknown_ops_in_the_reference_order(make_handler):
    pure = make_handler()
    for kind in ("fs", "log", "agent"):
        with pytest.raises(EffectError, match=rf"^unsupported {kind}\.bogus$"):
            pure.dispatch(kind, "bogus", [])
    with pytest.raises(PolicyDenied, match="`proc`"):
        pure.dispatch("process", "bogus", [])
    with pytest.raises(EffectError, match=r"^unsupported process\.bogus$"):
        make_handler(effects=["proc"]).dispatch("process", "bogus", [])
    with pytest.raises(EffectError, match=r"^unsupported effect time\.warp$"):
        make_handler(effects=["time"]).dispatch("time", "warp", [])


def test_unknown_kind_is_its_own_error_under_every_policy(make_handler):
    # Deliberately not the reference's "effect `frob` not in --allow-effects":
    # no grant could make it work, so a denial would send the user to the policy.
    for effects in ([], ["io"], list(lexfast.KNOWN_EFFECTS)):
        h = make_handler(effects=effects)
        for kind, op in (("frob", "x"), ("nosuch", "op"), ("custom", "op")):
            with pytest.raises(EffectError, match=rf"^unknown effect kind `{kind}`$") as e:
                h.dispatch(kind, op, [])
            assert not isinstance(e.value, PolicyDenied)
        # a kind with rows (gated on another kind) or pure builtins but not this op
        for kind in ("http", "str"):
            with pytest.raises(EffectError, match=rf"^unsupported effect {kind}\.frob$") as e:
                h.dispatch(kind, "frob", [])
            assert not isinstance(e.value, PolicyDenied)
    # a known kind still answers the reference's denial first
    with pytest.raises(PolicyDenied, match="`time`"):
        make_handler().dispatch("time", "warp", [])


def test_budget_wildcard(make_handler):
    assert make_handler(effects=["budget"]).dispatch("budget", "anything", []) is None
    with pytest.raises(PolicyDenied, match="`budget`"):
        make_handler().dispatch("budget", "anything", [])


def test_exact_string_gate_parameterised_grants_fail_closed(make_handler):
    # a parameterised grant is no kind: refused when the policy is built
    with pytest.raises(ValueError, match="unknown effect kind `time:fast`"):
        make_handler(effects=["time:fast"])


def test_pure_builtins_run_first_and_ungated(make_handler):
    calls = []

    def strlen(args):
        calls.append(args)
        return len(args[0])

    h = make_handler(pure={("str", "len"): strlen, ("time", "now"): lambda a: 42})
    assert h.dispatch("str", "len", ["abc"]) == 3
    assert h.dispatch("time", "now", []) == 42  # pure wins over the table, no gate
    assert calls == [["abc"]]
    with pytest.raises(EffectError, match=r"^unsupported effect str\.upper$"):
        h.dispatch("str", "upper", ["x"])
    h.register_pure("str", "upper", lambda a: a[0].upper())
    assert h.dispatch("str", "upper", ["x"]) == "X"
    assert h.fork().dispatch("str", "upper", ["y"]) == "Y"


def test_pure_table_validation():
    with pytest.raises(TypeError):
        DefaultHandler(pure={"str.len": len})
    with pytest.raises(TypeError):
        DefaultHandler(pure={("str", "len"): 3})


def test_bad_dispatch_arguments_are_effect_errors(make_handler):
    h = make_handler(effects=["io"])
    assert h.dispatch("io", "print", ("tuple ok",)) is None
    for kind, op, args in [(1, "print", []), ("io", None, []), ("io", "print", "x"),
                           ("io", "print", None), (b"io", "print", [])]:
        with pytest.raises(EffectError):
            h.dispatch(kind, op, args)

    class S(str):
        pass

    assert h.dispatch(S("io"), S("print"), ["sub"]) is None
    assert h.sink.lines == ["tuple ok", "sub"]


def test_internal_errors_become_effect_errors(make_handler):
    def boom(h, args):
        raise ZeroDivisionError("nope")

    table = default_table().with_rows([("time", "now", "time", boom)])
    h = make_handler(effects=["time"], table=table)
    with pytest.raises(EffectError, match=r"^time\.now: internal error: ZeroDivisionError: nope$"):
        h.dispatch("time", "now", [])
    h2 = make_handler(pure={("m", "f"): lambda a: 1 / 0})
    with pytest.raises(EffectError, match="internal error"):
        h2.dispatch("m", "f", [])


def test_table_override_and_names():
    t = default_table()
    assert ("io", "print") in t and len(t) > 10
    assert "budget.*" in effect_names() and "io.read" in effect_names()
    t2 = t.with_rows([("io", "print", "io", lambda h, a: "custom")])
    assert t.lookup("io", "print").fn is not t2.lookup("io", "print").fn
    with pytest.raises(TypeError):
        EffectTable([("a", "b", "io", 3)])
    with pytest.raises(ValueError):
        EffectTable([("a", "b", "not_a_kind", lambda h, a: None)])


def test_uninitialised_subclass_fails_cleanly():
    class Bad(DefaultHandler):
        def __init__(self):
            pass

    b = Bad()
    with pytest.raises(EffectError, match="not initialised"):
        b.dispatch("io", "print", ["x"])
    with pytest.raises(EffectError, match="not initialised"):
        b.note_call_budget(1)


def test_policy_must_be_a_policy():
    with pytest.raises(TypeError):
        DefaultHandler({"allow_effects": ["io"]})


# -- budget ----------------------------------------------------------------------

def test_note_call_budget_reference_cases(make_handler):
    h = make_handler(effects=lexfast.KNOWN_EFFECTS, budget=15)
    assert h.budget_ceiling == 15 and h.budget_remaining == 15
    h.note_call_budget(10)
    with pytest.raises(BudgetExceeded, match="^budget exceeded: requested 10, used so far 10, ceiling 15$"):
        h.note_call_budget(10)
    h.note_call_budget(5)
    with pytest.raises(BudgetExceeded, match="requested 1, used so far 15, ceiling 15"):
        h.note_call_budget(1)
    assert h.budget_remaining == 0
    unlimited = make_handler()
    for _ in range(1000):
        unlimited.note_call_budget(10)
    assert unlimited.budget_ceiling is None and unlimited.budget_remaining is None
    zero = make_handler(budget=0)
    zero.note_call_budget(0)


def test_note_call_budget_refuses_bad_costs(make_handler):
    h = make_handler(budget=10)
    for bad in (-1, 2.0, "1", None, True):
        with pytest.raises(EffectError):
            h.note_call_budget(bad)
    assert h.budget_remaining == 10
    with pytest.raises(BudgetExceeded):
        h.note_call_budget(1 << 80)
    make_handler().note_call_budget(1 << 80)


def test_budget_is_exact_under_contention_across_forks(make_handler):
    h = make_handler(budget=150_000)
    forks = [h.fork(), h.fork()]
    wins = [0, 0]
    refused = [0, 0]

    def spend(i):
        f = forks[i]
        for _ in range(100_000):
            try:
                f.note_call_budget(1)
                wins[i] += 1
            except BudgetExceeded:
                refused[i] += 1

    ts = [threading.Thread(target=spend, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(wins) == 150_000 and sum(refused) == 50_000
    assert h.budget_remaining == 0


# -- forks and sessions ------------------------------------------------------------

def test_fork_shares_session_policy_and_sink(make_handler):
    h = make_handler(effects=["io"], budget=5)
    f = h.fork()
    assert f.policy is h.policy and f.session is h.session and f.sink is h.sink
    f.dispatch("io", "print", ["from fork"])
    f.note_call_budget(3)
    assert h.budget_remaining == 2 and h.sink.lines == ["from fork"]
    assert isinstance(f, DefaultHandler)


def test_builders_return_the_handler(tmp_path):
    sink = CapturedSink()
    h = DefaultHandler(Policy(allow_effects=["io"]))
    assert h.with_sink(sink) is h and h.sink is sink
    assert h.with_read_root(tmp_path) is h and h.read_root == str(tmp_path.resolve())
    prog, runner = object(), (lambda *a: None)
    assert h.with_program(prog, runner) is h and h.program is prog and h.runner is runner
    with pytest.raises(TypeError):
        h.with_sink(object())
    h.close()


def test_close_releases_registries_and_is_idempotent():
    released = []
    with DefaultHandler(Policy()) as h:
        reg = h.session.registry("things", on_evict=lambda k, v: released.append(v))
        reg.insert(1, "a")
        reg.insert(2, "b")
        assert h.session.registry("things") is reg
    assert sorted(released) == ["a", "b"] and h.is_shutdown
    h.close()
    assert sorted(released) == ["a", "b"]
    with pytest.raises(EffectError, match="closed"):
        h.session.registry("new")


def test_shutdown_hooks_run_from_any_fork(make_handler):
    h = make_handler()
    hits = []
    h.session.on_shutdown(lambda: hits.append(1))
    h.fork().shutdown()
    assert hits == [1] and h.is_shutdown


def test_variants_returned_are_the_selected_core(make_handler):
    h = make_handler(effects=["env"])
    v = h.dispatch("env", "get", ["LEXFAST_SURELY_UNSET_VAR"])
    assert v == NONE and isinstance(v, Variant)
    assert ok(1) == Variant("Ok", (1,))
