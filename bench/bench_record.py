"""Record and replay (issue 25): what recording costs per effect, and replay
against performing the effect, in interleaved statement loops.

Groups ``record-time-now``, ``record-kv-get`` and ``record-http-get``, each
one handler per subject:

- ``off``: a handler that does not record (the class's ``dispatch``);
- ``record``: ``DefaultHandler(..., record=os.devnull)``: the kernel's
  recording entry (``RecordTap``: two clock reads, the args copied, a tuple
  appended; nothing encoded) on the dispatch thread, while the writer thread
  encodes and writes in the background, sharing the GIL;
- ``record_written``: the same loop followed by the writer's work for it,
  done on the bench thread (``Recorder._drain``: every call encoded by the
  kernel's ``trace_call_lines`` and written to ``/dev/null``): all the CPU
  recording costs, whatever thread pays it;
- ``replay``: ``DefaultHandler(..., replay=trace)`` over a recorded trace of
  the loop's calls, rewound before each loop (``TraceSteps.pos``): each call
  compared with the recorded one (``strict_equal`` on the decoded args, in C)
  and answered the recorded value; nothing performed, nothing encoded.
"""

from __future__ import annotations

import os

import pytest

from lexfast import DefaultHandler, Limits, Policy

INNER = 1000
KEY = "user:00042"
VALUE = b"v" * 100

#: (group, subject, baseline, max extra ns per call, median against median)
DIFF_TARGETS = [
    # issue 25: recording overhead per effect at most 1 µs over not recording
    # (on the dispatch thread; the writer's share is record_written, reported)
    ("record-time-now", "test_record_time_now[record]", "test_record_time_now[off]", 1000),
    ("record-kv-get", "test_record_kv_get[record]", "test_record_kv_get[off]", 1000),
    # all of it, the writer's encoding and writing included: +0.95 and +0.79 µs
    # (medians) on the loaded 2-CPU box with a CPU burner beside; bounded at
    # 1.5 µs for loaded CI boxes
    ("record-time-now", "test_record_time_now[record_written]", "test_record_time_now[off]",
     1500),
    ("record-kv-get", "test_record_kv_get[record_written]", "test_record_kv_get[off]", 1500),
]

RATIO_TARGETS: list[tuple] = [
    # issue 25: replay faster than live, for every effect measured
    ("record-http-get", "test_record_http_get[replay]", "test_record_http_get[off]", 0.2),
    ("record-kv-get", "test_record_kv_get[replay]", "test_record_kv_get[off]", 1.0),
    ("record-time-now", "test_record_time_now[replay]", "test_record_time_now[off]", 1.0),
]

SUBJECTS = ["off", "record", "record_written", "replay"]


def _subjects(policy: Policy, prepare, stmt: str, inner: int = INNER) -> dict:
    """``prepare(handler, tag)`` readies a handler (its calls are recorded
    too, and replayed before the loop's) and returns the loop's names."""
    from statement_loops import statement_loop

    out = {}
    off = DefaultHandler(policy)
    out["off"] = statement_loop(stmt, inner, d=off.dispatch, **prepare(off, "off"))

    rec = DefaultHandler(policy, record=os.devnull, limits=Limits(record_bytes=1 << 62))
    out["record"] = statement_loop(stmt, inner, d=rec.dispatch, **prepare(rec, "record"))

    rec_w = DefaultHandler(policy, record=os.devnull, limits=Limits(record_bytes=1 << 62))
    loop_w = statement_loop(stmt, inner, d=rec_w.dispatch, **prepare(rec_w, "written"))
    drain = rec_w.session.tracer._drain

    def written():
        r = loop_w()
        drain()  # this loop's calls encoded and written, here
        return r

    out["record_written"] = written

    trace = prepare.tmp / "trace.jsonl"
    with DefaultHandler(policy, record=trace) as live:
        statement_loop(stmt, inner, d=live.dispatch, **prepare(live, "live"))()
    rep = DefaultHandler(policy, replay=trace)
    steps = rep.session.tracer.by_fork[0]
    names = prepare(rep, "live")  # answered from the trace: the steps before the loop's
    out["replay"] = statement_loop(stmt, inner, d=rep.dispatch, setup=f"_q.pos = {steps.pos}",
                                   _q=steps, **names)
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


@pytest.mark.parametrize("name", SUBJECTS)
def test_record_http_get(interleaved, name, tmp_path_factory):
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Hello(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()  # headers and body are two writes: no Nagle delay between
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *a):
            pass

    srv = _SERVER.get("srv")
    if srv is None:
        srv = _SERVER["srv"] = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/"

    def prepare(h, tag):
        return {"args": [url]}

    prepare.tmp = tmp_path_factory.mktemp("rec-http")
    policy = Policy(allow_effects=["net"], allow_net_host=["127.0.0.1"])
    r = interleaved("record-http-get",
                    lambda: _subjects(policy, prepare, "_r = d('http', 'get', args)", 50),
                    name, inner=50)
    assert r.args[0]["status"] == 200


_SERVER: dict = {}
