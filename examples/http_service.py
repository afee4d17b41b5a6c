"""An HTTP service: ``net.serve`` with a runner, as a VM wires it.

``net.serve(port, handler_name)`` blocks, serving 127.0.0.1; each request
runs ``runner(program, handler.fork(), handler_name, [request])`` on a worker
thread. Here the "program" is a dict of Python functions standing in for the
VM's compiled Lex functions. The demo starts the server on a free port, sends
it three requests, and shuts it down; ``--serve PORT`` keeps it up (Ctrl-C).

    python examples/http_service.py            # the demo
    python examples/http_service.py --serve 8080
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.request

from lexfast import DefaultHandler, EffectError, Policy
from lexfast.effects.net.serve import wait_listening


def route(h, req):
    """A request is ``{method, path, query, body, headers}``; the reply is
    ``{status, body, headers?}``. ``h`` is a fork: it may perform effects."""
    if req["path"] == "/hello":
        return {"status": 200, "body": "hello\n"}
    if req["path"] == "/time" and req["method"] == "GET":
        now = h.dispatch("time", "now", [])  # an effect, under the run's policy
        return {"status": 200, "body": json.dumps({"now": now}),
                "headers": {"content-type": "application/json"}}
    if req["path"] == "/echo" and req["method"] == "POST":
        return {"status": 200, "body": req["body"]}
    return {"status": 404, "body": f"no route for {req['method']} {req['path']}\n"}


PROGRAM = {"route": route}


def runner(program, handler, name, args):
    """How a VM runs the program's function ``name``: a missing name is the
    VM's own error, reported as a 500 by the server."""
    fn = program.get(name)
    if fn is None:
        raise EffectError(f"unknown function `{name}`")
    return fn(handler, *args)


def make_handler() -> DefaultHandler:
    return DefaultHandler(Policy(allow_effects=["net", "time"], allow_net_host=["127.0.0.1"]),
                          program=PROGRAM, runner=runner)


def fetch(url: str, data: bytes | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def demo() -> int:
    with make_handler() as h:
        t = threading.Thread(target=h.dispatch, args=("net", "serve", [0, "route"]))
        t.start()
        try:
            port = wait_listening(h, "http", 10)
            base = f"http://127.0.0.1:{port}"
            print(fetch(base + "/hello"))
            status, body = fetch(base + "/time")
            print(status, sorted(json.loads(body)))
            print(fetch(base + "/echo", b"ping"))
            print(fetch(base + "/nope"))
        finally:
            h.shutdown()  # from any thread: in-flight requests finish, serve returns
            t.join(10)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        with make_handler() as h:
            h.dispatch("net", "serve", [int(argv[1]), "route"])  # until Ctrl-C
        return 0
    return demo()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
