"""Lines for stdout/stderr that never block the caller.

A full pipe or a paused terminal (Ctrl-S) blocks whoever writes to it. The
listener must keep receiving (and obey SIGTERM) whatever the terminal does,
so its lines go to a bounded queue drained by a thread of their own, which
writes with os.write: a blocked write holds no Python-level lock, so the
process can still exit with that thread stuck. When the queue is full, lines
are dropped and counted; the count is written as soon as output moves again
and reported at exit.
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

QUEUE_LINES = 10_000  # ~2 MB of log lines at most


class LineSink:
    def __init__(
        self,
        stream: TextIO,
        *,
        limit: int = QUEUE_LINES,
        dropped_line: Callable[[int], str] | None = None,
        render: Callable[[Any], str] = str,
    ) -> None:
        self._stream = stream
        try:
            self._fd: int | None = stream.fileno()
        except (io.UnsupportedOperation, AttributeError, ValueError):
            self._fd = None  # an in-memory stream (tests): nothing there can block
        # Items are rendered on the sink's thread, not the caller's (the event loop).
        self._render = render
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=limit)
        self._lock = threading.Lock()
        self._dropped = 0
        self._reported = 0
        self._dropped_line = dropped_line
        self._thread = threading.Thread(target=self._run, name="stripectl-lines", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._dropped

    def put(self, line: Any) -> None:
        """Queue one line (without its newline; or an item `render` turns into
        one); never blocks."""
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            with self._lock:
                self._dropped += 1

    def close(self, timeout: float) -> bool:
        """Write what is queued, for up to `timeout` s. False: output is stuck
        (the rest is abandoned; the thread dies with the process)."""
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                self._report_drops()
                return
            self._report_drops()
            try:
                text = line if isinstance(line, str) else self._render(line)
            except Exception:  # a line that cannot be rendered must not stop the others
                continue
            self._write(text)

    def _report_drops(self) -> None:
        with self._lock:
            missed = self._dropped - self._reported
            self._reported = self._dropped
        if missed and self._dropped_line is not None:
            self._write(self._dropped_line(missed))

    def _write(self, line: str) -> None:
        try:
            if self._fd is None:
                self._stream.write(line + "\n")
                self._stream.flush()
                return
            data = (line + "\n").encode("utf-8", "replace")
            while data:
                n = os.write(self._fd, data)
                data = data[n:]
        except (OSError, ValueError):
            pass  # closed pipe or stream: nobody reads; keep receiving
