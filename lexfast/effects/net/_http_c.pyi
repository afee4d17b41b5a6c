"""Type stubs for the compiled response-header parser of http.*
(``lexfast.effects.net._http_c``); ``lexfast/effects/net/http.py`` defines
the same function in Python (``_parse_headers``)."""

from collections.abc import Callable
from typing import Any

from ...values import Map

def bind(py_parse: Callable[[Any], Map], /) -> None: ...
def parse_headers(lines: Any, /) -> Map: ...
