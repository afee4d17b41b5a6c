"""Pure builtins: see lexfast/builtins/__init__.py (not yet ported)."""

BUILTINS: dict = {}
