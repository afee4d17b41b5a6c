"""http.stream_lines(url, headers, body): a POST whose response body is read
line by line as the program pulls (``stream.next``), on pycurl's multi
interface, so an endpoint that keeps the connection open (SSE, an LLM's
token stream) is consumed event by event instead of buffered whole.

The URL goes through the same check as ``http.get`` (libcurl's parser,
``--allow-net-host``, http/https only, no redirects; a refused host is a
``PolicyDenied``), headers through the same validation. Stricter than the
reference: one line is at most ``Limits.stream_line_bytes`` and the whole
stream ``Limits.stream_bytes`` (past either the next pull raises and the
stream is closed, never silently cut), the stream ends after
``Limits.stream_timeout_s`` (the reference's 10 minutes) and within about
0.1 s of ``handler.close()`` or its eviction, which close its connection.
A line that is not UTF-8, or a transfer that fails mid-stream, raises
(the reference's reader ended the stream there as if it were complete). Lines lose their ``\\n`` / ``\\r\\n`` and have
``\\uXXXX`` escapes decoded, as in the reference.
"""

from __future__ import annotations

import collections
import time

import pycurl  # type: ignore[import-untyped]

from ...errors import EffectError
from ...kernel import err, expect_str, ok
from ...values import Map, debug_repr
from .. import stream as streams
from .http import (
    _CONNECT_TIMEOUT_MS,
    _HTTP_PROTOCOLS,
    _TIMEOUT_CODES,
    _USER_AGENT,
    HttpFailure,
    _clamp_ms,
    _curl_message,
    _denied,
    _env_ca_bundle,
    _header_lines,
    _parse_headers,
    checked_url,
)

_TICK_S = 0.1  # how often a waiting pull looks at close/shutdown


class LineStream(streams.Producer):
    """One streaming transfer: ``start()`` runs it to the end of the response
    headers; each ``pull()`` runs it until a whole line is there."""

    def __init__(self, h, op: str, cu, header_lines: list, body: bytes) -> None:
        limits = h.session.limits
        self.op = op
        self.session = h.session
        self.line_cap = limits.stream_line_bytes
        self.total_cap = limits.stream_bytes
        self.deadline = time.monotonic() + limits.stream_timeout_s
        self.lines: collections.deque = collections.deque()
        self.buf = bytearray()
        self.total = 0
        self.tripped: str | None = None
        self.done = False
        self.error: str | None = None
        self.stop = False
        self.header_lines: list = []
        self.headers_done = False
        self.informational = False
        self.multi = pycurl.CurlMulti()
        self.curl = pycurl.Curl()
        try:
            self._setup(limits, cu, header_lines, body)
        except BaseException:
            self.close()
            raise

    def _setup(self, limits, cu, header_lines: list, body: bytes) -> None:
        c = self.curl
        setopt = c.setopt
        setopt(pycurl.NOSIGNAL, 1)
        setopt(pycurl.PROTOCOLS, _HTTP_PROTOCOLS)
        setopt(pycurl.REDIR_PROTOCOLS, _HTTP_PROTOCOLS)
        setopt(pycurl.FOLLOWLOCATION, 0)
        setopt(pycurl.MAXREDIRS, 0)
        setopt(pycurl.PROXY, limits.http_proxy or "")
        setopt(pycurl.USERAGENT, _USER_AGENT)
        setopt(pycurl.CONNECTTIMEOUT_MS, _CONNECT_TIMEOUT_MS)
        setopt(pycurl.TIMEOUT_MS, _clamp_ms(limits.stream_timeout_s * 1000))
        ca = limits.http_ca_bundle or _env_ca_bundle
        if ca:
            setopt(pycurl.CAINFO, ca)
        setopt(pycurl.CURLU, cu)
        setopt(pycurl.WRITEFUNCTION, self._write)
        setopt(pycurl.HEADERFUNCTION, self._header)
        setopt(pycurl.POSTFIELDSIZE_LARGE, len(body))
        setopt(pycurl.POSTFIELDS, body)
        setopt(pycurl.HTTPHEADER, header_lines + [b"Expect:"])
        self.multi.add_handle(c)

    # -- libcurl's callbacks (on this thread, inside perform) ---------------
    def _header(self, line: bytes) -> None:
        # (getinfo cannot be called from inside a callback: the status line is read here)
        if line.startswith(b"HTTP/"):
            parts = line.split(None, 2)
            self.informational = len(parts) > 1 and parts[1][:1] == b"1"
        self.header_lines.append(line)
        if line in (b"\r\n", b"\n"):
            if self.informational:
                self.header_lines = []
            else:
                self.headers_done = True

    def _write(self, data: bytes):
        self.headers_done = True
        self.total += len(data)
        if self.total > self.total_cap:
            self.tripped = f"{self.op}: the stream passed {self.total_cap} bytes; it is closed"
            return 0  # short count: libcurl stops the transfer
        buf = self.buf
        buf += data
        start = 0
        while True:
            i = buf.find(b"\n", start)
            if i < 0:
                break
            if i - start > self.line_cap + 1:
                break
            self.lines.append(bytes(buf[start:i]))
            start = i + 1
        if start:
            del buf[:start]
        if len(buf) > self.line_cap + 1:  # +1: a line's \r
            self.tripped = f"{self.op}: a line longer than {self.line_cap} bytes; the stream is closed"
            return 0
        return None

    # -- driving the transfer ------------------------------------------------
    def interrupt(self) -> None:
        self.stop = True

    def _run(self, ready) -> None:
        """Drive libcurl until ``ready()`` or the transfer ends."""
        multi = self.multi
        while not ready() and not self.done:
            if self.stop or self.session.closed:
                raise EffectError(f"{self.op}: the stream is closed")
            while True:
                ret, _ = multi.perform()
                if ret != pycurl.E_CALL_MULTI_PERFORM:
                    break
            _, good, bad = multi.info_read()
            if good or bad:
                self.done = True
                if bad:
                    code, msg = bad[0][1], bad[0][2]
                    if self.tripped is None:
                        self.error = "timed out" if code in _TIMEOUT_CODES else (msg or str(code))
                if self.buf and self.tripped is None and self.error is None:
                    self.lines.append(bytes(self.buf))  # the last line, without a newline
                    self.buf.clear()
                break
            if ready():
                break
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.done = True
                self.error = "timed out"
                break
            multi.select(min(_TICK_S, left))

    def start(self) -> None:
        """Until the response headers (raises ``HttpFailure`` if none come)."""
        self._run(lambda: self.headers_done)
        if not self.headers_done:
            raise HttpFailure("network", self.error or "no response")

    @property
    def status(self) -> int:
        return int(self.curl.getinfo(pycurl.RESPONSE_CODE))

    @property
    def headers(self) -> Map:
        return _parse_headers(self.header_lines)

    def pull_bytes(self) -> bytes | None:
        self._run(lambda: bool(self.lines))
        if self.lines:
            return self.lines.popleft()
        if self.tripped is not None:
            raise EffectError(self.tripped)
        if self.error is not None:  # the reference ended the stream as if complete
            raise EffectError(f"{self.op}: the transfer failed: {self.error}")
        return None

    def pull(self) -> str | None:
        raw = self.pull_bytes()
        if raw is None:
            return None
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > self.line_cap:  # the buffer allows one byte more, for a \r
            raise EffectError(f"{self.op}: a line longer than {self.line_cap} bytes; "
                              "the stream is closed")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EffectError(f"{self.op}: a line is not valid UTF-8; the stream is closed") from None
        return decode_unicode_escapes(text) if "\\u" in text else text

    def close(self) -> None:
        multi, self.multi = self.multi, None
        if multi is None:
            return
        try:
            multi.remove_handle(self.curl)
        except pycurl.error:
            pass
        self.curl.close()
        multi.close()
        self.lines.clear()
        self.buf = bytearray()


def decode_unicode_escapes(s: str) -> str:
    """The reference's ``decode_unicode_escapes``: each ``\\uXXXX`` (four hex
    digits naming a char, so not a lone surrogate) becomes that char; any
    other backslash stays as it is."""
    out: list = []
    i = 0
    n = len(s)
    while i < n:
        j = s.find("\\", i)
        if j < 0:
            out.append(s[i:])
            break
        out.append(s[i:j])
        if j + 1 < n and s[j + 1] == "u":
            hex_ = s[j + 2:j + 6]
            # Rust's chars().filter_map takes up to 4 chars, then from_str_radix
            if len(hex_) == 4 and all(c in "0123456789abcdefABCDEF" for c in hex_):
                cp = int(hex_, 16)
                if not 0xD800 <= cp <= 0xDFFF:
                    out.append(chr(cp))
                    i = j + 6
                    continue
            out.append("\\u" + hex_)
            i = j + 2 + len(hex_)
            continue
        out.append("\\")
        i = j + 1
    return "".join(out)


def open_stream(h, op: str, url: str, header_items, body: bytes, check_host: bool = True):
    """Start a streaming POST: ``(LineStream, None)`` once the headers are
    in, or ``(None, HttpFailure)``. A refused host raises ``PolicyDenied``."""
    try:
        cu = checked_url(h, url, check_host)
    except HttpFailure as f:
        if f.kind == "denied":
            raise _denied(f) from None
        return None, f
    lines: list = []
    try:
        _header_lines(header_items, "headers", lines)
    except HttpFailure as f:
        return None, f
    s = LineStream(h, op, cu, lines, body)
    try:
        s.start()
    except HttpFailure as f:
        s.close()
        return None, f
    except BaseException:
        s.close()
        raise
    return s, None


def http_stream_lines(h, args):
    url = expect_str(args, 0)
    headers = args[1] if len(args) > 1 else Map()
    body = expect_str(args, 2).encode("utf-8", "surrogatepass")
    if not isinstance(headers, dict):
        raise EffectError(f"http.stream_lines: headers must be Map[Str, Str], got {debug_repr(headers)}")
    s, failure = open_stream(h, "http.stream_lines", url, headers.items(), body)
    if failure is not None:
        return err(f"http.stream_lines: {failure.message or _curl_message(failure)}")
    return ok(streams.register(h, s))


ROWS = [
    ("http", "stream_lines", "net", http_stream_lines),
]
