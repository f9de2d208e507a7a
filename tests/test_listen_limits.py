"""`webhook listen` in-process: durability, group commit, budgets, honest 500s.

Real sockets on 127.0.0.1; every listener is stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stripectl.cli.line_sink import LineSink
from stripectl.services.listener import Listener, ListenerConfig
from tests.listen_helpers import PATH, SECRET, customer_event, post, process_tree, signed

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def running(tmp: Path, **overrides: object) -> Iterator[Listener]:
    config = ListenerConfig(db_path=str(tmp / "m.db"), secrets=[SECRET], port=0)
    for key, value in overrides.items():
        setattr(config, key, value)
    lst = Listener(config)
    lst.start()
    try:
        yield lst
    finally:
        lst.stop()


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_the_writer_connection_syncs_every_commit(tmp_path: Path) -> None:
    # synchronous=NORMAL (the mirror's default) syncs the WAL only at checkpoints:
    # a power cut could drop deliveries already answered 200.
    with running(tmp_path) as lst:
        assert lst.durability == "synchronous=FULL"  # as SQLite reports it back


@contextmanager
def write_locked(db: Path) -> Iterator[sqlite3.Connection]:
    """Another process's writer: holds the mirror's write lock until released."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _wait_for(predicate: object, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_concurrent_requests_share_one_commit(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with running(tmp_path, lock_timeout=30.0, ack_timeout=30.0) as lst:
        statuses: list[int] = []
        first_body, first_headers = signed(customer_event("g0"))
        with write_locked(db):
            # The first delivery is taken by the writer, which then waits for the
            # lock; the next 20 queue up behind it meanwhile.
            t0 = threading.Thread(
                target=lambda: statuses.append(post(lst.url, first_body, first_headers)[0])
            )
            t0.start()
            _wait_for(lambda: lst.writing() == 1)
            plan = [signed(customer_event(f"g{i}")) for i in range(1, 21)]
            workers = [
                threading.Thread(target=lambda b=b, h=h: statuses.append(post(lst.url, b, h)[0]))
                for b, h in plan
            ]
            for w in workers:
                w.start()
            _wait_for(lambda: lst.queued() == 20)
            assert lst.queued() == 20
            commits_before = lst.commits()
        for w in [t0, *workers]:
            w.join(timeout=60)
        assert statuses == [200] * 21
        assert commits_before == 0
        assert lst.commits() == 2  # the first alone, then the 20 together
    assert rows(db, "SELECT count(*) FROM events") == [(21,)]


def _strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(
        ["strace", "-f", "-e", "trace=fdatasync", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _strace_works(), reason="needs strace with ptrace permission")
def test_every_acknowledgement_follows_an_fdatasync(tmp_path: Path) -> None:
    """Counted in the real process with strace: one client, one delivery at a
    time, so no commit can cover two acks: at least one sync per ack."""
    trace = tmp_path / "trace"
    cmd = [sys.executable, "-m", "stripectl", "webhook", "listen", "--port", "0", "--json",
           "--db", str(tmp_path / "m.db"), "--secret", SECRET]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    tracer = None
    try:
        assert proc.stdout is not None
        port = int(json.loads(proc.stdout.readline())["port"])
        out = proc.stdout
        threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
        pids = [a for p in process_tree(proc.pid) for a in ("-p", str(p))]  # and the writer
        tracer = subprocess.Popen(
            ["strace", "-f", "-qq", "-e", "trace=fdatasync,fsync", "-o", str(trace), *pids],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # attached to every thread
        url = f"http://127.0.0.1:{port}{PATH}"
        for i in range(15):
            body, headers = signed(customer_event(f"s{i}"))
            assert post(url, body, headers)[0] == 200
        time.sleep(0.3)
    finally:
        if tracer is not None:
            tracer.send_signal(signal.SIGINT)  # detach
            tracer.wait(timeout=10)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert proc.stdout is not None
        proc.stdout.close()
    syncs = [line for line in trace.read_text().splitlines() if "sync(" in line and "= 0" in line]
    assert len(syncs) >= 15, syncs


def test_forged_posts_are_recorded_truncated_within_a_budget(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    # ~5 KB per forged delivery recorded (4 KiB of body + headers): room for 3.
    with running(tmp_path, max_body=2 * 1_048_576, unverified_per_minute=16_000) as lst:
        big = json.dumps({"id": "evt_forged", "pad": "x" * 1_048_576}).encode()
        answers = []
        for i in range(6):
            headers = {"Stripe-Signature": f"t={int(time.time())},v1={i:064x}"}
            status, raw = post(lst.url, big, headers)
            assert status == 400
            answers.append(json.loads(raw))
        status, raw = post(lst.url, big, {})  # no signature at all
        assert status == 400
        assert json.loads(raw)["recorded"] is False  # budget used up: answered, not written
        stats = lst.stop()
    recorded = [a for a in answers if a.get("recorded") is not False]
    assert len(recorded) == 3 and all(a["reason"] == "bad_signature" for a in answers)
    stored = rows(db, "SELECT length(body), note, outcome, reason FROM events")
    assert len(stored) == 3
    for length, note, outcome, reason in stored:
        assert length == 4096
        assert str(note).startswith(f"body truncated: kept 4096 of {len(big)} bytes (unverified)")
        assert (outcome, reason) == ("rejected", "bad_signature")
    assert stats.unverified_not_recorded == 4
    # A signed delivery is never held to that budget, nor truncated.
    with running(tmp_path, unverified_per_minute=0) as lst:
        body, headers = signed(customer_event("b1"))
        assert post(lst.url, body, headers)[0] == 200
    assert rows(db, "SELECT length(body) FROM events WHERE event_id = 'evt_lb1'") == [(len(body),)]


def test_a_500_after_a_lock_timeout_says_what_is_true(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with running(tmp_path, ack_timeout=1.0, lock_timeout=3.0) as lst:
        taken_body, taken_headers = signed(customer_event("h1"))
        queued_body, queued_headers = signed(customer_event("h2"))
        answers: dict[str, tuple[int, bytes]] = {}
        with write_locked(db):
            t1 = threading.Thread(target=lambda: answers.__setitem__(
                "taken", post(lst.url, taken_body, taken_headers)))
            t1.start()
            _wait_for(lambda: lst.writing() == 1)  # the writer holds h1, waits for the lock
            t2 = threading.Thread(target=lambda: answers.__setitem__(
                "queued", post(lst.url, queued_body, queued_headers)))
            t2.start()
            t1.join(timeout=20)
            t2.join(timeout=20)
            # Both answered 500 within the ack timeout; the lock is still held.
            assert answers["taken"][0] == answers["queued"][0] == 500
        # Released before the writer's lock timeout: h1 gets stored after all.
        _wait_for(lambda: rows(db, "SELECT count(*) FROM events") == [(1,)])
        taken = json.loads(answers["taken"][1])["error"]
        queued = json.loads(answers["queued"][1])["error"]
        assert taken.startswith("not acknowledged") and "may still be stored" in taken
        assert queued.startswith("not stored")
        # The lock held past the writer's timeout: the store failed, nothing written.
        failed_body, failed_headers = signed(customer_event("h3"))
        with write_locked(db):
            lst.config.ack_timeout = 10.0
            status, raw = post(lst.url, failed_body, failed_headers)
        assert status == 500 and json.loads(raw)["error"].startswith("not stored")
    assert rows(db, "SELECT event_id FROM events") == [("evt_lh1",)]


def test_128_concurrent_clients_are_all_answered(tmp_path: Path) -> None:
    with running(tmp_path) as lst:
        statuses: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(128)

        def client(t: int) -> None:
            barrier.wait(timeout=30)
            for i in range(3):
                body, headers = signed(customer_event(f"c{t}_{i}"))
                status = post(lst.url, body, headers, timeout=60)[0]
                with lock:
                    statuses.append(status)

        workers = [threading.Thread(target=client, args=(t,)) for t in range(128)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        peak = lst.stop().peak_connections
    assert statuses.count(200) == 384
    assert peak > 8  # they really were concurrent
    assert rows(tmp_path / "m.db", "SELECT count(*) FROM events") == [(384,)]


def test_a_full_output_drops_and_counts_lines_instead_of_blocking(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(write_fd, "w")
    sink = LineSink(stream, limit=5, dropped_line=lambda n: f"-- {n} dropped --")
    line = "x" * 20_000  # a pipe holds 64 KiB: three lines block the writer thread
    producer = threading.Thread(target=lambda: [sink.put(line) for _ in range(50)], daemon=True)
    producer.start()
    producer.join(timeout=30)
    assert not producer.is_alive()  # put() returned every time although nobody reads
    assert sink.dropped >= 50 - 5 - 4  # at most the queue and what the pipe took
    got = b""
    os.set_blocking(read_fd, False)
    deadline = time.monotonic() + 10
    while b"dropped --" not in got and time.monotonic() < deadline:
        try:
            got += os.read(read_fd, 1 << 20)
        except BlockingIOError:
            time.sleep(0.01)
    assert f"-- {sink.dropped} dropped --".encode() in got
    assert sink.close(5.0)
    stream.close()
    os.close(read_fd)
