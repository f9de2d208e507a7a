"""Explicit option beats env var beats default, before or after the command name.

`STRIPECTL_DB=/tmp/a.db stripectl --db /tmp/b.db replay-webhook ...` once wrote
/tmp/a.db: the command's own --db was filled from the env var and won over
the root's explicit flag.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import factories as f
from tests.replay_helpers import SECRET, envelopes, run, write_jsonl


def _input(tmp_path: Path) -> Path:
    evt = f.event("customer.created", f.customer("cus_prec"), id="evt_prec", created=f.T0)
    return write_jsonl(tmp_path / "d.jsonl", envelopes([evt]))


@pytest.mark.parametrize("placement", ["before", "after"])
def test_explicit_db_beats_the_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, placement: str
) -> None:
    p = _input(tmp_path)
    env_db, flag_db = tmp_path / "env.db", tmp_path / "flag.db"
    monkeypatch.setenv("STRIPECTL_DB", str(env_db))
    cmd = ["replay-webhook", str(p), "--secret", SECRET]
    args = ["--db", str(flag_db), *cmd] if placement == "before" else [*cmd, "--db", str(flag_db)]
    assert run(*args).exit_code == 0
    assert flag_db.exists() and not env_db.exists()


@pytest.mark.parametrize("placement", ["before", "after"])
def test_explicit_db_beats_the_env_var_in_a_group_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, placement: str
) -> None:
    p = _input(tmp_path)
    flag_db = tmp_path / "flag.db"
    assert run("replay-webhook", str(p), "--secret", SECRET, "--db", str(flag_db)).exit_code == 0
    monkeypatch.setenv("STRIPECTL_DB", str(tmp_path / "env.db"))
    cmd = ["inbox", "export"]
    args = ["--db", str(flag_db), *cmd] if placement == "before" else [*cmd, "--db", str(flag_db)]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    assert not (tmp_path / "env.db").exists()


def test_env_var_beats_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _input(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STRIPECTL_DB", str(tmp_path / "env.db"))
    assert run("replay-webhook", str(p), "--secret", SECRET).exit_code == 0
    assert (tmp_path / "env.db").exists() and not (tmp_path / "stripectl.db").exists()


def test_the_later_of_two_explicit_dbs_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _input(tmp_path)
    monkeypatch.setenv("STRIPECTL_DB", str(tmp_path / "env.db"))
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert run("--db", str(a), "replay-webhook", str(p), "--secret", SECRET, "--db", str(b)).exit_code == 0
    assert b.exists() and not a.exists() and not (tmp_path / "env.db").exists()


@pytest.mark.parametrize("placement", ["before", "after"])
def test_json_before_or_after_with_the_env_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, placement: str
) -> None:
    p = _input(tmp_path)
    monkeypatch.setenv("STRIPECTL_DB", str(tmp_path / "env.db"))
    cmd = ["replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db")]
    args = ["--json", *cmd] if placement == "before" else [*cmd, "--json"]
    result = run(*args)
    assert result.exit_code == 0 and json.loads(result.stdout)["summary"]["applied"] == 1


@pytest.mark.parametrize("placement", ["before", "after", "env"])
def test_debug_before_after_or_from_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, placement: str
) -> None:
    cmd = ["replay-webhook", str(tmp_path / "missing"), "--secret", SECRET]
    monkeypatch.setenv("STRIPECTL_DB", str(tmp_path / "env.db"))
    if placement == "env":
        monkeypatch.setenv("STRIPECTL_DEBUG", "1")
        args = cmd
    else:
        args = ["--debug", *cmd] if placement == "before" else [*cmd, "--debug"]
    result = run(*args)
    assert result.exit_code == 2 and "Traceback" in result.stderr
    assert "Traceback" not in run(*cmd).stderr or placement == "env"


def test_explicit_secret_beats_the_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _input(tmp_path)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_wrong_secret_from_the_environment")
    code = run("replay-webhook", str(p), "--secret", SECRET, "--db", str(tmp_path / "m.db")).exit_code
    assert code == 0
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    p2 = write_jsonl(
        tmp_path / "e.jsonl",
        envelopes([f.event("customer.created", f.customer("cus_p2"), id="evt_p2", created=f.T0)]),
    )
    wrong = "whsec_wrong_secret_on_the_command_line"
    result = run("replay-webhook", str(p2), "--secret", wrong, "--db", str(tmp_path / "m.db"), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["summary"]["rejected"] == 1


@pytest.mark.parametrize(
    "args, suggestion",
    [(["replay", "x"], "'replay-webhook'"), (["inbox", "exprt"], "'export'"), (["evnts"], "'events'")],
)
def test_a_mistyped_command_gets_one_suggestion(args: list[str], suggestion: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert result.stderr.count("Did you mean") == 1 and suggestion in result.stderr, result.stderr


def test_every_command_takes_the_global_options_after_its_name(tmp_path: Path) -> None:
    """`webhook probe/audit` once refused `--db` after the command name."""
    import typer.main

    from stripectl.cli.app import app

    group = typer.main.get_command(app)
    names: list[list[str]] = []
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(cmd, "commands", None)
        names.extend([[name, s] for s in sub] if sub else [[name]])
    for args in names:
        result = run(*args, "--db", str(tmp_path / "m.db"), "--json", "--debug", "--help")
        assert result.exit_code == 0, (args, result.output)
