"""tls.from_pem_files and tls.self_signed: TLS server configurations a
program builds once and hands to ``net.serve*_with`` (``ServeOpts.tls``).

The reference's ``TlsConfig`` is opaque to the type system but at run time
a record holding the PEM chain *and the private key* as Bytes. Here it is
the handle ``__TlsConfig("tls_N")`` in the session's registry (256, least
recently used evicted), like a stream: the key is parsed into an
``ssl.SSLContext`` when the value is made and kept nowhere else, so no repr,
log line, error message, record/replay trace or ``lexfast host`` reply can
carry it (they only ever see the handle). A handle is valid in its session.

``from_pem_files`` reads both files as ``net.serve_tls`` does: only inside
``--allow-fs-read`` (the openat2 scope, no FIFO or device, at most 1 MiB),
gated on ``fs_read`` as in the reference; a path outside the scope, a read
failure or a bad or encrypted key is the reference's SOFT ``Err``.
``self_signed`` makes a fresh P-256 key and a one-day-old, 90-day
certificate for ``hostname`` (``cryptography``, imported on first use), pure
as in the reference.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl

from ...errors import EffectError, PolicyDenied
from ...kernel import Variant, err, next_handle, ok
from ...scope import check_path_arg
from ...values import debug_repr

HANDLE_NAME = "__TlsConfig"
_PREFIX = "tls_"
#: longest hostname tls.self_signed accepts (a DNS name's limit)
HOSTNAME_MAX = 253


def _registry(h):
    return h.session.registry("tls", None)


def _store(h, context: ssl.SSLContext) -> Variant:
    n = next_handle()
    _registry(h).insert(n, context)
    return Variant(HANDLE_NAME, (f"{_PREFIX}{n}",))


def context_of(h, value, where: str) -> ssl.SSLContext:
    """The server context a ``__TlsConfig`` handle names; ``EffectError``
    naming ``where`` for anything else (or a handle of another session, or
    one evicted)."""
    if isinstance(value, Variant) and value.name == HANDLE_NAME and len(value.args) == 1 \
            and isinstance(value.args[0], str) and value.args[0].startswith(_PREFIX):
        digits = value.args[0][len(_PREFIX):]
        if digits.isdigit() and digits.isascii() and len(digits) < 20:
            context = _registry(h).touch_get(int(digits))
            if context is not None:
                return context
            raise EffectError(f"{where}: unknown TlsConfig {value.args[0]} (closed, evicted "
                              "or from another session)")
    raise EffectError(f"{where}: expected a TlsConfig (from tls.from_pem_files or "
                      f"tls.self_signed), got {debug_repr(value)[:80]}")


def tls_from_pem_files(h, args):
    from .serve import EncryptedKey, read_pem, tls_context
    if len(args) < 2:
        raise EffectError("tls.from_pem_files(cert, key): missing argument")
    cert_path, key_path = args[0], args[1]
    for what, p in (("cert", cert_path), ("key", key_path)):
        if not isinstance(p, str):
            raise EffectError(f"tls.from_pem_files: {what} path must be Str, got {debug_repr(p)[:80]}")
        check_path_arg("tls.from_pem_files", p)
    try:
        cert = read_pem(h, cert_path, "cert", "tls.from_pem_files")
        key = read_pem(h, key_path, "key", "tls.from_pem_files")
    except PolicyDenied as e:
        return err(str(e))
    except EffectError as e:
        return err(str(e))
    try:
        context = tls_context(cert, key)
    except EncryptedKey:
        return err("tls.from_pem_files: invalid certificate or key: encrypted keys are not "
                   "supported")
    except (ssl.SSLError, ValueError, OSError) as e:
        return err(f"tls.from_pem_files: invalid certificate or key: "
                   f"{getattr(e, 'reason', None) or e}")
    finally:
        del key
    return ok(_store(h, context))


def _self_signed_pem(hostname: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        san = x509.DNSName(hostname)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def tls_self_signed(h, args):
    from .serve import tls_context
    hostname = args[0] if args else None
    if not isinstance(hostname, str):
        raise EffectError(f"tls.self_signed(hostname): hostname must be Str, got "
                          f"{debug_repr(hostname)[:80]}")
    if not hostname or len(hostname) > HOSTNAME_MAX or not hostname.isascii() \
            or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in hostname):
        return err(f"tls.self_signed: invalid hostname {debug_repr(hostname)[:80]}")
    try:
        cert, key = _self_signed_pem(hostname)
    except (ValueError, TypeError) as e:
        return err(f"tls.self_signed: {e}")
    try:
        context = tls_context(cert, key)
    finally:
        del key
    return ok(_store(h, context))


ROWS = [
    ("tls", "from_pem_files", "fs_read", tls_from_pem_files),
    ("tls", "self_signed", (), tls_self_signed),
]

__all__ = ["ROWS", "HANDLE_NAME", "context_of"]
