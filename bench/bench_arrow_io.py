"""The Arrow file ops (lexfast/effects/arrow_io.py) through ``h.dispatch``,
against what a VM author would otherwise write, interleaved in one test per
op so that every member sees the same load:

- ``read_parquet``: ``pyarrow.parquet.read_table(path)`` and the same
  conversion to Python columns (``to_pylist``), which is what a ``Table``
  holds; and ``read_table`` alone (Arrow buffers, no Python values: the floor);
- ``read_csv``: ``pyarrow.csv.read_csv(path)`` plus ``to_pylist``; and the
  standard ``csv`` module with ``int``/``float`` on each cell;
- ``write_parquet``: ``pyarrow.table`` from the columns plus
  ``pyarrow.parquet.write_table(path)``;
- ``write_csv``: the standard ``csv.writer``.

lexfast pays on top for the scope (an ``openat2`` beneath the root), the
bounds, and an atomic write
(a temp file, ``fsync``, ``rename``). 100 000 rows: Int64, Float64, Utf8.
Run: pytest bench/bench_arrow_io.py --benchmark-enable
"""

from __future__ import annotations

import csv
import pathlib
import random
import sys

import pytest

from lexfast import DefaultHandler, Policy, Table

try:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
except ImportError:  # pragma: no cover - every benchmark here is skipped
    pa = pq = pcsv = None

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from statement_loops import interleaved_members as interleaved  # noqa: E402
from statement_loops import pedantic_loop as stmt_loop  # noqa: E402

N = 100_000
_rnd = random.Random(5)
X = [_rnd.randrange(-10**9, 10**9) for _ in range(N)]
Y = [_rnd.random() * 1000 for _ in range(N)]
G = [f"g{_rnd.randrange(1000)}" for _ in range(N)]
TABLE = Table([("x", "Int64", X), ("y", "Float64", Y), ("g", "Utf8", G)])

RATIO_TARGETS = [
    # (group, subject, baseline, max subject/baseline median). Generous: CI
    # boxes are loaded and the work is mostly pyarrow's and the conversion's.
    # Measured on a busy 2-core box: bench/RESULTS.md, "Arrow file ops".
    ("arrow-io-read-parquet", "test_read_parquet_handler", "test_read_parquet_pyarrow_to_pylist",
     1.6),
    ("arrow-io-read-csv", "test_read_csv_handler", "test_read_csv_pyarrow_to_pylist", 1.6),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    if pa is None:
        pytest.skip("pyarrow is not installed (pip install 'lexfast[arrow]')")
    root = tmp_path_factory.mktemp("arrowio")
    t = pa.table({"x": X, "y": Y, "g": G})
    pq.write_table(t, root / "t.parquet")
    pcsv.write_csv(t, root / "t.csv")
    h = DefaultHandler(Policy(allow_effects=["fs_read", "fs_write"], allow_fs_read=[str(root)],
                              allow_fs_write=[str(root)]))
    yield h, root
    h.close()


def _check(r):
    assert r.name == "Ok", r
    return r


def _parquet_to_pylist(path):
    t = pq.read_table(path)
    return [t.column(i).to_pylist() for i in range(t.num_columns)]


def _csv_to_pylist(path):
    t = pcsv.read_csv(path)
    return [t.column(i).to_pylist() for i in range(t.num_columns)]


def _csv_module(path):
    with open(path, newline="") as f:
        rows = csv.reader(f)
        next(rows)
        xs, ys, gs = [], [], []
        for x, y, g in rows:
            xs.append(int(x))
            ys.append(float(y))
            gs.append(g)
    return xs, ys, gs


def _pyarrow_write_parquet(path):
    pq.write_table(pa.table({"x": X, "y": Y, "g": G}), path)


def _csv_writer(path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("x", "y", "g"))
        w.writerows(zip(X, Y, G, strict=True))


@pytest.mark.benchmark(group="arrow-io-read-parquet")
def test_read_parquet_handler(benchmark, files):
    h, root = files
    stmt_loop(benchmark, "dispatch('arrow', 'read_parquet', args)",
              {"dispatch": h.dispatch, "args": [str(root / "t.parquet")]}, 1, rounds=9)


@pytest.mark.benchmark(group="arrow-io-read-parquet")
def test_read_parquet_pyarrow_to_pylist(benchmark, files):
    _, root = files
    stmt_loop(benchmark, "f(path)", {"f": _parquet_to_pylist, "path": str(root / "t.parquet")},
              1, rounds=9)


@pytest.mark.benchmark(group="arrow-io-read-csv")
def test_read_csv_handler(benchmark, files):
    h, root = files
    stmt_loop(benchmark, "dispatch('arrow', 'read_csv', args)",
              {"dispatch": h.dispatch, "args": [str(root / "t.csv")]}, 1, rounds=9)


@pytest.mark.benchmark(group="arrow-io-read-csv")
def test_read_csv_pyarrow_to_pylist(benchmark, files):
    _, root = files
    stmt_loop(benchmark, "f(path)", {"f": _csv_to_pylist, "path": str(root / "t.csv")},
              1, rounds=9)


@pytest.mark.benchmark(group="arrow-io-read-parquet")
def test_read_parquet_interleaved(benchmark, files):
    h, root = files
    path = str(root / "t.parquet")
    ns = {"dispatch": h.dispatch, "args": [path], "pq_list": _parquet_to_pylist,
          "read_table": pq.read_table, "path": path}
    interleaved(benchmark, {
        "lexfast": ("dispatch('arrow', 'read_parquet', args)", ns),
        "pyarrow_to_pylist": ("pq_list(path)", ns),
        "pyarrow_read_table_only": ("read_table(path)", ns),
    }, number=1, rounds=9)
    assert _check(h.dispatch("arrow", "read_parquet", [path])).args[0].columns[0] == tuple(X)


@pytest.mark.benchmark(group="arrow-io-read-csv")
def test_read_csv_interleaved(benchmark, files):
    h, root = files
    path = str(root / "t.csv")
    ns = {"dispatch": h.dispatch, "args": [path], "pc_list": _csv_to_pylist,
          "csv_module": _csv_module, "path": path}
    interleaved(benchmark, {
        "lexfast": ("dispatch('arrow', 'read_csv', args)", ns),
        "pyarrow_to_pylist": ("pc_list(path)", ns),
        "csv_module": ("csv_module(path)", ns),
    }, number=1, rounds=9)
    assert _check(h.dispatch("arrow", "read_csv", [path])).args[0].columns[0] == tuple(X)


@pytest.mark.benchmark(group="arrow-io-write-parquet")
def test_write_parquet_interleaved(benchmark, files):
    h, root = files
    path = str(root / "w.parquet")
    ns = {"dispatch": h.dispatch, "args": [TABLE, path], "pa_write": _pyarrow_write_parquet,
          "path": str(root / "w2.parquet")}
    interleaved(benchmark, {
        "lexfast": ("dispatch('arrow', 'write_parquet', args)", ns),
        "pyarrow": ("pa_write(path)", ns),
    }, number=1, rounds=9)
    assert pq.read_table(path).column("x").to_pylist() == X


@pytest.mark.benchmark(group="arrow-io-write-csv")
def test_write_csv_interleaved(benchmark, files):
    h, root = files
    path = str(root / "w.csv")
    ns = {"dispatch": h.dispatch, "args": [TABLE, path], "csv_writer": _csv_writer,
          "path": str(root / "w2.csv")}
    interleaved(benchmark, {
        "lexfast": ("dispatch('arrow', 'write_csv', args)", ns),
        "csv_writer": ("csv_writer(path)", ns),
    }, number=1, rounds=9)
    assert pcsv.read_csv(path).column("x").to_pylist() == X
