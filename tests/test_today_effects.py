"""time.now_ms/now_str/mono_ns/sleep, LEX_TEST_NOW, io.readline/argv,
crypto.random_str_hex and the key minters (issue 17; the reference's
std_time_now, time_sleep, std_rand and std_crypto_extras restated)."""

from __future__ import annotations

import datetime as dt
import io
import re
import time

import pytest

import lexfast
from lexfast import NONE, EffectError, Limits, PolicyDenied, ok, some

# -- known kinds ----------------------------------------------------------------

def test_new_kinds_are_known_and_grantable():
    for kind in ("vcs", "approval", "moe", "stream"):
        assert kind in lexfast.KNOWN_EFFECTS
        assert kind in lexfast.Policy.from_flags(["--allow-effects", kind]).allow_effects


# -- time (std_time_now, time_sleep) --------------------------------------------------

def test_now_ms_is_recent_unix_millis(make_handler, monkeypatch):
    monkeypatch.delenv("LEX_TEST_NOW", raising=False)
    h = make_handler(effects=["time"])
    ms = h.dispatch("time", "now_ms", [])
    assert isinstance(ms, int) and ms > 1_577_836_800_000
    assert abs(ms - time.time() * 1000) < 5000


def test_now_str_is_rfc3339_utc(make_handler, monkeypatch):
    monkeypatch.delenv("LEX_TEST_NOW", raising=False)
    s = make_handler(effects=["time"]).dispatch("time", "now_str", [])
    assert len(s) >= 20 and "T" in s and s.endswith("+00:00")
    # at most microseconds for fromisoformat (CPython 3.10 takes no more)
    parsed = dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", s))
    assert parsed.utcoffset() == dt.timedelta(0)
    assert abs(parsed.timestamp() - time.time()) < 5
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?\+00:00", s)


def test_mono_ns_is_non_decreasing(make_handler):
    h = make_handler(effects=["time"])
    a = h.dispatch("time", "mono_ns", [])
    b = h.dispatch("time", "mono_ns", [])
    assert 0 <= a <= b


def test_lex_test_now_pins_the_wall_clocks(make_handler, monkeypatch):
    h = make_handler(effects=["time"])
    monkeypatch.setenv("LEX_TEST_NOW", "1700000000")
    assert h.dispatch("time", "now", []) == 1_700_000_000
    assert h.dispatch("time", "now_ms", []) == 1_700_000_000_000
    assert h.dispatch("datetime", "now", []) == 1_700_000_000 * 10**9
    monkeypatch.setenv("LEX_TEST_NOW", " 1577836800\n")
    assert h.dispatch("time", "now_str", []) == "2020-01-01T00:00:00+00:00"
    # mono_ns is never pinned
    assert h.dispatch("time", "mono_ns", []) != 1_577_836_800 * 10**9
    # saturating, as the reference's saturating_mul
    monkeypatch.setenv("LEX_TEST_NOW", str(2**63 - 1))
    assert h.dispatch("time", "now_ms", []) == 2**63 - 1
    assert h.dispatch("datetime", "now", []) == 2**63 - 1
    monkeypatch.setenv("LEX_TEST_NOW", str(-(2**63)))
    assert h.dispatch("datetime", "now", []) == -(2**63)
    # chrono's years outside 0..=9999, and its range (else the real clock)
    monkeypatch.setenv("LEX_TEST_NOW", "253402300800")
    assert h.dispatch("time", "now_str", []) == "+10000-01-01T00:00:00+00:00"
    monkeypatch.setenv("LEX_TEST_NOW", "-62135596801")
    assert h.dispatch("time", "now_str", []) == "0000-12-31T23:59:59+00:00"
    monkeypatch.setenv("LEX_TEST_NOW", str(2**62))
    assert h.dispatch("time", "now_str", []).startswith(str(dt.datetime.now(dt.timezone.utc).year))
    # not an i64: ignored (the real clock), as in the reference
    for bad in ("", "1.5", "1_000", "0x10", "nan", str(2**63), "12a"):
        monkeypatch.setenv("LEX_TEST_NOW", bad)
        assert abs(h.dispatch("time", "now", []) - time.time()) < 5, bad


def test_sleep_takes_a_duration_in_ns(make_handler):
    h = make_handler(effects=["time"])
    t0 = time.monotonic()
    assert h.dispatch("time", "sleep", [0]) is None
    assert h.dispatch("time", "sleep", [-10**9]) is None
    assert h.dispatch("time", "sleep", [-(2**63)]) is None
    assert time.monotonic() - t0 < 2
    t0 = time.monotonic()
    h.dispatch("time", "sleep", [50_000_000])
    assert time.monotonic() - t0 >= 0.045
    with pytest.raises(EffectError, match=r"^expected Int arg, got Float\(0\.5\)$"):
        h.dispatch("time", "sleep", [0.5])
    with pytest.raises(PolicyDenied, match="^effect `time` not in --allow-effects$"):
        make_handler(effects=["io"]).dispatch("time", "sleep", [1])


@pytest.mark.parametrize("op", ["now", "now_ms", "now_str", "mono_ns", "sleep"])
def test_time_ops_are_gated(make_handler, op):
    with pytest.raises(PolicyDenied, match="^effect `time` not in --allow-effects$"):
        make_handler(effects=["io", "random"]).dispatch("time", op, [0])


# -- crypto (std_crypto_extras, std_rand) --------------------------------------------------

def test_random_str_hex(make_handler):
    h = make_handler(effects=["random"])
    s = h.dispatch("crypto", "random_str_hex", [16])
    assert re.fullmatch(r"[0-9a-f]{32}", s)
    assert h.dispatch("crypto", "random_str_hex", [0]) == ""
    assert h.dispatch("crypto", "random_str_hex", [32]) != h.dispatch("crypto", "random_str_hex", [32])
    for n in (-1, 1_048_577, 2**63 - 1):
        with pytest.raises(EffectError, match=r"^crypto\.random_str_hex: n must be in 0\.\.=1048576$"):
            h.dispatch("crypto", "random_str_hex", [n])
    with pytest.raises(EffectError, match=r"^expected Int arg, got Str"):
        h.dispatch("crypto", "random_str_hex", ["16"])
    with pytest.raises(PolicyDenied, match="^effect `random` not in --allow-effects$"):
        make_handler(effects=["crypto"]).dispatch("crypto", "random_str_hex", [4])


@pytest.mark.parametrize("op,curve", [("p256_generate", "SECP256R1"),
                                      ("secp256k1_generate", "SECP256K1")])
def test_key_minters_give_valid_secret_scalars(make_handler, op, curve):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    h = make_handler(effects=["random"])
    r1 = h.dispatch("crypto", op, [])
    r2 = h.dispatch("crypto", op, [])
    assert r1.name == "Ok" and isinstance(r1.args[0], bytes) and len(r1.args[0]) == 32
    assert r1 != r2
    # a real key: cryptography accepts the scalar and signs with it
    key = ec.derive_private_key(int.from_bytes(r1.args[0], "big"), getattr(ec, curve)())
    sig = key.sign(b"msg", ec.ECDSA(hashes.SHA256()))
    key.public_key().verify(sig, b"msg", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(PolicyDenied, match="^effect `random` not in --allow-effects$"):
        make_handler(effects=["crypto"]).dispatch("crypto", op, [])


def test_minted_key_signs_with_the_crypto_builtins(make_handler):
    # the pure builtins accept what the effect mints
    h = make_handler(effects=["random"])
    sk = h.dispatch("crypto", "p256_generate", []).args[0]
    try:
        sig = h.dispatch("crypto", "p256_sign", [sk, b"msg"])
    except EffectError as e:  # pragma: no cover - the builtin's shape differs
        pytest.skip(f"crypto.p256_sign: {e}")
    assert sig.name == "Ok"


# -- io.readline / io.argv ---------------------------------------------------------------

def test_readline_reads_lines_then_none(make_handler):
    h = make_handler(effects=["io"])
    h.with_input(io.BytesIO(b"first\nsecond\r\n\nno newline"))
    assert h.dispatch("io", "readline", []) == some("first")
    assert h.dispatch("io", "readline", []) == some("second")
    assert h.dispatch("io", "readline", []) == some("")
    assert h.dispatch("io", "readline", []) == some("no newline")
    assert h.dispatch("io", "readline", []) == NONE
    assert h.dispatch("io", "readline", []) == NONE
    h.with_input(io.StringIO("text stream\n"))
    assert h.dispatch("io", "readline", []) == some("text stream")
    with pytest.raises(PolicyDenied, match="^effect `io` not in --allow-effects$"):
        make_handler(effects=["time"]).dispatch("io", "readline", [])


def test_readline_is_bounded_and_strict(make_handler):
    h = make_handler(effects=["io"], limits=Limits(readline_bytes=8))
    h.with_input(io.BytesIO(b"12345678\n" + b"x" * 100 + b"\nafter\n\xff\xfe\nok\n"))
    assert h.dispatch("io", "readline", []) == some("12345678")
    with pytest.raises(EffectError, match=r"^io\.readline: line longer than 8 bytes$"):
        h.dispatch("io", "readline", [])
    assert h.dispatch("io", "readline", []) == some("after")  # the long line's rest skipped
    with pytest.raises(EffectError, match=r"^io\.readline: stream did not contain valid UTF-8$"):
        h.dispatch("io", "readline", [])
    assert h.dispatch("io", "readline", []) == some("ok")
    closed = io.BytesIO(b"x\n")
    closed.close()
    h.with_input(closed)
    assert h.dispatch("io", "readline", []) == NONE  # unreadable: the reference's None
    with pytest.raises(TypeError):
        h.with_input(object())


def test_readline_default_is_stdin(make_handler, monkeypatch):
    h = make_handler(effects=["io"])
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"from stdin\n")))
    assert h.dispatch("io", "readline", []) == some("from stdin")
    assert h.dispatch("io", "readline", []) == NONE

    class Unreadable:  # pytest's captured stdin raises OSError: the reference's None
        def readline(self, n=-1):
            raise OSError("reading from stdin while output is captured")
    monkeypatch.setattr("sys.stdin", Unreadable())
    assert h.dispatch("io", "readline", []) == NONE
    monkeypatch.setattr("sys.stdin", None)  # pythonw, a daemon
    assert h.dispatch("io", "readline", []) == NONE


def test_argv(make_handler):
    h = make_handler(effects=["io"])
    assert h.dispatch("io", "argv", []) == []
    h.with_program_args(["a", "b c", ""])
    assert h.dispatch("io", "argv", []) == ["a", "b c", ""]
    assert h.fork().dispatch("io", "argv", []) == ["a", "b c", ""]
    with pytest.raises(TypeError):
        h.with_program_args("ab")
    with pytest.raises(TypeError):
        h.with_program_args([1])
    with pytest.raises(PolicyDenied, match="^effect `io` not in --allow-effects$"):
        make_handler(effects=["time"]).dispatch("io", "argv", [])


def test_ok_shapes():
    assert ok("x").name == "Ok"
