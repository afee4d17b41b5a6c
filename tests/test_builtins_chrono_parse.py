"""datetime.parse (lexfast/builtins/chrono.py): chrono's
``NaiveDateTime::parse_from_str(s, fmt)`` read as UTC, as an Instant (Int
nanoseconds), through ``DefaultHandler.dispatch``. Errors are ``Err("parse: "
+ chrono's ParseError text)``. No upstream Lex test calls ``datetime.parse``;
the cases marked ``chrono:`` restate chrono 0.4's own tests
(src/naive/datetime/tests.rs, src/format/parsed.rs); expected Instants are
computed independently with ``calendar.timegm``."""

from __future__ import annotations

import calendar

import pytest

from lexfast import DefaultHandler, EffectError, Policy, err, ok

NS = 10**9
INVALID = "parse: input contains invalid characters"
TOO_SHORT = "parse: premature end of input"
TOO_LONG = "parse: trailing input"
OUT_OF_RANGE = "parse: input is out of range"
NOT_ENOUGH = "parse: input is not enough for unique date and time"
IMPOSSIBLE = "parse: no possible date and time matching input"
BAD_FORMAT = "parse: bad or unsupported format string"


CYCLE = 146097 * 86400 * NS  # 400 Gregorian years


def at(y, mo, d, h=0, mi=0, s=0, nano=0):
    k = 0
    while y < 1970:
        y, k = y + 400, k - 1
    while y > 2400:
        y, k = y - 400, k + 1
    return calendar.timegm((y, mo, d, h, mi, s)) * NS + nano + k * CYCLE


@pytest.fixture
def call():
    h = DefaultHandler(Policy.pure())

    def run(kind, op, *args):
        return h.dispatch(kind, op, list(args))

    yield run
    h.close()


def parse(call, s, fmt):
    return call("datetime", "parse", s, fmt)


# chrono: test_datetime_parse_from_str
@pytest.mark.parametrize("s, fmt, want", [
    ("2014-5-7T12:34:56+09:30", "%Y-%m-%dT%H:%M:%S%z", at(2014, 5, 7, 12, 34, 56)),  # offset ignored
    ("2015-W06-1 000000", "%G-W%V-%u%H%M%S", at(2015, 2, 2)),
    ("Fri, 09 Aug 2013 23:54:35 GMT", "%a, %d %b %Y %H:%M:%S GMT", at(2013, 8, 9, 23, 54, 35)),
    ("1441497364", "%s", at(2015, 9, 5, 23, 56, 4)),
    ("1283929614.1234", "%s.%f", at(2010, 9, 8, 7, 6, 54, 1234)),
    ("1441497364.649", "%s%.3f", at(2015, 9, 5, 23, 56, 4, 649000000)),
    ("1497854303.087654", "%s%.6f", at(2017, 6, 19, 6, 38, 23, 87654000)),
    ("1437742189.918273645", "%s%.9f", at(2015, 7, 24, 12, 49, 49, 918273645)),
])
def test_parse_from_str_chrono_cases(call, s, fmt, want):
    assert parse(call, s, fmt) == ok(want)


@pytest.mark.parametrize("s, fmt, want", [
    ("Sat, 09 Aug 2013 23:54:35 GMT", "%a, %d %b %Y %H:%M:%S GMT", IMPOSSIBLE),  # wrong weekday
    ("2014-5-7 Q2 12:3456", "%Y-%m-%d Q%q %H:%M:%S", INVALID),
    ("12:34:56", "%H:%M:%S", NOT_ENOUGH),  # no date
])
def test_parse_from_str_chrono_errors(call, s, fmt, want):
    assert parse(call, s, fmt) == err(want)


DT = at(2013, 8, 9, 23, 54, 35)


# chrono: test_datetime_parse_from_str_with_spaces
@pytest.mark.parametrize("s, fmt", [
    (" Aug 09 2013 23:54:35", " %b %d %Y %H:%M:%S"),
    ("Aug 09 2013 23:54:35 ", "%b %d %Y %H:%M:%S "),
    (" Aug 09 2013  23:54:35 ", " %b %d %Y  %H:%M:%S "),
    ("  Aug 09 2013 23:54:35", "  %b %d %Y %H:%M:%S"),
    ("\n\tAug 09 2013 23:54:35  ", "\n\t%b %d %Y %H:%M:%S  "),
    ("\tAug 09 2013 23:54:35\t", "\t%b %d %Y %H:%M:%S\t"),
    ("Aug  09 2013 23:54:35", "%b  %d %Y %H:%M:%S"),
    ("Aug    09 2013 23:54:35", "%b    %d %Y %H:%M:%S"),
    ("Aug  09 2013\t23:54:35", "%b  %d %Y\t%H:%M:%S"),
    ("Aug  09 2013\t\t23:54:35", "%b  %d %Y\t\t%H:%M:%S"),
    ("Aug 09 2013 23:54:35 ", "%b %d %Y %H:%M:%S\n"),
    ("Aug 09 2013 23:54:35", "%b %d %Y\t%H:%M:%S"),
    ("Aug 09 2013 23:54:35", "%b %d %Y %H:%M:%S "),
    ("Aug 09 2013 23:54:35", " %b %d %Y %H:%M:%S"),
    ("Aug 09 2013 23:54:35", "%b %d %Y %H:%M:%S\n"),
    ("Aug 9 2013 23:54:35", "%b %e %Y %H:%M:%S"),
    ("Aug\u300009 2013 23:54:35", "%b %d %Y %H:%M:%S"),  # any Unicode White_Space
])
def test_spaces_match_any_whitespace(call, s, fmt):
    assert parse(call, s, fmt) == ok(DT)


@pytest.mark.parametrize("s, fmt, want", [
    (" Aug 09 2013 23:54:35", "%b %d %Y %H:%M:%S", INVALID),  # leading space in data
    ("Aug 09 2013 23:54:35 ", "%b %d %Y %H:%M:%S", TOO_LONG),  # trailing space
    ("Aug 09 2013 23:54:35\t", "%b %d %Y %H:%M:%S", TOO_LONG),  # trailing tab
    ("\nAug 09 2013 23:54:35", "%b %d %Y %H:%M:%S\n", INVALID),  # mismatched newline
    ("Aug 09 2013 23:54:35 !!!", "%b %d %Y %H:%M:%S ", TOO_LONG),  # trailing literal
])
def test_spaces_failures(call, s, fmt, want):
    assert parse(call, s, fmt) == err(want)


@pytest.mark.parametrize("s, fmt, want", [
    # numeric fields: a field's intrinsic width, leading whitespace and zeros allowed
    ("20240305103000", "%Y%m%d%H%M%S", at(2024, 3, 5, 10, 30)),
    ("2024-3-5 7:8:9", "%Y-%m-%d %H:%M:%S", at(2024, 3, 5, 7, 8, 9)),
    ("2024- 3- 5  7: 8", "%Y-%m-%d %H:%M", at(2024, 3, 5, 7, 8)),
    ("+2024-03-05 00:00", "%F %R", at(2024, 3, 5)),
    ("02024-03-05 00:00", "%Y%m-%d-%H:%M", None),  # %Y takes 4 digits unsigned
    # composites
    ("2024-03-05T10:30:00", "%FT%T", at(2024, 3, 5, 10, 30)),
    ("03/05/24 10:30", "%D %R", at(2024, 3, 5, 10, 30)),
    ("03/05/24 10:30:01", "%x %X", at(2024, 3, 5, 10, 30, 1)),
    ("Tue Mar  5 10:30:01 2024", "%c", at(2024, 3, 5, 10, 30, 1)),
    (" 5-Mar-2024 01:02:03 PM", "%v %r", at(2024, 3, 5, 13, 2, 3)),
    # names: case-insensitive, long forms also accept the abbreviation
    ("tuesday, MARCH 5 2024 10:30", "%A, %B %d %Y %R", at(2024, 3, 5, 10, 30)),
    ("Tue, Mar 5 2024 10:30", "%A, %B %d %Y %R", at(2024, 3, 5, 10, 30)),
    ("5 sep 2024 10:30", "%d %h %Y %R", at(2024, 9, 5, 10, 30)),
    # 12-hour clock
    ("2024-03-05 12:15 AM", "%F %I:%M %p", at(2024, 3, 5, 0, 15)),
    ("2024-03-05 12:15 pm", "%F %I:%M %P", at(2024, 3, 5, 12, 15)),
    ("2024-03-05 1:05 Pm", "%F %l:%M %p", at(2024, 3, 5, 13, 5)),
    # years: %y (>= 70 is 19xx), %C%y
    ("70-01-02 00:00", "%y-%m-%d %R", at(1970, 1, 2)),
    ("69-01-02 00:00", "%y-%m-%d %R", at(2069, 1, 2)),
    ("19 84-01-02 00:00", "%C %y-%m-%d %R", at(1984, 1, 2)),
    ("2024 24 20-01-02 00:00", "%Y %y %C-%m-%d %R", at(2024, 1, 2)),
    # ordinal, week numbers, ISO weeks, quarter
    ("2024-060 10:00", "%Y-%j %R", at(2024, 2, 29, 10)),
    ("2024 W10 Tuesday 10:00", "%Y W%W %A %R", at(2024, 3, 5, 10)),
    ("2024 U09 2 10:00", "%Y U%U %w %R", at(2024, 3, 5, 10)),
    ("2024-W10-2 10:00", "%G-W%V-%u %R", at(2024, 3, 5, 10)),
    ("24-W10-2 10:00", "%g-W%V-%u %R", at(2024, 3, 5, 10)),
    ("2024 Q1 03-05 10:00", "%Y Q%q %m-%d %R", at(2024, 3, 5, 10)),
    # fractions
    ("10:30:00.5 2024-03-05", "%T%.f %F", at(2024, 3, 5, 10, 30, 0, 500_000_000)),
    ("10:30:00.1234567891 2024-03-05", "%T%.f %F", at(2024, 3, 5, 10, 30, 0, 123_456_789)),
    ("10:30:00 2024-03-05", "%T%.f %F", at(2024, 3, 5, 10, 30)),  # %.f is optional
    ("10:30:00 2024-03-05", "%T%.3f %F", at(2024, 3, 5, 10, 30)),
    ("10:30:00.012 2024-03-05", "%T%.3f %F", at(2024, 3, 5, 10, 30, 0, 12_000_000)),
    ("10:30:00.012345 2024-03-05", "%T%.6f %F", at(2024, 3, 5, 10, 30, 0, 12_345_000)),
    ("10:30:00,012 2024-03-05", "%T,%3f %F", at(2024, 3, 5, 10, 30, 0, 12_000_000)),
    ("10:30:00 000000007 2024-03-05", "%T %9f %F", at(2024, 3, 5, 10, 30, 0, 7)),
    ("10:30:00.7 2024-03-05", "%T.%f %F", at(2024, 3, 5, 10, 30, 0, 7)),  # %f is raw ns
    # offsets and zone names are read and ignored
    ("2024-03-05 10:30 +0930", "%F %R %z", at(2024, 3, 5, 10, 30)),
    ("2024-03-05 10:30 -09:30", "%F %R %:z", at(2024, 3, 5, 10, 30)),
    ("2024-03-05 10:30 +09:30", "%F %R %::z", at(2024, 3, 5, 10, 30)),
    ("2024-03-05 10:30 \u221209 30", "%F %R %:::z", at(2024, 3, 5, 10, 30)),
    ("2024-03-05 10:30 +09", "%F %R %#z", at(2024, 3, 5, 10, 30)),
    ("2024-03-05 10:30 Z", "%F %R %#z", at(2024, 3, 5, 10, 30)),
    ("2024-03-05 10:30 Europe/Paris", "%F %R %Z", at(2024, 3, 5, 10, 30)),
    # %+ (relaxed RFC 3339, the offset ignored)
    ("2012-12-12T12:12:12Z", "%+", at(2012, 12, 12, 12, 12, 12)),
    ("2012-12-12 12:12:12.5+05:00", "%+", at(2012, 12, 12, 12, 12, 12, 500_000_000)),
    ("2012-  12-12T12:  12:12 utc", "%+", at(2012, 12, 12, 12, 12, 12)),
    # escapes
    ("100% 2024-03-05\t10:30\n", "100%% %F%t%R%n", at(2024, 3, 5, 10, 30)),
    # padding modifiers parse the same
    ("2024-3-5 7:05", "%Y-%-m-%_d %-H:%0M", at(2024, 3, 5, 7, 5)),
    # timestamps, alone or checked against the other fields
    ("0", "%s", 0),
    ("1709634600 2024-03-05", "%s %F", at(2024, 3, 5, 10, 30)),
    ("1709634600 10:30", "%s %R", at(2024, 3, 5, 10, 30)),
    # a leap second: 60 seconds are 59 plus a whole second of nanoseconds
    ("2016-12-31 23:59:60", "%F %T", at(2016, 12, 31, 23, 59, 59) + NS),
    ("2016-12-31 23:59:60.5", "%F %T%.f", at(2016, 12, 31, 23, 59, 59) + NS + NS // 2),
    # seconds may be omitted
    ("2024-03-05 10:30", "%F %R", at(2024, 3, 5, 10, 30)),
    ("1969-12-31 23:59:59.9", "%F %T%.f", -NS // 10),
])
def test_parse_specifiers(call, s, fmt, want):
    got = parse(call, s, fmt)
    if want is None:
        assert got.name == "Err"
    else:
        assert got == ok(want)


@pytest.mark.parametrize("s, fmt, want", [
    # lexing errors
    ("2024", "%Y-%m", TOO_SHORT),
    ("2024x03", "%Y-%m", INVALID),
    ("2024-03-05 10:30 x", "%F %R", TOO_LONG),
    ("", "%Y", TOO_SHORT),
    ("abc", "%Y", INVALID),
    ("Ma", "%b", TOO_SHORT),
    ("Mxr", "%b", INVALID),
    ("é", "%b", TOO_SHORT),  # byte lengths, as chrono's
    ("éa", "%b", INVALID),
    ("2024-03-05 10:30 x", "%F %R %p", TOO_SHORT),
    ("2024-03-05 10:30 xm", "%F %R %p", INVALID),
    ("a", "ab", TOO_SHORT),
    ("a", "é", TOO_SHORT),
    ("ac", "ab", INVALID),
    ("2024-03-05 10:30 +09", "%F %R %z", TOO_SHORT),
    ("2024-03-05 10:30 +0960", "%F %R %z", OUT_OF_RANGE),
    ("2024-03-05 10:30 +09:3x", "%F %R %z", INVALID),
    ("2024-03-05 10:30 Z", "%F %R %z", INVALID),
    ("2024-03-05 10:30 +1", "%F %R %z", TOO_SHORT),
    ("2024-03-05 10:30 +09 1", "%F %R %#z", TOO_SHORT),
    ("10:30:00. 2024-03-05", "%T%.f %F", INVALID),
    ("10:30:00.12 2024-03-05", "%T%.3f %F", INVALID),
    ("10:30:00.12", "%T%.3f", TOO_SHORT),
    ("10:30:00 12", "%T %3f", TOO_SHORT),
    ("10:30:00 12x", "%T %3f", INVALID),
    ("99999999999999999999", "%s", OUT_OF_RANGE),
    ("-5", "%s", INVALID),  # %s is unsigned
    # field ranges
    ("2024-13-05 00:00", "%F %R", OUT_OF_RANGE),
    ("2024-02-30 00:00", "%F %R", OUT_OF_RANGE),
    ("2023-02-29 00:00", "%F %R", OUT_OF_RANGE),
    ("2024-03-05 24:00", "%F %R", OUT_OF_RANGE),
    ("2024-03-05 13:00 PM", "%F %I:%M %p", OUT_OF_RANGE),
    ("2024-03-05 10:61", "%F %R", OUT_OF_RANGE),
    ("2024-03-05 10:30:61", "%F %T", OUT_OF_RANGE),
    ("2023-366 10:00", "%Y-%j %R", OUT_OF_RANGE),
    ("2024-W54-1 10:00", "%G-W%V-%u %R", OUT_OF_RANGE),
    ("2024-W10-8 10:00", "%G-W%V-%u %R", OUT_OF_RANGE),
    ("2024 Q5 03-05 10:00", "%Y Q%q %m-%d %R", OUT_OF_RANGE),
    ("+262143-01-01 00:00", "%F %R", OUT_OF_RANGE),  # beyond chrono's year range
    ("262143-01-01 00:00", "%F %R", INVALID),  # unsigned %Y reads 4 digits
    ("+9999999999-01-01 00:00", "%F %R", OUT_OF_RANGE),  # not an i32
    # conflicts
    ("2024-03-05 10:30 11", "%F %R %H", IMPOSSIBLE),
    ("Mon 2024-03-05 10:30", "%a %F %R", IMPOSSIBLE),
    ("2024-03-05 10:30 PM", "%F %H:%M %p", IMPOSSIBLE),
    ("2024 Q2 03-05 10:00", "%Y Q%q %m-%d %R", IMPOSSIBLE),
    ("2024 23-03-05 10:00", "%Y %y-%m-%d %R", IMPOSSIBLE),
    ("1709634601 2024-03-05 10:30", "%s %F %R", IMPOSSIBLE),
    ("1709634600 11:30", "%s %R", IMPOSSIBLE),
    ("-1-03-05 10:30 0", "%Y-%m-%d %R %C", IMPOSSIBLE),
    # missing fields
    ("2024-03 10:30", "%Y-%m %R", NOT_ENOUGH),
    ("2024-03-05", "%F", NOT_ENOUGH),
    ("2024-03-05 10", "%F %H", NOT_ENOUGH),
    ("2024-03-05 10:30 AM", "%F %I:%M", TOO_LONG),
    ("2024-03-05 10:30", "%F %I:%M", NOT_ENOUGH),  # a 12-hour hour needs AM/PM
    ("20-03-05 10:30", "%C-%m-%d %R", NOT_ENOUGH),
    ("2024-03-05 10:30 .5", "%F %R %.f", NOT_ENOUGH),  # nanoseconds without seconds
    ("2024 W10 10:00", "%Y W%W %R", NOT_ENOUGH),
])
def test_parse_errors(call, s, fmt, want):
    assert parse(call, s, fmt) == err(want)


@pytest.mark.parametrize("s, fmt, want", [
    # a bad specifier fails only when the parser reaches it (items are lazy)
    ("2024-03-05 1x:30", "%F %R %Q", INVALID),
    ("2024-03-05 10:30", "%F %R %Q", BAD_FORMAT),
    ("2024-03-05 10:30 x", "%F %R %Q", BAD_FORMAT),
    ("x", "%Y %Q", INVALID),
    ("", "%Q", BAD_FORMAT),
    ("2024", "%Y%", BAD_FORMAT),
    ("2024", "%Y%-", BAD_FORMAT),
    ("2024", "%Y%-D", BAD_FORMAT),  # no padding on composites
    ("2024", "%Y%-a", BAD_FORMAT),  # nor on names
    ("2024", "%Y%#a", BAD_FORMAT),
    ("2024", "%Y%.4f", BAD_FORMAT),
    ("2024", "%Y%.3g", BAD_FORMAT),
    ("2024", "%Y%3", BAD_FORMAT),
    ("2024", "%Y%:y", BAD_FORMAT),
    ("2024", "%Y%E", BAD_FORMAT),
])
def test_bad_format(call, s, fmt, want):
    assert parse(call, s, fmt) == err(want)


# round trips with datetime.format for every specifier that pins the instant
@pytest.mark.parametrize("fmt", [
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.9f%z",
    "%F %T%.f %:z",
    "%+",
    "%s%.9f",
    "%Y-%j %T%.9f",
    "%G-W%V-%u %T%.9f",
    "%Y W%U %a %T%.9f",
    "%Y W%W %A %T%.9f",
    "%d %B %Y %I:%M:%S%.9f %p",
    "%e %b %C%y %l:%M:%S%.9f %P",
    "%a, %d %h %Y %T%.9f %Z",
    "%c%.9f",
    "%D %r%.9f",
    "%v %R:%S%.9f",
    "%Y%m%d%H%M%S%9f",
    "%Y-%-m-%-d %-H:%-M:%-S.%f",
])
@pytest.mark.parametrize("n", [
    0,
    at(2024, 2, 29, 23, 59, 59, 999_999_999),
    at(2026, 5, 3, 12, 34, 56, 120_000_000),
    at(2000, 1, 1, 0, 0, 0, 1),
    at(2010, 1, 3, 12, 0, 0),  # ISO week of the previous year
    at(2014, 12, 31, 1, 2, 3, 456_000),  # ISO week 1 of 2015
    at(1985, 7, 14, 18, 0, 0),
])
def test_round_trip_with_format(call, fmt, n):
    text = call("datetime", "format", n, fmt)
    assert parse(call, text, fmt) == ok(n)


def test_round_trip_before_1970(call):
    n = at(1969, 7, 20, 20, 17, 40, 5)
    text = call("datetime", "format", n, "%F %T%.f")
    assert text == "1969-07-20 20:17:40.000000005"
    assert parse(call, text, "%F %T%.f") == ok(n)


def test_saturates_at_i64_max(call):
    # timestamp_nanos_opt().unwrap_or(i64::MAX), as the other ops
    assert parse(call, "2300-01-01 00:00", "%F %R") == ok(2**63 - 1)
    assert parse(call, "1600-01-01 00:00", "%F %R") == ok(2**63 - 1)


def test_argument_errors(call):
    with pytest.raises(EffectError, match=r"^expected Str, got Int\(1\)$"):
        call("datetime", "parse", 1, "%F")
    with pytest.raises(EffectError, match=r"^expected Str, got Int\(1\)$"):
        call("datetime", "parse", "2024", 1)
    with pytest.raises(EffectError, match=r"^missing argument$"):
        call("datetime", "parse", "2024")


# chrono: format::parsed::tests::test_parsed_to_naive_date, on the ported Parsed
def _date(**fields):
    from lexfast.builtins.chrono import _Parsed, _ParseError, _to_naive_date

    p = _Parsed()
    for k, v in fields.items():
        setattr(p, k, v)
    try:
        days = _to_naive_date(p)
    except _ParseError as e:
        return "parse: " + str(e)
    return days * 86400 * NS


MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


@pytest.mark.parametrize("fields, want", [
    ({}, NOT_ENOUGH),
    ({"year": 1984}, NOT_ENOUGH),
    ({"year": 1984, "month": 1}, NOT_ENOUGH),
    ({"year": 1984, "month": 1, "day": 2}, at(1984, 1, 2)),
    ({"year": 1984, "day": 2}, NOT_ENOUGH),
    ({"year_div_100": 19}, NOT_ENOUGH),
    ({"year_div_100": 19, "year_mod_100": 84, "month": 1}, NOT_ENOUGH),
    ({"year_div_100": 19, "year_mod_100": 84, "month": 1, "day": 2}, at(1984, 1, 2)),
    ({"year_div_100": 19, "month": 1, "day": 2}, NOT_ENOUGH),
    ({"year_mod_100": 70, "month": 1, "day": 2}, at(1970, 1, 2)),
    ({"year_mod_100": 69, "month": 1, "day": 2}, at(2069, 1, 2)),
    ({"year_div_100": 19, "year_mod_100": 83, "month": 2, "day": 29}, OUT_OF_RANGE),
    ({"year_div_100": 19, "year_mod_100": 83, "month": 12, "day": 31}, at(1983, 12, 31)),
    ({"year_div_100": 0, "year_mod_100": 0, "month": 1, "day": 1}, at(0, 1, 1)),
    ({"year_div_100": 2621, "year_mod_100": 42, "month": 1, "day": 1}, at(262142, 1, 1)),
    ({"year_div_100": 2621, "year_mod_100": 43, "month": 1, "day": 1}, OUT_OF_RANGE),
    ({"year": 1984, "year_div_100": 19, "month": 1, "day": 1}, at(1984, 1, 1)),
    ({"year": 1984, "year_div_100": 20, "month": 1, "day": 1}, IMPOSSIBLE),
    ({"year": 1984, "year_mod_100": 83, "month": 1, "day": 1}, IMPOSSIBLE),
    ({"year": 1984, "year_div_100": 18, "year_mod_100": 94, "month": 1, "day": 1}, IMPOSSIBLE),
    ({"year": -1, "year_div_100": 0, "month": 1, "day": 1}, IMPOSSIBLE),
    ({"year": -1, "year_mod_100": 99, "month": 1, "day": 1}, IMPOSSIBLE),
    ({"year": 2000, "quarter": 1}, NOT_ENOUGH),
    ({"year": 2000, "quarter": 2, "month": 4, "day": 1}, at(2000, 4, 1)),
    ({"year": 2000, "quarter": 2, "month": 3, "day": 31}, IMPOSSIBLE),
    ({"year": 2000, "week_from_mon": 0}, NOT_ENOUGH),
    ({"year": 2000, "weekday": SUN}, NOT_ENOUGH),
    ({"year": 2000, "week_from_mon": 0, "weekday": FRI}, IMPOSSIBLE),
    ({"year": 2000, "week_from_sun": 0, "weekday": FRI}, IMPOSSIBLE),
    ({"year": 2000, "week_from_mon": 0, "weekday": SAT}, at(2000, 1, 1)),
    ({"year": 2000, "week_from_sun": 0, "weekday": SAT}, at(2000, 1, 1)),
    ({"year": 2000, "week_from_mon": 0, "weekday": SUN}, at(2000, 1, 2)),
    ({"year": 2000, "week_from_sun": 1, "weekday": SUN}, at(2000, 1, 2)),
    ({"year": 2000, "week_from_mon": 1, "weekday": MON}, at(2000, 1, 3)),
    ({"year": 2000, "week_from_sun": 1, "weekday": MON}, at(2000, 1, 3)),
    ({"year": 2000, "week_from_mon": 1, "weekday": SAT}, at(2000, 1, 8)),
    ({"year": 2000, "week_from_mon": 1, "weekday": SUN}, at(2000, 1, 9)),
    ({"year": 2000, "week_from_sun": 2, "weekday": SUN}, at(2000, 1, 9)),
    ({"year": 2000, "week_from_sun": 52, "weekday": SAT}, at(2000, 12, 30)),
    ({"year": 2000, "week_from_sun": 53, "weekday": SUN}, at(2000, 12, 31)),
    ({"year": 2000, "week_from_sun": 53, "weekday": MON}, IMPOSSIBLE),
    ({"year": 2006, "week_from_sun": 0, "weekday": SAT}, IMPOSSIBLE),
    ({"year": 2006, "week_from_sun": 1, "weekday": SUN}, at(2006, 1, 1)),
    ({"year": 2000, "week_from_mon": 1, "week_from_sun": 1, "weekday": SAT}, at(2000, 1, 8)),
    ({"year": 2000, "week_from_mon": 1, "week_from_sun": 1, "weekday": SUN}, IMPOSSIBLE),
    ({"isoyear": 2004, "isoweek": 53}, NOT_ENOUGH),
    ({"isoyear": 2004, "isoweek": 53, "weekday": FRI}, at(2004, 12, 31)),
    ({"isoyear": 2004, "isoweek": 53, "weekday": SAT}, at(2005, 1, 1)),
    ({"isoyear": 2005, "isoweek": 0, "weekday": THU}, OUT_OF_RANGE),
    ({"isoyear": 2005, "isoweek": 53, "weekday": THU}, OUT_OF_RANGE),
    ({"isoyear": 2005, "isoweek": 5, "weekday": THU}, at(2005, 2, 3)),
    ({"ordinal": 123}, NOT_ENOUGH),
    ({"year": 2000, "ordinal": 0}, OUT_OF_RANGE),
    ({"year": 2000, "ordinal": 60}, at(2000, 2, 29)),
    ({"year": 2000, "ordinal": 366}, at(2000, 12, 31)),
    ({"year": 2000, "ordinal": 367}, OUT_OF_RANGE),
    ({"year": 2100, "ordinal": 60}, at(2100, 3, 1)),
    ({"year": 2100, "ordinal": 366}, OUT_OF_RANGE),
    ({"year": 2014, "month": 12, "day": 31, "ordinal": 365, "isoyear": 2015, "isoweek": 1,
      "week_from_sun": 52, "week_from_mon": 52, "weekday": WED}, at(2014, 12, 31)),
    ({"year": 2014, "month": 12, "ordinal": 365, "isoyear": 2015, "isoweek": 1,
      "week_from_sun": 52, "week_from_mon": 52}, at(2014, 12, 31)),
    ({"year": 2014, "month": 12, "day": 31, "ordinal": 365, "isoyear": 2014, "isoweek": 53,
      "week_from_sun": 52, "week_from_mon": 52, "weekday": WED}, IMPOSSIBLE),
    ({"year": 2012, "isoyear": 2015, "isoweek": 1, "week_from_sun": 52,
      "week_from_mon": 52}, NOT_ENOUGH),
    ({"year_div_100": 20, "isoyear_mod_100": 15, "ordinal": 366}, NOT_ENOUGH),
])
def test_parsed_to_naive_date(fields, want):
    assert _date(**fields) == want


def _fields(s, fmt):
    """``format::parse`` into a Parsed: the set fields, or the error text."""
    from lexfast.builtins.chrono import _parse_internal, _parse_items, _Parsed, _ParseError

    p = _Parsed()
    try:
        if _parse_internal(p, s, _parse_items(fmt)):
            return TOO_LONG
    except _ParseError as e:
        return "parse: " + str(e)
    return {k: getattr(p, k) for k in _Parsed.__slots__ if getattr(p, k) is not None}


# chrono: format::parse::tests::test_parse_numeric (Year = %Y, Ordinal = %j)
@pytest.mark.parametrize("s, fmt, want", [
    ("1987", "%Y", {"year": 1987}),
    ("1987 ", "%Y", TOO_LONG),
    ("0x12", "%Y", TOO_LONG),
    ("x123", "%Y", INVALID),
    ("0000", "%Y", {"year": 0}),
    (" \t987", "%Y", {"year": 987}),
    (" \t987\U0001f920", "%Y\U0001f920", {"year": 987}),
    ("5\0", "%Y", TOO_LONG),
    ("\x005", "%Y", INVALID),
    ("", "%Y", TOO_SHORT),
    ("12345", "%Y5", {"year": 1234}),
    ("12341234", "%Y%Y", {"year": 1234}),
    ("1234 1234", "%Y%Y", {"year": 1234}),
    ("1234 1235", "%Y%Y", IMPOSSIBLE),
    ("1234 1234", "%Yx%Y", INVALID),
    ("1234x1234", "%Yx%Y", {"year": 1234}),
    ("1234xx1234", "%Yx%Y", INVALID),
    ("1234xx1234", "%Yxx%Y", {"year": 1234}),
    ("-42", "%Y", {"year": -42}),
    ("+0042", "%Y", {"year": 42}),
    ("-42195", "%Y", {"year": -42195}),
    ("\u221242195", "%Y", INVALID),
    ("  +42195", "%Y", {"year": 42195}),
    ("  -   42", "%Y", INVALID),
    ("-", "%Y", TOO_SHORT),
    ("+", "%Y", TOO_SHORT),
    ("345", "%j", {"ordinal": 345}),
    ("+345", "%j", INVALID),
    ("-345", "%j", INVALID),
    (" 345", "%j", {"ordinal": 345}),
    ("345 ", "%j ", {"ordinal": 345}),
    ("345\U0001f920", "%j", TOO_LONG),
    ("\u0363345", "%j", INVALID),
])
def test_parse_numeric_fields(s, fmt, want):
    assert _fields(s, fmt) == want


# chrono: format::parse::tests::test_parse_fixed, test_parse_fixed_nanosecond,
# test_parse_fixed_timezone_offset (as strftime specifiers)
@pytest.mark.parametrize("s, fmt, want", [
    ("ApR", "%b", {"month": 4}),
    ("\u0363APR", "%b", INVALID),
    ("April", "%b", TOO_LONG),
    ("A", "%b", TOO_SHORT),
    ("Sol", "%b", INVALID),
    ("Apri", "%B", TOO_LONG),
    ("April", "%B", {"month": 4}),
    ("Aprill", "%Bl", {"month": 4}),
    ("Aprl", "%Bl", {"month": 4}),
    ("April", "%Bil", TOO_SHORT),  # no backtracking
    ("tHu", "%a", {"weekday": THU}),
    ("Thursday", "%a", TOO_LONG),
    ("T", "%a", TOO_SHORT),
    ("The", "%a", INVALID),
    ("Thurs", "%A", TOO_LONG),
    ("Thursday", "%A", {"weekday": THU}),
    ("Thus", "%As", {"weekday": THU}),
    ("Thursday", "%Arsday", TOO_SHORT),
    ("AM", "%P", {"hour_div_12": 0}),
    ("pm", "%p", {"hour_div_12": 1}),
    (" Am", " %P", {"hour_div_12": 0}),
    ("Am\U0001f920", "%P\U0001f920", {"hour_div_12": 0}),
    ("\U0001f920Am", "\U0001f920%P", {"hour_div_12": 0}),
    ("\u0363am", "%P", INVALID),
    (" Am", "%P", INVALID),
    ("a.m.", "%P", INVALID),
    ("ame", "%P", TOO_LONG),
    ("x", "%P", TOO_SHORT),
    ("xx", "%P", INVALID),
    ("", "%.f", {}),
    (".", "%.f", TOO_SHORT),
    ("4", "%.f", TOO_LONG),
    ("4", "%.f%S", {"second": 4}),
    (".42195", "%.f", {"nanosecond": 421_950_000}),
    (".421950803547", "%.f", {"nanosecond": 421_950_803}),
    (".0000000035", "%.f", {"nanosecond": 3}),
    (".0000000009999999999999999999999999", "%.f", {"nanosecond": 0}),
    (".4x", "%.f", TOO_LONG),
    (".  4", "%.f", INVALID),
    ("  .4", "%.f", TOO_LONG),
    ("", "%.3f", {}),
    (".12", "%.3f", TOO_SHORT),
    (".1234", "%.3f4", {"nanosecond": 123_000_000}),
    (".12345", "%.6f", TOO_SHORT),
    (".1234567890", "%.9f0", {"nanosecond": 123_456_789}),
    ("", "%3f", TOO_SHORT),
    (".", "%3f", TOO_SHORT),
    ("1234567", "%6f7", {"nanosecond": 123_456_000}),
    ("12", "%z", INVALID),
    ("+1", "%z", TOO_SHORT),
    ("+123", "%z", TOO_SHORT),
    ("+1234", "%z", {"offset": 45_240}),
    ("+12345", "%z", TOO_LONG),
    ("+12:", "%z", TOO_SHORT),
    ("+12:34", "%:z", {"offset": 45_240}),
    ("-12 :: 34", "%z", {"offset": -45_240}),
    ("+12", "%#z", {"offset": 43_200}),
    ("z", "%#z", {"offset": 0}),
])
def test_parse_fixed_fields(s, fmt, want):
    assert _fields(s, fmt) == want


def _datetime(**fields):
    from lexfast.builtins.chrono import _Parsed, _ParseError, _to_naive_datetime

    p = _Parsed()
    for k, v in fields.items():
        setattr(p, k, v)
    try:
        days, hh, mi, ss, nano = _to_naive_datetime(p)
    except _ParseError as e:
        return "parse: " + str(e)
    return (days * 86400 + hh * 3600 + mi * 60 + ss) * NS + nano


FULL = {"year": 2014, "year_div_100": 20, "year_mod_100": 14, "month": 12, "day": 31,
        "ordinal": 365, "isoyear": 2015, "isoyear_div_100": 20, "isoyear_mod_100": 15,
        "isoweek": 1, "week_from_sun": 52, "week_from_mon": 52, "weekday": WED,
        "hour_div_12": 0, "hour_mod_12": 4, "minute": 26, "second": 40,
        "nanosecond": 12_345_678}


# chrono: format::parsed::tests::test_parsed_to_naive_time and
# test_parsed_to_naive_datetime_with_offset (offset 0, the naive parse's)
@pytest.mark.parametrize("fields, want", [
    ({"year": 2015, "month": 1, "day": 30, "hour_div_12": 0}, NOT_ENOUGH),
    ({"year": 2015, "month": 1, "day": 30, "hour_div_12": 0, "hour_mod_12": 1}, NOT_ENOUGH),
    ({"year": 2015, "month": 1, "day": 30, "hour_mod_12": 1, "minute": 23}, NOT_ENOUGH),
    ({"year": 2015, "month": 1, "day": 30, "hour_div_12": 0, "hour_mod_12": 1, "minute": 23,
      "nanosecond": 456_789_012}, NOT_ENOUGH),
    ({"year": 2015, "month": 1, "day": 30, "hour_div_12": 1, "hour_mod_12": 2, "minute": 38},
     at(2015, 1, 30, 14, 38)),
    ({"year": 2012, "ordinal": 34, "hour_div_12": 0, "hour_mod_12": 5, "minute": 6,
      "second": 7, "nanosecond": 890_123_456}, at(2012, 2, 3, 5, 6, 7, 890_123_456)),
    ({"year": 2015, "month": 1, "day": 30, "hour_div_12": 0, "hour_mod_12": 1, "minute": 23,
      "second": 60, "nanosecond": 999_999_999}, at(2015, 1, 30, 1, 23, 59) + 1_999_999_999),
    ({}, NOT_ENOUGH),
    ({"timestamp": 0}, 0),
    ({"timestamp": 1, "nanosecond": 1}, NS + 1),
    ({"timestamp": 1_420_000_000}, at(2014, 12, 31, 4, 26, 40)),
    ({"timestamp": -0x1_0000_0000}, at(1833, 11, 24, 17, 31, 44)),
    (dict(FULL, timestamp=1_420_000_000), at(2014, 12, 31, 4, 26, 40, 12_345_678)),
    (dict(FULL, timestamp=1_419_999_999), IMPOSSIBLE),
    ({"timestamp": (at(0, 1, 1)) // NS}, at(0, 1, 1)),
    ({"timestamp": at(262142, 12, 31, 23, 59, 59) // NS}, at(262142, 12, 31, 23, 59, 59)),
    ({"timestamp": at(262142, 12, 31, 23, 59, 59) // NS + 1}, OUT_OF_RANGE),
    ({"second": 59, "timestamp": 1_341_100_798}, IMPOSSIBLE),
    ({"second": 59, "timestamp": 1_341_100_799}, at(2012, 6, 30, 23, 59, 59)),
    ({"second": 59, "timestamp": 1_341_100_800}, IMPOSSIBLE),
    ({"second": 60, "timestamp": 1_341_100_799}, at(2012, 6, 30, 23, 59, 59) + NS),
    ({"second": 60, "timestamp": 1_341_100_800}, at(2012, 6, 30, 23, 59, 59) + NS),
    ({"second": 0, "timestamp": 1_341_100_800}, at(2012, 7, 1)),
    ({"second": 1, "timestamp": 1_341_100_800}, IMPOSSIBLE),
    ({"second": 60, "timestamp": 1_341_100_801}, IMPOSSIBLE),
])
def test_parsed_to_naive_datetime(fields, want):
    assert _datetime(**fields) == want
