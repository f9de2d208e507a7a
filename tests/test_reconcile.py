"""`stripectl reconcile` against the current-shape fake: drift kinds, skips, fix, exit codes."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stripectl.cli.app import app
from stripectl.store import open_store
from stripectl.store.mirror import get_row, put_rows
from tests import factories as f
from tests.conftest import free_port
from tests.drift_helpers import cli, runner
from tests.fakes.base import error, serve
from tests.fakes.subscriptions import FakeSubscriptions


def sub(n: int, **kw: Any) -> dict[str, Any]:
    kw.setdefault("customer", f"cus_rec{n:04d}")
    kw.setdefault("metadata", {"user_id": f"user_{n}", "plan_name": "basic"})
    return f.subscription(id=f"sub_rec{n:04d}", created=f.T0 + n, **kw)


def drift_of(out: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["subscription"], d["kind"]): d for d in json.loads(out)["drift"]}


@pytest.fixture
def fake() -> Iterator[tuple[FakeSubscriptions, str]]:
    app_ = FakeSubscriptions([sub(n) for n in range(1, 13)])
    app_.put(sub(12, items=[{"price": "price_basic", "quantity": 2},
                             {"price": "price_pro", "quantity": 1}]))
    with serve(app_) as url:
        yield app_, url


def test_no_drift_after_sync_exit_0(fake: tuple[FakeSubscriptions, str], tmp_path: Path) -> None:
    _, url = fake
    db = tmp_path / "m.db"
    assert cli(url, db, "sync").exit_code == 0
    result = cli(url, db, "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["drift"] == []
    assert report["summary"]["compared"] == 12 and report["summary"]["in_sync"] == 12
    table = cli(url, db, "reconcile")
    assert table.exit_code == 0 and "0 drift findings" in table.stdout


def test_every_drift_kind(fake: tuple[FakeSubscriptions, str], tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    assert cli(url, db, "sync").exit_code == 0
    # Stripe changes that the mirror never heard about:
    app_.update("sub_rec0001", status="canceled", canceled_at=f.T0 + 99, ended_at=f.T0 + 99)
    app_.put(sub(2, price="price_pro"))
    app_.put(sub(3, quantity=3))
    app_.put(sub(4, current_period_end=f.T0 + 90 * f.DAY))
    app_.update("sub_rec0005", cancel_at_period_end=True)
    app_.update("sub_rec0006", customer="cus_someone_else")
    app_.update("sub_rec0007", metadata={"user_id": "user_700", "plan_name": "pro"})
    app_.update("sub_rec0008", livemode=True)
    app_.put(sub(13))  # created in Stripe, never mirrored
    app_.remove("sub_rec0010")  # mirrored, unknown to Stripe

    result = cli(url, db, "reconcile", "--json")
    assert result.exit_code == 1
    found = drift_of(result.stdout)
    assert found[("sub_rec0001", "status")]["local"] == "active"
    assert found[("sub_rec0001", "status")]["remote"] == "canceled"
    assert found[("sub_rec0001", "access")]["local"]["granted"] is True
    assert found[("sub_rec0001", "access")]["remote"] == {"granted": False, "why": "canceled"}
    assert (found[("sub_rec0002", "price")]["local"], found[("sub_rec0002", "price")]["remote"]) \
        == ("price_basic", "price_pro")
    assert found[("sub_rec0003", "quantity")]["remote"] == 3
    assert found[("sub_rec0004", "current_period_end")]["remote"] == f.T0 + 90 * f.DAY
    assert found[("sub_rec0005", "cancel_at_period_end")]["remote"] is True
    assert found[("sub_rec0006", "customer")]["remote"] == "cus_someone_else"
    assert found[("sub_rec0007", "metadata")]["remote"] == {"user_id": "user_700",
                                                             "plan_name": "pro"}
    assert found[("sub_rec0007", "metadata")]["local"]["user_id"] == "user_7"
    assert found[("sub_rec0008", "livemode")]["remote"] is True
    assert found[("sub_rec0013", "missing_local")]["local"] is None
    assert found[("sub_rec0013", "missing_local")]["remote"]["status"] == "active"
    assert found[("sub_rec0010", "missing_remote")]["remote"] is None
    kinds = {k for _, k in found}
    assert kinds == {"missing_local", "missing_remote", "status", "access", "price", "quantity",
                     "current_period_end", "cancel_at_period_end", "customer", "metadata",
                     "livemode"}
    # Untouched, including the multi-item subscription, are not reported.
    assert not any(s in ("sub_rec0009", "sub_rec0011", "sub_rec0012") for s, _ in found)
    summary = json.loads(result.stdout)["summary"]
    assert summary["in_sync"] == 3 and summary["drifted_subscriptions"] == 10


def test_access_drift_follows_grace(fake: tuple[FakeSubscriptions, str], tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    assert cli(url, db, "sync").exit_code == 0
    app_.update("sub_rec0001", status="past_due")
    retry = cli(url, db, "reconcile", "--json")  # no retry known: past_due is denied
    assert ("sub_rec0001", "access") in drift_of(retry.stdout)
    always = cli(url, db, "reconcile", "--json", "--grace", "always")
    assert ("sub_rec0001", "access") not in drift_of(always.stdout)
    assert ("sub_rec0001", "status") in drift_of(always.stdout)
    # A scheduled retry in the mirror's invoices keeps access under `retry`.
    store = open_store(str(db))
    with store.transaction():
        put_rows(store, "invoices", [{
            "id": "in_rec1", "subscription": "sub_rec0001", "status": "open",
            "attempt_count": 1, "next_payment_attempt": int(time.time()) + 3 * f.DAY,
            "last_event_created": int(time.time()) - 60,
        }])
    store.close()
    retry = cli(url, db, "reconcile", "--json")
    assert ("sub_rec0001", "access") not in drift_of(retry.stdout)


def test_newer_mirror_row_is_skipped_not_drift(
    fake: tuple[FakeSubscriptions, str], tmp_path: Path
) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    assert cli(url, db, "sync").exit_code == 0
    app_.update("sub_rec0001", status="canceled")
    future = int(time.time()) + 3600  # a webhook applied after the listing started
    store = open_store(str(db))
    with store.transaction():
        row = get_row(store, "subscriptions", "sub_rec0001")
        assert row is not None
        put_rows(store, "subscriptions", [{**row, "last_event_created": future}])
        put_rows(store, "subscriptions", [{
            "id": "sub_rec_brand_new", "status": "active", "last_event_created": future,
        }])
    store.close()
    result = cli(url, db, "reconcile", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["drift"] == []
    assert report["summary"]["skipped_newer_locally"] == 2
    assert {s["subscription"] for s in report["skipped"]} == {"sub_rec0001", "sub_rec_brand_new"}
    assert "skipped: newer locally" in result.stderr


def test_fix_plans_then_applies_then_clean(
    fake: tuple[FakeSubscriptions, str], tmp_path: Path
) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    assert cli(url, db, "sync").exit_code == 0
    app_.update("sub_rec0001", status="canceled")
    app_.put(sub(2, quantity=5))
    app_.put(sub(13))
    app_.remove("sub_rec0010")
    on_clock = sub(11, status="past_due")
    on_clock["test_clock"] = "clock_1"  # not listed without `customer`, yet it exists
    app_.put(on_clock)

    plan = cli(url, db, "reconcile", "--fix", "--json")
    assert plan.exit_code == 1
    fix = json.loads(plan.stdout)["fix"]
    assert fix["applied"] is False
    actions = {a["subscription"]: a["action"] for a in fix["actions"]}
    assert actions == {"sub_rec0001": "update", "sub_rec0002": "update",
                       "sub_rec0013": "insert", "sub_rec0010": "delete",
                       "sub_rec0011": "update"}
    assert "--fix --yes" in plan.stderr
    assert cli(url, db, "reconcile").exit_code == 1  # the plan changed nothing

    writes_before = sum(1 for r in app_.requests if r.method != "GET")
    applied = cli(url, db, "reconcile", "--fix", "--yes", "--json")
    assert applied.exit_code == 1  # drift was found (and repaired)
    outcomes = {a["outcome"] for a in json.loads(applied.stdout)["fix"]["actions"]}
    assert outcomes == {"applied"}
    assert sum(1 for r in app_.requests if r.method != "GET") == writes_before == 0

    app_.put(sub(11, status="past_due"))  # off the clock: listed again
    after = cli(url, db, "reconcile", "--json")
    assert after.exit_code == 0, after.stdout
    store = open_store(str(db))
    assert get_row(store, "subscriptions", "sub_rec0010") is None
    row = get_row(store, "subscriptions", "sub_rec0001")
    assert row is not None and row["status"] == "canceled" and row["source"] == "sync"
    store.close()


@pytest.mark.parametrize("n", [0, 1, 100, 250])
def test_requests_are_pages_of_100(n: int, tmp_path: Path) -> None:
    app_ = FakeSubscriptions([sub(i) for i in range(n)])
    db = tmp_path / "m.db"
    with serve(app_) as url:
        assert cli(url, db, "sync").exit_code == 0
        app_.requests.clear()
        result = cli(url, db, "reconcile", "--json")
    assert result.exit_code == 0
    lists = app_.list_requests()
    # Pages of 100 in `created` windows: a probe of [start, +inf), about one
    # request per window beyond the pages, one trailing page at the end.
    assert len(app_.requests) == len(lists) <= 2 * max(1, math.ceil(n / 100)) + 3
    assert all(r.query["status"] == "all" and r.query["limit"] == "100" for r in lists)
    assert all("gte" in r.query["created"] for r in lists)
    assert json.loads(result.stdout)["summary"]["requests"] == len(lists)


def test_ignore_and_history(fake: tuple[FakeSubscriptions, str], tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    assert cli(url, db, "sync").exit_code == 0
    assert cli(url, db, "reconcile").exit_code == 0
    app_.update("sub_rec0005", cancel_at_period_end=True)
    app_.update("sub_rec0007", metadata={"user_id": "user_7", "plan_name": "gold"})
    assert cli(url, db, "reconcile").exit_code == 1
    tuned = cli(url, db, "reconcile", "--json", "--ignore", "cancel_at_period_end",
                "--ignore", "metadata")
    assert tuned.exit_code == 0
    assert json.loads(tuned.stdout)["summary"]["ignored"] == {"cancel_at_period_end": 1,
                                                               "metadata": 1}
    hist = cli(url, db, "reconcile", "--history", "--json")
    assert hist.exit_code == 0
    runs = json.loads(hist.stdout)["runs"]
    assert [r["drift_count"] for r in runs] == [0, 2, 0]
    assert [r["delta"] for r in runs] == [-2, 2, None]
    assert runs[1]["counts"] == {"cancel_at_period_end": 1, "metadata": 1}
    assert runs[0]["ignored"] == ["cancel_at_period_end", "metadata"]
    table = cli(url, db, "reconcile", "--history")
    assert "Reconcile runs" in table.stdout and "+2" in table.stdout


def test_exit_codes_for_errors(fake: tuple[FakeSubscriptions, str], tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    assert cli(url, db, "reconcile", "--ignore", "colour").exit_code == 2
    assert cli(url, db, "reconcile", "--format", "xml").exit_code == 2
    assert cli(url, db, "reconcile", "--yes").exit_code == 2
    app_.fail_next.append(error(401, "Invalid API Key provided", type_="invalid_request_error"))
    denied = cli(url, db, "reconcile")
    assert denied.exit_code == 3 and "refused the API key" in denied.stderr
    app_.fail_next.append(error(400, "Something is wrong", code="parameter_invalid"))
    assert cli(url, db, "reconcile").exit_code == 4
    dead = f"http://127.0.0.1:{free_port()}"
    assert cli(dead, db, "reconcile").exit_code == 5
    live_key = runner.invoke(app, ["reconcile", "--api-key", "sk_live_stripectl_fake_0000",
                                   "--api-base", url, "--db", str(db)])
    assert live_key.exit_code == 3 and "sk_live_...0000" in live_key.stderr
    assert "stripectl_fake_0000" not in live_key.stderr.replace("sk_live_...0000", "")
