"""sql.query on PostgreSQL through the handler vs raw psycopg (issue 18).

A private PostgreSQL server (tests/servers.py: a fresh cluster on a free
loopback port) holds ``users(id int primary key, name text, email text)``
with 1000 rows; every statement reads one row by primary key.

Group ``pg-query``:

- ``test_pg_query_handler``: ``dispatch("sql", "query", [h, stmt, [PInt(7)]])``,
  a list of one record;
- ``test_pg_query_raw_psycopg_same_connection``: psycopg's
  ``conn.execute(q, (7,))`` on the handler's own connection (so the same
  server process, socket and settings), records built by hand
  (``dict(zip(names, row))``), i.e. the same result;
- ``test_pg_query_raw_psycopg_default``: the same on a connection opened
  with psycopg's defaults (it prepares a statement after its fifth use:
  what a user of psycopg would get).

``test_pg_query_interleaved`` times the three round-robin in one test
(``interleaved``), so that they see the same load; its per-statement
medians and ratios are in the JSON's ``extra_info``.

Run: PYTHONPATH=. pytest bench/bench_postgres.py --benchmark-enable
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

from lexfast import DefaultHandler, Policy, Variant, ok

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from statement_loops import interleaved_members as interleaved  # noqa: E402
from statement_loops import pedantic_loop as stmt_loop  # noqa: E402

psycopg = pytest.importorskip("psycopg", reason="pip install lexfast[postgres]")

QUERY = "SELECT id, name, email FROM users WHERE id = ?1"
RAW_QUERY = "SELECT id, name, email FROM users WHERE id = %s"
EXPECTED = [{"id": 7, "name": "user7", "email": "user7@example.com"}]
N_PG = 100  # a loopback round trip is ~50-150 us

RATIO_TARGETS = [
    # (group, subject, baseline, max subject/baseline median)
    # Issue 18 asks 1.2 of the raw query on the same connection; measured on
    # a busy 2-core box: see bench/RESULTS.md ("PostgreSQL").
    ("pg-query", "test_pg_query_handler", "test_pg_query_raw_psycopg_same_connection", 1.2),
]

_RECORDS = """cur = conn.execute(q, (7,))
names = [d.name for d in cur.description]
rows = [dict(zip(names, row)) for row in cur.fetchall()]"""


def _servers():
    path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "servers.py"
    spec = importlib.util.spec_from_file_location("lexfast_bench_servers", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["lexfast_bench_servers"] = mod  # its dataclasses look themselves up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        srv = _servers().start_postgres(str(tmp_path_factory.mktemp("pg")))
    except FileNotFoundError:
        pytest.skip("PostgreSQL (initdb/postgres) is not installed")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def pg_handler(server):
    h = DefaultHandler(Policy(allow_effects=["sql", "net"], allow_net_host=["127.0.0.1"]))
    handle = h.dispatch("sql", "open", [server.url]).args[0]
    for stmt in ("CREATE TABLE users(id int PRIMARY KEY, name text, email text)",
                 "INSERT INTO users SELECT g, 'user' || g, 'user' || g || '@example.com' "
                 "FROM generate_series(1, 1000) g"):
        assert h.dispatch("sql", "exec", [handle, stmt, []]).name == "Ok"
    yield h, handle
    h.close()


@pytest.fixture(scope="module")
def same_connection(pg_handler):
    from lexfast.effects.sql import _release
    h, handle = pg_handler
    return h.session.registry("sql", _release).touch_get(handle).conn


@pytest.fixture(scope="module")
def default_connection(server, pg_handler):
    conn = psycopg.connect(server.url, autocommit=True)
    yield conn
    conn.close()


def _args(handle):
    return [handle, QUERY, [Variant("PInt", (7,))]]


@pytest.mark.benchmark(group="pg-query")
def test_pg_query_handler(benchmark, pg_handler):
    h, handle = pg_handler
    args = _args(handle)
    stmt_loop(benchmark, "dispatch('sql', 'query', args)", {"dispatch": h.dispatch, "args": args},
              N_PG)
    assert h.dispatch("sql", "query", args) == ok(EXPECTED)


@pytest.mark.benchmark(group="pg-query")
def test_pg_query_raw_psycopg_same_connection(benchmark, same_connection):
    stmt_loop(benchmark, _RECORDS, {"conn": same_connection, "q": RAW_QUERY}, N_PG)


@pytest.mark.benchmark(group="pg-query")
def test_pg_query_raw_psycopg_default(benchmark, default_connection):
    stmt_loop(benchmark, _RECORDS, {"conn": default_connection, "q": RAW_QUERY}, N_PG)
    cur = default_connection.execute(RAW_QUERY, (7,))
    names = [d.name for d in cur.description]
    assert [dict(zip(names, row)) for row in cur.fetchall()] == EXPECTED  # noqa: B905


@pytest.mark.benchmark(group="interleaved-pg-query")
def test_pg_query_interleaved(benchmark, pg_handler, same_connection, default_connection):
    h, handle = pg_handler
    interleaved(benchmark, {
        "handler": ("dispatch('sql', 'query', args)",
                    {"dispatch": h.dispatch, "args": _args(handle)}),
        "raw_psycopg_same_connection": (_RECORDS, {"conn": same_connection, "q": RAW_QUERY}),
        "raw_psycopg_default": (_RECORDS, {"conn": default_connection, "q": RAW_QUERY}),
    }, N_PG)
