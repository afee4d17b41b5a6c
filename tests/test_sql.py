"""sql.* on real SQLite files in temp folders (docs/behaviour.md §3.8, §6.9)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from lexfast import NONE, EffectError, PolicyDenied, Variant, err, ok, some
from lexfast.handler import Limits


def sql(h, op, *args):
    return h.dispatch("sql", op, list(args))


def opened(h, path):
    r = sql(h, "open", str(path))
    assert r.name == "Ok" and isinstance(r.args[0], int), r
    return r.args[0]


@pytest.fixture
def mem(make_handler):
    h = make_handler(effects=["sql"])
    return h, opened(h, ":memory:")


def message(r):
    """The message of an ``err(SqlError)`` (issue 17: sql.open/exec/query
    answer the reference's ``{message, code, detail}`` record)."""
    assert r.name == "Err" and isinstance(r.args[0], dict), r
    assert set(r.args[0]) == {"message", "code", "detail"}, r
    return r.args[0]["message"]


def sql_err(text):
    """``err(SqlError)`` with no code or detail (lexfast's own refusals)."""
    return err({"message": text, "code": NONE, "detail": NONE})


def is_err(r, prefix):
    return r.name == "Err" and message(r).startswith(prefix)


# -- §6.9 ------------------------------------------------------------------

def test_96_create_insert_query_round_trip(make_handler, tmp_path):
    h = make_handler(effects=["sql", "fs_write"], fs_write=[tmp_path])
    k = opened(h, tmp_path / "test.db")
    assert sql(h, "exec", k, "CREATE TABLE users(id INTEGER, name TEXT)", []) == ok(0)
    assert sql(h, "exec", k, "INSERT INTO users VALUES (?1, ?2)", ["1", "alice"]) == ok(1)
    assert sql(h, "exec", k, "INSERT INTO users VALUES (?1, ?2)", ["2", "bob"]) == ok(1)
    assert sql(h, "query", k, "SELECT id, name FROM users ORDER BY id", []) == ok(
        [{"id": 1, "name": "alice"}, {"id": 2, "name": "bob"}])
    # 98
    assert sql(h, "query", k, "SELECT name FROM users WHERE id = ?1", ["2"]) == ok([{"name": "bob"}])
    assert sql(h, "exec", k, "DELETE FROM users WHERE id = ?1", ["1"]) == ok(1)
    assert (tmp_path / "test.db").is_file()


def test_97_count_empty_table(make_handler):
    h = make_handler(effects=["sql", "fs_write"])
    k = opened(h, ":memory:")
    sql(h, "exec", k, "CREATE TABLE t(x INTEGER)", [])
    assert sql(h, "query", k, "SELECT COUNT(*) AS n FROM t", []) == ok([{"n": 0}])


def test_99_bad_sql_is_err(mem):
    h, k = mem
    assert is_err(sql(h, "query", k, "SELECT FROM where junk", []), "sql.query:")
    assert message(sql(h, "query", k, "SELECT FROM where junk", [])) == (
        'sql.query: near "FROM": syntax error')
    assert is_err(sql(h, "exec", k, "CREATE TABLE (", []), "sql.exec:")


def test_100_open_outside_write_root(make_handler, tmp_path):
    d = tmp_path / "D"
    d.mkdir()
    h = make_handler(effects=["sql", "fs_write"], fs_write=[d])
    target = tmp_path / "lex-sql-outside.db"
    r = sql(h, "open", str(target))
    assert message(r) == (f"sql.open: `{target}` outside --allow-fs-write")
    assert not target.exists()


def test_101_null_is_unit(mem):
    h, k = mem
    sql(h, "exec", k, "CREATE TABLE t(x INTEGER)", [])
    sql(h, "exec", k, "INSERT INTO t VALUES (NULL)", [])
    assert sql(h, "query", k, "SELECT x FROM t", []) == ok([{"x": None}])


def test_102_close_invalidates(mem):
    h, k = mem
    assert sql(h, "close", k) is None
    for op in ("query", "exec"):
        with pytest.raises(EffectError) as e:
            sql(h, op, k, "SELECT 1 AS x", [])
        assert str(e.value) == f"sql.{op}: closed or unknown Db handle"


def test_103_104_constraint_errors(mem):
    h, k = mem
    sql(h, "exec", k, "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE)", [])
    assert sql(h, "exec", k, "INSERT INTO t(id) VALUES (1)", []) == ok(1)
    r = sql(h, "exec", k, "INSERT INTO t(id) VALUES (1)", [])
    assert is_err(r, "sql.exec:") and "constraint" in message(r).lower()
    sql(h, "exec", k, "INSERT INTO t(id, name) VALUES (2, 'alice')", [])
    r = sql(h, "exec", k, "INSERT INTO t(id, name) VALUES (3, 'alice')", [])
    assert message(r) == ("sql.exec: UNIQUE constraint failed: t.name")


def test_105_memory_is_exempt_and_gate(make_handler, tmp_path):
    h = make_handler(effects=["sql"], fs_write=[tmp_path / "D"])
    assert sql(h, "open", ":memory:").name == "Ok"
    assert sql(h, "open", "file::memory:").name == "Ok"
    h2 = make_handler(effects=["fs_write"])
    with pytest.raises(PolicyDenied, match="effect `sql` not in --allow-effects"):
        sql(h2, "open", ":memory:")


def test_106_params_are_strings_or_sql_params(mem):
    """The seed's ``List[Str]`` or the reference's ``SqlParam`` variants
    (issue 17); a bare Int is neither."""
    h, k = mem
    with pytest.raises(EffectError, match=r"^sql\.exec: expected SqlParam variant, got Int\(1\)$"):
        sql(h, "exec", k, "SELECT 1", [1])
    assert sql(h, "query", k, "SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e",
               ["s", Variant("PInt", (7,)), Variant("PFloat", (1.5,)), Variant("PBool", (True,)),
                Variant("PNull")]) == ok([{"a": "s", "b": 7, "c": 1.5, "d": 1, "e": None}])
    with pytest.raises(EffectError, match=r"^sql\.query: PInt requires an Int argument$"):
        sql(h, "query", k, "SELECT ?", [Variant("PInt", ("7",))])


def test_107_types(mem):
    h, k = mem
    assert sql(h, "query", k, "SELECT 1.5 AS f, x'0102' AS b, 'é' AS s", []) == ok(
        [{"f": 1.5, "b": b"\x01\x02", "s": "é"}])
    r = sql(h, "query", k, "SELECT 9223372036854775807 AS big, -3 AS neg, NULL AS n", [])
    assert r == ok([{"big": 9223372036854775807, "neg": -3, "n": None}])
    assert type(r.args[0][0]["big"]) is int


def test_108_exec_of_a_row_returning_statement(mem):
    h, k = mem
    assert message(sql(h, "exec", k, "SELECT 1", [])) == (
        "sql.exec: Execute returned results - did you mean to call query?")
    assert sql(h, "exec", k, "SELECT 1 WHERE 0", []).name == "Ok"  # no row: like rusqlite


# -- rusqlite semantics --------------------------------------------------------

def test_changes_semantics(mem):
    h, k = mem
    assert sql(h, "exec", k, "CREATE TABLE t(x INTEGER)", []) == ok(0)
    assert sql(h, "exec", k, "INSERT INTO t VALUES (1), (2), (3)", []) == ok(3)
    # DDL after DML reports the stale changes() of the last DML, as rusqlite.
    assert sql(h, "exec", k, "CREATE TABLE u(y)", []) == ok(3)
    assert sql(h, "exec", k, "UPDATE t SET x = x + 1 WHERE x > ?1", ["1"]) == ok(2)
    assert sql(h, "exec", k, "WITH v(a) AS (VALUES (7)) INSERT INTO t SELECT a FROM v", []) == ok(1)
    assert sql(h, "exec", k, "DELETE FROM t", []) == ok(4)


def test_autocommit_and_explicit_transactions(make_handler, tmp_path):
    h = make_handler(effects=["sql"])
    path = tmp_path / "a.db"
    k1, k2 = opened(h, path), opened(h, path)
    sql(h, "exec", k1, "CREATE TABLE t(x)", [])
    sql(h, "exec", k1, "INSERT INTO t VALUES (1)", [])
    assert sql(h, "query", k2, "SELECT x FROM t", []) == ok([{"x": 1}])  # committed
    sql(h, "exec", k1, "BEGIN", [])
    sql(h, "exec", k1, "INSERT INTO t VALUES (2)", [])
    assert sql(h, "query", k2, "SELECT count(*) AS n FROM t", []) == ok([{"n": 1}])
    sql(h, "exec", k1, "COMMIT", [])
    assert sql(h, "query", k2, "SELECT count(*) AS n FROM t", []) == ok([{"n": 2}])


def test_several_statements_are_refused(mem):
    h, k = mem
    sql(h, "exec", k, "CREATE TABLE t(x)", [])
    assert message(sql(h, "exec", k, "INSERT INTO t VALUES (1); DROP TABLE t", [])) == (
        "sql.exec: Multiple statements provided")
    assert is_err(sql(h, "query", k, "SELECT 1; SELECT 2", []), "sql.query:")
    assert sql(h, "query", k, "SELECT count(*) AS n FROM t", []) == ok([{"n": 0}])


def test_params_are_bound_as_text_never_interpolated(mem):
    h, k = mem
    sql(h, "exec", k, "CREATE TABLE t(id INTEGER, name TEXT)", [])
    evil = "x'); DROP TABLE t; --"
    assert sql(h, "exec", k, "INSERT INTO t VALUES (?1, ?2)", ["7", evil]) == ok(1)
    assert sql(h, "query", k, "SELECT id, name FROM t", []) == ok([{"id": 7, "name": evil}])
    assert sql(h, "query", k, "SELECT ?2 || ?1 AS c, ?1 AS q", ["1", "2"]) == ok([{"c": "21", "q": "1"}])
    assert sql(h, "query", k, "SELECT ? AS a, ? AS b", ["x", "y"]) == ok([{"a": "x", "b": "y"}])
    assert sql(h, "query", k, "SELECT typeof(?1) AS t", ["1"]) == ok([{"t": "text"}])
    # Type affinity makes "7" match the INTEGER column.
    assert sql(h, "query", k, "SELECT name FROM t WHERE id = ?1", ["7"]) == ok([{"name": evil}])
    assert is_err(sql(h, "query", k, "SELECT ?1, ?2", ["only one"]), "sql.query:")
    assert is_err(sql(h, "exec", k, "INSERT INTO t VALUES (?1, ?2)", []), "sql.exec:")
    assert sql(h, "query", k, "SELECT ?1 AS z", ["a\0b"]) == ok([{"z": "a\0b"}])


def test_column_names(mem):
    h, k = mem
    sql(h, "exec", k, "CREATE TABLE t(a, b)", [])
    sql(h, "exec", k, "INSERT INTO t VALUES (1, 2)", [])
    r = sql(h, "query", k, "SELECT a + b, a AS x, b AS x, a FROM t", [])
    assert r == ok([{"a + b": 3, "x": 2, "a": 1}])
    assert list(r.args[0][0]) == ["a + b", "x", "a"]  # duplicates keep the first position


def test_invalid_utf8_text_is_replaced(mem):
    h, k = mem
    sql(h, "exec", k, "CREATE TABLE t(s TEXT)", [])
    sql(h, "exec", k, "INSERT INTO t VALUES (CAST(x'ff41' AS TEXT)), ('ok')", [])
    assert sql(h, "query", k, "SELECT s FROM t", []) == ok([{"s": "\ufffdA"}, {"s": "ok"}])
    assert sql(h, "query", k, "SELECT s FROM t WHERE s = 'ok'", []) == ok([{"s": "ok"}])
    # A statement that changed the database is never run twice.
    r = sql(h, "query", k, "INSERT INTO t VALUES (CAST(x'fe' AS TEXT)) RETURNING s", [])
    assert is_err(r, "sql.query:")
    assert sql(h, "query", k, "SELECT count(*) AS n FROM t", []) == ok([{"n": 3}])


def test_query_of_a_statement_without_rows(mem):
    h, k = mem
    assert sql(h, "query", k, "CREATE TABLE t(x)", []) == ok([])
    assert sql(h, "query", k, "INSERT INTO t VALUES (1)", []) == ok([])
    assert sql(h, "query", k, "SELECT x FROM t", []) == ok([{"x": 1}])


# -- argument checks and handles -------------------------------------------------

@pytest.mark.parametrize("op,args,message", [
    ("exec", ["1", "SELECT 1", []], 'expected Db handle (Int), got Str("1")'),
    ("exec", [-1, "SELECT 1", []], "expected Db handle (Int), got Int(-1)"),
    ("query", [], "missing Db argument"),
    ("close", [None], "expected Db handle (Int), got Unit"),
    ("query", [1], "missing argument"),
    ("query", [1, 2, []], "expected Str arg, got Int(2)"),
    ("query", [1, "SELECT 1"], "sql.query: missing params argument"),
    ("exec", [1, "SELECT 1", "x"], 'sql.exec: expected List[SqlParam], got Str("x")'),
    ("exec", [1, "SELECT 1", ("a",)], 'sql.exec: expected List[SqlParam], got Tuple([Str("a")])'),
    ("open", [3], "expected Str arg, got Int(3)"),
])
def test_bad_argument_types_are_hard(make_handler, op, args, message):
    h = make_handler(effects=["sql"])
    with pytest.raises(EffectError) as e:
        sql(h, op, *args)
    assert str(e.value) == message


def test_unknown_handles(make_handler):
    h = make_handler(effects=["sql"])
    assert sql(h, "close", 424242) is None
    with pytest.raises(EffectError, match="^sql.exec: closed or unknown Db handle$"):
        sql(h, "exec", 424242, "SELECT 1", [])


def test_handles_from_another_session(make_handler):
    h1 = make_handler(effects=["sql"])
    h2 = make_handler(effects=["sql"])
    k = opened(h1, ":memory:")
    with pytest.raises(EffectError, match="^sql.query: closed or unknown Db handle$"):
        sql(h2, "query", k, "SELECT 1 AS x", [])
    assert sql(h2, "close", k) is None
    assert sql(h1, "query", k, "SELECT 1 AS x", []) == ok([{"x": 1}])
    assert sql(h1.fork(), "query", k, "SELECT 2 AS x", []) == ok([{"x": 2}])


# -- scope ---------------------------------------------------------------------

@pytest.mark.parametrize("make_path", [
    lambda d, o: f"{d}/../outside/x.db",
    lambda d, o: f"{d}2/x.db",
    lambda d, o: f"{d}/link/x.db",
    lambda d, o: f"file:{o}/x.db",
    lambda d, o: f"file://{o}/x.db",
    lambda d, o: f"file:{d}/%2E%2E/outside/x.db",
    lambda d, o: f"file:{o}/x.db?mode=rwc",
])
def test_scope_escapes_create_nothing(make_handler, tmp_path, make_path):
    d = tmp_path / "D"
    d.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (d / "link").symlink_to(outside)
    h = make_handler(effects=["sql"], fs_write=[d])
    path = make_path(d, outside)
    assert message(sql(h, "open", path)) == (f"sql.open: `{path}` outside --allow-fs-write")
    assert os.listdir(outside) == []
    assert not (tmp_path / "D2").exists()


def test_file_uri_inside_scope(make_handler, tmp_path):
    h = make_handler(effects=["sql"], fs_write=[tmp_path])
    k = opened(h, f"file:{tmp_path}/u%20ri.db?mode=rwc")
    sql(h, "exec", k, "CREATE TABLE t(x)", [])
    assert (tmp_path / "u ri.db").is_file()
    ro = opened(h, f"file://localhost{tmp_path}/u%20ri.db?mode=ro")
    assert is_err(sql(h, "exec", ro, "INSERT INTO t VALUES (1)", []), "sql.exec: attempt to write")
    assert sql(h, "query", ro, "SELECT count(*) AS n FROM t", []) == ok([{"n": 0}])


@pytest.mark.parametrize("uri,why", [
    ("file:{d}/x.db?vfs=unix-none", "URI parameter `vfs` is not allowed"),
    ("file:{d}/x.db?modeof=/etc/passwd", "URI parameter `modeof` is not allowed"),
    ("file:shared?mode=memory&cache=shared", "URI parameter `cache=shared` is not allowed"),
    ("file:{d}/x.db?mode=bogus", "URI parameter `mode=bogus` is not allowed"),
    ("file://evil.example{d}/x.db", "invalid uri authority: evil.example"),
])
def test_uri_parameters_refused(make_handler, tmp_path, uri, why):
    h = make_handler(effects=["sql"], fs_write=[tmp_path])
    assert message(sql(h, "open", uri.format(d=tmp_path))) == (f"sql.open: {why}")
    assert os.listdir(tmp_path) == []


def test_attach_vacuum_into_and_extensions_refused(make_handler, tmp_path):
    d = tmp_path / "D"
    d.mkdir()
    h = make_handler(effects=["sql"], fs_write=[d])
    k = opened(h, d / "main.db")
    sql(h, "exec", k, "CREATE TABLE t(x)", [])
    for stmt in (f"ATTACH DATABASE '{tmp_path}/att.db' AS a",
                 f"ATTACH DATABASE '{d}/inside.db' AS a",
                 f"VACUUM INTO '{tmp_path}/copy.db'",
                 f"PRAGMA temp_store_directory = '{tmp_path}'",
                 f"PRAGMA data_store_directory = '{tmp_path}'"):
        r = sql(h, "exec", k, stmt, [])
        assert is_err(r, "sql.exec: not authorized") or is_err(
            r, "sql.exec: authorization denied"), (stmt, r)
        assert "ATTACH" in message(r)
    r = sql(h, "query", k, "SELECT load_extension('/nonexistent/ext')", [])
    assert is_err(r, "sql.query: not authorized")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D"]
    assert not (d / "inside.db").exists()
    # The connection still works.
    assert sql(h, "exec", k, "INSERT INTO t VALUES (1)", []) == ok(1)


def test_plain_vacuum_works_vacuum_into_and_attach_stay_refused(make_handler, tmp_path):
    # plain VACUUM attaches a private temporary database (name ""): allowed;
    # every named target, literal or computed, stays refused
    d = tmp_path / "D"
    d.mkdir()
    h = make_handler(effects=["sql"], fs_write=[d])
    k = opened(h, d / "main.db")
    sql(h, "exec", k, "CREATE TABLE t(x)", [])
    sql(h, "exec", k, "INSERT INTO t VALUES (1), (2)", [])
    sql(h, "exec", k, "DELETE FROM t WHERE x = 1", [])
    assert sql(h, "exec", k, "VACUUM", []).name == "Ok"
    assert sql(h, "exec", k, "VACUUM main", []).name == "Ok"
    assert sql(h, "query", k, "SELECT x FROM t", []) == ok([{"x": 2}])
    for stmt, params in ((f"VACUUM INTO '{tmp_path}/copy.db'", []),
                         ("VACUUM INTO 'rel.db'", []),
                         (f"VACUUM INTO 'file:{tmp_path}/copy.db'", []),
                         (f"VACUUM INTO '{tmp_path}/' || 'copy.db'", []),
                         ("VACUUM INTO ?1", [f"{tmp_path}/copy.db"]),
                         (f"VACUUM main INTO '{d}/inside.db'", []),
                         (f"ATTACH '{tmp_path}/' || 'att.db' AS a", []),
                         ("ATTACH ?1 AS a", [f"{tmp_path}/att.db"]),
                         ("ATTACH ':memory:' AS a", []),
                         ("ATTACH 'file:x?mode=memory&cache=shared' AS a", [])):
        r = sql(h, "exec", k, stmt, params)
        assert is_err(r, "sql.exec: not authorized") or is_err(
            r, "sql.exec: authorization denied"), (stmt, r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D"]
    assert sorted(p.name for p in d.iterdir()) == ["main.db", "main.db-shm", "main.db-wal"]
    assert not (d.parent / "rel.db").exists() and not os.path.exists("rel.db")


def test_temporary_storage_stays_in_memory(mem):
    h, k = mem
    assert sql(h, "query", k, "PRAGMA temp_store", []) == ok([{"temp_store": 2}])
    for stmt in ("PRAGMA temp_store = FILE", "PRAGMA temp_store = 1",
                 "PRAGMA main.temp_store = DEFAULT"):
        assert is_err(sql(h, "exec", k, stmt, []), "sql.exec: not authorized"), stmt
    assert sql(h, "query", k, "PRAGMA temp_store", []) == ok([{"temp_store": 2}])
    assert sql(h, "exec", k, "CREATE TEMP TABLE tt(x)", []) == ok(0)
    assert sql(h, "exec", k, "INSERT INTO tt VALUES (1)", []) == ok(1)


def test_lone_surrogates_are_errors_not_internal_errors(make_handler, tmp_path):
    # a `file:` URI with a lone surrogate was "internal error: UnicodeEncodeError"
    h = make_handler(effects=["sql"], fs_write=[tmp_path])
    os.mkdir(os.fsencode(str(tmp_path)) + b"/\xff")
    os.symlink(os.fsencode(str(tmp_path)) + b"/\xff", tmp_path / "link")
    for path in (f"{tmp_path}/\udcff.db", f"file:{tmp_path}/\udcff.db",
                 f"{tmp_path}/link/x.db", f"file:{tmp_path}/link/x.db"):
        assert message(sql(h, "open", path)) == ("sql.open: path is not valid UTF-8"), path
    assert sql(h, "open", f"file:{tmp_path}/\ud800.db").name == "Err"
    assert sorted(os.listdir(tmp_path)) == ["link", "\udcff"]
    assert os.listdir(os.fsencode(str(tmp_path)) + b"/\xff") == []
    k = opened(h, ":memory:")
    for op in ("exec", "query"):
        assert is_err(sql(h, op, k, "SELECT ?1", ["\udcff"]), f"sql.{op}: ")
        assert is_err(sql(h, op, k, "SELECT '\ud800'", []), f"sql.{op}: ")


def test_file_databases_use_wal(make_handler, tmp_path):
    h = make_handler(effects=["sql"])
    k = opened(h, tmp_path / "w.db")
    assert sql(h, "query", k, "PRAGMA journal_mode", []) == ok([{"journal_mode": "wal"}])
    m = opened(h, ":memory:")
    assert sql(h, "query", m, "PRAGMA journal_mode", []) == ok([{"journal_mode": "memory"}])


def test_open_errors_are_soft(make_handler, tmp_path):
    (tmp_path / "junk.db").write_bytes(b"this is not a database file at all, honestly" * 20)
    h = make_handler(effects=["sql"], fs_write=[tmp_path])
    r = sql(h, "open", str(tmp_path / "junk.db"))
    assert is_err(r, "sql.open: file is not a database"), r
    r = sql(h, "open", str(tmp_path / "no" / "such" / "dir.db"))
    assert is_err(r, "sql.open: unable to open database file"), r
    assert is_err(sql(h, "open", str(tmp_path / "nul\0.db")), "sql.open:")


# -- limits -------------------------------------------------------------------

def test_rows_are_bounded(make_handler):
    h = make_handler(effects=["sql"], limits=Limits(sql_rows=5))
    k = opened(h, ":memory:")
    q = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < CAST(?1 AS INTEGER)) SELECT x FROM c"
    assert len(sql(h, "query", k, q, ["5"]).args[0]) == 5
    assert message(sql(h, "query", k, q, ["6"])) == ("sql.query: more than 5 rows (Limits.sql_rows)")
    # Unbounded generators stop at the cap too.
    q2 = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c"
    assert message(sql(h, "query", k, q2, [])) == ("sql.query: more than 5 rows (Limits.sql_rows)")


def test_result_bytes_are_bounded(make_handler):
    # rows alone did not bound a result: one row could carry ~1 GB per column
    h = make_handler(effects=["sql"])
    k = opened(h, ":memory:")
    r = sql(h, "query", k, "SELECT zeroblob(1e8), zeroblob(1e8), zeroblob(1e8)", [])
    assert message(r) == ("sql.query: string or blob too big (Limits.sql_result_bytes)")
    h = make_handler(effects=["sql"], limits=Limits(sql_result_bytes=1000))
    k = opened(h, ":memory:")
    q = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
         "WHERE x < CAST(?1 AS INTEGER)) SELECT x, printf('%.99c', 'a') AS s FROM c")
    rows = sql(h, "query", k, q, ["10"]).args[0]
    assert len(rows) == 10 and rows[0]["s"] == "a" * 99
    assert message(sql(h, "query", k, q, ["11"])) == (
        "sql.query: result larger than 1000 bytes (Limits.sql_result_bytes)")
    q2 = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT zeroblob(600) FROM c"
    assert message(sql(h, "query", k, q2, [])) == (
        "sql.query: result larger than 1000 bytes (Limits.sql_result_bytes)")
    # one value past the bound is refused by SQLite itself, read or written
    assert message(sql(h, "query", k, "SELECT zeroblob(1001)", [])) == (
        "sql.query: string or blob too big (Limits.sql_result_bytes)")
    sql(h, "exec", k, "CREATE TABLE t(b)", [])
    assert message(sql(h, "exec", k, "INSERT INTO t VALUES (zeroblob(1001))", [])) == (
        "sql.exec: string or blob too big (Limits.sql_result_bytes)")
    assert sql(h, "query", k, "SELECT 1 AS one", []) == ok([{"one": 1}])


def test_runaway_statement_is_interrupted(make_handler):
    h = make_handler(effects=["sql"], limits=Limits(sql_timeout_s=0.3))
    k = opened(h, ":memory:")
    q = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS n FROM c"
    t0 = time.monotonic()
    assert message(sql(h, "query", k, q, [])) == ("sql.query: interrupted after 0.3 s (Limits.sql_timeout_s)")
    assert time.monotonic() - t0 < 5
    sql(h, "exec", k, "CREATE TABLE t(x)", [])
    ins = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) INSERT INTO t SELECT x FROM c"
    assert message(sql(h, "exec", k, ins, [])) == ("sql.exec: interrupted after 0.3 s (Limits.sql_timeout_s)")
    # Still usable; the interrupted insert left nothing behind.
    assert sql(h, "query", k, "SELECT count(*) AS n FROM t", []) == ok([{"n": 0}])


# -- LRU and fds -----------------------------------------------------------------

def _fds_under(path) -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(path) + "/"):
                n += 1
        except OSError:
            pass
    return n


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_lru_cap_300_opens(make_handler, tmp_path):
    h = make_handler(effects=["sql"])
    first = opened(h, tmp_path / "db0.db")
    per_db = _fds_under(tmp_path)
    assert per_db >= 1
    handles = [first] + [opened(h, tmp_path / f"db{i}.db") for i in range(1, 300)]
    for i, hd in enumerate(handles):
        if i < 44:
            with pytest.raises(EffectError, match="^sql.query: closed or unknown Db handle$"):
                sql(h, "query", hd, "SELECT 1 AS x", [])
        else:
            assert sql(h, "query", hd, "SELECT 1 AS x", []) == ok([{"x": 1}])
    assert _fds_under(tmp_path) == 256 * per_db
    h.close()
    assert _fds_under(tmp_path) == 0


def test_lru_touch_keeps_handle(make_handler):
    h = make_handler(effects=["sql"])
    handles = [opened(h, ":memory:") for _ in range(256)]
    sql(h, "query", handles[0], "SELECT 1 AS x", [])
    opened(h, ":memory:")
    assert sql(h, "query", handles[0], "SELECT 1 AS x", []) == ok([{"x": 1}])
    with pytest.raises(EffectError, match="closed or unknown Db handle"):
        sql(h, "exec", handles[1], "SELECT 1", [])


# -- threads -------------------------------------------------------------------

@pytest.mark.parametrize("shared", [True, False], ids=["one-handle", "handle-per-thread"])
def test_four_threads_no_lost_write(make_handler, tmp_path, shared):
    h = make_handler(effects=["sql"])
    path = tmp_path / "c.db"
    k = opened(h, path)
    sql(h, "exec", k, "CREATE TABLE t(who TEXT, i INTEGER)", [])
    errors = []

    def writer(n):
        f = h.fork()
        mine = k if shared else opened(f, path)
        try:
            for i in range(150):
                r = sql(f, "exec", mine, "INSERT INTO t VALUES (?1, ?2)", [str(n), str(i)])
                assert r == ok(1), r
                if i % 30 == 0:
                    sql(f, "query", mine, "SELECT count(*) AS n FROM t", [])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert sql(h, "query", k, "SELECT count(*) AS n, count(DISTINCT who || ':' || i) AS d FROM t",
               []) == ok([{"n": 600, "d": 600}])


SLOW = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 50000000) "
        "SELECT count(*) AS n FROM c")


def test_different_handles_do_not_serialise(make_handler):
    h = make_handler(effects=["sql"], limits=Limits(sql_timeout_s=1.5))
    slow, fast = opened(h, ":memory:"), opened(h, ":memory:")
    started = threading.Event()
    result = []

    def run_slow():
        started.set()
        result.append(sql(h.fork(), "query", slow, SLOW, []))

    t = threading.Thread(target=run_slow)
    t.start()
    started.wait(5)
    time.sleep(0.1)
    t0 = time.monotonic()
    assert sql(h, "query", fast, "SELECT 42 AS x", []) == ok([{"x": 42}])
    assert time.monotonic() - t0 < 1.0
    assert t.is_alive()  # the slow call was still running meanwhile
    t.join(10)
    assert result and result[0].name == "Err" and "interrupted" in message(result[0])


def test_close_interrupts_a_running_call(make_handler):
    h = make_handler(effects=["sql"], limits=Limits(sql_timeout_s=20))
    k = opened(h, ":memory:")
    outcome = []

    def run():
        try:
            outcome.append(sql(h.fork(), "query", k, SLOW, []))
        except EffectError as e:
            outcome.append(str(e))

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    assert sql(h, "close", k) is None
    t.join(10)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 5
    assert outcome == ["sql.query: closed or unknown Db handle"]


def test_handler_close_closes_connections(make_handler, tmp_path):
    h = make_handler(effects=["sql"])
    for i in range(3):
        opened(h, tmp_path / f"x{i}.db")
    assert _fds_under(tmp_path) > 0
    h.close()
    assert _fds_under(tmp_path) == 0


# -- what SQLite is handed -------------------------------------------------------------

def test_new_database_is_created_and_a_refused_open_leaves_nothing(make_handler, tmp_path):
    h = make_handler(effects=["sql"], fs_write=[tmp_path])
    k = opened(h, tmp_path / "new.db")
    assert sql(h, "exec", k, "CREATE TABLE t(x)", []) == ok(0)
    assert (tmp_path / "new.db").read_bytes()[:16] == b"SQLite format 3\0"
    # a missing database with a -wal SQLite did not make beside it: refused,
    # and the empty file made for the check is removed again
    (tmp_path / "gone.db-wal").write_bytes(b"junk" * 100)
    r = sql(h, "open", str(tmp_path / "gone.db"))
    assert is_err(r, "sql.open: `"), r
    assert "gone.db-wal` has content but the database is empty" in message(r)
    assert not (tmp_path / "gone.db").exists()
    # mode=ro / mode=rw never create it
    for uri in (f"file:{tmp_path}/ro.db?mode=ro", f"file:{tmp_path}/rw.db?mode=rw"):
        assert is_err(sql(h, "open", uri), "sql.open: unable to open database file")
    assert not (tmp_path / "ro.db").exists() and not (tmp_path / "rw.db").exists()
    # an existing database opens read-only
    r = sql(h, "open", f"file:{tmp_path}/new.db?mode=ro")
    assert r.name == "Ok", r
    assert sql(h, "query", r.args[0], "SELECT count(*) AS n FROM t", []) == ok([{"n": 0}])


def test_pragma_refusals_name_the_allowlist(mem):
    h, k = mem
    for stmt in ("PRAGMA soft_heap_limit=1", "SELECT * FROM pragma_threads"):
        r = sql(h, "query", k, stmt, [])
        assert is_err(r, "sql.query: "), r
        assert "every PRAGMA not on its allowlist" in message(r), r
    assert sql(h, "exec", k, "PRAGMA user_version = 3", []).name == "Ok"
    assert sql(h, "query", k, "PRAGMA user_version", []) == ok([{"user_version": 3}])


def test_memory_limit_is_a_limits_field():
    assert Limits().sql_memory_bytes == 512 << 20


# -- upstream sql_error_codes.rs, on sql.exec / sql.query (issue 17) -------------

def test_sql_error_codes_primary_key_unique_and_syntax(mem):
    """sql_error_codes.rs: a PRIMARY KEY clash, a UNIQUE clash and a syntax
    error are ``Err(SqlError)`` with the op in ``message``, SQLite's extended
    code by name in ``code`` and its own text in ``detail``."""
    h, k = mem
    assert sql(h, "exec", k, "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE)", []) == ok(0)
    assert sql(h, "exec", k, "INSERT INTO t(id, name) VALUES (1, 'alice')", []) == ok(1)
    r = sql(h, "exec", k, "INSERT INTO t(id, name) VALUES (1, 'bob')", [])
    assert r == err({"message": "sql.exec: UNIQUE constraint failed: t.id",
                     "code": some("SQLITE_CONSTRAINT_PRIMARYKEY"),
                     "detail": some("UNIQUE constraint failed: t.id")})
    r = sql(h, "exec", k, "INSERT INTO t(id, name) VALUES (?, ?)", [Variant("PInt", (2,)), "alice"])
    assert r.args[0]["code"] == some("SQLITE_CONSTRAINT_UNIQUE")
    assert "sql.exec" in message(r) and "constraint" in message(r).lower()
    r = sql(h, "query", k, "SELECT FROM where junk", [])
    assert message(r).startswith("sql.query: ") and r.args[0]["code"].name == "Some"
    assert r.args[0]["detail"] == some('near "FROM": syntax error')
    # lexfast's own refusals carry no code
    r = sql(h, "exec", k, "SELECT 1", [])
    assert r.args[0]["code"] == NONE and r.args[0]["detail"] == NONE
