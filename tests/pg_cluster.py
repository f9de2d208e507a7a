"""A throwaway PostgreSQL cluster for the tests (and bench/ scripts).

`STRIPECTL_TEST_PG` names a running server to use instead (a
`postgresql://` URL whose role may create databases). Otherwise Debian's
server binaries (/usr/lib/postgresql/*/bin) start a cluster in a temporary
folder on a free 127.0.0.1 port, owned by the `postgres` user when the tests
run as root (initdb refuses root). Anything that goes wrong raises: the
PostgreSQL tests fail, they never skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class ClusterError(RuntimeError):
    pass


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ClusterError(
        "PostgreSQL server binaries not found (apt-get install -y postgresql), "
        "or set STRIPECTL_TEST_PG to a server URL"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One server; `url(db)` names a database on it, `create_db()` makes one."""

    def __init__(self) -> None:
        self.base_url = os.environ.get("STRIPECTL_TEST_PG", "")
        self.dir: Path | None = None
        self._n = 0

    def start(self) -> Cluster:
        if self.base_url:
            return self
        bindir = _bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="stripectl-pg-"))
        data = self.dir / "data"
        port = _free_port()
        run_as: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ClusterError("running as root but there is no `postgres` user") from exc
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            run_as = ["runuser", "-u", "postgres", "--"]
        def run(*args: str) -> None:
            proc = subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise ClusterError(f"{args[0]} failed: {proc.stdout}{proc.stderr}")
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        # Throwaway: durability off for speed is NOT used, so the tests see the
        # same commit semantics as a real server (fsync on, synchronous_commit on).
        opts = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={self.dir} "
                "-c max_connections=200 -c shared_buffers=128MB")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w", "-t", "60",
            "-o", opts, "start")
        self.base_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._run_as, self._bindir = run_as, bindir
        return self

    def stop(self) -> None:
        if self.dir is None:
            return
        subprocess.run([*self._run_as, str(self._bindir / "pg_ctl"), "-D", str(self.dir / "data"),
                        "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def url(self, dbname: str) -> str:
        head, _, _ = self.base_url.rpartition("/")
        return f"{head}/{dbname}"

    def create_db(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        self._n += 1
        name = f"{prefix}_{os.getpid()}_{self._n}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


if __name__ == "__main__":  # `python tests/pg_cluster.py`: start one and print its URL
    c = Cluster().start()
    print(c.base_url, c.dir)
