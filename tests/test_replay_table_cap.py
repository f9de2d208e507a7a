"""The default table stays small whatever the input: subscriptions are capped
as `--events auto` caps events (20,000 rows once cost 3x the time and ~240 MB)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, run, write_jsonl


def _input(tmp_path: Path, active: int, canceled: int) -> Path:
    events = []
    for n in range(active + canceled):
        status = "active" if n < active else "canceled"
        sub = f.subscription(id=f"sub_tab{n:04d}", customer=f"cus_tab{n:04d}", status=status)
        events.append(f.event("customer.subscription.created", sub, id=f"evt_tab{n:04d}", created=f.T0 + n))
    return write_jsonl(tmp_path / "d.jsonl", envelopes(events))


def _rows(stdout: str) -> int:
    return sum(1 for line in stdout.splitlines() if "sub_tab" in line)


def test_past_100_subscriptions_the_table_lists_the_problems_only(tmp_path: Path) -> None:
    p = _input(tmp_path, active=140, canceled=10)
    result = run("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"))
    assert result.exit_code == 0, result.output
    assert _rows(result.stdout) == 10
    assert "140 of 150 subscriptions not listed (10 without access" in result.stderr
    assert "--subscriptions all" in result.stderr


def test_the_problems_are_capped_too(tmp_path: Path) -> None:
    p = _input(tmp_path, active=0, canceled=130)
    result = run("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"))
    assert _rows(result.stdout) == 100 and "30 of 130 subscriptions not listed" in result.stderr


@pytest.mark.parametrize("mode, rows", [("all", 150), ("problems", 10), ("none", 0)])
def test_subscriptions_option(tmp_path: Path, mode: str, rows: int) -> None:
    p = _input(tmp_path, active=140, canceled=10)
    result = run(
        "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db"),
        "--subscriptions", mode, "--events", "none",
    )
    assert result.exit_code == 0 and _rows(result.stdout) == rows


def test_small_inputs_list_every_subscription_and_json_lists_all(tmp_path: Path) -> None:
    p = _input(tmp_path, active=40, canceled=2)
    db = str(tmp_path / "m.db")
    result = run("replay-webhook", str(p), "--secret", SECRET, "--db", db, "--events", "none")
    assert _rows(result.stdout) == 42 and "not listed" not in result.stderr
    big = _input(tmp_path, active=140, canceled=10)
    js = run("replay-webhook", str(big), "--secret", SECRET, "--db", str(tmp_path / "j.db"), "--json")
    assert len(json.loads(js.stdout)["subscriptions"]) == 150


def test_a_bad_subscriptions_mode_is_a_usage_error(tmp_path: Path) -> None:
    p = _input(tmp_path, active=1, canceled=0)
    assert run("replay-webhook", str(p), "--secret", SECRET, "--subscriptions", "some").exit_code == 2
