"""Pure builtins of the reference's data-format modules (``builtins.rs``):
``json``, ``toml``, ``yaml``, ``dotenv``, ``csv``.

The reference routes every format through ``serde_json::Value`` (built
without ``preserve_order``: objects are ``BTreeMap``s), so:

- a parsed object is a Record whose fields are in sorted key order, and a
  duplicate key keeps its last value;
- an integer that fits i64 is an Int; a larger one, and any number with a
  fraction or exponent, is a Float; ``-0`` is the Float ``-0.0``;
- ``{"$variant": name, "args": [..]}`` decodes to a Variant and
  ``{"$bytes": "<hex>"}`` (alone) to Bytes (``Value::from_json``);
- stringify writes objects with sorted keys, compact (``serde_json``'s
  ``to_string``), non-ASCII raw, floats as Rust's shortest form (``1.0``,
  ``1e16``, ``1.5e-7``), a NaN or infinity as ``null``; Bytes as
  ``{"$bytes": hex}``, a Variant as ``{"$variant", "args"}``, a Map with
  a non-Str key as a list of ``[key, value]`` pairs.

``json.parse`` uses the C ``json`` scanner with a cheap object hook; a
pre-scan sends only texts with rare number shapes (``-0``, huge integers,
big exponents) through per-number hooks. Nesting deeper than serde_json's
limit of 128 is the reference's ``recursion limit exceeded`` error, never a
``RecursionError``. Error texts follow serde_json's (``expected value at
line 1 column 1``, ``EOF while parsing a list at ...``, ``trailing
characters at ...``), columns counted in UTF-8 bytes as serde_json does.

On the compiled core (``lexfast.builtins._json_c``), a text without rare
shapes, errors or surrogates takes a fast path (one C pre-scan, the hookless
C scanner, one ordering walk) to the same value, and ``json.stringify``
builds its JSON data in one compiled walk that also counts the strings for
the cap and spots the floats Rust writes differently. ``loads_py`` and
``dumps_py`` are the Python paths (all of it on the twin).
"""

from __future__ import annotations

import json
import math
import operator
import os
import re
from collections.abc import Callable

from ..errors import EffectError
from ..kernel import COMPILED, NONE, Variant, err, ok, some
from ..values import INT_MAX, INT_MIN, Map, debug_repr

#: serde_json's nesting limit (``remaining_depth`` starts at 128)
MAX_DEPTH = 128


# the compiled fast paths (lexfast.builtins._json_c), on the compiled core

def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


def _no_fast_path(s: str) -> None:
    return None


#: the compiled fast path of ``loads`` (answers ``None``: take the Python path)
_fast_loads: Callable[[str], tuple[bool, object] | None] = _no_fast_path
#: the compiled ``_to_json`` of ``dumps`` (``None``: the Python path)
_to_json_c: Callable[[object, Callable], tuple[object, int, bool]] | None = None
#: whether ``json.parse``/``json.stringify`` have the compiled fast paths
#: (``lexfast.builtins._json_c``)
JSON_COMPILED = False
if COMPILED and not _flag("LEXFAST_NO_EXTENSIONS"):
    try:
        from . import _json_c
    except ImportError:  # built without it: the Python path serves alone
        if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
            raise
    else:
        _fast_loads = _json_c.loads
        _to_json_c = _json_c.to_json
        JSON_COMPILED = True


def _first(args: list) -> object:
    if not args:
        raise EffectError("missing argument")
    return args[0]


def _str_arg(args: list, i: int) -> str:
    # the reference's ``expect_str(args.get(i))``
    if i >= len(args):
        raise EffectError("missing argument")
    v = args[i]
    if isinstance(v, str):
        return str(v)
    raise EffectError(f"expected Str, got {debug_repr(v)}")


# ---------------------------------------------------------------------------
# Lex value -> JSON-shaped Python (Value::to_json)

def _set_type() -> type | None:
    from .. import values

    return getattr(values, "Set", None)


def _deque_type() -> type | None:
    from .. import values

    return getattr(values, "Deque", None)


def _map_key_order(k: object) -> tuple:
    # MapKey derives Ord with Str before Int
    return (1, k, "") if type(k) is int else (0, 0, k)


def to_json(v: object, depth: int = 0) -> object:
    """A Lex value as plain JSON data: dict (str keys), list, str, int,
    float, bool, None; a NaN or infinity is ``None`` (serde_json's ``null``).
    A value too deep for this thread's stack is a clean error, never a
    ``RecursionError`` (the 512 cap is not reached if the caller is deep)."""
    try:
        return _to_json(v, depth)
    except RecursionError:
        raise EffectError("json: value nested too deeply") from None


def _to_json(v: object, depth: int = 0) -> object:
    """A Lex value as plain JSON data: dict (str keys), list, str, int,
    float, bool, None; a NaN or infinity is ``None`` (serde_json's ``null``)."""
    t = type(v)
    if t is str or t is bool or t is int or v is None:
        return v
    if t is float:
        if v != v or v in (math.inf, -math.inf):
            return None
        return v
    if depth > 512:
        raise EffectError("json: value nested too deeply")
    d = depth + 1
    if t is list or t is tuple:
        return [_to_json(x, d) for x in v]
    if isinstance(v, Variant):
        return {"$variant": v.name, "args": [_to_json(x, d) for x in v.args]}
    if isinstance(v, Map):
        if all(type(k) is str for k in v):
            return {k: _to_json(x, d) for k, x in v.items()}
        return [[_to_json(k, d), _to_json(v[k], d)] for k in sorted(v, key=_map_key_order)]
    if isinstance(v, dict):
        return {str(k): _to_json(x, d) for k, x in v.items()}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, str):
        return str(v)
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return _to_json(float(v), depth)
    st = _set_type()
    if st is not None and isinstance(v, st):
        return [_to_json(x, d) for x in sorted(v, key=_map_key_order)]
    dq = _deque_type()
    if dq is not None and isinstance(v, dq):
        return [_to_json(x, d) for x in v]
    return str(v)


def rust_float(f: float) -> str:
    """``f`` as serde_json (ryu) writes a finite float."""
    r = repr(f)
    if "e" not in r and "E" not in r and not (f != 0.0 and abs(f) < 1e-4):
        return r
    # shortest digits and decimal exponent from Python's repr
    sign = "-" if r.startswith("-") else ""
    body = r.lstrip("-")
    if "e" in body:
        mant, exp_s = body.split("e")
        exp = int(exp_s)
    else:
        mant, exp = body, 0
    if "." in mant:
        ip, fp = mant.split(".")
    else:
        ip, fp = mant, ""
    digits = (ip + fp).lstrip("0")
    # value = 0.digits... normalise: point after len(ip) digits of ip+fp
    lead_zeros = len(ip + fp) - len((ip + fp).lstrip("0"))
    point = len(ip) - lead_zeros + exp  # value = 0.<digits> * 10^point
    digits = digits.rstrip("0") or "0"
    k = point
    n = len(digits)
    if -5 < k <= 0:
        return f"{sign}0.{'0' * -k}{digits}"
    if 0 < k <= 16:
        if n <= k:
            return f"{sign}{digits}{'0' * (k - n)}.0"
        return f"{sign}{digits[:k]}.{digits[k:]}"
    e = k - 1
    m = digits if n == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{m}e{e}"


_ESC = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
for _i in range(0x20):
    _ESC.setdefault(chr(_i), f"\\u{_i:04x}")


def _enc_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _encode_slow(o: object, out: list) -> None:
    t = type(o)
    if o is None:
        out.append("null")
    elif t is bool:
        out.append("true" if o else "false")
    elif t is int:
        out.append(str(o))
    elif t is float:
        out.append(rust_float(o))
    elif t is str:
        out.append(_enc_str(o))
    elif t is list:
        out.append("[")
        for i, x in enumerate(o):
            if i:
                out.append(",")
            _encode_slow(x, out)
        out.append("]")
    else:
        out.append("{")
        for i, k in enumerate(sorted(o)):
            if i:
                out.append(",")
            out.append(_enc_str(k))
            out.append(":")
            _encode_slow(o[k], out)
        out.append("}")


_PY_EXP = re.compile(r"\de[+-]\d")


#: Cap (chars of Str content) on what a ``stringify`` may render: stricter
#: than the reference, so a value aliasing one big Str many times (cheap to
#: build) cannot make one call write gigabytes.
STRINGIFY_MAX_CHARS = 1 << 26


def _too_big(j: object, max_nodes: int, max_chars: int = STRINGIFY_MAX_CHARS) -> str | None:
    """Why the JSON-shaped ``j`` is past the caps (``None`` if not): more
    than ``max_nodes`` nodes or ``max_chars`` chars of strings (stops
    counting there)."""
    stack = [j]
    n = chars = 0
    while stack:
        v = stack.pop()
        n += 1
        t = type(v)
        if t is str:
            chars += len(v)
        elif t is list:
            stack.extend(v)
        elif t is dict:
            stack.extend(v.values())
            n += len(v)
            for k in v:
                chars += len(k)
        if n > max_nodes:
            return f"value has more than {max_nodes} nodes (the cap)"
        if chars > max_chars:
            return f"value's strings exceed the cap of {max_chars} chars"
    return None


def dumps(v: object) -> str:
    """``serde_json::to_string(&v.to_json())``."""
    if _to_json_c is not None:
        # the compiled walk: the same data, its strings' length and whether a
        # float needs Rust's exponent form, in one pass
        j, chars, rare = _to_json_c(v, _to_json)
        if chars > STRINGIFY_MAX_CHARS and (type(j) is list or type(j) is dict):
            raise EffectError(f"json: value's strings exceed the cap of {STRINGIFY_MAX_CHARS} chars")
        if rare:
            out: list = []
            _encode_slow(j, out)
            return "".join(out)
        return json.dumps(j, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                          allow_nan=False, check_circular=False)
    return dumps_py(v)


def dumps_py(v: object) -> str:
    """``dumps`` without the compiled walk (the whole of it on the twin)."""
    j = to_json(v)
    if type(j) is list or type(j) is dict:
        why = _too_big(j, 1 << 62)
        if why:
            raise EffectError(f"json: {why}")
    s = json.dumps(j, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                   allow_nan=False, check_circular=False)
    if _PY_EXP.search(s):
        # a float Python writes with an exponent (``1e+16``, ``1e-05``): Rust
        # writes those differently
        out: list = []
        _encode_slow(j, out)
        return "".join(out)
    return s


# ---------------------------------------------------------------------------
# JSON text -> Lex value (Value::from_json)

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_key = operator.itemgetter(0)


def _marked(d: dict) -> object:
    """``Value::from_json``'s markers: ``$variant`` + ``args``, a lone ``$bytes``."""
    if "$variant" in d:
        name = d["$variant"]
        args = d.get("args")
        if type(name) is str and type(args) is list:
            return Variant(name, tuple(args))
    if len(d) == 1 and "$bytes" in d:
        h = d["$bytes"]
        if type(h) is str and _HEX.fullmatch(h):
            return bytes.fromhex(h)
    return d


def _pairs_hook(p: list) -> object:
    """An object as serde_json holds it (a ``BTreeMap``: sorted keys, the last
    of duplicates), then the markers."""
    if len(p) > 1:
        p.sort(key=_key)  # stable: the last duplicate stays last
    d = dict(p)
    if p and p[0][0][:1] <= "$":  # a marker key sorts first ("$" < "0" < "A" < "a")
        return _marked(d)
    return d


def _obj_hook(d: dict) -> object:
    """The same from a dict (YAML/TOML)."""
    if len(d) > 1:
        d = dict(sorted(d.items(), key=_key))
    return _marked(d)


def _parse_int(s: str) -> object:
    if len(s) > 24:  # past i64 (JSON has no leading zeros): float(), which has no digit limit
        f = float(s)
        if f in (math.inf, -math.inf):
            raise _NumRange(s)
        return f
    n = int(s)
    if INT_MIN <= n <= INT_MAX:
        if n == 0 and s[0] == "-":
            return -0.0
        return n
    f = float(s)
    if f in (math.inf, -math.inf):
        raise _NumRange(s)
    return f


def _parse_float(s: str) -> float:
    f = float(s)
    if f in (math.inf, -math.inf):
        raise _NumRange(s)
    return f


class _NumRange(Exception):
    pass


class _BadConst(Exception):
    pass


def _bad_const(s: str) -> object:
    raise _BadConst(s)


_FAST = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_constant=_bad_const)
_HOOKED = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_constant=_bad_const,
                           parse_int=_parse_int, parse_float=_parse_float)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SURROGATE_ESC = re.compile(r"\\u[dD][89abAB]")
_NEG0 = re.compile(r"-0(?![.\deE])")
#: bytes.translate tables for the pre-scans (C speed)
_DIGITS0 = bytes(0x30 if 0x30 <= i <= 0x39 else 0x65 if i == 0x45 else 0x2D if i == 0x2B else i
                 for i in range(256))  # digits -> "0", "E" -> "e", "+" -> "-"
_NOT_STRUCT = bytes(i for i in range(256) if i not in b'"[]{}')


def _rare_numbers(e: bytes) -> bool:
    """Whether the text may hold a number the plain scanner maps wrongly:
    ``-0``, an integer past i64 (19+ digits), an exponent of 3+ digits.
    (A false alarm only costs the per-number hooks.)"""
    t = e.translate(_DIGITS0)
    run = b"0" * 19
    i = t.find(run)
    while i >= 0:
        j = i
        while j > 0 and t[j - 1] == 0x30:
            j -= 1
        if j == 0 or t[j - 1] != 0x2E:  # not a fraction's digits
            return True
        i = t.find(run, i + 19)
    if b"-" in e and b"-0" in e and _NEG0.search(e.decode("utf-8", "surrogatepass")):
        return True
    return b"e000" in t or b"e-000" in t


def _too_deep(e: bytes) -> bool:
    """Nesting past serde_json's 128, counted on the brackets outside strings."""
    if e.count(b"[") + e.count(b"{") <= MAX_DEPTH:
        return False
    b = e
    if b"\\" in b:
        b = b.replace(b"\\\\", b"").replace(b'\\"', b"")
    b = b.translate(None, _NOT_STRUCT)
    b = b.replace(b'""', b"")  # strings without brackets in them
    if b'"' in b:
        b = b"".join(b.split(b'"')[::2])
    b = b.replace(b"{", b"[").replace(b"}", b"]")
    for _ in range(MAX_DEPTH):
        nb = b.replace(b"[]", b"")
        if not nb or nb == b:  # done, or unbalanced: the parser reports that
            return False
        b = nb
    return True


def _pos(s: str, i: int) -> str:
    i = max(0, min(i, len(s)))
    start = s.rfind("\n", 0, i) + 1
    line = s.count("\n", 0, start) + 1
    col = len(s[start:i].encode("utf-8", "surrogatepass"))
    return f"line {line} column {col}"


def _prev_nonws(s: str, i: int) -> str:
    j = i - 1
    while j >= 0 and s[j] in " \t\n\r":
        j -= 1
    return s[j] if j >= 0 else ""


def _container(s: str, i: int) -> str:
    """The innermost open bracket before ``i`` ('[' or '{'), '' at top level."""
    b = _NOT_BRACKET.sub("", _STRINGS.sub("", s[:i]))
    stack: list = []
    for c in b:
        if c in "[{":
            stack.append(c)
        elif stack:
            stack.pop()
    return stack[-1] if stack else ""


def _eof_in(s: str, i: int) -> str:
    c = _container(s, i)
    return "a list" if c == "[" else "an object" if c == "{" else "a value"


def _number_fault(s: str, pos: int) -> str | None:
    """serde_json's ``invalid number`` where Python stopped after a number."""
    if pos >= len(s):
        return None
    c = s[pos]
    j = pos
    while j > 0 and s[j - 1] in "0123456789+-.eE":
        j -= 1
    num = s[j:pos]
    if not num:
        return None
    if c.isdigit() and num.lstrip("-") == "0":
        return f"invalid number at {_pos(s, pos + 1)}"
    if c in ".eE":
        return f"invalid number at {_pos(s, min(pos + 2, len(s)))}"
    return None


def json_error_text(e: BaseException) -> str:
    """serde_json's text for a failure of ``json.loads`` (``expected value at
    line 1 column 1``, ``EOF while parsing a value at line 1 column 0``): the
    one formatter every op that reports a JSON parse error uses, so that
    ``json.parse``, the agent ops and the MCP client say what the reference
    says."""
    if isinstance(e, json.JSONDecodeError):
        return _serde_error(e.doc, e)
    if isinstance(e, RecursionError):
        return "recursion limit exceeded"
    return str(e)


def _serde_error(s: str, e: json.JSONDecodeError) -> str:
    msg, pos, n = e.msg, e.pos, len(s)
    at_end = pos >= n
    if msg.startswith("Unterminated string"):
        return f"EOF while parsing a string at {_pos(s, n)}"
    if msg.startswith("Invalid control character"):
        return f"control character (\\u0000-\\u001F) found while parsing a string at {_pos(s, pos + 1)}"
    if msg.startswith("Invalid \\escape"):
        return f"invalid escape at {_pos(s, pos + 2)}"
    if msg.startswith("Invalid \\uXXXX"):
        return f"invalid escape at {_pos(s, pos + 2)}"
    if msg == "Expecting value":
        if at_end:
            prev = _prev_nonws(s, n)
            if prev == "[":
                return f"EOF while parsing a list at {_pos(s, n)}"
            return f"EOF while parsing a value at {_pos(s, n)}"
        c = s[pos]
        if c in "]}" and _prev_nonws(s, pos) == ",":
            return f"trailing comma at {_pos(s, pos + 1)}"
        for word in ("true", "false", "null"):
            if c == word[0]:
                for k, wc in enumerate(word):
                    if pos + k >= n:
                        return f"EOF while parsing a value at {_pos(s, n)}"
                    if s[pos + k] != wc:
                        return f"expected ident at {_pos(s, pos + k + 1)}"
        if c == "-":
            return f"invalid number at {_pos(s, min(pos + 2, n))}"
        return f"expected value at {_pos(s, pos + 1)}"
    if msg == "Extra data":
        return _number_fault(s, pos) or f"trailing characters at {_pos(s, pos + 1)}"
    if msg.startswith("Expecting ',' delimiter"):
        if at_end:
            return f"EOF while parsing {_eof_in(s, n)} at {_pos(s, n)}"
        nf = _number_fault(s, pos)
        if nf:
            return nf
        close = "]" if _container(s, pos) == "[" else "}"
        return f"expected `,` or `{close}` at {_pos(s, pos + 1)}"
    if msg.startswith("Expecting ':' delimiter"):
        if at_end:
            return f"EOF while parsing an object at {_pos(s, n)}"
        return f"expected `:` at {_pos(s, pos + 1)}"
    if msg.startswith("Expecting property name"):
        if at_end:
            if _prev_nonws(s, n) == ",":
                return f"EOF while parsing a value at {_pos(s, n)}"
            return f"EOF while parsing an object at {_pos(s, n)}"
        if s[pos] == "}" and _prev_nonws(s, pos) == ",":
            return f"trailing comma at {_pos(s, pos + 1)}"
        return f"key must be a string at {_pos(s, pos + 1)}"
    return f"{msg} at {_pos(s, pos + 1)}"


def _has_surrogate(v: object) -> bool:
    stack = [v]
    while stack:
        x = stack.pop()
        t = type(x)
        if t is str:
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif t is list:
            stack.extend(x)
        elif t is dict:
            stack.extend(x)
            stack.extend(x.values())
        elif t is Variant or isinstance(x, Variant):
            stack.extend(x.args)
    return False


def loads(s: str) -> tuple[bool, object]:
    """``serde_json::from_str`` then ``Value::from_json``: ``(True, value)``
    or ``(False, message)``."""
    r = _fast_loads(s)
    if r is not None:
        return r
    return loads_py(s)


def loads_py(s: str) -> tuple[bool, object]:
    """``loads`` without the compiled fast path (every error, every rare
    shape, and the whole of it on the twin)."""
    e = s.encode("utf-8", "surrogatepass")
    if _too_deep(e):
        return False, f"recursion limit exceeded at {_depth_pos(s)}"
    dec = _HOOKED if _rare_numbers(e) else _FAST
    try:
        v = dec.decode(s)
    except json.JSONDecodeError as e:
        return False, _serde_error(s, e)
    except _NumRange:
        return False, f"number out of range at {_pos(s, len(s))}"
    except _BadConst as e:
        c = str(e)
        i = s.find(c)
        if c.startswith("-"):
            return False, f"invalid number at {_pos(s, i + 2)}"
        return False, f"expected value at {_pos(s, i + 1)}"
    except RecursionError:  # pragma: no cover - _too_deep guards it
        return False, "recursion limit exceeded"
    if b"\\u" in e and _SURROGATE_ESC.search(s) and _has_surrogate(v):
        m = re.search(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])", s)
        i = m.end() if m else len(s)
        return False, f"lone leading surrogate in hex escape at {_pos(s, i)}"
    return True, v


def _depth_pos(s: str) -> str:
    depth = 0
    in_str = esc = False
    for i, c in enumerate(s):
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return _pos(s, i + 1)
        elif c in "]}":
            depth -= 1
    return _pos(s, len(s))  # pragma: no cover


# ---------------------------------------------------------------------------
# parse_strict: required fields (dotted paths) and a type schema

def required_field_names(args: list, i: int) -> list:
    if i >= len(args):
        raise EffectError("missing argument")
    lst = args[i]
    if not isinstance(lst, list):
        raise EffectError(f"expected List, got {debug_repr(lst)}")
    out = []
    for v in lst:
        if not isinstance(v, str):
            raise EffectError(f"parse_strict: required-fields list must contain Str, got {debug_repr(v)}")
        out.append(str(v))
    return out


def extract_type_schema(args: list, i: int) -> list:
    v = args[i] if i < len(args) else None
    if not isinstance(v, list):
        return []
    out = []
    for p in v:
        if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], str):
            out.append((p[0], p[1]))
    return out


def _split_dotted(path: str) -> list:
    out, cur, i, n = [], [], 0, len(path)
    while i < n:
        c = path[i]
        if c == "\\" and i + 1 < n and path[i + 1] == ".":
            cur.append(".")
            i += 2
            continue
        if c == ".":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def _is_obj(v: object) -> bool:
    # a JSON object as decoded (a Record, or an object that became a Variant/Bytes)
    return type(v) is dict


def _raw_obj(v: object) -> dict | None:
    """The JSON object a decoded value came from (Variant/Bytes markers
    are objects in serde_json's view)."""
    if type(v) is dict:
        return v
    if isinstance(v, Variant):
        return {"$variant": v.name, "args": list(v.args)}
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    return None


def _json_text(v: object) -> str:
    """serde_json's Display of a Value (compact JSON)."""
    return dumps(v)


def check_required_fields(v: object, required: list) -> str | None:
    if not required:
        return None
    top = _raw_obj(v)
    if top is None:
        names = "[" + ", ".join(json.dumps(r, ensure_ascii=False) for r in required) + "]"
        return f"parse_strict: expected top-level object with fields {names}, got {_json_text(v)}"
    missing = []
    for path in required:
        cur: object = top
        found = True
        for seg in _split_dotted(path):
            o = _raw_obj(cur)
            if o is None or seg not in o:
                found = False
                break
            cur = o[seg]
        if not found:
            missing.append(path)
    if missing:
        return "missing required field(s): " + ", ".join(missing)
    return None


def _type_name(v: object) -> str:
    if v is None:
        return "null"
    t = type(v)
    if t is bool:
        return "Bool"
    if t is int or t is float:
        return "Number"
    if t is str:
        return "Str"
    if t is list:
        return "Array"
    return "Object"


def _check_type(v: object, tag: str) -> str | None:
    t = type(v)
    if tag == "Int":
        return None if t is int else f"expected Int, got {_type_name(v)}"
    if tag == "Float":
        return None if t is int or t is float else f"expected Float, got {_type_name(v)}"
    if tag == "Bool":
        return None if t is bool else f"expected Bool, got {_type_name(v)}"
    if tag == "Str":
        return None if t is str else f"expected Str, got {_type_name(v)}"
    if tag.startswith("Option["):
        if v is None:
            return None
        if tag.endswith("]"):
            return _check_type(v, tag[7:-1])
        return None
    if tag.startswith("List[") and tag.endswith("]") and t is list:
        inner = tag[5:-1]
        for i, item in enumerate(v):
            e = _check_type(item, inner)
            if e is not None:
                return f"[{i}]: {e}"
    return None


def validate_field_types(v: object, schema: list) -> str | None:
    if not schema:
        return None
    obj = _raw_obj(v)
    if obj is None:
        return None
    for field, tag in schema:
        if field in obj:
            e = _check_type(obj[field], tag)
            if e is not None:
                return f"field `{field}`: {e}"
    return None


def apply_option_wrapping(v: object, schema: list) -> object:
    if not schema or type(v) is not dict:
        return v
    out = dict(v)
    for field, tag in schema:
        if tag.startswith("Option[") and tag.endswith("]"):
            if field not in v or v[field] is None:
                out[field] = NONE
            else:
                out[field] = some(v[field])
    return out


def strict(parsed: tuple[bool, object], args: list, wrap: Callable = err) -> object:
    """The shared tail of every ``*.parse_strict``: argument checks first
    (the reference reads them before parsing), then presence, then types."""
    required = required_field_names(args, 1)
    schema = extract_type_schema(args, 2)
    good, v = parsed
    if not good:
        return wrap(v)
    e = check_required_fields(v, required)
    if e is None:
        e = validate_field_types(v, schema)
    if e is not None:
        return wrap(e)
    return ok(apply_option_wrapping(v, schema))


# ---------------------------------------------------------------------------
# json

def json_stringify(args: list) -> str:
    try:
        return dumps(_first(args))
    except RecursionError:  # the encoder's own recursion, past to_json's cap
        raise EffectError("json: value nested too deeply") from None


def json_parse(args: list) -> object:
    good, v = loads(_str_arg(args, 0))
    return ok(v) if good else err(v)


def json_parse_strict(args: list) -> object:
    s = _str_arg(args, 0)
    required_field_names(args, 1)
    return strict(loads(s), args)


# ---------------------------------------------------------------------------
# toml

def _toml_time(t: object) -> str:
    s = f"{t.hour:02}:{t.minute:02}:{t.second:02}"
    if t.microsecond:
        s += "." + f"{t.microsecond:06}".rstrip("0")
    return s


def _toml_value(v: object, depth: int = 0) -> object:
    import datetime as dt

    if depth > MAX_DEPTH:
        raise _TomlDeep
    t = type(v)
    if t is int and not INT_MIN <= v <= INT_MAX:
        raise _TomlRange
    if t is dict:
        return {k: _toml_value(x, depth + 1) for k, x in sorted(v.items())}
    if t is list:
        return [_toml_value(x, depth + 1) for x in v]
    if t is float:
        return None if v != v or v in (math.inf, -math.inf) else v
    if t is dt.datetime:
        s = f"{v.year:04}-{v.month:02}-{v.day:02}T{_toml_time(v)}"
        if v.tzinfo is not None:
            off = v.utcoffset()
            mins = int(off.total_seconds() // 60) if off is not None else 0
            if mins == 0 and str(v.tzinfo) == "UTC":
                s += "Z"
            else:
                sign = "-" if mins < 0 else "+"
                mins = abs(mins)
                s += f"{sign}{mins // 60:02}:{mins % 60:02}"
        return s
    if t is dt.date:
        return f"{v.year:04}-{v.month:02}-{v.day:02}"
    if t is dt.time:
        return _toml_time(v)
    return v


class _TomlDeep(Exception):
    pass


class _TomlRange(Exception):
    pass


def _toml_loads(s: str) -> tuple[bool, object]:
    try:
        import tomllib  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(s)
    except tomllib.TOMLDecodeError as e:
        return False, _toml_error(str(e))
    except RecursionError:
        return False, "TOML parse error: recursion limit exceeded"
    except ValueError:  # int() of 4300+ digits: past i64 like any overflow
        return False, "TOML parse error: integer number overflowed"
    try:
        return True, _toml_value(data)
    except _TomlDeep:
        return False, "TOML parse error: recursion limit exceeded"
    except _TomlRange:
        return False, "TOML parse error: integer number overflowed"


_TOML_AT = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$", re.S)
_TOML_EOF = re.compile(r"^(.*) \(at end of document\)$", re.S)


def _toml_error(msg: str) -> str:
    m = _TOML_AT.match(msg)
    if m:
        return f"TOML parse error at line {m.group(2)}, column {m.group(3)}\n{m.group(1)}"
    m = _TOML_EOF.match(msg)
    if m:
        return f"TOML parse error at end of document\n{m.group(1)}"
    return f"TOML parse error\n{msg}"


def toml_parse(args: list) -> object:
    good, v = _toml_loads(_str_arg(args, 0))
    return ok(v) if good else err(v)


def toml_parse_strict(args: list) -> object:
    s = _str_arg(args, 0)
    required_field_names(args, 1)
    return strict(_toml_loads(s), args)


class _TomlUnsupported(Exception):
    pass


def rust_display_float(f: float) -> str:
    """Rust's ``{}`` for an f64 (positional, shortest digits)."""
    r = repr(f)
    if "e" not in r:
        return r[:-2] if r.endswith(".0") else r
    sign = "-" if r.startswith("-") else ""
    mant, exp_s = r.lstrip("-").split("e")
    ip, _, fp = mant.partition(".")
    digits = ip + fp
    point = len(ip) + int(exp_s)
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_CTRL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _toml_basic(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_str(s: str) -> str:
    if '"' not in s and "\\" not in s and not _TOML_CTRL.search(s):
        return f'"{s}"'
    if "'" not in s and not _TOML_CTRL.search(s):
        return f"'{s}'"
    return _toml_basic(s)


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _toml_str(k)


def _toml_inline(v: object) -> str:
    if v is None:
        raise _TomlUnsupported("unsupported None value")
    t = type(v)
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        text = rust_display_float(v)
        return text if ("." in text or "inf" in text or "nan" in text) else text + ".0"
    if t is str:
        return _toml_str(v)
    if t is list:
        return "[" + ", ".join(_toml_inline(x) for x in v) + "]"
    if t is dict:
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_inline(x)}" for k, x in v.items()) + " }"
    raise _TomlUnsupported(f"unsupported {t.__name__} value")  # pragma: no cover


def _is_table_array(v: object) -> bool:
    return type(v) is list and bool(v) and all(type(x) is dict for x in v)


def _toml_table(table: dict, path: list, out: list, header: str | None) -> None:
    plain = [(k, v) for k, v in table.items() if type(v) is not dict and not _is_table_array(v)]
    subs = [(k, v) for k, v in table.items() if type(v) is dict or _is_table_array(v)]
    if header is not None and (plain or not subs or header.startswith("[[")):
        if out:
            out.append("\n")
        out.append(header + "\n")
    for k, v in plain:
        out.append(f"{_toml_key(k)} = {_toml_inline(v)}\n")
    for k, v in subs:
        sub = [*path, _toml_key(k)]
        name = ".".join(sub)
        if type(v) is dict:
            _toml_table(v, sub, out, f"[{name}]")
        else:
            for item in v:
                _toml_table(item, sub, out, f"[[{name}]]")


def _sorted_json(j: object) -> object:
    """serde_json's objects iterate in key order."""
    t = type(j)
    if t is dict:
        return {k: _sorted_json(j[k]) for k in sorted(j)}
    if t is list:
        return [_sorted_json(x) for x in j]
    return j


def toml_stringify(args: list) -> object:
    j = _sorted_json(to_json(_first(args)))
    why = _too_big(j, 1 << 62)
    if why:
        return err(f"toml.stringify: {why}")
    if type(j) is not dict:
        kind = {bool: "bool", int: "i64", float: "f64", str: "str", list: "seq",
                type(None): "unit"}.get(type(j), "value")
        return err(f"toml.stringify: unsupported rust type `{kind}` at the top level, expected a table")
    out: list = []
    try:
        _toml_table(j, [], out, None)
    except _TomlUnsupported as e:
        return err(f"toml.stringify: {e}")
    return ok("".join(out))


# ---------------------------------------------------------------------------
# yaml (PyYAML's safe loader with YAML 1.2 core-schema scalars, as serde_yaml)

_YAML_LOADER: type | None = None
#: the least cap on the nodes an alias-heavy document expands to (billion laughs)
YAML_MAX_NODES = 100_000


def _yaml_loader() -> type:
    global _YAML_LOADER
    if _YAML_LOADER is not None:
        return _YAML_LOADER
    import yaml

    # libyaml's parser where PyYAML was built with it (its wheels are): the
    # same safe constructor and these resolvers, many times faster to scan
    base = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

    class Loader(base):  # type: ignore[valid-type,misc]
        pass

    Loader.yaml_implicit_resolvers = {}
    core = [
        ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
        ("tag:yaml.org,2002:int",
         r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
        ("tag:yaml.org,2002:float",
         r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
         r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+.0123456789")),
        ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ]
    for tag, rx, first in core:
        Loader.add_implicit_resolver(tag, re.compile(rx), first)

    def construct_int(loader: object, node: object) -> object:
        text = node.value.replace("_", "")  # type: ignore[attr-defined]
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        if len(text) > 24:  # past i64 anyway: int() refuses 4300+ digits
            return float(text)
        return int(text, 10)

    def construct_float(loader: object, node: object) -> object:
        text = node.value.lower()  # type: ignore[attr-defined]
        if text.endswith(".inf"):
            return -math.inf if text.startswith("-") else math.inf
        if text == ".nan":
            return math.nan
        return float(text)

    def construct_str_ts(loader: object, node: object) -> object:
        return loader.construct_scalar(node)  # type: ignore[attr-defined]

    def construct_bool(loader: object, node: object) -> object:
        return node.value.lower() == "true"  # type: ignore[attr-defined]

    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    Loader.add_constructor("tag:yaml.org,2002:float", construct_float)
    Loader.add_constructor("tag:yaml.org,2002:bool", construct_bool)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", construct_str_ts)
    _YAML_LOADER = Loader
    return Loader


class _YamlLimit(Exception):
    pass


def _yaml_key(k: object) -> str:
    if isinstance(k, str):
        return k
    if k is None:
        return "null"
    if isinstance(k, bool):
        return "true" if k else "false"
    if isinstance(k, (int, float)):
        return rust_float(k) if isinstance(k, float) else str(k)
    raise _YamlLimit("invalid type: map, expected a string")


def _yaml_value(v: object, depth: int, budget: list) -> object:
    budget[0] -= 1
    if budget[0] < 0:
        raise _YamlLimit("repetition limit exceeded")
    if depth > MAX_DEPTH:
        raise _YamlLimit("recursion limit exceeded")
    t = type(v)
    if t is dict:
        d = {_yaml_key(k): _yaml_value(x, depth + 1, budget) for k, x in v.items()}
        return _obj_hook(d)
    if t is list:
        return [_yaml_value(x, depth + 1, budget) for x in v]
    if t is float:
        if v != v or v in (math.inf, -math.inf):
            return None
        return v
    if t is int:
        if INT_MIN <= v <= INT_MAX:
            return v
        try:
            return float(v)
        except OverflowError:  # past f64: what the float form gives (inf -> null)
            return None
    if t is bytes:  # !!binary
        return v
    if v is None or t is bool or t is str:
        return v
    return str(v)


#: Caps stricter than the reference (native serde_yaml): PyYAML's parser
#: and emitter are pure Python, ~20 us a node with the GIL held, so one call
#: on a few hundred KiB would hold the process for seconds. ``yaml.parse``
#: refuses a text past ``YAML_MAX_INPUT`` chars (256 Ki with libyaml's
#: parser, about half a second of work; 64 Ki without it), ``yaml.stringify``
#: a value past ``YAML_MAX_OUT_NODES`` nodes (each about a second at worst).
YAML_MAX_INPUT = 1 << 18
YAML_MAX_INPUT_PURE = 1 << 16
YAML_MAX_OUT_NODES = 50_000


def _yaml_loads(s: str) -> tuple[bool, object]:
    import yaml

    loader = _yaml_loader()
    cap = YAML_MAX_INPUT if getattr(yaml, "__with_libyaml__", False) else YAML_MAX_INPUT_PURE
    if len(s) > cap:
        return False, f"yaml input of {len(s)} chars exceeds the cap of {cap}"

    try:
        docs = list(yaml.load_all(s, Loader=loader))  # noqa: S506 - a safe loader subclass
    except yaml.YAMLError as e:
        return False, _yaml_error(e)
    except RecursionError:
        return False, "recursion limit exceeded"
    if len(docs) > 1:
        return False, "deserializing from YAML containing more than one document is not supported"
    data = docs[0] if docs else None
    try:
        # serde_yaml stops alias replay past 100x the document's events; the
        # text's length bounds the events, so a tree past 100x it is a bomb
        return True, _yaml_value(data, 0, [max(YAML_MAX_NODES, 100 * len(s))])
    except _YamlLimit as e:
        return False, str(e)
    except RecursionError:  # pragma: no cover
        return False, "recursion limit exceeded"


def _yaml_error(e: object) -> str:
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem and mark is not None:
        out = f"{problem} at line {mark.line + 1} column {mark.column + 1}"
        ctx = getattr(e, "context", None)
        cmark = getattr(e, "context_mark", None)
        if ctx and cmark is not None:
            out += f", {ctx} at line {cmark.line + 1} column {cmark.column + 1}"
        return out
    return str(e)


def yaml_parse(args: list) -> object:
    good, v = _yaml_loads(_str_arg(args, 0))
    return ok(v) if good else err(v)


def yaml_parse_strict(args: list) -> object:
    s = _str_arg(args, 0)
    required_field_names(args, 1)
    return strict(_yaml_loads(s), args)


_YAML_DUMPER: type | None = None


def _yaml_dumper() -> type:
    global _YAML_DUMPER
    if _YAML_DUMPER is None:
        import yaml

        class Dumper(yaml.SafeDumper):
            pass

        def float_(dumper: object, f: float) -> object:
            # serde_yaml writes floats as Rust does (``1.0``, ``1e16``)
            return dumper.represent_scalar("tag:yaml.org,2002:float", rust_float(f))  # type: ignore[attr-defined]

        Dumper.add_representer(float, float_)
        # Rust's float text (``1e16``) must read back as a float, not be tagged
        Dumper.add_implicit_resolver(
            "tag:yaml.org,2002:float",
            re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
            list("-+.0123456789"))
        _YAML_DUMPER = Dumper
    return _YAML_DUMPER


def yaml_stringify(args: list) -> object:
    import yaml

    j = to_json(_first(args))
    why = _too_big(j, YAML_MAX_OUT_NODES)
    if why:
        return err(f"yaml.stringify: {why}")
    try:
        out = yaml.dump(j, Dumper=_yaml_dumper(), default_flow_style=False, sort_keys=True,
                        allow_unicode=True, width=2**31 - 1)
    except yaml.YAMLError as e:  # pragma: no cover - JSON data always dumps
        return err(f"yaml.stringify: {e}")
    if out.endswith("\n...\n"):
        out = out[:-4]
    return ok(out)


# ---------------------------------------------------------------------------
# dotenv

# Rust's ``str::trim`` (Unicode White_Space)
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def dotenv_parse(args: list) -> object:
    s = _str_arg(args, 0)
    out: dict = {}
    lines = s.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for idx, raw in enumerate(lines):
        if raw.endswith("\r"):
            raw = raw[:-1]
        line = raw.strip(_WS)
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:]
        k, eq, v = line.partition("=")
        if not eq:
            return err(f"dotenv.parse line {idx + 1}: missing `=`")
        key = k.strip(_WS)
        if not key:
            return err(f"dotenv.parse line {idx + 1}: empty key")
        v = v.strip(_WS)
        if len(v) >= 2 and ((v[0] == '"' and v[-1] == '"') or (v[0] == "'" and v[-1] == "'")):
            v = v[1:-1]
        out[key] = v
    return ok(Map(sorted(out.items())))


# ---------------------------------------------------------------------------
# csv (the csv crate: no headers, flexible rows; "\n" terminator on write)

def csv_parse(args: list) -> object:
    s = _str_arg(args, 0)
    rows: list = []
    n = len(s)
    i = 0
    while i < n and s[i] in "\r\n":  # blank lines are skipped
        i += 1
    while i < n:
        row: list = []
        # one record
        while True:
            if i < n and s[i] == '"':
                i += 1
                buf = []
                while i < n:
                    j = s.find('"', i)
                    if j < 0:
                        buf.append(s[i:])
                        i = n
                        break
                    buf.append(s[i:j])
                    if j + 1 < n and s[j + 1] == '"':
                        buf.append('"')
                        i = j + 2
                        continue
                    i = j + 1
                    break
                # text after the closing quote belongs to the field
                k = i
                while k < n and s[k] not in ",\r\n":
                    k += 1
                buf.append(s[i:k].replace('"', '"'))
                i = k
                row.append("".join(buf))
            else:
                k = i
                while k < n and s[k] not in ",\r\n":
                    k += 1
                row.append(s[i:k])
                i = k
            if i < n and s[i] == ",":
                i += 1
                continue
            break
        # record terminator(s): \r\n, \n or \r
        if i < n and s[i] == "\r":
            i += 1
            if i < n and s[i] == "\n":
                i += 1
        elif i < n and s[i] == "\n":
            i += 1
        rows.append(row)
        # blank lines are skipped
        while i < n and s[i] in "\r\n":
            i += 1
    return ok(rows)


def _csv_field(f: str) -> str:
    if any(c in f for c in ',"\r\n'):
        return '"' + f.replace('"', '""') + '"'
    return f


#: Cap (chars) on ``csv.stringify``'s output: stricter than the reference,
#: so rows aliasing one big Str many times cannot build gigabytes.
CSV_MAX_OUT = 1 << 26


def csv_stringify(args: list) -> object:
    v = _first(args)
    if not isinstance(v, list):
        return err("csv.stringify expects List[List[Str]]")
    out: list = []
    size = 0
    width = None
    for row in v:
        if not isinstance(row, list):
            return err("csv.stringify row must be List[Str]")
        cells = [c if isinstance(c, str) else dumps(c) for c in row]
        if width is not None and len(cells) != width:
            return err(f"csv.stringify: CSV error: found record with {len(cells)} fields, "
                       f"but the previous record has {width} fields")
        width = len(cells)
        if len(cells) == 1 and cells[0] == "":
            out.append('""\n')
        else:
            out.append(",".join(_csv_field(c) for c in cells) + "\n")
        size += len(out[-1])
        if size > CSV_MAX_OUT:
            return err(f"csv.stringify: output exceeds the cap of {CSV_MAX_OUT} chars")
    return ok("".join(out))


def _shallow(kind: str, fn):
    """A value nested too deep for the serializer's recursion (past
    ``to_json``'s own cap, or when the caller's stack is already deep) is a
    clean ``EffectError``, never a ``RecursionError``."""

    def call(args: list) -> object:
        try:
            return fn(args)
        except RecursionError:
            raise EffectError(f"{kind}: value nested too deeply") from None
        except RuntimeError as e:  # a dict emptied by a value's own str() (no Lex value does it)
            if "changed size during iteration" not in str(e):
                raise
            raise EffectError(f"{kind}: value changed while being written") from None
        except ValueError as e:  # an Int far outside i64 (no Lex value is one)
            if "integer string conversion" not in str(e):
                raise
            raise EffectError(f"{kind}: integer too large to render") from None

    call.__name__ = fn.__name__
    return call


BUILTINS = {
    ("json", "stringify"): _shallow("json.stringify", json_stringify),
    ("json", "parse"): json_parse,
    ("json", "parse_strict"): json_parse_strict,
    ("json", "parse_strict_typed"): json_parse_strict,
    ("toml", "parse"): toml_parse,
    ("toml", "parse_strict"): toml_parse_strict,
    ("toml", "parse_strict_typed"): toml_parse_strict,
    ("toml", "stringify"): _shallow("toml.stringify", toml_stringify),
    ("yaml", "parse"): yaml_parse,
    ("yaml", "parse_strict"): yaml_parse_strict,
    ("yaml", "parse_strict_typed"): yaml_parse_strict,
    ("yaml", "stringify"): _shallow("yaml.stringify", yaml_stringify),
    ("dotenv", "parse"): dotenv_parse,
    ("csv", "parse"): csv_parse,
    ("csv", "stringify"): _shallow("csv.stringify", csv_stringify),
}
