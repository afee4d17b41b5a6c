"""The generated manual: every effect-table row and every builtin has a
description (signature and one-line doc), ``docs/effects.md`` is exactly what
they generate, and ``lexfast help`` prints the same entries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import lexfast
from lexfast import builtins
from lexfast.builtins._docs import DOCS
from lexfast.cli import docs
from lexfast.effects._docs import EFFECT_DOCS
from lexfast.table import default_table

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "effects.md"
#: a subprocess imports the package under test, never a stray source tree
PKG_PARENT = str(Path(lexfast.__file__).resolve().parents[1])


def test_every_row_and_builtin_is_described():
    assert docs.missing() == []
    rows = {(r.kind, r.op) for r in default_table().rows()}
    assert rows <= EFFECT_DOCS.keys()
    pure = {(k, o) for k, ops in builtins.TABLE.items() for o in ops}
    assert pure <= DOCS.keys()
    assert len(pure) >= 300 and len(rows) >= 80


@pytest.mark.parametrize("table", ["effects", "builtins"])
def test_signatures_name_their_op_and_a_return_shape(table):
    entries = EFFECT_DOCS if table == "effects" else DOCS
    for (kind, op), (sig, doc) in entries.items():
        name = f"{kind}.<any>" if op == "*" else f"{kind}.{op}"
        assert sig.startswith(name + "("), sig
        assert " -> " in sig, sig
        assert doc.strip() and "\n" not in doc, (kind, op)


def test_a_row_without_description_is_reported(monkeypatch):
    monkeypatch.delitem(EFFECT_DOCS, ("io", "print"))
    monkeypatch.delitem(DOCS, ("str", "len"))
    monkeypatch.setitem(DOCS, ("str", "no_such_op"), ("str.no_such_op() -> Unit", "x"))
    got = docs.missing()
    assert "effect io.print: no description" in got
    assert "builtin str.len: no description" in got
    assert "builtin str.no_such_op: described but not a builtin" in got


@pytest.mark.skipif(not PAGE.exists(), reason="docs/effects.md is not beside these tests")
def test_committed_page_is_what_the_rows_generate():
    assert PAGE.read_text(encoding="utf-8") == docs.render(), (
        "docs/effects.md is stale: run python -m lexfast.cli.docs")


def test_page_has_each_gate_from_its_row():
    page = docs.render()
    assert "#### `log.set_sink`\n\n`log.set_sink(path: Str) -> Result[Unit, Str]`\n\n" \
           "*gate:* `io` then `fs_write`\n" in page
    assert "*gate:* `random`" in page.split("#### `rand.int_in`")[1].split("####")[0]


def test_check_mode_flags_a_stale_page(tmp_path):
    stale = tmp_path / "effects.md"
    stale.write_text("old\n", encoding="utf-8")
    assert docs.main(["--check", str(stale)]) == 1
    assert docs.main([str(stale)]) == 0
    assert docs.main(["--check", str(stale)]) == 0


def _lexfast(*args, tmp_path):
    env = dict(os.environ, PYTHONPATH=PKG_PARENT)
    return subprocess.run([sys.executable, "-m", "lexfast", *args], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)


def test_help_op_kind_and_unknown(tmp_path):
    r = _lexfast("help", "process.spawn", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    sig, doc = EFFECT_DOCS[("process", "spawn")]
    assert r.stdout.splitlines()[0] == sig
    assert "effect, gate: proc" in r.stdout and doc in r.stdout
    r = _lexfast("help", "str.slice", tmp_path=tmp_path)
    assert r.returncode == 0 and "pure builtin (ungated)" in r.stdout
    r = _lexfast("help", "kv", tmp_path=tmp_path)
    assert r.returncode == 0
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("kv.")] == [
        EFFECT_DOCS[("kv", op)][0] for op in
        ("open", "close", "get", "put", "delete", "contains", "list_prefix")]
    r = _lexfast("help", "budget.anything", tmp_path=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("budget.<any>(")
    r = _lexfast("help", "frob.x", tmp_path=tmp_path)
    assert r.returncode == 2 and "no op `frob.x`" in r.stderr and r.stdout == ""
    r = _lexfast("help", "frob", tmp_path=tmp_path)
    assert r.returncode == 2 and "no kind `frob`" in r.stderr
    r = _lexfast("help", tmp_path=tmp_path)
    assert r.returncode == 0 and "effect kinds:" in r.stdout
