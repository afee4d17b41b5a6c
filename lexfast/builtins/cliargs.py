"""``cli.*``: the reference's argument-spec DSL (``std.cli``; the reference's
``src/cli.rs`` behind builtins.rs's ``cli`` arms).

The reference builds every value here as a ``serde_json::Value`` and turns it
into a Lex value with ``Value::from_json``; the inputs (specs, envelope data)
go the other way with ``Value::to_json``. Both conversions are restated here
(``_to_json`` / ``_from_json``) so the results are the reference's exactly:

- JSON objects are ``serde_json::Map``\\ s without ``preserve_order``, so every
  Record built here has its keys in sorted order (``{"help", "kind", "name",
  "short"}`` for a flag), nested ones included;
- what passes through JSON is normalised: a Tuple, Set or Deque comes back a
  List, a Str-keyed Map a Record, a Map with Int keys a List of ``[k, v]``
  pairs, Bytes round-trip through ``{"$bytes": hex}``, a Variant through
  ``{"$variant", "args"}`` (so a Record of that shape becomes a Variant), a
  non-finite Float becomes Unit.

Specs: ``flag`` ``{help, kind: "flag", name, short}``, ``option`` ``{default,
help, kind: "option", name, short}``, ``positional`` ``{help, kind:
"positional", name, required}``, ``spec`` ``{args, help, kind: "spec", name,
subcommands}``; an absent ``short`` / ``default`` is Unit. ``parse`` returns
``Ok({command, flags, options, positionals, remaining})`` or ``Err(Str)``.
"""

from __future__ import annotations

import math
from collections import deque

from .. import values as _values
from ..errors import EffectError
from ..kernel import Variant, err, ok
from ..values import Map, debug_repr
from ._args import expect_bool, expect_list, expect_str

_HEX = frozenset("0123456789abcdefABCDEF")

# -- Value::to_json / Value::from_json ----------------------------------------


def _key_order(k: object) -> tuple:
    # MapKey's derived Ord: every Str before every Int
    return (1, k) if isinstance(k, int) and not isinstance(k, bool) else (0, k)


def _to_json(v: object) -> object:
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, Map):
        keys = sorted(v, key=_key_order)
        if all(isinstance(k, str) for k in keys):
            return {k: _to_json(v[k]) for k in keys}
        return [[_to_json(k), _to_json(v[k])] for k in keys]
    if isinstance(v, dict):
        return {str(k): _to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, deque)):
        return [_to_json(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return [_to_json(x) for x in sorted(v, key=_key_order)]
    if isinstance(v, Variant):
        return {"$variant": v.name, "args": [_to_json(x) for x in v.args]}
    # the containers' Set and Deque (lexfast.values, where present): an array
    set_type, deque_type = getattr(_values, "Set", None), getattr(_values, "Deque", None)
    if set_type is not None and isinstance(v, set_type):
        return [_to_json(x) for x in sorted(v, key=_key_order)]
    if deque_type is not None and isinstance(v, deque_type):
        return [_to_json(x) for x in v]
    # a closure: the reference writes the first 4 bytes of its body hash
    h = getattr(v, "body_hash", None)
    if isinstance(h, (bytes, bytearray)):
        return f"<closure {bytes(h[:4]).hex()}>"
    return "<closure>"


def _from_json(j: object) -> object:
    if isinstance(j, list):
        return [_from_json(x) for x in j]
    if isinstance(j, dict):
        name = j.get("$variant")
        args = j.get("args")
        if isinstance(name, str) and isinstance(args, list):
            return Variant(name, tuple(_from_json(x) for x in args))
        if len(j) == 1:
            h = j.get("$bytes")
            if isinstance(h, str) and len(h) % 2 == 0 and _HEX.issuperset(h):
                return bytes.fromhex(h)
        return {k: _from_json(j[k]) for k in sorted(j)}
    return j


def _normalise(v: object) -> object:
    return _from_json(_to_json(v))


def _guard(fn):
    """A value nested past Python's recursion limit (or a cycle) is an
    ``EffectError``, not a crash (the reference's recursion has no guard)."""
    def op(args: list) -> object:
        try:
            return fn(args)
        except RecursionError:
            raise EffectError("cli: value nested too deeply to convert to JSON") from None
    op.__name__ = fn.__name__
    op.__doc__ = fn.__doc__
    return op


# -- JSON accessors (serde_json's ``get`` / ``as_str`` / ``as_array``) ---------


def _get(obj: object, key: str) -> object:
    return obj.get(key) if isinstance(obj, dict) else None


def _str(obj: object, key: str) -> str | None:
    v = _get(obj, key)
    return v if isinstance(v, str) else None


def _array(obj: object, key: str) -> list:
    v = _get(obj, key)
    return v if isinstance(v, list) else []


def _truthy(obj: object, key: str) -> bool:
    return _get(obj, key) is True


def _opt_str(args: list, i: int) -> str | None:
    # Some(Str) -> the string; None, a missing argument or anything else -> None
    if i < len(args):
        v = args[i]
        if isinstance(v, Variant) and v.name == "Some" and v.args and isinstance(v.args[0], str):
            return str(v.args[0])
    return None


# -- spec construction ----------------------------------------------------------


def _flag(args: list) -> dict:
    name = expect_str(args, 0)
    short = _opt_str(args, 1)
    help_ = expect_str(args, 2)
    return {"help": help_, "kind": "flag", "name": name, "short": short}


def _option(args: list) -> dict:
    name = expect_str(args, 0)
    short = _opt_str(args, 1)
    help_ = expect_str(args, 2)
    default = _opt_str(args, 3)
    return {"default": default, "help": help_, "kind": "option", "name": name, "short": short}


def _positional(args: list) -> dict:
    name = expect_str(args, 0)
    help_ = expect_str(args, 1)
    required = expect_bool(args, 2)
    return {"help": help_, "kind": "positional", "name": name, "required": required}


def _spec(args: list) -> dict:
    name = expect_str(args, 0)
    help_ = expect_str(args, 1)
    arg_specs = [_normalise(a) for a in expect_list(args, 2)]
    subs = [_normalise(s) for s in expect_list(args, 3)]
    return {"args": arg_specs, "help": help_, "kind": "spec", "name": name, "subcommands": subs}


# -- parsing --------------------------------------------------------------------


class _Fail(Exception):
    pass


class _State:
    __slots__ = ("command", "flags", "options", "positionals", "remaining")

    def __init__(self) -> None:
        self.command: list[str] = []
        self.flags: dict[str, bool] = {}
        self.options: dict[str, str] = {}
        self.positionals: dict[str, str] = {}
        self.remaining: list[str] = []


def _parse_into(spec: object, argv: list[str], start: int, st: _State) -> None:
    name = _str(spec, "name") or ""
    st.command.append(name)
    args = _array(spec, "args")
    by_long: dict[str, object] = {}
    by_short: dict[str, object] = {}
    positionals: list[object] = []
    for a in args:
        kind = _str(a, "kind")
        if kind in ("flag", "option"):
            n = _str(a, "name")
            if n is not None:
                by_long[n] = a
            s = _str(a, "short")
            if s is not None:
                by_short[s] = a
        elif kind == "positional":
            positionals.append(a)
    for a in args:  # option defaults, overwritten if the option is given
        if _str(a, "kind") == "option":
            n, d = _str(a, "name"), _str(a, "default")
            if n is not None and d is not None:
                st.options[n] = d
    for a in args:  # every flag is present, false unless given
        if _str(a, "kind") == "flag":
            n = _str(a, "name")
            if n is not None:
                st.flags[n] = False
    subs: dict[str, object] = {}
    for s in _array(spec, "subcommands"):
        n = _str(s, "name")
        if n is not None:
            subs[n] = s

    i = start
    pos_idx = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            st.remaining.extend(argv[i + 1:])
            return
        if tok.startswith("--"):
            lname, eq, val = tok[2:].partition("=")
            entry = by_long.get(lname)
            if entry is None:
                raise _Fail(f"unknown flag `--{lname}` for `{name}`")
            i = _apply(entry, val if eq else None, i, argv, st)
            i += 1
            continue
        if tok.startswith("-"):
            sname, eq, val = tok[1:].partition("=")
            entry = by_short.get(sname)
            if entry is not None:
                i = _apply(entry, val if eq else None, i, argv, st)
                i += 1
                continue
            # no such short flag ("-5"): a positional
        if pos_idx == 0 and subs:
            sub = subs.get(tok)
            if sub is not None:
                _parse_into(sub, argv, i + 1, st)
                return
        if pos_idx < len(positionals):
            st.positionals[_str(positionals[pos_idx], "name") or ""] = tok
            pos_idx += 1
        else:
            raise _Fail(f"unexpected positional argument `{tok}` for `{name}`")
        i += 1

    for idx, p in enumerate(positionals):
        if idx >= pos_idx and _truthy(p, "required"):
            pname = _str(p, "name")
            raise _Fail(f"missing required positional `{'?' if pname is None else pname}` "
                        f"for `{name}`")


def _apply(entry: object, inline: str | None, i: int, argv: list[str], st: _State) -> int:
    kind = _str(entry, "kind") or ""
    name = _str(entry, "name")
    if name is None:
        name = "?"
    if kind == "flag":
        if inline is not None:
            raise _Fail(f"flag `--{name}` does not take a value (got `={inline}`)")
        st.flags[name] = True
    elif kind == "option":
        if inline is None:
            if i + 1 >= len(argv):
                raise _Fail(f"option `--{name}` requires a value")
            i += 1
            inline = argv[i]
        st.options[name] = inline
    else:  # pragma: no cover - only flags and options are indexed
        raise _Fail(f"internal: unexpected entry kind `{kind}`")
    return i


def _parse(args: list) -> object:
    spec = _to_json(args[0] if args else None)
    argv = []
    for v in expect_list(args, 1):
        if not isinstance(v, str):
            raise EffectError(f"cli.parse: argv must be List[Str], got {debug_repr(v)}")
        argv.append(str(v))
    st = _State()
    try:
        _parse_into(spec, argv, 0, st)
    except _Fail as e:
        return err(str(e))
    return ok(_from_json({
        "command": st.command,
        "flags": st.flags,
        "options": st.options,
        "positionals": st.positionals,
        "remaining": st.remaining,
    }))


# -- envelope, describe, help -----------------------------------------------------


def _envelope(args: list) -> object:
    ok_ = expect_bool(args, 0)
    cmd = expect_str(args, 1)
    data = _to_json(args[2] if len(args) > 2 else None)
    return _from_json({"ok": ok_, "command": cmd, "data": data})


def _describe_json(spec: object) -> dict:
    # ``spec.get("help").cloned()``: an explicit null stays null
    h = spec["help"] if isinstance(spec, dict) and "help" in spec else ""
    return {
        "name": _str(spec, "name") or "",
        "help": h,
        "args": list(_array(spec, "args")),
        "subcommands": [_describe_json(s) for s in _array(spec, "subcommands")],
    }


def _describe(args: list) -> object:
    return _from_json(_describe_json(_to_json(args[0] if args else None)))


def _help_text(spec: object) -> str:
    name = _str(spec, "name") or ""
    out = [name]
    h = _str(spec, "help")
    if h:
        out.append(" — " + h)
    out.append("\n")
    args = _array(spec, "args")
    positionals = [a for a in args if _str(a, "kind") == "positional"]
    flags = [a for a in args if _str(a, "kind") in ("flag", "option")]
    if positionals:
        out.append("\nUSAGE:\n  " + name)
        for p in positionals:
            n = _str(p, "name")
            n = "?" if n is None else n
            out.append(f" <{n}>" if _truthy(p, "required") else f" [{n}]")
        out.append("\n")
    if flags:
        out.append("\nFLAGS:\n")
        for f in flags:
            n = _str(f, "name")
            n = "?" if n is None else n
            s = _str(f, "short") or ""
            prefix = f"      --{n}" if not s else f"  -{s}, --{n}"
            out.append(f"{prefix:<24}  {_str(f, 'help') or ''}\n")
    subs = _array(spec, "subcommands")
    if subs:
        out.append("\nSUBCOMMANDS:\n")
        for sub in subs:
            out.append(f"  {_str(sub, 'name') or '':<16}  {_str(sub, 'help') or ''}\n")
    return "".join(out)


def _help(args: list) -> str:
    return _help_text(_to_json(args[0] if args else None))


BUILTINS = {
    ("cli", "flag"): _flag,
    ("cli", "option"): _option,
    ("cli", "positional"): _positional,
    ("cli", "spec"): _guard(_spec),
    ("cli", "parse"): _guard(_parse),
    ("cli", "envelope"): _guard(_envelope),
    ("cli", "describe"): _guard(_describe),
    ("cli", "help"): _guard(_help),
}
