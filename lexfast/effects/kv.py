"""kv.open/close/get/put/delete/contains/list_prefix on lmdb (gated ``kv``).

The reference used sled; the contract is the same ordered, persistent byte
store per path. Shapes, messages and the hard/soft split follow the
reference (docs/behaviour.md §3.7); where lexfast differs:

- ``kv.open`` resolves the path (``..`` and symlinks) before checking it
  against ``--allow-fs-write``; nothing is created outside the scope. The
  store directory (and missing parents) is created and opened beneath the
  scope root with ``openat2`` (``RESOLVE_BENEATH``), and lmdb is handed
  ``/proc/self/fd/N``, so a directory swapped for a symlink between the
  check and the open is refused as for io.write.
- The store's own files, ``data.mdb`` and ``lock.mdb``, are opened first
  beneath the directory descriptor without following a symlink (one is
  followed only if it resolves inside the write scope, and then beneath its
  root) and must be regular files with one link: a FIFO would block lmdb's
  open with the GIL held (the whole interpreter), a device or socket is no
  store, and a hardlink could reach a file outside. lmdb opens files by name,
  so it is handed a private directory (random name, mode 0o100) of symlinks
  to ``/proc/self/fd/N`` for the checked descriptors: it opens exactly those
  inodes, whatever is renamed into the store meanwhile.
- ``data.mdb``'s meta pages are read from the descriptor before lmdb maps
  it: a page size lmdb cannot use, or a file shorter than the pages its
  newer meta page commits (reading them would SIGBUS the process), is
  refused; so is a store larger than ``Limits.kv_map_max``. With
  ``Limits.kv_verify`` (default) the whole file is walked by py-lmdb's
  offline verifier at its first open in the process, since lmdb trusts
  every page it reads.
- Another process in the middle of its lmdb open holds an exclusive lock
  that lmdb's own open would wait for with the GIL held: kv.open waits for
  it at most 5 s, then refuses.
- Handles belong to the session (a handler and its forks), LRU-capped at
  256; eviction, ``kv.close`` and ``handler.close()`` release the store.
- One lmdb environment per resolved path, shared and refcounted process-wide
  (lmdb forbids opening one path twice in a process); closed with its last
  handle. The process-wide table is locked only to look up, insert or
  remove an entry: an open, or a close draining its transactions, never
  holds it, so it never delays another path's open.
- Durability: every ``kv.put``/``kv.delete`` is one committed transaction.
  A commit is in the OS page cache before the call returns, so it survives
  ``kill -9`` of the process at any later instant. With ``Limits.kv_sync``
  (default True) the commit is also fsync'd, so it survives power loss;
  with ``kv_sync=False`` a power loss may drop the last commits. The first
  opener of a path in a process fixes the environment's mode; a session that
  asks for sync on an unsynced environment fsyncs after each of its commits.
- The map is large and sparse (``Limits.kv_map_size``) and doubles when full
  instead of failing, up to ``Limits.kv_map_max``.
- lmdb keys are 1..=511 bytes: a longer key is a clear error; the empty key
  (which sled allowed and lmdb refuses) is stored as the byte ``0xff``,
  which no UTF-8 key can contain.
- ``kv.list_prefix`` returns at most ``Limits.kv_list_keys`` keys.
"""

from __future__ import annotations

import collections
import errno
import os
import stat
import struct
import tempfile
import threading
import time

import lmdb

from ..errors import EffectError
from ..kernel import (
    COMPILED,
    NONE,
    err,
    expect_bytes,
    expect_handle,
    expect_str,
    next_handle,
    ok,
    some,
)
from ..scope import (
    ScopeEscape,
    open_in_scope,
    open_parent_in_scope,
    path_too_long,
    scoped,
    utf8_encodable,
)
from ..values import os_error_text

# lmdb refuses empty keys; b"\xff" never occurs in UTF-8, so it cannot clash.
_EMPTY_KEY = b"\xff"
# Waiting for this process's transactions to drain before a map resize or a
# close: each transaction is one bounded op, so this is generous.
_DRAIN_S = 30.0
_MAX_READERS = 1024
_MAX_GROWTHS = 40


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


class _PyStoreCore:
    """The fields of a store the compiled ops read (``_kv_c.StoreCore``);
    this is its twin when they are not compiled."""

    __slots__ = ("env", "blocked", "closed", "max_key", "nactive")

    def __init__(self) -> None:
        self.env = None
        self.blocked = False
        self.closed = False
        self.max_key = 0
        self.nactive = 0


_kv_c = None
if COMPILED and not _flag("LEXFAST_NO_EXTENSIONS"):
    try:
        from . import _kv_c
    except ImportError:  # built without it: the Python definitions serve
        if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
            raise

_StoreBase = _PyStoreCore if _kv_c is None else _kv_c.StoreCore


class _Store(_StoreBase):  # type: ignore[valid-type,misc]
    """One lmdb environment, shared by every handle on its path.

    ``active`` holds one entry per Python transaction of this process in
    flight (a deque: append/pop are atomic and cheap); ``nactive`` counts
    the compiled ops' read transactions (``_kv_c``). A map resize or a
    close needs no transaction in flight: under ``wlock`` it sets
    ``blocked`` and waits for both to drain; readers that see ``blocked``
    back off until it is done.

    ``wlock`` also serialises this process's writers (lmdb allows one writer
    at a time anyway), so no writer ever waits inside lmdb while holding an
    ``active`` entry. It matters for py-lmdb 3: aborting a write transaction
    there waits until no other operation is in flight on the environment,
    which never happens while readers keep coming -- so write transactions
    are aborted only with the readers held off.
    """

    __slots__ = ("path", "refs", "active", "wlock", "unblocked", "synced", "opening",
                 "closing")

    def __init__(self, path: str) -> None:
        super().__init__()
        self.env = None
        self.path = path
        self.refs = 0
        self.active = collections.deque()
        self.blocked = False
        self.closed = False
        self.wlock = threading.Lock()
        self.unblocked = threading.Event()
        self.unblocked.set()
        self.synced = False
        self.max_key = 0
        # Set (under _stores_lock) while one thread opens the environment or
        # closes it: kv.open of the same path waits on it, without the lock.
        self.opening: threading.Event | None = threading.Event()
        self.closing: threading.Event | None = None

    def attach(self, env, synced: bool) -> None:
        self.env = env
        self.synced = synced
        self.max_key = env.max_key_size()

    def _drain(self, own: int) -> bool:
        """Hold new transactions off and wait until at most ``own`` (the
        caller's) are in flight. Call with ``wlock`` held."""
        self.unblocked.clear()
        self.blocked = True
        deadline = time.monotonic() + _DRAIN_S
        delay = 0.00002
        while len(self.active) + self.nactive > own:
            if time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.005)
        return True

    def _undrain(self) -> None:
        if not self.closed:
            self.blocked = False
        self.unblocked.set()

    def exclusive(self, fn) -> bool:
        """Run ``fn()`` with no transaction of this process in flight.
        False when the store is closed or did not drain in time."""
        if not self.wlock.acquire(timeout=_DRAIN_S):
            return False
        try:
            if self.closed:
                return False
            try:
                if not self._drain(0):
                    return False
                fn()
                return True
            finally:
                self._undrain()
        finally:
            self.wlock.release()

    def writer_abort(self, txn, new_size=None) -> bool:
        """From a writer holding ``wlock`` and one ``active`` entry: abort
        its write transaction with readers held off, then optionally resize
        the map (``0``: adopt the size another process set)."""
        try:
            drained = self._drain(1)
            if drained or new_size is None:
                if txn is not None:
                    txn.abort()
            if not drained:
                return False
            if new_size is not None:
                self.env.set_mapsize(new_size)
            return True
        finally:
            self._undrain()

    def wait_unblocked(self, op: str) -> None:
        self.unblocked.wait(_DRAIN_S)
        if self.closed:
            raise EffectError(f"kv.{op}: closed or unknown Kv handle")

    def adopt_size(self) -> None:
        # Another process grew the map: adopt its size.
        self.exclusive(lambda: self.env.set_mapsize(0))

    def close(self) -> bool:
        def shut():
            self.closed = True
            self.env.close()
        return self.exclusive(shut)


_stores: dict[str, _Store] = {}
# Guards ``_stores`` and every entry's ``refs``/``opening``/``closing`` only:
# never held across I/O or a wait (an lmdb open, a drain), so opening one
# path never waits for another path's open or close.
_stores_lock = threading.Lock()
# How long kv.open waits for the same path's open or close in another thread
# (a close drains for up to 2 x _DRAIN_S).
_PATH_WAIT_S = 2 * _DRAIN_S + 5.0


_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY if hasattr(os, "O_PATH") else 0
_VIA_FD = bool(_DIR_FLAGS) and os.path.isdir("/proc/self/fd")
_STORE_FILES = ("data.mdb", "lock.mdb")


class _Refused(Exception):
    """kv.open refuses the store: ``str(self)`` says why (after the path)."""


class _Outside(Exception):
    """A store file is a symlink leading out of the write scope."""


def _open_dir(path: str, root: str) -> int:
    """An O_PATH descriptor of the store directory, kept beneath ``root``;
    missing directories are made one at a time beneath it too (sled::open
    created missing parents)."""
    try:
        return open_in_scope(path, root, _DIR_FLAGS)
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if not root or path == root or parent == path:
            os.makedirs(path, exist_ok=True)  # the root itself: the operator's
            return open_in_scope(path, root, _DIR_FLAGS)
    os.close(_open_dir(parent, root))
    dfd, name = open_parent_in_scope(path, root)
    try:
        os.mkdir(name, 0o777, dir_fd=dfd)
    except FileExistsError:
        pass
    finally:
        os.close(dfd)
    return open_in_scope(path, root, _DIR_FLAGS)


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return what
    return "not a regular file"


def _check_file(name: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        # lmdb's open() of a FIFO would block the whole interpreter (it holds
        # the GIL); a device or socket is no store either.
        raise _Refused(f"{name} is {_kind(st.st_mode)}, not a regular file")
    if st.st_nlink > 1:
        # lmdb writes the inode in place: a hardlink inside the scope to a
        # file outside would let a program rewrite that file.
        raise _Refused(f"{name} has {st.st_nlink} hard links; a store file must "
                       "have one (a hardlink could reach a file outside the scope)")


_PATH_NOFOLLOW = getattr(os, "O_PATH", 0) | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _as_path_fd(fd: int) -> int:
    """An O_PATH descriptor of the file open as ``fd`` (which is closed).
    Only O_PATH descriptors of the store files may outlive lmdb's open:
    closing any other descriptor of ``lock.mdb`` would drop every fcntl lock
    the process holds on it, lmdb's included (POSIX locks are per process
    and file), and another process would then reset the lock file under us."""
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_PATH | os.O_CLOEXEC)  # follows to the file
    finally:
        os.close(fd)


def _store_file(dfd: int, path: str, name: str, write_roots, create: bool):
    """A descriptor of the store file ``name`` (``data.mdb``/``lock.mdb``),
    never opened for I/O before it is known to be a regular file with one
    link; None when it is missing, or a new empty file with ``create``. A
    symlink is followed only if it resolves inside the write scope, and then
    beneath its root."""
    try:
        fd = os.open(name, _PATH_NOFOLLOW, dir_fd=dfd)
    except FileNotFoundError:
        if not create:
            return None
        try:
            fd = _as_path_fd(os.open(name, _CREATE, 0o644, dir_fd=dfd))
        except FileExistsError:  # made meanwhile: look again
            fd = os.open(name, _PATH_NOFOLLOW, dir_fd=dfd)
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):
            os.close(fd)
            fd = -1
            found = scoped(os.path.join(path, name), write_roots)
            if found is None:
                raise _Outside(name)
            try:
                fd = open_in_scope(found[0], found[1], _PATH_NOFOLLOW)
            except FileNotFoundError:  # a dangling link inside the scope
                if not create:
                    return None
                fd = _as_path_fd(open_in_scope(found[0], found[1], _CREATE, 0o644))
            st = os.fstat(fd)
        _check_file(name, st)
        return fd
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


# lmdb 0.9's on-disk meta page (mdb.c: MDB_page header, then MDB_meta), in
# host byte order on 64-bit builds.
_PAGEHDRSZ = 16
_P_META = 0x08
_MDB_MAGIC = 0xBEEFC0DE
_MDB_DATA_VERSION = 1
_META = struct.Struct("=8xHH4x" "II8xQ" "I44x" "48x" "QQ")  # up to mm_txnid
_MAX_PAGESIZE = 0x8000


def _meta(buf: bytes, which: int):
    """(page size, last page, txnid) of meta page ``which``, or a refusal."""
    if len(buf) < _META.size:
        raise _Refused(f"data.mdb is not an lmdb data file (meta page {which} is cut short)")
    _, flags, magic, version, _mapsize, psize, last_pg, txnid = _META.unpack_from(buf)
    if not flags & _P_META or magic != _MDB_MAGIC:
        raise _Refused(f"data.mdb is not an lmdb data file (meta page {which} is not one)")
    if version != _MDB_DATA_VERSION:
        raise _Refused(f"data.mdb is lmdb data version {version}, not {_MDB_DATA_VERSION}")
    if psize & (psize - 1) or not 256 <= psize <= _MAX_PAGESIZE:
        raise _Refused(f"data.mdb has an impossible page size {psize}")
    return psize, last_pg, txnid


def _committed_size(fd: int) -> int:
    """Bytes of ``data.mdb`` its newer meta page says are committed (0 for an
    empty, new file). lmdb maps the file and reads those pages directly: a
    file shorter than that (truncated) would SIGBUS the process on a read.
    (lmdb may leave the last pages unwritten when they are free: then only a
    whole walk can tell that every page a reader can reach is in the file.)"""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    m0 = _meta(os.pread(fd, _META.size, 0), 0)
    m1 = _meta(os.pread(fd, _META.size, m0[0]), 1)
    if m1[0] != m0[0]:
        raise _Refused("data.mdb's meta pages disagree on the page size")
    psize, last_pg, _ = m1 if m1[2] > m0[2] else m0
    need = (max(last_pg, 1) + 1) * psize
    if size < need and _verify_errors(fd):  # unless only free pages are missing
        raise _Refused(f"data.mdb is {size} bytes, shorter than the {need} its meta "
                       "page commits (truncated or damaged)")
    return need


def _verify_errors(fd: int) -> list:
    """py-lmdb's offline verifier (``lmdb.verify``, a pure-Python walk that
    never maps the file) over the whole of ``data.mdb`` through its checked
    descriptor: the problems found, empty when lmdb may trust the file."""
    try:
        from lmdb import verify
    except ImportError:  # pragma: no cover - py-lmdb without the verifier
        return ["py-lmdb has no verifier (lmdb.verify) to check it with"]
    try:
        return list(verify.verify(f"/proc/self/fd/{fd}", subdir=False))
    except Exception as e:
        return [str(e) or type(e).__name__]


_LOCK_WAIT_S = 5.0


def _lock_holder(fd: int):
    """The pid of another process holding a write lock on byte 0 of the
    lock file ``fd``, from /proc/locks, or None. lmdb's open waits for that
    lock (``F_SETLKW``) holding the GIL, so the whole interpreter would wait
    for as long as the other process keeps it."""
    st = os.fstat(fd)
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    me = os.getpid()
    try:
        with open("/proc/locks", "rb") as f:
            lines = f.read(8 << 20).decode("ascii", "replace").splitlines()
    except OSError:  # pragma: no cover - no /proc/locks
        return None
    for line in lines:
        parts = line.split()
        if len(parts) < 8 or parts[1] not in ("POSIX", "OFDLCK") \
                or parts[3] != "WRITE" or parts[5] != ident:
            continue
        if parts[6] == "0" and parts[4] != str(me):
            return parts[4]
    return None


def _wait_lock_free(fd: int) -> None:
    deadline = time.monotonic() + _LOCK_WAIT_S
    delay = 0.001
    while (holder := _lock_holder(fd)) is not None:
        if time.monotonic() > deadline:
            raise _Refused(f"lock.mdb is held exclusively by process {holder} "
                           "(its lmdb open did not finish); try again")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _lmdb_open(files: dict, limits, size_floor: int):
    """lmdb opens ``data.mdb`` and ``lock.mdb`` by name in the directory it is
    given: give it a private directory (mode 0o100, random name) of symlinks
    to ``/proc/self/fd/N`` for the descriptors checked above, so it opens
    exactly those inodes, whatever is renamed into the store meanwhile."""
    map_size = min(max(int(limits.kv_map_size), 1 << 16, size_floor), int(limits.kv_map_max))
    _wait_lock_free(files["lock.mdb"])
    tmp = tempfile.mkdtemp(prefix="lexfast-kv-")
    try:
        for name, fd in files.items():
            os.symlink(f"/proc/self/fd/{fd}", os.path.join(tmp, name))
        os.chmod(tmp, 0o100)  # nobody (but root) may rename into it
        return lmdb.open(tmp, map_size=map_size, sync=bool(limits.kv_sync),
                         max_readers=_MAX_READERS, max_dbs=0, subdir=True,
                         create=False, lock=True)
    finally:
        os.chmod(tmp, 0o700)
        for name in files:
            try:
                os.unlink(os.path.join(tmp, name))
            except FileNotFoundError:
                pass
        os.rmdir(tmp)


def _open_env(path: str, root: str, write_roots, limits):
    """A new lmdb environment on ``path``. Raises ``_Refused``, ``_Outside``,
    ``ScopeEscape``, ``OSError`` or ``lmdb.Error``."""
    if not _VIA_FD:  # pragma: no cover - no O_PATH or no procfs: by path
        os.makedirs(path, exist_ok=True)
        for name in _STORE_FILES:
            try:
                st = os.stat(os.path.join(path, name), follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                if scoped(os.path.join(path, name), write_roots) is None:
                    raise _Outside(name)
                st = os.stat(os.path.join(path, name))
            _check_file(name, st)
        cap = int(limits.kv_map_max)
        return lmdb.open(path, map_size=min(max(int(limits.kv_map_size), 1 << 16), cap),
                         sync=bool(limits.kv_sync), max_readers=_MAX_READERS, max_dbs=0,
                         subdir=True, create=True, lock=True)
    dfd = _open_dir(path, root)
    files: dict = {}
    try:
        # Every existing file is checked before a missing one is made, so
        # a refused store is left as it was.
        for create in (False, True):
            for name in _STORE_FILES:
                if files.get(name) is None:
                    files[name] = _store_file(dfd, path, name, write_roots, create)
        rfd = os.open(f"/proc/self/fd/{files['data.mdb']}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            floor = _committed_size(rfd)
            if floor > int(limits.kv_map_max):
                raise _Refused(f"the store holds {floor} bytes, more than "
                               f"Limits.kv_map_max ({int(limits.kv_map_max)})")
            if floor and limits.kv_verify:
                problems = _verify_errors(rfd)
                if problems:
                    raise _Refused(f"data.mdb fails lmdb's verifier: {problems[0]}"
                                   + (f" (and {len(problems) - 1} more)"
                                      if len(problems) > 1 else ""))
        finally:
            os.close(rfd)
        return _lmdb_open(files, limits, floor)
    finally:
        for fd in files.values():
            if fd is not None:
                os.close(fd)  # lmdb holds its own descriptors of the files
        os.close(dfd)


def _acquire(path: str, root: str, write_roots, limits) -> _Store:
    """The shared store of ``path``, opened on first use. ``_stores_lock`` is
    taken only to look up, insert or remove the entry; the open itself, and
    waiting for another thread's open or close of the same path, happen
    without it."""
    deadline = time.monotonic() + _PATH_WAIT_S
    while True:
        with _stores_lock:
            st = _stores.get(path)
            if st is None:
                st = _Store(path)
                _stores[path] = st
                break  # we open it
            wait = st.opening or st.closing
            if wait is None:
                st.refs += 1
                return st
        if not wait.wait(max(0.0, deadline - time.monotonic())):
            raise OSError(errno.ETIMEDOUT, "timed out waiting for another "
                          "open or close of the same store")
    try:
        env = _open_env(path, root, write_roots, limits)
    except BaseException:
        with _stores_lock:
            if _stores.get(path) is st:
                del _stores[path]
        st.opening.set()  # the waiters retry (and open it themselves)
        raise
    st.attach(env, bool(limits.kv_sync))
    with _stores_lock:
        st.refs += 1
        done, st.opening = st.opening, None
    done.set()
    return st


def _release(handle, st: _Store) -> None:
    """Registry ``on_evict``: a handle is gone (evicted, closed, session closed).
    The last one closes the environment, draining it without ``_stores_lock``
    (opens of the same path wait on ``st.closing``, others go on)."""
    with _stores_lock:
        st.refs -= 1
        if st.refs > 0:
            return
        st.closing = done = threading.Event()
    closed = False
    try:
        closed = st.close()
    finally:
        with _stores_lock:
            if closed and _stores.get(st.path) is st:
                del _stores[st.path]
            # else: transactions did not drain; kept for a later open to reuse.
            st.closing = None
        done.set()


def open_paths() -> list[str]:
    """Paths of the lmdb environments open in this process (tests, diagnostics)."""
    with _stores_lock:
        return sorted(p for p, st in _stores.items() if st.env is not None)


def _lmdb_text(e: Exception) -> str:
    # py-lmdb prefixes the path it was given: the private link directory.
    text = str(e)
    head, sep, tail = text.partition(": ")
    return tail if sep and "lexfast-kv-" in head else text


def _registry(h):
    return h.session.registry("kv", _release)


def _store(h, handle: int, op: str) -> _Store:
    st = h.session.registry("kv", _release).touch_get(handle)
    if st is None:
        raise EffectError(f"kv.{op}: closed or unknown Kv handle")
    return st


def _key_error(st: _Store, key: str, kb) -> str:
    if kb is None:
        return "key is not valid UTF-8"
    return f"key is {len(kb)} bytes, longer than lmdb's {st.max_key}-byte limit"


def _encode_key(st: _Store, key: str):
    """The stored form of ``key``, or None when lmdb cannot hold it."""
    try:
        kb = key.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if not kb:
        return _EMPTY_KEY
    if len(kb) > st.max_key:
        return None
    return kb


# -- ops -------------------------------------------------------------------

def kv_open(h, args):
    path = expect_str(args, 0)
    if (why := path_too_long(path)) is not None:
        return err(f"kv.open: {why}")
    found = scoped(path, h.policy.write_roots)
    if found is None:
        return err(f"kv.open: `{path}` outside --allow-fs-write")
    if not utf8_encodable(found[0]):  # lmdb takes UTF-8 paths only
        return err("kv.open: path is not valid UTF-8")
    session = h.session
    reg = session.registry("kv", _release)
    try:
        st = _acquire(found[0], found[1], h.policy.write_roots, session.limits)
    except (ScopeEscape, _Outside):
        st = None
    except _Refused as e:
        return err(f"kv.open: `{path}`: {e}")
    except lmdb.Error as e:
        return err(f"kv.open: `{path}`: {_lmdb_text(e)}")
    except OSError as e:
        return err(f"kv.open: {os_error_text(e)}")
    if st is None:
        return err(f"kv.open: `{path}` outside --allow-fs-write")
    handle = next_handle()
    reg.insert(handle, st)
    if session.closed:
        # Closed while we opened: the session will never release it.
        if reg.remove(handle) is not None:
            _release(handle, st)
        raise EffectError("kv.open: the handler is closed")
    return ok(handle)


def kv_close(h, args):
    handle = expect_handle(args, 0, "Kv handle", "Kv")
    st = _registry(h).remove(handle)
    if st is not None:
        _release(handle, st)
    return None


def _reader(op: str, contains: bool):
    """``kv.get`` (the value, ``Some``/``None``) or ``kv.contains`` (a bool):
    one body made twice, so the hot path pays no extra call."""
    prefix = f"kv.{op}"

    def read(h, args):
        handle = expect_handle(args, 0, "Kv handle", "Kv")
        key = expect_str(args, 1)
        st = h.session.registry("kv", _release).touch_get(handle)
        if st is None:
            raise EffectError(f"{prefix}: closed or unknown Kv handle")
        try:
            kb = key.encode()
        except UnicodeEncodeError:
            kb = None
        if not kb or len(kb) > st.max_key:  # inlined _encode_key: this is the hot path
            kb = _encode_key(st, key)
            if kb is None:
                raise EffectError(f"{prefix}: {_key_error(st, key, _try_encode(key))}")
        active = st.active
        while True:
            active.append(None)
            try:
                if not st.blocked:
                    if contains:  # no copy of the value
                        txn = st.env.begin(buffers=True)
                        found = txn.get(kb) is not None
                        txn.abort()
                        return found
                    txn = st.env.begin()  # no keyword: lmdb parses keywords slowly
                    v = txn.get(kb)
                    txn.abort()
                    return NONE if v is None else some(v)
            except lmdb.MapResizedError:
                pass
            except lmdb.Error as e:
                txn = None  # noqa: F841 -- not kept alive by the traceback
                raise EffectError(f"{prefix}: {e}") from None
            finally:
                active.pop()
            _after_miss(st, op)

    read.__name__ = read.__qualname__ = f"kv_{op}"
    return read


kv_get = _reader("get", contains=False)
kv_contains = _reader("contains", contains=True)


def _try_encode(key: str):
    try:
        return key.encode()
    except UnicodeEncodeError:
        return None


def _after_miss(st: _Store, op: str) -> None:
    """An op found the store blocked or its map resized by another process."""
    if st.blocked:
        st.wait_unblocked(op)
    else:
        st.adopt_size()
        if st.closed:
            raise EffectError(f"kv.{op}: closed or unknown Kv handle")


def _grown(st: _Store, limits):
    """The doubled map size, capped at ``Limits.kv_map_max``; None at the cap."""
    cur = st.env.info()["map_size"]
    size = min(cur * 2, int(limits.kv_map_max))
    return size if size > cur else None


def _map_full(op: str, limits):
    return err(f"kv.{op}: the lmdb map is full: it is at Limits.kv_map_max "
               f"({int(limits.kv_map_max)} bytes)")


def _write(h, st: _Store, op: str, kb: bytes, val):
    """One committed write transaction: put ``val``, or delete when None."""
    want_sync = h.session.limits.kv_sync and not st.synced
    wlock = st.wlock
    if not wlock.acquire(False) and not wlock.acquire(timeout=_DRAIN_S):
        return err(f"kv.{op}: timed out waiting for the store's writer lock")
    active = st.active
    active.append(None)
    try:
        growths = 0
        while True:
            if st.closed:
                raise EffectError(f"kv.{op}: closed or unknown Kv handle")
            try:
                txn = st.env.begin(write=True)
            except lmdb.MapResizedError:
                st.writer_abort(None, 0)
                continue
            try:
                if val is None:
                    txn.delete(kb)
                else:
                    txn.put(kb, val)
            except lmdb.MapFullError:
                growths += 1
                size = _grown(st, h.session.limits)
                if size is None:
                    st.writer_abort(txn)
                    return _map_full(op, h.session.limits)
                if growths > _MAX_GROWTHS or not st.writer_abort(txn, size):
                    return err(f"kv.{op}: the lmdb map is full and could not grow")
                continue
            except BaseException:
                st.writer_abort(txn)
                raise
            try:
                txn.commit()
            except lmdb.MapFullError:  # the commit itself needed pages
                growths += 1
                size = _grown(st, h.session.limits)
                if size is None:
                    return _map_full(op, h.session.limits)
                if growths > _MAX_GROWTHS or not st.writer_abort(None, size):
                    return err(f"kv.{op}: the lmdb map is full and could not grow")
                continue
            if want_sync:
                st.env.sync(True)
            return ok(None)
    except lmdb.Error as e:
        return err(f"kv.{op}: {e}")
    except OSError as e:
        return err(f"kv.{op}: {os_error_text(e)}")
    finally:
        active.pop()
        wlock.release()


def kv_put(h, args):
    handle = expect_handle(args, 0, "Kv handle", "Kv")
    key = expect_str(args, 1)
    val = expect_bytes(args, 2)
    st = h.session.registry("kv", _release).touch_get(handle)
    if st is None:
        raise EffectError("kv.put: closed or unknown Kv handle")
    kb = _try_encode(key)
    if not kb or len(kb) > st.max_key:
        kb = _encode_key(st, key)
        if kb is None:
            return err(f"kv.put: {_key_error(st, key, _try_encode(key))}")
    return _write(h, st, "put", kb, val)


def kv_delete(h, args):
    handle = expect_handle(args, 0, "Kv handle", "Kv")
    key = expect_str(args, 1)
    st = _store(h, handle, "delete")
    kb = _encode_key(st, key)
    if kb is None:
        return err(f"kv.delete: {_key_error(st, key, _try_encode(key))}")
    return _write(h, st, "delete", kb, None)


def kv_list_prefix(h, args):
    handle = expect_handle(args, 0, "Kv handle", "Kv")
    prefix = expect_str(args, 1)
    st = _store(h, handle, "list_prefix")
    pb = _try_encode(prefix)
    if pb is None:
        raise EffectError("kv.list_prefix: prefix is not valid UTF-8")
    cap = h.session.limits.kv_list_keys
    active = st.active
    while True:
        active.append(None)
        try:
            if not st.blocked:
                return _scan(st, pb, cap)
        except lmdb.MapResizedError:
            pass
        except lmdb.Error as e:
            raise EffectError(f"kv.list_prefix: {e}") from None
        finally:
            active.pop()
        _after_miss(st, "list_prefix")


def _scan(st: _Store, pb: bytes, cap: int) -> list:
    keys: list = []
    has_empty = False
    with st.env.begin() as txn:
        cur = txn.cursor()
        if not (cur.set_range(pb) if pb else cur.first()):
            return keys
        for k in cur.iternext(keys=True, values=False):
            if not k.startswith(pb):
                break
            if k == _EMPTY_KEY:
                has_empty = True  # only reachable with the empty prefix
                continue
            if len(keys) >= cap:
                raise EffectError(f"kv.list_prefix: more than {cap} keys "
                                  "(Limits.kv_list_keys)")
            keys.append(k.decode("utf-8", "replace"))
    if has_empty:
        keys.insert(0, "")
    return keys


ROWS = [
    ("kv", "open", "kv", kv_open),
    ("kv", "close", "kv", kv_close),
    ("kv", "get", "kv", kv_get),
    ("kv", "put", "kv", kv_put),
    ("kv", "delete", "kv", kv_delete),
    ("kv", "contains", "kv", kv_contains),
    ("kv", "list_prefix", "kv", kv_list_prefix),
]


#: whether kv.get/contains/put take the compiled front (``_kv_c``)
KV_COMPILED = _kv_c is not None
if _kv_c is not None:
    _kv_c.bind(kv_get, kv_contains, kv_put, _write, _release)
    _FAST = {"get": _kv_c.kv_get, "contains": _kv_c.kv_contains, "put": _kv_c.kv_put}
    ROWS = [(k, o, g, _FAST.get(o, fn)) for k, o, g, fn in ROWS]
