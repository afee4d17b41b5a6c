"""The hot paths issue 17 added, against what a user would call instead.

Group ``time-mono-ns``:

- ``test_time_mono_ns_handler``: ``dispatch("time", "mono_ns", [])``;
- ``test_time_mono_ns_raw``: ``time.monotonic_ns()``.

Group ``sql-cursor-step`` (one row of three columns from an endless
recursive CTE on an in-memory database, so every call is a real step):

- ``test_sql_cursor_step_handler``: ``dispatch("sql", "cursor_next", [c])``,
  ``Some(record)``;
- ``test_sql_cursor_step_raw_fetchone``: ``cursor.fetchone()``, a tuple;
- ``test_sql_cursor_step_raw_fetchone_record``: the same plus the record
  the handler returns (``dict(zip(names, row))``), i.e. the same result.

What the handler adds per call is fixed: dispatch and the gate (~0.1 us),
and for a cursor step the session-registry lookup, the connection lock,
the per-step deadline and the ``Some`` (TEXT that is not UTF-8 is fetched
again with a lossy factory only when it occurs). ``time.mono_ns`` is a ~50 ns clock read, so
its ratio is mostly that fixed cost; the targets are in extra nanoseconds.

Run: PYTHONPATH=. pytest bench/bench_today.py --benchmark-enable
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from lexfast import DefaultHandler, Policy

STEP_SQL = ("WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c) "
            "SELECT x AS id, 'name' || x AS name, 'e@x' AS email FROM c")

DIFF_TARGETS = [
    # (group, subject, baseline, max extra nanoseconds per call, medians)
    # Measured on a busy 2-core box (medians): mono_ns 174 ns vs 69 ns
    # (+105 ns, 2.5x); a cursor step 2.01 us vs 1.36 us for fetchone() with
    # the record built (+0.65 us, 1.48x) and 0.81 us for a bare fetchone().
    ("time-mono-ns", "test_time_mono_ns_handler", "test_time_mono_ns_raw", 200.0),
    ("sql-cursor-step", "test_sql_cursor_step_handler",
     "test_sql_cursor_step_raw_fetchone_record", 1000.0),
]


@pytest.fixture(scope="module")
def handler():
    h = DefaultHandler(Policy(allow_effects=["time", "sql"]))
    yield h
    h.close()


@pytest.mark.benchmark(group="time-mono-ns")
def test_time_mono_ns_handler(benchmark, handler):
    assert benchmark(handler.dispatch, "time", "mono_ns", []) >= 0


@pytest.mark.benchmark(group="time-mono-ns")
def test_time_mono_ns_raw(benchmark):
    assert benchmark(time.monotonic_ns) > 0


@pytest.mark.benchmark(group="sql-cursor-step")
def test_sql_cursor_step_handler(benchmark, handler):
    db = handler.dispatch("sql", "open", [":memory:"]).args[0]
    cursor = handler.dispatch("sql", "query_iter", [db, STEP_SQL, []]).args[0].args[0]
    row = benchmark(handler.dispatch, "sql", "cursor_next", [cursor])
    assert row.name == "Some" and set(row.args[0]) == {"id", "name", "email"}
    handler.dispatch("sql", "close", [db])


@pytest.fixture
def raw_cursor():
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    cur = conn.execute(STEP_SQL)
    yield cur
    cur.close()
    conn.close()


@pytest.mark.benchmark(group="sql-cursor-step")
def test_sql_cursor_step_raw_fetchone(benchmark, raw_cursor):
    assert len(benchmark(raw_cursor.fetchone)) == 3


@pytest.mark.benchmark(group="sql-cursor-step")
def test_sql_cursor_step_raw_fetchone_record(benchmark, raw_cursor):
    names = [d[0] for d in raw_cursor.description]
    fetchone = raw_cursor.fetchone

    def step():
        return dict(zip(names, fetchone()))  # noqa: B905

    assert set(benchmark(step)) == {"id", "name", "email"}
