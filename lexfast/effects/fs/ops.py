"""std.fs: fs.exists/is_file/is_dir/stat/list_dir/walk/glob (gated ``fs_walk``,
scoped by --allow-fs-read), fs.mkdir_p/remove (``fs_write``, --allow-fs-write),
fs.copy (both).

Shapes, ``ok/err`` values and messages follow the reference; scope failures
are ``err`` values here (unlike io.read/io.write). Where we are stricter than
the reference (docs/design.md §5):

- paths are resolved before the check and compared by whole components, and
  every open goes through ``openat2(RESOLVE_BENEATH)`` from the scope root, so
  ``..``, a symlink out of the scope or a component swapped for one between
  the check and the use cannot reach outside;
- list_dir, walk and glob never return a path that resolves outside the read
  scope (a symlink pointing out is left out), never follow a symlink out of
  it, never list a directory outside it, and stop with an ``err`` past
  ``Limits.walk_entries`` results or ``Limits.listing_bytes`` bytes; glob's
  ``**`` does not descend through symlinked directories (no cycles), and a
  pattern's work (candidates, matching steps) is bounded;
- listings show normalised paths (:func:`_display_base`): the argument's
  spelling without ``.`` components or repeated ``/``, or its resolved path
  when it has a ``..``, so a long argument is not repeated into every result;
- a path argument over ``PATH_MAX`` bytes is an ``err`` naming the op;
- every open that reads (not ``O_PATH``), and every directory a name is
  created in or removed from, is judged by the filesystem it landed on
  (``scope.pseudo_fs_refusal``): procfs secrets wherever procfs is mounted,
  no writes to kernel pseudo-filesystems;
- remove never follows a symlink: a link is unlinked, a directory is removed
  with descriptors opened beneath it (``RESOLVE_NO_SYMLINKS``);
- copy writes a temp file beside the destination and renames it over, so the
  destination is the old file or the whole new one (and copying a file onto
  itself keeps it); it copies the permission bits without setuid/setgid/
  sticky, and refuses a FIFO source instead of waiting on it.

Every open beneath a scope root is ``lexfast.scope.roots``'s
(``open_scoped``, ``open_resolved``): the roots are opened once per session
(``O_PATH``, ``RootCache``) and closed with it, so ``fs.stat`` of a path
under a root costs one ``openat2``, one ``fstat`` and one ``close``. The
glob engine is in :mod:`.glob`.
"""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat

from ...kernel import COMPILED, err, expect_str, ok
from ...scope import (
    BENEATH,
    RESOLVE_NO_SYMLINKS,
    Denied,
    ScopeEscape,
    check_dir_writable,
    open_scoped,
    path_too_long,
    replace_in_dir,
    scoped,
    scoped_unchecked,
    within,
)
from ...scope import roots as scope_roots
from ...scope.paths import O_PATH_LIKE, fs_kind, is_proc_magic, openat2_works
from ...values import os_error_text

_BENEATH_NOLINKS = BENEATH | RESOLVE_NO_SYMLINKS
_O_PATH = O_PATH_LIKE | os.O_CLOEXEC
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

#: glob may examine this many directory entries per allowed result.
GLOB_SCAN_FACTOR = 16


def _read_denied(path: str):
    return err(f"fs path `{path}` outside --allow-fs-read")


def _write_denied(path: str):
    return err(f"fs path `{path}` outside --allow-fs-write")


# -- helpers -------------------------------------------------------------------

_LONG = 1024  # characters: no shorter str can be over PATH_MAX bytes


def _too_long(op: str, path: str):
    """An ``err`` naming the op and the argument when ``path`` is longer than
    ``PATH_MAX`` bytes (the caller gates on ``len(path) > _LONG`` first)."""
    why = path_too_long(path)
    return None if why is None else err(f"fs.{op}: {why}")


def _join(base: str, name: str) -> str:
    """Rust ``Path::join`` for a single file name."""
    if not base:
        return name
    if base.endswith("/"):
        return base + name
    return base + "/" + name


def _display_base(path: str, real=None) -> str:
    """The spelling a listing shows ``path`` (and its entries under): the
    caller's, made canonical (repeated ``/`` and ``.`` components dropped; one
    leading ``./`` and one trailing ``/`` kept as given), or the resolved path
    when it has a ``..`` component, which only resolving can collapse. So a
    long argument is never repeated into every result."""
    if not path:
        return path
    parts = path.split("/")
    if ".." in parts:
        return real if real is not None else os.path.realpath(path)
    kept = [p for p in parts if p and p != "."]
    if path.startswith("/"):
        out = "/" + "/".join(kept)
    elif not kept:
        return "./" if path.endswith("/") else "."
    elif parts[0] == ".":
        out = "./" + "/".join(kept)
    else:
        out = "/".join(kept)
    if kept and path.endswith("/"):
        out += "/"
    return out


class _Listing:
    """A listing's results, bounded in count (``Limits.walk_entries``) and in
    total bytes (``Limits.listing_bytes``)."""

    __slots__ = ("items", "nbytes", "cap", "byte_cap", "op")

    def __init__(self, h, op: str) -> None:
        self.items: list = []
        self.nbytes = 0
        self.cap = h.session.limits.walk_entries
        self.byte_cap = h.session.limits.listing_bytes
        self.op = op

    def add(self, s: str):
        """Append ``s`` (shown lossily); an ``err`` value past a cap, else None."""
        if len(self.items) >= self.cap:
            return err(f"fs.{self.op}: more than {self.cap} entries (the walk_entries cap)")
        s = _shown(s)
        self.nbytes += len(s) if s.isascii() else len(s.encode("utf-8"))
        if self.nbytes > self.byte_cap:
            return err(f"fs.{self.op}: results larger than {self.byte_cap} bytes "
                       f"(the listing_bytes cap)")
        self.items.append(s)
        return None


def _shown(s: str) -> str:
    """A path as a Lex Str: undecodable bytes become U+FFFD (to_string_lossy)."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return os.fsencode(s).decode("utf-8", "replace")


def _in_scope_real(real: str, roots) -> bool:
    if is_proc_magic(real):
        return False
    if not roots:
        return True
    return any(within(real, r) for r in roots)


def _link_in_scope(path: str, roots) -> bool:
    """A symlink entry is listed only if what it names resolves inside the scope."""
    return scoped_unchecked(path, roots) is not None


# -- fs_walk ops ---------------------------------------------------------------

def _fstat_path(h, path: str):
    """``os.stat_result`` of ``path`` (symlinks followed) inside the read scope."""
    fd = open_scoped(h.session, path, h.policy.read_roots, _O_PATH)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def _probe(h, path: str, want: int, op: str):
    if len(path) > _LONG and path_too_long(path):
        return _too_long(op, path)
    try:
        st = _fstat_path(h, path)
    except Denied:
        return _read_denied(path)
    except (OSError, ValueError):
        return False  # Path::exists / is_file / is_dir: any error is "no"
    return want == 0 or (st.st_mode & 0o170000) == want


def fs_exists(h, args):
    return _probe(h, expect_str(args, 0), 0, "exists")


def fs_is_file(h, args):
    return _probe(h, expect_str(args, 0), _stat.S_IFREG, "is_file")


def fs_is_dir(h, args):
    return _probe(h, expect_str(args, 0), _stat.S_IFDIR, "is_dir")


def fs_stat(h, args):
    path = expect_str(args, 0)
    if len(path) > _LONG and path_too_long(path):
        return _too_long("stat", path)
    try:
        fd = open_scoped(h.session, path, h.policy.read_roots, _O_PATH)
    except Denied:
        return _read_denied(path)
    except OSError as e:
        return err(f"fs.stat `{path}`: {os_error_text(e)}")
    except ValueError as e:  # NUL byte
        return err(f"fs.stat `{path}`: {e}")
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    fmt = st.st_mode & 0o170000
    mtime = int(st.st_mtime)
    return ok({"size": st.st_size, "mtime": mtime if mtime > 0 else 0,
               "is_dir": fmt == 0o040000, "is_file": fmt == 0o100000})


def _scan(fd: int):
    """(name, is_dir_no_follow, is_symlink) for each entry of directory ``fd``."""
    with os.scandir(fd) as it:
        for e in it:
            try:
                is_link = e.is_symlink()
                is_dir = (not is_link) and e.is_dir(follow_symlinks=False)
            except OSError:
                is_link, is_dir = False, False
            yield e.name, is_dir, is_link


def fs_list_dir(h, args):
    path = expect_str(args, 0)
    if len(path) > _LONG and path_too_long(path):
        return _too_long("list_dir", path)
    roots = h.policy.read_roots
    try:
        fd = open_scoped(h.session, path, roots, _O_DIR)
    except Denied:
        return _read_denied(path)
    except (OSError, ValueError) as e:
        return err(f"fs.list_dir `{path}`: {os_error_text(e)}")
    out = _Listing(h, "list_dir")
    try:
        base = _display_base(path)
        for name, _is_dir, is_link in _scan(fd):
            if is_link and not _link_in_scope(_join(path, name), roots):
                continue
            failed = out.add(_join(base, name))
            if failed is not None:
                return failed
    except OSError as e:
        return err(f"fs.list_dir: {os_error_text(e)}")
    finally:
        os.close(fd)
    return ok(out.items)


def fs_walk(h, args):
    path = expect_str(args, 0)
    if len(path) > _LONG and path_too_long(path):
        return _too_long("walk", path)
    roots = h.policy.read_roots
    out = _Listing(h, "walk")
    cap = out.cap
    found = scoped(path, roots)
    if found is None:
        return _read_denied(path)
    real, root = found
    root = root or "/"

    def io_err(shown, e):
        return err(f"fs.walk: IO error for operation on {shown}: {os_error_text(e)}")

    try:
        fd = scope_roots.open_resolved(h.session, real, root, _O_PATH)
    except Denied:
        return _read_denied(path)
    except OSError as e:
        return io_err(path, e)
    try:
        is_dir = _stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    base = _display_base(path, real)
    out.add(base)
    if not is_dir:
        return ok(out.items)
    # Depth first, pre-order, OS order within a directory (walkdir). Each
    # directory is opened beneath the root with no symlink allowed anywhere
    # in its path, listed, and closed: one descriptor at a time.
    stack = [(base, real, None)]
    scanned = 0
    while stack:
        shown_dir, real_dir, entries = stack[-1]
        if entries is None:
            try:
                dfd = scope_roots.open_resolved(h.session, real_dir, root, _O_DIR, _BENEATH_NOLINKS)
            except Denied:
                stack.pop()
                continue
            except OSError as e:
                return io_err(shown_dir, e)
            try:
                entries = []
                for ent in _scan(dfd):
                    scanned += 1
                    if scanned > cap * GLOB_SCAN_FACTOR:
                        return err(f"fs.walk: more than {cap} entries (the walk_entries cap)")
                    entries.append(ent)
            except OSError as e:
                return io_err(shown_dir, e)
            finally:
                os.close(dfd)
            entries.reverse()
            stack[-1] = (shown_dir, real_dir, entries)
        if not entries:
            stack.pop()
            continue
        name, child_is_dir, is_link = entries.pop()
        child_real = real_dir + "/" + name if real_dir != "/" else "/" + name
        child_shown = _join(shown_dir, name)
        if is_link:
            if not _link_in_scope(child_real, roots):
                continue
        elif not _in_scope_real(child_real, roots):
            continue
        failed = out.add(child_shown)
        if failed is not None:
            return failed
        if child_is_dir:
            stack.append((child_shown, child_real, None))
    return ok(out.items)


# -- glob (the Rust glob crate's semantics) --------------------------------------

def _abs(path: str) -> str:
    return path if path.startswith("/") else os.path.join(os.getcwd(), path)


def fs_mkdir_p(h, args):
    path = expect_str(args, 0)
    if len(path) > _LONG and path_too_long(path):
        return _too_long("mkdir_p", path)
    found = scoped(path, h.policy.write_roots)
    if found is None:
        return _write_denied(path)
    real, root = found
    root = root or "/"

    def fail(e):
        return err(f"fs.mkdir_p `{path}`: {os_error_text(e)}")

    try:
        if not os.path.isdir(root):
            os.makedirs(root, exist_ok=True)  # the operator's root, as create_dir_all would
        # Create each missing component with mkdirat from its parent's
        # descriptor and step into it without following a symlink.
        dfd = os.open(root, O_PATH_LIKE | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        return fail(e)
    try:
        for comp in [c for c in real[len(root):].split("/") if c]:
            made_err = None
            try:
                if fs_kind(dfd) is not None:
                    # a kernel pseudo-filesystem (a new cgroup, a configfs
                    # item...): only a directory that is already there is fine
                    os.stat(comp, dir_fd=dfd, follow_symlinks=False)
                    raise FileExistsError(_errno.EEXIST, os.strerror(_errno.EEXIST))
                os.mkdir(comp, 0o777, dir_fd=dfd)
            except FileExistsError as e:
                made_err = e
            except FileNotFoundError:
                return _write_denied(path)
            except OSError as e:
                return fail(e)
            try:
                nfd = os.open(comp, O_PATH_LIKE | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=dfd)
            except OSError as e:
                if e.errno == _errno.ELOOP:
                    return _write_denied(path)  # swapped for a symlink since the check
                return fail(made_err or e)
            os.close(dfd)
            dfd = nfd
    finally:
        os.close(dfd)
    return ok(None)


def _remove_tree(top_fd: int) -> None:
    """Empty the directory ``top_fd``: every descendant directory is opened
    beneath it with no symlink allowed, one descriptor at a time."""
    stack = [""]
    while stack:
        rel = stack[-1]
        dfd = scope_roots.open_dir_below(top_fd, rel)
        try:
            check_dir_writable(dfd)  # a kernel pseudo-filesystem mounted inside
            subdirs = []
            for name, is_dir, _link in _scan(dfd):
                if is_dir:
                    subdirs.append(name)
                else:
                    os.unlink(name, dir_fd=dfd)
        finally:
            os.close(dfd)
        if subdirs:
            stack.extend(f"{rel}/{d}" if rel else d for d in subdirs)
            continue
        stack.pop()
        if rel:
            parent, _, name = rel.rpartition("/")
            pfd = scope_roots.open_dir_below(top_fd, parent)
            try:
                os.rmdir(name, dir_fd=pfd)
            finally:
                os.close(pfd)


def fs_remove(h, args):
    path = expect_str(args, 0)
    if len(path) > _LONG and path_too_long(path):
        return _too_long("remove", path)
    roots = h.policy.write_roots
    # The entry itself is removed, never what a symlink names: resolve the
    # parent, keep the last component.
    apath = _abs(path).rstrip("/") or "/"
    parent, name = os.path.split(apath)
    if name in ("", ".", ".."):
        found = scoped(path, roots)
        if found is None:
            return _write_denied(path)
        parent, name = os.path.split(found[0])
        if not name:
            return err(f"fs.remove `{path}`: {os_error_text(OSError(_errno.EBUSY, ''))}")
    try:
        real_parent = os.path.realpath(parent or "/")
    except (OSError, ValueError):
        return _write_denied(path)
    target = real_parent + "/" + name if real_parent != "/" else "/" + name
    if "\0" in target or is_proc_magic(target):
        return _write_denied(path)
    if roots:
        root = next((r for r in roots if within(target, r)), None)
        if root is None:
            return _write_denied(path)
    else:
        root = "/"

    def fail(e):
        return err(f"fs.remove `{path}`: {os_error_text(e)}")

    try:
        if target == root:
            # Removing the scope root itself: its parent is the operator's.
            pfd = os.open(os.path.dirname(root) or "/", O_PATH_LIKE | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            pfd = scope_roots.open_resolved(h.session, real_parent, root, O_PATH_LIKE | os.O_DIRECTORY)
    except Denied:
        return _write_denied(path)
    except OSError as e:
        return fail(e)
    try:
        check_dir_writable(pfd)
        st = os.lstat(name, dir_fd=pfd)
        if _stat.S_ISDIR(st.st_mode):
            top = os.open(name, _O_DIR | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                if not os.path.samestat(st, os.fstat(top)):
                    return _write_denied(path)
                _remove_tree(top)
            finally:
                os.close(top)
            os.rmdir(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
    except ScopeEscape:
        return _write_denied(path)
    except OSError as e:
        if e.errno in (_errno.EXDEV, _errno.ELOOP):
            return _write_denied(path)
        return fail(e)
    finally:
        os.close(pfd)
    return ok(None)


def fs_copy(h, args):
    src = expect_str(args, 0)
    dst = expect_str(args, 1)
    for p in (src, dst):
        if len(p) > _LONG and path_too_long(p):
            return _too_long("copy", p)

    def fail(e):
        text = os_error_text(e) if isinstance(e, OSError) else str(e)
        return err(f"fs.copy {src} -> {dst}: {text}")

    if scoped(src, h.policy.read_roots) is None:
        return _read_denied(src)
    found = scoped(dst, h.policy.write_roots)
    if found is None:
        return _write_denied(dst)
    dreal, droot = found
    droot = droot or "/"
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below)
        sfd = open_scoped(h.session, src, h.policy.read_roots, os.O_RDONLY | os.O_NONBLOCK)
    except Denied:
        return _read_denied(src)
    except (OSError, ValueError) as e:
        return fail(e)
    try:
        sst = os.fstat(sfd)
        if not _stat.S_ISREG(sst.st_mode):
            return fail("the source path is neither a regular file nor a symlink to a "
                        "regular file")
        os.set_blocking(sfd, True)
        parent, name = os.path.split(dreal)
        try:
            dfd = scope_roots.open_resolved(h.session, parent or "/", droot, O_PATH_LIKE | os.O_DIRECTORY)
        except Denied:
            return _write_denied(dst)
        except OSError as e:
            return fail(e)
        try:
            try:
                check_dir_writable(dfd)
            except ScopeEscape:
                return _write_denied(dst)
            try:
                dst_st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                dst_st = None
            if dst_st is not None and _stat.S_ISDIR(dst_st.st_mode):
                return fail(IsADirectoryError(_errno.EISDIR, ""))
            if dst_st is not None and _stat.S_ISLNK(dst_st.st_mode):
                return _write_denied(dst)  # became a symlink since the check
            mode = _stat.S_IMODE(sst.st_mode) & 0o777
            replace_in_dir(dfd, name, mode, lambda tfd: _copy_fd(sfd, tfd))
        except OSError as e:
            return fail(e)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
    return ok(None)


def _copy_fd(sfd: int, dfd: int) -> None:
    try:
        while os.copy_file_range(sfd, dfd, 1 << 30):
            pass
        return
    except OSError as e:
        if e.errno not in (_errno.EXDEV, _errno.ENOSYS, _errno.EINVAL, _errno.EOPNOTSUPP):
            raise
    while True:
        chunk = os.read(sfd, 1 << 20)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(dfd, view):]


# -- the compiled fast path ------------------------------------------------------

def _probe_args(h, args, want: int, op: str):
    return _probe(h, expect_str(args, 0), want, op)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


#: whether fs.stat/exists/is_file/is_dir are the compiled ones
#: (``lexfast.effects.fs._fs_c``: the same ops, their common case in C)
FS_COMPILED = False
#: the Python ops, whichever serve (tests compare the two)
PY_OPS = {"stat": fs_stat, "exists": fs_exists, "is_file": fs_is_file, "is_dir": fs_is_dir}
# (not under LEXFAST_FORCE_PORTABLE, or where the kernel has no openat2: the
# C fast path is a native openat2, and the Python ops walk instead)
if COMPILED and not _flag("LEXFAST_NO_EXTENSIONS") and openat2_works():
    try:
        from . import _fs_c
    except ImportError:  # built without it: the Python definitions serve
        if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
            raise
    else:
        _fs_c.bind(fs_stat, _probe_args)
        fs_stat = _fs_c.fs_stat  # noqa: F811 -- the compiled twin of the op above
        fs_exists = _fs_c.fs_exists  # noqa: F811
        fs_is_file = _fs_c.fs_is_file  # noqa: F811
        fs_is_dir = _fs_c.fs_is_dir  # noqa: F811
        FS_COMPILED = True
