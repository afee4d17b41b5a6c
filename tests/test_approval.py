"""approval.request: the policy scope, the sinks, and the command's prompt
and peer protocol (issue 17; the reference's approval_effect restated)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

import lexfast
from lexfast import DefaultHandler, EffectError, Policy, PolicyDenied, err, ok

NO_SINK = "no ApprovalSink configured — call DefaultHandler::with_approval_sink"


def fixed(answer):
    return lambda scope, reason: answer


# -- approval_effect.rs -----------------------------------------------------------

def test_without_sink_is_refused(make_handler):
    h = make_handler(effects=["approval"])
    assert h.dispatch("approval", "request", ["payment", "refund $50"]) == err(NO_SINK)


def test_with_sink_returns_operator_answer(make_handler):
    seen = []
    h = make_handler(effects=["approval"])
    h.with_approval_sink(lambda scope, reason: seen.append((scope, reason)) or "approved")
    assert h.dispatch("approval", "request", ["payment", "refund $50"]) == ok("approved")
    assert seen == [("payment", "refund $50")]
    assert h.fork().dispatch("approval", "request", ["payment", "x"]) == ok("approved")


def test_scope_outside_allow_approval_is_refused(make_handler):
    h = DefaultHandler(Policy(allow_effects=["approval"], allow_approval=["deploy", "a\"b"]))
    asked = []
    h.with_approval_sink(lambda s, r: asked.append(s) or "approved")
    r = h.dispatch("approval", "request", ["payment", "refund $50"])
    assert r == err('approval.request: scope `payment` not in --allow-approval ["deploy", "a\\"b"]')
    assert asked == []  # never reached the operator
    assert h.dispatch("approval", "request", ["deploy", "v2"]) == ok("approved")
    # exact match: no prefixes, no case folding
    for scope in ("deplo", "Deploy", "deploy ", "deploy\n"):
        assert h.dispatch("approval", "request", [scope, "x"]).name == "Err"
    r = h.dispatch("approval", "request", ["pay\nforged line", "x"])
    assert "\n" not in r.args[0]
    h.close()


def test_empty_allow_approval_is_any_scope(make_handler):
    h = make_handler(effects=["approval"])
    h.with_approval_sink(fixed("approved"))
    assert h.dispatch("approval", "request", ["anything", "reason"]) == ok("approved")


def test_without_the_effect_is_rejected(make_handler):
    h = make_handler(effects=["io"])
    h.with_approval_sink(fixed("approved"))
    with pytest.raises(PolicyDenied, match="^effect `approval` not in --allow-effects$"):
        h.dispatch("approval", "request", ["payment", "reason"])


# -- lexfast's own -----------------------------------------------------------------

def test_sink_answers_and_failures(make_handler):
    h = make_handler(effects=["approval"])
    for answer, want in ((None, err("denied by operator")), (err("too big"), err("too big")),
                         (ok("yes"), ok("yes")), ("", ok(""))):
        h.with_approval_sink(fixed(answer))
        assert h.dispatch("approval", "request", ["s", "r"]) == want
    for bad in (1, b"yes", ok(1), lexfast.some("x"), True):
        h.with_approval_sink(fixed(bad))
        r = h.dispatch("approval", "request", ["s", "r"])
        assert r.name == "Err" and "the approval sink answered" in r.args[0], bad

    def boom(scope, reason):
        raise RuntimeError("dashboard down")
    h.with_approval_sink(boom)
    assert h.dispatch("approval", "request", ["s", "r"]) == \
        err("approval.request: the approval sink failed: dashboard down")
    h.with_approval_sink(None)
    assert h.dispatch("approval", "request", ["s", "r"]) == err(NO_SINK)
    with pytest.raises(TypeError):
        h.with_approval_sink("yes")


def test_bad_arguments(make_handler):
    h = make_handler(effects=["approval"])
    h.with_approval_sink(fixed("ok"))
    with pytest.raises(EffectError, match=r"^expected Str arg, got Int\(1\)$"):
        h.dispatch("approval", "request", [1, "r"])
    with pytest.raises(EffectError, match="^missing argument"):
        h.dispatch("approval", "request", ["s"])
    assert h.dispatch("approval", "request", ["s" * 2000, "r"]).name == "Err"
    assert h.dispatch("approval", "request", ["s", "r" * 70_000]).name == "Err"
    with pytest.raises(EffectError, match=r"^unsupported effect approval\.grant$"):
        h.dispatch("approval", "grant", ["s"])


def test_policy_field():
    p = Policy(allow_effects=["approval"])
    assert p.wildcard_scopes() == {"approval": ("--allow-approval",)}
    assert Policy(allow_effects=["approval"], allow_approval=["a"]).wildcard_scopes() == {}
    with pytest.raises(TypeError):
        Policy(allow_approval="deploy")
    with pytest.raises(ValueError):
        Policy(allow_approval=[""])


# -- the command ------------------------------------------------------------------

_PYPATH = os.path.dirname(os.path.dirname(lexfast.__file__))
T = 30


def cmd(tmp_path, *args, input=b""):
    env = {**os.environ, "PYTHONPATH": _PYPATH}
    return subprocess.run([sys.executable, "-m", "lexfast", *args], input=input,
                          capture_output=True, cwd=tmp_path, env=env, timeout=T)


def jl(*reqs) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in reqs)


ASK = {"id": 1, "kind": "approval", "op": "request", "args": ["deploy", "ship v2"]}


def test_command_refuses_by_default(tmp_path):
    p = cmd(tmp_path, "host", "--allow-effects", "approval", "--allow-approval", "deploy",
            input=jl(ASK))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"id": 1, "ok": {"$variant": "Err", "args": [NO_SINK]}}


def test_command_prompt_reads_the_answer_from_stdin(tmp_path):
    f = tmp_path / "reqs.jsonl"
    f.write_bytes(jl(ASK, {**ASK, "id": 2}, {**ASK, "id": 3}, {"id": 4, "kind": "io", "op": "readline"}))
    p = cmd(tmp_path, "run", "--allow-effects", "approval,io", "--allow-approval", "deploy",
            "--allow-fs-read", str(tmp_path), "--allow-fs-write", str(tmp_path),
            "--approval", "prompt", str(f), input=b"yes, go\nn\n\nleft over\n")
    assert p.returncode == 0, p.stderr
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert out == [{"id": 1, "ok": {"$variant": "Ok", "args": ["yes, go"]}},
                   {"id": 2, "ok": {"$variant": "Err", "args": ["denied by operator"]}},
                   {"id": 3, "ok": {"$variant": "Err", "args": ["denied by operator"]}},
                   {"id": 4, "ok": {"$variant": "Some", "args": ["left over"]}}]
    assert p.stderr.decode().count("[approval:deploy] ship v2  (blank/n to deny) > ") == 3


def test_command_prompt_escapes_the_program_text(tmp_path):
    f = tmp_path / "reqs.jsonl"
    f.write_bytes(jl({"kind": "approval", "op": "request", "args": ["a\x1b[2J", "b\nc"]}))
    p = cmd(tmp_path, "run", "--allow-effects", "approval", "--approval", "prompt", str(f),
            input=b"")
    assert p.returncode == 0
    assert b"\x1b" not in p.stderr and b"b\nc" not in p.stderr


@pytest.mark.parametrize("args,msg", [
    (["run", "--approval", "prompt", "-"], "--approval prompt needs stdin"),
    (["host", "--approval", "prompt"], "--approval prompt needs stdin"),
    (["run", "--approval", "peer", "-"], "--approval peer is for `host`"),
    (["host", "--approval", "sometimes"], "invalid choice"),
])
def test_command_approval_mode_misuse(tmp_path, args, msg):
    p = cmd(tmp_path, *args)
    assert p.returncode == 2 and msg in p.stderr.decode()


def test_host_peer_answers_approval_lines(tmp_path):
    env = {**os.environ, "PYTHONPATH": _PYPATH}
    child = subprocess.Popen([sys.executable, "-m", "lexfast", "host", "--allow-effects",
                              "approval,time", "--approval", "peer"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    timer = threading.Timer(T, child.kill)
    timer.start()
    try:
        def send(obj):
            child.stdin.write(json.dumps(obj).encode() + b"\n")
            child.stdin.flush()

        def recv():
            return json.loads(child.stdout.readline())

        send(ASK)
        assert recv() == {"approval": 1, "scope": "deploy", "reason": "ship v2"}
        # requests sent while the approval waits are answered after it, in order
        send({"id": 2, "kind": "time", "op": "mono_ns"})
        send({"approval": 7, "answer": "stale"})  # not the one waiting
        assert recv()["type"] == "ProtocolError"
        send({"approval": 1, "answer": "x", "deny": "y"})
        assert recv()["type"] == "ProtocolError"
        send({"approval": 1, "answer": "go"})
        assert recv() == {"id": 1, "ok": {"$variant": "Ok", "args": ["go"]}}
        r = recv()
        assert r["id"] == 2 and isinstance(r["ok"], int)
        send({**ASK, "id": 3})
        assert recv()["approval"] == 2
        send({"approval": 2, "deny": "not today"})
        assert recv() == {"id": 3, "ok": {"$variant": "Err", "args": ["not today"]}}
        send({"approval": 2, "answer": "late"})  # nothing waits any more
        r = recv()
        assert r["type"] == "ProtocolError" and "no approval.request is waiting" in r["error"]
        send({**ASK, "id": 4})
        assert recv()["approval"] == 3
        child.stdin.close()  # the peer goes away without answering
        assert recv() == {"id": 4, "ok": {"$variant": "Err", "args": [
            "approval.request: the peer closed its input without answering"]}}
        assert child.wait(T) == 0
    finally:
        timer.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
        if not child.stdin.closed:
            child.stdin.close()


def test_command_argv_and_readline_stay_off_the_request_stream(tmp_path):
    reqs = jl({"id": 1, "kind": "io", "op": "argv"}, {"id": 2, "kind": "io", "op": "readline"},
              {"id": 3, "kind": "io", "op": "argv"})
    for mode in (["run", "-"], ["host"]):
        p = cmd(tmp_path, *mode[:1], "--allow-effects", "io", "--allow-fs-read", str(tmp_path),
                "--allow-fs-write", str(tmp_path), *mode[1:], "--", "a", "--b", "-",
                input=reqs)
        assert p.returncode == 0, p.stderr
        out = [json.loads(x) for x in p.stdout.splitlines()]
        # readline never swallowed request 3
        assert out == [{"id": 1, "ok": ["a", "--b", "-"]},
                       {"id": 2, "ok": {"$variant": "None", "args": []}},
                       {"id": 3, "ok": ["a", "--b", "-"]}], mode
    f = tmp_path / "r.jsonl"
    f.write_bytes(reqs)
    p = cmd(tmp_path, "run", "--allow-effects", "io", "--allow-fs-read", str(tmp_path),
            "--allow-fs-write", str(tmp_path), str(f), input=b"from stdin\n")
    out = [json.loads(x) for x in p.stdout.splitlines()]
    assert out[1] == {"id": 2, "ok": {"$variant": "Some", "args": ["from stdin"]}}
    assert out[0] == {"id": 1, "ok": []}
