"""Effect family `http` (not yet implemented: its ops report `unsupported`)."""

ROWS: list = []
