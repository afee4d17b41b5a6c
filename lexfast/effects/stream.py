"""stream.next / stream.collect (gated ``stream``) and the session's stream
registry the producers (``http.stream_lines``, ``agent.cloud_stream``) put
their streams in.

A stream is the reference's value ``__StreamHandle("stream_N")``. Its
producer is pulled only when the program asks (``stream.next``), so a
server that keeps a connection open is consumed event by event. A stream
lives in its session's LRU registry (256): evicted, exhausted, failed or at
``handler.close()`` its producer is closed (its connection with it).
Beyond the reference: a value that is not a stream handle is an
``EffectError`` (the reference answered ``None``), ``stream.collect``
stops at ``Limits.stream_items`` items, and a producer failing mid-stream
(a line over its cap, the stream over its total) raises once and closes it
rather than ending as if the data were complete.
"""

from __future__ import annotations

import threading

from ..errors import EffectError
from ..kernel import NONE, Variant, next_handle, some
from ..values import debug_repr

#: the reference's constructor name for a ``Stream[T]`` value
HANDLE_NAME = "__StreamHandle"
_PREFIX = "stream_"


class Producer:
    """What a stream pulls from: ``pull()`` returns the next item (``str``)
    or ``None`` when exhausted, and may raise ``EffectError`` (the stream is
    then closed); ``close()`` releases what it holds and is idempotent.
    Calls are serialised by the stream's lock."""

    def pull(self) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class ListProducer(Producer):
    """A producer over items already in memory (``LEX_LLM_STREAM_FIXTURE``)."""

    def __init__(self, items) -> None:
        self._items = list(items)
        self._i = 0

    def pull(self) -> str | None:
        if self._i >= len(self._items):
            return None
        item = self._items[self._i]
        self._i += 1
        return item

    def close(self) -> None:
        self._items = []


class _Stream:
    __slots__ = ("producer", "lock", "closed")

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        # mark first: a pull in progress on another thread sees it and stops
        self.closed = True
        closer = getattr(self.producer, "interrupt", None)
        if closer is not None:
            closer()
        with self.lock:
            self.producer.close()


def _release(handle, stream: _Stream) -> None:
    stream.close()


def _registry(h):
    return h.session.registry("stream", _release)


def register(h, producer: Producer) -> Variant:
    """Put ``producer`` in the session's registry; the stream value to return."""
    n = next_handle()
    stream = _Stream(producer)
    try:
        reg = _registry(h)
        reg.insert(n, stream)
    except BaseException:
        producer.close()
        raise
    if h.session.closed:  # closed meanwhile: its registries were already emptied
        if reg.remove(n) is not None:
            stream.close()
        raise EffectError("the handler is closed")
    return Variant(HANDLE_NAME, (f"{_PREFIX}{n}",))


def _handle(op: str, args) -> int | None:
    """The registry key a stream value names; None for a well-formed handle
    no registry could hold (it is simply unknown)."""
    if not args:
        raise EffectError("missing argument")
    v = args[0]
    if (not isinstance(v, Variant) or v.name != HANDLE_NAME or len(v.args) != 1
            or not isinstance(v.args[0], str)):
        raise EffectError(f"stream.{op}: expected a Stream (__StreamHandle), got {debug_repr(v)}")
    s = v.args[0]
    digits = s[len(_PREFIX):]
    if not s.startswith(_PREFIX) or not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        return None
    return int(digits)


def _pull(h, key: int, stream: _Stream):
    """The next item, or None; an exhausted or failed stream leaves the registry."""
    try:
        with stream.lock:
            item = None if stream.closed else stream.producer.pull()
    except BaseException:
        _drop(h, key, stream)
        raise
    if item is None:
        _drop(h, key, stream)
    return item


def _drop(h, key: int, stream: _Stream) -> None:
    reg = _registry(h)
    if reg.get(key) is stream:
        reg.remove(key)
    stream.close()


def stream_next(h, args):
    """``Some(item)``, or ``None`` once exhausted (and for a stream that is
    closed or unknown here: consuming past the end is not an error)."""
    key = _handle("next", args)
    if key is None:
        return NONE
    stream = _registry(h).touch_get(key)
    if stream is None:
        return NONE
    item = _pull(h, key, stream)
    return NONE if item is None else some(item)


def stream_collect(h, args):
    """Every remaining item; ``[]`` for a closed or unknown stream, so
    ``collect`` twice is ``[]`` the second time (the reference's contract)."""
    key = _handle("collect", args)
    if key is None:
        return []
    reg = _registry(h)
    stream = reg.touch_get(key)
    if stream is None:
        return []
    reg.remove(key)
    cap = h.session.limits.stream_items
    out: list = []
    try:
        while True:
            with stream.lock:
                item = None if stream.closed else stream.producer.pull()
            if item is None:
                return out
            if len(out) >= cap:
                raise EffectError(f"stream.collect: more than {cap} items; the stream is closed "
                                  "(pull it with stream.next)")
            out.append(item)
    finally:
        stream.close()


ROWS = [
    ("stream", "next", "stream", stream_next),
    ("stream", "collect", "stream", stream_collect),
]
