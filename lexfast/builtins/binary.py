"""Pure builtins ``bytes`` (the reference's ``builtins.rs``, ``fn dispatch``).

Hot: each op checks for an exact ``bytes``/``int`` first and falls back to
the shared checks (``_args``) only to accept a ``bytearray``/``memoryview``
or to word the error.

When the compiled kernel is in use, the hot ops (all but ``concat_all``) come
from the compiled ``lexfast.builtins._binary_c`` (same semantics, same tests);
otherwise, or under ``LEXFAST_NO_EXTENSIONS``, from the Python definitions
here.

The reference casts with ``as``, and lexfast follows it: the encoders
(``u8``, ``u16_le`` …) truncate an Int to its low bytes, two's complement
(``u8(-1)`` is ``[255]``); ``slice`` and the ``_at`` readers take a negative
offset as the huge ``usize`` it becomes, so it is out of range and the
message prints it that way (``18446744073709551615``). ``u64_le_at`` reads a
u64 back as the i64 of the same bits.
"""

from __future__ import annotations

import os
from struct import Struct

from ..errors import EffectError
from ..kernel import COMPILED, err, ok
from ..values import INT_MAX, INT_MIN, debug_repr
from ._args import expect_bytes, expect_int, expect_str

_USIZE = (1 << 64) - 1
#: Cap (bytes) on the result of ``bytes.concat_all``: stricter than the
#: reference (which allocates whatever is asked), so a list aliasing one big
#: Bytes many times cannot make one call allocate gigabytes.
BYTES_MAX_LEN = 1 << 26
_READ_U16 = Struct("<H").unpack_from
_READ_U32 = Struct("<I").unpack_from
_READ_I64 = Struct("<q").unpack_from  # u64_le_at: the u64's bits as an i64


def _int_arg(args: list, i: int) -> int:
    if i < len(args):
        v = args[i]
        if type(v) is int and INT_MIN <= v <= INT_MAX:
            return v
    return expect_int(args, i)


def _bytes_len(args: list) -> int:
    if args and type(args[0]) is bytes:
        return len(args[0])
    return len(expect_bytes(args, 0))


def _bytes_is_empty(args: list) -> bool:
    if args and type(args[0]) is bytes:
        return not args[0]
    return not expect_bytes(args, 0)


def _bytes_eq(args: list) -> bool:
    if len(args) >= 2 and type(args[0]) is bytes and type(args[1]) is bytes:
        return args[0] == args[1]
    a = expect_bytes(args, 0)
    return a == expect_bytes(args, 1)


def _bytes_from_str(args: list) -> bytes:
    # a Python str may hold a lone surrogate, which no Lex Str does; it is
    # written as its three bytes (as the http bodies do), not refused
    return expect_str(args, 0).encode("utf-8", "surrogatepass")


def _bytes_to_str(args: list) -> object:
    b = args[0] if args and type(args[0]) is bytes else expect_bytes(args, 0)
    try:
        return ok(b.decode("utf-8"))
    except UnicodeDecodeError as e:
        # Rust's Utf8Error Display: its error_len and Python's error range
        # are both the "maximal subpart" of the bad sequence
        if e.reason == "unexpected end of data":
            return err(f"incomplete utf-8 byte sequence from index {e.start}")
        return err(f"invalid utf-8 sequence of {e.end - e.start} bytes from index {e.start}")


def _bytes_slice(args: list) -> bytes:
    b = args[0] if args and type(args[0]) is bytes else expect_bytes(args, 0)
    lo = _int_arg(args, 1) & _USIZE
    hi = _int_arg(args, 2) & _USIZE
    if lo > hi or hi > len(b):
        raise EffectError(f"bytes.slice: out of range [{lo}..{hi}] of {len(b)}")
    return b[lo:hi]


def _bytes_concat(args: list) -> bytes:
    if len(args) >= 2 and type(args[0]) is bytes and type(args[1]) is bytes:
        return args[0] + args[1]
    a = expect_bytes(args, 0)
    return a + expect_bytes(args, 1)


def _bytes_concat_all(args: list) -> bytes:
    items = args[0] if args else None
    if not isinstance(items, list):
        got = debug_repr(items)
        raise EffectError(
            f"bytes.concat_all expects a List[Bytes], got {f'Some({got})' if args else 'None'}")
    total = 0
    for x in items:
        if type(x) is not bytes and not isinstance(x, (bytes, bytearray, memoryview)):
            raise EffectError(f"bytes.concat_all: list element is not Bytes, got {debug_repr(x)}")
        total += x.nbytes if isinstance(x, memoryview) else len(x)
    if total > BYTES_MAX_LEN:
        raise EffectError(f"bytes.concat_all: result of {total} bytes exceeds the cap of {BYTES_MAX_LEN}")
    return b"".join(items)


def _bytes_u8(args: list) -> bytes:
    return bytes((_int_arg(args, 0) & 0xFF,))


def _bytes_u16_le(args: list) -> bytes:
    return (_int_arg(args, 0) & 0xFFFF).to_bytes(2, "little")


def _bytes_u32_le(args: list) -> bytes:
    return (_int_arg(args, 0) & 0xFFFF_FFFF).to_bytes(4, "little")


def _bytes_u64_le(args: list) -> bytes:
    return (_int_arg(args, 0) & _USIZE).to_bytes(8, "little")


def _bytes_u8_at(args: list) -> object:
    b = args[0] if args and type(args[0]) is bytes else expect_bytes(args, 0)
    off = args[1] if len(args) > 1 and type(args[1]) is int else _int_arg(args, 1)
    if 0 <= off < len(b):
        return ok(b[off])
    off = _int_arg(args, 1)  # an integer outside i64 is refused, not reported
    return err(f"bytes.u8_at: offset {off & _USIZE} out of range of {len(b)} bytes")


def _bytes_u16_le_at(args: list) -> object:
    b = args[0] if args and type(args[0]) is bytes else expect_bytes(args, 0)
    off = args[1] if len(args) > 1 and type(args[1]) is int else _int_arg(args, 1)
    if 0 <= off and off + 2 <= len(b):
        return ok(_READ_U16(b, off)[0])
    off = _int_arg(args, 1)  # an integer outside i64 is refused, not reported
    return err(f"bytes.u16_le_at: offset {off & _USIZE} out of range of {len(b)} bytes")


def _bytes_u32_le_at(args: list) -> object:
    b = args[0] if args and type(args[0]) is bytes else expect_bytes(args, 0)
    off = args[1] if len(args) > 1 and type(args[1]) is int else _int_arg(args, 1)
    if 0 <= off and off + 4 <= len(b):
        return ok(_READ_U32(b, off)[0])
    off = _int_arg(args, 1)  # an integer outside i64 is refused, not reported
    return err(f"bytes.u32_le_at: offset {off & _USIZE} out of range of {len(b)} bytes")


def _bytes_u64_le_at(args: list) -> object:
    b = args[0] if args and type(args[0]) is bytes else expect_bytes(args, 0)
    off = args[1] if len(args) > 1 and type(args[1]) is int else _int_arg(args, 1)
    if 0 <= off and off + 8 <= len(b):
        return ok(_READ_I64(b, off)[0])
    off = _int_arg(args, 1)  # an integer outside i64 is refused, not reported
    return err(f"bytes.u64_le_at: offset {off & _USIZE} out of range of {len(b)} bytes")


# -- the compiled hot path -------------------------------------------------------

def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


_HOT = {
    "bytes_len": _bytes_len, "bytes_is_empty": _bytes_is_empty, "bytes_eq": _bytes_eq,
    "bytes_concat": _bytes_concat, "bytes_slice": _bytes_slice,
    "bytes_from_str": _bytes_from_str, "bytes_to_str": _bytes_to_str,
    "bytes_u8": _bytes_u8, "bytes_u16_le": _bytes_u16_le, "bytes_u32_le": _bytes_u32_le,
    "bytes_u64_le": _bytes_u64_le, "bytes_u8_at": _bytes_u8_at,
    "bytes_u16_le_at": _bytes_u16_le_at, "bytes_u32_le_at": _bytes_u32_le_at,
    "bytes_u64_le_at": _bytes_u64_le_at,
}
#: the Python definitions of the hot ops (what the twin serves), by name
PY_HOT = dict(_HOT)

#: whether the hot ops are the compiled ones (``lexfast.builtins._binary_c``)
BINARY_COMPILED = False
if COMPILED and not _flag("LEXFAST_NO_EXTENSIONS"):
    try:
        from . import _binary_c
    except ImportError:  # built without it: the Python definitions serve
        if _flag("LEXFAST_REQUIRE_EXTENSIONS"):
            raise
    else:
        _HOT = {name: getattr(_binary_c, name) for name in _HOT}
        BINARY_COMPILED = True


BUILTINS = {
    ("bytes", "len"): _HOT["bytes_len"],
    ("bytes", "eq"): _HOT["bytes_eq"],
    ("bytes", "from_str"): _HOT["bytes_from_str"],
    ("bytes", "to_str"): _HOT["bytes_to_str"],
    ("bytes", "slice"): _HOT["bytes_slice"],
    ("bytes", "is_empty"): _HOT["bytes_is_empty"],
    ("bytes", "concat"): _HOT["bytes_concat"],
    ("bytes", "concat_all"): _bytes_concat_all,
    ("bytes", "u8"): _HOT["bytes_u8"],
    ("bytes", "u16_le"): _HOT["bytes_u16_le"],
    ("bytes", "u32_le"): _HOT["bytes_u32_le"],
    ("bytes", "u64_le"): _HOT["bytes_u64_le"],
    ("bytes", "u8_at"): _HOT["bytes_u8_at"],
    ("bytes", "u16_le_at"): _HOT["bytes_u16_le_at"],
    ("bytes", "u32_le_at"): _HOT["bytes_u32_le_at"],
    ("bytes", "u64_le_at"): _HOT["bytes_u64_le_at"],
}
