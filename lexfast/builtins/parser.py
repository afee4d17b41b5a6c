"""``parser.*``: the reference's parser-combinator constructors (builtins.rs,
``std.parser``, #217 and #221).

Each op builds a parser *value*: a Record whose first field is ``kind``
(``"Char"``, ``"String"``, ``"Digit"``, ``"Alpha"``, ``"Whitespace"``,
``"Eof"``, ``"Seq"``, ``"Alt"``, ``"Many"``, ``"Optional"``, ``"Map"``,
``"AndThen"``) followed by its children in the reference's order
(``ch``; ``s``; ``a``, ``b``; ``p``; ``p``, ``f``). Structurally equal
parsers are equal values. The combinators take any value as a child, as the
reference does; only a missing argument is an error.

There is no ``parser.run`` here, as in the reference: running a parser needs
to call the closures inside ``Map`` / ``AndThen`` nodes, so the reference's VM
intercepts ``parser.run`` itself (``lex-bytecode``'s ``parser_runtime``) and
a VM using lexfast does the same.
"""

from __future__ import annotations

from ..errors import EffectError
from ..values import rust_str_debug
from ._args import expect_str


def _char(args: list) -> dict:
    s = expect_str(args, 0)
    if len(s) != 1:
        raise EffectError(f"parser.char: expected 1-character string, got {rust_str_debug(s)}")
    return {"kind": "Char", "ch": s}


def _string(args: list) -> dict:
    return {"kind": "String", "s": expect_str(args, 0)}


def _digit(args: list) -> dict:
    return {"kind": "Digit"}


def _alpha(args: list) -> dict:
    return {"kind": "Alpha"}


def _whitespace(args: list) -> dict:
    return {"kind": "Whitespace"}


def _eof(args: list) -> dict:
    return {"kind": "Eof"}


def _two(op: str, kind: str, first: str, second: str, k1: str, k2: str):
    def build(args: list) -> dict:
        if len(args) < 1:
            raise EffectError(f"parser.{op}: missing {first}")
        if len(args) < 2:
            raise EffectError(f"parser.{op}: missing {second}")
        return {"kind": kind, k1: args[0], k2: args[1]}
    build.__name__ = f"_{op}"
    return build


def _one(op: str, kind: str) -> object:
    def build(args: list) -> dict:
        if not args:
            raise EffectError(f"parser.{op}: missing inner parser")
        return {"kind": kind, "p": args[0]}
    build.__name__ = f"_{op}"
    return build


BUILTINS = {
    ("parser", "char"): _char,
    ("parser", "string"): _string,
    ("parser", "digit"): _digit,
    ("parser", "alpha"): _alpha,
    ("parser", "whitespace"): _whitespace,
    ("parser", "eof"): _eof,
    ("parser", "seq"): _two("seq", "Seq", "first parser", "second parser", "a", "b"),
    ("parser", "alt"): _two("alt", "Alt", "first parser", "second parser", "a", "b"),
    ("parser", "many"): _one("many", "Many"),
    ("parser", "optional"): _one("optional", "Optional"),
    ("parser", "map"): _two("map", "Map", "parser", "closure", "p", "f"),
    ("parser", "and_then"): _two("and_then", "AndThen", "parser", "closure", "p", "f"),
}
