"""log.* (docs/behaviour.md §6.11); the log state is per session (issue 13.6)."""

from __future__ import annotations

import json
import os
import threading

import pytest

from lexfast import EffectError, PolicyDenied, err, ok

ALL = ["log", "io", "fs_write"]


def test_text_format_and_levels(make_handler, tmp_path):
    h = make_handler(effects=ALL, fs_write=[tmp_path])
    sink = tmp_path / "log.txt"
    assert h.dispatch("log", "set_sink", [str(sink)]) == ok(None)
    assert h.dispatch("log", "set_format", ["text"]) == ok(None)
    assert h.dispatch("log", "set_level", ["debug"]) == ok(None)
    for lvl in ("debug", "info", "warn", "error"):
        assert h.dispatch("log", lvl, [f"{lvl[0]}-msg"]) is None
    text = sink.read_text()
    for lvl in ("debug", "info", "warn", "error"):
        assert f"{lvl}: {lvl[0]}-msg" in text
    line = text.splitlines()[0]
    assert line.startswith("[20") and "+00:00] debug: d-msg" in line


def test_json_format_one_object_per_line(make_handler, tmp_path):
    h = make_handler(effects=ALL, fs_write=[tmp_path])
    sink = tmp_path / "log.jsonl"
    h.dispatch("log", "set_sink", [str(sink)])
    h.dispatch("log", "set_format", ["json"])
    h.dispatch("log", "info", ["hello, world"])
    h.dispatch("log", "info", ['a"b\\c\nd\te\x00f\x1b[31m\u2028\x85'])
    lines = sink.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["level"] == "info" and first["msg"] == "hello, world" and isinstance(first["ts"], str)
    assert json.loads(lines[1])["msg"] == 'a"b\\c\nd\te\x00f\x1b[31m\u2028\x85'


def test_level_threshold(make_handler, tmp_path):
    h = make_handler(effects=ALL, fs_write=[tmp_path])
    sink = tmp_path / "log.txt"
    h.dispatch("log", "set_sink", [str(sink)])
    h.dispatch("log", "set_level", ["warn"])
    for lvl in ("debug", "info", "warn", "error"):
        h.dispatch("log", lvl, [f"{lvl[0]}-msg"])
    text = sink.read_text()
    assert "w-msg" in text and "e-msg" in text and "d-msg" not in text and "i-msg" not in text


def test_text_format_cannot_forge_lines(make_handler, tmp_path):
    h = make_handler(effects=ALL, fs_write=[tmp_path])
    sink = tmp_path / "log.txt"
    h.dispatch("log", "set_sink", [str(sink)])
    h.dispatch("log", "info", ["ok\n[2026-01-01T00:00:00+00:00] error: forged\rx"])
    lines = sink.read_text().splitlines()
    assert len(lines) == 1 and "\\n[2026" in lines[0] and "\\r" in lines[0]


def test_errors_and_gates(make_handler, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    h = make_handler(effects=ALL, fs_write=[a])
    assert h.dispatch("log", "set_level", ["trace"]) == err(
        "log.set_level: unknown level `trace`; expected debug|info|warn|error")
    assert make_handler(effects=["io"]).dispatch("log", "set_format", ["xml"]) == err(
        "log.set_format: unknown format `xml`; expected text|json")
    assert h.dispatch("log", "set_sink", [f"{b}/log.txt"]) == err(
        f"fs path `{b}/log.txt` outside --allow-fs-write")
    assert h.dispatch("log", "set_sink", [f"{a}/../b/log.txt"]).name == "Err"
    assert not (b / "log.txt").exists()
    with pytest.raises(PolicyDenied, match="`io`"):
        make_handler(effects=["log"]).dispatch("log", "set_level", ["debug"])
    with pytest.raises(PolicyDenied, match="`log`"):
        make_handler(effects=["io"]).dispatch("log", "info", ["x"])
    with pytest.raises(PolicyDenied, match="`fs_write`"):
        make_handler(effects=["io"]).dispatch("log", "set_sink", ["-"])
    with pytest.raises(EffectError, match=r"^unsupported log\.trace$"):
        make_handler().dispatch("log", "trace", ["x"])
    r = h.dispatch("log", "set_sink", [str(a / "nodir" / "log.txt")])
    assert r.name == "Err" and r.args[0].startswith(f"log.set_sink `{a}/nodir/log.txt`: ")


def test_default_sink_is_stderr(make_handler, capsys):
    h = make_handler(effects=ALL)
    h.dispatch("log", "warn", ["to stderr"])
    h.dispatch("log", "debug", ["dropped"])
    assert h.dispatch("log", "set_sink", ["-"]) == ok(None)
    err_text = capsys.readouterr().err
    assert "warn: to stderr" in err_text and "dropped" not in err_text


def test_concurrent_lines_are_whole(make_handler, tmp_path):
    h = make_handler(effects=ALL, fs_write=[tmp_path])
    sink = tmp_path / "log.jsonl"
    h.dispatch("log", "set_sink", [str(sink)])
    h.dispatch("log", "set_format", ["json"])

    def spam(i):
        f = h.fork()
        for j in range(200):
            f.dispatch("log", "info", [f"t{i}-{j}-" + "x" * 200])

    ts = [threading.Thread(target=spam, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    lines = sink.read_text().splitlines()
    assert len(lines) == 800 and all(json.loads(x)["level"] == "info" for x in lines)


def test_set_sink_refuses_non_regular_files(make_handler, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    h = make_handler(effects=ALL)
    assert h.dispatch("log", "set_sink", ["/dev/null"]) == err(
        "log.set_sink `/dev/null`: not a regular file")
    r = h.dispatch("log", "set_sink", [str(fifo)])  # no reader: refused, never blocks
    assert r.name == "Err" and r.args[0].startswith(f"log.set_sink `{fifo}`: ")
    h.dispatch("log", "info", ["still fine"])
