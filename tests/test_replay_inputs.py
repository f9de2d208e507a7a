"""Bad input: each is a clean per-delivery rejection, never a crash or an abort."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from freezegun import freeze_time

from tests import factories as f
from tests.replay_helpers import SECRET, run, run_json, write_jsonl


def _good(n: int = 1, created: int = f.T0) -> dict[str, object]:
    return f.event("customer.created", f.customer(f"cus_in{n}"), id=f"evt_in{n}", created=created)


def _reasons(report: dict[str, object]) -> list[str | None]:
    return [e["reason"] for e in report["events"]]  # type: ignore[index,union-attr]


def test_every_kind_of_bad_delivery_is_rejected_with_a_reason(tmp_path: Path) -> None:
    good = _good()
    body = f.body_of(good)
    t = f.T0
    thin = {
        "id": "evt_thin",
        "object": "v2.core.event",
        "type": "v1.billing.meter.error_report_triggered",
        "created": "2026-11-01T00:00:00Z",
        "related_object": {"id": "mtr_1"},
    }
    no_id = {
        "object": "event",
        "type": "customer.created",
        "created": t,
        "data": {"object": {"id": "cus_x"}},
    }
    cases = [
        f.envelope(good, t=t),  # fine
        {"received_at": t, "headers": {}, "body": body},  # no signature
        {"received_at": t, "headers": {"Stripe-Signature": "garbage"}, "body": body},
        f.envelope(good, "whsec_wrong_secret_0000", t=t),  # wrong secret
        {**f.envelope(good, t=t), "body": body.replace("cus_in1", "cus_XX1")},  # tampered
        f.envelope(good, t=t + 1, received_at=t + 1 + 301),  # stale
        f.envelope(good, t=t + 2, received_at=t + 2 - 301),  # far future
        f.envelope("{not json", t=t),  # valid signature over invalid JSON
        f.envelope(json.dumps(no_id), t=t),
        f.envelope(json.dumps(thin), t=t),
        f.envelope("", t=t),
        {
            "received_at": t,
            "headers": {"Stripe-Signature": f.sign(body, t=t)},
            "body": {"parsed": True},
        },
    ]
    p = write_jsonl(tmp_path / "bad.jsonl", cases)
    with p.open("a") as fh:
        fh.write('{"received_at": 1, "headers": {}, "bo')  # truncated last line
    code, report = run_json(
        "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db")
    )
    assert code == 1
    assert _reasons(report) == [
        None,
        "no_signature",
        "garbled_signature",
        "bad_signature",
        "bad_signature",
        "expired",
        "future_timestamp",
        "malformed",
        "malformed",
        "thin_event",
        "empty",
        "malformed",
        "malformed",
    ]
    # A thin event is legitimate: verified, stored, not applied (not a rejection).
    assert report["events"][9]["outcome"] == "ignored"
    assert report["summary"]["applied"] == 1 and report["summary"]["rejected"] == 11
    # Rejected before their body was trusted: the event id each claims, unverified.
    claimed = [(e["event_id"], e["claimed_event_id"]) for e in report["events"][1:7]]
    assert claimed == [(None, good["id"])] * 6
    assert all("(unverified)" in e["note"] for e in report["events"][1:7])
    conn = sqlite3.connect(tmp_path / "m.db")
    stored = conn.execute("SELECT outcome, count(*) FROM events GROUP BY outcome").fetchall()
    assert dict(stored) == {"applied": 1, "rejected": 11, "ignored": 1}  # nothing lost


def test_non_utf8_body_and_huge_body(tmp_path: Path) -> None:
    from stripectl.webhooks.delivery import Delivery
    from stripectl.webhooks.envelope import envelope_line

    raw = b'{"id": "evt_\xff", "type": "customer.created"}'
    bad_utf8 = Delivery(
        source="x", body=raw, headers={"Stripe-Signature": "t=1,v1=00"}, received_at=1
    )
    huge_body = json.dumps({"id": "evt_big", "pad": "x" * (20 * 1024 * 1024)})
    p = tmp_path / "d.jsonl"
    p.write_text(envelope_line(bad_utf8) + "\n" + json.dumps(f.envelope(huge_body, t=f.T0)) + "\n")
    code, report = run_json(
        "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db")
    )
    assert code == 1
    assert _reasons(report) == ["not_utf8", "too_large"]


def test_unreadable_path_is_a_usage_error(tmp_path: Path) -> None:
    from tests.replay_helpers import run

    result = run(
        "replay-webhook",
        str(tmp_path / "missing"),
        "--secret",
        SECRET,
        "--db",
        str(tmp_path / "m.db"),
    )
    assert result.exit_code == 2
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


def test_secret_rotation_any_secret_passes(tmp_path: Path) -> None:
    old, new = "whsec_stripectl_old_00000000", "whsec_stripectl_new_00000000"
    envs = [f.envelope(_good(1), old, t=f.T0), f.envelope(_good(2), new, t=f.T0)]
    p = write_jsonl(tmp_path / "d.jsonl", envs)
    code, report = run_json(
        "replay-webhook", str(p), "--secret", old, "--secret", new, "--db", str(tmp_path / "m.db")
    )
    assert code == 0 and report["summary"]["applied"] == 2


def test_secret_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write_jsonl(tmp_path / "d.jsonl", [f.envelope(_good(), t=f.T0)])
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    code, report = run_json("replay-webhook", str(p), "--db", str(tmp_path / "m.db"))
    assert code == 0 and report["summary"]["applied"] == 1


@pytest.mark.parametrize(
    ("offset", "reason"), [(300, None), (301, "expired"), (-300, None), (-301, "future_timestamp")]
)
def test_tolerance_is_judged_against_received_at_not_now(
    tmp_path: Path, offset: int, reason: str | None
) -> None:
    # A year after the delivery: the wall clock must not matter, only received_at.
    env = f.envelope(_good(), t=f.T0, received_at=f.T0 + offset)
    p = write_jsonl(tmp_path / "d.jsonl", [env])
    with freeze_time("2027-11-01"):
        _, report = run_json(
            "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db")
        )
    assert _reasons(report) == [reason]


def test_missing_received_at_is_noted_not_rejected(tmp_path: Path) -> None:
    env = f.envelope(_good(), t=f.T0)
    del env["received_at"]
    p = write_jsonl(tmp_path / "d.jsonl", [env])
    code, report = run_json(
        "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db")
    )
    assert code == 0
    assert report["events"][0]["note"] == "no received_at: freshness not checked"


def test_unsigned_events_are_marked_unverified_everywhere(tmp_path: Path) -> None:
    sub = f.subscription("sub_unsigned", status="active")
    (tmp_path / "evt.json").write_text(
        json.dumps(f.event("customer.subscription.created", sub, id="evt_u1"))
    )
    code, report = run_json(
        "replay-webhook", str(tmp_path / "evt.json"), "--unsigned", "--db", str(tmp_path / "m.db")
    )
    assert code == 0
    assert report["events"][0]["verified"] is False
    assert "unverified" in report["events"][0]["note"]
    assert report["subscriptions"][0]["verified"] is False


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_signed_bodies_of_the_wrong_shape_are_rejected_not_a_crash(tmp_path: Path, jobs: str) -> None:
    """Values SQLite cannot store, or of a type the snapshot cannot read, once
    aborted the whole batch with exit 70 (OverflowError, UnicodeEncodeError,
    ValueError). Each is now one malformed delivery; the rest is applied."""
    sub = f.subscription(id="sub_1Shape", customer="cus_1Shape")

    def variant(n: int, **changes: object) -> dict[str, object]:
        return f.event(
            "customer.subscription.updated", {**sub, **changes}, id=f"evt_shape{n}", created=f.T0 + n
        )

    big = 123456789012345678901234567890
    bodies = [
        f.body_of(variant(1, quantity=2**63, items={"object": "list", "data": []})),
        f.body_of(variant(2, quantity=big, items={"object": "list", "data": []})),
        f.body_of(variant(3, metadata={"tier": big})),  # beyond 64 bits: int or float by parser
        f.body_of(variant(4, items={"object": "list", "data": [{"price": "p", "quantity": "abc"}]})),
        f.body_of(variant(5, metadata=["not", "a", "map"])),
        f.body_of(variant(6, status={"not": "a string"})),
        # A lone surrogate, escaped: valid JSON, but not text SQLite can store.
        f.body_of(variant(7)).replace('"cus_1Shape"', '"cus_\\ud800"', 1),
        json.dumps({**variant(8), "created": big}),
        f.body_of(_good(9)),
        f.body_of(variant(10)).replace('"evt_shape10"', '"evt_\\ud800"', 1),
        f.body_of(variant(11)).replace('"sub_1Shape"', '"sub_\\udfff"'),
    ]
    p = write_jsonl(tmp_path / "shapes.jsonl", [f.envelope(b, t=f.T0) for b in bodies])
    code, report = run_json(
        "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"), "--jobs", jobs
    )
    assert code == 1
    assert [(e["event_id"], e["outcome"], e["reason"]) for e in report["events"]] == [
        *[(f"evt_shape{n}", "rejected", "malformed") for n in range(1, 9)],
        ("evt_in9", "applied", None),
        (None, "rejected", "malformed"),
        ("evt_shape11", "rejected", "malformed"),
    ]
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("SELECT count(*) FROM events WHERE outcome = 'rejected'").fetchone() == (10,)
    assert conn.execute("SELECT count(*) FROM subscriptions").fetchone() == (0,)
    notes = [n for (n,) in conn.execute("SELECT note FROM events WHERE outcome = 'rejected'")]
    assert any("64-bit" in n for n in notes) and any("Unicode" in n for n in notes)


@pytest.mark.parametrize("parallel_path", [False, True])
def test_a_file_name_that_is_not_utf8_is_stored_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel_path: bool
) -> None:
    """os.fsdecode turns such a name into surrogate escapes, which SQLite
    refused (exit 70 for the whole run)."""
    from stripectl.services import parallel

    if parallel_path:  # the workers' byte ranges, for a small file
        monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
        monkeypatch.setattr(parallel, "RANGE_BYTES", 64)
    folder = tmp_path / "in"
    folder.mkdir()
    name = os.fsdecode(b"d\xff")
    (folder / f"{name}.json").write_text(json.dumps(f.envelope(_good(1), t=f.T0)))
    write_jsonl(folder / f"{name}.jsonl", [f.envelope(_good(n), t=f.T0) for n in (2, 3)])
    code, report = run_json(
        "replay-webhook", str(folder), "--secret", SECRET, "--db", str(tmp_path / "m.db"), "--jobs", "2"
    )
    assert code == 0
    sources = [e["source"] for e in report["events"]]
    assert sources == [f"{folder}/d\\xff.json", f"{folder}/d\\xff.jsonl:1", f"{folder}/d\\xff.jsonl:2"]
    conn = sqlite3.connect(tmp_path / "m.db")
    assert [s for (s,) in conn.execute("SELECT source FROM events ORDER BY source")] == sources


def test_the_table_prints_input_as_text_not_markup(tmp_path: Path) -> None:
    """rich read "[/x]" in an event id as a closing tag and raised (exit 70),
    and "[bold]" in a file name or metadata as style."""
    sub = f.subscription(id="sub_1Markup", customer="cus_1Markup", metadata={"user_id": "[red]u1[/red]"})
    folder = tmp_path / "in"
    folder.mkdir()
    bodies = [
        f.body_of(f.event("customer.subscription.created", sub, id="evt_[/x]", created=f.T0)),
        f.body_of(f.event("customer.subscription.updated", sub, id="evt_mk2", created=f.T0 + 1))[:-1],
    ]
    write_jsonl(folder / "[bold]d.jsonl", [f.envelope(b, t=f.T0) for b in bodies])
    result = run(
        "replay-webhook", str(folder), "--secret", SECRET, "--db", str(tmp_path / "m.db"), "--events", "all"
    )
    assert result.exit_code == 1, result.stderr  # the truncated body is rejected
    out = result.stdout.replace("\n", "")
    assert "evt_[/x]" in out and "[bold]d.jsonl" in out and "[red]u1[/red]" in out


@pytest.mark.parametrize("parallel_path", [False, True])
def test_hostile_deliveries_are_each_rejected_and_the_rest_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel_path: bool
) -> None:
    """Each of these stopped the whole run with exit 70 (RecursionError,
    OverflowError, UnicodeEncodeError) before it was a rejection."""
    from stripectl.services import parallel

    if parallel_path:
        monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
        monkeypatch.setattr(parallel, "RANGE_BYTES", 64)
    sub = f.subscription(id="sub_1Hostile", customer="cus_1Hostile")
    deep = "[" * 1000 + "]" * 1000  # orjson reads it (up to 1024), str()/json.dumps cannot

    def body(n: int, **changes: object) -> str:
        event = f.event(
            "customer.subscription.updated", {**sub, **changes}, id=f"evt_h{n}", created=f.T0 + n
        )
        return f.body_of(event)

    one_item = {"object": "list", "data": [{"price": "p", "quantity": 1}]}
    no_items = {"object": "list", "data": []}
    lines = [
        f.envelope(body(1, metadata={"a": "X"}).replace('"X"', deep), t=f.T0),
        f.envelope(body(2, items=one_item).replace('"quantity":1', '"quantity":1e999'), t=f.T0),
        f.envelope(body(3, items=one_item).replace('"quantity":1', '"quantity":Infinity'), t=f.T0),
        # -2**63 - 1: the float orjson makes of it is exactly -2**63
        f.envelope(body(4, quantity=-(2**63) - 1, items=no_items), t=f.T0),
        {**f.envelope(body(5), t=f.T0), "headers": {"Stripe-Signature": "\ud800"}},
    ]
    sixth = f.envelope(body(6), t=f.T0)
    sixth["headers"] = {"Stripe-Signature": sixth["headers"]["Stripe-Signature"] + ",v1=\ud800"}
    lines.append(sixth)
    text = "".join(json.dumps(line) + "\n" for line in lines)
    good = f.envelope(body(9), t=f.T0)
    text += json.dumps({**good, "headers": {"Stripe-Signature": "X"}}).replace('"X"', deep) + "\n"
    text += json.dumps({**good, "body": "X"}).replace('"X"', deep) + "\n"
    text += json.dumps({**good, "body": "\ud800" + good["body"]}) + "\n"
    text += json.dumps(good) + "\n"
    p = tmp_path / "hostile.jsonl"
    p.write_text(text)
    code, report = run_json(
        "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"), "--jobs", "2"
    )
    assert code == 1
    outcomes = [(e["outcome"], e["reason"]) for e in report["events"]]
    assert outcomes == [
        *[("rejected", "malformed")] * 4,
        *[("rejected", "garbled_signature")] * 2,
        *[("rejected", "malformed")] * 3,
        ("applied", None),
    ]
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("SELECT count(*), sum(outcome = 'rejected') FROM events").fetchone() == (10, 9)
    assert conn.execute("SELECT quantity FROM subscriptions").fetchall() == [(1,)]


def test_an_id_that_is_a_number_is_no_id(tmp_path: Path) -> None:
    """str() of 2**64 would store whatever the JSON parser made of it
    ("18446744073709551616" from json, "1.8446744073709552e+19" from orjson)."""
    sub = {**f.subscription(id="sub_1NumId", customer="cus_1NumId"), "customer": 2**64}
    event = f.event("customer.subscription.created", sub, id="evt_numid", created=f.T0)
    p = write_jsonl(tmp_path / "d.jsonl", [f.envelope(event, t=f.T0)])
    code, _ = run_json("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"))
    assert code == 0
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("SELECT id, customer FROM subscriptions").fetchall() == [("sub_1NumId", None)]


def test_the_table_shows_control_characters_and_absurd_times_escaped(tmp_path: Path) -> None:
    """ESC from input reached the terminal; a period end in year 10**11
    raised OSError in the table (exit 70) though it was stored."""
    sub = f.subscription(id="sub_1Esc", customer="cus_1Esc", current_period_end=2**62)
    event = f.event("customer.subscription.created", sub, id="evt_\x1b[31mred", created=f.T0)
    p = write_jsonl(tmp_path / "d.jsonl", [f.envelope(event, t=f.T0)])
    db = str(tmp_path / "m.db")
    result = run("replay-webhook", str(p), "--secret", SECRET, "--db", db, "--events", "all")
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "evt_\\x1b[31mred" in result.stdout
    assert str(2**62) in result.stdout


@pytest.mark.parametrize("parallel_path", [False, True])
def test_how_deep_metadata_may_nest_is_a_fixed_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel_path: bool
) -> None:
    """Where RecursionError strikes depends on the stack: metadata nested
    ~970 levels was applied by the serial path and rejected by the workers.
    The bound is METADATA_DEPTH on every path (Stripe's metadata is flat)."""
    from stripectl.services import parallel
    from stripectl.webhooks.inspect import METADATA_DEPTH

    if parallel_path:
        monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
        monkeypatch.setattr(parallel, "RANGE_BYTES", 64)
    sub = f.subscription(id="sub_1Depth", customer="cus_1Depth")

    def body(i: int, levels: int) -> str:  # metadata nested `levels` dicts deep, itself the first
        meta = {**sub, "metadata": {"a": "X"}}
        event = f.event("customer.subscription.updated", meta, id=f"evt_d{levels}", created=f.T0 + i)
        below = '{"k":' * (levels - 1) + '"x"' + "}" * (levels - 1)  # json.dumps cannot go 970 deep
        return f.body_of(event).replace('"X"', below)

    levels = [METADATA_DEPTH, METADATA_DEPTH + 1, 970]
    bodies = [body(i, n) for i, n in enumerate(levels)]
    # An item's period end is copied into the `items` JSON column: bounded too.
    item = {"price": "p", "quantity": 1, "current_period_end": "X"}
    event = f.event("customer.subscription.updated", {**sub, "items": {"data": [item]}}, id="evt_ditem")
    bodies.append(f.body_of(event).replace('"X"', "[" * 970 + "]" * 970))
    p = write_jsonl(tmp_path / "d.jsonl", [f.envelope(b, t=f.T0) for b in bodies])
    code, report = run_json(
        "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"), "--jobs", "2"
    )
    assert code == 1
    assert [(e["outcome"], e["reason"]) for e in report["events"]] == [
        ("applied", None),
        *[("rejected", "malformed")] * 3,
    ]


def test_a_rejected_invoice_does_not_put_its_subscription_in_the_report(tmp_path: Path) -> None:
    """Its subscription id (a lone surrogate here) went to the access report,
    whose lookup raised UnicodeEncodeError after the commit (exit 70)."""
    inv = f.invoice(id="in_1Sur", subscription="sub_1Sur", customer="cus_1Sur")
    body = f.body_of(f.event("invoice.paid", inv, id="evt_sur", created=f.T0)).replace("sub_1Sur", "\\ud800")
    p = write_jsonl(tmp_path / "d.jsonl", [f.envelope(body, t=f.T0)])
    code, report = run_json("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"))
    assert code == 1
    assert [(e["outcome"], e["reason"]) for e in report["events"]] == [("rejected", "malformed")]
    assert report["subscriptions"] == []


def test_a_content_length_of_non_ascii_digits_is_not_a_crash(tmp_path: Path) -> None:
    """"²".isdigit() is True and int("²") raises ValueError (exit 70)."""
    body = f.body_of(_good(1))
    head = f"POST /webhooks HTTP/1.1\r\nStripe-Signature: {f.sign(body, t=f.T0)}\r\nContent-Length: "
    p = tmp_path / "dump.http"
    p.write_bytes(head.encode() + b"\xb2\r\n\r\n" + body.encode())
    code, report = run_json("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"))
    assert code == 0, report
    assert [e["outcome"] for e in report["events"]] == ["applied"]
