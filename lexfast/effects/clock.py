"""time.* and datetime.now (gated ``time``).

``LEX_TEST_NOW`` (Unix seconds, read at each call as the reference does) pins
the wall clock of ``time.now``, ``time.now_ms``, ``time.now_str`` and
``datetime.now`` for deterministic tests; ``time.mono_ns`` is never pinned
(a pinned monotonic clock defeats its purpose). A value that is not a whole
signed 64-bit number of seconds is ignored, as in the reference.
"""

from __future__ import annotations

import os
import re
import time

from ..kernel import expect_int
from ..values import INT_MAX, INT_MIN

#: The reference's cap: an agent-emitted loop must not wedge the host.
SLEEP_CAP_MS = 60_000
SLEEP_CAP_NS = SLEEP_CAP_MS * 1_000_000

_PIN = re.compile(r"[+-]?[0-9]+\Z")  # what Rust's i64::from_str takes
_MONO_START = time.monotonic_ns()  # the reference's anchor: mono_ns counts from here


def _saturate(n: int) -> int:
    return INT_MAX if n > INT_MAX else INT_MIN if n < INT_MIN else n


def pinned_now() -> int | None:
    """``LEX_TEST_NOW`` in seconds, or None when unset or not an i64."""
    s = os.environ.get("LEX_TEST_NOW")
    if s is None:
        return None
    s = s.strip()
    if not _PIN.match(s):
        return None
    n = int(s)
    return n if INT_MIN <= n <= INT_MAX else None


def time_now(h, args):
    pin = pinned_now()
    return pin if pin is not None else int(time.time())


def time_now_ms(h, args):
    pin = pinned_now()
    return _saturate(pin * 1000) if pin is not None else time.time_ns() // 1_000_000


def time_now_str(h, args):
    pin = pinned_now()
    if pin is not None and _CHRONO_MIN_S <= pin <= _CHRONO_MAX_S:
        return rfc3339(pin, 0)
    # out of chrono's range the reference falls back to the real clock
    secs, nanos = divmod(time.time_ns(), 1_000_000_000)
    return rfc3339(secs, nanos)


def time_mono_ns(h, args):
    return time.monotonic_ns() - _MONO_START


def time_sleep_ms(h, args):
    n = expect_int(args, 0)
    if n > 0:
        time.sleep(min(n, SLEEP_CAP_MS) / 1000.0)  # releases the GIL
    return None


def time_sleep(h, args):
    """``time.sleep(Duration)``: a Duration is Int nanoseconds; the same
    60 s cap as ``sleep_ms``; zero or negative is a no-op."""
    n = expect_int(args, 0)
    if n > 0:
        time.sleep(min(n, SLEEP_CAP_NS) / 1e9)
    return None


def datetime_now(h, args):
    pin = pinned_now()
    if pin is not None:
        return _saturate(pin * 1_000_000_000)
    return min(time.time_ns(), INT_MAX)


# -- RFC 3339 as chrono's ``DateTime<Utc>::to_rfc3339`` writes it -------------

#: chrono's NaiveDate range (years -262144 ..= 262143), in Unix seconds
_CHRONO_MIN_S = -8_334_632_851_200
_CHRONO_MAX_S = 8_210_298_412_799


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count from 1970-01-01, proleptic Gregorian
    over any range (H. Hinnant's ``civil_from_days``)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def rfc3339(secs: int, nanos: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]+00:00``: chrono's
    AutoSi fraction (none, 3, 6 or 9 digits) and its ``+05`` years outside
    0..=9999."""
    days, rem = divmod(secs, 86_400)
    y, mo, d = _civil(days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    year = f"{y:04d}" if 0 <= y <= 9999 else f"{y:+05d}"
    if nanos == 0:
        frac = ""
    elif nanos % 1_000_000 == 0:
        frac = f".{nanos // 1_000_000:03d}"
    elif nanos % 1000 == 0:
        frac = f".{nanos // 1000:06d}"
    else:
        frac = f".{nanos:09d}"
    return f"{year}-{mo:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}{frac}+00:00"


ROWS = [
    ("time", "now", "time", time_now),
    ("time", "now_ms", "time", time_now_ms),
    ("time", "now_str", "time", time_now_str),
    ("time", "mono_ns", "time", time_mono_ns),
    ("time", "sleep_ms", "time", time_sleep_ms),
    ("time", "sleep", "time", time_sleep),
    ("datetime", "now", "time", datetime_now),
]
