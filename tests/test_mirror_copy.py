"""`stripectl mirror copy`: SQLite -> PostgreSQL -> SQLite gives the same mirror."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from stripectl.services.replay import ReplayOptions, replay
from stripectl.store import ledger as store_ledger
from stripectl.store import open_store
from stripectl.store import runs as store_runs
from stripectl.store.copy import data_tables, summarise
from stripectl.webhooks.delivery import Delivery
from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, run


def _filled_mirror(path: Path) -> None:
    envs = envelopes(f.lifecycle("sub_1CopyA000000000000001", "cus_1CopyA00000001"))
    store = open_store(str(path))
    try:
        deliveries = [Delivery(source=f"x:{i}", body=e["body"].encode(), headers=e["headers"],
                               received_at=e["received_at"]) for i, e in enumerate(envs)]
        # A delivery whose body is not UTF-8 and one rejected: the inbox keeps both as they came.
        deliveries.append(Delivery(source="bad", body=b"\xff\xfe{", headers={}, received_at=5))
        replay(store, deliveries + deliveries[:2], ReplayOptions(secrets=[SECRET]), now=f.T0)
        with store.transaction():
            store_runs.record_run(store, {"started_at": 7, "counts": {"status": 2}, "exit_code": 1})
            store_runs.record_run(store, {"started_at": 8, "exit_code": 0})
            store_ledger.insert(store, {"key": "stripectl:pi:abc", "operation": "payment_intent.create",
                                        "params": '{"amount":1500}', "state": "succeeded",
                                        "object_id": "pi_1", "created_at": 3})
    finally:
        store.close()


def _dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        # Events in insertion order (the inbox's order); other tables as sets.
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() if t == "events"
            else sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    finally:
        conn.close()


def test_sqlite_to_postgres_and_back_is_exact(tmp_path: Path, pg_url: str) -> None:
    src, back = tmp_path / "src.db", tmp_path / "back.db"
    _filled_mirror(src)
    result = run("mirror", "copy", str(src), pg_url, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["verified"] is True
    counts = {t["table"]: t["rows"] for t in out["tables"]}
    stored = sqlite3.connect(src).execute("SELECT count(*) FROM events").fetchone()[0]
    assert counts["events"] == stored > 10
    assert counts["reconcile_runs"] == 2 and counts["idempotency_keys"] == 1
    pg = open_store(pg_url)
    try:
        assert {s.table: (s.rows, s.hex) for s in summarise(pg, data_tables(pg))} == {
            t["table"]: (t["rows"], t["checksum"]) for t in out["tables"]
        }
        # The identity column goes on after the copied ids.
        with pg.transaction():
            assert store_runs.record_run(pg, {"started_at": 9}) == 3
        with pg.transaction():
            pg.execute("DELETE FROM reconcile_runs WHERE id = 3")
    finally:
        pg.close()
    result = run("mirror", "copy", pg_url, str(back))
    assert result.exit_code == 0, result.output
    assert "verified" in result.stdout
    assert _dump(back) == _dump(src)


def test_a_destination_with_rows_is_refused(tmp_path: Path, pg_url: str) -> None:
    src = tmp_path / "src.db"
    _filled_mirror(src)
    assert run("mirror", "copy", str(src), pg_url).exit_code == 0
    result = run("mirror", "copy", str(src), pg_url)
    assert result.exit_code == 6
    assert "not empty" in result.stderr
    assert run("mirror", "copy", str(tmp_path / "nothing.db"), str(tmp_path / "d.db")).exit_code == 2
    assert not (tmp_path / "nothing.db").exists()


def test_copy_into_another_schema_of_the_same_database(tmp_path: Path, pg_url: str) -> None:
    src = tmp_path / "src.db"
    _filled_mirror(src)
    assert run("mirror", "copy", str(src), pg_url).exit_code == 0
    result = run("mirror", "copy", pg_url, pg_url, "--dst-schema", "team_b", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verified"] is True
    assert run("mirror", "copy", pg_url, pg_url).exit_code == 2  # the same mirror


def test_dst_alone_copies_the_db_mirror(tmp_path: Path, pg_url: str) -> None:
    src = tmp_path / "src.db"
    _filled_mirror(src)
    result = run("mirror", "copy", pg_url, "--db", str(src), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"] == str(src)
    assert run("mirror", "copy", "a", "b", "c").exit_code == 2
