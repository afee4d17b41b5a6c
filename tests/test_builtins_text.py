"""The ``str``, ``int`` and ``float`` builtins (lexfast/builtins/text.py and
its compiled hot path _text_c.pyx), through ``h.dispatch``, against the
reference's ``builtins.rs``. Run once per core (``LEXFAST_NO_EXTENSIONS=1``
for the pure-Python one): the hot ops are the compiled ones exactly when the
compiled kernel is in use.

Upstream cases are cited by their test name in ``tests/<file>.rs``. The
expected strings of ``float.to_str``, ``str.to_float``/``to_int``, the case
maps and ``trim`` were produced by rustc 1.95 (``{}``, ``parse``,
``to_uppercase``/``to_lowercase``, ``char::is_whitespace``).
"""

from __future__ import annotations

import glob
import math
import os
import subprocess
import sys

import pytest

import lexfast
from lexfast import DefaultHandler, EffectError, Policy
from lexfast import builtins as B
from lexfast.builtins import text as T
from lexfast.kernel import NONE, some

I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)


def _flag(name):
    return os.environ.get(name, "").strip() not in ("", "0")


@pytest.fixture(scope="module")
def h():
    handler = DefaultHandler(Policy.pure())
    yield handler
    handler.close()


def d(h, kind, op, *args):
    return h.dispatch(kind, op, list(args))


def fails(h, kind, op, args, msg):
    with pytest.raises(EffectError) as e:
        h.dispatch(kind, op, list(args))
    assert str(e.value) == msg


# -- the table and the compiled hot path ---------------------------------------

def test_the_group_is_in_the_table():
    ops = {"str": {"is_empty", "len", "char_at", "concat", "to_int", "split", "join",
                   "starts_with", "ends_with", "contains", "cmp", "replace", "trim",
                   "to_upper", "to_lower", "strip_prefix", "strip_suffix", "slice",
                   "to_float"},
           "int": {"to_str", "to_float", "abs", "min", "max"},
           "float": {"to_int", "to_str"}}
    for kind, names in ops.items():
        assert names <= set(B.TABLE[kind]), kind
        for op in names:
            assert B.TABLE[kind][op] is T.BUILTINS[(kind, op)]


def test_the_hot_ops_follow_the_kernel():
    if _flag("LEXFAST_NO_EXTENSIONS") or not lexfast.COMPILED:
        assert not T.TEXT_COMPILED
        assert B.TABLE["str"]["len"] is T.str_len
    elif _flag("LEXFAST_REQUIRE_EXTENSIONS"):
        assert T.TEXT_COMPILED
    if T.TEXT_COMPILED:
        assert B.TABLE["str"]["len"] is not T.str_len
        assert B.TABLE["str"]["len"].__module__ == "lexfast.builtins._text_c"


def test_the_compiled_text_ops_are_not_stale():
    here = os.path.dirname(T.__file__)
    pyx = os.path.join(here, "_text_c.pyx")
    if not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(here)), "setup.py")):
        pytest.skip("an installed build (its .pyx ships beside it for reference)")
    for so in glob.glob(os.path.join(here, "_text_c.*.so")):
        assert os.path.getmtime(so) >= os.path.getmtime(pyx), \
            f"{so} is older than {pyx}: rebuild it (python setup.py build_ext --inplace)"


# -- str.len, is_empty, char_at ------------------------------------------------

def test_len_is_utf8_bytes(h):
    assert d(h, "str", "len", "") == 0
    assert d(h, "str", "len", "hello") == 5
    assert d(h, "str", "len", "héllo") == 6
    assert d(h, "str", "len", "日本") == 6
    assert d(h, "str", "len", "😀") == 4
    s = "ü" * 1000
    assert d(h, "str", "len", s) == 2000
    assert d(h, "str", "len", s) == 2000  # again: the cached UTF-8 form
    assert d(h, "str", "len", "\ud800") == 3  # a lone surrogate: its 3 bytes
    fails(h, "str", "len", [3], "expected Str, got Int(3)")
    fails(h, "str", "len", [], "missing argument")
    fails(h, "str", "len", [b"ab"], 'expected Str, got Bytes([97, 98])')


def test_len_accepts_a_str_subclass(h):
    class S(str):
        pass
    assert d(h, "str", "len", S("héllo")) == 6
    assert d(h, "str", "concat", S("a"), S("b")) == "ab"


def test_is_empty(h):
    assert d(h, "str", "is_empty", "") is True
    assert d(h, "str", "is_empty", " ") is False
    fails(h, "str", "is_empty", [None], "expected Str, got Unit")
    fails(h, "str", "is_empty", [], "missing argument")


def test_char_at_indexes_utf8_bytes_and_answers_ascii_only(h):
    assert d(h, "str", "char_at", "abc", 0) == "a"
    assert d(h, "str", "char_at", "abc", 2) == "c"
    assert d(h, "str", "char_at", "abc", 3) == ""
    assert d(h, "str", "char_at", "abc", -1) == ""
    assert d(h, "str", "char_at", "abc", I64_MAX) == ""
    assert d(h, "str", "char_at", "abc", I64_MIN) == ""
    # "héllo": h=0, é=1..2 (not ASCII), l=3
    assert d(h, "str", "char_at", "héllo", 1) == ""
    assert d(h, "str", "char_at", "héllo", 2) == ""
    assert d(h, "str", "char_at", "héllo", 3) == "l"
    assert d(h, "str", "char_at", "héllo", 5) == "o"
    assert d(h, "str", "char_at", "héllo", 6) == ""
    assert d(h, "str", "char_at", "\x00\x7f", 1) == "\x7f"
    fails(h, "str", "char_at", ["abc", 1.0], "expected Int, got Float(1.0)")
    fails(h, "str", "char_at", ["abc", True], "expected Int, got Bool(true)")
    fails(h, "str", "char_at", ["abc"], "missing argument")
    fails(h, "str", "char_at", [1, 0], "expected Str, got Int(1)")


# -- concat, split, join --------------------------------------------------------

def test_concat(h):
    # string_interp.rs expression_in_braces; str_plus_operator.rs str_plus_str_concatenates
    assert d(h, "str", "concat", "x", "y") == "xy"
    assert d(h, "str", "concat", "hello, ", "world") == "hello, world"
    assert d(h, "str", "concat", "", "") == ""
    assert d(h, "str", "concat", "é", "😀") == "é😀"
    fails(h, "str", "concat", ["a", 1], "expected Str, got Int(1)")
    fails(h, "str", "concat", ["a"], "missing argument")
    fails(h, "str", "concat", [None, "a"], "expected Str, got Unit")


def test_split(h):
    assert d(h, "str", "split", "a,b,,c", ",") == ["a", "b", "", "c"]
    assert d(h, "str", "split", "", ",") == [""]
    assert d(h, "str", "split", "abc", ",") == ["abc"]
    assert d(h, "str", "split", ",a,", ",") == ["", "a", ""]
    assert d(h, "str", "split", "a::b:::c", "::") == ["a", "b", ":c"]
    assert d(h, "str", "split", "aaa", "aa") == ["", "a"]
    # an empty separator: the chars (codepoints), no empty ends
    assert d(h, "str", "split", "héy😀", "") == ["h", "é", "y", "😀"]
    assert d(h, "str", "split", "", "") == []
    assert d(h, "str", "split", "a b", " ") == ["a", "b"]
    assert d(h, "str", "split", "a  b", " ") == ["a", "", "b"]  # not Python's split()
    fails(h, "str", "split", ["a", None], "expected Str, got Unit")
    fails(h, "str", "split", ["a"], "missing argument")


def test_join(h):
    assert d(h, "str", "join", ["a", "b", "c"], ", ") == "a, b, c"
    assert d(h, "str", "join", [], ",") == ""
    assert d(h, "str", "join", ["x"], ",") == "x"
    assert d(h, "str", "join", ["", ""], "é") == "é"
    fails(h, "str", "join", [["a", 1], ","], "str.join element must be Str, got Int(1)")
    fails(h, "str", "join", [["a", None, 2], ","], "str.join element must be Str, got Unit")
    fails(h, "str", "join", ["ab", ","], 'expected List, got Str("ab")')
    fails(h, "str", "join", [["a"], 1], "expected Str, got Int(1)")
    fails(h, "str", "join", [["a"]], "missing argument")
    # the separator is checked before the elements, as the reference does
    fails(h, "str", "join", [[1], 2], "expected Str, got Int(2)")


def test_join_does_not_mutate_its_arguments(h):
    parts = ["a", "b"]
    args = [parts, "-"]
    assert h.dispatch("str", "join", args) == "a-b"
    assert args == [["a", "b"], "-"] and args[0] is parts


# -- starts_with, ends_with, contains (str_ops.rs) --------------------------------

def test_starts_with(h):
    # str_ops.rs starts_with
    assert d(h, "str", "starts_with", "hello world", "hello") is True
    assert d(h, "str", "starts_with", "hello", "hello world") is False
    assert d(h, "str", "starts_with", "", "") is True
    assert d(h, "str", "starts_with", "abc", "") is True
    fails(h, "str", "starts_with", ["abc", 1], "expected Str, got Int(1)")
    fails(h, "str", "starts_with", ["abc"], "missing argument")


def test_ends_with(h):
    # str_ops.rs ends_with
    assert d(h, "str", "ends_with", "hello world", "world") is True
    assert d(h, "str", "ends_with", "hello", "world") is False
    assert d(h, "str", "ends_with", "hello.lex", ".lex") is True
    assert d(h, "str", "ends_with", "abc", "") is True
    fails(h, "str", "ends_with", [1, "a"], "expected Str, got Int(1)")


def test_contains(h):
    # str_ops.rs contains
    assert d(h, "str", "contains", "hello world", "lo wo") is True
    assert d(h, "str", "contains", "hello", "xyz") is False
    assert d(h, "str", "contains", "hello", "") is True
    assert d(h, "str", "contains", "", "") is True
    assert d(h, "str", "contains", "héllo", "él") is True
    fails(h, "str", "contains", ["a", []], "expected Str, got List([])")


# -- slice (str_slice_clamp.rs) ---------------------------------------------------

@pytest.mark.parametrize("s,lo,hi,want", [
    ("hello", 1, 4, "ell"),                                  # in_range_slice_returns_substring
    ("MIT License (32 char-ish here)", 0, 64,
     "MIT License (32 char-ish here)"),                      # hi_past_end_clamps_to_len
    ("hello", 100, 200, ""),                                 # lo_past_end_yields_empty_string
    ("hello", -5, 3, "hel"),                                 # negative_lo_clamps_to_zero
    ("hello", 0, -1, ""),                                    # negative_hi_clamps_to_zero_yielding_empty
    ("héllo", 1, 4, "éll"),                                  # multibyte_codepoint_slice_works
    ("héllo", 0, 5, "héllo"),                                # multibyte_full_string_slice
    ("", 0, 10, ""),                                         # empty_string_with_any_range_is_empty
    ("hello", 2, 2, ""),
    ("a😀b", 1, 2, "😀"),
    ("hello", I64_MIN, I64_MAX, "hello"),
    ("hello", -3, -1, ""),
])
def test_slice(h, s, lo, hi, want):
    assert d(h, "str", "slice", s, lo, hi) == want


def test_slice_reversed_range_is_an_error(h):
    # lo_greater_than_hi_after_clamping_errors; the clamp to the length comes after
    fails(h, "str", "slice", ["hello", 4, 2], "str.slice: reversed range [4..2]")
    fails(h, "str", "slice", ["hello", 200, 100], "str.slice: reversed range [200..100]")
    fails(h, "str", "slice", ["hello", 3, -1], "str.slice: reversed range [3..0]")
    fails(h, "str", "slice", ["hello", 1], "missing argument")
    fails(h, "str", "slice", ["hello", "1", 2], 'expected Int, got Str("1")')
    fails(h, "str", "slice", ["hello", 1, 2.0], "expected Int, got Float(2.0)")
    fails(h, "str", "slice", ["hello", 1 << 63, 2],
          f"expected Int, got an integer outside i64: {1 << 63}")


# -- to_int, to_float ------------------------------------------------------------

@pytest.mark.parametrize("s,want", [
    ("5", 5), ("+5", 5), ("-5", -5), ("0", 0), ("-0", 0), ("00012", 12),
    ("9223372036854775807", I64_MAX), ("-9223372036854775808", I64_MIN),
    ("0000000000000000000000000009223372036854775807", I64_MAX),
    ("9223372036854775808", None), ("-9223372036854775809", None), ("1" * 400, None),
    ("", None), ("+", None), ("-", None), (" 5", None), ("5 ", None), ("1_0", None),
    ("1e3", None), ("1.0", None), ("0x10", None), ("+-1", None), ("--1", None),
    ("١٢", None), ("１２", None), ("²", None), ("5\n", None),
])
def test_to_int_is_rusts_parse(h, s, want):
    assert d(h, "str", "to_int", s) == (NONE if want is None else some(want))


@pytest.mark.parametrize("s,want", [
    ("5", 5.0), ("+5", 5.0), ("-5", -5.0), ("1e3", 1000.0), ("1E3", 1000.0),
    ("1e+5", 1e5), ("1e-5", 1e-5), (".5", 0.5), ("5.", 5.0), ("-.5", -0.5),
    ("+.5e-3", 0.0005), ("1.e1", 10.0), ("0.1", 0.1), ("-0", -0.0),
    ("inf", math.inf), ("-inf", -math.inf), ("+inf", math.inf), ("INF", math.inf),
    ("Infinity", math.inf), ("-infinity", -math.inf), ("1e400", math.inf),
    ("1e-400", 0.0), ("1e99999999999999999999", math.inf), ("0." + "1" * 500, 0.1111111111111111),
    ("", None), (".", None), ("e3", None), ("1e", None), ("1e+", None), ("+", None),
    (" 5", None), ("5 ", None), ("1_0", None), ("0x10", None), ("1.5e3.2", None),
    ("1e5e5", None), ("infinit", None), ("infinityx", None), ("nana", None), ("1d", None),
    ("+-1", None), ("+e1", None), (".e1", None), ("١٢", None), ("½", None), ("12\t", None),
])
def test_to_float_is_rusts_parse(h, s, want):
    got = d(h, "str", "to_float", s)
    if want is None:
        assert got == NONE
    else:
        assert got.name == "Some" and type(got.args[0]) is float
        assert got.args[0] == want and math.copysign(1, got.args[0]) == math.copysign(1, want)


@pytest.mark.parametrize("s", ["nan", "NaN", "-nan", "+NaN", "nAn"])
def test_to_float_nan(h, s):
    got = d(h, "str", "to_float", s)
    assert got.name == "Some" and math.isnan(got.args[0])


def test_to_int_to_float_argument_errors(h):
    fails(h, "str", "to_int", [5], "expected Str, got Int(5)")
    fails(h, "str", "to_int", [], "missing argument")
    fails(h, "str", "to_float", [5.0], "expected Str, got Float(5.0)")


# -- cmp (str_ops.rs) --------------------------------------------------------------

def test_cmp(h):
    # cmp_returns_neg_one_zero_one
    for a, b, want in [("a", "b", -1), ("b", "a", 1), ("abc", "abc", 0), ("ab", "abc", -1),
                       ("abc", "ab", 1), ("", "a", -1), ("", "", 0),
                       # cmp_iso_8601_datetime_is_byte_order
                       ("2026-05-15T10:00:00Z", "2026-05-15T10:00:01Z", -1),
                       ("2026-05-16T00:00:00Z", "2026-05-15T23:59:59Z", 1),
                       # UTF-8 byte order = code point order (not UTF-16's)
                       ("\uffff", "😀", -1), ("é", "z", 1), ("Z", "a", -1)]:
        assert d(h, "str", "cmp", a, b) == want, (a, b)
    fails(h, "str", "cmp", ["a", 1], "expected Str, got Int(1)")


def test_cmp_sign_matches_lt():
    # cmp_total_order_sign_matches_lt_operator (the VM's `<` on Str is byte order)
    pairs = [("alpha", "beta"), ("beta", "alpha"), ("", "x"), ("x", ""), ("foo", "foo"),
             ("foo", "foobar")]
    h = DefaultHandler(Policy.pure())
    try:
        for a, b in pairs:
            assert (d(h, "str", "cmp", a, b) < 0) == (a.encode() < b.encode())
    finally:
        h.close()


# -- replace, trim, case (str_ops.rs) -------------------------------------------------

def test_replace(h):
    # replace_works
    assert d(h, "str", "replace", "hello world hello", "hello", "hi") == "hi world hi"
    assert d(h, "str", "replace", "abc", "z", "Z") == "abc"
    assert d(h, "str", "replace", "abc", "", "-") == "-a-b-c-"  # Rust's str::replace too
    assert d(h, "str", "replace", "aaa", "aa", "b") == "ba"
    assert d(h, "str", "replace", "héllo", "é", "e") == "hello"
    fails(h, "str", "replace", ["a", "b"], "missing argument")
    fails(h, "str", "replace", ["a", "b", 1], "expected Str, got Int(1)")


def test_trim(h):
    # trim_works
    assert d(h, "str", "trim", "  hello  ") == "hello"
    assert d(h, "str", "trim", "\n\thello\n") == "hello"
    assert d(h, "str", "trim", "") == ""
    assert d(h, "str", "trim", " \u3000\xa0\u2028\x85a b\u205f\x0b\x0c\r") == "a b"
    # Python's isspace has U+001C..U+001F (separators); White_Space does not
    assert d(h, "str", "trim", "\x1ca\x1f") == "\x1ca\x1f"
    # nor the zero-width space or the BOM
    assert d(h, "str", "trim", "\u200ba\ufeff") == "\u200ba\ufeff"
    fails(h, "str", "trim", [1], "expected Str, got Int(1)")


def test_case(h):
    # case_ops
    assert d(h, "str", "to_upper", "Hello World") == "HELLO WORLD"
    assert d(h, "str", "to_lower", "Hello World") == "hello world"
    assert d(h, "str", "to_upper", "straße") == "STRASSE"
    assert d(h, "str", "to_upper", "ﬁ") == "FI"
    assert d(h, "str", "to_lower", "İ") == "i\u0307"
    # final sigma, as Rust's to_lowercase applies it
    assert d(h, "str", "to_lower", "ΑΣ") == "ας"
    assert d(h, "str", "to_lower", "ΑΣ ΑΣ") == "ας ας"
    assert d(h, "str", "to_lower", "Σ") == "σ"
    assert d(h, "str", "to_lower", "ΑΣΑ") == "ασα"
    assert d(h, "str", "to_lower", "Α.Σ") == "α.ς"
    assert d(h, "str", "to_lower", "ΣΑ") == "σα"
    # letters newer than Python 3.11's Unicode, mapped as Rust 1.95 maps them
    assert d(h, "str", "to_upper", "\u019b") == "\ua7dc"
    assert d(h, "str", "to_upper", "a\u0264") == "A\ua7cb"
    assert d(h, "str", "to_lower", "\ua7cbX") == "\u0264x"
    assert d(h, "str", "to_lower", "\U00010d50") == "\U00010d70"
    fails(h, "str", "to_upper", [1], "expected Str, got Int(1)")
    fails(h, "str", "to_lower", [], "missing argument")


def test_strip_prefix_suffix(h):
    # str_ops.rs strip_prefix, strip_suffix
    assert d(h, "str", "strip_prefix", "/weather/SF", "/weather/") == some("SF")
    assert d(h, "str", "strip_prefix", "/forecast/Paris", "/weather/") == NONE
    assert d(h, "str", "strip_prefix", "hello", "hello") == some("")
    assert d(h, "str", "strip_prefix", "hello", "") == some("hello")
    assert d(h, "str", "strip_suffix", "hello.lex", ".lex") == some("hello")
    assert d(h, "str", "strip_suffix", "hello.txt", ".lex") == NONE
    assert d(h, "str", "strip_suffix", "hello", "") == some("hello")
    assert d(h, "str", "strip_suffix", "héllo", "llo") == some("hé")
    fails(h, "str", "strip_prefix", ["a", 1], "expected Str, got Int(1)")
    fails(h, "str", "strip_suffix", ["a"], "missing argument")


# -- int (std_int_duration.rs) ---------------------------------------------------------

def test_int_to_str(h):
    assert d(h, "int", "to_str", 0) == "0"
    assert d(h, "int", "to_str", -42) == "-42"
    assert d(h, "int", "to_str", I64_MAX) == "9223372036854775807"
    assert d(h, "int", "to_str", I64_MIN) == "-9223372036854775808"
    fails(h, "int", "to_str", [True], "expected Int, got Bool(true)")
    fails(h, "int", "to_str", [1.0], "expected Int, got Float(1.0)")
    fails(h, "int", "to_str", ["1"], 'expected Int, got Str("1")')
    fails(h, "int", "to_str", [], "missing argument")
    fails(h, "int", "to_str", [1 << 64], f"expected Int, got an integer outside i64: {1 << 64}")


def test_int_to_float(h):
    assert d(h, "int", "to_float", 3) == 3.0 and type(d(h, "int", "to_float", 3)) is float
    assert d(h, "int", "to_float", 2**53 + 1) == 9007199254740992.0  # round to nearest even
    assert d(h, "int", "to_float", I64_MAX) == 9.223372036854775807e18
    assert d(h, "int", "to_float", I64_MIN) == -9.223372036854775808e18
    fails(h, "int", "to_float", [1.5], "expected Int, got Float(1.5)")


def test_int_min_max_abs(h):
    # int_min_max_abs
    assert d(h, "int", "min", 3, 7) == 3
    assert d(h, "int", "max", 3, 7) == 7
    assert d(h, "int", "abs", -5) == 5
    assert d(h, "int", "abs", 5) == 5
    big = 9_007_199_254_740_993  # 2^53 + 1: no lossy Float round-trip
    assert d(h, "int", "max", big, 0) == big
    assert d(h, "int", "min", -big, 0) == -big
    assert d(h, "int", "min", I64_MIN, I64_MAX) == I64_MIN
    assert d(h, "int", "max", I64_MIN, I64_MAX) == I64_MAX
    assert d(h, "int", "abs", 0) == 0
    assert d(h, "int", "abs", -I64_MAX) == I64_MAX
    # i64::abs(i64::MIN) overflows; a release build (the reference's) wraps
    assert d(h, "int", "abs", I64_MIN) == I64_MIN
    fails(h, "int", "min", [1], "missing argument")
    fails(h, "int", "max", [1, 2.0], "expected Int, got Float(2.0)")
    fails(h, "int", "abs", [False], "expected Int, got Bool(false)")
    fails(h, "int", "abs", [-(1 << 63) - 1],
          f"expected Int, got an integer outside i64: {-(1 << 63) - 1}")


def test_int_ops_accept_an_int_subclass(h):
    class N(int):
        pass
    assert d(h, "int", "to_str", N(5)) == "5" and type(d(h, "int", "to_str", N(5))) is str
    assert d(h, "int", "abs", N(-5)) == 5
    assert d(h, "int", "min", N(2), 3) == 2
    assert d(h, "str", "slice", "hello", N(1), N(3)) == "el"


# -- float ----------------------------------------------------------------------------

@pytest.mark.parametrize("f,want", [
    (0.0, 0), (-0.0, 0), (1.9, 1), (-1.9, -1), (1e300, I64_MAX), (-1e300, I64_MIN),
    (math.inf, I64_MAX), (-math.inf, I64_MIN), (math.nan, 0), (2.0**63, I64_MAX),
    (-(2.0**63), I64_MIN), (2.0**63 - 1024, 9223372036854774784), (5e-324, 0),
])
def test_float_to_int_saturates(h, f, want):
    assert d(h, "float", "to_int", f) == want


@pytest.mark.parametrize("f,want", [
    (1.0, "1"), (-1.0, "-1"), (0.0, "0"), (-0.0, "-0"), (0.1, "0.1"), (1.5, "1.5"),
    (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "NaN"),
    (1e20, "100000000000000000000"), (1e-7, "0.0000001"), (1e16, "10000000000000000"),
    (123456789012345680.0, "123456789012345680"), (0.3, "0.3"), (2.5, "2.5"),
    (1e21, "1000000000000000000000"), (1.5e-10, "0.00000000015"),
    (5e-324, "0." + "0" * 323 + "5"), (1.7976931348623157e308, "17976931348623157" + "0" * 292),
    (0.1 + 0.2, "0.30000000000000004"), (100.0, "100"), (-2.0**63, "-9223372036854776000"),
    # a tie between two shortest forms: Rust takes the upper, Python's repr the even
    (-1113178120592002.25, "-1113178120592002.3"), (111659285584252.125, "111659285584252.13"),
])
def test_float_to_str_is_rusts_display(h, f, want):
    assert d(h, "float", "to_str", f) == want


def test_float_argument_errors(h):
    fails(h, "float", "to_str", [1], "expected Float, got Int(1)")
    fails(h, "float", "to_int", [None], "expected Float, got Unit")
    fails(h, "float", "to_int", [], "missing argument")


def test_float_to_str_agrees_with_rustc_when_available(tmp_path):
    """Many floats against rustc's own ``{}`` when rustc is on PATH."""
    import random
    import shutil
    import struct
    rustc = shutil.which("rustc")
    if rustc is None:
        pytest.skip("rustc not available")
    src = tmp_path / "disp.rs"
    src.write_text(
        "use std::io::{self, BufRead, Write};\n"
        "fn main() { let mut o = io::BufWriter::new(io::stdout());\n"
        " for l in io::stdin().lock().lines() { let l = l.unwrap();\n"
        "  let f = f64::from_bits(u64::from_str_radix(&l, 16).unwrap());\n"
        "  writeln!(o, \"{}\\t{}\", f, f as i64).unwrap(); } }\n")
    exe = tmp_path / "disp"
    r = subprocess.run([rustc, "-O", str(src), "-o", str(exe)], capture_output=True, timeout=300)
    if r.returncode != 0:
        pytest.skip(f"rustc failed: {r.stderr[-300:]!r}")
    rng = random.Random(15)
    bits = [rng.getrandbits(64) for _ in range(20000)]
    bits += [struct.unpack("<Q", struct.pack("<d", rng.getrandbits(rng.randint(1, 60))
                                            * 2.0 ** rng.randint(-80, 80)))[0]
             for _ in range(20000)]
    out = subprocess.run([str(exe)], input="".join(f"{b:016x}\n" for b in bits).encode(),
                         capture_output=True, check=True, timeout=120).stdout.decode()
    h = DefaultHandler(Policy.pure())
    try:
        for b, line in zip(bits, out.splitlines(), strict=True):
            f = struct.unpack("<d", struct.pack("<Q", b))[0]
            disp, as_int = line.split("\t")
            assert d(h, "float", "to_str", f) == disp, hex(b)
            assert d(h, "float", "to_int", f) == int(as_int), hex(b)
    finally:
        h.close()


# -- lexfast info lists the builtins ---------------------------------------------------

def test_info_lists_the_builtin_modules(tmp_path):
    # from an empty directory: `python -m` puts the cwd first on sys.path, and
    # the source tree (unbuilt in CI) must not shadow the lexfast under test
    import json
    p = subprocess.run([sys.executable, "-m", "lexfast", "info", "--json"], capture_output=True,
                       timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["builtins"] == {k: len(v) for k, v in sorted(B.TABLE.items())}
    assert data["builtins"]["str"] >= 19 and data["builtins"]["int"] >= 5
    p = subprocess.run([sys.executable, "-m", "lexfast", "info"], capture_output=True,
                       timeout=120, cwd=tmp_path)
    text = p.stdout.decode()
    total = sum(len(v) for v in B.TABLE.values())
    assert f"builtins: {total} ops in {len(B.TABLE)} modules" in text
    assert "str (" in text and "int (" in text


# -- the compiled hot ops against the Python definitions -------------------------------

_HOT = [("str", "is_empty", "str_is_empty", 1), ("str", "len", "str_len", 1),
        ("str", "char_at", "str_char_at", 2), ("str", "concat", "str_concat", 2),
        ("str", "split", "str_split", 2), ("str", "join", "str_join", 2),
        ("str", "starts_with", "str_starts_with", 2), ("str", "ends_with", "str_ends_with", 2),
        ("str", "contains", "str_contains", 2), ("str", "slice", "str_slice", 3),
        ("int", "to_str", "int_to_str", 1), ("int", "abs", "int_abs", 1),
        ("int", "min", "int_min", 2), ("int", "max", "int_max", 2)]


def _outcome(fn, args):
    try:
        return ("ok", fn(list(args)))
    except EffectError as e:
        return ("err", str(e))


def test_hot_ops_match_the_python_definitions():
    """On the compiled core the table holds _text_c's functions: each answers
    as text.py's Python definition does (values and error texts), over
    generated arguments of every shape."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    value = st.one_of(
        st.text(max_size=12), st.sampled_from(["", "a", "é", "a,b", "😀x", "\ud800"]),
        st.integers(min_value=-(1 << 64), max_value=1 << 64),
        st.sampled_from([0, 1, -1, 2, 5, I64_MIN, I64_MAX]), st.booleans(), st.none(),
        st.floats(allow_nan=False), st.lists(st.text(max_size=3), max_size=3),
        st.lists(st.one_of(st.text(max_size=2), st.integers()), max_size=3))
    arglists = st.lists(value, max_size=4)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(_HOT), arglists)
    def check(hot, args):
        kind, op, name, _ = hot
        assert _outcome(B.TABLE[kind][op], args) == _outcome(getattr(T, name), args)

    check()
    for kind, op, name, arity in _HOT:
        for args in ([], ["é" * 3, 1, 2][:arity], ["abc", "b", 1][:arity], [7, 8, 9][:arity]):
            assert _outcome(B.TABLE[kind][op], args) == _outcome(getattr(T, name), args)


def test_float_ops_compiled_match_python_definitions():
    """``float.to_str``/``to_int`` and ``int.to_float`` of the core in use give
    the Python definitions' values and errors (the compiled ones write
    integral floats below 2**53 themselves and hand the rest to
    ``f64_display``)."""
    import random
    import struct

    rng = random.Random(15)
    xs = [-0.0, 0.0, 3.0, -5.0, 1e20, 2.0**53, -(2.0**53), 2.0**53 + 2, 0.5, 1e-7,
          math.nan, math.inf, -math.inf, 9.3e18, -9.3e18, 9.223372036854775807e18]
    for _ in range(5000):
        xs.append(struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0])
        xs.append(float(rng.randint(-(2**60), 2**60)))
        xs.append(float(rng.randint(-(10**6), 10**6)))
    for x in xs:
        assert B.TABLE["float"]["to_str"]([x]) == T.f64_display(x), x
        assert B.TABLE["float"]["to_int"]([x]) == T.float_to_int([x]), x
    assert B.TABLE["float"]["to_str"]([-0.0]) == "-0"
    assert B.TABLE["int"]["to_float"]([-(2**63)]) == -9.223372036854775808e18
    for bad in ([], [1], ["x"], [True]):
        for fn, py in ((B.TABLE["float"]["to_str"], T.float_to_str),
                       (B.TABLE["float"]["to_int"], T.float_to_int)):
            with pytest.raises(EffectError) as got:
                fn(bad)
            with pytest.raises(EffectError) as want:
                py(bad)
            assert str(got.value) == str(want.value)
    for bad in ([], [1.5], [True], [2**63]):
        with pytest.raises(EffectError) as got:
            B.TABLE["int"]["to_float"](bad)
        with pytest.raises(EffectError) as want:
            T.int_to_float(bad)
        assert str(got.value) == str(want.value)
