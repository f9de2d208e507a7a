"""Verify and parse deliveries in worker processes, results in input order.

Parsing the envelope and the event JSON and checking the HMAC are ~70% of a
replay's CPU time and independent per delivery, so large inputs spread them
over the machine's cores while the main process dedupes, applies and writes
SQLite. At most `2 * jobs + 8` tasks (batches of 256, or ranges of ~1 MB)
are in flight: memory stays bounded by a few thousand deliveries, not by the
input size (services/worker_pool.py runs them). JSONL files travel to
the workers as byte ranges they read themselves (see RANGE_BYTES).

Small inputs are inspected inline: forking workers costs more than it saves.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stripectl.errors import UsageError
from stripectl.services.worker_pool import Task, WorkerPool
from stripectl.webhooks.delivery import Delivery
from stripectl.webhooks.envelope import (
    RawLine,
    delivery_from_line,
    empty_file,
    is_jsonl,
    iter_files,
    iter_raw,
    jsonl_range_lines,
    read_file,
    source_name,
)
from stripectl.webhooks.inspect import Inspected, fields_of, inspect

BATCH = 256
# A JSONL file is handed to workers as byte ranges of about this size (~300
# deliveries of 3 KB), which they read themselves: reading the lines cost the
# main process ~10 us a delivery (profile: _read_jsonl 0.23 s per 20k) before
# pickling each to a worker. With this and the flat Inspected results, the bench's
# 50k-delivery replay went from ~11.4 to ~9.7 s.
RANGE_BYTES = 1 << 20
PARALLEL_MIN_BYTES = 4 * 1024 * 1024  # ~1,300 deliveries of 3 KB

_settings: dict[str, Any] = {}


def _init_worker(settings: dict[str, Any]) -> None:
    # (Dying with the parent and leaving Ctrl-C to it: services/worker_pool.py.)
    # Parsed events are trees (no cycles): reference counting frees them. The
    # cyclic GC only re-walked the inherited module graph on every few
    # thousand allocations: 150 -> 97 us per delivery once off.
    gc.disable()
    # Below the writer: when the three processes want the two cores, the
    # main process (the serial stage: SQLite) must not wait for a core while
    # workers run ahead of it (5-10% faster replays on bench/replay.py).
    with contextlib.suppress(OSError):
        os.nice(5)
    _settings.update(settings)
    # This process only checks signatures; it never talks HTTP. stripe imports
    # its HTTP libraries when it loads (stripe/_http_client.py picks the default
    # clients then): with the test extra's aiohttp and requests installed that
    # was 0.16 s of each worker's start, against 0.04 s without them.
    for name in ("aiohttp", "requests"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    import stripectl.gateway.signatures  # noqa: F401


def _inspect_item(item: Delivery | RawLine, s: dict[str, Any]) -> Inspected:
    delivery = delivery_from_line(item, s["allow_unsigned"]) if isinstance(item, RawLine) else item
    return inspect(
        delivery,
        secrets=s["secrets"],
        tolerance=s["tolerance"],
        max_body_bytes=s["max_body_bytes"],
    )


def _inspect_batch(batch: list[Delivery | RawLine]) -> bytes:
    return _packed(_inspect_item(item, _settings) for item in batch)


def _inspect_range(path: Path, start: int, end: int) -> bytes:
    """Packed (newlines in the range, each result's line number in the range,
    the results); their sources are the path until the main process, which
    knows where the range starts, adds the line (see _Lines)."""
    newlines, lines = jsonl_range_lines(path, start, end)
    name = source_name(path)
    return marshal.dumps(
        (
            newlines,
            [rel for rel, _ in lines],
            [fields_of(_inspect_item(RawLine(name, data), _settings)) for _, data in lines],
        )
    )


def _packed(results: Iterable[Inspected]) -> bytes:
    """Results for the trip back as marshal data: Inspected holds only plain
    values (str, bytes, int, bool, None, a dict of those), and marshal packs
    those in ~3.5 us a delivery where pickle took 5.6 (both processes are one
    interpreter, so marshal's version-bound format is fine)."""
    return marshal.dumps([fields_of(r) for r in results])


def _unpacked(data: bytes) -> list[Inspected]:
    return _inflated(marshal.loads(data))


def _inflated(packed: list[tuple[Any, ...]]) -> list[Inspected]:
    return [Inspected(*fields) for fields in packed]


class _Numbering:
    """Which line numbering each task's results take (None: not a range)."""

    def __init__(self) -> None:
        self._file = _Lines()

    def of(self, task: Task) -> _Lines | None:
        fn, args = task
        if fn is not _inspect_range:
            return None
        if args[1] == 0:  # a file's first range (a file named twice starts again)
            self._file = _Lines()
        return self._file


class _Lines:
    """Line numbers for the results of one JSONL file's ranges, taken in order."""

    def __init__(self) -> None:
        self.next = 1

    def label(self, data: bytes) -> list[Inspected]:
        newlines, rels, packed = marshal.loads(data)
        out = _inflated(packed)
        base = self.next - 1
        for ins, rel in zip(out, rels, strict=True):
            ins.source = f"{ins.source}:{base + rel}"
        self.next += newlines
        return out


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


@contextmanager
def inspecting(
    paths: list[Path],
    *,
    secrets: list[str],
    tolerance: int,
    max_body_bytes: int,
    allow_unsigned: bool,
    jobs: int,
) -> Iterator[Iterator[Inspected]]:
    """The inspected deliveries of `paths`, in input order.

    Worker processes (for large inputs) start on entry, so they load stripe
    and verify the first deliveries while the caller opens the mirror; they
    are stopped on exit, whatever happened.
    """
    settings = {
        "secrets": secrets,
        "tolerance": tolerance,
        "max_body_bytes": max_body_bytes,
        "allow_unsigned": allow_unsigned,
    }
    if jobs <= 1 or input_bytes(paths) < PARALLEL_MIN_BYTES:
        yield (_inspect_item(item, settings) for item in iter_raw(paths, allow_unsigned=allow_unsigned))
        return
    # Workers import stripe themselves (see _init_worker), in parallel, while
    # this process opens the mirror: importing it here first would add ~20 MB
    # to this process's peak RSS for nothing (it only writes SQLite).
    pool = WorkerPool(jobs, _init_worker, (settings,))
    try:
        yield _parallel(pool, _tasks(paths, allow_unsigned), jobs)
        pool.close()
    finally:
        pool.terminate()


def _tasks(paths: list[Path], allow_unsigned: bool) -> Iterator[Task]:
    """The input in order: JSONL files as byte ranges, other files as batches."""
    batch: list[Delivery | RawLine] = []
    for file in iter_files(paths):
        if is_jsonl(file):
            if batch:
                yield _inspect_batch, (batch,)
                batch = []
            yield from _ranges(file)
            continue
        for item in read_file(file, allow_unsigned):
            batch.append(item)
            if len(batch) == BATCH:
                yield _inspect_batch, (batch,)
                batch = []
    if batch:
        yield _inspect_batch, (batch,)


def _ranges(file: Path) -> Iterator[Task]:
    """Ranges of about RANGE_BYTES ending at line ends. Only the boundaries are
    read here (a seek and a readline each): the workers read, split and count
    their lines themselves. Reading and counting the whole file in this
    process, the replay's serial stage, cost it ~3 us a delivery."""
    try:
        f = file.open("rb")
    except OSError as exc:
        raise UsageError(f"{file}: cannot read: {exc.strerror}") from exc
    with f:
        size = os.fstat(f.fileno()).st_size
        start, has_content = 0, False
        while start < size:
            f.seek(start + RANGE_BYTES)
            f.readline()
            end = min(f.tell(), size)
            if not has_content:
                # Blank lines only would be one "empty file" delivery, as when
                # read in line by line (normally the first range settles it).
                f.seek(start)
                has_content = not f.read(end - start).isspace()
            yield _inspect_range, (file, start, end)
            start = end
    if not has_content:
        yield _inspect_batch, ([empty_file(file)],)


def _parallel(pool: WorkerPool, tasks: Iterator[Task], jobs: int) -> Iterator[Inspected]:
    """The workers' results, in input order."""
    # The writer (this process) is the slower stage: ~3,500 deliveries in
    # flight keep the workers ahead of it. More only lengthened the tail it
    # works through alone once they are done, and cost memory (2 x jobs + 16
    # and + 30 were measured; this was ~2% faster).
    window = 2 * jobs + 8
    numbering = _Numbering()
    lines: deque[_Lines | None] = deque()  # per task in flight: its line numbering

    def take() -> list[Inspected]:
        numbered, data = lines.popleft(), pool.result()
        return _unpacked(data) if numbered is None else numbered.label(data)

    for task in tasks:
        pool.submit(task)
        lines.append(numbering.of(task))
        if pool.in_flight > window:
            yield from take()
    while pool.in_flight:
        yield from take()
