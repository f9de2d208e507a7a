from __future__ import annotations

import json
from pathlib import Path

import pytest

from stripectl.errors import UsageError
from stripectl.webhooks.envelope import envelope_line, iter_deliveries
from tests import factories as f


def _event() -> dict[str, object]:
    return f.event("customer.created", f.customer("cus_env"), id="evt_env", created=f.T0)


def test_single_envelope_file_keeps_raw_body(tmp_path: Path) -> None:
    env = f.envelope(_event(), t=f.T0)
    (tmp_path / "one.json").write_text(json.dumps(env))
    [d] = list(iter_deliveries([tmp_path / "one.json"]))
    assert d.body == env["body"].encode()
    assert d.signature == env["headers"]["Stripe-Signature"]
    assert d.received_at == f.T0 + 1 and d.error is None


def test_jsonl_reports_each_line_and_keeps_going(tmp_path: Path) -> None:
    env = f.envelope(_event(), t=f.T0)
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(env) + "\n\n{truncated\n" + json.dumps(env) + "\n")
    ds = list(iter_deliveries([p]))
    assert [d.source for d in ds] == [f"{p}:1", f"{p}:3", f"{p}:4"]
    assert [d.error for d in ds] == [None, "malformed", None]


def test_jsonl_without_suffix_is_detected(tmp_path: Path) -> None:
    env = f.envelope(_event(), t=f.T0)
    p = tmp_path / "d.json"
    p.write_text(json.dumps(env) + "\n" + json.dumps(env) + "\n")
    assert [d.error for d in iter_deliveries([p])] == [None, None]


def test_folder_is_recursive_and_sorted(tmp_path: Path) -> None:
    env = f.envelope(_event(), t=f.T0)
    (tmp_path / "b").mkdir()
    for name in ("b/2.json", "a.json", "b/1.json", ".hidden.json"):
        (tmp_path / name).write_text(json.dumps(env))
    sources = [d.source for d in iter_deliveries([tmp_path])]
    assert sources == [str(tmp_path / n) for n in ("a.json", "b/1.json", "b/2.json")]


def test_raw_http_dump(tmp_path: Path) -> None:
    body = f.body_of(_event())
    sig = f.sign(body, t=f.T0)
    raw = (
        f"POST /webhooks/stripe HTTP/1.1\r\nHost: localhost\r\nStripe-Signature: {sig}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}"
    )
    (tmp_path / "req.http").write_bytes(raw.encode())
    [d] = list(iter_deliveries([tmp_path / "req.http"]))
    assert d.body == body.encode() and d.signature == sig and d.received_at is None


def test_truncated_http_dump_is_an_error_not_a_crash(tmp_path: Path) -> None:
    raw = b'POST /x HTTP/1.1\r\nContent-Length: 500\r\n\r\n{"id": 1'
    (tmp_path / "req.http").write_bytes(raw)
    [d] = list(iter_deliveries([tmp_path / "req.http"]))
    assert d.error == "truncated"


def test_bare_event_needs_unsigned(tmp_path: Path) -> None:
    (tmp_path / "evt.json").write_text(json.dumps(_event()))
    [refused] = list(iter_deliveries([tmp_path / "evt.json"]))
    assert refused.error == "unsigned"
    [accepted] = list(iter_deliveries([tmp_path / "evt.json"], allow_unsigned=True))
    assert accepted.unsigned and accepted.error is None


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"", "empty"), (b"  \n", "empty"), (b"\xff\xfe{}", "not_utf8"), (b"[1, 2", "malformed")],
)
def test_unreadable_files_become_rejections(tmp_path: Path, content: bytes, error: str) -> None:
    (tmp_path / "x.json").write_bytes(content)
    [d] = list(iter_deliveries([tmp_path / "x.json"]))
    assert d.error == error


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        list(iter_deliveries([tmp_path / "nope"]))


def test_non_utf8_body_round_trips_through_export(tmp_path: Path) -> None:
    from stripectl.webhooks.delivery import Delivery

    d = Delivery(
        source="x", body=b'{"id": "\xff"}', headers={"Stripe-Signature": "t=1,v1=aa"}, received_at=5
    )
    (tmp_path / "e.jsonl").write_text(envelope_line(d) + "\n")
    [back] = list(iter_deliveries([tmp_path / "e.jsonl"]))
    assert back.body == d.body and back.received_at == 5
