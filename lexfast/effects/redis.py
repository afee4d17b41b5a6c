"""redis.* on redis-py (gated ``net``; the ``redis`` extra).

The reference's ``std.redis`` (#533): a ``ConnRedis`` handle (an Int), the
ops' shapes and the ``redis.<op>: ...`` messages follow it
(docs/effects.md): ``redis.connect`` answers ``Ok(handle)`` / ``Err(msg)``;
every other op's failure is HARD (an ``EffectError``, the reference's
dispatch ``Err``). Where lexfast differs:

- ``--allow-net-host`` is checked on the host the URL parses to, and that
  parsed host (never the URL text) is what is connected to; ``rediss://``
  verifies the server's certificate and name, with no way to turn that off
  (``Limits.redis_ca_bundle`` replaces the system CAs). URLs are parsed
  strictly: ``redis``/``rediss`` only, no query parameters, no control
  characters, a numeric db. A password never appears in an error, a log
  line or a ``repr``.
- Handles belong to the session (a handler and its forks), LRU-capped at
  256 like kv/sql; eviction, ``redis.close`` and ``handler.close()``
  disconnect every connection of the handle, subscriptions included.
- Each handle has a connection pool (``Limits.redis_connections``), so forks
  on other threads (``net.serve`` workers) do not share a socket. Nothing is
  retried: a call that fails on the wire is an error, never sent twice, so
  no write is applied twice and none reported done that the server did not
  acknowledge. A connection the server closed is replaced before the next
  call is sent (reconnect after a restart).
- Every call is bounded: ``Limits.redis_timeout_s`` for connecting, for each
  read, and for a whole reply from its first byte; a reply larger than
  ``Limits.redis_reply_bytes`` is refused while it streams in (the
  connection is dropped), so a huge value or ``hgetall`` is an error, not a
  MemoryError. ``brpop``'s wait is at most ``Limits.redis_block_s`` (its
  ``0``, "forever" upstream, means that cap).
- Values are UTF-8 ``Str`` as upstream (redis-rs ``String``); a stored value
  that is not UTF-8 is a HARD error naming the op.
- ``subscribe``/``psubscribe`` take the *name* of a program function (as
  ``net.serve`` does) and run it through the session's ``runner`` for each
  message, on a fork of this handler (the same budget, not a fresh one as
  upstream). The call returns Unit when the handle is closed, the handler
  closed or ``handler.shutdown()`` is called; a lost connection or a failing
  message handler ends it with a HARD error, as upstream.
"""

from __future__ import annotations

import threading
import time
import urllib.parse

from ..errors import BudgetExceeded, EffectError, PolicyDenied
from ..kernel import NONE, err, expect_handle, expect_int, expect_str, next_handle, ok, some
from .net._common import exc_text, need_program

_INSTALL = "pip install lexfast[redis]"
_ECHO = 200  # characters of a URL echoed in an error
_POLL_S = 0.25  # how often a subscription looks at its stop conditions


def _load():
    """redis-py and hiredis, imported on first use (``import lexfast`` stays
    light); an ``EffectError`` naming the extra when it is not installed
    (``redis.connect`` answers it as an ``Err``; no other op can get that far
    without a handle)."""
    global _lib
    if _lib is None:
        try:
            import hiredis  # noqa: F401 -- the bounded parser below needs it
            import redis
            from redis._parsers.hiredis import _HiredisParser
        except ImportError as e:
            raise EffectError(f"redis: redis-py and hiredis are not installed ({e.name}): "
                              f"{_INSTALL}") from None
        _lib = (redis, _HiredisParser)
    return _lib


_lib = None
_parsers: dict = {}
_parsers_lock = threading.Lock()


class _ReplyTooLarge(Exception):
    pass


class _ReplyTooSlow(Exception):
    pass


def _parser_class(cap: int, deadline_s: float):
    """hiredis's parser, counting the bytes of the reply being read (reset by
    ``_call`` before each) and refusing one past ``cap`` bytes or ``deadline_s``
    after its first byte: the check happens as the bytes arrive, before a
    huge reply is ever held."""
    key = (cap, deadline_s)
    with _parsers_lock:
        cls = _parsers.get(key)
        if cls is not None:
            return cls
        redis, base = _load()
        from redis._parsers.socket import SERVER_CLOSED_CONNECTION_ERROR
        from redis.exceptions import ConnectionError as _ConnError
        from redis.exceptions import TimeoutError as _Timeout
        from redis.utils import SENTINEL

        class BoundedParser(base):  # type: ignore[misc,valid-type]
            reply_cap = cap
            reply_deadline = deadline_s
            got = 0
            started = 0.0

            def on_connect(self, connection, **kwargs):
                self.got = 0  # the handshake's replies count from zero, together
                super().on_connect(connection, **kwargs)

            def read_from_socket(self, timeout=SENTINEL, raise_on_timeout=True):
                sock = self._sock
                reader = self._reader
                if sock is None or reader is None:
                    raise _ConnError(SERVER_CLOSED_CONNECTION_ERROR)
                custom = timeout is not SENTINEL
                try:
                    if custom:
                        sock.settimeout(timeout)
                    n = sock.recv_into(self._buffer)
                except TimeoutError:
                    if raise_on_timeout:
                        raise _Timeout("Timeout reading from socket") from None
                    return False
                finally:
                    if custom:
                        try:
                            sock.settimeout(self._socket_timeout)
                        except OSError:
                            pass
                if n == 0:
                    raise _ConnError(SERVER_CLOSED_CONNECTION_ERROR)
                got = self.got
                if got == 0:
                    self.started = time.monotonic()
                elif time.monotonic() - self.started > self.reply_deadline:
                    raise _ReplyTooSlow()
                got += n
                self.got = got
                if got > self.reply_cap:
                    raise _ReplyTooLarge()
                reader.feed(self._buffer, 0, n)
                return True

        _parsers[key] = BoundedParser
        return BoundedParser


# -- the handle ------------------------------------------------------------------

class _Conn:
    """One ``ConnRedis``: its pool, what errors may say about it, and the
    subscriptions running on it (their connections are dropped at close)."""

    __slots__ = ("pool", "where", "secret", "closed", "subscribed", "lock", "limits")

    def __init__(self, pool, where: str, secret: str | None, limits) -> None:
        self.pool = pool
        self.where = where
        self.secret = secret
        self.closed = False
        self.subscribed: set = set()
        self.lock = threading.Lock()
        self.limits = limits

    def __repr__(self) -> str:  # never the password
        return f"<ConnRedis {self.where}{' closed' if self.closed else ''}>"

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            subs = list(self.subscribed)
        for c in subs:
            _quiet_disconnect(c)
        try:
            self.pool.disconnect(inuse_connections=True)
        except Exception:
            pass

    def scrub(self, text: str) -> str:
        secret = self.secret
        if secret and secret in text:
            text = text.replace(secret, "***")
        return text


def _quiet_disconnect(c) -> None:
    try:
        c.disconnect()
    except Exception:
        pass


def _release(handle, conn: _Conn) -> None:
    """Registry ``on_evict``: the handle is gone (evicted, closed, session closed)."""
    conn.close()


def _conn(h, args, op: str) -> _Conn:
    handle = expect_handle(args, 0, "ConnRedis", "ConnRedis")
    c = h.session.registry("redis", _release).touch_get(handle)
    if c is None:
        raise EffectError(f"redis.{op}: closed or unknown ConnRedis handle")
    return c


def _arg(args, i: int, op: str, what: str) -> bytes:
    s = expect_str(args, i)
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise EffectError(f"redis.{op}: {what} is not valid UTF-8") from None


def _text(v, op: str, what: str = "value") -> str:
    if type(v) is not bytes:
        raise EffectError(f"redis.{op}: unexpected reply {_shape(v)} (expected a string)")
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        raise EffectError(f"redis.{op}: stored {what} is not valid UTF-8") from None


_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1
_SERVER_TEXT = 1000  # characters of a server's error reply echoed


def _int(v, op: str) -> int:
    """An integer reply as an Int; anything else (a hostile or odd server) HARD."""
    if type(v) is int and _INT_MIN <= v <= _INT_MAX:
        return v
    raise EffectError(f"redis.{op}: unexpected reply {_shape(v)} (expected an integer)")


def _shape(v) -> str:
    if isinstance(v, int):
        return "integer out of the Int range" if not isinstance(v, bool) else "bool"
    return type(v).__name__


def _failure(c: _Conn, op: str, e: BaseException) -> EffectError:
    limits = c.limits
    if isinstance(e, _ReplyTooLarge):
        return EffectError(f"redis.{op}: reply larger than Limits.redis_reply_bytes "
                           f"({int(limits.redis_reply_bytes)} bytes); the connection was dropped")
    if isinstance(e, _ReplyTooSlow):
        return EffectError(f"redis.{op}: reply took longer than Limits.redis_timeout_s "
                           f"({limits.redis_timeout_s:g} s); the connection was dropped")
    redis, _ = _load()
    if isinstance(e, redis.exceptions.TimeoutError):
        return EffectError(f"redis.{op}: timed out after {limits.redis_timeout_s:g} s "
                           f"(Limits.redis_timeout_s) on {c.where}")
    if isinstance(e, redis.exceptions.MaxConnectionsError):
        return EffectError(f"redis.{op}: all {int(limits.redis_connections)} connections of the "
                           "handle are in use (Limits.redis_connections)")
    if isinstance(e, redis.exceptions.ResponseError):
        text = str(e)  # the server's words: bounded
        if len(text) > _SERVER_TEXT:
            text = text[:_SERVER_TEXT] + "…"
        return EffectError(c.scrub(f"redis.{op}: {text}"))
    if isinstance(e, redis.exceptions.RedisError):
        if c.closed:
            return EffectError(f"redis.{op}: closed or unknown ConnRedis handle")
        return EffectError(c.scrub(f"redis.{op}: connection to {c.where} failed: {e}"))
    if isinstance(e, OSError):
        return EffectError(c.scrub(f"redis.{op}: connection to {c.where} failed: {e}"))
    return EffectError(c.scrub(f"redis.{op}: {exc_text(e)}"))


def _call(c: _Conn, op: str, *cmd, timeout=None):
    """One command on a pooled connection, its reply bounded; never retried."""
    pool = c.pool
    try:
        conn = pool.get_connection()
    except Exception as e:
        raise _failure(c, op, e) from None
    try:
        parser = conn._parser
        parser.got = 0
        conn.send_command(*cmd)
        if timeout is None:
            return conn.read_response()
        return conn.read_response(timeout=timeout)
    except BaseException as e:
        _quiet_disconnect(conn)  # a half-read reply must not reach the next call
        if isinstance(e, Exception):
            raise _failure(c, op, e) from None
        raise
    finally:
        pool.release(conn)
        if c.closed:  # closed by another thread meanwhile: keep no socket open
            _quiet_disconnect(conn)


# -- URL ---------------------------------------------------------------------------

def _redact(url: str) -> str:
    """The URL with any userinfo replaced by ``***`` (and shortened)."""
    scheme, sep, rest = url.partition("://")
    if sep:
        slash = rest.find("/")
        auth_end = rest.rfind("@", 0, slash if slash >= 0 else len(rest))
        if auth_end >= 0:
            rest = "***@" + rest[auth_end + 1:]
        url = f"{scheme}://{rest}"
    elif "@" in url:
        url = "***@" + url.rpartition("@")[2]
    return url if len(url) <= _ECHO else url[:_ECHO] + "…"


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


class _BadUrl(Exception):
    pass


def _parse(url: str):
    """``(tls, host, port, db, username, password)`` from a redis/rediss URL."""
    if any(ord(ch) < 0x21 or ch == "\x7f" for ch in url):
        raise _BadUrl("URL contains whitespace or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise _BadUrl(f"invalid URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss"):
        raise _BadUrl(f"URL scheme `{parts.scheme}` is not allowed (only redis and rediss)")
    if parts.query or parts.fragment:
        raise _BadUrl("URL query parameters and fragments are not supported")
    netloc = parts.netloc.rpartition("@")[2]
    if netloc.startswith("["):
        host = netloc[1:netloc.find("]")] if "]" in netloc else ""
        if not host or not set(host) <= _IPV6_CHARS:
            raise _BadUrl("invalid IPv6 host in URL")
    else:
        host = netloc.rpartition(":")[0] if ":" in netloc else netloc
        if not host or not set(host) <= _HOST_CHARS:
            raise _BadUrl("URL has no valid host")
    path = parts.path
    db = 0
    if path not in ("", "/"):
        digits = path[1:]
        if not digits.isascii() or not digits.isdigit() or len(digits) > 5:
            raise _BadUrl("URL path must be a database number (/0, /1, ...)")
        db = int(digits)
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    if password is None and username is not None:
        # redis://secret@host: the lone userinfo is the password (redis-py, redis-rs)
        username, password = None, username
    if port == 0:
        raise _BadUrl("URL port must be 1..=65535")
    return scheme == "rediss", host.lower(), 6379 if port is None else port, db, username, password


def redis_connect(h, args):
    url = expect_str(args, 0)
    try:
        tls, host, port, db, username, password = _parse(url)
    except _BadUrl as e:
        return err(f"redis.connect: {e}: `{_redact(url)}`")
    from .net.http import host_denied  # the one --allow-net-host check
    denied = host_denied(h, host)
    if denied is not None:
        raise PolicyDenied(denied, effect="net", host=host)
    try:
        redis, _ = _load()
    except EffectError as e:  # the extra is missing: an answer the program can see
        return err(f"redis.connect: {str(e).removeprefix('redis: ')}")
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    session = h.session
    limits = session.limits
    timeout = float(limits.redis_timeout_s)
    kwargs = dict(
        host=host, port=port, db=db, username=username, password=password,
        socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        parser_class=_parser_class(int(limits.redis_reply_bytes), timeout),
        max_connections=int(limits.redis_connections), health_check_interval=0,
        protocol=2,
    )
    if tls:
        kwargs.update(connection_class=redis.SSLConnection, ssl_cert_reqs="required",
                      ssl_check_hostname=True, ssl_ca_certs=limits.redis_ca_bundle)
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    pool = redis.ConnectionPool(**kwargs)
    c = _Conn(pool, where, password, limits)
    try:
        _call(c, "connect", "PING")
    except EffectError as e:
        c.close()
        msg = str(e)
        if msg.startswith("redis.connect: "):
            msg = msg[len("redis.connect: "):]
        return err(f"redis.connect: {msg}")
    reg = session.registry("redis", _release)
    handle = next_handle()
    reg.insert(handle, c)
    if session.closed:  # closed while we connected: the session will never release it
        if reg.remove(handle) is not None:
            c.close()
        raise EffectError("redis.connect: the handler is closed")
    return ok(handle)


def redis_close(h, args):
    handle = expect_handle(args, 0, "ConnRedis", "ConnRedis")
    c = h.session.registry("redis", _release).remove(handle)
    if c is not None:
        c.close()
    return None


# -- commands ----------------------------------------------------------------------

def redis_get(h, args):
    c = _conn(h, args, "get")
    v = _call(c, "get", "GET", _arg(args, 1, "get", "key"))
    return NONE if v is None else some(_text(v, "get"))


def redis_set(h, args):
    c = _conn(h, args, "set")
    _call(c, "set", "SET", _arg(args, 1, "set", "key"), _arg(args, 2, "set", "value"))
    return None


def redis_set_ex(h, args):
    c = _conn(h, args, "set_ex")
    key = _arg(args, 1, "set_ex", "key")
    val = _arg(args, 2, "set_ex", "value")
    ttl = expect_int(args, 3)
    if ttl <= 0:
        raise EffectError(f"redis.set_ex: ttl must be > 0 seconds, got {ttl}")
    _call(c, "set_ex", "SETEX", key, ttl, val)
    return None


def redis_del(h, args):
    c = _conn(h, args, "del")
    _call(c, "del", "DEL", _arg(args, 1, "del", "key"))
    return None


def redis_exists(h, args):
    c = _conn(h, args, "exists")
    return _int(_call(c, "exists", "EXISTS", _arg(args, 1, "exists", "key")), "exists") > 0


def redis_expire(h, args):
    c = _conn(h, args, "expire")
    key = _arg(args, 1, "expire", "key")
    ttl = expect_int(args, 2)
    _call(c, "expire", "EXPIRE", key, ttl)
    return None


def redis_publish(h, args):
    c = _conn(h, args, "publish")
    return _int(_call(c, "publish", "PUBLISH", _arg(args, 1, "publish", "channel"),
                      _arg(args, 2, "publish", "message")), "publish")


def redis_lpush(h, args):
    c = _conn(h, args, "lpush")
    return _int(_call(c, "lpush", "LPUSH", _arg(args, 1, "lpush", "key"),
                      _arg(args, 2, "lpush", "value")), "lpush")


def redis_rpush(h, args):
    c = _conn(h, args, "rpush")
    return _int(_call(c, "rpush", "RPUSH", _arg(args, 1, "rpush", "key"),
                      _arg(args, 2, "rpush", "value")), "rpush")


def redis_brpop(h, args):
    c = _conn(h, args, "brpop")
    key = _arg(args, 1, "brpop", "key")
    wait = expect_int(args, 2)
    cap = float(c.limits.redis_block_s)
    if wait < 0:
        raise EffectError(f"redis.brpop: timeout must be >= 0 seconds, got {wait}")
    if wait == 0 or wait > cap:  # upstream's 0 blocks forever: here, the cap
        wait_s: float = cap
    else:
        wait_s = float(wait)
    got = _call(c, "brpop", "BRPOP", key, f"{wait_s:g}",
                timeout=wait_s + float(c.limits.redis_timeout_s))
    if got is None:
        return NONE
    if type(got) is not list or len(got) != 2:
        raise EffectError(f"redis.brpop: unexpected reply {_shape(got)} (expected a key and a value)")
    return some(_text(got[1], "brpop"))


def redis_llen(h, args):
    c = _conn(h, args, "llen")
    return _int(_call(c, "llen", "LLEN", _arg(args, 1, "llen", "key")), "llen")


def redis_hset(h, args):
    c = _conn(h, args, "hset")
    _call(c, "hset", "HSET", _arg(args, 1, "hset", "key"), _arg(args, 2, "hset", "field"),
          _arg(args, 3, "hset", "value"))
    return None


def redis_hget(h, args):
    c = _conn(h, args, "hget")
    v = _call(c, "hget", "HGET", _arg(args, 1, "hget", "key"), _arg(args, 2, "hget", "field"))
    return NONE if v is None else some(_text(v, "hget"))


def redis_hdel(h, args):
    c = _conn(h, args, "hdel")
    _call(c, "hdel", "HDEL", _arg(args, 1, "hdel", "key"), _arg(args, 2, "hdel", "field"))
    return None


def redis_hgetall(h, args):
    c = _conn(h, args, "hgetall")
    flat = _call(c, "hgetall", "HGETALL", _arg(args, 1, "hgetall", "key"))
    if type(flat) is not list or len(flat) % 2:
        raise EffectError(f"redis.hgetall: unexpected reply {_shape(flat)} (expected field/value pairs)")
    return [(_text(flat[i], "hgetall", "field"), _text(flat[i + 1], "hgetall"))
            for i in range(0, len(flat) - 1, 2)]


# -- subscriptions -----------------------------------------------------------------

def _subscriber(pattern: bool):
    op = "psubscribe" if pattern else "subscribe"
    command = "PSUBSCRIBE" if pattern else "SUBSCRIBE"

    def subscribe(h, args):
        c = _conn(h, args, op)
        target = _arg(args, 1, op, "pattern" if pattern else "channel")
        name = expect_str(args, 2)
        need_program(h, f"redis.{op} requires a Program reference; "
                        "use DefaultHandler::with_program")
        session = h.session
        program, runner = session.program, session.runner
        limits = c.limits
        pool = c.pool
        try:
            conn = pool.get_connection()
        except Exception as e:
            raise _failure(c, op, e) from None
        with c.lock:
            closed = c.closed
            c.subscribed.add(conn)
        try:
            if closed:
                return None
            try:
                conn._parser.got = 0
                conn.send_command(command, target)
                conn.read_response()  # the subscribe confirmation
            except Exception as e:
                raise _failure(c, op, e) from None
            stop = session.shutdown_event
            while True:
                if c.closed or stop.is_set() or session.closed:
                    return None
                try:
                    if not conn.can_read(timeout=_POLL_S):
                        continue
                    conn._parser.got = 0
                    msg = conn.read_response(timeout=float(limits.redis_timeout_s))
                except Exception as e:
                    if c.closed or stop.is_set() or session.closed:
                        return None
                    raise _failure(c, op, e) from None
                if not isinstance(msg, list) or not msg:
                    continue
                kind = msg[0]
                if pattern and kind == b"pmessage" and len(msg) == 4:
                    call = [_text(msg[1], op, "pattern"), _text(msg[2], op, "channel"),
                            _text(msg[3], op, "payload")]
                elif not pattern and kind == b"message" and len(msg) == 3:
                    call = [_text(msg[1], op, "channel"), _text(msg[2], op, "payload")]
                else:
                    continue  # (p)subscribe confirmations, pongs
                try:
                    runner(program, h.fork(), name, call)
                except BudgetExceeded:
                    raise  # the run's shared budget is spent: as any call would report it
                except BaseException as e:  # noqa: BLE001 - upstream ends the loop with the error
                    raise EffectError(f"redis.{op}: handler: {exc_text(e)}") from None
        finally:
            with c.lock:
                c.subscribed.discard(conn)
            _quiet_disconnect(conn)  # a subscribed connection cannot serve commands
            pool.release(conn)

    subscribe.__name__ = subscribe.__qualname__ = f"redis_{op}"
    return subscribe


redis_subscribe = _subscriber(False)
redis_psubscribe = _subscriber(True)


ROWS = [
    ("redis", "connect", "net", redis_connect),
    ("redis", "close", "net", redis_close),
    ("redis", "get", "net", redis_get),
    ("redis", "set", "net", redis_set),
    ("redis", "set_ex", "net", redis_set_ex),
    ("redis", "del", "net", redis_del),
    ("redis", "exists", "net", redis_exists),
    ("redis", "expire", "net", redis_expire),
    ("redis", "publish", "net", redis_publish),
    ("redis", "subscribe", "net", redis_subscribe),
    ("redis", "psubscribe", "net", redis_psubscribe),
    ("redis", "lpush", "net", redis_lpush),
    ("redis", "rpush", "net", redis_rpush),
    ("redis", "brpop", "net", redis_brpop),
    ("redis", "llen", "net", redis_llen),
    ("redis", "hset", "net", redis_hset),
    ("redis", "hget", "net", redis_hget),
    ("redis", "hdel", "net", redis_hdel),
    ("redis", "hgetall", "net", redis_hgetall),
]
