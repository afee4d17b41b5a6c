"""Pure-Python twin of ``lexfast.kernel._c``.

Same names, same behaviour, same messages; selected with
``LEXFAST_NO_EXTENSIONS=1`` or wherever the compiled core could not be built.
The test suite runs every test against both (``tests/conftest.py``).
"""

from __future__ import annotations

import array
import builtins
import ctypes
import itertools
import os
import sys
import threading
import time

from ..errors import BudgetExceeded, EffectError
from ..kinds import KIND_BIT
from ..values import INT_MAX, INT_MIN, U64_MAX, Map, debug_repr, register_variant_type
from ._slow import UNKNOWN_OP_BEFORE_GATE, coerce_args, denied, dispatch_miss, internal_error

__all__ = [
    "COMPILED", "NONE", "BudgetPool", "HandlerCore", "LRURegistry", "Row", "Stats", "Variant",
    "err", "expect_bytes", "expect_handle", "expect_int", "expect_record", "expect_str",
    "expect_str_list", "next_handle", "ok", "openat2", "some",
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


def openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    """``openat2(2)``; ``OSError`` as ``os.open`` raises it."""
    how = _OpenHow(flags, mode, resolve)
    encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise ValueError("embedded null byte")  # C would cut the path there
    fd = _syscall(_SYS_openat2, ctypes.c_int(dirfd), encoded, ctypes.byref(how),
                  ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return fd


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

