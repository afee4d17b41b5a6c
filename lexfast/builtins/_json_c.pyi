"""Type stubs for the compiled fast paths of ``json.parse`` and
``json.stringify`` (``lexfast.builtins._json_c``); ``lexfast/builtins/formats.py``'s
``loads_py``/``dumps_py`` are the Python paths."""

from collections.abc import Callable

def loads(s: str, /) -> tuple[bool, object] | None: ...
def to_json(v: object, fallback: Callable[[object, int], object], /) -> tuple[object, int, bool]: ...
