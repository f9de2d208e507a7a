"""How fast `stripectl history ID` answers on a mirror of many deliveries.

    python bench/history.py                 # 1,000,000 deliveries
    python bench/history.py --n 200000      # quicker
    python bench/history.py --keep          # keep the temp mirror

Builds a mirror directly through the store (synthetic small bodies: the
query cost does not depend on body size, the file size does): N deliveries
over N/10 subscriptions (each with its customer, an invoice and a checkout
session; ~1% of deliveries rejected, stored without ids as replay stores
them). Then, for a sample of subscriptions, customers and users, times:

- the history service in-process (the queries plus building the sections);
- `stripectl history ID --json` end to end as a subprocess;
- the history index's catch-up (store/history.py), which history pays
  instead of replay: once over the whole mirror, then after 10,000 new ones;
- finding one subscription's deliveries by a scan of events instead, and
  the ratio.

Figures only; no threshold is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stripectl.services.history import history  # noqa: E402
from stripectl.store import open_store  # noqa: E402
from stripectl.store.events import EventRow, insert_events  # noqa: E402
from stripectl.store.mirror import put_rows  # noqa: E402

T0 = 1793491200
STATUSES = ["incomplete", "active", "past_due", "active", "canceled"]


def _body(evt_id: str, typ: str, obj: dict[str, object], prev: dict[str, object] | None) -> bytes:
    data: dict[str, object] = {"object": obj}
    if prev:
        data["previous_attributes"] = prev
    return json.dumps({"id": evt_id, "object": "event", "type": typ, "created": obj.get("created", T0),
                       "data": data, "livemode": False}, separators=(",", ":")).encode()


def build(path: str, n: int) -> dict[str, list[str]]:
    store = open_store(path)
    subs = max(1, n // 10)
    picks: dict[str, list[str]] = {"subscription": [], "customer": [], "user": []}
    batch: list[EventRow] = []
    tables = ("subscriptions", "invoices", "checkout_sessions", "customers")
    mirror: dict[str, list[dict[str, object]]] = {t: [] for t in tables}
    rnd = random.Random(7)
    k = 0

    def flush() -> None:
        with store.transaction():
            insert_events(store, batch)
            for table, rows in mirror.items():
                if rows:
                    put_rows(store, table, rows)
        batch.clear()
        for rows in mirror.values():
            rows.clear()

    for s in range(subs):
        sid, cus, user, inv, cs = (f"sub_b{s:08d}", f"cus_b{s:08d}", f"user_b{s:08d}", f"in_b{s:08d}",
                                   f"cs_test_b{s:08d}")
        if s % max(1, subs // 50) == 0:
            picks["subscription"].append(sid)
            picks["customer"].append(cus)
            picks["user"].append(user)
        t = T0 + s
        status = "active"
        for j in range(10):
            k += 1
            eid = f"evt_b{k:09d}"
            if j == 0:
                typ, oid, obj, prev = ("checkout.session.completed", cs,
                                       {"id": cs, "status": "complete", "subscription": sid}, None)
            elif j in (4, 8):
                obj = {"id": inv, "status": "paid", "subscription": sid}
                typ, oid, prev = "invoice.paid", inv, {"status": "open"}
            else:
                new = STATUSES[j % len(STATUSES)]
                typ, oid = "customer.subscription.updated", sid
                obj, prev = {"id": sid, "status": new, "customer": cus}, {"status": status}
                status = new
            rejected = rnd.random() < 0.01
            body = _body(eid, typ, obj, prev)
            batch.append(EventRow(
                delivery_id=f"d{k:012d}", event_id=None if rejected else eid, type=None if rejected else typ,
                created=None if rejected else t + j, livemode=0, object_id=None if rejected else oid,
                api_version="2026-10-28.endive", source=f"bench.jsonl:{k}", received_at=t + j + 1,
                headers="{}", body=body, verified=0 if rejected else 1,
                outcome="rejected" if rejected else "applied", reason="bad_signature" if rejected else None,
                note=None, run_id="bench", stored_at=t + j + 2,
            ))
        mirror["subscriptions"].append({"id": sid, "customer": cus, "status": status, "user_id": user,
                                        "last_event_id": eid, "last_event_created": t + 9,
                                        "last_event_type": "customer.subscription.updated",
                                        "source": "webhook"})
        mirror["invoices"].append({"id": inv, "customer": cus, "subscription": sid, "status": "paid",
                                   "last_event_created": t + 8})
        mirror["checkout_sessions"].append({"id": cs, "customer": cus, "subscription": sid, "user_id": user,
                                            "status": "complete", "last_event_created": t})
        mirror["customers"].append({"id": cus, "metadata": json.dumps({"user_id": user}),
                                    "last_event_created": t})
        if len(batch) >= 20_000:
            flush()
    flush()
    store.close()
    return picks


def time_service(path: str, ids: list[str]) -> list[float]:
    store = open_store(path)
    out = []
    try:
        for i in ids:
            t = time.perf_counter()
            h = history(store, i)
            out.append(time.perf_counter() - t)
            assert h.known, i
    finally:
        store.close()
    return out


def time_cli(path: str, ids: list[str]) -> list[float]:
    out = []
    for i in ids:
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "stripectl", "history", i, "--db", path, "--json"],
                             capture_output=True, cwd=ROOT, check=False)
        out.append(time.perf_counter() - t)
        assert res.returncode == 0, res.stderr[-500:]
    return out


def catch_up_cost(path: str) -> None:
    """The history index's cost, paid by history (not by replay): the first
    catch-up over the whole mirror, and one after 10,000 new deliveries."""
    from stripectl.store.history import catch_up

    store = open_store(path)
    try:
        t = time.perf_counter()
        n = catch_up(store)
        first = time.perf_counter() - t
        with store.transaction():
            insert_events(store, [EventRow(
                delivery_id=f"late{k:09d}", event_id=f"evt_late{k:09d}",
                type="customer.subscription.updated", created=T0 + k, livemode=0,
                object_id=f"sub_b{k % 1000:08d}", api_version="2026-10-28.endive",
                source="late.jsonl", received_at=T0 + k, headers="{}", body=b"{}", verified=1,
                outcome="applied", reason=None, note=None, run_id="late", stored_at=T0 + k,
            ) for k in range(10_000)])
        t = time.perf_counter()
        m = catch_up(store)
        later = time.perf_counter() - t
    finally:
        store.close()
    print(f"history index catch-up (paid by history, not replay): first {n:,} deliveries in "
          f"{first:.1f} s ({first / max(n, 1) * 1e6:.1f} us each, once); {m:,} new ones later in "
          f"{later * 1000:.0f} ms")


def scan_for(path: str, ids: list[str]) -> list[float]:
    """What finding one subscription's deliveries costs without an index (a scan)."""
    import sqlite3

    conn = sqlite3.connect(path)
    out = []
    for i in ids:
        t = time.perf_counter()
        conn.execute("SELECT delivery_id FROM events NOT INDEXED WHERE object_id = ?", (i,)).fetchall()
        out.append(time.perf_counter() - t)
    conn.close()
    return out


def ms(values: list[float]) -> str:
    med, lo, hi = statistics.median(values) * 1000, min(values) * 1000, max(values) * 1000
    return f"median {med:.1f} ms (min {lo:.1f}, max {hi:.1f}, n={len(values)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000, help="deliveries in the mirror")
    ap.add_argument("--sample", type=int, default=20, help="subjects timed per kind")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="stripectl-history-bench-")
    path = os.path.join(tmp, "mirror.db")
    try:
        t = time.perf_counter()
        picks = build(path, args.n)
        built = time.perf_counter() - t
        size = os.path.getsize(path) / 1e6
        print(f"mirror: {args.n:,} deliveries, {args.n // 10:,} subscriptions, {size:,.0f} MB, "
              f"built in {built:.1f} s")
        catch_up_cost(path)
        rnd = random.Random(1)
        sample = {kind: rnd.sample(ids, min(args.sample, len(ids))) for kind, ids in picks.items()}
        indexed: dict[str, list[float]] = {}
        for kind, ids in sample.items():
            time_service(path, ids[:2])  # warm the page cache
            indexed[kind] = time_service(path, ids)
            print(f"history {kind:<12} in-process: {ms(indexed[kind])}")
        cli = time_cli(path, sample["subscription"][:5])
        print(f"stripectl history sub_... --json, end to end: {ms(cli)}")
        scan = scan_for(path, sample["subscription"][:3])
        ratio = statistics.median(scan) / statistics.median(indexed["subscription"])
        print(f"one subscription's deliveries by a scan of events instead: {ms(scan)} "
              f"-> the whole indexed history is {ratio:,.0f}x faster")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
