"""Soak: millions of dispatches of each hot effect, and registry cycles, with
memory measured before and after (issue 9, "Leaks").

    python fuzz/soak.py             # 1M dispatches each, 200k registry cycles (~1 min)
    python fuzz/soak.py --full      # the issue's 10M each and 1M registry cycles
    python fuzz/soak.py -n 3000000 --json out.json

For each workload: a warm-up of a tenth of the calls, ``gc.collect()``, then
the traced Python heap (``tracemalloc``) and the RSS (``/proc/self/statm``)
before and after the run. A leak of one object per call shows as tens of
bytes per call on both; flat means a few KiB of tracemalloc noise and RSS
growth well under a byte per call. Exits 1 when a workload grows past the
bounds below. ``LEXFAST_NO_EXTENSIONS=1`` soaks the pure-Python twin.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import tracemalloc

import lexfast
from lexfast import CapturedSink, DefaultHandler, EffectError, Policy
from lexfast.kernel import LRURegistry

#: Growth allowed over a whole workload, whatever N is: a per-call leak of a
#: single small object (≥ 16 bytes) over a million calls is far past both.
TRACED_BOUND = 256 << 10
RSS_BOUND = 4 << 20


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _handlers():
    allow = DefaultHandler(Policy(allow_effects=["time", "env", "io"], budget=2**63),
                           sink=CapturedSink(), pure={("str", "len"): lambda a: len(a[0])})
    deny = DefaultHandler(Policy.pure(), sink=CapturedSink())
    return allow, deny


def workloads(allow, deny):
    """name -> a function running ``n`` calls of one hot path."""
    d = allow.dispatch
    sink = allow.session.sink

    def time_now(n):
        args = []
        for _ in range(n):
            d("time", "now", args)

    def denied(n):
        dd = deny.dispatch
        args = ["x"]
        for _ in range(n):
            try:
                dd("io", "print", args)
            except EffectError:
                pass

    def pure_builtin(n):
        args = ["hello"]
        for _ in range(n):
            d("str", "len", args)

    def note_call_budget(n):
        take = allow.note_call_budget
        for _ in range(n):
            take(1)

    def env_get(n):
        args = ["HOME"]
        for _ in range(n):
            d("env", "get", args)

    def io_print(n):
        args = ["a line"]
        lines = sink.lines
        for i in range(n):
            d("io", "print", args)
            if i & 0xFFFF == 0:
                lines.clear()
        lines.clear()

    def bad_args(n):  # the error path: an EffectError built and dropped each call
        args = ["not an int"]
        for _ in range(n):
            try:
                d("time", "sleep_ms", args)
            except EffectError:
                pass

    return {"time.now": time_now, "denied io.print": denied, "pure builtin": pure_builtin,
            "note_call_budget": note_call_budget, "env.get": env_get,
            "io.print (CapturedSink)": io_print, "time.sleep_ms bad arg": bad_args}


def registry_cycles(n):
    released = [0]

    def on_evict(handle, value):
        released[0] += 1

    reg = LRURegistry(256, on_evict)
    h = 1
    for i in range(n):
        reg.insert(h, ("resource", i))
        reg.touch_get(h)
        if i % 3 == 0:
            reg.remove(h)  # the rest are evicted by the cap (on_evict)
        h += 1
    for handle, value in reg.pop_all():
        on_evict(handle, value)


def measure(fn, n: int) -> dict:
    fn(max(n // 10, 1))  # warm-up: caches, free lists, the arena high-water mark
    gc.collect()
    traced0, rss0 = tracemalloc.get_traced_memory()[0], rss_bytes()
    t0 = time.perf_counter()
    fn(n)
    dt = time.perf_counter() - t0
    gc.collect()
    traced1, rss1 = tracemalloc.get_traced_memory()[0], rss_bytes()
    return {"calls": n, "seconds": round(dt, 2), "ns_per_call": round(dt * 1e9 / n),
            "traced_growth": traced1 - traced0, "rss_growth": rss1 - rss0,
            "traced_after": traced1, "rss_after": rss1}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="10M dispatches each, 1M registry cycles")
    ap.add_argument("-n", type=int, help="dispatches per workload")
    ap.add_argument("--registry", type=int, help="registry cycles")
    ap.add_argument("--no-tracemalloc", action="store_true",
                    help="RSS only (tracemalloc slows every allocation)")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args(argv)
    n = a.n or (10_000_000 if a.full else 1_000_000)
    reg_n = a.registry or (1_000_000 if a.full else 200_000)
    if not a.no_tracemalloc:
        tracemalloc.start()
    core = "compiled" if lexfast.COMPILED else "pure-Python twin"
    print(f"lexfast {lexfast.__version__}, core: {core}; {n:,} calls per workload, "
          f"{reg_n:,} registry cycles", flush=True)
    allow, deny = _handlers()
    results = {}
    ok = True
    jobs = list(workloads(allow, deny).items()) + [("LRURegistry cycles", registry_cycles)]
    for name, fn in jobs:
        r = measure(fn, reg_n if fn is registry_cycles else n)
        flat = r["traced_growth"] <= TRACED_BOUND and r["rss_growth"] <= RSS_BOUND
        ok &= flat
        results[name] = r
        print(f"{name:26} {r['calls']:>11,} calls {r['seconds']:>7.1f} s "
              f"{r['ns_per_call']:>6} ns/call  tracemalloc {r['traced_growth']:>+9,} B  "
              f"RSS {r['rss_growth']:>+11,} B  {'flat' if flat else 'GROWS'}", flush=True)
    allow.close()
    deny.close()
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"core": core, "tracemalloc": not a.no_tracemalloc, "results": results},
                      f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
