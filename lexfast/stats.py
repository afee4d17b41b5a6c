"""Views of a session's effect counters (``handler.stats()``).

numpy is imported here, lazily: ``import lexfast`` never pays for it.
"""

from __future__ import annotations

from .errors import EffectError

STAT_FIELDS = ("calls", "denials", "errors", "total_ns", "max_ns")

_dtype = None


def _numpy():
    try:
        import numpy
    except ImportError:
        raise EffectError("handler.stats() needs numpy (pip install 'lexfast[stats]'); "
                          "handler.stats_table() works without it") from None
    return numpy


def dtype():
    global _dtype
    if _dtype is None:
        np = _numpy()

        _dtype = np.dtype([(f, "=i8") for f in STAT_FIELDS])
    return _dtype


def view(counters):
    """A read-only structured array over ``counters`` (a kernel ``Stats``),
    sharing its memory: later dispatches show up in it."""
    np = _numpy()

    arr = np.frombuffer(counters.memoryview(), dtype=dtype())
    arr.flags.writeable = False
    return arr


def format_table(rows: list[dict]) -> str:
    """``handler.stats_table()`` as aligned text (``lexfast run --stats``)."""
    if not rows:
        return "no effects dispatched"
    head = ("effect", "calls", "denials", "errors", "total_ms", "max_us")
    body = [(r["effect"], str(r["calls"]), str(r["denials"]), str(r["errors"]),
             f"{r['total_ns'] / 1e6:.3f}", f"{r['max_ns'] / 1e3:.1f}") for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [head, *body]]
    return "\n".join(lines)
