"""io.print, io.read, io.write, io.readline, io.argv.

``io.readline`` reads the session's input (``handler.with_input``; standard
input by default), one line of at most ``Limits.readline_bytes``; ``io.argv``
is the program's arguments (``handler.with_program_args``).

Scope failures are hard errors (``read of `p` outside --allow-fs-read``), I/O
failures ``err`` values, as in the reference. Beyond it: paths are resolved
before the check, ``read_root`` cannot be escaped with ``..`` or a symlink,
opens stay beneath the scope root (``openat2``) and are judged by what they
landed on (procfs secrets, kernel pseudo-filesystems: ``scope.check_opened``),
reads are bounded, a path over ``PATH_MAX`` bytes is an ``err``, and a
write is atomic (the old file or the whole new one, never half of it).
"""

from __future__ import annotations

import os
import stat
import sys

from ..errors import EffectError, PolicyDenied
from ..kernel import NONE, err, expect_str, ok, some
from ..scope import (
    PathTooLong,
    ScopeEscape,
    open_in_scope,
    path_too_long,
    read_file_bounded,
    scoped,
    write_file_atomic,
)
from ..values import os_error_text


def io_print(h, args):
    h.session.sink.print_line(expect_str(args, 0))
    return None


def _io_read_denied(path: str, why: str = "--allow-fs-read") -> PolicyDenied:
    return PolicyDenied(f"read of `{path}` outside {why}", effect="io", path=path)


def read_target(h, path: str, denied=_io_read_denied):
    """(resolved, root, target) for a read of ``path`` (``read_root`` joined
    first, when set), or the ``PolicyDenied`` that ``denied(path, why)``
    builds. Shared by io.read and the arrow reads."""
    read_root = h.session.read_root
    target = path
    roots = h.policy.read_roots
    if read_root is not None:
        # The reference joins without confining: read_root/../../etc/passwd
        # escaped it. Here the joined path must stay beneath the root.
        target = os.path.join(read_root, path.lstrip("/"))
        if scoped(target, (read_root,)) is None:
            raise denied(path, "the read root")
    found = scoped(target, roots)
    if found is None:
        raise denied(path, "--allow-fs-read")
    resolved, root = found
    if read_root is not None and len(read_root) > len(root):
        root = read_root  # the deeper of the two roots is the stricter
    return resolved, root, target


def _too_long(op: str, path: str):
    why = path_too_long(path)
    return None if why is None else err(f"io.{op}: {why}")


def io_read(h, args):
    path = expect_str(args, 0)
    if len(path) > 1024 and path_too_long(path):
        return _too_long("read", path)
    try:
        resolved, root, _ = read_target(h, path)
    except PathTooLong as e:  # read_root joined with the path
        return err(f"io.read: {e}")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (only regular
        # files are read, below).
        fd = open_in_scope(resolved, root, os.O_RDONLY | os.O_NONBLOCK)
    except ScopeEscape:
        raise _io_read_denied(path) from None
    except OSError as e:
        return err(os_error_text(e))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            return err("Is a directory (os error 21)")
        if not stat.S_ISREG(mode):  # a FIFO, socket or device could block forever
            return err(f"read of `{path}`: not a regular file")
        os.set_blocking(fd, True)
        data = read_file_bounded(fd, h.session.limits.read_bytes)
    except OverflowError as e:
        return err(f"read of `{path}`: {e}")
    except OSError as e:
        return err(os_error_text(e))
    finally:
        os.close(fd)
    try:
        return ok(data.decode("utf-8"))
    except UnicodeDecodeError:
        return err("stream did not contain valid UTF-8")


def io_write(h, args):
    path = expect_str(args, 0)
    contents = expect_str(args, 1)
    if len(path) > 1024 and path_too_long(path):
        return _too_long("write", path)
    found = scoped(path, h.policy.write_roots)
    if found is None:
        raise PolicyDenied(f"write to `{path}` outside --allow-fs-write", effect="io", path=path)
    try:
        data = contents.encode("utf-8")
    except UnicodeEncodeError as e:
        return err(f"contents are not valid UTF-8: {e.reason}")
    try:
        write_file_atomic(found[0], found[1], data)
    except ScopeEscape:
        raise PolicyDenied(f"write to `{path}` outside --allow-fs-write", effect="io",
                           path=path) from None
    except OSError as e:
        return err(os_error_text(e))
    return ok(None)


def _input_stream(h):
    stream = h.session.input
    if stream is None:
        stdin = sys.stdin
        stream = getattr(stdin, "buffer", stdin)
    return stream


def io_readline(h, args):
    """``Some(line)`` without its ``\n`` / ``\r\n``, ``None`` at end of input
    (or when the input cannot be read, as in the reference). Beyond it: a
    line is bounded (the rest of an over-long line is skipped, never held)
    and one that is not UTF-8 is an ``EffectError``, not a silent ``None``."""
    cap = h.session.limits.readline_bytes
    s = h.session
    with s.input_lock:  # one reader at a time: lines are never interleaved
        stream = _input_stream(h)
        if stream is None:
            return NONE
        try:
            line = stream.readline(cap + 1)
            if len(line) > cap and not line.endswith(b"\n" if isinstance(line, bytes) else "\n"):
                rest = line
                while rest and not rest.endswith(b"\n" if isinstance(rest, bytes) else "\n"):
                    rest = stream.readline(1 << 16)
                raise EffectError(f"io.readline: line longer than {cap} bytes")
        except (OSError, ValueError):  # closed or unreadable: the reference's None
            return NONE
    if not line:
        return NONE
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise EffectError("io.readline: stream did not contain valid UTF-8") from None
    elif not isinstance(line, str):
        raise EffectError("io.readline: the input stream returned neither bytes nor str")
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    elif line.endswith("\r"):  # the reference strips a lone trailing \r too
        line = line[:-1]
    return some(line)


def io_argv(h, args):
    return list(h.session.program_args)


ROWS = [
    ("io", "print", "io", io_print),
    ("io", "readline", "io", io_readline),
    ("io", "argv", "io", io_argv),
    ("io", "read", "io", io_read),
    ("io", "write", "io", io_write),
]
