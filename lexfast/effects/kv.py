"""kv.open/close/get/put/delete/contains/list_prefix on lmdb (gated ``kv``).

The reference used sled; the contract is the same ordered, persistent byte
store per path. Shapes, messages and the hard/soft split follow the
reference (BEHAVIOUR.md §3.7); where lexfast differs:

- ``kv.open`` resolves the path (``..`` and symlinks) before checking it
  against ``--allow-fs-write``; nothing is created outside the scope. The
  store directory (and missing parents) is created and opened beneath the
  scope root with ``openat2`` (``RESOLVE_BENEATH``), and lmdb is handed
  ``/proc/self/fd/N``, so a directory swapped for a symlink between the
  check and the open is refused as for io.write. (lmdb itself opens
  ``data.mdb``/``lock.mdb`` in it by name: a symlink there leading out is
  refused when checked, but one swapped in during the open is not.)
- Handles belong to the session (a handler and its forks), LRU-capped at
  256; eviction, ``kv.close`` and ``handler.close()`` release the store.
- One lmdb environment per resolved path, shared and refcounted process-wide
  (lmdb forbids opening one path twice in a process); closed with its last
  handle.
- Durability: every ``kv.put``/``kv.delete`` is one committed transaction.
  A commit is in the OS page cache before the call returns, so it survives
  ``kill -9`` of the process at any later instant. With ``Limits.kv_sync``
  (default True) the commit is also fsync'd, so it survives power loss;
  with ``kv_sync=False`` a power loss may drop the last commits. The first
  opener of a path in a process fixes the environment's mode; a session that
  asks for sync on an unsynced environment fsyncs after each of its commits.
- The map is large and sparse (``Limits.kv_map_size``) and doubles when full
  instead of failing.
- lmdb keys are 1..=511 bytes: a longer key is a clear error; the empty key
  (which sled allowed and lmdb refuses) is stored as the byte ``0xff``,
  which no UTF-8 key can contain.
- ``kv.list_prefix`` returns at most ``Limits.kv_list_keys`` keys.
"""

from __future__ import annotations

import collections
import os
import stat
import threading
import time

import lmdb

from ..core import NONE, err, expect_bytes, expect_handle, expect_str, next_handle, ok, some
from ..errors import EffectError
from ..scope import ScopeEscape, open_in_scope, open_parent_in_scope, scoped
from ..values import os_error_text

# lmdb refuses empty keys; b"\xff" never occurs in UTF-8, so it cannot clash.
_EMPTY_KEY = b"\xff"
# Waiting for this process's transactions to drain before a map resize or a
# close: each transaction is one bounded op, so this is generous.
_DRAIN_S = 30.0
_MAX_READERS = 1024
_MAX_GROWTHS = 40


class _Store:
    """One lmdb environment, shared by every handle on its path.

    ``active`` holds one entry per transaction of this process in flight (a
    deque: append/pop are atomic and cheap). A map resize or a close needs
    no transaction in flight: under ``wlock`` it sets ``blocked`` and waits
    for ``active`` to drain; readers that see ``blocked`` back off until it
    is done.

    ``wlock`` also serialises this process's writers (lmdb allows one writer
    at a time anyway), so no writer ever waits inside lmdb while holding an
    ``active`` entry. It matters for py-lmdb 3: aborting a write transaction
    there waits until no other operation is in flight on the environment,
    which never happens while readers keep coming -- so write transactions
    are aborted only with the readers held off.
    """

    __slots__ = ("env", "path", "refs", "active", "blocked", "closed", "wlock",
                 "unblocked", "synced", "max_key")

    def __init__(self, env, path: str, synced: bool) -> None:
        self.env = env
        self.path = path
        self.refs = 0
        self.active = collections.deque()
        self.blocked = False
        self.closed = False
        self.wlock = threading.Lock()
        self.unblocked = threading.Event()
        self.unblocked.set()
        self.synced = synced
        self.max_key = env.max_key_size()

    def _drain(self, own: int) -> bool:
        """Hold new transactions off and wait until at most ``own`` (the
        caller's) are in flight. Call with ``wlock`` held."""
        self.unblocked.clear()
        self.blocked = True
        deadline = time.monotonic() + _DRAIN_S
        delay = 0.00002
        while len(self.active) > own:
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
_stores_lock = threading.Lock()


_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY if hasattr(os, "O_PATH") else 0
_VIA_FD = bool(_DIR_FLAGS) and os.path.isdir("/proc/self/fd")


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


def _inner_link_escapes(dfd: int, path: str, write_roots) -> bool:
    # lmdb opens data.mdb and lock.mdb by name inside the directory: a
    # symlink planted there would carry its writes out of the scope.
    for name in ("data.mdb", "lock.mdb"):
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            continue
        if is_link and scoped(os.path.join(path, name), write_roots) is None:
            return True
    return False


def _acquire(path: str, root: str, write_roots, limits):
    """The shared store of ``path``, or None when it would leave the scope."""
    with _stores_lock:
        st = _stores.get(path)
        if st is None:
            if _VIA_FD:
                dfd = _open_dir(path, root)
                where = f"/proc/self/fd/{dfd}"
            else:  # pragma: no cover - no O_PATH or no procfs: by path
                os.makedirs(path, exist_ok=True)
                dfd, where = os.open(path, os.O_RDONLY | os.O_DIRECTORY), path
            try:
                if _inner_link_escapes(dfd, path, write_roots):
                    return None
                env = lmdb.open(where, map_size=max(int(limits.kv_map_size), 1 << 16),
                                sync=bool(limits.kv_sync), max_readers=_MAX_READERS,
                                max_dbs=0, subdir=True, create=True, lock=True)
            finally:
                os.close(dfd)  # lmdb holds its own descriptors of the files
            st = _Store(env, path, bool(limits.kv_sync))
            _stores[path] = st
        st.refs += 1
        return st


def _release(handle, st: _Store) -> None:
    """Registry ``on_evict``: a handle is gone (evicted, closed, session closed)."""
    with _stores_lock:
        st.refs -= 1
        if st.refs > 0:
            return
        if st.close():
            if _stores.get(st.path) is st:
                del _stores[st.path]
        # else: transactions did not drain; keep it for a later open to reuse.


def open_paths() -> list[str]:
    """Paths of the lmdb environments open in this process (tests, diagnostics)."""
    with _stores_lock:
        return sorted(_stores)


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


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- ops -------------------------------------------------------------------

def kv_open(h, args):
    path = expect_str(args, 0)
    found = scoped(path, h.policy.write_roots)
    if found is None:
        return err(f"kv.open: `{path}` outside --allow-fs-write")
    if not _utf8(found[0]):  # lmdb takes UTF-8 paths only
        return err("kv.open: path is not valid UTF-8")
    session = h.session
    reg = session.registry("kv", _release)
    try:
        st = _acquire(found[0], found[1], h.policy.write_roots, session.limits)
    except ScopeEscape:
        st = None
    except lmdb.Error as e:
        return err(f"kv.open: {e}")
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


def kv_get(h, args):
    handle = expect_handle(args, 0, "Kv handle", "Kv")
    key = expect_str(args, 1)
    st = h.session.registry("kv", _release).touch_get(handle)
    if st is None:
        raise EffectError("kv.get: closed or unknown Kv handle")
    try:
        kb = key.encode()
    except UnicodeEncodeError:
        kb = None
    if not kb or len(kb) > st.max_key:  # inlined _encode_key: this is the hot path
        kb = _encode_key(st, key)
        if kb is None:
            raise EffectError(f"kv.get: {_key_error(st, key, _try_encode(key))}")
    active = st.active
    while True:
        active.append(None)
        try:
            if not st.blocked:
                txn = st.env.begin()
                v = txn.get(kb)
                txn.abort()
                return NONE if v is None else some(v)
        except lmdb.MapResizedError:
            pass
        except lmdb.Error as e:
            txn = None  # noqa: F841 -- not kept alive by the traceback
            raise EffectError(f"kv.get: {e}") from None
        finally:
            active.pop()
        _after_miss(st, "get")


def kv_contains(h, args):
    handle = expect_handle(args, 0, "Kv handle", "Kv")
    key = expect_str(args, 1)
    st = h.session.registry("kv", _release).touch_get(handle)
    if st is None:
        raise EffectError("kv.contains: closed or unknown Kv handle")
    try:
        kb = key.encode()
    except UnicodeEncodeError:
        kb = None
    if not kb or len(kb) > st.max_key:  # inlined _encode_key: this is the hot path
        kb = _encode_key(st, key)
        if kb is None:
            raise EffectError(f"kv.contains: {_key_error(st, key, _try_encode(key))}")
    active = st.active
    while True:
        active.append(None)
        try:
            if not st.blocked:
                txn = st.env.begin(buffers=True)
                found = txn.get(kb) is not None
                txn.abort()
                return found
        except lmdb.MapResizedError:
            pass
        except lmdb.Error as e:
            txn = None  # noqa: F841 -- not kept alive by the traceback
            raise EffectError(f"kv.contains: {e}") from None
        finally:
            active.pop()
        _after_miss(st, "contains")


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
                size = st.env.info()["map_size"] * 2
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
                size = st.env.info()["map_size"] * 2
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
