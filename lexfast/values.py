"""The Lex value model as Python objects (docs/design.md §3), minus ``Variant``.

``Variant`` and the ``ok/err/some/NONE`` constructors live in the kernel
(compiled, or the twin); this module holds what is not hot: ``Map``, ``Set``,
``Deque`` and ``Table``, the reference's key order (``mapkey_sorted``), the
Rust-``Debug`` rendering that error messages use, and the I/O error text.
It is a leaf: the kernel imports it, never the other way round, so the
kernel hands its ``Variant`` class in (``register_variant_type``).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import os
import struct
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias, Union

if TYPE_CHECKING:
    from .kernel import Variant

INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1
#: the largest budget (a C ``uint64`` in the compiled pool)
U64_MAX = (1 << 64) - 1

# Error messages render arguments, and agent code controls them: cap both the
# length and the depth so a huge or deeply nested value cannot blow up a
# message (or recurse without bound).
_REPR_MAX_CHARS = 200
_REPR_MAX_DEPTH = 8
_REPR_MAX_ITEMS = 16


#: The kernel's ``Variant`` class(es): only the selected kernel's outside the
#: tests, which also import the other one. Rendered as a Variant; a user's own
#: class that happens to be called ``Variant`` is not.
_VARIANT_TYPES: tuple[type, ...] = ()


def register_variant_type(cls: type) -> None:
    """Called by each kernel module for its ``Variant`` when it is imported."""
    global _VARIANT_TYPES
    if cls not in _VARIANT_TYPES:
        _VARIANT_TYPES = (*_VARIANT_TYPES, cls)


if TYPE_CHECKING:
    _MapBase = dict[Union[str, int], "LexValue"]
    _SetBase = frozenset[Union[str, int]]
    _DequeBase = collections.deque["LexValue"]
else:
    _MapBase = dict
    _SetBase = frozenset
    _DequeBase = collections.deque


class Map(_MapBase):
    """A Lex ``Map``: a dict whose keys are ``str`` or ``int``.

    Kept distinct from a plain ``dict`` (a Lex ``Record``) so values round-trip
    through the JSON codec and render as the reference does. The reference's
    map is ordered by key (``mapkey_sorted``); this dict keeps insertion
    order, and what shows the order (``map.keys``/``values``/``entries``,
    ``debug_repr``) sorts.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Map({dict.__repr__(self)})"


class Set(_SetBase):
    """A Lex ``Set``: a ``frozenset`` of ``str`` and ``int`` (never ``bool``).

    Immutable and hashable; the builtins return a new ``Set`` (or the same
    one, when nothing changes). The reference's set is ordered by key: what
    shows the order (``set.to_list``, ``debug_repr``, the JSON codec) sorts
    with ``mapkey_sorted``.
    """

    __slots__ = ()


class Deque(_DequeBase):
    """A Lex ``Deque``: a ``collections.deque`` of Lex values.

    Neither a ``list`` nor a ``tuple`` (so it is never taken for a Lex List or
    Tuple, and never ``==`` one). Like a ``list`` it is mutable in Python, and
    like every Lex value it must not be mutated once handed over: the builtins
    (``deque.push_back`` ...) copy and return a new ``Deque``.
    """

    __slots__ = ()


#: The column types a ``Table`` holds: Arrow's ``DataType`` names (their
#: ``Display``, what ``arrow.col_type`` answers) for Lex Int, Float, Str, Bool.
ARROW_TYPES = ("Int64", "Float64", "Utf8", "Boolean")
_ARROW_PY = {"Int64": int, "Float64": float, "Utf8": str, "Boolean": bool}
_F64 = struct.Struct("<d")

#: One cell of a ``Table`` column: ``None`` is a null.
TableCell: TypeAlias = Union[None, int, float, str, bool]
#: A column as ``Table`` takes it: ``(name, type, values)`` or ``(name, type,
#: values, nullable)``.
TableColumnSpec: TypeAlias = Union[
    tuple[str, str, Iterable[TableCell]], tuple[str, str, Iterable[TableCell], bool]]


class Table:
    """A Lex ``arrow.Table`` (the reference's ``Value::ArrowTable``, an Arrow
    ``RecordBatch``): immutable, named, typed columns of equal length.

    ``columns`` is a sequence of ``(name, type, values)`` or ``(name, type,
    values, nullable)``: ``type`` one of ``ARROW_TYPES`` (``"Int64"`` holds
    Python ``int`` in signed 64-bit, ``"Float64"`` ``float``, ``"Utf8"``
    ``str``, ``"Boolean"`` ``bool``), ``None`` in ``values`` a null, allowed
    only in a nullable column (``nullable`` defaults to whether there is a
    null). Names may repeat, as in Arrow; a lookup by name finds the first.
    ``nrows`` is needed only for a table with no columns.

    Equality is the reference's (``RecordBatch``'s ``PartialEq``): names,
    types, nullability, row count and values, Float64 values compared by
    their bits (``NaN == NaN``, ``0.0 != -0.0``).
    """

    __slots__ = ("_names", "_types", "_nullable", "_columns", "_nrows")

    _names: tuple[str, ...]
    _types: tuple[str, ...]
    _nullable: tuple[bool, ...]
    _columns: tuple[tuple[TableCell, ...], ...]
    _nrows: int

    def __init__(self, columns: Iterable[TableColumnSpec] = (), *,
                 nrows: int | None = None) -> None:
        names: list[str] = []
        types: list[str] = []
        nullable: list[bool] = []
        cols: list[tuple[TableCell, ...]] = []
        for i, spec in enumerate(columns):
            if not isinstance(spec, (tuple, list)) or len(spec) not in (3, 4):
                raise TypeError(f"Table column #{i} must be (name, type, values[, nullable])")
            name, dtype, values = spec[0], spec[1], spec[2]
            if not isinstance(name, str):
                raise TypeError(f"Table column #{i} name must be a str")
            if dtype not in _ARROW_PY:
                raise ValueError(f"Table column `{name}` type must be one of {ARROW_TYPES}, "
                                 f"not {dtype!r}")
            values = tuple(values)
            py = _ARROW_PY[dtype]
            has_null = False
            for v in values:
                if v is None:
                    has_null = True
                elif type(v) is not py and not (py is int and isinstance(v, int)
                                                 and not isinstance(v, bool)):
                    raise TypeError(f"Table column `{name}` ({dtype}) holds a "
                                    f"{type(v).__name__}")
                elif isinstance(v, int) and py is int and not INT_MIN <= v <= INT_MAX:
                    raise ValueError(f"Table column `{name}` holds an Int outside signed 64-bit")
            if py is int:
                values = tuple(None if v is None else int(v) for v in values)
            null_ok = has_null if len(spec) == 3 else bool(spec[3])
            if has_null and not null_ok:
                raise ValueError(f"Table column `{name}` is not nullable but holds a null")
            names.append(str(name))
            types.append(dtype)
            nullable.append(null_ok)
            cols.append(values)
        if cols:
            n = len(cols[0])
            for name, c in zip(names, cols, strict=True):
                if len(c) != n:
                    raise ValueError(f"Table column `{name}` has {len(c)} rows, expected {n}")
            if nrows is not None and nrows != n:
                raise ValueError(f"Table has {n} rows, not nrows={nrows}")
        else:
            n = 0 if nrows is None else int(nrows)
            if n < 0:
                raise ValueError("Table nrows must be >= 0")
        self._set(tuple(names), tuple(types), tuple(nullable), tuple(cols), n)

    def _set(self, names: tuple, types: tuple, nullable: tuple, columns: tuple, nrows: int) -> None:
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_types", types)
        object.__setattr__(self, "_nullable", nullable)
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_nrows", nrows)

    @classmethod
    def _make(cls, names: tuple, types: tuple, nullable: tuple, columns: tuple,
              nrows: int) -> Table:
        # the builtins' constructor: they build only well-typed columns
        t = object.__new__(cls)
        t._set(names, types, nullable, columns, nrows)
        return t

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Table is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("a Table is immutable")

    def __copy__(self) -> Table:
        return self

    def __deepcopy__(self, memo: dict) -> Table:
        return self

    def __reduce__(self) -> tuple:
        return (_table_from_state, (self._names, self._types, self._nullable, self._columns,
                                    self._nrows))

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return self._names

    @property
    def types(self) -> tuple[str, ...]:
        """Each column's type, one of ``ARROW_TYPES``."""
        return self._types

    @property
    def nullable(self) -> tuple[bool, ...]:
        """Each column's Arrow ``nullable`` flag."""
        return self._nullable

    @property
    def columns(self) -> tuple[tuple[TableCell, ...], ...]:
        """Each column's values (``None`` for a null), as tuples."""
        return self._columns

    @property
    def nrows(self) -> int:
        return self._nrows

    @property
    def ncols(self) -> int:
        return len(self._names)

    def fields_and_columns(self) -> list[tuple[str, str, tuple[TableCell, ...], bool]]:
        """``(name, type, values, nullable)`` per column: ``Table(t.fields_and_columns(),
        nrows=t.nrows) == t``."""
        return list(zip(self._names, self._types, self._columns, self._nullable,
                        strict=True))

    def index(self, name: str) -> int | None:
        """The position of the first column called ``name`` (Arrow's
        ``column_with_name``), or ``None``."""
        try:
            return self._names.index(name)
        except ValueError:
            return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        if self is other:
            return True
        if (self._nrows != other._nrows or self._names != other._names
                or self._types != other._types or self._nullable != other._nullable):
            return False
        for dtype, a, b in zip(self._types, self._columns, other._columns, strict=True):
            if dtype == "Float64":
                # not ``a != b``: that takes NaN for NaN by identity and -0.0 for 0.0
                if a is not b and [None if x is None else _F64.pack(x) for x in a] != \
                        [None if x is None else _F64.pack(x) for x in b]:
                    return False
            elif a != b:
                return False
        return True

    def __ne__(self, other: object) -> bool:
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    def __hash__(self) -> int:
        return hash((self._names, self._types, self._nullable, self._nrows))

    def __repr__(self) -> str:
        return f"Table({self.fields_and_columns()!r:.{_REPR_MAX_CHARS}}, nrows={self._nrows})"


def _table_from_state(names: tuple, types: tuple, nullable: tuple, columns: tuple,
                      nrows: int) -> Table:
    return Table._make(names, types, nullable, columns, nrows)


#: A Lex value as Python holds it (docs/design.md §3): Unit ``None``, Bool,
#: Int (signed 64-bit), Float, Str, Bytes, List, Tuple, Record (``dict`` with
#: ``str`` keys), ``Map``, ``Set``, ``Deque``, ``Table`` and ``Variant``. What
#: ``dispatch`` takes and returns.
LexValue: TypeAlias = Union[
    None, bool, int, float, str, bytes, list["LexValue"], tuple["LexValue", ...],
    dict[str, "LexValue"], Map, Set, Deque, Table, "Variant",
]


def mapkey_sorted(keys: Collection[Any]) -> list[Any]:
    """``keys`` (the keys of a ``Map``, the elements of a ``Set``) in the
    reference's ``MapKey`` order: every Str before every Int (the order of
    the enum's variants), Strs by code point (which is Rust's UTF-8 byte
    order), Ints numerically. ``keys`` must be a collection, not an iterator."""
    try:
        return sorted(keys)
    except TypeError:  # both Strs and Ints
        strs = [k for k in keys if isinstance(k, str)]
        ints = [k for k in keys if not isinstance(k, str)]
        strs.sort()
        ints.sort()
        return strs + ints


def _first_keys(keys: Collection[Any], n: int) -> list[Any]:
    # the first ``n`` keys in MapKey order, without sorting all of them
    if len(keys) <= n:
        return mapkey_sorted(keys)
    strs = [k for k in keys if isinstance(k, str)]
    if len(strs) >= n:
        return heapq.nsmallest(n, strs)
    ints = [k for k in keys if not isinstance(k, str)]
    return sorted(strs) + heapq.nsmallest(n - len(strs), ints)


_STR_ESCAPES = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\",
                '"': '\\"'}


def rust_str_debug(s: str) -> str:
    """Rust's ``{:?}`` of a ``str``: quoted; ``\\0 \\t \\r \\n \\\\ \\"``
    escaped, and ``\\u{..}`` for what Rust does not print (Python's
    ``isprintable`` covers the same categories; lone surrogates included) and
    for combining marks (Grapheme_Extend)."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    import unicodedata

    out = ['"']
    for c in s:
        e = _STR_ESCAPES.get(c)
        if e is not None:
            out.append(e)
        elif c.isprintable() and (c < "\u0300" or unicodedata.category(c) not in ("Mn", "Me")):
            out.append(c)
        else:
            out.append(f"\\u{{{ord(c):x}}}")
    out.append('"')
    return "".join(out)


_rust_str = rust_str_debug


def _render(v: object, depth: int, out: list, budget: list) -> None:
    # ``budget`` is a one-element list: characters still allowed.
    if budget[0] <= 0:
        return
    if depth > _REPR_MAX_DEPTH:
        out.append("…")
        budget[0] -= 1
        return

    def put(s: str) -> None:
        out.append(s)
        budget[0] -= len(s)

    def seq(name: str, items: list[Callable[..., None]], open_: str = "[",
            close: str = "]") -> None:
        put(f"{name}({open_}")
        for i, item in enumerate(items):
            if budget[0] <= 0:
                return
            if i >= _REPR_MAX_ITEMS:
                put(", …")
                break
            if i:
                put(", ")
            item()
        put(f"{close})")

    t = type(v)
    if v is None:
        put("Unit")
    elif t is bool:
        put("Bool(true)" if v else "Bool(false)")
    elif isinstance(v, int) and not isinstance(v, bool):
        s = str(int(v)) if abs(int(v)) < 10 ** 40 else f"<{int(v).bit_length()}-bit int>"
        put(f"Int({s})")
    elif isinstance(v, float):
        put(f"Float({rust_f64_debug(float(v))})")
    elif isinstance(v, str):
        put("Str(" + _rust_str(str(v)[:_REPR_MAX_CHARS]) + ")")
    elif isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v[:_REPR_MAX_ITEMS])
        more = ", …" if len(v) > _REPR_MAX_ITEMS else ""
        put("Bytes([" + ", ".join(str(x) for x in b) + more + "])")
    elif isinstance(v, dict):
        is_map = isinstance(v, Map)

        def entry(k: object, x: object) -> Callable[[], None]:
            def render() -> None:
                if is_map:
                    _render_key(k, out, budget)
                else:
                    put(_rust_str(str(k)[:_REPR_MAX_CHARS]))
                put(": ")
                _render(x, depth + 1, out, budget)
            return render

        if is_map:  # the reference's map is ordered by key
            items = [(k, v[k]) for k in _first_keys(v, _REPR_MAX_ITEMS + 1)]
        else:
            items = list(v.items())[: _REPR_MAX_ITEMS + 1]
        seq("Map" if is_map else "Record", [entry(k, x) for k, x in items], "{", "}")
    elif isinstance(v, list):
        seq("List", [lambda x=x: _render(x, depth + 1, out, budget)
                     for x in v[: _REPR_MAX_ITEMS + 1]])
    elif isinstance(v, tuple):
        seq("Tuple", [lambda x=x: _render(x, depth + 1, out, budget)
                      for x in v[: _REPR_MAX_ITEMS + 1]])
    elif isinstance(v, Set):  # Set({Str("a"), Int(1)}), in key order
        seq("Set", [lambda k=k: _render_key(k, out, budget)
                    for k in _first_keys(v, _REPR_MAX_ITEMS + 1)], "{", "}")
    elif isinstance(v, Deque):
        seq("Deque", [lambda x=x: _render(x, depth + 1, out, budget)
                      for x in itertools.islice(v, _REPR_MAX_ITEMS + 1)])
    elif isinstance(v, _VARIANT_TYPES):
        variant: Any = v
        put(f"Variant {{ name: {_rust_str(str(variant.name)[:_REPR_MAX_CHARS])}, args: [")
        for i, x in enumerate(tuple(variant.args)[: _REPR_MAX_ITEMS + 1]):
            if i >= _REPR_MAX_ITEMS:
                put(", …")
                break
            if i:
                put(", ")
            _render(x, depth + 1, out, budget)
        put("] }")
    elif isinstance(v, Table):
        # The reference derives Debug for RecordBatch (schema, every column's
        # values, row_count): here the schema and the row count only.
        fields = [f"{_rust_str(n[:_REPR_MAX_CHARS])}: {t}" for n, t in
                  zip(v.names[:_REPR_MAX_ITEMS], v.types, strict=False)]
        if v.ncols > _REPR_MAX_ITEMS:
            fields.append("…")
        put(f"ArrowTable(RecordBatch {{ schema: [{', '.join(fields)}], row_count: {v.nrows} }})")
    else:
        put(f"<{type(v).__name__}>")


def _render_key(k: object, out: list, budget: list) -> None:
    if isinstance(k, str):
        s = "Str(" + _rust_str(k[:_REPR_MAX_CHARS]) + ")"
    elif isinstance(k, int) and not isinstance(k, bool):
        s = f"Int({k})"
    else:
        s = f"<{type(k).__name__}>"
    out.append(s)
    budget[0] -= len(s)


def rust_f64_debug(x: float) -> str:
    """``x`` as Rust's ``{:?}`` prints an f64: shortest round-trip digits,
    ``1.0`` for integral values, exponent form (``1e20``, ``1.5e-7``) below
    1e-4 and from 1e16 on, ``NaN``, ``inf``."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    r = repr(x)
    a = abs(x)
    if a == 0 or 1e-4 <= a < 1e16:
        return r  # Python's repr switches to exponents at the same points
    mant, _, exp = r.partition("e")
    if not exp:  # not reached: repr uses an exponent outside that range
        return r
    if mant.endswith(".0"):
        mant = mant[:-2]
    return f"{mant}e{int(exp)}"


def debug_repr(v: object) -> str:
    """Render ``v`` as Rust's ``{:?}`` does for a Lex value (``Int(3)``,
    ``Str("a")``, ``List([Int(1)])``), truncated to a few hundred characters."""
    out: list = []
    budget = [_REPR_MAX_CHARS * 2]
    try:
        _render(v, 0, out, budget)
    except Exception:  # a hostile __str__/__len__ must not escape an error path
        return f"<{type(v).__name__}>"
    s = "".join(out)
    if budget[0] <= 0:
        s = s[: _REPR_MAX_CHARS * 2] + "…"
    return s


def debug_str_list(items: Iterable[object]) -> str:
    """Rust ``{:?}`` of a ``Vec<String>``: ``["echo", "ls"]``."""
    return "[" + ", ".join(_rust_str(str(s)) for s in items) + "]"


def os_error_text(e: BaseException) -> str:
    """``std::io::Error`` Display: ``No such file or directory (os error 2)``."""
    errno = getattr(e, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return f"{os.strerror(errno)} (os error {errno})"
    return str(e) or type(e).__name__


# Every character a reader might split a line on (``str.splitlines``, universal
# newlines, JavaScript), every other C0 and C1 control (terminal escapes) and
# lone surrogates, written as ``\n``, ``\r`` or ``\u{hex}``; tab stays.
_ONE_LINE = {i: f"\\u{{{i:x}}}" for i in (*range(0x20), *range(0x7F, 0xA0),
                                           *range(0xD800, 0xE000), 0x2028, 0x2029)
             if i != 0x09}
_ONE_LINE.update({0x0A: "\\n", 0x0D: "\\r"})


def one_line(s: str) -> str:
    """``s`` as text that stays on one line and cannot move a terminal's
    cursor: line breaks and control characters escaped (the text log format,
    ``io.print`` on the ``lexfast`` command's streams)."""
    return s.translate(_ONE_LINE)
