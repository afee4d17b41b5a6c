"""Type stubs for the compiled kernel (``lexfast.kernel._c``); its twin
``lexfast.kernel._py`` has the same surface in pure Python
(``tests/test_core.py`` checks this stub against both)."""

import builtins
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

__all__ = [
    "COMPILED", "NONE", "BudgetPool", "HandlerCore", "LRURegistry", "Row", "Stats", "Variant",
    "err", "expect_bytes", "expect_handle", "expect_int", "expect_record", "expect_str",
    "expect_str_list", "next_handle", "ok", "openat2", "some",
]

COMPILED: bool

class Variant:
    """A Lex variant value: ``name`` and a tuple of ``args``. Immutable,
    hashable, ``==`` by value (against a ``Variant`` of the same kernel only)."""

    @property
    def name(self) -> str: ...
    @property
    def args(self) -> tuple[Any, ...]: ...
    def __init__(self, name: str, args: Iterable[Any] = ...) -> None: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

NONE: Variant
"""``None`` of ``Option``."""

def ok(v: Any = None) -> Variant:
    """``Ok(v)``."""

def err(v: Any) -> Variant:
    """``Err(v)``."""

def some(v: Any) -> Variant:
    """``Some(v)``."""

def expect_str(args: Sequence[Any], i: int) -> str:
    """``args[i]`` as a Str, else ``EffectError`` (``expected Str arg, got Int(3)``,
    ``missing argument``)."""

def expect_int(args: Sequence[Any], i: int) -> int:
    """``args[i]`` as a signed 64-bit Int (bool is not an Int)."""

def expect_bytes(args: Sequence[Any], i: int) -> bytes:
    """``args[i]`` as Bytes; ``bytearray`` and ``memoryview`` are copied to ``bytes``."""

def expect_record(args: Sequence[Any], i: int) -> dict[str, Any]:
    """``args[i]`` as a Record (a ``dict`` that is not a ``Map``)."""

def expect_str_list(args: Sequence[Any], i: int) -> list[str]:
    """``args[i]`` as ``List[Str]``."""

def expect_handle(args: Sequence[Any], i: int, what: str, missing: str) -> int:
    """``args[i]`` as a registry handle (Int ≥ 0): ``expected {what} (Int), got …``,
    ``missing {missing} argument``."""

def next_handle() -> int:
    """Process-wide handle numbers, from 1, never reused."""

class LRURegistry:
    """Handle → resource, least recently used evicted at ``cap``; thread-safe.

    ``on_evict(handle, value)`` is called for each entry ``insert`` pushes out.
    """

    def __init__(self, cap: int, on_evict: Callable[[Any, Any], Any] | None = None) -> None: ...
    @property
    def cap(self) -> int: ...
    def insert(self, handle: Hashable, value: Any) -> None:
        """Add (or replace) ``handle`` as the most recently used entry."""
    def touch_get(self, handle: Hashable) -> Any | None:
        """The value, marked most recently used; ``None`` when missing."""
    def __getitem__(self, handle: Hashable, /) -> Any:
        """The value, marked most recently used; ``KeyError`` when missing."""
    def get(self, handle: Hashable, default: Any = None) -> Any:
        """The value without marking it used."""
    def remove(self, handle: Hashable) -> Any | None:
        """Drop the entry and return its value (``on_evict`` is not called)."""
    def pop_all(self) -> list[tuple[Any, Any]]:
        """Drop every entry; ``(handle, value)`` pairs, least recently used first."""
    def keys(self) -> list[Any]:
        """Handles, least recently used first."""
    def __contains__(self, handle: object, /) -> bool: ...
    def __len__(self) -> int: ...

class BudgetPool:
    """A run's budget pool: a ceiling counted down atomically; ``None`` = unlimited.

    With a ``lease`` (``lexfast.budget_pool.RedisLease``) the counter is this
    process's lease of a pool shared across processes: starts at 0, and a
    take it cannot cover calls ``lease.refill(pool, cost)``."""

    def __init__(self, ceiling: int | None = None, lease: Any = None) -> None: ...
    @property
    def ceiling(self) -> int | None: ...
    @property
    def remaining(self) -> int | None:
        """The remainder; with a lease, ``lease.remaining(pool)``."""
    @property
    def lease(self) -> Any: ...
    @property
    def local(self) -> int | None:
        """The counter itself: the remainder, or a lease's unspent units."""
    def take(self, cost: int) -> None:
        """Deduct ``cost`` or raise ``BudgetExceeded`` without deducting."""
    def _try_take(self, cost: int) -> bool:
        """Deduct ``cost`` from the counter alone (no refill): True, else False."""
    def _deposit(self, n: int) -> None:
        """Add ``n`` units to the counter."""
    def _drain(self) -> int:
        """Empty the counter; the units it held."""

class Row:
    """One effect table row: ``(kind, op)`` gated on ``gate``, performed by ``fn``;
    ``index`` is its row in the session's ``Stats``."""

    @property
    def kind(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def gate(self) -> tuple[str, ...]: ...
    @property
    def fn(self) -> Callable[[Any, list[Any]], Any]: ...
    @property
    def mask(self) -> int:
        """The bits of ``gate`` (``lexfast.kinds.KIND_BIT``)."""
    @property
    def index(self) -> int: ...
    def __init__(self, kind: str, op: str, gate: tuple[str, ...],
                 fn: Callable[[Any, list[Any]], Any], index: int = -1) -> None: ...

class Stats:
    """Per-row counters (calls, denials, errors, total_ns, max_ns; int64 each)
    in one C array, exported read-only through the buffer protocol as
    ``5 * len(self)`` int64s."""

    timing: bool
    def __init__(self, n: int, timing: bool = False) -> None: ...
    def __len__(self) -> int: ...
    def reset(self) -> None: ...
    def row(self, i: int) -> dict[str, int]: ...
    def memoryview(self) -> builtins.memoryview:
        """The counters as a read-only memoryview (``5 * len(self)`` int64s)."""

class HandlerCore:
    """The compiled half of ``DefaultHandler``. The underscored attributes are
    what ``_setup`` was given (``fork`` hands them on)."""

    @property
    def _policy(self) -> Any: ...
    @property
    def _effects(self) -> Any:
        """The ``EffectTable`` (``ops``, ``wildcards``)."""
    @property
    def _pool(self) -> BudgetPool: ...
    @property
    def _pure(self) -> dict[str, dict[str, Callable[[list[Any]], Any]]] | None: ...
    @property
    def _stats(self) -> Stats | None: ...

    @property
    def policy(self) -> Any: ...
    @property
    def budget_remaining(self) -> int | None: ...
    @property
    def budget_ceiling(self) -> int | None: ...
    def dispatch(self, kind: str, op: str, args: list[Any]) -> Any:
        """Run the effect ``kind.op`` under the policy: a pure builtin first,
        else the gate, else the effect. Raises ``EffectError`` (or
        ``PolicyDenied``) where the reference returns ``Err`` from dispatch."""
    def note_call_budget(self, cost: int) -> None:
        """Deduct ``cost`` from the shared pool; ``BudgetExceeded`` without
        deducting when it would go below zero; a no-op with no ceiling."""
    def _setup(self, policy: Any, effects: Any, pool: BudgetPool,
               pure: dict[str, dict[str, Callable[[list[Any]], Any]]] | None,
               stats: Stats | None = None) -> None: ...

def openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    """``openat2(2)``: a new descriptor, or ``OSError``."""
