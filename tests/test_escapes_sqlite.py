"""Escape tests for SQLite (issues 13.4, 13.5, 13.9, 22.2, 22.7; SECURITY.md
"#### SQLite"): a sql grant touches only its own SQLite files, only its own
connection's state, and a bounded amount of memory. Real SQLite, real lmdb
stores made through kv.*, real files, hardlinks and FIFOs."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import lexfast
from lexfast.effects import sql as sqlmod

SQL_FS = ["sql", "kv", "fs_walk", "fs_write"]


def child_env():
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(lexfast.__file__)))
    return dict(os.environ, PYTHONPATH=pkg_parent + os.pathsep + os.environ.get("PYTHONPATH", ""))


def is_err(v, needle):
    return v.name == "Err" and needle in str(v.args[0])


def denied(r):
    return r.name == "Err" and ("not authorized" in str(r.args[0])
                                or "is prohibited" in str(r.args[0])) \
        and "every PRAGMA not on its allowlist" in str(r.args[0])


def opened(h, path):
    r = h.dispatch("sql", "open", [str(path)])
    assert r.name == "Ok", r
    return r.args[0]


def fingerprint(p):
    data = open(p, "rb").read()
    return len(data), hashlib.sha256(data).hexdigest()


def heap_limit():
    conn = sqlite3.connect(":memory:")
    try:
        return conn.execute("PRAGMA hard_heap_limit").fetchone()[0], \
            conn.execute("PRAGMA soft_heap_limit").fetchone()[0]
    finally:
        conn.close()


def make_db(path, rows=3):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t(x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(str(i),) for i in range(rows)])
    conn.close()


# -- process-wide and file-reaching pragmas (13.4, 13.9) -------------------------------------

def test_escape_sqlite_process_wide_pragmas(make_handler, tmp_path):
    """`PRAGMA hard_heap_limit=1` would make every SQLite allocation in the
    process fail. Pragmas are allowed by list: every other pragma, in every
    spelling (schema prefix, case, comments, quotes, the pragma_x() table
    functions, through a view), is refused, and the process state is
    unchanged."""
    h = make_handler(effects=["sql"], fs_write=[tmp_path])
    k = opened(h, ":memory:")
    f = opened(h, tmp_path / "f.db")
    before = heap_limit()
    for db in (k, f):
        assert h.dispatch("sql", "exec", [db, "CREATE TABLE t(x)", []]).name == "Ok"
        for stmt in ("PRAGMA hard_heap_limit=1", "PRAGMA main.hard_heap_limit = 1",
                     "pragma HARD_heap_LIMIT /* x */ = 1", "PRAGMA temp.hard_heap_limit('1')",
                     "PRAGMA hard_heap_limit", "PRAGMA soft_heap_limit=1", "PRAGMA soft_heap_limit",
                     "PRAGMA threads=8", "PRAGMA mmap_size=1073741824",
                     f"PRAGMA temp_store_directory='{tmp_path}'",
                     f"PRAGMA data_store_directory='{tmp_path}'", "PRAGMA temp_store=FILE",
                     "PRAGMA cache_spill=0",
                     "PRAGMA busy_timeout=100000000", "PRAGMA max_page_count=1000000000",
                     "PRAGMA writable_schema=ON", "PRAGMA schema_version=7",
                     "PRAGMA journal_mode=OFF", "PRAGMA journal_mode = 'memory'",
                     "PRAGMA main.journal_mode=Off", "PRAGMA synchronous=OFF", "PRAGMA synchronous=0",
                     "PRAGMA count_changes=1", "PRAGMA full_column_names=1",
                     "PRAGMA locking_mode=bogus", "PRAGMA no_such_pragma=1",
                     "SELECT * FROM pragma_hard_heap_limit", "SELECT * FROM pragma_hard_heap_limit()",
                     "select hard_heap_limit from PRAGMA_HARD_HEAP_LIMIT",
                     "SELECT * FROM main.pragma_soft_heap_limit()", "SELECT * FROM pragma_threads",
                     "SELECT * FROM pragma_hard_heap_limit(1)"):
            for op in ("exec", "query"):
                r = h.dispatch("sql", op, [db, stmt, []])
                assert r.name == "Err", (stmt, op, r)
        # a view reaching the pragma table function is refused when created or read
        r = h.dispatch("sql", "exec", [db, "CREATE VIEW v AS SELECT * FROM pragma_soft_heap_limit", []])
        if r.name == "Ok":
            assert denied(h.dispatch("sql", "query", [db, "SELECT * FROM v", []]))
        assert denied(h.dispatch("sql", "exec", [db, "PRAGMA hard_heap_limit=1", []]))
    assert heap_limit() == before
    # what real programs use still works
    for db in (k, f):
        q = h.dispatch("sql", "query", [db, "PRAGMA user_version", []])
        assert q.name == "Ok", q
        assert h.dispatch("sql", "exec", [db, "PRAGMA user_version = 7", []]).name == "Ok"
        assert h.dispatch("sql", "query", [db, "PRAGMA main.user_version", []]).args[0] == \
            [{"user_version": 7}]
        for stmt in ("PRAGMA table_info(t)", "SELECT name FROM pragma_table_info('t')",
                     "PRAGMA index_list(t)", "PRAGMA foreign_keys", "PRAGMA foreign_keys=ON",
                     "PRAGMA integrity_check", "PRAGMA quick_check", "PRAGMA application_id=5",
                     "PRAGMA synchronous=FULL", "PRAGMA synchronous", "PRAGMA journal_mode",
                     "PRAGMA cache_size", "PRAGMA cache_size=-64000", "PRAGMA temp_store",
                     "PRAGMA busy_timeout",
                     "PRAGMA compile_options", "PRAGMA optimize", "PRAGMA page_count",
                     "SELECT * FROM pragma_index_list('t')", "PRAGMA table_list"):
            assert h.dispatch("sql", "query", [db, stmt, []]).name == "Ok", stmt
    # the database is never memory-mapped (a file cut short under a mapping is SIGBUS)
    assert h.dispatch("sql", "query", [f, "PRAGMA mmap_size", []]).args[0] == [{"mmap_size": 0}]
    assert h.dispatch("sql", "query", [f, "PRAGMA journal_mode=DELETE", []]).args[0] == \
        [{"journal_mode": "delete"}]
    assert h.dispatch("sql", "query", [f, "PRAGMA journal_mode=WAL", []]).args[0] == \
        [{"journal_mode": "wal"}]
    assert heap_limit() == before


# -- memory (13.5) ---------------------------------------------------------------------------

_MEMORY_CHILD = textwrap.dedent(r"""
    import json, resource, sys
    # a safety net for the machine only: were the ceiling not enforced, RSS
    # would still climb far past the assertion's bound before this hits
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from lexfast import CapturedSink, DefaultHandler, Limits, Policy
    ceiling, d = int(sys.argv[1]), sys.argv[2]
    h = DefaultHandler(Policy(allow_effects=["sql"], allow_fs_write=[d]), sink=CapturedSink(),
                       limits=Limits(sql_memory_bytes=ceiling, sql_timeout_s=20))
    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    m = h.dispatch("sql", "open", [":memory:"]).args[0]
    f = h.dispatch("sql", "open", [d + "/f.db"]).args[0]
    base = status("VmRSS")
    INF = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
    attacks = {
        "zeroblob": ("query", m, "SELECT length(zeroblob(1000000000)) AS n"),
        "printf": ("query", m, "SELECT length(printf('%.*c', 200000000, 'x')) AS n"),
        "randomblob": ("query", m, "SELECT length(randomblob(2000000000)) AS n"),
        "replace": ("query", m, "SELECT length(replace(hex(randomblob(30000000)), '0', "
                                "'xxxxxxxxxx')) AS n"),
        "group_concat": ("query", m, INF + "SELECT length(group_concat(hex(randomblob(1000)))) "
                                           "AS n FROM r"),
        "order_by": ("query", m, INF + "SELECT i, randomblob(10000) AS b FROM r ORDER BY random()"),
        "order_by_file_db": ("query", f, INF + "SELECT i, randomblob(10000) AS b FROM r "
                                               "ORDER BY random()"),
        "distinct": ("query", m, INF + "SELECT count(*) AS n FROM "
                                       "(SELECT DISTINCT randomblob(1000) FROM r)"),
        "doubling_strings": ("query", m, "WITH RECURSIVE r(i, s) AS (SELECT 1, 'x' UNION ALL "
                                         "SELECT i + 1, s || s FROM r) "
                                         "SELECT i, length(s) AS n FROM r ORDER BY s DESC"),
        "temp_table": ("exec", m, "CREATE TEMP TABLE t AS " + INF
                                  + "SELECT randomblob(10000) AS b FROM r"),
        "memory_db": ("exec", m, "CREATE TABLE big AS " + INF
                                 + "SELECT randomblob(10000) AS b FROM r"),
    }
    out = {}
    for name, (op, k, stmt) in attacks.items():
        r = h.dispatch("sql", op, [k, stmt, []])
        after = h.dispatch("sql", "query", [k, "SELECT 1 AS one", []])
        out[name] = [r.name, str(r.args[0])[:300], after.name]
    # piling up across statements: each small, the total bounded all the same
    n = 0
    h.dispatch("sql", "exec", [m, "CREATE TABLE pile(b)", []])
    while n < 10000:
        r = h.dispatch("sql", "exec", [m, "INSERT INTO pile SELECT randomblob(1000000)", []])
        if r.name != "Ok":
            break
        n += 1
    out["pile"] = [r.name, str(r.args[0])[:300], n]
    out["grew"] = status("VmHWM") - base
    h.close()
    print(json.dumps(out))
""")


def test_escape_sqlite_memory_ceiling(tmp_path):
    """Statements that would allocate gigabytes before their timeout (a
    recursive CTE sorted, grouped, concatenated or stored; huge zeroblob,
    printf, randomblob, replace; a table piled up statement by statement)
    end in a clear err, and the process's peak RSS grows by less than
    Limits.sql_memory_bytes plus slack. In a child: the heap limit is
    process-wide."""
    ceiling = 64 << 20
    p = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(ceiling), str(tmp_path)],
                       capture_output=True, text=True, timeout=300, env=child_env(),
                       cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    for name, v in out.items():
        if name in ("grew", "pile"):
            continue
        kind, msg, after = v
        assert kind == "Err", (name, v)
        assert ("out of memory" in msg and "Limits.sql_memory_bytes" in msg) or \
            "string or blob too big" in msg, (name, msg)
        assert after == "Ok", (name, v)  # the connection still works
    assert out["pile"][0] == "Err" and "Limits.sql_memory_bytes" in out["pile"][1], out["pile"]
    assert out["pile"][2] < ceiling // 1000000
    assert out["grew"] < ceiling + (64 << 20), out["grew"]


# -- SQLite touches only SQLite files (22.7) -----------------------------------------------

def _hot_journal(h, d):
    """A hot rollback journal, made by a program: a write transaction in
    DELETE mode, its -journal copied with fs.copy while it is live."""
    k = opened(h, d / "src.db")
    assert h.dispatch("sql", "query", [k, "PRAGMA journal_mode=DELETE", []]).name == "Ok"
    assert h.dispatch("sql", "exec", [k, "CREATE TABLE t(x)", []]).name == "Ok"
    assert h.dispatch("sql", "exec", [k, "INSERT INTO t WITH RECURSIVE r(i) AS (SELECT 1 UNION "
                                      "ALL SELECT i + 1 FROM r LIMIT 400) SELECT randomblob(40000) "
                                      "FROM r", []]).name == "Ok"
    # larger than the page cache: SQLite spills, syncing the journal first
    assert h.dispatch("sql", "exec", [k, "BEGIN", []]).name == "Ok"
    assert h.dispatch("sql", "exec", [k, "UPDATE t SET x = randomblob(40000)", []]).name == "Ok"
    journal = d / "hot.journal"
    assert h.dispatch("fs", "copy", [str(d / "src.db-journal"), str(journal)]).name == "Ok"
    assert h.dispatch("sql", "exec", [k, "ROLLBACK", []]).name == "Ok"
    h.dispatch("sql", "close", [k])
    assert open(journal, "rb").read(8) == bytes.fromhex("d9d505f920a163d7")
    return journal


def test_escape_sqlite_hot_journal_into_kv_store(make_handler, tmp_path):
    """22.7: a hot journal copied beside a kv store's data.mdb as
    data.mdb-journal; sql.open on data.mdb would "roll back" into it and cut
    it to a few pages (kv then dies with SIGBUS). sql.open refuses any file
    that is not a SQLite database before SQLite sees it; data.mdb and
    lock.mdb are unchanged, open or closed, and the store still reads."""
    d = tmp_path / "D"
    d.mkdir()
    h = make_handler(effects=SQL_FS, fs_read=[d], fs_write=[d])
    journal = _hot_journal(h, d)
    kv = h.dispatch("kv", "open", [str(d / "store")]).args[0]
    for i in range(200):
        assert h.dispatch("kv", "put", [kv, f"k{i}", b"v" * 1000]).name == "Ok"
    for live in (True, False):
        if not live:
            h.dispatch("kv", "close", [kv])
        for name in ("data.mdb", "lock.mdb"):
            target = d / "store" / name
            before = fingerprint(target)
            assert h.dispatch("fs", "copy", [str(journal), f"{target}-journal"]).name == "Ok"
            for path in (str(target), f"file:{target}", f"file:{target}?mode=rw"):
                r = h.dispatch("sql", "open", [path])
                assert is_err(r, "file is not a database"), (path, r)
                assert "does not start with the SQLite header" in r.args[0]["message"]
            assert fingerprint(target) == before, (name, live)
            os.unlink(f"{target}-journal")
    kv = h.dispatch("kv", "open", [str(d / "store")]).args[0]
    assert h.dispatch("kv", "get", [kv, "k199"]).args[0] == b"v" * 1000
    # any other file, empty or not, with a hot journal beside it
    (d / "notes.txt").write_text("not a database\n" * 100)
    (d / "empty.db").write_bytes(b"")
    for name in ("notes.txt", "empty.db"):
        before = fingerprint(d / name)
        assert h.dispatch("fs", "copy", [str(journal), str(d / f"{name}-journal")]).name == "Ok"
        r = h.dispatch("sql", "open", [str(d / name)])
        assert r.name == "Err", (name, r)
        assert fingerprint(d / name) == before
        assert (d / f"{name}-journal").exists()


def test_escape_sqlite_sidecars_sqlite_did_not_make(make_handler, tmp_path):
    """A -journal or -wal that is not SQLite's (wrong magic), or has content
    beside an empty database, is refused before SQLite could replay it; a
    database with its own live sidecars still opens."""
    d = tmp_path / "D"
    d.mkdir()
    h = make_handler(effects=SQL_FS, fs_read=[d], fs_write=[d])
    make_db(d / "good.db")
    before = fingerprint(d / "good.db")
    for suffix, junk in (("-journal", b"\x01" * 4096), ("-wal", b"\x02" * 4096),
                         ("-wal", bytes.fromhex("377f0682"))):
        (d / f"good.db{suffix}").write_bytes(junk)
        r = h.dispatch("sql", "open", [str(d / "good.db")])
        assert is_err(r, f"good.db{suffix}`"), (suffix, r)
        os.unlink(d / f"good.db{suffix}")
    assert fingerprint(d / "good.db") == before
    # a real WAL beside an empty database
    k = opened(h, d / "w.db")
    assert h.dispatch("sql", "exec", [k, "CREATE TABLE t(x)", []]).name == "Ok"
    assert h.dispatch("fs", "copy", [str(d / "w.db-wal"), str(d / "e.db-wal")]).name == "Ok"
    (d / "e.db").write_bytes(b"")
    assert is_err(h.dispatch("sql", "open", [str(d / "e.db")]), "the database is empty")
    assert (d / "e.db").read_bytes() == b""
    # the legitimate case: a second handle while the first holds -wal and -shm
    k2 = opened(h, d / "w.db")
    assert h.dispatch("sql", "query", [k2, "SELECT count(*) AS n FROM t", []]).args[0] == [{"n": 0}]
    # a PERSIST journal (zeroed header) and a TRUNCATE one (empty) are SQLite's own
    for mode in ("PERSIST", "TRUNCATE"):
        j = opened(h, d / f"{mode}.db")
        assert h.dispatch("sql", "query", [j, f"PRAGMA journal_mode={mode}", []]).name == "Ok"
        assert h.dispatch("sql", "exec", [j, "CREATE TABLE t(x)", []]).name == "Ok"
        h.dispatch("sql", "close", [j])
        assert (d / f"{mode}.db-journal").exists()
        j = opened(h, d / f"{mode}.db")
        assert h.dispatch("sql", "exec", [j, "INSERT INTO t VALUES (1)", []]).name == "Ok"


def test_escape_sqlite_database_replaced_during_open(make_handler, tmp_path, monkeypatch):
    """The path is checked on a descriptor, then SQLite opens it by name. A
    fork swapping the checked file for a live lmdb data.mdb in between
    (remove, then kv.open) is caught before SQLite's first read: no effect
    can link the checked inode back, so the name must still be it. (Found
    at the merge with kv's store-file checks: the new data.mdb took the
    removed file's inode number, which passed a (dev, ino) compare, and the
    journal was replayed into the live store; the checked file is now held
    open until the compare, so its number cannot come back.)"""
    d = tmp_path / "D"
    d.mkdir()
    h = make_handler(effects=SQL_FS, fs_read=[d], fs_write=[d])
    journal = _hot_journal(h, d)
    store = d / "store"
    store.mkdir()
    make_db(store / "data.mdb")
    assert h.dispatch("fs", "copy", [str(journal), str(store / "data.mdb-journal")]).name == "Ok"
    real = sqlite3.connect
    fork = h.fork()
    state = {}

    class Swapping:
        def __getattr__(self, name):
            return getattr(sqlite3, name)

        @staticmethod
        def connect(*a, **kw):
            assert fork.dispatch("fs", "remove", [str(store / "data.mdb")]).name == "Ok"
            kv = fork.dispatch("kv", "open", [str(store)]).args[0]
            assert fork.dispatch("kv", "put", [kv, "k", b"v" * 100]).name == "Ok"
            state["kv"] = kv
            state["before"] = fingerprint(store / "data.mdb")
            return real(*a, **kw)

    monkeypatch.setattr(sqlmod, "sqlite3", Swapping())
    r = h.dispatch("sql", "open", [str(store / "data.mdb")])
    monkeypatch.undo()
    assert is_err(r, "was replaced while it was being opened"), r
    assert fingerprint(store / "data.mdb") == state["before"]
    assert h.dispatch("kv", "get", [state["kv"], "k"]).args[0] == b"v" * 100


# -- hardlinks (22.2) ------------------------------------------------------------------------

def test_escape_sqlite_hardlinked_database_and_sidecars(make_handler, tmp_path):
    """A hardlink inside the write scope to a file outside is that file:
    SQLite would write it in place. The database and any existing -wal,
    -shm, -journal must have one link; the outside files are unchanged."""
    d, out = tmp_path / "D", tmp_path / "out"
    d.mkdir()
    out.mkdir()
    make_db(out / "secret.db")
    (out / "side").write_bytes(b"precious")
    h = make_handler(effects=SQL_FS, fs_read=[d], fs_write=[d])
    before = fingerprint(out / "secret.db")
    os.link(out / "secret.db", d / "link.db")
    for path in (str(d / "link.db"), f"file:{d}/link.db", f"file:{d}/link.db?mode=ro"):
        r = h.dispatch("sql", "open", [path])
        assert is_err(r, "has 2 hard links"), (path, r)
    make_db(d / "own.db")
    for suffix in ("-wal", "-shm", "-journal"):
        os.link(out / "side", d / f"own.db{suffix}")
        r = h.dispatch("sql", "open", [str(d / "own.db")])
        assert is_err(r, f"own.db{suffix}` has 3 hard links") or \
            is_err(r, f"own.db{suffix}` has 2 hard links"), (suffix, r)
        os.unlink(d / f"own.db{suffix}")
    assert fingerprint(out / "secret.db") == before
    assert (out / "side").read_bytes() == b"precious"
    assert sorted(os.listdir(out)) == ["secret.db", "side"]


def test_escape_sqlite_sidecar_hardlinked_after_open(make_handler, tmp_path):
    """SQLite opens its sidecars by name after sql.open too: in a rollback
    journal mode, `-journal` at every write transaction. A hardlink to an
    outside file planted there after the open (by a granted `ln`, or another
    process) is refused before each call; in WAL mode SQLite keeps `-wal`
    and `-shm` open from the first statement, so a link planted at the name
    later is never written."""
    d, out = tmp_path / "D", tmp_path / "out"
    d.mkdir()
    out.mkdir()
    (out / "victim").write_bytes(b"precious" * 1000)
    before = fingerprint(out / "victim")
    h = make_handler(effects=SQL_FS, fs_read=[d], fs_write=[d])
    for mode in ("DELETE", "TRUNCATE", "PERSIST"):
        k = opened(h, d / f"{mode}.db")
        assert h.dispatch("sql", "query", [k, f"PRAGMA journal_mode={mode}", []]).name == "Ok"
        assert h.dispatch("sql", "exec", [k, "CREATE TABLE t(x)", []]).name == "Ok"
        journal = d / f"{mode}.db-journal"
        if journal.exists():
            journal.unlink()
        os.link(out / "victim", journal)
        for op, stmt in (("exec", "INSERT INTO t VALUES (randomblob(5000))"),
                         ("query", "SELECT count(*) AS n FROM t")):
            r = h.dispatch("sql", op, [k, stmt, []])
            assert is_err(r, f"{mode}.db-journal` has 2 hard links"), (mode, r)
        journal.unlink()
        assert h.dispatch("sql", "exec", [k, "INSERT INTO t VALUES (1)", []]).name == "Ok"
        h.dispatch("sql", "close", [k])
    # WAL (the default): the files SQLite holds open are not reopened by name
    k = opened(h, d / "w.db")
    assert h.dispatch("sql", "exec", [k, "CREATE TABLE t(x)", []]).name == "Ok"
    for suffix in ("-wal", "-shm"):
        os.unlink(d / f"w.db{suffix}")
        os.link(out / "victim", d / f"w.db{suffix}")
    for _ in range(50):
        assert h.dispatch("sql", "exec", [k, "INSERT INTO t VALUES (randomblob(5000))", []]).name \
            == "Ok"
    h.dispatch("sql", "close", [k])
    assert fingerprint(out / "victim") == before
    assert sorted(os.listdir(out)) == ["victim"]


# -- special files (13.9) --------------------------------------------------------------------

def test_escape_sqlite_fifo_device_directory(make_handler, tmp_path):
    """A FIFO, a device or a directory named as the database, or a FIFO as
    its -wal or -journal, would block SQLite (or reach a device): refused
    without opening it for I/O, and without blocking."""
    d = tmp_path / "D"
    d.mkdir()
    os.mkfifo(d / "fifo.db")
    (d / "dir.db").mkdir()
    make_db(d / "own.db")
    h = make_handler(effects=SQL_FS, fs_read=[d], fs_write=[d, "/dev"])
    for path in (d / "fifo.db", d / "dir.db", "/dev/null", "/dev/zero"):
        r = h.dispatch("sql", "open", [str(path)])
        assert is_err(r, "is not a regular file"), (path, r)
    for suffix in ("-wal", "-journal", "-shm"):
        os.mkfifo(d / f"own.db{suffix}")
        r = h.dispatch("sql", "open", [str(d / "own.db")])
        assert is_err(r, f"own.db{suffix}` is not a regular file"), (suffix, r)
        os.unlink(d / f"own.db{suffix}")
    assert h.dispatch("sql", "open", [str(d / "own.db")]).name == "Ok"
