"""Faults (issue 9): a full disk under kv and sql, file descriptors
exhausted, a child killed mid-read, an HTTP peer that stalls or resets, a
WebSocket client that vanishes mid-broadcast, SIGINT during net.serve. Each
ends in a clear error or a clean stop, with no acknowledged write lost and no
corrupted store on reopen. Real resources, every wait bounded.

The full disk is a 1 MiB tmpfs when this process may mount one (root on
Linux); otherwise RLIMIT_FSIZE stands in for it (writes past 1 MiB fail with
EFBIG, SIGXFSZ ignored). ``LEXFAST_TEST_NO_MOUNT=1`` forces the fallback.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import lexfast
from lexfast import NONE, CapturedSink, DefaultHandler, Map, Policy, some

# A test's own children start with default signal dispositions and an empty
# mask, whatever pytest inherited (SIGINT ignored under nohup or a job
# runner, signals blocked): this prefix resets them, then execs the command.
_RESET_SIGNALS = (
    "import os, signal, sys\n"
    "for s in signal.valid_signals():\n"
    "    try:\n"
    "        signal.signal(s, signal.SIG_DFL)\n"
    "    except (OSError, ValueError):\n"
    "        pass\n"
    "signal.pthread_sigmask(signal.SIG_SETMASK, [])\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n")
CLEAN_PY = [sys.executable, "-c", _RESET_SIGNALS, sys.executable]


T = 10


def child_env():
    """The environment for a child Python: it imports the lexfast this run
    imports (the installed build or the source tree), whatever its cwd."""
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(lexfast.__file__)))
    return dict(os.environ, PYTHONPATH=pkg_parent + os.pathsep + os.environ.get("PYTHONPATH", ""))


# -- a small disk -------------------------------------------------------------------------

@contextlib.contextmanager
def small_disk(tmp_path, size=1 << 20):
    """``(directory, how, grow)``: a directory whose file system fills after
    about ``size`` bytes; ``grow()`` makes room again."""
    d = tmp_path / "small"
    d.mkdir()
    mounted = False
    if os.environ.get("LEXFAST_TEST_NO_MOUNT", "") in ("", "0") and sys.platform.startswith("linux"):
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(d)],
                           capture_output=True, timeout=T)
        mounted = r.returncode == 0
    if mounted:
        def grow():
            subprocess.run(["mount", "-o", f"remount,size={size * 8}", str(d)], check=True, timeout=T)
        try:
            yield d, "tmpfs", grow
        finally:
            for _ in range(50):
                if subprocess.run(["umount", str(d)], capture_output=True, timeout=T).returncode == 0:
                    break
                time.sleep(0.1)
        return
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, old_limit[1]))

    def grow():
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)

    try:
        yield d, "rlimit_fsize", grow
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def store_handler(d):
    return DefaultHandler(Policy(allow_effects=["kv", "sql"], allow_fs_write=[str(d)]),
                          sink=CapturedSink())


def test_disk_full_while_writing_kv(tmp_path):
    with small_disk(tmp_path) as (d, how, grow):
        path = str(d / "kv")
        h = store_handler(d)
        try:
            k = h.dispatch("kv", "open", [path]).args[0]
            acked = {}
            failure = None
            for i in range(400):
                value = os.urandom(16_000)
                r = h.dispatch("kv", "put", [k, f"k{i:04}", value])
                if r.name != "Ok":
                    failure = r
                    break
                acked[f"k{i:04}"] = value
            assert failure is not None, f"the disk never filled ({how})"
            assert failure.args[0].startswith("kv.put: "), failure  # a clear err value, no raise
            assert len(acked) > 5
            # the handle still answers for what was acknowledged
            assert h.dispatch("kv", "get", [k, "k0000"]) == some(acked["k0000"])
            grow()  # and takes writes again once there is room
            assert h.dispatch("kv", "put", [k, "same-handle", b"y"]).name == "Ok"
            acked["same-handle"] = b"y"
        finally:
            h.close()
        h = store_handler(d)
        try:
            k = h.dispatch("kv", "open", [path]).args[0]
            keys = h.dispatch("kv", "list_prefix", [k, ""])
            assert set(acked) <= set(keys)  # every acknowledged put is there
            for key, value in acked.items():
                assert h.dispatch("kv", "get", [k, key]) == some(value), key
            # with room again, the store takes writes
            assert h.dispatch("kv", "put", [k, "after", b"x" * 100_000]).name == "Ok"
            assert h.dispatch("kv", "get", [k, "after"]) == some(b"x" * 100_000)
        finally:
            h.close()


def test_disk_full_while_writing_sql(tmp_path):
    with small_disk(tmp_path) as (d, how, grow):
        path = str(d / "s.db")
        h = store_handler(d)
        try:
            k = h.dispatch("sql", "open", [path]).args[0]
            assert h.dispatch("sql", "exec", [k, "CREATE TABLE t(i INTEGER PRIMARY KEY, b TEXT)",
                                              []]).name == "Ok"
            acked = {}
            failure = None
            for i in range(400):
                value = os.urandom(8_000).hex()
                r = h.dispatch("sql", "exec", [k, "INSERT INTO t VALUES (?, ?)", [str(i), value]])
                if r.name != "Ok":
                    failure = r
                    break
                acked[i] = value
            assert failure is not None, f"the disk never filled ({how})"
            text = failure.args[0]["message"]  # Err(SqlError)
            assert text.startswith("sql.exec: "), failure
            assert "full" in text or "too large" in text or "I/O" in text or "disk" in text, failure
            assert len(acked) > 5
            n = h.dispatch("sql", "query", [k, "SELECT count(*) AS n FROM t", []])
            assert n.args[0][0]["n"] == len(acked)
            grow()
            assert h.dispatch("sql", "exec", [k, "INSERT INTO t VALUES (99999, 'same')", []]).name == "Ok"
            acked[99999] = "same"
        finally:
            h.close()
        h = store_handler(d)
        try:
            k = h.dispatch("sql", "open", [path]).args[0]
            check = h.dispatch("sql", "query", [k, "PRAGMA integrity_check", []])
            assert check.args[0] == [{"integrity_check": "ok"}]
            rows = h.dispatch("sql", "query", [k, "SELECT i, b FROM t ORDER BY i", []]).args[0]
            assert {r["i"]: r["b"] for r in rows} == acked
            assert h.dispatch("sql", "exec", [k, "INSERT INTO t VALUES (100000, 'after')", []]).name == "Ok"
        finally:
            h.close()


def test_disk_full_during_io_write_keeps_the_old_file(tmp_path):
    with small_disk(tmp_path) as (d, how, grow):
        h = DefaultHandler(Policy(allow_effects=["io"], allow_fs_read=[str(d)],
                                  allow_fs_write=[str(d)]), sink=CapturedSink())
        try:
            target = str(d / "f.txt")
            assert h.dispatch("io", "write", [target, "old contents"]).name == "Ok"
            r = h.dispatch("io", "write", [target, "n" * (2 << 20)])
            assert r.name == "Err" and ("No space left" in r.args[0] or "too large" in r.args[0]), (how, r)
            # the old file or the whole new one, never half; no temp file left behind
            assert h.dispatch("io", "read", [target]).args[0] == "old contents"
            assert os.listdir(d) == ["f.txt"]
            grow()
            assert h.dispatch("io", "write", [target, "n" * (2 << 20)]).name == "Ok"
            assert os.path.getsize(target) == 2 << 20
        finally:
            h.close()


# -- file descriptors exhausted --------------------------------------------------------------

_NOFILE_CHILD = textwrap.dedent(r"""
    import json, os, resource, sys
    from lexfast import CapturedSink, DefaultHandler, EffectError, Map, NONE, Policy
    d = sys.argv[1]
    h = DefaultHandler(Policy(allow_effects=["io", "fs_walk", "fs_write", "kv", "sql", "proc"],
                              allow_fs_read=[d], allow_fs_write=[d]), sink=CapturedSink())
    with open(os.path.join(d, "in.txt"), "w") as f:
        f.write("hello")
    OPTS = {"cwd": NONE, "env": Map(), "stdin": NONE}
    calls = {
        "io.read": ("io", "read", [d + "/in.txt"]),
        "io.write": ("io", "write", [d + "/out.txt", "x"]),
        "fs.list_dir": ("fs", "list_dir", [d]),
        "fs.copy": ("fs", "copy", [d + "/in.txt", d + "/copy.txt"]),
        "kv.open": ("kv", "open", [d + "/kv"]),
        "sql.open": ("sql", "open", [d + "/s.db"]),
        "process.spawn": ("process", "spawn", ["true", [], OPTS]),
        "proc.spawn": ("proc", "spawn", ["true", []]),
    }
    def run():
        out = {}
        for name, (k, op, args) in calls.items():
            try:
                r = h.dispatch(k, op, args)
                if hasattr(r, "name"):
                    out[name] = [r.name, str(r.args[0]) if r.args else ""]
                    if r.name == "Ok" and k in ("kv", "sql"):
                        h.dispatch(k, "close", [r.args[0]])
                    if r.name == "Ok" and (k, op) == ("process", "spawn"):
                        h.dispatch("process", "wait", [r.args[0]])
                else:
                    out[name] = ["value", repr(r)[:200]]
            except EffectError as e:
                out[name] = ["EffectError", str(e)]
            except BaseException as e:
                out[name] = ["CRASH " + type(e).__name__, str(e)]
        return out
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    rounds = []
    for _ in range(2):  # the first round starts cold, the second with every helper made
        fillers = []
        try:
            while True:
                fillers.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        starved = run()
        for fd in fillers:
            os.close(fd)
        for name in ("/out.txt", "/copy.txt"):
            try:
                os.unlink(d + name)
            except FileNotFoundError:
                pass
        rounds.append({"starved": starved, "recovered": run(), "fillers": len(fillers)})
    h.close()
    print(json.dumps(rounds))
""")


def test_file_descriptors_exhausted(tmp_path):
    p = subprocess.run([sys.executable, "-c", _NOFILE_CHILD, str(tmp_path)], capture_output=True,
                       text=True, timeout=60, env=child_env(), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    for out in json.loads(p.stdout.strip().splitlines()[-1]):
        assert out["fillers"] > 0
        for name, (kind, msg) in out["starved"].items():
            # a clear error: an err value or an EffectError, never an internal error or a crash
            assert kind in ("Err", "EffectError"), (name, kind, msg)
            assert "internal error" not in msg, (name, msg)
            # SQLite words it its own way
            assert "Too many open files" in msg or \
                msg == "sql.open: unable to open database file", (name, msg)
        for name, (kind, msg) in out["recovered"].items():
            assert kind in ("Ok", "value"), (name, kind, msg)
    assert (tmp_path / "in.txt").read_text() == "hello"


# -- a child that dies mid-read ---------------------------------------------------------------

OPTS0 = {"cwd": NONE, "env": Map(), "stdin": NONE}


def test_child_killed_mid_read(make_handler):
    h = make_handler(effects=["proc"])
    hd = h.dispatch("process", "spawn", ["sh", ["-c", "echo $$; echo second; exec sleep 30"],
                                         OPTS0]).args[0]
    pid = int(h.dispatch("process", "read_stdout_line", [hd]).args[0])
    assert h.dispatch("process", "read_stdout_line", [hd]) == some("second")
    # the next read blocks; the child is killed from outside while it waits
    threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
    t0 = time.monotonic()
    assert h.dispatch("process", "read_stdout_line", [hd]) == NONE
    assert time.monotonic() - t0 < T
    assert h.dispatch("process", "read_stdout_line", [hd]) == NONE  # and forever after
    assert h.dispatch("process", "read_stderr_line", [hd]) == NONE
    assert h.dispatch("process", "wait", [hd]) == {"code": -1, "signaled": True}


def test_child_killed_by_process_kill_during_a_blocked_read(make_handler):
    h = make_handler(effects=["proc"])
    hd = h.dispatch("process", "spawn", ["sleep", ["30"], OPTS0]).args[0]
    threading.Timer(0.3, lambda: h.fork().dispatch("process", "kill", [hd, "SIGKILL"])).start()
    t0 = time.monotonic()
    assert h.dispatch("process", "read_stdout_line", [hd]) == NONE
    assert time.monotonic() - t0 < T
    assert h.dispatch("process", "wait", [hd]) == {"code": -1, "signaled": True}


# -- HTTP peers that stall or reset --------------------------------------------------------------

@contextlib.contextmanager
def raw_peer(behaviour):
    """A TCP server on 127.0.0.1 that runs ``behaviour(conn)`` per connection."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    stop = threading.Event()
    conns = []

    def loop():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            conns.append(c)
            threading.Thread(target=behaviour, args=(c, stop), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join(T)
        srv.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()


def _read_head(c):
    c.settimeout(T)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = c.recv(4096)
        if not b:
            break
        buf += b
    return buf


def _stall(c, stop):
    _read_head(c)
    stop.wait(T)


def _stall_mid_body(c, stop):
    _read_head(c)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
    stop.wait(T)


def _rst(c):
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def _reset(c, stop):
    _read_head(c)
    _rst(c)


def _reset_mid_body(c, stop):
    _read_head(c)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
    time.sleep(0.05)
    _rst(c)


def _send(h, port, timeout_ms=None):
    req = {"method": "GET", "url": f"http://127.0.0.1:{port}/", "headers": Map(), "body": NONE,
           "timeout_ms": some(timeout_ms) if timeout_ms is not None else NONE}
    return h.dispatch("http", "send", [req])


@pytest.mark.parametrize("behaviour", [_stall, _stall_mid_body], ids=["no-answer", "mid-body"])
def test_http_peer_that_stalls_is_a_timeout(make_handler, behaviour):
    h = make_handler(effects=["net"])
    with raw_peer(behaviour) as port:
        t0 = time.monotonic()
        r = _send(h, port, timeout_ms=400)
        took = time.monotonic() - t0
    assert r.name == "Err" and r.args[0].name == "TimeoutError", r
    assert took < 5


@pytest.mark.parametrize("behaviour", [_reset, _reset_mid_body], ids=["before-answer", "mid-body"])
def test_http_peer_that_resets_is_a_network_error(make_handler, behaviour):
    h = make_handler(effects=["net"])
    with raw_peer(behaviour) as port:
        r = _send(h, port, timeout_ms=5000)
        assert r.name == "Err" and r.args[0].name == "NetworkError", r
        r2 = h.dispatch("http", "get", [f"http://127.0.0.1:{port}/"])
        assert r2.name == "Err" and r2.args[0].name == "NetworkError", r2
        r3 = h.dispatch("net", "get", [f"http://127.0.0.1:{port}/"])
        assert r3.name == "Err" and r3.args[0].startswith("transport: "), r3


# -- a WebSocket client that vanishes mid-broadcast -------------------------------------------------

def _ws_runner(program, handler, name, args):
    return program[name](handler, *args)


def test_websocket_client_vanishes_mid_broadcast(make_handler):
    from websockets.sync.client import connect

    from lexfast.effects.net.serve import wait_listening

    n = 2000

    def on_message(h, ev):
        if ev["body"] == "join":  # on_message runs only once the peer is in its room
            h.dispatch("chat", "send", [ev["conn_id"], "joined"])
        elif ev["body"] == "flood":
            for i in range(n):
                h.dispatch("chat", "broadcast", [ev["room"], f"{i}:" + "z" * 256])
            h.dispatch("chat", "broadcast", [ev["room"], "done"])

    h = make_handler(effects=["net", "chat"], program={"on_message": on_message}, runner=_ws_runner)
    outcome = {}

    def serve():
        try:
            outcome["value"] = h.dispatch("net", "serve_ws", [0, "on_message"])
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        port = wait_listening(h, "ws", T)
        with contextlib.ExitStack() as stack:
            a, b, gone = (stack.enter_context(connect(f"ws://127.0.0.1:{port}/room", open_timeout=T,
                                                      close_timeout=1)) for _ in range(3))
            for ws in (a, b, gone):
                ws.send("join")
                assert ws.recv(timeout=T) == "joined"
            a.send("flood")
            assert gone.recv(timeout=T).startswith("0:")
            gone.socket.shutdown(socket.SHUT_RDWR)  # vanishes: no close frame
            gone.socket.close()
            for name, survivor in (("a", a), ("b", b)):
                got = []
                while True:
                    m = survivor.recv(timeout=T)
                    if m == "done":
                        break
                    got.append(int(m.split(":")[0]))
                assert got == list(range(n)), (name, len(got), got[:3], got[-3:])
    finally:
        h.shutdown()
        t.join(T)
    assert not t.is_alive() and outcome.get("value", "missing") is None, outcome


# -- SIGINT during net.serve ---------------------------------------------------------------------

_SERVE_CHILD = textwrap.dedent(r"""
    import sys, threading
    from lexfast import CapturedSink, DefaultHandler, Policy
    from lexfast.effects.net.serve import wait_listening

    def runner(program, handler, name, args):
        return {"status": 200, "body": "up"}

    h = DefaultHandler(Policy(allow_effects=["net"]), sink=CapturedSink(),
                       program={"h": None}, runner=runner)

    def announce():
        print(wait_listening(h, "http", 10), flush=True)

    threading.Thread(target=announce, daemon=True).start()
    r = h.dispatch("net", "serve", [0, "h"])
    h.close()
    print("returned", repr(r), flush=True)
""")


def test_sigint_during_net_serve_stops_cleanly(tmp_path):
    p = subprocess.Popen([*CLEAN_PY, "-c", _SERVE_CHILD], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=child_env(), cwd=tmp_path)
    try:
        port = int(p.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            s.settimeout(T)
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, errs = p.communicate(timeout=T)
        assert time.monotonic() - t0 < 8
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(T)
    assert p.returncode == 0, errs[-3000:]
    assert "returned None" in out
    assert "Traceback" not in errs
    with pytest.raises(OSError):  # the port is released
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
