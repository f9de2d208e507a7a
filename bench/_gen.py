"""Fast generator of signed webhook deliveries for the benchmarks (not product code).

Bodies come from tests/factories.py, rendered once per event kind and shape as a
%-template with markers for ids, timestamps and statuses; each delivery is then one
string format plus one HMAC. 100,000 deliveries take a couple of seconds, where
calling the factories and stripe's signing helper per delivery would take minutes.
The signature is computed exactly as Stripe does (HMAC-SHA256 of "{t}.{body}").
"""

from __future__ import annotations

import hmac
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import factories as f  # noqa: E402

SECRET = "whsec_stripectl_bench_000000000000000000"
START = f.T0 - 365 * f.DAY
ROUND = 10 * f.DAY  # one step of every subscription's history per round
OLD_EVERY = 5  # one subscription in five renders with the old api_version

# Markers: quoted in the JSON (they are strings there), replaced unquoted when the
# value is an int or null so the body is valid JSON with the right types.
_STR = ("EVT", "SUB", "CUS", "INV", "PREVINV", "STATUS", "PREV")
_INT = ("CREATED", "PS", "PE", "NEXT")


def _marker(name: str) -> str:
    return f"@@{name}@@"


def _compile(evt: dict[str, Any]) -> str:
    body = json.dumps(evt, separators=(",", ":")).replace("%", "%%")
    for name in _INT:
        body = body.replace(f'"{_marker(name)}"', f"%({name})s")
    for name in _STR:
        body = body.replace(_marker(name), f"%({name})s")
    # Fields the factories derive from an id (invoice number, hosted URL) keep a
    # fragment of the marker: make them a constant.
    body = re.sub(r"[A-Za-z0-9]*@@?[A-Za-z0-9@]*", "BENCH", body)
    assert "@" not in body, body
    return body


def _templates(shape: str) -> dict[str, str]:
    m = _marker
    created = START - 30 * f.DAY

    # Bodies near 2.5-3 KB: the deprecated `plan` twin of `price` is left out of
    # subscription items (new shape) and invoice lines (old shape).
    def sub(status: str) -> dict[str, Any]:
        obj = f.subscription(
            m("SUB"), m("CUS"), status, shape=shape, created=created,
            current_period_start=m("PS"), current_period_end=m("PE"),  # type: ignore[arg-type]
            latest_invoice=m("INV"), metadata={"user_id": "user_bench", "plan_name": "basic"},
        )
        if shape == "new":
            for item in obj["items"]["data"]:
                item.pop("plan")
        return obj

    def inv(status: str, attempts: int, next_at: Any) -> dict[str, Any]:
        obj = f.invoice(m("INV"), m("SUB"), m("CUS"), status, attempts, next_at, shape,
                        created=created, email="bench@example.com",
                        subscription_metadata={"user_id": "user_bench"})
        for line in obj["lines"]["data"]:
            line.pop("plan", None)
        return obj

    def evt(kind: str, obj: dict[str, Any], prev: dict[str, Any] | None = None) -> str:
        return _compile(f.event(kind, obj, id=m("EVT"), created=m("CREATED"),  # type: ignore[arg-type]
                                previous_attributes=prev))

    return {
        "roll": evt("customer.subscription.updated", sub("active"),
                    {"latest_invoice": m("PREVINV")}),
        "status": evt("customer.subscription.updated", sub(m("STATUS")), {"status": m("PREV")}),
        "paid": evt("invoice.paid", inv("paid", 1, None)),
        "paid2": evt("invoice.paid", inv("paid", 2, None)),
        "failed": evt("invoice.payment_failed", inv("open", 1, m("NEXT"))),
        "succeeded2": evt("invoice.payment_succeeded", inv("paid", 2, None)),
    }


# One subscription's history, one step per round: (template, status, previous status).
STEPS: tuple[tuple[str, str, str], ...] = (
    ("roll", "active", ""), ("paid", "", ""), ("roll", "active", ""), ("paid", "", ""),
    ("roll", "active", ""), ("failed", "", ""), ("status", "past_due", "active"),
    ("paid2", "", ""), ("status", "active", "past_due"), ("succeeded2", "", ""),
)


@dataclass
class Generated:
    path: Path
    n: int
    bytes_body: int = 0
    sample: list[tuple[str, str]] = field(default_factory=list)  # (body, Stripe-Signature)
    kinds: dict[str, int] = field(default_factory=dict)


def _sign(secret: bytes, t: int, body: str) -> str:
    mac = hmac.digest(secret, f"{t}.{body}".encode(), "sha256").hex()
    return f"t={t},v1={mac}"


def write_deliveries(path: Path, n: int, *, secret: str = SECRET, sample: int = 5000,
                     progress: Callable[[int], None] | None = None) -> Generated:
    """N envelopes as JSONL over ~N/10 subscriptions, in created order (rounds interleave)."""
    plain = {shape: _templates(shape) for shape in ("new", "old")}
    # The same templates JSON-escaped for the envelope's "body" string: substituted
    # values (ids, digits, status words) never need escaping, so no per-line encoding.
    escaped = {shape: {k: json.dumps(v)[1:-1] for k, v in t.items()} for shape, t in plain.items()}
    key = secret.encode()
    subs = max(1, -(-n // len(STEPS)))
    out = Generated(path=path, n=n)
    # Every stride-th delivery: the sample has the file's mix of event types and
    # payload shapes (the first deliveries are all one round of one kind).
    stride = max(1, n // sample) if sample else 0
    written = 0
    with path.open("w", encoding="utf-8") as fh:
        for k, (tmpl, status, prev) in enumerate(STEPS):
            period = START + (k // 2) * f.MONTH
            for s in range(subs):
                if written == n:
                    break
                created = START + k * ROUND + s
                values = {
                    "EVT": f"evt_1Bench{s:09d}{k:02d}{'0' * 3}", "SUB": f"sub_1Bench{s:015d}",
                    "CUS": f"cus_1Bench{s:05d}", "INV": f"in_1Bench{s:09d}{k // 2:02d}0000",
                    "PREVINV": f"in_1Bench{s:09d}{max(0, k // 2 - 1):02d}0000",
                    "STATUS": status, "PREV": prev, "CREATED": created, "PS": period,
                    "PE": period + f.MONTH, "NEXT": created + 3 * f.DAY,
                }
                shape = "old" if s % OLD_EVERY == 0 else "new"
                body = plain[shape][tmpl] % values
                t = created + 1 + (s + k) % 3
                header = _sign(key, t, body)
                fh.write(f'{{"received_at":{t + 1},"headers":{{"Stripe-Signature":"{header}"}},'
                         f'"body":"{escaped[shape][tmpl] % values}"}}\n')
                out.bytes_body += len(body)
                out.kinds[tmpl] = out.kinds.get(tmpl, 0) + 1
                if stride and written % stride == 0 and len(out.sample) < sample:
                    out.sample.append((body, header))
                written += 1
                if progress and written % 10000 == 0:
                    progress(written)
    return out
