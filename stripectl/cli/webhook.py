"""`stripectl webhook listen`: a local receiver that stores every delivery."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stripectl.cli.common import (
    EXIT_CODES_HELP,
    SUGGEST_COMMANDS,
    DbOpt,
    DebugOpt,
    JsonOpt,
    guarded,
    make_ctx,
)
from stripectl.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from stripectl.services.listener import DeliveryLine

webhook_app = typer.Typer(
    suggest_commands=SUGGEST_COMMANDS,
    name="webhook",
    help="Receive webhook deliveries. Example: stripectl webhook listen --secret whsec_...",
    no_args_is_help=True,
)

LISTEN_HELP = f"""Receive Stripe webhook deliveries on a local port and store them exactly.

Each POST to --path is verified over its raw body, stored durably in the
inbox (the `events` table) and applied to the mirror BEFORE it is answered:
200 stored (duplicates too), 400 bad/missing/expired signature (stored as
rejected), 413 body over --max-body, 500 could not store (Stripe retries).
One line per delivery (--json: one JSON object per line) on stdout.
Ctrl-C or SIGTERM finishes in-flight deliveries, then closes the database.

Examples:

  stripectl webhook listen --secret whsec_stripectl_example_0000

  stripe listen --forward-to localhost:4242/webhooks/stripe   # in another terminal

  stripectl webhook listen --port 0 --json > listen-log.jsonl

  stripectl inbox export --source listener -o captured.jsonl   # the envelopes

Exit 130 after Ctrl-C (SIGINT: interrupted, like every command), 0 after
SIGTERM (a service manager's clean stop); both shut down cleanly.
{EXIT_CODES_HELP}
"""


@webhook_app.command("listen", help=LISTEN_HELP)
@guarded
def listen(
    tctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one (printed).", min=0, max=65535)] = 4242,
    path: Annotated[str, typer.Option(help="URL path that accepts deliveries.")] = "/webhooks/stripe",
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            envvar="STRIPE_WEBHOOK_SECRET",
            help="Endpoint secret whsec_...; repeat during a secret roll.",
            show_default=False,
        ),
    ] = None,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest accepted body in bytes (larger: 413).", min=1)
    ] = 1_048_576,
    tolerance: Annotated[
        int, typer.Option(help="Max seconds between the signature's t= and arrival.", min=0)
    ] = 300,
    db: DbOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    ctx = make_ctx(tctx, db, json_out, debug)
    secrets = [s.strip() for s in (secret or []) if s.strip()]
    if not secrets:
        raise ConfigError("no webhook secret", hint="pass --secret whsec_... or set STRIPE_WEBHOOK_SECRET")
    if not path.startswith("/"):
        raise UsageError(f"--path must start with '/', got {path!r}")
    for s in secrets:
        if not s.startswith("whsec_"):
            ctx.note("warning: a --secret does not start with whsec_; is it an endpoint secret?")
    if host not in ("127.0.0.1", "localhost", "::1"):
        ctx.note(
            f"warning: listening on {host}, not loopback: anyone who can reach it can post "
            "(deliveries without a valid signature are stored as rejected and answered 400)"
        )
    from stripectl.services.listener import Listener, ListenerConfig

    lock = threading.Lock()

    def on_delivery(line: DeliveryLine) -> None:
        with lock:
            sys.stdout.write(_format(line, as_json=ctx.json) + "\n")
            sys.stdout.flush()

    config = ListenerConfig(
        db_path=ctx.db,
        schema=ctx.schema,
        secrets=secrets,
        host=host,
        port=port,
        path=path,
        max_body=max_body,
        tolerance=tolerance,
    )
    listener = Listener(config, on_delivery)
    stop = threading.Event()
    received: list[int] = []
    previous = _install_signals(stop, received)
    try:
        listener.start()
        try:
            ctx.note(f"listening on {listener.url} (db {ctx.db}); Ctrl-C to stop")
            if ctx.json:
                hello = {"listening": listener.url, "port": listener.port}
                with lock:
                    sys.stdout.write(json.dumps(hello) + "\n")
                    sys.stdout.flush()
            while not stop.wait(0.5):
                pass
            ctx.note("stopping: finishing in-flight deliveries")
        finally:
            listener.stop()
    finally:
        _restore_signals(previous)
    ctx.note("stopped; database closed")
    if signal.SIGINT in received:
        raise typer.Exit(130)  # the README's "interrupted (Ctrl-C)"


def _install_signals(stop: threading.Event, received: list[int]) -> dict[int, Any]:
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous  # signals can only be handled on the main thread

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)


def _format(line: DeliveryLine, *, as_json: bool) -> str:
    from stripectl.redact import redact

    if as_json:
        return redact(json.dumps(line.to_json()))
    from stripectl.timeparse import format_ts

    what = line.outcome or "-"
    if line.reason:
        what += f" ({line.reason})"
    if line.error:
        what += f" error: {line.error}"
    from stripectl.printable import printable

    return printable(
        redact(
            f"{format_ts(line.received_at)} {line.status} {line.event_id or '-'} "
            f"{line.type or '-'} {what} {line.latency_ms:.0f}ms"
        )
    )


# `webhook probe` and `webhook audit` (issue 16) live in their own module.
from stripectl.cli.webhook_checks import register as _register_checks  # noqa: E402

_register_checks(webhook_app)
