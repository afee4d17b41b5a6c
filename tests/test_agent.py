"""agent.local_complete / cloud_complete / send_a2a against local HTTP servers
on 127.0.0.1 standing in for Ollama, an OpenAI-compatible API and an A2A
agent (docs/behaviour.md §3.12, §6.13)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lexfast import EffectError, Limits

KEY = "sk-test-0123456789abcdef"
ENV_VARS = ("OLLAMA_HOST", "LEX_LLM_LOCAL_MODEL", "LEX_LLM_CLOUD_API_KEY", "OPENAI_API_KEY",
            "LEX_LLM_CLOUD_BASE_URL", "OPENAI_BASE_URL", "LEX_LLM_CLOUD_MODEL")


class Stand:
    """A small HTTP server; ``reply(path, body_json, headers) -> (status, bytes)``."""

    def __init__(self, reply):
        self.requests = []
        stand = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                stand.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "json": parsed})
                status, data = reply(self.path, parsed, self.headers)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that timed out and hung up

        self.server = Server(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def stand():
    made = []

    def make(reply):
        s = Stand(reply)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def j(obj) -> bytes:
    return json.dumps(obj).encode()


def err_text(v):
    assert v.name == "Err", v
    return v.args[0]


def ollama_reply(path, body, headers):
    if path != "/api/generate":
        return 404, j({"error": "not found"})
    return 200, j({"model": body["model"], "response": f"echo: {body['prompt']}", "done": True})


def openai_reply(path, body, headers):
    if headers.get("authorization") != f"Bearer {KEY}":
        return 401, j({"error": {"message": "bad key"}})
    return 200, j({"id": "x", "model": body["model"],
                   "choices": [{"index": 0, "message": {"role": "assistant",
                                                        "content": "hi from cloud"}}]})


# -- local -----------------------------------------------------------------------

def test_local_complete_round_trip(make_handler, stand, monkeypatch):
    s = stand(ollama_reply)
    monkeypatch.setenv("OLLAMA_HOST", s.url + "//")  # trailing slashes trimmed
    h = make_handler(effects=["llm_local"])
    v = h.dispatch("agent", "local_complete", ["héllo"])
    assert v.name == "Ok" and v.args[0] == "echo: héllo"
    req = s.requests[-1]
    assert req["path"] == "/api/generate"
    assert req["json"] == {"model": "llama3", "prompt": "héllo", "stream": False}
    assert req["headers"]["content-type"] == "application/json"
    monkeypatch.setenv("LEX_LLM_LOCAL_MODEL", "qwen")
    h.dispatch("agent", "local_complete", ["x"])
    assert s.requests[-1]["json"]["model"] == "qwen"
    monkeypatch.setenv("LEX_LLM_LOCAL_MODEL", "")  # used even when empty, as the reference
    h.dispatch("agent", "local_complete", ["x"])
    assert s.requests[-1]["json"]["model"] == ""


def test_local_complete_errors(make_handler, stand, monkeypatch):
    h = make_handler(effects=["llm_local"])
    assert err_text(h.dispatch("agent", "local_complete", [1])) == \
        "agent.local_complete(prompt): prompt must be Str"
    assert err_text(h.dispatch("agent", "local_complete", [])) == \
        "agent.local_complete(prompt): prompt must be Str"
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:1")
    assert err_text(h.dispatch("agent", "local_complete", ["hi"])).startswith(
        "ollama POST http://127.0.0.1:1/api/generate: ")
    # a 404 or an error body is parsed, not a transport error
    s = stand(lambda p, b, hd: (500, j({"error": "model 'llama3' not found"})))
    monkeypatch.setenv("OLLAMA_HOST", s.url)
    assert err_text(h.dispatch("agent", "local_complete", ["hi"])) == \
        "ollama: response missing `response` field: {\"error\":\"model 'llama3' not found\"}"
    s2 = stand(lambda p, b, hd: (200, b"<html>not json</html>"))
    monkeypatch.setenv("OLLAMA_HOST", s2.url)
    # serde_json's texts, as the reference reports them (the shared formatter)
    assert err_text(h.dispatch("agent", "local_complete", ["hi"])) == \
        "ollama: parse response JSON: expected value at line 1 column 1"
    s4 = stand(lambda p, b, hd: (200, b""))
    monkeypatch.setenv("OLLAMA_HOST", s4.url)
    assert err_text(h.dispatch("agent", "local_complete", ["hi"])) == \
        "ollama: parse response JSON: EOF while parsing a value at line 1 column 0"
    s3 = stand(lambda p, b, hd: (200, j({"resp": "x" * 50, "pad": "y" * 500})))
    monkeypatch.setenv("OLLAMA_HOST", s3.url)
    msg = err_text(h.dispatch("agent", "local_complete", ["hi"]))
    assert msg.startswith("ollama: response missing `response` field: {")
    assert len(msg) == len("ollama: response missing `response` field: ") + 200


def test_local_complete_timeout(make_handler, stand, monkeypatch):
    def slow(p, b, hd):
        time.sleep(1.5)
        return 200, j({"response": "late"})
    s = stand(slow)
    monkeypatch.setenv("OLLAMA_HOST", s.url)
    h = make_handler(effects=["llm_local"], limits=Limits(llm_timeout_s=0.3))
    t0 = time.monotonic()
    msg = err_text(h.dispatch("agent", "local_complete", ["hi"]))
    assert time.monotonic() - t0 < 1.4
    assert msg.startswith(f"ollama POST {s.url}/api/generate: ")


def test_llm_endpoints_are_operator_config_not_host_scoped(make_handler, stand, monkeypatch):
    # the endpoint comes from the operator's environment, as in the
    # reference: --allow-net-host scopes what agent code chooses, not this
    s = stand(ollama_reply)
    monkeypatch.setenv("OLLAMA_HOST", s.url)
    h = make_handler(effects=["llm_local"], hosts=["example.com"])
    assert h.dispatch("agent", "local_complete", ["hi"]).args[0] == "echo: hi"


# -- cloud ---------------------------------------------------------------------------

def test_cloud_complete_round_trip(make_handler, stand, monkeypatch):
    s = stand(openai_reply)
    monkeypatch.setenv("OPENAI_BASE_URL", s.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    h = make_handler(effects=["llm_cloud"])
    v = h.dispatch("agent", "cloud_complete", ["hello"])
    assert v.name == "Ok" and v.args[0] == "hi from cloud"
    req = s.requests[-1]
    assert req["path"] == "/v1/chat/completions"
    assert req["json"] == {"model": "gpt-4o-mini",
                           "messages": [{"role": "user", "content": "hello"}]}
    # LEX_* win over OPENAI_*; an empty one counts as unset
    s2 = stand(openai_reply)
    monkeypatch.setenv("LEX_LLM_CLOUD_BASE_URL", s2.url)
    monkeypatch.setenv("LEX_LLM_CLOUD_API_KEY", "")
    monkeypatch.setenv("LEX_LLM_CLOUD_MODEL", "m2")
    assert h.dispatch("agent", "cloud_complete", ["x"]).args[0] == "hi from cloud"
    assert s2.requests[-1]["path"] == "/chat/completions"
    assert s2.requests[-1]["json"]["model"] == "m2"
    # a trailing `/` on the base URL is trimmed, as the reference trims it
    monkeypatch.setenv("LEX_LLM_CLOUD_BASE_URL", s2.url + "/v1/")
    assert h.dispatch("agent", "cloud_complete", ["x"]).args[0] == "hi from cloud"
    assert s2.requests[-1]["path"] == "/v1/chat/completions"
    s5 = stand(lambda p, b, hd: (200, b"{\"choices\": ["))
    monkeypatch.setenv("LEX_LLM_CLOUD_BASE_URL", s5.url)
    assert err_text(h.dispatch("agent", "cloud_complete", ["x"])) == \
        "cloud: parse response JSON: EOF while parsing a list at line 1 column 13"
    monkeypatch.setenv("LEX_LLM_CLOUD_BASE_URL", s2.url)
    monkeypatch.setenv("LEX_LLM_CLOUD_API_KEY", "other-key")
    msg = err_text(h.dispatch("agent", "cloud_complete", ["x"]))
    assert msg.startswith("openai: response missing choices[0].message.content: ")
    assert "other-key" not in msg


def test_cloud_complete_without_key(make_handler, monkeypatch):
    h = make_handler(effects=["llm_cloud"])
    msg = "agent.cloud_complete: neither LEX_LLM_CLOUD_API_KEY nor OPENAI_API_KEY env var set"
    assert err_text(h.dispatch("agent", "cloud_complete", ["hi"])) == msg
    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("LEX_LLM_CLOUD_API_KEY", "")
    assert err_text(h.dispatch("agent", "cloud_complete", ["hi"])) == msg
    assert err_text(h.dispatch("agent", "cloud_complete", [b"hi"])) == \
        "agent.cloud_complete(prompt): prompt must be Str"


def test_api_key_never_in_messages(make_handler, stand, monkeypatch):
    # an endpoint that echoes the request headers in its error body
    def echo(p, b, hd):
        return 401, j({"error": f"rejected {hd.get('authorization')}"})
    s = stand(echo)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", s.url)
    h = make_handler(effects=["llm_cloud"])
    msg = err_text(h.dispatch("agent", "cloud_complete", ["hi"]))
    assert KEY not in msg and "[redacted]" in msg
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1")
    msg = err_text(h.dispatch("agent", "cloud_complete", ["hi"]))
    assert msg.startswith("cloud POST http://127.0.0.1:1/chat/completions: ")
    assert KEY not in msg
    quoted = 'sk-"quoted"\\key'
    monkeypatch.setenv("OPENAI_API_KEY", quoted)
    monkeypatch.setenv("OPENAI_BASE_URL", s.url)
    msg = err_text(h.dispatch("agent", "cloud_complete", ["hi"]))
    assert "quoted" not in msg and "[redacted]" in msg
    monkeypatch.setenv("OPENAI_API_KEY", KEY + "\r\nX-Injected: 1")
    msg = err_text(h.dispatch("agent", "cloud_complete", ["hi"]))
    assert KEY not in msg and "line break" in msg


# -- a2a -------------------------------------------------------------------------------

def a2a_reply(path, body, headers):
    if body.get("method") != "message/send":
        return 200, j({"jsonrpc": "2.0", "id": body.get("id"),
                       "error": {"code": -32601, "message": "Method not found"}})
    text = body["params"]["message"]["parts"][0]["text"]
    return 200, j({"jsonrpc": "2.0", "id": body["id"],
                   "result": {"kind": "message", "role": "agent", "messageId": "m-1",
                              "parts": [{"kind": "text", "text": f"echo: {text}"}]}})


def test_send_a2a_round_trip(make_handler, stand):
    s = stand(a2a_reply)
    h = make_handler(effects=["a2a"], hosts=["127.0.0.1"])
    v = h.dispatch("agent", "send_a2a", [s.url + "/a2a", "ping"])
    assert v.name == "Ok"
    result = json.loads(v.args[0])
    assert result["parts"][0]["text"] == "echo: ping" and result["role"] == "agent"
    req = s.requests[-1]
    assert req["path"] == "/a2a"
    body = req["json"]
    assert body["jsonrpc"] == "2.0" and body["method"] == "message/send" and body["id"]
    msg = body["params"]["message"]
    assert msg["role"] == "user" and msg["parts"] == [{"kind": "text", "text": "ping"}]
    assert isinstance(msg["messageId"], str) and msg["messageId"]


def test_send_a2a_errors(make_handler, stand):
    def rpc_error(p, b, hd):
        return 200, j({"jsonrpc": "2.0", "id": b["id"],
                       "error": {"code": -32001, "message": "Task not found"}})
    s = stand(rpc_error)
    h = make_handler(effects=["a2a"])
    assert err_text(h.dispatch("agent", "send_a2a", [s.url, "hi"])) == \
        'a2a message/send: {"code":-32001,"message":"Task not found"}'
    s2 = stand(lambda p, b, hd: (502, b"bad gateway"))
    assert err_text(h.dispatch("agent", "send_a2a", [s2.url, "hi"])) == \
        f"a2a POST {s2.url}: status 502: bad gateway"
    assert err_text(h.dispatch("agent", "send_a2a", ["http://127.0.0.1:1/", "hi"])).startswith(
        "a2a POST http://127.0.0.1:1/: ")
    assert err_text(h.dispatch("agent", "send_a2a", [1, "hi"])) == \
        "agent.send_a2a(agent_url, message): agent_url must be Str"
    assert err_text(h.dispatch("agent", "send_a2a", ["http://x/"])) == \
        "agent.send_a2a(agent_url, message): message must be Str"
    assert err_text(h.dispatch("agent", "send_a2a", ["file:///etc/passwd", "hi"])).startswith(
        "a2a POST file:///etc/passwd: ")


def test_send_a2a_host_scope(make_handler, stand):
    s = stand(a2a_reply)
    h = make_handler(effects=["a2a"], hosts=["agents.example.com"])
    msg = err_text(h.dispatch("agent", "send_a2a", [s.url, "hi"]))
    assert msg == ('agent.send_a2a: net call to host `127.0.0.1` not in --allow-net-host '
                   '["agents.example.com"]')
    # userinfo cannot smuggle an allowed name in front of another host
    msg = err_text(h.dispatch("agent", "send_a2a",
                              [f"http://agents.example.com@127.0.0.1:{s.port}/", "hi"]))
    assert "not in --allow-net-host" in msg
    assert s.requests == []


# -- §6.13 -----------------------------------------------------------------------------

def test_permissive_without_backends_nothing_aborts(permissive, monkeypatch):
    # case 143: soft errors only. send_a2a is real here, so a bare agent
    # name is an invalid URL (the reference's stub answered "<a2a stub>").
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:1")
    assert permissive.dispatch("agent", "local_complete", ["hi"]).name == "Err"
    assert permissive.dispatch("agent", "cloud_complete", ["hi"]).name == "Err"
    assert permissive.dispatch("agent", "send_a2a", ["peer-1", "hi"]).name == "Err"


def test_gates(make_handler):
    pure = make_handler()
    for op, kind in (("local_complete", "llm_local"), ("cloud_complete", "llm_cloud"),
                     ("send_a2a", "a2a"), ("call_mcp", "mcp")):
        with pytest.raises(EffectError, match=f"effect `{kind}` not in --allow-effects"):
            pure.dispatch("agent", op, ["hi", "x", "{}"])
    with pytest.raises(EffectError, match="effect `llm_local` not in --allow-effects"):
        make_handler(effects=["llm_cloud", "llm"]).dispatch("agent", "local_complete", ["hi"])


def test_lone_surrogate_prompt(make_handler, stand, monkeypatch):
    s = stand(ollama_reply)
    monkeypatch.setenv("OLLAMA_HOST", s.url)
    h = make_handler(effects=["llm_local"])
    assert h.dispatch("agent", "local_complete", ["a\ud800b"]).name == "Ok"
    assert s.requests[-1]["json"]["prompt"] == "a\ud800b"
