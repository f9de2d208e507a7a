"""The subscription state machine and the access decision.

Legal transitions are Stripe's documented ones (see README "State machine").
Webhooks can be missed, so a jump is legal when the target is *reachable*
through legal steps (incomplete -> past_due, via active, is fine). Leaving a
terminal status (canceled, incomplete_expired) is never legal: such an event is
recorded as an anomaly and not applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "paused",
)
TERMINAL = frozenset({"incomplete_expired", "canceled"})

TRANSITIONS: dict[str, frozenset[str]] = {
    "incomplete": frozenset({"active", "incomplete_expired", "trialing", "canceled"}),
    "incomplete_expired": frozenset(),
    "trialing": frozenset({"active", "paused", "past_due", "canceled", "unpaid"}),
    "active": frozenset({"past_due", "canceled", "unpaid", "paused", "trialing"}),
    "past_due": frozenset({"active", "canceled", "unpaid", "paused"}),
    "unpaid": frozenset({"active", "canceled", "paused"}),
    "canceled": frozenset(),
    "paused": frozenset({"active", "past_due", "canceled"}),
}


@cache
def reachable(src: str, dst: str) -> bool:
    """True if `dst` can follow `src`, possibly through events we never saw."""
    if src == dst:
        return True
    seen, todo = {src}, [src]
    while todo:
        for nxt in TRANSITIONS.get(todo.pop(), frozenset()):
            if nxt == dst:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def transition_problem(src: str | None, dst: str) -> str | None:
    """None if `src -> dst` may be applied, else the anomaly reason."""
    if dst not in STATUSES:
        return f"unknown_status:{dst}"
    if src is None or src == dst:
        return None
    if src in TERMINAL:
        return f"leaves_terminal:{src}->{dst}"
    if not reachable(src, dst):
        return f"illegal_transition:{src}->{dst}"
    return None


GRACE_POLICIES = ("retry", "none", "always")


@dataclass(frozen=True)
class Access:
    granted: bool
    why: str


def parse_grace(value: str) -> str:
    """`retry` (default), `none`, `always`, or a number of days such as `7d`."""
    v = value.strip().lower()
    if v in GRACE_POLICIES:
        return v
    if v.endswith("d") and v[:-1].isdigit():
        return v
    raise ValueError(f"--grace must be retry, none, always or Nd (e.g. 7d), got {value!r}")


def decide_access(
    status: str | None,
    *,
    grace: str = "retry",
    retry_scheduled: bool = False,
    status_since: int | None = None,
    now: int | None = None,
) -> Access:
    """Whether to provision, and why. `past_due` follows the grace policy."""
    if status in ("active", "trialing"):
        return Access(True, status)
    if status == "past_due":
        if grace == "always":
            return Access(True, "past_due: grace policy 'always'")
        if grace == "none":
            return Access(False, "past_due: grace policy 'none'")
        if grace == "retry":
            if retry_scheduled:
                return Access(True, "past_due: a payment retry is scheduled")
            return Access(False, "past_due: no payment retry scheduled")
        days = int(grace[:-1])
        if status_since is not None and now is not None and now - status_since <= days * 86400:
            return Access(True, f"past_due: within {days}d grace")
        return Access(False, f"past_due: beyond {days}d grace")
    if status is None:
        return Access(False, "no subscription")
    return Access(False, status)
