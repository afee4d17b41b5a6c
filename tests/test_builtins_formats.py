"""lexfast/builtins/formats.py, regex.py, httpkit.py: json, toml, yaml,
dotenv, csv, regex and the pure http helpers, through ``h.dispatch``.
Upstream cases cite their test (tests/*.rs of the reference)."""

from __future__ import annotations

import time

import pytest

from lexfast import DefaultHandler, EffectError, Policy
from lexfast.kernel import NONE, Variant, err, ok, some
from lexfast.values import Map


@pytest.fixture
def d():
    h = DefaultHandler(Policy.pure())
    try:
        yield lambda kind, op, *args: h.dispatch(kind, op, list(args))
    finally:
        h.close()


# -- json ---------------------------------------------------------------

def test_json_parse_values(d):
    assert d("json", "parse", '{"b": 1, "a": [1.0, true, null, "é"]}') == ok(
        {"a": [1.0, True, None, "é"], "b": 1})
    v = d("json", "parse", '{"b": 1, "a": 2}').args[0]
    assert list(v) == ["a", "b"]  # serde_json's BTreeMap: sorted fields
    assert d("json", "parse", '{"a": 1, "a": 2}') == ok({"a": 2})
    assert type(d("json", "parse", "1.0").args[0]) is float
    assert d("json", "parse", "9223372036854775807") == ok(9223372036854775807)
    big = d("json", "parse", "9223372036854775808").args[0]
    assert type(big) is float
    neg0 = d("json", "parse", "-0").args[0]
    assert type(neg0) is float and str(neg0) == "-0.0"
    assert d("json", "parse", '{"$variant": "Some", "args": [1]}') == ok(some(1))
    assert d("json", "parse", '{"$bytes": "00ff"}') == ok(b"\x00\xff")
    assert d("json", "parse", '{"$bytes": "0g"}') == ok({"$bytes": "0g"})


@pytest.mark.parametrize("text,msg", [
    ("", "EOF while parsing a value at line 1 column 0"),
    ("x", "expected value at line 1 column 1"),
    ("1 2", "trailing characters at line 1 column 3"),
    ("[1,]", "trailing comma at line 1 column 4"),
    ('{"a":1,}', "trailing comma at line 1 column 8"),
    ("[1", "EOF while parsing a list at line 1 column 2"),
    ('{"a":1', "EOF while parsing an object at line 1 column 6"),
    ('"abc', "EOF while parsing a string at line 1 column 4"),
    ("[1 2]", "expected `,` or `]` at line 1 column 4"),
    ('{"a" 1}', "expected `:` at line 1 column 6"),
    ("{1:2}", "key must be a string at line 1 column 2"),
    ("tru", "EOF while parsing a value at line 1 column 3"),
    ("trux", "expected ident at line 1 column 4"),
    ("01", "invalid number at line 1 column 2"),
    ("NaN", "expected value at line 1 column 1"),
    ("1e400", "number out of range at line 1 column 5"),
    ('\n  "é" x', "trailing characters at line 2 column 8"),
])
def test_json_parse_errors_are_serde_json_texts(d, text, msg):
    assert d("json", "parse", text) == err(msg)


def test_json_parse_depth_is_bounded(d):
    r = d("json", "parse", "[" * 100_000 + "]" * 100_000)
    assert r == err("recursion limit exceeded at line 1 column 129")
    assert d("json", "parse", "[" * 128 + "]" * 128).name == "Ok"
    assert d("json", "parse", "[" * 129 + "]" * 129).name == "Err"


def test_json_parse_arg_errors(d):
    with pytest.raises(EffectError, match=r"^expected Str, got Int\(3\)$"):
        d("json", "parse", 3)
    with pytest.raises(EffectError, match="^missing argument$"):
        d("json", "parse")


def test_json_stringify(d):
    # m11.rs: encode(v :: Int) = json.stringify(v)
    assert d("json", "stringify", 42) == "42"
    assert d("json", "stringify", {"b": 1, "a": "x\"\n\x01é"}) == '{"a":"x\\"\\n\\u0001é","b":1}'
    assert d("json", "stringify", [1.0, 1e16, 1.5e-7, 0.00001, -0.0, float("nan"), float("inf")]) == \
        "[1.0,1e16,1.5e-7,0.00001,-0.0,null,null]"
    assert d("json", "stringify", (1, None, True)) == "[1,null,true]"
    assert d("json", "stringify", b"\x01\xab") == '{"$bytes":"01ab"}'
    assert d("json", "stringify", some(1)) == '{"$variant":"Some","args":[1]}'
    assert d("json", "stringify", Map({"b": 1, "a": 2})) == '{"a":2,"b":1}'
    assert d("json", "stringify", Map({2: "x", 1: "y"})) == '[[1,"y"],[2,"x"]]'
    assert d("json", "stringify", "e+1") == '"e+1"'
    with pytest.raises(EffectError, match="^missing argument$"):
        d("json", "stringify")


def test_json_round_trip(d):
    v = {"a": [1, 2.5, "s", None, {"x": False}], "b": some(b"\x00")}
    assert d("json", "parse", d("json", "stringify", v)) == ok(v)


# std_parse_strict.rs / parse_strict_nested.rs / std_parse_typed.rs
def test_json_parse_strict(d):
    src = '{"name": "x", "project": {"license": "MIT"}}'
    assert d("json", "parse_strict", src, ["name", "project.license"]).name == "Ok"
    assert d("json", "parse_strict", src, ["name", "age", "project.version"]) == err(
        "missing required field(s): age, project.version")
    assert d("json", "parse_strict", '{"a.b": 1}', ["a\\.b"]).name == "Ok"
    assert d("json", "parse_strict", "[1]", ["a"]) == err(
        'parse_strict: expected top-level object with fields ["a"], got [1]')
    assert d("json", "parse_strict", "[1]", []) == ok([1])
    assert d("json", "parse_strict", "{", ["a"]) == err("EOF while parsing an object at line 1 column 1")
    with pytest.raises(EffectError, match=r"required-fields list must contain Str, got Int\(1\)"):
        d("json", "parse_strict", "{}", [1])
    with pytest.raises(EffectError, match="^missing argument$"):
        d("json", "parse_strict", "{}")


def test_json_parse_strict_typed(d):
    schema = [("age", "Int"), ("tags", "List[Str]"), ("nick", "Option[Str]"), ("w", "Float")]
    assert d("json", "parse_strict_typed", '{"age": "x"}', [], schema) == err(
        "field `age`: expected Int, got Str")
    assert d("json", "parse_strict_typed", '{"age": 1, "tags": ["a", 2]}', [], schema) == err(
        "field `tags`: [1]: expected Str, got Number")
    assert d("json", "parse_strict_typed", '{"age": 1.5}', [], schema) == err(
        "field `age`: expected Int, got Number")
    assert d("json", "parse_strict_typed", '{"age": 1, "w": 2}', ["age"], schema) == ok(
        {"age": 1, "nick": NONE, "w": 2})
    assert d("json", "parse_strict_typed", '{"age": 1, "nick": "n"}', ["age"], schema) == ok(
        {"age": 1, "nick": some("n")})
    assert d("json", "parse_strict_typed", '{"nick": null}', [], schema) == ok({"nick": NONE})


def test_json_parse_speed_sane(d):
    doc = '[' + ",".join(f'{{"id": {i}, "name": "n{i}", "ok": true, "v": 1.5}}' for i in range(2000)) + ']'
    t = time.perf_counter()
    r = d("json", "parse", doc)
    assert r.name == "Ok" and len(r.args[0]) == 2000
    assert time.perf_counter() - t < 1.0


# -- toml (std_toml.rs, std_config.rs) ----------------------------------

def test_toml_parse(d):
    src = 'title = "x"\nn = 3\nf = 1.5\n[owner]\nname = "T"\ndob = 1979-05-27T07:32:00-08:00\n' \
          'd = 1979-05-27\nt = 07:32:00\nz = 1979-05-27T07:32:00Z\n[[p]]\na = 1\n[[p]]\na = 2\n'
    v = d("toml", "parse", src).args[0]
    assert v["title"] == "x" and v["n"] == 3 and v["f"] == 1.5
    assert v["owner"] == {"d": "1979-05-27", "dob": "1979-05-27T07:32:00-08:00", "name": "T",
                          "t": "07:32:00", "z": "1979-05-27T07:32:00Z"}
    assert v["p"] == [{"a": 1}, {"a": 2}]
    assert list(v) == sorted(v)
    assert d("toml", "parse", "a = 99999999999999999999").name == "Err"
    r = d("toml", "parse", "a = ")
    assert r.name == "Err" and r.args[0].startswith("TOML parse error")


def test_toml_parse_strict(d):
    src = '[package]\nname = "x"\n'
    assert d("toml", "parse_strict", src, ["package.name"]).name == "Ok"
    assert d("toml", "parse_strict", src, ["package.license"]) == err(
        "missing required field(s): package.license")
    assert d("toml", "parse_strict_typed", 'n = "x"', [], [("n", "Int")]) == err(
        "field `n`: expected Int, got Str")


def test_toml_stringify(d):
    # parse_then_stringify_round_trip
    v = d("toml", "parse", 'a = 1\n[b]\nc = "x"\n').args[0]
    s = d("toml", "stringify", v).args[0]
    assert d("toml", "parse", s) == ok(v)
    # stringify_returns_err_for_top_level_scalar
    r = d("toml", "stringify", 42)
    assert r.name == "Err" and "toml.stringify" in r.args[0]
    v = {"title": "x", "n": 3, "f": 1e16, "s": 'say "hi"', "arr": [1, 2.5],
         "owner": {"name": "T", "sub": {"z": 1}}, "p": [{"a": 1}, {"a": 2}]}
    assert d("toml", "stringify", v) == ok(
        'arr = [1, 2.5]\nf = 10000000000000000.0\nn = 3\ns = \'say "hi"\'\ntitle = "x"\n\n'
        '[owner]\nname = "T"\n\n[owner.sub]\nz = 1\n\n[[p]]\na = 1\n\n[[p]]\na = 2\n')
    assert d("toml", "parse", d("toml", "stringify", v).args[0]) == ok(v)
    r = d("toml", "stringify", {"a": None})
    assert r.name == "Err" and "toml.stringify" in r.args[0]


# -- yaml (std_config.rs) -----------------------------------------------

def test_yaml_parse_core_schema(d):
    v = d("yaml", "parse", "b: yes\na: true\nn: ~\ni: 0x10\nf: 1.5\ns: 2001-12-14\no: 012\nl: [1, x]\n")
    assert v == ok({"a": True, "b": "yes", "f": 1.5, "i": 16, "l": [1, "x"], "n": None,
                    "o": 12, "s": "2001-12-14"})
    assert d("yaml", "parse", "") == ok(None)
    assert d("yaml", "parse", "x: .nan") == ok({"x": None})
    assert d("yaml", "parse", "a: [1").name == "Err"
    assert d("yaml", "parse", "a: 1\n---\nb: 2\n").name == "Err"


def test_yaml_alias_bomb_is_refused(d):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    prev = "a"
    for i in range(9):
        name = f"l{i}"
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
        prev = name
    t = time.perf_counter()
    assert d("yaml", "parse", "\n".join(lines)) == err("repetition limit exceeded")
    assert time.perf_counter() - t < 5


def test_yaml_parse_strict(d):
    assert d("yaml", "parse_strict", "a: 1\n", ["a", "b"]) == err("missing required field(s): b")
    assert d("yaml", "parse_strict_typed", "a: x\n", ["a"], [("a", "Int")]) == err(
        "field `a`: expected Int, got Str")


def test_yaml_stringify(d):
    assert d("yaml", "stringify", {"b": [1, 2], "a": "x"}) == ok("a: x\nb:\n- 1\n- 2\n")
    assert d("yaml", "stringify", 42) == ok("42\n")
    assert d("yaml", "stringify", [1.0, 1e16, None]) == ok("- 1.0\n- 1e16\n- null\n")
    v = {"a": [1, {"b": None}], "c": "yes"}
    assert d("yaml", "parse", d("yaml", "stringify", v).args[0]) == ok(v)


# -- dotenv --------------------------------------------------------------

def test_dotenv_parse(d):
    src = '# c\n\nB=2\r\nexport A="x y"\nC=\'q\'\n D = v \nE="\nA=again\n'
    assert d("dotenv", "parse", src) == ok(Map({"A": "again", "B": "2", "C": "q", "D": "v", "E": '"'}))
    assert d("dotenv", "parse", "A=1\nnope\n") == err("dotenv.parse line 2: missing `=`")
    assert d("dotenv", "parse", "=1") == err("dotenv.parse line 1: empty key")
    with pytest.raises(EffectError):
        d("dotenv", "parse", 1)


# -- csv (std_config.rs) -----------------------------------------------

def test_csv_parse(d):
    src = 'a,b,c\r\n1,"x, ""y""",3\n\n"multi\nline",\nlast'
    assert d("csv", "parse", src) == ok([["a", "b", "c"], ["1", 'x, "y"', "3"], ["multi\nline", ""], ["last"]])
    assert d("csv", "parse", "") == ok([])
    assert d("csv", "parse", '\n\n""\r\n\ra"b",c\r') == ok([[""], ['a"b"', "c"]])
    assert d("csv", "parse", '"ab"c,d\n') == ok([["abc", "d"]])
    # csv_parse_counts_rows
    assert len(d("csv", "parse", "name,version\nlex,0.1.0\nrust,1.94\n").args[0]) == 3


def test_csv_stringify(d):
    rows = [["a", "b"], ["x,y", 'q"'], ["1", 2]]
    s = d("csv", "stringify", rows)
    assert s == ok('a,b\n"x,y","q"""\n1,2\n')
    assert d("csv", "parse", s.args[0]) == ok([["a", "b"], ["x,y", 'q"'], ["1", "2"]])
    assert d("csv", "stringify", [[""]]) == ok('""\n')
    assert d("csv", "stringify", "x") == err("csv.stringify expects List[List[Str]]")
    assert d("csv", "stringify", ["x"]) == err("csv.stringify row must be List[Str]")
    assert d("csv", "stringify", [["a", "b"], ["c"]]) == err(
        "csv.stringify: CSV error: found record with 1 fields, but the previous record has 2 fields")


# -- regex (std_regex.rs) ----------------------------------------------

def test_regex_compile(d):
    assert d("regex", "compile", r"\d+") == ok(r"\d+")
    r = d("regex", "compile", r"(a)\1")
    assert r == err("invalid regex: regex parse error:\n    (a)\\1\n       ^^\n"
                    "error: backreferences are not supported")
    r = d("regex", "compile", "a(?=b)")
    assert r.name == "Err" and "look-around" in r.args[0]
    r = d("regex", "compile", "(")
    assert r.name == "Err" and r.args[0].startswith("invalid regex: regex parse error:")
    assert "unclosed group" in r.args[0]


def test_regex_is_match(d):
    assert d("regex", "is_match", r"^\d+$", "12345") is True
    assert d("regex", "is_match", r"^\d+$", "12a") is False
    assert d("regex", "is_match", r"^\d$", "٣") is True  # Rust's \d is Unicode
    with pytest.raises(EffectError, match=r"^regex.is_match: invalid regex"):
        d("regex", "is_match", "(", "x")
    assert d("regex", "is_match_str", "(", "x") is False
    assert d("regex", "is_match_str", "b", "abc") is True


def test_regex_is_linear_time(d):
    t = time.perf_counter()
    assert d("regex", "is_match", "(a+)+$", "a" * 100_000 + "!") is False
    assert time.perf_counter() - t < 2


def test_regex_find(d):
    assert d("regex", "find", r"[A-Z]\w+", "alpha Beta Gamma") == some(
        {"text": "Beta", "start": 6, "end": 10, "groups": []})
    assert d("regex", "find", "z", "abc") == NONE
    m = d("regex", "find", r"(?P<user>\w+)@(?<host>\w+)(x)?", "é alice@home").args[0]
    assert m == {"text": "alice@home", "start": 3, "end": 13, "groups": ["alice", "home", ""]}


def test_regex_find_all_and_split(d):
    assert [m["text"] for m in d("regex", "find_all", r"\d+", "a1 b22 c333")] == ["1", "22", "333"]
    assert [(m["start"], m["end"]) for m in d("regex", "find_all", "a*", "baac")] == [(0, 0), (1, 3), (4, 4)]
    assert d("regex", "split", r"[,;]\s*", "a, b;c,d") == ["a", "b", "c", "d"]
    assert d("regex", "split", ",", "") == [""]


def test_regex_replace(d):
    assert d("regex", "replace_all", r"\d+", "a 1 b 22 c 333", "N") == "a N b N c N"
    assert d("regex", "replace", r"\d+", "a 1 b 2", "N") == "a N b 2"
    # replace_with_backrefs
    assert d("regex", "replace_all", r"(\w+)@(\w+)", "alice@example bob@test", "$2.$1") == \
        "example.alice test.bob"
    assert d("regex", "replace_all", r"(?P<w>\w+)", "hi yo", "<${w}>$$") == "<hi>$ <yo>$"
    assert d("regex", "replace", "(a)", "a", "$1x") == ""  # `$1x` names group "1x"
    with pytest.raises(EffectError, match="^missing argument$"):
        d("regex", "replace", "a", "b")


# -- http helpers (std_http.rs, std_http_json_body.rs) -------------------

REQ = {"method": "GET", "url": "https://example.com/api", "headers": Map(), "body": NONE,
       "timeout_ms": NONE}


def test_http_with_header_and_auth(d):
    r = d("http", "with_header", REQ, "X-Api-Key", "abc123")
    assert r["headers"] == Map({"x-api-key": "abc123"})
    assert list(r)[-1] == "headers"
    r = d("http", "with_header", r, "x-API-key", "new")
    assert r["headers"] == Map({"x-api-key": "new"})
    r = d("http", "with_auth", REQ, "Bearer", "eyJ.tok.en")
    assert r["headers"]["authorization"] == "Bearer eyJ.tok.en"
    assert REQ["headers"] == Map()
    with pytest.raises(EffectError, match=r"^expected Record, got Int\(1\)$"):
        d("http", "with_header", 1, "a", "b")
    with pytest.raises(EffectError, match="^missing Record argument$"):
        d("http", "with_header")


def test_http_with_query(d):
    r = d("http", "with_query", REQ, Map({"q": "hello world"}))
    assert r["url"] == "https://example.com/api?q=hello%20world"
    r = d("http", "with_query", REQ, Map({"b": "2", "a": "1"}))
    assert r["url"] == "https://example.com/api?a=1&b=2"
    r = d("http", "with_query", dict(REQ, url="http://x/?z=0"), Map({"k": "é~/"}))
    assert r["url"] == "http://x/?z=0&k=%C3%A9~%2F"
    with pytest.raises(EffectError, match=r"^http.with_query: params must be Map\[Str, Str\], got Int\(1\)$"):
        d("http", "with_query", REQ, 1)
    with pytest.raises(EffectError, match="^http.with_query: missing params argument$"):
        d("http", "with_query", REQ)


def test_http_with_timeout(d):
    assert d("http", "with_timeout_ms", REQ, 2500)["timeout_ms"] == some(2500)


def test_http_bodies(d):
    resp = {"status": 200, "headers": Map(), "body": b'{"y": 11, "x": 7}'}
    assert d("http", "json_body", resp) == ok({"x": 7, "y": 11})
    bad = dict(resp, body=b"{nope")
    assert d("http", "json_body", bad) == err(Variant("DecodeError", ("json parse: key must be a string at line 1 column 2",)))
    assert d("http", "json_body", dict(resp, body=b"\xff")) == err(
        Variant("DecodeError", ("body not UTF-8: invalid utf-8 sequence of 1 bytes from index 0",)))
    with pytest.raises(EffectError, match="^http.json_body: HttpResponse.body must be Bytes$"):
        d("http", "json_body", dict(resp, body="s"))
    assert d("http", "text_body", dict(resp, body=b"hello")) == ok("hello")
    with pytest.raises(EffectError, match="^http.text_body: HttpResponse.body must be Bytes$"):
        d("http", "text_body", {})
    assert d("http", "json_body_typed", resp, ["x", "z"], []) == err(
        Variant("DecodeError", ("missing required field(s): z",)))
    assert d("http", "json_body_typed", resp, ["x"], [("x", "Str")]) == err(
        Variant("DecodeError", ("field `x`: expected Str, got Number",)))
    assert d("http", "json_body_typed", resp, ["x"], [("x", "Int")]) == ok({"x": 7, "y": 11})


def test_yaml_parse_takes_a_few_hundred_kib_with_libyaml():
    # libyaml's parser (PyYAML's wheels carry it) lifts the input cap to 256 Ki
    import yaml

    from lexfast import DefaultHandler, Policy
    from lexfast.builtins import formats

    h = DefaultHandler(Policy.pure())
    try:
        doc = "".join(f"k{i}: [1, 2.5, abc]\n" for i in range(9000))  # ~180 KiB
        r = h.dispatch("yaml", "parse", [doc])
        if yaml.__with_libyaml__:
            assert r.name == "Ok" and r.args[0]["k8999"] == [1, 2.5, "abc"]
        else:
            assert r.name == "Err" and str(formats.YAML_MAX_INPUT_PURE) in r.args[0]
        over = "a: " + "x" * formats.YAML_MAX_INPUT
        r = h.dispatch("yaml", "parse", [over])
        assert r.name == "Err" and "exceeds the cap" in r.args[0]
    finally:
        h.close()
