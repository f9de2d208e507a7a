"""`stripectl webhook listen` as a real process: SIGKILL mid-burst, SIGTERM drain."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tests.listen_helpers import PATH, SECRET, customer_event, post, signed

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def listen_process(
    db: Path, *extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], str, IO[bytes]]]:
    err = (db.parent / "listen.err").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stripectl",
            "webhook",
            "listen",
            "--port",
            "0",
            "--db",
            str(db),
            "--secret",
            SECRET,
            "--json",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=err,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # {"listening": url, "port": n}
        if not first:
            raise RuntimeError((db.parent / "listen.err").read_text())
        url = json.loads(first)["listening"]
        yield proc, url, proc.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        err.close()


def test_sigkill_mid_burst_loses_no_acknowledged_delivery(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    with listen_process(db) as (proc, url, out):
        # Drain stdout so the listener never blocks on a full pipe.
        drain = threading.Thread(target=lambda: [None for _ in out], daemon=True)
        drain.start()

        def client(t: int) -> None:
            i = 0
            while not stop.is_set():
                event = customer_event(f"k{t}_{i}")
                body, headers = signed(event)
                try:
                    status, _ = post(url, body, headers, timeout=5)
                except (OSError, http.client.HTTPException):
                    return  # the process is gone (reset, or cut mid-answer)
                if status == 200:
                    with lock:
                        acked.append(event["id"])
                i += 1

        workers = [threading.Thread(target=client, args=(t,)) for t in range(6)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # mid-burst: requests are in flight
        proc.wait(timeout=10)
        stop.set()
        for w in workers:
            w.join(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 300
    conn = sqlite3.connect(db)
    try:
        stored = {
            r[0] for r in conn.execute("SELECT event_id FROM events WHERE outcome = 'applied'")
        }
        customers = {r[0] for r in conn.execute("SELECT id FROM customers")}
    finally:
        conn.close()
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged deliveries lost"
    assert {f"cus_l{a.removeprefix('evt_l')}" for a in acked} <= customers


def test_sigterm_finishes_in_flight_request_and_exits_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with listen_process(db) as (proc, url, out):
        body, headers = signed(customer_event("t1"))
        assert post(url, body, headers)[0] == 200
        first_line = json.loads(out.readline())
        assert first_line["status"] == 200 and first_line["event_id"] == "evt_lt1"

        # A delivery whose body is still arriving when SIGTERM lands.
        slow_body, slow_headers = signed(customer_event("t2"))
        port = int(url.split(":")[2].split("/")[0])
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(slow_body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in slow_headers.items()) + "\r\n"
        sock.sendall(head.encode() + slow_body[:10])
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)  # the listener is draining and has stopped accepting
        sock.sendall(slow_body[10:])
        answer = _read_all(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert proc.wait(timeout=20) == 0
    err = (tmp_path / "listen.err").read_text()
    assert "stopped; database closed" in err and "Traceback" not in err
    # The last connection closed cleanly: SQLite checkpointed and removed its WAL.
    assert not Path(f"{db}-wal").exists()
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT event_id, outcome FROM events ORDER BY rowid").fetchall()
    finally:
        conn.close()
    assert rows == [("evt_lt1", "applied"), ("evt_lt2", "applied")]


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_listen_requires_a_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stripectl",
            "webhook",
            "listen",
            "--port",
            "0",
            "--db",
            str(tmp_path / "m.db"),
        ],
        capture_output=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "STRIPE_WEBHOOK_SECRET"},
        timeout=30,
    )
    assert result.returncode == 3 and b"no webhook secret" in result.stderr
