"""Many processes on one PostgreSQL mirror: receivers, a killed replay, the inbox.

What one SQLite file gets from its write lock the PostgreSQL engine takes
explicitly (store/engine/postgres.py); these tests hold it to the promises
across processes: every acknowledged delivery stored, each event applied
once, the final mirror equal to a SQLite replay of the same deliveries,
whole transactions only after a kill.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from stripectl.services.replay import ReplayOptions, replay
from stripectl.store import open_store
from stripectl.webhooks.delivery import Delivery
from tests import factories as f
from tests.listen_helpers import SECRET, post
from tests.replay_helpers import envelopes, run, run_json, store_state, write_jsonl

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def listener(db: str, log: Path) -> Iterator[str]:
    err = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stripectl", "webhook", "listen", "--port", "0", "--db", db,
         "--secret", SECRET, "--json"],
        stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if not first:
            raise RuntimeError(log.read_text())
        out = proc.stdout
        threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
        yield json.loads(first)["listening"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()


def _history() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for i in range(8):
        events += f.lifecycle(f"sub_1Multi{i:017d}", f"cus_1Multi{i:011d}", cancel=i % 2 == 0,
                              shape="new" if i % 3 else "old")
    return events


def _resigned(env: dict[str, Any], shift: int) -> dict[str, Any]:
    """Stripe's retry of the same event: a new signature, the same body."""
    t = json.loads(env["body"])["created"] + shift
    return f.envelope(env["body"], SECRET, t=t, received_at=t + 1)


def test_four_receivers_on_one_mirror_store_everything_and_apply_each_event_once(
    pg_url: str, tmp_path: Path
) -> None:
    rng = random.Random(12)
    envs = envelopes(_history())
    jobs: list[dict[str, Any]] = []
    for env in envs:
        jobs.append(env)
        roll = rng.random()
        if roll < 0.3:
            jobs.append(env)  # the same delivery twice (a client retry), maybe elsewhere
        elif roll < 0.5:
            jobs.append(_resigned(env, 30))  # Stripe's own retry: same event id
    rng.shuffle(jobs)
    # The listeners check freshness against their clock: deliveries signed
    # now; what is compared below is exactly what was sent.
    now = int(time.time())
    sent = [
        {"body": j["body"], "headers": {"Stripe-Signature": f.sign(j["body"], SECRET, now + (hash(
            j["headers"]["Stripe-Signature"]) % 50))}}
        for j in jobs
    ]
    acked: list[dict[str, Any]] = []
    lock = threading.Lock()
    with ExitStack() as stack:
        urls = [stack.enter_context(listener(pg_url, tmp_path / f"l{i}.err")) for i in range(4)]
        work: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        for n, d in enumerate(sent):
            work.put((n, d))

        def client(k: int) -> None:
            while True:
                try:
                    n, d = work.get_nowait()
                except queue.Empty:
                    return
                # Spread over the receivers; a retry goes to another one.
                for attempt in range(20):
                    url = urls[(n + attempt + k) % len(urls)]
                    try:
                        status, _ = post(url, d["body"].encode(), {**d["headers"],
                                         "Content-Type": "application/json"}, timeout=30)
                    except (OSError, http.client.HTTPException):
                        status = 0
                    if status == 200:
                        with lock:
                            acked.append(d)
                        break
                    time.sleep(0.05 * (attempt + 1))
                else:
                    raise AssertionError(f"delivery {n} never acknowledged")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4 * 8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert len(acked) == len(sent)

    store = open_store(pg_url)
    try:
        stored = store.query("SELECT delivery_id, event_id, outcome FROM events")
        mirror = store_state(store)
    finally:
        store.close()
    deliveries = [Delivery(source="x", body=d["body"].encode(), headers=d["headers"],
                           received_at=now) for d in sent]
    from stripectl.webhooks.inspect import delivery_id

    wanted = {delivery_id(d) for d in deliveries}
    assert {r["delivery_id"] for r in stored} == wanted  # every acknowledged delivery stored
    applied: dict[str, int] = {}
    for r in stored:
        if r["outcome"] != "duplicate":
            applied[r["event_id"]] = applied.get(r["event_id"], 0) + 1
    assert set(applied) == {json.loads(e["body"])["id"] for e in envs}
    assert set(applied.values()) == {1}, "an event was applied by two receivers"
    assert {r["outcome"] for r in stored} <= {"applied", "stale", "duplicate", "ignored"}

    reference = open_store(str(tmp_path / "ref.db"))
    try:
        replay(reference, deliveries, ReplayOptions(secrets=[SECRET], tolerance=10**9), now=now)
        assert mirror == store_state(reference)
    finally:
        reference.close()


def test_a_replay_killed_mid_chunk_leaves_whole_transactions(pg_url: str, tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    for i in range(120):
        events += f.lifecycle(f"sub_1PgKill{i:016d}", f"cus_1PgKill{i:010d}", cancel=i % 2 == 0)
    corpus = write_jsonl(tmp_path / "big.jsonl", envelopes(events))
    total = len(events)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stripectl", "replay-webhook", str(corpus), "--secret", SECRET,
         "--db", pg_url, "--json", "--chunk-size", "50"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
    )
    watch = open_store(pg_url)

    def count() -> int:
        return int(watch.execute("SELECT count(*) FROM events").fetchone()[0])

    try:
        deadline = time.monotonic() + 120
        while count() == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        time.sleep(0.2)  # the server notices the dead connection and rolls its chunk back
        stored = count()
    finally:
        watch.close()
    assert 0 < stored < total, "the kill must land mid-run"
    assert stored % 50 == 0  # whole chunks only: each is one transaction

    code, report = run_json("replay-webhook", str(corpus), "--secret", SECRET, "--db", pg_url)
    assert code == 0
    assert report["summary"]["duplicate"] == stored
    clean = tmp_path / "clean.db"
    run_json("replay-webhook", str(corpus), "--secret", SECRET, "--db", str(clean))
    a, b = open_store(pg_url), open_store(str(clean))
    try:
        assert store_state(a) == store_state(b)
    finally:
        a.close()
        b.close()


def test_replay_dry_run_inbox_export_and_back_on_postgres(pg_url: str, tmp_path: Path) -> None:
    envs = envelopes(f.lifecycle("sub_1PgInbox00000000001", "cus_1PgInbox000001"))
    corpus = write_jsonl(tmp_path / "d.jsonl", envs)
    code, dry = run_json("replay-webhook", str(corpus), "--secret", SECRET, "--db", pg_url, "--dry-run")
    assert code == 0 and dry["summary"]["applied"] > 0
    code, report = run_json("replay-webhook", str(corpus), "--secret", SECRET, "--db", pg_url)
    assert code == 0 and report["summary"] == dry["summary"]
    out = tmp_path / "export.jsonl"
    result = run("inbox", "export", "--db", pg_url, "--output", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["exported"] == len(envs)
    assert [json.loads(x)["body"] for x in out.read_text().splitlines()] == [e["body"] for e in envs]
    again = tmp_path / "again.db"
    code, _ = run_json("replay-webhook", str(out), "--secret", SECRET, "--db", str(again))
    assert code == 0
    a, b = open_store(pg_url), open_store(str(again))
    try:
        assert store_state(a) == store_state(b)
    finally:
        a.close()
        b.close()
    # A second mirror in its own schema of the same database (--schema).
    result = run("--schema", "team_b", "replay-webhook", str(out), "--secret", SECRET, "--db", pg_url)
    assert result.exit_code == 0, result.output
    other = open_store(pg_url, schema="team_b")
    try:
        assert store_state(other) == store_state(open_store(str(again)))
    finally:
        other.close()


def test_errors_on_postgres_are_one_line_exit_6(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("inbox", "export", "--db", f"postgresql://ops:hunter2@127.0.0.1:{port}/none")
    assert result.exit_code == 6
    assert "error: cannot connect to the mirror postgresql://ops:***@127.0.0.1" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr
    result = run("--schema", "Bad-Name", "inbox", "export", "--db", f"postgresql://127.0.0.1:{port}/x")
    assert result.exit_code == 3 and "--schema" in result.stderr


def test_processes_opening_a_new_mirror_at_once_migrate_it_once(pg_url: str) -> None:
    code = (
        "import sys; from stripectl.store import open_store; "
        "s = open_store(sys.argv[1], schema='fresh'); print(s.engine.schema_version()); s.close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, pg_url], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    from stripectl.store import SCHEMA_VERSION

    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == str(SCHEMA_VERSION)
    store = open_store(pg_url, schema="fresh")
    try:
        versions = [r["version"] for r in store.query("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        store.close()
    assert versions == list(range(1, SCHEMA_VERSION + 1))  # each migration ran once


def test_inbox_prune_and_a_first_pull_on_postgres(pg_url: str, tmp_path: Path) -> None:
    envs = envelopes(f.lifecycle("sub_1PgPrune00000000001", "cus_1PgPrune000001"))
    corpus = write_jsonl(tmp_path / "d.jsonl", envs)
    # No mirror yet: a pull without --since is refused before anything is created.
    result = run("events", "pull", "--db", pg_url, "--api-key", "sk_test_stripectl_fake_0000",
                 "--api-base", "http://127.0.0.1:9")
    assert result.exit_code == 2 and "no events cursor" in result.stderr
    assert run("inbox", "prune", "--bodies", "--db", pg_url).exit_code == 2  # no mirror
    code, _ = run_json("replay-webhook", str(corpus), "--secret", SECRET, "--db", pg_url)
    assert code == 0
    result = run("inbox", "prune", "--bodies", "--personal-data", "--db", pg_url, "--json")
    assert result.exit_code == 0, result.output
    store = open_store(pg_url)
    try:
        assert store.execute("SELECT count(*) FROM events WHERE body IS NOT NULL").fetchone()[0] == 0
        assert store.execute("SELECT count(*) FROM customers WHERE email IS NOT NULL").fetchone()[0] == 0
        assert store_state(store)["subscriptions"]  # the mirror itself is kept
    finally:
        store.close()
