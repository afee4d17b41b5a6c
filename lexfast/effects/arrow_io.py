"""std.arrow's file ops: arrow.read_csv, read_parquet, read_parquet_cols
(gated ``fs_read``, scoped by --allow-fs-read and ``read_root`` like
``io.read``) and arrow.write_parquet, write_csv (``fs_write``,
--allow-fs-write). The pure ``arrow.*``/``df.*`` ops on the resulting
``Table`` are builtins (``lexfast.builtins.arrow``).

Shapes and messages follow the reference (``arrow.rs``, ``handler.rs``):
``Ok(Table)`` / ``Ok(Unit)``; a read outside the scope is HARD
``arrow.{op}: `{path}` outside --allow-fs-read``, a write outside it SOFT
``arrow.{op}: fs path `{path}` outside --allow-fs-write``; a file that cannot
be opened, parsed or decoded is SOFT ``arrow.{op}: …`` naming the path.

pyarrow does the parsing and encoding; it is an optional extra
(``pip install 'lexfast[arrow]'``), imported on the first call, and without
it the reads and ``write_parquet`` answer SOFT ``arrow.{op}: needs pyarrow
(pip install 'lexfast[arrow]')``. ``write_csv`` is written here and needs
nothing.

Where lexfast is stricter than the reference (docs/design.md §5):

- every file is opened beneath its scope root (``scope.open_in_scope``:
  ``openat2(RESOLVE_BENEATH)``, or the portable walk), and pyarrow is handed
  the bytes or a file object on that descriptor, never a path, so ``..`` or
  a symlink cannot reach outside the scope and nothing is reopened by name;
  only regular files are read (a FIFO is refused, not waited on);
- writes are atomic (a temp file beside the target, renamed over it): the old
  file or the whole new one, never half of one;
- reads are bounded before anything is decoded: the file's size, the decoded
  bytes (a Parquet footer's uncompressed sizes, then each row group as read)
  by ``Limits.arrow_max_bytes``, rows by ``Limits.arrow_max_rows``, columns by
  ``Limits.arrow_max_columns`` (a CSV header of many empty names costs
  pyarrow kilobytes per column), cells (rows x columns) by
  ``arrow_max_bytes / 8`` (each costs the Table at least a pointer, where
  Arrow spent a bit on a Boolean); a write larger than ``arrow_max_bytes`` is
  refused with nothing written;
- columns outside the Table's four types are converted where that loses
  nothing (narrower and unsigned ints → Int64, float16/32 → Float64, large
  and view strings → Utf8, dictionary-encoded → its values, an all-null
  column → Utf8) and are otherwise a SOFT ``err`` naming the column and its
  type. CSV cells are text, so a CSV column pyarrow would read as a date,
  time or timestamp stays Utf8 as written (the reference renders Polars'
  temporal columns to strings too);
- CSV: only an empty cell is null (not ``NA``/``null``, which are strings), a
  quoted empty cell ``""`` is the empty string (the reference reads both as
  null), in a one-column file an empty line is a null cell (the reference
  skips it), only ``true``/``false``
  (any case pyarrow knows) are Boolean; ``write_csv`` writes nulls as empty
  cells and empty strings as ``""``, and Float64 values always with a ``.``
  or exponent, so what it writes reads back as the same table (every column
  nullable; and, CSV having no types, a Utf8 column whose every value reads
  as a number or a Boolean comes back as one).
"""

from __future__ import annotations

import io
import math
import os
import re
import stat as _stat

from ..errors import EffectError, PolicyDenied
from ..kernel import err, expect_str, ok
from ..scope import (
    PathTooLong,
    ScopeEscape,
    open_in_scope,
    open_parent_in_scope,
    path_too_long,
    read_file_bounded,
    replace_in_dir,
    scoped,
)
from ..values import Table, debug_repr, os_error_text
from .io import read_target

NEEDS_PYARROW = "needs pyarrow (pip install 'lexfast[arrow]')"

#: the types a Table column holds, as pyarrow names them after conversion
_TABLE_TYPES = ("Int64", "Float64", "Utf8", "Boolean")

#: how many leading bytes of a CSV are read to count its header's columns
_HEADER_SNIFF = 1 << 20


class _Fail(Exception):
    """A SOFT ``err`` with this text (already prefixed ``arrow.{op}: ``)."""


def _pyarrow(op: str):
    try:
        import pyarrow
    except ImportError:
        raise _Fail(f"arrow.{op}: {NEEDS_PYARROW}") from None
    return pyarrow


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def _limits(h):
    lim = h.session.limits
    return int(lim.arrow_max_rows), int(lim.arrow_max_bytes), int(lim.arrow_max_columns)


# -- opening beneath the scope ---------------------------------------------------

def _read_denied(op: str, path: str, why: str = "--allow-fs-read") -> PolicyDenied:
    return PolicyDenied(f"arrow.{op}: `{path}` outside {why}", effect="fs_read", path=path)


def _read_scope(h, op: str, path: str) -> tuple[str, str]:
    """``(resolved, root)`` of a read of ``path`` (``read_root`` joined when
    set); raises ``PolicyDenied`` (HARD, as the reference) or ``_Fail``."""
    if len(path) > 1024 and path_too_long(path):
        raise _Fail(f"arrow.{op}: {path_too_long(path)}")
    try:
        resolved, root, _ = read_target(h, path, lambda p, why: _read_denied(op, p, why))
    except PathTooLong as e:  # read_root joined with the path
        raise _Fail(f"arrow.{op}: {e}") from None
    return resolved, root


def _open_read(h, op: str, path: str, scope: tuple[str, str] | None = None) -> tuple[int, int]:
    """A blocking descriptor on the regular file ``path`` (opened beneath its
    read-scope root, ``scope`` when the caller checked it already) and its
    size; raises ``PolicyDenied`` or ``_Fail``."""
    resolved, root = scope if scope is not None else _read_scope(h, op, path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (refused below)
        fd = open_in_scope(resolved, root, os.O_RDONLY | os.O_NONBLOCK)
    except ScopeEscape:
        raise _read_denied(op, path) from None
    except (OSError, ValueError) as e:
        raise _Fail(f"arrow.{op}: open `{path}`: {_os_text(e)}") from None
    try:
        st = os.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            what = "a directory" if _stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise _Fail(f"arrow.{op}: open `{path}`: {what}")
        _, max_bytes, _ = _limits(h)
        if st.st_size > max_bytes:
            raise _Fail(f"arrow.{op}: `{path}` is {st.st_size} bytes, more than "
                        f"Limits.arrow_max_bytes ({max_bytes})")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _os_text(e: BaseException) -> str:
    return os_error_text(e) if isinstance(e, OSError) else str(e)


def _write_target(h, op: str, path: str):
    """``(resolved, root)`` of a write inside --allow-fs-write, or ``_Fail``
    (SOFT, as the reference)."""
    if len(path) > 1024 and path_too_long(path):
        raise _Fail(f"arrow.{op}: {path_too_long(path)}")
    found = scoped(path, h.policy.write_roots)
    if found is None:
        raise _Fail(f"arrow.{op}: fs path `{path}` outside --allow-fs-write")
    return found


class _CappedWriter(io.RawIOBase):
    """A write-only file object on a descriptor that refuses to grow past
    ``cap`` bytes (what pyarrow's Parquet writer is handed)."""

    def __init__(self, fd: int, cap: int) -> None:
        super().__init__()
        self.fd = fd
        self.cap = cap
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        view = memoryview(b).cast("B")
        if self.written + len(view) > self.cap:
            raise _TooBig(self.cap)
        done = 0
        while done < len(view):
            done += os.write(self.fd, view[done:])
        self.written += done
        return done

    def tell(self) -> int:
        return self.written


class _TooBig(Exception):
    def __init__(self, cap: int) -> None:
        super().__init__(cap)
        self.cap = cap


def _write_atomic(h, op: str, path: str, fill) -> object:
    """Replace ``path`` (inside --allow-fs-write) with what ``fill(out)``
    writes to the temp file (``out``: a ``_CappedWriter`` on it; closing it
    leaves the descriptor to ``replace_in_dir``), atomically; ``ok(None)``,
    or ``_Fail``."""
    resolved, root = _write_target(h, op, path)
    _, max_bytes, _ = _limits(h)
    try:
        dfd, name = open_parent_in_scope(resolved, root)
    except ScopeEscape:
        raise _Fail(f"arrow.{op}: fs path `{path}` outside --allow-fs-write") from None
    except (OSError, ValueError) as e:
        raise _Fail(f"arrow.{op}: create `{path}`: {_os_text(e)}") from None
    try:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and _stat.S_ISDIR(st.st_mode):
            raise _Fail(f"arrow.{op}: create `{path}`: Is a directory (os error 21)")
        if st is not None and _stat.S_ISLNK(st.st_mode):
            # became a symlink since the check: never written through
            raise _Fail(f"arrow.{op}: fs path `{path}` outside --allow-fs-write")
        mode = _stat.S_IMODE(st.st_mode) if st is not None and _stat.S_ISREG(st.st_mode) else None
        replace_in_dir(dfd, name, mode, lambda fd: fill(_CappedWriter(fd, max_bytes)))
    except _TooBig as e:
        raise _Fail(f"arrow.{op}: `{path}` would be more than Limits.arrow_max_bytes "
                    f"({e.cap}) bytes; nothing written") from None
    except OSError as e:
        raise _Fail(f"arrow.{op}: write `{path}`: {os_error_text(e)}") from None
    finally:
        os.close(dfd)
    return ok(None)


# -- pyarrow columns -> Table columns ------------------------------------------------

def _convert(pa, op: str, name: str, field_type, column):
    """``(type, values)`` of a pyarrow column as a Table column, converting
    only where nothing is lost; ``_Fail`` naming the column otherwise."""
    t = pa.types
    ty = field_type
    if t.is_dictionary(ty):
        column = column.cast(ty.value_type)
        ty = ty.value_type
    if t.is_int64(ty):
        return "Int64", column.to_pylist()
    if t.is_integer(ty):
        if t.is_uint64(ty):
            try:
                column = column.cast(pa.int64())  # safe cast: refuses values past i64
            except (pa.ArrowInvalid, OverflowError):
                raise _Fail(f"arrow.{op}: column `{name}` ({ty}) holds a value past Int64") from None
            return "Int64", column.to_pylist()
        return "Int64", column.cast(pa.int64()).to_pylist()
    if t.is_floating(ty):
        if not t.is_float64(ty):
            column = column.cast(pa.float64())
        return "Float64", column.to_pylist()
    if _is_text(t, ty):
        return "Utf8", column.to_pylist()
    if t.is_boolean(ty):
        return "Boolean", column.to_pylist()
    if t.is_null(ty):
        return "Utf8", [None] * len(column)
    raise _Fail(f"arrow.{op}: column `{name}` has type {field_type}, which a Table cannot "
                f"hold without loss ({'/'.join(_TABLE_TYPES)})")


def _holdable(pa, ty) -> bool:
    """Whether a column of pyarrow type ``ty`` converts to a Table column
    without loss (what :func:`_convert` accepts)."""
    t = pa.types
    if t.is_dictionary(ty):
        ty = ty.value_type
    return (t.is_integer(ty) or t.is_floating(ty) or _is_text(t, ty) or t.is_boolean(ty)
            or t.is_null(ty))


def _is_text(t, ty) -> bool:
    # string_view came after the pyarrow this supports (>= 15)
    is_view = getattr(t, "is_string_view", None)
    return t.is_string(ty) or t.is_large_string(ty) or (is_view is not None and is_view(ty))


def _check_types(pa, op: str, schema) -> None:
    """Refuse an unconvertible column before anything is decoded."""
    for field in schema:
        if not _holdable(pa, field.type):
            raise _Fail(f"arrow.{op}: column `{field.name}` has type {field.type}, which a "
                        f"Table cannot hold without loss ({'/'.join(_TABLE_TYPES)})")


def _to_table(pa, op: str, table) -> Table:
    names, types, nullable, cols = [], [], [], []
    for i, field in enumerate(table.schema):
        dtype, values = _convert(pa, op, field.name, field.type, table.column(i))
        names.append(field.name)
        types.append(dtype)
        has_null = table.column(i).null_count > 0 or pa.types.is_null(field.type)
        nullable.append(bool(field.nullable) or has_null)
        cols.append(tuple(values))
    # well-typed by construction (each column converted above)
    return Table._make(tuple(names), tuple(types), tuple(nullable), tuple(cols), table.num_rows)


def _check_cells(op: str, path: str, rows: int, cols: int, max_bytes: int) -> None:
    # A Table cell costs Python at least a pointer, whatever Arrow spent on it
    # (a bit, for a Boolean): at most arrow_max_bytes / 8 cells.
    cap = max_bytes // 8
    if rows * cols > cap:
        raise _Fail(f"arrow.{op}: `{path}` has {rows} rows x {cols} columns, more than "
                    f"Limits.arrow_max_bytes / 8 ({cap}) cells")


def _table_or_fail(pa, op: str, path: str, table) -> Table:
    try:
        return _to_table(pa, op, table)
    except MemoryError:
        raise _Fail(f"arrow.{op}: `{path}`: out of memory converting the table") from None


# -- reads -----------------------------------------------------------------------

_HEADER_STOPS = re.compile(rb'[",\r\n]')


def _csv_header_columns(data: bytes) -> int:
    """How many fields the CSV's first record has (quoted commas and newlines
    honoured), looking at most ``_HEADER_SNIFF`` bytes: a bound, not a parse."""
    if not data:
        return 0
    n, i, limit = 1, 0, min(len(data), _HEADER_SNIFF)
    while i < limit:
        m = _HEADER_STOPS.search(data, i, limit)
        if m is None:
            break
        c = data[m.start()]
        if c == 0x2C:  # ,
            n += 1
            i = m.end()
        elif c == 0x22:  # " : to the closing quote ("" is an escaped one)
            j = m.end()
            while True:
                k = data.find(b'"', j, limit)
                if k < 0:
                    return n
                if data[k + 1:k + 2] == b'"':
                    j = k + 2
                    continue
                i = k + 1
                break
        else:  # the end of the record
            break
    return n


def _csv_options(pc, ncols: int, strings=()):
    convert = pc.ConvertOptions(
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
        true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"],
        column_types={n: "string" for n in strings} if strings else None)
    # pyarrow's own (process-wide, bounded) thread pool parses the blocks in
    # parallel, as the reference reads CSV with Polars' parallel reader
    read = pc.ReadOptions(use_threads=True)
    # one column: an empty line is a record of one empty (null) cell, RFC 4180's
    # reading and how write_csv writes such a null; wider files skip empty lines
    parse = pc.ParseOptions(ignore_empty_lines=ncols != 1)
    return read, convert, parse


def read_csv(h, args):
    path = expect_str(args, 0)
    op = "read_csv"
    try:
        fd, _ = _open_read(h, op, path)
        max_rows, max_bytes, max_cols = _limits(h)
        try:
            data = read_file_bounded(fd, max_bytes)
        except OverflowError:
            raise _Fail(f"arrow.{op}: `{path}` is more than Limits.arrow_max_bytes "
                        f"({max_bytes}) bytes") from None
        except OSError as e:
            raise _Fail(f"arrow.{op}: read `{path}`: {os_error_text(e)}") from None
        finally:
            os.close(fd)
        ncols = _csv_header_columns(data)
        if ncols > max_cols:
            raise _Fail(f"arrow.{op}: `{path}` has {ncols} columns, more than "
                        f"Limits.arrow_max_columns ({max_cols})")
        pa = _pyarrow(op)
        import pyarrow.csv as pc

        def parse(strings=()):
            read, convert, parse_opts = _csv_options(pc, ncols, strings)
            try:
                return pc.read_csv(pa.BufferReader(data), read_options=read,
                                   parse_options=parse_opts, convert_options=convert)
            except MemoryError:
                raise _Fail(f"arrow.{op}: parse `{path}`: out of memory") from None
            except (pa.ArrowException, ValueError, OSError) as e:
                raise _Fail(f"arrow.{op}: parse `{path}`: {_first_line(e)}") from None

        table = parse()
        # dates, times and timestamps: read again, those columns as the text they are
        text = {f.name for f in table.schema if not _holdable(pa, f.type)}
        if text:
            table = parse(text)
        if table.num_rows > max_rows:
            raise _Fail(f"arrow.{op}: `{path}` has {table.num_rows} rows, more than "
                        f"Limits.arrow_max_rows ({max_rows})")
        if table.nbytes > max_bytes:
            raise _Fail(f"arrow.{op}: `{path}` decodes to more than Limits.arrow_max_bytes "
                        f"({max_bytes}) bytes")
        _check_cells(op, path, table.num_rows, table.num_columns, max_bytes)
        return ok(_table_or_fail(pa, op, path, table))
    except _Fail as e:
        return err(str(e))


def _parquet_columns(op: str, schema, wanted: list[str] | None) -> list[int] | None:
    """Top-level column indices to read: all (None), or those named in
    ``wanted`` (the first of a repeated name), in file order, each once, as
    the reference's ``ProjectionMask::roots``."""
    if wanted is None:
        return None
    names = schema.names
    picked = set()
    for name in wanted:
        try:
            picked.add(names.index(name))
        except ValueError:
            raise _Fail(f"arrow.{op}: column `{name}` not in file") from None
    return sorted(picked)


def _read_parquet(h, op: str, path: str, wanted: list[str] | None, scope=None):
    fd, _ = _open_read(h, op, path, scope)
    try:
        f = os.fdopen(fd, "rb", buffering=1 << 16)
    except BaseException:
        os.close(fd)
        raise
    with f:
        pa = _pyarrow(op)
        import pyarrow.parquet as pq
        max_rows, max_bytes, max_cols = _limits(h)
        try:
            # the footer's lists and strings bounded as the columns and bytes are
            pf = pq.ParquetFile(f, thrift_container_size_limit=max(max_cols, 1 << 12) * 4,
                                thrift_string_size_limit=min(max_bytes, 100_000_000))
            meta = pf.metadata
            schema = pf.schema_arrow
        except MemoryError:
            raise _Fail(f"arrow.{op}: open `{path}`: out of memory") from None
        except (pa.ArrowException, ValueError, OSError) as e:
            raise _Fail(f"arrow.{op}: open `{path}`: {_first_line(e)}") from None
        if len(schema) > max_cols:
            raise _Fail(f"arrow.{op}: `{path}` has {len(schema)} columns, more than "
                        f"Limits.arrow_max_columns ({max_cols})")
        indices = _parquet_columns(op, schema, wanted)
        chosen = schema if indices is None else pa.schema([schema.field(i) for i in indices])
        _check_types(pa, op, chosen)
        if meta.num_rows > max_rows:
            raise _Fail(f"arrow.{op}: `{path}` has {meta.num_rows} rows, more than "
                        f"Limits.arrow_max_rows ({max_rows})")
        _check_cells(op, path, meta.num_rows, len(chosen), max_bytes)
        # What the footer says decoding will cost, before any page is read; the
        # row groups are checked again as they are decoded (a footer can lie).
        leaf_roots = _leaf_roots(pa, schema, meta.num_columns)
        keep = None if indices is None or leaf_roots is None else set(indices)
        declared = 0
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            for c in range(rg.num_columns):
                if keep is None or leaf_roots[c] in keep:  # type: ignore[index]
                    declared += max(rg.column(c).total_uncompressed_size, 0)
        if declared > max_bytes:
            raise _Fail(f"arrow.{op}: `{path}` decodes to more than Limits.arrow_max_bytes "
                        f"({max_bytes}) bytes")
        if indices is None:
            leaves = None
        elif leaf_roots is not None:
            # the leaf columns of exactly the chosen top-level fields (a name
            # pyarrow would also take as a nested path or a repeat is no matter)
            leaves = [c for c, r in enumerate(leaf_roots) if r in keep]  # type: ignore[operator]
        else:
            raise _Fail(f"arrow.{op}: `{path}`: the file's columns do not match its schema")
        parts = []
        rows = nbytes = 0
        try:
            for g in range(meta.num_row_groups):
                part = pf.reader.read_row_group(g, column_indices=leaves, use_threads=True)
                rows += part.num_rows
                nbytes += part.nbytes
                _check_cells(op, path, rows, len(chosen), max_bytes)
                if rows > max_rows:
                    raise _Fail(f"arrow.{op}: `{path}` has more than Limits.arrow_max_rows "
                                f"({max_rows}) rows")
                if nbytes > max_bytes:
                    raise _Fail(f"arrow.{op}: `{path}` decodes to more than "
                                f"Limits.arrow_max_bytes ({max_bytes}) bytes")
                parts.append(part)
        except MemoryError:
            raise _Fail(f"arrow.{op}: row-group decode `{path}`: out of memory") from None
        except (pa.ArrowException, ValueError, OSError) as e:
            raise _Fail(f"arrow.{op}: row-group decode `{path}`: {_first_line(e)}") from None
    table = pa.concat_tables(parts) if parts else chosen.empty_table()
    return ok(_table_or_fail(pa, op, path, table))


def _leaf_count(pa, ty) -> int:
    t = pa.types
    if t.is_struct(ty):
        return sum(_leaf_count(pa, ty.field(i).type) for i in range(ty.num_fields))
    if t.is_map(ty):
        return _leaf_count(pa, ty.key_type) + _leaf_count(pa, ty.item_type)
    if t.is_list(ty) or t.is_large_list(ty) or t.is_fixed_size_list(ty):
        return _leaf_count(pa, ty.value_type)
    return 1


def _leaf_roots(pa, schema, nleaves: int) -> list[int] | None:
    """For each Parquet leaf column, the index of the top-level field it is
    in (None when the two schemas do not line up: then every leaf counts)."""
    out = [i for i, f in enumerate(schema) for _ in range(_leaf_count(pa, f.type))]
    return out if len(out) == nleaves else None


def read_parquet(h, args):
    path = expect_str(args, 0)
    try:
        return _read_parquet(h, "read_parquet", path, None)
    except _Fail as e:
        return err(str(e))


def read_parquet_cols(h, args):
    path = expect_str(args, 0)
    op = "read_parquet_cols"
    try:
        scope = _read_scope(h, op, path)  # the scope first, then cols (the reference's order)
    except _Fail as e:
        return err(str(e))
    if len(args) < 2 or not isinstance(args[1], list):
        got = debug_repr(args[1]) if len(args) > 1 else "nothing"
        raise EffectError(f"arrow.{op}: expected List[Str], got {got}")
    cols = []
    for v in list.copy(args[1]):
        if not isinstance(v, str):
            raise EffectError(f"arrow.{op}: column name not Str: {debug_repr(v)}")
        cols.append(str.__str__(v))
    try:
        return _read_parquet(h, op, path, cols, scope)
    except _Fail as e:
        return err(str(e))


# -- writes ------------------------------------------------------------------------

def _table_arg(args, op: str) -> Table:
    v = args[0] if args else None
    if not isinstance(v, Table):
        got = debug_repr(v) if args else "nothing"
        raise EffectError(f"arrow.{op}: first arg must be arrow.Table, got {got}")
    return v


_PA_TYPES = {"Int64": "int64", "Float64": "float64", "Utf8": "string", "Boolean": "bool_"}


def write_parquet(h, args):
    op = "write_parquet"
    t = _table_arg(args, op)
    path = expect_str(args, 1)
    try:
        _write_target(h, op, path)  # the scope before pyarrow is looked for
        pa = _pyarrow(op)
        import pyarrow.parquet as pq
        try:
            fields = [pa.field(n, getattr(pa, _PA_TYPES[ty])(), nullable=null)
                      for n, ty, null in zip(t.names, t.types, t.nullable, strict=True)]
            arrays = [pa.array(col, type=f.type) for col, f in zip(t.columns, fields, strict=True)]
            table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        except (pa.ArrowException, ValueError, TypeError, UnicodeEncodeError) as e:
            raise _Fail(f"arrow.{op}: writer init: {_first_line(e)}") from None

        def fill(out: _CappedWriter) -> None:
            try:
                pq.write_table(table, out)
            except _TooBig:
                raise
            except (pa.ArrowException, ValueError) as e:
                if isinstance(e.__context__, _TooBig):
                    raise e.__context__ from None
                raise _Fail(f"arrow.{op}: write: {_first_line(e)}") from None

        return _write_atomic(h, op, path, fill)
    except _Fail as e:
        return err(str(e))


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')

#: rows formatted and written per step (bounds the memory of the text)
_CSV_CHUNK = 8192


def _csv_text(s: str) -> str:
    # the csv crate's "necessary" quoting, plus: an empty string is quoted so
    # that it reads back as "" (an empty cell is a null)
    if not s or _NEEDS_QUOTES.search(s):
        return '"' + s.replace('"', '""') + '"'
    return s


def _csv_float(v: float) -> str:
    # repr always has a "." or an exponent, so the column reads back as Float64
    if math.isfinite(v):
        return repr(v)
    return "NaN" if v != v else ("inf" if v > 0 else "-inf")


def _csv_column(dtype: str, values) -> list[str]:
    if dtype == "Utf8":
        return ["" if v is None else _csv_text(v) for v in values]
    if dtype == "Float64":
        return ["" if v is None else _csv_float(v) for v in values]
    if dtype == "Boolean":
        return ["" if v is None else ("true" if v else "false") for v in values]
    return ["" if v is None else str(v) for v in values]


def write_csv(h, args):
    op = "write_csv"
    t = _table_arg(args, op)
    path = expect_str(args, 1)
    try:
        _write_target(h, op, path)

        def fill(out: _CappedWriter) -> None:
            _write_text(out, ",".join(map(_csv_text, t.names)) + "\n")
            if not t.ncols:
                return
            for start in range(0, t.nrows, _CSV_CHUNK):
                stop = start + _CSV_CHUNK
                cols = [_csv_column(ty, c[start:stop])
                        for ty, c in zip(t.types, t.columns, strict=True)]
                lines = cols[0] if len(cols) == 1 else map(",".join, zip(*cols, strict=True))
                _write_text(out, "\n".join(lines) + "\n")

        return _write_atomic(h, op, path, fill)
    except _Fail as e:
        return err(str(e))


def _write_text(out: _CappedWriter, text: str) -> None:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _Fail(f"arrow.write_csv: write: a cell is not valid UTF-8 ({e.reason})") from None
    out.write(data)


ROWS = [
    ("arrow", "read_csv", "fs_read", read_csv),
    ("arrow", "read_parquet", "fs_read", read_parquet),
    ("arrow", "read_parquet_cols", "fs_read", read_parquet_cols),
    ("arrow", "write_parquet", "fs_write", write_parquet),
    ("arrow", "write_csv", "fs_write", write_csv),
]
