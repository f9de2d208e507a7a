"""The event loop's side of the writer process (services/listener_writer.py).

Requests queue `Job`s here. Whenever the writer is idle, everything queued
(up to BATCH_MAX) goes to it as one batch: group commit without a timer.
All of this runs on the event loop's thread, so a job is either still queued
(its request may cancel it: it will never be stored) or sent (it may be
stored, whatever happens next): `cancel()` tells which, truthfully.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
from collections import deque
from typing import Any

from stripectl import errors
from stripectl.services.listener_writer import BATCH_MAX, Outcome, WriterSettings

_QUEUED, _SENT, _CANCELLED = 0, 1, 2
STARTUP_TIMEOUT = 120.0  # a fresh interpreter importing stripe, on a loaded machine


class Job:
    __slots__ = ("body", "future", "headers", "outcome", "received_at", "state")

    def __init__(
        self, body: bytes, headers: dict[str, str], received_at: int, future: asyncio.Future[None]
    ) -> None:
        self.body, self.headers, self.received_at, self.future = body, headers, received_at, future
        self.state = _QUEUED
        self.outcome: Outcome | None = None


class WriterLink:
    def __init__(self, settings: WriterSettings) -> None:
        self.settings = settings
        self.pending: deque[Job] = deque()
        self.in_flight: list[Job] | None = None
        self.commits = 0
        self.not_recorded = 0
        self.dead = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proc: Any = None
        self._conn: Any = None

    def start(self) -> str:
        """Start the writer process; return its durability setting, or raise
        the StripectlError it could not open the store with."""
        import dataclasses
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        # A plain subprocess on one end of a socketpair (multiprocessing's spawn
        # would add a resource-tracker process and re-import __main__); a session
        # of its own: Ctrl-C in the terminal is the listener's to handle.
        ours, theirs = socket.socketpair()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "stripectl.services.listener_writer", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        try:
            self._conn.send_bytes(marshal.dumps(dataclasses.asdict(self.settings)))
            if not self._conn.poll(STARTUP_TIMEOUT):
                raise errors.StoreError("the store process did not start in time")
            message = marshal.loads(self._conn.recv_bytes())
        except (EOFError, OSError) as exc:
            self.kill()
            raise errors.StoreError("the store process exited at start") from exc
        except errors.StoreError:
            self.kill()
            raise
        if message[0] == "ready":
            return str(message[1])
        self._proc.wait(10)
        _, kind, text, hint = message
        cls = getattr(errors, kind, None)
        if isinstance(cls, type) and issubclass(cls, errors.StripectlError):
            raise cls(text, hint=hint)
        raise RuntimeError(text)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._conn.fileno(), self._readable)

    def queued(self) -> int:
        return sum(1 for j in self.pending if j.state == _QUEUED)

    def writing(self) -> int:
        return len(self.in_flight or ())

    def submit(self, job: Job) -> None:
        if self.dead:
            job.state = _CANCELLED
            _finish(job, _failed("the store process stopped", maybe_stored=False))
            return
        self.pending.append(job)
        self._send()

    def cancel(self, job: Job) -> bool:
        """True if the writer never got the job: it will never be stored."""
        if job.state == _QUEUED:
            job.state = _CANCELLED
            return True
        return job.state == _CANCELLED

    def _send(self) -> None:
        if self.in_flight is not None or self.dead or self._stopping:
            return
        batch: list[Job] = []
        while self.pending and len(batch) < BATCH_MAX:
            job = self.pending.popleft()
            if job.state == _QUEUED:
                job.state = _SENT
                batch.append(job)
        if not batch:
            return
        try:
            message = marshal.dumps([(j.body, j.headers, j.received_at) for j in batch])
        except ValueError as exc:  # a bug: nothing was sent, nothing stored
            for job in batch:
                _finish(job, _failed(f"internal: {exc}", maybe_stored=False))
            return
        self.in_flight = batch
        try:
            # The writer is idle, in recv: this returns as fast as it reads.
            self._conn.send_bytes(message)
        except OSError:
            self._died()

    def _readable(self) -> None:
        try:
            outcomes, self.commits, self.not_recorded = marshal.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            self._died()
            return
        batch, self.in_flight = self.in_flight or [], None
        for job, outcome in zip(batch, outcomes, strict=True):
            _finish(job, outcome)
        self._send()

    def _died(self) -> None:
        """The writer process is gone (killed, crashed): what it had may or may
        not have been committed; what was still queued here was not."""
        self.dead = True
        if self._loop is not None:
            self._loop.remove_reader(self._conn.fileno())
        for job in self.in_flight or []:
            _finish(job, _failed("the store process stopped during the commit", maybe_stored=True))
        self.in_flight = None
        while self.pending:
            job = self.pending.popleft()
            if job.state == _QUEUED:
                job.state = _CANCELLED
                _finish(job, _failed("the store process stopped", maybe_stored=False))

    async def close(self, timeout: float) -> bool:
        """Let the writer finish its batch (at most `timeout` s), stop it.
        False: it had to be killed (SQLite then keeps whole transactions only)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._stopping = True
        while self.in_flight is not None and not self.dead and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self._loop is not None and not self.dead:
            self._loop.remove_reader(self._conn.fileno())
        clean = self.in_flight is None
        if not self.dead:
            with contextlib.suppress(OSError):
                self._conn.send_bytes(b"")  # stop
        while self._proc.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self._proc.poll() is None:
            self.kill()
            return False
        self._conn.close()
        return clean and self._proc.returncode == 0

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)


def _finish(job: Job, outcome: Outcome) -> None:
    job.outcome = outcome
    if not job.future.done():
        job.future.set_result(None)


def _failed(error: str, *, maybe_stored: bool) -> Outcome:
    return (None, None, None, None, None, False, None, True, error, maybe_stored)
