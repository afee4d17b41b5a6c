"""handler.stats(): live, zero-copy per-(kind, op) counters shared by forks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lexfast import EffectError, PolicyDenied


def _row(h, name):
    return h.stats()[h.stats_names().index(name)]


def test_counts_calls_denials_errors(make_handler):
    h = make_handler(effects=["time", "io"])
    view = h.stats()
    assert view.dtype.names == ("calls", "denials", "errors", "total_ns", "max_ns")
    assert not view.flags.writeable and not view.flags.owndata
    for _ in range(3):
        h.dispatch("time", "now", [])
    with pytest.raises(EffectError):
        h.dispatch("time", "sleep_ms", ["x"])
    with pytest.raises(PolicyDenied):
        h.dispatch("env", "get", ["HOME"])
    i = h.stats_names().index("time.now")
    assert view[i]["calls"] == 3  # the same array, updated live
    assert tuple(_row(h, "time.sleep_ms"))[:3] == (1, 0, 1)
    assert tuple(_row(h, "env.get"))[:3] == (1, 1, 0)
    assert view[i]["total_ns"] == 0  # timing is opt-in


def test_forks_share_and_reset(make_handler):
    h = make_handler(effects=["time", "budget"])
    f = h.fork()
    f.dispatch("time", "now", [])
    h.dispatch("time", "now", [])
    f.dispatch("budget", "whatever", [])
    assert _row(h, "time.now")["calls"] == 2
    assert _row(h, "budget.*")["calls"] == 1
    rows = {r["effect"]: r for r in h.stats_table()}
    assert set(rows) == {"time.now", "budget.*"}
    h.reset_stats()
    assert int(h.stats()["calls"].sum()) == 0


def test_timing_is_opt_in(make_handler):
    h = make_handler(effects=["time"])
    h.timing = True
    h.dispatch("time", "sleep_ms", [5])
    r = _row(h, "time.sleep_ms")
    assert r["total_ns"] >= 4_000_000 and r["max_ns"] == r["total_ns"]
    h.timing = False
    h.dispatch("time", "sleep_ms", [1])
    assert _row(h, "time.sleep_ms")["total_ns"] == r["total_ns"]


def test_stats_off(make_handler):
    h = make_handler(effects=["time"], stats=False)
    h.dispatch("time", "now", [])
    with pytest.raises(EffectError, match="off"):
        h.stats()
    assert h.stats_table() == []


def test_sessions_are_separate(make_handler):
    a = make_handler(effects=["time"])
    b = make_handler(effects=["time"])
    a.dispatch("time", "now", [])
    assert _row(b, "time.now")["calls"] == 0
    assert isinstance(a.stats(), np.ndarray)


def test_import_does_not_load_numpy():
    code = ("import sys, lexfast; h = lexfast.DefaultHandler(); "
            "h.stats_table(); assert 'numpy' not in sys.modules, 'numpy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")
