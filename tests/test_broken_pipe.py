"""`stripectl ... | head -1`: a reader that stops early is not a bug.

Real pipes through a subprocess: the writer gets EPIPE once `head` has exited.
The conventional status is that of a process killed by SIGPIPE (128 + 13),
with nothing on stderr: no "bug:", no traceback, no "Exception ignored".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, run, write_jsonl

SIGPIPE_STATUS = 128 + signal.SIGPIPE


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror whose export (~2 MB) is far larger than a pipe's buffer."""
    tmp = tmp_path_factory.mktemp("pipe")
    events = [
        f.event("customer.created", f.customer(f"cus_pipe{i}"), id=f"evt_pipe{i}", created=f.T0 + i)
        for i in range(1200)
    ]
    p = write_jsonl(tmp / "d.jsonl", envelopes(events))
    db = tmp / "m.db"
    result = run("replay-webhook", str(p), "--secret", SECRET, "--db", str(db), "--events", "none")
    assert result.exit_code == 0
    return db


def _piped_to_head(args: list[str]) -> tuple[int, bytes, bytes]:
    """`stripectl ARGS | head -1`, as a shell would run it."""
    producer = subprocess.Popen(
        [sys.executable, "-m", "stripectl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert producer.stdout is not None and producer.stderr is not None
    head = subprocess.run(["head", "-1"], stdin=producer.stdout, capture_output=True, check=True)
    producer.stdout.close()  # only head holds the read end now: it has exited
    err = producer.stderr.read()
    producer.stderr.close()
    return producer.wait(timeout=60), head.stdout, err


@pytest.mark.parametrize(
    "args",
    [
        ["inbox", "export"],
        ["inbox", "export", "--json"],
        ["replay-webhook", "--events", "all"],
        ["replay-webhook", "--json"],
    ],
    ids=["export", "export-json", "replay-table", "replay-json"],
)
def test_a_closed_stdout_ends_quietly(mirror: Path, args: list[str]) -> None:
    if args[0] == "replay-webhook":
        # Every delivery is a duplicate now: the report still lists 1,200 rows.
        args = [args[0], str(mirror.parent / "d.jsonl"), "--secret", SECRET, *args[1:]]
    code, first, err = _piped_to_head([*args, "--db", str(mirror)])
    assert first.strip(), "head read the first line"
    for bad in (b"bug", b"Exception ignored", b"Traceback", b"Broken"):
        assert bad not in err, err
    assert code == SIGPIPE_STATUS, (code, err)


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["table", "json"])
def test_output_still_buffered_at_exit_meets_a_closed_pipe(extra: list[str]) -> None:
    """A small output stays in Python's buffer until the process exits: here
    the reader has closed the pipe before stripectl even starts."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "stripectl", "cards", *extra],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert b"Exception ignored" not in proc.stderr and b"Traceback" not in proc.stderr, proc.stderr
    assert b"bug" not in proc.stderr, proc.stderr
    assert proc.returncode == SIGPIPE_STATUS, proc.stderr
