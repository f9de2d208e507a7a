"""How loaded commands show their help (hooks run by the lazy root group).

- plain_help: click's plain help everywhere. typer's rich help imports
  typer.rich_utils (rich.markdown, rich.traceback, pygments), ~80 ms that
  every `--help` and completion request would pay.
- argument_help: typer.Argument(help=...) shown again (lost with click 8.5).
"""

from __future__ import annotations

from typing import Any


def plain_help(cmd: Any) -> None:
    """Click's plain help for every command: typer's rich help imports
    typer.rich_utils (rich.markdown, rich.traceback, pygments), ~80 ms
    that `--help` and every completion request would pay."""
    cmd.rich_markup_mode = None
    for sub in getattr(cmd, "commands", {}).values():
        plain_help(sub)


def argument_help(cmd: Any) -> None:
    """Put back the help of typer.Argument(help=...): click 8.2+'s Parameter
    __init__ resets `help` after typer's TyperArgument set it, so arguments
    showed only `[required]`. Read again from the command's signature.
    (typer 0.24 with click 8.5; harmless where typer already keeps it.)"""
    import inspect

    from typer.core import TyperArgument
    from typer.models import ArgumentInfo
    from typer.utils import get_params_from_function

    for sub in getattr(cmd, "commands", {}).values():
        argument_help(sub)
    if cmd.callback is None:
        return
    infos = get_params_from_function(inspect.unwrap(cmd.callback))
    for param in cmd.params:
        info = infos.get(param.name or "")
        if isinstance(param, TyperArgument) and not param.help and info is not None and isinstance(
            info.default, ArgumentInfo
        ):
            param.help = info.default.help
    # click 8.5 then lists documented arguments itself ("Positional arguments"),
    # next to typer's "Arguments" section: keep typer's one only.
    cmd.format_arguments = lambda ctx, formatter: None
