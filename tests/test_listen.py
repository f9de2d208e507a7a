"""`webhook listen` in-process: answers, storage, concurrency, limits."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stripectl.services.listener import DeliveryLine, Listener, ListenerConfig
from tests import factories as f
from tests.listen_helpers import PATH, SECRET, customer_event, post, signed


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[Listener, list[DeliveryLine]]]:
    lines: list[DeliveryLine] = []
    lst = Listener(
        ListenerConfig(
            db_path=str(tmp_path / "m.db"), secrets=[SECRET], port=0, max_body=64 * 1024
        ),
        lines.append,
    )
    lst.start()
    try:
        yield lst, lines
    finally:
        lst.stop()


def settle(lines: list[DeliveryLine], n: int) -> list[DeliveryLine]:
    """The log line is written just after the answer: wait for it (bounded)."""
    deadline = time.monotonic() + 10
    while len(lines) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return lines


def db_rows(lst: Listener, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(lst.config.db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_valid_delivery_is_stored_applied_and_logged(
    listener: tuple[Listener, list[DeliveryLine]],
) -> None:
    lst, lines = listener
    body, headers = signed(customer_event(1))
    status, answer = post(lst.url, body, headers)
    assert status == 200 and json.loads(answer)["outcome"] == "applied"
    # Stored before the answer: visible to another connection right away.
    rows = db_rows(lst, "SELECT event_id, source, outcome, verified, body, headers FROM events")
    assert len(rows) == 1
    event_id, source, outcome, verified, stored_body, stored_headers = rows[0]
    assert (event_id, source, outcome, verified) == ("evt_l1", "listener", "applied", 1)
    assert stored_body.encode() == body  # the exact bytes (TEXT: they are UTF-8)
    assert json.loads(str(stored_headers))["Stripe-Signature"] == headers["Stripe-Signature"]
    assert db_rows(lst, "SELECT id FROM customers") == [("cus_l1",)]
    assert [(x.status, x.event_id, x.outcome) for x in settle(lines, 1)] == [
        (200, "evt_l1", "applied")
    ]

    status, answer = post(lst.url, body, headers)  # Stripe retrying the same delivery
    assert status == 200 and json.loads(answer)["outcome"] == "duplicate"
    assert db_rows(lst, "SELECT count(*) FROM events") == [(1,)]


def test_bad_signature_is_400_and_stored_as_rejected(
    listener: tuple[Listener, list[DeliveryLine]],
) -> None:
    lst, lines = listener
    body, headers = signed(customer_event(2), secret="whsec_stripectl_attacker_0000")
    status, _ = post(lst.url, body, headers)
    assert status == 400
    status, _ = post(lst.url, body, {"Content-Type": "application/json"})  # no signature at all
    assert status == 400
    old_body, old_headers = signed(customer_event(3), t=1_600_000_000)  # replayed from 2020
    assert post(lst.url, old_body, old_headers)[0] == 400
    rows = db_rows(lst, "SELECT outcome, reason FROM events ORDER BY rowid")
    assert rows == [
        ("rejected", "bad_signature"),
        ("rejected", "no_signature"),
        ("rejected", "expired"),
    ]
    assert db_rows(lst, "SELECT count(*) FROM customers") == [(0,)]
    assert sorted(x.status for x in settle(lines, 3)) == [400, 400, 400]


def test_identical_resend_of_a_forged_delivery_is_400_again(
    listener: tuple[Listener, list[DeliveryLine]],
) -> None:
    lst, lines = listener
    body, headers = signed(customer_event(4), secret="whsec_stripectl_attacker_0000")
    first, first_answer = post(lst.url, body, headers)
    settle(lines, 1)  # answered and committed: the resend finds it stored
    second, second_answer = post(lst.url, body, headers)
    assert (first, second) == (400, 400)
    assert json.loads(first_answer)["outcome"] == json.loads(second_answer)["outcome"] == "rejected"
    assert json.loads(second_answer)["reason"] == "bad_signature"
    logged = settle(lines, 2)
    assert [(x.status, x.outcome, x.reason) for x in logged] == [
        (400, "rejected", "bad_signature"), (400, "rejected", "bad_signature"),
    ]
    assert db_rows(lst, "SELECT count(*) FROM customers") == [(0,)]


def test_port_in_use_is_a_network_error_exit_5(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stripectl.cli.app import app

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        result = CliRunner().invoke(app, [
            "webhook", "listen", "--port", str(port), "--secret", SECRET,
            "--db", str(tmp_path / "m.db"),
        ])
    assert result.exit_code == 5, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "bug" not in result.stderr


def test_valid_signature_but_not_an_event_is_stored_and_acknowledged(
    listener: tuple[Listener, list[DeliveryLine]],
) -> None:
    lst, _ = listener
    body = b'{"hello": "world"}'
    headers = {"Stripe-Signature": f.sign(body.decode(), SECRET, int(time.time()))}
    status, _ = post(lst.url, body, headers)
    assert status == 200  # authentic: Stripe retrying it would not help
    assert db_rows(lst, "SELECT outcome, reason FROM events") == [("rejected", "malformed")]


def test_oversize_body_is_413_and_not_stored(listener: tuple[Listener, list[DeliveryLine]]) -> None:
    lst, lines = listener
    event = customer_event(4)
    event["data"]["object"]["metadata"] = {"pad": "x" * (70 * 1024)}
    body, headers = signed(event)
    status, _ = post(lst.url, body, headers)
    assert status == 413
    assert db_rows(lst, "SELECT count(*) FROM events") == [(0,)]
    assert [x.status for x in settle(lines, 1)] == [413]


def test_wrong_path_method_and_framing(listener: tuple[Listener, list[DeliveryLine]]) -> None:
    lst, _ = listener
    body, headers = signed(customer_event(5))
    assert post(lst.url.replace(PATH, "/other"), body, headers)[0] == 404
    with socket.create_connection(("127.0.0.1", lst.port), timeout=10) as s:
        s.sendall(f"GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 405")
    with socket.create_connection(("127.0.0.1", lst.port), timeout=10) as s:
        s.sendall(
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode()
        )
        assert s.recv(100).startswith(b"HTTP/1.1 411")
    assert db_rows(lst, "SELECT count(*) FROM events") == [(0,)]


def test_concurrent_burst_loses_nothing_and_stores_each_event_once(
    listener: tuple[Listener, list[DeliveryLine]],
) -> None:
    lst, lines = listener
    threads, per_thread, unique = 8, 200, 1400
    # Thread t sends events t*175 .. ; every 8th delivery repeats an event another
    # thread also sends (re-signed, like a Stripe retry) and every 25th is an exact resend.
    plan: list[list[tuple[bytes, dict[str, str]]]] = []
    for t in range(threads):
        mine = []
        for i in range(per_thread):
            n = (t * 175 + i) % unique if i < 175 else ((t + 1) * 175 + i) % unique
            mine.append(signed(customer_event(n)))
        plan.append(mine)
    statuses: list[list[int]] = [[] for _ in range(threads)]

    def client(t: int) -> None:
        for i, (body, headers) in enumerate(plan[t]):
            statuses[t].append(post(lst.url, body, headers)[0])
            if i % 25 == 0:
                statuses[t].append(post(lst.url, body, headers)[0])  # exact resend

    workers = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    sent = sum(len(s) for s in statuses)
    assert sent == threads * (per_thread + per_thread // 25)
    assert all(s == 200 for ss in statuses for s in ss)
    accepted = db_rows(
        lst,
        "SELECT event_id, count(*) FROM events WHERE outcome NOT IN ('duplicate', 'rejected') "
        "GROUP BY event_id",
    )
    assert len(accepted) == unique and all(n == 1 for _, n in accepted)
    assert db_rows(lst, "SELECT count(*) FROM customers") == [(unique,)]
    # Every distinct delivery is stored (exact resends share a delivery_id).
    distinct = {(b, h["Stripe-Signature"]) for p in plan for b, h in p}
    assert db_rows(lst, "SELECT count(*) FROM events") == [(len(distinct),)]
    assert len(settle(lines, sent)) == sent


def test_expect_100_continue_is_answered_before_the_body(
    listener: tuple[Listener, list[DeliveryLine]],
) -> None:
    lst, _ = listener
    body, headers = signed(customer_event(6))
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", lst.port), timeout=10) as s:
        s.sendall(head.encode())
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before any body byte was sent
        s.sendall(body)
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")
    assert db_rows(lst, "SELECT event_id FROM events") == [("evt_l6",)]
