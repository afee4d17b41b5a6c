"""net.serve_ws (gated ``net``) and chat.broadcast / chat.send (gated ``chat``).

``net.serve_ws(port, on_message)`` serves WebSockets on 127.0.0.1 on the same
front as ``net.serve`` (:mod:`.front`: one event loop, a bounded worker
pool): the opening request goes through the strict HTTP/1.1 parser, then
websockets' sans-I/O protocol layer frames the connection on the loop. The
request path without its leading ``/`` is the room; each connection gets a
process-wide id (from 1, never reused). Every text message calls
``runner(program, fork, on_message, [{body, conn_id, room}])`` on a worker,
messages of one connection one at a time and in order; the result is
ignored, a failure goes to stderr as the reference's ``on_message {id}: {e}``;
binary frames are ignored. The fork carries the server's chat registry, so
``chat.broadcast(room, body)`` (every connection in the room, the sender
included) and ``chat.send(conn_id, body)`` (Bool: queued to a live
connection) work inside it and nowhere else.

Each connection has one bounded outbound queue (``limits.ws_queue_bytes``,
what is queued plus what its socket has not taken), drained on the loop, so a
slow or dead client stalls only itself: when its queue overflows it is
dropped, never waited on. Connections count against ``limits.ws_connections``
from accept, idle TCP included (503 past the cap). It blocks like
``net.serve`` (see ``serve.py``) and returns Unit at shutdown, after a 1001
close frame to every client.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import deque

from ...errors import EffectError
from ...kernel import expect_str, next_handle
from ...values import INT_MAX, one_line
from ..log import write_stderr
from ._common import exc_text, need_program
from .front import BadRequest, Front, error_response, parse_head, take_head
from .serve import (
    announce,
    bind_listener,
    block_until_shutdown,
    check_port,
    retire,
)

_log = logging.getLogger("lexfast.ws")
# websockets' protocol layer logs every failed opening handshake (port probes,
# plain HTTP clients); the reference drops them silently.
_wire_log = logging.getLogger("lexfast.ws.wire")
if _wire_log.level == logging.NOTSET:
    _wire_log.setLevel(logging.CRITICAL)

MAX_MESSAGE_BYTES = 1 << 20   # one incoming message
OPEN_TIMEOUT_S = 10.0         # TCP accept to finished opening handshake
REJECT_LINGER_S = 2.0         # a connection over the cap: time to send its request and read 503
PING_INTERVAL_S = 20.0        # dead peers are dropped after interval + timeout
STALL_S = 0.5                 # a client this long without draining, past the cap: dropped
HARD_CAP_FACTOR = 4
INBOX_MAX = 64                # messages of one connection waiting for a worker: reading pauses
WRITE_HIGH = 64 << 10         # transport write buffer: pause_writing/resume_writing marks

_W_HEAD, _W_OPEN, _W_REJECT, _W_CLOSED = range(4)
_NEVER = float("inf")


class _Peer:
    """One connection's outbound side: the bounded queue any thread may add
    to (``chat.broadcast``/``chat.send`` on a worker), drained on the loop."""

    __slots__ = ("conn_id", "room", "conn", "cap", "lock", "pending", "size", "buffered",
                 "scheduled", "closed", "progress")

    def __init__(self, conn_id: int, room: str, conn, cap: int) -> None:
        self.conn_id = conn_id
        self.room = room
        self.conn = conn
        self.cap = cap
        self.lock = threading.Lock()
        self.pending: deque = deque()
        self.size = 0          # chars queued, not yet framed
        self.buffered = 0      # bytes in the transport's buffer at the last look
        self.scheduled = False
        self.closed = False
        self.progress = time.monotonic()

    def enqueue(self, text: str) -> bool:
        # Past the cap a client is dropped if it has drained nothing for
        # STALL_S (it does not read), or past HARD_CAP_FACTOR x the cap
        # whatever it does: a tight broadcast loop can outrun a fast client
        # for a moment, and must not cost it its connection.
        n = len(text)
        now = time.monotonic()
        with self.lock:
            if self.closed:
                return False
            queued = self.size + self.buffered
            if not queued:
                self.progress = now  # an idle connection has not been stalling
            size = queued + n
            overflow = queued > 0 and size > self.cap and (
                size > self.cap * HARD_CAP_FACTOR or now - self.progress > STALL_S)
            if not overflow:
                self.pending.append(text)
                self.size += n
                schedule = not self.scheduled
                self.scheduled = True
        if overflow:
            self.kill()
            return False
        if schedule:
            self.conn.call_soon(self.conn.flush_peer)
        return True

    def take(self) -> list:
        with self.lock:
            items = list(self.pending)
            self.pending.clear()
            self.size = 0
            self.scheduled = False
            return items

    def note_buffered(self, n: int) -> None:
        with self.lock:
            if n < self.buffered or n == 0:
                self.progress = time.monotonic()
            self.buffered = n

    def kill(self) -> None:
        """Drop the client (from any thread): nobody waits on it."""
        with self.lock:
            self.closed = True
            self.pending.clear()
            self.size = 0
        self.conn.call_soon(self.conn.expire)

    def stop(self) -> None:
        with self.lock:
            self.closed = True
            self.pending.clear()
            self.size = 0


class ChatRegistry:
    """Rooms and connections of one ``net.serve_ws`` call."""

    def __init__(self, max_conns: int, queue_cap: int) -> None:
        self.lock = threading.Lock()
        self.rooms: dict[str, dict[int, _Peer]] = {}
        self.peers: dict[int, _Peer] = {}
        self.max_conns = max(1, int(max_conns))
        self.queue_cap = max(1, int(queue_cap))

    def __len__(self) -> int:
        return len(self.peers)

    def add(self, peer: _Peer) -> None:
        with self.lock:
            self.peers[peer.conn_id] = peer
            self.rooms.setdefault(peer.room, {})[peer.conn_id] = peer

    def remove(self, peer: _Peer) -> None:
        with self.lock:
            self.peers.pop(peer.conn_id, None)
            room = self.rooms.get(peer.room)
            if room is not None:
                room.pop(peer.conn_id, None)
                if not room:
                    del self.rooms[peer.room]

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


def _room_of(path: str) -> str:
    path = path.partition("?")[0]
    return path[1:] if path.startswith("/") else path


class _WSConn(asyncio.Protocol):
    """One WebSocket connection on the front's loop: the opening handshake
    through the strict HTTP parser, then websockets' sans-I/O protocol.
    Counted against ``ws_connections`` from accept."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.ctx = front.ws
        self.transport = None
        self.buf = bytearray()
        self.scanned = 0
        self.state = _W_HEAD
        self.deadline = _NEVER
        self.proto = None
        self.peer: _Peer | None = None
        self.counted = False
        self.inbox: deque = deque()
        self.running = False
        self.read_paused = False
        self.frag: list | None = None
        self.frag_text = False
        self.last_seen = time.monotonic()
        self.pinged = 0.0

    def call_soon(self, fn, *args) -> None:
        try:
            self.front.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass

    # -- asyncio
    def connection_made(self, transport) -> None:
        self.transport = transport
        front = self.front
        if front.closing:
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        now = time.monotonic()
        if self.ctx.counted >= front.max_conns:
            self.state = _W_REJECT
            self.deadline = now + REJECT_LINGER_S
        else:
            self.ctx.counted += 1
            self.counted = True
            self.deadline = now + OPEN_TIMEOUT_S
        front.conns[self] = None

    def connection_lost(self, exc) -> None:
        self.state = _W_CLOSED
        self.front.conns.pop(self, None)
        if self.counted:
            self.counted = False
            self.ctx.counted -= 1
        if self.peer is not None:
            self.peer.stop()
            self.ctx.registry.remove(self.peer)
        self.inbox.clear()

    def eof_received(self):
        if self.proto is not None and self.state == _W_OPEN:
            self.proto.receive_eof()
            self._events()
        return None

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.note_buffered(self.transport.get_write_buffer_size())

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state == _W_OPEN:
            self.last_seen = time.monotonic()
            self.pinged = 0.0
            self.proto.receive_data(data)
            self._events()
            return
        if state == _W_CLOSED:
            return
        self.buf += data
        try:
            block, self.scanned = take_head(self.buf, self.scanned)
            if block is None:
                return
            if state == _W_REJECT:
                self._refuse(503, "too many connections\n")
                return
            head = parse_head(block)
            if head.length or head.chunked:
                raise BadRequest(400, "a WebSocket opening request has no body")
        except BadRequest as e:
            self._refuse(e.status, e.text)
            return
        self._open(block)

    def _refuse(self, status: int, text: str) -> None:
        self.state = _W_CLOSED
        self.transport.write(error_response(status, text))
        self.transport.close()

    def _open(self, block: bytes) -> None:
        from websockets.frames import Frame  # noqa: F401 - imported with the protocol
        from websockets.server import ServerProtocol

        proto = self.proto = ServerProtocol(max_size=MAX_MESSAGE_BYTES, logger=_wire_log)
        proto.receive_data(block + b"\r\n\r\n")
        events = proto.events_received()
        if not events:  # websockets refused what the strict parser passed
            self._flush()
            self.state = _W_CLOSED
            self.transport.close()
            return
        request = events[0]
        response = proto.accept(request)
        if response.status_code != 101:  # 426 for plain HTTP, 400 for a bad key...
            proto.send_response(response)
            self._flush()
            self.state = _W_CLOSED
            self.transport.close()
            return
        # Join the room before the handshake answer goes out: once a client
        # sees its connection open, a broadcast to its room reaches it.
        peer = self.peer = _Peer(next_handle(), _room_of(request.path), self,
                                 self.ctx.registry.queue_cap)
        self.ctx.registry.add(peer)
        proto.send_response(response)
        self.state = _W_OPEN
        self.deadline = _NEVER
        self.last_seen = time.monotonic()
        self._flush()
        if self.buf:  # frames sent right behind the request
            rest = bytes(self.buf)
            self.buf = bytearray()
            proto.receive_data(rest)
            self._events()

    def _events(self) -> None:
        from websockets.frames import Opcode

        for ev in self.proto.events_received():
            op = ev.opcode
            if op is Opcode.TEXT or op is Opcode.BINARY:
                if ev.fin:
                    if op is Opcode.TEXT:
                        self._deliver(ev.data)
                else:
                    self.frag = [ev.data]
                    self.frag_text = op is Opcode.TEXT
            elif op is Opcode.CONT and self.frag is not None:
                self.frag.append(ev.data)
                if ev.fin:
                    data = b"".join(self.frag)
                    self.frag = None
                    if self.frag_text:
                        self._deliver(data)
        self._flush()

    def _flush(self) -> None:
        proto = self.proto
        closed = False
        for chunk in proto.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                closed = True
        if closed or proto.close_expected():
            self.state = _W_CLOSED
            self.transport.close()
        if self.peer is not None:
            buffered = self.transport.get_write_buffer_size()
            self.peer.note_buffered(buffered)
            if buffered > self.peer.cap * HARD_CAP_FACTOR:
                self.expire()  # pongs and frames piling up for a client that never reads

    def flush_peer(self) -> None:
        """On the loop: frame what workers queued for this client."""
        peer = self.peer
        items = peer.take()
        if self.state != _W_OPEN or peer.closed:
            return
        from websockets.protocol import State

        if self.proto.state is not State.OPEN:
            return
        for text in items:
            self.proto.send_text(text.encode("utf-8", "surrogatepass"))
        self._flush()

    # -- on_message calls, one at a time per connection, on the pool
    def _deliver(self, data) -> None:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            self.proto.fail(1007, "invalid UTF-8")
            return
        if self.front.closing:
            return
        if self.running:
            self.inbox.append(text)
            if len(self.inbox) >= INBOX_MAX and not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()
            return
        self.running = True
        self.front.submit(self._run, (text,), self._dropped)

    def _run(self, text: str) -> None:
        ctx = self.ctx
        peer = self.peer
        fork = ctx.h.fork()
        fork._chat = ctx.registry
        event = {"body": text, "conn_id": peer.conn_id, "room": peer.room}
        try:
            ctx.runner(ctx.program, fork, ctx.name, [event])
        except BaseException as e:  # noqa: BLE001 - reported, the connection lives
            # the message may carry the program's text: one escaped line
            write_stderr(f"on_message {peer.conn_id}: {one_line(exc_text(e))}\n")
        self.call_soon(self._ran)

    def _ran(self) -> None:
        if self.inbox and self.state == _W_OPEN and not self.front.closing:
            text = self.inbox.popleft()
            self.front.submit(self._run, (text,), self._dropped)
            if self.read_paused and len(self.inbox) < INBOX_MAX // 2:
                self.read_paused = False
                self.transport.resume_reading()
        else:
            self.running = False
            self.inbox.clear()

    def _dropped(self) -> None:
        self.running = False
        self.inbox.clear()

    # -- the front's hooks
    def busy(self) -> bool:
        return self.running

    def expire(self) -> None:
        self.state = _W_CLOSED
        if self.peer is not None:
            self.peer.stop()
        if self.transport is not None:
            self.transport.abort()

    def tick(self, now: float) -> None:
        if self.state != _W_OPEN:
            return
        self.peer.note_buffered(self.transport.get_write_buffer_size())
        if self.pinged:
            if now - self.pinged > PING_INTERVAL_S:
                self.expire()  # no answer to the ping: a dead peer
        elif now - self.last_seen > PING_INTERVAL_S:
            self.pinged = now
            self.proto.send_ping(b"lexfast")
            self._flush()

    def stopping(self) -> None:
        if self.state != _W_OPEN:
            self.expire()
            return
        self.peer.stop()  # nothing more is sent but the closing frame
        from websockets.protocol import State

        if self.proto.state is State.OPEN:
            self.proto.send_close(1001, "server shutting down")
            self._flush()

    def closing_now(self) -> None:
        if self.running or self.state != _W_OPEN:
            self.expire()
        else:
            self.transport.close()


class _WSContext:
    __slots__ = ("h", "program", "runner", "name", "registry", "counted")

    def __init__(self, h, name: str, registry: ChatRegistry) -> None:
        self.h = h
        self.program = h.session.program
        self.runner = h.session.runner
        self.name = name
        self.registry = registry
        self.counted = 0


def net_serve_ws(h, args):
    port = check_port(args, "net.serve_ws(port, on_message)")
    name = expect_str(args, 1)
    need_program(h, "net.serve_ws requires a Program reference")
    limits = h.session.limits
    registry = ChatRegistry(limits.ws_connections, limits.ws_queue_bytes)
    sock = bind_listener(port, "net.serve_ws")
    try:
        front = Front(sock, None, limits, None, "net.serve_ws", conn_class=_WSConn,
                      max_conns=limits.ws_connections)
        front.ws = _WSContext(h, name, registry)
        front.start()
    except BaseException:
        sock.close()
        raise
    real_port = sock.getsockname()[1]
    try:
        announce(h, "net.serve_ws", "ws", real_port)
        block_until_shutdown(h, front.alive)
    finally:
        retire(h, "ws", real_port)
        try:
            front.stop()
        finally:
            sock.close()
        if front.stuck:
            _log.warning("net.serve_ws: on_message calls still running after the %.1f s "
                         "grace period", front.grace)
    return None


def _chat_registry(h, op: str) -> ChatRegistry:
    reg = getattr(h, "_chat", None)
    if reg is None:
        raise EffectError(f"chat.{op} called outside a net.serve_ws handler")
    return reg


def _frame_text(op: str, body: str) -> str:
    """``body`` if a text frame can carry it (no lone surrogates: a client
    would close on the invalid UTF-8 with 1007), else ``EffectError``."""
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        raise EffectError(f"chat.{op}: body is not valid Unicode (a lone surrogate): "
                          "no text frame can carry it") from None
    return body


def chat_broadcast(h, args):
    reg = _chat_registry(h, "broadcast")
    room = expect_str(args, 0)
    body = _frame_text("broadcast", expect_str(args, 1))
    reg.broadcast(room, body)
    return None


def chat_send(h, args):
    reg = _chat_registry(h, "send")
    v = args[0] if args else None
    if not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= INT_MAX):
        raise EffectError("chat.send: conn_id must be non-negative Int")
    body = _frame_text("send", expect_str(args, 1))
    return reg.send(int(v), body)


ROWS = [
    ("net", "serve_ws", "net", net_serve_ws),
    ("chat", "broadcast", "chat", chat_broadcast),
    ("chat", "send", "chat", chat_send),
]
