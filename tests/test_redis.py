"""redis.* against a real redis-server on 127.0.0.1 (tests/servers.py).

The first twelve tests restate the reference's tests/std_redis.rs at handler
level; the rest cover what lexfast adds: strict URLs, secrets kept out of
errors, bounded replies and waits, faults on a private server that is
killed, stopped and restarted, subscriptions through the runner on a fork.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid

import pytest

from lexfast import CapturedSink, DefaultHandler, EffectError, Limits, Policy, PolicyDenied
from lexfast.kernel import NONE, Variant, some
from lexfast.table import default_table

redis_py = pytest.importorskip("redis", reason="the redis extra (redis-py) is not installed")

OPS = ["connect", "close", "get", "set", "set_ex", "del", "exists", "expire", "publish",
       "subscribe", "psubscribe", "lpush", "rpush", "brpop", "llen", "hset", "hget", "hdel",
       "hgetall"]


def key(tag: str) -> str:
    return f"lex-test:{os.getpid()}-{tag}-{uuid.uuid4().hex[:12]}"


def connect(h, url):
    r = h.dispatch("redis", "connect", [url])
    assert isinstance(r, Variant) and r.name == "Ok", r
    return r.args[0]


@pytest.fixture
def rh(make_handler, redis_server):
    return make_handler(effects=["net"])


@pytest.fixture
def conn(rh, redis_server):
    return connect(rh, redis_server.url)


@pytest.fixture
def raw(redis_server):
    r = redis_py.Redis(host="127.0.0.1", port=redis_server.port)
    yield r
    r.close()


def err_text(v) -> str:
    assert isinstance(v, Variant) and v.name == "Err", v
    return v.args[0]


# -- the reference's std_redis.rs ------------------------------------------------

def test_all_ops_are_net_rows():
    t = default_table()
    for op in OPS:
        row = t.lookup("redis", op)
        assert row is not None, op
        assert row.gate == ("net",), (op, row.gate)


def test_connect_to_unreachable_host_returns_err(make_handler):
    h = make_handler(effects=["net"])
    msg = err_text(h.dispatch("redis", "connect", ["redis://127.0.0.1:1"]))
    assert msg.startswith("redis.connect:"), msg


def test_connect_outside_net_host_policy_returns_err(make_handler):
    h = make_handler(effects=["net"], hosts=["allowed.example.com"])
    with pytest.raises(PolicyDenied) as e:
        h.dispatch("redis", "connect", ["redis://blocked.example.com:6379"])
    assert "blocked.example.com" in str(e.value)
    assert "--allow-net-host" in str(e.value)


def test_ops_on_closed_handle_error(rh, conn):
    assert rh.dispatch("redis", "close", [conn]) is None
    with pytest.raises(EffectError, match="closed or unknown ConnRedis handle"):
        rh.dispatch("redis", "get", [conn, "k"])
    assert rh.dispatch("redis", "close", [conn]) is None  # closing twice is fine


def test_set_get_round_trip(rh, conn):
    k = key("set-get")
    assert rh.dispatch("redis", "set", [conn, k, "hello-redis"]) is None
    assert rh.dispatch("redis", "get", [conn, k]) == some("hello-redis")


def test_get_missing_returns_none(rh, conn):
    assert rh.dispatch("redis", "get", [conn, key("get-missing")]) == NONE


def test_del_removes_key(rh, conn):
    k = key("del")
    rh.dispatch("redis", "set", [conn, k, "x"])
    assert rh.dispatch("redis", "del", [conn, k]) is None
    assert rh.dispatch("redis", "exists", [conn, k]) is False


def test_set_ex_key_exists(rh, conn, raw):
    k = key("set-ex")
    assert rh.dispatch("redis", "set_ex", [conn, k, "v", 60]) is None
    assert rh.dispatch("redis", "exists", [conn, k]) is True
    assert 0 < raw.ttl(k) <= 60


def test_publish_returns_non_negative(rh, conn):
    n = rh.dispatch("redis", "publish", [conn, key("publish-ch"), "hello"])
    assert type(n) is int and n >= 0


def test_lpush_rpush_llen(rh, conn, raw):
    k = key("list")
    rh.dispatch("redis", "del", [conn, k])
    assert rh.dispatch("redis", "lpush", [conn, k, "a"]) == 1
    assert rh.dispatch("redis", "rpush", [conn, k, "b"]) == 2
    assert rh.dispatch("redis", "llen", [conn, k]) == 2
    assert raw.lrange(k, 0, -1) == [b"a", b"b"]


def test_hset_hget_round_trip(rh, conn):
    k = key("hash")
    rh.dispatch("redis", "del", [conn, k])
    assert rh.dispatch("redis", "hset", [conn, k, "field1", "value1"]) is None
    assert rh.dispatch("redis", "hget", [conn, k, "field1"]) == some("value1")


def test_hdel_removes_field(rh, conn):
    k = key("hash-del")
    rh.dispatch("redis", "hset", [conn, k, "f", "v"])
    assert rh.dispatch("redis", "hdel", [conn, k, "f"]) is None
    assert rh.dispatch("redis", "hget", [conn, k, "f"]) == NONE


# -- the rest of the surface -------------------------------------------------------

def test_needs_net(make_handler, redis_server):
    h = make_handler(effects=["io"])
    with pytest.raises(PolicyDenied):
        h.dispatch("redis", "connect", [redis_server.url])


def test_allowed_host_connects(make_handler, redis_server):
    h = make_handler(effects=["net"], hosts=["127.0.0.1"])
    c = connect(h, redis_server.url)
    assert h.dispatch("redis", "exists", [c, key("x")]) is False
    # the host checked is the host parsed, whatever the userinfo says
    for tricky in (f"redis://127.0.0.1@localhost:{redis_server.port}",
                   f"redis://127.0.0.1:{redis_server.port}@localhost:{redis_server.port}",
                   f"redis://127.0.0.1\\@localhost:{redis_server.port}",
                   f"redis://0x7f.1:{redis_server.port}",
                   f"redis://127.1:{redis_server.port}"):
        with pytest.raises(PolicyDenied, match="not in --allow-net-host"):
            h.dispatch("redis", "connect", [tricky])
    # case and a trailing dot normalise as for http.* (the check passes; this
    # spelling then fails to resolve, a SOFT error)
    msg = err_text(h.dispatch("redis", "connect", [f"redis://127.0.0.1.:{redis_server.port}"]))
    assert msg.startswith("redis.connect: connection to 127.0.0.1.:"), msg


def test_hgetall_pairs_and_unicode(rh, conn):
    k = key("hgetall")
    assert rh.dispatch("redis", "hgetall", [conn, k]) == []
    rh.dispatch("redis", "hset", [conn, k, "a", "1"])
    rh.dispatch("redis", "hset", [conn, k, "ü", "☃"])
    assert sorted(rh.dispatch("redis", "hgetall", [conn, k])) == [("a", "1"), ("ü", "☃")]
    rh.dispatch("redis", "set", [conn, k + "s", "é" * 3])
    assert rh.dispatch("redis", "get", [conn, k + "s"]) == some("ééé")


def test_expire_and_brpop(rh, conn):
    k = key("brpop")
    rh.dispatch("redis", "set", [conn, k, "v"])
    assert rh.dispatch("redis", "expire", [conn, k, -1]) is None  # a past expiry deletes
    assert rh.dispatch("redis", "exists", [conn, k]) is False
    rh.dispatch("redis", "rpush", [conn, k, "a"])
    rh.dispatch("redis", "rpush", [conn, k, "b"])
    assert rh.dispatch("redis", "brpop", [conn, k, 1]) == some("b")
    assert rh.dispatch("redis", "brpop", [conn, k, 1]) == some("a")
    t0 = time.monotonic()
    assert rh.dispatch("redis", "brpop", [conn, k, 1]) == NONE
    assert time.monotonic() - t0 < 30
    with pytest.raises(EffectError, match=r"redis\.brpop: timeout must be >= 0"):
        rh.dispatch("redis", "brpop", [conn, k, -1])


def test_brpop_zero_waits_at_most_the_cap(make_handler, redis_server):
    h = make_handler(effects=["net"], limits=Limits(redis_block_s=1.0))
    c = connect(h, redis_server.url)
    assert h.dispatch("redis", "brpop", [c, key("brpop0"), 0]) == NONE


def test_bad_arguments_are_clear(rh, conn, raw):
    with pytest.raises(EffectError, match=r"redis\.set_ex: ttl must be > 0"):
        rh.dispatch("redis", "set_ex", [conn, "k", "v", 0])
    with pytest.raises(EffectError, match=r"redis\.get: key is not valid UTF-8"):
        rh.dispatch("redis", "get", [conn, "\udcff"])
    with pytest.raises(EffectError, match=r"redis\.set: value is not valid UTF-8"):
        rh.dispatch("redis", "set", [conn, "k", "\ud800"])
    with pytest.raises(EffectError, match="expected Str"):
        rh.dispatch("redis", "get", [conn, 5])
    with pytest.raises(EffectError, match="ConnRedis"):
        rh.dispatch("redis", "get", ["nope", "k"])
    with pytest.raises(EffectError, match="closed or unknown ConnRedis handle"):
        rh.dispatch("redis", "get", [10 ** 12, "k"])
    k = key("binary")
    raw.set(k, b"\xff\xfe")
    with pytest.raises(EffectError, match=r"redis\.get: stored value is not valid UTF-8"):
        rh.dispatch("redis", "get", [conn, k])
    with pytest.raises(EffectError, match=r"redis\.hget: WRONGTYPE"):
        rh.dispatch("redis", "hget", [conn, k, "f"])
    # the handle still works after each of those
    assert rh.dispatch("redis", "exists", [conn, k]) is True


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:6379", "scheme `http` is not allowed"),
    ("unix:///tmp/redis.sock", "scheme `unix` is not allowed"),
    ("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", "query parameters"),
    ("rediss://127.0.0.1:6379/?ssl_cert_reqs=none", "query parameters"),
    ("redis://127.0.0.1:6379/x", "database number"),
    ("redis://127.0.0.1:99999", "invalid URL"),
    ("redis://127.0.0.1:0", "port must be 1..=65535"),
    ("redis://127.0.0.1:6379#x", "fragments"),
    ("redis://exämple.com:1", "no valid host"),
    ("redis://", "no valid host"),
    ("redis://ho st:1", "whitespace or control"),
    ("redis://host\n:1", "whitespace or control"),
    ("redis://a%2fb:1", "no valid host"),
    ("redis://[zz::1]:1", "IPv6"),
    ("", "scheme"),
])
def test_bad_urls_are_soft_errors(make_handler, url, why):
    h = make_handler(effects=["net"])
    msg = err_text(h.dispatch("redis", "connect", [url]))
    assert msg.startswith("redis.connect: "), msg
    assert why in msg, msg


def test_password_never_echoed(make_handler, tmp_path, servers):
    server = servers.start_redis(str(tmp_path / "r"), password="s3cr3t-pw")
    try:
        h = make_handler(effects=["net"])
        wrong = h.dispatch("redis", "connect",
                           [f"redis://:wr0ng-pw@127.0.0.1:{server.port}/0"])
        msg = err_text(wrong)
        assert msg.startswith("redis.connect:") and "wr0ng-pw" not in msg, msg
        assert "WRONGPASS" in msg or "invalid" in msg, msg
        for bad in (f"redis://:wr0ng-pw@127.0.0.1:{server.port}/zz",
                    f"http://user:wr0ng-pw@127.0.0.1:{server.port}/0"):
            msg = err_text(h.dispatch("redis", "connect", [bad]))
            assert "wr0ng-pw" not in msg and "***@" in msg, msg
        c = connect(h, server.url)
        entry = h.session.registry("redis")[c]
        assert "s3cr3t-pw" not in repr(entry)
        h.dispatch("redis", "set", [c, "k", "v"])
        assert h.dispatch("redis", "get", [c, "k"]) == some("v")
        # the server restarts with another password: the reconnect's error hides ours
        server.stop()
        server = servers.start_redis(str(tmp_path / "r"), password="other-pw", port=server.port)
        with pytest.raises(EffectError) as e:
            h.dispatch("redis", "get", [c, "k"])
        assert str(e.value).startswith("redis.get:") and "s3cr3t-pw" not in str(e.value)
    finally:
        server.stop()


def test_huge_reply_is_refused_and_the_handle_survives(make_handler, redis_server, raw):
    h = make_handler(effects=["net"], limits=Limits(redis_reply_bytes=1 << 20))
    c = connect(h, redis_server.url)
    big, many = key("big"), key("many")
    raw.set(big, b"x" * (2 << 20))
    raw.hset(many, mapping={f"f{i}": "v" * 100 for i in range(20_000)})
    with pytest.raises(EffectError, match=r"redis\.get: reply larger than "
                                          r"Limits\.redis_reply_bytes \(1048576 bytes\)"):
        h.dispatch("redis", "get", [c, big])
    with pytest.raises(EffectError, match=r"redis\.hgetall: reply larger than"):
        h.dispatch("redis", "hgetall", [c, many])
    h.dispatch("redis", "set", [c, big, "small"])
    assert h.dispatch("redis", "get", [c, big]) == some("small")
    raw.delete(big, many)


def test_without_the_extra_connect_names_it(make_handler, monkeypatch):
    import sys

    import lexfast.effects.redis as family
    monkeypatch.setattr(family, "_lib", None)
    monkeypatch.setitem(sys.modules, "hiredis", None)  # import hiredis -> ImportError
    h = make_handler(effects=["net"])
    msg = err_text(h.dispatch("redis", "connect", ["redis://127.0.0.1:6379"]))
    assert msg.startswith("redis.connect: redis-py and hiredis are not installed"), msg
    assert "pip install lexfast[redis]" in msg


def test_handles_close_with_the_handler(redis_server, raw):
    def clients():
        return len(raw.client_list())

    before = clients()
    h = DefaultHandler(Policy(allow_effects=["net"]), sink=CapturedSink())
    try:
        c = connect(h, redis_server.url)
        h.dispatch("redis", "exists", [c, "k"])
        assert clients() == before + 1
        assert h.session.registry("redis").cap == 256
    finally:
        h.close()
    deadline = time.monotonic() + 10
    while clients() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert clients() == before


# -- faults on a private server ------------------------------------------------------

@pytest.fixture
def private(servers, tmp_path):
    started = [servers.start_redis(str(tmp_path / "p"))]

    class Private:
        @property
        def server(self):
            return started[-1]

        def restart(self):
            self.server.stop()
            started.append(servers.start_redis(str(tmp_path / "p"), port=self.server.port))

    yield Private()
    for s in started:
        s.stop()


def test_server_killed_mid_call_then_restarted(make_handler, private):
    h = make_handler(effects=["net"], limits=Limits(redis_timeout_s=5.0))
    c = connect(h, private.server.url)
    k = key("killed")
    out: list = []

    def blocked():
        try:
            out.append(h.dispatch("redis", "brpop", [c, k, 60]))
        except BaseException as e:  # noqa: BLE001
            out.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    # the call is in flight once the server lists a blocked client
    probe = redis_py.Redis(port=private.server.port)
    deadline = time.monotonic() + 10
    while probe.info("clients")["blocked_clients"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    probe.close()
    t0 = time.monotonic()
    private.server.proc.send_signal(signal.SIGKILL)
    private.server.proc.wait(10)
    t.join(20)
    assert not t.is_alive()
    assert time.monotonic() - t0 < 10
    assert isinstance(out[0], EffectError), out
    assert str(out[0]).startswith("redis.brpop: connection to 127.0.0.1:"), out
    # refused while it is down, a clear error and no hang
    with pytest.raises(EffectError, match=r"redis\.get: connection to 127\.0\.0\.1:\d+ failed"):
        h.dispatch("redis", "get", [c, k])
    private.restart()
    assert h.dispatch("redis", "set", [c, k, "back"]) is None
    assert h.dispatch("redis", "get", [c, k]) == some("back")


def test_stalled_server_times_out(make_handler, private):
    h = make_handler(effects=["net"], limits=Limits(redis_timeout_s=0.5))
    c = connect(h, private.server.url)
    proc = private.server.proc
    proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(EffectError, match=r"redis\.get: timed out after 0\.5 s"):
            h.dispatch("redis", "get", [c, "k"])
        assert time.monotonic() - t0 < 10
    finally:
        proc.send_signal(signal.SIGCONT)
    assert h.dispatch("redis", "get", [c, "k"]) == NONE


def test_unreachable_host_times_out(make_handler):
    # a listening socket that never accepts: the connect completes in the
    # kernel's backlog but the server never answers PING
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        h = make_handler(effects=["net"], limits=Limits(redis_timeout_s=0.3))
        t0 = time.monotonic()
        msg = err_text(h.dispatch("redis", "connect", [f"redis://127.0.0.1:{port}"]))
        assert "timed out" in msg, msg
        assert time.monotonic() - t0 < 10


def test_nothing_acknowledged_is_lost(make_handler, private):
    """Writes race a killer that drops the handle's connections: every push
    reported done is in the list, and no failed push was retried behind the
    caller's back (the list holds at most one entry per attempt)."""
    h = make_handler(effects=["net"])
    c = connect(h, private.server.url)
    k = key("acked")
    stop = threading.Event()
    killer = redis_py.Redis(port=private.server.port)

    def kill():
        while not stop.is_set():
            try:
                killer.client_kill_filter(_type="normal", skipme=True)
            except redis_py.RedisError:
                pass
            time.sleep(0.002)

    t = threading.Thread(target=kill)
    t.start()
    acked, failed = [], []
    try:
        for i in range(600):
            try:
                h.dispatch("redis", "rpush", [c, k, str(i)])
                acked.append(str(i))
            except EffectError:
                failed.append(str(i))
    finally:
        stop.set()
        t.join(10)
    stored = [v.decode() for v in killer.lrange(k, 0, -1)]
    killer.close()
    assert set(acked) <= set(stored)
    assert len(stored) == len(set(stored))  # none applied twice
    assert set(stored) <= set(acked) | set(failed)
    assert acked


# -- subscriptions --------------------------------------------------------------------

def _subscriber(h, args, out):
    def run():
        try:
            out.append(("done", h.dispatch("redis", args[0], args[1:])))
        except BaseException as e:  # noqa: BLE001
            out.append(("error", e))
    t = threading.Thread(target=run)
    t.start()
    return t


def _publish_until(raw, channel, pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    i = 0
    while not pred() and time.monotonic() < deadline:
        raw.publish(channel, f"m{i}")
        i += 1
        time.sleep(0.02)
    assert pred()


def test_subscribe_runs_the_named_function_on_a_fork(make_handler, redis_server, raw):
    seen: list = []

    def runner(program, fork, name, args):
        seen.append((program, fork, name, list(args)))
        fork.note_call_budget(1)
        return None

    h = make_handler(effects=["net"], program={"p": 1}, runner=runner, budget=1000)
    c = connect(h, redis_server.url)
    ch = key("ch")
    out: list = []
    t = _subscriber(h, ["subscribe", c, ch, "on_message"], out)
    _publish_until(raw, ch, lambda: len(seen) >= 3)
    h.dispatch("redis", "close", [c])
    t.join(20)
    assert not t.is_alive()
    assert out == [("done", None)]
    program, fork, name, args = seen[0]
    assert program == {"p": 1} and name == "on_message"
    assert fork is not h and fork.session is h.session
    assert args[0] == ch and args[1].startswith("m")
    assert h.budget_remaining == 1000 - len(seen)  # the same budget


def test_psubscribe_and_shutdown(make_handler, redis_server, raw):
    seen: list = []
    h = make_handler(effects=["net"], program={}, runner=lambda p, f, n, a: seen.append(a))
    c = connect(h, redis_server.url)
    base = key("pch")
    out: list = []
    t = _subscriber(h, ["psubscribe", c, base + ".*", "on_message"], out)
    _publish_until(raw, base + ".x", lambda: len(seen) >= 2)
    h.shutdown()
    t.join(20)
    assert not t.is_alive()
    assert out == [("done", None)]
    assert seen[0][0] == base + ".*" and seen[0][1] == base + ".x"
    # the handle still serves plain commands
    assert h.dispatch("redis", "exists", [c, base]) is False


def test_subscribe_handler_error_ends_it(make_handler, redis_server, raw):
    def runner(program, fork, name, args):
        raise RuntimeError("boom")

    h = make_handler(effects=["net"], program={}, runner=runner)
    c = connect(h, redis_server.url)
    ch = key("ch-err")
    out: list = []
    t = _subscriber(h, ["subscribe", c, ch, "f"], out)
    _publish_until(raw, ch, lambda: bool(out))
    t.join(20)
    kind, e = out[0]
    assert kind == "error" and isinstance(e, EffectError), out
    assert str(e) == "redis.subscribe: handler: RuntimeError: boom"


def test_subscribe_needs_a_program(rh, conn):
    with pytest.raises(EffectError, match=r"redis\.subscribe requires a Program"):
        rh.dispatch("redis", "subscribe", [conn, "ch", "f"])


def test_subscription_ends_when_the_server_dies(make_handler, private):
    h = make_handler(effects=["net"], program={}, runner=lambda *a: None)
    c = connect(h, private.server.url)
    out: list = []
    t = _subscriber(h, ["subscribe", c, "ch", "f"], out)
    probe = redis_py.Redis(port=private.server.port)
    deadline = time.monotonic() + 10
    while probe.pubsub_numsub("ch")[0][1] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    probe.close()
    private.server.proc.send_signal(signal.SIGKILL)
    private.server.proc.wait(10)
    t.join(20)
    assert not t.is_alive()
    kind, e = out[0]
    assert kind == "error" and str(e).startswith("redis.subscribe: connection to"), out


# -- TLS ------------------------------------------------------------------------------

def test_rediss_verifies_the_certificate(make_handler, tmp_path, servers):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    d = tmp_path / "tls"
    d.mkdir()
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    try:
        server = servers.start_redis(str(d / "data"), tls_dir=str(d))
    except servers.TlsUnsupported:
        pytest.skip("this redis-server was built without TLS")
    try:
        url = f"rediss://127.0.0.1:{server.tls_port}/0"
        plain = make_handler(effects=["net"])
        msg = err_text(plain.dispatch("redis", "connect", [url]))
        assert msg.startswith("redis.connect:") and "certificate verify failed" in msg, msg
        trusted = make_handler(effects=["net"],
                               limits=Limits(redis_ca_bundle=str(d / "ca.pem")))
        c = connect(trusted, url)
        trusted.dispatch("redis", "set", [c, "tls", "yes"])
        assert trusted.dispatch("redis", "get", [c, "tls"]) == some("yes")
        # the name is checked too: the certificate is for 127.0.0.1, not localhost
        wrong = f"rediss://localhost:{server.tls_port}/0"
        msg = err_text(trusted.dispatch("redis", "connect", [wrong]))
        assert "certificate" in msg or "match" in msg, msg
    finally:
        server.stop()


# -- a hostile server, eviction, threads -------------------------------------------

class FakeServer:
    """A loopback server speaking just enough RESP: PING and the handshake's
    CLIENT commands get +OK/+PONG, every other command ``replies[name]``."""

    def __init__(self, replies: dict):
        self.replies = replies
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self):
        conns = []
        try:
            while not self.stop.is_set():
                try:
                    c, _ = self.sock.accept()
                except OSError:
                    continue
                conns.append(c)
                threading.Thread(target=self._client, args=(c,), daemon=True).start()
        finally:
            for c in conns:
                c.close()

    def _client(self, c):
        buf = b""
        c.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data = c.recv(65536)
            except OSError:
                if self.stop.is_set():
                    return
                continue
            if not data:
                return
            buf += data
            while True:
                cmd, buf = _parse_command(buf)
                if cmd is None:
                    break
                name = cmd[0].upper().decode()
                if name == "PING":
                    c.sendall(b"+PONG\r\n")
                elif name in self.replies:
                    reply = self.replies[name]
                    if callable(reply):
                        reply(c, self.stop)
                    else:
                        c.sendall(reply)
                else:
                    c.sendall(b"+OK\r\n")

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.sock.close()


def _parse_command(buf: bytes):
    if not buf.startswith(b"*") or b"\r\n" not in buf:
        return None, buf
    head, rest = buf.split(b"\r\n", 1)
    out = []
    for _ in range(int(head[1:])):
        if b"\r\n" not in rest:
            return None, buf
        ln, rest = rest.split(b"\r\n", 1)
        n = int(ln[1:])
        if len(rest) < n + 2:
            return None, buf
        out.append(rest[:n])
        rest = rest[n + 2:]
    return out, rest


@pytest.fixture
def fake():
    made = []

    def make(replies):
        s = FakeServer(replies)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_odd_replies_are_clear_errors(make_handler, fake):
    s = fake({"GET": b":5\r\n", "PUBLISH": b"$3\r\nabc\r\n", "LLEN": b":99999999999999999999999\r\n",
              "HGETALL": b"*1\r\n$1\r\na\r\n", "BRPOP": b"$1\r\nx\r\n",
              "SET": b"-ERR " + b"x" * 100_000 + b"\r\n", "EXISTS": b"*0\r\n",
              "HGET": b"*9\r\n" + b"*1\r\n" * 9 + b":1\r\n"})
    h = make_handler(effects=["net"])
    c = connect(h, f"redis://127.0.0.1:{s.port}")
    cases = [("get", [c, "k"], "unexpected reply int"),
             ("publish", [c, "ch", "m"], "unexpected reply bytes"),
             ("llen", [c, "k"], "Bad integer value"),  # hiredis refuses past i64
             ("hgetall", [c, "k"], "expected field/value pairs"),
             ("brpop", [c, "k", 1], "expected a key and a value"),
             ("exists", [c, "k"], "unexpected reply list"),
             ("hget", [c, "k", "f"], "redis.hget: ")]
    for op, args, why in cases:
        with pytest.raises(EffectError) as e:
            h.dispatch("redis", op, args)
        assert str(e.value).startswith(f"redis.{op}: ") and why in str(e.value), (op, e.value)
    with pytest.raises(EffectError) as e:
        h.dispatch("redis", "set", [c, "k", "v"])
    assert str(e.value).startswith("redis.set: xxx") and len(str(e.value)) < 1100


def test_a_slow_drip_reply_is_cut_off(make_handler, fake):
    def drip(c, stop):
        c.sendall(b"$1000\r\n")
        while not stop.wait(0.1):
            c.sendall(b"x")

    s = fake({"GET": drip})
    h = make_handler(effects=["net"], limits=Limits(redis_timeout_s=0.5))
    c = connect(h, f"redis://127.0.0.1:{s.port}")
    t0 = time.monotonic()
    with pytest.raises(EffectError, match=r"redis\.get: reply took longer than "
                                          r"Limits\.redis_timeout_s"):
        h.dispatch("redis", "get", [c, "k"])
    assert time.monotonic() - t0 < 10


def test_evicted_handles_are_closed(make_handler, redis_server, raw):
    before = len(raw.client_list())
    h = make_handler(effects=["net"])
    first = connect(h, redis_server.url)
    for _ in range(256):
        connect(h, redis_server.url)
    with pytest.raises(EffectError, match="closed or unknown ConnRedis handle"):
        h.dispatch("redis", "get", [first, "k"])
    deadline = time.monotonic() + 10
    while len(raw.client_list()) > before + 256 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(raw.client_list()) == before + 256


def test_forks_on_threads_share_a_handle(rh, conn, raw):
    k = key("threads")
    errors: list = []

    def work(fork):
        try:
            for i in range(100):
                fork.dispatch("redis", "rpush", [conn, k, str(i)])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(rh.fork(),)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert rh.dispatch("redis", "llen", [conn, k]) == 800
    raw.delete(k)


def test_close_during_a_call(rh, conn):
    out: list = []

    def blocked():
        try:
            out.append(rh.dispatch("redis", "brpop", [conn, key("never"), 60]))
        except BaseException as e:  # noqa: BLE001
            out.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.2)  # usually in flight by now; either way the call ends promptly
    rh.dispatch("redis", "close", [conn])
    t.join(20)
    assert not t.is_alive()
    assert isinstance(out[0], EffectError) and "closed or unknown ConnRedis handle" in str(out[0])


def test_pool_size_is_bounded(make_handler, redis_server, raw):
    h = make_handler(effects=["net"], limits=Limits(redis_connections=1))
    c = connect(h, redis_server.url)
    k = key("pool")
    out: list = []
    t = threading.Thread(target=lambda: out.append(h.dispatch("redis", "brpop", [c, k, 20])))
    blocked = raw.info("clients")["blocked_clients"]
    t.start()
    deadline = time.monotonic() + 10
    while raw.info("clients")["blocked_clients"] == blocked and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(EffectError, match=r"redis\.get: all 1 connections of the handle are in "
                                          r"use \(Limits\.redis_connections\)"):
        h.dispatch("redis", "get", [c, k])
    raw.rpush(k, "done")
    t.join(20)
    assert out == [some("done")]


def test_subscribe_stops_when_the_shared_budget_is_spent(make_handler, redis_server, raw):
    from lexfast.errors import BudgetExceeded

    def runner(program, fork, name, args):
        fork.note_call_budget(1)

    h = make_handler(effects=["net"], program={}, runner=runner, budget=2)
    c = connect(h, redis_server.url)
    ch = key("ch-budget")
    out: list = []
    t = _subscriber(h, ["subscribe", c, ch, "f"], out)
    _publish_until(raw, ch, lambda: bool(out))
    t.join(20)
    kind, e = out[0]
    assert kind == "error" and isinstance(e, BudgetExceeded), out
    assert h.budget_remaining == 0
