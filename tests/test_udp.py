"""net.udp_* over real sockets on 127.0.0.1 (issue 19).

The first thirteen tests restate the reference's tests/net_udp.rs (issue #760
upstream) at handler level, with its shapes and error wording; the rest are
lexfast's own: the loopback bind, broadcast and multicast named explicitly,
bounded waits and datagrams, argument errors, and handles closed on close,
eviction and a close racing a receive. Peers are plain ``socket`` sockets.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from lexfast import EffectError, PolicyDenied
from lexfast.effects.net import udp as udpmod
from lexfast.handler import REGISTRY_CAP, Limits

WAIT_MS = 5000  # generous: every receive here has a datagram already on its way


@pytest.fixture
def net(make_handler):
    """make(hosts=(), **kw): a handler granted `net`."""
    def make(hosts=(), **kw):
        return make_handler(effects=["net"], hosts=list(hosts), **kw)
    return make


def call(h, op, *args):
    return h.dispatch("net", op, list(args))


def ok_value(r):
    assert r.name == "Ok", r
    return r.args[0]


def err_text(r):
    assert r.name == "Err", r
    assert isinstance(r.args[0], str), r
    return r.args[0]


def open_sock(h, port=0, *host):
    return ok_value(call(h, "udp_open", port, *host))


def bound_port(h, handle) -> int:
    return udpmod._registry(h).get(handle).sock.getsockname()[1]


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def peer():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    yield s
    s.close()


# -- the reference's net_udp.rs ------------------------------------------------

def test_round_trip_over_loopback_with_the_senders_address(net):
    h = net()
    port = free_port()
    server = open_sock(h, port)
    client = open_sock(h)
    assert call(h, "udp_send", client, "127.0.0.1", port, b"hello over udp").args[0] == 14
    dgram = ok_value(call(h, "udp_recv", server, WAIT_MS))
    assert dgram["data"] == b"hello over udp"
    assert dgram["host"] == "127.0.0.1"
    assert dgram["port"] > 0
    assert set(dgram) == {"data", "host", "port"}
    # back the other way, addressed with what the datagram reported
    ok_value(call(h, "udp_send", server, dgram["host"], dgram["port"], b"pong"))
    assert ok_value(call(h, "udp_recv", client, WAIT_MS))["data"] == b"pong"
    ok_value(call(h, "udp_close", server))
    ok_value(call(h, "udp_close", client))


def test_an_empty_datagram_is_received_not_mistaken_for_a_timeout(net):
    h = net()
    port = free_port()
    server = open_sock(h, port)
    client = open_sock(h)
    ok_value(call(h, "udp_send", client, "127.0.0.1", port, b""))
    dgram = ok_value(call(h, "udp_recv", server, WAIT_MS))
    assert dgram["data"] == b""
    assert type(dgram["data"]) is bytes


def test_a_timeout_is_an_error_rather_than_silence(net):
    h = net()
    sock = open_sock(h)
    assert "timed out after 50ms" in err_text(call(h, "udp_recv", sock, 50))
    ok_value(call(h, "udp_close", sock))


def test_a_zero_timeout_polls_rather_than_blocking_forever(net):
    h = net()
    sock = open_sock(h)
    assert "timed out" in err_text(call(h, "udp_recv", sock, 0))


def test_allow_net_host_gates_the_destination(net):
    h = net(hosts=["10.0.0.1"])
    sock = open_sock(h)
    e = err_text(call(h, "udp_send", sock, "127.0.0.1", 9, b"nope"))
    assert "not in --allow-net-host" in e
    assert e == 'net.udp_send to `127.0.0.1` not in --allow-net-host ["10.0.0.1"]'


def test_an_empty_allowlist_permits_any_destination(net):
    h = net()
    port = free_port()
    server = open_sock(h, port)
    client = open_sock(h)
    ok_value(call(h, "udp_send", client, "127.0.0.1", port, b"x"))
    assert ok_value(call(h, "udp_recv", server, WAIT_MS))["data"] == b"x"


def test_broadcast_still_has_to_clear_the_allowlist(net):
    h = net(hosts=["127.0.0.1"])
    sock = open_sock(h)
    ok_value(call(h, "udp_broadcast", sock, True))
    e = err_text(call(h, "udp_send", sock, "255.255.255.255", 9, b"wol"))
    assert "not in --allow-net-host" in e


def test_a_closed_socket_cannot_be_used(net):
    h = net()
    sock = open_sock(h)
    ok_value(call(h, "udp_close", sock))
    assert "no open socket with handle" in err_text(call(h, "udp_recv", sock, 10))


def test_closing_twice_is_not_an_error(net):
    h = net()
    sock = open_sock(h)
    ok_value(call(h, "udp_close", sock))
    ok_value(call(h, "udp_close", sock))


def test_an_unknown_handle_is_an_error_not_a_panic(net):
    h = net()
    e = err_text(call(h, "udp_recv", 999_999, 10))
    assert e == "net.udp_recv: no open socket with handle 999999 (closed, or never opened?)"


def test_joining_a_non_multicast_address_is_refused(net):
    h = net()
    sock = open_sock(h)
    assert "is not a multicast address" in err_text(
        call(h, "udp_join_multicast", sock, "127.0.0.1"))


def test_joining_a_non_address_is_refused(net):
    h = net()
    sock = open_sock(h)
    assert "is not an IPv4 address" in err_text(call(h, "udp_join_multicast", sock, "mdns.local"))


def test_joining_the_mdns_group_succeeds_once_named(net):
    # Deviation: a group must be named in --allow-net-host (the reference
    # joins with any list); the join itself really happens.
    h = net(hosts=["224.0.0.251"])
    sock = open_sock(h)
    ok_value(call(h, "udp_join_multicast", sock, "224.0.0.251"))
    ok_value(call(h, "udp_close", sock))


# -- lexfast's own -----------------------------------------------------------------

def test_joining_a_group_the_policy_does_not_name_is_refused(net):
    for hosts in ((), ("127.0.0.1",)):
        h = net(hosts=hosts)
        sock = open_sock(h)
        e = err_text(call(h, "udp_join_multicast", sock, "224.0.0.251"))
        assert e.startswith("net.udp_join_multicast to `224.0.0.251` not in --allow-net-host")


def test_binds_loopback_by_default_and_a_real_peer_talks_to_it(net, peer):
    h = net()
    sock = open_sock(h)
    assert udpmod._registry(h).get(sock).sock.getsockname()[0] == "127.0.0.1"
    peer.sendto(b"from a peer", ("127.0.0.1", bound_port(h, sock)))
    dgram = ok_value(call(h, "udp_recv", sock, WAIT_MS))
    assert dgram == {"data": b"from a peer", "host": "127.0.0.1",
                     "port": peer.getsockname()[1]}
    assert ok_value(call(h, "udp_send", sock, "127.0.0.1", peer.getsockname()[1], b"back")) == 4
    data, addr = peer.recvfrom(100)
    assert (data, addr) == (b"back", ("127.0.0.1", bound_port(h, sock)))


def test_binding_beyond_loopback_must_pass_the_host_policy(net):
    h = net(hosts=["127.0.0.1"])
    e = err_text(call(h, "udp_open", 0, "0.0.0.0"))
    assert e.startswith("net.udp_open to `0.0.0.0` not in --allow-net-host")
    ok_value(call(h, "udp_open", 0, "127.0.0.1"))
    h2 = net(hosts=["0.0.0.0"])
    sock = open_sock(h2, 0, "0.0.0.0")
    assert udpmod._registry(h2).get(sock).sock.getsockname()[0] == "0.0.0.0"
    assert "is not an IPv4 address" in err_text(call(h, "udp_open", 0, "localhost"))
    assert "broadcast or multicast" in err_text(call(h2, "udp_open", 0, "255.255.255.255"))


def test_broadcast_and_multicast_destinations_need_an_explicit_entry(net):
    h = net()  # an empty list grants any host, but not these
    sock = open_sock(h)
    for dest in ("255.255.255.255", "224.0.0.251", "239.1.2.3"):
        e = err_text(call(h, "udp_send", sock, dest, 9, b"x"))
        assert f"net.udp_send to `{dest}` not in --allow-net-host" in e
        assert "named explicitly" in e


def test_a_socket_with_broadcast_on_sends_only_to_named_hosts(net, peer):
    # a subnet's broadcast address looks like any other: the kernel alone knows
    h = net()
    sock = open_sock(h)
    ok_value(call(h, "udp_broadcast", sock, True))
    e = err_text(call(h, "udp_send", sock, "127.0.0.1", peer.getsockname()[1], b"x"))
    assert "a socket with broadcast on sends only to hosts named there" in e
    ok_value(call(h, "udp_broadcast", sock, False))
    ok_value(call(h, "udp_send", sock, "127.0.0.1", peer.getsockname()[1], b"x"))
    assert peer.recvfrom(10)[0] == b"x"
    h2 = net(hosts=["127.0.0.1"])
    s2 = open_sock(h2)
    ok_value(call(h2, "udp_broadcast", s2, True))
    ok_value(call(h2, "udp_send", s2, "127.0.0.1", peer.getsockname()[1], b"y"))
    assert peer.recvfrom(10)[0] == b"y"


def test_the_host_is_checked_as_given_and_a_name_resolved_once(net, peer):
    h = net(hosts=["127.0.0.1"])
    sock = open_sock(h)
    e = err_text(call(h, "udp_send", sock, "localhost", peer.getsockname()[1], b"x"))
    assert e.startswith("net.udp_send to `localhost` not in --allow-net-host")
    h2 = net(hosts=["localhost"])
    s2 = open_sock(h2)
    ok_value(call(h2, "udp_send", s2, "localhost", peer.getsockname()[1], b"x"))
    assert peer.recvfrom(10)[0] == b"x"
    h3 = net()
    s3 = open_sock(h3)
    for bad in ("", "a\0b", "x" * 300):
        assert err_text(call(h3, "udp_send", s3, bad, 9, b"x")).startswith("net.udp_send: invalid host")


def test_a_loopback_socket_says_why_it_cannot_reach_further(net):
    h = net()
    sock = open_sock(h)
    e = err_text(call(h, "udp_send", sock, "192.0.2.7", 9, b"x"))
    assert e == ("net.udp_send: the socket is bound to 127.0.0.1 and cannot reach `192.0.2.7`; "
                 'open it with a host (net.udp_open(port, "0.0.0.0"))')


def test_datagrams_are_bounded_both_ways(net, peer):
    h = net(limits=Limits(udp_datagram_bytes=16))
    sock = open_sock(h)
    e = err_text(call(h, "udp_send", sock, "127.0.0.1", peer.getsockname()[1], b"x" * 17))
    assert "larger than Limits.udp_datagram_bytes (16)" in e
    port = bound_port(h, sock)
    peer.sendto(b"y" * 32, ("127.0.0.1", port))
    e = err_text(call(h, "udp_recv", sock, WAIT_MS))
    assert "larger than Limits.udp_datagram_bytes (16) and was dropped" in e
    peer.sendto(b"z" * 16, ("127.0.0.1", port))  # the next one still arrives whole
    assert ok_value(call(h, "udp_recv", sock, WAIT_MS))["data"] == b"z" * 16


def test_the_wait_is_bounded_and_arguments_checked(net):
    h = net(limits=Limits(udp_timeout_s=1.0))
    sock = open_sock(h)
    with pytest.raises(EffectError, match=r"timeout_ms must be at most 1000 \(Limits.udp_timeout_s\)"):
        call(h, "udp_recv", sock, 1001)
    with pytest.raises(EffectError, match="timeout_ms must be >= 0"):
        call(h, "udp_recv", sock, -1)
    with pytest.raises(EffectError, match=r"net.udp_open\(port\): port must be Int 0..=65535"):
        call(h, "udp_open", 70000)
    with pytest.raises(EffectError, match="port must be Int 0..=65535"):
        call(h, "udp_open", True)
    with pytest.raises(EffectError, match="port must be Int 0..=65535"):
        call(h, "udp_send", sock, "127.0.0.1", -1, b"x")
    with pytest.raises(EffectError, match="data must be Bytes"):
        call(h, "udp_send", sock, "127.0.0.1", 9, "text")
    with pytest.raises(EffectError, match=r"net.udp_send\(sock, host, port, data\): host"):
        call(h, "udp_send", sock, 5, 9, b"x")
    with pytest.raises(EffectError, match=r"net.udp_recv\(sock, ...\): sock must be Int"):
        call(h, "udp_recv", "1", 10)
    with pytest.raises(EffectError, match="on must be Bool"):
        call(h, "udp_broadcast", sock, 1)
    with pytest.raises(EffectError, match=r"net.udp_join_multicast\(sock, group\): group"):
        call(h, "udp_join_multicast", sock)
    with pytest.raises(EffectError, match=r"net.udp_close\(sock\): sock must be Int"):
        call(h, "udp_close")


def test_the_gate_is_net(make_handler):
    h = make_handler(effects=["io"])
    with pytest.raises(PolicyDenied):
        h.dispatch("net", "udp_open", [0])


def test_a_close_wakes_a_receive_in_progress(net):
    h = net(limits=Limits(udp_timeout_s=60.0))
    sock = open_sock(h)
    got = []
    t = threading.Thread(target=lambda: got.append(call(h, "udp_recv", sock, 30_000)))
    t.start()
    deadline = time.monotonic() + 5
    entry = udpmod._registry(h).get(sock)
    while entry.users == 0 and time.monotonic() < deadline:  # the receive is waiting
        time.sleep(0.01)
    ok_value(call(h, "udp_close", sock))
    t.join(10)
    assert not t.is_alive()
    assert "closed" in err_text(got[0])
    assert entry.sock.fileno() == -1


def test_the_registry_is_capped_and_evicted_sockets_closed(net):
    h = net()
    handles = [open_sock(h) for _ in range(REGISTRY_CAP + 1)]
    assert udpmod.open_count(h) == REGISTRY_CAP
    assert "no open socket with handle" in err_text(call(h, "udp_recv", handles[0], 0))
    assert "timed out" in err_text(call(h, "udp_recv", handles[-1], 0))


def test_closing_the_handler_closes_its_sockets(make_handler):
    h = make_handler(effects=["net"])
    sock = open_sock(h)
    entry = udpmod._registry(h).get(sock)
    h.close()
    assert entry.sock.fileno() == -1
