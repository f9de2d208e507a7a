"""A click group that imports a command's module only when that command runs.

`stripectl --help` and a completion request for the command names read the
name and the one-line help from the table in stripectl/cli/app.py and import
no command module at all: importing all of them (rich tables, the replay
pipeline, ...) was about half of `stripectl --help`'s time.
tests/test_lazy_commands.py checks that every table line's help equals the
loaded command's own first help paragraph, so the table cannot drift.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

import click
import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives: "module:attribute", and its one-line help.

    The attribute is either a `typer.Typer` (a command group such as
    `payments`) or a `register(app)` function that adds one command named
    like the table key to `app`.
    """

    target: str
    help: str


def first_paragraph(cmd: click.Command) -> str:
    """What a group's command list shows for `cmd` (typer's rule: the first
    paragraph of short_help or help)."""
    text = cmd.short_help or cmd.help or ""
    return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())


def load(name: str, entry: LazyCommand) -> click.Command:
    """Import the module and build the click command for `name`."""
    module_name, _, attr = entry.target.partition(":")
    obj = getattr(importlib.import_module(module_name), attr)
    if isinstance(obj, typer.Typer):
        # get_group, not get_command: a group with one subcommand stays a
        # group (`stripectl checkout create`), as add_typer kept it.
        cmd: click.Command = typer.main.get_group(obj)
    else:
        holder = typer.Typer()
        obj(holder)
        cmd = typer.main.get_group(holder).commands[name]
    cmd.name = name
    return cmd


class LazyGroup(TyperGroup):
    """The root group: its commands come from `self.lazy` (name -> LazyCommand)."""

    lazy: ClassVar[dict[str, LazyCommand]] = {}
    # Run on each loaded command tree, e.g. to add options to every command
    # that talks to Stripe (stripectl/cli/profile_opts.py).
    on_load: ClassVar[tuple[Any, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, click.Command] = {}
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(n for n in super().list_commands(ctx) if n not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            # Only the name and help are read: a stand-in, nothing imported.
            return click.Command(cmd_name, help=entry.help, short_help=entry.help)
        if cmd_name not in self._loaded:
            cmd = load(cmd_name, entry)
            for hook in self.on_load:
                hook(cmd)
            self._loaded[cmd_name] = cmd
        return self._loaded[cmd_name]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # click 8.4+ suggests close names from `self.commands`, which a lazy
            # group leaves empty: suggest from the table instead.
            no_such = getattr(click.exceptions, "NoSuchCommand", None)
            if no_such is None or not isinstance(exc, no_such) or exc.possibilities:
                raise
            raise no_such(exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        """Command names from the table (no import), then the root's options."""
        from click.shell_completion import CompletionItem

        items = [
            CompletionItem(name, help=entry.help)
            for name, entry in self.lazy.items()
            if name.startswith(incomplete)
        ]
        items.extend(click.Command.shell_complete(self, ctx, incomplete))
        return items
