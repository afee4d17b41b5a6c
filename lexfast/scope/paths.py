"""Path and binary scopes (docs/design.md §5), shared by every effect family.

The reference compares paths lexically (``Path::starts_with``), so ``..``,
symlinks and sibling prefixes escape its scopes. Here a path is made absolute
and resolved first (``..`` collapsed, symlinks followed for the part that
exists), then compared with the resolved roots by whole components. Opens go
through ``openat2(RESOLVE_BENEATH)`` from the scope root where the kernel has
it, so a path swapped for a symlink between the check and the open still
cannot leave the scope.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import re
import struct

from ..errors import EffectError
from ..kernel import openat2
from .walk import HAVE_O_PATH, O_PATH_LIKE, force_portable, walk_open  # noqa: F401 -- re-exported

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
#: the walk every scoped open takes: beneath the root, never through a magic link
BENEATH = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS

# /proc/<pid>/environ leaks secrets, /proc/<pid>/mem reads or writes another
# process, and the magic links (cwd, root, exe, fd/*, map_files/*) jump to
# places no path names. Refused under any scope, even ``/``.
_PROC_MAGIC = frozenset({"environ", "mem", "cwd", "root", "exe", "fd", "map_files"})

_have_openat2: bool | None = None

#: The longest path argument any effect takes, in bytes (UTF-8, as the kernel
#: sees it): Linux's PATH_MAX. A longer one could never be opened, and would
#: only be repeated into every result of a listing or error message.
PATH_MAX = 4096


class ScopeEscape(PermissionError):
    """The kernel refused an open that would have left the scope root."""


class PathTooLong(EffectError):
    """A path argument longer than ``PATH_MAX`` bytes."""


def path_too_long(path: str) -> str | None:
    """Why ``path`` is refused as too long (naming it, shortened), or None."""
    if len(path) <= PATH_MAX // 4:  # at most 4 UTF-8 bytes a character
        return None
    n = len(path.encode("utf-8", "surrogateescape"))
    if n <= PATH_MAX:
        return None
    return (f"path argument `{path[:48]}…` is {n} bytes, longer than PATH_MAX "
            f"({PATH_MAX} bytes)")


def check_path_arg(op: str, path) -> None:
    """Raise ``PathTooLong`` (``op: path argument … longer than PATH_MAX``)
    for a path argument of more than ``PATH_MAX`` bytes."""
    if isinstance(path, str):
        why = path_too_long(path)
        if why is not None:
            raise PathTooLong(f"{op}: {why}")


def utf8_encodable(s: str) -> bool:
    """Whether ``s`` encodes to UTF-8 (no lone surrogate from an undecodable
    file name): lmdb takes UTF-8 paths only, glob matches UTF-8 names only."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def resolve(path: str) -> str:
    """Absolute, ``..``-collapsed, symlinks followed for the part that exists.
    Raises ``ValueError`` for a NUL byte (no such path can exist)."""
    if "\0" in path:
        raise ValueError("embedded null byte")
    # realpath alone: abspath first would collapse `link/..` lexically, while
    # the kernel goes to the link target's parent.
    return os.path.realpath(path)


def resolve_root(path: str) -> str:
    return resolve(path)


def within(resolved: str, root: str) -> bool:
    """Component-wise containment: ``/data2`` is not within ``/data``."""
    if root == "/":
        return resolved.startswith("/")
    return resolved == root or resolved.startswith(root + "/")


def is_proc_magic(p: str) -> bool:
    if not (p == "/proc" or p.startswith("/proc/")):
        return False
    return any(part in _PROC_MAGIC for part in p.split("/")[2:])


def scoped(path: str, roots: tuple[str, ...]):
    """Check ``path`` against resolved ``roots`` (empty = any).

    Returns ``(resolved_path, root)`` where ``root`` is the scope root that
    contains it (``""`` when the scope is open), or ``None`` when the path is
    outside every root, names a /proc magic file, or cannot exist (NUL).
    Raises ``PathTooLong`` for a path over ``PATH_MAX`` bytes.
    """
    if not isinstance(path, str) or "\0" in path:
        return None
    why = path_too_long(path)
    if why is not None:
        raise PathTooLong(why)
    return scoped_unchecked(path, roots)


def scoped_unchecked(path: str, roots: tuple[str, ...]):
    """:func:`scoped` without the ``PATH_MAX`` check, for paths the handler
    built itself (a listed directory joined with an entry's name)."""
    if "\0" in path:
        return None
    try:
        lexical = os.path.normpath(os.path.abspath(path))
        resolved = resolve(path)
    except (ValueError, OSError):
        return None
    if is_proc_magic(lexical) or is_proc_magic(resolved):
        return None
    if not roots:
        return resolved, ""
    for root in roots:
        if within(resolved, root):
            return resolved, root
    return None


def openat2_works() -> bool:
    """Whether opens use the kernel's ``openat2`` (else :func:`open_at`
    walks: :mod:`.walk`). Decided once per process."""
    global _have_openat2
    if _have_openat2 is None:
        if force_portable():
            _have_openat2 = False
            return False
        try:
            fd = openat2(-100, "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, 0, 0)  # AT_FDCWD
        except OSError as e:
            # only "no such syscall" (or a seccomp filter refusing it) means
            # no openat2: EMFILE/ENOMEM at the first probe must not switch
            # RESOLVE_BENEATH off for the rest of the process
            if e.errno in (_errno.ENOSYS, _errno.EPERM):
                _have_openat2 = False
                return False
            return True  # the syscall exists; its errors surface at each open
        else:
            os.close(fd)
            _have_openat2 = True
    return _have_openat2


def open_at(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    """``openat2(dirfd, path, flags, mode, resolve)``: the kernel's where it
    has one, else the component walk (:func:`.walk.walk_open`) with the same
    guarantees for ``RESOLVE_BENEATH``, ``RESOLVE_NO_SYMLINKS`` and
    ``RESOLVE_NO_MAGICLINKS``."""
    if openat2_works():
        return openat2(dirfd, path, flags, mode, resolve)
    return walk_open(dirfd, path, flags, mode, resolve)


def _proc_dev() -> int | None:
    try:
        return os.stat("/proc").st_dev
    except OSError:  # pragma: no cover - no procfs
        return None


_PROC_DEV = _proc_dev()

# -- what an open landed on: kernel pseudo-filesystems ----------------------------
#
# A path check cannot know where procfs is mounted (a second mount at
# /host/proc is common in containers), so every open that reads or writes
# is also judged by the filesystem it landed on (``fstatfs`` ``f_type``,
# linux/magic.h):
#
# - writes (``O_WRONLY``/``O_RDWR``/``O_CREAT``/``O_TRUNC``/``O_APPEND``, and
#   creating, replacing or removing a name in a directory) are refused on
#   every filesystem below: /proc/sys, /sys, cgroups and the rest change the
#   kernel, not a file;
# - reads are refused on debugfs, tracefs, securityfs, bpf, pstore, efivarfs
#   and nsfs (kernel memory, keys, firmware variables, namespaces);
# - on procfs, reads are refused of the per-process files that leak secrets
#   or reach other processes (``_PROC_PID_DENY``, under ``<pid>``, ``self``,
#   ``thread-self`` and ``task/<tid>``) and of the system files in
#   ``_PROC_TOP_DENY``; on sysfs, of ``firmware/`` (raw ACPI and DMI tables).
#   Other procfs and sysfs files (cpuinfo, meminfo, <pid>/status, /proc/sys
#   values, ...) read as before. Where the landed path cannot be told (no
#   /proc/self/fd), procfs is refused whole.

PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
_PSEUDO_FS = {
    PROC_SUPER_MAGIC: "procfs",
    SYSFS_MAGIC: "sysfs",
    0x64626720: "debugfs",
    0x74726163: "tracefs",
    0x73636673: "securityfs",
    0x0027E0EB: "cgroupfs",
    0x63677270: "cgroup2fs",
    0x62656570: "configfs",
    0xCAFE4A11: "bpf",
    0x6165676C: "pstore",
    0xDE5E81E4: "efivarfs",
    0x42494E4D: "binfmt_misc",
    0xF97CFF8C: "selinuxfs",
    0x43415D53: "smackfs",
    0x65735543: "fusectl",
    0x6E736673: "nsfs",
    0x19800202: "mqueue",
    0x00001CD1: "devpts",
    0x67596969: "rpc_pipefs",
}
_NO_READ_FS = frozenset({"debugfs", "tracefs", "securityfs", "bpf", "pstore", "efivarfs",
                         "nsfs"})
#: /proc/<pid>/<name> (and task/<tid>/<name>): secrets (environ, cmdline,
#: auxv), memory and its layout (mem, maps, pagemap, ...), kernel state
#: (syscall, stack, wchan), the magic links and directories that reach other
#: files (fd, fdinfo, map_files, root, cwd, exe, ns) and LSM attributes.
_PROC_PID_DENY = frozenset({
    "environ", "mem", "cmdline", "auxv", "maps", "smaps", "smaps_rollup", "numa_maps",
    "pagemap", "syscall", "stack", "wchan", "fd", "fdinfo", "map_files", "root", "cwd",
    "exe", "ns", "attr", "personality", "io", "timers", "clear_refs",
})
#: /proc/<name>: kernel memory and logs, symbol addresses, keys, SysRq.
_PROC_TOP_DENY = frozenset({
    "kcore", "kmsg", "kallsyms", "sysrq-trigger", "kpagecount", "kpageflags", "kpagecgroup",
    "timer_list", "vmallocinfo", "keys", "key-users", "sched_debug", "modules", "iomem",
    "ioports", "slabinfo",
})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _make_fstatfs():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.fstatfs
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    # struct statfs starts with ``__fsword_t f_type`` (a long) on Linux.
    fmt = "l"

    def fs_magic(fd: int) -> int:
        buf = ctypes.create_string_buffer(256)  # larger than any struct statfs
        if fn(fd, buf) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return struct.unpack_from(fmt, buf)[0] & 0xFFFFFFFF

    return fs_magic


_fs_magic = _make_fstatfs()


def fs_kind(fd: int, st=None) -> str | None:
    """The kernel pseudo-filesystem ``fd`` is on (``"procfs"``, ``"sysfs"``,
    ...), or None for an ordinary one. Filesystems on a block device (a
    non-zero major) are never pseudo-filesystems: one ``fstat`` decides."""
    if st is None:
        st = os.fstat(fd)
    if os.major(st.st_dev) != 0:
        return None
    if _fs_magic is None:  # pragma: no cover - no fstatfs: the /proc device only
        return "procfs" if st.st_dev == _PROC_DEV else None
    return _PSEUDO_FS.get(_fs_magic(fd))


_MOUNTINFO_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _MOUNTINFO_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _fs_relative(fd: int, landed: str) -> list | None:
    """The components of what ``fd`` opened, from its filesystem's own root
    (``/proc/<pid>/environ`` is ``["<pid>", "environ"]`` wherever procfs is
    mounted, and also through a bind mount of ``/proc/<pid>`` or of the file
    itself): the mount's root within the filesystem (mountinfo) joined with
    ``landed`` beneath the mount point. None when it cannot be told."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
            mnt_id = next((line.split()[1] for line in f if line.startswith("mnt_id:")), None)
        if mnt_id is None:
            return None
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            fields = next((line.split() for line in f if line.split(" ", 1)[0] == mnt_id), None)
    except (OSError, IndexError, ValueError):
        return None
    if fields is None or len(fields) < 5:
        return None
    root, point = _unescape(fields[3]), _unescape(fields[4])
    if landed == point:
        below = ""
    elif landed.startswith(point.rstrip("/") + "/"):
        below = landed[len(point.rstrip("/")):]
    else:
        return None
    return [p for p in (root + "/" + below).split("/") if p]


def pseudo_fs_refusal(fd: int, flags: int, resolved: str | None = None) -> str | None:
    """Why the open ``fd`` (made with ``flags`` for ``resolved``) must not be
    used, or None. See the comment above ``PROC_SUPER_MAGIC``."""
    st = os.fstat(fd)
    kind = fs_kind(fd, st)
    if kind is None:
        return None
    if flags & _WRITE_FLAGS:
        return f"writes to {kind} are refused"
    if kind in _NO_READ_FS:
        return f"{kind} is not readable"
    if kind not in ("procfs", "sysfs"):
        return None
    try:
        landed = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"{kind}: cannot tell which file was opened"
    if resolved is not None and landed != resolved:
        return f"`{resolved}` was swapped for a {kind} file"
    rel = _fs_relative(fd, landed)
    if rel is None:
        return f"{kind}: cannot tell which file was opened"
    if kind == "sysfs":
        return "sysfs firmware tables are not readable" if rel[:1] == ["firmware"] else None
    if not rel:
        return None
    if rel[0] in _PROC_TOP_DENY:
        return f"/proc/{rel[0]} is not readable"
    if rel[0].isdigit() or rel[0] in ("self", "thread-self"):
        bad = next((p for p in rel[1:] if p in _PROC_PID_DENY), None)
        if bad is not None:
            return f"procfs per-process `{bad}` is not readable"
    return None


def check_opened(fd: int, flags: int, resolved: str | None = None) -> int:
    """Judge an open by what it landed on (:func:`pseudo_fs_refusal`):
    ``fd`` back, or closed and ``ScopeEscape``."""
    try:
        why = pseudo_fs_refusal(fd, flags, resolved)
    except BaseException:
        os.close(fd)
        raise
    if why is None:
        return fd
    os.close(fd)
    raise ScopeEscape(_errno.EACCES, why)


def check_dir_writable(dfd: int) -> None:
    """Raise ``ScopeEscape`` when names in the directory ``dfd`` must not be
    created, replaced or removed (it is on a kernel pseudo-filesystem)."""
    kind = fs_kind(dfd)
    if kind is not None:
        raise ScopeEscape(_errno.EACCES, f"writes to {kind} are refused")
