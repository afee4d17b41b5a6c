"""WebSocket v2: net.serve_ws_fn / _auth / _actor against the real websockets
client, and net.dial_ws / dial_ws_actor against a real websockets server on
127.0.0.1 (the reference's net_serve_ws_subprotocol, net_serve_ws_fn_auth,
net_serve_ws_fn_actor and net_dial_ws restated). A closure is any Python
object; the test's invoke hook calls it, as in tests/test_invoke.py."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.sync.server import serve

from lexfast import EffectError, PolicyDenied, Variant, err, ok
from lexfast.effects.net import ws_dial
from lexfast.effects.net.serve import wait_listening
from lexfast.effects.net.ws_fn import ws_actor, ws_actor_names
from lexfast.handler import Limits

T = 10


@pytest.fixture(autouse=True)
def no_leftover_threads():
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


class Closure:
    def __init__(self, fn):
        self.fn = fn


def vm_invoke(closure, handler, args):
    return closure.fn(handler, *args)


def C(fn):
    return Closure(fn)


def V(name, *args):
    return Variant(name, tuple(args))


NOOP = V("WsNoOp")


def made(make_handler, effects=("net", "chat"), **kw):
    return make_handler(effects=list(effects), invoke=vm_invoke, **kw)


@contextlib.contextmanager
def serving(h, op, *args):
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = h.dispatch("net", op, [0, *args])
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    t = threading.Thread(target=run, name=f"test {op}", daemon=True)
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


def dial(port, path="/test", **kw):
    kw.setdefault("open_timeout", T)
    kw.setdefault("close_timeout", 1)
    return connect(f"ws://127.0.0.1:{port}{path}", **kw)


def until(pred, timeout=T):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def echo(prefix=""):
    def on_message(h, conn, msg):
        if msg.name == "WsText":
            return V("WsSend", prefix + msg.args[0])
        return NOOP
    return C(on_message)


# -- net.serve_ws_fn: subprotocol negotiation (net_serve_ws_subprotocol) ------------

def test_subprotocol_is_echoed_to_a_client_that_offers_it(make_handler, capfd):
    h = made(make_handler)
    with serving(h, "serve_ws_fn", "ocpp1.6", C(lambda h, c, m: NOOP)) as port:
        with dial(port, subprotocols=["ocpp1.6"]) as ws:
            assert ws.subprotocol == "ocpp1.6"
            assert ws.response.headers["Sec-WebSocket-Protocol"] == "ocpp1.6"
    assert f"net.serve_ws_fn: listening on ws://127.0.0.1:{port}" in capfd.readouterr().err


def test_no_subprotocol_header_when_the_server_has_none(make_handler):
    h = made(make_handler)
    with serving(h, "serve_ws_fn", "", C(lambda h, c, m: NOOP)) as port:
        with dial(port) as ws:
            assert "Sec-WebSocket-Protocol" not in ws.response.headers
        with dial(port, subprotocols=["mqtt"]) as ws:  # offered, the server has none
            assert ws.subprotocol is None


def test_a_subprotocol_the_client_did_not_offer_is_never_echoed(make_handler):
    h = made(make_handler)
    with serving(h, "serve_ws_fn", "ocpp1.6", C(lambda h, c, m: NOOP)) as port:
        with dial(port, subprotocols=["mqtt"]) as ws:
            assert "Sec-WebSocket-Protocol" not in ws.response.headers
        with dial(port) as ws:
            assert "Sec-WebSocket-Protocol" not in ws.response.headers


def test_the_server_value_is_picked_from_a_multi_offer(make_handler):
    h = made(make_handler)
    with serving(h, "serve_ws_fn", "ocpp1.6", C(lambda h, c, m: NOOP)) as port:
        with dial(port, subprotocols=["ocpp2.0.1", "ocpp1.6"]) as ws:
            assert ws.subprotocol == "ocpp1.6"
            assert ws.response.headers["Sec-WebSocket-Protocol"] == "ocpp1.6"


@pytest.mark.parametrize("op,extra", [("serve_ws_fn", 1), ("serve_ws_fn_auth", 2),
                                      ("serve_ws_fn_actor", 2)])
@pytest.mark.parametrize("bad", ["ocpp\r\nX-Injected: yes", "a b", "a,b", "é"])
def test_an_invalid_subprotocol_is_refused_before_binding(make_handler, op, extra, bad):
    h = made(make_handler)
    closures = [C(lambda *a: NOOP)] * extra
    with pytest.raises(EffectError, match=rf"^net\.{op}: subprotocol .* is not a valid HTTP "
                                          "header value"):
        h.dispatch("net", op, [0, bad, *closures])


def test_bad_arguments_and_no_hook(make_handler):
    h = made(make_handler)
    with pytest.raises(EffectError, match=r"^net\.serve_ws_fn\(port, subprotocol, \.\.\.\): "
                                          "port must be Int"):
        h.dispatch("net", "serve_ws_fn", [70000, "", C(lambda *a: NOOP)])
    with pytest.raises(EffectError, match=r"^net\.serve_ws_fn_auth: expected 4 arguments"):
        h.dispatch("net", "serve_ws_fn_auth", [0, "", C(lambda *a: NOOP)])
    with pytest.raises(EffectError, match="Str"):
        h.dispatch("net", "serve_ws_fn", [0, 5, C(lambda *a: NOOP)])
    plain = make_handler(effects=["net"])
    for op, n in (("serve_ws_fn", 1), ("serve_ws_fn_auth", 2), ("serve_ws_fn_actor", 2)):
        with pytest.raises(EffectError, match=rf"^net\.{op}: this handler cannot call closures"):
            plain.dispatch("net", op, [0, "", *[C(lambda *a: NOOP)] * n])
    with pytest.raises(PolicyDenied):
        made(make_handler, effects=()).dispatch("net", "serve_ws_fn", [0, "", C(print)])


# -- net.serve_ws_fn: messages, actions, the close -------------------------------------

def test_messages_actions_and_the_close_in_order(make_handler):
    seen = []
    done = threading.Event()

    def on_message(h, conn, msg):
        seen.append((dict(conn), msg))
        if msg.name == "WsText":
            return V("WsSend", "echo:" + msg.args[0])
        if msg.name == "WsBinary":
            return V("WsSendBinary", [b ^ 0xFF for b in msg.args[0]])
        if msg.name == "WsClose":
            done.set()
        return NOOP

    h = made(make_handler)
    with serving(h, "serve_ws_fn", "", C(on_message)) as port:
        with dial(port, "/room/a?x=1") as ws:
            ws.send("hi")
            assert ws.recv(timeout=T) == "echo:hi"
            ws.send(b"\x00\x01\xfe")
            assert ws.recv(timeout=T) == b"\xff\xfe\x01"
            ws.ping(b"p").wait(T)
            ws.send("ünï")
            assert ws.recv(timeout=T) == "echo:ünï"
        assert done.wait(T)
    conn = seen[0][0]
    assert list(conn) == ["id", "path", "subprotocol"]
    assert conn["path"] == "/room/a" and conn["subprotocol"] == "" and conn["id"].isdigit()
    assert [m for _, m in seen] == [V("WsText", "hi"), V("WsBinary", [0, 1, 254]), V("WsPing"),
                                    V("WsText", "ünï"), V("WsClose")]
    assert all(c == conn for c, _ in seen)


def test_bad_actions_and_raises_go_to_stderr_and_the_connection_lives(make_handler, capfd):
    def on_message(h, conn, msg):
        body = msg.args[0] if msg.name == "WsText" else ""
        if body == "raise":
            raise ValueError("boom\nsecond line")
        if body == "bad":
            return "not an action"
        if body == "bytes":
            return V("WsSendBinary", [1, 256])
        if body == "wrong":
            return V("WsSend", 5)
        if body == "surrogate":
            return V("WsSend", "a\ud800b")
        return V("WsSend", "ok:" + body) if body else NOOP

    h = made(make_handler)
    with serving(h, "serve_ws_fn", "", C(on_message)) as port:
        with dial(port) as ws:
            for body in ("raise", "bad", "bytes", "wrong", "surrogate", "fine"):
                ws.send(body)
            assert ws.recv(timeout=T) == "ok:fine"
    err_text = capfd.readouterr().err
    assert "ValueError: boom\\nsecond line" in err_text
    assert 'unexpected WsAction: Str("not an action")' in err_text
    assert "WsSendBinary payload must be List[Int] of bytes 0..=255" in err_text
    assert "WsSend payload must be Str" in err_text
    assert "WsSend payload is not valid Unicode (a lone surrogate)" in err_text


def test_chat_works_inside_the_closure(make_handler):
    def on_message(h, conn, msg):
        if msg.name == "WsText":
            h.dispatch("chat", "broadcast", [conn["path"].lstrip("/"), "all:" + msg.args[0]])
        return NOOP

    h = made(make_handler)
    with serving(h, "serve_ws_fn", "", C(on_message)) as port:
        with dial(port, "/lobby") as a, dial(port, "/lobby") as b:
            a.send("x")
            assert a.recv(timeout=T) == "all:x" and b.recv(timeout=T) == "all:x"


def test_chat_refuses_a_body_no_text_frame_can_carry(make_handler):
    def on_message(h, conn, msg):
        if msg.name != "WsText":
            return NOOP
        for op, args in (("broadcast", ["lobby", "x\udc80"]), ("send", [1, "\ud800"])):
            try:
                h.dispatch("chat", op, args)
            except EffectError as e:
                h.dispatch("chat", "broadcast", ["lobby", str(e)])
        return NOOP

    h = made(make_handler)
    with serving(h, "serve_ws_fn", "", C(on_message)) as port:
        with dial(port, "/lobby") as ws:
            ws.send("go")
            assert ws.recv(timeout=T) == ("chat.broadcast: body is not valid Unicode (a lone "
                                          "surrogate): no text frame can carry it")
            assert ws.recv(timeout=T).startswith("chat.send: body is not valid Unicode")


def test_a_slow_closure_holds_only_its_own_connection_in_order(make_handler):
    gate = threading.Event()

    def on_message(h, conn, msg):
        if msg.name != "WsText":
            return NOOP
        if msg.args[0] == "wait":
            gate.wait(T)
        return V("WsSend", msg.args[0])

    h = made(make_handler)
    with serving(h, "serve_ws_fn", "", C(on_message)) as port:
        with dial(port) as a, dial(port) as b:
            a.send("wait")
            a.send("after")
            b.send("other")
            assert b.recv(timeout=T) == "other"
            gate.set()
            assert a.recv(timeout=T) == "wait" and a.recv(timeout=T) == "after"


# -- net.serve_ws_fn_auth (net_serve_ws_fn_auth) ------------------------------------------

def test_auth_ok_allows_the_handshake_and_a_round_trip(make_handler):
    h = made(make_handler)
    auth = C(lambda h, path, headers: ok(None))
    with serving(h, "serve_ws_fn_auth", "", auth, echo()) as port:
        with dial(port, "/auth-ok") as ws:
            ws.send("ping")
            assert ws.recv(timeout=T) == "ping"


def test_auth_err_answers_401_with_the_reason_and_skips_on_message(make_handler):
    called = []
    h = made(make_handler)
    auth = C(lambda h, path, headers: err("nope"))
    on_message = C(lambda h, c, m: called.append(m) or NOOP)
    with serving(h, "serve_ws_fn_auth", "", auth, on_message) as port:
        with pytest.raises(InvalidStatus) as info:
            dial(port, "/rejected")
        assert info.value.response.status_code == 401
        assert b"nope" in info.value.response.body
    assert called == []


def test_auth_sees_the_path_and_the_authorization_header(make_handler):
    seen = []

    def auth(h, path, headers):
        seen.append((path, headers))
        values = [x["value"] for x in headers if x["name"] == "authorization"]
        if not values:
            return err("missing Authorization")
        return ok(None) if values[0].startswith("Bearer demo-token") else err("bad token")

    h = made(make_handler)
    with serving(h, "serve_ws_fn_auth", "ocpp1.6", C(auth), echo()) as port:
        with pytest.raises(InvalidStatus) as info:
            dial(port, "/p3")
        assert info.value.response.status_code == 401
        assert b"missing" in info.value.response.body
        with pytest.raises(InvalidStatus) as info:
            dial(port, "/p3", additional_headers={"Authorization": "Basic Zm9vOmJhcg=="})
        assert b"bad token" in info.value.response.body
        with dial(port, "/p3?q=1", additional_headers={"Authorization": "Bearer demo-token-xyz",
                                                       "X-Odd": "caf\u00e9"},
                  subprotocols=["ocpp1.6"]) as ws:
            assert ws.subprotocol == "ocpp1.6"
            ws.send("in")
            assert ws.recv(timeout=T) == "in"
    path, headers = seen[-1]
    assert path == "/p3"
    assert all(list(x) == ["name", "value"] and x["name"] == x["name"].lower() for x in headers)
    assert {"name": "authorization", "value": "Bearer demo-token-xyz"} in headers
    assert not any(x["name"] == "x-odd" for x in headers)  # not ASCII: left out, as upstream


def test_auth_that_raises_or_answers_no_result_is_500(make_handler):
    def auth(h, path, headers):
        if path == "/raise":
            raise RuntimeError("db down")
        return 42

    h = made(make_handler)
    with serving(h, "serve_ws_fn_auth", "", C(auth), echo()) as port:
        for path, text in (("/raise", b"auth callback error: RuntimeError: db down"),
                           ("/odd", b"auth callback returned non-Result value: Int(42)")):
            with pytest.raises(InvalidStatus) as info:
                dial(path=path, port=port)
            assert info.value.response.status_code == 500
            assert text in info.value.response.body


def test_a_verdict_later_than_the_opening_deadline_drops_the_client(make_handler,
                                                                     monkeypatch):
    from lexfast.effects.net import ws as ws_mod

    monkeypatch.setattr(ws_mod, "OPEN_TIMEOUT_S", 0.3)
    gate = threading.Event()
    called = []

    def auth(h, path, headers):
        gate.wait(T)
        return ok(None)

    h = made(make_handler)
    on_message = C(lambda h, c, m: called.append(m) or NOOP)
    with serving(h, "serve_ws_fn_auth", "", C(auth), on_message) as port:
        with pytest.raises(Exception) as info:
            dial(port, "/late")
        assert not isinstance(info.value, InvalidStatus)
        gate.set()
    assert called == []


def test_auth_runs_off_the_loop_and_a_slow_verdict_holds_nobody_else(make_handler):
    gate = threading.Event()

    def auth(h, path, headers):
        if path == "/slow":
            gate.wait(T)
        return ok(None)

    h = made(make_handler)
    with serving(h, "serve_ws_fn_auth", "", C(auth), echo()) as port:
        slow: dict = {}

        def slow_client():
            try:
                with dial(port, "/slow") as ws:
                    ws.send("late")
                    slow["reply"] = ws.recv(timeout=T)
            except Exception as e:  # noqa: BLE001
                slow["error"] = e

        t = threading.Thread(target=slow_client)
        t.start()
        with dial(port, "/fast") as ws:
            ws.send("quick")
            assert ws.recv(timeout=T) == "quick"
        gate.set()
        t.join(T)
        assert slow == {"reply": "late"}


# -- net.serve_ws_fn_actor (net_serve_ws_fn_actor) -----------------------------------------

def name_of_path(h, conn):
    path = conn["path"]
    return "ws:" + path[len("/ws/"):] if path.startswith("/ws/") else ""


def test_outbound_tell_reaches_the_socket_and_the_name_goes_at_disconnect(make_handler):
    h = made(make_handler)
    with serving(h, "serve_ws_fn_actor", "", C(name_of_path), echo("echo:")) as port:
        with dial(port, "/ws/cp001") as ws:
            assert until(lambda: ws_actor(h, "ws:cp001") is not None)
            ws_actor(h, "ws:cp001").tell("hello-from-non-ws")
            assert ws.recv(timeout=T) == "hello-from-non-ws"
            ws.send("in")
            assert ws.recv(timeout=T) == "echo:in"
            with pytest.raises(EffectError, match="accepts Str messages only"):
                ws_actor(h, "ws:cp001").tell(5)
            with pytest.raises(EffectError, match="not valid Unicode"):
                ws_actor(h, "ws:cp001").tell("\udfff")
            actor = ws_actor(h, "ws:cp001")
        assert until(lambda: ws_actor(h, "ws:cp001") is None)
        with pytest.raises(EffectError, match="outbound channel closed"):
            actor.tell("too late")


def test_name_of_empty_skips_registration_and_messages_still_flow(make_handler):
    h = made(make_handler)
    with serving(h, "serve_ws_fn_actor", "", C(lambda h, c: ""), echo("seen:")) as port:
        with dial(port, "/anywhere") as ws:
            ws.send("ping")
            assert ws.recv(timeout=T) == "seen:ping"
            assert ws_actor_names(h) == []


def test_a_taken_name_or_a_bad_name_of_closes_that_connection(make_handler, capfd):
    def name_of(h, conn):
        if conn["path"] == "/bad":
            return 7
        if conn["path"] == "/raise":
            raise RuntimeError("no name")
        return "same"

    h = made(make_handler)
    with serving(h, "serve_ws_fn_actor", "", C(name_of), echo()) as port:
        with dial(port, "/one") as first:
            assert until(lambda: ws_actor_names(h) == ["same"])
            for path in ("/two", "/bad", "/raise"):
                with dial(port, path) as ws, pytest.raises(ConnectionClosed):
                    ws.recv(timeout=T)
            first.send("still here")
            assert first.recv(timeout=T) == "still here"
    text = capfd.readouterr().err
    assert "conc.register('same') failed" in text
    assert "name_of must return Str, got Int(7)" in text
    assert "name_of error: RuntimeError: no name" in text


def test_actors_are_per_session(make_handler):
    h = made(make_handler)
    other = made(make_handler)
    with serving(h, "serve_ws_fn_actor", "", C(lambda h, c: "cp"), echo()) as port:
        with dial(port, "/x"):
            assert until(lambda: ws_actor(h, "cp") is not None)
            assert ws_actor(h.fork(), "cp") is not None
            assert ws_actor(other, "cp") is None


# -- net.dial_ws against a real websockets server (net_dial_ws) --------------------------------

@contextlib.contextmanager
def ws_server(handler, **kw):
    server = serve(handler, "127.0.0.1", 0, compression=None, **kw)
    t = threading.Thread(target=server.serve_forever, name="test ws server")
    t.start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        server.shutdown()
        t.join(T)


def run_dial(h, url, on_open, on_message, subprotocol="", op="dial_ws", name=None):
    args = [url, subprotocol] + ([name] if name is not None else []) + [on_open, on_message]
    return h.dispatch("net", op, args)


def test_dial_runs_on_open_then_replies_to_inbound_text(make_handler):
    log = []

    def server(ws):
        ws.send("ping")
        for _ in range(2):
            log.append(ws.recv(timeout=T))
        ws.close()

    closes = []

    def on_message(h, msg):
        if msg.name == "WsText":
            return V("WsSend", "pong")
        closes.append(msg)
        return NOOP

    h = made(make_handler)
    with ws_server(server) as port:
        result = run_dial(h, f"ws://127.0.0.1:{port}", C(lambda h: V("WsSend", "boot")),
                          C(on_message))
    assert result == ok(None)
    assert log == ["boot", "pong"]
    assert closes == [V("WsClose")]


def test_dial_binary_both_ways(make_handler):
    got = []

    def server(ws):
        ws.send(b"\x01\x02")
        got.append(ws.recv(timeout=T))
        ws.close()

    def on_message(h, msg):
        if msg.name == "WsBinary":
            return V("WsSendBinary", list(reversed(msg.args[0])))
        return NOOP

    h = made(make_handler)
    with ws_server(server) as port:
        assert run_dial(h, f"ws://127.0.0.1:{port}/", C(lambda h: NOOP), C(on_message)) == ok(None)
    assert got == [b"\x02\x01"]


def test_dial_connect_failure_and_bad_urls_are_err(make_handler):
    h = made(make_handler)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        r = run_dial(h, f"ws://127.0.0.1:{port}", C(lambda h: NOOP), C(lambda h, m: NOOP))
    assert r.name == "Err" and "connect" in r.args[0]
    for url, needle in (("not a url", "bad URL"), ("http://127.0.0.1/", "not ws or wss"),
                        ("ws://user:pw@127.0.0.1/", "user info")):
        r = run_dial(h, url, C(lambda h: NOOP), C(lambda h, m: NOOP))
        assert r.name == "Err" and needle in r.args[0], (url, r)
    r = run_dial(h, "ws://127.0.0.1:1", C(lambda h: NOOP), C(lambda h, m: NOOP), "a\r\nb: c")
    assert r == err('net.dial_ws: invalid subprotocol Str("a\\r\\nb: c"): not a valid HTTP header '
                 'value (RFC 6455: a token)')


def test_dial_sends_the_subprotocol(make_handler):
    seen = []

    def server(ws):
        seen.append(ws.request.headers.get("Sec-WebSocket-Protocol"))
        ws.close()

    h = made(make_handler)
    with ws_server(server, subprotocols=["ocpp1.6"]) as port:
        r = run_dial(h, f"ws://127.0.0.1:{port}", C(lambda h: NOOP), C(lambda h, m: NOOP),
                     "ocpp1.6")
    assert r == ok(None) and seen == ["ocpp1.6"]


def test_dial_host_outside_allow_net_host_is_denied(make_handler):
    h = made(make_handler, hosts=["example.org"])
    with pytest.raises(PolicyDenied, match=r"net\.dial_ws: net call to host `127\.0\.0\.1` not "
                                           r"in --allow-net-host") as info:
        run_dial(h, "ws://127.0.0.1:9/", C(lambda h: NOOP), C(lambda h, m: NOOP))
    assert info.value.host == "127.0.0.1"
    # the host that is checked is the host that is dialled: never example.org's pass
    for url in ("ws://example.org@127.0.0.1:9/", "ws://127.0.0.1:9\\@example.org/",
                "ws://127.0.0.1:9#@example.org/", "ws://127.0.0.1:9?@example.org/"):
        try:
            r = run_dial(h, url, C(lambda h: NOOP), C(lambda h, m: NOOP))
        except PolicyDenied as e:
            assert e.host == "127.0.0.1"
        else:
            assert r.name == "Err" and "bad URL" in r.args[0], (url, r)
    ok_h = made(make_handler, hosts=["127.0.0.1"])

    def server(ws):
        ws.close()

    with ws_server(server) as port:
        assert run_dial(ok_h, f"ws://127.0.0.1:{port}", C(lambda h: NOOP),
                        C(lambda h, m: NOOP)) == ok(None)


def test_dial_a_huge_frame_is_a_clear_err(make_handler):
    def server(ws):
        with contextlib.suppress(ConnectionClosed):
            ws.send("x" * (ws_dial.MAX_MESSAGE_BYTES + 1))
            ws.recv(timeout=T)

    h = made(make_handler)
    with ws_server(server, max_size=None) as port:
        r = run_dial(h, f"ws://127.0.0.1:{port}", C(lambda h: NOOP), C(lambda h, m: NOOP))
    assert r.name == "Err" and "byte limit" in r.args[0], r


@contextlib.contextmanager
def raw_server(behaviour):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    stop = threading.Event()

    def run():
        lsock.settimeout(T)
        try:
            conn, _ = lsock.accept()
        except OSError:
            return
        with conn:
            behaviour(conn, stop)

    t = threading.Thread(target=run, name="test raw server")
    t.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        stop.set()
        t.join(T)
        lsock.close()


def test_dial_a_silent_server_times_out(make_handler, monkeypatch):
    monkeypatch.setattr(ws_dial, "OPEN_TIMEOUT_S", 0.5)
    h = made(make_handler)
    with raw_server(lambda conn, stop: stop.wait(T)) as port:
        t0 = time.monotonic()
        r = run_dial(h, f"ws://127.0.0.1:{port}", C(lambda h: NOOP), C(lambda h, m: NOOP))
        assert time.monotonic() - t0 < T
    assert r.name == "Err" and "timed out" in r.args[0], r


def test_dial_a_server_closing_mid_handshake_is_err(make_handler):
    def behaviour(conn, stop):
        conn.settimeout(T)
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgr")

    h = made(make_handler)
    with raw_server(behaviour) as port:
        r = run_dial(h, f"ws://127.0.0.1:{port}", C(lambda h: NOOP), C(lambda h, m: NOOP))
    assert r.name == "Err" and r.args[0].startswith("net.dial_ws: connect to"), r


def _handshake_then(conn, after):
    import base64
    import hashlib

    conn.settimeout(T)
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(4096)
    key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
           if line.lower().startswith(b"sec-websocket-key:")][0]
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                              .digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    after(conn)


def test_dial_a_server_that_stops_reading_ends_it_with_err(make_handler, monkeypatch):
    monkeypatch.setattr(ws_dial, "SEND_TIMEOUT_S", 0.3)
    h = made(make_handler)
    big = V("WsSend", "x" * (32 << 20))  # well past loopback's socket buffers
    with raw_server(lambda conn, stop: _handshake_then(conn, lambda c: stop.wait(T))) as port:
        t0 = time.monotonic()
        r = run_dial(h, f"ws://127.0.0.1:{port}", C(lambda h: big), C(lambda h, m: NOOP))
        assert time.monotonic() - t0 < T
    assert r == err("net.dial_ws: read: the server took nothing sent for 0.3 s")


def test_dial_an_idle_connection_outlives_the_opening_deadline(make_handler, monkeypatch):
    monkeypatch.setattr(ws_dial, "OPEN_TIMEOUT_S", 0.3)

    def server(ws):
        time.sleep(1.0)
        ws.send("late")
        with contextlib.suppress(ConnectionClosed):
            ws.recv(timeout=T)

    got = []

    def on_message(h, msg):
        got.append(msg)
        return V("WsSend", "bye") if msg.name == "WsText" else NOOP

    h = made(make_handler)
    with ws_server(server) as port:
        r = run_dial(h, f"ws://127.0.0.1:{port}", C(lambda h: NOOP), C(on_message))
    assert r == ok(None) and got == [V("WsText", "late"), V("WsClose")]


def test_dial_a_server_that_drops_the_connection_is_err(make_handler):
    h = made(make_handler)
    with raw_server(lambda conn, stop: _handshake_then(conn, lambda c: None)) as port:
        r = run_dial(h, f"ws://127.0.0.1:{port}", C(lambda h: NOOP), C(lambda h, m: NOOP))
    assert r == err("net.dial_ws: read: the connection ended without a close frame")


def test_dial_a_rejected_handshake_is_err(make_handler):
    h = made(make_handler)
    auth = C(lambda h, path, headers: err("nope"))
    with serving(h, "serve_ws_fn_auth", "", auth, echo()) as port:
        r = run_dial(h, f"ws://127.0.0.1:{port}/x", C(lambda h: NOOP), C(lambda h, m: NOOP))
    assert r.name == "Err" and "HTTP 401" in r.args[0], r


def test_dial_closure_failures_end_it_with_err_and_refusals_propagate(make_handler):
    def server(ws):
        with contextlib.suppress(ConnectionClosed):
            ws.send("hello")
            ws.recv(timeout=T)

    def boom(h, msg):
        raise ValueError("bad handler")

    h = made(make_handler)
    with ws_server(server) as port:
        url = f"ws://127.0.0.1:{port}"
        r = run_dial(h, url, C(lambda h: NOOP), C(boom))
        assert r == err("net.dial_ws: on_message: ValueError: bad handler")
        r = run_dial(h, url, C(lambda h: 5), C(boom))
        assert r.name == "Err" and "on_open action: unexpected WsAction: Int(5)" in r.args[0]
        r = run_dial(h, url, C(lambda h: V("WsSend", "\ud800")), C(boom))
        assert r.name == "Err" and "on_open action: WsSend payload is not valid Unicode" in \
            r.args[0]

        def deny(h):
            return h.dispatch("io", "read", ["/etc/passwd"])

        with pytest.raises(PolicyDenied):
            run_dial(h, url, C(deny), C(boom))


def test_dial_against_our_own_server_and_shutdown_ends_it(make_handler):
    server_h = made(make_handler)
    client_h = made(make_handler)
    got = []
    with serving(server_h, "serve_ws_fn", "ocpp1.6", echo("s:")) as port:
        def on_message(h, msg):
            got.append(msg)
            if msg == V("WsText", "s:boot"):
                h.shutdown()  # ends the dial after this answer
            return NOOP

        r = run_dial(client_h, f"ws://127.0.0.1:{port}/cp", C(lambda h: V("WsSend", "boot")),
                     C(on_message), "ocpp1.6")
    assert r == ok(None)
    assert got == [V("WsText", "s:boot"), V("WsClose")]


def test_dial_ws_actor_tell_goes_out_and_the_name_goes_at_the_end(make_handler):
    log = []

    def server(ws):
        for _ in range(2):
            log.append(ws.recv(timeout=T))
        ws.close()

    h = made(make_handler)
    told = []

    def on_open(h):
        def tell():
            actor = ws_actor(h, "cp1")
            told.append(actor is not None)
            actor.tell("from-elsewhere")
        threading.Thread(target=tell).start()
        return V("WsSend", "boot")

    with ws_server(server) as port:
        r = run_dial(h, f"ws://127.0.0.1:{port}", C(on_open), C(lambda h, m: NOOP),
                     op="dial_ws_actor", name="cp1")
    assert r == ok(None) and told == [True]
    assert log == ["boot", "from-elsewhere"]
    assert ws_actor(h, "cp1") is None


def test_dial_ws_actor_name_taken_is_err(make_handler):
    def server(ws):  # each connection: closed once it has one message (or the client left)
        with contextlib.suppress(ConnectionClosed):
            ws.recv(timeout=T)

    h = made(make_handler)
    with ws_server(server) as port:
        url = f"ws://127.0.0.1:{port}"
        inner = []

        def on_open(h):  # the outer holds "dup" while the inner tries it
            inner.append(run_dial(h, url, C(lambda h: NOOP), C(lambda h, m: NOOP),
                                  op="dial_ws_actor", name="dup"))
            return V("WsSend", "done")

        r = run_dial(h, url, C(on_open), C(lambda h, m: NOOP), op="dial_ws_actor", name="dup")
    assert r == ok(None)
    assert inner[0].name == "Err" and "conc.register('dup') failed" in inner[0].args[0]
    assert ws_actor_names(h) == []


def test_dial_wss_verifies_the_certificate(make_handler, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))

    def server(ws):
        ws.send("secure")
        with contextlib.suppress(ConnectionClosed):
            ws.recv(timeout=T)

    def on_message(h, msg):
        return V("WsSend", "thanks") if msg.name == "WsText" else NOOP

    with ws_server(server, ssl=server_ctx) as port:
        untrusted = made(make_handler)
        r = run_dial(untrusted, f"wss://127.0.0.1:{port}", C(lambda h: NOOP), C(on_message))
        assert r.name == "Err" and "CERTIFICATE_VERIFY_FAILED" in r.args[0], r
        trusted = made(make_handler, limits=Limits(http_ca_bundle=str(ca_path)))
        got = []

        def record(h, msg):
            got.append(msg)
            return on_message(h, msg)

        r = run_dial(trusted, f"wss://127.0.0.1:{port}", C(lambda h: NOOP), C(record))
    assert r == ok(None) and got[0] == V("WsText", "secure")
