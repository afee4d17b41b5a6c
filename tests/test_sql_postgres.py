"""sql.* on a real PostgreSQL server (issue 18): ``sql.open("postgres://…")``
with the same ops, shapes and bounds as SQLite (tests/test_sql.py and
tests/test_sql_v2.py restated where they apply), the gate (``sql`` and
``net``, ``--allow-net-host``), the URL's closed set of fields, and the
faults (server killed mid-query, wrong password, refused connection, huge
result, statement timeout)."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time

import pytest

from lexfast import NONE, EffectError, PolicyDenied, Variant, ok, some
from lexfast.handler import Limits

psycopg = pytest.importorskip("psycopg", reason="pip install lexfast[postgres]")

_names = itertools.count()


def P(name, *a):
    return Variant(name, a)


def sql(h, op, *args):
    return h.dispatch("sql", op, list(args))


def table() -> str:
    """A table name no other test (or earlier run on the same server) uses."""
    return f"t_{os.getpid()}_{next(_names)}"


def rec(r) -> dict:
    assert r.name == "Err" and isinstance(r.args[0], dict), r
    assert set(r.args[0]) == {"message", "code", "detail"}, r
    return r.args[0]


def message(r) -> str:
    return rec(r)["message"]


def code(r):
    c = rec(r)["code"]
    return c.args[0] if c.name == "Some" else None


@pytest.fixture
def pg(make_handler, postgres_server):
    """``(handler, open)``: ``open(**limits)`` opens the session server."""
    def make(hosts=("127.0.0.1",), url=None, **limits):
        kw = {"limits": Limits(**limits)} if limits else {}
        h = make_handler(effects=["sql", "net"], hosts=list(hosts), **kw)
        r = sql(h, "open", url or postgres_server.url)
        assert r.name == "Ok" and isinstance(r.args[0], int), r
        return h, r.args[0]
    return make


@pytest.fixture
def db(pg):
    return pg()


# -- the SQLite tests that apply -----------------------------------------------------

def test_create_insert_query_round_trip(db):
    h, k = db
    t = table()
    assert sql(h, "exec", k, f"CREATE TABLE {t}(id INTEGER, name TEXT)", []) == ok(0)
    assert sql(h, "exec", k, f"INSERT INTO {t} VALUES (?1, ?2)", ["1", "alice"]) == ok(1)
    assert sql(h, "exec", k, f"INSERT INTO {t} VALUES (?1, ?2)", ["2", "bob"]) == ok(1)
    assert sql(h, "query", k, f"SELECT id, name FROM {t} ORDER BY id", []) == ok(
        [{"id": 1, "name": "alice"}, {"id": 2, "name": "bob"}])
    assert sql(h, "query", k, f"SELECT name FROM {t} WHERE id = ?1", ["2"]) == ok([{"name": "bob"}])
    assert sql(h, "query", k, f"SELECT count(*) AS n FROM {t} WHERE id > 5", []) == ok([{"n": 0}])
    assert sql(h, "exec", k, f"UPDATE {t} SET name = upper(name)", []) == ok(2)
    assert sql(h, "exec", k, f"DELETE FROM {t} WHERE id = ?1", ["1"]) == ok(1)
    assert sql(h, "exec", k, f"DROP TABLE {t}", []) == ok(0)


def test_bad_sql_is_err_with_sqlstate(db):
    h, k = db
    r = sql(h, "query", k, "SELECT FROM where junk", [])
    assert message(r).startswith("sql.query: syntax error") and code(r) == "42601"
    assert rec(r)["detail"].name == "Some"
    r = sql(h, "exec", k, "SELECT nope", [])
    assert message(r) == 'sql.exec: column "nope" does not exist' and code(r) == "42703"
    assert sql(h, "query", k, "SELECT 1 AS one", []) == ok([{"one": 1}])  # still usable


def test_constraint_errors_carry_sqlstate(db):
    h, k = db
    t = table()
    sql(h, "exec", k, f"CREATE TEMP TABLE {t}(id INTEGER PRIMARY KEY, name TEXT UNIQUE)", [])
    assert sql(h, "exec", k, f"INSERT INTO {t}(id) VALUES (1)", []) == ok(1)
    r = sql(h, "exec_tx", k, f"INSERT INTO {t}(id) VALUES (1)", [])
    assert message(r).startswith("sql.exec_tx: duplicate key value violates unique constraint")
    assert code(r) == "23505" and "already exists" in rec(r)["detail"].args[0]
    r = sql(h, "exec", k, f"INSERT INTO {t}(id) VALUES (NULL)", [])
    assert code(r) == "23502"


def test_values_and_types(db):
    h, k = db
    r = sql(h, "query", k, "SELECT 1.5::float8 AS f, 2.5::float4 AS f4, '\\x0102'::bytea AS b, "
                           "'é' AS s, 9223372036854775807 AS big, -3 AS neg, NULL AS n, "
                           "true AS t, 1.50::numeric AS num, DATE '2024-01-02' AS d, "
                           "'{\"a\": [1, 2]}'::jsonb AS j, ARRAY[1,2] AS arr, "
                           "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u", [])
    assert r == ok([{"f": 1.5, "f4": 2.5, "b": b"\x01\x02", "s": "é", "big": 2**63 - 1, "neg": -3,
                     "n": None, "t": True, "num": "1.50", "d": "2024-01-02",
                     "j": '{"a": [1, 2]}', "arr": "{1,2}",
                     "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}])
    assert type(r.args[0][0]["big"]) is int


def test_typed_params_bind_with_their_types(db):
    h, k = db
    r = sql(h, "query_tx", k, "SELECT ?1 AS s, ?2::int8 AS i, ?3 AS f, ?4 AS b, ?5::text AS n, "
                              "?6 AS bare, pg_typeof(?2)::text AS ti",
            [P("PStr", "x"), P("PInt", 2**63 - 1), P("PFloat", 1.5), P("PBool", True), P("PNull"),
             "bare"])
    assert r == ok([{"s": "x", "i": 2**63 - 1, "f": 1.5, "b": True, "n": None, "bare": "bare",
                     "ti": "bigint"}])
    t = table()
    sql(h, "exec", k, f"CREATE TEMP TABLE {t}(flag boolean, x float8, n numeric)", [])
    assert sql(h, "exec", k, f"INSERT INTO {t} VALUES (?, ?, ?)",
               [P("PBool", False), P("PInt", 3), P("PStr", "1.25")]) == ok(1)
    assert sql(h, "query", k, f"SELECT * FROM {t} WHERE flag = ?", [P("PBool", False)]) == \
        ok([{"flag": False, "x": 3.0, "n": "1.25"}])


@pytest.mark.parametrize("params,msg", [
    ([P("PInt", "1")], "PInt requires an Int argument"),
    ([P("PBool", 1)], "PBool requires a Bool argument"),
    ([P("PNull", 1)], "PNull takes no argument"),
    ([P("PDate", "x")], "unknown SqlParam constructor `PDate`"),
    ([1], r"expected SqlParam variant, got Int\(1\)"),
    ("x", r"expected List\[SqlParam\], got Str"),
])
def test_bad_params_name_the_op(db, params, msg):
    h, k = db
    for op in ("exec", "query", "exec_tx", "query_tx", "query_iter"):
        with pytest.raises(EffectError, match=rf"^sql\.{op}: {msg}"):
            sql(h, op, k, "SELECT ?", params)


def test_placeholders_outside_literals_only(db):
    """``?``/``?N`` become ``$N``; a ``?`` or ``%`` in a string, a quoted
    identifier, a dollar-quoted body or a comment stays as written."""
    h, k = db
    q = ("SELECT ? AS a, '?' AS \"b?\", E'\\'?' AS c, $$ ? $$ AS d, $x$?$x$ AS e, "
         "'%s %' AS f, ?2 || '' AS g -- ? trailing\n /* ? /* nested ? */ */")
    assert sql(h, "query", k, q, ["one", "two"]) == ok(
        [{"a": "one", "b?": "?", "c": "'?", "d": " ? ", "e": "?", "f": "%s %", "g": "two"}])
    # $N written directly works, and mixes with ?N
    assert sql(h, "query", k, "SELECT $1 AS a, ?2 AS b, ? AS c", ["x", "y", "z"]) == ok(
        [{"a": "x", "b": "y", "c": "z"}])
    assert message(sql(h, "query", k, "SELECT ?0", ["x"])) == "sql.query: invalid placeholder `?0`"
    assert sql(h, "query", k, "SELECT ?1, ?2", ["only one"]).name == "Err"


def test_params_are_bound_never_interpolated(db):
    h, k = db
    t = table()
    sql(h, "exec", k, f"CREATE TEMP TABLE {t}(id INTEGER, name TEXT)", [])
    evil = "x'); DROP TABLE t; --"
    assert sql(h, "exec", k, f"INSERT INTO {t} VALUES (?1, ?2)", ["7", evil]) == ok(1)
    assert sql(h, "query", k, f"SELECT id, name FROM {t}", []) == ok([{"id": 7, "name": evil}])
    # text cannot hold NUL in PostgreSQL: an err, not a truncated value
    assert sql(h, "query", k, "SELECT ?1 AS z", ["a\0b"]).name == "Err"
    assert message(sql(h, "query", k, "SELECT 1\0; DROP TABLE x", [])) == (
        "sql.query: the statement contains a NUL character")


def test_exec_of_a_row_returning_statement(db):
    h, k = db
    assert message(sql(h, "exec", k, "SELECT 1", [])) == (
        "sql.exec: Execute returned results - did you mean to call query?")
    assert sql(h, "exec", k, "SELECT 1 WHERE false", []) == ok(0)
    assert sql(h, "query", k, "SELECT 2 AS two", []) == ok([{"two": 2}])


def test_query_of_a_statement_without_rows_and_returning(db):
    h, k = db
    t = table()
    assert sql(h, "query", k, f"CREATE TEMP TABLE {t}(x int)", []) == ok([])
    assert sql(h, "query", k, f"INSERT INTO {t} VALUES (1)", []) == ok([])
    assert sql(h, "query", k, f"INSERT INTO {t} VALUES (2) RETURNING x * 10 AS y", []) == \
        ok([{"y": 20}])
    assert sql(h, "query", k, f"SELECT x FROM {t} WHERE x < 0", []) == ok([])


def test_several_statements_are_refused(db):
    h, k = db
    t = table()
    sql(h, "exec", k, f"CREATE TEMP TABLE {t}(x int)", [])
    r = sql(h, "exec", k, f"INSERT INTO {t} VALUES (1); DROP TABLE {t}", [])
    assert message(r) == "sql.exec: cannot insert multiple commands into a prepared statement"
    assert sql(h, "query", k, f"SELECT count(*) AS n FROM {t}", []) == ok([{"n": 0}])


def test_column_names_keep_the_first_position(db):
    h, k = db
    r = sql(h, "query", k, "SELECT 1 + 2 AS \"a + b\", 1 AS x, 2 AS x, 3 AS a", [])
    assert r == ok([{"a + b": 3, "x": 2, "a": 3}])
    assert list(r.args[0][0]) == ["a + b", "x", "a"]


def test_close_invalidates_and_unknown_handles(db):
    h, k = db
    assert sql(h, "close", k) is None
    for op in ("query", "exec"):
        with pytest.raises(EffectError, match=rf"^sql\.{op}: closed or unknown Db handle$"):
            sql(h, op, k, "SELECT 1 AS x", [])
    assert sql(h, "close", k) is None


def test_handles_belong_to_their_session(db, make_handler):
    h, k = db
    other = make_handler(effects=["sql", "net"])
    with pytest.raises(EffectError, match="closed or unknown Db handle"):
        sql(other, "query", k, "SELECT 1", [])
    assert sql(h.fork(), "query", k, "SELECT 1 AS x", []) == ok([{"x": 1}])


# -- transactions ----------------------------------------------------------------------

def test_begin_commit_rollback(pg, postgres_server):
    h, k = pg()
    other = sql(h, "open", postgres_server.url).args[0]
    t = table()
    sql(h, "exec", k, f"CREATE TABLE {t}(x INTEGER)", [])
    tx = sql(h, "begin", k)
    assert tx == ok(k)
    assert sql(h, "exec_tx", k, f"INSERT INTO {t} VALUES (?)", [P("PInt", 1)]) == ok(1)
    assert sql(h, "query_tx", k, f"SELECT x FROM {t}", []) == ok([{"x": 1}])
    oh = h  # the same session owns both handles
    assert sql(oh, "query", other, f"SELECT x FROM {t}", []) == ok([])  # not yet committed
    assert sql(h, "commit", k) == ok(None)
    assert sql(oh, "query", other, f"SELECT x FROM {t}", []) == ok([{"x": 1}])
    sql(h, "begin", k)
    sql(h, "exec_tx", k, f"INSERT INTO {t} VALUES (2)", [])
    assert sql(h, "rollback", k) == ok(None)
    assert sql(h, "query", k, f"SELECT x FROM {t}", []) == ok([{"x": 1}])
    sql(h, "exec", k, f"DROP TABLE {t}", [])


def test_commit_after_a_failed_statement_reports_the_rollback(db):
    h, k = db
    t = table()
    sql(h, "exec", k, f"CREATE TEMP TABLE {t}(id int PRIMARY KEY)", [])
    sql(h, "begin", k)
    sql(h, "exec_tx", k, f"INSERT INTO {t} VALUES (1)", [])
    assert code(sql(h, "exec_tx", k, f"INSERT INTO {t} VALUES (1)", [])) == "23505"
    r = sql(h, "exec_tx", k, f"INSERT INTO {t} VALUES (2)", [])
    assert code(r) == "25P02"  # the transaction is aborted: PostgreSQL's rule
    r = sql(h, "commit", k)
    assert code(r) == "25P02" and "rolled back" in message(r)
    assert sql(h, "query", k, f"SELECT count(*) AS n FROM {t}", []) == ok([{"n": 0}])
    assert sql(h, "begin", k) == ok(k)  # usable again
    sql(h, "rollback", k)


def test_failed_deferred_commit_rolls_back(db):
    h, k = db
    p, c = table(), table()
    sql(h, "exec", k, f"CREATE TEMP TABLE {p}(id int PRIMARY KEY)", [])
    sql(h, "exec", k, f"CREATE TEMP TABLE {c}(p int REFERENCES {p}(id) DEFERRABLE INITIALLY "
                      "DEFERRED)", [])
    sql(h, "begin", k)
    sql(h, "exec_tx", k, f"INSERT INTO {p} VALUES (2)", [])
    sql(h, "exec_tx", k, f"INSERT INTO {c} VALUES (99)", [])
    r = sql(h, "commit", k)
    assert code(r) == "23503"
    assert sql(h, "query", k, f"SELECT id FROM {p}", []) == ok([])
    assert sql(h, "begin", k) == ok(k)
    sql(h, "rollback", k)


def test_close_discards_an_open_transaction(pg):
    h, k = pg()
    t = table()
    sql(h, "exec", k, f"CREATE TABLE {t}(x int)", [])
    sql(h, "begin", k)
    sql(h, "exec_tx", k, f"INSERT INTO {t} VALUES (1)", [])
    sql(h, "close", k)
    with pytest.raises(EffectError, match=r"^sql\.commit: closed or unknown SqlTx handle$"):
        sql(h, "commit", k)
    h2, k3 = pg()
    assert sql(h2, "query", k3, f"SELECT x FROM {t}", []) == ok([])
    sql(h2, "exec", k3, f"DROP TABLE {t}", [])


# -- cursors ---------------------------------------------------------------------------

def drain(h, it):
    out = []
    while (r := sql(h, "cursor_next", it.args[0])) != NONE:
        out.append(r.args[0])
    return out


def test_query_iter_drains_interleaves_and_ends(db):
    h, k = db
    r = sql(h, "query_iter", k, "SELECT g AS x FROM generate_series(1, ?::int) g", [P("PInt", 500)])
    assert r.name == "Ok" and r.args[0].name == "__IterCursor"
    it = r.args[0]
    assert sql(h, "cursor_next", it.args[0]) == some({"x": 1})
    # other calls on the same Db between steps
    assert sql(h, "query", k, "SELECT 42 AS y", []) == ok([{"y": 42}])
    assert [row["x"] for row in drain(h, it)] == list(range(2, 501))
    assert sql(h, "cursor_next", it.args[0]) == NONE
    empty = sql(h, "query_iter", k, "SELECT 1 AS x WHERE false", []).args[0]
    assert drain(h, empty) == []


def test_query_iter_errors(db):
    h, k = db
    r = sql(h, "query_iter", k, "SELECT FROM where junk", [])
    assert message(r).startswith("sql.query_iter: syntax error") and code(r) == "42601"
    it = sql(h, "query_iter", k, "SELECT 1 AS x UNION ALL SELECT 2", []).args[0]
    assert sql(h, "cursor_next", it.args[0]) == some({"x": 1})
    sql(h, "close", k)
    assert sql(h, "cursor_next", it.args[0]) == NONE


def test_cursor_batches_respect_the_row_cap(pg):
    h, k = pg(sql_rows=3)
    it = sql(h, "query_iter", k, "SELECT g AS x FROM generate_series(1, 10) g", []).args[0]
    assert [r["x"] for r in drain(h, it)] == list(range(1, 11))


def test_cursor_eviction_frees_server_cursors(db):
    h, k = db
    first = sql(h, "query_iter", k, "SELECT 1 AS x", []).args[0].args[0]
    for _ in range(256):
        sql(h, "query_iter", k, "SELECT 2 AS x", [])
    assert sql(h, "cursor_next", first) == NONE
    n = sql(h, "query", k, "SELECT count(*) AS n FROM pg_cursors", [])
    assert n.args[0][0]["n"] <= 256


# -- bounds and timeouts ---------------------------------------------------------------

def test_rows_are_bounded(pg):
    h, k = pg(sql_rows=5)
    q = "SELECT g AS x FROM generate_series(1, ?::int) g"
    assert len(sql(h, "query", k, q, [P("PInt", 5)]).args[0]) == 5
    assert message(sql(h, "query", k, q, [P("PInt", 6)])) == (
        "sql.query: more than 5 rows (Limits.sql_rows)")
    # a huge result stops at the cap, quickly, and the connection stays usable
    t0 = time.monotonic()
    endless = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
               "SELECT x FROM c")
    assert message(sql(h, "query", k, endless, [])) == (
        "sql.query: more than 5 rows (Limits.sql_rows)")
    assert time.monotonic() - t0 < 20
    assert sql(h, "query", k, "SELECT 1 AS one", []) == ok([{"one": 1}])


def test_result_bytes_are_bounded(pg):
    h, k = pg(sql_result_bytes=1000)
    q = "SELECT g, repeat('a', 99) AS s FROM generate_series(1, ?::int) g"
    rows = sql(h, "query", k, q, [P("PInt", 10)]).args[0]
    assert len(rows) == 10 and rows[0]["s"] == "a" * 99
    assert message(sql(h, "query", k, q, [P("PInt", 11)])) == (
        "sql.query: result larger than 1000 bytes (Limits.sql_result_bytes)")
    assert message(sql(h, "query", k, "SELECT repeat('x', 5000) AS big", [])) == (
        "sql.query: result larger than 1000 bytes (Limits.sql_result_bytes)")
    assert sql(h, "query", k, "SELECT 1 AS one", []) == ok([{"one": 1}])


def test_statement_timeout_is_server_side_57014(pg):
    h, k = pg(sql_timeout_s=0.3)
    t0 = time.monotonic()
    r = sql(h, "query", k, "SELECT pg_sleep(30)", [])
    assert time.monotonic() - t0 < 10
    assert code(r) == "57014" and "statement timeout" in message(r)
    assert "Limits.sql_timeout_s" in message(r)
    assert code(sql(h, "exec", k, "SELECT pg_sleep(30) WHERE false UNION ALL SELECT NULL "
                                  "FROM pg_sleep(30)", [])) == "57014"
    assert sql(h, "query", k, "SELECT 1 AS one", []) == ok([{"one": 1}])


def test_a_timeout_the_program_lifts_is_still_enforced_by_the_client(pg):
    h, k = pg(sql_timeout_s=0.5)
    assert sql(h, "exec", k, "SET statement_timeout = 0", []) == ok(0)
    t0 = time.monotonic()
    r = sql(h, "query", k, "SELECT pg_sleep(30)", [])
    assert time.monotonic() - t0 < 10
    assert code(r) == "57014"  # cancelled by the client at the deadline
    assert sql(h, "query", k, "SELECT 1 AS one", []) == ok([{"one": 1}])


def wait_running(url, query="SELECT pg_sleep(30)", timeout=15.0):
    """Until another session shows ``query`` active on the server (so a kill
    or close lands mid-query, not before it starts), bounded."""
    import psycopg
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as c:
        while True:
            n = c.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                          "AND query = %s", (query,)).fetchone()[0]
            if n:
                return
            assert time.monotonic() < deadline, f"{query!r} never started"
            time.sleep(0.02)


def test_close_interrupts_a_running_call(pg, postgres_server):
    h, k = pg(sql_timeout_s=20)
    outcome = []

    def run():
        try:
            outcome.append(sql(h.fork(), "query", k, "SELECT pg_sleep(30)", []))
        except EffectError as e:
            outcome.append(str(e))

    t = threading.Thread(target=run)
    t.start()
    wait_running(postgres_server.url)
    t0 = time.monotonic()
    assert sql(h, "close", k) is None
    t.join(15)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 10
    assert len(outcome) == 1 and outcome[0] != ok([])


def test_four_threads_no_lost_write(pg):
    h, k = pg()
    t = table()
    sql(h, "exec", k, f"CREATE TABLE {t}(who TEXT, i INTEGER)", [])
    errors = []

    def writer(n):
        f = h.fork()
        try:
            for i in range(50):
                r = sql(f, "exec", k, f"INSERT INTO {t} VALUES (?1, ?2)", [str(n), str(i)])
                assert r == ok(1), r
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    assert sql(h, "query", k, f"SELECT count(*) AS n FROM {t}", []) == ok([{"n": 200}])
    sql(h, "exec", k, f"DROP TABLE {t}", [])


def test_handler_close_closes_connections(pg, postgres_server):
    h, k = pg()
    h2, watch = pg()
    pid = sql(h, "query", k, "SELECT pg_backend_pid() AS p", []).args[0][0]["p"]
    h.close()
    deadline = time.monotonic() + 10
    gone = False
    while time.monotonic() < deadline and not gone:
        r = sql(h2, "query", watch, "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ?",
                [P("PInt", pid)])
        gone = r == ok([{"n": 0}])
        time.sleep(0.05)
    assert gone


# -- the gate and the URL --------------------------------------------------------------

def test_open_needs_sql_and_net(make_handler, postgres_server):
    with pytest.raises(PolicyDenied, match="effect `net`") as e:
        sql(make_handler(effects=["sql"]), "open", postgres_server.url)
    assert e.value.effect == "net"
    with pytest.raises(PolicyDenied, match="^effect `sql` not in --allow-effects$"):
        sql(make_handler(effects=["net"]), "open", postgres_server.url)


def test_host_must_be_allowed(make_handler, postgres_server):
    h = make_handler(effects=["sql", "net"], hosts=["db.example.com"])
    with pytest.raises(PolicyDenied, match=r"^sql\.open: net call to host `127\.0\.0\.1` not in "
                                           r"--allow-net-host") as e:
        sql(h, "open", postgres_server.url)
    assert e.value.host == "127.0.0.1"
    assert postgres_server.password not in str(e.value)
    # the host as libpq reads it is the one checked (a host= parameter cannot switch it)
    sneaky = postgres_server.url.replace("127.0.0.1", "db.example.com") + "?host=127.0.0.1"
    r = sql(h, "open", sneaky)
    assert message(r).startswith("sql.open: URL parameter `host` is not allowed")
    # localhost and 127.0.0.1 are different names, as for net.get
    h2 = make_handler(effects=["sql", "net"], hosts=["localhost"])
    assert sql(h2, "open", postgres_server.url.replace("127.0.0.1", "localhost")).name == "Ok"


@pytest.mark.parametrize("suffix,why", [
    ("?host=/tmp", "URL parameter `host` is not allowed"),
    ("?hostaddr=10.0.0.1", "URL parameter `hostaddr` is not allowed"),
    ("?service=prod", "URL parameter `service` is not allowed"),
    ("?passfile=/etc/shadow", "URL parameter `passfile` is not allowed"),
    ("?sslrootcert=/etc/passwd", "URL parameter `sslrootcert` is not allowed"),
    ("?sslkey=/root/.ssh/id_rsa", "URL parameter `sslkey` is not allowed"),
    ("?options=-c%20statement_timeout%3D0", "URL parameter `options` is not allowed"),
    ("?sslmode=bogus", "sslmode `bogus` is not one of"),
    ("?application_name=x&port=1", "URL parameter `port` is not allowed"),
    ("?%68ost=/tmp", "URL parameter `host` is not allowed"),
    ("?connect_timeout=0", "connect_timeout must be"),
    ("?nonsense=1", "URL parameter `nonsense` is not allowed"),
])
def test_url_parameters_are_a_closed_set(make_handler, postgres_server, suffix, why):
    h = make_handler(effects=["sql", "net"])
    r = sql(h, "open", postgres_server.url + suffix)
    assert why in message(r), r
    assert postgres_server.password not in message(r)


@pytest.mark.parametrize("url,why", [
    ("postgres://lexfast:pw@%2Ftmp/db", "no Unix socket"),
    ("postgres://lexfast:pw@/db", "names no host"),
    ("postgres://lexfast:pw@h1,h2/db", "no list"),
    ("postgres://127.0.0.1/db", "names no user"),
    ("postgres://lexfast:pw@127.0.0.1:99999/db", "port must be one number"),
    ("postgres://lexfast:pw@[::1/db", "invalid PostgreSQL URL"),
    ("postgres://lexfast:p?w@127.0.0.1/db?host=/tmp", "URL parameter `host` is not allowed"),
    ("postgres://lexfast:pw@10.255.255.1/db?sslmode=disable", "sslmode `disable` to a host"),
    ("postgres://lexfast:pw@10.255.255.1/db?sslmode=prefer", "sslmode `prefer` to a host"),
])
def test_urls_that_would_reach_elsewhere(make_handler, url, why):
    h = make_handler(effects=["sql", "net"])
    r = sql(h, "open", url)
    assert why in message(r), r
    assert "pw" not in message(r).replace("psql", "")


def test_environment_does_not_widen_the_url(make_handler, postgres_server, monkeypatch, tmp_path):
    """PGHOSTADDR, PGPASSWORD, PGPASSFILE, PGOPTIONS: ignored."""
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:*:{postgres_server.password}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    monkeypatch.setenv("PGHOSTADDR", "10.255.255.1")
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=0")
    h = make_handler(effects=["sql", "net"], limits=Limits(sql_timeout_s=7))
    no_password = postgres_server.url.replace(f":{postgres_server.password}@", "@")
    r = sql(h, "open", no_password)
    assert r.name == "Err" and postgres_server.password not in message(r), r
    empty_password = postgres_server.url.replace(f":{postgres_server.password}@", ":@")
    r = sql(h, "open", empty_password)
    assert r.name == "Err" and postgres_server.password not in message(r), r
    assert "require_auth" in message(r) or "authentication" in message(r), r
    r = sql(h, "open", "POSTGRES" + postgres_server.url[len("postgres"):])
    assert r.name == "Ok", r
    sql(h, "close", r.args[0])
    r = sql(h, "open", postgres_server.url)  # PGHOSTADDR would send it elsewhere
    assert r.name == "Ok", r
    assert sql(h, "query", r.args[0], "SHOW statement_timeout", []) == \
        ok([{"statement_timeout": "7s"}])


def test_wrong_password_and_refused_connection(make_handler, postgres_server, servers):
    h = make_handler(effects=["sql", "net"])
    bad = postgres_server.url.replace(postgres_server.password, "not-the-password")
    r = sql(h, "open", bad)
    assert message(r).startswith(f"sql.open: cannot connect to 127.0.0.1:{postgres_server.port}")
    assert "password authentication failed" in message(r) and "not-the-password" not in message(r)
    r = sql(h, "open", postgres_server.url + "?sslmode=require&connect_timeout=5")
    assert message(r).startswith("sql.open: cannot connect") and "SSL" in message(r)
    port = servers.free_port()
    t0 = time.monotonic()
    r = sql(h, "open", f"postgres://u:secret@127.0.0.1:{port}/db?connect_timeout=3")
    assert message(r).startswith(f"sql.open: cannot connect to 127.0.0.1:{port}")
    assert "secret" not in message(r) and time.monotonic() - t0 < 10


def test_repr_hides_credentials(db, postgres_server):
    from lexfast.effects.sql import _release
    h, k = db
    conn = h.session.registry("sql", _release).touch_get(k)
    assert repr(conn) == f"<PgDb 127.0.0.1:{postgres_server.port}>"


# -- a private server to kill ------------------------------------------------------------

def test_server_killed_mid_query_then_reopen(make_handler, servers, tmp_path):
    try:
        server = servers.start_postgres(str(tmp_path / "pg"))
    except FileNotFoundError:
        pytest.skip("PostgreSQL is not installed")
    try:
        h = make_handler(effects=["sql", "net"], limits=Limits(sql_timeout_s=20))
        k = sql(h, "open", server.url).args[0]
        pid = sql(h, "query", k, "SELECT pg_backend_pid() AS p", []).args[0][0]["p"]
        outcome = []

        def run(handle):
            outcome.append(sql(h.fork(), "query", handle, "SELECT pg_sleep(30)", []))

        t = threading.Thread(target=run, args=(k,))
        t.start()
        wait_running(server.url)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)  # the backend dies mid-query; the postmaster restarts
        t.join(15)
        assert not t.is_alive() and time.monotonic() - t0 < 10
        r = outcome[0]
        assert message(r).startswith("sql.query: ") and "127.0.0.1" in message(r), r
        assert server.password not in message(r)
        # the handle answers, without hanging, that its connection is gone
        r = sql(h, "query", k, "SELECT 1", [])
        assert r.name == "Err" and ("closed" in message(r) or "lost" in message(r)), r
        # a new open works once the server has recovered (the postmaster
        # ends every backend after a crash, so a connection made before it
        # noticed may be ended too: retried until one answers, with a deadline)
        deadline = time.monotonic() + 30
        while True:
            r = sql(h, "open", server.url)
            if r.name == "Ok":
                if sql(h, "query", r.args[0], "SELECT 1 AS one", []) == ok([{"one": 1}]):
                    break
                sql(h, "close", r.args[0])
            assert time.monotonic() < deadline, r
            time.sleep(0.2)
        # the server stopped outright mid-query: an err too
        k2 = r.args[0]
        outcome.clear()
        t = threading.Thread(target=run, args=(k2,))
        t.start()
        wait_running(server.url)
        server.stop()
        t.join(15)
        assert not t.is_alive()
        assert outcome[0].name == "Err" and message(outcome[0]).startswith("sql.query: "), outcome
        assert sql(h, "query", k2, "SELECT 1", []).name == "Err"
        h.close()
    finally:
        server.stop()


def test_missing_psycopg_names_the_extra(monkeypatch, make_handler):
    import lexfast.effects.sql_postgres as mod
    monkeypatch.setattr(mod, "_pg", None)
    import builtins
    real_import = builtins.__import__

    def no_psycopg(name, *a, **kw):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    h = make_handler(effects=["sql", "net"])
    with pytest.raises(EffectError, match=r"pip install lexfast\[postgres\]"):
        sql(h, "open", "postgres://u:p@127.0.0.1:1/db")


def test_prepared_statements_survive_deallocate_and_schema_changes(db):
    """A statement is prepared on the server at its second use; a program's
    DEALLOCATE ALL / DISCARD ALL or a schema change that alters the result
    is recovered from (outside a transaction)."""
    h, k = db
    t = table()
    sql(h, "exec", k, f"CREATE TEMP TABLE {t}(a int)", [])
    sql(h, "exec", k, f"INSERT INTO {t} VALUES (1)", [])
    q = f"SELECT * FROM {t} WHERE a = ?"
    for _ in range(3):
        assert sql(h, "query", k, q, [P("PInt", 1)]) == ok([{"a": 1}])
    assert sql(h, "query", k, "SELECT count(*) AS n FROM pg_prepared_statements", []).args[0][0]["n"] >= 1
    sql(h, "exec", k, "DEALLOCATE ALL", [])
    assert sql(h, "query", k, q, [P("PInt", 1)]) == ok([{"a": 1}])
    for _ in range(3):
        assert sql(h, "query", k, q, [P("PInt", 1)]) == ok([{"a": 1}])
    sql(h, "exec", k, f"ALTER TABLE {t} ADD COLUMN b text DEFAULT 'x'", [])
    assert sql(h, "query", k, q, [P("PInt", 1)]) == ok([{"a": 1, "b": "x"}])
    # the same text with parameters of another type is another statement
    assert sql(h, "query", k, q, [P("PInt", 2**40)]) == ok([])
    assert sql(h, "query", k, q, ["1"]) == ok([{"a": 1, "b": "x"}])
    assert sql(h, "query", k, q, ["1"]) == ok([{"a": 1, "b": "x"}])


def test_text_that_is_not_utf8_is_an_err_and_the_connection_stays_usable(db, postgres_server):
    h, k = db
    name = table()
    assert sql(h, "exec", k, f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 "
                             "LC_COLLATE 'C' LC_CTYPE 'C'", []) == ok(0)
    try:
        k2 = sql(h, "open", postgres_server.url.rsplit("/", 1)[0] + "/" + name).args[0]
        r = sql(h, "query", k2, "SELECT convert_from('\\xff41'::bytea, 'SQL_ASCII') AS s", [])
        assert code(r) == "22021", r
        assert sql(h, "query", k2, "SELECT 1 AS one", []) == ok([{"one": 1}])
        sql(h, "close", k2)
    finally:
        sql(h, "exec", k, f"DROP DATABASE {name} WITH (FORCE)", [])
