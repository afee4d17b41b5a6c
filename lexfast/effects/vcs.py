"""vcs.put_blob/get_blob/has_blob/ref_set/ref_get: a content-addressed blob
store and named refs, laid out as the reference's lex-store lays it out:
``<root>/blobs/<sha>`` (``sha``: the lower-case hex SHA-256 of the content's
UTF-8 bytes, as ``crypto.sha256_str``) and ``<root>/blobrefs/<ns…>/<key>``
holding a sha. Shapes and wording are the reference's: ``Ok(sha)``,
``Err("vcs.get_blob: unknown blob `{sha}`")``, ``Err("vcs.ref_get: unknown
blob ref `{ns}/{key}`")``, ``has_blob`` a Bool.

The root is ``Limits.vcs_root``, else ``$LEX_STORE_ROOT``, else
``~/.lex/store`` (the reference's order, with the operator's setting first).
Stricter than the reference, which opens it unscoped:

- the root must be inside ``--allow-fs-write`` (``Err("vcs.{op}: store root
  `{root}` outside --allow-fs-write")``), and every file is opened beneath
  the scope root (``openat2(RESOLVE_BENEATH)``) and, inside the store, with
  no symlink followed at any step, so a symlink or a swapped directory can
  lead nowhere else;
- writes are atomic (a temp file, fsync, rename: the old file or the whole
  new one, never through a symlink or into a hard link's other name);
- a blob is verified on read (its content must hash to its name: a corrupt
  one is an ``Err`` saying so) and must be a regular file with one link;
- ref names are checked (no empty, ``.``-leading or over-long component, no
  ``\\`` or control character, the key one component), and a ref holds
  1 to 64 lower-case hex digits;
- a blob is at most ``Limits.vcs_blob_bytes``.
"""

from __future__ import annotations

import errno as _errno
import hashlib
import os
import stat as _stat

from ..errors import EffectError
from ..kernel import err, expect_str, ok
from ..scope import (
    BENEATH,
    RESOLVE_NO_SYMLINKS,
    Denied,
    ScopeEscape,
    check_dir_writable,
    open_beneath,
    open_resolved,
    path_too_long,
    read_file_bounded,
    replace_in_dir,
    scoped,
    write_all,
)
from ..scope.paths import O_PATH_LIKE, open_at
from ..values import os_error_text

_HEX = frozenset("0123456789abcdef")
#: one component of a ref name, and all of one (namespace and key)
_NAME_MAX = 255
_REF_MAX = 1024
_REF_FILE_MAX = 4096
_DIR_FLAGS = O_PATH_LIKE | os.O_DIRECTORY | os.O_CLOEXEC
#: inside the store: beneath it, and no symlink anywhere
_INSIDE = BENEATH | RESOLVE_NO_SYMLINKS


class _Fail(Exception):
    """An ``Err`` text for the op."""


def store_root(h) -> str:
    """The store's directory as configured (not yet resolved or checked)."""
    root = h.session.limits.vcs_root
    if root is None:
        root = os.environ.get("LEX_STORE_ROOT") or None
    if root is None:
        root = os.path.join(os.environ.get("HOME") or ".", ".lex", "store")
    return os.fspath(root)


def _located(h, op: str) -> tuple[str, str, str]:
    """``(root as configured, resolved, scope root)``. The resolution is
    remembered per session: every open below walks from the scope root with
    no symlink at all (``RESOLVE_NO_SYMLINKS``), so a component swapped for a
    symlink since is refused by the kernel, not followed."""
    root = store_root(h)
    roots = h.policy.write_roots
    cache = h.session.state("vcs", _new_cache)
    hit = cache.get((root, roots))
    if hit is not None:
        return hit
    if (why := path_too_long(root)) is not None:
        raise _Fail(f"vcs.{op}: store root: {why}")
    found = scoped(root, roots)
    if found is None:
        raise _Fail(f"vcs.{op}: store root `{root}` outside --allow-fs-write")
    hit = (root, found[0], found[1] or "/")
    if len(cache) >= 16:
        cache.clear()
    cache[(root, roots)] = hit
    return hit


def _new_cache(session) -> dict:
    return {}


def _open_in_store(h, op: str, parts: list, flags: int) -> int:
    """Open ``<root>/<parts…>`` in one ``openat2`` from the scope root's
    cached descriptor, beneath it and through no symlink. Raises
    ``FileNotFoundError``/``NotADirectoryError`` when it is not there,
    ``_Fail`` when a symlink is in the way or the path left the scope."""
    root, resolved, scope = _located(h, op)
    target = "/".join([resolved.rstrip("/")] + parts) if parts else resolved
    try:
        return open_resolved(h.session, target, scope, flags | os.O_CLOEXEC, _INSIDE)
    except Denied:
        raise _Fail(f"vcs.{op}: store root `{root}` outside --allow-fs-write") from None
    except OSError as e:
        if e.errno in (_errno.ELOOP, _errno.EXDEV):
            raise _Fail(_symlink_text(op, root, resolved, parts)) from None
        raise


def _symlink_text(op: str, root: str, resolved: str, parts: list) -> str:
    """Which component was a symlink (for the message only: the open was
    already refused by the kernel)."""
    path = resolved
    for i, part in enumerate(parts):
        path = os.path.join(path, part)
        try:
            if _stat.S_ISLNK(os.lstat(path).st_mode):
                return f"vcs.{op}: `{'/'.join(parts[:i + 1])}` in the store is a symlink; refused"
        except OSError:
            break
    return f"vcs.{op}: store root `{root}` goes through a symlink; refused"


def _store_dir(h, op: str, parts: list) -> int:
    """An ``O_PATH`` descriptor of the store's directory ``parts`` (made,
    0700, with any missing above it, the store root included)."""
    try:
        return _open_in_store(h, op, parts, _DIR_FLAGS)
    except FileNotFoundError:
        pass
    root, resolved, scope = _located(h, op)
    try:
        top = open_beneath(scope, scope, _DIR_FLAGS, judge=False)
    except ScopeEscape:
        raise _Fail(f"vcs.{op}: store root `{root}` outside --allow-fs-write") from None
    rel = os.path.relpath(resolved, scope)
    try:
        _walk(top, ([] if rel == "." else rel.split("/")) + parts)
    except _Symlink:
        raise _Fail(_symlink_text(op, root, resolved, parts)) from None
    return _open_in_store(h, op, parts, _DIR_FLAGS)


class _Symlink(Exception):
    pass


def _walk(dfd: int, parts: list) -> None:
    """Make the missing directories (0700) of ``parts`` below the directory
    ``dfd`` (closed here), through no symlink."""
    try:
        for part in parts:
            try:
                fd = open_at(dfd, part, _DIR_FLAGS, 0, _INSIDE)
            except FileNotFoundError:
                check_dir_writable(dfd)
                try:
                    os.mkdir(part, 0o700, dir_fd=dfd)
                except FileExistsError:
                    pass
                fd = open_at(dfd, part, _DIR_FLAGS, 0, _INSIDE)
            except OSError as e:
                if e.errno in (_errno.ELOOP, _errno.EXDEV):
                    raise _Symlink from None
                raise
            os.close(dfd)
            dfd = fd
    finally:
        os.close(dfd)


def _read_file(h, op: str, parts: list, cap: int, what: str) -> bytes | None:
    """A regular file with one link, read whole (at most ``cap``); ``None``
    when it (or a directory on its way) is not there."""
    try:
        fd = _open_in_store(h, op, parts, os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return _read_regular(fd, cap, what)


def _read_regular(fd: int, cap: int, what: str) -> bytes:
    """Check and read the open file ``fd`` (closed here)."""
    try:
        st = os.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            raise _Fail(f"{what} is not a regular file")
        if st.st_nlink != 1:
            # another name for the same file: whatever wrote there did not
            # go through the store, and may be outside it
            raise _Fail(f"{what} has {st.st_nlink} hard links; refused")
        if st.st_size > cap:
            raise _Fail(f"{what} is {st.st_size} bytes, larger than the {cap}-byte cap")
        os.set_blocking(fd, True)
        try:
            return read_file_bounded(fd, cap)
        except OverflowError as e:
            raise _Fail(f"{what} is {e}") from None
    finally:
        os.close(fd)


def _write(dfd: int, name: str, data: bytes) -> None:
    check_dir_writable(dfd)
    replace_in_dir(dfd, name, 0o600, lambda fd: write_all(fd, data))


def _is_sha(s: str, exact: bool) -> bool:
    return (len(s) == 64 if exact else 0 < len(s) <= 64) and set(s) <= _HEX


def _shown(s: str) -> str:
    return s if len(s) <= 80 else s[:80] + "…"


def _op(h, op: str, fn):
    """Run ``fn()`` turning ``_Fail``/``OSError`` into ``Err("vcs.{op}: …")``."""
    try:
        return fn()
    except _Fail as e:
        text = str(e)
        return err(text if text.startswith("vcs.") else f"vcs.{op}: {text}")
    except ScopeEscape as e:  # a pseudo-filesystem, or the root left the scope
        return err(f"vcs.{op}: store root `{store_root(h)}`: {e.strerror or e}")
    except OSError as e:
        return err(f"vcs.{op}: {os_error_text(e)}")


# -- blobs -------------------------------------------------------------------------

def _encode(op: str, content: str, cap: int) -> bytes:
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _Fail(f"content is not valid UTF-8: {e.reason}") from None
    if len(data) > cap:
        raise _Fail(f"content is {len(data)} bytes, larger than Limits.vcs_blob_bytes ({cap})")
    return data


def _blob_bytes(h, op: str, sha: str) -> bytes | None:
    """The verified content of blob ``sha``; ``None`` when it is not there."""
    if not _is_sha(sha, exact=True):
        return None
    data = _read_file(h, op, ["blobs", sha], h.session.limits.vcs_blob_bytes, f"blob `{sha}`")
    if data is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise _Fail(f"blob `{sha}` is corrupt: its content hashes to {actual}")
    return data


def vcs_put_blob(h, args):
    content = expect_str(args, 0)

    def run():
        data = _encode("put_blob", content, h.session.limits.vcs_blob_bytes)
        sha = hashlib.sha256(data).hexdigest()
        try:
            held = _read_file(h, "put_blob", ["blobs", sha], len(data), f"blob `{sha}`")
        except _Fail:
            held = None  # corrupt, linked or odd: replaced below
        if held is None or hashlib.sha256(held).hexdigest() != sha:
            blobs = _store_dir(h, "put_blob", ["blobs"])
            try:
                _write(blobs, sha, data)
            finally:
                os.close(blobs)
        return ok(sha)

    return _op(h, "put_blob", run)


def vcs_get_blob(h, args):
    sha = expect_str(args, 0)

    def run():
        data = _blob_bytes(h, "get_blob", sha)
        if data is None:
            return err(f"vcs.get_blob: unknown blob `{_shown(sha)}`")
        try:
            return ok(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise _Fail(f"blob `{sha}` is not valid UTF-8") from None

    return _op(h, "get_blob", run)


def vcs_has_blob(h, args):
    sha = expect_str(args, 0)
    # the reference answers false for any failure to open the store
    try:
        return _blob_bytes(h, "has_blob", sha) is not None
    except (_Fail, OSError):
        return False


# -- refs ----------------------------------------------------------------------------

def _ref_parts(op: str, ns: str, key: str) -> list:
    """The directories of ``ns`` then ``key``, or ``_Fail`` naming the fault.
    Empty namespace components are skipped, as the reference skips them."""
    shown = f"{_shown(ns)}/{_shown(key)}"
    total = len(ns.encode("utf-8", "surrogatepass")) + len(key.encode("utf-8", "surrogatepass"))
    if total > _REF_MAX:
        raise _Fail(f"ref name `{shown}` is {total} bytes, longer than {_REF_MAX}")
    parts = [p for p in ns.split("/") if p]
    for where, part in [("namespace", p) for p in parts] + [("key", key)]:
        if where == "key" and "/" in part:
            raise _Fail(f"ref key `{_shown(key)}` contains `/`")
        if not part:
            raise _Fail("ref key is empty")
        if part.startswith("."):
            raise _Fail(f"ref {where} component `{_shown(part)}` starts with `.`")
        if "\\" in part or any(ord(c) < 0x20 or c == "\x7f" for c in part):
            raise _Fail(f"ref {where} component {_shown(repr(part))} contains `\\` or a "
                        "control character")
        try:
            n = len(part.encode("utf-8"))
        except UnicodeEncodeError:
            raise _Fail(f"ref {where} is not valid UTF-8") from None
        if n > _NAME_MAX:
            raise _Fail(f"ref {where} component is {n} bytes, longer than {_NAME_MAX}")
    return parts + [key]


def vcs_ref_set(h, args):
    ns = expect_str(args, 0)
    key = expect_str(args, 1)
    sha = expect_str(args, 2)

    def run():
        parts = _ref_parts("ref_set", ns, key)
        if not _is_sha(sha, exact=False):
            raise _Fail(f"sha `{_shown(sha)}` is not 1 to 64 lower-case hex digits")
        dfd = _store_dir(h, "ref_set", ["blobrefs"] + parts[:-1])
        try:
            _write(dfd, parts[-1], sha.encode("ascii"))
        finally:
            os.close(dfd)
        return ok(None)

    return _op(h, "ref_set", run)


def vcs_ref_get(h, args):
    ns = expect_str(args, 0)
    key = expect_str(args, 1)

    def run():
        parts = _ref_parts("ref_get", ns, key)
        data = _read_file(h, "ref_get", ["blobrefs"] + parts, _REF_FILE_MAX, f"ref `{ns}/{key}`")
        if data is None:
            return err(f"vcs.ref_get: unknown blob ref `{_shown(ns)}/{_shown(key)}`")
        text = data.decode("utf-8", "replace").strip()
        if not _is_sha(text, exact=False):
            raise _Fail(f"ref `{_shown(ns)}/{_shown(key)}` does not hold a sha")
        return ok(text)

    return _op(h, "ref_get", run)


def _checked(fn):
    """Arguments that are not Str are HARD, naming the op (the reference's
    ``expect_str``); everything else is the op's ``Err``."""
    op = fn.__name__[4:]

    def call(h, args):
        try:
            return fn(h, args)
        except EffectError as e:
            if str(e).startswith("vcs."):
                raise
            raise EffectError(f"vcs.{op}: {e}") from None

    call.__name__ = fn.__name__
    call.__doc__ = fn.__doc__
    return call


ROWS = [
    ("vcs", "put_blob", "vcs", _checked(vcs_put_blob)),
    ("vcs", "get_blob", "vcs", _checked(vcs_get_blob)),
    ("vcs", "has_blob", "vcs", _checked(vcs_has_blob)),
    ("vcs", "ref_set", "vcs", _checked(vcs_ref_set)),
    ("vcs", "ref_get", "vcs", _checked(vcs_ref_get)),
]
