"""Escape catalogue, the Arrow file ops (issue 19; SECURITY.md "Arrow files"):
arrow.read_csv / read_parquet / read_parquet_cols / write_parquet / write_csv
against paths that leave the scope, check-then-use swaps, procfs and kernel
pseudo-filesystems, over-long paths, and files built to exhaust memory."""

from __future__ import annotations

import os

import pytest

from lexfast import Limits, PolicyDenied, Table

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

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


@pytest.fixture
def outside(d):
    out = d.parent / "out"
    pq.write_table(pa.table({"secret": [1]}), out / "s.parquet")
    (out / "s.csv").write_text("secret\n1\n")
    (d / "link_out").symlink_to(out)
    (d / "file_out.csv").symlink_to(out / "s.csv")
    return out


def small() -> Table:
    return Table([("x", "Int64", [1, 2, 3])])


def message(r) -> str:
    assert r.name == "Err", r
    return r.args[0]


def untouched(outside) -> None:
    assert sorted(os.listdir(outside)) == ["s.csv", "s.parquet"]
    assert (outside / "s.csv").read_text() == "secret\n1\n"


@pytest.mark.parametrize("op,ext", [("read_csv", "csv"), ("read_parquet", "parquet"),
                                    ("read_parquet_cols", "parquet")])
def test_escape_arrow_reads_outside_scope(h, d, outside, op, ext):
    extra = [["secret"]] if op == "read_parquet_cols" else []
    for p in (f"{d}/link_out/s.{ext}", f"{d}/../out/s.{ext}", f"{outside}/s.{ext}",
              f"{d}/file_out.csv" if ext == "csv" else f"{d}/link_out/../out/s.{ext}",
              f"{d}/x\0/../../out/s.{ext}"):
        with pytest.raises(PolicyDenied) as e:
            h.dispatch("arrow", op, [p, *extra])
        assert str(e.value) == f"arrow.{op}: `{p}` outside --allow-fs-read"


def test_escape_arrow_read_root(make_handler, d, outside):
    (d / "in.csv").write_text("x\n1\n")
    h = make_handler(effects=["fs_read"], read_root=str(d))
    assert h.dispatch("arrow", "read_csv", ["/in.csv"]).name == "Ok"
    for p in ("../out/s.csv", "/../out/s.csv", "link_out/s.csv", "file_out.csv"):
        with pytest.raises(PolicyDenied, match="outside the read root"):
            h.dispatch("arrow", "read_csv", [p])


@pytest.mark.parametrize("op", ["write_csv", "write_parquet"])
def test_escape_arrow_writes_outside_scope(h, d, outside, op):
    for p in (f"{d}/link_out/new", f"{d}/../out/new", f"{outside}/new", f"{d}/file_out.csv",
              f"{d}/link_out/s.csv"):
        r = h.dispatch("arrow", op, [small(), p])
        assert message(r) == f"arrow.{op}: fs path `{p}` outside --allow-fs-write"
    untouched(outside)
    assert (d / "file_out.csv").is_symlink()


def _swap(victim, outside):
    os.rename(victim, str(victim) + ".moved")
    os.symlink(outside, victim)


@pytest.mark.parametrize("op,ext", [("read_csv", "csv"), ("read_parquet", "parquet")])
def test_escape_arrow_directory_swapped_before_a_read(h, d, outside, monkeypatch, op, ext):
    from lexfast.effects import arrow_io
    (d / "sub").mkdir()
    real = arrow_io.open_in_scope

    def racing(*a, **kw):  # after every path check passed, before the open
        _swap(d / "sub", outside)
        return real(*a, **kw)

    monkeypatch.setattr(arrow_io, "open_in_scope", racing)
    with pytest.raises(PolicyDenied, match="outside --allow-fs-read"):
        h.dispatch("arrow", op, [f"{d}/sub/s.{ext}"])
    assert (d / "sub").is_symlink()  # the swap did happen


@pytest.mark.parametrize("op", ["write_csv", "write_parquet"])
def test_escape_arrow_swapped_before_a_write(h, d, outside, monkeypatch, op):
    from lexfast.effects import arrow_io
    (d / "sub").mkdir()
    real = arrow_io.open_parent_in_scope

    def racing_dir(*a, **kw):  # the directory, after the path check
        _swap(d / "sub", outside)
        return real(*a, **kw)

    monkeypatch.setattr(arrow_io, "open_parent_in_scope", racing_dir)
    assert message(h.dispatch("arrow", op, [small(), f"{d}/sub/new"])).endswith(
        "outside --allow-fs-write")
    untouched(outside)

    def racing_name(*a, **kw):  # the final name, after the directory was opened
        out = real(*a, **kw)
        os.symlink(outside / "s.csv", d / "late")
        return out

    monkeypatch.setattr(arrow_io, "open_parent_in_scope", racing_name)
    assert message(h.dispatch("arrow", op, [small(), f"{d}/late"])).endswith(
        "outside --allow-fs-write")
    untouched(outside)


def test_escape_arrow_procfs_and_pseudo_filesystems(make_handler, d):
    h = make_handler(effects=RW, fs_read=["/"], fs_write=["/"])
    for p in ("/proc/self/environ", "/proc/self/cmdline", "/proc/thread-self/environ",
              f"/proc/{os.getpid()}/environ", "/proc/self/fd/0"):
        with pytest.raises(PolicyDenied, match="outside --allow-fs-read"):
            h.dispatch("arrow", "read_csv", [p])
    hostname = open("/proc/sys/kernel/hostname").read()
    for p in ("/proc/sys/kernel/hostname", "/sys/kernel/lexfast.csv"):
        for op in ("write_csv", "write_parquet"):
            assert message(h.dispatch("arrow", op, [small(), p])).endswith(
                "outside --allow-fs-write"), (op, p)
    assert open("/proc/sys/kernel/hostname").read() == hostname


def test_escape_arrow_path_over_path_max(h, d):
    p = f"{d}/" + "./" * (1 << 19) + "t.csv"
    for op, args in (("read_csv", [p]), ("read_parquet", [p]), ("read_parquet_cols", [p, []]),
                     ("write_csv", [small(), p]), ("write_parquet", [small(), p])):
        m = message(h.dispatch("arrow", op, args))
        assert m.startswith(f"arrow.{op}: path argument") and "PATH_MAX" in m, m
    assert os.listdir(d) == []


def test_escape_arrow_memory_bombs(make_handler, d):
    """Files small on disk that decode big: each refused before it is decoded."""
    h = make_handler(effects=RW, fs_read=[d], fs_write=[d], limits=Limits(arrow_max_bytes=1 << 20))
    # a zstd page of 8 MiB of zeros: the footer says so before any page is read
    bomb = d / "bomb.parquet"
    pq.write_table(pa.table({"s": [b"\0" * (1 << 23)]}).cast(pa.schema([("s", pa.string())])),
                   bomb, compression="zstd", use_dictionary=False)
    assert bomb.stat().st_size < 1 << 20
    assert "decodes to more than Limits.arrow_max_bytes" in \
        message(h.dispatch("arrow", "read_parquet", [str(bomb)]))
    # a million one-bit Booleans: a Table would hold a million pointers
    bools = d / "bools.parquet"
    pq.write_table(pa.table({"b": [True] * 1_000_000}), bools)
    assert bools.stat().st_size < 1 << 20
    assert "more than Limits.arrow_max_bytes / 8" in \
        message(h.dispatch("arrow", "read_parquet", [str(bools)]))
    # a header of 200 000 empty names (pyarrow spends kilobytes on each column)
    wide = d / "wide.csv"
    wide.write_text("," * 199_999 + "\n")
    assert "has 200000 columns, more than Limits.arrow_max_columns (10000)" in \
        message(h.dispatch("arrow", "read_csv", [str(wide)]))
    # a write that would not fit: nothing is left behind
    big = Table([("s", "Utf8", [os.urandom(1 << 10).hex() for _ in range(1 << 10)])])
    for op in ("write_csv", "write_parquet"):
        assert "nothing written" in message(h.dispatch("arrow", op, [big, str(d / op)]))
    assert sorted(os.listdir(d)) == ["bomb.parquet", "bools.parquet", "wide.csv"]
