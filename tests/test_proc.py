"""proc.spawn and process.* with real children: every op, the allow-proc rule
(docs/design.md §5), the caps, signals, eviction and reaping (docs/behaviour.md §6.10,
with our stricter outcome for case 125)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time

import pytest

from lexfast import NONE, EffectError, Limits, Map, PolicyDenied, err, ok, some

PROC = ["proc"]
OPTS0 = {"cwd": NONE, "env": Map(), "stdin": NONE}


def opts(cwd=None, env=None, stdin=None):
    return {"cwd": some(cwd) if cwd is not None else NONE, "env": Map(env or {}),
            "stdin": some(stdin) if stdin is not None else NONE}


def spawn(h, cmd, args, o=None):
    r = h.dispatch("process", "spawn", [cmd, args, o if o is not None else OPTS0])
    assert r.name == "Ok", r
    return r.args[0]


def lines(h, handle, which="stdout"):
    out = []
    while True:
        r = h.dispatch("process", f"read_{which}_line", [handle])
        if r == NONE:
            return out
        out.append(r.args[0])


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _session_kids() -> set:
    """The session's own servers (conftest's redis_server / postgres_server,
    children of this process for the whole run): not this file's children."""
    for mod in list(sys.modules.values()):
        kids = getattr(mod, "_SESSION_KIDS", None)
        if isinstance(kids, set) and (getattr(mod, "__file__", None) or "").endswith("conftest.py"):
            return kids
    return set()


def my_children() -> list:
    """(pid, state) of every process whose parent is this one (the session's
    servers aside)."""
    me = os.getpid()
    skip = _session_kids()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and int(pid) not in skip:
            out.append((int(pid), fields[0]))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


# -- docs/behaviour.md §6.10 ------------------------------------------------------------

def test_109_110_stream_lines_and_wait(make_handler):
    h = make_handler(effects=PROC)
    hd = spawn(h, "printf", ["a\nb\nc\n"])
    assert isinstance(hd, int)
    assert [h.dispatch("process", "read_stdout_line", [hd]) for _ in range(4)] == \
        [some("a"), some("b"), some("c"), NONE]
    assert h.dispatch("process", "read_stdout_line", [hd]) == NONE  # None forever
    assert h.dispatch("process", "wait", [hd]) == {"code": 0, "signaled": False}
    hd = spawn(h, "printf", ["alpha\nbeta\ngamma\n"])
    assert h.dispatch("process", "read_stdout_line", [hd]) == some("alpha")
    h.dispatch("process", "wait", [hd])


def test_111_112_run(make_handler):
    h = make_handler(effects=PROC)
    assert h.dispatch("process", "run", ["printf", ["hello, world"]]) == \
        ok({"stdout": "hello, world", "stderr": "", "exit_code": 0})
    assert h.dispatch("process", "run", ["false", []]).args[0]["exit_code"] == 1
    assert h.dispatch("process", "run", ["true", []]).args[0]["exit_code"] == 0
    r = h.dispatch("process", "run", ["sh", ["-c", "echo oops >&2; exit 3"]])
    assert r == ok({"stdout": "", "stderr": "oops\n", "exit_code": 3})
    r = h.dispatch("process", "run", ["sh", ["-c", "kill -9 $$"]])
    assert r.args[0]["exit_code"] == -1
    assert h.dispatch("process", "run", ["cat", []]) == \
        ok({"stdout": "", "stderr": "", "exit_code": 0})  # stdin is null


def test_113_wait_drops_the_handle(make_handler):
    h = make_handler(effects=PROC)
    hd = spawn(h, "printf", ["a\n"])
    assert lines(h, hd) == ["a"]
    h.dispatch("process", "wait", [hd])
    for op, args in (("read_stdout_line", [hd]), ("read_stderr_line", [hd]), ("wait", [hd]),
                     ("kill", [hd, "KILL"])):
        with pytest.raises(EffectError, match=f"^process.{op}: closed or unknown ProcessHandle$"):
            h.dispatch("process", op, args)


def test_114_120_allow_proc_denials(make_handler):
    h = make_handler(effects=PROC, procs=["allowed_command_zzz"])
    assert h.dispatch("process", "run", ["printf", ["x"]]) == \
        err('process.run: `printf` not in --allow-proc ["allowed_command_zzz"]')
    assert h.dispatch("process", "spawn", ["printf", ["x"], OPTS0]) == \
        err('process.spawn: `printf` not in --allow-proc ["allowed_command_zzz"]')
    h = make_handler(effects=PROC, procs=["echo"])
    r = h.dispatch("proc", "spawn", ["/usr/bin/whoami", []])
    assert r == err('proc.spawn: `/usr/bin/whoami` not in --allow-proc ["echo"]')


def test_115_123_gates(make_handler):
    with pytest.raises(ValueError, match="unknown effect kind `process`"):
        make_handler(effects=["process"])  # the family's name grants nothing: refused
    with pytest.raises(PolicyDenied, match="^effect `proc` not in --allow-effects$"):
        make_handler(effects=["io"]).dispatch("process", "run", ["true", []])
    with pytest.raises(PolicyDenied, match="proc"):
        make_handler().dispatch("proc", "spawn", ["echo", ["x"]])
    with pytest.raises(PolicyDenied, match="^effect `proc` not in --allow-effects$"):
        make_handler().dispatch("process", "bogus", [])
    with pytest.raises(EffectError, match="^unsupported process.bogus$"):
        make_handler(effects=PROC).dispatch("process", "bogus", [])


def test_116_stdin_env_cwd(make_handler, tmp_path):
    h = make_handler(effects=PROC)
    hd = spawn(h, "cat", [], opts(stdin=b"hello\n"))
    assert h.dispatch("process", "read_stdout_line", [hd]) == some("hello")
    assert h.dispatch("process", "read_stdout_line", [hd]) == NONE
    h.dispatch("process", "wait", [hd])
    hd = spawn(h, "sh", ["-c", "echo $FOO; pwd"], opts(cwd=str(tmp_path), env={"FOO": "bar"}))
    assert lines(h, hd) == ["bar", os.path.realpath(tmp_path)]
    assert h.dispatch("process", "wait", [hd]) == {"code": 0, "signaled": False}


def test_117_spawn_failures(make_handler, tmp_path):
    h = make_handler(effects=PROC)
    r = h.dispatch("process", "spawn", ["no-such-binary-xyz", [], OPTS0])
    assert r == err("process.spawn `no-such-binary-xyz`: No such file or directory (os error 2)")
    with pytest.raises(EffectError, match="^process.spawn: missing or invalid opts record$"):
        h.dispatch("process", "spawn", ["echo", ["x"], None])
    with pytest.raises(EffectError, match="^process.spawn: missing or invalid opts record$"):
        h.dispatch("process", "spawn", ["echo", ["x"]])
    with pytest.raises(EffectError, match="^process.spawn: missing or invalid opts record$"):
        h.dispatch("process", "spawn", ["echo", ["x"], Map()])
    r = h.dispatch("process", "spawn", ["true", [], opts(cwd=str(tmp_path / "nope"))])
    assert r == err("process.spawn `true`: No such file or directory (os error 2)")
    r = h.dispatch("process", "run", ["no-such-binary-xyz", []])
    assert r == err("process.run `no-such-binary-xyz`: No such file or directory (os error 2)")
    r = h.dispatch("proc", "spawn", ["no-such-binary-xyz", []])
    assert r == err("spawn `no-such-binary-xyz`: No such file or directory (os error 2)")
    (tmp_path / "noexec").write_text("#!/bin/sh\n")
    r = h.dispatch("proc", "spawn", [str(tmp_path / "noexec"), []])
    assert r == err(f"spawn `{tmp_path}/noexec`: Permission denied (os error 13)")


def test_118_kill_then_wait(make_handler):
    h = make_handler(effects=PROC)
    hd = spawn(h, "sleep", ["30"])
    assert h.dispatch("process", "kill", [hd, "TERM"]) == ok(None)
    assert h.dispatch("process", "wait", [hd]) == {"code": -1, "signaled": True}


def test_119_121_122_proc_spawn(make_handler):
    h = make_handler(effects=PROC, procs=["echo"])
    assert h.dispatch("proc", "spawn", ["echo", ["hello", "world"]]) == \
        ok({"stdout": "hello world\n", "stderr": "", "exit_code": 0})
    assert make_handler(effects=PROC).dispatch("proc", "spawn", ["echo", ["x"]]).args[0][
        "stdout"] == "x\n"
    r = make_handler(effects=PROC, procs=["false"]).dispatch("proc", "spawn", ["false", []])
    assert r.name == "Ok" and r.args[0]["exit_code"] != 0


def test_124_proc_spawn_caps(make_handler):
    h = make_handler(effects=PROC)
    assert h.dispatch("proc", "spawn", ["true", ["a"] * 1024]).name == "Ok"
    assert h.dispatch("proc", "spawn", ["true", ["a"] * 1025]) == \
        err("proc.spawn: arg-count exceeds 1024")
    assert h.dispatch("proc", "spawn", ["true", ["a" * 65536]]).name == "Ok"
    assert h.dispatch("proc", "spawn", ["true", ["a" * 65537]]) == \
        err("proc.spawn: per-arg length exceeds 64 KiB")
    assert h.dispatch("proc", "spawn", ["true", ["é" * 32769]]) == \
        err("proc.spawn: per-arg length exceeds 64 KiB")  # bytes, not characters
    # the reference puts the allow-list check before the caps
    r = make_handler(effects=PROC, procs=["x"]).dispatch("proc", "spawn", ["true", ["a"] * 2000])
    assert r == err('proc.spawn: `true` not in --allow-proc ["x"]')


def test_125_path_qualified_command_must_be_the_allowed_file(make_handler, tmp_path):
    """Seed: allowed by basename; docs/design.md §5: denied unless the same file."""
    h = make_handler(effects=PROC, procs=["echo"])
    assert h.dispatch("proc", "spawn", ["/nonexistent/dir/echo", ["x"]]) == \
        err('proc.spawn: `/nonexistent/dir/echo` not in --allow-proc ["echo"]')
    fake = tmp_path / "echo"
    fake.write_text("#!/bin/sh\necho pwned\n")
    fake.chmod(0o755)
    for op, args in (("proc", ["spawn", [str(fake), []]]),
                     ("process", ["run", [str(fake), []]]),
                     ("process", ["spawn", [str(fake), [], OPTS0]])):
        r = h.dispatch(op, args[0], args[1])
        assert r.name == "Err" and "not in --allow-proc" in r.args[0], r
    real = shutil.which("echo")
    assert h.dispatch("proc", "spawn", [real, ["ok"]]).args[0]["stdout"] == "ok\n"
    # an entry naming a path allows that file, not the bare name
    h = make_handler(effects=PROC, procs=[real])
    assert h.dispatch("proc", "spawn", [real, ["ok"]]).args[0]["stdout"] == "ok\n"
    assert h.dispatch("proc", "spawn", ["echo", ["x"]]).name == "Err"


def test_126_argument_errors(make_handler):
    h = make_handler(effects=PROC)
    with pytest.raises(EffectError, match="^proc.spawn: missing args list$"):
        h.dispatch("proc", "spawn", ["echo"])
    with pytest.raises(EffectError, match=r'^proc.spawn: args must be List\[Str\], got Str\("x"\)$'):
        h.dispatch("proc", "spawn", ["echo", "x"])
    with pytest.raises(EffectError, match=r"^proc.spawn: arg must be Str, got Int\(1\)$"):
        h.dispatch("proc", "spawn", ["echo", ["a", 1]])
    with pytest.raises(EffectError, match=r"^expected Str arg, got Int\(1\)$"):
        h.dispatch("proc", "spawn", [1, []])
    for op in ("run", "spawn"):
        with pytest.raises(EffectError, match=rf"^process.{op}: args must be List\[Str\]$"):
            h.dispatch("process", op, ["echo", "x", OPTS0])
        with pytest.raises(EffectError, match=rf"^process.{op}: args must be List\[Str\]$"):
            h.dispatch("process", op, ["echo"])
        with pytest.raises(EffectError, match=rf"^process.{op}: arg must be Str, got Bool\(true\)$"):
            h.dispatch("process", op, ["echo", [True], OPTS0])
    for op in ("read_stdout_line", "read_stderr_line", "wait", "kill"):
        with pytest.raises(EffectError, match=r'^expected ProcessHandle \(Int\), got Str\("x"\)$'):
            h.dispatch("process", op, ["x", "TERM"])
        with pytest.raises(EffectError, match=r"^expected ProcessHandle \(Int\), got Int\(-1\)$"):
            h.dispatch("process", op, [-1, "TERM"])
        with pytest.raises(EffectError, match="^missing ProcessHandle argument$"):
            h.dispatch("process", op, [])
        with pytest.raises(EffectError,
                           match=f"^process.{op}: closed or unknown ProcessHandle$"):
            h.dispatch("process", op, [10 ** 12, "TERM"])
    hd = spawn(h, "sleep", ["5"])
    with pytest.raises(EffectError, match="^missing argument$"):
        h.dispatch("process", "kill", [hd])


# -- argv, env and allow-proc ------------------------------------------------------

def test_argv_is_never_a_shell(make_handler, tmp_path):
    h = make_handler(effects=PROC)
    marker = tmp_path / "pwned"
    arg = f"$(touch {marker}); `touch {marker}` | ; && *"
    r = h.dispatch("proc", "spawn", ["echo", [arg]])
    assert r.args[0]["stdout"] == arg + "\n" and not marker.exists()
    r = h.dispatch("process", "run", ["printf", ["%s", "a b\nc"]])
    assert r.args[0]["stdout"] == "a b\nc"
    r = h.dispatch("proc", "spawn", ["echo", ["a\0b"]])
    assert r == err("spawn `echo`: nul byte found in provided data")


def test_env_may_not_reroute_interpreters_shells_or_libc(make_handler, tmp_path):
    # beyond PATH/LD_*/DYLD_*: variables that make an allowed sh, python,
    # perl, node, git or java load or run code of the caller's choosing
    h = make_handler(effects=PROC, procs=["sh"])
    for key in ("GCONV_PATH", "LOCPATH", "NLSPATH", "GLIBC_TUNABLES", "MALLOC_CHECK_",
                "MALLOC_ARENA_MAX", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS",
                "BASH_FUNC_ls%%", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME",
                "PYTHONINSPECT", "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT", "RUBYLIB",
                "NODE_OPTIONS", "NODE_PATH", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0",
                "GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_DIR", "JAVA_TOOL_OPTIONS",
                "_JAVA_OPTIONS", "LUA_INIT"):
        r = h.dispatch("process", "spawn", ["sh", ["-c", "true"], opts(env={key: str(tmp_path)})])
        assert r.name == "Err" and r.args[0].startswith(
            f"process.spawn: env may not set `{key}` under --allow-proc"), (key, r)
    # an allowlist: any other name is refused too, lower case included
    for key in ("FOO", "MY_GIT_TOKEN", "pythonpath", "path", "HOME", "LESSOPEN"):
        r = h.dispatch("process", "spawn", ["sh", ["-c", "true"], opts(env={key: "x"})])
        assert r == err(f"process.spawn: env may not set `{key}` under --allow-proc"), key
    hd = spawn(h, "sh", ["-c", "echo $LANG $TZ $NO_COLOR"],
               opts(env={"LANG": "C", "TZ": "UTC", "NO_COLOR": "1"}))
    assert lines(h, hd) == ["C UTC 1"]
    h.dispatch("process", "wait", [hd])
    # without --allow-proc nothing is refused (any binary may run anyway)
    h = make_handler(effects=PROC)
    hd = spawn(h, "sh", ["-c", "echo $PYTHONPATH"], opts(env={"PYTHONPATH": "p"}))
    assert lines(h, hd) == ["p"]
    h.dispatch("process", "wait", [hd])


def test_env_may_not_reroute_an_allowed_binary(make_handler, tmp_path):
    h = make_handler(effects=PROC, procs=["sh", "env"])
    for key in ("PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "DYLD_INSERT_LIBRARIES"):
        r = h.dispatch("process", "spawn", ["sh", ["-c", "true"], opts(env={key: str(tmp_path)})])
        assert r == err(f"process.spawn: env may not set `{key}` under --allow-proc"), key
    hd = spawn(h, "sh", ["-c", "echo $TERM"], opts(env={"TERM": "dumb"}))
    assert lines(h, hd) == ["dumb"]
    h.dispatch("process", "wait", [hd])
    # the escape hatch (no --allow-proc): PATH is the child's, as Command does
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "mytool"
    tool.write_text("#!/bin/sh\necho from-mytool\n")
    tool.chmod(0o755)
    h = make_handler(effects=PROC)
    hd = spawn(h, "mytool", [], opts(env={"PATH": str(bindir)}))
    assert lines(h, hd) == ["from-mytool"]
    h.dispatch("process", "wait", [hd])


def test_relative_path_entries_are_not_searched(make_handler, tmp_path, monkeypatch):
    tool = tmp_path / "lexfast-test-tool"
    tool.write_text("#!/bin/sh\necho planted\n")
    tool.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "." + os.pathsep + os.environ["PATH"])
    h = make_handler(effects=PROC, procs=["lexfast-test-tool"])
    r = h.dispatch("proc", "spawn", ["lexfast-test-tool", []])
    assert r == err("spawn `lexfast-test-tool`: No such file or directory (os error 2)")


# -- output: caps, lossy decoding, lines --------------------------------------------

def test_captured_output_is_bounded(make_handler):
    h = make_handler(effects=PROC, limits=Limits(proc_output_bytes=10_000))
    assert h.dispatch("proc", "spawn", ["head", ["-c", "10000", "/dev/zero"]]).name == "Ok"
    assert h.dispatch("proc", "spawn", ["head", ["-c", "10001", "/dev/zero"]]) == \
        err("proc.spawn: stdout exceeds the 10000-byte output cap")
    t = time.monotonic()
    r = h.dispatch("process", "run", ["sh", ["-c", "yes >&2"]])  # endless: killed at the cap
    assert r == err("process.run: stderr exceeds the 10000-byte output cap")
    assert time.monotonic() - t < 10
    assert my_children() == []


def test_lone_surrogates_in_commands_are_errors(make_handler):
    # an unencodable path-qualified command reached resolve_command and
    # came back as "internal error: UnicodeEncodeError"
    h = make_handler(effects=PROC, procs=["sh"])
    for cmd in ("/bin/\ud800", "\ud800", "/bin/\udcff"):
        assert h.dispatch("proc", "spawn", [cmd, []]) == err(
            f'proc.spawn: `{cmd}` not in --allow-proc ["sh"]'), cmd
        assert h.dispatch("process", "run", [cmd, []]) == err(
            f'process.run: `{cmd}` not in --allow-proc ["sh"]'), cmd
        assert h.dispatch("process", "spawn", [cmd, [], OPTS0]) == err(
            f'process.spawn: `{cmd}` not in --allow-proc ["sh"]'), cmd
    assert h.dispatch("proc", "spawn", ["sh", ["-c", "true", "\ud800"]]) == err(
        "spawn `sh`: argument is not valid UTF-8")
    r = h.dispatch("process", "spawn", ["sh", ["-c", "true"], opts(env={"NO_COLOR": "\ud800"})])
    assert r == err("process.spawn `sh`: argument is not valid UTF-8")
    h = make_handler(effects=PROC)
    assert h.dispatch("proc", "spawn", ["/bin/\ud800", []]) == err(
        "spawn `/bin/\ud800`: argument is not valid UTF-8")
    assert h.dispatch("process", "run", ["\ud800", []]).name == "Err"
    assert h.dispatch("process", "spawn", ["/bin/\ud800", [], OPTS0]) == err(
        "process.spawn `/bin/\ud800`: argument is not valid UTF-8")


def test_non_utf8_output(make_handler):
    h = make_handler(effects=PROC)
    r = h.dispatch("proc", "spawn", ["printf", ["\\377ok\\376"]])
    assert r.args[0]["stdout"] == "\ufffdok\ufffd"
    r = h.dispatch("process", "run", ["sh", ["-c", "printf '\\377' >&2"]])
    assert r.args[0]["stderr"] == "\ufffd"
    hd = spawn(h, "printf", ["\\377bad\\ngood\\n"])
    with pytest.raises(EffectError, match="^process.read_\\*_line: stream did not contain valid UTF-8$"):
        h.dispatch("process", "read_stdout_line", [hd])
    assert h.dispatch("process", "read_stdout_line", [hd]) == some("good")
    h.dispatch("process", "wait", [hd])


def test_line_endings_and_a_last_line_without_newline(make_handler):
    h = make_handler(effects=PROC)
    hd = spawn(h, "printf", ["a\\r\\nb\\r\\r\\n\\nlast"])
    assert lines(h, hd) == ["a", "b\r", "", "last"]
    h.dispatch("process", "wait", [hd])


def test_line_and_buffer_caps(make_handler):
    h = make_handler(effects=PROC, limits=Limits(proc_line_bytes=100, proc_output_bytes=5000))
    hd = spawn(h, "sh", ["-c", "echo short; head -c 1000 /dev/zero | tr '\\0' x; echo; echo next"])
    assert h.dispatch("process", "read_stdout_line", [hd]) == some("short")
    with pytest.raises(EffectError, match="^process.read_\\*_line: line longer than 100 bytes$"):
        h.dispatch("process", "read_stdout_line", [hd])
    assert h.dispatch("process", "read_stdout_line", [hd]) == some("next")
    assert h.dispatch("process", "wait", [hd])["code"] == 0
    # unread output past the buffer cap: whole lines dropped, one error, then the rest
    hd = spawn(h, "sh", ["-c", "seq 1 5000 >&2; echo done"])
    assert h.dispatch("process", "read_stdout_line", [hd]) == some("done")
    assert h.dispatch("process", "wait", [hd]) == {"code": 0, "signaled": False}
    hd = spawn(h, "sh", ["-c", "seq 1 5000; sleep 1; echo tail"])
    time.sleep(0.3)
    got, errors = [], 0
    while True:
        try:
            r = h.dispatch("process", "read_stdout_line", [hd])
        except EffectError as e:
            assert "bytes of unread output" in str(e)
            errors += 1
            continue
        if r == NONE:
            break
        got.append(r.args[0])
    assert errors == 1 and got[-1] == "tail" and len(got) < 5000
    assert got[:-1] == [str(i) for i in range(1, len(got))]  # a whole-line prefix
    h.dispatch("process", "wait", [hd])


def test_flooding_stderr_does_not_block_stdout_or_wait(make_handler):
    h = make_handler(effects=PROC)
    hd = spawn(h, "sh", ["-c", "head -c 4000000 /dev/zero >&2; echo out"])
    assert h.dispatch("process", "read_stdout_line", [hd]) == some("out")
    assert h.dispatch("process", "wait", [hd]) == {"code": 0, "signaled": False}
    hd = spawn(h, "sh", ["-c", "head -c 4000000 /dev/zero; head -c 4000000 /dev/zero >&2"])
    assert h.dispatch("process", "wait", [hd]) == {"code": 0, "signaled": False}


def test_large_stdin_without_deadlock(make_handler):
    h = make_handler(effects=PROC)
    payload = b"".join(b"%039d\n" % i for i in range(200_000))  # 8 MB
    hd = spawn(h, "cat", [], opts(stdin=payload))
    got = lines(h, hd)
    assert len(got) == 200_000 and got[-1] == f"{199_999:039d}"
    assert h.dispatch("process", "wait", [hd]) == {"code": 0, "signaled": False}
    # a child that never reads its stdin: wait still returns
    hd = spawn(h, "true", [], opts(stdin=payload))
    assert h.dispatch("process", "wait", [hd]) == {"code": 0, "signaled": False}


def test_wait_closes_stdin_first(make_handler):
    h = make_handler(effects=PROC)
    hd = spawn(h, "cat", [])
    assert h.dispatch("process", "wait", [hd]) == {"code": 0, "signaled": False}
    hd = spawn(h, "sh", ["-c", "read x || exit 7"])
    assert h.dispatch("process", "wait", [hd]) == {"code": 7, "signaled": False}


def test_reads_on_one_handle_never_block_another(make_handler):
    h = make_handler(effects=PROC)
    slow = spawn(h, "sleep", ["30"])
    fast = spawn(h, "sh", ["-c", "echo quick; echo err >&2"])
    got = []
    t = threading.Thread(target=lambda: got.append(
        h.fork().dispatch("process", "read_stdout_line", [slow])))
    t.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    assert h.dispatch("process", "read_stdout_line", [fast]) == some("quick")
    assert h.dispatch("process", "read_stderr_line", [fast]) == some("err")
    assert h.dispatch("process", "wait", [fast])["code"] == 0
    assert time.monotonic() - t0 < 2
    assert t.is_alive()  # still waiting on the silent child
    assert h.dispatch("process", "kill", [slow, "KILL"]) == ok(None)
    t.join(5)
    assert got == [NONE]
    assert h.dispatch("process", "wait", [slow]) == {"code": -1, "signaled": True}


# -- signals ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,signum", [("SIGTERM", 15), ("TERM", 15), ("SIGKILL", 9),
                                         ("KILL", 9), ("SIGINT", 2), ("hup", 1), ("9", 9)])
def test_kill_honours_the_signal_name(make_handler, name, signum):
    h = make_handler(effects=PROC)
    script = ("for s in 1 2 15; do trap \"echo caught $s; exit $((100+s))\" $s; done; "
              "echo ready; while :; do sleep 0.05; done")
    hd = spawn(h, "sh", ["-c", script])
    assert h.dispatch("process", "read_stdout_line", [hd]) == some("ready")
    assert h.dispatch("process", "kill", [hd, name]) == ok(None)
    if signum == 9:
        assert h.dispatch("process", "wait", [hd]) == {"code": -1, "signaled": True}
    else:
        assert h.dispatch("process", "read_stdout_line", [hd]) == some(f"caught {signum}")
        assert h.dispatch("process", "wait", [hd]) == {"code": 100 + signum, "signaled": False}


def test_kill_unknown_signal_and_after_exit(make_handler):
    h = make_handler(effects=PROC)
    hd = spawn(h, "sleep", ["30"])
    assert h.dispatch("process", "kill", [hd, "SIGFOO"]) == err("process.kill: unknown signal `SIGFOO`")
    assert h.dispatch("process", "kill", [hd, "999"]) == err("process.kill: unknown signal `999`")
    assert alive(h.session.registry("process")[hd].popen.pid)
    h.dispatch("process", "kill", [hd, "KILL"])
    h.dispatch("process", "kill", [hd, "KILL"])  # already dead: still Ok
    assert h.dispatch("process", "wait", [hd])["signaled"] is True


def test_kill_reaches_grandchildren(make_handler):
    h = make_handler(effects=PROC)
    hd = spawn(h, "sh", ["-c", "sleep 30 & echo $!; wait"])
    grandchild = int(h.dispatch("process", "read_stdout_line", [hd]).args[0])
    assert alive(grandchild)
    h.dispatch("process", "kill", [hd, "TERM"])
    h.dispatch("process", "wait", [hd])
    assert wait_gone(grandchild)


def test_a_child_ignoring_sigterm_is_killed_at_close(make_handler):
    h = make_handler(effects=PROC)
    hd = spawn(h, "sh", ["-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"])
    assert h.dispatch("process", "read_stdout_line", [hd]) == some("ready")
    pid = h.session.registry("process")[hd].popen.pid
    assert h.dispatch("process", "kill", [hd, "TERM"]) == ok(None)
    time.sleep(0.2)
    assert alive(pid)  # TERM ignored
    t = time.monotonic()
    h.close()
    assert time.monotonic() - t < 3
    assert not alive(pid) and my_children() == []


# -- registry, eviction, close --------------------------------------------------------

def test_300_spawns_past_the_cap_leak_nothing(make_handler):
    before = fd_count()
    h = make_handler(effects=PROC)
    handles, pids = [], []
    for _ in range(300):
        hd = spawn(h, "sleep", ["30"])
        handles.append(hd)
        pids.append(h.session.registry("process")[hd].popen.pid)
    reg = h.session.registry("process")
    assert len(reg) == 256
    for hd, pid in zip(handles[:44], pids[:44], strict=True):  # evicted: killed and reaped
        with pytest.raises(EffectError, match="closed or unknown ProcessHandle"):
            h.dispatch("process", "wait", [hd])
        assert not alive(pid)
    assert all(alive(pid) for pid in pids[44:])
    assert [s for _, s in my_children() if s == "Z"] == []
    h.close()
    assert my_children() == []
    assert not any(alive(pid) for pid in pids)
    assert fd_count() == before


def test_close_reaps_children_of_every_fork_and_spawn_after_close_fails(make_handler):
    before = fd_count()
    h = make_handler(effects=PROC)
    f = h.fork()
    a = spawn(h, "sleep", ["30"])
    b = spawn(f, "sh", ["-c", "sleep 30 & wait"])
    pids = [h.session.registry("process")[x].popen.pid for x in (a, b)]
    h.close()
    assert not any(alive(p) for p in pids) and my_children() == []
    assert fd_count() == before
    with pytest.raises(EffectError):
        f.dispatch("process", "spawn", ["true", [], OPTS0])


def test_handles_belong_to_their_session(make_handler):
    h1 = make_handler(effects=PROC)
    h2 = make_handler(effects=PROC)
    hd = spawn(h1, "printf", ["x\n"])
    with pytest.raises(EffectError, match="^process.read_stdout_line: closed or unknown ProcessHandle$"):
        h2.dispatch("process", "read_stdout_line", [hd])
    assert h1.fork().dispatch("process", "read_stdout_line", [hd]) == some("x")
    h1.dispatch("process", "wait", [hd])


def test_close_interrupts_a_blocked_read_and_a_running_proc_spawn(make_handler):
    h = make_handler(effects=PROC)
    hd = spawn(h, "sleep", ["30"])
    results = []

    def blocked(op, args):
        try:
            results.append(h.fork().dispatch(*op, args))
        except EffectError as e:
            results.append(e)

    threads = [threading.Thread(target=blocked, args=(("process", "read_stdout_line"), [hd])),
               threading.Thread(target=blocked, args=(("proc", "spawn"), ["sleep", ["30"]]))]
    for t in threads:
        t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    h.close()
    for t in threads:
        t.join(5)
        assert not t.is_alive()
    assert time.monotonic() - t0 < 5
    # every waiter is woken with an error naming the op, not a made-up EOF or exit code
    msgs = sorted(str(r) for r in results)
    assert msgs == ["proc.spawn: the handler is closed",
                    "process.read_stdout_line: the handler is closed"], results
    assert my_children() == []


def test_many_threads_spawn_read_and_wait_at_once(make_handler):
    before = fd_count()
    h = make_handler(effects=PROC)
    failures = []

    def worker(n):
        f = h.fork()
        try:
            for i in range(15):
                hd = spawn(f, "sh", ["-c", f"echo {n}-{i}; echo e{n} >&2"])
                assert f.dispatch("process", "read_stdout_line", [hd]) == some(f"{n}-{i}")
                assert f.dispatch("process", "read_stderr_line", [hd]) == some(f"e{n}")
                assert f.dispatch("process", "wait", [hd]) == {"code": 0, "signaled": False}
                r = f.dispatch("process", "run", ["echo", [str(i)]])
                assert r.args[0]["stdout"] == f"{i}\n"
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    h.close()
    assert my_children() == [] and fd_count() == before


def test_unread_output_is_bounded_for_the_whole_session(make_handler):
    h = make_handler(effects=PROC, limits=Limits(proc_output_bytes=20_000))
    st = __import__("lexfast.effects.proc.ops", fromlist=["_state"])._state(h.session)
    floods = [spawn(h, "seq", ["1", "100000"]) for _ in range(8)]
    time.sleep(1.0)
    pool = st.pool
    assert pool.cap == 80_000 and pool.used <= pool.cap
    # a stream whose lines the pool refused reports it once, then keeps going
    seen_error = False
    for hd in floods:
        for _ in range(3):
            try:
                h.dispatch("process", "read_stdout_line", [hd])
            except EffectError as e:
                seen_error = True
                assert "bytes of unread output" in str(e)
                break
    assert seen_error
    for hd in floods:
        h.dispatch("process", "kill", [hd, "KILL"])
        h.dispatch("process", "wait", [hd])
    assert pool.used == 0  # dropped handles give their bytes back


def test_spawn_env_must_be_a_map(make_handler):
    # The reference reads `env` only as a Map and ignores anything else, which
    # would silently drop a Record's variables: lexfast says so instead.
    h = make_handler(effects=["proc"])
    for env in ({"FOO": "bar"}, "FOO=bar", [("FOO", "bar")]):
        with pytest.raises(EffectError, match=r"^process\.spawn: opts\.env must be a Map\[Str, Str\], got "):
            h.dispatch("process", "spawn", ["sh", ["-c", "true"],
                                            {"cwd": NONE, "env": env, "stdin": NONE}])
