"""The command reference (docs/commands.md), built from the real --help texts.

`python scripts/gen_commands_doc.py` writes it; tests/test_commands_doc.py
fails when the file differs from what this builds, so it cannot go stale.
Help is rendered at a fixed width so the file does not depend on the terminal.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

WIDTH = 100


def _walk(cmd: click.Command, ctx: click.Context) -> Iterator[tuple[str, str]]:
    yield ctx.command_path, cmd.get_help(ctx)
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx, terminal_width=WIDTH,
                                    max_content_width=WIDTH)
            yield from _walk(sub, sub_ctx)


def build() -> str:
    import typer.main

    from stripectl.cli.app import app

    root = typer.main.get_command(app)
    ctx = click.Context(root, info_name="stripectl", terminal_width=WIDTH, max_content_width=WIDTH)
    parts = [
        "# stripectl command reference",
        "",
        "Generated from the commands' own `--help` by `python scripts/gen_commands_doc.py`;",
        "tests/test_commands_doc.py fails when it is out of date. Do not edit by hand.",
        "",
    ]
    pages = list(_walk(root, ctx))
    parts.append("## Contents\n")
    parts.extend(f"- [`{path}`](#{path.replace(' ', '-')})" for path, _ in pages)
    for path, text in pages:
        parts += ["", f'<a id="{path.replace(" ", "-")}"></a>', "", f"## `{path}`", "", "```text",
                  text.rstrip(), "```"]
    return "\n".join(parts) + "\n"
