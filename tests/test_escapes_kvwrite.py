"""Escape catalogue, kv (lmdb) and in-place writers (SECURITY.md "kv (lmdb)
and in-place writers", rows K*): a store's own files cannot hang, crash or
lock out the process, nor write through a hardlink to a file outside.

What could hang or kill the interpreter (a FIFO as ``data.mdb``, a truncated
map) runs in a child process with a timeout, so a regression is a failed
test, not a dead pytest.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import subprocess
import sys
import textwrap
import threading

import pytest

import lexfast
from lexfast import Limits
from lexfast.effects import kv as kvmod

SRC_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(lexfast.__file__)))
T = 60  # generous bound on a child or a wait; a healthy run takes well under a second

# The child: builds a handler over argv[1] (the write scope) and runs BODY,
# printing one JSON line per result.
CHILD_HEAD = """
import json, os, signal, stat, sys, time
from lexfast import CapturedSink, DefaultHandler, Limits, Policy

def handler(*scope, **limits):
    pol = Policy(allow_effects=["kv", "fs_write"], allow_fs_write=list(scope))
    return DefaultHandler(pol, sink=CapturedSink(), limits=Limits(**limits))

def show(v):
    return [v.name, *[a if isinstance(a, (int, str)) else repr(a) for a in v.args]]

def emit(**kw):
    print(json.dumps(kw), flush=True)

signal.alarm(%d)  # a hang in the child ends it (SIGALRM), never the test run
"""


def run_child(tmp_path, body: str, *args: str, tmpdir=None):
    """Run BODY in a fresh interpreter; returns (returncode, [json lines]).
    ``tmpdir``: the child's TMPDIR (its own, so what it leaves there is not
    confused with other processes' files in the shared /tmp)."""
    script = tmp_path / "kvwrite_child.py"
    script.write_text(CHILD_HEAD % (T // 2) + textwrap.dedent(body))
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    try:
        p = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                           env=env, timeout=T, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail("the child hung")
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    return p.returncode, lines, p.stderr


def digest(path) -> tuple[int, str]:
    data = open(path, "rb").read()
    return len(data), hashlib.sha256(data).hexdigest()


def kv(h, op, *args):
    return h.dispatch("kv", op, list(args))


def is_err(v, *needles):
    return v.name == "Err" and all(n in str(v.args[0]) for n in needles)


# -- K1: non-regular store files ---------------------------------------------------

NON_REGULAR = """
import stat
scope, dev_ok = sys.argv[1], sys.argv[2] == "1"
kinds = {
    "fifo": lambda p: os.mkfifo(p),
    "socket": lambda p: os.mknod(p, 0o600 | stat.S_IFSOCK),
    "directory": lambda p: os.mkdir(p),
    "devnull-link": lambda p: os.symlink("/dev/null", p),
}
if dev_ok:
    kinds["device"] = lambda p: os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
for name in ("data.mdb", "lock.mdb"):
    for kind, make in kinds.items():
        store = os.path.join(scope, f"{kind}-{name}")
        os.mkdir(store)
        make(os.path.join(store, name))
        h = handler(scope, "/dev")  # /dev in scope: the link is followed
        t0 = time.monotonic()
        r = h.dispatch("kv", "open", [store])
        emit(name=name, kind=kind, r=show(r), s=time.monotonic() - t0)
        h.close()
# the store path itself a FIFO (or a socket): never opened for I/O
for kind, mode in (("fifo", stat.S_IFIFO), ("socket", stat.S_IFSOCK)):
    p = os.path.join(scope, f"store-is-{kind}")
    os.mknod(p, 0o600 | mode)
    h = handler(scope)
    t0 = time.monotonic()
    emit(store=kind, r=show(h.dispatch("kv", "open", [p])), s=time.monotonic() - t0)
    h.close()
emit(done=True)
"""


def test_escape_kv_store_file_fifo_device_socket_directory(tmp_path):
    """A FIFO as data.mdb hung the whole interpreter in lmdb's open() (it
    holds the GIL); a device, a socket or a directory is no store either."""
    rc, lines, errs = run_child(tmp_path, NON_REGULAR, str(tmp_path),
                                "1" if os.geteuid() == 0 else "0")
    assert rc == 0 and lines and lines[-1] == {"done": True}, (rc, lines, errs)
    what = {"fifo": "a FIFO", "socket": "a socket", "directory": "a directory",
            "devnull-link": "a character device", "device": "a character device"}
    for row in [x for x in lines if "store" in x]:
        assert row["r"][0] == "Err" and "Not a directory" in row["r"][1], row
        assert row["s"] < 10, row
    for row in [x for x in lines[:-1] if "store" not in x]:
        name, kind, r = row["name"], row["kind"], row["r"]
        assert r[0] == "Err", row
        assert f"{name} is {what[kind]}, not a regular file" in r[1], row
        assert r[1].startswith("kv.open: `"), row
        assert row["s"] < 10, row
    assert len(lines) >= 9
    # nothing of them was touched: still the same kinds
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo-data.mdb" / "data.mdb").st_mode)
    assert stat.S_ISSOCK(os.lstat(tmp_path / "socket-lock.mdb" / "lock.mdb").st_mode)


SWAP_AFTER_CHECK = """
from lexfast.effects import kv as kvmod
scope, outside = sys.argv[1], sys.argv[2]
real = kvmod._store_file
for name in ("data.mdb", "lock.mdb"):
    for swap in ("fifo", "hardlink"):
        store = os.path.join(scope, f"{swap}-{name}")
        os.mkdir(store)
        def planted(dfd, path, n, roots, create, _name=name, _swap=swap, _store=store):
            fd = real(dfd, path, n, roots, create)
            if fd is not None and n == _name:  # checked; now plant the attack
                tmp = os.path.join(_store, "planted")
                if _swap == "fifo":
                    os.mkfifo(tmp)
                else:
                    os.link(outside, tmp)
                os.rename(tmp, os.path.join(_store, n))
            return fd
        kvmod._store_file = planted
        h = handler(scope)
        r = h.dispatch("kv", "open", [store])
        kvmod._store_file = real
        ok = r.name == "Ok" and h.dispatch("kv", "put", [r.args[0], "k", b"v" * 5000]).name == "Ok"
        got = h.dispatch("kv", "get", [r.args[0], "k"]) if ok else None
        emit(name=name, swap=swap, r=show(r), put=ok, got=show(got) if got else None,
             kind=stat.S_IFMT(os.lstat(os.path.join(store, name)).st_mode))
        h.close()
emit(done=True)
"""


def test_escape_kv_store_file_swapped_after_the_check(tmp_path):
    """The race: a FIFO (or a hardlink to a file outside) renamed over
    data.mdb/lock.mdb after the check, before lmdb's open by name. lmdb is
    handed the checked inodes themselves (through /proc/self/fd links in a
    private directory), so it never opens what was planted."""
    scope = tmp_path / "D"
    scope.mkdir()
    outside = tmp_path / "victim"
    outside.write_bytes(b"precious" * 100)
    before = digest(outside)
    private_tmp = tmp_path / "tmp"  # the child's TMPDIR: its link directories land here
    private_tmp.mkdir()
    rc, lines, errs = run_child(tmp_path, SWAP_AFTER_CHECK, str(scope), str(outside),
                                tmpdir=private_tmp)
    assert rc == 0 and lines and lines[-1] == {"done": True}, (rc, lines, errs)
    for row in lines[:-1]:
        assert row["r"][0] == "Ok" and row["put"], row
        assert row["got"][0] == "Some", row
        want = stat.S_IFIFO if row["swap"] == "fifo" else stat.S_IFREG
        assert row["kind"] == want, row  # the planted file is still there, untouched
    assert digest(outside) == before
    assert os.stat(outside).st_nlink == 1 + 2  # the two planted links, nothing else
    # the private link directories are gone
    assert os.listdir(private_tmp) == []


# -- K2: truncated or forged data.mdb ---------------------------------------------

TRUNCATED = """
scope = sys.argv[1]
h = handler(scope)
store = os.path.join(scope, "s")
k = h.dispatch("kv", "open", [store]).args[0]
for i in range(400):
    assert h.dispatch("kv", "put", [k, "key%05d" % i, b"x" * 300]).name == "Ok"
h.dispatch("kv", "close", [k])
h.close()
data = os.path.join(store, "data.mdb")
emit(size=os.path.getsize(data))
os.truncate(data, 12 << 10)  # what SQLite did to it (issue 22.7)
h = handler(scope)
r = h.dispatch("kv", "open", [store])
emit(r=show(r))
if r.name == "Ok":
    for i in range(400):  # a read past the end of the map: SIGBUS
        h.dispatch("kv", "get", [r.args[0], "key%05d" % i])
    emit(read="survived")
h.close()
emit(done=True)
"""


def test_escape_kv_truncated_data_mdb_refused(tmp_path):
    """A data.mdb shorter than its meta page commits was opened and the next
    get read past the end of the map: SIGBUS killed the interpreter."""
    rc, lines, errs = run_child(tmp_path, TRUNCATED, str(tmp_path))
    assert rc == 0, (rc, lines, errs)
    assert lines[0]["size"] > 12 << 10
    r = lines[1]["r"]
    assert r[0] == "Err" and r[1].startswith(f"kv.open: `{tmp_path / 's'}`: data.mdb is 12288 "
                                             "bytes, shorter than the"), r
    assert "truncated or damaged" in r[1]
    assert lines[-1] == {"done": True}


def _forge(path, **fields):
    """Rewrite both meta pages' fields (offsets of lmdb 0.9's MDB_meta, 64-bit)."""
    offs = {"magic": (16, "=I"), "version": (20, "=I"), "mapsize": (32, "=Q"),
            "psize": (40, "=I"), "last_pg": (136, "=Q")}
    with open(path, "r+b") as f:
        for page in (0, 4096):
            for name, value in fields.items():
                off, fmt = offs[name]
                f.seek(page + off)
                f.write(struct.pack(fmt, value))


def _forge_leaf_nodes(path):
    """Claim a ~2 GiB value in the first node of every leaf page: lmdb
    trusts node sizes and would copy far past the map."""
    buf = bytearray(open(path, "rb").read())
    for pg in range(2, len(buf) // 4096):
        base = pg * 4096
        if struct.unpack_from("=H", buf, base + 10)[0] & 0x02:  # P_LEAF
            ptr = struct.unpack_from("=H", buf, base + 16)[0]
            struct.pack_into("=HH", buf, base + ptr, 0xFFFF, 0x7FFF)
    open(path, "wb").write(bytes(buf))


FORGED = """
scope = sys.argv[1]
for store in sorted(os.listdir(scope)):
    h = handler(scope, kv_map_max=1 << 30, kv_verify=not store.startswith("noverify"))
    r = h.dispatch("kv", "open", [os.path.join(scope, store)])
    if r.name == "Ok":
        h.dispatch("kv", "get", [r.args[0], "k"])
        h.dispatch("kv", "put", [r.args[0], "k", b"v"])
    emit(store=store, r=show(r))
    h.close()
emit(done=True)
"""


def test_escape_kv_forged_meta_pages_refused(make_handler, tmp_path):
    """Sibling forgeries of what lmdb trusts in a data.mdb (a program can
    write one whole with io.write): a page size of 0 (lmdb divides by it),
    one not a power of two, a committed size far past the file (sparse or
    not) or past Limits.kv_map_max, a huge stored map size, garbage, and
    leaf nodes claiming 2 GiB values (caught by the whole-file verifier,
    Limits.kv_verify)."""
    scope = tmp_path / "D"
    scope.mkdir()
    h = make_handler(effects=["kv"], fs_write=[scope])
    cases = {"psize0": {"psize": 0}, "psize3000": {"psize": 3000},
             "psize1M": {"psize": 1 << 20}, "lastpg": {"last_pg": 10_000},
             "magic": {"magic": 0x12345678}, "version": {"version": 7},
             "mapsize": {"mapsize": 1 << 62}, "sparse": {"last_pg": 20_000},
             "noverify-sparse": {"last_pg": 20_000}, "beyondmax": {"last_pg": (1 << 31) // 4096},
             "pages": {}}
    for name in cases:
        k = kv(h, "open", str(scope / name)).args[0]
        assert kv(h, "put", k, "k", b"v").name == "Ok"
        kv(h, "close", k)
    for name, fields in cases.items():
        _forge(scope / name / "data.mdb", **fields)
    for name in ("sparse", "noverify-sparse"):  # sparse, long enough
        os.truncate(scope / name / "data.mdb", 20_001 * 4096)
    _forge_leaf_nodes(scope / "pages" / "data.mdb")
    os.truncate(scope / "beyondmax" / "data.mdb", 1 << 31 | 1 << 16)
    (scope / "garbage").mkdir()
    (scope / "garbage" / "data.mdb").write_bytes(os.urandom(3 * 4096))
    (scope / "short").mkdir()
    (scope / "short" / "data.mdb").write_bytes(b"\1" * 100)
    rc, lines, errs = run_child(tmp_path, FORGED, str(scope))
    assert rc == 0 and lines[-1] == {"done": True}, (rc, lines, errs)
    got = {row["store"]: row["r"] for row in lines[:-1]}
    want = {"psize0": "impossible page size 0", "psize3000": "impossible page size 3000",
            "psize1M": "impossible page size 1048576", "lastpg": "shorter than the",
            "magic": "not an lmdb data file", "version": "data version 7",
            "garbage": "not an lmdb data file", "short": "not an lmdb data file",
            "beyondmax": "more than Limits.kv_map_max",
            "sparse": "fails lmdb's verifier", "pages": "fails lmdb's verifier"}
    for store, needle in want.items():
        assert got[store][0] == "Err" and needle in got[store][1], (store, got[store])
    # a huge stored map size is ignored (the map is Limits.kv_map_size), and
    # without the verifier a sparse but long enough file passes the size check
    assert got["mapsize"][0] == "Ok", got["mapsize"]
    assert got["noverify-sparse"][0] == "Ok", got["noverify-sparse"]


# -- K3: the store lock is never held across a drain --------------------------------

def _closer(h, k, started, done):
    started.set()
    kv(h, "close", k)
    done.set()


@pytest.mark.parametrize("hold", ["writer", "reader"])
def test_escape_kv_store_lock_not_held_across_a_drain(make_handler, tmp_path, hold):
    """Closing a store drains it (up to 30 s for the writer lock, 30 s for
    readers) and once did so holding the module's store lock: every other
    session's kv.open, of any path, waited as long (issue 22.10)."""
    a = make_handler(effects=["kv"], fs_write=[tmp_path])
    b = make_handler(effects=["kv"], fs_write=[tmp_path])
    path = str(tmp_path / "a")
    k = kv(a, "open", path).args[0]
    st = kvmod._stores[path]
    # a write (or a read) in flight on the store, as another thread's op
    if hold == "writer":
        assert st.wlock.acquire(timeout=T)
    else:
        st.active.append(None)
    started, closed = threading.Event(), threading.Event()
    t = threading.Thread(target=_closer, args=(a, k, started, closed))
    opened = []
    try:
        t.start()
        assert started.wait(T)
        ob = threading.Thread(target=lambda: opened.append(kv(b, "open", str(tmp_path / "b"))))
        ob.start()
        ob.join(T / 2)
        assert not ob.is_alive(), "kv.open of another path waited for a close's drain"
        # the close was provably still blocked on the held writer/reader
        assert not closed.is_set() and t.is_alive()
        assert opened[0].name == "Ok"
        assert kv(b, "put", opened[0].args[0], "k", b"v").name == "Ok"
    finally:
        if hold == "writer":
            st.wlock.release()
        else:
            st.active.pop()
        t.join(T)
    assert closed.is_set() and path not in kvmod.open_paths()


def test_escape_kv_same_path_open_waits_for_its_close_only(make_handler, tmp_path):
    """Its sibling: an open of the path being closed waits for that close
    (lmdb cannot open one path twice), then opens it afresh."""
    a = make_handler(effects=["kv"], fs_write=[tmp_path])
    b = make_handler(effects=["kv"], fs_write=[tmp_path])
    path = str(tmp_path / "a")
    k = kv(a, "open", path).args[0]
    assert kv(a, "put", k, "k", b"v").name == "Ok"
    st = kvmod._stores[path]
    assert st.wlock.acquire(timeout=T)
    started, closed = threading.Event(), threading.Event()
    t = threading.Thread(target=_closer, args=(a, k, started, closed))
    got = []
    ob = threading.Thread(target=lambda: got.append(kv(b, "open", path)))
    try:
        t.start()
        assert started.wait(T)
        ob.start()
        ob.join(0.2)
        assert not closed.is_set()
    finally:
        st.wlock.release()
    t.join(T)
    ob.join(T)
    assert not ob.is_alive() and closed.is_set()
    assert got[0].name == "Ok"
    assert kv(b, "get", got[0].args[0], "k").args[0] == b"v"
    assert kvmod._stores[path] is not st


# -- K4: hardlinked store files ------------------------------------------------------

def test_escape_kv_hardlinked_store_files_refused(make_handler, tmp_path):
    """kv.open + put wrote the linked inode itself: a hardlink inside the
    write scope to a file outside let a program rewrite that file."""
    scope, out = tmp_path / "D", tmp_path / "out"
    scope.mkdir()
    out.mkdir()
    h = make_handler(effects=["kv"], fs_write=[scope])
    for name in ("data.mdb", "lock.mdb"):
        victim = out / f"victim-{name}"
        # a real store outside, so lmdb would happily use it
        k = kv(make_handler(effects=["kv"]), "open", str(out / f"real-{name}")).args[0]
        assert k
        victim.write_bytes((out / f"real-{name}" / name).read_bytes())
        before = digest(victim)
        store = scope / f"s-{name}"
        store.mkdir()
        os.link(victim, store / name)
        r = kv(h, "open", str(store))
        assert is_err(r, f"kv.open: `{store}`: {name} has 2 hard links"), r
        assert digest(victim) == before
        # and the same through a symlink inside the scope to the link
        store2 = scope / f"t-{name}"
        store2.mkdir()
        (store2 / name).symlink_to(store / name)
        r = kv(h, "open", str(store2))
        assert is_err(r, f"{name} has 2 hard links"), r
        assert digest(victim) == before
    assert not [p for p in kvmod.open_paths() if p.startswith(str(scope))]


# -- K5: the map is bounded ----------------------------------------------------------

def test_escape_kv_map_growth_bounded(make_handler, tmp_path):
    """The map doubled whenever full, with no cap but 40 doublings (2^70
    bytes): now Limits.kv_map_max bounds it, with a clear error."""
    h = make_handler(effects=["kv"], fs_write=[tmp_path],
                     limits=Limits(kv_map_size=1 << 16, kv_map_max=1 << 20, kv_sync=False))
    k = kv(h, "open", str(tmp_path / "s")).args[0]
    last = None
    for i in range(200):
        last = kv(h, "put", k, f"k{i}", b"x" * 8000)
        if last.name == "Err":
            break
    assert is_err(last, "kv.put: the lmdb map is full", "Limits.kv_map_max (1048576 bytes)"), last
    assert kvmod._stores[str(tmp_path / "s")].env.info()["map_size"] <= 1 << 20
    assert kv(h, "get", k, "k0").name == "Some"  # what was committed stays
    assert kv(h, "delete", k, "k0").name in ("Ok", "Err")
    # and a store already larger than the cap is refused at open
    kv(h, "close", k)
    h2 = make_handler(effects=["kv"], fs_write=[tmp_path],
                      limits=Limits(kv_map_size=1 << 16, kv_map_max=1 << 17))
    assert is_err(kv(h2, "open", str(tmp_path / "s")), "more than Limits.kv_map_max (131072)")


# -- K9: another process holding lmdb's open lock ---------------------------------

LOCK_HELD = """
import subprocess
from lexfast.effects import kv as kvmod
kvmod._LOCK_WAIT_S = 0.5
scope = sys.argv[1]
store = os.path.join(scope, "s")
h = handler(scope)
k = h.dispatch("kv", "open", [store]).args[0]
h.dispatch("kv", "put", [k, "k", b"v"])
h.close()
# another process stuck in the middle of its lmdb open: it holds lmdb's
# exclusive lock (a write lock on byte 0 of lock.mdb) and never lets go
holder = subprocess.Popen([sys.executable, "-c", '''
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
print("held", flush=True)
time.sleep(60)
''', os.path.join(store, "lock.mdb")], stdout=subprocess.PIPE)
assert holder.stdout.readline() == b"held\\n"
h = handler(scope)
t0 = time.monotonic()
r = h.dispatch("kv", "open", [store])
emit(r=show(r), s=time.monotonic() - t0, pid=holder.pid)
holder.kill()
holder.wait(timeout=30)
holder.stdout.close()
r = h.dispatch("kv", "open", [store])
emit(r=show(r), got=show(h.dispatch("kv", "get", [r.args[0], "k"])) if r.name == "Ok" else None)
h.close()
emit(done=True)
"""


def test_escape_kv_lock_held_by_another_process(tmp_path):
    """lmdb's open waits (F_SETLKW, GIL held) for another process's
    exclusive lock on lock.mdb: one stuck there (stopped, or hostile) hung
    the whole interpreter. kv.open now waits a bounded time for it, then
    refuses, naming the process."""
    rc, lines, errs = run_child(tmp_path, LOCK_HELD, str(tmp_path))
    assert rc == 0 and lines and lines[-1] == {"done": True}, (rc, lines, errs)
    first, second = lines[0], lines[1]
    assert first["r"][0] == "Err", first
    assert f"lock.mdb is held exclusively by process {first['pid']}" in first["r"][1], first
    assert first["s"] < 10, first
    assert second["r"][0] == "Ok" and second["got"] == ["Some", "b'v'"], second
