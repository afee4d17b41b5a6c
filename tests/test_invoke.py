"""The closure hook: ``DefaultHandler(invoke=...)`` / ``with_invoke`` and
``handler.invoke_closure`` (what the closure-taking ops call)."""

from __future__ import annotations

import pytest

from lexfast import DefaultHandler, EffectError, Policy


class Closure:
    """A VM's closure value: opaque to the handler."""

    def __init__(self, fn):
        self.fn = fn


def vm_invoke(closure, handler, args):
    return closure.fn(handler, *args)


def test_no_hook_is_a_clear_error_naming_the_op():
    with DefaultHandler(Policy.pure()) as h:
        assert h.invoke is None
        with pytest.raises(EffectError, match=r"net\.serve_fn: .*DefaultHandler\(invoke=\.\.\.\)"):
            h.invoke_closure(Closure(lambda h: 1), [], op="net.serve_fn")


def test_hook_runs_the_closure_on_a_fork_with_the_args():
    seen = []

    def body(handler, a, b):
        seen.append(handler)
        return a + b

    with DefaultHandler(Policy.pure(), invoke=vm_invoke) as h:
        assert h.invoke is vm_invoke
        assert h.invoke_closure(Closure(body), [2, 3]) == 5
        assert seen[0] is not h and seen[0].session is h.session
        assert h.invoke_closure(Closure(body), (1, 1), fork=False) == 2
        assert seen[1] is h


def test_the_fork_shares_the_budget_and_policy():
    def spend(handler):
        handler.note_call_budget(7)
        return handler.budget_remaining

    with DefaultHandler(Policy.pure().replace(budget=10), invoke=vm_invoke) as h:
        assert h.invoke_closure(Closure(spend), []) == 3
        assert h.budget_remaining == 3


def test_what_the_closure_raises_propagates():
    def boom(handler):
        raise ValueError("from the program")

    with DefaultHandler(Policy.pure(), invoke=vm_invoke) as h, \
            pytest.raises(ValueError, match="from the program"):
        h.invoke_closure(Closure(boom), [])


def test_builder_and_bad_hooks():
    with DefaultHandler(Policy.pure()) as h:
        assert h.with_invoke(vm_invoke) is h and h.invoke is vm_invoke
        assert h.fork().invoke is vm_invoke
        h.with_invoke(None)
        assert h.invoke is None
        with pytest.raises(TypeError, match="invoke must be callable"):
            h.with_invoke(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="invoke must be callable"):
        DefaultHandler(Policy.pure(), invoke="nope")  # type: ignore[arg-type]


def test_closed_handler_refuses():
    h = DefaultHandler(Policy.pure(), invoke=vm_invoke)
    h.close()
    with pytest.raises(EffectError, match="closed"):
        h.invoke_closure(Closure(lambda h: 1), [])
