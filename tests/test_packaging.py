"""What a user sees of an installed lexfast: one version everywhere, the
typing markers, the console script, the license and no build leftovers.

These check an installed distribution; run against the source tree (no
metadata, or metadata of another copy) they skip.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lexfast

# PEP 440 public versions (the forms we would publish): 1.2.3, 1.2.3rc1, 1.2.3.post1, 1.2.3.dev4
_VERSION = re.compile(r"^\d+(\.\d+){1,3}((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


@pytest.fixture(scope="module")
def dist() -> md.Distribution:
    try:
        d = md.distribution("lexfast")
    except md.PackageNotFoundError:
        pytest.skip("lexfast is not installed (a source-tree run)")
    init = d.locate_file("lexfast/__init__.py")
    if os.path.realpath(init) != os.path.realpath(lexfast.__file__):
        pytest.skip(f"the imported lexfast ({lexfast.__file__}) is not the installed one ({init})")
    return d


def test_version_is_one_string_everywhere(dist):
    from lexfast import _version

    assert _VERSION.match(lexfast.__version__), lexfast.__version__
    assert lexfast.__version__ == _version.__version__ == dist.version == md.version("lexfast")


def test_typing_markers_are_installed(dist):
    pkg = Path(lexfast.__file__).parent
    assert (pkg / "py.typed").is_file()
    stub = pkg / "kernel" / "_c.pyi"
    assert stub.is_file() and "def " in stub.read_text()
    recorded = {str(f) for f in dist.files or ()}
    assert {"lexfast/py.typed", "lexfast/kernel/_c.pyi"} <= recorded


def test_console_script_is_registered(dist, tmp_path):
    (ep,) = [e for e in dist.entry_points if e.group == "console_scripts" and e.name == "lexfast"]
    assert ep.value == "lexfast.cli:main"
    from lexfast import cli

    assert ep.load() is cli.main
    out = subprocess.run([sys.executable, "-m", "lexfast", "--help"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0 and "run" in out.stdout, out.stderr


def test_metadata_a_user_expects(dist):
    meta = dist.metadata
    assert meta["Name"] == "lexfast"
    assert meta["Requires-Python"] == ">=3.10"
    assert meta.get("License-Expression") == "MIT"
    assert any(str(f).endswith("LICENSE") for f in dist.files or ()), "LICENSE not installed"
    classifiers = meta.get_all("Classifier") or []
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Typing :: Typed" in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues"} <= set(urls)
    assert sys.version_info >= (3, 10)


def test_no_build_leftovers_installed(dist):
    stray = [str(f) for f in dist.files or ()
             if str(f).endswith((".c", ".html", ".o")) or str(f).startswith(("build/", "tests/"))]
    assert not stray, stray


def test_readme_links_work_from_the_pypi_page():
    # README.md is the PyPI long description: PyPI resolves no relative link,
    # and the sdist prunes bench/, so the chart and every link are absolute.
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("README.md not beside tests/")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme.read_text(encoding="utf-8"))
    assert any(t.endswith("bench/results.png") for t in targets)
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#", "mailto:"))]
    assert relative == []
