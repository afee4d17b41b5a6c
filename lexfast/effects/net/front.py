"""The HTTP/1.1 front of ``net.serve`` and ``net.serve_tls``: one event-loop
thread owns every connection, a bounded pool of worker threads runs only the
program's calls on complete requests.

Why this shape (issue 23): a server that hands each new connection to a
worker blocking on its reads is stalled by as many silent or trickling
clients as it has workers (slowloris); a lenient parser behind a proxy lets a
client smuggle a second request past it. Here

- the loop (asyncio; ``uvloop`` when installed) accepts, does the TLS
  handshake (``TLS_HANDSHAKE_S``), reads heads and bodies and idles kept-alive
  connections, each under a deadline: a whole head within ``HEAD_TIMEOUT_S`` of
  its first byte, a body making progress at least every ``limits.serve_idle_s``,
  an idle keep-alive connection closed after ``limits.serve_idle_s``;
  descriptor exhaustion (EMFILE) pauses accepting for ``ACCEPT_RETRY_S`` (one
  log line a minute at most) and never ends the server;
- the parser is strict RFC 9112 and bounds everything while it reads: the
  request line (``MAX_LINE_BYTES``), the head (``MAX_HEAD_BYTES``,
  ``MAX_HEADERS``), a chunk-size line (``MAX_CHUNK_LINE``), trailers
  (``MAX_HEAD_BYTES``) and the body (``limits.request_body_bytes``, 413);
  anything ambiguous is a 400 (or 501/505) and the connection is closed:
  ``Content-Length`` together with ``Transfer-Encoding``, a repeated or
  non-decimal ``Content-Length``, a transfer coding other than ``chunked``,
  chunk sizes that are not plain hex, obs-fold, bare CR or LF, control bytes,
  whitespace before a colon, a missing or repeated ``Host`` in HTTP/1.1;
- a worker starts a program call only while the server is open: once
  :meth:`Front.stop` begins, queued requests are dropped, in-flight ones get
  ``grace`` seconds to finish and their answers are still written.

The program's answer goes out as one write, head and body; 1xx, 204 and 304
answers and every answer to HEAD carry no body. A streamed body (an app
answer whose payload is not ``bytes`` but has ``pull()``/``close()``) goes
out chunked (close-delimited to HTTP/1.0 clients), one chunk written on the
loop before the worker pulls the next, so a client that stops reading holds
one chunk and the transport's buffer, and is cut after ``serve_idle_s``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import socket
import threading
import time
from http import HTTPStatus

from ._common import exc_text

_log = logging.getLogger("lexfast.serve")

HEAD_TIMEOUT_S = 10.0        # first byte of a request to the end of its head
TLS_HANDSHAKE_S = 10.0       # accept to a finished TLS handshake
MAX_LINE_BYTES = 8 << 10     # the request line
MAX_HEAD_BYTES = 64 << 10    # request line and header block together (also trailers)
MAX_HEADERS = 100
MAX_CHUNK_LINE = 1 << 10     # chunk size and extensions
MAX_CHUNKS = 1 << 14         # chunks in one body, plus one per 256 bytes of the body limit
CLOSE_FLUSH_S = 1.0          # at stop: time for written answers to drain
LISTEN_BACKLOG = 1024
ACCEPT_RETRY_S = 0.5         # out of descriptors (EMFILE): accepting pauses this long

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
# a field value may hold visible ASCII, SP, HTAB and obs-text; never another CTL
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS = re.compile(rb"[0-9]{1,18}")
# RFC 9112 3.2: Host is uri-host [":" port] (reg-name, IPv4 or an IP literal)
_HOST = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]*|\[[0-9A-Fa-f:.vV\-._~!$&'()*+,;=]+\])(?::[0-9]*)?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:[ \t]*;[\t\x20-\x7e]*)?")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_BODY_STATUS = frozenset({204, 304})


class BadRequest(Exception):
    """A request the front refuses: answered with ``status`` and closed."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def status_line(status: int) -> bytes:
    phrase = _phrase(status)
    return f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")


def error_response(status: int, text: str) -> bytes:
    body = text.encode("utf-8", "replace")
    return (status_line(status) + b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode("ascii") +
            b"\r\nConnection: close\r\n\r\n" + body)


def build_response(status: int, payload: bytes, extra, head_only: bool, keep: bool,
                   http10: bool = False) -> bytes:
    """One HTTP/1.1 answer, head and body. ``extra`` is a list of
    ``(name, value)`` bytes pairs already checked (no CR/LF/NUL, token names,
    no framing headers)."""
    parts = [status_line(status)]
    if status in _NO_BODY_STATUS or 100 <= status < 200:
        payload = b""
    else:
        parts.append(b"Content-Length: %d\r\n" % len(payload))
        if head_only:
            payload = b""
    has_type = False
    if extra:
        for k, v in extra:
            if not has_type and k.lower() == b"content-type":
                has_type = True
            parts.append(k + b": " + v + b"\r\n")
    if not has_type and status not in _NO_BODY_STATUS:
        parts.append(b"Content-Type: text/plain; charset=utf-8\r\n")
    if not keep:
        parts.append(b"Connection: close\r\n")
    elif http10:
        parts.append(b"Connection: keep-alive\r\n")
    parts.append(b"\r\n")
    parts.append(payload)
    return b"".join(parts)


def stream_head(status: int, extra, keep: bool, http10: bool) -> bytes:
    """The head of a streamed answer: chunked (HTTP/1.1), or delimited by
    the close (HTTP/1.0). ``extra`` as for :func:`build_response`."""
    parts = [status_line(status)]
    if status not in _NO_BODY_STATUS:
        if not http10:
            parts.append(b"Transfer-Encoding: chunked\r\n")
    has_type = False
    for k, v in extra or ():
        if not has_type and k.lower() == b"content-type":
            has_type = True
        parts.append(k + b": " + v + b"\r\n")
    if not has_type and status not in _NO_BODY_STATUS:
        parts.append(b"Content-Type: text/plain; charset=utf-8\r\n")
    if not keep:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _exc_line(e: BaseException) -> str:
    return exc_text(e).replace("\r", " ").replace("\n", " ")[:300]


class Head:
    """A parsed request head."""

    __slots__ = ("method", "target", "version", "headers", "length", "chunked", "keep",
                 "expect_continue")


def parse_head(block: bytes) -> Head:
    """The request line and header fields of ``block`` (the head without its
    final CRLF CRLF). Raises :class:`BadRequest`."""
    lines = block.split(b"\r\n")
    m = _REQUEST_LINE.fullmatch(lines[0])
    if m is None:
        if len(lines[0]) > MAX_LINE_BYTES:
            raise BadRequest(414, "request line too long")
        raise BadRequest(400, "malformed request line")
    if len(lines[0]) > MAX_LINE_BYTES:
        raise BadRequest(414, "request line too long")
    major, minor = m.group(3), m.group(4)
    if major != b"1":
        raise BadRequest(505, "HTTP version not supported")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(431, f"more than {MAX_HEADERS} header fields")
    headers: dict[str, str] = {}
    hosts = lengths = codings = 0
    length_value = b""
    coding_value = b""
    connection = b""
    expect = None
    for line in lines[1:]:
        colon = line.find(b":")
        # a leading SP/HTAB (obs-fold), whitespace before the colon, an empty
        # or non-token name: all fail the token match
        if colon <= 0 or _TOKEN.fullmatch(line, 0, colon) is None:
            raise BadRequest(400, "malformed header field")
        value = line[colon + 1:].strip(b" \t")
        if _BAD_VALUE.search(value) is not None:
            raise BadRequest(400, "control character in a header field")
        name = line[:colon].decode("ascii").lower()
        if name == "host":
            hosts += 1
            if _HOST.fullmatch(value) is None:
                raise BadRequest(400, "invalid Host header")
        elif name == "content-length":
            lengths += 1
            length_value = value
        elif name == "transfer-encoding":
            codings += 1
            coding_value = value
        elif name == "connection":
            connection += b"," + value
        elif name == "expect":
            expect = value.lower()
        text = value.decode("latin-1")
        old = headers.get(name)
        headers[name] = text if old is None else old + ", " + text
    http11 = minor != b"0"
    if hosts > 1 or (http11 and hosts == 0):
        raise BadRequest(400, "a request needs exactly one Host header (HTTP/1.1)")
    head = Head()
    head.method = m.group(1)
    head.target = m.group(2)
    head.version = minor
    head.headers = headers
    head.length = 0
    head.chunked = False
    if codings:
        if lengths:
            raise BadRequest(400, "both Content-Length and Transfer-Encoding")
        if not http11:
            raise BadRequest(400, "Transfer-Encoding in an HTTP/1.0 request")
        if codings > 1 or coding_value.lower() != b"chunked":
            raise BadRequest(501, "only the chunked transfer coding is supported")
        head.chunked = True
    elif lengths:
        if lengths > 1 or _DIGITS.fullmatch(length_value) is None:
            raise BadRequest(400, "invalid Content-Length")
        head.length = int(length_value)
    tokens = {t.strip() for t in connection.lower().split(b",")} if connection else ()
    head.keep = (b"close" not in tokens) if http11 else (b"keep-alive" in tokens)
    head.expect_continue = False
    if expect is not None:
        if expect != b"100-continue":
            raise BadRequest(417, "unsupported expectation")
        head.expect_continue = http11
    return head


def take_head(buf: bytearray, scanned: int = 0) -> tuple[bytes | None, int]:
    """The head at the start of ``buf`` (removed from it, without its final
    CRLF CRLF), or None while it is incomplete; bounded as it arrives.
    ``scanned`` is how far an earlier call searched, returned updated, so a
    head trickled a byte at a time is scanned once, not once per byte."""
    end = buf.find(b"\r\n\r\n", max(0, scanned - 3))
    if end < 0:
        if len(buf) > MAX_HEAD_BYTES:
            raise BadRequest(431, "request head too large")
        lf = buf.find(b"\n", 0, MAX_LINE_BYTES + 2)
        if lf == 0 or (lf > 0 and buf[lf - 1] != 13):
            raise BadRequest(400, "bare LF in the request head")
        if lf < 0 and len(buf) > MAX_LINE_BYTES:
            raise BadRequest(414, "request line too long")
        return None, len(buf)
    if end > MAX_HEAD_BYTES:
        raise BadRequest(431, "request head too large")
    block = bytes(buf[:end])
    del buf[:end + 4]
    return block, 0


# -- one connection --------------------------------------------------------------

_IDLE, _HEAD, _BODY, _CHUNK_SIZE_STATE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _BUSY, _CLOSED, _TLS = range(10)


class _Conn(asyncio.Protocol):
    __slots__ = ("front", "transport", "buf", "state", "deadline", "head", "body", "need",
                 "trailer_bytes", "write_paused", "pending_resume", "scanned", "chunks",
                 "drain_waiters")

    def __init__(self, front: Front) -> None:
        self.front = front
        self.transport = None
        self.buf = bytearray()
        self.state = _IDLE
        self.deadline = 0.0
        self.head: Head | None = None
        self.body = bytearray()
        self.need = 0
        self.trailer_bytes = 0
        self.scanned = 0
        self.chunks = 0
        self.write_paused = False
        self.pending_resume = False
        self.drain_waiters: list = []  # a streaming worker's events: set once written out

    # asyncio callbacks
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
        # counted from the first byte, TLS handshakes included, so the cap
        # and every deadline apply to connections that never get further
        if front.context is not None:
            self.state = _TLS
            self.deadline = time.monotonic() + TLS_HANDSHAKE_S
            task = front.loop.create_task(front.loop.start_tls(
                transport, self, front.context, server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_S))
            front.handshakes.add(task)
            task.add_done_callback(self._handshake_done)
        else:
            self.deadline = time.monotonic() + front.idle_s
        front.conns[self] = None
        if len(front.conns) > front.max_conns:
            front.evict()

    def _handshake_done(self, task) -> None:
        self.front.handshakes.discard(task)
        if task.cancelled() or task.exception() is not None:
            if self.state != _CLOSED:
                self.expire()
            self.front.conns.pop(self, None)
            return
        if self.state != _TLS:  # expired meanwhile
            task.result().abort()
            return
        self.transport = task.result()
        self.state = _IDLE
        self.deadline = time.monotonic() + self.front.idle_s
        if self.buf:
            self._next()

    def connection_lost(self, exc) -> None:
        self.state = _CLOSED
        self.front.conns.pop(self, None)
        self.buf = bytearray()
        self.body = bytearray()
        self._wake_writers()

    def pause_writing(self) -> None:
        self.write_paused = True

    def _wake_writers(self) -> None:
        waiters, self.drain_waiters = self.drain_waiters, []
        for ev in waiters:
            ev.set()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writers()
        if self.pending_resume:
            self.pending_resume = False
            self._next()

    def eof_received(self):
        if self.state == _BUSY:
            return True  # half-closed: still answer the request in flight
        return None

    def data_received(self, data: bytes) -> None:
        if self.state in (_BUSY, _CLOSED, _TLS):
            if self.state != _CLOSED:  # pipelined, or sent with the handshake's last flight
                self.buf += data
                if len(self.buf) > MAX_HEAD_BYTES + MAX_CHUNK_LINE:
                    self.transport.pause_reading()
            return
        self.buf += data
        try:
            self._process()
        except BadRequest as e:
            self.refuse(e.status, e.text)

    # the state machine
    def _process(self) -> None:
        front = self.front
        buf = self.buf
        while True:
            state = self.state
            if state == _IDLE or state == _HEAD:
                if state == _IDLE:
                    # RFC 9112 2.2: empty lines before a request line are ignored
                    while buf[:2] == b"\r\n":
                        del buf[:2]
                    if not buf:
                        return
                    self.state = _HEAD
                    self.deadline = time.monotonic() + front.head_s
                block, self.scanned = take_head(buf, self.scanned)
                if block is None:
                    return
                head = parse_head(block)
                self.head = head
                if head.chunked:
                    self.state = _CHUNK_SIZE_STATE
                    self.chunks = 0
                elif head.length:
                    if head.length > front.body_limit:
                        raise BadRequest(413, f"request body exceeds {front.body_limit} bytes")
                    self.state = _BODY
                    self.need = head.length
                else:
                    self._dispatch(b"")
                    return
                if head.expect_continue and not buf:
                    self.transport.write(_CONTINUE)
                self.deadline = time.monotonic() + front.idle_s
            elif state == _BODY:
                if not buf:
                    return
                self.deadline = time.monotonic() + front.idle_s
                if len(buf) >= self.need and not self.body:
                    body = bytes(buf[:self.need])
                    del buf[:self.need]
                    self._dispatch(body)
                    return
                take = min(self.need, len(buf))
                self.body += buf[:take]
                del buf[:take]
                self.need -= take
                if self.need:
                    return
                body = bytes(self.body)
                self.body = bytearray()
                self._dispatch(body)
                return
            elif state == _CHUNK_SIZE_STATE:
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_CHUNK_LINE:
                        raise BadRequest(400, "chunk size line too long")
                    if b"\n" in buf:
                        raise BadRequest(400, "bare LF in a chunk size line")
                    return
                if end > MAX_CHUNK_LINE:
                    raise BadRequest(400, "chunk size line too long")
                m = _CHUNK_SIZE.fullmatch(buf, 0, end)
                if m is None:
                    raise BadRequest(400, "invalid chunk size")
                size = int(m.group(1), 16)
                del buf[:end + 2]
                self.deadline = time.monotonic() + front.idle_s
                if size == 0:
                    self.state = _TRAILER
                    self.trailer_bytes = 0
                else:
                    if len(self.body) + size > front.body_limit:
                        raise BadRequest(413, f"request body exceeds {front.body_limit} bytes")
                    # a body of one-byte chunks costs the loop a parse step per
                    # byte: past this many chunks the framing is refused
                    self.chunks += 1
                    if self.chunks > MAX_CHUNKS + front.body_limit // 256:
                        raise BadRequest(400, "too many chunks")
                    self.state = _CHUNK_DATA
                    self.need = size
            elif state == _CHUNK_DATA:
                if not buf:
                    return
                self.deadline = time.monotonic() + front.idle_s
                take = min(self.need, len(buf))
                self.body += buf[:take]
                del buf[:take]
                self.need -= take
                if self.need:
                    return
                self.state = _CHUNK_CRLF
            elif state == _CHUNK_CRLF:
                if len(buf) < 2:
                    if buf and buf[0] != 13:
                        raise BadRequest(400, "chunk data not followed by CRLF")
                    return
                if buf[:2] != b"\r\n":
                    raise BadRequest(400, "chunk data not followed by CRLF")
                del buf[:2]
                self.state = _CHUNK_SIZE_STATE
            elif state == _TRAILER:
                end = buf.find(b"\r\n", max(0, self.scanned - 1))
                if end < 0:
                    if len(buf) + self.trailer_bytes > MAX_HEAD_BYTES:
                        raise BadRequest(431, "trailer section too large")
                    if buf.find(b"\n", max(0, self.scanned - 1)) >= 0:
                        raise BadRequest(400, "bare LF in the trailer section")
                    self.scanned = len(buf)
                    return
                self.scanned = 0
                self.trailer_bytes += end + 2
                if self.trailer_bytes > MAX_HEAD_BYTES:
                    raise BadRequest(431, "trailer section too large")
                if end == 0:
                    del buf[:2]
                    body = bytes(self.body)
                    self.body = bytearray()
                    self._dispatch(body)
                    return
                colon = buf.find(b":", 0, end)
                if colon <= 0 or _TOKEN.fullmatch(buf, 0, colon) is None or \
                        _BAD_VALUE.search(buf, colon + 1, end) is not None:
                    raise BadRequest(400, "malformed trailer field")
                del buf[:end + 2]  # trailers are read and dropped
            else:
                return

    def _dispatch(self, body: bytes) -> None:
        front = self.front
        head = self.head
        self.state = _BUSY
        self.transport.pause_reading()
        if front.closing:
            self.transport.abort()
            return
        front.submit(self._answer, (head, body), self.expire)

    def _answer(self, head: Head, body: bytes) -> None:
        """On a worker: the program's answer, written back on the loop."""
        try:
            status, payload, extra = self.front.app(head.method, head.target, head.headers, body)
        except BaseException as e:  # noqa: BLE001 - a 500, the server keeps serving
            status, payload, extra = 500, f"internal error: {type(e).__name__}".encode(), None
        keep = head.keep
        if not isinstance(payload, bytes):
            self._stream(head, status, payload, extra)
            return
        data = build_response(status, payload, extra, head.method == b"HEAD", keep,
                              head.version == b"0")
        _call_soon(self.front.loop, self.respond, data, keep)

    # -- a streamed body (BodyStream / BodyBytes): pulled chunk by chunk on
    # this worker, each written on the loop before the next is pulled, so at
    # most one chunk plus the transport's high-water mark is held; a client
    # that stops reading for serve_idle_s, or leaves, ends the pulling.
    def _stream(self, head: Head, status: int, chunks, extra) -> None:
        front = self.front
        http10 = head.version == b"0"
        keep = head.keep and not http10  # HTTP/1.0: the body ends at close
        try:
            first = None if head.method == b"HEAD" else chunks.pull()
        except BaseException as e:  # noqa: BLE001 - nothing sent yet: a 500
            chunks.close()
            data = build_response(500, f"internal error: {_exc_line(e)}".encode("utf-8", "replace"),
                                  None, head.method == b"HEAD", head.keep, http10)
            _call_soon(front.loop, self.respond, data, head.keep)
            return
        try:
            if not self._push(stream_head(status, extra, keep, http10)):
                return
            if head.method == b"HEAD" or status in _NO_BODY_STATUS:
                _call_soon(front.loop, self.respond, b"", keep)
                return
            chunk = first
            while chunk is not None:
                if chunk:
                    framed = chunk if http10 else b"%x\r\n%s\r\n" % (len(chunk), chunk)
                    if not self._push(framed):
                        return
                chunk = chunks.pull()
        except BaseException as e:  # noqa: BLE001 - mid-body: cut short, never a clean end
            _log.warning("%s: streamed body failed: %s", front.label, _exc_line(e))
            _call_soon(front.loop, self.expire)
            return
        finally:
            chunks.close()
        _call_soon(front.loop, self.respond, b"" if http10 else b"0\r\n\r\n", keep)

    def _push(self, data: bytes) -> bool:
        """Write ``data`` on the loop and wait until the transport took it
        (below its high-water mark); False when the connection is gone or
        the client read nothing for ``serve_idle_s``."""
        ev = threading.Event()
        _call_soon(self.front.loop, self._write_chunk, data, ev)
        if not ev.wait(self.front.idle_s):
            _call_soon(self.front.loop, self.expire)
            return False
        return self.state != _CLOSED

    def _write_chunk(self, data: bytes, ev: threading.Event) -> None:
        if self.state == _CLOSED:
            ev.set()
            return
        self.transport.write(data)
        if self.write_paused:
            self.drain_waiters.append(ev)
        else:
            ev.set()

    def respond(self, data: bytes, keep: bool) -> None:
        """On the loop: write a worker's answer, then serve the next request."""
        if self.state == _CLOSED:
            return
        if data:
            self.transport.write(data)
        if not keep or self.front.closing:
            self.state = _CLOSED
            self.transport.close()
            return
        self.state = _IDLE
        self.head = None
        self.deadline = time.monotonic() + self.front.idle_s
        if self.write_paused:
            self.pending_resume = True  # a client that does not read its answers
            return
        self._next()

    def _next(self) -> None:
        if self.state != _IDLE:
            return
        self.transport.resume_reading()
        if self.buf:
            try:
                self._process()
            except BadRequest as e:
                self.refuse(e.status, e.text)

    def refuse(self, status: int, text: str) -> None:
        """Answer a request the front will not pass on, and close."""
        if self.state == _CLOSED:
            return
        self.state = _CLOSED
        _log.debug("net.serve: %d %s", status, text)
        self.transport.write(error_response(status, text))
        self.transport.close()
        self.buf = bytearray()
        self.body = bytearray()

    def expire(self) -> None:
        self.state = _CLOSED
        self.transport.abort()

    # the front's stop, in two steps
    def stopping(self) -> None:
        """Accepting stopped: drop the connection unless a call is in flight."""
        if self.state != _BUSY:
            self.expire()

    def closing_now(self) -> None:
        """The grace period is over."""
        if self.state == _BUSY:
            self.expire()  # its answer will not come
        else:
            self.transport.close()  # flushes an answer already written

    def busy(self) -> bool:
        return self.state == _BUSY


# -- the front -------------------------------------------------------------------

def _new_loop(tls: bool) -> asyncio.AbstractEventLoop:
    """uvloop when installed (about twice the plain-HTTP throughput, see
    bench/RESULTS.md), else asyncio's loop. TLS servers stay on asyncio's loop:
    with uvloop 0.23, ``start_tls`` on our accepted connections let a new
    client's handshake stall once ~120 others sat in the middle of a
    ClientHello (test_silent_tls_clients_past_the_pool...; uvloop's own
    ``create_server(ssl=...)`` did not, but it would take accept, EMFILE and
    the first-byte count away from the front).
    LEXFAST_SERVE_LOOP=asyncio forces asyncio's loop everywhere."""
    if not tls and os.environ.get("LEXFAST_SERVE_LOOP", "").strip().lower() != "asyncio":
        try:
            import uvloop  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Front:
    """One server: a loop thread, ``threads`` workers, the listener ``sock``.

    ``app(method, target, headers, body) -> (status, payload, extra)`` runs on
    a worker; it must not raise (a raise is a 500)."""

    def __init__(self, sock: socket.socket, app, limits, context=None, label="net.serve",
                 conn_class=None, max_conns: int | None = None) -> None:
        self.sock = sock
        self.conn_class = conn_class or _Conn
        self.ticks = hasattr(self.conn_class, "tick")  # per-connection upkeep (WebSocket pings)
        self.ws = None  # net.serve_ws's context
        self.app = app
        self.label = label
        self.context = context
        self.idle_s = max(0.01, float(limits.serve_idle_s))
        self.head_s = HEAD_TIMEOUT_S
        self.body_limit = max(0, int(limits.request_body_bytes))
        self.max_conns = max(1, int(max_conns if max_conns is not None
                                    else limits.serve_keepalive_conns))
        self.grace = max(0.0, float(limits.serve_grace_s))
        self.threads = max(1, int(limits.serve_threads))
        self.conns: dict[_Conn, None] = {}
        self.handshakes: set = set()
        self.closing = False
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.inflight = 0
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.stuck = 0
        self.loop = _new_loop(context is not None)
        self.loop.set_exception_handler(self._loop_error)
        self.accepting = False
        self.accept_paused_at = -1e9
        self.errors_logged: dict[str, float] = {}
        self.opening: set = set()  # accepted sockets becoming transports
        self.loop_thread: threading.Thread | None = None
        self.workers: list[threading.Thread] = []

    def start(self) -> None:
        self.sock.setblocking(False)
        port = self.sock.getsockname()[1]
        self.loop_thread = threading.Thread(target=self._run_loop, name=f"lexfast {self.label} :{port}",
                                            daemon=True)
        for i in range(self.threads):
            t = threading.Thread(target=self._work, name=f"lexfast {self.label} worker {i}",
                                 daemon=True)
            self.workers.append(t)
        for t in self.workers:
            t.start()
        self.loop_thread.start()

    def alive(self) -> bool:
        return self.loop_thread is not None and self.loop_thread.is_alive()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._sweep)
        self.loop.call_soon(self._resume_accept)
        self.loop.run_forever()

    # -- accept: our own, so descriptor exhaustion is one pause, not a flood
    # (asyncio 3.11's accept loop logs and re-arms once per backlog slot)
    def _resume_accept(self) -> None:
        if self.closing:
            return
        self.accepting = True
        self.loop.add_reader(self.sock.fileno(), self._accept)

    def _accept(self) -> None:
        loop = self.loop
        for _ in range(64):
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:
                loop.remove_reader(self.sock.fileno())
                self.accepting = False
                now = time.monotonic()
                if now - self.accept_paused_at > 60.0:  # one line a minute at most
                    _log.warning("%s: accept paused for %.1f s: %s", self.label,
                                 ACCEPT_RETRY_S, e.strerror or e)
                self.accept_paused_at = now
                loop.call_later(ACCEPT_RETRY_S, self._resume_accept)
                return
            if self.closing:
                conn.close()
                return
            conn.setblocking(False)
            task = loop.create_task(loop.connect_accepted_socket(
                lambda: self.conn_class(self), conn))
            self.opening.add(task)
            task.add_done_callback(self._opened)

    def _opened(self, task) -> None:
        self.opening.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a socket that failed while opening is just gone

    def _loop_error(self, loop, context) -> None:
        # EMFILE in accept ("out of system resource") and failed TLS
        # handshakes land here: one line, never a traceback per client.
        exc = context.get("exception")
        key = context.get("message", "")
        now = time.monotonic()
        if now - self.errors_logged.get(key, -1e9) < 60.0:  # one line a minute per kind
            return
        self.errors_logged[key] = now
        _log.warning("%s: %s%s", self.label, context.get("message", ""),
                     f" ({exc})" if exc is not None else "")

    def _sweep(self) -> None:
        """Close connections past their deadline (idle, head, body)."""
        now = time.monotonic()
        for conn in [c for c in self.conns if c.deadline <= now and not c.busy()]:
            conn.expire()
        if self.ticks:
            for conn in list(self.conns):
                conn.tick(now)
        if not self.closing:
            self.loop.call_later(min(0.25, self.idle_s / 4, self.head_s / 4), self._sweep)

    def evict(self) -> None:
        """Over the connection cap: close the connection that has waited
        longest without a request in flight (silent clients go first)."""
        victim = None
        for c in self.conns:
            if not c.busy() and (victim is None or c.deadline < victim.deadline):
                victim = c
        if victim is not None:
            victim.expire()
            self.conns.pop(victim, None)

    # -- workers
    def submit(self, fn, args: tuple, drop) -> None:
        """Run ``fn(*args)`` on a worker, or ``drop()`` on the loop if the
        server is stopping by then."""
        self.jobs.put((fn, args, drop))

    def _work(self) -> None:
        jobs = self.jobs
        loop = self.loop
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, args, drop = job
            with self.lock:
                if self.closing:  # no program call starts once stop() began
                    _call_soon(loop, drop)
                    continue
                self.inflight += 1
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - fn answers its own failures; never lose a worker
                _log.exception("%s: worker", self.label)
            finally:
                with self.lock:
                    self.inflight -= 1
                    if not self.inflight:
                        self.idle.notify_all()

    # -- stop
    def stop(self) -> None:
        """Stop accepting, drop idle connections and queued requests, let
        in-flight calls finish within the grace period, close everything."""
        deadline = time.monotonic() + self.grace
        with self.lock:
            self.closing = True
        loop = self.loop
        if self.loop_thread is None:
            loop.close()
            return
        done = threading.Event()
        _call_soon(loop, self._stop_accepting, done)
        done.wait(2.0)
        with self.lock:
            while self.inflight and time.monotonic() < deadline:
                self.idle.wait(max(0.0, deadline - time.monotonic()))
            self.stuck = self.inflight
        closed = threading.Event()
        _call_soon(loop, self._close_all, closed)
        closed.wait(CLOSE_FLUSH_S + 1.0)
        _call_soon(loop, loop.stop)
        self.loop_thread.join(2.0)
        if not self.loop_thread.is_alive():
            try:
                pending = self.handshakes | self.opening
                if pending:  # let cancelled TLS handshakes and openings unwind
                    for task in pending:
                        task.cancel()
                    loop.run_until_complete(asyncio.wait(list(pending), timeout=1.0))
                loop.close()
            except Exception:  # noqa: BLE001
                pass
        for _ in self.workers:
            self.jobs.put(None)
        for t in self.workers:
            t.join(0.2 if self.stuck else 1.0)

    def _stop_accepting(self, done: threading.Event) -> None:
        try:
            if self.accepting:
                self.loop.remove_reader(self.sock.fileno())
                self.accepting = False
            self.sock.close()  # new clients are refused from now on
            for c in list(self.conns):
                c.stopping()
        finally:
            done.set()

    def _close_all(self, closed: threading.Event) -> None:
        conns = list(self.conns)
        for c in conns:
            c.closing_now()
        end = time.monotonic() + CLOSE_FLUSH_S

        def check():
            if not self.conns or time.monotonic() > end:
                for c in list(self.conns):
                    c.expire()
                self.conns.clear()
                closed.set()
            else:
                self.loop.call_later(0.02, check)

        check()


def _call_soon(loop, fn, *args) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: the server is gone
        pass
