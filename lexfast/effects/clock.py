"""time.now, time.sleep_ms, datetime.now (gated ``time``)."""

from __future__ import annotations

import time

from ..kernel import expect_int
from ..values import INT_MAX

#: The reference's cap: an agent-emitted loop must not wedge the host.
SLEEP_CAP_MS = 60_000


def time_now(h, args):
    return int(time.time())


def time_sleep_ms(h, args):
    n = expect_int(args, 0)
    if n > 0:
        time.sleep(min(n, SLEEP_CAP_MS) / 1000.0)  # releases the GIL
    return None


def datetime_now(h, args):
    return min(time.time_ns(), INT_MAX)


ROWS = [
    ("time", "now", "time", time_now),
    ("time", "sleep_ms", "time", time_sleep_ms),
    ("datetime", "now", "time", datetime_now),
]
