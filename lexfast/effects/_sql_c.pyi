"""Type stubs for the compiled argument checks and record building of
sql.exec/sql.query (``lexfast.effects._sql_c``); ``lexfast/effects/sql.py``
defines the same functions in Python."""

from collections.abc import Callable
from typing import Any

def bind(py_begin: Callable[[Any, Any, str], Any], /) -> None: ...
def begin(h: Any, args: Any, op: str, /) -> tuple[Any, Any, Any]: ...
def records(cur: Any, names: list[str], rows_cap: int, bytes_cap: int,
            /) -> tuple[list[dict[str, Any]] | None, str | None]: ...
