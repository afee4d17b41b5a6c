"""``DefaultHandler``: the policy, the effect table and the session a VM
dispatches through (docs/design.md §2).

A *session* is one handler and all its forks: they share the budget pool, the
handle registries, the sink, the program and the shutdown signal. Handles are
valid only within the session that opened them.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    import numpy

from . import builtins as _builtins
from .effects.approval import NO_APPROVAL_SINK
from .effects.log import write_stderr
from .errors import EffectError
from .kernel import BudgetPool, HandlerCore, LRURegistry, Stats, Variant
from .policy import Policy
from .stats import view
from .table import EffectTable, default_table
from .values import LexValue, one_line

#: A VM's pure builtin: called with the args list, no policy check.
PureFn = Callable[[list[LexValue]], LexValue]
#: ``runner(program, handler, fn_name, args)``: how the servers call back into the VM.
Runner = Callable[[Any, "DefaultHandler", str, list[LexValue]], LexValue]
#: ``invoke(closure, handler, args)``: how the handler calls a Lex closure
#: value the program passed it (``net.serve_fn``'s handler, a WebSocket
#: ``on_message``): the VM's ``invoke_closure_value``. ``handler`` is a fork.
Invoker = Callable[[Any, "DefaultHandler", list[LexValue]], LexValue]
#: What ``read_root`` accepts (resolved to an absolute ``str``).
PathArg = str | bytes | os.PathLike[str] | os.PathLike[bytes]

#: Registries are capped per session (the reference's 256, per kind).
REGISTRY_CAP = 256


# -- sinks -------------------------------------------------------------------

class Sink(Protocol):
    """Where ``io.print`` goes: any object with ``print_line(str)``."""

    def print_line(self, s: str) -> None: ...


class StdoutSink:
    """``io.print`` to standard output, one line per call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def print_line(self, s: str) -> None:
        with self._lock:
            out = sys.stdout
            out.write(s + "\n")
            out.flush()


class StderrSink(StdoutSink):
    """``io.print`` to standard error, framed: standard error also carries
    lexfast's own lines (logs, ``net.serve: listening on ...``), so each print
    is one line ``io.print: <text>`` with line breaks and control characters
    escaped, which none of those can be taken for."""

    def print_line(self, s: str) -> None:
        write_stderr("io.print: " + one_line(s) + "\n")


class CapturedSink:
    """Keeps printed lines in ``lines`` (tests, embedding)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def print_line(self, s: str) -> None:
        with self._lock:
            self.lines.append(s)


# -- approval ----------------------------------------------------------------

#: ``sink(scope, reason)``: the operator's answer. A ``str`` approves (it is
#: the answer ``Ok`` carries); ``None`` denies (``denied by operator``); an
#: ``err(reason)`` / ``ok(answer)`` Variant is returned as it is.
ApprovalSink = Callable[[str, str], "str | Variant | None"]


# -- limits ------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    """Bounds on everything read from outside (docs/design.md §5). Operator
    configuration: agent code cannot change them."""

    read_bytes: int = 64 << 20            # io.read, fs reads
    proc_output_bytes: int = 16 << 20     # proc.spawn / process.run, each stream; process.*
    #                                       unread output per stream by memory (line + 96), 4x per session
    proc_line_bytes: int = 1 << 20        # process.read_*_line, one line
    readline_bytes: int = 1 << 20         # io.readline, one line of input
    # process.spawn env names a program may set under --allow-proc besides
    # LANG, LANGUAGE, LC_*, TZ, TERM, NO_COLOR: exact names or PREFIX* patterns
    child_env_allow: tuple[str, ...] = ()
    # Kernel confinement of every child (process.*, proc.spawn, MCP servers;
    # lexfast.scope.confine): on wherever the kernel has Landlock and the
    # exec helper was built; require_confinement refuses to spawn otherwise.
    confine_children: bool = True
    require_confinement: bool = False
    # what a confined child may read and execute besides --allow-fs-read
    # (when that is set) and its own binary's directory: what programs need
    # to start. Root children read /etc/shadow under it: narrow it if so.
    child_read_paths: tuple[str, ...] = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                                         "/libx32", "/etc")
    # devices a confined child may read and write (and ioctl)
    child_devices: tuple[str, ...] = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                      "/dev/urandom")
    walk_entries: int = 100_000           # fs.walk, fs.glob results
    listing_bytes: int = 64 << 20         # fs.walk, fs.glob, fs.list_dir: bytes of all paths returned
    sql_rows: int = 100_000               # sql.query rows
    stream_line_bytes: int = 1 << 20      # http.stream_lines / agent.cloud_stream, one line
    stream_bytes: int = 64 << 20          # one such stream, all it reads
    stream_timeout_s: float = 600.0       # one such stream, start to end (the reference's 10 min)
    stream_items: int = 1_000_000         # stream.collect items
    http_body_bytes: int = 10 << 20       # http.*, net.get/post responses
    http_timeout_s: float = 300.0         # whole HTTP request, and cap on http.send timeout_ms
    http_ca_bundle: str | None = None     # PEM CA file replacing the system store (operator, tests)
    http_proxy: str | None = None         # HTTP client proxy URL; None: no proxy, env ignored
    request_body_bytes: int = 10 << 20    # net.serve request bodies (413 past it)
    mcp_timeout_s: float = 30.0           # one agent.call_mcp request (tools/call)
    mcp_start_timeout_s: float = 30.0     # starting an MCP server: its initialize reply
    mcp_reply_bytes: int = 16 << 20       # one MCP reply line
    llm_timeout_s: float = 120.0          # agent.local_complete / cloud_complete
    a2a_timeout_s: float = 120.0          # agent.send_a2a, one message/send round trip
    kv_sync: bool = True                  # fsync each kv commit (power-loss safe)
    kv_map_size: int = 1 << 30            # initial lmdb map (sparse; doubled when full)
    kv_map_max: int = 1 << 40             # lmdb map never grows past it; larger stores refused
    kv_verify: bool = True                # walk a store's whole data.mdb at its first open (lmdb trusts its pages)
    kv_list_keys: int = 1_000_000         # kv.list_prefix keys
    sql_timeout_s: float = 30.0           # one sql.exec/sql.query (then interrupted)
    sql_result_bytes: int = 64 << 20      # sql.query result (Str/Bytes cells), and one value
    sql_memory_bytes: int = 512 << 20     # SQLite's heap, process-wide (its hard heap limit;
                                          # the smallest of any session that opened a database)
    redis_timeout_s: float = 10.0         # redis.*: connect, each read, and one whole reply
    redis_reply_bytes: int = 64 << 20     # redis.*: one reply (a value, an hgetall), as it arrives
    redis_block_s: float = 300.0          # redis.brpop: longest wait (its 0, "forever", means this)
    redis_connections: int = 64           # redis.*: pooled connections per ConnRedis handle
    redis_ca_bundle: str | None = None    # rediss://: PEM CA file replacing the system store
    serve_threads: int = 16               # net.serve worker pool
    serve_grace_s: float = 5.0            # in-flight requests at shutdown
    ws_connections: int = 1024            # net.serve_ws connection cap
    serve_idle_s: float = 10.0            # net.serve* idle keep-alive / slow-read timeout
    serve_keepalive_conns: int = 1024     # net.serve* idle keep-alive connections kept open
    ws_queue_bytes: int = 4 << 20         # net.serve_ws outbound queue per connection (chars)
    record_bytes: int = 256 << 20         # a trace (record=): past it, one marker line and no more
    # Policy(budget_pool=): the largest block of units one lease takes from
    # the shared pool (also at most 1/64 of the ceiling); a process killed
    # holding a lease loses at most this much of the ceiling
    budget_lease: int = 1 << 20
    budget_pool_timeout_s: float = 5.0    # one round trip to the budget pool's Redis
    budget_pool_ca_bundle: str | None = None  # rediss:// pools: PEM CA file replacing the system store


# -- the session ---------------------------------------------------------------

class Session:
    """What a handler shares with its forks."""

    def __init__(self, sink: Sink, read_root: str | None, program: Any,
                 runner: Runner | None, limits: Limits, invoke: Invoker | None = None) -> None:
        self.sink = sink
        self.read_root = read_root
        self.program = program
        self.runner = runner
        #: the VM's closure hook (``DefaultHandler(invoke=...)``); None: none given
        self.invoke = invoke
        self.limits = limits
        #: io.readline's binary (or text) stream; None: sys.stdin at each call
        self.input: Any = None
        self.input_lock = threading.Lock()
        #: io.argv
        self.program_args: tuple[str, ...] = ()
        #: approval.request's sink; None: every request refused
        self.approval_sink: ApprovalSink | None = None
        self.lock = threading.RLock()
        self.shutdown_event = threading.Event()
        self._registries: dict[str, tuple[LRURegistry, Callable[[Any, Any], Any] | None]] = {}
        self._states: dict[str, Any] = {}
        self._shutdown_hooks: list[Callable[[], None]] = []
        self._close_hooks: list[Callable[[], None]] = []
        self.closed = False
        #: ``record=``/``replay=``: what installs the recording or replaying
        #: dispatch on the handler and each fork (``lexfast.record``); None: neither
        self.tracer: Any = None

    def registry(self, name: str, on_evict: Callable[[Any, Any], Any] | None = None,
                 cap: int = REGISTRY_CAP) -> LRURegistry:
        """The session's registry called ``name``, made on first use.
        ``on_evict(handle, value)`` releases a resource the LRU pushes out,
        and every remaining one when the session closes."""
        entry = self._registries.get(name)
        if entry is None:
            with self.lock:
                entry = self._registries.get(name)
                if entry is None:
                    if self.closed:
                        raise EffectError("the handler is closed")
                    entry = (LRURegistry(cap, on_evict), on_evict)
                    self._registries[name] = entry
        return entry[0]

    def state(self, name: str, make: Callable[[Session], Any] | None = None) -> Any:
        """An effect family's own per-session state called ``name``, made once
        by ``make(session)`` on first use (which may register close and
        shutdown hooks). Without ``make``, the state or ``None``."""
        st = self._states.get(name)
        if st is None and make is not None:
            with self.lock:
                st = self._states.get(name)
                if st is None:
                    if self.closed:
                        raise EffectError("the handler is closed")
                    st = make(self)
                    self._states[name] = st
        return st

    def on_shutdown(self, hook: Callable[[], None]) -> None:
        with self.lock:
            self._shutdown_hooks.append(hook)

    def remove_shutdown_hook(self, hook: Callable[[], None]) -> None:
        with self.lock:
            try:
                self._shutdown_hooks.remove(hook)
            except ValueError:
                pass

    def on_close(self, hook: Callable[[], None]) -> None:
        with self.lock:
            self._close_hooks.append(hook)

    def shutdown(self) -> None:
        self.shutdown_event.set()
        with self.lock:
            hooks = list(self._shutdown_hooks)
        for hook in hooks:
            try:
                hook()
            except Exception:
                pass

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            registries = list(self._registries.values())
            hooks = list(self._close_hooks)
        self.shutdown()
        for reg, release in registries:
            for handle, value in reg.pop_all():
                if release is not None:
                    try:
                        release(handle, value)
                    except Exception:
                        pass
        for hook in hooks:
            try:
                hook()
            except Exception:
                pass

    def __del__(self) -> None:
        try:
            if not self.closed:
                self.close()
        except Exception:
            pass


def _pure_table(pure: Mapping[tuple[str, str], PureFn] | None
                ) -> dict[str, dict[str, PureFn]] | None:
    """The standard library's pure builtins, with the VM's own (``pure``)
    added or replacing them."""
    if not pure:
        return _builtins.TABLE
    out: dict[str, dict[str, PureFn]] = {k: dict(ops) for k, ops in _builtins.TABLE.items()}
    for key, fn in pure.items():
        if not (isinstance(key, tuple) and len(key) == 2
                and isinstance(key[0], str) and isinstance(key[1], str)):
            raise TypeError(f"pure: keys must be (kind, op) pairs of str, got {key!r}")
        if not callable(fn):
            raise TypeError(f"pure: {key[0]}.{key[1]} is not callable")
        out.setdefault(key[0], {})[key[1]] = fn
    return out


class DefaultHandler(HandlerCore):
    """The effect handler a VM calls: ``dispatch(kind, op, args)`` for every
    effect and ``note_call_budget(cost)`` before every costed call.

    ``pure`` maps ``(kind, op)`` to the VM's own pure builtins (called with
    the args list, no policy check). ``runner(program, handler, fn_name,
    args)`` is how the servers call back into the VM by function name;
    ``invoke(closure, handler, args)`` is how the handler calls a closure
    value the program passed it (``invoke_closure``). ``table`` replaces the
    default effect table (see ``EffectTable.with_rows``); ``limits`` bounds
    what is read from outside.

    ``record`` (a path or a text stream) writes every effect of the session
    to a trace; ``replay`` (a path or a readable stream) answers every effect
    from one, performing none: ``overrides`` answers step N with another
    value, ``replay_then_live`` performs the calls past the trace's end.
    ``record_pure`` records pure builtins too; ``secret_env`` names env
    values to scrub besides the secret-looking ones (docs/design.md §8).
    """

    if TYPE_CHECKING:
        # The compiled core implements these; typed here as the public API.
        @property
        def policy(self) -> Policy: ...

        def dispatch(self, kind: str, op: str, args: Sequence[LexValue]) -> LexValue:
            """Run the effect ``kind.op`` under the policy: a pure builtin
            first, else the gate, else the effect. Raises ``EffectError`` (or
            ``PolicyDenied``) where the reference aborts the call."""

        def note_call_budget(self, cost: int) -> None:
            """Deduct ``cost`` from the session's pool; ``BudgetExceeded``
            without deducting when it would go below zero."""

        @property
        def budget_remaining(self) -> int | None: ...

        @property
        def budget_ceiling(self) -> int | None: ...

    session: Session

    def __init__(self, policy: Policy | None = None, *, sink: Sink | None = None,
                 read_root: PathArg | None = None, program: Any = None,
                 runner: Runner | None = None, invoke: Invoker | None = None,
                 pure: Mapping[tuple[str, str], PureFn] | None = None,
                 table: EffectTable | None = None, limits: Limits | None = None,
                 stats: bool = True, timing: bool = False,
                 record: PathArg | TextIO | None = None,
                 replay: PathArg | IO[str] | IO[bytes] | None = None, record_pure: bool = False,
                 secret_env: Sequence[str] = (),
                 overrides: Mapping[int, LexValue] | None = None,
                 replay_then_live: bool = False) -> None:
        if policy is None:
            policy = Policy.pure()
        elif not isinstance(policy, Policy):
            raise TypeError(f"policy must be a lexfast.Policy, not {type(policy).__name__}")
        if limits is None:
            limits = Limits()
        if table is None:
            table = default_table()
        if invoke is not None and not callable(invoke):
            raise TypeError("invoke must be callable as invoke(closure, handler, args)")
        self.session = Session(sink if sink is not None else StdoutSink(),
                               _resolve_root(read_root), program, runner, limits, invoke)
        counters = Stats(len(table.names), timing) if stats else None
        pool = BudgetPool(policy.budget)
        if policy.budget_pool is not None:
            pool = self._shared_pool(policy, limits)
        self._setup(policy, table, pool, _pure_table(pure), counters)
        if record is not None or replay is not None:
            self._trace(record, replay, record_pure, secret_env, overrides, replay_then_live)
        elif overrides or replay_then_live:
            raise ValueError("overrides and replay_then_live need replay")

    def _shared_pool(self, policy: Policy, limits: Limits) -> BudgetPool:
        from .budget_pool import RedisLease  # redis-py only when a pool is named
        if not (isinstance(limits.budget_lease, int) and limits.budget_lease >= 1):
            raise ValueError("Limits.budget_lease must be an int >= 1")
        assert policy.budget is not None and policy.budget_pool is not None
        lease = RedisLease(policy.budget_pool, policy.budget, limits)
        pool = BudgetPool(policy.budget, lease)
        lease.bind(pool)
        self.session.on_close(lambda: lease.close(pool))
        return pool

    def _trace(self, record: PathArg | TextIO | None,
               replay: PathArg | IO[str] | IO[bytes] | None, record_pure: bool, secret_env: Sequence[str],
               overrides: Mapping[int, LexValue] | None, then_live: bool) -> None:
        from .record import Recorder, Replayer
        if record is not None and replay is not None:
            raise ValueError("record and replay cannot be given together")
        if isinstance(secret_env, str):
            raise TypeError("secret_env must be a sequence of env names, not a str")
        tracer: Recorder | Replayer
        if record is not None:
            tracer = Recorder(record, self.session.limits.record_bytes,
                              record_pure=record_pure, secret_env=secret_env)
            self.session.on_close(tracer.close)
        else:
            tracer = Replayer(replay, overrides, then_live=then_live)
        self.session.tracer = tracer
        tracer.attach(self)

    def flush_record(self) -> None:
        """Wait until every call recorded so far is in the trace (``record=``)."""
        tracer = self.session.tracer
        if tracer is not None and hasattr(tracer, "flush"):
            tracer.flush()

    # -- configuration (builders return the handler) ----------------------
    def with_sink(self, sink: Sink) -> DefaultHandler:
        if not callable(getattr(sink, "print_line", None)):
            raise TypeError("sink must have a print_line(str) method")
        self.session.sink = sink
        return self

    def with_read_root(self, root: PathArg | None) -> DefaultHandler:
        self.session.read_root = _resolve_root(root)
        return self

    def with_input(self, stream: Any) -> DefaultHandler:
        """Where ``io.readline`` reads: a binary (or text) stream with
        ``readline(n)``; ``None`` is standard input (the default)."""
        if stream is not None and not callable(getattr(stream, "readline", None)):
            raise TypeError("input must have a readline(n) method")
        self.session.input = stream
        return self

    def with_program_args(self, args: Sequence[str]) -> DefaultHandler:
        """What ``io.argv`` returns (the program's own arguments)."""
        if isinstance(args, (str, bytes)) or not all(isinstance(a, str) for a in args):
            raise TypeError("program args must be a sequence of str")
        self.session.program_args = tuple(args)
        return self

    def with_approval_sink(self, sink: ApprovalSink | None) -> DefaultHandler:
        """Who answers ``approval.request(scope, reason)``: ``sink(scope,
        reason)`` returns the answer (``str``: approved, ``None``: denied, or
        an ``ok``/``err`` Variant). It may block (a person is asked); an
        exception it raises becomes an ``err``. ``None`` (the default)
        refuses every request."""
        if sink is not None and not callable(sink):
            raise TypeError("approval sink must be callable as sink(scope, reason)")
        self.session.approval_sink = sink
        return self

    def with_program(self, program: Any, runner: Runner | None = None) -> DefaultHandler:
        self.session.program = program
        if runner is not None:
            self.session.runner = runner
        return self

    def with_invoke(self, invoke: Invoker | None) -> DefaultHandler:
        """How closures are called: ``invoke(closure, handler, args)`` runs
        the Lex closure value ``closure`` with ``args`` on ``handler`` (a
        fork of this one) and returns its result, as the reference's
        ``Vm::invoke_closure_value``. ``None`` removes it (ops that take a
        closure then answer an error naming the hook)."""
        if invoke is not None and not callable(invoke):
            raise TypeError("invoke must be callable as invoke(closure, handler, args)")
        self.session.invoke = invoke
        return self

    def invoke_closure(self, closure: Any, args: Sequence[LexValue], *,
                       op: str = "invoke", fork: bool = True) -> LexValue:
        """Call the program's closure value ``closure`` with ``args`` through
        the session's ``invoke`` hook, on a fork of this handler (same
        policy, budget and registries) unless ``fork=False``. What the hook
        raises propagates (a server turns it into a 500). Without a hook:
        ``EffectError`` naming ``op`` and the missing hook."""
        hook = self.session.invoke
        if hook is None:
            raise EffectError(f"{op}: this handler cannot call closures: the VM must give "
                              "DefaultHandler(invoke=...) (or with_invoke)")
        if self.session.closed:
            raise EffectError(f"{op}: the handler is closed")
        return hook(closure, self.fork() if fork else self, list(args))

    def register_pure(self, kind: str, op: str, fn: PureFn) -> DefaultHandler:
        """Add a pure builtin to this handler (forks made later share it)."""
        merged = {(k, o): f for k, ops in (self._pure or {}).items() for o, f in ops.items()}
        merged[(kind, op)] = fn
        self._setup(self._policy, self._effects, self._pool, _pure_table(merged), self._stats)
        return self

    # -- statistics -------------------------------------------------------------
    def stats(self) -> numpy.ndarray[Any, Any]:
        """Per-``(kind, op)`` counters of this session (shared by its forks) as
        a read-only numpy structured array (fields ``calls``, ``denials``,
        ``errors``, ``total_ns``, ``max_ns``) that views the core's counters
        without copying: it stays live. Row ``i`` is ``self.stats_names()[i]``.
        ``total_ns``/``max_ns`` stay 0 unless timing is on. numpy is imported
        here, on first use, never by ``import lexfast``."""
        counters = self._stats
        if counters is None:
            raise EffectError("statistics are off for this handler (stats=False)")
        return view(counters)

    def stats_names(self) -> list[str]:
        """``kind.op`` for each row of :meth:`stats`."""
        return list(self.table.names)

    def stats_table(self, nonzero: bool = True) -> list[dict[str, str | int]]:
        """The counters as a list of dicts with ``effect`` names (no numpy)."""
        counters = self._stats
        if counters is None:
            return []
        out: list[dict[str, str | int]] = []
        for i, name in enumerate(self.table.names):
            row = counters.row(i)
            if nonzero and not row["calls"]:
                continue
            out.append({"effect": name, **row})
        return out

    def reset_stats(self) -> None:
        counters = self._stats
        if counters is not None:
            counters.reset()

    @property
    def timing(self) -> bool:
        """Whether each dispatch is timed into ``total_ns``/``max_ns`` (two
        clock reads, some 40 ns; off by default)."""
        counters = self._stats
        return bool(counters is not None and counters.timing)

    @timing.setter
    def timing(self, on: bool) -> None:
        counters = self._stats
        if counters is None:
            raise EffectError("statistics are off for this handler (stats=False)")
        counters.timing = bool(on)

    @property
    def sink(self) -> Sink:
        return self.session.sink

    @property
    def read_root(self) -> str | None:
        return self.session.read_root

    @property
    def program(self) -> Any:
        return self.session.program

    @property
    def runner(self) -> Runner | None:
        return self.session.runner

    @property
    def invoke(self) -> Invoker | None:
        """The closure hook (``DefaultHandler(invoke=...)``), or None."""
        return self.session.invoke

    @property
    def limits(self) -> Limits:
        return self.session.limits

    @property
    def table(self) -> EffectTable:
        return self._effects

    # -- sessions ------------------------------------------------------------
    def fork(self) -> DefaultHandler:
        """A handler for another thread or request: same policy, budget pool,
        registries, sink and program."""
        cls = type(self)
        child = cls.__new__(cls)
        child.session = self.session
        child._setup(self._policy, self._effects, self._pool, self._pure, self._stats)
        if self.session.tracer is not None:
            self.session.tracer.attach(child)
        return child

    def shutdown(self) -> None:
        """Stop the servers this session runs (any fork, any thread)."""
        self.session.shutdown()

    @property
    def is_shutdown(self) -> bool:
        return self.session.shutdown_event.is_set()

    def close(self) -> None:
        """Close every kv and sql handle, reap every child process the session
        opened, stop its servers. Idempotent."""
        self.session.close()

    def __enter__(self) -> DefaultHandler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DefaultHandler {self.policy!r}>"


def _resolve_root(root: PathArg | None) -> str | None:
    if root is None:
        return None
    root = os.fspath(root)
    if not isinstance(root, str):
        root = os.fsdecode(root)
    return os.path.realpath(os.path.abspath(root))


__all__ = ["DefaultHandler", "Session", "Limits", "StdoutSink", "StderrSink",
           "CapturedSink", "REGISTRY_CAP", "Sink", "ApprovalSink", "NO_APPROVAL_SINK"]
