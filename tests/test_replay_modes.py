"""The mirror's mode, test-mode and thin events, and rejected deliveries on re-runs (issue 10).

Each test runs on the serial path (`--jobs 1`) and on the worker pool
(`--jobs 2`, forced for small inputs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import corpus_helpers as c
from tests.legit_helpers import JOBS, T, event, example, query, replay
from tests.replay_helpers import run


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


@JOBS
def test_a_mirror_whose_mode_sync_set_to_live_never_applies_a_first_test_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str
) -> None:
    from stripectl.store import open_store

    store = open_store(str(tmp_path / "m.db"))
    with store.transaction():
        store.meta_set("livemode", "1")  # what `sync --live` records on a new mirror
    store.close()
    test_cus = {**example("customer"), "id": "cus_connected_test"}
    code, report = replay(
        tmp_path, monkeypatch, jobs, [event("customer.created", test_cus, 1, account="acct_1C")]
    )
    assert code == 0
    assert [(e["outcome"], e["reason"]) for e in report["events"]] == [("ignored", "test_mode_event")]
    assert query(tmp_path, "SELECT count(*) FROM customers") == [(0,)]


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


def test_the_readme_names_every_rejection_and_ignored_reason() -> None:
    from stripectl.webhooks.inspect import IGNORED, REASONS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("Rejection reasons:") - 2000 : readme.index("Nothing is lost:")]
    missing = [r for r in [*REASONS, *IGNORED, "test_mode_event"] if f"`{r}`" not in section]
    assert missing == []
