"""Crashes and concurrent invocations: never two creates for one payment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.gateway.client import GatewaySettings
from stripectl.services import ledger
from stripectl.services.connection import open_gateway
from stripectl.services.payments import (
    PaymentRequest,
    PaymentResult,
    create_payment,
    prepare_payment,
)
from stripectl.store import open_store
from tests.fakes.base import serve
from tests.fakes.idempotent import FAKE_KEY, IdempotentStripe, conn_args, ledger_rows

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
PAY = [
    "payments", "create", "--amount", "4200", "--currency", "eur", "--order-ref", "ord_crash",
    "--payment-method", "pm_card_visa", "--confirm",
]


def _wait_for(cond: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _spawn(url: str, db: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "STRIPECTL"))}
    return subprocess.Popen(
        [sys.executable, "-m", "stripectl", *PAY, *extra,
         *conn_args(url, db, retries=0, timeout=20)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_mid_request_rerun_sends_same_key(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    fake = IdempotentStripe()
    fake.faults = ["hang"]  # Stripe created the intent; the answer never reaches us
    with serve(fake) as url:
        proc = _spawn(url, db)
        try:
            _wait_for(lambda: fake.count("POST") == 1 or proc.poll() is not None)
            assert proc.poll() is None, proc.communicate()
            [row] = ledger_rows(db)  # committed before the request left
            assert row["state"] == "pending" and f":{proc.pid}:" in row["lease_owner"]
            proc.kill()
            proc.communicate(timeout=10)  # reaped: the pid is gone, so is its lease
            res = runner.invoke(app, [*PAY, "--json", *conn_args(url, db)])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
            fake.release()
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["replayed"] is True and data["attempt"] == 2
    keys = fake.keys_sent()
    assert keys == [row["key"], row["key"]]
    assert len(fake.created("pi_")) == 1
    [row] = ledger_rows(db)
    assert row["state"] == "succeeded" and row["lease_owner"] is None


def test_pending_row_from_a_crash_is_resent_with_its_key(tmp_path: Path) -> None:
    """The process died right after committing the row, before sending anything."""
    db = tmp_path / "m.db"
    req = PaymentRequest(amount=4200, currency="eur", order_ref="ord_crash",
                         payment_method="pm_card_visa", confirm=True)
    key, params = prepare_payment(req)
    store = open_store(str(db))
    ledger.claim(store, key=key, operation="payment_intent.create", params=params,
                 options=ledger.LedgerOptions(lease_seconds=0), identity_flags="--order-ref")
    store.close()
    fake = IdempotentStripe()
    with serve(fake) as url:
        res = runner.invoke(app, [*PAY, "--json", *conn_args(url, db)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert fake.keys_sent() == [key]
    assert data["idempotency_key"] == key and data["attempt"] == 2
    assert data["replayed"] is False  # it never reached Stripe the first time


def test_two_concurrent_processes_create_one_intent(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    fake = IdempotentStripe(delay=1.5)
    with serve(fake) as url:
        procs = [_spawn(url, db, "--json"), _spawn(url, db, "--json")]
        outs = [p.communicate(timeout=60) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    results = [json.loads(out) for out, _ in outs]
    assert len(fake.created("pi_")) == 1
    assert results[0]["id"] == results[1]["id"]
    assert sorted(r["replayed"] for r in results) == [False, True]
    assert fake.conflicts == 0  # the ledger serialised them: Stripe never saw a race


def _pay(db: Path, url: str, notes: list[str]) -> PaymentResult:
    store = open_store(str(db))  # each thread its own connection, like two terminals
    try:
        settings = GatewaySettings(api_key=FAKE_KEY, api_base=url, timeout=20)
        return create_payment(
            store,
            open_gateway(store, settings),
            PaymentRequest(amount=4200, currency="eur", order_ref="ord_threads"),
            options=ledger.LedgerOptions(lease_seconds=60, poll_seconds=0.05),
            notify=notes.append,
        )
    finally:
        store.close()


def test_second_invocation_waits_for_the_first_then_replays(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    open_store(str(db)).close()  # migrate once, up front
    fake = IdempotentStripe()
    fake.faults = ["hang"]
    results: dict[str, PaymentResult] = {}
    notes_b: list[str] = []
    with serve(fake) as url:
        try:
            a = threading.Thread(target=lambda: results.update(a=_pay(db, url, [])))
            a.start()
            _wait_for(lambda: fake.count("POST") == 1)
            b = threading.Thread(target=lambda: results.update(b=_pay(db, url, notes_b)))
            b.start()
            _wait_for(lambda: bool(notes_b))
            assert fake.count("POST") == 1  # b is waiting, not sending
            assert "waiting for pid" in notes_b[0]
        finally:
            fake.release()
        a.join(20)
        b.join(20)
    assert results["a"].replayed is False and results["b"].replayed is True
    assert results["a"].obj["id"] == results["b"].obj["id"]
    assert len(fake.created("pi_")) == 1 and fake.conflicts == 0


def test_fresh_lease_held_elsewhere_refused_with_wait_zero(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    req = PaymentRequest(amount=4200, currency="eur", order_ref="ord_crash",
                         payment_method="pm_card_visa", confirm=True)
    key, params = prepare_payment(req)
    store = open_store(str(db))
    # Held by this (live) test process for the next 10 minutes.
    ledger.claim(store, key=key, operation="payment_intent.create", params=params,
                 options=ledger.LedgerOptions(lease_seconds=600), identity_flags="--order-ref")
    store.close()
    fake = IdempotentStripe()
    with serve(fake) as url:
        res = runner.invoke(app, [*PAY, "--wait", "0", *conn_args(url, db)])
    assert res.exit_code == 4
    assert "being sent right now by another stripectl" in res.stderr
    assert f"pid {os.getpid()}" in res.stderr
    assert fake.requests == []
