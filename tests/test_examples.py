"""Every runnable example in examples/ runs, in a child process bounded in
time, and prints what its docstring promises (issue 24.3)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lexfast

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT = 60  # seconds: each example finishes in well under a second unloaded

pytestmark = pytest.mark.skipif(not (EXAMPLES / "vm_loop.py").exists(),
                                reason="examples/ not shipped here")


def run_example(tmp_path, *argv) -> str:
    # Away from the source tree, importing the lexfast under test.
    env = dict(os.environ, PYTHONPATH=str(Path(lexfast.__file__).resolve().parents[1]),
               LEXFAST_PYTHON=sys.executable)
    p = subprocess.run(list(argv), capture_output=True, cwd=tmp_path, env=env,
                       timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert b"Traceback" not in p.stderr, p.stderr.decode(errors="replace")
    return p.stdout.decode()


def test_vm_loop(tmp_path):
    out = run_example(tmp_path, sys.executable, EXAMPLES / "vm_loop.py")
    assert out.splitlines() == [
        "hello from a tiny VM",
        "LEX!",
        "denied: effect `proc` not in --allow-effects",
        "budget: budget exceeded: requested 50, used so far 10, ceiling 20",
        "budget left: 10 of 20",
        "error: unknown effect kind `frob`",
    ]


def test_http_service(tmp_path):
    out = run_example(tmp_path, sys.executable, EXAMPLES / "http_service.py")
    assert out.splitlines() == [
        "(200, 'hello\\n')",
        "200 ['now']",
        "(200, 'ping')",
        "(404, 'no route for GET /nope\\n')",
    ]


def test_ws_chat(tmp_path):
    out = run_example(tmp_path, sys.executable, EXAMPLES / "ws_chat.py")
    assert out.splitlines() == [
        "alice hears: hello, lobby",
        "bob hears:   hello, lobby",
        "carol hears: garden",
        "carol heard nothing from the lobby",
    ]


def test_mcp_agent(tmp_path):
    out = run_example(tmp_path, sys.executable, EXAMPLES / "mcp_agent.py")
    assert out.splitlines() == [
        "ok: 42",
        "ok: 6",
        'err: mcp.rpc tools/call: {"code":-32602,"message":"Unknown tool: frobnicate"}',
        "err: agent.call_mcp: args_json is not valid JSON: key must be a string at line 1 column 2",
    ]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_host_driven_from_node(tmp_path):
    out = run_example(tmp_path, "node", EXAMPLES / "host_peer.mjs")
    assert out.splitlines() == [
        "a die: 1..6",
        '{"id":2,"ok":"FROM NODE"}',
        '{"id":3,"error":"effect `io` not in --allow-effects","type":"PolicyDenied","effect":"io"}',
    ]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_host_driven_from_bash(tmp_path):
    out = run_example(tmp_path, "bash", EXAMPLES / "host_peer.sh")
    assert out.splitlines() == [
        '{"id":1,"ok":"FROM BASH"}',
        "time.now: ok",
        '{"id":3,"error":"unknown effect kind `frob`","type":"EffectError"}',
    ]
