"""std.fs: fs.exists/is_file/is_dir/stat/list_dir/walk/glob (gated ``fs_walk``,
scoped by --allow-fs-read), fs.mkdir_p/remove (``fs_write``, --allow-fs-write),
fs.copy (both).

Shapes, ``ok/err`` values and messages follow the reference; scope failures
are ``err`` values here (unlike io.read/io.write). Where we are stricter than
the reference (DESIGN.md §5):

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

The scope roots are opened once per session (``O_PATH``) and closed with it,
so ``fs.stat`` of a path under a root costs one ``openat2``, one ``fstat`` and
one ``close``.
"""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat
import threading

from ..core import err, expect_str, ok, openat2
from ..errors import EffectError
from ..scope import (
    ScopeEscape,
    _is_proc_magic,
    _openat2_works,
    check_dir_writable,
    check_opened,
    fs_kind,
    path_too_long,
    replace_in_dir,
    scoped,
    scoped_unchecked,
    within,
)
from ..values import os_error_text

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS
_BENEATH_NOLINKS = _BENEATH | RESOLVE_NO_SYMLINKS
_CLOEXEC = os.O_CLOEXEC
_O_PATH = os.O_PATH | os.O_CLOEXEC
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

#: glob may examine this many directory entries per allowed result.
GLOB_SCAN_FACTOR = 16


class _Denied(Exception):
    """The path is outside the scope (or left it during the open)."""


def _read_denied(path: str):
    return err(f"fs path `{path}` outside --allow-fs-read")


def _write_denied(path: str):
    return err(f"fs path `{path}` outside --allow-fs-write")


# -- scope roots as descriptors -----------------------------------------------

try:
    _PROC_DEV = os.stat("/proc").st_dev
except OSError:  # pragma: no cover - no procfs
    _PROC_DEV = None

_HAVE_OPENAT2 = _openat2_works()


class _Roots:
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
                    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
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


def _new_roots(session) -> _Roots:
    r = _Roots()
    session.on_close(r.close)
    return r


def _roots(session) -> _Roots:
    return session.state("fs", _new_roots)


def _root_fd(session, root: str) -> int:
    return _roots(session).fd(root)


def _has_proc(root: str) -> bool:
    return root == "/" or root == "/proc" or root.startswith("/proc/")


def _open_slow(h, path: str, roots, flags: int, resolve: int = _BENEATH) -> int:
    found = scoped(path, roots)
    if found is None:
        raise _Denied
    resolved, root = found
    return _open_resolved(h, resolved, root or "/", flags, resolve)


def _judged(fd: int, flags: int, resolved: str) -> int:
    """An open that reads (not ``O_PATH``) is judged by what it landed on
    (procfs files that leak secrets, kernel pseudo-filesystems: see
    ``scope.pseudo_fs_refusal``)."""
    if flags & os.O_PATH:
        return fd
    try:
        return check_opened(fd, flags, resolved)
    except ScopeEscape:
        raise _Denied from None


def _open_resolved(h, resolved: str, root: str, flags: int, resolve: int = _BENEATH) -> int:
    if not _HAVE_OPENAT2:
        return _judged(os.open(resolved, flags | os.O_CLOEXEC), flags, resolved)
    rel = resolved[len(root):].lstrip("/") or "."
    cache = _roots(h.session)
    for attempt in (0, 1, 2):
        epoch = cache.epoch
        try:
            fd = openat2(cache.fd(root), rel, flags | os.O_CLOEXEC, 0, resolve)
        except OSError as e:
            if cache.epoch != epoch and attempt < 2:
                continue
            if e.errno == _errno.EXDEV:
                raise _Denied from None
            if e.errno == _errno.ENOENT and attempt == 0 and cache.forget_if_stale(root):
                continue
            raise
        if cache.epoch == epoch:
            return _judged(fd, flags, resolved)
        os.close(fd)  # the root descriptor was dropped meanwhile: do not trust it
    raise _Denied


def open_scoped(h, path: str, roots, flags: int) -> int:
    """Open ``path`` (as the user gave it, symlinks followed) so that the
    object reached is inside ``roots``; raises ``_Denied`` or ``OSError``.

    Fast path: a path lexically under a root is opened straight from the
    cached root descriptor; the kernel refuses (EXDEV) any step that would
    leave the root, and then the resolved path decides (an absolute symlink
    that lands back inside, a ``..`` that leaves).
    """
    if "\0" in path:
        raise ValueError("file name contained an unexpected NUL byte")
    if path.startswith("/") and _HAVE_OPENAT2 and not path.startswith("/proc"):
        cache = _roots(h.session)
        epoch = cache.epoch
        for root, pre, rfd, has_proc in cache.tables.get(roots) or cache.table(roots):
            if path.startswith(pre):
                rel = path[len(pre):] or "."
            elif path == root:
                rel = "."
            else:
                continue
            try:
                fd = openat2(rfd, rel, flags | _CLOEXEC, 0, _BENEATH)
            except OSError as e:
                if cache.epoch != epoch:
                    break
                if e.errno == _errno.ENOENT and cache.forget_if_stale(root):
                    break  # the root was removed and perhaps made again
                if e.errno not in (_errno.EXDEV, _errno.ELOOP):
                    raise
                break
            if cache.epoch != epoch or (
                    (has_proc and os.fstat(fd).st_dev == _PROC_DEV) if flags & os.O_PATH
                    else fs_kind(fd) is not None):
                # a dropped root descriptor, procfs, or (for a read) any kernel
                # pseudo-filesystem: the slow path decides on the resolved path
                os.close(fd)
                break
            return fd
    return _open_slow(h, path, roots, flags)


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
    if _is_proc_magic(real):
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
    fd = open_scoped(h, path, h.policy.read_roots, _O_PATH)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def _probe(h, path: str, want: int, op: str):
    if len(path) > _LONG and path_too_long(path):
        return _too_long(op, path)
    try:
        st = _fstat_path(h, path)
    except _Denied:
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
        fd = open_scoped(h, path, h.policy.read_roots, _O_PATH)
    except _Denied:
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
        fd = open_scoped(h, path, roots, _O_DIR)
    except _Denied:
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
        fd = _open_resolved(h, real, root, _O_PATH)
    except _Denied:
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
                dfd = _open_resolved(h, real_dir, root, _O_DIR, _BENEATH_NOLINKS)
            except _Denied:
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

class PatternError(ValueError):
    def __init__(self, pos: int, msg: str):
        super().__init__(f"Pattern syntax error near position {pos}: {msg}")


_ERR_WILDCARDS = "wildcards are either regular `*` or recursive `**`"
_ERR_RECURSIVE = "recursive wildcards must form a single path component"
_ERR_RANGE = "invalid range pattern"

# tokens: ("c", ch) | ("?",) | ("*",) | ("**",) | ("[", specs) | ("!", specs)


def _char_specs(chars):
    out = []
    i = 0
    while i < len(chars):
        if i + 3 <= len(chars) and chars[i + 1] == "-":
            out.append((chars[i], chars[i + 2]))
            i += 3
        else:
            out.append((chars[i], chars[i]))
            i += 1
    return out


class Pattern:
    """One compiled glob pattern (``glob::Pattern::new``)."""

    __slots__ = ("original", "tokens", "is_recursive", "has_meta", "steps")

    def __init__(self, pattern: str):
        chars = pattern
        tokens = []
        is_recursive = False
        has_meta = False
        i = 0
        n = len(chars)
        while i < n:
            c = chars[i]
            if c == "?":
                has_meta = True
                tokens.append(("?",))
                i += 1
            elif c == "*":
                has_meta = True
                old = i
                while i < n and chars[i] == "*":
                    i += 1
                count = i - old
                if count > 2:
                    raise PatternError(old + 2, _ERR_WILDCARDS)
                if count == 2:
                    if i == 2 or chars[i - count - 1] == "/":
                        if i < n and chars[i] == "/":
                            i += 1
                        elif i != n:
                            raise PatternError(i, _ERR_RECURSIVE)
                    else:
                        raise PatternError(old - 1, _ERR_RECURSIVE)
                    if not (len(tokens) > 1 and tokens[-1] == ("**",)):
                        is_recursive = True
                        tokens.append(("**",))
                else:
                    tokens.append(("*",))
            elif c == "[":
                has_meta = True
                if i + 4 <= n and chars[i + 1] == "!":
                    j = chars.find("]", i + 3)
                    if j >= 0:
                        tokens.append(("!", _char_specs(chars[i + 2:j])))
                        i = j + 1
                        continue
                elif i + 3 <= n and chars[i + 1] != "!":
                    j = chars.find("]", i + 2)
                    if j >= 0:
                        tokens.append(("[", _char_specs(chars[i + 1:j])))
                        i = j + 1
                        continue
                raise PatternError(i, _ERR_RANGE)
            else:
                tokens.append(("c", c))
                i += 1
        self.original = pattern
        self.tokens = tokens
        self.is_recursive = is_recursive
        self.has_meta = has_meta
        self.steps = 0  # matching work done so far (the globber bounds it)

    def matches(self, name: str) -> bool:
        # Iterative wildcard matching (linear backtracking to the last star):
        # the same answers as the crate's recursion, without its depth.
        toks = self.tokens
        nt, nn = len(toks), len(name)
        ti = ni = 0
        star_t = -1
        star_n = 0
        steps = 0
        while ni < nn:
            steps += 1
            if ti < nt:
                t = toks[ti]
                kind = t[0]
                if kind == "*" or kind == "**":
                    star_t, star_n = ti, ni
                    ti += 1
                    continue
                ch = name[ni]
                if kind == "c":
                    hit = t[1] == ch
                elif kind == "?":
                    hit = True
                elif kind == "[":
                    hit = any(a <= ch <= b for a, b in t[1])
                else:
                    hit = not any(a <= ch <= b for a, b in t[1])
                if hit:
                    ti += 1
                    ni += 1
                    continue
            if star_t < 0:
                self.steps += steps
                return False
            star_n += 1
            ni = star_n
            ti = star_t + 1
        self.steps += steps
        while ti < nt and toks[ti][0] in ("*", "**"):
            ti += 1
        return ti == nt


class _PW:
    """A glob candidate: the path as shown, its resolved path, and whether it
    is a directory (following an in-scope symlink) or a symlink."""

    __slots__ = ("shown", "real", "is_dir", "is_link")

    def __init__(self, shown, real, is_dir, is_link=False):
        self.shown = shown
        self.real = real
        self.is_dir = is_dir
        self.is_link = is_link


class _GlobFailure(Exception):
    pass


#: glob may take this many name-matching steps per allowed scan (a component
#: like ``*a*a*a…b`` costs its length times the name's on each entry).
GLOB_STEP_FACTOR = 32


class _Globber:
    def __init__(self, h, roots, cap):
        self.h = h
        self.roots = roots
        self.eff_roots = roots or ("/",)
        self.cap = cap
        self.scanned = 0
        self.cands = 0
        self.out = _Listing(h, "glob")
        self.patterns: list = []
        self.seen: set = set()
        self.emitted: set = set()

    def work(self) -> None:
        """Count one candidate path; stop a pattern whose work grows past the
        bound (``.*/.*/.*/…`` doubles its candidates at every component
        without scanning anything; ``*a*a*a…`` costs steps on every name)."""
        self.cands += 1
        limit = self.cap * GLOB_SCAN_FACTOR
        if self.cands > limit or (self.cands & 63 == 0 and sum(
                p.steps for p in self.patterns) > limit * GLOB_STEP_FACTOR):
            raise _GlobFailure(f"fs.glob: the pattern needs more than {limit} candidate "
                               f"paths or {limit * GLOB_STEP_FACTOR} matching steps "
                               f"(the walk_entries cap × {GLOB_SCAN_FACTOR})")

    def in_scope(self, real) -> bool:
        return real is not None and _in_scope_real(real, self.roots)

    def toward_root(self, real) -> list:
        """The next component names leading from ``real`` (an ancestor of
        some roots, itself outside the scope) toward those roots."""
        names = []
        for r in self.eff_roots:
            if real == "/":
                rest = r[1:]
            elif r.startswith(real + "/"):
                rest = r[len(real) + 1:]
            else:
                continue
            name = rest.split("/", 1)[0]
            if name and name not in names:
                names.append(name)
        return names

    def relevant(self, real) -> bool:
        return real is not None and (self.in_scope(real) or bool(self.toward_root(real)))

    def resolve_child(self, parent_real, name, listed=False):
        """(real, is_dir, is_link) of ``parent_real/name``, or None if missing.
        A symlink found by listing is a directory only if it resolves inside
        the scope; one named by the pattern may also lead toward a root."""
        if name == ".":
            real = parent_real
        elif name == "..":
            real = os.path.dirname(parent_real) or "/"
        elif name == "":
            real = parent_real
        else:
            real = parent_real + "/" + name if parent_real != "/" else "/" + name
        try:
            st = os.lstat(real)
        except (OSError, ValueError):
            return None
        if _stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(real)
            is_dir = False
            if self.in_scope(target) or (not listed and self.relevant(target)):
                try:
                    is_dir = _stat.S_ISDIR(os.stat(target).st_mode)
                except OSError:
                    pass
            return target, is_dir, True
        return real, _stat.S_ISDIR(st.st_mode), False

    def children(self, pw: _PW):
        """The entries of directory ``pw``: listed when it is inside the
        scope, only the way toward the roots when it is an ancestor of them,
        nothing otherwise."""
        out = []
        if self.in_scope(pw.real):
            root = next((r for r in self.eff_roots if within(pw.real, r)), "/")
            try:
                dfd = _open_resolved(self.h, pw.real, root, _O_DIR, _BENEATH_NOLINKS)
            except _Denied:
                return out
            except OSError as e:
                raise _GlobFailure(f"fs.glob: attempting to read `{_shown(pw.shown)}` "
                                   f"resulted in an error: {os_error_text(e)}") from None
            try:
                for name, is_dir, is_link in _scan(dfd):
                    self.scanned += 1
                    if self.scanned > self.cap * GLOB_SCAN_FACTOR:
                        raise _GlobFailure(f"fs.glob: more than {self.cap * GLOB_SCAN_FACTOR} "
                                           f"entries scanned (the walk_entries cap × "
                                           f"{GLOB_SCAN_FACTOR})")
                    real = pw.real + "/" + name if pw.real != "/" else "/" + name
                    if is_link:
                        got = self.resolve_child(pw.real, name, listed=True)
                        if got is None:
                            continue
                        out.append((name, got[0], got[1], True))
                    else:
                        out.append((name, real, is_dir, False))
            finally:
                os.close(dfd)
        else:
            for name in self.toward_root(pw.real):
                got = self.resolve_child(pw.real, name)
                if got is not None:
                    out.append((name, got[0], got[1], got[2]))
        return out

    @staticmethod
    def child_shown(pw: _PW, name: str) -> str:
        return name if pw.shown == "." else _join(pw.shown, name)

    def _step(self, pw: _PW, s: str, got) -> _PW:
        """The candidate ``pw/s`` for a literal or a special ``s``: ``..``
        shows the directory it resolved to and ``.`` adds nothing, so
        ``L/../L/../…`` or ``.*/.*/…`` are never repeated into the results."""
        shown = got[0] if s == ".." else pw.shown if s == "." else self.child_shown(pw, s)
        return _PW(shown, got[0], got[1], got[2])

    def fill_todo(self, todo, patterns, idx, pw: _PW):
        last = len(patterns) - 1
        stack = [(idx, pw)]  # a loop, not recursion: any number of components
        while stack:
            idx, pw = stack.pop()
            key = (idx, pw.shown, pw.real)
            if key in self.seen:
                continue  # the same candidate reached another way (`.`, `..`)
            self.seen.add(key)
            self.work()
            pat = patterns[idx]
            nxts = []
            if not pat.has_meta:
                s = pat.original
                special = s in (".", "..")
                if (special and not pw.is_dir) or (not s and pw.shown == "."):
                    continue  # the empty path never exists
                got = self.resolve_child(pw.real, s) if pw.real is not None else None
                if got is None or not self.relevant(got[0]):
                    continue
                nxts.append(self._step(pw, s, got))
            elif pw.is_dir:
                kids = self.children(pw)
                kids = [k for k in kids if _utf8(k[0])]
                kids.sort(key=lambda k: k[0], reverse=True)
                for name, real, is_dir, is_link in kids:
                    todo.append((_PW(self.child_shown(pw, name), real, is_dir, is_link), idx))
                if pat.tokens and pat.tokens[0] == ("c", "."):
                    for special in (".", ".."):
                        if pat.matches(special):
                            got = self.resolve_child(pw.real, special)
                            if got is not None and self.relevant(got[0]):
                                nxts.append(self._step(pw, special, got))
            for nxt in reversed(nxts):  # the first is handled first, as the recursion did
                if idx == last:
                    todo.append((nxt, -1))
                else:
                    stack.append((idx + 1, nxt))

    def run(self, pattern: str) -> list:
        Pattern(pattern)  # the whole pattern first, as the crate does
        if pattern.startswith("/"):
            root_len = 1
            scope = _PW("/", "/", True)
        else:
            root_len = 0
            cwd = os.path.realpath(os.getcwd())
            scope = _PW(".", cwd, os.path.isdir(cwd))
        comps = pattern[root_len:].split("/")
        if comps and comps[-1] == "":
            comps.pop()  # split_terminator
        patterns = [Pattern(c) for c in comps]
        if root_len == len(pattern):
            patterns.append(Pattern(""))
        self.patterns = patterns
        require_dir = pattern.endswith("/")
        todo: list = []
        results: list = []
        if not patterns:
            return results
        self.fill_todo(todo, patterns, 0, scope)
        last = len(patterns) - 1
        while todo:
            pw, idx = todo.pop()
            self.work()
            if idx == -1:
                if not (require_dir and not pw.is_dir):
                    self.emit(results, pw)
                continue
            if patterns[idx].is_recursive:
                nxt = idx
                while nxt + 1 < len(patterns) and patterns[nxt + 1].is_recursive:
                    nxt += 1
                # ``**`` never descends through a symlink (no cycles).
                if pw.is_dir:
                    if not pw.is_link:
                        self.fill_todo(todo, patterns, nxt, pw)
                    if nxt == last:
                        self.emit(results, pw)
                        continue
                    idx = nxt + 1
                elif nxt == last:
                    continue
                else:
                    idx = nxt + 1
            name = pw.shown.rsplit("/", 1)[-1]
            if not _utf8(name):
                continue
            if patterns[idx].matches(name):
                if idx == last:
                    if not require_dir or pw.is_dir:
                        self.emit(results, pw)
                else:
                    self.fill_todo(todo, patterns, idx + 1, pw)
        return self.out.items

    def emit(self, results, pw: _PW):
        if not self.in_scope(pw.real):
            return  # silently dropped, as the reference filters results
        if pw.shown in self.emitted:
            return  # reached twice (`D/*/..` from every subdirectory)
        self.emitted.add(pw.shown)
        failed = self.out.add(pw.shown)
        if failed is not None:
            raise _GlobFailure(failed.args[0])


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def fs_glob(h, args):
    pattern = expect_str(args, 0)
    if len(pattern) > _LONG and path_too_long(pattern):
        return _too_long("glob", pattern)
    if "\0" in pattern:
        return ok([])
    g = _Globber(h, h.policy.read_roots, h.session.limits.walk_entries)
    try:
        return ok(g.run(pattern))
    except PatternError as e:
        return err(f"fs.glob: {e}")
    except _GlobFailure as e:
        return err(str(e))
    except RecursionError:
        return err("fs.glob: pattern has too many components")


# -- fs_write ops --------------------------------------------------------------

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
        dfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
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
                nfd = os.open(comp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
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
        dfd = openat2(top_fd, rel or ".", _O_DIR, 0, _BENEATH_NOLINKS) \
            if _openat2_works() else os.open(rel or ".", _O_DIR | os.O_NOFOLLOW, dir_fd=top_fd)
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
            pfd = openat2(top_fd, parent or ".", _O_DIR, 0, _BENEATH_NOLINKS) \
                if _openat2_works() else os.open(parent or ".", _O_DIR, dir_fd=top_fd)
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
    if "\0" in target or _is_proc_magic(target):
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
            pfd = os.open(os.path.dirname(root) or "/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            pfd = _open_resolved(h, real_parent, root, os.O_PATH | os.O_DIRECTORY)
    except _Denied:
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
        sfd = open_scoped(h, src, h.policy.read_roots, os.O_RDONLY | os.O_NONBLOCK)
    except _Denied:
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
            dfd = _open_resolved(h, parent or "/", droot, os.O_PATH | os.O_DIRECTORY)
        except _Denied:
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


ROWS = [
    ("fs", "exists", "fs_walk", fs_exists),
    ("fs", "is_file", "fs_walk", fs_is_file),
    ("fs", "is_dir", "fs_walk", fs_is_dir),
    ("fs", "stat", "fs_walk", fs_stat),
    ("fs", "list_dir", "fs_walk", fs_list_dir),
    ("fs", "walk", "fs_walk", fs_walk),
    ("fs", "glob", "fs_walk", fs_glob),
    ("fs", "mkdir_p", "fs_write", fs_mkdir_p),
    ("fs", "remove", "fs_write", fs_remove),
    ("fs", "copy", ("fs_walk", "fs_write"), fs_copy),
]
