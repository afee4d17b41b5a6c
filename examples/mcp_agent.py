"""An agent calling an MCP server: ``agent.call_mcp(server, tool, args_json)``.

``server`` is a command line; lexfast starts it once per handler session,
speaks MCP over its stdin/stdout, and reuses it for later calls. The call is
gated on ``mcp`` and the binary on ``--allow-proc``. A tool's result comes
back as ``Ok(json_text)``; a failure (an unknown tool, bad ``args_json``, a
server that dies) as ``Err(message)``.

    python examples/mcp_agent.py
"""

from __future__ import annotations

import json
import os
import shlex
import sys

from lexfast import DefaultHandler, Policy

SERVER = shlex.join([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "mcp_server.py")])


def call(h, tool: str, arguments) -> str:
    args_json = arguments if isinstance(arguments, str) else json.dumps(arguments)
    r = h.dispatch("agent", "call_mcp", [SERVER, tool, args_json])
    if r.name == "Ok":
        return "ok: " + "".join(c["text"] for c in json.loads(r.args[0])["content"])
    return "err: " + r.args[0]


def main() -> int:
    # Only this Python may run as a server (an empty --allow-proc means any).
    policy = Policy(allow_effects=["mcp"], allow_proc=[sys.executable])
    with DefaultHandler(policy) as h:
        print(call(h, "add", {"a": 2, "b": 40}))
        print(call(h, "word_count", {"text": "the manual a VM author needs"}))
        print(call(h, "frobnicate", {}))
        print(call(h, "add", "{not json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
