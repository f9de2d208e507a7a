"""Hand-written report JSON is exactly what json.dumps writes."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from stripectl.services.replay_report import EventResult

text = st.none() | st.text()


@given(
    source=st.text(),
    event_id=text,
    type_=text,
    outcome=st.sampled_from(["applied", "duplicate", "stale", "anomaly", "ignored", "rejected"]),
    reason=text,
    created=st.none() | st.integers(-(2**63), 2**63),
    verified=st.booleans(),
    note=text,
)
def test_event_json_text_equals_json_dumps(
    source: str,
    event_id: str | None,
    type_: str | None,
    outcome: str,
    reason: str | None,
    created: int | None,
    verified: bool,
    note: str | None,
) -> None:
    res = EventResult(source, event_id, type_, outcome, reason, "d" * 64, created, verified, note)
    assert res.to_json_text() == json.dumps(res.to_json())
    assert json.loads(res.to_json_text()) == res.to_json()


scalar = (st.none() | st.booleans() | st.text() | st.integers()
          | st.integers(min_value=2**63, max_value=2**70) | st.floats(allow_nan=True))
flat = st.dictionaries(st.text(), scalar, max_size=6)


@given(value=flat | st.lists(flat, max_size=4) | st.lists(st.integers(), max_size=3)
       | st.dictionaries(st.text(max_size=3), flat, max_size=2))
def test_canonical_is_exactly_json_dumps(value: object) -> None:
    from stripectl.json_text import canonical

    assert canonical(value) == json.dumps(value, sort_keys=True, separators=(",", ":"))


def test_canonical_matches_json_on_mirror_columns() -> None:
    """Items and metadata as Stripe sends them: the orjson path (ASCII,
    flat), checked against the stdlib text (control characters included)."""
    from stripectl.json_text import canonical

    items = [{"price": "price_1", "quantity": 2, "current_period_end": 1790000000},
             {"price": None, "quantity": None, "current_period_end": None}]
    meta = {"user_id": "u_1", "z": "tab\there \"quoted\" \\ \x01 \x1b\x1f \x7f /slash", "a": ""}
    for value in (items, meta, {}, [], {"k": "\x7f"}, {"k": "caf\u00e9"}):
        assert canonical(value) == json.dumps(value, sort_keys=True, separators=(",", ":"))
