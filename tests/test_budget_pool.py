"""A budget shared across processes (issue 18): ``Policy(budget=N,
budget_pool="redis://host:port/key")``, against a real redis-server.

The cross-process tests start real ``python`` children on the core this run
uses (``LEXFAST_NO_EXTENSIONS`` follows ``lexfast.COMPILED``), each with its
own handler on one pool; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest

import lexfast
from lexfast import BudgetExceeded, DefaultHandler, EffectError, Policy
from lexfast.budget_pool import RedisLease, pool_status, reset_pool
from lexfast.errors import BudgetPoolUnavailable
from lexfast.handler import Limits
from lexfast.policy import POOL_BUDGET_MAX, parse_budget_pool, parse_flags

_PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(lexfast.__file__)))
_CHILD_TIMEOUT_S = 300


def _url(server, key=None, auth=""):
    return f"redis://{auth}127.0.0.1:{server.port}/{key or 'lexfast-test-' + uuid.uuid4().hex}"


@pytest.fixture
def pool_url(redis_server):
    url = _url(redis_server)
    yield url
    reset_pool(url)


def _child_env():
    env = dict(os.environ, PYTHONPATH=_PKG_PARENT)
    if lexfast.COMPILED:
        env.pop("LEXFAST_NO_EXTENSIONS", None)
    else:
        env["LEXFAST_NO_EXTENSIONS"] = "1"
    return env


def _spawn(code, *args, cwd):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            env=_child_env(), text=True)


def _finish(procs):
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=_CHILD_TIMEOUT_S)
            assert p.returncode == 0, stderr
            out.append(json.loads(stdout))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=30)
    return out


# -- the policy ---------------------------------------------------------------

def test_policy_carries_the_pool_and_never_shows_its_password():
    url = "redis://agent:s3cret@pool.example:6380/fleet%2Fbudget"
    p = Policy(budget=100, budget_pool=url)
    assert p.budget_pool == url
    assert "s3cret" not in repr(p) and "redis://pool.example:6380/fleet%2Fbudget" in repr(p)
    assert pickle.loads(pickle.dumps(p)) == p
    assert p.replace(budget=5).budget_pool == url
    assert p != Policy(budget=100)
    parsed = parse_budget_pool(url)
    assert (parsed.host, parsed.port, parsed.username, parsed.password, parsed.key, parsed.tls) \
        == ("pool.example", 6380, "agent", "s3cret", "fleet/budget", False)
    assert parse_budget_pool("rediss://h/k").tls and parse_budget_pool("rediss://h/k").port == 6379


@pytest.mark.parametrize(("url", "fragment"), [
    ("http://h/k", "redis:// or rediss://"),
    ("redis://h", "needs a key"),
    ("redis://h/", "needs a key"),
    ("redis:///k", "needs a host"),
    ("redis://h:99999/k", "not a valid URL"),
    ("redis://h/k?db=1", "no ?query"),
    ("redis://h/k k", "whitespace"),
])
def test_bad_pool_urls_are_refused_by_name(url, fragment):
    with pytest.raises(ValueError, match="budget_pool") as e:
        Policy(budget=1, budget_pool=url)
    assert fragment in str(e.value)


def test_a_pool_needs_a_budget_within_lua_exact_integers():
    with pytest.raises(ValueError, match="needs a budget"):
        Policy(budget_pool="redis://h/k")
    with pytest.raises(ValueError, match="pooled budget"):
        Policy(budget=POOL_BUDGET_MAX + 1, budget_pool="redis://h/k")
    with pytest.raises(TypeError):
        Policy(budget=1, budget_pool=b"redis://h/k")  # type: ignore[arg-type]


def test_the_budget_pool_flag():
    policy, rest = parse_flags(["--budget", "7", "--budget-pool=redis://h/k", "x"])
    assert (policy.budget, policy.budget_pool, rest) == (7, "redis://h/k", ["x"])
    with pytest.raises(ValueError, match="needs a budget"):
        parse_flags(["--budget-pool", "redis://h/k"])
    with pytest.raises(ValueError, match="given twice"):
        parse_flags(["--budget", "1", "--budget-pool", "redis://h/a", "--budget-pool", "redis://h/b"])


# -- one process --------------------------------------------------------------

def test_a_pooled_handler_spends_the_shared_ceiling_and_returns_its_lease(pool_url):
    h = DefaultHandler(Policy(budget=10_000, budget_pool=pool_url))
    assert h.budget_ceiling == 10_000 and h.budget_remaining == 10_000
    assert pool_status(pool_url) == {"ceiling": 10_000, "remaining": 10_000}
    for _ in range(100):
        h.note_call_budget(1)
    h.fork().note_call_budget(50)  # forks share the lease
    assert h.budget_remaining == 10_000 - 150
    lease = h._pool.local
    assert lease > 0
    assert pool_status(pool_url)["remaining"] == 10_000 - 150 - lease
    h.note_call_budget(9_000)  # larger than any block: taken in one refill
    with pytest.raises(BudgetExceeded) as e:
        h.note_call_budget(851)
    assert (e.value.requested, e.value.ceiling) == (851, 10_000)
    h.note_call_budget(850)
    assert h.budget_remaining == 0
    with pytest.raises(BudgetExceeded):
        h.note_call_budget(1)
    h.note_call_budget(0)
    h.close()
    assert pool_status(pool_url) == {"ceiling": 10_000, "remaining": 0}
    with pytest.raises(EffectError, match="closed"):
        h.note_call_budget(1)


def test_close_gives_back_exactly_the_unspent_lease(pool_url):
    with DefaultHandler(Policy(budget=1_000_000, budget_pool=pool_url)) as h:
        for _ in range(1234):
            h.note_call_budget(1)
    assert pool_status(pool_url)["remaining"] == 1_000_000 - 1234
    with DefaultHandler(Policy(budget=1_000_000, budget_pool=pool_url)) as h2:
        assert h2.budget_remaining == 1_000_000 - 1234  # the remainder outlives a run
        with pytest.raises(BudgetExceeded):
            h2.note_call_budget(1_000_000)
        with pytest.raises(BudgetExceeded):
            h2.note_call_budget(2**64)  # past any counter: refused, not an error
    assert pool_status(pool_url)["remaining"] == 1_000_000 - 1234


def test_a_lease_is_not_given_back_into_a_pool_reset_meanwhile(pool_url):
    h = DefaultHandler(Policy(budget=100_000, budget_pool=pool_url))
    try:
        for _ in range(10):
            h.note_call_budget(1)
        assert h._pool.local > 0
        assert reset_pool(pool_url)
        with DefaultHandler(Policy(budget=100_000, budget_pool=pool_url)) as h2:
            assert h2.budget_remaining == 100_000  # a fresh pool, full
    finally:
        h.close()  # its lease came from the pool that was reset: not added to the new one
    assert pool_status(pool_url) == {"ceiling": 100_000, "remaining": 100_000}


def test_bad_costs_are_refused_before_the_pool(pool_url):
    with DefaultHandler(Policy(budget=10, budget_pool=pool_url)) as h:
        with pytest.raises(EffectError, match="non-negative"):
            h.note_call_budget(-1)
        with pytest.raises(EffectError, match="must be Int"):
            h.note_call_budget(1.5)
        with pytest.raises(EffectError, match="must be Int"):
            h.note_call_budget(True)
        assert h.budget_remaining == 10


def test_a_different_ceiling_on_the_same_pool_is_refused_naming_both(pool_url):
    with DefaultHandler(Policy(budget=500, budget_pool=pool_url)):
        with pytest.raises(EffectError) as e:
            DefaultHandler(Policy(budget=600, budget_pool=pool_url))
    assert "ceiling 500" in str(e.value) and "600" in str(e.value)
    assert "budget-pool reset" in str(e.value)
    reset_pool(pool_url)
    with DefaultHandler(Policy(budget=600, budget_pool=pool_url)) as h:
        assert h.budget_ceiling == 600 and h.budget_remaining == 600


def test_a_key_that_is_not_a_pool_is_refused(redis_server, pool_url):
    import redis
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        key = parse_budget_pool(pool_url).key
        client.set(key, "hello")
        with pytest.raises(EffectError, match="budget pool .*cannot use it"):
            DefaultHandler(Policy(budget=5, budget_pool=pool_url))
        client.delete(key)
        client.hset(key, "ceiling", "5")
        with pytest.raises(EffectError, match="not a budget pool"):
            DefaultHandler(Policy(budget=5, budget_pool=pool_url))
    finally:
        client.close()


def test_an_unreachable_pool_fails_construction_without_its_password(servers):
    url = f"redis://agent:hunter2@127.0.0.1:{servers.free_port()}/k"
    with pytest.raises(EffectError) as e:
        DefaultHandler(Policy(budget=5, budget_pool=url))
    assert "hunter2" not in str(e.value)
    assert f"budget pool redis://127.0.0.1:{url.rsplit(':', 1)[1]}" in str(e.value)
    assert "ConnectionError" in str(e.value)


def test_a_wrong_password_fails_construction_without_echoing_it(servers, tmp_path):
    server = servers.start_redis(str(tmp_path / "r"), password="right-one")
    try:
        with pytest.raises(EffectError) as e:
            DefaultHandler(Policy(budget=5, budget_pool=_url(server, auth=":wrong-one@")))
        assert "wrong-one" not in str(e.value) and "right-one" not in str(e.value)
        url = _url(server, auth=":right-one@")
        with DefaultHandler(Policy(budget=5, budget_pool=url)) as h:
            h.note_call_budget(5)
    finally:
        server.stop()


def test_a_pool_runs_under_the_acl_user_security_md_recommends(servers, tmp_path):
    import redis
    server = servers.start_redis(str(tmp_path / "r"))
    admin = redis.Redis(host="127.0.0.1", port=server.port)
    try:
        admin.execute_command("ACL", "SETUSER", "budget", "on", ">pool-pw", "~fleet-*",
                              "+evalsha", "+script|load", "+hget", "+hgetall", "+hset",
                              "+hincrby", "+del")
        url = _url(server, "fleet-a", auth="budget:pool-pw@")
        with DefaultHandler(Policy(budget=1000, budget_pool=url)) as h:
            for _ in range(300):
                h.note_call_budget(1)
            assert h.budget_remaining == 700
        assert pool_status(url) == {"ceiling": 1000, "remaining": 700}
        assert reset_pool(url)
        with pytest.raises(EffectError, match="NoPermission") as e:
            DefaultHandler(Policy(budget=5, budget_pool=_url(server, "other",
                                                             auth="budget:pool-pw@")))
        assert "pool-pw" not in str(e.value)
    finally:
        admin.close()
        server.stop()


def test_a_rediss_pool_verifies_the_server_certificate(servers, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    for name, blob in (("ca.pem", ca.cert_pem), ("key.pem", cert.private_key_pem),
                       ("cert.pem", cert.cert_chain_pems[0])):
        blob.write_to_path(str(tmp_path / name))
    binary = servers.find_binary("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = servers.free_port()
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(tmp_path / "cert.pem"), "--tls-key-file", str(tmp_path / "key.pem"),
         "--tls-ca-cert-file", str(tmp_path / "ca.pem"), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        servers._wait_port(port, proc, "redis-server (TLS)")
        url = f"rediss://127.0.0.1:{port}/pool"
        with pytest.raises(EffectError, match="budget pool rediss://127.0.0.1"):
            DefaultHandler(Policy(budget=9, budget_pool=url))  # the system store: refused
        limits = Limits(budget_pool_ca_bundle=str(tmp_path / "ca.pem"))
        with DefaultHandler(Policy(budget=9, budget_pool=url), limits=limits) as h:
            h.note_call_budget(4)
            assert h.budget_remaining == 5
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_pool_without_the_redis_client_names_the_extra(monkeypatch, redis_server):
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` does without it
    with pytest.raises(EffectError, match=r"lexfast\[redis\]"):
        DefaultHandler(Policy(budget=5, budget_pool=_url(redis_server)))


def test_a_server_lost_mid_run_refuses_fail_closed_then_recovers(servers, tmp_path):
    server = servers.start_redis(str(tmp_path / "r"))
    try:
        url = _url(server)
        limits = Limits(budget_lease=10, budget_pool_timeout_s=2.0)
        h = DefaultHandler(Policy(budget=1000, budget_pool=url), limits=limits)
        h.note_call_budget(1)
        lease = h._pool.local
        assert 0 < lease <= 10
        server.stop()
        for _ in range(lease):  # the lease is this process's: still spendable
            h.note_call_budget(1)
        with pytest.raises(BudgetPoolUnavailable) as e:
            h.note_call_budget(1)
        assert isinstance(e.value, BudgetExceeded)
        assert "unreachable" in str(e.value) and "fail-closed" in str(e.value)
        assert pickle.loads(pickle.dumps(e.value)).args == e.value.args
        assert h.budget_remaining == 0  # the lease alone while the server is away
        h.close()  # nothing to give back, and no hang
        from lexfast.record import _error_from, _error_tree
        back = _error_from(_error_tree(e.value), "trace")  # recorded and replayed as itself
        assert type(back) is BudgetPoolUnavailable and back.args == e.value.args
    finally:
        server.stop()


def test_a_dropped_connection_is_reopened_by_a_later_refill(redis_server, pool_url):
    import redis
    h = DefaultHandler(Policy(budget=100, budget_pool=pool_url),
                       limits=Limits(budget_lease=1, budget_pool_timeout_s=2.0))
    admin = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        h.note_call_budget(1)
        admin.client_kill_filter(_type="normal", skipme=True)  # the lease's connection too
        spent = 1
        for _ in range(2):  # a refill may fail on the dropped connection; never both
            try:
                h.note_call_budget(1)
                spent += 1
            except BudgetPoolUnavailable:
                pass
        assert spent >= 2
        assert int(admin.hget(parse_budget_pool(pool_url).key, "remaining")) == 100 - spent
    finally:
        h.close()
        admin.close()


def test_threads_of_one_process_share_the_lease_exactly(pool_url):
    h = DefaultHandler(Policy(budget=20_000, budget_pool=pool_url))
    spent = [0] * 4

    def work(i):
        f = h.fork()
        while True:
            try:
                f.note_call_budget(3)
            except BudgetExceeded:
                return
            spent[i] += 3

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    h.close()
    assert sum(spent) <= 20_000
    assert sum(spent) + pool_status(pool_url)["remaining"] == 20_000


def test_the_kernel_pools_of_both_cores_take_a_lease(impl, pool_url):
    lease = RedisLease(pool_url, 100, Limits(budget_lease=8))
    pool = impl.BudgetPool(100, lease)
    try:
        assert (pool.local, pool.ceiling, pool.lease) == (0, 100, lease)
        pool.take(5)
        assert 0 <= pool.local <= 8 and pool.remaining == 95
        with pytest.raises(BudgetExceeded):
            pool.take(96)
        pool.take(95)
        assert pool.remaining == 0
    finally:
        lease.close(pool)
    assert pool_status(pool_url)["remaining"] == 0
    with pytest.raises(ValueError, match="needs a ceiling"):
        impl.BudgetPool(None, lease)


# -- many processes ---------------------------------------------------------------

_DEDUCT = """
import json, sys
from lexfast import BudgetExceeded, DefaultHandler, Policy
url, budget, n, cost = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
h = DefaultHandler(Policy(budget=budget, budget_pool=url))
note = h.note_call_budget
ok = refused = 0
for _ in range(n):  # until the first refusal, or n deductions
    try:
        note(cost)
        ok += 1
    except BudgetExceeded:
        refused = 1
        break
h.close()
print(json.dumps({"ok": ok, "refused": refused}))
"""


def test_eight_processes_share_one_ceiling_exactly(pool_url, tmp_path):
    """8 processes x up to 100k deductions of 1 against a 500k pool, each
    until its first refusal: not one unit over, and every unit spent. (A
    process refused holds no lease and saw the server empty; so when the last
    one is refused every lease is spent. Only a process that made all its
    100k deductions can give back a lease nobody is left to spend.)"""
    budget, n = 500_000, 100_000
    procs = [_spawn(_DEDUCT, pool_url, budget, n, 1, cwd=tmp_path) for _ in range(8)]
    results = _finish(procs)
    spent = sum(r["ok"] for r in results)
    left = pool_status(pool_url)["remaining"]
    assert spent <= budget
    assert spent + left == budget  # every lease came back
    if all(r["refused"] for r in results):
        assert (spent, left) == (budget, 0)
    else:  # some process made its 100k first: it may have given back its lease
        assert any(r["ok"] == n for r in results)


def test_uneven_costs_across_processes_never_overspend(pool_url, tmp_path):
    budget = 100_003
    costs = (1, 2, 3, 5, 7, 11)
    procs = [_spawn(_DEDUCT, pool_url, budget, 20_000, cost, cwd=tmp_path) for cost in costs]
    results = _finish(procs)
    spent = sum(r["ok"] * c for r, c in zip(results, costs, strict=True))
    left = pool_status(pool_url)["remaining"]
    assert spent + left == budget  # nothing over, nothing lost: every lease came back
    assert any(r["refused"] for r in results)


def test_a_process_killed_holding_its_lease_loses_at_most_one_block(pool_url, tmp_path):
    code = """
    import os, sys
    from lexfast import DefaultHandler, Policy
    from lexfast.handler import Limits
    h = DefaultHandler(Policy(budget=10_000_000, budget_pool=sys.argv[1]),
                       limits=Limits(budget_lease=500))
    for _ in range(10_000):
        h.note_call_budget(1)
    print('{"lease": %d}' % h._pool.local, flush=True)
    os._exit(0)  # no close: the lease is not given back
    """
    (result,) = _finish([_spawn(code, pool_url, cwd=tmp_path)])
    lost = 10_000_000 - 10_000 - pool_status(pool_url)["remaining"]
    assert lost == result["lease"] <= 500


def test_a_forked_child_does_not_spend_the_parents_lease(pool_url, tmp_path):
    code = """
    import json, os, sys
    from lexfast import DefaultHandler, Policy
    h = DefaultHandler(Policy(budget=100_000, budget_pool=sys.argv[1]))
    for _ in range(200):
        h.note_call_budget(1)
    lease = h._pool.local
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no copy of the lease; it refills on its own
        os.close(r)
        copied = h._pool.local
        for _ in range(300):
            h.note_call_budget(1)
        h.close()
        os.write(w, json.dumps({"copied": copied}).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        child = json.loads(f.read() or "{}")
    _, status = os.waitpid(pid, 0)
    h.close()
    print(json.dumps({"lease": lease, "child": child, "status": status}))
    """
    (result,) = _finish([_spawn(code, pool_url, cwd=tmp_path)])
    assert result["lease"] > 0 and result["status"] == 0
    assert result["child"] == {"copied": 0}
    assert pool_status(pool_url)["remaining"] == 100_000 - 500


# -- the command line -----------------------------------------------------------

def _lexfast(*args, cwd, input=None):
    return subprocess.run([sys.executable, "-m", "lexfast", *args], input=input, text=True,
                          capture_output=True, cwd=cwd, env=_child_env(), timeout=120)


def test_host_processes_share_a_pool_from_the_flag(pool_url, tmp_path):
    requests = "".join(f'{{"id": {i}, "budget": 4}}\n' for i in range(5))
    first = _lexfast("host", "--budget", "30", "--budget-pool", pool_url, cwd=tmp_path,
                     input=requests)
    second = _lexfast("host", "--budget", "30", "--budget-pool", pool_url, cwd=tmp_path,
                      input=requests)
    replies = [json.loads(line) for p in (first, second) for line in p.stdout.splitlines()]
    assert sum("ok" in r for r in replies) == 7  # 7 x 4 = 28 of 30
    assert all(r["type"] == "BudgetExceeded" for r in replies if "ok" not in r)
    assert pool_status(pool_url)["remaining"] == 2


def test_host_refuses_an_unreachable_pool_at_start(servers, tmp_path):
    url = f"redis://:pw-never-shown@127.0.0.1:{servers.free_port()}/k"
    p = _lexfast("host", "--budget", "3", "--budget-pool", url, cwd=tmp_path, input="")
    assert p.returncode == 2
    assert "budget pool redis://127.0.0.1" in p.stderr and "pw-never-shown" not in p.stderr
    p = _lexfast("host", "--budget-pool", url, cwd=tmp_path, input="")
    assert p.returncode == 2 and "needs a budget" in p.stderr


def test_budget_pool_show_and_reset(pool_url, tmp_path):
    p = _lexfast("budget-pool", "show", pool_url, cwd=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["exists"] is False
    with DefaultHandler(Policy(budget=40, budget_pool=pool_url)) as h:
        h.note_call_budget(15)
    p = _lexfast("budget-pool", "show", pool_url, cwd=tmp_path)
    assert json.loads(p.stdout) == {"pool": pool_url, "exists": True, "ceiling": 40,
                                    "remaining": 25}
    p = _lexfast("budget-pool", "reset", pool_url, cwd=tmp_path)
    assert p.returncode == 0 and "deleted" in p.stdout
    assert pool_status(pool_url) is None
    p = _lexfast("budget-pool", "show", "http://h/k", cwd=tmp_path)
    assert p.returncode == 2 and "redis://" in p.stderr
