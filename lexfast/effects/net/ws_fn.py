"""WebSocket v2 servers: ``net.serve_ws_fn``, ``net.serve_ws_fn_auth`` and
``net.serve_ws_fn_actor`` (gated ``net``), and the per-session registry of
native actors they (and ``net.dial_ws_actor``) register.

They run on the same front as ``net.serve_ws`` (:mod:`.ws`: one event loop,
websockets' sans-I/O layer, the bounded worker pool, ``ws_connections`` and
the per-connection ``ws_queue_bytes`` queue with slow-reader drops) and take
the program's closures, called with ``handler.invoke_closure`` on a worker
(never on the loop), one call at a time per connection, in order:

- ``on_message(conn, msg) -> WsAction``: ``conn`` is the record
  ``{id: Str, path: Str, subprotocol: Str}`` (``subprotocol`` the server's
  configured value, as the reference), ``msg`` one of ``WsText(Str)``,
  ``WsBinary(List[Int])``, ``WsPing`` and, once when the connection ends,
  ``WsClose``. The answer ``WsSend(Str)``, ``WsSendBinary(List[Int])`` (each
  0..=255) or ``WsNoOp`` is queued to the connection; anything else, and
  what the closure raises, is one stderr line (``ws action {id}: ...``,
  ``ws handler {id}: ...``) and the connection lives. ``chat.broadcast`` and
  ``chat.send`` work inside it (rooms are paths, as ``net.serve_ws``).
- ``subprotocol``: ``""`` for none; else an RFC 6455 token, echoed in
  ``Sec-WebSocket-Protocol`` when the client offered it (never otherwise).
  A value that is not one is an ``EffectError`` before anything binds.
- ``serve_ws_fn_auth``'s ``auth(path, headers) -> Result[Unit, Str]`` runs
  before the handshake answer (``headers`` a list of ``{name, value}``, names
  lower-cased, non-ASCII values left out as the reference): ``Ok`` completes
  it, ``Err(msg)`` answers ``401`` with ``msg`` as the text body, anything
  else (or a raise) ``500``. It runs under the opening deadline: a client
  whose verdict has not come within it is dropped.
- ``serve_ws_fn_actor``'s ``name_of(conn) -> Str`` runs first on each
  connection; a non-empty name registers a native actor in the session's
  registry (:func:`ws_actor`) whose ``tell(Str)`` queues a text frame to the
  socket, until the connection ends; ``""`` registers nothing; a name already
  taken, a non-Str, or a raise closes the connection (stderr line).

The actor registry is per session (the reference's is process-wide: a run
reaches only its own connections here). A VM implements ``conc.lookup`` /
``conc.tell`` on these with :func:`ws_actor` and :meth:`WsActor.tell`.
"""

from __future__ import annotations

import threading
import time

from ...errors import BudgetExceeded, EffectError, PolicyDenied
from ...kernel import Variant, expect_str, next_handle
from ...values import debug_repr, one_line
from ..log import write_stderr
from ._common import TOKEN_CHARS, exc_text
from .front import Front
from .serve import announce, bind_listener, block_until_shutdown, check_port, retire
from .ws import (
    _W_CLOSED,
    _W_OPEN,
    INBOX_MAX,
    MAX_MESSAGE_BYTES,
    ChatRegistry,
    _log,
    _Peer,
    _room_of,
    _wire_log,
    _WSConn,
)

_W_AUTH = 10  # the opening request read, the auth verdict awaited on a worker


# -- shared argument checks ------------------------------------------------------

def check_subprotocol(value: str) -> str | None:
    """``None`` if ``value`` is ``""`` or an RFC 6455 subprotocol (a token),
    else why it is not."""
    if value == "" or set(value) <= TOKEN_CHARS:
        return None
    return "not a valid HTTP header value (RFC 6455: a token)"


def need_invoke(h, op: str) -> None:
    if h.session.invoke is None:
        raise EffectError(f"{op}: this handler cannot call closures: the VM must give "
                          "DefaultHandler(invoke=...) (or with_invoke)")


def fatal(e: BaseException) -> bool:
    """What a closure raised that ends the run instead of being reported:
    the policy's refusals stay refusals."""
    return isinstance(e, (BudgetExceeded, PolicyDenied, KeyboardInterrupt, SystemExit))


# -- messages and actions --------------------------------------------------------

def msg_text(text: str):
    return Variant("WsText", (text,))


def msg_binary(data: bytes):
    return Variant("WsBinary", (list(data),))


WS_PING = Variant("WsPing", ())
WS_CLOSE = Variant("WsClose", ())


_NOT_UNICODE = "WsSend payload is not valid Unicode (a lone surrogate): no text frame can carry it"


def valid_text(text: str) -> bool:
    """Whether ``text`` can be a text frame (UTF-8: no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def action_frame(action) -> str | bytes | None:
    """A ``WsAction`` as the frame to send (``str`` text, ``bytes`` binary)
    or ``None`` for ``WsNoOp``; ``ValueError`` with the reason otherwise."""
    name = getattr(action, "name", None)
    args = getattr(action, "args", None)
    if not isinstance(action, Variant) or not isinstance(args, tuple):
        raise ValueError(f"unexpected WsAction: {debug_repr(action)}")
    if name == "WsNoOp":
        return None
    if name == "WsSend":
        if len(args) == 1 and isinstance(args[0], str):
            if not valid_text(args[0]):
                raise ValueError(_NOT_UNICODE)
            return args[0]
        raise ValueError("WsSend payload must be Str")
    if name == "WsSendBinary":
        if len(args) == 1:
            payload = args[0]
            if isinstance(payload, (bytes, bytearray)):
                return bytes(payload)
            if isinstance(payload, (list, tuple)) and all(
                    type(b) is int and 0 <= b <= 255 for b in payload):
                return bytes(payload)
        raise ValueError("WsSendBinary payload must be List[Int] of bytes 0..=255")
    raise ValueError(f"unexpected WsAction: {debug_repr(action)}")


# -- the session's native actors ---------------------------------------------------

class WsActor:
    """A connection registered under a name (``net.serve_ws_fn_actor``,
    ``net.dial_ws_actor``): ``tell(Str)`` queues a text frame to it."""

    __slots__ = ("name", "op", "_send", "_alive")

    def __init__(self, name: str, op: str, send) -> None:
        self.name = name
        self.op = op
        self._send = send
        self._alive = True

    def tell(self, message) -> None:
        """Queue ``message`` (Str) as a text frame. ``EffectError`` for a
        non-Str, a connection that has ended, or a full queue."""
        if not isinstance(message, str):
            raise EffectError(f"{self.op}: native bridge accepts Str messages only, "
                              f"got {debug_repr(message)}")
        if not valid_text(message):
            raise EffectError(f"{self.op}: {_NOT_UNICODE}")
        if not self._alive or not self._send(message):
            raise EffectError(f"{self.op}: outbound channel closed: the connection "
                              f"{debug_repr(self.name)} has ended or its queue is full")

    def __repr__(self) -> str:
        return f"WsActor({self.name!r})"


class _Actors:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.names: dict[str, WsActor] = {}

    def register(self, actor: WsActor) -> bool:
        with self.lock:
            if actor.name in self.names:
                return False
            self.names[actor.name] = actor
            return True

    def unregister(self, actor: WsActor) -> None:
        actor._alive = False
        with self.lock:
            if self.names.get(actor.name) is actor:
                del self.names[actor.name]


def actors_of(session) -> _Actors:
    return session.state("ws_actors", lambda _session: _Actors())


def ws_actor(h, name: str) -> WsActor | None:
    """The live actor registered as ``name`` in handler ``h``'s session, or
    ``None`` (what a VM's ``conc.lookup(name)`` answers)."""
    reg = actors_of(h.session)
    with reg.lock:
        return reg.names.get(name)


def ws_actor_names(h) -> list:
    """The names registered now in ``h``'s session, sorted."""
    reg = actors_of(h.session)
    with reg.lock:
        return sorted(reg.names)


# -- the server ---------------------------------------------------------------------

class _FnCtx:
    __slots__ = ("h", "op", "on_message", "auth", "name_of", "subprotocol", "registry",
                 "actors", "counted")

    def __init__(self, h, op, on_message, auth, name_of, subprotocol, registry) -> None:
        self.h = h
        self.op = op
        self.on_message = on_message
        self.auth = auth
        self.name_of = name_of
        self.subprotocol = subprotocol
        self.registry = registry
        self.actors = actors_of(h.session)
        self.counted = 0


class _FnConn(_WSConn):
    """``_WSConn`` with closures: the auth verdict before the handshake
    answer, every frame kind delivered, the answer's action queued."""

    def __init__(self, front: Front) -> None:
        super().__init__(front)
        self.path = "/"
        self.record: dict | None = None
        self.actor: WsActor | None = None
        self.close_sent = False  # WsClose delivered (or queued)

    # -- opening
    def _open(self, block: bytes) -> None:
        from websockets.server import ServerProtocol

        ctx = self.ctx
        sp = ctx.subprotocol
        # RFC 6455 4.1: echo the server's value only when the client offered it;
        # otherwise open without one, as the reference (websockets would answer 400)
        proto = self.proto = ServerProtocol(
            max_size=MAX_MESSAGE_BYTES, logger=_wire_log,
            select_subprotocol=lambda _p, offered: sp if sp and sp in offered else None)
        proto.receive_data(block + b"\r\n\r\n")
        events = proto.events_received()
        if not events:
            self._give_up()
            return
        request = events[0]
        response = proto.accept(request)
        if response.status_code != 101:
            proto.send_response(response)
            self._give_up()
            return
        self.path = request.path.partition("?")[0]
        if ctx.auth is None:
            self._accept(request, response)
            return
        headers = []
        for name, value in request.headers.raw_items():
            if all(c == "\t" or " " <= c <= "~" for c in value):
                headers.append({"name": name.lower(), "value": value})
        self.state = _W_AUTH  # frames behind the request wait in self.buf; the
        # opening deadline still runs (not busy): a verdict too late finds it closed
        self.front.submit(self._auth_run, (request, response, headers), self._auth_dropped)

    def _give_up(self) -> None:
        self._flush()
        self.state = _W_CLOSED
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.state == _W_AUTH:
            if len(self.buf) + len(data) > MAX_MESSAGE_BYTES:
                self.expire()  # a client that floods before it is let in
                return
            self.buf += data
            return
        super().data_received(data)

    def _auth_run(self, request, response, headers) -> None:
        ctx = self.ctx
        try:
            verdict = self._invoke(ctx.auth, [self.path, headers], "auth")
        except BaseException as e:  # noqa: BLE001 - answered 500, the server lives
            self.call_soon(self._auth_done, request, response, 500,
                           f"{ctx.op}: auth callback error: {exc_text(e)}")
            return
        if isinstance(verdict, Variant) and verdict.name == "Ok":
            self.call_soon(self._auth_done, request, response, 101, "")
        elif isinstance(verdict, Variant) and verdict.name == "Err":
            msg = verdict.args[0] if len(verdict.args) == 1 else None
            self.call_soon(self._auth_done, request, response, 401,
                           msg if isinstance(msg, str) else "unauthorized")
        else:
            self.call_soon(self._auth_done, request, response, 500,
                           f"{ctx.op}: auth callback returned non-Result value: "
                           f"{debug_repr(verdict)}")

    def _auth_dropped(self) -> None:
        self.expire()

    def _auth_done(self, request, response, status: int, text: str) -> None:
        if self.state != _W_AUTH:  # expired (opening deadline) or stopping meanwhile
            return
        if status == 101 and not self.front.closing:
            self._accept(request, response)
            return
        if status == 101:
            status, text = 503, "shutting down"
        # the program's text: never an encoding error on the loop
        text = text.encode("utf-8", "replace").decode("utf-8")
        reject = self.proto.reject(status, text)
        self.proto.send_response(reject)
        self._give_up()

    def _accept(self, request, response) -> None:
        ctx = self.ctx
        peer = self.peer = _Peer(next_handle(), _room_of(self.path), self,
                                 ctx.registry.queue_cap)
        ctx.registry.add(peer)
        self.record = {"id": str(peer.conn_id), "path": self.path,
                       "subprotocol": ctx.subprotocol}
        self.proto.send_response(response)
        self.state = _W_OPEN
        self.deadline = float("inf")
        self.last_seen = time.monotonic()
        if ctx.name_of is not None:
            self.running = True  # frames wait until the actor is registered
            self.front.submit(self._run, (None,), self._dropped)
        self._flush()
        if self.buf:
            rest = bytes(self.buf)
            self.buf = bytearray()
            self.proto.receive_data(rest)
            self._events()

    # -- frames in
    def _events(self) -> None:
        from websockets.frames import Opcode

        for ev in self.proto.events_received():
            op = ev.opcode
            if op is Opcode.TEXT or op is Opcode.BINARY:
                if ev.fin:
                    self._frame(op is Opcode.TEXT, ev.data)
                else:
                    self.frag = [ev.data]
                    self.frag_text = op is Opcode.TEXT
            elif op is Opcode.CONT and self.frag is not None:
                self.frag.append(ev.data)
                if ev.fin:
                    data = b"".join(self.frag)
                    self.frag = None
                    self._frame(self.frag_text, data)
            elif op is Opcode.PING:
                self._queue(WS_PING)
            elif op is Opcode.CLOSE:
                self._queue_close()
        self._flush()

    def _frame(self, text: bool, data) -> None:
        if text:
            try:
                msg = msg_text(bytes(data).decode("utf-8"))
            except UnicodeDecodeError:
                self.proto.fail(1007, "invalid UTF-8")
                return
        else:
            msg = msg_binary(bytes(data))
        self._queue(msg)

    def _queue_close(self) -> None:
        if self.close_sent or self.record is None:
            return
        self.close_sent = True
        self._queue(WS_CLOSE)

    def _queue(self, msg) -> None:
        if self.front.closing:
            return
        if self.running:
            self.inbox.append(msg)
            if (len(self.inbox) >= INBOX_MAX and not self.read_paused
                    and self.state == _W_OPEN):
                self.read_paused = True
                self.transport.pause_reading()
            return
        self.running = True
        self.front.submit(self._run, (msg,), self._dropped)

    # -- the program's calls, on a worker
    def _invoke(self, closure, args, what: str):
        ctx = self.ctx
        fork = ctx.h.fork()
        fork._chat = ctx.registry
        return fork.invoke_closure(closure, args, op=f"{ctx.op} {what}", fork=False)

    def _run(self, msg) -> None:
        try:
            if msg is None:
                self._register()
            else:
                self._message(msg)
        finally:
            self.call_soon(self._ran)

    def _register(self) -> None:
        ctx = self.ctx
        peer = self.peer
        try:
            name = self._invoke(ctx.name_of, [self.record], "name_of")
        except BaseException as e:  # noqa: BLE001 - the connection ends, the server lives
            write_stderr(f"{ctx.op}: name_of error: {one_line(exc_text(e))}\n")
            peer.kill()
            return
        if not isinstance(name, str):
            write_stderr(f"{ctx.op}: name_of must return Str, got "
                         f"{one_line(debug_repr(name))}\n")
            peer.kill()
            return
        if not name:
            return
        actor = WsActor(name, ctx.op, peer.enqueue)
        if not ctx.actors.register(actor):
            write_stderr(f"{ctx.op}: conc.register({one_line(repr(name))}) failed: "
                         "the name is taken\n")
            peer.kill()
            return
        self.actor = actor
        if peer.closed:  # ended while name_of ran
            ctx.actors.unregister(actor)

    def _message(self, msg) -> None:
        ctx = self.ctx
        cid = self.record["id"]
        try:
            action = self._invoke(ctx.on_message, [self.record, msg], "on_message")
        except BaseException as e:  # noqa: BLE001 - reported, the connection lives
            write_stderr(f"ws handler {cid}: {one_line(exc_text(e))}\n")
            return
        try:
            frame = action_frame(action)
        except ValueError as e:
            write_stderr(f"ws action {cid}: {one_line(str(e))}\n")
            return
        if frame is not None and msg is not WS_CLOSE:
            self.peer.enqueue(frame)

    def _ran(self) -> None:
        if self.inbox and not self.front.closing and (
                self.state == _W_OPEN or self.close_sent):
            msg = self.inbox.popleft()
            self.front.submit(self._run, (msg,), self._dropped)
            if self.read_paused and len(self.inbox) < INBOX_MAX // 2 and self.state == _W_OPEN:
                self.read_paused = False
                self.transport.resume_reading()
        else:
            self.running = False
            self.inbox.clear()

    # -- frames out (text and binary through the one bounded queue)
    def flush_peer(self) -> None:
        peer = self.peer
        items = peer.take()
        if self.state != _W_OPEN or peer.closed:
            return
        from websockets.protocol import State

        if self.proto.state is not State.OPEN:
            return
        for item in items:
            if isinstance(item, bytes):
                self.proto.send_binary(item)
            else:
                self.proto.send_text(item.encode("utf-8", "surrogatepass"))
        self._flush()

    # -- the end
    def connection_lost(self, exc) -> None:
        was_open = self.record is not None
        pending = list(self.inbox)
        super().connection_lost(exc)
        if self.actor is not None:
            self.ctx.actors.unregister(self.actor)
        if was_open and not self.front.closing:
            # what arrived before the end is still answered (into the void), then WsClose
            self.inbox.extend(pending)
            if not self.close_sent:
                self.close_sent = True
                if self.running:
                    self.inbox.append(WS_CLOSE)
                else:
                    self.running = True
                    self.front.submit(self._run, (WS_CLOSE,), self._dropped)


def _serve(h, op: str, args, mode: str):
    port = check_port(args, f"{op}(port, subprotocol, ...)")
    subprotocol = expect_str(args, 1)
    closures = list(args[2:])
    want = 1 if mode == "fn" else 2
    if len(closures) != want:
        raise EffectError(f"{op}: expected {want + 2} arguments, got {len(args)}")
    reason = check_subprotocol(subprotocol)
    if reason:
        raise EffectError(f"{op}: subprotocol {debug_repr(subprotocol)} is {reason}")
    need_invoke(h, op)
    auth = closures[0] if mode == "auth" else None
    name_of = closures[0] if mode == "actor" else None
    on_message = closures[-1]
    limits = h.session.limits
    registry = ChatRegistry(limits.ws_connections, limits.ws_queue_bytes)
    sock = bind_listener(port, op)
    try:
        front = Front(sock, None, limits, None, op, conn_class=_FnConn,
                      max_conns=limits.ws_connections)
        front.ws = _FnCtx(h, op, on_message, auth, name_of, subprotocol, registry)
        front.start()
    except BaseException:
        sock.close()
        raise
    real_port = sock.getsockname()[1]
    try:
        announce(h, op, "ws", real_port)
        block_until_shutdown(h, front.alive)
    finally:
        retire(h, "ws", real_port)
        try:
            front.stop()
        finally:
            sock.close()
        if front.stuck:
            _log.warning("%s: closure calls still running after the %.1f s grace period",
                         op, front.grace)
    return None


def net_serve_ws_fn(h, args):
    return _serve(h, "net.serve_ws_fn", args, "fn")


def net_serve_ws_fn_auth(h, args):
    return _serve(h, "net.serve_ws_fn_auth", args, "auth")


def net_serve_ws_fn_actor(h, args):
    return _serve(h, "net.serve_ws_fn_actor", args, "actor")


ROWS = [
    ("net", "serve_ws_fn", "net", net_serve_ws_fn),
    ("net", "serve_ws_fn_auth", "net", net_serve_ws_fn_auth),
    ("net", "serve_ws_fn_actor", "net", net_serve_ws_fn_actor),
]
