"""`refunds create`, `payments capture` / `cancel` against the fault-injecting fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.services import ledger
from stripectl.services.refunds import RefundRequest, prepare_refund
from stripectl.store import open_store
from tests.fakes.base import serve
from tests.fakes.idempotent import conn_args, ledger_rows, mirror_rows
from tests.fakes.refunds import RefundingStripe

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
Fake = tuple[RefundingStripe, str]


@pytest.fixture
def fake() -> Iterator[Fake]:
    app_ = RefundingStripe()
    with serve(app_) as url:
        try:
            yield app_, url
        finally:
            app_.release()


def refund(url: str, db: Path | str, pi: str, ref: str, *extra: str, retries: int = 2) -> Any:
    return runner.invoke(
        app,
        ["refunds", "create", "--payment-intent", pi, "--refund-ref", ref, *extra,
         *conn_args(url, db, retries=retries)],
    )


def posts(app_: RefundingStripe, path: str = "/v1/refunds") -> int:
    return sum(1 for r in app_.requests if r.method == "POST" and r.path == path)


def test_refund_then_rerun_replays_one_refund(fake: Fake, tmp_path: Path, mirror_target: str) -> None:
    app_, url = fake
    db = mirror_target  # a file, then a postgresql:// mirror
    pi = app_.seed_payment(1000)
    res = refund(url, db, pi, "ticket_1", "--amount", "400", "--reason", "requested_by_customer",
                 "--json")
    assert res.exit_code == 0, res.output
    first = json.loads(res.stdout)
    assert first["replayed"] is False and first["status"] == "succeeded" and first["provisional"]
    assert first["amount"] == 400 and first["amount_display"] == "4.00 USD"
    assert first["checked"] == {"currency": "usd", "captured": 1000, "refunded": 0,
                                "unresolved": 0, "refundable": 1000}
    assert first["idempotency_key"] == ledger.derive_key("re", "ticket_1")
    assert "final state" in res.stderr

    res = refund(url, db, pi, "ticket_1", "--amount", "400", "--reason", "requested_by_customer")
    assert res.exit_code == 0, res.output
    assert any(line.split() == ["replayed", "yes", "(attempt", "2)"] for line in res.stdout.splitlines())
    assert len(app_.refunds) == 1 and app_.replays == 1
    [row] = ledger_rows(db)
    assert row["operation"] == "refund.create" and row["state"] == "succeeded"
    assert row["object_id"] == first["id"]
    [mirrored] = mirror_rows(db, "refunds")
    assert mirrored["id"] == first["id"] and mirrored["refund_ref"] == "ticket_1"
    assert mirrored["idempotency_key"] == first["idempotency_key"] and mirrored["source"] == "api"
    # The ref travels in the refund's metadata: how a later check recognises it.
    assert app_.refunds[first["id"]]["metadata"] == {"refund_ref": "ticket_1"}


def test_dropped_connection_after_the_refund_then_rerun_exactly_one(
    fake: Fake, tmp_path: Path, mirror_target: str
) -> None:
    app_, url = fake
    db = mirror_target  # a file, then a postgresql:// mirror
    pi = app_.seed_payment(1000)
    app_.faults = ["drop"]  # Stripe commits the refund, then the socket dies
    res = refund(url, db, pi, "ticket_2", "--amount", "1000", retries=0)
    assert res.exit_code == 5, res.output
    assert "outcome unknown" in res.stderr and "re-run the same command" in res.stderr
    [row] = ledger_rows(db)
    assert row["state"] == "pending" and row["lease_owner"] is None
    assert len(app_.refunds) == 1

    # The re-run's check sees Stripe's refund of 1000 but recognises it as its
    # own (same refund_ref), so it is not refused as exceeding the capture.
    res = refund(url, db, pi, "ticket_2", "--amount", "1000", "--json", retries=0)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["replayed"] is True and data["attempt"] == 2
    assert len(app_.refunds) == 1
    keys = app_.keys_sent("/v1/refunds")
    assert keys == [row["key"], row["key"]]
    [row] = ledger_rows(db)
    assert row["state"] == "succeeded" and row["object_id"] == data["id"]


def test_dropped_connection_sdk_retry_replays_one_refund(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    pi = app_.seed_payment(1000)
    app_.faults = ["drop"]
    res = refund(url, tmp_path / "m.db", pi, "ticket_2b", "--json", retries=2)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["replayed"] is True  # the SDK's retry, same key
    assert len(app_.refunds) == 1 and app_.replays == 1


def _spawn(url: str, db: Path | str, pi: str, ref: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "STRIPECTL"))}
    return subprocess.Popen(
        [sys.executable, "-m", "stripectl", "refunds", "create", "--payment-intent", pi,
         "--refund-ref", ref, "--amount", "300", "--json",
         *conn_args(url, db, retries=0, timeout=20)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_two_concurrent_commands_same_ref_one_refund(mirror_target: str) -> None:
    db = mirror_target  # a file, then a postgresql:// mirror
    open_store(db).close()
    app_ = RefundingStripe(delay=1.5)
    with serve(app_) as url:
        pi = app_.seed_payment(1000)
        procs = [_spawn(url, db, pi, "ticket_3"), _spawn(url, db, pi, "ticket_3")]
        outs = [p.communicate(timeout=60) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    results = [json.loads(out) for out, _ in outs]
    assert len(app_.refunds) == 1  # executed once
    assert results[0]["id"] == results[1]["id"]
    assert sorted(r["replayed"] for r in results) == [False, True]
    assert app_.conflicts == 0  # serialised by the ledger: Stripe never saw the race
    assert posts(app_) <= 2  # one, unless the second started after the first had finished


def _refund_in_thread(db: Path | str, url: str, pi: str, notes: list[str]) -> Any:
    from stripectl.gateway.client import GatewaySettings
    from stripectl.services.connection import open_gateway
    from stripectl.services.refunds import create_refund_checked
    from tests.fakes.idempotent import FAKE_KEY

    store = open_store(str(db))  # each thread its own connection, like two terminals
    try:
        gw = open_gateway(store, GatewaySettings(api_key=FAKE_KEY, api_base=url, timeout=20))
        return create_refund_checked(
            store, gw, RefundRequest(payment_intent=pi, refund_ref="ticket_3b", amount=300),
            options=ledger.LedgerOptions(lease_seconds=60, poll_seconds=0.05), notify=notes.append,
        )
    finally:
        store.close()


def test_second_invocation_waits_then_answers_without_a_request(mirror_target: str) -> None:
    import threading
    import time

    db = mirror_target  # a file, then a postgresql:// mirror
    open_store(db).close()
    app_ = RefundingStripe()
    app_.faults = ["hang"]  # the first refund is executed, its answer held back
    results: dict[str, Any] = {}
    notes_b: list[str] = []
    with serve(app_) as url:
        pi = app_.seed_payment(1000)
        try:
            a = threading.Thread(target=lambda: results.update(a=_refund_in_thread(db, url, pi, [])))
            a.start()
            deadline = time.monotonic() + 20
            while posts(app_) < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            b = threading.Thread(target=lambda: results.update(b=_refund_in_thread(db, url, pi, notes_b)))
            b.start()
            while not notes_b:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert "waiting for pid" in notes_b[0]
        finally:
            app_.release()
        a.join(20)
        b.join(20)
    assert results["a"].replayed is False and results["b"].replayed is True
    assert results["a"].obj["id"] == results["b"].obj["id"]
    assert posts(app_) == 1 and len(app_.refunds) == 1 and app_.conflicts == 0
    assert results["b"].to_json()["amount"] == 300 and results["b"].attempt == 2


def test_partial_then_full_refused_locally_with_figures(
    fake: Fake, tmp_path: Path, mirror_target: str
) -> None:
    app_, url = fake
    db = mirror_target  # a file, then a postgresql:// mirror
    pi = app_.seed_payment(1000)
    assert refund(url, db, pi, "ticket_4a", "--amount", "400").exit_code == 0
    res = refund(url, db, pi, "ticket_4b", "--amount", "1000")
    assert res.exit_code == 2, res.output
    assert "refused before any request" in res.stderr
    assert "captured 10.00 USD, already refunded 4.00 USD: 6.00 USD left" in res.stderr
    assert posts(app_) == 1  # the second never reached Stripe
    assert [r["key"] for r in ledger_rows(db)] == [ledger.derive_key("re", "ticket_4a")]
    # Without --amount: the rest, which fits.
    res = refund(url, db, pi, "ticket_4c", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["amount"] == 600
    # Now nothing is left at all.
    res = refund(url, db, pi, "ticket_4d", "--amount", "1")
    assert res.exit_code == 2 and "0.00 USD left" in res.stderr


def test_same_amount_under_another_ref_needs_allow_repeat(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    pi = app_.seed_payment(1000)
    assert refund(url, db, pi, "agent_a", "--amount", "300").exit_code == 0
    res = refund(url, db, pi, "agent_b", "--amount", "300")
    assert res.exit_code == 2, res.output
    assert "already has a refund of 3.00 USD under ref agent_a" in res.stderr
    assert "--allow-repeat" in res.stderr
    assert posts(app_) == 1
    res = refund(url, db, pi, "agent_b", "--amount", "300", "--allow-repeat", "--json")
    assert res.exit_code == 0, res.output
    assert len(app_.refunds) == 2


def test_refund_made_in_the_dashboard_counts_too(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    db = tmp_path / "m.db"
    pi = app_.seed_payment(1000)
    status, _ = app_._refund({"payment_intent": pi, "amount": "250"})  # no refund_ref
    assert status == 200
    res = refund(url, db, pi, "ticket_5", "--amount", "250")
    assert res.exit_code == 2 and "no refund ref (made outside stripectl)" in res.stderr
    res = refund(url, db, pi, "ticket_5", "--amount", "800")
    assert res.exit_code == 2 and "already refunded 2.50 USD: 7.50 USD left" in res.stderr
    assert posts(app_) == 0


def test_other_refs_unanswered_ledger_refund_blocks_a_repeat(
    fake: Fake, tmp_path: Path, mirror_target: str
) -> None:
    """Another stripectl claimed a refund of this payment and has not heard back:
    Stripe shows nothing yet, the ledger does (read inside the claim's transaction)."""
    app_, url = fake
    db = mirror_target  # a file, then a postgresql:// mirror
    pi = app_.seed_payment(1000)
    key, params = prepare_refund(RefundRequest(payment_intent=pi, refund_ref="agent_a", amount=500))
    store = open_store(str(db))
    ledger.claim(store, key=key, operation="refund.create", params=params,
                 options=ledger.LedgerOptions(lease_seconds=0), identity_flags="--refund-ref")
    store.close()
    res = refund(url, db, pi, "agent_b", "--amount", "500")
    assert res.exit_code == 2, res.output
    assert "under ref agent_a (ledger pending)" in res.stderr
    res = refund(url, db, pi, "agent_b", "--amount", "600")
    assert res.exit_code == 2 and "unresolved in the ledger 5.00 USD: 5.00 USD left" in res.stderr
    assert posts(app_) == 0


def test_a_refund_landing_between_check_and_send_is_refused_by_stripe(
    fake: Fake, tmp_path: Path
) -> None:
    """The local check is a courtesy; Stripe's rule is the last line: a Dashboard
    refund made after the check but before the POST makes ours too large."""
    app_, url = fake
    db = tmp_path / "m.db"
    pi = app_.seed_payment(1000)

    def dashboard_refund_first(req: Any) -> None:
        app_.on_execute = None
        assert app_._refund({"payment_intent": pi, "amount": "800"})[0] == 200

    app_.on_execute = dashboard_refund_first
    res = refund(url, db, pi, "ticket_race", "--amount", "500")
    assert res.exit_code == 4, res.output
    assert "greater than unrefunded amount on charge (200)" in res.stderr
    assert len(app_.refunds) == 1
    [row] = ledger_rows(db)
    assert row["state"] == "failed" and row["http_status"] == 400


def test_uncaptured_payment_is_not_refunded(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    pi = app_.seed_payment(1000, manual=True)
    res = refund(url, tmp_path / "m.db", pi, "ticket_6")
    assert res.exit_code == 2 and "nothing captured" in res.stderr
    assert "payments cancel" in res.stderr and posts(app_) == 0


def test_usage_errors_before_the_mirror_is_touched(fake: Fake, tmp_path: Path) -> None:
    _, url = fake
    db = tmp_path / "m.db"
    for extra, words in [
        (["--payment-intent", "ch_1"], "not a payment intent id"),
        (["--payment-intent", "pi_1", "--amount", "4.50"], "not an integer"),
        (["--payment-intent", "pi_1", "--reason", "because"], "Invalid value"),
        (["--payment-intent", "pi_1", "--metadata", "refund_ref=other"], "conflicts"),
    ]:
        res = runner.invoke(app, ["refunds", "create", "--refund-ref", "t", *extra,
                                  *conn_args(url, db)])
        assert res.exit_code == 2 and words in res.output, (extra, res.output)
    assert not db.exists()


# --- capture and cancel -------------------------------------------------------


def action(url: str, db: Path | str, verb: str, pi: str, *extra: str) -> Any:
    return runner.invoke(app, ["payments", verb, pi, *extra, *conn_args(url, db)])


def test_capture_once_then_replay_and_conflict(fake: Fake, tmp_path: Path, mirror_target: str) -> None:
    app_, url = fake
    db = mirror_target  # a file, then a postgresql:// mirror
    pi = app_.seed_payment(1000, manual=True)
    res = action(url, db, "capture", pi, "--amount", "700", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["status"] == "succeeded" and data["amount_received"] == 700
    assert "secret" not in res.stdout  # Stripe's answer carries the client secret
    assert data["replayed"] is False and data["idempotency_key"] == ledger.derive_key("capture", pi)
    res = action(url, db, "capture", pi, "--amount", "700")
    assert res.exit_code == 0
    assert any(line.split()[:2] == ["replayed", "yes"] for line in res.stdout.splitlines())
    res = action(url, db, "capture", pi, "--amount", "800")
    assert res.exit_code == 4 and "amount_to_capture: 700 -> 800" in res.stderr
    assert posts(app_, f"/v1/payment_intents/{pi}/capture") == 2  # the conflict never left
    [row] = ledger_rows(db)
    assert row["operation"] == "payment_intent.capture"
    assert json.loads(row["params"]) == {"amount_to_capture": 700, "payment_intent": pi}
    [mirrored] = mirror_rows(db, "payment_intents")
    assert mirrored["amount_received"] == 700 and mirrored["latest_charge"]


def test_capture_refused_by_stripe_when_not_requires_capture(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    pi = app_.seed_payment(1000)  # captured already
    res = action(url, tmp_path / "m.db", "capture", pi)
    assert res.exit_code == 4, res.output
    assert "status of succeeded" in res.stderr


def test_capture_more_than_capturable_refused_by_stripe(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    pi = app_.seed_payment(1000, manual=True)
    res = action(url, tmp_path / "m.db", "capture", pi, "--amount", "1500")
    assert res.exit_code == 4 and "greater than amount_capturable" in res.stderr


def test_cancel_then_replay(fake: Fake, tmp_path: Path, mirror_target: str) -> None:
    app_, url = fake
    db = mirror_target  # a file, then a postgresql:// mirror
    pi = app_.seed_payment(1000, manual=True)
    res = action(url, db, "cancel", pi, "--reason", "abandoned", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["status"] == "canceled" and data["cancellation_reason"] == "abandoned"
    res = action(url, db, "cancel", pi, "--reason", "abandoned", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["replayed"] is True
    assert app_.objects[pi]["status"] == "canceled"
    [mirrored] = mirror_rows(db, "payment_intents")
    assert mirrored["status"] == "canceled" and mirrored["cancellation_reason"] == "abandoned"


def test_cancel_keeps_the_creating_key_on_the_mirror_row(
    fake: Fake, tmp_path: Path, mirror_target: str
) -> None:
    _, url = fake
    db = mirror_target  # a file, then a postgresql:// mirror
    res = runner.invoke(app, ["payments", "create", "--amount", "900", "--currency", "usd",
                              "--order-ref", "ord_c1", "--json", *conn_args(url, db)])
    assert res.exit_code == 0, res.output
    pi = json.loads(res.stdout)["id"]
    assert action(url, db, "cancel", pi).exit_code == 0
    [row] = mirror_rows(db, "payment_intents")
    assert row["status"] == "canceled"
    assert row["idempotency_key"] == ledger.derive_key("pi", "ord_c1")
    assert sorted(r["operation"] for r in ledger_rows(db)) == ["payment_intent.cancel",
                                                               "payment_intent.create"]


def test_cancel_of_a_succeeded_payment_is_stripes_error(fake: Fake, tmp_path: Path) -> None:
    app_, url = fake
    pi = app_.seed_payment(1000)
    res = action(url, tmp_path / "m.db", "cancel", pi)
    assert res.exit_code == 4 and "You cannot cancel this PaymentIntent" in res.stderr
    assert "Traceback" not in res.output


def test_show_lists_refunds_and_ledger(fake: Fake, tmp_path: Path, mirror_target: str) -> None:
    app_, url = fake
    db = mirror_target  # a file, then a postgresql:// mirror
    pi = app_.seed_payment(1000)
    assert refund(url, db, pi, "ticket_7", "--amount", "250").exit_code == 0
    res = runner.invoke(app, ["payments", "show", pi, "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [r["refund_ref"] for r in data["refunds"]] == ["ticket_7"]
    assert data["amount_refunded"] == 250 and data["refund_state"] == "partially_refunded"
    assert [row["operation"] for row in data["ledger"]] == ["refund.create"]
    res = runner.invoke(app, ["payments", "show", pi, "--db", str(db)])
    assert res.exit_code == 0 and "ticket_7" in res.stdout
    res = runner.invoke(app, ["payments", "show", "pi_unknown", "--db", str(db)])
    assert res.exit_code == 2 and "knows nothing of pi_unknown" in res.stderr
    missing = tmp_path / "none.db"
    res = runner.invoke(app, ["payments", "show", pi, "--db", str(missing)])
    assert res.exit_code == 2 and "no mirror at" in res.stderr and not missing.exists()
    if db.startswith("postgresql://"):  # a schema with no mirror in it: not created either
        res = runner.invoke(app, ["--schema", "nobody_here", "payments", "show", pi, "--db", db])
        assert res.exit_code == 2 and "no mirror at" in res.stderr
        assert [r["refund_ref"] for r in mirror_rows(db, "refunds")] == ["ticket_7"]
    res = runner.invoke(app, ["payments", "show", "ch_1", "--db", str(missing)])
    assert res.exit_code == 2 and "not a payment intent id" in res.stderr


@given(
    captured=st.integers(1, 10_000),
    steps=st.lists(st.tuples(st.integers(1, 10_000) | st.none(), st.booleans()), max_size=8),
)
def test_checked_refunds_never_exceed_the_capture(
    captured: int, steps: list[tuple[int | None, bool]]
) -> None:
    """Whatever sequence of refunds (partial, full, repeated) is asked for, the
    ones the local check lets through add up to at most what was captured."""
    from stripectl.errors import UsageError
    from stripectl.services.refunds import Prior, Standing, check

    standing = Standing(payment_intent="pi_x", currency="usd", status="succeeded",
                        captured=captured, refunded=0)
    for n, (amount, allow_repeat) in enumerate(steps):
        try:
            sent = check(standing, amount, f"ref_{n}", allow_repeat=allow_repeat)
        except UsageError:
            continue
        assert 0 < sent <= standing.refundable
        standing.refunded += sent
        standing.priors.append(Prior(f"ref_{n}", sent, "succeeded", "stripe"))
    assert standing.refunded <= captured
