"""The `stripectl` entry point: global options and the command table.

ADDING A COMMAND = ONE LINE IN `COMMANDS` below:

    "name": LazyCommand("stripectl.cli.module:attr", "One-line help."),

`attr` is a `typer.Typer` (a group: `payments`, `webhook`, ...) or a
`register(app)` function that adds the one command `name` to `app`.
The help string is what `stripectl --help` lists; it must equal the first
paragraph of the command's own help (tests/test_lazy_commands.py fails
otherwise; `python scripts/gen_commands_doc.py` regenerates docs/commands.md).

A command's module is imported only when that command runs, is completed or
shows its own --help (stripectl/cli/lazy.py): `stripectl --help` and Tab on
the command name import no command module. Command modules in turn import
their services lazily, inside the command body, so that no --help imports
stripe or sqlite_utils.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import typer

from stripectl import __version__
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
from stripectl.cli.help_format import argument_help, plain_help
from stripectl.cli.lazy import LazyCommand, LazyGroup
from stripectl.cli.profile_opts import (
    CONFIG_HELP,
    CONFIG_KEY,
    PROJECT_HELP,
    PROJECT_KEY,
    add_profile_options,
)

# fmt: off
COMMANDS: dict[str, LazyCommand] = {
    "replay-webhook": LazyCommand("stripectl.cli.replay:register", "Verify saved Stripe webhook deliveries and apply them to the SQLite mirror."),  # noqa: E501
    "events": LazyCommand("stripectl.cli.events:events_app", "Events API catch-up. Example: stripectl events pull --since 2h"),  # noqa: E501
    "webhook": LazyCommand("stripectl.cli.webhook:webhook_app", "Receive webhook deliveries. Example: stripectl webhook listen --secret whsec_..."),  # noqa: E501
    "inbox": LazyCommand("stripectl.cli.inbox:inbox_app", "The stored deliveries (events table). Example: stripectl inbox export --output d.jsonl; stripectl inbox prune --bodies"),  # noqa: E501
    "mirror": LazyCommand("stripectl.cli.mirror:mirror_app", "The mirror as a whole. Example: stripectl mirror copy stripectl.db postgresql://ops@db/stripe"),  # noqa: E501
    "payments": LazyCommand("stripectl.cli.payment_actions:payments_app", "Idempotent payment intents. Example: stripectl payments create --amount 1050 --currency usd --order-ref ord_1001"),  # noqa: E501
    "refunds": LazyCommand("stripectl.cli.refunds:refunds_app", "Idempotent refunds. Example: stripectl refunds create --payment-intent pi_123 --amount 500 --refund-ref ticket_881"),  # noqa: E501
    "checkout": LazyCommand("stripectl.cli.checkout:checkout_app", "Idempotent Checkout Sessions. Example: stripectl checkout create --mode subscription --price price_123 --user-id u_42 --success-url https://example.com/done"),  # noqa: E501
    "cards": LazyCommand("stripectl.cli.cards:register", "List Stripe's test cards and pm_card_* tokens with their expected outcome."),  # noqa: E501
    "sync": LazyCommand("stripectl.cli.sync:register", "Pull every subscription from Stripe into the SQLite mirror."),  # noqa: E501
    "reconcile": LazyCommand("stripectl.cli.reconcile:register", "Compare the mirror with a fresh listing of every Stripe subscription."),  # noqa: E501
    "access": LazyCommand("stripectl.cli.access:register", "May USER_OR_CUSTOMER be provisioned right now, and why."),  # noqa: E501
    "history": LazyCommand("stripectl.cli.history:register", "One object's story from the mirror: deliveries, current state, access."),  # noqa: E501
    "config": LazyCommand("stripectl.cli.config_cmd:config_app", "Where stripectl's settings come from. Example: stripectl config show"),  # noqa: E501
}
# fmt: on


class RootGroup(LazyGroup):
    lazy: ClassVar[dict[str, LazyCommand]] = COMMANDS
    on_load = (add_profile_options, plain_help, argument_help)


app = typer.Typer(
    suggest_commands=SUGGEST_COMMANDS,
    name="stripectl",
    cls=RootGroup,
    help=(
        "Operations toolkit for Stripe: idempotent money mutations, verified webhook "
        "replay into a SQLite mirror, drift reports for CI.\n\n"
        "Example: stripectl replay-webhook examples/ --secret whsec_...\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    rich_markup_mode=None,  # see help_format.plain_help
    # --install-completion / --show-completion for bash, zsh, fish (typer).
    add_completion=True,
    pretty_exceptions_enable=False,
    # Wide terminals get wider help (click stops at 80 by default).
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)


def _root_profiles(ctx: typer.Context, incomplete: str) -> list[str]:
    from stripectl.cli.profile_opts import profile_names

    return profile_names(ctx, incomplete)


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
    project_name: Annotated[
        str | None,
        typer.Option("--project-name", "-p", help=PROJECT_HELP, metavar="NAME", show_default=False,
                     autocompletion=_root_profiles),
    ] = None,
    stripe_config: Annotated[
        str | None,
        typer.Option("--stripe-config", help=CONFIG_HELP, metavar="FILE", show_default=False),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    schema: SchemaOpt = None,
) -> None:
    ctx.obj = Globals(db=db, json=json_out, debug=debug, schema=schema)
    if project_name:
        ctx.meta[PROJECT_KEY] = project_name
    if stripe_config:
        ctx.meta[CONFIG_KEY] = stripe_config


def main() -> None:
    from stripectl.cli import completion

    command = typer.main.get_command(app)
    completion.register()  # after get_command: typer registers its classes there
    run_app(lambda: command(prog_name="stripectl"))
