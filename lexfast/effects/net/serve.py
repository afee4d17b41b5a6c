"""net.serve and net.serve_tls: HTTP(S) servers that call back into the VM.

Each request runs ``runner(program, fork, handler_name, [request])`` on a
worker of a bounded pool (``limits.serve_threads``) with ``fork = h.fork()``,
so requests share the session's budget pool and handles and nothing else.
The request is the record ``{method, path, query, body, headers, path_params}``
(headers: a ``Map`` with lower-cased names; ``path_params`` an empty ``Map``
here, filled by ``net.serve_routed``); the response is the
record ``{status, body, headers?}``, the body a Str, Bytes, ``BodyStr(s)``, or
``BodyStream(iter)`` / ``BodyBytes(iter)``: a :class:`BodyChunks` the front
pulls and sends chunked (shared with ``net.serve_fn``, :mod:`.serve_fn`). A
non-record, an ``EffectError`` or any
exception (``SystemExit`` and ``KeyboardInterrupt`` included: the runner runs
on a worker) is a 500 ``internal error: ...`` and the server keeps serving.

The call blocks until ``h.shutdown()`` (any fork, any thread) or
KeyboardInterrupt, then stops accepting, lets in-flight requests finish
within ``limits.serve_grace_s`` and returns Unit. It binds 127.0.0.1 only and
prints ``net.serve: listening on http(s)://127.0.0.1:PORT`` to stderr with the
real port (port 0 picks a free one); :func:`listening` and
:func:`wait_listening` give the port to embedding code and tests.

Beyond the reference: the front (:mod:`.front`) parses HTTP/1.1 strictly and
bounds and deadlines every read on one event loop, so neither smuggled
framing nor silent clients get through or stall it; bodies over
``limits.request_body_bytes`` get 413, idle keep-alive connections close
after ``limits.serve_idle_s``, no runner call starts once shutdown begins,
and serve_tls reads its PEM files only inside ``--allow-fs-read`` and speaks
TLS 1.2+ (the handshake on the loop, under a deadline).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import ssl
import stat
import tempfile
import threading
import time

from ...errors import EffectError, PolicyDenied
from ...kernel import expect_str
from ...scope import (
    ScopeEscape,
    check_path_arg,
    open_in_scope,
    read_file_bounded,
    scoped,
    write_all,
)
from ...values import Map, debug_repr, os_error_text
from ..log import write_stderr
from ._common import TOKEN_CHARS, exc_text, need_program
from .front import LISTEN_BACKLOG, Front

_log = logging.getLogger("lexfast.serve")

PEM_MAX_BYTES = 1 << 20

# Headers the server frames itself; a handler's values for them are dropped.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


# -- where servers listen (for embedding code and tests) ------------------------

class _Listening:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.ports: list[tuple[str, int]] = []


def _listening_state(session) -> _Listening:
    return session.state("serve", lambda _session: _Listening())


def announce(h, label: str, scheme: str, port: int, host: str = "127.0.0.1") -> None:
    """Print the reference's listening line and record the port."""
    # Whole, under the stderr lock: prints (StderrSink, the command's) are
    # framed `io.print: ...` and log lines start `[` or `{`, so a line that
    # starts `net.serve: listening on` is this one.
    shown = f"[{host}]" if ":" in host else host
    write_stderr(f"{label}: listening on {scheme}://{shown}:{port}\n")
    st = _listening_state(h.session)
    with st.cond:
        st.ports.append((scheme, port))
        st.cond.notify_all()


def retire(h, scheme: str, port: int) -> None:
    st = _listening_state(h.session)
    with st.cond:
        try:
            st.ports.remove((scheme, port))
        except ValueError:
            pass
        st.cond.notify_all()


def listening(h) -> list:
    """``[(scheme, port), ...]`` of the servers this session runs now
    (scheme ``http``, ``https`` or ``ws``)."""
    st = _listening_state(h.session)
    with st.cond:
        return list(st.ports)


def wait_listening(h, scheme: str | None = None, timeout: float = 10.0) -> int:
    """The port of a server of this session (of ``scheme`` if given) once it
    listens; ``TimeoutError`` after ``timeout`` seconds."""
    st = _listening_state(h.session)
    deadline = time.monotonic() + timeout
    with st.cond:
        while True:
            for s, port in st.ports:
                if scheme is None or s == scheme:
                    return port
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {scheme or 'server'} listening after {timeout} s")
            st.cond.wait(left)


# -- argument checks shared with net.serve_ws -----------------------------------

def check_port(args, what: str) -> int:
    v = args[0] if args else None
    if type(v) is int or (isinstance(v, int) and not isinstance(v, bool)):
        if 0 <= v <= 65535:
            return int(v)
    raise EffectError(f"{what}: port must be Int 0..=65535")


def bind_listener(port: int, label: str, host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on 127.0.0.1, or on ``host`` (an IP literal
    the caller has checked against the policy: ``ServeOpts.host``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as e:
        sock.close()
        raise EffectError(f"{label} bind {port}: {os_error_text(e)}") from None
    return sock


def block_until_shutdown(h, alive=None) -> None:
    """Wait for ``h.shutdown()`` (any fork, any thread) or KeyboardInterrupt.
    ``alive()`` false also ends the wait (the serving thread died)."""
    stop = threading.Event()
    hook = stop.set
    session = h.session
    session.on_shutdown(hook)
    try:
        if session.shutdown_event.is_set():
            return
        while not stop.wait(0.25):
            if alive is not None and not alive():
                return
    except KeyboardInterrupt:
        return
    finally:
        session.remove_shutdown_hook(hook)


# -- the program's side of a request ---------------------------------------------

def parse_target(target: bytes) -> tuple[str, str]:
    """``(path, query)`` of a request target (origin- or absolute-form)."""
    uri = target.decode("ascii", "replace")
    if not uri.startswith("/") and "://" in uri:
        # absolute-form (RFC 9112 3.2.2): the path is what follows the authority
        rest = uri.partition("://")[2]
        slash = rest.find("/")
        query_at = rest.find("?")
        if slash < 0 or (0 <= query_at < slash):
            uri = "/" + (rest[query_at:] if query_at >= 0 else "")
        else:
            uri = rest[slash:]
    path, _, query = uri.partition("?")
    return path, query


def request_record(method: bytes, target: bytes, headers: dict, raw: bytes) -> dict:
    """The request record ``{method, path, query, body, headers,
    path_params}`` (``path_params`` empty unless ``net.serve_routed`` fills it,
    as in the reference)."""
    path, query = parse_target(target)
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        body = ""  # the reference's rule for a non-UTF-8 body
    return {"method": method.decode("ascii").upper(), "path": path,
            "query": query, "body": body, "headers": Map(headers), "path_params": Map()}


def make_app(h, call, label: str):
    """What a worker runs for one complete request (``front.Front``'s app):
    the request record, ``call(fork, request)`` on a fresh fork (the
    program's function or closure), its answer unpacked."""

    def app(method: bytes, target: bytes, headers: dict, raw: bytes):
        request = request_record(method, target, headers, raw)
        fork = h.fork()
        try:
            result = call(fork, request)
        except BaseException as e:  # noqa: BLE001 - EffectError, BudgetExceeded, a VM error,
            # even SystemExit or KeyboardInterrupt raised by the program's call: a
            # 500, and the server keeps serving (the worker is not the main thread)
            return 500, _text(f"internal error: {exc_text(e)}"), None
        try:
            return unpack_response(fork, result, label)
        except _BadResponse as e:
            return 500, _text(f"internal error: {e}"), None

    return app


def _make_app(h, name: str):
    session = h.session
    program, runner = session.program, session.runner

    def call(fork, request):
        return runner(program, fork, name, [request])

    return make_app(h, call, "net.serve")


def _text(s: str) -> bytes:
    return s.encode("utf-8", "replace")


class _BadResponse(Exception):
    pass


# -- streaming bodies -------------------------------------------------------------

#: the reference's iterator representations (lex-bytecode's ``Iter[T]``)
_ITER_EAGER = "__IterEager"
_ITER_LAZY = "__IterLazy"


class BodyChunks:
    """A response body pulled one chunk at a time on the worker that answers
    the request (``BodyStream`` / ``BodyBytes``): the front writes each
    chunk with chunked framing as it comes and stops pulling (``close()``)
    when the client goes away or the server stops. A chunk that is not of
    the body's type raises ``EffectError`` (the front then cuts the
    connection short: the head is already out)."""

    def __init__(self, h, source, binary: bool, label: str) -> None:
        self.h = h
        self.binary = binary
        self.label = label
        self.what = "BodyBytes" if binary else "BodyStream"
        self._next = self._source(source)
        self.closed = False

    def _source(self, v):
        from ...kernel import Variant
        if isinstance(v, (list, tuple)) and not isinstance(v, Variant):
            items = iter(list(v))
            return lambda: next(items, _END)
        if isinstance(v, Variant):
            name, args = v.name, v.args
            if name == _ITER_EAGER and len(args) == 2 and isinstance(args[0], (list, tuple)) \
                    and isinstance(args[1], int) and not isinstance(args[1], bool):
                items = iter(list(args[0])[max(0, args[1]):])
                return lambda: next(items, _END)
            if name == _ITER_LAZY and len(args) == 2:
                state = [args[0]]
                step = args[1]

                def lazy():
                    r = self.h.invoke_closure(step, [state[0]], op=self.label, fork=False)
                    if isinstance(r, Variant) and r.name == "None" and not r.args:
                        return _END
                    if isinstance(r, Variant) and r.name == "Some" and len(r.args) == 1 \
                            and isinstance(r.args[0], tuple) and len(r.args[0]) == 2:
                        item, state[0] = r.args[0]
                        return item
                    raise EffectError(f"{self.label}: {self.what}: the iterator's step returned "
                                      f"{debug_repr(r)[:80]}, not Some((item, state)) or None")
                return lazy
            if name == "__StreamHandle":
                def stream():
                    r = self.h.dispatch("stream", "next", [v])
                    if isinstance(r, Variant) and r.name == "Some" and len(r.args) == 1:
                        return r.args[0]
                    return _END
                return stream
        if hasattr(v, "__next__"):  # a VM's own Python iterator
            return lambda: next(v, _END)
        raise _BadResponse(f"{self.what} needs an iterator (iter.from_list, iter.unfold, a "
                           f"stream), got {debug_repr(v)[:80]}")

    def pull(self) -> bytes | None:
        """The next chunk's bytes (maybe empty), or None at the end."""
        if self.closed:
            return None
        item = self._next()
        if item is _END:
            self.close()
            return None
        if not self.binary:
            if isinstance(item, str):
                return _text(item)
            raise EffectError(f"{self.label}: BodyStream items must be Str, got "
                              f"{debug_repr(item)[:80]}")
        if isinstance(item, (bytes, bytearray, memoryview)):
            return bytes(item)
        if isinstance(item, list) and all(type(b) is int and 0 <= b <= 255 for b in item):
            return bytes(item)
        raise EffectError(f"{self.label}: BodyBytes items must be Bytes or List[Int] of "
                          f"0..=255, got {debug_repr(item)[:80]}")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        close = getattr(self._next, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001, S110 - a VM iterator's own close
                pass


_END = object()


def unpack_response(h, v, label: str = "net.serve"):
    """The reference's ``unpack_response``: a Record's ``status`` (Int, cast
    to u16; default 200), ``body`` (Str or Bytes; or the tagged
    ``BodyStr(s)``, ``BodyStream(iter)``, ``BodyBytes(iter)``; default "")
    and ``headers``. A streamed body is a :class:`BodyChunks`."""
    from ...kernel import Variant
    if not isinstance(v, dict) or isinstance(v, Map):
        return 500, _text(f"handler returned non-record: {debug_repr(v)}"), None
    st = v.get("status")
    status = 200
    if isinstance(st, int) and not isinstance(st, bool):
        status = int(st) & 0xFFFF
        if not 200 <= status <= 599:
            raise _BadResponse(f"handler returned invalid status {debug_repr(st)}")
    b = v.get("body")
    payload: bytes | BodyChunks
    if isinstance(b, str):
        payload = _text(b)
    elif isinstance(b, (bytes, bytearray, memoryview)):
        payload = bytes(b)
    elif isinstance(b, Variant) and len(b.args) == 1 and b.name == "BodyStr":
        payload = _text(b.args[0]) if isinstance(b.args[0], str) else b""
    elif isinstance(b, Variant) and len(b.args) == 1 and b.name in ("BodyStream", "BodyBytes"):
        payload = BodyChunks(h, b.args[0], b.name == "BodyBytes", label)
    else:
        payload = b""
    extra = None
    hs = v.get("headers")
    if hs is not None:
        if not isinstance(hs, dict):
            raise _BadResponse(f"response headers must be a Map of Str to Str, got {debug_repr(hs)}")
        extra = []
        for k, val in hs.items():
            if not isinstance(k, str) or not isinstance(val, str):
                raise _BadResponse(
                    f"response headers must be a Map of Str to Str, got {debug_repr(hs)}")
            # CR/LF or NUL in a name or value would split the response.
            if not k or not set(k) <= TOKEN_CHARS:
                raise _BadResponse(f"invalid response header name {debug_repr(k)}")
            if any(c in val for c in "\r\n\0"):
                raise _BadResponse(f"invalid response header value for {k}")
            if k.lower() in _FRAMING_HEADERS:
                continue
            extra.append((k.encode("ascii"), val.encode("utf-8")))
    return status, payload, extra


# -- TLS from PEM files read inside the scope -----------------------------------

def read_pem(h, path: str, what: str, label: str = "net.serve_tls") -> bytes:
    found = scoped(path, h.policy.read_roots)
    if found is None:
        raise PolicyDenied(f"{label}: read of `{path}` outside --allow-fs-read",
                           effect="net", path=path)
    resolved, root = found
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; only regular
        # files are read (a FIFO or a device like /dev/ptmx blocks forever)
        fd = open_in_scope(resolved, root, os.O_RDONLY | os.O_NONBLOCK)
    except ScopeEscape:
        raise PolicyDenied(f"{label}: read of `{path}` outside --allow-fs-read",
                           effect="net", path=path) from None
    except OSError as e:
        raise EffectError(f"{label}: read {what} {path}: {os_error_text(e)}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(mode):
            raise EffectError(f"{label}: read {what} {path}: not a regular file")
        return read_file_bounded(fd, PEM_MAX_BYTES)
    except OverflowError:
        raise EffectError(f"{label}: read {what} {path}: larger than "
                          f"{PEM_MAX_BYTES} bytes") from None
    except OSError as e:
        raise EffectError(f"{label}: read {what} {path}: {os_error_text(e)}") from None
    finally:
        os.close(fd)


class EncryptedKey(Exception):
    pass


def _no_password():
    # Called only for an encrypted key. Without a callback OpenSSL would
    # prompt for the passphrase on the controlling terminal (a hang).
    raise EncryptedKey


def tls_context(cert: bytes, key: bytes) -> ssl.SSLContext:
    """A TLS 1.2+ server context from PEM bytes. ``load_cert_chain`` only
    takes paths: the bytes go through a memfd (or a private 0700 temp dir)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fds = []
        try:
            for data in (cert, key):
                fd = memfd("lexfast-pem", getattr(os, "MFD_CLOEXEC", 1))
                fds.append(fd)
                write_all(fd, data)
            ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}",
                                password=_no_password)
            return ctx
        finally:
            for fd in fds:
                os.close(fd)
    tmp = tempfile.mkdtemp(prefix="lexfast-pem-")
    try:
        paths = []
        for name, data in (("cert.pem", cert), ("key.pem", key)):
            p = os.path.join(tmp, name)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            paths.append(p)
        ctx.load_cert_chain(paths[0], paths[1], password=_no_password)
        return ctx
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the effects -----------------------------------------------------------------

def _serve(h, label: str, port: int, name: str, context: ssl.SSLContext | None):
    return run_server(h, label, port, _make_app(h, name), context)


def run_server(h, label: str, port: int, app, context: ssl.SSLContext | None,
               host: str = "127.0.0.1", note: str = "", announce_as: str = "net.serve"):
    """Bind ``host:port``, serve ``app`` on a front until shutdown, stop."""
    session = h.session
    sock = bind_listener(port, label, host)
    try:
        front = Front(sock, app, session.limits, context, label)
        front.start()
    except BaseException:
        sock.close()
        raise
    real_port = sock.getsockname()[1]
    scheme = "https" if context is not None else "http"
    try:
        if note:
            write_stderr(f"{label}: {note}\n")
        announce(h, announce_as, scheme, real_port, host)
        block_until_shutdown(h, front.alive)
    finally:
        retire(h, scheme, real_port)
        try:
            front.stop()
        finally:
            sock.close()
        if front.stuck:
            _log.warning("net.serve: %d request(s) still running after the %.1f s grace period",
                         front.stuck, front.grace)
    return None


def net_serve(h, args):
    port = check_port(args, "net.serve(port, handler)")
    name = expect_str(args, 1)
    need_program(h, "net.serve requires a Program reference; use DefaultHandler::with_program")
    return _serve(h, "net.serve", port, name, None)


def net_serve_tls(h, args):
    port = check_port(args, "net.serve_tls(port, cert, key, handler)")
    cert_path = expect_str(args, 1)
    key_path = expect_str(args, 2)
    name = expect_str(args, 3)
    check_path_arg("net.serve_tls", cert_path)
    check_path_arg("net.serve_tls", key_path)
    need_program(h, "net.serve_tls requires a Program reference")
    cert = read_pem(h, cert_path, "cert")
    key = read_pem(h, key_path, "key")
    try:
        context = tls_context(cert, key)
    except EncryptedKey:
        raise EffectError(f"net.serve_tls bind {port}: invalid certificate or key: "
                          "encrypted keys are not supported") from None
    except (ssl.SSLError, ValueError, OSError) as e:
        raise EffectError(f"net.serve_tls bind {port}: invalid certificate or key: "
                          f"{getattr(e, 'reason', None) or e}") from None
    return _serve(h, "net.serve_tls", port, name, context)


ROWS = [
    ("net", "serve", "net", net_serve),
    ("net", "serve_tls", "net", net_serve_tls),
]

__all__ = ["ROWS", "listening", "wait_listening"]
