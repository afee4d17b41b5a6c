"""``lexfast host``'s closure protocol (issue 19): a real ``lexfast host``
child, a Python peer that answers its ``{"call": N, ...}`` lines (and
performs effects from inside the closure), serving HTTP via net.serve_fn /
serve_routed, driven by a real HTTP client."""

from __future__ import annotations

import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

import lexfast

T = 20  # seconds: every wait in this file is bounded by this

_RESET_SIGNALS = (
    "import os, signal, sys\n"
    "for s in signal.valid_signals():\n"
    "    try:\n"
    "        signal.signal(s, signal.SIG_DFL)\n"
    "    except (OSError, ValueError):\n"
    "        pass\n"
    "signal.pthread_sigmask(signal.SIG_SETMASK, [])\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n")


class Peer:
    """A peer VM: ``closures`` maps a token to ``fn(peer, *args) -> value``
    (a raise becomes an ``error`` answer); ``answer=False`` ignores calls."""

    def __init__(self, tmp_path: Path, closures: dict, *flags: str, answer=True):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(Path(lexfast.__file__).resolve().parent.parent)
        self.p = subprocess.Popen(
            [sys.executable, "-c", _RESET_SIGNALS, sys.executable, "-m", "lexfast", "host",
             *flags], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=tmp_path, env=env)
        self.killer = threading.Timer(60, self.p.kill)  # a hang fails, never blocks the run
        self.killer.start()
        self.closures = closures
        self.answer = answer
        self.ids = itertools.count(1000)
        self.replies: dict = {}
        self.cond = threading.Condition()
        self.calls: list = []
        self.errors: list = []
        self.ports: queue.Queue = queue.Queue()
        self.stderr: list = []
        self.write_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(8)
        self.readers = [threading.Thread(target=self._read_out, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for t in self.readers:
            t.start()

    def send(self, obj) -> None:
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        with self.write_lock:
            self.p.stdin.write(data + b"\n")
            self.p.stdin.flush()

    def _read_out(self) -> None:
        for raw in self.p.stdout:
            msg = json.loads(raw)
            if "call" in msg:
                with self.cond:
                    self.calls.append(msg)
                    self.cond.notify_all()
                if self.answer:
                    self.pool.submit(self._run_call, msg)
            elif msg.get("type") == "ProtocolError" and "id" not in msg:
                with self.cond:
                    self.errors.append(msg)
                    self.cond.notify_all()
            else:
                with self.cond:
                    self.replies[msg.get("id")] = msg
                    self.cond.notify_all()

    def _read_err(self) -> None:
        for raw in self.p.stderr:
            line = raw.decode("utf-8", "replace")
            self.stderr.append(line)
            m = re.search(r"listening on https?://127\.0\.0\.1:(\d+)", line)
            if m:
                self.ports.put(int(m.group(1)))

    def _run_call(self, msg) -> None:
        fn = self.closures[msg["closure"]]
        try:
            value = fn(self, *msg["args"])
        except Exception as e:  # noqa: BLE001 - the peer's error answer
            self.send({"call": msg["call"], "error": str(e)})
        else:
            self.send({"call": msg["call"], "ok": value})

    def request(self, kind, op, *args, wait=True):
        """One effect request; its reply (waits at most T)."""
        id_ = next(self.ids)
        self.send({"id": id_, "kind": kind, "op": op, "args": list(args)})
        return self.reply(id_) if wait else id_

    def reply(self, id_):
        with self.cond:
            assert self.cond.wait_for(lambda: id_ in self.replies, T), \
                f"no reply to {id_}; stderr: {''.join(self.stderr)}"
            return self.replies.pop(id_)

    def wait_error(self):
        with self.cond:
            assert self.cond.wait_for(lambda: self.errors, T)
            return self.errors.pop(0)

    def port(self) -> int:
        return self.ports.get(timeout=T)

    def stop_server(self, id_) -> dict:
        self.p.send_signal(signal.SIGINT)  # the server returns Unit
        return self.reply(id_)

    def finish(self) -> int:
        try:
            self.p.stdin.close()
            rc = self.p.wait(T)
        finally:
            self.killer.cancel()
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            for t in self.readers:
                t.join(T)
            self.pool.shutdown(wait=True)
            self.p.stdout.close()
            self.p.stderr.close()
        return rc


def test_serve_fn_closures_answered_by_the_peer(tmp_path):
    def handle(peer, req):
        # the closure's body performs an effect through the host meanwhile
        now = peer.request("time", "now")["ok"]
        return {"status": 200, "body": f"{req['method']} {req['path']} at {now}",
                "headers": {"$map": [["x-peer", "yes"]]}}

    peer = Peer(tmp_path, {"handle": handle}, "--allow-effects", "net,time")
    try:
        serve_id = peer.request("net", "serve_fn", 0, {"$closure": "handle"}, wait=False)
        port = peer.port()
        r = requests.get(f"http://127.0.0.1:{port}/hello", timeout=T)
        assert r.status_code == 200 and re.fullmatch(r"GET /hello at \d+", r.text)
        assert r.headers["x-peer"] == "yes"
        # several calls waiting at once, each answered to its own request
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda i: requests.get(
                f"http://127.0.0.1:{port}/n{i}", timeout=T).text, range(12)))
        assert [g.split(" at ")[0] for g in got] == [f"GET /n{i}" for i in range(12)]
        call = peer.calls[0]
        assert call["closure"] == "handle" and len(call["args"]) == 1
        request = call["args"][0]
        assert request["path"] == "/hello" and request["path_params"] == {"$map": []}
        assert peer.stop_server(serve_id) == {"id": serve_id, "ok": None}
        assert peer.request("time", "now")["ok"] > 0  # the host goes on
    finally:
        rc = peer.finish()
    assert rc == 0
    assert "Traceback" not in "".join(peer.stderr)


def test_routed_closures_and_peer_errors(tmp_path):
    def user(peer, req):
        return {"body": "user " + req["path_params"]["$map"][0][1]}

    def boom(peer, req):
        raise ValueError("the peer's closure failed")

    def fallback(peer, req):
        return {"status": 404, "body": "none"}

    peer = Peer(tmp_path, {"u": user, "b": boom, "f": fallback}, "--allow-effects", "net")
    try:
        routes = [{"$tuple": ["GET", "/users/:id", {"$closure": "u"}]},
                  {"$tuple": ["*", "/boom", {"$closure": "b"}]}]
        serve_id = peer.request("net", "serve_routed", 0, routes, {"$closure": "f"}, wait=False)
        port = peer.port()
        assert requests.get(f"http://127.0.0.1:{port}/users/7", timeout=T).text == "user 7"
        r = requests.get(f"http://127.0.0.1:{port}/elsewhere", timeout=T)
        assert (r.status_code, r.text) == (404, "none")
        r = requests.post(f"http://127.0.0.1:{port}/boom", timeout=T)
        assert r.status_code == 500
        assert re.search(r"closure call \d+ failed in the peer: the peer's closure failed", r.text)
        assert peer.stop_server(serve_id)["ok"] is None
    finally:
        assert peer.finish() == 0


def test_an_unanswered_call_times_out_and_bad_answers_are_protocol_errors(tmp_path):
    peer = Peer(tmp_path, {}, "--allow-effects", "net", "--closure-timeout", "1",
                answer=False)
    try:
        serve_id = peer.request("net", "serve_fn", 0, {"$closure": ["any", "json", 1]},
                                wait=False)
        port = peer.port()
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=T)
        assert r.status_code == 500
        assert re.search(r"closure call 1: the peer did not answer within 1 s", r.text)
        assert peer.calls[0]["closure"] == ["any", "json", 1]
        # too late: refused (read when the next call waits for its answer)
        peer.send({"call": 1, "ok": {"body": "late"}})

        result: dict = {}

        def get():
            result["r"] = requests.get(f"http://127.0.0.1:{port}/2", timeout=T)

        t = threading.Thread(target=get)
        t.start()
        assert "no closure call 1 is waiting" in peer.wait_error()["error"]
        with peer.cond:
            assert peer.cond.wait_for(lambda: len(peer.calls) == 2, T)
        peer.send({"call": 2, "ok": {"body": "x"}, "extra": 1})  # malformed: the wait goes on
        assert "a closure answer is" in peer.wait_error()["error"]
        peer.send({"call": 2, "ok": {"body": "on time"}})
        t.join(T)
        assert result["r"].text == "on time"
        assert peer.stop_server(serve_id)["ok"] is None
        # a closure of the peer's is refused outside host's hook shape
        bad = peer.request("net", "serve_fn", 0, "handle")
        assert "handler must be a closure" in bad["error"]
    finally:
        assert peer.finish() == 0


def test_the_peer_leaving_mid_call_stops_the_server(tmp_path):
    peer = Peer(tmp_path, {}, "--allow-effects", "net", answer=False)
    serve_id = peer.request("net", "serve_fn", 0, {"$closure": "h"}, wait=False)
    port = peer.port()
    result: dict = {}

    def get():
        result["r"] = requests.get(f"http://127.0.0.1:{port}/", timeout=T)

    t = threading.Thread(target=get)
    t.start()
    with peer.cond:
        assert peer.cond.wait_for(lambda: peer.calls, T)
    assert peer.finish() == 0  # stdin closed: the call fails, the server stops, EOF exits
    t.join(T)
    assert result["r"].status_code == 500
    assert "the peer closed its input without answering" in result["r"].text
    assert peer.replies[serve_id] == {"id": serve_id, "ok": None}
