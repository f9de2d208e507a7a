"""The SQL pick of each subscription's newest invoice agrees with the Python one."""

from __future__ import annotations

import random
from pathlib import Path

from stripectl.services.subscription_report import latest_invoices
from stripectl.store import mirror as store_mirror
from stripectl.store import open_store


def test_newest_invoice_per_subscription_matches_latest_invoices(tmp_path: Path) -> None:
    rng = random.Random(5)
    rows = []
    for n in range(400):
        rows.append(
            {
                "id": f"in_{rng.randrange(10**6):06d}_{n}",
                "subscription": f"sub_{n % 37}",
                "status": rng.choice(["paid", "open"]),
                "attempt_count": rng.randrange(4),
                # ties and NULLs on purpose: the id decides then
                "last_event_created": rng.choice([None, 5, 5, 7, 1_800_000_000, 1_800_000_001]),
            }
        )
    store = open_store(str(tmp_path / "m.db"))
    try:
        with store.transaction():
            store_mirror.put_rows(store, "invoices", rows)
        subs = sorted({r["subscription"] for r in rows})
        picked = store_mirror.newest_invoices_for_subscriptions(store, subs)
        expected = latest_invoices(store_mirror.invoices_for_subscriptions(store, subs))
    finally:
        store.close()
    assert {r["subscription"]: r["id"] for r in picked} == {s: r["id"] for s, r in expected.items()}
    assert set(picked[0]) == {c.strip() for c in store_mirror.REPORT_INVOICE_COLUMNS.split(",")}
