"""The portable openat2 (lexfast.scope.walk.walk_open): the component walk
used where the kernel has no openat2 (macOS, the BSDs) or under
LEXFAST_FORCE_PORTABLE=1. On Linux every case is also put to the kernel's
openat2 and the two must agree (the same descriptor target, or the same
errno), so the walk keeps openat2's guarantees case by case."""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest

from lexfast.kernel import openat2
from lexfast.scope.paths import BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS
from lexfast.scope.walk import MAX_LINKS, walk_open


def _native_ok() -> bool:
    try:
        os.close(openat2(-100, "/", os.O_RDONLY | os.O_CLOEXEC, 0, 0))
    except OSError:
        return False
    return True


NATIVE = _native_ok()
O_PATH = getattr(os, "O_PATH", 0)


@pytest.fixture
def tree(tmp_path):
    """root/ with files, dirs, and links that stay in or leave it."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret").write_text("outside")
    (root / "f").write_text("inside")
    (root / "d").mkdir()
    (root / "d" / "g").write_text("deep")
    links = {
        "rel_in": "f", "rel_dir": "d", "deep_in": "d/../f", "up_out": "../secret",
        "abs_out": str(tmp_path / "secret"), "abs_in": str(root / "f"),
        "dangling": "nothere", "dot": ".", "chain1": "chain2", "chain2": "rel_in",
        "loop_a": "loop_b", "loop_b": "loop_a", "self": "self", "dir_up": "d/../..",
        "d/back": "../f", "d/up2": "../../secret", "root_link": "/",
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    return root


CASES = [
    ".", "", "f", "d", "d/", "d/g", "d/.", "d/..", "d/../f", "..", "../secret", "d/../../secret",
    "rel_in", "rel_dir/g", "rel_dir/", "deep_in", "up_out", "abs_out", "abs_in", "dangling",
    "dot", "dot/f", "chain1", "loop_a", "self", "dir_up", "dir_up/secret", "d/back", "d/up2",
    "root_link", "root_link/etc", "f/", "f/x", "nope", "nope/x", "d/g/", "./././f", "d//g",
    "/etc/passwd",
]
FLAGS = [os.O_RDONLY, os.O_RDONLY | os.O_DIRECTORY, os.O_RDONLY | os.O_NOFOLLOW]
if O_PATH:
    FLAGS += [O_PATH, O_PATH | os.O_NOFOLLOW]
RESOLVES = [BENEATH, BENEATH | RESOLVE_NO_SYMLINKS, 0, RESOLVE_NO_MAGICLINKS]


def outcome(fn, dfd, path, flags, resolve, mode=0):
    try:
        fd = fn(dfd, path, flags | os.O_CLOEXEC, mode, resolve)
    except OSError as e:
        return ("err", e.errno)
    try:
        st = os.fstat(fd)
        return ("ok", st.st_dev, st.st_ino, stat.S_IFMT(st.st_mode))
    finally:
        os.close(fd)


@pytest.mark.skipif(not NATIVE, reason="no kernel openat2 to compare with")
@pytest.mark.parametrize("resolve", RESOLVES)
@pytest.mark.parametrize("flags", FLAGS)
def test_walk_agrees_with_the_kernel(tree, flags, resolve):
    dfd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path in CASES:
            want = outcome(openat2, dfd, path, flags, resolve)
            got = outcome(walk_open, dfd, path, flags, resolve)
            assert got == want, (path, flags, resolve)
    finally:
        os.close(dfd)


def _refused(dfd, path, flags=os.O_RDONLY, resolve=BENEATH):
    with pytest.raises(OSError) as ei:
        os.close(walk_open(dfd, path, flags, 0, resolve))
    return ei.value.errno


def test_escapes_are_exdev(tree):
    dfd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path in ("..", "../secret", "up_out", "abs_out", "abs_in", "dir_up/secret",
                     "d/up2", "root_link/etc/passwd", "/etc/passwd", "d/../../root/f"):
            assert _refused(dfd, path) == errno.EXDEV, path
    finally:
        os.close(dfd)


def test_symlink_loops_and_the_link_limit(tree):
    dfd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        assert _refused(dfd, "loop_a") == errno.ELOOP
        assert _refused(dfd, "self/f") == errno.ELOOP
        for i in range(MAX_LINKS + 1):  # a chain one longer than the limit
            os.symlink(f"c{i + 1}" if i < MAX_LINKS else "f", tree / f"c{i}")
        assert _refused(dfd, "c0") == errno.ELOOP
        os.close(walk_open(dfd, "c1", os.O_RDONLY, 0, BENEATH))  # exactly the limit: fine
        assert _refused(dfd, "rel_in", resolve=BENEATH | RESOLVE_NO_SYMLINKS) == errno.ELOOP
    finally:
        os.close(dfd)


def test_creates_follow_links_only_inside(tree):
    dfd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.symlink("d/new", tree / "to_new")
        os.close(walk_open(dfd, "to_new", os.O_WRONLY | os.O_CREAT, 0o600, BENEATH))
        assert (tree / "d" / "new").is_file()
        os.symlink("../made", tree / "to_out")
        assert _refused(dfd, "to_out", os.O_WRONLY | os.O_CREAT) == errno.EXDEV
        assert not (tree.parent / "made").exists()
        # O_EXCL never follows the last link: it exists
        assert _refused(dfd, "to_new", os.O_WRONLY | os.O_CREAT | os.O_EXCL) == errno.EEXIST
        assert _refused(dfd, "d/", os.O_WRONLY | os.O_CREAT) == errno.EISDIR
    finally:
        os.close(dfd)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="no procfs")
def test_magic_links_are_eloop():
    r, w = os.pipe()
    try:
        for path in (f"/proc/self/fd/{r}", "/proc/self/exe", "/proc/self/cwd/x", "/proc/self/ns/net"):
            assert _refused(-100, path, resolve=RESOLVE_NO_MAGICLINKS) == errno.ELOOP, path
        # an ordinary procfs link (self -> <pid>) is followed
        fd = walk_open(-100, "/proc/self/status", os.O_RDONLY, 0, RESOLVE_NO_MAGICLINKS)
        os.close(fd)
    finally:
        os.close(r)
        os.close(w)


def test_a_nul_is_refused(tree):
    with pytest.raises(ValueError):
        walk_open(-100, str(tree) + "/f\0x", os.O_RDONLY, 0, 0)


def test_a_directory_swapped_for_a_symlink_mid_walk_never_leaves(tree):
    """A thread keeps swapping root/d between a directory and a symlink to
    the outside while opens walk through it: each open lands inside or
    fails, never on the outside file (whatever the interleaving)."""
    outside = tree.parent / "out"
    outside.mkdir()
    (outside / "g").write_text("OUTSIDE")
    os.symlink(str(outside), tree / "evil_abs")
    os.symlink("../out", tree / "evil_rel")
    stop = threading.Event()

    def swapper():
        d, parked = tree / "d", tree / "parked"
        for i in range(20000):
            if stop.is_set():
                return
            link = tree / ("evil_abs" if i % 2 else "evil_rel")
            os.rename(d, parked)
            os.rename(link, d)            # d is now a symlink out
            os.rename(d, link)
            os.rename(parked, d)          # d is the directory again

    t = threading.Thread(target=swapper)
    dfd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    landed_inside = 0
    try:
        t.start()
        for _ in range(3000):
            try:
                fd = walk_open(dfd, "d/g", os.O_RDONLY, 0, BENEATH)
            except OSError as e:
                assert e.errno in (errno.EXDEV, errno.ENOENT, errno.ELOOP), e
                continue
            try:
                assert os.read(fd, 16) == b"deep"
                landed_inside += 1
            finally:
                os.close(fd)
    finally:
        stop.set()
        t.join(timeout=60)
        os.close(dfd)
    assert not t.is_alive()
    assert landed_inside >= 0  # the guarantee is the loop's asserts; any count is fine


def test_force_portable_selects_every_fallback(tmp_path):
    """LEXFAST_FORCE_PORTABLE=1: the walk, a selectors poller with a pipe,
    no pidfds (and fs's C fast path stands aside); a real child is run
    through the pump under it."""
    import subprocess
    import sys

    import lexfast
    code = (
        "import lexfast.effects.fs.ops as f, lexfast.effects.proc.children as c, "
        "lexfast.effects.proc.poller as p, lexfast.scope.paths as s\n"
        "assert p.PORTABLE and not s.openat2_works() and not c._PIDFDS and not f.FS_COMPILED\n"
        "pm = c.Pump()\nassert type(pm.ep).__name__ == '_SelectorPoller'\npm.quit()\n"
        "print('portable')\n"
    )
    env = dict(os.environ, LEXFAST_FORCE_PORTABLE="1",
               PYTHONPATH=os.path.dirname(os.path.dirname(lexfast.__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "portable", out.stderr
