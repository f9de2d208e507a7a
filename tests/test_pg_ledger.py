"""The idempotency ledger on one PostgreSQL mirror from several processes.

A claim's lease is a session advisory lock held by the claimer's
connection (services/ledger.py, Store.try_lease): two machines with one
order ref send one request, and a holder whose connection is gone has lost
its lease at once, whatever its row's expiry says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.services import ledger
from stripectl.services.payments import PaymentRequest, prepare_payment
from stripectl.store import open_store
from tests.fakes.base import serve
from tests.fakes.idempotent import IdempotentStripe, conn_args, ledger_rows

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
PAY = [
    "payments", "create", "--amount", "4200", "--currency", "eur", "--order-ref", "ord_pg",
    "--payment-method", "pm_card_visa", "--confirm",
]


def _spawn(url: str, db: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "STRIPECTL_DB"))}
    return subprocess.Popen(
        [sys.executable, "-m", "stripectl", *PAY, *extra, *conn_args(url, db, retries=0, timeout=20)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_concurrent_processes_with_one_order_ref_send_one_request(pg_url: str) -> None:
    open_store(pg_url).close()  # migrated up front; the claims race, not the migrations
    fake = IdempotentStripe(delay=1.0)
    with serve(fake) as url:
        procs = [_spawn(url, pg_url, "--json") for _ in range(5)]
        outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    results = [json.loads(out) for out, _ in outs]
    assert len(fake.created("pi_")) == 1
    assert len({r["id"] for r in results}) == 1
    assert sorted(r["replayed"] for r in results) == [False] + [True] * 4
    assert fake.conflicts == 0  # never two requests with one key in flight
    [row] = ledger_rows(pg_url)
    assert row["state"] == "succeeded" and row["lease_owner"] is None and row["attempts"] == 5


def test_a_live_holder_keeps_its_lease_across_processes(pg_url: str) -> None:
    fake = IdempotentStripe()
    fake.faults = ["hang"]
    with serve(fake) as url:
        holder = _spawn(url, pg_url)
        try:
            _wait_for(lambda: fake.count("POST") == 1 or holder.poll() is not None)
            res = runner.invoke(app, [*PAY, "--wait", "0", *conn_args(url, pg_url)])
            assert res.exit_code == 4, res.output
            assert "being sent right now by another stripectl" in res.stderr
            assert fake.count("POST") == 1
            holder.kill()  # the holder dies mid-request: its connection, and lease, go
            holder.communicate(timeout=10)
            res = runner.invoke(app, [*PAY, "--json", "--wait", "10", *conn_args(url, pg_url)])
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.communicate(timeout=10)
            fake.release()
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["replayed"] is True and data["attempt"] == 2
    assert len(fake.created("pi_")) == 1


def test_a_lost_connection_loses_the_lease_at_once(pg_url: str) -> None:
    """The holder's process is alive and its row's lease has 10 minutes left,
    but its connection is gone (a network cut, a failover): the lease is free."""
    req = PaymentRequest(amount=4200, currency="eur", order_ref="ord_pg",
                         payment_method="pm_card_visa", confirm=True)
    key, params = prepare_payment(req)
    holder, other = open_store(pg_url), open_store(pg_url)
    try:
        first = ledger.claim(holder, key=key, operation="payment_intent.create", params=params,
                             options=ledger.LedgerOptions(lease_seconds=600),
                             identity_flags="--order-ref")
        busy = ledger.LedgerOptions(lease_seconds=600, wait_seconds=0)
        try:
            ledger.claim(other, key=key, operation="payment_intent.create", params=params,
                         options=busy, identity_flags="--order-ref")
            raise AssertionError("a live holder's lease was taken")
        except Exception as exc:  # StripeAPIError: in use
            assert "being sent right now" in str(exc)
        pid = holder.execute("SELECT pg_backend_pid()").fetchone()[0]
        other.execute("SELECT pg_terminate_backend(?)", (pid,))
        second = ledger.claim(other, key=key, operation="payment_intent.create", params=params,
                              options=ledger.LedgerOptions(lease_seconds=600, wait_seconds=5,
                                                           poll_seconds=0.02),
                              identity_flags="--order-ref")
        assert second.attempt == 2 and second.owner != first.owner
        assert second.previous is not None and second.previous["lease_owner"] == first.owner
    finally:
        holder.close()
        other.close()
