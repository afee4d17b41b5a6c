"""Effect family `agent` (not yet implemented: its ops report `unsupported`)."""

ROWS: list = []
