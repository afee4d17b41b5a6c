"""pytest fixtures of the benchmarks: ``interleaved`` (statement_loops.py
has the method)."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from statement_loops import INNER, measure  # noqa: E402

_GROUPS: dict[str, dict] = {}


@pytest.fixture
def interleaved(benchmark, request):
    """``interleaved(group, make_subjects, name, inner=INNER)``: time
    ``make_subjects()`` (``{name: loop}``, built once per group) interleaved
    and report ``name``'s rounds as this test's benchmark. Returns the value
    of one run of ``name``'s loop (for the test to check)."""

    def run(group: str, make_subjects: Callable[[], dict], name: str, inner: int = INNER):
        benchmark.group = group
        key = f"{request.module.__name__}::{group}"
        entry = _GROUPS.get(key)
        if entry is None:  # built once per group, for every subject's test
            entry = _GROUPS[key] = {"subjects": make_subjects(), "samples": None}
        subjects = entry["subjects"]
        if name not in subjects:
            pytest.skip(f"{name} not available here")
        if not benchmark.enabled:  # a plain test run: check the statement once
            return subjects[name]()
        if not hasattr(benchmark, "_make_stats"):  # a pytest-benchmark without it: time alone
            return benchmark(subjects[name])
        if entry["samples"] is None:
            entry["samples"] = measure(benchmark, subjects, inner)
        benchmark._mode = "interleaved"
        stats = benchmark._make_stats(1)
        for s in entry["samples"][name]:
            stats.update(s)
        return subjects[name]()

    return run
