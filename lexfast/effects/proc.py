"""Effect family `proc` (not yet implemented: its ops report `unsupported`)."""

ROWS: list = []
