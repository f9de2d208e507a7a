"""Replay answers dedupe from memory only while it is the mirror's sole writer.

A first import into a new mirror skips the per-chunk lookups in `events` and
keeps mirror rows cached across chunks (services/replay._Run). These tests
pin that this changes nothing a user can see, and that another connection
committing mid-run turns it off at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stripectl.services.replay import ReplayOptions, replay
from stripectl.store import events as store_events
from stripectl.store import mirror as store_mirror
from stripectl.store import open_store
from stripectl.webhooks.delivery import Delivery
from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, mirror_state

SUBS = [(f"sub_1Sole{i:019d}", f"cus_1Sole{i:015d}") for i in range(4)]


def _deliveries(envs: list[dict[str, Any]], prefix: str = "d") -> list[Delivery]:
    return [
        Delivery(
            source=f"{prefix}:{n}",
            body=e["body"].encode(),
            headers=e["headers"],
            received_at=e["received_at"],
        )
        for n, e in enumerate(envs)
    ]


def _corpus() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for sub, cus in SUBS:
        events += f.lifecycle(sub, cus, payment_succeeded=False)
    envs = envelopes(events)
    # Re-deliveries far apart (other chunks) and side by side (same chunk),
    # and one delivery rejected twice.
    tampered = {**envs[3], "body": envs[3]["body"] + " "}
    return [tampered, *envs[:10], *envs, envs[1], tampered, *envs[-5:]]


def _replay(db: Path, deliveries: list[Delivery], chunk_size: int = 7, **kw: Any) -> Any:
    store = open_store(str(db))
    try:
        return replay(store, deliveries, ReplayOptions(secrets=[SECRET]), now=f.T0,
                      chunk_size=chunk_size, **kw)
    finally:
        store.close()


def _events(report: Any) -> list[dict[str, Any]]:
    return [e.to_json() for e in report.events]


def test_new_mirror_and_used_mirror_give_the_same_report_and_state(tmp_path: Path) -> None:
    corpus = _deliveries(_corpus())
    fresh = _replay(tmp_path / "fresh.db", corpus)
    # The same corpus into a mirror that already holds an unrelated delivery:
    # every chunk then asks SQLite instead of memory.
    other = envelopes(f.lifecycle("sub_1SoleOther000000000001", "cus_1SoleOther00000001")[:1])
    _replay(tmp_path / "used.db", _deliveries(other, "o"))
    used = _replay(tmp_path / "used.db", corpus)
    assert _events(fresh) == _events(used)
    # The tampered delivery, twice: a finding both times (issue 10), not a duplicate.
    assert fresh.summary["duplicate"] > 10 and fresh.summary["rejected"] == 2
    assert any((e.note or "").startswith("stored earlier as applied") for e in fresh.events)
    assert json.dumps(fresh.subscriptions) == json.dumps(used.subscriptions)
    a, b = mirror_state(tmp_path / "fresh.db"), mirror_state(tmp_path / "used.db")
    assert a["subscriptions"] == b["subscriptions"] and a["invoices"] == b["invoices"]


def test_another_writer_mid_run_is_seen_by_the_next_chunk(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    sub, cus = SUBS[0]
    envs = envelopes(f.lifecycle(sub, cus, payment_succeeded=False))
    late = json.loads(envs[-1]["body"])
    chunk = 3
    calls = 0

    def meanwhile(_: int) -> None:
        """After the first chunk's commit, a listener stores the last event and
        a sync writes a far newer snapshot of the subscription."""
        nonlocal calls
        calls += 1
        if calls != 1:
            return
        other = open_store(str(db))
        try:
            with other.transaction():
                store_events.insert_events(
                    other,
                    [("x" * 64, late["id"], late["type"], late["created"], 0, sub, None,
                      "listener", None, "{}", b"{}", 1, "applied", None, None, "other", f.T0)],
                )
                store_mirror.put_rows(
                    other,
                    "subscriptions",
                    [{"id": sub, "customer": cus, "status": "active",
                      "last_event_id": "evt_1SoleFromSync", "last_event_created": f.T0 + 999 * f.DAY,
                      "last_event_type": "customer.subscription.updated"}],
                )
        finally:
            other.close()

    report = _replay(db, _deliveries(envs), chunk_size=chunk, progress=meanwhile)
    outcomes = {e.event_id: (e.outcome, e.reason) for e in report.events}
    assert outcomes[late["id"]] == ("duplicate", "event id already seen")
    later_sub_events = [
        e
        for e in report.events[chunk:]
        if (e.type or "").startswith("customer.subscription.") and e.event_id != late["id"]
    ]
    assert later_sub_events and all(e.outcome == "stale" for e in later_sub_events)
    store = open_store(str(db))
    try:
        assert store_mirror.get_row(store, "subscriptions", sub)["last_event_id"] == "evt_1SoleFromSync"
    finally:
        store.close()


def test_duplicate_notes_do_not_depend_on_where_chunks_end(tmp_path: Path) -> None:
    """A re-delivery says what its first copy did whether that copy was
    committed in an earlier chunk or sits in the same one (in-order input:
    for out-of-order input chunk ends can decide applied vs stale, which is
    why they are fixed by input position)."""
    corpus = _deliveries(_corpus())
    reports = [
        _events(_replay(tmp_path / f"{size}.db", corpus, chunk_size=size))
        for size in (1, 2, 5, 13, 10_000)
    ]
    assert all(r == reports[-1] for r in reports)
    notes = [e["note"] for e in reports[-1] if e["outcome"] == "duplicate"]
    assert any(n and n.startswith("stored earlier as applied") for n in notes)
    again = [e for e in reports[-1] if e["outcome"] == "rejected"][1:]
    assert again and all(e["note"].startswith("already stored") for e in again)



def test_chunk_ends_are_fixed_by_input_position() -> None:
    """Never by timing: for out-of-order input a chunk end can decide between
    applied and stale, and the same input must give the same report."""
    from stripectl.services.replay import CHUNK, RAMP, _chunks

    n = sum(RAMP) + CHUNK + 1234
    assert [len(c) for c in _chunks(iter(range(n)), None)] == [*RAMP, CHUNK, 1234]
    assert [len(c) for c in _chunks(iter(range(7)), 3)] == [3, 3, 1]
