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
- the cost of the events.object_id index for replay: the same 3 KB rows
  inserted into a fresh mirror with and without it (us per delivery);
- the same service calls with migration v4's indexes dropped (what a
  history would cost without them), and prints the ratio (rejected_refs, the
  small table of ids in rejected bodies, stays).

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


def drop_v4_indexes(path: str) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND ("
        "name = 'idx_events_object_id' OR name = 'idx_invoices_customer' "
        "OR name LIKE 'idx_checkout_sessions_customer' OR name = 'idx_checkout_sessions_user_id' "
        "OR name = 'idx_checkout_sessions_client_reference_id' OR name = 'idx_payment_intents_customer')"
    ).fetchall():
        conn.execute(f"DROP INDEX {name}")
    conn.commit()
    conn.close()


def insert_cost(tmp: str, n: int = 60_000, rounds: int = 3) -> None:
    """What the events.object_id index costs replay: the same rows inserted
    (chunks of 3,000, as replay commits) into a fresh mirror with and without it."""

    rows = [EventRow(
        delivery_id=f"x{k:012d}", event_id=f"evt_x{k:09d}", type="customer.subscription.updated",
        created=T0 + k, livemode=0, object_id=f"sub_x{(k * 7919) % (n // 10):08d}",
        api_version="2026-10-28.endive", source=f"f.jsonl:{k}", received_at=T0 + k, headers="{}",
        body=b"x" * 3000, verified=1, outcome="applied", reason=None, note=None, run_id="r",
        stored_at=T0 + k,
    ) for k in range(n)]
    per_row: dict[str, list[float]] = {"with the index": [], "without": []}
    for r in range(rounds):
        for label in per_row:
            path = os.path.join(tmp, f"ins-{r}-{label[:4]}.db")
            store = open_store(path)
            if label == "without":
                store.conn.execute("DROP INDEX idx_events_object_id")
            t = time.perf_counter()
            for start in range(0, n, 3000):
                with store.transaction():
                    insert_events(store, rows[start : start + 3000])
            per_row[label].append((time.perf_counter() - t) / n * 1e6)
            store.close()
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
    best = {k: min(v) for k, v in per_row.items()}
    print(f"insert {n:,} deliveries of 3 KB (best of {rounds}): "
          + ", ".join(f"{k} {v:.1f} us/delivery" for k, v in best.items())
          + f"; the index costs {best['with the index'] - best['without']:+.1f} us/delivery")


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f}, n={len(values)})"  # noqa: E501


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000, help="deliveries in the mirror")
    ap.add_argument("--sample", type=int, default=20, help="subjects timed per kind")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--insert-n", type=int, default=60_000,
                    help="deliveries for the index's insert cost (0: skip)")
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
        rnd = random.Random(1)
        sample = {kind: rnd.sample(ids, min(args.sample, len(ids))) for kind, ids in picks.items()}
        with_index: dict[str, list[float]] = {}
        for kind, ids in sample.items():
            time_service(path, ids[:2])  # warm the page cache
            with_index[kind] = time_service(path, ids)
            print(f"history {kind:<12} in-process, indexed: {ms(with_index[kind])}")
        cli = time_cli(path, sample["subscription"][:5])
        print(f"stripectl history sub_... --json, end to end: {ms(cli)}")
        drop_v4_indexes(path)
        if args.insert_n:
            insert_cost(tmp, args.insert_n)
        for kind, ids in sample.items():
            # open_store would re-create the indexes (migration v4 is recorded as done,
            # so it does not): a scan per query from here on.
            slow = time_service(path, ids[:3])
            ratio = statistics.median(slow) / statistics.median(with_index[kind])
            print(f"history {kind:<12} without the v4 indexes: {ms(slow)}  -> indexes {ratio:,.0f}x faster")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
