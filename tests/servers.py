"""Real Redis and PostgreSQL servers for the tests, started on loopback.

Each server runs from a fresh data directory under pytest's tmp dir, on a
free port, bound to 127.0.0.1 only, and is stopped at the end of the session
(``tests/conftest.py`` exposes them as the session fixtures ``redis_server``
and ``postgres_server``). ``.ci/run`` installs Debian's ``redis-server`` and
``postgresql`` first; outside CI a test that needs a missing server skips
with a line saying which binary is missing; under ``LEXFAST_REQUIRE_SERVERS=1``
(set by ``.ci/run``) it fails instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def find_binary(name: str) -> str | None:
    """``name`` on PATH, else in Debian's versioned PostgreSQL directory."""
    found = shutil.which(name)
    if found:
        return found
    hits = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return hits[-1] if hits else None


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen
    datadir: str
    password: str | None = None
    tls_port: int | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        _stop(self.proc)


class TlsUnsupported(RuntimeError):
    """This redis-server was built without TLS."""


def start_redis(datadir: str, password: str | None = None, port: int | None = None,
                tls_dir: str | None = None) -> RedisServer:
    """A redis-server on a free loopback port (or ``port``, to restart one
    where its clients expect it), no persistence, data in ``datadir``. With
    ``tls_dir`` (holding ``cert.pem``, ``key.pem``, ``ca.pem``) it also
    speaks TLS on ``.tls_port``."""
    binary = find_binary("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server")
    os.makedirs(datadir, exist_ok=True)
    port = port or free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", datadir,
            "--save", "", "--appendonly", "no", "--protected-mode", "yes",
            "--daemonize", "no", "--loglevel", "warning"]
    if password:
        args += ["--requirepass", password]
    tls_port = None
    if tls_dir:
        tls_port = free_port()
        args += ["--tls-port", str(tls_port),
                 "--tls-cert-file", os.path.join(tls_dir, "cert.pem"),
                 "--tls-key-file", os.path.join(tls_dir, "key.pem"),
                 "--tls-ca-cert-file", os.path.join(tls_dir, "ca.pem"),
                 "--tls-auth-clients", "no"]
    log_path = os.path.join(datadir, "redis.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    try:
        deadline = time.monotonic() + 30
        while True:  # a restart on the same port may wait for the old socket
            try:
                _wait_port(port, proc, "redis-server")
                break
            except RuntimeError:
                with open(log_path, "rb") as f:
                    text = f.read()
                if tls_dir and b"TLS" in text and b"not" in text:
                    raise TlsUnsupported(text.decode("utf-8", "replace")) from None
                if b"Address already in use" not in text or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                log = open(log_path, "wb")
                proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
                log.close()
    except BaseException:
        _stop(proc, signal.SIGKILL)
        raise
    return RedisServer(port, proc, datadir, password, tls_port)


@dataclass
class PostgresServer:
    port: int
    proc: subprocess.Popen
    datadir: str
    user: str = "lexfast"
    password: str = "lexfast-test"
    dbname: str = "lexfast"

    @property
    def url(self) -> str:
        return (f"postgres://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.dbname}")

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # "fast" shutdown
        if os.path.basename(self.datadir).startswith("lexfast-test-pg-"):
            shutil.rmtree(self.datadir, ignore_errors=True)


def start_postgres(datadir: str) -> PostgresServer:
    """A PostgreSQL cluster initialised in ``datadir`` (password auth over
    TCP on a free loopback port, no Unix socket), with a database and a user
    named ``lexfast``. Runs as the current user; as root it runs as
    ``nobody``-owned files are not allowed, so the cluster is made and run
    by the ``postgres`` system user when the tests run as root."""
    initdb, postgres = find_binary("initdb"), find_binary("postgres")
    if initdb is None or postgres is None:
        raise FileNotFoundError("initdb/postgres")
    os.makedirs(datadir, exist_ok=True)
    if os.geteuid() == 0:
        # the server runs as another user, who cannot enter pytest's 0700
        # tmp root: its cluster lives in a directory of its own under /tmp
        import tempfile
        datadir = tempfile.mkdtemp(prefix="lexfast-test-pg-")
    pgdata = os.path.join(datadir, "pgdata")
    pwfile = os.path.join(datadir, "pw")
    server = PostgresServer(free_port(), None, datadir)  # type: ignore[arg-type]
    with open(pwfile, "w") as f:
        f.write(server.password + "\n")
    as_user: list[str] = []
    env = dict(os.environ)
    if os.geteuid() == 0:  # postgres refuses to run as root
        import pwd
        try:
            ent = pwd.getpwnam("postgres")
        except KeyError:
            ent = pwd.getpwnam("nobody")
        for path in (datadir, pwfile):
            os.chown(path, ent.pw_uid, ent.pw_gid)
        os.chmod(datadir, 0o700)
        # setpriv execs the server itself (no process in between to eat signals)
        as_user = [find_binary("setpriv") or "setpriv", f"--reuid={ent.pw_uid}",
                   f"--regid={ent.pw_gid}", "--clear-groups"]
    r = subprocess.run(as_user + [initdb, "-D", pgdata, "-U", server.user, "--pwfile", pwfile,
                                  "-A", "scram-sha-256", "-E", "UTF8", "--no-sync", "--locale=C"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
                       cwd=datadir, env=env)
    if r.returncode:
        raise RuntimeError(f"initdb failed: {r.stderr.decode(errors='replace')[-500:]}")
    log = open(os.path.join(datadir, "postgres.log"), "wb")  # opened as root: fine
    proc = subprocess.Popen(as_user + [postgres, "-D", pgdata, "-p", str(server.port),
                                       "-c", "listen_addresses=127.0.0.1",
                                       "-c", "unix_socket_directories=",
                                       "-c", "fsync=off", "-c", "synchronous_commit=off",
                                       "-c", "full_page_writes=off", "-c", "max_connections=200"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=datadir, env=env)
    log.close()
    server.proc = proc
    try:
        _wait_port(server.port, proc, "postgres")
        psql = find_binary("psql")
        deadline = time.monotonic() + 30
        env = dict(env, PGPASSWORD=server.password)
        while True:  # listening is not yet accepting logins
            r = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(server.port), "-U", server.user,
                                "-d", "postgres", "-c", f"CREATE DATABASE {server.dbname}"],
                               env=env, capture_output=True, timeout=30) if psql else None
            if r is None or r.returncode == 0 or b"already exists" in r.stderr:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres: CREATE DATABASE failed: {r.stderr.decode()[-300:]}")
            time.sleep(0.2)
    except BaseException:
        _stop(proc, signal.SIGKILL)
        raise
    return server
