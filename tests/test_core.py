"""The core's own types, against both cores (the ``impl`` fixture)."""

from __future__ import annotations

import ast
import inspect
import pickle
import re
import threading
from pathlib import Path

import pytest

from lexfast import BudgetExceeded, EffectError
from lexfast.values import Map

# -- Variant ------------------------------------------------------------------

def test_variant_value_semantics(impl):
    V = impl.Variant
    a = V("Ok", (1, "x"))
    assert a.name == "Ok" and a.args == (1, "x")
    assert a == V("Ok", [1, "x"]) and hash(a) == hash(V("Ok", (1, "x")))
    assert a != V("Err", (1, "x")) and a != V("Ok", (2, "x"))
    assert a != ("Ok", (1, "x"))
    assert {a: 1}[V("Ok", (1, "x"))] == 1
    assert impl.ok(5) == V("Ok", (5,))
    assert impl.err("e") == V("Err", ("e",))
    assert impl.some(None) == V("Some", (None,))
    assert impl.NONE == V("None") and impl.NONE.args == ()
    assert impl.ok() == V("Ok", (None,))


def test_variant_is_immutable(impl):
    v = impl.ok(1)
    with pytest.raises(AttributeError):
        v.name = "Err"
    with pytest.raises(AttributeError):
        v.args = ()


def test_variant_repr_and_pickle(impl):
    v = impl.Variant("Some", (impl.ok(b"x"),))
    assert repr(impl.NONE) == "Variant('None')"
    assert "Some" in repr(v)
    assert pickle.loads(pickle.dumps(v)) == v


def test_variant_rejects_non_str_name(impl):
    with pytest.raises(TypeError):
        impl.Variant(3, ())


def test_variants_of_the_two_kernels_do_not_mix():
    """One Variant in production: the kernel not selected is a test-only
    module, and its values are neither instances of nor equal to the other's."""
    import lexfast
    from lexfast.kernel import _py
    try:
        from lexfast.kernel import _c
    except ImportError:
        pytest.skip("compiled core not built")
    assert lexfast.Variant is (_c.Variant if lexfast.COMPILED else _py.Variant)
    assert not isinstance(_py.ok(1), _c.Variant) and not isinstance(_c.ok(1), _py.Variant)
    assert _c.ok(1) != _py.ok(1) and _py.ok(1) != _c.ok(1)


def test_a_user_class_named_variant_is_not_a_variant(impl):
    from lexfast.values import debug_repr

    class Variant:  # noqa: N801 - the point: the same name, another class
        name = "Ok"
        args = (1,)

    fake = Variant()
    assert impl.ok(1) != fake and fake != impl.ok(1)
    assert debug_repr(fake) == "<Variant>"
    assert debug_repr(impl.ok(1)) == 'Variant { name: "Ok", args: [Int(1)] }'


# -- argument checks -------------------------------------------------------------

def test_expect_str(impl):
    assert impl.expect_str(["a"], 0) == "a"
    with pytest.raises(EffectError, match=r"^missing argument$"):
        impl.expect_str([], 0)
    with pytest.raises(EffectError, match=r"^expected Str arg, got Int\(3\)$"):
        impl.expect_str([3], 0)
    with pytest.raises(EffectError, match=r'expected Str arg, got Bytes\(\[104, 105\]\)'):
        impl.expect_str([b"hi"], 0)


def test_expect_int(impl):
    assert impl.expect_int([5], 0) == 5
    assert impl.expect_int([-(1 << 63)], 0) == -(1 << 63)
    with pytest.raises(EffectError, match=r'expected Int arg, got Str\("x"\)'):
        impl.expect_int(["x"], 0)
    with pytest.raises(EffectError, match=r"expected Int arg, got Bool\(true\)"):
        impl.expect_int([True], 0)
    with pytest.raises(EffectError, match="64-bit"):
        impl.expect_int([1 << 63], 0)
    with pytest.raises(EffectError, match="expected Int arg, got Float"):
        impl.expect_int([1.0], 0)


def test_expect_bytes_accepts_buffers(impl):
    assert impl.expect_bytes([b"ab"], 0) == b"ab"
    assert impl.expect_bytes([bytearray(b"ab")], 0) == b"ab"
    assert impl.expect_bytes([memoryview(b"ab")], 0) == b"ab"
    with pytest.raises(EffectError, match=r'expected Bytes arg, got Str\("ab"\)'):
        impl.expect_bytes(["ab"], 0)


def test_expect_record_and_lists_and_handles(impl):
    assert impl.expect_record([{"a": 1}], 0) == {"a": 1}
    with pytest.raises(EffectError, match=r"^missing Record argument$"):
        impl.expect_record([], 0)
    with pytest.raises(EffectError, match=r"^expected Record, got Map"):
        impl.expect_record([Map(a=1)], 0)
    assert impl.expect_str_list([["a", "b"]], 0) == ["a", "b"]
    with pytest.raises(EffectError, match=r"^expected List\[Str\] element, got Int\(1\)$"):
        impl.expect_str_list([["a", 1]], 0)
    with pytest.raises(EffectError, match=r"^missing List\[Str\] argument$"):
        impl.expect_str_list([], 0)
    assert impl.expect_handle([7], 0, "Kv handle", "Kv") == 7
    with pytest.raises(EffectError, match=r"^expected Kv handle \(Int\), got Int\(-1\)$"):
        impl.expect_handle([-1], 0, "Kv handle", "Kv")
    with pytest.raises(EffectError, match=r"^missing Kv argument$"):
        impl.expect_handle([], 0, "Kv handle", "Kv")


def test_error_messages_are_bounded(impl):
    deep = []
    cur = deep
    for _ in range(10_000):
        nxt = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(EffectError) as e:
        impl.expect_str([deep], 0)
    assert len(str(e.value)) < 1000
    with pytest.raises(EffectError) as e:
        impl.expect_str([["x" * 100_000] * 1000], 0)
    assert len(str(e.value)) < 1000


def test_next_handle_is_increasing(impl):
    a = impl.next_handle()
    b = impl.next_handle()
    assert b > a >= 1


# -- LRURegistry -------------------------------------------------------------------

def test_registry_insert_get_remove(impl):
    r = impl.LRURegistry(4)
    r.insert(1, "a")
    assert r.touch_get(1) == "a" and r[1] == "a" and 1 in r and len(r) == 1
    assert r.touch_get(2) is None and 2 not in r
    with pytest.raises(KeyError):
        r[2]
    assert r.remove(1) == "a" and len(r) == 0 and r.remove(1) is None
    assert r.remove(999) is None


def test_registry_evicts_lru_and_calls_on_evict(impl):
    evicted = []
    r = impl.LRURegistry(2, on_evict=lambda h, v: evicted.append((h, v)))
    r.insert(1, "a")
    r.insert(2, "b")
    r.touch_get(1)
    r.insert(3, "c")
    assert evicted == [(2, "b")]
    assert r.touch_get(1) == "a" and r.touch_get(2) is None and r.touch_get(3) == "c"
    assert len(r) == 2


def test_registry_insertion_order_without_touches(impl):
    r = impl.LRURegistry(2)
    for h in (10, 20, 30):
        r.insert(h, h)
    assert r.keys() == [20, 30]
    r[20]
    assert r.keys() == [30, 20]


def test_registry_stays_bounded_and_pop_all(impl):
    r = impl.LRURegistry(8)
    for i in range(24):
        r.insert(i, i)
        assert len(r) <= 8
    assert len(r) == 8
    items = r.pop_all()
    assert [h for h, _ in items] == list(range(16, 24)) and len(r) == 0
    r.insert(1, 1)
    assert r[1] == 1


def test_registry_reinsert_replaces(impl):
    r = impl.LRURegistry(2)
    r.insert(1, "a")
    r.insert(2, "b")
    r.insert(1, "z")
    assert len(r) == 2 and r.keys() == [2, 1] and r.get(1) == "z"


def test_registry_bad_cap_and_unhashable(impl):
    with pytest.raises(ValueError):
        impl.LRURegistry(0)
    r = impl.LRURegistry(2)
    with pytest.raises(TypeError):
        r.insert([1], "x")
    assert len(r) == 0
    assert r.touch_get([1]) is None and [1] not in r


def test_registry_threads(impl):
    r = impl.LRURegistry(64)
    errors = []

    def work(base):
        try:
            for i in range(2000):
                h = base + i
                r.insert(h, h)
                r.touch_get(h - 1)
                if i % 3 == 0:
                    r.remove(h - 2)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k * 100_000,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and len(r) <= 64
    assert len(r.keys()) == len(r)


# -- BudgetPool ------------------------------------------------------------------

def test_budget_pool(impl):
    p = impl.BudgetPool(15)
    assert p.ceiling == 15 and p.remaining == 15
    p.take(10)
    with pytest.raises(BudgetExceeded) as e:
        p.take(10)
    assert str(e.value) == "budget exceeded: requested 10, used so far 10, ceiling 15"
    assert (e.value.requested, e.value.used, e.value.ceiling) == (10, 10, 15)
    p.take(5)
    with pytest.raises(BudgetExceeded, match="requested 1, used so far 15, ceiling 15"):
        p.take(1)
    p.take(0)
    assert p.remaining == 0


def test_budget_pool_unlimited_and_bad_costs(impl):
    p = impl.BudgetPool(None)
    assert p.ceiling is None and p.remaining is None
    for _ in range(1000):
        p.take(10)
    p.take(1 << 70)
    for bad in (-1, 1.5, "3", None, True):
        with pytest.raises(EffectError):
            p.take(bad)
    q = impl.BudgetPool(5)
    with pytest.raises(BudgetExceeded):
        q.take(1 << 70)
    assert q.remaining == 5
    with pytest.raises(ValueError):
        impl.BudgetPool(-1)


def test_row_masks(impl):
    r = impl.Row("fs", "copy", ("fs_walk", "fs_write"), lambda h, a: None)
    assert r.gate == ("fs_walk", "fs_write") and r.mask != 0
    with pytest.raises(ValueError):
        impl.Row("x", "y", ("no_such_kind",), lambda h, a: None)


def test_variant_init_cannot_mutate_a_live_value(impl):
    none = impl.NONE
    with pytest.raises(AttributeError):
        none.__init__("Some", (1,))
    assert none.name == "None" and none.args == ()


def test_registry_handles_are_exact_ints_or_strs(impl):
    r = impl.LRURegistry(2)
    r.insert("cmd line", 1)
    r.insert(5, 2)
    assert r["cmd line"] == 1 and r[5] == 2

    class Sneaky(int):
        def __eq__(self, other):  # pragma: no cover - must never run
            r.touch_get(5)
            return False

        __hash__ = int.__hash__

    for bad in (Sneaky(3), 1.5, (1,), b"x", True, [1]):
        with pytest.raises(TypeError):
            r.insert(bad, 0)
    assert len(r) == 2


def test_stats_buffer_honours_flags(impl):
    s = impl.Stats(3)
    m = s.memoryview() if hasattr(s, "memoryview") else memoryview(s)
    assert m.readonly and m.format == "q" and m.shape == (15,) and m.nbytes == 120


# -- the stub (kernel/_c.pyi) is true of both kernels ----------------------------

def _stub() -> dict:
    import lexfast.kernel

    path = Path(lexfast.kernel.__file__).with_name("_c.pyi")
    names = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.AnnAssign, ast.Assign)):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            names[target.id] = node
    return names


def _members(cls: ast.ClassDef) -> dict:
    return {node.name if isinstance(node, ast.FunctionDef) else node.target.id: node
            for node in cls.body
            if isinstance(node, ast.FunctionDef)
            or (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name))}


def _params(fn: ast.FunctionDef) -> list[str]:
    return [p.arg for p in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)]


def _signature_names(obj) -> list[str] | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values()):
        return None  # a cdef class's __init__: not introspectable
    return list(sig.parameters)


def test_stub_matches_the_kernel(impl):
    """Every name, method, property and parameter list of ``_c.pyi`` exists on
    the kernel, and every public name and member of the kernel is in the stub."""
    stub = _stub()
    assert set(impl.__all__) == set(stub) - {"__all__"}
    for name, node in stub.items():
        assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
        obj = getattr(impl, name)
        if isinstance(node, ast.FunctionDef):
            got = _signature_names(obj)
            assert got is None or got == _params(node), (name, got, _params(node))
        if not isinstance(node, ast.ClassDef):
            continue
        members = _members(node)
        for member, m in members.items():
            assert hasattr(obj, member), f"{impl.__name__}.{name} lacks {member}"
            is_property = isinstance(m, ast.FunctionDef) and any(
                getattr(d, "id", None) == "property" for d in m.decorator_list)
            # dunders are slots with CPython's own parameter names
            if isinstance(m, ast.FunctionDef) and not is_property and not member.startswith("__"):
                got = _signature_names(getattr(obj, member))
                assert got is None or got == _params(m), (name, member, got, _params(m))
        extra = {m for m in dir(obj) if not m.startswith("_")} - set(members)
        assert not extra, f"{impl.__name__}.{name} has members the stub lacks: {sorted(extra)}"


# -- a wildcard row goes through the same gate, counters and error wrapping -----

def _wild(h, args):
    if args and args[0] == "boom":
        raise ValueError("bad")
    if args and args[0] == "fail":
        raise EffectError("failed")
    return "served"


def test_wildcard_row_is_dispatched_like_an_exact_row(make_handler):
    from lexfast import PolicyDenied
    from lexfast.table import default_table

    table = default_table().with_rows([("stream", "*", "stream", _wild), ("fs", "*", "fs_walk", _wild)])
    h = make_handler(effects=["stream", "fs_walk"], table=table)
    i = table.names.index("stream.*")

    class S(str):
        pass

    assert h.dispatch("stream", "anything", []) == "served"
    assert h.dispatch(S("stream"), S("other"), []) == "served"  # a str subclass: the same row
    with pytest.raises(EffectError, match=r"^stream\.x: internal error: ValueError: bad$"):
        h.dispatch("stream", "x", ["boom"])
    with pytest.raises(EffectError, match=r"^failed$"):
        h.dispatch("stream", "x", ["fail"])
    with pytest.raises(EffectError, match=r"^unsupported fs\.nope$"):  # fails before any row
        h.dispatch("fs", "nope", [])
    denied = make_handler(effects=[], table=table)
    with pytest.raises(PolicyDenied, match="^effect `stream` not in --allow-effects$") as e:
        denied.dispatch("stream", "x", [])
    assert e.value.effect == "stream"
    assert {k: h.stats_table()[0][k] for k in ("effect", "calls", "errors")} == \
        {"effect": "stream.*", "calls": 4, "errors": 2}
    assert denied._stats.row(i)["denials"] == 1


# -- the kernel is a leaf ----------------------------------------------------------

def _package_imports(path: Path) -> set[str]:
    """The ``lexfast`` modules a kernel source file imports (relative imports
    resolved from ``lexfast.kernel``); a .pyx is read line by line."""
    if path.suffix == ".py":
        found = {("." * n.level) + (n.module or "") for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.ImportFrom) and n.level}
        found |= {a.name for n in ast.walk(ast.parse(path.read_text()))
                  if isinstance(n, ast.Import) for a in n.names if a.name.startswith("lexfast")}
    else:
        found = set(re.findall(r"^\s*from\s+(\.+[\w.]*)\s+c?import", path.read_text(), re.M))
    out = set()
    for name in found:
        if name.startswith("lexfast"):
            out.add(name)
            continue
        dots = len(name) - len(name.lstrip("."))
        base = ["lexfast", "kernel"][: 3 - dots]
        rest = name.lstrip(".")
        out.add(".".join(base + ([rest] if rest else [])))
    return out


@pytest.mark.parametrize("name", ["_c.pyx", "_py.py", "_slow.py", "__init__.py"])
def test_kernel_imports_only_the_leaves(name):
    """The kernel imports nothing of the package but ``errors``, ``values``,
    ``kinds`` and its own modules."""
    import lexfast.kernel

    path = Path(lexfast.kernel.__file__).with_name(name)
    imported = _package_imports(path)
    assert imported, path  # the parse found the imports
    allowed = {"lexfast.errors", "lexfast.values", "lexfast.kinds"}
    assert {m for m in imported if not m.startswith("lexfast.kernel")} <= allowed, imported
