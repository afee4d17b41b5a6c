"""The public API as a VM uses it, checked by mypy in CI (``.ci/run``;
``[tool.mypy]`` in pyproject.toml), never run by pytest.

Every expression here must have a precise type (``disallow_any_expr``): an
annotation lost on the public surface, or a name that falls back to ``Any``,
fails the check. Types are asserted by assigning to annotated variables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lexfast
from lexfast import (
    COMPILED,
    KNOWN_EFFECTS,
    NONE,
    BudgetExceeded,
    CapturedSink,
    DefaultHandler,
    Deque,
    EffectError,
    EffectTable,
    LexValue,
    Limits,
    LRURegistry,
    Map,
    Policy,
    PolicyDenied,
    ReplayDivergence,
    Set,
    StderrSink,
    StdoutSink,
    Table,
    Variant,
    err,
    ok,
    some,
)
from lexfast.values import TableCell


def readme_vm_example() -> None:
    """The README's "From a VM" example."""
    policy = Policy(allow_effects=["io", "time"], allow_fs_read=["/srv/data"], budget=1_000)
    with DefaultHandler(policy) as handler:
        unit: LexValue = handler.dispatch("io", "print", ["hello"])
        now = handler.dispatch("time", "now", [])
        assert isinstance(now, int)
        seconds: int = now
        handler.note_call_budget(10)
        try:
            handler.dispatch("io", "read", ["/etc/passwd"])
        except PolicyDenied as e:
            print(e)
            denied_kind: str | None = e.effect
            denied_path: str | None = e.path
            del denied_kind, denied_path
        del unit, seconds


def handler_surface(handler: DefaultHandler) -> None:
    dispatch: Callable[[str, str, Sequence[LexValue]], LexValue] = handler.dispatch
    charge: Callable[[int], None] = handler.note_call_budget
    remaining: int | None = handler.budget_remaining
    ceiling: int | None = handler.budget_ceiling
    policy: Policy = handler.policy
    limits: Limits = handler.limits
    table: EffectTable = handler.table
    names: list[str] = handler.stats_names()
    rows: list[dict[str, str | int]] = handler.stats_table()
    handler.reset_stats()
    timed: bool = handler.timing
    handler.timing = True
    fork: DefaultHandler = handler.fork()
    stopped: bool = handler.is_shutdown
    fork.shutdown()
    fork.close()
    root: str | None = handler.read_root
    again: DefaultHandler = handler.with_sink(CapturedSink()).with_read_root("/srv")

    def pure_len(args: list[LexValue]) -> LexValue:
        return len(args)

    registered: DefaultHandler = handler.register_pure("str", "len", pure_len)

    def approve(scope: str, reason: str) -> str | Variant | None:
        return "yes" if scope == "deploy" else err("not this one")

    import io
    wired: DefaultHandler = (handler.with_approval_sink(approve).with_input(io.BytesIO(b""))
                             .with_program_args(["a", "b"]))
    scopes: tuple[str, ...] = Policy(allow_approval=["deploy"]).allow_approval
    del dispatch, charge, remaining, ceiling, policy, limits, table, names, rows
    del timed, stopped, root, again, registered, wired, scopes


def construct() -> DefaultHandler:
    sink = CapturedSink()
    printed: list[str] = sink.lines

    def runner(program: object, h: DefaultHandler, fn: str, args: list[LexValue]) -> LexValue:
        return h.dispatch("io", "print", [fn])

    def pure_add(args: list[LexValue]) -> LexValue:
        a, b = args
        assert isinstance(a, int) and isinstance(b, int)
        return a + b

    handler = DefaultHandler(
        Policy.permissive(), sink=sink, read_root="/tmp", program=None, runner=runner,
        pure={("math", "add"): pure_add}, limits=Limits(read_bytes=1 << 20),
        stats=True, timing=False,
    )
    DefaultHandler(sink=StdoutSink()).close()
    DefaultHandler(Policy.pure(), sink=StderrSink()).close()
    del printed
    return handler


def policies() -> None:
    p: Policy = Policy.from_flags(["--allow-effects", "io,fs_read", "--allow-fs-read", "/srv"])
    q: Policy = p.replace(budget=5)
    open_kinds: tuple[str, ...] = q.wildcard_scoped_grants()
    scopes: dict[str, tuple[str, ...]] = q.wildcard_scopes()
    kinds: frozenset[str] = p.allow_effects
    roots: tuple[str, ...] = p.read_roots
    budget: int | None = q.budget
    known: tuple[str, ...] = KNOWN_EFFECTS
    same: bool = p == q
    del open_kinds, scopes, kinds, roots, budget, known, same


def values() -> None:
    v: Variant = ok(1)
    e: Variant = err("boom")
    s: Variant = some(b"\x00")
    n: Variant = NONE
    name: str = v.name
    w = Variant("Pair", (1, "two"))
    m = Map({"a": 1, 2: [None, 1.5, ("t", b"b")]})
    st = Set({"a", 1})
    dq = Deque([1, "two", st, m])
    first: LexValue = dq[0]
    keys: list[str | int] = sorted(k for k in st if isinstance(k, int))
    record: dict[str, LexValue] = {"k": m, "v": w, "s": st, "d": dq}
    value: LexValue = record
    compiled: bool = COMPILED
    version: str = lexfast.__version__
    table = Table([("x", "Int64", [1, None]), ("y", "Utf8", ["a", "b"], True)])
    cells: tuple[TableCell, ...] = table.columns[0]
    col_names: tuple[str, ...] = table.names
    nrows: int = table.nrows
    as_value: LexValue = [table]
    del e, s, n, name, value, compiled, version, first, keys, cells, col_names, nrows, as_value


def errors(handler: DefaultHandler) -> None:
    try:
        handler.note_call_budget(1 << 40)
    except BudgetExceeded as b:
        requested: int = b.requested
        used: int = b.used
        ceiling: int = b.ceiling
        del requested, used, ceiling
    except EffectError as e:
        message: str = str(e)
        del message
    denied = PolicyDenied("no", effect="net", host="example.com")
    host: str | None = denied.host
    cmd: str | None = denied.cmd
    del host, cmd


def registries() -> None:
    evicted: list[object] = []

    def on_evict(handle: object, value: object) -> None:
        evicted.append(value)

    reg = LRURegistry(2, on_evict)
    reg.insert(1, "one")
    size: int = len(reg)
    present: bool = 1 in reg
    del size, present


def record_and_replay(path: str) -> None:
    with DefaultHandler(Policy.pure(), record=path, secret_env=["MY_TOKEN"]) as rec:
        rec.flush_record()
    replayed = DefaultHandler(Policy.pure(), replay=path, overrides={0: ok(1)},
                              replay_then_live=False)
    try:
        replayed.dispatch("time", "now", [])
    except ReplayDivergence as d:
        step: int | None = d.step
        recorded: str | None = d.recorded
        del step, recorded
    limit: int = Limits().record_bytes
    lease: int = Limits(budget_lease=4096).budget_lease
    pooled = Policy(budget=1_000_000, budget_pool="rediss://agent:pw@pool.example:6380/fleet")
    pool_url: str | None = pooled.budget_pool
    del limit, lease, pool_url

