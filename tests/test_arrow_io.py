"""arrow.read_csv / read_parquet / read_parquet_cols / write_parquet / write_csv
on real files: the upstream std_arrow I/O cases restated, round trips through
pyarrow itself both ways, CSV quirks, the bounds, scope escapes, corrupt
files, the gates, and the ops without pyarrow installed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

import lexfast
from lexfast import EffectError, Limits, PolicyDenied, Table, err, ok

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pcsv = pytest.importorskip("pyarrow.csv")

RW = ["fs_read", "fs_write"]


@pytest.fixture
def d(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "out").mkdir()
    return root


@pytest.fixture
def h(make_handler, d):
    return make_handler(effects=RW, fs_read=[d], fs_write=[d])


def small() -> Table:
    """The upstream tests' small_batch: x Int64, y Float64, g Utf8, non-null."""
    return Table([("x", "Int64", [1, 2, 3], False), ("y", "Float64", [10.0, 20.0, 30.0], False),
                  ("g", "Utf8", ["a", "b", "c"], False)])


def value(r):
    assert r.name == "Ok", r
    return r.args[0]


def message(r) -> str:
    assert r.name == "Err", r
    return r.args[0]


def nullable(t: Table) -> Table:
    """t with every column nullable, as a CSV read gives it (the reference's too)."""
    return Table([(n, ty, c, True) for n, ty, c in zip(t.names, t.types, t.columns, strict=True)])


def col(t: Table, name: str) -> list:
    return list(t.columns[t.names.index(name)])


# -- upstream std_arrow.rs, restated -------------------------------------------------

def test_arrow_read_csv_end_to_end(h, d):
    p = d / "t.csv"
    p.write_text("x,y\n" + "".join(f"{i},{i * 10}\n" for i in range(1, 11)))
    t = value(h.dispatch("arrow", "read_csv", [str(p)]))
    assert value(h.dispatch("arrow", "col_sum_int", [t, "x"])) == 55


def test_arrow_read_csv_outside_allow_list_is_err(make_handler):
    h = make_handler(effects=["fs_read"], fs_read=["/nonexistent/path"])
    with pytest.raises(PolicyDenied, match="--allow-fs-read") as e:
        h.dispatch("arrow", "read_csv", ["/etc/passwd"])
    assert "arrow.read_csv: `/etc/passwd` outside --allow-fs-read" == str(e.value)


def test_parquet_write_read_round_trip(h, d):
    p = str(d / "t.parquet")
    assert h.dispatch("arrow", "write_parquet", [small(), p]) == ok(None)
    assert os.path.exists(p)
    t = value(h.dispatch("arrow", "read_parquet", [p]))
    assert (t.nrows, t.ncols, t.names) == (3, 3, ("x", "y", "g"))
    assert value(h.dispatch("arrow", "col_sum_int", [t, "x"])) == 6
    assert value(h.dispatch("arrow", "col_sum_float", [t, "y"])) == 60.0
    assert t == small()  # types and nullability too


def test_parquet_read_cols_pushes_down_projection(h, d):
    p = str(d / "t.parquet")
    h.dispatch("arrow", "write_parquet", [small(), p])
    t = value(h.dispatch("arrow", "read_parquet_cols", [p, ["x", "g"]]))
    assert t.nrows == 3 and t.names == ("x", "g")
    # the reference's ProjectionMask::roots: file order, each column once
    t = value(h.dispatch("arrow", "read_parquet_cols", [p, ["g", "x", "g"]]))
    assert t.names == ("x", "g")
    t = value(h.dispatch("arrow", "read_parquet_cols", [p, []]))
    assert t.names == ()


def test_parquet_read_cols_missing_column_is_err(h, d):
    p = str(d / "t.parquet")
    h.dispatch("arrow", "write_parquet", [small(), p])
    assert message(h.dispatch("arrow", "read_parquet_cols", [p, ["x", "nope"]])) == \
        "arrow.read_parquet_cols: column `nope` not in file"


def test_write_csv_round_trips_through_read_csv(h, d):
    p = str(d / "t.csv")
    assert h.dispatch("arrow", "write_csv", [small(), p]) == ok(None)
    t = value(h.dispatch("arrow", "read_csv", [p]))
    assert t.nrows == 3
    assert value(h.dispatch("arrow", "col_sum_int", [t, "x"])) == 6
    assert t.types == ("Int64", "Float64", "Utf8")  # 10.0 is written as 10.0, not 10


def test_parquet_round_trip_via_dispatch(h, d):
    p = str(d / "t.parquet")
    t = value(h.dispatch("arrow", "from_int_columns", [[("x", [1, 2, 3, 4, 5])]]))
    assert h.dispatch("arrow", "write_parquet", [t, p]) == ok(None)
    back = value(h.dispatch("arrow", "read_parquet", [p]))
    assert value(h.dispatch("arrow", "col_sum_int", [back, "x"])) == 15


def test_parquet_write_outside_allow_list_is_err(make_handler, tmp_path):
    h = make_handler(effects=["fs_write"], fs_write=["/nonexistent/path"])
    target = tmp_path / "refused.parquet"
    r = h.dispatch("arrow", "write_parquet", [small(), str(target)])
    assert message(r) == f"arrow.write_parquet: fs path `{target}` outside --allow-fs-write"
    assert not target.exists()


# -- round trips through pyarrow itself ------------------------------------------------

def test_lexfast_parquet_reads_back_with_pyarrow(h, d):
    t = Table([("i", "Int64", [1, None, -(1 << 63)]), ("f", "Float64", [1.5, float("nan"), None]),
               ("s", "Utf8", ["é", None, ""]), ("b", "Boolean", [True, None, False])])
    p = d / "t.parquet"
    h.dispatch("arrow", "write_parquet", [t, str(p)])
    back = pq.read_table(p)
    assert back.schema == pa.schema([("i", pa.int64()), ("f", pa.float64()), ("s", pa.string()),
                                     ("b", pa.bool_())])
    assert back.column("i").to_pylist() == [1, None, -(1 << 63)]
    assert back.column("s").to_pylist() == ["é", None, ""]
    assert back.column("b").to_pylist() == [True, None, False]
    assert value(h.dispatch("arrow", "read_parquet", [str(p)])) == t


def test_pyarrow_parquet_reads_with_lexfast_converting_losslessly(h, d):
    src = pa.table({
        "i8": pa.array([1, None, -128], pa.int8()),
        "u32": pa.array([0, 4_000_000_000, 7], pa.uint32()),
        "u64": pa.array([1, 2, (1 << 63) - 1], pa.uint64()),
        "f32": pa.array([0.5, None, 2.0], pa.float32()),
        "f16": pa.array([1.5, 2.0, None], pa.float16()),
        "big": pa.array(["a", "b", None], pa.large_string()),
        "cat": pa.array(["x", "y", "x"]).dictionary_encode(),
        "nul": pa.array([None, None, None], pa.null()),
    })
    p = d / "py.parquet"
    pq.write_table(src, p)
    t = value(h.dispatch("arrow", "read_parquet", [str(p)]))
    assert t.types == ("Int64", "Int64", "Int64", "Float64", "Float64", "Utf8", "Utf8", "Utf8")
    assert col(t, "i8") == [1, None, -128]
    assert col(t, "u32") == [0, 4_000_000_000, 7]
    assert col(t, "u64") == [1, 2, (1 << 63) - 1]
    assert col(t, "f32") == [0.5, None, 2.0]
    assert col(t, "f16") == [1.5, 2.0, None]
    assert col(t, "cat") == ["x", "y", "x"]
    assert col(t, "nul") == [None, None, None]


def test_unconvertible_types_are_an_err_naming_the_column(h, d):
    import datetime
    import decimal
    p = d / "odd.parquet"
    pq.write_table(pa.table({
        "ok": pa.array([1, 2]),
        "when": pa.array([datetime.date(2024, 1, 1), None]),
        "money": pa.array([decimal.Decimal("1.10"), None], pa.decimal128(5, 2)),
        "xs": pa.array([[1], []]),
        "rec": pa.array([{"a": 1}, {"a": 2}]),
    }), p)
    assert message(h.dispatch("arrow", "read_parquet", [str(p)])) == (
        "arrow.read_parquet: column `when` has type date32[day], which a Table cannot hold "
        "without loss (Int64/Float64/Utf8/Boolean)")
    for name, ty in (("money", "decimal128(5, 2)"), ("xs", "list<element: int64>"),
                     ("rec", "struct<a: int64>")):
        m = message(h.dispatch("arrow", "read_parquet_cols", [str(p), [name]]))
        assert f"column `{name}` has type {ty}" in m, m
    # the columns it can hold are read past the others (a struct's leaves skipped)
    assert col(value(h.dispatch("arrow", "read_parquet_cols", [str(p), ["ok"]])), "ok") == [1, 2]
    p2 = d / "u64.parquet"
    pq.write_table(pa.table({"u": pa.array([1 << 63], pa.uint64())}), p2)
    assert message(h.dispatch("arrow", "read_parquet", [str(p2)])) == \
        "arrow.read_parquet: column `u` (uint64) holds a value past Int64"


def test_lexfast_csv_reads_back_with_pyarrow(h, d):
    t = Table([("n", "Int64", [1, None]), ("s", "Utf8", ['a,"b"\nc', ""]),
               ("f", "Float64", [1e20, -0.0]), ("b", "Boolean", [False, True])])
    p = d / "t.csv"
    h.dispatch("arrow", "write_csv", [t, str(p)])
    assert p.read_text() == 'n,s,f,b\n1,"a,""b""\nc",1e+20,false\n,"",-0.0,true\n'
    back = pcsv.read_csv(p, convert_options=pcsv.ConvertOptions(
        strings_can_be_null=True, quoted_strings_can_be_null=False))
    assert back.column("n").to_pylist() == [1, None]
    assert back.column("s").to_pylist() == ['a,"b"\nc', ""]
    assert back.column("f").to_pylist() == [1e20, -0.0]
    assert back.column("b").to_pylist() == [False, True]
    assert value(h.dispatch("arrow", "read_csv", [str(p)])) == nullable(t)


def test_pyarrow_csv_reads_with_lexfast(h, d):
    p = d / "py.csv"
    pcsv.write_csv(pa.table({"a": [1, 2], "b": ["x y", "z"], "c": [0.25, None]}), p)
    t = value(h.dispatch("arrow", "read_csv", [str(p)]))
    assert (t.types, col(t, "a"), col(t, "b"), col(t, "c")) == \
        (("Int64", "Utf8", "Float64"), [1, 2], ["x y", "z"], [0.25, None])


def test_special_floats_round_trip_through_csv(h, d):
    t = Table([("f", "Float64", [float("inf"), float("-inf"), float("nan"), 5e-324])])
    p = str(d / "f.csv")
    h.dispatch("arrow", "write_csv", [t, p])
    assert value(h.dispatch("arrow", "read_csv", [p])) == nullable(t)


# -- CSV quirks ---------------------------------------------------------------------------

def read_csv_text(h, d, text: str | bytes):
    p = d / "q.csv"
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return h.dispatch("arrow", "read_csv", [str(p)])


def test_csv_quoted_fields_nulls_and_empty_strings(h, d):
    t = value(read_csv_text(h, d, 'a,b,c\n"x, y","say ""hi""",1\n,"",\n"multi\nline",NA,3\n'))
    assert col(t, "a") == ["x, y", None, "multi\nline"]
    assert col(t, "b") == ['say "hi"', "", "NA"]  # only an empty cell is null
    assert col(t, "c") == [1, None, 3]
    assert t.types == ("Utf8", "Utf8", "Int64") and t.nullable == (True, True, True)


def test_csv_header_only_and_empty_file(h, d):
    t = value(read_csv_text(h, d, "a,b\n"))
    assert (t.nrows, t.names, t.types) == (0, ("a", "b"), ("Utf8", "Utf8"))
    assert message(read_csv_text(h, d, "")).startswith("arrow.read_csv: parse `")
    assert "Empty CSV file" in message(read_csv_text(h, d, ""))


def test_csv_types_inferred_over_the_whole_file_and_dates_stay_text(h, d):
    rows = "".join(f"{i},2024-01-0{i % 9 + 1},true\n" for i in range(3000))
    t = value(read_csv_text(h, d, "n,day,flag\n" + rows + "x,12:30:00,FALSE\n"))
    assert t.types == ("Utf8", "Utf8", "Boolean")
    assert col(t, "day")[:2] == ["2024-01-01", "2024-01-02"] and col(t, "day")[-1] == "12:30:00"
    assert col(t, "flag")[-1] is False
    # 0/1 stay ints (not pyarrow's default booleans)
    assert value(read_csv_text(h, d, "b\n0\n1\n")).types == ("Int64",)


def test_csv_ragged_and_not_utf8_are_errs(h, d):
    assert "Expected 2 columns, got 3" in message(read_csv_text(h, d, "a,b\n1,2,3\n"))
    assert "arrow.read_csv: parse" in message(read_csv_text(h, d, b"a\n\xff\xfe\n"))


def test_write_csv_one_column_and_no_rows(h, d):
    p = d / "one.csv"
    h.dispatch("arrow", "write_csv", [Table([("s", "Utf8", ["", "a"])]), str(p)])
    assert p.read_text() == 's\n""\na\n'
    h.dispatch("arrow", "write_csv", [Table([("x", "Int64", [])]), str(p)])
    assert p.read_text() == "x\n"
    # one column: a null is an empty line, read back as a null (RFC 4180)
    for t in (Table([("x", "Int64", [1, None, 2])]), Table([("s", "Utf8", [None, "", None])])):
        h.dispatch("arrow", "write_csv", [t, str(p)])
        assert value(h.dispatch("arrow", "read_csv", [str(p)])) == nullable(t)
    # wider files skip empty lines
    p.write_text("a,b\n1,2\n\n3,4\n\n")
    assert col(value(h.dispatch("arrow", "read_csv", [str(p)])), "b") == [2, 4]


# -- bounds ---------------------------------------------------------------------------------

def test_rows_cap(make_handler, d):
    h = make_handler(effects=RW, fs_read=[d], fs_write=[d], limits=Limits(arrow_max_rows=5))
    five = Table([("x", "Int64", list(range(5)))])
    six = Table([("x", "Int64", list(range(6)))])
    for ext, w in (("csv", "write_csv"), ("parquet", "write_parquet")):
        op = f"read_{ext}"
        p = str(d / f"five.{ext}")
        assert h.dispatch("arrow", w, [five, p]) == ok(None)
        assert value(h.dispatch("arrow", op, [p])) == (five if ext == "parquet" else nullable(five))
        p = str(d / f"six.{ext}")
        assert h.dispatch("arrow", w, [six, p]) == ok(None)  # writing is not capped by rows
        m = message(h.dispatch("arrow", op, [p]))
        assert m.startswith(f"arrow.{op}: `{p}` has 6 rows, more than Limits.arrow_max_rows (5)"), m


def test_parquet_row_groups_are_checked_as_decoded(make_handler, d):
    h = make_handler(effects=RW, fs_read=[d], limits=Limits(arrow_max_rows=10))
    p = d / "groups.parquet"
    pq.write_table(pa.table({"x": list(range(8))}), p, row_group_size=3)
    assert col(value(h.dispatch("arrow", "read_parquet", [str(p)])), "x") == list(range(8))


def test_bytes_cap_on_reads(make_handler, d):
    h = make_handler(effects=RW, fs_read=[d], fs_write=[d], limits=Limits(arrow_max_bytes=1000))
    p = d / "big.csv"
    p.write_text("x\n" + "1\n" * 600)
    assert message(h.dispatch("arrow", "read_csv", [str(p)])) == \
        f"arrow.read_csv: `{p}` is 1202 bytes, more than Limits.arrow_max_bytes (1000)"
    # a small file that decodes big (the footer's uncompressed sizes, before decoding)
    q = d / "bomb.parquet"
    pq.write_table(pa.table({"s": ["x" * 10_000] * 20}), q, compression="zstd",
                   use_dictionary=False)
    assert q.stat().st_size < 1000
    m = message(h.dispatch("arrow", "read_parquet", [str(q)]))
    assert m == f"arrow.read_parquet: `{q}` decodes to more than Limits.arrow_max_bytes (1000) bytes"


def test_cells_cap(make_handler, d):
    # a cell costs Python a pointer at least: at most arrow_max_bytes / 8 of them
    h = make_handler(effects=RW, fs_read=[d], limits=Limits(arrow_max_bytes=8000))
    q = d / "bools.parquet"
    pq.write_table(pa.table({f"b{i}": [True] * 200 for i in range(6)}), q)
    assert q.stat().st_size < 8000
    assert message(h.dispatch("arrow", "read_parquet", [str(q)])) == \
        f"arrow.read_parquet: `{q}` has 200 rows x 6 columns, more than " \
        "Limits.arrow_max_bytes / 8 (1000) cells"
    assert value(h.dispatch("arrow", "read_parquet_cols", [str(q), ["b0", "b1"]])).nrows == 200
    p = d / "bools.csv"
    p.write_text("a,b,c,d,e,f\n" + "1,,,,,\n" * 200)
    assert "has 200 rows x 6 columns, more than" in message(
        h.dispatch("arrow", "read_csv", [str(p)]))


def test_bytes_cap_on_writes_leaves_the_old_file(make_handler, d):
    h = make_handler(effects=RW, fs_read=[d], fs_write=[d], limits=Limits(arrow_max_bytes=2000))
    big = Table([("s", "Utf8", [os.urandom(50).hex() for _ in range(50)])])  # incompressible
    for op in ("write_csv", "write_parquet"):
        p = d / f"keep.{op}"
        p.write_text("old")
        m = message(h.dispatch("arrow", op, [big, str(p)]))
        assert m == (f"arrow.{op}: `{p}` would be more than Limits.arrow_max_bytes (2000) "
                     "bytes; nothing written")
        assert p.read_text() == "old"
    assert sorted(os.listdir(d)) == ["keep.write_csv", "keep.write_parquet"]  # no temp left


def test_columns_cap(make_handler, d):
    h = make_handler(effects=RW, fs_read=[d], limits=Limits(arrow_max_columns=100))
    p = d / "wide.csv"
    p.write_text(",".join(["c"] * 101) + "\n")
    assert message(h.dispatch("arrow", "read_csv", [str(p)])) == \
        f"arrow.read_csv: `{p}` has 101 columns, more than Limits.arrow_max_columns (100)"
    q = d / "wide.parquet"
    pq.write_table(pa.table({f"c{i}": [1] for i in range(101)}), q)
    assert "has 101 columns, more than Limits.arrow_max_columns (100)" in \
        message(h.dispatch("arrow", "read_parquet", [str(q)]))


# -- gates (the scope escapes are tests/test_escapes_arrow.py) ---------------------------

def test_gates(make_handler, d):
    (d / "t.csv").write_text("x\n1\n")
    h = make_handler(effects=["fs_write"], fs_read=[d], fs_write=[d])
    for op, args in (("read_csv", [str(d / "t.csv")]), ("read_parquet", [str(d / "t.csv")]),
                     ("read_parquet_cols", [str(d / "t.csv"), []])):
        with pytest.raises(PolicyDenied, match="fs_read"):
            h.dispatch("arrow", op, args)
    h = make_handler(effects=["fs_read"], fs_read=[d], fs_write=[d])
    for op in ("write_csv", "write_parquet"):
        with pytest.raises(PolicyDenied, match="fs_write"):
            h.dispatch("arrow", op, [small(), str(d / "n")])
        assert not (d / "n").exists()


# -- bad files and bad arguments -----------------------------------------------------------

def test_corrupt_and_truncated_parquet_are_errs(h, d):
    good = d / "good.parquet"
    pq.write_table(pa.table({"x": list(range(1000))}), good)
    data = good.read_bytes()
    cases = {"garbage": b"PAR1 not really parquet PAR1", "empty": b"", "csv": b"x\n1\n",
             "truncated": data[: len(data) // 2] + data[-8:],
             "flipped": data[:4] + bytes(b ^ 0xFF for b in data[4:200]) + data[200:]}
    for name, content in cases.items():
        p = d / f"{name}.parquet"
        p.write_bytes(content)
        m = message(h.dispatch("arrow", "read_parquet", [str(p)]))
        assert m.startswith("arrow.read_parquet: "), (name, m)
        assert str(p) in m, (name, m)


def test_missing_file_directory_and_fifo(h, d):
    m = message(h.dispatch("arrow", "read_csv", [str(d / "nope.csv")]))
    assert m == f"arrow.read_csv: open `{d}/nope.csv`: No such file or directory (os error 2)"
    assert message(h.dispatch("arrow", "read_parquet", [str(d)])) == \
        f"arrow.read_parquet: open `{d}`: a directory"
    fifo = d / "fifo"
    os.mkfifo(fifo)
    done = []
    t = threading.Thread(target=lambda: done.append(h.dispatch("arrow", "read_csv", [str(fifo)])))
    t.start()
    t.join(30)
    assert not t.is_alive(), "read_csv waited on a FIFO"
    assert message(done[0]) == f"arrow.read_csv: open `{fifo}`: not a regular file"
    (d / "sub").mkdir()
    m = message(h.dispatch("arrow", "write_csv", [small(), str(d / "sub")]))
    assert m == f"arrow.write_csv: create `{d}/sub`: Is a directory (os error 21)"


def test_argument_errors_are_hard(h, d):
    p = str(d / "t.parquet")
    with pytest.raises(EffectError, match=r"arrow.write_parquet: first arg must be arrow.Table, "
                                          r"got Int\(5\)"):
        h.dispatch("arrow", "write_parquet", [5, p])
    with pytest.raises(EffectError, match="first arg must be arrow.Table, got nothing"):
        h.dispatch("arrow", "write_csv", [])
    with pytest.raises(EffectError, match="expected Str arg"):
        h.dispatch("arrow", "write_csv", [small(), 3])
    with pytest.raises(EffectError, match="expected Str arg"):
        h.dispatch("arrow", "read_csv", [[1]])
    with pytest.raises(EffectError, match=r"arrow.read_parquet_cols: expected List\[Str\], got"):
        h.dispatch("arrow", "read_parquet_cols", [p, "x"])
    with pytest.raises(EffectError, match="arrow.read_parquet_cols: column name not Str: Int"):
        h.dispatch("arrow", "read_parquet_cols", [p, ["x", 1]])
    # as the reference: the scope is checked before cols, cols before the file is opened
    with pytest.raises(PolicyDenied, match="outside --allow-fs-read"):
        h.dispatch("arrow", "read_parquet_cols", ["/etc/passwd", 5])
    with pytest.raises(EffectError, match="expected List"):
        h.dispatch("arrow", "read_parquet_cols", [str(d / "missing.parquet"), 5])


def test_write_replaces_atomically_and_keeps_permissions(h, d):
    p = d / "t.parquet"
    p.write_text("old")
    os.chmod(p, 0o640)
    assert h.dispatch("arrow", "write_parquet", [small(), str(p)]) == ok(None)
    assert (os.stat(p).st_mode & 0o777) == 0o640
    assert pq.read_table(p).num_rows == 3
    assert os.listdir(d) == ["t.parquet"]


def test_duplicate_and_odd_column_names_round_trip(h, d):
    t = Table([("a", "Int64", [1]), ("a", "Utf8", ["x"]), ("", "Float64", [0.5]),
               ("a,b \"c\"", "Boolean", [True])])
    for op, rd in (("write_parquet", "read_parquet"), ("write_csv", "read_csv")):
        p = str(d / op)
        assert h.dispatch("arrow", op, [t, p]) == ok(None)
        back = value(h.dispatch("arrow", rd, [p]))
        assert back.names == t.names and back.types == t.types, (op, back)


def test_read_parquet_cols_picks_top_level_columns_past_nested_ones(h, d):
    p = d / "nested.parquet"
    src = pa.Table.from_arrays(
        [pa.array([{"a": 1, "b": {"c": 2}}]), pa.array([[1, 2]]), pa.array([7]),
         pa.array(["first"]), pa.array(["second"]), pa.array([{"x": 1}])],
        names=["s", "xs", "s.a", "dup", "dup", "m"])
    pq.write_table(src, p)
    t = value(h.dispatch("arrow", "read_parquet_cols", [str(p), ["dup", "s.a"]]))
    assert (t.names, t.columns) == (("s.a", "dup"), ((7,), ("first",)))


# -- without pyarrow ---------------------------------------------------------------------

def test_without_pyarrow_the_ops_name_the_extra(tmp_path):
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("blocked")
sys.meta_path.insert(0, Block())
from lexfast import DefaultHandler, Policy, Table
root = {str(tmp_path)!r}
open(root + "/t.csv", "w").write("x\\n1\\n")
h = DefaultHandler(Policy(allow_effects=["fs_read", "fs_write"], allow_fs_read=[root],
                          allow_fs_write=[root]))
t = Table([("x", "Int64", [1])])
print(h.dispatch("arrow", "read_csv", [root + "/t.csv"]))
print(h.dispatch("arrow", "read_parquet", [root + "/t.csv"]))
print(h.dispatch("arrow", "write_parquet", [t, root + "/t.parquet"]))
print(h.dispatch("arrow", "write_csv", [t, root + "/w.csv"]))
print("pyarrow" in sys.modules)
h.close()
"""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(lexfast.__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    need = "needs pyarrow (pip install 'lexfast[arrow]')"
    assert lines[0] == str(err(f"arrow.read_csv: {need}"))
    assert lines[1] == str(err(f"arrow.read_parquet: {need}"))
    assert lines[2] == str(err(f"arrow.write_parquet: {need}"))
    assert lines[3] == str(ok(None))  # write_csv needs nothing
    assert lines[4] == "False"
    assert (tmp_path / "w.csv").read_text() == "x\n1\n"
    assert not (tmp_path / "t.parquet").exists()
