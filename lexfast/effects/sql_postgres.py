"""PostgreSQL behind the ``sql.*`` ops: ``sql.open("postgres://…")``
(psycopg 3, the optional extra ``lexfast[postgres]``).

The reference opens any ``postgres://`` URL under the ``sql`` gate alone.
lexfast is stricter:

- ``sql.open`` needs the ``net`` effect too, and the URL's host must pass
  ``--allow-net-host`` (the check ``net.get`` makes, an empty list = any).
- The URL is parsed by libpq itself (so it is read exactly as libpq would
  read it) and then rebuilt from a closed set of fields: one host (never a
  Unix socket path, never a list), one port, user, password, dbname and the
  query parameters ``sslmode``, ``connect_timeout`` and
  ``application_name``; any other (``host=``, ``hostaddr=``, ``service=``,
  ``passfile=``, ``options=``, ``sslrootcert=`` …) is refused. Every
  setting that libpq would otherwise take from the process's environment or
  a service/password file and that could widen what the URL names
  (``PGHOSTADDR``, ``PGHOST``, ``PGPORT``, ``PGPASSWORD``/``PGPASSFILE``,
  ``PGOPTIONS``, Kerberos tickets, a client certificate) is passed
  explicitly: the address is resolved here and pinned with ``hostaddr``,
  ``require_auth`` allows only password methods (or none when the URL has
  no password, so no password from elsewhere is ever sent), no client
  certificate and no GSS encryption.
- A host that is not loopback needs ``sslmode`` ``require`` or stricter;
  without one it is ``verify-full`` against the system's CAs.
- Credentials are never echoed: messages name ``host:port`` only.

Statements are sent with the extended protocol (one statement per call, as
SQLite), parameters bound by the server (``?``/``?N`` placeholders become
``$N``; a statement may use ``$N`` directly), results read in chunks and
stopped at ``Limits.sql_rows`` / ``Limits.sql_result_bytes`` with the
SQLite wording; ``Limits.sql_timeout_s`` is the server's
``statement_timeout`` (SQLSTATE 57014) and bounds every wait on the client
side too (past it plus a grace the query is cancelled, then the connection
dropped). Values: NULL → Unit, integers → Int, float4/8 → Float, bool →
Bool, bytea → Bytes, text and every other type (numeric, dates, json,
uuid, arrays …) → Str as PostgreSQL renders it.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from urllib.parse import unquote

from ..errors import EffectError, PolicyDenied
from ..kernel import NONE, Variant, err, ok, some
from ..kinds import KIND_BIT
from ..values import debug_repr

SCHEMES = ("postgres://", "postgresql://")
_MISSING = ("sql.open: PostgreSQL URLs need psycopg 3: pip install lexfast[postgres]")
_GRACE_S = 2.0                  # past the server's statement_timeout: cancel, then drop
_PREPARED = 128                 # prepared statements kept per connection
# SQLSTATEs of a prepared statement gone (DEALLOCATE, DISCARD ALL) or whose
# result shape a schema change altered
_STALE_PREPARED = frozenset({"26000", "0A000"})
_CHUNK = 256                    # rows per chunk read from the server
_CONNECT_TIMEOUT_S = 10
_URL_PARAMS = frozenset({"host", "port", "user", "password", "dbname", "sslmode",
                         "connect_timeout", "application_name"})
_QUERY_PARAMS = frozenset({"sslmode", "connect_timeout", "application_name"})
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_REMOTE_SSLMODES = ("require", "verify-ca", "verify-full")
# never read: libpq looks for a password file unless one is named
_NO_PASSFILE = "/nonexistent/lexfast-never-reads-a-pgpass"


def is_postgres_url(path: str) -> bool:
    return path[:13].lower().startswith(SCHEMES)


def sql_error(message: str, code: str | None = None, detail: str | None = None) -> dict:
    return {"message": message,
            "code": NONE if code is None else some(code),
            "detail": NONE if detail is None else some(detail)}


def _fail(message: str, code: str | None = None, detail: str | None = None):
    return err(sql_error(message, code, detail))


# -- psycopg, loaded on first use ---------------------------------------------------

_pg = None
_pg_lock = threading.Lock()


class _Psycopg:
    """The parts of psycopg used here and the adapters every connection shares."""

    def __init__(self) -> None:
        import psycopg
        from psycopg import adapt, pq
        from psycopg.conninfo import conninfo_to_dict
        from psycopg.generators import fetch, send
        from psycopg.types.string import TextLoader

        if pq.version() < 170000:
            raise EffectError(f"sql.open: PostgreSQL URLs need libpq 17 or newer (psycopg uses "
                              f"{pq.version()}); the binary wheel bundles one: "
                              "pip install lexfast[postgres]")
        self.psycopg = psycopg
        self.pq = pq
        self.conninfo_to_dict = conninfo_to_dict
        self.fetch, self.send = fetch, send
        self.Transformer = adapt.Transformer
        self.AUTO = adapt.PyFormat.AUTO
        self.TEXT = pq.Format.TEXT
        self.errors = psycopg.errors
        st = pq.ExecStatus
        self.TUPLES_CHUNK, self.SINGLE_TUPLE = st.TUPLES_CHUNK, st.SINGLE_TUPLE
        self.TUPLES_OK, self.COMMAND_OK = st.TUPLES_OK, st.COMMAND_OK
        self.EMPTY_QUERY = st.EMPTY_QUERY
        self.INERROR = pq.TransactionStatus.INERROR
        self.IDLE = pq.TransactionStatus.IDLE
        self.BAD = pq.ConnStatus.BAD
        # Only these types keep psycopg's conversion; every other one loads
        # as the text PostgreSQL sends (a Decimal, a date or a parsed JSON
        # value is not a Lex value).
        keep = {"bool", "int2", "int4", "int8", "oid", "float4", "float8", "text", "varchar",
                "bpchar", "name", "bytea", "char"}
        adapters = adapt.AdaptersMap(psycopg.adapters)
        for info in psycopg.postgres.types:
            if info.name not in keep:
                adapters.register_loader(info.oid, TextLoader)
            if info.array_oid:
                adapters.register_loader(info.array_oid, TextLoader)
        self.adapters = adapters


def _psycopg() -> _Psycopg:
    global _pg
    if _pg is None:
        with _pg_lock:
            if _pg is None:
                try:
                    _pg = _Psycopg()
                except ImportError:
                    raise EffectError(_MISSING) from None
    return _pg


# -- the URL -------------------------------------------------------------------------

class _Refused(Exception):
    pass


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _split_at(url: str):
    """(user info, the rest) split where libpq splits them: the user info
    runs to the last ``@`` before the first ``/``."""
    rest = url.split("://", 1)[1]
    slash = rest.find("/")
    at = rest.rfind("@", 0, slash if slash >= 0 else len(rest))
    return (rest[:at], rest[at + 1:]) if at >= 0 else ("", rest)


def _userinfo(url: str) -> str:
    return _split_at(url)[0]


def _query_keys(url: str) -> list:
    """The names in the URL's query string (it starts at the first ``?``
    after the user info), %-decoded as libpq decodes them."""
    query = _split_at(url)[1].partition("?")[2]
    return [unquote(item.partition("=")[0]) for item in query.split("&") if item]


def _parse(pg: _Psycopg, url: str) -> dict:
    """The URL as libpq reads it, checked: the connection's keyword
    arguments except ``hostaddr``. Raises ``_Refused``."""
    for key in _query_keys(url):
        if key not in _QUERY_PARAMS:
            raise _Refused(f"URL parameter `{key}` is not allowed (only sslmode, "
                           "connect_timeout and application_name: the rest reach files, "
                           "sockets or hosts the URL does not name)")
    try:
        fields = pg.conninfo_to_dict(url)
    except pg.psycopg.Error as e:
        # libpq's words name the part at fault, never the whole URL; still,
        # the password (and its %-decoded form) is blanked
        password = _userinfo(url).partition(":")[2]
        text = _redact(_redact(str(e).strip(), password), unquote(password))
        raise _Refused(f"invalid PostgreSQL URL: {text}") from None
    extra = sorted(k for k in fields if k not in _URL_PARAMS)
    if extra:
        raise _Refused(f"URL parameter `{extra[0]}` is not allowed (only sslmode, "
                       "connect_timeout and application_name: the rest reach files, sockets "
                       "or hosts the URL does not name)")
    host = fields.get("host") or ""
    if not host:
        raise _Refused("the URL names no host")
    if host.startswith(("/", "@")) or "," in host:
        raise _Refused("the URL's host must be one host name or address (no Unix socket, "
                       "no list)")
    port_text = fields.get("port") or "5432"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _Refused("the URL's port must be one number from 1 to 65535")
    user = fields.get("user")
    if not user:
        raise _Refused("the URL names no user")
    for k, v in fields.items():
        if "\0" in v:
            raise _Refused(f"the URL's {k} contains NUL")
    sslmode = fields.get("sslmode")
    if sslmode is not None and sslmode not in _SSLMODES:
        raise _Refused(f"sslmode `{sslmode}` is not one of {', '.join(_SSLMODES)}")
    timeout_text = fields.get("connect_timeout")
    connect_timeout = _CONNECT_TIMEOUT_S
    if timeout_text is not None:
        if not timeout_text.isdigit() or int(timeout_text) < 1:
            raise _Refused("connect_timeout must be a whole number of seconds, at least 1")
        connect_timeout = min(int(timeout_text), 60)
    return {"host": host, "port": int(port_text), "user": user,
            # an empty password is none: libpq would look for one elsewhere
            "password": fields.get("password") or None, "dbname": fields.get("dbname") or user,
            "sslmode": sslmode, "connect_timeout": connect_timeout,
            "application_name": fields.get("application_name") or "lexfast"}


def _check_host(h, host: str) -> None:
    from .net.http import host_allowed
    if not host_allowed(h.policy, host):
        from ..values import debug_str_list
        raise PolicyDenied(f"sql.open: net call to host `{host}` not in --allow-net-host "
                           f"{debug_str_list(h.policy.allow_net_host)}", effect="net", host=host)


def _resolve(host: str, port: int) -> str:
    """The address to connect to (pinned with ``hostaddr``, so neither
    ``PGHOSTADDR`` nor a second lookup picks another)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise _Refused(f"cannot resolve host `{host}`: {e}") from None
    if not infos:
        raise _Refused(f"cannot resolve host `{host}`")
    return str(infos[0][4][0])


def _kwargs(parsed: dict, addr: str, limits) -> dict:
    loopback = _is_loopback(addr)
    sslmode = parsed["sslmode"]
    if not loopback:
        if sslmode is None:
            sslmode = "verify-full"
        elif sslmode not in _REMOTE_SSLMODES:
            raise _Refused(f"sslmode `{sslmode}` to a host that is not loopback: use require, "
                           "verify-ca or verify-full")
    elif sslmode is None:
        sslmode = "prefer"
    timeout_ms = max(1, int(float(limits.sql_timeout_s) * 1000))
    kw = {"host": parsed["host"].strip("[]"), "hostaddr": addr, "port": str(parsed["port"]),
          "user": parsed["user"], "dbname": parsed["dbname"], "sslmode": sslmode,
          "connect_timeout": str(parsed["connect_timeout"]),
          "application_name": parsed["application_name"],
          "client_encoding": "UTF8",
          # the placeholder scan reads literals as standard SQL
          "options": f"-c statement_timeout={timeout_ms} -c datestyle=ISO,MDY "
                     "-c standard_conforming_strings=on",
          "passfile": _NO_PASSFILE, "sslcertmode": "disable", "gssencmode": "disable",
          "require_auth": "none"}
    if parsed["password"] is not None:
        kw["password"] = parsed["password"]
        kw["require_auth"] = "password,md5,scram-sha-256"
    if sslmode in ("verify-ca", "verify-full"):
        kw["sslrootcert"] = "system"
    return kw


# -- the connection ------------------------------------------------------------------

class PgDb:
    """One PostgreSQL connection in the session's ``sql`` registry; the
    attributes sql.py's handle checks read (``lock``, ``closed``, ``watch``,
    ``deadline``) mean what they mean for a SQLite ``_Db``."""

    __slots__ = ("conn", "pgconn", "lock", "deadline", "closed", "timeout", "rows_cap",
                 "bytes_cap", "watch", "path", "where", "cursors", "statements", "uses",
                 "prepares", "__weakref__")

    def __init__(self, conn, limits, where: str) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.lock = threading.Lock()
        self.deadline = None
        self.closed = False
        self.watch = False
        self.path = None
        self.where = where      # host:port, for messages (never the credentials)
        self.timeout = float(limits.sql_timeout_s)
        self.rows_cap = int(limits.sql_rows)
        self.bytes_cap = int(limits.sql_result_bytes)
        self.cursors = 0
        self.statements: OrderedDict = OrderedDict()  # (query, types) -> prepared name
        self.uses: dict = {}  # (query, types) -> uses before it is prepared
        self.prepares = 0

    def __repr__(self) -> str:
        return f"<PgDb {self.where}{' closed' if self.closed else ''}>"

    def close(self) -> None:
        self.closed = True
        lock = self.lock
        if not lock.acquire(blocking=False):
            try:
                self.conn.cancel_safe(timeout=_GRACE_S)
            except Exception:
                pass
            if not lock.acquire(timeout=self.timeout + 2 * _GRACE_S + 1):
                return  # the call in progress sees `closed` and ends
        try:
            self.conn.close()
        except Exception:
            pass
        finally:
            lock.release()

    # -- one statement ------------------------------------------------------------

    def _wait(self, gen, deadline: float):
        """``conn.wait(gen)`` bounded by ``deadline``: past it the query is
        cancelled (the server answers 57014), and if even that is not
        answered in time the connection is dropped."""
        pg = _pg
        left = deadline - time.monotonic()
        try:
            return self.conn.wait(gen, timeout=max(left, 0.001))
        except pg.errors._WaitTimeout:
            pass
        try:
            self.conn.cancel_safe(timeout=_GRACE_S)
            return self.conn.wait(gen, timeout=_GRACE_S)
        except pg.errors._WaitTimeout:
            self.conn.close()
            raise pg.psycopg.OperationalError(
                f"no answer from the server within {self.timeout + _GRACE_S:g} s "
                "(Limits.sql_timeout_s): the connection was dropped") from None

    def run(self, op: str, query: bytes, params: list, rows: bool):
        """Send one statement; ``ok(records)`` when ``rows``, else
        ``ok(affected rows)``; an ``err(SqlError)`` otherwise."""
        pg = _pg
        pgconn = self.pgconn
        deadline = time.monotonic() + self.timeout + _GRACE_S
        first_error = None
        try:
            if pgconn.status == pg.BAD or self.conn.closed:
                return _fail(f"{op}: the connection to {self.where} is closed")
            tx = pg.Transformer(self.conn)
            if params:
                values = tx.dump_sequence(params, [pg.AUTO] * len(params))
                types, formats = tx.types, tx.formats
            else:
                values = types = formats = None
            name = self._prepared(query, types, deadline)
            if name is not None:
                pgconn.send_query_prepared(name, values, formats, pg.TEXT)
            else:
                pgconn.send_query_params(query, values, types, formats, pg.TEXT)
            pgconn.set_chunked_rows_mode(_CHUNK)
            self._wait(pg.send(pgconn), deadline)
            out: list = []
            names = None
            size = 0
            count = -1
            too_much = None
            while True:
                res = self._wait(pg.fetch(pgconn), deadline)
                if res is None:
                    break
                status = res.status
                if too_much is not None or first_error is not None:
                    continue  # drain what is left after a cancel
                if status == pg.TUPLES_CHUNK or status == pg.SINGLE_TUPLE:
                    if not rows:
                        too_much = "Execute returned results - did you mean to call query?"
                        self._cancel()
                        continue
                    try:
                        if names is None:
                            names = [(res.fname(i) or b"").decode("utf-8", "replace")
                                     for i in range(res.nfields)]
                            tx.set_pgresult(res, set_loaders=True)
                        else:
                            tx.set_pgresult(res, set_loaders=False)
                        got = tx.load_rows(0, res.ntuples, list)
                    except (ValueError, TypeError, pg.psycopg.Error) as e:
                        # a value psycopg cannot load (text not in the client
                        # encoding): this call's err, the rest drained
                        too_much = f"cannot read a value: {e}"
                        self._cancel()
                        continue
                    for r in got:
                        for v in r:
                            if v.__class__ is str or v.__class__ is bytes:
                                size += len(v)
                        if size > self.bytes_cap:
                            too_much = (f"result larger than {self.bytes_cap} bytes "
                                        "(Limits.sql_result_bytes)")
                            break
                        out.append(dict(zip(names, r)))  # noqa: B905
                        if len(out) > self.rows_cap:
                            too_much = f"more than {self.rows_cap} rows (Limits.sql_rows)"
                            break
                    if too_much is not None:
                        self._cancel()
                elif status == pg.TUPLES_OK or status == pg.COMMAND_OK:
                    n = res.command_tuples
                    count = 0 if n is None else n
                elif status == pg.EMPTY_QUERY:
                    count = 0
                else:
                    first_error = pg.errors.error_from_result(
                        res, encoding=self.conn.info.encoding)
            if first_error is not None:
                if name is not None and first_error.sqlstate in _STALE_PREPARED:
                    # DEALLOCATE/DISCARD by the program, or a schema change
                    # that alters the result: forget, and (outside a
                    # transaction, where nothing was done) run it unprepared
                    self.statements.clear()
                    self.uses.clear()
                    if pgconn.transaction_status == pg.IDLE:
                        self.uses[(query, types)] = -(1 << 30)  # never prepared again
                        return self.run(op, query, params, rows)
                return _error(op, first_error, self)
            if too_much is not None:
                return _fail(f"{op}: {too_much}")
            return ok(out) if rows else ok(max(count, 0))
        except pg.psycopg.Error as e:
            return _error(op, e, self)
        except (ValueError, OverflowError, TypeError) as e:  # a value psycopg cannot send
            return _fail(f"{op}: {e}")

    def _prepared(self, query: bytes, types, deadline: float):
        """The name of the server-side prepared statement for ``query`` with
        these parameter types, prepared at its second use (as psycopg
        prepares at its fifth), or None. At most ``_PREPARED`` per
        connection, least recently used deallocated."""
        key = (query, types)
        statements = self.statements
        name = statements.get(key)
        if name is not None:
            statements.move_to_end(key)
            return name
        uses = self.uses
        n = uses.get(key, 0) + 1
        if n < 2:
            if len(uses) >= 4 * _PREPARED:
                uses.clear()
            uses[key] = n
            return None
        uses.pop(key, None)
        pg = _pg
        pgconn = self.pgconn
        if len(statements) >= _PREPARED:
            _, old = statements.popitem(last=False)
            pgconn.send_query_params(b"DEALLOCATE " + old, None, None, None, pg.TEXT)
            self._wait(pg.send(pgconn), deadline)
            while self._wait(pg.fetch(pgconn), deadline) is not None:
                pass
        self.prepares += 1
        name = b"lexfast_%d" % self.prepares
        pgconn.send_prepare(name, query, types)
        self._wait(pg.send(pgconn), deadline)
        ok_ = False
        while (res := self._wait(pg.fetch(pgconn), deadline)) is not None:
            ok_ = res.status == pg.COMMAND_OK
        if not ok_:
            return None  # the statement's own run reports why
        statements[key] = name
        return name

    def _cancel(self) -> None:
        try:
            self.conn.cancel_safe(timeout=_GRACE_S)
        except Exception:
            pass

    def in_failed_transaction(self) -> bool:
        return self.pgconn.transaction_status == _pg.INERROR


def _error(op: str, e: BaseException, db: PgDb | None = None):
    """``err(SqlError)``: ``code`` the SQLSTATE (none for a lost
    connection), ``detail`` the server's detail or the full text."""
    diag = getattr(e, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(e).strip() or type(e).__name__
    detail = getattr(diag, "message_detail", None) if diag is not None else None
    code = getattr(e, "sqlstate", None)
    if code is None and db is not None and (db.conn.closed or db.pgconn.status == _pg.BAD):
        text = f"the connection to {db.where} was lost: {text}"
    if code == "57014" and "statement timeout" in text and db is not None:
        text += f" (Limits.sql_timeout_s = {db.timeout:g} s)"
    return _fail(f"{op}: {text}", code, detail if detail else str(e).strip() or None)


# -- placeholders ------------------------------------------------------------------

@functools.lru_cache(maxsize=512)
def translate(stmt: str) -> bytes:
    """SQLite's ``?`` and ``?N`` placeholders as PostgreSQL's ``$N``, outside
    string literals, quoted identifiers, dollar-quoted bodies and comments
    (``$N`` written directly passes as it is). Raises ``ValueError``."""
    if "\0" in stmt:
        raise ValueError("the statement contains a NUL character")
    if "?" not in stmt:
        return stmt.encode("utf-8", "surrogatepass")
    out: list[str] = []
    i, n, last, top = 0, len(stmt), 0, 0
    while i < n:
        c = stmt[i]
        if c == "'" or c == '"':
            # '' / "" double the quote; E'…' strings also escape with a backslash
            escapes = c == "'" and i > 0 and stmt[i - 1] in "eE" and \
                (i == 1 or not (stmt[i - 2].isalnum() or stmt[i - 2] == "_"))
            j = i + 1
            while j < n:
                if escapes and stmt[j] == "\\":
                    j += 2
                    continue
                if stmt[j] == c:
                    if j + 1 < n and stmt[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif c == "-" and stmt.startswith("--", i):
            j = stmt.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and stmt.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if stmt.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif stmt.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            i = j
        elif c == "$":
            j = i + 1
            while j < n and (stmt[j].isalnum() or stmt[j] == "_"):
                j += 1
            tag = stmt[i:j + 1]
            if j < n and stmt[j] == "$" and not stmt[i + 1:i + 2].isdigit() and \
                    not (i > 0 and (stmt[i - 1].isalnum() or stmt[i - 1] == "_")):
                end = stmt.find(tag, j + 1)
                i = n if end < 0 else end + len(tag)
            else:
                digits = stmt[i + 1:j]
                if digits.isdigit():
                    top = max(top, int(digits))
                i = j
        elif c == "?":
            j = i + 1
            while j < n and stmt[j].isdigit():
                j += 1
            if j > i + 1:
                k = int(stmt[i + 1:j])
                if k < 1:
                    raise ValueError(f"invalid placeholder `{stmt[i:j]}`")
            else:
                k = top + 1
            top = max(top, k)
            out.append(stmt[last:i])
            out.append(f"${k}")
            last = i = j
        else:
            i += 1
    out.append(stmt[last:])
    return "".join(out).encode("utf-8", "surrogatepass")


def params_of(op: str, items) -> list:
    """``List[SqlParam]`` as Python values for psycopg (sql.py checked the
    shapes already; a Bool stays a Bool: PostgreSQL has the type)."""
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
            continue
        if not isinstance(item, Variant):
            raise EffectError(f"{op}: expected SqlParam variant, got {debug_repr(item)}")
        out.append(item.args[0] if item.args else None)
    return out


def _statement(op: str, stmt: str):
    try:
        return translate(stmt), None
    except (ValueError, UnicodeEncodeError) as e:
        return None, _fail(f"{op}: {e}")


def exec_statement(db: PgDb, op: str, stmt: str, items):
    query, bad = _statement(op, stmt)
    if bad is not None:
        return bad
    return db.run(op, query, params_of(op, items), False)


def query_statement(db: PgDb, op: str, stmt: str, items):
    query, bad = _statement(op, stmt)
    if bad is not None:
        return bad
    return db.run(op, query, params_of(op, items), True)


def tx_statement(db: PgDb, op: str, sql_text: str):
    """BEGIN / COMMIT / ROLLBACK: ``None``, or an ``err(SqlError)``."""
    if sql_text == "COMMIT" and db.in_failed_transaction():
        # PostgreSQL answers COMMIT of a failed transaction with a silent
        # ROLLBACK; SQLite's callers expect to hear about it
        db.run(op, b"ROLLBACK", [], False)
        return _fail(f"{op}: a statement in the transaction failed, so it was rolled back",
                     "25P02")
    r = db.run(op, sql_text.encode(), [], False)
    return r if r.name == "Err" else None


# -- opening -------------------------------------------------------------------------

def open_url(h, url: str):
    """``sql.open`` of a ``postgres://`` URL: ``ok(PgDb)`` or an ``err``."""
    if not KIND_BIT["net"] & h.policy.mask:
        raise PolicyDenied("sql.open: a PostgreSQL URL needs effect `net` in --allow-effects "
                           "(besides `sql`)", effect="net")
    pg = _psycopg()
    scheme, sep, rest = url.partition("://")
    url = scheme.lower() + sep + rest  # libpq knows the schemes in lower case only
    try:
        parsed = _parse(pg, url)
    except _Refused as e:
        return _fail(f"sql.open: {e}")
    _check_host(h, parsed["host"])
    where = f"{parsed['host']}:{parsed['port']}"
    try:
        addr = _resolve(parsed["host"], parsed["port"])
        kwargs = _kwargs(parsed, addr, h.session.limits)
    except _Refused as e:
        return _fail(f"sql.open: {e}")
    try:
        conn = pg.psycopg.Connection.connect(autocommit=True, context=pg.adapters,
                                             prepare_threshold=None, **kwargs)
    except pg.psycopg.Error as e:
        text = _redact(str(e).strip(), parsed["password"])
        # libpq's message starts with the address it tried; keep its own words
        return _fail(f"sql.open: cannot connect to {where}: {text}",
                     getattr(e, "sqlstate", None))
    return ok(PgDb(conn, h.session.limits, where))


# -- cursors (sql.query_iter) --------------------------------------------------------
#
# PostgreSQL runs one statement at a time per connection, so a cursor that
# other calls can interleave with is a server-side one: DECLARE … WITH HOLD
# (it outlives the transaction, or the autocommit statement, that made it),
# read FETCH by FETCH in batches. Only a query PostgreSQL can DECLARE (a
# SELECT or VALUES) can be iterated.

_FETCH = 64


class PgCursor:
    __slots__ = ("db", "name", "buffer", "done", "names")

    def __init__(self, db: PgDb, name: str) -> None:
        self.db = db
        self.name = name
        self.buffer: list = []
        self.done = False
        self.names = None

    @property
    def cur(self):  # sql.py tests ``cursor.cur is None`` for an exhausted one
        return None if self.done and not self.buffer else self

    def fill(self, op: str):
        """Fetch the next batch (the db lock held): None or an ``err``."""
        db = self.db
        batch = max(1, min(_FETCH, db.rows_cap))
        r = db.run(op, f"FETCH FORWARD {batch} FROM {self.name}".encode(), [], True)
        if r.name == "Err":
            self.done = True
            return r
        rows = r.args[0]
        self.buffer.extend(reversed(rows))
        if len(rows) < batch:  # exhausted: free the server's cursor now
            self.done = True
            name, self.name = self.name, None
            db.run(op, f"CLOSE {name}".encode(), [], False)
        return None

    def close(self) -> None:
        name, self.name = self.name, None
        self.done, self.buffer = True, []
        db = self.db
        if name is None or db.closed:
            return
        if db.lock.acquire(timeout=db.timeout + 2 * _GRACE_S):
            try:
                if not db.closed and db.pgconn.transaction_status != _pg.INERROR:
                    db.run("sql.close", f"CLOSE {name}".encode(), [], False)
            finally:
                db.lock.release()


def open_cursor(db: PgDb, op: str, stmt: str, items):
    """A ``PgCursor`` with its first batch read (the db lock held), or an ``err``."""
    query, bad = _statement(op, stmt)
    if bad is not None:
        return bad
    db.cursors += 1
    name = f"lexfast_cursor_{db.cursors}"
    declared = db.run(op, f"DECLARE {name} NO SCROLL CURSOR WITH HOLD FOR ".encode() + query,
                      params_of(op, items), False)
    if declared.name == "Err":
        return declared
    cursor = PgCursor(db, name)
    failed = cursor.fill(op)
    if failed is not None:
        return failed
    return cursor


def cursor_next(cursor: PgCursor, op: str):
    """The next record, None when exhausted; raises ``EffectError`` on a
    failing fetch (the db lock held)."""
    if not cursor.buffer and not cursor.done:
        failed = cursor.fill(op)
        if failed is not None:
            raise EffectError(failed.args[0]["message"])
    if cursor.buffer:
        return cursor.buffer.pop()
    return None
