"""net.serve under load: a trivial VM handler behind lexfast's front (one
event loop, a bounded pool of ``limits.serve_threads`` workers) against the
same runner behind the standard library's ``ThreadingHTTPServer`` set up
properly (HTTP/1.1 keep-alive, TCP_NODELAY, a 1024 listen backlog; one thread
per connection, unbounded). As shipped (HTTP/1.0, Nagle on) the stdlib
server is several times slower, which would flatter us.

Each server runs in its own process (``python bench/bench_serve.py serve
lexfast|stdlib``), so the load generator and the server do not share a GIL
or a heap; the load comes from ``wrk`` (keep-alive, C) at 16, 256 and 1024
connections. Rounds are **interleaved**: for each connection count, lexfast,
stdlib, lexfast, stdlib... so a change in the machine's load hits both
alike. The benchmark's time is seconds per request, ``1 / (req/s)`` as wrk
measured it, so time ratios are inverse throughput ratios. ``extra_info``
holds req/s, p50 and p99 latency, errors (non-2xx, socket) and the server's
RSS before and after its rounds.

Skipped when ``wrk`` is not installed (``apt-get install wrk``); CI's short
mode runs 1 s rounds. The full run for bench/RESULTS.md::

    python bench/bench_serve.py run --seconds 10 --rounds 3

prints the interleaved table (req/s, p99, errors, RSS) and the ratios;
``--fn`` measures ``net.serve_fn`` instead (the same handler as a closure
value, called through ``DefaultHandler(invoke=...)``).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import time

import pytest

WRK = shutil.which("wrk")
pytestmark = pytest.mark.skipif(WRK is None, reason="wrk is not installed (apt-get install wrk): "
                                "the server benchmark needs it and is skipped")

CONNS = [16, 256, 1024]
ROUND_SECONDS = float(os.environ.get("LEXFAST_BENCH_SERVE_SECONDS", "1"))
ROUNDS = int(os.environ.get("LEXFAST_BENCH_SERVE_ROUNDS", "3"))

# Seconds per request, lexfast / stdlib (inverse req/s ratios). Issue 23 asks
# for at least 1.5x the tuned stdlib server's req/s at 16 and 256 connections
# (a ratio of 0.67) and a lower p99 at each point; with uvloop we measured
# 1.8x at 16 and 2.8-4.5x at 256 and 1024 in interleaved 10 s rounds on the
# shared 2-core box (bench/RESULTS.md). CI's 1 s rounds swing more, so 1024
# only has to be no slower than the stdlib server.
RATIO_TARGETS = [
    ("serve-c16", "test_serve_lexfast[c16]", "test_serve_stdlib[c16]", 0.67),
    ("serve-c256", "test_serve_lexfast[c256]", "test_serve_stdlib[c256]", 0.67),
    ("serve-c1024", "test_serve_lexfast[c1024]", "test_serve_stdlib[c1024]", 1.0),
]


# -- the two servers (each in its own process) ----------------------------------------

def runner(program, handler, name, args):
    return program[name](handler, *args)


def trivial(h, req):
    return {"status": 200, "body": "ok"}


PROGRAM = {"handle": trivial}


class Closure:
    """A VM's closure value, for net.serve_fn (``lexfast_fn``)."""

    def __init__(self, fn) -> None:
        self.fn = fn


def invoke(closure, handler, args):
    return closure.fn(handler, *args)


def _serve_lexfast(kind: str = "lexfast") -> None:
    import threading

    from lexfast import DefaultHandler, Policy
    from lexfast.effects.net.serve import wait_listening

    h = DefaultHandler(Policy(allow_effects=["net"]), program=PROGRAM, runner=runner,
                       invoke=invoke)

    def announce():
        print(wait_listening(h, "http", 10), flush=True)
        sys.stdin.readline()  # stdin closed or a line: stop
        h.shutdown()

    threading.Thread(target=announce, daemon=True).start()
    if kind == "lexfast_fn":  # the same handler as a closure, through the invoke hook
        h.dispatch("net", "serve_fn", [0, Closure(trivial)])
    else:
        h.dispatch("net", "serve", [0, "handle"])
    h.close()


def _serve_stdlib() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from lexfast import DefaultHandler, Map, Policy

    h = DefaultHandler(Policy(allow_effects=["net"]), program=PROGRAM, runner=runner)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"      # keep-alive
        disable_nagle_algorithm = True     # TCP_NODELAY

        def _serve(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            path, _, query = self.path.partition("?")
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                body = ""
            headers = Map((k.lower(), v) for k, v in self.headers.items())
            req = {"method": self.command, "path": path, "query": query, "body": body,
                   "headers": headers}
            try:
                res = runner(PROGRAM, h.fork(), "handle", [req])
                status, out = res.get("status", 200), str(res.get("body", "")).encode()
            except Exception as e:  # noqa: BLE001 - as lexfast does
                status, out = 500, f"internal error: {e}".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _serve

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # wrk resets its connections at the end of a run

    srv = Server(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    print(srv.server_address[1], flush=True)
    sys.stdin.readline()
    srv.shutdown()
    srv.server_close()
    h.close()


class ServerProcess:
    """``python bench/bench_serve.py serve <kind>`` with its port and RSS."""

    def __init__(self, kind: str) -> None:
        import tempfile

        import lexfast

        env = dict(os.environ)
        # the lexfast this run imports (the installed one in CI), never an
        # unbuilt source tree beside this file
        root = os.path.dirname(os.path.dirname(os.path.abspath(lexfast.__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.kind = kind
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve", kind],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, env=env,
                                     cwd=tempfile.gettempdir())
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            self.proc.wait(10)
            self._stderr.seek(0)
            raise RuntimeError(f"the {kind} server did not start: {self._stderr.read()[-2000:]}")
        self.port = int(line)
        self.rss_start = None

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()
        self._stderr.close()


# -- wrk -------------------------------------------------------------------------------

_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNIT[m.group(2)] if m else float("nan")


def run_wrk(port: int, conns: int, seconds: float) -> dict:
    threads = 2
    cmd = [WRK, f"-t{threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "5s",
           "--latency", f"http://127.0.0.1:{port}/bench"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                         check=True).stdout
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}_ms"] = round(_seconds(m.group(1)) * 1e3, 3) if m else None
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def interleaved(conns: int, seconds: float, rounds: int, kinds=("lexfast", "stdlib")) -> dict:
    """``rounds`` wrk runs per server, alternating, after one warm-up each;
    fresh server processes per connection count."""
    servers = {k: ServerProcess(k) for k in kinds}
    out: dict = {k: {"rounds": []} for k in kinds}
    try:
        for k, s in servers.items():
            run_wrk(s.port, conns, 1)  # warm-up (and the first connections' threads)
            out[k]["rss_before_kib"] = s.rss_kib()
        for _ in range(rounds):
            for k, s in servers.items():
                r = run_wrk(s.port, conns, seconds)
                r["threads"] = s.threads()
                out[k]["rounds"].append(r)
        time.sleep(0.5)
        for k, s in servers.items():
            out[k]["rss_after_kib"] = s.rss_kib()
    finally:
        for s in servers.values():
            s.close()
    return out


_CACHE: dict = {}


def _measured(conns: int) -> dict:
    if conns not in _CACHE:
        _CACHE[conns] = interleaved(conns, ROUND_SECONDS, ROUNDS)
    return _CACHE[conns]


def _report(benchmark, kind: str, conns: int) -> None:
    """Replay the interleaved rounds of ``kind`` into pytest-benchmark (its
    timer reads one request's share of each round)."""
    data = _measured(conns)[kind]
    rounds = iter(data["rounds"])
    clock = [0.0]
    benchmark.group = f"serve-c{conns}"
    benchmark._timer = lambda: clock[0]

    def one():
        clock[0] += 1.0 / max(next(rounds)["rps"], 1e-9)

    benchmark.pedantic(one, rounds=len(data["rounds"]), iterations=1)
    rs = data["rounds"]
    mid = sorted(rs, key=lambda r: r["rps"])[len(rs) // 2]
    benchmark.extra_info.update({
        "connections": conns, "rps": mid["rps"], "p50_ms": mid["p50_ms"], "p99_ms": mid["p99_ms"],
        "errors": sum(r["non2xx"] + r["socket_errors"] for r in rs),
        "threads": max(r["threads"] for r in rs),
        "rss_before_kib": data["rss_before_kib"], "rss_after_kib": data["rss_after_kib"],
    })


@pytest.mark.parametrize("conns", CONNS, ids=[f"c{c}" for c in CONNS])
def test_serve_lexfast(benchmark, conns):
    _report(benchmark, "lexfast", conns)


@pytest.mark.parametrize("conns", CONNS, ids=[f"c{c}" for c in CONNS])
def test_serve_stdlib(benchmark, conns):
    _report(benchmark, "stdlib", conns)


# -- the full run ---------------------------------------------------------------------

def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("kind", choices=["lexfast", "lexfast_fn", "stdlib"])
    r = sub.add_parser("run")
    r.add_argument("--seconds", type=float, default=10)
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--conns", type=int, nargs="*", default=CONNS)
    r.add_argument("--fn", action="store_true",
                   help="measure net.serve_fn (a closure through the invoke hook) as lexfast")
    a = p.parse_args(argv)
    if a.cmd == "serve":
        if a.kind == "stdlib":
            _serve_stdlib()
        else:
            _serve_lexfast(a.kind)
        return 0
    if WRK is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    print("| conns | server | req/s (median) | req/s rounds | p99 ms (median) | errors | "
          "RSS before → after (MiB) | threads |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for conns in a.conns:
        data = interleaved(conns, a.seconds, a.rounds,
                           kinds=("lexfast_fn" if a.fn else "lexfast", "stdlib"))
        if a.fn:
            data["lexfast"] = data.pop("lexfast_fn")
        med = {}
        for kind in ("lexfast", "stdlib"):
            d = data[kind]
            rs = d["rounds"]
            rps = statistics.median(x["rps"] for x in rs)
            p99 = statistics.median(x["p99_ms"] for x in rs if x["p99_ms"] is not None)
            med[kind] = (rps, p99)
            errs = sum(x["non2xx"] + x["socket_errors"] for x in rs)
            each = ", ".join(f"{x['rps']:,.0f}" for x in rs)
            print(f"| {conns} | {kind} | {rps:,.0f} | {each} | "
                  f"{p99:.2f} | {errs} | {d['rss_before_kib'] / 1024:.1f} → "
                  f"{d['rss_after_kib'] / 1024:.1f} | {max(x['threads'] for x in rs)} |", flush=True)
        per_round = [lx["rps"] / st["rps"] for lx, st in zip(data["lexfast"]["rounds"],
                                                               data["stdlib"]["rounds"], strict=True)]
        ratios.append((conns, med["lexfast"][0] / med["stdlib"][0], per_round,
                       med["lexfast"][1], med["stdlib"][1]))
    print()
    print("| conns | lexfast/stdlib req/s (medians) | per interleaved round | p99 lexfast vs stdlib |")
    print("|---|---|---|---|")
    for conns, ratio, per, p99l, p99s in ratios:
        print(f"| {conns} | {ratio:.2f}× | {', '.join(f'{x:.2f}' for x in per)} | "
              f"{p99l:.2f} ms vs {p99s:.2f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
