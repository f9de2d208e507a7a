"""The `stripectl` entry point: global options and the command list.

Command modules import their services lazily, inside the command body, so that
`stripectl --help` never imports stripe or sqlite_utils.
"""

from __future__ import annotations

from typing import Annotated

import typer

from stripectl import __version__
from stripectl.cli import access as access_cmd
from stripectl.cli import cards, replay
from stripectl.cli import reconcile as reconcile_cmd
from stripectl.cli import sync as sync_cmd
from stripectl.cli.checkout import checkout_app
from stripectl.cli.common import (
    EXIT_CODES_HELP,
    SUGGEST_COMMANDS,
    DbOpt,
    DebugOpt,
    Globals,
    JsonOpt,
    SchemaOpt,
    run_app,
)
from stripectl.cli.events import events_app
from stripectl.cli.inbox import inbox_app
from stripectl.cli.mirror import mirror_app
from stripectl.cli.payments import payments_app
from stripectl.cli.webhook import webhook_app

app = typer.Typer(
    suggest_commands=SUGGEST_COMMANDS,
    name="stripectl",
    help=(
        "Operations toolkit for Stripe: idempotent money mutations, verified webhook "
        "replay into a SQLite mirror, drift reports for CI.\n\n"
        "Example: stripectl replay-webhook examples/ --secret whsec_...\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stripectl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    schema: SchemaOpt = None,
) -> None:
    ctx.obj = Globals(db=db, json=json_out, debug=debug, schema=schema)


replay.register(app)
app.add_typer(events_app)
app.add_typer(webhook_app)
app.add_typer(inbox_app)
app.add_typer(mirror_app)
app.add_typer(payments_app)
app.add_typer(checkout_app)
cards.register(app)
sync_cmd.register(app)
reconcile_cmd.register(app)
access_cmd.register(app)


def main() -> None:
    run_app(app)
