"""``arrow.*`` and ``df.*`` (lexfast/builtins/arrow.py, pure Python over
``lexfast.Table``) through ``h.dispatch``, against what a VM author would
otherwise pick, in the same run: Polars (what the reference runs ``df.*`` on;
skipped when not installed, ``pip install polars``) and the plain Python a
VM would write over lists.

100 000 rows, two Int columns (``k`` in 0..99, ``v``) and a Float one; each
benchmark is one call. Polars is built from the same lists once per module,
so its rows time the query, as lexfast's do.
Run: pytest bench/bench_arrow.py --benchmark-enable
"""

from __future__ import annotations

import random

import pytest

from lexfast import DefaultHandler, Policy

try:
    import polars as pl
except ImportError:  # pragma: no cover - the polars rows are skipped
    pl = None

N = 100_000
_rnd = random.Random(11)
K = [_rnd.randrange(100) for _ in range(N)]
V = [_rnd.randrange(-10**6, 10**6) for _ in range(N)]
F = [_rnd.random() for _ in range(N)]
SUBJECTS = ["lexfast", "polars", "python"]


@pytest.fixture(scope="module")
def handler():
    h = DefaultHandler(Policy.pure())
    yield h
    h.close()


@pytest.fixture(scope="module")
def table(handler):
    r = handler.dispatch("arrow", "from_int_columns", [[("k", K), ("v", V)]])
    return r.args[0]


@pytest.fixture(scope="module")
def frame():
    if pl is None:
        pytest.skip("polars is not installed")
    return pl.DataFrame({"k": K, "v": V})


def _subject(request, name, handler, table):
    if name == "polars":
        return request.getfixturevalue("frame")
    return table


@pytest.mark.parametrize("name", SUBJECTS)
def test_arrow_build(benchmark, request, handler, name):
    benchmark.group = "arrow-build"
    if name == "polars":
        request.getfixturevalue("frame")
        benchmark(lambda: pl.DataFrame({"k": K, "v": V}))
    elif name == "python":
        benchmark(lambda: {"k": list(K), "v": list(V)})
    else:
        benchmark(handler.dispatch, "arrow", "from_int_columns", [[("k", K), ("v", V)]])


@pytest.mark.parametrize("name", SUBJECTS)
def test_arrow_col_sum(benchmark, request, handler, table, name):
    benchmark.group = "arrow-col-sum"
    if name == "polars":
        df = request.getfixturevalue("frame")
        benchmark(lambda: df["v"].sum())
    elif name == "python":
        benchmark(sum, V)
    else:
        benchmark(handler.dispatch, "arrow", "col_sum_int", [table, "v"])


@pytest.mark.parametrize("name", SUBJECTS)
def test_df_filter(benchmark, request, handler, table, name):
    benchmark.group = "df-filter"
    if name == "polars":
        df = request.getfixturevalue("frame")
        benchmark(lambda: df.lazy().filter(pl.col("v") > 0).collect())
    elif name == "python":
        def run():
            rows = [i for i, v in enumerate(V) if v > 0]
            return [K[i] for i in rows], [V[i] for i in rows]
        benchmark(run)
    else:
        benchmark(handler.dispatch, "df", "filter_gt_int", [table, "v", 0])


@pytest.mark.parametrize("name", SUBJECTS)
def test_df_sort(benchmark, request, handler, table, name):
    benchmark.group = "df-sort"
    if name == "polars":
        df = request.getfixturevalue("frame")
        benchmark(lambda: df.lazy().sort("v", descending=True).collect())
    elif name == "python":
        def run():
            rows = sorted(range(N), key=V.__getitem__, reverse=True)
            return [K[i] for i in rows], [V[i] for i in rows]
        benchmark(run)
    else:
        benchmark(handler.dispatch, "df", "sort_by", [table, "v", False])


@pytest.mark.parametrize("name", SUBJECTS)
def test_df_group_by(benchmark, request, handler, table, name):
    benchmark.group = "df-group-by"
    if name == "polars":
        df = request.getfixturevalue("frame")
        benchmark(lambda: df.lazy().group_by("k").agg(pl.col("v").sum().alias("s")).collect())
    elif name == "python":
        def run():
            sums: dict = {}
            for k, v in zip(K, V, strict=True):
                sums[k] = sums.get(k, 0) + v
            return sums
        benchmark(run)
    else:
        benchmark(handler.dispatch, "df", "group_by_agg", [table, ["k"], [("s", "v", "sum")]])


@pytest.mark.parametrize("name", SUBJECTS)
def test_df_inner_join(benchmark, request, handler, table, name):
    benchmark.group = "df-inner-join"
    small = [(i, i * 10) for i in range(0, 100, 2)]
    if name == "polars":
        df = request.getfixturevalue("frame")
        right = pl.DataFrame({"k": [a for a, _ in small], "w": [b for _, b in small]})
        benchmark(lambda: df.lazy().join(right.lazy(), on="k", how="inner").collect())
    elif name == "python":
        index = dict(small)

        def run():
            rows = [(k, v, index[k]) for k, v in zip(K, V, strict=True) if k in index]
            return rows
        benchmark(run)
    else:
        right = handler.dispatch("arrow", "from_int_columns", [[("k", [a for a, _ in small]),
                                                                ("w", [b for _, b in small])]])
        benchmark(handler.dispatch, "df", "inner_join", [table, right.args[0], "k"])
