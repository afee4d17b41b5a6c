"""The compiled fronts of fs.stat/exists/is_file/is_dir, kv.get/contains/put
and sql.query (``_fs_c``, ``_kv_c``, ``_sql_c``) answer exactly as the Python
ops they stand in for, on the common case and on every case they hand back.

Each case is dispatched (the compiled front when it is built) and given to
the Python op directly; the two outcomes (value, or exception type and
message) must be equal. Under ``LEXFAST_NO_EXTENSIONS`` both sides are the
Python op, and the cases still run.
"""

from __future__ import annotations

import os

import pytest

from lexfast import DefaultHandler, Policy
from lexfast.effects import kv as kv_mod
from lexfast.effects import sql as sql_mod
from lexfast.effects.fs import ops as fs_ops
from lexfast.effects.net import http as http_mod
from lexfast.handler import Limits


def outcome(fn, *a):
    try:
        return ("value", fn(*a))
    except Exception as e:  # the error a VM would see
        return ("raise", type(e).__name__, str(e))


def same(h, kind, op, py_fn, args):
    got = outcome(h.dispatch, kind, op, list(args) if isinstance(args, list) else args)
    want = outcome(py_fn, h, list(args) if isinstance(args, list) else args)
    assert got == want, (kind, op, args)
    return got


def test_fronts_are_compiled_when_the_core_is():
    from lexfast import COMPILED
    if COMPILED and os.environ.get("LEXFAST_NO_EXTENSIONS", "").strip() in ("", "0"):
        # fs's C fast path is a native openat2: not under the portable walk
        assert fs_ops.FS_COMPILED == fs_ops.openat2_works()
        assert kv_mod.KV_COMPILED and sql_mod.SQL_COMPILED
        assert http_mod.HTTP_COMPILED
    else:
        assert not (fs_ops.FS_COMPILED or kv_mod.KV_COMPILED or sql_mod.SQL_COMPILED
                    or http_mod.HTTP_COMPILED)


# -- fs ------------------------------------------------------------------------

@pytest.fixture
def fs_tree(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("x" * 100)
    (root / "empty").write_bytes(b"")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (root / "in_link").symlink_to(root / "a" / "b" / "f.txt")
    (root / "out_link").symlink_to(outside)
    (root / "dir_out").symlink_to(tmp_path)
    (root / "dangling").symlink_to(root / "nope")
    os.mkfifo(root / "fifo")
    h = DefaultHandler(Policy(allow_effects=["fs_walk"], allow_fs_read=[str(root)]))
    yield h, root, tmp_path
    h.close()


def _fs_cases(root, tmp_path):
    r = str(root)
    return [
        [r + "/a/b/f.txt"], [r + "/a/b"], [r], [r + "/"], [r + "/a/b/"], [r + "//a/./b/f.txt"],
        [r + "/empty"], [r + "/fifo"], [r + "/missing"], [r + "/a/b/f.txt/x"],
        [r + "/in_link"], [r + "/out_link"], [r + "/dir_out/outside.txt"], [r + "/dangling"],
        [r + "/a/../a/b/f.txt"], [r + "/../outside.txt"], [str(tmp_path / "outside.txt")],
        ["a/b/f.txt"], [""], ["/"], ["/proc/self/status"], ["/proc"],
        [r + "/a\0b"], [r + "/\udcff"], [r + "/" + "x" * 2000], [r + "/" + "é" * 600],
        [], [7], [None], [b"/etc/passwd"], (r + "/a/b/f.txt",), [r + "/a/b/f.txt", "extra"],
    ]


@pytest.mark.parametrize("op", ["stat", "exists", "is_file", "is_dir"])
def test_fs_fronts_answer_as_the_python_ops(fs_tree, op):
    h, root, tmp_path = fs_tree
    for args in _fs_cases(root, tmp_path):
        same(h, "fs", op, fs_ops.PY_OPS[op], args)


def test_fs_stat_common_case_values(fs_tree):
    h, root, _ = fs_tree
    r = h.dispatch("fs", "stat", [str(root / "a" / "b" / "f.txt")])
    st = os.stat(root / "a" / "b" / "f.txt")
    assert r.args[0] == {"size": 100, "mtime": int(st.st_mtime), "is_dir": False, "is_file": True}
    os.utime(root / "empty", ns=(0, -1))  # before the epoch: mtime 0, as int(st_mtime) > 0 else 0
    assert h.dispatch("fs", "stat", [str(root / "empty")]).args[0]["mtime"] == 0
    os.utime(root / "empty", ns=(0, 1_700_000_000_999_999_999))  # rounds up as a double does
    assert h.dispatch("fs", "stat", [str(root / "empty")]).args[0]["mtime"] == \
        int(os.stat(root / "empty").st_mtime)
    assert h.dispatch("fs", "stat", [str(root / "out_link")]).name == "Err"


def test_fs_root_removed_and_made_again(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "f").write_text("1")
    with DefaultHandler(Policy(allow_effects=["fs_walk"], allow_fs_read=[str(root)])) as h:
        assert h.dispatch("fs", "stat", [str(root / "f")]).args[0]["size"] == 1
        (root / "f").unlink()
        root.rmdir()
        root.mkdir()
        (root / "f").write_text("22")
        assert h.dispatch("fs", "stat", [str(root / "f")]).args[0]["size"] == 2


# -- kv ------------------------------------------------------------------------

@pytest.fixture
def kv_store(tmp_path):
    h = DefaultHandler(Policy(allow_effects=["kv"], allow_fs_write=[str(tmp_path)]),
                       limits=Limits(kv_sync=False))
    handle = h.dispatch("kv", "open", [str(tmp_path / "s")]).args[0]
    h.dispatch("kv", "put", [handle, "k", b"v"])
    h.dispatch("kv", "put", [handle, "", b"empty"])
    yield h, handle
    h.close()


def _kv_read_cases(handle):
    return [
        [handle, "k"], [handle, "missing"], [handle, ""], [handle, "x" * 600], [handle, "é" * 300],
        [handle, "\udcff"], [handle, b"k"], [handle, None], [handle], [], [True, "k"],
        [float(handle), "k"], [str(handle), "k"], [-1, "k"], [handle + 10_000, "k"],
        [2 ** 70, "k"], [handle, "k", "extra"], (handle, "k"),
    ]


@pytest.mark.parametrize("op", ["get", "contains"])
def test_kv_read_fronts_answer_as_the_python_ops(kv_store, op):
    h, handle = kv_store
    py = kv_mod.kv_get if op == "get" else kv_mod.kv_contains
    for args in _kv_read_cases(handle):
        same(h, "kv", op, py, args)


def test_kv_put_front_answers_as_the_python_op(kv_store):
    h, handle = kv_store
    for args in [[handle, "k2", b"v2"], [handle, "k3", bytearray(b"ba")],
                 [handle, "k4", memoryview(b"mv")], [handle, "k5", "str"], [handle, "", b"e2"],
                 [handle, "x" * 600, b"v"], [handle, "\udcff", b"v"], [handle, "k"], [True, "k", b"v"],
                 [handle + 10_000, "k", b"v"], [handle, "k6", b"v", "extra"], (handle, "k7", b"v")]:
        same(h, "kv", "put", kv_mod.kv_put, args)
        if len(args) < 3 or args[0] is not handle:
            continue
        got = outcome(h.dispatch, "kv", "get", [handle, args[1]])
        if got[0] == "value" and got[1].name == "Some" and isinstance(args[2], (bytes, bytearray, memoryview)):
            assert got[1].args[0] == bytes(args[2])


def test_kv_closed_store_and_closed_handle(kv_store):
    h, handle = kv_store
    h.dispatch("kv", "close", [handle])
    for op, py, args in [("get", kv_mod.kv_get, [handle, "k"]),
                         ("contains", kv_mod.kv_contains, [handle, "k"]),
                         ("put", kv_mod.kv_put, [handle, "k", b"v"])]:
        assert same(h, "kv", op, py, args)[0] == "raise"


# -- sql -----------------------------------------------------------------------

@pytest.fixture
def sql_db(tmp_path):
    h = DefaultHandler(Policy(allow_effects=["sql"], allow_fs_write=[str(tmp_path)]),
                       limits=Limits(sql_rows=3, sql_result_bytes=200))
    handle = h.dispatch("sql", "open", [str(tmp_path / "d.db")]).args[0]
    h.dispatch("sql", "exec", [handle, "CREATE TABLE t(a INTEGER, b TEXT, c BLOB)", []])
    for i in range(5):
        h.dispatch("sql", "exec", [handle, "INSERT INTO t VALUES (?1, ?2, x'00ff')", [str(i), str(i)]])
    yield h, handle
    h.close()


def _sql_cases(handle):
    return [
        [handle, "SELECT a, b FROM t WHERE a = ?1", ["1"]],
        [handle, "SELECT a, a, b AS a FROM t WHERE a = 2", []],
        [handle, "SELECT a, b, c FROM t WHERE a < 3", []],
        [handle, "SELECT * FROM t", []],                       # past the row cap
        [handle, "SELECT printf('%0150d', 1), printf('%0150d', 2)", []],             # past the byte cap
        [handle, "SELECT CAST(x'ff' AS TEXT) AS bad", []],     # invalid UTF-8: the lossy rerun
        [handle, "SELECT a FROM t WHERE 0", []],
        [handle, "CREATE TABLE IF NOT EXISTS u(x)", []],
        [handle, "SELEKT", []],
        [handle, "SELECT ?1", [1]], [handle, "SELECT ?1", ("1",)], [handle, "SELECT ?1", "1"],
        [handle, "SELECT 1", None], [handle, b"SELECT 1", []], [True, "SELECT 1", []],
        [handle + 10_000, "SELECT 1", []], [handle, "SELECT 1"], [handle, "SELECT 1", [], "x"],
        (handle, "SELECT 1", []),
    ]


def test_sql_query_front_answers_as_the_python_op(sql_db, monkeypatch):
    h, handle = sql_db
    compiled = [outcome(h.dispatch, "sql", "query", list(a) if isinstance(a, list) else a)
                for a in _sql_cases(handle)]
    monkeypatch.setattr(sql_mod, "_enter", sql_mod._begin)
    monkeypatch.setattr(sql_mod, "_records", sql_mod._py_records)
    python = [outcome(h.dispatch, "sql", "query", list(a) if isinstance(a, list) else a)
              for a in _sql_cases(handle)]
    assert compiled == python
    assert compiled[2][1].args[0] == [{"a": i, "b": str(i), "c": b"\x00\xff"} for i in range(3)]
    assert compiled[1][1].args[0] == [{"a": "2"}]  # repeated names: the last column wins
    assert [c[1].name for c in compiled[3:6]] == ["Err", "Err", "Ok"]


# -- http: the response-header parser --------------------------------------------

_HEADER_CASES = [
    [b"HTTP/1.1 200 OK\r\n", b"Server: x/1\r\n", b"Content-Length: 3\r\n", b"\r\n"],
    [b"HTTP/1.1 100 Continue\r\n", b"\r\n", b"HTTP/1.1 200 OK\r\n", b"A: 1\r\n", b"\r\n"],
    [b"HTTP/1.1 200 OK\r\n", b"X-Dup: 1\r\n", b"x-dup: 2\r\n", b"\r\n"],
    [b"HTTP/1.1 200 OK\r\n", b"  Spaced Name  :   spaced value   \r\n", b"\r\n"],
    [b"HTTP/1.1 200 OK\r\n", b"Empty:\r\n", b": no name\r\n", b"no colon\r\n", b"\r\n"],
    [b"HTTP/1.1 200 OK\r\n", b"Tab:\tv\t\r\n", b"\r\n"],
    [b"HTTP/1.1 200 OK\r\n", b"Fold: a\r\n", b" b\r\n", b"\tc\r\n", b"\r\n"],
    [b"HTTP/1.1 200 OK\r\n", b"Latin: caf\xe9\r\n", b"N\xc4ME: v\r\n", b"\r\n"],
    [b"HTTP/1.1 200 OK\r\n", b"Ctl: a\x01b\r\n", b"Del: a\x7fb\r\n", b"\r\n"],
    [b"HTTP/1.1 200 OK\r\n", b"Cr: a\rb\r\n", b"Lf-only: v\n", b"Trailing: cr\r"],
    [b"HTTP/1.1 200 OK\r\n", b"Weird\x85: v\r\n", b"Nbsp:\xa0v\xa0\r\n", b"\r\n"],
    [b"X: no status line\r\n"], [], [b""], [b"HTTP/"], [b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"],
    [b"HTTP/1.1 200 OK\r\n", "str line\r\n"], (b"HTTP/1.1 200 OK\r\n", b"A: 1\r\n"),
    [b"HTTP/1.1 200 OK\r\n", bytearray(b"A: 1\r\n")],
]


def test_http_header_parser_answers_as_the_python_one():
    from lexfast.effects.net import http as http_mod
    from lexfast.values import Map
    for lines in _HEADER_CASES:
        got = outcome(http_mod._parse_headers, lines)
        want = outcome(http_mod._py_parse_headers, lines)
        assert got == want, lines
        if got[0] == "value":
            assert type(got[1]) is Map
    assert http_mod._parse_headers(_HEADER_CASES[2]) == {"x-dup": "2"}
    assert http_mod._parse_headers(_HEADER_CASES[3]) == {"spaced name": "spaced value"}
