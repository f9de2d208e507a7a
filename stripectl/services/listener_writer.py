"""The listener's store writer: a process of its own, group commit, durable before ack.

Verifying, applying and committing a delivery is ~0.3 ms of Python and SQLite
work; the HTTP side is about as much. In one process the two would take
turns on the GIL (and every socket call of the event loop would wait for the
writer to let go of it); in two, they use both cores. The event loop side
(services/listener_link.py) sends a batch of deliveries whenever this
process is idle: everything that queued while the previous batch was being
written. This process verifies them, stores and applies them in ONE
transaction, which with `Store.durable_commits()` returns only after the WAL
is fsynced, and sends back one outcome per delivery. One sync covers the
whole batch; under load, batches grow by themselves.

Messages are marshal data over a pipe: a batch is a list of
(body, headers, received_at); an answer is (outcomes, commits, not_recorded).
"""

from __future__ import annotations

import marshal
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stripectl.services.replay import ReplayOptions
    from stripectl.services.replay_report import EventResult
    from stripectl.store import Store
    from stripectl.webhooks.inspect import Inspected

BATCH_MAX = 256
LOCK_TIMEOUT = 5.0  # seconds a commit waits for another process's write lock
CHECKPOINT_EVERY = 1.0  # seconds between WAL checkpoints (each costs two syncs)
UNVERIFIED_KEEP = 4096  # body bytes kept of a delivery whose signature did not verify


@dataclass
class WriterSettings:
    db_path: str
    secrets: list[str]
    tolerance: int
    max_body: int
    durable: bool
    unverified_per_minute: int
    lock_timeout: float
    schema: str | None = None  # PostgreSQL mirrors: the schema of its tables


# One delivery's outcome, as sent back: (event_id, type, outcome, reason,
# delivery_id, verified, rejected_before, recorded, error, maybe_stored).
Outcome = tuple[Any, ...]


class UnverifiedBudget:
    """Bytes per minute that deliveries without a valid signature may store
    (a token bucket: refills continuously, holds at most one minute's worth).
    Anyone who can reach the port can send those: without a bound they fill
    the disk at the speed of the network."""

    def __init__(self, per_minute: int) -> None:
        import time

        self._clock = time.monotonic
        self.per_minute = per_minute
        self._tokens = float(per_minute)
        self._at = self._clock()
        self.refused = 0  # deliveries not recorded since the start

    def take(self, n: int) -> bool:
        now = self._clock()
        self._tokens = min(self.per_minute, self._tokens + (now - self._at) * self.per_minute / 60)
        self._at = now
        if n > self._tokens:
            self.refused += 1
            return False
        self._tokens -= n
        return True


class BatchWriter:
    """Turns a batch of deliveries into outcomes: one transaction, one sync."""

    def __init__(self, settings: WriterSettings, options: ReplayOptions) -> None:
        self.options = options
        self.budget = UnverifiedBudget(settings.unverified_per_minute)
        self.commits = 0

    def write(self, store: Store, batch: list[tuple[bytes, dict[str, str], int]]) -> list[Outcome]:
        from stripectl.redact import redact
        from stripectl.services.replay import inspect_all
        from stripectl.webhooks.delivery import Delivery

        outcomes: list[Outcome | None] = [None] * len(batch)
        try:
            deliveries = [
                Delivery(source="listener", body=b, headers=h, received_at=t) for b, h, t in batch
            ]
            inspected = list(inspect_all(deliveries, self.options))
            positions, stored = [], []
            for i, ins in enumerate(inspected):
                if ins.verified or self._within_budget(ins):
                    positions.append(i)
                    stored.append(ins)
                else:
                    outcomes[i] = _outcome_of_unrecorded(ins)
            self._store(store, positions, stored, outcomes)
        except Exception as exc:  # a bug outside the transaction: nothing was written for these
            error = redact(f"{type(exc).__name__}: {exc}")
            outcomes = [o if o is not None else _failed(error, False) for o in outcomes]
        return [o if o is not None else _failed("internal: no outcome", False) for o in outcomes]

    def _within_budget(self, ins: Inspected) -> bool:
        """Bound what an unverified delivery stores: its headers and the first
        UNVERIFIED_KEEP body bytes (marked truncated), within the budget."""
        full = len(ins.body)
        keep = min(full, UNVERIFIED_KEEP)
        if not self.budget.take(len(ins.headers) + keep):
            return False
        if keep < full:
            ins.body = ins.body[:keep]
            detail = ins.note or ins.detail or ""
            ins.note = f"body truncated: kept {keep} of {full} bytes (unverified); {detail}".rstrip("; ")
        return True

    def _store(
        self, store: Store, positions: list[int], inspected: list[Inspected], outcomes: list[Outcome | None]
    ) -> None:
        from stripectl.errors import CommitOutcomeUnknown, StoreError
        from stripectl.redact import redact
        from stripectl.services.replay import replay_inspected

        if not positions:
            return
        try:
            report = replay_inspected(
                store, inspected, self.options, chunk_size=len(inspected), report_subscriptions=False
            )
            self.commits += 1
            if len(report.events) != len(positions):
                raise RuntimeError("replay returned a result count that does not match its input")
            for i, result in zip(positions, report.events, strict=True):
                outcomes[i] = _outcome_of(result)
        except StoreError as exc:
            # The mirror itself failed (locked past the lock timeout, disk full, I/O):
            # retrying the deliveries one by one would only fail the same way.
            unknown = isinstance(exc, CommitOutcomeUnknown)
            for i in positions:
                outcomes[i] = _failed(redact(exc.message), unknown)
        except Exception as exc:
            if len(positions) > 1:
                # One poisoned delivery must not fail its neighbours: retry alone.
                for i, ins in zip(positions, inspected, strict=True):
                    self._store(store, [i], [ins], outcomes)
                return
            outcomes[positions[0]] = _failed(redact(f"{type(exc).__name__}: {exc}"), False)


def _outcome_of(r: EventResult) -> Outcome:
    return (r.event_id, r.type, r.outcome, r.reason, r.delivery_id, r.verified, r.rejected_before,
            True, None, False)


def _outcome_of_unrecorded(ins: Inspected) -> Outcome:
    return (ins.event_id, ins.type, "rejected", ins.reason, ins.delivery_id, ins.verified, None,
            False, None, False)


def _failed(error: str, maybe_stored: bool) -> Outcome:
    return (None, None, None, None, None, False, None, True, error, maybe_stored)


def writer_main(conn: Connection) -> None:
    """The writer process. It obeys its socket, not signals (a service manager
    may signal every process of the unit; the listener must drain before this
    stops). When the listener is gone (EOF), it finishes the batch in hand and
    exits. The first message is its WriterSettings."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        settings = WriterSettings(**marshal.loads(conn.recv_bytes()))
    except (EOFError, OSError):
        return
    from stripectl.errors import StoreError, StripectlError
    from stripectl.services.replay import ReplayOptions
    from stripectl.store import open_store

    try:
        store = open_store(settings.db_path, schema=settings.schema)
        durability = "not durable (bench only)"
        if settings.durable:
            make_durable = getattr(store, "durable_commits", None)
            if make_durable is None:  # a store engine that cannot promise it: refuse to ack
                raise StoreError(
                    f"the store {settings.db_path} cannot sync each commit to disk",
                    hint="webhook listen answers 2xx only for deliveries on disk",
                )
            # The engine's own words for it, e.g. "synchronous=FULL".
            durability = make_durable(lock_timeout=settings.lock_timeout)
    except StripectlError as exc:
        conn.send_bytes(marshal.dumps(("error", type(exc).__name__, exc.message, exc.hint)))
        return
    except Exception as exc:
        conn.send_bytes(marshal.dumps(("error", "bug", f"{type(exc).__name__}: {exc}", None)))
        return
    options = ReplayOptions(
        secrets=settings.secrets, tolerance=settings.tolerance, max_body_bytes=settings.max_body
    )
    writer = BatchWriter(settings, options)
    conn.send_bytes(marshal.dumps(("ready", durability)))
    try:
        # Checkpoints (copying the WAL into the database) run on a thread of
        # their own: inline, one would stall every request of the next batch.
        with store.background_checkpoints(min_interval=CHECKPOINT_EVERY):
            while True:
                try:
                    message = conn.recv_bytes()
                except (EOFError, OSError):
                    return
                if not message:
                    return  # stop
                outcomes = writer.write(store, marshal.loads(message))
                try:
                    conn.send_bytes(marshal.dumps((outcomes, writer.commits, writer.budget.refused)))
                except OSError:
                    return
    finally:
        store.close()


if __name__ == "__main__":  # started by services/listener_link.py with its socket's fd
    import sys

    writer_main(Connection(int(sys.argv[1])))
