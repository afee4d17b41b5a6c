"""Pure builtins of the reference's ``http`` module (``builtins.rs``): the
request builders and response decoders. ``http.send/get/post/stream_lines``
are effects (``is_pure_call``) and are not here.

A request or response is a Record (``dict``); ``headers`` is a Map whose
names are lowercased, an older entry under any casing being replaced, and
which moves to the end of the record (the reference's ``shift_remove`` then
``insert``). ``with_query`` appends ``k=v`` pairs in key order, every byte
outside ``A-Z a-z 0-9 - _ . ~`` as ``%XX``. A decode failure is
``Err(DecodeError(msg))``.
"""

from __future__ import annotations

from ..errors import EffectError
from ..kernel import Variant, err, ok, some
from ..values import Map, debug_repr
from . import formats
from ._args import expect_int


def _record(args: list) -> dict:
    if not args:
        raise EffectError("missing Record argument")
    v = args[0]
    if type(v) is dict or (isinstance(v, dict) and not isinstance(v, Map)):
        return v
    raise EffectError(f"expected Record, got {debug_repr(v)}")


def _str(args: list, i: int) -> str:
    if i >= len(args):
        raise EffectError("missing argument")
    v = args[i]
    if isinstance(v, str):
        return str(v)
    raise EffectError(f"expected Str, got {debug_repr(v)}")


def _key_order(k: object) -> tuple:
    return (1, k, "") if type(k) is int else (0, 0, k)


def _set_header(req: dict, name: str, value: str) -> dict:
    out = dict(req)
    old = out.pop("headers", None)
    lowered = name.lower()
    headers = Map()
    if isinstance(old, Map):
        for k in sorted(old, key=_key_order):
            if type(k) is str and k.lower() == lowered:
                continue
            headers[k] = old[k]
    headers[lowered] = value
    out["headers"] = Map((k, headers[k]) for k in sorted(headers, key=_key_order))
    return out


def with_header(args: list) -> dict:
    req = _record(args)
    return _set_header(req, _str(args, 1), _str(args, 2))


def with_auth(args: list) -> dict:
    req = _record(args)
    scheme = _str(args, 1)
    token = _str(args, 2)
    return _set_header(req, "Authorization", f"{scheme} {token}")


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def url_encode(s: str) -> str:
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in s.encode("utf-8", "surrogatepass"))


def with_query(args: list) -> dict:
    req = _record(args)
    if len(args) < 2:
        raise EffectError("http.with_query: missing params argument")
    params = args[1]
    if not isinstance(params, Map):
        raise EffectError(f"http.with_query: params must be Map[Str, Str], got {debug_repr(params)}")
    url = req.get("url")
    if not isinstance(url, str):
        return dict(req)
    pieces = [f"{url_encode(k)}={url_encode(params[k])}"
              for k in sorted(params, key=_key_order)
              if isinstance(k, str) and isinstance(params[k], str)]
    if not pieces:
        return dict(req)
    sep = "&" if "?" in url else "?"
    out = dict(req)
    out["url"] = f"{url}{sep}{'&'.join(pieces)}"
    return out


def with_timeout_ms(args: list) -> dict:
    req = _record(args)
    ms = expect_int(args, 1)
    out = dict(req)
    out["timeout_ms"] = some(ms)
    return out


def _decode_err(msg: str) -> object:
    return err(Variant("DecodeError", (msg,)))


def _body(resp: dict, op: str) -> bytes:
    b = resp.get("body")
    if isinstance(b, (bytes, bytearray, memoryview)):
        return bytes(b)
    raise EffectError(f"http.{op}: HttpResponse.body must be Bytes")


def _utf8_error(e: UnicodeDecodeError) -> str:
    # Rust's Utf8Error Display
    bad = e.end - e.start
    if e.reason == "unexpected end of data":
        return f"incomplete utf-8 byte sequence from index {e.start}"
    return f"invalid utf-8 sequence of {bad} bytes from index {e.start}"


def json_body(args: list) -> object:
    resp = _record(args)
    body = _body(resp, "json_body")
    try:
        s = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return _decode_err(f"body not UTF-8: {_utf8_error(e)}")
    good, v = formats.loads(s)
    return ok(v) if good else _decode_err(f"json parse: {v}")


def json_body_typed(args: list) -> object:
    resp = _record(args)
    formats.required_field_names(args, 1)
    body = _body(resp, "json_body")
    try:
        s = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return _decode_err(f"body not UTF-8: {_utf8_error(e)}")
    good, v = formats.loads(s)
    if not good:
        return _decode_err(f"json parse: {v}")
    return formats.strict((True, v), args, wrap=_decode_err)


def text_body(args: list) -> object:
    resp = _record(args)
    body = _body(resp, "text_body")
    try:
        return ok(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        return _decode_err(f"body not UTF-8: {_utf8_error(e)}")


BUILTINS = {
    ("http", "with_header"): with_header,
    ("http", "with_auth"): with_auth,
    ("http", "with_query"): with_query,
    ("http", "with_timeout_ms"): with_timeout_ms,
    ("http", "json_body"): json_body,
    ("http", "json_body_typed"): json_body_typed,
    ("http", "text_body"): text_body,
}
