"""Pure-Python twin of ``lexfast.kernel._c``.

Same names, same behaviour, same messages; selected with
``LEXFAST_NO_EXTENSIONS=1`` or wherever the compiled core could not be built.
The test suite runs every test against both (``tests/conftest.py``).
"""

from __future__ import annotations

import array
import binascii
import builtins
import ctypes
import errno
import itertools
import math
import os
import re
import sys
import threading
import time

from ..errors import BudgetExceeded, EffectError
from ..kinds import KIND_BIT
from ..values import (
    INT_MAX,
    INT_MIN,
    U64_MAX,
    Deque,
    Map,
    Set,
    debug_repr,
    register_variant_type,
)
from ._slow import UNKNOWN_OP_BEFORE_GATE, coerce_args, denied, dispatch_miss, internal_error

__all__ = [
    "COMPILED", "NONE", "BudgetPool", "HandlerCore", "LRURegistry", "Row", "Stats", "Variant",
    "err", "expect_bytes", "expect_handle", "expect_int", "expect_record", "expect_str",
    "expect_str_list", "next_handle", "ok", "openat2", "some",
    "RecordTap", "ReplayTap", "TraceBuffer", "TraceSteps", "strict_equal", "trace_call_line",
    "trace_call_lines",
]

COMPILED = False


# -- values -----------------------------------------------------------------

class Variant:
    """A Lex variant value: ``name`` and a tuple of ``args``. Immutable."""

    __slots__ = ("_name", "_args", "_hash")

    _name: str
    _args: tuple
    _hash: int | None

    def __init__(self, name: str, args=()):
        try:
            self._name  # noqa: B018 - set already: __init__ called again on a live value
        except AttributeError:
            pass
        else:
            raise AttributeError("Variant is immutable")
        if type(name) is not str:
            if not isinstance(name, str):
                raise TypeError(f"Variant name must be str, not {type(name).__name__}")
            name = str(name)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_args", args if type(args) is tuple else tuple(args))
        object.__setattr__(self, "_hash", None)

    @property
    def name(self) -> str:
        return self._name

    @property
    def args(self) -> tuple:
        return self._args

    def __setattr__(self, key, value):
        raise AttributeError("Variant is immutable")

    def __eq__(self, other):
        if isinstance(other, Variant):
            return self._name == other._name and self._args == other._args
        return NotImplemented

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self):
        h = self._hash
        if h is None:
            h = hash((self._name, self._args))
            object.__setattr__(self, "_hash", h)
        return h

    def __repr__(self) -> str:
        if not self._args:
            return f"Variant({self._name!r})"
        return f"Variant({self._name!r}, {self._args!r})"

    def __reduce__(self):
        return (Variant, (self._name, self._args))


register_variant_type(Variant)

NONE = Variant("None", ())


def ok(v=None) -> Variant:
    return Variant("Ok", (v,))


def err(v) -> Variant:
    return Variant("Err", (v,))


def some(v) -> Variant:
    return Variant("Some", (v,))


# -- argument checks ----------------------------------------------------------

def expect_str(args, i: int) -> str:
    if i >= len(args):
        raise EffectError("missing argument")
    v = args[i]
    if type(v) is str:
        return v
    if isinstance(v, str):
        return str.__str__(v)  # a subclass's own __str__ is never run
    raise EffectError(f"expected Str arg, got {debug_repr(v)}")


def expect_int(args, i: int) -> int:
    if i >= len(args):
        raise EffectError("missing argument")
    v = args[i]
    if type(v) is int or (isinstance(v, int) and not isinstance(v, bool)):
        v = int.__int__(v)  # the value, never a subclass's __int__ or comparisons
        if INT_MIN <= v <= INT_MAX:
            return v
        raise EffectError(f"Int out of the signed 64-bit range: {debug_repr(v)}")
    raise EffectError(f"expected Int arg, got {debug_repr(v)}")


def expect_bytes(args, i: int) -> bytes:
    if i >= len(args):
        raise EffectError("missing argument")
    v = args[i]
    if type(v) is bytes:
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        try:
            return bytes(v)
        except (TypeError, ValueError, BufferError) as e:
            raise EffectError(f"expected Bytes arg, got unreadable buffer: {e}") from None
    raise EffectError(f"expected Bytes arg, got {debug_repr(v)}")


def expect_record(args, i: int) -> dict:
    if i >= len(args):
        raise EffectError("missing Record argument")
    v = args[i]
    if type(v) is dict or (isinstance(v, dict) and not isinstance(v, Map)):
        return v
    raise EffectError(f"expected Record, got {debug_repr(v)}")


def expect_str_list(args, i: int) -> list:
    if i >= len(args):
        raise EffectError("missing List[Str] argument")
    v = args[i]
    if not isinstance(v, list):
        raise EffectError(f"expected List[Str], got {debug_repr(v)}")
    out = []
    for x in list.copy(v):
        if not isinstance(x, str):
            raise EffectError(f"expected List[Str] element, got {debug_repr(x)}")
        out.append(str.__str__(x))
    return out


def expect_handle(args, i: int, what: str, missing: str) -> int:
    """A registry handle: an Int ≥ 0 (``expected Kv handle (Int), got …``)."""
    if i >= len(args):
        raise EffectError(f"missing {missing} argument")
    v = args[i]
    if type(v) is int or (isinstance(v, int) and not isinstance(v, bool)):
        n = int.__int__(v)
        if 0 <= n <= INT_MAX:
            return n
    raise EffectError(f"expected {what} (Int), got {debug_repr(v)}")


# -- handles and registries ---------------------------------------------------

_handles = itertools.count(1)
_handles_lock = threading.Lock()


def next_handle() -> int:
    """Process-wide handle numbers: from 1, never reused."""
    with _handles_lock:
        return next(_handles)


class LRURegistry:
    """Handle -> resource, least recently used evicted at ``cap``.

    ``on_evict(handle, value)`` runs (outside the registry's lock) for each
    entry pushed out by ``insert``; ``remove`` and ``pop_all`` hand values back
    to the caller instead.
    """

    __slots__ = ("_cap", "_on_evict", "_data", "_lock")

    def __init__(self, cap: int, on_evict=None):
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError(f"LRURegistry: cap must be an int >= 1, got {cap!r}")
        self._cap = cap
        self._on_evict = on_evict
        self._data: dict = {}
        self._lock = threading.Lock()

    @property
    def cap(self) -> int:
        return self._cap

    def insert(self, handle, value) -> None:
        if type(handle) is not int and type(handle) is not str:
            raise TypeError(f"LRURegistry: a handle must be an int or a str, "
                            f"not {type(handle).__name__}")
        evicted = []
        with self._lock:
            data = self._data
            if handle in data:
                del data[handle]
            while len(data) >= self._cap:
                old = next(iter(data))
                evicted.append((old, data.pop(old)))
            data[handle] = value
        if self._on_evict is not None:
            for h, v in evicted:
                self._on_evict(h, v)

    def touch_get(self, handle):
        with self._lock:
            data = self._data
            try:
                v = data.pop(handle)
            except (KeyError, TypeError):
                return None
            data[handle] = v
            return v

    def __getitem__(self, handle):
        with self._lock:
            data = self._data
            v = data.pop(handle)
            data[handle] = v
            return v

    def get(self, handle, default=None):
        """Look up without marking the entry used."""
        with self._lock:
            try:
                return self._data.get(handle, default)
            except TypeError:
                return default

    def remove(self, handle):
        with self._lock:
            try:
                return self._data.pop(handle, None)
            except TypeError:
                return None

    def pop_all(self) -> list:
        with self._lock:
            items = list(self._data.items())
            self._data.clear()
            return items

    def keys(self) -> list:
        """Handles from least to most recently used."""
        with self._lock:
            return list(self._data)

    def __contains__(self, handle) -> bool:
        try:
            return handle in self._data
        except TypeError:
            return False

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"LRURegistry(cap={self._cap}, len={len(self._data)})"


# -- budget ------------------------------------------------------------------

class BudgetPool:
    """The run's budget: ``ceiling`` counted down by ``take``; shared by forks.

    With a ``lease`` (a distributed pool, ``lexfast.budget_pool``) the counter
    is this process's lease, starting at 0: a take it cannot cover calls
    ``lease.refill(pool, cost)``, which deposits a block from the shared pool
    and takes ``cost`` or raises ``BudgetExceeded``."""

    __slots__ = ("_ceiling", "_remaining", "_lock", "_lease")

    def __init__(self, ceiling=None, lease=None):
        if ceiling is not None and (isinstance(ceiling, bool) or not isinstance(ceiling, int)
                                    or not 0 <= ceiling <= U64_MAX):
            raise ValueError(f"BudgetPool: ceiling must be None or an int in 0..={U64_MAX}")
        if ceiling is None and lease is not None:
            raise ValueError("BudgetPool: a lease needs a ceiling")
        self._ceiling = ceiling
        self._lease = lease
        self._remaining = U64_MAX if ceiling is None else 0 if lease is not None else ceiling
        self._lock = threading.Lock()

    @property
    def ceiling(self):
        return self._ceiling

    @property
    def remaining(self):
        if self._ceiling is None:
            return None
        if self._lease is not None:
            return self._lease.remaining(self)
        return self._remaining

    @property
    def lease(self):
        return self._lease

    @property
    def local(self):
        """What the counter holds: the remainder, or a lease's unspent units."""
        return None if self._ceiling is None else self._remaining

    def take(self, cost) -> None:
        cost = _check_cost(cost)
        if self._ceiling is None:
            return
        with self._lock:
            cur = self._remaining
            if cost <= cur:
                self._remaining = cur - cost
                return
        if self._lease is not None:
            self._lease.refill(self, cost)
            return
        raise BudgetExceeded(cost, self._ceiling - cur, self._ceiling)

    def _try_take(self, cost) -> bool:
        """Deduct ``cost`` (an int >= 0) from the counter alone: True, or
        False without deducting (no refill)."""
        if cost < 0:
            raise ValueError("BudgetPool: cost must be >= 0")
        if self._ceiling is None:
            return True
        with self._lock:
            if cost > self._remaining:
                return False
            self._remaining -= cost
            return True

    def _deposit(self, n) -> None:
        """Add ``n`` units to the counter (a lease's refill)."""
        with self._lock:
            if not 0 <= n <= U64_MAX - self._remaining:
                raise ValueError("BudgetPool: deposit out of range")
            self._remaining += n

    def _drain(self) -> int:
        """Empty the counter; the units it held (a lease returned on close)."""
        if self._ceiling is None:
            return 0
        with self._lock:
            n, self._remaining = self._remaining, 0
            return n


def _check_cost(cost) -> int:
    if type(cost) is not int and (isinstance(cost, bool) or not isinstance(cost, int)):
        raise EffectError(f"note_call_budget: cost must be Int, got {debug_repr(cost)}")
    cost = int.__int__(cost)  # a subclass's comparisons are never run
    if cost < 0:
        raise EffectError(f"note_call_budget: cost must be non-negative, got {cost}")
    return cost


# -- the dispatch table row and the handler core ------------------------------

class Stats:
    """Per-row counters of a session (``calls, denials, errors, total_ns,
    max_ns`` for each row), as one int64 array numpy can view without copying."""

    __slots__ = ("_counts", "_n", "timing")

    def __init__(self, n: int, timing: bool = False):
        if n < 0:
            raise ValueError("Stats: n must be >= 0")
        self._counts = array.array("q", bytes(8 * 5 * n))
        self._n = n
        self.timing = bool(timing)

    def __len__(self) -> int:
        return self._n

    def reset(self) -> None:
        self._counts[:] = array.array("q", bytes(8 * 5 * self._n))

    def row(self, i: int) -> dict:
        if not 0 <= i < self._n:
            raise IndexError(i)
        r = self._counts
        b = 5 * i
        return {"calls": r[b], "denials": r[b + 1], "errors": r[b + 2],
                "total_ns": r[b + 3], "max_ns": r[b + 4]}

    def __buffer__(self, flags):  # pragma: no cover - Python >= 3.12
        return memoryview(self._counts).toreadonly()

    def memoryview(self) -> builtins.memoryview:
        return memoryview(self._counts).toreadonly()


class Row:
    """One effect: ``(kind, op)`` gated on ``gate`` (kinds, all required, in
    order), performed by ``fn(handler, args)``."""

    __slots__ = ("kind", "op", "gate", "fn", "mask", "index")

    def __init__(self, kind: str, op: str, gate: tuple, fn, index: int = -1):
        unknown = [g for g in gate if g not in KIND_BIT]
        if unknown:
            raise ValueError(f"Row {kind}.{op}: unknown effect kind `{unknown[0]}` in its gate "
                             "(a VM declares its own with lexfast.kinds.declare_kind)")
        self.kind = kind
        self.op = op
        self.gate = tuple(gate)
        self.fn = fn
        self.index = index
        self.mask = 0
        for g in gate:
            self.mask |= KIND_BIT[g]

    def __repr__(self) -> str:
        return f"Row({self.kind!r}, {self.op!r}, gate={self.gate!r})"


class HandlerCore:
    """The hot part of ``DefaultHandler``: the pure table, the effect table,
    the policy gate and the budget pool. ``_policy``, ``_effects`` (the
    ``EffectTable``), ``_pool``, ``_pure`` and ``_stats`` are what ``_setup``
    was given (``fork`` hands them on)."""

    _policy = None
    _allowed = 0
    _table = None
    _wildcards = None
    _effects = None
    _pool = None
    _pure = None
    _stats = None
    _stat_rows = None

    def _setup(self, policy, effects, pool, pure, stats=None) -> None:
        self._policy = policy
        self._allowed = policy.mask
        self._effects = effects
        self._table = effects.ops
        # A wildcard row serves the ops of its kind that have no row of their
        # own, through the same gate as an exact row; not for the families
        # whose unknown ops fail before any gate.
        self._wildcards = {k: r for k, r in effects.wildcards.items()
                           if k not in UNKNOWN_OP_BEFORE_GATE} or None
        self._pool = pool
        self._pure = pure or None
        self._stats = stats
        self._stat_rows = stats._counts if stats is not None else None

    @property
    def policy(self):
        return self._policy

    @property
    def budget_remaining(self):
        return self._pool.remaining if self._pool is not None else None

    @property
    def budget_ceiling(self):
        return self._pool.ceiling if self._pool is not None else None

    def dispatch(self, kind, op, args):
        """Run the effect ``kind.op`` under the policy: a pure builtin first,
        else the gate, else the effect. Raises ``EffectError`` (or
        ``PolicyDenied``) where the reference returns ``Err`` from dispatch."""
        if type(args) is not list:
            args = coerce_args(args)
        pure = self._pure
        if pure is not None:
            ops = pure.get(kind) if type(kind) is str else None
            if ops is not None:
                fn = ops.get(op) if type(op) is str else None
                if fn is not None:
                    try:
                        return fn(args)
                    except EffectError:
                        raise
                    except Exception as e:
                        raise internal_error(kind, op, e) from e
        table = self._table
        if table is None:
            raise EffectError("handler is not initialised (DefaultHandler.__init__ was not run)")
        row = None
        if type(kind) is str and type(op) is str:
            ops = table.get(kind)
            if ops is not None:
                row = ops.get(op)
            if row is None and self._wildcards is not None:
                row = self._wildcards.get(kind)
        if row is None:
            return dispatch_miss(self, self._effects, kind, op, args)
        counters = self._stat_rows
        base = -1
        if counters is not None and 0 <= row.index < self._stats._n:
            base = 5 * row.index
            counters[base] += 1
        if row.mask & ~self._allowed:
            if base >= 0:
                counters[base + 1] += 1
            raise denied(row.gate, self._policy)
        timed = base >= 0 and self._stats.timing
        t0 = time.monotonic_ns() if timed else 0
        try:
            return row.fn(self, args)
        except EffectError:
            if base >= 0:
                counters[base + 2] += 1
            raise
        except Exception as e:
            if base >= 0:
                counters[base + 2] += 1
            raise internal_error(kind, op, e) from e
        finally:
            if timed:
                dt = time.monotonic_ns() - t0
                counters[base + 3] += dt
                if dt > counters[base + 4]:
                    counters[base + 4] = dt

    def note_call_budget(self, cost) -> None:
        pool = self._pool
        if pool is None:
            raise EffectError("handler is not initialised (DefaultHandler.__init__ was not run)")
        pool.take(cost)


# -- record and replay (lexfast/record.py, docs/design.md §8) ------------------------

#: the depth past which ``strict_equal`` answers False (the caller's slow path decides)
_STRICT_MAX_DEPTH = 256
_STRICT_SCALARS = (str, int, bytes)


def _strict(a, b, depth: int) -> bool:
    if a is b:
        return True
    t = type(a)
    if t is not type(b) or depth > _STRICT_MAX_DEPTH:
        return False  # 1, True and 1.0 differ; so do a Record and a Map
    if t in _STRICT_SCALARS or t is float:
        return a == b
    if t is list or t is tuple or t is Deque:
        return len(a) == len(b) and all(_strict(x, y, depth + 1) for x, y in zip(a, b, strict=True))
    if t is dict or t is Map:
        # keys exact str or int on both sides: a lookup finds True for 1
        if len(a) != len(b) or not all(type(k) is str or type(k) is int for k in b):
            return False
        for k, x in a.items():
            if type(k) is not str and type(k) is not int:
                return False
            y = b.get(k, _MISSING)
            if y is _MISSING or not _strict(x, y, depth + 1):
                return False
        return True
    if t is Variant:
        return a.name == b.name and _strict(a.args, b.args, depth + 1)
    if t is Set:
        return (all(type(k) is str or type(k) is int for k in a)
                and all(type(k) is str or type(k) is int for k in b) and a == b)
    return False


_MISSING = object()


def strict_equal(a, b) -> bool:
    """Whether two Lex values (or JSON trees) are the same by value and by
    type at every level: ``1``, ``True`` and ``1.0`` differ, as do a Record
    and a Map, a list and a tuple. Str, Int, Bytes, Float, List, Tuple,
    Record, Map, Set, Deque and Variant are compared; anything else (a
    Table, a subclass) or nesting past 256 levels answers ``False`` (replay
    then compares the two as JSON)."""
    return _strict(a, b, 0)


_CALL, _VALUE, _RAISED = 0, 0, 1


class TraceBuffer:
    """What a recording session has dispatched and not yet written: items
    appended by the dispatch threads, taken whole by the writer (``take``).
    ``full`` (set when the trace reached its bound) stops the recording."""

    __slots__ = ("_items", "full")

    def __init__(self) -> None:
        self._items: list = []
        self.full = False

    def append(self, item) -> None:
        self._items.append(item)

    def take(self) -> list:
        """Everything appended so far, in order; the buffer starts empty."""
        items, self._items = self._items, []  # one bytecode swap: no append is lost
        return items

    def __len__(self) -> int:
        return len(self._items)


class RecordTap:
    """The recording ``dispatch`` of one handler (a session's root or a fork):
    each call the handler's own ``dispatch`` serves is appended to ``buffer``
    as ``(0, fork, kind, op, args_copy, 0, value, t0, t1)``, or with ``1``
    and the ``EffectError`` when it raised (monotonic ns): no encoding on the
    dispatch thread. Pure builtins pass unrecorded unless ``record_pure``;
    an op in ``special`` (``{kind: ops}``) goes to ``slow(kind, op, args)``
    (the servers); nothing is recorded once ``buffer.full``."""

    def __init__(self, handler, buffer, fork, record_pure, special, slow) -> None:
        self._handler = handler
        self._core = type(handler).dispatch.__get__(handler)
        self._buffer = buffer
        self._fork = fork
        self._record_pure = bool(record_pure)
        self._special = special
        self._slow = slow

    def dispatch(self, kind, op, args):
        core = self._core
        if not self._record_pure:
            pure = self._handler._pure
            if pure is not None:
                ops = pure.get(kind) if type(kind) is str else None
                if ops is not None and type(op) is str and op in ops:
                    return core(kind, op, args)
        buffer = self._buffer
        if buffer.full:
            return core(kind, op, args)
        special = self._special
        if special is not None and type(kind) is str and type(op) is str:
            ops = special.get(kind)
            if ops is not None and op in ops:
                return self._slow(kind, op, args)
        snap = list(args) if type(args) is list else args
        t0 = time.monotonic_ns()
        try:
            value = core(kind, op, args)
        except EffectError as e:
            buffer.append((_CALL, self._fork, kind, op, snap, _RAISED, e, t0, time.monotonic_ns()))
            raise
        buffer.append((_CALL, self._fork, kind, op, snap, _VALUE, value, t0, time.monotonic_ns()))
        return value

    def __call__(self, kind, op, args):
        return self.dispatch(kind, op, args)


class TraceSteps:
    """One fork's recorded steps, in order: ``entries`` (whatever the caller
    keeps per step) and beside each its ``fast`` answer, ``(kind, op, args,
    value)`` or ``None`` when the step needs the caller's slow path (a
    raise, an override, a server). ``pos`` is the next step's index."""

    def __init__(self, entries, fast) -> None:
        self._entries = list(entries)
        self._fast = list(fast)
        if len(self._entries) != len(self._fast):
            raise ValueError("entries and fast answers must be as long")
        for f in self._fast:
            if f is not None and (type(f) is not tuple or len(f) != 4 or type(f[0]) is not str
                                  or type(f[1]) is not str or type(f[2]) is not list):
                raise TypeError("a fast answer is None or (kind: str, op: str, args: list, value)")
        self._pos = 0
        self._lock = threading.Lock()

    @property
    def pos(self) -> int:
        return self._pos

    @pos.setter
    def pos(self, value: int) -> None:
        if not 0 <= value <= len(self._entries):
            raise ValueError(f"pos must be in 0..{len(self._entries)}")
        self._pos = value

    def pop(self):
        """The next step's entry (the step consumed), or ``None`` at the end."""
        with self._lock:
            pos = self._pos
            if pos >= len(self._entries):
                return None
            self._pos = pos + 1
            return self._entries[pos]

    def _claim(self, pos: int) -> bool:
        with self._lock:
            if self._pos != pos:
                return False
            self._pos = pos + 1
            return True

    def __len__(self) -> int:
        return len(self._entries) - self._pos


class ReplayTap:
    """The replaying ``dispatch`` of one handler: a call whose next step has
    a fast answer with the same kind, op and (``strict_equal``) args is
    answered with the recorded value, nothing encoded; every other call
    (another call, a raise, an override, the trace's end, args that are
    equal only as JSON) goes to ``slow(kind, op, args)``. Pure builtins run
    unless ``replay_pure``."""

    def __init__(self, handler, steps, replay_pure, slow) -> None:
        self._handler = handler
        self._core = type(handler).dispatch.__get__(handler)
        self._steps = steps
        self._replay_pure = bool(replay_pure)
        self._slow = slow

    def dispatch(self, kind, op, args):
        if not self._replay_pure:
            pure = self._handler._pure
            if pure is not None:
                ops = pure.get(kind) if type(kind) is str else None
                if ops is not None and type(op) is str and op in ops:
                    return self._core(kind, op, args)
        steps = self._steps
        pos = steps._pos
        if pos < len(steps._fast) and type(args) is list:
            fast = steps._fast[pos]
            if (fast is not None and fast[0] == kind and fast[1] == op
                    and type(kind) is str and type(op) is str
                    and strict_equal(fast[2], args) and steps._claim(pos)):
                return fast[3]
        return self._slow(kind, op, args)

    def __call__(self, kind, op, args):
        return self.dispatch(kind, op, args)


# -- trace lines: the writer's encoder for the common call ----------------------------

_UNPLAIN = re.compile(r'[\x00-\x1f"\\\x7f]')
#: nesting a trace line's fast encoder takes; deeper values take the codec
_LINE_MAX_DEPTH = 16


def _plain(s: str) -> bool:
    """An ASCII str with nothing JSON escapes (no quote, backslash, control)."""
    return s.isascii() and _UNPLAIN.search(s) is None


def _line_value(v, depth: int, out: list) -> bool:
    """``v``'s JSON (the CLI codec's form) appended to ``out``, or False: a
    value the fast encoder leaves to the codec."""
    if v is None:
        out.append("null")
        return True
    if v is True or v is False:
        out.append("true" if v else "false")
        return True
    t = type(v)
    if t is str:
        if not _plain(v):
            return False
        out.append(f'"{v}"')
        return True
    if t is int:
        if not INT_MIN <= v <= INT_MAX:
            return False  # outside signed 64-bit: the codec's error
        out.append(str(v))
        return True
    if t is float:
        if not math.isfinite(v):
            return False
        out.append(repr(v))
        return True
    if t is bytes:
        out.append('{"$bytes":"' + binascii.b2a_base64(v, newline=False).decode("ascii") + '"}')
        return True
    if depth >= _LINE_MAX_DEPTH:
        return False
    if t is list:
        out.append("[")
        for k, x in enumerate(v):
            if k:
                out.append(",")
            if not _line_value(x, depth + 1, out):
                return False
        out.append("]")
        return True
    if t is Variant:
        name = v.name
        if not name or not _plain(name):
            return False
        out.append(f'{{"$variant":"{name}","args":[')
        for k, x in enumerate(v.args):
            if k:
                out.append(",")
            if not _line_value(x, depth + 1, out):
                return False
        out.append("]}")
        return True
    if t is dict:  # a Record with plain, untagged keys
        out.append("{")
        for k, (key, x) in enumerate(v.items()):
            if type(key) is not str or not key or key[0] == "$" or not _plain(key):
                return False
            out.append(f',"{key}":' if k else f'"{key}":')
            if not _line_value(x, depth + 1, out):
                return False
        out.append("}")
        return True
    return False


def trace_call_line(step, fork, kind, op, args, value, t_us, us):
    """The trace line of a call that returned, ``{"step":..,"fork":..,
    "kind":..,"op":..,"args":[..],"value":..,"t":..,"us":..}`` as the CLI
    codec writes it (``t`` in seconds from ``t_us``, six decimals at most,
    no float formatting), for the common values (None, Bool, Int, finite Float,
    plain ASCII Str, Bytes, List, Variant and Record of those, 16 levels);
    ``None`` for anything else (the caller's codec path words it) and for a
    line that may hold a secret (``authorization``, ``cookie``, ``api-key``,
    ``api_key``, any case: the caller scrubs it)."""
    if type(t_us) is not int:  # the compiled core's C long long
        raise TypeError(f"t_us must be an int, not {type(t_us).__name__}")
    if not INT_MIN <= t_us <= INT_MAX:
        raise OverflowError("t_us is outside signed 64-bit")
    if not (type(step) is int and type(fork) is int and type(us) is int and t_us >= 0
            and type(args) is list and type(kind) is str and type(op) is str):
        return None
    whole, frac = divmod(t_us, 1_000_000)
    t = f"{whole}.{frac:06d}".rstrip("0")
    out: list = ['{"step":']
    for name, v in ((None, step), (',"fork":', fork), (',"kind":', kind), (',"op":', op),
                    (',"args":', args), (',"value":', value)):
        if name is not None:
            out.append(name)
        if not _line_value(v, 0, out):
            return None
    if not INT_MIN <= us <= INT_MAX:
        return None
    out.append(f',"t":{t}0,"us":{us}}}' if t.endswith(".") else f',"t":{t},"us":{us}}}')
    line = "".join(out)
    low = line.lower()
    if "authorization" in low or "cookie" in low or "api-key" in low or "api_key" in low:
        return None  # the caller scrubs it
    return line


def trace_call_lines(items: list, start: int, step: int, wall0_us: int, mono0: int, room: int):
    """The recorder's items from ``items[start]`` on, as trace lines (each
    ending in a newline), while each is a call that returned (``(0, fork,
    kind, op, args, 0, value, t0, t1)``, not ``env``) that
    ``trace_call_line`` writes, numbered from ``step``, ``t`` from the
    monotonic ``t0`` (``wall0_us + (t0 - mono0) // 1000``), and the text stays
    within ``room`` bytes. Returns ``(text, count)``; the caller writes the
    item it stopped at its own way."""
    if type(items) is not list:
        raise TypeError(f"items must be a list, not {type(items).__name__}")
    out: list[str] = []
    size = 0
    done = 0
    for i in range(start, len(items)):
        item = items[i]
        if type(item) is not tuple or len(item) != 9 or item[0] != 0 or item[5] != 0:
            break
        if type(item[2]) is not str or item[2] == "env":
            break  # env.get's value may be a secret: the caller scrubs
        t0, t1 = item[7], item[8]
        if type(t0) is not int or type(t1) is not int or t0 < mono0 or t1 < t0:
            break
        line = trace_call_line(step + done, item[1], item[2], item[3], item[4], item[6],
                               wall0_us + (t0 - mono0) // 1000, (t1 - t0) // 1000)
        if line is None or size + len(line) + 1 > room:
            break
        out.append(line + "\n")
        size += len(line) + 1
        done += 1
    return "".join(out), done


def openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    """``openat2(2)``; ``OSError`` as ``os.open`` raises it."""
    how = _OpenHow(flags, mode, resolve)
    encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise ValueError("embedded null byte")  # C would cut the path there
    # EAGAIN: a rename or mount raced with a ".." step beneath the root;
    # openat2(2) says to retry (bounded, as the compiled core does)
    for _ in range(_OPENAT2_RETRIES):
        fd = _syscall(_SYS_openat2, ctypes.c_int(dirfd), encoded, ctypes.byref(how),
                      ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        e = ctypes.get_errno()
        if e != errno.EAGAIN:
            break
    raise OSError(e, os.strerror(e), path)


_OPENAT2_RETRIES = 64


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_SYS_openat2 = ctypes.c_long(437)  # the same number on every Linux architecture
try:
    if not sys.platform.startswith("linux"):
        raise OSError("openat2 is Linux-only")  # 437 is another call elsewhere
    _libc = ctypes.CDLL(None, use_errno=True)
    _syscall = _libc.syscall
    _syscall.restype = ctypes.c_long
except (OSError, AttributeError):  # pragma: no cover - not Linux
    def _syscall(*_a):  # type: ignore[misc]
        ctypes.set_errno(38)  # ENOSYS
        return -1

