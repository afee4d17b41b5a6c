"""Escape catalogue, later rounds: logs, the policy report and the command
(issues 13.6, 13.8, 13.9, 22.2, 22.4, 22.5; SECURITY.md "Logs, policy report
and the command"). Real files, real hardlinks, real ``lexfast`` children.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lexfast import (
    KNOWN_EFFECTS,
    NONE,
    CapturedSink,
    DefaultHandler,
    EffectError,
    Limits,
    Map,
    Policy,
    Table,
    Variant,
    ok,
)
from lexfast.handler import StderrSink
from lexfast.policy import SCOPE_FLAGS, SCOPES_BY_KIND
from lexfast.table import default_table

LOG = ["log", "io", "fs_write"]
T = 30
#: Children run away from the repository root so they import the lexfast under test.
NEUTRAL_CWD = tempfile.gettempdir()


def is_err(v, needle):
    return getattr(v, "name", None) == "Err" and needle in str(v.args[0])


def lexfast_cmd(*args, input=None, timeout=T):
    return subprocess.run([sys.executable, "-m", "lexfast", *args], input=input,
                          capture_output=True, cwd=NEUTRAL_CWD, timeout=timeout)


def fds_on(path) -> list[int]:
    out = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                out.append(int(name))
        except OSError:
            pass
    return out


# -- log state per session (issue 13.6) ---------------------------------------------------

def test_escape_log_state_shared_between_sessions(make_handler, tmp_path, capfd):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    a_sink, b_sink = a_dir / "a.log", b_dir / "b.log"
    A = make_handler(effects=LOG, fs_write=[a_dir])
    B = make_handler(effects=LOG, fs_write=[b_dir])
    C = make_handler(effects=LOG)  # default: info, text, stderr
    assert A.dispatch("log", "set_sink", [str(a_sink)]) == ok(None)
    assert A.dispatch("log", "set_level", ["error"]) == ok(None)
    assert A.dispatch("log", "set_format", ["json"]) == ok(None)
    assert B.dispatch("log", "set_sink", [str(b_sink)]) == ok(None)

    B.dispatch("log", "warn", ["b: token=hunter2"])     # B: still info, text
    B.dispatch("log", "debug", ["b: debug dropped"])
    A.dispatch("log", "warn", ["a: below A's level"])
    A.fork().dispatch("log", "error", ["a: from a fork"])  # forks share their session's state
    C.dispatch("log", "warn", ["c: not silenced by A's level"])

    a_lines = a_sink.read_text().splitlines()
    assert [json.loads(x)["msg"] for x in a_lines] == ["a: from a fork"]
    b_text = b_sink.read_text()
    assert "] warn: b: token=hunter2" in b_text and "debug dropped" not in b_text
    assert "a:" not in b_text and "c:" not in b_text and "hunter2" not in a_sink.read_text()
    err = capfd.readouterr().err
    assert "warn: c: not silenced by A's level" in err and "hunter2" not in err

    # Forks on threads of both sessions at once: each sink gets its own lines, whole.
    def spam(h, tag):
        f = h.fork()
        for j in range(150):
            f.dispatch("log", "error", [f"{tag}-{j}-" + "x" * 300])

    ts = [threading.Thread(target=spam, args=(h, tag))
          for h, tag in ((A, "A1"), (A, "A2"), (B, "B1"), (B, "B2"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(T)
    a_msgs = [json.loads(x)["msg"] for x in a_sink.read_text().splitlines()]
    assert len(a_msgs) == 301 and all(m.startswith(("a:", "A1-", "A2-")) for m in a_msgs)
    b_lines = b_sink.read_text().splitlines()
    assert len(b_lines) == 301
    assert all(" warn: b:" in x or (" error: B" in x and x.endswith("x" * 300)) for x in b_lines)

    # A's sink is closed with A; B goes on unchanged; A cannot log after close.
    assert fds_on(a_sink)
    A.close()
    assert fds_on(a_sink) == []
    with pytest.raises(EffectError, match="closed"):
        A.dispatch("log", "error", ["after close"])
    size = a_sink.stat().st_size
    B.dispatch("log", "error", ["b: after A closed"])
    assert a_sink.stat().st_size == size and "b: after A closed" in b_sink.read_text()


# -- the sink and hardlinks (issue 22.2) ---------------------------------------------------

def test_escape_log_sink_hardlink_to_an_outside_file(make_handler, tmp_path):
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("original\n")
    link = inside / "log.txt"
    os.link(victim, link)
    h = make_handler(effects=LOG, fs_write=[inside])
    r = h.dispatch("log", "set_sink", [str(link)])
    assert is_err(r, f"log.set_sink `{link}`: the file has 2 hard links"), r
    h.dispatch("log", "error", ["appended?"])
    assert victim.read_text() == "original\n" and fds_on(victim) == []
    # a hardlink under another name in a subdirectory: the same
    (inside / "sub").mkdir()
    os.link(victim, inside / "sub" / "x.log")
    assert is_err(h.dispatch("log", "set_sink", [str(inside / "sub" / "x.log")]), "hard links")
    # the earlier rules hold: regular files only, beneath the root
    assert is_err(h.dispatch("log", "set_sink", [str(inside)]), "Is a directory")
    (inside / "ln").symlink_to(victim)
    assert is_err(h.dispatch("log", "set_sink", [str(inside / "ln")]), "outside --allow-fs-write")
    assert victim.read_text() == "original\n"
    # a file with one link is a sink
    assert h.dispatch("log", "set_sink", [str(inside / "ok.log")]) == ok(None)
    h.dispatch("log", "error", ["fine"])
    assert "error: fine" in (inside / "ok.log").read_text()


def test_escape_log_sink_appends_into_a_live_store(make_handler, tmp_path):
    """A sink appends in place, to the inode a store holds open (where io.write
    replaces the name): SQLite's and lmdb's own files are refused by header."""
    import sqlite3

    h = make_handler(effects=LOG + ["kv", "sql"], fs_write=[tmp_path])
    db = tmp_path / "live.db"
    con = sqlite3.connect(db)
    try:
        con.execute("pragma journal_mode=wal")
        con.execute("create table t(x)")
        con.execute("insert into t values (1)")
        con.commit()
        kv = h.dispatch("kv", "open", [str(tmp_path / "store")])
        assert kv.name == "Ok"
        journal = tmp_path / "old.db-journal"
        journal.write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + b"\0" * 504)
        targets = {db: "a SQLite database", tmp_path / "live.db-wal": "a SQLite write-ahead log",
                   tmp_path / "live.db-shm": "a SQLite shared-memory index",
                   journal: "a SQLite journal",
                   tmp_path / "store" / "data.mdb": "an lmdb data file",
                   tmp_path / "store" / "lock.mdb": "an lmdb lock file"}
        before = {p: p.read_bytes() for p in targets}
        for path, what in targets.items():
            r = h.dispatch("log", "set_sink", [str(path)])
            assert is_err(r, f"the file is {what} (appending would corrupt it)"), (path, r)
            h.dispatch("log", "error", ["x" * 100])
        assert {p: p.read_bytes() for p in targets} == before
        assert con.execute("pragma integrity_check").fetchone() == ("ok",)
        # an empty file and an ordinary log are sinks
        (tmp_path / "empty.log").write_bytes(b"")
        (tmp_path / "old.log").write_text("[ts] info: earlier\n")
        for name in ("empty.log", "old.log"):
            assert h.dispatch("log", "set_sink", [str(tmp_path / name)]) == ok(None)
            h.dispatch("log", "error", ["kept"])
            assert (tmp_path / name).read_text().endswith("error: kept\n")
    finally:
        con.close()


# -- the report of open grants (issue 13.8) ------------------------------------------------

OPEN = {
    "io": ("--allow-fs-read", "--allow-fs-write"),
    "net": ("--allow-net-host", "--allow-fs-read"),
    "proc": ("--allow-proc", "--allow-fs-read", "--allow-fs-write"),
    "fs_read": ("--allow-fs-read",),
    "fs_write": ("--allow-fs-write",),
    "a2a": ("--allow-net-host",),
    "mcp": ("--allow-proc", "--allow-fs-read", "--allow-fs-write"),
    "sql": ("--allow-fs-write",),
    "kv": ("--allow-fs-write",),
    "fs_walk": ("--allow-fs-read",),
    "vcs": ("--allow-fs-write",),
    "approval": ("--allow-approval",),
}


def test_escape_wildcard_report_misses_open_kinds(tmp_path):
    for kind in KNOWN_EFFECTS:
        p = Policy(allow_effects=[kind])
        assert p.wildcard_scopes() == ({kind: OPEN[kind]} if kind in OPEN else {}), kind
        assert p.wildcard_scoped_grants() == ((kind,) if kind in OPEN else ()), kind
    scoped = Policy(allow_effects=KNOWN_EFFECTS, allow_fs_read=[tmp_path],
                    allow_fs_write=[tmp_path], allow_net_host=["h"], allow_proc=["true"],
                    allow_approval=["a"])
    assert scoped.wildcard_scopes() == {} and scoped.wildcard_scoped_grants() == ()
    half = Policy(allow_effects=["io", "sql", "mcp", "time"], allow_fs_write=[tmp_path])
    assert half.wildcard_scopes() == {"io": ("--allow-fs-read",),
                                      "mcp": ("--allow-proc", "--allow-fs-read")}

    # The command says so on stderr at start, one line per kind, naming the flags.
    for mode, extra in (("run", ["-"]), ("host", [])):
        p = lexfast_cmd(mode, "--allow-effects", "io,sql,mcp,time", "--allow-fs-write",
                        str(tmp_path), *extra, input=b"")
        assert p.returncode == 0 and p.stdout == b"", p.stderr
        # (a kernel without Landlock adds a line saying children run unconfined)
        warn = [x for x in p.stderr.decode().splitlines() if "unconfined" not in x]
        assert len(warn) == 2, warn
        assert warn[0].startswith(f"lexfast {mode}: warning: `io` is granted with no "
                                  "--allow-fs-read") and "--allow-fs-write" not in warn[0]
        assert warn[1].startswith(f"lexfast {mode}: warning: `mcp`") and "--allow-proc" in warn[1]
    p = lexfast_cmd("run", "--permissive", "-", input=b"")
    assert p.returncode == 0
    named = [x.split("`")[1] for x in p.stderr.decode().splitlines() if "unconfined" not in x]
    assert named == [k for k in KNOWN_EFFECTS if k in OPEN]


def _samples(d: str) -> dict:
    """Arguments for every row of the default table that reach its scope
    check, if it has one (paths under ``d``, which no sentinel scope covers)."""
    url = "http://127.0.0.1:1/"
    return {
        ("io", "print"): ["x"], ("io", "read"): [f"{d}/file.txt"],
        ("io", "write"): [f"{d}/new.txt", "x"],
        ("io", "readline"): [], ("io", "argv"): [],
        ("time", "now"): [], ("time", "sleep_ms"): [0], ("datetime", "now"): [],
        ("time", "now_ms"): [], ("time", "now_str"): [], ("time", "mono_ns"): [],
        ("time", "sleep"): [0],
        ("rand", "int_in"): [1, 2], ("crypto", "random"): [4], ("env", "get"): ["HOME"],
        ("crypto", "random_str_hex"): [4], ("crypto", "p256_generate"): [],
        ("crypto", "secp256k1_generate"): [], ("approval", "request"): ["probe", "why"],
        ("budget", "*"): [],
        ("log", "debug"): ["x"], ("log", "info"): ["x"], ("log", "warn"): ["x"],
        ("log", "error"): ["x"], ("log", "set_level"): ["info"], ("log", "set_format"): ["text"],
        ("log", "set_sink"): [f"{d}/log.txt"],
        ("fs", "exists"): [f"{d}/file.txt"], ("fs", "is_file"): [f"{d}/file.txt"],
        ("fs", "is_dir"): [d], ("fs", "stat"): [f"{d}/file.txt"], ("fs", "list_dir"): [d],
        ("fs", "walk"): [d], ("fs", "glob"): [f"{d}/*.txt"], ("fs", "mkdir_p"): [f"{d}/m/n"],
        ("fs", "remove"): [f"{d}/gone.txt"], ("fs", "copy"): [f"{d}/file.txt", f"{d}/copy.txt"],
        ("arrow", "read_csv"): [f"{d}/file.txt"], ("arrow", "read_parquet"): [f"{d}/file.txt"],
        ("arrow", "read_parquet_cols"): [f"{d}/file.txt", ["x"]],
        ("arrow", "write_parquet"): [Table([("x", "Int64", [1])]), f"{d}/t.parquet"],
        ("arrow", "write_csv"): [Table([("x", "Int64", [1])]), f"{d}/t.csv"],
        ("proc", "spawn"): ["true", []], ("process", "spawn"): ["true", [], dict(OPTS0)],
        ("process", "read_stdout_line"): [1], ("process", "read_stderr_line"): [1],
        ("process", "wait"): [1], ("process", "kill"): [1, "SIGTERM"], ("process", "run"): ["true", []],
        ("kv", "open"): [f"{d}/store"], ("kv", "close"): [1], ("kv", "get"): [1, "k"],
        ("kv", "put"): [1, "k", b"v"], ("kv", "delete"): [1, "k"], ("kv", "contains"): [1, "k"],
        ("kv", "list_prefix"): [1, ""],
        ("sql", "open"): [f"{d}/db.sqlite"], ("sql", "close"): [1], ("sql", "exec"): [1, "select 1", []],
        ("sql", "query"): [1, "select 1", []],
        ("sql", "begin"): [1], ("sql", "commit"): [1], ("sql", "rollback"): [1],
        ("sql", "exec_tx"): [1, "select 1", []], ("sql", "query_tx"): [1, "select 1", []],
        ("sql", "query_iter"): [1, "select 1", []], ("sql", "cursor_next"): [1],
        ("sql", "get_str"): [{}, "x"], ("sql", "get_int"): [{}, "x"],
        ("sql", "get_float"): [{}, "x"], ("sql", "get_bool"): [{}, "x"],
        ("net", "get"): [url], ("net", "post"): [url, "x"],
        ("http", "send"): [{"method": "GET", "url": url, "body": NONE, "headers": Map(),
                            "timeout_ms": NONE}],
        ("http", "get"): [url], ("http", "post"): [url, b"x", "text/plain"],
        ("http", "stream_lines"): [url, Map(), ""],
        ("stream", "next"): [Variant("__StreamHandle", ("stream_1",))],
        ("stream", "collect"): [Variant("__StreamHandle", ("stream_1",))],
        ("agent", "cloud_stream"): ["hi"],
        ("net", "serve"): [0, "h"], ("net", "serve_tls"): [0, f"{d}/cert.pem", f"{d}/key.pem", "h"],
        ("net", "serve_ws"): [0, "h"], ("chat", "broadcast"): ["r", "x"], ("chat", "send"): [1, "x"],
        ("net", "serve_ws_fn"): [0, "", None], ("net", "serve_ws_fn_auth"): [0, "", None, None],
        ("net", "serve_ws_fn_actor"): [0, "", None, None],
        ("net", "dial_ws"): ["ws://127.0.0.1:1/", "", None, None],
        ("net", "dial_ws_actor"): ["ws://127.0.0.1:1/", "", "n", None, None],
        ("net", "udp_open"): [0, "0.0.0.0"], ("net", "udp_close"): [1],
        ("net", "udp_send"): [1, "127.0.0.1", 9, b"x"], ("net", "udp_recv"): [1, 0],
        ("net", "udp_broadcast"): [1, True], ("net", "udp_join_multicast"): [1, "224.0.0.251"],
        ("vcs", "put_blob"): ["x"], ("vcs", "get_blob"): ["0" * 64], ("vcs", "has_blob"): ["0" * 64],
        ("vcs", "ref_set"): ["ns", "k", "ab"], ("vcs", "ref_get"): ["ns", "k"],
        ("net", "serve_fn"): [0, _closure], ("net", "serve_fn_with"): [0, _closure, SERVE_OPTS],
        ("net", "serve_routed"): [0, [("GET", "/x", _closure)], _closure],
        ("net", "serve_routed_with"): [0, [], _closure, SERVE_OPTS],
        ("net", "serve_with"): [0, "h", SERVE_OPTS], ("net", "default_opts"): [],
        ("tls", "from_pem_files"): [f"{d}/cert.pem", f"{d}/key.pem"],
        ("tls", "self_signed"): ["localhost"],
        ("agent", "call_mcp"): ["true", "t", "{}"], ("agent", "local_complete"): ["hi"],
        ("agent", "cloud_complete"): ["hi"], ("agent", "send_a2a"): [url, "hi"],
        ("redis", "connect"): ["redis://127.0.0.1:1/0"], ("redis", "close"): [1],
        ("redis", "get"): [1, "k"], ("redis", "set"): [1, "k", "v"],
        ("redis", "set_ex"): [1, "k", "v", 1], ("redis", "del"): [1, "k"],
        ("redis", "exists"): [1, "k"], ("redis", "expire"): [1, "k", 1],
        ("redis", "publish"): [1, "c", "m"], ("redis", "subscribe"): [1, "c", "h"],
        ("redis", "psubscribe"): [1, "c*", "h"], ("redis", "lpush"): [1, "k", "v"],
        ("redis", "rpush"): [1, "k", "v"], ("redis", "brpop"): [1, "k", 1],
        ("redis", "llen"): [1, "k"], ("redis", "hset"): [1, "k", "f", "v"],
        ("redis", "hget"): [1, "k", "f"], ("redis", "hdel"): [1, "k", "f"],
        ("redis", "hgetall"): [1, "k"],
    }


OPTS0 = {"cwd": NONE, "env": Map(), "stdin": NONE}
SERVE_OPTS = {"http2": False, "inline_vm": False, "host": "127.0.0.1"}


def _closure(h, req):  # a closure value for the closure servers
    return {"body": "x"}


def _outcome(h, kind, op, args) -> str:
    try:
        return repr(h.dispatch(kind, op, list(args)))
    except EffectError as e:
        return f"{type(e).__name__}: {e}"


def test_escape_wildcard_report_drifts_from_the_effect_table(tmp_path, monkeypatch):
    """Every row is run with its gate granted and one scope list set to a
    sentinel that its arguments are outside of: if that denies the call, the
    op consults that list, and a policy granting only the row's gate must
    report it open; every entry of SCOPES_BY_KIND is backed by such a row."""
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:1")
    monkeypatch.setenv("LEX_STORE_ROOT", str(tmp_path / "probe" / "store"))  # vcs.*, never ~/.lex
    for var in ("LEX_LLM_CLOUD_API_KEY", "OPENAI_API_KEY", "LEX_LLM_STREAM_FIXTURE"):
        monkeypatch.delenv(var, raising=False)
    d = tmp_path / "probe"
    d.mkdir()
    (d / "file.txt").write_text("x")
    sentinel_dir = tmp_path / "sentinel"
    sentinel_dir.mkdir()
    sentinels = {"allow_fs_read": [str(sentinel_dir)], "allow_fs_write": [str(sentinel_dir)],
                 "allow_net_host": ["sentinel.invalid"], "allow_proc": ["/nonexistent/sentinel"],
                 "allow_approval": ["sentinel"]}
    samples = _samples(str(d))
    rows = default_table().rows()
    assert {(r.kind, r.op) for r in rows} == set(samples), "a row without sample arguments"
    limits = Limits(mcp_start_timeout_s=5, mcp_timeout_s=5, llm_timeout_s=2, a2a_timeout_s=2,
                    http_timeout_s=2)

    def run(row, **scopes):
        h = DefaultHandler(Policy(allow_effects=row.gate, **scopes), sink=CapturedSink(),
                           program={}, runner=lambda *a: None, limits=limits)
        h.with_input(io.BytesIO(b"a line\n"))  # io.readline: never pytest's stdin
        h.shutdown()  # servers bind, announce and return at once
        try:
            return _outcome(h, row.kind, row.op, samples[(row.kind, row.op)])
        finally:
            h.close()

    consulted: set = set()  # (row kind, row op, field)
    for row in rows:
        open_outcome = None
        for field, value in sentinels.items():
            flag = SCOPE_FLAGS[field]
            outcome = run(row, **{field: value})
            hit = flag in outcome
            if not hit and (row.kind, row.op) == ("fs", "glob"):
                # glob drops what is outside its scope instead of refusing
                open_outcome = open_outcome or run(row)
                hit = outcome != open_outcome
            if hit:
                consulted.add((row.kind, row.op, field))
                reported = Policy(allow_effects=row.gate).wildcard_scopes()
                assert any(flag in flags for flags in reported.values()), (row, field, reported)
                assert any(field in SCOPES_BY_KIND.get(k, ()) for k in row.gate), (row, field)

    gates = {(r.kind, r.op): r.gate for r in rows}
    for kind, fields in SCOPES_BY_KIND.items():
        for field in fields:
            if kind == "fs_read":  # named for the scope (the Lex type checker's fs_read)
                continue
            if kind in ("proc", "mcp") and field in ("allow_fs_read", "allow_fs_write"):
                continue  # the kernel holds the children to them (test_escapes_confine)
            assert any(kind in gates[(k, o)] for k, o, f in consulted if f == field), (kind, field)
    # the probe found what the families do (a sanity floor for the method itself)
    assert {("io", "read", "allow_fs_read"), ("io", "write", "allow_fs_write"),
            ("agent", "call_mcp", "allow_proc"), ("agent", "send_a2a", "allow_net_host"),
            ("net", "dial_ws", "allow_net_host"), ("net", "dial_ws_actor", "allow_net_host"),
            ("net", "serve_tls", "allow_fs_read"), ("fs", "glob", "allow_fs_read"),
            ("sql", "open", "allow_fs_write"), ("kv", "open", "allow_fs_write"),
            ("log", "set_sink", "allow_fs_write"),
            ("approval", "request", "allow_approval")} <= consulted


# -- lines that killed the command (issue 22.4) -------------------------------------------

def _deep(n: int, open_="[", close="]") -> str:
    return open_ * n + close * n


#: Where json.loads still parses an id and json.dumps no longer writes it back
#: depends on the stack the loop runs at (985 on the development machine):
#: every depth around it.
DEEP_IDS = ['{"id":' + _deep(n) + ',"kind":"time","op":"now"}' for n in range(940, 1011)]

KILLERS = [
    '{"id":' + _deep(129) + ',"kind":"time","op":"now"}',
    '{"id":' + _deep(128) + ',"kind":"time","op":"now"}',
    '{"id":' + '{"a":' * 300 + "1" + "}" * 300 + ',"kind":"time","op":"now"}',
    '{"id":' + _deep(100_000) + ',"kind":"time","op":"now"}',
    '{"id":18446744073709551616,"kind":"time","op":"now"}',
    '{"id":' + "9" * 5000 + ',"kind":"time","op":"now"}',
    '{"id":[1e400],"kind":"time","op":"now"}',
    '{"id":NaN,"kind":"time","op":"now"}',
    '{"id":1,"kind":"time","op":"now","args":[NaN, Infinity]}',
    '{"id":"\\ud800","kind":"time","op":"now"}',
    '{"id":1,"id":2,"kind":"time","op":"now"}',
    '{"id":1}', '{"id":1,"kind":"time"}', '[1,2]', '"just a string"', "42", "null", "{",
    '{"id":1,"kind":"time","op":"now","args":' + _deep(5000) + "}",
    '{"id":{"$bytes":"!"},"kind":"time","op":"now"}',
]


def _check_replies(p, n_requests: int) -> list:
    assert p.returncode == 0, p.stderr[-2000:]
    assert b"Traceback" not in p.stderr, p.stderr[-2000:]
    out = p.stdout.decode("utf-8").split("\n")
    assert out[-1] == ""
    replies = [json.loads(x) for x in out[:-1]]
    assert len(replies) == n_requests
    assert all(("ok" in r) != ("error" in r) for r in replies)
    return replies


def test_escape_cli_one_line_kills_the_run(monkeypatch):
    lines = [x.encode() for x in DEEP_IDS + KILLERS]
    lines += [b"\xff\xfe{\"id\":1}", b'{"id":"\xed\xa0\x80","kind":"time","op":"now"}',
              b'{"id":1,"kind":"io","op":"print","args":["' + b"a" * (10 << 20) + b'"]}',
              b'{"id":"end","kind":"time","op":"now"}']
    p = lexfast_cmd("run", "--allow-effects", "time", "-", input=b"\n".join(lines) + b"\n",
                    timeout=120)
    replies = _check_replies(p, len(lines))
    deep, replies = replies[:len(DEEP_IDS)], replies[len(DEEP_IDS):]
    assert all(r["type"] == "ProtocolError" and "id" not in r for r in deep)
    assert replies[0] == {"error": "`id` is nested deeper than 128 levels; the request was not run",
                          "type": "ProtocolError", "line": len(DEEP_IDS) + 1}
    assert replies[1]["id"] == json.loads(_deep(128)) and "ok" in replies[1]
    assert replies[4]["type"] == "ProtocolError" and "signed 64-bit" in replies[4]["error"]
    assert replies[-2]["type"] == "PolicyDenied" and replies[-2]["id"] == 1
    assert replies[-1]["id"] == "end" and isinstance(replies[-1]["ok"], int)
    assert replies[-5]["id"] == {"$bytes": "!"} and "ok" in replies[-5]  # ids are not decoded

    # In process: whatever one line raises, serve() answers it and goes on;
    # KeyboardInterrupt still stops it.
    import io

    from lexfast.cli import command as cli

    real = cli.handle_request

    def flaky(handler, req):
        if req.get("op") == "boom":
            raise RuntimeError("bug\nwith a newline")
        if req.get("op") == "stop":
            raise KeyboardInterrupt
        return real(handler, req)

    monkeypatch.setattr(cli, "handle_request", flaky)
    written = []

    class Out:
        def line(self, s):
            written.append(s)

    h = DefaultHandler(Policy(allow_effects=["time"]), sink=CapturedSink())
    try:
        data = b'{"id":1,"kind":"x","op":"boom"}\n{"id":2,"kind":"time","op":"now"}\n'
        cli.serve(h, io.BytesIO(data), out=Out())
        r = [json.loads(x) for x in written]
        assert r[0]["type"] == "ProtocolError" and "RuntimeError: bug\\nwith" in r[0]["error"]
        assert r[1]["id"] == 2 and "ok" in r[1]
        with pytest.raises(KeyboardInterrupt):
            cli.serve(h, io.BytesIO(b'{"kind":"x","op":"stop"}\n{"kind":"time","op":"now"}\n'),
                      out=Out())
        assert len(written) == 2
    finally:
        h.close()


def _bad_line():
    depth = st.integers(0, 3000)
    return st.one_of(
        depth.map(lambda n: ('{"id":' + _deep(n) + ',"kind":"time","op":"now"}').encode()),
        depth.map(lambda n: ('{"kind":"time","op":"now","args":[' + _deep(n) + "]}").encode()),
        st.integers().map(lambda i: f'{{"id":{i * 10**30},"kind":"time","op":"now"}}'.encode()),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "1.5", "true", '"x"',
                         "[]", "{}", "null"]).map(
            lambda v: f'{{"id":{v},"kind":"time","op":"now","args":[{v}]}}'.encode()),
        st.binary(min_size=1, max_size=64).map(lambda b: b.replace(b"\n", b"")),
        st.text(max_size=20).map(lambda s: json.dumps({"id": s, "kind": "time", "op": "now"})
                                 .encode("utf-8", "surrogatepass")),
        st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")
                                 .replace(b"\n", b"")),
        st.sampled_from([b"[1,2]", b'"s"', b"7", b"null", b'{"id":1}', b'{"kind":"time"}',
                         b'{"id":1,"id":1,"kind":"time","op":"now"}', b'{"budget":1e9}',
                         b'{"id":1,"kind":"time","op":"now","extra":1}', b"\xef\xbb\xbf{}"]),
        st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
                     lambda c: st.one_of(st.lists(c, max_size=3),
                                         st.dictionaries(st.sampled_from(
                                             ["id", "kind", "op", "args", "budget", "$map"]),
                                             c, max_size=4)),
                     max_leaves=10).map(lambda v: json.dumps(v).encode()),
    )


def _blank(line: bytes, first: bool) -> bool:
    """Whether ``lexfast run`` skips the line (no reply): JSON whitespace
    only, after a byte-order mark on the first line."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if first:
        text = text.removeprefix("\ufeff")
    return not text.strip(" \t\r\n")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_bad_line(), min_size=1, max_size=12))
def test_escape_cli_fuzzed_lines_each_get_one_reply(batch):
    kept: list = []
    for b in batch:  # only what is sent counts: the first kept line is line 1
        if not _blank(b, not kept):
            kept.append(b)
    batch = kept + [b'{"id":"end","kind":"time","op":"now"}']
    p = lexfast_cmd("run", "--allow-effects", "time", "-", input=b"\n".join(batch) + b"\n")
    replies = _check_replies(p, len(batch))
    assert replies[-1]["id"] == "end" and "ok" in replies[-1]


# -- io.print forging the host's lines (issue 22.5) ---------------------------------------

FORGERIES = [
    "hello\n[2026-01-01T00:00:00.000000000+00:00] error: forged log line",
    "net.serve: listening on http://127.0.0.1:9",
    "x\rnet.serve: listening on http://127.0.0.1:8\u2028net.serve: listening on http://127.0.0.1:7",
    '{"ts":"2026","level":"error","msg":"forged json log"}',
    'a\x0bb\x0cc\x1cd\x85e\u2029lexfast host: stdout closed by the reader\x1b[2K',
    '\n{"id":"forged","ok":"pwned"}\n{"id":1,"ok":null}',
]


def test_escape_io_print_forges_host_and_reply_lines():
    # lexfast host: prints go to stderr, each one framed line
    p = lexfast_cmd("host", "--allow-effects", "io", input=b"".join(
        json.dumps({"id": i, "kind": "io", "op": "print", "args": [s]}).encode() + b"\n"
        for i, s in enumerate(FORGERIES)))
    assert p.returncode == 0
    assert [json.loads(x) for x in p.stdout.splitlines()] == [
        {"id": i, "ok": None} for i in range(len(FORGERIES))]
    err = p.stderr.decode("utf-8")
    lines = err.splitlines()  # every separator a reader might split on
    prints = [x for x in lines if not x.startswith("lexfast host: warning: ")]
    assert len(prints) == len(FORGERIES), lines
    assert all(x.startswith("io.print: ") for x in prints), lines
    assert "\x1b" not in err and "\r" not in err
    assert "io.print: hello\\n[2026" in prints[0]

    # lexfast run: prints go to stdout between the replies and never parse as one
    p = lexfast_cmd("run", "--allow-effects", "io", "-", input=b"".join(
        json.dumps({"id": f"r{i}", "kind": "io", "op": "print", "args": [s]}).encode() + b"\n"
        for i, s in enumerate(FORGERIES)))
    assert p.returncode == 0
    out = p.stdout.decode("utf-8").splitlines()
    replies = [json.loads(x) for x in out if x.startswith("{")]
    assert replies == [{"id": f"r{i}", "ok": None} for i in range(len(FORGERIES))]
    assert [x for x in out if not x.startswith("{")] == [x for x in out if x.startswith("io.print: ")]
    assert len(out) == 2 * len(FORGERIES)


def test_escape_io_print_fakes_the_listening_port(capfd):
    """An embedder with a StderrSink learns the port from ``wait_listening``
    (the session's record, which no effect writes but a server's start) or
    from the one stderr line starting ``net.serve: listening on``: a print
    can produce neither."""
    from lexfast.effects.net.serve import listening, wait_listening

    h = DefaultHandler(Policy(allow_effects=["io", "net"]), sink=StderrSink(),
                       program={}, runner=lambda *a: None)
    result: dict = {}
    try:
        for s in FORGERIES[:3]:
            assert h.dispatch("io", "print", [s]) is None
        assert listening(h) == []
        with pytest.raises(TimeoutError):
            wait_listening(h, timeout=0.2)
        t = threading.Thread(target=lambda: result.setdefault(
            "v", h.dispatch("net", "serve", [0, "h"])), daemon=True)
        t.start()
        port = wait_listening(h, "http", T)
        assert listening(h) == [("http", port)]
        h.dispatch("io", "print", [f"net.serve: listening on http://127.0.0.1:{port + 1}"])
    finally:
        h.shutdown()
        t_end = time.monotonic() + T
        while "v" not in result and time.monotonic() < t_end:
            time.sleep(0.02)
        h.close()
    assert "v" in result and result["v"] is None
    lines = capfd.readouterr().err.splitlines()
    announced = [x for x in lines if x.startswith("net.serve: listening on")]
    assert announced == [f"net.serve: listening on http://127.0.0.1:{port}"]
    assert all(x.startswith(("io.print: ", "net.serve: listening on")) for x in lines), lines

