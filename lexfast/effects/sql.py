"""sql.open/close/exec/query on the standard ``sqlite3`` (gated ``sql``).

Shapes, messages and the hard/soft split follow the reference, which used
rusqlite (BEHAVIOUR.md §3.8): connections in autocommit mode, a 5 s busy
timeout, the URI flag on, parameters bound positionally as TEXT (never
interpolated), ``exec`` returning SQLite's ``changes()`` and refusing a
statement that returns rows, one statement per call, rows as records with
column-name keys in column order (NULL → Unit, INTEGER → Int, REAL → Float,
TEXT → Str with invalid UTF-8 replaced, BLOB → Bytes). Where lexfast differs:

- ``sql.open`` resolves the path before checking it against
  ``--allow-fs-write`` (``:memory:`` is exempt). A ``file:`` URI is parsed
  and its path checked the same way; ``vfs``, ``modeof`` and shared-cache
  in-memory databases (which other sessions could reach by name) are
  refused. SQLite opens by path (and resolves even ``/proc/self/fd/N`` back
  to a path, which it then uses for ``-wal``/``-shm``/``-journal``), so a
  directory swapped for a symlink by another process between the check and
  the open is not caught the way ``openat2`` catches it for io.write.
- A connection cannot create or touch files outside the scope: ``ATTACH``
  and ``VACUUM INTO`` a file are refused (an authorizer, and an
  attached-database limit of 1: the one private temporary database plain
  ``VACUUM`` attaches), as are ``load_extension()``, the process-wide
  ``temp_store_directory``/``data_store_directory`` pragmas and changing
  ``temp_store``: temporary tables, indices and that ``VACUUM`` copy live in
  memory, not in ``$TMPDIR``.
- File databases use WAL, so readers do not block the writer.
- Statements are prepared once per connection and cached; ``sql.query``
  refuses to materialise more than ``Limits.sql_rows`` rows or more than
  ``Limits.sql_result_bytes`` of Str/Bytes cells (Str counted in
  characters), and SQLite refuses any single value larger than that
  (``SQLITE_LIMIT_LENGTH``); one call runs at most ``Limits.sql_timeout_s``
  before SQLite interrupts it.
- Handles belong to the session, LRU-capped at 256; each connection has its
  own lock, so calls on different handles run in parallel. Closing (or
  evicting) a handle interrupts a call still running on it.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from urllib.parse import quote, unquote

from ..core import err, expect_handle, expect_str, expect_str_list, next_handle, ok
from ..errors import EffectError
from ..scope import scoped

_BUSY_TIMEOUT_S = 5.0           # rusqlite's default
_CACHED_STATEMENTS = 256
_PROGRESS_EVERY = 50_000         # SQLite VM steps between deadline checks

# Invalid UTF-8 in TEXT becomes U+FFFD, as rusqlite's lossy read did (the
# default factory raises instead). A partial of ``str`` stays in C.
_lossy_text = functools.partial(str, encoding="utf-8", errors="replace")

# Messages Python words differently from rusqlite.
_RUSQLITE_WORDING = {
    "You can only execute one statement at a time.": "Multiple statements provided",
}

_DENIED_PRAGMAS = frozenset({"temp_store_directory", "data_store_directory"})
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})


def _authorize(action, arg1, arg2, dbname, source):
    # ATTACH (and VACUUM INTO, which attaches its target) could create a file
    # anywhere. Only the empty name passes: a private temporary database
    # (in memory, see temp_store), which plain VACUUM attaches internally.
    # A non-literal name (an expression, a parameter) arrives as None.
    if action == sqlite3.SQLITE_ATTACH:
        return sqlite3.SQLITE_OK if arg1 == "" else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and arg1:
        name = arg1.lower()
        # the two directory pragmas change where *every* connection in the
        # process writes temp files; temp_store=FILE would put them in $TMPDIR
        if name in _DENIED_PRAGMAS or (name == "temp_store" and arg2 is not None):
            return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class _Db:
    """One connection, its lock and the deadline of the call in progress."""

    __slots__ = ("conn", "lock", "deadline", "closed", "timeout", "rows_cap", "bytes_cap",
                 "__weakref__")

    def __init__(self, conn, limits) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.deadline = None
        self.closed = False
        self.timeout = float(limits.sql_timeout_s)
        self.rows_cap = int(limits.sql_rows)
        self.bytes_cap = int(limits.sql_result_bytes)

    def progress(self) -> int:
        # Called every _PROGRESS_EVERY VM steps; non-zero makes SQLite stop
        # the statement with "interrupted". The deadline is set lazily, so a
        # short call never reads the clock.
        if self.closed:
            return 1
        now = time.monotonic()
        deadline = self.deadline
        if deadline is None:
            self.deadline = now + self.timeout
            return 0
        return 1 if now > deadline else 0

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def close(self) -> None:
        self.closed = True
        lock = self.lock
        if not lock.acquire(blocking=False):
            try:
                self.conn.interrupt()
            except sqlite3.Error:
                pass
            if not lock.acquire(timeout=self.timeout + _BUSY_TIMEOUT_S):
                return  # the call in progress will see `closed`; nothing safe to do here
        try:
            self.conn.close()
        finally:
            lock.release()


def _release(handle, db: _Db) -> None:
    db.close()


# -- opening -----------------------------------------------------------------

_URI_OK = {"mode": {"ro", "rw", "rwc", "memory"}, "cache": {"private"},
           "immutable": None, "nolock": None, "psow": None}


class _OpenRefused(Exception):
    pass


def _parse_uri(path: str):
    """``file:`` URI → (file path, {param: value}); SQLite's own rules: an
    optional ``//`` authority that must be empty or ``localhost``, ``?``
    starts the query, ``#`` the fragment, %-escapes decoded."""
    rest = path[5:]
    rest = rest.split("#", 1)[0]
    rest, _, query = rest.partition("?")
    if rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise _OpenRefused(f"invalid uri authority: {authority}")
        rest = slash + tail
    params: dict[str, str] = {}
    for item in query.split("&") if query else ():
        k, _, v = item.partition("=")
        k, v = unquote(k), unquote(v)
        allowed = _URI_OK.get(k, False)
        if allowed is False:
            raise _OpenRefused(f"URI parameter `{k}` is not allowed")
        if allowed is not None and v not in allowed:
            raise _OpenRefused(f"URI parameter `{k}={v}` is not allowed")
        params[k] = v
    return unquote(rest), params


def _target(h, path: str):
    """(what to hand sqlite3.connect, uri flag, in-memory?) or an err value."""
    if path == ":memory:":
        return ":memory:", False, True
    uri = path.startswith("file:")
    params: dict[str, str] = {}
    fpath = path
    if uri:
        try:
            fpath, params = _parse_uri(path)
        except _OpenRefused as e:
            return err(f"sql.open: {e}")
        if fpath == ":memory:" or params.get("mode") == "memory":
            return "file::memory:", True, True
    found = scoped(fpath, h.policy.write_roots)
    if found is None:
        return err(f"sql.open: `{path}` outside --allow-fs-write")
    resolved = found[0]
    try:
        resolved.encode("utf-8")  # what SQLite takes (a lone surrogate, or a
    except UnicodeEncodeError:   # non-UTF-8 name a symlink resolved to)
        return err("sql.open: path is not valid UTF-8")
    if not uri:
        return resolved, False, False
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    return "file:" + quote(resolved, safe="/") + ("?" + query if query else ""), True, False


def _connect(target: str, uri: bool, memory: bool, limits) -> _Db:
    conn = sqlite3.connect(target, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False, uri=uri,
                           cached_statements=_CACHED_STATEMENTS)
    try:
        if hasattr(conn, "setlimit"):  # Python >= 3.11
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 1)  # VACUUM's temporary copy
            # one value (text, blob, zeroblob(), a row record) at most this
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH,
                          max(1, min(int(limits.sql_result_bytes), 0x7FFFFFFF)))
        # temporary tables and VACUUM's copy in memory, not in $TMPDIR
        # (outside the scope); set before the authorizer, which refuses it
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.set_authorizer(_authorize)
        db = _Db(conn, limits)
        conn.set_progress_handler(db.progress, _PROGRESS_EVERY)
        if not memory:
            try:
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
            except sqlite3.OperationalError:
                pass  # read-only or locked: keep the database's own mode
        return db
    except BaseException:
        conn.close()
        raise


def sql_open(h, args):
    path = expect_str(args, 0)
    target = _target(h, path)
    if not isinstance(target, tuple):
        return target
    session = h.session
    reg = session.registry("sql", _release)
    try:
        db = _connect(*target, session.limits)
    except sqlite3.Error as e:
        return err(f"sql.open: {e}")
    except (ValueError, OSError) as e:  # e.g. an embedded NUL
        return err(f"sql.open: {e}")
    handle = next_handle()
    reg.insert(handle, db)
    if session.closed:
        if reg.remove(handle) is not None:
            db.close()
        raise EffectError("sql.open: the handler is closed")
    return ok(handle)


def sql_close(h, args):
    handle = expect_handle(args, 0, "Db handle", "Db")
    db = h.session.registry("sql", _release).remove(handle)
    if db is not None:
        db.close()
    return None


# -- statements --------------------------------------------------------------

def _message(e: BaseException) -> str:
    s = str(e)
    if s in _RUSQLITE_WORDING:
        return _RUSQLITE_WORDING[s]
    if s == "string or blob too big":
        return s + " (Limits.sql_result_bytes)"
    if s.startswith(("not authorized", "authorization denied")):
        return (s + " (lexfast refuses ATTACH, VACUUM INTO, load_extension(), the "
                "temp/data_store_directory pragmas and changing temp_store: they reach "
                "files outside the scope)")
    return s


def _begin(h, args, op: str):
    """Checked arguments and the connection, its lock held (the caller
    releases it), or an ``err`` value when another call holds it too long."""
    handle = expect_handle(args, 0, "Db handle", "Db")
    stmt = expect_str(args, 1)
    params = expect_str_list(args, 2)
    db = h.session.registry("sql", _release).touch_get(handle)
    if db is None:
        raise EffectError(f"sql.{op}: closed or unknown Db handle")
    lock = db.lock
    if not lock.acquire(False) and not lock.acquire(timeout=db.timeout + _BUSY_TIMEOUT_S):
        return err(f"sql.{op}: the connection is busy with another call"), None, None
    if db.closed:
        lock.release()
        raise EffectError(f"sql.{op}: closed or unknown Db handle")
    db.deadline = None
    return db, stmt, params


def _interrupted(db: _Db, op: str, e: BaseException):
    if db.closed:
        raise EffectError(f"sql.{op}: closed or unknown Db handle")
    if db.timed_out():
        return err(f"sql.{op}: interrupted after {db.timeout:g} s (Limits.sql_timeout_s)")
    return err(f"sql.{op}: {_message(e)}")


def _has_row(cur) -> bool:
    try:
        return cur.fetchone() is not None
    except sqlite3.OperationalError as e:
        if str(e).startswith("Could not decode to UTF-8"):
            return True
        raise


def sql_exec(h, args):
    db, stmt, params = _begin(h, args, "exec")
    if stmt is None:
        return db
    try:
        conn = db.conn
        cur = conn.execute(stmt, params)
        if cur.description is not None and _has_row(cur):
            return err("sql.exec: Execute returned results - did you mean to call query?")
        n = cur.rowcount
        if n < 0:
            # Not INSERT/UPDATE/DELETE: rusqlite still returns changes(),
            # the count of the last DML (stale after DDL).
            n = conn.execute("SELECT changes()").fetchone()[0]
        return ok(n)
    except sqlite3.OperationalError as e:
        if str(e) == "interrupted":
            return _interrupted(db, "exec", e)
        return err(f"sql.exec: {_message(e)}")
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as e:
        return err(f"sql.exec: {_message(e)}")
    finally:
        db.lock.release()


def _collect(cur, rows_cap: int, bytes_cap: int):
    """(rows, None), or (None, err message) once past either cap; checked
    row by row, so at most one row more than the caps is materialised (a
    row is bounded by SQLITE_LIMIT_LENGTH per value)."""
    rows: list = []
    append = rows.append
    size = 0
    for r in cur:
        for v in r:
            if v.__class__ is str or v.__class__ is bytes:
                size += len(v)
        if size > bytes_cap:
            cur.close()
            return None, (f"sql.query: result larger than {bytes_cap} bytes "
                          "(Limits.sql_result_bytes)")
        append(r)
        if len(rows) > rows_cap:
            cur.close()
            return None, f"sql.query: more than {rows_cap} rows (Limits.sql_rows)"
    return rows, None


def _lossy_rerun(conn, cur, stmt, params, db, changes):
    # The C text factory is much faster than a lossy one, so invalid UTF-8 is
    # handled by running the statement again with the lossy factory -- only
    # when the first run changed nothing (a SELECT), so nothing happens twice.
    # (A RETURNING statement's changes are counted once it is reset.)
    cur.close()
    if conn.total_changes != changes:
        return None, None
    conn.text_factory = _lossy_text
    try:
        return _collect(conn.execute(stmt, params), db.rows_cap, db.bytes_cap)
    finally:
        conn.text_factory = str


def sql_query(h, args):
    db, stmt, params = _begin(h, args, "query")
    if stmt is None:
        return db
    try:
        conn = db.conn
        changes = conn.total_changes
        cur = conn.execute(stmt, params)
        desc = cur.description
        if desc is None:
            return ok([])
        try:
            rows, too_much = _collect(cur, db.rows_cap, db.bytes_cap)
        except sqlite3.OperationalError as e:
            if not str(e).startswith("Could not decode to UTF-8"):
                raise
            rows, too_much = _lossy_rerun(conn, cur, stmt, params, db, changes)
            if rows is None and too_much is None:
                return err(f"sql.query: {e}")
        if too_much is not None:
            return err(too_much)
        names = [d[0] for d in desc]
        return ok([dict(zip(names, r)) for r in rows])  # noqa: B905
    except sqlite3.OperationalError as e:
        if str(e) == "interrupted":
            return _interrupted(db, "query", e)
        return err(f"sql.query: {_message(e)}")
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as e:
        return err(f"sql.query: {_message(e)}")
    finally:
        db.lock.release()


ROWS = [
    ("sql", "open", "sql", sql_open),
    ("sql", "close", "sql", sql_close),
    ("sql", "exec", "sql", sql_exec),
    ("sql", "query", "sql", sql_query),
]
