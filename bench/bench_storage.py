"""kv.* and sql.* through the handler vs the libraries a user would call.

Values are 100 bytes; every kv op is one transaction, as the handler does.

Groups ``kv-get`` and ``kv-put`` (durable: fsync per commit, the default on
both sides) and ``kv-put-nosync`` (``Limits(kv_sync=False)`` vs
``lmdb.open(sync=False)``):

- ``test_kv_*_handler``: ``dispatch("kv", op, [...])``;
- ``test_kv_*_raw_lmdb``: ``with env.begin() as txn: txn.get/put`` on an
  environment of its own;
- ``test_kv_*_sqlite_table``: ``sqlite3`` used as a key-value table
  (``SELECT v FROM kv WHERE k = ?`` / ``INSERT OR REPLACE``), autocommit.

Group ``sql-query`` (one row by primary key from a file database in WAL mode):

- ``test_sql_query_handler``: ``dispatch("sql", "query", [h, stmt, ["7"]])``,
  a list of one record;
- ``test_sql_query_raw_sqlite3``: ``conn.execute(stmt, ("7",)).fetchall()``,
  a list of one tuple;
- ``test_sql_query_raw_sqlite3_records``: the same plus the records the
  handler returns (``dict(zip(names, row))``), i.e. the same result.

Every subject and baseline is a statement compiled once into a loop
(``stmt_loop``): what a VM pays per call, without pytest-benchmark's call
per round on either side; the group's members run back to back in one
process, and the ratios compare their medians.

The compiled fronts (``lexfast/effects/_kv_c.pyx``, ``_sql_c.pyx``) do the
argument checks, the registry lookup, the key encoding and the record
building in C. What is left above the libraries' own cost (callgrind, per
call): ``dispatch`` ~700 instructions, the session registry lookup ~950
(two attribute reads, the LRU touch), the ``Some`` value ~330, the key
~190. In instructions ``kv.get`` is ~1.18x the raw ``with env.begin()``
read (6.6k vs 5.6k); in time it measures ~1.7x here, so the issue's 1.3 is
missed for the sub-microsecond read (see bench/RESULTS.md). The
non-durable put (~1.7 us raw) is ~1.25x, the durable one ~1.15x,
``sql.query`` ~1.1x the same records built by hand.
Against sqlite3 used as a KV store, the handler's lmdb is 5-25x faster.

``test_kv_get_interleaved``, ``test_kv_put_nosync_interleaved`` and
``test_sql_query_interleaved`` time the same statements round-robin in one test
(``interleaved``), so that subject and baseline see the same load: their
per-statement medians and ratios are in the JSON's ``extra_info`` (what
bench/RESULTS.md reports for issue 16 on a shared, busy machine).

Run: PYTHONPATH=. pytest bench/bench_storage.py --benchmark-enable
"""

from __future__ import annotations

import pathlib
import sqlite3
import sys

import lmdb
import pytest

from lexfast import DefaultHandler, Policy, ok, some
from lexfast.handler import Limits

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from statement_loops import interleaved_members as interleaved  # noqa: E402
from statement_loops import pedantic_loop as stmt_loop  # noqa: E402

VALUE = b"v" * 100
KEY = "user:00042"
QUERY = "SELECT id, name, email FROM users WHERE id = ?1"

RATIO_TARGETS = [
    # (group, subject, baseline, max subject/baseline median)
    # Measured on a busy 2-core box (statement loops, medians): kv-get 1.69,
    # 0.07; kv-put 1.19, 0.21; kv-put-nosync 1.24; sql-query 1.12 (records),
    # 1.39 (tuples). Issue 16 asks 1.3 of kv-get: missed, the reason is above.
    ("kv-get", "test_kv_get_handler", "test_kv_get_raw_lmdb", 1.8),
    ("kv-get", "test_kv_get_handler", "test_kv_get_sqlite_table", 0.5),
    ("kv-put", "test_kv_put_handler", "test_kv_put_raw_lmdb", 1.3),
    ("kv-put", "test_kv_put_handler", "test_kv_put_sqlite_table", 1.0),
    ("kv-put-nosync", "test_kv_put_nosync_handler", "test_kv_put_nosync_raw_lmdb", 1.3),
    ("sql-query", "test_sql_query_handler", "test_sql_query_raw_sqlite3_records", 1.3),
    ("sql-query", "test_sql_query_handler", "test_sql_query_raw_sqlite3", 1.5),
]


def _kv_handler(root, sync: bool):
    h = DefaultHandler(Policy(allow_effects=["kv"], allow_fs_write=[str(root)]),
                       limits=Limits(kv_sync=sync))
    handle = h.dispatch("kv", "open", [str(root / "store")]).args[0]
    assert h.dispatch("kv", "put", [handle, KEY, VALUE]) == ok(None)
    return h, handle


@pytest.fixture(scope="module")
def kv_sync(tmp_path_factory):
    h, handle = _kv_handler(tmp_path_factory.mktemp("kvsync"), True)
    yield h, handle
    h.close()


@pytest.fixture(scope="module")
def kv_nosync(tmp_path_factory):
    h, handle = _kv_handler(tmp_path_factory.mktemp("kvnosync"), False)
    yield h, handle
    h.close()


def _raw_env(root, sync: bool):
    env = lmdb.open(str(root), map_size=1 << 30, sync=sync)
    with env.begin(write=True) as txn:
        txn.put(KEY.encode(), VALUE)
    return env


@pytest.fixture(scope="module")
def raw_sync(tmp_path_factory):
    env = _raw_env(tmp_path_factory.mktemp("rawsync"), True)
    yield env
    env.close()


@pytest.fixture(scope="module")
def raw_nosync(tmp_path_factory):
    env = _raw_env(tmp_path_factory.mktemp("rawnosync"), False)
    yield env
    env.close()


@pytest.fixture(scope="module")
def kv_table(tmp_path_factory):
    conn = sqlite3.connect(str(tmp_path_factory.mktemp("sqlkv") / "kv.db"), isolation_level=None)
    conn.execute("CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
    conn.execute("INSERT INTO kv VALUES (?, ?)", (KEY, VALUE))
    yield conn
    conn.close()


# -- the statement loop ----------------------------------------------------------


N_GET = 500    # statements per timed loop: sub-microsecond calls
N_PUT = 10     # an fsync'd commit is a millisecond or more
N_NOSYNC = 100


# -- kv-get ------------------------------------------------------------------

@pytest.mark.benchmark(group="kv-get")
def test_kv_get_handler(benchmark, kv_sync):
    h, handle = kv_sync
    args = [handle, KEY]
    stmt_loop(benchmark, "dispatch('kv', 'get', args)", {"dispatch": h.dispatch, "args": args},
              N_GET)
    assert h.dispatch("kv", "get", args) == some(VALUE)


@pytest.mark.benchmark(group="kv-get")
def test_kv_get_raw_lmdb(benchmark, raw_sync):
    stmt_loop(benchmark, "with env.begin() as txn:\n    v = txn.get(key)",
              {"env": raw_sync, "key": KEY.encode()}, N_GET)
    with raw_sync.begin() as txn:
        assert txn.get(KEY.encode()) == VALUE


@pytest.mark.benchmark(group="kv-get")
def test_kv_get_sqlite_table(benchmark, kv_table):
    stmt_loop(benchmark, "row = conn.execute(q, (key,)).fetchone()\nv = None if row is None else row[0]",
              {"conn": kv_table, "q": "SELECT v FROM kv WHERE k = ?", "key": KEY}, N_GET)


# -- kv-put ------------------------------------------------------------------

@pytest.mark.benchmark(group="kv-put")
def test_kv_put_handler(benchmark, kv_sync):
    h, handle = kv_sync
    args = [handle, KEY, VALUE]
    stmt_loop(benchmark, "dispatch('kv', 'put', args)", {"dispatch": h.dispatch, "args": args},
              N_PUT)
    assert h.dispatch("kv", "put", args) == ok(None)


_RAW_PUT = "with env.begin(write=True) as txn:\n    txn.put(key, value)"


@pytest.mark.benchmark(group="kv-put")
def test_kv_put_raw_lmdb(benchmark, raw_sync):
    stmt_loop(benchmark, _RAW_PUT, {"env": raw_sync, "key": KEY.encode(), "value": VALUE}, N_PUT)


@pytest.mark.benchmark(group="kv-put")
def test_kv_put_sqlite_table(benchmark, kv_table):
    stmt_loop(benchmark, "conn.execute(q, (key, value))",
              {"conn": kv_table, "q": "INSERT OR REPLACE INTO kv VALUES (?, ?)", "key": KEY,
               "value": VALUE}, N_PUT)


@pytest.mark.benchmark(group="kv-put-nosync")
def test_kv_put_nosync_handler(benchmark, kv_nosync):
    h, handle = kv_nosync
    args = [handle, KEY, VALUE]
    stmt_loop(benchmark, "dispatch('kv', 'put', args)", {"dispatch": h.dispatch, "args": args},
              N_NOSYNC)
    assert h.dispatch("kv", "put", args) == ok(None)


@pytest.mark.benchmark(group="kv-put-nosync")
def test_kv_put_nosync_raw_lmdb(benchmark, raw_nosync):
    stmt_loop(benchmark, _RAW_PUT, {"env": raw_nosync, "key": KEY.encode(), "value": VALUE},
              N_NOSYNC)


# -- sql-query -----------------------------------------------------------------

def _fill(conn):
    conn.execute("CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
    conn.executemany("INSERT OR REPLACE INTO users VALUES (?, ?, ?)",
                     [(i, f"user{i}", f"user{i}@example.com") for i in range(1000)])


@pytest.fixture(scope="module")
def sql_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("sql") / "users.db"
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    _fill(conn)
    conn.close()
    return path


@pytest.fixture(scope="module")
def sql_handler(sql_db):
    h = DefaultHandler(Policy(allow_effects=["sql"], allow_fs_write=[str(sql_db.parent)]))
    handle = h.dispatch("sql", "open", [str(sql_db)]).args[0]
    yield h, handle
    h.close()


@pytest.fixture(scope="module")
def raw_conn(sql_db):
    conn = sqlite3.connect(str(sql_db), isolation_level=None, check_same_thread=False)
    yield conn
    conn.close()


EXPECTED = [{"id": 7, "name": "user7", "email": "user7@example.com"}]


N_SQL = 100


@pytest.mark.benchmark(group="sql-query")
def test_sql_query_handler(benchmark, sql_handler):
    h, handle = sql_handler
    args = [handle, QUERY, ["7"]]
    stmt_loop(benchmark, "dispatch('sql', 'query', args)", {"dispatch": h.dispatch, "args": args},
              N_SQL)
    assert h.dispatch("sql", "query", args) == ok(EXPECTED)


@pytest.mark.benchmark(group="sql-query")
def test_sql_query_raw_sqlite3(benchmark, raw_conn):
    stmt_loop(benchmark, "rows = conn.execute(q, ('7',)).fetchall()",
              {"conn": raw_conn, "q": QUERY}, N_SQL)
    assert raw_conn.execute(QUERY, ("7",)).fetchall() == [(7, "user7", "user7@example.com")]


_RECORDS = """cur = conn.execute(q, ('7',))
names = [d[0] for d in cur.description]
rows = [dict(zip(names, row)) for row in cur.fetchall()]"""


@pytest.mark.benchmark(group="sql-query")
def test_sql_query_raw_sqlite3_records(benchmark, raw_conn):
    stmt_loop(benchmark, _RECORDS, {"conn": raw_conn, "q": QUERY}, N_SQL)
    cur = raw_conn.execute(QUERY, ("7",))
    names = [d[0] for d in cur.description]
    assert [dict(zip(names, row)) for row in cur.fetchall()] == EXPECTED  # noqa: B905


# -- the same members, interleaved ------------------------------------------------

@pytest.mark.benchmark(group="interleaved-kv-get")
def test_kv_get_interleaved(benchmark, kv_sync, raw_sync):
    h, handle = kv_sync
    interleaved(benchmark, {
        "handler": ("dispatch('kv', 'get', args)", {"dispatch": h.dispatch, "args": [handle, KEY]}),
        "raw_lmdb": ("with env.begin() as txn:\n    v = txn.get(key)",
                     {"env": raw_sync, "key": KEY.encode()}),
    }, N_GET)


@pytest.mark.benchmark(group="interleaved-kv-put-nosync")
def test_kv_put_nosync_interleaved(benchmark, kv_nosync, raw_nosync):
    h, handle = kv_nosync
    interleaved(benchmark, {
        "handler": ("dispatch('kv', 'put', args)",
                    {"dispatch": h.dispatch, "args": [handle, KEY, VALUE]}),
        "raw_lmdb": (_RAW_PUT, {"env": raw_nosync, "key": KEY.encode(), "value": VALUE}),
    }, N_NOSYNC)


@pytest.mark.benchmark(group="interleaved-sql-query")
def test_sql_query_interleaved(benchmark, sql_handler, raw_conn):
    h, handle = sql_handler
    interleaved(benchmark, {
        "handler": ("dispatch('sql', 'query', args)",
                    {"dispatch": h.dispatch, "args": [handle, QUERY, ["7"]]}),
        "raw_sqlite3_records": (_RECORDS, {"conn": raw_conn, "q": QUERY}),
        "raw_sqlite3": ("rows = conn.execute(q, ('7',)).fetchall()", {"conn": raw_conn, "q": QUERY}),
    }, N_SQL)
