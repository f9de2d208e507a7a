"""The lazy command table: its help cannot drift, and --help imports no command module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stripectl.cli.app import COMMANDS
from stripectl.cli.lazy import first_paragraph, load
from tests.replay_helpers import run


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_table_help_equals_the_commands_own_help(name: str) -> None:
    cmd = load(name, COMMANDS[name])
    assert cmd.name == name
    assert COMMANDS[name].help == first_paragraph(cmd), (
        f"update the help of {name!r} in stripectl/cli/app.py COMMANDS to the command's own "
        "first help paragraph"
    )


def test_root_help_lists_every_command_with_its_help() -> None:
    result = run("--help")
    assert result.exit_code == 0
    flat = " ".join(result.stdout.split())
    for name, entry in COMMANDS.items():
        assert name in flat
        assert " ".join(entry.help.split()[:4]) in flat, name


def _modules_after(args: list[str]) -> set[str]:
    code = (
        "import sys\n"
        "from stripectl.cli.app import app\n"
        f"try:\n    app({args!r})\nexcept SystemExit:\n    pass\n"
        "print('MODS:' + ','.join(sorted(m for m in sys.modules if m.startswith('stripectl.cli.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("MODS:"))
    return set(line[5:].split(","))


def test_root_help_imports_no_command_module() -> None:
    loaded = _modules_after(["--help"])
    command_modules = {e.target.partition(":")[0] for e in COMMANDS.values()}
    assert loaded & command_modules == set(), loaded


def test_a_commands_help_imports_only_that_command() -> None:
    loaded = _modules_after(["cards", "--help"])
    assert "stripectl.cli.cards" in loaded
    assert "stripectl.cli.replay" not in loaded and "stripectl.cli.payments" not in loaded


def test_unknown_command_is_a_usage_error() -> None:
    result = run("no-such-command")
    assert result.exit_code == 2
