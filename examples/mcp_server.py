"""A minimal stdio MCP server (stdlib only) for examples/mcp_agent.py: JSON-RPC
2.0, one message per line; ``initialize``, ``tools/list`` and ``tools/call``
with two tools, ``add`` and ``word_count``."""

from __future__ import annotations

import json
import sys

TOOLS = {
    "add": lambda a: a["a"] + a["b"],
    "word_count": lambda a: len(a["text"].split()),
}


def reply(msg, **body) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], **body}) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    method = msg.get("method")
    if "id" not in msg:
        continue  # a notification (notifications/initialized)
    if method == "initialize":
        reply(msg, result={"protocolVersion": msg["params"]["protocolVersion"],
                           "capabilities": {"tools": {}},
                           "serverInfo": {"name": "example", "version": "1"}})
    elif method == "tools/list":
        reply(msg, result={"tools": [{"name": n, "inputSchema": {"type": "object"}}
                                     for n in TOOLS]})
    elif method == "tools/call" and msg["params"]["name"] in TOOLS:
        value = TOOLS[msg["params"]["name"]](msg["params"].get("arguments") or {})
        reply(msg, result={"content": [{"type": "text", "text": str(value)}], "isError": False})
    elif method == "tools/call":
        reply(msg, error={"code": -32602, "message": f"Unknown tool: {msg['params']['name']}"})
    else:
        reply(msg, error={"code": -32601, "message": f"no such method: {method}"})
