"""Effect family `serve` (not yet implemented: its ops report `unsupported`)."""

ROWS: list = []
