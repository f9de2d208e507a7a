"""Legitimate deliveries Stripe really sends never make a run fail (issue 10 section 1).

Each test runs on the serial path (`--jobs 1`) and on the worker pool
(`--jobs 2`, forced for small inputs), which must agree. Example objects
come from tests/corpus/ (Stripe's OpenAPI fixtures, dj-stripe's captures).
"""

from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests import corpus_helpers as c
from tests.replay_helpers import run

JOBS = pytest.mark.parametrize("jobs", ["1", "2"])
T = 1_790_000_000


def example(resource: str, date: str = "2026") -> dict[str, Any]:
    """Stripe's example object `resource` from the fixtures3 snapshot of year `date`."""
    snap = next(s for s in c.openapi_snapshots() if s["date"].startswith(date))
    return copy.deepcopy(snap["resources"][resource])


def event(
    type_: str,
    obj: dict[str, Any],
    n: int,
    *,
    created: int | None = None,
    livemode: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": f"evt_legit{n:04d}",
        "object": "event",
        "api_version": "2026-06-24.dahlia",
        "created": T + n if created is None else created,
        "data": {"object": obj},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
        **extra,
    }


def replay(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    jobs: str,
    events: list[dict[str, Any]] | Path,
    *extra: str,
    db: str = "m.db",
) -> tuple[int, dict[str, Any]]:
    if jobs != "1":
        monkeypatch.setattr("stripectl.services.parallel.PARALLEL_MIN_BYTES", 0)
    path = events if isinstance(events, Path) else c.write_jsonl(tmp_path / "in.jsonl", events)
    result = run(
        "replay-webhook",
        str(path),
        "--secret",
        c.SECRET,
        "--db",
        str(tmp_path / db),
        "--jobs",
        jobs,
        "--json",
        *extra,
    )
    return result.exit_code, json.loads(result.stdout)


def query(tmp_path: Path, sql: str, db: str = "m.db") -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(tmp_path / db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@JOBS
def test_objects_without_an_id_are_ignored_with_no_object_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    upcoming = example("invoice")
    del upcoming["id"]
    events = [
        event("balance.available", example("balance"), 1),
        event("cash_balance.funds_available", example("cash_balance"), 2),
        event("tax.settings.updated", example("tax.settings"), 3),
        event("billing.alert.triggered", example("billing.alert_triggered"), 4),
        event(
            "entitlements.active_entitlement_summary.updated",
            example("entitlements.active_entitlement_summary"),
            5,
        ),
        event("customer.discount.created", example("discount", "2017"), 6),
        event("invoice.upcoming", upcoming, 7),
    ]
    assert all("id" not in e["data"]["object"] for e in events)
    code, report = replay(tmp_path, monkeypatch, jobs, events)
    assert code == 0
    assert {(e["outcome"], e["reason"]) for e in report["events"]} == {("ignored", "unhandled event type")}
    assert query(tmp_path, "SELECT DISTINCT object_id, outcome FROM events") == [(None, "ignored")]


@JOBS
def test_a_mirrored_type_still_needs_an_object_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    sub = example("subscription")
    del sub["id"]
    code, report = replay(tmp_path, monkeypatch, jobs, [event("customer.subscription.updated", sub, 1)])
    assert code == 1
    assert [(e["outcome"], e["reason"]) for e in report["events"]] == [("rejected", "malformed")]


@JOBS
def test_an_invoice_from_before_2018_11_08_gets_its_status_and_a_paid_one_is_not_in_dunning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    inv = example("invoice", "2017")  # paid, closed, attempt_count 1, a retry date, no status
    assert "status" not in inv and inv["paid"] is True and inv["attempt_count"] == 1
    sub = example("subscription", "2017")
    sub["id"] = inv["subscription"]
    forgiven = {**copy.deepcopy(inv), "id": "in_forgiven", "forgiven": True}
    unpaid = {**copy.deepcopy(inv), "id": "in_unpaid", "paid": False, "closed": False}
    events = [
        event("customer.subscription.created", sub, 1),
        event("invoice.payment_succeeded", inv, 2),
        event("invoice.payment_failed", forgiven, 3),
        event("invoice.payment_failed", unpaid, 4),
    ]
    code, report = replay(tmp_path, monkeypatch, jobs, events[:2])
    assert code == 0
    assert report["subscriptions"][0]["dunning"] is None
    code, _ = replay(tmp_path, monkeypatch, jobs, events, db="all.db")
    assert code == 0
    statuses = dict(query(tmp_path, "SELECT id, status FROM invoices", db="all.db"))
    assert statuses == {inv["id"]: "paid", "in_forgiven": "uncollectible", "in_unpaid": "open"}


def _three_d_secure_attempt(ids: tuple[str, str]) -> list[dict[str, Any]]:
    inv = example("invoice")
    inv.update(status="open", attempt_count=1, next_payment_attempt=None, paid=False)
    sub = example("subscription")
    inv["parent"] = {"type": "subscription_details", "subscription_details": {"subscription": sub["id"]}}
    failed = event("invoice.payment_failed", inv, 2, created=T + 5)
    action = event("invoice.payment_action_required", copy.deepcopy(inv), 3, created=T + 5)
    failed["id"], action["id"] = ids
    return [event("customer.subscription.created", sub, 1), failed, action]


@JOBS
@pytest.mark.parametrize(
    "ids", [("evt_a", "evt_b"), ("evt_b", "evt_a")], ids=["action-id-last", "failed-id-last"]
)
def test_action_required_does_not_depend_on_event_id_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str, ids: tuple[str, str]
) -> None:
    events = _three_d_secure_attempt(ids)
    code, report = replay(tmp_path, monkeypatch, jobs, events)
    assert code == 0
    assert report["subscriptions"][0]["dunning"]["action_required"] is True
    # Delivered in two runs, in either order: the same answer.
    for n, order in enumerate(([events[0], events[1]], [events[2]]), 1):
        replay(tmp_path, monkeypatch, jobs, c.write_jsonl(tmp_path / f"part{n}.jsonl", order), db="split.db")
    for n, order in enumerate(([events[0], events[2]], [events[1]]), 1):
        replay(tmp_path, monkeypatch, jobs, c.write_jsonl(tmp_path / f"rev{n}.jsonl", order), db="rev.db")
    for db in ("m.db", "split.db", "rev.db"):
        assert query(tmp_path, "SELECT action_required FROM invoices", db=db) == [(1,)], db


@JOBS
def test_a_later_paid_invoice_clears_action_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    events = _three_d_secure_attempt(("evt_a", "evt_b"))
    paid = copy.deepcopy(events[1]["data"]["object"])
    paid.update(status="paid", amount_paid=paid["amount_due"])
    events.append(event("invoice.paid", paid, 9, created=T + 60))
    code, report = replay(tmp_path, monkeypatch, jobs, events)
    assert code == 0 and report["subscriptions"][0]["dunning"] is None
    assert query(tmp_path, "SELECT action_required, status FROM invoices") == [(0, "paid")]


@JOBS
def test_the_first_applied_event_sets_the_mode_not_the_first_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    # A test-mode event the mirror does not store comes first; then live ones.
    events = [
        event("balance.available", example("balance"), 1, livemode=False),
        event("customer.created", {**example("customer"), "livemode": True}, 2, livemode=True),
        event("charge.succeeded", {**example("charge"), "livemode": True}, 3, livemode=True),
    ]
    code, report = replay(tmp_path, monkeypatch, jobs, events)
    assert code == 0
    assert [e["outcome"] for e in report["events"]] == ["ignored", "applied", "ignored"]
    assert query(tmp_path, "SELECT value FROM meta WHERE key = 'livemode'") in ([("1",)], [(1,)])


@JOBS
def test_test_mode_events_on_a_live_mirror_are_stored_not_applied_and_exit_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    live_cus = {**example("customer"), "livemode": True}
    test_cus = {**example("customer"), "id": "cus_connected_test", "email": "t@example.com"}
    events = [
        event("customer.created", live_cus, 1, livemode=True),
        # A Connect platform's live endpoint: a connected account's test event.
        event("customer.created", test_cus, 2, livemode=False, account="acct_1Connected"),
        event("customer.updated", {**live_cus, "email": "test-mode@example.com"}, 3, livemode=False),
        event("balance.available", example("balance"), 4, livemode=False, account="acct_1Connected"),
    ]
    code, report = replay(tmp_path, monkeypatch, jobs, events)
    assert code == 0
    got = [(e["outcome"], e["reason"]) for e in report["events"]]
    assert got == [("applied", None)] + [("ignored", "test_mode_event")] * 3
    assert all("not applied" in e["note"] for e in report["events"][1:])
    assert query(tmp_path, "SELECT id, email FROM customers") == [(live_cus["id"], live_cus["email"])]
    assert query(tmp_path, "SELECT count(*) FROM events WHERE outcome = 'ignored'") == [(3,)]
    # A live event on a test-mode mirror is never legitimate: still a finding.
    code, report = replay(
        tmp_path,
        monkeypatch,
        jobs,
        c.write_jsonl(
            tmp_path / "rev.jsonl", [events[1], {**events[0], "id": "evt_live_late", "created": T + 9}]
        ),
        db="test.db",
    )
    assert code == 1
    assert [e["reason"] for e in report["events"]] == [None, "livemode_mismatch"]


THIN = {
    "id": "evt_test_65R9Ijk8C5wuULj4lS9YHR1LmNdpSQIAPBd6fDCYnHpw",
    "object": "v2.core.event",
    "type": "v1.billing.meter.error_report_triggered",
    "livemode": False,
    "created": "2024-09-26T14:13:41.064Z",
    "context": None,
    "reason": None,
    "related_object": {
        "id": "mtr_test_61R9Ijk8C5wuULj4lS9YHR1LmNdpSQIAPBd6fDCYn",
        "type": "billing.meter",
        "url": "/v1/billing/meters/mtr_test_61R9Ijk8C5wuULj4lS9YHR1LmNdpSQIAPBd6fDCYn",
    },
}


@JOBS
def test_thin_events_are_verified_stored_and_not_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    envs = [c.signed(THIN), {**c.signed(THIN), "body": json.dumps({**THIN, "type": "v1.x"})}]  # 2nd: tampered
    path = tmp_path / "thin.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in envs))
    code, report = replay(tmp_path, monkeypatch, jobs, path)
    assert code == 1  # only because of the tampered copy
    first, forged = report["events"]
    assert (first["outcome"], first["reason"], first["verified"]) == ("ignored", "thin_event", True)
    assert first["event_id"] == THIN["id"] and first["created"] == 1727360021  # 2024-09-26T14:13:41Z
    assert (forged["outcome"], forged["reason"]) == ("rejected", "bad_signature")
    assert query(tmp_path, "SELECT object_id, outcome FROM events WHERE outcome = 'ignored'") == [
        (THIN["related_object"]["id"], "ignored")
    ]


@JOBS
def test_a_thin_version_of_a_snapshot_event_is_a_thin_event_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    # Stripe's thin twins of snapshot events (`v1.customer.created`) name the snapshot
    # event; a capture that lost `object` is still recognised by its v1. type and no data.
    import time

    thin = {**THIN, "id": "evt_thin_twin", "type": "v1.customer.created", "snapshot_event": "evt_1Snap"}
    bare = {k: v for k, v in {**thin, "id": "evt_thin_bare"}.items() if k != "object"}
    bare["created"] = "2024-09-26T14:13:41"  # no offset: UTC, whatever the machine's zone
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        code, report = replay(tmp_path, monkeypatch, jobs, [thin, bare])
    finally:
        monkeypatch.undo()
        time.tzset()
    assert code == 0
    assert [(e["outcome"], e["reason"]) for e in report["events"]] == [("ignored", "thin_event")] * 2
    assert [e["created"] for e in report["events"]] == [1727360021, 1727360021]


@JOBS
def test_a_rejected_delivery_is_rejected_again_on_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    good = event("customer.created", example("customer"), 1)
    forged = c.signed(good)
    forged["body"] = forged["body"].replace(example("customer")["email"] or "null", '"evil@example.com"', 1)
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(c.signed(good)) + "\n" + json.dumps(forged) + "\n")
    for attempt in range(3):
        code, report = replay(tmp_path, monkeypatch, jobs, path)
        assert code == 1, attempt  # a CI gate fails on every run, not only the first
        ok, bad = report["events"]
        assert ok["outcome"] == ("applied" if attempt == 0 else "duplicate")
        assert (bad["outcome"], bad["reason"]) == ("rejected", "bad_signature")
        assert bad["event_id"] is None and bad["claimed_event_id"] == good["id"] and not bad["verified"]
        assert ("already stored" in bad["note"]) == (attempt > 0)
    assert query(tmp_path, "SELECT outcome, count(*) FROM events GROUP BY outcome ORDER BY 1") == [
        ("applied", 1),
        ("rejected", 1),
    ]


def test_the_table_shows_a_rejected_delivery_s_claimed_id(tmp_path: Path) -> None:
    good = event("customer.created", example("customer"), 1)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(c.signed(good, secret="whsec_some_other_endpoint_0000")) + "\n")
    result = run("replay-webhook", str(path), "--secret", c.SECRET, "--db", str(tmp_path / "m.db"))
    assert result.exit_code == 1
    assert "evt_legit0001" in result.stdout and "claimed" in result.stdout and "unverified" in result.stdout


@pytest.mark.parametrize("paid", [False, True])
def test_a_three_d_secure_attempt_in_every_order_and_chunking_gives_one_answer(
    tmp_path: Path, paid: bool
) -> None:
    """All orders of (subscription, payment_failed, payment_action_required
    [, invoice.paid]), both event-id orders, one chunk or one delivery a chunk."""
    import itertools

    from stripectl.services.replay import ReplayOptions
    from stripectl.services.replay import replay as replay_service
    from stripectl.store import open_store
    from stripectl.webhooks.delivery import Delivery

    answers = set()
    for ids in (("evt_a", "evt_b"), ("evt_b", "evt_a")):
        events = _three_d_secure_attempt(ids)
        if paid:
            inv = copy.deepcopy(events[1]["data"]["object"])
            inv.update(status="paid", amount_paid=inv["amount_due"])
            events.append(event("invoice.paid", inv, 9, created=T + 60))
        for n, order in enumerate(itertools.permutations(events)):
            for chunk in (1, 100):
                store = open_store(str(tmp_path / f"{ids[0]}-{n}-{chunk}.db"))
                try:
                    deliveries = [
                        Delivery(
                            source="t",
                            body=env["body"].encode(),
                            headers=env["headers"],
                            received_at=env["received_at"],
                        )
                        for env in map(c.signed, order)
                    ]
                    replay_service(store, deliveries, ReplayOptions(secrets=[c.SECRET]), chunk_size=chunk)
                    answers.add(
                        tuple(
                            store.conn.execute(
                                "SELECT status, action_required, last_failure_at FROM invoices"
                            ).fetchall()
                        )
                    )
                finally:
                    store.close()
    assert answers == {(("paid", 0, T + 5),)} if paid else {(("open", 1, T + 5),)}


def test_the_readme_example_run_twice_fails_twice_on_its_tampered_delivery(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parent.parent / "examples" / "deliveries"
    secret = "whsec_stripectl_example_0000000000000000"
    summaries = []
    for _ in range(2):
        result = run(
            "replay-webhook", str(examples), "--secret", secret, "--db", str(tmp_path / "m.db"), "--json"
        )
        assert result.exit_code == 1
        summaries.append(json.loads(result.stdout)["summary"])
    assert summaries[0]["rejected"] == summaries[1]["rejected"] == 1
    assert summaries[1]["duplicate"] == summaries[1]["total"] - 1


@JOBS
@pytest.mark.parametrize(
    "settle", [("invoice.voided", "void"), ("invoice.marked_uncollectible", "uncollectible")]
)
def test_a_voided_or_uncollectible_invoice_leaves_dunning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str, settle: tuple[str, str]
) -> None:
    events = _three_d_secure_attempt(("evt_a", "evt_b"))
    inv = copy.deepcopy(events[1]["data"]["object"])
    inv.update(status=settle[1], next_payment_attempt=None)
    events.append(event(settle[0], inv, 9, created=T + 60))
    code, report = replay(tmp_path, monkeypatch, jobs, events[:3], db="before.db")
    assert code == 0 and report["subscriptions"][0]["dunning"] is not None
    code, report = replay(tmp_path, monkeypatch, jobs, c.write_jsonl(tmp_path / "all.jsonl", events))
    assert code == 0 and report["subscriptions"][0]["dunning"] is None
    assert query(tmp_path, "SELECT status, action_required FROM invoices") == [(settle[1], 0)]


def test_the_readme_names_every_rejection_and_ignored_reason() -> None:
    from stripectl.webhooks.inspect import IGNORED, REASONS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("Rejection reasons:") - 2000 : readme.index("Nothing is lost:")]
    missing = [r for r in [*REASONS, *IGNORED, "test_mode_event"] if f"`{r}`" not in section]
    assert missing == []
