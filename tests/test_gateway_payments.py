"""Key-mode guard and error mapping on the money path (real stripe-python HTTP stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.errors import CardDeclined, ConfigError, IdempotencyConflict, StripeAPIError
from stripectl.gateway.client import GatewaySettings, connect, parse_livemode
from stripectl.gateway.payments import Created, Failure, create_payment_intent
from stripectl.store import open_store
from tests.fakes.idempotent import FAKE_KEY, Fake, conn_args, ledger_rows

runner = CliRunner()
PAY = ["payments", "create", "--amount", "100", "--currency", "usd", "--order-ref", "o-g"]




def invoke(url: str, db: Path, key: str, *extra: str) -> Any:
    return runner.invoke(
        app, [*PAY, *extra, "--api-key", key, "--api-base", url, "--db", str(db)]
    )


def test_live_key_refused_without_live(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    res = invoke(url, tmp_path / "m.db", "sk_live_stripectl_fake_0000")
    assert res.exit_code == 3
    assert "LIVE key" in res.stderr and "--live" in res.stderr
    assert "sk_live_stripectl_fake_0000" not in res.output  # masked
    assert app_.requests == []
    assert not (tmp_path / "m.db").exists()  # refused before the mirror (and its ledger) exist


def test_restricted_live_key_refused_too(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    res = invoke(url, tmp_path / "m.db", "rk_live_stripectl_fake_0000")
    assert res.exit_code == 3 and app_.requests == []


def test_publishable_key_refused(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    res = invoke(url, tmp_path / "m.db", "pk_test_stripectl_fake_0000")
    assert res.exit_code == 3
    assert "publishable key" in res.stderr
    assert app_.requests == []


def test_test_key_against_live_mirror_refused(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    store = open_store(str(db))
    with store.transaction():
        store.meta_set("livemode", "1")
    store.close()
    res = invoke(url, db, FAKE_KEY)
    assert res.exit_code == 3
    assert "live-mode data" in res.stderr
    assert app_.requests == []


def test_first_write_records_mirror_mode(fake: Fake, tmp_path: Path) -> None:
    _, url = fake
    db = tmp_path / "m.db"
    assert invoke(url, db, FAKE_KEY).exit_code == 0
    store = open_store(str(db))
    assert store.meta_get("livemode") == "0"
    store.close()
    res = invoke(url, db, "sk_live_stripectl_fake_0000", "--live")
    assert res.exit_code == 3 and "test-mode data" in res.stderr


def test_key_from_environment(fake: Fake, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    app_, url = fake
    monkeypatch.setenv("STRIPE_SECRET_KEY", FAKE_KEY)
    monkeypatch.setenv("STRIPECTL_API_BASE", url)
    res = runner.invoke(app, [*PAY, "--db", str(tmp_path / "m.db")])
    assert res.exit_code == 0, res.output
    assert app_.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_auth_failure_exit_3_row_stays_pending(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    app_.faults = ["401"]
    db = tmp_path / "m.db"
    res = runner.invoke(app, [*PAY, *conn_args(url, db)])
    assert res.exit_code == 3
    assert "Stripe refused the API key" in res.stderr
    [row] = ledger_rows(db)
    assert row["state"] == "pending" and row["http_status"] == 401


def test_gateway_returns_values_with_replay_flag(fake: Fake) -> None:
    app_, url = fake
    gw = connect(GatewaySettings(api_key=FAKE_KEY, api_base=url, max_network_retries=0))
    params = {"amount": 100, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    first = create_payment_intent(gw, params, idempotency_key="gw-k1")
    again = create_payment_intent(gw, params, idempotency_key="gw-k1")
    assert isinstance(first, Created) and isinstance(again, Created)
    assert (first.replayed, again.replayed) == (False, True)
    assert isinstance(first.obj, dict) and first.obj["id"] == again.obj["id"]
    assert app_.keys_sent() == ["gw-k1", "gw-k1"]

    declined = create_payment_intent(
        gw, {**params, "payment_method": "pm_card_visa_chargeDeclined"}, idempotency_key="gw-k2"
    )
    assert isinstance(declined, Failure) and isinstance(declined.error, CardDeclined)
    assert declined.error.decline_code == "generic_decline"
    assert declined.http_status == 402 and declined.obj and declined.obj["id"].startswith("pi_")
    assert declined.error.exit_code == 4

    conflict = create_payment_intent(gw, {**params, "amount": 5}, idempotency_key="gw-k1")
    assert isinstance(conflict, Failure) and isinstance(conflict.error, IdempotencyConflict)
    assert conflict.error.code == "idempotency_error"


def test_parse_livemode() -> None:
    assert parse_livemode(None) is None and parse_livemode("") is None
    assert parse_livemode("1") is True and parse_livemode("0") is False


def test_error_classes_exit_codes() -> None:
    assert ConfigError("x").exit_code == 3
    assert StripeAPIError("x").exit_code == 4
