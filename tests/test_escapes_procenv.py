"""Escape catalogue, processes and their environment (issues 13.1, 13.9,
22.1; SECURITY.md "Processes and their environment", rows P*).

A granted binary must run as the operator allowed it: under a non-empty
``--allow-proc`` a program may set only an allowlist of variables in its
environment, with checked values, and the binary runs as the allowed entry
(the entry's path to exec, its name as argv[0]) however the program spelled
it. Real children, real files; each test also shows that nothing ran.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys

import pytest

from lexfast import NONE, EffectError, Limits, Map, some
from lexfast.effects.agent.mcp_client import ENV_KEEP

PROC = ["proc"]
OPTS0 = {"cwd": NONE, "env": Map(), "stdin": NONE}


def opts(env=None, cwd=None):
    return {**OPTS0, "env": Map(env or {}), "cwd": some(cwd) if cwd is not None else NONE}


def is_err(v, needle):
    return v.name == "Err" and needle in str(v.args[0])


def _fake(dirpath, name, marker):
    tool = dirpath / name
    tool.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(marker))}\necho planted\n")
    tool.chmod(0o755)
    return tool


def _lines(h, hd, code=0):
    out = []
    while True:
        line = h.dispatch("process", "read_stdout_line", [hd])
        if line == NONE:
            break
        out.append(line.args[0])
    got = h.dispatch("process", "wait", [hd])["code"]
    assert code is None or got == code, got
    return out


def _run_env(h, env):
    """The environment `env -0` (granted) sees when spawned with ``env``."""
    r = h.dispatch("process", "spawn", ["env", ["-0"], opts(env)])
    assert r.name == "Ok", r
    text = "\n".join(_lines(h, r.args[0]))
    return dict(item.split("=", 1) for item in text.split("\0") if item)


# -- the environment is an allowlist -------------------------------------------------

@pytest.mark.skipif(shutil.which("less") is None, reason="less is not installed")
def test_escape_env_lessopen_runs_a_command(make_handler, tmp_path):
    """`--allow-proc less` with `LESSOPEN="|cmd %s"` runs any command."""
    f = tmp_path / "f.txt"
    f.write_text("hello\n")
    marker = tmp_path / "ran"
    evil = f"|touch {shlex.quote(str(marker))}; cat %s"
    h = make_handler(effects=PROC, procs=["less"])
    for key in ("LESSOPEN", "LESSCLOSE", "LESSKEY", "LESSKEYIN", "LESS", "LESSSECURE",
                "VISUAL", "EDITOR", "SHELL"):
        r = h.dispatch("process", "spawn", ["less", [str(f)], opts({key: evil})])
        assert r == r.__class__("Err", (f"process.spawn: env may not set `{key}` under "
                                        "--allow-proc",)), (key, r)
    assert not marker.exists()
    # the trick is real: without --allow-proc (any binary may run) less runs it
    h2 = make_handler(effects=PROC)
    r = h2.dispatch("process", "spawn", ["less", [str(f)], opts({"LESSOPEN": evil})])
    assert _lines(h2, r.args[0]) == ["hello"]
    assert marker.exists()


# Variables that make some granted tool read config, helpers, modules or
# keys from elsewhere, or write where the program says. The allowlist
# refuses them all (and everything else not listed).
REROUTING = (
    "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CONFIG_DIRS", "XDG_RUNTIME_DIR",
    "OPENSSL_CONF", "OPENSSL_MODULES", "OPENSSL_ENGINES", "SSLKEYLOGFILE", "SSL_CERT_FILE",
    "CURL_HOME", "CURL_CA_BUNDLE", "WGETRC", "TAR_OPTIONS", "GZIP", "XZ_DEFAULTS", "XZ_OPT",
    "ZSTD_CLEVEL", "SSH_ASKPASS", "SSH_AUTH_SOCK", "SUDO_ASKPASS", "GIT_ASKPASS", "EDITOR",
    "VISUAL", "PAGER", "MANPAGER", "BROWSER", "TMPDIR", "TEMP", "TMP", "GTK_MODULES",
    "GTK_PATH", "QT_PLUGIN_PATH", "GIO_MODULE_DIR", "GCONV_PATH", "LOCPATH", "NLSPATH",
    "TZDIR", "TERMINFO", "TERMINFO_DIRS", "TERMCAP", "HOSTALIASES", "RES_OPTIONS",
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GLIBC_TUNABLES", "MALLOC_CHECK_", "PATH",
    "BASH_ENV", "ENV", "SHELLOPTS", "PS4", "IFS", "PYTHONPATH", "PYTHONSTARTUP", "PERL5OPT",
    "RUBYOPT", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS", "GIT_CONFIG_GLOBAL", "GIT_EXEC_PATH",
    "http_proxy", "HTTPS_PROXY", "ALL_PROXY", "NETRC", "MAIL", "LESSOPEN", "path", "lang",
    "Lang", "LC_FOO", "LANGX", "TZ_", "TERM2", "NO_COLORS", "FOO",
)


def test_escape_env_config_helper_and_path_variables(make_handler, tmp_path):
    marker = tmp_path / "ran"
    tool = _fake(tmp_path, "tool", marker)
    h = make_handler(effects=PROC, procs=[str(tool)])
    for key in REROUTING:
        r = h.dispatch("process", "spawn", [str(tool), [], opts({key: str(tmp_path)})])
        assert r == r.__class__("Err", (f"process.spawn: env may not set `{key}` under "
                                        "--allow-proc",)), (key, r)
        # one bad entry among good ones refuses the whole spawn
        r = h.dispatch("process", "spawn", [str(tool), [], opts({"LANG": "C", key: "x"})])
        assert is_err(r, f"env may not set `{key}`"), (key, r)
    assert not marker.exists()


def test_escape_env_only_allowed_variables_arrive(make_handler):
    """What a program sets arrives only if allowed; the rest of the child's
    environment is the operator's, unchanged."""
    h = make_handler(effects=PROC, procs=["env"],
                     limits=Limits(child_env_allow=("MY_APP_TOKEN", "MYAPP_*")))
    mine = {"LANG": "C.UTF-8", "LANGUAGE": "de:en", "LC_ALL": "C", "LC_MESSAGES": "sr_RS@latin",
            "TZ": "Europe/Paris", "TERM": "xterm-256color", "NO_COLOR": "1",
            "MY_APP_TOKEN": "anything / goes .. here", "MYAPP_MODE": "fast"}
    got = _run_env(h, mine)
    want = dict(os.environ)
    want.update(mine)
    assert got == want
    # names the operator did not list stay refused, patterns match by prefix only
    for key in ("MY_APP_TOKEN2", "MYAPP", "XMYAPP_A", "my_app_token"):
        assert is_err(h.dispatch("process", "spawn", ["env", [], opts({key: "v"})]),
                      f"env may not set `{key}` under --allow-proc"), key


@pytest.mark.parametrize("key,value", [
    ("LANG", "/tmp/evil"), ("LANG", "../../tmp/evil"), ("LANG", "en_US/../../x"),
    ("LC_ALL", "/tmp/evil"), ("LC_CTYPE", "./evil"), ("LC_MESSAGES", "a/b"),
    ("LANGUAGE", "../../../../tmp/x"), ("LANGUAGE", "en:/tmp/x"), ("LANG", "C\nX=1"),
    ("LANG", "x" * 300), ("LC_TIME", "C;LC_ALL=/tmp"),
    ("TZ", "/etc/shadow"), ("TZ", ":/tmp/zone"), ("TZ", "../../../tmp/zone"),
    ("TZ", "Europe/../../../tmp/zone"), ("TZ", ":../x"), ("TZ", "a b"), ("TZ", "~/z"),
    ("TZ", "::/tmp/zone"), ("TZ", "/"),
    ("TERM", "/tmp/terminfo/x"), ("TERM", "../x"), ("TERM", "a/b"), ("TERM", ".."),
    ("TERM", ".hidden"), ("TERM", "x\x1b]0;t\x07"),
])
def test_escape_env_locale_tz_term_values_naming_files(make_handler, tmp_path, key, value):
    """A locale, zone or terminal name is a file lookup: a value with a path
    or `..` would make glibc, gettext or ncurses read the program's file."""
    marker = tmp_path / "ran"
    tool = _fake(tmp_path, "tool", marker)
    h = make_handler(effects=PROC, procs=[str(tool)],
                     limits=Limits(child_env_allow=("LANG", "L*", "TZ", "TERM")))
    r = h.dispatch("process", "spawn", [str(tool), [], opts({key: value})])
    assert r.name == "Err" and r.args[0].startswith(
        f"process.spawn: env may not set `{key}` to `"), r
    assert "under --allow-proc (" in r.args[0]
    assert not marker.exists()


def test_good_locale_tz_term_values_still_work(make_handler):
    h = make_handler(effects=PROC, procs=["env"])
    for key, value in (("LANG", "en_US.UTF-8"), ("LANG", ""), ("LC_ALL", "POSIX"),
                       ("LANGUAGE", "pt_BR:pt:en"), ("TZ", "UTC"), ("TZ", ":Europe/Paris"),
                       ("TZ", "America/Argentina/Buenos_Aires"),
                       ("TZ", "CET-1CEST,M3.5.0,M10.5.0/3"), ("TZ", "<+0330>-3:30"),
                       ("TZ", ""), ("TERM", "dumb"), ("TERM", "xterm+256color"),
                       ("NO_COLOR", "")):
        assert _run_env(h, {key: value})[key] == value, (key, value)


def test_escape_env_malformed_names(make_handler, tmp_path):
    """Empty names, `=` (the child would parse `LANG=x=/p` as LANG), NUL,
    spaces: never passed on."""
    marker = tmp_path / "ran"
    tool = _fake(tmp_path, "tool", marker)
    h = make_handler(effects=PROC, procs=[str(tool)], limits=Limits(child_env_allow=("A*",)))
    for key in ("", "=", "LANG=/tmp/x", "A=B", "A\0B", "LANG\0", " LANG", "LANG ", "A-B",
                "1A", "A.B", "BASH_FUNC_ls%%", "A\nB", "\ud800"):
        r = h.dispatch("process", "spawn", [str(tool), [], opts({key: "C"})])
        assert r.name == "Err" and r.args[0].startswith("process.spawn: env may not set `") \
            and r.args[0].endswith("under --allow-proc (not a variable name)"), (key, r)
    assert not marker.exists()
    # a malformed operator allowlist is the operator's error, said clearly
    for bad in ("LANG", ("A=B",), ("*",), ("A*B",), (1,), ([],)):
        h = make_handler(effects=PROC, procs=[str(tool)], limits=Limits(child_env_allow=bad))
        with pytest.raises(EffectError, match="Limits.child_env_allow"):
            h.dispatch("process", "spawn", [str(tool), [], opts({"X": "1"})])
    assert not marker.exists()


# -- MCP servers ----------------------------------------------------------------------

MCP_SERVER = """\
import json, os, sys
for raw in sys.stdin:
    msg = json.loads(raw)
    if msg.get("method") == "initialize":
        res = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {},
               "serverInfo": {"name": "t", "version": "0"}}
    elif msg.get("method") == "tools/call":
        res = {"content": [], "argv0": sys.argv[0], "env": sorted(os.environ)}
    else:
        continue
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": res}) + "\\n")
    sys.stdout.flush()
"""


def _mcp_script(dirpath, name="srv"):
    srv = dirpath / name
    srv.write_text(f"#!{sys.executable}\n{MCP_SERVER}")
    srv.chmod(0o755)
    return srv


def test_escape_env_mcp_command_line_cannot_set_variables(make_handler, tmp_path, monkeypatch):
    """An MCP command line is argv, never a shell: `FOO=bar cmd` is a command
    named `FOO=bar`, not an assignment; the server's environment is the
    operator's filtered one, which nothing in the program reaches."""
    marker = tmp_path / "ran"
    tool = _fake(tmp_path, "tool", marker)
    srv = _mcp_script(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    h = make_handler(effects=["mcp"], procs=[str(tool), str(srv)],
                     limits=Limits(mcp_timeout_s=5.0, mcp_start_timeout_s=5.0))
    q = shlex.quote
    for line in (f"LD_PRELOAD=/tmp/x.so {q(str(tool))}", f"PATH={q(str(tmp_path))} tool",
                 f"LESSOPEN='|touch {q(str(marker))}' {q(str(tool))}",
                 f"env LESSOPEN=x {q(str(tool))}", f"exec {q(str(tool))}",
                 f"command {q(str(tool))}", f"alias x={q(str(tool))}"):
        r = h.dispatch("agent", "call_mcp", [line, "t", "{}"])
        assert is_err(r, "not in --allow-proc"), (line, r)
    assert not marker.exists()
    r = h.dispatch("agent", "call_mcp", [f"{q(str(srv))} HOME=/tmp LD_PRELOAD=x", "t", "{}"])
    assert r.name == "Ok", r
    env = set(json.loads(r.args[0])["env"])
    assert env <= set(ENV_KEEP) | {"LC_CTYPE"}, env  # (Python may coerce LC_CTYPE)
    assert "OPENAI_API_KEY" not in env and "LD_PRELOAD" not in env


def test_escape_argv0_mcp_server_runs_as_its_entry(make_handler, tmp_path):
    srv = _mcp_script(tmp_path, "srv")
    (tmp_path / "alias").symlink_to("srv")
    h = make_handler(effects=["mcp"], procs=[str(tmp_path / "alias")],
                     limits=Limits(mcp_timeout_s=5.0, mcp_start_timeout_s=5.0))
    for spelling in (str(srv), f"{tmp_path}/../{tmp_path.name}/srv"):
        r = h.dispatch("agent", "call_mcp", [shlex.quote(spelling), "t", "{}"])
        assert r.name == "Ok", r
        assert json.loads(r.args[0])["argv0"] == str(tmp_path / "alias"), spelling


# -- argv[0]: a granted binary runs as the entry ----------------------------------------

def _spawn_all(h, cmd, args):
    out = [h.dispatch("proc", "spawn", [cmd, args]), h.dispatch("process", "run", [cmd, args])]
    r = h.dispatch("process", "spawn", [cmd, args, OPTS0])
    if r.name == "Ok":
        lines = _lines(h, r.args[0], code=None)
        out.append(r.__class__("Ok", ({"stdout": "".join(x + "\n" for x in lines)},)))
    else:
        out.append(r)
    return out


@pytest.mark.skipif(not (os.path.islink("/usr/bin/xzcat") and os.path.exists("/usr/bin/xz")
                         and shutil.which("xzcat")), reason="no xz/xzcat multi-call pair")
def test_escape_argv0_xz_spelled_for_xzcat(make_handler, tmp_path):
    """`--allow-proc xzcat` must not let `/usr/bin/xz -f F` compress (and
    delete) F: the file is xz's, but the operator allowed it as xzcat."""
    f = tmp_path / "F"
    f.write_text("keep me\n")
    (tmp_path / "link").symlink_to("/usr/bin/xz")
    h = make_handler(effects=PROC, procs=["xzcat"])
    for cmd in ("/usr/bin/xz", "/usr/bin/unxz", f"{tmp_path}/link", "/usr/bin/../bin/xz"):
        for r in _spawn_all(h, cmd, ["-f", str(f)]):
            assert r.name == "Ok" and r.args[0]["stdout"] == "keep me\n", (cmd, r)
        assert f.read_text() == "keep me\n" and sorted(os.listdir(tmp_path)) == ["F", "link"]
    # bare spellings other than the entry stay refused
    for r in _spawn_all(h, "xz", ["-f", str(f)]):
        assert is_err(r, 'not in --allow-proc ["xzcat"]'), r
    h2 = make_handler(effects=["mcp"], procs=["xzcat"],
                      limits=Limits(mcp_timeout_s=2.0, mcp_start_timeout_s=2.0))
    r = h2.dispatch("agent", "call_mcp", [f"/usr/bin/xz -f {shlex.quote(str(f))}", "t", "{}"])
    assert r.name == "Err"
    assert f.read_text() == "keep me\n" and sorted(os.listdir(tmp_path)) == ["F", "link"]


@pytest.mark.skipif(not (os.path.islink("/bin/rbash") and shutil.which("rbash")),
                    reason="no rbash -> bash link")
def test_escape_argv0_bash_spelled_for_rbash(make_handler, tmp_path):
    """`--allow-proc rbash` must stay a restricted shell when spelled
    `/bin/bash` (bash picks restricted mode, and login mode, from argv[0])."""
    script = "echo $0; shopt -q restricted_shell && echo restricted; cd / && echo escaped"
    want_prefix = ["rbash", "restricted"]
    h = make_handler(effects=PROC, procs=["rbash"])
    for cmd in ("/bin/bash", "/usr/bin/bash", "/bin/rbash", "rbash"):
        for r in _spawn_all(h, cmd, ["-c", script]):
            assert r.name == "Ok", (cmd, r)
            out = r.args[0]["stdout"].splitlines()
            assert out == want_prefix, (cmd, out)


def test_escape_argv0_alias_runs_as_the_entry(make_handler, tmp_path, monkeypatch):
    """A test-local multi-call pair `alias -> multi` (a script sees the path
    exec was given as `$0`): granted as `alias`, any spelling of the file
    runs as `alias`, never as `multi`."""
    real = tmp_path / "real"
    real.mkdir()
    multi = real / "multi"
    multi.write_text('#!/bin/sh\necho "$0"\n')
    multi.chmod(0o755)
    (real / "alias").symlink_to("multi")
    (real / "other").symlink_to("multi")
    entry = str(real / "alias")
    h = make_handler(effects=PROC, procs=[entry])
    for cmd in (str(multi), str(real / "other"), f"{real}/../real/multi", entry):
        for r in _spawn_all(h, cmd, []):
            assert r.name == "Ok" and r.args[0]["stdout"] == entry + "\n", (cmd, r)
    # a relative spelling is resolved here, not in the child's cwd, which
    # holds another `real/multi`: exec gets the entry's absolute path
    other = tmp_path / "b" / "real"
    other.mkdir(parents=True)
    _fake(other, "multi", tmp_path / "ran")
    monkeypatch.chdir(tmp_path)
    r = h.dispatch("process", "spawn", ["real/multi", [], opts(cwd=str(tmp_path / "b"))])
    assert _lines(h, r.args[0]) == [entry]
    assert not (tmp_path / "ran").exists()
