"""Pure builtins of the reference's ``regex`` module (``builtins.rs``).

A compiled regex is its pattern Str (the reference keeps the pattern and
caches the compiled form). Matching is RE2 (``google-re2``): linear time,
no backreferences or look-around, leftmost-first like Rust's ``regex``
crate, so no pattern can hang the process. Rust's Unicode-aware ``\\d``,
``\\w`` and ``\\s`` are translated to RE2's Unicode classes. A backreference
or a look-around is refused with the Rust crate's error text; other
invalid patterns carry RE2's description in the same frame.

Match records are ``{text, start, end, groups}`` with byte offsets (UTF-8)
as in Rust; a group that did not take part is ``""``. Replacement strings
use Rust's syntax: ``$1``, ``$name``, ``${name}``, ``$$``.
"""

from __future__ import annotations

import re

from ..errors import EffectError
from ..kernel import NONE, err, ok, some
from ..values import debug_repr

_CACHE: dict = {}
_CACHE_MAX = 512
#: Cap (code points) on ``regex.replace``/``replace_all``'s result: stricter
#: than the reference, so a replacement on every empty match of a long text
#: cannot build gigabytes (the same cap as ``str.replace``).
REPLACE_MAX_LEN = 1 << 26

_W = r"\p{L}\p{M}\p{Nd}\p{Pc}"
_S = r"\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"
_OUT = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": f"[{_W}]", "W": f"[^{_W}]", "s": f"[{_S}]", "S": f"[^{_S}]"}
_IN = {"d": r"\p{Nd}", "D": r"\P{Nd}", "w": _W, "s": _S}


class _Refused(Exception):
    def __init__(self, start: int, end: int, msg: str):
        super().__init__(msg)
        self.start, self.end, self.msg = start, end, msg


def _translate(p: str) -> str:
    out: list = []
    i, n = 0, len(p)
    depth = 0  # inside a character class
    while i < n:
        c = p[i]
        if c == "\\" and i + 1 < n:
            d = p[i + 1]
            if d.isdigit() and depth == 0:
                j = i + 1
                while j < n and p[j].isdigit():
                    j += 1
                raise _Refused(i, j, "backreferences are not supported")
            if d in "kg" and depth == 0 and i + 2 < n and p[i + 2] in "<{'":
                raise _Refused(i, i + 2, "backreferences are not supported")
            table = _IN if depth else _OUT
            if d in table:
                out.append(table[d])
            else:
                out.append(p[i:i + 2])
            i += 2
            continue
        if depth == 0 and c == "(" and p.startswith("(?", i):
            for look in ("(?=", "(?!", "(?<=", "(?<!"):
                if p.startswith(look, i):
                    raise _Refused(i, i + len(look),
                                   "look-around, including look-ahead and look-behind, is not supported")
        if c == "[":
            if depth == 0 or p.startswith("[:", i):
                if depth and p.startswith("[:", i):
                    j = p.find(":]", i + 2)
                    if j >= 0:
                        out.append(p[i:j + 2])
                        i = j + 2
                        continue
                depth += 1
                out.append(c)
                i += 1
                # a leading ``^`` and ``]`` are literal members
                if i < n and p[i] == "^":
                    out.append("^")
                    i += 1
                if i < n and p[i] == "]":
                    out.append("\\]")
                    i += 1
                continue
            depth += 1  # Rust nests classes: ``[a[bc]]``
        elif c == "]" and depth:
            depth -= 1
        out.append(c)
        i += 1
    return "".join(out)


# RE2's descriptions as the Rust crate words them
_RE2_TO_RUST = {
    "missing )": "unclosed group",
    "unexpected )": "unopened group",
    "missing ]": "unclosed character class",
    "missing argument to repetition operator": "repetition operator missing expression",
    "bad repetition operator": "repetition operator missing expression",
    "invalid repetition size": "invalid repetition count range, the start must be <= the end",
    "invalid character class range": "invalid character class range, the start must be <= the end",
    "trailing \\": "incomplete escape sequence, reached end of pattern prematurely",
    "invalid escape sequence": "unrecognized escape sequence",
    "invalid named capture group": "invalid capture group character",
    "duplicate capture group name": "duplicate capture group name",
}


def _rust_error(pattern: str, start: int, end: int, msg: str) -> str:
    lines = pattern.split("\n")
    if len(lines) == 1:
        caret = " " * start + "^" * max(1, end - start)
        return f"regex parse error:\n    {pattern}\n    {caret}\nerror: {msg}"
    return f"regex parse error:\n    {pattern}\nerror: {msg}"


def _compile(pattern: str) -> object:
    """The compiled regex, or raise ``ValueError("invalid regex: ...")``."""
    r = _CACHE.get(pattern)
    if r is not None:
        return r
    import re2

    try:
        translated = _translate(pattern)
    except _Refused as e:
        raise ValueError("invalid regex: " + _rust_error(pattern, e.start, e.end, e.msg)) from None
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = 64 << 20
    try:
        r = re2.compile(translated, opts)
    except re2.error as e:
        detail = e.args[0] if e.args else str(e)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        head = detail.split(":", 1)[0]
        detail = _RE2_TO_RUST.get(head, detail)
        raise ValueError(f"invalid regex: regex parse error:\n    {pattern}\nerror: {detail}") from None
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[pattern] = r
    return r


def _str(args: list, i: int) -> str:
    if i >= len(args):
        raise EffectError("missing argument")
    v = args[i]
    if isinstance(v, str):
        return str(v)
    raise EffectError(f"expected Str, got {debug_repr(v)}")


def _re_or_fail(args: list, op: str) -> object:
    pattern = _str(args, 0)
    _str(args, 1)
    try:
        return _compile(pattern)
    except ValueError as e:
        raise EffectError(f"regex.{op}: {e}") from None


def _iter(r: object, s: str):
    """Rust's ``find_iter``: an empty match right after the previous
    match is skipped. One pass of RE2's own ``finditer`` (which encodes the
    text once; a ``search(s, pos)`` per match re-encoded it each time, so
    10^5 matches took minutes); its repeat of an empty match at the spot
    it resumes from is the same empty match Rust skips."""
    last_end = -1
    for m in r.finditer(s):  # type: ignore[attr-defined]
        st, en = m.span()
        if st == en and st == last_end:
            continue
        yield m
        last_end = en


class _Bytes:
    """Char offsets to UTF-8 byte offsets, for increasing offsets: linear
    over all the matches of a text (not a re-encode of the prefix each)."""

    __slots__ = ("s", "c", "b")

    def __init__(self, s: str):
        self.s, self.c, self.b = s, 0, 0

    def __call__(self, i: int) -> int:
        if i < self.c:
            return len(self.s[:i].encode("utf-8", "surrogatepass"))
        self.b += len(self.s[self.c:i].encode("utf-8", "surrogatepass"))
        self.c = i
        return self.b


def _match_value(m: object, s: str, ascii_: bool, conv: _Bytes | None = None) -> dict:
    st, en = m.span()  # type: ignore[attr-defined]
    groups = [g if g is not None else "" for g in m.groups()]  # type: ignore[attr-defined]
    if ascii_:
        return {"text": s[st:en], "start": st, "end": en, "groups": groups}
    if conv is None:
        conv = _Bytes(s)
    return {"text": s[st:en], "start": conv(st), "end": conv(en), "groups": groups}


def compile_(args: list) -> object:
    pattern = _str(args, 0)
    try:
        _compile(pattern)
    except ValueError as e:
        return err(str(e))
    return ok(pattern)


def is_match(args: list) -> bool:
    r = _re_or_fail(args, "is_match")
    return r.search(args[1]) is not None  # type: ignore[attr-defined]


def is_match_str(args: list) -> bool:
    pattern = _str(args, 0)
    s = _str(args, 1)
    try:
        r = _compile(pattern)
    except ValueError:
        return False
    return r.search(s) is not None  # type: ignore[attr-defined]


def find(args: list) -> object:
    r = _re_or_fail(args, "find")
    s = _str(args, 1)
    m = r.search(s)  # type: ignore[attr-defined]
    if m is None:
        return NONE
    return some(_match_value(m, s, s.isascii()))


def find_all(args: list) -> list:
    r = _re_or_fail(args, "find_all")
    s = _str(args, 1)
    a = s.isascii()
    conv = None if a else _Bytes(s)
    return [_match_value(m, s, a, conv) for m in _iter(r, s)]


_REP_CACHE: dict = {}
_NAME = re.compile(r"[_0-9A-Za-z]+")


def _parse_replacement(rep: str) -> list:
    """Rust's ``Captures::expand`` syntax as parts: str literals and
    ``(ref,)`` tuples (an int group index or a group name)."""
    parts = _REP_CACHE.get(rep)
    if parts is not None:
        return parts
    parts = []
    lit: list = []
    i, n = 0, len(rep)
    while i < n:
        j = rep.find("$", i)
        if j < 0:
            lit.append(rep[i:])
            break
        lit.append(rep[i:j])
        if j + 1 < n and rep[j + 1] == "$":
            lit.append("$")
            i = j + 2
            continue
        ref = None
        end = j + 1
        if j + 1 < n and rep[j + 1] == "{":
            k = rep.find("}", j + 2)
            if k > j + 2:
                ref = rep[j + 2:k]
                end = k + 1
        else:
            m = _NAME.match(rep, j + 1)
            if m:
                ref = m.group()
                end = m.end()
        if ref is None:
            lit.append("$")
            i = j + 1
            continue
        if lit:
            parts.append("".join(lit))
            lit = []
        # Rust: `name.parse::<usize>()`, else a group name (ASCII digits only;
        # one past usize, or a Unicode digit, is a name that matches nothing)
        parts.append((int(ref) if ref.isascii() and ref.isdigit() and len(ref) <= 20
                      and int(ref) < 1 << 64 else ref,))
        i = end
    if lit:
        parts.append("".join(lit))
    if len(_REP_CACHE) > 256:
        _REP_CACHE.clear()
    _REP_CACHE[rep] = parts
    return parts


def _expand(m: object, parts: list, r: object) -> str:
    out = []
    ngroups = r.groups  # type: ignore[attr-defined]
    names = r.groupindex  # type: ignore[attr-defined]
    for p in parts:
        if type(p) is str:
            out.append(p)
            continue
        ref = p[0]
        if type(ref) is int:
            if ref > ngroups:
                continue
            g = m.group(ref)  # type: ignore[attr-defined]
        else:
            if ref not in names:
                continue
            g = m.group(names[ref])  # type: ignore[attr-defined]
        if g is not None:
            out.append(g)
    return "".join(out)


def _replace(args: list, op: str, limit: int) -> str:
    s = _str(args, 1)
    rep = _str(args, 2)  # the reference reads all three before compiling
    r = _re_or_fail(args, op)
    parts = _parse_replacement(rep)
    out = []
    last = 0
    count = 0
    size = len(s)
    for m in _iter(r, s):
        st, en = m.span()
        out.append(s[last:st])
        piece = _expand(m, parts, r)
        out.append(piece)
        size += len(piece) - (en - st)
        if size > REPLACE_MAX_LEN:
            raise EffectError(f"regex.{op}: result exceeds the cap of {REPLACE_MAX_LEN} chars")
        last = en
        count += 1
        if count == limit:
            break
    if not count:
        return s
    out.append(s[last:])
    return "".join(out)


def replace(args: list) -> str:
    return _replace(args, "replace", 1)


def replace_all(args: list) -> str:
    return _replace(args, "replace_all", 0)


def split(args: list) -> list:
    r = _re_or_fail(args, "split")
    s = _str(args, 1)
    out = []
    last = 0
    for m in _iter(r, s):
        st, en = m.span()
        out.append(s[last:st])
        last = en
    out.append(s[last:])
    return out


def _no_surrogates(op: str, fn):
    """A Str holding a lone surrogate has no UTF-8 form for RE2: a clean
    error instead of the codec's exception (the reference's Str is always
    UTF-8, so it never meets one)."""

    def call(args: list) -> object:
        try:
            return fn(args)
        except UnicodeEncodeError:
            raise EffectError(f"regex.{op}: the pattern or text holds a lone surrogate (not UTF-8)") from None

    call.__name__ = fn.__name__
    return call


BUILTINS = {
    ("regex", op): _no_surrogates(op, fn) for op, fn in (
        ("compile", compile_),
        ("is_match", is_match),
        ("is_match_str", is_match_str),
        ("find", find),
        ("find_all", find_all),
        ("replace", replace),
        ("replace_all", replace_all),
        ("split", split),
    )
}
