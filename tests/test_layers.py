"""The package's import graph: no cycle, no upward import, every module
importable alone, and ``import lexfast`` lazy about heavy libraries.

Every module under ``lexfast/`` (the package under test: the installed one, or
the source tree on ``PYTHONPATH``) is parsed with ``ast`` (``.pyx`` files by
their import lines): absolute and relative imports, module-level and
function-local ones. Imports under ``if TYPE_CHECKING:`` are left out (they
never run).
"""

from __future__ import annotations

import ast
import importlib.machinery
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import lexfast

PKG = "lexfast"
PKG_DIR = Path(lexfast.__file__).resolve().parent
ROOT = PKG_DIR.parent

#: The layers, bottom first. A module belongs to the layer of the longest
#: prefix that names it (``lexfast.effects`` covers ``lexfast.effects.fs.ops``).
#: A module imports only from its own layer or below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("leaves", ("lexfast.errors", "lexfast.values", "lexfast.kinds", "lexfast._version")),
    ("kernel", ("lexfast.kernel",)),
    ("boundary", ("lexfast.policy", "lexfast.scope")),
    ("effects", ("lexfast.effects", "lexfast.builtins")),
    # the codec imports only the kernel and values; the recorder (record/replay) writes
    # traces in it and the handler loads the recorder when asked to record or replay
    # lexfast.budget_pool: the handler loads it when the policy names a budget_pool
    ("assembly", ("lexfast.table", "lexfast.handler", "lexfast.stats", "lexfast.record",
                  "lexfast.budget_pool",
                  "lexfast.cli.codec")),
    ("top", ("lexfast.cli", "lexfast.__main__", "lexfast")),
]

#: Libraries ``import lexfast`` must not load: the families that need them
#: import them when their table rows are first used, numpy on handler.stats().
HEAVY = ("numpy", "lmdb", "pycurl", "uvloop", "websockets", "sqlite3", "redis")

#: Known violations, ``(rule, importer, imported)``: none since the
#: re-layering. A new entry needs a reason, never a habit.
KNOWN_VIOLATIONS: set[tuple[str, str, str]] = set()


# -- the graph -------------------------------------------------------------------

@dataclass(frozen=True)
class Import:
    importer: str
    imported: str        # a module of the package
    names: tuple[str, ...]  # the names taken from it (``from m import a, b``)
    local: bool          # inside a function: runs when the function does
    line: int


def module_files() -> dict[str, Path]:
    """Every module of the package: its dotted name -> its source (``.py``,
    or ``.pyx`` for a compiled module)."""
    out: dict[str, Path] = {}
    for path in sorted(PKG_DIR.rglob("*")):
        if path.suffix not in (".py", ".pyx") or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if path.suffix == ".py" or name not in out:
            out[name] = path
    return out


MODULES = module_files()


def _resolve(base: str) -> str | None:
    """The longest prefix of ``base`` that is a module of the package."""
    parts = base.split(".")
    while parts:
        name = ".".join(parts)
        if name in MODULES:
            return name
        parts.pop()
    return None


def _package_of(module: str) -> str:
    path = MODULES[module]
    return module if path.stem == "__init__" else module.rpartition(".")[0]


def _targets(importer: str, level: int, module: str | None,
             names: list[str]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(imported module, names taken from it)`` for one import statement."""
    if level:
        base_parts = _package_of(importer).split(".")
        if level > 1:
            base_parts = base_parts[: len(base_parts) - (level - 1)]
        base = ".".join(base_parts + ([module] if module else []))
    else:
        base = module or ""
    if base != PKG and not base.startswith(PKG + "."):
        return
    taken: list[str] = []
    for name in names:
        sub = f"{base}.{name}"
        if sub in MODULES:  # ``from . import _twin``: the submodule itself
            yield sub, ()
        else:
            taken.append(name)
    if taken or not names:
        target = _resolve(base)
        if target is not None:
            yield target, tuple(taken)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _py_imports(name: str, source: str) -> Iterator[Import]:
    tree = ast.parse(source)

    def walk(node: ast.AST, local: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    yield from walk(other, local)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    for target, taken in _targets(name, 0, alias.name, []):
                        yield Import(name, target, taken, local, child.lineno)
            elif isinstance(child, ast.ImportFrom):
                for target, taken in _targets(name, child.level, child.module,
                                              [a.name for a in child.names]):
                    yield Import(name, target, taken, local, child.lineno)
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                ast.Lambda))
            yield from walk(child, inner)

    yield from walk(tree, False)


_PYX_IMPORT = re.compile(
    r"^(?P<indent>[ \t]*)(?:from[ \t]+(?P<from>[.\w]+)[ \t]+c?import[ \t]+(?P<names>[^#\n]+)"
    r"|c?import[ \t]+(?P<mods>[^#\n]+))", re.M)


def _pyx_imports(name: str, source: str) -> Iterator[Import]:
    for m in _PYX_IMPORT.finditer(source):
        line = source.count("\n", 0, m.start()) + 1
        local = bool(m.group("indent"))
        if m.group("from"):
            spec = m.group("from")
            level = len(spec) - len(spec.lstrip("."))
            names = [n.split(" as ")[0].strip(" ()\\")
                     for n in m.group("names").split(",")]
            for target, taken in _targets(name, level, spec.lstrip(".") or None,
                                          [n for n in names if n and n != "*"]):
                yield Import(name, target, taken, local, line)
        else:
            for mod in m.group("mods").split(","):
                for target, taken in _targets(name, 0, mod.split(" as ")[0].strip(), []):
                    yield Import(name, target, taken, local, line)


def all_imports() -> list[Import]:
    out: list[Import] = []
    for name, path in MODULES.items():
        source = path.read_text(encoding="utf-8")
        found = _pyx_imports(name, source) if path.suffix == ".pyx" else _py_imports(name, source)
        out.extend(i for i in found if i.imported != name)
    return out


IMPORTS = all_imports()


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def family_of(module: str) -> str:
    """What may share private names: one effect family (``lexfast.effects.fs``
    and, in folders, everything under it), or a flat module with itself."""
    parts = module.split(".")
    if parts[:2] == ["lexfast", "effects"] and len(parts) > 2:
        return ".".join(parts[:3])
    if len(parts) > 2 or (len(parts) == 2 and MODULES[module].stem == "__init__"):
        return ".".join(parts[:2])  # lexfast.kernel, lexfast.scope, lexfast.cli
    return module


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def violations() -> dict[tuple[str, str, str], list[Import]]:
    found: dict[tuple[str, str, str], list[Import]] = {}
    module_edges: dict[str, set[str]] = {}
    all_edges: dict[str, set[str]] = {}
    for imp in IMPORTS:
        all_edges.setdefault(imp.importer, set()).add(imp.imported)
        if not imp.local:
            module_edges.setdefault(imp.importer, set()).add(imp.imported)
    for imp in IMPORTS:
        rules = []
        if not imp.local and _reaches(module_edges, imp.imported, imp.importer):
            rules.append("cycle")
        elif imp.local and _reaches(all_edges, imp.imported, imp.importer):
            rules.append("hidden-cycle")  # hoisting it would break ``import lexfast``
        if layer_of(imp.importer) < layer_of(imp.imported):
            rules.append("upward")
        if family_of(imp.importer) != family_of(imp.imported) and any(
                n.startswith("_") and not n.startswith("__") for n in imp.names):
            rules.append("private")
        for rule in rules:
            found.setdefault((rule, imp.importer, imp.imported), []).append(imp)
    return found


# -- the tests ---------------------------------------------------------------------

def test_the_graph_was_read():
    """Guards the parser: a graph that lost its edges would pass every rule."""
    assert len(MODULES) > 15, MODULES
    pairs = {(i.importer, i.imported) for i in IMPORTS}
    assert ("lexfast", "lexfast.handler") in pairs
    assert any(i.local for i in IMPORTS)
    assert all(i.imported in MODULES for i in IMPORTS)


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if layer_of(m) < 0)
    assert not unplaced, f"add these to LAYERS in {__file__}: {unplaced}"


def test_no_cycle_no_upward_import_no_private_reach():
    found = violations()

    def show(key: tuple[str, str, str]) -> str:
        sites = ", ".join(f"{MODULES[i.importer].name}:{i.line}" for i in found[key])
        return f"{key} at {sites}"

    new = sorted(set(found) - KNOWN_VIOLATIONS)
    assert not new, "import rule broken:\n" + "\n".join(map(show, new))
    gone = sorted(KNOWN_VIOLATIONS - set(found))
    assert not gone, f"fixed: drop these from KNOWN_VIOLATIONS: {gone}"


def _importable() -> list[str]:
    """Modules that exist as something Python can import here: ``.py``
    sources, and compiled modules whose extension is built."""
    out = []
    for name, path in MODULES.items():
        if path.suffix == ".py":
            out.append(name)
        elif any(path.with_suffix(s).exists() for s in importlib.machinery.EXTENSION_SUFFIXES):
            out.append(name)
    return sorted(out)


def _run_isolated(code: str) -> subprocess.CompletedProcess[str]:
    # -I: no PYTHONPATH, no user site, no script directory; the package under
    # test is put on sys.path by hand, whether installed or a source tree.
    prelude = f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
    return subprocess.run([sys.executable, "-I", "-W", "error", "-c", prelude + code],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k.startswith("LEXFAST_")}
                          | {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})


@pytest.mark.parametrize("module", _importable())
def test_every_module_imports_alone(module):
    r = _run_isolated(f"import {module}; "
                      f"assert {module}.__file__.startswith({str(PKG_DIR)!r}), {module}.__file__")
    assert r.returncode == 0, f"import {module} alone failed:\n{r.stderr[-3000:]}"


#: Heavy libraries ``import lexfast`` loads today (reported; to be made lazy).
KNOWN_EAGER: set[str] = set()


def test_import_lexfast_is_lazy_about_heavy_libraries():
    r = _run_isolated(f"import json, lexfast; print(json.dumps(sorted("
                      f"m for m in {HEAVY!r} if m in sys.modules)))")
    assert r.returncode == 0, r.stderr[-3000:]
    loaded = set(__import__("json").loads(r.stdout.strip().splitlines()[-1]))
    assert loaded <= KNOWN_EAGER, f"import lexfast loads {sorted(loaded - KNOWN_EAGER)}"
    assert not KNOWN_EAGER - loaded, f"now lazy: drop {sorted(KNOWN_EAGER - loaded)}"
