"""``proc.spawn`` and ``process.*`` (:mod:`.ops`); the child lifecycle
(spawning, signalling, reaping) in :mod:`.children`, shared with the MCP
client of ``effects.agent``."""

from .ops import ROWS

__all__ = ["ROWS"]
