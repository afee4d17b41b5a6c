"""sql.open/close/exec/query on the standard ``sqlite3`` (gated ``sql``).

Shapes, messages and the hard/soft split follow the reference, which used
rusqlite (docs/behaviour.md §3.8): connections in autocommit mode, a 5 s busy
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
- SQLite only ever gets SQLite files (see "the files SQLite will touch"
  below): the database is opened here first, beneath the scope root, and
  must be a regular file with one link that is empty or starts with the
  SQLite header (a missing one is created empty here); existing sidecars
  must be regular files with one link and look like SQLite's own; and the
  path must still name that file once SQLite has opened it, before the
  first statement can replay a journal into it.
- A connection cannot create or touch files outside the scope, nor change
  process-wide state: ``ATTACH`` and ``VACUUM INTO`` a file are refused (an
  authorizer, and an attached-database limit of 1: the one private
  temporary database plain ``VACUUM`` attaches), as are ``load_extension()``
  and every PRAGMA not on the allowlist below (``hard_heap_limit``,
  ``soft_heap_limit``, ``threads``, the directory pragmas, changing
  ``temp_store``...), in every spelling including the ``pragma_x()`` table
  functions: temporary tables, indices and that ``VACUUM`` copy live in
  memory, not in ``$TMPDIR``.
- SQLite's heap is capped process-wide at ``Limits.sql_memory_bytes`` (its
  hard heap limit, checked at every allocation: sorts, temporary b-trees,
  in-memory databases, values); past it a statement fails with ``out of
  memory`` and the connection stays usable. The limit is the process's, so
  it is the smallest of any session's, and one session near it makes
  others' statements fail until it frees memory.
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
import os
import sqlite3
import stat as _stat
import sys
import threading
import time
from urllib.parse import quote, unquote

from ..errors import EffectError
from ..kernel import COMPILED, err, expect_handle, expect_str, next_handle, ok
from ..scope import ScopeEscape, open_in_scope, open_parent_in_scope, path_too_long, scoped
from ..scope.paths import O_PATH_LIKE
from ..values import os_error_text
from . import sql_postgres as _postgres

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

# -- the authorizer ------------------------------------------------------------
#
# PRAGMA by allowlist. Everything not named here is refused, in every
# spelling: ``PRAGMA x``, ``PRAGMA main.x = v``, any case, with comments (the
# authorizer gets the parsed name and the dequoted argument), and the pragma
# table-valued functions ``pragma_x(...)``, which SQLite runs by preparing
# ``PRAGMA x`` on the same connection (SQLITE_PRAGMA again, at the first step)
# after reading the eponymous table ``pragma_x`` (SQLITE_READ, refused at
# prepare time). Refused, among others: the process-wide ``hard_heap_limit``,
# ``soft_heap_limit``, ``threads``, ``temp_store_directory``,
# ``data_store_directory``; ``mmap_size`` (maps the file), ``cache_spill`` /
# ``temp_store`` / ``max_page_count`` / ``busy_timeout`` changes (memory,
# temp files, time past the timeout); ``writable_schema`` and setting
# ``schema_version`` (corrupt the file); the result-shape legacy pragmas.

# Any argument (or none): read-only introspection whose argument names a
# table, index or a count, and settings that stay within this connection or
# this database file.
_PRAGMA_ANY = frozenset({
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check",
    "user_version", "application_id", "foreign_keys", "defer_foreign_keys",
    "recursive_triggers", "case_sensitive_like", "automatic_index",
    "ignore_check_constraints", "query_only", "reverse_unordered_selects",
    "legacy_alter_table", "trusted_schema", "cell_size_check", "secure_delete",
    "auto_vacuum", "incremental_vacuum", "page_size", "encoding", "journal_size_limit",
    "wal_autocheckpoint", "wal_checkpoint", "optimize", "analysis_limit", "shrink_memory",
    "cache_size",  # this connection's page cache: within the heap limit like all else
})
# Query form only (no argument).
_PRAGMA_QUERY = frozenset({
    "collation_list", "compile_options", "database_list", "function_list", "module_list",
    "pragma_list", "freelist_count", "page_count", "data_version", "schema_version",
    "max_page_count", "cache_spill", "busy_timeout", "temp_store",
    "mmap_size",
})
# Query, or set to one of these values: journal modes that keep a crash (or
# ROLLBACK) from corrupting the file (not OFF or MEMORY); synchronous above
# OFF; both locking modes (per connection).
_PRAGMA_VALUES = {
    "journal_mode": frozenset({"wal", "delete", "truncate", "persist"}),
    "synchronous": frozenset({"1", "2", "3", "normal", "full", "extra"}),
    "locking_mode": frozenset({"normal", "exclusive"}),
}


def _pragma_ok(name: str, arg) -> bool:
    name = name.lower()
    if name in _PRAGMA_ANY:
        return True
    if arg is None:
        return name in _PRAGMA_QUERY or name in _PRAGMA_VALUES
    allowed = _PRAGMA_VALUES.get(name)
    return allowed is not None and arg.strip().lower() in allowed


def _pragma_names() -> frozenset:
    conn = sqlite3.connect(":memory:")
    try:
        return frozenset(r[0].lower() for r in conn.execute("PRAGMA pragma_list"))
    finally:
        conn.close()


# the eponymous virtual tables ``pragma_<name>`` of the pragmas not allowed
_PRAGMA_TABLES = frozenset("pragma_" + n for n in _pragma_names()
                           if n not in _PRAGMA_ANY and n not in _PRAGMA_QUERY
                           and n not in _PRAGMA_VALUES)

_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})


def _authorize(action, arg1, arg2, dbname, source):
    # ATTACH (and VACUUM INTO, which attaches its target) could create a file
    # anywhere. Only the empty name passes: a private temporary database
    # (in memory, see temp_store), which plain VACUUM attaches internally.
    # A non-literal name (an expression, a parameter) arrives as None.
    if action == sqlite3.SQLITE_ATTACH:
        return sqlite3.SQLITE_OK if arg1 == "" else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA:
        return sqlite3.SQLITE_OK if arg1 and _pragma_ok(arg1, arg2) else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_READ:
        if arg1 and arg1.lower() in _PRAGMA_TABLES:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class _Db:
    """One connection, its lock and the deadline of the call in progress."""

    __slots__ = ("conn", "lock", "deadline", "closed", "timeout", "rows_cap", "bytes_cap",
                 "path", "watch", "__weakref__")

    def __init__(self, conn, limits, path=None) -> None:
        self.conn = conn
        self.path = path     # the database file (None: in memory)
        self.watch = False   # in a rollback-journal mode: check sidecars per call
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


# -- the files SQLite will touch --------------------------------------------
#
# SQLite opens its database by path and, at the first read, replays a hot
# ``-journal`` or ``-wal`` beside it into the database, truncating it to the
# size the journal names. So before SQLite sees a path, the database file is
# opened here beneath the scope root (never following a symlink, never
# opening a FIFO or a device) and must be
#   - a regular file with one link (a hardlink to a file outside would be
#     written in place), empty or starting with the SQLite header (a file of
#     another engine -- lmdb's live ``data.mdb`` -- or any other file is never
#     handed to SQLite, so no journal can be "rolled back" into it);
#   - missing, and then created empty here (so the next rule has an inode to
#     check), unless the open may not create it (``mode=ro``/``rw``).
# Its sidecars, when present, must be regular files with one link (a
# symlinked one is left to SQLite, which opens them ``O_NOFOLLOW``), and:
#   - ``-journal``/``-wal`` with content beside an empty database are refused
#     (SQLite did not make them for this file);
#   - a ``-journal`` with content starts with the journal magic or with the
#     zeroed header ``PRAGMA journal_mode=PERSIST`` leaves;
#   - a ``-wal`` with content starts with the WAL magic.
# Right after ``sqlite3.connect`` (which opens the database file, reading
# nothing but its header) and before the first statement (where a hot
# journal is replayed), the path must still name the checked inode: no
# effect can link an unlinked inode back, so SQLite opened that one.
# In WAL mode SQLite opens ``-wal``/``-shm`` at the first statement and holds
# them; in a rollback journal mode it opens ``-journal`` by name at every
# write transaction, so then the sidecars are checked again (a hardlink or
# a non-regular file planted since) before every call (``_Db.watch``).

_SQLITE_HEADER = b"SQLite format 3\0"
_JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")
_WAL_MAGICS = (bytes.fromhex("377f0682"), bytes.fromhex("377f0683"))
_SIDECARS = ("-journal", "-wal", "-shm")
_NOBLOCK = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC


def _open_regular(dfd: int, name: str, what: str):
    """(fd, stat) of the regular file ``name`` in ``dfd``, opened for reading
    without blocking and without following a symlink; ``FileNotFoundError``
    when missing; ``_OpenRefused`` when it is anything but a regular file with
    one link. Looked at with ``O_PATH`` first: a device is never opened."""
    pfd = os.open(name, O_PATH_LIKE | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        st = os.fstat(pfd)
    finally:
        os.close(pfd)
    if not _stat.S_ISREG(st.st_mode):
        raise _OpenRefused(f"{what} is not a regular file")
    fd = os.open(name, _NOBLOCK, dir_fd=dfd)
    try:
        st2 = os.fstat(fd)
        if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):
            raise _OpenRefused(f"{what} changed while it was being checked")
        if st2.st_nlink != 1:
            raise _OpenRefused(f"{what} has {st2.st_nlink} hard links; SQLite would write "
                               "through every one of them")
        return fd, st2
    except BaseException:
        os.close(fd)
        raise


def _head(fd: int, n: int) -> bytes:
    return os.pread(fd, n, 0)


class _Guard:
    """The checked database file of one ``sql.open``: ``verify()`` after
    ``sqlite3.connect``, ``close()`` always, ``discard()`` on failure
    (removes the file when it was created here)."""

    def __init__(self, resolved: str, root: str, create: bool) -> None:
        self.created = False
        self.ident = None
        # the checked file's descriptor stays open until close(): while it
        # is held the inode cannot be freed, so its number cannot come back
        # under a new file swapped in (remove + create) before verify()
        self.fd = -1
        self.resolved, self.root = resolved, root
        self.dfd, self.name = open_parent_in_scope(resolved, root)
        try:
            self._check(create)
        except BaseException:
            self.discard()
            self.close()
            raise

    def _check(self, create: bool) -> None:
        dfd, name = self.dfd, self.name
        try:
            fd, st = _open_regular(dfd, name, f"`{self.resolved}`")
        except FileNotFoundError:
            if not create:
                return  # SQLite reports it (mode=ro / mode=rw)
            try:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=dfd)
            except FileExistsError:
                raise _OpenRefused(f"`{self.resolved}` appeared while it was being checked") from None
            self.created = True
            st = os.fstat(fd)
        self.fd = fd
        self.ident = (st.st_dev, st.st_ino)
        empty = st.st_size == 0
        if not empty and _head(fd, 16) != _SQLITE_HEADER:
            raise _OpenRefused(f"file is not a database: `{self.resolved}` does not start "
                               "with the SQLite header (SQLite would rewrite it)")
        for suffix in _SIDECARS:
            self._check_sidecar(name + suffix, suffix, empty)

    def _check_sidecar(self, name: str, suffix: str, db_empty: bool) -> None:
        what = f"`{self.resolved}{suffix}`"
        try:
            st = os.stat(name, dir_fd=self.dfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if _stat.S_ISLNK(st.st_mode):
            return  # SQLite opens its sidecars O_NOFOLLOW: never followed
        try:
            fd, st = _open_regular(self.dfd, name, what)
        except FileNotFoundError:
            return
        try:
            if suffix == "-shm" or st.st_size == 0:
                return
            if db_empty:
                raise _OpenRefused(f"{what} has content but the database is empty: "
                                   "SQLite did not make it for this file")
            head = _head(fd, 8)
            if suffix == "-journal":
                if head != _JOURNAL_MAGIC and head.strip(b"\0"):
                    raise _OpenRefused(f"{what} is not a SQLite rollback journal")
            elif head[:4] not in _WAL_MAGICS or st.st_size < 32:
                raise _OpenRefused(f"{what} is not a SQLite write-ahead log")
        finally:
            os.close(fd)

    def verify(self) -> None:
        """The path still names the checked file (see above)."""
        try:
            fd = open_in_scope(self.resolved, self.root, O_PATH_LIKE | os.O_NOFOLLOW)
        except FileNotFoundError:
            if self.ident is None:
                return  # still missing: SQLite could not open it either
            raise _OpenRefused(f"`{self.resolved}` was replaced while it was being opened") from None
        if self.ident is None:
            os.close(fd)
            raise _OpenRefused(f"`{self.resolved}` appeared while it was being opened")
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if (st.st_dev, st.st_ino) != self.ident:
            raise _OpenRefused(f"`{self.resolved}` was replaced while it was being opened")

    def discard(self) -> None:
        if not self.created:
            return
        try:
            st = os.stat(self.name, dir_fd=self.dfd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == self.ident and st.st_size == 0:
                os.unlink(self.name, dir_fd=self.dfd)
        except OSError:
            pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        os.close(self.dfd)


def _target(h, path: str):
    """(what to hand sqlite3.connect, uri flag, in-memory?, resolved path,
    scope root, may create?) or an err value."""
    if path == ":memory:":
        return ":memory:", False, True, None, None, False
    uri = path.startswith("file:")
    params: dict[str, str] = {}
    fpath = path
    if uri:
        try:
            fpath, params = _parse_uri(path)
        except _OpenRefused as e:
            return err(f"sql.open: {e}")
        if fpath == ":memory:" or params.get("mode") == "memory":
            return "file::memory:", True, True, None, None, False
    found = scoped(fpath, h.policy.write_roots)
    if found is None:
        return err(f"sql.open: `{path}` outside --allow-fs-write")
    resolved, root = found
    try:
        resolved.encode("utf-8")  # what SQLite takes (a lone surrogate, or a
    except UnicodeEncodeError:   # non-UTF-8 name a symlink resolved to)
        return err("sql.open: path is not valid UTF-8")
    create = (params.get("mode", "rwc") == "rwc"
              and params.get("immutable", "0").lower() not in ("1", "yes", "true", "on"))
    if not uri:
        return resolved, False, False, resolved, root, create
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
    return ("file:" + quote(resolved, safe="/") + ("?" + query if query else ""), True, False,
            resolved, root, create)


_heap_lock = threading.Lock()
_heap_limit = 0  # SQLite's process-wide hard heap limit as last read here (0: never set)


def _cap_heap(conn, n: int) -> None:
    """Lower SQLite's process-wide hard heap limit to ``n`` (never raise it:
    the smallest ``Limits.sql_memory_bytes`` of any session wins, and a lower
    limit the embedding application set stays)."""
    global _heap_limit
    if 0 < _heap_limit <= n:
        return
    with _heap_lock:
        cur = conn.execute("PRAGMA hard_heap_limit").fetchone()[0]
        if cur <= 0 or cur > n:
            conn.execute(f"PRAGMA hard_heap_limit={int(n)}").fetchall()
            cur = conn.execute("PRAGMA hard_heap_limit").fetchone()[0]
        _heap_limit = cur


def _authorizer(db: _Db):
    """``_authorize`` for one connection, noting a switch to a rollback
    journal mode (SQLite then opens ``-journal`` by name at every write
    transaction, so its sidecars are checked before every call)."""
    def authorize(action, arg1, arg2, dbname, source):
        verdict = _authorize(action, arg1, arg2, dbname, source)
        if action == _PRAGMA and verdict == _OK and arg2 is not None \
                and arg1.lower() == "journal_mode" and arg2.strip().lower() != "wal" \
                and db.path is not None:
            db.watch = True
        return verdict
    return authorize


_PRAGMA, _OK = sqlite3.SQLITE_PRAGMA, sqlite3.SQLITE_OK


def _sidecar_trouble(path: str):
    """Why a sidecar of ``path`` must not be written now (a hardlink, a FIFO
    planted after the open), or None."""
    for suffix in _SIDECARS:
        side = path + suffix
        try:
            st = os.lstat(side)
        except OSError:
            continue
        if _stat.S_ISLNK(st.st_mode):
            continue  # never followed
        if not _stat.S_ISREG(st.st_mode):
            return f"`{side}` is not a regular file"
        if st.st_nlink != 1:
            return (f"`{side}` has {st.st_nlink} hard links; SQLite would write through "
                    "every one of them")
    return None


# sqlite3.h's limit numbers (the sqlite3 module names them from Python 3.11)
_LIMIT_LENGTH, _LIMIT_ATTACHED, _LIMIT_WORKER_THREADS = 0, 7, 11


def _handle_310(conn, fn_name: str, argtypes: list):
    """``(sqlite3 function, the connection's sqlite3* handle)`` for Python
    3.10's ``sqlite3``, which lacks ``setlimit`` and ``sqlite_errorcode``
    (3.11): the handle is the first field after the object header in 3.10's
    ``pysqlite_Connection`` (a release build only). ``None`` where it cannot
    be found."""
    import ctypes
    import sys
    if sys.version_info[:2] != (3, 10) or hasattr(sys, "gettotalrefcount") or conn is None:
        return None
    fn = _SQLITE_310.get(fn_name)
    try:
        if fn is None:
            lib = ctypes.CDLL(sqlite3.dbapi2._sqlite.__file__ if hasattr(sqlite3.dbapi2, "_sqlite")
                              else __import__("_sqlite3").__file__)
            fn = getattr(lib, fn_name)
            fn.argtypes, fn.restype = argtypes, ctypes.c_int
            _SQLITE_310[fn_name] = fn
        db = ctypes.c_void_p.from_address(id(conn) + 2 * ctypes.sizeof(ctypes.c_void_p)).value
    except (OSError, AttributeError):
        return None
    return (fn, db) if db else None


_SQLITE_310: dict = {}


def _setlimit_310(conn):
    """``Connection.setlimit`` for Python 3.10: SQLite's own
    ``sqlite3_limit`` on the connection's handle. Without it the limits
    above would silently not apply, so an interpreter where the handle
    cannot be found refuses sql.open instead."""
    import ctypes
    found = _handle_310(conn, "sqlite3_limit", [ctypes.c_void_p, ctypes.c_int, ctypes.c_int])
    if found is None:
        raise EffectError("sql.open: this Python's sqlite3 module cannot set SQLite's limits")
    fn, db = found

    def setlimit(category: int, value: int) -> int:
        return fn(db, category, value)
    return setlimit


def _errcode_310(conn) -> int | None:
    """The connection's extended result code, for Python 3.10, whose
    exceptions lack ``sqlite_errorcode``: ``sqlite3_extended_errcode``, read
    right after the failed call, before anything else runs on the
    connection. None where the handle cannot be found (no code, as before)."""
    import ctypes
    found = _handle_310(conn, "sqlite3_extended_errcode", [ctypes.c_void_p])
    return None if found is None else int(found[0](found[1]))


def _connect(target: str, uri: bool, memory: bool, limits, guard) -> _Db:
    conn = sqlite3.connect(target, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False, uri=uri,
                           cached_statements=_CACHED_STATEMENTS)
    try:
        if guard is not None:
            guard.verify()  # before the first statement, which replays a hot journal
        setlimit = getattr(conn, "setlimit", None) or _setlimit_310(conn)
        setlimit(_LIMIT_ATTACHED, 1)  # VACUUM's temporary copy
        setlimit(_LIMIT_WORKER_THREADS, 0)  # no sorter threads
        # one value (text, blob, zeroblob(), a row record) at most this
        setlimit(_LIMIT_LENGTH, max(1, min(int(limits.sql_result_bytes), 0x7FFFFFFF)))
        # every allocation of SQLite in the process counts against one ceiling
        _cap_heap(conn, max(1 << 20, int(limits.sql_memory_bytes)))
        # temporary tables and VACUUM's copy in memory, not in $TMPDIR
        # (outside the scope); set before the authorizer, which refuses it
        conn.execute("PRAGMA temp_store=MEMORY")
        # never map the database (a build may default to it): a file cut
        # short under a mapping is SIGBUS, not an error
        conn.execute("PRAGMA mmap_size=0").fetchall()
        db = _Db(conn, limits, None if guard is None else guard.resolved)
        conn.set_authorizer(_authorizer(db))
        conn.set_progress_handler(db.progress, _PROGRESS_EVERY)
        if not memory:
            mode = None
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError:
                pass  # read-only or locked: keep the database's own mode
            if mode != "wal" and db.path is not None:
                db.watch = True
        return db
    except BaseException:
        conn.close()
        raise


def _out_of_memory(op: str) -> str:
    return (f"sql.{op}: out of memory: SQLite's heap in this process is capped at "
            f"{_heap_limit} bytes (Limits.sql_memory_bytes)")


def sql_open(h, args):
    path = expect_str(args, 0)
    if _postgres.is_postgres_url(path):
        return _open_postgres(h, path)
    if (why := path_too_long(path)) is not None:
        return err(sql_error(f"sql.open: {why}"))
    target = _target(h, path)
    if not isinstance(target, tuple):
        return _structured(target)
    conn_target, uri, memory, resolved, root, create = target
    session = h.session
    reg = session.registry("sql", _release)
    guard = None
    try:
        try:
            if not memory:
                guard = _Guard(resolved, root, create)
            db = _connect(conn_target, uri, memory, session.limits, guard)
        except BaseException:
            if guard is not None:
                guard.discard()  # the empty file made here, if any
            raise
        finally:
            if guard is not None:
                guard.close()
    except _OpenRefused as e:
        return err(sql_error(f"sql.open: {e}"))
    except FileNotFoundError:  # a missing directory: SQLite's own words
        return err(sql_error("sql.open: unable to open database file", "SQLITE_CANTOPEN"))
    except MemoryError:
        return err(sql_error(_out_of_memory("open")))
    except sqlite3.Error as e:
        return _sql_err("sql.open", e)
    except ScopeEscape:
        return err(sql_error(f"sql.open: `{path}` outside --allow-fs-write"))
    except (ValueError, OSError) as e:  # e.g. an embedded NUL
        return err(sql_error(f"sql.open: {os_error_text(e) if isinstance(e, OSError) else e}"))
    handle = next_handle()
    reg.insert(handle, db)
    if session.closed:
        if reg.remove(handle) is not None:
            db.close()
        raise EffectError("sql.open: the handler is closed")
    return ok(handle)


def _open_postgres(h, url: str):
    opened = _postgres.open_url(h, url)
    if opened.name == "Err":
        return opened
    db = opened.args[0]
    session = h.session
    reg = session.registry("sql", _release)
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
    if s.startswith(("not authorized", "authorization denied")) or \
            (s.startswith("access to ") and s.endswith(" is prohibited")):
        return (s + " (lexfast refuses ATTACH, VACUUM INTO, load_extension() and every "
                "PRAGMA not on its allowlist: they reach files outside the scope, "
                "process-wide state or unbounded memory)")
    return s


def _begin(h, args, op: str):
    """Checked arguments and the connection, its lock held (the caller
    releases it), or an ``err`` value when another call holds it too long."""
    handle = expect_handle(args, 0, "Db handle", "Db")
    stmt = expect_str(args, 1)
    params = typed_params(f"sql.{op}", args, 2)
    db = h.session.registry("sql", _release).touch_get(handle)
    if db is None:
        raise EffectError(f"sql.{op}: closed or unknown Db handle")
    lock = db.lock
    if not lock.acquire(False) and not lock.acquire(timeout=db.timeout + _BUSY_TIMEOUT_S):
        return err(sql_error(f"sql.{op}: the connection is busy with another call")), None, None
    if db.closed:
        lock.release()
        raise EffectError(f"sql.{op}: closed or unknown Db handle")
    if db.watch:
        trouble = _sidecar_trouble(db.path)
        if trouble is not None:
            lock.release()
            return err(sql_error(f"sql.{op}: {trouble}")), None, None
    db.deadline = None
    return db, stmt, params


def _has_row(cur) -> bool:
    try:
        return cur.fetchone() is not None
    except sqlite3.OperationalError as e:
        if str(e).startswith("Could not decode to UTF-8"):
            return True
        raise


def sql_exec(h, args):
    db, stmt, params = _enter(h, args, "exec")
    if stmt is None:
        return db
    try:
        if db.__class__ is not _Db:
            return _postgres.exec_statement(db, "sql.exec", stmt, args[2])
        return _exec_on(db, "sql.exec", stmt, params)
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


def _records(cur, names: list, rows_cap: int, bytes_cap: int):
    """(records, None) -- each row as ``{column: value}`` -- or (None, err
    message) once past either cap (:func:`_collect`)."""
    rows, too_much = _collect(cur, rows_cap, bytes_cap)
    if rows is None:
        return None, too_much
    return [dict(zip(names, r)) for r in rows], None  # noqa: B905


def _lossy_rerun(conn, cur, stmt, params, db, changes):
    # The C text factory is much faster than a lossy one, so invalid UTF-8 is
    # handled by running the statement again with the lossy factory -- only
    # when the first run changed nothing (a SELECT), so nothing happens twice.
    # (A RETURNING statement's changes are counted once it is reset.)
    # Answers (records, too_much), or (None, None) when it may not rerun.
    if cur is not None:
        cur.close()
    if conn.total_changes != changes:
        return None, None
    conn.text_factory = _lossy_text
    try:
        again = conn.execute(stmt, params)
        desc = again.description
        if desc is None:
            return [], None
        rows, too_much = _collect(again, db.rows_cap, db.bytes_cap)
        names = [d[0] for d in desc]
        return (None if rows is None else [dict(zip(names, r)) for r in rows]), too_much  # noqa: B905
    finally:
        conn.text_factory = str


def _run_query(db: _Db, op: str, stmt: str, params):
    """``op``'s records (the compiled builder when it serves), under the
    caller's lock. Invalid UTF-8 in TEXT reruns the statement lossily; the
    decode error surfaces in ``execute`` (CPython 3.10 steps the first row
    there) or while fetching (3.11+), and both land in the same rerun."""
    conn = db.conn
    changes = conn.total_changes
    cur = None
    try:
        cur = conn.execute(stmt, params)
        desc = cur.description
        if desc is None:
            return ok([])
        recs, too_much = _records(cur, [d[0] for d in desc], db.rows_cap, db.bytes_cap)
    except sqlite3.OperationalError as e:
        if not str(e).startswith("Could not decode to UTF-8"):
            raise
        recs, too_much = _lossy_rerun(conn, cur, stmt, params, db, changes)
        if recs is None and too_much is None:
            return _failed(db, op, e)
    if too_much is not None:
        if op != "sql.query":
            too_much = too_much.replace("sql.query:", f"{op}:", 1)
        return err(sql_error(too_much))
    return ok(recs)


def sql_query(h, args):
    db, stmt, params = _enter(h, args, "query")
    if stmt is None:
        return db
    try:
        if db.__class__ is not _Db:
            return _postgres.query_statement(db, "sql.query", stmt, args[2])
        return _run_query(db, "sql.query", stmt, params)
    except _SQL_ERRORS as e:
        return _failed(db, "sql.query", e)
    finally:
        db.lock.release()


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


#: whether the argument checks and the records are the compiled ones
#: (``lexfast.effects._sql_c``: the same functions in C)
SQL_COMPILED = False
_enter = _begin
_py_records = _records  # the twin, whichever serves (tests compare the two)
if COMPILED and not _flag("LEXFAST_NO_EXTENSIONS"):
    try:
        from . import _sql_c
    except ImportError:  # built without it: the Python definitions serve
        if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
            raise
    else:
        _sql_c.bind(_begin)
        _enter = _sql_c.begin
        _records = _sql_c.records  # noqa: F811 -- the compiled twin
        SQL_COMPILED = True


ROWS = [
    ("sql", "open", "sql", sql_open),
    ("sql", "close", "sql", sql_close),
    ("sql", "exec", "sql", sql_exec),
    ("sql", "query", "sql", sql_query),
]


# == SQL v2 (issue 17): typed parameters, SqlError, transactions, cursors ==
#
# Additive on purpose: sql.exec/sql.query above keep the seed's List[Str]
# parameters and Str errors; these ops take the reference's SqlParam union
# (a bare Str still works) and answer errors as its SqlError record.

from ..kernel import NONE, Variant, some  # noqa: E402
from ..values import debug_repr  # noqa: E402

#: the extended result codes the reference names (``sqlite_extended_code_name``);
#: any other is ``SQLITE_ERROR_<n>``, as there
_CODE_NAMES = {
    5: "SQLITE_BUSY", 6: "SQLITE_LOCKED", 8: "SQLITE_READONLY", 10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT", 12: "SQLITE_NOTFOUND", 13: "SQLITE_FULL", 14: "SQLITE_CANTOPEN",
    15: "SQLITE_PROTOCOL", 17: "SQLITE_SCHEMA", 18: "SQLITE_TOOBIG", 19: "SQLITE_CONSTRAINT",
    275: "SQLITE_CONSTRAINT_CHECK", 787: "SQLITE_CONSTRAINT_FOREIGNKEY",
    1299: "SQLITE_CONSTRAINT_NOTNULL", 1555: "SQLITE_CONSTRAINT_PRIMARYKEY",
    1811: "SQLITE_CONSTRAINT_TRIGGER", 2067: "SQLITE_CONSTRAINT_UNIQUE",
    2323: "SQLITE_CONSTRAINT_VTAB", 2579: "SQLITE_CONSTRAINT_ROWID", 20: "SQLITE_MISMATCH",
    25: "SQLITE_RANGE", 26: "SQLITE_NOTADB", 23: "SQLITE_AUTH",
}

#: the reference's ``Iter`` value for a cursor
CURSOR_NAME = "__IterCursor"


def sql_error(message: str, code: str | None = None, detail: str | None = None) -> dict:
    """The reference's ``SqlError = {message, code: Option[Str], detail: Option[Str]}``."""
    return {"message": message,
            "code": NONE if code is None else some(code),
            "detail": NONE if detail is None else some(detail)}


def _sql_err(op: str, e: BaseException):
    """``err(SqlError)`` for an exception of ``sqlite3`` (code and detail
    from SQLite's extended result code and message) or of lexfast's own."""
    if isinstance(e, MemoryError):
        return err(sql_error(_out_of_memory(op.split(".", 1)[1])))
    text = _message(e)
    number = getattr(e, "sqlite_errorcode", None)
    if not isinstance(e, sqlite3.Error) or number is None:
        return err(sql_error(f"{op}: {text}"))
    return err(sql_error(f"{op}: {text}", _CODE_NAMES.get(number, f"SQLITE_ERROR_{number}"),
                         str(e)))


def _structured(v):
    """An ``err(Str)`` of the shared open checks as ``err(SqlError)``."""
    if isinstance(v, Variant) and v.name == "Err" and len(v.args) == 1 and isinstance(v.args[0], str):
        return err(sql_error(v.args[0]))
    return v


def _sql_param(op: str, item):
    if isinstance(item, str):  # the seed's List[Str], still accepted
        return item
    if not isinstance(item, Variant):
        raise EffectError(f"{op}: expected SqlParam variant, got {debug_repr(item)}")
    name, payload = item.name, item.args
    if name == "PNull" and not payload:
        return None
    v = payload[0] if len(payload) == 1 else None
    if name == "PStr":
        if isinstance(v, str):
            return v
        raise EffectError(f"{op}: PStr requires a Str argument")
    if name == "PInt":
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        raise EffectError(f"{op}: PInt requires an Int argument")
    if name == "PFloat":
        if isinstance(v, float):
            return v
        raise EffectError(f"{op}: PFloat requires a Float argument")
    if name == "PBool":
        if isinstance(v, bool):
            return int(v)  # SQLite has no BOOLEAN: 0/1, as rusqlite binds it
        raise EffectError(f"{op}: PBool requires a Bool argument")
    if name == "PNull":
        raise EffectError(f"{op}: PNull takes no argument")
    raise EffectError(f"{op}: unknown SqlParam constructor `{name}`")


def typed_params(op: str, args, i: int) -> list:
    """``args[i]`` as ``List[SqlParam]`` (or the seed's ``List[Str]``), as
    Python values for ``sqlite3``; an ``EffectError`` naming ``op`` else."""
    if len(args) <= i:
        raise EffectError(f"{op}: missing params argument")
    items = args[i]
    if not isinstance(items, list):
        raise EffectError(f"{op}: expected List[SqlParam], got {debug_repr(items)}")
    return [_sql_param(op, x) for x in items]


def _acquire(h, handle: int, op: str, what: str = "Db"):
    """The handle's ``_Db`` with its lock held (the caller releases it), or
    an ``err(SqlError)`` when another call holds it too long."""
    db = h.session.registry("sql", _release).touch_get(handle)
    if db is None:
        raise EffectError(f"{op}: closed or unknown {what} handle")
    lock = db.lock
    if not lock.acquire(False) and not lock.acquire(timeout=db.timeout + _BUSY_TIMEOUT_S):
        return None, err(sql_error(f"{op}: the connection is busy with another call"))
    if db.closed:
        lock.release()
        raise EffectError(f"{op}: closed or unknown {what} handle")
    if db.watch:
        trouble = _sidecar_trouble(db.path)
        if trouble is not None:
            lock.release()
            return None, err(sql_error(f"{op}: {trouble}"))
    db.deadline = None
    return db, None


def _failed(db: _Db, op: str, e: BaseException):
    if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) is None:
        code = _errcode_310(getattr(db, "conn", None))
        if code:  # 0 is SQLITE_OK: the failure was not SQLite's own
            e.sqlite_errorcode = code  # type: ignore[attr-defined]
    if isinstance(e, sqlite3.OperationalError) and str(e) == "interrupted":
        if db.closed:
            raise EffectError(f"{op}: closed or unknown Db handle")
        if db.timed_out():
            return err(sql_error(f"{op}: interrupted after {db.timeout:g} s "
                                 "(Limits.sql_timeout_s)"))
    return _sql_err(op, e)


_SQL_ERRORS = (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError, MemoryError)


def _exec_on(db: _Db, op: str, stmt: str, params: list):
    try:
        conn = db.conn
        cur = conn.execute(stmt, params)
        if cur.description is not None and _has_row(cur):
            return err(sql_error(f"{op}: Execute returned results - did you mean to call query?"))
        n = cur.rowcount
        if n < 0:
            n = conn.execute("SELECT changes()").fetchone()[0]
        return ok(n)
    except _SQL_ERRORS as e:
        return _failed(db, op, e)


def _query_on(db: _Db, op: str, stmt: str, params: list):
    try:
        return _run_query(db, op, stmt, params)
    except _SQL_ERRORS as e:
        return _failed(db, op, e)


def _with_db(h, args, op: str, what: str, run):
    handle = expect_handle(args, 0, f"{what} handle", what)
    stmt = expect_str(args, 1)
    params = typed_params(op, args, 2)
    db, refused = _acquire(h, handle, op, what)
    if db is None:
        return refused
    try:
        if db.__class__ is not _Db:
            pg_run = _postgres.exec_statement if run is _exec_on else _postgres.query_statement
            return pg_run(db, op, stmt, args[2])
        return run(db, op, stmt, params)
    finally:
        db.lock.release()


def sql_exec_tx(h, args):
    return _with_db(h, args, "sql.exec_tx", "SqlTx", _exec_on)


def sql_query_tx(h, args):
    return _with_db(h, args, "sql.query_tx", "SqlTx", _query_on)


def _tx_statement(h, args, op: str, sql_text: str, what: str):
    handle = expect_handle(args, 0, f"{what} handle", what)
    db, refused = _acquire(h, handle, op, what)
    if db is None:
        return None, refused
    try:
        if db.__class__ is not _Db:
            failed = _postgres.tx_statement(db, op, sql_text)
            return (handle, None) if failed is None else (None, failed)
        db.conn.execute(sql_text)
        return handle, None
    except _SQL_ERRORS as e:
        failed = _failed(db, op, e)
        if sql_text == "COMMIT" and db.conn.in_transaction:
            # nothing half-done: a COMMIT that fails (a deferred foreign
            # key, a full disk) rolls back, so the database is as before
            try:
                db.conn.execute("ROLLBACK")
            except _SQL_ERRORS:
                pass
            rec = dict(failed.args[0])
            rec["message"] += " (the transaction was rolled back)"
            failed = err(rec)
        return None, failed
    finally:
        db.lock.release()


def sql_begin(h, args):
    """``BEGIN`` on the connection; the ``SqlTx`` handle is the ``Db``
    handle, as in the reference (statements on either join it)."""
    handle, failed = _tx_statement(h, args, "sql.begin", "BEGIN", "Db")
    return failed if failed is not None else ok(handle)


def sql_commit(h, args):
    _, failed = _tx_statement(h, args, "sql.commit", "COMMIT", "SqlTx")
    return failed if failed is not None else ok(None)


def sql_rollback(h, args):
    _, failed = _tx_statement(h, args, "sql.rollback", "ROLLBACK", "SqlTx")
    return failed if failed is not None else ok(None)


# -- cursors -----------------------------------------------------------------
#
# The reference runs a producer thread per cursor that holds the
# connection's lock until the cursor is drained (so any other call on that
# Db blocks, a program interleaving them deadlocks) and turns every error
# into a silent end. Here a cursor is a stepped sqlite3 cursor in the
# session's registry (LRU 256): each sql.cursor_next takes the connection
# lock for one step only, a prepare error is query_iter's err(SqlError), a
# failing step raises, and the statement is freed when the cursor is
# exhausted, evicted, its Db closed or the handler closed.

class _Cursor:
    __slots__ = ("db", "cur", "names", "bytes_cap")

    def __init__(self, db: _Db, cur, names: list) -> None:
        self.db = db
        self.cur = cur
        self.names = names
        self.bytes_cap = db.bytes_cap

    def close(self) -> None:
        cur, self.cur = self.cur, None
        if cur is None:
            return
        db = self.db
        if db.lock.acquire(timeout=db.timeout + _BUSY_TIMEOUT_S):
            try:
                if not db.closed:
                    cur.close()
            except sqlite3.Error:
                pass
            finally:
                db.lock.release()


#: CPython 3.10's sqlite3 builds the *next* row when it hands one out, so a
#: row whose TEXT is not UTF-8 fails the fetch of the row before it and that
#: row is lost: there a cursor reads TEXT lossily throughout (slower, and
#: only there; 3.11+ builds the row it returns and is retried lossily).
_PREFETCHES = sys.version_info < (3, 11)


def _fetch_lossy(conn, cur):
    conn.text_factory = _lossy_text
    try:
        return cur.fetchone()
    finally:
        conn.text_factory = str


def _release_cursor(handle, cursor: _Cursor) -> None:
    cursor.close()


def _cursors(h):
    return h.session.registry("sql_cursor", _release_cursor)


def sql_query_iter(h, args):
    """``Ok(__IterCursor(handle))``: the statement runs to its first row
    now (so a bad statement is this call's ``err``), the rest one
    ``sql.cursor_next`` at a time, never materialised."""
    op = "sql.query_iter"
    handle = expect_handle(args, 0, "Db handle", "Db")
    stmt = expect_str(args, 1)
    params = typed_params(op, args, 2)
    db, refused = _acquire(h, handle, op)
    if db is None:
        return refused
    sqlite = db.__class__ is _Db
    cursor: _Cursor | _postgres.PgCursor
    try:
        if not sqlite:
            opened = _postgres.open_cursor(db, op, stmt, args[2])
            if not isinstance(opened, _postgres.PgCursor):
                return opened
            cursor = opened
        else:
            if _PREFETCHES:
                db.conn.text_factory = _lossy_text
            cur = db.conn.execute(stmt, params)
            desc = cur.description
            names = [d[0] for d in desc] if desc is not None else []
            cursor = _Cursor(db, cur if desc is not None else None, names)
    except _SQL_ERRORS as e:
        return _failed(db, op, e)
    finally:
        if _PREFETCHES and sqlite:
            db.conn.text_factory = str
        db.lock.release()
    key = next_handle()
    reg = _cursors(h)
    reg.insert(key, cursor)
    if h.session.closed:  # closed meanwhile: its registries were already emptied
        if reg.remove(key) is not None:
            cursor.close()
        raise EffectError(f"{op}: the handler is closed")
    return ok(Variant(CURSOR_NAME, (key,)))


def sql_cursor_next(h, args):
    """``Some(row)``, or ``None`` once exhausted (and for a cursor that is
    closed, evicted or unknown here)."""
    v = args[0] if args else None
    if type(v) is not int or v < 0:
        raise EffectError("sql.cursor_next: expected cursor handle (Int)")
    reg = h.session.registry("sql_cursor", _release_cursor)
    cursor = reg.touch_get(v)
    if cursor is None or cursor.cur is None:
        if cursor is not None:
            reg.remove(v)
        return NONE
    db = cursor.db
    if not db.lock.acquire(False) and not db.lock.acquire(timeout=db.timeout + _BUSY_TIMEOUT_S):
        raise EffectError("sql.cursor_next: the connection is busy with another call")
    try:
        if db.closed or cursor.cur is None:
            row = None
        elif cursor.__class__ is not _Cursor:
            row = _postgres.cursor_next(cursor, "sql.cursor_next")
            if row is not None:
                return some(row)
        else:
            db.deadline = None
            try:
                if _PREFETCHES:
                    row = _fetch_lossy(db.conn, cursor.cur)
                else:
                    row = cursor.cur.fetchone()
            except sqlite3.OperationalError as e:
                # sqlite3 builds the row before stepping past it, so a row
                # whose TEXT is not UTF-8 is fetched again, lossily (the C
                # text factory is much faster than a lossy one)
                row = e
                if str(e).startswith("Could not decode to UTF-8"):
                    conn = db.conn
                    conn.text_factory = _lossy_text
                    try:
                        row = cursor.cur.fetchone()
                    except _SQL_ERRORS as e2:
                        row = e2
                    finally:
                        conn.text_factory = str
            except _SQL_ERRORS as e:
                row = e
    finally:
        db.lock.release()
    if row is None:
        reg.remove(v)
        cursor.close()
        return NONE
    if isinstance(row, BaseException):
        reg.remove(v)
        cursor.close()
        failed = _failed(db, "sql.cursor_next", row)
        raise EffectError(failed.args[0]["message"])
    return some(dict(zip(cursor.names, row)))  # noqa: B905


# -- typed getters (the reference's sql_get_col) -------------------------------

def _get_col(op: str, args, convert):
    if not args:
        raise EffectError(f"{op}: missing row argument")
    row = args[0]
    if len(args) < 2:
        raise EffectError(f"{op}: missing column name argument")
    col = args[1]
    if not isinstance(col, str):
        raise EffectError(f"{op}: column name must be Str, got {debug_repr(col)}")
    if not isinstance(row, dict):
        raise EffectError(f"{op}: row must be a Record, got {debug_repr(row)}")
    if col not in row:
        return NONE
    out = convert(row[col])
    return NONE if out is None else some(out)


def _as_str(v):
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return None


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _as_int(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):  # Rust's `as i64`: toward zero, saturating, NaN -> 0
        if v != v:
            return 0
        if v >= 9.223372036854775807e18:
            return _I64_MAX
        if v <= -9.223372036854775808e18:
            return _I64_MIN
        return int(v)
    return None


def _as_float(v):
    if isinstance(v, float):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return None


def _as_bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v != 0
    return None


def sql_get_str(h, args):
    return _get_col("sql.get_str", args, _as_str)


def sql_get_int(h, args):
    return _get_col("sql.get_int", args, _as_int)


def sql_get_float(h, args):
    return _get_col("sql.get_float", args, _as_float)


def sql_get_bool(h, args):
    return _get_col("sql.get_bool", args, _as_bool)


ROWS += [
    ("sql", "begin", "sql", sql_begin),
    ("sql", "commit", "sql", sql_commit),
    ("sql", "rollback", "sql", sql_rollback),
    ("sql", "exec_tx", "sql", sql_exec_tx),
    ("sql", "query_tx", "sql", sql_query_tx),
    ("sql", "query_iter", "sql", sql_query_iter),
    ("sql", "cursor_next", "sql", sql_cursor_next),
    ("sql", "get_str", "sql", sql_get_str),
    ("sql", "get_int", "sql", sql_get_int),
    ("sql", "get_float", "sql", sql_get_float),
    ("sql", "get_bool", "sql", sql_get_bool),
]
