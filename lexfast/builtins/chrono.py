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

``datetime.parse`` is chrono's ``NaiveDateTime::parse_from_str`` (its strict
``StrftimeItems``, ``format::parse`` and ``Parsed`` resolution, ported) read
as UTC; a parsed offset (``%z``) is checked but not applied, as chrono's
naive parse ignores it. ``datetime.now`` is an effect and is not here.
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


# -- parse: chrono's NaiveDateTime::parse_from_str ---------------------------------
#
# A port of chrono 0.4's ``format::parse::parse`` over ``StrftimeItems`` (items
# produced lazily, so a bad specifier only fails once the parser reaches it),
# the ``scan`` helpers, ``Parsed``'s setters and ``to_naive_datetime_with_offset(0)``.
# Lengths that chrono compares in bytes are compared in UTF-8 bytes here.

_IMPOSSIBLE = "no possible date and time matching input"
_NOT_ENOUGH = "input is not enough for unique date and time"
_BAD_FORMAT = "bad or unsupported format string"

# Rust's char::is_whitespace (Unicode White_Space)
_WS = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def _blen(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def _trim(s: str) -> str:
    i = 0
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return s[i:] if i else s


# Item kinds: ("lit", text) ("sp",) ("num", field) ("fix", name) ("err",)
_P_NUM = {
    "C": "YearDiv100", "G": "IsoYear", "H": "Hour", "I": "Hour12", "M": "Minute",
    "S": "Second", "U": "WeekFromSun", "V": "IsoWeek", "W": "WeekFromMon", "Y": "Year",
    "d": "Day", "e": "Day", "f": "Nanosecond", "g": "IsoYearMod100", "j": "Ordinal",
    "k": "Hour", "l": "Hour12", "m": "Month", "q": "Quarter", "s": "Timestamp",
    "u": "WeekdayFromMon", "w": "NumDaysFromSun", "y": "YearMod100",
}
_P_FIX = {"A": "LongWeekday", "B": "LongMonth", "P": "AmPm", "Z": "TzName",
          "a": "ShortWeekday", "b": "ShortMonth", "h": "ShortMonth", "p": "AmPm",
          "z": "Offset", "+": "RFC3339"}
_P_SPACE = {"n": ("sp",), "t": ("sp",)}
_P_COMPOSITE = {
    "D": (("num", "Month"), ("lit", "/"), ("num", "Day"), ("lit", "/"), ("num", "YearMod100")),
    "x": (("num", "Month"), ("lit", "/"), ("num", "Day"), ("lit", "/"), ("num", "YearMod100")),
    "F": (("num", "Year"), ("lit", "-"), ("num", "Month"), ("lit", "-"), ("num", "Day")),
    "R": (("num", "Hour"), ("lit", ":"), ("num", "Minute")),
    "T": (("num", "Hour"), ("lit", ":"), ("num", "Minute"), ("lit", ":"), ("num", "Second")),
    "X": (("num", "Hour"), ("lit", ":"), ("num", "Minute"), ("lit", ":"), ("num", "Second")),
    "r": (("num", "Hour12"), ("lit", ":"), ("num", "Minute"), ("lit", ":"), ("num", "Second"),
          ("sp",), ("fix", "AmPm")),
    "c": (("fix", "ShortWeekday"), ("sp",), ("fix", "ShortMonth"), ("sp",), ("num", "Day"),
          ("sp",), ("num", "Hour"), ("lit", ":"), ("num", "Minute"), ("lit", ":"),
          ("num", "Second"), ("sp",), ("num", "Year")),
    "v": (("num", "Day"), ("lit", "-"), ("fix", "ShortMonth"), ("lit", "-"), ("num", "Year")),
}
_ERR = ("err",)


def _parse_items(fmt: str):
    """chrono's ``StrftimeItems::new(fmt)`` as a lazy item stream (strict: a bad
    specifier yields an error item where it stands)."""
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            j = i + 1
            if c in _WS:
                while j < n and fmt[j] in _WS:
                    j += 1
                yield ("sp",)
            else:
                while j < n and fmt[j] not in _WS and fmt[j] != "%":
                    j += 1
                yield ("lit", fmt[i:j])
            i = j
            continue
        i += 1
        if i >= n:
            yield _ERR
            return
        spec = fmt[i]
        i += 1
        pad = spec in "-0_"
        alternate = spec == "#"
        if pad or alternate:
            if i >= n:
                yield _ERR
                return
            spec = fmt[i]
            i += 1
        if alternate and spec != "z":
            yield _ERR
            return
        if alternate:
            item = ("fix", "OffsetPermissive")
        elif spec in _P_NUM:
            item = ("num", _P_NUM[spec])
        elif spec in _P_FIX:
            item = ("fix", _P_FIX[spec])
        elif spec in _P_SPACE:
            item = _P_SPACE[spec]
        elif spec == "%":
            item = ("lit", "%")
        elif spec in _P_COMPOSITE:
            if pad:
                yield _ERR
                return
            yield from _P_COMPOSITE[spec]
            continue
        elif spec == ":":
            if fmt.startswith("::z", i):
                item, i = ("fix", "Offset"), i + 3
            elif fmt.startswith(":z", i):
                item, i = ("fix", "Offset"), i + 2
            elif fmt.startswith("z", i):
                item, i = ("fix", "Offset"), i + 1
            else:
                item = _ERR
        elif spec == "." or spec in "369":
            if spec == ".":
                if i >= n:
                    yield _ERR
                    return
                d = fmt[i]
                i += 1
            else:
                d = spec
            if d == "f" and spec == ".":
                item = ("fix", ".f")
            elif d in "369":
                if i >= n:
                    yield _ERR
                    return
                f = fmt[i]
                i += 1
                item = ("fix", (".f" if spec == "." else "f") + d) if f == "f" else _ERR
            else:
                item = _ERR
        else:
            item = _ERR
        if pad and item[0] != "num":
            item = _ERR
        yield item
        if item is _ERR:
            return


def _number(s: str, lo: int, hi: int) -> tuple:
    """``scan::number``: ``lo..=hi`` ASCII digits (``hi`` None = unbounded)."""
    if _blen(s) < lo:
        raise _ParseError(_TOO_SHORT)
    n = 0
    i = 0
    ln = len(s)
    while (hi is None or i < hi) and i < ln:
        c = s[i]
        if not "0" <= c <= "9":
            if i < lo:
                raise _ParseError(_INVALID)
            return s[i:], n
        n = n * 10 + ord(c) - 48
        if n > _I64_MAX:
            raise _ParseError(_OUT_OF_RANGE)
        i += 1
    return s[i:], n


def _nanosecond_var(s: str) -> tuple:
    """``scan::nanosecond``: 1..9 digits scaled, further digits skipped."""
    rest, v = _number(s, 1, 9)
    v *= 10 ** (9 - (len(s) - len(rest)))
    i = 0
    while i < len(rest) and "0" <= rest[i] <= "9":
        i += 1
    return rest[i:], v


def _nanosecond_fixed(s: str, digits: int) -> tuple:
    rest, v = _number(s, digits, digits)
    return rest, v * 10 ** (9 - digits)


_MONTHS0 = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_SUFFIX = ("uary", "ruary", "ch", "il", "", "e", "y", "ust", "tember", "ober", "ember",
                 "ember")
_WEEKDAYS0 = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # Monday = 0
_WEEKDAY_SUFFIX = ("day", "sday", "nesday", "rsday", "day", "urday", "day")


def _short_name(s: str, names: tuple) -> tuple:
    if _blen(s) < 3:
        raise _ParseError(_TOO_SHORT)
    head = s[:3]
    if head.isascii():
        try:
            return s[3:], names.index(head.lower())
        except ValueError:
            pass
    raise _ParseError(_INVALID)


def _long_name(s: str, names: tuple, suffixes: tuple) -> tuple:
    s, k = _short_name(s, names)
    suf = suffixes[k]
    head = s[:len(suf)]
    if suf and len(head) == len(suf) and head.isascii() and head.lower() == suf:
        s = s[len(suf):]
    return s, k


def _colon_or_space(s: str) -> str:
    i = 0
    while i < len(s) and (s[i] == ":" or s[i] in _WS):
        i += 1
    return s[i:]


def _offset(s: str, allow_zulu: bool, allow_missing_minutes: bool) -> tuple:
    """``scan::timezone_offset(s, colon_or_space, allow_zulu, allow_missing_minutes, true)``."""
    if allow_zulu and s[:1] in ("Z", "z"):
        return s[1:], 0
    if not s:
        raise _ParseError(_TOO_SHORT)
    c = s[0]
    if c == "+":
        neg = False
    elif c in "-\u2212":
        neg = True
    else:
        raise _ParseError(_INVALID)
    s = s[1:]
    if _blen(s) < 2:
        raise _ParseError(_TOO_SHORT)
    if not ("0" <= s[0] <= "9" and "0" <= s[1] <= "9"):
        raise _ParseError(_INVALID)
    hours = int(s[:2])
    s = _colon_or_space(s[2:])
    if _blen(s) >= 2:
        m1, m2 = s[0], s[1]
        if "0" <= m1 <= "5" and "0" <= m2 <= "9":
            minutes = int(s[:2])
        elif "6" <= m1 <= "9" and "0" <= m2 <= "9":
            raise _ParseError(_OUT_OF_RANGE)
        else:
            raise _ParseError(_INVALID)
        s = s[2:]
    elif allow_missing_minutes:
        minutes = 0
        if s:
            raise _ParseError(_TOO_SHORT)
    else:
        raise _ParseError(_TOO_SHORT)
    secs = hours * 3600 + minutes * 60
    return s, -secs if neg else secs


class _Parsed:
    __slots__ = ("year", "year_div_100", "year_mod_100", "isoyear", "isoyear_div_100",
                 "isoyear_mod_100", "quarter", "month", "week_from_sun", "week_from_mon",
                 "isoweek", "weekday", "ordinal", "day", "hour_div_12", "hour_mod_12",
                 "minute", "second", "nanosecond", "timestamp", "offset")

    def __init__(self):
        for k in self.__slots__:
            setattr(self, k, None)

    def copy(self) -> _Parsed:
        p = _Parsed()
        for k in self.__slots__:
            setattr(p, k, getattr(self, k))
        return p

    def put(self, field: str, value: int) -> None:
        old = getattr(self, field)
        if old is not None and old != value:
            raise _ParseError(_IMPOSSIBLE)
        setattr(self, field, value)

    def set_range(self, field: str, value: int, lo: int, hi: int) -> None:
        if not lo <= value <= hi:
            raise _ParseError(_OUT_OF_RANGE)
        self.put(field, value)

    def set_hour(self, v: int) -> None:
        if not 0 <= v <= 23:
            raise _ParseError(_OUT_OF_RANGE)
        self.put("hour_div_12", v // 12)
        self.put("hour_mod_12", v % 12)

    def set_num(self, name: str, v: int) -> None:
        if name == "Year" or name == "IsoYear":
            if not _I32_MIN <= v <= _I32_MAX:
                raise _ParseError(_OUT_OF_RANGE)
            self.put("year" if name == "Year" else "isoyear", v)
        elif name == "YearDiv100":
            self.set_range("year_div_100", v, 0, _I32_MAX)
        elif name == "YearMod100":
            self.set_range("year_mod_100", v, 0, 99)
        elif name == "IsoYearMod100":
            self.set_range("isoyear_mod_100", v, 0, 99)
        elif name == "Quarter":
            self.set_range("quarter", v, 1, 4)
        elif name == "Month":
            self.set_range("month", v, 1, 12)
        elif name == "Day":
            self.set_range("day", v, 1, 31)
        elif name == "WeekFromSun":
            self.set_range("week_from_sun", v, 0, 53)
        elif name == "WeekFromMon":
            self.set_range("week_from_mon", v, 0, 53)
        elif name == "IsoWeek":
            self.set_range("isoweek", v, 1, 53)
        elif name == "NumDaysFromSun":
            if not 0 <= v <= 6:
                raise _ParseError(_OUT_OF_RANGE)
            self.put("weekday", (v + 6) % 7)
        elif name == "WeekdayFromMon":
            if not 1 <= v <= 7:
                raise _ParseError(_OUT_OF_RANGE)
            self.put("weekday", v - 1)
        elif name == "Ordinal":
            self.set_range("ordinal", v, 1, 366)
        elif name == "Hour":
            self.set_hour(v)
        elif name == "Hour12":
            if not 1 <= v <= 12:
                raise _ParseError(_OUT_OF_RANGE)
            self.put("hour_mod_12", 0 if v == 12 else v)
        elif name == "Minute":
            self.set_range("minute", v, 0, 59)
        elif name == "Second":
            self.set_range("second", v, 0, 60)
        elif name == "Nanosecond":
            self.set_range("nanosecond", v, 0, 999_999_999)
        else:  # Timestamp
            self.put("timestamp", v)


_SIGNED = ("Year", "IsoYear")
_WIDTH = {"Year": 4, "IsoYear": 4, "Quarter": 1, "NumDaysFromSun": 1, "WeekdayFromMon": 1,
          "Ordinal": 3, "Nanosecond": 9, "Timestamp": None}


def _parse_internal(p: _Parsed, s: str, items) -> str:
    for it in items:
        kind = it[0]
        if kind == "lit":
            prefix = it[1]
            if _blen(s) < _blen(prefix):
                raise _ParseError(_TOO_SHORT)
            if not s.startswith(prefix):
                raise _ParseError(_INVALID)
            s = s[len(prefix):]
        elif kind == "sp":
            s = _trim(s)
        elif kind == "num":
            name = it[1]
            width = _WIDTH.get(name, 2)
            s = _trim(s)
            if name in _SIGNED and s[:1] == "-":
                s, v = _number(s[1:], 1, None)
                v = -v
            elif name in _SIGNED and s[:1] == "+":
                s, v = _number(s[1:], 1, None)
            else:
                s, v = _number(s, 1, width)
            p.set_num(name, v)
        elif kind == "fix":
            name = it[1]
            if name == "ShortMonth":
                s, m0 = _short_name(s, _MONTHS0)
                p.set_num("Month", m0 + 1)
            elif name == "LongMonth":
                s, m0 = _long_name(s, _MONTHS0, _MONTH_SUFFIX)
                p.set_num("Month", m0 + 1)
            elif name == "ShortWeekday":
                s, wd = _short_name(s, _WEEKDAYS0)
                p.put("weekday", wd)
            elif name == "LongWeekday":
                s, wd = _long_name(s, _WEEKDAYS0, _WEEKDAY_SUFFIX)
                p.put("weekday", wd)
            elif name == "AmPm":
                if _blen(s) < 2:
                    raise _ParseError(_TOO_SHORT)
                head = s[:2].lower() if s[:2].isascii() else ""
                if head == "am":
                    p.put("hour_div_12", 0)
                elif head == "pm":
                    p.put("hour_div_12", 1)
                else:
                    raise _ParseError(_INVALID)
                s = s[2:]
            elif name == ".f":
                if s[:1] == ".":
                    s, v = _nanosecond_var(s[1:])
                    p.set_num("Nanosecond", v)
            elif name[:2] == ".f":
                if s[:1] == ".":
                    s, v = _nanosecond_fixed(s[1:], int(name[2]))
                    p.set_num("Nanosecond", v)
            elif name[:1] == "f":
                digits = int(name[1])
                if _blen(s) < digits:
                    raise _ParseError(_TOO_SHORT)
                s, v = _nanosecond_fixed(s, digits)
                p.set_num("Nanosecond", v)
            elif name == "TzName":
                i = 0
                while i < len(s) and s[i] not in _WS:
                    i += 1
                s = s[i:]
            elif name == "Offset":
                s, off = _offset(_trim(s), False, False)
                p.put("offset", off)
            elif name == "OffsetPermissive":
                s, off = _offset(_trim(s), True, True)
                p.put("offset", off)
            else:  # RFC3339, the relaxed form behind %+
                s = _parse_internal(p, s, _RFC3339_DATE)
                if not s:
                    raise _ParseError(_TOO_SHORT)
                if s[0] not in "tT ":
                    raise _ParseError(_INVALID)
                s = _trim(_parse_internal(p, s[1:], _RFC3339_TIME))
                if _blen(s) >= 3 and s[:3].isascii() and s[:3].upper() == "UTC":
                    s, off = s[3:], 0
                else:
                    s, off = _offset(s, True, False)
                p.put("offset", off)
        else:
            raise _ParseError(_BAD_FORMAT)
    return s


_RFC3339_DATE = (("num", "Year"), ("sp",), ("lit", "-"), ("num", "Month"), ("sp",),
                 ("lit", "-"), ("num", "Day"))
_RFC3339_TIME = (("num", "Hour"), ("sp",), ("lit", ":"), ("num", "Minute"), ("sp",),
                 ("lit", ":"), ("num", "Second"), ("fix", ".f"), ("sp",))


# -- Parsed::to_naive_date / to_naive_time / to_naive_datetime_with_offset ----------
# A date is a count of days since 1970-01-01; weekdays are Monday = 0.

def _ymd_opt(y: int, m: int, d: int):
    return _days_from_civil(y, m, d) if _valid_date(y, m, d) else None


def _is_leap(y: int) -> bool:
    return (y % 4 == 0 and y % 100 != 0) or y % 400 == 0


def _yo_opt(y: int, o: int):
    if _MIN_YEAR <= y <= _MAX_YEAR and 1 <= o <= 365 + _is_leap(y):
        return _days_from_civil(y, 1, 1) + o - 1
    return None


def _weekday(days: int) -> int:
    return (days + 3) % 7  # 1970-01-01 was a Thursday


def _ordinal(days: int, y: int) -> int:
    return days - _days_from_civil(y, 1, 1) + 1


def _iso_week1_monday(y: int) -> int:
    jan4 = _days_from_civil(y, 1, 4)
    return jan4 - _weekday(jan4)


def _iso_week(days: int) -> tuple:
    y = _civil_from_days(days)[0]
    for iy in (y + 1, y, y - 1):
        start = _iso_week1_monday(iy)
        if days >= start:
            return iy, (days - start) // 7 + 1
    raise AssertionError


def _nisoweeks(y: int) -> int:
    jan1 = _weekday(_days_from_civil(y, 1, 1))
    return 53 if jan1 == 3 or (jan1 == 2 and _is_leap(y)) else 52


def _isoywd_opt(y: int, week: int, wd: int):
    if week == 0 or week > _nisoweeks(y):
        return None
    days = _iso_week1_monday(y) + (week - 1) * 7 + wd
    ry = _civil_from_days(days)[0]
    return days if _MIN_YEAR <= ry <= _MAX_YEAR else None


def _resolve_week_date(year: int, week: int, wd: int, start: int) -> int:
    if week > 53:
        raise _ParseError(_OUT_OF_RANGE)
    jan1 = _yo_opt(year, 1)
    if jan1 is None:
        raise _ParseError(_OUT_OF_RANGE)
    first_week_start = 1 + (start - _weekday(jan1)) % 7
    ordinal = first_week_start + (week - 1) * 7 + (wd - start) % 7
    if ordinal <= 0 or ordinal > 365 + _is_leap(year):
        raise _ParseError(_IMPOSSIBLE)
    return jan1 + ordinal - 1


def _resolve_year(y, q, r):
    if q is None and r is None:
        return y
    if y is not None:
        if y < 0:
            raise _ParseError(_IMPOSSIBLE)
        if (q if q is not None else y // 100) == y // 100 and (
                r if r is not None else y % 100) == y % 100:
            return y
        raise _ParseError(_IMPOSSIBLE)
    if q is not None and r is not None:
        v = q * 100 + r
        if v > _I32_MAX:
            raise _ParseError(_OUT_OF_RANGE)
        return v
    if r is not None:
        return r + (2000 if r < 70 else 1900)
    raise _ParseError(_NOT_ENOUGH)


def _to_naive_date(p: _Parsed) -> int:
    given_year = _resolve_year(p.year, p.year_div_100, p.year_mod_100)
    given_isoyear = _resolve_year(p.isoyear, p.isoyear_div_100, p.isoyear_mod_100)

    def split(y):
        return (y // 100, y % 100) if y >= 0 else (None, None)

    def verify_ymd(days):
        y, m, d = _civil_from_days(days)
        q, r = split(y)
        return ((p.year is None or p.year == y)
                and (p.year_div_100 if p.year_div_100 is not None else q) == q
                and (p.year_mod_100 if p.year_mod_100 is not None else r) == r
                and (p.month is None or p.month == m) and (p.day is None or p.day == d))

    def verify_isoweekdate(days):
        iy, iw = _iso_week(days)
        q, r = split(iy)
        return ((p.isoyear is None or p.isoyear == iy)
                and (p.isoyear_div_100 if p.isoyear_div_100 is not None else q) == q
                and (p.isoyear_mod_100 if p.isoyear_mod_100 is not None else r) == r
                and (p.isoweek is None or p.isoweek == iw)
                and (p.weekday is None or p.weekday == _weekday(days)))

    def verify_ordinal(days):
        o = _ordinal(days, _civil_from_days(days)[0])
        wd = _weekday(days)
        wsun = (o - (wd + 1) % 7 + 6) // 7
        wmon = (o - wd + 6) // 7
        return ((p.ordinal is None or p.ordinal == o)
                and (p.week_from_sun is None or p.week_from_sun == wsun)
                and (p.week_from_mon is None or p.week_from_mon == wmon))

    if given_year is not None and p.month is not None and p.day is not None:
        date = _ymd_opt(given_year, p.month, p.day)
        if date is None:
            raise _ParseError(_OUT_OF_RANGE)
        verified = verify_isoweekdate(date) and verify_ordinal(date)
    elif given_year is not None and p.ordinal is not None:
        date = _yo_opt(given_year, p.ordinal)
        if date is None:
            raise _ParseError(_OUT_OF_RANGE)
        verified = verify_ymd(date) and verify_isoweekdate(date) and verify_ordinal(date)
    elif given_year is not None and p.week_from_sun is not None and p.weekday is not None:
        date = _resolve_week_date(given_year, p.week_from_sun, p.weekday, 6)
        verified = verify_ymd(date) and verify_isoweekdate(date) and verify_ordinal(date)
    elif given_year is not None and p.week_from_mon is not None and p.weekday is not None:
        date = _resolve_week_date(given_year, p.week_from_mon, p.weekday, 0)
        verified = verify_ymd(date) and verify_isoweekdate(date) and verify_ordinal(date)
    elif given_isoyear is not None and p.isoweek is not None and p.weekday is not None:
        date = _isoywd_opt(given_isoyear, p.isoweek, p.weekday)
        if date is None:
            raise _ParseError(_OUT_OF_RANGE)
        verified = verify_ymd(date) and verify_ordinal(date)
    else:
        raise _ParseError(_NOT_ENOUGH)
    if not verified:
        raise _ParseError(_IMPOSSIBLE)
    if p.quarter is not None and p.quarter != (_civil_from_days(date)[1] - 1) // 3 + 1:
        raise _ParseError(_IMPOSSIBLE)
    return date


def _to_naive_time(p: _Parsed) -> tuple:
    if p.hour_div_12 is None or p.hour_mod_12 is None:
        raise _ParseError(_NOT_ENOUGH)
    hour = p.hour_div_12 * 12 + p.hour_mod_12
    if p.minute is None:
        raise _ParseError(_NOT_ENOUGH)
    sec = p.second if p.second is not None else 0
    nano = 0
    if sec == 60:
        sec, nano = 59, _NS
    if p.nanosecond is not None:
        if p.second is None:
            raise _ParseError(_NOT_ENOUGH)
        nano += p.nanosecond
    return hour, p.minute, sec, nano


def _attempt(f, p):
    try:
        return f(p), None
    except _ParseError as e:
        return None, str(e)


def _to_naive_datetime(p: _Parsed) -> tuple:
    """``to_naive_datetime_with_offset(0)``: ``(days, hour, minute, second, nano)``."""
    date, derr = _attempt(_to_naive_date, p)
    time, terr = _attempt(_to_naive_time, p)
    if derr is None and terr is None:
        hh, mi, ss, nano = time
        ts = date * 86400 + hh * 3600 + mi * 60 + ss
        if p.timestamp is not None and p.timestamp != ts and not (
                nano >= _NS and p.timestamp == ts + 1):
            raise _ParseError(_IMPOSSIBLE)
        return date, hh, mi, ss, nano
    if p.timestamp is None:
        raise _ParseError(derr if derr is not None else terr)
    if _OUT_OF_RANGE in (derr, terr):
        raise _ParseError(_OUT_OF_RANGE)
    if _IMPOSSIBLE in (derr, terr):
        raise _ParseError(_IMPOSSIBLE)
    ts = p.timestamp
    days, sod = divmod(ts, 86400)
    y = _civil_from_days(days)[0]
    if not _MIN_YEAR <= y <= _MAX_YEAR:
        raise _ParseError(_OUT_OF_RANGE)
    q = p.copy()
    if q.second == 60:
        if sod % 60 == 59:
            pass
        elif sod % 60 == 0:
            ts -= 1
            days, sod = divmod(ts, 86400)
            y = _civil_from_days(days)[0]
        else:
            raise _ParseError(_IMPOSSIBLE)
    else:
        q.set_num("Second", sod % 60)
    q.set_num("Year", y)
    q.set_num("Ordinal", _ordinal(days, y))
    q.set_hour(sod // 3600)
    q.set_num("Minute", sod // 60 % 60)
    date = _to_naive_date(q)
    hh, mi, ss, nano = _to_naive_time(q)
    return date, hh, mi, ss, nano


def parse_from_str(s: str, fmt: str) -> int:
    """chrono's ``NaiveDateTime::parse_from_str(s, fmt)`` read as UTC, as an
    Instant; raises ``_ParseError`` with chrono's message."""
    p = _Parsed()
    rest = _parse_internal(p, s, _parse_items(fmt))
    if rest:
        raise _ParseError(_TOO_LONG)
    days, hh, mi, ss, nano = _to_naive_datetime(p)
    return _instant(days * 86400 + hh * 3600 + mi * 60 + ss, nano)


def _parse(args: list) -> object:
    s = expect_str(args, 0)
    fmt = expect_str(args, 1)
    try:
        return ok(parse_from_str(s, fmt))
    except _ParseError as e:
        return err(f"parse: {e}")


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
    ("datetime", "parse"): _parse,
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
