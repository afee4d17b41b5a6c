"""The escape catalogue (issue 9, SECURITY.md): one test per known trick,
named after it, each calling the handler end to end and asserting the safe
outcome: a clear error naming the flag, and nothing read, written, run or
sent. Real files, real children, real servers on 127.0.0.1 (and a second,
forbidden one on 127.0.0.2 that must never hear from us).

Families test many of these in their own files too; the catalogue keeps one
named test per trick so SECURITY.md's table maps each case to one test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from lexfast import NONE, BudgetExceeded, EffectError, Limits, Map, PolicyDenied, Variant, some
from lexfast.effects import io as iomod
from lexfast.scope import roots as rootsmod

FS = ["io", "fs_walk", "fs_write"]
PROC = ["proc"]
OPTS0 = {"cwd": NONE, "env": Map(), "stdin": NONE}
T = 10


@pytest.fixture
def tree(tmp_path):
    """tmp/D/{a.txt, sub/b.txt, link_out -> tmp/out, file_out -> ../out/secret},
    tmp/D2/g.txt (a sibling prefix), tmp/out/secret (outside every scope)."""
    d = tmp_path / "D"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("inside")
    (d / "sub" / "b.txt").write_text("sb")
    (tmp_path / "D2").mkdir()
    (tmp_path / "D2" / "g.txt").write_text("g")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "secret").write_text("secret")
    (d / "link_out").symlink_to(tmp_path / "out")
    (d / "file_out").symlink_to("../out/secret")
    return tmp_path


def fs_handler(make_handler, tree, **kw):
    D = tree / "D"
    return make_handler(effects=FS + ["kv", "sql"], fs_read=[D], fs_write=[D], **kw)


def outside_untouched(tree):
    assert sorted(os.listdir(tree / "out")) == ["secret"]
    assert (tree / "out" / "secret").read_text() == "secret"


def read_denied(h, path):
    with pytest.raises(PolicyDenied, match="outside --allow-fs-read"):
        h.dispatch("io", "read", [path])


def write_denied(h, path):
    with pytest.raises(PolicyDenied, match="outside --allow-fs-write"):
        h.dispatch("io", "write", [path, "pwned"])


def is_err(v, needle):
    return v.name == "Err" and needle in str(v.args[0])


# -- paths ----------------------------------------------------------------------------

def test_escape_path_dotdot_traversal(make_handler, tree):
    h = fs_handler(make_handler, tree)
    D = tree / "D"
    read_denied(h, f"{D}/../out/secret")
    read_denied(h, f"{D}/sub/../../out/secret")
    write_denied(h, f"{D}/../out/new")
    assert is_err(h.dispatch("fs", "stat", [f"{D}/../out/secret"]), "outside --allow-fs-read")
    assert is_err(h.dispatch("fs", "mkdir_p", [f"{D}/../out/dir"]), "outside --allow-fs-write")
    assert is_err(h.dispatch("kv", "open", [f"{D}/../out/kv"]), "outside --allow-fs-write")
    assert is_err(h.dispatch("sql", "open", [f"{D}/../out/x.db"]), "outside --allow-fs-write")
    outside_untouched(tree)


def test_escape_path_absolute_outside(make_handler, tree):
    h = fs_handler(make_handler, tree)
    read_denied(h, "/etc/passwd")
    read_denied(h, str(tree / "out" / "secret"))
    write_denied(h, str(tree / "out" / "new"))
    assert is_err(h.dispatch("fs", "copy", [str(tree / "out" / "secret"), str(tree / "D" / "c")]),
                  "outside --allow-fs-read")
    assert not (tree / "D" / "c").exists()
    outside_untouched(tree)


def test_escape_path_relative_outside(make_handler, tree, monkeypatch):
    h = fs_handler(make_handler, tree)
    monkeypatch.chdir(tree / "D")  # relative paths resolve against the cwd
    read_denied(h, "../out/secret")
    write_denied(h, "../out/new")
    monkeypatch.chdir(tree)
    read_denied(h, "out/secret")
    assert h.dispatch("io", "read", ["D/a.txt"]).args[0] == "inside"  # relative inside is fine
    outside_untouched(tree)


def test_escape_symlink_file(make_handler, tree):
    h = fs_handler(make_handler, tree)
    D = tree / "D"
    read_denied(h, f"{D}/file_out")
    write_denied(h, f"{D}/file_out")
    assert is_err(h.dispatch("fs", "copy", [f"{D}/file_out", f"{D}/c"]), "outside --allow-fs-read")
    assert is_err(h.dispatch("sql", "open", [f"{D}/file_out"]), "outside --allow-fs-write")
    assert is_err(h.dispatch("fs", "copy", [f"{D}/a.txt", f"{D}/file_out"]), "outside --allow-fs-write")
    # a dangling link names a file that does not exist yet: still outside
    (D / "dangle").symlink_to(tree / "out" / "new")
    write_denied(h, f"{D}/dangle")
    assert is_err(h.dispatch("kv", "open", [f"{D}/dangle"]), "outside --allow-fs-write")
    assert not (D / "c").exists()
    outside_untouched(tree)


def test_escape_symlink_directory(make_handler, tree):
    h = fs_handler(make_handler, tree)
    D = tree / "D"
    read_denied(h, f"{D}/link_out/secret")
    write_denied(h, f"{D}/link_out/new")
    assert is_err(h.dispatch("fs", "list_dir", [f"{D}/link_out"]), "outside --allow-fs-read")
    assert is_err(h.dispatch("fs", "mkdir_p", [f"{D}/link_out/x"]), "outside --allow-fs-write")
    assert is_err(h.dispatch("kv", "open", [f"{D}/link_out/kv"]), "outside --allow-fs-write")
    assert is_err(h.dispatch("fs", "remove", [f"{D}/link_out/secret"]), "outside --allow-fs-write")
    outside_untouched(tree)


def test_escape_hardlink_write_replaces_the_link_not_the_outside_file(make_handler, tree):
    """A hardlink is the same inode under another name: no path check can see
    it (SECURITY.md says so). What lexfast does promise: its writes replace
    the name inside the scope (temp file + rename), so writing through a
    hardlink never changes the file outside; and no effect makes hardlinks."""
    D = tree / "D"
    os.link(tree / "out" / "secret", D / "hard")
    h = fs_handler(make_handler, tree)
    assert h.dispatch("io", "write", [f"{D}/hard", "replaced"]).name == "Ok"
    assert (D / "hard").read_text() == "replaced"
    assert os.stat(D / "hard").st_ino != os.stat(tree / "out" / "secret").st_ino
    os.link(tree / "out" / "secret", D / "hard2")
    assert h.dispatch("fs", "copy", [f"{D}/a.txt", f"{D}/hard2"]).name == "Ok"
    assert (D / "hard2").read_text() == "inside"
    assert h.dispatch("fs", "copy", [f"{D}/a.txt", f"{D}/copy"]).name == "Ok"
    assert os.stat(D / "copy").st_nlink == 1 and os.stat(D / "a.txt").st_nlink == 1
    outside_untouched(tree)
    assert os.stat(tree / "out" / "secret").st_nlink == 1  # both names were replaced
    # the documented limit: a hardlink made by someone else is read as the file it is
    os.link(tree / "out" / "secret", D / "hard3")
    assert h.dispatch("io", "read", [f"{D}/hard3"]).args[0] == "secret"


def _swap(victim, outside):
    os.rename(victim, str(victim) + ".moved")
    os.symlink(outside, victim)


def test_escape_toctou_symlink_swap_io_read(make_handler, tree, monkeypatch):
    h = fs_handler(make_handler, tree)
    D = tree / "D"
    (tree / "out" / "b.txt").write_text("outside")
    real = iomod.open_in_scope

    def racing(*a, **kw):  # after every path check passed, before the open
        _swap(D / "sub", tree / "out")
        return real(*a, **kw)

    monkeypatch.setattr(iomod, "open_in_scope", racing)
    read_denied(h, f"{D}/sub/b.txt")
    assert (D / "sub").is_symlink()  # the swap did happen


def test_escape_toctou_symlink_swap_io_write(make_handler, tree, monkeypatch):
    h = fs_handler(make_handler, tree)
    D = tree / "D"
    real = iomod.write_file_atomic

    def racing(*a, **kw):
        _swap(D / "sub", tree / "out")
        return real(*a, **kw)

    monkeypatch.setattr(iomod, "write_file_atomic", racing)
    write_denied(h, f"{D}/sub/new")
    assert (D / "sub").is_symlink()
    outside_untouched(tree)


@pytest.mark.parametrize("op", ["stat", "list_dir", "copy", "remove"])
def test_escape_toctou_symlink_swap_fs_ops(make_handler, tree, monkeypatch, op):
    h = fs_handler(make_handler, tree)
    D = tree / "D"
    (tree / "out" / "b.txt").write_text("outside")
    monkeypatch.chdir(D)  # relative paths take the checked path
    real = rootsmod.open_resolved
    done = []

    def racing(*a, **kw):
        if not done:
            done.append(1)
            _swap(D / "sub", tree / "out")
        return real(*a, **kw)

    monkeypatch.setattr(rootsmod, "open_resolved", racing)
    path = "sub" if op == "list_dir" else "sub/b.txt"
    r = h.dispatch("fs", op, [path, "copied"] if op == "copy" else [path])
    flag = "--allow-fs-write" if op == "remove" else "--allow-fs-read"
    assert is_err(r, f"outside {flag}"), r
    assert done and (D / "sub").is_symlink()
    assert (tree / "out" / "b.txt").read_text() == "outside" and not (D / "copied").exists()


def test_escape_kv_store_files_symlinked_out(make_handler, tree):
    """lmdb opens `data.mdb` and `lock.mdb` by name inside the store's
    directory: symlinks planted there must not carry the store outside."""
    D, out = tree / "D", tree / "out"
    for target in ("data.mdb", "lock.mdb"):
        store = D / f"kv-{target}"
        store.mkdir()
        (store / target).symlink_to(out / target)
        h = fs_handler(make_handler, tree)
        r = h.dispatch("kv", "open", [str(store)])
        assert r == r.__class__("Err", (f"kv.open: `{store}` outside --allow-fs-write",)), r
    outside_untouched(tree)
    # a link that stays inside the scope is the scope's business
    inside = D / "kv-in"
    inside.mkdir()
    (inside / "data.mdb").symlink_to(D / "real.mdb")
    h = fs_handler(make_handler, tree)
    k = h.dispatch("kv", "open", [str(inside)]).args[0]
    assert h.dispatch("kv", "put", [k, "k", b"v"]).name == "Ok"
    assert (D / "real.mdb").stat().st_size > 0


def test_escape_sqlite_journal_symlinked_out(make_handler, tree):
    """SQLite makes `-wal`, `-shm` and `-journal` beside the database by
    name; symlinks planted there point outside. SQLite opens them with
    O_NOFOLLOW: the write fails or the link is unlinked, never followed."""
    D, out = tree / "D", tree / "out"
    for name in ("w.db-wal", "w.db-shm", "j.db-journal"):
        (out / name).write_text("precious")
        (D / name).symlink_to(out / name)
    h = fs_handler(make_handler, tree)
    for db, pre in (("w.db", None), ("j.db", "PRAGMA journal_mode=DELETE")):
        k = h.dispatch("sql", "open", [str(D / db)]).args[0]
        if pre:
            h.dispatch("sql", "query", [k, pre, []])
        h.dispatch("sql", "exec", [k, "CREATE TABLE t(x)", []])
        h.dispatch("sql", "exec", [k, "INSERT INTO t VALUES (1)", []])
        h.dispatch("sql", "close", [k])
    for name in ("w.db-wal", "w.db-shm", "j.db-journal"):
        assert (out / name).read_text() == "precious", name
    assert sorted(os.listdir(out)) == ["j.db-journal", "secret", "w.db-shm", "w.db-wal"]


def test_escape_sibling_prefix(make_handler, tree):
    h = fs_handler(make_handler, tree)
    D2 = tree / "D2"
    read_denied(h, f"{D2}/g.txt")
    write_denied(h, f"{D2}/new")
    assert is_err(h.dispatch("fs", "exists", [f"{D2}/g.txt"]), "outside --allow-fs-read")
    assert is_err(h.dispatch("kv", "open", [f"{D2}/kv"]), "outside --allow-fs-write")
    assert is_err(h.dispatch("sql", "open", [f"{D2}/x.db"]), "outside --allow-fs-write")
    assert sorted(os.listdir(D2)) == ["g.txt"]


def test_escape_read_root_dotdot_and_symlink(make_handler, tree):
    D = tree / "D"
    h = make_handler(effects=["io"], read_root=str(D))
    assert h.dispatch("io", "read", ["a.txt"]).args[0] == "inside"
    for p in ("../out/secret", "/../out/secret", "sub/../../out/secret", "link_out/secret",
              "file_out"):
        with pytest.raises(PolicyDenied, match="outside the read root"):
            h.dispatch("io", "read", [p])


def test_escape_glob_reaching_outside(make_handler, tree):
    h = fs_handler(make_handler, tree)
    D = tree / "D"
    for pat in (f"{D}/../out/*", f"{D}/../*/secret", f"{tree}/*/secret", f"{D}/link_out/*",
                f"{D}/*/secret", f"{D}/**/secret", "/etc/pass*"):
        r = h.dispatch("fs", "glob", [pat])
        assert r.name == "Err" and "outside --allow-fs-read" in r.args[0] or r.args[0] == [], (pat, r)
    assert h.dispatch("fs", "glob", [f"{D}/*.txt"]).args[0] == [f"{D}/a.txt"]


def test_escape_nul_byte_in_path(make_handler, tree):
    h = fs_handler(make_handler, tree)
    D = tree / "D"
    # a C open would cut `a.txt\0/../../out/secret` at the NUL; none of these may
    # succeed or touch the file system
    read_denied(h, f"{D}/a.txt\0/../../out/secret")
    write_denied(h, f"{D}/new\0/../../out/x")
    assert h.dispatch("fs", "stat", [f"{D}/a.txt\0"]).name == "Err"
    assert h.dispatch("fs", "mkdir_p", [f"{D}/d\0x"]).name == "Err"
    assert is_err(h.dispatch("kv", "open", [f"{D}/k\0v"]), "outside --allow-fs-write")
    assert is_err(h.dispatch("sql", "open", [f"{D}/s\0.db"]), "outside --allow-fs-write")
    assert sorted(os.listdir(D)) == ["a.txt", "file_out", "link_out", "sub"]
    outside_untouched(tree)


@pytest.mark.parametrize("path", ["/proc/self/environ", "/proc/thread-self/environ",
                                  f"/proc/{os.getpid()}/environ"])
def test_escape_proc_self_environ(make_handler, path):
    h = make_handler(effects=FS, fs_read=["/"])
    read_denied(h, path)
    assert is_err(h.dispatch("fs", "stat", [path]), "outside --allow-fs-read")


def test_escape_proc_self_mem(make_handler):
    h = make_handler(effects=FS, fs_read=["/"], fs_write=["/"])
    read_denied(h, "/proc/self/mem")
    write_denied(h, "/proc/self/mem")


def test_escape_proc_magic_links(make_handler, tree):
    h = make_handler(effects=FS, fs_read=["/"])
    for p in ("/proc/self/root/etc/passwd", "/proc/self/cwd", "/proc/self/exe",
              "/proc/self/fd/0", "/proc/1/root"):
        read_denied(h, p)
        assert is_err(h.dispatch("fs", "stat", [p]), "outside --allow-fs-read"), p
    # a symlink into /proc under an open scope is refused the same way
    (tree / "D" / "env").symlink_to("/proc/self/environ")
    read_denied(make_handler(effects=["io"]), str(tree / "D" / "env"))


# -- hosts ----------------------------------------------------------------------------

class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _do(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.server.seen.append((self.command, self.path))
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/redirect":
            self.send_response(int(q.get("code", 302)))
            self.send_header("Location", q["to"])
            body = b""
        else:
            self.send_response(200)
            body = json.dumps({"ok": True}).encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _do


def _serve(addr):
    srv = ThreadingHTTPServer((addr, 0), _Recorder)
    srv.daemon_threads = True
    srv.seen = []
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return srv, t


@pytest.fixture(scope="module")
def servers():
    """``(allowed, forbidden)``: 127.0.0.1 is in the allow list, the server on
    127.0.0.2 is not and must receive nothing."""
    a, ta = _serve("127.0.0.1")
    try:
        b, tb = _serve("127.0.0.2")
    except OSError:
        a.shutdown()
        a.server_close()
        pytest.skip("127.0.0.2 is not routable here")
    yield a, b
    for s, t in ((a, ta), (b, tb)):
        s.shutdown()
        s.server_close()
        t.join(T)


def _req(url, method="GET"):
    return {"method": method, "url": url, "headers": Map(), "body": NONE,
            "timeout_ms": some(3000)}


def all_clients_refuse(h, url):
    """Every client effect refuses ``url`` with a clear error."""
    with pytest.raises(EffectError) as e:
        r = h.dispatch("http", "get", [url])
        if r.name == "Err":  # a soft refusal (invalid URL) is fine too
            raise EffectError(str(r.args[0]))
    msgs = [str(e.value)]
    r = h.dispatch("http", "send", [_req(url)])
    assert r.name == "Err", (url, r)
    msgs.append(str(r.args[0]))
    try:
        r = h.dispatch("net", "get", [url])
        assert r.name == "Err", (url, r)
        msgs.append(str(r.args[0]))
    except PolicyDenied as pd:
        msgs.append(str(pd))
    r = h.dispatch("agent", "send_a2a", [url, "hi"])
    assert r.name == "Err", (url, r)
    msgs.append(str(r.args[0]))
    # the WebSocket client, the same URL as ws:// (upstream does not check its host)
    ws_url = re.sub(r"(?i)^(\s*)http", lambda m: m.group(1) + "ws", url)
    try:
        r = h.dispatch("net", "dial_ws", [ws_url, "", None, None])
        assert r.name == "Err", (ws_url, r)
        msgs.append(str(r.args[0]))
    except PolicyDenied as pd:
        msgs.append(str(pd))
    return msgs


def host_denied(h, servers, url):
    _, b = servers
    msgs = all_clients_refuse(h, url)
    assert any("not in --allow-net-host" in str(m) for m in msgs), msgs
    time.sleep(0.05)
    assert b.seen == [], (url, b.seen)
    return msgs


def _ws_noop(closure, handler, args):  # net.dial_ws's closures, if it ever got that far
    return Variant("WsNoOp", ())


@pytest.fixture
def net(make_handler):
    return make_handler(effects=["net", "a2a"], hosts=["127.0.0.1"], invoke=_ws_noop)


def test_escape_host_plain_disallowed(net, servers):
    # the baseline the tricks below dress up
    host_denied(net, servers, f"http://127.0.0.2:{servers[1].server_port}/")


def test_escape_host_userinfo(net, servers):
    p = servers[1].server_port
    for url in (f"http://127.0.0.1@127.0.0.2:{p}/", f"http://127.0.0.1:80@127.0.0.2:{p}/",
                f"http://user:127.0.0.1@127.0.0.2:{p}/"):
        host_denied(net, servers, url)


def test_escape_host_fragment_query_authority_confusion(net, servers):
    a, b = servers
    pa, pb = a.server_port, b.server_port
    # `#`, `?` and `/` end the authority: whatever follows them is not the host
    host_denied(net, servers, f"http://127.0.0.2:{pb}#@127.0.0.1:{pa}/")
    host_denied(net, servers, f"http://127.0.0.2:{pb}?@127.0.0.1:{pa}/")
    for sep in ("#", "?", "/"):
        r = net.dispatch("http", "get", [f"http://127.0.0.1:{pa}{sep}@127.0.0.2:{pb}/"])
        assert r.name == "Ok", r  # it went to 127.0.0.1, the host that was checked
        n = len(a.seen)
        r = net.dispatch("net", "dial_ws", [f"ws://127.0.0.1:{pa}{sep}@127.0.0.2:{pb}/", "",
                                            None, None])
        assert r.name == "Err" and "HTTP 200" in r.args[0], r  # not a WebSocket server
        assert len(a.seen) == n + 1  # but it asked 127.0.0.1, the host that was checked
    time.sleep(0.05)
    assert b.seen == []


def test_escape_host_unicode_lookalikes(net, servers):
    p = servers[1].server_port
    for url in (f"http://127\u30020\u30020\u30022:{p}/", f"http://127\uff0e0\uff0e0\uff0e2:{p}/",
                f"http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{p}/",
                f"http://127.0.0.2%09:{p}/", f"http://127.0.0.1\t:{p}/", f" http://127.0.0.2:{p}/"):
        all_clients_refuse(net, url)
    time.sleep(0.05)
    assert servers[1].seen == []


def test_escape_host_case(net, servers):
    p = servers[1].server_port
    host_denied(net, servers, f"HTTP://127.0.0.2:{p}/")
    host_denied(net, servers, f"hTTp://127.0.0.2:{p}/")


def test_escape_host_trailing_dot(net, servers):
    host_denied(net, servers, f"http://127.0.0.2.:{servers[1].server_port}/")


def test_escape_host_ipv6_brackets(net, servers):
    p = servers[1].server_port
    for url in (f"http://[::ffff:127.0.0.2]:{p}/", f"http://[::ffff:7f00:2]:{p}/"):
        host_denied(net, servers, url)
    # brackets around an allowed IPv4 literal are not a spelling of it
    all_clients_refuse(net, f"http://[127.0.0.1]:{servers[0].server_port}/")


@pytest.mark.parametrize("spelling", ["2130706434", "0177.0.0.2", "0x7f.0.0.2", "0x7f000002",
                                      "127.2", "0177.0x0.0.02"])
def test_escape_host_decimal_octal_hex_ip(net, servers, spelling):
    host_denied(net, servers, f"http://{spelling}:{servers[1].server_port}/")


def test_escape_host_percent_encoding(net, servers):
    p = servers[1].server_port
    # decoded as the client decodes it, then checked: the host is 127.0.0.2
    host_denied(net, servers, f"http://%31%32%37.0.0.2:{p}/")
    host_denied(net, servers, f"http://127.0.0.1%2f@127.0.0.2:{p}/")
    # an encoded `@` inside the host is no host at all
    all_clients_refuse(net, f"http://127.0.0.1%40127.0.0.2:{p}/")
    assert servers[1].seen == []


def test_escape_http_header_crlf_injection(net, servers):
    a = servers[0]
    n = len(a.seen)
    for headers in ({"X": "a\r\nHost: 127.0.0.2"}, {"X\r\nHost": "127.0.0.2"}, {"X": "a\0b"}):
        req = {**_req(f"http://127.0.0.1:{a.server_port}/"), "headers": Map(headers)}
        r = net.dispatch("http", "send", [req])
        assert r.name == "Err" and "HttpRequest.headers" in str(r.args[0].args[0]), r
    r = net.dispatch("http", "post", [f"http://127.0.0.1:{a.server_port}/", b"x",
                                      "text/plain\r\nHost: 127.0.0.2"])
    assert r.name == "Err", r
    time.sleep(0.05)
    assert len(a.seen) == n  # nothing was sent


def test_escape_host_backslashes(net, servers):
    p = servers[1].server_port
    host_denied(net, servers, f"http://127.0.0.1\\@127.0.0.2:{p}/")
    for url in (f"http:\\\\127.0.0.2:{p}/", f"http://127.0.0.2\\127.0.0.1:{p}/"):
        all_clients_refuse(net, url)
    assert servers[1].seen == []


def test_escape_host_redirect_to_disallowed(net, servers):
    a, b = servers
    target = f"http://127.0.0.2:{b.server_port}/stolen"
    for code in (301, 302, 303, 307, 308):
        url = f"http://127.0.0.1:{a.server_port}/redirect?code={code}&to={target}"
        r = net.dispatch("http", "get", [url])
        assert r.name == "Ok" and r.args[0]["status"] == code  # the 3xx is the answer
        assert net.dispatch("http", "send", [_req(url, "POST")]).args[0]["status"] == code
        net.dispatch("net", "get", [url])  # its 3xx is an error value; either way no hop
        net.dispatch("agent", "send_a2a", [url, "hi"])
    time.sleep(0.05)
    assert b.seen == []
    assert sum(1 for m, p in a.seen if p.startswith("/redirect")) >= 15


@pytest.mark.parametrize("scheme", ["file", "dict", "gopher", "ftp"])
def test_escape_host_non_http_schemes(make_handler, servers, scheme):
    b = servers[1]
    url = ("file:///etc/passwd" if scheme == "file"
           else f"{scheme}://127.0.0.2:{b.server_port}/x")
    # even with no host list at all (any host), only http and https go out
    h = make_handler(effects=["net", "a2a"])
    msgs = all_clients_refuse(h, url)
    assert not any("root:" in str(m) for m in msgs)
    time.sleep(0.05)
    assert b.seen == []


# -- binaries ---------------------------------------------------------------------------

def _fake(dirpath, name, marker):
    tool = dirpath / name
    tool.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(marker))}\necho planted\n")
    tool.chmod(0o755)
    return tool


def _all_spawns(h, cmd, args=()):
    args = list(args)
    return [h.dispatch("proc", "spawn", [cmd, args]),
            h.dispatch("process", "run", [cmd, args]),
            h.dispatch("process", "spawn", [cmd, args, OPTS0])]


def test_escape_binary_path_qualified(make_handler, tmp_path):
    marker = tmp_path / "ran"
    fake = _fake(tmp_path, "echo", marker)
    h = make_handler(effects=PROC, procs=["echo"])
    rel = os.path.relpath(fake)
    for cmd in (str(fake), rel, f"{tmp_path}/../{tmp_path.name}/echo"):
        for r in _all_spawns(h, cmd):
            assert is_err(r, "not in --allow-proc"), r
    assert not marker.exists()


def test_escape_binary_dot_slash(make_handler, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    _fake(tmp_path, "git", marker)
    monkeypatch.chdir(tmp_path)
    h = make_handler(effects=PROC, procs=["git"])
    for r in _all_spawns(h, "./git", ["status"]):
        assert is_err(r, "not in --allow-proc"), r
    assert not marker.exists()


def test_escape_binary_relative_with_another_cwd(make_handler, tmp_path, monkeypatch):
    """`./tool` allowed as our cwd's tool must not become the child cwd's tool."""
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    marker = tmp_path / "ran"
    (a / "tool").write_text("#!/bin/sh\necho allowed\n")
    (a / "tool").chmod(0o755)
    _fake(b, "tool", marker)
    monkeypatch.chdir(a)
    h = make_handler(effects=PROC, procs=[str(a / "tool")])
    r = h.dispatch("process", "spawn", ["./tool", [], {**OPTS0, "cwd": some(str(b))}])
    assert h.dispatch("process", "read_stdout_line", [r.args[0]]) == some("allowed")
    assert h.dispatch("process", "wait", [r.args[0]])["code"] == 0
    assert is_err(h.dispatch("process", "spawn", ["tool", [], {**OPTS0, "cwd": some(str(b))}]),
                  "not in --allow-proc")
    assert not marker.exists()


def test_escape_binary_dropped_in_cwd_with_dot_on_path(make_handler, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    _fake(tmp_path, "lexfast-esc-tool", marker)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f".{os.pathsep}{os.pathsep}{os.environ['PATH']}")
    h = make_handler(effects=PROC, procs=["lexfast-esc-tool"])
    for r in _all_spawns(h, "lexfast-esc-tool"):
        assert r.name == "Err" and "No such file or directory" in r.args[0], r
    assert not marker.exists()


def test_escape_env_path_reroute(make_handler, tmp_path):
    marker = tmp_path / "ran"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _fake(bindir, "echo", marker)
    h = make_handler(effects=PROC, procs=["echo"])
    r = h.dispatch("process", "spawn", ["echo", ["x"], {**OPTS0, "env": Map({"PATH": str(bindir)})}])
    assert r == r.__class__("Err", ("process.spawn: env may not set `PATH` under --allow-proc",))
    assert not marker.exists()


@pytest.mark.parametrize("key", ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "DYLD_INSERT_LIBRARIES"])
def test_escape_env_ld_preload(make_handler, tmp_path, key):
    h = make_handler(effects=PROC, procs=["true"])
    r = h.dispatch("process", "spawn", ["true", [], {**OPTS0, "env": Map({key: str(tmp_path / "x.so")})}])
    assert is_err(r, f"env may not set `{key}` under --allow-proc"), r


def test_escape_huge_argv(make_handler):
    h = make_handler(effects=PROC)
    assert is_err(h.dispatch("proc", "spawn", ["true", ["a"] * 1025]), "arg-count exceeds 1024")
    assert is_err(h.dispatch("proc", "spawn", ["true", ["a" * 65537]]), "per-arg length exceeds 64 KiB")
    # process.* has no caps in the reference: the kernel's own limit is a clear error
    big = ["x" * 100_000] * 64  # 6.4 MB of argv: over ARG_MAX
    for r in (h.dispatch("process", "run", ["true", big]),
              h.dispatch("process", "spawn", ["true", big, OPTS0])):
        assert is_err(r, "Argument list too long"), r


def test_escape_shell_metacharacters_in_proc_args(make_handler, tmp_path):
    marker = tmp_path / "pwned"
    h = make_handler(effects=PROC)
    arg = f"$(touch {marker}); `touch {marker}` | touch {marker} && touch {marker} > {marker} *"
    assert h.dispatch("proc", "spawn", ["echo", [arg]]).args[0]["stdout"] == arg + "\n"
    assert h.dispatch("process", "run", ["echo", [arg]]).args[0]["stdout"] == arg + "\n"
    r = h.dispatch("proc", "spawn", [f"echo; touch {marker}", []])
    assert r.name == "Err"
    assert not marker.exists()


def test_escape_shell_metacharacters_in_mcp_command(make_handler, tmp_path):
    marker = tmp_path / "pwned"
    h = make_handler(effects=["mcp"], limits=Limits(mcp_timeout_s=5.0))
    m = shlex.quote(str(marker))
    for line in (f"true; touch {m}", f"true && touch {m}", f"true | touch {m}",
                 f"true $(touch {m})", f"true `touch {m}`", f"true > {m}"):
        r = h.dispatch("agent", "call_mcp", [line, "t", "{}"])
        assert r.name == "Err", (line, r)
    # under --allow-proc the first word is checked as a binary, `true;` is not `true`
    h2 = make_handler(effects=["mcp"], procs=["true"], limits=Limits(mcp_timeout_s=5.0))
    r = h2.dispatch("agent", "call_mcp", [f"true;touch {m}", "t", "{}"])
    assert is_err(r, "not in --allow-proc"), r
    assert not marker.exists()


# -- handles -----------------------------------------------------------------------------

def test_escape_handle_guessing_kv(make_handler, tmp_path):
    a = make_handler(effects=["kv"])
    b = make_handler(effects=["kv"])
    k = a.dispatch("kv", "open", [str(tmp_path / "kv")]).args[0]
    assert a.dispatch("kv", "put", [k, "secret", b"1"]).name == "Ok"
    for guess in (k, k - 1, k + 1, 0, 1):
        with pytest.raises(EffectError, match="closed or unknown Kv handle"):
            b.dispatch("kv", "get", [guess, "secret"])
    # look-alikes of the handle are not the handle, even in its own session
    for fake in (True, float(k), str(k), [k], -k, k + 2**64):
        with pytest.raises(EffectError, match="expected Kv handle"):
            a.dispatch("kv", "get", [fake, "secret"])


def test_escape_handle_guessing_sql(make_handler, tmp_path):
    a = make_handler(effects=["sql"])
    b = make_handler(effects=["sql"])
    k = a.dispatch("sql", "open", [str(tmp_path / "x.db")]).args[0]
    for guess in (k, k - 1, k + 1, 0, 1):
        with pytest.raises(EffectError, match="closed or unknown Db handle"):
            b.dispatch("sql", "query", [guess, "SELECT 1", []])


def test_escape_handle_guessing_process(make_handler):
    a = make_handler(effects=PROC)
    b = make_handler(effects=PROC)
    hd = a.dispatch("process", "spawn", ["sleep", ["30"], OPTS0]).args[0]
    for op, extra in (("read_stdout_line", []), ("kill", ["SIGKILL"]), ("wait", [])):
        with pytest.raises(EffectError, match="closed or unknown ProcessHandle"):
            b.dispatch("process", op, [hd, *extra])
    assert a.dispatch("process", "kill", [hd, "SIGKILL"]).name == "Ok"
    assert a.dispatch("process", "wait", [hd])["signaled"] is True


def test_escape_handles_are_never_reused(make_handler, tmp_path):
    h = make_handler(effects=["kv", "sql"])
    seen = []
    for _ in range(20):
        k = h.dispatch("kv", "open", [str(tmp_path / "kv")]).args[0]
        h.dispatch("kv", "close", [k])
        d = h.dispatch("sql", "open", [":memory:"]).args[0]
        h.dispatch("sql", "close", [d])
        seen += [k, d]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    with pytest.raises(EffectError, match="closed or unknown Kv handle"):
        h.dispatch("kv", "get", [seen[0], "x"])


# -- budget -------------------------------------------------------------------------------

def test_escape_budget_race_through_forks(make_handler):
    ceiling = 20_000
    h = make_handler(budget=ceiling)
    counts = [0] * 8
    barrier = threading.Barrier(8)

    def spend(i):
        f = h.fork()
        barrier.wait()
        while True:
            try:
                f.note_call_budget(1 + (i % 3))
            except BudgetExceeded:
                if f.budget_remaining < 3:
                    return
                continue
            counts[i] += 1 + (i % 3)

    ts = [threading.Thread(target=spend, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(T)
    assert sum(counts) + h.budget_remaining == ceiling and h.budget_remaining >= 0
    left = h.budget_remaining
    for cost in (-1, True, 1.5, 2**63, 2**64):  # cannot refill, wrap or slip past the pool
        with pytest.raises(EffectError):
            h.note_call_budget(cost)
    assert h.budget_remaining == left and sum(counts) + left == ceiling


# -- logs ---------------------------------------------------------------------------------

@pytest.fixture
def log_handler(make_handler, tmp_path):
    h = make_handler(effects=["log", "io", "fs_write"], fs_write=[tmp_path])
    return h, tmp_path / "log.txt"


def test_escape_log_injection_text_newline(log_handler):
    h, sink = log_handler
    h.dispatch("log", "set_sink", [str(sink)])
    h.dispatch("log", "set_format", ["text"])
    h.dispatch("log", "info", ["ok\n[2026-01-01T00:00:00+00:00] error: forged\r\x1b[2Jx"])
    lines = sink.read_text().splitlines()
    assert len(lines) == 1 and "forged" in lines[0] and "\x1b" not in lines[0]


def test_escape_log_injection_json_control_chars(log_handler):
    h, sink = log_handler
    h.dispatch("log", "set_sink", [str(sink)])
    h.dispatch("log", "set_format", ["json"])
    msg = "a\"b\\c\n{\"level\":\"error\"}\t" + "".join(map(chr, range(32))) + "\x7f\u2028\ud800"
    h.dispatch("log", "warn", [msg])
    lines = sink.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 2
    rec = json.loads(lines[0])
    assert rec["level"] == "warn" and rec["msg"].startswith("a\"b\\c\n{")
    assert all(b >= 0x20 for b in lines[0])


def test_escape_log_sink_outside_write_scope(log_handler, tmp_path):
    h, _ = log_handler
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    (tmp_path / "link").symlink_to(outside)
    for p in (f"{outside}/log.txt", f"{tmp_path}/../{outside.name}/log.txt",
              f"{tmp_path}/link/log.txt", f"{tmp_path}2/log.txt"):
        assert is_err(h.dispatch("log", "set_sink", [p]), "outside --allow-fs-write"), p
    h.dispatch("log", "error", ["still here"])
    assert os.listdir(outside) == []


# -- SQLite ----------------------------------------------------------------------------------

def _db(make_handler, tree):
    h = make_handler(effects=["sql"], fs_write=[tree / "D"])
    k = h.dispatch("sql", "open", [str(tree / "D" / "main.db")]).args[0]
    assert h.dispatch("sql", "exec", [k, "CREATE TABLE t(x)", []]).name == "Ok"
    return h, k


def test_escape_sqlite_attach(make_handler, tree):
    h, k = _db(make_handler, tree)
    for target in (tree / "out" / "att.db", tree / "D" / "inside.db"):
        r = h.dispatch("sql", "exec", [k, f"ATTACH DATABASE '{target}' AS a", []])
        assert r.name == "Err" and ("not authorized" in r.args[0]["message"] or "denied" in r.args[0]["message"]), r
    assert h.dispatch("sql", "exec", [k, "INSERT INTO t VALUES (1)", []]).name == "Ok"
    assert not (tree / "D" / "inside.db").exists()
    outside_untouched(tree)


def test_escape_sqlite_vacuum_into(make_handler, tree):
    h, k = _db(make_handler, tree)
    for target in (tree / "out" / "copy.db", f"file:{tree}/out/copy2.db"):
        r = h.dispatch("sql", "exec", [k, f"VACUUM INTO '{target}'", []])
        assert r.name == "Err", r
    outside_untouched(tree)


def test_escape_sqlite_file_uri_outside(make_handler, tree):
    h = make_handler(effects=["sql"], fs_write=[tree / "D"])
    D = tree / "D"
    for uri in (f"file:{tree}/out/x.db?mode=rwc", f"file:{D}/../out/x.db",
                f"file:{D}/link_out/x.db", f"file://localhost{tree}/out/x.db",
                f"file:{D}/x.db?vfs=unix-none", f"file:{D}/x.db?modeof={tree}/out/secret"):
        r = h.dispatch("sql", "open", [uri])
        assert r.name == "Err", (uri, r)
    outside_untouched(tree)
    assert not (D / "x.db").exists()


# -- serve_tls -----------------------------------------------------------------------------

def test_escape_serve_tls_cert_outside_read_scope(make_handler, tree):
    D = tree / "D"
    (D / "cert.pem").symlink_to(tree / "out" / "secret")
    h = make_handler(effects=["net"], fs_read=[D], program={"h": lambda *a: None},
                     runner=lambda program, handler, name, args: None)
    for cert in (str(tree / "out" / "secret"), f"{D}/../out/secret", f"{D}/cert.pem",
                 "/proc/self/environ"):
        with pytest.raises(PolicyDenied, match="outside --allow-fs-read"):
            h.dispatch("net", "serve_tls", [0, cert, cert, "h"])
    # the key is checked too, and a missing path outside says nothing of existence
    with pytest.raises(PolicyDenied, match="outside --allow-fs-read"):
        h.dispatch("net", "serve_tls", [0, f"{D}/a.txt", str(tree / "out" / "nope"), "h"])


def test_catalogue_is_complete():
    """SECURITY.md's tables name exactly the escape tests of tests/test_escapes*.py."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "SECURITY.md")
    if not os.path.exists(path) and not os.path.exists(os.path.join(root, ".git")):
        pytest.skip("an unpacked sdist without SECURITY.md")
    with open(path) as f:
        table = f.read()
    # every tests/test_escapes*.py: one file per attack round or area
    here = os.path.dirname(os.path.abspath(__file__))
    named = set()
    for name in os.listdir(here):
        if re.fullmatch(r"test_escapes\w*\.py", name):
            with open(os.path.join(here, name)) as f:
                named |= set(re.findall(r"^def (test_escape_\w+)\(", f.read(), re.M))
    in_table = set(re.findall(r"`(test_escape_\w+)`", table))
    assert named == in_table, (named - in_table, in_table - named)
