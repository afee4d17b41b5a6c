"""A budget shared across processes: ``Policy(budget=N, budget_pool=URL)``.

Every process that names the same Redis pool (``redis://host:port/key`` or
``rediss://``) draws on one ceiling ``N``, counted on the Redis server by two
Lua scripts (atomic there): the first caller creates the key with ``N``, and
each refill takes ``min(block, remaining)`` units, never going below zero.

The handler's ``BudgetPool`` keeps its local compare-and-swap counter; with a
``RedisLease`` that counter is this process's *lease*: it starts at 0, and a
``note_call_budget`` it cannot cover calls ``refill``, which takes a block of
units from the server (doubling while leases run out fast, up to
``Limits.budget_lease`` and 1/64 of the ceiling) and retries. Closing the
handler returns the unspent lease. The hot path touches Redis only when the
lease is exhausted.

Fail-closed: a refill that cannot reach the server refuses the call with
``BudgetPoolUnavailable`` (a ``BudgetExceeded``); units are spent only after
the server granted them, so a fault can lose units (a process killed holding
a lease loses at most one block), never overspend.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from .errors import BudgetExceeded, BudgetPoolUnavailable, EffectError
from .policy import BudgetPoolURL, parse_budget_pool

if TYPE_CHECKING:
    from .handler import Limits

#: KEYS[1] the pool; ARGV ceiling, need, want, a fresh token. Creates the
#: pool at its first use (the token names that incarnation: `epoch`);
#: {-1, ceiling} if it was created with another ceiling; {0, remaining,
#: epoch} when fewer than `need` units remain (nothing taken); else takes
#: min(want, remaining) units: {taken, remaining after, epoch}.
_TAKE = """
local c = redis.call('HGET', KEYS[1], 'ceiling')
if not c then
  redis.call('HSET', KEYS[1], 'ceiling', ARGV[1], 'remaining', ARGV[1], 'epoch', ARGV[4])
  c = ARGV[1]
end
if c ~= ARGV[1] then return {-1, c} end
local r = tonumber(redis.call('HGET', KEYS[1], 'remaining'))
local e = redis.call('HGET', KEYS[1], 'epoch')
if not r or not e then return {-2, 0} end
local need = tonumber(ARGV[2])
if r < need then return {0, r, e} end
local w = tonumber(ARGV[3])
if w > r then w = r end
if w > 0 then redis.call('HINCRBY', KEYS[1], 'remaining', -w) end
return {w, r - w, e}
"""

#: KEYS[1] the pool; ARGV ceiling, units, epoch. Gives back a lease's
#: unspent units, only to the incarnation that granted them (a pool reset
#: and recreated meanwhile starts full) and never past the ceiling: the
#: remainder after, or -1.
_GIVE_BACK = """
local c = redis.call('HGET', KEYS[1], 'ceiling')
if c ~= ARGV[1] or redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[3] then return -1 end
local r = redis.call('HINCRBY', KEYS[1], 'remaining', ARGV[2])
if r > tonumber(c) then
  redis.call('HSET', KEYS[1], 'remaining', c)
  r = tonumber(c)
end
return r
"""

#: A refill faster than this doubles the next block; slower than
#: _SLOW_REFILL_S halves it.
_FAST_REFILL_S = 0.5
_SLOW_REFILL_S = 5.0
_FIRST_BLOCK = 64


#: every live lease, so that a forked child drops the leases it copied
_LEASES: weakref.WeakSet[RedisLease] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lease in list(_LEASES):
        lease._forget_copied_lease()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _client(url: BudgetPoolURL, timeout: float, ca_bundle: str | None = None) -> Any:
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise EffectError("a budget pool needs the Redis client: "
                          "pip install 'lexfast[redis]'") from None
    # No retries: a retried refill could take twice (units lost, never
    # overspent, but a bound on the wait is worth more); the next refill
    # reconnects.
    kwargs: dict[str, Any] = dict(
        host=url.host, port=url.port, username=url.username, password=url.password,
        socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), single_connection_client=False,
        health_check_interval=0)
    if url.tls:  # verified: the system store, or the operator's CA file
        kwargs.update(ssl=True, ssl_cert_reqs="required", ssl_check_hostname=True,
                      ssl_ca_certs=ca_bundle)
    try:
        return redis.Redis(**kwargs)
    except Exception as e:
        raise EffectError(f"budget pool {url.redacted}: {type(e).__name__}: {e}") from None


class RedisLease:
    """This process's lease of a Redis budget pool (see the module doc).
    Made by ``DefaultHandler`` when the policy names a ``budget_pool``;
    raises ``EffectError`` when the pool cannot be reached or was created
    with another ceiling."""

    def __init__(self, url: str, ceiling: int, limits: Limits) -> None:
        self._url = parse_budget_pool(url)
        self.where = f"budget pool {self._url.redacted}"
        self.ceiling = ceiling
        self._ceiling_arg = str(ceiling)
        cap = min(limits.budget_lease, ceiling // 64)
        self._cap = max(1, cap)
        self._block = min(self._cap, _FIRST_BLOCK)
        self._last_refill = time.monotonic()
        self._lock = threading.Lock()
        self._closed = False
        self._pool: Any = None
        self._epoch: bytes | None = None  # the incarnation of the pool the lease came from
        self._client = _client(self._url, limits.budget_pool_timeout_s,
                               limits.budget_pool_ca_bundle)
        try:
            self._take = self._client.register_script(_TAKE)
            self._give_back = self._client.register_script(_GIVE_BACK)
            taken, _ = self._run_take(0, 0)
        except Exception as e:
            self._client.close()
            if isinstance(e, EffectError):
                raise
            raise EffectError(f"{self.where}: cannot use it: {self._describe(e)}") from None
        assert taken == 0
        _LEASES.add(self)

    def bind(self, pool: Any) -> None:
        """The pool this lease fills (for ``os.fork``: see below)."""
        self._pool = pool

    def _forget_copied_lease(self) -> None:
        # A forked child holds a copy of the parent's lease: spending it too
        # would spend those units twice. The child starts with none (the
        # parent still owns them) and refills from the server; a lock some
        # other thread held at the fork would never be released here.
        self._lock = threading.Lock()
        if self._pool is not None:
            self._pool._drain()

    def _describe(self, e: BaseException) -> str:
        text = f"{type(e).__name__}: {e}"
        password = self._url.password
        if password:
            text = text.replace(password, "***")
        return text

    def _run_take(self, need: int, want: int) -> tuple[int, int]:
        reply = self._take(keys=[self._url.key],
                           args=[self._ceiling_arg, need, want, uuid.uuid4().hex])
        taken, other = int(reply[0]), reply[1]
        if taken == -1:
            other = other.decode() if isinstance(other, bytes) else other
            raise EffectError(
                f"{self.where} was created with ceiling {other}; this process asks for "
                f"{self.ceiling} (the first process sets it: use the same --budget, or "
                "reset the pool with `lexfast budget-pool reset URL`)")
        if taken == -2:
            raise EffectError(f"{self.where}: the key holds a hash that is not a budget pool")
        self._epoch = reply[2]
        return taken, int(other)

    def refill(self, pool: Any, cost: int) -> None:
        """Take ``cost`` from ``pool``'s counter, refilling it from the
        server as needed; ``BudgetExceeded`` (nothing taken) when the shared
        pool cannot cover it, ``BudgetPoolUnavailable`` when the server
        cannot be asked."""
        with self._lock:
            if self._pool is None:
                self._pool = pool
            while True:
                if pool._try_take(cost):
                    return
                if self._closed:
                    raise EffectError("note_call_budget: the handler is closed")
                local = pool.local
                # cost > ceiling can never be granted: ask for ceiling + 1 to
                # learn the remainder (Lua's numbers are exact below 2**53)
                need = min(cost - local, self.ceiling + 1)
                now = time.monotonic()
                if now - self._last_refill < _FAST_REFILL_S:
                    self._block = min(self._cap, self._block * 2)
                elif now - self._last_refill > _SLOW_REFILL_S:
                    self._block = max(_FIRST_BLOCK if self._cap >= _FIRST_BLOCK else 1,
                                      self._block // 2)
                self._last_refill = now
                want = max(need, self._block)
                try:
                    taken, left = self._run_take(need, want)
                except EffectError as e:
                    raise BudgetPoolUnavailable(
                        cost, self.ceiling - local, self.ceiling,
                        f"{e}: refused a cost of {cost}") from None
                except Exception as e:
                    raise BudgetPoolUnavailable(
                        cost, self.ceiling - local, self.ceiling,
                        f"{self.where} unreachable ({self._describe(e)}): refused a cost of "
                        f"{cost} (fail-closed: only units the pool granted are spent)") from None
                if taken == 0:
                    raise BudgetExceeded(cost, self.ceiling - left - local, self.ceiling)
                pool._deposit(taken)

    def remaining(self, pool: Any) -> int:
        """The server's remainder plus this process's unspent lease (other
        processes' leases are not counted); the lease alone if the server
        cannot be reached."""
        local = pool.local
        if self._closed:
            return local
        try:
            raw = self._client.hget(self._url.key, "remaining")
        except Exception:
            return local
        try:
            return min(self.ceiling, local + max(0, int(raw)))
        except (TypeError, ValueError):
            return local

    def close(self, pool: Any) -> None:
        """Give the unspent lease back to the server and disconnect. A lease
        that cannot be given back (the server is down) is lost: at most one
        block."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            units = pool._drain()
        try:
            if units and self._epoch is not None:
                self._give_back(keys=[self._url.key],
                                args=[self._ceiling_arg, units, self._epoch])
        except Exception:
            pass
        finally:
            self._client.close()


def pool_status(url: str, timeout: float = 5.0) -> dict[str, int] | None:
    """``{"ceiling": N, "remaining": R}`` of the pool at ``url``, or None if
    it does not exist (``lexfast budget-pool show``)."""
    parsed = parse_budget_pool(url)
    client = _client(parsed, timeout)
    try:
        fields = client.hgetall(parsed.key)
    finally:
        client.close()
    if not fields:
        return None
    try:
        return {"ceiling": int(fields[b"ceiling"]), "remaining": int(fields[b"remaining"])}
    except (KeyError, ValueError):
        raise EffectError(f"budget pool {parsed.redacted}: the key is not a budget pool") from None


def reset_pool(url: str, timeout: float = 5.0) -> bool:
    """Delete the pool at ``url`` (the next process to name it sets its
    ceiling afresh); True if it existed (``lexfast budget-pool reset``)."""
    parsed = parse_budget_pool(url)
    client = _client(parsed, timeout)
    try:
        return bool(client.delete(parsed.key))
    finally:
        client.close()
