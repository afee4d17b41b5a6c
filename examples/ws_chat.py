"""A WebSocket chat room: ``net.serve_ws`` and ``chat.broadcast``/``chat.send``.

Each message a client sends runs ``runner(program, fork, "on_message",
[event])`` with ``event = {body, conn_id, room}`` (the room is the URL path
without its ``/``). The demo starts the server on a free port, connects
alice and bob to ``/lobby`` and carol to ``/garden``, and shows who hears
what; ``--serve PORT`` keeps it up (Ctrl-C; try ``websocat``).

    python examples/ws_chat.py
"""

from __future__ import annotations

import sys
import threading

from websockets.sync.client import connect

from lexfast import DefaultHandler, Policy
from lexfast.effects.net.serve import wait_listening


def on_message(h, ev):
    body = ev["body"]
    if body.startswith("/whoami"):
        h.dispatch("chat", "send", [ev["conn_id"], f"you are #{ev['conn_id']} in {ev['room']}"])
    else:  # everyone in the room, the sender too
        h.dispatch("chat", "broadcast", [ev["room"], f"#{ev['conn_id']}: {body}"])


PROGRAM = {"on_message": on_message}


def runner(program, handler, name, args):
    return program[name](handler, *args)


def make_handler() -> DefaultHandler:
    return DefaultHandler(Policy(allow_effects=["net", "chat"]), program=PROGRAM, runner=runner)


def demo() -> int:
    with make_handler() as h:
        t = threading.Thread(target=h.dispatch, args=("net", "serve_ws", [0, "on_message"]))
        t.start()
        try:
            port = wait_listening(h, "ws", 10)
            url = f"ws://127.0.0.1:{port}"
            with connect(url + "/lobby", open_timeout=10) as alice, \
                    connect(url + "/lobby", open_timeout=10) as bob, \
                    connect(url + "/garden", open_timeout=10) as carol:
                alice.send("hello, lobby")
                heard_a, heard_b = alice.recv(timeout=10), bob.recv(timeout=10)
                print("alice hears:", heard_a.split(": ", 1)[1])
                print("bob hears:  ", heard_b.split(": ", 1)[1])
                carol.send("/whoami")
                print("carol hears:", carol.recv(timeout=10).split(" in ", 1)[1])
                try:  # the lobby's message never reached the garden
                    carol.recv(timeout=0.2)
                    print("carol heard the lobby!")
                except TimeoutError:
                    print("carol heard nothing from the lobby")
        finally:
            h.shutdown()
            t.join(10)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        with make_handler() as h:
            h.dispatch("net", "serve_ws", [int(argv[1]), "on_message"])
        return 0
    return demo()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
