"""Record and replay (issue 25, docs/design.md §9): a run recorded with real
effects (files, a local HTTP server, processes, kv, the clock) and replayed
with the world changed gives the same answers; divergence, override,
scrubbing, the bound, forks, bad traces, and the CLI's --record/--replay."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import lexfast
from lexfast import (
    NONE,
    DefaultHandler,
    EffectError,
    Limits,
    Map,
    Policy,
    PolicyDenied,
    ReplayDivergence,
    Variant,
    some,
)
from lexfast.handler import CapturedSink
from lexfast.kernel import HandlerCore
from lexfast.record import SCRUBBED

PERMISSIVE = Policy.permissive()


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = json.dumps({"path": self.path,
                           "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path == "/x":  # the scrubbing test's response
            self.send_header("Set-Cookie", "session=topsecret")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    state = {"srv": srv, "thread": t, "running": True}

    def stop() -> None:
        if state["running"]:
            srv.shutdown()
            srv.server_close()
            t.join(timeout=10)
            state["running"] = False

    state["stop"] = stop
    yield state
    stop()


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _program(h: DefaultHandler, data: Path, url: str, store: Path) -> list:
    """A run touching files, HTTP, processes, kv, the clock, a denial, a
    budget note and an error: every answer it got."""
    out: list = []
    out.append(h.dispatch("fs", "exists", [str(data)]))
    out.append(h.dispatch("io", "read", [str(data)]))
    out.append(h.dispatch("time", "now", []))
    out.append(h.dispatch("http", "get", [url + "/hello"]))
    out.append(h.dispatch("process", "run", ["printf", ["hi %s", "there"]]))
    kv = h.dispatch("kv", "open", [str(store)])
    out.append(kv)
    handle = kv.args[0]
    out.append(h.dispatch("kv", "put", [handle, "k", b"v1"]))
    out.append(h.dispatch("kv", "get", [handle, "k"]))
    out.append(h.dispatch("kv", "close", [handle]))
    db = h.dispatch("sql", "open", [str(store) + ".db"])
    out.append(db)
    k = db.args[0]
    out.append(h.dispatch("sql", "exec", [k, "CREATE TABLE t(id INTEGER, name TEXT)", []]))
    out.append(h.dispatch("sql", "exec", [k, "INSERT INTO t VALUES (?1, ?2)", ["1", "ann"]]))
    out.append(h.dispatch("sql", "query", [k, "SELECT id, name FROM t", []]))
    out.append(h.dispatch("io", "print", ["printed"]))
    h.note_call_budget(5)
    try:
        h.dispatch("fs", "exists", [42])
    except EffectError as e:
        out.append(("raised", type(e).__name__, str(e)))
    out.append(h.dispatch("str", "len", ["four"]))  # a pure builtin: not recorded
    return out


def test_record_then_replay_with_the_world_changed(tmp_path, server):
    data = tmp_path / "data.txt"
    data.write_text("contents")
    url = f"http://127.0.0.1:{server['srv'].server_address[1]}"
    trace = tmp_path / "t.jsonl"
    sink = CapturedSink()
    with DefaultHandler(PERMISSIVE, record=trace, sink=sink) as h:
        live = _program(h, data, url, tmp_path / "kv")
    assert sink.lines == ["printed"]
    entries = _lines(trace)
    assert entries[0]["lexfast_trace"] == 1 and entries[0]["pure"] is False
    ops = [(e.get("kind"), e.get("op")) for e in entries[1:] if "kind" in e]
    assert ("str", "len") not in ops
    assert ("http", "get") in ops and ("process", "run") in ops
    assert any(e.get("budget") == 5 for e in entries[1:])
    assert [e["step"] for e in entries[1:]] == list(range(len(entries) - 1))

    # the world changes: the file is gone, the server stopped, the store deleted
    data.unlink()
    server["stop"]()
    for p in sorted((tmp_path / "kv").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (tmp_path / "kv").rmdir()
    (tmp_path / "kv.db").unlink()
    sink = CapturedSink()
    with DefaultHandler(PERMISSIVE, replay=trace, sink=sink) as r:
        again = _program(r, data, url, tmp_path / "kv")
    assert again == live
    assert Variant("Ok", ([{"id": 1, "name": "ann"}],)) in live
    # kv.open and sql.open were answered, not performed; io.print printed nothing
    assert not (tmp_path / "kv").exists() and not (tmp_path / "kv.db").exists()
    assert sink.lines == []


def test_replay_raises_what_was_raised(tmp_path):
    trace = tmp_path / "t.jsonl"
    pol = Policy(allow_effects=("time",), budget=10)
    with DefaultHandler(pol, record=trace) as h:
        with pytest.raises(PolicyDenied) as denied:
            h.dispatch("fs", "exists", ["/"])
        h.note_call_budget(8)
        with pytest.raises(lexfast.BudgetExceeded) as over:
            h.note_call_budget(8)
    with DefaultHandler(pol, replay=trace) as r:
        with pytest.raises(PolicyDenied) as d2:
            r.dispatch("fs", "exists", ["/"])
        r.note_call_budget(8)
        with pytest.raises(lexfast.BudgetExceeded) as o2:
            r.note_call_budget(8)
    assert str(d2.value) == str(denied.value) and d2.value.effect == denied.value.effect
    assert str(o2.value) == str(over.value) and o2.value.ceiling == 10


def test_divergence_names_the_step_and_both_calls(tmp_path):
    trace = tmp_path / "t.jsonl"
    (tmp_path / "a").write_text("x")
    with DefaultHandler(PERMISSIVE, record=trace) as h:
        h.dispatch("fs", "exists", [str(tmp_path / "a")])
        h.dispatch("time", "now", [])
    with DefaultHandler(PERMISSIVE, replay=trace) as r:
        with pytest.raises(ReplayDivergence) as e:
            r.dispatch("fs", "exists", [str(tmp_path / "b")])
        assert e.value.step == 0
        assert "step 0" in str(e.value) and "/a" in e.value.recorded and "/b" in e.value.actual
        with pytest.raises(ReplayDivergence) as e2:
            r.note_call_budget(1)  # step 1 recorded time.now()
        assert e2.value.step == 1 and e2.value.recorded == "time.now()"
        with pytest.raises(ReplayDivergence, match="past its end"):
            r.dispatch("time", "now", [])
    assert isinstance(e.value, EffectError)


def test_override_answers_a_step_with_another_value(tmp_path):
    trace = tmp_path / "t.jsonl"
    with DefaultHandler(PERMISSIVE, record=trace) as h:
        h.dispatch("time", "now", [])
        first = h.dispatch("fs", "exists", [str(tmp_path)])
    assert first is True
    with DefaultHandler(PERMISSIVE, replay=trace, overrides={1: False}) as r:
        r.dispatch("time", "now", [])
        assert r.dispatch("fs", "exists", [str(tmp_path)]) is False
    with pytest.raises(EffectError, match="no step 7"):
        DefaultHandler(PERMISSIVE, replay=trace, overrides={7: 1})


def test_secrets_are_scrubbed(tmp_path, server, monkeypatch):
    monkeypatch.setenv("LEXFAST_TEST_API_TOKEN", "hunter2")
    monkeypatch.setenv("LEXFAST_TEST_PLAIN", "visible")
    monkeypatch.setenv("LEXFAST_TEST_LISTED", "listed-secret")
    url = f"http://127.0.0.1:{server['srv'].server_address[1]}/x"
    req = {"method": "GET", "url": url, "body": NONE, "timeout_ms": NONE,
           "headers": Map({"Authorization": "Bearer sk-live-123", "Accept": "*/*"})}
    trace = tmp_path / "t.jsonl"
    with DefaultHandler(PERMISSIVE, record=trace, secret_env=["LEXFAST_TEST_LISTED"]) as h:
        resp = h.dispatch("http", "send", [req])
        assert h.dispatch("env", "get", ["LEXFAST_TEST_API_TOKEN"]) == some("hunter2")
        h.dispatch("env", "get", ["LEXFAST_TEST_PLAIN"])
        h.dispatch("env", "get", ["LEXFAST_TEST_LISTED"])
    assert b"sk-live-123" in resp.args[0]["body"]  # the server did get it
    text = trace.read_text()
    for secret in ("sk-live-123", "hunter2", "topsecret", "listed-secret"):
        assert secret not in text  # (the echoed body is Bytes: base64, not plain text)
    assert "Authorization" in text and SCRUBBED in text
    assert "visible" in text
    with DefaultHandler(PERMISSIVE, replay=trace) as r:
        again = r.dispatch("http", "send", [req])  # scrubbed alike: no divergence
        assert again.args[0]["headers"]["set-cookie"] == SCRUBBED
        assert r.dispatch("env", "get", ["LEXFAST_TEST_API_TOKEN"]) == some(SCRUBBED)


def test_the_trace_is_bounded_with_a_marker(tmp_path):
    trace = tmp_path / "t.jsonl"
    limit = 2000
    with DefaultHandler(PERMISSIVE, record=trace, limits=Limits(record_bytes=limit)) as h:
        for _ in range(200):
            h.dispatch("time", "now", [])
    entries = _lines(trace)
    assert entries[-1]["truncated"] is True and entries[-1]["limit"] == limit
    assert sum(len(x) + 1 for x in trace.read_text().splitlines()[:-1]) <= limit
    recorded = len(entries) - 2
    assert 0 < recorded < 200
    with DefaultHandler(PERMISSIVE, replay=trace) as r:
        for _ in range(recorded):
            r.dispatch("time", "now", [])
        with pytest.raises(ReplayDivergence, match="truncation marker"):
            r.dispatch("time", "now", [])


def test_pure_builtins_recorded_only_when_asked(tmp_path):
    trace = tmp_path / "t.jsonl"
    with DefaultHandler(PERMISSIVE, record=trace, record_pure=True) as h:
        assert h.dispatch("str", "len", ["abc"]) == 3
    assert [(e["kind"], e["op"]) for e in _lines(trace)[1:]] == [("str", "len")]
    with DefaultHandler(PERMISSIVE, replay=trace) as r:
        assert r.dispatch("str", "len", ["abc"]) == 3
        with pytest.raises(ReplayDivergence):
            r.dispatch("str", "len", ["abcd"])


def test_forks_replay_each_their_own_steps_concurrently(tmp_path):
    trace = tmp_path / "t.jsonl"
    files = []
    for i in range(4):
        f = tmp_path / f"f{i}"
        f.write_text("x" * (i + 1))
        files.append(f)

    def work(h: DefaultHandler, f: Path, out: list) -> None:
        for _ in range(20):
            out.append(h.dispatch("io", "read", [str(f)]))

    def run(h: DefaultHandler) -> list[list]:
        forks = [h.fork() for _ in files]
        outs: list[list] = [[] for _ in files]
        threads = [threading.Thread(target=work, args=(k, f, o))
                   for k, f, o in zip(forks, files, outs, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        return outs

    with DefaultHandler(PERMISSIVE, record=trace) as h:
        live = run(h)
    assert {e["fork"] for e in _lines(trace)[1:]} == {1, 2, 3, 4}
    for f in files:
        f.unlink()
    with DefaultHandler(PERMISSIVE, replay=trace) as r:
        assert run(r) == live


def test_recording_off_leaves_the_class_dispatch(tmp_path):
    h = DefaultHandler(PERMISSIVE)
    assert "dispatch" not in vars(h) and type(h).dispatch is HandlerCore.dispatch
    assert "dispatch" not in vars(h.fork())
    before = threading.active_count()
    r = DefaultHandler(PERMISSIVE, record=tmp_path / "t.jsonl")
    assert "dispatch" in vars(r) and "dispatch" in vars(r.fork())
    r.close()
    assert threading.active_count() == before  # the writer thread ended


def test_a_stream_target_and_flush(tmp_path):
    import io as _io
    buf = _io.StringIO()
    h = DefaultHandler(PERMISSIVE, record=buf)
    h.dispatch("time", "now", [])
    h.flush_record()
    assert '"op":"now"' in buf.getvalue()
    h.close()


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines[:1] + [lines[1][:-7]], "trace line 2: not JSON"),
    (lambda lines: ['{"hello": 1}'] + lines[1:], "trace line 1: not a lexfast trace"),
    (lambda lines: lines + [lines[1]], "step 0 appears twice"),
    (lambda lines: lines[:1] + [lines[1].replace('"args":[]', '"args":3')],
     "trace line 2: `args` must be a list"),
    (lambda lines: lines[:1] + [lines[1].replace('"value":', '"value":{"$nope":1},"x":')],
     "trace line 2: `value`"),
    (lambda lines: [], "the trace is empty"),
])
def test_a_bad_trace_is_a_clear_error_naming_the_line(tmp_path, edit, message):
    trace = tmp_path / "t.jsonl"
    with DefaultHandler(PERMISSIVE, record=trace) as h:
        h.dispatch("time", "now", [])
    trace.write_text("\n".join(edit(trace.read_text().splitlines())) + "\n")
    with pytest.raises(EffectError, match=message.replace("$", r"\$")):
        DefaultHandler(PERMISSIVE, replay=trace)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="together"):
        DefaultHandler(PERMISSIVE, record=tmp_path / "a", replay=tmp_path / "b")
    with pytest.raises(EffectError, match="record: cannot open"):
        DefaultHandler(PERMISSIVE, record=tmp_path / "no" / "such" / "t.jsonl")
    with pytest.raises(EffectError, match="replay: cannot read"):
        DefaultHandler(PERMISSIVE, replay=tmp_path / "missing.jsonl")
    with pytest.raises(TypeError):
        DefaultHandler(PERMISSIVE, record=42)
    with pytest.raises(ValueError, match="record_bytes"):
        DefaultHandler(PERMISSIVE, record=tmp_path / "t", limits=Limits(record_bytes=0))
    assert not (tmp_path / "t").exists()  # refused before the file was made


# -- the CLI -----------------------------------------------------------------------

def _cli(tmp_path: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    root = str(Path(lexfast.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root}
    return subprocess.run([sys.executable, "-m", "lexfast", *argv], cwd=tmp_path, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_cli_record_replay_override(tmp_path):
    (tmp_path / "f.txt").write_text("hello")
    prog = tmp_path / "prog.jsonl"
    prog.write_text("\n".join(json.dumps(r) for r in [
        {"kind": "io", "op": "read", "args": ["f.txt"]},
        {"kind": "time", "op": "now"},
        {"budget": 2},
        {"kind": "fs", "op": "exists", "args": ["f.txt"]},
    ]) + "\n")
    flags = ["--allow-effects", "io,time,fs_read", "--allow-fs-read", str(tmp_path)]
    rec = _cli(tmp_path, "run", *flags, "--record", "t.jsonl", "prog.jsonl")
    assert rec.returncode == 0, rec.stderr
    (tmp_path / "f.txt").unlink()
    rep = _cli(tmp_path, "run", *flags, "--replay", "t.jsonl", "prog.jsonl")
    assert rep.returncode == 0, rep.stderr
    assert rep.stdout == rec.stdout
    over = _cli(tmp_path, "run", *flags, "--replay", "t.jsonl", "--override", "3=false",
                "prog.jsonl")
    assert over.stdout.splitlines()[:3] == rec.stdout.splitlines()[:3]
    assert json.loads(over.stdout.splitlines()[3]) == {"ok": False}
    prog.write_text(json.dumps({"kind": "io", "op": "read", "args": ["g.txt"]}) + "\n")
    div = _cli(tmp_path, "run", *flags, "--replay", "t.jsonl", "prog.jsonl")
    reply = json.loads(div.stdout.splitlines()[0])
    assert reply["type"] == "ReplayDivergence" and reply["step"] == 0
    assert "f.txt" in reply["error"] and "g.txt" in reply["error"]


@pytest.mark.parametrize("argv, message", [
    (["--override", "1=2"], "--override needs --replay"),
    (["--replay", "t", "--override", "x=2"], "--override must be N=JSON"),
    (["--replay", "t", "--override", "1={"], "--override 1"),
    (["--record", "a", "--replay", "b"], "cannot be given together"),
    (["--replay", "missing.jsonl"], "replay: cannot read"),
])
def test_cli_bad_flags(tmp_path, argv, message):
    (tmp_path / "p.jsonl").write_text("")
    r = _cli(tmp_path, "run", *argv, "p.jsonl")
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_replay_then_live_performs_past_the_end(tmp_path):
    trace = tmp_path / "t.jsonl"
    (tmp_path / "a").write_text("x")
    with DefaultHandler(PERMISSIVE, record=trace) as h:
        h.dispatch("fs", "exists", [str(tmp_path / "a")])
    assert os.stat(trace).st_mode & 0o777 == 0o600  # a trace holds what the run read
    (tmp_path / "a").unlink()
    with DefaultHandler(PERMISSIVE, replay=trace, replay_then_live=True) as r:
        assert r.dispatch("fs", "exists", [str(tmp_path / "a")]) is True  # from the trace
        assert r.dispatch("fs", "exists", [str(tmp_path / "a")]) is False  # performed
        r.note_call_budget(1)
    with pytest.raises(ValueError, match="need replay"):
        DefaultHandler(PERMISSIVE, overrides={0: 1})
    with pytest.raises(ValueError, match="need replay"):
        DefaultHandler(PERMISSIVE, replay_then_live=True)


def test_cli_trace_show_and_diff(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, name in ((a, "x"), (b, "y")):
        with DefaultHandler(PERMISSIVE, record=path) as h:
            h.dispatch("time", "now", [])
            h.note_call_budget(2)
            h.dispatch("fs", "exists", [str(tmp_path / name)])
            with pytest.raises(EffectError):
                h.dispatch("fs", "exists", [1])
    shown = _cli(tmp_path, "trace", "show", "a.jsonl")
    assert shown.returncode == 0, shown.stderr
    rows = shown.stdout.splitlines()
    assert len(rows) == 5 and "time.now" in rows[1] and "budget(2)" in rows[2]
    assert "raised EffectError" in rows[4]
    stats = _cli(tmp_path, "trace", "show", "--stats", "a.jsonl").stdout
    assert any(line.split()[:3] == ["fs.exists", "2", "1"] for line in stats.splitlines())
    same = _cli(tmp_path, "trace", "diff", "a.jsonl", "a.jsonl")
    assert same.returncode == 0 and "agree" in same.stdout
    d = _cli(tmp_path, "trace", "diff", "a.jsonl", "b.jsonl")
    assert d.returncode == 1 and d.stdout.startswith("step 2:") and "/x" in d.stdout
    assert "/y" in d.stdout
    (tmp_path / "bad.jsonl").write_text('{"lexfast_trace": 1}\n{"step": 0}\n')
    bad = _cli(tmp_path, "trace", "show", "bad.jsonl")
    assert bad.returncode == 2 and "trace line 2" in bad.stderr


def test_an_unwritable_step_ends_the_trace_with_a_marker(tmp_path):
    trace = tmp_path / "t.jsonl"
    with DefaultHandler(PERMISSIVE, record=trace) as h:
        h.dispatch("time", "now", [])
        with pytest.raises(EffectError):
            h.dispatch("time", "now\ud800", [])  # a lone surrogate: no JSON line holds it
        h.dispatch("time", "now", [])
    entries = _lines(trace)
    assert len(entries) == 3 and entries[-1]["truncated"] is True
    assert "step 1 could not be written" in entries[-1]["reason"]


def test_a_server_replays_each_recorded_request(tmp_path):
    import urllib.request

    from lexfast.effects.net.serve import wait_listening

    data = tmp_path / "page.txt"
    data.write_text("page one")
    seen: list = []

    def handle(h, req):
        body = h.dispatch("io", "read", [str(data)])
        stamp = h.dispatch("time", "now", [])
        seen.append((req["path"], body, stamp))
        return {"status": 200, "body": f"{req['path']} {body.args[0]}"}

    def runner(program, h, name, args):
        return program[name](h, *args)

    def serve_and_ask(h: DefaultHandler) -> list[str]:
        out: dict = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "v", h.dispatch("net", "serve", [0, "handle"])), daemon=True)
        t.start()
        try:
            port = wait_listening(h, "http", 10)
            bodies = []
            for path in ("/a", "/b"):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                    bodies.append(r.read().decode())
            return bodies
        finally:
            h.shutdown()
            t.join(10)
            assert not t.is_alive()

    trace = tmp_path / "t.jsonl"
    with DefaultHandler(PERMISSIVE, record=trace, program={"handle": handle},
                        runner=runner) as h:
        bodies = serve_and_ask(h)
        h.dispatch("time", "now", [])
    assert bodies == ["/a page one", "/b page one"]
    live, seen[:] = list(seen), []
    requests = [e for e in _lines(trace) if "request" in e]
    assert [e["args"][0]["path"] for e in requests] == ["/a", "/b"]

    data.unlink()  # and no server listens: the replay opens no socket
    with DefaultHandler(PERMISSIVE, replay=trace, program={"handle": handle},
                        runner=runner) as r:
        assert r.dispatch("net", "serve", [0, "handle"]) is None  # returns at once
        r.dispatch("time", "now", [])
    assert seen == live

    def other(h, req):  # the program changed: it reads another file
        return {"body": h.dispatch("io", "read", [str(tmp_path / "other.txt")]).args[0]}

    with DefaultHandler(PERMISSIVE, replay=trace, program={"handle": other},
                        runner=runner) as r:
        with pytest.raises(ReplayDivergence, match="other.txt"):
            r.dispatch("net", "serve", [0, "handle"])
    shown = _cli(tmp_path, "trace", "show", "t.jsonl")
    assert "request handle" in shown.stdout


def test_mcp_calls_replay_without_a_server(tmp_path):
    import shlex

    server = (f"{shlex.quote(sys.executable)} "
              f"{shlex.quote(str(Path(__file__).resolve().parent / 'mcp_tiny_server.py'))} ok")
    trace = tmp_path / "t.jsonl"
    pol = Policy(allow_effects=["mcp"])
    with DefaultHandler(pol, record=trace, limits=Limits(mcp_timeout_s=20.0)) as h:
        live = [h.dispatch("agent", "call_mcp", [server, "add", '{"a": 2, "b": 40}']),
                h.dispatch("agent", "call_mcp", [server, "pid", "{}"])]
    assert live[0].name == "Ok" and '"42"' in live[0].args[0]
    before = threading.active_count()
    with DefaultHandler(pol, replay=trace) as r:
        again = [r.dispatch("agent", "call_mcp", [server, "add", '{"a": 2, "b": 40}']),
                 r.dispatch("agent", "call_mcp", [server, "pid", "{}"])]
        from lexfast.effects.agent.ops import mcp_pids
        assert mcp_pids(r) == {}  # no server process was started
    assert again == live and threading.active_count() == before


def test_cli_the_tour_recorded_then_replayed_with_the_world_changed(tmp_path):
    """Issue 25: the bundled tour (examples/tour.jsonl, the README's main
    command) recorded, its file deleted and its environment changed, then
    replayed: the same reply lines, the clock, dice and key included."""
    tour = Path(__file__).resolve().parent.parent / "examples" / "tour.jsonl"
    work = tmp_path / "w"
    work.mkdir()
    prog = tmp_path / "tour.jsonl"
    prog.write_text(tour.read_text().replace("/tmp/lexfast-tour.txt", str(work / "tour.txt")))
    flags = ["--allow-effects", "io,time,random,env,log,budget", "--allow-fs-read", str(work),
             "--allow-fs-write", str(work), "--budget", "100"]
    trace = tmp_path / "tour.trace"
    live = _cli(tmp_path, "run", *flags, "--record", str(trace), str(prog))
    assert live.returncode == 0, live.stderr
    assert '"id":"bye","ok":null' in live.stdout
    (work / "tour.txt").unlink()
    again = _cli(tmp_path, "run", *flags, "--replay", str(trace), str(prog))
    assert again.returncode == 0, again.stderr
    assert not (work / "tour.txt").exists()  # replay performed nothing
    replies = [ln for ln in live.stdout.splitlines() if ln.startswith("{")]
    assert len(replies) >= 15
    assert [ln for ln in again.stdout.splitlines() if ln.startswith("{")] == replies


# -- the kernel's record/replay path (RecordTap, ReplayTap, strict_equal) ----------

def _strict_cases(impl):
    """(a, b, equal) pairs of Lex values for ``strict_equal``, made with the
    kernel under test (its own ``Variant``)."""
    from lexfast.values import Deque, Set
    V = impl.Variant
    nested = [Map({"a": 1, 2: [b"\x00", (1, "s")]}), V("Some", (b"\x00\x01",)),
              {"x": [1, 2.5, True, None]}, (1, "s"), Deque([1, "x"]), Set({"a", 1})]
    same = [Map({2: [b"\x00", (1, "s")], "a": 1}), V("Some", (b"\x00\x01",)),
            {"x": [1, 2.5, True, None]}, (1, "s"), Deque([1, "x"]), Set({1, "a"})]
    return [
        (1, 1, True), (1, True, False), (True, 1, False), (1, 1.0, False), (1.0, 1, False),
        (0, False, False), (0.0, -0.0, True), ("a", "a", True), ("a", b"a", False),
        ([1, 2], (1, 2), False), ({"a": 1}, Map({"a": 1}), False),
        ({"a": 1}, {"a": True}, False), ([[1]], [[1.0]], False),
        (V("Ok", (1,)), V("Ok", (True,)), False), (V("Ok", (1,)), V("Err", (1,)), False),
        (nested, same, True),
        (nested, [*same[:-1], Set({True, "a"})], False),
        (Map({1: "x"}), Map({True: "x"}), False),
        ([1, 2], [1, 2, 3], False), (None, None, True), (None, 0, False),
    ]


def test_strict_equal_distinguishes_types_at_every_level(impl):
    for a, b, equal in _strict_cases(impl):
        assert impl.strict_equal(a, b) is equal, (a, b)
        assert impl.strict_equal(b, a) is equal, (b, a)


def test_strict_equal_on_deep_nesting_answers_false_not_a_crash(impl):
    a = b = 1
    for _ in range(10_000):
        a, b = [a], [b]
    assert impl.strict_equal(a, b) is False  # past 256 levels: the caller's JSON compare


def _trace(tmp_path: Path, *calls: dict) -> Path:
    path = tmp_path / "hand.jsonl"
    head = {"lexfast_trace": 1, "session": "s", "pure": False, "started": 0}
    lines = [head] + [dict(step=i, fork=0, t=0, us=0, **c) for i, c in enumerate(calls)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


NESTED_JSON = [{"$map": [["a", 1], [2, [{"$bytes": "AA=="}, {"$tuple": [1, "s"]}]]]},
               {"$variant": "Some", "args": [{"$bytes": "AAE="}]},
               {"x": [1, 2.5, True, None]}]


def _nested():
    return [Map({"a": 1, 2: [b"\x00", (1, "s")]}), Variant("Some", (b"\x00\x01",)),
            {"x": [1, 2.5, True, None]}]


@pytest.mark.parametrize("outcome", ["value", "raised"])
def test_replay_compares_args_strictly(tmp_path, outcome):
    """1, True and 1.0 are different calls, however deep; equal nested values
    (a Map in another order, bytes, a tuple, a Variant) are the same call. A
    step with a value is answered by the kernel's fast path, a raised one by
    the slow path: both compare alike."""
    answer = ({"value": 7} if outcome == "value"
              else {"raised": {"type": "EffectError", "message": "boom"}})
    trace = _trace(tmp_path, dict(kind="time", op="sleep", args=[1], **answer),
                   dict(kind="time", op="sleep", args=NESTED_JSON, **answer))

    def run(first, second):
        out = []
        with DefaultHandler(PERMISSIVE, replay=trace) as r:
            for args in (first, second):
                try:
                    out.append(r.dispatch("time", "sleep", args))
                except ReplayDivergence:
                    raise
                except EffectError as e:
                    out.append(str(e))
        return out

    expected = [7, 7] if outcome == "value" else ["boom", "boom"]
    assert run([1], _nested()) == expected
    nested = _nested()
    reordered = [Map({2: nested[0][2], "a": 1}), *nested[1:]]
    assert run([1], reordered) == expected
    for wrong in ([True], [1.0], ["1"], [1, 1]):
        with pytest.raises(ReplayDivergence, match="step 0"):
            run(wrong, _nested())
    for change in (lambda n: n[2]["x"].__setitem__(2, 1),          # True -> 1
                   lambda n: n[2]["x"].__setitem__(0, 1.0),        # 1 -> 1.0
                   lambda n: n.__setitem__(0, dict(n[0])),         # Map -> Record
                   lambda n: n[0][2].__setitem__(1, [1, "s"]),     # tuple -> list
                   lambda n: n.__setitem__(1, Variant("Some", (b"\x00\x02",)))):
        nested = _nested()
        change(nested)
        with pytest.raises(ReplayDivergence, match="step 1"):
            run([1], nested)


def test_recording_taps_append_the_raw_call_and_nothing_else(impl):
    """The kernel's RecordTap, on both cores: the call as a tuple (a copy of
    the args), the raised EffectError, pure builtins and a full buffer passed
    through, a special op to the slow path, keyword calls the same."""
    handler = DefaultHandler(Policy(allow_effects=["time", "env"]))
    buffer = impl.TraceBuffer()
    slow_calls = []
    tap = impl.RecordTap(handler, buffer, 3, False, {"net": frozenset({"serve"})},
                         lambda *a: slow_calls.append(a) or "slow")
    args = ["PATH"]
    value = tap.dispatch("env", "get", args)
    args.append("mutated later")
    with pytest.raises(EffectError):
        tap.dispatch("time", "sleep", ["not an int"])
    with pytest.raises(PolicyDenied):
        tap.dispatch("fs", "exists", ["/"])
    assert tap.dispatch("str", "len", ["four"]) == 4  # pure: not recorded
    assert tap.dispatch(kind="env", op="get", args=["HOME"]) == handler.dispatch("env", "get",
                                                                                  ["HOME"])
    assert tap.dispatch("net", "serve", [1]) == "slow" and slow_calls == [("net", "serve", [1])]
    items = buffer.take()
    assert len(buffer) == 0 and buffer.take() == []
    assert [(i[0], i[1], i[2], i[3], i[4], i[5]) for i in items] == [
        (0, 3, "env", "get", ["PATH"], 0), (0, 3, "time", "sleep", ["not an int"], 1),
        (0, 3, "fs", "exists", ["/"], 1), (0, 3, "env", "get", ["HOME"], 0)]
    assert items[0][6] == value
    assert isinstance(items[1][6], EffectError) and isinstance(items[2][6], PolicyDenied)
    assert all(type(i[7]) is int and i[7] <= i[8] for i in items)
    buffer.full = True
    assert tap.dispatch("env", "get", ["PATH"]) == value
    assert len(buffer) == 0
    with pytest.raises(TypeError):
        tap.dispatch("env", "get")
    handler.close()


def test_replay_taps_answer_the_fast_steps_and_hand_the_rest_on(impl):
    handler = DefaultHandler(Policy(allow_effects=["time"]))
    V = impl.Variant
    steps = impl.TraceSteps(["e0", "e1", "e2"],
                            [("kv", "get", [1, "k"], V("Some", (b"v",))), None,
                             ("time", "now", [], 5)])
    slow = []

    def slow_path(kind, op, args):
        slow.append((kind, op, args, steps.pop()))
        return "slow"

    tap = impl.ReplayTap(handler, steps, False, slow_path)
    assert tap.dispatch("str", "len", ["ab"]) == 2  # pure: run, no step taken
    assert tap.dispatch("kv", "get", [True, "k"]) == "slow"  # True is not 1
    assert slow == [("kv", "get", [True, "k"], "e0")]
    steps.pos = 0
    assert tap.dispatch("kv", "get", [1, "k"]) == V("Some", (b"v",))
    assert steps.pos == 1 and len(steps) == 2
    assert tap.dispatch("time", "now", []) == "slow"  # step 1 has no fast answer
    assert tap.dispatch(kind="time", op="now", args=[]) == 5
    assert tap.dispatch("time", "now", []) == "slow" and steps.pop() is None
    with pytest.raises(ValueError):
        steps.pos = 4
    with pytest.raises(ValueError):
        impl.TraceSteps(["a"], [])
    for bad in (("kv", "get", [1]), ("kv", "get", (1,), 2), (b"kv", "get", [], 2), [1, 2, 3, 4]):
        with pytest.raises(TypeError):
            impl.TraceSteps(["a"], [bad])
    handler.close()


_SAME_RUN = r"""
import os, sys
from lexfast import DefaultHandler, EffectError, Policy, Limits
import lexfast.kernel
want = sys.argv[2]
assert lexfast.kernel.COMPILED is (want == "compiled"), lexfast.kernel.FALLBACK_REASON
tmp = sys.argv[3]
policy = Policy(allow_effects=["fs_read", "fs_write", "fs_walk", "kv", "env"], allow_fs_read=[tmp],
                allow_fs_write=[tmp],
                budget=100)
with DefaultHandler(policy, record=sys.argv[1]) as h:
    h.dispatch("fs", "exists", [tmp + "/nothing"])
    kv = h.dispatch("kv", "open", [tmp + "/kv-" + want]).args[0]
    h.dispatch("kv", "put", [kv, "k", b"\x00\xffv"])
    h.dispatch("kv", "get", [kv, "k"])
    h.dispatch("kv", "get", [kv, "missing"])
    h.note_call_budget(3)
    for bad in ([kv, 1], [kv, True], [kv, 1.5], [kv, ["a", {"b": None}]]):
        try:
            h.dispatch("kv", "get", bad)
        except EffectError:
            pass
    try:
        h.dispatch("process", "run", ["ls", []])
    except EffectError:
        pass
    h.dispatch("env", "get", ["LEXFAST_TEST_SECRET_TOKEN"])
    child = h.fork()
    child.dispatch("fs", "exists", [tmp])
    h.dispatch("str", "len", ["pure"])
    h.dispatch("kv", "close", [kv])
"""


def test_compiled_and_twin_write_the_same_trace(tmp_path):
    """The same run recorded by each core: the same lines, byte for byte,
    but for the times (and the session id, the kv file name)."""
    import re

    pkg_parent = str(Path(lexfast.__file__).resolve().parent.parent)
    traces = {}
    for core in ("compiled", "twin"):
        env = dict(os.environ, PYTHONPATH=pkg_parent, LEXFAST_TEST_SECRET_TOKEN="hunter2")
        env.pop("LEXFAST_NO_EXTENSIONS", None)
        env.pop("LEXFAST_REQUIRE_EXTENSIONS", None)
        if core == "twin":
            env["LEXFAST_NO_EXTENSIONS"] = "1"
        else:
            if importlib.util.find_spec("lexfast.kernel._c") is None:
                pytest.skip("the compiled core is not built")
            env["LEXFAST_REQUIRE_EXTENSIONS"] = "1"
        trace = tmp_path / f"{core}.jsonl"
        proc = subprocess.run([sys.executable, "-c", _SAME_RUN, str(trace), core, str(tmp_path)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        text = trace.read_text()
        assert "hunter2" not in text
        text = re.sub(r'"t":[0-9.e+-]+,"us":[0-9]+', '"t":T,"us":U', text)
        text = re.sub(r'"(session|started)":[^,}]+', r'"\1":X', text)
        traces[core] = text.replace("kv-twin", "kv-compiled")
    assert traces["compiled"] == traces["twin"]
    lines = traces["twin"].splitlines()
    assert len(lines) == 15 and '"budget":3' in traces["twin"]
    assert '"fork":1' in lines[-2] and '"op":"close"' in lines[-1]


def _line_cases(V):
    """(args, value, handled) for ``trace_call_line``, with a kernel's Variant."""
    return [
        ([], None, True), ([1, -1, 0], True, True), (["user:00042", 7], V("Some", (b"v" * 100,)), True),
        ([1.5, 1e16, 1e-05, -0.0], [False, None, "x"], True),
        ([b"", b"\x00", b"\x00\xff", b"abc"], {"k": [1, {"n": V("None", ())}]}, True),
        ([(1 << 63) - 1, -(1 << 63)], 0, True),
        ([1 << 63], 0, False), ([float("nan")], 0, False), ([float("inf")], 0, False),
        (["quote\""], 0, False), (["back\\slash"], 0, False), (["tab\t"], 0, False),
        (["\x7f"], 0, False), (["é"], 0, False), ([(1, 2)], 0, False), ([Map({"a": 1})], 0, False),
        ([{"$tag": 1}], 0, False), ([{"": 1}], 0, False), ([{1: 1}], 0, False),
        ([], V("", ()), False), ([bytearray(b"x")], 0, False), ([[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]], 0, False),
        ([{"Authorization": "Bearer x"}], 0, False), (["x"], "a COOKIE jar", False),
        (["API_KEY"], 0, False), (["api-key"], 0, False), (["authoriz"], 0, True),
    ]


def test_trace_call_line_the_same_on_both_cores_and_valid_json():
    import lexfast.kernel._py as twin

    cores = [twin]
    if importlib.util.find_spec("lexfast.kernel._c") is not None:
        import lexfast.kernel._c as compiled
        cores.append(compiled)
    for k, case in enumerate(_line_cases(twin.Variant)):
        lines = []
        for core in cores:
            args, value, handled = _line_cases(core.Variant)[k]
            line = core.trace_call_line(k, 2, "kind", "op", args, value, 1796539492_000100, 31)
            assert (line is not None) is handled, (core.__name__, case)
            lines.append(line)
        assert len(set(lines)) == 1, lines
        if lines[0] is not None:
            obj = json.loads(lines[0])
            assert obj["step"] == k and obj["fork"] == 2 and obj["us"] == 31
            assert obj["t"] == 1796539492.0001 and lines[0].isascii()
            assert list(obj) == ["step", "fork", "kind", "op", "args", "value", "t", "us"]
    for core in cores:
        line = core.trace_call_line(0, 0, "k", "o", [], 1, 5_000000, 0)
        assert '"t":5.0,' in line
        assert core.trace_call_line(0, 0, "k", "o", (), 1, 0, 0) is None
        assert core.trace_call_line(0, 0, None, "o", [], 1, 0, 0) is None
        assert core.trace_call_line(0, 0, "k", "o", [], 1, -1, 0) is None
        with pytest.raises(TypeError):
            core.trace_call_line(0, 0, "k", "o", [], 1, 1.5, 0)
        with pytest.raises(OverflowError):
            core.trace_call_line(0, 0, "k", "o", [], 1, 1 << 64, 0)


def test_trace_call_lines_a_run_at_a_time_the_same_on_both_cores():
    """The writer's batch encoder: the lines ``trace_call_line`` writes, one
    per item, until an item it does not write (a raise, a budget note, an
    env call, a value with no plain form) or the room runs out."""
    import lexfast.kernel._py as twin

    cores = [twin]
    if importlib.util.find_spec("lexfast.kernel._c") is not None:
        import lexfast.kernel._c as compiled
        cores.append(compiled)
    mono0, wall0 = 1_000_000_000, 1796539492_000000
    results = []
    for core in cores:
        V = core.Variant
        items = [(0, 0, "time", "now", [], 0, 17, mono0 + 5_000, mono0 + 9_000),
                 (0, 1, "kv", "get", [3, "k"], 0, V("Some", (b"v",)), mono0 + 2_000_000,
                  mono0 + 2_003_500),
                 (0, 0, "time", "sleep", [1], 1, EffectError("boom"), mono0, mono0),
                 (0, 0, "env", "get", ["HOME"], 0, V("Some", ("/root",)), mono0, mono0),
                 (1, 0, 5, 0, None),
                 (0, 0, "time", "now", [], 0, "é", mono0, mono0),
                 (0, 0, "time", "now", [], 0, 1, mono0, mono0)]
        text, count = core.trace_call_lines(items, 0, 10, wall0, mono0, 1 << 40)
        assert count == 2
        assert text.splitlines() == [
            core.trace_call_line(10, 0, "time", "now", [], 17, wall0 + 5, 4),
            core.trace_call_line(11, 1, "kv", "get", [3, "k"], V("Some", (b"v",)),
                                 wall0 + 2000, 3)]
        assert text.endswith("\n")
        for start in (2, 3, 4, 5):
            assert core.trace_call_lines(items, start, 0, wall0, mono0, 1 << 40) == ("", 0)
        assert core.trace_call_lines(items, 6, 0, wall0, mono0, 1 << 40)[1] == 1
        assert core.trace_call_lines(items, 7, 0, wall0, mono0, 1 << 40) == ("", 0)
        first = len(text.splitlines()[0]) + 1
        assert core.trace_call_lines(items, 0, 10, wall0, mono0, first) == (text[:first], 1)
        assert core.trace_call_lines(items, 0, 10, wall0, mono0, first - 1) == ("", 0)
        results.append(text)
    assert len(set(results)) == 1
