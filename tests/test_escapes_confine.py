"""Escape catalogue, children inside the policy (issue 26; SECURITY.md
"Children inside the policy", rows C*).

A granted binary used to be a full escape from every other scope: ``sh``
read anything, wrote anywhere, connected anywhere, signalled the host. Every
child of ``proc.spawn``, ``process.*`` and MCP servers now runs under a
Landlock domain (and, without ``net``, a seccomp socket filter) derived from
the session's policy. Real children (sh, cat, python3, git), real files, a
real loopback listener; each test also shows the same child working inside
its scopes, so a refusal is the policy and not a broken child.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from lexfast import NONE, EffectError, Limits, Map
from lexfast.scope.confine import support

SUPPORT = support()
pytestmark = pytest.mark.skipif(not SUPPORT.available,
                                reason=f"children cannot be confined here: {SUPPORT.reason}")

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
OPTS = {"cwd": NONE, "env": Map(), "stdin": NONE}
EACCES_TEXT = "Permission denied"


@pytest.fixture
def tree(tmp_path):
    """``r/`` (the read scope), ``w/`` (the write scope), ``secret`` and
    ``outside/`` beside them (no scope)."""
    (tmp_path / "r").mkdir()
    (tmp_path / "w").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "r" / "in.txt").write_text("inside\n")
    (tmp_path / "w" / "keep.txt").write_text("keep\n")
    (tmp_path / "secret").write_text("TOKEN\n")
    (tmp_path / "outside" / "victim.txt").write_text("victim\n")
    return tmp_path


def _shell(make_handler, tree, effects=("proc",), **kw):
    return make_handler(effects=list(effects), fs_read=[tree / "r"], fs_write=[tree / "w"],
                        procs=["sh", "cat", "rm", "mv", "ln", "git", "sleep", PY], **kw)


def _run(h, cmd, args, op="process.run"):
    """``(exit code, stdout, stderr)`` of ``cmd args`` through ``op``."""
    if op == "process.spawn":
        r = h.dispatch("process", "spawn", [cmd, args, OPTS])
        assert r.name == "Ok", r
        hd = r.args[0]
        out, err = [], []
        for which, acc in (("read_stdout_line", out), ("read_stderr_line", err)):
            while True:
                line = h.dispatch("process", which, [hd])
                if line == NONE:
                    break
                acc.append(line.args[0] + "\n")
        code = h.dispatch("process", "wait", [hd])["code"]
        return code, "".join(out), "".join(err)
    kind, name = op.split(".")
    r = h.dispatch(kind, name, [cmd, args])
    assert r.name == "Ok", r
    v = r.args[0]
    return v["exit_code"], v["stdout"], v["stderr"]


def _sh(h, script, op="process.run"):
    return _run(h, "sh", ["-c", script], op)


@pytest.mark.parametrize("op", ["proc.spawn", "process.run", "process.spawn"])
def test_escape_confine_shell_reads_outside_the_read_scope(make_handler, tree, op):
    h = _shell(make_handler, tree)
    q = shlex.quote
    code, out, err = _sh(h, f"cat {q(str(tree / 'secret'))}; cat {q(str(tree / 'outside'))}/*;"
                            f" ls {q(str(tree))}; cat {q(str(tree / 'r' / 'in.txt'))}", op)
    assert "TOKEN" not in out and "victim" not in out and "secret" not in out
    assert EACCES_TEXT in err, err
    assert out == "inside\n"
    # cat granted directly, and python3 opening it itself
    code, out, err = _run(h, "cat", [str(tree / "secret")], op)
    assert code != 0 and out == "" and EACCES_TEXT in err
    code, out, err = _run(h, PY, ["-c", f"print(open({str(tree / 'secret')!r}).read())"], op)
    assert code != 0 and "TOKEN" not in out and "PermissionError" in err


def test_escape_confine_shell_writes_or_deletes_outside_the_write_scope(make_handler, tree):
    h = _shell(make_handler, tree)
    q = lambda p: shlex.quote(str(p))  # noqa: E731
    victim, r_in = tree / "outside" / "victim.txt", tree / "r" / "in.txt"
    for script in (f"echo pwned > {q(victim)}", f": > {q(victim)}", f"echo x >> {q(r_in)}",
                   f"rm -f {q(victim)}", f"mv {q(victim)} {q(tree / 'w' / 'v')}",
                   f"mv {q(tree / 'w' / 'keep.txt')} {q(tree / 'outside' / 'k')}",
                   f"mkdir {q(tree / 'outside' / 'd')}", f"echo new > {q(tree / 'new')}",
                   f"rm -f {q(r_in)}", f"ln -s /etc/passwd {q(tree / 'outside' / 'l')}"):
        code, _out, err = _sh(h, script)
        assert code != 0, (script, err)
    assert victim.read_text() == "victim\n" and r_in.read_text() == "inside\n"
    assert sorted(os.listdir(tree / "outside")) == ["victim.txt"]
    assert not (tree / "new").exists() and (tree / "w" / "keep.txt").exists()
    # inside the write scope everything works, and reads back
    w = tree / "w"
    code, out, err = _sh(h, f"cd {q(w)} && echo a > f && echo b >> f && mkdir -p d/e && "
                            f"mv f d/e/g && cat d/e/g && : > d/e/g && rm -r d && ls")
    assert (code, out, err) == (0, "a\nb\nkeep.txt\n", "")


def test_escape_confine_symlink_or_hardlink_out_of_the_scopes(make_handler, tree):
    """A link planted inside a scope (by the program through fs_write, or by
    the child itself) does not carry the child outside: Landlock checks the
    file the path lands on, and refuses a hard link that would give an
    outside file the scope's rights (EXDEV)."""
    os.symlink(tree / "secret", tree / "r" / "link")
    os.symlink(tree / "outside", tree / "w" / "dirlink")
    h = _shell(make_handler, tree)
    q = lambda p: shlex.quote(str(p))  # noqa: E731
    code, out, err = _sh(h, f"cat {q(tree / 'r' / 'link')}")
    assert code != 0 and "TOKEN" not in out and EACCES_TEXT in err
    code, _out, err = _sh(h, f"echo pwned > {q(tree / 'w' / 'dirlink' / 'victim.txt')}")
    assert code != 0 and (tree / "outside" / "victim.txt").read_text() == "victim\n"
    code, out, err = _sh(h, f"ln -s {q(tree / 'secret')} {q(tree / 'w' / 's')} && "
                            f"cat {q(tree / 'w' / 's')}")
    assert code != 0 and "TOKEN" not in out
    code, out, err = _sh(h, f"ln {q(tree / 'secret')} {q(tree / 'w' / 'hard')}; "
                            f"cat {q(tree / 'w' / 'hard')}")
    assert "TOKEN" not in out and not (tree / "w" / "hard").exists()


@pytest.fixture
def listeners():
    """A loopback TCP listener and a UDP socket, non-blocking."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    udp.bind(("127.0.0.1", 0))
    tcp.setblocking(False)
    udp.setblocking(False)
    yield tcp, udp
    tcp.close()
    udp.close()


_NET_PROBE = """
import socket, sys
tcp, udp = int(sys.argv[1]), int(sys.argv[2])
for name, fn in (
    ("tcp", lambda: socket.create_connection(("127.0.0.1", tcp), timeout=5).close()),
    ("tcp6", lambda: socket.create_connection(("::1", tcp), timeout=5).close()),
    ("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", udp))),
    ("bind", lambda: socket.socket().bind(("127.0.0.1", 0))),
    ("raw", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),
):
    try:
        fn()
        print(name, "ok")
    except OSError as e:
        print(name, e.errno)
"""


def _accepted(sock) -> int:
    n = 0
    while True:
        try:
            conn = sock.accept()[0] if sock.type == socket.SOCK_STREAM else sock.recv(16)
        except BlockingIOError:
            return n
        if sock.type == socket.SOCK_STREAM:
            conn.close()
        n += 1


def test_escape_confine_connect_to_loopback_without_net(make_handler, tree, listeners):
    tcp, udp = listeners
    ports = [str(tcp.getsockname()[1]), str(udp.getsockname()[1])]
    h = _shell(make_handler, tree)
    code, out, err = _run(h, PY, ["-c", _NET_PROBE, *ports])
    got = dict(line.split() for line in out.splitlines())
    assert got["tcp"] != "ok" and got["udp"] != "ok" and got["bind"] != "ok", (out, err)
    assert got["raw"] != "ok" and got["tcp6"] != "ok"
    assert _accepted(tcp) == 0 and _accepted(udp) == 0
    # a shell's own tools are held the same way (bash's /dev/tcp where bash is)
    if shutil.which("bash"):
        h2 = make_handler(effects=["proc"], procs=["bash"])
        code, out, err = _run(h2, "bash", ["-c", f"echo x > /dev/tcp/127.0.0.1/{ports[0]}"])
        assert code != 0 and _accepted(tcp) == 0
    # with `net` granted the same child connects: the refusal is the policy
    h = _shell(make_handler, tree, effects=("proc", "net"))
    code, out, err = _run(h, PY, ["-c", _NET_PROBE, *ports])
    got = dict(line.split() for line in out.splitlines())
    assert got["tcp"] == "ok" and got["udp"] == "ok", (out, err)
    deadline = time.monotonic() + 5
    while _accepted(tcp) + _accepted(udp) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)


def test_escape_confine_signal_the_host_or_another_sessions_child(make_handler, tree):
    other = make_handler(effects=["proc"], procs=["sleep"])
    r = other.dispatch("process", "spawn", ["sleep", ["61"], OPTS])
    assert r.name == "Ok", r
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    sleeps = [p for p in pids if _cmdline(p) == ["sleep", "61"] and _ppid(p) == os.getpid()]
    assert len(sleeps) == 1, sleeps
    victim = sleeps[0]
    h = _shell(make_handler, tree)
    # SIGWINCH to the host: ignored by default, so a leak would not end the run
    code, out, err = _sh(h, f"kill -TERM {victim}; echo $?; kill -WINCH {os.getpid()}; echo $?;"
                            f" kill -0 {os.getppid()}; echo $?;"
                            " sleep 30 & kill -TERM $!; wait $!; echo $?")
    assert out.split() == ["1", "1", "1", "143"], (out, err)
    assert _ppid(victim) == os.getpid() and _state(victim) != "Z"
    # a sibling: another child of the same session, in a domain of its own
    r2 = h.dispatch("process", "spawn", ["sleep", ["62"], OPTS])
    assert r2.name == "Ok", r2
    sibling = [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
               if _cmdline(p) == ["sleep", "62"] and _ppid(p) == os.getpid()]
    assert len(sibling) == 1, sibling
    code, out, err = _sh(h, f"kill -TERM {sibling[0]}; echo $?")
    assert out.split() == ["1"] and _state(sibling[0]) not in (None, "Z"), (out, err)
    h.dispatch("process", "kill", [r2.args[0], "SIGKILL"])
    h.dispatch("process", "wait", [r2.args[0]])
    # the same through an MCP server
    h = make_handler(effects=["mcp"], fs_read=[HERE], procs=[sys.executable])
    got = _probe(h, {"signal": victim})
    assert got["signal"] != "sent"
    assert _state(victim) != "Z"
    other.dispatch("process", "kill", [r.args[0], "SIGKILL"])
    other.dispatch("process", "wait", [r.args[0]])


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return None


def _status(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _ppid(pid):
    st = _status(pid)
    return int(st[1]) if st else None


def _state(pid):
    st = _status(pid)
    return st[0] if st else None


def _probe(h, args):
    server = f"{shlex.quote(sys.executable)} {shlex.quote(os.path.join(HERE, 'mcp_tiny_server.py'))} ok"
    r = h.dispatch("agent", "call_mcp", [server, "probe", json.dumps(args)])
    assert r.name == "Ok", r
    return json.loads(json.loads(r.args[0])["content"][0]["text"])


def test_escape_confine_mcp_server(make_handler, tree, listeners):
    tcp, _udp = listeners
    h = make_handler(effects=["mcp"], fs_read=[HERE, tree / "r"], procs=[sys.executable])
    got = _probe(h, {"read": str(tree / "secret"), "connect": tcp.getsockname()[1]})
    assert got["read"].startswith("error") and got["connect"].startswith("error"), got
    assert _accepted(tcp) == 0
    assert _probe(h, {"read": str(tree / "r" / "in.txt")}) == {"read": "inside\n"}


def test_escape_confine_git_hook_reads_outside(make_handler, tree):
    """``--allow-proc git`` with a repository in the write scope: a hook
    (written by the program, run by git) is held like any child."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    repo = tree / "w" / "repo"
    subprocess.run([git, "init", "-q", str(repo)], check=True, timeout=30)
    hook = repo / ".git" / "hooks" / "post-commit"
    hook.write_text(f"#!/bin/sh\ncat {shlex.quote(str(tree / 'secret'))} > leaked 2>&1\n"
                    f"echo pwned > {shlex.quote(str(tree / 'outside' / 'victim.txt'))}\n")
    hook.chmod(0o755)
    (repo / "f").write_text("x\n")
    # git dies on a global config it may not read: the operator lists it
    home_config = (os.path.expanduser("~/.gitconfig"), os.path.expanduser("~/.config/git"))
    h = _shell(make_handler, tree, limits=Limits(
        child_read_paths=(*Limits().child_read_paths, *home_config)))
    assert _run(h, "git", ["-C", str(repo), "add", "f"])[0] == 0
    code, out, err = _run(h, "git", ["-C", str(repo), "-c", "user.name=t", "-c",
                                     "user.email=t@t", "commit", "-qm", "m"])
    assert code == 0, err  # git works inside its scope...
    leaked = (repo / "leaked").read_text()
    assert "TOKEN" not in leaked and EACCES_TEXT in leaked  # ...its hook cannot read out
    assert (tree / "outside" / "victim.txt").read_text() == "victim\n"


def test_escape_confine_setuid_cannot_lift_the_domain(make_handler, tree):
    h = _shell(make_handler, tree)
    code, out, err = _sh(h, "grep NoNewPrivs /proc/self/status")
    # /proc is outside the read scope: the child cannot even look
    assert code != 0
    h2 = make_handler(effects=["proc"], fs_write=[tree / "w"], procs=["sh", "grep"])
    code, out, err = _sh(h2, "grep NoNewPrivs /proc/self/status")
    assert out.split() == ["NoNewPrivs:", "1"], (out, err)
    if os.geteuid() != 0:
        return  # a setuid binary of our own cannot show a change of user
    # root runs a setuid-nobody copy of `id -u`: the bit would make it 65534
    idu = tree / "r" / "idu"
    shutil.copy(shutil.which("id"), idu)
    os.chown(idu, 65534, 65534)
    idu.chmod(0o4755)
    loose = make_handler(effects=["proc"], procs=[str(idu)],
                         limits=Limits(confine_children=False))
    if _run(loose, str(idu), ["-u"])[1].strip() != "65534":
        pytest.skip("setuid bits are not honoured on this filesystem (nosuid)")
    h3 = make_handler(effects=["proc"], fs_read=[tree / "r"], procs=[str(idu)])
    assert _run(h3, str(idu), ["-u"])[1].strip() == "0"


# -- operator control (no catalogue rows) -------------------------------------------

def test_confine_children_off_runs_unconfined(make_handler, tree):
    h = _shell(make_handler, tree, limits=Limits(confine_children=False))
    code, out, _err = _sh(h, f"cat {shlex.quote(str(tree / 'secret'))}")
    assert (code, out) == (0, "TOKEN\n")


def test_require_confinement_refuses_to_spawn_unconfined(make_handler, tree):
    h = _shell(make_handler, tree, limits=Limits(confine_children=False, require_confinement=True))
    for kind, op, args in (("proc", "spawn", ["sh", []]), ("process", "run", ["sh", []]),
                           ("process", "spawn", ["sh", [], OPTS])):
        with pytest.raises(EffectError, match=rf"{kind}\.{op}: children must be confined "
                           r"\(Limits.require_confinement\) but Limits.confine_children is off"):
            h.dispatch(kind, op, args)
    m = make_handler(effects=["mcp"], procs=["sh"],
                     limits=Limits(confine_children=False, require_confinement=True))
    with pytest.raises(EffectError, match="agent.call_mcp: children must be confined"):
        m.dispatch("agent", "call_mcp", ["sh", "t", "{}"])
    # with confinement on, the requirement is met
    h = _shell(make_handler, tree, limits=Limits(require_confinement=True))
    assert _sh(h, "echo hi")[:2] == (0, "hi\n")


def test_confined_spawn_failures_read_as_before(make_handler, tree):
    h = make_handler(effects=["proc"], fs_read=[tree / "r"])
    r = h.dispatch("proc", "spawn", [str(tree / "nope"), []])
    assert r.name == "Err" and "No such file or directory (os error 2)" in r.args[0], r
    (tree / "r" / "noexec").write_text("#!/bin/sh\n")
    r = h.dispatch("proc", "spawn", [str(tree / "r" / "noexec"), []])
    assert r.name == "Err" and "Permission denied (os error 13)" in r.args[0], r
    # process.spawn learns it at spawn time (no handle for a child that never ran)
    r = h.dispatch("process", "spawn", [str(tree / "nope"), [], OPTS])
    assert r.name == "Err" and "No such file or directory (os error 2)" in r.args[0], r
    r = h.dispatch("process", "run", [str(tree / "r" / "noexec"), []])
    assert r.name == "Err" and "Permission denied (os error 13)" in r.args[0], r


def _cli(tmp_path, *args, stdin=None):
    import lexfast
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(lexfast.__file__))}
    return subprocess.run([sys.executable, "-m", "lexfast", *args], cwd=tmp_path, env=env,
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_cli_info_shows_confinement_and_no_confine_turns_it_off(tree):
    p = _cli(tree, "info", "--json")
    data = json.loads(p.stdout)
    assert data["confinement"]["landlock_abi"] == SUPPORT.abi
    assert data["confinement"]["available"] is True
    assert any("no_new_privs" in line for line in data["confinement"]["enforced"])
    text = _cli(tree, "info").stdout
    assert f"children: confined (Landlock ABI {SUPPORT.abi}, " in text
    req = json.dumps({"id": 1, "kind": "process", "op": "run",
                      "args": ["cat", [str(tree / "secret")]]}) + "\n"
    flags = ["--allow-effects", "proc", "--allow-proc", "cat", "--allow-fs-read",
             str(tree / "r")]
    held = json.loads(_cli(tree, "run", *flags, "-", stdin=req).stdout.splitlines()[-1])
    assert "TOKEN" not in json.dumps(held)
    loose = json.loads(_cli(tree, "run", "--no-confine", *flags, "-",
                            stdin=req).stdout.splitlines()[-1])
    assert "TOKEN" in json.dumps(loose)


def test_signal_reset_survives_the_helper(make_handler, tree):
    """posix_spawn's signal reset reaches the target through the helper's exec."""
    h2 = make_handler(effects=["proc"], fs_write=[tree / "w"], procs=["sh", "cat"])
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _code, out, _err = _sh(h2, "exec cat /proc/self/status", "process.run")
    finally:
        signal.signal(signal.SIGINT, old)
    fields = dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    assert int(fields["SigIgn"], 16) == 0 and int(fields["SigBlk"], 16) == 0


def test_malformed_operator_paths_are_a_clear_error(make_handler):
    for bad in (("usr",), "/usr", ("/usr", 3)):
        h = make_handler(effects=["proc"], procs=["true"], limits=Limits(child_read_paths=bad))
        with pytest.raises(EffectError, match=r"proc\.spawn: Limits\.child_read_paths must be "
                           "a tuple of absolute paths"):
            h.dispatch("proc", "spawn", ["true", []])
    h = make_handler(effects=["proc"], procs=["true"], limits=Limits(child_devices=("null",)))
    with pytest.raises(EffectError, match=r"Limits\.child_devices"):
        h.dispatch("proc", "spawn", ["true", []])


def test_escape_confine_abstract_unix_socket_of_the_host(make_handler, tree):
    """An abstract unix socket has no file for Landlock's file rules to
    judge: scoping (ABI 6) keeps the child to its own domain's, even with
    `net` granted."""
    if SUPPORT.abi < 6:
        pytest.skip(f"Landlock ABI {SUPPORT.abi} has no abstract-socket scoping (6 needed)")
    name = f"\0lexfast-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(name)
    srv.listen(4)
    srv.setblocking(False)
    try:
        own = f"\\0lexfast-own-{os.getpid()}"
        probe = ("import socket; s = socket.socket(socket.AF_UNIX)\n"
                 f"try:\n s.connect({name!r}); print('connected')\n"
                 "except OSError as e: print(e.errno)\n"
                 f"a = socket.socket(socket.AF_UNIX); a.bind('{own}'); a.listen(1)\n"
                 f"b = socket.socket(socket.AF_UNIX); b.connect('{own}'); print('own ok')")
        for effects in (("proc",), ("proc", "net")):
            h = _shell(make_handler, tree, effects=effects)
            code, out, err = _run(h, PY, ["-c", probe])
            assert out.split() == ["1", "own", "ok"], (out, err)  # EPERM; its own works
        with pytest.raises(BlockingIOError):
            srv.accept()
    finally:
        srv.close()


def test_escape_confine_ptrace_the_host(make_handler, tree):
    """ptrace outside the child's domain is refused at every Landlock ABI
    (attach, seize, /proc/<pid>/mem), even with the read scope open (``/``).
    With a scoped read list /proc is not readable at all, so the host's
    environ is not either; with an empty one (any) it is: SECURITY.md."""
    me = os.getpid()
    probe = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
             "for req in (16, 0x4206):\n"
             f"    print(libc.ptrace(req, {me}, None, None), ctypes.get_errno())\n"
             "try:\n"
             f"    open('/proc/{me}/mem', 'rb').read(1); print('mem read')\n"
             "except OSError as e:\n    print('mem', e.errno)\n")
    h = make_handler(effects=["proc"], fs_write=[tree / "w"], procs=[PY])
    code, out, err = _run(h, PY, ["-c", probe])
    assert out.split() == ["-1", "1", "-1", "1", "mem", "13"], (out, err)  # EPERM, EACCES
    h = _shell(make_handler, tree)
    code, out, err = _sh(h, f"cat /proc/{me}/environ; ls /proc/{me}/fd")
    assert "PATH=" not in out and err.count(EACCES_TEXT) == 2, (out, err)
