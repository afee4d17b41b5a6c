"""The Lex standard library's pure builtins (the reference's
``builtins.rs``): answered by ``dispatch`` before the effect table, never
gated by the policy, never counted against the budget. A VM's own ``pure=``
registrations win over these.

One module per group of reference modules, each ending in ``BUILTINS``, a
``{(kind, op): fn}`` table where ``fn(args)`` takes the argument list and
returns a Lex value. A reference ``Err(String)`` is an ``EffectError`` with
that text; ``Result``/``Option`` values are ``ok``/``err``/``some``/``NONE``.
Heavy libraries are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable

from . import (
    arrow,
    binary,
    chrono,
    cliargs,
    containers,
    crypto,
    formats,
    httpkit,
    numeric,
    parser,
    regex,
    seeded,
    seq,
    text,
)

#: The reference's pure module names (``is_pure_module``).
PURE_MODULES = (
    "str", "int", "float", "bool", "list", "iter", "option", "result", "tuple", "json",
    "bytes", "flow", "math", "map", "set", "crypto", "regex", "deque", "datetime",
    "duration", "http", "toml", "yaml", "dotenv", "csv", "test", "random", "parser",
    "cli", "arrow", "df", "decimal",
)

_GROUPS = (text, seq, binary, containers, numeric, chrono, seeded, crypto, formats, regex,
           httpkit, parser, cliargs, arrow)


def _assemble() -> dict[str, dict[str, Callable]]:
    table: dict[str, dict[str, Callable]] = {}
    for group in _GROUPS:
        for (kind, op), fn in group.BUILTINS.items():
            if op in table.get(kind, ()):
                raise RuntimeError(f"builtin {kind}.{op} is defined twice")
            table.setdefault(kind, {})[op] = fn
    return table


#: ``kind -> op -> fn``, the shape the kernel's pure lookup reads.
TABLE: dict[str, dict[str, Callable]] = _assemble()


def is_pure_call(kind: str, op: str) -> bool:
    """Whether ``kind.op`` is answered here (ungated)."""
    return op in TABLE.get(kind, ())


def names() -> list[str]:
    """Every builtin as ``kind.op``, sorted."""
    return sorted(f"{k}.{o}" for k, ops in TABLE.items() for o in ops)
