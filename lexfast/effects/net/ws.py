"""net.serve_ws (gated ``net``) and chat.broadcast / chat.send (gated ``chat``).

``net.serve_ws(port, on_message)`` serves WebSockets on 127.0.0.1 with
websockets' threaded server. The request path without its leading ``/`` is
the room; each connection gets a process-wide id (from 1, never reused).
Every text message calls ``runner(program, fork, on_message, [{body, conn_id,
room}])`` on that connection's thread (messages of one connection run in
order); the result is ignored, a failure goes to stderr as the reference's
``on_message {id}: {e}``; binary frames are ignored. The fork carries the
server's chat registry, so ``chat.broadcast(room, body)`` (every connection
in the room, the sender included) and ``chat.send(conn_id, body)`` (Bool:
queued to a live connection) work inside it and nowhere else.

Each connection has one bounded outbound queue (``limits.ws_queue_bytes``)
and its own writer thread, so a slow or dead client stalls only itself: when
its queue overflows it is dropped by shutting its socket down, never with
``ws.close()`` from the sending thread (which would wait on the client).
Connections are capped at ``limits.ws_connections`` (503 over the cap). It
blocks like ``net.serve`` (see ``serve.py``) and returns Unit at shutdown.
"""

from __future__ import annotations

import http
import logging
import socket
import threading
import time
from collections import deque

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve as _ws_serve

from ...errors import EffectError
from ...kernel import expect_str, next_handle
from ...values import INT_MAX, one_line
from ..log import write_stderr
from ._common import exc_text, need_program
from .serve import (
    announce,
    bind_listener,
    block_until_shutdown,
    check_port,
    retire,
)

_log = logging.getLogger("lexfast.ws")
# websockets reports every failed opening handshake (port probes, plain HTTP
# clients) at ERROR with a traceback; the reference drops them silently.
_wire_log = logging.getLogger("lexfast.ws.wire")
if _wire_log.level == logging.NOTSET:
    _wire_log.setLevel(logging.CRITICAL)

MAX_MESSAGE_BYTES = 1 << 20   # one incoming message
OPEN_TIMEOUT_S = 10.0         # TCP accept to finished opening handshake
CLOSE_TIMEOUT_S = 2.0         # closing handshake at shutdown
PING_INTERVAL_S = 20.0        # dead peers are dropped after interval + timeout
WRITER_STOP_S = 1.0
STALL_S = 0.5                 # a writer this long in one send, past the cap: dropped
HARD_CAP_FACTOR = 4


class _Peer:
    """One connection: its bounded outbound queue and the writer thread that
    drains it."""

    __slots__ = ("conn_id", "room", "ws", "cap", "cond", "queue", "size", "closed", "writer",
                 "progress")

    def __init__(self, conn_id: int, room: str, ws, cap: int) -> None:
        self.conn_id = conn_id
        self.room = room
        self.ws = ws
        self.cap = cap
        self.cond = threading.Condition(threading.Lock())
        self.queue: deque = deque()
        self.size = 0
        self.closed = False
        self.progress = time.monotonic()
        self.writer = threading.Thread(target=self._write, name=f"lexfast ws writer {conn_id}",
                                       daemon=True)

    def enqueue(self, text: str) -> bool:
        # Past the cap a client is dropped if its writer has made no progress
        # for STALL_S (it does not read), or past HARD_CAP_FACTOR x the cap
        # whatever it does: a tight broadcast loop can outrun a fast client
        # for a moment, and must not cost it its connection.
        n = len(text)
        now = time.monotonic()
        with self.cond:
            if self.closed:
                return False
            if not self.queue:
                self.progress = now  # an idle writer has not been stalling
            size = self.size + n
            overflow = bool(self.queue) and size > self.cap and (
                size > self.cap * HARD_CAP_FACTOR or now - self.progress > STALL_S)
            if not overflow:
                self.queue.append(text)
                self.size = size
                self.cond.notify()
        if overflow:
            self.kill()
            return False
        return True

    def _write(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.closed:
                    self.cond.wait(1.0)
                if self.closed:
                    return
                text = self.queue.popleft()
                self.size -= len(text)
            try:
                self.ws.send(text)
            except Exception:
                self.kill()
                return
            self.progress = time.monotonic()

    def kill(self) -> None:
        """Drop the client: the socket is shut down, so a writer blocked in
        ``send`` and the reader both fail at once; nobody waits on the peer."""
        with self.cond:
            self.closed = True
            self.queue.clear()
            self.size = 0
            self.cond.notify_all()
        try:
            self.ws.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def stop(self, timeout: float) -> None:
        """Stop the writer (pending messages are dropped; the connection is
        ending). A writer still stuck in ``send`` after ``timeout`` is cut off."""
        with self.cond:
            self.closed = True
            self.queue.clear()
            self.size = 0
            self.cond.notify_all()
        if self.writer.ident is None:
            return
        self.writer.join(timeout)
        if self.writer.is_alive():
            self.kill()
            self.writer.join(timeout)


class ChatRegistry:
    """Rooms and connections of one ``net.serve_ws`` call."""

    def __init__(self, max_conns: int, queue_cap: int) -> None:
        self.lock = threading.Lock()
        self.rooms: dict[str, dict[int, _Peer]] = {}
        self.peers: dict[int, _Peer] = {}
        self.max_conns = max(1, int(max_conns))
        self.opening: set = set()  # accepted by process_request, not registered yet
        self.by_ws: dict = {}  # connection -> its peer (joined in process_request)
        self.queue_cap = max(1, int(queue_cap))

    def __len__(self) -> int:
        return len(self.peers)

    def reserve(self, connection) -> bool:
        """A slot for a connection in its opening handshake (the cap counts
        those too, or a burst of clients would all pass the check)."""
        with self.lock:
            self.opening = {c for c in self.opening if c.state.name in ("CONNECTING", "OPEN")}
            self._prune_unopened()
            if len(self.peers) + len(self.opening) >= self.max_conns:
                return False
            self.opening.add(connection)
            return True

    def add(self, peer: _Peer) -> bool:
        with self.lock:
            self.opening.discard(peer.ws)
            if len(self.peers) >= self.max_conns:
                return False
            self.peers[peer.conn_id] = peer
            self.rooms.setdefault(peer.room, {})[peer.conn_id] = peer
            self.by_ws[peer.ws] = peer
            return True

    def peer_of(self, ws) -> _Peer | None:
        with self.lock:
            return self.by_ws.get(ws)

    def _prune_unopened(self) -> None:
        # A peer joined its room in process_request, but its handshake failed
        # and the handler never ran: nothing else would ever remove it.
        for ws, peer in list(self.by_ws.items()):
            if ws.state.name == "CLOSED" and not peer.writer.is_alive():
                self._drop(peer)

    def _drop(self, peer: _Peer) -> None:  # with self.lock held
        self.by_ws.pop(peer.ws, None)
        self.peers.pop(peer.conn_id, None)
        room = self.rooms.get(peer.room)
        if room is not None:
            room.pop(peer.conn_id, None)
            if not room:
                del self.rooms[peer.room]

    def remove(self, peer: _Peer) -> None:
        with self.lock:
            self._drop(peer)

    def broadcast(self, room: str, body: str) -> None:
        with self.lock:
            members = list(self.rooms.get(room, {}).values())
        for peer in members:  # outside the lock: an overflow kill must not hold it
            peer.enqueue(body)

    def send(self, conn_id: int, body: str) -> bool:
        with self.lock:
            peer = self.peers.get(conn_id)
        return peer is not None and peer.enqueue(body)

    def snapshot(self) -> list:
        with self.lock:
            return list(self.peers.values())


# -- the server ------------------------------------------------------------------

def _room_of(path: str) -> str:
    path = path.partition("?")[0]
    return path[1:] if path.startswith("/") else path


def _make_handlers(h, name: str, registry: ChatRegistry):
    session = h.session
    program, runner = session.program, session.runner

    def process_request(connection, request):
        if not registry.reserve(connection):
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                      "too many connections\n")
        # Join the room before the handshake answer goes out: once a client
        # sees its connection open, a broadcast to its room reaches it (its
        # writer starts with the connection; until then messages queue).
        peer = _Peer(next_handle(), _room_of(request.path), connection, registry.queue_cap)
        if not registry.add(peer):
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                      "too many connections\n")
        return None

    def on_connection(ws) -> None:
        peer = registry.peer_of(ws)
        if peer is None:  # process_request did not run or its peer was pruned
            ws.close(1013, "too many connections")
            return
        conn_id = peer.conn_id
        try:
            peer.writer.start()
            while True:
                try:
                    msg = ws.recv()
                except ConnectionClosed:
                    break
                if not isinstance(msg, str):
                    continue  # binary frames are ignored, as in the reference
                fork = h.fork()
                fork._chat = registry
                event = {"body": msg, "conn_id": conn_id, "room": peer.room}
                try:
                    runner(program, fork, name, [event])
                except Exception as e:
                    # the message may carry the program's text: one escaped line
                    write_stderr(f"on_message {conn_id}: {one_line(exc_text(e))}\n")
        finally:
            registry.remove(peer)
            peer.stop(WRITER_STOP_S)

    return process_request, on_connection


def _stop(server, registry: ChatRegistry, serve_thread: threading.Thread, grace: float) -> None:
    deadline = time.monotonic() + max(0.0, grace)
    # Writers first: one stuck sending to a client that does not read holds
    # the connection's send lock, which close() below would wait on forever.
    peers = registry.snapshot()
    for p in peers:
        with p.cond:
            p.closed = True
            p.queue.clear()
            p.cond.notify_all()
    for p in peers:
        p.writer.join(max(0.0, min(WRITER_STOP_S, deadline - time.monotonic())))
        if p.writer.is_alive():
            p.kill()
    # Then websockets' own shutdown (close listener, close connections with
    # 1001, wait for handlers, i.e. for in-flight on_message calls), bounded.
    stopper = threading.Thread(target=server.shutdown, name="lexfast ws shutdown", daemon=True)
    stopper.start()
    stopper.join(max(0.0, deadline - time.monotonic()))
    if stopper.is_alive():
        for p in registry.snapshot():
            p.kill()
        stopper.join(CLOSE_TIMEOUT_S)
        if stopper.is_alive():
            _log.warning("net.serve_ws: on_message calls still running after the %.1f s "
                         "grace period", grace)
    serve_thread.join(2.0)


def net_serve_ws(h, args):
    port = check_port(args, "net.serve_ws(port, on_message)")
    name = expect_str(args, 1)
    need_program(h, "net.serve_ws requires a Program reference")
    limits = h.session.limits
    registry = ChatRegistry(limits.ws_connections, limits.ws_queue_bytes)
    sock = bind_listener(port, "net.serve_ws")
    process_request, on_connection = _make_handlers(h, name, registry)
    try:
        server = _ws_serve(on_connection, sock=sock, process_request=process_request,
                           compression=None, max_size=MAX_MESSAGE_BYTES,
                           open_timeout=OPEN_TIMEOUT_S, ping_interval=PING_INTERVAL_S,
                           ping_timeout=PING_INTERVAL_S, close_timeout=CLOSE_TIMEOUT_S,
                           logger=_wire_log)
    except BaseException:
        sock.close()
        raise
    real_port = sock.getsockname()[1]
    # A daemon serving thread makes the per-connection threads daemons too,
    # so a VM call that never returns cannot keep the process alive.
    serve_thread = threading.Thread(target=server.serve_forever,
                                    name=f"lexfast net.serve_ws :{real_port}", daemon=True)
    try:
        serve_thread.start()
        announce(h, "net.serve_ws", "ws", real_port)
        block_until_shutdown(h, serve_thread.is_alive)
    finally:
        retire(h, "ws", real_port)
        _stop(server, registry, serve_thread, limits.serve_grace_s)
    return None


def _chat_registry(h, op: str) -> ChatRegistry:
    reg = getattr(h, "_chat", None)
    if reg is None:
        raise EffectError(f"chat.{op} called outside a net.serve_ws handler")
    return reg


def chat_broadcast(h, args):
    reg = _chat_registry(h, "broadcast")
    room = expect_str(args, 0)
    body = expect_str(args, 1)
    reg.broadcast(room, body)
    return None


def chat_send(h, args):
    reg = _chat_registry(h, "send")
    v = args[0] if args else None
    if not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= INT_MAX):
        raise EffectError("chat.send: conn_id must be non-negative Int")
    body = expect_str(args, 1)
    return reg.send(int(v), body)


ROWS = [
    ("net", "serve_ws", "net", net_serve_ws),
    ("chat", "broadcast", "chat", chat_broadcast),
    ("chat", "send", "chat", chat_send),
]
