"""Path and binary scopes (docs/design.md §5), with property tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lexfast import scope
from lexfast.scope import resolve_command, scoped, within


@pytest.fixture
def tree(tmp_path):
    """tmp/data/{a/f.txt, link_in -> a, link_out -> ../outside, link_up -> ..},
    tmp/data2/g.txt, tmp/outside/secret."""
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "a" / "f.txt").write_text("f")
    (tmp_path / "data2").mkdir()
    (tmp_path / "data2" / "g.txt").write_text("g")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    (data / "link_in").symlink_to(data / "a")
    (data / "link_out").symlink_to(tmp_path / "outside")
    (data / "link_up").symlink_to("..")
    return tmp_path


def test_within_is_component_wise():
    assert within("/data/x", "/data") and within("/data", "/data")
    assert not within("/data2", "/data") and not within("/dat", "/data")
    assert within("/anything", "/")


def test_scope_rules(tree):
    root = (os.path.realpath(tree / "data"),)
    d = str(tree / "data")
    assert scoped(f"{d}/a/f.txt", root)[0] == os.path.realpath(f"{d}/a/f.txt")
    assert scoped(f"{d}/", root) is not None
    assert scoped(f"{d}//a/./f.txt", root) is not None
    assert scoped(f"{d}/link_in/f.txt", root) is not None
    assert scoped(f"{d}/missing/new.txt", root) is not None
    assert scoped(f"{d}/../outside/secret", root) is None
    assert scoped(f"{d}/a/../../outside", root) is None
    assert scoped(f"{d}/link_out/secret", root) is None
    assert scoped(f"{d}/link_up/data2", root) is None
    assert scoped(str(tree / "data2" / "g.txt"), root) is None
    assert scoped("/etc/passwd", root) is None
    assert scoped(f"{d}/a\0/f.txt", root) is None
    assert scoped(3, root) is None
    assert scoped("/etc/passwd", ())[1] == ""


def test_relative_paths_resolve_against_cwd(tree, monkeypatch):
    monkeypatch.chdir(tree / "data")
    root = (os.path.realpath(tree / "data"),)
    assert scoped("a/f.txt", root) is not None
    assert scoped("../data2/g.txt", root) is None
    assert scoped(".", root) is not None


@pytest.mark.parametrize("p", ["/proc/self/environ", "/proc/1/environ", "/proc/self/mem",
                               "/proc/self/root/etc/passwd", "/proc/self/cwd",
                               "/proc/thread-self/fd/0", "/proc/self/task/1/environ",
                               "/proc/self/map_files"])
def test_proc_magic_is_refused_even_under_root(p):
    assert scoped(p, ("/",)) is None
    assert scoped(p, ()) is None


def test_proc_plain_files_follow_the_scope():
    assert scoped("/proc/cpuinfo", ("/",)) is not None


def test_open_in_scope_refuses_a_symlink_swapped_in(tree):
    d = tree / "data"
    root = os.path.realpath(d)
    target = d / "swap"
    target.write_text("inside")
    found = scoped(str(target), (root,))
    assert found is not None
    target.unlink()
    target.symlink_to(tree / "outside" / "secret")  # swapped after the check
    with pytest.raises(scope.ScopeEscape):
        scope.open_in_scope(found[0], found[1], os.O_RDONLY)


def test_write_file_atomic(tree):
    d = os.path.realpath(tree / "data")
    p = os.path.join(d, "out.txt")
    scope.write_file_atomic(p, d, b"one")
    os.chmod(p, 0o600)
    scope.write_file_atomic(p, d, b"two")
    assert open(p, "rb").read() == b"two" and (os.stat(p).st_mode & 0o777) == 0o600
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")]
    with pytest.raises(IsADirectoryError):
        scope.write_file_atomic(os.path.join(d, "a"), d, b"x")


def test_read_file_bounded(tmp_path):
    p = tmp_path / "big"
    p.write_bytes(b"x" * 1000)
    fd = os.open(p, os.O_RDONLY)
    try:
        with pytest.raises(OverflowError):
            scope.read_file_bounded(fd, 999)
    finally:
        os.close(fd)
    fd = os.open(p, os.O_RDONLY)
    try:
        assert len(scope.read_file_bounded(fd, 1000)) == 1000
    finally:
        os.close(fd)


# -- property tests ---------------------------------------------------------------

_PARTS = st.sampled_from(["a", "f.txt", "..", ".", "", "data", "data2", "link_in",
                          "link_out", "link_up", "outside", "secret", "new"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_PARTS, min_size=0, max_size=7), trailing=st.booleans(),
       relative=st.booleans())
def test_scope_decision_matches_the_files_it_reaches(tree, parts, trailing, relative):
    """For a path that exists, allowed ⇔ the file it reaches is one of the
    files beneath the root (found by a walk that never follows symlinks)."""
    data = tree / "data"
    root = os.path.realpath(data)
    inside = {(os.stat(root).st_dev, os.stat(root).st_ino)}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            st_ = os.lstat(os.path.join(dirpath, n))
            inside.add((st_.st_dev, st_.st_ino))
    p = "/".join(parts) + ("/" if trailing else "")
    path = os.path.relpath(os.path.join(str(data), p), os.getcwd()) if relative \
        else os.path.join(str(data), p)
    decision = scoped(path, (root,))
    try:
        st_ = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if decision is not None:
            assert within(decision[0], root)
        return
    reached = (st_.st_dev, st_.st_ino)
    assert (decision is not None) == (reached in inside), (path, decision)


@settings(max_examples=200, deadline=None)
@given(name=st.text(alphabet="abcdef/.", min_size=1, max_size=12))
def test_sibling_prefix_never_matches(name):
    root = "/srv/data"
    resolved = os.path.normpath("/srv/" + name)
    if within(resolved, root):
        assert resolved == root or resolved.startswith(root + "/")
    assert not within("/srv/data2" + "/" + name.strip("/"), root)


# -- binaries -------------------------------------------------------------------

def test_resolve_command_rules(tmp_path):
    echo, argv0 = resolve_command("echo", ("echo",))
    assert echo and os.path.isabs(echo) and argv0 == "echo"
    assert resolve_command("echo", ()) == (echo, "echo")
    with pytest.raises(PermissionError):
        resolve_command("whoami", ("echo",))
    with pytest.raises(PermissionError):
        resolve_command("/usr/bin/whoami", ("echo",))
    with pytest.raises(PermissionError):
        resolve_command("/nonexistent/dir/echo", ("echo",))
    # a path spelling runs as the entry: the entry's path, the entry's name
    assert resolve_command(os.path.realpath(echo), ("echo",)) == (echo, "echo")
    fake = tmp_path / "echo"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    with pytest.raises(PermissionError):
        resolve_command(str(fake), ("echo",))
    assert resolve_command(str(fake), (str(fake),)) == (os.path.realpath(fake),) * 2
    with pytest.raises(PermissionError):
        resolve_command("ec\0ho", ("echo",))
    # without --allow-proc the caller's spelling is kept
    assert resolve_command(str(fake), ()) == (str(fake), str(fake))


def test_resolve_command_runs_as_the_entry_not_the_spelling(tmp_path):
    """A multi-call pair: `alias -> multi`. Whatever path reaches the file,
    exec gets the entry's own path (its final symlink kept), and so does
    argv[0] (a path entry is passed as a shell would pass it)."""
    real = tmp_path / "real"
    real.mkdir()
    multi = real / "multi"
    multi.write_text("#!/bin/sh\n")
    multi.chmod(0o755)
    (real / "alias").symlink_to("multi")
    (real / "other").symlink_to("multi")
    (tmp_path / "via").symlink_to(real)  # a symlinked directory in the entry
    entry = str(tmp_path / "via" / "alias")
    want = (str(real / "alias"),) * 2
    for spelling in (str(multi), str(real / "other"), entry, f"{real}/../real/multi"):
        assert resolve_command(spelling, (entry,)) == want, spelling
    # two entries name the file: the caller's final name picks, else the first
    both = (str(real / "multi"), entry)
    assert resolve_command(str(real / "alias"), both) == want
    assert resolve_command(str(real / "multi"), both) == (str(multi),) * 2
    assert resolve_command(str(real / "other"), both) == (str(multi),) * 2


def test_relative_path_entries_are_not_searched(tmp_path, monkeypatch):
    fake = tmp_path / "zz-lexfast-tool"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "." + os.pathsep + os.environ.get("PATH", ""))
    assert resolve_command("zz-lexfast-tool", ("zz-lexfast-tool",)) == (None, "zz-lexfast-tool")


@pytest.mark.parametrize("root", ["", "/"])
def test_an_open_swapped_into_proc_is_refused(tmp_path, root):
    """The check saw a plain file; a relative symlink swapped in afterwards
    leads to /proc/self/environ. RESOLVE_BENEATH from / would follow it."""
    x = tmp_path / "x"
    x.write_text("plain")
    found = scoped(str(x), (root,) if root else ())
    assert found is not None
    x.unlink()
    x.symlink_to(os.path.relpath("/proc/self/environ", tmp_path))
    with pytest.raises(scope.ScopeEscape):
        scope.open_in_scope(found[0], root, os.O_RDONLY)


def test_plain_proc_files_still_open():
    found = scoped("/proc/self/status", ("/",))
    assert found is not None
    fd = scope.open_in_scope(found[0], found[1], os.O_RDONLY)
    os.close(fd)


def test_fs_kind_and_pseudo_fs_refusal(tmp_path):
    """What an open landed on: procfs and sysfs are told by fstatfs, an
    ordinary file is not; writes to them are refused, reads by name."""
    def kind_of(path, flags=os.O_RDONLY):
        fd = os.open(path, flags | os.O_CLOEXEC)
        try:
            return scope.fs_kind(fd), scope.pseudo_fs_refusal(fd, flags, os.path.realpath(path))
        finally:
            os.close(fd)

    (tmp_path / "f").write_text("x")
    assert kind_of(tmp_path / "f") == (None, None)
    assert kind_of("/proc/self/status") == ("procfs", None)
    assert kind_of("/proc/self/cmdline")[1] == "procfs per-process `cmdline` is not readable"
    assert kind_of(f"/proc/self/task/{os.getpid()}/auxv")[1].endswith("`auxv` is not readable")
    # opened for writing (nothing is written): refused before any write could be
    assert kind_of("/proc/sys/kernel/hostname", os.O_WRONLY)[1] == "writes to procfs are refused"
    if os.path.exists("/sys/kernel"):
        assert kind_of("/sys/kernel", os.O_RDONLY | os.O_DIRECTORY) == ("sysfs", None)


def test_path_max_is_checked_in_scoped(tmp_path):
    with pytest.raises(scope.PathTooLong, match=r"is 5000 bytes, longer than PATH_MAX"):
        scoped("/" + "a" * 4999, ("/",))
    with pytest.raises(scope.PathTooLong, match=r"^kv.open: path argument"):
        scope.check_path_arg("kv.open", "/" + "é" * 2100)  # 4201 bytes in 2101 characters
    assert scoped("/" + "a" * 4095, ("/",)) is not None  # PATH_MAX itself: the kernel's call
    scope.check_path_arg("kv.open", "/" + "é" * 2000)
