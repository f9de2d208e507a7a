"""`refunds create` and `payments capture` / `cancel` against localstripe's
stateful charges (it ignores Idempotency-Key: the replay rules are the
fake's, tests/test_refunds.py)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from stripectl.cli.app import app
from tests.fakes.idempotent import conn_args, ledger_rows

runner = CliRunner()


def _pay(url: str, db: Path, ref: str) -> str:
    res = runner.invoke(app, [
        "payments", "create", "--amount", "2000", "--currency", "usd", "--order-ref", ref,
        "--payment-method", "pm_card_visa", "--confirm", "--json", *conn_args(url, db),
    ])
    assert res.exit_code == 0, res.output
    return str(json.loads(res.stdout)["id"])


def test_partial_refund_then_the_rest_then_nothing_left(localstripe_url: str, tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    pi = _pay(localstripe_url, db, "ls-refund-1")
    base = ["refunds", "create", "--payment-intent", pi]
    res = runner.invoke(app, [*base, "--amount", "500", "--refund-ref", "ls-t1", "--json",
                              *conn_args(localstripe_url, db)])
    assert res.exit_code == 0, res.output
    first = json.loads(res.stdout)
    assert first["amount"] == 500 and first["checked"]["captured"] == 2000
    res = runner.invoke(app, [*base, "--amount", "2000", "--refund-ref", "ls-t2",
                              *conn_args(localstripe_url, db)])
    assert res.exit_code == 2, res.output
    assert "captured 20.00 USD, already refunded 5.00 USD: 15.00 USD left" in res.stderr
    # (localstripe refunds the whole charge when no amount is given, unlike
    # Stripe, which refunds what is left: so the rest is named here.)
    res = runner.invoke(app, [*base, "--amount", "1500", "--refund-ref", "ls-t3", "--json",
                              *conn_args(localstripe_url, db)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["checked"]["refundable"] == 1500
    res = runner.invoke(app, [*base, "--refund-ref", "ls-t4", *conn_args(localstripe_url, db)])
    assert res.exit_code == 2 and "0.00 USD left" in res.stderr
    assert [r["state"] for r in ledger_rows(db)] == ["succeeded"] * 3


def test_capture_and_cancel(localstripe_url: str, tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    pi = _pay(localstripe_url, db, "ls-capture-1")  # captured automatically
    res = runner.invoke(app, ["payments", "cancel", pi, *conn_args(localstripe_url, db)])
    assert res.exit_code == 4, res.output  # a succeeded intent cannot be canceled
    res = runner.invoke(app, [
        "payments", "create", "--amount", "900", "--currency", "usd", "--order-ref", "ls-cancel-1",
        "--json", *conn_args(localstripe_url, db),
    ])
    other = json.loads(res.stdout)["id"]
    # (localstripe takes no cancellation_reason: the fake covers --reason.)
    res = runner.invoke(app, ["payments", "cancel", other, "--json", *conn_args(localstripe_url, db)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "canceled"
