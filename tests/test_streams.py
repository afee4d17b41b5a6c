"""stream.next/collect, http.stream_lines and agent.cloud_stream against a
real streaming server on 127.0.0.1 (issue 17; the reference's stream_basic
and std_http_stream_lines restated)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lexfast import NONE, EffectError, Limits, Map, PolicyDenied, Variant, err, some

T = 10


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *a):
        pass

    def _lines(self, *chunks, length=False):
        body = b"".join(chunks)
        self.send_response(200)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for c in chunks:
            self.wfile.write(c)
            self.wfile.flush()

    def do_POST(self):
        srv = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        srv.seen.append((self.path, dict(self.headers), body))
        p = self.path
        if p == "/lines":
            self._lines(b"line1\nline2\nline3\n", length=True)
        elif p == "/crlf":
            self._lines(b"a\r\nb\\u00e9\\u0041\\uZZZZ\\ud800\r\n\r\nlast")
        elif p == "/slow":
            # the second line waits for the test: stream.next must not
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"first-event\n")
            self.wfile.flush()
            srv.release.wait(T)
            self.wfile.write(b"second-event\n")
            self.wfile.flush()
        elif p == "/hold":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"one\n")
            self.wfile.flush()
            # until the client goes away (or the test ends)
            self.connection.settimeout(T)
            try:
                while self.connection.recv(1):
                    pass
            except OSError:
                pass
            srv.client_gone.set()
        elif p == "/edge":  # lines of exactly the cap, with and without \r, then one more
            self._lines(b"a" * 1000 + b"\r\n", b"b" * 1000 + b"\n", b"c" * 1001 + b"\n")
        elif p == "/long":
            self._lines(b"ok\n", b"x" * 5000 + b"\n", b"after\n")
        elif p == "/big":
            self._lines(*[b"y" * 99 + b"\n"] * 200)
        elif p == "/badutf8":
            self._lines(b"fine\n\xff\xfe\n")
        elif p == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"partial\n")
        elif p == "/v1/chat/completions":
            if self.headers.get("Authorization") != "Bearer sk-test":
                return self._lines(b'{"error": "bad key sk-test"}')
            req = json.loads(body)
            assert req["stream"] is True
            events = [{"choices": [{"delta": {"role": "assistant"}}]}]
            events += [{"choices": [{"delta": {"content": w}}]} for w in ("Hel", "lo", " \"w\"")]
            out = [b": keep-alive\n\n"] + [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
            self._lines(*out, b"data: [DONE]\n\n", b"data: {\"after\": 1}\n\n")
        elif p == "/err/chat/completions":
            self.send_response(401)
            self.send_header("Content-Length", "27")
            self.end_headers()
            self.wfile.write(b'{"error":"bad key sk-test"}')
        else:
            self.send_response(404)
            self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list = []
        self.release = threading.Event()
        self.client_gone = threading.Event()

    def handle_error(self, request, client_address):
        pass


@pytest.fixture
def server():
    srv = _Server()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    t.join(5)
    time.sleep(0.05)


def lines_of(h, url, headers=None, body=""):
    r = h.dispatch("http", "stream_lines", [url, Map(headers or {}), body])
    assert r.name == "Ok", r
    return r.args[0]


# -- std_http_stream_lines.rs -----------------------------------------------------

def test_stream_collect_yields_each_line(make_handler, server):
    srv, base = server
    h = make_handler(effects=["net", "stream"])
    s = lines_of(h, base + "/lines", {"X-Token": "t"}, "payload")
    assert isinstance(s, Variant) and s.name == "__StreamHandle"
    assert h.dispatch("stream", "collect", [s]) == ["line1", "line2", "line3"]
    assert h.dispatch("stream", "collect", [s]) == []  # collect twice: []
    assert h.dispatch("stream", "next", [s]) == NONE
    path, headers, body = srv.seen[0]
    assert path == "/lines" and body == b"payload" and headers["X-Token"] == "t"


def test_stream_next_pulls_lazily(make_handler, server):
    srv, base = server
    h = make_handler(effects=["net", "stream"])
    s = lines_of(h, base + "/slow")
    # the server holds its second line until released: next returns the first now
    assert h.dispatch("stream", "next", [s]) == some("first-event")
    srv.release.set()
    assert h.dispatch("stream", "next", [s]) == some("second-event")
    assert h.dispatch("stream", "next", [s]) == NONE
    assert h.dispatch("stream", "next", [s]) == NONE


def test_lines_are_split_and_unescaped_as_the_reference(make_handler, server):
    _, base = server
    h = make_handler(effects=["net", "stream"])
    s = lines_of(h, base + "/crlf")
    assert h.dispatch("stream", "collect", [s]) == ["a", "béA\\uZZZZ\\ud800", "", "last"]


def test_host_checked_as_http_get(make_handler, server):
    _, base = server
    h = make_handler(effects=["net", "stream"], hosts=["example.com"])
    with pytest.raises(PolicyDenied, match=r"^net call to host `127\.0\.0\.1` not in "
                                           r"--allow-net-host \[\"example\.com\"\]$"):
        h.dispatch("http", "stream_lines", [base + "/lines", Map(), ""])
    for url in ("http://example.com@127.0.0.1:1/", "http://127.1:1/"):
        with pytest.raises(PolicyDenied):
            h.dispatch("http", "stream_lines", [url, Map(), ""])
    with pytest.raises(PolicyDenied, match="^effect `net` not in --allow-effects$"):
        make_handler(effects=["stream"]).dispatch("http", "stream_lines", [base, Map(), ""])
    ok_h = make_handler(effects=["net"], hosts=["127.0.0.1"])
    r = ok_h.dispatch("http", "stream_lines", [base + "/lines", Map(), ""])
    assert r.name == "Ok"
    # consuming needs `stream`
    with pytest.raises(PolicyDenied, match="^effect `stream` not in --allow-effects$"):
        ok_h.dispatch("stream", "next", [r.args[0]])


def test_bad_arguments_and_transport_errors(make_handler, server):
    _, base = server
    h = make_handler(effects=["net", "stream"])
    r = h.dispatch("http", "stream_lines", ["ftp://127.0.0.1/", Map(), ""])
    assert r.name == "Err" and "only http and https" in r.args[0]
    r = h.dispatch("http", "stream_lines", [base, Map({"X": "a\r\nInjected: 1"}), ""])
    assert r.name == "Err" and "CR, LF or NUL" in r.args[0]
    r = h.dispatch("http", "stream_lines", [base, Map({"X": 1}), ""])
    assert r.name == "Err" and "Map[Str, Str]" in r.args[0]
    with pytest.raises(EffectError, match="headers must be Map"):
        h.dispatch("http", "stream_lines", [base, [1], ""])
    with pytest.raises(EffectError, match=r"^expected Str arg"):
        h.dispatch("http", "stream_lines", [base, Map(), b"x"])
    r = h.dispatch("http", "stream_lines", ["http://127.0.0.1:1/", Map(), ""])
    assert r.name == "Err" and r.args[0].startswith("http.stream_lines: ")
    for bad in (1, "stream_1", Variant("Some", ("x",)), Variant("__StreamHandle", (1,))):
        with pytest.raises(EffectError, match=r"^stream\.next: expected a Stream"):
            h.dispatch("stream", "next", [bad])
        with pytest.raises(EffectError, match=r"^stream\.collect: expected a Stream"):
            h.dispatch("stream", "collect", [bad])
    for unknown in ("stream_999999999", "nope", "stream_" + "9" * 40, "stream_١"):
        v = Variant("__StreamHandle", (unknown,))
        assert h.dispatch("stream", "next", [v]) == NONE
        assert h.dispatch("stream", "collect", [v]) == []


def test_line_and_total_caps(make_handler, server):
    _, base = server
    h = make_handler(effects=["net", "stream"],
                     limits=Limits(stream_line_bytes=1000, stream_bytes=10_000))
    s = lines_of(h, base + "/long")
    assert h.dispatch("stream", "next", [s]) == some("ok")
    with pytest.raises(EffectError, match=r"^http\.stream_lines: a line longer than 1000 bytes; "
                                          "the stream is closed$"):
        h.dispatch("stream", "next", [s])
    assert h.dispatch("stream", "next", [s]) == NONE  # closed, never resumed
    s = lines_of(h, base + "/edge")
    assert h.dispatch("stream", "next", [s]) == some("a" * 1000)
    assert h.dispatch("stream", "next", [s]) == some("b" * 1000)
    with pytest.raises(EffectError, match="a line longer than 1000 bytes"):
        h.dispatch("stream", "next", [s])
    s = lines_of(h, base + "/big")
    with pytest.raises(EffectError, match=r"^http\.stream_lines: the stream passed 10000 bytes"):
        h.dispatch("stream", "collect", [s])
    s = lines_of(h, base + "/badutf8")
    assert h.dispatch("stream", "next", [s]) == some("fine")
    with pytest.raises(EffectError, match="not valid UTF-8"):
        h.dispatch("stream", "next", [s])
    s = lines_of(h, base + "/truncated")
    assert h.dispatch("stream", "next", [s]) == some("partial")
    with pytest.raises(EffectError, match=r"^http\.stream_lines: the transfer failed"):
        h.dispatch("stream", "next", [s])
    h2 = make_handler(effects=["net", "stream"], limits=Limits(stream_items=2))
    with pytest.raises(EffectError, match=r"^stream\.collect: more than 2 items"):
        h2.dispatch("stream", "collect", [lines_of(h2, base + "/lines")])


def test_close_ends_the_connection(make_handler, server):
    srv, base = server
    h = make_handler(effects=["net", "stream"])
    s = lines_of(h, base + "/hold")
    assert h.dispatch("stream", "next", [s]) == some("one")
    # a pull blocked on the open connection ends when the handler closes
    out = []

    def pull():
        try:
            out.append(h.dispatch("stream", "next", [s]))
        except EffectError as e:
            out.append(e)
    t = threading.Thread(target=pull)
    t.start()
    time.sleep(0.2)
    h.close()
    t.join(T)
    assert not t.is_alive() and len(out) == 1
    assert srv.client_gone.wait(T)  # the server saw the connection close


def test_eviction_closes_the_stream(make_handler, server):
    srv, base = server
    h = make_handler(effects=["net", "stream"])
    s = lines_of(h, base + "/hold")
    reg = h.session.registry("stream")
    # fill the registry past its cap with fixture-free list streams
    from lexfast.effects import stream as streams
    for _ in range(len(reg), 257):
        streams.register(h, streams.ListProducer(["x"]))
    assert srv.client_gone.wait(T)
    assert h.dispatch("stream", "next", [s]) == NONE


def test_streams_belong_to_their_session(make_handler, server):
    _, base = server
    a = make_handler(effects=["net", "stream"])
    b = make_handler(effects=["net", "stream"])
    s = lines_of(a, base + "/lines")
    assert b.dispatch("stream", "next", [s]) == NONE
    assert a.fork().dispatch("stream", "next", [s]) == some("line1")


# -- stream_basic.rs: agent.cloud_stream ------------------------------------------

@pytest.fixture
def no_cloud_env(monkeypatch):
    for v in ("LEX_LLM_STREAM_FIXTURE", "LEX_LLM_CLOUD_API_KEY", "OPENAI_API_KEY",
              "LEX_LLM_CLOUD_BASE_URL", "OPENAI_BASE_URL", "LEX_LLM_CLOUD_MODEL"):
        monkeypatch.delenv(v, raising=False)
    return monkeypatch


def test_cloud_stream_fixture_collect(make_handler, no_cloud_env):
    no_cloud_env.setenv("LEX_LLM_STREAM_FIXTURE", "alpha|beta|gamma|delta")
    h = make_handler(effects=["llm_cloud", "stream"])
    r = h.dispatch("agent", "cloud_stream", ["ignored"])
    assert r.name == "Ok"
    assert h.dispatch("stream", "collect", [r.args[0]]) == ["alpha", "beta", "gamma", "delta"]


def test_cloud_stream_fixture_next_is_one_chunk_at_a_time(make_handler, no_cloud_env):
    no_cloud_env.setenv("LEX_LLM_STREAM_FIXTURE", "one|two|three|four")
    h = make_handler(effects=["llm_cloud", "stream"])
    s = h.dispatch("agent", "cloud_stream", ["p"]).args[0]
    assert h.dispatch("stream", "next", [s]) == some("one")
    assert h.dispatch("stream", "next", [s]) == some("two")
    assert h.dispatch("stream", "collect", [s]) == ["three", "four"]


def test_cloud_stream_next_is_none_past_end(make_handler, no_cloud_env):
    no_cloud_env.setenv("LEX_LLM_STREAM_FIXTURE", "x|y")
    h = make_handler(effects=["llm_cloud", "stream"])
    s = h.dispatch("agent", "cloud_stream", ["p"]).args[0]
    assert [h.dispatch("stream", "next", [s]) for _ in range(3)] == [some("x"), some("y"), NONE]


def test_cloud_stream_without_fixture_or_key_is_err(make_handler, no_cloud_env):
    h = make_handler(effects=["llm_cloud"])
    r = h.dispatch("agent", "cloud_stream", ["p"])
    assert r.name == "Err" and "LEX_LLM_STREAM_FIXTURE" in r.args[0]
    assert h.dispatch("agent", "cloud_stream", [1]) == \
        err("agent.cloud_stream(prompt): prompt must be Str")


def test_cloud_stream_without_grant_is_refused(make_handler, no_cloud_env):
    no_cloud_env.setenv("LEX_LLM_STREAM_FIXTURE", "x")
    with pytest.raises(PolicyDenied, match="^effect `llm_cloud` not in --allow-effects$"):
        make_handler(effects=["stream"]).dispatch("agent", "cloud_stream", ["p"])


def test_cloud_stream_live_from_a_local_endpoint(make_handler, server, no_cloud_env):
    srv, base = server
    no_cloud_env.setenv("LEX_LLM_CLOUD_API_KEY", "sk-test")
    no_cloud_env.setenv("LEX_LLM_CLOUD_BASE_URL", base + "/v1")
    h = make_handler(effects=["llm_cloud", "stream"])
    r = h.dispatch("agent", "cloud_stream", ["hi"])
    assert r.name == "Ok", r
    assert h.dispatch("stream", "collect", [r.args[0]]) == ["Hel", "lo", ' "w"']
    sent = json.loads(srv.seen[-1][2])
    assert sent["messages"] == [{"role": "user", "content": "hi"}] and sent["stream"] is True
    no_cloud_env.setenv("LEX_LLM_CLOUD_BASE_URL", base + "/err")
    r = h.dispatch("agent", "cloud_stream", ["hi"])
    assert r.name == "Err" and "status 401" in r.args[0]
    assert "sk-test" not in r.args[0] and "[redacted]" in r.args[0]
