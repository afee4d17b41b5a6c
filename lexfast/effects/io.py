"""io.print, io.read, io.write.

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

from ..errors import PolicyDenied
from ..kernel import err, expect_str, ok
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


def _read_target(h, path: str):
    """(resolved, root) for an ``io.read`` of ``path``, or a ``PolicyDenied``."""
    read_root = h.session.read_root
    target = path
    roots = h.policy.read_roots
    if read_root is not None:
        # The reference joins without confining: read_root/../../etc/passwd
        # escaped it. Here the joined path must stay beneath the root.
        target = os.path.join(read_root, path.lstrip("/"))
        if scoped(target, (read_root,)) is None:
            raise PolicyDenied(f"read of `{path}` outside the read root", effect="io", path=path)
    found = scoped(target, roots)
    if found is None:
        raise PolicyDenied(f"read of `{path}` outside --allow-fs-read", effect="io", path=path)
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
        resolved, root, _ = _read_target(h, path)
    except PathTooLong as e:  # read_root joined with the path
        return err(f"io.read: {e}")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (only regular
        # files are read, below).
        fd = open_in_scope(resolved, root, os.O_RDONLY | os.O_NONBLOCK)
    except ScopeEscape:
        raise PolicyDenied(f"read of `{path}` outside --allow-fs-read", effect="io",
                           path=path) from None
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


ROWS = [
    ("io", "print", "io", io_print),
    ("io", "read", "io", io_read),
    ("io", "write", "io", io_write),
]
