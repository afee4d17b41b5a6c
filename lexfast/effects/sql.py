"""Effect family `sql` (not yet implemented: its ops report `unsupported`)."""

ROWS: list = []
