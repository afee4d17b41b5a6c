"""datetime.* and duration.* (lexfast/builtins/chrono.py) through
``DefaultHandler.dispatch``. An Instant is nanoseconds since the epoch (Int).
Parse errors are chrono's ``ParseError`` texts; cases marked ``upstream:``
restate tests/std_datetime.rs and tests/std_int_duration.rs."""

from __future__ import annotations

import calendar

import pytest

from lexfast import DefaultHandler, EffectError, Map, Policy, Variant, err, ok

NS = 10**9
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
T0 = calendar.timegm((2026, 5, 3, 12, 34, 56)) * NS  # 2026-05-03T12:34:56Z

UTC = Variant("Utc", ())
LOCAL = Variant("Local", ())


def offset(m):
    return Variant("Offset", (m,))


def iana(name):
    return Variant("Iana", (name,))


@pytest.fixture
def call():
    h = DefaultHandler(Policy.pure())

    def run(kind, op, *args):
        return h.dispatch(kind, op, list(args))

    yield run
    h.close()


# -- parse_iso / format_iso ------------------------------------------------------

def test_round_trip_upstream(call):
    # upstream: parse_iso_round_trip_preserves_instant
    got = call("datetime", "parse_iso", "2026-05-03T12:34:56+00:00")
    assert got == ok(T0)
    assert call("datetime", "format_iso", T0) == "2026-05-03T12:34:56+00:00"


def test_parse_iso_rejects_garbage_upstream(call):
    # upstream: parse_iso_rejects_garbage
    assert call("datetime", "parse_iso", "not a timestamp") == err(
        "parse_iso: premature end of input")


@pytest.mark.parametrize("text, want", [
    ("2026-05-03T12:34:56Z", T0),
    ("2026-05-03t12:34:56z", T0),
    ("2026-05-03 12:34:56+00:00", T0),
    ("2026-05-03T14:34:56+02:00", T0),
    ("2026-05-03T07:04:56-05:30", T0),
    ("2026-05-03T11:34:56\u221201:00", T0),  # U+2212 MINUS SIGN is accepted
    ("2026-05-03T12:34:56.5Z", T0 + 500_000_000),
    ("2026-05-03T12:34:56.000000001Z", T0 + 1),
    ("2026-05-03T12:34:56.1234567899999Z", T0 + 123_456_789),  # digits past 9 skipped
    ("1969-12-31T23:59:59.999999999Z", -1),
    ("2016-12-31T23:59:60Z", calendar.timegm((2017, 1, 1, 0, 0, 0)) * NS),  # leap second
    ("2016-12-31T23:59:60.5Z", calendar.timegm((2017, 1, 1, 0, 0, 0)) * NS + 500_000_000),
    ("0000-01-01T00:00:00Z", I64_MAX),  # outside i64 nanoseconds: saturates to MAX
    ("9999-12-31T23:59:59Z", I64_MAX),
])
def test_parse_iso_accepts_rfc3339(call, text, want):
    assert call("datetime", "parse_iso", text) == ok(want)


@pytest.mark.parametrize("text, why", [
    ("2026-05-03T12:34:56", "premature end of input"),  # no offset
    ("2026-05-03", "premature end of input"),
    ("2026-05-03T12:34:56+01", "premature end of input"),
    ("2026-05-03T12:34:56+0100", "input contains invalid characters"),
    ("2026-05-03T12:34:56+01:0", "premature end of input"),
    ("2026-05-03T12:34:56.Z", "input contains invalid characters"),
    ("2026-05-03T12:34:56.", "premature end of input"),
    ("2026-05-03T12:34:56ZZ", "trailing input"),
    ("2026-05-03T12:34:56+00:00 ", "trailing input"),
    ("2026-5-03T12:34:56Z", "input contains invalid characters"),
    ("2026/05/03T12:34:56Z", "input contains invalid characters"),
    ("2026-05-03X12:34:56Z", "input contains invalid characters"),
    ("2026-05-03T12-34:56Z", "input contains invalid characters"),
    ("2026-02-30T00:00:00Z", "input is out of range"),
    ("2026-13-01T00:00:00Z", "input is out of range"),
    ("2026-05-03T24:00:00Z", "input is out of range"),
    ("2026-05-03T12:60:00Z", "input is out of range"),
    ("2026-05-03T12:34:61Z", "input is out of range"),
    ("2026-05-03T12:34:56+01:60", "input is out of range"),
    ("2026-05-03T12:34:56+24:00", "input is out of range"),
    ("2026-05-03T12:34:56 +00:00", "input contains invalid characters"),
    ("+2026-05-03T12:34:56Z", "input contains invalid characters"),
    ("2026-05-03T12:34:56UTC", "input contains invalid characters"),
])
def test_parse_iso_rejects_like_chrono(call, text, why):
    assert call("datetime", "parse_iso", text) == err(f"parse_iso: {why}")


def test_format_iso_fraction_and_range(call):
    assert call("datetime", "format_iso", 0) == "1970-01-01T00:00:00+00:00"
    assert call("datetime", "format_iso", T0 + 500_000_000) == "2026-05-03T12:34:56.500+00:00"
    assert call("datetime", "format_iso", T0 + 1_500_000) == "2026-05-03T12:34:56.001500+00:00"
    assert call("datetime", "format_iso", T0 + 7) == "2026-05-03T12:34:56.000000007+00:00"
    assert call("datetime", "format_iso", -1) == "1969-12-31T23:59:59.999999999+00:00"
    assert call("datetime", "format_iso", I64_MAX) == "2262-04-11T23:47:16.854775807+00:00"
    assert call("datetime", "format_iso", I64_MIN) == "1677-09-21T00:12:43.145224192+00:00"
    with pytest.raises(EffectError, match=r"^expected Int, got Str\(\"x\"\)$"):
        call("datetime", "format_iso", "x")
    with pytest.raises(EffectError, match=r"^expected Str, got Int\(1\)$"):
        call("datetime", "parse_iso", 1)


# -- arithmetic and durations ---------------------------------------------------------

def test_add_seconds_upstream(call):
    # upstream: add_seconds_advances_the_instant
    t = call("datetime", "parse_iso", "2026-05-03T12:00:00+00:00").args[0]
    d = call("datetime", "duration_seconds", 90.5)
    assert d == 90_500_000_000
    assert call("datetime", "format_iso", call("datetime", "add", t, d)) == \
        "2026-05-03T12:01:30.500+00:00"


def test_diff_upstream(call):
    # upstream: diff_equals_minute_duration
    a = call("datetime", "parse_iso", "2026-05-03T12:00:00+00:00").args[0]
    b = call("datetime", "parse_iso", "2026-05-03T12:45:00+00:00").args[0]
    assert call("datetime", "diff", b, a) == call("datetime", "duration_minutes", 45)


def test_add_diff_saturate(call):
    assert call("datetime", "add", I64_MAX, 1) == I64_MAX
    assert call("datetime", "add", I64_MIN, -1) == I64_MIN
    assert call("datetime", "diff", I64_MIN, 1) == I64_MIN
    assert call("datetime", "diff", I64_MAX, -1) == I64_MAX
    assert call("datetime", "diff", 5, 7) == -2


def test_duration_constructors(call):
    assert call("datetime", "duration_minutes", 2) == 120 * NS
    assert call("datetime", "duration_days", 1) == 86_400 * NS
    assert call("datetime", "duration_minutes", I64_MAX) == I64_MAX  # saturating
    assert call("datetime", "duration_days", -(10**12)) == I64_MIN
    assert call("datetime", "duration_seconds", -1.5) == -1_500_000_000
    assert call("datetime", "duration_seconds", 1e-10) == 0  # truncates toward zero
    assert call("datetime", "duration_seconds", -1e-10) == 0
    # Rust's float-to-int `as` saturates, NaN is 0
    assert call("datetime", "duration_seconds", 1e300) == I64_MAX
    assert call("datetime", "duration_seconds", float("-inf")) == I64_MIN
    assert call("datetime", "duration_seconds", float("nan")) == 0
    with pytest.raises(EffectError, match=r"^expected Float, got Int\(90\)$"):
        call("datetime", "duration_seconds", 90)
    with pytest.raises(EffectError, match=r"^expected Int, got Float\(1.0\)$"):
        call("datetime", "duration_days", 1.0)


def test_before_after_compare(call):
    assert call("datetime", "before", 1, 2) is True
    assert call("datetime", "before", 2, 2) is False
    assert call("datetime", "after", 3, 2) is True
    assert call("datetime", "after", 2, 2) is False
    assert [call("datetime", "compare", a, b) for a, b in ((1, 2), (2, 2), (3, 2))] == [-1, 0, 1]
    with pytest.raises(EffectError, match="^missing argument$"):
        call("datetime", "compare", 1)


def test_duration_units_upstream(call):
    # upstream: duration_unit_extractors
    assert call("duration", "hours", call("datetime", "duration_days", 2)) == 48
    assert call("duration", "minutes", call("datetime", "duration_seconds", 90.0)) == 1
    assert call("duration", "millis", call("datetime", "duration_seconds", 90.0)) == 90_000


def test_duration_units_truncate_toward_zero(call):
    assert call("duration", "seconds", 2_999_999_999) == 2
    assert call("duration", "seconds", -2_999_999_999) == -2
    assert call("duration", "millis", -1) == 0
    assert call("duration", "days", I64_MIN) == -106751
    assert call("duration", "hours", -7_200_000_000_001) == -2
    with pytest.raises(EffectError, match=r"^expected Int, got Bool\(true\)$"):
        call("duration", "seconds", True)


# -- components ------------------------------------------------------------------------

def comps(y, mo, d, h, mi, s, nano=0, off=0):
    return {"year": y, "month": mo, "day": d, "hour": h, "minute": mi, "second": s,
            "nano": nano, "tz_offset_minutes": off}


def test_to_components_utc_upstream(call):
    # upstream: to_components_yields_year
    got = call("datetime", "to_components", T0 + 42, UTC)
    assert got == ok(comps(2026, 5, 3, 12, 34, 56, 42))
    assert list(got.args[0]) == ["year", "month", "day", "hour", "minute", "second", "nano",
                                 "tz_offset_minutes"]
    assert call("datetime", "to_components", -1, UTC) == ok(
        comps(1969, 12, 31, 23, 59, 59, 999_999_999))


def test_to_components_iana_upstream(call):
    # upstream: iana_timezone_offset, iana_timezone_offset_dst
    winter = calendar.timegm((2026, 1, 15, 12, 0, 0)) * NS
    summer = calendar.timegm((2026, 7, 15, 12, 0, 0)) * NS
    got = call("datetime", "to_components", winter, iana("America/New_York"))
    assert got == ok(comps(2026, 1, 15, 7, 0, 0, 0, -300))
    got = call("datetime", "to_components", summer, iana("America/New_York"))
    assert got.args[0]["tz_offset_minutes"] == -240
    assert got.args[0]["hour"] == 8
    got = call("datetime", "to_components", winter, iana("Asia/Kolkata"))
    assert got == ok(comps(2026, 1, 15, 17, 30, 0, 0, 330))


def test_to_components_offset_upstream(call):
    # upstream: fixed_offset_components
    got = call("datetime", "to_components", T0, offset(330))
    assert got == ok(comps(2026, 5, 3, 18, 4, 56, 0, 330))
    got = call("datetime", "to_components", T0, offset(-750))
    assert got == ok(comps(2026, 5, 3, 0, 4, 56, 0, -750))


def test_to_components_local_upstream(call):
    # upstream: local_variant_returns_components_without_panicking
    got = call("datetime", "to_components", T0, LOCAL)
    assert got.name == "Ok"
    assert -840 <= got.args[0]["tz_offset_minutes"] <= 840


def test_to_components_errors_upstream(call):
    # upstream: unknown_iana_name_returns_err_with_message
    assert call("datetime", "to_components", T0, iana("Not/Real_Place")) == err(
        "to_components: unknown timezone `Not/Real_Place`: failed to parse timezone")
    assert call("datetime", "to_components", T0, iana("../../etc/passwd")).name == "Err"
    assert call("datetime", "to_components", T0, offset(1440)) == err(
        "to_components: offset out of range")
    assert call("datetime", "to_components", T0, offset(2**31)) == err(
        "Tz::Offset: minutes out of range: 2147483648")
    # i32 saturating_mul(60), then out of range
    assert call("datetime", "to_components", T0, offset(2**31 - 1)) == err(
        "to_components: offset out of range")
    assert call("datetime", "to_components", T0, Variant("Utc", (1,))) == err(
        "expected Tz variant (Utc | Local | Offset(Int) | Iana(Str)), got `Utc` with 1 arg(s)")
    assert call("datetime", "to_components", T0, Variant("Offset", ("x",))) == err(
        "expected Tz variant (Utc | Local | Offset(Int) | Iana(Str)), got `Offset` with 1 arg(s)")
    assert call("datetime", "to_components", T0, "UTC") == err(
        'expected Tz variant, got Str("UTC")')
    assert call("datetime", "to_components", T0) == err("missing Tz argument")
    with pytest.raises(EffectError, match=r"^expected Int, got Str\(\"x\"\)$"):
        call("datetime", "to_components", "x", UTC)


def test_from_components_round_trip_upstream(call):
    # upstream: round_trip_through_components
    c = call("datetime", "to_components", T0 + 5, UTC).args[0]
    assert call("datetime", "from_components", c) == ok(T0 + 5)
    c = call("datetime", "to_components", T0, offset(-300)).args[0]
    assert call("datetime", "from_components", c) == ok(T0)
    c = call("datetime", "to_components", T0, iana("Europe/Paris")).args[0]
    assert call("datetime", "from_components", c) == ok(T0)


def test_from_components_edges(call):
    f = call
    # nano is added as a duration, unvalidated (u32)
    assert f("datetime", "from_components", comps(1970, 1, 1, 0, 0, 0, 2 * NS)) == ok(2 * NS)
    assert f("datetime", "from_components", comps(1969, 12, 31, 23, 59, 59)) == ok(-NS)
    assert f("datetime", "from_components", comps(2024, 2, 29, 0, 0, 0)).name == "Ok"
    assert f("datetime", "from_components", comps(2023, 2, 29, 0, 0, 0)) == err(
        "from_components: invalid or ambiguous date/time")
    assert f("datetime", "from_components", comps(2023, 1, 1, 0, 0, 60)) == err(
        "from_components: invalid or ambiguous date/time")
    assert f("datetime", "from_components", comps(2023, 1, 1, 0, 0, 0, 0, 1440)) == err(
        "from_components: offset out of range")
    # far years are valid chrono dates but not i64 nanoseconds: MAX
    assert f("datetime", "from_components", comps(3000, 1, 1, 0, 0, 0)) == ok(I64_MAX)
    assert f("datetime", "from_components", comps(-5, 1, 1, 0, 0, 0)) == ok(I64_MAX)
    # month -1 is u32 4294967295 in the reference: invalid
    assert f("datetime", "from_components", comps(2023, -1, 1, 0, 0, 0)) == err(
        "from_components: invalid or ambiguous date/time")
    c = comps(2023, 1, 1, 0, 0, 0)
    del c["nano"]
    assert f("datetime", "from_components", c) == err(
        "from_components: missing or non-int field `nano`: None")
    c = comps(2023, 1, 1, 0, 0, 0)
    c["day"] = "1"
    assert f("datetime", "from_components", c) == err(
        'from_components: missing or non-int field `day`: Some(Str("1"))')
    with pytest.raises(EffectError, match="^from_components: expected DateTime record$"):
        f("datetime", "from_components", Map())
    with pytest.raises(EffectError, match="^from_components: expected DateTime record$"):
        f("datetime", "from_components")


def test_now_is_not_a_builtin(call):
    from lexfast import builtins as B

    assert not B.is_pure_call("datetime", "now")


# -- format (chrono strftime over DateTime<Utc>) ----------------------------------------

T1 = calendar.timegm((2026, 5, 3, 7, 4, 5)) * NS + 26_490_000  # a Sunday


@pytest.mark.parametrize("fmt, want", [
    ("%Y-%m-%d %H:%M:%S", "2026-05-03 07:04:05"),
    ("%Y-%m-%dT%H:%M:%S%.f%:z", "2026-05-03T07:04:05.026490+00:00"),
    ("%+", "2026-05-03T07:04:05.026490+00:00"),
    ("%s", "1777791845"),
    ("%f", "026490000"),
    ("%.3f|%.6f|%.9f|%3f|%6f|%9f", ".026|.026490|.026490000|026|026490|026490000"),
    ("%-d %-m %_H %0e %-j %_j %j", "3 5  7 03 123 123 123"),
    ("%Z %z %:z %::z %:::z", "UTC +0000 +00:00 +00:00:00 +00"),
    ("%c", "Sun May  3 07:04:05 2026"),
    ("%v", " 3-May-2026"),
    ("%D %x %F %R %T %X", "05/03/26 05/03/26 2026-05-03 07:04 07:04:05 07:04:05"),
    ("%r %p %P %I %l", "07:04:05 AM AM am 07  7"),
    ("%a %A %b %B %h", "Sun Sunday May May May"),
    ("%C %y %G %g %V %U %W", "20 26 2026 26 18 18 17"),
    ("%q %u %w", "2 7 0"),
    ("%e %k", " 3  7"),
    ("héllo %%  x\t%n%t", "héllo %  x\t\n\t"),
    ("", ""),
])
def test_format(call, fmt, want):
    assert call("datetime", "format", T1, fmt) == want


def test_format_matches_strftime_on_many_instants(call):
    # for the specifiers glibc and chrono agree on, over the whole i64 range
    import datetime as _dt
    import random

    rnd = random.Random(15)
    for _ in range(300):
        n = rnd.randrange(I64_MIN, I64_MAX + 1)
        d = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=n // NS)
        for s in "aAbBCdDeFgGHIjklmMnpRStTuUVwWxXyY%":
            assert call("datetime", "format", n, "%" + s) == d.strftime("%" + s), (n, s)


def test_format_of_negative_instants(call):
    assert call("datetime", "format", -1, "%Y-%m-%d %H:%M:%S%.f %s") == \
        "1969-12-31 23:59:59.999999999 -1"
    assert call("datetime", "format", -1, "%0s|%_s") == "-00000001|       -1"


@pytest.mark.parametrize("fmt", ["%", "%-", "%Q", "%-D", "%-%", "%#z", "%#Y", "%.4f", "%3x",
                                 "%:y", "%.", "%.3", "ok %ä"])
def test_format_rejects_what_chrono_rejects(call, fmt):
    # the reference panics (Display error in to_string); here an EffectError
    with pytest.raises(EffectError, match="^datetime.format: bad or unsupported format string"):
        call("datetime", "format", T1, fmt)


def test_format_argument_errors(call):
    with pytest.raises(EffectError, match=r"^expected Str, got Int\(1\)$"):
        call("datetime", "format", T1, 1)
    with pytest.raises(EffectError, match="^missing argument$"):
        call("datetime", "format", T1)
