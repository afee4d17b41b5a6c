"""net.udp_open/close/send/recv/broadcast/join_multicast: UDP datagram sockets.

A socket is an Int handle in the session's ``udp`` registry (capped at 256
like the others, least recently used closed first; ``net.udp_close`` and
``handler.close()`` close it). Shapes and wording are the reference's
(issue #760 upstream): ``udp_recv`` answers ``Ok({data, host, port})``, an
empty datagram is ``Ok`` with empty ``data`` and nothing arriving in time is
``Err("net.udp_recv: timed out after {N}ms")``; a closed or unknown handle is
``Err("net.udp_*: no open socket with handle {N} (closed, or never
opened?)")``; a second close is ``Ok``.

Stricter than the reference, which binds 0.0.0.0 and checks only the literal
destination string:

- a socket binds 127.0.0.1 unless the program names another IPv4 address
  (``udp_open(port, host)``, beyond the reference), which must be in a
  non-empty ``--allow-net-host`` (``0.0.0.0`` included) or the list empty;
- ``udp_send`` resolves the destination once and sends to that address,
  checking ``--allow-net-host`` against the host as given, so a name cannot
  be checked and another address used;
- broadcast and multicast are capabilities of their own: a destination that
  is ``255.255.255.255`` or in 224.0.0.0/4, a multicast group to join, and
  every destination of a socket with ``udp_broadcast(sock, true)`` on (the
  kernel alone knows which addresses are a subnet's broadcast) must be named
  in ``--allow-net-host`` explicitly; an empty list does not grant them;
- ``udp_recv``'s wait is at most ``Limits.udp_timeout_s``, a datagram is at
  most ``Limits.udp_datagram_bytes`` both ways (a longer one received is
  dropped with an ``Err`` naming it, never truncated silently);
- a socket in use by one fork is closed by another only when that use ends
  (a blocked receive is woken), so a descriptor number is never reused
  under a call.
"""

from __future__ import annotations

import functools
import ipaddress
import select
import socket
import threading
import time

from ...errors import EffectError
from ...kernel import err, expect_bytes, expect_str, next_handle, ok
from ...policy import normalize_host
from ...values import debug_repr, debug_str_list, os_error_text

_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_LOOPBACK = "127.0.0.1"
#: how long a send may wait for room in the socket's buffer
_SEND_WAIT_S = 5.0
_MSG_TRUNC = int(socket.MSG_TRUNC)


class _Udp:
    """One socket: ``users`` calls are using it; ``close`` waits for them."""

    __slots__ = ("sock", "bound", "loopback", "broadcast", "users", "closed", "lock", "idle")

    def __init__(self, sock: socket.socket, bound: str) -> None:
        self.sock = sock
        self.bound = bound
        self.loopback = ipaddress.IPv4Address(bound).is_loopback
        self.broadcast = False
        self.users = 0
        self.closed = False
        self.lock = threading.Lock()
        self.idle = threading.Event()

    def enter(self) -> bool:
        with self.lock:
            if self.closed:
                return False
            self.users += 1
            return True

    def leave(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.closed:
                self.idle.set()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            busy = self.users > 0
        if busy:
            # wakes a receive blocked in poll (it sees `closed` after)
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.idle.wait()
        self.sock.close()


def _release(handle, entry: _Udp) -> None:
    entry.close()


def _registry(h):
    return h.session.registry("udp", _release)


# -- arguments -------------------------------------------------------------------

def _int_arg(args, i: int, call: str, name: str) -> int:
    v = args[i] if i < len(args) else None
    if type(v) is int or (isinstance(v, int) and not isinstance(v, bool)):
        return int.__int__(v)
    raise EffectError(f"{call}: {name} must be Int, got {debug_repr(v)}")


def _port(args, i: int, call: str) -> int:
    v = args[i] if i < len(args) else None
    if (type(v) is int or (isinstance(v, int) and not isinstance(v, bool))) \
            and 0 <= int.__int__(v) <= 65535:
        return int.__int__(v)
    raise EffectError(f"{call}: port must be Int 0..=65535")


def _str_arg(args, i: int, call: str, name: str) -> str:
    try:
        return expect_str(args, i)
    except EffectError as e:
        raise EffectError(f"{call}: {name}: {e}") from None


@functools.lru_cache(maxsize=256)
def _ipv4(text: str):
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def _special(addr) -> bool:
    return addr == _BROADCAST or addr.is_multicast


def _listed(h, host: str) -> bool:
    return normalize_host(host) in h.policy.net_hosts


def _not_allowed(h, op: str, host: str, why: str = "") -> str:
    return (f"net.{op} to `{host}` not in --allow-net-host "
            f"{debug_str_list(h.policy.allow_net_host)}{why}")


def _entry(h, handle: int, op: str) -> _Udp | str:
    entry = _registry(h).touch_get(handle)
    if entry is None or not entry.enter():
        return f"net.{op}: no open socket with handle {handle} (closed, or never opened?)"
    return entry


# -- ops ---------------------------------------------------------------------------

def udp_open(h, args):
    port = _port(args, 0, "net.udp_open(port)")
    host = _LOOPBACK
    if len(args) > 1:
        host = _str_arg(args, 1, "net.udp_open(port, host)", "host")
        addr = _ipv4(host)
        if addr is None:
            return err(f"net.udp_open: bind address `{host}` is not an IPv4 address")
        host = str(addr)
        if _special(addr):
            return err(f"net.udp_open: cannot bind the broadcast or multicast address `{host}`")
        if not addr.is_loopback and h.policy.net_hosts and not _listed(h, host):
            return err(_not_allowed(h, "udp_open", host, " (binding beyond loopback)"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        return err(f"net.udp_open: {os_error_text(e)}")
    reg = _registry(h)
    handle = next_handle()
    reg.insert(handle, _Udp(sock, host))
    if h.session.closed:  # closed while we opened: nobody would close it
        entry = reg.remove(handle)
        if entry is not None:
            entry.close()
        raise EffectError("net.udp_open: the handler is closed")
    return ok(handle)


def udp_close(h, args):
    handle = _int_arg(args, 0, "net.udp_close(sock)", "sock")
    entry = _registry(h).remove(handle)
    if entry is not None:
        entry.close()
    return ok(None)


def _facts(addr) -> tuple[str, bool, bool]:
    """``(text, broadcast or multicast, loopback)`` of an address."""
    return str(addr), addr == _BROADCAST or addr.is_multicast, addr.is_loopback


@functools.lru_cache(maxsize=256)
def _literal(host: str) -> tuple[str, bool, bool] | None:
    addr = _ipv4(host)
    return None if addr is None else _facts(addr)


def _destination(h, entry: _Udp, host: str):
    """The address to send to, or an error text. The policy is checked on the
    host as the program gave it, the special-address rule on what it names."""
    if "\0" in host or not host or len(host) > 253:
        return None, f"net.udp_send: invalid host {debug_repr(host)}"
    hosts = h.policy.net_hosts
    if hosts and not _listed(h, host):
        return None, _not_allowed(h, "udp_send", host)
    facts = _literal(host)
    if facts is None:
        try:
            infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as e:
            text = os_error_text(e) if isinstance(e, OSError) else str(e)
            return None, f"net.udp_send: cannot resolve `{host}`: {text}"
        if not infos:
            return None, f"net.udp_send: cannot resolve `{host}`"
        facts = _facts(ipaddress.IPv4Address(infos[0][4][0]))
        if facts[1]:
            return None, (f"net.udp_send: `{host}` resolves to the broadcast or multicast "
                          f"address {facts[0]}; name the address itself")
    text, special, loopback = facts
    if (special or entry.broadcast) and not _listed(h, host):
        why = (" (a socket with broadcast on sends only to hosts named there)"
               if entry.broadcast and not special
               else " (broadcast and multicast destinations must be named explicitly)")
        return None, _not_allowed(h, "udp_send", host, why)
    if entry.loopback and not loopback:
        return None, (f"net.udp_send: the socket is bound to {entry.bound} and cannot reach "
                      f"`{host}`; open it with a host (net.udp_open(port, \"0.0.0.0\"))")
    return text, None


def udp_send(h, args):
    handle = _int_arg(args, 0, "net.udp_send(sock, ...)", "sock")
    host = _str_arg(args, 1, "net.udp_send(sock, host, port, data)", "host")
    port = _port(args, 2, "net.udp_send(sock, host, port, data)")
    try:
        data = expect_bytes(args, 3)
    except EffectError:
        raise EffectError("net.udp_send(sock, host, port, data): data must be Bytes") from None
    cap = h.session.limits.udp_datagram_bytes
    if len(data) > cap:
        return err(f"net.udp_send: datagram of {len(data)} bytes is larger than "
                   f"Limits.udp_datagram_bytes ({cap})")
    entry = _entry(h, handle, "udp_send")
    if isinstance(entry, str):
        return err(entry)
    try:
        addr, why = _destination(h, entry, host)
        if why is not None:
            return err(why)
        deadline = time.monotonic() + _SEND_WAIT_S
        while True:
            try:
                return ok(entry.sock.sendto(data, (addr, port)))
            except BlockingIOError:
                pass
            except OSError as e:
                return err(f"net.udp_send: {os_error_text(e)}")
            left = deadline - time.monotonic()
            if left <= 0 or entry.closed:
                return err("net.udp_send: the socket's send buffer stayed full")
            select.select([], [entry.sock], [], left)
    finally:
        entry.leave()


def udp_recv(h, args):
    handle = _int_arg(args, 0, "net.udp_recv(sock, ...)", "sock")
    timeout_ms = _int_arg(args, 1, "net.udp_recv(..., timeout_ms)", "timeout_ms")
    if timeout_ms < 0:
        raise EffectError("net.udp_recv(sock, timeout_ms): timeout_ms must be >= 0")
    limits = h.session.limits
    cap_ms = int(limits.udp_timeout_s * 1000)
    if timeout_ms > cap_ms:
        raise EffectError(f"net.udp_recv(sock, timeout_ms): timeout_ms must be at most "
                          f"{cap_ms} (Limits.udp_timeout_s)")
    entry = _entry(h, handle, "udp_recv")
    if isinstance(entry, str):
        return err(entry)
    cap = limits.udp_datagram_bytes
    try:
        # 0 is a poll, not "wait forever" (as the reference's 1 ms)
        deadline = time.monotonic() + max(timeout_ms, 1) / 1000
        poller = None
        while True:
            if entry.closed:
                return err(f"net.udp_recv: socket {handle} was closed while receiving")
            try:
                data, _anc, flags, addr = entry.sock.recvmsg(cap)
                break
            except BlockingIOError:  # nothing yet (or another fork took it)
                pass
            except OSError as e:
                return err(f"net.udp_recv: {os_error_text(e)}")
            left = deadline - time.monotonic()
            if left <= 0:
                return err(f"net.udp_recv: timed out after {timeout_ms}ms")
            if poller is None:
                poller = select.poll()
                poller.register(entry.sock, select.POLLIN)
            poller.poll(max(1, int(left * 1000 + 0.999)))
        if entry.closed or not addr:
            # a close's shutdown() makes the read answer empty: not a datagram
            return err(f"net.udp_recv: socket {handle} was closed while receiving")
        if flags & _MSG_TRUNC:
            return err(f"net.udp_recv: a datagram from {addr[0]}:{addr[1]} was larger "
                       f"than Limits.udp_datagram_bytes ({cap}) and was dropped")
        return ok({"data": data, "host": addr[0], "port": addr[1]})
    finally:
        entry.leave()


def udp_broadcast(h, args):
    handle = _int_arg(args, 0, "net.udp_broadcast(sock, on)", "sock")
    on = args[1] if len(args) > 1 else None
    if type(on) is not bool:
        raise EffectError(f"net.udp_broadcast(sock, on): on must be Bool, got {debug_repr(on)}")
    entry = _entry(h, handle, "udp_broadcast")
    if isinstance(entry, str):
        return err(entry)
    try:
        entry.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1 if on else 0)
        entry.broadcast = on
    except OSError as e:
        return err(f"net.udp_broadcast: {os_error_text(e)}")
    finally:
        entry.leave()
    return ok(None)


def udp_join_multicast(h, args):
    handle = _int_arg(args, 0, "net.udp_join_multicast(sock, group)", "sock")
    group = _str_arg(args, 1, "net.udp_join_multicast(sock, group)", "group")
    entry = _entry(h, handle, "udp_join_multicast")
    if isinstance(entry, str):
        return err(entry)
    try:
        addr = _ipv4(group)
        if addr is None:
            return err(f"net.udp_join_multicast: `{group}` is not an IPv4 address")
        if not addr.is_multicast:
            return err(f"net.udp_join_multicast: {addr} is not a multicast address "
                       "(224.0.0.0/4)")
        if not _listed(h, group) and not _listed(h, str(addr)):
            return err(_not_allowed(h, "udp_join_multicast", group,
                                    " (multicast groups must be named explicitly)"))
        # the interface the socket is bound to (any when bound to 0.0.0.0)
        mreq = addr.packed + socket.inet_aton(entry.bound)
        entry.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    except OSError as e:
        return err(f"net.udp_join_multicast: {os_error_text(e)}")
    finally:
        entry.leave()
    return ok(None)


def open_count(h) -> int:
    """How many UDP sockets the session of ``h`` holds (tests, diagnostics)."""
    return len(_registry(h))


ROWS = [
    ("net", "udp_open", "net", udp_open),
    ("net", "udp_close", "net", udp_close),
    ("net", "udp_send", "net", udp_send),
    ("net", "udp_recv", "net", udp_recv),
    ("net", "udp_broadcast", "net", udp_broadcast),
    ("net", "udp_join_multicast", "net", udp_join_multicast),
]
