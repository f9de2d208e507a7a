"""`stripectl checkout create` against the idempotency-honouring fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.errors import UsageError
from stripectl.services.checkout import with_session_id
from tests import factories as f
from tests.fakes.idempotent import Fake, conn_args, ledger_rows, mirror_rows

runner = CliRunner()
SUB = [
    "checkout", "create", "--mode", "subscription", "--price", "price_pro", "--user-id", "u_42",
    "--plan-name", "pro", "--customer-email", "ada@example.com",
    "--success-url", "https://example.com/welcome", "--cancel-url", "https://example.com/pricing",
]




def run(args: list[str], url: str, db: Path) -> Any:
    return runner.invoke(app, [*args, *conn_args(url, db)])


def run_json(args: list[str], url: str, db: Path) -> dict[str, Any]:
    res = run([*args, "--json"], url, db)
    assert res.exit_code == 0, res.output
    data: dict[str, Any] = json.loads(res.stdout)
    return data


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://e.com/done", "https://e.com/done?session_id={CHECKOUT_SESSION_ID}"),
        ("https://e.com/done?plan=pro", "https://e.com/done?plan=pro&session_id={CHECKOUT_SESSION_ID}"),
        ("https://e.com/done#top", "https://e.com/done?session_id={CHECKOUT_SESSION_ID}#top"),
        ("https://e.com/x?s={CHECKOUT_SESSION_ID}", "https://e.com/x?s={CHECKOUT_SESSION_ID}"),
    ],
)
def test_success_url_gets_session_id(url: str, expected: str) -> None:
    assert with_session_id(url) == expected


@pytest.mark.parametrize("url", ["example.com/done", "ftp://e.com/x", "/relative"])
def test_success_url_must_be_absolute_http(url: str) -> None:
    with pytest.raises(UsageError):
        with_session_id(url)


def test_subscription_metadata_everywhere(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    data = run_json([*SUB, "--metadata", "source=cli"], url, tmp_path / "m.db")
    form = app_.forms[data["id"]]
    md = {"user_id": "u_42", "plan_name": "pro", "source": "cli"}
    assert form["metadata"] == md
    assert form["subscription_data"]["metadata"] == md
    assert "payment_intent_data" not in form
    assert form["client_reference_id"] == "u_42"
    assert form["customer_email"] == "ada@example.com"
    assert form["line_items"] == [{"price": "price_pro", "quantity": "1"}]
    assert form["success_url"] == "https://example.com/welcome?session_id={CHECKOUT_SESSION_ID}"
    assert data["url"].startswith("https://checkout.stripe.com/")
    assert data["user_id"] == "u_42" and data["replayed"] is False
    assert app_.count("POST") == 1


def test_payment_mode_metadata_on_payment_intent_data(
    fake: Fake, tmp_path: Path
) -> None:
    app_, url = fake
    data = run_json(["checkout", "create", "--mode", "payment", "--price", "price_a",
                     "--quantity", "3", "--price", "price_b", "--user-id", "u_7",
                     "--customer", "cus_123", "--success-url", "https://e.com/ok?x=1"],
                    url, tmp_path / "m.db")
    form = app_.forms[data["id"]]
    assert form["payment_intent_data"]["metadata"] == {"user_id": "u_7"}
    assert "subscription_data" not in form
    assert form["line_items"] == [{"price": "price_a", "quantity": "3"},
                                  {"price": "price_b", "quantity": "1"}]
    assert form["customer"] == "cus_123" and "customer_email" not in form
    assert form["success_url"] == "https://e.com/ok?x=1&session_id={CHECKOUT_SESSION_ID}"


def test_human_output_prints_id_and_url(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    res = run(SUB, url, tmp_path / "m.db")
    assert res.exit_code == 0, res.output
    [cs] = app_.created("cs_")
    assert cs["id"] in res.stdout and cs["url"] in res.stdout


def test_rerun_replays_same_session(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    first = run_json(SUB, url, db)
    second = run_json(SUB, url, db)
    assert second["id"] == first["id"] and second["replayed"] is True
    assert len(app_.created("cs_")) == 1
    assert first["idempotency_key"].startswith("stripectl:cs:")
    # Another user, or another price, is another session.
    other = run_json([a if a != "u_42" else "u_43" for a in SUB], url, db)
    assert other["id"] != first["id"]


def test_changed_quantity_same_identity_refused_locally(
    fake: Fake, tmp_path: Path
) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    run_json(SUB, url, db)
    res = run([*SUB, "--quantity", "2"], url, db)
    assert res.exit_code == 4
    assert 'line_items[0].quantity: 1 -> 2' in res.stderr
    assert app_.count("POST") == 1


def test_session_recorded_in_mirror(fake: Fake, mirror_target: str) -> None:
    app_, url = fake
    db = mirror_target  # a file, then a postgresql:// mirror
    data = run_json(SUB, url, db)
    [row] = mirror_rows(db, "checkout_sessions")
    assert row["id"] == data["id"] and row["user_id"] == "u_42" and row["plan_name"] == "pro"
    assert row["source"] == "api" and row["idempotency_key"] == data["idempotency_key"]
    assert row["last_event_created"] == app_.objects[data["id"]]["created"]
    [led] = ledger_rows(db)
    assert led["operation"] == "checkout_session.create" and led["object_id"] == data["id"]


def test_completed_event_links_subscription_to_user(
    fake: Fake, tmp_path: Path
) -> None:
    """The session we recorded + a replayed checkout.session.completed name the user."""
    _, url = fake
    db = tmp_path / "m.db"
    data = run_json(SUB, url, db)
    created = int(mirror_rows(db, "checkout_sessions")[0]["last_event_created"])
    sub = f.subscription("sub_link_1", status="active", created=created + 5)
    cs = f.checkout_session(data["id"], subscription="sub_link_1", client_reference_id="u_42",
                            metadata={"user_id": "u_42", "plan_name": "pro"}, created=created)
    events = [f.event("customer.subscription.created", sub, created=created + 5),
              f.event("checkout.session.completed", cs, created=created + 6)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(
        json.dumps(f.envelope(e, t=e["created"], received_at=e["created"] + 1)) + "\n"
        for e in events))
    res = runner.invoke(app, ["replay-webhook", str(path), "--secret", f.EXAMPLE_SECRET,
                              "--db", str(db)])
    assert res.exit_code == 0, res.output
    [sub_row] = mirror_rows(db, "subscriptions")
    assert sub_row["user_id"] == "u_42" and sub_row["plan_name"] == "pro"
    [cs_row] = mirror_rows(db, "checkout_sessions")
    assert cs_row["idempotency_key"] == data["idempotency_key"]  # kept from our api row
    assert cs_row["status"] == "complete"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metadata", "k" * 41 + "=v"], "41 characters"),
        (["--metadata", "note=" + "x" * 501], "501 characters"),
        ([x for i in range(49) for x in ("--metadata", f"k{i}=v")], "51 keys"),
        (["--metadata", "user_id=someone_else"], "conflicts with --user-id"),
        (["--customer", "cus_1"], "not both"),
        (["--quantity", "1", "--quantity", "2"], "each --quantity pairs"),
        (["--mode", "setup"], "--mode must be one of"),
    ],
)
def test_usage_errors_before_any_request(
    fake: Fake, tmp_path: Path, extra: list[str], message: str
) -> None:
    app_, url = fake
    res = run([*SUB, *extra], url, tmp_path / "m.db")
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert app_.requests == []
    assert not (tmp_path / "m.db").exists()
