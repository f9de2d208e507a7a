"""Hand-tuned helpers in the verification path give exactly what the plain code gave."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from stripectl.gateway.signatures import signature_timestamp
from stripectl.webhooks.inspect import headers_json


def _reference_timestamp(header: str) -> int | None:
    """The first, plain version of signature_timestamp (review fix for a second t=)."""
    stamps = [
        item[1]
        for item in (p.split("=", 2) for p in header.split(","))
        if item[0] == "t" and len(item) > 1
    ]
    if len(stamps) != 1 or any(
        p.strip().startswith("t=") for p in header.split(",") if not p.startswith("t=")
    ):
        return None
    try:
        return int(stamps[0])
    except ValueError:
        return None


header_part = st.one_of(
    st.builds(lambda t: f"t={t}", st.integers(-5, 2**40)),
    st.builds(lambda t: f" t={t}", st.integers(0, 99)),
    st.sampled_from(["t", "t=", "t =1", "v1=abc", "v0=x", "t=1=2", " ", "", "t=x", "T=1"]),
    st.text(alphabet="tv01= ,x", max_size=6),
)


@given(st.lists(header_part, max_size=5))
def test_signature_timestamp_matches_the_reference(parts: list[str]) -> None:
    header = ",".join(parts)
    assert signature_timestamp(header) == _reference_timestamp(header)


@given(st.dictionaries(st.text(), st.text(), max_size=4))
def test_headers_json_equals_json_dumps_sorted(headers: dict[str, str]) -> None:
    assert headers_json(headers) == json.dumps(headers, sort_keys=True)
