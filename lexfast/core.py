"""Chooses the core: compiled (``lexfast._core``) unless
``LEXFAST_NO_EXTENSIONS`` is set or it was not built, else the pure-Python twin.

Every other module imports the core's names from here, so one switch decides
for the whole package.
"""

from __future__ import annotations

import os

_NO_EXT = os.environ.get("LEXFAST_NO_EXTENSIONS", "").strip() not in ("", "0")

if _NO_EXT:
    from . import _twin as _impl
else:
    try:
        from . import _core as _impl  # type: ignore[no-redef]
    except ImportError:  # no compiler at install time: the twin serves
        if os.environ.get("LEXFAST_REQUIRE_EXTENSIONS", "").strip() not in ("", "0"):
            raise
        from . import _twin as _impl  # type: ignore[no-redef]

COMPILED: bool = _impl.COMPILED
impl = _impl

Variant = _impl.Variant
NONE = _impl.NONE
ok = _impl.ok
err = _impl.err
some = _impl.some
expect_str = _impl.expect_str
expect_int = _impl.expect_int
expect_bytes = _impl.expect_bytes
expect_record = _impl.expect_record
expect_str_list = _impl.expect_str_list
expect_handle = _impl.expect_handle
next_handle = _impl.next_handle
LRURegistry = _impl.LRURegistry
BudgetPool = _impl.BudgetPool
Row = _impl.Row
Stats = _impl.Stats
HandlerCore = _impl.HandlerCore
openat2 = _impl.openat2
