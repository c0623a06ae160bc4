"""A real, throwaway PostgreSQL server for tests: Debian's ``postgresql`` binaries, a fresh data folder under
/tmp, listening on 127.0.0.1 only (a free port), one database and one login with a password (scram-sha-256 over
TCP, as a deployment would have it). Stopped and removed afterwards.

As root (CI containers), the server runs as the ``postgres`` user (``initdb`` and ``postgres`` refuse root).
Without the binaries the tests that need it are skipped, loudly; with ``$CI`` set they fail instead, because
CI installs ``postgresql`` (deploy/install.sh's APT_TEST) and a skip there would hide a broken deployment path.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_LIB = Path("/usr/lib/postgresql")
START_GUARD_S = 120  # a busy 2-core machine


def pg_binaries() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` folder with initdb and pg_ctl, or None."""
    found = sorted((p for p in PG_LIB.glob("*/bin") if (p / "initdb").exists() and (p / "pg_ctl").exists()),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    bin: Path
    root: Path  # data folder, socket folder and log, all under one temporary folder
    port: int
    db: str = "dagster"
    user: str = "robodata"
    password: str = ""
    host: str = "127.0.0.1"
    os_user: str | None = None  # who runs the server (``postgres`` when we are root)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sock(self) -> Path:
        return self.root / "sock"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.db}"

    def _cmd(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / tool), *args]
        if self.os_user:
            cmd = ["runuser", "-u", self.os_user, "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=START_GUARD_S, check=False)
        if check and res.returncode:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed (exit {res.returncode}): {res.stdout}{res.stderr}{log}")
        return res

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.sock} -c listen_addresses={self.host} -c fsync=off"
        self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(START_GUARD_S),
                  "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends sessions cleanly; ``immediate`` is a crash (no shutdown checkpoint, clients cut off)."""
        self._cmd("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def running(self) -> bool:
        return self._cmd("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self._cmd("psql", "-h", str(self.sock), "-p", str(self.port), "-U", "postgres", "-d", db,
                         "-v", "ON_ERROR_STOP=1", "-Atc", sql).stdout

    def connect(self):  # a psycopg2 connection as the test login
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, dbname=self.db, user=self.user,
                                password=self.password, connect_timeout=5)

    def query(self, sql: str) -> list[tuple]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()


@contextlib.contextmanager
def pg_server(db: str = "dagster", user: str = "robodata") -> Iterator[PgServer]:
    """Start a throwaway PostgreSQL (see the module); yields it, and stops and removes it at the end."""
    bin_dir = pg_binaries()
    if bin_dir is None:
        raise FileNotFoundError(f"no PostgreSQL binaries under {PG_LIB} (apt-get install postgresql)")
    os_user = "postgres" if os.geteuid() == 0 else None
    # not under pytest's tmp_path: that is 0700 root's, and the server runs as another user
    root = Path(tempfile.mkdtemp(prefix="robodata-pg-"))
    server = PgServer(bin_dir, root, _free_port(), db, user, secrets.token_hex(12), os_user=os_user)
    try:
        server.sock.mkdir()
        if os_user:
            shutil.chown(root, os_user)
            shutil.chown(server.sock, os_user)
        # local socket: trust (the test's own set-up); TCP: passwords only
        server._cmd("initdb", "-D", str(server.data), "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions")
        server.start()
        server.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{server.password}'")
        server.psql(f"CREATE DATABASE {db} OWNER {user}")
        yield server
    finally:
        if server.data.exists():
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def require_pg_binaries() -> None:
    """Skip (loudly) where PostgreSQL is not installed; fail under CI, which must have it."""
    if pg_binaries() is not None:
        return
    msg = (f"PostgreSQL is not installed (no {PG_LIB}/*/bin/initdb): the tests of the Dagster instance on "
           "PostgreSQL did NOT run; apt-get install postgresql")
    if os.environ.get("CI"):
        pytest.fail(f"{msg} ($CI is set: CI installs postgresql, so this is a broken CI image, not a skip)")
    print(f"\n*** {msg} ***", file=sys.stderr)
    warnings.warn(msg, stacklevel=2)
    pytest.skip(msg)


@pytest.fixture(scope="module", name="pg")
def pg_fixture() -> Iterator[PgServer]:
    """A running throwaway PostgreSQL server for the module's tests (see :func:`pg_server`)."""
    require_pg_binaries()
    with pg_server() as server:
        yield server


def wait_until(what: str, pred, limit_s: float = 300, every_s: float = 0.1):
    """``pred()``'s first truthy value, polled; an AssertionError naming ``what`` after ``limit_s``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        got = pred()
        if got:
            return got
        time.sleep(every_s)
    raise AssertionError(f"gave up waiting for {what}")
