"""`webhook listen` answers 200 to legitimate deliveries it does not apply (issue 10)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stripectl.services.listener import Listener, ListenerConfig
from tests import corpus_helpers as c
from tests import factories as f
from tests.listen_helpers import post, signed


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    lst = Listener(
        ListenerConfig(db_path=str(tmp_path / "m.db"), secrets=[c.SECRET], port=0, max_body=256 * 1024),
        lambda line: None,
    )
    lst.start()
    try:
        yield lst
    finally:
        lst.stop()


def _post(lst: Listener, event: dict[str, object]) -> tuple[int, dict[str, object]]:
    body, headers = signed(event, secret=c.SECRET)
    status, answer = post(lst.url, body, headers)
    return status, json.loads(answer)


def test_live_connect_endpoint_answers_200_to_test_events_and_thin_events(listener: Listener) -> None:
    now = int(time.time())
    live = f.event("customer.created", f.customer("cus_live1", livemode=True), id="evt_live1", created=now)
    test = f.event("customer.updated", f.customer("cus_live1"), id="evt_test1", created=now + 1)
    test["account"] = "acct_1Connected"
    balance = next(s for s in c.openapi_snapshots() if s["date"].startswith("2026"))["resources"]["balance"]
    no_id = f.event("balance.available", balance, id="evt_bal1", created=now + 2, livemode=False)
    thin = {
        "id": "evt_test_thin1",
        "object": "v2.core.event",
        "type": "v1.billing.meter.error_report_triggered",
        "livemode": False,
        "created": "2026-12-01T00:00:00.000Z",
        "related_object": {
            "id": "mtr_test_1",
            "type": "billing.meter",
            "url": "/v1/billing/meters/mtr_test_1",
        },
    }
    answers = [_post(listener, e) for e in (live, test, no_id, thin)]
    assert [(s, a["outcome"], a["reason"]) for s, a in answers] == [
        (200, "applied", None),
        (200, "ignored", "test_mode_event"),
        (200, "ignored", "test_mode_event"),
        (200, "ignored", "thin_event"),
    ]
    conn = sqlite3.connect(listener.config.db_path)
    try:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (4,)
        assert conn.execute("SELECT livemode FROM customers").fetchall() == [(1,)]
    finally:
        conn.close()
