"""The standard library's pure builtins as a whole (lexfast/builtins/): they
are answered before the effect table, ungated, and a VM's own ``pure=``
registrations win. Each group's semantics are tested in
``tests/test_builtins_<group>.py``."""

from __future__ import annotations

import pytest

from lexfast import DefaultHandler, EffectError, Policy, PolicyDenied
from lexfast import builtins as B


def test_every_builtin_kind_is_a_reference_pure_module():
    assert set(B.TABLE) <= set(B.PURE_MODULES)
    for kind, ops in B.TABLE.items():
        for op, fn in ops.items():
            assert callable(fn), f"{kind}.{op}"


def test_builtins_are_answered_without_any_grant():
    h = DefaultHandler(Policy.pure())
    try:
        for name in B.names():
            kind, op = name.split(".", 1)
            try:
                h.dispatch(kind, op, [])
            except PolicyDenied as e:  # pragma: no cover - the bug this guards
                pytest.fail(f"{name} was gated: {e}")
            except EffectError:
                pass  # an argument error: the builtin ran
    finally:
        h.close()


def test_a_vm_registration_wins_over_a_builtin():
    if not B.TABLE:
        pytest.skip("no builtins yet")
    kind = next(iter(B.TABLE))
    op = next(iter(B.TABLE[kind]))
    h = DefaultHandler(Policy.pure(), pure={(kind, op): lambda args: "mine"})
    try:
        assert h.dispatch(kind, op, []) == "mine"
    finally:
        h.close()


def test_an_effect_of_a_pure_module_is_still_gated():
    # crypto.random and datetime.now are effects in the reference (is_pure_call)
    h = DefaultHandler(Policy.pure())
    try:
        for kind, op, args in (("crypto", "random", [4]), ("datetime", "now", [])):
            assert not B.is_pure_call(kind, op)
            with pytest.raises(PolicyDenied):
                h.dispatch(kind, op, args)
    finally:
        h.close()


@pytest.mark.parametrize("x, text", [
    (1.0, "1.0"), (0.1, "0.1"), (1e20, "1e20"), (1e16, "1e16"), (1e15, "1000000000000000.0"),
    (1.5e-7, "1.5e-7"), (1e-4, "0.0001"), (9.9e-5, "9.9e-5"), (-2.5e-10, "-2.5e-10"),
    (float("nan"), "NaN"), (float("inf"), "inf"), (-0.0, "-0.0"), (1e300, "1e300"),
    (5e-324, "5e-324"),
])
def test_floats_in_messages_render_as_rust_debug(x, text):
    # checked against rustc's `{:?}` for f64: argument errors quote values so
    from lexfast.values import debug_repr
    assert debug_repr(x) == f"Float({text})"
