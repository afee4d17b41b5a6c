"""The effect table: every effect family's rows, by ``kind`` then ``op``.

Each effect family (a module or package in ``lexfast.effects``) ends in
``ROWS``, a list of
``(kind, op, gate, function)``: ``gate`` is the effect kind, or a tuple of
kinds that must all be granted (checked in order), and ``function(handler,
args)`` performs the effect. ``op`` ``"*"`` matches any op of that kind.
Both cores read the same table.
"""

from __future__ import annotations

from collections.abc import Iterable

from .kernel import Row

RowSpec = tuple  # (kind, op, gate, function)


class EffectTable:
    """An immutable set of rows. ``ops[kind][op]`` is the ``Row`` the core
    looks up; ``wildcards[kind]`` serves any op of ``kind``."""

    __slots__ = ("ops", "wildcards", "names", "_rows")

    def __init__(self, rows: Iterable[RowSpec]):
        specs: dict[tuple[str, str], RowSpec] = {}
        for spec in rows:  # a later row for the same (kind, op) replaces an earlier one
            specs[(spec[0], spec[1])] = spec
        ops: dict[str, dict[str, Row]] = {}
        wildcards: dict[str, Row] = {}
        ordered: list = []
        for index, (kind, op, gate, fn) in enumerate(specs.values()):
            gate = (gate,) if isinstance(gate, str) else tuple(gate)
            if not callable(fn):
                raise TypeError(f"row {kind}.{op}: function is not callable")
            row = Row(kind, op, gate, fn, index)
            ordered.append(row)
            if op == "*":
                wildcards[kind] = row
            else:
                ops.setdefault(kind, {})[op] = row
        self.ops = ops
        self.wildcards = wildcards
        self._rows = ordered
        #: ``kind.op`` of each row, by its index (the rows of ``handler.stats()``)
        self.names = [f"{r.kind}.{r.op}" for r in ordered]

    def rows(self) -> list:
        return list(self._rows)

    def with_rows(self, rows: Iterable[RowSpec]) -> EffectTable:
        """A new table: this one with ``rows`` added or replacing same-named ones
        (how a VM swaps in its own backend for an effect)."""
        specs = {(r.kind, r.op): (r.kind, r.op, r.gate, r.fn) for r in self.rows()}
        for spec in rows:
            specs[(spec[0], spec[1])] = spec
        return EffectTable(specs.values())

    def lookup(self, kind: str, op: str):
        return self.ops.get(kind, {}).get(op) or self.wildcards.get(kind)

    def __contains__(self, key) -> bool:
        kind, op = key
        return op in self.ops.get(kind, {})

    def __len__(self) -> int:
        return sum(len(o) for o in self.ops.values()) + len(self.wildcards)


def family_rows() -> list:
    """Every family's rows, in the order the table is assembled (a later row
    for the same ``kind.op`` would replace an earlier one).

    The families are imported here, when the first table is built, not when
    ``lexfast`` is: they bring lmdb, sqlite3 and pycurl (websockets and uvloop
    load when a server starts, redis-py at the first ``redis.connect``, pyarrow at the
    first arrow file op).
    """
    from .effects import (
        agent,
        approval,
        arrow_io,
        budget,
        clock,
        env,
        fs,
        io,
        kv,
        log,
        proc,
        rand,
        redis,
        sql,
        stream,
        vcs,
    )
    from .effects.net import http, http_stream, serve, serve_fn, tls, udp, ws, ws_dial, ws_fn

    families = (
        io,      # io.print/read/write
        clock,   # time.*, datetime.now
        rand,    # rand.int_in, crypto.random/random_str_hex/*_generate
        env,     # env.get
        budget,  # budget.*
        log,     # log.*
        fs,      # fs.*
        arrow_io,  # arrow.read_csv/read_parquet*/write_* (pyarrow, imported at first call)
        proc,    # proc.spawn, process.*
        kv,      # kv.* on lmdb
        sql,     # sql.* on sqlite3
        redis,   # redis.* on redis-py (the redis extra)
        http,    # net.get/post, http.*
        http_stream,  # http.stream_lines
        stream,  # stream.next/collect
        serve,   # net.serve, net.serve_tls
        serve_fn,  # net.serve_fn/serve_routed/serve_*with, net.default_opts
        tls,     # tls.from_pem_files/self_signed
        ws,      # net.serve_ws, chat.*
        ws_fn,   # net.serve_ws_fn / _auth / _actor
        ws_dial,  # net.dial_ws / dial_ws_actor
        udp,     # net.udp_*
        vcs,     # vcs.* (the content-addressed blob store)
        agent,   # agent.*
        approval,  # approval.request
    )
    rows: list = []
    for family in families:
        rows.extend(family.ROWS)
    return rows


_default: EffectTable | None = None


def default_table() -> EffectTable:
    global _default
    if _default is None:
        _default = EffectTable(family_rows())
    return _default


def effect_names() -> list[str]:
    """Every ``kind.op`` the default table serves, sorted."""
    t = default_table()
    names = [f"{k}.{o}" for k, ops in t.ops.items() for o in ops]
    names += [f"{k}.*" for k in t.wildcards]
    return sorted(names)

