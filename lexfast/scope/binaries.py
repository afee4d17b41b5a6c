"""Binary scopes: which command a granted ``--allow-proc`` lets run and how
(:func:`resolve_command`), what a program may put in a granted binary's
environment (:func:`child_env_refusal`), and the argv caps every family that
starts a child holds to (``proc.spawn``, ``process.*``, ``agent.call_mcp``).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from typing import NamedTuple

#: argv caps for a child (as the reference's ``proc.spawn``): count and bytes.
MAX_ARGS = 1024
MAX_ARG_BYTES = 65_536


# -- binaries -------------------------------------------------------------

def _safe_path_dirs(path_var: str | None) -> str:
    # Relative PATH entries ("", ".", "bin") resolve against the cwd, where
    # agent code with fs_write could drop a binary named like an allowed one.
    return os.pathsep.join(d for d in (path_var or os.defpath).split(os.pathsep)
                           if d and os.path.isabs(d))


def which(cmd: str) -> str | None:
    found = shutil.which(cmd, path=_safe_path_dirs(os.environ.get("PATH")))
    return os.path.abspath(found) if found else None


class Command(NamedTuple):
    """How to run a command: ``exe`` goes to exec (``None``: a bare name not
    found on PATH, which exec then reports), ``argv0`` is the child's
    ``argv[0]``."""

    exe: str | None
    argv0: str


def _entry_path(entry: str) -> str | None:
    """The file an ``--allow-proc`` entry names, as exec should be given it:
    a bare entry found on PATH's absolute entries; a path entry made absolute
    with its directory resolved but not its final component, so a symlink
    ``xzcat -> xz`` stays ``.../xzcat`` (what a multi-call binary or a script
    sees as its name)."""
    if "/" not in entry:
        return which(entry)
    head, tail = os.path.split(entry)
    if tail in ("", ".", ".."):
        return os.path.realpath(entry)
    return os.path.join(os.path.realpath(head or "."), tail)


def resolve_command(cmd: str, allow: tuple[str, ...]) -> Command:
    """Decide whether ``cmd`` may run under ``--allow-proc`` ``allow`` and
    how: a :class:`Command` ``(exe, argv0)``, or ``PermissionError`` when
    the policy refuses it.

    A bare entry (``git``) allows the bare name, resolved on PATH's absolute
    entries; a path-qualified command is allowed when it resolves to the
    same file as an entry. Either way the child runs *as the entry*: exec
    gets the entry's path (``/usr/bin/xzcat``, not the file it links to)
    and ``argv[0]`` is the entry as a shell would pass it (``xzcat`` for a
    bare entry, that absolute path for a path entry), whatever the caller
    spelled, because multi-call binaries (xz/xzcat, bash/rbash, busybox,
    ``git-*``, pyenv shims) choose what they do from that name, and
    interpreters find their prefix or venv from it. When several entries
    name the file, the one with the caller's final name wins, else the
    first. With an empty ``allow`` (any binary) the caller's spelling is
    kept.
    """
    if "\0" in cmd:
        raise PermissionError("command contains a NUL byte")
    bare = "/" not in cmd
    if not allow:
        return Command(which(cmd) if bare else cmd, cmd)
    if bare:
        if cmd in allow:
            return Command(which(cmd), cmd)
        raise PermissionError(cmd)
    real = os.path.realpath(cmd)
    found = []
    for entry in allow:
        target = _entry_path(entry)
        if target and os.path.realpath(target) == real:
            found.append(Command(target, entry if "/" not in entry else target))
    if not found:
        raise PermissionError(cmd)
    name = os.path.basename(cmd)
    for c in found:
        if os.path.basename(c.argv0) == name:
            return c
    return found[0]


# -- a granted binary's environment -----------------------------------------------

#: glibc's locale categories and gettext's ``LANGUAGE``: they name a locale,
#: which is a file lookup, so their values are checked (``_LOCALE_VALUE``).
LOCALE_VARS = frozenset({
    "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE",
    "LC_MONETARY", "LC_MESSAGES", "LC_PAPER", "LC_NAME", "LC_ADDRESS", "LC_TELEPHONE",
    "LC_MEASUREMENT", "LC_IDENTIFICATION",
})
#: What a program may set in a granted binary's environment (``process.spawn``
#: ``env`` under a non-empty ``--allow-proc``) besides the operator's
#: ``Limits.child_env_allow``: a language, a time zone, a terminal type, no
#: colour. Nothing here names a program, a library, a config file or a
#: directory, and the values are checked so that none can.
SAFE_CHILD_ENV = LOCALE_VARS | {"TZ", "TERM", "NO_COLOR"}
SAFE_CHILD_ENV_TEXT = "LANG, LANGUAGE, LC_*, TZ, TERM, NO_COLOR or Limits.child_env_allow"

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A locale name (`en_US.UTF-8`, `sr_RS@latin`, `C`; LANGUAGE: `de:en`). With
# a `/` glibc reads locale data from that path (as LOCPATH would), gettext
# builds catalog paths from it: no `/`, no `..`.
_LOCALE_VALUE = re.compile(r"[A-Za-z0-9_.@+:-]*\Z")
# A zone name (`Europe/Paris`, `:UTC`) or a POSIX rule (`CET-1CEST,M3.5.0,M10.5.0/3`,
# `<+0330>-3:30`). glibc opens TZDIR/value, or the value itself when it is
# absolute: no leading `/` (after an optional `:`), no `..`.
_TZ_VALUE = re.compile(r":?[A-Za-z0-9_.+,<>-][A-Za-z0-9_.+,:<>/-]*\Z|:?\Z")
# A terminfo name (`xterm-256color`): looked up as a file, so no `/`, no `..`.
_TERM_VALUE = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*\Z|\Z")
_SAFE_VALUE_MAX = 256


def _show(s: str, limit: int = 64) -> str:
    cut = s[:limit]
    if not cut.isprintable():
        cut = cut.encode("unicode_escape").decode("ascii")
    return cut + ("…" if len(s) > limit else "")


@functools.lru_cache(maxsize=32)
def _operator_env_allow(names: tuple) -> tuple[frozenset, tuple[str, ...]]:
    exact, prefixes = set(), []
    for n in names:
        if isinstance(n, str) and _VAR_NAME.match(n):
            exact.add(n)
        elif isinstance(n, str) and n.endswith("*") and _VAR_NAME.match(n[:-1]):
            prefixes.append(n[:-1])
        else:
            raise ValueError(f"Limits.child_env_allow: {n!r} is neither a variable name "
                             "nor a PREFIX* pattern")
    return frozenset(exact), tuple(prefixes)


def child_env_refusal(name: str, value: str, operator_allow=()) -> str | None:
    """Why a program may not set ``name=value`` in a granted binary's
    environment (the rest of ``env may not set ...``), or ``None`` when it
    may. ``operator_allow`` is ``Limits.child_env_allow``: exact names and
    ``PREFIX*`` patterns, whose values are the operator's business; the value
    rules of :data:`SAFE_CHILD_ENV` hold whatever it lists. Raises
    ``ValueError`` for a malformed ``operator_allow``."""
    if isinstance(operator_allow, str):
        raise ValueError("Limits.child_env_allow must be a tuple of names, not a str")
    if not _VAR_NAME.match(name):
        return f"`{_show(name)}` under --allow-proc (not a variable name)"
    if name in SAFE_CHILD_ENV:
        if name == "NO_COLOR":
            return None
        if name in LOCALE_VARS:
            rule, what = _LOCALE_VALUE, "a locale name without `/` or `..`"
        elif name == "TZ":
            rule, what = _TZ_VALUE, "a zone name or POSIX rule, not a path, without `..`"
        else:
            rule, what = _TERM_VALUE, "a terminal name without `/` or `..`"
        if len(value) > _SAFE_VALUE_MAX or ".." in value or not rule.match(value):
            return f"`{name}` to `{_show(value)}` under --allow-proc ({what})"
        return None
    try:
        exact, prefixes = _operator_env_allow(tuple(operator_allow))
    except TypeError:  # not iterable, or unhashable entries
        raise ValueError("Limits.child_env_allow must be a tuple of names") from None
    if name in exact or (prefixes and name.startswith(prefixes)):
        return None
    return f"`{name}` under --allow-proc"
