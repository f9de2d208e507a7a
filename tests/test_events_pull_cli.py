"""`stripectl events pull` through the CLI, and the --since parser."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stripectl.cli.app import app
from stripectl.errors import UsageError
from stripectl.timeparse import parse_since
from tests import factories as f
from tests.fakes.base import serve
from tests.fakes.events import FakeEvents

KEY = "sk_test_stripectl_fake_0000"
runner = CliRunner()


def _pull(url: str, db: Path | str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app,
        ["events", "pull", "--api-key", KEY, "--api-base", url, "--db", str(db), *args],
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


def test_cli_pull_json_then_continue_from_cursor(mirror_target: str) -> None:
    # Events are placed relative to the real clock (the CLI reads it); nothing
    # asserts a wall-clock value.
    now = int(time.time())
    fake = FakeEvents(
        [
            f.event(
                "customer.created",
                f.customer(f"cus_cli{i}"),
                id=f"evt_cli{i}",
                created=now - 600 + i,
            )
            for i in range(3)
        ]
    )
    db = mirror_target  # a file, then a postgresql:// mirror
    with serve(fake) as url:
        code, out, _ = _pull(url, db, "--since", "2h", "--json")
        assert code == 0
        report = json.loads(out)
        assert (report["fetched"], report["new"], report["duplicate"]) == (3, 3, 0)
        assert report["replay"]["summary"]["applied"] == 3
        assert report["cursor"]["id"] == "evt_cli2"

        code, out, err = _pull(url, db)  # no --since: the cursor
        assert code == 0 and "0 new" in out and "already stored" in out
        assert "cursor:" in err


def test_cli_warns_past_retention_and_refuses_bad_input(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with serve(FakeEvents()) as url:
        code, _, err = _pull(url, db, "--since", "45d")
        assert code == 0 and "30-day retention" in err
        code, _, err = _pull(url, db, "--since", "yesterday-ish")
        assert code == 2 and "not a time" in err
        code, _, err = _pull(url, tmp_path / "fresh.db")
        assert code == 2 and "--since" in err
        code, _, err = _pull(
            url, db, "--since", "1h", *[a for i in range(21) for a in ("--type", f"t.{i}")]
        )
        assert code == 2 and "at most 20" in err


def test_cli_refuses_live_key_without_live_flag(tmp_path: Path) -> None:
    live_key = "sk_live_stripectl_fake_0000"
    result = runner.invoke(
        app,
        [
            "events",
            "pull",
            "--since",
            "1h",
            "--api-key",
            live_key,
            "--api-base",
            "http://127.0.0.1:9",
            "--db",
            str(tmp_path / "m.db"),
        ],
    )
    assert result.exit_code == 3
    assert live_key not in result.stderr and "sk_live_...0000" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", f.T0 - 7200),
        ("30m", f.T0 - 1800),
        ("7d", f.T0 - 7 * 86400),
        ("90s", f.T0 - 90),
        ("1764297600", 1764297600),
        ("2026-11-01T00:00Z", f.T0),
        ("2026-11-01", f.T0),
        ("2026-11-01T02:00:00+02:00", f.T0),
    ],
)
def test_parse_since_forms(text: str, expected: int) -> None:
    # A real clock: instants before 1970 are refused (out of range).
    assert parse_since(text, now=f.T0) == expected


def test_parse_since_rejects_garbage() -> None:
    with pytest.raises(UsageError):
        parse_since("soon", now=0)


@pytest.mark.parametrize(
    "text",
    ["99999999999999d", "9" * 5000 + "s", "0001-01-01", "1969-12-31T23:59:59Z"],
)
def test_cli_since_out_of_range_is_a_usage_error(text: str, tmp_path: Path) -> None:
    fake = FakeEvents()
    with serve(fake) as url:
        code, _, err = _pull(url, tmp_path / "m.db", "--since", text)
    assert code == 2, err
    assert "out of range" in err and "bug" not in err
    assert fake.requests == []  # refused before any request


def test_parse_since_bounds() -> None:
    assert parse_since("0000000000000000000001s", now=f.T0) == f.T0 - 1  # zeros are not digits
    assert parse_since("9999-12-31T23:59:59Z", now=f.T0) == 253402300799
    with pytest.raises(UsageError, match="out of range"):
        parse_since("1000000000000w", now=f.T0)
