"""Record and replay (issue 25): what recording costs per effect, and replay
against performing the effect, in interleaved statement loops.

Groups ``record-time-now`` and ``record-kv-get``, each one handler per subject:

- ``off``: a handler that does not record (the class's ``dispatch``);
- ``record``: ``DefaultHandler(..., record=os.devnull)``: the instance's
  recording ``dispatch`` (two clock reads, a tuple appended to the queue) and
  the writer thread encoding and writing every call, which shares the GIL;
- ``replay``: ``DefaultHandler(..., replay=trace)`` over a recorded trace of
  the loop's 1000 calls, re-armed before each loop (a deque of 1000 entries
  rebuilt: some 5 ns a statement): each call's args encoded and compared,
  the recorded value decoded; nothing performed.
"""

from __future__ import annotations

import collections
import os

import pytest

from lexfast import DefaultHandler, Limits, Policy

INNER = 1000
KEY = "user:00042"
VALUE = b"v" * 100

#: (group, subject, baseline, max extra ns per call, median against median)
DIFF_TARGETS = [
    # issue 25: recording overhead per effect at most 1 µs over not recording
    ("record-time-now", "test_record_time_now[record]", "test_record_time_now[off]", 1000),
    ("record-kv-get", "test_record_kv_get[record]", "test_record_kv_get[off]", 1000),
]

RATIO_TARGETS: list[tuple] = [
    # replay against performing the call: kv.get (an lmdb read transaction)
    ("record-kv-get", "test_record_kv_get[replay]", "test_record_kv_get[off]", 3.0),
]

SUBJECTS = ["off", "record", "replay"]


def _subjects(policy: Policy, prepare, stmt: str) -> dict:
    """``prepare(handler, tag)`` readies a handler (its calls are recorded
    too, and replayed before the loop's) and returns the loop's names."""
    from statement_loops import statement_loop

    out = {}
    off = DefaultHandler(policy)
    out["off"] = statement_loop(stmt, d=off.dispatch, **prepare(off, "off"))

    rec = DefaultHandler(policy, record=os.devnull, limits=Limits(record_bytes=1 << 62))
    out["record"] = statement_loop(stmt, d=rec.dispatch, **prepare(rec, "record"))

    trace = prepare.tmp / "trace.jsonl"
    with DefaultHandler(policy, record=trace) as live:
        statement_loop(stmt, d=live.dispatch, **prepare(live, "live"))()
    rep = DefaultHandler(policy, replay=trace)
    queue = rep.session.tracer.by_fork
    steps = list(queue[0])[-INNER:]
    names = prepare(rep, "live")  # answered from the trace: the steps before the loop's
    out["replay"] = statement_loop(stmt, d=rep.dispatch, setup="_q[0] = _dq(_steps)",
                                   _q=queue, _dq=collections.deque, _steps=steps, **names)
    return out


@pytest.mark.parametrize("name", SUBJECTS)
def test_record_time_now(interleaved, name, tmp_path_factory):
    def prepare(h, tag):
        return {"args": []}

    prepare.tmp = tmp_path_factory.mktemp("rec-time")
    r = interleaved("record-time-now",
                    lambda: _subjects(Policy(allow_effects=["time"]), prepare,
                                      "_r = d('time', 'now', args)"), name)
    assert r > 0


@pytest.mark.parametrize("name", SUBJECTS)
def test_record_kv_get(interleaved, name, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rec-kv")

    def prepare(h, tag):
        handle = h.dispatch("kv", "open", [str(tmp / tag)]).args[0]
        h.dispatch("kv", "put", [handle, KEY, VALUE])
        return {"args": [handle, KEY]}

    prepare.tmp = tmp
    policy = Policy(allow_effects=["kv"], allow_fs_write=[str(tmp)])
    r = interleaved("record-kv-get",
                    lambda: _subjects(policy, prepare, "_r = d('kv', 'get', args)"), name)
    assert r.args[0] == VALUE
