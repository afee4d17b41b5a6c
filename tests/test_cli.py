"""The ``lexfast`` command: run, host, info (docs/design.md §7), as a user runs it
(``python -m lexfast`` in a child process) and in-process through ``main``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import lexfast
from lexfast import CapturedSink, DefaultHandler, Policy
from lexfast.cli import handle_request, main, respond

# A test's own children start with default signal dispositions and an empty
# mask, whatever pytest inherited (SIGINT ignored under nohup or a job
# runner, signals blocked): this prefix resets them, then execs the command.
_RESET_SIGNALS = (
    "import os, signal, sys\n"
    "for s in signal.valid_signals():\n"
    "    try:\n"
    "        signal.signal(s, signal.SIG_DFL)\n"
    "    except (OSError, ValueError):\n"
    "        pass\n"
    "signal.pthread_sigmask(signal.SIG_SETMASK, [])\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n")
CLEAN_PY = [sys.executable, "-c", _RESET_SIGNALS, sys.executable]


REPO = Path(__file__).resolve().parents[1]
TOUR = REPO / "examples" / "tour.jsonl"
#: The README's main command (the tour), run from the repository root.
TOUR_FLAGS = ["--allow-effects", "io,time,random,env,log,budget", "--allow-fs-read", "/tmp",
              "--allow-fs-write", "/tmp", "--budget", "100"]
TIMEOUT = 30
# `python -m` puts the working directory first on sys.path: run children away
# from the repository root, so they import the lexfast under test (installed,
# or PYTHONPATH while developing), never a stray source tree.
NEUTRAL_CWD = tempfile.gettempdir()


def lexfast_cmd(*args, input=None, env=None, timeout=TIMEOUT):
    return subprocess.run([sys.executable, "-m", "lexfast", *args], input=input,
                          capture_output=True, cwd=NEUTRAL_CWD, env=env, timeout=timeout)


def lines(data: bytes) -> list:
    return [json.loads(x) for x in data.decode("utf-8").splitlines()]


def jl(*reqs) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n"
                    for r in reqs)


def req(kind, op, *args, id=None):
    r = {"kind": kind, "op": op, "args": list(args)}
    if id is not None:
        r = {"id": id, **r}
    return r


# -- run ------------------------------------------------------------------------

@pytest.mark.skipif(not TOUR.exists(), reason="examples/ not shipped here")
def test_tour_runs_cleanly_with_the_readme_command():
    # The README runs `examples/tour.jsonl` from the repository root; every
    # path inside the tour is absolute, so the file's own path is equivalent.
    p = lexfast_cmd("run", *TOUR_FLAGS, str(TOUR))
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    replies = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            replies[r["id"]] = r
    ids = [json.loads(x)["id"] for x in TOUR.read_text().splitlines() if x.strip()]
    assert list(replies) == ids  # one reply per request, in order
    assert "lexfast tour" in out and "end of the tour" in out  # io.print on stdout
    assert "logs go to stderr" in p.stderr.decode()
    assert isinstance(replies["clock"]["ok"], int)
    assert 1 <= replies["dice"]["ok"] <= 6
    assert len(lexfast.cli.codec.decode(json.dumps(replies["key"]["ok"]))) == 16
    assert replies["unset"]["ok"] == {"$variant": "None", "args": []}
    assert replies["read"]["ok"] == {"$variant": "Ok", "args": ["written by the lexfast tour\n"]}
    assert replies["spend"] == {"id": "spend", "ok": None}
    assert replies["overspend"]["type"] == "BudgetExceeded"
    assert replies["no-net"]["type"] == "PolicyDenied"
    assert replies["no-passwd"] == {
        "id": "no-passwd", "error": "read of `/etc/passwd` outside --allow-fs-read",
        "type": "PolicyDenied", "effect": "io", "path": "/etc/passwd"}
    assert replies["typo"]["type"] == "EffectError"
    assert replies["not-a-request"]["type"] == "ProtocolError"
    ok = [i for i, r in replies.items() if "ok" in r]
    assert ok == ids[:12] + ["bye"]


def test_run_file_every_reply_type(tmp_path):
    f = tmp_path / "calls.jsonl"
    data = tmp_path / "data"
    data.mkdir()
    f.write_bytes(jl(
        req("time", "now", id=1),
        req("io", "write", str(data / "a.txt"), "héllo ✓", id="w"),
        req("io", "read", str(data / "a.txt"), id={"nested": [1, None]}),
        req("io", "read", "/etc/passwd", id=4),
        req("net", "get", "http://example.com/", id=5),
        req("rand", "int_in", 5, 1, id=6),
        {"id": 7, "budget": 3},
        {"id": 8, "budget": 3},
        req("crypto", "random", 4),
        b"not json",
        req("env", "get", "LEXFAST_CLI_TEST_VAR", id=9),
    ))
    env = dict(os.environ, LEXFAST_CLI_TEST_VAR="x y")
    p = lexfast_cmd("run", "--allow-effects", "io,time,random,env", "--allow-effects=budget",
                    "--allow-fs-read", str(data), "--allow-fs-write", str(data),
                    "--budget", "5", str(f), env=env)
    assert p.returncode == 0, p.stderr
    r = lines(p.stdout)
    assert len(r) == 11
    assert r[0]["id"] == 1 and isinstance(r[0]["ok"], int)
    assert r[1] == {"id": "w", "ok": {"$variant": "Ok", "args": [None]}}
    assert r[2] == {"id": {"nested": [1, None]}, "ok": {"$variant": "Ok", "args": ["héllo ✓"]}}
    assert r[3] == {"id": 4, "error": "read of `/etc/passwd` outside --allow-fs-read",
                    "type": "PolicyDenied", "effect": "io", "path": "/etc/passwd"}
    assert r[4] == {"id": 5, "error": "effect `net` not in --allow-effects",
                    "type": "PolicyDenied", "effect": "net"}
    assert r[5] == {"id": 6, "error": "rand.int_in: empty range [5, 1]", "type": "EffectError"}
    assert r[6] == {"id": 7, "ok": None}
    assert r[7] == {"id": 8, "error": "budget exceeded: requested 3, used so far 3, ceiling 5",
                    "type": "BudgetExceeded", "requested": 3, "used": 3, "ceiling": 5}
    assert "id" not in r[8] and len(lexfast.cli.codec.from_json(r[8]["ok"])) == 4
    assert r[9]["type"] == "ProtocolError" and r[9]["line"] == 10 and "id" not in r[9]
    assert r[10] == {"id": 9, "ok": {"$variant": "Some", "args": ["x y"]}}


def test_run_stdin_blank_lines_crlf_and_no_final_newline():
    data = b'\n  \n{"id":1,"kind":"time","op":"now","args":[]}\r\n\n{"id":2,"kind":"time","op":"now"}'
    p = lexfast_cmd("run", "--allow-effects", "time", "-", input=data)
    assert p.returncode == 0, p.stderr
    r = lines(p.stdout)
    assert [x["id"] for x in r] == [1, 2] and all("ok" in x for x in r)


def test_run_empty_input_exits_zero():
    p = lexfast_cmd("run", "-", input=b"")
    assert p.returncode == 0 and p.stdout == b""


def test_bad_lines_get_error_lines_and_the_run_goes_on():
    p = lexfast_cmd("run", "--allow-effects", "time", "--max-line-bytes", "200", "-", input=jl(
        b"{not json",
        b"[1, 2]",
        b'"just a string"',
        {"id": "a", "op": "now"},
        {"id": "b", "kind": "time"},
        {"id": "c", "kind": "", "op": "now"},
        {"id": "d", "kind": "time", "op": 3},
        {"id": "e", "kind": "time", "op": "now", "args": {}},
        {"id": "f", "kind": "time", "op": "now", "arg": []},
        {"id": "g", "kind": "time", "op": "now", "args": [{"$bytes": "?"}]},
        {"id": "h", "kind": "time", "op": "now", "args": [1 << 70]},
        b'{"id": "i", "kind": "time", "op": "now", "args": [NaN]}',
        b'{"id": "j", "id": "k", "kind": "time", "op": "now"}',
        b"\xff\xfe{}",
        b'{"id": "x", "kind": "io", "op": "print", "args": ["' + b"y" * 300 + b'"]}',
        {"id": "l", "budget": "10"},
        {"id": "m", "budget": 1, "kind": "time"},
        {"id": "n", "budget": -1},
        {"id": "ok", "kind": "time", "op": "now"},
    ))
    assert p.returncode == 0, p.stderr
    r = lines(p.stdout)
    assert len(r) == 19
    assert all(x["type"] == "ProtocolError" for x in r[:16]), r
    assert [x["line"] for x in r[:16]] == list(range(1, 17))
    assert [x.get("id") for x in r[:16]] == [None, None, None, "a", "b", "c", "d", "e", "f", "g",
                                            "h", None, None, None, None, "l"]
    msgs = [x.get("error") for x in r]
    assert "invalid JSON" in msgs[0]
    assert "must be a JSON object, got a list" in msgs[1]
    assert "no `kind`" in msgs[3] and "no `op`" in msgs[4]
    assert "`kind` must be a non-empty string" in msgs[5]
    assert "`op` must be a non-empty string, got a number" in msgs[6]
    assert "`args` must be a list" in msgs[7]
    assert "unknown request field `arg`" in msgs[8]
    assert "time.now: bad args: $bytes is not valid base64" in msgs[9]
    assert "outside signed 64-bit" in msgs[10]
    assert "NaN is not JSON" in msgs[11]
    assert "duplicate key" in msgs[12]
    assert "not valid UTF-8" in msgs[13]
    assert msgs[14] == "line longer than 200 bytes"
    assert "`budget` must be an integer" in msgs[15]
    assert r[16]["type"] == "ProtocolError" and "only `budget` and `id`" in msgs[16]
    assert r[17] == {"id": "n", "error": "note_call_budget: cost must be non-negative, got -1",
                     "type": "EffectError"}
    assert r[18]["id"] == "ok" and isinstance(r[18]["ok"], int)


def test_over_long_last_line_without_newline():
    p = lexfast_cmd("run", "--max-line-bytes", "10", "-", input=b"x" * 100_000)
    assert p.returncode == 0
    assert lines(p.stdout) == [{"error": "line longer than 10 bytes", "type": "ProtocolError",
                                "line": 1}]


def test_args_are_decoded_with_the_codec():
    # io.print takes a Str; a tagged $tuple arrives as a Tuple and is refused as one.
    p = lexfast_cmd("run", "--allow-effects", "io", "-", input=jl(
        req("io", "print", {"$tuple": [1]}, id=1),
        req("io", "print", "\u2028 ok", id=2)))
    r = lines(p.stdout.split(b"\n", 1)[0] + b"\n")
    assert r[0]["type"] == "EffectError" and "Tuple" in r[0]["error"]
    out = p.stdout.decode("utf-8").split("\n")
    assert out[1] == "io.print: \\u{2028} ok"  # printed text (framed), then its reply
    assert json.loads(out[2]) == {"id": 2, "ok": None}


# -- flags and files --------------------------------------------------------------

def test_missing_and_unreadable_file(tmp_path):
    p = lexfast_cmd("run", str(tmp_path / "nope.jsonl"))
    assert p.returncode == 2 and p.stdout == b""
    assert b"nope.jsonl" in p.stderr and b"No such file" in p.stderr
    p = lexfast_cmd("run", str(tmp_path))
    assert p.returncode != 0 and str(tmp_path).encode() in p.stderr


@pytest.mark.parametrize("argv, needle", [
    (["run", "--budget", "x", "f"], "--budget must be an integer"),
    (["run", "--budget", "-1", "f"], "--budget"),
    (["run", "f", "--allow-effects"], "--allow-effects needs a value"),
    (["run", "--allow-effects", "io,tme", "f"], "unknown effect kind `tme`"),
    (["run", "--allow-fs-read=", "f"], "--allow-fs-read"),
    (["run", "--frobnicate", "f"], "--frobnicate"),
    (["run"], "FILE"),
    (["host", "--read-root", "/nonexistent/dir"], "--read-root"),
    (["host", "--max-line-bytes", "0"], "--max-line-bytes"),
    (["host", "extra"], "extra"),
    (["bogus"], "bogus"),
    ([], "a command is required"),
    (["--nope", "run", "f"], "--nope"),
])
def test_bad_flags_exit_2_naming_the_flag(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_bad_flag_in_a_child_process():
    p = lexfast_cmd("host", "--budget", "lots")
    assert p.returncode == 2 and b"--budget must be an integer" in p.stderr and p.stdout == b""


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert lexfast.__version__ in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    assert "--allow-fs-read" in capsys.readouterr().out


def test_permissive_and_read_root(tmp_path):
    (tmp_path / "in.txt").write_text("inside")
    calls = jl(req("io", "read", "in.txt", id=1), req("io", "read", "../../etc/passwd", id=2),
               req("env", "get", "PATH", id=3))
    p = lexfast_cmd("run", "--permissive", "--read-root", str(tmp_path), "-", input=calls)
    r = lines(p.stdout)
    assert r[0] == {"id": 1, "ok": {"$variant": "Ok", "args": ["inside"]}}
    assert r[1]["type"] == "PolicyDenied" and "outside the read root" in r[1]["error"]
    assert r[2]["ok"]["$variant"] == "Some"
    p = lexfast_cmd("run", "-", input=calls)  # default policy: nothing granted
    assert [x["type"] for x in lines(p.stdout)] == ["PolicyDenied"] * 3


def test_in_process_run(tmp_path, capsys):
    f = tmp_path / "c.jsonl"
    f.write_bytes(jl(req("io", "print", "printed", id=1), {"id": 2, "budget": 0}))
    assert main(["run", "--allow-effects", "io", str(f)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["io.print: printed", '{"id":1,"ok":null}', '{"id":2,"ok":null}']


# -- host ---------------------------------------------------------------------------

class Host:
    """A ``lexfast host`` child; ``ask`` writes one line and reads one reply."""

    def __init__(self, *flags):
        self.p = subprocess.Popen([*CLEAN_PY, "-m", "lexfast", "host", *flags],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, cwd=NEUTRAL_CWD)
        self.timer = threading.Timer(TIMEOUT, self.p.kill)  # a hang fails, never blocks
        self.timer.start()

    def send(self, line):
        self.p.stdin.write(line if isinstance(line, bytes) else json.dumps(line).encode())
        self.p.stdin.write(b"\n")
        self.p.stdin.flush()

    def ask(self, line):
        self.send(line)
        reply = self.p.stdout.readline()
        assert reply.endswith(b"\n"), f"no reply; stderr: {self.p.stderr.read()!r}"
        return json.loads(reply)

    def finish(self, close_stdin=True):
        if close_stdin:
            self.p.stdin.close()
        try:
            rc = self.p.wait(TIMEOUT)
        finally:
            self.timer.cancel()
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
        rest = self.p.stdout.read()
        err = self.p.stderr.read()
        self.p.stdout.close()
        self.p.stderr.close()
        if not self.p.stdin.closed:
            self.p.stdin.close()
        return rc, rest, err


def test_host_interactive_conversation():
    h = Host("--allow-effects", "io,time,budget", "--budget", "10")
    try:
        r1 = h.ask(req("time", "now", id="t"))
        assert r1["id"] == "t" and isinstance(r1["ok"], int)
        # stdout carries protocol lines only: io.print goes to stderr.
        assert h.ask(req("io", "print", "to stderr please", id=2)) == {"id": 2, "ok": None}
        assert h.ask(b"garbage")["type"] == "ProtocolError"
        assert h.ask({"budget": 11})["type"] == "BudgetExceeded"
        assert h.ask({"id": None, "budget": 10}) == {"id": None, "ok": None}
        assert h.ask(req("net", "get", "http://x/"))["effect"] == "net"
    finally:
        rc, rest, err = h.finish()
    assert rc == 0 and rest == b""
    assert b"to stderr please" in err


def test_host_sigint_interrupts_a_sleep_and_exits_130():
    h = Host("--allow-effects", "time")
    try:
        h.ask(req("time", "now"))  # the host is up
        h.send(req("time", "sleep_ms", 60_000))
        time.sleep(0.3)
        t0 = time.monotonic()
        h.p.send_signal(signal.SIGINT)
        rc, rest, err = h.finish(close_stdin=False)
    finally:
        if h.p.poll() is None:
            h.p.kill()
    assert rc == 130 and time.monotonic() - t0 < 10
    assert b"Traceback" not in err


def test_host_sigterm_exits_143():
    h = Host()
    h.ask({"budget": 0})
    h.p.send_signal(signal.SIGTERM)
    rc, _, err = h.finish(close_stdin=False)
    assert rc == 128 + signal.SIGTERM and b"Traceback" not in err


def test_host_reader_going_away_is_not_a_traceback():
    p = subprocess.Popen([*CLEAN_PY, "-m", "lexfast", "host", "--allow-effects", "time"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=NEUTRAL_CWD)
    try:
        p.stdout.close()
        _, err = p.communicate(jl(*[req("time", "now")] * 50), timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 1 and b"Traceback" not in err and b"stdout closed" in err


# -- info ---------------------------------------------------------------------------

def test_info_text_and_json():
    p = lexfast_cmd("info")
    assert p.returncode == 0
    text = p.stdout.decode()
    for needle in ("lexfast " + lexfast.__version__, "core:", "python:", "effect table:",
                   "lmdb:", "pycurl:", "libcurl:", "uvloop:", "websockets:", "sqlite:"):
        assert needle in text
    p = lexfast_cmd("info", "--json")
    d = json.loads(p.stdout)
    assert d["lexfast"] == lexfast.__version__
    assert d["effects"] == len(lexfast.table.effect_names())
    assert set(d["libraries"]) >= {"lmdb", "pycurl", "libcurl", "uvloop", "websockets", "sqlite"}
    # The child imports the same core this test process does (both honour
    # LEXFAST_NO_EXTENSIONS), so the answer is checkable.
    assert d["compiled"] is lexfast.COMPILED
    assert (d["fallback_reason"] is None) is lexfast.COMPILED
    # the kinds by the names --allow-effects takes (issue 24: not `process`, `rand`)
    assert d["effect_kinds"] == list(lexfast.KNOWN_EFFECTS)
    assert set(d["gated_ops"]) <= set(lexfast.KNOWN_EFFECTS)
    assert {"proc", "random", "time"} <= set(d["gated_ops"])
    assert "effect kinds (--allow-effects): io, net, time, llm, proc," in text


def test_info_names_why_the_compiled_core_is_missing():
    # as an install without a compiler leaves it: the extension does not import
    code = ("import sys; sys.modules['lexfast.kernel._c'] = None\n"
            "from lexfast.cli import main; sys.exit(main(['info']))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LEXFAST_NO_EXTENSIONS", "LEXFAST_REQUIRE_EXTENSIONS")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=NEUTRAL_CWD,
                       env=env, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    text = p.stdout.decode()
    assert "core: pure-Python twin" in text
    assert "compiled core missing: lexfast.kernel._c did not import (ModuleNotFoundError" in text
    # and said at import, where a user sees it (pip hides a build's warnings)
    assert b"RuntimeWarning: lexfast: the compiled core is missing" in p.stderr


# -- the request handler, in-process ---------------------------------------------------

def _h(**kw):
    return DefaultHandler(Policy(**kw), sink=CapturedSink())


def test_handle_request_unencodable_result_is_an_effect_error():
    h = DefaultHandler(Policy.pure(), sink=CapturedSink(),
                       pure={("vm", "weird"): lambda args: object(),
                             ("vm", "tuple"): lambda args: (args[0], b"\x01")})
    try:
        r = handle_request(h, {"kind": "vm", "op": "weird", "args": []})
        assert r["type"] == "EffectError" and "vm.weird: the result cannot be written" in r["error"]
        assert handle_request(h, {"kind": "vm", "op": "tuple", "args": [{"$float": "inf"}]}) == {
            "ok": {"$tuple": [{"$float": "inf"}, {"$bytes": "AQ=="}]}}
    finally:
        h.close()


def test_respond_id_echo_and_blank():
    h = _h(allow_effects=["time"])
    try:
        assert respond(h, b"   ") is None
        for id_ in ("s", 0, -1.5, None, [1, "a"], {"k": {"$bytes": "x"}}, True):
            line = json.dumps({"id": id_, "kind": "time", "op": "now"}).encode()
            r = json.loads(respond(h, line))
            assert r["id"] == id_ and list(r)[0] == "id"
        assert "id" not in json.loads(respond(h, b'{"kind":"time","op":"now"}'))
        # a UTF-8 BOM on the first line of a file is tolerated
        assert "ok" in json.loads(respond(h, '\ufeff{"kind":"time","op":"now"}'.encode(), 1))
    finally:
        h.close()


def test_error_message_with_a_lone_surrogate_still_writes_valid_utf8():
    def boom(args):
        raise lexfast.EffectError("cannot open `/x/\udcff`")
    h = DefaultHandler(Policy.pure(), sink=CapturedSink(), pure={("vm", "boom"): boom})
    try:
        line = respond(h, b'{"id": 1, "kind": "vm", "op": "boom", "args": []}')
        line.encode("utf-8")
        assert json.loads(line) == {"id": 1, "error": "cannot open `/x/\ufffd`",
                                    "type": "EffectError"}
        r = json.loads(respond(h, b'{"id": "\\ud800", "kind": "vm", "op": "boom"}'))
        assert r["type"] == "ProtocolError" and "surrogate" in r["error"]
    finally:
        h.close()


@pytest.mark.parametrize("data, expect", [
    (b"a" * 8 + b"\n", [(b"a" * 8, False)]),
    (b"a" * 9 + b"\n", [(b"", True)]),
    (b"a" * 8, [(b"a" * 8, False)]),
    (b"a" * 9, [(b"", True)]),
    (b"a" * 9 + b"\nok\n" + b"b" * 100_000 + b"\n\n", [(b"", True), (b"ok", False),
                                                       (b"", True), (b"", False)]),
    (b"", []),
])
def test_line_reader_bounds(data, expect):
    import io

    from lexfast.cli.command import _read_lines
    assert list(_read_lines(io.BytesIO(data), 8)) == expect


def test_respond_never_raises_and_always_writes_one_valid_line():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    h = DefaultHandler(Policy.pure(), sink=CapturedSink(),
                       pure={("vm", "echo"): lambda args: args})
    keys = st.sampled_from(["id", "kind", "op", "args", "budget", "$bytes", "$map", "x"])
    vals = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                  st.text(max_size=10), st.sampled_from(["vm", "echo", "time", "now"])),
        lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(keys, c, max_size=4)),
        max_leaves=15)

    @settings(max_examples=200, deadline=None)
    @given(st.one_of(vals.map(lambda v: json.dumps(v).encode()), st.binary(max_size=40)))
    def check(line):
        out = respond(h, line, 1)
        if out is None:
            assert not line.decode("utf-8").lstrip("\ufeff").strip(" \t\r\n")
            return
        assert "\n" not in out
        r = json.loads(out.encode("utf-8"))
        assert ("ok" in r) != ("error" in r)

    try:
        check()
    finally:
        h.close()


# -- --stats and the progress bar (issue 8) ------------------------------------

def test_stats_table_on_exit(tmp_path):
    data = jl(req("time", "now", id=1), req("time", "now", id=2), req("env", "get", "HOME", id=3))
    r = lexfast_cmd("run", "--allow-effects", "time", "--stats", "-", input=data)
    assert r.returncode == 0
    assert len(lines(r.stdout)) == 3  # stdout keeps only the replies
    err = r.stderr.decode()
    assert "effect" in err and "calls" in err
    row = next(x for x in err.splitlines() if x.startswith("time.now"))
    assert row.split()[1:4] == ["2", "0", "0"]
    denied = next(x for x in err.splitlines() if x.startswith("env.get"))
    assert denied.split()[1:4] == ["1", "1", "0"]


def test_stats_with_timing_in_host_mode():
    data = jl(req("time", "sleep_ms", 20, id=1))
    r = lexfast_cmd("host", "--allow-effects", "time", "--stats", "--timing", input=data)
    assert r.returncode == 0 and len(lines(r.stdout)) == 1
    row = next(x for x in r.stderr.decode().splitlines() if x.startswith("time.sleep_ms"))
    assert float(row.split()[4]) >= 15.0  # total_ms


def test_progress_bar_only_on_a_terminal(tmp_path):
    f = tmp_path / "big.jsonl"
    one = jl(req("time", "now", id=1))
    f.write_bytes(one * ((1 << 20) // len(one) + 1000))
    plain = lexfast_cmd("run", "--allow-effects", "time", str(f))
    assert plain.returncode == 0 and b"%" not in plain.stderr
    env = dict(os.environ, LEXFAST_FORCE_PROGRESS="1")
    forced = lexfast_cmd("run", "--allow-effects", "time", str(f), env=env)
    assert forced.returncode == 0 and b"lines" in forced.stderr and b"%" in forced.stderr
    assert lines(forced.stdout)[-1]["ok"] > 0
