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
