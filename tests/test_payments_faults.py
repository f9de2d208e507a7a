"""Faults between stripectl and Stripe: dropped connections, 500s, 429s, 409s."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.errors import StripeAPIError
from stripectl.gateway.client import GatewaySettings
from stripectl.services.connection import open_gateway
from stripectl.services.ledger import LedgerOptions
from stripectl.services.payments import PaymentRequest, PaymentResult, create_payment
from stripectl.store import open_store
from tests.fakes.base import serve
from tests.fakes.idempotent import FAKE_KEY, Fake, IdempotentStripe, conn_args, ledger_rows

runner = CliRunner()
PAY = [
    "payments", "create", "--amount", "2500", "--currency", "usd", "--order-ref", "ord_77",
    "--payment-method", "pm_card_visa", "--confirm",
]




def run(url: str, db: Path, *extra: str, retries: int = 2) -> Any:
    return runner.invoke(app, [*PAY, *extra, *conn_args(url, db, retries=retries)])


def test_dropped_connection_then_rerun_one_intent(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    app_.faults = ["drop"]  # the server creates the intent, then the socket dies
    res = run(url, db, retries=0)
    assert res.exit_code == 5, res.output
    assert "outcome unknown" in res.stderr and "re-run the same command" in res.stderr
    [row] = ledger_rows(db)
    assert row["state"] == "pending" and row["lease_owner"] is None
    assert len(app_.created("pi_")) == 1

    res = run(url, db, "--json", retries=0)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["replayed"] is True and data["attempt"] == 2
    assert len(app_.created("pi_")) == 1
    keys = app_.keys_sent()
    assert len(keys) == 2 and keys[0] == keys[1] == row["key"]
    [row] = ledger_rows(db)
    assert row["state"] == "succeeded" and row["object_id"] == data["id"]


def test_dropped_connection_sdk_retry_replays(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    app_.faults = ["drop"]
    res = run(url, tmp_path / "m.db", "--json", retries=2)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["replayed"] is True
    assert app_.count("POST") == 2 and len(set(app_.keys_sent())) == 1
    assert len(app_.created("pi_")) == 1


def test_500_is_cached_for_the_key(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    app_.faults = ["500"]
    res = run(url, db)
    assert res.exit_code == 4
    assert app_.count("POST") == 1  # Stripe-Should-Retry: false, the SDK does not retry
    assert "keeps this 500 answer" in res.stderr
    [row] = ledger_rows(db)
    assert row["state"] == "failed" and row["http_status"] == 500

    res = run(url, db)
    assert res.exit_code == 4 and app_.replays == 1
    assert app_.created("pi_") == []


def test_rate_limit_retried_with_same_key(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    app_.rate_limit = 2
    res = run(url, tmp_path / "m.db", "--json", retries=2)
    assert res.exit_code == 0, res.output
    assert app_.count("POST") == 3 and len(set(app_.keys_sent())) == 1
    assert json.loads(res.stdout)["replayed"] is False


def test_rate_limit_after_retries_exit_4_and_rerun_succeeds(
    fake: Fake, tmp_path: Path
) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    app_.rate_limit = 2
    res = run(url, db, retries=1)
    assert res.exit_code == 4 and "rate limited" in res.stderr
    [row] = ledger_rows(db)
    assert row["state"] == "pending"  # 429s are not saved by Stripe: nothing happened
    res = run(url, db, "--json", retries=1)
    assert res.exit_code == 0
    assert json.loads(res.stdout)["replayed"] is False
    assert len(app_.created("pi_")) == 1


def _pay(db: Path, url: str, retries: int) -> PaymentResult:
    store = open_store(str(db))
    try:
        settings = GatewaySettings(api_key=FAKE_KEY, api_base=url, max_network_retries=retries,
                                   timeout=10)
        return create_payment(
            store,
            open_gateway(store, settings),
            PaymentRequest(amount=2500, currency="usd", order_ref="ord_race"),
            options=LedgerOptions(lease_seconds=30),
        )
    finally:
        store.close()


def _wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_separate_ledgers_concurrent_409_then_replay(tmp_path: Path) -> None:
    """Two CI jobs with their own mirrors: Stripe's 409 + the SDK's retry keep it to one."""
    app_ = IdempotentStripe(delay=1.0)
    results: dict[str, PaymentResult] = {}
    with serve(app_) as url:
        a = threading.Thread(target=lambda: results.update(a=_pay(tmp_path / "a.db", url, 4)))
        a.start()
        _wait_for(lambda: bool(app_.in_flight))
        b = threading.Thread(target=lambda: results.update(b=_pay(tmp_path / "b.db", url, 4)))
        b.start()
        a.join(20)
        b.join(20)
    assert app_.conflicts >= 1
    assert len(app_.created("pi_")) == 1
    assert results["a"].obj["id"] == results["b"].obj["id"]
    assert results["a"].replayed is False and results["b"].replayed is True


def test_409_without_retries_is_a_clear_error(tmp_path: Path) -> None:
    app_ = IdempotentStripe(delay=1.0)
    errors: list[BaseException] = []
    with serve(app_) as url:
        a = threading.Thread(target=lambda: _pay(tmp_path / "a.db", url, 0))
        a.start()
        _wait_for(lambda: bool(app_.in_flight))
        try:
            _pay(tmp_path / "b.db", url, 0)
        except StripeAPIError as exc:
            errors.append(exc)
        a.join(20)
    [err] = errors
    assert isinstance(err, StripeAPIError) and err.code == "idempotency_key_in_use"
    assert "still in progress" in err.message and err.hint and "re-run" in err.hint
    [row] = ledger_rows(tmp_path / "b.db")
    assert row["state"] == "pending" and row["http_status"] == 409
    assert len(app_.created("pi_")) == 1
