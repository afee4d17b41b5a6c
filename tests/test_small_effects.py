"""io, time, datetime, rand, crypto.random, env, budget (docs/behaviour.md §6.2–6.4)."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from lexfast import NONE, EffectError, PolicyDenied, err, ok, some

# -- io -----------------------------------------------------------------------

def test_print_goes_to_the_sink(make_handler):
    h = make_handler(effects=["io"])
    assert h.dispatch("io", "print", ["hello world"]) is None
    assert h.sink.lines == ["hello world"]
    with pytest.raises(PolicyDenied, match="^effect `io` not in --allow-effects$"):
        make_handler().dispatch("io", "print", ["hi"])
    with pytest.raises(EffectError, match=r"^expected Str arg, got Int\(1\)$"):
        h.dispatch("io", "print", [1])


def test_print_to_stdout(capsys):
    from lexfast import DefaultHandler, Policy
    with DefaultHandler(Policy(allow_effects=["io"])) as h:
        h.dispatch("io", "print", ["line"])
    assert capsys.readouterr().out == "line\n"


def test_read_and_write_in_scope(make_handler, tmp_path):
    (tmp_path / "f.txt").write_text("hi")
    h = make_handler(effects=["io"], fs_read=[tmp_path], fs_write=[tmp_path])
    assert h.dispatch("io", "read", [str(tmp_path / "f.txt")]) == ok("hi")
    r = h.dispatch("io", "read", [str(tmp_path / "missing")])
    assert r.name == "Err" and "No such file or directory (os error 2)" == r.args[0]
    assert h.dispatch("io", "write", [str(tmp_path / "out.txt"), "c"]) == ok(None)
    assert (tmp_path / "out.txt").read_text() == "c"
    assert h.dispatch("io", "read", [str(tmp_path)]) == err("Is a directory (os error 21)")
    (tmp_path / "bad").write_bytes(b"\xff\xfe")
    assert h.dispatch("io", "read", [str(tmp_path / "bad")]) == err("stream did not contain valid UTF-8")


def test_read_scope_denials(make_handler, tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "secret.txt").write_text("s")
    h = make_handler(effects=["io"], fs_read=[d / "sub"])
    with pytest.raises(PolicyDenied, match=r"^read of `/etc/passwd` outside --allow-fs-read$") as e:
        h.dispatch("io", "read", ["/etc/passwd"])
    assert e.value.path == "/etc/passwd"
    # docs/behaviour.md §6.2 #18: the reference let `..` escape; lexfast resolves first.
    with pytest.raises(PolicyDenied):
        h.dispatch("io", "read", [f"{d}/sub/../secret.txt"])
    (d / "sub" / "link").symlink_to(d / "secret.txt")
    with pytest.raises(PolicyDenied):
        h.dispatch("io", "read", [f"{d}/sub/link"])
    with pytest.raises(PolicyDenied, match="effect `io`"):
        make_handler(effects=["net"]).dispatch("io", "read", ["/etc/passwd"])


def test_write_scope_denials(make_handler, tmp_path):
    safe = tmp_path / "safe"
    safe.mkdir()
    (tmp_path / "safe2").mkdir()
    h = make_handler(effects=["io"], fs_write=[safe])
    with pytest.raises(PolicyDenied, match=r"^write to `.*/safe2/x` outside --allow-fs-write$"):
        h.dispatch("io", "write", [str(tmp_path / "safe2" / "x"), "c"])
    with pytest.raises(PolicyDenied):
        h.dispatch("io", "write", [f"{safe}/../escape.txt", "c"])
    (safe / "out").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(PolicyDenied):
        h.dispatch("io", "write", [str(safe / "out"), "c"])
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "outside.txt").exists()


def test_read_root_joins_and_confines(make_handler, tmp_path):
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "data" / "x").write_text("x")
    (tmp_path / "secret").write_text("s")
    h = make_handler(effects=["io"], read_root=root)
    assert h.dispatch("io", "read", ["/data/x"]) == ok("x")
    assert h.dispatch("io", "read", ["data/x"]) == ok("x")
    with pytest.raises(PolicyDenied, match="outside the read root"):
        h.dispatch("io", "read", ["../secret"])
    (root / "esc").symlink_to(tmp_path / "secret")
    with pytest.raises(PolicyDenied):
        h.dispatch("io", "read", ["esc"])
    # docs/behaviour.md §6.2 #19: the scope applies to the joined path.
    h2 = make_handler(effects=["io"], fs_read=["/data"], read_root=root)
    with pytest.raises(PolicyDenied, match=r"^read of `/data/x` outside --allow-fs-read$"):
        h2.dispatch("io", "read", ["/data/x"])


def test_read_is_bounded(make_handler, tmp_path):
    from lexfast import Limits
    (tmp_path / "big").write_bytes(b"a" * 2048)
    h = make_handler(effects=["io"], limits=Limits(read_bytes=1024))
    r = h.dispatch("io", "read", [str(tmp_path / "big")])
    assert r.name == "Err" and "1024" in r.args[0]


def test_write_is_atomic_and_keeps_mode(make_handler, tmp_path):
    p = tmp_path / "f"
    p.write_text("old")
    p.chmod(0o640)
    h = make_handler(effects=["io"], fs_write=[tmp_path])
    assert h.dispatch("io", "write", [str(p), "new"]) == ok(None)
    assert p.read_text() == "new" and (p.stat().st_mode & 0o777) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["f"]
    r = h.dispatch("io", "write", [str(tmp_path / "nodir" / "f"), "x"])
    assert r.name == "Err" and "os error 2" in r.args[0]


# -- time, datetime ---------------------------------------------------------------

def test_time(make_handler):
    h = make_handler(effects=["time"])
    now = h.dispatch("time", "now", [])
    assert isinstance(now, int) and now > 1_577_836_800 and abs(now - time.time()) < 5
    t0 = time.monotonic()
    assert h.dispatch("time", "sleep_ms", [0]) is None
    assert h.dispatch("time", "sleep_ms", [-1000]) is None
    assert time.monotonic() - t0 < 0.5
    t0 = time.monotonic()
    h.dispatch("time", "sleep_ms", [50])
    assert time.monotonic() - t0 >= 0.04
    ns = h.dispatch("datetime", "now", [])
    assert 2020 <= dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).year <= 2100
    with pytest.raises(PolicyDenied, match="`time`"):
        make_handler(effects=["io"]).dispatch("datetime", "now", [])


def test_sleep_is_capped_at_60s(make_handler, monkeypatch):
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    make_handler(effects=["time"]).dispatch("time", "sleep_ms", [120_000])
    assert slept == [60.0]


# -- rand, crypto -----------------------------------------------------------------

def test_rand_int_in_is_a_uniform_draw(make_handler):
    h = make_handler(effects=["random"])
    draws = [h.dispatch("rand", "int_in", [3, 7]) for _ in range(500)]
    assert set(draws) == {3, 4, 5, 6, 7}
    assert h.dispatch("rand", "int_in", [42, 42]) == 42
    assert -3 <= h.dispatch("rand", "int_in", [-3, 0]) <= 0
    big = h.dispatch("rand", "int_in", [-(1 << 63), (1 << 63) - 1])
    assert -(1 << 63) <= big < (1 << 63)
    with pytest.raises(EffectError, match=r"^rand.int_in: empty range \[5, 4\]$"):
        h.dispatch("rand", "int_in", [5, 4])
    with pytest.raises(ValueError, match="unknown effect kind `rand`"):
        make_handler(effects=["rand"])  # the family's name grants nothing: refused
    with pytest.raises(PolicyDenied, match="`random`"):
        make_handler(effects=["io"]).dispatch("rand", "int_in", [0, 10])


def test_crypto_random(make_handler):
    h = make_handler(effects=["random"])
    a = h.dispatch("crypto", "random", [32])
    assert isinstance(a, bytes) and len(a) == 32 and a != h.dispatch("crypto", "random", [32])
    assert h.dispatch("crypto", "random", [0]) == b""
    assert len(h.dispatch("crypto", "random", [1_048_576])) == 1_048_576
    for n in (1_048_577, -1):
        with pytest.raises(EffectError, match=r"^crypto.random: n must be in 0..=1048576$"):
            h.dispatch("crypto", "random", [n])
    with pytest.raises(PolicyDenied, match="`random`"):
        make_handler(effects=["crypto"]).dispatch("crypto", "random", [8])


# -- env, budget --------------------------------------------------------------------

def test_env_get(make_handler, monkeypatch):
    monkeypatch.setenv("LEX_TEST_ENV_KEY_FOR_STD_ENV_TESTS", "the_value")
    h = make_handler(effects=["env"])
    assert h.dispatch("env", "get", ["LEX_TEST_ENV_KEY_FOR_STD_ENV_TESTS"]) == some("the_value")
    assert h.dispatch("env", "get", ["LEX_TEST_ENV_KEY_NEVER_SET_xyzzy_42"]) == NONE
    assert h.dispatch("env", "get", [""]) == NONE
    assert h.dispatch("env", "get", ["A=B"]) == NONE
    assert h.dispatch("env", "get", ["A\0B"]) == NONE
    with pytest.raises(PolicyDenied, match="`env`"):
        make_handler().dispatch("env", "get", ["HOME"])


def test_budget_effect_is_nominal(make_handler):
    assert make_handler(effects=["budget"]).dispatch("budget", "anything", []) is None


def test_read_refuses_a_fifo_without_blocking(make_handler, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    h = make_handler(effects=["io"], fs_read=[tmp_path])
    t0 = time.monotonic()
    r = h.dispatch("io", "read", [str(fifo)])
    assert r == err(f"read of `{fifo}`: not a regular file") and time.monotonic() - t0 < 2


def test_openat2_refuses_nul(impl):
    with pytest.raises(ValueError):
        impl.openat2(-100, "/etc\0/passwd", os.O_RDONLY, 0, 0)


@pytest.mark.parametrize("dev", ["/dev/zero", "/dev/null"])
def test_read_refuses_devices(make_handler, dev):
    h = make_handler(effects=["io"])
    assert h.dispatch("io", "read", [dev]) == err(f"read of `{dev}`: not a regular file")
