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

#: kind -> its bit in ``Policy.mask`` (and in each table row's gate mask).
KIND_BIT: dict[str, int] = {k: 1 << i for i, k in enumerate(KNOWN_EFFECTS)}


def kinds_mask(kinds: Iterable[str]) -> int:
    """The bitmask of the known kinds among ``kinds`` (unknown ones have no bit)."""
    m = 0
    for k in kinds:
        m |= KIND_BIT.get(k, 0)
    return m
