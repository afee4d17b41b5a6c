"""The measuring method every bench module shares (bench/README.md, "Method");
``conftest.py`` makes it the ``interleaved`` fixture.

A subject is a *statement loop*: ``INNER`` copies of the statement a VM would
run, compiled once, the names it uses bound as locals (``timeit``'s method),
so pytest-benchmark's own per-call overhead is amortised away instead of
sitting on both sides of a ratio. The subjects of one group are timed
*interleaved*: one round runs every subject's loop once, in a rotating order,
until the group has had its time; each subject's rounds then become its
pytest-benchmark statistics (per statement), so ``check_ratios.py``,
``report.py`` and ``--benchmark-json`` read them as before.
"""

from __future__ import annotations

import gc
import importlib.machinery
import importlib.util
import itertools
import pathlib
import sys
import time
from collections.abc import Callable

HERE = pathlib.Path(__file__).resolve().parent

#: statements per loop: a loop of 1000 dispatches is ~50-200 µs, long next to
#: a timer read and short next to a scheduler tick
INNER = 1000


def statement_loop(stmt: str, inner: int = INNER, setup: str = "", **names) -> Callable[[], object]:
    """A function running ``stmt`` ``inner`` times with ``names`` as locals
    (``setup`` runs once before the loop). Returns the last value."""
    params = ", ".join(f"{k}={k}" for k in names)
    body = "\n".join("        " + line for line in stmt.splitlines())
    pre = "\n".join("    " + line for line in setup.splitlines())
    src = (f"def loop({params}):\n{pre}\n    _r = None\n"
           f"    for _ in _repeat(None, {inner}):\n{body}\n    return _r\n")
    ns = dict(names, _repeat=itertools.repeat)
    exec(compile(src, f"<bench {stmt.splitlines()[0]}>", "exec"), ns)
    return ns["loop"]


# -- the floor extension ------------------------------------------------------------

_floor_module = None


def floor_module():
    """``bench/_floor.pyx`` built once into ``bench/.build`` (None without
    Cython or a compiler: the floor rows are then skipped)."""
    global _floor_module
    if _floor_module is None:
        _floor_module = _build_floor() or False
    return _floor_module or None


def _build_floor():
    build = HERE / ".build"
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    so = build / f"lexfast_bench_floor{suffix}"
    src = HERE / "_floor.pyx"
    if not so.exists() or so.stat().st_mtime < src.stat().st_mtime:
        try:
            from Cython.Build import cythonize
            from setuptools import Distribution, Extension
        except ImportError:
            return None
        build.mkdir(exist_ok=True)
        pyx = build / "lexfast_bench_floor.pyx"
        pyx.write_text(src.read_text())
        try:
            exts = cythonize([Extension("lexfast_bench_floor", [str(pyx)])],
                             build_dir=str(build), quiet=True,
                             compiler_directives={"language_level": 3})
            dist = Distribution({"ext_modules": exts, "script_name": "setup.py"})
            cmd = dist.get_command_obj("build_ext")
            cmd.build_lib = str(build)
            cmd.build_temp = str(build / "tmp")
            cmd.ensure_finalized()
            cmd.run()
        except Exception as e:  # no compiler: no floor rows
            print(f"bench: floor extension not built ({type(e).__name__}: {e})", file=sys.stderr)
            return None
    spec = importlib.util.spec_from_file_location("lexfast_bench_floor", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- interleaved groups ---------------------------------------------------------------

def measure(benchmark, subjects: dict[str, Callable[[], object]], inner: int) -> dict[str, list[float]]:
    """Seconds per statement of each subject, one sample per round, the
    subjects interleaved round by round."""
    timer = getattr(benchmark, "_timer", time.perf_counter)
    max_time = float(getattr(benchmark, "_max_time", 1.0))
    min_rounds = int(getattr(benchmark, "_min_rounds", 5))
    names = list(subjects)
    loops = [subjects[n] for n in names]
    samples: dict[str, list[float]] = {n: [] for n in names}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for loop in loops:  # warm-up: caches, specialisation, lazy imports
            loop()
        budget = max_time * len(names)
        start = timer()
        rounds = 0
        while rounds < min_rounds or (timer() - start < budget and rounds < 100_000):
            shift = rounds % len(names)
            for j in range(len(names)):
                k = (j + shift) % len(names)
                t0 = timer()
                loops[k]()
                samples[names[k]].append((timer() - t0) / inner)
            rounds += 1
    finally:
        if gc_was:
            gc.enable()
    return samples


# -- the per-effect benches (bench_fs_proc, bench_http, bench_storage): one
# statement loop per test, or the members of a group round-robin in one test --

def pedantic_loop(benchmark, stmt: str, ns: dict, number: int, rounds: int = 41):
    """Time ``stmt`` the way a VM pays for it: compiled once into a function
    that runs it ``number`` times in a loop, so neither side pays a call per
    statement; ``rounds`` rounds (pedantic, one warm-up). The stats are per
    loop; ``extra_info["statements"]`` says how many it ran."""
    body = "\n".join("        " + line for line in stmt.strip("\n").split("\n"))
    env = dict(ns)
    env["_range"] = range(number)
    exec(compile(f"def _loop():\n    for _ in _range:\n{body}\n", "<bench>", "exec"), env)
    benchmark.extra_info["statements"] = number
    benchmark.pedantic(env["_loop"], rounds=rounds, iterations=1, warmup_rounds=1)

def interleaved_members(benchmark, members: dict, number: int, rounds: int = 41) -> dict:
    """Time each member statement (``{name: (stmt, namespace)}``) as
    ``pedantic_loop`` does, but round-robin in one test, so that every member
    sees the same load: per-statement medians (ns) and, for the first
    member, its ratio to each other one, in ``extra_info``. (The group's
    other tests time one member each, back to back.)"""
    import statistics

    loops = {}
    for name, (stmt, ns) in members.items():
        body = "\n".join("        " + line for line in stmt.strip("\n").split("\n"))
        env = dict(ns)
        env["_range"] = range(number)
        exec(compile(f"def _loop():\n    for _ in _range:\n{body}\n", "<bench>", "exec"), env)
        loops[name] = env["_loop"]
    times: dict = {name: [] for name in loops}

    def run():
        for fn in loops.values():  # one warm-up each
            fn()
        for _ in range(rounds):
            for name, fn in loops.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)

    benchmark.pedantic(run, rounds=1, iterations=1)
    med = {name: statistics.median(ts) / number * 1e9 for name, ts in times.items()}
    first = next(iter(med))
    benchmark.extra_info["interleaved_median_ns"] = {k: round(v, 1) for k, v in med.items()}
    benchmark.extra_info["interleaved_ratio"] = {
        k: round(med[first] / v, 3) for k, v in med.items() if k != first}
    return med
