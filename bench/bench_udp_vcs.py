"""net.udp_* and vcs.* through the handler vs the standard library a user
would call (issue 19).

Each group is timed interleaved (``statement_loops.interleaved_members``):
per-statement medians and the handler's ratio to each baseline land in the
JSON's ``extra_info`` (bench/RESULTS.md, "UDP and vcs").

- ``interleaved-udp-roundtrip``: one 64-byte datagram sent and received over
  127.0.0.1 between two sockets: ``udp_send`` + ``udp_recv`` vs ``sendto`` +
  ``recvfrom`` on blocking sockets with a timeout (``raw_socket``), and vs
  the same with the poll and ``recvmsg`` the handler does (``raw_poll``).
- ``interleaved-vcs-get``: ``vcs.get_blob`` of a 1 KiB blob vs reading the
  file by path (``raw_read``) and reading it plus checking its SHA-256
  (``raw_read_verify``, what the handler promises).
- ``interleaved-vcs-put``: ``vcs.put_blob`` of new content (temp file,
  fsync, rename beneath the scope root) vs the same atomic write by path
  (``raw_atomic_write``).

Run: PYTHONPATH=. pytest bench/bench_udp_vcs.py --benchmark-enable
"""

from __future__ import annotations

import hashlib
import itertools
import os
import pathlib
import select
import socket
import sys

import pytest

from lexfast import DefaultHandler, Policy
from lexfast.handler import Limits

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from statement_loops import interleaved_members as interleaved  # noqa: E402

N_UDP = 200
N_GET = 200
N_PUT = 10
DATA = b"d" * 64
BLOB = "b" * 1024


@pytest.fixture(scope="module")
def udp_pair():
    h = DefaultHandler(Policy(allow_effects=["net"]))
    a = h.dispatch("net", "udp_open", [0]).args[0]
    b = h.dispatch("net", "udp_open", [0]).args[0]
    from lexfast.effects.net import udp
    port_b = udp._registry(h).get(b).sock.getsockname()[1]
    yield h, a, b, port_b
    h.close()


@pytest.fixture(scope="module")
def raw_pair():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    b.settimeout(5)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    d.bind(("127.0.0.1", 0))
    d.setblocking(False)
    yield a, b, c, d
    for s in (a, b, c, d):
        s.close()


@pytest.mark.benchmark(group="interleaved-udp-roundtrip")
def test_udp_roundtrip_interleaved(benchmark, udp_pair, raw_pair):
    h, a, b, port_b = udp_pair
    ra, rb, rc, rd = raw_pair
    poller = select.poll()
    poller.register(rd, select.POLLIN)
    med = interleaved(benchmark, {
        "handler": ("dispatch('net', 'udp_send', sargs)\nr = dispatch('net', 'udp_recv', rargs)",
                    {"dispatch": h.dispatch, "sargs": [a, "127.0.0.1", port_b, DATA],
                     "rargs": [b, 5000]}),
        "raw_socket": ("a.sendto(data, addr)\nr = b.recvfrom(65507)",
                       {"a": ra, "b": rb, "data": DATA, "addr": rb.getsockname()}),
        "raw_poll": ("c.sendto(data, addr)\npoll(5000)\nr = d.recvmsg(65507)",
                     {"c": rc, "d": rd, "data": DATA, "addr": rd.getsockname(),
                      "poll": poller.poll}),
    }, N_UDP)
    assert set(med) == {"handler", "raw_socket", "raw_poll"}
    assert h.dispatch("net", "udp_recv", [b, 0]).name == "Err"  # nothing left over


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("vcs")
    h = DefaultHandler(Policy(allow_effects=["vcs"], allow_fs_write=[str(root)]),
                       limits=Limits(vcs_root=str(root / "store")))
    sha = h.dispatch("vcs", "put_blob", [BLOB]).args[0]
    yield h, root, sha
    h.close()


_READ_VERIFY = """\
with open(path, 'rb') as f:
    data = f.read()
if sha256(data).hexdigest() != sha:
    raise ValueError(sha)
r = data.decode()"""


@pytest.mark.benchmark(group="interleaved-vcs-get")
def test_vcs_get_interleaved(benchmark, store):
    h, root, sha = store
    path = str(root / "store" / "blobs" / sha)
    interleaved(benchmark, {
        "handler": ("r = dispatch('vcs', 'get_blob', args)",
                    {"dispatch": h.dispatch, "args": [sha]}),
        "raw_read": ("with open(path, 'rb') as f:\n    r = f.read().decode()", {"path": path}),
        "raw_read_verify": (_READ_VERIFY, {"path": path, "sha": sha,
                                           "sha256": hashlib.sha256}),
    }, N_GET)
    assert h.dispatch("vcs", "get_blob", [sha]).args[0] == BLOB


_ATOMIC = """\
data = (blob + str(next(count))).encode()
name = sha256(data).hexdigest()
tmp = f'{blobs}/.{name}.tmp'
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, data)
os.fsync(fd)
os.close(fd)
os.rename(tmp, f'{blobs}/{name}')"""


@pytest.mark.benchmark(group="interleaved-vcs-put")
def test_vcs_put_interleaved(benchmark, store):
    h, root, _ = store
    raw = root / "raw-blobs"
    raw.mkdir(exist_ok=True)
    counter = itertools.count()
    interleaved(benchmark, {
        "handler": ("r = dispatch('vcs', 'put_blob', [blob + str(next(count))])",
                    {"dispatch": h.dispatch, "blob": BLOB, "count": counter}),
        "raw_atomic_write": (_ATOMIC, {"blob": BLOB, "count": counter, "sha256": hashlib.sha256,
                                       "os": os, "blobs": str(raw)}),
    }, N_PUT)
