"""Verify and parse deliveries in worker processes, results in input order.

Parsing the envelope and the event JSON and checking the HMAC are ~70% of a
replay's CPU time and independent per delivery, so large inputs spread them
over the machine's cores while the main process dedupes, applies and writes
SQLite. At most `2 * jobs + 11` batches of 256 are in flight: memory stays bounded
by a few thousand deliveries, not by the input size.

Small inputs are inspected inline: forking workers costs more than it saves.
"""

from __future__ import annotations

import gc
import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import Any

from stripectl.webhooks.delivery import Delivery
from stripectl.webhooks.envelope import RawLine, delivery_from_line, iter_raw
from stripectl.webhooks.inspect import Inspected, inspect

BATCH = 256
PARALLEL_MIN_BYTES = 4 * 1024 * 1024  # ~1,300 deliveries of 3 KB

_settings: dict[str, Any] = {}


def _init_worker(settings: dict[str, Any]) -> None:
    # Die with the parent: a SIGKILLed replay must not leave workers behind.
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    # Ctrl-C is the parent's to handle (it rolls back and terminates us).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Parsed events are trees (no cycles): reference counting frees them. The
    # cyclic GC only re-walked the inherited module graph on every few
    # thousand allocations: 150 -> 97 us per delivery once off.
    gc.disable()
    _settings.update(settings)


def _inspect_item(item: Delivery | RawLine, s: dict[str, Any]) -> Inspected:
    delivery = delivery_from_line(item, s["allow_unsigned"]) if isinstance(item, RawLine) else item
    result = inspect(
        delivery,
        secrets=s["secrets"],
        tolerance=s["tolerance"],
        max_body_bytes=s["max_body_bytes"],
    )
    delivery.text = None  # halve what travels back through the pipe
    return result


def _inspect_batch(batch: list[Delivery | RawLine]) -> list[Inspected]:
    return [_inspect_item(item, _settings) for item in batch]


def input_bytes(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return total


def default_jobs() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))


def inspect_paths(
    paths: list[Path],
    *,
    secrets: list[str],
    tolerance: int,
    max_body_bytes: int,
    allow_unsigned: bool,
    jobs: int,
) -> Iterator[Inspected]:
    settings = {
        "secrets": secrets,
        "tolerance": tolerance,
        "max_body_bytes": max_body_bytes,
        "allow_unsigned": allow_unsigned,
    }
    items = iter_raw(paths, allow_unsigned=allow_unsigned)
    if jobs <= 1 or input_bytes(paths) < PARALLEL_MIN_BYTES:
        for item in items:
            yield _inspect_item(item, settings)
        return
    yield from _parallel(items, settings, jobs)


def _batches(items: Iterable[Delivery | RawLine]) -> Iterator[list[Delivery | RawLine]]:
    it = iter(items)
    while batch := list(islice(it, BATCH)):
        yield batch


def _parallel(
    items: Iterable[Delivery | RawLine], settings: dict[str, Any], jobs: int
) -> Iterator[Inspected]:
    import multiprocessing

    # fork: workers inherit the imported modules instead of re-importing stripe.
    ctx = multiprocessing.get_context("fork")
    pool: Pool = ctx.Pool(jobs, initializer=_init_worker, initargs=(settings,))
    # Enough batches in flight to keep the workers busy while the main process
    # writes one replay chunk (2,000 deliveries), and no more: memory stays bounded.
    window = 2 * jobs + 10
    try:
        pending: deque[AsyncResult[list[Inspected]]] = deque()
        for batch in _batches(items):
            pending.append(pool.apply_async(_inspect_batch, (batch,)))
            if len(pending) > window:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()
        pool.close()
    finally:
        pool.terminate()
        pool.join()
