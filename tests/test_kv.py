"""kv.* on real lmdb stores in temp folders (docs/behaviour.md §3.7, §6.8)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import lexfast
from lexfast import NONE, EffectError, PolicyDenied, err, ok, some
from lexfast.effects import kv as kvmod
from lexfast.handler import Limits

SRC_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(lexfast.__file__)))


@pytest.fixture
def store(make_handler, tmp_path):
    """(handler, handle, store dir) for E{kv,fs_write} W[tmp_path]."""
    h = make_handler(effects=["kv", "fs_write"], fs_write=[tmp_path])
    path = str(tmp_path / "db")
    r = h.dispatch("kv", "open", [path])
    assert r.name == "Ok" and isinstance(r.args[0], int)
    return h, r.args[0], path


def kv(h, op, *args):
    return h.dispatch("kv", op, list(args))


# -- §6.8 ------------------------------------------------------------------

def test_86_put_then_get_round_trips(store):
    h, k, _ = store
    assert kv(h, "put", k, "k1", b"hello") == ok(None)
    assert kv(h, "get", k, "k1") == some(b"hello")


def test_87_missing_is_none_and_contains_after_put(store):
    h, k, _ = store
    assert kv(h, "get", k, "never_set") == NONE
    assert kv(h, "put", k, "a", b"x") == ok(None)
    assert kv(h, "contains", k, "a") is True
    assert kv(h, "contains", k, "b") is False


def test_88_delete_removes_key(store):
    h, k, _ = store
    kv(h, "put", k, "a", b"x")
    assert kv(h, "delete", k, "a") == ok(None)
    assert kv(h, "contains", k, "a") is False
    assert kv(h, "delete", k, "a") == ok(None)  # absent: still Ok


def test_89_list_prefix_returns_only_matching_keys(store):
    h, k, _ = store
    for key in ("user:2", "session:x", "user:1"):
        kv(h, "put", k, key, b"v")
    assert kv(h, "list_prefix", k, "user:") == ["user:1", "user:2"]
    assert kv(h, "list_prefix", k, "") == ["session:x", "user:1", "user:2"]
    assert kv(h, "list_prefix", k, "nope") == []


def test_89b_list_prefix_is_byte_order(store):
    h, k, _ = store
    keys = ["é", "z", "Z", "a", "ab", "a\u0000", "€", "\U0001f600"]
    for key in keys:
        assert kv(h, "put", k, key, b"") == ok(None)
    assert kv(h, "list_prefix", k, "") == sorted(keys, key=lambda s: s.encode())
    assert kv(h, "get", k, "a\u0000") == some(b"")


def test_90_open_outside_write_root_is_err_and_creates_nothing(make_handler, tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    h = make_handler(effects=["kv", "fs_write"], fs_write=[a])
    target = b / "store"
    assert kv(h, "open", str(target)) == err(f"kv.open: `{target}` outside --allow-fs-write")
    assert not b.exists()


@pytest.mark.parametrize("rel", ["../B/x", "../A2/x", "link/x", "link"])
def test_90b_escapes_are_denied(make_handler, tmp_path, rel):
    a = tmp_path / "A"
    a.mkdir()
    outside = tmp_path / "B"
    outside.mkdir()
    (a / "link").symlink_to(outside)
    h = make_handler(effects=["kv"], fs_write=[a])
    path = f"{a}/{rel}"
    assert kv(h, "open", path) == err(f"kv.open: `{path}` outside --allow-fs-write")
    assert sorted(os.listdir(outside)) == []
    assert not (tmp_path / "A2").exists()


def test_91_close_then_get_is_hard(store):
    h, k, _ = store
    assert kv(h, "close", k) is None
    for op, extra in [("get", ["k"]), ("put", ["k", b"v"]), ("delete", ["k"]),
                      ("contains", ["k"]), ("list_prefix", [""])]:
        with pytest.raises(EffectError) as e:
            kv(h, op, k, *extra)
        assert str(e.value) == f"kv.{op}: closed or unknown Kv handle"
        assert not isinstance(e.value, PolicyDenied)


def test_92_close_unknown_is_noop(make_handler):
    h = make_handler(effects=["kv"])
    assert kv(h, "close", 999999) is None
    assert kv(h, "close", 0) is None


def test_93_gate_and_handle_type(make_handler, tmp_path):
    h = make_handler(effects=["fs_write"], fs_write=[tmp_path])
    with pytest.raises(PolicyDenied, match="effect `kv` not in --allow-effects"):
        kv(h, "open", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    h2 = make_handler(effects=["kv"])
    with pytest.raises(EffectError, match=r"^expected Kv handle \(Int\), got Int\(-1\)$"):
        kv(h2, "get", -1, "k")


@pytest.mark.parametrize("op,args,message", [
    ("get", ["1", "k"], 'expected Kv handle (Int), got Str("1")'),
    ("get", [True, "k"], "expected Kv handle (Int), got Bool(true)"),
    ("get", [], "missing Kv argument"),
    ("close", [1.0], "expected Kv handle (Int), got Float(1.0)"),
    ("get", [1], "missing argument"),
    ("get", [1, 5], "expected Str arg, got Int(5)"),
    ("put", [1, "k", "v"], 'expected Bytes arg, got Str("v")'),
    ("put", [1, "k"], "missing argument"),
    ("list_prefix", [1, None], "expected Str arg, got Unit"),
    ("open", [b"/x"], "expected Str arg, got Bytes([47, 120])"),
    ("open", [], "missing argument"),
])
def test_bad_argument_types_are_hard(make_handler, op, args, message):
    # Argument checks come before the handle lookup, as in the reference.
    h = make_handler(effects=["kv"])
    with pytest.raises(EffectError) as e:
        kv(h, op, *args)
    assert str(e.value) == message


def test_bytes_like_values_are_accepted(store):
    h, k, _ = store
    assert kv(h, "put", k, "a", bytearray(b"ba")) == ok(None)
    assert kv(h, "put", k, "b", memoryview(b"mv")) == ok(None)
    assert kv(h, "get", k, "a") == some(b"ba")
    assert kv(h, "get", k, "b") == some(b"mv")


def test_94_lru_evicts_oldest_untouched(make_handler, tmp_path):
    h = make_handler(effects=["kv"], limits=Limits(kv_map_size=1 << 20))
    handles = [kv(h, "open", str(tmp_path / f"s{i}")).args[0] for i in range(257)]
    with pytest.raises(EffectError, match="^kv.get: closed or unknown Kv handle$"):
        kv(h, "get", handles[0], "k")
    assert kv(h, "get", handles[1], "k") == NONE


def test_95_lru_touch_keeps_handle(make_handler, tmp_path):
    h = make_handler(effects=["kv"], limits=Limits(kv_map_size=1 << 20))
    handles = [kv(h, "open", str(tmp_path / f"s{i}")).args[0] for i in range(256)]
    assert kv(h, "put", handles[0], "k", b"v") == ok(None)  # touch #1
    kv(h, "open", str(tmp_path / "extra"))
    assert kv(h, "get", handles[0], "k") == some(b"v")
    with pytest.raises(EffectError, match="closed or unknown Kv handle"):
        kv(h, "contains", handles[1], "k")


def _fds_under(path) -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(path) + "/"):
                n += 1
        except OSError:
            pass
    return n


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_lru_cap_300_opens_closes_evicted_stores(make_handler, tmp_path):
    h = make_handler(effects=["kv"], limits=Limits(kv_map_size=1 << 20))
    first = kv(h, "open", str(tmp_path / "s0")).args[0]
    per_store = _fds_under(tmp_path)
    assert per_store >= 2  # data.mdb and lock.mdb at least
    handles = [first] + [kv(h, "open", str(tmp_path / f"s{i}")).args[0] for i in range(1, 300)]
    assert len(set(handles)) == 300
    for i, hd in enumerate(handles):
        if i < 44:
            with pytest.raises(EffectError, match="kv.get: closed or unknown Kv handle"):
                kv(h, "get", hd, "k")
        else:
            assert kv(h, "get", hd, "k") == NONE
    assert _fds_under(tmp_path) == 256 * per_store
    for i in range(44):
        assert str(tmp_path / f"s{i}") not in kvmod.open_paths()
    h.close()
    assert _fds_under(tmp_path) == 0


def test_handles_from_another_session_are_unknown(make_handler, tmp_path):
    h1 = make_handler(effects=["kv"], fs_write=[tmp_path])
    h2 = make_handler(effects=["kv"], fs_write=[tmp_path])
    k = kv(h1, "open", str(tmp_path / "db")).args[0]
    kv(h1, "put", k, "a", b"1")
    with pytest.raises(EffectError, match="^kv.get: closed or unknown Kv handle$"):
        kv(h2, "get", k, "a")
    assert kv(h2, "close", k) is None  # silently nothing: not its handle
    assert kv(h1, "get", k, "a") == some(b"1")
    # A fork is the same session.
    assert kv(h1.fork(), "get", k, "a") == some(b"1")


def test_same_path_twice_shares_one_environment(make_handler, tmp_path):
    h1 = make_handler(effects=["kv"], fs_write=[tmp_path])
    h2 = make_handler(effects=["kv"], fs_write=[tmp_path])
    path = str(tmp_path / "db")
    k1 = kv(h1, "open", path).args[0]
    k2 = kv(h2, "open", path + "/../db").args[0]  # resolves to the same store
    k3 = kv(h1, "open", path).args[0]
    assert len({k1, k2, k3}) == 3
    assert kvmod.open_paths().count(path) == 1
    kv(h1, "put", k1, "x", b"1")
    assert kv(h2, "get", k2, "x") == some(b"1")
    kv(h1, "close", k1)
    kv(h1, "close", k3)
    assert kv(h2, "get", k2, "x") == some(b"1")  # still open for h2
    assert path in kvmod.open_paths()
    h2.close()
    assert path not in kvmod.open_paths()
    k4 = kv(h1, "open", path).args[0]  # reopens from disk
    assert kv(h1, "get", k4, "x") == some(b"1")


def test_data_persists_across_close_and_reopen(make_handler, tmp_path):
    path = str(tmp_path / "nested" / "dirs" / "db")  # parents are created
    h = make_handler(effects=["kv"], fs_write=[tmp_path])
    k = kv(h, "open", path).args[0]
    kv(h, "put", k, "a", b"\x00\xff" * 10)
    h.close()
    assert path not in kvmod.open_paths()
    h2 = make_handler(effects=["kv"], fs_write=[tmp_path])
    k2 = kv(h2, "open", path).args[0]
    assert kv(h2, "get", k2, "a") == some(b"\x00\xff" * 10)


def test_open_errors_are_soft(make_handler, tmp_path):
    (tmp_path / "file").write_text("not a dir")
    h = make_handler(effects=["kv"], fs_write=[tmp_path])
    r = kv(h, "open", str(tmp_path / "file"))
    assert r.name == "Err" and r.args[0].startswith("kv.open: ")
    r = kv(h, "open", str(tmp_path / "file" / "sub"))
    assert r.name == "Err" and r.args[0].startswith("kv.open: ")
    r = kv(h, "open", "x\0y")
    assert r.name == "Err"


def test_empty_key_works_as_in_the_reference(store):
    h, k, _ = store
    assert kv(h, "get", k, "") == NONE
    assert kv(h, "put", k, "", b"empty") == ok(None)
    kv(h, "put", k, "a", b"1")
    assert kv(h, "get", k, "") == some(b"empty")
    assert kv(h, "contains", k, "") is True
    assert kv(h, "list_prefix", k, "") == ["", "a"]
    assert kv(h, "list_prefix", k, "a") == ["a"]
    assert kv(h, "delete", k, "") == ok(None)
    assert kv(h, "list_prefix", k, "") == ["a"]


def test_long_keys_get_a_clear_error(store):
    h, k, _ = store
    long = "x" * 512
    msg = "key is 512 bytes, longer than lmdb's 511-byte limit"
    assert kv(h, "put", k, "y" * 511, b"ok") == ok(None)
    assert kv(h, "put", k, long, b"v") == err(f"kv.put: {msg}")
    assert kv(h, "delete", k, long) == err(f"kv.delete: {msg}")
    with pytest.raises(EffectError, match=f"^kv.get: {msg}$"):
        kv(h, "get", k, long)
    with pytest.raises(EffectError, match=f"^kv.contains: {msg}$"):
        kv(h, "contains", k, long)
    assert kv(h, "list_prefix", k, long) == []
    # Multi-byte characters count in bytes.
    assert kv(h, "put", k, "é" * 256, b"v").name == "Err"


def test_unencodable_key(store):
    h, k, _ = store
    assert kv(h, "put", k, "\ud800", b"v") == err("kv.put: key is not valid UTF-8")
    with pytest.raises(EffectError, match="not valid UTF-8"):
        kv(h, "get", k, "\ud800")


def test_list_prefix_is_bounded(make_handler, tmp_path):
    h = make_handler(effects=["kv"], limits=Limits(kv_list_keys=5))
    k = kv(h, "open", str(tmp_path / "db")).args[0]
    for i in range(6):
        kv(h, "put", k, f"k{i}", b"")
    with pytest.raises(EffectError, match=r"more than 5 keys \(Limits.kv_list_keys\)"):
        kv(h, "list_prefix", k, "k")
    kv(h, "delete", k, "k0")
    assert kv(h, "list_prefix", k, "k") == [f"k{i}" for i in range(1, 6)]


def test_map_grows_instead_of_failing(make_handler, tmp_path):
    h = make_handler(effects=["kv"], limits=Limits(kv_map_size=1 << 16))
    path = str(tmp_path / "db")
    k = kv(h, "open", path).args[0]
    big = os.urandom(300_000)
    for i in range(8):
        assert kv(h, "put", k, f"big{i}", big) == ok(None)
    for i in range(8):
        assert kv(h, "get", k, f"big{i}") == some(big)
    st = kvmod._stores[path]
    assert st.env.info()["map_size"] >= 8 * 300_000


def test_sync_modes(make_handler, tmp_path):
    for sync in (True, False):
        h = make_handler(effects=["kv"], limits=Limits(kv_sync=sync))
        path = str(tmp_path / f"db{sync}")
        k = kv(h, "open", path).args[0]
        assert kvmod._stores[path].env.flags()["sync"] is sync
        assert kv(h, "put", k, "a", b"1") == ok(None)
        # A session wanting sync on an env opened without it still gets ok.
        h2 = make_handler(effects=["kv"], limits=Limits(kv_sync=True))
        k2 = kv(h2, "open", path).args[0]
        assert kv(h2, "put", k2, "b", b"2") == ok(None)
        assert kv(h, "get", k, "b") == some(b"2")


def test_handler_close_closes_every_store(make_handler, tmp_path):
    h = make_handler(effects=["kv"])
    paths = [str(tmp_path / f"s{i}") for i in range(3)]
    handles = [kv(h, "open", p).args[0] for p in paths]
    h.close()
    for p in paths:
        assert p not in kvmod.open_paths()
    h.close()  # idempotent
    del handles


# -- threads -----------------------------------------------------------------

def test_four_threads_no_lost_write(make_handler, tmp_path):
    h = make_handler(effects=["kv"], limits=Limits(kv_sync=False))
    k = kv(h, "open", str(tmp_path / "db")).args[0]
    errors = []

    def writer(n):
        f = h.fork()
        try:
            for i in range(300):
                assert kv(f, "put", k, f"t{n}:{i:04d}", f"{n}-{i}".encode()) == ok(None)
                if i % 50 == 0:
                    kv(f, "list_prefix", k, f"t{n}:")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    keys = kv(h, "list_prefix", k, "t")
    assert len(keys) == 1200
    for n in range(4):
        for i in (0, 150, 299):
            assert kv(h, "get", k, f"t{n}:{i:04d}") == some(f"{n}-{i}".encode())


def test_map_growth_under_concurrent_readers(make_handler, tmp_path):
    h = make_handler(effects=["kv"], limits=Limits(kv_map_size=1 << 16, kv_sync=False))
    path = str(tmp_path / "db")
    k = kv(h, "open", path).args[0]
    kv(h, "put", k, "r", b"r" * 100)
    stop = threading.Event()
    errors = []

    def reader():
        f = h.fork()
        try:
            while not stop.is_set():
                assert kv(f, "get", k, "r") == some(b"r" * 100)
                kv(f, "list_prefix", k, "")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        chunk = b"w" * 50_000
        for i in range(40):
            assert kv(h, "put", k, f"w{i}", chunk) == ok(None)
    finally:
        stop.set()
        for t in readers:
            t.join(30)
    assert errors == []
    assert kvmod._stores[path].env.info()["map_size"] > 1 << 16
    assert len(kv(h, "list_prefix", k, "w")) == 40


def test_a_reader_does_not_block_a_writer(store):
    h, k, path = store
    kv(h, "put", k, "a", b"old")
    env = kvmod._stores[path].env
    held = threading.Event()
    release = threading.Event()
    seen = []

    def long_reader():
        with env.begin() as txn:
            held.set()
            release.wait(30)
            seen.append(txn.get(b"a"))

    t = threading.Thread(target=long_reader)
    t.start()
    assert held.wait(10)
    done = []
    w = threading.Thread(target=lambda: done.append(kv(h.fork(), "put", k, "a", b"new")))
    w.start()
    w.join(10)
    try:
        assert done == [ok(None)]  # committed while the read transaction is open
        assert kv(h, "get", k, "a") == some(b"new")
    finally:
        release.set()
        t.join(10)
    assert seen == [b"old"]  # the reader kept its snapshot


def test_close_while_other_threads_use_the_handle(make_handler, tmp_path):
    h = make_handler(effects=["kv"], limits=Limits(kv_sync=False))
    k = kv(h, "open", str(tmp_path / "db")).args[0]
    outcomes = []

    def user():
        f = h.fork()
        for i in range(2000):
            try:
                kv(f, "put", k, f"k{i}", b"v")
                kv(f, "get", k, f"k{i}")
            except EffectError as e:
                outcomes.append(str(e))
                return

    threads = [threading.Thread(target=user) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.02)
    kv(h, "close", k)
    for t in threads:
        t.join(30)
    assert all(m.endswith("closed or unknown Kv handle") for m in outcomes)
    assert str(tmp_path / "db") not in kvmod.open_paths()


# -- kill -9 -------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, sys
    from lexfast import DefaultHandler, Policy, ok
    from lexfast.handler import Limits
    root, path, sync = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    h = DefaultHandler(Policy(allow_effects=["kv"], allow_fs_write=[root]),
                       limits=Limits(kv_sync=sync))
    k = h.dispatch("kv", "open", [path]).args[0]
    pad = " " * 120  # fills the pipe quickly, so the child is killed mid-way
    for i in range(10000):
        r = h.dispatch("kv", "put", [k, "key%05d" % i, b"value-%d" % i])
        if r != ok(None):
            sys.exit("put failed: %r" % (r,))
        os.write(1, ("%d%s\\n" % (i, pad)).encode())
""")


@pytest.mark.parametrize("sync", [False, True], ids=["nosync", "sync"])
def test_kill_9_loses_no_acknowledged_put(make_handler, tmp_path, sync):
    script = tmp_path / "kv_writer_child.py"
    script.write_text(CHILD)
    path = str(tmp_path / "db")
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path), path,
                              "1" if sync else "0"],
                             stdout=subprocess.PIPE, env=env)
    acked = []
    try:
        target = 300 if sync else 2000
        deadline = time.monotonic() + 60
        while len(acked) < target and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acked.append(int(line.split()[0]))
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()  # lines written before the kill count too
        acked.extend(int(x.split()[0]) for x in rest.splitlines() if x.strip())
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert len(acked) >= (300 if sync else 2000)
    assert len(acked) < 10000, "the child finished before it was killed"
    assert acked == list(range(len(acked)))
    h = make_handler(effects=["kv"], fs_write=[tmp_path])
    k = kv(h, "open", path).args[0]
    for i in acked:
        assert kv(h, "get", k, f"key{i:05d}") == some(f"value-{i}".encode()), i


def test_lone_surrogates_are_errors_not_internal_errors(make_handler, tmp_path):
    # a lone surrogate (or a symlink resolving to a non-UTF-8 name) once
    # escaped as "internal error: UnicodeEncodeError", after creating the directory
    h = make_handler(effects=["kv"], fs_write=[tmp_path])
    os.mkdir(os.fsencode(str(tmp_path)) + b"/\xff")
    os.symlink(os.fsencode(str(tmp_path)) + b"/\xff", tmp_path / "link")
    before = sorted(os.listdir(tmp_path))
    for path in (f"{tmp_path}/\udcff", f"{tmp_path}/\udcffkv", f"{tmp_path}/link/kv"):
        assert kv(h, "open", path) == err("kv.open: path is not valid UTF-8"), path
    assert kv(h, "open", f"{tmp_path}/\ud800").name == "Err"
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(os.fsencode(str(tmp_path)) + b"/\xff") == []
    k = kv(h, "open", str(tmp_path / "ok")).args[0]
    assert kv(h, "put", k, "\udcff", b"v") == err("kv.put: key is not valid UTF-8")
    assert kv(h, "delete", k, "\ud800") == err("kv.delete: key is not valid UTF-8")
    with pytest.raises(EffectError, match="^kv.get: key is not valid UTF-8$"):
        kv(h, "get", k, "\udcff")


@pytest.mark.skipif(not kvmod._VIA_FD, reason="needs O_PATH and /proc/self/fd")
@pytest.mark.parametrize("swapped", ["parent", "store"])
def test_directory_swapped_for_a_symlink_after_the_check(make_handler, tmp_path, monkeypatch,
                                                         swapped):
    # the race a concurrent process could win: the path checks out inside
    # the scope, then a directory on it becomes a symlink leading out
    scope = tmp_path / "scope"
    outside = tmp_path / "outside"
    (scope / "a" / "store").mkdir(parents=True)
    outside.mkdir()
    victim = scope / "a" if swapped == "parent" else scope / "a" / "store"
    real_scoped = kvmod.scoped

    def scoped_then_swap(path, roots):
        found = real_scoped(path, roots)
        if found is not None and path.endswith("/store"):
            victim.rename(victim.with_name(victim.name + ".moved"))
            victim.symlink_to(outside)
        return found

    monkeypatch.setattr(kvmod, "scoped", scoped_then_swap)
    h = make_handler(effects=["kv"], fs_write=[scope])
    store = str(scope / "a" / "store")
    assert kv(h, "open", store) == err(f"kv.open: `{store}` outside --allow-fs-write")
    assert os.listdir(outside) == []
    assert store not in kvmod.open_paths()


def test_store_opened_through_its_directory_descriptor(make_handler, tmp_path):
    # missing parents are made beneath the scope; the environment is shared
    # by path across opens, and its files are where the path says
    h = make_handler(effects=["kv"], fs_write=[tmp_path])
    store = str(tmp_path / "x" / "y" / "store")
    k1 = kv(h, "open", store).args[0]
    k2 = kv(h, "open", store).args[0]
    assert kvmod.open_paths().count(store) == 1
    assert kv(h, "put", k1, "a", b"1") == ok(None)
    assert kv(h, "get", k2, "a") == some(b"1")
    assert sorted(os.listdir(store)) == ["data.mdb", "lock.mdb"]
    (tmp_path / "file").write_text("x")
    assert kv(h, "open", str(tmp_path / "file")) == err("kv.open: Not a directory (os error 20)")
    kv(h, "close", k1)
    kv(h, "close", k2)
    assert store not in kvmod.open_paths()
    k3 = kv(h, "open", store).args[0]
    assert kv(h, "get", k3, "a") == some(b"1")



def _posix_locks(path: str) -> set:
    """pids holding POSIX/OFD locks on ``path`` (from /proc/locks)."""
    st = os.stat(path)
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as f:
        return {p[4] for p in (line.split() for line in f)
                if len(p) >= 8 and p[1] in ("POSIX", "OFDLCK") and p[5] == ident}


@pytest.mark.parametrize("fresh", [True, False], ids=["new-store", "existing-store"])
def test_lmdb_keeps_its_lock_file_locks_after_open(make_handler, tmp_path, fresh):
    # kv.open checks lock.mdb on its own descriptors before lmdb opens it;
    # closing one that is not O_PATH would drop lmdb's fcntl locks (they are
    # per process and file), and another process would reset the lock file.
    path = str(tmp_path / "db")
    if not fresh:
        h0 = make_handler(effects=["kv"], fs_write=[tmp_path])
        kv(h0, "close", kv(h0, "open", path).args[0])
    h = make_handler(effects=["kv"], fs_write=[tmp_path])
    k = kv(h, "open", path).args[0]
    assert str(os.getpid()) in _posix_locks(os.path.join(path, "lock.mdb"))
    assert kv(h, "put", k, "k", b"v") == ok(None)
    # another process sees the store in use and reads what we wrote
    code = ("import lmdb, sys; e = lmdb.open(sys.argv[1], map_size=1 << 20); "
            "print(e.begin().get(b'k'))")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "b'v'", out
    assert str(os.getpid()) in _posix_locks(os.path.join(path, "lock.mdb"))

