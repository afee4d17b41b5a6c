"""Pure builtins ``arrow.*`` and ``df.*``, as the reference's ``src/arrow.rs``
and ``src/df.rs`` (their ``dispatch``), over ``lexfast.Table`` (the
reference's ``Value::ArrowTable``, an Arrow ``RecordBatch``).

``arrow.*`` is construction, introspection, column reductions and slicing;
``df.*`` the query ops the reference runs on Polars (filter, sort, group-by,
joins; the reference builds them under its default ``df`` feature, and so
does lexfast, in pure Python). The file ops (``arrow.read_csv``,
``read_parquet``, ``read_parquet_cols``, ``write_parquet``, ``write_csv``)
are effects, not here.

Ops whose Lex type is ``Result[T, Str]`` return ``ok``/``err`` (the
reference's ``lift_result``), argument errors included; the others raise
``EffectError`` with the reference's text.

Where Polars leaves something unspecified lexfast picks one deterministic
answer: filters keep row order; ``sort_by`` is stable with nulls first
(Polars' default ``nulls_last = false``); ``group_by_agg`` lists groups in
the order of their first row; joins list rows in left order, each left row's
matches in right order. Polars' own error texts (a missing column, a type
mismatch) are rendered as their first line. Float sums follow arrow-rs's
lane order on a baseline x86-64 build (4 accumulators without nulls, 2 with).
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable

from ..errors import EffectError
from ..kernel import NONE, err, ok, some
from ..values import INT_MAX, INT_MIN, Table, debug_repr, rust_str_debug

# A join or a cross join multiplies rows: cap what one call may build (cells,
# rows x columns) where the reference has no cap.
MAX_RESULT_CELLS = 1 << 22


class _Err(Exception):
    """The reference's ``Err(String)`` inside a kernel, before ``lift_result``."""


def _wrap(n: int) -> int:
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >> 63 else n


# -- argument checks (arrow.rs ``expect_*``; df.rs prefixes them ``df: ``) ------

def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _table(args: list, i: int, pre: str) -> Table:
    if i >= len(args):
        raise _Err(f"{pre}expected arrow.Table, got nothing")
    v = args[i]
    if isinstance(v, Table):
        return v
    raise _Err(f"{pre}expected arrow.Table, got {debug_repr(v)}")


def _str(args: list, i: int, pre: str) -> str:
    if i >= len(args):
        raise _Err(f"{pre}expected Str, got nothing")
    v = args[i]
    if isinstance(v, str):
        return str.__str__(v)
    raise _Err(f"{pre}expected Str, got {debug_repr(v)}")


def _int(args: list, i: int, pre: str) -> int:
    if i >= len(args):
        raise _Err(f"{pre}expected Int, got nothing")
    v = args[i]
    if _is_int(v) and INT_MIN <= v <= INT_MAX:  # type: ignore[operator]
        return int(v)  # type: ignore[call-overload]
    raise _Err(f"{pre}expected Int, got {debug_repr(v)}")


def _float(args: list, i: int, pre: str) -> float:
    if i >= len(args):
        raise _Err(f"{pre}expected Float, got nothing")
    v = args[i]
    if isinstance(v, float):
        return float(v)
    if _is_int(v) and INT_MIN <= v <= INT_MAX:  # type: ignore[operator]
        return float(int(v))  # type: ignore[call-overload]
    raise _Err(f"{pre}expected Float, got {debug_repr(v)}")


def _bool(args: list, i: int, pre: str) -> bool:
    if i >= len(args):
        raise _Err(f"{pre}expected Bool, got nothing")
    v = args[i]
    if isinstance(v, bool):
        return bool(v)
    raise _Err(f"{pre}expected Bool, got {debug_repr(v)}")


def _list(args: list, i: int, pre: str) -> list:
    if i >= len(args):
        raise _Err(f"{pre}expected List, got nothing")
    v = args[i]
    if isinstance(v, list):
        return v
    raise _Err(f"{pre}expected List, got {debug_repr(v)}")


def _lifted(fn: Callable[[list], object]) -> Callable[[list], object]:
    def op(args: list) -> object:
        try:
            return ok(fn(args))
        except _Err as e:
            return err(str(e))
    op.__name__ = op.__qualname__ = fn.__name__
    op.__doc__ = fn.__doc__
    return op


def _bare(fn: Callable[[list], object]) -> Callable[[list], object]:
    def op(args: list) -> object:
        try:
            return fn(args)
        except _Err as e:
            raise EffectError(str(e)) from None
    op.__name__ = op.__qualname__ = fn.__name__
    op.__doc__ = fn.__doc__
    return op


# -- construction ---------------------------------------------------------------

def _decode_columns(items: list) -> list[tuple[str, list]]:
    out = []
    for i, item in enumerate(items):
        if not (isinstance(item, tuple) and len(item) == 2):
            raise _Err(f"from_*_columns: column #{i} must be a (Str, List) tuple, "
                       f"got {debug_repr(item)}")
        name, values = item
        if not isinstance(name, str):
            raise _Err(f"from_*_columns: column #{i} name must be Str, got {debug_repr(name)}")
        name = str.__str__(name)
        if not isinstance(values, list):
            raise _Err(f"from_*_columns: column #{i} (`{name}`) values must be List, "
                       f"got {debug_repr(values)}")
        out.append((name, values))
    return out


def _pack(cols: list[tuple[str, str, tuple]]) -> Table:
    if not cols:
        return Table._make((), (), (), (), 0)
    n = len(cols[0][2])
    for name, _, values in cols:
        if len(values) != n:
            raise _Err(f"from_*_columns: column `{name}` has {len(values)} rows, expected {n}")
    return Table._make(tuple(c[0] for c in cols), tuple(c[1] for c in cols),
                       (False,) * len(cols), tuple(c[2] for c in cols), n)


def _int_cell(v: object) -> int | None:
    if type(v) is int:
        return v if INT_MIN <= v <= INT_MAX else None
    if _is_int(v):
        return _int_cell(int(v))  # type: ignore[call-overload]
    return None


def from_int_columns(args: list) -> Table:
    """``arrow.from_int_columns(List[(Str, List[Int])]) -> Result[Table, Str]``"""
    cols = []
    for name, values in _decode_columns(_list(args, 0, "")):
        if _all_i64(values):
            cols.append((name, "Int64", tuple(values)))
            continue
        buf = []
        for v in values:
            n = _int_cell(v)
            if n is None:
                raise _Err(f"from_int_columns: column `{name}` non-Int element: {debug_repr(v)}")
            buf.append(n)
        cols.append((name, "Int64", tuple(buf)))
    return _pack(cols)


def _all_i64(values: list) -> bool:
    # the common case at C speed: plain ints, all within i64
    return not values or (set(map(type, values)) == {int}
                          and INT_MIN <= min(values) and max(values) <= INT_MAX)


def from_float_columns(args: list) -> Table:
    """``arrow.from_float_columns(List[(Str, List[Float])]) -> Result[Table, Str]``;
    an Int element is taken as a Float."""
    cols = []
    for name, values in _decode_columns(_list(args, 0, "")):
        if not values or set(map(type, values)) == {float}:
            cols.append((name, "Float64", tuple(values)))
            continue
        buf = []
        for v in values:
            if isinstance(v, float):
                buf.append(float(v))
                continue
            n = _int_cell(v)
            if n is None:
                raise _Err(f"from_float_columns: column `{name}` non-Float element: "
                           f"{debug_repr(v)}")
            buf.append(float(n))
        cols.append((name, "Float64", tuple(buf)))
    return _pack(cols)


def from_str_columns(args: list) -> Table:
    """``arrow.from_str_columns(List[(Str, List[Str])]) -> Result[Table, Str]``"""
    cols = []
    for name, values in _decode_columns(_list(args, 0, "")):
        if not values or set(map(type, values)) == {str}:
            cols.append((name, "Utf8", tuple(values)))
            continue
        buf = []
        for v in values:
            if not isinstance(v, str):
                raise _Err(f"from_str_columns: column `{name}` non-Str element: {debug_repr(v)}")
            buf.append(str.__str__(v))
        cols.append((name, "Utf8", tuple(buf)))
    return _pack(cols)


# -- introspection --------------------------------------------------------------

def nrows(args: list) -> int:
    """``arrow.nrows(Table) -> Int``"""
    return _table(args, 0, "").nrows


def ncols(args: list) -> int:
    """``arrow.ncols(Table) -> Int``"""
    return _table(args, 0, "").ncols


def col_names(args: list) -> list:
    """``arrow.col_names(Table) -> List[Str]``"""
    return list(_table(args, 0, "").names)


def col_type(args: list) -> object:
    """``arrow.col_type(Table, Str) -> Option[Str]``: Arrow's type name
    (``Int64``, ``Float64``, ``Utf8``, ``Boolean``)."""
    t = _table(args, 0, "")
    i = t.index(_str(args, 1, ""))
    return NONE if i is None else some(t.types[i])


# -- column reductions (arrow_arith::aggregate) -----------------------------------

def _column(t: Table, name: str) -> int:
    i = t.index(name)
    if i is None:
        raise _Err(f"arrow: column `{name}` not found")
    return i


def _int64(t: Table, name: str) -> tuple:
    i = _column(t, name)
    if t.types[i] != "Int64":
        raise _Err(f"arrow: column `{name}` is {t.types[i]}, not Int64")
    return t.columns[i]


def _float_sum(values: tuple) -> float:
    """``arrow_arith::aggregate::sum`` of a Float64 column: independent lane
    accumulators (4 without nulls, 2 with: a baseline x86-64 build's SSE
    width), tree-reduced; null slots add nothing."""
    lanes = 2 if None in values else 4
    acc = [0.0] * lanes
    for i, v in enumerate(values):
        if v is not None:
            acc[i % lanes] += v
    while lanes >= 2:
        lanes //= 2
        for i in range(lanes):
            acc[i] += acc[i + lanes]
    return acc[0]


def _int_sum(values: tuple) -> int:
    if None in values:
        return _wrap(sum(v for v in values if v is not None))
    return _wrap(sum(values))


def _sum_as_float(t: Table, name: str, op: str) -> tuple[float, int]:
    """The column's sum as a Float (an Int64 column's wrapped sum converted)
    and its count of non-null values."""
    i = _column(t, name)
    values, dtype = t.columns[i], t.types[i]
    n = len(values) - values.count(None)
    if dtype == "Float64":
        return _float_sum(values), n
    if dtype == "Int64":
        return float(_int_sum(values)), n
    raise _Err(f"{op}: column `{name}` is {dtype}, expected Int64 or Float64")


def col_sum_int(args: list) -> int:
    """``arrow.col_sum_int(Table, Str) -> Result[Int, Str]``: wraps on overflow, as arrow's sum."""
    t = _table(args, 0, "")
    return _int_sum(_int64(t, _str(args, 1, "")))


def col_sum_float(args: list) -> float:
    """``arrow.col_sum_float(Table, Str) -> Result[Float, Str]``: Int64 or Float64."""
    t = _table(args, 0, "")
    return _sum_as_float(t, _str(args, 1, ""), "col_sum_float")[0]


def col_mean(args: list) -> object:
    """``arrow.col_mean(Table, Str) -> Result[Option[Float], Str]``: ``None`` when
    the column has no non-null value."""
    t = _table(args, 0, "")
    name = _str(args, 1, "")
    i = _column(t, name)
    values = t.columns[i]
    if len(values) == values.count(None):
        return NONE
    total, n = _sum_as_float(t, name, "col_mean")
    return some(total / n)


def col_min_int(args: list) -> object:
    """``arrow.col_min_int(Table, Str) -> Result[Option[Int], Str]``"""
    t = _table(args, 0, "")
    present = [v for v in _int64(t, _str(args, 1, "")) if v is not None]
    return some(min(present)) if present else NONE


def col_max_int(args: list) -> object:
    """``arrow.col_max_int(Table, Str) -> Result[Option[Int], Str]``"""
    t = _table(args, 0, "")
    present = [v for v in _int64(t, _str(args, 1, "")) if v is not None]
    return some(max(present)) if present else NONE


def col_count(args: list) -> int:
    """``arrow.col_count(Table, Str) -> Result[Int, Str]``: the non-null values."""
    t = _table(args, 0, "")
    values = t.columns[_column(t, _str(args, 1, ""))]
    return len(values) - values.count(None)


# -- slicing and projection ---------------------------------------------------------

def _rows(t: Table, start: int, stop: int) -> Table:
    if start == 0 and stop == t.nrows:
        return t
    return Table._make(t.names, t.types, t.nullable, tuple(c[start:stop] for c in t.columns),
                       stop - start)


def _gather(col: tuple, rows: list[int]) -> tuple:
    """``col[r] for r in rows``, at C speed."""
    if len(rows) > 1:
        return operator.itemgetter(*rows)(col)  # type: ignore[no-any-return]
    return (col[rows[0]],) if rows else ()


def _take(t: Table, rows: list[int], nullable: tuple | None = None) -> Table:
    return Table._make(t.names, t.types, t.nullable if nullable is None else nullable,
                       tuple(_gather(c, rows) for c in t.columns), len(rows))


def _project(t: Table, idx: list[int]) -> Table:
    return Table._make(tuple(t.names[i] for i in idx), tuple(t.types[i] for i in idx),
                       tuple(t.nullable[i] for i in idx), tuple(t.columns[i] for i in idx),
                       t.nrows)


def head(args: list) -> Table:
    """``arrow.head(Table, Int) -> Table``: the first ``n`` rows (``n < 0`` is 0)."""
    t = _table(args, 0, "")
    n = max(_int(args, 1, ""), 0)
    return _rows(t, 0, min(n, t.nrows))


def tail(args: list) -> Table:
    """``arrow.tail(Table, Int) -> Table``: the last ``n`` rows."""
    t = _table(args, 0, "")
    n = min(max(_int(args, 1, ""), 0), t.nrows)
    return _rows(t, t.nrows - n, t.nrows)


def slice_(args: list) -> Table:
    """``arrow.slice(Table, Int, Int) -> Table``: rows ``start..stop``, both
    clamped to ``0..nrows``; ``stop < start`` is empty."""
    t = _table(args, 0, "")
    start = max(_int(args, 1, ""), 0)
    stop = max(_int(args, 2, ""), 0)
    s = min(start, t.nrows)
    e = max(min(stop, t.nrows), s)
    return _rows(t, s, e)


def select_cols(args: list) -> Table:
    """``arrow.select_cols(Table, List[Str]) -> Result[Table, Str]``"""
    t = _table(args, 0, "")
    idx = []
    for v in _list(args, 1, ""):
        if not isinstance(v, str):
            raise _Err(f"select_cols: name list contained non-Str: {debug_repr(v)}")
        i = t.index(str.__str__(v))
        if i is None:
            raise _Err(f"select_cols: column `{v}` not found")
        idx.append(i)
    return _project(t, idx)


def rename_col(args: list) -> Table:
    """``arrow.rename_col(Table, Str, Str) -> Result[Table, Str]``: the first
    column of that name."""
    t = _table(args, 0, "")
    old = _str(args, 1, "")
    new = _str(args, 2, "")
    i = t.index(old)
    if i is None:
        raise _Err(f"rename_col: column `{old}` not found")
    names = t.names[:i] + (new,) + t.names[i + 1:]
    return Table._make(names, t.types, t.nullable, t.columns, t.nrows)


def drop_col(args: list) -> Table:
    """``arrow.drop_col(Table, Str) -> Result[Table, Str]``: every column of that name."""
    t = _table(args, 0, "")
    name = _str(args, 1, "")
    keep = [i for i, n in enumerate(t.names) if n != name]
    if len(keep) == t.ncols:
        raise _Err(f"drop_col: column `{name}` not found")
    return _project(t, keep)


# -- df: the Polars-backed query ops --------------------------------------------------

_POLARS_DTYPE = {"Int64": "i64", "Float64": "f64", "Utf8": "str"}


def _polars(t: Table) -> Table:
    """``to_polars``: the column types Polars is handed (v1), unique names; a
    DataFrame with no column has no row."""
    for name, dtype in zip(t.names, t.types, strict=True):
        if dtype not in _POLARS_DTYPE:
            raise _Err(f"df: column `{name}` has unsupported type {dtype} "
                       "(v1: Int64/Float64/Utf8)")
    _unique_names(t.names, "df: build DataFrame: ")
    if not t.names and t.nrows:
        return Table._make((), (), (), (), 0)
    return t


def _unique_names(names: tuple | list, pre: str) -> None:
    seen: set = set()
    for n in names:
        if n in seen:
            raise _Err(f"{pre}duplicate: column with name '{n}' has more than one occurrence")
        seen.add(n)


def _polars_column(t: Table, name: str, op: str) -> int:
    i = t.index(name)
    if i is None:
        valid = "[" + ", ".join(rust_str_debug(n) for n in t.names) + "]"
        raise _Err(f"df.{op}: not found: unable to find column {rust_str_debug(name)}; "
                   f"valid columns: {valid}")
    return i


def _checked_column(t: Table, name: str, wanted: str, op: str) -> int:
    # ``expect_col_type``: before Polars runs, a stable message
    i = t.index(name)
    if i is None:
        raise _Err(f"df.{op}: column `{name}` not found")
    if t.types[i] != wanted:
        raise _Err(f"df.{op}: expected {wanted} column, got {t.types[i]}")
    return i


def _from_polars(t: Table) -> Table:
    # every field comes back nullable (``from_polars``)
    return Table._make(t.names, t.types, (True,) * t.ncols, t.columns, t.nrows)


def _total(v: float) -> tuple:
    # Polars compares floats in a total order: NaN == NaN, NaN above everything
    return (1, 0.0) if v != v else (0, v)


def _filter(t: Table, i: int, keep: Callable[[object], bool]) -> Table:
    col = t.columns[i]
    if None in col:
        rows = [r for r, v in enumerate(col) if v is not None and keep(v)]
    else:
        rows = list(itertools.compress(range(len(col)), map(keep, col)))
    return _take(t, rows, (True,) * t.ncols)


def _int_filter(op: str, cmp: Callable[[object, object], bool]) -> Callable[[list], Table]:
    def run(args: list) -> Table:
        t = _table(args, 0, "df: ")
        name = _str(args, 1, "df: ")
        needle = _int(args, 2, "df: ")
        t = _polars(t)
        i = _polars_column(t, name, op)
        dtype = t.types[i]
        if dtype == "Utf8":
            raise _Err(f"df.{op}: cannot compare string with numeric type (i64)")
        if dtype == "Float64":
            key = _total(float(needle))
            return _filter(t, i, lambda v: cmp(_total(v), key))  # type: ignore[arg-type]
        # ``needle OP' v`` as a C call: v > needle is needle < v
        return _filter(t, i, functools.partial(_FLIPPED[cmp], needle))
    run.__name__ = op
    run.__doc__ = f"``df.{op}(Table, Str, Int) -> Result[Table, Str]``"
    return run


def _eq(a: object, b: object) -> bool:
    return a == b


def _gt(a: object, b: object) -> bool:
    return a > b  # type: ignore[operator]


def _lt(a: object, b: object) -> bool:
    return a < b  # type: ignore[operator]


_FLIPPED: dict[Callable, Callable[[object, object], bool]] = {
    _eq: operator.eq, _gt: operator.lt, _lt: operator.gt}


def _float_filter(op: str, cmp: Callable[[object, object], bool]) -> Callable[[list], Table]:
    def run(args: list) -> Table:
        t = _table(args, 0, "df: ")
        name = _str(args, 1, "df: ")
        key = _total(_float(args, 2, "df: "))
        i = _checked_column(t, name, "Float64", op)
        t = _polars(t)
        return _filter(t, i, lambda v: cmp(_total(v), key))  # type: ignore[arg-type]
    run.__name__ = op
    run.__doc__ = f"``df.{op}(Table, Str, Float) -> Result[Table, Str]``: Float64 columns"
    return run


def filter_eq_str(args: list) -> Table:
    """``df.filter_eq_str(Table, Str, Str) -> Result[Table, Str]``: Utf8 columns"""
    t = _table(args, 0, "df: ")
    name = _str(args, 1, "df: ")
    needle = _str(args, 2, "df: ")
    i = _checked_column(t, name, "Utf8", "filter_eq_str")
    t = _polars(t)
    return _filter(t, i, functools.partial(operator.eq, needle))


def filter_in_str(args: list) -> Table:
    """``df.filter_in_str(Table, Str, List[Str]) -> Result[Table, Str]``: an
    empty list keeps no row (SQL's ``IN ()``)."""
    t = _table(args, 0, "df: ")
    name = _str(args, 1, "df: ")
    items = _list(args, 2, "df: ")
    i = _checked_column(t, name, "Utf8", "filter_in_str")
    needles = set()
    for v in items:
        if not isinstance(v, str):
            raise _Err(f"df.filter_in_str: needle list contained non-Str: {debug_repr(v)}")
        needles.add(str.__str__(v))
    if not needles:  # the reference skips Polars: same schema, no rows
        return _take(t, [])
    t = _polars(t)
    return _filter(t, i, needles.__contains__)


def _null_filter(op: str, want_null: bool) -> Callable[[list], Table]:
    def run(args: list) -> Table:
        t = _table(args, 0, "df: ")
        name = _str(args, 1, "df: ")
        i = t.index(name)
        if i is None:
            raise _Err(f"df.{op}: column `{name}` not found")
        t = _polars(t)
        col = t.columns[i]
        return _take(t, [r for r, v in enumerate(col) if (v is None) == want_null],
                     (True,) * t.ncols)
    run.__name__ = op
    run.__doc__ = f"``df.{op}(Table, Str) -> Result[Table, Str]``: any column type"
    return run


def drop_nulls(args: list) -> Table:
    """``df.drop_nulls(Table, List[Str]) -> Result[Table, Str]``: rows with no
    null in the named columns; an empty list returns the table unchanged."""
    t = _table(args, 0, "df: ")
    items = _list(args, 1, "df: ")
    if not items:
        return t
    idx = []
    for v in items:
        if not isinstance(v, str):
            raise _Err(f"df.drop_nulls: column list contained non-Str: {debug_repr(v)}")
        i = t.index(str.__str__(v))
        if i is None:
            raise _Err(f"df.drop_nulls: column `{v}` not found")
        idx.append(i)
    t = _polars(t)
    cols = [t.columns[i] for i in dict.fromkeys(idx)]
    return _take(t, [r for r in range(t.nrows) if all(c[r] is not None for c in cols)],
                 (True,) * t.ncols)


def sort_by(args: list) -> Table:
    """``df.sort_by(Table, Str, Bool) -> Result[Table, Str]``: ascending when
    true; nulls first either way; stable."""
    t = _table(args, 0, "df: ")
    name = _str(args, 1, "df: ")
    asc = _bool(args, 2, "df: ")
    t = _polars(t)
    i = _polars_column(t, name, "sort_by")
    col = t.columns[i]
    if None in col:
        nulls = [r for r, v in enumerate(col) if v is None]
        present = [r for r, v in enumerate(col) if v is not None]
    else:
        nulls, present = [], range(len(col))  # type: ignore[assignment]
    keys = tuple(_total(v) if v is not None else None for v in col) \
        if t.types[i] == "Float64" else col
    # ``reverse`` keeps ties in their original order too
    rows = sorted(present, key=keys.__getitem__, reverse=not asc)
    return _take(t, nulls + rows, (True,) * t.ncols)


def _group_key(dtype: str) -> Callable[[object], object]:
    # Polars hashes floats normalised: -0.0 is 0.0, every NaN one value
    if dtype == "Float64":
        return lambda v: None if v is None else ("nan" if v != v else v + 0.0)
    return lambda v: v


_AGG_OPS = ("sum", "mean", "min", "max", "count", "n_distinct")


def _agg(op: str, dtype: str, values: tuple) -> tuple[str, object]:
    """One aggregate over one group's values: (output type, value)."""
    present = [v for v in values if v is not None] if None in values else values
    if op == "count":
        return "Int64", len(present)
    if op == "n_distinct":
        key = _group_key(dtype)
        return "Int64", len({key(v) for v in values})
    if dtype == "Utf8" and op in ("sum", "mean"):
        raise _Err(f"df.group_by_agg: `{op}` operation not supported "
                   f"for dtype `str`")
    if op == "sum":
        if dtype == "Int64":
            return "Int64", _wrap(sum(present))  # type: ignore[arg-type]
        total = 0.0
        for v in present:
            total += v  # type: ignore[operator]
        return "Float64", total
    if op == "mean":
        if not present:
            return "Float64", None
        total = 0.0
        for v in present:
            total += v  # type: ignore[operator]
        return "Float64", total / len(present)
    # min / max: NaN only when there is nothing else
    if dtype == "Float64":
        numbers = [v for v in present if v == v]  # type: ignore[comparison-overlap]
        if not numbers:
            return dtype, (math.nan if present else None)
        present = numbers
    if not present:
        return dtype, None
    return dtype, (min(present) if op == "min" else max(present))  # type: ignore[type-var]


def group_by_agg(args: list) -> Table:
    """``df.group_by_agg(Table, List[Str], List[(Str, Str, Str)]) -> Result[Table, Str]``:
    each spec ``(out_name, in_name, op)``, ``op`` one of sum, mean, min, max,
    count, n_distinct. The key columns, then one column per spec; a group
    per distinct key (nulls one group), in the order of their first row."""
    t = _table(args, 0, "df: ")
    keys_in = _list(args, 1, "df: ")
    specs_in = _list(args, 2, "df: ")
    keys = []
    for k in keys_in:
        if not isinstance(k, str):
            raise _Err(f"group_by_agg: key list contained non-Str: {debug_repr(k)}")
        keys.append(str.__str__(k))
    specs = []
    for spec in specs_in:
        if not (isinstance(spec, tuple) and len(spec) == 3):
            raise _Err(f"group_by_agg: spec must be (out, in, op) tuple, got {debug_repr(spec)}")
        for part, what in zip(spec, ("out_name", "in_name", "op"), strict=True):
            if not isinstance(part, str):
                raise _Err(f"group_by_agg: {what} not Str: {debug_repr(part)}")
        out_name, in_name, op = (str.__str__(p) for p in spec)
        if op not in _AGG_OPS:
            raise _Err(f"group_by_agg: unknown op `{op}` "
                       "(v1: sum|mean|min|max|count|n_distinct)")
        specs.append((out_name, in_name, op))
    t = _polars(t)
    key_idx = [_polars_column(t, k, "group_by_agg") for k in keys]
    in_idx = [_polars_column(t, s[1], "group_by_agg") for s in specs]
    seen: set = set()
    for k in keys:
        if k in seen:
            raise _Err(f"df.group_by_agg: duplicate: group_by keys contained duplicate output "
                       f"name '{k}'. It's possible that multiple expressions are returning the "
                       "same default column name. If this is the case, try renaming the columns "
                       'with `.alias("new_name")` to avoid duplicate column names.')
        seen.add(k)
    _unique_names(keys + [s[0] for s in specs], "df.group_by_agg: ")
    if not keys and not specs:
        _no_columns()
    # every spec reads every row: bound the work, not only the output
    _check_size(t.nrows, len(keys) + len(specs), "group_by_agg")
    key_cols = [t.columns[i] if t.types[i] != "Float64"
                else tuple(map(_group_key("Float64"), t.columns[i])) for i in key_idx]
    groups: dict[object, list[int]] = {}
    if not keys:  # Polars aggregates the whole frame: one row, even from no row
        groups[()] = list(range(t.nrows))
    for r, k in enumerate(key_cols[0] if len(key_cols) == 1 else zip(*key_cols, strict=True)):
        rows = groups.get(k)
        if rows is None:
            groups[k] = [r]
        else:
            rows.append(r)
    firsts = [rows[0] for rows in groups.values()] if keys else []
    names = list(keys)
    types = [t.types[i] for i in key_idx]
    cols = [_gather(t.columns[i], firsts) for i in key_idx]
    for (out_name, _, op), i in zip(specs, in_idx, strict=True):
        col, dtype = t.columns[i], t.types[i]
        out_type = {"count": "Int64", "n_distinct": "Int64", "mean": "Float64"}.get(op, dtype)
        if dtype == "Utf8" and op in ("sum", "mean"):
            _agg(op, dtype, ())  # the error, even with no group
        values = []
        for rows in groups.values():
            out_type, v = _agg(op, dtype, _gather(col, rows))
            values.append(v)
        names.append(out_name)
        types.append(out_type)
        cols.append(tuple(values))
    return Table._make(tuple(names), tuple(types), (True,) * len(names), tuple(cols),
                       len(groups))


def _no_columns() -> None:
    # ``from_polars`` of a DataFrame with no column: ``RecordBatch::try_new`` refuses it
    raise _Err("df: RecordBatch::try_new: Invalid argument error: must either specify a row "
               "count or at least one column")


def _check_size(nrows: int, ncols: int, op: str) -> None:
    if nrows * max(ncols, 1) > MAX_RESULT_CELLS:
        raise _Err(f"df.{op}: the result ({nrows} rows x {ncols} columns) exceeds the cap "
                   f"of {MAX_RESULT_CELLS} cells")


def _joined_names(left: Table, right: Table, skip: int | None, op: str) -> list[str]:
    names = list(left.names)
    taken = set(names)
    for j, n in enumerate(right.names):
        if j == skip:
            continue
        name = n + "_right" if n in taken else n
        if name in taken:
            raise _Err(f"df.{op}: duplicate: column with name '{name}' already exists")
        names.append(name)
        taken.add(name)
    if not names:
        _no_columns()
    return names


def _key_join(args: list, op: str, keep_unmatched: bool) -> Table:
    left = _table(args, 0, "df: ")
    right = _table(args, 1, "df: ")
    on = _str(args, 2, "df: ")
    left, right = _polars(left), _polars(right)
    li = _polars_column(left, on, op)
    ri = _polars_column(right, on, op)
    lt, rt = left.types[li], right.types[ri]
    if lt != rt:
        raise _Err(f"df.{op}: datatypes of join keys don't match - `{on}`: "
                   f"{_POLARS_DTYPE[lt]} on left does not match `{on}`: "
                   f"{_POLARS_DTYPE[rt]} on right (and no other type was available to cast to)")
    names = _joined_names(left, right, ri, op)
    lkeys, rkeys = left.columns[li], right.columns[ri]
    if lt == "Float64":
        key = _group_key(lt)
        lkeys, rkeys = tuple(map(key, lkeys)), tuple(map(key, rkeys))
    index: dict = {}
    for r, v in enumerate(rkeys):
        if v is not None:  # null keys never match (nulls_equal = false)
            rows = index.get(v)
            if rows is None:
                index[v] = [r]
            else:
                rows.append(r)
    unmatched = right.nrows  # gathers the null appended below
    left_rows: list[int] = []
    right_rows: list[int] = []
    ncols = len(names)
    for r, v in enumerate(lkeys):
        matches = index.get(v) if v is not None else None
        if matches:
            _check_size(len(left_rows) + len(matches), ncols, op)
            left_rows.extend([r] * len(matches))
            right_rows.extend(matches)
        elif keep_unmatched:
            left_rows.append(r)
            right_rows.append(unmatched)
    _check_size(len(left_rows), ncols, op)
    cols = [_gather(c, left_rows) for c in left.columns]
    types = list(left.types)
    for j, c in enumerate(right.columns):
        if j != ri:
            cols.append(_gather(c + (None,), right_rows))
            types.append(right.types[j])
    return Table._make(tuple(names), tuple(types), (True,) * ncols, tuple(cols), len(left_rows))


def inner_join(args: list) -> Table:
    """``df.inner_join(Table, Table, Str) -> Result[Table, Str]``: rows whose key
    is in both; the left columns, then the right ones but the key (a name the
    left has gets ``_right``)."""
    return _key_join(args, "inner_join", False)


def left_join(args: list) -> Table:
    """``df.left_join(Table, Table, Str) -> Result[Table, Str]``: every left row,
    the right columns null where nothing matched."""
    return _key_join(args, "left_join", True)


def cross_join(args: list) -> Table:
    """``df.cross_join(Table, Table) -> Result[Table, Str]``: every pair of rows,
    left-major; a right name the left has gets ``_right``."""
    left = _polars(_table(args, 0, "df: "))
    right = _polars(_table(args, 1, "df: "))
    names = _joined_names(left, right, None, "cross_join")
    n = left.nrows * right.nrows
    _check_size(n, len(names), "cross_join")
    rn = right.nrows
    cols = [tuple(v for v in c for _ in range(rn)) for c in left.columns]
    cols += [c * left.nrows for c in right.columns]
    return Table._make(tuple(names), left.types + right.types, (True,) * len(names),
                       tuple(cols), n)


BUILTINS: dict[tuple[str, str], Callable[[list], object]] = {
    ("arrow", "from_int_columns"): _lifted(from_int_columns),
    ("arrow", "from_float_columns"): _lifted(from_float_columns),
    ("arrow", "from_str_columns"): _lifted(from_str_columns),
    ("arrow", "col_sum_int"): _lifted(col_sum_int),
    ("arrow", "col_sum_float"): _lifted(col_sum_float),
    ("arrow", "col_mean"): _lifted(col_mean),
    ("arrow", "col_min_int"): _lifted(col_min_int),
    ("arrow", "col_max_int"): _lifted(col_max_int),
    ("arrow", "col_count"): _lifted(col_count),
    ("arrow", "select_cols"): _lifted(select_cols),
    ("arrow", "drop_col"): _lifted(drop_col),
    ("arrow", "rename_col"): _lifted(rename_col),
    ("arrow", "nrows"): _bare(nrows),
    ("arrow", "ncols"): _bare(ncols),
    ("arrow", "col_names"): _bare(col_names),
    ("arrow", "col_type"): _bare(col_type),
    ("arrow", "head"): _bare(head),
    ("arrow", "tail"): _bare(tail),
    ("arrow", "slice"): _bare(slice_),
    ("df", "filter_eq_int"): _lifted(_int_filter("filter_eq_int", _eq)),
    ("df", "filter_gt_int"): _lifted(_int_filter("filter_gt_int", _gt)),
    ("df", "filter_lt_int"): _lifted(_int_filter("filter_lt_int", _lt)),
    ("df", "filter_eq_str"): _lifted(filter_eq_str),
    ("df", "filter_in_str"): _lifted(filter_in_str),
    ("df", "filter_eq_float"): _lifted(_float_filter("filter_eq_float", _eq)),
    ("df", "filter_lt_float"): _lifted(_float_filter("filter_lt_float", _lt)),
    ("df", "filter_gt_float"): _lifted(_float_filter("filter_gt_float", _gt)),
    ("df", "filter_isnull"): _lifted(_null_filter("filter_isnull", True)),
    ("df", "filter_notnull"): _lifted(_null_filter("filter_notnull", False)),
    ("df", "drop_nulls"): _lifted(drop_nulls),
    ("df", "sort_by"): _lifted(sort_by),
    ("df", "group_by_agg"): _lifted(group_by_agg),
    ("df", "inner_join"): _lifted(inner_join),
    ("df", "left_join"): _lifted(left_join),
    ("df", "cross_join"): _lifted(cross_join),
}
