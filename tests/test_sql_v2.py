"""SQL v2 on SQLite: typed parameters, SqlError, transactions, the streaming
cursor and the typed getters (issue 17; the reference's sql_query_iter,
sql_error_codes and the transaction half of std_sql restated)."""

from __future__ import annotations

import threading

import pytest

from lexfast import NONE, EffectError, Limits, PolicyDenied, Variant, err, ok, some


def P(name, *a):
    return Variant(name, a)


@pytest.fixture
def mem(make_handler):
    h = make_handler(effects=["sql", "fs_write"])
    db = h.dispatch("sql", "open", [":memory:"]).args[0]
    assert h.dispatch("sql", "exec", [db, "CREATE TABLE rows(id INTEGER, name TEXT)", []]) == ok(0)
    return h, db


def insert(h, db, n):
    for i in range(n):
        assert h.dispatch("sql", "exec_tx", [db, "INSERT INTO rows VALUES (?1, ?2)",
                                             [P("PInt", i), P("PStr", f"r{i}")]]) == ok(1)


def drain(h, it):
    out = []
    while True:
        r = h.dispatch("sql", "cursor_next", [it.args[0]])
        if r == NONE:
            return out
        out.append(r.args[0])


# -- sql_query_iter.rs --------------------------------------------------------------

def test_query_iter_drains_every_row(mem):
    h, db = mem
    insert(h, db, 5)
    r = h.dispatch("sql", "query_iter", [db, "SELECT id, name FROM rows ORDER BY id", []])
    assert r.name == "Ok" and r.args[0].name == "__IterCursor"
    assert [row["name"] for row in drain(h, r.args[0])] == ["r0", "r1", "r2", "r3", "r4"]
    assert h.dispatch("sql", "cursor_next", [r.args[0].args[0]]) == NONE  # past the end


def test_query_iter_on_empty_table(mem):
    h, db = mem
    it = h.dispatch("sql", "query_iter", [db, "SELECT id, name FROM rows", []]).args[0]
    assert drain(h, it) == []


def test_query_iter_early_termination_and_many_rows(mem):
    h, db = mem
    h.dispatch("sql", "exec", [db, "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x+1 FROM c "
                                   "WHERE x < 199999) INSERT INTO rows SELECT x, 'r' || x FROM c", []])
    it = h.dispatch("sql", "query_iter", [db, "SELECT id, name FROM rows ORDER BY id", []]).args[0]
    first = [h.dispatch("sql", "cursor_next", [it.args[0]]).args[0]["name"] for _ in range(3)]
    assert first == ["r0", "r1", "r2"]
    # more rows than sql.query would materialise (Limits.sql_rows = 100,000)
    assert h.dispatch("sql", "query", [db, "SELECT id FROM rows", []]).name == "Err"
    it2 = h.dispatch("sql", "query_iter", [db, "SELECT id FROM rows", []]).args[0]
    assert len(drain(h, it2)) == 200_000
    # the first cursor, abandoned, does not block the connection
    assert h.dispatch("sql", "exec_tx", [db, "DELETE FROM rows WHERE id > ?", [P("PInt", 10)]]) \
        == ok(199_989)


def test_query_iter_typed_params_and_interleaving(mem):
    h, db = mem
    insert(h, db, 4)
    it = h.dispatch("sql", "query_iter", [db, "SELECT name FROM rows WHERE id >= ?1 ORDER BY id",
                                          [P("PInt", 2)]]).args[0]
    assert h.dispatch("sql", "cursor_next", [it.args[0]]) == some({"name": "r2"})
    # other calls on the same Db between steps (the reference's producer held the lock)
    assert h.dispatch("sql", "exec", [db, "INSERT INTO rows VALUES ('9', 'late')", []]) == ok(1)
    rest = drain(h, it)
    assert rest[0] == {"name": "r3"}


# -- sql_error_codes.rs (on the v2 ops) ---------------------------------------------

def _sql_error(r):
    assert r.name == "Err", r
    rec = r.args[0]
    assert set(rec) == {"message", "code", "detail"}
    return rec


def test_primary_key_violation_code(make_handler):
    h = make_handler(effects=["sql"])
    db = h.dispatch("sql", "open", [":memory:"]).args[0]
    h.dispatch("sql", "exec_tx", [db, "CREATE TABLE t(id INTEGER PRIMARY KEY)", []])
    assert h.dispatch("sql", "exec_tx", [db, "INSERT INTO t(id) VALUES (1)", []]) == ok(1)
    rec = _sql_error(h.dispatch("sql", "exec_tx", [db, "INSERT INTO t(id) VALUES (1)", []]))
    assert "sql.exec_tx" in rec["message"] and "constraint" in rec["message"].lower()
    assert rec["code"] == some("SQLITE_CONSTRAINT_PRIMARYKEY")
    assert rec["detail"] == some("UNIQUE constraint failed: t.id")


def test_unique_violation_code(make_handler):
    h = make_handler(effects=["sql"])
    db = h.dispatch("sql", "open", [":memory:"]).args[0]
    h.dispatch("sql", "exec_tx", [db, "CREATE TABLE t(id INTEGER, name TEXT UNIQUE)", []])
    h.dispatch("sql", "exec_tx", [db, "INSERT INTO t VALUES (1, 'alice')", []])
    rec = _sql_error(h.dispatch("sql", "exec_tx", [db, "INSERT INTO t VALUES (2, 'alice')", []]))
    assert rec["code"] == some("SQLITE_CONSTRAINT_UNIQUE")
    rec = _sql_error(h.dispatch("sql", "exec_tx", [db, "INSERT INTO t VALUES (NULL, NULL) "
                                                       "ON CONFLICT DO NOTHING RETURNING x", []]))
    assert rec["code"].name == "Some"


def test_syntax_error_message_and_code(make_handler):
    h = make_handler(effects=["sql"])
    db = h.dispatch("sql", "open", [":memory:"]).args[0]
    for op in ("query_tx", "query_iter"):
        rec = _sql_error(h.dispatch("sql", op, [db, "SELECT FROM where junk", []]))
        assert rec["message"].startswith(f"sql.{op}: ") and rec["code"] == some("SQLITE_ERROR_1")
    # the authorizer's refusals carry SQLITE_AUTH
    rec = _sql_error(h.dispatch("sql", "query_tx", [db, "ATTACH 'x.db' AS x", []]))
    assert rec["code"] == some("SQLITE_AUTH") and "lexfast refuses ATTACH" in rec["message"]


# -- transactions --------------------------------------------------------------------

def test_begin_commit_rollback(make_handler, tmp_path):
    h = make_handler(effects=["sql"], fs_write=[tmp_path])
    path = str(tmp_path / "t.db")
    db = h.dispatch("sql", "open", [path]).args[0]
    h.dispatch("sql", "exec", [db, "CREATE TABLE t(x INTEGER)", []])
    tx = h.dispatch("sql", "begin", [db])
    assert tx == ok(db)
    tx = tx.args[0]
    assert h.dispatch("sql", "exec_tx", [tx, "INSERT INTO t VALUES (?)", [P("PInt", 1)]]) == ok(1)
    assert h.dispatch("sql", "query_tx", [tx, "SELECT x FROM t", []]) == ok([{"x": 1}])
    # another connection does not see it before the commit
    other = h.dispatch("sql", "open", [path]).args[0]
    assert h.dispatch("sql", "query", [other, "SELECT x FROM t", []]) == ok([])
    assert h.dispatch("sql", "commit", [tx]) == ok(None)
    assert h.dispatch("sql", "query", [other, "SELECT x FROM t", []]) == ok([{"x": 1}])
    tx = h.dispatch("sql", "begin", [db]).args[0]
    h.dispatch("sql", "exec_tx", [tx, "INSERT INTO t VALUES (2)", []])
    assert h.dispatch("sql", "rollback", [tx]) == ok(None)
    assert h.dispatch("sql", "query", [db, "SELECT x FROM t", []]) == ok([{"x": 1}])
    # commit/rollback with nothing open, begin twice: SqlErrors, nothing changes
    assert _sql_error(h.dispatch("sql", "commit", [db]))["code"] == some("SQLITE_ERROR_1")
    assert _sql_error(h.dispatch("sql", "rollback", [db]))["message"].startswith("sql.rollback: ")
    h.dispatch("sql", "begin", [db])
    assert _sql_error(h.dispatch("sql", "begin", [db]))["message"].startswith("sql.begin: ")
    h.dispatch("sql", "rollback", [db])


def test_failed_commit_rolls_back(make_handler):
    h = make_handler(effects=["sql"])
    db = h.dispatch("sql", "open", [":memory:"]).args[0]
    for s in ("PRAGMA foreign_keys = ON", "CREATE TABLE p(id INTEGER PRIMARY KEY)",
              "CREATE TABLE c(p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)"):
        h.dispatch("sql", "exec", [db, s, []])
    h.dispatch("sql", "exec", [db, "INSERT INTO p VALUES (1)", []])
    tx = h.dispatch("sql", "begin", [db]).args[0]
    h.dispatch("sql", "exec_tx", [tx, "INSERT INTO p VALUES (2)", []])
    h.dispatch("sql", "exec_tx", [tx, "INSERT INTO c VALUES (99)", []])  # deferred violation
    rec = _sql_error(h.dispatch("sql", "commit", [tx]))
    assert rec["code"] == some("SQLITE_CONSTRAINT_FOREIGNKEY")
    assert rec["message"].endswith("(the transaction was rolled back)")
    # the database is as before the transaction, and usable
    assert h.dispatch("sql", "query", [db, "SELECT id FROM p", []]) == ok([{"id": 1}])
    assert h.dispatch("sql", "begin", [db]) == ok(db)
    h.dispatch("sql", "rollback", [db])


def test_close_discards_an_open_transaction(make_handler, tmp_path):
    h = make_handler(effects=["sql"], fs_write=[tmp_path])
    path = str(tmp_path / "t.db")
    db = h.dispatch("sql", "open", [path]).args[0]
    h.dispatch("sql", "exec", [db, "CREATE TABLE t(x)", []])
    h.dispatch("sql", "begin", [db])
    h.dispatch("sql", "exec_tx", [db, "INSERT INTO t VALUES (1)", []])
    h.dispatch("sql", "close", [db])
    with pytest.raises(EffectError, match=r"^sql\.exec_tx: closed or unknown SqlTx handle$"):
        h.dispatch("sql", "exec_tx", [db, "INSERT INTO t VALUES (1)", []])
    with pytest.raises(EffectError, match=r"^sql\.commit: closed or unknown SqlTx handle$"):
        h.dispatch("sql", "commit", [db])
    db = h.dispatch("sql", "open", [path]).args[0]
    assert h.dispatch("sql", "query", [db, "SELECT x FROM t", []]) == ok([])


# -- typed parameters ----------------------------------------------------------------

def test_typed_params_bind_with_their_types(mem):
    h, db = mem
    r = h.dispatch("sql", "query_tx", [db, "SELECT ?1 AS s, ?2 AS i, ?3 AS f, ?4 AS b, ?5 AS n, "
                                           "?6 AS bare, typeof(?2) AS ti",
                                       [P("PStr", "x"), P("PInt", 2**63 - 1), P("PFloat", 1.5),
                                        P("PBool", True), P("PNull"), "bare"]])
    assert r == ok([{"s": "x", "i": 2**63 - 1, "f": 1.5, "b": 1, "n": None, "bare": "bare",
                     "ti": "integer"}])


@pytest.mark.parametrize("params,msg", [
    ([P("PInt", "1")], "PInt requires an Int argument"),
    ([P("PInt", True)], "PInt requires an Int argument"),
    ([P("PFloat", 1)], "PFloat requires a Float argument"),
    ([P("PBool", 1)], "PBool requires a Bool argument"),
    ([P("PStr", b"x")], "PStr requires a Str argument"),
    ([P("PStr")], "PStr requires a Str argument"),
    ([P("PNull", 1)], "PNull takes no argument"),
    ([P("PDate", "x")], "unknown SqlParam constructor `PDate`"),
    ([1], r"expected SqlParam variant, got Int\(1\)"),
    ("x", r"expected List\[SqlParam\], got Str"),
])
def test_bad_params_name_the_op(mem, params, msg):
    h, db = mem
    for op in ("exec_tx", "query_tx", "query_iter"):
        with pytest.raises(EffectError, match=rf"^sql\.{op}: {msg}"):
            h.dispatch("sql", op, [db, "SELECT ?", params])
    with pytest.raises(EffectError, match=r"^sql\.exec_tx: missing params argument$"):
        h.dispatch("sql", "exec_tx", [db, "SELECT 1"])


def test_handles_and_gate(make_handler, mem):
    h, db = mem
    with pytest.raises(PolicyDenied, match="^effect `sql` not in --allow-effects$"):
        make_handler(effects=["fs_write"]).dispatch("sql", "begin", [db])
    with pytest.raises(EffectError, match=r"^sql\.query_iter: closed or unknown Db handle$"):
        h.dispatch("sql", "query_iter", [999_999_999, "SELECT 1", []])
    with pytest.raises(EffectError, match=r"^expected SqlTx handle \(Int\)"):
        h.dispatch("sql", "commit", ["x"])
    for bad in ("1", -1, True, 1.0, Variant("__IterCursor", (1,))):
        with pytest.raises(EffectError, match=r"^sql\.cursor_next: expected cursor handle \(Int\)$"):
            h.dispatch("sql", "cursor_next", [bad])
    assert h.dispatch("sql", "cursor_next", [999_999_999]) == NONE
    # a cursor belongs to its session
    it = h.dispatch("sql", "query_iter", [db, "SELECT 1 AS x", []]).args[0]
    other = make_handler(effects=["sql"])
    assert other.dispatch("sql", "cursor_next", [it.args[0]]) == NONE
    assert h.fork().dispatch("sql", "cursor_next", [it.args[0]]) == some({"x": 1})


def test_cursor_after_close_and_eviction(make_handler):
    h = make_handler(effects=["sql"])
    db = h.dispatch("sql", "open", [":memory:"]).args[0]
    it = h.dispatch("sql", "query_iter", [db, "SELECT 1 AS x UNION ALL SELECT 2", []]).args[0]
    assert h.dispatch("sql", "cursor_next", [it.args[0]]) == some({"x": 1})
    h.dispatch("sql", "close", [db])
    assert h.dispatch("sql", "cursor_next", [it.args[0]]) == NONE
    db = h.dispatch("sql", "open", [":memory:"]).args[0]
    first = h.dispatch("sql", "query_iter", [db, "SELECT 1 AS x", []]).args[0].args[0]
    for _ in range(256):
        h.dispatch("sql", "query_iter", [db, "SELECT 2 AS x", []])
    assert h.dispatch("sql", "cursor_next", [first]) == NONE  # evicted (LRU 256), freed


def test_cursor_rows_are_bounded_and_lossy(make_handler):
    h = make_handler(effects=["sql"], limits=Limits(sql_result_bytes=1000))
    db = h.dispatch("sql", "open", [":memory:"]).args[0]
    r = h.dispatch("sql", "query_iter", [db, "SELECT zeroblob(5000) AS z", []])
    if r.name == "Ok":  # SQLite fails the step that builds the value
        with pytest.raises(EffectError, match="too big"):
            h.dispatch("sql", "cursor_next", [r.args[0].args[0]])
    else:
        assert "too big" in r.args[0]["message"]
    it = h.dispatch("sql", "query_iter", [db, "SELECT 'a' AS t UNION ALL SELECT CAST(x'ff41' AS "
                                             "TEXT) UNION ALL SELECT 'c'", []]).args[0]
    assert [h.dispatch("sql", "cursor_next", [it.args[0]]) for _ in range(4)] == \
        [some({"t": "a"}), some({"t": "\ufffdA"}), some({"t": "c"}), NONE]


def test_cursor_steps_are_interrupted_at_the_timeout(make_handler):
    h = make_handler(effects=["sql"], limits=Limits(sql_timeout_s=0.3))
    db = h.dispatch("sql", "open", [":memory:"]).args[0]
    slow = ("WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x+1 FROM c) "
            "SELECT x FROM c WHERE x = -1")
    r = h.dispatch("sql", "query_iter", [db, slow, []])
    assert r.name == "Err" and "interrupted after 0.3 s" in r.args[0]["message"]


def test_concurrent_cursor_steps(make_handler):
    h = make_handler(effects=["sql"])
    db = h.dispatch("sql", "open", [":memory:"]).args[0]
    it = h.dispatch("sql", "query_iter", [db, "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL "
                                             "SELECT x+1 FROM c WHERE x < 999) SELECT x FROM c", []])
    key = it.args[0].args[0]
    got: list = []

    def pull():
        f = h.fork()
        while (r := f.dispatch("sql", "cursor_next", [key])) != NONE:
            got.append(r.args[0]["x"])
    ts = [threading.Thread(target=pull) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert sorted(got) == list(range(1000))  # every row once


# -- typed getters -------------------------------------------------------------------

def test_typed_getters(mem):
    h, _ = mem
    row = {"s": "x", "i": 7, "f": 2.9, "b": True, "n": None, "neg": -2.9, "nan": float("nan"),
           "big": 1e300, "z": 0}
    g = lambda op, col: h.dispatch("sql", op, [row, col])  # noqa: E731
    assert [g("get_str", c) for c in ("s", "i", "f", "n", "missing")] == \
        [some("x"), some("7"), NONE, NONE, NONE]
    assert [g("get_int", c) for c in ("i", "f", "neg", "nan", "big", "s", "b")] == \
        [some(7), some(2), some(-2), some(0), some(2**63 - 1), NONE, NONE]
    assert [g("get_float", c) for c in ("f", "i", "s", "b")] == [some(2.9), some(7.0), NONE, NONE]
    assert [g("get_bool", c) for c in ("b", "i", "z", "s", "f")] == \
        [some(True), some(True), some(False), NONE, NONE]
    with pytest.raises(EffectError, match=r"^sql\.get_str: row must be a Record, got Int\(1\)$"):
        h.dispatch("sql", "get_str", [1, "s"])
    with pytest.raises(EffectError, match=r"^sql\.get_int: column name must be Str"):
        h.dispatch("sql", "get_int", [row, 1])
    with pytest.raises(EffectError, match=r"^sql\.get_bool: missing column name argument$"):
        h.dispatch("sql", "get_bool", [row])


def test_err_values_are_records(mem):
    h, db = mem
    assert h.dispatch("sql", "exec_tx", [db, "SELECT 1", []]) == err({
        "message": "sql.exec_tx: Execute returned results - did you mean to call query?",
        "code": NONE, "detail": NONE})
