"""The idempotency ledger's rules, without HTTP: claims, leases, conflicts, staleness."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.errors import IdempotencyConflict, StripeAPIError, UsageError
from stripectl.services import ledger
from stripectl.store import Store, open_store
from tests.fakes.base import serve
from tests.fakes.idempotent import IdempotentStripe, conn_args, ledger_rows

OP = "payment_intent.create"
PARAMS = {"amount": 1000, "currency": "usd", "metadata": {"order_ref": "o1"}}
OPTS = ledger.LedgerOptions(lease_seconds=60, poll_seconds=0.01)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(str(tmp_path / "m.db"))
    yield s
    s.close()


def claim(store: Store, params: dict[str, Any] = PARAMS, **kw: Any) -> ledger.Claim:
    options = kw.pop("options", OPTS)
    return ledger.claim(store, key="k1", operation=kw.pop("operation", OP), params=params,
                        options=options, identity_flags="--order-ref", **kw)


def set_lease(db: Path, owner: str, expires: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE idempotency_keys SET lease_owner=?, lease_expires_at=?", (owner, expires))
    conn.commit()
    conn.close()


def test_derived_key_matches_documented_shape() -> None:
    key = ledger.derive_key("pi", "ord_1001")
    assert key == "stripectl:pi:" + hashlib.sha256(b"ord_1001").hexdigest()[:32]
    assert ledger.derive_key("pi", "ord_1001") == key  # deterministic, never random
    assert ledger.derive_key("pi", "ord_1002") != key


@pytest.mark.parametrize("bad", ["", "has space", "x" * 256, "tab\tkey", "ünïcode"])
def test_check_key_refuses_bad_keys(bad: str) -> None:
    with pytest.raises(UsageError):
        ledger.check_key(bad)


def test_check_key_accepts_255_chars() -> None:
    assert ledger.check_key("k" * 255) == "k" * 255


def test_param_diff_names_each_leaf() -> None:
    old = {"amount": 1000, "metadata": {"a": "1"}, "line_items": [{"price": "p", "quantity": 1}]}
    new = {"amount": 2000, "metadata": {"b": "2"}, "line_items": [{"price": "p", "quantity": 2}]}
    assert ledger.param_diff(old, new) == [
        "amount: 1000 -> 2000",
        "line_items[0].quantity: 1 -> 2",
        'metadata.a: "1" -> (absent)',
        'metadata.b: (absent) -> "2"',
    ]


def test_first_claim_commits_pending_row_with_lease(store: Store, tmp_path: Path) -> None:
    c = claim(store)
    assert c.attempt == 1 and c.previous is None
    [row] = ledger_rows(tmp_path / "m.db")  # visible to another connection: committed
    assert row["state"] == "pending" and row["lease_owner"] == c.owner
    assert json.loads(row["params"]) == PARAMS
    assert row["fingerprint"] == ledger.fingerprint(OP, PARAMS)


def test_same_key_other_params_or_operation_refused(store: Store) -> None:
    c = claim(store)
    ledger.settle_success(store, c, obj={"id": "pi_1", "status": "succeeded"}, replayed=False)
    with pytest.raises(IdempotencyConflict, match="amount: 1000 -> 1001"):
        claim(store, {**PARAMS, "amount": 1001})
    with pytest.raises(IdempotencyConflict, match=r"operation: payment_intent\.create"):
        claim(store, operation="checkout_session.create")


def test_released_claim_can_be_taken_again(store: Store, tmp_path: Path) -> None:
    c = claim(store)
    ledger.release(store, c, note="interrupted")
    c2 = claim(store)
    assert c2.attempt == 2 and c2.previous is not None
    assert c2.previous["error"] == "interrupted"


def test_dead_holder_on_this_host_is_taken_over_at_once(store: Store, tmp_path: Path) -> None:
    claim(store)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: this pid no longer exists
    import socket

    set_lease(tmp_path / "m.db", f"{socket.gethostname()}:{proc.pid}:dead", 2**31 - 1)
    slept: list[float] = []
    c = claim(store, sleep=slept.append)
    assert c.attempt == 2 and slept == []


def test_expired_lease_of_other_host_is_taken_over(store: Store, tmp_path: Path) -> None:
    claim(store)
    set_lease(tmp_path / "m.db", "ci-runner-7:4242:abcd", 1)
    assert claim(store).attempt == 2


def test_fresh_lease_of_other_host_waits_then_refuses(store: Store, tmp_path: Path) -> None:
    claim(store)
    set_lease(tmp_path / "m.db", "ci-runner-7:4242:abcd", 2**31 - 1)
    notes: list[str] = []
    options = ledger.LedgerOptions(lease_seconds=60, wait_seconds=0.05, poll_seconds=0.01)
    with pytest.raises(StripeAPIError, match="pid 4242 on ci-runner-7") as info:
        claim(store, options=options, notify=notes.append)
    assert info.value.code == "idempotency_key_in_use"
    assert notes and "waiting for pid 4242 on ci-runner-7" in notes[0]


def test_key_older_than_24h_needs_explicit_flag(store: Store) -> None:
    with freeze_time("2026-11-01 00:00:00"):
        c = claim(store)
        ledger.settle_success(store, c, obj={"id": "pi_old", "status": "succeeded"}, replayed=False)
    with freeze_time("2026-11-01 23:59:00"):
        c = claim(store)  # still inside Stripe's 24 h
        ledger.release(store, c)
    with freeze_time("2026-11-02 00:30:00"), pytest.raises(UsageError) as info:
        claim(store)
    assert "first sent 24 h ago" in info.value.message
    assert "succeeded as pi_old" in info.value.message
    assert info.value.hint and "--allow-stale-key" in info.value.hint
    with freeze_time("2026-11-02 00:30:00"):
        options = ledger.LedgerOptions(lease_seconds=60, allow_stale_key=True)
        assert claim(store, options=options).attempt == 3


def test_failure_classification(store: Store, tmp_path: Path) -> None:
    from stripectl.errors import CardDeclined, NetworkError

    c = claim(store)
    ledger.settle_error(store, c, error=NetworkError("boom"), http_status=None, code=None,
                        replayed=False)
    assert ledger_rows(tmp_path / "m.db")[0]["state"] == "pending"  # outcome unknown
    c = claim(store)
    ledger.settle_error(store, c, error=CardDeclined("declined", decline_code="do_not_honor"),
                        http_status=402, code="card_declined", replayed=False,
                        obj={"id": "pi_d", "status": "requires_payment_method"})
    [row] = ledger_rows(tmp_path / "m.db")
    assert (row["state"], row["error_code"], row["object_id"]) == ("failed", "do_not_honor", "pi_d")


def test_cli_stale_key_refused_then_allowed(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    args = ["payments", "create", "--amount", "100", "--currency", "usd", "--order-ref", "o-old"]
    fake = IdempotentStripe()
    runner = CliRunner()
    with serve(fake) as url:
        assert runner.invoke(app, [*args, *conn_args(url, db)]).exit_code == 0
        conn = sqlite3.connect(db)
        conn.execute("UPDATE idempotency_keys SET first_sent_at = first_sent_at - 90000")
        conn.commit()
        conn.close()
        res = runner.invoke(app, [*args, *conn_args(url, db)])
        assert res.exit_code == 2
        assert "Stripe prunes keys after 24 h" in res.stderr and "--allow-stale-key" in res.stderr
        assert fake.count("POST") == 1  # nothing sent
        res = runner.invoke(app, [*args, "--allow-stale-key", *conn_args(url, db)])
        assert res.exit_code == 0, res.output
        assert fake.count("POST") == 2 and "yes (attempt 2)" in res.stdout


def test_interrupt_during_send_releases_the_lease(store: Store, tmp_path: Path) -> None:
    from stripectl.services.payments import Mutation, run_mutation

    def interrupted(params: dict[str, Any], key: str) -> Any:
        raise KeyboardInterrupt

    m = Mutation(operation=OP, noun="payment intent", key="k1", params=PARAMS, send=interrupted,
                 mirror_table="payment_intents", mirror_row=dict, identity_flags="--order-ref")
    with pytest.raises(KeyboardInterrupt):
        run_mutation(store, m, options=OPTS)
    [row] = ledger_rows(tmp_path / "m.db")
    assert row["state"] == "pending" and row["lease_owner"] is None
    assert "interrupted" in row["error"]
    assert claim(store).attempt == 2  # the next run takes it at once, same key
