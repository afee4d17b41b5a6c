"""agent.call_mcp: a call to a cached live server vs spawning the server for
every call, against a real MCP server written with the official SDK.

Group ``mcp-call`` (one tools/call of ``add``):

- ``test_mcp_call_cached``: lexfast, the server kept alive in the session's
  LRU (the reference's #197 cache);
- ``test_mcp_call_spawn_per_call``: lexfast with a fresh session per call
  (spawn, handshake, call, reap: the reference's first client);
- ``test_mcp_call_sdk_per_call``: what a synchronous caller of the official
  SDK writes: ``asyncio.run`` over ``stdio_client`` + ``ClientSession``;
- ``test_mcp_call_sdk_session``: the SDK with one session kept open on an
  event-loop thread, called through ``run_coroutine_threadsafe`` (the most a
  user can get from the SDK without our cache).

Run: PYTHONPATH=. pytest bench/bench_mcp.py --benchmark-enable
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import threading

import pytest

from lexfast import DefaultHandler, Limits, Policy

RATIO_TARGETS = [
    # (group, subject, baseline, max subject/baseline median)
    ("mcp-call", "test_mcp_call_cached", "test_mcp_call_spawn_per_call", 0.2),
    ("mcp-call", "test_mcp_call_cached", "test_mcp_call_sdk_per_call", 0.2),
    # per call against a live SDK session: ours is synchronous, no event loop hop
    ("mcp-call", "test_mcp_call_cached", "test_mcp_call_sdk_session", 1.0),
]

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests",
                       "mcp_server_fixture.py")
FIXTURE = os.path.normpath(FIXTURE)
SERVER = f"{shlex.quote(sys.executable)} {shlex.quote(FIXTURE)}"
ARGS = ["agent", "call_mcp", [SERVER, "add", '{"a": 2, "b": 3}']]
POLICY = Policy(allow_effects=["mcp"], allow_proc=[sys.executable])
LIMITS = Limits(mcp_timeout_s=60.0)
SLOW_ROUNDS = 5


def _check(v):
    assert v.name == "Ok" and '"text":"5"' in v.args[0], v


@pytest.mark.benchmark(group="mcp-call")
def test_mcp_call_cached(benchmark):
    with DefaultHandler(POLICY, limits=LIMITS) as h:
        _check(h.dispatch(*ARGS))  # spawn once
        _check(benchmark(h.dispatch, *ARGS))


@pytest.mark.benchmark(group="mcp-call")
def test_mcp_call_spawn_per_call(benchmark):
    def once():
        with DefaultHandler(POLICY, limits=LIMITS) as h:
            return h.dispatch(*ARGS)

    _check(benchmark.pedantic(once, rounds=SLOW_ROUNDS, iterations=1, warmup_rounds=1))


def _sdk_params():
    from mcp import StdioServerParameters
    return StdioServerParameters(command=sys.executable, args=[FIXTURE])


@pytest.mark.benchmark(group="mcp-call")
def test_mcp_call_sdk_per_call(benchmark):
    from mcp import ClientSession, stdio_client
    params = _sdk_params()

    async def call():
        with open(os.devnull, "w") as devnull:
            async with stdio_client(params, errlog=devnull) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await session.call_tool("add", {"a": 2, "b": 3})

    def once():
        return asyncio.run(call())

    r = benchmark.pedantic(once, rounds=SLOW_ROUNDS, iterations=1, warmup_rounds=1)
    assert r.content[0].text == "5"


@pytest.mark.benchmark(group="mcp-call")
def test_mcp_call_sdk_session(benchmark):
    from mcp import ClientSession, stdio_client
    params = _sdk_params()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ready = asyncio.Event()
    stop = None
    holder = {}

    async def owner():
        # the SDK's contexts must be entered and left in one task
        nonlocal stop
        stop = asyncio.Event()
        with open(os.devnull, "w") as devnull:
            async with stdio_client(params, errlog=devnull) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    holder["session"] = session
                    ready.set()
                    await stop.wait()

    task = asyncio.run_coroutine_threadsafe(owner(), loop)
    asyncio.run_coroutine_threadsafe(asyncio.wait_for(ready.wait(), 60), loop).result(70)

    def once():
        fut = asyncio.run_coroutine_threadsafe(
            holder["session"].call_tool("add", {"a": 2, "b": 3}), loop)
        return fut.result(60)

    try:
        r = benchmark(once)
        assert r.content[0].text == "5"
    finally:
        loop.call_soon_threadsafe(stop.set)
        task.result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
