"""Escape catalogue, paths, procfs and listings (SECURITY.md "Paths, procfs
and listings", rows F1...): deciding on what an open landed on (procfs
mounted anywhere, kernel pseudo-filesystems), path arguments that amplify
into huge results, glob patterns whose work explodes, and opens of special
files that could block.

Real files, a real second procfs mount (in a private mount namespace, when
this process may make one), real FIFOs, devices and sockets.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from lexfast import EffectError, Limits, PolicyDenied

FS = ["io", "fs_walk", "fs_write"]
T = 10  # seconds any single effect may take here


def _text(payload):
    """An err payload's text: a Str, or an SqlError record's message (sql.*)."""
    return payload["message"] if isinstance(payload, dict) else payload


def read_denied(h, path):
    with pytest.raises(PolicyDenied, match="outside --allow-fs-read"):
        h.dispatch("io", "read", [path])


def write_denied(h, path, contents="x"):
    with pytest.raises(PolicyDenied, match="outside --allow-fs-write"):
        h.dispatch("io", "write", [path, contents])


def is_err(v, needle):
    return v.name == "Err" and needle in str(v.args[0])


def bounded(fn, unblock=None, timeout=T):
    """Run ``fn()`` on a thread; fail (after ``unblock()`` frees it) if it
    does not return within ``timeout`` seconds."""
    box = {}

    def run():
        try:
            box["v"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["e"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        if unblock is not None:
            unblock()
        t.join(timeout)
        pytest.fail(f"{fn} blocked for more than {timeout}s")
    if "e" in box:
        raise box["e"]
    return box["v"]


# -- F1: procfs mounted elsewhere ------------------------------------------------------

_IN_NAMESPACE = textwrap.dedent("""
    import json, os, sys
    from lexfast import CapturedSink, DefaultHandler, EffectError, Policy
    R = sys.argv[1]
    out = {}

    def run(h, kind, op, args):
        try:
            r = h.dispatch(kind, op, args)
        except EffectError as e:
            return [type(e).__name__, str(e)]
        if r is None or isinstance(r, bool):
            return ["value", r]
        return [r.name, r.args[0] if isinstance(r.args[0], (str, list)) else "..."]

    h = DefaultHandler(Policy(allow_effects=["io", "fs_walk", "fs_write"],
                              allow_fs_read=[R], allow_fs_write=[R]), sink=CapturedSink())
    me, tid = os.getpid(), __import__("threading").get_native_id()
    for p in ("proc/self/environ", "proc/thread-self/environ", f"proc/{me}/environ",
              f"proc/self/task/{tid}/environ", f"proc/{me}/./environ",
              "proc/self/../self/environ", "proc//self//environ", "proc/self/cmdline",
              "proc/self/auxv", "proc/self/maps", "proc/self/syscall", "proc/self/stack",
              "proc/self/pagemap", "proc/self/mem", "env", "pid/environ", "link_env",
              "proc/self/status", "proc/cpuinfo", "pid/status"):
        out["read " + p] = run(h, "io", "read", [f"{R}/{p}"])
    out["copy"] = run(h, "fs", "copy", [f"{R}/proc/self/environ", f"{R}/copied"])
    out["copied"] = os.path.exists(f"{R}/copied")
    out["list fd"] = run(h, "fs", "list_dir", [f"{R}/proc/self/fd"])
    out["list fdinfo"] = run(h, "fs", "list_dir", [f"{R}/proc/self/fdinfo"])
    out["list proc"] = run(h, "fs", "list_dir", [f"{R}/proc/self"])
    out["write sys"] = run(h, "io", "write", [f"{R}/proc/sys/kernel/hostname", "x"])
    # the magic links of a second mount lead where they name, which the
    # scope then judges; under an open scope, environ is refused all the same
    out["read proc/self/root/etc/hostname"] = run(h, "io", "read",
                                                  [f"{R}/proc/self/root/etc/hostname"])
    o = DefaultHandler(Policy(allow_effects=["io", "fs_walk"]), sink=CapturedSink())
    out["open environ"] = run(o, "io", "read", [f"{R}/proc/self/environ"])
    out["open task environ"] = run(o, "io", "read", [f"{R}/proc/self/task/{tid}/environ"])
    h.close(); o.close()
    print(json.dumps(out))
""")


def _unshare():
    exe = shutil.which("unshare")
    if exe is None or not sys.platform.startswith("linux"):
        pytest.skip("needs util-linux unshare on Linux")
    probe = subprocess.run([exe, "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs none /mnt 2>&1 || mount -t tmpfs none /tmp 2>&1"],
                           capture_output=True, text=True, timeout=T)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here: {probe.stderr.strip()}")
    return exe


def test_escape_procfs_mounted_elsewhere(tmp_path):
    """A second procfs (`mount -t proc proc R/proc`, like a container's
    /host/proc), a bind mount of /proc/<pid> and one of a single environ
    file: what was opened decides, not the path."""
    exe = _unshare()
    R = tmp_path / "R"
    (R / "proc").mkdir(parents=True)
    (R / "pid").mkdir()
    (R / "env").write_text("")
    (R / "link_env").symlink_to("proc/self/environ")
    script = tmp_path / "probe.py"
    script.write_text(_IN_NAMESPACE)
    src = os.path.dirname(os.path.dirname(os.path.abspath(__import__("lexfast").__file__)))
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""),
               LEXFAST_SECRET_PROBE="s3cr3t-in-environ")
    cmd = (f"mount -t proc proc {R}/proc && mount --bind /proc/$$/environ {R}/env "
           f"&& mount --bind /proc/$$ {R}/pid && exec {sys.executable} {script} {R}")
    done = subprocess.run([exe, "-m", "--propagation", "private", "sh", "-c", cmd],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "s3cr3t-in-environ" not in done.stdout
    assert out.pop("copied") is False
    for key, (kind, value) in out.items():
        if key in ("read proc/self/status", "read proc/cpuinfo", "read pid/status"):
            assert kind == "Ok" and value, (key, kind, value)  # plain procfs files still read
        elif key == "read proc/self/mem":
            assert kind == "PolicyDenied", (key, kind, value)
        elif key == "list proc":
            assert kind == "Ok" and not any(p.endswith("/environ") and "s3cr3t" in p
                                            for p in value)
        elif key == "write sys":
            assert kind == "PolicyDenied" and "outside --allow-fs-write" in value, (key, value)
        elif key.startswith(("read ", "open ")):
            assert kind == "PolicyDenied" and "outside --allow-fs-read" in value, (key, kind, value)
        else:  # copy, list fd, list fdinfo
            assert kind == "Err" and "outside --allow-fs-read" in value, (key, kind, value)


# -- F2: the sensitive procfs files, every spelling, no mount needed --------------------

def _tid():
    return threading.get_native_id()


def test_escape_procfs_sensitive_files_every_spelling(make_handler, tmp_path):
    h = make_handler(effects=FS, fs_read=["/"], fs_write=[tmp_path])
    me = os.getpid()
    spellings = [
        "/proc/self/environ", "/proc/thread-self/environ", f"/proc/{me}/environ",
        f"/proc/self/task/{_tid()}/environ", f"/proc/{me}/task/{me}/environ",
        f"/proc/{me}/./environ", "/proc/self/../self/environ", "//proc//self//environ",
        "/proc/./self/environ",
    ]
    for name in ("cmdline", "auxv", "maps", "smaps", "numa_maps", "pagemap", "syscall",
                 "stack", "wchan", "personality", "io", "timers", "mem"):
        spellings += [f"/proc/self/{name}", f"/proc/thread-self/{name}",
                      f"/proc/self/task/{_tid()}/{name}"]
    spellings += ["/proc/kcore", "/proc/kmsg", "/proc/kallsyms", "/proc/sysrq-trigger",
                  "/proc/kpageflags", "/proc/timer_list", "/proc/keys", "/proc/self/attr/current"]
    for p in spellings:
        if not os.path.lexists(p):
            continue
        read_denied(h, p)
        assert is_err(h.dispatch("fs", "copy", [p, str(tmp_path / "c")]),
                      "outside --allow-fs-read"), p
    assert not (tmp_path / "c").exists()
    # through a symlink made inside the scope, and its relative form
    (tmp_path / "abs").symlink_to("/proc/self/cmdline")
    (tmp_path / "rel").symlink_to(os.path.relpath("/proc/thread-self/auxv", tmp_path))
    for link in ("abs", "rel"):
        read_denied(h, str(tmp_path / link))
        read_denied(make_handler(effects=["io"]), str(tmp_path / link))  # an open scope too
    # the directories that reach other files are not listed or walked into
    for d in ("/proc/self/fd", "/proc/self/fdinfo", "/proc/self/map_files",
              f"/proc/self/task/{_tid()}/fd", "/proc/self/ns"):
        assert is_err(h.dispatch("fs", "list_dir", [d]), "outside --allow-fs-read"), d
    walked = h.dispatch("fs", "walk", [f"/proc/self/task/{_tid()}"]).args[0]
    assert not any("/fd/" in p or "/fdinfo/" in p for p in walked)
    # plain procfs and sysfs files read as before
    assert "Name:" in h.dispatch("io", "read", ["/proc/self/status"]).args[0]
    assert h.dispatch("io", "read", ["/proc/cpuinfo"]).name == "Ok"
    assert h.dispatch("io", "read", ["/proc/sys/kernel/ostype"]).args[0] == "Linux\n"


# -- F3: writes to kernel pseudo-filesystems under write scope / ---------------------

def _hostname():
    with open("/proc/sys/kernel/hostname") as f:
        return f.read()


def test_escape_pseudo_fs_writes_refused_under_root_scope(make_handler, tmp_path):
    """Under --allow-fs-write /, /proc/sys and /sys change the kernel, not a
    file. Each write below would be harmless if it slipped through (the
    current hostname written back; names that cannot exist), and each is
    refused before anything is written."""
    before = _hostname()
    h = make_handler(effects=FS + ["log"], fs_read=["/"], fs_write=["/"])
    write_denied(h, "/proc/sys/kernel/hostname", before)
    src = tmp_path / "same"
    src.write_text(before)
    assert is_err(h.dispatch("fs", "copy", [str(src), "/proc/sys/kernel/hostname"]),
                  "outside --allow-fs-write")
    assert is_err(h.dispatch("fs", "remove", ["/proc/sys/kernel/hostname"]),
                  "outside --allow-fs-write")
    try:
        for sink in ("/proc/sys/kernel/hostname", "/proc/sysrq-trigger",
                     "/sys/kernel/lexfast-no-such-file"):
            if sink != "/sys/kernel/lexfast-no-such-file" and not os.path.exists(sink):
                continue
            r = h.dispatch("log", "set_sink", [sink])
            if sink.startswith("/sys"):  # the kernel refuses creating it first
                assert r.name == "Err", (sink, r)
            else:
                assert is_err(r, "outside --allow-fs-write"), (sink, r)
    finally:
        h.dispatch("log", "set_sink", ["-"])
    if os.path.isdir("/sys/kernel"):
        write_denied(h, "/sys/kernel/lexfast-no-such-file")
        assert is_err(h.dispatch("fs", "mkdir_p", ["/sys/kernel/lexfast-no-such-dir"]),
                      "outside --allow-fs-write")
        assert not os.path.exists("/sys/kernel/lexfast-no-such-dir")
    # a cgroup v1/v2 hierarchy: mkdir would make a cgroup (removed again, and
    # the test failed, should it slip through)
    cgroups = [os.path.join("/sys/fs/cgroup", n, "") for n in ("pids", "memory", "")]
    cg = next((c for c in cgroups if os.path.isdir(c) and os.path.exists(c + "cgroup.procs")), None)
    if cg is not None:
        new = cg + f"lexfast-test-{os.getpid()}"
        try:
            assert is_err(h.dispatch("fs", "mkdir_p", [new]), "outside --allow-fs-write")
        finally:
            made = os.path.isdir(new)
            if made:
                os.rmdir(new)
        assert not made
    assert _hostname() == before
    # ordinary writes under / still work
    assert h.dispatch("io", "write", [str(tmp_path / "ok.txt"), "fine"]).name == "Ok"


# -- F4: path arguments over PATH_MAX ----------------------------------------------------

def test_escape_path_argument_over_path_max(make_handler, tmp_path):
    D = tmp_path / "D"
    D.mkdir()
    (D / "a.txt").write_text("a")
    h = make_handler(effects=FS + ["kv", "sql", "log"], fs_read=[D], fs_write=[D])
    huge = f"{D}/" + "./" * (1 << 19)  # 1 MiB that resolves to D
    ops = [("fs", op, [huge]) for op in ("exists", "is_file", "is_dir", "stat", "list_dir",
                                         "walk", "glob", "mkdir_p", "remove")]
    ops += [("fs", "copy", [huge, f"{D}/b"]), ("fs", "copy", [f"{D}/a.txt", huge]),
            ("io", "read", [huge]), ("io", "write", [huge, "x"])]
    for kind, op, args in ops:
        t0 = time.monotonic()
        r = h.dispatch(kind, op, args)
        assert time.monotonic() - t0 < 2
        assert is_err(r, f"{kind}.{op}: path argument `{str(D)[:30]}"), (op, r)
        assert "longer than PATH_MAX (4096 bytes)" in _text(r.args[0]) and len(_text(r.args[0])) < 400
    # the families that take a path through scope.scoped: a clear error too
    for kind, op in (("kv", "open"), ("sql", "open"), ("log", "set_sink")):
        try:
            r = h.dispatch(kind, op, [huge])
        except EffectError as e:
            assert "longer than PATH_MAX" in str(e) and len(str(e)) < 400, (op, e)
        else:
            assert r.name == "Err" and "longer than PATH_MAX" in _text(r.args[0]), (op, r)
    h.dispatch("log", "set_sink", ["-"])
    # io.read's read_root join is bounded the same way
    rr = make_handler(effects=["io"], read_root=str(D))
    assert is_err(rr.dispatch("io", "read", ["./" * 2040 + "a.txt"]), "longer than PATH_MAX")
    # up to PATH_MAX a path is the kernel's business, as before
    ok_path = f"{D}/" + "./" * ((4000 - len(str(D))) // 2) + "a.txt"
    assert h.dispatch("io", "read", [ok_path]).args[0] == "a"
    assert sorted(os.listdir(D)) == ["a.txt"]


# -- F5: listings return normalised paths ---------------------------------------------

def test_escape_listing_repeats_the_argument(make_handler, tmp_path):
    D = tmp_path / "D"
    (D / "L").mkdir(parents=True)
    for i in range(200):
        (D / f"f{i:03}").write_text("")
    h = make_handler(effects=["fs_walk"], fs_read=[D])
    n = (4000 - len(str(D))) // 2
    dots = f"{D}/" + "./" * n
    for op in ("walk", "list_dir"):
        got = h.dispatch("fs", op, [dots]).args[0]
        assert all(p == str(D) or (p.startswith(f"{D}/") and "/./" not in p and "//" not in p)
                   for p in got), op
        assert sum(map(len, got)) < 201 * (len(str(D)) + 10)
    pairs = f"{D}/" + "L/../" * ((4000 - len(str(D))) // 5)
    for op, arg in (("walk", pairs), ("list_dir", pairs), ("glob", pairs + "f*"),
                    ("glob", f"{D}/" + "./" * n + "f*"), ("glob", f"{D}/" + ".*/" * 600 + "f1*")):
        got = h.dispatch("fs", op, [arg]).args[0]
        assert got and all(".." not in p.split("/") and "/./" not in p for p in got), (op, got[:3])
        assert sum(map(len, got)) < 201 * (len(str(D)) + 10), op
    assert h.dispatch("fs", "glob", [pairs + "f00*"]).args[0] == [f"{D}/f{i:03}" for i in range(10)]
    # the reference's shapes where nothing needed normalising
    assert h.dispatch("fs", "walk", [f"{D}/L"]).args[0] == [f"{D}/L"]
    assert h.dispatch("fs", "list_dir", [f"{D}/"]).args[0][0].startswith(f"{D}/")


# -- F6: the total bytes a listing returns ---------------------------------------------

def test_escape_listing_total_bytes_bounded(make_handler, tmp_path):
    D = tmp_path / "D"
    D.mkdir()
    for i in range(100):
        (D / ("n" * 200 + f"{i:03}")).write_text("")
    h = make_handler(effects=["fs_walk"], fs_read=[D], limits=Limits(listing_bytes=10_000))
    for op, arg in (("walk", str(D)), ("list_dir", str(D)), ("glob", f"{D}/*")):
        r = h.dispatch("fs", op, [arg])
        assert r.name == "Err" and r.args[0] == (
            f"fs.{op}: results larger than 10000 bytes (the listing_bytes cap)"), (op, r)
    assert Limits().listing_bytes == 64 << 20
    big = make_handler(effects=["fs_walk"], fs_read=[D])
    assert len(big.dispatch("fs", "walk", [str(D)]).args[0]) == 101


# -- F7: glob work ---------------------------------------------------------------------

def test_escape_glob_pattern_work_bounded(make_handler, tmp_path):
    D = tmp_path / "D"
    deep = D
    for _ in range(12):
        deep = deep / "a"
        (deep / "b").mkdir(parents=True)
        (deep / "axx").write_text("")
    h = make_handler(effects=["fs_walk"], fs_read=[D], limits=Limits(walk_entries=50))
    t0 = time.monotonic()
    # `.*` matches `.` and `..`: candidates double at every component
    assert h.dispatch("fs", "glob", [f"{D}/" + ".*/" * 60 + "x"]).name in ("Ok", "Err")
    # `**/a*/**/a*/…` over a deep tree: the classic exponential
    r = h.dispatch("fs", "glob", [f"{D}/" + "**/a*/" * 10 + "axx"])
    assert r.name == "Ok" or "walk_entries cap" in r.args[0], r
    # one component costing its length times every name's
    (D / ("a" * 250)).write_text("")
    r = h.dispatch("fs", "glob", [f"{D}/" + "*a" * 1900 + "*b"])
    assert r.name == "Ok" or "walk_entries cap" in r.args[0], r
    assert time.monotonic() - t0 < 20
    r = h.dispatch("fs", "glob", [f"{D}/" + "a/" * 2000 + "*"])  # deep literal: no recursion
    assert r == r.__class__("Ok", ([],)), r


# -- F8: special files never block -----------------------------------------------------

def test_escape_special_files_never_block(make_handler, tmp_path):
    D = tmp_path / "D"
    D.mkdir()
    fifo = D / "fifo"
    os.mkfifo(fifo)
    (D / "a.txt").write_text("a")
    h = make_handler(effects=FS + ["log"], fs_read=[D, "/dev"], fs_write=[D])

    def unblock():
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        os.close(fd)

    def call(kind, op, *args):
        return bounded(lambda: h.dispatch(kind, op, list(args)), unblock)

    assert is_err(call("io", "read", str(fifo)), "not a regular file")
    assert is_err(call("fs", "copy", str(fifo), f"{D}/c"), "neither a regular file")
    assert call("log", "set_sink", str(fifo)).name == "Err"  # ENXIO: no reader
    for op in ("stat", "exists", "is_file", "list_dir", "walk"):
        assert call("fs", op, str(fifo)) is not None
    assert call("fs", "glob", f"{D}/fi*").args[0] == [str(fifo)]
    # as a destination a FIFO is replaced, never opened
    second = D / "fifo2"
    os.mkfifo(second)
    assert call("fs", "copy", f"{D}/a.txt", str(second)).name == "Ok"
    assert second.read_text() == "a"
    os.mkfifo(D / "fifo3")
    assert call("io", "write", str(D / "fifo3"), "w").name == "Ok"
    # devices and sockets
    for dev in ("/dev/zero", "/dev/null", "/dev/urandom"):
        if os.path.exists(dev):
            assert is_err(call("io", "read", dev), "not a regular file"), dev
            assert call("fs", "copy", dev, f"{D}/d").name == "Err", dev
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(D / "sock"))
        sock.listen(1)
        assert call("io", "read", str(D / "sock")).name == "Err"
        assert call("fs", "copy", str(D / "sock"), f"{D}/s").name == "Err"
    finally:
        sock.close()
    assert not (D / "c").exists() and not (D / "d").exists() and not (D / "s").exists()
    # a huge sparse file: read_bytes ends the read, not the file
    sparse = D / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(1 << 40)
    small = make_handler(effects=["io"], fs_read=[D], limits=Limits(read_bytes=1 << 20))
    t0 = time.monotonic()
    assert is_err(small.dispatch("io", "read", [str(sparse)]), "read cap")
    assert time.monotonic() - t0 < 5
    h.dispatch("log", "set_sink", ["-"])


def test_escape_path_too_long_names_the_op_everywhere(make_handler, tmp_path):
    """Every effect taking a path refuses one over PATH_MAX naming its op
    (kv, sql and the log sink as an err value, serve_tls as an error)."""
    from lexfast import EffectError
    d = tmp_path / "D"
    d.mkdir()
    h = make_handler(effects=["kv", "sql", "log", "net", "io", "fs_write"], fs_read=[d], fs_write=[d])
    long = str(d / ("a" * 5000))
    for kind, op in (("kv", "open"), ("sql", "open"), ("log", "set_sink")):
        r = h.dispatch(kind, op, [long])
        assert r.name == "Err" and _text(r.args[0]).startswith(f"{kind}.{op}: path argument"), r
        assert "PATH_MAX" in _text(r.args[0])
    with pytest.raises(EffectError, match=r"^net\.serve_tls: path argument .*PATH_MAX"):
        h.dispatch("net", "serve_tls", [0, long, long, "h"])
    assert os.listdir(d) == []
