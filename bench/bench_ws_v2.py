"""WebSocket v2 round trips: lexfast's ``net.serve_ws_fn`` and ``net.dial_ws``
against the library a user would otherwise pick (websockets' own threaded
sync server and sync client).

Group ``ws-echo`` (one 64-byte text message sent and its echo read, by a
websockets sync client on one kept connection):

- ``serve_ws_fn``: lexfast's front (uvloop, the sans-I/O protocol, the
  worker pool) calling a trivial ``on_message`` closure through
  ``invoke_closure`` that answers ``WsSend(body)``;
- ``websockets_server``: ``websockets.sync.server.serve`` with a handler
  that echoes (a thread per connection, what a Python user would write).

Group ``ws-dial`` (one message from a server answered by the client: the
server sends, the client's callback replies, the server reads the reply):

- ``dial_ws``: ``net.dial_ws`` with an ``on_message`` closure answering
  ``WsSend(body)``;
- ``websockets_client``: a websockets sync client loop ``send(recv())``.

Both servers and clients run in this process (one GIL for every member),
the members of a group timed round-robin in one test
(``statement_loops.interleaved_members``): medians per round trip and the
ratios are in ``extra_info``; bench/RESULTS.md has the figures.

What they showed (2026-12-06, the shared 2-CPU VM at load 7): one
connection's round trip costs lexfast's server ~2.3x websockets' in one
process and ~1.8x with each server in its own process (a message crosses
two threads, the loop and a worker, where websockets' handler thread
answers directly; ``net.serve_ws`` v1 measures the same); with 16 and 64
concurrent clients (servers in their own processes) lexfast served ~1.5x
and ~1.4x websockets' messages per second (bounded threads against a thread
per connection). ``dial_ws`` runs on websockets' sync client: 0.98x.

Run: PYTHONPATH=. pytest bench/bench_ws_v2.py --benchmark-enable
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
import threading

import pytest

from lexfast import DefaultHandler, Policy, Variant

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from statement_loops import interleaved_members, statement_loop  # noqa: E402

RATIO_TARGETS = [
    # (group, subject, baseline, max subject/baseline median): generous, CI is loaded
    # measured 2.3x (one connection, everything in one process: two thread hops,
    # loop -> worker -> loop, against websockets' one); generous for loaded CI
    ("ws-echo", "test_ws_echo_serve_ws_fn", "test_ws_echo_websockets_server", 4.0),
]

T = 10
N = 200         # round trips per statement loop (interleaved_members)
INNER_RT = 100  # round trips per sample (the interleaved fixture)
BODY = "x" * 64


class _Closure:
    def __init__(self, fn):
        self.fn = fn


def _invoke(closure, handler, args):
    return closure.fn(*args)


def _echo(conn, msg):
    if msg.name == "WsText":
        return Variant("WsSend", (msg.args[0],))
    return Variant("WsNoOp", ())


@contextlib.contextmanager
def _lexfast_server():
    from lexfast.effects.net.serve import wait_listening

    h = DefaultHandler(Policy(allow_effects=["net"]), invoke=_invoke)
    t = threading.Thread(target=h.dispatch,
                         args=("net", "serve_ws_fn", [0, "", _Closure(_echo)]), daemon=True)
    t.start()
    try:
        yield wait_listening(h, "ws", T)
    finally:
        h.shutdown()
        t.join(T)
        h.close()


@contextlib.contextmanager
def _websockets_server(handler):
    from websockets.sync.server import serve

    server = serve(handler, "127.0.0.1", 0, compression=None)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        server.shutdown()
        t.join(T)


def _echo_handler(ws):
    for message in ws:
        ws.send(message)


@pytest.fixture(scope="module")
def echo_clients():
    from websockets.sync.client import connect

    with _lexfast_server() as lex_port, _websockets_server(_echo_handler) as ws_port, \
            connect(f"ws://127.0.0.1:{lex_port}/", compression=None) as a, \
            connect(f"ws://127.0.0.1:{ws_port}/", compression=None) as b:
        yield {"serve_ws_fn": a, "websockets_server": b}


def _echo_subjects(clients):
    def make():
        stmt = "c.send(body)\n_r = c.recv(timeout=10)"
        return {name: statement_loop(stmt, INNER_RT, c=c, body=BODY)
                for name, c in clients.items()}
    return make


@pytest.mark.benchmark(group="ws-echo")
def test_ws_echo_serve_ws_fn(interleaved, echo_clients):
    assert interleaved("ws-echo", _echo_subjects(echo_clients), "serve_ws_fn", INNER_RT) == BODY


@pytest.mark.benchmark(group="ws-echo")
def test_ws_echo_websockets_server(interleaved, echo_clients):
    assert interleaved("ws-echo", _echo_subjects(echo_clients), "websockets_server",
                       INNER_RT) == BODY


@pytest.mark.benchmark(group="interleaved-ws-dial")
def test_ws_dial_interleaved(benchmark):
    """The server drives: each statement sends one message to the connected
    client and reads its answer."""
    from websockets.sync.client import connect

    conns: list = []
    ready = threading.Condition()
    stop = threading.Event()

    def hold(ws):  # the server side of each client: kept for the statements
        with ready:
            conns.append(ws)
            ready.notify_all()
        stop.wait(600)

    lex_h = DefaultHandler(Policy(allow_effects=["net"]), invoke=_invoke)
    with _websockets_server(hold) as port:
        url = f"ws://127.0.0.1:{port}/"
        noop = Variant("WsNoOp", ())
        dial = threading.Thread(target=lex_h.dispatch, args=("net", "dial_ws", [
            url, "", _Closure(lambda: noop), _Closure(lambda msg: _echo(None, msg))]),
            daemon=True)
        dial.start()
        with ready:
            assert ready.wait_for(lambda: len(conns) == 1, T)
        client = connect(url, compression=None)

        def reply_loop():
            with contextlib.suppress(Exception):
                for message in client:
                    client.send(message)

        replier = threading.Thread(target=reply_loop, daemon=True)
        replier.start()
        with ready:
            assert ready.wait_for(lambda: len(conns) == 2, T)
        lex_side, ws_side = conns
        stmt = "s.send(body)\nr = s.recv(timeout=10)"
        try:
            med = interleaved_members(benchmark, {
                "dial_ws": (stmt, {"s": lex_side, "body": BODY}),
                "websockets_client": (stmt, {"s": ws_side, "body": BODY}),
            }, N)
        finally:
            stop.set()
            lex_h.shutdown()
            dial.join(T)
            client.close()
            replier.join(T)
            lex_h.close()
    assert set(med) == {"dial_ws", "websockets_client"}
