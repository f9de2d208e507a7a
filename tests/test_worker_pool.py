"""The ordered worker pool behind parallel verification (services/worker_pool.py)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from stripectl.errors import UsageError
from stripectl.services.worker_pool import WorkerDied, WorkerPool


def _noop() -> None:
    pass


def _square_slowly(n: int) -> int:
    time.sleep(0.002 * (n % 3))  # uneven task times: results must still come back in order
    return n * n


def _fail(n: int) -> int:
    raise UsageError(f"cannot read range {n}")


def _pid() -> int:
    return os.getpid()


def test_results_come_back_in_submission_order() -> None:
    pool = WorkerPool(2, _noop, ())
    try:
        got = []
        for n in range(40):
            pool.submit((_square_slowly, (n,)))
            if pool.in_flight > 5:
                got.append(pool.result())
        while pool.in_flight:
            got.append(pool.result())
        assert got == [n * n for n in range(40)]
    finally:
        pool.close()


def test_an_error_in_a_task_is_raised_in_the_caller_and_later_results_still_arrive() -> None:
    pool = WorkerPool(2, _noop, ())
    try:
        pool.submit((_square_slowly, (2,)))
        pool.submit((_fail, (7,)))
        pool.submit((_square_slowly, (3,)))
        assert pool.result() == 4
        with pytest.raises(UsageError, match="cannot read range 7"):
            pool.result()
        assert pool.result() == 9
    finally:
        pool.close()


def test_a_killed_worker_is_reported_not_waited_for() -> None:
    pool = WorkerPool(2, _noop, ())
    try:
        pool.submit((_pid, ()))
        victim = pool.result()
        os.kill(victim, signal.SIGKILL)
        pool.submit((_pid, ()))  # worker 1: alive
        assert pool.result() != victim
        with pytest.raises(WorkerDied, match=r"exited unexpectedly \((exit code -9|.*Broken pipe.*)\)"):
            pool.submit((_pid, ()))  # worker 0: refused at once if already reaped...
            pool.result()  # ... else its reader has seen the pipe close
    finally:
        pool.terminate()


def test_close_leaves_no_worker_behind() -> None:
    pool = WorkerPool(2, _noop, ())
    for _ in range(2):
        pool.submit((_pid, ()))
    pids = [pool.result(), pool.result()]
    pool.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
