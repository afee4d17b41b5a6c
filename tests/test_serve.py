"""net.serve / net.serve_tls: real servers on 127.0.0.1, real clients
(requests, raw sockets, ssl), a small runner standing in for the VM.

Every test stops its server (``shutdown``) and joins the serving thread with
a timeout, so nothing outlives the test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings

import pytest
import requests

import lexfast
from lexfast import EffectError, Map, PolicyDenied
from lexfast.effects.net.serve import listening, wait_listening
from lexfast.handler import Limits

T = 10  # seconds: every client call and join is bounded by this



@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Every server thread (acceptor, workers, writers) is gone after a test."""
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

def runner(program, handler, name, args):
    """The reference runner: ``program`` maps a handler name to a Python
    function ``(handler, *args)``; a missing name is the VM's error."""
    fn = program.get(name)
    if fn is None:
        raise EffectError(f"unknown function `{name}`")
    return fn(handler, *args)


def echo(h, req):
    return {"status": 200, "body": f"{req['method']} {req['path']}"}


def made(make_handler, program, effects=("net",), **kw):
    return make_handler(effects=list(effects), program=program, runner=runner, **kw)


@contextlib.contextmanager
def serving(h, op="serve", args=None, scheme="http"):
    """Run ``net.<op>`` on a thread; yield ``(port, outcome)``; shut it down
    and join it on the way out (``outcome`` gets ``value`` or ``error``)."""
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
        yield port, outcome
    finally:
        h.shutdown()
        t.join(T)
        assert not t.is_alive(), "the server did not stop"
    if "error" in outcome:
        raise outcome["error"]
    assert outcome["value"] is None


def url(port, path="/", scheme="http"):
    return f"{scheme}://127.0.0.1:{port}{path}"


def raw_exchange(port, data: bytes, timeout=T) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except TimeoutError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


# -- the reference's cases ---------------------------------------------------------

def test_get_and_post_reach_the_handler(make_handler, capfd):
    seen = []

    def handle(h, req):
        seen.append(req)
        if req["method"] == "POST":
            return {"status": 201, "body": "got: " + req["body"]}
        return echo(h, req)

    h = made(make_handler, {"handle": handle})
    with serving(h, args=[0, "handle"]) as (port, _):
        r = requests.get(url(port, "/hello?a=1&b=%20x"), headers={"X-Test": "yes"}, timeout=T)
        assert (r.status_code, r.text) == (200, "GET /hello")
        assert r.headers["content-type"].startswith("text/plain")
        r = requests.post(url(port, "/widgets"), data="hello-payload", timeout=T)
        assert (r.status_code, r.text) == (201, "got: hello-payload")
    get = seen[0]
    # the reference's build_request_value: path_params on every server's request
    assert list(get) == ["method", "path", "query", "body", "headers", "path_params"]
    assert get["path_params"] == Map()
    assert get["path"] == "/hello" and get["query"] == "a=1&b=%20x" and get["body"] == ""
    assert isinstance(get["headers"], Map)
    assert get["headers"]["x-test"] == "yes" and get["headers"]["host"] == f"127.0.0.1:{port}"
    err = capfd.readouterr().err
    assert f"net.serve: listening on http://127.0.0.1:{port}" in err


def test_requests_get_forks_sharing_the_session(make_handler):
    forks = []

    def handle(h, req):
        forks.append(h)
        return {"status": 200, "body": "ok"}

    h = made(make_handler, {"handle": handle})
    with serving(h, args=[0, "handle"]) as (port, _):
        for _ in range(3):
            assert requests.get(url(port), timeout=T).status_code == 200
        assert listening(h) == [("http", port)]
    assert listening(h) == []
    assert len({id(f) for f in forks}) == 3 and h not in forks
    assert all(f.session is h.session and f.policy is h.policy for f in forks)


def test_argument_errors(make_handler):
    h = made(make_handler, {"h": echo})
    for bad in (70000, -1, "80", True, 1.5, None):
        with pytest.raises(EffectError, match=r"^net\.serve\(port, handler\): port must be Int 0\.\.=65535$"):
            h.dispatch("net", "serve", [bad, "h"])
    with pytest.raises(EffectError, match=r"^net\.serve_tls\(port, cert, key, handler\): port must"):
        h.dispatch("net", "serve_tls", [70000, "c", "k", "h"])
    with pytest.raises(EffectError, match="expected Str arg, got Int"):
        h.dispatch("net", "serve", [0, 5])
    with pytest.raises(EffectError, match="missing argument"):
        h.dispatch("net", "serve", [0])

    bare = make_handler(effects=["net"])
    with pytest.raises(EffectError, match=r"^net\.serve requires a Program reference; use DefaultHandler::with_program$"):
        bare.dispatch("net", "serve", [0, "h"])
    with pytest.raises(EffectError, match=r"^net\.serve_tls requires a Program reference$"):
        bare.dispatch("net", "serve_tls", [0, "c", "k", "h"])
    no_runner = make_handler(effects=["net"], program={"h": echo})
    with pytest.raises(EffectError, match="requires a Program reference and a runner"):
        no_runner.dispatch("net", "serve", [0, "h"])

    ungated = make_handler(effects=["io"], program={"h": echo}, runner=runner)
    with pytest.raises(PolicyDenied, match="effect `net` not in --allow-effects"):
        ungated.dispatch("net", "serve", [0, "h"])


def test_bind_failure_is_the_references_error(make_handler):
    h = made(make_handler, {"h": echo})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(EffectError, match=rf"^net\.serve bind {port}: Address already in use \(os error 98\)$"):
            h.dispatch("net", "serve", [port, "h"])
    assert not h.is_shutdown


# -- responses and failures ---------------------------------------------------------

def test_failures_are_500_and_the_server_keeps_serving(make_handler):
    def boom_effect(h, req):
        raise EffectError("boom")

    def boom_python(h, req):
        raise ValueError("bad value")

    program = {"ok": echo, "int": lambda h, r: 42, "map": lambda h, r: Map({"status": 200}),
               "effect": boom_effect, "python": boom_python}

    def route(h, req):
        return program[req["path"].strip("/")](h, req)

    h = made(make_handler, {"route": route})
    with serving(h, args=[0, "route"]) as (port, _):
        s = requests.Session()
        r = s.get(url(port, "/int"), timeout=T)
        assert (r.status_code, r.text) == (500, "handler returned non-record: Int(42)")
        r = s.get(url(port, "/map"), timeout=T)
        assert r.status_code == 500 and r.text.startswith("handler returned non-record: Map(")
        r = s.get(url(port, "/effect"), timeout=T)
        assert (r.status_code, r.text) == (500, "internal error: boom")
        r = s.get(url(port, "/python"), timeout=T)
        assert (r.status_code, r.text) == (500, "internal error: ValueError: bad value")
        r = s.get(url(port, "/missing"), timeout=T)
        assert (r.status_code, r.text) == (500, "internal error: KeyError: 'missing'")
        r = s.get(url(port, "/ok"), timeout=T)
        assert (r.status_code, r.text) == (200, "GET /ok")


def test_an_unknown_handler_name_is_a_500(make_handler):
    h = made(make_handler, {"h": echo})
    with serving(h, args=[0, "nope"]) as (port, _):
        r = requests.get(url(port), timeout=T)
        assert (r.status_code, r.text) == (500, "internal error: unknown function `nope`")


def test_response_record_shapes(make_handler):
    responses = {
        "default": {},
        "wrap": {"status": 65536 + 404, "body": "wrapped"},
        "bad-status": {"status": 99, "body": "x"},
        # deliberately not sent as-is (the reference sends any Int as u16):
        # a 1xx would break HTTP/1.1 framing, 600+ is no HTTP status
        "status-100": {"status": 100, "body": "x"},
        "status-600": {"status": 600, "body": "x"},
        "status-599": {"status": 599, "body": "x"},
        "bad-status-type": {"status": "201", "body": 7},
        "bytes": {"status": 200, "body": b"\x00\xffraw"},
        "headers": {"status": 202, "body": "{}", "headers": Map({
            "Content-Type": "application/json", "X-Thing": "1",
            "Content-Length": "999", "Transfer-Encoding": "chunked"})},
        "inject": {"status": 200, "body": "", "headers": Map({"X-A": "1\r\nSet-Cookie: evil=1"})},
        "bad-name": {"status": 200, "body": "", "headers": Map({"X A": "1"})},
        "bad-headers": {"status": 200, "body": "", "headers": "nope"},
        "unicode": {"status": 200, "body": "héllo ☃"},
    }

    def route(h, req):
        return responses[req["path"].strip("/")]

    h = made(make_handler, {"route": route})
    with serving(h, args=[0, "route"]) as (port, _):
        s = requests.Session()

        def get(p):
            return s.get(url(port, "/" + p), timeout=T)

        r = get("default")
        assert (r.status_code, r.text) == (200, "")
        r = get("wrap")
        assert (r.status_code, r.text) == (404, "wrapped")
        r = get("bad-status")
        assert (r.status_code, r.text) == (500, "internal error: handler returned invalid status Int(99)")
        for status in (100, 600):
            r = get(f"status-{status}")
            assert (r.status_code, r.text) == (
                500, f"internal error: handler returned invalid status Int({status})")
        assert get("status-599").status_code == 599
        r = get("bad-status-type")
        assert (r.status_code, r.text) == (200, "")
        assert get("bytes").content == b"\x00\xffraw"
        r = get("headers")
        assert r.status_code == 202 and r.text == "{}"
        assert r.headers["content-type"] == "application/json" and r.headers["x-thing"] == "1"
        assert r.headers["content-length"] == "2" and "transfer-encoding" not in r.headers
        r = get("inject")
        assert r.status_code == 500 and "set-cookie" not in r.headers
        assert r.text == "internal error: invalid response header value for X-A"
        r = get("bad-name")
        assert r.status_code == 500 and "invalid response header name" in r.text
        r = get("bad-headers")
        assert r.status_code == 500 and "must be a Map of Str to Str" in r.text
        r = get("unicode")
        assert r.content.decode("utf-8") == "héllo ☃"
        r = s.head(url(port, "/unicode"), timeout=T)
        assert r.status_code == 200 and r.content == b""
        assert r.headers["content-length"] == str(len("héllo ☃".encode()))


def test_invalid_utf8_body_is_empty_as_in_the_reference(make_handler):
    h = made(make_handler, {"h": lambda h, r: {"status": 200, "body": f"[{r['body']}]"}})
    with serving(h, args=[0, "h"]) as (port, _):
        r = requests.post(url(port), data=b"\xff\xfe", timeout=T)
        assert r.text == "[]"


def test_body_over_the_limit_is_413(make_handler):
    calls = []

    def h_(h, req):
        calls.append(len(req["body"]))
        return {"status": 200, "body": str(len(req["body"]))}

    h = made(make_handler, {"h": h_}, limits=Limits(request_body_bytes=1024))
    with serving(h, args=[0, "h"]) as (port, _):
        r = requests.post(url(port), data="x" * 1024, timeout=T)
        assert (r.status_code, r.text) == (200, "1024")
        r = requests.post(url(port), data="x" * 1025, timeout=T)
        assert r.status_code == 413
        # chunked: no Content-Length to refuse up front; the read is cut off
        r = requests.post(url(port), data=iter([b"y" * 600, b"y" * 600]), timeout=T)
        assert r.status_code == 413
        r = requests.post(url(port), data=iter([b"y" * 500, b"y" * 500]), timeout=T)
        assert (r.status_code, r.text) == (200, "1000")
    assert calls == [1024, 1000]


def test_budget_is_shared_through_forks(make_handler):
    def costly(h, req):
        h.note_call_budget(4)
        return {"status": 200, "body": str(h.budget_remaining)}

    h = made(make_handler, {"costly": costly}, budget=10)
    with serving(h, args=[0, "costly"]) as (port, _):
        s = requests.Session()
        assert [s.get(url(port), timeout=T).text for _ in range(2)] == ["6", "2"]
        r = s.get(url(port), timeout=T)
        assert r.status_code == 500
        assert r.text == "internal error: budget exceeded: requested 4, used so far 8, ceiling 10"
    assert h.budget_remaining == 2


def test_handles_are_per_session(make_handler):
    """A request's fork reaches its own session's registry, never another's."""
    other = make_handler(effects=["net"])
    other.session.registry("thing").insert(7, "other's")

    def look(h, req):
        mine = h.session.registry("thing").get(7)
        return {"status": 200, "body": repr(mine)}

    h = made(make_handler, {"look": look})
    h.session.registry("thing").insert(8, "mine")
    with serving(h, args=[0, "look"]) as (port, _):
        assert requests.get(url(port), timeout=T).text == "None"


# -- load, bounds and stopping ---------------------------------------------------------

def test_200_concurrent_requests_on_a_bounded_pool(make_handler):
    active = [0]
    peak = [0]
    lock = threading.Lock()

    def slow(h, req):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.005)
        with lock:
            active[0] -= 1
        return {"status": 200, "body": req["query"]}

    h = made(make_handler, {"slow": slow}, limits=Limits(serve_threads=8))
    results = [None] * 200
    with serving(h, args=[0, "slow"]) as (port, _):
        start = threading.Barrier(200, timeout=T)

        def client(i):
            try:
                start.wait()
                r = requests.get(url(port, f"/?{i}"), timeout=T)
                results[i] = (r.status_code, r.text)
            except Exception as e:  # noqa: BLE001
                results[i] = e

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(200)]
        for t in threads:
            t.start()
        serve_threads = sum(1 for t in threading.enumerate() if t.name.startswith("lexfast serve"))
        for t in threads:
            t.join(T * 2)
        assert not any(t.is_alive() for t in threads)
    assert results == [(200, str(i)) for i in range(200)]
    assert peak[0] <= 8 and serve_threads <= 8


def test_the_pool_bounds_concurrency(make_handler):
    active = [0]
    peak = [0]
    lock = threading.Lock()

    def slow(h, req):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.15)
        with lock:
            active[0] -= 1
        return {"status": 200, "body": "ok"}

    h = made(make_handler, {"slow": slow}, limits=Limits(serve_threads=2))
    with serving(h, args=[0, "slow"]) as (port, _):
        out = []
        threads = [threading.Thread(target=lambda: out.append(
            requests.get(url(port), timeout=T).status_code)) for _ in range(6)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(T)
        took = time.monotonic() - t0
    assert out == [200] * 6 and peak[0] == 2 and took >= 0.4


def test_shutdown_while_busy_finishes_in_flight_requests(make_handler):
    entered = threading.Event()
    release = threading.Event()

    def busy(h, req):
        entered.set()
        release.wait(T)
        return {"status": 200, "body": "finished"}

    h = made(make_handler, {"busy": busy})
    got = {}
    with serving(h, args=[0, "busy"]) as (port, outcome):
        client = threading.Thread(target=lambda: got.setdefault(
            "r", requests.get(url(port), timeout=T)), daemon=True)
        client.start()
        assert entered.wait(T)
        stopper = threading.Thread(target=h.fork().shutdown)  # any fork, any thread
        stopper.start()
        stopper.join(T)
        assert _refused_soon(port)  # no longer accepting
        release.set()
        client.join(T)
    assert (got["r"].status_code, got["r"].text) == (200, "finished")


def test_shutdown_from_inside_a_handler(make_handler):
    def stop(h, req):
        h.shutdown()
        return {"status": 200, "body": "bye"}

    h = made(make_handler, {"stop": stop})
    with serving(h, args=[0, "stop"]) as (port, outcome):
        r = requests.get(url(port), timeout=T)
        assert r.text == "bye"
        deadline = time.monotonic() + T
        while listening(h) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert listening(h) == []


def test_a_stuck_handler_cannot_hold_the_shutdown_past_the_grace(make_handler):
    entered = threading.Event()
    release = threading.Event()

    def stuck(h, req):
        entered.set()
        release.wait(T)
        return {"status": 200, "body": "late"}

    h = made(make_handler, {"stuck": stuck}, limits=Limits(serve_grace_s=0.3))
    try:
        with serving(h, args=[0, "stuck"]) as (port, _):
            client = threading.Thread(target=lambda: _swallow(
                lambda: requests.get(url(port), timeout=T)), daemon=True)
            client.start()
            assert entered.wait(T)
            t0 = time.monotonic()
        assert time.monotonic() - t0 < 4.0
    finally:
        release.set()
        client.join(T)


def _refused_soon(port, within=3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        time.sleep(0.05)
    return False


def _swallow(fn):
    with contextlib.suppress(Exception):
        fn()


def test_idle_keep_alive_connections_time_out(make_handler):
    h = made(make_handler, {"h": echo}, limits=Limits(serve_idle_s=0.5))
    with serving(h, args=[0, "h"]) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
            s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            while not first.endswith(b"GET /a"):
                b = s.recv(65536)
                assert b, first
                first += b
            assert first.startswith(b"HTTP/1.1 200")
            t0 = time.monotonic()
            assert s.recv(65536) == b""  # the server closed the idle connection
            assert 0.3 < time.monotonic() - t0 < 5


def test_keep_alive_serves_many_requests_on_one_connection(make_handler):
    h = made(make_handler, {"h": echo})
    with serving(h, args=[0, "h"]) as (port, _):
        req = b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n"
        data = raw_exchange(port, req * 5 + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert data.count(b"HTTP/1.1 200 OK") == 6 and data.endswith(b"GET /last")


def test_keyboard_interrupt_stops_the_server(make_handler):
    """SIGINT in the thread that called net.serve: it stops and returns Unit."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread")
    h = made(make_handler, {"h": echo})
    fired = []

    def interrupt():
        port = wait_listening(h, "http", T)
        assert requests.get(url(port), timeout=T).status_code == 200
        fired.append(port)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=interrupt, daemon=True)
    t.start()
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert h.dispatch("net", "serve", [0, "h"]) is None
    finally:
        signal.signal(signal.SIGINT, old)
        t.join(T)
    assert fired and listening(h) == []
    assert _refused_soon(fired[0])


# -- TLS -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("pki")
    ca_path = d / "ca.pem"
    cert_path = d / "cert.pem"
    key_path = d / "key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    return {"dir": d, "ca": str(ca_path), "cert": str(cert_path), "key": str(key_path)}


def test_serve_tls_answers_https(make_handler, pki, capfd):
    h = made(make_handler, {"h": echo}, fs_read=[pki["dir"]])
    with serving(h, "serve_tls", [0, pki["cert"], pki["key"], "h"], "https") as (port, _):
        r = requests.get(url(port, "/secure", "https"), verify=pki["ca"], timeout=T)
        assert (r.status_code, r.text) == (200, "GET /secure")
        # TLS 1.1 and older are refused
        ctx = ssl.create_default_context(cafile=pki["ca"])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        except (ValueError, ssl.SSLError):
            ctx = None
        if ctx is not None:
            with socket.create_connection(("127.0.0.1", port), timeout=T) as raw:
                with pytest.raises((ssl.SSLError, OSError)):
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1").close()
        # plain HTTP on the TLS port is dropped, and the server keeps going
        assert not raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3).startswith(b"HTTP/1.1 200")
        r = requests.get(url(port, "/again", "https"), verify=pki["ca"], timeout=T)
        assert r.text == "GET /again"
    assert f"net.serve: listening on https://127.0.0.1:{port}" in capfd.readouterr().err


def test_silent_tls_clients_do_not_stall_the_server(make_handler, pki):
    """cheroot #748: with the handshake on the acceptor thread, one client
    that connects and says nothing blocks every new connection."""
    h = made(make_handler, {"h": echo}, fs_read=[pki["dir"]])
    with serving(h, "serve_tls", [0, pki["cert"], pki["key"], "h"], "https") as (port, _):
        silent = [socket.create_connection(("127.0.0.1", port), timeout=T) for _ in range(3)]
        try:
            time.sleep(0.2)
            t0 = time.monotonic()
            r = requests.get(url(port, "/", "https"), verify=pki["ca"], timeout=T)
            assert r.status_code == 200 and time.monotonic() - t0 < 2.0
        finally:
            for s in silent:
                s.close()


def test_serve_tls_reads_pem_only_inside_allow_fs_read(make_handler, pki, tmp_path):
    h = made(make_handler, {"h": echo}, fs_read=[tmp_path])
    with pytest.raises(PolicyDenied, match=r"net\.serve_tls: read of `.*cert\.pem` outside --allow-fs-read") as e:
        h.dispatch("net", "serve_tls", [0, pki["cert"], pki["key"], "h"])
    assert e.value.path == pki["cert"]
    # a symlink inside the scope pointing out of it is outside too
    link = tmp_path / "cert.pem"
    link.symlink_to(pki["cert"])
    with pytest.raises(PolicyDenied, match="outside --allow-fs-read"):
        h.dispatch("net", "serve_tls", [0, str(link), pki["key"], "h"])
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(EffectError, match=rf"^net\.serve_tls: read cert {missing}: No such file or directory \(os error 2\)$"):
        h.dispatch("net", "serve_tls", [0, missing, missing, "h"])
    (tmp_path / "c.pem").write_text("not a certificate\n")
    h2 = made(make_handler, {"h": echo}, fs_read=[tmp_path, pki["dir"]])
    with pytest.raises(EffectError, match=rf"^net\.serve_tls: read key {missing}: No such file"):
        h2.dispatch("net", "serve_tls", [0, pki["cert"], missing, "h"])
    with pytest.raises(EffectError, match=r"^net\.serve_tls bind 0: invalid certificate or key"):
        h2.dispatch("net", "serve_tls", [0, str(tmp_path / "c.pem"), pki["key"], "h"])
    assert listening(h2) == []


def test_serve_tls_reads_only_regular_pem_files(make_handler, pki, tmp_path):
    # a FIFO (or a device such as /dev/ptmx) once blocked the open or the
    # read forever
    fifo = tmp_path / "cert.fifo"
    os.mkfifo(fifo)
    h = made(make_handler, {"h": echo}, fs_read=[tmp_path, pki["dir"], "/dev"])
    t0 = time.monotonic()
    with pytest.raises(EffectError, match=rf"^net\.serve_tls: read cert {fifo}: not a regular file$"):
        h.dispatch("net", "serve_tls", [0, str(fifo), pki["key"], "h"])
    with pytest.raises(EffectError, match=rf"^net\.serve_tls: read key {fifo}: not a regular file$"):
        h.dispatch("net", "serve_tls", [0, pki["cert"], str(fifo), "h"])
    for dev in ("/dev/ptmx", "/dev/zero"):
        if os.path.exists(dev):
            with pytest.raises(EffectError, match=rf"^net\.serve_tls: read cert {dev}: not a regular file$"):
                h.dispatch("net", "serve_tls", [0, dev, pki["key"], "h"])
    with pytest.raises(EffectError, match=rf"^net\.serve_tls: read cert {tmp_path}: Is a directory \(os error 21\)$"):
        h.dispatch("net", "serve_tls", [0, str(tmp_path), pki["key"], "h"])
    assert time.monotonic() - t0 < 5
    assert listening(h) == []


_ENCRYPTED_KEY_CHILD = """
import sys
from lexfast import DefaultHandler, EffectError, Policy, CapturedSink
cert, key = sys.argv[1], sys.argv[2]
h = DefaultHandler(Policy(allow_effects=["net"], allow_fs_read=[sys.argv[3]]),
                   program={}, runner=lambda *a: None, sink=CapturedSink())
try:
    h.dispatch("net", "serve_tls", [0, cert, key, "h"])
except EffectError as e:
    print(e)
finally:
    h.close()
"""


def test_serve_tls_encrypted_key_fails_without_prompting(pki, tmp_path):
    # without a password callback OpenSSL asks for the passphrase on the
    # terminal; the child has no terminal and no stdin, and a deadline
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    key = serialization.load_pem_private_key(open(pki["key"], "rb").read(), password=None)
    for n, fmt in enumerate((serialization.PrivateFormat.PKCS8,
                             serialization.PrivateFormat.TraditionalOpenSSL)):
        path = tmp_path / f"enc-{n}.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt,
                                           serialization.BestAvailableEncryption(b"secret")))
        assert b"ENCRYPTED" in path.read_bytes()
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(lexfast.__file__)))
        out = subprocess.run([sys.executable, "-c", _ENCRYPTED_KEY_CHILD, pki["cert"], str(path),
                              os.path.commonpath([str(tmp_path), pki["cert"]])], stdin=subprocess.DEVNULL, capture_output=True,
                             start_new_session=True, timeout=30, env=env, cwd=str(tmp_path))
        assert out.stdout.decode().strip() == (
            "net.serve_tls bind 0: invalid certificate or key: encrypted keys are not supported"
        ), out


def test_serve_on_a_shut_down_session_returns_at_once(make_handler):
    h = made(make_handler, {"h": echo})
    h.shutdown()
    t0 = time.monotonic()
    assert h.dispatch("net", "serve", [0, "h"]) is None
    assert time.monotonic() - t0 < 3 and listening(h) == []


# -- issue 23: framing (request smuggling) and malformed heads ------------------------
#
# Each request below is refused with the status shown and the connection
# closed; nothing reaches the program, and a request smuggled after it
# (`GET /smuggled`) is never answered. Siblings of each reported form are here
# too (a repeated identical Content-Length, `chunked, chunked`, HTTP/1.0 with
# Transfer-Encoding, an oversize chunk size...).

_H = b"Host: x\r\n"
_SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

FRAMING_CATALOGUE = [
    # Content-Length
    ("cl-negative", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-two-different", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", 400),
    ("cl-two-identical", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    ("cl-list", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    ("cl-plus-sign", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: +5\r\n\r\nabcde", 400),
    ("cl-underscore", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 1_0\r\n\r\n0123456789", 400),
    ("cl-hex", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 0x5\r\n\r\nabcde", 400),
    ("cl-inner-space", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 1 0\r\n\r\n0123456789", 400),
    ("cl-empty", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length:\r\n\r\n", 400),
    ("cl-huge", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
    ("cl-obs-fold", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 0\r\n 5\r\n\r\nabcde", 400),
    # Content-Length with Transfer-Encoding, and transfer codings
    ("cl-and-te", b"POST / HTTP/1.1\r\n" + _H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-and-cl", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("te-space-before-colon", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-tab-before-colon", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-obs-fold", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: x\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-gzip", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    ("te-chunked-twice", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te-two-headers", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    ("te-chunked-not-last", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 501),
    ("te-in-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # chunk sizes and chunk framing
    ("chunk-0x", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-negative", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-underscore", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n0_5\r\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-plus", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n+5\r\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-leading-space", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n 5\r\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-empty-size", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n\r\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-size-bare-lf", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n5\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-data-bare-lf", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\n0\r\n\r\n", 400),
    ("chunk-data-too-long", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-size-overflow", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 40 + b"\r\nx\r\n0\r\n\r\n", 400),
    ("chunk-ext-ctl", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n5;a=\x01\r\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-trailer-bad", b"POST / HTTP/1.1\r\n" + _H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nBad Name: 1\r\n\r\n", 400),
    # malformed heads
    ("bare-lf-head", b"GET / HTTP/1.1\nHost: x\n\n", 400),
    ("bare-lf-in-field", b"GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400),
    ("bare-cr-in-field", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\rX-B: 2\r\n\r\n", 400),
    ("bare-cr-request-line", b"GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("nul-in-field", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    ("del-in-field", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n", 400),
    ("ctl-in-method", b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("space-in-field-name", b"GET / HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n", 400),
    ("empty-field-name", b"GET / HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n", 400),
    ("no-colon", b"GET / HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n", 400),
    ("http11-without-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("host-with-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("host-with-slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ("host-with-userinfo", b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400),
    ("host-bad-port", b"GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", 400),
    ("two-hosts-http10", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("lowercase-version", b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    ("http2-version", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("http09", b"GET /\r\n\r\n", 400),
    ("two-spaces", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("space-in-target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("non-ascii-target", "GET /é HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400),
    ("expect-unknown", b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 999-later\r\n\r\n", 417),
    # bounds
    ("request-line-too-long", b"GET /" + b"a" * (16 << 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("head-too-large", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * (70 << 10) + b"\r\n\r\n", 431),
    ("too-many-fields", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n", 431),
]


def _exchange(port, data: bytes, timeout=T) -> bytes:
    """Send ``data``, read until the server closes (a reset after the answer
    counts as closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
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


@pytest.fixture
def recorder(make_handler):
    calls = []

    def handle(h, req):
        calls.append((req["method"], req["path"], req["body"]))
        return {"status": 200, "body": "ok " + req["path"]}

    h = made(make_handler, {"h": handle}, limits=Limits(request_body_bytes=1 << 16))
    with serving(h, args=[0, "h"]) as (port, _):
        yield port, calls


@pytest.mark.parametrize("data,status", [pytest.param(d, s, id=i) for i, d, s in FRAMING_CATALOGUE])
def test_framing_catalogue_is_refused_and_closed(recorder, data, status):
    port, calls = recorder
    got = _exchange(port, data + _SMUGGLED)
    assert got.startswith(f"HTTP/1.1 {status} ".encode()), got[:200]
    assert b"ok /smuggled" not in got and got.count(b"\r\n\r\n") == 1, got  # closed, nothing after
    assert b"Connection: close" in got
    assert calls == []
    # and the server goes on serving
    assert _exchange(port, b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") \
        .endswith(b"ok /after")


def test_chunk_size_line_is_bounded_while_it_is_read(recorder):
    """A chunk-size line that never ends is refused once it passes the bound,
    not buffered until the client stops sending."""
    port, calls = recorder
    with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;" + b"a" * 4096)
        got = b""
        while b"\r\n\r\n" not in got:
            b = s.recv(65536)
            assert b, got
            got += b
    assert got.startswith(b"HTTP/1.1 400 ") and calls == []


def test_head_is_bounded_while_it_is_read(recorder):
    port, calls = recorder
    with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * (80 << 10))
        got = b""
        while b"\r\n\r\n" not in got:
            b = s.recv(65536)
            assert b, got
            got += b
    assert got.startswith(b"HTTP/1.1 431 ") and calls == []


@pytest.mark.parametrize("data,body", [
    pytest.param(b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
                 "hello0123456789", id="chunked-ext-trailer"),
    pytest.param(b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n", "hello", id="chunked-case"),
    pytest.param(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "hello",
                 id="content-length"),
    pytest.param(b"POST /p HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi", "hi", id="http10-no-host"),
    pytest.param(b"\r\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n", "", id="leading-crlf"),
    pytest.param(b"GET http://x/p?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", "", id="absolute-form"),
    pytest.param(b"GET /p HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "", id="host-ipv6-port"),
    pytest.param(b"GET /p HTTP/1.1\r\nHost:\r\n\r\n", "", id="host-empty"),
    pytest.param(b"GET /p HTTP/1.1\r\nhOsT: 127.0.0.1:80\r\nX-Obs: caf\xe9\r\n\r\n", "", id="obs-text-value"),
])
def test_valid_framing_siblings_are_served(recorder, data, body):
    port, calls = recorder
    got = _exchange(port, data + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"ok /last"), got
    assert calls[0] == (calls[0][0], "/p", body) and calls[-1][1] == "/last"


def test_expect_100_continue(recorder):
    port, calls = recorder
    with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
        s.sendall(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        got = b""
        while not got.endswith(b"\r\n\r\n"):
            b = s.recv(65536)
            assert b, got
            got += b
        assert got == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        got = b""
        while not got.endswith(b"ok /e"):
            b = s.recv(65536)
            assert b, got
            got += b
    assert calls == [("POST", "/e", "hello")]


def test_a_413_chunked_body_logs_no_traceback(make_handler, caplog):
    """Any client could fill the log with one traceback per request."""
    import logging

    h = made(make_handler, {"h": echo}, limits=Limits(request_body_bytes=1024))
    caplog.set_level(logging.DEBUG)
    with serving(h, args=[0, "h"]) as (port, _):
        for _ in range(3):
            got = _exchange(port, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"400\r\n" + b"y" * 1024 + b"\r\n400\r\n" + b"y" * 1024 + b"\r\n0\r\n\r\n")
            assert got.startswith(b"HTTP/1.1 413 ")
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.INFO], caplog.text


# -- issue 23: responses and lifecycle -------------------------------------------------

@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses_carry_no_body(make_handler, status):
    """A body written after a 204/304 would be read as the next response on a
    kept-alive connection (headers included)."""
    forged = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
    h = made(make_handler, {"h": lambda h, r: {"status": status if r["path"] == "/a" else 200,
                                               "body": forged if r["path"] == "/a" else "real"}})
    with serving(h, args=[0, "h"]) as (port, _):
        got = _exchange(port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                        b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"forged" not in got
    first, _, rest = got.partition(b"\r\n\r\n")
    assert first.startswith(f"HTTP/1.1 {status} ".encode()) and b"Content-Length" not in first
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\nreal")


@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_base_exceptions_from_the_runner_are_500(make_handler, exc):
    def boom(h, req):
        if req["path"] == "/boom":
            raise exc("stop")
        return echo(h, req)

    h = made(make_handler, {"h": boom})
    with serving(h, args=[0, "h"]) as (port, outcome):
        s = requests.Session()
        r = s.get(url(port, "/boom"), timeout=T)
        assert r.status_code == 500 and r.text == f"internal error: {exc.__name__}: stop"
        r = s.get(url(port, "/ok"), timeout=T)
        assert (r.status_code, r.text) == (200, "GET /ok")
        assert not outcome


@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_no_runner_call_starts_after_serve_returns(make_handler, how):
    """Requests queued behind a busy worker are dropped at shutdown: none of
    them reaches the program after net.serve returned (or after close())."""
    entered = threading.Event()
    release = threading.Event()
    calls = []
    returned = []

    def handle(h, req):
        calls.append((req["path"], bool(returned)))
        if req["path"] == "/first":
            entered.set()
            release.wait(T)
        return echo(h, req)

    h = made(make_handler, {"h": handle}, limits=Limits(serve_threads=1, serve_grace_s=2.0))
    socks = []
    try:
        with serving(h, args=[0, "h"]) as (port, _):
            first = socket.create_connection(("127.0.0.1", port), timeout=T)
            socks.append(first)
            first.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
            assert entered.wait(T)
            for i in range(20):
                s = socket.create_connection(("127.0.0.1", port), timeout=T)
                socks.append(s)
                s.sendall(f"GET /queued{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            time.sleep(0.2)  # the queued requests are parsed and waiting for the worker
            threading.Timer(0.3, release.set).start()
            if how == "close":
                h.close()
        returned.append(True)
        time.sleep(0.3)
        assert calls == [("/first", False)]
        got = b""
        while not got.endswith(b"GET /first"):
            b = first.recv(65536)
            assert b, got
            got += b
        assert got.startswith(b"HTTP/1.1 200 OK")  # the in-flight one was answered
    finally:
        release.set()
        for s in socks:
            s.close()


# -- issue 23: starvation (slowloris) and descriptor exhaustion ------------------------

N_SLOW = 1024  # the issue's figure, with default settings (16 workers)


@contextlib.contextmanager
def _fd_room(n):
    """Raise this process's soft RLIMIT_NOFILE to hold ``n`` more descriptors
    (both ends of every test connection live here); skip if the hard limit
    cannot."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = len(os.listdir("/proc/self/fd")) + n + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _slow_clients(port, n, tls_port=False):
    """``n`` connections: a third say nothing, a third send half a head, a
    third trickle a body they never finish."""
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=T)
        socks.append(s)
        if tls_port:
            if i % 2:
                s.sendall(b"\x16\x03\x01\x00")  # the start of a ClientHello, never finished
            continue
        if i % 3 == 1:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        elif i % 3 == 2:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
    return socks


def test_silent_and_trickling_clients_do_not_starve_the_server(make_handler):
    h = made(make_handler, {"h": echo})
    assert Limits().serve_threads < N_SLOW
    socks: list = []
    with _fd_room(2 * N_SLOW + 64):
        try:
            with serving(h, args=[0, "h"]) as (port, _):
                socks = _slow_clients(port, N_SLOW)
                for s in socks[2::3]:  # the tricklers send a little more
                    s.sendall(b"d")
                r = requests.get(url(port, "/normal"), timeout=T)
                assert (r.status_code, r.text) == (200, "GET /normal")
                # and again on a keep-alive session while they are still open
                with requests.Session() as sess:
                    for _ in range(3):
                        assert sess.get(url(port, "/again"), timeout=T).text == "GET /again"
        finally:
            for s in socks:
                s.close()


def test_silent_tls_clients_past_the_pool_do_not_starve_the_server(make_handler, pki):
    h = made(make_handler, {"h": echo}, fs_read=[pki["dir"]])
    socks: list = []
    with _fd_room(2 * N_SLOW + 64):
        try:
            with serving(h, "serve_tls", [0, pki["cert"], pki["key"], "h"], "https") as (port, _):
                socks = _slow_clients(port, N_SLOW, tls_port=True)
                r = requests.get(url(port, "/normal", "https"), verify=pki["ca"], timeout=T)
                assert (r.status_code, r.text) == (200, "GET /normal")
        finally:
            for s in socks:
                s.close()


def test_a_trickled_head_is_cut_at_the_head_deadline(make_handler, monkeypatch):
    """Sending one byte of the head at a time keeps no connection open past
    the whole-head deadline (the idle timeout alone would never fire)."""
    from lexfast.effects.net import front

    monkeypatch.setattr(front, "HEAD_TIMEOUT_S", 0.6)
    h = made(make_handler, {"h": echo})
    with serving(h, args=[0, "h"]) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
            t0 = time.monotonic()
            closed = False
            for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                try:
                    s.sendall(bytes([b]))
                except OSError:
                    closed = True
                    break
                r, _, _ = __import__("select").select([s], [], [], 0.05)
                if r:
                    closed = s.recv(65536) == b""
                    break
            assert closed and time.monotonic() - t0 < 5


def test_a_stalled_body_is_cut_at_the_idle_deadline(make_handler):
    calls = []
    h = made(make_handler, {"h": lambda h, r: calls.append(1) or echo(h, r)},
             limits=Limits(serve_idle_s=0.5))
    with serving(h, args=[0, "h"]) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            t0 = time.monotonic()
            assert s.recv(65536) == b""
            assert time.monotonic() - t0 < 5
    assert calls == []


_EMFILE_CHILD = r'''
import resource, sys, threading
import lexfast
from lexfast import DefaultHandler, Policy
from lexfast.effects.net.serve import wait_listening

op = sys.argv[1]

def runner(program, h, name, args):
    ev = args[0]
    if op == "serve_ws":
        h.dispatch("chat", "send", [ev["conn_id"], "echo " + ev["body"]])
        return None
    return {"status": 200, "body": "ok"}

h = DefaultHandler(Policy(allow_effects=["net", "chat"]), program={}, runner=runner)
def lower():
    wait_listening(h, None, 10)
    import os
    n = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print("READY", flush=True)
    sys.stdin.readline()
    h.shutdown()
threading.Thread(target=lower, daemon=True).start()
h.dispatch("net", op, [0, "x"])
print("RETURNED", flush=True)
'''


@pytest.mark.parametrize("op", ["serve", "serve_ws"])
def test_descriptor_exhaustion_pauses_accepting_and_recovers(op, tmp_path):
    """Under a lowered RLIMIT_NOFILE the server runs out of descriptors:
    it stops accepting for a moment, serves again once clients leave, and
    never ends (HTTP and WebSocket)."""
    pkg = os.path.dirname(os.path.dirname(lexfast.__file__))
    env = dict(os.environ, PYTHONPATH=pkg)
    child = subprocess.Popen([sys.executable, "-c", _EMFILE_CHILD, op], cwd=tmp_path, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    socks = []
    try:
        err_line = child.stderr.readline()
        assert "listening on" in err_line, err_line
        port = int(err_line.rsplit(":", 1)[1])
        assert child.stdout.readline().strip() == "READY"
        for _ in range(40):  # far more than the 8 descriptors left
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=T))
            except OSError:
                break
        time.sleep(0.5)  # the server hits EMFILE and backs off
        for s in socks:
            s.close()
        socks = []
        deadline = time.monotonic() + T
        ok = False
        while not ok and time.monotonic() < deadline:
            ok = _probe(op, port)
            if not ok:
                time.sleep(0.2)
        assert ok, "the server did not recover"
        assert child.poll() is None
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "RETURNED"
        assert child.wait(T) == 0
    finally:
        for s in socks:
            s.close()
        if child.poll() is None:
            child.kill()
            child.wait(T)
        for f in (child.stdin, child.stdout, child.stderr):
            f.close()


def _probe(op, port) -> bool:
    try:
        if op == "serve":
            r = requests.get(url(port), timeout=2)
            return r.status_code == 200 and r.text == "ok"
        from websockets.sync.client import connect

        with connect(f"ws://127.0.0.1:{port}/room", open_timeout=2, close_timeout=1) as ws:
            ws.send("hi")
            return ws.recv(timeout=2) == "echo hi"
    except Exception:
        return False


def test_a_body_of_tiny_chunks_is_refused(recorder):
    """Each chunk costs the loop a parse step: one-byte chunks past the cap
    are refused instead of holding the loop for every other client."""
    from lexfast.effects.net import front

    port, calls = recorder
    n = front.MAX_CHUNKS + (1 << 16) // 256 + 1
    data = (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"1\r\na\r\n" * n + b"0\r\n\r\n")
    got = _exchange(port, data)
    assert got.startswith(b"HTTP/1.1 400 ") and b"too many chunks" in got
    assert calls == []


def test_a_head_trickled_in_tiny_segments_is_served(recorder):
    port, calls = recorder
    with socket.create_connection(("127.0.0.1", port), timeout=T) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, 2000, 50):
            s.sendall(b"GET /t HTTP/1.1\r\nHost: x\r\n" if i == 0 else b"X-Pad: " + b"p" * 41 + b"\r\n")
        s.sendall(b"Connection: close\r\n\r\n")
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"ok /t")
