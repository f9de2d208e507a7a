"""What the listener is configured with and what it says: settings, the
per-delivery log line, the run's counters, and how a writer's outcome
becomes an HTTP status and an honest message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stripectl.services.listener_link import Job
from stripectl.services.listener_writer import LOCK_TIMEOUT

# Rejections that mean "this request is not an authentic, fresh Stripe delivery".
_AUTH_REJECTIONS = {"expired", "future_timestamp"}


@dataclass
class ListenerConfig:
    db_path: str
    secrets: list[str]
    host: str = "127.0.0.1"
    port: int = 4242
    path: str = "/webhooks/stripe"
    max_body: int = 1_048_576
    tolerance: int = 300
    max_connections: int = 512
    header_timeout: float = 10.0  # accept -> request head complete
    body_timeout: float = 10.0  # head complete -> body complete
    ack_timeout: float = 10.0  # body complete -> committed
    drain_timeout: float = 10.0  # shutdown: in-flight requests finish within this
    body_memory: int = 64 * 1_048_576  # bodies in memory at once (at least max_body + 16 MiB)
    unverified_per_minute: int = 4 * 1_048_576  # stored bytes/min without a valid signature
    schema: str | None = None  # PostgreSQL mirrors: the schema of its tables
    lock_timeout: float = LOCK_TIMEOUT  # a commit's wait for another process's write lock
    durable: bool = True  # False only for bench/listen.py's "durability off" figure


@dataclass
class DeliveryLine:
    """What happened to one request: the per-delivery log line."""

    status: int
    received_at: int
    latency_ms: float
    event_id: str | None = None
    type: str | None = None
    outcome: str | None = None
    reason: str | None = None
    delivery_id: str | None = None
    error: str | None = None
    recorded: bool | None = None  # False: rejected and not written (budget)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "received_at": self.received_at,
            "event_id": self.event_id,
            "type": self.type,
            "outcome": self.outcome,
            "reason": self.reason,
            "delivery_id": self.delivery_id,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "recorded": self.recorded,
        }


@dataclass
class ListenerStats:
    refused_connections: int = 0  # over --max-connections: 503 at accept
    timed_out_connections: int = 0  # aborted past their header/answer deadline
    peak_connections: int = 0
    peak_body_bytes: int = 0
    unverified_not_recorded: int = 0
    commits: int = 0
    aborted_at_shutdown: int = 0
    store_closed: bool = True
    loop_errors: int = 0  # asyncio errors (a connection failed oddly); counted, not printed
    last_loop_error: str | None = None


def answer_as(outcome: str, reason: str | None, rejected_before: str | None) -> tuple[str, str | None]:
    """(outcome, reason) to answer and log: an identical resend of a delivery
    stored as rejected is answered as the first time, not as a 200 duplicate
    (else a forger learns nothing from the first 400 and gets a 200 next)."""
    if outcome == "duplicate" and rejected_before is not None:
        return "rejected", rejected_before
    return outcome, reason


def status_for(outcome: str, reason: str | None, verified: bool) -> int:
    if outcome == "rejected" and (not verified or reason in _AUTH_REJECTIONS):
        return 400
    return 200


def fill(line: DeliveryLine, job: Job) -> str | None:
    assert job.outcome is not None
    event_id, type_, outcome, reason, delivery_id, verified, rejected_before, recorded, error, maybe = (
        job.outcome
    )
    if error is not None:
        line.error = error
        if maybe:
            return (
                "not acknowledged: the commit failed or was cut and may or may not have reached "
                "the disk; Stripe will retry (a stored one is then a duplicate)"
            )
        return "not stored: the local store failed; Stripe will retry"
    line.status = status_for(*answer_as(outcome, reason, rejected_before), verified)
    line.outcome, line.reason = answer_as(outcome, reason, rejected_before)
    line.event_id, line.type, line.delivery_id = event_id, type_, delivery_id
    line.recorded = recorded
    if not recorded:
        line.error = "not recorded: the budget for unverified deliveries is used up"
        return line.error
    return None
