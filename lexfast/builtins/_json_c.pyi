"""Type stubs for the compiled fast path of ``json.parse``
(``lexfast.builtins._json_c``); ``lexfast/builtins/formats.py``'s
``loads_py`` is the Python path it defers to."""

def loads(s: str, /) -> tuple[bool, object] | None: ...
