"""Opening beneath a scope root: the one place every effect family opens a
scoped path (io, fs, kv, sql, log, serve).

:func:`open_beneath` is the only ``openat2`` from a scope root: the kernel
keeps the walk beneath the root (``RESOLVE_BENEATH``) and off magic links,
so a component swapped for a symlink between the check and the open cannot
leave the scope, and what the open landed on is judged afterwards
(``paths.check_opened``: procfs secrets, kernel pseudo-filesystems). Where
the kernel has no ``openat2`` (or ``LEXFAST_FORCE_PORTABLE=1``) the same
open is a walk from the root one component at a time with ``O_NOFOLLOW``,
symlinks resolved by lexfast and refused when they leave the root
(:mod:`.walk`): the same guarantees.

The root's descriptor comes from a session's :class:`RootCache` (opened once
per session, ``O_PATH``, closed with it: what the fs family's hot path
needs) or is opened for the one call (:func:`open_in_scope`, the other
families). :func:`open_scoped` is the fast path for a path as the user gave
it; anything unusual there falls back to :func:`scoped` and
:func:`open_resolved`.
"""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat
import threading

from ..errors import EffectError
from ..kernel import openat2
from .paths import (
    _PROC_DEV,
    BENEATH,
    HAVE_O_PATH,
    O_PATH_LIKE,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    ScopeEscape,
    check_dir_writable,
    check_opened,
    fs_kind,
    open_at,
    openat2_works,
    scoped,
)

_AT_FDCWD = -100
_CLOEXEC = os.O_CLOEXEC
_ROOT_FLAGS = O_PATH_LIKE | os.O_DIRECTORY | os.O_CLOEXEC
_HAVE_OPENAT2 = openat2_works()  # once: open_scoped is the fs family's hot path


class Denied(Exception):
    """The path is outside the scope (or left it during the open). Not an
    ``OSError``, so an ``except OSError`` meant for the filesystem's own
    errors never swallows it (what the fs family relies on)."""


# -- scope roots as descriptors -----------------------------------------------

class RootCache:
    """Per session: an ``O_PATH`` descriptor of each scope root, opened once
    and closed with the session, so the hot path costs one ``openat2`` and
    one ``fstat``; and, per roots tuple, the entries the fast path scans.

    ``epoch`` moves (before any descriptor is closed) whenever one is dropped:
    an open that read a descriptor number before the move is thrown away, so
    a number closed and reused for something else meanwhile is never trusted.
    """

    __slots__ = ("fds", "tables", "lock", "closed", "epoch")

    def __init__(self) -> None:
        self.fds: dict = {}
        self.tables: dict = {}
        self.lock = threading.Lock()
        self.closed = False
        self.epoch = 0

    def fd(self, root: str) -> int:
        fd = self.fds.get(root)
        if fd is None:
            with self.lock:
                if self.closed:
                    raise EffectError("the handler is closed")
                fd = self.fds.get(root)
                if fd is None:
                    fd = os.open(root, _ROOT_FLAGS)
                    self.fds[root] = fd
        return fd

    def table(self, roots) -> tuple:
        t = self.tables.get(roots)
        if t is None:
            entries, complete = [], True
            for r in roots or ("/",):
                try:
                    fd = self.fd(r)
                except OSError:  # a root that does not exist (yet): the slow path reports it
                    complete = False
                    continue
                entries.append((r, r if r.endswith("/") else r + "/", fd, _has_proc(r)))
            t = tuple(entries)
            if complete:
                self.tables[roots] = t
        return t

    def forget_if_stale(self, root: str) -> bool:
        """Drop a cached root whose directory was removed since (so a root
        made again is opened afresh). True if it was dropped."""
        with self.lock:
            fd = self.fds.get(root)
            if fd is None:
                return False
            try:
                if os.fstat(fd).st_nlink > 0:
                    return False
            except OSError:
                pass
            del self.fds[root]
            self.tables.clear()
            self.epoch += 1
        os.close(fd)
        return True

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.epoch += 1
            fds = list(self.fds.values())
            self.fds.clear()
            self.tables.clear()
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


#: the session state that holds a session's :class:`RootCache`
ROOTS_STATE = "scope.roots"


def _new_roots(session) -> RootCache:
    r = RootCache()
    session.on_close(r.close)
    return r


def roots_of(session) -> RootCache:
    """The session's :class:`RootCache` (made on first use, closed with it)."""
    return session.state(ROOTS_STATE, _new_roots)


def _has_proc(root: str) -> bool:
    return root == "/" or root == "/proc" or root.startswith("/proc/")


# -- the one open beneath a root ---------------------------------------------------

def open_beneath(resolved: str, root: str, flags: int, mode: int = 0, *,
                 resolve: int = BENEATH, cache: RootCache | None = None,
                 judge: bool = True, loop_escapes: bool = True) -> int:
    """Open ``resolved`` (a path :func:`scoped` found under ``root``) so that
    the kernel keeps the walk beneath ``root`` (``""``: an open scope, no
    root, but still no magic link), and judge what it landed on
    (``judge``: :func:`check_opened`).

    Raises ``ScopeEscape`` when the kernel refused a step out of the root
    (``EXDEV``; ``ELOOP`` too when ``loop_escapes``: a magic link, which
    the fs family reports as the filesystem's error instead), when the open
    landed somewhere refused, or when ``cache`` dropped the root's
    descriptor meanwhile three times over; ``OSError`` otherwise.
    ``cache``: the session's root descriptors, else the root is opened for
    this call.
    """
    flags |= _CLOEXEC
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if not flags & os.O_CREAT and not (tmpfile and flags & tmpfile == tmpfile):
        mode = 0  # openat2 refuses a mode without O_CREAT / O_TMPFILE
    escapes = (_errno.EXDEV, _errno.ELOOP) if loop_escapes else (_errno.EXDEV,)
    if not root:
        try:
            fd = open_at(_AT_FDCWD, resolved, flags, mode, RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno == _errno.ELOOP and loop_escapes:
                raise ScopeEscape(e.errno, f"`{resolved}` goes through a magic link") from None
            raise
        return check_opened(fd, flags, resolved) if judge else fd
    if resolved == root or resolved.startswith(root if root.endswith("/") else root + "/"):
        rel = resolved[len(root):].lstrip("/") or "."
    else:  # not under the root by whole components: the kernel refuses the ``..`` (EXDEV)
        rel = os.path.relpath(resolved, root)
    if cache is None:
        dfd = os.open(root, _ROOT_FLAGS)
        try:
            fd = open_at(dfd, rel, flags, mode, resolve)
        except OSError as e:
            if e.errno in escapes:
                raise ScopeEscape(e.errno, f"`{resolved}` leaves the scope root `{root}`") from None
            raise
        finally:
            os.close(dfd)
        return check_opened(fd, flags, resolved) if judge else fd
    for attempt in (0, 1, 2):
        epoch = cache.epoch
        try:
            fd = open_at(cache.fd(root), rel, flags, mode, resolve)
        except OSError as e:
            if cache.epoch != epoch and attempt < 2:
                continue
            if e.errno in escapes:
                raise ScopeEscape(e.errno, f"`{resolved}` leaves the scope root `{root}`") from None
            if e.errno == _errno.ENOENT and attempt == 0 and cache.forget_if_stale(root):
                continue
            raise
        if cache.epoch == epoch:
            return check_opened(fd, flags, resolved) if judge else fd
        os.close(fd)  # the root descriptor was dropped meanwhile: do not trust it
    raise ScopeEscape(_errno.EXDEV, f"`{resolved}`: the scope root `{root}` was replaced")


def open_dir_below(top_fd: int, rel: str) -> int:
    """A directory below the already-open directory ``top_fd`` (``rel``
    relative to it, ``""`` for itself), walked beneath it with no symlink
    at any step: how a tree is taken apart (``fs.remove``) without leaving
    it. Not judged: the caller checks the directory before writing in it."""
    flags = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC
    return open_at(top_fd, rel or ".", flags, 0, BENEATH | RESOLVE_NO_SYMLINKS)


def open_in_scope(resolved: str, root: str, flags: int, mode: int = 0o666) -> int:
    """Open ``resolved`` (from :func:`scoped`) so that the kernel keeps the
    walk beneath ``root``, judged by what it landed on. Raises
    ``ScopeEscape`` when it would not stay beneath the root."""
    return open_beneath(resolved, root, flags, mode)


def open_resolved(session, resolved: str, root: str, flags: int, resolve: int = BENEATH) -> int:
    """:func:`open_beneath` from the session's cached root descriptor, for
    the fs family: raises :class:`Denied` (not an ``OSError``) when the path
    left the scope; a real ``O_PATH`` open is not judged (its stand-in where
    there is none is a readable descriptor, judged like any other); ``ELOOP`` stays the
    filesystem's error."""
    try:
        return open_beneath(resolved, root, flags, 0, resolve=resolve, cache=roots_of(session),
                            judge=not flags & HAVE_O_PATH, loop_escapes=False)
    except ScopeEscape:
        raise Denied from None


def _open_slow(session, path: str, roots, flags: int, resolve: int = BENEATH) -> int:
    found = scoped(path, roots)
    if found is None:
        raise Denied
    resolved, root = found
    return open_resolved(session, resolved, root or "/", flags, resolve)


def open_scoped(session, path: str, roots, flags: int) -> int:
    """Open ``path`` (as the user gave it, symlinks followed) so that the
    object reached is inside ``roots``; raises :class:`Denied` or ``OSError``.

    Fast path: a path lexically under a root is opened straight from the
    session's cached root descriptor; the kernel refuses (EXDEV) any step
    that would leave the root, and then the resolved path decides
    (:func:`open_resolved`: an absolute symlink that lands back inside, a
    ``..`` that leaves).
    """
    if "\0" in path:
        raise ValueError("file name contained an unexpected NUL byte")
    if path.startswith("/") and _HAVE_OPENAT2 and not path.startswith("/proc"):
        cache = roots_of(session)
        epoch = cache.epoch
        for root, pre, rfd, has_proc in cache.tables.get(roots) or cache.table(roots):
            if path.startswith(pre):
                rel = path[len(pre):] or "."
            elif path == root:
                rel = "."
            else:
                continue
            try:
                fd = openat2(rfd, rel, flags | _CLOEXEC, 0, BENEATH)
            except OSError as e:
                if cache.epoch != epoch:
                    break
                if e.errno == _errno.ENOENT and cache.forget_if_stale(root):
                    break  # the root was removed and perhaps made again
                if e.errno not in (_errno.EXDEV, _errno.ELOOP):
                    raise
                break
            if cache.epoch != epoch or (
                    (has_proc and os.fstat(fd).st_dev == _PROC_DEV) if flags & HAVE_O_PATH
                    else fs_kind(fd) is not None):
                # a dropped root descriptor, procfs, or (for a read) any kernel
                # pseudo-filesystem: the slow path decides on the resolved path
                os.close(fd)
                break
            return fd
    return _open_slow(session, path, roots, flags)


# -- directories and whole files beneath a root -------------------------------------

def open_parent_in_scope(resolved: str, root: str) -> tuple[int, str]:
    """An ``O_PATH`` descriptor of ``resolved``'s directory (kept beneath
    ``root``) and the final name, for ``*at`` calls that must not follow a
    swapped-in symlink (atomic writes, removals)."""
    parent, name = os.path.split(resolved)
    if not name:
        raise IsADirectoryError(_errno.EISDIR, os.strerror(_errno.EISDIR))
    fd = open_in_scope(parent or "/", root, O_PATH_LIKE | os.O_DIRECTORY)
    try:
        check_dir_writable(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def replace_in_dir(dfd: int, name: str, mode: int | None, fill) -> None:
    """Replace ``name`` in the directory ``dfd`` so that it is either the old
    file or the whole new one: ``fill(fd)`` writes a temp file beside it,
    which is fsync'd and renamed over it (never through a symlink; nothing
    half-written is left). ``mode`` None: a new file's default permissions."""
    tmp = f".{name}.lexfast-{os.getpid()}-{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o666 if mode is None else 0o600, dir_fd=dfd)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        fill(fd)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp, dir_fd=dfd)
        raise
    os.close(fd)
    try:
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        os.unlink(tmp, dir_fd=dfd)
        raise


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_file_atomic(resolved: str, root: str, data: bytes) -> None:
    """Write ``data`` to ``resolved`` atomically (:func:`replace_in_dir`),
    keeping an existing file's permissions."""
    dfd, name = open_parent_in_scope(resolved, root)
    try:
        mode = None
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if _stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(_errno.EISDIR, os.strerror(_errno.EISDIR))
            if _stat.S_ISREG(st.st_mode):
                mode = _stat.S_IMODE(st.st_mode)
        except FileNotFoundError:
            pass
        replace_in_dir(dfd, name, mode, lambda fd: write_all(fd, data))
    finally:
        os.close(dfd)


def read_file_bounded(fd: int, cap: int) -> bytes:
    """Read a whole descriptor, refusing (``OverflowError``) past ``cap`` bytes."""
    chunks = []
    total = 0
    while True:
        chunk = os.read(fd, min(1 << 20, cap + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > cap:
            raise OverflowError(f"larger than the {cap}-byte read cap")
    return b"".join(chunks)
