"""Effect family `fs` (not yet implemented: its ops report `unsupported`)."""

ROWS: list = []
