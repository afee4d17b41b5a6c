"""A small synchronous MCP client over stdio, for ``agent.call_mcp``.

Why our own (ECOSYSTEM.md §4): the official SDK is asyncio-only, and its
anyio cancel scopes must be entered and left in one task, which an LRU that
evicts from whichever thread inserts cannot promise.

What it does beyond the reference's client (docs/design.md §5):

- the full handshake: ``initialize`` (a current protocol version, accepting
  any handshake-era version the server answers), then the
  ``notifications/initialized`` notification;
- every request has a deadline; on expiry ``tools/call`` is cancelled
  (``notifications/cancelled``) and the client is dropped;
- notifications, responses to other ids and stray non-JSON lines on stdout
  are skipped; a server ``ping`` is answered; a line that starts like a
  JSON object but does not parse is the reference's ``mcp.rpc: parse`` error;
- one reply line is capped (``reply_cap``), so a flood cannot exhaust memory;
  so are the answers owed to server requests (``OWED_CAP``) while the
  server does not read them;
- stdout and stderr are read in the calling thread with ``poll`` while a
  request is pending, so a chatty server never blocks on a full pipe, and
  there is no reader thread to leak; the last few KiB of stderr are kept for
  error messages;
- the server runs in its own session and process group with a filtered
  environment (no API keys), default signal dispositions and an empty
  signal mask (``lexfast.effects.proc.children``), and is stopped the way the stdio spec
  says: close its stdin, then SIGTERM, then SIGKILL, then reap; whatever it
  started in its group is SIGKILLed with it, even after the leader exited;
- ``cancel()`` (the session closing) kills it from any thread and makes the
  request in flight fail at once with ``the handler is closed``.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import select
import signal
import threading
import time
import weakref

from ..._version import __version__
from ...builtins.formats import json_error_text
from ...values import os_error_text
from ..proc import children

#: Offered in ``initialize``; any of ``ACCEPTED_VERSIONS`` is taken back.
PROTOCOL_VERSION = "2025-11-25"
ACCEPTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
CLIENT_INFO = {"name": "lexfast", "version": __version__}

#: What the server inherits (the SDK's default list plus locale and TMPDIR).
#: The reference passed the whole environment, API keys included.
ENV_KEEP = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER",
            "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")
#: Operator-only: extra variable names (comma-separated) to pass through.
ENV_PASS_VAR = "LEXFAST_MCP_ENV"

STDIN_GRACE_S = 2.0     # after closing stdin, before SIGTERM (the SDK's 2 s)
TERM_GRACE_S = 1.0      # after SIGTERM, before SIGKILL
STDERR_KEEP = 8192      # bytes of the server's stderr kept for messages
EXIT_DRAIN_S = 0.05     # reading stderr for an exit message, at most this long
EXIT_DRAIN_BYTES = 1 << 20  # ... and this many bytes
OWED_CAP = 65536        # unsent answers to server requests (ping) we hold
_CHUNK = 65536

_POLLIN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
_POLLOUT = select.POLLOUT | select.POLLHUP | select.POLLERR


class McpError(Exception):
    """A failed request. ``fatal``: the stream or the process is broken
    (timeout, EOF, flood, write error), so the client must be dropped. A
    JSON-RPC error reply is not fatal: the server answered properly."""

    def __init__(self, message: str, fatal: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.fatal = fatal


def server_env() -> dict:
    keep = set(ENV_KEEP)
    extra = os.environ.get(ENV_PASS_VAR, "")
    keep.update(n.strip() for n in extra.split(",") if n.strip())
    return {k: v for k, v in os.environ.items() if k in keep}


# Clients not yet reaped, killed at interpreter exit if a handler was never
# closed (a backstop: handler.close() is the normal path).
_live: weakref.WeakSet[McpClient] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for client in list(_live):
        try:
            client.kill_now()
        except Exception:
            pass


class McpClient:
    """One MCP server process and its JSON-RPC stream.

    Not thread-safe by itself: callers serialise use through ``acquire`` /
    ``release`` (see ``lexfast.effects.agent``).
    """

    def __init__(self, argv: list, executable: str, *, reply_cap: int,
                 env: dict | None = None, confine=None) -> None:
        self.argv = argv
        self.reply_cap = reply_cap
        fds = []
        try:
            for _ in range(3):
                fds += os.pipe2(os.O_CLOEXEC)
            in_r, in_w, out_r, out_w, err_r, err_w = fds
            self._proc = children.spawn(argv, executable, stdin=in_r, stdout=out_w, stderr=err_w,
                                      env=server_env() if env is None else env,
                                      confine=confine)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        self.pid = self._proc.pid
        self._in = in_w
        self._in_fd = in_w   # the descriptor to close (``_in`` is -1 once closed)
        self._out = out_r
        self._err = err_r
        self._fds_closed = False
        #: set by cancel(): the session closed, every request fails at once
        self.cancelled = threading.Event()
        for fd in (self._in, self._out, self._err):
            os.set_blocking(fd, False)
        self._buf = bytearray()
        self._scan = 0               # bytes of _buf already known to hold no newline
        self._pending_limit = OWED_CAP
        self._out_open = True
        self._err_open = True
        self._stderr = bytearray()
        self._next_id = 0
        self.protocol_version: str | None = None
        # use bookkeeping (see agent.py): the call lock serialises requests;
        # the state lock guards busy/closing/evicted.
        self.call_lock = threading.Lock()
        self.state_lock = threading.Lock()
        self.busy = False
        self.closing = False
        self.evicted = False
        self._reaped = False
        _live.add(self)

    # -- requests ------------------------------------------------------------
    def initialize(self, timeout: float) -> dict:
        result = self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": CLIENT_INFO,
        }, timeout, cancellable=False)
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        if version not in ACCEPTED_VERSIONS:
            raise McpError("mcp.rpc initialize: unsupported protocol version "
                           f"{json.dumps(version)} (this client speaks "
                           f"{', '.join(ACCEPTED_VERSIONS)})")
        self.protocol_version = version
        self.notify("notifications/initialized", None, timeout)
        return result

    def call_tool(self, name: str, arguments, timeout: float):
        return self.request("tools/call", {"name": name, "arguments": arguments}, timeout)

    def request(self, method: str, params, timeout: float, cancellable: bool = True):
        self._next_id += 1
        rid = self._next_id
        line = _encode({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        try:
            return self._exchange(line, method, rid, deadline)
        except McpError:
            if self.cancelled.is_set():  # killed by cancel(): say so, not "EOF"
                raise McpError("the handler is closed") from None
            raise
        except _Timeout:
            if cancellable:
                self._try_write(_encode({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                         "params": {"requestId": rid,
                                                    "reason": "client timeout"}}))
            raise McpError(f"mcp.rpc {method}: no reply within {_secs(timeout)} s"
                           + self._stderr_hint()) from None

    def notify(self, method: str, params, timeout: float) -> None:
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        try:
            self._exchange(_encode(msg), method, None, time.monotonic() + timeout)
        except McpError:
            if self.cancelled.is_set():
                raise McpError("the handler is closed") from None
            raise
        except _Timeout:
            raise McpError(f"mcp.rpc {method}: the server is not reading its stdin"
                           + self._stderr_hint()) from None

    # -- the stream ----------------------------------------------------------
    def _exchange(self, out: bytes, method: str, rid, deadline: float):
        """Write ``out``, then read until the response to ``rid`` (None: just
        write). Reads stdout and stderr all along, so neither pipe fills."""
        if self.cancelled.is_set():
            raise McpError("the handler is closed")
        if self._in < 0:
            raise McpError("mcp.rpc: write: the client is closed")
        if rid is not None and not self._out_open:
            raise McpError("mcp.rpc: server closed stdout" + self._exit_hint())
        pending = bytearray(out)
        # past this, the server keeps asking without reading our answers
        self._pending_limit = len(out) + OWED_CAP
        poller = select.poll()
        poller.register(self._in, _POLLOUT)
        if self._out_open:
            poller.register(self._out, _POLLIN)
        if self._err_open:
            poller.register(self._err, _POLLIN)
        writing = True
        while True:
            # answers we owe the server (ping) go out first
            if not writing and pending:
                poller.register(self._in, _POLLOUT)
                writing = True
            if rid is None and not pending:
                return None
            if self.cancelled.is_set():
                raise McpError("the handler is closed")
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise _Timeout
            try:  # in slices: cancel() from another thread ends the wait
                events = poller.poll(math.ceil(min(wait, 0.1) * 1000))
            except InterruptedError:
                continue
            for fd, _ev in events:
                if fd == self._in:
                    try:
                        n = os.write(fd, pending[:_CHUNK])
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        raise McpError(f"mcp.rpc: write: {os_error_text(e)}"
                                       + self._stderr_hint()) from None
                    del pending[:n]
                    if not pending:
                        poller.unregister(fd)
                        writing = False
                elif fd == self._err:
                    if self._read_stderr() < 0:
                        poller.unregister(fd)
                else:
                    try:
                        chunk = os.read(fd, _CHUNK)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        raise McpError(f"mcp.rpc: read: {os_error_text(e)}") from None
                    if not chunk:
                        self._out_open = False
                        poller.unregister(fd)
                        if rid is not None:
                            raise McpError("mcp.rpc: server closed stdout" + self._exit_hint())
                        continue
                    self._buf += chunk
                    found, value = self._take_lines(method, rid, pending)
                    if found:
                        return value

    def _take_lines(self, method: str, rid, pending: bytearray):
        buf = self._buf
        while True:
            nl = buf.find(b"\n", self._scan)
            if nl < 0:
                self._scan = len(buf)
                if len(buf) > self.reply_cap:
                    raise McpError(f"mcp.rpc {method}: reply line exceeds "
                                   f"{self.reply_cap} bytes")
                return False, None
            if nl > self.reply_cap:
                raise McpError(f"mcp.rpc {method}: reply line exceeds {self.reply_cap} bytes")
            line = bytes(buf[:nl])
            del buf[:nl + 1]
            self._scan = 0
            msg = _parse(line)
            if not isinstance(msg, dict):
                continue  # blank, not JSON, or not an object: stray output, skipped
            if "method" in msg:
                if "id" in msg:  # a request from the server
                    pending += _answer_server_request(msg)
                    if len(pending) > self._pending_limit:
                        raise McpError(f"mcp.rpc {method}: server sends requests "
                                       "without reading replies" + self._stderr_hint())
                continue  # a notification (log, progress, ...)
            if rid is None or not _same_id(msg.get("id"), rid):
                continue
            if "error" in msg:
                raise McpError(f"mcp.rpc {method}: {_encode_str(msg['error'])}", fatal=False)
            return True, msg.get("result")

    def _read_stderr(self) -> int:
        """Read one chunk of stderr: the byte count, 0 when nothing is there
        yet, -1 at EOF (stderr is then closed)."""
        try:
            chunk = os.read(self._err, _CHUNK)
        except BlockingIOError:
            return 0
        except OSError:
            chunk = b""
        if not chunk:
            self._err_open = False
            return -1
        ring = self._stderr
        ring += chunk
        if len(ring) > STDERR_KEEP:
            del ring[:len(ring) - STDERR_KEEP]
        return len(chunk)

    def _try_write(self, data: bytes) -> None:
        if self._in < 0:
            return
        try:
            os.write(self._in, data)  # small; skipped when the pipe is full
        except OSError:
            pass

    def stderr_tail(self, limit: int = 300) -> str:
        text = self._stderr.decode("utf-8", "replace").strip()
        if len(text) > limit:
            text = "…" + text[-limit:]
        return text.replace("\r", "\\r").replace("\n", "\\n")

    def _stderr_hint(self) -> str:
        tail = self.stderr_tail()
        return f" (server stderr: {tail})" if tail else ""

    def _exit_hint(self) -> str:
        code = None
        for _ in range(20):  # the process usually exits right after closing stdout
            code = self._exit_status()
            if code is not None:
                break
            time.sleep(0.005)
        # drain what stderr still holds: it usually says why. Bounded in
        # time and bytes: a server may keep stderr open (or keep writing)
        # after closing stdout.
        deadline = time.monotonic() + EXIT_DRAIN_S
        budget = EXIT_DRAIN_BYTES
        while self._err_open and budget > 0:
            n = self._read_stderr()
            if n < 0:
                break
            budget -= n
            wait = deadline - time.monotonic()
            if wait <= 0:
                break
            if n == 0:
                poller = select.poll()
                poller.register(self._err, _POLLIN)
                try:
                    poller.poll(math.ceil(wait * 1000))
                except InterruptedError:
                    pass
        parts = []
        if code is not None:
            parts.append(f"exit status {code}" if code >= 0 else f"killed by signal {-code}")
        tail = self.stderr_tail()
        if tail:
            parts.append(f"server stderr: {tail}")
        return f" ({'; '.join(parts)})" if parts else ""

    # -- process state -----------------------------------------------------
    def _exit_status(self):
        """The exit status if the process has exited, without reaping it (so
        its pid, and the group id, stay ours)."""
        return self._proc.status()

    def alive(self) -> bool:
        return not self._reaped and self._exit_status() is None

    def _signal_group(self, sig: int) -> None:
        # the leader unreaped (alive or a zombie) or its group still has
        # members: the group id cannot be anyone else's (see lexfast.effects.proc.children)
        self._proc.signal_group(sig)

    def kill_now(self) -> None:
        """SIGKILL the group (safe from any thread, leader reaped or not)."""
        self._signal_group(signal.SIGKILL)

    def cancel(self) -> None:
        """The session is closing: kill the server and its group now, and
        make the request in flight (on another thread) fail at once."""
        self.cancelled.set()
        self.kill_now()

    def _wait_exit(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        step = 0.002
        while self._exit_status() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._drain(min(step, left))
            step = min(step * 2, 0.05)
        return True

    def _drain(self, seconds: float) -> None:
        # keep reading while it shuts down, so it is never stuck writing
        fds = [fd for fd, is_open in ((self._out, self._out_open), (self._err, self._err_open))
               if is_open]
        if not fds:
            time.sleep(seconds)
            return
        poller = select.poll()
        for fd in fds:
            poller.register(fd, _POLLIN)
        try:
            events = poller.poll(math.ceil(seconds * 1000))
        except InterruptedError:
            return
        for fd, _ev in events:
            if fd == self._err:
                self._read_stderr()
            else:
                try:
                    chunk = os.read(fd, _CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    self._out_open = False

    def close(self, stdin_grace: float = STDIN_GRACE_S, term_grace: float = TERM_GRACE_S) -> None:
        """Stop and reap: close stdin, wait; SIGTERM the group, wait; SIGKILL.
        Idempotent. The caller must own the client (no request in flight)."""
        if self._reaped:
            return
        self._close_stdin()
        if not self._wait_exit(stdin_grace):
            self._signal_group(signal.SIGTERM)
            if not self._wait_exit(term_grace):
                self._signal_group(signal.SIGKILL)
        # whatever it left behind in its group goes too (the exited leader
        # still holds the group id until it is reaped)
        if not children.kill_group_and_reap(self._proc):  # stuck in the kernel: leave it to atexit
            return
        self._reaped = True
        _live.discard(self)
        self._out_open = self._err_open = False
        if not self._fds_closed:
            self._fds_closed = True
            for fd in (self._out, self._err):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _close_stdin(self) -> None:
        self._in = -1
        fd, self._in_fd = self._in_fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    @property
    def reaped(self) -> bool:
        return self._reaped


def close_many(clients, stdin_grace: float = STDIN_GRACE_S,
               term_grace: float = TERM_GRACE_S) -> None:
    """Stop several clients at once: the graces run concurrently, so closing
    a session with 16 servers takes one grace period, not sixteen."""
    clients = [c for c in clients if not c.reaped]
    for c in clients:
        c._close_stdin()
    deadline = time.monotonic() + stdin_grace
    for c in clients:
        c._wait_exit(max(0.0, deadline - time.monotonic()))
    stuck = [c for c in clients if c._exit_status() is None]
    for c in stuck:
        c._signal_group(signal.SIGTERM)
    deadline = time.monotonic() + term_grace
    for c in stuck:
        c._wait_exit(max(0.0, deadline - time.monotonic()))
    for c in clients:
        c.close(0.0, 0.0)


class _Timeout(Exception):
    pass


def _encode(obj) -> bytes:
    # ASCII on the wire: a lone surrogate from agent code becomes an
    # escape instead of a UnicodeEncodeError
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode("ascii")


def compact_json(obj) -> str:
    """Compact JSON text as serde_json writes it (UTF-8, not escaped), with
    ASCII escapes only when a lone surrogate could not be UTF-8."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, separators=(",", ":"))
    return text


_encode_str = compact_json


def _parse(line: bytes):
    """The JSON value of a line; None for stray output (blank, or not
    starting like a JSON-RPC object). A broken object fails as the
    reference's parse error: it was meant to be a message."""
    line = line.strip()
    if not line:
        return None
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as e:
        if not line.startswith(b"{"):
            return None
        head = line[:120].decode("utf-8", "replace")
        raise McpError(f"mcp.rpc: parse `{head}`: {json_error_text(e)}") from None


def _same_id(got, rid: int) -> bool:
    return type(got) is int and got == rid


def _answer_server_request(msg: dict) -> bytes:
    # ping must be answered; we offer no other client capability, so any
    # other request is refused rather than left to hang the server
    if msg.get("method") == "ping":
        return _encode({"jsonrpc": "2.0", "id": msg["id"], "result": {}})
    return _encode({"jsonrpc": "2.0", "id": msg["id"],
                    "error": {"code": -32601, "message": "Method not found"}})


def _secs(t: float) -> str:
    return f"{t:g}"


__all__ = ["McpClient", "McpError", "close_many", "compact_json", "server_env", "PROTOCOL_VERSION",
           "ACCEPTED_VERSIONS", "CLIENT_INFO"]
