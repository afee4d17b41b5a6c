"""std.fs on real files: every op, every scope rule (docs/design.md §5), the caps,
and the docs/behaviour.md §6.7 cases (with our stricter outcome for case 85)."""

from __future__ import annotations

import os
import stat

import pytest

from lexfast import EffectError, Limits, PolicyDenied, err, ok
from lexfast.effects.fs import ops as fsmod
from lexfast.scope import roots as rootsmod

WALK = ["fs_walk"]
BOTH = ["fs_walk", "fs_write"]


@pytest.fixture
def tree(tmp_path):
    """tmp/D/{a.txt, b.txt, .h.txt, sub/b.txt, link_in -> sub, link_out -> ../out,
    file_out -> ../out/secret}, tmp/D2/g.txt (a sibling prefix), tmp/out/secret."""
    d = tmp_path / "D"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("payload")
    (d / "b.txt").write_text("b")
    (d / ".h.txt").write_text("h")
    (d / "sub" / "b.txt").write_text("sb")
    (tmp_path / "D2").mkdir()
    (tmp_path / "D2" / "g.txt").write_text("g")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "secret").write_text("secret")
    (d / "link_in").symlink_to("sub")
    (d / "link_out").symlink_to(tmp_path / "out")
    (d / "file_out").symlink_to("../out/secret")
    return tmp_path


def denied_read(p):
    return err(f"fs path `{p}` outside --allow-fs-read")


def denied_write(p):
    return err(f"fs path `{p}` outside --allow-fs-write")


# -- docs/behaviour.md §6.7 ---------------------------------------------------------

def test_70_71_exists_is_dir_is_file(make_handler, tree):
    D = tree / "D"
    h = make_handler(effects=WALK, fs_read=[D])
    assert h.dispatch("fs", "exists", [str(D)]) is True
    assert h.dispatch("fs", "exists", [f"{D}/nope"]) is False
    assert h.dispatch("fs", "is_dir", [str(D)]) is True
    assert h.dispatch("fs", "is_dir", [f"{D}/a.txt"]) is False
    assert h.dispatch("fs", "is_file", [f"{D}/a.txt"]) is True
    assert h.dispatch("fs", "is_file", [str(D)]) is False
    assert h.dispatch("fs", "is_file", [f"{D}/nope"]) is False


def test_72_walk_and_73_list_dir(make_handler, tmp_path):
    D = tmp_path / "D"
    (D / "sub").mkdir(parents=True)
    (D / "a.txt").write_text("a")
    (D / "sub" / "b.txt").write_text("b")
    h = make_handler(effects=WALK, fs_read=[D])
    r = h.dispatch("fs", "walk", [str(D)])
    assert r.name == "Ok" and len(r.args[0]) == 4 and r.args[0][0] == str(D)
    assert sorted(r.args[0]) == sorted([str(D), f"{D}/sub", f"{D}/a.txt", f"{D}/sub/b.txt"])
    # pre-order: a directory's entries come right after it
    walked = r.args[0]
    assert walked.index(f"{D}/sub/b.txt") == walked.index(f"{D}/sub") + 1
    r = h.dispatch("fs", "list_dir", [str(D)])
    assert sorted(r.args[0]) == sorted([f"{D}/sub", f"{D}/a.txt"])


def test_74_75_mkdir_p(make_handler, tmp_path):
    R, A, B = tmp_path / "R", tmp_path / "A", tmp_path / "B"
    for d in (R, A, B):
        d.mkdir()
    h = make_handler(effects=BOTH, fs_read=[R], fs_write=[R])
    assert h.dispatch("fs", "mkdir_p", [f"{R}/a/b/c"]) == ok(None)
    assert (R / "a" / "b" / "c").is_dir()
    assert h.dispatch("fs", "mkdir_p", [f"{R}/a/b/c"]) == ok(None)  # existing is fine
    h = make_handler(effects=BOTH, fs_read=[A], fs_write=[A])
    assert h.dispatch("fs", "mkdir_p", [f"{B}/new_subdir"]) == denied_write(f"{B}/new_subdir")
    assert not (B / "new_subdir").exists()


def test_76_stat(make_handler, tmp_path):
    D = tmp_path / "D"
    D.mkdir()
    (D / "payload.txt").write_text("123456")
    h = make_handler(effects=WALK, fs_read=[D])
    r = h.dispatch("fs", "stat", [f"{D}/payload.txt"])
    rec = r.args[0]
    assert r.name == "Ok" and list(rec) == ["size", "mtime", "is_dir", "is_file"]
    assert rec["size"] == 6 and rec["is_file"] is True and rec["is_dir"] is False
    assert rec["mtime"] == int(os.stat(D / "payload.txt").st_mtime)
    assert h.dispatch("fs", "stat", [str(D)]).args[0]["is_dir"] is True


def test_77_78_79_denials_gates_unsupported(make_handler, tree):
    D = tree / "D"
    h = make_handler(effects=WALK, fs_read=[D])
    assert h.dispatch("fs", "exists", ["/etc/passwd"]) == denied_read("/etc/passwd")
    h2 = make_handler(effects=["fs_write"])
    with pytest.raises(PolicyDenied, match="effect `fs_walk` not in --allow-effects"):
        h2.dispatch("fs", "exists", [str(D)])
    with pytest.raises(PolicyDenied, match="effect `fs_write` not in --allow-effects"):
        h.dispatch("fs", "copy", [f"{D}/a.txt", f"{D}/c.txt"])
    with pytest.raises(PolicyDenied, match="effect `fs_write` not in --allow-effects"):
        h.dispatch("fs", "remove", [f"{D}/a.txt"])
    with pytest.raises(EffectError, match="^unsupported fs.bogus$"):
        make_handler().dispatch("fs", "bogus", [str(D)])


def test_80_81_glob(make_handler, tree):
    D = tree / "D"
    h = make_handler(effects=WALK, fs_read=[D])
    assert h.dispatch("fs", "glob", [f"{D}/*.txt"]) == ok(
        [f"{D}/.h.txt", f"{D}/a.txt", f"{D}/b.txt"])
    assert h.dispatch("fs", "glob", ["/etc/*"]) == ok([])
    r = h.dispatch("fs", "glob", [f"{D}/["])
    assert r.name == "Err" and r.args[0].startswith("fs.glob: Pattern syntax error near position")
    r = make_handler(effects=WALK).dispatch("fs", "glob", ["a/**b"])
    assert r == err("fs.glob: Pattern syntax error near position 4: "
                    "recursive wildcards must form a single path component")
    r = make_handler(effects=WALK).dispatch("fs", "glob", ["a/***"])
    assert r == err("fs.glob: Pattern syntax error near position 4: "
                    "wildcards are either regular `*` or recursive `**`")


def test_82_remove(make_handler, tmp_path):
    D = tmp_path / "D"
    (D / "tree" / "x" / "y").mkdir(parents=True)
    (D / "tree" / "f").write_text("f")
    (D / "tree" / "x" / "y" / "g").write_text("g")
    h = make_handler(effects=["fs_write"], fs_write=[D])
    assert h.dispatch("fs", "remove", [f"{D}/tree"]) == ok(None)
    assert not (D / "tree").exists()
    r = h.dispatch("fs", "remove", [f"{D}/missing"])
    assert r == err(f"fs.remove `{D}/missing`: No such file or directory (os error 2)")
    (D / "file").write_text("x")
    assert h.dispatch("fs", "remove", [f"{D}/file"]) == ok(None)
    assert not (D / "file").exists()


def test_83_stat_and_walk_of_missing(make_handler, tmp_path):
    h = make_handler(effects=WALK)
    r = h.dispatch("fs", "stat", [f"{tmp_path}/missing"])
    assert r == err(f"fs.stat `{tmp_path}/missing`: No such file or directory (os error 2)")
    r = h.dispatch("fs", "walk", [f"{tmp_path}/missing"])
    assert r == err(f"fs.walk: IO error for operation on {tmp_path}/missing: "
                    "No such file or directory (os error 2)")


def test_84_copy_scopes(make_handler, tmp_path):
    A, B = tmp_path / "A", tmp_path / "B"
    A.mkdir()
    B.mkdir()
    (A / "x").write_text("data")
    os.chmod(A / "x", 0o640)
    h = make_handler(effects=BOTH, fs_read=[A], fs_write=[B])
    assert h.dispatch("fs", "copy", [f"{A}/x", f"{B}/y"]) == ok(None)
    assert (B / "y").read_text() == "data"
    assert stat.S_IMODE(os.stat(B / "y").st_mode) == 0o640
    assert h.dispatch("fs", "copy", [f"{B}/y", f"{B}/z"]) == denied_read(f"{B}/y")
    assert h.dispatch("fs", "copy", [f"{A}/x", f"{A}/z"]) == denied_write(f"{A}/z")
    assert not (B / "z").exists() and not (A / "z").exists()


def test_85_dotdot_out_of_the_scope_is_denied(make_handler, tree):
    """Seed: allowed (lexical); docs/design.md §5: D/sub/.. is D, outside R[D/sub]."""
    D = tree / "D"
    h = make_handler(effects=WALK, fs_read=[D / "sub"])
    p = f"{D}/sub/.."
    for op in ("list_dir", "walk", "stat", "exists", "is_dir"):
        assert h.dispatch("fs", op, [p]) == denied_read(p), op


# -- scope rules ------------------------------------------------------------------

def test_symlinks_in_and_out(make_handler, tree):
    D = tree / "D"
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    assert h.dispatch("fs", "stat", [f"{D}/link_in/b.txt"]).args[0]["size"] == 2
    assert h.dispatch("fs", "is_dir", [f"{D}/link_in"]) is True
    for p in (f"{D}/link_out", f"{D}/link_out/secret", f"{D}/file_out"):
        for op in ("exists", "is_file", "is_dir", "stat", "list_dir", "walk"):
            assert h.dispatch("fs", op, [p]) == denied_read(p), (op, p)
    assert h.dispatch("fs", "copy", [f"{D}/file_out", f"{D}/c"]) == denied_read(f"{D}/file_out")
    assert h.dispatch("fs", "copy", [f"{D}/a.txt", f"{D}/link_out/x"]) == \
        denied_write(f"{D}/link_out/x")
    assert h.dispatch("fs", "mkdir_p", [f"{D}/link_out/new"]) == \
        denied_write(f"{D}/link_out/new")
    assert not (tree / "out" / "x").exists() and not (tree / "out" / "new").exists()


def test_listings_leave_out_symlinks_that_point_out(make_handler, tree):
    D = tree / "D"
    h = make_handler(effects=WALK, fs_read=[D])
    listed = h.dispatch("fs", "list_dir", [str(D)]).args[0]
    assert f"{D}/link_in" in listed and f"{D}/a.txt" in listed
    assert f"{D}/link_out" not in listed and f"{D}/file_out" not in listed
    walked = h.dispatch("fs", "walk", [str(D)]).args[0]
    assert f"{D}/link_in" in walked
    assert not any("link_out" in p or "file_out" in p or "secret" in p for p in walked)
    assert f"{D}/link_in/b.txt" not in walked  # walk never follows symlinks
    globbed = h.dispatch("fs", "glob", [f"{D}/*"]).args[0]
    assert f"{D}/link_in" in globbed
    assert f"{D}/link_out" not in globbed and f"{D}/file_out" not in globbed
    assert h.dispatch("fs", "glob", [f"{D}/link_out/*"]) == ok([])
    assert h.dispatch("fs", "glob", [f"{D}/*/secret"]) == ok([])
    # an in-scope symlinked directory named by a wildcard is followed
    assert h.dispatch("fs", "glob", [f"{D}/link_*/*.txt"]) == ok([f"{D}/link_in/b.txt"])


def test_sibling_prefix_is_not_inside(make_handler, tree):
    D, D2 = tree / "D", tree / "D2"
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    p = f"{D2}/g.txt"
    assert h.dispatch("fs", "exists", [p]) == denied_read(p)
    assert h.dispatch("fs", "stat", [p]) == denied_read(p)
    assert h.dispatch("fs", "list_dir", [str(D2)]) == denied_read(str(D2))
    assert h.dispatch("fs", "remove", [p]) == denied_write(p)
    assert h.dispatch("fs", "glob", [f"{tree}/D*/*.txt"]) == ok(
        [f"{D}/.h.txt", f"{D}/a.txt", f"{D}/b.txt"])
    assert (D2 / "g.txt").exists()


def test_dotdot_escapes_are_denied(make_handler, tree):
    D = tree / "D"
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    p = f"{D}/sub/../../out/secret"
    assert h.dispatch("fs", "stat", [p]) == denied_read(p)
    assert h.dispatch("fs", "exists", [p]) == denied_read(p)
    assert h.dispatch("fs", "copy", [p, f"{D}/c"]) == denied_read(p)
    assert h.dispatch("fs", "remove", [p]) == denied_write(p)
    assert h.dispatch("fs", "glob", [f"{D}/../out/*"]) == ok([])
    assert (tree / "out" / "secret").exists()
    # a `..` that stays inside is fine
    assert h.dispatch("fs", "is_file", [f"{D}/sub/../a.txt"]) is True


def test_relative_paths(make_handler, tree, monkeypatch):
    D = tree / "D"
    monkeypatch.chdir(D)
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    assert h.dispatch("fs", "is_file", ["a.txt"]) is True
    assert h.dispatch("fs", "stat", ["sub/b.txt"]).args[0]["size"] == 2
    assert sorted(h.dispatch("fs", "list_dir", ["sub"]).args[0]) == ["sub/b.txt"]
    assert h.dispatch("fs", "walk", ["sub"]) == ok(["sub", "sub/b.txt"])
    assert h.dispatch("fs", "glob", ["*.txt"]) == ok([".h.txt", "a.txt", "b.txt"])
    assert h.dispatch("fs", "glob", ["sub/*"]) == ok(["sub/b.txt"])
    assert h.dispatch("fs", "exists", ["../out/secret"]) == denied_read("../out/secret")
    assert h.dispatch("fs", "glob", ["../out/*"]) == ok([])
    assert h.dispatch("fs", "mkdir_p", ["new/deep"]) == ok(None)
    assert (D / "new" / "deep").is_dir()
    assert h.dispatch("fs", "copy", ["a.txt", "new/a2.txt"]) == ok(None)
    assert h.dispatch("fs", "remove", ["new"]) == ok(None)
    assert not (D / "new").exists()
    assert h.dispatch("fs", "remove", ["../D2/g.txt"]) == denied_write("../D2/g.txt")


def test_open_scope_still_refuses_proc_magic(make_handler):
    h = make_handler(effects=BOTH)
    for p in ("/proc/self/environ", "/proc/self/mem", "/proc/self/cwd", "/proc/self/root/etc",
              "//proc/self/environ", "/proc/../proc/self/environ"):
        assert h.dispatch("fs", "stat", [p]) == denied_read(p), p
        assert h.dispatch("fs", "exists", [p]) == denied_read(p), p
    h = make_handler(effects=BOTH, fs_read=["/"])
    assert h.dispatch("fs", "is_file", ["/proc/self/environ"]) == \
        denied_read("/proc/self/environ")
    assert h.dispatch("fs", "is_dir", ["/proc/self"]) is True
    assert "/proc/self/environ" not in h.dispatch("fs", "glob", ["/proc/self/*"]).args[0]


def test_symlink_in_open_scope_to_proc_is_refused(make_handler, tmp_path):
    (tmp_path / "env").symlink_to("/proc/self/environ")
    h = make_handler(effects=BOTH)
    assert h.dispatch("fs", "is_file", [f"{tmp_path}/env"]) == denied_read(f"{tmp_path}/env")
    r = h.dispatch("fs", "copy", [f"{tmp_path}/env", f"{tmp_path}/stolen"])
    assert r == denied_read(f"{tmp_path}/env") and not (tmp_path / "stolen").exists()


# -- check-then-use races ------------------------------------------------------------

def _swap_on_open(monkeypatch, victim, outside):
    """Replace directory ``victim`` with a symlink to ``outside`` right before
    the first scoped open, after every path check has passed."""
    real = rootsmod.open_resolved
    done = []

    def racing(*a, **kw):
        if not done:
            done.append(1)
            os.rename(victim, str(victim) + ".moved")
            os.symlink(outside, victim)
        return real(*a, **kw)

    monkeypatch.setattr(rootsmod, "open_resolved", racing)


@pytest.mark.parametrize("op", ["stat", "is_file", "list_dir", "walk", "copy", "remove"])
def test_a_directory_swapped_for_a_symlink_cannot_escape(make_handler, tree, monkeypatch, op):
    D = tree / "D"
    out = tree / "out"
    (out / "b.txt").write_text("outside")
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    monkeypatch.chdir(D)  # relative paths take the checked (slow) path
    path = {"list_dir": "sub", "walk": "sub"}.get(op, "sub/b.txt")
    args = [path, "copied.txt"] if op == "copy" else [path]
    _swap_on_open(monkeypatch, D / "sub", out)
    r = h.dispatch("fs", op, args)
    expect = denied_write(path) if op == "remove" else denied_read(path)
    assert r == expect
    assert (out / "b.txt").read_text() == "outside" and (out / "secret").exists()
    assert not (D / "copied.txt").exists()


def test_copy_destination_swapped_for_a_symlink_cannot_escape(make_handler, tree, monkeypatch):
    D, out = tree / "D", tree / "out"
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    _swap_on_open(monkeypatch, D / "sub", out)
    monkeypatch.setattr(fsmod, "open_scoped", lambda h, p, roots, flags: os.open(p, flags))
    r = h.dispatch("fs", "copy", [f"{D}/a.txt", f"{D}/sub/new.txt"])
    assert r == denied_write(f"{D}/sub/new.txt")
    assert not (out / "new.txt").exists()


def test_remove_never_follows_symlinks(make_handler, tree, monkeypatch):
    D, out = tree / "D", tree / "out"
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    # a symlink is removed itself, never what it names
    assert h.dispatch("fs", "remove", [f"{D}/link_out"]) == ok(None)
    assert not (D / "link_out").is_symlink() and (out / "secret").exists()
    # a tree holding links out of the scope: links go, their targets stay
    (D / "t" / "u").mkdir(parents=True)
    (D / "t" / "u" / "l").symlink_to(out)
    (D / "t" / "f").symlink_to(out / "secret")
    assert h.dispatch("fs", "remove", [f"{D}/t"]) == ok(None)
    assert not (D / "t").exists() and (out / "secret").read_text() == "secret"
    # a subdirectory swapped for a symlink in the middle of the removal
    (D / "t2" / "sub").mkdir(parents=True)
    (D / "t2" / "sub" / "f").write_text("f")
    real_scan = fsmod._scan
    swapped = []

    def racing_scan(fd):
        entries = list(real_scan(fd))
        if not swapped and any(n == "sub" for n, *_ in entries):
            swapped.append(1)
            os.rename(D / "t2" / "sub", D / "sub_moved")
            os.symlink(out, D / "t2" / "sub")
        return iter(entries)

    monkeypatch.setattr(fsmod, "_scan", racing_scan)
    r = h.dispatch("fs", "remove", [f"{D}/t2"])
    assert r == denied_write(f"{D}/t2")  # the kernel refused the symlink
    assert (out / "secret").read_text() == "secret"


# -- caps, arguments, odd inputs --------------------------------------------------------

def test_walk_glob_list_dir_are_bounded(make_handler, tmp_path):
    D = tmp_path / "D"
    D.mkdir()
    for i in range(20):
        (D / f"f{i:02}").write_text("x")
    h = make_handler(effects=WALK, fs_read=[D], limits=Limits(walk_entries=10))
    for op, arg in (("walk", str(D)), ("glob", f"{D}/*"), ("list_dir", str(D)),
                    ("glob", f"{D}/**")):
        r = h.dispatch("fs", op, [arg])
        if op == "glob" and arg.endswith("**"):
            assert r == ok([])  # no subdirectories: nothing scanned past the cap
            continue
        assert r.name == "Err" and "walk_entries cap" in r.args[0], (op, r)
    h = make_handler(effects=WALK, fs_read=[D], limits=Limits(walk_entries=25))
    assert len(h.dispatch("fs", "walk", [str(D)]).args[0]) == 21


def test_glob_semantics(make_handler, tmp_path, monkeypatch):
    D = tmp_path / "D"
    for p in ("a/x.rs", "a/b/y.rs", "a/b/c/z.rs", "q1", "q2", "qq", "[x]"):
        f = D / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    h = make_handler(effects=WALK, fs_read=[D])
    g = lambda p: h.dispatch("fs", "glob", [p])  # noqa: E731
    assert g(f"{D}/**/*.rs") == ok([f"{D}/a/b/c/z.rs", f"{D}/a/b/y.rs", f"{D}/a/x.rs"])
    assert g(f"{D}/**") == ok([f"{D}/a", f"{D}/a/b", f"{D}/a/b/c"])
    assert g(f"{D}/q?") == ok([f"{D}/q1", f"{D}/q2", f"{D}/qq"])
    assert g(f"{D}/q[0-9]") == ok([f"{D}/q1", f"{D}/q2"])
    assert g(f"{D}/q[!0-9]") == ok([f"{D}/qq"])
    assert g(f"{D}/[[]x]") == ok([f"{D}/[x]"])
    assert g(f"{D}/*/") == ok([f"{D}/a"])
    assert g(f"{D}/a/x.rs") == ok([f"{D}/a/x.rs"])
    assert g(f"{D}/a/nope.rs") == ok([])
    assert g(f"{D}/a//x.rs") == ok([f"{D}/a/x.rs"])
    monkeypatch.chdir(D)
    assert g("a/*/*.rs") == ok(["a/b/y.rs"])
    assert g("") == ok([])


def test_non_utf8_names_come_back_lossy(make_handler, tmp_path):
    D = tmp_path / "D"
    D.mkdir()
    with open(os.path.join(os.fsencode(D), b"bad\xff.txt"), "w") as f:
        f.write("x")
    h = make_handler(effects=WALK, fs_read=[D])
    assert h.dispatch("fs", "list_dir", [str(D)]) == ok([f"{D}/bad\ufffd.txt"])
    assert h.dispatch("fs", "walk", [str(D)]) == ok([str(D), f"{D}/bad\ufffd.txt"])
    assert h.dispatch("fs", "glob", [f"{D}/*"]) == ok([])  # the crate skips them too


def test_bad_arguments(make_handler, tmp_path):
    h = make_handler(effects=BOTH)
    for op in ("exists", "is_file", "is_dir", "stat", "list_dir", "walk", "glob", "mkdir_p",
               "remove"):
        with pytest.raises(EffectError, match=r"^expected Str arg, got Int\(3\)$"):
            h.dispatch("fs", op, [3])
        with pytest.raises(EffectError, match="^missing argument$"):
            h.dispatch("fs", op, [])
    with pytest.raises(EffectError, match="^missing argument$"):
        h.dispatch("fs", "copy", [str(tmp_path)])
    with pytest.raises(EffectError, match=r"^expected Str arg, got Bytes"):
        h.dispatch("fs", "copy", [str(tmp_path), b"x"])
    assert h.dispatch("fs", "exists", [f"{tmp_path}/a\0b"]) is False
    assert h.dispatch("fs", "stat", [f"{tmp_path}/a\0b"]).name == "Err"


def test_op_failures_are_err_values(make_handler, tmp_path):
    D = tmp_path / "D"
    D.mkdir()
    (D / "f").write_text("x")
    (D / "dir").mkdir()
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    assert h.dispatch("fs", "list_dir", [f"{D}/f"]) == \
        err(f"fs.list_dir `{D}/f`: Not a directory (os error 20)")
    assert h.dispatch("fs", "mkdir_p", [f"{D}/f"]) == \
        err(f"fs.mkdir_p `{D}/f`: File exists (os error 17)")
    assert h.dispatch("fs", "copy", [f"{D}/dir", f"{D}/c"]) == err(
        f"fs.copy {D}/dir -> {D}/c: the source path is neither a regular file nor a "
        "symlink to a regular file")
    assert h.dispatch("fs", "copy", [f"{D}/f", f"{D}/dir"]) == \
        err(f"fs.copy {D}/f -> {D}/dir: Is a directory (os error 21)")
    assert h.dispatch("fs", "copy", [f"{D}/missing", f"{D}/c"]) == \
        err(f"fs.copy {D}/missing -> {D}/c: No such file or directory (os error 2)")
    # copying a file onto itself keeps it (the reference truncated it)
    assert h.dispatch("fs", "copy", [f"{D}/f", f"{D}/f"]) == ok(None)
    assert (D / "f").read_text() == "x"
    assert sorted(os.listdir(D)) == ["dir", "f"]  # no temp file left behind


def test_copy_overwrites_atomically_and_keeps_big_files(make_handler, tmp_path):
    D = tmp_path / "D"
    D.mkdir()
    data = os.urandom(3 << 20)
    (D / "big").write_bytes(data)
    (D / "dst").write_text("old")
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    assert h.dispatch("fs", "copy", [f"{D}/big", f"{D}/dst"]) == ok(None)
    assert (D / "dst").read_bytes() == data


def test_remove_the_root_itself_and_mkdir_p_creates_a_missing_root(make_handler, tmp_path):
    W = tmp_path / "W"
    (W / "x").mkdir(parents=True)
    h = make_handler(effects=BOTH, fs_write=[W])
    assert h.dispatch("fs", "remove", [str(W)]) == ok(None)
    assert not W.exists() and tmp_path.exists()
    assert h.dispatch("fs", "mkdir_p", [f"{W}/a/b"]) == ok(None)
    assert (W / "a" / "b").is_dir()


def test_forks_share_scopes_and_close_releases_root_descriptors(make_handler, tree):
    D = tree / "D"
    before = len(os.listdir("/proc/self/fd"))
    h = make_handler(effects=WALK, fs_read=[D])
    f = h.fork()
    assert f.dispatch("fs", "is_file", [f"{D}/a.txt"]) is True
    assert h.dispatch("fs", "exists", [f"{D}/a.txt"]) is True
    h.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_root_removed_and_made_again_is_opened_afresh(make_handler, tmp_path):
    W = tmp_path / "W"
    W.mkdir()
    (W / "a").write_text("a")
    h = make_handler(effects=BOTH, fs_read=[W], fs_write=[W])
    assert h.dispatch("fs", "is_file", [f"{W}/a"]) is True
    assert h.dispatch("fs", "remove", [str(W)]) == ok(None)
    assert h.dispatch("fs", "exists", [f"{W}/a"]) is False
    W.mkdir()
    (W / "b").write_text("b")
    assert h.dispatch("fs", "is_file", [f"{W}/b"]) is True
    assert h.dispatch("fs", "list_dir", [str(W)]) == ok([f"{W}/b"])
    assert h.dispatch("fs", "walk", [str(W)]) == ok([str(W), f"{W}/b"])


def test_one_missing_root_does_not_hide_the_others(make_handler, tmp_path):
    A = tmp_path / "A"
    A.mkdir()
    (A / "f").write_text("f")
    h = make_handler(effects=WALK, fs_read=[tmp_path / "missing", A])
    assert h.dispatch("fs", "is_file", [f"{A}/f"]) is True
    assert h.dispatch("fs", "exists", [f"{tmp_path}/missing/x"]) is False


@pytest.mark.parametrize("op", ["stat", "is_file", "exists", "copy"])
def test_a_file_swapped_for_a_symlink_cannot_escape(make_handler, tree, monkeypatch, op):
    D, out = tree / "D", tree / "out"
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    monkeypatch.chdir(D)
    args = ["a.txt", "copied.txt"] if op == "copy" else ["a.txt"]
    _swap_on_open(monkeypatch, D / "a.txt", out / "secret")
    assert h.dispatch("fs", op, args) == denied_read("a.txt")
    assert not (D / "copied.txt").exists()


def test_absolute_symlinks_that_stay_inside_are_followed(make_handler, tree):
    D = tree / "D"
    (D / "abs_in").symlink_to(D / "sub")  # absolute: the kernel's fast path refuses it
    h = make_handler(effects=BOTH, fs_read=[D], fs_write=[D])
    assert h.dispatch("fs", "stat", [f"{D}/abs_in/b.txt"]).args[0]["size"] == 2
    assert h.dispatch("fs", "list_dir", [f"{D}/abs_in"]) == ok([f"{D}/abs_in/b.txt"])
    assert h.dispatch("fs", "copy", [f"{D}/abs_in/b.txt", f"{D}/abs_in/c.txt"]) == ok(None)
    assert (D / "sub" / "c.txt").read_text() == "sb"


def test_a_root_descriptor_dropped_mid_open_is_not_trusted(make_handler, tree, monkeypatch):
    """The number of a root descriptor closed (and reused for another
    directory) between reading it and using it must not serve the open."""
    D, out = tree / "D", tree / "out"
    h = make_handler(effects=WALK, fs_read=[D])
    assert h.dispatch("fs", "is_file", [f"{D}/a.txt"]) is True
    cache = rootsmod.roots_of(h.session)
    real_openat2 = rootsmod.openat2
    hijacked, hijacked_fd = [], []

    def racing(dirfd, path, *a):
        if not hijacked:
            hijacked.append(1)
            # another thread drops the root and the number now names `out`
            with cache.lock:
                del cache.fds[os.path.realpath(D)]
                cache.tables.clear()
                cache.epoch += 1
            other = os.open(out, os.O_PATH | os.O_DIRECTORY)
            os.dup2(other, dirfd)
            os.close(other)
            hijacked_fd.append(dirfd)
        return real_openat2(dirfd, path, *a)

    (out / "a.txt").write_text("outside, longer")
    monkeypatch.setattr(rootsmod, "openat2", racing)
    r = h.dispatch("fs", "stat", [f"{D}/a.txt"])
    assert r.args[0]["size"] == len("payload")  # D's file, never out's
    os.close(hijacked_fd[0]) if hijacked_fd else None


def test_copy_of_a_fifo_does_not_hang(make_handler, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    h = make_handler(effects=BOTH)
    r = h.dispatch("fs", "copy", [f"{tmp_path}/fifo", f"{tmp_path}/c"])
    assert r == err(f"fs.copy {tmp_path}/fifo -> {tmp_path}/c: the source path is neither a "
                    "regular file nor a symlink to a regular file")
    assert h.dispatch("fs", "is_file", [f"{tmp_path}/fifo"]) is False
    assert h.dispatch("fs", "stat", [f"{tmp_path}/fifo"]).args[0]["is_file"] is False


def test_listings_show_normalised_paths(make_handler, tmp_path, monkeypatch):
    """walk, list_dir and glob show the argument's spelling without `.`
    components or repeated `/` (one trailing `/` and one leading `./` kept),
    and the resolved path once it has a `..`: never the caller's padding."""
    D = tmp_path / "D"
    (D / "sub").mkdir(parents=True)
    (D / "sub" / "b.txt").write_text("b")
    (D / "a.txt").write_text("a")
    real = os.path.realpath(D)
    h = make_handler(effects=WALK, fs_read=[D])
    assert h.dispatch("fs", "walk", [f"{D}//./sub/"]) == ok([f"{D}/sub/", f"{D}/sub/b.txt"])
    assert h.dispatch("fs", "walk", [f"{D}/sub/."]) == ok([f"{D}/sub", f"{D}/sub/b.txt"])
    assert h.dispatch("fs", "list_dir", [f"{D}/./sub//"]) == ok([f"{D}/sub/b.txt"])
    assert h.dispatch("fs", "list_dir", [f"{D}/sub/../sub"]) == ok([f"{real}/sub/b.txt"])
    assert h.dispatch("fs", "walk", [f"{D}/sub/.."]).args[0][0] == real
    assert h.dispatch("fs", "glob", [f"{D}/sub/../*.txt"]) == ok([f"{real}/a.txt"])
    assert h.dispatch("fs", "glob", [f"{D}/./sub/./*"]) == ok([f"{D}/sub/b.txt"])
    monkeypatch.chdir(D)
    assert h.dispatch("fs", "walk", ["./sub"]) == ok(["./sub", "./sub/b.txt"])
    assert h.dispatch("fs", "walk", ["././sub/."]) == ok(["./sub", "./sub/b.txt"])
    assert h.dispatch("fs", "list_dir", ["sub/./"]) == ok(["sub/b.txt"])
