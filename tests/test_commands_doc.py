"""docs/commands.md is generated from the real --help texts and must be current."""

from __future__ import annotations

from pathlib import Path

from stripectl.cli.app import COMMANDS
from stripectl.cli.reference import build

DOC = Path(__file__).resolve().parent.parent / "docs" / "commands.md"


def test_command_reference_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == build(), (
        "docs/commands.md is stale: run python scripts/gen_commands_doc.py"
    )


def test_reference_covers_every_command_and_subcommand() -> None:
    text = build()
    for name in COMMANDS:
        assert f"## `stripectl {name}`" in text
    assert "## `stripectl payments create`" in text
    assert "## `stripectl config show`" in text
