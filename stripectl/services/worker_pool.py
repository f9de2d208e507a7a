"""Forked worker processes that run tasks and hand results back in task order.

Why not multiprocessing.Pool: its worker-handler thread waits on the result
pipe as a wake-up source, so while results wait to be read it spins (poll,
waitpid, select) and takes the GIL from the thread doing the real work. On
bench/replay.py that thread alone burned ~0.5 s of a ~3 s run. Here each
worker has a task pipe and a result pipe; task i goes to worker i % jobs, and
one reader thread per worker drains its result pipe as bytes (the GIL is
released while it waits), so a worker never blocks on a full pipe while the
main process is busy writing SQLite. Results are unpickled by the caller.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from stripectl.errors import StripectlError

Task = tuple[Callable[..., Any], tuple[Any, ...]]

_DIED = object()  # a reader's marker: the worker's result pipe closed


class WorkerDied(StripectlError):
    """A worker process vanished (killed, out of memory): exit 70, keep what was committed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="committed chunks are kept; re-run to finish")


def _worker_main(
    parent: int,
    tasks: Connection,
    results: Connection,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
) -> None:
    # Die with the parent: a SIGKILLed replay must not leave workers behind.
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before that took effect
        os._exit(1)
    # Ctrl-C is the parent's to handle (it rolls back and stops us). SIGINT
    # stayed blocked from the fork until here, so none can interrupt this.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    initializer(*initargs)
    while True:
        try:
            task = tasks.recv()
        except EOFError:
            return
        if task is None:
            return
        fn, args = task
        try:
            out: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # handed to the caller, who re-raises it
            out = (False, exc)
        try:
            results.send(out)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            results.send((False, WorkerDied(f"result could not be sent back: {exc}")))


class WorkerPool:
    """`submit` tasks, then take their results with `result()` in the same order."""

    def __init__(
        self, jobs: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
    ) -> None:
        import multiprocessing

        # fork: workers inherit the imported modules instead of importing them again.
        ctx = multiprocessing.get_context("fork")
        self._procs: list[BaseProcess] = []
        self._tasks: list[Connection] = []
        self._queues: list[queue.SimpleQueue[Any]] = []
        self._readers: list[threading.Thread] = []
        self._submitted = 0
        self._taken = 0
        result_conns: list[Connection] = []
        # Workers are born with SIGINT blocked (see _worker_main); a Ctrl-C
        # meanwhile reaches this process once the forks are done.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for n in range(jobs):
                task_r, task_w = ctx.Pipe(duplex=False)
                result_r, result_w = ctx.Pipe(duplex=False)
                _widen(result_r)
                proc = ctx.Process(
                    target=_worker_main,
                    args=(os.getpid(), task_r, result_w, initializer, initargs),
                    name=f"stripectl-worker-{n}",
                    daemon=True,
                )
                proc.start()
                task_r.close()
                result_w.close()  # EOF on result_r once the worker is gone
                self._procs.append(proc)
                self._tasks.append(task_w)
                result_conns.append(result_r)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            # Reader threads only once every worker is forked: no fork while
            # another thread of ours runs.
            for worker, conn in zip(self._procs, result_conns, strict=True):
                results: queue.SimpleQueue[Any] = queue.SimpleQueue()
                reader = threading.Thread(
                    target=_drain, args=(conn, results), name=f"{worker.name}-reader", daemon=True
                )
                reader.start()
                self._queues.append(results)
                self._readers.append(reader)
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            for conn in result_conns[len(self._readers) :]:
                conn.close()
            self.terminate()
            raise

    @property
    def in_flight(self) -> int:
        return self._submitted - self._taken

    def submit(self, task: Task) -> None:
        n = self._submitted % len(self._tasks)
        try:
            self._tasks[n].send(task)
        except OSError as exc:  # EPIPE: the worker is gone
            raise WorkerDied(f"verification worker {n} exited unexpectedly ({exc})") from exc
        self._submitted += 1

    def result(self) -> Any:
        """The result of the oldest task not taken yet (its exception, re-raised)."""
        n = self._taken % len(self._queues)
        data = self._queues[n].get()
        if data is _DIED:
            self._procs[n].join(timeout=1)  # reaped, so its exit code is known
            code = self._procs[n].exitcode
            raise WorkerDied(f"verification worker {n} exited unexpectedly (exit code {code})")
        self._taken += 1
        ok, value = pickle.loads(data)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Let idle workers exit (all results taken), then wait for them."""
        for conn in self._tasks:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self._procs:
            proc.join(timeout=5)
        self.terminate()

    def terminate(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join()
        for conn in self._tasks:
            conn.close()
        for reader in self._readers:
            reader.join(timeout=5)


def _widen(conn: Connection) -> None:
    """A result pipe the size of a result (~1 MB): the reader wakes, and takes
    the GIL from the writing thread, once per result instead of once per 64 KB."""
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass  # not Linux, or over the system's pipe-max-size: the default is fine


def _drain(conn: Connection, out: queue.SimpleQueue[Any]) -> None:
    try:
        while True:
            out.put(conn.recv_bytes())
    except (EOFError, OSError):
        out.put(_DIED)
    finally:
        conn.close()
