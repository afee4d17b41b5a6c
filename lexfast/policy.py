"""The run's capability policy: which effect kinds, paths, hosts and binaries.

A ``Policy`` is immutable. Everything the dispatch path needs from it is
computed once here: the kind bitmask the gate tests, and the scope roots
resolved (made absolute, ``..`` collapsed, symlinks followed) so that every
later check compares resolved paths by whole components (docs/design.md §5).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from .kinds import KIND_BIT as KIND_BIT  # re-exported
from .kinds import KNOWN_EFFECTS as KNOWN_EFFECTS  # re-exported
from .kinds import kinds_mask, known_kinds, unknown_kinds_message
from .scope import resolve_root
from .values import U64_MAX

#: Which scope lists the ops gated by each kind consult (an empty list = any),
#: read off every family's ROWS and the code reading ``read_roots``,
#: ``write_roots``, ``net_hosts`` and ``allow_proc``; tests check it against
#: the effect table. ``wildcard_scoped_grants`` reports from it.
SCOPES_BY_KIND: dict[str, tuple[str, ...]] = {
    # io.read; io.write and log.set_sink (gated io + fs_write)
    "io": ("allow_fs_read", "allow_fs_write"),
    # net.get/post, http.*; net.serve_tls reads its cert and key
    "net": ("allow_net_host", "allow_fs_read"),
    # proc.spawn, process.*; their children are confined to the fs scopes
    # (issue 26, lexfast.scope.confine: an empty list is any there too)
    "proc": ("allow_proc", "allow_fs_read", "allow_fs_write"),
    # the kind the read scope is named for (the Lex type checker's fs_read)
    "fs_read": ("allow_fs_read",),
    # fs.mkdir_p, fs.remove, fs.copy's destination, log.set_sink
    "fs_write": ("allow_fs_write",),
    # agent.send_a2a
    "a2a": ("allow_net_host",),
    # agent.call_mcp runs its server command, confined like proc's children
    "mcp": ("allow_proc", "allow_fs_read", "allow_fs_write"),
    # sql.open
    "sql": ("allow_fs_write",),
    # kv.open
    "kv": ("allow_fs_write",),
    # fs.exists/is_file/is_dir/stat/list_dir/walk/glob, fs.copy's source
    "fs_walk": ("allow_fs_read",),
    # approval.request's scope
    "approval": ("allow_approval",),
}

#: Policy field -> the CLI flag that sets it.
SCOPE_FLAGS: dict[str, str] = {
    "allow_fs_read": "--allow-fs-read", "allow_fs_write": "--allow-fs-write",
    "allow_net_host": "--allow-net-host", "allow_proc": "--allow-proc",
    "allow_approval": "--allow-approval",
}


def _str_tuple(name: str, value: object, *, paths: bool = False) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"Policy: {name} must be a sequence of str, not {type(value).__name__}")
    out = []
    for item in value:
        if paths and isinstance(item, os.PathLike):
            item = os.fspath(item)
        if not isinstance(item, str):
            raise TypeError(f"Policy: {name} entries must be str, got {type(item).__name__}")
        if not item or "\0" in item:
            raise ValueError(f"Policy: {name} entry {item!r} is empty or contains NUL")
        out.append(item)
    return tuple(out)


#: A pooled budget is counted in a Redis Lua script, whose numbers are
#: doubles: exact only up to 2**53.
POOL_BUDGET_MAX = (1 << 53) - 1


class BudgetPoolURL(NamedTuple):
    """A parsed ``budget_pool`` URL: ``redis[s]://[user[:password]@]host[:port]/key``."""

    tls: bool
    host: str
    port: int
    username: str | None
    password: str | None
    key: str
    #: the URL without its credentials: what messages and ``repr`` show
    redacted: str


def parse_budget_pool(url: object) -> BudgetPoolURL:
    """Parse a budget pool URL; ``ValueError`` naming what is wrong (never
    echoing a password)."""
    if not isinstance(url, str):
        raise TypeError(f"Policy: budget_pool must be a str URL, not {type(url).__name__}")
    if "\0" in url or any(ch in url for ch in "\r\n\t "):
        raise ValueError("Policy: budget_pool URL contains whitespace or NUL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("Policy: budget_pool is not a valid URL "
                         "(redis://host:port/key or rediss://...)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss"):
        raise ValueError("Policy: budget_pool must be a redis:// or rediss:// URL, "
                         f"not {scheme or 'a schemeless'}:// one")
    host = parts.hostname
    if not host:
        raise ValueError("Policy: budget_pool URL needs a host (redis://host:port/key)")
    key = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if not key:
        raise ValueError("Policy: budget_pool URL needs a key after the host "
                         "(redis://host:port/key)")
    if parts.query or parts.fragment:
        raise ValueError("Policy: budget_pool URL takes no ?query or #fragment")
    display_host = f"[{host}]" if ":" in host else host
    port = 6379 if port is None else port
    redacted = f"{scheme}://{display_host}:{port}/{parts.path[1:]}"
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return BudgetPoolURL(scheme == "rediss", host, port, username, password, key, redacted)


def normalize_host(host: str) -> str:
    """Hosts compare case-insensitively, without IPv6 brackets or one trailing dot."""
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.endswith(".") and len(h) > 1:
        h = h[:-1]
    return h


class Policy:
    """Immutable capability policy (``allow_*`` lists: empty = any)."""

    __slots__ = ("allow_effects", "allow_fs_read", "allow_fs_write", "allow_net_host",
                 "allow_proc", "allow_approval", "budget", "mask", "read_roots",
                 "write_roots", "net_hosts", "budget_pool")

    allow_effects: frozenset[str]
    allow_fs_read: tuple[str, ...]
    allow_fs_write: tuple[str, ...]
    allow_net_host: tuple[str, ...]
    allow_proc: tuple[str, ...]
    #: approval.request scopes, compared exactly (empty = any)
    allow_approval: tuple[str, ...]
    budget: int | None
    #: a Redis URL: ``budget`` is one ceiling shared by every process naming
    #: it (``lexfast.budget_pool``); None: this process's own pool
    budget_pool: str | None
    #: the gate's bitmask of the granted known kinds
    mask: int
    #: the fs scopes, resolved once (what every check compares against)
    read_roots: tuple[str, ...]
    write_roots: tuple[str, ...]
    #: allowed hosts, normalised (lower case, no brackets, no trailing dot)
    net_hosts: frozenset[str]

    def __init__(self, allow_effects: Iterable[str] = (), allow_fs_read: Iterable[str] = (),
                 allow_fs_write: Iterable[str] = (), allow_net_host: Iterable[str] = (),
                 allow_proc: Iterable[str] = (), budget: int | None = None,
                 allow_approval: Iterable[str] = (), budget_pool: str | None = None) -> None:
        effects = frozenset(_str_tuple("allow_effects", allow_effects))
        # A typo (`ioo`) would otherwise grant nothing, silently; the CLI refuses it too.
        message = unknown_kinds_message("Policy: allow_effects", effects)
        if message is not None:
            raise ValueError(message)
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, int):
                raise TypeError(f"Policy: budget must be an int or None, not {type(budget).__name__}")
            if not 0 <= budget <= U64_MAX:
                raise ValueError(f"Policy: budget must be in 0..={U64_MAX}, got {budget}")
        if budget_pool is not None:
            parse_budget_pool(budget_pool)
            if budget is None:
                raise ValueError("Policy: budget_pool needs a budget (the shared ceiling)")
            if budget > POOL_BUDGET_MAX:
                raise ValueError(f"Policy: a pooled budget must be in 0..={POOL_BUDGET_MAX}, "
                                 f"got {budget}")
        fs_read = _str_tuple("allow_fs_read", allow_fs_read, paths=True)
        fs_write = _str_tuple("allow_fs_write", allow_fs_write, paths=True)
        hosts = _str_tuple("allow_net_host", allow_net_host)
        procs = _str_tuple("allow_proc", allow_proc, paths=True)
        approvals = _str_tuple("allow_approval", allow_approval)
        sets = object.__setattr__
        sets(self, "allow_effects", effects)
        sets(self, "allow_fs_read", fs_read)
        sets(self, "allow_fs_write", fs_write)
        sets(self, "allow_net_host", hosts)
        sets(self, "allow_proc", procs)
        sets(self, "allow_approval", approvals)
        sets(self, "budget", budget)
        sets(self, "budget_pool", budget_pool)
        sets(self, "mask", kinds_mask(effects))
        # Resolved once, here: a symlinked root (macOS /tmp, a bind mount)
        # compares equal to the paths that resolve into it.
        sets(self, "read_roots", tuple(resolve_root(p) for p in fs_read))
        sets(self, "write_roots", tuple(resolve_root(p) for p in fs_write))
        sets(self, "net_hosts", frozenset(normalize_host(h) for h in hosts))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Policy is immutable; use Policy.replace(...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Policy is immutable")

    # -- presets ---------------------------------------------------------
    @classmethod
    def pure(cls) -> Policy:
        """Nothing granted."""
        return cls()

    @classmethod
    def permissive(cls) -> Policy:
        """Every kind in ``KNOWN_EFFECTS`` (and those declared with
        ``lexfast.kinds.declare_kind``), every scope open (empty = any)."""
        return cls(allow_effects=known_kinds())

    def replace(self, **changes: Any) -> Policy:
        fields: dict[str, Any] = dict(allow_effects=self.allow_effects, allow_fs_read=self.allow_fs_read,
                      allow_fs_write=self.allow_fs_write, allow_net_host=self.allow_net_host,
                      allow_proc=self.allow_proc, budget=self.budget,
                      allow_approval=self.allow_approval, budget_pool=self.budget_pool)
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Policy.replace: unknown field(s) {sorted(unknown)}")
        fields.update(changes)
        return Policy(**fields)

    def wildcard_scoped_grants(self) -> tuple[str, ...]:
        """Granted kinds that consult a scope list left empty, i.e. open to
        anything there (``io`` without ``--allow-fs-write`` writes anywhere),
        in ``KNOWN_EFFECTS`` order. ``wildcard_scopes`` names the lists."""
        return tuple(self.wildcard_scopes())

    def wildcard_scopes(self) -> dict[str, tuple[str, ...]]:
        """``{kind: (flag, ...)}``: each granted kind whose ops consult an
        empty scope list, with the flags (``--allow-fs-write`` ...) that would
        scope it, in ``KNOWN_EFFECTS`` order."""
        out: dict[str, tuple[str, ...]] = {}
        for kind in KNOWN_EFFECTS:
            if kind not in self.allow_effects:
                continue
            open_ = tuple(SCOPE_FLAGS[f] for f in SCOPES_BY_KIND.get(kind, ())
                          if not getattr(self, f))
            if open_:
                out[kind] = open_
        return out

    # -- the Lex CLI flags -----------------------------------------------
    @classmethod
    def from_flags(cls, argv: Sequence[str]) -> Policy:
        """Build a policy from Lex CLI flags (``--allow-effects io,net``,
        ``--allow-fs-read P`` …). Raises ``ValueError`` naming the bad flag
        or an unknown effect kind, as the ``lexfast`` command does."""
        policy, rest = parse_flags(argv)
        if rest:
            raise ValueError(f"unknown flag or argument: {rest[0]!r}")
        return policy

    # -- value semantics -------------------------------------------------
    def _key(self) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...], tuple[str, ...],
                            tuple[str, ...], int | None, tuple[str, ...], str | None]:
        return (self.allow_effects, self.allow_fs_read, self.allow_fs_write,
                self.allow_net_host, self.allow_proc, self.budget, self.allow_approval,
                self.budget_pool)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [f"allow_effects={tuple(sorted(self.allow_effects))!r}"]
        for name in ("allow_fs_read", "allow_fs_write", "allow_net_host", "allow_proc",
                     "allow_approval"):
            v = getattr(self, name)
            if v:
                parts.append(f"{name}={v!r}")
        if self.budget is not None:
            parts.append(f"budget={self.budget}")
        if self.budget_pool is not None:  # never the password
            parts.append(f"budget_pool={parse_budget_pool(self.budget_pool).redacted!r}")
        return f"Policy({', '.join(parts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, self._key())


def _rebuild(effects: Iterable[str], fs_read: Iterable[str], fs_write: Iterable[str],
             hosts: Iterable[str], procs: Iterable[str], budget: int | None,
             approvals: Iterable[str] = (), budget_pool: str | None = None) -> Policy:
    return Policy(effects, fs_read, fs_write, hosts, procs, budget, approvals, budget_pool)


#: flag -> (Policy field, split on commas)
FLAGS = {
    "--allow-effects": ("allow_effects", True),
    "--allow-fs-read": ("allow_fs_read", False),
    "--allow-fs-write": ("allow_fs_write", False),
    "--allow-net-host": ("allow_net_host", False),
    "--allow-proc": ("allow_proc", True),
    "--allow-approval": ("allow_approval", True),
}


def parse_flags(argv: Sequence[str]) -> tuple[Policy, list[str]]:
    """Parse the Lex policy flags out of ``argv``; return the policy and the
    arguments that are not policy flags, in order.

    Both ``--flag value`` and ``--flag=value`` work. Repeated flags accumulate
    (lexfast takes the union where ``lex run`` lets a later ``--allow-effects``
    replace an earlier one). ``--budget`` takes an integer ≥ 0;
    ``--budget-pool URL`` shares it with every process naming the same pool.
    """
    fields: dict[str, list[str]] = {f: [] for f, _ in FLAGS.values()}
    budget: int | None = None
    budget_pool: str | None = None
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, inline = a.partition("=")
        if name in FLAGS or name in ("--budget", "--budget-pool"):
            if eq:
                value = inline
            else:
                if i + 1 >= len(args):
                    raise ValueError(f"{name} needs a value")
                i += 1
                value = args[i]
            if name == "--budget-pool":
                if budget_pool is not None and budget_pool != value:
                    raise ValueError("--budget-pool given twice")
                budget_pool = value
            elif name == "--budget":
                try:
                    budget = int(value, 10)
                except ValueError:
                    raise ValueError(f"--budget must be an integer, got {value!r}") from None
                if not 0 <= budget <= U64_MAX:
                    raise ValueError(f"--budget must be in 0..={U64_MAX}, got {value}")
            else:
                field, split = FLAGS[name]
                items = [v.strip() for v in value.split(",")] if split else [value]
                items = [v for v in items if v]
                if not items:
                    raise ValueError(f"{name} needs a non-empty value")
                fields[field].extend(items)
        else:
            rest.append(a)
        i += 1
    message = unknown_kinds_message("--allow-effects", fields["allow_effects"])
    if message is not None:
        raise ValueError(message)
    try:
        policy = Policy(budget=budget, budget_pool=budget_pool, **fields)
    except (TypeError, ValueError) as e:
        raise ValueError(str(e)) from None
    return policy, rest
