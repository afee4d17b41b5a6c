"""The dispatch paths that are not hot, shared by the compiled core and the
twin so both report the same errors: a miss in the effect table, a denial,
an argument list of the wrong type, an effect that raised something other
than ``EffectError``. Part of the kernel: imports only the leaves."""

from __future__ import annotations

from ..errors import EffectError, PolicyDenied
from ..kinds import KIND_BIT
from ..values import debug_repr

# Families whose unknown ops fail before any gate, and ``process``, whose
# unknown ops fail after the ``proc`` gate (the reference's order).
UNKNOWN_OP_BEFORE_GATE = {"fs": "unsupported fs.{op}", "log": "unsupported log.{op}",
                           "agent": "unsupported agent.{op}"}
_UNKNOWN_OP_AFTER_GATE = {"process": ("proc", "unsupported process.{op}")}


def denied(gate, policy) -> PolicyDenied:
    for k in gate:
        if k not in policy.allow_effects:
            return PolicyDenied(f"effect `{k}` not in --allow-effects", effect=k)
    return PolicyDenied("effect denied by policy")  # pragma: no cover - mask out of step


def coerce_args(args) -> list:
    if isinstance(args, (list, tuple)):
        try:
            # the base types' own iteration: a subclass's __iter__ is not run
            return list.copy(args) if isinstance(args, list) else list(tuple.__iter__(args))
        except Exception:
            pass
    raise EffectError(f"dispatch: args must be a List, got {debug_repr(args)}")


def _as_name(what: str, v) -> str:
    if isinstance(v, str):
        return str.__str__(v)  # the characters, never a subclass's __str__
    raise EffectError(f"dispatch: {what} must be Str, got {debug_repr(v)}")


def internal_error(kind, op, e: BaseException) -> EffectError:
    try:
        detail = f"{type(e).__name__}: {e}"
    except Exception:
        detail = type(e).__name__
    if len(detail) > 500:
        detail = detail[:500] + "…"
    return EffectError(f"{kind}.{op}: internal error: {detail}")


def dispatch_miss(handler, effects, kind, op, args):
    """``(kind, op)`` has no row (nor a wildcard row the core serves): a str
    subclass, or an unsupported op, reported in the reference's order."""
    kind = _as_name("kind", kind)
    op = _as_name("op", op)
    ops = effects.ops.get(kind)
    if ops is not None and op in ops:  # it was a str subclass
        return handler.dispatch(kind, op, args)
    policy = handler.policy
    if policy is None:
        raise EffectError("handler is not initialised (DefaultHandler.__init__ was not run)")
    message = UNKNOWN_OP_BEFORE_GATE.get(kind)
    if message is not None:
        raise EffectError(message.format(op=op))
    if kind in effects.wildcards:  # a str subclass: the core serves the wildcard row
        return handler.dispatch(kind, op, args)
    if kind not in KIND_BIT and kind not in _UNKNOWN_OP_AFTER_GATE:
        # No policy can grant this kind, so a denial would mislead (the
        # reference answers "effect `frob` not in --allow-effects", as if a
        # grant could help): a kind nothing serves is a typo or a missing row,
        # said so under every policy; a served kind lacks this op.
        pure = handler._pure
        if kind not in effects.ops and (pure is None or kind not in pure):
            raise EffectError(f"unknown effect kind `{kind}`")
        raise EffectError(f"unsupported effect {kind}.{op}")
    gate_kind, message = _UNKNOWN_OP_AFTER_GATE.get(kind, (kind, "unsupported effect {kind}.{op}"))
    if gate_kind not in policy.allow_effects:
        raise PolicyDenied(f"effect `{gate_kind}` not in --allow-effects", effect=gate_kind)
    raise EffectError(message.format(kind=kind, op=op))
