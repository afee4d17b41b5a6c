"""``net.dial_ws`` and ``net.dial_ws_actor`` (gated ``net``): a WebSocket
client that runs the program's closures.

``net.dial_ws(url, subprotocol, on_open, on_message) -> Result[Unit, Str]``
connects, calls ``on_open()`` once and sends what its ``WsAction`` says, then
calls ``on_message(msg)`` for every frame (``WsText(Str)``,
``WsBinary(List[Int])``) and sends each answer, until the server closes: then
``on_message(WsClose)`` once and ``Ok(())``. ``net.dial_ws_actor(url,
subprotocol, name, on_open, on_message)`` also registers the connection as
the session's native actor ``name`` (``""``: none; see :mod:`.ws_fn`) whose
``tell(Str)`` sends a text frame, until it returns. Both block in the
caller's thread; the closures run there, through ``invoke_closure``, one at
a time.

Beyond the reference:

- the URL is parsed once (libcurl's parser, as ``net.get``) and its host must
  be inside ``--allow-net-host`` when that is set (``PolicyDenied``
  otherwise); the socket goes to the host that was checked, and only
  ``ws://`` and ``wss://`` are dialled; ``wss://`` verifies the server's
  certificate and name (the system store, or ``Limits.http_ca_bundle``);
  user info in the URL is refused; no proxy from the environment.
- connecting and the opening handshake share ``OPEN_TIMEOUT_S``; one
  incoming message is at most ``MAX_MESSAGE_BYTES`` (a bigger one closes the
  connection with 1009 and answers ``Err``); a send that the server does not
  take within ``SEND_TIMEOUT_S`` ends it; unanswered pings end it after
  ``PING_INTERVAL_S`` + ``PING_TIMEOUT_S``; no compression (no inflation
  bombs); an actor's queue holds at most ``Limits.ws_queue_bytes`` chars
  (``tell`` past it is an ``EffectError``).
- ``h.shutdown()`` ends it: a 1001 close, then ``Ok(())`` (``WsClose``
  delivered). Pings are answered by the protocol layer and not delivered as
  ``WsPing`` (the reference delivers them). What a closure raises ends the
  connection with ``Err("net.dial_ws: on_message: ...")`` as the reference,
  except a policy refusal (``PolicyDenied``, ``BudgetExceeded``), which
  propagates after the connection is closed.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import struct
import threading
import time
from collections import deque

from ...errors import EffectError, PolicyDenied
from ...kernel import err, expect_str, ok
from ...values import debug_repr, debug_str_list, os_error_text
from ._common import exc_text
from .ws_fn import (
    WS_CLOSE,
    WsActor,
    action_frame,
    actors_of,
    check_subprotocol,
    fatal,
    msg_binary,
    msg_text,
    need_invoke,
)

OPEN_TIMEOUT_S = 10.0
SEND_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0
MAX_MESSAGE_BYTES = 1 << 20
MAX_QUEUE = 16             # messages websockets buffers before it stops reading
POLL_S = 0.05              # an actor's queue and shutdown are looked at this often
URL_ECHO = 200

_wire_log = logging.getLogger("lexfast.ws.client")
if _wire_log.level == logging.NOTSET:
    _wire_log.setLevel(logging.CRITICAL)


class _Refused(Exception):
    """An answer for the program: ``err(str(self))``."""


def _echo(url: str) -> str:
    return url if len(url) <= URL_ECHO else url[:URL_ECHO] + "…"


def _target(h, op: str, url: str):
    """``(scheme, host, port, resource)`` of ``url`` as libcurl parses it,
    its host checked against ``--allow-net-host``."""
    from .http import HttpFailure, _allowed_hosts, _normalize, _parse_url

    try:
        cu = _parse_url(url)
    except HttpFailure as f:
        raise _Refused(f"{op}: bad URL `{_echo(url)}`: {f.message}") from None
    scheme = (cu.scheme or "").lower()
    host = cu.host or ""
    hosts = h.policy.net_hosts
    if hosts and ("\ufffd" in host or _normalize(host) not in _allowed_hosts(hosts)):
        raise PolicyDenied(f"{op}: net call to host `{host}` not in --allow-net-host "
                           f"{debug_str_list(h.policy.allow_net_host)}", effect="net",
                           host=host)
    if scheme not in ("ws", "wss"):
        raise _Refused(f"{op}: bad URL `{_echo(url)}`: scheme `{scheme}` is not ws or wss")
    if cu.user is not None or cu.password is not None:
        raise _Refused(f"{op}: bad URL `{_echo(url)}`: user info in a WebSocket URL "
                       "is not supported")
    if not host:
        raise _Refused(f"{op}: bad URL `{_echo(url)}`: no host")
    port = int(cu.port) if cu.port else (443 if scheme == "wss" else 80)
    path = cu.path or "/"
    resource = path + (f"?{cu.query}" if cu.query else "")
    return scheme, host, port, resource


def _connect(h, op: str, url: str, target, subprotocol: str, deadline: float):
    scheme, host, port, resource = target
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        sock = socket.create_connection((bare, port), timeout=OPEN_TIMEOUT_S)
    except OSError as e:
        raise _Refused(f"{op}: connect to `{_echo(url)}`: "
                       f"{os_error_text(e) if e.errno else (str(e) or type(e).__name__)}") from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # a send the server does not take ends the connection, never blocks forever
        whole = int(SEND_TIMEOUT_S)
        tv = struct.pack("ll", whole, max(1, int((SEND_TIMEOUT_S - whole) * 1e6)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        # blocking from here: websockets' reader thread waits on it for as long
        # as the connection lives; the handshake has its own deadline (open_timeout)
        sock.settimeout(None)
        context = None
        if scheme == "wss":
            # the operator's CA file replaces the system store, as for http.*
            context = ssl.create_default_context(cafile=h.session.limits.http_ca_bundle)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
        from websockets.sync.client import connect

        netloc = host if port == (443 if scheme == "wss" else 80) else f"{host}:{port}"
        return connect(
            f"{scheme}://{netloc}{resource}", sock=sock, ssl=context,
            server_hostname=bare if context is not None else None,
            subprotocols=[subprotocol] if subprotocol else None,
            compression=None, proxy=None, user_agent_header="lexfast",
            open_timeout=max(0.1, deadline - time.monotonic()),
            ping_interval=PING_INTERVAL_S, ping_timeout=PING_TIMEOUT_S,
            close_timeout=CLOSE_TIMEOUT_S, max_size=MAX_MESSAGE_BYTES,
            max_queue=MAX_QUEUE, logger=_wire_log, legacy=True)
    except BaseException as e:
        sock.close()
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise _Refused(f"{op}: connect to `{_echo(url)}`: {_why(e)}") from None


def _why(e: BaseException) -> str:
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    if isinstance(e, InvalidStatus):
        return f"server rejected WebSocket connection: HTTP {e.response.status_code}"
    if isinstance(e, ConnectionClosed):
        codes = {c.code for c in (e.sent, e.rcvd) if c is not None}
        if 1009 in codes:
            return f"a message over the {MAX_MESSAGE_BYTES} byte limit"
        cause = e.__cause__
        if isinstance(cause, (BlockingIOError, TimeoutError)) or (
                isinstance(cause, OSError) and cause.errno in (errno.EAGAIN, errno.EWOULDBLOCK)):
            return f"the server took nothing sent for {SEND_TIMEOUT_S:g} s"
        if isinstance(cause, OSError):
            return f"connection failed: {_why(cause)}"
        if e.rcvd is None and e.sent is None:
            return "the connection ended without a close frame"
        return str(e) or type(e).__name__
    if isinstance(e, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(e, ssl.SSLError):
        return f"TLS: {e.reason or e}"
    if isinstance(e, EOFError):
        return "the server closed the connection during the opening handshake"
    if isinstance(e, OSError) and e.errno:
        return os_error_text(e)
    cause = e.__cause__ or e.__context__
    text = exc_text(e)
    if cause is not None and not isinstance(cause, type(e)):
        text += f" ({_why(cause)})"
    return text


class _Mailbox:
    """A dial actor's outbound queue: bounded in chars, filled by any thread,
    drained by the dialling one."""

    def __init__(self, cap: int) -> None:
        self.lock = threading.Lock()
        self.items: deque = deque()
        self.size = 0
        self.cap = max(1, int(cap))
        self.open = True

    def put(self, text: str) -> bool:
        with self.lock:
            if not self.open or (self.items and self.size + len(text) > self.cap):
                return False
            self.items.append(text)
            self.size += len(text)
            return True

    def take(self) -> list:
        with self.lock:
            items = list(self.items)
            self.items.clear()
            self.size = 0
            return items

    def shut(self) -> None:
        with self.lock:
            self.open = False
            self.items.clear()
            self.size = 0


def _dial(h, op: str, url: str, subprotocol: str, name: str | None, on_open, on_message):
    reason = check_subprotocol(subprotocol)
    if reason:
        return err(f"{op}: invalid subprotocol {debug_repr(subprotocol)}: {reason}")
    try:
        target = _target(h, op, url)  # the policy first: a refused host is refused
    except _Refused as e:
        return err(str(e))
    need_invoke(h, op)
    session = h.session
    if session.shutdown_event.is_set():
        return err(f"{op}: the handler is shutting down")
    try:
        conn = _connect(h, op, url, target, subprotocol, time.monotonic() + OPEN_TIMEOUT_S)
    except _Refused as e:
        return err(str(e))
    mailbox = None
    actor = None
    registry = actors_of(session)
    try:
        if name:
            mailbox = _Mailbox(session.limits.ws_queue_bytes)
            actor = WsActor(name, op, mailbox.put)
            if not registry.register(actor):
                return err(f"{op}: conc.register({name!r}) failed: the name is taken")
        return _run(h, op, conn, mailbox, on_open, on_message)
    finally:
        if actor is not None:
            registry.unregister(actor)
        if mailbox is not None:
            mailbox.shut()
        try:
            conn.close(1000 if not session.shutdown_event.is_set() else 1001)
        except Exception:  # noqa: BLE001 - closing: the socket goes either way
            pass
        conn.socket.close()


def _call(h, op: str, closure, args, what: str):
    """``(action, None)`` or ``(None, err)``; a policy refusal propagates."""
    try:
        return h.invoke_closure(closure, args, op=f"{op} {what}"), None
    except BaseException as e:  # noqa: BLE001 - the reference's Err(...), or re-raised
        if fatal(e):
            raise
        return None, err(f"{op}: {what}: {exc_text(e)}")


def _run(h, op, conn, mailbox, on_open, on_message):
    from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

    action, failed = _call(h, op, on_open, [], "on_open")
    if failed is not None:
        return failed
    try:
        frame = action_frame(action)
    except ValueError as e:
        return err(f"{op}: on_open action: {e}")
    try:
        if frame is not None:
            conn.send(frame)
    except ConnectionClosed:
        pass  # the read below reports how it ended
    except OSError as e:
        return err(f"{op}: on_open action: ws send: {_why(e)}")
    stop = h.session.shutdown_event
    wait = POLL_S if mailbox is not None else 0.25
    while True:
        try:
            data = conn.recv(timeout=wait)
        except TimeoutError:
            data = None
        except ConnectionClosedOK:
            return _closed(h, op, on_message)
        except ConnectionClosed as e:
            rcvd = e.rcvd
            if rcvd is not None and e.sent is not None and rcvd.code in (1000, 1001):
                return _closed(h, op, on_message)
            return err(f"{op}: read: {_why(e)}")
        if data is not None:
            msg = msg_text(data) if isinstance(data, str) else msg_binary(data)
            action, failed = _call(h, op, on_message, [msg], "on_message")
            if failed is not None:
                return failed
            try:
                frame = action_frame(action)
            except ValueError as e:
                return err(f"{op}: action: {e}")
            if frame is not None:
                try:
                    conn.send(frame)
                except ConnectionClosed:
                    pass  # the next read says how it ended
                except OSError as e:
                    return err(f"{op}: send: {_why(e)}")
        if mailbox is not None:
            for text in mailbox.take():
                try:
                    conn.send(text)
                except ConnectionClosed:
                    break
                except OSError as e:
                    return err(f"{op}: send: {_why(e)}")
        if stop.is_set():
            try:
                conn.close(1001, "client shutting down")
            except Exception:  # noqa: BLE001
                pass
            return _closed(h, op, on_message)


def _closed(h, op, on_message):
    """The server (or shutdown) ended it cleanly: ``WsClose`` once, ``Ok``."""
    _action, failed = _call(h, op, on_message, [WS_CLOSE], "on_message")
    return ok(None)


def net_dial_ws(h, args):
    if len(args) != 4:
        raise EffectError(f"net.dial_ws: expected 4 arguments (url, subprotocol, on_open, "
                          f"on_message), got {len(args)}")
    url = expect_str(args, 0)
    subprotocol = expect_str(args, 1)
    return _dial(h, "net.dial_ws", url, subprotocol, None, args[2], args[3])


def net_dial_ws_actor(h, args):
    if len(args) != 5:
        raise EffectError(f"net.dial_ws_actor: expected 5 arguments (url, subprotocol, name, "
                          f"on_open, on_message), got {len(args)}")
    url = expect_str(args, 0)
    subprotocol = expect_str(args, 1)
    name = expect_str(args, 2)
    return _dial(h, "net.dial_ws_actor", url, subprotocol, name, args[3], args[4])


ROWS = [
    ("net", "dial_ws", "net", net_dial_ws),
    ("net", "dial_ws_actor", "net", net_dial_ws_actor),
]
