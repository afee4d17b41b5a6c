"""log.debug/info/warn/error (gated ``log``), log.set_level/set_format
(``io``), log.set_sink (``io`` and ``fs_write``).

The log state (level, format, sink) belongs to the session, a handler and its
forks, where the reference keeps one per process: one session's sink never
receives another's lines, its level cannot silence another's warnings, and
its sink file is closed when the session closes. Within a session it is the
reference's state, shared by every fork and thread; a line is written whole
(one lock per session, one ``write`` per line, and one process-wide lock for
standard error), so concurrent lines never interleave.

Unlike the reference, a log line cannot be forged: JSON lines escape every
control character, and the text format escapes line breaks and other control
characters in messages. ``log.set_sink`` appends only to a regular file
beneath the write scope's root with a single link: a hardlink to a file
outside the scope is refused (checked on the opened descriptor), and so is a
file whose header shows it is a SQLite or lmdb file (a database, its
journal, WAL or shared-memory index, an lmdb data or lock file), which
appending lines would corrupt in place.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import sys
import threading
import time

from ..errors import EffectError
from ..kernel import err, expect_str, ok
from ..scope import ScopeEscape, open_in_scope, path_too_long, scoped
from ..values import one_line, os_error_text

LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3}
FORMATS = ("text", "json")

#: Standard error is one stream for the whole process: lines from different
#: sessions (and io.print on the command's stderr) are written under this lock.
STDERR_LOCK = threading.Lock()


class _LogState:
    """One session's log configuration and sink."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.level = LEVELS["info"]
        self.format = "text"
        self.fd: int | None = None  # None: standard error
        self.path: str | None = None
        self.closed = False

    def close(self) -> None:
        """The session's close hook: the sink file is closed, later lines refused."""
        with self.lock:
            self.closed = True
            old, self.fd, self.path = self.fd, None, None
        if old is not None:
            os.close(old)


def _make_state(session) -> _LogState:
    st = _LogState()
    session.on_close(st.close)
    return st


def _state(h) -> _LogState:
    return h.session.state("log", _make_state)


def timestamp() -> str:
    """UTC RFC 3339 with nanoseconds, as chrono's ``to_rfc3339``."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}+00:00"


# Line breaks json.dumps leaves raw (str.splitlines and JavaScript split on them).
_JSON_ESCAPES = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def format_line(level: str, msg: str, fmt: str, ts: str | None = None) -> str:
    ts = ts or timestamp()
    if fmt == "json":
        # json.dumps escapes ", \ and every C0 control character.
        body = json.dumps(msg, ensure_ascii=False).translate(_JSON_ESCAPES)
        return f'{{"ts":"{ts}","level":"{level}","msg":{body}}}\n'
    return f"[{ts}] {level}: {one_line(msg)}\n"


def _append_all(fd: int, data: bytes) -> None:
    """Append ``data`` to the sink (``O_APPEND``); a write that takes nothing
    ends it (unlike ``scope.write_all``: a log line is best-effort)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)  # O_APPEND: each write lands at the end
        if n <= 0:
            return
        view = view[n:]


def write_stderr(text: str) -> None:
    """One whole line (or lines) to standard error; errors ignored."""
    with STDERR_LOCK:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except Exception:
            pass  # write errors are ignored, as in the reference


def _emit(h, level: str, msg: str) -> None:
    st = _state(h)
    with st.lock:
        if st.closed:
            raise EffectError("the handler is closed")
        if LEVELS[level] < st.level:
            return
        line = format_line(level, msg, st.format)
        if st.fd is None:
            write_stderr(line.encode("utf-8", "replace").decode("utf-8"))
            return
        try:
            _append_all(st.fd, line.encode("utf-8", "replace"))
        except OSError:
            pass  # write errors are ignored, as in the reference


def _emitter(level: str):
    def log_emit(h, args):
        _emit(h, level, expect_str(args, 0))
        return None
    log_emit.__name__ = f"log_{level}"
    return log_emit


def log_set_level(h, args):
    s = expect_str(args, 0)
    if s not in LEVELS:
        return err(f"log.set_level: unknown level `{s}`; expected debug|info|warn|error")
    st = _state(h)
    with st.lock:
        st.level = LEVELS[s]
    return ok(None)


def log_set_format(h, args):
    s = expect_str(args, 0)
    if s not in FORMATS:
        return err(f"log.set_format: unknown format `{s}`; expected text|json")
    st = _state(h)
    with st.lock:
        st.format = s
    return ok(None)


# A sink appends in place, to the inode a live store may hold open (io.write
# and fs.copy replace the name instead): files whose first bytes say they
# belong to SQLite or lmdb are refused. (offset, magic, what)
_MDB_MAGIC = struct.pack("=I", 0xBEEFC0DE)
_STORE_HEADERS = (
    (0, b"SQLite format 3\x00", "a SQLite database"),
    (0, b"\x37\x7f\x06\x82", "a SQLite write-ahead log"),
    (0, b"\x37\x7f\x06\x83", "a SQLite write-ahead log"),
    (0, b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7", "a SQLite journal"),
    (0, struct.pack("=I", 3007000), "a SQLite shared-memory index"),
    (0, _MDB_MAGIC, "an lmdb lock file"),
    (16, _MDB_MAGIC, "an lmdb data file"),
)


def _store_kind(fd: int) -> str | None:
    try:
        head = os.pread(fd, 24, 0)
    except OSError:  # opened write-only: nothing to sniff
        return None
    for offset, magic, what in _STORE_HEADERS:
        if head[offset:offset + len(magic)] == magic:
            return what
    return None


def _open_sink(h, path: str):
    """The descriptor of a new file sink, or an ``err`` value."""
    found = scoped(path, h.policy.write_roots)
    if found is None:
        return err(f"fs path `{path}` outside --allow-fs-write")
    # O_NONBLOCK: a FIFO must not block the open; only regular files are kept,
    # since a device could block every later log line. Read access only to
    # look at the header; a write-only file is opened write-only.
    flags = os.O_CREAT | os.O_APPEND | os.O_NONBLOCK
    try:
        try:
            fd = open_in_scope(found[0], found[1], flags | os.O_RDWR, 0o644)
        except PermissionError:
            fd = open_in_scope(found[0], found[1], flags | os.O_WRONLY, 0o644)
    except ScopeEscape:
        return err(f"fs path `{path}` outside --allow-fs-write")
    except OSError as e:
        return err(f"log.set_sink `{path}`: {os_error_text(e)}")
    try:
        st = os.fstat(fd)
        store = _store_kind(fd) if stat.S_ISREG(st.st_mode) and st.st_size else None
        if not stat.S_ISREG(st.st_mode):
            problem = "not a regular file"
        elif st.st_nlink > 1:
            # A hardlink is the same inode under another name, perhaps outside
            # the scope: appending would change that file in place.
            problem = f"the file has {st.st_nlink} hard links (a sink must have one)"
        elif store is not None:
            problem = f"the file is {store} (appending would corrupt it)"
        else:
            return fd
    except OSError as e:
        problem = os_error_text(e)
    os.close(fd)
    return err(f"log.set_sink `{path}`: {problem}")


def log_set_sink(h, args):
    path = expect_str(args, 0)
    if (why := path_too_long(path)) is not None:
        return err(f"log.set_sink: {why}")
    st = _state(h)
    if path == "-":
        new_fd = None
    else:
        new_fd = _open_sink(h, path)
        if not isinstance(new_fd, int):
            return new_fd
    with st.lock:
        if st.closed:
            old = new_fd
        else:
            old, st.fd = st.fd, new_fd
            st.path = None if path == "-" else path
    if old is not None:
        os.close(old)
    if st.closed:
        raise EffectError("the handler is closed")
    return ok(None)


ROWS = [
    ("log", "debug", "log", _emitter("debug")),
    ("log", "info", "log", _emitter("info")),
    ("log", "warn", "log", _emitter("warn")),
    ("log", "error", "log", _emitter("error")),
    ("log", "set_level", "io", log_set_level),
    ("log", "set_format", "io", log_set_format),
    ("log", "set_sink", ("io", "fs_write"), log_set_sink),
]
