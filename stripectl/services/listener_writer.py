"""The listener's single store writer: group commit, durable before ack.

Request handlers (on the event loop) never touch the store. They queue a
`Job`; ONE writer thread owns the only connection, takes whatever jobs are
queued (up to BATCH_MAX), verifies and applies them through
`services.replay` and commits them in ONE transaction, which with
`Store.durable_commits()` returns only after the WAL is fsynced. One sync
then covers every request of the batch: under load, batches grow by
themselves (requests queue while the previous sync runs).

A job is claimed by the writer or cancelled by its request, never both
(`Job.claim`/`Job.cancel` under a lock): a request that gives up before the
writer took its job can truthfully answer "not stored".
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stripectl.errors import CommitOutcomeUnknown, StoreError
from stripectl.redact import redact
from stripectl.webhooks.delivery import Delivery

if TYPE_CHECKING:
    from stripectl.services.replay import ReplayOptions
    from stripectl.services.replay_report import EventResult
    from stripectl.store import Store
    from stripectl.webhooks.inspect import Inspected

BATCH_MAX = 256
LOCK_TIMEOUT = 5.0  # seconds a commit waits for another process's write lock
CHECKPOINT_EVERY = 1.0  # seconds between WAL checkpoints (each costs two syncs)
UNVERIFIED_KEEP = 4096  # body bytes kept of a delivery whose signature did not verify

_QUEUED, _CLAIMED, _CANCELLED = 0, 1, 2


@dataclass
class Job:
    delivery: Delivery
    token: object = None  # the caller's handle (the request's future)
    result: EventResult | None = None
    error: str | None = None
    # True: the store may hold the delivery although we could not confirm it.
    maybe_stored: bool = False
    recorded: bool = True  # False: unverified and over the budget, not written
    state: int = _QUEUED
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self) -> bool:
        with self.lock:
            if self.state != _QUEUED:
                return False
            self.state = _CLAIMED
            return True

    def cancel(self) -> bool:
        """True if the writer had not taken the job: it will never be stored."""
        with self.lock:
            if self.state != _QUEUED:
                return False
            self.state = _CANCELLED
            return True


class UnverifiedBudget:
    """Bytes per minute that deliveries without a valid signature may store
    (a token bucket: refills continuously, holds at most one minute's worth).
    Anyone who can reach the port can send those: without a bound they fill
    the disk at the speed of the network."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._tokens = float(per_minute)
        self._at = time.monotonic()
        self.refused = 0  # deliveries not recorded since the start

    def take(self, n: int) -> bool:
        now = time.monotonic()
        self._tokens = min(self.per_minute, self._tokens + (now - self._at) * self.per_minute / 60)
        self._at = now
        if n > self._tokens:
            self.refused += 1
            return False
        self._tokens -= n
        return True


class Writer(threading.Thread):
    """Drains the job queue in batches; one transaction and one sync a batch."""

    def __init__(
        self,
        db_path: str,
        options: ReplayOptions,
        *,
        finished: Callable[[list[Job]], None],
        durable: bool = True,
        unverified_per_minute: int = 4 * 1_048_576,
        lock_timeout: float = LOCK_TIMEOUT,
    ) -> None:
        super().__init__(name="stripectl-listener-writer", daemon=True)
        self.db_path = db_path
        self.options = options
        self.durable = durable
        self.lock_timeout = lock_timeout
        # Called on this thread with each batch's jobs once their outcome is known.
        self.finished = finished
        self.budget = UnverifiedBudget(unverified_per_minute)
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.startup_error: BaseException | None = None
        self.store: Store | None = None
        self.commits = 0  # transactions committed (each one sync when durable)
        self.durability = "not durable (bench only)"
        self.current = 0  # jobs in the batch being written now (tests watch it)

    def run(self) -> None:
        from stripectl.store import open_store

        try:
            store = open_store(self.db_path)
            if self.durable:
                # The engine's own words for it, e.g. "synchronous=FULL".
                self.durability = store.durable_commits(lock_timeout=self.lock_timeout)
        except BaseException as exc:
            self.startup_error = exc
            self.ready.set()
            return
        self.store = store
        self.ready.set()
        try:
            # Checkpoints (copying the WAL into the database) run on a thread of
            # their own: inline, one would stall every request of the next batch.
            with store.background_checkpoints(min_interval=CHECKPOINT_EVERY):
                self._loop(store)
        finally:
            store.close()

    def _loop(self, store: Store) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            batch: list[Job] = []
            stopping = False
            while True:
                if job is None:
                    stopping = True
                    break
                if job.claim():
                    batch.append(job)
                if len(batch) >= BATCH_MAX:
                    break
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self.current = len(batch)
                self._commit(store, batch)
                self.current = 0
            if stopping:
                return

    def _commit(self, store: Store, batch: list[Job]) -> None:
        from stripectl.services.replay import inspect_all

        try:
            inspected = list(inspect_all([j.delivery for j in batch], self.options))
            stored_jobs, stored = [], []
            for job, ins in zip(batch, inspected, strict=True):
                if ins.verified or self._within_budget(ins):
                    stored_jobs.append(job)
                    stored.append(ins)
                else:
                    job.recorded = False
                    job.result = _unrecorded_result(ins)
            self._store(store, stored_jobs, stored)
        except Exception as exc:  # a bug outside the transaction: nothing was written for these
            for job in batch:
                if job.result is None and job.error is None:
                    job.error = redact(f"{type(exc).__name__}: {exc}")
        self.finished(batch)

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

    def _store(self, store: Store, jobs: list[Job], inspected: list[Inspected]) -> None:
        from stripectl.services.replay import replay_inspected

        if not jobs:
            return
        try:
            report = replay_inspected(
                store, inspected, self.options, chunk_size=len(jobs), report_subscriptions=False
            )
            self.commits += 1
            if len(report.events) != len(jobs):
                raise RuntimeError("replay returned a result count that does not match its input")
            for job, result in zip(jobs, report.events, strict=True):
                job.result = result
        except StoreError as exc:
            # The mirror itself failed (locked past LOCK_TIMEOUT, disk full, I/O):
            # retrying the deliveries one by one would only fail the same way.
            unknown = isinstance(exc, CommitOutcomeUnknown)
            for job in jobs:
                job.error = redact(exc.message)
                job.maybe_stored = unknown
        except Exception as exc:
            if len(jobs) > 1:
                # One poisoned delivery must not fail its neighbours: retry alone.
                for job, ins in zip(jobs, inspected, strict=True):
                    self._store(store, [job], [ins])
                return
            jobs[0].error = redact(f"{type(exc).__name__}: {exc}")

    def stop(self, timeout: float) -> bool:
        """Commit what was queued, then close the store; False if still busy."""
        self.jobs.put(None)
        self.join(timeout=timeout)
        return not self.is_alive()


def _unrecorded_result(ins: Inspected) -> EventResult:
    from stripectl.services.replay_report import EventResult

    return EventResult(
        ins.source,
        ins.event_id,
        ins.type,
        "rejected",
        ins.reason,
        ins.delivery_id,
        ins.created,
        ins.verified,
        "not recorded: the budget for unverified deliveries is used up",
    )
