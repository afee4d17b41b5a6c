"""Escape catalogue, issue 22 (SECURITY.md "Process lifetimes, signals and
output memory"): children start with clean signal state whatever lexfast
inherited, unread output is bounded by the memory it holds, and nothing a
session started outlives its ``close()``, nor does any wait on it.

Real children throughout; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time

import pytest

from lexfast import NONE, EffectError, Limits, Map, some
from lexfast.effects.proc import ops as procmod

PROC = ["proc"]
OPTS0 = {"cwd": NONE, "env": Map(), "stdin": NONE}
T = 10
HERE = os.path.dirname(os.path.abspath(__file__))
# where the lexfast under test was imported from (an installed copy in CI,
# the source tree with PYTHONPATH in development): the child imports the same
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__import__("lexfast").__file__)))
TINY = f"{shlex.quote(sys.executable)} {shlex.quote(os.path.join(HERE, 'mcp_tiny_server.py'))}"


def spawn(h, cmd, args):
    r = h.dispatch("process", "spawn", [cmd, args, OPTS0])
    assert r.name == "Ok", r
    return r.args[0]


def state_of(pid: int) -> str | None:
    """The process's state letter, None once it is gone (or a zombie: dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    return None if st in ("Z", "X") else st


def wait_gone(pid: int, timeout: float = T) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state_of(pid) is None:
            return True
        time.sleep(0.02)
    return False


def read_pid(path, timeout: float = T) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = open(path).read().strip()
        except OSError:
            text = ""
        if text.isdigit():
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"no pid written to {path}")


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except OSError:
        pass


def run_in_thread(fn):
    out = []

    def target():
        try:
            out.append(fn())
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out.append(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


# -- signals (issue 22.6) -------------------------------------------------------------

_SIGNALS_CHILD = r"""
import json, os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)           # as under nohup / a background job
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGHUP})
sys.path.insert(0, sys.argv[1])
from lexfast import DefaultHandler, Policy, Map, NONE, CapturedSink
h = DefaultHandler(Policy(allow_effects=["proc", "mcp"]), sink=CapturedSink())
def sig_fields(pid):
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, v in (l.split(":", 1) for l in f if l.startswith("Sig"))}
out = {"self": sig_fields(os.getpid())}
hd = h.dispatch("process", "spawn", ["sleep", ["30"], {"cwd": NONE, "env": Map(), "stdin": NONE}]).args[0]
out["process.spawn"] = sig_fields(h.session.registry("process")[hd].popen.pid)
out["kill"] = repr(h.dispatch("process", "kill", [hd, "SIGINT"]))
out["wait"] = h.dispatch("process", "wait", [hd])
for op in ("proc.spawn", "process.run"):
    kind, name = op.split(".")
    r = h.dispatch(kind, name, ["grep", ["^Sig", "/proc/self/status"]])
    out[op] = {k: v.strip() for k, v in (l.split(":", 1) for l in r.args[0]["stdout"].splitlines())}
r = h.dispatch("agent", "call_mcp", [sys.argv[2], "pid", "{}"])
mcp_pid = int(json.loads(r.args[0])["content"][0]["text"])
out["mcp"] = sig_fields(mcp_pid)
h.close()
print(json.dumps(out))
"""


def test_escape_children_inherit_ignored_and_blocked_signals(tmp_path):
    """lexfast started with SIGINT ignored and SIGTERM/SIGHUP blocked: its
    children (process.*, proc.spawn, process.run, MCP servers) start clean,
    and process.kill(h, "SIGINT") ends one."""
    p = subprocess.run([sys.executable, "-c", _SIGNALS_CHILD, PKG_PARENT, f"{TINY} ok"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    # the premise: lexfast itself ignores SIGINT and blocks SIGTERM
    assert int(out["self"]["SigIgn"], 16) & (1 << (2 - 1))
    assert int(out["self"]["SigBlk"], 16) & (1 << (15 - 1))
    for who in ("process.spawn", "proc.spawn", "process.run", "mcp"):
        if who == "mcp":  # Python itself ignores SIGPIPE/SIGXFSZ at startup
            ign = int(out[who]["SigIgn"], 16) & ~((1 << (13 - 1)) | (1 << (25 - 1)))
            assert ign == 0, (who, out[who])
        else:
            assert int(out[who]["SigIgn"], 16) == 0, (who, out[who])
        assert int(out[who]["SigBlk"], 16) == 0, (who, out[who])
    assert out["kill"] == "Variant('Ok', (None,))"
    assert out["wait"] == {"code": -1, "signaled": True}  # SIGINT's default: it died


# -- output memory (issue 22.8) ---------------------------------------------------------

def _held(stream) -> int:
    """Bytes of memory the stream's buffered lines really hold: each bytes
    object (pymalloc rounds small ones up to 16; larger ones carry a malloc
    header), its deque slot, and the partial line."""
    total = 0
    with stream.cond:
        for item in stream.items:
            total += 8
            if isinstance(item, bytes):
                n = sys.getsizeof(item)
                total += -(-n // 16) * 16 if n <= 512 else n + 16 + 15
        total += len(stream.partial)
    return total


def _wait_for_marker(stream, timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with stream.cond:
            if stream.items and isinstance(stream.items[-1], procmod.Marker):
                return
        time.sleep(0.02)
    raise AssertionError("the stream never reached its cap")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_escape_unread_empty_and_tiny_lines_exceed_the_output_cap(make_handler):
    """``yes ''`` and ``yes a`` unread: an empty line used to cost 0 against
    the cap (memory grew without bound). Lines now cost their memory: the
    streams hold at most the cap, reading works, the loss is reported once."""
    cap = 256 << 10
    h = make_handler(effects=PROC, limits=Limits(proc_output_bytes=cap))
    rss0 = _rss()
    handles = [spawn(h, "yes", [""]), spawn(h, "yes", ["a"])]
    procs = [h.session.registry("process")[hd] for hd in handles]
    for p in procs:
        _wait_for_marker(p.out)
    time.sleep(0.5)  # still flooding: nothing more may be held
    for p in procs:
        assert p.out.buffered <= cap
        assert _held(p.out) <= cap, _held(p.out)
    pool = procmod._state(h.session).pool
    assert pool.used <= pool.cap
    assert _rss() - rss0 < 4 * cap + (32 << 20)
    # reading still works: the lines held, then the loss, reported once
    for hd, text in zip(handles, ("", "a"), strict=True):
        assert h.dispatch("process", "read_stdout_line", [hd]) == some(text)
        for _ in range(cap):
            try:
                v = h.dispatch("process", "read_stdout_line", [hd])
            except EffectError as e:
                assert "bytes of unread output; lines were dropped" in str(e)
                break
            assert v == some(text)
        else:
            raise AssertionError("the loss was never reported")
        assert h.dispatch("process", "read_stdout_line", [hd]) == some(text)
        assert h.dispatch("process", "kill", [hd, "KILL"]).name == "Ok"
        assert h.dispatch("process", "wait", [hd])["signaled"] is True


def test_escape_partial_lines_across_handles_exceed_the_session_cap(make_handler):
    """Output without a newline (a partial line, up to proc_line_bytes each)
    was not counted: 256 handles could hold 256 MiB. It counts now."""
    cap = 64 << 10
    h = make_handler(effects=PROC, limits=Limits(proc_output_bytes=cap, proc_line_bytes=1 << 20))
    script = "head -c 200000 /dev/zero | tr '\\0' x; sleep 30"
    handles = [spawn(h, "sh", ["-c", script]) for _ in range(6)]
    procs = [h.session.registry("process")[hd] for hd in handles]
    pool = procmod._state(h.session).pool
    for p in procs:
        _wait_for_marker(p.out)
    assert pool.cap == 4 * cap
    assert pool.used <= pool.cap
    assert sum(len(p.out.partial) for p in procs) <= pool.cap
    for p in procs:
        assert p.out.buffered <= cap
    for hd in handles:
        with pytest.raises(EffectError, match="lines were dropped"):
            h.dispatch("process", "read_stdout_line", [hd])
        h.dispatch("process", "kill", [hd, "KILL"])
        h.dispatch("process", "wait", [hd])


def test_escape_long_line_markers_pile_up(make_handler):
    """Each over-long line used to leave its own uncounted marker: a child
    printing long lines for ever grew the queue for ever. A run of losses
    now leaves one marker."""
    h = make_handler(effects=PROC, limits=Limits(proc_line_bytes=1000))
    hd = spawn(h, "sh", ["-c", "head -c 2000 /dev/zero | tr '\\0' x; echo; exec yes " + "y" * 1500])
    p = h.session.registry("process")[hd]
    _wait_for_marker(p.out)
    time.sleep(0.5)
    with p.out.cond:
        assert len(p.out.items) == 1
    with pytest.raises(EffectError, match="line longer than 1000 bytes"):
        h.dispatch("process", "read_stdout_line", [hd])
    h.dispatch("process", "kill", [hd, "KILL"])
    h.dispatch("process", "wait", [hd])


# -- lifetimes (issue 22.9) ---------------------------------------------------------------

def test_escape_grandchild_outlives_close_after_its_parent_exits(make_handler, tmp_path):
    """``sh -c "sleep 300 & ..."``: once the direct child had exited (and
    was reaped by process.wait, proc.spawn or process.run, or not), close()
    no longer killed its group. Every grandchild is killed at close now."""
    h = make_handler(effects=PROC)
    pids = {}

    def bg(name):
        f = tmp_path / name
        return f"sleep 300 >/dev/null 2>&1 & echo $! > {shlex.quote(str(f))}; exit 0"

    hd = spawn(h, "sh", ["-c", bg("waited")])
    assert h.dispatch("process", "wait", [hd]) == {"code": 0, "signaled": False}
    pids["waited"] = read_pid(tmp_path / "waited")
    hd2 = spawn(h, "sh", ["-c", bg("unwaited")])
    pids["unwaited"] = read_pid(tmp_path / "unwaited")
    for kind, op in (("proc", "spawn"), ("process", "run")):
        r = h.dispatch(kind, op, ["sh", ["-c", bg(op)]])
        assert r.name == "Ok" and r.args[0]["exit_code"] == 0, r
        pids[op] = read_pid(tmp_path / op)
    try:
        time.sleep(0.2)
        assert h.dispatch("process", "read_stdout_line", [hd2]) == NONE
        for name, pid in pids.items():
            assert state_of(pid) is not None, name  # alive until close
        h.close()
        for name, pid in pids.items():
            assert wait_gone(pid), f"{name}: grandchild {pid} outlived close()"
    finally:
        for pid in pids.values():
            kill_quietly(pid)


_ESCAPER = r"""
import os, sys, time
if os.fork() == 0:
    os.setsid()  # out of lexfast's group and session, holding the pipes
    open(sys.argv[1], "w").write(str(os.getpid()))
    time.sleep(300)
    os._exit(0)
os._exit(0)
"""


def test_escape_blocked_calls_outlive_close(make_handler, tmp_path):
    """proc.spawn / process.run waiting for pipes a grandchild holds (here one
    that left the group, so no kill reaches it), process.wait and
    read_stdout_line: close() from another thread ends every one promptly
    with an error, and no thread is left behind."""
    h = make_handler(effects=PROC)
    before = threading.active_count()
    f1, f2 = tmp_path / "a", tmp_path / "b"
    hd = spawn(h, "sleep", ["300"])
    hd2 = spawn(h, "sleep", ["300"])
    calls = [
        lambda: h.fork().dispatch("proc", "spawn", [sys.executable, ["-c", _ESCAPER, str(f1)]]),
        lambda: h.fork().dispatch("process", "run", [sys.executable, ["-c", _ESCAPER, str(f2)]]),
        lambda: h.fork().dispatch("process", "wait", [hd]),
        lambda: h.fork().dispatch("process", "read_stdout_line", [hd2]),
    ]
    started = [run_in_thread(c) for c in calls]
    escaped = [read_pid(f1), read_pid(f2)]
    try:
        time.sleep(0.3)
        assert all(t.is_alive() for t, _ in started)  # really blocked
        t0 = time.monotonic()
        h.close()
        for t, _ in started:
            t.join(T)
        assert time.monotonic() - t0 < 5
        results = [out[0] for _t, out in started]
        assert [str(r) for r in results] == [
            "proc.spawn: the handler is closed", "process.run: the handler is closed",
            "process.wait: the handler is closed",
            "process.read_stdout_line: the handler is closed"], results
        assert all(isinstance(r, EffectError) for r in results)
        deadline = time.monotonic() + T
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert threading.active_count() <= before
    finally:
        for pid in escaped:  # left the session: the documented limit
            kill_quietly(pid)


def test_escape_mcp_start_outlives_close(make_handler):
    """An MCP server that never answers ``initialize``: its start is not in
    the session's registry yet, so close() used to leave the caller blocked
    for mcp_start_timeout_s and the server running. Now the server is killed
    and the caller gets an error at once."""
    h = make_handler(effects=["mcp"], limits=Limits(mcp_start_timeout_s=60.0))
    t, out = run_in_thread(
        lambda: h.fork().dispatch("agent", "call_mcp", [f"{TINY} silent", "add", "{}"]))
    deadline = time.monotonic() + T
    while not _mcp_fresh(h) and time.monotonic() < deadline:
        time.sleep(0.02)
    servers = [c.pid for c in _mcp_fresh(h)]
    assert servers
    t0 = time.monotonic()
    h.close()
    t.join(T)
    assert not t.is_alive() and time.monotonic() - t0 < 5
    assert isinstance(out[0], EffectError) and str(out[0]) == \
        "agent.call_mcp: the handler is closed", out
    for pid in servers:
        assert wait_gone(pid)
    assert _mcp_fresh(h) == []


def _mcp_fresh(h):
    st = h.session.state("mcp")
    return list(st.fresh) if st is not None else []
