"""Benchmark: `stripectl sync` then `stripectl reconcile` vs a bare auto-paging loop.

    python bench/reconcile.py                 # N = 10,000 and 100,000
    python bench/reconcile.py --n 20000       # one size
    python bench/reconcile.py --drift-every 50
    python bench/reconcile.py --db postgresql://...   # each size on SQLite, then on PostgreSQL

A local fake (bench/subscriptions_server.py, its own process) serves N
current-shape subscriptions paging like Stripe. Every measured step runs as a
subprocess, timed end to end (interpreter start included) with its peak RSS
from os.wait4; request counts come from the server:

1. bare: `for s in client.v1.subscriptions.list({status: all, limit: 100})
   .auto_paging_iter(): n += 1` (stripe-python only; run before and after,
   the faster run is the baseline);
2. `stripectl sync` into a fresh mirror;
3. Stripe-side drift is injected (every K-th canceled, every K-th quantity+1);
4. `stripectl reconcile --json` (exit 1: drift found).

Targets: requests = ceil(N/100) + 0 for sync and reconcile; reconcile within
2x the bare loop at N = 100,000; reconcile peak RSS < 250 MB. Exit 1 if any
target fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk_test_stripectl_bench_0000"
SPEED_TARGET = 2.0
MEMORY_TARGET_MB = 250.0

BARE = """
import json, sys, time, stripe
c = stripe.StripeClient(sys.argv[1], base_addresses={"api": sys.argv[2]})
t = time.perf_counter()
n = 0
for s in c.v1.subscriptions.list({"status": "all", "limit": 100}).auto_paging_iter():
    n += 1
print(json.dumps({"count": n, "inner_seconds": time.perf_counter() - t}))
"""


def _stripectl() -> list[str]:
    exe = shutil.which("stripectl", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "stripectl"]


def _requests(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_bench/stats") as resp:
        return int(json.loads(resp.read())["requests"])


def timed(cmd: list[str], url: str, workdir: Path, name: str) -> dict[str, Any]:
    """Run one child; wall time, exit code, peak RSS (wait4) and requests it made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "STRIPECTL"))}
    before = _requests(url)
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    rc = os.waitstatus_to_exitcode(status)
    try:
        data = json.loads(out.read_bytes() or b"null")
    except ValueError:
        data = None
    return {"seconds": elapsed, "rc": rc, "maxrss_mb": usage.ru_maxrss / 1024,
            "requests": _requests(url) - before, "json": data,
            "stderr": err.read_text(errors="replace")[-500:]}


def run(n: int, drift_every: int, workdir: Path, pg_url: str | None = None) -> list[tuple[str, bool]]:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "subscriptions_server.py"), str(n), "--latency", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        url = f"http://127.0.0.1:{port}"
        db: Path | str = workdir / f"mirror_{n}.db"
        head = _stripectl()
        if pg_url is not None:  # a new schema of that database per run
            db, schema = pg_url, f"bench_rec_{os.getpid()}_{n}"
            head = [*head, "--schema", schema]
        common = ["--api-key", KEY, "--api-base", url, "--db", str(db), "--json"]
        bare1 = timed([sys.executable, "-c", BARE, KEY, url], url, workdir, "bare1")
        sync = timed([*head, "sync", *common], url, workdir, "sync")
        with urllib.request.urlopen(
            urllib.request.Request(f"{url}/_bench/drift?every={drift_every}", method="POST")
        ) as resp:
            injected = json.loads(resp.read())
        rec = timed([*head, "reconcile", *common], url, workdir, "reconcile")
        bare2 = timed([sys.executable, "-c", BARE, KEY, url], url, workdir, "bare2")
    finally:
        server.terminate()
        server.wait(timeout=10)
        if pg_url is not None:
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    bare = min(bare1, bare2, key=lambda r: r["seconds"])
    pages = max(1, math.ceil(n / 100))
    summary = (rec["json"] or {}).get("summary", {})
    synced = (sync["json"] or {}).get("summary", {})
    engine = "PostgreSQL" if pg_url else "SQLite"
    print(f"\n== N = {n:,} subscriptions ({pages:,} pages of 100), mirror on {engine} ==")
    print(f"bare auto_paging_iter : {bare['seconds']:7.2f} s  requests {bare['requests']:>6}  "
          f"peak RSS {bare['maxrss_mb']:6.1f} MB  (count {(bare['json'] or {}).get('count')}; "
          f"other run {max(bare1['seconds'], bare2['seconds']):.2f} s)")
    print(f"stripectl sync        : {sync['seconds']:7.2f} s  requests {sync['requests']:>6}  "
          f"peak RSS {sync['maxrss_mb']:6.1f} MB  rc {sync['rc']}  created {synced.get('created')}")
    print(f"stripectl reconcile   : {rec['seconds']:7.2f} s  requests {rec['requests']:>6}  "
          f"peak RSS {rec['maxrss_mb']:6.1f} MB  rc {rec['rc']}  drift {summary.get('drift')} "
          f"({summary.get('by_kind')}) injected {injected}")
    ratio = rec["seconds"] / bare["seconds"]
    print(f"reconcile / bare loop : {ratio:.2f}x   sync / bare loop: "
          f"{sync['seconds'] / bare['seconds']:.2f}x")
    expected_drift = 2 * injected["canceled"] + injected["quantity"]  # status+access, quantity
    checks = [
        (f"sync requests == ceil(N/100) = {pages}", sync["requests"] == pages),
        (f"reconcile requests == ceil(N/100) = {pages}", rec["requests"] == pages),
        ("sync exit 0, every subscription created",
         sync["rc"] == 0 and synced.get("created") == n),
        (f"reconcile exit 1 with the {expected_drift} injected findings",
         rec["rc"] == 1 and summary.get("drift") == expected_drift),
        (f"reconcile peak RSS < {MEMORY_TARGET_MB:.0f} MB", rec["maxrss_mb"] < MEMORY_TARGET_MB),
    ]
    if n >= 100_000:
        checks.append((f"reconcile <= {SPEED_TARGET:.0f}x bare loop", ratio <= SPEED_TARGET))
    for name, ok in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    for r, label in ((sync, "sync"), (rec, "reconcile")):
        if r["rc"] not in (0, 1):
            print(f"  {label} stderr: {r['stderr']}")
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append",
                        help="subscriptions served (repeatable; default 10000 and 100000)")
    parser.add_argument("--drift-every", type=int, default=100,
                        help="cancel every K-th subscription in Stripe before reconcile")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--db", default=None, metavar="postgresql://...",
                        help="also run every size with the mirror on this PostgreSQL database")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="stripectl-bench-reconcile-"))
    results: list[tuple[str, bool]] = []
    try:
        for n in args.n or [10_000, 100_000]:
            results.extend(run(n, args.drift_every, workdir))
            if args.db:
                results.extend(run(n, args.drift_every, workdir, pg_url=args.db))
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if all(ok for _, ok in results) else 1)


if __name__ == "__main__":
    main()
