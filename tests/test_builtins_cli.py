"""``cli.*`` (lexfast/builtins/cliargs.py): the reference's argument-spec DSL
(src/cli.rs behind builtins.rs's ``cli`` arms). Cases from the upstream
tests/std_cli.rs and cli.rs's own unit tests (cited by name), plus the
reference's exact error texts, help layout and JSON normalisation."""

from __future__ import annotations

import math

import pytest

from lexfast import DefaultHandler, EffectError, Policy
from lexfast import builtins as B
from lexfast.kernel import NONE, Variant, err, ok, some
from lexfast.values import Map


@pytest.fixture
def h():
    handler = DefaultHandler(Policy.pure())
    yield handler
    handler.close()


@pytest.fixture
def cli(h):
    def call(op, *args):
        return h.dispatch("cli", op, list(args))
    return call


def _simple(cli):
    # cli.rs spec_simple / std_cli.rs build_and_parse_simple_cli
    return cli("spec", "rubric", "Rubric CLI", [
        cli("flag", "verbose", some("v"), "show debug output"),
        cli("option", "output", some("o"), "write report", NONE),
        cli("positional", "path", "directory to scan", True),
    ], [])


def _parsed(v):
    assert isinstance(v, Variant) and v.name == "Ok", v
    return v.args[0]


def _error(v):
    assert isinstance(v, Variant) and v.name == "Err", v
    return v.args[0]


def test_the_table_is_the_reference_surface():
    assert sorted(B.TABLE["cli"]) == sorted(
        ["flag", "option", "positional", "spec", "parse", "envelope", "describe", "help"])


# -- builders ----------------------------------------------------------------------

def test_flag(cli):
    v = cli("flag", "verbose", some("v"), "noisy")
    assert v == {"help": "noisy", "kind": "flag", "name": "verbose", "short": "v"}
    assert list(v) == ["help", "kind", "name", "short"]  # serde_json's sorted keys
    assert cli("flag", "q", NONE, "")["short"] is None
    # anything but Some(Str) is no short name (opt_str), a missing one too
    assert cli("flag", "q", some(3), "h")["short"] is None
    assert cli("flag", "q", "v", "h")["short"] is None


def test_option(cli):
    v = cli("option", "level", NONE, "verbosity", some("info"))
    assert v == {"default": "info", "help": "verbosity", "kind": "option", "name": "level",
                 "short": None}
    assert list(v) == ["default", "help", "kind", "name", "short"]
    # the default may be left out altogether
    assert cli("option", "out", some("o"), "file")["default"] is None


def test_positional(cli):
    v = cli("positional", "path", "directory", True)
    assert v == {"help": "directory", "kind": "positional", "name": "path", "required": True}
    assert list(v) == ["help", "kind", "name", "required"]
    assert cli("positional", "x", "", False)["required"] is False


def test_builder_argument_errors(cli):
    for args, msg in [
        (("flag",), "missing argument"),
        (("flag", 1, NONE, "h"), "expected Str, got Int(1)"),
        (("flag", "n", NONE), "missing argument"),
        (("flag", "n", NONE, None), "expected Str, got Unit"),
        (("option", "n", NONE, 2), "expected Str, got Int(2)"),
        (("positional", "n", "h"), "missing argument"),
        (("positional", "n", "h", 1), "expected Bool, got Int(1)"),
        (("positional", "n", 5, True), "expected Str, got Int(5)"),
        (("spec", "n", "h"), "missing argument"),
        (("spec", "n", "h", (1,), []), "expected List, got Tuple([Int(1)])"),
        (("spec", "n", "h", [], None), "expected List, got Unit"),
        (("spec", 1, "h", [], []), "expected Str, got Int(1)"),
    ]:
        with pytest.raises(EffectError) as e:
            cli(*args)
        assert str(e.value) == msg, args


def test_spec(cli):
    s = _simple(cli)
    assert list(s) == ["args", "help", "kind", "name", "subcommands"]
    assert s["kind"] == "spec" and s["name"] == "rubric" and s["help"] == "Rubric CLI"
    assert s["args"][2] == {"help": "directory to scan", "kind": "positional", "name": "path",
                            "required": True}
    assert s["subcommands"] == []


def test_spec_entries_go_through_json(cli):
    # value_to_json then value_from_json: keys sorted, Tuple -> List, Str-keyed
    # Map -> Record, Int-keyed Map -> [k, v] pairs (Str keys first), Bytes and
    # Variants round-trip, a non-finite Float becomes Unit
    entry = {"z": 1, "a": (1, 2.5), "m": Map({"y": 1, "b": 2}), "k": Map({2: "x", "s": 1, 1: "w"}),
             "b": b"\x00\xff", "v": some(math.nan), "n": math.inf}
    s = cli("spec", "p", "", [entry], [[1, (2,)]])
    assert s["args"] == [{"a": [1, 2.5], "b": b"\x00\xff", "k": [["s", 1], [1, "w"], [2, "x"]],
                          "m": {"b": 2, "y": 1}, "n": None, "v": Variant("Some", (None,)),
                          "z": 1}]
    assert list(s["args"][0]) == sorted(entry)
    assert list(s["args"][0]["m"]) == ["b", "y"]
    assert s["subcommands"] == [[1, [2]]]
    # a Record shaped like the JSON form of a Variant / Bytes becomes one
    s = cli("spec", "p", "", [{"$variant": "Tag", "args": [1]}, {"$bytes": "0aFF"},
                              {"$bytes": "abc"}, {"$bytes": "zz"}], [])
    assert s["args"] == [Variant("Tag", (1,)), b"\x0a\xff", {"$bytes": "abc"}, {"$bytes": "zz"}]
    assert type(s["args"][0]) is Variant


# -- parse (cli.rs unit tests, std_cli.rs) ------------------------------------------------

def test_parse_simple_positional_and_flag(cli):
    # cli.rs parse_simple_positional_and_flag / std_cli.rs build_and_parse_simple_cli
    p = _parsed(cli("parse", _simple(cli), ["./src", "--verbose"]))
    assert p == {"command": ["rubric"], "flags": {"verbose": True}, "options": {},
                 "positionals": {"path": "./src"}, "remaining": []}
    assert list(p) == ["command", "flags", "options", "positionals", "remaining"]


def test_parse_short_flag(cli):
    # cli.rs parse_short_flag
    p = _parsed(cli("parse", _simple(cli), ["./src", "-v"]))
    assert p["flags"] == {"verbose": True}


def test_flags_default_to_false(cli):
    p = _parsed(cli("parse", _simple(cli), ["./src"]))
    assert p["flags"] == {"verbose": False}
    assert p["options"] == {}  # an option without a default is absent


def test_parse_option_with_separate_value(cli):
    # cli.rs parse_option_with_separate_value
    p = _parsed(cli("parse", _simple(cli), ["--output", "report.json", "./src"]))
    assert p["options"] == {"output": "report.json"}
    assert p["positionals"] == {"path": "./src"}
    p = _parsed(cli("parse", _simple(cli), ["-o", "r.json", "./src"]))
    assert p["options"] == {"output": "r.json"}


def test_parse_option_with_inline_equals(cli):
    # cli.rs parse_option_with_inline_equals; the value is split at the first '='
    p = _parsed(cli("parse", _simple(cli), ["--output=report.json", "./src"]))
    assert p["options"] == {"output": "report.json"}
    p = _parsed(cli("parse", _simple(cli), ["--output=a=b", "./src"]))
    assert p["options"] == {"output": "a=b"}
    p = _parsed(cli("parse", _simple(cli), ["-o=", "./src"]))
    assert p["options"] == {"output": ""}


def test_an_option_takes_the_next_token_whatever_it_is(cli):
    p = _parsed(cli("parse", _simple(cli), ["--output", "--verbose", "./src"]))
    assert p["options"] == {"output": "--verbose"}
    assert p["flags"] == {"verbose": False}
    p = _parsed(cli("parse", _simple(cli), ["./src", "--output", "--"]))
    assert p["options"] == {"output": "--"} and p["remaining"] == []


def test_repeated_option_last_wins(cli):
    p = _parsed(cli("parse", _simple(cli), ["-o", "a", "--output=b", "./src", "--output", "c"]))
    assert p["options"] == {"output": "c"}


def test_option_requires_a_value(cli):
    assert _error(cli("parse", _simple(cli), ["./src", "--output"])) == \
        "option `--output` requires a value"
    # named by its long name even when given short
    assert _error(cli("parse", _simple(cli), ["./src", "-o"])) == \
        "option `--output` requires a value"


def test_parse_default_option_value_is_present(cli):
    # cli.rs parse_default_option_value_is_present /
    # std_cli.rs option_with_default_when_absent_is_present_in_parsed
    s = cli("spec", "p", "", [cli("option", "level", NONE, "verbosity", some("info"))], [])
    assert _parsed(cli("parse", s, []))["options"] == {"level": "info"}
    assert _parsed(cli("parse", s, ["--level", "debug"]))["options"] == {"level": "debug"}


def test_parse_missing_required_positional_errors(cli):
    # cli.rs parse_missing_required_positional_errors /
    # std_cli.rs missing_required_positional_returns_err
    assert _error(cli("parse", _simple(cli), [])) == \
        "missing required positional `path` for `rubric`"
    s = cli("spec", "p", "prog", [cli("positional", "input", "input file", True)], [])
    assert _error(cli("parse", s, [])) == "missing required positional `input` for `p`"


def test_optional_positionals(cli):
    s = cli("spec", "p", "", [cli("positional", "a", "", True),
                              cli("positional", "b", "", False)], [])
    assert _parsed(cli("parse", s, ["1"]))["positionals"] == {"a": "1"}
    assert _parsed(cli("parse", s, ["1", "2"]))["positionals"] == {"a": "1", "b": "2"}
    assert _error(cli("parse", s, ["1", "2", "3"])) == \
        "unexpected positional argument `3` for `p`"
    # a required positional after an optional one is still required
    s = cli("spec", "p", "", [cli("positional", "a", "", False),
                              cli("positional", "b", "", True)], [])
    assert _error(cli("parse", s, ["1"])) == "missing required positional `b` for `p`"


def test_positionals_come_out_in_sorted_key_order(cli):
    s = cli("spec", "p", "", [cli("positional", "zeta", "", True),
                              cli("positional", "alpha", "", True)], [])
    p = _parsed(cli("parse", s, ["1", "2"]))
    assert p["positionals"] == {"zeta": "1", "alpha": "2"}
    assert list(p["positionals"]) == ["alpha", "zeta"]


def test_parse_unknown_flag_errors(cli):
    # cli.rs parse_unknown_flag_errors
    assert _error(cli("parse", _simple(cli), ["./src", "--bogus"])) == \
        "unknown flag `--bogus` for `rubric`"
    assert _error(cli("parse", _simple(cli), ["--bogus=1"])) == \
        "unknown flag `--bogus` for `rubric`"
    assert _error(cli("parse", _simple(cli), ["--=x"])) == "unknown flag `--` for `rubric`"


def test_an_unknown_short_flag_is_a_positional(cli):
    # "-5" with no such short flag is a value (a negative number), not an error
    p = _parsed(cli("parse", _simple(cli), ["-5"]))
    assert p["positionals"] == {"path": "-5"}
    p = _parsed(cli("parse", _simple(cli), ["-"]))
    assert p["positionals"] == {"path": "-"}
    assert _error(cli("parse", _simple(cli), ["./src", "-x"])) == \
        "unexpected positional argument `-x` for `rubric`"


def test_parse_flag_with_inline_value_errors(cli):
    # cli.rs parse_flag_with_inline_value_errors
    assert _error(cli("parse", _simple(cli), ["--verbose=yes", "./src"])) == \
        "flag `--verbose` does not take a value (got `=yes`)"
    assert _error(cli("parse", _simple(cli), ["-v=", "./src"])) == \
        "flag `--verbose` does not take a value (got `=`)"


def test_parse_double_dash_collects_remaining(cli):
    # cli.rs parse_double_dash_collects_remaining /
    # std_cli.rs double_dash_separator_collects_remaining
    p = _parsed(cli("parse", _simple(cli), ["./src", "--", "--would-be-flag", "extra"]))
    assert p["remaining"] == ["--would-be-flag", "extra"]
    assert p["positionals"] == {"path": "./src"}
    # `--` ends parsing before the required-positional check
    p = _parsed(cli("parse", _simple(cli), ["--", "x"]))
    assert p == {"command": ["rubric"], "flags": {"verbose": False}, "options": {},
                 "positionals": {}, "remaining": ["x"]}


def _rubric(cli):
    return cli("spec", "rubric", "", [cli("flag", "verbose", some("v"), "")], [
        cli("spec", "scan", "scan a directory", [cli("positional", "path", "", True)], []),
        cli("spec", "init", "initialise", [], []),
    ])


def test_parse_subcommand_descends(cli):
    # cli.rs parse_subcommand_descends
    p = _parsed(cli("parse", _rubric(cli), ["scan", "./src"]))
    assert p["command"] == ["rubric", "scan"]
    assert p["positionals"] == {"path": "./src"}
    assert p["flags"] == {"verbose": False}
    p = _parsed(cli("parse", _rubric(cli), ["-v", "init"]))
    assert p["command"] == ["rubric", "init"] and p["flags"] == {"verbose": True}
    assert _error(cli("parse", _rubric(cli), ["scan"])) == \
        "missing required positional `path` for `scan`"


def test_unknown_flag_in_subcommand_errors(cli):
    # cli.rs unknown_flag_in_subcommand_errors: the parent's flags do not reach a child
    assert _error(cli("parse", _rubric(cli), ["scan", "x", "-v"])) == \
        "unexpected positional argument `-v` for `scan`"
    assert _error(cli("parse", _rubric(cli), ["init", "-v"])) == \
        "unexpected positional argument `-v` for `init`"
    # where the child has a free positional, the parent's short flag fills it
    assert _parsed(cli("parse", _rubric(cli), ["scan", "-v"]))["positionals"] == {"path": "-v"}
    assert _error(cli("parse", _rubric(cli), ["scan", "x", "--verbose"])) == \
        "unknown flag `--verbose` for `scan`"


def test_a_subcommand_is_matched_only_before_any_positional(cli):
    s = cli("spec", "top", "", [cli("positional", "a", "", False)],
            [cli("spec", "go", "", [], [])])
    assert _parsed(cli("parse", s, ["go"]))["command"] == ["top", "go"]
    assert _error(cli("parse", s, ["x", "go"])) == "unexpected positional argument `go` for `top`"
    assert _error(cli("parse", _rubric(cli), ["nope"])) == \
        "unexpected positional argument `nope` for `rubric`"


def test_a_subcommand_resets_a_flag_it_redeclares(cli):
    # the child's flag defaults are written over the parent's state
    s = cli("spec", "top", "", [cli("flag", "v", NONE, "")],
            [cli("spec", "sub", "", [cli("flag", "v", NONE, ""),
                                     cli("option", "o", NONE, "", some("d"))], [])])
    p = _parsed(cli("parse", s, ["--v", "sub"]))
    assert p["flags"] == {"v": False} and p["options"] == {"o": "d"}


def test_six_subcommands_dispatch(cli):
    # std_cli.rs six_subcommands_dispatch
    s = cli("spec", "rubric", "audit your repo", [], [
        cli("spec", "scan", "scan a directory", [cli("positional", "path", "dir", True)], []),
        cli("spec", "init", "initialise", [], []),
        cli("spec", "report", "emit report", [], []),
        cli("spec", "score", "score a project", [], []),
        cli("spec", "badge", "render a badge", [], []),
        cli("spec", "ci", "ci helpers", [], []),
    ])
    for sub in ["scan", "init", "report", "score", "badge", "ci"]:
        argv = [sub, "./somewhere"] if sub == "scan" else [sub]
        assert _parsed(cli("parse", s, argv))["command"] == ["rubric", sub]


def test_parse_argument_errors(cli):
    with pytest.raises(EffectError) as e:
        cli("parse", _simple(cli), ["a", 1])
    assert str(e.value) == "cli.parse: argv must be List[Str], got Int(1)"
    with pytest.raises(EffectError) as e:
        cli("parse", _simple(cli))
    assert str(e.value) == "missing argument"
    with pytest.raises(EffectError) as e:
        cli("parse", _simple(cli), ("a",))
    assert str(e.value) == 'expected List, got Tuple([Str("a")])'


def test_parse_of_a_malformed_spec(cli):
    # a spec is read as JSON: anything without a name / args is an empty spec
    assert cli("parse", None, []) == ok({"command": [""], "flags": {}, "options": {},
                                         "positionals": {}, "remaining": []})
    assert cli("parse", 3, ["x"]) == err("unexpected positional argument `x` for ``")
    # entries of other kinds are skipped
    s = {"name": "p", "args": [{"kind": "weird", "name": "x"}, 7]}
    assert _error(cli("parse", s, ["--x"])) == "unknown flag `--x` for `p`"


def test_parse_does_not_mutate_its_arguments(cli):
    spec, argv = _simple(cli), ["./src", "-v"]
    before = repr(spec), list(argv)
    cli("parse", spec, argv)
    assert (repr(spec), argv) == before


# -- envelope, describe, help ---------------------------------------------------------

def test_envelope(cli):
    # cli.rs envelope_shape_is_acli_compatible / std_cli.rs json_envelope_wraps_command_data
    v = cli("envelope", True, "rubric", [1, 2, 3])
    assert v == {"command": "rubric", "data": [1, 2, 3], "ok": True}
    assert list(v) == ["command", "data", "ok"]
    assert cli("envelope", False, "x", {"hits": 3}) == {"command": "x", "data": {"hits": 3},
                                                       "ok": False}
    # data goes through JSON; missing data is Unit
    assert cli("envelope", True, "x", (1, math.nan))["data"] == [1, None]
    assert cli("envelope", True, "x")["data"] is None
    assert cli("envelope", True, "x", {"b": 1, "a": Map({1: 2})})["data"] == {"a": [[1, 2]],
                                                                              "b": 1}


def test_envelope_argument_errors(cli):
    with pytest.raises(EffectError) as e:
        cli("envelope", "yes", "x", 1)
    assert str(e.value) == 'expected Bool, got Str("yes")'
    with pytest.raises(EffectError) as e:
        cli("envelope", True)
    assert str(e.value) == "missing argument"


def test_describe_recurses_into_subcommands(cli):
    # cli.rs describe_recurses_into_subcommands / std_cli.rs describe_returns_machine_readable_spec
    s = cli("spec", "rubric", "outer", [cli("flag", "verbose", some("v"), "")],
            [cli("spec", "scan", "scan dir", [], [])])
    d = cli("describe", s)
    assert d == {
        "args": [{"help": "", "kind": "flag", "name": "verbose", "short": "v"}],
        "help": "outer",
        "name": "rubric",
        "subcommands": [{"args": [], "help": "scan dir", "name": "scan", "subcommands": []}],
    }
    assert list(d) == ["args", "help", "name", "subcommands"]


def test_describe_of_odd_specs(cli):
    assert cli("describe") == {"args": [], "help": "", "name": "", "subcommands": []}
    # help is cloned as it is (an explicit Unit stays Unit, a number a number)
    assert cli("describe", {"name": "x", "help": None})["help"] is None
    assert cli("describe", {"name": "x", "help": 5, "args": 3})["help"] == 5
    assert cli("describe", {"subcommands": [1]})["subcommands"] == [
        {"args": [], "help": "", "name": "", "subcommands": []}]


HELP_FULL = (
    "rubric — Rubric CLI\n"
    "\n"
    "USAGE:\n"
    "  rubric <path> [extra]\n"
    "\n"
    "FLAGS:\n"
    "  -v, --verbose           noisy\n"
    "  -o, --output            write to FILE\n"
    "      --dry-run           no writes\n"
    "\n"
    "SUBCOMMANDS:\n"
    "  scan              scan a directory\n"
    "  initialise-everything  set up\n"
)


def test_help_text_lists_args_and_subs(cli):
    # cli.rs help_text_lists_args_and_subs / std_cli.rs help_text_includes_args_and_subs,
    # with the exact layout
    s = cli("spec", "rubric", "Rubric CLI", [
        cli("flag", "verbose", some("v"), "noisy"),
        cli("positional", "path", "directory", True),
        cli("option", "output", some("o"), "write to FILE", NONE),
        cli("flag", "dry-run", NONE, "no writes"),
        cli("positional", "extra", "more", False),
    ], [cli("spec", "scan", "scan a directory", [], []),
        cli("spec", "initialise-everything", "set up", [], [])])
    assert cli("help", s) == HELP_FULL


def test_help_text_minimal_and_wide(cli):
    assert cli("help", cli("spec", "tool", "", [], [])) == "tool\n"
    assert cli("help") == "\n"
    s = cli("spec", "t", "h", [cli("flag", "a-very-long-flag-name-indeed", some("l"), "x"),
                               cli("flag", "é", NONE, "accent")], [])
    assert cli("help", s) == (
        "t — h\n\nFLAGS:\n"
        "  -l, --a-very-long-flag-name-indeed  x\n"
        "      --é                 accent\n"  # padded by characters, not bytes
    )


def test_a_cyclic_or_too_deep_value_is_an_effect_error(cli):
    loop: list = []
    loop.append(loop)
    for op, args in [("spec", ("p", "", [loop], [])), ("envelope", (True, "x", loop)),
                     ("describe", (loop,)), ("help", ({"name": "x", "args": loop},)),
                     ("parse", ({"args": loop}, []))]:
        with pytest.raises(EffectError) as e:
            cli(op, *args)
        assert str(e.value) == "cli: value nested too deeply to convert to JSON"
