"""Type stubs for the compiled front of kv.get/contains/put
(``lexfast.effects._kv_c``); ``lexfast/effects/kv.py`` defines the same ops
in Python."""

from collections.abc import Callable
from typing import Any

class StoreCore:
    env: Any
    blocked: bool
    closed: bool
    max_key: int
    nactive: int
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...

def bind(py_get: Callable[[Any, Any], Any], py_contains: Callable[[Any, Any], Any],
         py_put: Callable[[Any, Any], Any], write: Callable[..., Any],
         release: Callable[[Any, Any], Any], /) -> None: ...
def kv_get(h: Any, args: Any, /) -> Any: ...
def kv_contains(h: Any, args: Any, /) -> Any: ...
def kv_put(h: Any, args: Any, /) -> Any: ...
