"""fs.glob: the glob engine (the reference's ``glob`` crate's pattern syntax
and ``**``), held to the read scope like every fs listing.

Results never resolve outside the read scope, ``**`` does not descend
through symlinked directories (no cycles), and a pattern's work is bounded:
at most ``GLOB_SCAN_FACTOR`` directory entries scanned and
``GLOB_STEP_FACTOR`` matching steps per allowed result
(``Limits.walk_entries``).
"""

from __future__ import annotations

import os
import stat as _stat

from ...kernel import err, expect_str, ok
from ...scope import Denied, path_too_long, utf8_encodable, within
from ...scope import roots as scope_roots
from ...values import os_error_text
from .ops import (
    _BENEATH_NOLINKS,
    _LONG,
    _O_DIR,
    GLOB_SCAN_FACTOR,
    _in_scope_real,
    _join,
    _Listing,
    _scan,
    _shown,
    _too_long,
)


class PatternError(ValueError):
    def __init__(self, pos: int, msg: str):
        super().__init__(f"Pattern syntax error near position {pos}: {msg}")


_ERR_WILDCARDS = "wildcards are either regular `*` or recursive `**`"
_ERR_RECURSIVE = "recursive wildcards must form a single path component"
_ERR_RANGE = "invalid range pattern"

# tokens: ("c", ch) | ("?",) | ("*",) | ("**",) | ("[", specs) | ("!", specs)


def _char_specs(chars):
    out = []
    i = 0
    while i < len(chars):
        if i + 3 <= len(chars) and chars[i + 1] == "-":
            out.append((chars[i], chars[i + 2]))
            i += 3
        else:
            out.append((chars[i], chars[i]))
            i += 1
    return out


class Pattern:
    """One compiled glob pattern (``glob::Pattern::new``)."""

    __slots__ = ("original", "tokens", "is_recursive", "has_meta", "steps")

    def __init__(self, pattern: str):
        chars = pattern
        tokens = []
        is_recursive = False
        has_meta = False
        i = 0
        n = len(chars)
        while i < n:
            c = chars[i]
            if c == "?":
                has_meta = True
                tokens.append(("?",))
                i += 1
            elif c == "*":
                has_meta = True
                old = i
                while i < n and chars[i] == "*":
                    i += 1
                count = i - old
                if count > 2:
                    raise PatternError(old + 2, _ERR_WILDCARDS)
                if count == 2:
                    if i == 2 or chars[i - count - 1] == "/":
                        if i < n and chars[i] == "/":
                            i += 1
                        elif i != n:
                            raise PatternError(i, _ERR_RECURSIVE)
                    else:
                        raise PatternError(old - 1, _ERR_RECURSIVE)
                    if not (len(tokens) > 1 and tokens[-1] == ("**",)):
                        is_recursive = True
                        tokens.append(("**",))
                else:
                    tokens.append(("*",))
            elif c == "[":
                has_meta = True
                if i + 4 <= n and chars[i + 1] == "!":
                    j = chars.find("]", i + 3)
                    if j >= 0:
                        tokens.append(("!", _char_specs(chars[i + 2:j])))
                        i = j + 1
                        continue
                elif i + 3 <= n and chars[i + 1] != "!":
                    j = chars.find("]", i + 2)
                    if j >= 0:
                        tokens.append(("[", _char_specs(chars[i + 1:j])))
                        i = j + 1
                        continue
                raise PatternError(i, _ERR_RANGE)
            else:
                tokens.append(("c", c))
                i += 1
        self.original = pattern
        self.tokens = tokens
        self.is_recursive = is_recursive
        self.has_meta = has_meta
        self.steps = 0  # matching work done so far (the globber bounds it)

    def matches(self, name: str) -> bool:
        # Iterative wildcard matching (linear backtracking to the last star):
        # the same answers as the crate's recursion, without its depth.
        toks = self.tokens
        nt, nn = len(toks), len(name)
        ti = ni = 0
        star_t = -1
        star_n = 0
        steps = 0
        while ni < nn:
            steps += 1
            if ti < nt:
                t = toks[ti]
                kind = t[0]
                if kind == "*" or kind == "**":
                    star_t, star_n = ti, ni
                    ti += 1
                    continue
                ch = name[ni]
                if kind == "c":
                    hit = t[1] == ch
                elif kind == "?":
                    hit = True
                elif kind == "[":
                    hit = any(a <= ch <= b for a, b in t[1])
                else:
                    hit = not any(a <= ch <= b for a, b in t[1])
                if hit:
                    ti += 1
                    ni += 1
                    continue
            if star_t < 0:
                self.steps += steps
                return False
            star_n += 1
            ni = star_n
            ti = star_t + 1
        self.steps += steps
        while ti < nt and toks[ti][0] in ("*", "**"):
            ti += 1
        return ti == nt


class _PW:
    """A glob candidate: the path as shown, its resolved path, and whether it
    is a directory (following an in-scope symlink) or a symlink."""

    __slots__ = ("shown", "real", "is_dir", "is_link")

    def __init__(self, shown, real, is_dir, is_link=False):
        self.shown = shown
        self.real = real
        self.is_dir = is_dir
        self.is_link = is_link


class _GlobFailure(Exception):
    pass


#: glob may take this many name-matching steps per allowed scan (a component
#: like ``*a*a*a…b`` costs its length times the name's on each entry).
GLOB_STEP_FACTOR = 32


class _Globber:
    def __init__(self, h, roots, cap):
        self.h = h
        self.roots = roots
        self.eff_roots = roots or ("/",)
        self.cap = cap
        self.scanned = 0
        self.cands = 0
        self.out = _Listing(h, "glob")
        self.patterns: list = []
        self.seen: set = set()
        self.emitted: set = set()

    def work(self) -> None:
        """Count one candidate path; stop a pattern whose work grows past the
        bound (``.*/.*/.*/…`` doubles its candidates at every component
        without scanning anything; ``*a*a*a…`` costs steps on every name)."""
        self.cands += 1
        limit = self.cap * GLOB_SCAN_FACTOR
        if self.cands > limit or (self.cands & 63 == 0 and sum(
                p.steps for p in self.patterns) > limit * GLOB_STEP_FACTOR):
            raise _GlobFailure(f"fs.glob: the pattern needs more than {limit} candidate "
                               f"paths or {limit * GLOB_STEP_FACTOR} matching steps "
                               f"(the walk_entries cap × {GLOB_SCAN_FACTOR})")

    def in_scope(self, real) -> bool:
        return real is not None and _in_scope_real(real, self.roots)

    def toward_root(self, real) -> list:
        """The next component names leading from ``real`` (an ancestor of
        some roots, itself outside the scope) toward those roots."""
        names = []
        for r in self.eff_roots:
            if real == "/":
                rest = r[1:]
            elif r.startswith(real + "/"):
                rest = r[len(real) + 1:]
            else:
                continue
            name = rest.split("/", 1)[0]
            if name and name not in names:
                names.append(name)
        return names

    def relevant(self, real) -> bool:
        return real is not None and (self.in_scope(real) or bool(self.toward_root(real)))

    def resolve_child(self, parent_real, name, listed=False):
        """(real, is_dir, is_link) of ``parent_real/name``, or None if missing.
        A symlink found by listing is a directory only if it resolves inside
        the scope; one named by the pattern may also lead toward a root."""
        if name == ".":
            real = parent_real
        elif name == "..":
            real = os.path.dirname(parent_real) or "/"
        elif name == "":
            real = parent_real
        else:
            real = parent_real + "/" + name if parent_real != "/" else "/" + name
        try:
            st = os.lstat(real)
        except (OSError, ValueError):
            return None
        if _stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(real)
            is_dir = False
            if self.in_scope(target) or (not listed and self.relevant(target)):
                try:
                    is_dir = _stat.S_ISDIR(os.stat(target).st_mode)
                except OSError:
                    pass
            return target, is_dir, True
        return real, _stat.S_ISDIR(st.st_mode), False

    def children(self, pw: _PW):
        """The entries of directory ``pw``: listed when it is inside the
        scope, only the way toward the roots when it is an ancestor of them,
        nothing otherwise."""
        out = []
        if self.in_scope(pw.real):
            root = next((r for r in self.eff_roots if within(pw.real, r)), "/")
            try:
                dfd = scope_roots.open_resolved(self.h.session, pw.real, root, _O_DIR, _BENEATH_NOLINKS)
            except Denied:
                return out
            except OSError as e:
                raise _GlobFailure(f"fs.glob: attempting to read `{_shown(pw.shown)}` "
                                   f"resulted in an error: {os_error_text(e)}") from None
            try:
                for name, is_dir, is_link in _scan(dfd):
                    self.scanned += 1
                    if self.scanned > self.cap * GLOB_SCAN_FACTOR:
                        raise _GlobFailure(f"fs.glob: more than {self.cap * GLOB_SCAN_FACTOR} "
                                           f"entries scanned (the walk_entries cap × "
                                           f"{GLOB_SCAN_FACTOR})")
                    real = pw.real + "/" + name if pw.real != "/" else "/" + name
                    if is_link:
                        got = self.resolve_child(pw.real, name, listed=True)
                        if got is None:
                            continue
                        out.append((name, got[0], got[1], True))
                    else:
                        out.append((name, real, is_dir, False))
            finally:
                os.close(dfd)
        else:
            for name in self.toward_root(pw.real):
                got = self.resolve_child(pw.real, name)
                if got is not None:
                    out.append((name, got[0], got[1], got[2]))
        return out

    @staticmethod
    def child_shown(pw: _PW, name: str) -> str:
        return name if pw.shown == "." else _join(pw.shown, name)

    def _step(self, pw: _PW, s: str, got) -> _PW:
        """The candidate ``pw/s`` for a literal or a special ``s``: ``..``
        shows the directory it resolved to and ``.`` adds nothing, so
        ``L/../L/../…`` or ``.*/.*/…`` are never repeated into the results."""
        shown = got[0] if s == ".." else pw.shown if s == "." else self.child_shown(pw, s)
        return _PW(shown, got[0], got[1], got[2])

    def fill_todo(self, todo, patterns, idx, pw: _PW):
        last = len(patterns) - 1
        stack = [(idx, pw)]  # a loop, not recursion: any number of components
        while stack:
            idx, pw = stack.pop()
            key = (idx, pw.shown, pw.real)
            if key in self.seen:
                continue  # the same candidate reached another way (`.`, `..`)
            self.seen.add(key)
            self.work()
            pat = patterns[idx]
            nxts = []
            if not pat.has_meta:
                s = pat.original
                special = s in (".", "..")
                if (special and not pw.is_dir) or (not s and pw.shown == "."):
                    continue  # the empty path never exists
                got = self.resolve_child(pw.real, s) if pw.real is not None else None
                if got is None or not self.relevant(got[0]):
                    continue
                nxts.append(self._step(pw, s, got))
            elif pw.is_dir:
                kids = self.children(pw)
                kids = [k for k in kids if utf8_encodable(k[0])]
                kids.sort(key=lambda k: k[0], reverse=True)
                for name, real, is_dir, is_link in kids:
                    todo.append((_PW(self.child_shown(pw, name), real, is_dir, is_link), idx))
                if pat.tokens and pat.tokens[0] == ("c", "."):
                    for special in (".", ".."):
                        if pat.matches(special):
                            got = self.resolve_child(pw.real, special)
                            if got is not None and self.relevant(got[0]):
                                nxts.append(self._step(pw, special, got))
            for nxt in reversed(nxts):  # the first is handled first, as the recursion did
                if idx == last:
                    todo.append((nxt, -1))
                else:
                    stack.append((idx + 1, nxt))

    def run(self, pattern: str) -> list:
        Pattern(pattern)  # the whole pattern first, as the crate does
        if pattern.startswith("/"):
            root_len = 1
            scope = _PW("/", "/", True)
        else:
            root_len = 0
            cwd = os.path.realpath(os.getcwd())
            scope = _PW(".", cwd, os.path.isdir(cwd))
        comps = pattern[root_len:].split("/")
        if comps and comps[-1] == "":
            comps.pop()  # split_terminator
        patterns = [Pattern(c) for c in comps]
        if root_len == len(pattern):
            patterns.append(Pattern(""))
        self.patterns = patterns
        require_dir = pattern.endswith("/")
        todo: list = []
        results: list = []
        if not patterns:
            return results
        self.fill_todo(todo, patterns, 0, scope)
        last = len(patterns) - 1
        while todo:
            pw, idx = todo.pop()
            self.work()
            if idx == -1:
                if not (require_dir and not pw.is_dir):
                    self.emit(results, pw)
                continue
            if patterns[idx].is_recursive:
                nxt = idx
                while nxt + 1 < len(patterns) and patterns[nxt + 1].is_recursive:
                    nxt += 1
                # ``**`` never descends through a symlink (no cycles).
                if pw.is_dir:
                    if not pw.is_link:
                        self.fill_todo(todo, patterns, nxt, pw)
                    if nxt == last:
                        self.emit(results, pw)
                        continue
                    idx = nxt + 1
                elif nxt == last:
                    continue
                else:
                    idx = nxt + 1
            name = pw.shown.rsplit("/", 1)[-1]
            if not utf8_encodable(name):
                continue
            if patterns[idx].matches(name):
                if idx == last:
                    if not require_dir or pw.is_dir:
                        self.emit(results, pw)
                else:
                    self.fill_todo(todo, patterns, idx + 1, pw)
        return self.out.items

    def emit(self, results, pw: _PW):
        if not self.in_scope(pw.real):
            return  # silently dropped, as the reference filters results
        if pw.shown in self.emitted:
            return  # reached twice (`D/*/..` from every subdirectory)
        self.emitted.add(pw.shown)
        failed = self.out.add(pw.shown)
        if failed is not None:
            raise _GlobFailure(failed.args[0])


def fs_glob(h, args):
    pattern = expect_str(args, 0)
    if len(pattern) > _LONG and path_too_long(pattern):
        return _too_long("glob", pattern)
    if "\0" in pattern:
        return ok([])
    g = _Globber(h, h.policy.read_roots, h.session.limits.walk_entries)
    try:
        return ok(g.run(pattern))
    except PatternError as e:
        return err(f"fs.glob: {e}")
    except _GlobFailure as e:
        return err(str(e))
    except RecursionError:
        return err("fs.glob: pattern has too many components")


# -- fs_write ops --------------------------------------------------------------
