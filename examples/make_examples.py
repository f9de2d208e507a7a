"""Regenerate examples/deliveries/ (run from the repo root: python examples/make_examples.py).

Deterministic: fixed timestamps, seeded ids and a seeded RNG, so re-running gives
byte-identical files. Everything is signed with the obviously fake example secret
below; see examples/README.md for what each file demonstrates.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import factories as f  # noqa: E402

SECRET = f.EXAMPLE_SECRET  # whsec_stripectl_example_0000000000000000 (fake)
OUT = ROOT / "examples" / "deliveries"
T0 = f.T0  # 2026-11-01T00:00:00Z
H = 3600


def compact(evt: dict[str, Any]) -> str:
    return json.dumps(evt, separators=(",", ":"))


def pretty(evt: dict[str, Any]) -> str:
    # What Stripe actually sends: 2-space indented UTF-8 JSON.
    return json.dumps(evt, indent=2, ensure_ascii=False)


def deliver(rng: random.Random, evt: dict[str, Any], *, delay: int = 0,
            body: str | None = None) -> dict[str, Any]:
    """One delivery attempt: signed a moment after the event, received 1-5 s later."""
    t = evt["created"] + rng.randint(1, 4) + delay
    return f.envelope(body or compact(evt), SECRET, t=t, received_at=t + rng.randint(1, 5))


def redeliver(rng: random.Random, first: dict[str, Any]) -> dict[str, Any]:
    """Stripe retrying the same event minutes later: same body, new signature timestamp."""
    t = int(first["headers"]["Stripe-Signature"].split(",")[0][2:]) + rng.randint(180, 600)
    return f.envelope(first["body"], SECRET, t=t, received_at=t + rng.randint(1, 3))


def write_jsonl(name: str, envelopes: list[dict[str, Any]]) -> None:
    # File order is arrival order, as a logging receiver would have written it.
    envelopes = sorted(envelopes, key=lambda e: (e["received_at"], e["body"]))
    text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in envelopes)
    (OUT / name).write_text(text, encoding="utf-8")


def lifecycle_file(rng: random.Random) -> None:
    # Ana: new shape (endive), renews once, cancels at period end, is deleted.
    ana = f.lifecycle("sub_1ExAnaBasic0000000000", "cus_1ExAna0000000", T0 - 60 * f.DAY,
                      price="price_pro", user_id="user_ana", plan_name="pro",
                      email="ana@example.com", failed_renewal=False,
                      payment_succeeded=False)
    # Ben: old shape (2024-06-20), one failed renewal, recovered, still active.
    ben = f.lifecycle("sub_1ExBenBasic0000000000", "cus_1ExBen0000000", T0 - 80 * f.DAY,
                      shape="old", user_id="user_ben", plan_name="basic",
                      email="ben@example.com", cancel=False, payment_succeeded=False)
    # Retried deliveries, chosen so that arrival order lies:
    delays = {
        # created and its first update share a second; created arrives 25 s late.
        (0, "customer.subscription.created#1"): 25,
        # the period roll-over ("active") arrives 2 h late, after the past_due update.
        (1, "customer.subscription.updated#3"): 2 * H,
        (1, "invoice.paid#1"): 70,
    }
    envelopes: list[dict[str, Any]] = []
    firsts: dict[tuple[int, str], dict[str, Any]] = {}
    for who, events in enumerate((ana, ben)):
        seen: dict[str, int] = {}
        for evt in events:
            n = seen[evt["type"]] = seen.get(evt["type"], 0) + 1
            key = (who, f"{evt['type']}#{n}")
            env = deliver(rng, evt, delay=delays.get(key, 0))
            firsts[key] = env
            envelopes.append(env)
    for key in ((0, "customer.subscription.deleted#1"), (0, "checkout.session.completed#1"),
                (1, "invoice.payment_failed#1"), (1, "customer.subscription.updated#4")):
        envelopes.append(redeliver(rng, firsts[key]))
    write_jsonl("lifecycle.jsonl", envelopes)


def _who(cus: str) -> str:
    return cus.removeprefix("cus_1Ex").rstrip("0").lower()  # cus_1ExCleo000000 -> cleo


def dunning_events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def sub_event(sub_id: str, cus: str, status: str, at: int, prev: dict[str, Any] | None,
                  shape: str, latest: str, kind: str = "customer.subscription.updated",
                  **kw: Any) -> None:
        obj = f.subscription(sub_id, cus, status, price="price_team", shape=shape,
                             created=T0 - 90 * f.DAY, current_period_start=T0,
                             current_period_end=T0 + f.MONTH, latest_invoice=latest,
                             metadata={"user_id": f"user_{_who(cus)}", "plan_name": "team"}, **kw)
        out.append(f.event(kind, obj, id=f.rid("evt", sub_id, at, kind), created=at,
                           previous_attributes=prev))

    def inv_event(kind: str, inv_id: str, sub_id: str, cus: str, status: str, at: int,
                  attempts: int, next_at: int | None, shape: str) -> None:
        obj = f.invoice(inv_id, sub_id, cus, status, attempts, next_at, shape, created=T0,
                        price="price_team", period_start=T0,
                        email=f"{_who(cus)}@example.com")
        out.append(f.event(kind, obj, id=f.rid("evt", inv_id, at, kind), created=at))

    # Cleo (new shape): renewal fails twice, 3-D Secure is required, she authenticates.
    s, c, i = "sub_1ExCleoTeam00000000000", "cus_1ExCleo000000", "in_1ExCleoRenewal00000000"
    first = T0 + H
    sub_event(s, c, "active", T0, {"latest_invoice": "in_1ExCleoFirst0000000000"}, "new", i)
    inv_event("invoice.payment_failed", i, s, c, "open", first, 1, first + 3 * f.DAY, "new")
    sub_event(s, c, "past_due", first, {"status": "active"}, "new", i)
    second = first + 3 * f.DAY
    inv_event("invoice.payment_failed", i, s, c, "open", second, 2, second + 5 * f.DAY, "new")
    third = second + 5 * f.DAY
    inv_event("invoice.payment_action_required", i, s, c, "open", third, 3, None, "new")
    paid = third + 6 * H
    inv_event("invoice.paid", i, s, c, "paid", paid, 3, None, "new")
    sub_event(s, c, "active", paid, {"status": "past_due"}, "new", i)

    # Dev (old shape): every retry fails; retries run out and the subscription goes unpaid.
    s, c, i = "sub_1ExDevTeam000000000000", "cus_1ExDev0000000", "in_1ExDevRenewal000000000"
    at = T0 + 2 * H
    inv_event("invoice.payment_failed", i, s, c, "open", at, 1, at + 3 * f.DAY, "old")
    sub_event(s, c, "past_due", at, {"status": "active"}, "old", i)
    inv_event("invoice.payment_failed", i, s, c, "open", at + 3 * f.DAY, 2, at + 8 * f.DAY,
              "old")
    last = at + 8 * f.DAY
    inv_event("invoice.payment_failed", i, s, c, "open", last, 3, None, "old")
    sub_event(s, c, "unpaid", last, {"status": "past_due"}, "old", i)

    # Eve (new shape): retries run out and the subscription is canceled.
    s, c, i = "sub_1ExEveTeam000000000000", "cus_1ExEve0000000", "in_1ExEveRenewal000000000"
    at = T0 + 3 * H
    inv_event("invoice.payment_failed", i, s, c, "open", at, 1, at + 4 * f.DAY, "new")
    sub_event(s, c, "past_due", at, {"status": "active"}, "new", i)
    last = at + 4 * f.DAY
    inv_event("invoice.payment_failed", i, s, c, "open", last, 2, None, "new")
    sub_event(s, c, "canceled", last, None, "new", i, kind="customer.subscription.deleted",
              canceled_at=last, ended_at=last)
    out[-1]["data"]["object"]["cancellation_details"]["reason"] = "payment_failed"
    return out


def single_files(rng: random.Random) -> None:
    # tampered.json: signed, then someone flipped past_due to active in the body.
    sub = f.subscription("sub_1ExTamperTeam000000000", "cus_1ExMallory0000", "past_due",
                         price="price_team", created=T0 - 40 * f.DAY,
                         current_period_start=T0 - 10 * f.DAY, metadata={"user_id": "user_mal"})
    evt = f.event("customer.subscription.updated", sub, id=f.rid("evt", "tampered"),
                  created=T0 - 2 * f.DAY, previous_attributes={"status": "active"})
    env = deliver(rng, evt)
    env["body"] = env["body"].replace('"status":"past_due"', '"status":"active"', 1)
    (OUT / "tampered.json").write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")

    # single-envelope.json: one subscription.created, body pretty-printed as Stripe sends it.
    sub = f.subscription("sub_1ExFinnTrial00000000000", "cus_1ExFinn0000000", "trialing",
                         price="price_pro", created=T0 + 5 * H, trial_end=T0 + 5 * H + 14 * f.DAY,
                         current_period_end=T0 + 5 * H + 14 * f.DAY,
                         metadata={"user_id": "user_finn", "plan_name": "pro"})
    evt = f.event("customer.subscription.created", sub, id=f.rid("evt", "single"),
                  request_id=f.rid("req", "single", length=15),
                  idempotency_key="stripectl-example-finn-0001")
    env = deliver(rng, evt, body=pretty(evt))
    (OUT / "single-envelope.json").write_text(json.dumps(env, indent=2) + "\n", encoding="utf-8")

    # raw-request.http: an invoice.paid exactly as it hit the endpoint (UTF-8 body, CRLF head).
    inv = f.invoice("in_1ExGabiFirst00000000000", "sub_1ExGabiBasic0000000000",
                    "cus_1ExGabi0000000", "paid", 1, None, created=T0 + 6 * H,
                    billing_reason="subscription_create", email="gabi@example.com")
    evt = f.event("invoice.paid", inv, id=f.rid("evt", "raw"), created=T0 + 6 * H)
    body = pretty(evt)
    header = f.sign(body, SECRET, T0 + 6 * H + 2)
    head = "\r\n".join([
        "POST /webhooks/stripe HTTP/1.1",
        "Host: localhost:4242",
        "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Content-Type: application/json; charset=utf-8",
        "Cache-Control: no-cache",
        "Accept: */*; q=0.5, text/xml",
        f"Content-Length: {len(body.encode('utf-8'))}",
        f"Stripe-Signature: {header}",
    ])
    (OUT / "raw-request.http").write_bytes((head + "\r\n\r\n" + body).encode("utf-8"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    f.reset_ids()
    rng = random.Random(20261101)
    lifecycle_file(rng)
    write_jsonl("dunning.jsonl", [deliver(rng, e) for e in dunning_events()])
    single_files(rng)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT}/ ({total // 1024} KB)", file=sys.stderr)


if __name__ == "__main__":
    main()
