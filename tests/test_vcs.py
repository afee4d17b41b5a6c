"""vcs.* on a real store in a temp folder (issue 19).

Restates the reference's tests/std_vcs.rs (through the handler) and lex-store's
tests/blob_cas.rs (the store it is backed by), then lexfast's own: the root
inside --allow-fs-write, symlinks and hard links in and around the store, ref
names, corruption, bounds and argument errors.
"""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from lexfast import EffectError, PolicyDenied
from lexfast.handler import Limits

HELLO_SHA = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"


@pytest.fixture
def vcs(make_handler, tmp_path):
    """make(root=tmp/store, write=[tmp], **kw): a handler granted vcs whose
    store is ``root``."""
    def make(root=None, write=None, **kw):
        root = str(tmp_path / "store") if root is None else str(root)
        limits = kw.pop("limits", None) or Limits()
        limits = Limits(**{**limits.__dict__, "vcs_root": root})
        return make_handler(effects=["vcs"], fs_write=[tmp_path] if write is None else write,
                            limits=limits, **kw)
    return make


def call(h, op, *args):
    return h.dispatch("vcs", op, list(args))


def ok_value(r):
    assert r.name == "Ok", r
    return r.args[0]


def err_text(r):
    assert r.name == "Err", r
    assert isinstance(r.args[0], str), r
    return r.args[0]


def no_temp_files(top) -> bool:
    return not [n for _, _, names in os.walk(top) for n in names if n.endswith(".tmp")]


# -- the reference's std_vcs.rs -----------------------------------------------------

def test_blob_and_ref_roundtrip_through_the_handler(make_handler, tmp_path, monkeypatch):
    monkeypatch.setenv("LEX_STORE_ROOT", str(tmp_path))
    h = make_handler(effects=["vcs", "fs_write", "fs_read"], fs_write=[tmp_path])
    sha = ok_value(call(h, "put_blob", "hello loom artifact"))
    assert ok_value(call(h, "get_blob", sha)) == "hello loom artifact"
    assert call(h, "ref_set", "loom/sprint-demo", "build-node", "deadbeefcafe").name == "Ok"
    assert ok_value(call(h, "ref_get", "loom/sprint-demo", "build-node")) == "deadbeefcafe"
    # the layout is lex-store's blob CAS
    assert (tmp_path / "blobrefs" / "loom" / "sprint-demo" / "build-node").exists()
    assert (tmp_path / "blobs" / sha).read_text() == "hello loom artifact"
    assert no_temp_files(tmp_path)


# -- lex-store's blob_cas.rs --------------------------------------------------------

def test_put_blob_sha_matches_crypto_sha256_str(vcs):
    h = vcs()
    assert ok_value(call(h, "put_blob", "hello world")) == HELLO_SHA
    assert ok_value(call(h, "get_blob", HELLO_SHA)) == "hello world"


def test_put_blob_is_idempotent_and_dedups(vcs, tmp_path):
    h = vcs()
    a = ok_value(call(h, "put_blob", "same content"))
    assert ok_value(call(h, "put_blob", "same content")) == a
    assert os.listdir(tmp_path / "store" / "blobs") == [a]


def test_distinct_content_distinct_sha(vcs):
    h = vcs()
    assert ok_value(call(h, "put_blob", "a")) != ok_value(call(h, "put_blob", "b"))


def test_get_blob_unknown_errors(vcs):
    h = vcs()
    assert err_text(call(h, "get_blob", "deadbeef")) == "vcs.get_blob: unknown blob `deadbeef`"
    assert call(h, "has_blob", "deadbeef") is False
    ok_value(call(h, "put_blob", "x"))
    assert err_text(call(h, "get_blob", "0" * 64)) == f"vcs.get_blob: unknown blob `{'0' * 64}`"


def test_blob_refs_round_trip(vcs):
    h = vcs()
    b = ok_value(call(h, "put_blob", "build output"))
    q = ok_value(call(h, "put_blob", "qa verdict"))
    ok_value(call(h, "ref_set", "loom/sprint-abc", "build-node", b))
    ok_value(call(h, "ref_set", "loom/sprint-abc", "qa-node", q))
    assert ok_value(call(h, "ref_get", "loom/sprint-abc", "build-node")) == b
    assert ok_value(call(h, "ref_get", "loom/sprint-abc", "qa-node")) == q
    assert err_text(call(h, "ref_get", "loom/sprint-other", "build-node")) == \
        "vcs.ref_get: unknown blob ref `loom/sprint-other/build-node`"


def test_blob_ref_overwrite(vcs):
    h = vcs()
    h1 = ok_value(call(h, "put_blob", "v1"))
    h2 = ok_value(call(h, "put_blob", "v2"))
    ok_value(call(h, "ref_set", "ns", "k", h1))
    ok_value(call(h, "ref_set", "ns", "k", h2))
    assert ok_value(call(h, "ref_get", "ns", "k")) == h2


def test_unknown_ref_errors(vcs):
    h = vcs()
    assert err_text(call(h, "ref_get", "ns", "missing")) == \
        "vcs.ref_get: unknown blob ref `ns/missing`"


def test_path_traversal_is_rejected(vcs, tmp_path):
    h = vcs()
    sha = ok_value(call(h, "put_blob", "x"))
    for ns, key in (("ns", "../escape"), ("../escape", "k"), ("ns", "a/b")):
        assert err_text(call(h, "ref_set", ns, key, sha)).startswith("vcs.ref_set: ref ")
        assert err_text(call(h, "ref_get", ns, key)).startswith("vcs.ref_get: ref ")
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "store" / "escape").exists()


# -- lexfast's own -----------------------------------------------------------------

def test_the_root_must_be_inside_allow_fs_write(vcs, tmp_path):
    (tmp_path / "w").mkdir()
    h = vcs(write=[tmp_path / "w"])
    for op, args in (("put_blob", ["x"]), ("get_blob", [HELLO_SHA]),
                     ("ref_set", ["ns", "k", "ab"]), ("ref_get", ["ns", "k"])):
        assert err_text(call(h, op, *args)) == \
            f"vcs.{op}: store root `{tmp_path / 'store'}` outside --allow-fs-write"
    assert call(h, "has_blob", HELLO_SHA) is False
    assert not (tmp_path / "store").exists()


def test_limits_root_beats_the_environment(vcs, tmp_path, monkeypatch):
    monkeypatch.setenv("LEX_STORE_ROOT", str(tmp_path / "env-store"))
    h = vcs(root=tmp_path / "limits-store")
    ok_value(call(h, "put_blob", "x"))
    assert (tmp_path / "limits-store" / "blobs").is_dir()
    assert not (tmp_path / "env-store").exists()


def test_a_store_root_symlinked_out_of_scope_is_refused(vcs, tmp_path):
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (inside / "store").symlink_to(outside)
    h = vcs(root=inside / "store", write=[inside])
    assert err_text(call(h, "put_blob", "x")).endswith("outside --allow-fs-write")
    assert os.listdir(outside) == []
    # a link that stays inside the scope is followed (the root resolves into it)
    (inside / "real").mkdir()
    (inside / "alias").symlink_to(inside / "real")
    h2 = vcs(root=inside / "alias", write=[inside])
    sha = ok_value(call(h2, "put_blob", "x"))
    assert (inside / "real" / "blobs" / sha).exists()


def test_a_store_root_swapped_for_a_symlink_after_first_use_is_refused(vcs, tmp_path):
    # the root's resolution is remembered per session; the kernel walk
    # (no symlink at any step) is what refuses the swap
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    h = vcs(root=inside / "store", write=[inside])
    sha = ok_value(call(h, "put_blob", "x"))
    os.rename(inside / "store", inside / "store-old")
    (inside / "store").symlink_to(outside)
    (outside / "blobs").mkdir()
    (outside / "blobs" / sha).write_text("x")
    for op, args in (("put_blob", ["y"]), ("get_blob", [sha]), ("ref_set", ["ns", "k", sha]),
                     ("ref_get", ["ns", "k"])):
        assert err_text(call(h, op, *args)) == \
            f"vcs.{op}: store root `{inside / 'store'}` goes through a symlink; refused"
    assert call(h, "has_blob", sha) is False
    assert sorted(os.listdir(outside)) == ["blobs"] and os.listdir(outside / "blobs") == [sha]
    # a new session resolves afresh, and finds the root outside the scope
    assert err_text(call(vcs(root=inside / "store", write=[inside]), "get_blob", sha)).endswith(
        "outside --allow-fs-write")


def test_a_symlink_inside_the_store_is_never_followed(vcs, tmp_path):
    h = vcs()
    sha = ok_value(call(h, "put_blob", "x"))
    store = tmp_path / "store"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (store / "blobrefs").mkdir()
    (store / "blobrefs" / "ns").symlink_to(outside)
    e = err_text(call(h, "ref_set", "ns", "k", sha))
    assert e == "vcs.ref_set: `blobrefs/ns` in the store is a symlink; refused"
    assert os.listdir(outside) == []
    assert err_text(call(h, "ref_get", "ns", "k")) == \
        "vcs.ref_get: `blobrefs/ns` in the store is a symlink; refused"
    # a blob swapped for a symlink to a file holding the same content
    (outside / "copy").write_text("x")
    os.unlink(store / "blobs" / sha)
    (store / "blobs" / sha).symlink_to(outside / "copy")
    assert err_text(call(h, "get_blob", sha)) == \
        f"vcs.get_blob: `blobs/{sha}` in the store is a symlink; refused"
    assert call(h, "has_blob", sha) is False
    # put_blob replaces the link, never writing through it
    assert ok_value(call(h, "put_blob", "x")) == sha
    assert not (store / "blobs" / sha).is_symlink()
    assert (outside / "copy").read_text() == "x"
    # the blobs directory itself swapped for a link
    os.rename(store / "blobs", tmp_path / "blobs-moved")
    (store / "blobs").symlink_to(tmp_path / "blobs-moved")
    assert err_text(call(h, "put_blob", "y")) == \
        "vcs.put_blob: `blobs` in the store is a symlink; refused"


def test_hard_links_are_refused_and_never_written_through(vcs, tmp_path):
    h = vcs()
    ok_value(call(h, "put_blob", "seed"))  # makes the blobs directory
    secret = tmp_path / "secret"
    secret.write_text("x")
    sha = hashlib.sha256(b"x").hexdigest()
    blob = tmp_path / "store" / "blobs" / sha
    os.link(secret, blob)
    assert err_text(call(h, "get_blob", sha)) == \
        f"vcs.get_blob: blob `{sha}` has 2 hard links; refused"
    assert ok_value(call(h, "put_blob", "x")) == sha  # replaced by a file of its own
    assert os.stat(blob).st_nlink == 1 and os.stat(secret).st_nlink == 1
    assert ok_value(call(h, "get_blob", sha)) == "x"


def test_a_corrupt_blob_is_an_error_and_put_repairs_it(vcs, tmp_path):
    h = vcs()
    sha = ok_value(call(h, "put_blob", "hello world"))
    (tmp_path / "store" / "blobs" / sha).write_text("hello w0rld")
    e = err_text(call(h, "get_blob", sha))
    assert e.startswith(f"vcs.get_blob: blob `{sha}` is corrupt: its content hashes to ")
    assert call(h, "has_blob", sha) is False
    assert ok_value(call(h, "put_blob", "hello world")) == sha
    assert ok_value(call(h, "get_blob", sha)) == "hello world"
    assert call(h, "has_blob", sha) is True


def test_odd_files_in_the_store_are_clear_errors(vcs, tmp_path):
    h = vcs()
    sha = ok_value(call(h, "put_blob", "x"))
    os.unlink(tmp_path / "store" / "blobs" / sha)
    os.mkfifo(tmp_path / "store" / "blobs" / sha)  # would block a plain read
    assert err_text(call(h, "get_blob", sha)) == f"vcs.get_blob: blob `{sha}` is not a regular file"
    ok_value(call(h, "ref_set", "ns", "k", "ab"))
    (tmp_path / "store" / "blobrefs" / "ns" / "k").write_text("not a sha\n")
    assert err_text(call(h, "ref_get", "ns", "k")) == "vcs.ref_get: ref `ns/k` does not hold a sha"
    (tmp_path / "store" / "blobs" / ("1" * 64)).write_bytes(b"\xff")
    bad = hashlib.sha256(b"\xff").hexdigest()
    os.rename(tmp_path / "store" / "blobs" / ("1" * 64), tmp_path / "store" / "blobs" / bad)
    assert err_text(call(h, "get_blob", bad)) == f"vcs.get_blob: blob `{bad}` is not valid UTF-8"


def test_ref_names_and_shas_are_checked(vcs):
    h = vcs()
    cases = {
        ("ns", ""): "ref key is empty",
        ("ns", ".hidden"): "ref key component `.hidden` starts with `.`",
        ("ns/.", "k"): "ref namespace component `.` starts with `.`",
        ("a\\b", "k"): "contains `\\` or a control character",
        ("ns", "k\n"): "contains `\\` or a control character",
        ("ns", "k" * 256): "ref key component is 256 bytes, longer than 255",
        ("/".join(["n" * 200] * 6), "k"): "longer than 1024",
    }
    for (ns, key), why in cases.items():
        assert why in err_text(call(h, "ref_set", ns, key, "ab")), (ns, key)
        assert why in err_text(call(h, "ref_get", ns, key)), (ns, key)
    for sha in ("", "XYZ", "ABCDEF", "a" * 65, "g"):
        assert "is not 1 to 64 lower-case hex digits" in err_text(call(h, "ref_set", "ns", "k", sha))
    # empty namespace components are skipped, as the reference skips them
    ok_value(call(h, "ref_set", "//a//b/", "k", "ab"))
    assert ok_value(call(h, "ref_get", "a/b", "k")) == "ab"


def test_blob_size_is_bounded(vcs):
    h = vcs(limits=Limits(vcs_blob_bytes=10))
    assert ok_value(call(h, "put_blob", "0123456789"))
    e = err_text(call(h, "put_blob", "0123456789a"))
    assert e == "vcs.put_blob: content is 11 bytes, larger than Limits.vcs_blob_bytes (10)"
    assert "not valid UTF-8" in err_text(call(h, "put_blob", "\udcff"))


def test_arguments_must_be_str_and_the_gate_is_vcs(vcs, make_handler):
    h = vcs()
    with pytest.raises(EffectError, match=r"^vcs.put_blob: expected Str arg"):
        call(h, "put_blob", b"bytes")
    with pytest.raises(EffectError, match=r"^vcs.ref_set: missing argument"):
        call(h, "ref_set", "ns", "k")
    with pytest.raises(EffectError, match=r"^vcs.get_blob: expected Str arg"):
        call(h, "get_blob", 5)
    with pytest.raises(PolicyDenied):
        make_handler(effects=["fs_write"]).dispatch("vcs", "put_blob", ["x"])


def test_concurrent_puts_of_one_content_leave_one_whole_blob(vcs, tmp_path):
    h = vcs()
    content = "z" * 100_000
    results = []
    threads = [threading.Thread(target=lambda: results.append(call(h.fork(), "put_blob", content)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    sha = hashlib.sha256(content.encode()).hexdigest()
    assert [ok_value(r) for r in results] == [sha] * 8
    assert os.listdir(tmp_path / "store" / "blobs") == [sha]
    assert ok_value(call(h, "get_blob", sha)) == content
    assert no_temp_files(tmp_path)
