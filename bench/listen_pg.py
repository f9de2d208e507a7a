"""Benchmark: `stripectl webhook listen` throughput, 1 and 4 receivers on one PostgreSQL mirror.

    python bench/listen_pg.py --db postgresql://user@host/db          # 1 and 4 receivers on PG
    python bench/listen_pg.py --db postgresql://... --n 8000 --clients 32

(bench/listen.py measures one receiver's latency and durability on SQLite.)

Each receiver is a real `stripectl webhook listen` process. --clients threads
post the deliveries of bench/_gen.py (each to the next receiver in turn, a
new connection per request, as Stripe does) and count 200s; the figure is
acknowledged deliveries per second, wall clock, from the first request to
the last answer. Every delivery is acknowledged only once it is committed
to the mirror, so this is the mirror's write throughput under concurrent
receivers. SQLite with one receiver is printed for reference. No target:
figures only (the clients share this machine's cores with the receivers).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _gen  # noqa: E402


def _start(db: str, schema: str | None, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    cmd = [sys.executable, "-m", "stripectl", *(["--schema", schema] if schema else []),
           "webhook", "listen", "--port", "0", "--db", db, "--secret", _gen.SECRET,
           "--tolerance", str(10**9), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log.open("wb"), cwd=ROOT)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not first:
        raise RuntimeError(log.read_text())
    out = proc.stdout
    threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
    return proc, int(json.loads(first)["port"])


def _post(port: int, body: bytes, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/webhooks/stripe", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def measure(db: str, schema: str | None, receivers: int, deliveries: list[tuple[bytes, str]],
            clients: int, workdir: Path) -> dict[str, Any]:
    procs = [_start(db, schema, workdir / f"listen{i}.err") for i in range(receivers)]
    ports = [p for _, p in procs]
    work: queue.Queue[tuple[int, bytes, str]] = queue.Queue()
    for n, (body, header) in enumerate(deliveries):
        work.put((n, body, header))
    acked = [0] * clients
    failed = [0] * clients

    def client(k: int) -> None:
        while True:
            try:
                n, body, header = work.get_nowait()
            except queue.Empty:
                return
            for attempt in range(10):
                try:
                    status = _post(ports[(n + attempt) % len(ports)], body,
                                   {"Stripe-Signature": header, "Content-Type": "application/json"})
                except OSError:
                    status = 0
                if status == 200:
                    acked[k] += 1
                    break
                time.sleep(0.05)
            else:
                failed[k] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    for proc, _ in procs:
        proc.terminate()
    for proc, _ in procs:
        proc.wait(timeout=30)
    return {"seconds": elapsed, "acked": sum(acked), "failed": sum(failed)}


def _drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", required=True, metavar="postgresql://...", help="PostgreSQL database")
    ap.add_argument("--n", type=int, default=4000, help="deliveries per measurement")
    ap.add_argument("--clients", type=int, default=16, help="concurrent posting threads")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="stripectl-bench-listen-"))
    path = workdir / "d.jsonl"
    _gen.write_deliveries(path, args.n, sample=0)
    deliveries = []
    for line in path.open():
        env = json.loads(line)
        deliveries.append((env["body"].encode(), env["headers"]["Stripe-Signature"]))
    print(f"{args.n:,} deliveries, {args.clients} client threads, new connection per request")
    failed = False
    runs = [("SQLite", 1), ("PostgreSQL", 1), ("PostgreSQL", 4)]
    for engine, receivers in runs:
        if engine == "SQLite":
            db, schema = str(workdir / f"m{receivers}.db"), None
        else:
            db, schema = args.db, f"bench_listen_{os.getpid()}_{receivers}"
        try:
            r = measure(db, schema, receivers, deliveries, args.clients, workdir)
        finally:
            if schema:
                _drop(args.db, schema)
        failed |= r["failed"] > 0 or r["acked"] != args.n
        print(f"{engine:<10} x{receivers} receiver{'s' if receivers > 1 else ' '}: "
              f"{r['acked'] / r['seconds']:7,.0f} acknowledged deliveries/s "
              f"({r['acked']:,} in {r['seconds']:.2f}s, {r['failed']} never acknowledged)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
