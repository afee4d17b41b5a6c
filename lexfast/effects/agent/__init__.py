"""``agent.*`` (:mod:`.ops`) and the MCP stdio client it drives
(:mod:`.mcp_client`)."""

from .ops import ROWS

__all__ = ["ROWS"]
