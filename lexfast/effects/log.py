"""log.debug/info/warn/error (gated ``log``), log.set_level/set_format
(``io``), log.set_sink (``io`` and ``fs_write``).

The log state is process-wide and thread-safe, as in the reference. Unlike
the reference, a log line cannot be forged: JSON lines escape every control
character, and the text format escapes newlines and other control
characters in messages.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import time

from ..core import err, expect_str, ok
from ..scope import ScopeEscape, open_in_scope, scoped
from ..values import os_error_text

LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3}
FORMATS = ("text", "json")


class _LogState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.level = LEVELS["info"]
        self.format = "text"
        self.fd: int | None = None  # None: standard error
        self.path: str | None = None


_state = _LogState()


def reset() -> None:
    """Back to the defaults (info, text, stderr); closes a file sink."""
    with _state.lock:
        _state.level = LEVELS["info"]
        _state.format = "text"
        old, _state.fd, _state.path = _state.fd, None, None
    if old is not None:
        os.close(old)


def timestamp() -> str:
    """UTC RFC 3339 with nanoseconds, as chrono's ``to_rfc3339``."""
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}+00:00"


_TEXT_ESCAPES = {i: f"\\u{{{i:x}}}" for i in range(0x20) if i != 0x09}
_TEXT_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x7F: "\\u{7f}", 0x85: "\\u{85}",
                      0x2028: "\\u{2028}", 0x2029: "\\u{2029}"})
# Line breaks json.dumps leaves raw (str.splitlines and JavaScript split on them).
_JSON_ESCAPES = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def format_line(level: str, msg: str, fmt: str, ts: str | None = None) -> str:
    ts = ts or timestamp()
    if fmt == "json":
        # json.dumps escapes ", \ and every C0 control character.
        body = json.dumps(msg, ensure_ascii=False).translate(_JSON_ESCAPES)
        return f'{{"ts":"{ts}","level":"{level}","msg":{body}}}\n'
    return f"[{ts}] {level}: {msg.translate(_TEXT_ESCAPES)}\n"


def _emit(level: str, msg: str) -> None:
    with _state.lock:
        if LEVELS[level] < _state.level:
            return
        line = format_line(level, msg, _state.format)
        data = line.encode("utf-8", "replace")
        if _state.fd is None:
            try:
                sys.stderr.write(data.decode("utf-8"))
                sys.stderr.flush()
            except Exception:
                pass  # write errors are ignored, as in the reference
            return
        try:
            os.write(_state.fd, data)  # O_APPEND: one write, one whole line
        except OSError:
            pass


def _emitter(level: str):
    def log_emit(h, args):
        _emit(level, expect_str(args, 0))
        return None
    log_emit.__name__ = f"log_{level}"
    return log_emit


def log_set_level(h, args):
    s = expect_str(args, 0)
    if s not in LEVELS:
        return err(f"log.set_level: unknown level `{s}`; expected debug|info|warn|error")
    with _state.lock:
        _state.level = LEVELS[s]
    return ok(None)


def log_set_format(h, args):
    s = expect_str(args, 0)
    if s not in FORMATS:
        return err(f"log.set_format: unknown format `{s}`; expected text|json")
    with _state.lock:
        _state.format = s
    return ok(None)


def log_set_sink(h, args):
    path = expect_str(args, 0)
    if path == "-":
        new_fd = None
    else:
        found = scoped(path, h.policy.write_roots)
        if found is None:
            return err(f"fs path `{path}` outside --allow-fs-write")
        try:
            # O_NONBLOCK: a FIFO must not block the open; only regular files
            # are kept, since a device could block every later log line of
            # the process (the log state is process-wide).
            new_fd = open_in_scope(found[0], found[1],
                                   os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o644)
        except ScopeEscape:
            return err(f"fs path `{path}` outside --allow-fs-write")
        except OSError as e:
            return err(f"log.set_sink `{path}`: {os_error_text(e)}")
        if not stat.S_ISREG(os.fstat(new_fd).st_mode):
            os.close(new_fd)
            return err(f"log.set_sink `{path}`: not a regular file")
    with _state.lock:
        old, _state.fd = _state.fd, new_fd
        _state.path = None if path == "-" else path
    if old is not None:
        os.close(old)
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
