"""arrow.* and df.* (lexfast/builtins/arrow.py) through ``DefaultHandler.dispatch``,
against the reference's ``src/arrow.rs`` and ``src/df.rs``.

Upstream cases are restated from the reference's tests/std_arrow.rs and
tests/std_df.rs (named in comments; the file I/O ones belong to the effects,
issue 19). Run once per core (``LEXFAST_NO_EXTENSIONS=1`` for the twin).
"""

from __future__ import annotations

import copy
import math

import pytest

from lexfast import NONE, DefaultHandler, EffectError, Policy, Table, err, ok, some
from lexfast import builtins as B
from lexfast.builtins import arrow as A
from lexfast.values import debug_repr


@pytest.fixture
def h():
    handler = DefaultHandler(Policy.pure())
    try:
        yield handler
    finally:
        handler.close()


def call(h, name, *args):
    kind, op = name.split(".", 1)
    return h.dispatch(kind, op, list(args))


def value(h, name, *args):
    """The ``Ok`` payload of a lifted op."""
    r = call(h, name, *args)
    assert r.name == "Ok", r
    return r.args[0]


def error(h, name, *args):
    """The ``Err`` text of a lifted op."""
    r = call(h, name, *args)
    assert r.name == "Err", r
    return r.args[0]


def raises(h, name, args, msg):
    kind, op = name.split(".", 1)
    with pytest.raises(EffectError) as e:
        h.dispatch(kind, op, list(args))
    assert str(e.value) == msg


ARROW_OPS = ("from_int_columns from_float_columns from_str_columns col_sum_int col_sum_float "
             "col_mean col_min_int col_max_int col_count select_cols drop_col rename_col nrows "
             "ncols col_names col_type head tail slice").split()
DF_OPS = ("filter_eq_int filter_gt_int filter_lt_int filter_eq_str filter_in_str "
          "filter_eq_float filter_lt_float filter_gt_float filter_isnull filter_notnull "
          "drop_nulls sort_by group_by_agg inner_join left_join cross_join").split()


def int_table(h):
    # std_arrow.rs SRC_INT: x = [10, 20, 30, 40], y = [1, 2, 3, 4]
    return value(h, "arrow.from_int_columns", [("x", [10, 20, 30, 40]), ("y", [1, 2, 3, 4])])


def df_table(h):
    # std_df.rs SRC: x = [1..6], y = [10..60]
    return value(h, "arrow.from_int_columns",
                 [("x", [1, 2, 3, 4, 5, 6]), ("y", [10, 20, 30, 40, 50, 60])])


def mixed():
    # std_df.rs make_mixed_batch
    return Table([("x", "Int64", [1, 2, 3, 4, 5, 6], False),
                  ("y", "Float64", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], False),
                  ("g", "Utf8", ["a", "b", "a", "b", "a", "b"], False),
                  ("z", "Int64", [None, 20, None, 40, 50, 60], True)])


def col(t, name):
    return t.columns[t.names.index(name)]


# -- the table ------------------------------------------------------------------------

def test_every_reference_op_is_here_and_no_effect():
    assert sorted(B.TABLE["arrow"]) == sorted(ARROW_OPS)
    assert sorted(B.TABLE["df"]) == sorted(DF_OPS)
    for op in ("read_csv", "read_parquet", "read_parquet_cols", "write_parquet", "write_csv"):
        assert not B.is_pure_call("arrow", op)  # effects (issue 19)


# -- lexfast.Table ------------------------------------------------------------------------

def test_table_value_model():
    t = Table([("x", "Int64", [1, None]), ("f", "Float64", [math.nan, -0.0])])
    assert t.names == ("x", "f") and t.types == ("Int64", "Float64")
    assert t.nullable == (True, False) and t.nrows == 2 and t.ncols == 2
    assert Table(t.fields_and_columns(), nrows=t.nrows) == t
    # RecordBatch equality: by bits for floats, nullability counts
    assert t == Table([("x", "Int64", [1, None]), ("f", "Float64", [math.nan, -0.0])])
    assert t != Table([("x", "Int64", [1, None]), ("f", "Float64", [math.nan, 0.0])])
    assert Table([("x", "Int64", [1])]) != Table([("x", "Int64", [1], True)])
    assert hash(t) == hash(copy.deepcopy(t)) and copy.deepcopy(t) is t
    assert Table([], nrows=3).nrows == 3 and Table([], nrows=3) != Table([])
    with pytest.raises(AttributeError):
        t.nrows = 3  # type: ignore[misc]
    for bad in ([("x", "Int32", [1])], [("x", "Int64", [True])], [("x", "Int64", [2**63])],
                [("x", "Utf8", [1])], [("x", "Int64", [None], False)],
                [("x", "Int64", [1]), ("y", "Int64", [])], [("x",)], [(1, "Int64", [])]):
        with pytest.raises((TypeError, ValueError)):
            Table(bad)  # type: ignore[arg-type]
    assert debug_repr(t) == 'ArrowTable(RecordBatch { schema: ["x": Int64, "f": Float64], row_count: 2 })'


# -- construction ---------------------------------------------------------------------

def test_from_int_columns(h):
    # std_arrow.rs arrow_construction_and_introspection
    t = int_table(h)
    assert call(h, "arrow.nrows", t) == 4 and call(h, "arrow.ncols", t) == 2
    assert t == Table([("x", "Int64", [10, 20, 30, 40], False), ("y", "Int64", [1, 2, 3, 4], False)])
    assert value(h, "arrow.from_int_columns", []) == Table([])
    assert value(h, "arrow.from_int_columns", [("x", [])]).nrows == 0
    # names may repeat, as Arrow allows
    assert value(h, "arrow.from_int_columns", [("x", [1]), ("x", [2])]).names == ("x", "x")


def test_from_columns_errors(h):
    # std_arrow.rs arrow_length_mismatch_is_err_not_panic
    assert error(h, "arrow.from_int_columns", [("x", [1, 2, 3, 4]), ("z", [1, 2, 3])]) == \
        "from_*_columns: column `z` has 3 rows, expected 4"
    assert error(h, "arrow.from_int_columns", [("x", [1, True])]) == \
        "from_int_columns: column `x` non-Int element: Bool(true)"
    assert error(h, "arrow.from_int_columns", [("x", [2**63])]).startswith(
        "from_int_columns: column `x` non-Int element: ")
    assert error(h, "arrow.from_int_columns", [["x", [1]]]) == \
        'from_*_columns: column #0 must be a (Str, List) tuple, got List([Str("x"), List([Int(1)])])'
    assert error(h, "arrow.from_int_columns", [("x", [1]), (1, [1])]) == \
        "from_*_columns: column #1 name must be Str, got Int(1)"
    assert error(h, "arrow.from_int_columns", [("x", (1,))]) == \
        "from_*_columns: column #0 (`x`) values must be List, got Tuple([Int(1)])"
    assert error(h, "arrow.from_int_columns", "x") == 'expected List, got Str("x")'
    assert error(h, "arrow.from_int_columns") == "expected List, got nothing"
    # shape errors come before element errors, element errors before lengths
    assert error(h, "arrow.from_int_columns", [("x", ["a"]), 3]).startswith("from_*_columns: column #1")
    assert error(h, "arrow.from_int_columns", [("x", [1, 2]), ("y", ["a"])]).startswith(
        "from_int_columns: column `y` non-Int")


def test_from_float_and_str_columns(h):
    t = value(h, "arrow.from_float_columns", [("f", [1.5, 2, -0.0])])
    assert t == Table([("f", "Float64", [1.5, 2.0, -0.0], False)])
    assert error(h, "arrow.from_float_columns", [("f", ["1"])]) == \
        'from_float_columns: column `f` non-Float element: Str("1")'
    s = value(h, "arrow.from_str_columns", [("g", ["a", "é"])])
    assert s == Table([("g", "Utf8", ["a", "é"], False)])
    assert error(h, "arrow.from_str_columns", [("g", [1])]) == \
        "from_str_columns: column `g` non-Str element: Int(1)"


# -- introspection ------------------------------------------------------------------------

def test_introspection(h):
    t = int_table(h)
    # std_arrow.rs arrow_kernels_match_native_arrow_directly (col_names)
    assert call(h, "arrow.col_names", t) == ["x", "y"]
    assert call(h, "arrow.col_type", t, "x") == some("Int64")
    assert call(h, "arrow.col_type", t, "nope") == NONE
    assert call(h, "arrow.col_type", mixed(), "g") == some("Utf8")
    assert call(h, "arrow.col_type", mixed(), "y") == some("Float64")
    for op in ("nrows", "ncols", "col_names"):
        raises(h, f"arrow.{op}", [1], "expected arrow.Table, got Int(1)")
        raises(h, f"arrow.{op}", [], "expected arrow.Table, got nothing")
    raises(h, "arrow.col_type", [t, 1], "expected Str, got Int(1)")
    raises(h, "arrow.col_type", [t], "expected Str, got nothing")


# -- reductions -------------------------------------------------------------------------

def test_int_reductions(h):
    # std_arrow.rs arrow_int_reductions
    t = int_table(h)
    assert value(h, "arrow.col_sum_int", t, "x") == 100
    assert value(h, "arrow.col_mean", t, "x") == some(25.0)
    assert value(h, "arrow.col_min_int", t, "x") == some(10)
    assert value(h, "arrow.col_max_int", t, "y") == some(4)
    assert value(h, "arrow.col_count", t, "x") == 4
    assert value(h, "arrow.col_sum_float", t, "x") == 100.0
    # arrow's sum wraps
    big = value(h, "arrow.from_int_columns", [("x", [2**63 - 1, 1])])
    assert value(h, "arrow.col_sum_int", big, "x") == -2**63
    empty = value(h, "arrow.from_int_columns", [("x", [])])
    assert value(h, "arrow.col_sum_int", empty, "x") == 0
    assert value(h, "arrow.col_min_int", empty, "x") == NONE
    assert value(h, "arrow.col_max_int", empty, "x") == NONE
    assert value(h, "arrow.col_mean", empty, "x") == NONE


def test_reductions_with_nulls():
    # what read_csv and the df ops produce: nulls are skipped
    t = mixed()
    handler = DefaultHandler(Policy.pure())
    try:
        assert value(handler, "arrow.col_sum_int", t, "z") == 170
        assert value(handler, "arrow.col_count", t, "z") == 4
        assert value(handler, "arrow.col_mean", t, "z") == some(42.5)
        assert value(handler, "arrow.col_min_int", t, "z") == some(20)
        nulls = Table([("z", "Int64", [None, None])])
        assert value(handler, "arrow.col_mean", nulls, "z") == NONE
        assert value(handler, "arrow.col_sum_int", nulls, "z") == 0
    finally:
        handler.close()


def test_float_reductions_follow_arrows_lanes(h):
    t = mixed()
    assert value(h, "arrow.col_sum_float", t, "y") == 21.0
    assert value(h, "arrow.col_mean", t, "y") == some(3.5)
    # four lane accumulators, tree-reduced: ((a0+a4)+(a2)) + ((a1)+(a3))
    xs = [1e16, 1.0, -1e16, 1.0, 1.0]
    ft = Table([("f", "Float64", xs)])
    acc = [1e16 + 1.0, 1.0, -1e16, 1.0]
    want = (acc[0] + acc[2]) + (acc[1] + acc[3])
    assert value(h, "arrow.col_sum_float", ft, "f") == want
    # with a null: two lanes
    nt = Table([("f", "Float64", [1e16, None, 1.0, 1.0, -1e16])])
    assert value(h, "arrow.col_sum_float", nt, "f") == (1e16 + 1.0 + -1e16) + 1.0
    assert math.isnan(value(h, "arrow.col_sum_float", Table([("f", "Float64", [math.nan])]), "f"))


def test_reduction_errors(h):
    t = mixed()
    # std_arrow.rs arrow_kernels_match_native_arrow_directly: the message names the column
    assert error(h, "arrow.col_sum_int", t, "nope") == "arrow: column `nope` not found"
    assert error(h, "arrow.col_sum_int", t, "y") == "arrow: column `y` is Float64, not Int64"
    assert error(h, "arrow.col_min_int", t, "g") == "arrow: column `g` is Utf8, not Int64"
    assert error(h, "arrow.col_max_int", t, "g") == "arrow: column `g` is Utf8, not Int64"
    assert error(h, "arrow.col_sum_float", t, "g") == \
        "col_sum_float: column `g` is Utf8, expected Int64 or Float64"
    assert error(h, "arrow.col_mean", t, "g") == \
        "col_mean: column `g` is Utf8, expected Int64 or Float64"
    assert error(h, "arrow.col_count", t, "nope") == "arrow: column `nope` not found"
    assert value(h, "arrow.col_count", t, "g") == 6
    for op in ("col_sum_int", "col_sum_float", "col_mean", "col_min_int", "col_max_int",
               "col_count"):
        assert error(h, f"arrow.{op}", 1, "x") == "expected arrow.Table, got Int(1)"
        assert error(h, f"arrow.{op}", t) == "expected Str, got nothing"


# -- slicing and projection -----------------------------------------------------------------

def test_head_tail_slice(h):
    t = int_table(h)
    # std_arrow.rs arrow_slicing_and_projection (head)
    assert call(h, "arrow.nrows", call(h, "arrow.head", t, 2)) == 2
    assert col(call(h, "arrow.head", t, 2), "x") == (10, 20)
    assert call(h, "arrow.head", t, 99) == t and call(h, "arrow.head", t, -5).nrows == 0
    assert col(call(h, "arrow.tail", t, 1), "x") == (40,)
    assert call(h, "arrow.tail", t, 10) == t and call(h, "arrow.tail", t, -1).nrows == 0
    assert col(call(h, "arrow.slice", t, 1, 3), "y") == (2, 3)
    assert call(h, "arrow.slice", t, 3, 1).nrows == 0
    assert call(h, "arrow.slice", t, -4, 99) == t
    assert call(h, "arrow.slice", t, 9, 12).nrows == 0
    assert call(h, "arrow.head", t, 2).nullable == (False, False)
    raises(h, "arrow.head", [t, 1.0], "expected Int, got Float(1.0)")
    raises(h, "arrow.tail", [t], "expected Int, got nothing")
    raises(h, "arrow.slice", [t, 1], "expected Int, got nothing")
    raises(h, "arrow.slice", ["t", 1, 2], 'expected arrow.Table, got Str("t")')


def test_select_drop_rename(h):
    t = int_table(h)
    # std_arrow.rs arrow_slicing_and_projection
    assert call(h, "arrow.ncols", value(h, "arrow.select_cols", t, ["y"])) == 1
    assert error(h, "arrow.drop_col", t, "no_such") == "drop_col: column `no_such` not found"
    assert value(h, "arrow.select_cols", t, ["y", "x", "y"]).names == ("y", "x", "y")
    assert value(h, "arrow.select_cols", t, []).ncols == 0
    assert value(h, "arrow.select_cols", t, []).nrows == 4
    assert error(h, "arrow.select_cols", t, ["x", 1]) == "select_cols: name list contained non-Str: Int(1)"
    assert error(h, "arrow.select_cols", t, ["q"]) == "select_cols: column `q` not found"
    assert value(h, "arrow.drop_col", t, "x").names == ("y",)
    dup = value(h, "arrow.from_int_columns", [("x", [1]), ("y", [2]), ("x", [3])])
    assert value(h, "arrow.drop_col", dup, "x").names == ("y",)
    # std_arrow.rs arrow_rename_col
    r = value(h, "arrow.rename_col", t, "x", "renamed")
    assert value(h, "arrow.col_sum_int", r, "renamed") == 100
    assert call(h, "arrow.ncols", r) == 2
    assert call(h, "arrow.col_sum_int", r, "x").name == "Err"
    assert error(h, "arrow.rename_col", t, "no_such", "y2") == "rename_col: column `no_such` not found"
    assert value(h, "arrow.rename_col", dup, "x", "z").names == ("z", "y", "x")
    assert error(h, "arrow.rename_col", t, "x") == "expected Str, got nothing"
    assert error(h, "arrow.select_cols", t, "x") == 'expected List, got Str("x")'


# -- df: filters ------------------------------------------------------------------------------

def test_filter_int(h):
    t = df_table(h)
    # std_df.rs df_filter_eq_int, df_filter_gt_int, df_kernels_via_direct_dispatch
    assert call(h, "arrow.nrows", value(h, "df.filter_eq_int", t, "x", 3)) == 1
    assert call(h, "arrow.nrows", value(h, "df.filter_gt_int", t, "x", 3)) == 3
    assert value(h, "df.filter_gt_int", t, "x", 4).nrows == 2
    lt = value(h, "df.filter_lt_int", t, "x", 3)
    assert col(lt, "y") == (10, 20) and lt.nullable == (True, True)  # from_polars
    # an Int filter on a Float64 column compares as floats; nulls never pass
    m = mixed()
    assert value(h, "df.filter_gt_int", m, "y", 4).nrows == 2
    assert col(value(h, "df.filter_gt_int", m, "z", 0), "x") == (2, 4, 5, 6)
    assert value(h, "df.filter_eq_int", m, "x", 7).nrows == 0
    assert error(h, "df.filter_eq_int", m, "g", 1) == \
        "df.filter_eq_int: cannot compare string with numeric type (i64)"
    msg = error(h, "df.filter_eq_int", t, "nope", 1)
    assert msg.startswith("df.filter_eq_int: ") and "nope" in msg
    assert error(h, "df.filter_gt_int", t, "x", 1.5) == "df: expected Int, got Float(1.5)"
    assert error(h, "df.filter_lt_int", t, "x") == "df: expected Int, got nothing"
    assert error(h, "df.filter_lt_int", [], "x", 1) == "df: expected arrow.Table, got List([])"
    assert error(h, "df.filter_lt_int", t, 1, 1) == "df: expected Str, got Int(1)"


def test_filter_str(h):
    m = mixed()
    # std_df.rs df_filter_eq_str, df_filter_in_str, df_filter_in_str_empty_list_is_empty_result,
    # df_filter_eq_str_on_int_column_is_err
    assert value(h, "df.filter_eq_str", m, "g", "a").nrows == 3
    assert value(h, "df.filter_in_str", m, "g", ["a", "z"]).nrows == 3
    empty = value(h, "df.filter_in_str", m, "g", [])
    assert empty.nrows == 0 and empty.nullable == m.nullable  # Polars skipped
    msg = error(h, "df.filter_eq_str", m, "x", "1")
    assert msg == "df.filter_eq_str: expected Utf8 column, got Int64"
    assert error(h, "df.filter_in_str", m, "y", ["a"]) == \
        "df.filter_in_str: expected Utf8 column, got Float64"
    assert error(h, "df.filter_eq_str", m, "q", "a") == "df.filter_eq_str: column `q` not found"
    assert error(h, "df.filter_in_str", m, "g", ["a", 1]) == \
        "df.filter_in_str: needle list contained non-Str: Int(1)"
    assert error(h, "df.filter_eq_str", m, "g", 1) == "df: expected Str, got Int(1)"
    assert error(h, "df.filter_in_str", m, "g", "a") == 'df: expected List, got Str("a")'
    nulls = Table([("s", "Utf8", ["a", None])])
    assert value(h, "df.filter_in_str", nulls, "s", ["a"]).nrows == 1


def test_filter_float(h):
    m = mixed()
    # std_df.rs df_filter_lt_float, df_filter_gt_float, df_filter_eq_float
    assert value(h, "df.filter_lt_float", m, "y", 3.5).nrows == 3
    assert value(h, "df.filter_gt_float", m, "y", 3.5).nrows == 3
    assert value(h, "df.filter_eq_float", m, "y", 4.0).nrows == 1
    assert value(h, "df.filter_eq_float", m, "y", 4).nrows == 1  # an Int needle is a Float
    assert error(h, "df.filter_eq_float", m, "x", 1.0) == \
        "df.filter_eq_float: expected Float64 column, got Int64"
    assert error(h, "df.filter_lt_float", m, "q", 1.0) == "df.filter_lt_float: column `q` not found"
    assert error(h, "df.filter_gt_float", m, "y", "1") == 'df: expected Float, got Str("1")'
    # Polars' total order: NaN equals NaN and is above every number; -0.0 == 0.0
    f = Table([("f", "Float64", [math.nan, 1.0, -0.0, None])])
    assert value(h, "df.filter_eq_float", f, "f", math.nan).nrows == 1
    assert value(h, "df.filter_gt_float", f, "f", 1.0).nrows == 1
    assert value(h, "df.filter_lt_float", f, "f", math.nan).nrows == 2
    assert value(h, "df.filter_eq_float", f, "f", 0.0).nrows == 1


def test_null_filters_and_drop_nulls(h):
    m = mixed()
    # std_df.rs df_filter_isnull_and_notnull, df_filter_isnull_unknown_column_is_err
    assert value(h, "df.filter_isnull", m, "z").nrows == 2
    assert value(h, "df.filter_notnull", m, "z").nrows == 4
    assert "nope" in error(h, "df.filter_isnull", m, "nope")
    assert error(h, "df.filter_notnull", m, "nope") == "df.filter_notnull: column `nope` not found"
    # std_df.rs df_drop_nulls, df_drop_nulls_empty_col_list_is_noop
    assert value(h, "df.drop_nulls", m, ["z"]).nrows == 4
    assert value(h, "df.drop_nulls", m, []) is m
    assert value(h, "df.drop_nulls", m, ["x", "z", "z"]).nrows == 4
    assert error(h, "df.drop_nulls", m, ["q"]) == "df.drop_nulls: column `q` not found"
    assert error(h, "df.drop_nulls", m, [1]) == "df.drop_nulls: column list contained non-Str: Int(1)"
    assert error(h, "df.drop_nulls", m) == "df: expected List, got nothing"


def test_polars_refuses_other_column_types(h):
    b = Table([("b", "Boolean", [True, None]), ("x", "Int64", [1, 2])])
    want = "df: column `b` has unsupported type Boolean (v1: Int64/Float64/Utf8)"
    assert error(h, "df.filter_isnull", b, "x") == want
    assert error(h, "df.sort_by", b, "x", True) == want
    assert error(h, "df.cross_join", b, b) == want
    assert value(h, "arrow.col_count", b, "b") == 1  # arrow.* takes any column
    dup = Table([("x", "Int64", [1]), ("x", "Int64", [2])])
    assert error(h, "df.filter_eq_int", dup, "x", 1) == \
        "df: build DataFrame: duplicate: column with name 'x' has more than one occurrence"


# -- df: sort, group, join ------------------------------------------------------------------

def test_sort_by(h):
    t = df_table(h)
    # std_df.rs df_sort_by_desc
    s = value(h, "df.sort_by", t, "x", False)
    assert value(h, "arrow.col_sum_int", call(h, "arrow.head", s, 1), "x") == 6
    assert col(value(h, "df.sort_by", s, "x", True), "y") == (10, 20, 30, 40, 50, 60)
    m = mixed()
    assert col(value(h, "df.sort_by", m, "z", True), "z") == (None, None, 20, 40, 50, 60)
    assert col(value(h, "df.sort_by", m, "z", False), "z") == (None, None, 60, 50, 40, 20)
    # stable on ties, both ways
    assert col(value(h, "df.sort_by", m, "g", True), "x") == (1, 3, 5, 2, 4, 6)
    assert col(value(h, "df.sort_by", m, "g", False), "x") == (2, 4, 6, 1, 3, 5)
    f = Table([("f", "Float64", [math.nan, 2.0, -1.0])])
    assert col(value(h, "df.sort_by", f, "f", True), "f")[:2] == (-1.0, 2.0)
    assert math.isnan(col(value(h, "df.sort_by", f, "f", False), "f")[0])
    assert error(h, "df.sort_by", t, "x", 1) == "df: expected Bool, got Int(1)"
    assert "nope" in error(h, "df.sort_by", t, "nope", True)


def test_group_by_agg(h):
    t = df_table(h)
    # std_df.rs df_group_by_agg
    g = value(h, "df.group_by_agg", t, ["x"], [("sum_y", "y", "sum")])
    assert call(h, "arrow.nrows", g) == 6 and g.names == ("x", "sum_y")
    m = mixed()
    g = value(h, "df.group_by_agg", m, ["g"], [
        ("s", "x", "sum"), ("mu", "y", "mean"), ("lo", "z", "min"), ("hi", "z", "max"),
        ("n", "z", "count"), ("d", "z", "n_distinct"), ("first", "g", "min")])
    assert g.names == ("g", "s", "mu", "lo", "hi", "n", "d", "first")
    assert g.types == ("Utf8", "Int64", "Float64", "Int64", "Int64", "Int64", "Int64", "Utf8")
    assert g.nullable == (True,) * 8
    assert g.columns == (("a", "b"), (9, 12), (3.0, 4.0), (50, 20), (50, 60), (1, 3), (2, 3),
                         ("a", "b"))
    # nulls are one group; an all-null group's min is null, its sum 0
    n = Table([("k", "Int64", [None, 1, None]), ("v", "Int64", [None, 5, None])])
    g = value(h, "df.group_by_agg", n, ["k"], [("m", "v", "min"), ("s", "v", "sum")])
    assert g.columns == ((None, 1), (None, 5), (0, 5))
    assert value(h, "df.group_by_agg", m, ["g"], []).columns == (("a", "b"),)
    assert error(h, "df.group_by_agg", m, ["g"], [("o", "x", "median")]) == \
        "group_by_agg: unknown op `median` (v1: sum|mean|min|max|count|n_distinct)"
    assert error(h, "df.group_by_agg", m, [1], []) == "group_by_agg: key list contained non-Str: Int(1)"
    assert error(h, "df.group_by_agg", m, ["g"], [("o", "x")]) == \
        'group_by_agg: spec must be (out, in, op) tuple, got Tuple([Str("o"), Str("x")])'
    assert error(h, "df.group_by_agg", m, ["g"], [(1, "x", "sum")]) == "group_by_agg: out_name not Str: Int(1)"
    assert error(h, "df.group_by_agg", m, ["g"], [("o", 1, "sum")]) == "group_by_agg: in_name not Str: Int(1)"
    assert error(h, "df.group_by_agg", m, ["g"], [("o", "x", 1)]) == "group_by_agg: op not Str: Int(1)"
    assert "q" in error(h, "df.group_by_agg", m, ["q"], [])
    assert "q" in error(h, "df.group_by_agg", m, ["g"], [("o", "q", "sum")])
    assert "more than one occurrence" in error(h, "df.group_by_agg", m, ["g"], [("g", "x", "sum")])
    assert error(h, "df.group_by_agg", m, ["g", "g"], []).startswith(
        "df.group_by_agg: duplicate: group_by keys contained duplicate output name 'g'.")
    assert error(h, "df.group_by_agg", m, ["x"], [("o", "g", "sum")]) == \
        "df.group_by_agg: `sum` operation not supported for dtype `str`"
    assert error(h, "df.group_by_agg", m, ["x"], [("o", "g", "mean")]) == \
        "df.group_by_agg: `mean` operation not supported for dtype `str`"
    # no key: Polars aggregates the whole frame into one row (even an empty one)
    assert value(h, "df.group_by_agg", m, [], [("s", "x", "sum"), ("n", "z", "count")]).columns \
        == ((21,), (4,))
    none = value(h, "df.group_by_agg", call(h, "arrow.head", m, 0), [],
                 [("s", "x", "sum"), ("lo", "x", "min"), ("mu", "y", "mean")])
    assert none.nrows == 1 and none.columns == ((0,), (None,), (None,))
    # a result with no column is what RecordBatch::try_new refuses
    assert error(h, "df.group_by_agg", m, [], []) == (
        "df: RecordBatch::try_new: Invalid argument error: must either specify a row count "
        "or at least one column")
    f = Table([("k", "Int64", [1, 1, 2]), ("f", "Float64", [math.nan, 1.0, math.nan])])
    g = value(h, "df.group_by_agg", f, ["k"], [("lo", "f", "min"), ("hi", "f", "max")])
    assert g.columns[1][0] == 1.0 and g.columns[2][0] == 1.0 and math.isnan(g.columns[1][1])


def test_joins(h):
    left = Table([("k", "Int64", [1, 2, 3, None]), ("v", "Utf8", ["a", "b", "c", "d"])])
    right = Table([("k", "Int64", [3, 1, 1, None]), ("v", "Float64", [0.3, 0.1, 0.11, 9.0])])
    j = value(h, "df.inner_join", left, right, "k")
    assert j.names == ("k", "v", "v_right") and j.types == ("Int64", "Utf8", "Float64")
    assert j.columns == ((1, 1, 3), ("a", "a", "c"), (0.1, 0.11, 0.3))
    lj = value(h, "df.left_join", left, right, "k")
    assert lj.columns == ((1, 1, 2, 3, None), ("a", "a", "b", "c", "d"),
                          (0.1, 0.11, None, 0.3, None))
    assert lj.nullable == (True, True, True)
    assert "nope" in error(h, "df.inner_join", left, right, "nope")
    s = Table([("k", "Utf8", ["1"])])
    assert error(h, "df.left_join", left, s, "k") == (
        "df.left_join: datatypes of join keys don't match - `k`: i64 on left does not match "
        "`k`: str on right (and no other type was available to cast to)")
    assert error(h, "df.inner_join", left, 1, "k") == "df: expected arrow.Table, got Int(1)"
    assert error(h, "df.inner_join", left, right) == "df: expected Str, got nothing"


def test_cross_join(h):
    # std_df.rs df_cross_join_row_count_is_product
    a = Table([("a", "Int64", [1, 2, 3], False)])
    b = Table([("b", "Int64", [10, 20], False)])
    c = value(h, "df.cross_join", a, b)
    assert c.nrows == 6 and c.ncols == 2
    assert c.columns == ((1, 1, 2, 2, 3, 3), (10, 20, 10, 20, 10, 20))
    # std_df.rs df_cross_join_clashing_column_gets_right_suffix
    x1 = Table([("x", "Int64", [1, 2], False)])
    x2 = Table([("x", "Int64", [9], False)])
    c = value(h, "df.cross_join", x1, x2)
    assert c.nrows == 2 and c.names == ("x", "x_right")
    assert error(h, "df.cross_join", x1) == "df: expected arrow.Table, got nothing"
    xr = Table([("x", "Int64", [1]), ("x_right", "Int64", [2])])
    assert error(h, "df.cross_join", xr, x2) == \
        "df.cross_join: duplicate: column with name 'x_right' already exists"
    assert error(h, "df.cross_join", Table([]), Table([])).startswith("df: RecordBatch::try_new")
    # a DataFrame with no column has no row
    assert value(h, "df.cross_join", Table([], nrows=4), x2).nrows == 0


def test_result_caps(h):
    big = Table([("k", "Int64", [1] * 3000)])
    msg = error(h, "df.cross_join", big, big)
    assert "exceeds the cap" in msg
    assert "exceeds the cap" in error(h, "df.inner_join", big, big, "k")
    assert value(h, "df.inner_join", big, Table([("k", "Int64", [1])]), "k").nrows == 3000
    assert A.MAX_RESULT_CELLS == 1 << 22


def test_ops_leave_arguments_alone(h):
    m = mixed()
    snap = Table(m.fields_and_columns(), nrows=m.nrows)
    args = [m, "g", ["a"]]
    call(h, "df.filter_in_str", *args)
    assert m == snap and args == [m, "g", ["a"]]


def test_results_are_ok_err_variants(h):
    assert call(h, "arrow.col_count", mixed(), "x") == ok(6)
    assert call(h, "arrow.col_count", mixed(), "q") == err("arrow: column `q` not found")


def test_lexfast_run_carries_tables(tmp_path):
    # end to end through the CLI: a table built, queried and sent back as $arrow_table
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import lexfast

    table = {"$arrow_table": {"nrows": 3, "columns": [
        {"name": "g", "type": "Utf8", "nullable": False, "values": ["a", "b", "a"]},
        {"name": "x", "type": "Int64", "nullable": True, "values": [1, None, 3]}]}}
    reqs = [{"id": 1, "kind": "arrow", "op": "col_sum_int", "args": [table, "x"]},
            {"id": 2, "kind": "df", "op": "filter_eq_str", "args": [table, "g", "a"]},
            {"id": 3, "kind": "arrow", "op": "nrows", "args": [{"$arrow_table": []}]}]
    src = tmp_path / "reqs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in reqs))
    env = {**os.environ, "PYTHONPATH": str(Path(lexfast.__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, "-m", "lexfast", "run", str(src)], capture_output=True,
                       cwd=tmp_path, env=env, timeout=60)
    out = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert out[0] == {"id": 1, "ok": {"$variant": "Ok", "args": [4]}}
    got = out[1]["ok"]["args"][0]["$arrow_table"]
    assert got["nrows"] == 2 and got["columns"][1]["values"] == [1, 3]
    assert got["columns"][0]["nullable"] is True  # a df result, as from_polars makes it
    assert out[2]["id"] == 3 and "ok" not in out[2] and "arrow_table" in json.dumps(out[2])
