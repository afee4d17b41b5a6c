"""lexfast: the Lex language's effect handler for Python VMs.

A VM calls ``handler.dispatch(kind, op, args)`` for every effect its program
performs and ``handler.note_call_budget(cost)`` before every costed call; the
handler checks the run's capability policy and performs the effect.
"""

from ._version import __version__
from .errors import BudgetExceeded, EffectError, PolicyDenied, ReplayDivergence
from .handler import CapturedSink, DefaultHandler, Limits, StderrSink, StdoutSink
from .kernel import COMPILED, NONE, LRURegistry, Variant, err, ok, some
from .policy import KNOWN_EFFECTS, Policy
from .table import EffectTable
from .values import Deque, LexValue, Map, Set, Table

__all__ = [
    "COMPILED", "KNOWN_EFFECTS", "NONE", "BudgetExceeded", "CapturedSink", "DefaultHandler",
    "Deque", "EffectError", "EffectTable", "LRURegistry", "LexValue", "Limits", "Map", "Policy",
    "PolicyDenied", "ReplayDivergence", "Set", "StderrSink", "StdoutSink", "Table", "Variant", "__version__", "err",
    "ok", "some",
]
