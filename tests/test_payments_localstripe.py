"""`payments create` against localstripe's stateful payment intents and test cards.

localstripe ignores Idempotency-Key (the replay rules are covered by the fake);
what it adds is real charge logic. It declines the *charge* for card
4000000000000341, which Stripe's `pm_card_chargeCustomerFail` token stands for
(localstripe/resources.py: PaymentMethod._charging_is_declined and
_try_get_canonical_test_article); its `pm_card_visa_chargeDeclined` only
fails on attach, so that token would "succeed" here.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from stripectl.cli.app import app
from tests.fakes.idempotent import conn_args, ledger_rows, mirror_rows

runner = CliRunner()


def test_visa_succeeds(localstripe_url: str, tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    res = runner.invoke(app, [
        "payments", "create", "--amount", "1999", "--currency", "usd",
        "--order-ref", "ls-ok-1", "--payment-method", "pm_card_visa", "--confirm",
        "--metadata", "campaign=spring", "--json", *conn_args(localstripe_url, db),
    ])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["id"].startswith("pi_") and data["status"] == "succeeded"
    assert data["amount_display"] == "19.99 USD"
    [row] = ledger_rows(db)
    assert row["state"] == "succeeded" and row["object_id"] == data["id"]
    [pi] = mirror_rows(db, "payment_intents")
    assert pi["status"] == "succeeded" and json.loads(pi["metadata"]) == {
        "campaign": "spring", "order_ref": "ls-ok-1"}


def test_declined_card_failed_row_exit_4(localstripe_url: str, tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    res = runner.invoke(app, [
        "payments", "create", "--amount", "1999", "--currency", "usd",
        "--order-ref", "ls-decline-1", "--payment-method", "pm_card_chargeCustomerFail",
        "--confirm", *conn_args(localstripe_url, db),
    ])
    assert res.exit_code == 4, res.output
    assert "card declined" in res.stderr and "Your card was declined" in res.stderr
    assert "new --order-ref or --idempotency-key" in res.stderr
    [row] = ledger_rows(db)
    assert row["state"] == "failed" and row["http_status"] == 402
    assert row["error_code"] == "card_declined"
    assert row["lease_owner"] is None


def test_requires_confirmation_without_confirm(localstripe_url: str, tmp_path: Path) -> None:
    res = runner.invoke(app, [
        "payments", "create", "--amount", "500", "--currency", "jpy",
        "--order-ref", "ls-jpy-1", "--payment-method", "pm_card_visa",
        *conn_args(localstripe_url, tmp_path / "m.db"),
    ])
    assert res.exit_code == 0, res.output
    assert "requires_confirmation (provisional)" in res.stdout
    assert "500 JPY (¥500)" in res.stdout
