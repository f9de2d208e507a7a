"""The payload factories must look like Stripe's, or every test built on them lies."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import stripe

from stripectl.webhooks import snapshots, statemachine
from tests import factories as f

SECRET = "whsec_stripectl_example_0000"


@pytest.mark.parametrize("shape", ["new", "old"])
def test_subscription_and_invoice_events_have_realistic_size(shape: str) -> None:
    sub = f.subscription("sub_1Size", "cus_1Size", "active", shape=shape)
    inv = f.invoice("in_1Size", "sub_1Size", "cus_1Size", "paid", shape=shape)
    for obj, kind in ((sub, "customer.subscription.updated"), (inv, "invoice.paid")):
        size = len(f.body_of(f.event(kind, obj, previous_attributes={"status": "past_due"})))
        assert 2500 <= size <= 6000, (kind, shape, size)


def test_new_shape_moves_periods_to_items_and_invoice_subscription_to_parent() -> None:
    sub = f.subscription("sub_1New", "cus_1New", current_period_end=1_800_000_000)
    assert "current_period_end" not in sub and "plan" not in sub
    item = sub["items"]["data"][0]
    assert item["current_period_end"] == 1_800_000_000
    assert item["price"]["unit_amount"] == 1500 and item["price"]["recurring"]["interval"]
    inv = f.invoice("in_1New", "sub_1New", "cus_1New", "paid")
    for gone in ("subscription", "paid", "payment_intent", "charge"):
        assert gone not in inv
    assert inv["parent"]["type"] == "subscription_details"
    assert inv["parent"]["subscription_details"]["subscription"] == "sub_1New"
    assert f.event("invoice.paid", inv)["api_version"] == f.NEW_API


def test_old_shape_keeps_top_level_period_plan_and_invoice_subscription() -> None:
    sub = f.subscription("sub_1Old", "cus_1Old", current_period_end=1_800_000_000, shape="old")
    assert sub["current_period_end"] == 1_800_000_000 and sub["plan"]["id"] == "price_basic"
    assert "current_period_end" not in sub["items"]["data"][0]
    inv = f.invoice("in_1Old", "sub_1Old", "cus_1Old", "open", attempt_count=1, shape="old")
    assert inv["subscription"] == "sub_1Old" and inv["paid"] is False and "parent" not in inv
    assert f.event("invoice.payment_failed", inv)["api_version"] == f.OLD_API


def test_both_shapes_give_the_same_mirror_row() -> None:
    rows = [
        snapshots.subscription_row(
            f.subscription("sub_1Same", "cus_1Same", "past_due", price="price_pro", quantity=3,
                           current_period_end=1_800_000_000, shape=shape))
        for shape in ("new", "old")
    ]
    keep = ("status", "price", "quantity", "current_period_end", "customer")
    assert [{k: r[k] for k in keep} for r in rows] == [
        {"status": "past_due", "price": "price_pro", "quantity": 3,
         "current_period_end": 1_800_000_000, "customer": "cus_1Same"}
    ] * 2
    for shape in ("new", "old"):
        inv = f.invoice("in_1Same", "sub_1Same", "cus_1Same", "paid", shape=shape)
        assert snapshots.invoice_subscription(inv) == "sub_1Same"


def test_envelope_signature_verifies_and_a_changed_body_does_not() -> None:
    evt = f.event("customer.subscription.updated", f.subscription("sub_1Sig", "cus_1Sig"))
    env = f.envelope(evt, SECRET, t=f.T0)
    header = env["headers"]["Stripe-Signature"]
    assert header.startswith(f"t={f.T0},v1=") and env["received_at"] == f.T0 + 1
    assert json.loads(env["body"]) == evt
    assert stripe.WebhookSignature.verify_header(env["body"], header, SECRET, tolerance=None)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            env["body"].replace('"active"', '"canceled"'), header, SECRET, tolerance=None)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(env["body"], header, SECRET + "x", tolerance=None)


@pytest.mark.parametrize("shape", ["new", "old"])
def test_lifecycle_is_a_legal_ordered_history(shape: str) -> None:
    events = f.lifecycle("sub_1Life", "cus_1Life", f.T0, shape=shape)
    assert len({e["id"] for e in events}) == len(events)
    created = [e["created"] for e in events]
    assert created == sorted(created)
    assert {e["api_version"] for e in events} == {f.NEW_API if shape == "new" else f.OLD_API}
    kinds = [e["type"] for e in events]
    for needed in ("customer.created", "checkout.session.completed", "invoice.payment_failed",
                   "customer.subscription.created", "customer.subscription.deleted"):
        assert needed in kinds
    status = None
    for e in (e for e in events if e["type"].startswith("customer.subscription.")):
        new = e["data"]["object"]["status"]
        prev = e["data"].get("previous_attributes", {})
        if "status" in prev:
            assert prev["status"] == status, e["type"]
        assert statemachine.transition_problem(status, new) is None, (status, new)
        status = new
    assert status == "canceled"
    failed = next(e for e in events if e["type"] == "invoice.payment_failed")["data"]["object"]
    assert failed["attempt_count"] == 1 and failed["next_payment_attempt"] > failed["created"]
    session = next(e for e in events if e["type"] == "checkout.session.completed")
    assert session["data"]["object"]["metadata"] == {"user_id": "user_42", "plan_name": "basic"}


def test_same_second_ties_are_ordered_by_previous_attributes() -> None:
    events = f.lifecycle("sub_1Tie", "cus_1Tie", f.T0, same_second=True)
    created = next(e for e in events if e["type"] == "customer.subscription.created")
    first_update = next(e for e in events if e["type"] == "customer.subscription.updated")
    assert created["created"] == first_update["created"]
    assert first_update["data"]["previous_attributes"] == {"status": "incomplete"}
    apart = f.lifecycle("sub_1Tie", "cus_1Tie", f.T0, same_second=False)
    assert apart[1]["created"] < next(
        e for e in apart if e["type"] == "customer.subscription.updated")["created"]


def test_ids_are_deterministic() -> None:
    assert f.lifecycle("sub_1Det", "cus_1Det") == f.lifecycle("sub_1Det", "cus_1Det")
    assert f.rid("evt", "x", 1) == f.rid("evt", "x", 1) != f.rid("evt", "x", 2)
    assert len(f.rid("evt", "x")) == len("evt_") + 24


ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "deliveries"


def _load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_examples_match_the_generator(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _load_script(ROOT / "examples" / "make_examples.py")
    monkeypatch.setattr(gen, "OUT", tmp_path)
    gen.main()
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == ["dunning.jsonl", "lifecycle.jsonl", "raw-request.http",
                    "single-envelope.json", "tampered.json"]
    for name in made:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name
    assert sum((tmp_path / n).stat().st_size for n in made) < 200_000


def test_example_deliveries_verify_except_the_tampered_one() -> None:
    from stripectl.webhooks.envelope import iter_deliveries

    results = {}
    for d in iter_deliveries([EXAMPLES]):
        assert d.error is None, d.source
        try:
            stripe.WebhookSignature.verify_header(d.body.decode(), d.signature or "",
                                                  f.EXAMPLE_SECRET, tolerance=None)
            results[d.source] = "ok"
        except stripe.SignatureVerificationError:
            results[d.source] = "bad"
    assert [s for s, r in results.items() if r == "bad"] == [str(EXAMPLES / "tampered.json")]
    assert len(results) == 44
    lines = (EXAMPLES / "lifecycle.jsonl").read_text().splitlines()
    ids = [json.loads(json.loads(line)["body"])["id"] for line in lines]
    assert len(ids) - len(set(ids)) == 4  # the re-deliveries
    created = [json.loads(json.loads(line)["body"])["created"] for line in lines]
    assert created != sorted(created)  # arrival order is not event order


def test_bench_generator_writes_valid_signed_envelopes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from bench import _gen

    gen = _gen.write_deliveries(tmp_path / "d.jsonl", 37, sample=5)
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    assert len(lines) == gen.n == 37 and len(gen.sample) == 5
    for line in lines:
        env = json.loads(line)
        header = env["headers"]["Stripe-Signature"]
        assert stripe.WebhookSignature.verify_header(env["body"], header, _gen.SECRET,
                                                     tolerance=None)
        evt = json.loads(env["body"])
        assert 0 < env["received_at"] - int(header.split(",")[0][2:]) <= 60
        assert evt["object"] == "event" and evt["data"]["object"]["id"]
    assert len({json.loads(json.loads(x)["body"])["id"] for x in lines}) == 37
