"""Exceptions raised by ``dispatch`` where the reference returns ``Err(String)``.

Shared by the compiled core and the pure-Python twin, so a VM catches the same
classes whichever core is loaded.
"""

from __future__ import annotations

from typing import Any


class EffectError(Exception):
    """An effect failed in a way the VM must see as an aborted call.

    ``str(e)`` is the reference's message (``effect handler error: <msg>`` in
    the Rust VM shows the same ``<msg>``).
    """


class PolicyDenied(EffectError):
    """The run's capability policy refused the effect.

    ``effect`` names the kind the gate refused; ``path``, ``host`` and ``cmd``
    are set when a scope (not the kind) was the reason.
    """

    # Slots, not instance-dict entries: the compiled core fills them in place
    # when it refuses a call (include/lexfast/denied.h), the common case of a
    # refused call costing no dict. Every constructor sets all four.
    __slots__ = ("effect", "path", "host", "cmd")
    effect: str | None
    path: str | None
    host: str | None
    cmd: str | None

    def __init__(self, message: str, *, effect: str | None = None, path: str | None = None,
                 host: str | None = None, cmd: str | None = None) -> None:
        super().__init__(message)
        self.effect = effect
        self.path = path
        self.host = host
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_denied, (str(self), self.effect, self.path, self.host, self.cmd))


def _rebuild_denied(message: str, effect: str | None, path: str | None, host: str | None,
                    cmd: str | None) -> PolicyDenied:
    return PolicyDenied(message, effect=effect, path=path, host=host, cmd=cmd)


class BudgetExceeded(EffectError):
    """``note_call_budget`` would have overdrawn the run's budget pool."""

    def __init__(self, requested: int, used: int, ceiling: int) -> None:
        super().__init__(
            f"budget exceeded: requested {requested}, used so far {used}, ceiling {ceiling}")
        self.requested = requested
        self.used = used
        self.ceiling = ceiling

    def __reduce__(self) -> tuple[Any, ...]:
        return (BudgetExceeded, (self.requested, self.used, self.ceiling))


class BudgetPoolUnavailable(BudgetExceeded):
    """A distributed budget pool (``Policy(budget_pool=...)``) could not
    grant this process more units: its server was unreachable or failed. The
    call is refused (fail-closed: nothing is spent that the pool did not
    grant); ``requested``, ``used`` and ``ceiling`` as ``BudgetExceeded``'s,
    ``used`` counting what this process cannot account for."""

    def __init__(self, requested: int, used: int, ceiling: int, message: str) -> None:
        super().__init__(requested, used, ceiling)
        self.args = (message,)

    def __reduce__(self) -> tuple[Any, ...]:
        return (BudgetPoolUnavailable, (self.requested, self.used, self.ceiling, str(self)))


class ReplayDivergence(EffectError):
    """A replayed run made a call the trace did not record at that point
    (another kind, op or args, or a call past the trace's end). ``step`` is
    the trace's step number (``None`` past the end); ``recorded`` and
    ``actual`` are the two calls as text."""

    def __init__(self, message: str, *, step: int | None = None, recorded: str | None = None,
                 actual: str | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.recorded = recorded
        self.actual = actual
