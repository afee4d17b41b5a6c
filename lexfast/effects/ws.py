"""Effect family `ws` (not yet implemented: its ops report `unsupported`)."""

ROWS: list = []
