"""Record and replay (docs/design.md §8): every effect of a run as a trace, and
a run answered from it.

``DefaultHandler(..., record=FILE)`` installs a *recording* ``dispatch`` and
``note_call_budget`` on the handler instance (and on every fork of it); the
class's own ``dispatch`` is left untouched, so a handler that does not record
pays nothing. Each dispatched effect becomes one JSON line in the CLI's value
codec, written by a writer thread: the dispatch thread only runs the kernel's
``RecordTap`` entry (C when compiled), which appends the call as a tuple to a
``TraceBuffer``; the writer takes the buffer whole and encodes (the common line
by the kernel's ``trace_call_line``). ``DefaultHandler(..., replay=FILE)``
installs a *replaying* pair that answers each call from the trace, in order,
per fork, and performs nothing: the kernel's ``ReplayTap`` answers a call
whose args are ``strict_equal`` to the step's decoded ones; this module's
slow path everything else.

Trace format, one JSON object per line:

- the header ``{"lexfast_trace": 1, "session": S, "pure": false,
  "started": T}``;
- a call ``{"step": N, "fork": F, "kind": K, "op": O, "args": [..], "value": V,
  "t": WALL, "us": DURATION}``, or ``"raised": {"type": .., "message": ..}``
  in place of ``value`` when the call raised (denials and refusals too), or
  ``"unrecorded": "<type>"`` when the value has no JSON form;
- a budget note ``{"step": N, "fork": F, "budget": COST}`` (with ``raised``
  when it was refused);
- a request a server (``net.serve*`` on fork S) ran the program for
  ``{"step": N, "fork": F, "request": FN, "server": S, "args": [..]}``: the
  program's call ran on fork F; replaying the serve call feeds it again;
- the end marker ``{"truncated": true, "step": N, "limit": BYTES}`` when the
  file reached ``Limits.record_bytes`` (with a ``reason`` when a step could
  not be written at all): nothing is written after it.

Secrets are scrubbed by rule before anything is written: the value under any
Record key or Map/pair key named ``Authorization``, ``Proxy-Authorization``,
``Cookie``, ``Set-Cookie``, ``X-Api-Key`` or ``Api-Key`` (any case), and the
value ``env.get`` returns for a name that looks secret (containing ``KEY``,
``TOKEN``, ``SECRET``, ``PASSWORD``, ``PASSWD``, ``CREDENTIAL`` or ``AUTH``)
or that the caller lists in ``secret_env``. The scrubbed text is
``"[scrubbed]"``; replay answers with it.
"""

from __future__ import annotations

import binascii
import collections
import io
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .cli.codec import CodecError, decode, dumps_json, parse_json, to_json
from .errors import (
    BudgetExceeded,
    BudgetPoolUnavailable,
    EffectError,
    PolicyDenied,
    ReplayDivergence,
)
from .kernel import Variant, impl

# the kernel's taps: the recording and replaying dispatch, in C when compiled
(RecordTap, ReplayTap, TraceBuffer, TraceSteps, strict_equal, trace_call_line,
 trace_call_lines) = (impl.RecordTap, impl.ReplayTap, impl.TraceBuffer, impl.TraceSteps,
                      impl.strict_equal, impl.trace_call_line, impl.trace_call_lines)

TRACE_VERSION = 1
SCRUBBED = "[scrubbed]"

_SECRET_KEYS = frozenset(("authorization", "proxy-authorization", "cookie", "set-cookie",
                          "x-api-key", "api-key", "api_key"))
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.I)

_CALL, _BUDGET, _REQUEST = 0, 1, 2
#: the servers: each request they run the program for is recorded, and replayed
_SERVE_OPS = frozenset(("serve", "serve_tls", "serve_ws"))
_VALUE, _RAISED = 0, 1  # the kernel's RecordTap writes the same tags
#: entries encoded and written at once by the writer thread
_CHUNK = 256


# -- scrubbing -----------------------------------------------------------------

def _scrub(tree: Any, depth: int = 0) -> Any:
    """The JSON tree with every secret-named field's value replaced."""
    if depth > 300:
        return tree
    if isinstance(tree, list):
        if (len(tree) == 2 and isinstance(tree[0], str)
                and tree[0].lower() in _SECRET_KEYS):  # a [name, value] pair
            return [tree[0], SCRUBBED]
        return [_scrub(x, depth + 1) for x in tree]
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            if isinstance(k, str) and k.lower() in _SECRET_KEYS:
                out[k] = SCRUBBED
            else:
                out[k] = _scrub(v, depth + 1)
        return out
    return tree


def _secret_env_name(name: Any, extra: frozenset[str]) -> bool:
    return isinstance(name, str) and (name in extra or bool(_SECRET_ENV.search(name)))


def _scrub_value(value: Any) -> Any:
    """A secret env value as the trace keeps it (the shape ``env.get`` returns)."""
    if isinstance(value, dict) and "$variant" in value:
        args = value.get("args") or []
        return {"$variant": value["$variant"], "args": [SCRUBBED for _ in args]}
    return SCRUBBED if value is not None else None


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1

_orjson_dumps: Callable[[Any], bytes] | None
try:  # the trace writer's encoder (pyproject: a dependency; the json module otherwise)
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - installed with lexfast
    _orjson_dumps = None


_NO = object()


def _flat(x: Any) -> Any:
    """The JSON form of a flat value (ASCII Str, Int, Bool, Unit, finite
    Float, Bytes), or ``_NO``: the codec's answer without its walk."""
    t = type(x)
    if t is str:
        return x if x.isascii() else _NO
    if t is int:
        return x if _INT_MIN <= x <= _INT_MAX else _NO
    if x is None or t is bool:
        return x
    if t is bytes:
        return {"$bytes": binascii.b2a_base64(x, newline=False).decode("ascii")}
    if t is float:
        return x if math.isfinite(x) else _NO
    return _NO


def _args_tree(args: Any) -> Any:
    """The args list's JSON; an argument with no codec form (a VM's closure,
    ``net.serve_fn``'s handler) is ``{"$closure": "<Type>"}``, so the call
    stays a list that replay compares (the same on both sides)."""
    try:
        return _tree(args if type(args) is list else list(args))
    except (CodecError, TypeError):
        pass
    out = []
    for a in args:
        try:
            out.append(_tree(a))
        except (CodecError, TypeError):
            out.append({"$closure": f"<{type(a).__name__}>"})
    return out


def _tree(v: Any) -> Any:
    """``to_json(v)``, with the common shapes (a flat value, a list of them, a
    Variant of them) answered without the codec's walk."""
    f = _flat(v)
    if f is not _NO:
        return f
    t = type(v)
    if t is list:
        out = [_flat(x) for x in v]
        if _NO not in out:
            return out
    elif t is Variant:
        name = v.name
        if type(name) is str and name and name.isascii():
            args = [_flat(x) for x in v.args]
            if _NO not in args:
                return {"$variant": name, "args": args}
    return to_json(v)


def _line(out: dict[str, Any]) -> str:
    """``dumps_json(out)``; an all-ASCII line (no lone surrogate, no line
    separator) without the codec's checks, by orjson when it is installed
    (some 10x the json module's encoder on a trace line: the writer thread
    holds the GIL that much less)."""
    if _orjson_dumps is not None:
        try:
            raw = _orjson_dumps(out)
        except (TypeError, ValueError, RecursionError):  # orjson.JSONEncodeError is a TypeError
            return dumps_json(out)  # words the error as the codec does
        return raw.decode("ascii") if raw.isascii() else dumps_json(out)
    try:
        line = _ENCODER.encode(out)
    except (TypeError, ValueError, RecursionError):
        return dumps_json(out)
    return line if line.isascii() else dumps_json(out)


def _may_hold_secret(text: str) -> bool:
    low = text.lower()
    return "authorization" in low or "cookie" in low or "api-key" in low or "api_key" in low


# -- errors <-> JSON -------------------------------------------------------------

def _error_tree(e: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(e).__name__, "message": str(e)}
    if isinstance(e, PolicyDenied):
        out.update(effect=e.effect, path=e.path, host=e.host, cmd=e.cmd)
    elif isinstance(e, BudgetExceeded):
        out.update(requested=e.requested, used=e.used, ceiling=e.ceiling)
    return out


def _error_from(tree: Any, where: str) -> EffectError:
    if not isinstance(tree, dict) or not isinstance(tree.get("message"), str):
        raise EffectError(f"{where}: `raised` must be an object with a message")
    kind = tree.get("type")
    if kind == "PolicyDenied":
        return PolicyDenied(tree["message"], effect=tree.get("effect"), path=tree.get("path"),
                            host=tree.get("host"), cmd=tree.get("cmd"))
    if kind in ("BudgetExceeded", "BudgetPoolUnavailable"):
        try:
            fields = (int(tree["requested"]), int(tree["used"]), int(tree["ceiling"]))
        except (KeyError, TypeError, ValueError):
            raise EffectError(f"{where}: {kind} needs requested, used, ceiling") from None
        if kind == "BudgetPoolUnavailable":  # a distributed pool's server failed
            return BudgetPoolUnavailable(*fields, tree["message"])
        return BudgetExceeded(*fields)
    return EffectError(tree["message"])


def _call_text(kind: Any, op: Any, args: Any) -> str:
    text = f"{kind}.{op}({json.dumps(args, ensure_ascii=False)[1:-1]})" \
        if isinstance(args, list) else f"{kind}.{op}({args!r})"
    return text if len(text) <= 400 else text[:397] + "..."


# -- recording -------------------------------------------------------------------

class Recorder:
    """The trace writer of one session: forks append to one queue, a writer
    thread encodes and writes. ``close()`` drains the queue and ends the
    thread (the session closes it)."""

    def __init__(self, target: Any, limit_bytes: int, *, record_pure: bool = False,
                 secret_env: Iterable[str] = ()) -> None:
        if type(limit_bytes) is not int or limit_bytes < 1:  # before anything is opened
            raise ValueError(f"Limits.record_bytes must be a positive Int, got {limit_bytes!r}")
        if isinstance(target, (str, bytes, os.PathLike)):
            try:  # owner-only: a trace holds what the run read
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                self._out: Any = open(fd, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as e:
                raise EffectError(f"record: cannot open `{os.fsdecode(target)}`: "
                                  f"{e.strerror or e}") from None
            self._owned = True
        elif callable(getattr(target, "write", None)):
            self._out = target
            self._owned = False
        else:
            raise TypeError("record must be a path or a text stream with write(str)")
        self.record_pure = bool(record_pure)
        self._secret_env = frozenset(secret_env)
        self._limit = limit_bytes
        self._written = 0
        self._step = 0
        self.session_id = uuid.uuid4().hex
        self._wall0_us, self._mono0 = time.time_ns() // 1000, time.monotonic_ns()
        self._buffer = TraceBuffer()
        self._wake = threading.Event()
        self._io_lock = threading.Lock()
        self._stop = False
        self._forks = 0
        self._fork_lock = threading.Lock()
        self._write_line(dumps_json({"lexfast_trace": TRACE_VERSION, "session": self.session_id,
                                     "pure": self.record_pure, "started": time.time()}))
        self._thread = threading.Thread(target=self._loop, name="lexfast-record", daemon=True)
        self._thread.start()

    @property
    def full(self) -> bool:
        """The trace reached its bound (or could not be written): nothing more
        is recorded."""
        return bool(self._buffer.full)

    # -- the dispatch side ---------------------------------------------------
    def attach(self, handler: Any) -> None:
        """Install the recording ``dispatch``/``note_call_budget`` on ``handler``
        (the session's root, or a fork: each gets the next fork id)."""
        with self._fork_lock:
            fork = self._forks
            self._forks += 1
        core = type(handler)
        core_dispatch = core.dispatch.__get__(handler)
        core_budget = core.note_call_budget.__get__(handler)
        handler.__dict__["_trace_fork"] = fork
        buffer = self._buffer
        append = buffer.append
        rec = self

        def serve(kind: Any, op: Any, args: Any) -> Any:
            snap = list(args) if type(args) is list else args
            return rec._serve(handler, fork, core_dispatch, kind, op, args, snap)

        tap = RecordTap(handler, buffer, fork, self.record_pure, {"net": _SERVE_OPS}, serve)

        def note_call_budget(cost: Any) -> None:
            if rec.full:
                return core_budget(cost)
            try:
                core_budget(cost)
            except EffectError as e:
                append((_BUDGET, fork, cost, _RAISED, e))
                raise
            append((_BUDGET, fork, cost, _VALUE, None))

        handler.__dict__["dispatch"] = tap.dispatch
        handler.__dict__["note_call_budget"] = note_call_budget

    def _serve(self, handler: Any, fork: int, core_dispatch: Callable[..., Any], kind: str,
               op: str, args: Any, snap: Any) -> Any:
        """A server call: each request's program call is recorded (which
        fork runs it, the function, its args) before it runs."""
        session = handler.session
        runner = session.runner
        append = self._buffer.append

        def recording_runner(program: Any, child: Any, name: str, call_args: Any) -> Any:
            append((_REQUEST, child.__dict__.get("_trace_fork"), fork, name, list(call_args)))
            return runner(program, child, name, call_args)

        if callable(runner):
            session.runner = recording_runner
        t0 = time.monotonic_ns()
        try:
            value = core_dispatch(kind, op, args)
        except EffectError as e:
            append((_CALL, fork, kind, op, snap, _RAISED, e, t0, time.monotonic_ns()))
            raise
        finally:
            if session.runner is recording_runner:
                session.runner = runner
        append((_CALL, fork, kind, op, snap, _VALUE, value, t0, time.monotonic_ns()))
        return value

    # -- the writer side --------------------------------------------------------
    def _write_line(self, line: str) -> bool:
        size = len(line.encode("utf-8", "surrogatepass")) + 1
        if self._written + size > self._limit:
            self._stop_with(None)
            return False
        self._out.write(line + "\n")
        self._written += size
        return True

    def _stop_with(self, reason: str | None) -> None:
        """The end marker (the bound reached, or ``reason``); nothing after it."""
        self._buffer.full = True
        marker: dict[str, Any] = {"truncated": True, "step": self._step, "limit": self._limit}
        if reason is not None:
            marker["reason"] = reason
        try:
            self._out.write(dumps_json(marker) + "\n")
        except (OSError, ValueError):
            pass

    def _entry(self, item: tuple[Any, ...]) -> str:
        step = self._step
        if item[0] == _REQUEST:
            _, fork, server, name, args = item
            req = {"step": step, "fork": fork, "request": name, "server": server,
                   "args": _tree(args)}
            line = _line(req)
            if _may_hold_secret(line):
                req["args"] = _scrub(req["args"])
                line = _line(req)
            return line
        if item[0] == _BUDGET:
            _, fork, cost, tag, payload = item
            out: dict[str, Any] = {"step": step, "fork": fork,
                                   "budget": cost if type(cost) is int else repr(cost)}
            if tag == _RAISED:
                out["raised"] = _error_tree(payload)
            return dumps_json(out)
        _, fork, kind, op, args, tag, payload, t0, t1 = item
        # wall time from the monotonic clock: one clock read fewer per call
        t_us = self._wall0_us + (t0 - self._mono0) // 1000
        if tag == _VALUE and kind != "env":  # the common call, encoded by the kernel
            fast = trace_call_line(step, fork, kind, op, args, payload, t_us, (t1 - t0) // 1000)
            if fast is not None:  # None: another value, or a line to scrub
                return fast
        out = {"step": step, "fork": fork, "kind": kind, "op": op}
        try:  # ``args`` is the tap's copy when it was a list
            out["args"] = _args_tree(args)
        except (CodecError, TypeError):
            out["args"] = repr(args)[:400]
        if tag == _RAISED:
            out["raised"] = _error_tree(payload)
        else:
            try:
                value = _tree(payload)
                if kind == "env" and args and _secret_env_name(args[0], self._secret_env):
                    value = _scrub_value(value)
                out["value"] = value
            except (CodecError, TypeError):
                out["unrecorded"] = type(payload).__name__
        out["t"] = t_us / 1e6
        out["us"] = (t1 - t0) // 1000
        line = _line(out)
        if _may_hold_secret(line):  # rare: walk the trees only then
            out["args"] = _scrub(out["args"])
            if "value" in out:
                out["value"] = _scrub(out["value"])
            line = _line(out)
        return line

    def _drain(self) -> None:
        with self._io_lock:
            self._drain_locked()

    def _drain_locked(self) -> None:
        buffer = self._buffer
        # on the writer thread, the GIL is offered after each chunk: a
        # dispatch thread waits at most one chunk's encoding
        writer = threading.current_thread() is self._thread
        while True:
            items = buffer.take()
            if not items:
                break
            for start in range(0, len(items), _CHUNK):
                if self.full:
                    break
                self._write_chunk(items[start:start + _CHUNK])
                if writer:
                    time.sleep(0)
        try:
            self._out.flush()
        except (OSError, ValueError):
            pass

    def _write_chunk(self, items: list[tuple[Any, ...]]) -> None:
        lines: list[str] = []
        size = self._written
        limit = self._limit
        i = 0
        while i < len(items):
            # the common lines, a run at a time, by the kernel
            text, count = trace_call_lines(items, i, self._step, self._wall0_us, self._mono0,
                                           min(limit - size, 1 << 62))
            if count:
                lines.append(text)
                size += len(text)
                self._step += count
                i += count
                continue
            item = items[i]
            i += 1
            try:
                line = self._entry(item)
            except Exception as e:  # noqa: BLE001 - a value no JSON line can hold
                self._out.write("".join(lines))
                self._written = size
                self._stop_with(f"step {self._step} could not be written: "
                                f"{type(e).__name__}: {str(e)[:200]}")
                return
            n = (len(line) if line.isascii()
                 else len(line.encode("utf-8", "surrogatepass"))) + 1
            if size + n > limit:
                self._out.write("".join(lines))
                self._written = size
                self._stop_with(None)
                return
            lines.append(line + "\n")
            size += n
            self._step += 1
        self._out.write("".join(lines))
        self._written = size

    def _loop(self) -> None:
        while True:
            self._wake.wait(0.05)
            self._wake.clear()
            try:
                self._drain()
            except (OSError, ValueError) as e:  # the disk is full, the stream closed
                self._stop_with(f"the trace could not be written: {e}")
                self._buffer.take()
            if self._stop:
                return

    def flush(self) -> None:
        """Wait until everything recorded so far is written."""
        deadline = time.monotonic() + 60
        while len(self._buffer) and self._thread.is_alive() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.001)
        with self._io_lock:  # the last batch taken is written
            pass

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=60)
        if self._owned:
            try:
                self._out.close()
            except OSError:
                pass
        else:
            try:
                self._out.flush()
            except (OSError, ValueError):
                pass


# -- replay ------------------------------------------------------------------------

def _lines(trace: Any) -> Iterable[str]:
    if isinstance(trace, (str, bytes, os.PathLike)):
        try:
            with open(trace, encoding="utf-8") as f:
                return f.read().split("\n")
        except (OSError, UnicodeDecodeError) as e:
            raise EffectError(f"replay: cannot read `{os.fsdecode(trace)}`: "
                              f"{getattr(e, 'strerror', None) or e}") from None
    if isinstance(trace, io.IOBase) or callable(getattr(trace, "read", None)):
        text = trace.read()
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return str(text).split("\n")
    raise TypeError("replay must be a path or a readable stream")


class Replayer:
    """A parsed trace: each fork's steps in order, answered without performing
    anything. ``overrides`` maps a step number to the value answered instead."""

    def __init__(self, trace: Any, overrides: Mapping[int, Any] | None = None, *,
                 then_live: bool = False) -> None:
        self.then_live = bool(then_live)
        #: each fork's steps (``TraceSteps``: the entries and their fast answers)
        self.by_fork: dict[int, Any] = {}
        entries: dict[int, list[dict[str, Any]]] = {}
        self.steps: dict[int, dict[str, Any]] = {}
        #: the requests each server fork ran, in order (fed to the runner again)
        self.requests: dict[int, collections.deque[dict[str, Any]]] = {}
        self.pure = False
        self.truncated = False
        seen_header = False
        for lineno, line in enumerate(_lines(trace), 1):
            if not line.strip():
                continue
            where = f"replay: trace line {lineno}"
            try:
                obj = parse_json(line)
            except (CodecError, ValueError) as e:
                raise EffectError(f"{where}: not JSON ({e})") from None
            if not isinstance(obj, dict):
                raise EffectError(f"{where}: expected an object")
            if not seen_header:
                if obj.get("lexfast_trace") != TRACE_VERSION:
                    raise EffectError(f"{where}: not a lexfast trace (expected the header "
                                      f'{{"lexfast_trace": {TRACE_VERSION}, ...}})')
                self.pure = obj.get("pure") is True
                seen_header = True
                continue
            if self.truncated:
                raise EffectError(f"{where}: entry after the truncation marker")
            if obj.get("truncated") is True:
                self.truncated = True
                continue
            self._check(obj, where)
            obj["_line"] = lineno
            self.steps[obj["step"]] = obj
            if "request" in obj:
                self.requests.setdefault(obj["server"], collections.deque()).append(obj)
            else:
                entries.setdefault(obj["fork"], []).append(obj)
        if not seen_header:
            raise EffectError("replay: the trace is empty (no header line)")
        self.overrides: dict[int, Any] = {}
        for step, value in (overrides or {}).items():
            if step not in self.steps:
                raise EffectError(f"replay: --override {step}: the trace has no step {step}")
            self.overrides[step] = value
        for fork, steps in entries.items():
            self.by_fork[fork] = TraceSteps(steps, [self._fast(e) for e in steps])
        self._lock = threading.Lock()
        self._forks = 0

    def _fast(self, entry: dict[str, Any]) -> tuple[Any, ...] | None:
        """The step's answer for the kernel's replay tap, ``(kind, op, args,
        value)``, or ``None`` when the slow path must answer it."""
        if ("_v" not in entry or entry["step"] in self.overrides or entry.get("_a") is None
                or (entry["kind"] == "net" and entry["op"] in _SERVE_OPS)):
            return None
        return (entry["kind"], entry["op"], entry["_a"], entry["_v"])

    def _check(self, obj: dict[str, Any], where: str) -> None:
        step, fork = obj.get("step"), obj.get("fork")
        if type(step) is not int or type(fork) is not int or step < 0 or fork < 0:
            raise EffectError(f"{where}: `step` and `fork` must be non-negative Ints")
        if step in self.steps:
            raise EffectError(f"{where}: step {step} appears twice")
        if "budget" in obj:
            if "raised" in obj:
                _error_from(obj["raised"], where)
            return
        if "request" in obj:
            if not isinstance(obj["request"], str) or type(obj.get("server")) is not int \
                    or not isinstance(obj.get("args"), list):
                raise EffectError(f"{where}: a request needs `request` (Str), `server` (Int) "
                                  f"and `args` (a list)")
            try:
                obj["_a"] = decode(obj["args"])
            except CodecError as e:
                raise EffectError(f"{where}: `args`: {e}") from None
            return
        if not isinstance(obj.get("kind"), str) or not isinstance(obj.get("op"), str):
            raise EffectError(f"{where}: `kind` and `op` must be Str")
        if not isinstance(obj.get("args"), list):
            raise EffectError(f"{where}: `args` must be a list")
        try:
            obj["_a"] = decode(obj["args"])
        except CodecError:
            obj["_a"] = None  # compared as JSON only
        outcomes = [k for k in ("value", "raised", "unrecorded") if k in obj]
        if len(outcomes) != 1:
            raise EffectError(f"{where}: a call needs exactly one of value, raised, unrecorded")
        if "raised" in obj:
            _error_from(obj["raised"], where)
        elif "value" in obj:
            try:
                obj["_v"] = decode(obj["value"])
            except CodecError as e:
                raise EffectError(f"{where}: `value`: {e}") from None

    def _next(self, fork: int, kind: Any, op: Any, args: Any) -> dict[str, Any] | None:
        steps = self.by_fork.get(fork)
        entry = steps.pop() if steps is not None else None
        if entry is not None:
            return entry
        if self.then_live:
            return None
        end = "the truncation marker" if self.truncated else "its end"
        call = (f"note_call_budget({args!r})" if op is None
                else _call_text(kind, op, _scrub(args)))
        raise ReplayDivergence(f"replay: fork {fork} made a call past {end} of the trace: {call}",
                               step=None, recorded=None, actual=call)

    def attach(self, handler: Any, fork: int | None = None) -> None:
        with self._lock:
            if fork is None:
                fork = self._forks
            self._forks += 1
        core_dispatch = type(handler).dispatch.__get__(handler)
        core_budget = type(handler).note_call_budget.__get__(handler)
        rep = self
        steps = self.by_fork.setdefault(fork, TraceSteps([], []))

        def dispatch(kind: Any, op: Any, args: Any) -> Any:
            """The slow path: every call the tap does not answer itself."""
            try:
                live = _args_tree(args)
            except (CodecError, TypeError):
                live = repr(args)
            entry = rep._next(fork, kind, op, live)
            if entry is None:  # then_live: the trace is over for this fork
                return core_dispatch(kind, op, args)
            step = entry["step"]
            if "budget" in entry:
                rep._diverge(step, f"note_call_budget({entry['budget']})",
                             _call_text(kind, op, live))
            if entry["kind"] != kind or entry["op"] != op or not (
                    (entry.get("_a") is not None and strict_equal(entry["_a"], list(args)))
                    or strict_equal(entry["args"], live)
                    or strict_equal(entry["args"], _scrub(live))):
                rep._diverge(step, _call_text(entry["kind"], entry["op"], entry["args"]),
                             _call_text(kind, op, _scrub(live)))
            if kind == "net" and op in _SERVE_OPS:
                rep._serve(handler, fork, step)
            if step in rep.overrides:
                return rep.overrides[step]
            if "raised" in entry:
                raise _error_from(entry["raised"], f"replay: step {step}")
            if "unrecorded" in entry:
                raise EffectError(f"replay: step {step} ({kind}.{op}) returned a "
                                  f"{entry['unrecorded']}, which a trace cannot hold")
            return entry["_v"]

        def note_call_budget(cost: Any) -> None:
            entry = rep._next(fork, "note_call_budget", None, cost)
            if entry is None:
                return core_budget(cost)
            step = entry["step"]
            call = f"note_call_budget({cost!r})"
            if "budget" not in entry:
                rep._diverge(step, _call_text(entry["kind"], entry["op"], entry["args"]), call)
            if not strict_equal(entry["budget"], cost):
                rep._diverge(step, f"note_call_budget({entry['budget']!r})", call)
            if "raised" in entry:
                raise _error_from(entry["raised"], f"replay: step {step}")

        tap = ReplayTap(handler, steps, self.pure, dispatch)
        handler.__dict__["dispatch"] = tap.dispatch
        handler.__dict__["note_call_budget"] = note_call_budget

    def _serve(self, handler: Any, fork: int, step: int) -> None:
        """Feed the requests this server ran to the runner again, in the
        order they started, one after another, each on a fork with its
        recorded fork id. What the program's call raises is what the live
        server turned into a 500, except a divergence, which is raised."""
        pending = self.requests.get(fork)
        if not pending:
            return
        session = handler.session
        runner = session.runner
        if not callable(runner):
            raise EffectError(f"replay: step {step} served requests, but the handler has no "
                              "runner (DefaultHandler.with_program)")
        while pending and pending[0]["step"] < step:
            req = pending.popleft()
            child = handler.fork()
            self.attach(child, req["fork"])
            self._forks -= 1  # attach counted this fork twice
            try:
                runner(session.program, child, req["request"], list(req["_a"]))
            except ReplayDivergence:
                raise
            except Exception:  # noqa: BLE001, S110 - the live server's 500
                pass

    @staticmethod
    def _diverge(step: int, recorded: str, actual: str) -> None:
        raise ReplayDivergence(f"replay diverged at step {step}: recorded {recorded}, "
                               f"got {actual}", step=step, recorded=recorded, actual=actual)


# -- inspecting -----------------------------------------------------------------

def _outcome(e: dict[str, Any]) -> str:
    if "raised" in e:
        return f"raised {e['raised'].get('type')}: {e['raised'].get('message')}"
    if "unrecorded" in e:
        return f"unrecorded {e['unrecorded']}"
    if "budget" in e:
        return "ok"
    if "request" in e:
        text = json.dumps(e.get("args"), ensure_ascii=False)
        return text if len(text) <= 60 else text[:57] + "..."
    text = json.dumps(e.get("value"), ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _what(e: dict[str, Any]) -> str:
    if "request" in e:
        return f"request {e['request']} (server fork {e['server']})"
    return f"budget({e['budget']})" if "budget" in e else f"{e['kind']}.{e['op']}"


def show(trace: Any, stats: bool = False) -> list[str]:
    """``lexfast trace show``: one line per step (step, fork, call, outcome,
    duration), or with ``stats`` one per op (calls, raised, total and mean µs)."""
    rep = Replayer(trace)
    entries = [rep.steps[k] for k in sorted(rep.steps)]
    if stats:
        per: dict[str, list[int]] = {}
        for e in entries:
            row = per.setdefault(_what(e) if "kind" in e else
                                 ("request" if "request" in e else "budget"), [0, 0, 0])
            row[0] += 1
            row[1] += "raised" in e
            row[2] += int(e.get("us", 0)) if type(e.get("us", 0)) is int else 0
        lines = [f"{'op':<28} {'calls':>8} {'raised':>7} {'total_us':>10} {'mean_us':>9}"]
        for name, (calls, raised, us) in sorted(per.items(), key=lambda kv: -kv[1][2]):
            lines.append(f"{name:<28} {calls:>8} {raised:>7} {us:>10} {us / calls:>9.1f}")
        return lines
    lines = [f"{'step':>6} {'fork':>4}  {'call':<28} {'us':>8}  outcome"]
    for e in entries:
        us = e.get("us", "")
        lines.append(f"{e['step']:>6} {e['fork']:>4}  {_what(e):<28} {us!s:>8}  {_outcome(e)}")
    if rep.truncated:
        lines.append("(truncated: the trace reached Limits.record_bytes here)")
    return lines


_COMPARED = ("fork", "kind", "op", "args", "budget", "value", "raised", "unrecorded",
             "request", "server")


def diff(a: Any, b: Any) -> str | None:
    """``lexfast trace diff``: the first step where two traces differ (call or
    outcome; times are not compared), or ``None`` when they agree."""
    ra, rb = Replayer(a), Replayer(b)
    for step in range(max(len(ra.steps), len(rb.steps))):
        ea, eb = ra.steps.get(step), rb.steps.get(step)
        if ea is None or eb is None:
            which = "A" if ea is None else "B"
            other = eb if ea is None else ea
            assert other is not None
            return (f"step {step}: {which} ends here; the other has "
                    f"{_call_text(other.get('kind'), other.get('op'), other.get('args', []))}"
                    if "kind" in other else f"step {step}: {which} ends here")
        if any(ea.get(k) != eb.get(k) for k in _COMPARED):
            def text(e: dict[str, Any]) -> str:
                call = (f"note_call_budget({e['budget']})" if "budget" in e
                        else f"request {e['request']}" if "request" in e
                        else _call_text(e["kind"], e["op"], e["args"]))
                return f"fork {e['fork']} {call} -> {_outcome(e)}"
            return f"step {step}: the runs diverge\n  A: {text(ea)}\n  B: {text(eb)}"
    return None


def parse_override(text: str) -> tuple[int, Any]:
    """``N=JSON`` (the CLI's ``--override``) as ``(N, value)``."""
    step, sep, value = text.partition("=")
    if not sep or not step.strip().isdigit():
        raise ValueError(f"--override must be N=JSON (a step number, `=`, a value), got {text!r}")
    try:
        return int(step), decode(value)
    except CodecError as e:
        raise ValueError(f"--override {step}: {e}") from None


Attach = Callable[[Any], None]

__all__ = ["Recorder", "Replayer", "parse_override", "show", "diff", "SCRUBBED", "TRACE_VERSION"]
