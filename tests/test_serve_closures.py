"""net.serve_fn / serve_routed / serve_*with / default_opts, streamed bodies
and TLS values: real servers on 127.0.0.1, real clients (requests, raw
sockets, ssl), a tiny "VM" whose closures are Python functions.

Restates the reference's net_serve (routed), net_serve_with and
net_streaming cases at handler level. Every server is shut down and its
thread joined with a timeout.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import ssl
import threading
import time

import pytest
import requests

from lexfast import EffectError, Map, PolicyDenied, Variant
from lexfast.effects.net.serve import wait_listening
from lexfast.handler import Limits

T = 10  # seconds: every client call and join is bounded by this


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
    """A VM's closure value: opaque to the handler."""

    def __init__(self, fn):
        self.fn = fn


def vm_invoke(closure, handler, args):
    return closure.fn(handler, *args)


def fn(f):
    return Closure(f)


def made(make_handler, effects=("net",), **kw):
    kw.setdefault("invoke", vm_invoke)
    return make_handler(effects=list(effects), **kw)


@contextlib.contextmanager
def serving(h, op, args, scheme="http"):
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = h.dispatch("net", op, args)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            outcome["error"] = e

    t = threading.Thread(target=run, name=f"test {op}", daemon=True)
    t.start()
    try:
        port = wait_listening(h, scheme, T)
        yield port
    finally:
        h.shutdown()
        t.join(T)
        assert not t.is_alive(), "the server did not stop"
    if "error" in outcome:
        raise outcome["error"]
    assert outcome["value"] is None


def url(port, path="/", scheme="http"):
    return f"{scheme}://127.0.0.1:{port}{path}"


def raw_get(port, path="/", method="GET", version="1.1", timeout=T) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"{method} {path} HTTP/{version}\r\nHost: 127.0.0.1\r\n"
                  "Connection: close\r\n\r\n".encode())
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def decode_chunked(raw: bytes) -> tuple[bytes, list[bytes], bool]:
    """(payload, chunks, terminated) of a chunked body."""
    chunks, i = [], 0
    while i < len(raw):
        end = raw.find(b"\r\n", i)
        if end < 0:
            return b"".join(chunks), chunks, False
        size = int(raw[i:end].split(b";")[0], 16)
        i = end + 2
        if size == 0:
            return b"".join(chunks), chunks, raw[i:i + 2] == b"\r\n"
        chunks.append(raw[i:i + size])
        i += size + 2
    return b"".join(chunks), chunks, False


def split(resp: bytes) -> tuple[str, str, bytes]:
    head, _, body = resp.partition(b"\r\n\r\n")
    status, _, headers = head.decode("latin-1").partition("\r\n")
    return status, headers.lower(), body


# -- net.serve_fn ----------------------------------------------------------------

def test_serve_fn_calls_the_closure_with_the_request(make_handler):
    seen = []

    def handle(h, req):
        seen.append((h, req))
        return {"status": 201, "body": f"{req['method']} {req['path']}?{req['query']}",
                "headers": Map({"x-from": "closure"})}

    h = made(make_handler)
    with serving(h, "serve_fn", [0, fn(handle)]) as port:
        r = requests.post(url(port, "/a/b?x=1"), data="hi", timeout=T)
        assert (r.status_code, r.text, r.headers["x-from"]) == (201, "POST /a/b?x=1", "closure")
    fork, req = seen[0]
    assert fork is not h and fork.session is h.session
    assert req["body"] == "hi" and req["path_params"] == Map()
    assert isinstance(req["headers"], Map) and req["headers"]["content-length"] == "2"


def test_serve_fn_errors_are_500_and_the_server_keeps_serving(make_handler):
    def handle(h, req):
        if req["path"] == "/raise":
            raise RuntimeError("boom")
        if req["path"] == "/exit":
            raise SystemExit(3)
        if req["path"] == "/nonrecord":
            return "just a string"
        return {"body": "fine"}

    h = made(make_handler)
    with serving(h, "serve_fn", [0, fn(handle)]) as port:
        r = requests.get(url(port, "/raise"), timeout=T)
        assert r.status_code == 500 and "internal error: RuntimeError: boom" in r.text
        assert requests.get(url(port, "/exit"), timeout=T).status_code == 500
        r = requests.get(url(port, "/nonrecord"), timeout=T)
        assert r.status_code == 500 and "handler returned non-record" in r.text
        r = requests.get(url(port, "/"), timeout=T)
        assert (r.status_code, r.text) == (200, "fine")


def test_serve_fn_argument_errors(make_handler):
    h = made(make_handler)
    with pytest.raises(EffectError, match=r"net\.serve_fn\(port, handler\): port must be Int"):
        h.dispatch("net", "serve_fn", [70000, fn(lambda h, r: {})])
    for bad in ("handle", None, 3, {"a": 1}, Variant("Some", (1,))):
        with pytest.raises(EffectError, match=r"handler must be a closure"):
            h.dispatch("net", "serve_fn", [0, bad])
    no_hook = make_handler(effects=["net"])
    with pytest.raises(EffectError, match=r"net\.serve_fn: .*DefaultHandler\(invoke=\.\.\.\)"):
        no_hook.dispatch("net", "serve_fn", [0, fn(lambda h, r: {})])
    denied = make_handler(effects=[], invoke=vm_invoke)
    with pytest.raises(PolicyDenied):
        denied.dispatch("net", "serve_fn", [0, fn(lambda h, r: {})])


# -- net.serve_routed (the reference's net_serve routed cases) ----------------------

def _routed_program():
    def user(h, req):
        return {"status": 200, "body": f"user {req['path_params']['id']}"}

    def post(h, req):
        p = req["path_params"]
        return {"status": 200, "body": f"post {p['uid']}/{p['pid']}"}

    def create(h, req):
        return {"status": 201, "body": "created " + req["body"]}

    def any_method(h, req):
        return {"status": 200, "body": f"any {req['method']}"}

    def fallback(h, req):
        return {"status": 404, "body": f"no route for {req['method']} {req['path']} "
                f"{dict(req['path_params'])}"}

    routes = [("GET", "/users/:id", fn(user)),
              ("get", "/users/:uid/posts/:pid", fn(post)),
              ("POST", "/users", fn(create)),
              ("*", "/any", fn(any_method)),
              ("GET", "/", fn(lambda h, r: {"body": "root"}))]
    return routes, fn(fallback)


def test_serve_routed_dispatches_by_method_and_pattern(make_handler):
    routes, fallback = _routed_program()
    h = made(make_handler)
    with serving(h, "serve_routed", [0, routes, fallback]) as port:
        def get(path, method="GET", data=None):
            r = requests.request(method, url(port, path), data=data, timeout=T)
            return r.status_code, r.text

        assert get("/users/42") == (200, "user 42")
        assert get("/users/7/posts/99?x=1") == (200, "post 7/99")
        assert get("/users", "POST", "bob") == (201, "created bob")
        assert get("/any", "DELETE") == (200, "any DELETE")
        assert get("/any", "PUT") == (200, "any PUT")
        assert get("/") == (200, "root")
        # strict segment count: a trailing slash is another path
        assert get("/users/42/") == (404, "no route for GET /users/42/ {}")
        assert get("/users/42", "DELETE") == (404, "no route for DELETE /users/42 {}")
        assert get("/nope") == (404, "no route for GET /nope {}")


def test_serve_routed_refuses_bad_routes_before_binding(make_handler):
    h = made(make_handler)
    ok_fn = fn(lambda h, r: {})
    cases = [
        ("not a list", r"routes must be a List"),
        ([("GET", "/x")], r"route #0 must be a \(method, pattern, handler\) 3-tuple"),
        ([["GET", "/x", ok_fn]], r"route #0 must be a \(method, pattern, handler\) 3-tuple"),
        ([("GET", "/x", ok_fn), (1, "/x", ok_fn)], r"route #1 method must be Str"),
        ([("GET", 5, ok_fn)], r"route #0 path-pattern must be Str"),
        ([("GET", "", ok_fn)], r"path pattern must be non-empty"),
        ([("GET", "x/y", ok_fn)], r"must start with '/'"),
        ([("GET", "/a/:", ok_fn)], r"must have a name"),
        ([("GET", "/a", "named")], r"route #0 handler must be a closure"),
    ]
    for routes, match in cases:
        with pytest.raises(EffectError, match=r"net\.serve_routed: .*" + match):
            h.dispatch("net", "serve_routed", [0, routes, ok_fn])
    with pytest.raises(EffectError, match=r"fallback must be a closure"):
        h.dispatch("net", "serve_routed", [0, [], "fallback"])
    with pytest.raises(EffectError, match=r"missing routes"):
        h.dispatch("net", "serve_routed", [0])


# -- ServeOpts (the reference's net_serve_with) -------------------------------------

def test_default_opts_is_pure_and_loopback(make_handler):
    h = make_handler(effects=[])
    assert h.dispatch("net", "default_opts", []) == {"http2": False, "inline_vm": False,
                                                     "host": "127.0.0.1"}


def test_serve_with_by_name_and_fn_with_and_routed_with(make_handler):
    def runner(program, handler, name, args):
        return program[name](handler, *args)

    program = {"handle": lambda h, req: {"status": 200, "body": "via opts: " + req["path"]}}
    h = made(make_handler, program=program, runner=runner)
    opts = h.dispatch("net", "default_opts", [])
    with serving(h, "serve_with", [0, "handle", opts]) as port:
        r = requests.get(url(port, "/hello"), timeout=T)
        assert (r.status_code, r.text) == (200, "via opts: /hello")

    h = made(make_handler)
    with serving(h, "serve_fn_with", [0, fn(lambda h, r: {"body": "fn " + r["path"]}), opts]) \
            as port:
        assert requests.get(url(port, "/x"), timeout=T).text == "fn /x"

    h = made(make_handler)
    routes = [("GET", "/u/:id", fn(lambda h, r: {"body": "u" + r["path_params"]["id"]}))]
    fb = fn(lambda h, r: {"status": 404, "body": "fallback"})
    with serving(h, "serve_routed_with", [0, routes, fb, opts]) as port:
        assert requests.get(url(port, "/u/5"), timeout=T).text == "u5"
        r = requests.get(url(port, "/zzz"), timeout=T)
        assert (r.status_code, r.text) == (404, "fallback")


def test_http2_is_noted_and_served_as_http1(make_handler, capfd):
    h = made(make_handler)
    opts = {"http2": True, "inline_vm": True, "host": "127.0.0.1"}
    with serving(h, "serve_fn_with", [0, fn(lambda h, r: {"body": "one"}), opts]) as port:
        assert requests.get(url(port), timeout=T).text == "one"
    err = capfd.readouterr().err
    assert "net.serve_fn_with: http2 requested: this server speaks HTTP/1.1 only" in err
    assert f"net.serve_fn_with: listening on http://127.0.0.1:{port}" in err


def test_bad_opts_are_clear_errors(make_handler):
    h = made(make_handler)
    f = fn(lambda h, r: {})
    good = {"http2": False, "inline_vm": False, "host": "127.0.0.1"}
    cases = [
        ("nope", r"opts must be a Record"),
        ({**good, "http2": 1}, r"opts\.http2 must be Bool"),
        ({"http2": False, "host": "127.0.0.1"}, r"opts\.inline_vm must be Bool"),
        ({**good, "host": 1}, r"opts\.host must be Str"),
        ({**good, "host": "localhost"}, r"opts\.host must be an IP address"),
        ({**good, "port": 1}, r"opts has an unknown field `port`"),
        ({**good, "tls": "cert.pem"}, r"opts\.tls: expected a TlsConfig"),
    ]
    for opts, match in cases:
        with pytest.raises(EffectError, match=r"net\.serve_fn_with: " + match):
            h.dispatch("net", "serve_fn_with", [0, f, opts])
    with pytest.raises(EffectError, match=r"missing opts"):
        h.dispatch("net", "serve_fn_with", [0, f])


def test_a_wider_host_needs_allow_net_host(make_handler):
    opts = {"http2": False, "inline_vm": False, "host": "0.0.0.0"}
    f = fn(lambda h, r: {"body": "wide"})
    for hosts in ((), ("example.com",)):  # an empty list does not widen a listener
        h = made(make_handler, hosts=hosts)
        with pytest.raises(PolicyDenied, match=r"listening on `0\.0\.0\.0` needs it in "
                                               r"--allow-net-host") as e:
            h.dispatch("net", "serve_fn_with", [0, f, opts])
        assert e.value.host == "0.0.0.0"
    h = made(make_handler, hosts=("0.0.0.0",))
    with serving(h, "serve_fn_with", [0, f, opts]) as port:
        assert requests.get(url(port), timeout=T).text == "wide"
    # loopback literals are always allowed
    h = made(make_handler)
    with serving(h, "serve_fn_with", [0, f, {**opts, "host": "127.0.0.2"}]) as port:
        r = requests.get(f"http://127.0.0.2:{port}/", timeout=T)
        assert r.text == "wide"


# -- streamed bodies (the reference's net_streaming) --------------------------------

def iter_eager(items, idx=0):
    return Variant("__IterEager", (list(items), idx))


def iter_unfold(seed, step):
    return Variant("__IterLazy", (seed, fn(step)))


def test_body_stream_is_chunked_one_chunk_per_item(make_handler):
    def handle(h, req):
        return {"status": 200, "body": Variant("BodyStream", (iter_eager(
            ["skipped", "alpha\n", "beta\n", "gamma\n"], 1),)),
            "headers": Map({"content-type": "text/event-stream"})}

    h = made(make_handler)
    with serving(h, "serve_fn", [0, fn(handle)]) as port:
        status, headers, raw = split(raw_get(port, "/sse"))
        assert status.startswith("HTTP/1.1 200")
        assert "transfer-encoding: chunked" in headers and "content-length" not in headers
        assert "content-type: text/event-stream" in headers
        payload, chunks, done = decode_chunked(raw)
        assert (payload, chunks, done) == (b"alpha\nbeta\ngamma\n",
                                           [b"alpha\n", b"beta\n", b"gamma\n"], True)
        r = requests.get(url(port, "/sse"), timeout=T)  # a real client decodes it
        assert r.text == "alpha\nbeta\ngamma\n"


def test_body_bytes_from_lists_of_ints_and_bytes(make_handler):
    def handle(h, req):
        return {"body": Variant("BodyBytes", (iter_eager([[1, 2, 3], [4, 5], b"\x06\x07"]),)),
                "headers": Map({"content-type": "application/octet-stream"})}

    h = made(make_handler)
    with serving(h, "serve_fn", [0, fn(handle)]) as port:
        status, headers, raw = split(raw_get(port, "/blob"))
        assert "transfer-encoding: chunked" in headers
        assert decode_chunked(raw)[0] == bytes([1, 2, 3, 4, 5, 6, 7])


def test_body_stream_unfold_is_pulled_lazily(make_handler):
    def step(h, i):
        if i >= 3:
            return Variant("None", ())
        return Variant("Some", (("hello\n", i + 1),))

    h = made(make_handler)
    handle = fn(lambda h, req: {"body": Variant("BodyStream", (iter_unfold(0, step),))})
    with serving(h, "serve_fn", [0, handle]) as port:
        payload, chunks, done = decode_chunked(split(raw_get(port, "/"))[2])
        assert payload == b"hello\nhello\nhello\n" and len(chunks) == 3 and done
        # HTTP/1.0: no chunked coding, the body ends at the close
        status, headers, body = split(raw_get(port, "/", version="1.0"))
        assert "transfer-encoding" not in headers and body == b"hello\nhello\nhello\n"
        # HEAD: the head only, nothing pulled
        status, headers, body = split(raw_get(port, "/", method="HEAD"))
        assert status.startswith("HTTP/1.1 200") and body == b""


def test_body_stream_on_net_serve_by_name_and_bodystr(make_handler):
    def runner(program, handler, name, args):
        return program[name](handler, *args)

    program = {"s": lambda h, r: {"body": Variant("BodyStream", (["a", "b"],))},
               "t": lambda h, r: {"body": Variant("BodyStr", ("plain",))}}
    h = made(make_handler, program=program, runner=runner)
    with serving(h, "serve", [0, "s"]) as port:
        assert decode_chunked(split(raw_get(port))[2])[1] == [b"a", b"b"]
    h = made(make_handler, program=program, runner=runner)
    with serving(h, "serve", [0, "t"]) as port:
        status, headers, body = split(raw_get(port))
        assert body == b"plain" and "content-length: 5" in headers


def test_bad_stream_items(make_handler):
    def handle(h, req):
        if req["path"] == "/first":  # nothing sent yet: a 500
            return {"body": Variant("BodyStream", ([1, "x"],))}
        if req["path"] == "/notiter":
            return {"body": Variant("BodyStream", (42,))}
        if req["path"] == "/range":
            return {"body": Variant("BodyBytes", ([[1], [256]],))}
        return {"body": Variant("BodyStream", (["ok", 5],))}

    h = made(make_handler)
    with serving(h, "serve_fn", [0, fn(handle)]) as port:
        status, _, body = split(raw_get(port, "/first"))
        assert status.startswith("HTTP/1.1 500") and b"BodyStream items must be Str" in body
        status, _, body = split(raw_get(port, "/notiter"))
        assert status.startswith("HTTP/1.1 500") and b"BodyStream needs an iterator" in body
        # mid-body: the answer is cut short (no last chunk), never a clean end
        status, _, raw = split(raw_get(port, "/later"))
        payload, _, done = decode_chunked(raw)
        assert status.startswith("HTTP/1.1 200") and payload == b"ok" and not done
        payload, _, done = decode_chunked(split(raw_get(port, "/range"))[2])
        assert payload == b"\x01" and not done
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(url(port, "/later"), timeout=T).content  # noqa: B018


def test_an_endless_stream_stops_when_the_client_leaves(make_handler):
    pulled = []
    first = threading.Event()

    def step(h, i):
        pulled.append(i)
        first.set()
        return Variant("Some", (("tick\n" * 100, i + 1),))

    h = made(make_handler)
    handle = fn(lambda h, req: {"body": Variant("BodyStream", (iter_unfold(0, step),))})
    with serving(h, "serve_fn", [0, handle]) as port:
        s = socket.create_connection(("127.0.0.1", port), timeout=T)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 200")
        assert first.wait(T)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # a reset
        deadline = time.monotonic() + T
        while True:  # the worker stops pulling
            n = len(pulled)
            time.sleep(0.3)
            if len(pulled) == n or time.monotonic() > deadline:
                break
        assert len(pulled) == n, "the stream kept being pulled after the client left"
        assert requests.get(url(port, "/"), stream=True, timeout=T).status_code == 200


def test_a_client_that_does_not_read_is_dropped_after_the_idle_timeout(make_handler):
    pulled = []

    def step(h, i):
        pulled.append(i)
        return Variant("Some", (("x" * 65536, i + 1),))

    h = made(make_handler, limits=Limits(serve_idle_s=0.5))
    handle = fn(lambda h, req: {"body": Variant("BodyStream", (iter_unfold(0, step),))})
    with serving(h, "serve_fn", [0, handle]) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.monotonic() + T
            while True:  # memory stays bounded: pulling stops, then the conn is cut
                n = len(pulled)
                time.sleep(1.0)
                if len(pulled) == n or time.monotonic() > deadline:
                    break
            assert len(pulled) == n and n < 200


# -- TLS values ------------------------------------------------------------------

def _unverified():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def https_get(port, path="/"):
    with socket.create_connection(("127.0.0.1", port), timeout=T) as raw:
        with _unverified().wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            out = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out.append(b)
            cert = s.getpeercert(binary_form=True)
    return b"".join(out), cert


def test_self_signed_serves_https(make_handler):
    from cryptography import x509
    h = made(make_handler)
    tls = h.dispatch("tls", "self_signed", ["localhost"])
    assert tls.name == "Ok"
    value = tls.args[0]
    assert value.name == "__TlsConfig" and "PRIVATE" not in repr(value)
    opts = {**h.dispatch("net", "default_opts", []), "tls": value}

    def handle(h, r):
        if r["path"] == "/stream":
            return {"body": Variant("BodyStream", (["se", "cure"],))}
        return {"body": "secure"}

    with serving(h, "serve_fn_with", [0, fn(handle), opts], scheme="https") as port:
        resp, der = https_get(port)
        assert resp.endswith(b"secure")
        resp, _ = https_get(port, "/stream")
        assert decode_chunked(split(resp)[2])[1:] == ([b"se", b"cure"], True)
        cert = x509.load_der_x509_certificate(der)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert h.dispatch("tls", "self_signed", [""]).name == "Err"
    assert h.dispatch("tls", "self_signed", ["a b"]).name == "Err"
    with pytest.raises(EffectError, match=r"hostname must be Str"):
        h.dispatch("tls", "self_signed", [5])
    # a handle of another session, or a forged one, is refused
    other = made(make_handler)
    with pytest.raises(EffectError, match=r"unknown TlsConfig"):
        other.dispatch("net", "serve_fn_with", [0, fn(lambda h, r: {}), opts])
    forged = {**opts, "tls": Variant("__TlsConfig", ("tls_999999999",))}
    with pytest.raises(EffectError, match=r"unknown TlsConfig"):
        h.dispatch("net", "serve_fn_with", [0, fn(lambda h, r: {}), forged])


def _pem_pair(tmp_path):
    from lexfast.effects.net.tls import _self_signed_pem
    cert, key = _self_signed_pem("127.0.0.1")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


def test_from_pem_files_reads_inside_the_scope(make_handler, tmp_path):
    cert, key = _pem_pair(tmp_path)
    h = made(make_handler, effects=("net", "fs_read"), fs_read=[tmp_path])
    r = h.dispatch("tls", "from_pem_files", [cert, key])
    assert r.name == "Ok", r
    opts = {**h.dispatch("net", "default_opts", []), "tls": r.args[0]}
    with serving(h, "serve_routed_with", [0, [], fn(lambda h, r: {"body": "tls!"}), opts],
                 scheme="https") as port:
        assert https_get(port)[0].endswith(b"tls!")
    (tmp_path / "bad.pem").write_text("not a pem")
    out = tmp_path.parent / "outside.pem"
    out.write_text("x")
    try:
        for args, match in (([cert, str(out)], "outside --allow-fs-read"),
                            ([cert, str(tmp_path / "missing.pem")], "read key"),
                            ([cert, str(tmp_path / "bad.pem")], "invalid certificate or key"),
                            ([str(tmp_path), key], "read cert")):
            r = h.dispatch("tls", "from_pem_files", args)
            assert r.name == "Err" and match in r.args[0] and "tls.from_pem_files" in r.args[0]
    finally:
        out.unlink()
    with pytest.raises(EffectError, match=r"cert path must be Str"):
        h.dispatch("tls", "from_pem_files", [1, key])
    with pytest.raises(PolicyDenied):  # gated on fs_read, as in the reference
        made(make_handler).dispatch("tls", "from_pem_files", [cert, key])


def test_tls_keys_never_reach_a_trace(make_handler, tmp_path):
    trace = io.StringIO()
    cert, key = _pem_pair(tmp_path)
    h = made(make_handler, effects=("net", "fs_read"), fs_read=[tmp_path], record=trace)
    a = h.dispatch("tls", "from_pem_files", [cert, key])
    b = h.dispatch("tls", "self_signed", ["localhost"])
    h.flush_record()
    text = trace.getvalue()
    assert "PRIVATE KEY" not in text and "BEGIN" not in text
    steps = [json.loads(line) for line in text.splitlines()[1:]]
    assert [s["value"]["$variant"] for s in steps] == ["Ok", "Ok"]
    assert "PRIVATE" not in repr(a) + repr(b)


def test_a_closure_server_records_and_replays(make_handler):
    trace = io.StringIO()
    h = made(make_handler, record=trace)
    with serving(h, "serve_fn", [0, fn(lambda h, r: {"body": "live"})]) as port:
        assert requests.get(url(port), timeout=T).text == "live"
    h.flush_record()
    step = json.loads(trace.getvalue().splitlines()[1])
    assert (step["op"], step["args"], step["value"]) == ("serve_fn", [0, {"$closure": "<Closure>"}],
                                                          None)
    # replay opens no socket: the serve call answers its recorded Unit
    r = made(make_handler, replay=io.StringIO(trace.getvalue()))
    assert r.dispatch("net", "serve_fn", [0, fn(lambda h, r: {"body": "never"})]) is None
