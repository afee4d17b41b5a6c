"""``parser.*`` (lexfast/builtins/parser.py): the reference's parser-combinator
constructors. They build kind-tagged Records (builtins.rs ``parser_node``);
running a parser (``parser.run``) is the VM's, as in the reference, so the
upstream run-level cases (tests/std_parser.rs, std_parser_map.rs) are restated
at the level of the values the ops return: the exact shape the reference's
interpreter (``lex-bytecode``'s ``parser_runtime``) reads."""

from __future__ import annotations

import pytest

from lexfast import DefaultHandler, EffectError, Policy
from lexfast import builtins as B


@pytest.fixture
def call():
    h = DefaultHandler(Policy.pure())

    def call(op, *args):
        return h.dispatch("parser", op, list(args))

    yield call
    h.close()


def test_the_table_is_the_reference_surface():
    assert sorted(B.TABLE["parser"]) == sorted(
        ["char", "string", "digit", "alpha", "whitespace", "eof", "seq", "alt", "many",
         "optional", "map", "and_then"])
    # parser.run needs the VM (closures inside Map/AndThen): not a pure builtin
    assert not B.is_pure_call("parser", "run")


# -- primitives (std_parser.rs: PRIMITIVES_SRC) --------------------------------

def test_char(call):
    v = call("char", ",")
    assert v == {"kind": "Char", "ch": ","}
    assert list(v) == ["kind", "ch"]  # kind first, as parser_node inserts it
    assert call("char", "é") == {"kind": "Char", "ch": "é"}  # one char, two bytes
    assert call("char", "😀") == {"kind": "Char", "ch": "😀"}


def test_char_wants_exactly_one_character(call):
    with pytest.raises(EffectError) as e:
        call("char", "ab")
    assert str(e.value) == 'parser.char: expected 1-character string, got "ab"'
    with pytest.raises(EffectError) as e:
        call("char", "")
    assert str(e.value) == 'parser.char: expected 1-character string, got ""'
    with pytest.raises(EffectError) as e:
        call("char", 'a"\n')
    assert str(e.value) == 'parser.char: expected 1-character string, got "a\\"\\n"'
    # Rust's str Debug: \u{..} for controls and for combining marks
    with pytest.raises(EffectError) as e:
        call("char", "\x01\\\tb\u0301\u00a0é")
    assert str(e.value) == ('parser.char: expected 1-character string, '
                            'got "\\u{1}\\\\\\tb\\u{301}\\u{a0}é"')


def test_char_and_string_argument_errors(call):
    for op in ("char", "string"):
        with pytest.raises(EffectError) as e:
            call(op)
        assert str(e.value) == "missing argument"
        with pytest.raises(EffectError) as e:
            call(op, 3)
        assert str(e.value) == "expected Str, got Int(3)"


def test_string(call):
    v = call("string", "hello")
    assert v == {"kind": "String", "s": "hello"}
    assert list(v) == ["kind", "s"]
    assert call("string", "") == {"kind": "String", "s": ""}


@pytest.mark.parametrize("op,kind", [("digit", "Digit"), ("alpha", "Alpha"),
                                     ("whitespace", "Whitespace"), ("eof", "Eof")])
def test_nullary_primitives(call, op, kind):
    assert call(op) == {"kind": kind}
    assert call(op, "ignored", 1) == {"kind": kind}  # extra arguments are ignored
    a, b = call(op), call(op)
    assert a == b and a is not b  # a fresh Record each call


# -- combinators (std_parser.rs: COMBINATORS_SRC, RFC3339_SRC, CSV_SRC) --------

def test_seq_and_alt(call):
    d, a = call("digit"), call("alpha")
    s = call("seq", d, a)
    assert s == {"kind": "Seq", "a": {"kind": "Digit"}, "b": {"kind": "Alpha"}}
    assert list(s) == ["kind", "a", "b"]
    alt = call("alt", call("string", "foo"), call("string", "bar"))
    assert alt == {"kind": "Alt", "a": {"kind": "String", "s": "foo"},
                   "b": {"kind": "String", "s": "bar"}}


@pytest.mark.parametrize("op", ["seq", "alt"])
def test_seq_alt_missing_parsers(call, op):
    with pytest.raises(EffectError) as e:
        call(op)
    assert str(e.value) == f"parser.{op}: missing first parser"
    with pytest.raises(EffectError) as e:
        call(op, call("digit"))
    assert str(e.value) == f"parser.{op}: missing second parser"


def test_children_are_taken_as_they_are(call):
    # the reference clones any value in; only parser.run looks at it
    assert call("seq", 1, "x") == {"kind": "Seq", "a": 1, "b": "x"}
    assert call("many", None) == {"kind": "Many", "p": None}


def test_many_and_optional(call):
    m = call("many", call("digit"))
    assert m == {"kind": "Many", "p": {"kind": "Digit"}}
    assert list(m) == ["kind", "p"]
    o = call("optional", call("char", "-"))
    assert o == {"kind": "Optional", "p": {"kind": "Char", "ch": "-"}}


@pytest.mark.parametrize("op", ["many", "optional"])
def test_many_optional_missing_inner(call, op):
    with pytest.raises(EffectError) as e:
        call(op)
    assert str(e.value) == f"parser.{op}: missing inner parser"


def test_rfc3339_year_month_shape(call):
    # std_parser.rs rfc3339_date_prefix_parses: built from primitives only
    d = call("digit")
    year = call("seq", call("seq", call("seq", d, d), d), d)
    month = call("seq", d, d)
    p = call("seq", call("seq", year, call("char", "-")), month)
    assert p["kind"] == "Seq"
    assert p["a"]["b"] == {"kind": "Char", "ch": "-"}
    assert p["b"] == {"kind": "Seq", "a": {"kind": "Digit"}, "b": {"kind": "Digit"}}
    assert p["a"]["a"]["a"]["a"]["a"] == {"kind": "Digit"}


def test_csv_row_shape(call):
    # std_parser.rs csv_row_parses_three_alnum_fields
    alnum = call("many", call("alt", call("alpha"), call("digit")))
    row = call("seq", alnum, call("many", call("seq", call("char", ","), alnum)))
    assert row == {
        "kind": "Seq",
        "a": {"kind": "Many", "p": {"kind": "Alt", "a": {"kind": "Alpha"},
                                    "b": {"kind": "Digit"}}},
        "b": {"kind": "Many", "p": {"kind": "Seq", "a": {"kind": "Char", "ch": ","},
                                    "b": alnum}},
    }


def test_equivalent_parsers_are_equal(call):
    # std_parser.rs equivalent_parsers_have_equal_values
    a = call("seq", call("digit"), call("alpha"))
    d, al = call("digit"), call("alpha")
    b = call("seq", d, al)
    assert a == b


# -- closure-bearing combinators (std_parser_map.rs) --------------------------------

def test_map_and_and_then_carry_the_closure(call):
    def f(d):  # stands in for the VM's closure value: carried, never called
        raise AssertionError("a constructor must not call the closure")

    m = call("map", call("digit"), f)
    assert m == {"kind": "Map", "p": {"kind": "Digit"}, "f": f}
    assert list(m) == ["kind", "p", "f"]
    assert m["f"] is f
    t = call("and_then", call("digit"), f)
    assert t == {"kind": "AndThen", "p": {"kind": "Digit"}, "f": f}
    assert list(t) == ["kind", "p", "f"]
    # map composes (std_parser_map.rs map_composes)
    outer = call("map", m, f)
    assert outer == {"kind": "Map", "p": m, "f": f}


def test_equivalent_map_parsers_are_equal(call):
    # std_parser_map.rs equivalent_map_parsers_compare_equal: equal closures,
    # equal parsers (closure equality is the VM's value's own)
    closure = ("closure", b"\x01\x02")
    assert call("map", call("digit"), closure) == call("map", call("digit"), ("closure", b"\x01\x02"))


@pytest.mark.parametrize("op", ["map", "and_then"])
def test_map_and_then_missing_arguments(call, op):
    with pytest.raises(EffectError) as e:
        call(op)
    assert str(e.value) == f"parser.{op}: missing parser"
    with pytest.raises(EffectError) as e:
        call(op, call("digit"))
    assert str(e.value) == f"parser.{op}: missing closure"


def test_arguments_are_not_mutated(call):
    args = [{"kind": "Digit"}, {"kind": "Alpha"}]
    snapshot = [dict(a) for a in args]
    v = call("seq", *args)
    assert args == snapshot
    assert v["a"] is args[0]  # the child is the value passed, as the reference clones it
