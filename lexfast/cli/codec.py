"""Lex values <-> JSON (docs/design.md §7), as ``lexfast run`` / ``lexfast host`` speak it.

Values JSON can carry are themselves: Unit ``null``, Bool, Int, finite Float,
Str, List ``[..]``, Record ``{..}``. Everything else is a *tagged object*, an
object with exactly one ``$`` key (``$variant`` also takes ``args``):

=============================  ==============================================
``{"$bytes": "<base64>"}``     Bytes (standard alphabet, padded; also from
                               ``bytearray`` / ``memoryview``)
``{"$tuple": [..]}``           Tuple
``{"$map": [[k, v], ..]}``     ``lexfast.Map``; keys Str or Int, no repeats
``{"$set": [k, ..]}``          ``lexfast.Set``; elements Str or Int, no repeats
                               (``encode`` writes them in the reference's
                               key order: Strs, then Ints)
``{"$deque": [..]}``           ``lexfast.Deque``
``{"$arrow_table": {"nrows": N,  ``lexfast.Table`` (an ``arrow.Table``): each
  "columns": [{"name": ..,       column's ``type`` is ``Int64``, ``Float64``,
  "type": .., "nullable": ..,    ``Utf8`` or ``Boolean`` and its ``values`` are
  "values": [..]}, ..]}}``       Ints, Floats (``$float`` where needed), Strs or
                               Bools, ``null`` for a null (nullable columns
                               only), all ``nrows`` long
``{"$variant": "Name",         Variant (``args`` may be left out when empty;
  "args": [..]}``              ``encode`` always writes it)
``{"$float": "nan"}``          the floats JSON has no number for: ``"nan"``,
                               ``"inf"``, ``"-inf"`` (output never contains
                               the invalid bare ``NaN`` / ``Infinity``)
``{"$record": {..}}``          a Record with a key starting with ``$``: its
                               keys are taken literally, never as tags
``{"$closure": <any JSON>}``   a closure of the peer's (``lexfast host``): an
                               opaque :class:`PeerClosure` holding the JSON the
                               peer chose, written back as it came; calling it
                               asks the peer (``lexfast.cli.command``)
=============================  ==============================================

So the rule a reader needs is short: *an object with a key starting with
``$`` is a tag, and must be one of the above*; a Record whose own keys start
with ``$`` is always written inside ``$record``, so it can never be mistaken
for a tag. Unknown ``$`` keys, extra keys and wrong shapes are errors.

Errors are ``CodecError`` (a ``ValueError``), never anything else: Ints
outside signed 64-bit, numbers that overflow a double (``1e400``), the bare
``NaN``/``Infinity`` constants Python's ``json`` would accept, lone UTF-16
surrogates (a Lex Str is valid Unicode), repeated object keys (which would
silently drop data), invalid base64, and nesting deeper than ``MAX_DEPTH``
Lex containers (a cycle on the way out ends the same way). JavaScript peers
read Ints beyond ±2^53 inexactly: send those as Str if a peer needs them exact.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re

from ..kernel import Variant
from ..values import INT_MAX, INT_MIN, Deque, Map, Set, Table, mapkey_sorted

#: Lex containers (List, Tuple, Record, Map, Set, Deque, Variant) nested deeper than this
#: are refused both ways: a bounded recursion, never a ``RecursionError``.
MAX_DEPTH = 128

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# json.dumps(ensure_ascii=False) leaves these raw; str.splitlines() and some
# JSON-lines readers would split a line on them.
_LINE_BREAKS = re.compile("[\x85\u2028\u2029]")
_FLOAT_TAGS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class PeerClosure:
    """A closure value the peer passed (``{"$closure": token}``): opaque to
    the handler, which only hands it back to the peer to call. ``token`` is
    the JSON the peer chose to name it by (already parsed, never decoded)."""

    __slots__ = ("token",)

    def __init__(self, token) -> None:
        self.token = token

    def __eq__(self, other) -> bool:
        return isinstance(other, PeerClosure) and _canonical(other.token) == _canonical(self.token)

    def __hash__(self) -> int:
        return hash(_canonical(self.token))

    def __repr__(self) -> str:
        return f"<closure {_short(self.token)}>"


def _canonical(token) -> str:
    return json.dumps(token, sort_keys=True, separators=(",", ":"))


class CodecError(ValueError):
    """A value cannot be written as JSON, or a JSON text is not a Lex value."""


# -- JSON text ----------------------------------------------------------------

def _pairs(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise CodecError(f"duplicate key {_short(k)} in a JSON object")
        out[k] = v
    return out


def _parse_float(s: str) -> float:
    f = float(s)
    if math.isinf(f):
        raise CodecError(f"number {s[:40]} is out of range for a Float")
    return f


def _parse_int(s: str) -> int:
    # No i64 has more than 19 digits; past 100 Python's own parse (quadratic,
    # refused over 4300 digits) is not worth doing for an error message.
    if len(s) > 100:
        raise CodecError(f"Int {s[:20]}... ({len(s)} digits) is outside signed 64-bit")
    return int(s)


def _parse_constant(name: str):
    raise CodecError(f"{name} is not JSON; write {{\"$float\": \"nan\"|\"inf\"|\"-inf\"}}")


def parse_json(text) -> object:
    """Strict ``json.loads``: ``CodecError`` for anything that is not JSON
    (including ``NaN``, overflowing numbers, repeated keys and over-deep
    nesting, ints of more than 100 digits). ``from_json`` range-checks Ints."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CodecError(f"JSON text is not valid UTF-8 (byte {e.start})") from None
    if not isinstance(text, str):
        raise CodecError(f"JSON text must be str or bytes, not {type(text).__name__}")
    if _SURROGATE.search(text):
        raise CodecError("JSON text contains a lone surrogate (not valid Unicode)")
    try:
        tree = json.loads(text, object_pairs_hook=_pairs, parse_float=_parse_float,
                          parse_int=_parse_int, parse_constant=_parse_constant)
        if _SURROGATE_ESCAPE.search(text):
            _no_lone_surrogates(tree)
        return tree
    except CodecError:
        raise
    except RecursionError:
        raise CodecError("invalid JSON: nested too deeply") from None
    except json.JSONDecodeError as e:
        raise CodecError(f"invalid JSON: {e.msg} (line {e.lineno} column {e.colno})") from None
    except ValueError as e:  # e.g. an int literal over Python's 4300-digit limit
        raise CodecError(f"invalid JSON: {_first_line(e)}") from None


def _no_lone_surrogates(tree) -> None:
    # A valid pair (\ud83d\ude00) is joined by json.loads; what is left is lone.
    stack = [tree]
    while stack:
        o = stack.pop()
        if type(o) is str:
            strs = (o,)
        elif type(o) is list:
            stack.extend(o)
            continue
        elif type(o) is dict:
            stack.extend(o.values())
            strs = o.keys()
        else:
            continue
        for x in strs:
            if _SURROGATE.search(x):
                raise CodecError("JSON text contains a lone surrogate escape (not valid Unicode)")


def dumps_json(obj) -> str:
    """Compact one-line JSON of an already-converted tree (UTF-8 text; the
    Unicode line separators escaped so the line cannot be split)."""
    try:
        s = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise CodecError(f"value nested deeper than {MAX_DEPTH} levels") from None
    except (TypeError, ValueError) as e:
        raise CodecError(f"cannot write JSON: {_first_line(e)}") from None
    if _SURROGATE.search(s):  # would not encode as UTF-8
        raise CodecError("cannot write JSON: a string contains a lone surrogate")
    if _LINE_BREAKS.search(s):
        s = _LINE_BREAKS.sub(lambda m: f"\\u{ord(m.group()):04x}", s)
    return s


# -- Lex value -> JSON tree ---------------------------------------------------

def _too_deep():
    return CodecError(f"value nested deeper than {MAX_DEPTH} levels (or a cycle)")


def _check_str(s: str, what: str = "Str") -> str:
    if _SURROGATE.search(s):
        raise CodecError(f"{what} contains a lone surrogate (not valid Unicode)")
    return s


def _to(v, depth: int):
    if v is None or v is True or v is False:
        return v
    t = type(v)
    if t is str:
        return _check_str(v)
    if t is int:
        if not INT_MIN <= v <= INT_MAX:
            raise CodecError(f"Int {_short(v)} is outside signed 64-bit")
        return v
    if t is float:
        if math.isfinite(v):
            return v
        return {"$float": "nan" if v != v else ("inf" if v > 0 else "-inf")}
    if isinstance(v, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(v)
        except (TypeError, ValueError) as e:  # a non-contiguous or released view
            raise CodecError(f"cannot read bytes: {e}") from None
        return {"$bytes": base64.b64encode(raw).decode("ascii")}
    if depth >= MAX_DEPTH:
        raise _too_deep()
    d = depth + 1
    if t is list:
        return [_to(x, d) for x in v]
    if isinstance(v, Map):
        return {"$map": [[_key_to(k, "Map key"), _to(x, d)] for k, x in v.items()]}
    if isinstance(v, dict):
        out = {}
        tagged = False
        for k, x in v.items():
            if not isinstance(k, str):
                raise CodecError(f"Record key must be Str, not {type(k).__name__}")
            k = _check_str(str(k), "Record key")
            tagged = tagged or k.startswith("$")
            out[k] = _to(x, d)
        return {"$record": out} if tagged else out
    if t is tuple:
        return {"$tuple": [_to(x, d) for x in v]}
    if isinstance(v, Set):
        keys = [_key_to(k, "Set element") for k in v]
        return {"$set": mapkey_sorted(keys)}
    if isinstance(v, Deque):
        return {"$deque": [_to(x, d) for x in v]}
    if isinstance(v, Table):
        return {"$arrow_table": {"nrows": v.nrows, "columns": [
            {"name": _check_str(name, "Table column name"), "type": dtype, "nullable": nullable,
             "values": [_to(x, d) if dtype != "Utf8" or x is None else _check_str(x)
                        for x in values]}
            for name, dtype, values, nullable in v.fields_and_columns()]}}
    if isinstance(v, PeerClosure):
        return {"$closure": v.token}
    if isinstance(v, Variant):
        name = v.name
        if not isinstance(name, str) or not name:
            raise CodecError("Variant name must be a non-empty Str")
        return {"$variant": _check_str(name, "Variant name"), "args": [_to(x, d) for x in v.args]}
    # Subclasses of the plain types (IntEnum, str subclasses, list subclasses).
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return _to(int(v), depth)
    if isinstance(v, float):
        return _to(float(v), depth)
    if isinstance(v, str):
        return _check_str(str(v))
    if isinstance(v, list):
        return [_to(x, d) for x in v]
    if isinstance(v, tuple):
        return {"$tuple": [_to(x, d) for x in v]}
    raise CodecError(f"cannot encode a {type(v).__name__} as a Lex value")


def _key_to(k, what: str):
    if type(k) is str:
        return _check_str(k, what)
    if isinstance(k, int) and not isinstance(k, bool):
        k = int(k)
        if not INT_MIN <= k <= INT_MAX:
            raise CodecError(f"{what} {_short(k)} is outside signed 64-bit")
        return k
    if isinstance(k, str):
        return _check_str(str(k), what)
    raise CodecError(f"{what} must be Str or Int, not {type(k).__name__}")


def to_json(value) -> object:
    """The JSON tree (dicts, lists, scalars) for a Lex value."""
    try:
        return _to(value, 0)
    except RecursionError:  # only reachable from a caller already near the limit
        raise _too_deep() from None


def encode(value) -> str:
    """A Lex value as compact one-line JSON text."""
    return dumps_json(to_json(value))


# -- JSON tree -> Lex value ---------------------------------------------------

def _from(o, depth: int):
    if o is None or o is True or o is False:
        return o
    t = type(o)
    if t is str:
        return _check_str(o)
    if t is int:
        if not INT_MIN <= o <= INT_MAX:
            raise CodecError(f"Int {_short(o)} is outside signed 64-bit")
        return o
    if t is float:
        if not math.isfinite(o):
            raise CodecError("a non-finite Float must be written {\"$float\": ...}")
        return o
    if depth >= MAX_DEPTH:
        raise CodecError(f"value nested deeper than {MAX_DEPTH} levels")
    d = depth + 1
    if t is list:
        return [_from(x, d) for x in o]
    if t is dict:
        tag = None
        for k in o:
            if type(k) is not str:
                raise CodecError(f"object key must be a string, not {type(k).__name__}")
            if k.startswith("$"):
                if tag is not None:
                    raise CodecError(f"object has two tags, {_short(tag)} and {_short(k)}")
                tag = k
        if tag is None:
            return {_check_str(k, "Record key"): _from(x, d) for k, x in o.items()}
        return _from_tagged(tag, o, d)
    raise CodecError(f"not a JSON value: {type(o).__name__}")


def _only(o: dict, tag: str, allowed=()) -> None:
    extra = [k for k in o if k != tag and k not in allowed]
    if extra:
        raise CodecError(f"{tag} object has an unexpected key {_short(extra[0])}")


def _from_tagged(tag: str, o: dict, d: int):
    body = o[tag]
    if tag == "$variant":
        _only(o, tag, ("args",))
        if type(body) is not str or not body:
            raise CodecError("$variant must be a non-empty string (the variant's name)")
        args = o.get("args", [])
        if type(args) is not list:
            raise CodecError(f"$variant {_short(body)}: args must be a list")
        return Variant(_check_str(body, "Variant name"), tuple(_from(x, d) for x in args))
    _only(o, tag)
    if tag == "$bytes":
        if type(body) is not str:
            raise CodecError("$bytes must be a base64 string")
        if len(body) % 4 or not _B64.fullmatch(body):
            raise CodecError("$bytes is not valid base64 (standard alphabet, padded)")
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise CodecError("$bytes is not valid base64 (standard alphabet, padded)") from None
    if tag == "$tuple":
        if type(body) is not list:
            raise CodecError("$tuple must be a list")
        return tuple(_from(x, d) for x in body)
    if tag == "$map":
        if type(body) is not list:
            raise CodecError("$map must be a list of [key, value] pairs")
        m = Map()
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise CodecError("$map entries must be [key, value] pairs")
            k = _key_from(pair[0], "Map key")
            if k in m:
                raise CodecError(f"$map has the key {_short(k)} twice")
            m[k] = _from(pair[1], d)
        return m
    if tag == "$set":
        if type(body) is not list:
            raise CodecError("$set must be a list of Str or Int elements")
        seen: set = set()
        for k in body:
            _key_from(k, "Set element")
            if k in seen:
                raise CodecError(f"$set has the element {_short(k)} twice")
            seen.add(k)
        return Set(seen)
    if tag == "$deque":
        if type(body) is not list:
            raise CodecError("$deque must be a list")
        return Deque([_from(x, d) for x in body])
    if tag == "$arrow_table":
        return _table_from(body)
    if tag == "$closure":
        return PeerClosure(body)
    if tag == "$float":
        f = _FLOAT_TAGS.get(body) if type(body) is str else None
        if f is None:
            raise CodecError('$float must be "nan", "inf" or "-inf"')
        return f
    if tag == "$record":
        if type(body) is not dict:
            raise CodecError("$record must be an object")
        return {_check_str(k, "Record key"): _from(x, d) for k, x in body.items()}
    raise CodecError(f"unknown tag {_short(tag)} (a Record with $-keys is written "
                     "{\"$record\": {..}})")


_TABLE_CELL = {"Int64": (int,), "Float64": (float, int), "Utf8": (str,), "Boolean": (bool,)}


def _table_from(body) -> Table:
    if type(body) is not dict or set(body) != {"nrows", "columns"}:
        raise CodecError('$arrow_table must be {"nrows": N, "columns": [..]}')
    nrows, columns = body["nrows"], body["columns"]
    if type(nrows) is not int or not 0 <= nrows <= INT_MAX:
        raise CodecError("$arrow_table nrows must be an Int >= 0")
    if type(columns) is not list:
        raise CodecError("$arrow_table columns must be a list")
    specs = []
    for c in columns:
        if type(c) is not dict or set(c) != {"name", "type", "nullable", "values"}:
            raise CodecError('$arrow_table columns are {"name", "type", "nullable", "values"}')
        name, dtype, nullable, values = c["name"], c["type"], c["nullable"], c["values"]
        if type(name) is not str or type(nullable) is not bool or type(values) is not list:
            raise CodecError("$arrow_table column: name Str, nullable Bool, values a list")
        kinds = _TABLE_CELL.get(dtype) if type(dtype) is str else None
        if kinds is None:
            raise CodecError(f"$arrow_table column {_short(name)}: type must be Int64, Float64, "
                             "Utf8 or Boolean")
        cells = []
        for x in values:
            if type(x) is dict and dtype == "Float64":
                x = from_json(x)
            if x is not None and type(x) not in kinds:
                raise CodecError(f"$arrow_table column {_short(name)} ({dtype}) holds "
                                 f"{_kind(x)}")
            if type(x) is int:
                if not INT_MIN <= x <= INT_MAX:
                    raise CodecError(f"Int {_short(x)} is outside signed 64-bit")
                if dtype == "Float64":
                    x = float(x)
            elif type(x) is str:
                _check_str(x)
            cells.append(x)
        specs.append((_check_str(name, "Table column name"), dtype, cells, nullable))
    try:
        return Table(specs, nrows=nrows)
    except (TypeError, ValueError) as e:
        raise CodecError(f"$arrow_table: {e}") from None


def _key_from(k, what: str):
    if type(k) is str:
        return _check_str(k, what)
    if type(k) is int:
        if not INT_MIN <= k <= INT_MAX:
            raise CodecError(f"{what} {_short(k)} is outside signed 64-bit")
        return k
    raise CodecError(f"{what} must be Str or Int, got {_kind(k)}")


def from_json(obj) -> object:
    """The Lex value for an already-parsed JSON tree."""
    try:
        return _from(obj, 0)
    except RecursionError:
        raise CodecError(f"value nested deeper than {MAX_DEPTH} levels") from None


def decode(text_or_obj) -> object:
    """The Lex value for JSON text (``str`` / ``bytes``: always parsed as
    JSON, so the Str ``"a"`` is the text ``'"a"'``) or for a tree already
    parsed by ``json.loads`` (anything else)."""
    if isinstance(text_or_obj, (str, bytes, bytearray, memoryview)):
        text_or_obj = parse_json(text_or_obj)
    return from_json(text_or_obj)


# -- messages -----------------------------------------------------------------

def _short(x) -> str:
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 10 ** 30:
        return f"<{x.bit_length()}-bit int>"
    r = json.dumps(x, ensure_ascii=True) if isinstance(x, (str, int)) else repr(x)
    return r if len(r) <= 60 else r[:57] + "..."


def _kind(x) -> str:
    return {type(None): "null", bool: "a bool", float: "a float", list: "a list",
            dict: "an object"}.get(type(x), type(x).__name__)


def _first_line(e: BaseException) -> str:
    s = str(e).splitlines()
    return s[0] if s else type(e).__name__


__all__ = ["CodecError", "MAX_DEPTH", "PeerClosure", "decode", "dumps_json", "encode", "from_json",
           "parse_json", "to_json"]
