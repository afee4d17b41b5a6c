"""A real MCP server for the agent.call_mcp tests, written with the official
`mcp` SDK (2.x: ``MCPServer``, formerly FastMCP) and served over stdio.

Run as ``python tests/mcp_server_fixture.py [extra argv ...]``.
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("lexfast-test-server")


@server.tool()
def add(a: int, b: int) -> int:
    """a + b"""
    return a + b


@server.tool()
def fail(message: str) -> str:
    """Raises: the SDK reports it as a result with isError true."""
    raise ValueError(message)


@server.tool()
def sleep(seconds: float) -> str:
    """Blocks past the client's timeout."""
    time.sleep(seconds)
    return "slept"


@server.tool()
async def noise(stderr_bytes: int, notifications: int, ctx: Context) -> str:
    """Floods stderr (more than a pipe buffer) and sends log and progress
    notifications before answering."""
    chunk = b"noise " * 1000 + b"\n"
    written = 0
    while written < stderr_bytes:
        os.write(2, chunk)
        written += len(chunk)
    for i in range(notifications):
        await ctx.info(f"log line {i}")
        await ctx.report_progress(i + 1, notifications)
    return "quiet now"


@server.tool()
def pid() -> int:
    return os.getpid()


@server.tool()
def argv() -> list[str]:
    return sys.argv[1:]


@server.tool()
def env_names() -> list[str]:
    return sorted(os.environ)


@server.tool()
def echo(text: str) -> str:
    return text


if __name__ == "__main__":
    server.run("stdio")
