"""agent.call_mcp against real stdio MCP servers: one written with the
official SDK (tests/mcp_server_fixture.py) and a small hand-written one that
misbehaves on purpose (tests/mcp_tiny_server.py)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
import threading
import time

import pytest

import lexfast
from lexfast import EffectError, Limits
from lexfast.effects.agent.ops import mcp_pids

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
SDK = f"{shlex.quote(PY)} {shlex.quote(os.path.join(HERE, 'mcp_server_fixture.py'))}"
TINY = f"{shlex.quote(PY)} {shlex.quote(os.path.join(HERE, 'mcp_tiny_server.py'))}"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="checks children through /proc")


def children() -> set:
    """Our direct children, zombies included (a reaped child is gone)."""
    out = set()
    base = f"/proc/{os.getpid()}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/children") as f:
                out.update(int(x) for x in f.read().split())
        except FileNotFoundError:
            pass
    return out


def wait_busy(h, server, within: float = 10.0) -> None:
    """Until a call to ``server`` is in flight on another thread."""
    deadline = time.monotonic() + within
    reg = h.session.state("mcp").reg
    while time.monotonic() < deadline:
        client = reg.get(server)
        if client is not None and client.busy:
            time.sleep(0.05)  # the request is written by now
            return
        time.sleep(0.01)
    raise AssertionError(f"{server} never became busy")


def gone(pid: int, within: float = 3.0) -> bool:
    """``pid`` no longer exists (or is a zombie of another parent, soon reaped)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z" and pid not in children():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def agent(make_handler):
    """A handler granting ``mcp`` with the test's limits."""
    def make(procs=(), **limits):
        return make_handler(effects=["mcp"], procs=procs, limits=Limits(**limits))
    return make


@pytest.fixture(scope="module")
def shared():
    """One handler (and so one SDK server) for the tests that only read."""
    h = lexfast.DefaultHandler(lexfast.Policy(allow_effects=["mcp"]),
                               sink=lexfast.CapturedSink(), limits=Limits(mcp_timeout_s=20.0))
    yield h
    h.close()


def call(h, server, tool, args="{}"):
    return h.dispatch("agent", "call_mcp", [server, tool, args])


def ok_json(v):
    assert v.name == "Ok", v
    return json.loads(v.args[0])


def text_of(v):
    return ok_json(v)["content"][0]["text"]


def err_text(v):
    assert v.name == "Err", v
    return v.args[0]


# -- the real SDK server -------------------------------------------------------

def test_round_trip_and_cache_by_pid(agent):
    h = agent(mcp_timeout_s=20.0)
    before = children()
    r = ok_json(call(h, SDK, "add", '{"a": 2, "b": 40}'))
    assert r["isError"] is False and r["content"][0]["text"] == "42"
    # compact JSON, as the reference's serde_json::to_string
    assert '"isError":false' in call(h, SDK, "add", '{"a": 1, "b": 1}').args[0]
    pid1 = int(text_of(call(h, SDK, "pid")))
    pid2 = int(text_of(call(h, SDK, "pid")))
    assert pid1 == pid2 == mcp_pids(h)[SDK]
    assert children() - before == {pid1}  # one process for every call
    h.close()
    assert pid1 not in children()
    assert mcp_pids(h) == {}


def test_tool_failure_is_a_result_not_an_error(shared):
    h = shared
    r = ok_json(call(h, SDK, "fail", '{"message": "boom"}'))
    assert r["isError"] is True


def test_jsonrpc_error_is_err_and_keeps_the_server(shared):
    h = shared
    pid = int(text_of(call(h, SDK, "pid")))
    msg = err_text(call(h, SDK, "add", "[1, 2]"))  # arguments must be an object
    assert msg.startswith("mcp.rpc tools/call: {")
    assert json.loads(msg[len("mcp.rpc tools/call: "):])["code"] == -32602
    assert int(text_of(call(h, SDK, "pid"))) == pid


def test_timeout_drops_and_reaps_then_respawns(agent):
    h = agent(mcp_timeout_s=1.0)
    pid = int(text_of(call(h, SDK, "pid")))
    t0 = time.monotonic()
    msg = err_text(call(h, SDK, "sleep", '{"seconds": 30}'))
    elapsed = time.monotonic() - t0
    assert msg.startswith("mcp.rpc tools/call: no reply within 1 s"), msg
    assert elapsed < 10, elapsed
    assert SDK not in mcp_pids(h)
    assert pid not in children()  # reaped, not a zombie
    new = int(text_of(call(h, SDK, "pid")))
    assert new != pid


def test_noisy_server_cannot_block(shared):
    # 1.5 MiB on stderr (far past a 64 KiB pipe) and log notifications
    # before the answer
    h = shared
    r = ok_json(call(h, SDK, "noise", '{"stderr_bytes": 1500000, "notifications": 5}'))
    assert r["content"][0]["text"] == "quiet now"
    assert text_of(call(h, SDK, "add", '{"a": 1, "b": 2}')) == "3"


def test_server_killed_between_calls_respawns(agent):
    h = agent(mcp_timeout_s=20.0)
    pid = int(text_of(call(h, SDK, "pid")))
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    new = int(text_of(call(h, SDK, "pid")))
    assert new != pid
    assert pid not in children()


def test_forks_share_the_cache(shared):
    h = shared
    pid = int(text_of(call(h, SDK, "pid")))
    results = []

    def worker():
        results.append(int(text_of(call(h.fork(), SDK, "pid"))))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [pid] * 4


def test_environment_is_filtered(agent, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("LEX_LLM_CLOUD_API_KEY", "sk-secret2")
    monkeypatch.setenv("LEXFAST_TEST_PASS", "1")
    monkeypatch.setenv("LEXFAST_MCP_ENV", "LEXFAST_TEST_PASS")
    h = agent(mcp_timeout_s=20.0)
    names = ok_json(call(h, SDK, "env_names"))["structuredContent"]["result"]
    assert "OPENAI_API_KEY" not in names and "LEX_LLM_CLOUD_API_KEY" not in names
    assert "LEXFAST_TEST_PASS" in names and "PATH" in names


def test_shell_metacharacters_are_plain_argv(agent, tmp_path):
    h = agent(mcp_timeout_s=20.0)
    p = tmp_path
    extra = (f"; touch {p}/a && touch {p}/b | tee {p}/c $(touch {p}/d) `touch {p}/e` "
             f"> {p}/f 'two words' $HOME *")
    argv = ok_json(call(h, f"{SDK} {extra}", "argv"))["structuredContent"]["result"]
    assert argv[:3] == [";", "touch", f"{p}/a"]
    assert "$(touch" in argv and "`touch" in argv and ">" in argv
    assert "two words" in argv and "$HOME" in argv and "*" in argv
    assert list(p.iterdir()) == []


# -- the misbehaving servers --------------------------------------------------

def test_handshake_in_full(agent):
    h = agent(mcp_timeout_s=5.0)
    r = ok_json(call(h, f"{TINY} ok", "client"))
    assert r["initialized"] is True  # notifications/initialized came before tools/call
    assert r["init"]["protocolVersion"] == lexfast.effects.agent.mcp_client.PROTOCOL_VERSION
    assert r["init"]["clientInfo"] == {"name": "lexfast", "version": lexfast.__version__}
    assert r["init"]["capabilities"] == {}


def test_older_protocol_accepted_unknown_refused(agent):
    h = agent(mcp_timeout_s=5.0)
    assert text_of(call(h, f"{TINY} oldversion", "add", '{"a": 1, "b": 2}')) == "3"
    before = children()
    msg = err_text(call(h, f"{TINY} badversion", "add", '{"a": 1, "b": 2}'))
    assert msg.startswith('mcp.rpc initialize: unsupported protocol version "1999-01-01"')
    assert children() <= before
    assert f"{TINY} badversion" not in mcp_pids(h)


def test_stray_output_ids_and_stderr_are_skipped(agent):
    h = agent(mcp_timeout_s=5.0)
    for _ in range(3):
        assert text_of(call(h, f"{TINY} noise", "add", '{"a": 2, "b": 3}')) == "5"
    assert len(mcp_pids(h)) == 1


def test_server_ping_is_answered(agent):
    h = agent(mcp_timeout_s=5.0)
    assert text_of(call(h, f"{TINY} ping", "add", '{"a": 2, "b": 2}')) == "4"


def test_silent_server_times_out(agent):
    h = agent(mcp_start_timeout_s=1.0)
    before = children()
    t0 = time.monotonic()
    msg = err_text(call(h, f"{TINY} silent", "add", "{}"))
    assert msg == "mcp.rpc initialize: no reply within 1 s"
    assert time.monotonic() - t0 < 5
    assert children() <= before
    assert mcp_pids(h) == {}


def test_flood_is_capped_and_dropped(agent):
    h = agent(mcp_timeout_s=10.0, mcp_reply_bytes=1 << 20)
    before = children()
    msg = err_text(call(h, f"{TINY} flood", "add", "{}"))
    assert msg == f"mcp.rpc tools/call: reply line exceeds {1 << 20} bytes"
    assert children() <= before
    assert mcp_pids(h) == {}


def test_ping_flood_without_reading_replies_is_capped(agent):
    # each answer we owe is kept until the server reads it: unbounded, a
    # server that never reads grew our memory without limit
    h = agent(mcp_timeout_s=10.0)
    before = children()
    t0 = time.monotonic()
    msg = err_text(call(h, f"{TINY} pingflood", "add", "{}"))
    assert msg == "mcp.rpc tools/call: server sends requests without reading replies"
    assert time.monotonic() - t0 < 5
    assert children() <= before
    assert mcp_pids(h) == {}


def test_server_dying_mid_call(agent):
    h = agent(mcp_timeout_s=5.0)
    before = children()
    msg = err_text(call(h, f"{TINY} die", "add", "{}"))
    assert msg.startswith("mcp.rpc: server closed stdout (exit status 3")
    assert children() <= before


def test_server_closing_stdout_but_not_stderr_fails_at_once(agent):
    # the exit-message drain of stderr once spun at 100% CPU until the
    # server exited (forever with `sleep infinity`)
    import resource
    h = agent(mcp_start_timeout_s=1.0)
    before = children()
    t0 = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    msg = err_text(call(h, "/bin/sh -c 'exec 1>&-; echo bye >&2; sleep 30'", "add", "{}"))
    assert time.monotonic() - t0 < 2.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0 < 1.0
    assert msg.startswith("mcp.rpc: server closed stdout"), msg
    assert children() <= before
    assert mcp_pids(h) == {}


def test_broken_json_message_fails_at_once(agent):
    h = agent(mcp_timeout_s=20.0)
    before = children()
    t0 = time.monotonic()
    msg = err_text(call(h, f"{TINY} badjson", "add", "{}"))
    assert time.monotonic() - t0 < 5
    assert msg.startswith('mcp.rpc: parse `{"jsonrpc": "2.0", "id": 2, "result": {"x":`: ')
    assert re.search(r": EOF while parsing a value at line 1 column \d+$", msg), msg
    assert children() <= before


def test_rpc_error_from_tiny_server(agent):
    h = agent(mcp_timeout_s=5.0)
    msg = err_text(call(h, f"{TINY} ok", "rpc_error"))
    assert msg == ('mcp.rpc tools/call: {"code":-32602,"message":"bad params",'
                   '"data":{"why":"test"}}')


def test_eviction_past_16_reaps_every_evicted_server(agent):
    h = agent(mcp_timeout_s=10.0)
    before = children()
    pids = []
    for i in range(20):
        pids.append(int(text_of(call(h, f"{TINY} ok {i}", "pid"))))
    live = mcp_pids(h)
    assert len(live) == 16
    assert sorted(live.values()) == sorted(pids[4:])
    assert list(live) == [f"{TINY} ok {i}" for i in range(4, 20)]  # LRU order
    now = children() - before
    assert now == set(pids[4:])  # the 4 evicted are reaped, not zombies
    # a hit refreshes recency: server 4 survives the next insert, 5 goes
    call(h, f"{TINY} ok 4", "pid")
    call(h, f"{TINY} ok 20", "pid")
    assert f"{TINY} ok 4" in mcp_pids(h) and f"{TINY} ok 5" not in mcp_pids(h)
    assert pids[5] not in children()
    t0 = time.monotonic()
    h.close()
    assert time.monotonic() - t0 < 5  # stopped together, not one grace each
    assert children() <= before


def test_close_escalates_to_sigkill_and_kills_the_group(agent):
    h = agent(mcp_timeout_s=5.0)
    before = children()
    stubborn = int(text_of(call(h, f"{TINY} stubborn", "pid")))
    grandchild = ok_json(call(h, f"{TINY} grandchild", "grandchild"))["pid"]
    t0 = time.monotonic()
    h.close()
    assert time.monotonic() - t0 < 8
    assert stubborn not in children()
    assert children() <= before
    assert gone(grandchild)


# -- policy and arguments -----------------------------------------------------

def test_allow_proc_denial(make_handler):
    h = make_handler(effects=["mcp"], procs=["git"], limits=Limits(mcp_timeout_s=5.0))
    before = children()
    msg = err_text(call(h, f"{TINY} ok", "add", "{}"))
    assert msg == f'mcp.spawn: `{PY}` not in --allow-proc ["git"]'
    assert children() <= before
    h2 = make_handler(effects=["mcp"], procs=["python3-not-this"])
    assert err_text(call(h2, "python3 -c pass", "t")).startswith(
        "mcp.spawn: `python3` not in --allow-proc")


def test_allow_proc_permits_the_named_binary(make_handler):
    h = make_handler(effects=["mcp"], procs=[PY], limits=Limits(mcp_timeout_s=5.0))
    assert text_of(call(h, f"{TINY} ok", "add", '{"a": 1, "b": 1}')) == "2"


def test_gate(make_handler):
    with pytest.raises(EffectError, match="effect `mcp` not in --allow-effects"):
        call(make_handler(), f"{TINY} ok", "add")
    with pytest.raises(ValueError, match="unknown effect kind `mcp:ocpp`"):
        make_handler(effects=["mcp:ocpp"])
    with pytest.raises(EffectError, match="unsupported agent.bogus"):
        make_handler(effects=["a2a"]).dispatch("agent", "bogus", [])


def test_invalid_args_json_spawns_nothing(permissive):
    before = children()
    msg = err_text(call(permissive, "nonexistent_command", "lex_check", "this is not json"))
    # serde_json's text, as the reference reports it (the shared formatter)
    assert msg == "agent.call_mcp: args_json is not valid JSON: expected ident at line 1 column 2"
    assert "not valid JSON" in err_text(call(permissive, f"{TINY} ok", "add", '{"a": NaN}'))
    assert "not valid JSON" in err_text(call(permissive, f"{TINY} ok", "add", "[" * 100000))
    assert children() <= before
    assert mcp_pids(permissive) == {}


def test_argument_and_spawn_errors(permissive):
    h = permissive
    prefix = "agent.call_mcp(server, tool, args_json): "
    assert err_text(h.dispatch("agent", "call_mcp", [1, "t", "{}"])) == prefix + "server must be Str"
    assert err_text(h.dispatch("agent", "call_mcp", ["x", None, "{}"])) == prefix + "tool must be Str"
    assert err_text(h.dispatch("agent", "call_mcp", ["x", "t"])) == prefix + "args_json must be Str"
    assert err_text(call(h, "   ", "t")) == "mcp.spawn: empty command"
    assert err_text(call(h, "no-such-mcp-xyz", "t")) == \
        "mcp.spawn `no-such-mcp-xyz`: No such file or directory (os error 2)"
    assert err_text(call(h, "/nonexistent/dir/srv --x", "t")).startswith(
        "mcp.spawn `/nonexistent/dir/srv`: No such file or directory (os error 2)")
    assert err_text(call(h, "'unbalanced", "t")).startswith(
        "mcp.spawn: cannot split the command line: ")
    assert err_text(call(h, "srv a\0b", "t")) == "mcp.spawn `srv`: argument contains a NUL byte"
    assert err_text(call(h, "x " + "a " * 1100, "t")) == "mcp.spawn: arg-count exceeds 1024"
    assert mcp_pids(h) == {}


def test_closed_handler_refuses(agent):
    h = agent(mcp_timeout_s=5.0)
    h.close()
    with pytest.raises(EffectError, match="the handler is closed"):
        call(h, f"{TINY} ok", "add")
    h2 = agent(mcp_timeout_s=5.0)
    call(h2, f"{TINY} ok", "pid")
    h2.close()
    before = children()
    with pytest.raises(EffectError, match="the handler is closed"):
        call(h2.fork(), f"{TINY} ok 2", "add")
    assert children() <= before


# -- concurrency: who reaps a server that is evicted or closed mid-call ----------

def test_server_evicted_mid_call_is_reaped_by_its_caller(agent):
    h = agent(mcp_timeout_s=20.0)
    before = children()
    busy = f"{TINY} ok busy"
    pid = int(text_of(call(h, busy, "pid")))
    out = []
    t = threading.Thread(target=lambda: out.append(call(h.fork(), busy, "sleep",
                                                        '{"seconds": 4}')))
    t.start()
    wait_busy(h, busy)
    for i in range(16):  # pushes the busy server out of the LRU
        call(h, f"{TINY} ok {i}", "pid")
    assert busy not in mcp_pids(h)
    if t.is_alive():  # (on a very loaded machine the call may be over already)
        assert pid in children()  # not killed under the call in flight
    t.join(20)
    assert out and out[0].name == "Ok"  # the call finished normally
    assert pid not in children()  # then its caller reaped it
    h.close()
    assert children() <= before


def test_close_during_a_call_stops_it(agent):
    h = agent(mcp_timeout_s=20.0)
    before = children()
    srv = f"{TINY} ok"
    pid = int(text_of(call(h, srv, "pid")))
    out = []

    def run():
        try:
            out.append(call(h.fork(), srv, "sleep", '{"seconds": 30}'))
        except EffectError as e:
            out.append(e)

    t = threading.Thread(target=run)
    t.start()
    wait_busy(h, srv)
    t0 = time.monotonic()
    h.close()
    assert time.monotonic() - t0 < 3
    t.join(10)
    assert not t.is_alive()
    # the caller is woken with an error saying why, not a value
    assert isinstance(out[0], EffectError) and str(out[0]) == \
        "agent.call_mcp: the handler is closed", out
    assert pid not in children()
    assert children() <= before


def test_second_caller_waits_for_a_busy_server_boundedly(agent):
    h = agent(mcp_timeout_s=1.0)
    srv = f"{TINY} ok"
    pid = int(text_of(call(h, srv, "pid")))
    out = []
    t = threading.Thread(target=lambda: out.append(call(h.fork(), srv, "sleep",
                                                        '{"seconds": 5}')))
    t.start()
    wait_busy(h, srv)
    t0 = time.monotonic()
    # queued behind the stuck call, which times out and drops the server:
    # this call then gets a fresh one
    new = int(text_of(call(h, srv, "pid")))
    assert time.monotonic() - t0 < 4
    assert new != pid
    t.join(10)
    assert out[0].args[0].startswith("mcp.rpc tools/call: no reply within 1 s")


def test_no_fd_or_thread_leak(agent):
    h = agent(mcp_timeout_s=5.0, mcp_start_timeout_s=5.0)
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    for i in range(18):  # two evictions
        call(h, f"{TINY} ok {i}", "pid")
    call(h, f"{TINY} die", "add")
    call(h, f"{TINY} badversion", "add")
    assert threading.active_count() == threads  # no reader threads at all
    h.close()
    assert len(os.listdir("/proc/self/fd")) == fds


def test_lone_surrogates_do_not_break_the_wire(agent):
    h = agent(mcp_timeout_s=5.0)
    assert text_of(call(h, f"{TINY} ok", "add", '{"a": 1, "b": 2, "s": "\\ud800"}')) == "3"
    msg = err_text(call(h, f"{TINY} ok", "\ud800"))
    msg.encode("utf-8")  # escaped where it could not be UTF-8
    assert "Unknown tool: \\ud800" in msg
    assert text_of(call(h, f"{TINY} ok", "add", '{"a": 2, "b": 2}')) == "4"  # server kept
