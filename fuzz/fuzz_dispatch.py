"""atheris target: bytes -> a few ``dispatch`` / ``note_call_budget`` calls.

Property (issue 9, as tests/test_fuzz.py): the only exceptions leaving
``dispatch`` and ``note_call_budget`` are ``EffectError``; the process does
not crash; under ``Policy.pure()`` nothing is created, written, spawned or
sent, and a second handler granted the file/storage families scoped to one
directory changes nothing outside it. Any other exception, a change outside,
a child process or a connection to the loopback listener aborts the run
(atheris saves the input as ``crash-*``).

    python fuzz/fuzz_dispatch.py -max_total_time=60 -artifact_prefix=/tmp/lexfast-fuzz/

See fuzz/README.md. ``LEXFAST_NO_EXTENSIONS=1`` fuzzes the pure-Python twin.
"""

from __future__ import annotations

import glob
import io
import math
import os
import shutil
import socket
import sys

import atheris

import lexfast
from lexfast import CapturedSink, DefaultHandler, EffectError, Policy
from lexfast.handler import Limits
from lexfast.kernel import NONE, Variant, err, ok, some
from lexfast.table import default_table
from lexfast.values import Map

_TABLE = default_table()
KINDS = sorted(set(_TABLE.ops) | set(_TABLE.wildcards)) + ["str", "nope", "process", ""]
OPS = sorted({op for ops in _TABLE.ops.values() for op in ops}) + ["len", "*", "x"]
SAFE_EFFECTS = ["io", "fs_read", "fs_write", "fs_walk", "kv", "sql", "log", "time", "env",
                "random", "budget", "crypto"]
SAFE_KINDS = ["io", "fs", "kv", "sql", "log", "time", "datetime", "env", "rand", "crypto",
              "budget"]
# A full look at the filesystem every this many inputs. libFuzzer ends the
# process with exit(3) (no Python atexit), so the last window is the last check.
CHECK_EVERY = 200


class Boom(Exception):
    pass


def _raiser(name):
    def method(self, *a, **k):
        raise Boom(name)
    return method


def _hostile(base, names, cls_name):
    return type(cls_name, (base,), {n: _raiser(n) for n in names})


_ALL = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__str__",
        "__repr__", "__format__", "__len__", "__index__", "__int__", "__float__", "__bool__",
        "__iter__", "__fspath__", "__bytes__", "__getitem__", "__contains__")
HOSTILE = [
    _hostile(object, _ALL, "Evil"),
    _hostile(object, ("__len__", "__iter__", "__getitem__"), "EvilLen"),
    _hostile(object, ("__index__", "__int__", "__float__"), "EvilIndex"),
]
EvilStr = _hostile(str, ("__str__", "__repr__", "__format__", "__len__", "__iter__",
                         "__getitem__", "encode", "__add__", "__mod__"), "EvilStr")
EvilStrEq = _hostile(str, ("__eq__", "__ne__", "__hash__"), "EvilStrEq")
EvilInt = _hostile(int, ("__index__", "__int__", "__repr__", "__str__", "__format__",
                         "__add__", "__sub__", "__float__", "__bool__", "__eq__"), "EvilInt")
EvilFloat = _hostile(float, ("__float__", "__repr__", "__str__", "__eq__", "__lt__"), "EvilFloat")
EvilList = _hostile(list, ("__len__", "__iter__", "__getitem__", "__repr__"), "EvilList")
EvilBytes = _hostile(bytes, ("__len__", "__iter__", "__getitem__", "decode"), "EvilBytes")


SPECIAL_INTS = [0, -1, 2**31, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64,
                10**100, -(10**100)]
SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]
SQL = ["CREATE TABLE t(a, b)", "INSERT INTO t VALUES (?, ?)", "SELECT * FROM t", "SELECT ?",
       "ATTACH DATABASE '{o}/x.db' AS x", "VACUUM INTO '{o}/v.db'", "PRAGMA journal_mode=DELETE",
       "SELECT writefile('{o}/w', 'x')", "BEGIN", "COMMIT", "DROP TABLE t"]


class World:
    def __init__(self) -> None:
        # In the cwd (the run's scratch directory), remade each run: libFuzzer's
        # exit skips Python's cleanup, so a temp dir would be left behind.
        self.base = os.path.abspath("lexfast-fuzz-world")
        shutil.rmtree(self.base, ignore_errors=True)
        os.mkdir(self.base)
        self.inside = os.path.join(self.base, "inside")
        self.outside = os.path.join(self.base, "outside")
        self.cwd = os.path.join(self.base, "cwd")
        for d in (self.inside, self.outside, self.cwd):
            os.mkdir(d)
        with open(os.path.join(self.outside, "secret.txt"), "w") as f:
            f.write("secret")
        os.symlink(self.outside, os.path.join(self.inside, "link_out"))
        os.chdir(self.cwd)  # relative paths land in a watched directory
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.tcp.setblocking(False)
        self.port = self.tcp.getsockname()[1]
        self.kids = self.children()
        self.snapshot = self.trees()
        i, o = self.inside, self.outside
        self.paths = [i, o, self.cwd, f"{i}/file.txt", f"{i}/store.kv", f"{i}/db.sqlite",
                      f"{i}/sub", f"{i}/../outside/x", f"{i}/link_out/pwn", f"{i}/link_out",
                      f"{o}/secret.txt", "rel.txt", "../escape", f"{i}/\x00x", f"{i}/*",
                      f"{i}/**/*", f"{i}/../*", "/etc/passwd", "/dev/zero", "/", "",
                      f"file:{o}/x.db", f"file:{i}/x.db?mode=rwc", ":memory:",
                      f"http://127.0.0.1:{self.port}/", f"127.0.0.1:{self.port}", "127.0.0.1"]
        self.sql = [s.format(o=o) for s in SQL]
        self.pure = DefaultHandler(Policy.pure(), sink=CapturedSink(),
                                   pure={("str", "len"): lambda a: len(a[0])})
        self.scoped = DefaultHandler(
            Policy(allow_effects=SAFE_EFFECTS, allow_fs_read=[i], allow_fs_write=[i],
                   budget=10**12), sink=CapturedSink(), limits=Limits(kv_sync=False))
        # io.readline must never wait on the fuzzer's own stdin
        self.scoped.with_input(io.BytesIO(b"a line\n" * 1000))
        self.n = 0

    @staticmethod
    def children() -> set[int]:
        pids = set()
        for path in glob.glob("/proc/self/task/*/children"):
            try:
                with open(path) as f:
                    pids.update(int(p) for p in f.read().split())
            except OSError:
                pass
        return pids

    def trees(self):
        out = {}
        for root in (self.outside, self.cwd):
            for dirpath, dirnames, filenames in os.walk(root):
                for name in dirnames + filenames:
                    p = os.path.join(dirpath, name)
                    st = os.lstat(p)
                    out[p] = (st.st_mode, st.st_size, st.st_mtime_ns)
        return out

    def check(self, full: bool) -> None:
        try:
            self.tcp.accept()[0].close()
        except BlockingIOError:
            pass
        else:
            raise AssertionError("something connected to the loopback listener")
        new = self.children() - self.kids
        if new:
            raise AssertionError(f"child processes appeared: {new}")
        if self.pure.session.sink.lines:
            raise AssertionError("io.print printed under Policy.pure()")
        if full:
            now = self.trees()
            if now != self.snapshot:
                diff = sorted(set(now.items()) ^ set(self.snapshot.items()))
                raise AssertionError(f"changed outside the scope: {diff[:5]}")
            self.scoped.session.sink.lines.clear()


class Decoder:
    def __init__(self, data: bytes, world: World) -> None:
        self.fdp = atheris.FuzzedDataProvider(data)
        self.world = world
        self.pool: list[int] = []

    def pick(self, seq):
        return seq[self.fdp.ConsumeIntInRange(0, len(seq) - 1)]

    def text(self) -> str:
        n = self.fdp.ConsumeIntInRange(0, 24)
        return self.fdp.ConsumeUnicode(n)  # may hold surrogates and NULs

    def name(self, known) -> object:
        t = self.fdp.ConsumeIntInRange(0, 9)
        if t < 6:
            return self.pick(known)
        if t == 6:
            return self.text()
        if t == 7:
            return EvilStrEq(self.pick(known))
        if t == 8:
            return EvilStr(self.pick(known))
        return self.pick([None, 1, b"io", ["io"], HOSTILE[0]()])

    def value(self, depth: int = 0):
        t = self.fdp.ConsumeIntInRange(0, 24)
        f = self.fdp
        if t == 0:
            return None
        if t == 1:
            return f.ConsumeBool()
        if t == 2:
            return f.ConsumeIntInRange(-(2**63), 2**63 - 1)
        if t == 3:
            return self.pick(SPECIAL_INTS)
        if t == 4:
            return f.ConsumeRegularFloat()
        if t == 5:
            return self.pick(SPECIAL_FLOATS)
        if t in (6, 7):
            return self.text()
        if t == 8:
            return f.ConsumeBytes(f.ConsumeIntInRange(0, 32))
        if t == 9:
            return bytearray(f.ConsumeBytes(8))
        if t == 10:
            return memoryview(f.ConsumeBytes(8))
        if t in (11, 12, 13) and depth < 6:
            items = [self.value(depth + 1) for _ in range(f.ConsumeIntInRange(0, 4))]
            return items if t == 11 else tuple(items) if t == 12 else \
                {str(i): v for i, v in enumerate(items)}
        if t == 14 and depth < 6:
            return Map({self.text(): self.value(depth + 1)})
        if t == 15:
            return self.pick([NONE, ok(None), err("e"), some(1), Variant("X", [1])])
        if t == 16:
            return self.pick(HOSTILE)()
        if t == 17:
            return self.pick([EvilStr, EvilStrEq])(self.text())
        if t == 18:
            return EvilInt(self.pick(SPECIAL_INTS))
        if t == 19:
            return self.pick([EvilFloat(1.0), EvilBytes(b"x"), EvilList([1])])
        if t == 20:
            v = 0
            for _ in range(f.ConsumeIntInRange(0, 50_000)):
                v = [v]
            return v
        if t in (21, 22):
            return self.pick(self.world.paths)
        if t == 23:
            return self.pick(self.world.sql)
        return self.pick(self.pool) if self.pool else f.ConsumeIntInRange(0, 100)

    def args(self):
        t = self.fdp.ConsumeIntInRange(0, 9)
        if t == 9:
            return self.value()  # not a list, or a hostile list subclass
        items = [self.value() for _ in range(self.fdp.ConsumeIntInRange(0, 4))]
        return tuple(items) if t == 8 else items



def _call(fn, *a):
    try:
        return fn(*a)
    except EffectError as e:
        str(e)
        return None


def one_input(data: bytes) -> None:
    w = WORLD
    d = Decoder(data, w)
    for _ in range(d.fdp.ConsumeIntInRange(1, 6)):
        mode = d.fdp.ConsumeIntInRange(0, 9)
        if mode == 0:
            _call((w.pure if d.fdp.ConsumeBool() else w.scoped).note_call_budget, d.value())
        elif mode < 5:
            _call(w.pure.dispatch, d.name(KINDS), d.name(OPS), d.args())
        else:
            kind = d.pick(SAFE_KINDS)
            ops = sorted(_TABLE.ops.get(kind, {"consume": None}))
            op = d.pick(ops) if d.fdp.ConsumeIntInRange(0, 9) else d.text()
            args = d.args()
            if (kind, op) in (("time", "sleep_ms"), ("time", "sleep")):  # never a real long sleep
                args = [d.pick([-1, 0, 1, 2**70, "1", None])]
            r = _call(w.scoped.dispatch, kind, op, args)
            if isinstance(r, Variant) and r.args and type(r.args[0]) is int:
                d.pool.append(r.args[0])
    w.n += 1
    w.check(w.n % CHECK_EVERY == 0)


WORLD: World


def main() -> None:
    global WORLD
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    WORLD = World()
    print(f"lexfast {lexfast.__version__}, core: "
          f"{'compiled' if lexfast.COMPILED else 'pure-Python twin'}", file=sys.stderr)
    # Coverage of every Python function loaded (lexfast's modules and the
    # libraries under them); the compiled core itself is not instrumented.
    atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
