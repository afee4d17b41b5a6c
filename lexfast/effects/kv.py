"""Effect family `kv` (not yet implemented: its ops report `unsupported`)."""

ROWS: list = []
