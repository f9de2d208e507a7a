"""`stripectl cards`: offline reference table."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from stripectl.cli.app import app

runner = CliRunner()


def test_cards_json_lists_documented_outcomes(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    res = runner.invoke(app, ["cards", "--json", "--db", str(db)])
    assert res.exit_code == 0, res.output
    by_value = {c["value"]: c for c in json.loads(res.stdout)}
    assert by_value["4242424242424242"]["outcome"] == "succeeds"
    assert by_value["4000000000000002"]["outcome"] == "declined"
    assert by_value["4000002500003155"]["status"] == "requires_action"
    assert by_value["4000000000009995"]["decline_code"] == "insufficient_funds"
    assert by_value["pm_card_visa"]["status"] == "succeeded"
    assert by_value["pm_card_visa_chargeDeclined"]["decline_code"] == "generic_decline"
    assert by_value["pm_card_visa_chargeDeclinedInsufficientFunds"]["decline_code"] == (
        "insufficient_funds"
    )
    assert by_value["pm_card_authenticationRequired"]["status"] == "requires_action"
    assert not db.exists()  # no mirror touched


def test_cards_table() -> None:
    res = runner.invoke(app, ["cards"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for value in ("4242424242424242", "pm_card_visa_chargeDeclinedInsufficientFunds",
                  "requires 3-D Secure"):
        assert value in res.stdout


def test_cards_help_has_example_and_exit_codes() -> None:
    res = runner.invoke(app, ["cards", "--help"])
    assert "stripectl cards --json" in res.stdout and "Exit codes" in res.stdout
