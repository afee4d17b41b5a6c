"""What the network families share: the HTTP token alphabet, and the
helpers ``net.serve`` and ``net.serve_ws`` both use."""

from __future__ import annotations

from ...errors import EffectError

#: RFC 9110 ``tchar``: what a header name (and a method) may be made of.
TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789"
                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def exc_text(e: BaseException) -> str:
    """An exception for a message: an ``EffectError``'s own text, else
    ``Type: text`` (the type alone if ``str`` fails)."""
    if isinstance(e, EffectError):
        return str(e)
    try:
        return f"{type(e).__name__}: {e}"
    except Exception:
        return type(e).__name__


def need_program(h, message: str) -> None:
    """Raise ``EffectError(message)`` unless the session has a program and a
    callable runner to serve requests with."""
    session = h.session
    if session.program is None:
        raise EffectError(message)
    if session.runner is None or not callable(session.runner):
        raise EffectError(message.split(";")[0] + " and a runner; use DefaultHandler.with_program")
