"""Events from the corpus's example objects, replayed on either path (tests/test_replay_*.py)."""

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
