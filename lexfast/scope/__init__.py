"""The scope boundary (docs/design.md §5), shared by every effect family.

- :mod:`.paths`: resolving a path and deciding whether it is in scope
  (:func:`scoped`, ``PATH_MAX``), and judging what an open landed on
  (:func:`check_opened`: procfs secrets, kernel pseudo-filesystems);
- :mod:`.roots`: the one open beneath a scope root (:func:`open_beneath`,
  with a session's cached root descriptors or one opened for the call), and
  atomic writes and bounded reads built on it;
- :mod:`.binaries`: which command ``--allow-proc`` lets run
  (:func:`resolve_command`), what may go into a granted binary's environment
  (:func:`child_env_refusal`), and the argv caps (``MAX_ARGS``,
  ``MAX_ARG_BYTES``).

The reference compares paths lexically (``Path::starts_with``), so ``..``,
symlinks and sibling prefixes escape its scopes. Here a path is made absolute
and resolved first, compared with the resolved roots by whole components,
and opened through ``openat2(RESOLVE_BENEATH)`` from the scope root, so a
path swapped for a symlink between the check and the open still cannot
leave the scope.
"""

from .binaries import (
    LOCALE_VARS,
    MAX_ARG_BYTES,
    MAX_ARGS,
    SAFE_CHILD_ENV,
    SAFE_CHILD_ENV_TEXT,
    Command,
    child_env_refusal,
    resolve_command,
    which,
)
from .paths import (
    BENEATH,
    PATH_MAX,
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    PathTooLong,
    ScopeEscape,
    check_dir_writable,
    check_opened,
    check_path_arg,
    fs_kind,
    path_too_long,
    pseudo_fs_refusal,
    resolve,
    resolve_root,
    scoped,
    scoped_unchecked,
    utf8_encodable,
    within,
)
from .roots import (
    Denied,
    RootCache,
    open_beneath,
    open_in_scope,
    open_parent_in_scope,
    open_resolved,
    open_scoped,
    read_file_bounded,
    replace_in_dir,
    roots_of,
    write_all,
    write_file_atomic,
)

__all__ = [
    "BENEATH", "Command", "Denied", "LOCALE_VARS", "MAX_ARGS", "MAX_ARG_BYTES", "PATH_MAX",
    "PathTooLong", "RESOLVE_BENEATH", "RESOLVE_NO_MAGICLINKS", "RESOLVE_NO_SYMLINKS",
    "RootCache", "SAFE_CHILD_ENV", "SAFE_CHILD_ENV_TEXT", "ScopeEscape", "check_dir_writable",
    "check_opened", "check_path_arg", "child_env_refusal", "fs_kind", "open_beneath",
    "open_in_scope", "open_parent_in_scope", "open_resolved", "open_scoped", "path_too_long",
    "pseudo_fs_refusal", "read_file_bounded", "replace_in_dir", "resolve", "resolve_command",
    "resolve_root", "roots_of", "scoped", "scoped_unchecked", "utf8_encodable", "which",
    "within", "write_all", "write_file_atomic"
]
