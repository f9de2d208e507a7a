"""sync, reconcile and access against localstripe: the older, plan-based API shape.

localstripe serves plan-based items (no `price`), a top-level current_period_end
and one item per subscription. It is shared by the whole test session, so
these tests only assert about the objects they create.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import stripe
from click.testing import Result
from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.store import open_store
from stripectl.store.mirror import get_row

KEY = "sk_test_stripectl_fake_0000"
runner = CliRunner()


def cli(url: str, db: Path | str, *args: str) -> Result:
    return runner.invoke(
        app, [*args, "--api-key", KEY, "--api-base", url, "--db", str(db)], catch_exceptions=False
    )


def client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": url})


def make_subscription(c: stripe.StripeClient, user: str, quantity: int = 1) -> dict[str, Any]:
    plan = c.v1.plans.create({"amount": 1500, "currency": "usd", "interval": "month",
                              "product": {"name": "Basic"}})
    # localstripe charges the invoice at creation: the customer needs a card.
    cus = c.v1.customers.create({"email": f"{user}@example.com", "payment_method": "pm_card_visa",
                                 "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    sub = c.v1.subscriptions.create({
        "customer": cus.id,
        "items": [{"plan": plan.id, "quantity": quantity}],
        "metadata": {"user_id": user, "plan_name": "basic"},
    })
    return sub.to_dict()


def drift_for(out: str, ids: set[str]) -> set[tuple[str, str]]:
    return {(d["subscription"], d["kind"]) for d in json.loads(out)["drift"]
            if d["subscription"] in ids}


def test_old_shape_sync_reconcile_fix_and_access(localstripe_url: str, mirror_target: str) -> None:
    c = client(localstripe_url)
    tag = uuid.uuid4().hex[:8]
    a = make_subscription(c, f"ls_a_{tag}", quantity=2)
    b = make_subscription(c, f"ls_b_{tag}")
    ids = {a["id"], b["id"]}
    assert a["status"] == "active" and "price" not in a["items"]["data"][0]

    db = mirror_target  # a file, then a postgresql:// mirror
    synced = cli(localstripe_url, db, "sync", "--json")
    assert synced.exit_code == 0, synced.stderr
    store = open_store(str(db))
    row = get_row(store, "subscriptions", a["id"])
    store.close()
    assert row is not None
    assert row["price"] == a["items"]["data"][0]["plan"]["id"]
    assert row["quantity"] == 2 and row["current_period_end"] == a["current_period_end"]
    assert row["user_id"] == f"ls_a_{tag}"

    clean = cli(localstripe_url, db, "reconcile", "--json")
    assert clean.exit_code in (0, 1)  # other tests' objects may move; ours must not
    assert drift_for(clean.stdout, ids) == set()

    # Changed behind the mirror's back: canceled, and a quantity/cancel flag edit.
    c.v1.subscriptions.cancel(a["id"])
    item = b["items"]["data"][0]
    c.v1.subscriptions.update(b["id"], {
        "cancel_at_period_end": True,
        "items": [{"id": item["id"], "plan": item["plan"]["id"],
                   "quantity": 4}],
    })
    drifted = cli(localstripe_url, db, "reconcile", "--json")
    assert drifted.exit_code == 1
    assert drift_for(drifted.stdout, ids) == {
        (a["id"], "status"), (a["id"], "access"),
        (b["id"], "quantity"), (b["id"], "cancel_at_period_end"),
    }
    access_a = cli(localstripe_url, db, "access", f"ls_a_{tag}", "--offline")
    assert access_a.exit_code == 0  # the mirror still believes it is active

    assert cli(localstripe_url, db, "reconcile", "--fix", "--yes").exit_code == 1
    after = cli(localstripe_url, db, "reconcile", "--json")
    assert drift_for(after.stdout, ids) == set()

    live_a = cli(localstripe_url, db, "access", f"ls_a_{tag}", "--json")
    assert live_a.exit_code == 1 and json.loads(live_a.stdout)["why"].endswith("canceled")
    live_b = cli(localstripe_url, db, "access", b["customer"])
    assert live_b.exit_code == 0 and "GRANTED" in live_b.stdout
    # Every reconcile above was recorded: the history of runs, newest first.
    history = cli(localstripe_url, db, "reconcile", "--history", "--json")
    assert history.exit_code == 0, history.stderr
    runs = json.loads(history.stdout)["runs"]
    assert len(runs) == 4 and runs[0]["fixed"] == 0 and runs[1]["fixed"] >= 2
