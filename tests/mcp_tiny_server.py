"""A minimal hand-written stdio MCP server (stdlib only, starts fast) that
can also misbehave on purpose, for the agent.call_mcp tests.

``python tests/mcp_tiny_server.py [MODE] [tag]`` where MODE is

- ``ok``: a well-behaved server (tools ``add``, ``pid``, ``client``: the
  ``initialize`` params it got, ``sleep``, ``rpc_error``, ``probe``: whether
  it can read a file, connect to a loopback port, signal a pid);
- ``noise``: before each reply prints non-JSON lines and notifications to
  stdout, an unrelated response id, and 200 KiB to stderr;
- ``silent``: reads requests and never answers;
- ``flood``: answers ``initialize``, then floods stdout without a newline;
- ``die``: answers ``initialize``, then exits on ``tools/call``;
- ``oldversion``: answers ``initialize`` with protocol version 2024-11-05;
- ``badversion``: answers with a protocol version no client knows;
- ``ping``: sends a ``ping`` request to the client before each reply and
  answers only once the client has replied to it;

- ``pingflood``: on ``tools/call`` sends 300 ``ping`` requests with 10 KiB
  ids without ever reading the client's answers, then sleeps;
- ``badjson``: answers ``tools/call`` with a truncated JSON object;
- ``stubborn``: ignores SIGTERM and stays up after its stdin closes;
- ``grandchild``: starts ``sleep 60`` in its process group (tool
  ``grandchild`` returns its pid).

``tag`` is ignored: it only makes distinct command lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
out = sys.stdout.buffer


def send(obj) -> None:
    out.write(json.dumps(obj).encode() + b"\n")
    out.flush()


def reply(msg, result=None, error=None) -> None:
    body = {"jsonrpc": "2.0", "id": msg["id"]}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result
    send(body)


if MODE == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
kid = subprocess.Popen(["sleep", "60"]) if MODE == "grandchild" else None
seen_initialized = False
init_params = None

for raw in sys.stdin.buffer:
    msg = json.loads(raw)
    method = msg.get("method")
    if MODE == "silent":
        continue
    if method == "initialize":
        init_params = msg["params"]
        version = msg["params"]["protocolVersion"]
        if MODE == "oldversion":
            version = "2024-11-05"
        elif MODE == "badversion":
            version = "1999-01-01"
        reply(msg, {"protocolVersion": version, "capabilities": {"tools": {}},
                    "serverInfo": {"name": "tiny", "version": "0"}})
        continue
    if method == "notifications/initialized":
        seen_initialized = True
        continue
    if "id" not in msg or method is None:
        continue  # a notification or the client's answer to our ping
    if method != "tools/call":
        reply(msg, error={"code": -32601, "message": f"no method {method}"})
        continue
    if MODE == "flood":
        block = b"x" * 65536
        while True:
            out.write(block)
            out.flush()
    if MODE == "die":
        os._exit(3)
    if MODE == "pingflood":
        for i in range(300):
            send({"jsonrpc": "2.0", "id": f"{i}-" + "p" * 10240, "method": "ping"})
        time.sleep(60)
    if MODE == "badjson":
        out.write(b'{"jsonrpc": "2.0", "id": %d, "result": {"x":\n' % msg["id"])
        out.flush()
        continue
    if MODE == "noise":
        out.write(b"this is not json\n\n   \n[1, 2]\n42\n")
        send({"jsonrpc": "2.0", "method": "notifications/message",
              "params": {"level": "info", "data": "hello"}})
        send({"jsonrpc": "2.0", "id": 999999, "result": {"stale": True}})
        send({"jsonrpc": "2.0", "id": str(msg["id"]), "result": {"wrong": "id type"}})
        os.write(2, b"e" * (200 << 10))
    if MODE == "ping":
        send({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
        answer = json.loads(sys.stdin.buffer.readline())
        if answer.get("id") != "srv-1" or "result" not in answer:
            os._exit(4)
    name = msg["params"]["name"]
    args = msg["params"].get("arguments") or {}
    if name == "add":
        result = {"content": [{"type": "text", "text": str(args["a"] + args["b"])}],
                  "isError": False}
        reply(msg, result)
    elif name == "pid":
        reply(msg, {"content": [{"type": "text", "text": str(os.getpid())}], "isError": False})
    elif name == "grandchild":
        reply(msg, {"content": [], "isError": False, "pid": kid.pid})
    elif name == "client":
        reply(msg, {"content": [], "isError": False, "init": init_params,
                    "initialized": seen_initialized})
    elif name == "sleep":
        time.sleep(float(args.get("seconds", 60)))
        reply(msg, {"content": [], "isError": False})
    elif name == "probe":  # what the server can reach (confinement tests)
        found = {}
        if "read" in args:
            try:
                with open(args["read"]) as f:
                    found["read"] = f.read()
            except OSError as e:
                found["read"] = f"error {e.errno}"
        if "connect" in args:
            import socket
            try:
                with socket.create_connection(("127.0.0.1", args["connect"]), timeout=5):
                    found["connect"] = "connected"
            except OSError as e:
                found["connect"] = f"error {e.errno}"
        if "signal" in args:
            try:
                os.kill(args["signal"], 0)
                found["signal"] = "sent"
            except OSError as e:
                found["signal"] = f"error {e.errno}"
        reply(msg, {"content": [{"type": "text", "text": json.dumps(found)}], "isError": False})
    elif name == "rpc_error":
        reply(msg, error={"code": -32602, "message": "bad params", "data": {"why": "test"}})
    else:
        reply(msg, error={"code": -32602, "message": f"Unknown tool: {name}"})

if MODE == "stubborn":
    while True:
        time.sleep(1)
