"""The kernel: the compiled core (``lexfast.kernel._c``) unless
``LEXFAST_NO_EXTENSIONS`` is set or it was not built, else its pure-Python
twin (``lexfast.kernel._py``).

Every other module imports the kernel's names from here, so one switch decides
for the whole package and only one ``Variant`` class is ever in use. The
module not selected is imported only by the tests (the ``impl`` fixture).
``LEXFAST_REQUIRE_EXTENSIONS=1`` turns a missing compiled core into an
``ImportError`` instead of a silent fall back to the twin.

The kernel is a leaf: its modules import nothing of the package but
``errors``, ``values`` and ``kinds``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


if TYPE_CHECKING:  # type checkers see the stubbed API of the compiled core
    from . import _c as _impl
    from ._c import (
        COMPILED,
        NONE,
        BudgetPool,
        HandlerCore,
        LRURegistry,
        Row,
        Stats,
        Variant,
        err,
        expect_bytes,
        expect_handle,
        expect_int,
        expect_record,
        expect_str,
        expect_str_list,
        next_handle,
        ok,
        openat2,
        some,
    )
    #: why the pure-Python twin serves (``None`` when the compiled core does);
    #: ``lexfast info`` prints it.
    FALLBACK_REASON: str | None
else:
    FALLBACK_REASON = None
    if _flag("LEXFAST_NO_EXTENSIONS"):
        from . import _py as _impl
        FALLBACK_REASON = "LEXFAST_NO_EXTENSIONS is set"
    else:
        try:
            from . import _c as _impl
        except ImportError as e:  # no compiler at install time: the twin serves
            if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
                raise
            from . import _py as _impl
            FALLBACK_REASON = (f"lexfast.kernel._c did not import ({type(e).__name__}: {e}); "
                               "was it built? (pip install -v shows the compiler's error)")
            # Said once, where a user sees it: pip hides a successful build's
            # output, so a missing compiler is otherwise noticed only as slowness.
            import warnings
            warnings.warn(f"lexfast: the compiled core is missing, the pure-Python twin serves "
                          f"(correct, slower): {FALLBACK_REASON}. Set LEXFAST_NO_EXTENSIONS=1 "
                          "to choose the twin without this warning.", RuntimeWarning, stacklevel=1)

    COMPILED = _impl.COMPILED
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

#: the selected implementation module (``_c`` or ``_py``)
impl = _impl

__all__ = [
    "COMPILED", "NONE", "BudgetPool", "HandlerCore", "LRURegistry", "Row", "Stats", "Variant",
    "err", "expect_bytes", "expect_handle", "expect_int", "expect_record", "expect_str",
    "expect_str_list", "impl", "next_handle", "ok", "openat2", "some",
]
