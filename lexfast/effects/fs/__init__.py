"""std.fs: ``fs.*`` (:mod:`.ops`), with the glob engine in :mod:`.glob`.
Every open beneath a scope root goes through ``lexfast.scope.roots``."""

from .glob import fs_glob
from .ops import (
    fs_copy,
    fs_exists,
    fs_is_dir,
    fs_is_file,
    fs_list_dir,
    fs_mkdir_p,
    fs_remove,
    fs_stat,
    fs_walk,
)

ROWS = [
    ("fs", "exists", "fs_walk", fs_exists),
    ("fs", "is_file", "fs_walk", fs_is_file),
    ("fs", "is_dir", "fs_walk", fs_is_dir),
    ("fs", "stat", "fs_walk", fs_stat),
    ("fs", "list_dir", "fs_walk", fs_list_dir),
    ("fs", "walk", "fs_walk", fs_walk),
    ("fs", "glob", "fs_walk", fs_glob),
    ("fs", "mkdir_p", "fs_write", fs_mkdir_p),
    ("fs", "remove", "fs_write", fs_remove),
    ("fs", "copy", ("fs_walk", "fs_write"), fs_copy),
]

__all__ = ["ROWS"]
