"""The ``lexfast`` command: the Lex effect handler for any process (docs/design.md §7).

    lexfast run [FLAGS] FILE|-     dispatch the JSON-lines calls in FILE (or stdin)
    lexfast host [FLAGS]           the same over stdin/stdout while the peer talks
    lexfast info [--json]          core, versions, effect table, builtins
    lexfast --version

Requests, one JSON object per line (blank lines are skipped)::

    {"id": 1, "kind": "time", "op": "now", "args": []}     # id optional, any JSON;
                                                            # args optional, default []
    {"id": 2, "budget": 10}                                 # handler.note_call_budget(10)

Responses, exactly one line per request, ``id`` echoed when the request has one::

    {"id": 1, "ok": <value>}
    {"id": 2, "error": "<message>", "type": "PolicyDenied", "effect": "net"}

``type`` is ``PolicyDenied`` (plus ``effect`` and ``path``/``host``/``cmd``
where set), ``BudgetExceeded`` (plus ``requested``, ``used``, ``ceiling``),
``EffectError`` or ``ProtocolError`` (a line that is not a request: bad JSON,
wrong shape, too long; plus ``line``, its 1-based number). Values use the
codec of ``lexfast.codec``. A bad line gets its error line and the run goes
on; EOF exits 0.

``id`` is held to the codec's limits for values (nesting at most
``codec.MAX_DEPTH``, Ints signed 64-bit): a request whose ``id`` cannot be
echoed is not run and gets a ``ProtocolError`` without ``id``. No exception
of one line stops the loop (it becomes a ``ProtocolError`` reply); only
``KeyboardInterrupt``, ``SystemExit`` and SIGTERM end the run early.

``io.print`` lines are framed: each is one line ``io.print: <text>`` with line
breaks and control characters escaped, so a program cannot print something
that reads as a reply, a log line or one of lexfast's own lines. In ``run``
mode they go to stdout between the response lines (a reply line always
starts with ``{``, a print line never does); in ``host`` mode stdout carries
protocol lines only and prints go to stderr (as do logs).

``approval.request`` is refused unless ``--approval`` says who answers:
``prompt`` (``run FILE`` only) asks on the terminal, the prompt on stderr and
the answer read from stdin; ``peer`` (``host`` only) writes an approval line
``{"approval": N, "scope": .., "reason": ..}`` to stdout and waits for the
peer's answer line ``{"approval": N, "answer": "text"}`` (approved) or
``{"approval": N, "deny": "reason"}``; requests the peer sends meanwhile are
kept and answered after it, in order.

In ``host`` mode a closure is the peer's ``{"$closure": TOKEN}`` value and
the closure hook asks the peer: ``{"call": N, "closure": TOKEN, "args":
[..]}`` out, ``{"call": N, "ok": value}`` or ``{"call": N, "error": msg}``
back within ``--closure-timeout`` (:class:`PeerClosures`).

``io.readline`` reads stdin only under ``run FILE``; where stdin carries the
requests (``run -``, ``host``) it is at end of input, so a program can never
read (or swallow) a request line. ``lexfast run FILE -- a b`` gives the
program ``io.argv`` = ``["a", "b"]``.

At start, each granted effect kind whose scope list is empty (so open to
anything there: ``Policy.wildcard_scopes``) is named on stderr with the flags
that would scope it, one ``lexfast run: warning: ...`` line per kind.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import signal
import sys
import threading
import time

from .._version import __version__
from ..errors import BudgetExceeded, EffectError, PolicyDenied, ReplayDivergence
from ..handler import DefaultHandler, Limits
from ..kernel import COMPILED, err, ok
from ..policy import KNOWN_EFFECTS, Policy, parse_budget_pool, parse_flags
from ..values import INT_MAX, INT_MIN, one_line
from .codec import MAX_DEPTH, CodecError, dumps_json, from_json, parse_json, to_json

#: Longest request line accepted (bytes, without the newline). io.write
#: contents travel inline, so this is generous; a longer line is skipped with
#: a ProtocolError, never buffered whole.
MAX_LINE_BYTES = 16 << 20

_REQUEST_KEYS = frozenset(("id", "kind", "op", "args"))
_BUDGET_KEYS = frozenset(("id", "budget"))
_SURROGATES = re.compile("[\ud800-\udfff]")
_EXIT_USAGE = 2
_EXIT_SIGINT = 130


class _UsageError(Exception):
    pass


class _Terminated(BaseException):
    """SIGTERM, turned into an unwinding exception so the handler is closed."""


# -- one request ------------------------------------------------------------

def _error(message: str, type_: str, **extra) -> dict:
    out = {"error": message, "type": type_}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _effect_error(e: EffectError) -> dict:
    if isinstance(e, ReplayDivergence):
        return _error(str(e), "ReplayDivergence", step=e.step)
    if isinstance(e, PolicyDenied):
        return _error(str(e), "PolicyDenied", effect=e.effect, path=e.path, host=e.host,
                      cmd=e.cmd)
    if isinstance(e, BudgetExceeded):
        return _error(str(e), "BudgetExceeded", requested=e.requested, used=e.used,
                      ceiling=e.ceiling)
    return _error(str(e), "EffectError")


def _field_kind(x) -> str:
    return {type(None): "null", bool: "a bool", int: "a number", float: "a number",
            str: "a string", list: "a list", dict: "an object"}.get(type(x), type(x).__name__)


def handle_request(handler, req) -> dict:
    """The response (without ``id``) for one parsed request object."""
    if type(req) is not dict:
        return _error(f"a request must be a JSON object, got {_field_kind(req)}", "ProtocolError")
    if "budget" in req:
        extra = sorted(set(req) - _BUDGET_KEYS)
        if extra:
            return _error(f"a budget request takes only `budget` and `id`, not `{extra[0]}`",
                          "ProtocolError")
        cost = req["budget"]
        if type(cost) is not int:
            return _error(f"`budget` must be an integer, got {_field_kind(cost)}",
                          "ProtocolError")
        try:
            handler.note_call_budget(cost)
        except EffectError as e:
            return _effect_error(e)
        except (OverflowError, ValueError, TypeError) as e:
            return _error(f"note_call_budget: {e}", "EffectError")
        return {"ok": None}
    if "approval" in req:
        return _error("an approval answer, but no approval.request is waiting",
                      "ProtocolError")
    extra = sorted(set(req) - _REQUEST_KEYS)
    if extra:
        return _error(f"unknown request field `{extra[0]}` (expected kind, op, args, id)",
                      "ProtocolError")
    kind, op = req.get("kind"), req.get("op")
    for name, v in (("kind", kind), ("op", op)):
        if name not in req:
            return _error(f"the request has no `{name}` (expected kind, op, args, id)",
                          "ProtocolError")
        if type(v) is not str or not v:
            what = "an empty string" if v == "" else _field_kind(v)
            return _error(f"`{name}` must be a non-empty string, got {what}", "ProtocolError")
    raw_args = req.get("args", [])
    if type(raw_args) is not list:
        return _error(f"`args` must be a list, got {_field_kind(raw_args)}", "ProtocolError")
    try:
        args = from_json(raw_args)
    except CodecError as e:
        return _error(f"{kind}.{op}: bad args: {e}", "ProtocolError")
    try:
        value = handler.dispatch(kind, op, args)
    except EffectError as e:
        return _effect_error(e)
    try:
        return {"ok": to_json(value)}
    except CodecError as e:
        return _error(f"{kind}.{op}: the result cannot be written as JSON: {e}", "EffectError")


def _bad_id(id_) -> str | None:
    """Why ``id`` cannot be echoed under the codec's limits, or None. Any
    JSON is an id (tags are not decoded), but no deeper than ``MAX_DEPTH``
    containers and with Ints in signed 64-bit, as for values."""
    stack = [(id_, 0)]
    while stack:
        o, depth = stack.pop()
        t = type(o)
        if t is int:
            if not INT_MIN <= o <= INT_MAX:
                return "an Int in `id` is outside signed 64-bit"
        elif t is list or t is dict:
            if depth >= MAX_DEPTH:
                return f"`id` is nested deeper than {MAX_DEPTH} levels"
            stack.extend((x, depth + 1) for x in (o if t is list else o.values()))
    return None


def respond(handler, line: bytes, lineno: int | None = None) -> str | None:
    """The response line (no newline) for one request line, or None for a
    blank line."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return _dump(_error(f"line is not valid UTF-8 (byte {e.start})", "ProtocolError",
                            line=lineno))
    if lineno == 1 and text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip(" \t\r\n"):  # JSON's whitespace
        return None
    try:
        req = parse_json(text)
    except CodecError as e:
        return _dump(_error(str(e), "ProtocolError", line=lineno))
    has_id = type(req) is dict and "id" in req
    problem = _bad_id(req["id"]) if has_id else None
    if problem is not None:  # refused before anything runs: the reply could not say which
        return _dump(_error(f"{problem}; the request was not run", "ProtocolError",
                            line=lineno))
    resp = handle_request(handler, req)
    if resp.get("type") == "ProtocolError" and lineno is not None:
        resp["line"] = lineno
    if has_id:
        resp = {"id": req["id"], **resp}
    return _dump(resp)


def _dump(resp: dict) -> str:
    """One JSON line for ``resp``; never raises."""
    try:
        return dumps_json(resp)
    except CodecError:
        pass
    # ``id`` and ``ok`` were checked on the way; an error message may still
    # carry a lone surrogate (a path decoded with surrogateescape).
    fixed = {k: _SURROGATES.sub("\ufffd", v) if type(v) is str else v
             for k, v in resp.items()}
    try:
        return dumps_json(fixed)
    except CodecError:
        pass
    fixed.pop("id", None)
    fixed.pop("ok", None)
    try:
        return dumps_json(fixed)
    except CodecError:
        return dumps_json(_error("the reply could not be written as JSON", "ProtocolError"))


def _internal_error(e: Exception, lineno: int | None) -> str:
    """The reply to a line whose handling raised: the loop goes on."""
    try:
        what = one_line(f"{type(e).__name__}: {e}")[:200]
    except Exception:
        what = "an exception"
    return _dump(_error(f"internal error on this line: {what}", "ProtocolError",
                        line=lineno))


# -- the request loop -------------------------------------------------------

def _read_lines(stream, limit: int):
    """Yield ``(line, too_long)`` for each line of a binary stream, holding
    at most ``limit`` + 1 bytes of one line at a time."""
    while True:
        chunk = stream.readline(limit + 1)
        if not chunk:
            return
        if chunk.endswith(b"\n"):
            body = chunk[:-1]
            yield (b"", True) if len(body) > limit else (body, False)
            continue
        if len(chunk) <= limit:  # last line, no newline
            yield chunk, False
            return
        while True:  # skip the rest of the over-long line
            rest = stream.readline(1 << 16)
            if not rest or rest.endswith(b"\n"):
                break
        yield b"", True
        if not rest:
            return


class _Out:
    """Lines to stdout (or stderr) as UTF-8, flushed one by one, in order."""

    def __init__(self, stream: str = "stdout") -> None:
        self._lock = threading.Lock() if stream == "stdout" else _stderr_lock()
        self._stream = stream

    def line(self, s: str) -> None:
        with self._lock:
            out = getattr(sys, self._stream)
            buf = getattr(out, "buffer", None)
            if buf is not None:
                out.flush()
                buf.write(s.encode("utf-8", "replace") + b"\n")
                buf.flush()
            else:
                out.write(s + "\n")
                out.flush()


def _stderr_lock():
    from ..effects.log import STDERR_LOCK
    return STDERR_LOCK


#: What starts every io.print line on the command's streams.
PRINT_PREFIX = "io.print: "


class FramedPrintSink:
    """``io.print`` for the ``lexfast`` command: each print is one line
    ``io.print: <text>``, line breaks and control characters escaped
    (``values.one_line``), written under the same lock as the stream's other
    lines. No print can begin a reply line (``{``), a log line (``[`` or
    ``{``), a ``net.serve: listening on`` line or a ``lexfast ...:`` message."""

    def __init__(self, out: _Out) -> None:
        self._out = out

    def print_line(self, s: str) -> None:
        self._out.line(PRINT_PREFIX + one_line(s))


class _Lines:
    """The request stream's lines, numbered: ``(lineno, line, too_long)``.
    Lines read ahead while an approval waits for the peer's answer are kept
    (bounded) and come out of the iterator first, in order.

    Every read holds ``baton`` (the loop, an approval waiting, a closure call
    waiting on a server's worker: one reader at a time), and each line read
    goes first to ``intercept`` (the closure calls' answers), which may
    consume it."""

    #: lines kept while an approval waits (count, bytes)
    MAX_DEFERRED = 10_000
    MAX_DEFERRED_BYTES = 64 << 20

    def __init__(self, stream, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._source = _read_lines(stream, limit)
        self._deferred: list = []
        self._deferred_bytes = 0
        self._lineno = 0
        self.baton = threading.RLock()
        self.intercept = None
        self.ended = False

    def __iter__(self):
        return self

    def __next__(self):
        with self.baton:
            if self._deferred:
                item = self._deferred.pop(0)
                self._deferred_bytes -= len(item[1])
                return item
            return self.read_ahead_or_stop()

    def read_ahead_or_stop(self, timeout: float | None = None):
        with self.baton:
            while True:
                if timeout is not None:
                    wait = getattr(self._stream, "wait_line", None)
                    if wait is not None and not wait(timeout, self._limit + 1):
                        return _NO_LINE_YET
                try:
                    line, too_long = next(self._source)
                except StopIteration:
                    self.ended = True
                    raise
                self._lineno += 1
                item = (self._lineno, line, too_long)
                if self.intercept is not None and self.intercept(item):
                    continue
                return item

    def read_ahead(self, timeout: float | None = None):
        """The next line from the stream itself, or None at its end (or
        ``_NO_LINE_YET`` when ``timeout`` passed first)."""
        try:
            return self.read_ahead_or_stop(timeout)
        except StopIteration:
            return None

    def next_line(self, timeout: float):
        """A closure call's read: a kept line first, else the stream's next
        (None at its end, ``_NO_LINE_YET`` after ``timeout``)."""
        with self.baton:
            if self._deferred:
                item = self._deferred.pop(0)
                self._deferred_bytes -= len(item[1])
                return item
            return self.read_ahead(timeout)

    def defer(self, item) -> bool:
        """Keep ``item`` for the loop; False when the buffer is full."""
        if (len(self._deferred) >= self.MAX_DEFERRED
                or self._deferred_bytes + len(item[1]) > self.MAX_DEFERRED_BYTES):
            return False
        self._deferred.append(item)
        self._deferred_bytes += len(item[1])
        return True


_NO_LINE_YET = object()


class _FdStream:
    """``lexfast host``'s stdin read from its descriptor with a buffer of our
    own, so a reader can wait for a whole line with a timeout (``select``)
    and a closure call waiting on the peer stays bounded."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buf = bytearray()
        self._eof = False
        self._scanned = 0  # no newline in _buf[:_scanned]

    def _fill(self) -> None:
        data = os.read(self._fd, 1 << 16)
        if data:
            self._buf += data
        else:
            self._eof = True

    def _ready(self, n: int) -> bool:
        if self._eof or len(self._buf) >= n:
            return True
        if self._buf.find(b"\n", self._scanned, n) >= 0:
            return True
        self._scanned = len(self._buf)
        return False

    def wait_line(self, timeout: float, n: int) -> bool:
        """Whether a line (or ``n`` bytes, or the end) is buffered within ``timeout``."""
        import select
        deadline = time.monotonic() + timeout
        while not self._ready(n):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                readable, _, _ = select.select([self._fd], [], [], left)
            except InterruptedError:
                continue
            if readable:
                self._fill()
        return True

    def readline(self, n: int) -> bytes:
        while not self._ready(n):
            self._fill()
        end = self._buf.find(b"\n", 0, n)
        take = end + 1 if end >= 0 else min(n, len(self._buf))
        out = bytes(self._buf[:take])
        del self._buf[:take]
        self._scanned = 0
        return out


def serve(handler, stream, max_line: int = MAX_LINE_BYTES, progress=None,
          out: _Out | None = None, lines: _Lines | None = None) -> None:
    """Answer each line of ``stream``: one reply line each (none for a
    blank line). No exception of one line ends the loop; only
    ``BaseException``s that are not ``Exception`` (KeyboardInterrupt,
    SystemExit, SIGTERM's) and errors writing stdout do."""
    if out is None:
        out = _Out()
    if lines is None:
        lines = _Lines(stream, max_line)
    for lineno, line, too_long in lines:
        try:
            if too_long:
                resp = _dump(_error(f"line longer than {max_line} bytes", "ProtocolError",
                                    line=lineno))
            else:
                resp = respond(handler, line, lineno)
        except Exception as e:  # a bug for this line only: answer it and go on
            resp = _internal_error(e, lineno)
        if resp is not None:
            out.line(resp)
        if progress is not None:
            progress(lineno)
    if progress is not None:
        progress(None)


class _Progress:
    """A one-line progress bar on a terminal's stderr, redrawn at most ten
    times a second: bytes read of the file's size, and lines done."""

    def __init__(self, stream, total: int, err=None) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.err = err or sys.stderr
        self.last = 0.0
        self.drawn = False

    def __call__(self, lineno) -> None:
        now = time.monotonic()
        if lineno is not None and now - self.last < 0.1:
            return
        self.last = now
        try:
            done = min(self.stream.tell(), self.total)
        except (OSError, ValueError):
            return
        if lineno is None:
            if self.drawn:
                self.err.write("\r\x1b[K")
                self.err.flush()
            return
        width = 30
        filled = int(width * done / self.total)
        self.err.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                       f"{100 * done // self.total:3d}%  {lineno} lines")
        self.err.flush()
        self.drawn = True


# -- argument parsing ---------------------------------------------------------

def _policy_from(argv: list[str], parser: argparse.ArgumentParser):
    try:
        policy, rest = parse_flags(argv)
    except ValueError as e:
        parser.error(str(e))
    return policy, rest


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--permissive", action="store_true",
                   help="grant every effect kind (scopes and budget still apply)")
    p.add_argument("--read-root", metavar="DIR",
                   help="io.read paths are joined onto DIR and cannot leave it")
    p.add_argument("--max-line-bytes", metavar="N", type=int, default=MAX_LINE_BYTES,
                   help=f"longest request line accepted (default {MAX_LINE_BYTES})")
    p.add_argument("--stats", action="store_true",
                   help="print per-effect counters (calls, denials, errors) to stderr on exit")
    p.add_argument("--timing", action="store_true",
                   help="with --stats: also time each dispatch (total and max)")
    p.add_argument("--approval", choices=("refuse", "prompt", "peer"), default="refuse",
                   help="who answers approval.request: nobody (refuse, the default), "
                   "the terminal (prompt: run FILE only) or the peer (peer: host only)")
    p.add_argument("--closure-timeout", metavar="SECONDS", type=float,
                   default=CLOSURE_TIMEOUT_S,
                   help="host: how long a closure call (net.serve_fn's handler, ...) waits "
                   f"for the peer's answer (default {CLOSURE_TIMEOUT_S:g})")
    p.add_argument("--no-confine", action="store_true",
                   help="run children (proc, process, MCP servers) without the kernel "
                   "confinement (Landlock, seccomp) derived from the policy")
    p.add_argument("--record", metavar="TRACE",
                   help="write every effect of the run to TRACE (JSON lines; secrets scrubbed)")
    p.add_argument("--replay", metavar="TRACE",
                   help="answer every effect from TRACE, performing none")
    p.add_argument("--override", metavar="N=JSON", action="append", default=[],
                   help="with --replay: answer step N with this value instead (repeatable)")
    p.add_argument("--replay-then-live", action="store_true",
                   help="with --replay: perform the calls past the trace's end")


_PROTOCOL_HELP = """\
requests, one JSON object per line (blank lines skipped):
  {"id"?: any, "kind": str, "op": str, "args"?: [..]}
  {"id"?: any, "budget": N}                      note_call_budget(N)
one reply line each, id echoed:
  {"id"?: .., "ok": value}
  {"id"?: .., "error": message, "type": PolicyDenied|BudgetExceeded|EffectError|
   ProtocolError, + effect/path/host/cmd/requested/used/ceiling/line where set}
values: JSON as itself (object = Record), else {"$bytes": base64}, {"$tuple": [..]},
  {"$map": [[k, v], ..]}, {"$variant": name, "args": [..]}, {"$float": "nan"|"inf"|"-inf"},
  {"$record": {..}} (a Record with $-keys), {"$closure": any} (host: the peer's closure)
"""

_POLICY_HELP = """policy flags (as `lex run`; default: nothing granted):
  --allow-effects a,b     effect kinds to grant (repeatable, accumulates)
  --allow-fs-read P       a path read effects may touch (repeatable; none = any)
  --allow-fs-write P      a path write effects may touch (repeatable; none = any)
  --allow-net-host H      a host net effects may reach (repeatable; none = any)
  --allow-proc a,b        binaries proc effects may run (repeatable; none = any)
  --allow-approval a,b    approval.request scopes (repeatable; none = any)
  --budget N              ceiling for {"budget": N} requests (integer >= 0)
  --budget-pool URL       share that ceiling with every process naming the same
                          Redis pool: redis[s]://[user:password@]host:port/key
                          (see `lexfast budget-pool --help`)
"""


# -- approval ---------------------------------------------------------------

_DENIED = "denied by operator"
_CONSUMED = object()


class PromptApprovalSink:
    """``--approval prompt`` (``lexfast run FILE``): the reference's
    ``StdinApprovalSink``, with the prompt on stderr (stdout carries replies)
    and the program's scope and reason escaped onto one line, so a program
    cannot write terminal escapes or fake a prompt. Blank, ``n`` or ``no``
    (or end of input) denies; anything else is the approved answer."""

    def __init__(self, handler) -> None:
        self._handler = handler

    def __call__(self, scope: str, reason: str):
        session = self._handler.session
        with session.input_lock:
            from ..effects.log import STDERR_LOCK
            with STDERR_LOCK:
                sys.stderr.write(f"[approval:{one_line(scope)}] {one_line(reason)}  "
                                 "(blank/n to deny) > ")
                sys.stderr.flush()
            stream = session.input if session.input is not None else sys.stdin.buffer
            try:
                raw = stream.readline(session.limits.readline_bytes + 1)
            except (OSError, ValueError):
                raw = b""
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        answer = raw.strip()
        if not answer or answer.lower() in ("n", "no"):
            return err(_DENIED)
        return ok(answer)


class PeerApprovalSink:
    """``--approval peer`` (``lexfast host``): an approval line to the peer,
    then the peer's answer line. Other lines that arrive meanwhile are kept
    for the loop (bounded: past the bound, the approval is refused)."""

    def __init__(self, lines: _Lines, out: _Out) -> None:
        self._lines = lines
        self._out = out
        self._lock = threading.Lock()
        self._n = 0

    def __call__(self, scope: str, reason: str):
        # one approval at a time owns the stream (the baton: a closure call
        # waiting meanwhile must not read the approval's answer)
        with self._lock, self._lines.baton:
            self._n += 1
            n = self._n
            self._out.line(dumps_json({"approval": n, "scope": scope, "reason": reason}))
            while True:
                item = self._lines.read_ahead()
                if item is None:
                    return err("approval.request: the peer closed its input without answering")
                answer = self._answer(item, n)
                if answer is _CONSUMED:
                    continue
                if answer is not None:
                    return answer
                if not self._lines.defer(item):
                    return err("approval.request: the peer sent too many lines without "
                               "answering")

    def _answer(self, item, n: int):
        """The answer ``item`` carries for approval ``n``; None for any other
        line (kept for the loop). A malformed or stale answer gets its
        ProtocolError and the wait goes on (``_CONSUMED``)."""
        lineno, line, too_long = item
        if too_long:
            return None
        try:
            req = parse_json(line.decode("utf-8"))
        except (UnicodeDecodeError, CodecError):
            return None
        if type(req) is not dict or "approval" not in req:
            return None
        problem = None
        if req["approval"] != n or type(req["approval"]) is not int:
            problem = f"no approval.request {one_line(str(req['approval']))[:40]} is waiting (it is {n})"
        elif set(req) not in ({"approval", "answer"}, {"approval", "deny"}):
            problem = 'an approval answer is {"approval": N, "answer": str} or {"approval": N, "deny": str}'
        elif type(req.get("answer", req.get("deny"))) is not str:
            problem = "`answer` / `deny` must be a string"
        if problem is not None:
            self._out.line(_dump(_error(problem, "ProtocolError", line=lineno)))
            return _CONSUMED
        if "answer" in req:
            return ok(req["answer"])
        return err(req["deny"] or _DENIED)


# -- closures (lexfast host) ---------------------------------------------------

#: how long a closure call waits for the peer's answer by default (seconds)
CLOSURE_TIMEOUT_S = 60.0
_CALL_KEYS = frozenset(("call", "ok", "error"))


class _Call:
    __slots__ = ("event", "value", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value = None
        self.error: str | None = None


class PeerClosures:
    """``lexfast host``'s closure hook (``DefaultHandler(invoke=...)``): a
    closure is the peer's ``{"$closure": token}`` value; calling it writes
    ``{"call": N, "closure": token, "args": [..]}`` to stdout and waits (at
    most ``timeout`` seconds) for ``{"call": N, "ok": value}`` or ``{"call":
    N, "error": "message"}``. While it waits, the request lines the peer
    sends (the closure's own effects) are answered on the calling fork, so
    the peer can run the closure's body; several calls may wait at once (a
    server's workers), each answer goes to its own call."""

    def __init__(self, lines: _Lines, out: _Out, timeout: float = CLOSURE_TIMEOUT_S) -> None:
        self._lines = lines
        self._out = out
        self._timeout = timeout
        self._lock = threading.Lock()
        self._n = 0
        self._pending: dict[int, _Call] = {}
        lines.intercept = self._intercept

    def __call__(self, closure, handler, args):
        from .codec import PeerClosure
        if not isinstance(closure, PeerClosure):
            raise EffectError("lexfast host: a closure must be the peer's "
                              f'{{"$closure": ...}} value, got {type(closure).__name__}')
        try:
            wire_args = [to_json(a) for a in args]
        except CodecError as e:
            raise EffectError(f"closure call: an argument cannot be written as JSON: {e}") from None
        call = _Call()
        with self._lock:
            self._n += 1
            n = self._n
            self._pending[n] = call
        try:
            self._out.line(dumps_json({"call": n, "closure": closure.token, "args": wire_args}))
            self._wait(n, call, handler)
        finally:
            with self._lock:
                self._pending.pop(n, None)
        if call.error is not None:
            raise EffectError(call.error)
        return call.value

    def _wait(self, n: int, call: _Call, handler) -> None:
        lines = self._lines
        deadline = time.monotonic() + self._timeout
        while not call.event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                call.error = (f"closure call {n}: the peer did not answer within "
                              f"{self._timeout:g} s")
                return
            if lines.ended:
                call.error = f"closure call {n}: the peer closed its input without answering"
                # nobody is left to answer closures: the session's servers stop
                # (the loop then ends at the same end of input)
                handler.shutdown()
                return
            if not lines.baton.acquire(timeout=min(left, 0.05)):
                continue
            try:
                if call.event.is_set():
                    return
                item = lines.next_line(min(left, 0.25))
            finally:
                lines.baton.release()
            if item is _NO_LINE_YET or item is None:
                continue
            # the peer running the closure's body: its effects, on this fork
            lineno, line, too_long = item
            try:
                if too_long:
                    resp = _dump(_error(f"line longer than {lines._limit} bytes",
                                        "ProtocolError", line=lineno))
                else:
                    resp = respond(handler, line, lineno)
            except Exception as e:  # noqa: BLE001 - a bug for this line only
                resp = _internal_error(e, lineno)
            if resp is not None:
                self._out.line(resp)

    def _intercept(self, item) -> bool:
        """Take an answer line ``{"call": N, ...}`` off the stream."""
        lineno, line, too_long = item
        if too_long or b'"call"' not in line:
            return False
        try:
            msg = parse_json(line.decode("utf-8"))
        except (UnicodeDecodeError, CodecError):
            return False
        if type(msg) is not dict or "call" not in msg or "kind" in msg or "budget" in msg:
            return False
        n = msg["call"]
        problem = None
        with self._lock:
            call = self._pending.get(n) if type(n) is int else None
        if call is None:
            problem = f"no closure call {one_line(str(n))[:40]} is waiting"
        elif not set(msg) <= _CALL_KEYS or len(msg) != 2:
            problem = ('a closure answer is {"call": N, "ok": value} or '
                       '{"call": N, "error": "message"}')
        elif "error" in msg:
            if type(msg["error"]) is not str:
                problem = "`error` must be a string"
            else:
                call.error = f"closure call {n} failed in the peer: {msg['error']}"
        else:
            try:
                call.value = from_json(msg["ok"])
            except CodecError as e:
                call.error = f"closure call {n}: the peer's answer is not a Lex value: {e}"
        if problem is not None:
            self._out.line(_dump(_error(problem, "ProtocolError", line=lineno)))
        else:
            call.event.set()
        return True


def _parsers():
    top = argparse.ArgumentParser(
        prog="lexfast", description="The Lex effect handler: dispatch JSON-lines effect "
        "calls under a capability policy.")
    top.add_argument("--version", action="version", version=_version_line())
    sub = top.add_subparsers(dest="command", metavar="{run,host,info,help,trace}")
    fmt = argparse.RawDescriptionHelpFormatter
    run = sub.add_parser("run", help="dispatch the JSON-lines calls in FILE (- for stdin)",
                         usage="lexfast run [POLICY FLAGS] [--permissive] [--read-root DIR] "
                         "[--max-line-bytes N] [--stats [--timing]] [--approval MODE] [--no-confine] "
                         "FILE|- [-- PROGRAM ARGS]",
                         description=_PROTOCOL_HELP + "io.print writes `io.print: TEXT` lines "
                         "(line breaks escaped) to stdout, between the reply lines.",
                         epilog=_POLICY_HELP, formatter_class=fmt)
    run.add_argument("file", metavar="FILE|-", help="a JSON-lines file, or - for stdin")
    _common(run)
    host = sub.add_parser("host", help="serve JSON-lines calls on stdin/stdout",
                          usage="lexfast host [POLICY FLAGS] [--permissive] [--read-root DIR] "
                          "[--max-line-bytes N] [--stats [--timing]] [--approval MODE] [--no-confine] "
                          "[-- PROGRAM ARGS]",
                          description=_PROTOCOL_HELP + "stdout carries reply lines only: "
                          "io.print (`io.print: TEXT` lines, line breaks escaped) and "
                          "logs go to stderr. With --approval peer, approval.request writes "
                          '{"approval": N, "scope": .., "reason": ..} and waits for '
                          '{"approval": N, "answer": str} or {"approval": N, "deny": str}. '
                          'A closure is {"$closure": TOKEN}; calling it writes '
                          '{"call": N, "closure": TOKEN, "args": [..]} and waits for '
                          '{"call": N, "ok": value} or {"call": N, "error": str}.',

                          epilog=_POLICY_HELP, formatter_class=fmt)
    _common(host)
    info = sub.add_parser("info", help="which core is loaded, library versions, the effect table and the builtins")
    info.add_argument("--json", action="store_true", help="one JSON object")
    helpp = sub.add_parser("help", help="describe an op (KIND.OP) or every op of a kind (KIND): "
                           "signature, gate, doc (the text of docs/effects.md)")
    helpp.add_argument("target", nargs="?", metavar="KIND.OP|KIND")
    trace = sub.add_parser("trace", help="inspect traces written by --record")
    tsub = trace.add_subparsers(dest="trace_command", metavar="{show,diff}")
    show = tsub.add_parser("show", help="a table of a trace's steps (--stats: per op)")
    show.add_argument("file", metavar="TRACE")
    show.add_argument("--stats", action="store_true", help="calls, raised and time per op")
    tdiff = tsub.add_parser("diff", help="the first step where two traces differ")
    tdiff.add_argument("a", metavar="A")
    tdiff.add_argument("b", metavar="B")
    bpool = sub.add_parser(
        "budget-pool", help="inspect or reset a distributed budget pool (--budget-pool URL)",
        description="A pool's ceiling is set by the first process that names it and its "
        "remainder outlives every run: `show` prints both, `reset` deletes the pool so the "
        "next process sets the ceiling afresh. URL: redis[s]://[user:password@]host:port/key "
        "(the password is never printed).")
    bsub = bpool.add_subparsers(dest="pool_command", metavar="{show,reset}")
    bshow = bsub.add_parser("show", help="the pool's ceiling and remainder (JSON)")
    bshow.add_argument("url", metavar="URL")
    breset = bsub.add_parser("reset", help="delete the pool")
    breset.add_argument("url", metavar="URL")
    return top, {"run": run, "host": host, "info": info, "help": helpp, "trace": trace,
                 "budget-pool": bpool}


def _budget_pool(ns, parser) -> int:
    """``lexfast budget-pool show|reset URL``."""
    from ..budget_pool import pool_status, reset_pool
    if ns.pool_command is None:
        parser.error("a subcommand is required: show or reset")
    try:
        where = parse_budget_pool(ns.url).redacted
    except (TypeError, ValueError) as e:
        parser.error(str(e).replace("Policy: budget_pool", "URL"))
    try:
        if ns.pool_command == "show":
            status = pool_status(ns.url)
            print(json.dumps({"pool": where, "exists": status is not None, **(status or {})}))
        else:
            existed = reset_pool(ns.url)
            print(f"{where}: {'deleted' if existed else 'did not exist'}")
    except EffectError as e:
        print(f"lexfast budget-pool: {e}", file=sys.stderr)
        return _EXIT_USAGE
    except Exception as e:  # the Redis client's errors: never its traceback
        print(f"lexfast budget-pool: {where}: {type(e).__name__}: "
              f"{_redact(str(e), ns.url)}", file=sys.stderr)
        return 1
    return 0


def _redact(text: str, url: str) -> str:
    password = parse_budget_pool(url).password
    return text.replace(password, "***") if password else text


def _trace(ns, parser) -> int:
    """``lexfast trace show|diff``: 0, or 1 when ``diff`` finds a difference."""
    from ..record import diff, show
    if ns.trace_command is None:
        parser.error("a subcommand is required: show or diff")
    try:
        if ns.trace_command == "show":
            for line in show(ns.file, ns.stats):
                print(line)
            return 0
        first = diff(ns.a, ns.b)
    except EffectError as e:
        print(f"lexfast trace: {e}", file=sys.stderr)
        return _EXIT_USAGE
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    print(first if first is not None else "the traces agree")
    return 0 if first is None else 1


def _version_line() -> str:
    return f"lexfast {__version__} ({'compiled' if COMPILED else 'pure-Python'} core)"


# -- info -------------------------------------------------------------------

def _lib_versions() -> dict:
    out: dict = {}

    def attempt(name, fn):
        try:
            out[name] = fn()
        except Exception as e:  # not installed, or broken: say so, don't fail
            out[name] = f"unavailable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"

    def lmdb_v():
        import lmdb
        return ".".join(str(x) for x in lmdb.version())

    def lmdb_pkg():
        import lmdb
        return lmdb.__version__

    def curl_v():
        import pycurl
        return pycurl.version_info()[1]

    def pycurl_v():
        import pycurl
        return pycurl.version.split()[0].split("/", 1)[-1]

    def uvloop_v():
        import uvloop
        return uvloop.__version__

    def ws_v():
        import websockets
        return websockets.__version__

    def sqlite_v():
        import sqlite3
        return sqlite3.sqlite_version

    attempt("lmdb", lmdb_pkg)
    attempt("liblmdb", lmdb_v)
    attempt("pycurl", pycurl_v)
    attempt("libcurl", curl_v)
    attempt("uvloop", uvloop_v)
    attempt("websockets", ws_v)
    attempt("sqlite", sqlite_v)

    def redis_v():  # the redis extra (redis.*)
        import redis
        return redis.__version__

    def hiredis_v():
        import hiredis
        return hiredis.__version__

    attempt("redis-py", redis_v)
    attempt("hiredis", hiredis_v)
    return out


def info(as_json: bool) -> int:
    from .. import builtins, kernel
    from ..table import default_table, effect_names

    names = effect_names()
    pure = {kind: len(ops) for kind, ops in sorted(builtins.TABLE.items())}
    # The kinds as --allow-effects names them (a row's gate), not the
    # namespaces a VM dispatches on (`process.run` is gated by `proc`).
    gates: dict[str, int] = dict.fromkeys(KNOWN_EFFECTS, 0)
    ungated = 0
    for row in default_table().rows():
        for kind in row.gate:
            gates[kind] += 1
        ungated += not row.gate
    gates = {k: n for k, n in gates.items() if n}
    data = {
        "lexfast": __version__,
        "core": "compiled" if COMPILED else "pure-Python twin",
        "compiled": COMPILED,
        "core_module": kernel.impl.__name__,
        "core_file": getattr(kernel.impl, "__file__", None),
        "fallback_reason": kernel.FALLBACK_REASON,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "effects": len(names),
        "effect_kinds": list(KNOWN_EFFECTS),
        "gated_ops": gates,
        "ungated_ops": ungated,
        "namespaces": sorted({n.split(".", 1)[0] for n in names}),
        "builtins": pure,
        "libraries": _lib_versions(),
        "confinement": _confinement(),
    }
    if as_json:
        print(json.dumps(data))
        return 0
    print(f"lexfast {data['lexfast']}")
    print(f"core: {data['core']} ({data['core_module']}, {data['core_file']})")
    if data["fallback_reason"]:
        print(f"compiled core missing: {data['fallback_reason']}")
    print(f"python: {data['python']} ({sys.executable})")
    print(f"platform: {data['platform']}")
    print(f"effect kinds (--allow-effects): {', '.join(data['effect_kinds'])}")
    print(f"effect table: {data['effects']} ops in {len(data['namespaces'])} namespaces "
          f"({', '.join(data['namespaces'])})")
    print("ops gated by each kind: " + ", ".join(f"{k} ({n})" for k, n in gates.items())
          + (f"; ungated: {ungated}" if ungated else ""))
    print(f"builtins: {sum(pure.values())} ops in {len(pure)} modules"
          + (": " + ", ".join(f"{k} ({n})" for k, n in pure.items()) if pure else ""))
    for name, v in data["libraries"].items():
        print(f"{name}: {v}")
    conf = data["confinement"]
    if conf["available"]:
        print(f"children: confined (Landlock ABI {conf['landlock_abi']}, "
              f"helper {conf['helper']}); --no-confine turns it off")
        for line in conf["enforced"]:
            print(f"  - {line}")
    else:
        print(f"children: NOT confined: {conf['reason']}")
    return 0


def _confinement() -> dict:
    from ..scope.confine import support

    found = support()
    return {"available": found.available, "landlock_abi": found.abi,
            "seccomp": found.seccomp, "helper": found.helper, "reason": found.reason,
            "enforced": found.enforced()}


# -- run / host ---------------------------------------------------------------

def _run(mode: str, ns, policy: Policy, parser, program_args=()) -> int:
    if ns.max_line_bytes < 1:
        parser.error(f"--max-line-bytes must be at least 1, got {ns.max_line_bytes}")
    if not 0 < ns.closure_timeout <= 86400:
        parser.error(f"--closure-timeout must be in (0, 86400] seconds, got {ns.closure_timeout}")
    read_root = None
    if ns.read_root is not None:
        if not os.path.isdir(ns.read_root):
            parser.error(f"--read-root: `{ns.read_root}` is not a directory")
        read_root = ns.read_root
    if ns.permissive:
        policy = policy.replace(allow_effects=KNOWN_EFFECTS)
    stdin_is_requests = mode == "host" or ns.file == "-"
    if ns.approval == "prompt" and stdin_is_requests:
        parser.error("--approval prompt needs stdin for the answers: use `run FILE`, "
                     "not `run -` or `host`")
    if ns.approval == "peer" and mode != "host":
        parser.error("--approval peer is for `host`, whose peer reads the approval lines")

    stream = None
    owned = False
    if mode == "run" and ns.file != "-":
        try:
            stream = open(ns.file, "rb")  # noqa: SIM115 - closed in finally
            owned = True
        except OSError as e:
            print(f"lexfast run: cannot open `{ns.file}`: {e.strerror or e}", file=sys.stderr)
            return _EXIT_USAGE
    else:
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:
            print(f"lexfast {mode}: stdin is not available", file=sys.stderr)
            return _EXIT_USAGE

    if ns.record is not None and ns.replay is not None:
        parser.error("--record and --replay cannot be given together")
    if ns.override and ns.replay is None:
        parser.error("--override needs --replay")
    if ns.replay_then_live and ns.replay is None:
        parser.error("--replay-then-live needs --replay")
    from ..record import parse_override  # loaded only when asked (lexfast.record)
    overrides = {}
    for text in ns.override:
        try:
            step, value = parse_override(text)
        except ValueError as e:
            parser.error(str(e))
        overrides[step] = value

    out = _Out()
    sink = FramedPrintSink(_Out("stderr") if mode == "host" else out)
    limits = Limits(confine_children=False) if ns.no_confine else None
    try:
        handler = DefaultHandler(policy, sink=sink, read_root=read_root, limits=limits,
                                 timing=bool(ns.stats and ns.timing), record=ns.record,
                                 replay=ns.replay, overrides=overrides or None,
                                 replay_then_live=ns.replay_then_live)
    except EffectError as e:
        print(f"lexfast {mode}: {e}", file=sys.stderr)
        if owned:
            stream.close()
        return _EXIT_USAGE
    handler.with_program_args(program_args)
    if stdin_is_requests:  # io.readline must never read (or swallow) a request
        handler.with_input(io.BytesIO())
    if mode == "host" and stream is getattr(sys.stdin, "buffer", None):
        try:
            stream = _FdStream(sys.stdin.fileno())
        except (OSError, ValueError, AttributeError):
            pass
    lines = _Lines(stream, ns.max_line_bytes)
    if mode == "host":
        handler.with_invoke(PeerClosures(lines, out, ns.closure_timeout))
    if ns.approval == "prompt":
        handler.with_approval_sink(PromptApprovalSink(handler))
    elif ns.approval == "peer":
        handler.with_approval_sink(PeerApprovalSink(lines, out))
    _warn_wildcards(mode, policy)
    _warn_unconfined(mode, policy, ns.no_confine)
    progress = None
    if owned and _stderr_is_terminal():
        try:
            size = os.fstat(stream.fileno()).st_size
        except OSError:
            size = 0
        if size >= _PROGRESS_MIN_BYTES:
            progress = _Progress(stream, size)
    old_term = _install_sigterm()
    try:
        serve(handler, stream, ns.max_line_bytes, progress, out, lines)
        return 0
    except KeyboardInterrupt:
        return _EXIT_SIGINT
    except _Terminated:
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        _quiet_stdout()
        print(f"lexfast {mode}: stdout closed by the reader", file=sys.stderr)
        return 1
    except OSError as e:
        where = f"`{ns.file}`" if mode == "run" and ns.file != "-" else "stdin"
        print(f"lexfast {mode}: cannot read {where}: {e.strerror or e}", file=sys.stderr)
        return 1
    finally:
        try:
            if ns.stats:
                from ..stats import format_table
                print(format_table(handler.stats_table()), file=sys.stderr, flush=True)
            handler.shutdown()
            handler.close()
        finally:
            _restore_sigterm(old_term)
            if owned:
                stream.close()


def _warn_wildcards(mode: str, policy: Policy) -> None:
    """One stderr line per granted kind left open by an empty scope list."""
    for kind, flags in policy.wildcard_scopes().items():
        print(f"lexfast {mode}: warning: `{kind}` is granted with no "
              f"{' and no '.join(flags)}: it reaches anything there "
              f"(an empty list means any); scope it with {', '.join(flags)}",
              file=sys.stderr, flush=True)


def _warn_unconfined(mode: str, policy: Policy, off: bool) -> None:
    """One stderr line when children may be started but cannot be confined."""
    if not {"proc", "mcp"} & policy.allow_effects:
        return
    from ..scope.confine import support

    why = "--no-confine" if off else support().reason
    if why is not None:
        print(f"lexfast {mode}: warning: children (proc, process, MCP servers) run "
              f"unconfined ({why}): a granted binary reaches whatever the OS lets it",
              file=sys.stderr, flush=True)


#: below this, a run is over before a progress bar would be worth drawing
_PROGRESS_MIN_BYTES = 1 << 20


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty() or os.environ.get("LEXFAST_FORCE_PROGRESS") == "1"
    except (AttributeError, ValueError):
        return False


def _install_sigterm():
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum, frame):
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError):
        return None


def _restore_sigterm(old) -> None:
    if old is not None:
        try:
            signal.signal(signal.SIGTERM, old)
        except (ValueError, OSError):
            pass


def _quiet_stdout() -> None:
    # Python flushes stdout again at exit; a closed pipe would print a traceback.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv=None) -> int:
    """Entry point of the ``lexfast`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except SystemExit as e:  # argparse: --help, --version, usage errors
        code = e.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1


def _main(argv: list[str]) -> int:
    top, subs = _parsers()
    # Policy flags are the Lex CLI's own syntax (commas, repeats, `=`), so they
    # are parsed by lexfast.policy and only the rest goes through argparse.
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in ("run", "host"):
        i = argv.index(command)
        head, tail = argv[:i], argv[i + 1:]
        if head:
            top.parse_args(head)  # --version / --help / unknown top-level flags
        parser = subs[command]
        program_args: list[str] = []
        if "--" in tail:  # what follows is the program's io.argv
            k = tail.index("--")
            tail, program_args = tail[:k], tail[k + 1:]
        policy, rest = _policy_from(tail, parser)
        ns = parser.parse_args(rest)
        return _run(command, ns, policy, parser, program_args)
    ns = top.parse_args(argv)
    if ns.command == "info":
        return info(ns.json)
    if ns.command == "help":
        from .docs import help_text
        status, text = help_text(ns.target)
        print(text, end="", file=sys.stdout if status == 0 else sys.stderr)
        return status
    if ns.command == "trace":
        return _trace(ns, subs["trace"])
    if ns.command == "budget-pool":
        return _budget_pool(ns, subs["budget-pool"])
    top.print_usage(sys.stderr)
    print("lexfast: error: a command is required: run, host, info, help, trace or budget-pool",
          file=sys.stderr)
    return _EXIT_USAGE


__all__ = ["MAX_LINE_BYTES", "PRINT_PREFIX", "FramedPrintSink", "PeerApprovalSink",
           "PromptApprovalSink", "handle_request", "main", "respond", "serve"]
