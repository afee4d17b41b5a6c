"""The pure builtins ``bytes`` (lexfast/builtins/binary.py) through
``DefaultHandler.dispatch``, against the reference's ``builtins.rs``. Cases
ported from the upstream tests cite them (``bytes_and_net.rs`` and the
``bytes_builtin_tests`` module of ``builtins.rs``). Run on both cores
(``LEXFAST_NO_EXTENSIONS=1`` for the twin)."""

from __future__ import annotations

import itertools

import pytest

from lexfast import DefaultHandler, EffectError, Policy, err, ok

U = (1 << 64) - 1  # a negative i64 cast to usize: (1 << 64) + n


@pytest.fixture
def h():
    handler = DefaultHandler(Policy.pure())
    try:
        yield handler
    finally:
        handler.close()


def fails(h, op, args, msg):
    with pytest.raises(EffectError) as e:
        h.dispatch("bytes", op, args)
    assert str(e.value) == msg


def test_len(h):
    # bytes_and_net.rs bytes_len_works
    assert h.dispatch("bytes", "len", [b"hello"]) == 5
    assert h.dispatch("bytes", "len", [b""]) == 0
    assert h.dispatch("bytes", "len", [bytearray(b"abc")]) == 3
    assert h.dispatch("bytes", "len", [memoryview(b"abcd")]) == 4
    fails(h, "len", ["hello"], 'expected Bytes, got Str("hello")')
    fails(h, "len", [[1]], "expected Bytes, got List([Int(1)])")
    fails(h, "len", [], "missing argument")


def test_is_empty(h):
    assert h.dispatch("bytes", "is_empty", [b""]) is True
    assert h.dispatch("bytes", "is_empty", [b"\x00"]) is False
    assert h.dispatch("bytes", "is_empty", [bytearray()]) is True
    fails(h, "is_empty", [None], "expected Bytes, got Unit")


def test_eq(h):
    # bytes_and_net.rs bytes_eq_compares_content
    assert h.dispatch("bytes", "eq", [b"abc", b"abc"]) is True
    assert h.dispatch("bytes", "eq", [b"abc", b"abd"]) is False
    assert h.dispatch("bytes", "eq", [b"abc", bytearray(b"abc")]) is True
    fails(h, "eq", [b"a", "a"], 'expected Bytes, got Str("a")')
    fails(h, "eq", [b"a"], "missing argument")


def test_from_str_to_str_round_trip(h):
    # bytes_and_net.rs bytes_round_trip_through_str
    b = h.dispatch("bytes", "from_str", ["hello, lex"])
    assert b == b"hello, lex" and type(b) is bytes
    assert h.dispatch("bytes", "to_str", [b]) == ok("hello, lex")
    assert h.dispatch("bytes", "from_str", ["é€"]) == "é€".encode()
    assert h.dispatch("bytes", "to_str", [bytearray("é".encode())]) == ok("é")
    assert h.dispatch("bytes", "to_str", [b""]) == ok("")
    # a Python str's lone surrogate (no Lex Str holds one) is written, not refused
    lone = h.dispatch("bytes", "from_str", ["a\ud800"])
    assert lone == b"a\xed\xa0\x80"
    assert h.dispatch("bytes", "to_str", [lone]) == \
        err("invalid utf-8 sequence of 1 bytes from index 1")
    fails(h, "from_str", [b"x"], "expected Str, got Bytes([120])")
    fails(h, "to_str", ["x"], 'expected Bytes, got Str("x")')


def test_to_str_on_invalid_utf8_is_an_err_value(h):
    # bytes_and_net.rs bytes_to_str_returns_err_on_invalid_utf8; the text is
    # Rust's FromUtf8Error Display
    assert h.dispatch("bytes", "to_str", [b"\xff\xfe\xfd"]) == \
        err("invalid utf-8 sequence of 1 bytes from index 0")
    assert h.dispatch("bytes", "to_str", [b"ab\xe2\x82"]) == \
        err("incomplete utf-8 byte sequence from index 2")
    assert h.dispatch("bytes", "to_str", [b"ab\xe2\x82x"]) == \
        err("invalid utf-8 sequence of 2 bytes from index 2")
    assert h.dispatch("bytes", "to_str", [b"\xed\xa0\x80"]) == \
        err("invalid utf-8 sequence of 1 bytes from index 0")  # a surrogate


def _rust_utf8_error(v: bytes) -> tuple[int, int | None] | None:
    """core::str::run_utf8_validation, transcribed: (valid_up_to, error_len)."""
    n, i = len(v), 0
    while i < n:
        start, first = i, v[i]
        if first >= 0x80:
            width = 2 if 0xC2 <= first <= 0xDF else 3 if 0xE0 <= first <= 0xEF \
                else 4 if 0xF0 <= first <= 0xF4 else 0
            if width == 0:
                return start, 1
            i += 1
            if i >= n:
                return start, None
            second = v[i]
            if width == 2:
                if not 0x80 <= second <= 0xBF:
                    return start, 1
            else:
                lo, hi = 0x80, 0xBF
                if first == 0xE0:
                    lo = 0xA0
                elif first == 0xED:
                    hi = 0x9F
                elif first == 0xF0:
                    lo = 0x90
                elif first == 0xF4:
                    hi = 0x8F
                if not lo <= second <= hi:
                    return start, 1
                for k in range(2, width):
                    i += 1
                    if i >= n:
                        return start, None
                    if not 0x80 <= v[i] <= 0xBF:
                        return start, k
        i += 1
    return None


def test_to_str_error_text_matches_rusts_validator():
    # every 1- and 2-byte input and a spread of 3- and 4-byte ones, behind "a"
    h = DefaultHandler(Policy.pure())
    try:
        interesting = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1,
                       0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3,
                       0xF4, 0xF5, 0xFF]
        inputs = [bytes(p) for p in itertools.product(range(256), repeat=1)]
        inputs += [bytes(p) for p in itertools.product(range(256), interesting)]
        for size in (3, 4):
            inputs += [bytes(p) for p in itertools.product(interesting, repeat=size)]
        for raw in inputs:
            v = b"a" + raw
            want = _rust_utf8_error(v)
            got = h.dispatch("bytes", "to_str", [v])
            if want is None:
                assert got == ok(v.decode()), v
            elif want[1] is None:
                assert got == err(f"incomplete utf-8 byte sequence from index {want[0]}"), v
            else:
                assert got == err(
                    f"invalid utf-8 sequence of {want[1]} bytes from index {want[0]}"), v
    finally:
        h.close()


def test_slice(h):
    # bytes_and_net.rs bytes_slice_works
    assert h.dispatch("bytes", "slice", [b"helloworld", 2, 7]) == b"llowo"
    assert h.dispatch("bytes", "slice", [b"abc", 0, 3]) == b"abc"
    assert h.dispatch("bytes", "slice", [b"abc", 3, 3]) == b""
    assert h.dispatch("bytes", "slice", [bytearray(b"abc"), 1, 2]) == b"b"


def test_slice_out_of_range_is_an_error(h):
    fails(h, "slice", [b"abc", 2, 1], "bytes.slice: out of range [2..1] of 3")
    fails(h, "slice", [b"abc", 0, 4], "bytes.slice: out of range [0..4] of 3")
    # the reference casts a negative index to usize
    fails(h, "slice", [b"abc", -1, 2], f"bytes.slice: out of range [{U}..2] of 3")
    fails(h, "slice", [b"abc", 0, -1], f"bytes.slice: out of range [0..{U}] of 3")
    fails(h, "slice", [b"abc", 0], "missing argument")
    fails(h, "slice", [b"abc", 0, 1.0], "expected Int, got Float(1.0)")
    fails(h, "slice", [b"abc", 0, 1 << 70], "expected Int, got an integer outside i64: "
          f"{1 << 70}")


def test_concat(h):
    # builtins.rs concat_appends_in_order
    assert h.dispatch("bytes", "concat", [b"AB", b"CD"]) == b"ABCD"
    assert h.dispatch("bytes", "concat", [b"", bytearray(b"x")]) == b"x"
    fails(h, "concat", [b"AB", "CD"], 'expected Bytes, got Str("CD")')


def test_concat_all(h):
    # builtins.rs concat_all_joins_a_list_in_order / concat_all_rejects_non_bytes_elements
    assert h.dispatch("bytes", "concat_all", [[b"Hi", b", ", b"there"]]) == b"Hi, there"
    assert h.dispatch("bytes", "concat_all", [[]]) == b""
    assert h.dispatch("bytes", "concat_all", [[b"a", bytearray(b"b")]]) == b"ab"
    fails(h, "concat_all", [[1]], "bytes.concat_all: list element is not Bytes, got Int(1)")
    fails(h, "concat_all", [b"ab"], "bytes.concat_all expects a List[Bytes], got Some(Bytes([97, 98]))")
    fails(h, "concat_all", [], "bytes.concat_all expects a List[Bytes], got None")


def test_encoders(h):
    # builtins.rs u8_encodes_and_truncates_to_one_byte, u16_le_round_trips
    assert h.dispatch("bytes", "u8", [65]) == b"A"
    assert h.dispatch("bytes", "u8", [256 + 65]) == b"A"
    assert h.dispatch("bytes", "u16_le", [258]) == bytes([2, 1])
    assert h.dispatch("bytes", "u32_le", [0x01020304]) == bytes([4, 3, 2, 1])
    assert h.dispatch("bytes", "u64_le", [1]) == bytes([1, 0, 0, 0, 0, 0, 0, 0])


def test_encoders_truncate_like_rusts_as(h):
    # `n as u8` etc.: the low bytes of the two's complement
    assert h.dispatch("bytes", "u8", [-1]) == b"\xff"
    assert h.dispatch("bytes", "u16_le", [0x12345]) == bytes([0x45, 0x23])
    assert h.dispatch("bytes", "u16_le", [-2]) == b"\xfe\xff"
    assert h.dispatch("bytes", "u32_le", [-1]) == b"\xff" * 4
    assert h.dispatch("bytes", "u32_le", [1 << 40 | 7]) == bytes([7, 0, 0, 0])
    assert h.dispatch("bytes", "u64_le", [-(1 << 63)]) == bytes(7) + b"\x80"
    for op in ("u8", "u16_le", "u32_le", "u64_le"):
        fails(h, op, ["1"], 'expected Int, got Str("1")')
        fails(h, op, [True], "expected Int, got Bool(true)")
        fails(h, op, [], "missing argument")


def test_readers_round_trip(h):
    # builtins.rs u32_le_round_trips, u64_le_round_trips_beyond_u32_range,
    # u16_le_at_reads_at_a_nonzero_offset
    enc = h.dispatch("bytes", "u32_le", [70000])
    assert h.dispatch("bytes", "u32_le_at", [enc, 0]) == ok(70000)
    n = 9_007_199_254_740_993
    enc = h.dispatch("bytes", "u64_le", [n])
    assert h.dispatch("bytes", "u64_le_at", [enc, 0]) == ok(n)
    assert h.dispatch("bytes", "u16_le_at", [bytes([0xFF, 2, 1]), 1]) == ok(258)
    assert h.dispatch("bytes", "u8_at", [b"\x00\xfe", 1]) == ok(254)
    assert h.dispatch("bytes", "u32_le_at", [b"\xff" * 4, 0]) == ok(0xFFFF_FFFF)
    # u64 read back as the i64 of the same bits
    assert h.dispatch("bytes", "u64_le_at", [b"\xff" * 8, 0]) == ok(-1)
    assert h.dispatch("bytes", "u64_le_at", [bytearray(bytes(7) + b"\x80"), 0]) == ok(-(1 << 63))


def test_readers_past_the_end_are_err_values(h):
    # builtins.rs decoders_report_out_of_range_offsets_as_err_not_panic
    assert h.dispatch("bytes", "u16_le_at", [b"\x05", 0]) == \
        err("bytes.u16_le_at: offset 0 out of range of 1 bytes")
    assert h.dispatch("bytes", "u8_at", [b"", 0]) == \
        err("bytes.u8_at: offset 0 out of range of 0 bytes")
    assert h.dispatch("bytes", "u32_le_at", [b"abcd", 1]) == \
        err("bytes.u32_le_at: offset 1 out of range of 4 bytes")
    assert h.dispatch("bytes", "u64_le_at", [bytes(8), 1]) == \
        err("bytes.u64_le_at: offset 1 out of range of 8 bytes")
    # a negative offset is the huge usize it casts to
    assert h.dispatch("bytes", "u8_at", [b"abc", -1]) == \
        err(f"bytes.u8_at: offset {U} out of range of 3 bytes")
    assert h.dispatch("bytes", "u64_le_at", [bytes(16), -8]) == \
        err(f"bytes.u64_le_at: offset {U - 7} out of range of 16 bytes")
    fails(h, "u8_at", [b"abc"], "missing argument")
    fails(h, "u16_le_at", ["abc", 0], 'expected Bytes, got Str("abc")')
    fails(h, "u32_le_at", [b"abc", "0"], 'expected Int, got Str("0")')
    fails(h, "u64_le_at", [b"abc", 1 << 64], f"expected Int, got an integer outside i64: {1 << 64}")
    fails(h, "u8_at", [b"abc", True], "expected Int, got Bool(true)")


def test_args_are_not_mutated(h):
    buf = bytearray(b"abc")
    items = [b"a", buf]
    h.dispatch("bytes", "concat_all", [items])
    h.dispatch("bytes", "concat", [buf, buf])
    h.dispatch("bytes", "slice", [buf, 0, 1])
    assert buf == b"abc" and items == [b"a", b"abc"]
