"""`-p/--project-name` and `--stripe-config`: which Stripe CLI profile to read.

Like the Stripe CLI's persistent flags they work before the command name
(`stripectl -p work sync`) and after it (`stripectl sync -p work`): the root
callback takes them, and `add_profile_options` adds them to every loaded
command that has `--api-key`, so no command module has to declare them.
Values land in the click context's `meta` (shared by the whole invocation);
the later one wins. stripe_opts.gateway_settings reads them.
"""

from __future__ import annotations

from typing import Any

import click
from typer.core import TyperOption

PROJECT_KEY = "stripectl.project_name"
CONFIG_KEY = "stripectl.stripe_config"

PROJECT_HELP = (
    "Stripe CLI profile to take the key from when neither --api-key nor STRIPE_API_KEY is set "
    "(env STRIPE_PROJECT_NAME; default: the config's project-name, else 'default')."
)
CONFIG_HELP = (
    "The Stripe CLI's config file (like `stripe --config`; default "
    "$XDG_CONFIG_HOME/stripe/config.toml, else ~/.config/stripe/config.toml). Only read."
)


def _store(key: str) -> Any:
    def callback(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            ctx.meta[key] = value

    return callback


def profile_names(ctx: click.Context | None, incomplete: str) -> list[str]:
    """Tab on -p: the profiles in the Stripe CLI's config (read, never written)."""
    import os

    from stripectl.errors import StripectlError
    from stripectl.gateway.stripe_cli_config import config_file, read_config

    try:
        doc = read_config(config_file(chosen(ctx)[1], os.environ)) or {}
    except StripectlError:
        return []
    return sorted(k for k, v in doc.items()
                  if isinstance(v, dict) and k != "plugin_configs" and k.startswith(incomplete))


def _complete_profiles(ctx: click.Context, _args: list[str], incomplete: str) -> list[str]:
    return profile_names(ctx, incomplete)


def profile_options() -> list[click.Parameter]:
    return [
        TyperOption(
            param_decls=["--project-name", "-p"], type=click.STRING, default=None, expose_value=False,
            callback=_store(PROJECT_KEY), help=PROJECT_HELP, metavar="NAME",
            autocompletion=_complete_profiles,
        ),
        TyperOption(
            param_decls=["--stripe-config"], type=click.Path(dir_okay=False), default=None,
            expose_value=False,
            callback=_store(CONFIG_KEY), help=CONFIG_HELP, metavar="FILE",
        ),
    ]


def add_profile_options(cmd: click.Command) -> None:
    """Give every command with an --api-key option the two profile options."""
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            add_profile_options(sub)
        return
    names = {p.name for p in cmd.params}
    if "api_key" in names and "project_name" not in names:
        cmd.params.extend(profile_options())


def chosen(ctx: click.Context | None) -> tuple[str | None, str | None]:
    """(project name, config path) given on the command line, if any."""
    if ctx is None:
        return None, None
    return ctx.meta.get(PROJECT_KEY), ctx.meta.get(CONFIG_KEY)
