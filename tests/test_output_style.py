"""Output people read: colours on a terminal only, progress bars with a known total."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from stripectl.cli import totals
from stripectl.style import style_for
from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, write_jsonl

GREEN, RED, YELLOW = "\x1b[32m", "\x1b[31m", "\x1b[33m"


def _on_a_terminal(args: list[str], **env: str) -> str:
    """Run stripectl with stdout and stderr on a pseudo-terminal; return what it drew."""
    leader, follower = pty.openpty()
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stripectl", *args], stdin=subprocess.DEVNULL, stdout=follower,
        stderr=follower, env={**base, "TERM": "xterm-256color", "COLUMNS": "160", **env},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def _deliveries(tmp_path: Path) -> Path:
    good = envelopes([
        f.event("customer.subscription.created", f.subscription("sub_1StyleExample000000001",
                status="active"), id="evt_s1", created=f.T0),
        f.event("customer.subscription.created", f.subscription("sub_1StyleExample000000002",
                status="canceled"), id="evt_s2", created=f.T0),
    ])
    forged = f.envelope(f.event("customer.created", f.customer("cus_forged"), id="evt_s3",
                                created=f.T0), "whsec_wrong_wrong_wrong", t=f.T0)
    return write_jsonl(tmp_path / "d.jsonl", [*good, forged])


def test_style_table() -> None:
    assert style_for("applied") == style_for("granted") == "green"
    assert style_for("rejected") == style_for("DENIED") == "red"
    assert style_for("anomaly") == style_for("stale") == "yellow"
    assert style_for("sub_123") == ""


def test_outcomes_are_coloured_on_a_terminal_with_a_progress_total(tmp_path: Path) -> None:
    p = _deliveries(tmp_path)
    out = _on_a_terminal(["replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "a.db")])
    assert GREEN + "applied" in out
    assert RED + "rejected" in out
    assert "/3" in out  # the bar's total: 3 deliveries in the file


def test_no_colour_with_no_color_or_when_piped(tmp_path: Path) -> None:
    p = _deliveries(tmp_path)
    out = _on_a_terminal(["replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "b.db")],
                         NO_COLOR="1")
    assert "applied" in out and GREEN not in out and RED not in out
    piped = subprocess.run(
        [sys.executable, "-m", "stripectl", "replay-webhook", str(p), "--secret", SECRET, "--db",
         str(tmp_path / "c.db")], capture_output=True, text=True, check=False,
    )
    assert "applied" in piped.stdout and "\x1b[" not in piped.stdout + piped.stderr


def test_access_verdicts_coloured(tmp_path: Path) -> None:
    p = _deliveries(tmp_path)
    db = str(tmp_path / "d.db")
    subprocess.run([sys.executable, "-m", "stripectl", "replay-webhook", str(p), "--secret", SECRET,
                    "--db", db], capture_output=True, check=False)
    out = _on_a_terminal(["history", "sub_1StyleExample000000002", "--db", db])
    assert RED + "DENIED" in out
    out = _on_a_terminal(["history", "sub_1StyleExample000000001", "--db", db])
    assert GREEN + "GRANTED" in out


def test_expected_deliveries_counts_lines_and_files(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text('{"x":1}\n{"x":2}\n{"x":3}')
    (tmp_path / "in" / "b.json").write_text("{}")
    (tmp_path / "in" / "c.json").write_text("{}")
    assert totals.expected_deliveries([tmp_path / "in"]) == 5
    assert totals.expected_deliveries([tmp_path / "missing"]) is None


def test_a_large_file_is_estimated_from_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(totals, "_EXACT_BYTES", 100)
    monkeypatch.setattr(totals, "_SAMPLE_BYTES", 520)
    line = '{"body":"' + "x" * 40 + '"}\n'  # 52 bytes a line
    (tmp_path / "big.jsonl").write_text(line * 1000)
    assert totals.expected_deliveries([tmp_path / "big.jsonl"]) == 1000


def test_listener_lines_colour_the_outcome_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from stripectl.cli.webhook import _format
    from stripectl.services.listener import DeliveryLine
    from stripectl.style import colour_on

    line = DeliveryLine(status=200, received_at=f.T0, latency_ms=3.0, event_id="evt_1",
                        type="invoice.paid", outcome="applied")
    assert GREEN + "applied" in _format(line, as_json=False, colour=True)
    assert "\x1b[" not in _format(line, as_json=False, colour=False)
    r, w = os.pipe()
    with os.fdopen(w, "w") as piped:
        assert colour_on(piped) is False
    os.close(r)
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as tty:
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setenv("TERM", "xterm")
        assert colour_on(tty) is True
        monkeypatch.setenv("NO_COLOR", "1")
        assert colour_on(tty) is False
    os.close(leader)
