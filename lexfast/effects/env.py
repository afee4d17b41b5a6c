"""env.get (gated ``env``): ``Some(value)`` or ``None``."""

from __future__ import annotations

import os

from ..kernel import NONE, expect_str, some


def env_get(h, args):
    name = expect_str(args, 0)
    if not name or "=" in name or "\0" in name:
        return NONE
    value = os.environ.get(name)
    if value is None:
        return NONE
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # not UTF-8 in the environment: as unset, like Rust's env::var
        return NONE
    return some(value)


ROWS = [
    ("env", "get", "env", env_get),
]
