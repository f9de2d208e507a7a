"""Plumbing every command shares: version, help, option placement, exit codes, lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stripectl import __version__
from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, run, write_jsonl


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"stripectl {__version__}"


def test_help_imports_neither_stripe_nor_sqlite_utils() -> None:
    code = (
        "import sys\n"
        "from stripectl.cli.app import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('stripe', 'sqlite_utils') if m in sys.modules]\n"
        "print('LOADED:' + ','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("LOADED:"), out


def test_every_command_help_has_an_example_and_exit_codes() -> None:
    import typer.main

    from stripectl.cli.app import app

    group = typer.main.get_command(app)
    names: list[list[str]] = []
    for name in group.list_commands(None):  # type: ignore[attr-defined,arg-type]
        cmd = group.get_command(None, name)  # type: ignore[attr-defined,arg-type]
        sub = getattr(cmd, "commands", None)
        names.extend([[name, s] for s in sub] if sub else [[name]])
    assert ["replay-webhook"] in names
    for args in names:
        text = run(*args, "--help").stdout
        assert "Example" in text or "example" in text, args
        assert "Exit" in text or "exit" in text, args


def test_global_options_work_before_and_after_the_command(tmp_path: Path) -> None:
    evt = f.event("customer.created", f.customer("cus_opt"), id="evt_opt", created=f.T0)
    p = write_jsonl(tmp_path / "d.jsonl", envelopes([evt]))
    before = run(
        "--db", str(tmp_path / "a.db"), "--json", "replay-webhook", str(p), "--secret", SECRET
    )
    after = run(
        "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "b.db"), "--json"
    )
    assert before.exit_code == after.exit_code == 0
    assert json.loads(before.stdout)["summary"] == json.loads(after.stdout)["summary"]
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()


def test_db_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evt = f.event("customer.created", f.customer("cus_env"), id="evt_envdb", created=f.T0)
    p = write_jsonl(tmp_path / "d.jsonl", envelopes([evt]))
    monkeypatch.setenv("STRIPECTL_DB", str(tmp_path / "env.db"))
    assert run("replay-webhook", str(p), "--secret", SECRET).exit_code == 0
    assert (tmp_path / "env.db").exists()


def test_store_errors_exit_6_without_traceback(tmp_path: Path) -> None:
    evt = f.event("customer.created", f.customer("cus_x"), id="evt_x", created=f.T0)
    p = write_jsonl(tmp_path / "d.jsonl", envelopes([evt]))
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    result = run("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "junk.db"))
    assert result.exit_code == 6
    assert (
        result.stderr.startswith("error: cannot open the mirror")
        and "Traceback" not in result.stderr
    )
    result = run(
        "replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "no" / "m.db")
    )
    assert result.exit_code == 6


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run(
        "replay-webhook",
        str(tmp_path / "missing"),
        "--secret",
        SECRET,
        "--debug",
        "--db",
        str(tmp_path / "m.db"),
    )
    assert result.exit_code == 2 and "Traceback" in result.stderr
    assert not (tmp_path / "m.db").exists()  # refused before anything was opened


def test_usage_errors_exit_2() -> None:
    assert run("replay-webhook", "x", "--tolerance", "nope").exit_code == 2
    assert run("replay-webhook", "x", "--secret", SECRET, "--grace", "sometimes").exit_code == 2


def test_no_progress_output_when_stderr_is_not_a_tty(tmp_path: Path) -> None:
    evt = f.event("customer.created", f.customer("cus_tty"), id="evt_tty", created=f.T0)
    p = write_jsonl(tmp_path / "d.jsonl", envelopes([evt]))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stripectl",
            "replay-webhook",
            str(p),
            "--secret",
            SECRET,
            "--db",
            str(tmp_path / "m.db"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout)["summary"]["applied"] == 1


def test_new_mirror_is_owner_only(tmp_path: Path) -> None:
    evt = f.event("customer.created", f.customer("cus_perm"), id="evt_perm", created=f.T0)
    p = write_jsonl(tmp_path / "d.jsonl", envelopes([evt]))
    assert run("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db")).exit_code == 0
    assert (tmp_path / "m.db").stat().st_mode & 0o777 == 0o600
