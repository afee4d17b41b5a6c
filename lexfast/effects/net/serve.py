"""net.serve and net.serve_tls: HTTP(S) servers that call back into the VM.

Each request runs ``runner(program, fork, handler_name, [request])`` on a
worker of a bounded pool (``limits.serve_threads``) with ``fork = h.fork()``,
so requests share the session's budget pool and handles and nothing else.
The request is the record ``{method, path, query, body, headers}`` (headers: a
``Map`` with lower-cased names, beyond the reference); the response is the
record ``{status, body, headers?}``. A non-record, an ``EffectError`` or any
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


def announce(h, label: str, scheme: str, port: int) -> None:
    """Print the reference's listening line and record the port."""
    # Whole, under the stderr lock: prints (StderrSink, the command's) are
    # framed `io.print: ...` and log lines start `[` or `{`, so a line that
    # starts `net.serve: listening on` is this one.
    write_stderr(f"{label}: listening on {scheme}://127.0.0.1:{port}\n")
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


def bind_listener(port: int, label: str) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (never any other address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", port))
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

def _make_app(h, name: str):
    """What a worker runs for one complete request: the request record, the
    program's call on a fork, its answer unpacked (``front.Front``'s app)."""
    ctx = (h, h.session.program, h.session.runner, name)

    def app(method: bytes, target: bytes, headers: dict, raw: bytes):
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
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body = ""  # the reference's rule for a non-UTF-8 body
        request = {"method": method.decode("ascii").upper(), "path": path,
                   "query": query, "body": body, "headers": Map(headers)}
        return _call(ctx, request)

    return app


def _call(ctx, request):
    h, program, runner, name = ctx
    try:
        result = runner(program, h.fork(), name, [request])
    except BaseException as e:  # noqa: BLE001 - EffectError, BudgetExceeded, a VM error,
        # even SystemExit or KeyboardInterrupt raised by the program's call: a
        # 500, and the server keeps serving (the worker is not the main thread)
        return 500, _text(f"internal error: {exc_text(e)}"), None
    try:
        return _unpack(result)
    except _BadResponse as e:
        return 500, _text(f"internal error: {e}"), None


def _text(s: str) -> bytes:
    return s.encode("utf-8", "replace")


class _BadResponse(Exception):
    pass


def _unpack(v):
    """The reference's ``unpack_response``: a Record's ``status`` (Int, cast
    to u16; default 200) and ``body`` (Str; default ""), plus ``headers``."""
    if not isinstance(v, dict) or isinstance(v, Map):
        return 500, _text(f"handler returned non-record: {debug_repr(v)}"), None
    st = v.get("status")
    status = 200
    if isinstance(st, int) and not isinstance(st, bool):
        status = int(st) & 0xFFFF
        if not 200 <= status <= 599:
            raise _BadResponse(f"handler returned invalid status {debug_repr(st)}")
    b = v.get("body")
    if isinstance(b, str):
        payload = _text(b)
    elif isinstance(b, (bytes, bytearray, memoryview)):
        payload = bytes(b)
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

def _read_pem(h, path: str, what: str) -> bytes:
    found = scoped(path, h.policy.read_roots)
    if found is None:
        raise PolicyDenied(f"net.serve_tls: read of `{path}` outside --allow-fs-read",
                           effect="net", path=path)
    resolved, root = found
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; only regular
        # files are read (a FIFO or a device like /dev/ptmx blocks forever)
        fd = open_in_scope(resolved, root, os.O_RDONLY | os.O_NONBLOCK)
    except ScopeEscape:
        raise PolicyDenied(f"net.serve_tls: read of `{path}` outside --allow-fs-read",
                           effect="net", path=path) from None
    except OSError as e:
        raise EffectError(f"net.serve_tls: read {what} {path}: {os_error_text(e)}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(mode):
            raise EffectError(f"net.serve_tls: read {what} {path}: not a regular file")
        return read_file_bounded(fd, PEM_MAX_BYTES)
    except OverflowError:
        raise EffectError(f"net.serve_tls: read {what} {path}: larger than "
                          f"{PEM_MAX_BYTES} bytes") from None
    except OSError as e:
        raise EffectError(f"net.serve_tls: read {what} {path}: {os_error_text(e)}") from None
    finally:
        os.close(fd)


class _EncryptedKey(Exception):
    pass


def _no_password():
    # Called only for an encrypted key. Without a callback OpenSSL would
    # prompt for the passphrase on the controlling terminal (a hang).
    raise _EncryptedKey


def _tls_context(cert: bytes, key: bytes) -> ssl.SSLContext:
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
    session = h.session
    sock = bind_listener(port, label)
    try:
        front = Front(sock, _make_app(h, name), session.limits, context, label)
        front.start()
    except BaseException:
        sock.close()
        raise
    real_port = sock.getsockname()[1]
    scheme = "https" if context is not None else "http"
    try:
        announce(h, "net.serve", scheme, real_port)
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
    cert = _read_pem(h, cert_path, "cert")
    key = _read_pem(h, key_path, "key")
    try:
        context = _tls_context(cert, key)
    except _EncryptedKey:
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
