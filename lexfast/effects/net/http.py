"""net.get/post and http.send/get/post: the HTTP client, on pycurl.

Shapes and messages follow the reference. Where it was weak (docs/design.md §5),
this client is stricter:

- The URL is parsed once by libcurl's own parser (``pycurl.CurlUrl``); its
  host, normalised (lower case, no brackets, no trailing dot), must equal an
  ``--allow-net-host`` entry, and that same parsed URL is what the transfer
  uses, so what is checked is what is fetched (``http://allowed@evil/``,
  ``%2e``, ``0x7f.1`` and friends resolve before the check, not after).
- Only http and https, for the request and for anything libcurl could be led
  to (``PROTOCOLS``/``REDIR_PROTOCOLS``), whatever the host list says.
- Redirects are never followed: a 3xx comes back as the response.
- Header names and values from agent code containing CR, LF or NUL are
  refused, never sent; ``Host``, ``Content-Length``, ``Transfer-Encoding``
  and ``Connection`` are the client's to set.
- Proxies come only from ``Limits.http_proxy`` (operator configuration);
  ``http_proxy``/``HTTPS_PROXY`` in the environment are ignored. TLS is always
  verified, against the system store or ``Limits.http_ca_bundle``.
- Response bodies stop at ``Limits.http_body_bytes`` (10 MiB) mid-transfer.

Speed: a LIFO pool of easy handles per session (reset after each request, so
connections, TLS sessions and DNS entries are reused), one process-wide share
for DNS and TLS sessions (never connections: libcurl does not support sharing
those across threads), signals off, the GIL released while libcurl works.
"""

from __future__ import annotations

import codecs
import os
import re
import threading
from typing import Any

import pycurl  # type: ignore[import-untyped]

from ..._version import __version__
from ...errors import EffectError, PolicyDenied
from ...kernel import COMPILED, Variant, err, expect_bytes, expect_record, expect_str, ok
from ...values import Map, debug_repr, debug_str_list
from ._common import TOKEN_CHARS

__all__ = ["HttpFailure", "request", "pool_stats", "host_denied", "ROWS"]


class HttpFailure(Exception):
    """A request that did not produce a response.

    ``kind`` is ``"timeout"``, ``"tls"``, ``"network"``, ``"url"`` (a URL
    libcurl refuses, or not http/https), ``"decode"`` (a malformed header, a
    body over the cap) or ``"denied"`` (the host is
    outside ``--allow-net-host``; ``message`` is the reference's wording).
    """

    def __init__(self, kind: str, message: str = "", host: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.host = host

    def __repr__(self) -> str:
        return f"HttpFailure({self.kind!r}, {self.message!r})"


# -- libcurl setup -------------------------------------------------------------

_USER_AGENT = f"lexfast/{__version__}"
_HTTP_PROTOCOLS = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
_CONNECT_TIMEOUT_MS = 10_000   # the reference's connect timeout
_STALL_SECONDS = 30            # the reference's 30 s body timeout, as "no progress for 30 s"

# Transfer error codes -> failure kinds (every other code is "network").
_TIMEOUT_CODES = frozenset({pycurl.E_OPERATION_TIMEDOUT})
_TLS_CODES = frozenset({35, 58, 59, 60, 77, 80, 83, 90, 91})
_URL_CODES = frozenset({1, 3})  # unsupported protocol, malformed URL
_FILESIZE_CODE = 63             # CURLE_FILESIZE_EXCEEDED (MAXFILESIZE_LARGE)
_WRITE_ERROR_CODE = pycurl.E_WRITE_ERROR

# Set by the client itself; from agent code they would smuggle a second
# request, re-route a virtual host or desynchronise the connection.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_BAD_VALUE_CHARS = ("\r", "\n", "\0")

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
_URL_ECHO = 200
_MAX_MS = (1 << 31) - 1  # CURLOPT_TIMEOUT_MS is a C long; 24 days is "no bound" enough


def _question_mark(e: UnicodeError) -> tuple[str, int]:
    return "?", getattr(e, "end", 0)


# net.get/post bodies: invalid UTF-8 becomes `?`, as the reference's reader did.
codecs.register_error("lexfast.question_mark", _question_mark)


class _Share:
    """The process-wide share (DNS cache and TLS sessions), remade in a forked child."""

    def __init__(self) -> None:
        self.pid = -1
        self.share = None
        self.lock = threading.Lock()

    def get(self):
        if self.pid == os.getpid():
            return self.share
        with self.lock:
            if self.pid != os.getpid():
                s = pycurl.CurlShare()
                s.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_DNS)
                s.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_SSL_SESSION)
                self.share = s
                self.pid = os.getpid()
        return self.share


_share = _Share()


class _HandlePool:
    """Idle easy handles of one session, most recently used last (LIFO keeps
    the warm connections in use). At most ``cap`` are kept idle."""

    __slots__ = ("idle", "lock", "cap", "pid", "in_use", "closed")

    def __init__(self, cap: int = 16) -> None:
        self.idle: list = []
        self.lock = threading.Lock()
        self.cap = cap
        self.pid = os.getpid()
        self.in_use = 0
        self.closed = False

    def acquire(self):
        with self.lock:
            if self.closed:
                raise EffectError("the handler is closed")
            if self.pid != os.getpid():
                # A forked child must not talk on its parent's sockets:
                # abandon the handles, kept referenced so that no cleanup
                # (a TLS close_notify) writes to them either.
                _abandoned.extend(self.idle)
                self.idle = []
                self.in_use = 0
                self.pid = os.getpid()
            self.in_use += 1
            if self.idle:
                return self.idle.pop()
        c = pycurl.Curl()
        c.setopt(pycurl.SHARE, _share.get())  # kept by reset(), like the connections
        return c

    def release(self, c) -> None:
        with self.lock:
            self.in_use -= 1
            if not self.closed and len(self.idle) < self.cap and self.pid == os.getpid():
                self.idle.append(c)
                return
        c.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            idle, self.idle = self.idle, []
        if self.pid == os.getpid():
            for c in idle:
                c.close()


_abandoned: list = []  # a forked child's inherited handles


def _new_pool(session) -> _HandlePool:
    pool = _HandlePool()
    session.on_close(pool.close)
    return pool


def _pool_of(session) -> _HandlePool:
    return session.state("http", _new_pool)


def pool_stats(h) -> dict:
    """``{"idle": n, "in_use": n}`` for the session of handler ``h`` (tests, monitoring)."""
    pool = h.session.state("http")
    if pool is None:
        return {"idle": 0, "in_use": 0}
    with pool.lock:
        return {"idle": len(pool.idle), "in_use": pool.in_use}


# -- URL and host check ------------------------------------------------------------

def _echo(url: str) -> str:
    return url if len(url) <= _URL_ECHO else url[:_URL_ECHO] + "…"


def _normalize(host: str) -> str:
    h = host.lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.endswith(".") and len(h) > 1:
        h = h[:-1]
    return h


_canonical_cache: dict = {}


def _canonical_entry(entry: str) -> str:
    """An ``--allow-net-host`` entry as libcurl would spell it in a URL
    (``127.1`` -> ``127.0.0.1``, ``0:0::1`` -> ``::1``), so both sides of the
    comparison come from the same parser."""
    probe = f"[{entry}]" if ":" in entry and not entry.startswith("[") else entry
    if any(c in probe for c in "/?#@\\"):
        return entry
    try:
        host = pycurl.CurlUrl(f"http://{probe}/").host
    except (pycurl.error, ValueError, UnicodeError):
        return entry
    return _normalize(host) if host else entry


def _allowed_hosts(net_hosts: frozenset) -> frozenset:
    allowed = _canonical_cache.get(net_hosts)
    if allowed is None:
        allowed = frozenset(net_hosts) | frozenset(_canonical_entry(e) for e in net_hosts)
        if len(_canonical_cache) > 64:
            _canonical_cache.clear()
        _canonical_cache[net_hosts] = allowed
    return allowed


def _parse_url(url: str):
    """The URL as libcurl parses it, or ``HttpFailure("url")``."""
    try:
        cu = pycurl.CurlUrl(url)
    except UnicodeEncodeError:
        try:
            cu = pycurl.CurlUrl(url.encode("utf-8"))
        except (pycurl.error, ValueError, UnicodeError) as e:
            raise HttpFailure("url", f"invalid URL `{_echo(url)}`: {_curl_message(e)}") from None
    except (pycurl.error, ValueError) as e:
        raise HttpFailure("url", f"invalid URL `{_echo(url)}`: {_curl_message(e)}") from None
    return cu


def _curl_message(e: BaseException) -> str:
    args: tuple = tuple(getattr(e, "args", ()))
    if len(args) >= 2 and isinstance(args[1], str):
        return args[1]
    return str(e)


def host_denied(h, host: str) -> str | None:
    """The reference's refusal for a connection to ``host`` (as parsed from
    its URL) under ``--allow-net-host``, or None when the policy allows it.
    One check for every network family (http.*, net.get/post, redis.*)."""
    hosts = h.policy.net_hosts
    if not hosts:
        return None
    # U+FFFD: libcurl's text for bytes that are not UTF-8; never a real match.
    if "\ufffd" in host or _normalize(host) not in _allowed_hosts(hosts):
        return (f"net call to host `{host}` not in --allow-net-host "
                f"{debug_str_list(h.policy.allow_net_host)}")
    return None


def checked_url(h, url: str, check_host: bool = True):
    """Parse ``url`` once and apply the policy to it: ``--allow-net-host``
    (when ``check_host``) and the http/https-only rule. Returns the parsed
    ``CurlUrl`` the transfer must use; raises ``HttpFailure``."""
    cu = _parse_url(url)
    if check_host:
        host = cu.host or ""
        denied = host_denied(h, host)
        if denied is not None:
            raise HttpFailure("denied", denied, host)
    scheme = cu.scheme
    if scheme != "http" and scheme != "https":
        raise HttpFailure("url", f"URL scheme `{scheme}` is not allowed (only http and https): "
                                    f"`{_echo(url)}`")
    return cu


# -- headers -------------------------------------------------------------------------

def _header_lines(items, field: str, out: list) -> set:
    """Append ``Name: value`` lines (bytes) for ``items`` to ``out``; return
    the lower-cased names. Raises ``HttpFailure("decode")`` naming ``field``."""
    names = set()
    for pair in items:
        try:
            name, value = pair
        except (TypeError, ValueError):
            raise HttpFailure("decode", f"{field} must be Map[Str, Str]") from None
        if not isinstance(name, str) or not isinstance(value, str):
            bad = name if not isinstance(name, str) else value
            raise HttpFailure("decode", f"{field} must be Map[Str, Str], got {debug_repr(bad)}")
        if not name or not set(name) <= TOKEN_CHARS:
            if any(c in name for c in _BAD_VALUE_CHARS):
                raise HttpFailure("decode", f"{field}: header name {debug_repr(name)} "
                                            "contains CR, LF or NUL")
            raise HttpFailure("decode", f"{field}: invalid header name {debug_repr(name)}")
        lower = name.lower()
        if lower in _RESERVED_HEADERS:
            raise HttpFailure("decode", f"{field}: header `{name}` is set by the client")
        if "\r" in value or "\n" in value or "\0" in value:
            raise HttpFailure("decode", f"{field}: value of header `{name}` "
                                        "contains CR, LF or NUL")
        # "Name:" alone would tell libcurl to drop the header; "Name;" sends it empty.
        line = f"{name}: {value}" if value else f"{name};"
        out.append(line.encode("utf-8", "surrogatepass"))
        names.add(lower)
    return names


def _header_items(headers):
    if isinstance(headers, dict):
        return headers.items()
    return headers


def _parse_headers(lines: list) -> Map:
    """Header lines as libcurl delivered them -> the final response's headers,
    names lower-cased, the last value of a repeated name winning."""
    start = 0
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(b"HTTP/"):  # after a 1xx only the last response counts
            start = i + 1
            break
    text = b"".join(lines[start:]).decode("latin-1")
    if "\n " in text or "\n\t" in text:
        text = _unfold(text)
    out = Map()
    # Split on LF only: str.splitlines would also split on \x85, \x1c... inside a value.
    for line in text.split("\n"):
        name, sep, value = line.partition(":")
        if sep:
            value = value.strip(" \t\r")
            if not (value.isascii() and value.isprintable()):
                value = _visible(value)
            out[name.strip().lower()] = value
    return out


def _unfold(text: str) -> str:
    # Obsolete line folding: a line starting with blanks continues the previous one.
    return re.sub(r"\r?\n[ \t]+", " ", text)


def _visible(v: str) -> str:
    # The reference kept only visible-ASCII values (and tabs), "" otherwise.
    if v.isascii() and v.replace("\t", " ").isprintable():
        return v
    return ""


# -- the transfer -------------------------------------------------------------------------

def _cap_text(cap: int) -> str:
    return f"{cap >> 20} MiB" if cap and cap % (1 << 20) == 0 else f"{cap} bytes"


def _perform(h, method: str, cu, header_lines: list, has_content_type: bool,
             body, timeout_ms):
    limits = h.session.limits
    cap = limits.http_body_bytes
    pool = _pool_of(h.session)
    c = pool.acquire()
    chunks: list = []
    got = [0]
    tripped = [False]

    def write(data: bytes):
        n = got[0] + len(data)
        if n > cap:
            tripped[0] = True
            return 0  # short count: libcurl stops with E_WRITE_ERROR
        got[0] = n
        chunks.append(data)
        return None

    hdr: list = []
    try:
        setopt = c.setopt
        setopt(pycurl.NOSIGNAL, 1)
        setopt(pycurl.PROTOCOLS, _HTTP_PROTOCOLS)
        setopt(pycurl.REDIR_PROTOCOLS, _HTTP_PROTOCOLS)
        setopt(pycurl.FOLLOWLOCATION, 0)
        setopt(pycurl.MAXREDIRS, 0)
        setopt(pycurl.PROXY, limits.http_proxy or "")
        setopt(pycurl.USERAGENT, _USER_AGENT)
        setopt(pycurl.CONNECTTIMEOUT_MS, _CONNECT_TIMEOUT_MS)
        setopt(pycurl.LOW_SPEED_LIMIT, 1)
        setopt(pycurl.LOW_SPEED_TIME, _STALL_SECONDS)
        setopt(pycurl.TIMEOUT_MS, timeout_ms)
        ca = limits.http_ca_bundle or _env_ca_bundle
        if ca:
            setopt(pycurl.CAINFO, ca)
        setopt(pycurl.CURLU, cu)
        setopt(pycurl.WRITEFUNCTION, write)
        setopt(pycurl.HEADERFUNCTION, hdr.append)
        if method == "GET":
            pass
        elif method == "HEAD":
            setopt(pycurl.NOBODY, 1)
        else:
            if method != "POST":
                setopt(pycurl.CUSTOMREQUEST, method)
            if body is not None or method != "DELETE":
                data = body if body is not None else b""
                setopt(pycurl.POSTFIELDSIZE_LARGE, len(data))
                setopt(pycurl.POSTFIELDS, data)
                # libcurl would add a form content-type and, past 1 MiB,
                # wait a second for a "100 Continue" most servers never send.
                if not has_content_type:
                    header_lines.append(b"Content-Type:")
                header_lines.append(b"Expect:")
        if method != "HEAD":
            # Stops a body announced (Content-Length) or streamed past the cap.
            setopt(pycurl.MAXFILESIZE_LARGE, cap)
        if header_lines:
            setopt(pycurl.HTTPHEADER, header_lines)
        try:
            c.perform()
        except pycurl.error as e:
            code = e.args[0] if e.args else -1
            msg = _curl_message(e)
            if code == _FILESIZE_CODE or (code == _WRITE_ERROR_CODE and tripped[0]):
                raise HttpFailure("decode", f"body read: response body exceeds "
                                            f"{_cap_text(cap)}") from None
            if code in _TIMEOUT_CODES:
                raise HttpFailure("timeout", msg) from None
            if code in _TLS_CODES:
                raise HttpFailure("tls", msg) from None
            if code in _URL_CODES:
                raise HttpFailure("url", f"invalid URL: {msg}") from None
            raise HttpFailure("network", msg) from None
        status = c.getinfo(pycurl.RESPONSE_CODE)
    finally:
        try:
            c.reset()  # drops the callbacks, the URL and the body now, not at the next use
        except Exception:
            c.close()
            c = None
        if c is not None:
            pool.release(c)
        else:
            with pool.lock:
                pool.in_use -= 1
    return status, _parse_headers(hdr), b"".join(chunks)


def _env_ca() -> str | None:
    # Operator configuration, read once: the environment of the process, not agent code.
    for name in ("CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        v = os.environ.get(name)
        if v:
            return v
    return None


_env_ca_bundle = _env_ca()


def _timeout_ms(h, timeout_s) -> int:
    # An explicit timeout comes from lexfast's own callers (agent.*), not agent code.
    t = h.session.limits.http_timeout_s if timeout_s is None else float(timeout_s)
    return _clamp_ms(t * 1000)


def _clamp_ms(ms) -> int:
    if not ms < _MAX_MS:  # also inf and NaN
        return _MAX_MS
    return max(1, int(ms))


def request(h, method: str, url: str, *, headers=(), body: bytes | None = None,
            timeout_s: float | None = None, check_host: bool = True) -> tuple[int, Map, bytes]:
    """One HTTP(S) request through the session's pooled client.

    ``headers``: (name, value) pairs or a mapping. ``check_host`` applies
    ``--allow-net-host`` to the host libcurl parses from ``url`` (and then
    uses), raising ``HttpFailure("denied", msg)`` outside it. Returns
    ``(status, headers, body)``, header names lower-cased. Never follows
    redirects. Raises ``HttpFailure`` for everything that is not a response.
    """
    m = method.upper()
    if m not in _METHODS:
        raise HttpFailure("decode", f"unsupported method: {method}")
    cu = checked_url(h, url, check_host)
    lines: list = []
    names = _header_lines(_header_items(headers), "headers", lines)
    if body is not None and not isinstance(body, bytes):
        body = bytes(body)
    if m in ("GET", "HEAD"):
        body = None
    return _perform(h, m, cu, lines, "content-type" in names, body, _timeout_ms(h, timeout_s))


# -- effects ---------------------------------------------------------------------------------------

def _denied(f: HttpFailure) -> PolicyDenied:
    return PolicyDenied(f.message, effect="net", host=f.host)


def _http_error(f: HttpFailure):
    if f.kind == "timeout":
        return err(Variant("TimeoutError", ()))
    # A URL libcurl refuses ("url") is a NetworkError carrying the reason, as
    # the reference's ureq answers one.
    name = {"tls": "TlsError", "decode": "DecodeError", "denied": "DecodeError"}.get(
        f.kind, "NetworkError")
    return err(Variant(name, (f.message,)))


def _response(status: int, headers: Map, body: bytes):
    return ok({"status": status, "headers": headers, "body": body})


def _net_call(h, method: str, url: str, body):
    try:
        cu = checked_url(h, url)
    except HttpFailure as f:
        if f.kind == "denied":
            raise _denied(f) from None
        return err(f"transport: {f.message}")
    try:
        status, _, data = _perform(h, method, cu, [], False, body, _timeout_ms(h, None))
    except HttpFailure as f:
        return err(f"transport: {f.message or 'timed out'}")
    text = data.decode("utf-8", "lexfast.question_mark")
    if 200 <= status < 300:
        return ok(text)
    return err(f"status {status}: {text}")


def net_get(h, args):
    return _net_call(h, "GET", expect_str(args, 0), None)


def net_post(h, args):
    url = expect_str(args, 0)
    body = expect_str(args, 1).encode("utf-8", "surrogatepass")
    return _net_call(h, "POST", url, body)


def _simple(h, method: str, url: str, body, content_type: str):
    try:
        cu = checked_url(h, url)
    except HttpFailure as f:
        if f.kind == "denied":
            raise _denied(f) from None
        return _http_error(f)
    lines: list = []
    try:
        if content_type:
            _header_lines((("content-type", content_type),), "content_type", lines)
        status, headers, data = _perform(h, method, cu, lines, bool(content_type), body,
                                         _timeout_ms(h, None))
    except HttpFailure as f:
        return _http_error(f)
    return _response(status, headers, data)


def http_get(h, args):
    return _simple(h, "GET", expect_str(args, 0), None, "")


def http_post(h, args):
    url = expect_str(args, 0)
    body = expect_bytes(args, 1)
    content_type = expect_str(args, 2)
    return _simple(h, "POST", url, body, content_type)


def _decode_error(msg: str):
    return err(Variant("DecodeError", (msg,)))


def _option_field(req: dict, field: str):
    """``(present, payload)`` of an Option field, or raises ``ValueError``."""
    v: Any = req.get(field)
    if isinstance(v, Variant):
        name, payload = v.name, tuple(v.args)
        if name == "None" and not payload:
            return False, None
        if name == "Some" and len(payload) == 1:
            return True, payload[0]
    raise ValueError


def http_send(h, args):
    req = expect_record(args, 0)
    method = req.get("method")
    if not isinstance(method, str):
        return _decode_error("HttpRequest.method must be Str")
    url = req.get("url")
    if not isinstance(url, str):
        return _decode_error("HttpRequest.url must be Str")
    try:
        cu = checked_url(h, url)
    except HttpFailure as f:
        return _http_error(f)
    try:
        present, body = _option_field(req, "body")
    except ValueError:
        return _decode_error("HttpRequest.body must be Option[Bytes]")
    if present:
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        elif not isinstance(body, bytes):
            return _decode_error("HttpRequest.body Some payload must be Bytes")
    try:
        present, timeout_ms = _option_field(req, "timeout_ms")
    except ValueError:
        return _decode_error("HttpRequest.timeout_ms must be Option[Int]")
    if present and (not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool)
                    or timeout_ms < 0):
        return _decode_error("HttpRequest.timeout_ms Some payload must be a non-negative Int")
    headers = req.get("headers")
    if not isinstance(headers, Map):
        return _decode_error("HttpRequest.headers must be Map[Str, Str]")
    m = method.upper()
    if m not in _METHODS:
        return _decode_error(f"unsupported method: {method}")
    lines: list = []
    try:
        names = _header_lines(headers.items(), "HttpRequest.headers", lines)
        # Agent code may shorten the whole-request bound, never lengthen it.
        limit_ms = _clamp_ms(h.session.limits.http_timeout_s * 1000)
        t = limit_ms if timeout_ms is None else max(1, min(timeout_ms, limit_ms))
        status, rh, data = _perform(h, m, cu, lines, "content-type" in names,
                                    body if m not in ("GET", "HEAD") else None, t)
    except HttpFailure as f:
        return _http_error(f)
    return _response(status, rh, data)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


#: whether response headers are parsed by the compiled parser
#: (``lexfast.effects.net._http_c``: the common case in C, the rest here)
HTTP_COMPILED = False
_py_parse_headers = _parse_headers  # the twin, whichever serves (tests compare the two)
if COMPILED and not _flag("LEXFAST_NO_EXTENSIONS"):
    try:
        from . import _http_c
    except ImportError:  # built without it: the Python parser serves
        if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
            raise
    else:
        _http_c.bind(_parse_headers)
        _parse_headers = _http_c.parse_headers  # noqa: F811 -- the compiled twin
        HTTP_COMPILED = True


ROWS = [
    ("net", "get", "net", net_get),
    ("net", "post", "net", net_post),
    ("http", "send", "net", http_send),
    ("http", "get", "net", http_get),
    ("http", "post", "net", http_post),
]
