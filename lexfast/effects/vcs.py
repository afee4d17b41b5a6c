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
    ScopeEscape,
    check_dir_writable,
    open_beneath,
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


def _open_root(h, op: str, create: bool) -> int:
    """An ``O_PATH`` descriptor of the store's directory, opened beneath its
    scope root (made when ``create``); ``None`` when it does not exist."""
    root = store_root(h)
    if (why := path_too_long(root)) is not None:
        raise _Fail(f"vcs.{op}: store root: {why}")
    found = scoped(root, h.policy.write_roots)
    if found is None:
        raise _Fail(f"vcs.{op}: store root `{root}` outside --allow-fs-write")
    resolved, scope = found
    scope = scope or "/"
    try:
        top = open_beneath(scope, scope, _DIR_FLAGS, judge=False)
    except ScopeEscape:
        raise _Fail(f"vcs.{op}: store root `{root}` outside --allow-fs-write") from None
    rel = os.path.relpath(resolved, scope)
    try:
        # the rest of the way with no symlink: `resolved` has them resolved
        # already, so one met now was put there since the check
        return _walk(top, [] if rel == "." else rel.split("/"), create, f"store root `{root}`")
    except ScopeEscape:
        raise _Fail(f"vcs.{op}: store root `{root}` outside --allow-fs-write") from None
    except _Missing:
        return -1
    except OSError as e:
        raise _Fail(f"vcs.{op}: store root `{root}`: {os_error_text(e)}") from None


class _Missing(Exception):
    pass


def _walk(dfd: int, parts: list, create: bool, what: str) -> int:
    """Descend ``parts`` from the directory ``dfd`` (consumed: closed here)
    with no symlink, making missing directories (0700) when ``create``;
    the last directory's ``O_PATH`` descriptor. ``_Missing`` when one does
    not exist and not ``create``."""
    try:
        for part in parts:
            try:
                fd = open_at(dfd, part, _DIR_FLAGS, 0, _INSIDE)
            except FileNotFoundError:
                if not create:
                    raise _Missing from None
                check_dir_writable(dfd)
                try:
                    os.mkdir(part, 0o700, dir_fd=dfd)
                except FileExistsError:
                    pass
                fd = open_at(dfd, part, _DIR_FLAGS, 0, _INSIDE)
            except OSError as e:
                if e.errno in (_errno.ELOOP, _errno.EXDEV):
                    raise _Fail(f"{what} goes through a symlink; refused") from None
                if e.errno == _errno.ENOTDIR and not create:
                    raise _Missing from None
                raise
            os.close(dfd)
            dfd = fd
    except BaseException:
        os.close(dfd)
        raise
    return dfd


def _read_regular(dfd: int, name: str, cap: int, what: str) -> bytes | None:
    """A regular file with one link in ``dfd``, read whole (at most ``cap``);
    ``None`` when absent."""
    try:
        fd = open_at(dfd, name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, 0, _INSIDE)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (_errno.ELOOP, _errno.EXDEV):
            raise _Fail(f"{what} is a symlink; refused") from None
        raise
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
    root = _open_root(h, op, create=False)
    if root < 0:
        return None
    try:
        blobs = _walk(root, ["blobs"], False, "blobs directory")
    except _Missing:
        return None
    try:
        data = _read_regular(blobs, sha, h.session.limits.vcs_blob_bytes, f"blob `{sha}`")
    finally:
        os.close(blobs)
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
        root = _open_root(h, "put_blob", create=True)
        blobs = _walk(root, ["blobs"], True, "blobs directory")
        try:
            try:
                held = _read_regular(blobs, sha, len(data), f"blob `{sha}`")
            except _Fail:
                held = None  # corrupt or odd: replaced below
            if held is None or hashlib.sha256(held).hexdigest() != sha:
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
        root = _open_root(h, "ref_set", create=True)
        dfd = _walk(root, ["blobrefs"] + parts[:-1], True, "ref namespace")
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
        unknown = err(f"vcs.ref_get: unknown blob ref `{_shown(ns)}/{_shown(key)}`")
        parts = _ref_parts("ref_get", ns, key)
        root = _open_root(h, "ref_get", create=False)
        if root < 0:
            return unknown
        try:
            dfd = _walk(root, ["blobrefs"] + parts[:-1], False, "ref namespace")
        except _Missing:
            return unknown
        try:
            data = _read_regular(dfd, parts[-1], _REF_FILE_MAX, f"ref `{ns}/{key}`")
        finally:
            os.close(dfd)
        if data is None:
            return unknown
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
