"""`stripectl config show`: which key, from where, which mirror, which mode.

Answers "why is stripectl using that account?" without printing a secret:
keys and webhook secrets are shown redacted (`sk_test_...abcd`).
"""

from __future__ import annotations

import os
from typing import Any

import typer

from stripectl.cli.common import EXIT_CODES_HELP, Ctx, DbOpt, DebugOpt, JsonOpt, guarded, make_ctx
from stripectl.cli.stripe_opts import ApiKeyOpt, LiveOpt
from stripectl.errors import CONFIG, StripectlError

config_app = typer.Typer(
    name="config",
    help="Where stripectl's settings come from. Example: stripectl config show",
    no_args_is_help=True,
)

SHOW_HELP = f"""Show the Stripe key stripectl would use (redacted) and where it came from.

The key is taken from --api-key, else STRIPE_API_KEY, else STRIPE_SECRET_KEY,
else the key `stripe login` stored in the Stripe CLI's config (profile from
-p/--project-name, STRIPE_PROJECT_NAME, the config's project-name, or
'default'; --live reads the live key). Also shows the mirror path and mode
and the webhook secrets found (STRIPE_WEBHOOK_SECRET). Reads the Stripe CLI's
files, never writes them, and never creates the mirror.

Examples:

  stripectl config show

  stripectl config show -p work --json

Exit 0 when a usable key was found, 3 when not. {EXIT_CODES_HELP}
"""


def gather(api_key: str | None, live: bool, db: str, schema: str | None = None) -> dict[str, Any]:
    """Everything `config show` reports, as plain data (no secret in full)."""
    import click

    from stripectl.cli.profile_opts import chosen
    from stripectl.cli.stripe_opts import resolve_key_here
    from stripectl.gateway import stripe_cli_config as scc
    from stripectl.redact import mask
    from stripectl.store.peek import mirror_summary

    project, config_flag = chosen(click.get_current_context(silent=True))
    path = scc.config_file(config_flag, os.environ)
    report: dict[str, Any] = {"stripe_cli_config": {"path": str(path), "exists": path.is_file()}}
    try:
        doc = scc.read_config(path)
    except StripectlError as exc:
        doc, report["stripe_cli_config"]["error"] = None, exc.message
    profile = scc.choose_profile(project, os.environ, doc)
    report["profile"] = {"name": profile.name, "from": profile.source}
    report["stripe_cli_config"]["profiles"] = sorted(
        k for k, v in (doc or {}).items() if isinstance(v, dict) and k != "plugin_configs"
    )
    try:
        choice = resolve_key_here(api_key, live)
    except StripectlError as exc:
        report["key"] = {"found": False, "error": exc.message, "hint": exc.hint}
    else:
        report["key"] = {
            "found": True, "redacted": choice.redacted, "source": choice.source,
            "from": choice.detail, "expires_at": choice.expires_at,
            "mode": "live" if choice.key.startswith(("sk_live_", "rk_live_")) else "test",
        }
    from stripectl.store.engine.postgres import redact_url

    mirror = mirror_summary(db, schema)
    mode = {"1": "live", "0": "test"}.get(str(mirror.get("livemode")))
    report["mirror"] = {"path": redact_url(db), **mirror, "mode": mode}
    report["mode"] = report["key"].get("mode") or ("live" if live else "test")
    secrets = (os.environ.get("STRIPE_WEBHOOK_SECRET") or "").split()
    report["webhook_secrets"] = [
        {"redacted": mask(s), "from": "env STRIPE_WEBHOOK_SECRET"} for s in secrets
    ]
    return report


def _render(ctx: Ctx, r: dict[str, Any]) -> None:
    from rich.table import Table

    from stripectl.style import styled

    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    key = r["key"]
    if key["found"]:
        t.add_row("key", key["redacted"])
        t.add_row("from", key["from"])
        if key.get("expires_at"):
            t.add_row("expires", key["expires_at"])
    else:
        t.add_row("key", styled("none", "rejected"))
        t.add_row("problem", key["error"])
        if key.get("hint"):
            t.add_row("hint", key["hint"])
    t.add_row("mode", r["mode"])
    prof = r["profile"]
    t.add_row("stripe profile", f"{prof['name']} (from {prof['from']})")
    cfg = r["stripe_cli_config"]
    found = "found" if cfg["exists"] else "not found"
    t.add_row("stripe config", f"{cfg['path']} ({found})" + (f": {cfg['error']}" if cfg.get("error") else ""))
    if cfg["profiles"]:
        t.add_row("profiles", ", ".join(cfg["profiles"]))
    m = r["mirror"]
    if m["exists"]:
        what = f"{m['mode'] or 'mode not set yet'}, {m['deliveries'] or 0} deliveries"
        if m.get("error"):
            what = f"unreadable: {m['error']}"
        mirror_text = f"{m['path']} ({what})"
    else:
        mirror_text = f"{m['path']} (not created yet)"
    t.add_row("mirror", mirror_text)
    if m.get("mode") and key.get("mode") and m["mode"] != key["mode"]:
        warning = f"the mirror holds {m['mode']}-mode data, the key is {key['mode']}"
        t.add_row("warning", styled(warning, "anomaly"))
    secrets = r["webhook_secrets"]
    t.add_row("webhook secrets", ", ".join(f"{s['redacted']} ({s['from']})" for s in secrets) or "none")
    ctx.out.print(t)


@config_app.command("show", help=SHOW_HELP)
@guarded
def show(
    tctx: typer.Context,
    api_key: ApiKeyOpt = None,
    live: LiveOpt = False,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    report = gather(api_key, live, ctx.db, ctx.schema)
    if ctx.json:
        ctx.emit_json(report)
    else:
        _render(ctx, report)
    if not report["key"]["found"]:
        raise typer.Exit(CONFIG)
