"""Benchmark: `stripectl webhook listen` under 8, 32 and 128 concurrent clients.

    python bench/listen.py                  # default: 4,000 requests per level
    python bench/listen.py --requests 1000  # quick run

Prints, for each level: requests, throughput, latency p50/p99/max (connect to
last byte of the answer), unanswered (timeouts, resets) and non-2xx answers.
Then: fdatasync/fsync calls per acknowledgement (the listener run under
`strace -f`, if strace can trace here), and throughput with durability on
(synchronous=FULL: every 2xx is on disk) against off (synchronous=NORMAL,
as before: a power cut could lose acknowledged deliveries).

Every client opens a connection per delivery, as Stripe does, on loopback only
(127.0.0.1); every delivery is a distinct signed event (~3 KB bodies from
bench/_gen.py's templates, signed just before sending). The listener is a
subprocess; the load generator is this process (asyncio). Targets (2-core
machine): 128 clients p99 < 250 ms, 0 unanswered, >= 500 deliveries/s.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _gen  # noqa: E402

PATH = "/webhooks/stripe"
LEVELS = (8, 32, 128)
TIMEOUT = 30.0  # a request not answered within this counts as unanswered


def _stripectl() -> list[str]:
    exe = shutil.which("stripectl", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "stripectl"]


def load_bodies(tmp: Path, n: int) -> list[bytes]:
    gen = _gen.write_deliveries(tmp / "d.jsonl", n, sample=0)
    with gen.path.open(encoding="utf-8") as fh:
        return [json.loads(line)["body"].encode() for line in fh]


def request_bytes(body: bytes, secret: bytes) -> bytes:
    t = int(time.time())
    sig = hmac.digest(secret, f"{t}.".encode() + body, "sha256").hex()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
        f"Content-Type: application/json; charset=utf-8\r\nStripe-Signature: t={t},v1={sig}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Exchange(asyncio.Protocol):
    """One request on its own connection: write it, collect the answer until
    the listener closes. A bare Protocol: asyncio streams cost the load
    generator ~2x more CPU, which on 2 cores is taken from the listener."""

    def __init__(self, payload: bytes, done: asyncio.Future[bytes]) -> None:
        self.payload, self.done, self.chunks = payload, done, []  # type: list[bytes]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(b"".join(self.chunks))


async def _one(port: int, payload: bytes) -> tuple[float, int]:
    """(seconds, status); status 0 = unanswered (timeout, refused, reset before an answer)."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    done: asyncio.Future[bytes] = loop.create_future()
    transport = None
    try:
        async with asyncio.timeout(TIMEOUT):
            transport, _ = await loop.create_connection(lambda: _Exchange(payload, done), "127.0.0.1", port)
            answer = await done
    except (OSError, TimeoutError):
        return time.perf_counter() - started, 0
    finally:
        if transport is not None:
            transport.close()
    status = int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else 0
    return time.perf_counter() - started, status


async def _load(port: int, bodies: list[bytes], clients: int, secret: bytes) -> dict[str, Any]:
    todo = iter(bodies)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def client() -> None:
        for body in todo:
            secs, status = await _one(port, request_bytes(body, secret))
            latencies.append(secs)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    return {
        "clients": clients, "requests": len(latencies), "wall_s": wall, "per_s": len(latencies) / wall,
        "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": latencies[-1] * 1000,
        "unanswered": statuses.get(0, 0), "non_2xx": len(latencies) - ok - statuses.get(0, 0),
        "acks": ok,
    }


class Server:
    """The listener as a subprocess: the real CLI, or this file's --serve mode."""

    def __init__(self, db: Path, *, durable: bool = True) -> None:
        if durable:
            cmd = [*_stripectl(), "webhook", "listen", "--port", "0", "--db", str(db), "--json",
                   "--secret", _gen.SECRET]
        else:
            cmd = [sys.executable, __file__, "--serve-not-durable", str(db)]
        env = {k: v for k, v in os.environ.items() if k not in ("STRIPE_WEBHOOK_SECRET", "STRIPECTL_DB")}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first:
            raise RuntimeError("the listener did not start")
        self.port = int(json.loads(first)["port"])
        # Drain its log lines (a file would do too; a pipe nobody reads would not).
        self._drain = threading.Thread(target=_discard, args=(self.proc.stdout,), daemon=True)
        self._drain.start()

    def stop(self) -> float:
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return time.perf_counter() - started


def _discard(stream: IO[bytes]) -> None:
    for _ in stream:
        pass


Rows = list[dict[str, Any]]


def run_levels(tmp: Path, bodies: list[bytes], per_level: int) -> tuple[Rows, Rows]:
    """Each level against the durable listener, then against the not-durable one
    (both running, so each pair sees the same machine load); then SIGTERM both."""
    db_on, db_off = tmp / "levels-on.db", tmp / "levels-off.db"
    on_server, off_server = Server(db_on, durable=True), Server(db_off, durable=False)
    on: Rows = []
    off: Rows = []
    try:
        secret = _gen.SECRET.encode()
        for server in (on_server, off_server):
            asyncio.run(_load(server.port, bodies[:200], 8, secret))  # warm-up
        start = 200
        for clients in LEVELS:
            part = bodies[start:start + per_level]
            on.append(asyncio.run(_load(on_server.port, part, clients, secret)))
            # The same deliveries: the other listener has a mirror of its own.
            off.append(asyncio.run(_load(off_server.port, part, clients, secret)))
            start += per_level
    finally:
        exit_s = on_server.stop()
        if on:
            on[-1]["sigterm_exit_s"] = exit_s
        off_server.stop()
        _remove_db(db_on)
        _remove_db(db_off)
    return on, off


def count_syncs(tmp: Path, bodies: list[bytes], n: int, clients: int) -> dict[str, Any] | None:
    """fdatasync/fsync calls of the listener process during n requests, by
    strace attached to all its threads (-p with -f); None if strace cannot."""
    if shutil.which("strace") is None:
        return None
    trace = tmp / "strace.out"
    trace.unlink(missing_ok=True)
    db = tmp / "syncs.db"
    server = Server(db)
    pids = [a for p in _process_tree(server.proc.pid) for a in ("-p", str(p))]  # with the writer
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=fdatasync,fsync", "-o", str(trace),
                               *pids], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # attached
        if tracer.poll() is not None:
            return None  # not permitted (ptrace)
        secret = _gen.SECRET.encode()
        res = asyncio.run(_load(server.port, bodies[:n], clients, secret))
        time.sleep(0.3)
    finally:
        if tracer.poll() is None:
            tracer.send_signal(signal.SIGINT)  # detach
            tracer.wait(timeout=30)
        server.stop()
        _remove_db(db)
    during = _syncs(trace)
    return {"clients": clients, "acks": res["acks"], "syncs": during,
            "per_ack": during / max(1, res["acks"]), "per_s_under_strace": res["per_s"]}


def _process_tree(pid: int) -> list[int]:
    out = [pid]
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
            out.extend(int(c) for c in fh.read().split())
    return out


def _syncs(trace: Path) -> int:
    try:
        text = trace.read_text()
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if "fdatasync(" in line or "fsync(" in line)


def _remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def _serve_not_durable(db: str) -> None:
    """The listener exactly as `webhook listen` runs it, but synchronous=NORMAL."""
    from stripectl.services.listener import Listener, ListenerConfig

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lst = Listener(ListenerConfig(db_path=db, secrets=[_gen.SECRET], port=0, durable=False))
    lst.start()
    sys.stdout.write(json.dumps({"listening": lst.url, "port": lst.port}) + "\n")
    sys.stdout.flush()
    stop.wait()
    lst.stop()


def _row(r: dict[str, Any]) -> str:
    return (f"{r['clients']:>7} {r['requests']:>8} {r['per_s']:>9.0f} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['unanswered']:>10} {r['non_2xx']:>7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=4000, help="requests per concurrency level")
    ap.add_argument("--serve-not-durable", metavar="DB", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_not_durable:
        _serve_not_durable(args.serve_not_durable)
        return
    per = args.requests
    with tempfile.TemporaryDirectory(prefix="stripectl-bench-listen-") as t:
        tmp = Path(t)
        bodies = load_bodies(tmp, 200 + per * len(LEVELS))
        mean = sum(map(len, bodies)) / len(bodies)
        print(f"webhook listen, {per} signed deliveries per level (mean body {mean:.0f} B), "
              f"one connection each, on {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f})")
        header = (f"{'clients':>7} {'requests':>8} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'max ms':>8} {'unanswered':>10} {'non-2xx':>7}")
        on, off = run_levels(tmp, bodies, per)
        print("\ndurable (synchronous=FULL, the default):")
        print(header)
        for r in on:
            print(_row(r))
        print(f"SIGTERM to exit after the run: {on[-1]['sigterm_exit_s']:.2f} s")
        print("\nnot durable (synchronous=NORMAL, as before; bench only), each level right after:")
        print(header)
        for r in off:
            print(_row(r))
        print("\ndurability cost (throughput on / off):")
        for a, b in zip(on, off, strict=True):
            ratio = a["per_s"] / b["per_s"]
            print(f"  {a['clients']:>3} clients: {a['per_s']:.0f}/s vs {b['per_s']:.0f}/s = {ratio:.2f}")
        syncs = count_syncs(tmp, bodies, min(per, 2000), 32)
        if syncs is None:
            print("\nfsyncs per ack: strace not available or not permitted here")
        else:
            print(f"\nfsyncs per ack (strace -f, {syncs['clients']} clients): {syncs['syncs']} "
                  f"fdatasync/fsync calls for {syncs['acks']} acks = {syncs['per_ack']:.3f} per ack "
                  f"({syncs['per_s_under_strace']:.0f}/s under strace)")
        seq = count_syncs(tmp, bodies, 200, 1)
        if seq is not None:
            print(f"fsyncs per ack, 1 client (nothing to group): {seq['syncs']} for {seq['acks']} acks "
                  f"= {seq['per_ack']:.3f}")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        worst = on[-1]
        met = worst["p99_ms"] < 250 and worst["unanswered"] == 0 and worst["per_s"] >= 500
        print(f"\ntarget at 128 clients: p99 {worst['p99_ms']:.0f} ms (< 250), unanswered "
              f"{worst['unanswered']} (0), {worst['per_s']:.0f}/s (>= 500): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
