"""The effect kinds a policy grants and a table row is gated on: a leaf that
both the kernel (each row's gate mask) and ``policy`` (each policy's mask)
read, so neither imports the other."""

from __future__ import annotations

from collections.abc import Iterable

#: Every effect kind the reference knows (``policy.rs``). Their order fixes the
#: bit each kind has in a policy's mask; append, never reorder.
KNOWN_EFFECTS: tuple[str, ...] = (
    "io", "net", "time", "llm", "proc", "panic", "fs_read", "fs_write",
    "budget", "llm_local", "llm_cloud", "a2a", "mcp", "env", "sql", "random",
    "chat", "log", "kv", "stream", "fs_walk", "concurrent", "crypto", "vcs",
    "approval", "moe",
)

#: kind -> its bit in ``Policy.mask`` (and in each table row's gate mask):
#: the known kinds, then those a VM declared (``declare_kind``).
KIND_BIT: dict[str, int] = {k: 1 << i for i, k in enumerate(KNOWN_EFFECTS)}

#: The gate is a 64-bit mask in the compiled core.
_MAX_KINDS = 64


def declare_kind(name: str) -> None:
    """Declare an effect kind a VM's own table rows are gated on, so that a
    ``Policy`` may grant it (``Policy(allow_effects=[name])``, the CLI's
    ``--allow-effects``) and a row may name it in its gate. Process-wide and
    idempotent; call it before building the policies and tables that use it.
    A policy naming a kind nobody declared is refused, as the CLI refuses it."""
    if not isinstance(name, str) or not name or not all(c.isalnum() or c == "_" for c in name):
        raise ValueError(f"declare_kind: kind must be a non-empty Str of letters, digits "
                         f"and `_`, got {name!r}")
    if name in KIND_BIT:
        return
    if len(KIND_BIT) >= _MAX_KINDS:
        raise ValueError(f"declare_kind: at most {_MAX_KINDS} effect kinds, `{name}` is one too many")
    KIND_BIT[name] = 1 << len(KIND_BIT)


def known_kinds() -> tuple[str, ...]:
    """``KNOWN_EFFECTS`` and then the kinds declared with ``declare_kind``."""
    return tuple(KIND_BIT)


def unknown_kinds_message(where: str, unknown: Iterable[str]) -> str | None:
    """The error for kinds neither known nor declared (``None`` when all are):
    one wording for ``Policy`` and the CLI."""
    bad = sorted(k for k in unknown if k not in KIND_BIT)
    if not bad:
        return None
    return (f"{where}: unknown effect kind `{bad[0]}` (known: {', '.join(KIND_BIT)}; "
            f"a VM declares its own with lexfast.kinds.declare_kind)")


def kinds_mask(kinds: Iterable[str]) -> int:
    """The bitmask of the known kinds among ``kinds`` (unknown ones have no bit)."""
    m = 0
    for k in kinds:
        m |= KIND_BIT.get(k, 0)
    return m
