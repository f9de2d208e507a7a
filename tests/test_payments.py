"""`stripectl payments create` against the idempotency-honouring fake."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stripectl.cli.app import app
from tests.fakes.base import Request
from tests.fakes.idempotent import Fake, conn_args, ledger_rows, mirror_rows

runner = CliRunner()
PAY = [
    "payments", "create", "--amount", "1050", "--currency", "usd", "--order-ref", "ord_1001",
    "--payment-method", "pm_card_visa", "--confirm",
]




def run(args: list[str], url: str, db: Path | str, **kw: Any) -> Any:
    return runner.invoke(app, [*args, *conn_args(url, db, **kw)])


def run_json(args: list[str], url: str, db: Path | str) -> dict[str, Any]:
    res = run([*args, "--json"], url, db)
    assert res.exit_code == 0, res.output
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def test_happy_path_sends_exactly_one_request(fake: Fake, mirror_target: str) -> None:
    app_, url = fake
    db = mirror_target  # a file, then a postgresql:// mirror
    data = run_json(PAY, url, db)
    assert app_.count("POST", "/v1/payment_intents") == 1
    assert len(app_.requests) == 1
    assert data["status"] == "succeeded" and data["provisional"] is True
    assert data["replayed"] is False and data["attempt"] == 1
    key = "stripectl:pi:" + hashlib.sha256(b"ord_1001").hexdigest()[:32]
    assert data["idempotency_key"] == key
    assert app_.keys_sent() == [key]
    # order_ref travels in metadata so the intent can be found by it later
    assert app_.forms[data["id"]]["metadata"] == {"order_ref": "ord_1001"}
    [row] = ledger_rows(db)
    assert row["state"] == "succeeded" and row["object_id"] == data["id"]
    assert row["lease_owner"] is None and row["attempts"] == 1


def test_rerun_replays_instead_of_charging_again(fake: Fake, mirror_target: str) -> None:
    app_, url = fake
    db = mirror_target
    first = run_json(PAY, url, db)
    second = run_json(PAY, url, db)
    assert second["id"] == first["id"]
    assert second["replayed"] is True and second["attempt"] == 2
    assert len(app_.created("pi_")) == 1
    assert app_.replays == 1
    res = run(PAY, url, db)
    assert res.exit_code == 0
    assert "replayed" in res.stdout and "yes (attempt 3)" in res.stdout


def test_ledger_row_is_committed_before_the_request(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    seen: list[list[dict[str, Any]]] = []

    def look(req: Request) -> None:
        seen.append(ledger_rows(db))  # another connection, while the POST is in flight

    app_.on_execute = look
    run_json(PAY, url, db)
    [[row]] = seen
    assert row["state"] == "pending"
    assert row["key"] == app_.keys_sent()[0]
    assert row["lease_owner"] and row["first_sent_at"]
    assert json.loads(row["params"])["amount"] == 1050


def test_same_key_other_params_refused_before_any_request(
    fake: Fake, tmp_path: Path
) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    run_json(PAY, url, db)
    before = len(app_.requests)
    changed = [a if a != "1050" else "2050" for a in PAY] + ["--metadata", "campaign=x"]
    res = run(changed, url, db)
    assert res.exit_code == 4
    assert len(app_.requests) == before  # nothing sent
    assert "amount: 1050 -> 2050" in res.stderr
    assert 'metadata.campaign: (absent) -> "x"' in res.stderr
    assert "new --order-ref or --idempotency-key" in res.stderr


def test_stripe_idempotency_error_gets_the_same_message(
    fake: Fake, tmp_path: Path
) -> None:
    # The key was used elsewhere (another ledger) with other parameters.
    app_, url = fake
    first = ["payments", "create", "--amount", "1050", "--currency", "usd"]
    run_json([*first, "--idempotency-key", "shared-key-1"], url, tmp_path / "a.db")
    res = run(
        ["payments", "create", "--amount", "999", "--currency", "usd",
         "--idempotency-key", "shared-key-1"],
        url,
        tmp_path / "b.db",
    )
    assert res.exit_code == 4
    assert app_.idempotency_errors == 1
    assert "idempotency key shared-key-1 was already used with different parameters" in res.stderr
    assert "refused by Stripe" in res.stderr
    [row] = ledger_rows(tmp_path / "b.db")
    assert row["state"] == "pending" and row["lease_owner"] is None  # nothing was created


def test_order_ref_or_key_required(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    args = ["payments", "create", "--amount", "100", "--currency", "usd"]
    res = run(args, url, tmp_path / "m.db")
    assert res.exit_code == 2
    assert "--order-ref or --idempotency-key is required" in res.stderr
    assert app_.requests == []
    assert not (tmp_path / "m.db").exists()


def test_order_ref_and_key_are_mutually_exclusive(fake: Fake, tmp_path: Path) -> None:
    # Both could charge one order under two keys (a re-run with only --order-ref).
    app_, url = fake
    res = run([*PAY, "--idempotency-key", "key-ord-1001"], url, tmp_path / "m.db")
    assert res.exit_code == 2, res.output
    assert "--order-ref and --idempotency-key are mutually exclusive" in res.stderr
    assert app_.requests == []
    assert not (tmp_path / "m.db").exists()


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("10.50", "not an integer"),
        ("1e3", "not a positive integer"),
        ("0", "greater than 0"),
        ("-5", "not a positive integer"),
        ("100000000", "maximum of 99999999"),
    ],
)
def test_amount_validation(
    fake: Fake, tmp_path: Path, amount: str, message: str
) -> None:
    app_, url = fake
    args = ["payments", "create", "--amount", amount, "--currency", "usd", "--order-ref", "o"]
    res = run(args, url, tmp_path / "m.db")
    assert res.exit_code == 2
    assert message in res.stderr
    assert app_.requests == []


def test_currency_validation_and_lowercasing(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    res = run(["payments", "create", "--amount", "5", "--currency", "dollars", "--order-ref", "o"],
              url, tmp_path / "m.db")
    assert res.exit_code == 2 and "ISO 4217" in res.stderr
    data = run_json(["payments", "create", "--amount", "500", "--currency", "JPY",
                     "--order-ref", "o-jpy"], url, tmp_path / "m.db")
    assert app_.forms[data["id"]]["currency"] == "jpy"
    assert data["amount_display"] == "500 JPY"


def test_zero_decimal_display(fake: Fake, tmp_path: Path) -> None:
    _, url = fake
    res = run(["payments", "create", "--amount", "500", "--currency", "jpy", "--order-ref", "o1"],
              url, tmp_path / "m.db")
    assert res.exit_code == 0
    assert "500 JPY (¥500)" in res.stdout
    res = run(["payments", "create", "--amount", "1050", "--currency", "usd", "--order-ref", "o2"],
              url, tmp_path / "m.db")
    assert "10.50 USD ($10.50)" in res.stdout


def test_client_secret_only_with_flag(fake: Fake, tmp_path: Path) -> None:
    _, url = fake
    db = tmp_path / "m.db"
    for extra in ([], ["--json"]):
        res = run([*PAY, *extra], url, db)
        assert res.exit_code == 0
        assert "_secret_" not in res.output
    data = json.loads(run([*PAY, "--json", "--show-client-secret"], url, db).stdout)
    assert data["client_secret"].endswith("_secret_fakeClientSecretValue")
    res = run([*PAY, "--show-client-secret"], url, db)
    assert "_secret_fakeClientSecretValue" in res.stdout
    # never kept in the mirror or the ledger
    raw = (db.read_bytes() + (db.parent / "m.db-wal").read_bytes()
           if (db.parent / "m.db-wal").exists() else db.read_bytes())
    assert b"_secret_" not in raw


def test_output_says_status_is_provisional(fake: Fake, tmp_path: Path) -> None:
    _, url = fake
    res = run(PAY, url, tmp_path / "m.db")
    assert "succeeded (provisional)" in res.stdout
    assert "payment_intent.succeeded webhook" in res.stderr


def test_metadata_limits_checked_locally(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    base = ["payments", "create", "--amount", "100", "--currency", "usd", "--order-ref", "o"]
    too_many = [x for i in range(50) for x in ("--metadata", f"k{i}=v")]  # + order_ref = 51
    for extra, message in (
        (too_many, "51 keys"),
        (["--metadata", "k" * 41 + "=v"], "41 characters"),
        (["--metadata", "k=" + "v" * 501], "501 characters"),
        (["--metadata", "novalue"], "not key=value"),
    ):
        res = run([*base, *extra], url, tmp_path / "m.db")
        assert res.exit_code == 2, res.output
        assert message in res.stderr
    assert app_.requests == []


def test_mirror_row_recorded_and_newest_wins(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    data = run_json(["payments", "create", "--amount", "700", "--currency", "eur",
                     "--order-ref", "o-m", "--payment-method", "pm_card_visa"], url, db)
    [row] = mirror_rows(db, "payment_intents")
    assert row["id"] == data["id"] and row["status"] == "requires_confirmation"
    assert row["source"] == "api" and row["idempotency_key"] == data["idempotency_key"]
    assert row["last_event_id"] == f"api:{data['idempotency_key']}"
    assert row["last_event_created"] == app_.objects[data["id"]]["created"]

    # A webhook later recorded a newer snapshot: a replayed answer must not undo it.
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("UPDATE payment_intents SET status='succeeded', source='webhook', "
                 "last_event_created=last_event_created+60, last_event_id='evt_1' WHERE id=?",
                 (data["id"],))
    conn.commit()
    conn.close()
    again = run_json(["payments", "create", "--amount", "700", "--currency", "eur",
                      "--order-ref", "o-m", "--payment-method", "pm_card_visa"], url, db)
    assert again["replayed"] is True
    [row] = mirror_rows(db, "payment_intents")
    assert row["status"] == "succeeded" and row["last_event_id"] == "evt_1"


def test_confirm_needs_payment_method(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    res = run(["payments", "create", "--amount", "100", "--currency", "usd", "--order-ref", "o",
               "--confirm"], url, tmp_path / "m.db")
    assert res.exit_code == 2 and "--confirm needs --payment-method" in res.stderr
    assert app_.requests == []


def test_three_d_secure_reports_next_action(fake: Fake, tmp_path: Path) -> None:
    _, url = fake
    data = run_json(["payments", "create", "--amount", "100", "--currency", "usd",
                     "--order-ref", "o-3ds", "--payment-method", "pm_card_authenticationRequired",
                     "--confirm"], url, tmp_path / "m.db")
    assert data["status"] == "requires_action" and data["next_action"] == "use_stripe_sdk"


def test_decline_leaves_failed_row_and_replays(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    args = ["payments", "create", "--amount", "100", "--currency", "usd", "--order-ref", "o-d",
            "--payment-method", "pm_card_visa_chargeDeclinedInsufficientFunds", "--confirm"]
    res = run(args, url, db)
    assert res.exit_code == 4
    assert "decline_code=insufficient_funds" in res.stderr
    assert "replays the same decline" in res.stderr and "new --order-ref" in res.stderr
    [row] = ledger_rows(db)
    assert row["state"] == "failed" and row["error_code"] == "insufficient_funds"
    assert row["http_status"] == 402 and row["object_id"].startswith("pi_")
    assert "sk_test" not in (row["error"] or "")
    [pi] = mirror_rows(db, "payment_intents")  # the declined intent from the 402 body
    assert pi["id"] == row["object_id"] and pi["last_error_code"] == "insufficient_funds"

    res = run(args, url, db)
    assert res.exit_code == 4
    assert res.stderr.startswith("error: replayed: card declined")
    assert len(app_.created("pi_")) == 1
