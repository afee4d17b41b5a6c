"""net.serve_ws and chat.*: a real server on 127.0.0.1, the websockets sync
client and raw sockets, a small runner standing in for the VM."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from lexfast import EffectError, PolicyDenied
from lexfast.effects.net.serve import listening, wait_listening
from lexfast.handler import Limits

T = 10



@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Every server thread (acceptor, workers, writers) is gone after a test."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()
                and t is not threading.current_thread()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not left, f"threads left running: {[t.name for t in left]}"

def runner(program, handler, name, args):
    return program[name](handler, *args)


def made(make_handler, program, effects=("net", "chat"), **kw):
    return make_handler(effects=list(effects), program=program, runner=runner, **kw)


@contextlib.contextmanager
def serving(h, name="on_message"):
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = h.dispatch("net", "serve_ws", [0, name])
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=run, name="test serve_ws", daemon=True)
    t.start()
    try:
        yield wait_listening(h, "ws", T)
    finally:
        h.shutdown()
        t.join(T)
        assert not t.is_alive(), "the server did not stop"
    if "error" in outcome:
        raise outcome["error"]
    assert outcome["value"] is None


@contextlib.contextmanager
def clients(port, *paths):
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(connect(f"ws://127.0.0.1:{port}{p}", open_timeout=T,
                                           close_timeout=1)) for p in paths]


def recv_or_none(ws, timeout=0.3):
    try:
        return ws.recv(timeout=timeout)
    except TimeoutError:
        return None


def chat_program(log=None):
    """``say X`` broadcasts ``[id] X`` to the room; ``to N X`` sends X to N
    and tells the sender whether it went; anything failing is told back."""

    def on_message(h, ev):
        if log is not None:
            log.append(ev)
        body = ev["body"]
        try:
            if body.startswith("say "):
                h.dispatch("chat", "broadcast", [ev["room"], f"[{ev['conn_id']}] {body[4:]}"])
            elif body.startswith("to "):
                _, target, text = body.split(" ", 2)
                sent = h.dispatch("chat", "send", [int(target), text])
                h.dispatch("chat", "send", [ev["conn_id"], f"sent={sent}"])
            elif body.startswith("flood "):
                n, size = (int(x) for x in body.split()[1:3])
                payload = "z" * size
                for i in range(n):
                    h.dispatch("chat", "broadcast", [ev["room"], f"{i}:{payload}"])
                h.dispatch("chat", "send", [ev["conn_id"], "flood done"])
            elif body == "bad send":
                h.dispatch("chat", "send", [-1, "x"])
        except EffectError as e:
            h.dispatch("chat", "send", [ev["conn_id"], f"error: {e}"])

    return {"on_message": on_message}


# -- the reference's cases ----------------------------------------------------------

def test_broadcast_reaches_the_room_and_only_the_room(make_handler, capfd):
    log = []
    h = made(make_handler, chat_program(log))
    with serving(h) as port:
        with clients(port, "/lobby", "/lobby", "/general") as (a, b, c):
            a.send("say hello!")
            ra, rb = a.recv(timeout=T), b.recv(timeout=T)
            assert ra == rb and ra.endswith("] hello!")
            assert recv_or_none(c) is None
            c.send("say hi general")
            assert c.recv(timeout=T).endswith("] hi general")
            assert recv_or_none(a) is None and recv_or_none(b) is None
    sender = log[0]
    assert list(sender) == ["body", "conn_id", "room"]
    assert sender["room"] == "lobby" and ra == f"[{sender['conn_id']}] hello!"
    assert log[1]["room"] == "general" and log[1]["conn_id"] != sender["conn_id"]
    assert f"net.serve_ws: listening on ws://127.0.0.1:{port}" in capfd.readouterr().err


def test_direct_send_returns_whether_it_was_queued(make_handler):
    log = []
    h = made(make_handler, chat_program(log))
    with serving(h) as port:
        with clients(port, "/r1", "/r2?x=1") as (a, b):
            b.send("say here")
            assert b.recv(timeout=T).endswith("here")
            b_id = log[-1]["conn_id"]
            assert log[-1]["room"] == "r2"  # the query is not part of the room
            a.send(f"to {b_id} psst")
            assert b.recv(timeout=T) == "psst"
            assert a.recv(timeout=T) == "sent=True"
            a.send("to 999999999 nobody")
            assert a.recv(timeout=T) == "sent=False"
            a.send("bad send")
            assert a.recv(timeout=T) == "error: chat.send: conn_id must be non-negative Int"


def test_chat_outside_a_ws_handler(make_handler):
    h = make_handler(effects=["chat", "net"])
    with pytest.raises(EffectError, match=r"^chat\.broadcast called outside a net\.serve_ws handler$"):
        h.dispatch("chat", "broadcast", ["lobby", "hi"])
    # checked before the arguments, as in the reference
    with pytest.raises(EffectError, match=r"^chat\.send called outside a net\.serve_ws handler$"):
        h.dispatch("chat", "send", [])
    with pytest.raises(EffectError, match=r"^chat\.broadcast called outside"):
        h.fork().dispatch("chat", "broadcast", [1])
    ungated = make_handler(effects=["net"])
    with pytest.raises(PolicyDenied, match="effect `chat` not in --allow-effects"):
        ungated.dispatch("chat", "broadcast", ["lobby", "hi"])


def test_chat_inside_an_http_handler_is_outside_serve_ws(make_handler):
    import requests

    def handle(h, req):
        try:
            h.dispatch("chat", "broadcast", ["lobby", "x"])
        except EffectError as e:
            return {"status": 200, "body": str(e)}
        return {"status": 200, "body": "reached"}

    h = made(make_handler, {"handle": handle})
    t = threading.Thread(target=lambda: h.dispatch("net", "serve", [0, "handle"]), daemon=True)
    t.start()
    try:
        port = wait_listening(h, "http", T)
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=T)
        assert r.text == "chat.broadcast called outside a net.serve_ws handler"
    finally:
        h.shutdown()
        t.join(T)
    assert not t.is_alive()


def test_chat_gate_applies_inside_the_handler(make_handler):
    h = made(make_handler, chat_program(), effects=("net",))
    got = []

    def on_message(hh, ev):
        try:
            hh.dispatch("chat", "broadcast", [ev["room"], "x"])
        except PolicyDenied as e:
            got.append(str(e))

    h = made(make_handler, {"on_message": on_message}, effects=("net",))
    with serving(h) as port:
        with clients(port, "/r") as (a,):
            a.send("hi")
            deadline = time.monotonic() + T
            while not got and time.monotonic() < deadline:
                time.sleep(0.01)
    assert got == ["effect `chat` not in --allow-effects"]


def test_argument_errors(make_handler):
    h = made(make_handler, chat_program())
    for bad in (70000, -5, "1", None):
        with pytest.raises(EffectError, match=r"^net\.serve_ws\(port, on_message\): port must be Int 0\.\.=65535$"):
            h.dispatch("net", "serve_ws", [bad, "on_message"])
    bare = make_handler(effects=["net"])
    with pytest.raises(EffectError, match=r"^net\.serve_ws requires a Program reference$"):
        bare.dispatch("net", "serve_ws", [0, "on_message"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(EffectError, match=rf"^net\.serve_ws bind {port}: Address already in use"):
            h.dispatch("net", "serve_ws", [port, "on_message"])


# -- failures and odd input ------------------------------------------------------------

def test_on_message_errors_go_to_stderr_and_the_connection_lives(make_handler, capfd):
    def on_message(h, ev):
        if ev["body"] == "boom":
            raise EffectError("it broke")
        if ev["body"] == "py":
            raise ValueError("bad")
        h.dispatch("chat", "send", [ev["conn_id"], "echo " + ev["body"]])

    h = made(make_handler, {"on_message": on_message})
    with serving(h) as port:
        with clients(port, "/r") as (a,):
            a.send("boom")
            a.send("py")
            a.send(b"binary frames are ignored")
            a.send("fine")
            assert a.recv(timeout=T) == "echo fine"
            assert recv_or_none(a) is None
    err = capfd.readouterr().err
    assert "on_message " in err and ": it broke\n" in err and ": ValueError: bad\n" in err


def test_budget_is_shared_through_forks(make_handler, capfd):
    def on_message(h, ev):
        h.note_call_budget(3)
        h.dispatch("chat", "send", [ev["conn_id"], str(h.budget_remaining)])

    h = made(make_handler, {"on_message": on_message}, budget=7)
    with serving(h) as port:
        with clients(port, "/r", "/r") as (a, b):
            a.send("1")
            assert a.recv(timeout=T) == "4"
            b.send("2")
            assert b.recv(timeout=T) == "1"
            a.send("3")
            assert recv_or_none(a) is None
    assert "budget exceeded: requested 3, used so far 6, ceiling 7" in capfd.readouterr().err
    assert h.budget_remaining == 1


def test_connection_cap(make_handler):
    h = made(make_handler, chat_program(), limits=Limits(ws_connections=2))
    with serving(h) as port:
        with clients(port, "/r", "/r") as (a, b):
            with pytest.raises(InvalidStatus) as e:
                with clients(port, "/r"):
                    pass
            assert e.value.response.status_code == 503
            a.send("say still fine")
            assert b.recv(timeout=T).endswith("still fine")
        # slots free up when clients leave
        deadline = time.monotonic() + T
        while True:
            try:
                with clients(port, "/r") as (c,):
                    c.send("say back")
                    assert c.recv(timeout=T).endswith("back")
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_bare_tcp_probes_are_dropped_quietly(make_handler, capfd):
    h = made(make_handler, chat_program())
    with serving(h) as port:
        socket.create_connection(("127.0.0.1", port), timeout=T).close()
        with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP, no upgrade
            assert s.recv(1024).startswith(b"HTTP/1.1 426")
        with clients(port, "/r") as (a,):
            a.send("say ok")
            assert a.recv(timeout=T).endswith("ok")
    assert "Traceback" not in capfd.readouterr().err


# -- slow and dead clients --------------------------------------------------------------

def raw_ws(port, path, rcvbuf=None):
    """A client that completes the opening handshake by hand and then reads
    only when told to (a slow client), or never."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(T)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        assert b, head
        head += b
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def text_frame(text: str) -> bytes:
    data = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert len(data) < 126
    return struct.pack("!BB", 0x81, 0x80 | len(data)) + mask + masked


def test_a_client_that_never_reads_is_dropped_not_waited_on(make_handler):
    """Bursts of 128 KiB (within the 256 KiB queue) go to a fast client and to
    one that never reads: the fast one gets every message of every burst
    promptly, the stalled one is dropped once its buffers and queue are full."""
    log = []
    h = made(make_handler, chat_program(log), limits=Limits(ws_queue_bytes=256 << 10))
    with serving(h) as port:
        stalled = raw_ws(port, "/room", rcvbuf=4096)
        try:
            stalled.sendall(text_frame("to 0 hello"))  # registers its id in the log
            deadline = time.monotonic() + T
            while not log and time.monotonic() < deadline:
                time.sleep(0.01)
            stalled_id = log[0]["conn_id"]
            with clients(port, "/room") as (fast,):
                t0 = time.monotonic()
                bursts = 0
                for _ in range(200):
                    bursts += 1
                    fast.send("flood 32 4096")
                    got = []
                    while True:
                        m = fast.recv(timeout=T)
                        if m == "flood done":
                            break
                        got.append(m)
                    assert len(got) == 32 and got[-1].startswith("31:")
                    fast.send(f"to {stalled_id} are you there")
                    if fast.recv(timeout=T) == "sent=False":
                        break
                else:
                    pytest.fail("the stalled client was never dropped")
                assert bursts > 1 and time.monotonic() - t0 < 20
        finally:
            stalled.close()


def test_a_client_that_disconnects_mid_broadcast(make_handler):
    h = made(make_handler, chat_program())
    n = 3000
    with serving(h) as port:
        with clients(port, "/room", "/room") as (a, b):
            b.send("say I am here")
            assert a.recv(timeout=T).endswith("I am here")
            assert b.recv(timeout=T).endswith("I am here")
            a.send(f"flood {n} 512")
            assert b.recv(timeout=T).startswith("0:")
            b.socket.shutdown(socket.SHUT_RDWR)  # gone mid-broadcast, no close frame
            b.socket.close()
            count = 0
            while True:
                m = a.recv(timeout=T)
                if m == "flood done":
                    break
                count += 1
            assert count == n
            a.send("say after")
            assert a.recv(timeout=T).endswith("after")


# -- stopping ------------------------------------------------------------------------------

def test_shutdown_while_busy(make_handler):
    entered = threading.Event()
    release = threading.Event()
    finished = []

    def on_message(h, ev):
        entered.set()
        release.wait(T)
        finished.append(ev["body"])

    h = made(make_handler, {"on_message": on_message})
    with serving(h) as port:
        with clients(port, "/r") as (a,):
            a.send("work")
            assert entered.wait(T)
            threading.Timer(0.2, release.set).start()
            h.fork().shutdown()
            with pytest.raises(ConnectionClosed) as e:
                a.recv(timeout=T)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1001
    assert finished == ["work"] and listening(h) == []


def test_a_stuck_on_message_cannot_hold_the_shutdown(make_handler):
    entered = threading.Event()
    release = threading.Event()

    def on_message(h, ev):
        entered.set()
        release.wait(T)

    h = made(make_handler, {"on_message": on_message}, limits=Limits(serve_grace_s=0.3))
    try:
        with serving(h) as port:
            with clients(port, "/r") as (a,):
                a.send("work")
                assert entered.wait(T)
                t0 = time.monotonic()
        assert time.monotonic() - t0 < 5
    finally:
        release.set()


# -- issue 23: the same front as net.serve ---------------------------------------------

def test_idle_connections_count_against_the_cap_from_the_first_byte(make_handler):
    """A TCP connection that never upgrades takes a slot (it holds a
    descriptor); past the cap new clients get 503, and slots come back when
    the idle ones leave."""
    h = made(make_handler, chat_program(), limits=Limits(ws_connections=2))
    with serving(h) as port:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=T) for _ in range(2)]
        try:
            time.sleep(0.2)
            with pytest.raises(InvalidStatus) as e:
                with clients(port, "/r"):
                    pass
            assert e.value.response.status_code == 503
        finally:
            for s in idle:
                s.close()
        deadline = time.monotonic() + T
        while True:
            try:
                with clients(port, "/r") as (c,):
                    c.send("say back")
                    assert c.recv(timeout=T).endswith("back")
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                time.sleep(0.05)


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"GET /r HTTP/1.1\r\nHost: x\r\nHost: y\r\nUpgrade: websocket\r\n\r\n", id="two-hosts"),
    pytest.param(b"GET /r HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\nConnection: Upgrade\r\n\r\n", id="bare-lf"),
    pytest.param(b"GET /r HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", id="body"),
    pytest.param(b"GET /r HTTP/1.1\r\nHost: x\r\nUpgrade : websocket\r\n\r\n", id="space-before-colon"),
])
def test_the_opening_request_goes_through_the_strict_parser(make_handler, request_bytes):
    h = made(make_handler, chat_program())
    with serving(h) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
            s.sendall(request_bytes)
            got = s.recv(1024)
        assert got.startswith(b"HTTP/1.1 400 "), got


def test_fragmented_text_messages_are_assembled(make_handler):
    log = []
    h = made(make_handler, chat_program(log))
    with serving(h) as port:
        with clients(port, "/r") as (a,):
            a.send(iter(["say fr", "ag", "ments"]))
            assert a.recv(timeout=T).endswith("fragments")
            a.send(b"binary is ignored")
            a.send("say after")
            assert a.recv(timeout=T).endswith("after")
    assert [e["body"] for e in log] == ["say fragments", "say after"]
