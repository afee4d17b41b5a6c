"""agent.call_mcp (gated ``mcp``), agent.local_complete (``llm_local``),
agent.cloud_complete (``llm_cloud``), agent.send_a2a (``a2a``).

Every error here is a soft ``err(...)`` value, as in the reference.

MCP: live clients are cached per session by the exact command line (an LRU
of 16). Where lexfast differs from the reference (docs/design.md §5): the
command line is split with POSIX ``shlex`` rules (quotes group words; no
expansion, no operators: ``;`` or ``$(..)`` are just bytes of an argument)
and never run through a shell; its binary must pass ``--allow-proc``; the
server gets a filtered environment (no API keys); the handshake is complete;
every request has a timeout (``Limits.mcp_timeout_s`` for ``tools/call``,
``Limits.mcp_start_timeout_s`` for a new server's ``initialize``: starting
a server, say through ``npx``, is often far slower than a call) and every
reply line a size cap (``Limits.mcp_reply_bytes``). A call that breaks the stream
(timeout, EOF, flood, bad write) drops the client, which is then reaped; a
JSON-RPC error reply is returned as ``err`` but keeps the server, which
answered properly. A cached server that died while idle is respawned
transparently (nothing had been sent to it).

LLM: the endpoints come from the operator's environment, as in the
reference, and are not checked against ``--allow-net-host``: agent code
controls only the prompt, never where it goes. The API key is sent only in
the ``Authorization`` header and scrubbed from every message.

A2A: the reference's stub is replaced by a real ``message/send`` JSON-RPC
call; the agent URL is chosen by agent code, so its host must pass
``--allow-net-host`` like ``net``.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import subprocess
import threading
import uuid
import weakref

from ...builtins.formats import json_error_text
from ...errors import EffectError
from ...kernel import err, ok
from ...scope import MAX_ARG_BYTES, MAX_ARGS, resolve_command
from ...values import debug_str_list, os_error_text
from ..proc import children
from .mcp_client import McpClient, McpError, close_many, compact_json

MCP_CACHE = 16          # live MCP servers per session (the reference's #197)
# A client dropped after a failure (it timed out, flooded or broke the
# stream) gets short graces: it has already shown it is not answering.
FAILED_GRACE = {"stdin_grace": 0.2, "term_grace": 0.5}


# -- agent.call_mcp ------------------------------------------------------------

class _McpState:
    """Per-session bookkeeping around the session's ``mcp`` registry."""

    def __init__(self, session) -> None:
        self.lock = threading.Lock()     # check-then-insert on the registry
        self.closed = False
        self.queue: list = []            # retired clients waiting to be reaped
        self.fresh: set = set()          # started, not yet in the registry
        self.qlock = threading.Lock()
        self._session = weakref.ref(session)
        self.reg = session.registry("mcp", on_evict=self.on_evict, cap=MCP_CACHE)
        session.on_close(self.on_session_close)

    def on_evict(self, key, client) -> None:
        # Runs inside LRURegistry.insert (and the session's close sweep):
        # queue only, the reaping (which may take a grace period) is done
        # by the caller outside every lock.
        session = self._session()
        closing = session is None or session.closed
        if _retire(client, hard=closing):
            with self.qlock:
                self.queue.append(client)

    def reap_queued(self) -> None:
        with self.qlock:
            if not self.queue:
                return
            todo, self.queue = self.queue, []
        close_many(todo)

    def on_session_close(self) -> None:
        with self.lock:
            self.closed = True
            leftover = self.reg.pop_all()
            fresh = list(self.fresh)
        for client in fresh:  # starting or in their first call: their users reap them
            client.cancel()
        for key, client in leftover:
            self.on_evict(key, client)
        self.reap_queued()


def _mcp_state(session) -> _McpState:
    return session.state("mcp", _McpState)


# A client is used by one thread at a time (call_lock). ``busy``, ``closing``
# and ``evicted`` (under state_lock) decide who reaps it: an evictor reaps an
# idle client; a busy one is reaped by its user when the call ends, so no fd
# is closed under a thread still polling it.

def _acquire(client: McpClient, timeout: float) -> str:
    if not client.call_lock.acquire(timeout=timeout):
        return "busy"
    with client.state_lock:
        if client.closing:
            client.call_lock.release()
            return "closing"
        client.busy = True
    return "ok"


def _release(client: McpClient, keep: bool) -> bool:
    """End a use; True when the caller must now close the client."""
    with client.state_lock:
        client.busy = False
        close = client.evicted or not keep
        if close:
            client.closing = True
    client.call_lock.release()
    return close


def _retire(client: McpClient, hard: bool = False) -> bool:
    """Evict; True when the caller must close it now (it was idle)."""
    with client.state_lock:
        if client.closing:
            return False
        if client.busy:
            client.evicted = True
            if hard:  # the session is closing: stop the call in flight
                client.cancel()
            return False
        client.closing = True
        return True


def _str_arg(args, i):
    v = args[i] if i < len(args) else None
    return v if isinstance(v, str) else None


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON value")


def _spawn(h, server: str, limits, state=None):
    """A started, initialised client, or the err value saying why not."""
    try:
        argv = shlex.split(server)
    except ValueError as e:
        return None, err(f"mcp.spawn: cannot split the command line: {e}")
    if not argv:
        return None, err("mcp.spawn: empty command")
    cmd = argv[0]
    if len(argv) > MAX_ARGS:
        return None, err(f"mcp.spawn: arg-count exceeds {MAX_ARGS}")
    for a in argv:
        if "\0" in a:
            return None, err(f"mcp.spawn `{cmd}`: argument contains a NUL byte")
        if len(a.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES:
            return None, err("mcp.spawn: per-arg length exceeds 64 KiB")
    allow = h.policy.allow_proc
    try:
        # runs as the allowed entry: its path to exec, the entry as argv[0]
        exe, argv[0] = resolve_command(cmd, allow)
    except PermissionError:
        return None, err(f"mcp.spawn: `{cmd}` not in --allow-proc {debug_str_list(allow)}")
    if exe is None:
        return None, err(f"mcp.spawn `{cmd}`: "
                         f"{os_error_text(FileNotFoundError(errno.ENOENT, ''))}")
    rules = children.confinement(h.policy, limits, "agent.call_mcp")
    try:
        client = McpClient(argv, exe, reply_cap=limits.mcp_reply_bytes, confine=rules)
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        return None, err(f"mcp.spawn `{cmd}`: {os_error_text(e)}")
    _acquire(client, 0)
    if state is not None:
        with state.lock:
            state.fresh.add(client)
            if state.closed:
                client.cancel()
    try:
        client.initialize(limits.mcp_start_timeout_s)
    except McpError as e:
        _forget_fresh(state, client)
        _release(client, keep=False)
        client.close(**FAILED_GRACE)
        if client.cancelled.is_set():
            raise EffectError("agent.call_mcp: the handler is closed") from None
        return None, err(e.message)
    except BaseException:
        _forget_fresh(state, client)
        _release(client, keep=False)
        client.close(**FAILED_GRACE)
        raise
    return client, None


def _forget_fresh(state, client) -> None:
    if state is not None:
        with state.lock:
            state.fresh.discard(client)


def call_mcp(h, args):
    server = _str_arg(args, 0)
    if server is None:
        return err("agent.call_mcp(server, tool, args_json): server must be Str")
    tool = _str_arg(args, 1)
    if tool is None:
        return err("agent.call_mcp(server, tool, args_json): tool must be Str")
    args_json = _str_arg(args, 2)
    if args_json is None:
        return err("agent.call_mcp(server, tool, args_json): args_json must be Str")
    try:
        arguments = json.loads(args_json, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        return err(f"agent.call_mcp: args_json is not valid JSON: {json_error_text(e)}")

    session = h.session
    limits = session.limits
    timeout = limits.mcp_timeout_s
    state = _mcp_state(session)
    if state.closed or session.closed:
        raise EffectError("the handler is closed")  # as the session's registries say
    reg = state.reg

    client = reg.touch_get(server)
    if client is not None:
        # the call in flight ends within its own timeout: wait that long
        # (and a margin), never forever
        got = _acquire(client, timeout + 1.0)
        if got == "busy":
            return err(f"mcp.rpc tools/call: the server is still busy with another "
                       f"call after {timeout + 1.0:g} s")
        if got == "closing":
            client = None
        elif not client.alive():
            # died while idle: nothing was sent, so respawning is safe
            _forget(state, server, client)
            if _release(client, keep=False):
                client.close()
            client = None
    fresh = client is None
    if fresh:
        if state.closed or session.closed:  # closed while we waited for a busy one
            raise EffectError("agent.call_mcp: the handler is closed")
        client, failure = _spawn(h, server, limits, state)
        if failure is not None:
            state.reap_queued()
            return failure

    keep = True
    closed = False
    try:
        result = client.call_tool(tool, arguments, timeout)
        out = ok(compact_json(result))
    except McpError as e:
        keep = not e.fatal
        out = err(e.message)
        closed = client.cancelled.is_set()
    except BaseException:
        keep = False
        raise
    finally:
        if fresh:
            _forget_fresh(state, client)
        if fresh and keep:
            with state.lock:
                if state.closed or reg.get(server) is not None:
                    keep = False  # closed meanwhile, or another thread cached one
                else:
                    reg.insert(server, client)
        elif not fresh and not keep:
            _forget(state, server, client)
        if _release(client, keep):
            client.close(**({} if keep else FAILED_GRACE))
        state.reap_queued()
    if closed:  # the session closed under the call: an error, not a value
        raise EffectError("agent.call_mcp: the handler is closed")
    return out


def _forget(state: _McpState, server: str, client: McpClient) -> None:
    with state.lock:
        if state.reg.get(server) is client:
            state.reg.remove(server)


def mcp_pids(h) -> dict:
    """Command line -> pid of each live MCP server of ``h``'s session
    (diagnostics and tests), least recently used first."""
    state = h.session.state("mcp")
    if state is None:
        return {}
    out = {}
    for key in state.reg.keys():
        client = state.reg.get(key)
        if client is not None:
            out[key] = client.pid
    return out


# -- LLM and A2A over the shared pycurl client ---------------------------------

def _http():
    from ..net.http import HttpFailure, request
    return request, HttpFailure


def _env(name: str):
    # set-but-empty counts as set here, as in the reference (OLLAMA_HOST,
    # LEX_LLM_LOCAL_MODEL, LEX_LLM_CLOUD_MODEL)
    return os.environ.get(name)


def _first_nonempty(*names):
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def _head(value, n: int = 200) -> str:
    return compact_json(value)[:n]


def _post_json(h, url: str, payload, headers, timeout: float, check_host: bool):
    request, HttpFailure = _http()
    body = compact_json(payload).encode("utf-8")
    hdrs = [("content-type", "application/json")] + list(headers)
    try:
        status, _headers, data = request(h, "POST", url, headers=hdrs, body=body,
                                         timeout_s=timeout, check_host=check_host)
    except HttpFailure as e:
        return None, e
    return (status, data), None


def _body_failure(f) -> bool:
    return f.kind == "decode" and f.message.startswith("body read")


def _failure_text(f) -> str:
    return f.message or ("timed out" if f.kind == "timeout" else f.kind)


def local_complete(h, args):
    prompt = _str_arg(args, 0)
    if prompt is None:
        return err("agent.local_complete(prompt): prompt must be Str")
    host = _env("OLLAMA_HOST")
    if host is None:
        host = "http://localhost:11434"
    model = _env("LEX_LLM_LOCAL_MODEL")
    if model is None:
        model = "llama3"
    url = f"{host.rstrip('/')}/api/generate"
    got, failure = _post_json(h, url, {"model": model, "prompt": prompt, "stream": False},
                              [], h.session.limits.llm_timeout_s, check_host=False)
    if failure is not None:
        if _body_failure(failure):
            return err(f"ollama: read response body: {failure.message}")
        return err(f"ollama POST {url}: {_failure_text(failure)}")
    _status, data = got
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return err(f"ollama: read response body: {e}")
    try:
        reply = json.loads(text)
    except (ValueError, RecursionError) as e:
        return err(f"ollama: parse response JSON: {json_error_text(e)}")
    answer = reply.get("response") if isinstance(reply, dict) else None
    if not isinstance(answer, str):
        return err(f"ollama: response missing `response` field: {_head(reply)}")
    return ok(answer)


def cloud_complete(h, args):
    prompt = _str_arg(args, 0)
    if prompt is None:
        return err("agent.cloud_complete(prompt): prompt must be Str")
    key = _first_nonempty("LEX_LLM_CLOUD_API_KEY", "OPENAI_API_KEY")
    if key is None:
        return err("agent.cloud_complete: neither LEX_LLM_CLOUD_API_KEY nor "
                   "OPENAI_API_KEY env var set")
    base = _first_nonempty("LEX_LLM_CLOUD_BASE_URL", "OPENAI_BASE_URL") \
        or "https://api.openai.com/v1"
    model = _env("LEX_LLM_CLOUD_MODEL")
    if model is None:
        model = "gpt-4o-mini"
    url = f"{base.rstrip('/')}/chat/completions"  # `…/v1/` works, as in the reference
    if any(c in key for c in "\r\n\0"):
        # would split the header; say so without echoing the key
        return err("agent.cloud_complete: the API key contains a line break or NUL")
    got, failure = _post_json(h, url, {"model": model,
                                       "messages": [{"role": "user", "content": prompt}]},
                              [("authorization", f"Bearer {key}")],
                              h.session.limits.llm_timeout_s, check_host=False)
    if failure is not None:
        if _body_failure(failure):
            return err(_scrub(f"cloud: read response body: {failure.message}", key))
        return err(_scrub(f"cloud POST {url}: {_failure_text(failure)}", key))
    _status, data = got
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return err(_scrub(f"cloud: read response body: {e}", key))
    try:
        reply = json.loads(text)
    except (ValueError, RecursionError) as e:
        return err(_scrub(f"cloud: parse response JSON: {json_error_text(e)}", key))
    try:
        answer = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        answer = None
    if not isinstance(answer, str):
        return err(_scrub("openai: response missing choices[0].message.content: "
                          f"{_head(reply)}", key))
    return ok(answer)


_FIXTURE_HINT = "set LEX_LLM_STREAM_FIXTURE='chunk1|chunk2|…' for tests"
_ERROR_BODY_BYTES = 64 << 10  # of a failed stream's body, quoted in the err


def cloud_stream(h, args):
    """``agent.cloud_stream(prompt) -> Result[Stream[Str], Str]``: the
    reference's ``LEX_LLM_STREAM_FIXTURE`` (``a|b|c``: one chunk each) when
    set; otherwise a real streamed chat completion from the OpenAI-compatible
    endpoint ``cloud_complete`` uses, each chunk a ``delta.content``, pulled
    from the connection as the program asks (the reference has no live
    path)."""
    prompt = _str_arg(args, 0)
    if prompt is None:
        return err("agent.cloud_stream(prompt): prompt must be Str")
    from .. import stream as streams
    fixture = os.environ.get("LEX_LLM_STREAM_FIXTURE")
    if fixture is not None:
        return ok(streams.register(h, streams.ListProducer(fixture.split("|"))))
    key = _first_nonempty("LEX_LLM_CLOUD_API_KEY", "OPENAI_API_KEY")
    if key is None:
        return err("agent.cloud_stream: neither LEX_LLM_CLOUD_API_KEY nor OPENAI_API_KEY "
                   f"env var set ({_FIXTURE_HINT})")
    if any(c in key for c in "\r\n\0"):
        return err("agent.cloud_stream: the API key contains a line break or NUL")
    base = _first_nonempty("LEX_LLM_CLOUD_BASE_URL", "OPENAI_BASE_URL") \
        or "https://api.openai.com/v1"
    model = _env("LEX_LLM_CLOUD_MODEL")
    if model is None:
        model = "gpt-4o-mini"
    url = f"{base.rstrip('/')}/chat/completions"  # `…/v1/` works, as in the reference
    from ..net.http_stream import open_stream
    body = compact_json({"model": model, "stream": True,
                         "messages": [{"role": "user", "content": prompt}]}).encode("utf-8")
    s, failure = open_stream(h, "agent.cloud_stream", url,
                             [("content-type", "application/json"),
                              ("accept", "text/event-stream"),
                              ("authorization", f"Bearer {key}")], body, check_host=False)
    if failure is not None:
        return err(_scrub(f"cloud POST {url}: {_failure_text(failure)}", key))
    status = s.status
    if not 200 <= status < 300:
        try:
            text = _drain(s, _ERROR_BODY_BYTES)
        except EffectError as e:
            text = str(e)
        finally:
            s.close()
        return err(_scrub(f"cloud POST {url}: status {status}: {text}", key))
    return ok(streams.register(h, _SseChunks(s, key)))


def _drain(s, cap: int) -> str:
    out = bytearray()
    while len(out) < cap:
        line = s.pull_bytes()
        if line is None:
            break
        out += line + b"\n"
    return out[:cap].decode("utf-8", "replace").strip()


class _SseChunks:
    """An OpenAI-style server-sent event stream -> its ``delta.content`` chunks."""

    def __init__(self, lines, key: str) -> None:
        self._lines = lines
        self._key = key
        self.interrupt = lines.interrupt

    def pull(self):
        while True:
            raw = self._lines.pull_bytes()
            if raw is None:
                return None
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if not raw.startswith(b"data:"):
                continue  # blank separators, comments, event:/id: fields
            data = raw[5:].strip()
            if data == b"[DONE]":
                return None
            try:
                event = json.loads(data.decode("utf-8"))
            except (ValueError, RecursionError) as e:
                raise EffectError(_scrub(f"agent.cloud_stream: parse event JSON: {json_error_text(e)}",
                                         self._key)) from None
            try:
                chunk = event["choices"][0]["delta"].get("content")
            except (KeyError, IndexError, TypeError, AttributeError):
                if isinstance(event, dict) and "error" in event:
                    raise EffectError(_scrub(f"agent.cloud_stream: {_head(event['error'])}",
                                             self._key)) from None
                continue  # a usage-only or role-only event
            if isinstance(chunk, str) and chunk:
                return chunk

    def close(self) -> None:
        self._lines.close()


def _scrub(message: str, secret: str) -> str:
    # an endpoint that echoes the request (or a proxy error page) must not
    # hand the key to agent code or to a log line
    if secret:
        for form in {secret, json.dumps(secret, ensure_ascii=False)[1:-1], json.dumps(secret)[1:-1]}:
            if form:
                message = message.replace(form, "[redacted]")
    return message


def send_a2a(h, args):
    agent_url = _str_arg(args, 0)
    if agent_url is None:
        return err("agent.send_a2a(agent_url, message): agent_url must be Str")
    message = _str_arg(args, 1)
    if message is None:
        return err("agent.send_a2a(agent_url, message): message must be Str")
    rid = uuid.uuid4().hex
    payload = {
        "jsonrpc": "2.0", "id": rid, "method": "message/send",
        "params": {"message": {"role": "user", "parts": [{"kind": "text", "text": message}],
                               "messageId": str(uuid.uuid4())}},
    }
    got, failure = _post_json(h, agent_url, payload, [("accept", "application/json")],
                              h.session.limits.a2a_timeout_s, check_host=True)
    if failure is not None:
        if failure.kind == "denied":
            return err(f"agent.send_a2a: {failure.message}")
        if _body_failure(failure):
            return err(f"a2a: read response body: {failure.message}")
        return err(f"a2a POST {agent_url}: {_failure_text(failure)}")
    status, data = got
    try:
        reply = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        if not 200 <= status < 300:
            return err(f"a2a POST {agent_url}: status {status}: "
                       f"{data[:200].decode('utf-8', 'replace')}")
        return err(f"a2a: parse response JSON: {json_error_text(e)}")
    if not isinstance(reply, dict):
        return err(f"a2a: not a JSON-RPC response: {_head(reply)}")
    if "error" in reply:
        return err(f"a2a message/send: {_head(reply['error'], 1000)}")
    if "result" not in reply:
        if not 200 <= status < 300:
            return err(f"a2a POST {agent_url}: status {status}: {_head(reply)}")
        return err(f"a2a: response has neither result nor error: {_head(reply)}")
    return ok(compact_json(reply["result"]))


ROWS = [
    ("agent", "call_mcp", "mcp", call_mcp),
    ("agent", "local_complete", "llm_local", local_complete),
    ("agent", "cloud_complete", "llm_cloud", cloud_complete),
    ("agent", "cloud_stream", "llm_cloud", cloud_stream),
    ("agent", "send_a2a", "a2a", send_a2a),
]
