from __future__ import annotations

import pytest

from stripectl.webhooks.statemachine import (
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    decide_access,
    parse_grace,
    reachable,
    transition_problem,
)


def test_every_status_has_a_transition_entry() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    for targets in TRANSITIONS.values():
        assert targets <= set(STATUSES)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_statuses_cannot_be_left(terminal: str) -> None:
    for status in STATUSES:
        if status != terminal:
            assert transition_problem(terminal, status) == f"leaves_terminal:{terminal}->{status}"


def test_missed_events_make_jumps_legal_through_reachability() -> None:
    # incomplete -> past_due never happens directly, but it does via active.
    assert "past_due" not in TRANSITIONS["incomplete"]
    assert reachable("incomplete", "past_due")
    assert transition_problem("incomplete", "past_due") is None


def test_nothing_returns_to_incomplete() -> None:
    assert transition_problem("active", "incomplete") == "illegal_transition:active->incomplete"
    assert transition_problem("active", "bogus") == "unknown_status:bogus"


@pytest.mark.parametrize(
    ("status", "kwargs", "granted"),
    [
        ("active", {}, True),
        ("trialing", {}, True),
        ("past_due", {"retry_scheduled": True}, True),
        ("past_due", {"retry_scheduled": False}, False),
        ("past_due", {"grace": "none", "retry_scheduled": True}, False),
        ("past_due", {"grace": "always"}, True),
        ("past_due", {"grace": "7d", "status_since": 0, "now": 6 * 86400}, True),
        ("past_due", {"grace": "7d", "status_since": 0, "now": 8 * 86400}, False),
        ("unpaid", {}, False),
        ("paused", {}, False),
        ("canceled", {}, False),
        ("incomplete", {}, False),
        ("incomplete_expired", {}, False),
        (None, {}, False),
    ],
)
def test_access_decision(status: str | None, kwargs: dict[str, object], granted: bool) -> None:
    assert decide_access(status, **kwargs).granted is granted  # type: ignore[arg-type]


def test_grace_parsing() -> None:
    assert parse_grace("RETRY") == "retry"
    assert parse_grace("14d") == "14d"
    with pytest.raises(ValueError):
        parse_grace("soon")
