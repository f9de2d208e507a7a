"""One contract, two engines: every test here runs on SQLite and on PostgreSQL.

`mirror_target` (conftest) is a new mirror on each engine: a file path, or a
database on the real PostgreSQL server the test session started.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from stripectl.errors import StoreError
from stripectl.services.replay import ReplayOptions, replay
from stripectl.services.subscription_report import latest_invoices
from stripectl.store import SCHEMA_VERSION, Store, open_store
from stripectl.store import events as store_events
from stripectl.store import inbox as store_inbox
from stripectl.store import ledger as store_ledger
from stripectl.store import mirror as store_mirror
from stripectl.store import runs as store_runs
from stripectl.store import sync as store_sync
from stripectl.store.copy import data_columns, data_tables
from stripectl.webhooks.delivery import Delivery
from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, store_state


@pytest.fixture
def store(mirror_target: str) -> Any:
    s = open_store(mirror_target)
    yield s
    s.close()


def _event(n: int, **over: Any) -> tuple[Any, ...]:
    row: dict[str, Any] = {
        "delivery_id": f"d{n:04d}", "event_id": f"evt_{n}", "type": "customer.updated", "created": n,
        "livemode": 0, "object_id": "cus_1", "api_version": "2025-03-31.basil", "source": "t",
        "received_at": 100, "headers": '{"Stripe-Signature": "t=1,v1=x"}',
        "body": b'{"id": "evt", "x": "\xc3\xa9"}', "verified": 1, "outcome": "applied", "reason": None,
        "note": None, "run_id": "r", "stored_at": 100,
    }
    row.update(over)
    return tuple(row.values())


def test_migrations_make_the_same_tables_and_columns_on_both_engines(
    store: Store, tmp_path: Any
) -> None:
    reference = open_store(str(tmp_path / "ref.db"))
    try:
        assert data_tables(store) == data_tables(reference)
        for table in data_tables(reference):
            assert data_columns(store, table) == data_columns(reference, table), table
        assert store.engine.schema_version() == SCHEMA_VERSION
    finally:
        reference.close()


def test_reopening_runs_no_migration_again(mirror_target: str) -> None:
    for _ in range(2):
        s = open_store(mirror_target)
        try:
            assert s.meta_get(f"migrated_v{SCHEMA_VERSION}") is not None
            assert s.engine.schema_version() == SCHEMA_VERSION
        finally:
            s.close()


def test_meta_upserts(store: Store) -> None:
    with store.transaction():
        store.meta_set("k", "1")
        store.meta_set("k", "2")
    assert store.meta_get("k") == "2"
    assert store.meta_get("missing") is None


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store_events.insert_events(store, [_event(1)])
        raise RuntimeError("boom")
    assert not store_events.any_events(store)
    # A database error inside is the store's fault (exit 6), and rolls back too.
    with pytest.raises(StoreError), store.transaction():
        store_events.insert_events(store, [_event(2)])
        store.execute("INSERT INTO no_such_table VALUES (1)")
    assert not store_events.any_events(store)
    with store.transaction():
        store_events.insert_events(store, [_event(3)])
    assert store_events.event_counts(store) == {"applied": 1}


def test_writes_outside_a_read_only_store_are_refused(mirror_target: str) -> None:
    open_store(mirror_target).close()
    dry = open_store(mirror_target, dry_run=True)
    try:
        assert dry.readonly
        with pytest.raises(StoreError), dry.transaction():
            pass
    finally:
        dry.close()


def test_events_keep_exact_bytes_and_a_restored_delivery_moves_to_the_end(store: Store) -> None:
    raw = b'{"a":  1,\n "b": "\\u00e9"}\xff\x00'
    with store.transaction():
        store_events.insert_events(store, [_event(1, body=raw), _event(2), _event(3)])
    with store.transaction():  # a rejected delivery stored again replaces its row
        store_events.insert_events(store, [_event(1, body=raw, outcome="rejected", reason="x")])
    rows = list(store_inbox.iter_deliveries(store))
    assert [r.delivery_id for r in rows] == ["d0002", "d0003", "d0001"]
    assert rows[-1].body == raw and rows[-1].outcome == "rejected"
    assert rows[0].headers == {"Stripe-Signature": "t=1,v1=x"}
    assert store_events.known_deliveries(store, ["d0001", "d0009"]) == {"d0001": ("rejected", "x")}
    assert store_events.accepted_event_ids(store, ["evt_1", "evt_2", "evt_9"]) == {"evt_2"}
    assert store_inbox.count_by_event(store) == {"evt_2": 1, "evt_3": 1}
    assert [r.delivery_id for r in store_inbox.iter_deliveries(store, outcomes=["rejected"])] == ["d0001"]
    assert len(list(store_inbox.iter_deliveries(store, since=101))) == 0


def test_json_text_columns_keep_their_exact_text(store: Store) -> None:
    meta = '{"user_id":  "u_1", "note": "caf\\u00e9 \u00e9 \U0001f600"}'
    with store.transaction():
        store_mirror.put_rows(store, "subscriptions", [
            {"id": "sub_1", "customer": "cus_1", "metadata": meta, "items": "[]", "quantity": 2**62}
        ])
        store_mirror.put_rows(store, "subscriptions", [{"id": "sub_1", "status": "active"}])
    row = store_mirror.get_row(store, "subscriptions", "sub_1")
    assert row is not None
    assert row["metadata"] == meta and row["quantity"] == 2**62 and row["status"] == "active"
    assert store_mirror.get_rows(store, "subscriptions", ["sub_1", "sub_2"]).keys() == {"sub_1"}


def test_newest_invoice_per_subscription(store: Store) -> None:
    rng = random.Random(5)
    rows = [
        {
            "id": f"in_{rng.randrange(10**6):06d}_{n}",
            "subscription": f"sub_{n % 37}",
            "status": rng.choice(["paid", "open"]),
            "attempt_count": rng.randrange(4),
            "last_event_created": rng.choice([None, 5, 5, 7, 1_800_000_000]),
        }
        for n in range(300)
    ]
    with store.transaction():
        store_mirror.put_rows(store, "invoices", rows)
    subs = sorted({r["subscription"] for r in rows})
    picked = store_mirror.newest_invoices_for_subscriptions(store, subs)
    expected = latest_invoices(store_mirror.invoices_for_subscriptions(store, subs))
    assert {r["subscription"]: r["id"] for r in picked} == {s: r["id"] for s, r in expected.items()}
    assert set(picked[0]) == {c.strip() for c in store_mirror.REPORT_INVOICE_COLUMNS.split(",")}


def test_snapshots_newest_wins_and_deletes(store: Store) -> None:
    with store.transaction():
        store_mirror.put_rows(store, "subscriptions", [
            {"id": "sub_ev", "status": "canceled", "last_event_id": "evt_1", "last_event_created": 50},
            {"id": "sub_old", "status": "active", "last_event_id": "evt_2", "last_event_created": 10},
        ])
    with store.transaction():
        out = store_sync.apply_subscription_snapshots(
            store,
            [{"id": "sub_ev", "status": "active"}, {"id": "sub_old", "status": "past_due"},
             {"id": "sub_new", "status": "active"}],
            snapshot_at=50, event_id="sync:1", source="sync", now=60,
        )
    assert out.skipped_newer == ["sub_ev"] and out.updated == ["sub_old"] and out.created == ["sub_new"]
    assert store_sync.count_subscriptions(store) == 3
    assert sorted(r[0] for r in store_sync.iter_subscription_index(store)) == ["sub_ev", "sub_new", "sub_old"]
    with store.transaction():
        gone = store_sync.delete_subscriptions(store, ["sub_ev", "sub_old"], snapshot_at=50)
    assert gone == ["sub_old"]


def test_reconcile_runs_and_the_ledger(store: Store) -> None:
    with store.transaction():
        first = store_runs.record_run(store, {"started_at": 1, "counts": {"a": 1}, "exit_code": 1})
        second = store_runs.record_run(store, {"started_at": 2, "ignored": ["x"], "exit_code": 0})
    assert second == first + 1
    recent = store_runs.recent_runs(store)
    assert [r["id"] for r in recent] == [second, first]
    assert recent[1]["counts"] == {"a": 1} and recent[0]["ignored"] == ["x"]
    with store.transaction():
        store_ledger.insert(store, {"key": "k1", "operation": "op", "state": "pending", "created_at": 1})
        store_ledger.update(store, "k1", {"state": "succeeded", "object_id": "pi_1"})
    assert store_ledger.get(store, "k1")["object_id"] == "pi_1"  # type: ignore[index]
    assert [r["key"] for r in store_ledger.rows(store, state="succeeded")] == ["k1"]


def test_data_version_sees_other_connections_only(mirror_target: str) -> None:
    a, b = open_store(mirror_target), open_store(mirror_target)
    try:
        before = a.data_version()
        with a.transaction():
            a.meta_set("x", "1")
        assert a.data_version() == before
        with b.transaction():
            b.meta_set("x", "2")
        assert a.data_version() != before
    finally:
        a.close()
        b.close()


def test_leases_end_with_their_connection(mirror_target: str) -> None:
    a, b = open_store(mirror_target), open_store(mirror_target)
    try:
        if a.dialect == "sqlite":
            assert a.try_lease("k") is None  # the ledger falls back to expiry + pid
            return
        assert a.try_lease("k") is True
        assert a.try_lease("k") is True  # re-entrant for its holder
        assert b.try_lease("k") is False
        a.release_lease("k")
        assert b.try_lease("k") is True
        b.close()  # the holder's connection ends: the lease is free at once
        import time

        deadline = time.monotonic() + 5
        while not a.try_lease("k") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert a.try_lease("k") is True
    finally:
        a.close()
        b.close()


def _deliveries() -> list[Delivery]:
    history = f.lifecycle("sub_1ContractA0000000001", "cus_1ContractA001", shape="new") + f.lifecycle(
        "sub_1ContractB0000000001", "cus_1ContractB001", shape="old", user_id="user_b",
        failed_renewal=True, cancel=False,
    )
    envs = envelopes(history)
    envs = envs + envs[:3]  # duplicates
    return [Delivery(source=f"c:{i}", body=e["body"].encode(), headers=e["headers"],
                     received_at=e["received_at"]) for i, e in enumerate(envs)]


def test_replay_gives_identical_mirrors_on_both_engines(store: Store, tmp_path: Any) -> None:
    deliveries = _deliveries()
    report = replay(store, deliveries, ReplayOptions(secrets=[SECRET]), now=f.T0, chunk_size=4)
    assert report.summary["duplicate"] == 3
    reference = open_store(str(tmp_path / "ref.db"))
    try:
        replay(reference, deliveries, ReplayOptions(secrets=[SECRET]), now=f.T0, chunk_size=50)
        assert store_state(store) == store_state(reference)
        again = replay(store, deliveries, ReplayOptions(secrets=[SECRET]), now=f.T0, chunk_size=7)
        assert again.summary["duplicate"] == len(deliveries)
        assert store_state(store) == store_state(reference)
    finally:
        reference.close()


def test_a_nul_character_is_malformed_on_both_engines(store: Store) -> None:
    """PostgreSQL's text cannot hold NUL: such a delivery is refused on both
    engines (the same mirror either way), and still stored as it came."""
    cus = f.customer("cus_1NulChar0000001")
    cus["name"] = "a\x00b"
    good = f.event("customer.created", f.customer("cus_1NulChar0000002"), id="evt_nul_ok", created=f.T0)
    envs = envelopes([f.event("customer.created", cus, id="evt_nul", created=f.T0), good])
    deliveries = [Delivery(source="n", body=e["body"].encode(), headers=e["headers"],
                           received_at=e["received_at"]) for e in envs]
    report = replay(store, deliveries, ReplayOptions(secrets=[SECRET]), now=f.T0)
    assert report.summary["rejected"] == 1 and report.summary["applied"] == 1
    assert [r["id"] for r in store.query("SELECT id FROM customers")] == ["cus_1NulChar0000002"]
    stored = {d.event_id: d for d in store_inbox.iter_deliveries(store)}
    assert stored["evt_nul"].outcome == "rejected" and b"\\u0000" in stored["evt_nul"].body


def test_a_dropped_connection_is_replaced_before_the_next_write(mirror_target: str) -> None:
    """A server restart or failover: the next transaction and the next read
    use a new session instead of failing forever (a listener keeps serving)."""
    if not mirror_target.startswith("postgresql://"):
        return  # a file has no connection to lose
    a, b = open_store(mirror_target), open_store(mirror_target)
    try:
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        b.execute("SELECT pg_terminate_backend(?)", (pid,))
        import time

        time.sleep(0.2)
        with a.transaction():
            a.meta_set("after", "drop")
        assert b.meta_get("after") == "drop"
        pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
        b.execute("SELECT pg_terminate_backend(?)", (pid,))
        time.sleep(0.2)
        assert a.meta_get("after") == "drop"
    finally:
        a.close()
        b.close()


def test_checkout_links_pick_the_same_session_on_both_engines(store: Store) -> None:
    with store.transaction():
        store_mirror.put_rows(store, "checkout_sessions", [
            {"id": "cs_a", "subscription": "sub_1", "user_id": "u_null", "last_event_created": None},
            {"id": "cs_b", "subscription": "sub_1", "user_id": "u_old", "last_event_created": 5},
            {"id": "cs_c", "subscription": "sub_1", "user_id": "u_tie_c", "last_event_created": 9},
            {"id": "cs_d", "subscription": "sub_1", "user_id": "u_tie_d", "last_event_created": 9},
            {"id": "cs_e", "subscription": "sub_2", "user_id": "u_only_null", "last_event_created": None},
            {"id": "cs_f", "subscription": "sub_3", "user_id": None, "last_event_created": 9},
        ])
    assert store_mirror.checkout_link(store, "sub_1") == ("u_tie_d", None)
    assert store_mirror.checkout_link(store, "sub_2") == ("u_only_null", None)
    assert store_mirror.checkout_link(store, "sub_3") is None
    links = store_mirror.checkout_links(store, ["sub_1", "sub_2", "sub_3", "sub_9"])
    assert links == {"sub_1": ("u_tie_d", None), "sub_2": ("u_only_null", None)}


def test_named_writers_exclude_only_the_same_names(mirror_target: str) -> None:
    """PostgreSQL: replay chunks naming other objects commit side by side;
    one naming the same object, or an unnamed writer, waits. (SQLite: every
    writer waits for the file's one write lock.)"""
    import threading

    a = open_store(mirror_target)
    done: list[str] = []

    def write(names: list[str] | None, label: str) -> None:
        b = open_store(mirror_target)  # its own connection, in its own thread
        try:
            with b.transaction(names):
                b.meta_set(label, "1")
            done.append(label)
        finally:
            b.close()

    try:
        with a.transaction(["o:subscriptions:sub_1"]):
            a.meta_set("held", "1")

            other = threading.Thread(target=write, args=(["o:subscriptions:sub_2"], "other"))
            other.start()
            other.join(timeout=3)
            if a.concurrent_writers:
                assert done == ["other"], "a writer of another object had to wait"
            else:
                assert done == []
            same = threading.Thread(target=write, args=(["o:subscriptions:sub_1"], "same"))
            same.start()
            same.join(timeout=0.5)
            assert "same" not in done, "a writer of the same object did not wait"
        same.join(timeout=10)
        other.join(timeout=10)
        assert set(done) == {"other", "same"}
        with a.transaction(["o:x"]):
            unnamed = threading.Thread(target=write, args=(None, "unnamed"))
            unnamed.start()
            unnamed.join(timeout=0.5)
            assert "unnamed" not in done, "an unnamed writer ran beside a named one"
        unnamed.join(timeout=10)
        assert "unnamed" in done
    finally:
        a.close()


def test_a_failing_write_batch_rolls_the_transaction_back(store: Store) -> None:
    with pytest.raises(StoreError), store.transaction(), store.write_batch():
        store_events.insert_events(store, [_event(1)])
        store.execute("INSERT INTO no_such_table VALUES (1)")
    assert not store_events.any_events(store)
    with store.transaction(), store.write_batch():
        store_events.insert_events(store, [_event(2)])
        store.meta_set("after", "batch")
    assert store_events.event_counts(store) == {"applied": 1} and store.meta_get("after") == "batch"

