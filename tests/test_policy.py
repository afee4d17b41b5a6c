"""Policy: presets, immutability, the Lex CLI flags."""

from __future__ import annotations

import pytest

from lexfast import KNOWN_EFFECTS, Policy


def test_known_effects_are_the_references():
    assert set(KNOWN_EFFECTS) == {
        "io", "net", "time", "llm", "proc", "panic", "fs_read", "fs_write", "budget",
        "llm_local", "llm_cloud", "a2a", "mcp", "env", "sql", "random", "chat", "log", "kv",
        "stream", "fs_walk", "concurrent", "crypto", "vcs", "approval", "moe"}
    assert len(KNOWN_EFFECTS) <= 64  # one bit each in the gate mask


def test_presets():
    assert Policy.pure().allow_effects == frozenset()
    p = Policy.permissive()
    assert p.allow_effects == frozenset(KNOWN_EFFECTS)
    assert p.allow_fs_read == () and p.budget is None
    assert p.wildcard_scoped_grants() == ("io", "net", "proc", "fs_read", "fs_write", "a2a",
                                          "mcp", "sql", "kv", "fs_walk", "vcs", "approval")
    scoped = Policy(allow_effects=["proc", "net", "fs_read"], allow_proc=["git"],
                    allow_fs_write=["/tmp"])
    assert scoped.wildcard_scoped_grants() == ("net", "proc", "fs_read")
    # a child is confined to the fs scopes (issue 26): empty ones leave it open
    assert scoped.wildcard_scopes() == {"net": ("--allow-net-host", "--allow-fs-read"),
                                        "proc": ("--allow-fs-read",),
                                        "fs_read": ("--allow-fs-read",)}
    io = Policy(allow_effects=["io", "time", "mcp"], allow_fs_write=["/tmp"])
    assert io.wildcard_scopes() == {"io": ("--allow-fs-read",),
                                    "mcp": ("--allow-proc", "--allow-fs-read")}


def test_immutable_and_value_semantics(tmp_path):
    p = Policy(allow_effects=["io"], allow_fs_read=[tmp_path], budget=3)
    with pytest.raises(AttributeError):
        p.budget = 5
    with pytest.raises(AttributeError):
        del p.allow_effects
    assert p == Policy(allow_effects=["io"], allow_fs_read=[str(tmp_path)], budget=3)
    assert hash(p) == hash(p.replace())
    assert p.replace(budget=4).budget == 4 and p.budget == 3
    assert "budget=3" in repr(p)
    import pickle
    assert pickle.loads(pickle.dumps(p)) == p


def test_validation():
    with pytest.raises(TypeError):
        Policy(allow_effects="io")  # a str would grant i and o
    with pytest.raises(TypeError):
        Policy(allow_effects=[1])
    with pytest.raises(ValueError):
        Policy(allow_fs_read=[""])
    with pytest.raises(ValueError):
        Policy(budget=-1)
    with pytest.raises(TypeError):
        Policy(budget=1.5)
    with pytest.raises(TypeError):
        Policy().replace(nope=1)


def test_roots_and_hosts_are_normalised(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    p = Policy(allow_fs_read=[str(tmp_path / "link")], allow_fs_write=[str(tmp_path / "real") + "/./"],
               allow_net_host=["API.Example.com.", "[::1]"])
    assert p.read_roots == (str((tmp_path / "real").resolve()),)
    assert p.write_roots == (str((tmp_path / "real").resolve()),)
    assert p.allow_fs_read == (str(tmp_path / "link"),)
    assert p.net_hosts == frozenset({"api.example.com", "::1"})


def test_from_flags():
    p = Policy.from_flags(["--allow-effects", "io,net", "--allow-effects=time",
                           "--allow-fs-read", "/data", "--allow-fs-read", "/a,b",
                           "--allow-net-host", "api.example.com", "--allow-proc", "git,ls",
                           "--allow-proc=echo", "--budget", "100",
                           "--allow-approval", "deploy,pay", "--allow-approval=refund"])
    assert p.allow_effects == {"io", "net", "time"}
    assert p.allow_fs_read == ("/data", "/a,b")
    assert p.allow_net_host == ("api.example.com",)
    assert p.allow_proc == ("git", "ls", "echo")
    assert p.budget == 100
    assert p.allow_approval == ("deploy", "pay", "refund")
    assert "allow_approval=('deploy', 'pay', 'refund')" in repr(p)
    import pickle
    assert pickle.loads(pickle.dumps(p)) == p and p.replace(budget=1).allow_approval == p.allow_approval
    assert p != p.replace(allow_approval=())
    assert Policy.from_flags([]) == Policy.pure()


@pytest.mark.parametrize("argv,msg", [
    (["--budget", "x"], "--budget must be an integer"),
    (["--budget", "-1"], "--budget"),
    (["--budget"], "--budget needs a value"),
    (["--allow-effects"], "--allow-effects needs a value"),
    (["--allow-effects", ","], "--allow-effects needs a non-empty value"),
    (["--nope"], "unknown flag"),
])
def test_from_flags_errors_name_the_flag(argv, msg):
    with pytest.raises(ValueError, match=msg):
        Policy.from_flags(argv)


@pytest.fixture
def declared_kinds():
    """Restores the process-wide kind registry after a test declares kinds."""
    from lexfast import kinds
    before = dict(kinds.KIND_BIT)
    yield kinds
    kinds.KIND_BIT.clear()
    kinds.KIND_BIT.update(before)


@pytest.mark.parametrize("build", [
    lambda: Policy(allow_effects=["io", "ioo"]),
    lambda: Policy.from_flags(["--allow-effects", "io,ioo"]),
    lambda: Policy.from_flags(["--allow-effects=ioo"]),
    lambda: Policy.permissive().replace(allow_effects=["ioo"]),
])
def test_unknown_kinds_are_refused_as_the_cli_refuses_them(build):
    # a typo would otherwise grant nothing, silently
    with pytest.raises(ValueError, match=r"unknown effect kind `ioo` \(known: io, net,.*declare_kind"):
        build()


def test_a_vm_declares_the_kinds_its_own_rows_add(declared_kinds):
    from lexfast import DefaultHandler, EffectError, PolicyDenied
    from lexfast.table import default_table
    with pytest.raises(ValueError, match="unknown effect kind `gpu`"):
        Policy(allow_effects=["gpu"])
    declared_kinds.declare_kind("gpu")
    declared_kinds.declare_kind("gpu")  # idempotent
    assert declared_kinds.known_kinds()[-1] == "gpu"
    assert "gpu" in Policy.permissive().allow_effects
    table = default_table().with_rows([("gpu", "run", ("gpu",), lambda h, args: args[0] * 2)])
    granted = DefaultHandler(policy=Policy.from_flags(["--allow-effects", "gpu"]), table=table)
    refused = DefaultHandler(policy=Policy(allow_effects=["io"]), table=table)
    try:
        assert granted.dispatch("gpu", "run", [21]) == 42
        with pytest.raises(PolicyDenied, match="effect `gpu` not in --allow-effects"):
            refused.dispatch("gpu", "run", [21])
        with pytest.raises(EffectError, match="unsupported effect gpu.walk"):
            granted.dispatch("gpu", "walk", [])
    finally:
        granted.close()
        refused.close()
    for bad in ("", "a b", "x:y", 3):
        with pytest.raises(ValueError, match="declare_kind: kind must be"):
            declared_kinds.declare_kind(bad)


def test_a_row_gated_on_an_undeclared_kind_is_refused(declared_kinds):
    from lexfast.table import default_table
    with pytest.raises(ValueError, match=r"Row gpu\.run: unknown effect kind `gpu` in its gate "
                                         r"\(a VM declares its own with lexfast.kinds.declare_kind\)"):
        default_table().with_rows([("gpu", "run", ("gpu",), lambda h, args: None)])
