from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_real_stripe(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Environment only (never stripe internals): no test may reach api.stripe.com
    # by accident, nor pick up a developer's real key or mirror.
    for var in (
        "STRIPE_API_KEY",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPECTL_DB",
        "STRIPECTL_API_BASE",
        "STRIPE_PROJECT_NAME",
    ):
        monkeypatch.delenv(var, raising=False)
    # Nor a developer's `stripe login` (~/.config/stripe/config.toml).
    empty = tmp_path_factory.getbasetemp() / "xdg-empty"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(empty))


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """localstripe on 127.0.0.1, its own port and state file, stopped at the end."""
    port = free_port()
    state = tmp_path_factory.mktemp("localstripe") / "state.pickle"
    log = open(state.with_suffix(".log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "localstripe_server.py"), str(port), str(state)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log_text = state.with_suffix(".log").read_text()
                raise RuntimeError(f"localstripe did not start: {log_text}") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def fake() -> Iterator[tuple[Any, str]]:
    """The idempotency-honouring fake Stripe (tests/fakes/idempotent.py) on a
    loopback port. Modules that need another fake define their own `fake`."""
    from tests.fakes.base import serve
    from tests.fakes.idempotent import IdempotentStripe

    app = IdempotentStripe()
    with serve(app) as url:
        try:
            yield app, url
        finally:
            app.release()


# -- PostgreSQL ----------------------------------------------------------------
# A real server for the engine contract tests: STRIPECTL_TEST_PG, or a
# throwaway cluster started here (tests/pg_cluster.py). These tests FAIL when
# no server can be had; they never skip.


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    from tests.pg_cluster import Cluster

    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    """A new, empty database on the test server."""
    return str(pg_cluster.create_db())


@pytest.fixture(params=["sqlite", "postgres"])
def mirror_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new mirror on each engine: a file path, or a postgresql:// URL."""
    if request.param == "sqlite":
        return str(tmp_path / "m.db")
    return str(request.getfixturevalue("pg_cluster").create_db())
