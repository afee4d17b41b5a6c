"""The portable ``openat2``: a path walked from a directory descriptor one
component at a time, where the kernel has no ``openat2`` (macOS, the BSDs,
old or seccomp-filtered Linux) or ``LEXFAST_FORCE_PORTABLE=1`` asks for it.

:func:`walk_open` takes ``openat2``'s arguments and keeps its guarantees for
the ``resolve`` flags lexfast uses:

- every component is opened with ``openat(dir, name, O_NOFOLLOW |
  O_DIRECTORY)`` from the descriptor of the one before (the last with
  ``O_NOFOLLOW`` and the caller's flags), so the kernel never follows a
  symlink on the way: a component swapped for one between two steps makes
  that step fail, and the walk then reads the link itself;
- symlinks are resolved here, by their text: under ``RESOLVE_BENEATH`` an
  absolute target, or a ``..`` that would climb above the starting
  directory, is ``EXDEV``; under ``RESOLVE_NO_SYMLINKS`` any link is
  ``ELOOP``; more than 40 links is ``ELOOP``;
- ``..`` pops the walk's own stack of descriptors (never the kernel's
  ``..``), so a directory moved out from under the walk cannot take it
  above the start;
- a magic link (a procfs link whose text is absolute or ``type:[inode]``:
  ``/proc/<pid>/fd/*``, ``exe``, ``cwd``, ``ns/*``) is ``ELOOP`` under
  ``RESOLVE_NO_MAGICLINKS``: its text is never walked as a path.

What the walk cannot do that ``openat2`` does: on a system without
``O_PATH`` the directories on the way are opened ``O_RDONLY``, so a
directory that may be searched but not read (mode ``0o111``) is ``EACCES``.
"""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat


def force_portable() -> bool:
    """``LEXFAST_FORCE_PORTABLE=1``: every portable fallback on Linux too
    (this walk for ``openat2``, no ``O_PATH``, a pipe for ``eventfd``,
    ``selectors`` for ``epoll``, no pidfds), so the code macOS and the BSDs
    run is tested here."""
    return os.environ.get("LEXFAST_FORCE_PORTABLE", "").strip() not in ("", "0")


#: How a path is opened only to be looked at (``fstat``, a directory for
#: ``*at`` calls): ``O_PATH`` on Linux; elsewhere (or forced) a non-blocking
#: read-only open, which needs read permission, opens a device or FIFO
#: without blocking and refuses a socket (``ENXIO``).
#: ``O_PATH`` itself, or 0 where :data:`O_PATH_LIKE` is a real open: only a
#: real ``O_PATH`` descriptor may skip judging what it landed on (it cannot
#: be read), so callers test ``flags & HAVE_O_PATH``, never the stand-in.
HAVE_O_PATH = os.O_PATH if hasattr(os, "O_PATH") and not force_portable() else 0
O_PATH_LIKE = HAVE_O_PATH or os.O_RDONLY | os.O_NONBLOCK

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08

#: Linux's MAXSYMLINKS (40); macOS allows 32 per lookup, the walk 40 per open.
MAX_LINKS = 40
_AT_FDCWD = -100
_O_PATH = getattr(os, "O_PATH", 0)
#: how each directory on the way is held
_DIR_FLAGS = (_O_PATH or os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: what a failed O_NOFOLLOW open of a symlink says: ELOOP (Linux, macOS),
#: EMLINK (FreeBSD), ENOTDIR (with O_DIRECTORY on some systems)
_LINK_ERRNOS = frozenset({_errno.ELOOP, _errno.EMLINK, _errno.ENOTDIR,
                          getattr(_errno, "EFTYPE", _errno.ELOOP)})


def _proc_dev() -> int | None:
    try:
        return os.stat("/proc").st_dev if os.path.isdir("/proc/self") else None
    except OSError:  # pragma: no cover - no procfs
        return None


_PROC_DEV = _proc_dev()


def _err(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


def _readlink(name: str, dfd: int) -> str | None:
    """The text of the symlink ``name`` in ``dfd``, or None when it is not one."""
    try:
        return os.readlink(name, dir_fd=dfd)
    except OSError as e:
        if e.errno in (_errno.EINVAL, _errno.ENOENT, _errno.ENOTDIR):
            return None  # not a link (or gone): the open's own error stands
        raise


def _is_magic(dfd: int, text: str) -> bool:
    """A procfs link that names an object, not a path (see the module doc)."""
    if _PROC_DEV is None:
        return False
    try:
        if os.fstat(dfd).st_dev != _PROC_DEV:
            return False
    except OSError:  # pragma: no cover - dfd is ours and open
        return True
    return text.startswith("/") or ":[" in text or text.startswith("anon_inode:")


def _swapped_back(name: str, dfd: int, code: int, want_dir: bool) -> bool:
    """After an ``O_NOFOLLOW`` open failed as if ``name`` were a link
    (``code``) but it no longer reads as one: whether it changed meanwhile
    (then the step is taken again) rather than being what the error said."""
    try:
        mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
    except OSError as e:
        return e.errno == _errno.ENOENT  # gone meanwhile: the step again says so
    if _stat.S_ISLNK(mode):
        return True
    if code == _errno.ENOTDIR:
        return want_dir and _stat.S_ISDIR(mode)  # it was not a directory; now it is
    return True  # ELOOP / EMLINK: it was a link when opened


def _retry(links: int, name: str, parts: list[str], path: str) -> int:
    """Take the step ``name`` again, counted as a link (a component
    swapped back and forth forever ends in ``ELOOP``, not a spin)."""
    links += 1
    if links > MAX_LINKS:
        raise _err(_errno.ELOOP, path)
    parts.append(name)
    return links


def _split(path: str) -> tuple[list[str], bool]:
    """Components of ``path`` (empty and ``.`` dropped) and whether it ends
    with a slash (the last must then be a directory)."""
    parts = [p for p in path.split("/") if p and p != "."]
    return parts, path.endswith("/") or path.endswith("/.") or path in (".", "")


def walk_open(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """``openat2(dirfd, path, {flags, mode, resolve})`` done by walking (see
    the module doc). Returns a descriptor; raises ``OSError`` as the kernel
    would (``EXDEV``: the path leaves ``dirfd`` under ``RESOLVE_BENEATH``;
    ``ELOOP``: a link refused, or too many)."""
    if "\0" in path:
        raise ValueError("embedded null byte")
    if not path:
        raise _err(_errno.ENOENT, path)
    beneath = bool(resolve & RESOLVE_BENEATH)
    no_links = bool(resolve & RESOLVE_NO_SYMLINKS)
    no_magic = bool(resolve & (RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS))
    stack: list[int] = []  # descriptors we opened, innermost last
    links = 0

    def cur() -> int:
        return stack[-1] if stack else start

    def restart_at_root() -> None:
        while stack:
            os.close(stack.pop())
        stack.append(os.open("/", _DIR_FLAGS))

    try:
        if path.startswith("/"):
            if beneath:
                raise _err(_errno.EXDEV, path)
            start = _AT_FDCWD
            restart_at_root()
        else:
            start = dirfd
        parts, want_dir = _split(path)
        parts.reverse()  # a stack: the next component last
        while parts:
            name = parts.pop()
            if name == "..":
                if not beneath:  # the kernel's ``..`` (at "/" it stays there)
                    stack.append(os.open("..", _DIR_FLAGS, dir_fd=cur()))
                elif stack:  # back to the directory the walk came from
                    os.close(stack.pop())
                else:
                    raise _err(_errno.EXDEV, path)
                continue
            last = not parts
            if not last:
                try:
                    stack.append(os.open(name, _DIR_FLAGS, dir_fd=cur()))
                    continue
                except OSError as e:
                    if e.errno not in _LINK_ERRNOS:
                        raise
                    text = _readlink(name, cur())
                    if text is None:
                        if not _swapped_back(name, cur(), e.errno, True):
                            raise
                        links = _retry(links, name, parts, path)
                        continue
            else:
                final = flags | os.O_NOFOLLOW | os.O_CLOEXEC
                if want_dir and not flags & os.O_CREAT:
                    final |= os.O_DIRECTORY
                elif want_dir:
                    raise _err(_errno.EISDIR, path)
                # a trailing slash follows a link even under O_NOFOLLOW (as the kernel does)
                follow = (want_dir or not flags & os.O_NOFOLLOW) and not (
                    flags & os.O_CREAT and flags & os.O_EXCL)
                try:
                    fd = os.open(name, final, mode, dir_fd=cur())
                except OSError as e:
                    if not follow or e.errno not in _LINK_ERRNOS:
                        raise
                    text = _readlink(name, cur())
                    if text is None:
                        if not _swapped_back(name, cur(), e.errno, want_dir):
                            raise
                        links = _retry(links, name, parts, path)
                        continue
                else:
                    if not follow or not _O_PATH or not flags & _O_PATH:
                        return fd
                    try:  # O_PATH | O_NOFOLLOW opens a link itself: look
                        is_link = _stat.S_ISLNK(os.fstat(fd).st_mode)
                    except BaseException:
                        os.close(fd)
                        raise
                    if not is_link:
                        return fd
                    os.close(fd)
                    text = _readlink(name, cur())
                    if text is None:  # swapped back meanwhile: walk it again
                        links = _retry(links, name, parts, path)
                        continue
            # ``name`` is a symlink whose text is ``text``: resolve it here
            if no_links:
                raise _err(_errno.ELOOP, path)
            if no_magic and _is_magic(cur(), text):
                raise _err(_errno.ELOOP, path)
            links += 1
            if links > MAX_LINKS:
                raise _err(_errno.ELOOP, path)
            more, more_dir = _split(text)
            if last and more_dir:
                want_dir = True
            if text.startswith("/"):
                if beneath:
                    raise _err(_errno.EXDEV, path)
                restart_at_root()
            parts.extend(reversed(more))
            if last and not more:  # a link to "." or "/" itself: open where we are
                parts.append(".")
                want_dir = want_dir or not flags & os.O_CREAT
        # every component consumed by ``..`` (or none): the directory reached
        final = flags | os.O_CLOEXEC
        if flags & os.O_CREAT:
            raise _err(_errno.EISDIR, path)
        return os.open(".", final, mode, dir_fd=cur())
    finally:
        for fd in stack:
            os.close(fd)
