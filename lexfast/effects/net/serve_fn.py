"""net.serve_fn, net.serve_routed and the ``*_with`` forms with ``ServeOpts``:
HTTP servers whose handlers are closure values the program passes.

Each request calls ``handler.invoke_closure(closure, [request], op=...)`` on
a fresh fork from a worker of the front's pool (``DefaultHandler(invoke=...)``
is the VM's hook; in ``lexfast host`` it asks the peer). Everything else is
``net.serve``'s: the strict front, the limits, shutdown and grace, a 500 for
anything the call raises, the listening line and :func:`serve.listening`.
The request record adds the reference's ``path_params`` (a Map; filled by
``serve_routed`` from ``:name`` segments, else empty).

``ServeOpts`` is the reference's record ``{http2: Bool, inline_vm: Bool,
host: Str}`` plus, beyond it, an optional ``tls`` (a ``TlsConfig`` from
``tls.from_pem_files`` / ``tls.self_signed``: the server speaks HTTPS).
Stricter than the reference, which binds ``0.0.0.0``:

- ``net.default_opts()`` answers ``host: "127.0.0.1"``, and the servers
  without opts bind loopback as ``net.serve`` does;
- ``host`` must be an IP literal; a loopback one (``127.0.0.0/8``, ``::1``)
  is always allowed, any other (``0.0.0.0`` included) only when it is named
  in ``--allow-net-host`` itself (an empty list, which lets a client reach
  any host, does not widen what a server listens on): ``PolicyDenied``.
- ``http2: true`` is accepted and noted on stderr: the front speaks
  HTTP/1.1 only (the reference's h2c needs prior-knowledge clients; every
  HTTP/1.1 client is served the same). ``inline_vm`` is a reference
  scheduling knob with nothing to change here: accepted, ignored.
"""

from __future__ import annotations

import ipaddress
import json

from ...errors import EffectError, PolicyDenied
from ...kernel import Variant
from ...values import Deque, Map, Set, Table, debug_repr
from .serve import check_port, make_app, run_server
from .tls import context_of

#: routes one serve_routed takes (each is matched in order per request)
MAX_ROUTES = 1024
#: the reference's default_opts, loopback here (see the module's doc)
DEFAULT_HOST = "127.0.0.1"

_DATA_TYPES = (type(None), bool, int, float, str, bytes, bytearray, memoryview, list, tuple,
               dict, Map, Set, Deque, Table, Variant)


def _is_closure(v) -> bool:
    """A closure is whatever the VM passes that is not a Lex data value
    (docs/design.md §3): the handler never looks inside it."""
    return not isinstance(v, _DATA_TYPES)


def _closure_arg(args, i: int, sig: str, what: str = "handler"):
    v = args[i] if len(args) > i else None
    if not _is_closure(v):
        raise EffectError(f"{sig}: {what} must be a closure")
    return v


def _need_invoke(h, label: str) -> None:
    if h.session.invoke is None:
        raise EffectError(f"{label}: this handler cannot call closures: the VM must give "
                          "DefaultHandler(invoke=...) (or with_invoke)")


class ServeOpts:
    __slots__ = ("http2", "inline_vm", "host", "tls")

    def __init__(self, http2=False, inline_vm=False, host=DEFAULT_HOST, tls=None) -> None:
        self.http2 = http2
        self.inline_vm = inline_vm
        self.host = host
        self.tls = tls


def _opts(h, v, label: str) -> ServeOpts:
    """Decode and check a ``ServeOpts`` record (the reference's wording)."""
    if not isinstance(v, dict) or isinstance(v, Map):
        raise EffectError(f"{label}: opts must be a Record, got {debug_repr(v)[:80]}")
    for name in ("http2", "inline_vm"):
        if type(v.get(name)) is not bool:
            raise EffectError(f"{label}: opts.{name} must be Bool")
    host = v.get("host")
    if not isinstance(host, str):
        raise EffectError(f"{label}: opts.host must be Str")
    unknown = sorted(set(v) - {"http2", "inline_vm", "host", "tls"})
    if unknown:
        raise EffectError(f"{label}: opts has an unknown field `{unknown[0]}` "
                          "(expected http2, inline_vm, host, tls)")
    opts = ServeOpts(v["http2"], v["inline_vm"], _check_host(h, host, label))
    tls = v.get("tls")
    if tls is not None and not (isinstance(tls, Variant) and tls.name == "None" and not tls.args):
        if isinstance(tls, Variant) and tls.name == "Some" and len(tls.args) == 1:
            tls = tls.args[0]
        opts.tls = context_of(h, tls, f"{label}: opts.tls")
    return opts


def _check_host(h, host: str, label: str) -> str:
    """The address to bind: an IP literal, loopback or named in
    ``--allow-net-host``."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise EffectError(f"{label}: opts.host must be an IP address (127.0.0.1, ::1, "
                          f"0.0.0.0, ...), got {debug_repr(host)[:80]}") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        raise EffectError(f"{label}: opts.host: scoped IPv6 addresses are not supported")
    if addr.is_loopback:
        return str(addr)
    if str(addr) not in h.policy.net_hosts:
        raise PolicyDenied(f"{label}: listening on `{host}` needs it in --allow-net-host "
                           "(servers bind loopback otherwise)", effect="net", host=host)
    return str(addr)


# -- routes ---------------------------------------------------------------------

def _q(s: str) -> str:
    """A pattern quoted as the reference's ``{:?}`` does."""
    return json.dumps(s, ensure_ascii=False)[:80]


def _compile_pattern(pat: str) -> list:
    """The reference's ``compile_path_pattern``: ``(is_param, text)`` per
    ``/``-separated segment."""
    if not pat:
        raise ValueError('path pattern must be non-empty (use "/" for the root)')
    if not pat.startswith("/"):
        raise ValueError(f"path pattern must start with '/' (got {_q(pat)})")
    segs = []
    for raw in pat.split("/"):
        if raw.startswith(":"):
            if len(raw) == 1:
                raise ValueError(f":-segment in pattern {_q(pat)} must have a name "
                                 "(e.g. :id)")
            segs.append((True, raw[1:]))
        else:
            segs.append((False, raw))
    return segs


def _routes(v, label: str) -> list:
    if not isinstance(v, list):
        raise EffectError(f"{label}: routes must be a List")
    if len(v) > MAX_ROUTES:
        raise EffectError(f"{label}: at most {MAX_ROUTES} routes, got {len(v)}")
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, tuple) or len(item) != 3:
            raise EffectError(f"{label}: route #{i} must be a (method, pattern, handler) "
                              f"3-tuple, got {debug_repr(item)[:80]}")
        method, pattern, closure = item
        if not isinstance(method, str):
            raise EffectError(f"{label}: route #{i} method must be Str")
        if not isinstance(pattern, str):
            raise EffectError(f"{label}: route #{i} path-pattern must be Str")
        try:
            segs = _compile_pattern(pattern)
        except ValueError as e:
            raise EffectError(f"{label}: route #{i} ({_q(pattern)}): {e}") from None
        if not _is_closure(closure):
            raise EffectError(f"{label}: route #{i} handler must be a closure")
        out.append((method if method == "*" else method.upper(), segs, closure))
    return out


def _match(segs: list, path: str) -> Map | None:
    parts = path.split("/")
    if len(parts) != len(segs):
        return None
    params = Map()
    for (is_param, text), p in zip(segs, parts, strict=True):
        if is_param:
            params[text] = p
        elif text != p:
            return None
    return params


def _route(routes: list, fallback, method: str, path: str):
    """The first route matching ``(method, path)`` and its params, else the
    fallback with none (the reference's ``dispatch_route``)."""
    method = method.upper()
    path = path or "/"
    for m, segs, closure in routes:
        if m != "*" and m != method:
            continue
        params = _match(segs, path)
        if params is not None:
            return closure, params
    return fallback, Map()


# -- the servers -------------------------------------------------------------------

def _serve_closure(h, label: str, port: int, closure, opts: ServeOpts | None):
    _need_invoke(h, label)

    def call(fork, request):
        return fork.invoke_closure(closure, [request], op=label, fork=False)

    return _run(h, label, port, make_app(h, call, label), opts)


def _serve_routed(h, label: str, port: int, routes: list, fallback, opts: ServeOpts | None):
    _need_invoke(h, label)

    def call(fork, request):
        closure, params = _route(routes, fallback, request["method"], request["path"])
        request["path_params"] = params
        return fork.invoke_closure(closure, [request], op=label, fork=False)

    return _run(h, label, port, make_app(h, call, label), opts)


def _run(h, label: str, port: int, app, opts: ServeOpts | None):
    opts = opts or ServeOpts()
    note = ""
    if opts.http2:
        note = "http2 requested: this server speaks HTTP/1.1 only (served as HTTP/1.1)"
    return run_server(h, label, port, app, opts.tls, opts.host, note, announce_as=label)


def net_serve_fn(h, args):
    sig = "net.serve_fn(port, handler)"
    port = check_port(args, sig)
    closure = _closure_arg(args, 1, sig)
    return _serve_closure(h, "net.serve_fn", port, closure, None)


def net_serve_fn_with(h, args):
    sig = "net.serve_fn_with(port, handler, opts)"
    port = check_port(args, sig)
    if len(args) < 3:
        raise EffectError(f"{sig}: missing opts")
    opts = _opts(h, args[2], "net.serve_fn_with")
    closure = _closure_arg(args, 1, sig)
    return _serve_closure(h, "net.serve_fn_with", port, closure, opts)


def net_serve_routed(h, args):
    sig = "net.serve_routed(port, routes, fallback)"
    port = check_port(args, sig)
    if len(args) < 2:
        raise EffectError(f"{sig}: missing routes")
    fallback = _closure_arg(args, 2, sig, "fallback")
    routes = _routes(args[1], "net.serve_routed")
    return _serve_routed(h, "net.serve_routed", port, routes, fallback, None)


def net_serve_routed_with(h, args):
    sig = "net.serve_routed_with(port, routes, fallback, opts)"
    port = check_port(args, sig)
    if len(args) < 2:
        raise EffectError(f"{sig}: missing routes")
    if len(args) < 4:
        raise EffectError(f"{sig}: missing opts")
    opts = _opts(h, args[3], "net.serve_routed_with")
    fallback = _closure_arg(args, 2, sig, "fallback")
    routes = _routes(args[1], "net.serve_routed_with")
    return _serve_routed(h, "net.serve_routed_with", port, routes, fallback, opts)


def net_serve_with(h, args):
    from ...kernel import expect_str
    from ._common import need_program
    from .serve import _make_app
    sig = "net.serve_with(port, handler, opts)"
    port = check_port(args, sig)
    name = expect_str(args, 1)
    if len(args) < 3:
        raise EffectError(f"{sig}: missing opts")
    opts = _opts(h, args[2], "net.serve_with")
    need_program(h, "net.serve_with requires a Program reference; use DefaultHandler::with_program")
    return _run(h, "net.serve_with", port, _make_app(h, name), opts)


def net_default_opts(h, args):
    return {"http2": False, "inline_vm": False, "host": DEFAULT_HOST}


ROWS = [
    ("net", "serve_fn", "net", net_serve_fn),
    ("net", "serve_fn_with", "net", net_serve_fn_with),
    ("net", "serve_routed", "net", net_serve_routed),
    ("net", "serve_routed_with", "net", net_serve_routed_with),
    ("net", "serve_with", "net", net_serve_with),
    # a pure record constructor in the reference (no `net` grant needed)
    ("net", "default_opts", (), net_default_opts),
]

__all__ = ["ROWS"]
