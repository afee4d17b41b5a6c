"""What the process pump waits on: ``epoll`` and an ``eventfd`` on Linux;
a ``selectors`` poller (kqueue on macOS and the BSDs, ``poll(2)`` elsewhere)
and a pipe where those are missing or ``LEXFAST_FORCE_PORTABLE=1`` asks.

:func:`new_poller` answers an object with ``epoll``'s interface as the pump
uses it (``register(fd, mask)``, ``unregister(fd)``, ``poll()`` giving
``(fd, events)`` pairs, ``close()``) and the event bits to use with it;
:class:`Waker` is the descriptor that interrupts a ``poll()`` from another
thread.
"""

from __future__ import annotations

import os
import select
import selectors

from ...scope.walk import force_portable

#: the portable fallbacks serve (no epoll or eventfd, or forced)
PORTABLE = force_portable() or not hasattr(select, "epoll") or not hasattr(os, "eventfd")

if PORTABLE:
    IN, OUT, ERR, HUP = 0x001, 0x004, 0x008, 0x010
else:
    IN, OUT, ERR, HUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR, select.EPOLLHUP


class _SelectorPoller:
    """``epoll``'s calls over a ``selectors`` selector. A registration made
    while another thread is inside ``poll()`` may only be seen by the next
    one (``poll(2)``), so whoever registers also wakes the poller."""

    def __init__(self, waker: Waker) -> None:
        kind = getattr(selectors, "KqueueSelector", None) or getattr(
            selectors, "PollSelector", None) or selectors.SelectSelector
        self._sel = kind()
        self._waker = waker

    def register(self, fd: int, mask: int) -> None:
        events = (selectors.EVENT_READ if mask & IN else 0) | (
            selectors.EVENT_WRITE if mask & OUT else 0)
        self._sel.register(fd, events)
        if fd != self._waker.fd:
            self._waker.wake()

    def unregister(self, fd: int) -> None:
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError) as e:
            raise OSError(str(e)) from None

    def poll(self) -> list[tuple[int, int]]:
        # EOF and a closed reader read as ready: the read (b"") or the
        # write (EPIPE) that follows says so, as EPOLLHUP / EPOLLERR would
        return [(key.fd, (IN if ev & selectors.EVENT_READ else 0)
                 | (OUT if ev & selectors.EVENT_WRITE else 0))
                for key, ev in self._sel.select()]

    def close(self) -> None:
        self._sel.close()


class Waker:
    """An ``eventfd`` (Linux), or the read end of a non-blocking pipe: ``fd``
    to register, :meth:`wake` from any thread, :meth:`drain` on the poller's."""

    def __init__(self) -> None:
        if PORTABLE:
            self.fd, self._w = os.pipe()
            try:
                for fd in (self.fd, self._w):
                    os.set_blocking(fd, False)
                    os.set_inheritable(fd, False)
            except BaseException:
                os.close(self.fd)
                os.close(self._w)
                raise
        else:
            self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._w = -1

    def wake(self) -> None:
        try:
            if self._w < 0:
                os.eventfd_write(self.fd, 1)
            else:
                os.write(self._w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is pending already

    def drain(self) -> None:
        try:
            if self._w < 0:
                os.eventfd_read(self.fd)
            else:
                while os.read(self.fd, 4096):
                    pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)
        if self._w >= 0:
            os.close(self._w)


def new_poller(waker: Waker):
    """An ``epoll`` (or its :class:`_SelectorPoller` stand-in) with
    ``waker`` registered for reading."""
    poller = _SelectorPoller(waker) if PORTABLE else select.epoll()
    try:
        poller.register(waker.fd, IN)
    except BaseException:
        poller.close()
        raise
    return poller
