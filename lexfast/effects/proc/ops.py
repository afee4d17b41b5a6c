"""proc.spawn (legacy std.proc) and process.spawn/read_stdout_line/
read_stderr_line/wait/kill/run (std.process); every op is gated on ``proc``.

Shapes and messages follow the reference. Where we are stricter or do the
real thing (docs/design.md §5):

- ``--allow-proc``: a bare entry allows that name as found on PATH's absolute
  entries; a path-qualified command runs only if it resolves to the file an
  entry names (the reference compared basenames only), and then runs *as
  that entry*: its path goes to exec and it is ``argv[0]`` (as a shell
  would pass it: ``xzcat``, or a path entry's absolute path), so a
  multi-call binary (``xzcat -> xz``) cannot be made another tool by its
  spelling (``scope.resolve_command``). argv goes straight to exec, never
  through a shell. With a non-empty list, ``process.spawn``'s ``env`` may set
  only an allowlist: ``scope.SAFE_CHILD_ENV`` (locale, ``TZ``, ``TERM``,
  ``NO_COLOR``, with checked values) and the operator's
  ``Limits.child_env_allow`` (``scope.child_env_refusal``).
- Output is bounded: ``proc.spawn``/``process.run`` capture at most
  ``Limits.proc_output_bytes`` per stream (then the child is killed and an
  ``err`` returned); a ``process.*`` handle buffers at most that much unread
  output per stream, and all of a session's handles together at most
  ``SESSION_OUTPUT_FACTOR`` times that (past either, whole lines are dropped
  and the next read of that stream raises once); a line is at most
  ``Limits.proc_line_bytes``. The caps count memory, not text: each buffered
  line costs its bytes plus ``LINE_COST`` (what Python holds for it), and a
  partial line counts too, so empty or tiny lines cannot hold more than the
  cap.
- One pump thread per session drains every live child's stdout and stderr
  (and writes a stdin payload, however large) with epoll, so a child flooding
  stderr never blocks a reader of its stdout, a read on one handle never waits
  for another, and ``wait`` never deadlocks on a full pipe.
- Children start with default signal dispositions and an empty signal mask,
  whatever lexfast inherited (``lexfast.effects.proc.children``), in their own session, so a
  signal goes to the child's whole process group: ``process.kill`` honours
  the signal name; eviction from the 256-entry registry and
  ``handler.close()`` send SIGTERM, SIGKILL after ``KILL_GRACE_S``, and reap:
  no zombies. The group is killed even when its leader has already exited
  or been reaped (a ``sh -c "sleep 100 &"`` grandchild, after
  ``process.wait`` or ``proc.spawn`` returned, is killed at ``close()``).
  A process that leaves the group (``setsid``, ``setpgid``) escapes it: a
  documented limit (SECURITY.md).
- Every wait ends at ``close()``: a ``proc.spawn``/``process.run`` in flight
  (even one whose output pipe a grandchild holds open), ``process.wait`` and
  ``read_*_line`` raise ``the handler is closed`` within ``Child._SLICE``.
"""

from __future__ import annotations

import errno as _errno
import os
import select
import signal as _signal
import threading
import time
import weakref

from ...errors import EffectError
from ...kernel import NONE, Variant, err, expect_handle, expect_str, next_handle, ok, some
from ...scope import MAX_ARG_BYTES, MAX_ARGS, child_env_refusal, resolve_command
from ...values import Map, debug_repr, debug_str_list, os_error_text
from .children import (
    READ_CHUNK,
    Cancelled,
    Child,
    LiveChild,
    Marker,
    OutputBudget,
    Pump,
    TimeoutExpired,
    confinement,
    kill_group_and_reap,
    spawn,
)

#: SIGTERM to SIGKILL, for an evicted child or one alive at ``close()``.
KILL_GRACE_S = 0.5
#: Unread output of all of a session's live children together, as a multiple
#: of ``Limits.proc_output_bytes`` (one stream's cap).
SESSION_OUTPUT_FACTOR = 4
#: Reaped children whose group still had members, kept to be killed at
#: close(): at most this many keep a pidfd (the rest are signalled by number).
ORPHAN_PIDFDS = 64

_NUL_TEXT = "nul byte found in provided data"


# -- per-session state ---------------------------------------------------------

class _State:
    """What one session's processes share: the pump, the live children and
    the synchronous runs in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pump: Pump | None = None
        self.pool: OutputBudget | None = None
        self.live: set = set()
        self.inflight: set = set()
        #: reaped children whose process group still had members
        self.orphans: list = []
        self.closing = False
        #: set at close (shutdown hook): every wait on a child ends
        self.closed_event = threading.Event()
        self.term_deadline = 0.0

    def get_pool(self, limits) -> OutputBudget:
        with self.lock:
            if self.pool is None:
                self.pool = OutputBudget(SESSION_OUTPUT_FACTOR * limits.proc_output_bytes)
            return self.pool

    def get_pump(self) -> Pump:
        with self.lock:
            if self.closing:
                raise EffectError("the handler is closed")
            if self.pump is None or self.pump.quitting:
                self.pump = Pump()
            return self.pump

    def on_shutdown(self, session_ref) -> None:
        session = session_ref()
        if session is None or not session.closed:
            return  # a server shutdown, not a close: children keep running
        with self.lock:
            self.closing = True
            self.term_deadline = time.monotonic() + KILL_GRACE_S
            live = list(self.live)
            inflight = list(self.inflight)
            orphans, self.orphans = self.orphans, []
        self.closed_event.set()
        for proc in live:
            proc.popen.signal_group(_signal.SIGTERM)
        for p in inflight:
            p.signal_group(_signal.SIGKILL)
        for c in orphans:
            c.signal_group(_signal.SIGKILL)
            c.release()

    def on_close(self) -> None:
        with self.lock:
            self.closing = True
            live = list(self.live)
        self.closed_event.set()
        for proc in live:  # anything the registry no longer held
            _terminate(self, proc)
        with self.lock:
            pump, self.pump = self.pump, None
        if pump is not None:
            pump.quit()


    def reaped(self, child: Child) -> None:
        """``child`` was just reaped: if its group still has members, keep it
        to kill them at close (and forget groups found empty)."""
        if child.group_gone():
            return
        with self.lock:
            if self.closing:
                keep = False
            else:
                self.orphans = [c for c in self.orphans if c.group_alive]
                self.orphans.append(child)
                keep = True
                extra = self.orphans[:-ORPHAN_PIDFDS]
        if not keep:
            child.signal_group(_signal.SIGKILL)
            child.release()
            return
        for c in extra:
            c.drop_pidfd()

    def prune(self) -> None:
        """Forget kept groups whose members have all exited."""
        with self.lock:
            orphans = list(self.orphans)
        gone = [c for c in orphans if c.group_gone()]
        if gone:
            with self.lock:
                self.orphans = [c for c in self.orphans if c not in gone]
            for c in gone:
                c.release()


def _new_state(session) -> _State:
    st = _State()
    ref = weakref.ref(session)
    session.on_shutdown(lambda st=st, ref=ref: st.on_shutdown(ref))
    session.on_close(st.on_close)
    return st


def _state(session) -> _State:
    return session.state("proc", _new_state)


def _registry(h):
    st = _state(h.session)
    return st, h.session.registry("process", on_evict=lambda _h, proc, st=st: _terminate(st, proc))


# -- signals and reaping -----------------------------------------------------------

def _terminate(st: _State, proc: LiveChild) -> None:
    """Evicted or closing: SIGTERM the group, SIGKILL it after the grace
    period (whether or not the leader is still running: what it started
    goes too), reap, release the pipes."""
    p = proc.popen
    if p.returncode is None:
        if st.closing and st.term_deadline:
            grace = max(0.0, st.term_deadline - time.monotonic())  # TERM sent to all at once
        else:
            p.signal_group(_signal.SIGTERM)
            grace = KILL_GRACE_S
        if p.status() is None:
            try:
                p.wait(timeout=grace)
            except TimeoutExpired:
                pass
        kill_group_and_reap(p)
    with st.lock:
        st.live.discard(proc)
        pump = st.pump
    if pump is not None:
        pump.release(proc)
    else:
        proc.close_fds()


_SIGNALS = {name: sig for name, sig in _signal.Signals.__members__.items()}


def _parse_signal(name: str):
    s = name.strip().upper()
    if s.isdigit():
        n = int(s)
        return n if n in _signal.valid_signals() else None
    if not s.startswith("SIG"):
        s = "SIG" + s
    return _SIGNALS.get(s)


# -- argument checks -------------------------------------------------------------

def _str_args(args, label: str, missing: str | None) -> list:
    if len(args) < 2:
        if missing is not None:
            raise EffectError(missing)
        raise EffectError(f"{label}: args must be List[Str]")
    raw = args[1]
    if not isinstance(raw, list):
        if missing is not None:
            raise EffectError(f"{label}: args must be List[Str], got {debug_repr(raw)}")
        raise EffectError(f"{label}: args must be List[Str]")
    out = []
    for v in raw:
        if not isinstance(v, str):
            raise EffectError(f"{label}: arg must be Str, got {debug_repr(v)}")
        out.append(str(v))
    return out


def _allowed(h, cmd: str, label: str):
    """(executable, argv[0], None) or (None, None, err value). argv[0] is the
    allowed entry, not the caller's spelling (``resolve_command``)."""
    allow = h.policy.allow_proc
    if "\0" in cmd or not _encodable(cmd):
        if allow:
            return None, None, err(
                f"{label}: `{cmd}` not in --allow-proc {debug_str_list(allow)}")
        return None, cmd, None
    try:
        exe, argv0 = resolve_command(cmd, allow)
    except PermissionError:
        return None, None, err(f"{label}: `{cmd}` not in --allow-proc {debug_str_list(allow)}")
    return exe, argv0, None


def _encodable(s: str) -> bool:
    # a lone surrogate the filesystem encoding cannot carry names no file
    try:
        os.fsencode(s)
    except UnicodeError:
        return False
    return True


def _not_found():
    return FileNotFoundError(_errno.ENOENT, os.strerror(_errno.ENOENT))


def _spawn_error(e: BaseException) -> str:
    if isinstance(e, OSError):
        return os_error_text(e)
    if isinstance(e, ValueError) and "null" in str(e):
        return _NUL_TEXT
    if isinstance(e, UnicodeError):
        return "argument is not valid UTF-8"
    return str(e)


# -- proc.spawn and process.run: run to completion, bounded capture -----------------

# ``cmd`` is the child's argv[0]: the allowed entry, not the caller's spelling.
def _capture(h, cmd: str, exe, argv: list, cap: int, label: str, fail_prefix: str):
    if "\0" in cmd or any("\0" in a for a in argv):
        return err(f"{fail_prefix}: {_NUL_TEXT}")
    if exe is None and "/" not in cmd:
        return err(f"{fail_prefix}: {os_error_text(_not_found())}")
    st = _state(h.session)
    if st.closing:
        raise EffectError("the handler is closed")
    rules = confinement(h.policy, h.session.limits, label)
    st.prune()
    fds = []
    try:  # the pipes too: out of descriptors (EMFILE) is a spawn failure, not a bug
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        fds.append(null)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        fds += [out_r, out_w]
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        fds += [err_r, err_w]
        p = spawn([cmd, *argv], exe, stdin=null, stdout=out_w, stderr=err_w, confine=rules,
                  defer_exec_errors=True)
    except (OSError, ValueError, UnicodeError) as e:
        for fd in fds:
            os.close(fd)
        return err(f"{fail_prefix}: {_spawn_error(e)}")
    for fd in (null, out_w, err_w):
        os.close(fd)
    with st.lock:
        st.inflight.add(p)
        closing = st.closing
    if closing:  # closed while it started: the close hook may have missed it
        p.signal_group(_signal.SIGKILL)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    names = {out_r: "stdout", err_r: "stderr"}
    poller = select.poll()
    for fd in bufs:
        poller.register(fd, select.POLLIN)
    open_fds = set(bufs)
    over = None
    closed = st.closed_event
    try:
        while open_fds:
            # in slices: a grandchild outside the group may hold a pipe open
            # for ever, and close() must still end this call
            if closed.is_set():
                raise EffectError(f"{label}: the handler is closed")
            for fd, _ev in poller.poll(100):
                data = os.read(fd, READ_CHUNK)
                if not data:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                buf = bufs[fd]
                buf += data
                if len(buf) > cap:
                    over = names[fd]
                    break
            if over:
                p.signal_group(_signal.SIGKILL)
                break
        try:
            p.wait(cancel=closed)
        except Cancelled:
            raise EffectError(f"{label}: the handler is closed") from None
        rc = p.reap()
        st.reaped(p)
        if closed.is_set():  # killed by close(): not the child's own result
            raise EffectError(f"{label}: the handler is closed")
        failed = p.exec_error()  # a confined target that never ran
    except BaseException:
        kill_group_and_reap(p)
        raise
    finally:
        os.close(out_r)
        os.close(err_r)
        p.release_exec_report()
        with st.lock:
            st.inflight.discard(p)
    if failed is not None:
        return err(f"{fail_prefix}: {_spawn_error(failed)}")
    if over:
        return err(f"{label}: {over} exceeds the {cap}-byte output cap")
    return ok({"stdout": bufs[out_r].decode("utf-8", "replace"),
               "stderr": bufs[err_r].decode("utf-8", "replace"),
               "exit_code": rc if rc >= 0 else -1})


def proc_spawn(h, args):
    cmd = expect_str(args, 0)
    argv = _str_args(args, "proc.spawn", "proc.spawn: missing args list")
    exe, argv0, denied = _allowed(h, cmd, "proc.spawn")
    if denied is not None:
        return denied
    if len(argv) > MAX_ARGS:
        return err("proc.spawn: arg-count exceeds 1024")
    for a in argv:
        if len(a) > MAX_ARG_BYTES // 4 and len(a.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES:
            return err("proc.spawn: per-arg length exceeds 64 KiB")
    return _capture(h, argv0, exe, argv, h.session.limits.proc_output_bytes, "proc.spawn",
                    f"spawn `{cmd}`")


def process_run(h, args):
    cmd = expect_str(args, 0)
    argv = _str_args(args, "process.run", None)
    exe, argv0, denied = _allowed(h, cmd, "process.run")
    if denied is not None:
        return denied
    return _capture(h, argv0, exe, argv, h.session.limits.proc_output_bytes, "process.run",
                    f"process.run `{cmd}`")


# -- process.* handles -------------------------------------------------------------

def _some(v):
    if isinstance(v, Variant) and v.name == "Some" and len(v.args) >= 1:
        return v.args[0]
    return None


def process_spawn(h, args):
    cmd = expect_str(args, 0)
    argv = _str_args(args, "process.spawn", None)
    opts = args[2] if len(args) > 2 else None
    if not isinstance(opts, dict) or isinstance(opts, Map):
        raise EffectError("process.spawn: missing or invalid opts record")
    allow = h.policy.allow_proc
    exe, argv0, denied = _allowed(h, cmd, "process.spawn")
    if denied is not None:
        return denied
    fail = f"process.spawn `{cmd}`"

    cwd = _some(opts.get("cwd"))
    cwd = str(cwd) if isinstance(cwd, str) else None
    env_in = opts.get("env")
    extra = {}
    if env_in is not None and not isinstance(env_in, Map):
        # The reference reads `env` only as a Map and ignores anything else,
        # so a Record's variables would silently not be set: said instead.
        raise EffectError(f"process.spawn: opts.env must be a Map[Str, Str], got {debug_repr(env_in)}")
    if env_in is not None:
        for k, v in env_in.items():
            if isinstance(k, str) and isinstance(v, str):
                if allow:  # an allowlist: anything else may re-route the binary
                    try:
                        why = child_env_refusal(k, v, h.session.limits.child_env_allow)
                    except ValueError as e:  # the operator's Limits
                        raise EffectError(f"process.spawn: {e}") from None
                    if why is not None:
                        return err(f"process.spawn: env may not set {why}")
                extra[str(k)] = str(v)
    payload = _some(opts.get("stdin"))
    payload = bytes(payload) if isinstance(payload, (bytes, bytearray, memoryview)) else None

    if "\0" in cmd or any("\0" in a for a in argv) or any(
            "\0" in k or "\0" in v for k, v in extra.items()):
        return err(f"{fail}: {_NUL_TEXT}")
    env = None
    if extra:
        env = dict(os.environ)
        env.update(extra)
    if not allow and "PATH" in extra and "/" not in cmd:
        exe = None  # the escape hatch: the child's PATH finds it, as Command does
    elif exe is None and "/" not in cmd:
        return err(f"{fail}: {os_error_text(_not_found())}")

    rules = confinement(h.policy, h.session.limits, "process.spawn")
    st, reg = _registry(h)
    try:
        pump = st.get_pump()
    except OSError as e:  # its epoll and eventfd: out of descriptors is a spawn failure
        return err(f"{fail}: {_spawn_error(e)}")
    st.prune()
    fds = []
    try:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        fds += [in_r, in_w]
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        fds += [out_r, out_w]
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        fds += [err_r, err_w]
        p = spawn([argv0, *argv], exe, stdin=in_r, stdout=out_w, stderr=err_w, cwd=cwd, env=env,
                  confine=rules)
    except (OSError, ValueError, UnicodeError) as e:
        for fd in fds:
            os.close(fd)
        return err(f"{fail}: {_spawn_error(e)}")
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    proc = LiveChild(p, in_w, out_r, err_r, payload, h.session.limits,
                 st.get_pool(h.session.limits))
    with st.lock:
        st.live.add(proc)
        closing = st.closing
    try:
        if closing:  # closed while it started: the close hook may have missed it
            raise EffectError("process.spawn: the handler is closed")
        pump.add(proc)
    except BaseException:
        _terminate(st, proc)
        raise
    handle = next_handle()
    reg.insert(handle, proc)
    return ok(handle)


def _lookup(h, args, op: str):
    handle = expect_handle(args, 0, "ProcessHandle", "ProcessHandle")
    return handle, _lookup_handle(h, handle, op)


def _lookup_handle(h, handle, op):
    st, reg = _registry(h)
    proc = reg.touch_get(handle)
    if proc is None:
        raise EffectError(f"process.{op}: closed or unknown ProcessHandle")
    return st, reg, proc


def _read_line(h, args, which: str):
    _handle, (st, _reg, proc) = _lookup(h, args, f"read_{which}_line")
    try:
        item = (proc.out if which == "stdout" else proc.err).read_line(st.closed_event)
    except EffectError as e:
        raise EffectError(f"process.read_{which}_line: {e}") from None
    if item is None:
        return NONE
    if isinstance(item, Marker):
        raise EffectError(f"process.read_*_line: {item.message}")
    if item.endswith(b"\r"):
        item = item[:-1]
    try:
        return some(item.decode("utf-8"))
    except UnicodeDecodeError:
        raise EffectError("process.read_*_line: stream did not contain valid UTF-8") from None


def process_read_stdout_line(h, args):
    return _read_line(h, args, "stdout")


def process_read_stderr_line(h, args):
    return _read_line(h, args, "stderr")


def process_wait(h, args):
    handle, (st, reg, proc) = _lookup(h, args, "wait")
    pump = st.pump
    if pump is not None:
        pump.close_stdin(proc)  # Child::wait closes stdin first
    try:
        proc.popen.wait(cancel=st.closed_event)
    except Cancelled:
        raise EffectError("process.wait: the handler is closed") from None
    if st.closed_event.is_set():  # killed by close(): not the child's own end
        raise EffectError("process.wait: the handler is closed")
    rc = proc.popen.reap()
    st.reaped(proc.popen)
    reg.remove(handle)
    with st.lock:
        st.live.discard(proc)
    if pump is not None:
        pump.release(proc)
    else:
        proc.close_fds()
    return {"code": rc if rc >= 0 else -1, "signaled": rc < 0}


def process_kill(h, args):
    handle = expect_handle(args, 0, "ProcessHandle", "ProcessHandle")
    name = expect_str(args, 1)
    _st, _reg, proc = _lookup_handle(h, handle, "kill")
    sig = _parse_signal(name)
    if sig is None:
        return err(f"process.kill: unknown signal `{name}`")
    p = proc.popen
    if p.status() is not None:
        return ok(None)  # already exited (Child::kill is Ok then too)
    p.signal_group(sig)  # not reaped: the group id is still the child's
    return ok(None)


ROWS = [
    ("proc", "spawn", "proc", proc_spawn),
    ("process", "spawn", "proc", process_spawn),
    ("process", "read_stdout_line", "proc", process_read_stdout_line),
    ("process", "read_stderr_line", "proc", process_read_stderr_line),
    ("process", "wait", "proc", process_wait),
    ("process", "kill", "proc", process_kill),
    ("process", "run", "proc", process_run),
]
