"""Pure builtins ``datetime.*`` and ``duration.*`` (the reference's
``builtins.rs`` over chrono 0.4 / chrono-tz).

An Instant is an Int: nanoseconds since the UTC Unix epoch (i64); a Duration
is an Int of nanoseconds. ``parse_iso`` is chrono's ``parse_from_rfc3339``
ported byte for byte (its acceptance rules and its ``ParseError`` texts, which
differ from Python's ``fromisoformat``); ``format_iso`` is chrono's
``to_rfc3339`` (``+00:00``, fractional seconds in 3/6/9 digits as needed).
Dates use proleptic-Gregorian day arithmetic, so chrono's year range
(beyond Python's ``datetime``) is kept. ``Iana`` zones are read through
``zoneinfo`` (the host's tz database, chrono-tz ships its own copy of the
same data); ``Local`` is the host's zone, as chrono's ``Local`` is.

``datetime.format`` is chrono's strftime dialect over a ``DateTime<Utc>``
(its specifier set, padding modifiers and composites, ``%Z`` = ``UTC``). A
format string chrono rejects makes the reference panic (``to_string`` of a
failing ``Display``); here it is an ``EffectError``.

``datetime.now`` is an effect and is not here; ``datetime.parse`` (chrono's
``NaiveDateTime::parse_from_str``) is not ported yet.
"""

from __future__ import annotations

from ..errors import EffectError
from ..kernel import Variant, err, ok
from ..values import Map, debug_repr
from ._args import expect_float, expect_int, expect_str

_NS = 1_000_000_000
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1
_MAX_YEAR = ((1 << 31) - 1 >> 13) - 1  # chrono's NaiveDate range
_MIN_YEAR = (-(1 << 31) >> 13) + 1

# chrono's ParseError texts
_OUT_OF_RANGE = "input is out of range"
_INVALID = "input contains invalid characters"
_TOO_SHORT = "premature end of input"
_TOO_LONG = "trailing input"


class _ParseError(Exception):
    pass


def _i32(n: int) -> int:
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n >> 31 else n


def _u32(n: int) -> int:
    return n & 0xFFFFFFFF


def _tdiv(a: int, b: int) -> int:
    """Rust's truncating integer division."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


# -- proleptic Gregorian day arithmetic (days since 1970-01-01) -----------

def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _valid_date(y: int, m: int, d: int) -> bool:
    return (_MIN_YEAR <= y <= _MAX_YEAR and 1 <= m <= 12
            and 1 <= d <= _days_in_month(y, m))


def _instant(secs: int, nanos: int) -> int:
    """``timestamp_nanos_opt().unwrap_or(i64::MAX)``."""
    n = secs * _NS + nanos
    return n if _I64_MIN <= n <= _I64_MAX else _I64_MAX


def _fields(secs: int, nanos: int) -> tuple:
    """``(y, m, d, hh, mm, ss, nanos)`` of a count of seconds since the epoch."""
    days, sod = divmod(secs, 86400)
    y, m, d = _civil_from_days(days)
    return y, m, d, sod // 3600, sod // 60 % 60, sod % 60, nanos


# -- parse_iso: chrono's parse_rfc3339 --------------------------------------

def _digit(b: bytes, i: int) -> int:
    c = b[i]
    if 48 <= c <= 57:
        return c - 48
    raise _ParseError(_INVALID)


def _is_digit(c: int) -> bool:
    return 48 <= c <= 57


def _nanosecond(s: bytes) -> tuple:
    """``scan::nanosecond``: 1..9 digits scaled to nanoseconds, more skipped."""
    if len(s) < 1:
        raise _ParseError(_TOO_SHORT)
    n = 0
    i = 0
    while i < 9 and i < len(s) and _is_digit(s[i]):
        n = n * 10 + s[i] - 48
        i += 1
    if i < 1:
        raise _ParseError(_INVALID)
    n *= 10 ** (9 - i)
    while i < len(s) and _is_digit(s[i]):
        i += 1
    return s[i:], n


def _tz_offset(s: bytes) -> tuple:
    """``scan::timezone_offset(s, colon, allow_zulu, !missing_minutes, minus_sign)``."""
    if s[:1] in (b"Z", b"z"):
        return s[1:], 0
    if not s:
        raise _ParseError(_TOO_SHORT)
    if s[:1] == b"+":
        neg, s = False, s[1:]
    elif s[:1] == b"-":
        neg, s = True, s[1:]
    elif s[:3] == "\u2212".encode():
        neg, s = True, s[3:]
    else:
        raise _ParseError(_INVALID)
    if len(s) < 2:
        raise _ParseError(_TOO_SHORT)
    if not (_is_digit(s[0]) and _is_digit(s[1])):
        raise _ParseError(_INVALID)
    hours = (s[0] - 48) * 10 + s[1] - 48
    s = s[2:]
    if not s:
        raise _ParseError(_TOO_SHORT)
    if s[0] != 58:  # ':'
        raise _ParseError(_INVALID)
    s = s[1:]
    if len(s) < 2:
        raise _ParseError(_TOO_SHORT)
    m1, m2 = s[0], s[1]
    if 48 <= m1 <= 53 and _is_digit(m2):
        minutes = (m1 - 48) * 10 + m2 - 48
    elif 54 <= m1 <= 57 and _is_digit(m2):
        raise _ParseError(_OUT_OF_RANGE)
    else:
        raise _ParseError(_INVALID)
    secs = hours * 3600 + minutes * 60
    return s[2:], -secs if neg else secs


def parse_rfc3339(text: str) -> int:
    """An RFC 3339 timestamp as an Instant, by chrono's rules; raises
    ``_ParseError`` with chrono's message."""
    b = text.encode("utf-8", "surrogatepass")
    if len(b) < 19:
        raise _ParseError(_TOO_SHORT)
    year = _digit(b, 0) * 1000 + _digit(b, 1) * 100 + _digit(b, 2) * 10 + _digit(b, 3)
    if b[4] != 45:
        raise _ParseError(_INVALID)
    month = _digit(b, 5) * 10 + _digit(b, 6)
    if b[7] != 45:
        raise _ParseError(_INVALID)
    day = _digit(b, 8) * 10 + _digit(b, 9)
    if not _valid_date(year, month, day):
        raise _ParseError(_OUT_OF_RANGE)
    if b[10] not in (116, 84, 32):  # t T space
        raise _ParseError(_INVALID)
    hour = _digit(b, 11) * 10 + _digit(b, 12)
    if b[13] != 58:
        raise _ParseError(_INVALID)
    minute = _digit(b, 14) * 10 + _digit(b, 15)
    if b[16] != 58:
        raise _ParseError(_INVALID)
    sec = _digit(b, 17) * 10 + _digit(b, 18)
    extra = 0
    if sec == 60:  # a leap second
        sec, extra = 59, _NS
    if len(b) > 19 and b[19] == 46:  # '.'
        rest, nano = _nanosecond(b[20:])
        nano += extra
    else:
        rest, nano = b[19:], extra
    if hour >= 24 or minute >= 60 or sec >= 60 or (nano >= _NS and sec != 59):
        raise _ParseError(_OUT_OF_RANGE)
    rest, offset = _tz_offset(rest)
    if rest:
        raise _ParseError(_TOO_LONG)
    if not -86400 < offset < 86400:
        raise _ParseError(_OUT_OF_RANGE)
    secs = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + sec - offset
    return _instant(secs, nano)


def format_rfc3339(n: int) -> str:
    """chrono's ``DateTime<Utc>::to_rfc3339`` of an Instant."""
    y, m, d, hh, mm, ss, nano = _fields(*divmod(n, _NS))
    if 0 <= y <= 9999:
        out = f"{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}"
    else:
        out = f"{y:+05}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}"
    if nano:
        if nano % 1_000_000 == 0:
            out += f".{nano // 1_000_000:03}"
        elif nano % 1000 == 0:
            out += f".{nano // 1000:06}"
        else:
            out += f".{nano:09}"
    return out + "+00:00"


# -- ops --------------------------------------------------------------------

def _parse_iso(args: list) -> object:
    s = expect_str(args, 0)
    try:
        return ok(parse_rfc3339(s))
    except _ParseError as e:
        return err(f"parse_iso: {e}")


def _format_iso(args: list) -> str:
    return format_rfc3339(expect_int(args, 0))


_TZ_HELP = "expected Tz variant (Utc | Local | Offset(Int) | Iana(Str))"


def _parse_tz(args: list) -> tuple:
    if len(args) < 2:
        raise _ParseError("missing Tz argument")
    v = args[1]
    if not isinstance(v, Variant):
        raise _ParseError(f"expected Tz variant, got {debug_repr(v)}")
    name = str(v.name)
    vargs = tuple(v.args)
    if name in ("Utc", "Local") and not vargs:
        return name, None
    if name == "Offset" and len(vargs) == 1 and type(vargs[0]) is int:
        m = vargs[0]
        if not _I32_MIN <= m <= _I32_MAX:
            raise _ParseError(f"Tz::Offset: minutes out of range: {m}")
        return name, m
    if name == "Iana" and len(vargs) == 1 and isinstance(vargs[0], str):
        return name, str(vargs[0])
    raise _ParseError(f"{_TZ_HELP}, got `{name}` with {len(vargs)} arg(s)")


_ZONES: set | None = None


def _iana_offset(name: str, secs: int) -> int:
    """The zone's UTC offset in seconds at ``secs`` since the epoch."""
    global _ZONES
    import datetime as _dt
    import zoneinfo

    if _ZONES is None:
        _ZONES = set(zoneinfo.available_timezones())
    if name not in _ZONES:
        raise _ParseError(f"to_components: unknown timezone `{name}`: failed to parse timezone")
    tz = zoneinfo.ZoneInfo(name)
    utc = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(seconds=secs)
    off = utc.astimezone(tz).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def _local_offset(secs: int) -> int:
    import time

    try:
        return int(time.localtime(secs).tm_gmtoff)
    except (OverflowError, OSError, ValueError):  # outside the C library's range
        return 0


def _to_components(args: list) -> object:
    n = expect_int(args, 0)
    try:
        kind, val = _parse_tz(args)
        secs, nanos = divmod(n, _NS)
        if kind == "Utc":
            off_secs, off_min = 0, 0
        elif kind == "Offset":
            off_secs = max(_I32_MIN, min(_I32_MAX, val * 60))  # i32 saturating_mul
            if not -86400 < off_secs < 86400:
                raise _ParseError("to_components: offset out of range")
            off_min = val
        else:
            off_secs = _local_offset(secs) if kind == "Local" else _iana_offset(val, secs)
            off_min = _tdiv(off_secs, 60)
    except _ParseError as e:
        return err(str(e))
    y, m, d, hh, mm, ss, ns = _fields(secs + off_secs, nanos)
    return ok({"year": y, "month": m, "day": d, "hour": hh, "minute": mm, "second": ss,
               "nano": ns, "tz_offset_minutes": off_min})


_COMPONENTS = ("year", "month", "day", "hour", "minute", "second", "nano", "tz_offset_minutes")


def _from_components(args: list) -> object:
    rec = args[0] if args else None
    if not isinstance(rec, dict) or isinstance(rec, Map):
        raise EffectError("from_components: expected DateTime record")
    vals = []
    for k in _COMPONENTS:
        v = rec.get(k)
        if type(v) is not int or not _I64_MIN <= v <= _I64_MAX:
            got = "None" if k not in rec else f"Some({debug_repr(v)})"
            return err(f"from_components: missing or non-int field `{k}`: {got}")
        vals.append(v)
    y, m, d, hh, mm, ss, ns, off_min = vals
    y, m, d, hh, mm, ss, ns = _i32(y), _u32(m), _u32(d), _u32(hh), _u32(mm), _u32(ss), _u32(ns)
    off = _i32(_i32(off_min) * 60)  # i32 multiplication, wrapping
    if not -86400 < off < 86400:
        return err("from_components: offset out of range")
    if not _valid_date(y, m, d) or hh >= 24 or mm >= 60 or ss >= 60:
        return err("from_components: invalid or ambiguous date/time")
    secs = _days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss - off
    lo = _days_from_civil(_MIN_YEAR, 1, 1) * 86400
    hi = _days_from_civil(_MAX_YEAR, 12, 31) * 86400 + 86399
    if not lo <= secs <= hi:  # the UTC datetime leaves chrono's range
        return err("from_components: invalid or ambiguous date/time")
    return ok(_instant(secs, ns))


# -- format: chrono's StrftimeItems + DelayedFormat for DateTime<Utc> --------------

_SHORT_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                 "Dec")
_LONG_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")
_SHORT_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")  # from Sunday
_LONG_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

# items: ("lit", text) | ("num", name, pad) | ("fix", name); pad is "0", " " or ""
_Z, _S, _N = "0", " ", ""
_COMPOSITE = {
    "D": (("num", "month", _Z), ("lit", "/"), ("num", "day", _Z), ("lit", "/"),
          ("num", "yearmod100", _Z)),
    "x": (("num", "month", _Z), ("lit", "/"), ("num", "day", _Z), ("lit", "/"),
          ("num", "yearmod100", _Z)),
    "F": (("num", "year", _Z), ("lit", "-"), ("num", "month", _Z), ("lit", "-"),
          ("num", "day", _Z)),
    "R": (("num", "hour", _Z), ("lit", ":"), ("num", "minute", _Z)),
    "T": (("num", "hour", _Z), ("lit", ":"), ("num", "minute", _Z), ("lit", ":"),
          ("num", "second", _Z)),
    "X": (("num", "hour", _Z), ("lit", ":"), ("num", "minute", _Z), ("lit", ":"),
          ("num", "second", _Z)),
    "r": (("num", "hour12", _Z), ("lit", ":"), ("num", "minute", _Z), ("lit", ":"),
          ("num", "second", _Z), ("lit", " "), ("fix", "AMPM")),
    "c": (("fix", "a"), ("lit", " "), ("fix", "b"), ("lit", " "), ("num", "day", _S),
          ("lit", " "), ("num", "hour", _Z), ("lit", ":"), ("num", "minute", _Z), ("lit", ":"),
          ("num", "second", _Z), ("lit", " "), ("num", "year", _Z)),
    "v": (("num", "day", _S), ("lit", "-"), ("fix", "b"), ("lit", "-"), ("num", "year", _Z)),
}
_SIMPLE = {
    "A": ("fix", "A"), "B": ("fix", "B"), "C": ("num", "yeardiv100", _Z),
    "G": ("num", "isoyear", _Z), "H": ("num", "hour", _Z), "I": ("num", "hour12", _Z),
    "M": ("num", "minute", _Z), "P": ("fix", "ampm"), "S": ("num", "second", _Z),
    "U": ("num", "weekfromsun", _Z), "V": ("num", "isoweek", _Z),
    "W": ("num", "weekfrommon", _Z), "Y": ("num", "year", _Z), "Z": ("fix", "Z"),
    "a": ("fix", "a"), "b": ("fix", "b"), "h": ("fix", "b"), "d": ("num", "day", _Z),
    "e": ("num", "day", _S), "f": ("num", "nanosecond", _Z),
    "g": ("num", "isoyearmod100", _Z), "j": ("num", "ordinal", _Z), "k": ("num", "hour", _S),
    "l": ("num", "hour12", _S), "m": ("num", "month", _Z), "n": ("lit", "\n"),
    "p": ("fix", "AMPM"), "q": ("num", "quarter", _N), "s": ("num", "timestamp", _N),
    "t": ("lit", "\t"), "u": ("num", "weekdayfrommon", _N), "w": ("num", "daysfromsun", _N),
    "y": ("num", "yearmod100", _Z), "z": ("fix", "z"), "+": ("fix", "+"), "%": ("lit", "%"),
}


class _BadFormat(Exception):
    pass


def _strftime_items(fmt: str) -> list:
    """chrono's ``StrftimeItems`` (not lenient): the item list, or ``_BadFormat``."""
    items: list = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            j = i + 1
            if c.isspace():
                while j < n and fmt[j].isspace():
                    j += 1
            else:
                while j < n and not fmt[j].isspace() and fmt[j] != "%":
                    j += 1
            items.append(("lit", fmt[i:j]))
            i = j
            continue
        i += 1
        if i >= n:
            raise _BadFormat
        spec = fmt[i]
        i += 1
        pad = {"-": _N, "0": _Z, "_": _S}.get(spec)
        alternate = spec == "#"
        if pad is not None or alternate:
            if i >= n:
                raise _BadFormat
            spec = fmt[i]
            i += 1
        if alternate and spec != "z":
            raise _BadFormat
        if alternate:
            item = ("fix", "#z")
        elif spec in _SIMPLE:
            item = _SIMPLE[spec]
        elif spec in _COMPOSITE:
            if pad is not None:  # a pad modifier on a composite is an error
                raise _BadFormat
            items.extend(_COMPOSITE[spec])
            continue
        elif spec == ":":
            if fmt.startswith("::z", i):
                item, i = ("fix", ":::z"), i + 3
            elif fmt.startswith(":z", i):
                item, i = ("fix", "::z"), i + 2
            elif fmt.startswith("z", i):
                item, i = ("fix", ":z"), i + 1
            else:
                raise _BadFormat
        elif spec == ".":
            if i >= n:
                raise _BadFormat
            d = fmt[i]
            i += 1
            if d == "f":
                item = ("fix", ".f")
            elif d in "369":
                if i >= n:
                    raise _BadFormat
                if fmt[i] != "f":
                    raise _BadFormat
                i += 1
                item = ("fix", "." + d + "f")
            else:
                raise _BadFormat
        elif spec in "369":
            if i >= n:
                raise _BadFormat
            if fmt[i] != "f":
                raise _BadFormat
            i += 1
            item = ("fix", spec + "f")
        else:
            raise _BadFormat
        if pad is not None:
            if item[0] != "num":
                raise _BadFormat
            item = ("num", item[1], pad)
        items.append(item)
    return items


def _two(v: int, pad: str) -> str:
    if v < 10:
        return pad + str(v)
    return str(v)


def _padded(v: int, width: int, pad: str) -> str:
    if pad == _Z:
        return format(v, f"0{width}d")
    if pad == _S:
        return format(v, f"{width}d")
    return str(v)


def _strftime(n: int, items: list) -> str:
    import datetime as _dt

    secs, nano = divmod(n, _NS)
    y, mo, d, hh, mi, ss, _ = _fields(secs, nano)
    date = _dt.date(y, mo, d)  # i64 nanoseconds stay within 1677..2262
    wd_mon = date.weekday()  # Monday = 0
    wd_sun = (wd_mon + 1) % 7
    ordinal = date.timetuple().tm_yday
    iso_year, iso_week, _ = date.isocalendar()
    h12 = hh % 12 or 12
    out = []
    for it in items:
        kind = it[0]
        if kind == "lit":
            out.append(it[1])
        elif kind == "num":
            name, pad = it[1], it[2]
            if name == "year":
                out.append(f"{y:04}")
            elif name == "yeardiv100":
                out.append(_two(y // 100, pad))
            elif name == "yearmod100":
                out.append(_two(y % 100, pad))
            elif name == "isoyear":
                out.append(f"{iso_year:04}")
            elif name == "isoyearmod100":
                out.append(_two(iso_year % 100, pad))
            elif name == "quarter":
                out.append(str((mo - 1) // 3 + 1))
            elif name == "month":
                out.append(_two(mo, pad))
            elif name == "day":
                out.append(_two(d, pad))
            elif name == "weekfromsun":
                out.append(_two((ordinal - wd_sun + 6) // 7, pad))
            elif name == "weekfrommon":
                out.append(_two((ordinal - wd_mon + 6) // 7, pad))
            elif name == "isoweek":
                out.append(_two(iso_week, pad))
            elif name == "daysfromsun":
                out.append(str(wd_sun))
            elif name == "weekdayfrommon":
                out.append(str(wd_mon + 1))
            elif name == "ordinal":
                out.append(_padded(ordinal, 3, pad))
            elif name == "hour":
                out.append(_two(hh, pad))
            elif name == "hour12":
                out.append(_two(h12, pad))
            elif name == "minute":
                out.append(_two(mi, pad))
            elif name == "second":
                out.append(_two(ss, pad))
            elif name == "nanosecond":
                out.append(_padded(nano, 9, pad))
            else:  # timestamp
                out.append(_padded(secs, 9, pad))
        else:
            name = it[1]
            if name == "a":
                out.append(_SHORT_DAYS[wd_sun])
            elif name == "A":
                out.append(_LONG_DAYS[wd_sun])
            elif name == "b":
                out.append(_SHORT_MONTHS[mo - 1])
            elif name == "B":
                out.append(_LONG_MONTHS[mo - 1])
            elif name == "ampm":
                out.append("pm" if hh >= 12 else "am")
            elif name == "AMPM":
                out.append("PM" if hh >= 12 else "AM")
            elif name == "Z":
                out.append("UTC")
            elif name == "z":
                out.append("+0000")
            elif name == ":z":
                out.append("+00:00")
            elif name == "::z":
                out.append("+00:00:00")
            elif name == ":::z":
                out.append("+00")
            elif name == "+":
                out.append(format_rfc3339(n))
            elif name == ".f":
                if nano:
                    if nano % 1_000_000 == 0:
                        out.append(f".{nano // 1_000_000:03}")
                    elif nano % 1000 == 0:
                        out.append(f".{nano // 1000:06}")
                    else:
                        out.append(f".{nano:09}")
            elif name in (".3f", "3f"):
                out.append(f"{'.' if name[0] == '.' else ''}{nano // 1_000_000:03}")
            elif name in (".6f", "6f"):
                out.append(f"{'.' if name[0] == '.' else ''}{nano // 1000:06}")
            elif name in (".9f", "9f"):
                out.append(f"{'.' if name[0] == '.' else ''}{nano:09}")
            else:  # %#z is parse-only: formatting it fails
                raise _BadFormat
    return "".join(out)


def _format(args: list) -> str:
    n = expect_int(args, 0)
    fmt = expect_str(args, 1)
    try:
        return _strftime(n, _strftime_items(fmt))
    except _BadFormat:
        raise EffectError(
            f"datetime.format: bad or unsupported format string {debug_repr(fmt)[4:-1]}"
        ) from None


def _sat(n: int) -> int:
    return _I64_MIN if n < _I64_MIN else _I64_MAX if n > _I64_MAX else n


def _add(args: list) -> int:
    return _sat(expect_int(args, 0) + expect_int(args, 1))


def _diff(args: list) -> int:
    return _sat(expect_int(args, 0) - expect_int(args, 1))


def _duration_seconds(args: list) -> int:
    x = expect_float(args, 0) * 1e9
    if x != x:
        return 0  # Rust's `as i64` of NaN
    if x >= 9.223372036854775808e18:
        return _I64_MAX
    if x <= -9.223372036854775808e18:
        return _I64_MIN
    return int(x)


def _duration_minutes(args: list) -> int:
    return _sat(expect_int(args, 0) * 60_000_000_000)


def _duration_days(args: list) -> int:
    return _sat(expect_int(args, 0) * 86_400_000_000_000)


def _before(args: list) -> bool:
    return expect_int(args, 0) < expect_int(args, 1)


def _after(args: list) -> bool:
    return expect_int(args, 0) > expect_int(args, 1)


def _compare(args: list) -> int:
    a = expect_int(args, 0)
    b = expect_int(args, 1)
    return -1 if a < b else 1 if a > b else 0


def _unit(div: int):
    def op(args: list) -> int:
        return _tdiv(expect_int(args, 0), div)

    return op


BUILTINS = {
    ("datetime", "parse_iso"): _parse_iso,
    ("datetime", "format_iso"): _format_iso,
    ("datetime", "format"): _format,
    ("datetime", "to_components"): _to_components,
    ("datetime", "from_components"): _from_components,
    ("datetime", "add"): _add,
    ("datetime", "diff"): _diff,
    ("datetime", "duration_seconds"): _duration_seconds,
    ("datetime", "duration_minutes"): _duration_minutes,
    ("datetime", "duration_days"): _duration_days,
    ("datetime", "before"): _before,
    ("datetime", "after"): _after,
    ("datetime", "compare"): _compare,
    ("duration", "millis"): _unit(1_000_000),
    ("duration", "seconds"): _unit(1_000_000_000),
    ("duration", "minutes"): _unit(60_000_000_000),
    ("duration", "hours"): _unit(3_600_000_000_000),
    ("duration", "days"): _unit(86_400_000_000_000),
}
